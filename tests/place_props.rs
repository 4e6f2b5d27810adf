//! Property tests of the placement solver (DESIGN §5 "Placement").
//!
//! Inputs are random inventories and clusters written as TOML text and read
//! through `load::load`, exactly as the CLI reads them. Every property is
//! judged by an independent checker in this file that works from the
//! generator's own description of the inventory (plain integers for
//! capacities and requests), never by calling the solver a second time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use tidb_gitops::diag::Diagnostic;
use tidb_gitops::load::{Texts, load};
use tidb_gitops::lock::{self, Entry, Lock, State};
use tidb_gitops::model::Component;
use tidb_gitops::place::{Options, Outcome, place};

// ---------------------------------------------------------------------------
// Quantities, as the generator writes them and as the checker reads them.

const GI: u128 = 1 << 30;
/// Directory capacities.
const CAPS: [(&str, u128); 4] = [
    ("50Gi", 50 * GI),
    ("100Gi", 100 * GI),
    ("500Gi", 500 * GI),
    ("1Ti", 1024 * GI),
];
/// Storage requests.
const STORAGE: [(&str, u128); 3] = [("20Gi", 20 * GI), ("100Gi", 100 * GI), ("500Gi", 500 * GI)];
const MEDIA: [&str; 2] = ["ssd", "nvme"];
/// cpu in millicores.
const ALLOC_CPU: [(&str, u128); 4] = [("2", 2000), ("4", 4000), ("8", 8000), ("16", 16000)];
const ALLOC_MEM: [(&str, u128); 4] = [
    ("8Gi", 8 * GI),
    ("16Gi", 16 * GI),
    ("32Gi", 32 * GI),
    ("64Gi", 64 * GI),
];
const REQ_CPU: [(&str, u128); 4] = [("500m", 500), ("1", 1000), ("2", 2000), ("4", 4000)];
const REQ_MEM: [(&str, u128); 4] = [
    ("1Gi", GI),
    ("2Gi", 2 * GI),
    ("4Gi", 4 * GI),
    ("8Gi", 8 * GI),
];

// ---------------------------------------------------------------------------
// The generator's description of the inputs.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Up,
    Cordoned,
    Down,
}

#[derive(Clone, Debug)]
struct DirSpec {
    path: String,
    cap: usize,
    media: usize,
}

#[derive(Clone, Debug)]
struct NodeSpec {
    name: String,
    zone: String,
    rack: String,
    state: St,
    /// `Some` writes an `allocatable` table (possibly with neither resource).
    alloc: Option<(Option<usize>, Option<usize>)>,
    dirs: Vec<DirSpec>,
}

#[derive(Clone, Debug)]
struct CompSpec {
    replicas: u32,
    storage: usize,
    media: Option<usize>,
    max_per_node: Option<u32>,
    req_cpu: Option<usize>,
    req_mem: Option<usize>,
}

#[derive(Clone, Debug)]
struct Spec {
    nodes: Vec<NodeSpec>,
    iso_zone: bool,
    max_replicas: u32,
    pd: CompSpec,
    tikv: CompSpec,
}

