//! Golden cases: every folder under `golden/` is a cluster folder plus the
//! expected result of running the CLI on it.
//!
//! A case folder holds the inputs (`cluster.toml`, `inventory.toml`, and
//! optionally `placement.lock` as the previous lock), an optional `args` file
//! (the command line after `tidb-gitops`, default `place`), and `expected.txt`:
//! the exit code, stdout, stderr and the lock afterwards. Adding a case is
//! adding a folder. `UPDATE_GOLDEN=1 cargo nextest run --test golden`
//! rewrites the expected files; review the diff before committing. CI never
//! sets it.
//!
//! `golden/examples/<name>` cases are not folders of their own: they run
//! `examples/<name>`, so the shipped examples are always covered.
//!
//! A `base/` folder in a case is copied along (the cluster folder a `plan
//! --base base` case compares with), and so are `*.json` files (evidence
//! for `--observed`). `args` may chain commands with ` && `; each one's
//! exit code and output are recorded in turn.
//!
//! A command that writes an output folder (`compile`) leaves it in the
//! scratch copy as `deploy/`; the case keeps the expected tree as its own
//! `deploy/` folder, compared file by file and refreshed by the same update
//! mode.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one case in a scratch copy and renders everything it produced,
/// with the output folder it wrote, if any.
fn run_case(inputs: &Path, args: &str) -> (String, Option<Tree>) {
    let scratch = tempfile::tempdir().expect("temp dir");
    for name in ["cluster.toml", "inventory.toml", "placement.lock"] {
        let from = inputs.join(name);
        if from.exists() {
            std::fs::copy(&from, scratch.path().join(name)).expect("copy input");
        }
    }
    // A plan case keeps the cluster folder it is compared with in `base/`.
    if inputs.join("base").is_dir() {
        std::fs::create_dir(scratch.path().join("base")).expect("base dir");
        for entry in std::fs::read_dir(inputs.join("base"))
            .expect("read base")
            .flatten()
        {
            std::fs::copy(
                entry.path(),
                scratch.path().join("base").join(entry.file_name()),
            )
            .expect("copy base input");
        }
    }
    for entry in std::fs::read_dir(inputs).expect("read case").flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".json") {
            std::fs::copy(entry.path(), scratch.path().join(&name)).expect("copy evidence");
        }
    }
    let before = std::fs::read(scratch.path().join("placement.lock")).ok();
    let mut runs = String::new();
    for (i, command) in args.split(" && ").enumerate() {
        let output = Command::new(env!("CARGO_BIN_EXE_tidb-gitops"))
            .args(command.split_whitespace())
            .current_dir(scratch.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run tidb-gitops");
        if i > 0 {
            runs.push_str(&format!("$ tidb-gitops {command}\n"));
        }
        runs.push_str(&format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ));
    }
    let after = std::fs::read(scratch.path().join("placement.lock")).ok();
    let deploy = scratch.path().join("deploy");
    let tree = deploy.is_dir().then(|| read_tree(&deploy));
    let lock = match (&before, &after) {
        (_, None) => "(none)\n".to_string(),
        (Some(b), Some(a)) if a == b => "(unchanged)\n".to_string(),
        (_, Some(a)) => String::from_utf8_lossy(a).into_owned(),
    };
    let first = args.split(" && ").next().unwrap_or_default();
    let text = format!("$ tidb-gitops {first}\n{runs}--- placement.lock\n{lock}");
    (text, tree)
}

type Tree = std::collections::BTreeMap<String, Vec<u8>>;

/// Every file under `root`, by `/`-separated relative path.
fn read_tree(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                let key = rel.to_string_lossy().replace('\\', "/");
                tree.insert(key, std::fs::read(&path).expect("read file"));
            }
        }
    }
    tree
}

/// Compares an expected output tree with the actual one, file by file.
fn compare_trees(expected: &Tree, actual: &Tree) -> String {
    let mut out = String::new();
    for (path, bytes) in actual {
        match expected.get(path) {
            None => out.push_str(&format!("  deploy/{path}: not expected\n")),
            Some(e) if e != bytes => out.push_str(&format!(
                "  deploy/{path}:\n{}",
                similar_diff(&String::from_utf8_lossy(e), &String::from_utf8_lossy(bytes))
            )),
            Some(_) => {}
        }
    }
    for path in expected.keys().filter(|p| !actual.contains_key(*p)) {
        out.push_str(&format!("  deploy/{path}: missing\n"));
    }
    out
}

fn cases() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("golden")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.join("expected.txt").exists()
                    || path.join("cluster.toml").exists()
                    || path.join("args").exists()
                {
                    out.push(path);
                } else {
                    stack.push(path);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 3,
        "golden cases are missing: found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let args =
            std::fs::read_to_string(case.join("args")).unwrap_or_else(|_| "place".to_string());
        let args = args.trim();
        // A case may name the folder to run (for the shipped examples).
        let (inputs, args) = match args.strip_prefix("@") {
            Some(rest) => {
                let (folder, args) = rest.split_once(' ').unwrap_or((rest, "place"));
                (root().join(folder), args.to_string())
            }
            None => (case.clone(), args.to_string()),
        };
        let (actual, tree) = run_case(&inputs, &args);
        let expected_path = case.join("expected.txt");
        let expected_deploy = case.join("deploy");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected");
            if expected_deploy.exists() {
                std::fs::remove_dir_all(&expected_deploy).expect("remove old expected tree");
            }
            for (path, bytes) in tree.iter().flatten() {
                let target = expected_deploy.join(path);
                std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
                std::fs::write(target, bytes).expect("write expected tree");
            }
            continue;
        }
        let name = case
            .strip_prefix(root())
            .unwrap_or(case)
            .display()
            .to_string();
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{name}:\n{}", similar_diff(&expected, &actual)));
        }
        let expected_tree = expected_deploy
            .is_dir()
            .then(|| read_tree(&expected_deploy));
        let diff = compare_trees(
            &expected_tree.unwrap_or_default(),
            &tree.unwrap_or_default(),
        );
        if !diff.is_empty() {
            failures.push(format!("{name} (output folder):\n{diff}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ (UPDATE_GOLDEN=1 refreshes them; review the diff):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A small line diff, enough to see what changed.
fn similar_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  -{i:>4} {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  +{i:>4} {y}\n"));
                }
            }
        }
    }
    out
}
