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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::lock::{Lock, State};
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
        .filter(|e| e.id.component == Component::Tikv && e.state != State::Failed)
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
    let labels = &cluster.stores[store].labels;
    cluster
        .location_labels
        .iter()
        .map(|key| {
            labels
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
