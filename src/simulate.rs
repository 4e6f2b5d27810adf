//! Rollout simulator: replays a rolling restart of the TiKV stores over a set
//! of Regions and reports every moment a Region lost its quorum or its leader.
//!
//! It exists to check the rollout rule of DESIGN §5 ("TiKV instances restart
//! in waves of one failure domain at the isolation level") against the way PD
//! places replicas, and to tell the plan which waves would lose quorum when
//! some store is already down for an unrelated reason.
//!
//! # The model
//!
//! - A [`Cluster`] is a list of stores with their location labels, the
//!   labels' order (coarse to fine, `host` last), the isolation level and
//!   `max_replicas`, as PD sees them.
//! - [`place_regions`] places Regions as PD's replica checker would: the
//!   replicas of a Region go to distinct domains at the isolation level (a
//!   hard filter), and among the stores that pass it, to the store that is
//!   most distinct from the replicas already chosen, comparing labels coarse
//!   to fine. That is PD's `DistinctScore`: two stores count as different
//!   from the first label where their values differ, so rack `r1` of zone
//!   `a` and rack `r1` of zone `b` are different racks. Ties go to the domain
//!   with the fewest replicas per store (region balance), then to a seeded
//!   random choice. Leaders go to the replica whose store leads the fewest
//!   Regions.
//! - [`waves`] is the compiler's rollout rule: one wave per failure domain at
//!   the isolation level, in the order of the domains' label values coarse to
//!   fine; without an isolation level one store per wave.
//! - [`simulate`] replays the waves with discrete events. At the start of a
//!   wave every store of the wave evicts its leaders to replicas on stores
//!   that are up to date and not in the wave; the eviction takes a time per
//!   leader and is bounded. Each store then stops, is down for
//!   `restart_ms`, and catches up for a time proportional to its replica
//!   count. A stopped or catching-up store's replicas do not count towards a
//!   quorum. The next wave starts only when every store of the wave has
//!   caught up (the gate). Stores listed as already down stay down for the
//!   whole replay.
//!
//! # Simplifications
//!
//! - Regions have no size, no write rate and no hot spots; catching up costs
//!   the same for every replica, and all Regions exist before the rollout.
//! - Placement follows location labels only: no placement rules, no
//!   learners or witnesses, no store weights, no space or snapshot limits.
//!   PD keeps balancing while it places; this places Regions one at a time
//!   and never moves a replica afterwards.
//! - A store without one of the location labels reads it as the empty
//!   value, a domain of its own (PD instead treats it as matching every
//!   store); the compiler gives every store every label.
//! - Leader eviction is instantaneous bookkeeping with a duration: the
//!   leaders that fit in the bound move at the start of the wave, to
//!   replicas chosen then (a replica that catches up later in the wave is
//!   not used), and the store stops when its leaders are gone or the bound
//!   is reached. A leader still
//!   on a store when it stops is re-elected among the live replicas after
//!   `election_ms` when the Region keeps a quorum, and only when the quorum
//!   is back otherwise. Evicted leaders return to their store when its wave
//!   is over, which is where PD's leader balance would bring them.
//! - The gate waits for the wave's own stores only. A store that is already
//!   down keeps some Regions short of a peer for the whole replay, and the
//!   rollout must not wait for it forever.
//!
//! # Day-2 operations
//!
//! [`replay_day2`] replays the plans of day-2 changes (scale in, failover,
//! PD member changes) over the same Regions, and [`day2_sequence`]
//! generates such plans as the compiler would emit them, or with one rule
//! broken on purpose ([`Breach`]).
//!
//! - A [`Plan`] is the operations ([`Op`]) of one compile, applied at one
//!   instant once its [`Gate`] is met: right away, after a delay (an
//!   environment event striking while moves are in flight), once nothing is
//!   in flight, or once PD shows the evidence the rules ask for (stores
//!   Tombstone, stores Up, members gone). A gate that nothing in flight can
//!   meet leaves its plan unapplied (reported as stuck).
//! - Each store has PD's state (unknown until it registers, Up, Offline,
//!   Tombstone; Up is the administrative state, so a stopped store still
//!   counts as Up for PD's check that (Up stores − 1) ≥ max-replicas), a
//!   process that runs or not, and a directory whose data is there until a
//!   reclaim wipes it. Nothing that stopped runs again: a failed store never
//!   comes back, and a node that returns only takes new stores.
//! - PD moves the replicas of a store that is Offline, or down for longer
//!   than `max-store-down-time`, one Region at a time per store: a learner
//!   is added on the store its replica checker picks (Up, running, in a
//!   domain at the isolation level that no other voter is in, then PD's
//!   distinct score, then the fewest replicas), catches up in `move_ms`,
//!   and replaces the old voter. A move needs PD's quorum and the Region's;
//!   a learner whose store stops first, or whose Region loses its quorum, is
//!   dropped. An Offline store that holds no replica becomes Tombstone.
//! - A Region has a quorum while a majority of its voters run. The voters
//!   that hold every committed write are those running while it last had a
//!   quorum; its data is lost when all of those are wiped. A voter on a
//!   down node keeps its data on the disk until its directory is reclaimed,
//!   but once the Region commits without it, what it holds is stale.
//! - PD has a quorum while a majority of its members are alive. A delete
//!   or a join is a change of the member list and needs a quorum; a
//!   joining member counts at once and is alive after `pd_start_ms`.
//!
//! Not modelled: Raft logs, snapshots, and the joint-consensus steps of a
//! membership change (a move is add learner, catch up, swap); leaders and
//! leader transfers; PD's schedulers other than the replica checker
//! (balance, hot spots, store limits: moves take a fixed time, one at a
//! time per source store), placement rules, and PD's exact timers (the
//! replica checker acts at once when a store goes Offline or its down time
//! ends); Region size, splits and merges; the force flag of a store delete
//! (a node declared destroyed); a Kubernetes Job's own failures and back
//! offs (the store-delete Job asks again at a fixed interval until its
//! deadline); TiDB. PD members and TiKV stores fail independently (a PD
//! member is not on a node).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::lock::Lock;
use crate::model::{Component, Model};

/// One TiKV store as PD knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub id: usize,
    /// Location labels, coarse to fine, `host` last.
    pub labels: Vec<(String, String)>,
}

/// The stores and PD's replication settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub stores: Vec<Store>,
    /// PD's `location-labels`, coarse to fine.
    pub location_labels: Vec<String>,
    /// PD's `isolation-level`: one of `location_labels`, or `None`.
    pub isolation_level: Option<String>,
    pub max_replicas: usize,
}

/// A Region: the stores of its replicas and the store of its leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Indices into `Cluster::stores`, each store at most once.
    pub replicas: Vec<usize>,
    /// The store (an index into `Cluster::stores`) of the leader; one of
    /// `replicas`.
    pub leader: usize,
}

/// How long the steps of a store's restart take, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Moving one leader away from a store that is about to stop.
    pub evict_ms_per_leader: u64,
    /// The longest a store waits for its leaders to move before it stops.
    pub evict_max_ms: u64,
    /// From stop to running again.
    pub restart_ms: u64,
    /// Catching up after the restart, per replica the store holds.
    pub catch_up_ms_per_replica: u64,
    /// How long a Region with a quorum but no leader takes to elect one.
    pub election_ms: u64,
}

impl Default for Timing {
    /// Round numbers of the right order of magnitude, not measurements: the
    /// outcome of a replay (which Regions lose quorum) does not depend on
    /// them, only its durations do.
    fn default() -> Timing {
        Timing {
            evict_ms_per_leader: 20,
            evict_max_ms: 600_000,
            restart_ms: 30_000,
            catch_up_ms_per_replica: 2,
            election_ms: 10_000,
        }
    }
}

/// A Region that had fewer than a majority of its replicas live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumLoss {
    pub region: usize,
    /// The wave during which the quorum was lost, or `None` when the stores
    /// already down had taken it before the rollout began.
    pub wave: Option<usize>,
    pub at_ms: u64,
    /// When a majority was live again; `None` if never during the replay.
    pub until_ms: Option<u64>,
    /// The stores of the replicas that were not live (stopped, catching up
    /// or already down) when the quorum was lost, in index order.
    pub down: Vec<usize>,
}

/// A Region whose leader's store stopped while it still led it: no
/// up-to-date replica outside the wave could take over, or the eviction
/// bound was reached first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaderless {
    pub region: usize,
    pub wave: usize,
    /// The store that stopped with the leader.
    pub store: usize,
    pub at_ms: u64,
    /// When a new leader was elected; `None` if never during the replay.
    pub until_ms: Option<u64>,
}

/// What a replay found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub quorum_losses: Vec<QuorumLoss>,
    pub leaderless: Vec<Leaderless>,
    /// The number of waves replayed.
    pub waves: usize,
    /// When the last wave had caught up.
    pub total_ms: u64,
    /// The most stores not serving at one moment: stopped, catching up or
    /// already down.
    pub peak_stores_down: usize,
    /// Leaders moved away from stores about to stop.
    pub leader_transfers: usize,
}

impl Report {
    /// Whether no Region lost its quorum or its leader during the rollout.
    pub fn is_safe(&self) -> bool {
        self.leaderless.is_empty() && self.quorum_losses.iter().all(|l| l.wave.is_none())
    }

    pub fn total_secs(&self) -> f64 {
        self.total_ms as f64 / 1000.0
    }
}

/// A rollout wave: the failure domain it restarts and the stores in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wave {
    /// `zone=a`, `zone=a/rack=r1` (a domain is named by its labels down to
    /// the isolation level), or `store=7` without an isolation level.
    pub domain: String,
    /// Indices into `Cluster::stores`, ascending.
    pub stores: Vec<usize>,
}

/// The simulator's view of a compiled cluster: every running TiKV instance
/// of the lock (`up` or `leaving`) is a store, with the node's location
/// labels and the instance's ordinal as its id.
pub fn cluster_of(model: &Model, lock: &Lock) -> Cluster {
    let topology = &model.cluster.topology;
    let stores = lock
        .entries
        .iter()
        .filter(|e| e.id.component == Component::Tikv && e.state.runs())
        .filter_map(|e| {
            let node = model.inventory.node(&e.node)?;
            let labels = topology
                .location_labels
                .iter()
                .map(|key| {
                    let value = node.labels.get(key).cloned().unwrap_or_default();
                    (key.clone(), value)
                })
                .collect();
            Some(Store {
                id: e.id.ordinal as usize,
                labels,
            })
        })
        .collect();
    Cluster {
        stores,
        location_labels: topology.location_labels.clone(),
        isolation_level: topology.isolation_level.clone(),
        max_replicas: topology.max_replicas as usize,
    }
}

/// The waves of the compiler's rollout rule, with the domain of each.
///
/// A domain is the path of label values down to the isolation level, so
/// rack `r1` of zone `a` and rack `r1` of zone `b` are two domains and two
/// waves, as they are for PD. Domains come in the order of their paths; the
/// lock keeps a domain's wave number for life, so the compiler's order can
/// differ on a grown cluster, which changes when a wave runs but not what
/// it stops.
///
/// # Panics
///
/// When the isolation level is not one of the location labels (the
/// compiler's validation refuses such a topology).
pub fn wave_plan(cluster: &Cluster) -> Vec<Wave> {
    let Some(level) = level_index(cluster).unwrap_or_else(|e| panic!("{e}")) else {
        return (0..cluster.stores.len())
            .map(|s| Wave {
                domain: format!("store={}", cluster.stores[s].id),
                stores: vec![s],
            })
            .collect();
    };
    let mut domains: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for s in 0..cluster.stores.len() {
        let mut path = location(cluster, s);
        path.truncate(level + 1);
        domains.entry(path).or_default().push(s);
    }
    domains
        .into_iter()
        .map(|(path, stores)| Wave {
            domain: domain_name(&cluster.location_labels, &path),
            stores,
        })
        .collect()
}

/// The stores of each wave of the compiler's rollout rule (see [`wave_plan`]).
pub fn waves(cluster: &Cluster) -> Vec<Vec<usize>> {
    wave_plan(cluster).into_iter().map(|w| w.stores).collect()
}

