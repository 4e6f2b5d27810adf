//! Ordering: which wave each object belongs to, checked against a
//! dependency graph.
//!
//! A wave is a number (Argo CD's `sync-wave`) and a folder (one Flux
//! `Kustomization`). Both are fixed for an object's whole life, because Flux
//! deletes and recreates an object that moves from one Kustomization to
//! another. So a wave is derived only from what never changes for an object:
//!
//! | objects | wave number | folder |
//! |---|---|---|
//! | Namespace, StorageClass | 0 | `00000-base` |
//! | ConfigMaps, Services, PodDisruptionBudgets | 1 | `00001-shared` |
//! | PV and claim of a running instance | 1 | its workload's folder |
//! | PV and claim of a failed instance `c-N` | 1 | `00001-retained-c-{N / 250}` |
//! | PD instance `pd-N` | 100 + N | `{100+N}-pd-N` |
//! | TiKV instances of failure domain D | 10000 + 2 × lock's number of D | `{..}-tikv-{D}-{N / 250}` |
//! | the gate Job after D's wave | the same + 1 | `{..}-tikv-gate-{D}` |
//! | TiKV `tikv-N` without an isolation level (and its gate) | 10000 + 2N (+ 1) | `{..}-tikv-N` |
//! | deleting failed PD members by name | 98 | `00098-pd-members` |
//! | backup of the old version before an upgrade | 99 | `00099-backup-before-upgrade` |
//! | taking leaving or failed instances out through PD | 19998 | `19998-decommission` |
//! | PD settings Job (PD's stored tables, through PD's API) | 19999 | `19999-pd-settings` |
//! | TiDB | 20000 | `20000-tidb` |
//! | restore Jobs | 20001 | `20001-restore` |
//! | backup CronJob, log backup Job | 20002 | `20002-backup` |
//! | reclaim Jobs (wipe a gone instance's directory) | 30000 | `30000-reclaim` (Flux does not wait for it) |
//!
//! PD members come one wave each (the first bootstraps, the others join in
//! order), TiKV one wave per failure domain at the isolation level (so a
//! rolling change never touches two domains at once), and large waves are
//! split into folders of at most 250 instances by ordinal, so no Flux
//! Kustomization has to build thousands of objects.
//!
//! The dependency graph (petgraph) records what each object needs; every
//! edge must point from an earlier wave to a later one (or the same wave
//! where one apply suffices), which `assign` checks.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::diag::Diagnostic;
use crate::lock::Lock;
use crate::manifest::{Object, Role};
use crate::model::{Component, InstanceId, Model};

/// Instances per folder in large waves: 250 volumes are 500 objects.
pub const CHUNK: u32 = 250;

pub const WAVE_BASE: u32 = 0;
pub const WAVE_SHARED: u32 = 1;
pub const WAVE_PD: u32 = 100;
/// After every TiKV wave (PD accepts replication changes only once the
/// first store has bootstrapped the cluster), before TiDB.
pub const WAVE_PD_SETTINGS: u32 = 19_999;
pub const WAVE_TIKV: u32 = 10_000;
pub const WAVE_TIDB: u32 = 20_000;
/// Before the first PD member restarts.
pub const WAVE_BACKUP_BEFORE_UPGRADE: u32 = WAVE_PD - 1;
/// Once TiDB is up.
pub const WAVE_RESTORE: u32 = 20_001;
pub const WAVE_BACKUP: u32 = 20_002;
/// Before the PD waves (and the backup before an upgrade), so a
/// replacement joins a member list without the failed member.
pub const WAVE_PD_MEMBERS: u32 = WAVE_PD - 2;
/// After every TiKV wave (the replacements run), before PD's settings.
pub const WAVE_DECOMMISSION: u32 = WAVE_PD_SETTINGS - 1;
/// Last: a reclaim on a node that is down waits there, holding back nothing.
pub const WAVE_RECLAIM: u32 = 30_000;

/// One wave folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wave {
    pub number: u32,
    /// The folder under `manifests/`, also the Flux Kustomization's suffix.
    pub folder: String,
    /// How long Flux waits for the wave to become healthy.
    pub timeout: String,
}

