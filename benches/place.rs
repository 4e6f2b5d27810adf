//! Scale benchmark of the compile pipeline on synthetic clusters.
//!
//! For 100, 1,000 and 10,000 nodes (`generate::Shape::new`: 8 directories and
//! 3 TiKV per node) it times, separately:
//!
//! - `parse+validate`: `load` of the generated cluster and inventory texts;
//! - `place (empty)`:  `place` from an empty lock, i.e. a first compile;
//! - `re-place`:       `place` with the lock the first placement produced,
//!   the common CI case where nothing changed;
//! - `render`:         `Lock::render` of that lock.
//!
//! Usage: `cargo bench --bench place [-- --quick]`. `--quick` runs only 100
//! and 1,000 nodes, 3 runs each, so CI can smoke-run it in a few seconds.
//! `BENCH_RUNS=N` overrides the number of runs for every size.
//!
//! It is std-only on purpose (no criterion): the stages are milliseconds to
//! seconds long, so a handful of runs summarised by median and min is
//! enough, and the crate stays free of heavy dev-dependencies. Targets are
//! reported as PASS/FAIL but never turn into a non-zero exit: a benchmark
//! reports, it does not gate (timings on shared CI machines are too noisy).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tidb_gitops::generate::{Shape, generate};
use tidb_gitops::load::{Texts, load};
use tidb_gitops::lock::Lock;
use tidb_gitops::place::{Options, place};

/// Node counts of a full run; each step is 10× so ratios read as growth.
const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// `--quick` drops the 10,000-node size, which dominates the run time.
const QUICK_SIZES: [usize; 2] = [100, 1_000];

/// Placement targets (median), per node count.
const PLACE_TARGETS: [(usize, Duration); 2] = [
    (1_000, Duration::from_millis(100)),
    (10_000, Duration::from_secs(2)),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Load,
    PlaceEmpty,
    Replace,
    Render,
}

impl Stage {
    const ALL: [Stage; 4] = [
        Stage::Load,
        Stage::PlaceEmpty,
        Stage::Replace,
        Stage::Render,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Load => "parse+validate",
            Stage::PlaceEmpty => "place (empty lock)",
            Stage::Replace => "re-place (prev lock)",
            Stage::Render => "render lock",
        }
    }

    fn is_placement(self) -> bool {
        matches!(self, Stage::PlaceEmpty | Stage::Replace)
    }

    /// The target for this stage at `nodes`, if one was set.
    fn target(self, nodes: usize) -> Option<Duration> {
        if !self.is_placement() {
            return None;
        }
        PLACE_TARGETS
            .iter()
            .find(|(n, _)| *n == nodes)
            .map(|&(_, t)| t)
    }
}

/// Median and minimum of a set of runs.
#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    min: Duration,
}

/// One row of the result table.
struct Row {
    nodes: usize,
    stage: Stage,
    runs: usize,
    stats: Stats,
}

/// Times `runs` calls of `f`.
///
/// There is no separate warm-up: the median already discards a slow first
/// run, and at 10,000 nodes a warm-up would cost as much as a measured run.
/// The result is dropped after the clock stops, so freeing a large model or
/// lock is not charged to the stage (the CLI just exits instead).
fn measure<T>(runs: usize, mut f: impl FnMut() -> T) -> Stats {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = black_box(f());
        times.push(start.elapsed());
        drop(out);
    }
    times.sort();
    Stats {
        median: median(&times),
        min: times[0],
    }
}

/// Median of sorted, non-empty `times` (mean of the middle two for even counts).
fn median(times: &[Duration]) -> Duration {
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2
    }
}

/// Benchmarks every stage for one cluster size.
fn bench_size(nodes: usize, runs: usize) -> Vec<Row> {
    let shape = Shape::new(nodes);
    // Generating the texts is setup, not part of what a user waits for.
    let texts = generate(&shape);
    let input = Texts {
        cluster: &texts.cluster_toml,
        inventory: &texts.inventory_toml,
        lock: None,
    };

    // Untimed reference results: they are the inputs of the later stages, and
    // checking them up front makes sure we time the success path, not an
    // early error return.
    let (loaded, diagnostics) = load(input);
    let Some(loaded) = loaded else {
        panic!("{nodes} nodes: the generated input does not load: {diagnostics:#?}");
    };
    let first = place(&loaded.model, &Lock::default(), &Options::default())
        .unwrap_or_else(|e| panic!("{nodes} nodes: placement failed: {e:#?}"));
    let expected = nodes * shape.tikv_per_node + shape.pd_replicas;
    if first.lock.entries.len() != expected {
        eprintln!(
            "note: {nodes} nodes: the lock holds {} instances, expected {expected}",
            first.lock.entries.len()
        );
    }
    // Re-placing an unchanged cluster must be a no-op; if it is not, the
    // re-place row measures a different (moving) path and should be read so.
    let again = place(&loaded.model, &first.lock, &Options::default())
        .unwrap_or_else(|e| panic!("{nodes} nodes: re-placement failed: {e:#?}"));
    if again.lock != first.lock || !again.events.is_empty() {
        eprintln!(
            "note: {nodes} nodes: re-placement is not a no-op ({} events)",
            again.events.len()
        );
    }

    let options = Options::default();
    let empty = Lock::default();
    Stage::ALL
        .into_iter()
        .map(|stage| {
            let stats = match stage {
                Stage::Load => measure(runs, || load(black_box(input))),
                Stage::PlaceEmpty => measure(runs, || {
                    place(black_box(&loaded.model), black_box(&empty), &options)
                }),
                Stage::Replace => measure(runs, || {
                    place(black_box(&loaded.model), black_box(&first.lock), &options)
                }),
                Stage::Render => measure(runs, || black_box(&first.lock).render()),
            };
            Row {
                nodes,
                stage,
                runs,
                stats,
            }
        })
        .collect()
}

