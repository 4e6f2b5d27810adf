//! Day-2 steps as compiled: the only `hostPath` is a reclaim Job's, limited
//! to exactly the retired directory; evidence files with errors are refused
//! with their position; a whole scale in, from `leaving` to a free
//! directory, through the CLI. The steps one by one are golden cases
//! (`golden/day2`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidb-gitops"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tidb-gitops")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every `.yaml` file under `dir`.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out
}

fn host_paths(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(m) => {
            if let Some(p) = m.get("hostPath") {
                out.push(p["path"].as_str().unwrap_or("?").to_string());
            }
            m.values().for_each(|v| host_paths(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| host_paths(v, out)),
        _ => {}
    }
}

#[test]
fn the_only_host_path_is_a_reclaim_of_exactly_the_retired_directory() {
    let mut reclaims = 0;
    let mut objects = 0;
    for file in yaml_files(&root().join("golden")) {
        let path = file.to_string_lossy();
        if !path.contains("/deploy/manifests/") || path.ends_with("kustomization.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in tidb_gitops::yaml::parse(&text).unwrap() {
            objects += 1;
            let mut paths = Vec::new();
            host_paths(&doc, &mut paths);
            if paths.is_empty() {
                continue;
            }
            let labels = &doc["metadata"]["labels"];
            assert_eq!(doc["kind"], "Job", "{path}: {paths:?}");
            assert_eq!(labels["app.kubernetes.io/component"], "reclaim", "{path}");
            let spec = &doc["spec"]["template"]["spec"];
            let env = |name: &str| {
                spec["containers"][0]["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == name)
                    .and_then(|e| e["value"].as_str())
                    .unwrap()
                    .to_string()
            };
            // One hostPath, the instance's own directory, on its own node,
            // for the instance the owner marker must name.
            assert_eq!(paths, vec![env("HOST_PATH")], "{path}");
            assert_eq!(
                spec["nodeSelector"]["kubernetes.io/hostname"].as_str(),
                Some(env("NODE_NAME").as_str()),
                "{path}"
            );
            let target = labels["tidb-gitops.io/target"].as_str().unwrap();
            assert!(
                env("OWNER").ends_with(&format!(" instance={target}")),
                "{path}"
            );
            // The lock of that case names the instance gone, on that directory.
            let case = path.split("/deploy/").next().unwrap();
            let lock = std::fs::read_to_string(format!("{case}/expected.txt")).unwrap();
            let entry = format!(
                "id = \"{target}\"\ncomponent = \"{}\"\nnode = \"{}\"\npath = \"{}\"\nstate = \"gone\"\n",
                target.split('-').next().unwrap(),
                env("NODE_NAME"),
                env("HOST_PATH")
            );
            assert!(lock.contains(&entry), "{path}: {entry}");
            reclaims += 1;
        }
    }
    assert!(objects > 300, "{objects}");
    assert!(reclaims >= 1, "no reclaim Job among the golden outputs");
}

fn three_zone() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = root().join("examples/three-zone");
    for name in ["cluster.toml", "inventory.toml", "placement.lock"] {
        std::fs::copy(from.join(name), tmp.path().join(name)).unwrap();
    }
    tmp
}

#[test]
fn broken_evidence_is_refused_with_its_position_and_nothing_is_written() {
    let dir = three_zone();
    std::fs::write(
        dir.path().join("stores.json"),
        "{\n  \"count\": 1,\n  \"stores\": [\n    {\"store\": {\"id\": 1,}}\n  ]\n}\n",
    )
    .unwrap();
    let lock = std::fs::read(dir.path().join("placement.lock")).unwrap();
    let out = run(dir.path(), &["compile", "--observed", "stores.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("stores.json:4:"), "{err}");
    assert!(err.contains("{\"store\": {\"id\": 1,}}"), "{err}");
    assert!(!dir.path().join("deploy").exists());
    assert_eq!(
        std::fs::read(dir.path().join("placement.lock")).unwrap(),
        lock
    );

    let out = run(dir.path(), &["compile", "--observed", "missing.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read missing.json"));
}

fn stores(states: &[(u32, &str)]) -> String {
    let list: Vec<String> = states
        .iter()
        .map(|(i, s)| {
            format!(
                "{{\"store\":{{\"id\":{},\"address\":\"prod-tikv-{i}-0.prod-tikv-peer.tidb-prod.svc:20160\",\"state_name\":\"{s}\"}}}}",
                100 + i
            )
        })
        .collect();
    format!(
        "{{\"count\":{},\"stores\":[{}]}}",
        list.len(),
        list.join(",")
    )
}

fn lock_state(dir: &Path, id: &str) -> Option<String> {
    let lock = std::fs::read_to_string(dir.join("placement.lock")).unwrap();
    let at = lock.find(&format!("id = \"{id}\""))?;
    lock[at..]
        .lines()
        .find_map(|l| l.strip_prefix("state = "))
        .map(|s| s.trim_matches('"').to_string())
}

#[test]
fn a_scale_in_runs_to_a_free_directory_through_evidence() {
    let dir = three_zone();
    let path = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("replicas = 9", "replicas = 8")).unwrap();
    let out = run(dir.path(), &["compile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let leaving: Vec<String> = (0..9)
        .map(|i| format!("tikv-{i}"))
        .filter(|id| lock_state(dir.path(), id).as_deref() == Some("leaving"))
        .collect();
    assert_eq!(leaving.len(), 1, "{leaving:?}");
    let id = &leaving[0];
    let n: u32 = id.strip_prefix("tikv-").unwrap().parse().unwrap();
    let manifests = dir.path().join("deploy/manifests");
    assert!(manifests.join("19998-decommission").is_dir());
    // Its workload runs while PD moves its Regions away.
    let count_workloads = || {
        yaml_files(&manifests)
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f == format!("{id}.yaml").as_str())
            })
            .map(|p| std::fs::read_to_string(p).unwrap())
            .filter(|t| t.contains("kind: StatefulSet"))
            .count()
    };
    assert_eq!(count_workloads(), 1);

    // Offline: nothing moves, and `check` without evidence agrees.
    let offline: Vec<(u32, &str)> = (0..9)
        .map(|i| (i, if i == n { "Offline" } else { "Up" }))
        .collect();
    std::fs::write(dir.path().join("stores.json"), stores(&offline)).unwrap();
    let out = run(dir.path(), &["compile", "--observed", "stores.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lock_state(dir.path(), id).as_deref(), Some("leaving"));
    assert_eq!(run(dir.path(), &["check"]).status.code(), Some(0));

    // Tombstone: the workload goes, the directory is reclaimed.
    let tombstone: Vec<(u32, &str)> = (0..9)
        .map(|i| (i, if i == n { "Tombstone" } else { "Up" }))
        .collect();
    std::fs::write(dir.path().join("stores.json"), stores(&tombstone)).unwrap();
    let out = run(dir.path(), &["compile", "--observed", "stores.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lock_state(dir.path(), id).as_deref(), Some("gone"));
    assert_eq!(count_workloads(), 0);
    assert!(!manifests.join("19998-decommission").exists());
    assert!(manifests.join("30000-reclaim").is_dir());
    assert_eq!(run(dir.path(), &["check"]).status.code(), Some(0));

    // The same evidence again changes nothing.
    let lock = std::fs::read(dir.path().join("placement.lock")).unwrap();
    let out = run(dir.path(), &["compile", "--observed", "stores.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.path().join("placement.lock")).unwrap(),
        lock
    );

    // The reclaim Job succeeded: the entry is dropped, the directory free.
    std::fs::write(
        dir.path().join("jobs.json"),
        format!(
            "{{\"kind\":\"List\",\"items\":[{{\"metadata\":{{\"labels\":{{\"tidb-gitops.io/reclaim\":\"{id}\"}}}},\"status\":{{\"succeeded\":1}}}}]}}"
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["compile", "--observed", "jobs.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lock_state(dir.path(), id), None);
    assert!(!manifests.join("30000-reclaim").exists());

    // A later scale out may use the free directory again; the id is new.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("replicas = 8", "replicas = 9")).unwrap();
    let out = run(dir.path(), &["compile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lock_state(dir.path(), "tikv-9").as_deref(), Some("up"));
    assert_eq!(lock_state(dir.path(), id), None);
}