/// The waves in apply order, and each object's wave (an index into `waves`).
#[derive(Clone, Debug)]
pub struct Ordering {
    pub waves: Vec<Wave>,
    pub of_object: Vec<usize>,
    /// Each object's Argo CD sync-wave.
    pub sync_wave: Vec<u32>,
}

/// Whether a dependency must be healthy before its dependent is applied
/// (`Before`) or may go in the same apply (`Same`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Same,
    Before,
}

pub fn assign(model: &Model, lock: &Lock, objects: &[Object]) -> Result<Ordering, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut per_object = Vec::with_capacity(objects.len());
    let mut sync_wave = Vec::with_capacity(objects.len());
    let running: std::collections::BTreeSet<InstanceId> = objects
        .iter()
        .filter_map(|o| match o.role {
            Role::Workload(id) => Some(id),
            _ => None,
        })
        .collect();
    for object in objects {
        // The volumes of a running instance share its workload's folder (one
        // file holds all three, which reads well in a review) but keep an
        // early sync-wave; Flux applies a folder in one server-side apply, so
        // the claim exists when the StatefulSet's pod is scheduled.
        let role = match &object.role {
            Role::Volume(id) if running.contains(id) => Role::Workload(*id),
            other => other.clone(),
        };
        match wave_of(model, lock, &role) {
            Ok(key) => {
                sync_wave.push(sync_wave_of(&object.role, key.0));
                per_object.push(key);
            }
            Err(d) => {
                diagnostics.push(*d);
                sync_wave.push(0);
                per_object.push((0, String::new()));
            }
        }
    }
    if !diagnostics.is_empty() {
        diagnostics.dedup_by(|a, b| a.message == b.message);
        return Err(diagnostics);
    }

    // Count instances per folder for the timeouts.
    let mut folders: BTreeMap<(u32, String), u32> = BTreeMap::new();
    for (object, key) in objects.iter().zip(&per_object) {
        let count = folders.entry(key.clone()).or_default();
        if matches!(object.role, Role::Workload(_)) {
            *count += 1;
        }
    }
    let waves: Vec<Wave> = folders
        .iter()
        .map(|((number, folder), workloads)| Wave {
            number: *number,
            folder: folder.clone(),
            timeout: timeout(*number, *workloads),
        })
        .collect();
    let index: BTreeMap<&(u32, String), usize> =
        folders.keys().enumerate().map(|(i, k)| (k, i)).collect();
    let of_object: Vec<usize> = per_object.iter().map(|k| index[k]).collect();

    check_dependencies(objects, &of_object, &sync_wave)?;
    Ok(Ordering {
        waves,
        of_object,
        sync_wave,
    })
}

/// The folder (its order number and name) of an object in `role`.
/// The Argo CD sync-wave of an object of `role` in the wave numbered
/// `wave`.
fn sync_wave_of(role: &Role, wave: u32) -> u32 {
    match role {
        // Volumes are created early even in their workload's folder.
        Role::Volume(_) => WAVE_SHARED,
        _ => wave,
    }
}

/// The Argo CD sync-wave of an object of `role` (0 when its wave is an
/// error, which `assign` reports).
pub fn sync_wave(model: &Model, lock: &Lock, role: &Role) -> u32 {
    match role {
        Role::Volume(_) => WAVE_SHARED,
        _ => wave_of(model, lock, role).map_or(0, |key| key.0),
    }
}