/// `12345` as `12,345`, so node counts in the table match the brief's wording.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_table(rows: &[Row]) {
    println!(
        "{:>7}  {:<21} {:>4}  {:>11}  {:>11}  {:>10}  verdict",
        "nodes", "stage", "runs", "median ms", "min ms", "target"
    );
    for row in rows {
        let (target, verdict) = match row.stage.target(row.nodes) {
            // Judged on the median: the min is a best case a CI run rarely sees.
            Some(t) => (
                format!("< {} ms", thousands(t.as_millis() as usize)),
                if row.stats.median < t { "PASS" } else { "FAIL" },
            ),
            None => (String::new(), ""),
        };
        let line = format!(
            "{:>7}  {:<21} {:>4}  {:>11.3}  {:>11.3}  {:>10}  {}",
            thousands(row.nodes),
            row.stage.name(),
            row.runs,
            ms(row.stats.median),
            ms(row.stats.min),
            target,
            verdict
        );
        println!("{}", line.trim_end());
    }
}

/// Median ratios between consecutive sizes: with 10× more nodes, linear
/// growth reads as about 10×, and n·log n as a little above.
fn print_growth(rows: &[Row], sizes: &[usize]) {
    let pairs: Vec<(usize, usize)> = sizes.windows(2).map(|w| (w[0], w[1])).collect();
    if pairs.is_empty() {
        return;
    }
    println!();
    println!("growth of the median per 10x nodes (linear = 10.0x)");
    let mut header = format!("{:<23}", "stage");
    for &(small, large) in &pairs {
        header.push_str(&format!(
            "  {:>12}",
            format!("{}/{}", thousands(large), thousands(small))
        ));
    }
    println!("{header}");
    for stage in Stage::ALL {
        let median_at = |nodes: usize| {
            rows.iter()
                .find(|r| r.nodes == nodes && r.stage == stage)
                .map(|r| r.stats.median.as_secs_f64())
        };
        // Placement is what the growth expectation is about; the rest is context.
        let mark = if stage.is_placement() { " *" } else { "" };
        let mut line = format!("{:<23}", format!("{}{mark}", stage.name()));
        for &(small, large) in &pairs {
            match (median_at(small), median_at(large)) {
                (Some(s), Some(l)) if s > 0.0 => line.push_str(&format!("  {:>11.1}x", l / s)),
                _ => line.push_str(&format!("  {:>12}", "-")),
            }
        }
        println!("{line}");
    }
    println!("* placement: expected about 10x per step");
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter) to harness-less
    // binaries; only `--quick` matters here, the rest is ignored.
    let quick = std::env::args().skip(1).any(|a| a == "--quick");
    let runs_override = std::env::var("BENCH_RUNS").ok().map(|v| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("BENCH_RUNS must be a positive integer, got {v:?}"))
    });
    let sizes: &[usize] = if quick { &QUICK_SIZES } else { &SIZES };
    // Fewer runs at 10,000 nodes: a run there takes ~10× longer, and the
    // median of 5 is already stable at that length.
    let runs_for = |nodes: usize| {
        runs_override.unwrap_or(match (quick, nodes) {
            (true, _) => 3,
            (false, n) if n >= 10_000 => 5,
            _ => 11,
        })
    };

    println!(
        "tidb-gitops placement benchmark{} ({} build)",
        if quick { " --quick" } else { "" },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "shape: generate::Shape::new(n): 8 dirs/node, 3 TiKV/node, 3 PD, 3 zones, ~20 nodes/rack"
    );
    println!();

    let mut rows = Vec::new();
    for &nodes in sizes {
        rows.extend(bench_size(nodes, runs_for(nodes)));
    }
    print_table(&rows);
    print_growth(&rows, sizes);
}