impl Spec {
    fn comp(&self, c: Component) -> &CompSpec {
        match c {
            Component::Pd => &self.pd,
            Component::Tikv => &self.tikv,
            Component::Tidb => unreachable!(),
        }
    }
    fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

// ---------------------------------------------------------------------------
// Rendering to TOML text.

fn resources(cpu: Option<(&str, u128)>, mem: Option<(&str, u128)>) -> String {
    let mut parts = Vec::new();
    if let Some((c, _)) = cpu {
        parts.push(format!("cpu = \"{c}\""));
    }
    if let Some((m, _)) = mem {
        parts.push(format!("memory = \"{m}\""));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn comp_toml(out: &mut String, name: &str, c: &CompSpec) {
    let _ = writeln!(out, "\n[{name}]");
    let _ = writeln!(out, "replicas = {}", c.replicas);
    let _ = writeln!(out, "storage = \"{}\"", STORAGE[c.storage].0);
    if let Some(m) = c.media {
        let _ = writeln!(out, "media = \"{}\"", MEDIA[m]);
    }
    if let Some(m) = c.max_per_node {
        let _ = writeln!(out, "max_per_node = {m}");
    }
    if c.req_cpu.is_some() || c.req_mem.is_some() {
        let _ = writeln!(
            out,
            "requests = {}",
            resources(c.req_cpu.map(|i| REQ_CPU[i]), c.req_mem.map(|i| REQ_MEM[i]))
        );
    }
}

fn cluster_toml(spec: &Spec) -> String {
    let mut out = String::from(
        "[cluster]\nname = \"prop\"\nversion = \"v8.5.1\"\n\n[topology]\nlocation_labels = [\"zone\", \"rack\", \"host\"]\n",
    );
    if spec.iso_zone {
        out.push_str("isolation_level = \"zone\"\n");
    }
    let _ = writeln!(out, "max_replicas = {}", spec.max_replicas);
    comp_toml(&mut out, "pd", &spec.pd);
    comp_toml(&mut out, "tikv", &spec.tikv);
    out.push_str("\n[tidb]\nreplicas = 1\n");
    out
}

fn node_toml(out: &mut String, n: &NodeSpec, dirs: &[&DirSpec]) {
    let _ = write!(
        out,
        "\n[[node]]\nname = \"{}\"\nlabels = {{ zone = \"{}\", rack = \"{}\" }}\n",
        n.name, n.zone, n.rack
    );
    match n.state {
        St::Up => {}
        St::Cordoned => out.push_str("state = \"cordoned\"\n"),
        St::Down => out.push_str("state = \"down\"\n"),
    }
    if let Some((cpu, mem)) = n.alloc {
        let _ = writeln!(
            out,
            "allocatable = {}",
            resources(cpu.map(|i| ALLOC_CPU[i]), mem.map(|i| ALLOC_MEM[i]))
        );
    }
    for d in dirs {
        let _ = write!(
            out,
            "\n[[node.dir]]\npath = \"{}\"\ncapacity = \"{}\"\nmedia = \"{}\"\n",
            d.path, CAPS[d.cap].0, MEDIA[d.media]
        );
    }
}

fn inventory_toml(nodes: &[NodeSpec]) -> String {
    let mut out = String::new();
    for n in nodes {
        let dirs: Vec<&DirSpec> = n.dirs.iter().collect();
        node_toml(&mut out, n, &dirs);
    }
    out
}

/// The same inventory with nodes (and each node's directories) in another order.
fn inventory_toml_shuffled(nodes: &[NodeSpec], seed: u64) -> String {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut order: Vec<&NodeSpec> = nodes.iter().collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let mut out = String::new();
    for n in order {
        let mut dirs: Vec<&DirSpec> = n.dirs.iter().collect();
        for i in (1..dirs.len()).rev() {
            dirs.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        node_toml(&mut out, n, &dirs);
    }
    out
}

// ---------------------------------------------------------------------------
// Strategies.

#[derive(Clone, Debug)]
struct NodeBody {
    tag: u16,
    state: St,
    alloc: Option<(Option<usize>, Option<usize>)>,
    dirs: Vec<(usize, usize)>,
}

fn node_body() -> impl Strategy<Value = NodeBody> {
    (
        any::<u16>(),
        prop_oneof![8 => Just(St::Up), 1 => Just(St::Cordoned), 1 => Just(St::Down)],
        prop_oneof![
            3 => Just(None),
            1 => (proptest::option::of(0..4usize), proptest::option::of(0..4usize)).prop_map(Some),
        ],
        prop::collection::vec((0..4usize, 0..2usize), 0..=4),
    )
        .prop_map(|(tag, state, alloc, dirs)| NodeBody {
            tag,
            state,
            alloc,
            dirs,
        })
}

/// Zones `z1..`, racks `r1..` in each zone (rack names repeat across zones on
/// purpose), nodes named so that name order is unrelated to domain order.
fn nodes_with(
    zones: std::ops::RangeInclusive<usize>,
    racks: std::ops::RangeInclusive<usize>,
    per_rack: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<NodeSpec>> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec(node_body(), per_rack), racks),
        zones,
    )
    .prop_map(|zones| build_nodes(zones, 0))
}

fn build_nodes(zones: Vec<Vec<Vec<NodeBody>>>, first: usize) -> Vec<NodeSpec> {
    let mut out = Vec::new();
    let mut index = first;
    for (z, racks) in zones.into_iter().enumerate() {
        for (r, nodes) in racks.into_iter().enumerate() {
            for body in nodes {
                out.push(node_from(body, z + 1, r + 1, index));
                index += 1;
            }
        }
    }
    out
}

fn node_from(body: NodeBody, zone: usize, rack: usize, index: usize) -> NodeSpec {
    NodeSpec {
        name: format!("h{:04x}-{index}", body.tag),
        zone: format!("z{zone}"),
        rack: format!("r{rack}"),
        state: body.state,
        alloc: body.alloc,
        dirs: body
            .dirs
            .into_iter()
            .enumerate()
            .map(|(i, (cap, media))| DirSpec {
                path: format!("/mnt/d{i}"),
                cap,
                media,
            })
            .collect(),
    }
}

fn nodes_strategy() -> BoxedStrategy<Vec<NodeSpec>> {
    prop_oneof![
        9 => nodes_with(1..=4, 1..=3, 1..=5),
        1 => nodes_with(2..=4, 1..=3, 8..=30),
    ]
    .boxed()
}

fn comp_base(max_per_node: bool) -> impl Strategy<Value = CompSpec> {
    (
        prop_oneof![2 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)],
        prop_oneof![1 => Just(None), 1 => Just(Some(0usize)), 1 => Just(Some(1usize))],
        if max_per_node {
            proptest::option::of(1..=3u32).boxed()
        } else {
            Just(None).boxed()
        },
        proptest::option::of(0..4usize),
        proptest::option::of(0..4usize),
    )
        .prop_map(
            |(storage, media, max_per_node, req_cpu, req_mem)| CompSpec {
                replicas: 1,
                storage,
                media,
                max_per_node,
                req_cpu,
                req_mem,
            },
        )
}

/// A fraction in percent used to choose TiKV replicas from the room there is:
/// mostly feasible, sometimes more than the inventory holds.
fn fraction() -> impl Strategy<Value = u64> {
    prop_oneof![5 => 1..=100u64, 1 => 100..=140u64]
}

fn replicas_for(room: u64, percent: u64) -> u32 {
    ((room * percent).div_ceil(100)).max(1) as u32
}

fn spec_from(
    nodes: Vec<NodeSpec>,
    mut pd: CompSpec,
    mut tikv: CompSpec,
    pd_replicas: u32,
    percent: u64,
    iso_zone: bool,
    max_replicas: u32,
) -> Spec {
    let mut spec = Spec {
        nodes,
        iso_zone,
        max_replicas,
        pd: pd.clone(),
        tikv: tikv.clone(),
    };
    let room = |spec: &Spec, c: Component| -> u64 {
        spec.nodes.iter().map(|n| host_room(spec, c, n, &[])).sum()
    };
    // Mostly no more PD than there is room for; above 100 % the request
    // may be more than the inventory holds.
    pd.replicas = if percent <= 100 {
        pd_replicas.min(room(&spec, Component::Pd) as u32).max(1)
    } else {
        pd_replicas
    };
    spec.pd = pd;
    // PD may take directories TiKV could use: leave it that many.
    let tikv_room = room(&spec, Component::Tikv).saturating_sub(u64::from(spec.pd.replicas));
    tikv.replicas = replicas_for(tikv_room, percent);
    spec.tikv = tikv;
    spec
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        nodes_strategy(),
        comp_base(false),
        comp_base(true),
        1..=5u32,
        fraction(),
        prop_oneof![2 => Just(false), 1 => Just(true)],
        1..=4u32,
    )
        .prop_map(|(nodes, pd, tikv, pdr, pct, iso, mr)| {
            spec_from(nodes, pd, tikv, pdr, pct, iso, mr)
        })
}

