//! Writing and reading the output folder: the only filesystem code of the
//! compile path.
//!
//! The folder is replaced as a whole. The new tree is written and synced
//! beside it (`.<name>.tidb-gitops-new`), then the old folder is renamed
//! aside (`.<name>.tidb-gitops-old`), the new one renamed into place, and
//! the old one removed. `rename(2)` cannot replace a non-empty directory,
//! so there is a moment between the two renames when the folder is absent;
//! the next run finds the old tree aside and the folder missing, and puts
//! the old tree back before doing anything else. A crash, a kill or an
//! invalid input therefore always leaves the previous output readable.
//!
//! A folder is only ever replaced if it holds the marker file that this
//! module writes (or is empty), so `--out /` or `--out ~` destroys nothing.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::layout::{Files, MARKER};

/// Why the output folder was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The folder exists and was not created by this tool.
    NotOurs(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotOurs(p) => write!(
                f,
                "{} exists and was not written by tidb-gitops (it has no {MARKER} file), so it will not be replaced",
                p.display()
            ),
            WriteError::Io(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

/// What `write` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Replaced,
    Unchanged,
}

fn side(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "deploy".into());
    out.with_file_name(format!(".{name}.tidb-gitops-{suffix}"))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |e| WriteError::Io(path.to_path_buf(), e)
}

/// Puts back an output folder that an interrupted swap left aside, and
/// removes a half-written new tree. Safe to call at any time.
pub fn recover(out: &Path) -> Result<(), WriteError> {
    let old = side(out, "old");
    let new = side(out, "new");
    if old.is_dir() {
        if !out.exists() {
            fs::rename(&old, out).map_err(io_err(out))?;
        } else if old.join(MARKER).is_file() {
            fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
    }
    if new.is_dir() && new.join(MARKER).is_file() || new.is_dir() && is_empty(&new) {
        fs::remove_dir_all(&new).map_err(io_err(&new))?;
    }
    Ok(())
}

/// Where an interrupted swap left the previous output, if `out` is missing
/// because of one. `recover` (run by every write) puts it back.
pub fn left_aside(out: &Path) -> Option<PathBuf> {
    let old = side(out, "old");
    (!out.exists() && old.join(MARKER).is_file()).then_some(old)
}

fn is_empty(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// Whether `out` may be replaced: absent, empty, or ours.
pub fn may_replace(out: &Path) -> Result<(), WriteError> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WriteError::Io(out.to_path_buf(), e)),
        Ok(meta) if meta.is_dir() && (out.join(MARKER).is_file() || is_empty(out)) => Ok(()),
        Ok(_) => Err(WriteError::NotOurs(out.to_path_buf())),
    }
}

/// Replaces `out` with exactly `files`, unless it already holds them.
pub fn write(out: &Path, files: &Files) -> Result<Written, WriteError> {
    recover(out)?;
    may_replace(out)?;
    let existing = if out.is_dir() { read(out).ok() } else { None };
    if existing.as_ref() == Some(files) {
        return Ok(Written::Unchanged);
    }
    let new = side(out, "new");
    if let Some(parent) = new.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let reuse = existing.as_ref().map(|e| (out, e));
    let result = write_tree(&new, files, reuse);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&new);
        return Err(e);
    }
    if out.exists() {
        let old = side(out, "old");
        fs::rename(out, &old).map_err(io_err(out))?;
        fs::rename(&new, out).map_err(io_err(out))?;
        sync_dir(out.parent());
        fs::remove_dir_all(&old).map_err(io_err(&old))?;
    } else {
        fs::rename(&new, out).map_err(io_err(out))?;
        sync_dir(out.parent());
    }
    Ok(Written::Replaced)
}

fn sync_dir(dir: Option<&Path>) {
    let dir = dir
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes every file under `root` (which must not exist) and makes the tree
/// durable, so it is complete on disk before it is renamed into place.
///
/// A file whose text equals the one in the previous output (`reuse`) is
/// hard-linked from there instead of written: after a small change most
/// files are the same, and a link costs the filesystem no new inode. The
/// files are created by as many threads as there are cores, because the
/// cost is in the filesystem, not in this process.
fn write_tree(
    root: &Path,
    files: &Files,
    reuse: Option<(&Path, &Files)>,
) -> Result<(), WriteError> {
    fs::create_dir(root).map_err(io_err(root))?;
    let dirs: std::collections::BTreeSet<&Path> = files
        .keys()
        .filter_map(|relative| Path::new(relative).parent())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    for dir in &dirs {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let entries: Vec<(&String, &String)> = files.iter().collect();
    let threads = crate::threads();
    let per_thread = entries.len().div_ceil(threads).max(1);
    let results: Vec<Result<(), WriteError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || write_files(root, chunk, reuse)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a writer thread panicked"))
            .collect()
    });
    results.into_iter().collect::<Result<(), WriteError>>()?;
    sync_filesystem(root).map_err(io_err(root))
}

