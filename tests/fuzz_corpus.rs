//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the
//! same functions the fuzz targets call (`tidb_gitops::fuzzing`), so every
//! input a fuzzer kept, and every crash reproducer, runs on each test run.
//! The fuzzers themselves run from `scripts/fuzz.sh`, not from CI.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, run) = tidb_gitops::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let files = corpus(target);
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    for file in files {
        let data = std::fs::read(&file).expect("read corpus file");
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target} panics on {}", file.display());
    }
}

#[test]
fn every_target_has_a_corpus_and_a_test() {
    let targets: Vec<&str> = tidb_gitops::fuzzing::TARGETS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut sources: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz/fuzz_targets")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    sources.sort();
    let mut expected: Vec<String> = targets.iter().map(|t| format!("{t}.rs")).collect();
    expected.sort();
    assert_eq!(sources, expected);
}

#[test]
fn cluster_toml() {
    replay("cluster_toml");
}

#[test]
fn inventory_toml() {
    replay("inventory_toml");
}

#[test]
fn placement_lock() {
    replay("placement_lock");
}

#[test]
fn observed_json() {
    replay("observed_json");
}

#[test]
fn pipeline() {
    replay("pipeline");
}

/// The invariants can fail: inputs that must not pass them.
#[test]
fn the_checks_catch_broken_invariants() {
    // Not UTF-8, in each parser target: handled, no panic.
    for (name, run) in tidb_gitops::fuzzing::TARGETS {
        if *name != "pipeline" {
            run(b"[cluster]\nname = \"\xff\"\n");
        }
    }
    // A diagnostic pointing outside its file is caught.
    let result =
        std::panic::catch_unwind(|| tidb_gitops::fuzzing::check_spans_for_test(10..11, "short"));
    assert!(result.is_err(), "a span past the end was accepted");
}
