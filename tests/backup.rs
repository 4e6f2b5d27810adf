//! Backup and restore as compiled: credentials only by reference, restore
//! Jobs that never change name or spec across upgrades, the backup before
//! an upgrade. The objects themselves are golden cases
//! (`golden/compile/backup-*`, `restore-*`, `golden/plan/upgrade-with-backup`)
//! and are checked by the external validators.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidb-gitops"));
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run tidb-gitops")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A copy of a golden case's inputs in a temporary folder.
fn case(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = root().join("golden").join(name);
    for file in ["cluster.toml", "inventory.toml", "placement.lock"] {
        if from.join(file).exists() {
            std::fs::copy(from.join(file), tmp.path().join(file)).unwrap();
        }
    }
    tmp
}

fn all_text(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}

const CANARIES: [&str; 5] = [
    "AKIACANARY0000000001",
    "canary-secret-key-never-in-output",
    "canary-azure-key-never-in-output",
    "canary-gcs-key-never-in-output",
    "canary-profile-key-never-in-output",
];

#[test]
fn no_credential_reaches_the_output() {
    for name in [
        "compile/backup-s3",
        "compile/backup-gcs",
        "compile/backup-azblob",
        "compile/backup-s3-compatible-identity",
        "compile/restore-point-in-time",
    ] {
        let dir = case(name);
        // Credentials the compiler could find if it looked: the
        // environment and the usual credential files in HOME.
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(
            home.join(".aws/credentials"),
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                CANARIES[0], CANARIES[4]
            ),
        )
        .unwrap();
        let gcs = home.join("key.json");
        std::fs::write(&gcs, format!("{{\"private_key\": \"{}\"}}", CANARIES[3])).unwrap();
        let out = run(
            dir.path(),
            &["compile"],
            &[
                ("HOME", home.to_str().unwrap()),
                ("AWS_ACCESS_KEY_ID", CANARIES[0]),
                ("AWS_SECRET_ACCESS_KEY", CANARIES[1]),
                ("AZURE_STORAGE_KEY", CANARIES[2]),
                ("GOOGLE_APPLICATION_CREDENTIALS", gcs.to_str().unwrap()),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let files = all_text(&dir.path().join("deploy"));
        assert!(files.len() > 10, "{name}");
        let mut credential_vars = 0;
        for (path, text) in &files {
            for canary in CANARIES {
                assert!(!text.contains(canary), "{}: {canary}", path.display());
            }
            assert!(!text.contains("kind: Secret"), "{}", path.display());
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            for doc in tidb_gitops::yaml::parse(text).unwrap() {
                let mut stack = vec![&doc];
                while let Some(v) = stack.pop() {
                    match v {
                        serde_json::Value::Object(m) => {
                            if let Some(name) = m.get("name").and_then(|n| n.as_str())
                                && matches!(
                                    name,
                                    "AWS_ACCESS_KEY_ID"
                                        | "AWS_SECRET_ACCESS_KEY"
                                        | "AZURE_STORAGE_KEY"
                                )
                            {
                                credential_vars += 1;
                                assert!(m.get("value").is_none(), "{}: {name}", path.display());
                                assert!(
                                    m["valueFrom"]["secretKeyRef"]["name"].is_string(),
                                    "{}: {name}",
                                    path.display()
                                );
                            }
                            stack.extend(m.values());
                        }
                        serde_json::Value::Array(a) => stack.extend(a),
                        _ => {}
                    }
                }
            }
        }
        if name.contains("identity") {
            assert_eq!(credential_vars, 0, "{name}");
        } else if !name.contains("gcs") {
            assert!(credential_vars > 0, "{name}");
        }
    }
}

#[test]
fn credentials_written_into_cluster_toml_are_refused() {
    for (edit, message) in [
        (
            "secret = \"s3-credentials\"",
            "secret_key = \"canary-secret-key-never-in-output\"",
        ),
        (
            "from = \"s3://tidb-backups/mini/2026-11-20T020000Z\"",
            "from = \"s3://tidb-backups/mini/2026-11-20T020000Z?access-key=AKIACANARY0000000001\"",
        ),
    ] {
        let dir = case("compile/backup-s3");
        let path = dir.path().join("cluster.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(edit), "{edit}");
        std::fs::write(&path, text.replacen(edit, message, 1)).unwrap();
        let out = run(dir.path(), &["compile"], &[]);
        assert_eq!(out.status.code(), Some(2), "{message}: {}", stderr(&out));
        assert!(!dir.path().join("deploy").exists(), "{message}");
    }
}

#[test]
fn a_restore_job_survives_upgrades_unchanged() {
    let dir = case("compile/backup-s3");
    assert_eq!(run(dir.path(), &["compile"], &[]).status.code(), Some(0));
    let restore = |dir: &Path| -> Vec<(PathBuf, String)> {
        all_text(&dir.join("deploy/manifests/20001-restore"))
            .into_iter()
            .filter(|(p, _)| !p.ends_with("kustomization.yaml"))
            .collect()
    };
    let before = restore(dir.path());
    assert_eq!(before.len(), 1);
    assert!(before[0].1.contains("image: pingcap/br:v8.5.1"));
    let lock = std::fs::read_to_string(dir.path().join("placement.lock")).unwrap();
    assert!(
        lock.contains("[restore-versions]\n\"from-2026-11-20\" = \"v8.5.1\"\n"),
        "{lock}"
    );

    // Upgrade: every workload moves on, the restore Job stays byte for byte
    // (a new name would restore again; a new spec would be refused).
    let path = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("v8.5.1", "v8.5.2")).unwrap();
    assert_eq!(run(dir.path(), &["compile"], &[]).status.code(), Some(0));
    assert_eq!(restore(dir.path()), before);
    let cron = std::fs::read_to_string(
        dir.path()
            .join("deploy/manifests/20002-backup/cronjob-mini-backup.yaml"),
    )
    .unwrap();
    assert!(cron.contains("image: pingcap/br:v8.5.2"), "{cron}");

    // Editing the entry is a new restore: a new Job, run once.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("2026-11-20T020000Z", "2026-11-21T020000Z"),
    )
    .unwrap();
    assert_eq!(run(dir.path(), &["compile"], &[]).status.code(), Some(0));
    let after = restore(dir.path());
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].0, before[0].0);
}

