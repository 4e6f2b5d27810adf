//! The same inputs give the same bytes whatever the machine: `compile`
//! (the whole output folder and `placement.lock`), `plan --format json` and
//! `diff --format json` run by the real binary under different HOME
//! (unset, empty, full of unrelated configuration), locale, time zone,
//! working directory and spelling of the path, absolute location of the
//! cluster folder, thread count, order in which the cluster folder's files
//! and a previous output's files were created (with stray files in it),
//! and order of `--observed` files. Each variation runs in a fresh copy and
//! is compared with a reference run byte for byte.
//!
//! Cases (one test each): a day-2 step with two evidence files (a failover
//! whose Tombstone store is marked gone), a cluster with backups, log
//! backup and a point-in-time restore, and a generated cluster grown from
//! 48 to 51 nodes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Tree, copy_tree, first_difference, read_tree};
use tidb_gitops::generate::{Shape, generate};

const BIN: &str = env!("CARGO_BIN_EXE_tidb-gitops");

/// A PD member list for the day-2 case: pd-1 (gone in its lock) is no
/// longer a member.
const MEMBERS: &str = r#"{
  "header": { "cluster_id": 1 },
  "members": [
    { "name": "pd-0", "member_id": 1000 },
    { "name": "pd-2", "member_id": 1002 },
    { "name": "pd-3", "member_id": 1003 }
  ],
  "leader": { "name": "pd-0" }
}
"#;

/// A cluster folder to compile: its files (name, bytes, in creation
/// order), the `--observed` files among them, and the base of `plan` and
/// `diff` (a folder in it).
struct Case {
    name: &'static str,
    files: Vec<(String, Vec<u8>)>,
    observed: Vec<&'static str>,
    base: Option<&'static str>,
    /// Run `plan --format json` too.
    plan: bool,
}

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(rel)
}

/// The input files of a folder (not its output), by relative path.
fn inputs_of(dir: &Path, prefix: &str, names: &[&str]) -> Vec<(String, Vec<u8>)> {
    names
        .iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| (format!("{prefix}{n}"), std::fs::read(dir.join(n)).unwrap()))
        .collect()
}

const INPUTS: [&str; 3] = ["cluster.toml", "inventory.toml", "placement.lock"];

fn day2_case() -> Case {
    let day2 = golden("day2/09-failover-tombstone-reclaim-waits-for-node");
    let mut files = inputs_of(&day2, "", &[&INPUTS[..], &["stores.json"]].concat());
    files.push(("members.json".into(), MEMBERS.as_bytes().to_vec()));
    files.extend(inputs_of(&day2.join("base"), "base/", &INPUTS));
    Case {
        name: "day-2 failover with two evidence files",
        files,
        observed: vec!["stores.json", "members.json"],
        base: Some("base"),
        plan: true,
    }
}

fn backup_case() -> Case {
    let backup = golden("compile/restore-point-in-time");
    let mut files = inputs_of(&backup, "", &INPUTS);
    files.extend(inputs_of(&golden("compile/backup-s3"), "base/", &INPUTS));
    Case {
        name: "backup, log backup and restore",
        files,
        observed: vec![],
        base: Some("base"),
        plan: true,
    }
}

/// 48 generated nodes compiled (the base, with its lock), then grown to 51:
/// nine TiKV instances are placed.
fn generated_case() -> Case {
    let shape = |nodes| Shape {
        racks_per_zone: 2,
        ..Shape::new(nodes)
    };
    let (new, old) = (generate(&shape(51)), generate(&shape(48)));
    let options = tidb_gitops::compile::Options {
        strict_config: false,
        repo_path: "deploy".into(),
        observed: Vec::new(),
    };
    let texts = tidb_gitops::load::Texts {
        cluster: &old.cluster_toml,
        inventory: &old.inventory_toml,
        lock: None,
    };
    let lock = match tidb_gitops::compile::compile(texts, &options) {
        Ok(compiled) => compiled.lock.render(),
        Err(_) => panic!("the base compiles"),
    };
    Case {
        name: "generated 51 nodes",
        files: vec![
            ("cluster.toml".into(), new.cluster_toml.into_bytes()),
            ("inventory.toml".into(), new.inventory_toml.into_bytes()),
            ("placement.lock".into(), lock.clone().into_bytes()),
            ("base/cluster.toml".into(), old.cluster_toml.into_bytes()),
            (
                "base/inventory.toml".into(),
                old.inventory_toml.into_bytes(),
            ),
            ("base/placement.lock".into(), lock.into_bytes()),
        ],
        observed: vec![],
        base: Some("base"),
        // `diff --format json` holds the plan; one run less per variation.
        plan: false,
    }
}

