//! Writing and reading the output folder and the lock: the only filesystem
//! code of the compile path.
//!
//! # The write protocol
//!
//! The folder is replaced as a whole. The new tree is written beside it
//! (`.<name>.tidb-gitops-new`), marker file first, and made durable (one
//! `syncfs`). Then the new tree and the folder are exchanged in one
//! `renameat2(RENAME_EXCHANGE)`, so the folder is never absent and never
//! half old, half new; the old tree, now under the `-new` name, is removed
//! with its marker last. Where the filesystem cannot exchange (not Linux,
//! or a filesystem without it), the old folder is renamed aside
//! (`.<name>.tidb-gitops-old`) and the new one into place; between those two
//! renames the folder is absent, and the next run puts the old tree back
//! before doing anything else (`recover`).
//!
//! A side folder is therefore always either empty or holds the marker
//! (created first, removed last), which is what `recover` requires before it
//! removes one: a kill at any moment leaves nothing the next run cannot
//! clean up.
//!
//! The lock is written around the swap (`stage_file` before it,
//! `commit_file` after): its new text is synced under a fixed name
//! (`.placement.lock.tidb-gitops-new`) before the output is swapped, and
//! renamed over `placement.lock` right after the swap, before the previous
//! tree is removed (`write_then`). A kill can thus leave the new
//! output with the previous lock, never the new lock with the previous
//! output. The staged file that survives says so (a later run replaces it
//! in one rename and removes it only once the lock is in line, so a kill
//! of that run leaves the sign too), `check` reports the lock as stale,
//! and the next `compile` — which computes the same new lock from the same
//! inputs and previous lock — finds the output unchanged and writes the
//! lock.
//!
//! Two runs at once would remove each other's side trees and staged lock,
//! so compile holds `lock_folders` (an advisory `flock` on the cluster
//! folder and the output's parent) while it writes, and a second run is
//! refused with `WriteError::Busy`.
//!
//! # Symbolic links
//!
//! Nothing here writes through a symbolic link or removes anything outside
//! the output folder: an output folder that is a link, a link anywhere
//! inside it, a link under one of the side names, and a lock that is a link
//! are refused with `WriteError::Symlink` before anything is written. Links
//! in the folders *above* the output (`--out link/deploy`) are fine: the
//! side folders are created in the same real parent as the output, so the
//! renames stay within one folder.
//!
//! A folder is only ever replaced if it holds the marker file that this
//! module writes (or is empty), so `--out /` or `--out ~` destroys nothing.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::layout::{Files, MARKER};

/// Why the output folder or the lock was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The folder exists and was not created by this tool.
    NotOurs(PathBuf),
    /// A name the tool uses for its own temporary folder holds something
    /// that is not ours (no marker).
    InTheWay(PathBuf),
    /// The current output folder cannot be read back (a file that is not
    /// UTF-8 text, a special file, a permission).
    Unreadable(PathBuf, io::Error),
    /// Another process holds the folder's lock: it is writing there now.
    Busy(PathBuf),
    /// A path that would be replaced, or that lies inside the output
    /// folder, is a symbolic link.
    Symlink {
        path: PathBuf,
        target: PathBuf,
        role: LinkRole,
    },
    Io(PathBuf, io::Error),
}

