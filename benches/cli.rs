//! Benchmark of the commands as users run them: `compile`, `check`, `plan`
//! and `diff` of the release binary on synthetic clusters of 100, 1,000 and
//! 10,000 nodes (`generate::Shape::new`: 8 directories and 3 TiKV a node),
//! side by side with two yardsticks measured in the same run:
//!
//! - `cp -r` of the output folder: the cost of writing those bytes at all;
//! - `kubectl kustomize` of the output folder: what a GitOps controller
//!   does with it on every sync (100 and 1,000 nodes only, and at 1,000
//!   nodes once: it takes minutes there, and far longer beyond).
//!
//! Each size gets a Git repository with the cluster folder compiled and
//! committed. Then, per run, in rotation:
//!
//! - `compile`: a first compile (no lock, no output) of a fresh copy of
//!   the inputs;
//! - `check`, `plan --base HEAD` and `diff --base HEAD` of the unchanged
//!   cluster: the CI step and pull-request preview of a change elsewhere;
//! - `cp -r` and `kubectl kustomize` of the committed output folder.
//!
//! It prints the median and minimum wall time and the peak resident memory
//! (from `wait4`) of each, the ratio of each median to `cp -r`'s, and the
//! stage split of one `compile --timings`. Targets, reported and never
//! enforced here: `compile` under 0.5 s at 1,000 nodes and under 5 s at
//! 10,000, peak memory under 1 GiB, `check` and `diff` of an unchanged
//! 1,000-node cluster under 0.5 s, 10,000 nodes at most 12 times 1,000.
//!
//! Usage: `cargo bench --bench cli [-- --quick] [-- --sizes 100,1000]`;
//! `--quick` runs 100 and 1,000 nodes. `BENCH_RUNS=N` sets the runs per
//! size (default 5, 3 at 10,000 nodes); `BENCH_KUSTOMIZE_MAX=100` leaves
//! out the 1,000-node kustomize run (about 10 minutes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tidb_gitops::generate::{Shape, generate};

const BIN: &str = env!("CARGO_BIN_EXE_tidb-gitops");
const KUSTOMIZE_MAX_NODES: usize = 1_000;

/// One finished command: wall time, peak resident memory, exit code.
struct Run {
    wall: Duration,
    peak_kib: i64,
    code: i32,
    stderr: String,
}

/// Runs `command` to completion, measuring what `wait4` reports of it.
// The child is reaped by `wait4` itself, which `Child::wait` cannot do
// while giving its resource usage.
#[allow(clippy::zombie_processes)]
fn run(mut command: Command) -> Run {
    use std::os::unix::process::ExitStatusExt;
    let stderr_file = tempfile::NamedTempFile::new().expect("temp file");
    command
        .stdout(std::process::Stdio::null())
        .stderr(stderr_file.reopen().expect("reopen"));
    let start = Instant::now();
    let child = command.spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned, which nothing else reaps.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    let status = std::process::ExitStatus::from_raw(status);
    Run {
        wall,
        peak_kib: usage.ru_maxrss,
        code: status.code().unwrap_or(-1),
        stderr: std::fs::read_to_string(stderr_file.path()).unwrap_or_default(),
    }
}

fn tool(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd).env("NO_COLOR", "1");
    c
}

fn git(cwd: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?} failed");
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Measurements of one command at one size.
#[derive(Default)]
struct Series {
    walls: Vec<Duration>,
    peak_kib: i64,
}

impl Series {
    fn add(&mut self, r: &Run) {
        self.walls.push(r.wall);
        self.peak_kib = self.peak_kib.max(r.peak_kib);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = if let Some(i) = args.iter().position(|a| a == "--sizes") {
        args.get(i + 1)
            .expect("--sizes takes a list such as 100,1000")
            .split(',')
            .map(|s| s.parse().expect("a number of nodes"))
            .collect()
    } else if args.iter().any(|a| a == "--quick") {
        vec![100, 1_000]
    } else {
        vec![100, 1_000, 10_000]
    };
    let runs_override: Option<usize> = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok());
    // The largest size kustomize builds (it took 10 minutes at 1,000 nodes
    // on the 2-core machine).
    let kustomize_max: usize = std::env::var("BENCH_KUSTOMIZE_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KUSTOMIZE_MAX_NODES);
    let kubectl = kubectl_available();
    if !kubectl {
        println!("kubectl not found: the kustomize yardstick is left out");
    }

    let mut medians: BTreeMap<(usize, &str), Duration> = BTreeMap::new();
    println!(
        "{:>6} {:<10} {:>9} {:>9} {:>9} {:>8}",
        "nodes", "command", "median", "min", "peak MiB", "÷ cp -r"
    );
    for &nodes in &sizes {
        let runs = runs_override.unwrap_or(if nodes >= 10_000 { 3 } else { 5 });
        let scratch = tempfile::tempdir().expect("temp dir");
        let repo = scratch.path().join("repo");
        let cluster = repo.join("clusters/bench");
        std::fs::create_dir_all(&cluster).expect("mkdir");
        let generated = generate(&Shape::new(nodes));
        let inputs = [
            ("cluster.toml", generated.cluster_toml.as_str()),
            ("inventory.toml", generated.inventory_toml.as_str()),
        ];
        for (name, text) in inputs {
            std::fs::write(cluster.join(name), text).expect("write input");
        }
        git(&repo, &["init", "-q"]);
        let first = run(tool(&["compile", "clusters/bench"], &repo));
        assert_eq!(first.code, 0, "the first compile failed: {}", first.stderr);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "bench"]);
        let deploy = cluster.join("deploy");