/// The domains (waves of [`wave_plan`]) whose restart would take some Region
/// below a majority of live replicas, given the stores already down. Regions
/// that the stores already down have left without a quorum are not counted:
/// no wave changes their state.
pub fn at_risk_domains(
    cluster: &Cluster,
    regions: &[Region],
    already_down: &[usize],
) -> Vec<String> {
    let plan = wave_plan(cluster);
    let mut wave_of = vec![0; cluster.stores.len()];
    for (w, wave) in plan.iter().enumerate() {
        for &s in &wave.stores {
            wave_of[s] = w;
        }
    }
    let mut down = vec![false; cluster.stores.len()];
    for &s in already_down {
        down[s] = true;
    }
    let mut risky = vec![false; plan.len()];
    let mut touched: Vec<(usize, usize)> = Vec::new();
    for region in regions {
        let n = region.replicas.len();
        let live = region.replicas.iter().filter(|&&s| !down[s]).count();
        if live < majority(n) {
            continue;
        }
        // Count the live replicas each wave would stop.
        touched.clear();
        for &s in region.replicas.iter().filter(|&&s| !down[s]) {
            match touched.iter_mut().find(|(w, _)| *w == wave_of[s]) {
                Some((_, count)) => *count += 1,
                None => touched.push((wave_of[s], 1)),
            }
        }
        for &(w, stopped) in &touched {
            if live - stopped < majority(n) {
                risky[w] = true;
            }
        }
    }
    plan.into_iter()
        .zip(risky)
        .filter(|(_, r)| *r)
        .map(|(w, _)| w.domain)
        .collect()
}

/// Places `count` Regions as PD would (see the module documentation).
/// The same inputs and `seed` give the same Regions.
///
/// Fails when `max_replicas` is zero, when the isolation level is not one of
/// the location labels, or when there are fewer domains at the isolation
/// level (stores, without one) than `max_replicas`.
pub fn place_regions(cluster: &Cluster, count: usize, seed: u64) -> Result<Vec<Region>, String> {
    let n = cluster.max_replicas;
    if n == 0 {
        return Err("max_replicas must be at least 1".to_string());
    }
    let level = level_index(cluster)?;
    let tree = Tree::build(cluster, level);
    if tree.cap[ROOT] < n {
        return Err(match &cluster.isolation_level {
            Some(label) => format!(
                "isolation level `{label}` needs {n} domains for {n} replicas, but the stores are in {}",
                tree.cap[ROOT]
            ),
            None => format!(
                "{n} replicas need {n} stores, but there are {}",
                cluster.stores.len()
            ),
        });
    }
    let mut rng = SplitMix64(seed);
    // Replicas below each tree node, over all Regions placed so far.
    let mut load = vec![0u64; tree.nodes.len()];
    // Replicas of the Region being placed below each tree node.
    let mut mine = vec![0usize; tree.nodes.len()];
    let mut leaders = vec![0u64; cluster.stores.len()];
    let mut regions = Vec::with_capacity(count);
    for _ in 0..count {
        let mut replicas = Vec::with_capacity(n);
        for _ in 0..n {
            let mut at = ROOT;
            while !tree.nodes[at].children.is_empty() {
                at = tree.choose(at, &mine, &load, &mut rng);
            }
            let store = tree.nodes[at].store;
            let mut node = at;
            loop {
                mine[node] += 1;
                load[node] += 1;
                if node == ROOT {
                    break;
                }
                node = tree.nodes[node].parent;
            }
            replicas.push(store);
        }
        for &store in &replicas {
            let mut node = tree.leaf[store];
            loop {
                mine[node] = 0;
                if node == ROOT {
                    break;
                }
                node = tree.nodes[node].parent;
            }
        }
        replicas.sort_unstable();
        let leader = pick_min(&replicas, |s| leaders[s], &mut rng);
        leaders[leader] += 1;
        regions.push(Region { replicas, leader });
    }
    Ok(regions)
}

/// Replays `waves` over `regions` (see the module documentation). Stores in
/// `already_down` stay down throughout; a wave's stores that are already
/// down are skipped, and a store listed twice in a wave restarts once.
pub fn simulate(
    cluster: &Cluster,
    regions: &[Region],
    waves: &[Vec<usize>],
    already_down: &[usize],
    timing: Timing,
) -> Report {
    Replay::new(cluster, regions, already_down, timing).run(waves)
}

// ---------------------------------------------------------------------------
// Domains.

/// The position of the isolation level in the location labels.
fn level_index(cluster: &Cluster) -> Result<Option<usize>, String> {
    match &cluster.isolation_level {
        None => Ok(None),
        Some(level) => cluster
            .location_labels
            .iter()
            .position(|l| l == level)
            .map(Some)
            .ok_or_else(|| format!("isolation level `{level}` is not one of the location labels")),
    }
}

/// A store's label values in the order of the location labels; a missing
/// label reads as the empty value.
fn location(cluster: &Cluster, store: usize) -> Vec<&str> {
    label_values(&cluster.location_labels, &cluster.stores[store])
}

/// The values of `keys` on `store`, in order; a missing label reads as the
/// empty value.
fn label_values<'a>(keys: &[String], store: &'a Store) -> Vec<&'a str> {
    keys.iter()
        .map(|key| {
            store
                .labels
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| v.as_str())
        })
        .collect()
}

