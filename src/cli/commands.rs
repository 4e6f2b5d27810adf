//! `compile` and `check`: the commands that produce and verify the output
//! folder.

use std::path::{Path, PathBuf};

use super::{
    EXIT_INVALID, EXIT_OK, EXIT_STALE, display_path, eprint_diagnostics, fail, read_folder,
};
use crate::compile::{self, Compiled, Options};
use crate::diag::{Diagnostic, FileKind};
use crate::layout::Files;
use crate::load::Texts;
use crate::output::{self, Written};
use crate::report;

/// The output folder when `--out` is not given: `deploy` in the cluster folder.
pub fn default_out(dir: &Path) -> PathBuf {
    if dir == Path::new(".") {
        PathBuf::from("deploy")
    } else {
        dir.join("deploy")
    }
}

/// Compiles the folder in memory; on invalid input prints the diagnostics
/// and returns the exit code.
fn compile_folder(
    dir: &Path,
    out: &Path,
    strict_config: bool,
    observed: &[PathBuf],
) -> Result<(Compiled, super::Folder), u8> {
    let folder = match read_folder(dir) {
        Ok(folder) => folder,
        Err((diagnostics, sources)) => return Err(fail(&diagnostics, &sources)),
    };
    let mut evidence = Vec::with_capacity(observed.len());
    for path in observed {
        let read = std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|bytes| crate::evidence::read_bytes(&path.display().to_string(), &bytes));
        match read {
            Ok(file) => evidence.push(file),
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!("nothing was written");
                return Err(EXIT_INVALID);
            }
        }
    }
    let options = Options {
        strict_config,
        repo_path: repo_path(out),
        observed: evidence,
    };
    let texts = Texts {
        cluster: folder.text(FileKind::Cluster),
        inventory: folder.text(FileKind::Inventory),
        lock: folder.lock(),
    };
    match compile::compile(texts, &options) {
        Ok(compiled) => Ok((compiled, folder)),
        Err(diagnostics) => Err(fail(&diagnostics, &folder.sources)),
    }
}

/// Where Flux and Argo CD find the output: its path relative to the root of
/// the Git repository that holds it (found by walking up to `.git`), so the
/// same repository gives the same bytes on every machine. Outside a
/// repository the output folder's own name is used.
pub fn repo_path(out: &Path) -> String {
    let absolute = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    // Resolve symbolic links in the existing part of the path.
    let mut existing = absolute.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().unwrap_or(existing);
    for part in rest.iter().rev() {
        resolved.push(part);
    }
    let root = resolved
        .ancestors()
        .skip(1)
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf);
    let relative: PathBuf = match &root {
        Some(root) => resolved
            .strip_prefix(root)
            .unwrap_or(&resolved)
            .to_path_buf(),
        None => resolved.file_name().map(PathBuf::from).unwrap_or_default(),
    };
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

