//! Property tests of the day-2 simulator: scale in, failover and PD member
//! changes (`simulate::replay_day2`, `simulate::day2_sequence`).
//!
//! Clusters have three zones of racks of hosts, one node per host. Every
//! replay is judged by a checker in this file that rebuilds the outcome from
//! the replay's event log with its own bookkeeping and the generator's own
//! description of each host (zone and rack numbers), never from the
//! simulator's domains: it recomputes which Regions lost their quorum or
//! their data, which workloads went while holding replicas, and when PD lost
//! its quorum, and it checks that every move PD made was legal (a Region
//! with a quorum, an Up and running target in a domain none of the other
//! voters is in, a source that is Offline or down) and that PD accepted a
//! store's deletion only with enough Up stores left.
//!
//! Each property runs a fixed number of cases through its own `TestRunner`
//! and prints what it saw (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use tidb_gitops::simulate::{
    Breach, Cluster, Day2Event, Day2Options, Day2Report, Day2Sequence, Day2Timing, Gate, Node, Op,
    PdStoreState, Plan, Region, Store, Story, day2_sequence, place_regions, replay_day2,
};

const LABELS: [&str; 3] = ["zone", "rack", "host"];

// ---------------------------------------------------------------------------
// The generator's description of a cluster.

#[derive(Clone, Debug)]
struct Topo {
    /// Zone, then rack, then host: (stores on the host, spare directories).
    shape: Vec<Vec<Vec<(usize, usize)>>>,
    /// The isolation level as an index into `LABELS`.
    level: usize,
    max_replicas: usize,
    pd_members: usize,
    regions: usize,
    stories: usize,
    seed: u64,
}

/// Where a host is: zone and rack within the zone (numbered from 1), and
/// the host's number across the cluster.
#[derive(Clone, Copy, Debug)]
struct Loc {
    zone: usize,
    rack: usize,
    host: usize,
}

struct Built {
    cluster: Cluster,
    nodes: Vec<Node>,
    /// Each host's location, by node name.
    hosts: BTreeMap<String, Loc>,
    pd: Vec<String>,
}

fn host_name(host: usize) -> String {
    format!("h{host:03}")
}

fn build(topo: &Topo) -> Built {
    let mut stores = Vec::new();
    let mut nodes = Vec::new();
    let mut hosts = BTreeMap::new();
    let mut host = 0;
    for (z, racks) in topo.shape.iter().enumerate() {
        for (r, on_rack) in racks.iter().enumerate() {
            for &(count, spare) in on_rack {
                host += 1;
                let loc = Loc {
                    zone: z + 1,
                    rack: r + 1,
                    host,
                };
                let labels = vec![
                    ("zone".to_string(), format!("z{}", loc.zone)),
                    // Rack names repeat across zones on purpose: racks are
                    // domains within their zone.
                    ("rack".to_string(), format!("r{}", loc.rack)),
                    ("host".to_string(), host_name(host)),
                ];
                for _ in 0..count {
                    stores.push(Store {
                        id: stores.len(),
                        labels: labels.clone(),
                    });
                }
                nodes.push(Node {
                    name: host_name(host),
                    labels,
                    slots: count + spare,
                });
                hosts.insert(host_name(host), loc);
            }
        }
    }
    Built {
        cluster: Cluster {
            stores,
            location_labels: LABELS.map(String::from).to_vec(),
            isolation_level: Some(LABELS[topo.level].to_string()),
            max_replicas: topo.max_replicas,
        },
        nodes,
        hosts,
        pd: (0..topo.pd_members).map(|i| format!("pd-{i}")).collect(),
    }
}

fn domain_count(shape: &[Vec<Vec<(usize, usize)>>], level: usize) -> usize {
    match level {
        0 => shape.len(),
        1 => shape.iter().map(Vec::len).sum(),
        _ => shape.iter().flatten().map(Vec::len).sum(),
    }
}

fn majority(n: usize) -> usize {
    n / 2 + 1
}

// ---------------------------------------------------------------------------
// The checker.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PdState {
    Unknown,
    Up,
    Offline,
    Tombstone,
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Outcome {
    quorum_lost: BTreeSet<usize>,
    data_lost: BTreeSet<usize>,
    removed_holding: BTreeSet<usize>,
    /// (from, until) for each PD quorum loss.
    pd_losses: Vec<(u64, Option<u64>)>,
}