/// Where the process runs and how it names the cluster folder.
#[derive(Clone, Copy, Debug)]
enum Cwd {
    /// In the cluster folder, naming it `.`.
    Inside,
    /// In `/`, with absolute paths.
    Root,
    /// In a sibling folder, with `../name` paths.
    Sibling,
}

/// What is in the output folder before the compile.
#[derive(Clone, Copy, Debug)]
enum Previous {
    None,
    /// The reference output, its files created in reverse order.
    SameReversed,
    /// The reference output in reverse order plus stray files.
    SameWithStrays,
    /// The base's output (compiled beforehand), in reverse order: the
    /// compile replaces it, hard-linking the unchanged files.
    BaseReversed,
}

#[derive(Clone, Debug)]
struct Variant {
    label: String,
    /// Environment variables set (None: removed) on top of the baseline:
    /// a cleared environment with PATH, an empty HOME, LANG=C, TZ=UTC.
    env: Vec<(&'static str, Option<String>)>,
    /// Keep the test runner's whole environment instead of the baseline.
    inherit: bool,
    cwd: Cwd,
    /// A long, deep location and folder name instead of a short one.
    long_path: bool,
    /// Create the cluster folder's files in reverse order.
    reverse_inputs: bool,
    reverse_observed: bool,
    previous: Previous,
}

impl Variant {
    fn new(label: &str) -> Variant {
        Variant {
            label: label.into(),
            env: Vec::new(),
            inherit: false,
            cwd: Cwd::Inside,
            long_path: false,
            reverse_inputs: false,
            reverse_observed: false,
            previous: Previous::None,
        }
    }

    fn env(mut self, key: &'static str, value: Option<&str>) -> Variant {
        self.env.push((key, value.map(str::to_string)));
        self
    }
}

fn variants(junk_home: &Path, empty_home: &Path) -> Vec<Variant> {
    let mut all = vec![
        Variant::new("reference"),
        Variant::new("HOME unset").env("HOME", None),
        Variant::new("HOME empty").env("HOME", Some(&empty_home.display().to_string())),
        Variant::new("HOME with ~/.aws, ~/.config, ~/.kube, ~/.gitconfig and AWS variables")
            .env("HOME", Some(&junk_home.display().to_string()))
            .env("AWS_PROFILE", Some("junk"))
            .env("AWS_REGION", Some("ap-southeast-7"))
            .env(
                "XDG_CONFIG_HOME",
                Some(&junk_home.join(".config").display().to_string()),
            ),
        Variant {
            inherit: true,
            ..Variant::new("the test runner's environment")
        },
    ];
    // C and UTC are the baseline.
    for locale in ["C.UTF-8", "tr_TR.UTF-8", "de_DE.UTF-8"] {
        all.push(
            Variant::new(&format!("LANG and LC_ALL {locale}"))
                .env("LANG", Some(locale))
                .env("LC_ALL", Some(locale)),
        );
    }
    for tz in ["Pacific/Chatham", "Garbage/Nowhere-99"] {
        all.push(Variant::new(&format!("TZ {tz}")).env("TZ", Some(tz)));
    }
    all.push(Variant {
        cwd: Cwd::Root,
        ..Variant::new("run from / with an absolute path")
    });
    all.push(Variant {
        cwd: Cwd::Sibling,
        ..Variant::new("run from a sibling with ../name")
    });
    all.push(Variant {
        long_path: true,
        cwd: Cwd::Root,
        ..Variant::new("a longer, deeper absolute location")
    });
    for threads in ["1", "2", "7", "64"] {
        all.push(
            Variant::new(&format!("TIDB_GITOPS_THREADS={threads}"))
                .env("TIDB_GITOPS_THREADS", Some(threads)),
        );
    }
    all.push(Variant {
        reverse_inputs: true,
        ..Variant::new("cluster folder files created in reverse order")
    });
    all.push(Variant {
        reverse_observed: true,
        ..Variant::new("--observed files in reverse order")
    });
    all.push(Variant {
        previous: Previous::SameReversed,
        ..Variant::new("previous output, files created in reverse order")
    });
    all.push(Variant {
        previous: Previous::SameWithStrays,
        ..Variant::new("previous output with stray files")
    });
    all.push(Variant {
        previous: Previous::BaseReversed,
        reverse_inputs: true,
        ..Variant::new("the base's output as previous output, in reverse order")
    });
    all
}

/// Everything a run produced that must not depend on the variation (the
/// standard output of `plan` and `diff` ends with their exit code).
#[derive(Clone, PartialEq, Eq)]
struct Result {
    output: Tree,
    lock: Vec<u8>,
    plan: Vec<u8>,
    diff: Vec<u8>,
}

/// Where two results differ, or nothing when they are identical.
fn differences(reference: &Result, other: &Result) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = first_difference(&reference.output, &other.output) {
        out.push(format!("output folder: {d}"));
    }
    let as_tree = |name: &str, bytes: &[u8]| Tree::from([(name.to_string(), bytes.to_vec())]);
    for (name, a, b) in [
        ("placement.lock", &reference.lock, &other.lock),
        ("plan --format json", &reference.plan, &other.plan),
        ("diff --format json", &reference.diff, &other.diff),
    ] {
        if let Some(d) = first_difference(&as_tree(name, a), &as_tree(name, b)) {
            out.push(d);
        }
    }
    out
}