fn domain_name(keys: &[String], path: &[&str]) -> String {
    keys.iter()
        .zip(path)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The fewest live replicas that keep a Raft group of `n` available.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

// ---------------------------------------------------------------------------
// Placement.

const ROOT: usize = 0;

/// The failure-domain tree: the root, one level per location label, and the
/// stores as leaves. Children are in the order of their label values.
struct Tree {
    nodes: Vec<TreeNode>,
    /// How many replicas of one Region a node may hold: the domains at the
    /// isolation level below it for nodes at or above that level, the stores
    /// below it otherwise.
    cap: Vec<usize>,
    /// Stores below each node.
    stores: Vec<u64>,
    /// The leaf of each store.
    leaf: Vec<usize>,
}

struct TreeNode {
    parent: usize,
    value: String,
    children: Vec<usize>,
    /// The store of a leaf.
    store: usize,
}

impl Tree {
    fn build(cluster: &Cluster, level: Option<usize>) -> Tree {
        let depth = cluster.location_labels.len();
        let mut order: Vec<(Vec<&str>, usize)> = (0..cluster.stores.len())
            .map(|s| (location(cluster, s), s))
            .collect();
        order.sort();
        let mut nodes = vec![TreeNode {
            parent: ROOT,
            value: String::new(),
            children: Vec::new(),
            store: usize::MAX,
        }];
        let mut node_depth = vec![0];
        let mut leaf = vec![0; cluster.stores.len()];
        for (path, store) in &order {
            let mut at = ROOT;
            for value in path {
                // Sorted paths put equal prefixes next to each other, so an
                // existing child can only be the last one.
                let last = nodes[at].children.last().copied();
                at = match last {
                    Some(c) if nodes[c].value == *value => c,
                    _ => {
                        let id = nodes.len();
                        nodes.push(TreeNode {
                            parent: at,
                            value: (*value).to_string(),
                            children: Vec::new(),
                            store: usize::MAX,
                        });
                        node_depth.push(node_depth[at] + 1);
                        nodes[at].children.push(id);
                        id
                    }
                };
            }
            let id = nodes.len();
            nodes.push(TreeNode {
                parent: at,
                value: String::new(),
                children: Vec::new(),
                store: *store,
            });
            node_depth.push(depth + 1);
            nodes[at].children.push(id);
            leaf[*store] = id;
        }
        // Children come after their parents, so one backward pass sums up.
        let mut stores = vec![0u64; nodes.len()];
        let mut domains = vec![0usize; nodes.len()];
        for id in (0..nodes.len()).rev() {
            if nodes[id].children.is_empty() && id != ROOT {
                stores[id] = 1;
            }
            if let Some(l) = level
                && node_depth[id] == l + 1
            {
                domains[id] = 1;
            }
            if id != ROOT {
                let parent = nodes[id].parent;
                stores[parent] += stores[id];
                domains[parent] += domains[id];
            }
        }
        let cap = (0..nodes.len())
            .map(|id| match level {
                Some(l) if node_depth[id] <= l + 1 => domains[id],
                _ => stores[id] as usize,
            })
            .collect();
        Tree {
            nodes,
            cap,
            stores,
            leaf,
        }
    }

    /// The child of `at` for the next replica: one with room, then the
    /// fewest replicas of this Region (PD's distinct score), then the fewest
    /// replicas per store (region balance), then at random.
    fn choose(&self, at: usize, mine: &[usize], load: &[u64], rng: &mut SplitMix64) -> usize {
        let mut best = usize::MAX;
        let mut ties = 0;
        for &c in &self.nodes[at].children {
            if mine[c] >= self.cap[c] {
                continue;
            }
            let order = if best == usize::MAX {
                std::cmp::Ordering::Less
            } else {
                mine[c].cmp(&mine[best]).then_with(|| {
                    (u128::from(load[c]) * u128::from(self.stores[best]))
                        .cmp(&(u128::from(load[best]) * u128::from(self.stores[c])))
                })
            };
            match order {
                std::cmp::Ordering::Less => {
                    best = c;
                    ties = 1;
                }
                std::cmp::Ordering::Equal => {
                    ties += 1;
                    if rng.below(ties) == 0 {
                        best = c;
                    }
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        assert!(best != usize::MAX, "a node with room has a child with room");
        best
    }
}

/// The item with the smallest key, ties chosen at random.
fn pick_min(items: &[usize], key: impl Fn(usize) -> u64, rng: &mut SplitMix64) -> usize {
    let mut best = items[0];
    let mut ties = 1;
    for &item in &items[1..] {
        match key(item).cmp(&key(best)) {
            std::cmp::Ordering::Less => {
                best = item;
                ties = 1;
            }
            std::cmp::Ordering::Equal => {
                ties += 1;
                if rng.below(ties) == 0 {
                    best = item;
                }
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    best
}

/// SplitMix64: small, fast and good enough to break ties; seeded by the
/// caller so that placements are reproducible.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (which is not zero).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

// ---------------------------------------------------------------------------
// Replay.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreState {
    /// Serving and caught up.
    Up,
    /// Serving, caught up, and about to stop: no leader moves to it.
    Evicting,
    Down,
    /// Running again but behind: its replicas do not count for a quorum.
    CatchingUp,
}

impl StoreState {
    fn live(self) -> bool {
        matches!(self, StoreState::Up | StoreState::Evicting)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Stop(usize),
    Start(usize),
    CaughtUp(usize),
}

struct Replay<'a> {
    regions: &'a [Region],
    timing: Timing,
    state: Vec<StoreState>,
    failed: Vec<bool>,
    /// The Regions with a replica on each store.
    on_store: Vec<Vec<usize>>,
    live: Vec<usize>,
    leader: Vec<usize>,
    leaders_on: Vec<u64>,
    /// Where an evicted or re-elected leader was before, to return it there.
    home: Vec<Option<usize>>,
    /// The open quorum loss of each Region, as an index into the report.
    lost: Vec<Option<usize>>,
    /// The open leaderless episode of each Region waiting for a quorum.
    waiting: Vec<Option<usize>>,
    not_serving: usize,
    report: Report,
}

impl<'a> Replay<'a> {
    fn new(
        cluster: &Cluster,
        regions: &'a [Region],
        already_down: &[usize],
        timing: Timing,
    ) -> Replay<'a> {
        let stores = cluster.stores.len();
        let mut failed = vec![false; stores];
        for &s in already_down {
            failed[s] = true;
        }
        let mut on_store = vec![Vec::new(); stores];
        let mut leaders_on = vec![0; stores];
        for (r, region) in regions.iter().enumerate() {
            debug_assert!(region.replicas.contains(&region.leader));
            for &s in &region.replicas {
                on_store[s].push(r);
            }
            leaders_on[region.leader] += 1;
        }
        let state = failed
            .iter()
            .map(|&f| if f { StoreState::Down } else { StoreState::Up })
            .collect();
        let mut replay = Replay {
            regions,
            timing,
            state,
            on_store,
            live: vec![0; regions.len()],
            leader: regions.iter().map(|r| r.leader).collect(),
            leaders_on,
            home: vec![None; regions.len()],
            lost: vec![None; regions.len()],
            waiting: vec![None; regions.len()],
            not_serving: failed.iter().filter(|&&f| f).count(),
            failed,
            report: Report::default(),
        };
        replay.report.peak_stores_down = replay.not_serving;
        for (r, region) in regions.iter().enumerate() {
            let live = region
                .replicas
                .iter()
                .filter(|&&s| replay.state[s].live())
                .count();
            replay.live[r] = live;
            if live < majority(region.replicas.len()) {
                replay.lose(r, None, 0);
            } else if !replay.state[replay.leader[r]].live() {
                // PD elected a new leader when the store went down, before
                // the rollout: that is not the rollout's doing.
                if let Some(to) = replay.target(r, StoreState::live) {
                    replay.move_leader(r, to);
                }
            }
        }
        replay
    }

    fn run(mut self, waves: &[Vec<usize>]) -> Report {
        let mut now = 0;
        let mut queue: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
        let mut seq = 0;
        for (w, wave) in waves.iter().enumerate() {
            let mut stores: Vec<usize> =
                wave.iter().copied().filter(|&s| !self.failed[s]).collect();
            stores.sort_unstable();
            stores.dedup();
            for &s in &stores {
                self.state[s] = StoreState::Evicting;
            }
            for &s in &stores {
                let evict = self.evict(s);
                queue.push(Reverse((now + evict, seq, Event::Stop(s))));
                seq += 1;
            }
            let mut remaining = stores.len();
            while remaining > 0 {
                let Reverse((t, _, event)) = queue.pop().expect("a wave's stores all catch up");
                now = t;
                let next = match event {
                    Event::Stop(s) => {
                        self.stop(s, w, now);
                        Some((now + self.timing.restart_ms, Event::Start(s)))
                    }
                    Event::Start(s) => {
                        self.state[s] = StoreState::CatchingUp;
                        let catch_up =
                            self.timing.catch_up_ms_per_replica * self.on_store[s].len() as u64;
                        Some((now + catch_up, Event::CaughtUp(s)))
                    }
                    Event::CaughtUp(s) => {
                        self.caught_up(s, now);
                        remaining -= 1;
                        None
                    }
                };
                if let Some((t, event)) = next {
                    queue.push(Reverse((t, seq, event)));
                    seq += 1;
                }
            }
            self.return_leaders(&stores);
        }
        self.report.waves = waves.len();
        self.report.total_ms = now;
        self.report
    }

    /// Moves the leaders off `s` that fit in the bound and returns how long
    /// the store waits before it stops.
    fn evict(&mut self, s: usize) -> u64 {
        let per_leader = self.timing.evict_ms_per_leader;
        let room = self
            .timing
            .evict_max_ms
            .checked_div(per_leader)
            .unwrap_or(u64::MAX);
        let mut moved = 0;
        let mut stuck = false;
        for i in 0..self.on_store[s].len() {
            let r = self.on_store[s][i];
            if self.leader[r] != s {
                continue;
            }
            if moved == room {
                stuck = true;
                continue;
            }
            match self.target(r, |state| state == StoreState::Up) {
                Some(to) => {
                    self.home[r].get_or_insert(s);
                    self.move_leader(r, to);
                    self.report.leader_transfers += 1;
                    moved += 1;
                }
                None => stuck = true,
            }
        }
        if stuck {
            self.timing.evict_max_ms
        } else {
            moved * per_leader
        }
    }

    fn stop(&mut self, s: usize, wave: usize, now: u64) {
        self.state[s] = StoreState::Down;
        self.not_serving += 1;
        self.report.peak_stores_down = self.report.peak_stores_down.max(self.not_serving);
        for i in 0..self.on_store[s].len() {
            let r = self.on_store[s][i];
            self.live[r] -= 1;
            let quorum = self.live[r] >= majority(self.regions[r].replicas.len());
            if !quorum && self.lost[r].is_none() {
                self.lose(r, Some(wave), now);
            }
            if self.leader[r] == s {
                let mut episode = Leaderless {
                    region: r,
                    wave,
                    store: s,
                    at_ms: now,
                    until_ms: None,
                };
                match self.target(r, StoreState::live).filter(|_| quorum) {
                    Some(to) => {
                        self.home[r].get_or_insert(s);
                        self.move_leader(r, to);
                        episode.until_ms = Some(now + self.timing.election_ms);
                    }
                    None => self.waiting[r] = Some(self.report.leaderless.len()),
                }
                self.report.leaderless.push(episode);
            }
        }
    }

    fn caught_up(&mut self, s: usize, now: u64) {
        self.state[s] = StoreState::Up;
        self.not_serving -= 1;
        for i in 0..self.on_store[s].len() {
            let r = self.on_store[s][i];
            self.live[r] += 1;
            if self.live[r] < majority(self.regions[r].replicas.len()) {
                continue;
            }
            if let Some(loss) = self.lost[r].take() {
                self.report.quorum_losses[loss].until_ms = Some(now);
            }
            if let Some(episode) = self.waiting[r].take() {
                // The old leader's store may be the one that just caught up;
                // otherwise another live replica is elected.
                if !self.state[self.leader[r]].live() {
                    let to = self
                        .target(r, StoreState::live)
                        .expect("a Region with a quorum has a live replica");
                    self.home[r].get_or_insert(self.leader[r]);
                    self.move_leader(r, to);
                }
                self.report.leaderless[episode].until_ms = Some(now + self.timing.election_ms);
            }
        }
    }

    /// Gives the leaders taken from `stores` back once the wave is over.
    fn return_leaders(&mut self, stores: &[usize]) {
        for &s in stores {
            for i in 0..self.on_store[s].len() {
                let r = self.on_store[s][i];
                if self.home[r] == Some(s) && self.waiting[r].is_none() {
                    self.home[r] = None;
                    self.move_leader(r, s);
                }
            }
        }
    }

    /// The replica of Region `r` other than its leader, in an eligible
    /// state, for the leader: stores that are not about to stop first, then
    /// the store with the fewest leaders, ties to the lowest index.
    fn target(&self, r: usize, eligible: impl Fn(StoreState) -> bool) -> Option<usize> {
        self.regions[r]
            .replicas
            .iter()
            .copied()
            .filter(|&t| t != self.leader[r] && eligible(self.state[t]))
            .min_by_key(|&t| (self.state[t] != StoreState::Up, self.leaders_on[t], t))
    }

    fn move_leader(&mut self, r: usize, to: usize) {
        self.leaders_on[self.leader[r]] -= 1;
        self.leaders_on[to] += 1;
        self.leader[r] = to;
    }

    fn lose(&mut self, r: usize, wave: Option<usize>, now: u64) {
        let mut down: Vec<usize> = self.regions[r]
            .replicas
            .iter()
            .copied()
            .filter(|&s| !self.state[s].live())
            .collect();
        down.sort_unstable();
        self.lost[r] = Some(self.report.quorum_losses.len());
        self.report.quorum_losses.push(QuorumLoss {
            region: r,
            wave,
            at_ms: now,
            until_ms: None,
            down,
        });
    }
}

// ---------------------------------------------------------------------------
// Day-2 operations: the model.

/// A node of the inventory, as the day-2 generator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The node's name: the value of its stores' last location label
    /// (`host`).
    pub name: String,
    /// Every location label, coarse to fine, `host` last.
    pub labels: Vec<(String, String)>,
    /// How many TiKV directories the node offers, held or free.
    pub slots: usize,
}

/// One operation of a compiler plan, or an event of the environment
/// (`NodeDown`, `NodeReturns`, `PdDown`).
///
/// Stores are indices into the stores known so far: the cluster's, then the
/// ones `Replace` and `ScaleOut` add, numbered on in the order the replay
/// meets them. Nodes are named by their `host` label (the last location
/// label); PD members by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Lowering `replicas` marks these stores `leaving` in the lock. Only
    /// bookkeeping: PD hears of it through `Decommission`.
    ScaleIn(Vec<usize>),
    /// The store-delete Job: asks PD to delete the store. PD refuses when
    /// (Up stores − 1) < max-replicas or when it has no quorum, and the Job
    /// asks again every `delete_retry_ms` until `delete_deadline_ms`;
    /// once accepted the store is Offline, PD moves every replica off it,
    /// and it is Tombstone once it holds none. A store PD does not know is
    /// nothing to delete.
    Decommission(usize),
    /// The workload leaves the output: the process stops for good. Its data
    /// stays in the directory until a `Reclaim`.
    RemoveWorkload(usize),
    /// The reclaim Job wipes the store's directory (stopping the store
    /// first if it still ran). The Job is pinned to the node: while the
    /// node is down it waits, and it wipes when the node returns.
    Reclaim(usize),
    /// Every store on the node stops at once. Their data stays on the
    /// node's disks, but the stores never run again.
    NodeDown(String),
    /// The node is back. Its old stores stay stopped (they are never
    /// brought back); reclaim Jobs waiting for it run.
    NodeReturns(String),
    /// New stores (new ids) for failed ones; each starts on its node and
    /// registers with PD after `store_start_ms`.
    Replace(Vec<Store>),
    /// New stores for a higher `replicas`; as `Replace`.
    ScaleOut(Vec<Store>),
    /// A PD member's process stops (a failure).
    PdDown(String),
    /// Deletes a member by name (`member delete name`): needs a quorum. A
    /// deleted member no longer counts, running or not.
    PdDelete(String),
    /// A new member joins: it counts towards the member count at once and
    /// is alive after `pd_start_ms`. Needs a quorum.
    PdJoin(String),
    /// A member's workload leaves the output: its process stops.
    PdRemoveWorkload(String),
}

/// When a plan is applied: what the compiler waits for before it emits the
/// plan, or when an environment event strikes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// At the instant the previous plan was applied.
    Now,
    /// This many milliseconds after the previous plan was applied; what is
    /// due before then happens first.
    After(u64),
    /// When nothing is in flight: every move, start and PD timer has run.
    Settled,
    /// When PD reports every listed store Tombstone.
    Tombstone(Vec<usize>),
    /// When PD reports every listed store Up and it is running.
    Up(Vec<usize>),
    /// When PD's member list names none of the listed members.
    PdGone(Vec<String>),
}

/// The operations of one compile and the evidence it waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub gate: Gate,
    /// Applied in order at one instant. Process stops (a node down, a
    /// removed workload, a PD member down or removed, a reclaim) are
    /// gathered and happen together, just before the next other operation
    /// or at the end.
    pub ops: Vec<Op>,
}

/// How long the steps of day-2 operations take, in milliseconds. Only the
/// interleaving of environment events with moves in flight depends on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day2Timing {
    /// Adding one replica (a learner) and its catching up before it
    /// replaces the old one.
    pub move_ms: u64,
    /// From a new store's workload to its registration with PD.
    pub store_start_ms: u64,
    /// PD's `max-store-down-time`: how long a stopped store stays down
    /// before PD re-creates its replicas elsewhere.
    pub max_store_down_ms: u64,
    /// From a PD member's join to its being alive.
    pub pd_start_ms: u64,
    /// How long the store-delete Job waits before it asks PD again.
    pub delete_retry_ms: u64,
    /// How long the store-delete Job keeps asking.
    pub delete_deadline_ms: u64,
}

impl Default for Day2Timing {
    /// Round numbers of the right order of magnitude, not measurements
    /// (PD's default `max-store-down-time` is 30 minutes).
    fn default() -> Day2Timing {
        Day2Timing {
            move_ms: 1_000,
            store_start_ms: 30_000,
            max_store_down_ms: 30 * 60_000,
            pd_start_ms: 20_000,
            delete_retry_ms: 10_000,
            delete_deadline_ms: 600_000,
        }
    }
}

/// A store's state in PD. `Up` is PD's administrative state: a store whose
/// process stopped stays `Up` (PD shows it Disconnected, then Down) until it
/// is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PdStoreState {
    /// Not registered yet: PD does not know the store.
    Unknown,
    Up,
    Offline,
    Tombstone,
}

/// A Region that lost its quorum: fewer than a majority of its voters on
/// running stores. No store runs again once stopped, so the loss lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionLoss {
    pub region: usize,
    /// The plan applied last when it happened.
    pub plan: usize,
    pub at_ms: u64,
    /// The voters on stopped stores, ascending.
    pub stopped: Vec<usize>,
}

/// A Region that lost data: no voter that holds every committed write is
/// left on a store that still has its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLoss {
    pub region: usize,
    pub plan: usize,
    pub at_ms: u64,
}

/// A store whose workload was removed while it still held replicas
/// (voters, or learners being added to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedStore {
    pub store: usize,
    pub plan: usize,
    pub at_ms: u64,
    pub replicas: usize,
}

/// A time when fewer than a majority of the PD members were alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdQuorumLoss {
    pub plan: usize,
    pub at_ms: u64,
    /// When a majority was alive again; `None` if never.
    pub until_ms: Option<u64>,
    pub members: usize,
    pub alive: usize,
}

/// An operation that PD refused (for a store's deletion: still at the
/// Job's deadline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub plan: usize,
    pub op: Op,
    pub reason: String,
}

