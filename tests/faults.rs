//! `compile` killed with SIGKILL at random moments of a run that replaces a
//! previous output and lock.
//!
//! What must hold after every kill (the write protocol is described in
//! `src/output.rs`):
//! - the output folder is byte for byte the previous output or the
//!   complete new one (or, where the filesystem cannot exchange two
//!   folders, absent with the previous output complete under its `-old`
//!   side name, which the next run puts back);
//! - `placement.lock` is byte for byte the previous lock or the new one;
//! - the pair is consistent: the previous lock with the previous output,
//!   the new lock with the new output, or the previous lock with the new
//!   output while the new lock is still staged beside it (the window
//!   between the output swap and the lock rename). The new lock never goes
//!   with the previous output, and the third state is always detectable:
//!   the staged lock is there and `check` reports the lock stale;
//! - the next `compile` succeeds, ends with exactly the new output and the
//!   new lock, and leaves no temporary file or folder behind.
//!
//! The seed is printed first (nextest shows it on failure); set
//! `TIDB_GITOPS_FAULT_SEED` to replay a run and `TIDB_GITOPS_FAULT_RUNS`
//! to change the number of kills (30 by default; once 20 are done no
//! more are started after 40 s, so the test stays under a minute in a
//! debug build on a loaded machine). Kills come in chains: the run after
//! a kill is itself killed, two to four times, so recovery is interrupted
//! too, before one run completes.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tree::{Tree, copy_tree, first_difference, names, read_tree};
use tidb_gitops::generate::{Shape, generate};

const BIN: &str = env!("CARGO_BIN_EXE_tidb-gitops");

/// splitmix64: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` microseconds.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo, hi) = (
            lo.as_micros() as u64,
            hi.as_micros().max(lo.as_micros() + 1) as u64,
        );
        Duration::from_micros(lo + self.next() % (hi - lo))
    }
}

/// The benchmark shape with the racks fixed, so that adding nodes changes
/// no existing node's labels.
fn shape(nodes: usize) -> Shape {
    Shape {
        racks_per_zone: 3,
        ..Shape::new(nodes)
    }
}

fn write_inputs(dir: &Path, nodes: usize) {
    let generated = generate(&shape(nodes));
    std::fs::write(dir.join("cluster.toml"), generated.cluster_toml).unwrap();
    std::fs::write(dir.join("inventory.toml"), generated.inventory_toml).unwrap();
}