/// Rebuilds a replay from its log. Every store's domain comes from the
/// host in its labels and the generator's `Loc` of that host.
struct Checker<'a> {
    built: &'a Built,
    level: usize,
    max_replicas: usize,
    loc: Vec<Loc>,
    pd: Vec<PdState>,
    running: Vec<bool>,
    wiped: Vec<bool>,
    voters: Vec<Vec<usize>>,
    learner: Vec<Option<usize>>,
    /// Voters and learners on each store.
    held: Vec<usize>,
    /// Voters that hold every committed write.
    fresh: Vec<Vec<usize>>,
    /// Member name to (alive, still a member).
    members: BTreeMap<String, (bool, bool)>,
    open_pd_loss: bool,
    outcome: Outcome,
    /// Removals of stores that were not Tombstone.
    removed_early: Vec<usize>,
    violations: Vec<String>,
    /// Process stops while some move was in flight.
    stops_mid_move: usize,
    learners_dropped: usize,
    /// Reclaims of a store PD had not buried.
    early_reclaims: usize,
}

impl<'a> Checker<'a> {
    fn new(built: &'a Built, level: usize, regions: &[Region]) -> Checker<'a> {
        let stores = built.cluster.stores.len();
        let mut held = vec![0; stores];
        for region in regions {
            for &s in &region.replicas {
                held[s] += 1;
            }
        }
        Checker {
            built,
            level,
            max_replicas: built.cluster.max_replicas,
            loc: built
                .cluster
                .stores
                .iter()
                .map(|s| Self::loc_of(built, s))
                .collect(),
            pd: vec![PdState::Up; stores],
            running: vec![true; stores],
            wiped: vec![false; stores],
            voters: regions.iter().map(|r| r.replicas.clone()).collect(),
            learner: vec![None; regions.len()],
            held,
            fresh: regions.iter().map(|r| r.replicas.clone()).collect(),
            members: built.pd.iter().map(|m| (m.clone(), (true, true))).collect(),
            open_pd_loss: false,
            outcome: Outcome::default(),
            removed_early: Vec::new(),
            violations: Vec::new(),
            stops_mid_move: 0,
            learners_dropped: 0,
            early_reclaims: 0,
        }
    }

    fn loc_of(built: &Built, store: &Store) -> Loc {
        let host = &store
            .labels
            .iter()
            .find(|(k, _)| k == "host")
            .expect("a host label")
            .1;
        built.hosts[host]
    }

    /// The store's domain at the isolation level.
    fn domain(&self, s: usize) -> (usize, usize, usize) {
        let l = self.loc[s];
        match self.level {
            0 => (l.zone, 0, 0),
            1 => (l.zone, l.rack, 0),
            _ => (l.zone, l.rack, l.host),
        }
    }

    fn live(&self, r: usize) -> usize {
        self.voters[r].iter().filter(|&&v| self.running[v]).count()
    }

    fn has_quorum(&self, r: usize) -> bool {
        self.live(r) >= majority(self.voters[r].len())
    }

    fn pd_ok(&self) -> bool {
        let members = self.members.values().filter(|(_, m)| *m).count();
        let alive = self.members.values().filter(|(a, m)| *a && *m).count();
        members > 0 && alive >= majority(members)
    }

    fn pd_check(&mut self, at: u64) {
        let ok = self.pd_ok();
        if !ok && !self.open_pd_loss {
            self.open_pd_loss = true;
            self.outcome.pd_losses.push((at, None));
        } else if ok && self.open_pd_loss {
            self.open_pd_loss = false;
            self.outcome.pd_losses.last_mut().unwrap().1 = Some(at);
        }
    }

    fn violation(&mut self, at: u64, what: String) {
        self.violations.push(format!("at {at} ms: {what}"));
    }

    fn run(mut self, report: &Day2Report) -> Self {
        for entry in &report.log {
            let at = entry.at_ms;
            match &entry.event {
                Day2Event::Added(s, store) => {
                    assert_eq!(*s, self.loc.len(), "stores are added in order");
                    self.loc.push(Self::loc_of(self.built, store));
                    self.pd.push(PdState::Unknown);
                    self.running.push(true);
                    self.wiped.push(false);
                    self.held.push(0);
                }
                Day2Event::Registered(s) => self.pd[*s] = PdState::Up,
                Day2Event::Offline(s) => {
                    let up = self.pd.iter().filter(|&&p| p == PdState::Up).count();
                    if self.pd[*s] != PdState::Up || up - 1 < self.max_replicas || !self.pd_ok() {
                        let what = format!(
                            "store {s} offline from {:?} with {up} Up stores",
                            self.pd[*s]
                        );
                        self.violation(at, what);
                    }
                    self.pd[*s] = PdState::Offline;
                }
                Day2Event::Tombstone(s) => {
                    if self.pd[*s] != PdState::Offline || self.held[*s] != 0 {
                        let what = format!("store {s} tombstone holding {}", self.held[*s]);
                        self.violation(at, what);
                    }
                    self.pd[*s] = PdState::Tombstone;
                }
                Day2Event::Removed(s) => {
                    if self.held[*s] > 0 {
                        self.outcome.removed_holding.insert(*s);
                    }
                    if self.pd[*s] != PdState::Tombstone {
                        self.removed_early.push(*s);
                    }
                }
                Day2Event::Stopped(stores) => {
                    self.stops_mid_move += usize::from(self.learner.iter().any(Option::is_some));
                    for &s in stores {
                        self.running[s] = false;
                    }
                    for r in 0..self.voters.len() {
                        if !self.voters[r].iter().any(|v| stores.contains(v)) {
                            continue;
                        }
                        if self.has_quorum(r) {
                            let running = &self.running;
                            self.fresh[r].retain(|&v| running[v]);
                        } else {
                            self.outcome.quorum_lost.insert(r);
                        }
                    }
                }
                Day2Event::Wiped(s) => {
                    self.wiped[*s] = true;
                    self.early_reclaims += usize::from(self.pd[*s] != PdState::Tombstone);
                    for r in 0..self.fresh.len() {
                        if let Some(i) = self.fresh[r].iter().position(|v| v == s) {
                            self.fresh[r].remove(i);
                            if self.fresh[r].is_empty() {
                                self.outcome.data_lost.insert(r);
                            }
                        }
                    }
                }
                Day2Event::LearnerAdded { region, store } => {
                    let (r, t) = (*region, *store);
                    if self.learner[r].is_some()
                        || !self.has_quorum(r)
                        || self.pd[t] != PdState::Up
                        || !self.running[t]
                        || self.voters[r].contains(&t)
                        || !self.pd_ok()
                    {
                        let what = format!("learner of Region {r} on store {t}");
                        self.violation(at, what);
                    }
                    self.learner[r] = Some(t);
                    self.held[t] += 1;
                }
                Day2Event::LearnerDropped { region, store } => {
                    assert_eq!(self.learner[*region], Some(*store));
                    self.learners_dropped += 1;
                    self.learner[*region] = None;
                    self.held[*store] -= 1;
                }
                Day2Event::Swapped { region, out, into } => {
                    let (r, out, into) = (*region, *out, *into);
                    let others: Vec<usize> = self.voters[r]
                        .iter()
                        .copied()
                        .filter(|&v| v != out)
                        .collect();
                    let isolated = others.iter().all(|&o| self.domain(o) != self.domain(into));
                    let source_going = self.pd[out] == PdState::Offline || !self.running[out];
                    if self.learner[r] != Some(into)
                        || !self.voters[r].contains(&out)
                        || !self.has_quorum(r)
                        || !self.running[into]
                        || !isolated
                        || !source_going
                    {
                        let what = format!("swap of Region {r} from {out} to {into}");
                        self.violation(at, what);
                    }
                    self.learner[r] = None;
                    let i = self.voters[r].iter().position(|&v| v == out).unwrap();
                    self.voters[r][i] = into;
                    self.voters[r].sort_unstable();
                    self.held[out] -= 1;
                    let running = &self.running;
                    self.fresh[r] = self.voters[r]
                        .iter()
                        .copied()
                        .filter(|&v| running[v])
                        .collect();
                }
                Day2Event::PdStopped(name) => {
                    self.members.get_mut(name).unwrap().0 = false;
                    self.pd_check(at);
                }
                Day2Event::PdDeleted(name) => {
                    if !self.pd_ok() {
                        self.violation(at, format!("member {name} deleted without quorum"));
                    }
                    self.members.get_mut(name).unwrap().1 = false;
                    self.pd_check(at);
                }
                Day2Event::PdJoined(name) => {
                    if !self.pd_ok() {
                        self.violation(at, format!("member {name} joined without quorum"));
                    }
                    self.members.insert(name.clone(), (false, true));
                    self.pd_check(at);
                }
                Day2Event::PdStarted(name) => {
                    self.members.get_mut(name).unwrap().0 = true;
                    self.pd_check(at);
                }
            }
        }
        self
    }

    /// Every Region back at full strength: `max_replicas` voters on Up,
    /// running stores in distinct domains, and no store left Offline.
    fn check_fully_replicated(&self) -> Result<(), TestCaseError> {
        for (r, voters) in self.voters.iter().enumerate() {
            prop_assert_eq!(voters.len(), self.max_replicas);
            for &v in voters {
                prop_assert!(
                    self.running[v] && self.pd[v] == PdState::Up,
                    "Region {} has a voter on store {} ({:?}, running {})",
                    r,
                    v,
                    self.pd[v],
                    self.running[v]
                );
            }
            let domains: BTreeSet<_> = voters.iter().map(|&v| self.domain(v)).collect();
            prop_assert_eq!(domains.len(), voters.len(), "Region {}: {:?}", r, voters);
        }
        prop_assert!(!self.pd.contains(&PdState::Offline), "{:?}", self.pd);
        Ok(())
    }
}

fn outcome_of(report: &Day2Report) -> Outcome {
    Outcome {
        quorum_lost: report.quorum_losses.iter().map(|l| l.region).collect(),
        data_lost: report.data_losses.iter().map(|l| l.region).collect(),
        removed_holding: report
            .removed_with_replicas
            .iter()
            .map(|r| r.store)
            .collect(),
        pd_losses: report
            .pd_quorum_losses
            .iter()
            .map(|l| (l.at_ms, l.until_ms))
            .collect(),
    }
}

/// Replays `plans` and checks the report against the checker; returns both.
fn replay_and_check<'a>(
    built: &'a Built,
    topo: &Topo,
    regions: &[Region],
    plans: &[Plan],
) -> Result<(Day2Report, Checker<'a>), TestCaseError> {
    let report = replay_day2(
        &built.cluster,
        regions,
        &built.pd,
        plans,
        Day2Timing::default(),
    );
    let checker = Checker::new(built, topo.level, regions).run(&report);
    prop_assert!(
        checker.violations.is_empty(),
        "PD did something it would not: {:?}",
        &checker.violations[..checker.violations.len().min(5)]
    );
    prop_assert_eq!(&outcome_of(&report), &checker.outcome);
    prop_assert_eq!(&report.voters, &checker.voters);
    // Nothing restarts in a day-2 replay, so a lost quorum never returns.
    for loss in &report.quorum_losses {
        prop_assert!(loss.stopped.len() > regions[0].replicas.len() / 2);
    }
    Ok((report, checker))
}

