//! Property tests of the rollout simulator (DESIGN §5 "Rollout").
//!
//! Topologies are random trees of zones, racks, hosts and stores. Every
//! property is judged by a checker in this file that works from the
//! generator's own description of each store (its zone, rack and host
//! numbers), never from the simulator's domains or waves.
//!
//! Each property runs a fixed number of cases through its own `TestRunner`
//! so that it can count what it saw and print it (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use tidb_gitops::load::{Texts, load};
use tidb_gitops::place::{Options, place};
use tidb_gitops::simulate::{
    Cluster, Region, Report, Store, Timing, at_risk_domains, cluster_of, place_regions, simulate,
    wave_plan, waves,
};

const LABELS: [&str; 3] = ["zone", "rack", "host"];

// ---------------------------------------------------------------------------
// The generator's description of a topology.

#[derive(Clone, Debug)]
struct Topo {
    /// Zone, then rack, then host: the number of stores on the host.
    shape: Vec<Vec<Vec<usize>>>,
    /// The isolation level as an index into `LABELS`.
    level: Option<usize>,
    max_replicas: usize,
    regions: usize,
    seed: u64,
}

/// Where a store is, in the generator's numbering: zone, rack within the
/// zone, and host (numbered across the whole cluster).
#[derive(Clone, Copy, Debug)]
struct Loc {
    zone: usize,
    rack: usize,
    host: usize,
}

struct Built {
    cluster: Cluster,
    loc: Vec<Loc>,
}

fn zones(shape: &[Vec<Vec<usize>>]) -> usize {
    shape.len()
}

fn racks(shape: &[Vec<Vec<usize>>]) -> usize {
    shape.iter().map(Vec::len).sum()
}

fn hosts(shape: &[Vec<Vec<usize>>]) -> usize {
    shape.iter().flatten().map(Vec::len).sum()
}

fn stores(shape: &[Vec<Vec<usize>>]) -> usize {
    shape.iter().flatten().flatten().sum()
}

/// The number of failure domains at `level` (stores without one).
fn domain_count(shape: &[Vec<Vec<usize>>], level: Option<usize>) -> usize {
    match level {
        Some(0) => zones(shape),
        Some(1) => racks(shape),
        Some(2) => hosts(shape),
        Some(_) => unreachable!(),
        None => stores(shape),
    }
}

/// Stores are listed in an order unrelated to their location, so that a
/// wave is never simply a run of consecutive indices; ids are the order of
/// creation.
fn build(topo: &Topo) -> Built {
    let mut made = Vec::new();
    let mut host = 0;
    for (z, racks) in topo.shape.iter().enumerate() {
        for (r, hosts) in racks.iter().enumerate() {
            for &count in hosts {
                host += 1;
                for _ in 0..count {
                    let loc = Loc {
                        zone: z + 1,
                        rack: r + 1,
                        host,
                    };
                    let store = Store {
                        id: made.len(),
                        labels: vec![
                            ("zone".to_string(), format!("z{}", loc.zone)),
                            // Rack names repeat across zones on purpose: racks
                            // are domains within their zone.
                            ("rack".to_string(), format!("r{}", loc.rack)),
                            ("host".to_string(), format!("h{:03}", loc.host)),
                        ],
                    };
                    made.push((store, loc));
                }
            }
        }
    }
    let mut rng = topo.seed | 1;
    for i in (1..made.len()).rev() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        made.swap(i, (rng % (i as u64 + 1)) as usize);
    }
    let (stores, loc) = made.into_iter().unzip();
    Built {
        cluster: Cluster {
            stores,
            location_labels: LABELS.map(String::from).to_vec(),
            isolation_level: topo.level.map(|l| LABELS[l].to_string()),
            max_replicas: topo.max_replicas,
        },
        loc,
    }
}

// ---------------------------------------------------------------------------
// The checker's failure domains.

/// A store's failure domain at the isolation level, as numbers that sort like
/// the label values (zone, rack, zero-padded host), or the store itself.
fn domain_key(built: &Built, level: Option<usize>, s: usize) -> (usize, usize, usize, usize) {
    let l = built.loc[s];
    match level {
        Some(0) => (l.zone, 0, 0, 0),
        Some(1) => (l.zone, l.rack, 0, 0),
        Some(_) => (l.zone, l.rack, l.host, 0),
        None => (0, 0, 0, s),
    }
}