pub fn compile(
    dir: &Path,
    out: &Path,
    locked: bool,
    strict_config: bool,
    timings: bool,
    observed: &[PathBuf],
) -> u8 {
    let (compiled, folder) = match compile_folder(dir, out, strict_config, observed) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let lock_text = compiled.lock.render();
    let lock_changed = folder.lock() != Some(lock_text.as_str());
    if lock_changed && locked {
        let mut d = Diagnostic::error("placement.lock would change, and --locked forbids it")
            .in_file(FileKind::Lock);
        for event in &compiled.events {
            d = d.note(report::describe_event(event));
        }
        let mut diagnostics = compiled.warnings.clone();
        diagnostics.push(d.hint(format!(
            "run `tidb-gitops compile {}` without --locked, review the change and commit placement.lock",
            dir.display()
        )));
        return fail(&diagnostics, &folder.sources);
    }
    eprint_diagnostics(&compiled.warnings, &folder.sources);

    // Repair what an interrupted compile left, and refuse links and foreign
    // folders, before anything is written (see `output` for the protocol).
    let lock_path = dir.join(FileKind::Lock.file_name());
    let out_parent = out.parent().unwrap_or(Path::new("."));
    let _locks = match output::lock_folders(&[dir, out_parent]) {
        Ok(locks) => locks,
        Err(e) => return write_failed(&e),
    };
    let interrupted = match prepare_write(out, &lock_path, lock_changed) {
        Ok(interrupted) => interrupted,
        Err(e) => return write_failed(&e),
    };
    if interrupted {
        eprintln!(
            "note: an earlier run was interrupted before it wrote {} (it left {}); the lock and the output are brought in line with the inputs now",
            display_path(dir, FileKind::Lock),
            output::staged_name(&lock_path).display()
        );
    }

    // The change from what is there now must be safe, or acknowledged.
    let safety_start = std::time::Instant::now();
    let existing = match output::read_existing(out) {
        Ok(existing) => existing,
        Err(e) => return write_failed(&e),
    };
    if let Some(existing) = &existing {
        match crate::plan::plan(
            Some(existing),
            &compiled.files,
            &acknowledged_changes(&folder),
        ) {
            Ok(plan) if plan.refused() => {
                eprint!("{}", crate::plan::text(&plan));
                eprintln!(
                    "error: the change from {} is unsafe and not acknowledged; nothing was written",
                    out.display()
                );
                return EXIT_INVALID;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!(
                    "error: cannot read the current output {}: {e}",
                    out.display()
                );
                return EXIT_INVALID;
            }
        }
    }

    let safety_time = safety_start.elapsed();
    let start = std::time::Instant::now();
    // The new lock is staged (written and synced under another name) before
    // the output is swapped, and renamed into place after: a kill leaves the
    // previous lock with the previous or the new output, never the new lock
    // with the previous output, and the staged file tells the next run.
    let staged = if lock_changed {
        match output::stage_file(&lock_path, lock_text.as_bytes()) {
            Ok(staged) => Some(staged),
            Err(e) => return write_failed(&e),
        }
    } else {
        None
    };
    let mut committed = false;
    let finish = || {
        committed = true;
        match &staged {
            Some(staged) => output::commit_file(staged, &lock_path),
            None if interrupted => output::discard_staged(&lock_path),
            None => Ok(()),
        }
    };
    let written = match output::write_over(out, &compiled.files, existing.as_ref(), finish) {
        Ok(w) => w,
        Err(e) => {
            // A lock staged by this run is removed if the output was not
            // swapped; one staged by an interrupted run stays as the sign
            // that the lock may be behind the output.
            if !committed && !interrupted {
                let _ = output::discard_staged(&lock_path);
            }
            return write_failed(&e);
        }
    };
    let write_time = start.elapsed();
    for event in &compiled.events {
        eprintln!("{}", report::describe_event(event));
    }
    let objects = compiled.objects;
    eprintln!(
        "{} {} ({objects} objects); {} {}",
        out.display(),
        match written {
            Written::Replaced => "written",
            Written::Unchanged => "unchanged",
        },
        display_path(dir, FileKind::Lock),
        if lock_changed { "written" } else { "unchanged" }
    );
    if compiled.files["gitops/flux/gitrepository.yaml"].contains(compile::EXAMPLE_REPOSITORY) {
        eprintln!(
            "note: the Flux and Argo CD objects in {}/gitops name an example repository; set [gitops] repository in cluster.toml",
            out.display()
        );
    }
    if timings {
        let t = compiled.timings;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        eprintln!(
            "timings: parse+validate {:.1} ms, place {:.1} ms, objects {:.1} ms, render {:.1} ms, read+plan {:.1} ms, write {:.1} ms",
            ms(t.load),
            ms(t.place),
            ms(t.objects),
            ms(t.render),
            ms(safety_time),
            ms(write_time)
        );
    }
    EXIT_OK
}

/// Before compile writes: says whether an interrupted run left a staged
/// lock (it stays until this run commits or discards it), puts back an
/// output folder an interrupted swap left aside and removes side trees,
/// and refuses what must not be replaced: an output folder that is a link
/// or not ours, and a lock that is a link when it would be written.
fn prepare_write(
    out: &Path,
    lock_path: &Path,
    lock_changed: bool,
) -> Result<bool, output::WriteError> {
    if lock_changed {
        output::may_replace_file(lock_path)?;
    }
    let interrupted = output::recover_file(lock_path)?;
    output::recover(out)?;
    output::may_replace(out)?;
    Ok(interrupted)
}

/// Prints why the output or the lock was not written, with a hint.
fn write_failed(e: &output::WriteError) -> u8 {
    eprintln!("error: {e}");
    eprintln!("help: {}", e.hint());
    EXIT_INVALID
}