struct Scratch {
    tmp: tempfile::TempDir,
    empty_home: PathBuf,
    junk_home: PathBuf,
    /// Reference outputs, per case, for the `Previous` variations.
    previous: BTreeMap<&'static str, (Tree, Tree)>,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let empty_home = tmp.path().join("home-empty");
        std::fs::create_dir(&empty_home).unwrap();
        let junk_home = tmp.path().join("home-junk");
        for (rel, text) in [
            (
                ".aws/credentials",
                "[default]\naws_access_key_id = AKIAJUNKJUNKJUNK\naws_secret_access_key = junk\n[junk]\naws_access_key_id = AKIAOTHER\n",
            ),
            (
                ".aws/config",
                "[default]\nregion = eu-north-9\n[profile junk]\nregion = us-nowhere-1\ns3 =\n  endpoint_url = http://127.0.0.1:1\n",
            ),
            (
                ".config/tidb-gitops/config.toml",
                "threads = 3\n[cluster]\nname = \"junk\"\n",
            ),
            (".config/git/config", "[core]\n\tautocrlf = true\n"),
            (
                ".gitconfig",
                "[core]\n\tautocrlf = true\n[user]\n\tname = junk\n",
            ),
            (
                ".kube/config",
                "apiVersion: v1\nkind: Config\ncurrent-context: junk\n",
            ),
            (".tidb-gitops", "junk\n"),
        ] {
            let path = junk_home.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Scratch {
            tmp,
            empty_home,
            junk_home,
            previous: BTreeMap::new(),
        }
    }
}