fn domain_name(built: &Built, level: Option<usize>, s: usize) -> String {
    let l = built.loc[s];
    match level {
        Some(0) => format!("zone=z{}", l.zone),
        Some(1) => format!("zone=z{}/rack=r{}", l.zone, l.rack),
        Some(_) => format!("zone=z{}/rack=r{}/host=h{:03}", l.zone, l.rack, l.host),
        None => format!("store={}", built.cluster.stores[s].id),
    }
}

/// The waves the rollout rule should give: the stores of each domain, in
/// domain order, with the domain's name.
fn expected_waves(built: &Built, level: Option<usize>) -> Vec<(String, Vec<usize>)> {
    let mut by_key: BTreeMap<_, (String, Vec<usize>)> = BTreeMap::new();
    for s in 0..built.loc.len() {
        by_key
            .entry(domain_key(built, level, s))
            .or_insert_with(|| (domain_name(built, level, s), Vec::new()))
            .1
            .push(s);
    }
    by_key.into_values().collect()
}

fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The (Region, wave) pairs where restarting the wave, with `down` already
/// down, leaves the Region without a majority of live replicas.
fn losing_pairs(
    regions: &[Region],
    waves: &[Vec<usize>],
    down: &[usize],
) -> BTreeSet<(usize, usize)> {
    let mut out = BTreeSet::new();
    for (r, region) in regions.iter().enumerate() {
        let n = region.replicas.len();
        if n - region.replicas.iter().filter(|s| down.contains(s)).count() < majority(n) {
            continue;
        }
        for (w, wave) in waves.iter().enumerate() {
            let stopped = region
                .replicas
                .iter()
                .filter(|s| wave.contains(s) || down.contains(s))
                .count();
            if n - stopped < majority(n) {
                out.insert((r, w));
            }
        }
    }
    out
}

fn reported_pairs(report: &Report) -> Result<BTreeSet<(usize, usize)>, TestCaseError> {
    let mut out = BTreeSet::new();
    for loss in &report.quorum_losses {
        let Some(w) = loss.wave else {
            return Err(TestCaseError::fail(format!(
                "quorum lost before the rollout: {loss:?}"
            )));
        };
        out.insert((loss.region, w));
    }
    Ok(out)
}

/// Placement as PD does it: the right number of distinct stores, distinct
/// domains at the isolation level, as many zones as possible, the leader
/// on a replica.
fn check_placement(topo: &Topo, built: &Built, regions: &[Region]) -> Result<(), TestCaseError> {
    let n = topo.max_replicas;
    prop_assert_eq!(regions.len(), topo.regions);
    let zone_count = zones(&topo.shape);
    let mut per_store = vec![0usize; built.loc.len()];
    for region in regions {
        prop_assert_eq!(region.replicas.len(), n);
        let distinct: BTreeSet<usize> = region.replicas.iter().copied().collect();
        prop_assert_eq!(distinct.len(), n, "{:?}", region);
        prop_assert!(region.replicas.contains(&region.leader));
        if topo.level.is_some() {
            let domains: BTreeSet<_> = region
                .replicas
                .iter()
                .map(|&s| domain_key(built, topo.level, s))
                .collect();
            prop_assert_eq!(domains.len(), n, "two replicas in one domain: {:?}", region);
        }
        let zones: BTreeSet<usize> = region.replicas.iter().map(|&s| built.loc[s].zone).collect();
        prop_assert_eq!(zones.len(), n.min(zone_count), "{:?}", region);
        for &s in &region.replicas {
            per_store[s] += 1;
        }
    }
    // Region balance: no store is left empty when there are many more
    // replicas than stores.
    if topo.regions * n >= 20 * built.loc.len() {
        prop_assert!(per_store.iter().all(|&c| c > 0), "{:?}", per_store);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies.

fn shape() -> impl Strategy<Value = Vec<Vec<Vec<usize>>>> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec(1..=3usize, 1..=4), 1..=3),
        1..=5,
    )
}

