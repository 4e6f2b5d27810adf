//! `diff`, the pull-request preview: bases read from git without touching
//! the working tree, the markdown budget, secret masking and the exit codes.
//! The previews themselves are golden cases under `golden/diff`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tidb_gitops::compile::{Options, compile};
use tidb_gitops::diff::{self, Color, Context, Preview};
use tidb_gitops::layout::Files;
use tidb_gitops::load::Texts;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidb-gitops"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tidb-gitops")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-zone")
}

/// Copies the example's inputs into `to`.
fn copy_example(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["cluster.toml", "inventory.toml", "placement.lock"] {
        std::fs::copy(example_dir().join(name), to.join(name)).unwrap();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
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

/// What `git` would notice of a change to the working tree or the index.
fn repo_state(repo: &Path) -> (String, Vec<u8>) {
    (
        git(repo, &["status", "--porcelain", "--untracked-files=all"]),
        std::fs::read(repo.join(".git/index")).unwrap(),
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn base_revision_without_committed_output_compiles_its_inputs() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    let cluster = repo.path().join("prod");
    copy_example(&cluster);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "cluster"]);

    // The change under review: a TiKV setting, not yet committed.
    edit(
        &cluster.join("cluster.toml"),
        "[tikv.config]",
        "[tikv.config]\n\"raftstore.store-pool-size\" = 4",
    );
    let before = repo_state(repo.path());
    let out = run(repo.path(), &["diff", "prod", "--base", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("raftstore.store-pool-size = 4 (new)"),
        "{text}"
    );
    assert!(
        text.lines().next().unwrap().contains("pods restart"),
        "{text}"
    );
    assert_eq!(
        repo_state(repo.path()),
        before,
        "diff touched the repository"
    );

    // Against itself nothing changes: exit 0.
    git(repo.path(), &["commit", "-q", "-am", "tikv setting"]);
    let out = run(repo.path(), &["diff", "prod", "--base", "HEAD"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "diff: no change\n");
}

#[test]
fn base_revision_with_committed_output_uses_what_is_deployed() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    let cluster = repo.path().join("prod");
    copy_example(&cluster);
    let compiled = run(repo.path(), &["compile", "prod"]);
    assert_eq!(compiled.status.code(), Some(0), "{}", stderr(&compiled));
    // What is deployed was written by an older compiler: its PD probe
    // differed. The inputs did not change, so compiling them would show
    // nothing; the committed output shows the restart it is.
    let pd0 = cluster.join("deploy/manifests/00100-pd-0/pd-0.yaml");
    edit(&pd0, "periodSeconds: 10", "periodSeconds: 20");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "deployed"]);
    // The working tree holds the current compiler's output.
    assert_eq!(
        run(repo.path(), &["compile", "prod"]).status.code(),
        Some(0)
    );
    git(repo.path(), &["add", "."]);
    let before = repo_state(repo.path());
    let out = run(
        repo.path(),
        &["diff", "prod", "--base", "HEAD", "--format", "markdown"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("| `pd-0` | restart |"), "{text}");
    let changed = |sign: char, line: &str| {
        text.lines()
            .any(|l| l.starts_with(sign) && l.trim_start_matches(sign).trim() == line)
    };
    assert!(changed('-', "periodSeconds: 20"), "{text}");
    assert!(changed('+', "periodSeconds: 10"), "{text}");
    assert_eq!(
        repo_state(repo.path()),
        before,
        "diff touched the repository"
    );
}

#[test]
fn a_cluster_new_in_the_change_is_created_from_nothing() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("README"), "x\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "empty"]);
    copy_example(&repo.path().join("prod"));
    let out = run(repo.path(), &["diff", "prod", "--base", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("diff: 3 PD added, 9 TiKV added"), "{text}");
}

#[test]
fn unknown_base_and_bad_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let out = run(dir.path(), &["diff", "--base", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not in a git repository"),
        "{}",
        stderr(&out)
    );
    let out = run(dir.path(), &["diff", "--base", ".", "--max-bytes", "100"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--max-bytes 100 is too small"));
    let out = run(dir.path(), &["diff", "--base", ".", "--split", "parts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--format markdown"));
}

/// The inputs of a generated cluster of `nodes` nodes, and its compile.
fn generated(nodes: usize) -> (String, String, Files) {
    let g = tidb_gitops::generate::generate(&tidb_gitops::generate::Shape::new(nodes));
    let files = compile(
        Texts {
            cluster: &g.cluster_toml,
            inventory: &g.inventory_toml,
            lock: None,
        },
        &Options {
            strict_config: false,
            repo_path: "deploy".into(),
            ..Default::default()
        },
    )
    .expect("compiles")
    .files;
    (g.cluster_toml, g.inventory_toml, files)
}

fn preview_of(base: Option<&Files>, new: &Files) -> Preview {
    let plan = tidb_gitops::plan::plan(base, new, &[]).unwrap();
    let lock = tidb_gitops::lock::Lock::default();
    diff::preview(
        base,
        new,
        plan,
        &Context {
            lock: &lock,
            events: &[],
        },
    )
    .unwrap()
}

/// Fences and `<details>` blocks open and close within a markdown text.
fn assert_balanced(markdown: &str) {
    let fences = markdown.lines().filter(|l| l.starts_with("```")).count();
    assert_eq!(fences % 2, 0, "unclosed code fence:\n{markdown}");
    assert_eq!(
        markdown.matches("<details>").count(),
        markdown.matches("</details>").count(),
        "unclosed <details>"
    );
}

#[test]
fn markdown_respects_the_budget_on_a_large_change() {
    // Creating a 60-node cluster (180 TiKV): about a megabyte of diffs.
    let (_, _, files) = generated(60);
    let preview = preview_of(Some(&Files::new()), &files);
    let whole = diff::markdown(&preview);
    assert!(whole.len() > 500_000, "{}", whole.len());

    let within = diff::markdown_within(&preview, diff::DEFAULT_MAX_BYTES);
    assert!(within.len() <= diff::DEFAULT_MAX_BYTES, "{}", within.len());
    assert_balanced(&within);
    // Summary and plan are whole; diffs are cut with a note.
    assert!(within.starts_with("## tidb-gitops preview\n\n**3 PD added, 180 TiKV added"));
    let last_wave = preview.plan.waves.last().unwrap();
    assert!(within.contains(&format!("`{}`", last_wave.folder)));
    assert!(
        within.contains("object diff(s) left out to fit 60000 bytes"),
        "{within}"
    );

    // A budget smaller than the plan itself still holds.
    let tiny = diff::markdown_within(&preview, 4_000);
    assert!(tiny.len() <= 4_000, "{}", tiny.len());
    assert_balanced(&tiny);
    assert!(tiny.contains("The preview is cut at 4000 bytes"), "{tiny}");

    // Split: every part within the budget, nothing lost.
    let parts = diff::markdown_parts(&preview, 20_000);
    assert!(parts.len() > 10, "{}", parts.len());
    for (i, part) in parts.iter().enumerate() {
        assert!(part.len() <= 20_000, "part {i}: {}", part.len());
        assert_balanced(part);
        assert!(part.starts_with(&format!(
            "_tidb-gitops preview, part {} of {}_",
            i + 1,
            parts.len()
        )));
    }
    let joined = parts.concat();
    for group in &preview.groups {
        for o in &group.objects {
            assert!(
                joined.contains(&format!("+++ b/{}/{}\n", o.kind, o.name)),
                "{} {} lost in the parts",
                o.kind,
                o.name
            );
        }
    }
    for m in &preview.plan.waves {
        assert!(joined.contains(&format!("`{}`", m.folder)));
    }
}

#[test]
fn split_and_full_write_their_files_and_clear_stale_parts() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let empty = dir.path().join("empty-base");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join(".tidb-gitops"), "").unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    std::fs::write(parts.join("part-99.md"), "stale").unwrap();
    std::fs::write(parts.join("notes.md"), "mine").unwrap();
    let out = run(
        dir.path(),
        &[
            "diff",
            "--base",
            "empty-base",
            "--format",
            "markdown",
            "--max-bytes",
            "30000",
            "--split",
            "parts",
            "--full",
            "full.md",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let listed: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert!(listed.len() > 1, "{listed:?}");
    assert!(!parts.join("part-99.md").exists());
    assert_eq!(
        std::fs::read_to_string(parts.join("notes.md")).unwrap(),
        "mine"
    );
    for (i, path) in listed.iter().enumerate() {
        assert!(path.ends_with(&format!("part-{}.md", i + 1)), "{path}");
        let text = std::fs::read_to_string(dir.path().join(path)).unwrap();
        assert!(text.len() <= 30_000);
    }
    let full = std::fs::read_to_string(dir.path().join("full.md")).unwrap();
    assert!(full.len() > 30_000);
    assert!(!full.contains("left out"));
}

const SECRET_VALUE: &str = "aHVudGVyMg=="; // base64 of "hunter2"
const OTHER_VALUE: &str = "c3dvcmRmaXNo"; // base64 of "swordfish"

fn secret(values: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tidb-root\n  namespace: tidb-prod\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"password\":\"aHVudGVyMg==\"},\"stringData\":{\"plain\":\"hunter2\"}}'\ntype: Opaque\ndata:\n",
    );
    for (k, v) in values {
        text.push_str(&format!("  {k}: {v}\n"));
    }
    text.push_str("stringData:\n  plain: hunter2\n");
    text
}

#[test]
fn secret_values_never_appear() {
    let (_, _, files) = generated(3);
    let mut base = files.clone();
    base.insert(
        "manifests/00001-shared/secret-tidb-root.yaml".into(),
        secret(&[("password", SECRET_VALUE), ("user", "cm9vdA==")]),
    );
    let mut new = files.clone();
    new.insert(
        "manifests/00001-shared/secret-tidb-root.yaml".into(),
        secret(&[("password", OTHER_VALUE), ("user", "cm9vdA==")]),
    );
    let preview = preview_of(Some(&base), &new);
    let object = preview
        .groups
        .iter()
        .flat_map(|g| &g.objects)
        .find(|o| o.kind == "Secret")
        .expect("the Secret changed");
    assert_eq!(object.keys, vec!["data.password"]);
    let rendered = [
        diff::text(&preview, Color::Never),
        diff::markdown(&preview),
        serde_json::to_string(&preview).unwrap(),
    ];
    for text in &rendered {
        for value in [SECRET_VALUE, OTHER_VALUE, "hunter2", "swordfish"] {
            assert!(!text.contains(value), "{value} leaked:\n{text}");
        }
        assert!(text.contains("data.password"));
    }

    // Through the CLI: a base output holding a Secret the new one drops.
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    assert_eq!(run(dir.path(), &["compile"]).status.code(), Some(0));
    std::fs::write(
        dir.path()
            .join("deploy/manifests/00001-shared/secret-tidb-root.yaml"),
        secret(&[("password", SECRET_VALUE)]),
    )
    .unwrap();
    for format in ["text", "markdown", "json"] {
        let out = run(
            dir.path(),
            &[
                "diff", "--base", "deploy", "--format", format, "--full", "full.txt",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let full = std::fs::read_to_string(dir.path().join("full.txt")).unwrap();
        for text in [stdout(&out), full] {
            assert!(text.contains("tidb-root"), "{text}");
            for value in [SECRET_VALUE, "hunter2"] {
                assert!(!text.contains(value), "{value} leaked in {format}");
            }
        }
    }
}

#[test]
fn an_upgrade_touches_only_what_runs_the_new_image() {
    // No label or annotation names a version, so an upgrade changes the
    // workloads and the Jobs that run the image, nothing else.
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let base = dir.path().join("base");
    copy_example(&base);
    let text = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("a version line")
        .to_string();
    // Past the versions where the probes change (PD's readiness from v8.5.2).
    edit(
        &base.join("cluster.toml"),
        &format!("version = \"{version}\""),
        "version = \"v8.5.2\"",
    );
    edit(
        &dir.path().join("cluster.toml"),
        &format!("version = \"{version}\""),
        "version = \"v8.5.3\"",
    );
    let out = run(dir.path(), &["diff", "--base", "base", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for group in preview["groups"].as_array().unwrap() {
        for o in group["objects"].as_array().unwrap() {
            kinds.insert(o["kind"].as_str().unwrap().to_string());
            let diff = o["diff"].as_str().unwrap();
            for line in diff.lines().filter(|l| l.starts_with(['+', '-'])) {
                if line.starts_with("+++") || line.starts_with("---") {
                    continue;
                }
                assert!(
                    line.contains("image:")
                        || line.contains("name: ")
                        || line.contains("value: ")
                        || line.contains("sync-wave"),
                    "unexpected change in {} {}: {line}",
                    o["kind"],
                    o["name"]
                );
            }
        }
    }
    let allowed = ["Job", "StatefulSet"];
    assert!(
        kinds.iter().all(|k| allowed.contains(&k.as_str())),
        "{kinds:?}"
    );
}

#[test]
fn colors_only_when_asked() {
    let (_, _, files) = generated(3);
    let mut new = files.clone();
    let (path, text) = new
        .iter_mut()
        .find(|(p, _)| p.contains("/pd-0.yaml"))
        .expect("pd-0");
    let _ = path;
    *text = text.replacen("periodSeconds: 10", "periodSeconds: 11", 1);
    let preview = preview_of(Some(&files), &new);
    assert!(diff::text(&preview, Color::Always).contains("\x1b[32m+"));
    assert!(!diff::text(&preview, Color::Never).contains('\x1b'));

    // The CLI's stdout is a pipe here: never colored, even without NO_COLOR.
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let base = dir.path().join("base");
    copy_example(&base);
    edit(
        &dir.path().join("cluster.toml"),
        "[tikv.config]",
        "[tikv.config]\n\"raftstore.store-pool-size\" = 4",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tidb-gitops"))
        .args(["diff", "--base", "base"])
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stdout.contains(&0x1b));
}