pub fn check(dir: &Path, out: &Path, strict_config: bool) -> u8 {
    let (compiled, folder) = match compile_folder(dir, out, strict_config, &[]) {
        Ok(c) => c,
        Err(code) => return code,
    };
    eprint_diagnostics(&compiled.warnings, &folder.sources);
    let mut stale = Vec::new();
    let lock_text = compiled.lock.render();
    match folder.lock() {
        None => stale.push(format!("{} is missing", display_path(dir, FileKind::Lock))),
        Some(text) if text != lock_text => {
            stale.push(format!(
                "{} would change",
                display_path(dir, FileKind::Lock)
            ));
            for event in &compiled.events {
                stale.push(format!("  {}", report::describe_event(event)));
            }
        }
        Some(_) => {}
    }
    let staged = output::staged_name(&dir.join(FileKind::Lock.file_name()));
    if staged.exists() {
        stale.push(format!(
            "{} was left by an interrupted run; the lock may be behind the output",
            staged.display()
        ));
    }
    match output::read(out) {
        Ok(existing) => stale.extend(differences(out, &existing, &compiled.files)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            stale.push(format!("{} is missing", out.display()));
            if let Some(old) = output::left_aside(out) {
                stale.push(format!(
                    "  an interrupted compile left the previous output in {}; compile puts it back",
                    old.display()
                ));
            }
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", out.display());
            eprintln!(
                "help: an output folder holds only what tidb-gitops writes; remove anything else from {}, then run compile",
                out.display()
            );
            return EXIT_INVALID;
        }
    }
    if stale.is_empty() {
        eprintln!(
            "{} and {} are up to date",
            display_path(dir, FileKind::Lock),
            out.display()
        );
        return EXIT_OK;
    }
    for line in &stale {
        eprintln!("{line}");
    }
    let mut fix = format!("tidb-gitops compile {}", dir.display());
    if *out != default_out(dir) {
        fix.push_str(&format!(" --out {}", out.display()));
    }
    eprintln!("help: run `{fix}` and commit the result");
    EXIT_STALE
}

/// The files that differ, are missing or are extra, a few of each kind.
fn differences(out: &Path, existing: &Files, wanted: &Files) -> Vec<String> {
    const SHOWN: usize = 10;
    let mut lines = Vec::new();
    let changed: Vec<&String> = wanted
        .iter()
        .filter(|(k, v)| existing.get(*k).is_some_and(|e| e != *v))
        .map(|(k, _)| k)
        .collect();
    let missing: Vec<&String> = wanted
        .keys()
        .filter(|k| !existing.contains_key(*k))
        .collect();
    let extra: Vec<&String> = existing
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .collect();
    for (what, list) in [
        ("differ from what compile writes", changed),
        ("are missing", missing),
        ("should not be there", extra),
    ] {
        if list.is_empty() {
            continue;
        }
        lines.push(format!("{} files in {} {what}:", list.len(), out.display()));
        for path in list.iter().take(SHOWN) {
            lines.push(format!("  {path}"));
        }
        if list.len() > SHOWN {
            lines.push(format!("  and {} more", list.len() - SHOWN));
        }
    }
    lines
}

/// `plan`: the new compile against a base.
pub fn plan(
    dir: &Path,
    out: &Path,
    base: Option<&str>,
    format: super::PlanFormat,
    observed: &[PathBuf],
) -> u8 {
    let (compiled, folder) = match compile_folder(dir, out, false, observed) {
        Ok(c) => c,
        Err(code) => return code,
    };
    eprint_diagnostics(&compiled.warnings, &folder.sources);
    let base_files = match base {
        None => None,
        Some(base) => match base_output(dir, out, base, &compiled.files) {
            Ok(base) => Some(base.files),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INVALID;
            }
        },
    };
    let acknowledged = acknowledged_changes(&folder);
    let plan = match crate::plan::plan(base_files.as_ref(), &compiled.files, &acknowledged) {
        Ok(plan) => crate::plan::Plan {
            waiting: compiled.waiting.clone(),
            ..plan
        },
        Err(e) => {
            eprintln!("error: cannot read the base output: {e}");
            return EXIT_INVALID;
        }
    };
    let text = match format {
        super::PlanFormat::Text => crate::plan::text(&plan),
        super::PlanFormat::Markdown => crate::plan::markdown(&plan),
        super::PlanFormat::Json => {
            serde_json::to_string_pretty(&plan).expect("a plan serializes") + "\n"
        }
    };
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if plan.refused() { EXIT_STALE } else { EXIT_OK }
}

