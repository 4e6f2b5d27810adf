//! The placement solver: which directory each PD and TiKV instance gets.
//!
//! A pure function of the validated model and the previous lock. The previous
//! lock is a preference: an `up` instance stays on its directory unless its
//! node is gone or down, or its directory vanished or shrank below the
//! request (then it becomes `failed` and a replacement with a new id is
//! placed). Stability wins over spread; `Options::rebalance` asks for the
//! fewest moves that restore the spread.
//!
//! New instances are placed one at a time by hierarchical water-filling over
//! the failure-domain tree (zone, then rack within the zone, then host within
//! the rack): at each level the emptiest child that still has room is chosen,
//! ties going to the first by name. Because a child's room only shrinks, this
//! is exact at every level: two siblings differ by more than one only when the
//! emptier one is full. Each level keeps its children with room in an ordered
//! set, so one placement costs O(depth · log fan-out).
//!
//! What it deliberately does not do: PD is placed before TiKV and takes the
//! smallest directory that fits, but the two components are not optimised
//! jointly; give them distinct `media` tags when directories are scarce.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Diagnostic, FileKind};
use crate::evidence::Observed;
use crate::lock::{Entry, Lock, State};
use crate::model::*;

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Move the fewest instances that restore an even spread.
    pub rebalance: bool,
}

/// Why an instance was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retire {
    ScaleIn,
    Rebalance,
}

/// What the solver changed, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Placed {
        id: InstanceId,
        node: NodeName,
        path: DirPath,
        replaces: Option<InstanceId>,
    },
    Failed {
        id: InstanceId,
        reason: String,
    },
    Retired {
        id: InstanceId,
        why: Retire,
    },
    /// A day-2 step moved on, on evidence from the cluster (`to: None`: the
    /// entry is dropped and its directory is free).
    Advanced {
        id: InstanceId,
        to: Option<State>,
        why: String,
    },
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub lock: Lock,
    pub events: Vec<Event>,
    pub warnings: Vec<Diagnostic>,
}

/// Solves the placement. Errors say why no placement exists and what would fix it.
pub fn place(
    model: &Model,
    previous: &Lock,
    options: &Options,
) -> Result<Outcome, Vec<Diagnostic>> {
    place_observed(model, previous, options, &Observed::default())
}

/// `place`, with evidence from the cluster moving day-2 steps on (see the
/// transitions in `lock`).
pub fn place_observed(
    model: &Model,
    previous: &Lock,
    options: &Options,
    observed: &Observed,
) -> Result<Outcome, Vec<Diagnostic>> {
    let mut solver = Solver::new(model, previous);
    solver.fail_lost_instances();
    for component in Component::STATEFUL {
        solver.component(component, options);
    }
    if solver.errors.is_empty() {
        solver.check_isolation();
    }
    if !solver.errors.is_empty() {
        return Err(solver.errors);
    }
    solver.advance(observed);
    let mut lock = Lock {
        entries: solver.entries,
        next: solver.next,
        tikv_waves: BTreeMap::new(),
        pins: Default::default(),
    };
    lock.normalize();
    lock.tikv_waves = tikv_waves(model, &lock, &previous.tikv_waves);
    let backup = model.cluster.backup.as_ref();
    let restores: Vec<&str> = model
        .cluster
        .restores
        .iter()
        .map(|r| r.name.value.as_str())
        .collect();
    lock.pins = previous.pins.update(
        &model.cluster.version.text,
        backup.is_some_and(|b| b.before_upgrade.as_ref().is_some_and(|v| v.value)),
        &restores,
    );
    Ok(Outcome {
        lock,
        events: solver.events,
        warnings: solver.warnings,
    })
}

/// The wave number of each failure domain at the isolation level that holds
/// a running TiKV (`up` or `leaving`). Domains keep the number the previous
/// lock gave them; new ones take the numbers after the highest in use, in
/// name order. Without an isolation level all TiKV form one wave and no
/// numbers are recorded.
pub fn tikv_waves(
    model: &Model,
    lock: &Lock,
    previous: &BTreeMap<String, u32>,
) -> BTreeMap<String, u32> {
    let topology = &model.cluster.topology;
    if topology.isolation_level.is_none() {
        return BTreeMap::new();
    }
    let domains: BTreeSet<String> = lock
        .entries
        .iter()
        .filter(|e| e.id.component == Component::Tikv && e.state.runs())
        .filter_map(|e| topology.domain(&model.inventory.node(&e.node)?.labels))
        .collect();
    let mut waves: BTreeMap<String, u32> = previous
        .iter()
        .filter(|(domain, _)| domains.contains(*domain))
        .map(|(d, w)| (d.clone(), *w))
        .collect();
    let mut next = waves.values().max().map_or(0, |w| w + 1);
    for domain in domains {
        waves.entry(domain).or_insert_with(|| {
            next += 1;
            next - 1
        });
    }
    waves
}