fn run(
    scratch: &Scratch,
    index: usize,
    case: &Case,
    variant: &Variant,
) -> std::result::Result<Result, String> {
    let (location, name) = if variant.long_path {
        (
            format!("v{index}/a-much-longer-location/with/several/levels/of/folders"),
            "a-cluster-folder-with-a-longer-name",
        )
    } else {
        (format!("v{index}"), "x")
    };
    let parent = scratch.tmp.path().join(location);
    let dir = parent.join(name);
    let sibling = parent.join("sibling");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&sibling).unwrap();
    let mut files: Vec<&(String, Vec<u8>)> = case.files.iter().collect();
    if variant.reverse_inputs {
        files.reverse();
    }
    for (rel, bytes) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let previous = scratch.previous.get(case.name);
    match (variant.previous, previous) {
        (Previous::None, _) => {}
        (Previous::SameReversed | Previous::SameWithStrays, Some((same, _))) => {
            write_tree(&dir.join("deploy"), same, true);
            if matches!(variant.previous, Previous::SameWithStrays) {
                std::fs::write(dir.join("deploy/README.md"), "notes\n").unwrap();
                std::fs::create_dir_all(dir.join("deploy/scratch")).unwrap();
                std::fs::write(dir.join("deploy/scratch/.keep"), "").unwrap();
                std::fs::write(dir.join("deploy/.DS_Store"), [0u8, 1, 2]).unwrap();
            }
        }
        (Previous::BaseReversed, Some((_, base))) => write_tree(&dir.join("deploy"), base, true),
        (_, None) => panic!("the reference runs first"),
    }

    // How this run names the cluster folder and the files in it.
    let (cwd, folder): (PathBuf, String) = match variant.cwd {
        Cwd::Inside => (dir.clone(), ".".into()),
        Cwd::Root => ("/".into(), dir.display().to_string()),
        Cwd::Sibling => (sibling, format!("../{name}")),
    };
    let inside = |rel: &str| {
        if folder == "." {
            rel.to_string()
        } else {
            format!("{folder}/{rel}")
        }
    };
    let mut observed: Vec<String> = Vec::new();
    let mut order = case.observed.clone();
    if variant.reverse_observed {
        order.reverse();
    }
    for file in order {
        observed.push("--observed".into());
        observed.push(inside(file));
    }
    let command = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command.args(args).args(&observed).current_dir(&cwd);
        if !variant.inherit {
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &scratch.empty_home)
                .env("LANG", "C")
                .env("TZ", "UTC");
        }
        for (key, value) in &variant.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let output = command.output().unwrap();
        // `plan` and `diff` exit 1 on a change they refuse; the code is
        // compared along with the bytes.
        if let Some(code @ (0 | 1)) = output.status.code() {
            let mut bytes = output.stdout;
            bytes.extend_from_slice(format!("\nexit {code}\n").as_bytes());
            Ok(bytes)
        } else {
            Err(format!(
                "{args:?} in {}: exit {:?}: {}",
                cwd.display(),
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    let compiled = command(&["compile", &folder])?;
    if !compiled.ends_with(b"\nexit 0\n") {
        return Err(format!("compile in {}: exit 1", cwd.display()));
    }
    let base = case.base.map(inside);
    let mut plan_args = vec!["plan", &folder, "--format", "json"];
    let mut diff_args = vec!["diff", &folder, "--format", "json"];
    if let Some(base) = &base {
        plan_args.extend(["--base", base.as_str()]);
        diff_args.extend(["--base", base.as_str()]);
    }
    let plan = if case.plan {
        command(&plan_args)?
    } else {
        Vec::new()
    };
    let diff = command(&diff_args)?;
    Ok(Result {
        output: read_tree(&dir.join("deploy")).ok_or("no output folder")?,
        lock: std::fs::read(dir.join("placement.lock")).map_err(|e| e.to_string())?,
        plan,
        diff,
    })
}

/// Writes a tree (as read by `read_tree`) under `root`, in reverse order
/// when asked.
fn write_tree(root: &Path, tree: &Tree, reverse: bool) {
    let mut entries: Vec<(&String, &Vec<u8>)> = tree.iter().collect();
    if reverse {
        entries.reverse();
    }
    for (rel, bytes) in entries {
        let path = root.join(rel.trim_end_matches('/'));
        if rel.ends_with('/') {
            std::fs::create_dir_all(&path).unwrap();
        } else {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

/// The base's output, compiled on its own.
fn base_output(scratch: &Scratch, case: &Case) -> Tree {
    let dir = scratch.tmp.path().join("base-outputs").join(case.name);
    std::fs::create_dir_all(&dir).unwrap();
    let base = case.base.expect("a base");
    for (rel, bytes) in &case.files {
        if let Some(rel) = rel.strip_prefix(&format!("{base}/")) {
            std::fs::write(dir.join(rel), bytes).unwrap();
        }
    }
    let output = Command::new(BIN).arg("compile").arg(&dir).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_tree(&dir.join("deploy")).unwrap()
}

/// Runs the variations of `case` that `pick` selects (by position after
/// the reference) and compares each with the reference run.
fn same_bytes_under_every_variation(case: Case, pick: impl Fn(usize) -> bool) {
    let mut scratch = Scratch::new();
    let variants: Vec<Variant> = variants(&scratch.junk_home, &scratch.empty_home)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || pick(*i))
        .map(|(_, v)| v)
        .collect();
    let reference = run(&scratch, 0, &case, &variants[0])
        .unwrap_or_else(|e| panic!("{}: reference: {e}", case.name));
    assert!(reference.output.len() > 10, "{}: an output", case.name);
    assert!(!reference.diff.is_empty());
    assert_eq!(reference.plan.is_empty(), !case.plan);
    scratch.previous.insert(
        case.name,
        (reference.output.clone(), base_output(&scratch, &case)),
    );
    let mut failures = Vec::new();
    for (index, variant) in variants.iter().enumerate().skip(1) {
        match run(&scratch, index, &case, variant) {
            Ok(result) => {
                for d in differences(&reference, &result) {
                    failures.push(format!("{} / {}: {d}", case.name, variant.label));
                }
            }
            Err(e) => failures.push(format!("{} / {}: {e}", case.name, variant.label)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_day2_step_with_evidence_gives_the_same_bytes_under_every_variation() {
    same_bytes_under_every_variation(day2_case(), |_| true);
}

#[test]
fn backups_and_a_restore_give_the_same_bytes_under_every_variation() {
    same_bytes_under_every_variation(backup_case(), |_| true);
}

// The larger case in two halves, which nextest runs side by side.
#[test]
fn a_generated_cluster_gives_the_same_bytes_under_every_variation_odd() {
    same_bytes_under_every_variation(generated_case(), |i| i % 2 == 1);
}

#[test]
fn a_generated_cluster_gives_the_same_bytes_under_every_variation_even() {
    same_bytes_under_every_variation(generated_case(), |i| i % 2 == 0);
}

/// The comparison sees a one-byte difference in any part of a result, a
/// missing file and an extra folder.
#[test]
fn the_comparison_detects_a_single_byte() {
    let tree = Tree::from([
        ("a/".to_string(), Vec::new()),
        ("a/b.yaml".to_string(), b"x: 1\n".to_vec()),
        (".tidb-gitops".to_string(), b"m\n".to_vec()),
    ]);
    let reference = Result {
        output: tree.clone(),
        lock: b"lock\n".to_vec(),
        plan: b"{}\n".to_vec(),
        diff: b"{}\n".to_vec(),
    };
    assert!(differences(&reference, &reference.clone()).is_empty());
    let mut flipped = reference.clone();
    flipped.output.get_mut("a/b.yaml").unwrap()[3] = b'2';
    assert_eq!(
        differences(&reference, &flipped),
        ["output folder: a/b.yaml: bytes differ at offset 3 (lengths 5 and 5)"]
    );
    let mut missing = reference.clone();
    missing.output.remove(".tidb-gitops");
    assert_eq!(differences(&reference, &missing).len(), 1);
    let mut extra = reference.clone();
    extra.output.insert("c/".into(), Vec::new());
    assert_eq!(differences(&reference, &extra).len(), 1);
    for field in 0..3 {
        let mut other = reference.clone();
        let bytes = match field {
            0 => &mut other.lock,
            1 => &mut other.plan,
            _ => &mut other.diff,
        };
        bytes[0] ^= 1;
        assert_eq!(differences(&reference, &other).len(), 1, "field {field}");
    }
    // And a real output folder read from disk, with one byte changed.
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&golden("compile/backup-s3/deploy"), tmp.path(), false);
    let before = read_tree(tmp.path()).unwrap();
    let file = tmp.path().join("kustomization.yaml");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();
    let after = read_tree(tmp.path()).unwrap();
    assert!(
        first_difference(&before, &after).is_some_and(|d| d.starts_with("kustomization.yaml")),
        "{:?}",
        first_difference(&before, &after)
    );
}