/// How `diff` renders and where it writes besides stdout.
pub struct DiffOptions<'a> {
    pub format: super::PlanFormat,
    pub observed: &'a [PathBuf],
    pub max_bytes: usize,
    pub split: Option<&'a Path>,
    pub full: Option<&'a Path>,
}

/// `diff`: the pull-request preview of the new compile against a base.
pub fn diff(dir: &Path, out: &Path, base: &str, options: &DiffOptions<'_>) -> u8 {
    use super::PlanFormat;
    if options.max_bytes < crate::diff::MIN_MAX_BYTES {
        eprintln!(
            "error: --max-bytes {} is too small; give at least {}",
            options.max_bytes,
            crate::diff::MIN_MAX_BYTES
        );
        return EXIT_INVALID;
    }
    if options.split.is_some() && options.format != PlanFormat::Markdown {
        eprintln!("error: --split cuts a markdown preview; add --format markdown");
        return EXIT_INVALID;
    }
    let (compiled, folder) = match compile_folder(dir, out, false, options.observed) {
        Ok(c) => c,
        Err(code) => return code,
    };
    eprint_diagnostics(&compiled.warnings, &folder.sources);
    let base = match base_output(dir, out, base, &compiled.files) {
        Ok(base) => base,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    let acknowledged = acknowledged_changes(&folder);
    let plan = match crate::plan::plan(Some(&base.files), &compiled.files, &acknowledged) {
        Ok(plan) => crate::plan::Plan {
            waiting: compiled.waiting.clone(),
            ..plan
        },
        Err(e) => {
            eprintln!("error: cannot read the base output: {e}");
            return EXIT_INVALID;
        }
    };
    // Why instances moved: the solver's events from the base's lock to the
    // new inputs. Only computed when the locks differ.
    let events = match &base.lock {
        Some(lock) if *lock != compiled.lock.render() => compile::events_since(Texts {
            cluster: folder.text(FileKind::Cluster),
            inventory: folder.text(FileKind::Inventory),
            lock: Some(lock),
        }),
        _ => Vec::new(),
    };
    let context = crate::diff::Context {
        lock: &compiled.lock,
        events: &events,
    };
    let preview = match crate::diff::preview(Some(&base.files), &compiled.files, plan, &context) {
        Ok(preview) => preview,
        Err(e) => {
            eprintln!("error: cannot read the base output: {e}");
            return EXIT_INVALID;
        }
    };
    let render = |within: Option<usize>, color: crate::diff::Color| match options.format {
        PlanFormat::Text => crate::diff::text(&preview, color),
        PlanFormat::Markdown => match within {
            Some(max) => crate::diff::markdown_within(&preview, max),
            None => crate::diff::markdown(&preview),
        },
        PlanFormat::Json => {
            serde_json::to_string_pretty(&preview).expect("a preview serializes") + "\n"
        }
    };
    if let Some(full) = options.full {
        let text = render(None, crate::diff::Color::Never);
        if let Err(e) = super::write_atomically(full, text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", full.display());
            return EXIT_INVALID;
        }
    }
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Some(split) = options.split {
        let parts = crate::diff::markdown_parts(&preview, options.max_bytes);
        match write_parts(split, &parts) {
            Ok(paths) => {
                for path in paths {
                    let _ = writeln!(stdout, "{}", path.display());
                }
            }
            Err(e) => {
                eprintln!("error: cannot write the parts to {}: {e}", split.display());
                return EXIT_INVALID;
            }
        }
    } else {
        let color = if super::stdout_color() {
            crate::diff::Color::Always
        } else {
            crate::diff::Color::Never
        };
        let _ = stdout.write_all(render(Some(options.max_bytes), color).as_bytes());
    }
    if preview.changed() {
        EXIT_STALE
    } else {
        EXIT_OK
    }
}

/// Writes `part-1.md` … `part-N.md` into `dir` (created if missing), after
/// removing the `part-N.md` files an earlier, longer preview left there.
fn write_parts(dir: &Path, parts: &[String]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let numbered = name
            .strip_prefix("part-")
            .and_then(|n| n.strip_suffix(".md"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if numbered {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut paths = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let path = dir.join(format!("part-{}.md", i + 1));
        super::write_atomically(&path, part.as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

/// The change hashes `[[acknowledge]]` names in cluster.toml.
fn acknowledged_changes(folder: &super::Folder) -> Vec<String> {
    crate::input::read_cluster(folder.text(FileKind::Cluster))
        .0
        .map(|c| {
            c.acknowledge
                .iter()
                .map(|a| a.change.value.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// What a plan or a preview compares with.
pub(super) struct Base {
    /// The base's output files.
    files: Files,
    /// The base's placement.lock, when the base has a cluster folder.
    lock: Option<String>,
}

/// The base of a plan, as output files: an output folder; a cluster folder
/// (compiled in memory); or a git revision, whose committed output is used
/// when there is one (what is deployed) and whose inputs are compiled
/// otherwise. Git is only read: the working tree and index are untouched.
/// The base of a plan or diff. `known` is the new output: the files of a
/// committed base that equal it are not read again (see `Git::tree`).
fn base_output(dir: &Path, out: &Path, base: &str, known: &Files) -> Result<Base, String> {
    let path = Path::new(base);
    if path.is_dir() {
        if path.join(crate::layout::MARKER).is_file() {
            let files = output::read(path).map_err(|e| format!("cannot read {base}: {e}"))?;
            return Ok(Base { files, lock: None });
        }
        if path.join(FileKind::Cluster.file_name()).is_file() {
            let read = |kind: FileKind| std::fs::read_to_string(path.join(kind.file_name())).ok();
            let lock = read(FileKind::Lock);
            let files = compile_texts(
                read(FileKind::Cluster),
                read(FileKind::Inventory),
                lock.clone(),
                out,
            )
            .map_err(|e| format!("the base {base} does not compile: {e}"))?;
            return Ok(Base { files, lock });
        }
        return Err(format!(
            "{base} is neither an output folder (no {} file) nor a cluster folder (no cluster.toml)",
            crate::layout::MARKER
        ));
    }
    let git = Git::find(dir)?;
    git.git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{base}^{{commit}}"),
    ])
    .map_err(|_| format!("--base {base} is neither a folder nor a revision of the repository"))?;
    let dir_rel = git.relative(dir)?;
    let file = |kind: FileKind| {
        let p = if dir_rel.is_empty() {
            kind.file_name().to_string()
        } else {
            format!("{dir_rel}/{}", kind.file_name())
        };
        git.show(base, &p).ok()
    };
    let lock = file(FileKind::Lock);
    let out_rel = git.relative(out)?;
    let marker = format!("{out_rel}/{}", crate::layout::MARKER);
    if git.show(base, &marker).is_ok() {
        let files = git.tree(base, &out_rel, known)?;
        return Ok(Base { files, lock });
    }
    let (cluster, inventory) = (file(FileKind::Cluster), file(FileKind::Inventory));
    if cluster.is_none() && inventory.is_none() {
        // The cluster is new in this change: everything is created.
        return Ok(Base {
            files: Files::new(),
            lock: None,
        });
    }
    let files = compile_texts(cluster, inventory, lock.clone(), out)
        .map_err(|e| format!("the cluster folder at {base} does not compile: {e}"))?;
    Ok(Base { files, lock })
}

fn compile_texts(
    cluster: Option<String>,
    inventory: Option<String>,
    lock: Option<String>,
    out: &Path,
) -> Result<Files, String> {
    let (Some(cluster), Some(inventory)) = (cluster, inventory) else {
        return Err("cluster.toml or inventory.toml is missing".into());
    };
    let texts = Texts {
        cluster: &cluster,
        inventory: &inventory,
        lock: lock.as_deref(),
    };
    let options = Options {
        strict_config: false,
        repo_path: repo_path(out),
        ..Default::default()
    };
    compile::compile(texts, &options)
        .map(|c| c.files)
        .map_err(|d| crate::diag::summary(&d))
}

/// Read-only access to the Git repository that holds a folder.
struct Git {
    root: PathBuf,
}

impl Git {
    fn find(dir: &Path) -> Result<Git, String> {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "--base names no folder, and {} is not in a git repository",
                dir.display()
            ));
        }
        let root = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Ok(Git {
            root: PathBuf::from(root),
        })
    }

    /// A path relative to the repository root, `/`-separated.
    fn relative(&self, path: &Path) -> Result<String, String> {
        let absolute = std::path::absolute(path).map_err(|e| e.to_string())?;
        let resolved = absolute
            .canonicalize()
            .or_else(|_| {
                absolute
                    .parent()
                    .map(|p| {
                        p.canonicalize()
                            .map(|c| c.join(absolute.file_name().unwrap_or_default()))
                    })
                    .unwrap_or(Ok(absolute.clone()))
            })
            .map_err(|e| e.to_string())?;
        let root = self.root.canonicalize().map_err(|e| e.to_string())?;
        let rel = resolved.strip_prefix(&root).map_err(|_| {
            format!(
                "{} is outside the repository {}",
                path.display(),
                root.display()
            )
        })?;
        Ok(rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"))
    }

    fn git(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    fn show(&self, rev: &str, path: &str) -> Result<String, String> {
        let bytes = self.git(&["show", &format!("{rev}:{path}")])?;
        String::from_utf8(bytes).map_err(|_| format!("{rev}:{path} is not UTF-8"))
    }

    /// Every file under `path` at `rev`, relative to `path`.
    ///
    /// A file whose blob ID equals that of the same file in `known` (the new
    /// output, mostly the same as the base's) is taken from there and not
    /// read: reading thousands of blobs out of Git costs more than the whole
    /// compile, and identical IDs mean identical bytes.
    fn tree(&self, rev: &str, path: &str, known: &Files) -> Result<Files, String> {
        let sha256 = self
            .git(&["rev-parse", "--show-object-format"])
            .is_ok_and(|f| f.trim_ascii() == b"sha256");
        let list = self.git(&["ls-tree", "-r", "-z", rev, "--", path])?;
        let relative_of = |name: &str| -> String {
            name.strip_prefix(path)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(name)
                .to_string()
        };
        let mut files = Files::new();
        let mut names = Vec::new();
        for entry in list.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            // `<mode> <type> <id>\t<path>`
            let entry = String::from_utf8_lossy(entry);
            let (meta, name) = entry
                .split_once('\t')
                .ok_or_else(|| format!("unexpected git ls-tree output: {entry}"))?;
            let id = meta.rsplit(' ').next().unwrap_or_default();
            let relative = relative_of(name);
            match known.get(&relative) {
                Some(text) if blob_id(text.as_bytes(), sha256) == id => {
                    files.insert(relative, text.clone());
                }
                _ => names.push(name.to_string()),
            }
        }
        if names.is_empty() {
            return Ok(files);
        }
        // One `git cat-file --batch` for the rest, not one process each.
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["cat-file", "--batch"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run git: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped");
        let requests: String = names.iter().map(|n| format!("{rev}:{n}\n")).collect();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(requests.as_bytes());
        });
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let _ = writer.join();
        let mut rest = &output.stdout[..];
        for name in &names {
            let newline = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or("short git output")?;
            let header = String::from_utf8_lossy(&rest[..newline]).into_owned();
            let size: usize = header
                .rsplit(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("unexpected git output: {header}"))?;
            let body = &rest[newline + 1..newline + 1 + size];
            rest = &rest[newline + 1 + size + 1..];
            files.insert(
                relative_of(name),
                String::from_utf8_lossy(body).into_owned(),
            );
        }
        Ok(files)
    }
}

/// The ID Git gives a blob of these bytes, in hex.
fn blob_id(bytes: &[u8], sha256: bool) -> String {
    use sha2::Digest as _;
    let header = format!("blob {}\0", bytes.len());
    let digest: Vec<u8> = if sha256 {
        let mut h = sha2::Sha256::new();
        h.update(header.as_bytes());
        h.update(bytes);
        h.finalize().to_vec()
    } else {
        let mut h = sha1::Sha1::new();
        h.update(header.as_bytes());
        h.update(bytes);
        h.finalize().to_vec()
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::blob_id;

    /// `blob_id` against Git itself, in a SHA-1 and a SHA-256 repository.
    #[test]
    fn blob_ids_are_the_ones_git_computes() {
        for format in ["sha1", "sha256"] {
            let repo = tempfile::tempdir().expect("temp dir");
            let init = std::process::Command::new("git")
                .args(["init", "-q", &format!("--object-format={format}")])
                .current_dir(repo.path())
                .status()
                .expect("git");
            assert!(init.success());
            for text in ["", "a\n", "apiVersion: v1\nkind: ConfigMap\n", "é\u{0}x"] {
                let file = repo.path().join("f");
                std::fs::write(&file, text).expect("write");
                let out = std::process::Command::new("git")
                    .args(["hash-object", "f"])
                    .current_dir(repo.path())
                    .output()
                    .expect("git");
                let git = String::from_utf8(out.stdout).expect("hex");
                assert_eq!(
                    blob_id(text.as_bytes(), format == "sha256"),
                    git.trim(),
                    "{format} {text:?}"
                );
            }
        }
    }
}