fn compile(dir: &Path) -> Output {
    Command::new(BIN)
        .arg("compile")
        .arg(dir)
        .arg("--timings")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The write time `--timings` reports, in milliseconds.
fn write_ms(output: &Output) -> f64 {
    let text = stderr(output);
    let at = text
        .find("write ")
        .expect("--timings reports the write time");
    text[at + 6..]
        .split(' ')
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("a write time in ms")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    /// Previous lock, previous output.
    PreviousKept,
    /// Previous lock, previous output aside (swap without exchange).
    PreviousAside,
    /// Previous lock, new output, new lock staged: repaired by the next run.
    LockBehind,
    /// New lock, new output.
    NewComplete,
}

struct Expected {
    previous_out: Tree,
    previous_lock: Vec<u8>,
    new_out: Tree,
    new_lock: Vec<u8>,
}

/// What a kill left in `work`, or why it is not allowed.
fn classify(work: &Path, expected: &Expected) -> Result<State, String> {
    let out = read_tree(&work.join("deploy"));
    let lock = std::fs::read(work.join("placement.lock")).map_err(|e| format!("lock: {e}"))?;
    let staged = work.join(".placement.lock.tidb-gitops-new").exists();
    let lock_is_new = if lock == expected.new_lock {
        true
    } else if lock == expected.previous_lock {
        false
    } else {
        return Err("placement.lock is neither the previous nor the new lock".into());
    };
    let describe = |tree: &Tree| {
        format!(
            "neither the previous output ({}) nor the new one ({})",
            first_difference(tree, &expected.previous_out).unwrap_or_default(),
            first_difference(tree, &expected.new_out).unwrap_or_default()
        )
    };
    let state = match out {
        Some(tree) if tree == expected.previous_out => State::PreviousKept,
        Some(tree) if tree == expected.new_out => {
            if lock_is_new {
                State::NewComplete
            } else if staged {
                State::LockBehind
            } else {
                return Err("the new output with the previous lock and no staged lock".into());
            }
        }
        Some(tree) => return Err(format!("deploy is {}", describe(&tree))),
        None => match read_tree(&work.join(".deploy.tidb-gitops-old")) {
            Some(tree) if tree == expected.previous_out => State::PreviousAside,
            Some(tree) => {
                return Err(format!(
                    "deploy is missing and the aside tree is {}",
                    describe(&tree)
                ));
            }
            None => return Err("deploy is missing and nothing is aside".into()),
        },
    };
    if lock_is_new && state != State::NewComplete {
        return Err(format!("the new lock with the previous output ({state:?})"));
    }
    Ok(state)
}

#[test]
fn a_kill_at_any_moment_leaves_the_previous_or_the_new_output_and_lock() {
    let seed: u64 = std::env::var("TIDB_GITOPS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let runs: usize = std::env::var("TIDB_GITOPS_FAULT_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    eprintln!("seed {seed}: replay with TIDB_GITOPS_FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();

    // The previous state: 102 nodes compiled; then the inputs grow by three
    // nodes and nine TiKV instances, which changes the lock and the output.
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    write_inputs(&pristine, 102);
    let first = compile(&pristine);
    assert!(first.status.success(), "{}", stderr(&first));
    write_inputs(&pristine, 105);
    let previous_out = read_tree(&pristine.join("deploy")).unwrap();
    let previous_lock = std::fs::read(pristine.join("placement.lock")).unwrap();

    // The new state, and how long an uninterrupted run takes.
    let reference = tmp.path().join("reference");
    copy_tree(&pristine, &reference, false);
    let clock = Instant::now();
    let full = compile(&reference);
    let run_time = clock.elapsed();
    assert!(full.status.success(), "{}", stderr(&full));
    let write_time = Duration::from_secs_f64(write_ms(&full) / 1000.0);
    let expected = Expected {
        previous_out,
        previous_lock,
        new_out: read_tree(&reference.join("deploy")).unwrap(),
        new_lock: std::fs::read(reference.join("placement.lock")).unwrap(),
    };
    assert_ne!(expected.previous_out, expected.new_out);
    assert_ne!(expected.previous_lock, expected.new_lock);
    eprintln!(
        "uninterrupted run: {run_time:?}, of which writing {write_time:?}; {} output files\n{}",
        expected.new_out.len(),
        stderr(&full).trim_end()
    );

    let mut counts = std::collections::BTreeMap::<State, usize>::new();
    let (mut kills, mut chains, mut finished, mut staged_seen) = (0, 0, 0, 0);
    let mut checked_stale = false;
    let work = tmp.path().join("work");
    // On a loaded machine, stop early once enough kills are done.
    let budget = Duration::from_secs(40);
    while kills < runs && !(kills >= 20 && started.elapsed() > budget) {
        // A chain: the previous state, two to four killed runs (each the
        // "next run" of the kill before it, so recovery is killed too),
        // then one run to completion.
        chains += 1;
        if work.exists() {
            std::fs::remove_dir_all(&work).unwrap();
        }
        copy_tree(&pristine, &work, false);
        let length = 2 + (rng.next() % 3) as usize;
        let mut last = State::PreviousKept;
        for _ in 0..length.min(runs - kills) {
            kills += 1;
            // Half the kills anywhere in the run (with some slack for a
            // slower run), half in its last part, where the output and the
            // lock are written.
            let delay = if kills % 2 == 0 {
                rng.between(Duration::ZERO, run_time * 21 / 20)
            } else {
                rng.between(run_time.saturating_sub(write_time * 2), run_time * 21 / 20)
            };
            let mut child = Command::new(BIN)
                .arg("compile")
                .arg(&work)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            let _ = child.kill();
            if child.wait().unwrap().success() {
                finished += 1;
            }
            let context = format!("seed {seed}, chain {chains}, kill {kills} after {delay:?}");
            last = classify(&work, &expected).unwrap_or_else(|e| panic!("{context}: {e}"));
            *counts.entry(last).or_default() += 1;
            if work.join(".placement.lock.tidb-gitops-new").exists() {
                staged_seen += 1;
            }

            // The lock behind the output is visible to `check` (once is enough).
            if last == State::LockBehind && !checked_stale {
                let check = Command::new(BIN)
                    .arg("check")
                    .arg(&work)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                let text = stderr(&check);
                assert_eq!(check.status.code(), Some(1), "{context}: {text}");
                assert!(
                    text.contains("placement.lock would change")
                        && text.contains("left by an interrupted run"),
                    "{context}: {text}"
                );
                checked_stale = true;
            }
        }

        // The next run repairs whatever the kills left, and cleans up.
        let context = format!("seed {seed}, chain {chains}");
        let next = compile(&work);
        assert!(
            next.status.success(),
            "{context}: the next run failed: {}",
            stderr(&next)
        );
        if last == State::LockBehind {
            assert!(
                stderr(&next).contains("an earlier run was interrupted"),
                "{context}: {}",
                stderr(&next)
            );
        }
        let out = read_tree(&work.join("deploy")).unwrap();
        assert!(
            out == expected.new_out,
            "{context}: after the next run: {}",
            first_difference(&out, &expected.new_out).unwrap()
        );
        assert!(
            std::fs::read(work.join("placement.lock")).unwrap() == expected.new_lock,
            "{context}: the lock after the next run"
        );
        assert_eq!(
            names(&work),
            ["cluster.toml", "deploy", "inventory.toml", "placement.lock"],
            "{context}: temporary files survived the next run"
        );
    }
    eprintln!(
        "{kills} kills in {chains} chains, {:?}: {counts:?}; {staged_seen} left a staged lock; {finished} runs finished before their kill",
        started.elapsed()
    );
    // The kills cover both sides of the swap.
    assert!(
        counts.get(&State::PreviousKept).is_some_and(|n| *n > 0),
        "seed {seed}: {counts:?}"
    );
    assert!(
        counts.get(&State::NewComplete).is_some_and(|n| *n > 0),
        "seed {seed}: {counts:?}"
    );
}

/// The state a kill leaves in the short window between the output swap and
/// the lock rename, made by hand: the new output, the previous lock, and
/// the new lock staged. `check` reports it, and `compile` completes it.
#[test]
fn a_lock_behind_its_output_is_reported_and_completed_by_the_next_compile() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    write_inputs(&reference, 12);
    assert!(compile(&reference).status.success());
    let work = tmp.path().join("work");
    copy_tree(&reference, &work, false);
    let previous_lock = std::fs::read(reference.join("placement.lock")).unwrap();
    write_inputs(&reference, 15);
    assert!(compile(&reference).status.success());
    let new_lock = std::fs::read(reference.join("placement.lock")).unwrap();
    assert_ne!(previous_lock, new_lock);

    write_inputs(&work, 15);
    std::fs::remove_dir_all(work.join("deploy")).unwrap();
    copy_tree(&reference.join("deploy"), &work.join("deploy"), false);
    std::fs::write(work.join(".placement.lock.tidb-gitops-new"), &new_lock).unwrap();

    let check = Command::new(BIN).arg("check").arg(&work).output().unwrap();
    let text = stderr(&check);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains("placement.lock would change"), "{text}");
    assert!(
        text.contains(".placement.lock.tidb-gitops-new was left by an interrupted run"),
        "{text}"
    );

    let next = compile(&work);
    let text = stderr(&next);
    assert!(next.status.success(), "{text}");
    assert!(
        text.contains("an earlier run was interrupted before it wrote"),
        "{text}"
    );
    assert!(
        text.contains("deploy unchanged") && text.contains("placement.lock written"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(work.join("placement.lock")).unwrap(),
        new_lock
    );
    assert_eq!(
        names(&work),
        ["cluster.toml", "deploy", "inventory.toml", "placement.lock"]
    );
    let check = Command::new(BIN).arg("check").arg(&work).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // A staged lock left over while the lock is already in line (the
    // inputs went back) is only removed.
    std::fs::write(work.join(".placement.lock.tidb-gitops-new"), &previous_lock).unwrap();
    let again = compile(&work);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("placement.lock unchanged"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read(work.join("placement.lock")).unwrap(),
        new_lock
    );
    assert_eq!(
        names(&work),
        ["cluster.toml", "deploy", "inventory.toml", "placement.lock"]
    );
}

/// Two runs never write in the same folder at once: the second is refused
/// while the first holds the folder's lock, and nothing is written.
#[test]
fn a_compile_while_another_writes_in_the_folder_is_refused() {
    use std::os::fd::AsRawFd;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    std::fs::create_dir(&dir).unwrap();
    write_inputs(&dir, 6);
    assert!(compile(&dir).status.success());
    write_inputs(&dir, 9);
    let before = read_tree(&dir).unwrap();

    // Another process's lock, as a running compile holds it.
    let held = std::fs::File::open(&dir).unwrap();
    // SAFETY: `held` is an open descriptor while it is used.
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let refused = compile(&dir);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "another tidb-gitops process is writing in {}",
            dir.display()
        )) && text.contains("help: wait for the other run to finish"),
        "{text}"
    );
    assert!(read_tree(&dir).unwrap() == before, "nothing was written");

    // A separate --out folder is locked too.
    let out = tmp.path().join("elsewhere");
    std::fs::create_dir(&out).unwrap();
    drop(held);
    let held = std::fs::File::open(&out).unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let refused = Command::new(BIN)
        .arg("compile")
        .arg(&dir)
        .arg("--out")
        .arg(out.join("deploy"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("another tidb-gitops process is writing in"));
    assert!(names(&out).is_empty());

    // Once it is released, the run goes through.
    drop(held);
    let next = compile(&dir);
    assert!(next.status.success(), "{}", stderr(&next));
}

/// A file compile cannot have written (not UTF-8) in the output folder:
/// refused with the file's path and a hint, and nothing is written.
#[test]
fn an_output_folder_holding_a_binary_file_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    std::fs::create_dir(&dir).unwrap();
    write_inputs(&dir, 6);
    assert!(compile(&dir).status.success());
    write_inputs(&dir, 9);
    std::fs::write(dir.join("deploy/manifests/.DS_Store"), [0xff, 0xfe, 0x00]).unwrap();
    let before = read_tree(&dir).unwrap();
    let refused = compile(&dir);
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(
        text.contains("cannot read the current output")
            && text.contains("deploy/manifests/.DS_Store: stream did not contain valid UTF-8")
            && text.contains("help: an output folder holds only what tidb-gitops writes"),
        "{text}"
    );
    assert!(read_tree(&dir).unwrap() == before, "nothing was written");
}