fn write_files(
    root: &Path,
    entries: &[(&String, &String)],
    reuse: Option<(&Path, &Files)>,
) -> Result<(), WriteError> {
    for (relative, text) in entries {
        let path = root.join(relative);
        if let Some((old_root, old)) = reuse
            && old.get(*relative) == Some(*text)
            && link_unshared(&old_root.join(relative), &path)
        {
            continue;
        }
        let mut file = fs::File::create(&path).map_err(io_err(&path))?;
        file.write_all(text.as_bytes()).map_err(io_err(&path))?;
        if !cfg!(target_os = "linux") {
            file.sync_all().map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// Hard-links `from` to `to` unless `from` already has other links (then a
/// later edit through one name would change the other).
fn link_unshared(from: &Path, to: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(from).is_ok_and(|m| m.is_file() && m.nlink() == 1)
            && fs::hard_link(from, to).is_ok()
    }
    #[cfg(not(unix))]
    {
        let _ = (from, to);
        false
    }
}

/// Makes everything written under `root` durable before it is renamed into
/// place. One `syncfs(2)` flushes the whole filesystem at once, which is
/// far cheaper than a `fsync(2)` per file for thousands of small files;
/// elsewhere each file was synced as it was written.
fn sync_filesystem(root: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let dir = fs::File::open(root)?;
        // SAFETY: `dir` is an open file descriptor for the whole call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    sync_dir(Some(root));
    Ok(())
}

/// Reads an output folder back: every regular file, by `/`-separated
/// relative path. Symbolic links are reported as errors, never followed.
pub fn read(root: &Path) -> io::Result<Files> {
    let mut files = Files::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        for entry in fs::read_dir(root.join(&relative))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let rel = relative.join(entry.file_name());
            if kind.is_dir() {
                stack.push(rel);
            } else if kind.is_file() {
                let text = fs::read_to_string(entry.path())?;
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.insert(key, text);
            } else {
                return Err(io::Error::other(format!(
                    "{} is not a regular file",
                    entry.path().display()
                )));
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: &str) -> Files {
        Files::from([
            (MARKER.to_string(), "marker\n".to_string()),
            ("manifests/a/x.yaml".to_string(), format!("x: {n}\n")),
            ("kustomization.yaml".to_string(), "k\n".to_string()),
        ])
    }

    #[test]
    fn writes_reads_back_and_replaces_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("deploy");
        assert_eq!(write(&out, &sample("1")).unwrap(), Written::Replaced);
        assert_eq!(read(&out).unwrap(), sample("1"));
        assert_eq!(write(&out, &sample("1")).unwrap(), Written::Unchanged);
        let mut fewer = sample("2");
        fewer.remove("kustomization.yaml");
        assert_eq!(write(&out, &fewer).unwrap(), Written::Replaced);
        assert_eq!(
            read(&out).unwrap(),
            fewer,
            "a file not in the new set is gone"
        );
        assert!(!side(&out, "old").exists() && !side(&out, "new").exists());
    }

    #[test]
    fn refuses_a_folder_without_the_marker_and_leaves_it_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("home");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("precious.txt"), "data").unwrap();
        assert!(matches!(
            write(&out, &sample("1")),
            Err(WriteError::NotOurs(_))
        ));
        assert_eq!(
            fs::read_to_string(out.join("precious.txt")).unwrap(),
            "data"
        );
        // A regular file in the way is not ours either.
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            write(&file, &sample("1")),
            Err(WriteError::NotOurs(_))
        ));
        // An empty folder may be used.
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(write(&empty, &sample("1")).unwrap(), Written::Replaced);
    }

    #[test]
    fn an_interrupted_swap_is_recovered_with_the_previous_output() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("deploy");
        write(&out, &sample("1")).unwrap();
        // Crash between the two renames: the old tree is aside, the new one
        // (half written) beside it, and the folder itself is missing.
        fs::rename(&out, side(&out, "old")).unwrap();
        fs::create_dir(side(&out, "new")).unwrap();
        fs::write(side(&out, "new").join(MARKER), "m").unwrap();
        recover(&out).unwrap();
        assert_eq!(read(&out).unwrap(), sample("1"));
        assert!(!side(&out, "old").exists() && !side(&out, "new").exists());
        // A hard-linked unchanged file is not shared once the old tree is gone.
        let mut more = sample("1");
        more.insert("manifests/b/y.yaml".into(), "y\n".into());
        write(&out, &more).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(out.join("manifests/a/x.yaml")).unwrap();
            assert_eq!(meta.nlink(), 1);
        }
        assert_eq!(read(&out).unwrap(), more);
        // And a crash while writing the new tree leaves the old one in place.
        fs::create_dir(side(&out, "new")).unwrap();
        assert_eq!(write(&out, &sample("2")).unwrap(), Written::Replaced);
        assert_eq!(read(&out).unwrap(), sample("2"));
    }
}