// ---------------------------------------------------------------------------
// Running the solver.

fn loaded(spec: &Spec, inventory: &str, lock: Option<&str>) -> tidb_gitops::load::Loaded {
    let cluster = cluster_toml(spec);
    let (loaded, diags) = load(Texts {
        cluster: &cluster,
        inventory,
        lock,
    });
    match loaded {
        Some(l) => l,
        None => panic!(
            "generated input does not load: {:#?}\n--- cluster.toml\n{cluster}\n--- inventory.toml\n{inventory}",
            diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>()
        ),
    }
}

fn run_with(
    spec: &Spec,
    inventory: &str,
    lock: Option<&str>,
    rebalance: bool,
) -> Result<Outcome, Vec<Diagnostic>> {
    let l = loaded(spec, inventory, lock);
    place(&l.model, &l.lock, &Options { rebalance })
}

fn run(spec: &Spec, lock: Option<&Lock>, rebalance: bool) -> Result<Outcome, Vec<Diagnostic>> {
    let text = lock.map(|l| l.render());
    run_with(
        spec,
        &inventory_toml(&spec.nodes),
        text.as_deref(),
        rebalance,
    )
}

fn messages(d: &[Diagnostic]) -> Vec<String> {
    d.iter().map(|d| d.message.clone()).collect()
}

// ---------------------------------------------------------------------------
// The independent checker.

fn fits(c: &CompSpec, d: &DirSpec) -> bool {
    CAPS[d.cap].1 >= STORAGE[c.storage].1 && c.media.is_none_or(|m| m == d.media)
}

fn request(c: &CompSpec) -> [Option<u128>; 2] {
    [
        c.req_cpu.map(|i| REQ_CPU[i].1),
        c.req_mem.map(|i| REQ_MEM[i].1),
    ]
}

fn allocatable(n: &NodeSpec) -> Option<[Option<u128>; 2]> {
    n.alloc
        .map(|(c, m)| [c.map(|i| ALLOC_CPU[i].1), m.map(|i| ALLOC_MEM[i].1)])
}

/// How many more instances of `c` the node can take, given the entries that
/// hold directories (any state: a leaving or failed instance keeps its
/// directory, its place under max_per_node and its requests).
fn host_room(spec: &Spec, c: Component, n: &NodeSpec, holders: &[&Entry]) -> u64 {
    if n.state != St::Up {
        return 0;
    }
    let cs = spec.comp(c);
    let on: Vec<&&Entry> = holders.iter().filter(|e| e.node.0 == n.name).collect();
    let held: BTreeSet<&str> = on.iter().map(|e| e.path.0.as_str()).collect();
    let mut room = n
        .dirs
        .iter()
        .filter(|d| fits(cs, d) && !held.contains(d.path.as_str()))
        .count() as u64;
    if let Some(max) = cs.max_per_node {
        let count = on.iter().filter(|e| e.id.component == c).count() as u64;
        room = room.min(u64::from(max).saturating_sub(count));
    }
    if let Some(alloc) = allocatable(n) {
        let req = request(cs);
        for r in 0..2 {
            if let (Some(total), Some(q)) = (alloc[r], req[r]) {
                let used: u128 = on
                    .iter()
                    .map(|e| request(spec.comp(e.id.component))[r].unwrap_or(0))
                    .sum();
                let left = total.saturating_sub(used);
                room = room.min((left / q) as u64);
            }
        }
    }
    room
}