/// Where an entry lives in the inventory, if it still does.
#[derive(Clone, Copy)]
struct Slot {
    node: usize,
    dir: usize,
}

#[derive(Clone, Default)]
struct Usage {
    /// Instances per component that still hold a directory on the node (any state).
    count: BTreeMap<Component, u32>,
    /// Requests of those instances.
    requested: BTreeMap<String, i128>,
}

struct Solver<'m> {
    model: &'m Model,
    entries: Vec<Entry>,
    slots: Vec<Option<Slot>>,
    /// Per node, per directory: held by some instance.
    occupied: Vec<Vec<bool>>,
    usage: Vec<Usage>,
    next: BTreeMap<Component, u32>,
    /// Instances waiting for a replacement, per component, in order.
    to_replace: BTreeMap<Component, Vec<InstanceId>>,
    events: Vec<Event>,
    warnings: Vec<Diagnostic>,
    errors: Vec<Diagnostic>,
}

impl<'m> Solver<'m> {
    fn new(model: &'m Model, previous: &Lock) -> Solver<'m> {
        let nodes = &model.inventory.nodes;
        let mut solver = Solver {
            model,
            entries: previous.entries.clone(),
            slots: Vec::with_capacity(previous.entries.len()),
            occupied: nodes.iter().map(|n| vec![false; n.dirs.len()]).collect(),
            usage: vec![Usage::default(); nodes.len()],
            next: previous.next.clone(),
            to_replace: BTreeMap::new(),
            events: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
        };
        for i in 0..solver.entries.len() {
            let entry = &solver.entries[i];
            let slot = nodes
                .binary_search_by(|n| n.name.cmp(&entry.node))
                .ok()
                .and_then(|node| {
                    let dir = nodes[node]
                        .dirs
                        .binary_search_by(|d| d.path.cmp(&entry.path))
                        .ok()?;
                    Some(Slot { node, dir })
                });
            solver.slots.push(slot);
            if let Some(slot) = slot {
                solver.hold(slot, entry.id.component);
            }
        }
        solver
    }

    fn hold(&mut self, slot: Slot, component: Component) {
        self.occupied[slot.node][slot.dir] = true;
        let usage = &mut self.usage[slot.node];
        *usage.count.entry(component).or_insert(0) += 1;
        if component != Component::Tidb {
            for (resource, q) in &self.model.cluster.stateful(component).requests {
                *usage.requested.entry(resource.clone()).or_insert(0) += q.nanos();
            }
        }
    }

    /// Day-2 steps that the evidence lets move on (the transitions in
    /// `lock`). Without evidence nothing moves.
    fn advance(&mut self, observed: &Observed) {
        let nodes = &self.model.inventory.nodes;
        for id in &self.model.cluster.reclaimed {
            let state = self.entries.iter().find(|e| e.id == *id).map(|e| e.state);
            if state != Some(State::Gone) {
                let now = state.map_or("not in placement.lock".to_string(), |s| {
                    format!("{}, not gone", s.as_str())
                });
                self.warnings.push(
                    Diagnostic::warning(format!(
                        "[[reclaimed]] names {id}, which is {now}: the entry does nothing"
                    ))
                    .in_file(FileKind::Cluster)
                    .hint("remove the [[reclaimed]] entry once its directory is free (the instance is no longer in placement.lock)"),
                );
            }
        }
        // A failed store is deleted through PD only once every running
        // store, the replacements included, is Up, so PD has somewhere to
        // rebuild the missing replicas. Earlier, PD would refuse the
        // delete or leave it hanging (the day-2 simulator finds no data
        // lost either way); waiting keeps the delete Job from failing.
        let running_up = !observed.stores.is_empty()
            && self
                .entries
                .iter()
                .filter(|e| e.id.component == Component::Tikv && e.state.runs())
                .all(|e| observed.stores.get(&e.id).is_some_and(|s| s == "Up"));
        let mut dropped = BTreeSet::new();
        // Each entry takes every step its evidence allows, so the compile
        // after is a fixed point: a PD member gone from the list on a node
        // that left the inventory becomes `gone` and is dropped at once.
        // Every step moves forward (failed, removing, gone, dropped), so
        // there are at most three.
        for i in 0..self.entries.len() {
            for _ in 0..3 {
                let e = &self.entries[i];
                let id = e.id;
                let store = observed.stores.get(&id).map(String::as_str);
                let member_gone = observed
                    .members
                    .as_ref()
                    .is_some_and(|m| !m.contains(&id.to_string()));
                let step: Option<(Option<State>, &str)> = match (id.component, e.state) {
                    (Component::Tikv, State::Leaving | State::Removing | State::Failed)
                        if store == Some("Tombstone") =>
                    {
                        Some((Some(State::Gone), "PD lists its store as Tombstone"))
                    }
                    (Component::Tikv, State::Failed) if running_up => Some((
                        Some(State::Removing),
                        "every running store is Up, the replacements included: its store is deleted through PD",
                    )),
                    (Component::Pd, State::Leaving | State::Failed) if member_gone => {
                        Some((Some(State::Gone), "PD's member list no longer names it"))
                    }
                    (_, State::Gone) if observed.reclaimed.contains(&id) => {
                        Some((None, "its reclaim Job succeeded; the directory is free"))
                    }
                    (_, State::Gone) if self.model.cluster.reclaimed.contains(&id) => Some((
                        None,
                        "[[reclaimed]] in cluster.toml declares its directory free",
                    )),
                    (_, State::Gone)
                        if nodes.binary_search_by(|n| n.name.cmp(&e.node)).is_err() =>
                    {
                        Some((
                            None,
                            "its node left the inventory: nothing is left to reclaim",
                        ))
                    }
                    _ => None,
                };
                let Some((to, why)) = step else { break };
                self.events.push(Event::Advanced {
                    id,
                    to,
                    why: why.to_string(),
                });
                match to {
                    Some(state) => self.entries[i].state = state,
                    None => {
                        dropped.insert(i);
                        break;
                    }
                }
            }
        }
        if !dropped.is_empty() {
            let mut i = 0;
            self.entries.retain(|_| {
                i += 1;
                !dropped.contains(&(i - 1))
            });
            let mut i = 0;
            self.slots.retain(|_| {
                i += 1;
                !dropped.contains(&(i - 1))
            });
        }
    }

    /// `up` instances whose node or directory is gone become `failed`.
    fn fail_lost_instances(&mut self) {
        let nodes = &self.model.inventory.nodes;
        for i in 0..self.entries.len() {
            let entry = &self.entries[i];
            if entry.state != State::Up {
                continue;
            }
            let request = &self.model.cluster.stateful(entry.id.component).storage;
            let reason = match (
                nodes.binary_search_by(|n| n.name.cmp(&entry.node)),
                self.slots[i],
            ) {
                (Err(_), _) => Some(format!(
                    "node `{}` is no longer in the inventory",
                    entry.node
                )),
                (Ok(n), _) if nodes[n].state.is_down() => Some(format!(
                    "node `{}` is {}",
                    entry.node,
                    if nodes[n].state == NodeState::Destroyed {
                        "destroyed"
                    } else {
                        "down"
                    }
                )),
                (Ok(_), None) => Some(format!(
                    "directory {}:{} is no longer in the inventory",
                    entry.node, entry.path
                )),
                (Ok(_), Some(slot)) => {
                    let capacity = &nodes[slot.node].dirs[slot.dir].capacity;
                    (capacity < request).then(|| {
                        format!(
                            "directory {}:{} has {capacity}, less than the {request} requested",
                            entry.node, entry.path
                        )
                    })
                }
            };
            if let Some(reason) = reason {
                let id = entry.id;
                self.entries[i].state = State::Failed;
                self.to_replace.entry(id.component).or_default().push(id);
                self.events.push(Event::Failed { id, reason });
            }
        }
    }

    fn component(&mut self, component: Component, options: &Options) {
        let spec = self.model.cluster.stateful(component);
        let mut tree = Tree::build(self, component);
        if options.rebalance {
            self.rebalance(&mut tree, spec.replicas);
        }
        let excess = tree.nodes[ROOT].count.saturating_sub(spec.replicas);
        if excess > 0 && component == Component::Pd {
            let pending: Vec<String> = self
                .entries
                .iter()
                .filter(|e| {
                    e.id.component == Component::Pd
                        && matches!(e.state, State::Leaving | State::Failed)
                })
                .map(|e| e.id.to_string())
                .collect();
            if excess > 1 || !pending.is_empty() {
                let mut d = Diagnostic::error(format!(
                    "PD would lose {} member(s) at once",
                    excess as usize + pending.len()
                ))
                .at(crate::diag::FileKind::Cluster, spec.replicas_span.clone())
                .label("one member per change")
                .note("every removed member must leave the Raft group before the next, or the quorum of the remaining ones is at risk");
                if !pending.is_empty() {
                    d = d.note(format!(
                        "still being removed: {} (waiting for `pd-ctl member` evidence)",
                        pending.join(", ")
                    ));
                }
                self.errors.push(d.hint(
                    "lower pd.replicas by one, compile, merge, and lower it again once the member list no longer names the removed one",
                ));
                return;
            }
        }
        let max_replicas = self.model.cluster.topology.max_replicas;
        if excess > 0 && component == Component::Tikv && u64::from(spec.replicas) < max_replicas {
            self.errors.push(
                Diagnostic::error(format!(
                    "scaling TiKV in to {} would leave fewer Up stores than max_replicas {max_replicas}",
                    spec.replicas
                ))
                .at(crate::diag::FileKind::Cluster, spec.replicas_span.clone())
                .label(format!("at least {max_replicas}"))
                .note("every Region keeps max_replicas copies on distinct stores; PD refuses to take a store offline below that, and the delete Jobs would wait forever")
                .hint("keep tikv.replicas at max_replicas or more, or lower topology.max_replicas first (through PD's settings Job) and scale in after"),
            );
            return;
        }
        while tree.nodes[ROOT].count > spec.replicas {
            let victim = tree.fullest_instance(&self.entries);
            self.retire(&mut tree, victim, Retire::ScaleIn);
        }
        while tree.nodes[ROOT].count < spec.replicas {
            let Some(leaf) = tree.emptiest_leaf() else {
                self.errors.push(self.infeasible(&tree, spec));
                return;
            };
            self.place_on(&mut tree, leaf);
        }
        self.warn_uneven(&tree, spec);
    }

    fn retire(&mut self, tree: &mut Tree, entry: usize, why: Retire) {
        let id = self.entries[entry].id;
        self.entries[entry].state = State::Leaving;
        if why == Retire::Rebalance {
            self.to_replace.entry(id.component).or_default().push(id);
        }
        self.events.push(Event::Retired { id, why });
        let leaf = tree.leaf_of[self.slots[entry].expect("up instances have slots").node];
        tree.nodes[leaf].instances.retain(|&e| e != entry);
        tree.adjust(leaf, -1, 0);
    }

    fn place_on(&mut self, tree: &mut Tree, leaf: usize) {
        let component = tree.component;
        let node = tree.nodes[leaf].inventory_node.expect("leaves are nodes");
        let dir = tree.nodes[leaf]
            .free_dirs
            .pop()
            .expect("a leaf with room has a free directory");
        let ordinal = self.next.entry(component).or_insert(0);
        let id = InstanceId::new(component, *ordinal);
        *ordinal += 1;
        let slot = Slot { node, dir };
        self.hold(slot, component);
        let inventory_node = &self.model.inventory.nodes[node];
        let entry = Entry {
            id,
            node: inventory_node.name.clone(),
            path: inventory_node.dirs[dir].path.clone(),
            state: State::Up,
        };
        let replaces = self
            .to_replace
            .get_mut(&component)
            .and_then(|q| (!q.is_empty()).then(|| q.remove(0)));
        self.events.push(Event::Placed {
            id,
            node: entry.node.clone(),
            path: entry.path.clone(),
            replaces,
        });
        self.entries.push(entry);
        self.slots.push(Some(slot));
        tree.nodes[leaf].instances.push(self.entries.len() - 1);
        let room = self.host_room(node, component, tree.nodes[leaf].free_dirs.len() as u32);
        let delta = room as i64 - tree.nodes[leaf].room as i64;
        tree.adjust(leaf, 1, delta);
    }

    /// How many more instances of `component` the node can take.
    fn host_room(&self, node: usize, component: Component, free_dirs: u32) -> u32 {
        let n = &self.model.inventory.nodes[node];
        if n.state != NodeState::Up {
            return 0;
        }
        let spec = self.model.cluster.stateful(component);
        let usage = &self.usage[node];
        let mut room = free_dirs;
        if let Some(max) = spec.max_per_node {
            room = room.min(max.saturating_sub(usage.count.get(&component).copied().unwrap_or(0)));
        }
        room.min(allocatable_room(n, spec, usage))
    }

    /// Moves the fewest instances that make every level of the tree even.
    fn rebalance(&mut self, tree: &mut Tree, replicas: u32) {
        let total = replicas.min(tree.nodes[ROOT].count + tree.nodes[ROOT].room);
        let mut targets = vec![0u32; tree.nodes.len()];
        tree.assign_targets(ROOT, total, &mut targets);
        let leaves: Vec<usize> = (0..tree.nodes.len())
            .filter(|&i| tree.nodes[i].inventory_node.is_some())
            .collect();
        for &leaf in &leaves {
            while tree.nodes[leaf].count > targets[leaf] {
                let victim = *tree.nodes[leaf]
                    .instances
                    .iter()
                    .max_by_key(|&&e| self.entries[e].id)
                    .expect("a leaf with instances");
                self.retire(tree, victim, Retire::Rebalance);
            }
        }
        for &leaf in &leaves {
            while tree.nodes[leaf].count < targets[leaf] && tree.nodes[leaf].room > 0 {
                self.place_on(tree, leaf);
            }
        }
    }

    fn warn_uneven(&mut self, tree: &Tree, spec: &Stateful) {
        let root = &tree.nodes[ROOT];
        let domains = root.children.len() as u32;
        if domains < 2 || tree.levels.len() < 2 {
            return;
        }
        let even = spec.replicas / domains;
        let level = &tree.levels[0];
        for &child in &root.children {
            let c = &tree.nodes[child];
            if c.count < even && c.room == 0 {
                self.warnings.push(
                    Diagnostic::warning(format!(
                        "{level} {} offers {} eligible director{} for {}, {even} {} needed for an even spread of {} over {domains} {level}s",
                        c.label,
                        c.count,
                        if c.count == 1 { "y" } else { "ies" },
                        spec.component.title(),
                        if even == 1 { "is" } else { "are" },
                        spec.replicas,
                    ))
                    .at(FileKind::Cluster, spec.replicas_span.clone())
                    .label("spread is uneven")
                    .hint(format!(
                        "add directories for {} in {level} {}, or accept the uneven spread",
                        spec.component.title(),
                        c.label
                    )),
                );
            }
        }
    }

    fn check_isolation(&mut self) {
        let topology = &self.model.cluster.topology;
        let Some(level) = &topology.isolation_level else {
            return;
        };
        let tikv = &self.model.cluster.tikv;
        if u64::from(tikv.replicas) < topology.max_replicas {
            return; // already warned: the Regions cannot be fully replicated at all
        }
        let nodes = &self.model.inventory.nodes;
        // Domains by their full path: racks of one name in two zones differ.
        let mut used: BTreeSet<String> = BTreeSet::new();
        for (entry, slot) in self.entries.iter().zip(&self.slots) {
            if entry.id.component == Component::Tikv
                && entry.state == State::Up
                && let Some(slot) = slot
                && let Some(v) = topology.domain(&nodes[slot.node].labels)
            {
                used.insert(v);
            }
        }
        if (used.len() as u64) >= topology.max_replicas {
            return;
        }
        let all: BTreeSet<String> = nodes
            .iter()
            .filter(|n| !n.state.is_down())
            .filter_map(|n| topology.domain(&n.labels))
            .collect();
        let mut d = Diagnostic::error(format!(
            "isolation_level `{level}` needs TiKV in at least {} {level}s, but only {} can hold TiKV",
            topology.max_replicas,
            used.len()
        ))
        .at(FileKind::Cluster, topology.isolation_span.clone())
        .label("not enough domains");
        d = d.note(format!(
            "TiKV is in {}: {}",
            plural(used.len(), level),
            used.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        for domain in all.difference(&used) {
            let reasons = Reasons::count(self, tikv, |n| {
                topology.domain(&n.labels).as_ref() == Some(domain)
            });
            d = d.note(format!(
                "{level} {domain} offers no directory for TiKV: {}",
                reasons.describe()
            ));
        }
        let short = topology.max_replicas - used.len() as u64;
        d = d.hint(format!(
            "add eligible TiKV directories (at least {}{}, on an up node) in {} more {}, or lower topology.max_replicas to {}",
            tikv.storage,
            tikv.media.as_ref().map(|m| format!(", media {m}")).unwrap_or_default(),
            short,
            if short == 1 { level.clone() } else { format!("{level}s") },
            used.len().max(1)
        ));
        self.errors.push(d);
    }

    fn infeasible(&self, tree: &Tree, spec: &Stateful) -> Diagnostic {
        let title = spec.component.title();
        let available = tree.nodes[ROOT].count;
        let reasons = Reasons::count(self, spec, |_| true);
        let mut d = Diagnostic::error(format!(
            "cannot place {} {title}: the inventory has room for {available}",
            spec.replicas
        ))
        .at(FileKind::Cluster, spec.replicas_span.clone())
        .label(format!("{} short", spec.replicas - available));
        d = d.note(format!(
            "a {title} directory needs at least {}{} on a node that is up",
            spec.storage,
            spec.media
                .as_ref()
                .map(|m| format!(" and media {m}"))
                .unwrap_or_default()
        ));
        d = d.note(format!(
            "of {} directories: {}",
            reasons.total,
            reasons.describe()
        ));
        if tree.levels.len() > 1 {
            let level = &tree.levels[0];
            let domains = tree.nodes[ROOT].children.len() as u32;
            let even = spec.replicas / domains.max(1);
            for &child in &tree.nodes[ROOT].children {
                let c = &tree.nodes[child];
                if c.count < even {
                    d = d.note(format!(
                        "{level} {} offers {} eligible director{} for {title}, {even} {} needed for an even spread of {} over {domains} {level}s",
                        c.label,
                        c.count,
                        if c.count == 1 { "y" } else { "ies" },
                        if even == 1 { "is" } else { "are" },
                        spec.replicas
                    ));
                }
            }
        }
        let c = spec.component.as_str();
        // Name the limit that actually binds before suggesting more disks.
        let mut fixes = Vec::new();
        if reasons.per_node_limit > 0 {
            fixes.push(format!("raise {c}.max_per_node"));
        }
        if reasons.allocatable > 0 {
            fixes.push(format!(
                "lower {c}.requests or raise the nodes' allocatable"
            ));
        }
        if reasons.cordoned + reasons.down > 0 {
            fixes.push("bring cordoned or down nodes back up".to_string());
        }
        fixes.push(format!(
            "add directories of at least {}{} on up nodes",
            spec.storage,
            spec.media
                .as_ref()
                .map(|m| format!(" with media {m}"))
                .unwrap_or_default(),
        ));
        if available > 0 {
            fixes.push(format!("lower {c}.replicas to {available}"));
        }
        let last = fixes.pop().expect("at least one fix");
        let hint = if fixes.is_empty() {
            last
        } else {
            format!("{}, or {last}", fixes.join(", "))
        };
        d.hint(hint)
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// How many instances of `spec` the node's allocatable still allows.
fn allocatable_room(node: &Node, spec: &Stateful, usage: &Usage) -> u32 {
    let Some(allocatable) = &node.allocatable else {
        return u32::MAX;
    };
    let mut room = u32::MAX;
    for (resource, request) in &spec.requests {
        let Some(total) = allocatable.get(resource) else {
            continue;
        };
        let used = usage.requested.get(resource).copied().unwrap_or(0);
        let left = (total.nanos() - used).max(0);
        room = room.min(u32::try_from(left / request.nanos()).unwrap_or(u32::MAX));
    }
    room
}

fn dir_fits(dir: &Dir, spec: &Stateful) -> bool {
    dir.capacity >= spec.storage
        && spec
            .media
            .as_ref()
            .is_none_or(|m| dir.media.as_ref() == Some(m))
}

/// Why directories cannot take a new instance, counted, for error messages.
#[derive(Default)]
struct Reasons {
    total: usize,
    eligible: usize,
    down: usize,
    cordoned: usize,
    held: usize,
    media: usize,
    small: usize,
    per_node_limit: usize,
    allocatable: usize,
}

impl Reasons {
    fn count(solver: &Solver<'_>, spec: &Stateful, include: impl Fn(&Node) -> bool) -> Reasons {
        let mut r = Reasons::default();
        for (i, node) in solver.model.inventory.nodes.iter().enumerate() {
            if !include(node) {
                continue;
            }
            let mut fit = 0u32;
            for (j, dir) in node.dirs.iter().enumerate() {
                r.total += 1;
                // What the directory is comes first, then where it is, then who holds it.
                if spec
                    .media
                    .as_ref()
                    .is_some_and(|m| dir.media.as_ref() != Some(m))
                {
                    r.media += 1;
                } else if dir.capacity < spec.storage {
                    r.small += 1;
                } else if node.state.is_down() {
                    r.down += 1;
                } else if node.state == NodeState::Cordoned {
                    r.cordoned += 1;
                } else if solver.occupied[i][j] {
                    r.held += 1;
                } else {
                    fit += 1;
                }
            }
            let usage = &solver.usage[i];
            let slots = spec.max_per_node.map_or(u32::MAX, |m| {
                m.saturating_sub(usage.count.get(&spec.component).copied().unwrap_or(0))
            });
            let alloc = allocatable_room(node, spec, usage);
            let room = fit.min(slots).min(alloc);
            r.eligible += room as usize;
            if room < fit {
                if slots <= alloc {
                    r.per_node_limit += (fit - room) as usize;
                } else {
                    r.allocatable += (fit - room) as usize;
                }
            }
        }
        r
    }

    fn describe(&self) -> String {
        let mut parts = vec![format!("{} eligible", self.eligible)];
        for (n, what) in [
            (self.held, "held by instances"),
            (self.small, "too small"),
            (self.media, "of other media"),
            (self.cordoned, "on cordoned nodes"),
            (self.down, "on down nodes"),
            (self.per_node_limit, "beyond max_per_node"),
            (
                self.allocatable,
                "beyond the node's allocatable cpu or memory",
            ),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if self.total == 0 {
            return "the inventory lists no directories here".to_string();
        }
        parts.join(", ")
    }
}

// ---------------------------------------------------------------------------
// The failure-domain tree

const ROOT: usize = 0;

struct TreeNode {
    parent: usize,
    /// Position among its siblings (siblings are sorted by label).
    pos: u32,
    label: String,
    children: Vec<usize>,
    /// `up` instances of the component in this subtree.
    count: u32,
    /// How many more instances this subtree can take.
    room: u32,
    /// Children with room, ordered by (count, position): the first is the
    /// emptiest, ties to the first by name.
    open: BTreeSet<(u32, u32)>,
    /// For a leaf: the inventory node.
    inventory_node: Option<usize>,
    /// For a leaf: eligible free directories, best fit last (it is popped).
    free_dirs: Vec<usize>,
    /// For a leaf: entries of `up` instances on it.
    instances: Vec<usize>,
}

struct Tree {
    component: Component,
    /// Label keys of the levels below the root, coarse to fine; the last is `host`.
    levels: Vec<String>,
    nodes: Vec<TreeNode>,
    /// Inventory node index to leaf index (`usize::MAX` when not in the tree).
    leaf_of: Vec<usize>,
}

impl Tree {
    fn build(solver: &Solver<'_>, component: Component) -> Tree {
        let model = solver.model;
        let spec = model.cluster.stateful(component);
        let levels = model.cluster.topology.location_labels.clone();
        let inventory = &model.inventory.nodes;

        // Nodes with every label, ordered by their domain path.
        let mut members: Vec<(Vec<&str>, usize)> = inventory
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let path: Option<Vec<&str>> = levels
                    .iter()
                    .map(|l| n.labels.get(l).map(String::as_str))
                    .collect();
                path.map(|p| (p, i))
            })
            .collect();
        members.sort();

        let mut tree = Tree {
            component,
            levels: levels.clone(),
            nodes: vec![TreeNode::new(ROOT, 0, String::new())],
            leaf_of: vec![usize::MAX; inventory.len()],
        };
        let mut stack: Vec<usize> = vec![ROOT];
        let mut previous: Option<&Vec<&str>> = None;
        for (path, node) in &members {
            let shared = previous.map_or(0, |p| {
                p.iter()
                    .zip(path.iter())
                    .take_while(|(a, b)| a == b)
                    .count()
            });
            stack.truncate(shared + 1);
            for label in &path[shared..] {
                let parent = *stack.last().expect("root stays");
                let index = tree.nodes.len();
                let pos = tree.nodes[parent].children.len() as u32;
                tree.nodes
                    .push(TreeNode::new(parent, pos, (*label).to_string()));
                tree.nodes[parent].children.push(index);
                stack.push(index);
            }
            let leaf = *stack.last().expect("a leaf per member");
            tree.nodes[leaf].inventory_node = Some(*node);
            tree.leaf_of[*node] = leaf;
            previous = Some(path);
        }

        // Leaves: free eligible directories, room and current instances.
        for (i, node) in inventory.iter().enumerate() {
            let leaf = tree.leaf_of[i];
            if leaf == usize::MAX {
                continue;
            }
            let mut free: Vec<usize> = (0..node.dirs.len())
                .filter(|&d| !solver.occupied[i][d] && dir_fits(&node.dirs[d], spec))
                .collect();
            // Best fit first: the smallest directory that fits, then by path.
            // Reversed, so the best is popped from the end.
            free.sort_by(|&a, &b| {
                (&node.dirs[b].capacity, &node.dirs[b].path)
                    .cmp(&(&node.dirs[a].capacity, &node.dirs[a].path))
            });
            let room = solver.host_room(i, component, free.len() as u32);
            let t = &mut tree.nodes[leaf];
            t.free_dirs = free;
            t.room = room;
        }
        for (e, entry) in solver.entries.iter().enumerate() {
            if entry.id.component != component || entry.state != State::Up {
                continue;
            }
            if let Some(slot) = solver.slots[e] {
                let leaf = tree.leaf_of[slot.node];
                if leaf != usize::MAX {
                    tree.nodes[leaf].instances.push(e);
                    tree.nodes[leaf].count += 1;
                }
            }
        }
        // Sums bottom-up: children always come after their parent in the arena.
        for i in (1..tree.nodes.len()).rev() {
            let (count, room, parent, pos) = {
                let n = &tree.nodes[i];
                (n.count, n.room, n.parent, n.pos)
            };
            let p = &mut tree.nodes[parent];
            p.count += count;
            p.room = p.room.saturating_add(room);
            if room > 0 {
                p.open.insert((count, pos));
            }
        }
        tree
    }

    /// The leaf that water-filling picks next, if any has room.
    fn emptiest_leaf(&self) -> Option<usize> {
        let mut at = ROOT;
        if self.nodes[ROOT].room == 0 {
            return None;
        }
        while self.nodes[at].inventory_node.is_none() {
            let &(_, pos) = self.nodes[at].open.first()?;
            at = self.nodes[at].children[pos as usize];
        }
        Some(at)
    }

    /// The entry to retire on scale in: from the fullest domain at every
    /// level (ties to the last by name), the instance with the highest ordinal.
    fn fullest_instance(&self, entries: &[Entry]) -> usize {
        let mut at = ROOT;
        while self.nodes[at].inventory_node.is_none() {
            at = *self.nodes[at]
                .children
                .iter()
                .filter(|&&c| self.nodes[c].count > 0)
                .max_by_key(|&&c| (self.nodes[c].count, self.nodes[c].pos))
                .expect("a subtree with instances has a child with instances");
        }
        *self.nodes[at]
            .instances
            .iter()
            .max_by_key(|&&e| entries[e].id)
            .expect("a leaf with instances")
    }

    /// Applies a change of count and room at a leaf to it and its ancestors.
    fn adjust(&mut self, leaf: usize, count: i64, room: i64) {
        let mut at = leaf;
        loop {
            let (parent, pos, old_count, old_room) = {
                let n = &self.nodes[at];
                (n.parent, n.pos, n.count, n.room)
            };
            let new_count = (old_count as i64 + count) as u32;
            let new_room = (old_room as i64 + room).max(0) as u32;
            self.nodes[at].count = new_count;
            self.nodes[at].room = new_room;
            if at == ROOT {
                break;
            }
            let open = &mut self.nodes[parent].open;
            if old_room > 0 {
                open.remove(&(old_count, pos));
            }
            if new_room > 0 {
                open.insert((new_count, pos));
            }
            at = parent;
        }
    }

    /// Balanced target counts for every subtree, as close to the current
    /// counts as balance allows (the fewest moves).
    fn assign_targets(&self, at: usize, total: u32, targets: &mut [u32]) {
        targets[at] = total;
        let node = &self.nodes[at];
        if node.children.is_empty() {
            return;
        }
        let holdable: Vec<u32> = node
            .children
            .iter()
            .map(|&c| self.nodes[c].count + self.nodes[c].room)
            .collect();
        let filled =
            |level: u32| -> u64 { holdable.iter().map(|&h| u64::from(h.min(level))).sum() };
        // The highest level such that filling every child up to it stays within the total.
        let (mut lo, mut hi) = (0u32, total);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if filled(mid) <= u64::from(total) {
                lo = mid
            } else {
                hi = mid - 1
            }
        }
        let base = lo;
        let mut left = u64::from(total) - filled(base);
        let mut share: Vec<u32> = holdable.iter().map(|&h| h.min(base)).collect();
        let mut extra: Vec<usize> = (0..node.children.len())
            .filter(|&i| holdable[i] > base)
            .collect();
        // The remainder goes to the children that hold the most already.
        extra.sort_by_key(|&i| (std::cmp::Reverse(self.nodes[node.children[i]].count), i));
        for i in extra {
            if left == 0 {
                break;
            }
            share[i] += 1;
            left -= 1;
        }
        for (i, &child) in node.children.iter().enumerate() {
            self.assign_targets(child, share[i], targets);
        }
    }
}

impl TreeNode {
    fn new(parent: usize, pos: u32, label: String) -> TreeNode {
        TreeNode {
            parent,
            pos,
            label,
            children: Vec::new(),
            count: 0,
            room: 0,
            open: BTreeSet::new(),
            inventory_node: None,
            free_dirs: Vec::new(),
            instances: Vec::new(),
        }
    }
}
