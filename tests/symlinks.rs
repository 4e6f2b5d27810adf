//! Symbolic links where `compile` writes. The rules (`src/output.rs`):
//! - an output folder that is a link is refused (it is replaced as a whole,
//!   which would replace the link rather than the folder it names);
//! - a link anywhere inside the output folder is refused (it is never
//!   followed, read or written through), and so is a link under one of the
//!   side names the write uses (`.deploy.tidb-gitops-new`, `-old`);
//! - a `placement.lock` that is a link is refused when the lock would be
//!   written (renaming over it would replace the link), and read as usual
//!   when it would not;
//! - links in the folders above the output (`--out link/deploy`) are fine:
//!   the side folders are made in the same real folder as the output, so
//!   every rename stays inside one folder;
//! - a link left under the lock's scratch or staged name is replaced,
//!   never written through.
//!
//! Every refusal names the path, gives a hint, writes nothing and removes
//! nothing: the whole temporary folder (the cluster folder and the
//! "outside" folder the links point into) is compared before and after.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tree::{names, read_tree};
use tidb_gitops::generate::{Shape, generate};

const BIN: &str = env!("CARGO_BIN_EXE_tidb-gitops");

/// Everything under `root` without following links: files with their
/// bytes, folders, and links with their targets.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(entry.path()).unwrap();
                out.insert(rel, format!("link -> {}", target.display()));
            } else if kind.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(&entry.path(), &format!("{rel}/"), out);
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                out.insert(rel, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

fn shape(nodes: usize) -> Shape {
    Shape {
        racks_per_zone: 1,
        dirs_per_node: 3,
        tikv_per_node: 1,
        ..Shape::new(nodes)
    }
}

fn write_inputs(dir: &Path, nodes: usize) {
    let generated = generate(&shape(nodes));
    std::fs::write(dir.join("cluster.toml"), generated.cluster_toml).unwrap();
    std::fs::write(dir.join("inventory.toml"), generated.inventory_toml).unwrap();
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A temporary folder with a compiled cluster folder `c` (six nodes) whose
/// inputs then grow to nine nodes, so the next compile would change the
/// lock and the output, and an `outside` folder for links to point into.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let c = tmp.path().join("c");
        std::fs::create_dir(&c).unwrap();
        write_inputs(&c, 6);
        let first = run(tmp.path(), &["compile", "c"]);
        assert!(first.status.success(), "{}", stderr(&first));
        write_inputs(&c, 9);
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("dir/sub")).unwrap();
        std::fs::write(outside.join("file.txt"), "keep me\n").unwrap();
        std::fs::write(outside.join("dir/sub/data"), "keep me too\n").unwrap();
        Sandbox { tmp }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Runs `args` in the sandbox and asserts that it is refused with a
    /// message naming `path`, containing `what`, with a hint, and that
    /// nothing under the sandbox changed.
    fn assert_refused(&self, args: &[&str], path: &str, what: &str) {
        let before = snapshot(self.root());
        let output = run(self.root(), args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(path), "{args:?} names {path}: {text}");
        assert!(text.contains(what), "{args:?} says {what:?}: {text}");
        assert!(text.contains("help: "), "{args:?} gives a hint: {text}");
        assert!(
            snapshot(self.root()) == before,
            "{args:?} changed something: {text}"
        );
    }
}

#[test]
fn an_output_folder_that_is_a_link_is_refused_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    // A link to a real output folder elsewhere.
    std::fs::rename(sandbox.path("c/deploy"), sandbox.path("outside/deploy")).unwrap();
    symlink("../outside/deploy", sandbox.path("c/deploy")).unwrap();
    sandbox.assert_refused(
        &["compile", "c"],
        "c/deploy is a symbolic link (to ../outside/deploy)",
        "never writes through a link",
    );
    let output = run(sandbox.root(), &["compile", "c"]);
    assert!(
        stderr(&output).contains("help: give the real folder with --out ../outside/deploy"),
        "{}",
        stderr(&output)
    );
    // To an empty folder, and dangling.
    std::fs::remove_file(sandbox.path("c/deploy")).unwrap();
    std::fs::create_dir(sandbox.path("outside/empty")).unwrap();
    symlink("../outside/empty", sandbox.path("c/deploy")).unwrap();
    sandbox.assert_refused(&["compile", "c"], "c/deploy", "is a symbolic link");
    std::fs::remove_file(sandbox.path("c/deploy")).unwrap();
    symlink("../outside/nothing", sandbox.path("c/deploy")).unwrap();
    sandbox.assert_refused(&["compile", "c"], "c/deploy", "is a symbolic link");
    // With --out naming the link.
    sandbox.assert_refused(
        &["compile", "c", "--out", "c/deploy"],
        "c/deploy",
        "is a symbolic link",
    );
}