// ---------------------------------------------------------------------------
// Strategies.

/// Three zones of one to three racks of one to three hosts, each host with
/// one or two stores and up to two spare directories.
fn shape() -> impl Strategy<Value = Vec<Vec<Vec<(usize, usize)>>>> {
    prop::collection::vec(
        prop::collection::vec(
            prop::collection::vec((1..=2usize, 0..=2usize), 1..=3),
            1..=3,
        ),
        3,
    )
}

/// Isolation at zone, rack or host; five replicas when asked and there are
/// five domains at the level.
fn topo() -> impl Strategy<Value = Topo> {
    (
        shape(),
        0..3usize,
        any::<bool>(),
        any::<bool>(),
        1000..=2000usize,
        3..=8usize,
        any::<u64>(),
    )
        .prop_map(|(shape, level, five, pd_five, regions, stories, seed)| {
            let max_replicas = if five && domain_count(&shape, level) >= 5 {
                5
            } else {
                3
            };
            Topo {
                shape,
                level,
                max_replicas,
                pd_members: if pd_five { 5 } else { 3 },
                regions,
                stories,
                seed,
            }
        })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    })
}

fn options(topo: &Topo, breach: Option<Breach>) -> Day2Options {
    Day2Options {
        stories: topo.stories,
        seed: topo.seed,
        breach,
        timing: Day2Timing::default(),
    }
}

