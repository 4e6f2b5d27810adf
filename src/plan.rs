//! The rollout a change triggers: which instances are created, restarted,
//! upgraded, rescaled or removed, in which wave, and why.
//!
//! A plan compares two output folders (as file maps): the base (what is
//! deployed, or what the base revision compiles to) and the new compile.
//! Reading both as outputs, rather than as inputs, makes a compiler upgrade
//! that changes a probe show as the restart it is. Plans are computed on
//! demand and never stored in the output.
//!
//! Besides PD, TiKV and TiDB, a plan shows the Jobs that run once (PD's
//! stored settings, restores, the backup before an upgrade, starting the
//! log backup) and the backup schedule. Only files whose bytes differ are
//! parsed; instances in unchanged files are read from their text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::layout::Files;
use crate::yaml;

/// What happens to one instance (a PD or TiKV instance, or TiDB as a whole).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Created,
    /// The image changed: every pod of the instance restarts on the new one.
    Upgraded {
        from: String,
        to: String,
    },
    /// The pod template changed otherwise: the pods restart.
    Restarted {
        reasons: Vec<String>,
    },
    /// Only the replica count changed: no pod restarts.
    Rescaled {
        from: u64,
        to: u64,
    },
    /// The workload is gone from the output (its volumes stay).
    Removed,
    /// Objects other than the pod template changed (no restart).
    Updated {
        reasons: Vec<String>,
    },
    /// Settings PD keeps in its own storage, applied through PD's API by a
    /// Job named after them: no restart.
    Api {
        settings: Vec<String>,
    },
    /// A one-shot Job runs: a restore, a backup before an upgrade, starting
    /// the log backup.
    Runs {
        what: String,
    },
    /// A schedule (the backup CronJob) is created.
    Scheduled {
        what: String,
    },
}

impl Change {
    pub fn restarts(&self) -> bool {
        matches!(self, Change::Upgraded { .. } | Change::Restarted { .. })
    }