/// Where a refused symbolic link was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// The output folder itself.
    Output,
    /// Something inside the output folder.
    InsideOutput,
    /// One of the names the tool writes its temporary folders or files to.
    SideName,
    /// A file the tool replaces (`placement.lock`).
    File,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotOurs(p) => write!(
                f,
                "{} exists and was not written by tidb-gitops (it has no {MARKER} file), so it will not be replaced",
                p.display()
            ),
            WriteError::InTheWay(p) => write!(
                f,
                "{} is in the way: tidb-gitops writes its temporary folder under that name, and this one has no {MARKER} file, so it is left alone",
                p.display()
            ),
            WriteError::Unreadable(p, e) => write!(
                f,
                "cannot read the current output {}: {e}; nothing was written",
                p.display()
            ),
            WriteError::Busy(p) => write!(
                f,
                "another tidb-gitops process is writing in {} (it holds a lock on the folder), so nothing was written",
                p.display()
            ),
            WriteError::Symlink { path, target, role } => {
                let (path, target) = (path.display(), target.display());
                match role {
                    LinkRole::Output => write!(
                        f,
                        "the output folder {path} is a symbolic link (to {target}); tidb-gitops replaces the output folder as a whole and never writes through a link, so nothing was written"
                    ),
                    LinkRole::InsideOutput => write!(
                        f,
                        "{path} is a symbolic link (to {target}) inside the output folder; an output folder holds only the files tidb-gitops writes, and it never follows a link in it, so nothing was written"
                    ),
                    LinkRole::SideName => write!(
                        f,
                        "{path} is a symbolic link (to {target}); tidb-gitops writes its temporary files under that name and never through a link, so nothing was written"
                    ),
                    LinkRole::File => write!(
                        f,
                        "{path} is a symbolic link (to {target}); tidb-gitops replaces it by renaming a new file over it, which would replace the link and leave {target} stale, so nothing was written"
                    ),
                }
            }
            WriteError::Io(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl WriteError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            WriteError::NotOurs(_) => {
                "choose another --out, or remove the folder yourself if it really is an old output"
                    .into()
            }
            WriteError::InTheWay(p) => format!(
                "move {} away; tidb-gitops creates and removes it itself",
                p.display()
            ),
            WriteError::Unreadable(p, _) => format!(
                "an output folder holds only what tidb-gitops writes; remove anything else from {}",
                p.display()
            ),
            WriteError::Symlink { path, target, role } => match role {
                LinkRole::Output => format!(
                    "give the real folder with --out {}, or replace the link {} with a folder",
                    target.display(),
                    path.display()
                ),
                LinkRole::InsideOutput => format!(
                    "remove the link (`rm {}`); the next compile writes the whole folder again",
                    path.display()
                ),
                LinkRole::SideName => format!("remove the link (`rm {}`)", path.display()),
                LinkRole::File => format!(
                    "replace the link with the file it points to, e.g. `cp --remove-destination {} {}`",
                    target.display(),
                    path.display()
                ),
            },
            WriteError::Busy(_) => {
                "wait for the other run to finish, then run this one again".into()
            }
            WriteError::Io(..) => "check the permissions and free space of the folder".into(),
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

/// What is at `path`, without following a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Absent,
    Dir,
    Link,
    Other,
}

fn kind(path: &Path) -> Result<Kind, WriteError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Kind::Absent),
        Err(e) => Err(WriteError::Io(path.to_path_buf(), e)),
        Ok(m) if m.file_type().is_symlink() => Ok(Kind::Link),
        Ok(m) if m.is_dir() => Ok(Kind::Dir),
        Ok(_) => Ok(Kind::Other),
    }
}

fn link_error(path: &Path, role: LinkRole) -> WriteError {
    WriteError::Symlink {
        path: path.to_path_buf(),
        target: fs::read_link(path).unwrap_or_default(),
        role,
    }
}

/// Whether a folder under one of the side names is ours to remove: it
/// holds the marker (written first, removed last), or is empty.
fn ours(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file()) || is_empty(dir)
}

/// Puts back an output folder that an interrupted swap left aside, and
/// removes a half-written new tree or a half-removed old one. Safe to call
/// at any time; refuses links and foreign folders under the side names.
pub fn recover(out: &Path) -> Result<(), WriteError> {
    let old = side(out, "old");
    let new = side(out, "new");
    for path in [&old, &new] {
        match kind(path)? {
            Kind::Link => return Err(link_error(path, LinkRole::SideName)),
            Kind::Other => return Err(WriteError::InTheWay(path.clone())),
            Kind::Absent | Kind::Dir => {}
        }
    }
    if kind(&old)? == Kind::Dir {
        if kind(out)? == Kind::Absent && old.join(MARKER).is_file() {
            fs::rename(&old, out).map_err(io_err(out))?;
            sync_dir(out.parent());
        } else if ours(&old) {
            remove_tree(&old)?;
        } else {
            return Err(WriteError::InTheWay(old));
        }
    }
    if kind(&new)? == Kind::Dir {
        if ours(&new) {
            remove_tree(&new)?;
        } else {
            return Err(WriteError::InTheWay(new));
        }
    }
    Ok(())
}

