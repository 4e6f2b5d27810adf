fn main() -> std::process::ExitCode {
    tidb_gitops::cli::main()
}