#[test]
fn a_link_inside_the_output_folder_is_refused_by_compile_and_check() {
    let links: [(&str, &str); 3] = [
        // A link to a file outside, next to the generated files.
        ("c/deploy/manifests/extra.yaml", "../../outside/file.txt"),
        // A link to a folder outside.
        ("c/deploy/manifests/evil", "../../outside/dir"),
        // A generated file replaced by a link to a copy of itself.
        (
            "c/deploy/kustomization.yaml",
            "../../outside/kustomization.yaml",
        ),
    ];
    for (link, target) in links {
        let sandbox = Sandbox::new();
        if link.ends_with("kustomization.yaml") {
            std::fs::copy(
                sandbox.path(link),
                sandbox.path("outside/kustomization.yaml"),
            )
            .unwrap();
            std::fs::remove_file(sandbox.path(link)).unwrap();
        }
        symlink(target, sandbox.path(link)).unwrap();
        sandbox.assert_refused(
            &["compile", "c"],
            &format!("{link} is a symbolic link (to {target}) inside the output folder"),
            "never follows a link in it",
        );
        sandbox.assert_refused(&["check", "c"], link, "is a symbolic link");
        // Removing the link, as the hint says, is enough.
        let output = run(sandbox.root(), &["compile", "c"]);
        assert!(
            stderr(&output).contains(&format!("help: remove the link (`rm {link}`)")),
            "{}",
            stderr(&output)
        );
        std::fs::remove_file(sandbox.path(link)).unwrap();
        let output = run(sandbox.root(), &["compile", "c"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(
            std::fs::read_to_string(sandbox.path("outside/file.txt")).unwrap(),
            "keep me\n"
        );
        assert_eq!(
            std::fs::read_to_string(sandbox.path("outside/dir/sub/data")).unwrap(),
            "keep me too\n"
        );
    }
}

#[test]
fn links_under_the_side_names_are_refused_and_what_they_name_is_kept() {
    for side in [".deploy.tidb-gitops-new", ".deploy.tidb-gitops-old"] {
        let sandbox = Sandbox::new();
        // A folder that even looks like an output.
        std::fs::write(sandbox.path("outside/dir/.tidb-gitops"), "x\n").unwrap();
        symlink("../outside/dir", sandbox.path(&format!("c/{side}"))).unwrap();
        sandbox.assert_refused(
            &["compile", "c"],
            &format!("c/{side} is a symbolic link (to ../outside/dir)"),
            "never through a link",
        );
    }
}

#[test]
fn a_lock_that_is_a_link_is_refused_when_it_would_be_written() {
    let sandbox = Sandbox::new();
    std::fs::rename(
        sandbox.path("c/placement.lock"),
        sandbox.path("outside/placement.lock"),
    )
    .unwrap();
    symlink(
        "../outside/placement.lock",
        sandbox.path("c/placement.lock"),
    )
    .unwrap();
    // The inputs grew: the lock would change.
    sandbox.assert_refused(
        &["compile", "c"],
        "c/placement.lock is a symbolic link (to ../outside/placement.lock)",
        "would replace the link",
    );
    sandbox.assert_refused(&["place", "c"], "c/placement.lock", "is a symbolic link");
    let output = run(sandbox.root(), &["compile", "c"]);
    assert!(
        stderr(&output).contains("help: replace the link with the file it points to"),
        "{}",
        stderr(&output)
    );
    // A dangling link: the lock would be created.
    std::fs::remove_file(sandbox.path("c/placement.lock")).unwrap();
    symlink("../outside/none.lock", sandbox.path("c/placement.lock")).unwrap();
    sandbox.assert_refused(&["compile", "c"], "c/placement.lock", "is a symbolic link");

    // When the lock does not change, it is only read: compile writes the
    // output and leaves the link and its target as they are.
    std::fs::remove_file(sandbox.path("c/placement.lock")).unwrap();
    symlink(
        "../outside/placement.lock",
        sandbox.path("c/placement.lock"),
    )
    .unwrap();
    write_inputs(&sandbox.path("c"), 6);
    let before = std::fs::read(sandbox.path("outside/placement.lock")).unwrap();
    std::fs::write(sandbox.path("c/cluster.toml"), {
        let mut text = std::fs::read_to_string(sandbox.path("c/cluster.toml")).unwrap();
        text = text.replace("[tidb]\nreplicas = 2", "[tidb]\nreplicas = 3");
        text
    })
    .unwrap();
    let output = run(sandbox.root(), &["compile", "c"]);
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("c/deploy written") && text.contains("placement.lock unchanged"),
        "{text}"
    );
    assert!(
        std::fs::symlink_metadata(sandbox.path("c/placement.lock"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(sandbox.path("outside/placement.lock")).unwrap(),
        before
    );
}

#[test]
fn links_under_the_lock_scratch_and_staged_names_are_replaced_not_written_through() {
    for name in [
        ".placement.lock.tidb-gitops-tmp",
        ".placement.lock.tidb-gitops-new",
    ] {
        let sandbox = Sandbox::new();
        symlink("../outside/file.txt", sandbox.path(&format!("c/{name}"))).unwrap();
        let output = run(sandbox.root(), &["compile", "c"]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(
            std::fs::read_to_string(sandbox.path("outside/file.txt")).unwrap(),
            "keep me\n"
        );
        assert_eq!(
            names(&sandbox.path("c")),
            ["cluster.toml", "deploy", "inventory.toml", "placement.lock"]
        );
        assert!(
            std::fs::symlink_metadata(sandbox.path("c/placement.lock"))
                .unwrap()
                .is_file()
        );
    }
}

/// `--out link/deploy` where `link` names a real folder: the side folders
/// are made beside the output in the real folder (`link/.deploy...`
/// resolves there), so the swap is as atomic as without the link, and the
/// bytes are the same as with the real path.
#[test]
fn an_output_under_a_linked_parent_is_written_in_the_real_folder() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path("real")).unwrap();
    symlink("real", sandbox.path("link")).unwrap();
    let via_link = run(sandbox.root(), &["compile", "c", "--out", "link/deploy"]);
    assert!(via_link.status.success(), "{}", stderr(&via_link));
    let first = read_tree(&sandbox.path("real/deploy")).unwrap();
    assert_eq!(names(&sandbox.path("real")), ["deploy"]);

    // The same bytes as with the real path (in a copy of the folder).
    let copy = sandbox.path("copy");
    std::fs::create_dir(&copy).unwrap();
    for name in ["cluster.toml", "inventory.toml", "placement.lock"] {
        std::fs::copy(sandbox.path("c").join(name), copy.join(name)).unwrap();
    }
    std::fs::create_dir(sandbox.path("real2")).unwrap();
    let direct = run(
        sandbox.root(),
        &["compile", "copy", "--out", "real2/deploy"],
    );
    assert!(direct.status.success(), "{}", stderr(&direct));
    assert!(read_tree(&sandbox.path("real2/deploy")).unwrap() == first);

    // A change through the link replaces the folder and leaves nothing else.
    let cluster = sandbox.path("c/cluster.toml");
    let text = std::fs::read_to_string(&cluster).unwrap();
    std::fs::write(
        &cluster,
        text.replace("[tidb]\nreplicas = 2", "[tidb]\nreplicas = 3"),
    )
    .unwrap();
    let again = run(sandbox.root(), &["compile", "c", "--out", "link/deploy"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(read_tree(&sandbox.path("real/deploy")).unwrap() != first);
    assert_eq!(names(&sandbox.path("real")), ["deploy"]);
    assert!(
        std::fs::symlink_metadata(sandbox.path("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
