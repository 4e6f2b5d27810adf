//! Behaviour of the command line that golden cases cannot show: files written
//! or left alone, and commands chained as a user would run them.

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

#[test]
fn init_scaffolds_a_folder_that_places_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let init = run(tmp.path(), &["init", "prod"]);
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    let place = run(tmp.path(), &["place", "prod"]);
    assert_eq!(place.status.code(), Some(0), "{}", stderr(&place));
    assert!(
        stderr(&place).is_empty() || !stderr(&place).contains("warning"),
        "{}",
        stderr(&place)
    );
    let lock = std::fs::read_to_string(tmp.path().join("prod/placement.lock")).unwrap();
    assert_eq!(lock.matches("[[instance]]").count(), 6, "{lock}");
}

#[test]
fn init_refuses_to_overwrite_cluster_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cluster.toml"), "mine").unwrap();
    let init = run(tmp.path(), &["init", "."]);
    assert_eq!(init.status.code(), Some(2));
    assert!(
        stderr(&init).contains("already exists"),
        "{}",
        stderr(&init)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("cluster.toml")).unwrap(),
        "mine"
    );
    assert!(!tmp.path().join("inventory.toml").exists());
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let place = run(tmp.path(), &["place", "nowhere"]);
    assert_eq!(place.status.code(), Some(2));
    let text = stderr(&place);
    assert!(text.contains("cannot read nowhere/cluster.toml"), "{text}");
    assert!(text.contains("tidb-gitops init nowhere"), "{text}");
}

#[test]
fn an_unchanged_lock_is_not_rewritten_and_no_temporary_files_remain() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run(tmp.path(), &["init", "c"]).status.code(), Some(0));
    assert_eq!(run(tmp.path(), &["place", "c"]).status.code(), Some(0));
    let lock = tmp.path().join("c/placement.lock");
    let before = std::fs::metadata(&lock).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = run(tmp.path(), &["place", "c"]);
    assert!(stderr(&again).contains("unchanged"), "{}", stderr(&again));
    assert_eq!(
        std::fs::metadata(&lock).unwrap().modified().unwrap(),
        before
    );
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[test]
fn invalid_input_leaves_the_previous_lock_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run(tmp.path(), &["init", "c"]).status.code(), Some(0));
    assert_eq!(run(tmp.path(), &["place", "c"]).status.code(), Some(0));
    let lock_path = tmp.path().join("c/placement.lock");
    let lock = std::fs::read(&lock_path).unwrap();
    let cluster = tmp.path().join("c/cluster.toml");
    let text = std::fs::read_to_string(&cluster).unwrap().replace(
        "replicas = 3\nstorage = \"100Gi\"",
        "replicas = 4\nstorage = \"100Gi\"\nbogus = 1",
    );
    std::fs::write(&cluster, text).unwrap();
    let place = run(tmp.path(), &["place", "c"]);
    assert_eq!(place.status.code(), Some(2));
    assert!(
        stderr(&place).contains("nothing was written"),
        "{}",
        stderr(&place)
    );
    assert_eq!(std::fs::read(&lock_path).unwrap(), lock);
}

#[test]
fn json_goes_to_stdout_and_parses() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run(tmp.path(), &["init", "c"]).status.code(), Some(0));
    let place = run(tmp.path(), &["place", "c", "--format", "json"]);
    assert_eq!(place.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&place.stdout).expect("stdout is JSON");
    assert_eq!(value["instances"].as_array().unwrap().len(), 6);
    assert_eq!(value["instances"][0]["domain"]["zone"], "zone-a");
}

#[test]
fn output_does_not_depend_on_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run(tmp.path(), &["init", "c"]).status.code(), Some(0));
    let from_parent = run(tmp.path(), &["place", "c", "--format", "json"]);
    std::fs::remove_file(tmp.path().join("c/placement.lock")).unwrap();
    let from_inside = run(&tmp.path().join("c"), &["place", "--format", "json"]);
    assert_eq!(from_parent.stdout, from_inside.stdout);
}

/// Asks bash's completion function of the generated script for the words
/// that complete the last one of `line`.
fn bash_complete(script: &Path, line: &[&str]) -> String {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let cword = line.len() - 1;
    let prev = line[cword.saturating_sub(1)];
    let body = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n_tidb__gitops tidb-gitops '{}' '{prev}'\necho \"${{COMPREPLY[*]}}\"\n",
        script.display(),
        words.join(" "),
        line[cword]
    );
    let out = Command::new("bash").arg("-c").arg(body).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn bash_completion_completes_commands_options_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = tmp.path().join("tidb-gitops.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    assert_eq!(bash_complete(&script, &["tidb-gitops", "di"]), "diff");
    assert_eq!(
        bash_complete(&script, &["tidb-gitops", "diff", "--for"]),
        "--format"
    );
    assert_eq!(
        bash_complete(&script, &["tidb-gitops", "diff", "--format", ""]),
        "text markdown json"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(tmp.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("max-bytes"), "{shell}: {text}");
    }
}

#[test]
fn man_pages_render_without_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["man", "--out", "man1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut pages: Vec<String> = std::fs::read_dir(tmp.path().join("man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for command in ["check", "compile", "diff", "init", "place", "plan"] {
        assert!(
            pages.contains(&format!("tidb-gitops-{command}.1")),
            "{pages:?}"
        );
    }
    for page in &pages {
        // groff's -ww turns on every warning; -z renders to nowhere.
        let groff = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(tmp.path().join("man1").join(page))
            .output()
            .expect("groff is installed");
        assert!(groff.status.success(), "{page}");
        assert!(groff.stderr.is_empty(), "{page}: {}", stderr(&groff));
    }
    let diff = std::fs::read_to_string(tmp.path().join("man1/tidb-gitops-diff.1")).unwrap();
    assert!(diff.contains("max\\-bytes"), "{diff}");
    // Without --out the main page goes to stdout.
    let out = run(tmp.path(), &["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".ie"));
}
