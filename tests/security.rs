//! The one `hostPath` the compiler may write (docs/security.md): a reclaim
//! Job's, of type `Directory`, on exactly the directory its lock entry
//! retires (`gone`) on that node; never `/`, never a parent, never a
//! directory another instance of the lock still holds or sits in. Every
//! object of every compiled golden output is checked, and hand-made bad
//! objects must be refused by the same check.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tidb_gitops::lock::{Lock, State};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The golden output folders: every folder under golden/ that holds the
/// `.tidb-gitops` marker `compile` writes.
fn output_folders() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("golden")];
    while let Some(dir) = stack.pop() {
        if dir.join(".tidb-gitops").is_file() {
            out.push(dir.clone());
        }
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            if entry.file_type().expect("file type").is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The lock a golden case ends with: the last `--- placement.lock` section
/// of its expected.txt, or the input placement.lock when the command leaves
/// it as it was.
fn case_lock(case: &Path) -> Lock {
    let expected = std::fs::read_to_string(case.join("expected.txt")).expect("expected.txt");
    let after = expected.rfind("--- placement.lock\n").map(|at| {
        let rest = &expected[at + "--- placement.lock\n".len()..];
        let end = rest.find("\n$ ").map_or(rest.len(), |i| i + 1);
        rest[..end].to_string()
    });
    let text = match after {
        Some(text) if text.trim() != "(unchanged)" => text,
        _ => {
            // A case whose args start with `@folder` takes its inputs from
            // that folder of the project (the shipped examples).
            let args = std::fs::read_to_string(case.join("args")).unwrap_or_default();
            let inputs = match args.split_whitespace().next() {
                Some(word) if word.starts_with('@') => root().join(&word[1..]),
                _ => case.to_path_buf(),
            };
            std::fs::read_to_string(inputs.join("placement.lock")).expect("placement.lock")
        }
    };
    tidb_gitops::lock::parse(&text)
        .unwrap_or_else(|d| panic!("{}: lock does not parse: {d:?}", case.display()))
}

/// Every `hostPath` value anywhere in an object (pod templates, CronJob job
/// templates, inline volumes alike).
fn host_paths<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Object(m) => {
            if let Some(p) = m.get("hostPath") {
                out.push(p);
            }
            m.values().for_each(|v| host_paths(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| host_paths(v, out)),
        _ => {}
    }
}

/// An absolute path with no empty, `.` or `..` component and no trailing
/// slash, other than `/` itself.
fn normalised_below_root(path: &str) -> bool {
    path.len() > 1
        && path.starts_with('/')
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// `inner` is `outer` or lies below it.
fn within(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Checks one object against the lock of its output: `Ok(false)` when it
/// has no `hostPath`, `Ok(true)` for a reclaim Job whose only `hostPath` is
/// exactly its instance's retired directory, an error saying why otherwise.
fn check_host_path(doc: &Value, lock: &Lock) -> Result<bool, String> {
    let mut found = Vec::new();
    host_paths(doc, &mut found);
    if found.is_empty() {
        return Ok(false);
    }
    let labels = &doc["metadata"]["labels"];
    if doc["kind"] != "Job" || labels["app.kubernetes.io/component"] != "reclaim" {
        return Err(format!(
            "hostPath in a {} that is no reclaim Job",
            doc["kind"]
        ));
    }
    let target = labels["tidb-gitops.io/reclaim"]
        .as_str()
        .ok_or("reclaim Job without its tidb-gitops.io/reclaim label")?;
    if labels["tidb-gitops.io/target"] != target {
        return Err("reclaim and target labels differ".into());
    }
    if found.len() != 1 {
        return Err(format!("{} hostPaths, one allowed", found.len()));
    }
    let spec = &doc["spec"]["template"]["spec"];
    let volume = spec["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v.get("hostPath").is_some()))
        .ok_or("the hostPath is not a volume of the Job's pod")?;
    let source = &volume["hostPath"];
    if source["type"] != "Directory" {
        return Err(format!(
            "hostPath type {} (must be Directory: never created)",
            source["type"]
        ));
    }
    let path = source["path"].as_str().ok_or("hostPath without a path")?;
    if !normalised_below_root(path) {
        return Err(format!(
            "hostPath {path:?} is not an absolute, normalised path below /"
        ));
    }
    let containers = spec["containers"].as_array().map_or(0, Vec::len);
    if containers != 1 || spec.get("initContainers").is_some() {
        return Err("a reclaim pod runs exactly one container".into());
    }
    let container = &spec["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["name"] == name))
            .and_then(|e| e["value"].as_str())
            .unwrap_or_default()
    };
    if env("HOST_PATH") != path {
        return Err(format!(
            "HOST_PATH {:?} is not the hostPath {path:?}",
            env("HOST_PATH")
        ));
    }
    let node = spec["nodeSelector"]["kubernetes.io/hostname"]
        .as_str()
        .ok_or("reclaim Job not pinned to a node")?;
    if env("NODE_NAME") != node {
        return Err(format!(
            "NODE_NAME {:?} is not the node {node:?}",
            env("NODE_NAME")
        ));
    }
    if !env("OWNER").ends_with(&format!(" instance={target}")) {
        return Err(format!(
            "owner marker {:?} does not name {target}",
            env("OWNER")
        ));
    }
    let mounted = container["volumeMounts"].as_array().is_some_and(|m| {
        m.iter()
            .any(|m| m["name"] == volume["name"] && m["mountPath"] == env("RECLAIM_DIR"))
    });
    if !mounted {
        return Err("the hostPath is not mounted at RECLAIM_DIR".into());
    }
    // The lock: the target is gone from exactly that directory of that
    // node, and no other instance holds it, a directory inside it, or one
    // around it.
    let entry = lock
        .entries
        .iter()
        .find(|e| e.id.to_string() == target)
        .ok_or_else(|| format!("{target} is not in the lock"))?;
    if entry.state != State::Gone {
        return Err(format!(
            "{target} is {} in the lock, not gone",
            entry.state.as_str()
        ));
    }
    if entry.node.0 != node || entry.path.0 != path {
        return Err(format!(
            "hostPath {node}:{path} is not {target}'s directory {}:{}",
            entry.node.0, entry.path.0
        ));
    }
    if let Some(other) = lock.entries.iter().find(|e| {
        e.id != entry.id
            && e.node.0 == node
            && e.state != State::Gone
            && (within(&e.path.0, path) || within(path, &e.path.0))
    }) {
        return Err(format!(
            "{path} overlaps {}'s directory {}",
            other.id, other.path.0
        ));
    }
    Ok(true)
}

#[test]
fn every_golden_host_path_is_a_reclaim_of_exactly_its_retired_directory() {
    let mut objects = 0;
    let mut reclaims = Vec::new();
    let folders = output_folders();
    assert!(folders.len() >= 10, "{folders:?}");
    for deploy in folders {
        let case = deploy.parent().expect("case folder");
        let lock = case_lock(case);
        for file in yaml_files(&deploy) {
            let text = std::fs::read_to_string(&file).expect("read");
            for doc in tidb_gitops::yaml::parse(&text).expect("yaml") {
                objects += 1;
                match check_host_path(&doc, &lock) {
                    Ok(true) => reclaims.push(file.clone()),
                    Ok(false) => {}
                    Err(why) => panic!("{}: {why}", file.display()),
                }
            }
        }
    }
    assert!(objects > 500, "{objects} objects");
    // The day-2 goldens hold a PD and a TiKV reclaim.
    assert!(reclaims.len() >= 3, "{reclaims:?}");
}

/// A reclaim Job from the goldens and the lock of its case.
fn a_reclaim() -> (Value, Lock) {
    let case = root().join("golden/day2/09-failover-tombstone-reclaim-waits-for-node");
    let dir = case.join("deploy/manifests/30000-reclaim");
    let file = yaml_files(&dir)
        .into_iter()
        .find(|f| f.to_string_lossy().contains("reclaim-tikv-1"))
        .expect("the tikv-1 reclaim Job");
    let text = std::fs::read_to_string(file).unwrap();
    let doc = tidb_gitops::yaml::parse(&text).unwrap().remove(0);
    (doc, case_lock(&case))
}

fn host_source(doc: &mut Value) -> &mut Value {
    let volumes = doc["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .unwrap();
    let volume = volumes
        .iter_mut()
        .find(|v| v.get("hostPath").is_some())
        .unwrap();
    &mut volume["hostPath"]
}

fn set_env(doc: &mut Value, name: &str, value: &str) {
    let env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    let var = env.iter_mut().find(|e| e["name"] == name).unwrap();
    var["value"] = json!(value);
}

/// Moves the hostPath and the Job's HOST_PATH together.
fn set_path(doc: &mut Value, path: &str) {
    host_source(doc)["path"] = json!(path);
    set_env(doc, "HOST_PATH", path);
}

#[test]
fn the_check_refuses_wider_moved_or_misplaced_host_paths() {
    let (good, lock) = a_reclaim();
    assert_eq!(check_host_path(&good, &lock), Ok(true));
    assert_eq!(
        good["spec"]["template"]["spec"]["volumes"][2]["hostPath"]["path"],
        "/mnt/nvme0"
    );

    // Each bad variant, and what the refusal must name (so a variant is
    // refused for its own fault, not an earlier one).
    type Edit = fn(&mut Value);
    let bad: Vec<(&str, &str, Edit)> = vec![
        ("the root", "normalised path below /", |d| set_path(d, "/")),
        // Widened consistently (volume and HOST_PATH): only the lock tells.
        (
            "the parent",
            "is not tikv-1's directory node-b1:/mnt/nvme0",
            |d| set_path(d, "/mnt"),
        ),
        ("another directory", "is not tikv-1's directory", |d| {
            set_path(d, "/mnt/nvme1")
        }),
        ("a trailing slash", "normalised path below /", |d| {
            set_path(d, "/mnt/nvme0/")
        }),
        ("a dot-dot", "normalised path below /", |d| {
            set_path(d, "/mnt/nvme0/..")
        }),
        ("a relative path", "normalised path below /", |d| {
            set_path(d, "mnt/nvme0")
        }),
        ("no type", "must be Directory", |d| {
            host_source(d).as_object_mut().unwrap().remove("type");
        }),
        ("DirectoryOrCreate", "must be Directory", |d| {
            host_source(d)["type"] = json!("DirectoryOrCreate")
        }),
        (
            "HOST_PATH differing from the volume",
            "is not the hostPath",
            |d| set_env(d, "HOST_PATH", "/mnt"),
        ),
        ("another node", "is not tikv-1's directory", |d| {
            d["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"] =
                json!("node-a1");
            set_env(d, "NODE_NAME", "node-a1");
        }),
        (
            "NODE_NAME differing from the node",
            "is not the node",
            |d| set_env(d, "NODE_NAME", "node-a1"),
        ),
        ("an instance still up", "tikv-0 is up in the lock", |d| {
            d["metadata"]["labels"]["tidb-gitops.io/reclaim"] = json!("tikv-0");
            d["metadata"]["labels"]["tidb-gitops.io/target"] = json!("tikv-0");
            set_env(
                d,
                "OWNER",
                "tidb-gitops cluster=tidb-prod/prod instance=tikv-0",
            );
        }),
        (
            "an owner marker of another instance",
            "does not name tikv-1",
            |d| {
                set_env(
                    d,
                    "OWNER",
                    "tidb-gitops cluster=tidb-prod/prod instance=tikv-0",
                )
            },
        ),
        ("a second hostPath", "2 hostPaths", |d| {
            d["spec"]["template"]["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(
                    json!({ "name": "more", "hostPath": { "path": "/var", "type": "Directory" } }),
                );
        }),
        (
            "the hostPath mounted elsewhere",
            "not mounted at RECLAIM_DIR",
            |d| set_env(d, "RECLAIM_DIR", "/elsewhere"),
        ),
        ("a Job that is not a reclaim", "no reclaim Job", |d| {
            d["metadata"]["labels"]["app.kubernetes.io/component"] = json!("tikv-gate");
        }),
        ("a StatefulSet", "no reclaim Job", |d| {
            d["kind"] = json!("StatefulSet")
        }),
        ("an init container", "exactly one container", |d| {
            d["spec"]["template"]["spec"]["initContainers"] = json!([{ "name": "x" }]);
        }),
    ];
    for (what, expect, edit) in bad {
        let mut doc = good.clone();
        edit(&mut doc);
        match check_host_path(&doc, &lock) {
            Err(why) => assert!(
                why.contains(expect),
                "{what}: refused for {why:?}, not {expect:?}"
            ),
            Ok(_) => panic!("a reclaim Job with {what} passed the check"),
        }
    }

    // A lock where another live instance sits inside the retired directory.
    let mut nested = lock.clone();
    let mut squatter = nested
        .entries
        .iter()
        .find(|e| e.state == State::Up)
        .unwrap()
        .clone();
    squatter.node.0 = "node-b1".into();
    squatter.path.0 = "/mnt/nvme0/inner".into();
    nested.entries.retain(|e| e.id != squatter.id);
    nested.entries.push(squatter);
    let why = check_host_path(&good, &nested).unwrap_err();
    assert!(why.contains("overlaps"), "{why}");

    // An object without any hostPath is not a reclaim, and passes.
    let pod = json!({ "kind": "StatefulSet", "spec": { "template": { "spec": { "volumes": [ { "name": "tmp", "emptyDir": {} } ] } } } });
    assert_eq!(check_host_path(&pod, &lock), Ok(false));
}