/// A state change of the replay, for checkers that recompute the outcome
/// on their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Day2Event {
    /// A store was added by `Replace` or `ScaleOut` (its id and labels).
    Added(usize, Store),
    /// The store registered with PD and is Up.
    Registered(usize),
    /// PD accepted the store's deletion.
    Offline(usize),
    Tombstone(usize),
    /// The compiler removed the store's workload (logged before it stops).
    Removed(usize),
    /// These store processes stopped at one instant.
    Stopped(Vec<usize>),
    /// The store's directory was reclaimed: its data is gone.
    Wiped(usize),
    /// PD began a move: a learner of `region` on `store`.
    LearnerAdded {
        region: usize,
        store: usize,
    },
    /// The learner was dropped (its store stopped, or the Region lost its
    /// quorum, before it caught up).
    LearnerDropped {
        region: usize,
        store: usize,
    },
    /// The caught-up learner on `into` replaced the voter on `out`.
    Swapped {
        region: usize,
        out: usize,
        into: usize,
    },
    PdStopped(String),
    PdDeleted(String),
    PdJoined(String),
    PdStarted(String),
}

/// A [`Day2Event`] with when it happened and the plan applied last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub at_ms: u64,
    pub plan: usize,
    pub event: Day2Event,
}

/// A store at the end of a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreAfter {
    pub id: usize,
    pub pd: PdStoreState,
    pub running: bool,
    /// Marked `leaving` by a `ScaleIn`.
    pub leaving: bool,
    /// Its directory was reclaimed.
    pub wiped: bool,
}

/// What a day-2 replay found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Day2Report {
    /// (a) Regions that lost their quorum, at the first moment.
    pub quorum_losses: Vec<RegionLoss>,
    /// (b) Regions that lost data.
    pub data_losses: Vec<DataLoss>,
    /// (c) Workloads removed while their store held replicas.
    pub removed_with_replicas: Vec<RemovedStore>,
    pub pd_quorum_losses: Vec<PdQuorumLoss>,
    /// Plans whose gate was never met: nothing in flight could bring the
    /// evidence they wait for. They were not applied.
    pub stuck: Vec<usize>,
    pub refused: Vec<Refusal>,
    pub plans_applied: usize,
    pub ops: usize,
    /// Replica moves PD completed.
    pub moves: usize,
    /// When the last event happened.
    pub total_ms: u64,
    /// Every store known at the end, in index order.
    pub stores: Vec<StoreAfter>,
    /// The voters of each Region at the end, ascending.
    pub voters: Vec<Vec<usize>>,
    pub log: Vec<Logged>,
}

impl Day2Report {
    /// Whether no Region lost its quorum or data, no workload went while
    /// its store held replicas, and PD kept its quorum.
    pub fn is_safe(&self) -> bool {
        self.quorum_losses.is_empty()
            && self.data_losses.is_empty()
            && self.removed_with_replicas.is_empty()
            && self.pd_quorum_losses.is_empty()
    }

    /// Whether every plan was applied and PD accepted every operation.
    pub fn is_complete(&self) -> bool {
        self.stuck.is_empty() && self.refused.is_empty()
    }
}

/// Replays `plans` over `regions` from `cluster`, with `pd_members` alive
/// (see "Day-2 operations" in the module documentation): waits for each
/// plan's gate, applies its operations, lets PD move replicas, and settles
/// after the last plan.
///
/// # Panics
///
/// When the isolation level is not one of the location labels, or a plan
/// names a store that does not exist.
pub fn replay_day2(
    cluster: &Cluster,
    regions: &[Region],
    pd_members: &[String],
    plans: &[Plan],
    timing: Day2Timing,
) -> Day2Report {
    let mut fleet = Fleet::new(cluster, regions, pd_members, timing);
    let mut applied_at = 0;
    for (p, plan) in plans.iter().enumerate() {
        if !fleet.wait(&plan.gate, applied_at) {
            fleet.report.stuck.push(p);
            continue;
        }
        fleet.plan = p;
        applied_at = fleet.now;
        fleet.apply(&plan.ops);
        fleet.report.plans_applied += 1;
    }
    fleet.wait(&Gate::Settled, applied_at);
    fleet.finish()
}

/// PD's base for its distinct score: a difference at one label outweighs
/// any number of differences at finer ones.
const DISTINCT_BASE: u64 = 100;

/// The replay's events, in time order (ties in the order they were queued).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tick {
    /// The mover of a store looks for the next replica to move.
    MoveNext(usize),
    /// The learner of `region` on `target`, replacing the voter on
    /// `source`, has caught up.
    LearnerReady {
        region: usize,
        target: usize,
        source: usize,
    },
    Registered(usize),
    /// `max-store-down-time` has passed since the store stopped.
    DownTimeout(usize),
    /// The PD member (an index into the members) is alive.
    PdStarted(usize),
    /// The store-delete Job asks again; it began at `since`, in `plan`.
    RetryDelete {
        store: usize,
        since: u64,
        plan: usize,
    },
}

struct Member {
    name: String,
    alive: bool,
    /// Still in the member list (not deleted).
    member: bool,
}

/// Process stops of one plan, applied together.
#[derive(Default)]
struct Batch {
    stop: Vec<usize>,
    wipe: Vec<usize>,
    pd_stop: Vec<String>,
}

/// The cluster during a day-2 replay: PD's view of the stores, the
/// processes, the Regions' voters, and PD's members.
struct Fleet {
    max_replicas: usize,
    level: Option<usize>,
    keys: Vec<String>,
    timing: Day2Timing,
    stores: Vec<Store>,
    /// Ids of the label-value prefixes, to compare locations quickly.
    prefixes: BTreeMap<Vec<String>, usize>,
    /// Each store's prefix id at each location label.
    loc: Vec<Vec<usize>>,
    /// Each store's node: its last label's value.
    node: Vec<String>,
    pd: Vec<PdStoreState>,
    running: Vec<bool>,
    leaving: Vec<bool>,
    wiped: Vec<bool>,
    /// Down for longer than `max-store-down-time`.
    timed_out: Vec<bool>,
    /// The Regions with a voter on each store.
    on_store: Vec<Vec<usize>>,
    /// Voters and learners on each store (PD's region count).
    count: Vec<usize>,
    /// A move off the store is in flight.
    busy: Vec<bool>,
    /// A `MoveNext` for the store is queued.
    scheduled: Vec<bool>,
    down_nodes: BTreeSet<String>,
    voters: Vec<Vec<usize>>,
    live: Vec<usize>,
    /// The voters that hold every committed write.
    fresh: Vec<Vec<usize>>,
    /// The move in flight per Region: (target, source).
    pending: Vec<Option<(usize, usize)>>,
    lost: Vec<bool>,
    data_lost: Vec<bool>,
    members: Vec<Member>,
    /// The open PD quorum loss, as an index into the report.
    pd_loss: Option<usize>,
    /// Stores that started while PD had no quorum.
    unregistered: Vec<usize>,
    /// Reclaim Jobs waiting for their node to return.
    reclaims: BTreeSet<usize>,
    queue: BinaryHeap<Reverse<(u64, u64, Tick)>>,
    seq: u64,
    now: u64,
    plan: usize,
    report: Day2Report,
}

impl Fleet {
    fn new(
        cluster: &Cluster,
        regions: &[Region],
        pd_members: &[String],
        timing: Day2Timing,
    ) -> Fleet {
        let level = level_index(cluster).unwrap_or_else(|e| panic!("{e}"));
        let mut fleet = Fleet {
            max_replicas: cluster.max_replicas,
            level,
            keys: cluster.location_labels.clone(),
            timing,
            stores: Vec::new(),
            prefixes: BTreeMap::new(),
            loc: Vec::new(),
            node: Vec::new(),
            pd: Vec::new(),
            running: Vec::new(),
            leaving: Vec::new(),
            wiped: Vec::new(),
            timed_out: Vec::new(),
            on_store: Vec::new(),
            count: Vec::new(),
            busy: Vec::new(),
            scheduled: Vec::new(),
            down_nodes: BTreeSet::new(),
            voters: regions.iter().map(|r| r.replicas.clone()).collect(),
            live: regions.iter().map(|r| r.replicas.len()).collect(),
            fresh: regions.iter().map(|r| r.replicas.clone()).collect(),
            pending: vec![None; regions.len()],
            lost: vec![false; regions.len()],
            data_lost: vec![false; regions.len()],
            members: pd_members
                .iter()
                .map(|name| Member {
                    name: name.clone(),
                    alive: true,
                    member: true,
                })
                .collect(),
            pd_loss: None,
            unregistered: Vec::new(),
            reclaims: BTreeSet::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            plan: 0,
            report: Day2Report::default(),
        };
        for store in &cluster.stores {
            let s = fleet.push_store(store.clone());
            fleet.pd[s] = PdStoreState::Up;
        }
        for (r, region) in regions.iter().enumerate() {
            for &s in &region.replicas {
                fleet.on_store[s].push(r);
                fleet.count[s] += 1;
            }
        }
        fleet
    }

    /// Adds a running store that PD does not know yet.
    fn push_store(&mut self, store: Store) -> usize {
        let s = self.stores.len();
        let values = label_values(&self.keys, &store);
        let mut loc = Vec::with_capacity(values.len());
        for depth in 1..=values.len() {
            let prefix: Vec<String> = values[..depth].iter().map(|v| v.to_string()).collect();
            let next = self.prefixes.len();
            loc.push(*self.prefixes.entry(prefix).or_insert(next));
        }
        self.node
            .push(values.last().map_or(String::new(), |v| v.to_string()));
        self.loc.push(loc);
        self.stores.push(store);
        self.pd.push(PdStoreState::Unknown);
        self.running.push(true);
        self.leaving.push(false);
        self.wiped.push(false);
        self.timed_out.push(false);
        self.on_store.push(Vec::new());
        self.count.push(0);
        self.busy.push(false);
        self.scheduled.push(false);
        s
    }

    fn log(&mut self, event: Day2Event) {
        self.report.log.push(Logged {
            at_ms: self.now,
            plan: self.plan,
            event,
        });
    }

    fn push(&mut self, at: u64, tick: Tick) {
        self.queue.push(Reverse((at, self.seq, tick)));
        self.seq += 1;
    }

    fn refuse(&mut self, op: Op, reason: String) {
        self.report.refused.push(Refusal {
            plan: self.plan,
            op,
            reason,
        });
    }

    // -- Gates and time.

    /// Runs events until `gate` is met; false when it never can be.
    fn wait(&mut self, gate: &Gate, applied_at: u64) -> bool {
        match gate {
            Gate::Now => true,
            Gate::After(ms) => {
                let until = applied_at.saturating_add(*ms);
                while self
                    .queue
                    .peek()
                    .is_some_and(|Reverse((t, _, _))| *t <= until)
                {
                    self.tick();
                }
                self.now = self.now.max(until);
                true
            }
            Gate::Settled => {
                while self.tick() {}
                true
            }
            Gate::Tombstone(stores) => {
                self.run_while(|f| stores.iter().any(|&s| f.pd[s] != PdStoreState::Tombstone))
            }
            Gate::Up(stores) => self.run_while(|f| {
                stores
                    .iter()
                    .any(|&s| f.pd[s] != PdStoreState::Up || !f.running[s])
            }),
            Gate::PdGone(names) => self.run_while(|f| {
                f.members
                    .iter()
                    .any(|m| m.member && names.contains(&m.name))
            }),
        }
    }

    fn run_while(&mut self, waiting: impl Fn(&Fleet) -> bool) -> bool {
        while waiting(self) {
            if !self.tick() {
                return false;
            }
        }
        true
    }

    /// Handles the next event; false when there is none.
    fn tick(&mut self) -> bool {
        let Some(Reverse((at, _, tick))) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        match tick {
            Tick::MoveNext(s) => {
                self.scheduled[s] = false;
                self.move_next(s);
            }
            Tick::LearnerReady {
                region,
                target,
                source,
            } => self.learner_ready(region, target, source),
            Tick::Registered(s) => {
                if !self.pd_ok() {
                    // PD cannot take the store in; it registers once PD has
                    // a quorum again.
                    self.unregistered.push(s);
                } else if self.running[s] && self.pd[s] == PdStoreState::Unknown {
                    self.pd[s] = PdStoreState::Up;
                    self.log(Day2Event::Registered(s));
                    self.wake_all();
                }
            }
            Tick::DownTimeout(s) => {
                if !self.running[s] {
                    self.timed_out[s] = true;
                    self.wake(s);
                }
            }
            Tick::RetryDelete { store, since, plan } => {
                let current = std::mem::replace(&mut self.plan, plan);
                self.decommission(store, since);
                self.plan = current;
            }
            Tick::PdStarted(m) => {
                if self.members[m].member && !self.members[m].alive {
                    self.members[m].alive = true;
                    let name = self.members[m].name.clone();
                    self.log(Day2Event::PdStarted(name));
                    self.pd_changed();
                }
            }
        }
        true
    }