        let timings = run(tool(
            &["compile", "fresh", "--timings"],
            &fresh_copy(&repo, &inputs, "timings"),
        ));
        let stages = timings
            .stderr
            .lines()
            .find(|l| l.starts_with("timings:"))
            .unwrap_or("timings: (not printed)")
            .to_string();

        let mut series: BTreeMap<&str, Series> = BTreeMap::new();
        for i in 0..runs {
            let work = fresh_copy(&repo, &inputs, &format!("run{i}"));
            let r = run(tool(&["compile", "fresh"], &work));
            assert_eq!(r.code, 0, "compile failed: {}", r.stderr);
            series.entry("compile").or_default().add(&r);

            let r = run(tool(&["check", "clusters/bench"], &repo));
            assert_eq!(
                r.code, 0,
                "check found the committed output stale: {}",
                r.stderr
            );
            series.entry("check").or_default().add(&r);

            let r = run(tool(&["plan", "clusters/bench", "--base", "HEAD"], &repo));
            assert_eq!(r.code, 0, "plan failed: {}", r.stderr);
            series.entry("plan").or_default().add(&r);

            let r = run(tool(&["diff", "clusters/bench", "--base", "HEAD"], &repo));
            assert_eq!(
                r.code, 0,
                "diff of an unchanged cluster exited {}: {}",
                r.code, r.stderr
            );
            series.entry("diff").or_default().add(&r);

            let copy = work.join("copy");
            let mut cp = Command::new("cp");
            cp.arg("-r").arg(&deploy).arg(&copy);
            let r = run(cp);
            assert_eq!(r.code, 0, "cp -r failed");
            series.entry("cp -r").or_default().add(&r);

            // kustomize takes minutes at 1,000 nodes: once is enough there.
            let kustomize_runs = if nodes >= KUSTOMIZE_MAX_NODES {
                1
            } else {
                runs
            };
            if kubectl && nodes <= kustomize_max && i < kustomize_runs {
                let mut k = Command::new("kubectl");
                k.arg("kustomize").arg(&deploy);
                let r = run(k);
                assert_eq!(r.code, 0, "kubectl kustomize failed: {}", r.stderr);
                series.entry("kustomize").or_default().add(&r);
            }
            let _ = std::fs::remove_dir_all(&work);
        }
        let cp = median(&series["cp -r"].walls);
        for name in ["compile", "check", "plan", "diff", "cp -r", "kustomize"] {
            let Some(s) = series.get(name) else { continue };
            let med = median(&s.walls);
            medians.insert((nodes, name), med);
            println!(
                "{nodes:>6} {name:<10} {:>8.3}s {:>8.3}s {:>9.0} {:>7.1}×",
                secs(med),
                secs(*s.walls.iter().min().expect("runs")),
                s.peak_kib as f64 / 1024.0,
                secs(med) / secs(cp),
            );
        }
        println!(
            "       one compile: {}",
            stages.trim_start_matches("timings: ")
        );
        if let (Some(k), Some(c)) = (
            medians.get(&(nodes, "kustomize")),
            medians.get(&(nodes, "compile")),
        ) {
            println!(
                "       kubectl kustomize takes {:.1}× as long as compile",
                secs(*k) / secs(*c)
            );
        }
    }

    println!();
    let target = |name: &str, nodes: usize, limit: f64| {
        if let Some(m) = medians.get(&(nodes, name)) {
            let verdict = if secs(*m) < limit { "PASS" } else { "FAIL" };
            println!(
                "target: {name} at {nodes} nodes under {limit} s: {:.3} s {verdict}",
                secs(*m)
            );
        }
    };
    target("compile", 1_000, 0.5);
    target("compile", 10_000, 5.0);
    target("check", 1_000, 0.5);
    target("diff", 1_000, 0.5);
    for name in ["compile", "check", "plan", "diff"] {
        if let (Some(a), Some(b)) = (medians.get(&(1_000, name)), medians.get(&(10_000, name))) {
            let growth = secs(*b) / secs(*a);
            let verdict = if growth <= 12.0 { "PASS" } else { "FAIL" };
            println!("target: {name} 10,000 nodes at most 12× 1,000: {growth:.1}× {verdict}");
        }
    }
}

/// A new folder under `repo` holding a copy of the inputs as `fresh/`,
/// without lock or output: a first compile.
fn fresh_copy(repo: &Path, inputs: &[(&str, &str)], name: &str) -> PathBuf {
    let work = repo.join("..").join(name);
    let _ = std::fs::remove_dir_all(&work);
    let fresh = work.join("fresh");
    std::fs::create_dir_all(&fresh).expect("mkdir");
    for (file, text) in inputs {
        std::fs::write(fresh.join(file), text).expect("write input");
    }
    work
}