fn wave_of(model: &Model, lock: &Lock, role: &Role) -> Result<(u32, String), Box<Diagnostic>> {
    let chunk = |id: InstanceId| id.ordinal / CHUNK;
    Ok(match role {
        Role::Base => (WAVE_BASE, format!("{WAVE_BASE:05}-base")),
        Role::Shared => (WAVE_SHARED, format!("{WAVE_SHARED:05}-shared")),
        // A failed instance has no workload; its volumes stay, in a folder
        // of their own. They may have lived in a domain folder before: moving
        // is safe for them alone, because Flux never prunes an object marked
        // `prune: disabled`, and the new folder adopts it.
        Role::Volume(id) => (
            WAVE_SHARED,
            format!("{WAVE_SHARED:05}-retained-{}-{}", id.component, chunk(*id)),
        ),
        Role::Workload(id) if id.component == Component::Pd => {
            let number = WAVE_PD + id.ordinal;
            if number >= WAVE_TIKV {
                return Err(Box::new(Diagnostic::error(format!(
                    "PD instance `{id}` needs wave {number}, past the PD range (ordinals up to {})",
                    WAVE_TIKV - WAVE_PD - 1
                ))
                .hint("this many PD replacements is not supported; report it as a bug")));
            }
            (number, format!("{number:05}-pd-{}", id.ordinal))
        }
        Role::Workload(id) => match tikv_wave(model, lock, *id)? {
            (number, Some(name)) => (number, format!("{number:05}-tikv-{name}-{}", chunk(*id))),
            (number, None) => (number, format!("{number:05}-tikv-{}", id.ordinal)),
        },
        // The gate of a wave comes right after it, in a folder of its own.
        Role::TikvGate(ids) => {
            let first = ids.first().ok_or_else(|| {
                Box::new(Diagnostic::error("a TiKV gate without instances").hint(BUG))
            })?;
            let (number, name) = tikv_wave(model, lock, *first)?;
            let number = number + 1;
            let name = name.unwrap_or_else(|| first.ordinal.to_string());
            (number, format!("{number:05}-tikv-gate-{name}"))
        }
        Role::Tidb => (WAVE_TIDB, format!("{WAVE_TIDB:05}-tidb")),
        Role::PdSettings => (
            WAVE_PD_SETTINGS,
            format!("{WAVE_PD_SETTINGS:05}-pd-settings"),
        ),
        Role::BackupBeforeUpgrade => (
            WAVE_BACKUP_BEFORE_UPGRADE,
            format!("{WAVE_BACKUP_BEFORE_UPGRADE:05}-backup-before-upgrade"),
        ),
        Role::Restore => (WAVE_RESTORE, format!("{WAVE_RESTORE:05}-restore")),
        Role::Backup => (WAVE_BACKUP, format!("{WAVE_BACKUP:05}-backup")),
        Role::PdMemberDelete => (WAVE_PD_MEMBERS, format!("{WAVE_PD_MEMBERS:05}-pd-members")),
        Role::Decommission => (
            WAVE_DECOMMISSION,
            format!("{WAVE_DECOMMISSION:05}-decommission"),
        ),
        Role::Reclaim => (WAVE_RECLAIM, format!("{WAVE_RECLAIM:05}-reclaim")),
    })
}

const BUG: &str = "this is a bug in tidb-gitops; please report it with your cluster.toml";

/// The wave number of a TiKV instance and the name of its failure domain
/// (the values of its path, `zone=a/rack=r1` -> `a-r1`); `None` without an
/// isolation level, when every store is a wave of its own. Waves are two
/// numbers apart: the odd one after each is its gate.
fn tikv_wave(
    model: &Model,
    lock: &Lock,
    id: InstanceId,
) -> Result<(u32, Option<String>), Box<Diagnostic>> {
    let entry = lock
        .entries
        .binary_search_by_key(&id, |e| e.id)
        .ok()
        .map(|i| &lock.entries[i]);
    let domain = entry
        .and_then(|entry| model.inventory.node(&entry.node))
        .and_then(|n| model.cluster.topology.domain(&n.labels));
    let (index, name) = match domain {
        Some(key) => {
            let Some(index) = lock.tikv_waves.get(&key) else {
                return Err(Box::new(
                    Diagnostic::error(format!(
                        "failure domain `{key}` of `{id}` has no TiKV wave in placement.lock"
                    ))
                    .hint("run `tidb-gitops place` to bring placement.lock up to date"),
                ));
            };
            let values: Vec<String> = key
                .split('/')
                .filter_map(|part| part.split_once('=').map(|(_, v)| folder_part(v)))
                .collect();
            (*index, Some(values.join("-")))
        }
        // Without an isolation level nothing keeps two replicas of a
        // Region apart but the store itself: one store per wave.
        None => (id.ordinal, None),
    };
    let number = u64::from(WAVE_TIKV) + 2 * u64::from(index);
    if number + 1 >= u64::from(WAVE_PD_SETTINGS) {
        return Err(Box::new(
            Diagnostic::error(format!(
                "TiKV wave {index} of `{id}` is past the TiKV range (at most {} waves)",
                (WAVE_PD_SETTINGS - WAVE_TIKV) / 2
            ))
            .hint("use a coarser isolation_level in [topology], or replace fewer TiKV"),
        ));
    }
    Ok((number as u32, name))
}