    // -- Operations.

    fn apply(&mut self, ops: &[Op]) {
        let mut batch = Batch::default();
        for op in ops {
            self.report.ops += 1;
            match op {
                Op::NodeDown(node) => {
                    self.down_nodes.insert(node.clone());
                    for s in 0..self.stores.len() {
                        if self.node[s] == *node {
                            batch.stop.push(s);
                        }
                    }
                }
                Op::RemoveWorkload(s) => {
                    let s = *s;
                    self.log(Day2Event::Removed(s));
                    if self.count[s] > 0 {
                        self.report.removed_with_replicas.push(RemovedStore {
                            store: s,
                            plan: self.plan,
                            at_ms: self.now,
                            replicas: self.count[s],
                        });
                    }
                    batch.stop.push(s);
                }
                Op::Reclaim(s) => {
                    if self.down_nodes.contains(&self.node[*s]) {
                        self.reclaims.insert(*s);
                    } else {
                        batch.stop.push(*s);
                        batch.wipe.push(*s);
                    }
                }
                Op::PdDown(name) | Op::PdRemoveWorkload(name) => batch.pd_stop.push(name.clone()),
                _ => {
                    self.flush(&mut batch);
                    self.apply_one(op);
                }
            }
        }
        self.flush(&mut batch);
    }

    fn apply_one(&mut self, op: &Op) {
        match op {
            Op::ScaleIn(stores) => {
                for &s in stores {
                    self.leaving[s] = true;
                }
            }
            Op::Decommission(s) => self.decommission(*s, self.now),
            Op::NodeReturns(node) => {
                self.down_nodes.remove(node);
                let waiting: Vec<usize> = self
                    .reclaims
                    .iter()
                    .copied()
                    .filter(|&s| self.node[s] == *node)
                    .collect();
                for s in waiting {
                    self.reclaims.remove(&s);
                    self.wipe(s);
                }
            }
            Op::Replace(stores) | Op::ScaleOut(stores) => {
                for store in stores {
                    let s = self.push_store(store.clone());
                    self.log(Day2Event::Added(s, store.clone()));
                    if self.down_nodes.contains(&self.node[s]) {
                        // The workload cannot start on a node that is down,
                        // and nothing restarts later.
                        self.running[s] = false;
                    } else {
                        self.push(self.now + self.timing.store_start_ms, Tick::Registered(s));
                    }
                }
            }
            Op::PdDelete(name) => self.pd_delete(name, op),
            Op::PdJoin(name) => self.pd_join(name, op),
            Op::NodeDown(_)
            | Op::RemoveWorkload(_)
            | Op::Reclaim(_)
            | Op::PdDown(_)
            | Op::PdRemoveWorkload(_) => {
                unreachable!("process stops go through the batch")
            }
        }
    }

    /// Applies the process stops of a plan: the TiKV stores together, then
    /// the reclaims, then the PD members one by one.
    fn flush(&mut self, batch: &mut Batch) {
        let mut stops: Vec<usize> = batch.stop.drain(..).filter(|&s| self.running[s]).collect();
        stops.sort_unstable();
        stops.dedup();
        if !stops.is_empty() {
            self.stop(stops);
        }
        for s in std::mem::take(&mut batch.wipe) {
            self.wipe(s);
        }
        for name in std::mem::take(&mut batch.pd_stop) {
            if let Some(m) = self.members.iter_mut().find(|m| m.name == name && m.alive) {
                m.alive = false;
                self.log(Day2Event::PdStopped(name));
                self.pd_changed();
            }
        }
    }

    /// The store-delete Job's request (first made at `since`).
    fn decommission(&mut self, s: usize, since: u64) {
        if self.pd[s] != PdStoreState::Up {
            // Offline or Tombstone: on its way out already. Unknown: PD
            // has nothing to delete.
            return;
        }
        let up = self.pd.iter().filter(|&&p| p == PdStoreState::Up).count();
        let refusal = if !self.pd_ok() {
            Some("PD has no quorum".to_string())
        } else if up - 1 < self.max_replicas {
            Some(format!(
                "{} Up stores would be left for max-replicas {}",
                up - 1,
                self.max_replicas
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            let again = self.now + self.timing.delete_retry_ms;
            if again <= since.saturating_add(self.timing.delete_deadline_ms) {
                let plan = self.plan;
                self.push(
                    again,
                    Tick::RetryDelete {
                        store: s,
                        since,
                        plan,
                    },
                );
            } else {
                self.refuse(Op::Decommission(s), reason);
            }
            return;
        }
        self.pd[s] = PdStoreState::Offline;
        self.log(Day2Event::Offline(s));
        self.maybe_tombstone(s);
        self.wake(s);
    }

    /// Stops store processes at one instant. Regions that keep a quorum
    /// go on committing without the stopped voters; those that lose it keep
    /// the voters that were up to date at that instant.
    fn stop(&mut self, stores: Vec<usize>) {
        let mut affected = Vec::new();
        for &s in &stores {
            self.running[s] = false;
            self.push(
                self.now + self.timing.max_store_down_ms,
                Tick::DownTimeout(s),
            );
            affected.extend_from_slice(&self.on_store[s]);
        }
        self.log(Day2Event::Stopped(stores));
        affected.sort_unstable();
        affected.dedup();
        for r in affected {
            let live = self.voters[r].iter().filter(|&&v| self.running[v]).count();
            self.live[r] = live;
            if live >= majority(self.voters[r].len()) {
                self.fresh[r].retain(|&v| self.running[v]);
            } else if !self.lost[r] {
                self.lost[r] = true;
                let mut stopped: Vec<usize> = self.voters[r]
                    .iter()
                    .copied()
                    .filter(|&v| !self.running[v])
                    .collect();
                stopped.sort_unstable();
                self.report.quorum_losses.push(RegionLoss {
                    region: r,
                    plan: self.plan,
                    at_ms: self.now,
                    stopped,
                });
            }
        }
    }

    /// Reclaims a stopped store's directory.
    fn wipe(&mut self, s: usize) {
        debug_assert!(!self.running[s]);
        if self.wiped[s] {
            return;
        }
        self.wiped[s] = true;
        self.log(Day2Event::Wiped(s));
        for i in 0..self.on_store[s].len() {
            let r = self.on_store[s][i];
            self.fresh[r].retain(|&v| v != s);
            if self.fresh[r].is_empty() && !self.data_lost[r] {
                self.data_lost[r] = true;
                self.report.data_losses.push(DataLoss {
                    region: r,
                    plan: self.plan,
                    at_ms: self.now,
                });
            }
        }
    }

    // -- PD's replica moves.

    /// Whether PD is moving replicas off the store: it is Offline, or it
    /// has been down for longer than `max-store-down-time`.
    fn mover_active(&self, s: usize) -> bool {
        match self.pd[s] {
            PdStoreState::Offline => true,
            PdStoreState::Up => !self.running[s] && self.timed_out[s],
            PdStoreState::Unknown | PdStoreState::Tombstone => false,
        }
    }

    fn wake(&mut self, s: usize) {
        if self.mover_active(s) && !self.busy[s] && !self.scheduled[s] {
            self.scheduled[s] = true;
            self.push(self.now, Tick::MoveNext(s));
        }
    }

    fn wake_all(&mut self) {
        for s in 0..self.stores.len() {
            self.wake(s);
        }
    }

    /// Starts the next move off `s`: the first of its Regions that has a
    /// quorum, no move in flight, and a store to go to. One move per store
    /// at a time.
    fn move_next(&mut self, s: usize) {
        if self.busy[s] || !self.mover_active(s) || !self.pd_ok() {
            return;
        }
        for i in 0..self.on_store[s].len() {
            let r = self.on_store[s][i];
            if self.pending[r].is_some() || self.live[r] < majority(self.voters[r].len()) {
                continue;
            }
            if let Some(t) = self.target(r, s) {
                self.pending[r] = Some((t, s));
                self.count[t] += 1;
                self.busy[s] = true;
                self.log(Day2Event::LearnerAdded {
                    region: r,
                    store: t,
                });
                self.push(
                    self.now + self.timing.move_ms,
                    Tick::LearnerReady {
                        region: r,
                        target: t,
                        source: s,
                    },
                );
                return;
            }
        }
        self.maybe_tombstone(s);
    }

    /// The store PD's replica checker picks for the replica of Region `r`
    /// on `source`: Up, running, not holding `r`, in a domain at the
    /// isolation level none of the other voters is in; then the highest
    /// distinct score against them (PD's `DistinctScore`: a store counts as
    /// different from another from the first label where their values
    /// differ, a coarser label weighing more), then the fewest replicas,
    /// then the lowest index.
    fn target(&self, r: usize, source: usize) -> Option<usize> {
        let others: Vec<usize> = self.voters[r]
            .iter()
            .copied()
            .filter(|&v| v != source)
            .collect();
        let depth = self.keys.len();
        let mut best: Option<(u64, Reverse<usize>, Reverse<usize>)> = None;
        for t in 0..self.stores.len() {
            if self.pd[t] != PdStoreState::Up || !self.running[t] || self.voters[r].contains(&t) {
                continue;
            }
            if let Some(l) = self.level
                && others.iter().any(|&o| self.loc[o][l] == self.loc[t][l])
            {
                continue;
            }
            let score = others
                .iter()
                .map(|&o| {
                    (0..depth)
                        .find(|&i| self.loc[o][i] != self.loc[t][i])
                        .map_or(0, |i| DISTINCT_BASE.pow((depth - 1 - i) as u32))
                })
                .sum();
            let key = (score, Reverse(self.count[t]), Reverse(t));
            if best.is_none_or(|b| key > b) {
                best = Some(key);
            }
        }
        best.map(|(_, _, Reverse(t))| t)
    }

    fn learner_ready(&mut self, r: usize, t: usize, s: usize) {
        if self.pending[r] != Some((t, s)) {
            return;
        }
        self.pending[r] = None;
        self.busy[s] = false;
        if !self.running[t] || self.live[r] < majority(self.voters[r].len()) {
            self.count[t] -= 1;
            self.log(Day2Event::LearnerDropped {
                region: r,
                store: t,
            });
            self.maybe_tombstone(t);
            self.wake(s);
            return;
        }
        let at = self.voters[r]
            .iter()
            .position(|&v| v == s)
            .expect("the source holds a voter");
        self.voters[r][at] = t;
        self.voters[r].sort_unstable();
        let i = self.on_store[s]
            .iter()
            .position(|&x| x == r)
            .expect("indexed");
        self.on_store[s].swap_remove(i);
        self.on_store[t].push(r);
        self.count[s] -= 1;
        self.live[r] = self.voters[r].iter().filter(|&&v| self.running[v]).count();
        self.fresh[r] = self.voters[r]
            .iter()
            .copied()
            .filter(|&v| self.running[v])
            .collect();
        self.report.moves += 1;
        self.log(Day2Event::Swapped {
            region: r,
            out: s,
            into: t,
        });
        self.maybe_tombstone(s);
        self.wake(s);
        // Other movers may have skipped this Region while the move was in
        // flight; the new voter's store may itself be leaving.
        for i in 0..self.voters[r].len() {
            let v = self.voters[r][i];
            self.wake(v);
        }
    }

    fn maybe_tombstone(&mut self, s: usize) {
        if self.pd[s] == PdStoreState::Offline && self.count[s] == 0 {
            self.pd[s] = PdStoreState::Tombstone;
            self.log(Day2Event::Tombstone(s));
        }
    }

    // -- PD members.

    fn pd_ok(&self) -> bool {
        let members = self.members.iter().filter(|m| m.member).count();
        let alive = self.members.iter().filter(|m| m.member && m.alive).count();
        members > 0 && alive >= majority(members)
    }

    fn pd_changed(&mut self) {
        match (self.pd_ok(), self.pd_loss) {
            (false, None) => {
                self.pd_loss = Some(self.report.pd_quorum_losses.len());
                self.report.pd_quorum_losses.push(PdQuorumLoss {
                    plan: self.plan,
                    at_ms: self.now,
                    until_ms: None,
                    members: self.members.iter().filter(|m| m.member).count(),
                    alive: self.members.iter().filter(|m| m.member && m.alive).count(),
                });
            }
            (true, Some(loss)) => {
                self.report.pd_quorum_losses[loss].until_ms = Some(self.now);
                self.pd_loss = None;
                for s in std::mem::take(&mut self.unregistered) {
                    self.push(self.now, Tick::Registered(s));
                }
                self.wake_all();
            }
            _ => {}
        }
    }

    fn pd_delete(&mut self, name: &str, op: &Op) {
        if !self.pd_ok() {
            return self.refuse(op.clone(), "PD has no quorum".to_string());
        }
        let Some(m) = self.members.iter_mut().find(|m| m.member && m.name == name) else {
            return self.refuse(op.clone(), format!("no PD member `{name}`"));
        };
        m.member = false;
        self.log(Day2Event::PdDeleted(name.to_string()));
        self.pd_changed();
    }

    fn pd_join(&mut self, name: &str, op: &Op) {
        if !self.pd_ok() {
            return self.refuse(op.clone(), "PD has no quorum".to_string());
        }
        if self.members.iter().any(|m| m.member && m.name == name) {
            return self.refuse(op.clone(), format!("PD member `{name}` exists"));
        }
        self.members.push(Member {
            name: name.to_string(),
            alive: false,
            member: true,
        });
        self.log(Day2Event::PdJoined(name.to_string()));
        self.pd_changed();
        let m = self.members.len() - 1;
        self.push(self.now + self.timing.pd_start_ms, Tick::PdStarted(m));
    }

    fn finish(mut self) -> Day2Report {
        self.report.total_ms = self.now;
        self.report.stores = (0..self.stores.len())
            .map(|s| StoreAfter {
                id: self.stores[s].id,
                pd: self.pd[s],
                running: self.running[s],
                leaving: self.leaving[s],
                wiped: self.wiped[s],
            })
            .collect();
        self.report.voters = self.voters;
        self.report
    }
}

// ---------------------------------------------------------------------------
// Day-2 operations: the sequences the compiler would emit.

/// A day-2 rule that a generated sequence breaks once, on purpose, as a
/// negative control. Everything else in the sequence follows the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Breach {
    /// Removes the workloads of the stores a scale in retires in the plan
    /// that decommissions them, without waiting for Tombstone.
    RemoveBeforeTombstone,
    /// Deletes a failed store through PD in the plan that records the
    /// failure, before its replacement is placed, Up, or re-replicated to
    /// (everything else as the rules say, its reclaim after Tombstone
    /// included).
    DeleteFailedEarly,
    /// Scales in past the compiler's refusal: fewer Up stores, or fewer
    /// domains at the isolation level, than `max_replicas`.
    ScaleInBelowMinimum,
    /// Takes down, at one instant, nodes in as many distinct domains at the
    /// isolation level as it takes to break a majority of `max_replicas`
    /// (two of three, three of five).
    DomainsDownAtOnce,
    /// Removes two PD members in one change the way a plain GitOps prune
    /// would: both workloads stop with the change, before their deletes
    /// land.
    PdTwoAtOnce,
    /// Lets a failed PD member's replacement join before the failed member
    /// is deleted.
    PdJoinBeforeDelete,
}

impl Breach {
    pub const ALL: [Breach; 6] = [
        Breach::RemoveBeforeTombstone,
        Breach::DeleteFailedEarly,
        Breach::ScaleInBelowMinimum,
        Breach::DomainsDownAtOnce,
        Breach::PdTwoAtOnce,
        Breach::PdJoinBeforeDelete,
    ];
}

/// The episodes a generated sequence is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Story {
    /// Lower `replicas`: decommission the retired stores, remove each
    /// workload once its store is Tombstone.
    ScaleIn,
    /// Raise `replicas`: new stores placed for spread.
    ScaleOut,
    /// Nodes go down (as many as the Regions tolerate, in distinct
    /// domains); replacements are placed, the failed stores deleted through
    /// PD once the replacements are Up. Sometimes the node returns quickly.
    Failover,
    /// A scale in with a node failure while PD is still moving replicas.
    FailDuringScaleIn,
    /// A failed node returns; its old stores are reclaimed.
    NodeReturns,
    /// A PD member fails, is deleted by name, and a new one joins.
    PdFailover,
    /// One PD member fewer.
    PdScaleIn,
    /// One PD member more.
    PdScaleOut,
}

