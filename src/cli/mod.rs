//! The command line: the only place that reads and writes files.
//!
//! Raw arguments are parsed by clap into `Cli`; each command then loads the
//! cluster folder, runs the pure pipeline, and maps the outcome to the exit
//! code contract of DESIGN §4 (0 success, 2 invalid input or refusal).
//! Messages go to stderr; machine output (`--format json`) to stdout.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diag::{self, Diagnostic, FileKind, Sources};
use crate::load::{self, Texts};
use crate::place::{self, Options};
use crate::report;

mod commands;

#[derive(Parser, Debug)]
#[command(
    name = "tidb-gitops",
    version,
    about = "Compile a TiDB cluster description and a node storage inventory into Kubernetes manifests and a rollout plan for GitOps"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Solve which directory each PD and TiKV instance gets and write placement.lock only
    Place {
        /// The cluster folder (cluster.toml, inventory.toml, placement.lock)
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Fail instead of changing placement.lock
        #[arg(long)]
        locked: bool,
        /// Move the fewest instances that restore an even spread
        #[arg(long)]
        rebalance: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Compile the cluster folder: write placement.lock and the output folder of manifests
    Compile {
        /// The cluster folder (cluster.toml, inventory.toml, placement.lock)
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The output folder [default: DIR/deploy]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail instead of changing placement.lock
        #[arg(long)]
        locked: bool,
        /// Treat config keys unknown to the references as errors, not warnings
        #[arg(long)]
        strict_config: bool,
        /// Print how long each stage took
        #[arg(long)]
        timings: bool,
        /// Evidence from the cluster that moves day-2 steps on: the JSON of `pd-ctl store --state Up,Offline,Tombstone`, `pd-ctl member`, or `kubectl get jobs -l tidb-gitops.io/reclaim -o json` (repeatable)
        #[arg(long, value_name = "FILE")]
        observed: Vec<PathBuf>,
    },
    /// Recompile in memory and compare with the committed lock and output (exit 1 when stale)
    Check {
        /// The cluster folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The output folder [default: DIR/deploy]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Treat config keys unknown to the references as errors, not warnings
        #[arg(long)]
        strict_config: bool,
    },
    /// Show the rollout the change would trigger: what is created, restarted or upgraded, in which wave
    Plan {
        /// The cluster folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// What to compare with: a git revision (its committed output, else its inputs compiled), an output folder, or a cluster folder [default: none, the plan creates the cluster]
        #[arg(long)]
        base: Option<String>,
        /// The output folder, to find it inside the base revision [default: DIR/deploy]
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Evidence from the cluster that moves day-2 steps on: the JSON of `pd-ctl store --state Up,Offline,Tombstone`, `pd-ctl member`, or `kubectl get jobs -l tidb-gitops.io/reclaim -o json` (repeatable)
        #[arg(long, value_name = "FILE")]
        observed: Vec<PathBuf>,
    },
    /// Preview a change for review: summary, placement changes, rollout plan, warnings, per-object diffs (exit 1 when something changes)
    Diff {
        /// The cluster folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// What to compare with: a git revision (its committed output, else its inputs compiled), an output folder, or a cluster folder
        #[arg(long)]
        base: String,
        /// The output folder, to find it inside the base revision [default: DIR/deploy]
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// The most bytes of markdown on stdout; object diffs beyond it are left out with a note
        #[arg(long, default_value_t = crate::diff::DEFAULT_MAX_BYTES)]
        max_bytes: usize,
        /// Write the whole markdown preview as numbered parts DIR/part-1.md, part-2.md and so on, each within --max-bytes, and print their paths
        #[arg(long, value_name = "DIR")]
        split: Option<PathBuf>,
        /// Also write the whole preview, without a budget or colors, to FILE (for a CI artifact)
        #[arg(long, value_name = "FILE")]
        full: Option<PathBuf>,
        /// Evidence from the cluster that moves day-2 steps on: the JSON of `pd-ctl store --state Up,Offline,Tombstone`, `pd-ctl member`, or `kubectl get jobs -l tidb-gitops.io/reclaim -o json` (repeatable)
        #[arg(long, value_name = "FILE")]
        observed: Vec<PathBuf>,
    },
    /// Scaffold a commented cluster folder
    Init { dir: PathBuf },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, or write one page per command into a folder
    Man {
        /// Write tidb-gitops.1 and tidb-gitops-COMMAND.1 into DIR instead of printing tidb-gitops.1
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Exit codes (DESIGN §4).
const EXIT_OK: u8 = 0;
const EXIT_STALE: u8 = 1;
const EXIT_INVALID: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Place {
            dir,
            locked,
            rebalance,
            format,
        } => place(&dir, locked, Options { rebalance }, format),
        Command::Compile {
            dir,
            out,
            locked,
            strict_config,
            timings,
            observed,
        } => {
            let out = out.unwrap_or_else(|| commands::default_out(&dir));
            commands::compile(&dir, &out, locked, strict_config, timings, &observed)
        }
        Command::Check {
            dir,
            out,
            strict_config,
        } => {
            let out = out.unwrap_or_else(|| commands::default_out(&dir));
            commands::check(&dir, &out, strict_config)
        }
        Command::Plan {
            dir,
            base,
            out,
            format,
            observed,
        } => {
            let out = out.unwrap_or_else(|| commands::default_out(&dir));
            commands::plan(&dir, &out, base.as_deref(), format, &observed)
        }
        Command::Diff {
            dir,
            base,
            out,
            format,
            max_bytes,
            split,
            full,
            observed,
        } => {
            let out = out.unwrap_or_else(|| commands::default_out(&dir));
            let options = commands::DiffOptions {
                format,
                observed: &observed,
                max_bytes,
                split: split.as_deref(),
                full: full.as_deref(),
            };
            commands::diff(&dir, &out, &base, &options)
        }
        Command::Init { dir } => init(&dir),
        Command::Completions { shell } => {
            let _ = std::io::stdout()
                .lock()
                .write_all(completions(shell).as_bytes());
            EXIT_OK
        }
        Command::Man { out } => man(out.as_deref()),
    };
    ExitCode::from(code)
}