/// A topology with an isolation level when the requested one (or a finer
/// one) has at least three domains, five replicas when asked and there are
/// five domains, and at least three stores in any case.
fn topo() -> impl Strategy<Value = Topo> {
    (
        shape(),
        prop_oneof![Just(None), Just(Some(0)), Just(Some(1)), Just(Some(2))],
        any::<bool>(),
        1000..=3000usize,
        any::<u64>(),
    )
        .prop_filter_map(
            "fewer than three stores",
            |(shape, level, five, regions, seed)| {
                let level = match level {
                    Some(l) => (l..3)
                        .map(Some)
                        .chain([None])
                        .find(|&l| domain_count(&shape, l) >= 3)?,
                    None if stores(&shape) >= 3 => None,
                    None => return None,
                };
                let max_replicas = if five && domain_count(&shape, level) >= 5 {
                    5
                } else {
                    3
                };
                Some(Topo {
                    shape,
                    level,
                    max_replicas,
                    regions,
                    seed,
                })
            },
        )
}

fn level_name(level: Option<usize>) -> &'static str {
    level.map_or("none", |l| LABELS[l])
}

/// Counts per isolation level and replica count, for the printed summary.
#[derive(Default)]
struct Tally {
    cases: AtomicUsize,
    regions: AtomicUsize,
    by_kind: std::sync::Mutex<BTreeMap<(&'static str, usize), usize>>,
}

impl Tally {
    fn add(&self, topo: &Topo) {
        self.cases.fetch_add(1, Ordering::Relaxed);
        self.regions.fetch_add(topo.regions, Ordering::Relaxed);
        *self
            .by_kind
            .lock()
            .unwrap()
            .entry((level_name(topo.level), topo.max_replicas))
            .or_default() += 1;
    }

    fn describe(&self) -> String {
        let mut out = format!(
            "{} rollouts over {} Regions in all; by isolation level and max_replicas:",
            self.cases.load(Ordering::Relaxed),
            self.regions.load(Ordering::Relaxed)
        );
        for ((level, n), count) in self.by_kind.lock().unwrap().iter() {
            let _ = write!(out, " {level}/{n}: {count}");
        }
        out
    }
}

fn runner(cases: u32) -> TestRunner {
    // The cases are not persisted: these runners are not tied to a source
    // file, and a failure prints the shrunk case.
    TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    })
}

fn timing() -> Timing {
    Timing::default()
}

// ---------------------------------------------------------------------------
// Properties.

/// The compiler's waves, one domain at a time (one store at a time without
/// an isolation level), never take a Region below its quorum and never stop
/// a store that still leads a Region, when nothing else is down.
#[test]
fn compiler_waves_keep_quorum_and_leaders() {
    let tally = Tally::default();
    runner(256)
        .run(&topo(), |topo| {
            let built = build(&topo);
            let regions = place_regions(&built.cluster, topo.regions, topo.seed)
                .map_err(TestCaseError::fail)?;
            check_placement(&topo, &built, &regions)?;

            let expected = expected_waves(&built, topo.level);
            let plan = wave_plan(&built.cluster);
            let got: Vec<(String, Vec<usize>)> =
                plan.into_iter().map(|w| (w.domain, w.stores)).collect();
            prop_assert_eq!(&got, &expected);
            let waves = waves(&built.cluster);

            let report = simulate(&built.cluster, &regions, &waves, &[], timing());
            prop_assert!(
                report.quorum_losses.is_empty(),
                "{:?}",
                report.quorum_losses
            );
            prop_assert!(report.leaderless.is_empty(), "{:?}", report.leaderless);
            prop_assert!(report.is_safe());
            prop_assert_eq!(report.waves, waves.len());
            let largest = waves.iter().map(Vec::len).max().unwrap_or(0);
            prop_assert_eq!(report.peak_stores_down, largest);
            prop_assert!(report.total_ms >= waves.len() as u64 * timing().restart_ms);
            prop_assert!(at_risk_domains(&built.cluster, &regions, &[]).is_empty());
            tally.add(&topo);
            Ok(())
        })
        .unwrap();
    eprintln!(
        "compiler waves, nothing down: {}; none lost quorum or a leader",
        tally.describe()
    );
}