/// Removes a tree under a side name so that a kill at any moment leaves it
/// recognisably ours: everything but the top-level marker first, then the
/// marker, then the folder. Links inside are removed, never followed
/// (`remove_dir_all` does not follow them either).
fn remove_tree(dir: &Path) -> Result<(), WriteError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_name() == MARKER {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().map_err(io_err(&path))?.is_dir();
        if is_dir {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        } else {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    let marker = dir.join(MARKER);
    match fs::remove_file(&marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(WriteError::Io(marker, e)),
        _ => {}
    }
    fs::remove_dir(dir).map_err(io_err(dir))
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

/// Advisory locks (`flock`) on folders, held while compile writes there,
/// so that two runs never remove each other's side trees or staged lock.
/// The kernel releases them when the process ends, however it ends.
pub struct FolderLocks(#[allow(dead_code)] Vec<fs::File>);

/// Locks each folder (deduplicated by its real path), or says which one
/// another process holds. A filesystem without `flock` is not locked.
pub fn lock_folders(dirs: &[&Path]) -> Result<FolderLocks, WriteError> {
    let mut held = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if !seen.insert(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())) {
            continue;
        }
        let Ok(file) = fs::File::open(dir) else {
            continue; // not there yet: created by the write, nothing to race
        };
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: `file` is an open descriptor for the whole call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => return Err(WriteError::Busy(dir.to_path_buf())),
                    Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => continue,
                    _ => return Err(WriteError::Io(dir.to_path_buf(), e)),
                }
            }
        }
        held.push(file);
    }
    Ok(FolderLocks(held))
}

/// Whether `out` may be replaced: absent, empty, or ours, and not a
/// symbolic link.
pub fn may_replace(out: &Path) -> Result<(), WriteError> {
    match kind(out)? {
        Kind::Absent => Ok(()),
        Kind::Link => Err(link_error(out, LinkRole::Output)),
        Kind::Dir if out.join(MARKER).is_file() || is_empty(out) => Ok(()),
        Kind::Dir | Kind::Other => Err(WriteError::NotOurs(out.to_path_buf())),
    }
}

/// Reads the output folder that is about to be replaced, refusing links
/// inside it with `WriteError::Symlink`. `None` when it does not exist.
pub fn read_existing(out: &Path) -> Result<Option<Files>, WriteError> {
    may_replace(out)?;
    if kind(out)? == Kind::Absent || !out.join(MARKER).is_file() {
        return Ok(None);
    }
    if let Some(link) = first_link(out).map_err(io_err(out))? {
        return Err(link_error(&link, LinkRole::InsideOutput));
    }
    read(out)
        .map(Some)
        .map_err(|e| WriteError::Unreadable(out.to_path_buf(), e))
}

/// The first symbolic link under `root`, in name order.
fn first_link(root: &Path) -> io::Result<Option<PathBuf>> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(root)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            return Ok(Some(entry.path()));
        }
        if kind.is_dir()
            && let Some(link) = first_link(&entry.path())?
        {
            return Ok(Some(link));
        }
    }
    Ok(None)
}

/// Replaces `out` with exactly `files`, unless it already holds them.
pub fn write(out: &Path, files: &Files) -> Result<Written, WriteError> {
    write_then(out, files, || Ok(()))
}

/// `write`, running `after_swap` as soon as the new tree is in place (or
/// found unchanged), before the previous tree is removed: compile commits
/// the lock there, so the lock lags the output for as short a time as
/// possible. Not run when nothing was swapped.
pub fn write_then(
    out: &Path,
    files: &Files,
    after_swap: impl FnOnce() -> Result<(), WriteError>,
) -> Result<Written, WriteError> {
    recover(out)?;
    let existing = read_existing(out)?;
    write_over(out, files, existing.as_ref(), after_swap)
}