    fn verb(&self) -> &'static str {
        match self {
            Change::Created => "create",
            Change::Upgraded { .. } => "upgrade",
            Change::Restarted { .. } => "restart",
            Change::Rescaled { .. } => "rescale",
            Change::Removed => "remove",
            Change::Updated { .. } => "update",
            Change::Api { .. } => "api",
            Change::Runs { .. } => "run",
            Change::Scheduled { .. } => "schedule",
        }
    }

    fn detail(&self) -> String {
        match self {
            Change::Created => "new".into(),
            Change::Upgraded { from, to } => format!("{from} -> {to}"),
            Change::Restarted { reasons } | Change::Updated { reasons } => reasons.join("; "),
            Change::Rescaled { from, to } => format!("replicas {from} -> {to}"),
            Change::Removed => "workload removed; its volumes are kept".into(),
            Change::Api { settings } => {
                format!("through PD's API, no restart: {}", settings.join(", "))
            }
            Change::Runs { what } | Change::Scheduled { what } => what.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InstanceChange {
    /// `pd-0`, `tikv-3` or `tidb`.
    pub instance: String,
    pub component: String,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Wave {
    /// The wave's folder under `manifests/` (one Flux Kustomization).
    pub folder: String,
    /// The Argo CD sync-wave.
    pub sync_wave: u32,
    /// The longest Flux waits for the wave, from its Kustomization.
    pub timeout: String,
    pub changes: Vec<InstanceChange>,
}

/// The plan of one change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Plan {
    /// A short hash of the changes (not of timings or wording).
    pub hash: String,
    /// Whether there is a base; without one the plan creates the cluster.
    pub has_base: bool,
    pub summary: String,
    /// Waves with at least one change, in apply order.
    pub waves: Vec<Wave>,
    /// Counts per component of unchanged instances.
    pub unchanged: BTreeMap<String, usize>,
    /// Why the change is unsafe; empty when it is safe. An unsafe plan goes
    /// through only when `cluster.toml` acknowledges its hash.
    pub unsafe_reasons: Vec<String>,
    /// Whether `[[acknowledge]]` in cluster.toml names this plan's hash.
    pub acknowledged: bool,
    /// Things a reviewer should know that do not stop the change.
    pub warnings: Vec<String>,
    /// Day-2 steps waiting for evidence from the cluster, each with the
    /// command that captures it.
    #[serde(default)]
    pub waiting: Vec<String>,
}

impl Plan {
    /// Unsafe and not acknowledged: `plan` exits 1 and `compile` refuses.
    pub fn refused(&self) -> bool {
        !self.unsafe_reasons.is_empty() && !self.acknowledged
    }
}

/// What one instance looks like in an output: its workload (if any) and
/// the texts of the config files its pods mount.
#[derive(Clone, Debug, Default)]
struct Instance {
    folder: String,
    component: String,
    workload: Option<Value>,
    others: Vec<Value>,
}

/// Reads the instances of an output folder, from the files `parse` selects.
fn instances(
    files: &Files,
    parse: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, Instance>, String> {
    // (path, folder)
    let selected: Vec<(&str, &str)> = files
        .keys()
        .filter_map(|path| {
            let rest = path.strip_prefix("manifests/")?;
            let (folder, file) = rest.split_once('/')?;
            (file != "kustomization.yaml" && parse(path)).then_some((path.as_str(), folder))
        })
        .collect();
    let parsed = parse_all(files, &selected)?;
    let mut out: BTreeMap<String, Instance> = BTreeMap::new();
    for (&(_, folder), docs) in selected.iter().zip(parsed) {
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let id = doc["metadata"]["labels"]["tidb-gitops.io/instance-id"]
                .as_str()
                .map(str::to_string);
            let key = match (&id, kind.as_str()) {
                (Some(id), _) => id.clone(),
                (None, "StatefulSet") if component == "tidb" => "tidb".to_string(),
                _ => continue,
            };
            let entry = out.entry(key).or_default();
            entry.component = component;
            if kind == "StatefulSet" {
                entry.folder = folder.to_string();
                entry.workload = Some(doc);
            } else {
                if entry.folder.is_empty() {
                    entry.folder = folder.to_string();
                }
                entry.others.push(doc);
            }
        }
    }
    Ok(out)
}

/// The documents of each selected file (by path), parsed on all cores: a
/// change that touches every instance, such as an upgrade, has thousands of
/// files. The first file in order that does not parse is the error.
fn parse_all(files: &Files, selected: &[(&str, &str)]) -> Result<Vec<Vec<Value>>, String> {
    let per_thread = selected.len().div_ceil(crate::threads()).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = selected
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(path, _)| {
                            yaml::parse_fast(&files[*path]).map_err(|e| format!("{path}: {e}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(selected.len());
        for handle in handles {
            out.extend(handle.join().expect("a parser thread panicked")?);
        }
        Ok(out)
    })
}

/// What the plan needs of an instance whose files are the same in both
/// outputs: its component and, for TiKV, its store labels. Read from the
/// text without parsing it (the emitter's own layout: one `key: value` per
/// line), which keeps a plan of a large, mostly unchanged cluster cheap.
#[derive(Clone, Debug, Default)]
struct Steady {
    component: String,
    labels: Option<BTreeMap<String, String>>,
}

fn steady_instances(files: &Files, same: impl Fn(&str) -> bool) -> BTreeMap<String, Steady> {
    let mut out: BTreeMap<String, Steady> = BTreeMap::new();
    for (path, text) in files {
        if !path.starts_with("manifests/") || path.ends_with("/kustomization.yaml") || !same(path) {
            continue;
        }
        for doc in text.split("\n---\n") {
            // Labels are read from the metadata only: a selector further
            // down (a reclaim Job's anti-affinity) names instances too.
            let (head, spec) = doc.split_once("\nspec:\n").unwrap_or((doc, ""));
            let value = |key: &str| {
                head.lines()
                    .find_map(|l| l.trim_start().strip_prefix(key))
                    .map(|v| v.trim().trim_matches('\'').to_string())
            };
            let kind = value("kind: ").unwrap_or_default();
            let component = value("app.kubernetes.io/component: ").unwrap_or_default();
            let id = match value("tidb-gitops.io/instance-id: ") {
                Some(id) => id,
                None if kind == "StatefulSet" && component == "tidb" => "tidb".into(),
                None => continue,
            };
            let entry = out.entry(id).or_default();
            entry.component = component;
            if kind == "StatefulSet" {
                entry.labels = spec
                    .lines()
                    .find_map(|l| l.trim_start().strip_prefix("- --labels="))
                    .map(|v| v.trim().trim_matches('\'').to_string())
                    .map(|l| {
                        l.split(',')
                            .filter_map(|kv| kv.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect()
                    });
            }
        }
    }
    out
}

/// The ConfigMaps of an output, by name.
fn config_maps(files: &Files) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (path, text) in files {
        if !path.contains("/configmap-") {
            continue;
        }
        for doc in yaml::parse_fast(text).unwrap_or_default() {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let data = doc["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(name, data);
        }
    }
    out
}

/// The paths whose bytes differ between `a` and `b`, or that only one has:
/// one walk over both sorted maps, comparing each common file once.
pub fn differing_paths<'f>(a: &'f Files, b: &'f Files) -> BTreeSet<&'f str> {
    let mut out = BTreeSet::new();
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some((p, _)), None) => {
                out.insert(p.as_str());
                a.next();
            }
            (None, Some((p, _))) => {
                out.insert(p.as_str());
                b.next();
            }
            (Some((pa, ta)), Some((pb, tb))) => match pa.cmp(pb) {
                std::cmp::Ordering::Less => {
                    out.insert(pa.as_str());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.insert(pb.as_str());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if ta != tb {
                        out.insert(pa.as_str());
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// Computes the plan from `base` (none: the cluster is created) to `new`.
pub fn plan(base: Option<&Files>, new: &Files, acknowledged: &[String]) -> Result<Plan, String> {
    plan_in_batches(base, new, acknowledged, BATCH_FILES)
}

/// `plan`, parsing `batch` instance files at a time.
fn plan_in_batches(
    base: Option<&Files>,
    new: &Files,
    acknowledged: &[String],
    batch: usize,
) -> Result<Plan, String> {
    let empty = Files::new();
    let base_files = base.unwrap_or(&empty);
    // A file with the same bytes on both sides holds the same objects: only
    // the others are parsed.
    let differing = differing_paths(base_files, new);
    let same = |path: &str| !differing.contains(path);
    let steady = steady_instances(new, same);
    let (old_maps, new_maps) = (config_maps(base_files), config_maps(new));

    // The instances in differing files, a batch at a time: each batch is
    // parsed, compared and reduced to what the plan keeps (changes, store
    // labels, unsafe findings) before the next, so an upgrade of thousands
    // of instances never holds them all parsed. An instance's objects share
    // one file, named after it on both sides: batches are cut by file name.
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for path in &differing {
        by_name
            .entry(path.rsplit('/').next().unwrap_or(path))
            .or_default()
            .push(path);
    }
    let names: Vec<&Vec<&str>> = by_name.values().collect();
    let mut by_folder: BTreeMap<String, Vec<InstanceChange>> = BTreeMap::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut components: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = Seen::default();
    for batch in names.chunks(batch) {
        let paths: BTreeSet<&str> = batch.iter().flat_map(|p| p.iter().copied()).collect();
        let in_batch = |path: &str| paths.contains(path);
        let (old, now) = (instances(base_files, in_batch)?, instances(new, in_batch)?);
        let ids: BTreeSet<&String> = old.keys().chain(now.keys()).collect();
        for id in ids {
            let (before, after) = (old.get(id), now.get(id));
            let change = match (
                before.and_then(|i| i.workload.as_ref()),
                after.and_then(|i| i.workload.as_ref()),
            ) {
                (None, None) => None,
                (None, Some(_)) => Some(Change::Created),
                (Some(_), None) => Some(Change::Removed),
                (Some(b), Some(a)) => compare(b, a, &old_maps, &new_maps),
            };
            let change = change.or_else(|| {
                // The workload is the same; did its volumes change?
                let (b, a) = (before?, after?);
                (b.others != a.others).then(|| Change::Updated {
                    reasons: vec!["volume or claim changed".into()],
                })
            });
            let instance = after.or(before).expect("one side has it");
            if let Some(change) = change {
                changed.insert(id.clone());
                let folder = if after.is_some_and(|a| a.workload.is_some()) {
                    &after.unwrap().folder
                } else {
                    &instance.folder
                };
                by_folder
                    .entry(folder.clone())
                    .or_default()
                    .push(InstanceChange {
                        instance: id.clone(),
                        component: instance.component.clone(),
                        change,
                    });
            }
        }
        for (id, i) in old.iter().chain(now.iter()) {
            if !i.component.is_empty() {
                components.insert(id.clone(), i.component.clone());
            }
        }
        seen.add(&old, &now);
    }
    // Every instance without a change, whether its files changed or not.
    for (id, s) in &steady {
        components
            .entry(id.clone())
            .or_insert_with(|| s.component.clone());
    }
    let mut unchanged: BTreeMap<String, usize> = BTreeMap::new();
    for (id, component) in &components {
        if !changed.contains(id) {
            *unchanged.entry(component.clone()).or_default() += 1;
        }
    }
    for (folder, change) in backup_changes(base_files, new)? {
        by_folder.entry(folder).or_default().push(change);
    }
    if let Some((folder, change)) = settings_change(base_files, new, base.is_some())? {
        by_folder.entry(folder).or_default().push(InstanceChange {
            instance: "pd-settings".into(),
            component: "pd-settings".into(),
            change,
        });
    }
    let waves: Vec<Wave> = by_folder
        .into_iter()
        .map(|(folder, mut changes)| {
            changes.sort_by_key(|c| natural(&c.instance));
            let timeout = new
                .get(&format!("gitops/flux/kustomization-{folder}.yaml"))
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.trim().strip_prefix("timeout: "))
                        .map(|t| t.trim_matches('\'').to_string())
                })
                .unwrap_or_else(|| "-".into());
            Wave {
                sync_wave: folder
                    .split('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                folder,
                timeout,
                changes,
            }
        })
        .collect();
    let unsafe_reasons = safety(&seen, &steady, &waves, new);
    let warnings = warnings(&waves, new);
    let hash = change_hash(&waves, &unsafe_reasons);
    let summary = summary(&waves, &unchanged);
    let acknowledged = acknowledged.contains(&hash);
    Ok(Plan {
        hash,
        has_base: base.is_some(),
        summary,
        waves,
        unchanged,
        unsafe_reasons,
        acknowledged,
        warnings,
        waiting: Vec::new(),
    })
}

/// The backup family's objects of an output, by step: `backup` (the
/// CronJob), `log-backup`, `backup-before-upgrade`, `restore/<name>`; with
/// their folder and the object.
fn backup_steps(files: &Files) -> Result<BTreeMap<String, (String, Value)>, String> {
    let mut out = BTreeMap::new();
    for (path, text) in files {
        let Some((folder, file)) = path
            .strip_prefix("manifests/")
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let backup_folder = [
            crate::graph::WAVE_BACKUP_BEFORE_UPGRADE,
            crate::graph::WAVE_RESTORE,
            crate::graph::WAVE_BACKUP,
            crate::graph::WAVE_PD_MEMBERS,
            crate::graph::WAVE_DECOMMISSION,
            crate::graph::WAVE_RECLAIM,
        ]
        .iter()
        .any(|w| folder.starts_with(&format!("{w:05}-")));
        if !backup_folder || file == "kustomization.yaml" {
            continue;
        }
        for doc in yaml::parse_fast(text).map_err(|e| format!("{path}: {e}"))? {
            let labels = &doc["metadata"]["labels"];
            let step = labels["app.kubernetes.io/component"]
                .as_str()
                .unwrap_or_default();
            let target = labels[crate::manifest::LABEL_TARGET].as_str();
            let key = match (
                step,
                labels[crate::manifest::backup::LABEL_RESTORE].as_str(),
            ) {
                ("restore", Some(name)) => format!("restore/{name}"),
                ("store-delete" | "pd-member-delete" | "reclaim", _) => {
                    format!("{step}/{}", target.unwrap_or_default())
                }
                ("", _) => continue,
                (step, _) => step.to_string(),
            };
            out.insert(key, (folder.to_string(), doc));
        }
    }
    Ok(out)
}

/// What the backup family does in a change. The CronJob is created,
/// updated or removed; the one-shot Jobs run when a Job of a new name
/// appears (their names carry what they do), and are otherwise quiet.
fn backup_changes(base: &Files, new: &Files) -> Result<Vec<(String, InstanceChange)>, String> {
    let (old, now) = (backup_steps(base)?, backup_steps(new)?);
    let env = |doc: &Value, name: &str| -> String {
        let spec = &doc["spec"]["template"]["spec"];
        spec["containers"]
            .as_array()
            .into_iter()
            .chain(spec["initContainers"].as_array())
            .flatten()
            .flat_map(|c| c["env"].as_array().into_iter().flatten())
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = old.keys().chain(now.keys()).collect();
    for key in keys {
        let (before, after) = (old.get(key), now.get(key));
        let one_shot = ["store-delete/", "pd-member-delete/", "reclaim/"]
            .iter()
            .any(|p| key.starts_with(p));
        let (folder, change) = match (before, after) {
            (None, None) => continue,
            // A day-2 Job leaves the output once its step is done: quiet.
            (Some(_), None) if one_shot => continue,
            (Some((folder, _)), None) => (folder.clone(), Change::Removed),
            (before, Some((folder, doc))) => {
                let renamed =
                    before.is_none_or(|(_, b)| b["metadata"]["name"] != doc["metadata"]["name"]);
                let change = if key == "backup" {
                    let schedule = doc["spec"]["schedule"].as_str().unwrap_or_default();
                    let job = &doc["spec"]["jobTemplate"];
                    let to = env(job, "STORAGE_BASE");
                    let what = format!("full backup at `{schedule}` UTC to {to}/<start time>");
                    match before {
                        None => Change::Scheduled { what },
                        Some((_, b)) if b == doc => continue,
                        Some((_, b)) => {
                            let mut reasons = Vec::new();
                            diff_paths("spec", &b["spec"], &doc["spec"], &mut reasons);
                            reasons.push(what);
                            Change::Updated { reasons }
                        }
                    }
                } else if !renamed {
                    continue;
                } else if let Some(id) = key.strip_prefix("store-delete/") {
                    let force = if env(doc, "FORCE") == "true" {
                        " with ?force (its node is destroyed)"
                    } else {
                        ""
                    };
                    Change::Runs {
                        what: format!(
                            "delete the store of {id} through PD{force}: its Regions move to other stores, then it is Tombstone"
                        ),
                    }
                } else if let Some(id) = key.strip_prefix("pd-member-delete/") {
                    Change::Runs {
                        what: format!(
                            "delete PD member {id} by name (leadership moves away first)"
                        ),
                    }
                } else if let Some(id) = key.strip_prefix("reclaim/") {
                    Change::Runs {
                        what: format!(
                            "wipe {}:{} of {id}, once no pod of {id} is on the node and only if its owner marker names {id}",
                            env(doc, "NODE_NAME"),
                            env(doc, "HOST_PATH")
                        ),
                    }
                } else if key == "log-backup" {
                    Change::Runs {
                        what: format!(
                            "start the log backup to {} (nothing if it already runs)",
                            env(doc, "LOG_STORAGE")
                        ),
                    }
                } else if key == "backup-before-upgrade" {
                    let image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default();
                    Change::Runs {
                        what: format!(
                            "full backup with {image} to {}/{} before the first PD restarts",
                            env(doc, "STORAGE_BASE"),
                            env(doc, "RUN_NAME")
                        ),
                    }
                } else {
                    let spec = doc;
                    let what = match env(spec, "MODE").as_str() {
                        "point" => format!(
                            "restore {} and its log {} up to {}, once",
                            env(spec, "FROM"),
                            env(spec, "LOG_FROM"),
                            env(spec, "RESTORED_TS")
                        ),
                        _ => format!("restore {}, once", env(spec, "FROM")),
                    };
                    Change::Runs { what }
                };
                (folder.clone(), change)
            }
        };
        out.push((
            folder,
            InstanceChange {
                instance: key.clone(),
                component: key.split('/').next().unwrap_or_default().to_string(),
                change,
            },
        ));
    }
    Ok(out)
}

/// The value of `key` in the `[replication]` table of an output's pd.toml.
fn pd_replication(files: &Files, key: &str) -> Option<toml::Value> {
    let text = files.iter().find_map(|(path, text)| {
        (path.contains("/configmap-") && text.contains("pd.toml")).then_some(text)
    })?;
    let doc = yaml::parse_fast(text).ok()?.into_iter().next()?;
    let table: toml::Table = doc["data"]["pd.toml"].as_str()?.parse().ok()?;
    table.get("replication")?.get(key).cloned()
}

/// A TiKV workload's store labels (from its `--labels` argument).
fn store_labels(workload: &Value) -> BTreeMap<String, String> {
    workload["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str()?.strip_prefix("--labels="))
        .flat_map(|l| l.split(','))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `v8.5.1` from `pingcap/tikv:v8.5.1`, as comparable numbers.
fn version(image: &str) -> Option<(u64, u64, u64)> {
    let tag = image.rsplit_once(':')?.1.strip_prefix('v')?;
    let numbers = tag.split(['-', '+']).next()?;
    let mut parts = numbers.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// What the safety rules need of the instances whose files differ,
/// gathered batch by batch (see `plan`).
#[derive(Default)]
struct Seen {
    /// The store labels of every running TiKV in the new output.
    labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Unsafe changes of one instance: (rule, instance).
    findings: Vec<(String, String)>,
}

impl Seen {
    fn add(&mut self, old: &BTreeMap<String, Instance>, now: &BTreeMap<String, Instance>) {
        for (id, i) in now.iter().filter(|(_, i)| i.component == "tikv") {
            if let Some(w) = &i.workload {
                self.labels.insert(id.clone(), store_labels(w));
            }
        }
        let mut group = |reason: String, id: &str| self.findings.push((reason, id.to_string()));
        // Fields the API server refuses to change, and volumes that would
        // move.
        for (id, before) in old {
            let Some(after) = now.get(id) else { continue };
            if let (Some(b), Some(a)) = (&before.workload, &after.workload) {
                for field in [
                    "selector",
                    "serviceName",
                    "podManagementPolicy",
                    "volumeClaimTemplates",
                ] {
                    if b["spec"][field] != a["spec"][field] {
                        group(
                            format!(
                                "a change of StatefulSet spec.{field}, which the API server refuses (the StatefulSet would have to be deleted and created again)"
                            ),
                            id,
                        );
                    }
                }
            }
            for b in &before.others {
                let Some(a) = after.others.iter().find(|a| {
                    a["kind"] == b["kind"] && a["metadata"]["name"] == b["metadata"]["name"]
                }) else {
                    continue;
                };
                match b["kind"].as_str() {
                    Some("PersistentVolume")
                        if b["spec"]["local"] != a["spec"]["local"]
                            || b["spec"]["nodeAffinity"] != a["spec"]["nodeAffinity"] =>
                    {
                        group(
                        "a PersistentVolume moved to another node or directory; an instance's data cannot move (place a new instance instead)".to_string(),
                        id,
                    );
                    }
                    Some("PersistentVolumeClaim") => {
                        for field in [
                            "storageClassName",
                            "volumeName",
                            "accessModes",
                            "volumeMode",
                        ] {
                            if b["spec"][field] != a["spec"][field] {
                                group(
                                    format!(
                                        "a change of claim spec.{field}, which the API server refuses"
                                    ),
                                    id,
                                );
                            }
                        }
                        if b["spec"]["resources"] != a["spec"]["resources"] {
                            group(
                                format!(
                                    "a claim's storage request changed from {} to {}; the API server refuses to resize a bound local claim (keep `storage` as it was, or replace the instances)",
                                    b["spec"]["resources"]["requests"]["storage"],
                                    a["spec"]["resources"]["requests"]["storage"]
                                ),
                                id,
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// How many instance files `plan` parses at a time.
const BATCH_FILES: usize = 512;

/// The rules of DESIGN §5 that a change must keep, checked on the outputs.
fn safety(
    seen: &Seen,
    steady: &BTreeMap<String, Steady>,
    waves: &[Wave],
    new: &Files,
) -> Vec<String> {
    let mut reasons = Vec::new();
    // Per-instance findings, grouped so one rule is one line.
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut group =
        |reason: String, id: &str| grouped.entry(reason).or_default().push(id.to_string());
    // Downgrades.
    for w in waves {
        for c in &w.changes {
            if let Change::Upgraded { from, to } = &c.change
                && let (Some(a), Some(b)) = (version(from), version(to))
                && b < a
            {
                let tag = |image: &str| {
                    image
                        .rsplit_once(':')
                        .map_or(image.to_string(), |(_, t)| t.to_string())
                };
                group(
                    format!(
                        "a downgrade from {} to {}, which TiDB does not support",
                        tag(from),
                        tag(to)
                    ),
                    &c.instance,
                );
            }
        }
    }
    // More than one PD member down at once.
    let pd_down: Vec<&str> = waves
        .iter()
        .flat_map(|w| &w.changes)
        .filter(|c| c.component == "pd" && matches!(c.change, Change::Removed))
        .map(|c| c.instance.as_str())
        .collect();
    if pd_down.len() > 1 {
        reasons.push(format!(
            "{} PD members would be removed at once ({}); remove one per change so the quorum holds",
            pd_down.len(),
            pd_down.join(", ")
        ));
    }
    for w in waves {
        let restarting: Vec<&InstanceChange> = w
            .changes
            .iter()
            .filter(|c| c.change.restarts() || matches!(c.change, Change::Removed))
            .collect();
        let pd = restarting.iter().filter(|c| c.component == "pd").count();
        if pd > 1 {
            reasons.push(format!(
                "wave {} would take {pd} PD members down at once",
                w.folder
            ));
        }
    }
    // TiKV waves: one isolation domain each, and enough domains left.
    let level = pd_replication(new, "isolation-level").and_then(|v| v.as_str().map(str::to_string));
    let max_replicas = pd_replication(new, "max-replicas")
        .and_then(|v| v.as_integer())
        .unwrap_or(3);
    for w in waves {
        let tikv: Vec<&InstanceChange> = w
            .changes
            .iter()
            .filter(|c| c.component == "tikv" && c.change.restarts())
            .collect();
        let domains: BTreeSet<String> = tikv
            .iter()
            .filter_map(|c| seen.labels.get(&c.instance))
            .map(|labels| {
                let key = level.as_deref().unwrap_or("host");
                labels.get(key).cloned().unwrap_or_default()
            })
            .collect();
        let limit_exceeded = match &level {
            Some(_) => domains.len() > 1,
            None => tikv.len() > 1,
        };
        if limit_exceeded {
            reasons.push(format!(
                "wave {} would restart TiKV of {} failure domains at once ({})",
                w.folder,
                domains.len().max(tikv.len()),
                domains.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if let Some(level) = &level {
        // Running TiKV: parsed where their files changed, read from the
        // text where they did not.
        let mut labels: BTreeMap<&String, BTreeMap<String, String>> = steady
            .iter()
            .filter(|(_, s)| s.component == "tikv")
            .filter_map(|(id, s)| Some((id, s.labels.clone()?)))
            .collect();
        for (id, l) in &seen.labels {
            labels.insert(id, l.clone());
        }
        let domains: BTreeSet<String> = labels
            .values()
            .filter_map(|l| l.get(level).cloned())
            .collect();
        if (domains.len() as i64) < max_replicas {
            reasons.push(format!(
                "TiKV would run in {} {level} domain(s), fewer than max-replicas {max_replicas}",
                domains.len()
            ));
        }
    }
    for (reason, id) in &seen.findings {
        group(reason.clone(), id);
    }
    for (reason, mut ids) in grouped {
        ids.sort_by_key(|id| natural(id));
        ids.dedup();
        const SHOWN: usize = 6;
        let mut list = ids
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if ids.len() > SHOWN {
            list.push_str(&format!(" and {} more", ids.len() - SHOWN));
        }
        reasons.push(format!("{reason}: {list}"));
    }
    reasons
}

/// Warnings for the reviewer. One-domain-at-a-time TiKV waves keep a
/// quorum only while every other store is up: with 3 replicas a store
/// already down elsewhere plus the restarting domain leaves one replica of
/// the Regions they share (the rollout simulator checks this).
fn warnings(waves: &[Wave], new: &Files) -> Vec<String> {
    let max_replicas = pd_replication(new, "max-replicas")
        .and_then(|v| v.as_integer())
        .unwrap_or(3);
    let tikv_waves: Vec<&str> = waves
        .iter()
        .filter(|w| {
            w.changes
                .iter()
                .any(|c| c.component == "tikv" && c.change.restarts())
        })
        .map(|w| w.folder.as_str())
        .collect();
    let mut out = Vec::new();
    let backups = waves.iter().flat_map(|w| &w.changes).any(|c| {
        matches!(
            c.component.as_str(),
            "backup" | "restore" | "backup-before-upgrade" | "log-backup"
        ) && !matches!(c.change, Change::Removed)
    });
    if backups {
        out.push(
            "TiKV uploads and downloads backup files itself: the TiKV pods (not only the backup Jobs) need network egress to the object store, and credentials from the Secret are sent to them"
                .to_string(),
        );
    }
    let survivors = max_replicas - 2;
    if tikv_waves.is_empty() || survivors > max_replicas / 2 {
        return out;
    }
    out.push(format!(
        "with max-replicas {max_replicas}, each TiKV wave keeps every Region's quorum only while all other stores are Up: a store already down elsewhere loses the quorum of the Regions it shares with the wave's domain; check `pd-ctl store` before merging (waves {})",
        tikv_waves.join(", ")
    ));
    out
}

/// The PD settings Job of an output: its folder and `key=value` arguments.
fn settings_job(files: &Files) -> Result<Option<(String, Vec<String>)>, String> {
    for (path, text) in files {
        let Some(rest) = path.strip_prefix("manifests/") else {
            continue;
        };
        if !(rest.contains("/job-") && rest.contains("-pd-settings-")) {
            continue;
        }
        let folder = rest.split('/').next().unwrap_or_default().to_string();
        if let Some(doc) = yaml::parse_fast(text)
            .map_err(|e| format!("{path}: {e}"))?
            .into_iter()
            .next()
        {
            let container = &doc["spec"]["template"]["spec"]["containers"][0];
            // The replication settings travel as one JSON body in the
            // environment, the others as `key=value` arguments.
            let mut args: Vec<String> = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["name"] == "REPLICATION_JSON")
                .filter_map(|e| serde_json::from_str::<Value>(e["value"].as_str()?).ok())
                .filter_map(|body| body.as_object().cloned())
                .flat_map(|body| {
                    body.into_iter().map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                })
                .collect();
            args.extend(
                container["command"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .skip(2)
                    .filter_map(|a| a.as_str().map(str::to_string)),
            );
            return Ok(Some((folder, args)));
        }
    }
    Ok(None)
}

fn settings_change(
    base: &Files,
    new: &Files,
    has_base: bool,
) -> Result<Option<(String, Change)>, String> {
    let Some((folder, after)) = settings_job(new)? else {
        return Ok(None);
    };
    let before = settings_job(base)?.map(|(_, a)| a).unwrap_or_default();
    if !has_base || before.is_empty() {
        // At creation PD starts with these settings from pd.toml; the Job
        // confirms them once PD is up.
        return Ok((!has_base).then_some((folder, Change::Created)));
    }
    let split = |a: &String| {
        a.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
    };
    let b: BTreeMap<String, String> = before.iter().filter_map(split).collect();
    let a: BTreeMap<String, String> = after.iter().filter_map(split).collect();
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let settings: Vec<String> = keys
        .into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| match (b.get(k), a.get(k)) {
            (Some(x), Some(y)) => format!("{k} {x} -> {y}"),
            (None, Some(y)) => format!("{k} = {y} (new)"),
            // A setting dropped from cluster.toml keeps its stored value:
            // the Job sets, it never resets.
            (Some(x), None) => format!("{k} stays {x} (removed from the config; PD keeps it)"),
            (None, None) => k.clone(),
        })
        .collect();
    Ok((!settings.is_empty()).then_some((folder, Change::Api { settings })))
}

/// `tikv-10` after `tikv-9`.
fn natural(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((c, n)) => (c.to_string(), n.parse().unwrap_or(0)),
        None => (id.to_string(), 0),
    }
}

fn compare(
    before: &Value,
    after: &Value,
    old_maps: &BTreeMap<String, BTreeMap<String, String>>,
    new_maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> Option<Change> {
    let (bt, at) = (&before["spec"]["template"], &after["spec"]["template"]);
    if bt == at {
        let (br, ar) = (&before["spec"]["replicas"], &after["spec"]["replicas"]);
        if br != ar {
            return Some(Change::Rescaled {
                from: br.as_u64().unwrap_or(0),
                to: ar.as_u64().unwrap_or(0),
            });
        }
        let mut paths = Vec::new();
        diff_paths("", before, after, &mut paths);
        return (!paths.is_empty()).then(|| Change::Updated {
            reasons: paths.into_iter().map(|p| format!("{p} changed")).collect(),
        });
    }
    let image = |t: &Value| {
        t["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    if image(bt) != image(at) {
        return Some(Change::Upgraded {
            from: image(bt),
            to: image(at),
        });
    }
    let mut reasons = Vec::new();
    // A config change shows as the keys that changed, not as two ConfigMaps.
    let volumes = |t: &Value| -> BTreeMap<String, String> {
        t["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some((
                    v["name"].as_str()?.to_string(),
                    v["configMap"]["name"].as_str()?.to_string(),
                ))
            })
            .collect()
    };
    let (bv, av) = (volumes(bt), volumes(at));
    for (volume, new_name) in &av {
        let Some(old_name) = bv.get(volume) else {
            continue;
        };
        if old_name == new_name {
            continue;
        }
        match (old_maps.get(old_name), new_maps.get(new_name)) {
            (Some(o), Some(n)) => {
                for (file, text) in n {
                    let before = o.get(file).map(String::as_str).unwrap_or("");
                    let keys = changed_keys(file, before, text);
                    if !keys.is_empty() {
                        reasons.push(format!("{file}: {}", keys.join(", ")));
                    }
                }
            }
            _ => reasons.push(format!("ConfigMap {old_name} replaced by {new_name}")),
        }
    }
    let mut paths = Vec::new();
    let mut bt2 = bt.clone();
    let mut at2 = at.clone();
    // Config volumes are explained above; compare the rest of the template.
    for t in [&mut bt2, &mut at2] {
        if let Some(vs) = t["spec"]["volumes"].as_array_mut() {
            for v in vs.iter_mut() {
                if v.get("configMap").is_some() {
                    v["configMap"]["name"] = Value::Null;
                }
            }
        }
    }
    diff_paths("spec.template", &bt2, &at2, &mut paths);
    reasons.extend(paths.into_iter().map(|p| format!("{p} changed")));
    if reasons.is_empty() {
        reasons.push("pod template changed".into());
    }
    Some(Change::Restarted { reasons })
}

/// The dotted keys that differ between two TOML texts (scripts and other
/// files are compared as a whole).
fn changed_keys(file: &str, before: &str, after: &str) -> Vec<String> {
    if !file.ends_with(".toml") {
        return if before == after {
            Vec::new()
        } else {
            vec!["(contents)".into()]
        };
    }
    let parse = |t: &str| -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Ok(table) = t.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(table), &mut out);
        }
        out
    };
    let (b, a) = (parse(before), parse(after));
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    // PD keeps its stored tables in its own storage after the first start
    // (FACTS §3); their changes are the settings Job's, not a restart's.
    let stored = |k: &str| {
        file == "pd.toml"
            && crate::manifest::PD_STORED_TABLES
                .iter()
                .any(|t| k.starts_with(&format!("{t}.")))
    };
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k) && !stored(k))
        .map(|k| match (b.get(k), a.get(k)) {
            (Some(x), Some(y)) => format!("{k} {x} -> {y}"),
            (None, Some(y)) => format!("{k} = {y} (new)"),
            (Some(_), None) => format!("{k} (removed)"),
            (None, None) => k.clone(),
        })
        .collect()
}

/// Every leaf of a TOML text by dotted key, as TOML text (empty when the
/// text does not parse).
pub(crate) fn toml_keys(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(table) = text.parse::<toml::Table>() {
        flatten("", &toml::Value::Table(table), &mut out);
    }
    out
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The paths (at most a few, shallowest first) where two values differ.
fn diff_paths(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    const MAX: usize = 5;
    if a == b || out.len() >= MAX {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_paths(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_string);
                diff_paths(&format!("{path}[{name}]"), p, q, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

fn change_hash(waves: &[Wave], unsafe_reasons: &[String]) -> String {
    let canonical = serde_json::to_string(&(
        waves
            .iter()
            .map(|w| (&w.folder, &w.changes))
            .collect::<Vec<_>>(),
        unsafe_reasons,
    ))
    .expect("serializes");
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn summary(waves: &[Wave], unchanged: &BTreeMap<String, usize>) -> String {
    let title = |c: &str| {
        match c {
            "pd" => "PD",
            "tikv" => "TiKV",
            "tidb" => "TiDB",
            other => other,
        }
        .to_string()
    };
    // (order, component) -> verb -> (count, wave folders)
    type Counts<'a> = BTreeMap<(usize, String), BTreeMap<&'a str, (usize, BTreeSet<&'a str>)>>;
    let mut counts: Counts = BTreeMap::new();
    let order = |c: &str| match c {
        "pd" => 0,
        "tikv" => 1,
        _ => 2,
    };
    for w in waves {
        for c in &w.changes {
            let e = counts
                .entry((order(&c.component), c.component.clone()))
                .or_default()
                .entry(c.change.verb())
                .or_default();
            e.0 += 1;
            e.1.insert(&w.folder);
        }
    }
    let mut parts = Vec::new();
    for ((_, component), verbs) in &counts {
        for (verb, (n, folders)) in verbs {
            let past = match *verb {
                "create" => "created",
                "upgrade" => "upgraded",
                "restart" => "restart",
                "rescale" => "rescaled",
                "remove" => "removed",
                "api" => "setting changes through PD's API",
                _ => "updated",
            };
            let waves = if folders.len() > 1 {
                format!(" in {} waves", folders.len())
            } else {
                String::new()
            };
            let backup = match (component.as_str(), *verb) {
                ("backup", "schedule") => Some("backups scheduled".to_string()),
                ("backup", _) => Some(format!("backup schedule {past}")),
                ("restore", "run") => Some(format!(
                    "{n} restore{} once",
                    if *n == 1 { " runs" } else { "s run" }
                )),
                ("log-backup", "run") => Some("log backup starts".to_string()),
                ("store-delete", "run") => Some(format!("{n} TiKV store(s) deleted through PD")),
                ("pd-member-delete", "run") => Some(format!("{n} PD member(s) deleted")),
                ("reclaim", "run") => Some(format!(
                    "{n} director{} reclaimed",
                    if *n == 1 { "y" } else { "ies" }
                )),
                ("backup-before-upgrade", "run") => {
                    Some("a full backup runs before the upgrade".to_string())
                }
                (c, _) if c == "restore" || c == "log-backup" || c == "backup-before-upgrade" => {
                    Some(format!("{c} {past}"))
                }
                _ => None,
            };
            if let Some(part) = backup {
                parts.push(part);
            } else if component == "tidb" {
                parts.push(format!("TiDB {past}{waves}"));
            } else if component == "pd-settings" {
                parts.push(if *verb == "create" {
                    "PD settings confirmed through PD's API".to_string()
                } else {
                    "PD settings changed through PD's API (no restart)".to_string()
                });
            } else {
                parts.push(format!("{n} {} {past}{waves}", title(component)));
            }
        }
    }
    let mut unchanged: Vec<(&String, &usize)> = unchanged.iter().collect();
    unchanged.sort_by_key(|(c, _)| order(c));
    for (component, n) in unchanged {
        if !counts.keys().any(|(_, c)| c == component) {
            // TiDB is one workload of several pods: no count.
            if component == "tidb" {
                parts.push("TiDB unchanged".to_string());
            } else {
                parts.push(format!("{n} {} unchanged", title(component)));
            }
        }
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join(", ")
    }
}

/// The plan for a terminal.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan {}: {}", plan.hash, plan.summary);
    for reason in &plan.unsafe_reasons {
        let _ = writeln!(out, "unsafe: {reason}");
    }
    if !plan.unsafe_reasons.is_empty() {
        let _ = writeln!(out, "{}", acknowledgement(plan));
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    for w in &plan.waiting {
        let _ = writeln!(out, "waiting: {w}");
    }
    for wave in text_wave_list(plan) {
        out.push('\n');
        out.push_str(&wave);
    }
    out
}

/// The plan's hash, summary and waves for a terminal, without its notes
/// (a preview lists those among its warnings).
pub fn text_waves(plan: &Plan) -> String {
    let mut out = format!("plan {}: {}\n", plan.hash, plan.summary);
    for wave in text_wave_list(plan) {
        out.push('\n');
        out.push_str(&wave);
    }
    out
}

fn text_wave_list(plan: &Plan) -> Vec<String> {
    let mut waves = Vec::new();
    for (i, w) in plan.waves.iter().enumerate() {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "wave {} ({}, sync-wave {}, up to {}):",
            i + 1,
            w.folder,
            w.sync_wave,
            w.timeout
        );
        for c in &w.changes {
            let _ = writeln!(
                out,
                "  {:<8} {:<8} {}",
                c.change.verb(),
                c.instance,
                c.change.detail()
            );
        }
        if let Some(gate) = gate_note(w) {
            let _ = writeln!(out, "  then     {gate}");
        }
        waves.push(out);
    }
    waves
}

/// What closes a TiKV wave that restarts stores: its gate Job.
fn gate_note(wave: &Wave) -> Option<&'static str> {
    let restarts = wave
        .changes
        .iter()
        .any(|c| c.component == "tikv" && c.change.restarts());
    restarts.then_some(
        "the wave's gate waits until its stores are Up in PD and no Region has a down or pending peer",
    )
}

/// How an unsafe plan is let through, or that it was, on one line.
pub fn acknowledgement_line(plan: &Plan) -> String {
    acknowledgement(plan).replace("\n", " ")
}

/// How an unsafe plan is let through, or that it was.
fn acknowledgement(plan: &Plan) -> String {
    if plan.acknowledged {
        format!(
            "acknowledged in cluster.toml ([[acknowledge]] change = \"{}\")",
            plan.hash
        )
    } else {
        format!(
            "refused: to go ahead after review, add to cluster.toml:\n[[acknowledge]]\nchange = \"{}\"\nreason = \"...\"",
            plan.hash
        )
    }
}

/// The plan for a pull request: summary, a Mermaid diagram of the waves, a
/// table per wave.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Rollout plan `{}`\n", plan.hash);
    let _ = writeln!(out, "**{}**\n", plan.summary);
    for reason in &plan.unsafe_reasons {
        let _ = writeln!(out, "- :x: unsafe: {reason}");
    }
    if !plan.unsafe_reasons.is_empty() {
        let _ = writeln!(out, "\n{}\n", acknowledgement(plan));
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "- :warning: {warning}");
    }
    for w in &plan.waiting {
        let _ = writeln!(out, "- :hourglass: waiting: {w}");
    }
    if !plan.warnings.is_empty() || !plan.waiting.is_empty() {
        out.push('\n');
    }
    markdown_diagram(plan, &mut out);
    out
}

/// The plan's heading, summary, diagram and wave tables, without its
/// notes (a preview lists those among its warnings).
pub fn markdown_waves(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Rollout plan `{}`\n", plan.hash);
    let _ = writeln!(out, "**{}**\n", plan.summary);
    markdown_diagram(plan, &mut out);
    out
}

fn markdown_diagram(plan: &Plan, out: &mut String) {
    if plan.waves.is_empty() {
        return;
    }
    out.push_str("```mermaid\nflowchart LR\n");
    for (i, w) in plan.waves.iter().enumerate() {
        let restarts = w.changes.iter().filter(|c| c.change.restarts()).count();
        let _ = writeln!(
            out,
            "  w{i}[\"{}<br/>{} change(s), {} restart(s)\"]",
            w.folder,
            w.changes.len(),
            restarts
        );
        if i > 0 {
            let _ = writeln!(out, "  w{} --> w{i}", i - 1);
        }
    }
    out.push_str("```\n");
    for (i, w) in plan.waves.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n#### Wave {}: `{}` (sync-wave {}, up to {})\n",
            i + 1,
            w.folder,
            w.sync_wave,
            w.timeout
        );
        out.push_str("| instance | change | why |\n|---|---|---|\n");
        for c in &w.changes {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                c.instance,
                c.change.verb(),
                c.change.detail().replace('|', "\\|")
            );
        }
        if let Some(gate) = gate_note(w) {
            let _ = writeln!(out, "\nThen {gate}.");
        }
    }
}

/// The JSON Schema of `plan --format json`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).expect("a schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Options, compile};
    use crate::generate::{Shape, generate};
    use crate::load::Texts;

    fn files(cluster: &str, inventory: &str, lock: Option<&str>) -> (Files, String) {
        let c = compile(
            Texts {
                cluster,
                inventory,
                lock,
            },
            &Options::default(),
        )
        .expect("compiles");
        (c.files, c.lock.render())
    }

    /// Batches change how much is parsed at once, never the plan: an
    /// upgrade with an unsafe claim change and a scale-out, planned one
    /// file at a time and all at once.
    #[test]
    fn batches_do_not_change_the_plan() {
        let g = generate(&Shape::new(12));
        let (base, lock) = files(&g.cluster_toml, &g.inventory_toml, None);
        let changed = g
            .cluster_toml
            .replace("version = \"v8.5.1\"", "version = \"v8.5.2\"");
        assert_ne!(changed, g.cluster_toml, "the generator's version moved");
        let (mut new, _) = files(&changed, &g.inventory_toml, Some(&lock));
        // A volume of one instance moved to another directory: refused,
        // whatever the batch.
        let file = new
            .keys()
            .find(|p| p.ends_with("/tikv-3.yaml"))
            .cloned()
            .expect("tikv-3's file");
        let text = new[&file].replacen("path: /mnt/", "path: /mnt/moved-", 1);
        assert_ne!(text, new[&file]);
        new.insert(file, text);
        let whole = plan_in_batches(Some(&base), &new, &[], 100_000).expect("plan");
        assert!(whole.refused(), "{whole:?}");
        for batch in [1, 2, 7] {
            assert_eq!(
                plan_in_batches(Some(&base), &new, &[], batch),
                Ok(whole.clone())
            );
        }
    }
}