/// A label value as a folder and object-name part: Kubernetes names are
/// lower case and have no `_` or `.`.
pub fn folder_part(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '_' | '.' => '-',
            c => c,
        })
        .collect()
}

/// Flux waits this long for a wave to become healthy: a PD member may need
/// to wait for its peers' DNS and join; TiKV stores start in parallel within
/// a wave but may replay a long Raft log first.
fn timeout(number: u32, workloads: u32) -> String {
    // A full backup or a restore takes as long as the data needs: the
    // Jobs' own deadline (a day) bounds them, not the wave.
    if number == WAVE_BACKUP_BEFORE_UPGRADE || number == WAVE_RESTORE {
        return "24h".into();
    }
    let minutes = match number {
        n if n < WAVE_PD => 5,
        n if n < WAVE_TIKV => 10,
        n if n < WAVE_TIDB => 15 + workloads / 10,
        _ => 15,
    };
    format!("{minutes}m")
}

/// Builds the dependency graph and checks that every object comes no
/// earlier than what it needs.
fn check_dependencies(
    objects: &[Object],
    of_object: &[usize],
    sync_wave: &[u32],
) -> Result<(), Vec<Diagnostic>> {
    let mut graph: DiGraph<usize, Need> = DiGraph::with_capacity(objects.len(), objects.len() * 4);
    let nodes: Vec<NodeIndex> = (0..objects.len()).map(|i| graph.add_node(i)).collect();
    let by_kind = |kind: &str| -> Vec<usize> {
        objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.kind == kind)
            .map(|(i, _)| i)
            .collect()
    };
    let namespace = by_kind("Namespace");
    let storage_class = by_kind("StorageClass");
    let config_maps = by_kind("ConfigMap");
    // Services the workloads need before them: those of the shared wave
    // (TiDB's client Service comes with TiDB).
    let services: Vec<usize> = by_kind("Service")
        .into_iter()
        .filter(|&i| objects[i].role == Role::Shared)
        .collect();
    let mut claims: BTreeMap<InstanceId, usize> = BTreeMap::new();
    let mut volumes: BTreeMap<InstanceId, usize> = BTreeMap::new();
    let mut workloads: BTreeMap<InstanceId, usize> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        match (&o.role, o.kind) {
            (Role::Volume(id), "PersistentVolumeClaim") => {
                claims.insert(*id, i);
            }
            (Role::Volume(id), _) => {
                volumes.insert(*id, i);
            }
            (Role::Workload(id), _) => {
                workloads.insert(*id, i);
            }
            _ => {}
        }
    }
    let pd_workloads: Vec<(InstanceId, usize)> = workloads
        .iter()
        .filter(|(id, _)| id.component == Component::Pd)
        .map(|(id, w)| (*id, *w))
        .collect();
    let mut edge = |from: usize, to: usize, need: Need| {
        graph.add_edge(nodes[from], nodes[to], need);
    };
    for (i, o) in objects.iter().enumerate() {
        if !matches!(o.kind, "Namespace" | "StorageClass" | "PersistentVolume") {
            for &n in &namespace {
                edge(n, i, Need::Same);
            }
        }
        match (&o.role, o.kind) {
            (Role::Volume(_), "PersistentVolume") => {
                for &s in &storage_class {
                    edge(s, i, Need::Same);
                }
            }
            (Role::Volume(id), _) => edge(volumes[id], i, Need::Same),
            (Role::Workload(id), _) => {
                edge(claims[id], i, Need::Same);
                for &c in config_maps.iter().chain(&services) {
                    edge(c, i, Need::Same);
                }
                // PD members join one after another, in ordinal order;
                // every PD comes before any TiKV.
                let before = match id.component {
                    Component::Pd => &pd_workloads[..pd_workloads.partition_point(|(o, _)| o < id)],
                    _ => &pd_workloads[..],
                };
                for &(_, w) in before {
                    edge(w, i, Need::Before);
                }
            }
            (Role::TikvGate(ids), _) => {
                for id in ids {
                    if let Some(&w) = workloads.get(id) {
                        edge(w, i, Need::Before);
                    }
                }
            }
            (Role::PdSettings, _) => {
                for &c in &config_maps {
                    edge(c, i, Need::Same);
                }
                for &(_, w) in &pd_workloads {
                    edge(w, i, Need::Before);
                }
            }
            (Role::BackupBeforeUpgrade, _) => {
                for &c in &config_maps {
                    edge(c, i, Need::Same);
                }
                for &(_, w) in &pd_workloads {
                    edge(i, w, Need::Before);
                }
            }
            (Role::PdMemberDelete, _) => {
                for &c in &config_maps {
                    edge(c, i, Need::Same);
                }
                for &(_, w) in &pd_workloads {
                    edge(i, w, Need::Before);
                }
            }
            (Role::Decommission, _) => {
                for &c in &config_maps {
                    edge(c, i, Need::Same);
                }
                for (_, &w) in workloads.iter() {
                    edge(w, i, Need::Before);
                }
                for (g, gate) in objects.iter().enumerate() {
                    if matches!(gate.role, Role::TikvGate(_)) {
                        edge(g, i, Need::Before);
                    }
                }
            }
            (Role::Restore | Role::Backup | Role::Reclaim, _) => {
                for &c in &config_maps {
                    edge(c, i, Need::Same);
                }
                for (t, tidb) in objects.iter().enumerate() {
                    if tidb.role == Role::Tidb && tidb.kind == "StatefulSet" {
                        edge(t, i, Need::Before);
                    }
                }
            }
            (Role::Tidb, _) => {
                for &c in config_maps.iter().chain(&services) {
                    edge(c, i, Need::Same);
                }
                for (g, gate) in objects.iter().enumerate() {
                    if matches!(gate.role, Role::TikvGate(_)) {
                        edge(g, i, Need::Before);
                    }
                }
                for (_, &w) in workloads.iter() {
                    edge(w, i, Need::Before);
                }
            }
            _ => {}
        }
    }

    let mut diagnostics = Vec::new();
    if petgraph::algo::toposort(&graph, None).is_err() {
        diagnostics.push(
            Diagnostic::error("the object dependency graph has a cycle")
                .hint("this is a bug in tidb-gitops; please report it with your cluster.toml"),
        );
    }
    for e in graph.edge_indices() {
        let (from, to) = graph.edge_endpoints(e).expect("edge");
        let (a, b) = (graph[from], graph[to]);
        // Both orders must hold: Argo CD's sync-waves and the Flux chain
        // (folders are chained in index order).
        let ok = |x: usize, y: usize| match graph[e] {
            Need::Same => x <= y,
            Need::Before => x < y,
        };
        let argo = ok(sync_wave[a] as usize, sync_wave[b] as usize);
        let flux = ok(of_object[a], of_object[b]);
        if !(argo && flux) {
            diagnostics.push(
                Diagnostic::error(format!(
                    "{} `{}` (wave {}, folder {}) must come after {} `{}` (wave {}, folder {})",
                    objects[b].kind,
                    objects[b].name,
                    sync_wave[b],
                    of_object[b],
                    objects[a].kind,
                    objects[a].name,
                    sync_wave[a],
                    of_object[a]
                ))
                .hint("this is a bug in tidb-gitops; please report it with your cluster.toml"),
            );
        }
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(diagnostics)
    }
}