#[test]
fn the_backup_before_an_upgrade_runs_before_the_first_pd() {
    let dir = case("plan/upgrade-with-backup");
    let out = run(dir.path(), &["compile"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let manifests = dir.path().join("deploy/manifests");
    let mut folders: Vec<String> = std::fs::read_dir(&manifests)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    folders.sort();
    let backup = folders
        .iter()
        .position(|f| f == "00099-backup-before-upgrade")
        .expect("the backup wave");
    let pd = folders.iter().position(|f| f.ends_with("-pd-0")).unwrap();
    assert!(backup < pd, "{folders:?}");
    let job = std::fs::read_to_string(
        manifests.join("00099-backup-before-upgrade/job-mini-backup-before-v8-5-2.yaml"),
    )
    .unwrap();
    // The old version backs itself up, into a prefix of its own.
    assert!(job.contains("image: pingcap/br:v8.5.1"), "{job}");
    assert!(job.contains("value: before-v8.5.2"), "{job}");
    // Compiling again changes nothing: the Job stays, done, until the next
    // upgrade replaces it.
    let check = run(dir.path(), &["check"], &[]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // Without before_upgrade there is no such Job and no version in the lock.
    let path = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("before_upgrade = true\n", "")).unwrap();
    assert_eq!(run(dir.path(), &["compile"], &[]).status.code(), Some(0));
    assert!(!manifests.join("00099-backup-before-upgrade").exists());
    let lock = std::fs::read_to_string(dir.path().join("placement.lock")).unwrap();
    assert!(!lock.contains("[versions]"), "{lock}");
}