/// Counts for the printed summaries.
#[derive(Default)]
struct Tally {
    sequences: usize,
    regions: usize,
    plans: usize,
    ops: usize,
    moves: usize,
    stops_mid_move: usize,
    learners_dropped: usize,
    multi_node_failures: usize,
    returns: usize,
    stories: BTreeMap<Story, usize>,
    shapes: BTreeMap<(&'static str, usize), usize>,
}

impl Tally {
    fn add(
        &mut self,
        topo: &Topo,
        sequence: &Day2Sequence,
        report: &Day2Report,
        checker: &Checker,
    ) {
        let stories = &sequence.stories;
        self.sequences += 1;
        self.stops_mid_move += checker.stops_mid_move;
        self.learners_dropped += checker.learners_dropped;
        self.multi_node_failures += sequence
            .plans
            .iter()
            .filter(|p| {
                p.ops
                    .iter()
                    .filter(|op| matches!(op, Op::NodeDown(_)))
                    .count()
                    > 1
            })
            .count();
        self.returns += sequence
            .plans
            .iter()
            .flat_map(|p| &p.ops)
            .filter(|op| matches!(op, Op::NodeReturns(_)))
            .count();
        self.regions += topo.regions;
        self.plans += report.plans_applied;
        self.ops += report.ops;
        self.moves += report.moves;
        for &story in stories {
            *self.stories.entry(story).or_default() += 1;
        }
        *self
            .shapes
            .entry((LABELS[topo.level], topo.max_replicas))
            .or_default() += 1;
    }

