//! Folder trees as maps, for the tests that compare whole output folders
//! byte for byte (`faults.rs`, `symlinks.rs`, `determinism.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Every file under a folder, by `/`-separated relative path, with its
/// bytes. Folders appear as `path/` with no bytes, so an empty folder
/// counts too. A symbolic link is a test failure: no output folder may
/// hold one.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// The tree under `root`, or `None` when nothing is there.
pub fn read_tree(root: &Path) -> Option<Tree> {
    let meta = fs::symlink_metadata(root).ok()?;
    assert!(meta.is_dir(), "{} is not a folder", root.display());
    let mut tree = Tree::new();
    walk(root, "", &mut tree);
    Some(tree)
}

fn walk(dir: &Path, prefix: &str, tree: &mut Tree) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().unwrap();
        let rel = format!("{prefix}{name}");
        if kind.is_dir() {
            tree.insert(format!("{rel}/"), Vec::new());
            walk(&entry.path(), &format!("{rel}/"), tree);
        } else if kind.is_file() {
            tree.insert(rel, fs::read(entry.path()).unwrap());
        } else {
            panic!("{} is neither a file nor a folder", entry.path().display());
        }
    }
}

/// Where two trees first differ (a path only in one, or different bytes),
/// or `None` when they are identical.
pub fn first_difference(a: &Tree, b: &Tree) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let at = x
                    .iter()
                    .zip(y)
                    .position(|(p, q)| p != q)
                    .unwrap_or(x.len().min(y.len()));
                return Some(format!(
                    "{key}: bytes differ at offset {at} (lengths {} and {})",
                    x.len(),
                    y.len()
                ));
            }
            (Some(_), None) => return Some(format!("{key}: only in the first")),
            (None, _) => return Some(format!("{key}: only in the second")),
        }
    }
    None
}

/// Copies the files and folders under `from` to `to` (created), in name
/// order unless `reverse`.
pub fn copy_tree(from: &Path, to: &Path, reverse: bool) {
    fs::create_dir_all(to).unwrap();
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(from).unwrap().map(Result::unwrap).collect();
    entries.sort_by_key(|e| e.file_name());
    if reverse {
        entries.reverse();
    }
    for entry in entries {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, reverse);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The names directly in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