/// How to generate a day-2 sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day2Options {
    /// How many episodes to try; an episode that no longer fits the cluster
    /// is left out.
    pub stories: usize,
    pub seed: u64,
    /// The rule to break once, at a random episode, or none.
    pub breach: Option<Breach>,
    /// Used to time the environment's events while moves are in flight.
    pub timing: Day2Timing,
}

/// A generated day-2 sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Day2Sequence {
    pub plans: Vec<Plan>,
    /// The episodes, in order.
    pub stories: Vec<Story>,
    /// Whether the breach asked for could be staged (a scale in needs a
    /// store to retire, a PD change needs members).
    pub breached: bool,
}

/// Generates a random day-2 sequence over `cluster` (whose stores stand on
/// `nodes`, matched by the `host` label) and `pd_members`, as the compiler
/// would emit it: each episode starts when the previous ones have settled,
/// except a node failure in the middle of a scale in, and each step after
/// the first waits for the evidence the rules ask for. Scale in stays within
/// the compiler's refusals, replacements respect spread and isolation, and
/// failures strike only where the Regions tolerate them and the compiler can
/// place replacements. `regions` (their number) times the failure of a node
/// during a scale in. The same inputs give the same sequence.
///
/// # Panics
///
/// When a store's node is not in `nodes`, or the isolation level is not one
/// of the location labels.
pub fn day2_sequence(
    cluster: &Cluster,
    nodes: &[Node],
    pd_members: &[String],
    regions: usize,
    options: &Day2Options,
) -> Day2Sequence {
    let mut rng = SplitMix64(options.seed);
    let breach_at = match options.breach {
        Some(_) => rng.below(options.stories.max(1) as u64) as usize,
        None => usize::MAX,
    };
    let mut generator = Generator {
        view: LockView::new(cluster, nodes, pd_members),
        rng,
        timing: options.timing,
        regions,
        plans: Vec::new(),
        stories: Vec::new(),
        breached: false,
    };
    for i in 0..options.stories {
        if i == breach_at {
            let breach = options.breach.expect("a breach was asked for");
            generator.breached = generator.breach(breach);
            continue;
        }
        if !generator.valid_story() {
            break;
        }
    }
    Day2Sequence {
        plans: generator.plans,
        stories: generator.stories,
        breached: generator.breached,
    }
}

/// A store's lifecycle as the compiler's lock records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Up,
    Leaving,
    Failed,
    /// Removed after Tombstone, or reclaimed after its node returned.
    Gone,
}

#[derive(Clone, Debug)]
struct ViewNode {
    name: String,
    /// Location label values, coarse to fine.
    values: Vec<String>,
    slots: usize,
    used: usize,
    down: bool,
    /// Directories of stores gone while the node was down: the reclaim Job
    /// frees them when it returns.
    to_free: usize,
}

/// What the compiler knows between compiles: the lock (stores, their node
/// and lifecycle), the inventory's nodes, and the PD members.
#[derive(Clone, Debug)]
struct LockView {
    max_replicas: usize,
    level: Option<usize>,
    keys: Vec<String>,
    nodes: Vec<ViewNode>,
    /// The node and lifecycle of each store, by replay index.
    stores: Vec<(usize, Life)>,
    next_id: usize,
    members: Vec<String>,
    next_member: usize,
}

impl LockView {
    fn new(cluster: &Cluster, nodes: &[Node], pd_members: &[String]) -> LockView {
        let level = level_index(cluster).unwrap_or_else(|e| panic!("{e}"));
        let keys = cluster.location_labels.clone();
        let mut view_nodes: Vec<ViewNode> = nodes
            .iter()
            .map(|node| {
                let as_store = Store {
                    id: 0,
                    labels: node.labels.clone(),
                };
                ViewNode {
                    name: node.name.clone(),
                    values: label_values(&keys, &as_store)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    slots: node.slots,
                    used: 0,
                    down: false,
                    to_free: 0,
                }
            })
            .collect();
        let stores = cluster
            .stores
            .iter()
            .map(|store| {
                let host = label_values(&keys, store)
                    .last()
                    .map_or(String::new(), |v| v.to_string());
                let n = view_nodes
                    .iter()
                    .position(|node| node.name == host)
                    .unwrap_or_else(|| {
                        panic!(
                            "store {} is on node `{host}`, which is not listed",
                            store.id
                        )
                    });
                view_nodes[n].used += 1;
                (n, Life::Up)
            })
            .collect();
        LockView {
            max_replicas: cluster.max_replicas,
            level,
            keys,
            nodes: view_nodes,
            stores,
            next_id: cluster.stores.iter().map(|s| s.id + 1).max().unwrap_or(0),
            members: pd_members.to_vec(),
            next_member: pd_members.len(),
        }
    }

    /// The stores whose lock state is `up`.
    fn up(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.stores.len()).filter(|&s| self.stores[s].1 == Life::Up)
    }

    /// A node's failure domain at the isolation level (the node itself
    /// without one: its stores are domains of their own, and a node down
    /// takes them all).
    fn node_domain(&self, n: usize) -> Vec<String> {
        match self.level {
            Some(l) => self.nodes[n].values[..=l].to_vec(),
            None => vec![self.nodes[n].name.clone()],
        }
    }

    /// Whether the Up stores could hold every Region: at least
    /// `max_replicas` of them, in at least `max_replicas` domains.
    fn fits(&self) -> bool {
        let up: Vec<usize> = self.up().collect();
        let domains: BTreeSet<Vec<String>> = match self.level {
            Some(_) => up
                .iter()
                .map(|&s| self.node_domain(self.stores[s].0))
                .collect(),
            None => up.iter().map(|&s| vec![s.to_string()]).collect(),
        };
        up.len() >= self.max_replicas && domains.len() >= self.max_replicas
    }

    /// The Up stores sharing node `n`'s label values down to each depth,
    /// coarse to fine.
    fn crowding(&self, n: usize) -> Vec<usize> {
        let values = &self.nodes[n].values;
        (1..=values.len())
            .map(|depth| {
                self.up()
                    .filter(|&s| self.nodes[self.stores[s].0].values[..depth] == values[..depth])
                    .count()
            })
            .collect()
    }

    /// Marks the next store to retire `leaving`: from the fullest domain,
    /// coarse to fine, then the newest.
    fn retire(&mut self) -> Option<usize> {
        let s = self
            .up()
            .max_by_key(|&s| (self.crowding(self.stores[s].0), s))?;
        self.stores[s].1 = Life::Leaving;
        Some(s)
    }

    /// The most stores a scale in may retire within the compiler's refusal.
    fn max_scale_in(&self) -> usize {
        let mut trial = self.clone();
        let mut k = 0;
        while trial.retire().is_some() && trial.fits() {
            k += 1;
        }
        k
    }

    /// Places a new store by water-filling: on a healthy node with a free
    /// directory, the emptiest at each level coarse to fine, ties to the
    /// first by name.
    fn place(&mut self) -> Option<Store> {
        let n = (0..self.nodes.len())
            .filter(|&n| !self.nodes[n].down && self.nodes[n].used < self.nodes[n].slots)
            .min_by_key(|&n| (self.crowding(n), self.nodes[n].name.clone()))?;
        self.nodes[n].used += 1;
        self.stores.push((n, Life::Up));
        let store = Store {
            id: self.next_id,
            labels: self
                .keys
                .iter()
                .cloned()
                .zip(self.nodes[n].values.iter().cloned())
                .collect(),
        };
        self.next_id += 1;
        Some(store)
    }

    /// A store is gone and its directory reclaimed: at once, or when its
    /// node returns.
    fn remove(&mut self, s: usize) {
        self.stores[s].1 = Life::Gone;
        let node = &mut self.nodes[self.stores[s].0];
        if node.down {
            node.to_free += 1;
        } else {
            node.used -= 1;
        }
    }

    /// Takes nodes down: their Up stores fail (a leaving store stays
    /// leaving; the lock has no way from `leaving` to `failed`).
    fn fail(&mut self, nodes: &[usize]) -> Vec<usize> {
        let mut failed = Vec::new();
        for &n in nodes {
            self.nodes[n].down = true;
            for s in 0..self.stores.len() {
                if self.stores[s] == (n, Life::Up) {
                    self.stores[s].1 = Life::Failed;
                    failed.push(s);
                }
            }
        }
        failed
    }

    /// A node returns; reclaims that waited for it free its directories.
    fn node_returns(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.down = false;
        node.used -= node.to_free;
        node.to_free = 0;
    }

    /// A member name not used yet.
    fn new_member(&mut self) -> String {
        loop {
            let name = format!("pd-{}", self.next_member);
            self.next_member += 1;
            if !self.members.contains(&name) {
                return name;
            }
        }
    }
}

