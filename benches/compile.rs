//! Benchmark of the whole `compile` at scale: placement, objects, rendering
//! and writing the output folder, on synthetic clusters of 100, 1,000 and
//! 10,000 nodes (`generate::Shape::new`: 8 directories and 3 TiKV a node).
//!
//! Each run compiles from an empty lock (a first compile, the largest
//! output change) and writes the output folder into a fresh temporary
//! folder. It prints, per size, the median and minimum of the total and of
//! each stage (the same split as `compile --timings`), the number of files,
//! and the process's peak resident memory after that size (sizes run in
//! increasing order, so the peak belongs to the largest size so far).
//!
//! A second timing per run recompiles with the first lock after one
//! setting changed, writing into the existing output folder: the everyday
//! case of a pull request or a pre-commit hook.
//!
//! Usage: `cargo bench --bench compile [-- --quick]`; `--quick` runs only 100
//! and 1,000 nodes. `BENCH_RUNS=N` sets the runs per size (default 5, 3 for
//! 10,000 nodes). Target: 1,000 nodes in under 0.5 s. Like the placement
//! benchmark it reports and never fails; `benches/cli.rs` times the
//! commands themselves, as users run them.

use std::time::{Duration, Instant};

// The allocator of the binary (src/main.rs), so the stages cost here what
// they cost there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tidb_gitops::compile::{Options, compile};
use tidb_gitops::generate::{Shape, generate};
use tidb_gitops::load::Texts;
use tidb_gitops::output;

const TARGET_1000: Duration = Duration::from_millis(500);

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    let runs_override = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok());
    let options = Options {
        strict_config: false,
        repo_path: "clusters/bench/deploy".into(),
        ..Default::default()
    };
    println!(
        "{:>6} {:>6} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9} {:>9} | {:>8}",
        "nodes", "files", "total", "min", "load", "place", "objects", "render", "write", "peak MiB"
    );
    for &nodes in sizes {
        let generated = generate(&Shape::new(nodes));
        let runs = runs_override.unwrap_or(if nodes >= 10_000 { 3 } else { 5 });
        let mut total = Vec::new();
        let mut stages: [Vec<Duration>; 5] = Default::default();
        let mut files = 0;
        let mut recompile = Vec::new();
        // The scratch folders are removed only after all runs: deleting
        // thousands of files just before creating thousands more makes the
        // filesystem's inode allocator skip the freshly freed ones, a cost
        // of the benchmark loop that a compile in a checkout does not have.
        let mut scratches = Vec::new();
        for _ in 0..runs {
            let scratch = tempfile::tempdir().expect("temp dir");
            let out = scratch.path().join("deploy");
            let start = Instant::now();
            let compiled = compile(
                Texts {
                    cluster: &generated.cluster_toml,
                    inventory: &generated.inventory_toml,
                    lock: None,
                },
                &options,
            )
            .expect("the generated cluster compiles");
            let before_write = Instant::now();
            output::write(&out, &compiled.files).expect("write output");
            let write = before_write.elapsed();
            total.push(start.elapsed());
            files = compiled.files.len();
            let t = compiled.timings;
            for (i, d) in [t.load, t.place, t.objects, t.render, write]
                .into_iter()
                .enumerate()
            {
                stages[i].push(d);
            }
            // The everyday case: the lock and output exist, one setting
            // changed (TiDB's log level: one ConfigMap and TiDB's workload).
            let lock = compiled.lock.render();
            let changed = generated
                .cluster_toml
                .replace("[tidb]", "[tidb.config]\n\"log.level\" = \"warn\"\n[tidb]");
            let start = Instant::now();
            let again = compile(
                Texts {
                    cluster: &changed,
                    inventory: &generated.inventory_toml,
                    lock: Some(&lock),
                },
                &options,
            )
            .expect("the changed cluster compiles");
            output::write(&out, &again.files).expect("write output");
            recompile.push(start.elapsed());
            scratches.push(scratch);
        }
        drop(scratches);
        let min = *total.iter().min().expect("runs");
        let med = median(&mut total);
        let s: Vec<f64> = stages.iter_mut().map(|v| ms(median(v))).collect();
        println!(
            "{nodes:>6} {files:>6} {:>7.1}ms {:>7.1}ms | {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms | {:>8.0}",
            ms(med),
            ms(min),
            s[0],
            s[1],
            s[2],
            s[3],
            s[4],
            peak_rss_mib().unwrap_or(f64::NAN)
        );
        println!(
            "       recompile after one change, into the existing output: {:.1} ms median",
            ms(median(&mut recompile))
        );
        if nodes == 1_000 {
            println!(
                "       target: 1,000 nodes under {} ms: {}",
                TARGET_1000.as_millis(),
                if med < TARGET_1000 { "PASS" } else { "FAIL" }
            );
        }
    }
}