    fn describe(&self) -> String {
        let mut out = format!(
            "{} sequences over {} Regions: {} plans, {} operations, {} replica moves; episodes:",
            self.sequences, self.regions, self.plans, self.ops, self.moves
        );
        for (story, count) in &self.stories {
            let _ = write!(out, " {story:?} {count}");
        }
        let _ = write!(
            out,
            "; {} process stops with moves in flight, {} learners dropped, {} failures of two nodes at once, {} nodes returned",
            self.stops_mid_move, self.learners_dropped, self.multi_node_failures, self.returns
        );
        out.push_str("; isolation/max_replicas:");
        for ((level, n), count) in &self.shapes {
            let _ = write!(out, " {level}/{n}: {count}");
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Properties.

/// Sequences that follow the day-2 rules never lose a Region's quorum or
/// data, never remove a workload that holds replicas, keep PD's quorum,
/// are never refused or stuck, and leave every Region fully replicated
/// across distinct domains.
#[test]
fn valid_day2_sequences_keep_quorum_and_data() {
    let tally = Mutex::new(Tally::default());
    runner(48)
        .run(&topo(), |topo| {
            let built = build(&topo);
            let regions = place_regions(&built.cluster, topo.regions, topo.seed)
                .map_err(TestCaseError::fail)?;
            let sequence = day2_sequence(
                &built.cluster,
                &built.nodes,
                &built.pd,
                topo.regions,
                &options(&topo, None),
            );
            let (report, checker) = replay_and_check(&built, &topo, &regions, &sequence.plans)?;
            prop_assert!(
                report.is_safe(),
                "stories {:?}: quorum {:?}, data {:?}, removed {:?}, pd {:?}",
                sequence.stories,
                &report.quorum_losses[..report.quorum_losses.len().min(3)],
                &report.data_losses[..report.data_losses.len().min(3)],
                report.removed_with_replicas,
                report.pd_quorum_losses
            );
            prop_assert!(
                report.is_complete(),
                "stories {:?}: stuck {:?}, refused {:?}",
                sequence.stories,
                report.stuck,
                report.refused
            );
            prop_assert!(checker.removed_early.is_empty());
            prop_assert_eq!(checker.early_reclaims, 0);
            checker.check_fully_replicated()?;
            prop_assert_eq!(report.plans_applied, sequence.plans.len());
            tally
                .lock()
                .unwrap()
                .add(&topo, &sequence, &report, &checker);
            Ok(())
        })
        .unwrap();
    let tally = tally.into_inner().unwrap();
    eprintln!(
        "valid day-2 sequences: {}; none lost quorum or data",
        tally.describe()
    );
    for story in [
        Story::ScaleIn,
        Story::ScaleOut,
        Story::Failover,
        Story::FailDuringScaleIn,
        Story::PdFailover,
    ] {
        assert!(tally.stories.contains_key(&story), "no {story:?} episode");
    }
    assert!(
        tally.stops_mid_move > 0,
        "no failure struck while moves were in flight"
    );
}

/// What the rule-breaking runs of one breach showed: how many runs, how
/// many could stage the breach, and how many showed each finding.
#[derive(Default, Debug)]
struct Caught {
    runs: usize,
    staged: usize,
    /// Runs with any of the four findings below.
    unsafe_runs: usize,
    quorum: usize,
    data: usize,
    removed: usize,
    pd: usize,
    stuck_or_refused: usize,
}

fn breach_runs(breach: Breach, cases: u32) -> Caught {
    let caught = Mutex::new(Caught::default());
    runner(cases)
        .run(&topo(), |topo| {
            let built = build(&topo);
            let regions = place_regions(&built.cluster, topo.regions, topo.seed)
                .map_err(TestCaseError::fail)?;
            let sequence = day2_sequence(
                &built.cluster,
                &built.nodes,
                &built.pd,
                topo.regions,
                &options(&topo, Some(breach)),
            );
            let (report, _) = replay_and_check(&built, &topo, &regions, &sequence.plans)?;
            if !sequence.breached {
                // Without the breach the sequence follows every rule.
                prop_assert!(report.is_safe() && report.is_complete());
            }
            let mut c = caught.lock().unwrap();
            c.runs += 1;
            c.staged += usize::from(sequence.breached);
            c.unsafe_runs += usize::from(!report.is_safe());
            c.quorum += usize::from(!report.quorum_losses.is_empty());
            c.data += usize::from(!report.data_losses.is_empty());
            c.removed += usize::from(!report.removed_with_replicas.is_empty());
            c.pd += usize::from(!report.pd_quorum_losses.is_empty());
            c.stuck_or_refused += usize::from(!report.is_complete());
            Ok(())
        })
        .unwrap();
    let c = caught.into_inner().unwrap();
    eprintln!(
        "breach {breach:?}: {} runs, {} staged the breach; unsafe {} (quorum lost {}, data lost {}, removed holding replicas {}, PD quorum lost {}); stuck or refused {}",
        c.runs, c.staged, c.unsafe_runs, c.quorum, c.data, c.removed, c.pd, c.stuck_or_refused
    );
    c
}

/// Negative control: removing workloads in the plan that decommissions
/// them removes stores that still hold replicas (unless the retired stores
/// were empty, as new stores are until PD balances), and loses quorum when
/// it takes stores of several domains at once.
#[test]
fn removing_before_tombstone_is_caught() {
    let c = breach_runs(Breach::RemoveBeforeTombstone, 32);
    assert!(c.staged > 0);
    assert!(c.removed * 4 >= c.staged * 3, "{c:?}");
    assert!(c.quorum > 0, "{c:?}");
}

/// Negative control: two domains of three (three of five) down at once lose
/// quorum.
#[test]
fn domains_down_at_once_are_caught() {
    let c = breach_runs(Breach::DomainsDownAtOnce, 32);
    assert!(c.staged > 0);
    assert!(c.quorum > 0, "{c:?}");
}

/// Negative control: two PD members removed in one change the way a plain
/// GitOps prune does it (both workloads stop before the deletes land) lose
/// PD's quorum from three or four members.
#[test]
fn two_pd_members_at_once_are_caught() {
    let c = breach_runs(Breach::PdTwoAtOnce, 32);
    assert!(c.staged > 0);
    assert!(c.pd > 0, "{c:?}");
}

/// Negative control: a replacement PD member that joins before the failed
/// one is deleted loses PD's quorum (three members become four with two
/// alive) until it starts.
#[test]
fn pd_join_before_delete_is_caught() {
    let c = breach_runs(Breach::PdJoinBeforeDelete, 32);
    assert!(c.staged > 0);
    assert!(c.pd > 0, "{c:?}");
}

/// Scaling in past the compiler's refusal loses nothing in the model: PD
/// refuses to offline a store that would leave fewer Up stores than
/// max-replicas, and a store whose replicas have nowhere to go within the
/// isolation level stays Offline and never reaches Tombstone, so its
/// workload is never removed. The rule is a liveness rule here; the
/// breach shows as a refusal or a step that never comes.
#[test]
fn scaling_in_below_the_minimum_is_refused_or_stuck() {
    let c = breach_runs(Breach::ScaleInBelowMinimum, 32);
    assert!(c.staged > 0);
    assert_eq!(c.unsafe_runs, 0, "{c:?}");
    assert!(c.stuck_or_refused * 4 >= c.staged * 3, "{c:?}");
}

/// Deleting a failed store before its replacement is Up loses nothing in
/// the model either: PD re-creates the replicas of an Offline store that is
/// down from the other voters, only onto stores that keep the isolation,
/// and buries it only when it holds none. PD still counts the failed store
/// as Up, so it refuses the delete only when the cluster has exactly
/// max-replicas stores, and the Job's retries get through once the
/// replacement registers.
#[test]
fn deleting_a_failed_store_early_loses_nothing() {
    let c = breach_runs(Breach::DeleteFailedEarly, 32);
    assert!(c.staged > 0);
    assert_eq!(c.unsafe_runs, 0, "{c:?}");
}

// ---------------------------------------------------------------------------
// Scenarios.

/// Three zones with two hosts of one store each, isolation at the zone,
/// three replicas.
fn small() -> (Topo, Built, Vec<Region>) {
    let topo = Topo {
        shape: vec![vec![vec![(1, 1), (1, 1)]]; 3],
        level: 0,
        max_replicas: 3,
        pd_members: 3,
        regions: 600,
        stories: 0,
        seed: 11,
    };
    let built = build(&topo);
    let regions = place_regions(&built.cluster, topo.regions, topo.seed).unwrap();
    (topo, built, regions)
}

fn check(built: &Built, topo: &Topo, regions: &[Region], plans: &[Plan]) -> Day2Report {
    match replay_and_check(built, topo, regions, plans) {
        Ok((report, _)) => report,
        Err(e) => panic!("{e}"),
    }
}

fn plan(gate: Gate, ops: Vec<Op>) -> Plan {
    Plan { gate, ops }
}

#[test]
fn scale_in_moves_every_replica_then_removes_the_workload() {
    let (topo, built, regions) = small();
    let held = regions.iter().filter(|r| r.replicas.contains(&0)).count();
    let plans = vec![
        plan(
            Gate::Settled,
            vec![Op::ScaleIn(vec![0]), Op::Decommission(0)],
        ),
        plan(
            Gate::Tombstone(vec![0]),
            vec![Op::RemoveWorkload(0), Op::Reclaim(0)],
        ),
    ];
    let report = check(&built, &topo, &regions, &plans);
    assert!(report.is_safe() && report.is_complete(), "{report:?}");
    assert!(report.stores[0].wiped);
    assert_eq!(report.moves, held);
    assert_eq!(report.stores[0].pd, PdStoreState::Tombstone);
    assert!(!report.stores[0].running);
    // Zone a has one store left: it took every replica of store 0.
    let sibling = regions.iter().filter(|r| r.replicas.contains(&1)).count();
    assert_eq!(
        report.voters.iter().filter(|v| v.contains(&1)).count(),
        sibling + held
    );
}

#[test]
fn removing_the_workload_at_once_is_reported() {
    let (topo, built, regions) = small();
    let plans = vec![plan(
        Gate::Settled,
        vec![
            Op::ScaleIn(vec![0, 2]),
            Op::Decommission(0),
            Op::Decommission(2),
            Op::RemoveWorkload(0),
            Op::RemoveWorkload(2),
        ],
    )];
    let report = check(&built, &topo, &regions, &plans);
    assert_eq!(report.removed_with_replicas.len(), 2);
    // Zones a and b each lose a store at once: every Region with a replica
    // on both loses its quorum.
    let both = regions
        .iter()
        .filter(|r| r.replicas.contains(&0) && r.replicas.contains(&2))
        .count();
    assert!(both > 0);
    assert_eq!(report.quorum_losses.len(), both);
    assert!(report.data_losses.is_empty());
}

#[test]
fn pd_refuses_to_offline_below_max_replicas() {
    let topo = Topo {
        shape: vec![vec![vec![(1, 0)]]; 3],
        ..small().0
    };
    let built = build(&topo);
    let regions = place_regions(&built.cluster, 100, 1).unwrap();
    let plans = vec![
        plan(
            Gate::Settled,
            vec![Op::ScaleIn(vec![1]), Op::Decommission(1)],
        ),
        plan(Gate::Tombstone(vec![1]), vec![Op::RemoveWorkload(1)]),
    ];
    let report = check(&built, &topo, &regions, &plans);
    assert!(report.is_safe());
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert!(report.refused[0].reason.contains("2 Up stores"));
    assert_eq!(report.stuck, [1]);
    assert!(report.stores[1].running);
}

#[test]
fn failover_re_replicates_onto_the_replacement() {
    let (topo, built, regions) = small();
    // Host h001 (store 0, zone z1) fails; the replacement goes to the other
    // host of zone z1, the only place the isolation allows.
    let replacement = Store {
        id: 6,
        labels: built.cluster.stores[1].labels.clone(),
    };
    let plans = vec![
        plan(Gate::Settled, vec![Op::NodeDown(host_name(1))]),
        plan(Gate::Now, vec![Op::Replace(vec![replacement])]),
        plan(Gate::Up(vec![6]), vec![Op::Decommission(0)]),
    ];
    let report = check(&built, &topo, &regions, &plans);
    assert!(report.is_safe() && report.is_complete(), "{report:?}");
    assert_eq!(report.stores[0].pd, PdStoreState::Tombstone);
    let held = regions.iter().filter(|r| r.replicas.contains(&0)).count();
    assert_eq!(report.moves, held);
    // The delete starts the moves at once, long before max-store-down-time.
    let last_move = report
        .log
        .iter()
        .filter(|e| matches!(e.event, Day2Event::Swapped { .. }))
        .map(|e| e.at_ms)
        .max()
        .unwrap();
    assert!(last_move < Day2Timing::default().max_store_down_ms);
}

/// Three zones down at once: the Regions with a replica in each have no
/// quorum left, but their up-to-date data is still on the three disks.
/// Reading rule 2 as "a returning node's old store is reclaimed" wipes it;
/// the lock's rule (a directory is reclaimed only once its store is
/// Tombstone, which these never become) keeps it.
#[test]
fn reclaiming_returning_nodes_after_a_multi_zone_outage_loses_data() {
    let (topo, built, regions) = small();
    let mut plans = vec![plan(
        Gate::Settled,
        [1, 3, 5].map(|h| Op::NodeDown(host_name(h))).to_vec(),
    )];
    plans.extend([1, 3, 5].map(|h| plan(Gate::Settled, vec![Op::NodeReturns(host_name(h))])));
    let spanning = regions
        .iter()
        .filter(|r| r.replicas.iter().all(|s| [0, 2, 4].contains(s)))
        .count();
    assert!(spanning > 0);
    let report = check(&built, &topo, &regions, &plans);
    assert!(!report.quorum_losses.is_empty());
    assert!(report.data_losses.is_empty());
    // The compiler's way: delete the failed stores, reclaim once Tombstone.
    let mut waiting = plans.clone();
    waiting.push(plan(
        Gate::Settled,
        [0, 2, 4].map(Op::Decommission).to_vec(),
    ));
    waiting.extend([0, 2, 4].map(|s| plan(Gate::Tombstone(vec![s]), vec![Op::Reclaim(s)])));
    let report = check(&built, &topo, &regions, &waiting);
    assert!(report.data_losses.is_empty());
    assert!(!report.stuck.is_empty());
    // Reclaimed on return.
    plans.push(plan(Gate::Settled, [0, 2, 4].map(Op::Reclaim).to_vec()));
    let report = check(&built, &topo, &regions, &plans);
    assert_eq!(report.data_losses.len(), spanning);
}

#[test]
fn pd_member_replacement_order() {
    let (topo, built, regions) = small();
    let failover = |join_first: bool| {
        let mut plans = vec![plan(Gate::Settled, vec![Op::PdDown("pd-1".into())])];
        let delete = plan(Gate::Settled, vec![Op::PdDelete("pd-1".into())]);
        let join = plan(Gate::Settled, vec![Op::PdJoin("pd-3".into())]);
        if join_first {
            plans.extend([join, delete]);
        } else {
            plans.extend([delete, join]);
        }
        check(&built, &topo, &regions, &plans)
    };
    let report = failover(false);
    assert!(report.is_safe() && report.is_complete(), "{report:?}");
    let report = failover(true);
    assert_eq!(report.pd_quorum_losses.len(), 1);
    let loss = &report.pd_quorum_losses[0];
    assert_eq!((loss.members, loss.alive), (4, 2));
    assert_eq!(
        loss.until_ms,
        Some(loss.at_ms + Day2Timing::default().pd_start_ms)
    );
    // Two members removed in one change as a plain prune does it: both
    // stop before either delete lands, and with one of three alive the
    // deletes are refused.
    let plans = vec![plan(
        Gate::Settled,
        vec![
            Op::PdRemoveWorkload("pd-1".into()),
            Op::PdRemoveWorkload("pd-2".into()),
            Op::PdDelete("pd-1".into()),
            Op::PdDelete("pd-2".into()),
        ],
    )];
    let report = check(&built, &topo, &regions, &plans);
    assert_eq!(report.pd_quorum_losses.len(), 1);
    assert_eq!(report.pd_quorum_losses[0].until_ms, None);
    assert_eq!(report.refused.len(), 2);
    // The compiler's order, delete by name and remove the workload once the
    // member list no longer names it, keeps the quorum even for two at
    // once: each delete leaves a smaller group whose members all run.
    let gone = vec!["pd-1".to_string(), "pd-2".to_string()];
    let plans = vec![
        plan(
            Gate::Settled,
            vec![Op::PdDelete("pd-1".into()), Op::PdDelete("pd-2".into())],
        ),
        plan(
            Gate::PdGone(gone),
            vec![
                Op::PdRemoveWorkload("pd-1".into()),
                Op::PdRemoveWorkload("pd-2".into()),
            ],
        ),
    ];
    let report = check(&built, &topo, &regions, &plans);
    assert!(report.is_safe() && report.is_complete(), "{report:?}");
}