struct Generator {
    view: LockView,
    rng: SplitMix64,
    timing: Day2Timing,
    regions: usize,
    plans: Vec<Plan>,
    stories: Vec<Story>,
    breached: bool,
}

impl Generator {
    /// Appends a plan. Plans that add stores (`Replace`, `ScaleOut`) never
    /// wait for evidence, so they are never stuck and the replay numbers
    /// the new stores as the lock view does.
    fn plan(&mut self, gate: Gate, ops: Vec<Op>) {
        self.plans.push(Plan { gate, ops });
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n.max(1) as u64) as usize
    }

    /// Roughly how long PD takes to move every replica off one store.
    fn drain_ms(&self) -> u64 {
        let up = self.view.up().count().max(1);
        (self.regions * self.view.max_replicas / up) as u64 * self.timing.move_ms
    }

    /// One episode that follows every rule, chosen at random among those
    /// that fit the cluster now; false when none does.
    fn valid_story(&mut self) -> bool {
        let mut kinds: Vec<(Story, u64)> = vec![
            (Story::ScaleIn, 3),
            (Story::ScaleOut, 2),
            (Story::Failover, 3),
            (Story::FailDuringScaleIn, 2),
            (Story::NodeReturns, 2),
            (Story::PdFailover, 1),
            (Story::PdScaleIn, 1),
            (Story::PdScaleOut, 1),
        ];
        while !kinds.is_empty() {
            let total: u64 = kinds.iter().map(|(_, w)| w).sum();
            let mut pick = self.rng.below(total);
            let i = kinds
                .iter()
                .position(|&(_, w)| {
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .expect("a pick below the total weight");
            let (story, _) = kinds.remove(i);
            let told = match story {
                Story::ScaleIn => self.scale_in_story(),
                Story::ScaleOut => self.scale_out(),
                Story::Failover => {
                    let most = (self.view.max_replicas - 1) / 2;
                    let f = 1 + self.below(most);
                    self.valid_failover(f, Gate::Settled)
                }
                Story::FailDuringScaleIn => match self.fail_during_scale_in() {
                    Some(story) => {
                        self.stories.push(story);
                        return true;
                    }
                    None => false,
                },
                Story::NodeReturns => self.node_returns(),
                Story::PdFailover => self.pd_failover(false),
                Story::PdScaleIn => self.pd_scale_in(),
                Story::PdScaleOut => self.pd_scale_out(),
            };
            if told {
                self.stories.push(story);
                return true;
            }
        }
        false
    }

    /// The episode that breaks `breach`; false when it cannot be staged.
    fn breach(&mut self, breach: Breach) -> bool {
        let (story, told) = match breach {
            Breach::RemoveBeforeTombstone => {
                // As many stores as the refusal allows (up to three), so
                // that they often span domains.
                let k = self.view.max_scale_in().min(3);
                let told = k > 0 && {
                    self.scale_in(k, true);
                    true
                };
                (Story::ScaleIn, told)
            }
            Breach::DeleteFailedEarly => {
                let failed = self.recoverable_failure(1, Gate::Settled, true);
                if let Some(failed) = &failed {
                    self.delete_failed(failed, true);
                }
                (Story::Failover, failed.is_some())
            }
            Breach::ScaleInBelowMinimum => {
                let up = self.view.up().count();
                let k = (self.view.max_scale_in() + 1 + self.below(2)).min(up);
                let mut trial = self.view.clone();
                for _ in 0..k {
                    trial.retire();
                }
                let told = k > 0 && !trial.fits() && {
                    let picks = self.scale_in(k, false);
                    self.remove_when_tombstone(&picks);
                    true
                };
                (Story::ScaleIn, told)
            }
            Breach::DomainsDownAtOnce => {
                let n = self.view.max_replicas;
                let f = n - majority(n) + 1;
                let told = match self.pick_down_nodes(f) {
                    Some(nodes) => {
                        let failed = self.failover(&nodes, Gate::Settled, false);
                        self.delete_failed(&failed, false);
                        true
                    }
                    None => false,
                };
                (Story::Failover, told)
            }
            Breach::PdTwoAtOnce => {
                let told = self.view.members.len() >= 3 && self.pd_remove_two_at_once();
                (Story::PdScaleIn, told)
            }
            Breach::PdJoinBeforeDelete => (Story::PdFailover, self.pd_failover(true)),
        };
        if told {
            self.stories.push(story);
        }
        told
    }

    /// Retires `k` stores: one plan marks them leaving and decommissions
    /// them (with `remove_at_once`, it also removes their workloads and
    /// reclaims their directories, as if they were gone). Returns the
    /// stores, for [`Generator::remove_when_tombstone`].
    fn scale_in(&mut self, k: usize, remove_at_once: bool) -> Vec<usize> {
        let picks: Vec<usize> = (0..k).filter_map(|_| self.view.retire()).collect();
        let mut ops = vec![Op::ScaleIn(picks.clone())];
        ops.extend(picks.iter().map(|&s| Op::Decommission(s)));
        if remove_at_once {
            for &s in &picks {
                ops.extend([Op::RemoveWorkload(s), Op::Reclaim(s)]);
                self.view.remove(s);
            }
        }
        self.plan(Gate::Settled, ops);
        picks
    }

    /// One plan per retired store: once PD reports it Tombstone it is
    /// gone, its workload is removed and its directory reclaimed.
    fn remove_when_tombstone(&mut self, picks: &[usize]) {
        for &s in picks {
            self.plan(
                Gate::Tombstone(vec![s]),
                vec![Op::RemoveWorkload(s), Op::Reclaim(s)],
            );
            self.view.remove(s);
        }
    }

    /// Scales in by one to three stores within the refusal.
    fn scale_in_story(&mut self) -> bool {
        let most = self.view.max_scale_in().min(3);
        if most == 0 {
            return false;
        }
        let k = 1 + self.below(most);
        let picks = self.scale_in(k, false);
        self.remove_when_tombstone(&picks);
        true
    }

    /// One or two new stores where there is room.
    fn scale_out(&mut self) -> bool {
        let k = 1 + self.below(2);
        let stores: Vec<Store> = (0..k).filter_map(|_| self.view.place()).collect();
        if stores.is_empty() {
            return false;
        }
        self.plan(Gate::Settled, vec![Op::ScaleOut(stores)]);
        true
    }

    /// Up to `f` healthy nodes holding running stores, in distinct domains
    /// at the isolation level, chosen at random.
    fn pick_down_nodes(&mut self, f: usize) -> Option<Vec<usize>> {
        let mut candidates: Vec<usize> = (0..self.view.nodes.len())
            .filter(|&n| {
                !self.view.nodes[n].down
                    && self
                        .view
                        .stores
                        .iter()
                        .any(|&(m, life)| m == n && matches!(life, Life::Up | Life::Leaving))
            })
            .collect();
        let mut picked: Vec<usize> = Vec::new();
        while picked.len() < f && !candidates.is_empty() {
            let n = candidates.swap_remove(self.below(candidates.len()));
            let domain = self.view.node_domain(n);
            if picked.iter().all(|&p| self.view.node_domain(p) != domain) {
                picked.push(n);
            }
        }
        (picked.len() == f).then_some(picked)
    }

    /// Whether the compiler can answer the failure of `nodes`: a
    /// replacement for every failed store, and the Up stores (with them)
    /// still fit the Regions.
    fn can_recover(&self, nodes: &[usize]) -> bool {
        let mut trial = self.view.clone();
        let failed = trial.fail(nodes);
        failed.iter().all(|_| trial.place().is_some()) && trial.fits()
    }

    /// A failure of `f` nodes that the compiler can recover from, tried a
    /// few times at random. Returns the failed stores, for
    /// [`Generator::delete_failed`]; `None` when no such failure was found.
    fn recoverable_failure(
        &mut self,
        f: usize,
        gate: Gate,
        delete_early: bool,
    ) -> Option<Vec<usize>> {
        for _ in 0..8 {
            if let Some(nodes) = self.pick_down_nodes(f)
                && self.can_recover(&nodes)
            {
                return Some(self.failover(&nodes, gate, delete_early));
            }
        }
        None
    }

    /// A recoverable failure of `f` nodes with every step the rules ask
    /// for.
    fn valid_failover(&mut self, f: usize, gate: Gate) -> bool {
        match self.recoverable_failure(f, gate, false) {
            Some(failed) => {
                self.delete_failed(&failed, false);
                true
            }
            None => false,
        }
    }

    /// Nodes go down and the next compile places replacements; a single
    /// node sometimes returns soon after (its old stores stay down). With
    /// `delete_early`, the plan of the failure also deletes the failed
    /// stores through PD. Returns the failed stores.
    fn failover(&mut self, nodes: &[usize], gate: Gate, delete_early: bool) -> Vec<usize> {
        let failed = self.view.fail(nodes);
        let mut ops: Vec<Op> = nodes
            .iter()
            .map(|&n| Op::NodeDown(self.view.nodes[n].name.clone()))
            .collect();
        if delete_early {
            ops.extend(failed.iter().map(|&s| Op::Decommission(s)));
        }
        self.plan(gate, ops);
        let new: Vec<Store> = failed.iter().filter_map(|_| self.view.place()).collect();
        if !new.is_empty() {
            self.plan(Gate::Now, vec![Op::Replace(new)]);
        }
        if nodes.len() == 1 && self.rng.below(3) == 0 {
            let after = self.rng.below(2 * self.timing.store_start_ms + 1);
            let name = self.view.nodes[nodes[0]].name.clone();
            self.plan(Gate::After(after), vec![Op::NodeReturns(name)]);
            self.view.node_returns(nodes[0]);
        }
        failed
    }

    /// The failed stores are deleted through PD once every running store,
    /// the replacements included, is Up (unless `deleted` already), and
    /// each is gone and its directory reclaimed once PD reports it
    /// Tombstone (the reclaim Job waits for a node that is down).
    fn delete_failed(&mut self, failed: &[usize], deleted: bool) {
        if failed.is_empty() {
            return;
        }
        if !deleted {
            let running: Vec<usize> = self.view.up().collect();
            self.plan(
                Gate::Up(running),
                failed.iter().map(|&s| Op::Decommission(s)).collect(),
            );
        }
        for &s in failed {
            self.plan(Gate::Tombstone(vec![s]), vec![Op::Reclaim(s)]);
            self.view.remove(s);
        }
    }

    /// A scale in, and a node failure at a random moment while PD moves
    /// the retired stores' replicas; the workloads go once Tombstone. When
    /// no node can fail recoverably, it is a plain scale in. Returns the
    /// story told, if any.
    fn fail_during_scale_in(&mut self) -> Option<Story> {
        let most = self.view.max_scale_in().min(3);
        if most == 0 {
            return None;
        }
        let k = 1 + self.below(most);
        let picks = self.scale_in(k, false);
        let at = self.rng.below(self.drain_ms() + 1);
        let most = (self.view.max_replicas - 1) / 2;
        let f = 1 + self.below(most);
        let failed = self.recoverable_failure(f, Gate::After(at), false);
        // The compiler deletes a failed store only once every running store
        // is Up, so not while the retired stores are still Offline.
        self.remove_when_tombstone(&picks);
        if let Some(failed) = &failed {
            self.delete_failed(failed, false);
        }
        Some(if failed.is_some() {
            Story::FailDuringScaleIn
        } else {
            Story::ScaleIn
        })
    }

    /// A node that is down returns.
    fn node_returns(&mut self) -> bool {
        let down: Vec<usize> = (0..self.view.nodes.len())
            .filter(|&n| self.view.nodes[n].down)
            .collect();
        if down.is_empty() {
            return false;
        }
        let n = down[self.below(down.len())];
        let name = self.view.nodes[n].name.clone();
        self.plan(Gate::Settled, vec![Op::NodeReturns(name)]);
        self.view.node_returns(n);
        true
    }

    /// A PD member fails; the compiler deletes it by name, then a new
    /// member joins (with `join_first`, the other way round).
    fn pd_failover(&mut self, join_first: bool) -> bool {
        if self.view.members.len() < 3 {
            return false;
        }
        let i = self.below(self.view.members.len());
        let failed = self.view.members.remove(i);
        let new = self.view.new_member();
        self.view.members.push(new.clone());
        self.plan(Gate::Settled, vec![Op::PdDown(failed.clone())]);
        let after = self.rng.below(60_001);
        if join_first {
            self.plan(Gate::After(after), vec![Op::PdJoin(new)]);
            self.plan(Gate::Settled, vec![Op::PdDelete(failed)]);
        } else {
            self.plan(Gate::After(after), vec![Op::PdDelete(failed)]);
            self.plan(Gate::Settled, vec![Op::PdJoin(new)]);
        }
        true
    }

    /// One PD member fewer (down to three): the Job deletes it by name
    /// while it runs, and its workload goes once the member list no longer
    /// names it.
    fn pd_scale_in(&mut self) -> bool {
        if self.view.members.len() < 4 {
            return false;
        }
        let i = self.below(self.view.members.len());
        let name = self.view.members.remove(i);
        self.plan(Gate::Settled, vec![Op::PdDelete(name.clone())]);
        self.plan(
            Gate::PdGone(vec![name.clone()]),
            vec![Op::PdRemoveWorkload(name)],
        );
        true
    }

    /// Two PD members out in one change, as a plain GitOps prune would do
    /// it: both workloads stop with the change, before their deletes land.
    fn pd_remove_two_at_once(&mut self) -> bool {
        let mut names = Vec::new();
        for _ in 0..2 {
            let i = self.below(self.view.members.len());
            names.push(self.view.members.remove(i));
        }
        let mut ops: Vec<Op> = names
            .iter()
            .map(|n| Op::PdRemoveWorkload(n.clone()))
            .collect();
        ops.extend(names.into_iter().map(Op::PdDelete));
        self.plan(Gate::Settled, ops);
        true
    }

    /// One PD member more (up to five).
    fn pd_scale_out(&mut self) -> bool {
        if self.view.members.len() > 4 {
            return false;
        }
        let new = self.view.new_member();
        self.view.members.push(new.clone());
        self.plan(Gate::Settled, vec![Op::PdJoin(new)]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: usize, zone: &str, host: &str) -> Store {
        Store {
            id,
            labels: vec![
                ("zone".to_string(), zone.to_string()),
                ("host".to_string(), host.to_string()),
            ],
        }
    }

    /// Zones a, b and c with two hosts of one store each.
    fn three_zones(isolation: Option<&str>) -> Cluster {
        let mut stores = Vec::new();
        for zone in ["a", "b", "c"] {
            for h in 1..=2 {
                stores.push(store(stores.len(), zone, &format!("{zone}{h}")));
            }
        }
        Cluster {
            stores,
            location_labels: vec!["zone".to_string(), "host".to_string()],
            isolation_level: isolation.map(str::to_string),
            max_replicas: 3,
        }
    }

    fn zone(cluster: &Cluster, s: usize) -> &str {
        &cluster.stores[s].labels[0].1
    }

    #[test]
    fn regions_span_all_zones_and_balance() {
        let cluster = three_zones(Some("zone"));
        let regions = place_regions(&cluster, 600, 7).unwrap();
        let mut replicas = vec![0; 6];
        let mut leaders = vec![0; 6];
        for region in &regions {
            let mut zones: Vec<&str> = region.replicas.iter().map(|&s| zone(&cluster, s)).collect();
            zones.sort_unstable();
            assert_eq!(zones, ["a", "b", "c"]);
            assert!(region.replicas.contains(&region.leader));
            for &s in &region.replicas {
                replicas[s] += 1;
            }
            leaders[region.leader] += 1;
        }
        assert_eq!(replicas, [300; 6]);
        // Leaders go to the least loaded replica, one Region at a time.
        let (low, high) = (leaders.iter().min().unwrap(), leaders.iter().max().unwrap());
        assert!(high - low <= 2, "{leaders:?}");
        assert_eq!(regions, place_regions(&cluster, 600, 7).unwrap());
        assert_ne!(regions, place_regions(&cluster, 600, 8).unwrap());
    }

    #[test]
    fn one_zone_at_a_time_is_safe() {
        let cluster = three_zones(Some("zone"));
        let regions = place_regions(&cluster, 300, 1).unwrap();
        let plan = wave_plan(&cluster);
        let domains: Vec<&str> = plan.iter().map(|w| w.domain.as_str()).collect();
        assert_eq!(domains, ["zone=a", "zone=b", "zone=c"]);
        assert_eq!(waves(&cluster), [vec![0, 1], vec![2, 3], vec![4, 5]]);
        let report = simulate(&cluster, &regions, &waves(&cluster), &[], Timing::default());
        assert!(report.is_safe(), "{report:?}");
        assert!(report.quorum_losses.is_empty());
        assert_eq!(report.waves, 3);
        assert_eq!(report.peak_stores_down, 2);
        // Every leader leaves its store once, on its store's wave.
        assert_eq!(report.leader_transfers, 300);
        assert!(at_risk_domains(&cluster, &regions, &[]).is_empty());
        // Three waves of eviction, restart and catch-up, one after another.
        let t = Timing::default();
        assert!(report.total_ms >= 3 * t.restart_ms);
    }

    #[test]
    fn two_zones_at_once_lose_quorum() {
        let cluster = three_zones(Some("zone"));
        let regions = place_regions(&cluster, 100, 2).unwrap();
        let waves = vec![vec![0, 1, 2, 3], vec![4, 5]];
        let report = simulate(&cluster, &regions, &waves, &[], Timing::default());
        assert!(!report.is_safe());
        let mut lost: Vec<usize> = report.quorum_losses.iter().map(|l| l.region).collect();
        lost.sort_unstable();
        assert_eq!(lost, (0..100).collect::<Vec<_>>());
        for loss in &report.quorum_losses {
            assert_eq!(loss.wave, Some(0));
            assert_eq!(loss.down.len(), 2);
            assert!(loss.until_ms.is_some_and(|u| u > loss.at_ms));
        }
        // Leaders could still move to zone c before the stores stopped.
        assert!(report.leaderless.is_empty());
    }

    #[test]
    fn a_store_down_in_zone_b_puts_zones_a_and_c_at_risk() {
        let cluster = three_zones(Some("zone"));
        let regions = place_regions(&cluster, 200, 3).unwrap();
        let down = 2; // zone b, host b1
        let report = simulate(
            &cluster,
            &regions,
            &waves(&cluster),
            &[down],
            Timing::default(),
        );
        let on_down: Vec<usize> = (0..regions.len())
            .filter(|&r| regions[r].replicas.contains(&down))
            .collect();
        assert!(!on_down.is_empty());
        let mut pairs: Vec<(usize, Option<usize>)> = report
            .quorum_losses
            .iter()
            .map(|l| (l.region, l.wave))
            .collect();
        pairs.sort_unstable();
        let expected: Vec<(usize, Option<usize>)> = on_down
            .iter()
            .flat_map(|&r| [(r, Some(0)), (r, Some(2))])
            .collect();
        assert_eq!(pairs, expected);
        for loss in &report.quorum_losses {
            assert!(loss.down.contains(&down));
        }
        assert_eq!(
            at_risk_domains(&cluster, &regions, &[down]),
            ["zone=a", "zone=c"]
        );
        // Zone b's wave restarts only the other store of zone b.
        assert_eq!(report.peak_stores_down, 3);
    }

    #[test]
    fn without_isolation_level_one_store_per_wave() {
        let cluster = three_zones(None);
        let plan = wave_plan(&cluster);
        assert_eq!(plan.len(), 6);
        assert_eq!(plan[4].domain, "store=4");
        assert_eq!(plan[4].stores, [4]);
        let regions = place_regions(&cluster, 300, 4).unwrap();
        // Distinct zones still come first, as PD's distinct score wants.
        for region in &regions {
            let mut zones: Vec<&str> = region.replicas.iter().map(|&s| zone(&cluster, s)).collect();
            zones.dedup();
            assert_eq!(zones.len(), 3);
        }
        let report = simulate(&cluster, &regions, &waves(&cluster), &[], Timing::default());
        assert!(report.is_safe(), "{report:?}");
        assert_eq!(report.peak_stores_down, 1);
        assert_eq!(
            at_risk_domains(&cluster, &regions, &[0]),
            ["store=2", "store=3", "store=4", "store=5"]
        );
    }

    #[test]
    fn racks_are_domains_within_their_zone() {
        let mut stores = Vec::new();
        for zone in ["a", "b"] {
            for rack in ["r1", "r2"] {
                stores.push(Store {
                    id: stores.len(),
                    labels: vec![
                        ("zone".to_string(), zone.to_string()),
                        ("rack".to_string(), rack.to_string()),
                        ("host".to_string(), format!("{zone}-{rack}")),
                    ],
                });
            }
        }
        let cluster = Cluster {
            stores,
            location_labels: ["zone", "rack", "host"].map(String::from).to_vec(),
            isolation_level: Some("rack".to_string()),
            max_replicas: 3,
        };
        let plan = wave_plan(&cluster);
        let domains: Vec<&str> = plan.iter().map(|w| w.domain.as_str()).collect();
        assert_eq!(
            domains,
            [
                "zone=a/rack=r1",
                "zone=a/rack=r2",
                "zone=b/rack=r1",
                "zone=b/rack=r2"
            ]
        );
        let regions = place_regions(&cluster, 400, 5).unwrap();
        let report = simulate(&cluster, &regions, &waves(&cluster), &[], Timing::default());
        assert!(report.is_safe(), "{report:?}");
        // Restarting rack r1 of both zones together is not safe: PD treats
        // them as two racks and puts replicas of one Region in both.
        let by_value = vec![vec![0, 2], vec![1, 3]];
        let report = simulate(&cluster, &regions, &by_value, &[], Timing::default());
        assert!(!report.quorum_losses.is_empty());
    }

    #[test]
    fn too_few_domains_is_an_error() {
        let mut cluster = three_zones(Some("zone"));
        cluster.max_replicas = 5;
        let e = place_regions(&cluster, 1, 0).unwrap_err();
        assert!(
            e.contains("needs 5 domains") && e.contains("are in 3"),
            "{e}"
        );
        cluster.isolation_level = None;
        assert!(place_regions(&cluster, 1, 0).is_ok());
        cluster.max_replicas = 7;
        assert!(
            place_regions(&cluster, 1, 0)
                .unwrap_err()
                .contains("there are 6")
        );
        cluster.isolation_level = Some("rack".to_string());
        assert!(
            place_regions(&cluster, 1, 0)
                .unwrap_err()
                .contains("not one of")
        );
    }

    #[test]
    fn bounded_eviction_leaves_leaders_to_an_election() {
        let cluster = three_zones(Some("zone"));
        let regions = place_regions(&cluster, 60, 6).unwrap();
        let timing = Timing {
            evict_ms_per_leader: 100,
            evict_max_ms: 500,
            ..Timing::default()
        };
        let report = simulate(&cluster, &regions, &waves(&cluster), &[], timing);
        assert!(report.quorum_losses.is_empty());
        // Each store moves 5 leaders in time and stops with the rest: the
        // leaders return home after each wave, so every store starts its
        // wave with the leaders it was given.
        let mut leaders = [0; 6];
        for region in &regions {
            leaders[region.leader] += 1;
        }
        let moved: usize = leaders.iter().map(|&l: &usize| l.min(5)).sum();
        assert_eq!(report.leader_transfers, moved);
        assert_eq!(report.leaderless.len(), 60 - moved);
        assert!(!report.leaderless.is_empty());
        for episode in &report.leaderless {
            assert_eq!(episode.until_ms, Some(episode.at_ms + timing.election_ms));
        }
    }

    #[test]
    fn a_region_without_quorum_waits_for_its_leader() {
        let cluster = three_zones(Some("zone"));
        let regions = vec![Region {
            replicas: vec![0, 2, 4],
            leader: 0,
        }];
        // Zones a and b together, with zone c's store already down: no
        // replica can take the leader and the quorum goes. The eviction bound
        // is shorter than a restart, so the leader's store stops before the
        // other replica is back.
        let waves = vec![vec![0, 1, 2, 3]];
        let timing = Timing {
            evict_max_ms: 1_000,
            ..Timing::default()
        };
        let report = simulate(&cluster, &regions, &waves, &[4], timing);
        assert_eq!(report.quorum_losses.len(), 1);
        let loss = &report.quorum_losses[0];
        assert_eq!(loss.wave, Some(0));
        assert_eq!(report.leaderless.len(), 1);
        let episode = &report.leaderless[0];
        assert_eq!(episode.store, 0);
        // The leader is back when two replicas have caught up.
        assert_eq!(
            episode.until_ms,
            Some(loss.until_ms.unwrap() + timing.election_ms)
        );
        assert_eq!(loss.at_ms, 0);
        assert_eq!(episode.at_ms, 1_000);
        assert_eq!(loss.down, [2, 4]);
    }
}