/// With one unrelated store already down, one domain at a time can lose
/// quorum: the replay finds a loss exactly for the (Region, wave) pairs where
/// the wave and the down store together stop too many replicas, and
/// `at_risk_domains` names exactly those waves.
#[test]
fn one_store_down_losses_match_at_risk_domains() {
    let tally = Tally::default();
    let lossy = AtomicUsize::new(0);
    let losses = AtomicUsize::new(0);
    let strategy = (topo(), any::<Index>());
    runner(256)
        .run(&strategy, |(topo, pick)| {
            let built = build(&topo);
            let regions = place_regions(&built.cluster, topo.regions, topo.seed)
                .map_err(TestCaseError::fail)?;
            let down = pick.index(built.loc.len());
            let expected = expected_waves(&built, topo.level);
            let waves = waves(&built.cluster);
            let checker_waves: Vec<Vec<usize>> = expected.iter().map(|(_, s)| s.clone()).collect();
            prop_assert_eq!(&waves, &checker_waves);

            let report = simulate(&built.cluster, &regions, &waves, &[down], timing());
            let want = losing_pairs(&regions, &waves, &[down]);
            prop_assert_eq!(reported_pairs(&report)?, want.clone());
            for loss in &report.quorum_losses {
                prop_assert!(loss.down.contains(&down), "{:?}", loss);
                prop_assert!(loss.until_ms.is_some(), "{:?}", loss);
            }
            // Each wave stops at most one replica of a Region (the domains
            // are distinct), so a live, caught-up replica outside the wave
            // can always take the leader.
            prop_assert!(report.leaderless.is_empty(), "{:?}", report.leaderless);

            let at_risk = at_risk_domains(&built.cluster, &regions, &[down]);
            let want_domains: Vec<String> = want
                .iter()
                .map(|&(_, w)| w)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|w| expected[w].0.clone())
                .collect();
            prop_assert_eq!(&at_risk, &want_domains);
            prop_assert_eq!(report.is_safe(), at_risk.is_empty());
            // The down store's own domain is never at risk: a Region has at
            // most one replica there, so its wave stops nothing more.
            prop_assert!(!at_risk.contains(&domain_name(&built, topo.level, down)));
            if topo.max_replicas >= 5 {
                prop_assert!(at_risk.is_empty(), "two stores down of five replicas");
            }

            tally.add(&topo);
            if !report.quorum_losses.is_empty() {
                lossy.fetch_add(1, Ordering::Relaxed);
                losses.fetch_add(report.quorum_losses.len(), Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let lossy = lossy.into_inner();
    eprintln!(
        "one store down: {}; {lossy} rollouts lost quorum ({} Region losses), each matched by at_risk_domains",
        tally.describe(),
        losses.into_inner()
    );
    assert!(lossy > 0, "no generated case lost quorum");
}

/// Negative control: a wave that restarts two domains at once loses the
/// quorum of every Region with a replica in each, when Regions have three
/// replicas.
#[test]
fn two_domains_at_once_lose_quorum() {
    let tally = Tally::default();
    let spanning = AtomicUsize::new(0);
    let lost = AtomicUsize::new(0);
    let strategy = (
        topo().prop_filter("needs an isolation level", |t| t.level.is_some()),
        any::<Index>(),
        any::<Index>(),
    );
    runner(128)
        .run(&strategy, |(mut topo, a, b)| {
            topo.max_replicas = 3;
            let built = build(&topo);
            let regions = place_regions(&built.cluster, topo.regions, topo.seed)
                .map_err(TestCaseError::fail)?;
            let mut waves: Vec<Vec<usize>> = expected_waves(&built, topo.level)
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            let i = a.index(waves.len());
            let j = (i + 1 + b.index(waves.len() - 1)) % waves.len();
            let (i, j) = (i.min(j), i.max(j));
            let moved = waves.remove(j);
            waves[i].extend(moved);

            let report = simulate(&built.cluster, &regions, &waves, &[], timing());
            let want: BTreeSet<usize> = regions
                .iter()
                .enumerate()
                .filter(|(_, r)| r.replicas.iter().filter(|s| waves[i].contains(s)).count() >= 2)
                .map(|(r, _)| r)
                .collect();
            let got = reported_pairs(&report)?;
            prop_assert!(got.iter().all(|&(_, w)| w == i), "{:?}", got);
            let got: BTreeSet<usize> = got.into_iter().map(|(r, _)| r).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(
                want.clone(),
                losing_pairs(&regions, &waves, &[])
                    .into_iter()
                    .map(|(r, _)| r)
                    .collect::<BTreeSet<_>>()
            );
            // Both domains are a Region's only choice when there are three.
            if domain_count(&topo.shape, topo.level) == 3 {
                prop_assert_eq!(want.len(), regions.len());
            }
            tally.add(&topo);
            if !want.is_empty() {
                spanning.fetch_add(1, Ordering::Relaxed);
                prop_assert!(!report.is_safe());
                lost.fetch_add(want.len(), Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let spanning = spanning.into_inner();
    eprintln!(
        "two domains per wave: {}; {spanning} had Regions spanning both, all detected ({} Region losses)",
        tally.describe(),
        lost.into_inner()
    );
    assert!(
        spanning > 0,
        "no generated case had a Region spanning two domains"
    );
}

// ---------------------------------------------------------------------------
// The compiler end to end: its placement and the waves it records.

fn cluster_toml(topo: &Topo, tikv: usize) -> String {
    let mut out = String::from(
        "[cluster]\nname = \"sim\"\nversion = \"v8.5.1\"\n\n[topology]\nlocation_labels = [\"zone\", \"rack\", \"host\"]\n",
    );
    if let Some(l) = topo.level {
        let _ = writeln!(out, "isolation_level = \"{}\"", LABELS[l]);
    }
    let _ = writeln!(out, "max_replicas = {}", topo.max_replicas);
    let _ = write!(
        out,
        "\n[pd]\nreplicas = 1\nstorage = \"10Gi\"\nmedia = \"ssd\"\n\n[tikv]\nreplicas = {tikv}\nstorage = \"100Gi\"\nmedia = \"nvme\"\n\n[tidb]\nreplicas = 1\n"
    );
    out
}

/// One node per host, with one directory per store and a PD directory.
/// Rack names either repeat across zones (`r1` in every zone) or carry
/// their zone (`z2-r1`).
fn inventory_toml(topo: &Topo, repeat_rack_names: bool) -> String {
    let mut out = String::new();
    let mut host = 0;
    for (z, racks) in topo.shape.iter().enumerate() {
        for (r, hosts) in racks.iter().enumerate() {
            let rack = if repeat_rack_names {
                format!("r{}", r + 1)
            } else {
                format!("z{}-r{}", z + 1, r + 1)
            };
            for &count in hosts {
                host += 1;
                let _ = write!(
                    out,
                    "\n[[node]]\nname = \"h{host:03}\"\nlabels = {{ zone = \"z{}\", rack = \"{rack}\" }}\n\n[[node.dir]]\npath = \"/mnt/ssd\"\ncapacity = \"50Gi\"\nmedia = \"ssd\"\n",
                    z + 1,
                );
                for d in 0..count {
                    let _ = write!(
                        out,
                        "\n[[node.dir]]\npath = \"/mnt/nvme{d}\"\ncapacity = \"500Gi\"\nmedia = \"nvme\"\n"
                    );
                }
            }
        }
    }
    out
}

/// The TiKV waves the compiler's ordering gives each store, as `graph`
/// derives them: the number `placement.lock` records for the store's
/// domain (keyed by its path, `zone=a/rack=r1`), or the instance's ordinal
/// without an isolation level.
fn lock_waves(
    model: &tidb_gitops::model::Model,
    lock: &tidb_gitops::lock::Lock,
    cluster: &Cluster,
) -> Vec<Vec<usize>> {
    let topology = &model.cluster.topology;
    let mut by_wave: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (s, store) in cluster.stores.iter().enumerate() {
        let wave = match &topology.isolation_level {
            Some(_) => {
                let labels = store.labels.iter().cloned().collect();
                lock.tikv_waves[&topology.domain(&labels).expect("labelled store")]
            }
            None => store.id as u32,
        };
        by_wave.entry(wave).or_default().push(s);
    }
    by_wave.into_values().collect()
}

/// Through `load` and `place`: the compiler accepts every topology with at
/// least `max_replicas` domains at the isolation level, the waves it records
/// group the stores as the rollout rule does, and they keep every Region's
/// quorum.
fn compiler_end_to_end(repeat_rack_names: bool, cases: u32) {
    let tally = Tally::default();
    let strategy = topo().prop_filter("without an isolation level, at most 10 TiKV", |t| {
        t.level.is_some() || stores(&t.shape) <= 10
    });
    runner(cases)
        .run(&strategy, |mut topo| {
            topo.regions = 1000;
            let tikv = stores(&topo.shape);
            let cluster = cluster_toml(&topo, tikv);
            let inventory = inventory_toml(&topo, repeat_rack_names);
            let (loaded, diags) = load(Texts {
                cluster: &cluster,
                inventory: &inventory,
                lock: None,
            });
            let loaded = loaded.ok_or_else(|| {
                TestCaseError::fail(format!(
                    "generated input does not load: {:?}",
                    diags.iter().map(|d| &d.message).collect::<Vec<_>>()
                ))
            })?;
            let outcome = place(&loaded.model, &loaded.lock, &Options::default()).map_err(|d| {
                TestCaseError::fail(format!(
                    "refused although there are {} domains for {} replicas: {:?}",
                    domain_count(&topo.shape, topo.level),
                    topo.max_replicas,
                    d.iter().map(|d| &d.message).collect::<Vec<_>>()
                ))
            })?;
            let sim = cluster_of(&loaded.model, &outcome.lock);
            prop_assert_eq!(sim.stores.len(), tikv);
            let recorded = lock_waves(&loaded.model, &outcome.lock, &sim);
            let as_sets =
                |waves: &[Vec<usize>]| -> BTreeSet<Vec<usize>> { waves.iter().cloned().collect() };
            prop_assert_eq!(as_sets(&recorded), as_sets(&waves(&sim)));
            let regions =
                place_regions(&sim, topo.regions, topo.seed).map_err(TestCaseError::fail)?;
            let report = simulate(&sim, &regions, &recorded, &[], timing());
            prop_assert!(
                report.is_safe(),
                "waves {:?} lose {} Regions",
                recorded,
                report.quorum_losses.len()
            );
            tally.add(&topo);
            Ok(())
        })
        .unwrap();
    eprintln!(
        "compiler end to end (rack names {}): {}; none lost quorum or a leader",
        if repeat_rack_names {
            "repeated across zones"
        } else {
            "unique"
        },
        tally.describe()
    );
}

#[test]
fn compiler_lock_waves_keep_quorum() {
    compiler_end_to_end(false, 64);
}

/// DESIGN §5 makes rack `r1` of zone `a` and rack `r1` of zone `b` two
/// racks, and so does PD. The compiler counts the domains for the isolation
/// check and keys `[tikv-waves]` by the bare label value, so it refuses
/// topologies that have enough racks and puts same-named racks of different
/// zones in one wave, which loses quorum for the Regions that span them.
#[test]
fn compiler_lock_waves_keep_quorum_with_repeated_rack_names() {
    compiler_end_to_end(true, 64);
}

/// Loads and places `shape` with rack names repeated across zones and
/// isolation at the rack level.
fn place_repeated_racks(
    shape: Vec<Vec<Vec<usize>>>,
) -> Result<(tidb_gitops::load::Loaded, tidb_gitops::place::Outcome), String> {
    let topo = Topo {
        shape,
        level: Some(1),
        max_replicas: 3,
        regions: 1000,
        seed: 1,
    };
    let cluster = cluster_toml(&topo, stores(&topo.shape));
    let inventory = inventory_toml(&topo, true);
    let (loaded, diags) = load(Texts {
        cluster: &cluster,
        inventory: &inventory,
        lock: None,
    });
    let loaded = loaded.ok_or_else(|| format!("{diags:?}"))?;
    let outcome = place(&loaded.model, &loaded.lock, &Options::default()).map_err(|d| {
        d.iter()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((loaded, outcome))
}

/// Zone z1 has rack r1, zone z2 has racks r1 and r2: three racks for three
/// replicas.
#[test]
fn racks_of_one_name_in_two_zones_are_two_isolation_domains() {
    if let Err(e) = place_repeated_racks(vec![vec![vec![1]], vec![vec![1], vec![1]]]) {
        panic!("refused: {e}");
    }
}

/// Zone z1 has racks r1, r2 and r3, zone z2 has rack r1: PD puts a replica
/// of every Region in z2's only rack and two in z1, so restarting both
/// racks named r1 together takes two replicas of two Regions in three.
#[test]
fn racks_of_one_name_in_two_zones_restart_in_separate_waves() {
    let (loaded, outcome) =
        place_repeated_racks(vec![vec![vec![1], vec![1], vec![1]], vec![vec![1]]]).unwrap();
    let sim = cluster_of(&loaded.model, &outcome.lock);
    let recorded = lock_waves(&loaded.model, &outcome.lock, &sim);
    let regions = place_regions(&sim, 1000, 1).unwrap();
    let report = simulate(&sim, &regions, &recorded, &[], timing());
    assert!(
        report.is_safe(),
        "waves {recorded:?}: {} Regions lose quorum",
        report.quorum_losses.len()
    );
    assert_eq!(recorded.len(), 4, "{recorded:?}");
}
