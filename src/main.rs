// The compiler allocates millions of small maps and strings for a large
// cluster; mimalloc does that markedly faster than the system allocator
// (see benches/cli.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tidb_gitops::cli::main()
}