/// Colors on stderr: only on a terminal, and never with `NO_COLOR`.
fn color() -> bool {
    !no_color() && std::io::stderr().is_terminal()
}

/// Colors on stdout (a diff): only on a terminal, and never with `NO_COLOR`.
pub(super) fn stdout_color() -> bool {
    !no_color() && std::io::stdout().is_terminal()
}

/// `NO_COLOR` set to anything but the empty string (no-color.org).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

pub(super) fn eprint_diagnostics(diagnostics: &[Diagnostic], sources: &Sources) {
    if diagnostics.is_empty() {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(diag::render(diagnostics, sources, color()).as_bytes());
}

pub(super) fn fail(diagnostics: &[Diagnostic], sources: &Sources) -> u8 {
    eprint_diagnostics(diagnostics, sources);
    eprintln!("{}; nothing was written", diag::summary(diagnostics));
    EXIT_INVALID
}

/// How a file of the cluster folder is named in messages.
pub(super) fn display_path(dir: &Path, kind: FileKind) -> String {
    if dir == Path::new(".") {
        kind.file_name().to_string()
    } else {
        dir.join(kind.file_name()).display().to_string()
    }
}

/// The texts of a cluster folder, read from disk. They live in `sources`
/// (which diagnostics render from); the other fields say which were found.
pub(super) struct Folder {
    pub(super) sources: Sources,
    has_lock: bool,
}

impl Folder {
    pub(super) fn text(&self, kind: FileKind) -> &str {
        self.sources.text(kind).unwrap_or_default()
    }

    pub(super) fn lock(&self) -> Option<&str> {
        self.has_lock.then(|| self.text(FileKind::Lock))
    }
}

pub(super) fn read_folder(dir: &Path) -> Result<Folder, (Vec<Diagnostic>, Sources)> {
    let mut sources = Sources::default();
    let mut diagnostics = Vec::new();
    let mut read = |kind: FileKind, required: bool| -> bool {
        let path = dir.join(kind.file_name());
        let name = display_path(dir, kind);
        match std::fs::read(&path) {
            Ok(bytes) => match load::decode(kind, &name, bytes) {
                Ok(text) => {
                    sources.add(kind, name, text);
                    true
                }
                Err(failed) => {
                    let (diagnostic, shown) = *failed;
                    // The text with bad bytes replaced, to show the line.
                    sources.add(kind, name, shown);
                    diagnostics.push(diagnostic);
                    false
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => false,
            Err(e) => {
                diagnostics.push(Diagnostic::error(format!("cannot read {name}: {e}")).hint(format!(
                    "run `tidb-gitops init {}` to create a cluster folder, or name the folder that holds {}",
                    dir.display(),
                    kind.file_name()
                )));
                false
            }
        }
    };
    let cluster = read(FileKind::Cluster, true);
    let inventory = read(FileKind::Inventory, true);
    let lock = read(FileKind::Lock, false);
    if cluster && inventory && diagnostics.is_empty() {
        Ok(Folder {
            sources,
            has_lock: lock,
        })
    } else {
        Err((diagnostics, sources))
    }
}

fn place(dir: &Path, locked: bool, options: Options, format: Format) -> u8 {
    let folder = match read_folder(dir) {
        Ok(folder) => folder,
        Err((diagnostics, sources)) => return fail(&diagnostics, &sources),
    };
    let (loaded, mut diagnostics) = load::load(Texts {
        cluster: folder.text(FileKind::Cluster),
        inventory: folder.text(FileKind::Inventory),
        lock: folder.lock(),
    });
    let Some(loaded) = loaded else {
        return fail(&diagnostics, &folder.sources);
    };
    let outcome = match place::place(&loaded.model, &loaded.lock, &options) {
        Ok(outcome) => outcome,
        Err(errors) => {
            diagnostics.extend(errors);
            diag::sort(&mut diagnostics);
            return fail(&diagnostics, &folder.sources);
        }
    };
    diagnostics.extend(outcome.warnings.iter().cloned());
    diag::sort(&mut diagnostics);
    let text = outcome.lock.render();
    let changed = folder.lock() != Some(text.as_str());
    if changed && locked {
        let mut d = Diagnostic::error("placement.lock would change, and --locked forbids it")
            .in_file(FileKind::Lock);
        if folder.lock().is_none() {
            d = d.note("there is no placement.lock yet");
        }
        for event in &outcome.events {
            d = d.note(report::describe_event(event));
        }
        diagnostics.push(d.hint(format!(
            "run `tidb-gitops place {}` without --locked, review the change and commit placement.lock",
            dir.display()
        )));
        return fail(&diagnostics, &folder.sources);
    }
    eprint_diagnostics(&diagnostics, &folder.sources);
    if changed
        && let Err(e) =
            crate::output::replace_file(&dir.join(FileKind::Lock.file_name()), text.as_bytes())
    {
        eprintln!("error: {e}");
        eprintln!("help: {}", e.hint());
        return EXIT_INVALID;
    }
    let out = match format {
        Format::Text => report::table(&loaded.model, &outcome.lock, &outcome.events),
        Format::Json => report::json(&loaded.model, &outcome.lock, &outcome.events),
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if format == Format::Text {
        eprintln!(
            "{} {}",
            display_path(dir, FileKind::Lock),
            if changed { "written" } else { "unchanged" }
        );
    }
    EXIT_OK
}

/// Writes a file so that a reader sees the old bytes or the new, never a mix:
/// a temporary file in the same folder, synced, then renamed over the target.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

const SCAFFOLD_CLUSTER: &str = include_str!("../scaffold/cluster.toml");
const SCAFFOLD_INVENTORY: &str = include_str!("../scaffold/inventory.toml");

/// A shell completion script, generated from the same definition as
/// `--help`.
fn completions(shell: clap_complete::Shell) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "tidb-gitops", &mut script);
    let script = String::from_utf8(script).expect("completions are UTF-8");
    match shell {
        // clap_complete's bash script spells the state of a subcommand of a
        // hyphenated program two ways (`tidb__gitops__subcmd__diff` where it
        // is set, `tidb__subcmd__gitops__subcmd__diff` where it is matched;
        // clap issue 6421), so nothing after a subcommand would complete.
        // Spell the labels the way they are set; a test completes
        // `tidb-gitops diff --for` in bash.
        clap_complete::Shell::Bash => script.replace("tidb__subcmd__gitops", "tidb__gitops"),
        _ => script,
    }
}

/// The manual pages, generated from the same definition as `--help`.
fn man(out: Option<&Path>) -> u8 {
    let command = <Cli as clap::CommandFactory>::command();
    let result = match out {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .map_err(|e| format!("cannot write the manual pages to {}: {e}", dir.display())),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    std::io::stdout()
                        .lock()
                        .write_all(&page)
                        .map_err(|e| e.to_string())
                })
        }
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_INVALID
        }
    }
}

fn init(dir: &Path) -> u8 {
    let targets = [
        (dir.join(FileKind::Cluster.file_name()), SCAFFOLD_CLUSTER),
        (
            dir.join(FileKind::Inventory.file_name()),
            SCAFFOLD_INVENTORY,
        ),
    ];
    for (path, _) in &targets {
        if path.exists() {
            eprintln!(
                "error: {} already exists; init writes only into a folder without cluster files",
                path.display()
            );
            eprintln!("help: choose a new folder, or edit the existing files");
            return EXIT_INVALID;
        }
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return EXIT_INVALID;
    }
    for (path, text) in &targets {
        if let Err(e) = write_atomically(path, text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_INVALID;
        }
    }
    eprintln!(
        "created {} and {}; edit them, then run `tidb-gitops place {}`",
        targets[0].0.display(),
        targets[1].0.display(),
        dir.display()
    );
    EXIT_OK
}