/// `write_then` for a caller that has already run `recover` and read the
/// output with `read_existing` (compile does, to check that the change is
/// safe, while it holds the folder locks): the output is not read twice.
pub fn write_over(
    out: &Path,
    files: &Files,
    existing: Option<&Files>,
    after_swap: impl FnOnce() -> Result<(), WriteError>,
) -> Result<Written, WriteError> {
    if existing == Some(files) {
        after_swap()?;
        return Ok(Written::Unchanged);
    }
    let new = side(out, "new");
    if let Some(parent) = new.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let reuse = existing.map(|e| (out, e));
    let result = write_tree(&new, files, reuse);
    if let Err(e) = result {
        let _ = remove_tree(&new);
        return Err(e);
    }
    if kind(out)? == Kind::Absent {
        fs::rename(&new, out).map_err(io_err(out))?;
        sync_dir(out.parent());
        after_swap()?;
    } else if exchange(&new, out).map_err(io_err(out))? {
        // `new` now holds the previous tree.
        sync_dir(out.parent());
        after_swap()?;
        remove_tree(&new)?;
    } else {
        let old = side(out, "old");
        fs::rename(out, &old).map_err(io_err(out))?;
        fs::rename(&new, out).map_err(io_err(out))?;
        sync_dir(out.parent());
        after_swap()?;
        remove_tree(&old)?;
    }
    Ok(Written::Replaced)
}

/// Swaps two directory entries in one step. `Ok(false)` when the platform
/// or filesystem cannot, and nothing happened.
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let a = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
        let b = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: both are NUL-terminated paths that live for the whole call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
            _ => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

fn sync_dir(dir: Option<&Path>) {
    let dir = dir
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The name a replaced file's new text is staged under before it is
/// renamed over the file. While it exists, the file may be behind the
/// output it goes with: a compile staged it and was interrupted before
/// renaming it into place.
pub fn staged_name(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}.tidb-gitops-new", file_name(path)))
}

/// Where the staged text is written before it is renamed to the staged
/// name; never meaningful on its own.
fn scratch_name(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}.tidb-gitops-tmp", file_name(path)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn remove_if_present(path: &Path) -> Result<(), WriteError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(WriteError::Io(path.to_path_buf(), e)),
        _ => Ok(()),
    }
}

/// Refuses to replace `path` if it is a symbolic link (renaming over it
/// would replace the link, and writing through it would write elsewhere).
pub fn may_replace_file(path: &Path) -> Result<(), WriteError> {
    match kind(path)? {
        Kind::Link => Err(link_error(path, LinkRole::File)),
        _ => Ok(()),
    }
}

/// Before a compile writes: removes a half-written scratch file and says
/// whether an earlier run left a staged file (which stays until this run
/// commits or discards it, so a kill of this run still leaves the sign).
pub fn recover_file(path: &Path) -> Result<bool, WriteError> {
    remove_if_present(&scratch_name(path))?;
    Ok(kind(&staged_name(path))? != Kind::Absent)
}

/// Makes `bytes` durable under `path`'s staged name, replacing an earlier
/// staged text in one rename; the file itself is untouched until
/// `commit_file`. The text is written to a scratch name created with
/// `O_EXCL` (after removing a leftover), so no link is ever written
/// through.
pub fn stage_file(path: &Path, bytes: &[u8]) -> Result<PathBuf, WriteError> {
    may_replace_file(path)?;
    let scratch = scratch_name(path);
    let staged = staged_name(path);
    remove_if_present(&scratch)?;
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&scratch)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&scratch);
        return Err(WriteError::Io(scratch, e));
    }
    fs::rename(&scratch, &staged).map_err(io_err(&staged))?;
    Ok(staged)
}

/// Renames a staged file over `path` and makes the rename durable.
pub fn commit_file(staged: &Path, path: &Path) -> Result<(), WriteError> {
    fs::rename(staged, path).map_err(io_err(path))?;
    sync_dir(path.parent());
    Ok(())
}

/// Removes a staged file that will not be committed (the file already
/// holds the text it would have).
pub fn discard_staged(path: &Path) -> Result<(), WriteError> {
    remove_if_present(&scratch_name(path))?;
    remove_if_present(&staged_name(path))?;
    sync_dir(path.parent());
    Ok(())
}