/// Validity of `out` against the inputs and the previous lock.
fn check_valid(spec: &Spec, prev: &Lock, out: &Lock) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let prev_ids: BTreeMap<_, &Entry> = prev.entries.iter().map(|e| (e.id, e)).collect();
    for e in &out.entries {
        if !ids.insert(e.id) {
            return Err(format!("id {} appears twice", e.id));
        }
        let next = out.next.get(&e.id.component).copied().unwrap_or(0);
        if e.id.ordinal >= next {
            return Err(format!("id {} is not below next = {next}", e.id));
        }
        if spec.node(&e.node.0).is_some() && !dirs.insert((e.node.0.clone(), e.path.0.clone())) {
            return Err(format!("{}:{} is held twice", e.node, e.path));
        }
        match prev_ids.get(&e.id) {
            None => {
                if e.id.ordinal < prev.next.get(&e.id.component).copied().unwrap_or(0) {
                    return Err(format!(
                        "new instance {} reuses an ordinal below the previous next",
                        e.id
                    ));
                }
                if e.state != State::Up {
                    return Err(format!("new instance {} is {:?}", e.id, e.state));
                }
            }
            Some(p) => {
                if p.node != e.node || p.path != e.path {
                    return Err(format!("instance {} changed its directory", e.id));
                }
                let ok = p.state == e.state
                    || (p.state == State::Up && matches!(e.state, State::Leaving | State::Failed));
                if !ok {
                    return Err(format!(
                        "instance {} went from {:?} to {:?}",
                        e.id, p.state, e.state
                    ));
                }
            }
        }
        if e.state != State::Up {
            continue;
        }
        let cs = spec.comp(e.id.component);
        let Some(n) = spec.node(&e.node.0) else {
            return Err(format!(
                "up instance {} is on unknown node {}",
                e.id, e.node
            ));
        };
        let Some(d) = n.dirs.iter().find(|d| d.path == e.path.0) else {
            return Err(format!(
                "up instance {} is on unknown dir {}:{}",
                e.id, e.node, e.path
            ));
        };
        if n.state == St::Down {
            return Err(format!("up instance {} is on down node {}", e.id, e.node));
        }
        if !prev_ids.contains_key(&e.id) && n.state != St::Up {
            return Err(format!(
                "new instance {} is on {:?} node {}",
                e.id, n.state, e.node
            ));
        }
        if !fits(cs, d) {
            return Err(format!(
                "instance {} is on {}:{} ({} {}) which does not fit {} {:?}",
                e.id,
                e.node,
                e.path,
                CAPS[d.cap].0,
                MEDIA[d.media],
                STORAGE[cs.storage].0,
                cs.media.map(|m| MEDIA[m])
            ));
        }
    }
    for p in &prev.entries {
        if !ids.contains(&p.id) {
            return Err(format!(
                "instance {} of the previous lock disappeared",
                p.id
            ));
        }
    }
    for (c, next) in &prev.next {
        if out.next.get(c).copied().unwrap_or(0) < *next {
            return Err(format!("next of {c} went down"));
        }
    }
    for c in Component::STATEFUL {
        let up = out
            .entries
            .iter()
            .filter(|e| e.id.component == c && e.state == State::Up)
            .count() as u32;
        if up != spec.comp(c).replicas {
            return Err(format!("{up} up {c}, replicas = {}", spec.comp(c).replicas));
        }
    }
    let holders: Vec<&Entry> = out.entries.iter().collect();
    for n in &spec.nodes {
        let on: Vec<&&Entry> = holders.iter().filter(|e| e.node.0 == n.name).collect();
        if let Some(max) = spec.tikv.max_per_node {
            let count = on
                .iter()
                .filter(|e| e.id.component == Component::Tikv)
                .count() as u32;
            if count > max {
                return Err(format!(
                    "{} TiKV on {}, max_per_node = {max}",
                    count, n.name
                ));
            }
        }
        if let Some(alloc) = allocatable(n) {
            for r in 0..2 {
                if let Some(total) = alloc[r] {
                    let used: u128 = on
                        .iter()
                        .map(|e| request(spec.comp(e.id.component))[r].unwrap_or(0))
                        .sum();
                    if used > total {
                        return Err(format!(
                            "node {} has {} of {} requested, allocatable {}",
                            n.name,
                            used,
                            ["cpu", "memory"][r],
                            total
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Per-domain counts and rooms, and the sibling check at every level.
fn check_balance(spec: &Spec, c: Component, out: &Lock, holders: &[&Entry]) -> Result<(), String> {
    // (zone, rack, host) -> (count, room)
    let mut hosts: BTreeMap<(&str, &str, &str), (u64, u64)> = BTreeMap::new();
    for n in &spec.nodes {
        let count = out
            .entries
            .iter()
            .filter(|e| e.id.component == c && e.state == State::Up && e.node.0 == n.name)
            .count() as u64;
        hosts.insert(
            (&n.zone, &n.rack, &n.name),
            (count, host_room(spec, c, n, holders)),
        );
    }
    let mut zones: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut racks: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (&(z, r, _), &(count, room)) in &hosts {
        let e = zones.entry(z).or_default();
        e.0 += count;
        e.1 += room;
        let e = racks.entry((z, r)).or_default();
        e.0 += count;
        e.1 += room;
    }
    let siblings = |what: String, kids: Vec<(String, u64, u64)>| -> Result<(), String> {
        for a in &kids {
            for b in &kids {
                if a.1 >= b.1 + 2 && b.2 > 0 {
                    return Err(format!(
                        "{c} unbalanced under {what}: {} has {} but {} has {} and room for {} more",
                        a.0, a.1, b.0, b.1, b.2
                    ));
                }
            }
        }
        Ok(())
    };
    siblings(
        "the root".into(),
        zones
            .iter()
            .map(|(z, &(c, r))| (z.to_string(), c, r))
            .collect(),
    )?;
    for &z in zones.keys() {
        siblings(
            format!("zone {z}"),
            racks
                .iter()
                .filter(|((zz, _), _)| *zz == z)
                .map(|((_, r), &(c, rm))| (format!("rack {z}/{r}"), c, rm))
                .collect(),
        )?;
    }
    for &(z, r) in racks.keys() {
        siblings(
            format!("rack {z}/{r}"),
            hosts
                .iter()
                .filter(|((zz, rr, _), _)| *zz == z && *rr == r)
                .map(|((_, _, h), &(c, rm))| (format!("host {h}"), c, rm))
                .collect(),
        )?;
    }
    Ok(())
}

/// Balance of both components. PD is placed before TiKV, so PD's room is
/// also judged as it was before the new TiKV instances took directories
/// (stronger than judging it at the end, which it implies).
fn check_balance_all(spec: &Spec, prev: &Lock, out: &Lock) -> Result<(), String> {
    let all: Vec<&Entry> = out.entries.iter().collect();
    let tikv_next = prev.next_ordinal(Component::Tikv);
    let before_tikv: Vec<&Entry> = out
        .entries
        .iter()
        .filter(|e| !(e.id.component == Component::Tikv && e.id.ordinal >= tikv_next))
        .collect();
    check_balance(spec, Component::Pd, out, &before_tikv)?;
    check_balance(spec, Component::Pd, out, &all)?;
    check_balance(spec, Component::Tikv, out, &all)
}

fn describe(spec: &Spec, lock: &Lock) -> String {
    format!(
        "--- cluster.toml\n{}--- inventory.toml\n{}--- lock\n{}",
        cluster_toml(spec),
        inventory_toml(&spec.nodes),
        lock.render()
    )
}

fn ok_or_fail(r: Result<(), String>, spec: &Spec, lock: &Lock) -> Result<(), TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{e}\n{}", describe(spec, lock))))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config(256))]

    /// 1. Validity of a fresh placement.
    #[test]
    fn fresh_placement_is_valid(spec in spec_strategy()) {
        if let Ok(out) = run(&spec, None, false) {
            ok_or_fail(check_valid(&spec, &Lock::default(), &out.lock), &spec, &out.lock)?;
            for e in &out.lock.entries {
                prop_assert_eq!(e.state, State::Up);
            }
            // The rendered lock reads back as the same lock.
            let text = out.lock.render();
            prop_assert_eq!(lock::parse(&text).expect("own lock parses"), out.lock.clone());
        }
    }

    /// 2. Balance of a fresh placement at every level of the domain tree.
    #[test]
    fn fresh_placement_is_balanced(spec in spec_strategy()) {
        if let Ok(out) = run(&spec, None, false) {
            ok_or_fail(check_balance_all(&spec, &Lock::default(), &out.lock), &spec, &out.lock)?;
        }
    }

    /// 5. Isolation: TiKV in at least max_replicas zones.
    #[test]
    fn isolation_holds(mut spec in spec_strategy()) {
        spec.iso_zone = true;
        if let Ok(out) = run(&spec, None, false)
            && spec.tikv.replicas >= spec.max_replicas {
                let zones: BTreeSet<&str> = out
                    .lock
                    .entries
                    .iter()
                    .filter(|e| e.id.component == Component::Tikv && e.state == State::Up)
                    .map(|e| spec.node(&e.node.0).expect("known node").zone.as_str())
                    .collect();
                prop_assert!(
                    zones.len() as u32 >= spec.max_replicas,
                    "TiKV in {} zones, max_replicas {}\n{}",
                    zones.len(),
                    spec.max_replicas,
                    describe(&spec, &out.lock)
                );
            }
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// 3. Determinism, also under another order of nodes and directories.
    #[test]
    fn placement_is_deterministic(spec in spec_strategy(), seed in any::<u64>()) {
        let inventory = inventory_toml(&spec.nodes);
        let a = run_with(&spec, &inventory, None, false);
        let b = run_with(&spec, &inventory, None, false);
        let c = run_with(&spec, &inventory_toml_shuffled(&spec.nodes, seed), None, false);
        match (a, b, c) {
            (Ok(a), Ok(b), Ok(c)) => {
                prop_assert_eq!(a.lock.render(), b.lock.render());
                prop_assert_eq!(a.lock.render(), c.lock.render());
            }
            (Err(a), Err(b), Err(c)) => {
                prop_assert_eq!(messages(&a), messages(&b));
                prop_assert_eq!(messages(&a), messages(&c));
            }
            (a, b, c) => prop_assert!(
                false,
                "outcomes differ: {:?} {:?} {:?}",
                a.is_ok(),
                b.is_ok(),
                c.is_ok()
            ),
        }
    }

    /// 4a. Re-placing with the output lock changes nothing.
    #[test]
    fn replacing_is_a_fixed_point(spec in spec_strategy()) {
        if let Ok(first) = run(&spec, None, false) {
            let again = run(&spec, Some(&first.lock), false);
            let again = match again {
                Ok(a) => a,
                Err(d) => return Err(TestCaseError::fail(format!(
                    "re-placing failed: {:?}\n{}", messages(&d), describe(&spec, &first.lock)))),
            };
            prop_assert_eq!(again.lock.render(), first.lock.render());
            prop_assert!(again.events.is_empty(), "events: {:?}", again.events);
            // A fresh placement is balanced, so asking to rebalance moves nothing.
            let rebalanced = run(&spec, Some(&first.lock), true).expect("rebalance of a fresh lock");
            prop_assert_eq!(rebalanced.lock.render(), first.lock.render(), "rebalance of a fresh placement moved");
            prop_assert!(rebalanced.events.is_empty(), "events: {:?}", rebalanced.events);
        }
    }

    /// 4b, 4d. Adding nodes or raising replicas moves nothing and reuses no id.
    #[test]
    fn growing_moves_nothing(
        spec in spec_strategy(),
        extra in prop::collection::vec(
            (1..=5usize, 1..=3usize, prop::collection::vec(node_body(), 1..=4)), 0..=3),
        more_pd in 0..=2u32,
        more_tikv in 0..=6u32,
    ) {
        let Ok(first) = run(&spec, None, false) else { return Ok(()); };
        let mut grown = spec.clone();
        let mut index = 10_000;
        for (zone, rack, bodies) in extra {
            for body in bodies {
                grown.nodes.push(node_from(body, zone, rack, index));
                index += 1;
            }
        }
        grown.pd.replicas += more_pd;
        grown.tikv.replicas += more_tikv;
        if let Ok(out) = run(&grown, Some(&first.lock), false) {
            ok_or_fail(check_valid(&grown, &first.lock, &out.lock), &grown, &out.lock)?;
            for p in &first.lock.entries {
                let now = out.lock.entries.iter().find(|e| e.id == p.id);
                prop_assert_eq!(now, Some(p), "instance {} changed", p.id);
            }
        }
    }

    /// 4c, 4d. Downing or removing a node changes only its instances.
    #[test]
    fn losing_a_node_affects_only_its_instances(
        spec in spec_strategy(),
        pick in any::<prop::sample::Index>(),
        remove in any::<bool>(),
    ) {
        let Ok(first) = run(&spec, None, false) else { return Ok(()); };
        let holding: Vec<&str> = spec
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| first.lock.entries.iter().any(|e| e.node.0 == *n))
            .collect();
        if holding.is_empty() {
            return Ok(());
        }
        let victim = holding[pick.index(holding.len())].to_string();
        let mut after = spec.clone();
        // Removing the only node leaves an inventory without nodes: an
        // input error (golden/errors), so that node goes down instead.
        if remove && spec.nodes.len() > 1 {
            after.nodes.retain(|n| n.name != victim);
        } else {
            after.nodes.iter_mut().find(|n| n.name == victim).unwrap().state = St::Down;
        }
        if let Ok(out) = run(&after, Some(&first.lock), false) {
            ok_or_fail(check_valid(&after, &first.lock, &out.lock), &after, &out.lock)?;
            for p in &first.lock.entries {
                let now = out.lock.entries.iter().find(|e| e.id == p.id).expect("kept");
                if p.node.0 == victim {
                    prop_assert_eq!(now.state, State::Failed, "{} on the lost node", p.id);
                    prop_assert_eq!(&now.node, &p.node);
                    prop_assert_eq!(&now.path, &p.path);
                } else {
                    prop_assert_eq!(now, p, "{} is not on the lost node {}", p.id, &victim);
                }
            }
        }
    }
}

/// A spec whose nodes are in zones 2.. (and a copy with zone 1 only).
fn skewed_strategy() -> impl Strategy<Value = (Spec, Spec)> {
    (
        nodes_with(1..=1, 1..=3, 1..=5),
        prop_oneof![
            9 => nodes_with(1..=3, 1..=3, 1..=5),
            1 => nodes_with(2..=3, 1..=3, 8..=20),
        ],
        comp_base(false),
        comp_base(true),
        1..=5u32,
        fraction(),
    )
        .prop_map(|(first, rest, pd, tikv, pdr, pct)| {
            let mut rest = rest;
            for n in &mut rest {
                // zones z2.., names distinct from the first zone's
                let z: usize = n.zone[1..].parse().unwrap();
                n.zone = format!("z{}", z + 1);
                n.name = format!("{}-x", n.name);
            }
            let skewed = spec_from(first.clone(), pd, tikv, pdr, pct, false, 1);
            let mut full = skewed.clone();
            full.nodes.extend(rest);
            (skewed, full)
        })
}

/// Places `before` fresh, then re-places on `after` (more nodes, same
/// replicas) with and without rebalance, and judges both.
fn check_rebalance(before: &Spec, after: &Spec) -> Result<(), TestCaseError> {
    let Ok(first) = run(before, None, false) else {
        return Ok(());
    };
    // Without rebalance: nothing moves, nothing new.
    let still = match run(after, Some(&first.lock), false) {
        Ok(o) => o,
        Err(d) => {
            return Err(TestCaseError::fail(format!(
                "adding nodes made placement fail: {:?}\n{}",
                messages(&d),
                describe(after, &first.lock)
            )));
        }
    };
    prop_assert_eq!(
        still.lock.render(),
        first.lock.render(),
        "moved without rebalance"
    );
    prop_assert!(
        still.events.is_empty(),
        "events without rebalance: {:?}",
        still.events
    );
    // With rebalance.
    let out = match run(after, Some(&first.lock), true) {
        Ok(o) => o,
        Err(d) => {
            return Err(TestCaseError::fail(format!(
                "rebalance failed: {:?}\n{}",
                messages(&d),
                describe(after, &first.lock)
            )));
        }
    };
    ok_or_fail(check_valid(after, &first.lock, &out.lock), after, &out.lock)?;
    ok_or_fail(
        check_balance_all(after, &first.lock, &out.lock),
        after,
        &out.lock,
    )?;
    let moved = first
        .lock
        .entries
        .iter()
        .filter(|p| {
            out.lock
                .entries
                .iter()
                .any(|e| e.id == p.id && e.state == State::Leaving)
        })
        .count() as u32;
    let up = after.pd.replicas + after.tikv.replicas;
    prop_assert!(moved <= up, "{} moves for {} up instances", moved, up);
    // Fewest moves, at least where the answer is plain: a lock that is
    // already balanced is not touched.
    if check_balance_all(after, &first.lock, &first.lock).is_ok() {
        prop_assert_eq!(
            out.lock.render(),
            first.lock.render(),
            "rebalance moved instances of an already balanced lock\n{}",
            describe(after, &first.lock)
        );
    }
    // A rebalanced lock stays put under a second rebalance.
    let again = run(after, Some(&out.lock), true).expect("second rebalance");
    prop_assert_eq!(
        again.lock.render(),
        out.lock.render(),
        "a second rebalance moved more\n{}",
        describe(after, &out.lock)
    );
    Ok(())
}

/// Nodes of the full inventory and a mask choosing which are there at first.
fn masked_strategy() -> impl Strategy<Value = (Spec, Spec)> {
    spec_strategy()
        .prop_flat_map(|spec| {
            let n = spec.nodes.len();
            (
                Just(spec),
                prop::collection::vec(prop::bool::weighted(0.4), n),
            )
        })
        .prop_map(|(mut full, mask)| {
            full.iso_zone = false;
            let mut before = full.clone();
            let mut keep = mask.into_iter();
            before.nodes.retain(|_| keep.next().unwrap());
            // An inventory without nodes is an input error, not a start.
            if before.nodes.is_empty() {
                before.nodes.push(full.nodes[0].clone());
            }
            (before, full)
        })
}

proptest! {
    #![proptest_config(config(200))]

    /// 6. Rebalance after the other zones arrive restores the spread;
    /// without it nothing moves.
    #[test]
    fn rebalance_restores_spread((skewed, full) in skewed_strategy()) {
        check_rebalance(&skewed, &full)?;
    }

    /// 6. The same when any subset of the nodes came first (imbalance at
    /// every level, not only between zones).
    #[test]
    fn rebalance_restores_spread_after_any_subset((before, full) in masked_strategy()) {
        check_rebalance(&before, &full)?;
    }
}

proptest! {
    #![proptest_config(config(150))]

    /// Beyond the brief: lowering replicas retires exactly the surplus
    /// (`up` -> `leaving`), changes nothing else and keeps the spread.
    #[test]
    fn scale_in_retires_only_the_surplus(
        spec in spec_strategy(),
        fewer_pd in 0..=4u32,
        fewer_tikv in 0..=8u32,
    ) {
        let Ok(first) = run(&spec, None, false) else { return Ok(()); };
        let mut smaller = spec.clone();
        smaller.pd.replicas = spec.pd.replicas.saturating_sub(fewer_pd).max(1);
        smaller.tikv.replicas = spec.tikv.replicas.saturating_sub(fewer_tikv).max(1);
        if smaller.iso_zone && smaller.tikv.replicas >= smaller.max_replicas {
            // Isolation on scale in is not this property's business.
            smaller.iso_zone = false;
        }
        let result = run(&smaller, Some(&first.lock), false);
        // TiKV never scales in below max_replicas Up stores.
        if smaller.tikv.replicas < spec.tikv.replicas
            && u64::from(smaller.tikv.replicas) < u64::from(smaller.max_replicas)
        {
            let refused = result.as_ref().err().is_some_and(|d| {
                messages(d).iter().any(|m| m.contains("fewer Up stores than max_replicas"))
            });
            prop_assert!(refused, "TiKV scale in to {} below max_replicas {} was not refused", smaller.tikv.replicas, smaller.max_replicas);
            return Ok(());
        }
        // PD loses at most one member per change.
        if spec.pd.replicas - smaller.pd.replicas > 1 {
            let refused = result.as_ref().err().is_some_and(|d| {
                messages(d).iter().any(|m| m.contains("PD would lose"))
            });
            prop_assert!(refused, "PD scale in by {} was not refused", spec.pd.replicas - smaller.pd.replicas);
            return Ok(());
        }
        let out = match result {
            Ok(o) => o,
            Err(d) => return Err(TestCaseError::fail(format!(
                "scale in failed: {:?}\n{}", messages(&d), describe(&smaller, &first.lock)))),
        };
        ok_or_fail(check_valid(&smaller, &first.lock, &out.lock), &smaller, &out.lock)?;
        prop_assert_eq!(out.lock.entries.len(), first.lock.entries.len(), "new instances on scale in");
        ok_or_fail(check_balance_all(&smaller, &first.lock, &out.lock), &smaller, &out.lock)?;
    }
}

// ---------------------------------------------------------------------------
// Infeasible inputs: an error, never a panic, and exactly when the inventory
// is short. PD and TiKV use different media and PD requests nothing, so the
// two components never compete and each one's room is a sum over hosts.

fn infeasible_strategy() -> impl Strategy<Value = Spec> {
    (
        nodes_with(1..=4, 1..=3, 1..=4),
        comp_base(false),
        comp_base(true),
        0..2usize,
        1..=5u32,
        1..=12u32,
        any::<bool>(),
        1..=4u32,
    )
        .prop_map(|(nodes, mut pd, mut tikv, pd_media, pdr, tikvr, iso, mr)| {
            pd.media = Some(pd_media);
            pd.req_cpu = None;
            pd.req_mem = None;
            tikv.media = Some(1 - pd_media);
            pd.replicas = pdr;
            tikv.replicas = tikvr;
            Spec {
                nodes,
                iso_zone: iso,
                max_replicas: mr,
                pd,
                tikv,
            }
        })
}

proptest! {
    #![proptest_config(config(400))]

    /// Infeasible inputs give an error, never a panic, exactly when the
    /// checker counts too little room.
    #[test]
    fn errors_exactly_when_short(spec in infeasible_strategy()) {
        let room = |c: Component| -> u64 {
            spec.nodes.iter().map(|n| host_room(&spec, c, n, &[])).sum()
        };
        let zones_with_room: BTreeSet<&str> = spec
            .nodes
            .iter()
            .filter(|n| host_room(&spec, Component::Tikv, n, &[]) > 0)
            .map(|n| n.zone.as_str())
            .collect();
        let pd_short = room(Component::Pd) < u64::from(spec.pd.replicas);
        let tikv_short = room(Component::Tikv) < u64::from(spec.tikv.replicas);
        let iso_short = spec.iso_zone
            && spec.tikv.replicas >= spec.max_replicas
            && (zones_with_room.len() as u32) < spec.max_replicas;
        let expect_err = pd_short || tikv_short || iso_short;
        let got = run(&spec, None, false);
        match &got {
            Ok(out) => {
                ok_or_fail(check_valid(&spec, &Lock::default(), &out.lock), &spec, &out.lock)?;
            }
            Err(d) => prop_assert!(!d.is_empty()),
        }
        prop_assert_eq!(
            got.is_err(),
            expect_err,
            "pd room {} of {}, tikv room {} of {}, zones with TiKV room {} (isolation {}, max_replicas {}); solver said {:?}\n{}",
            room(Component::Pd), spec.pd.replicas,
            room(Component::Tikv), spec.tikv.replicas,
            zones_with_room.len(), spec.iso_zone, spec.max_replicas,
            got.as_ref().err().map(|d| messages(d)),
            describe(&spec, &Lock::default())
        );
    }
}

// ---------------------------------------------------------------------------
// The checker itself catches what it is meant to catch.

fn tiny() -> Spec {
    let dir = |i: usize| DirSpec {
        path: format!("/mnt/d{i}"),
        cap: 3,
        media: 1,
    };
    let node = |name: &str, zone: &str| NodeSpec {
        name: name.into(),
        zone: zone.into(),
        rack: "r1".into(),
        state: St::Up,
        alloc: None,
        dirs: vec![dir(0), dir(1), dir(2)],
    };
    let comp = |replicas| CompSpec {
        replicas,
        storage: 0,
        media: None,
        max_per_node: None,
        req_cpu: None,
        req_mem: None,
    };
    Spec {
        nodes: vec![node("a", "z1"), node("b", "z2")],
        iso_zone: false,
        max_replicas: 1,
        pd: comp(1),
        tikv: comp(3),
    }
}

fn tiny_lock(entries: &[(Component, u32, &str, &str, State)]) -> Lock {
    let mut lock = Lock::default();
    for &(c, ordinal, node, path, state) in entries {
        lock.entries.push(Entry {
            id: tidb_gitops::model::InstanceId::new(c, ordinal),
            node: tidb_gitops::model::NodeName(node.into()),
            path: tidb_gitops::model::DirPath(path.into()),
            state,
        });
        let next = lock.next.entry(c).or_insert(0);
        *next = (*next).max(ordinal + 1);
    }
    lock
}

#[test]
fn checker_catches_violations() {
    use Component::{Pd, Tikv};
    let spec = tiny();
    let none = Lock::default();
    let good = tiny_lock(&[
        (Pd, 0, "a", "/mnt/d0", State::Up),
        (Tikv, 0, "b", "/mnt/d0", State::Up),
        (Tikv, 1, "a", "/mnt/d1", State::Up),
        (Tikv, 2, "b", "/mnt/d1", State::Up),
    ]);
    check_valid(&spec, &none, &good).unwrap();
    check_balance_all(&spec, &none, &good).unwrap();

    // All TiKV in zone z1 while z2 has room.
    let skewed = tiny_lock(&[
        (Pd, 0, "b", "/mnt/d0", State::Up),
        (Tikv, 0, "a", "/mnt/d0", State::Up),
        (Tikv, 1, "a", "/mnt/d1", State::Up),
        (Tikv, 2, "a", "/mnt/d2", State::Up),
    ]);
    check_valid(&spec, &none, &skewed).unwrap();
    assert!(check_balance_all(&spec, &none, &skewed).is_err());
    // ... which is fine when z2 is full.
    let mut full_b = spec.clone();
    full_b.nodes[1].dirs.truncate(1);
    check_balance_all(&full_b, &none, &skewed).unwrap();
    // ... or when max_per_node leaves no room there.
    let mut capped = spec.clone();
    capped.tikv.max_per_node = Some(3);
    capped.nodes[1].state = St::Cordoned;
    check_balance_all(&capped, &none, &skewed).unwrap();

    // Two instances on one directory.
    let shared = tiny_lock(&[
        (Pd, 0, "a", "/mnt/d0", State::Up),
        (Tikv, 0, "a", "/mnt/d0", State::Up),
        (Tikv, 1, "b", "/mnt/d1", State::Up),
        (Tikv, 2, "b", "/mnt/d2", State::Up),
    ]);
    assert!(check_valid(&spec, &none, &shared).is_err());

    // A new instance on a cordoned node, an instance on a down node.
    let mut cordoned = spec.clone();
    cordoned.nodes[0].state = St::Cordoned;
    assert!(check_valid(&cordoned, &none, &good).is_err());
    assert!(check_valid(&cordoned, &good, &good).is_ok());
    let mut down = spec.clone();
    down.nodes[0].state = St::Down;
    assert!(check_valid(&down, &good, &good).is_err());

    // Too small, wrong media, max_per_node, allocatable, replicas.
    let mut small = spec.clone();
    small.tikv.storage = 2;
    small.nodes[1].dirs[1].cap = 1;
    assert!(check_valid(&small, &none, &good).is_err());
    let mut media = spec.clone();
    media.tikv.media = Some(0);
    assert!(check_valid(&media, &none, &good).is_err());
    let mut per_node = spec.clone();
    per_node.tikv.max_per_node = Some(1);
    assert!(check_valid(&per_node, &none, &good).is_err());
    let mut alloc = spec.clone();
    alloc.nodes[1].alloc = Some((Some(0), None));
    alloc.tikv.req_cpu = Some(2);
    assert!(check_valid(&alloc, &none, &good).is_err());
    assert_eq!(host_room(&alloc, Component::Tikv, &alloc.nodes[1], &[]), 1);
    let mut replicas = spec.clone();
    replicas.tikv.replicas = 4;
    assert!(check_valid(&replicas, &none, &good).is_err());

    // Ids: reuse of an ordinal below the previous next, a vanished entry.
    let mut prev = good.clone();
    prev.next.insert(Tikv, 5);
    prev.entries
        .retain(|e| e.id.ordinal != 2 || e.id.component != Tikv);
    assert!(check_valid(&spec, &prev, &good).is_err());
    let mut gone = good.clone();
    gone.entries.pop();
    assert!(check_valid(&spec, &good, &gone).is_err());
}
