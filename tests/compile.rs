//! `compile` and `check` as a user runs them: what is written, what is left
//! alone, and the exit codes of DESIGN §4.

use std::path::Path;
use std::process::{Command, Output};

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

/// A copy of `examples/three-zone` in a temporary folder.
fn example() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-zone");
    for name in ["cluster.toml", "inventory.toml", "placement.lock"] {
        std::fs::copy(from.join(name), tmp.path().join(name)).unwrap();
    }
    tmp
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn check_passes_after_compile_and_names_what_went_stale() {
    let dir = example();
    let compile = run(dir.path(), &["compile"]);
    assert_eq!(compile.status.code(), Some(0), "{}", stderr(&compile));
    let check = run(dir.path(), &["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(stderr(&check).contains("up to date"), "{}", stderr(&check));

    // A hand edit, a removed file and an extra file are all reported.
    let deploy = dir.path().join("deploy");
    let edited = deploy.join("manifests/00001-shared/service-prod-pd.yaml");
    std::fs::write(&edited, "edited\n").unwrap();
    std::fs::remove_file(deploy.join("manifests/20000-tidb/statefulset-prod-tidb.yaml")).unwrap();
    std::fs::write(deploy.join("manifests/stray.yaml"), "x: 1\n").unwrap();
    let check = run(dir.path(), &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    let text = stderr(&check);
    assert!(text.contains("1 files in deploy differ"), "{text}");
    assert!(
        text.contains("manifests/00001-shared/service-prod-pd.yaml"),
        "{text}"
    );
    assert!(text.contains("1 files in deploy are missing"), "{text}");
    assert!(
        text.contains("manifests/20000-tidb/statefulset-prod-tidb.yaml"),
        "{text}"
    );
    assert!(text.contains("manifests/stray.yaml"), "{text}");
    assert!(text.contains("run `tidb-gitops compile .`"), "{text}");

    // An input change makes the committed output stale too.
    let cluster = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        cluster.replace("\"log.level\" = \"info\"", "\"log.level\" = \"warn\""),
    )
    .unwrap();
    run(dir.path(), &["compile"]);
    std::fs::write(dir.path().join("cluster.toml"), cluster).unwrap();
    let check = run(dir.path(), &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("configmap-prod-tidb-"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn check_reports_a_missing_lock_and_output_as_stale() {
    let dir = example();
    std::fs::remove_file(dir.path().join("placement.lock")).unwrap();
    let check = run(dir.path(), &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    assert!(stderr(&check).contains("placement.lock is missing"));
    assert!(stderr(&check).contains("deploy is missing"));
    // check writes nothing.
    assert!(!dir.path().join("placement.lock").exists());
    assert!(!dir.path().join("deploy").exists());
}

#[test]
fn invalid_input_leaves_the_previous_output_and_lock_intact() {
    let dir = example();
    assert_eq!(run(dir.path(), &["compile"]).status.code(), Some(0));
    let before = tree(dir.path());
    let cluster = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        cluster.replace("replicas = 9", "replicas = \"nine\""),
    )
    .unwrap();
    let compile = run(dir.path(), &["compile"]);
    assert_eq!(compile.status.code(), Some(2), "{}", stderr(&compile));
    assert!(stderr(&compile).contains("nothing was written"));
    let check = run(dir.path(), &["check"]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    std::fs::write(dir.path().join("cluster.toml"), &cluster).unwrap();
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn an_interrupted_swap_is_reported_by_check_and_repaired_by_compile() {
    let dir = example();
    assert_eq!(run(dir.path(), &["compile"]).status.code(), Some(0));
    let deploy = dir.path().join("deploy");
    let before = tree(&deploy);
    // The state a kill between the two renames leaves: the previous output
    // aside, a half-written new tree beside it, no output folder.
    let old = dir.path().join(".deploy.tidb-gitops-old");
    let new = dir.path().join(".deploy.tidb-gitops-new");
    std::fs::rename(&deploy, &old).unwrap();
    std::fs::create_dir(&new).unwrap();
    std::fs::write(new.join(".tidb-gitops"), "partial").unwrap();
    let check = run(dir.path(), &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("interrupted compile"),
        "{}",
        stderr(&check)
    );
    // An invalid input now still leaves the previous output recoverable.
    let cluster = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    std::fs::write(dir.path().join("cluster.toml"), "[cluster\n").unwrap();
    assert_eq!(run(dir.path(), &["compile"]).status.code(), Some(2));
    assert_eq!(tree(&old), before);
    std::fs::write(dir.path().join("cluster.toml"), cluster).unwrap();
    let compile = run(dir.path(), &["compile"]);
    assert_eq!(compile.status.code(), Some(0), "{}", stderr(&compile));
    assert!(
        stderr(&compile).contains("deploy unchanged"),
        "{}",
        stderr(&compile)
    );
    assert_eq!(tree(&deploy), before);
    assert!(!old.exists() && !new.exists());
}

#[test]
fn compile_refuses_an_output_folder_it_did_not_create() {
    let dir = example();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join(".bashrc"), "precious").unwrap();
    let compile = run(dir.path(), &["compile", ".", "--out", "home"]);
    assert_eq!(compile.status.code(), Some(2), "{}", stderr(&compile));
    assert!(
        stderr(&compile).contains("was not written by tidb-gitops"),
        "{}",
        stderr(&compile)
    );
    assert_eq!(
        std::fs::read_to_string(home.join(".bashrc")).unwrap(),
        "precious"
    );
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 1);
}

#[test]
fn output_is_byte_identical_across_runs_and_working_directories() {
    let a = example();
    let b = example();
    assert_eq!(run(a.path(), &["compile"]).status.code(), Some(0));
    // The same inputs compiled from elsewhere, by relative path.
    let parent = b.path().parent().unwrap();
    let name = b.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(run(parent, &["compile", name]).status.code(), Some(0));
    assert_eq!(
        tree(&a.path().join("deploy")),
        tree(&b.path().join("deploy"))
    );
    // A second compile rewrites nothing.
    let again = run(a.path(), &["compile"]);
    assert!(
        stderr(&again).contains("deploy unchanged"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn output_does_not_depend_on_the_number_of_threads() {
    let a = example();
    let b = example();
    let with = |dir: &Path, threads: &str| {
        Command::new(env!("CARGO_BIN_EXE_tidb-gitops"))
            .arg("compile")
            .current_dir(dir)
            .env("TIDB_GITOPS_THREADS", threads)
            .output()
            .unwrap()
    };
    assert_eq!(with(a.path(), "1").status.code(), Some(0));
    assert_eq!(with(b.path(), "5").status.code(), Some(0));
    assert_eq!(
        tree(&a.path().join("deploy")),
        tree(&b.path().join("deploy"))
    );
}

#[test]
fn locked_refuses_a_lock_change_and_writes_nothing() {
    let dir = example();
    let cluster = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        cluster.replace("replicas = 9", "replicas = 10"),
    )
    .unwrap();
    let lock = std::fs::read(dir.path().join("placement.lock")).unwrap();
    let compile = run(dir.path(), &["compile", "--locked"]);
    assert_eq!(compile.status.code(), Some(2), "{}", stderr(&compile));
    assert!(stderr(&compile).contains("--locked forbids it"));
    assert_eq!(
        std::fs::read(dir.path().join("placement.lock")).unwrap(),
        lock
    );
    assert!(!dir.path().join("deploy").exists());
}

mod library {
    //! Properties of the output that need clusters larger than a golden case.

    use std::collections::BTreeMap;

    use tidb_gitops::compile::{Compiled, Options, compile};
    use tidb_gitops::generate::{Shape, generate};
    use tidb_gitops::load::Texts;

    fn compile_shape(shape: &Shape, lock: Option<&str>) -> Compiled {
        let generated = generate(shape);
        compile(
            Texts {
                cluster: &generated.cluster_toml,
                inventory: &generated.inventory_toml,
                lock,
            },
            &Options {
                strict_config: false,
                repo_path: "deploy".into(),
                ..Default::default()
            },
        )
        .unwrap_or_else(|d| panic!("{d:?}"))
    }

    /// Each instance file (`<id>.yaml`) and the sync-waves in it.
    fn instance_files(compiled: &Compiled) -> BTreeMap<String, (String, Vec<String>)> {
        compiled
            .files
            .iter()
            .filter_map(|(path, text)| {
                let file = path.rsplit('/').next()?;
                let id = file.strip_suffix(".yaml")?;
                let is_instance = id.starts_with("pd-") || id.starts_with("tikv-");
                let waves = text
                    .lines()
                    .filter(|l| l.contains("argocd.argoproj.io/sync-wave"))
                    .map(str::to_string)
                    .collect();
                is_instance.then(|| (id.to_string(), (path.clone(), waves)))
            })
            .collect()
    }

    #[test]
    fn large_waves_are_split_so_no_folder_holds_thousands_of_objects() {
        let compiled = compile_shape(&Shape::new(1_000), None);
        let mut per_folder: BTreeMap<&str, usize> = BTreeMap::new();
        for (path, text) in &compiled.files {
            if let Some(rest) = path.strip_prefix("manifests/")
                && let Some((folder, _)) = rest.split_once('/')
                && !path.ends_with("/kustomization.yaml")
            {
                *per_folder.entry(folder).or_default() += text.matches("\napiVersion: ").count()
                    + usize::from(text.starts_with("apiVersion: "));
            }
        }
        let total: usize = per_folder.values().sum();
        assert_eq!(total, compiled.objects);
        assert!(total > 9_000, "{total}");
        let (folder, most) = per_folder.iter().max_by_key(|(_, n)| **n).unwrap();
        assert!(*most <= 750, "{folder} holds {most} objects");
        // Every folder has its Flux Kustomization.
        for folder in per_folder.keys() {
            assert!(
                compiled
                    .files
                    .contains_key(&format!("gitops/flux/kustomization-{folder}.yaml")),
                "{folder}"
            );
        }
    }

    #[test]
    fn scale_out_keeps_every_existing_instance_in_its_folder_and_wave() {
        let before = compile_shape(&Shape::new(60), None);
        let lock = before.lock.render();
        let mut bigger = Shape::new(90);
        bigger.tikv_per_node = Shape::new(60).tikv_per_node;
        let after = compile_shape(&bigger, Some(&lock));
        let (old, new) = (instance_files(&before), instance_files(&after));
        assert!(new.len() > old.len(), "{} > {}", new.len(), old.len());
        for (id, place) in &old {
            assert_eq!(new.get(id), Some(place), "{id} moved");
        }
    }
}

/// Runs git in `dir` with a fixed identity.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn plan_against_a_git_revision_reads_committed_output_or_inputs_and_touches_nothing() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("clusters/prod");
    std::fs::create_dir_all(&dir).unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-zone");
    for name in ["cluster.toml", "inventory.toml", "placement.lock"] {
        std::fs::copy(from.join(name), dir.join(name)).unwrap();
    }
    git(repo.path(), &["init", "-q", "-b", "main"]);
    // First commit: inputs only, no output yet.
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "inputs"]);
    let cluster = std::fs::read_to_string(dir.join("cluster.toml")).unwrap();
    std::fs::write(
        dir.join("cluster.toml"),
        cluster.replace("\"log.level\" = \"info\"", "\"log.level\" = \"warn\""),
    )
    .unwrap();
    let status_before = git(repo.path(), &["status", "--porcelain"]);
    let plan = run(repo.path(), &["plan", "clusters/prod", "--base", "HEAD"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(text.contains("TiDB restart"), "{text}");
    assert!(text.contains("log.level \"info\" -> \"warn\""), "{text}");
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), status_before);

    // Second commit: with the compiled output. The base is now what is
    // committed, even when it differs from what this compiler would write.
    std::fs::write(dir.join("cluster.toml"), &cluster).unwrap();
    assert_eq!(
        run(repo.path(), &["compile", "clusters/prod"])
            .status
            .code(),
        Some(0)
    );
    let committed = dir.join("deploy/manifests/20000-tidb/statefulset-prod-tidb.yaml");
    let sts = std::fs::read_to_string(&committed).unwrap();
    std::fs::write(
        &committed,
        sts.replace("periodSeconds: 10", "periodSeconds: 11"),
    )
    .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "output"]);
    let plan = run(repo.path(), &["plan", "clusters/prod", "--base", "HEAD"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(text.contains("TiDB restart"), "{text}");
    assert!(
        text.contains("readinessProbe.periodSeconds changed"),
        "{text}"
    );
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), "");
    // A revision that does not exist is a clear error.
    let bad = run(
        repo.path(),
        &["plan", "clusters/prod", "--base", "no-such-rev"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn compile_refuses_an_unsafe_change_until_it_is_acknowledged() {
    let dir = example();
    assert_eq!(run(dir.path(), &["compile"]).status.code(), Some(0));
    let before = tree(dir.path());
    let cluster = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    // A claim's request cannot change in place.
    let changed = cluster.replace("storage = \"500Gi\"", "storage = \"400Gi\"");
    std::fs::write(dir.path().join("cluster.toml"), &changed).unwrap();
    let compile = run(dir.path(), &["compile"]);
    assert_eq!(compile.status.code(), Some(2), "{}", stderr(&compile));
    let text = stderr(&compile);
    assert!(text.contains("unsafe and not acknowledged"), "{text}");
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("change = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the refusal names the change hash")
        .to_string();
    // Nothing but the edited input changed.
    std::fs::write(dir.path().join("cluster.toml"), &cluster).unwrap();
    assert_eq!(tree(dir.path()), before);
    // `plan` says the same, with exit 1.
    std::fs::write(dir.path().join("cluster.toml"), &changed).unwrap();
    let plan = run(dir.path(), &["plan", ".", "--base", "deploy"]);
    assert_eq!(plan.status.code(), Some(1), "{}", stderr(&plan));
    // Acknowledged by its hash, it goes through.
    let acknowledged =
        format!("{changed}\n[[acknowledge]]\nchange = \"{hash}\"\nreason = \"reviewed\"\n");
    std::fs::write(dir.path().join("cluster.toml"), acknowledged).unwrap();
    let plan = run(dir.path(), &["plan", ".", "--base", "deploy"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let compile = run(dir.path(), &["compile"]);
    assert_eq!(compile.status.code(), Some(0), "{}", stderr(&compile));
}