/// Writes a file so that a reader sees the old bytes or the new, never a
/// mix: `stage_file`, then `commit_file`.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let staged = stage_file(path, bytes)?;
    commit_file(&staged, path)
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
    // The marker first: a tree under a side name is then always empty or
    // marked, so the next run knows it may remove it.
    if let Some(marker) = files.get(MARKER) {
        let path = root.join(MARKER);
        fs::write(&path, marker).map_err(io_err(&path))?;
    }
    let dirs: std::collections::BTreeSet<&Path> = files
        .keys()
        .filter_map(|relative| Path::new(relative).parent())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    for dir in &dirs {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let entries: Vec<(&String, &String)> =
        files.iter().filter(|(k, _)| k.as_str() != MARKER).collect();
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
                let text = fs::read_to_string(entry.path()).map_err(|e| {
                    io::Error::new(e.kind(), format!("{}: {e}", entry.path().display()))
                })?;
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.insert(key, text);
            } else if kind.is_symlink() {
                return Err(io::Error::other(format!(
                    "{} is a symbolic link; an output folder holds only the files tidb-gitops writes, and it never follows a link in it (remove the link)",
                    entry.path().display()
                )));
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

    #[test]
    fn a_side_tree_is_marked_first_and_removed_marker_last() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("deploy");
        write(&out, &sample("1")).unwrap();
        // A removal killed half way: the marker is still there.
        let new = side(&out, "new");
        fs::create_dir_all(new.join("manifests/a")).unwrap();
        fs::write(new.join(MARKER), "m").unwrap();
        fs::write(new.join("manifests/a/x.yaml"), "x").unwrap();
        recover(&out).unwrap();
        assert!(!new.exists());
        // An empty one (killed right after it was created).
        fs::create_dir(&new).unwrap();
        recover(&out).unwrap();
        assert!(!new.exists());
        // remove_tree leaves the marker for last: only an empty folder or
        // one with the marker can be left by a kill.
        fs::create_dir_all(new.join("manifests/a")).unwrap();
        fs::write(new.join(MARKER), "m").unwrap();
        remove_tree(&new).unwrap();
        assert!(!new.exists());
        assert_eq!(read(&out).unwrap(), sample("1"));
    }

    #[test]
    fn a_foreign_folder_or_a_link_under_a_side_name_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("deploy");
        let new = side(&out, "new");
        fs::create_dir(&new).unwrap();
        fs::write(new.join("precious"), "data").unwrap();
        assert!(matches!(recover(&out), Err(WriteError::InTheWay(_))));
        assert!(matches!(
            write(&out, &sample("1")),
            Err(WriteError::InTheWay(_))
        ));
        assert_eq!(fs::read_to_string(new.join("precious")).unwrap(), "data");
        fs::remove_dir_all(&new).unwrap();
        #[cfg(unix)]
        {
            let elsewhere = tmp.path().join("elsewhere");
            fs::create_dir(&elsewhere).unwrap();
            fs::write(elsewhere.join(MARKER), "m").unwrap();
            std::os::unix::fs::symlink(&elsewhere, side(&out, "old")).unwrap();
            let e = write(&out, &sample("1")).unwrap_err();
            assert!(matches!(
                e,
                WriteError::Symlink {
                    role: LinkRole::SideName,
                    ..
                }
            ));
            assert!(e.to_string().contains(".deploy.tidb-gitops-old"), "{e}");
            assert!(elsewhere.join(MARKER).is_file() && !out.exists());
        }
    }

    #[test]
    fn a_staged_file_stays_until_committed_or_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("placement.lock");
        fs::write(&lock, "old\n").unwrap();
        assert!(!recover_file(&lock).unwrap());
        let staged = stage_file(&lock, b"new\n").unwrap();
        assert_eq!(staged, staged_name(&lock));
        assert_eq!(fs::read_to_string(&lock).unwrap(), "old\n");
        // A later run sees it, and staging again replaces it in one rename.
        fs::write(scratch_name(&lock), "half").unwrap();
        assert!(recover_file(&lock).unwrap());
        assert!(!scratch_name(&lock).exists() && staged.exists());
        stage_file(&lock, b"newer\n").unwrap();
        assert_eq!(fs::read_to_string(&staged).unwrap(), "newer\n");
        commit_file(&staged, &lock).unwrap();
        assert_eq!(fs::read_to_string(&lock).unwrap(), "newer\n");
        assert!(!recover_file(&lock).unwrap());
        stage_file(&lock, b"x").unwrap();
        discard_staged(&lock).unwrap();
        assert!(!staged.exists());
        assert_eq!(fs::read_to_string(&lock).unwrap(), "newer\n");
    }
}
