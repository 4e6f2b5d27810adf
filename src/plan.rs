//! The rollout a change triggers: which instances are created, restarted,
//! upgraded, rescaled or removed, in which wave, and why.
//!
//! A plan compares two output folders (as file maps): the base (what is
//! deployed, or what the base revision compiles to) and the new compile.
//! Reading both as outputs, rather than as inputs, makes a compiler upgrade
//! that changes a probe show as the restart it is. Plans are computed on
//! demand and never stored in the output.
//!
//! Not yet here (DESIGN §5, planned next): the safety checks and their
//! acknowledgement, PD settings applied through PD's API, and the simulator's
//! warnings about stores already down.

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
        }
    }

    fn detail(&self) -> String {
        match self {
            Change::Created => "new".into(),
            Change::Upgraded { from, to } => format!("{from} -> {to}"),
            Change::Restarted { reasons } | Change::Updated { reasons } => reasons.join("; "),
            Change::Rescaled { from, to } => format!("replicas {from} -> {to}"),
            Change::Removed => "workload removed; its volumes are kept".into(),
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

/// Reads the instances of an output folder.
fn instances(files: &Files) -> Result<BTreeMap<String, Instance>, String> {
    let mut out: BTreeMap<String, Instance> = BTreeMap::new();
    for (path, text) in files {
        let Some(rest) = path.strip_prefix("manifests/") else {
            continue;
        };
        let Some((folder, file)) = rest.split_once('/') else {
            continue;
        };
        if file == "kustomization.yaml" {
            continue;
        }
        let docs = yaml::parse(text).map_err(|e| format!("{path}: {e}"))?;
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

/// The ConfigMaps of an output, by name.
fn config_maps(files: &Files) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (path, text) in files {
        if !path.contains("/configmap-") {
            continue;
        }
        for doc in yaml::parse(text).unwrap_or_default() {
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

/// Computes the plan from `base` (none: the cluster is created) to `new`.
pub fn plan(base: Option<&Files>, new: &Files) -> Result<Plan, String> {
    let empty = Files::new();
    let base_files = base.unwrap_or(&empty);
    let (old, now) = (instances(base_files)?, instances(new)?);
    let (old_maps, new_maps) = (config_maps(base_files), config_maps(new));

    let mut by_folder: BTreeMap<String, Vec<InstanceChange>> = BTreeMap::new();
    let mut unchanged: BTreeMap<String, usize> = BTreeMap::new();
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
        match change {
            Some(change) => {
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
            None => *unchanged.entry(instance.component.clone()).or_default() += 1,
        }
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
    let hash = change_hash(&waves);
    let summary = summary(&waves, &unchanged);
    Ok(Plan {
        hash,
        has_base: base.is_some(),
        summary,
        waves,
        unchanged,
    })
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
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| {
            let change = match (b.get(k), a.get(k)) {
                (Some(x), Some(y)) => format!("{k} {x} -> {y}"),
                (None, Some(y)) => format!("{k} = {y} (new)"),
                (Some(_), None) => format!("{k} (removed)"),
                (None, None) => k.clone(),
            };
            // PD keeps these in its own storage after the first start
            // (FACTS §3): the restart does not apply them.
            if file == "pd.toml" && (k.starts_with("replication.") || k.starts_with("schedule.")) {
                change + " [PD-stored: a restart does not apply it]"
            } else {
                change
            }
        })
        .collect()
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

fn change_hash(waves: &[Wave]) -> String {
    let canonical = serde_json::to_string(
        &waves
            .iter()
            .map(|w| (&w.folder, &w.changes))
            .collect::<Vec<_>>(),
    )
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
                _ => "updated",
            };
            let waves = if folders.len() > 1 {
                format!(" in {} waves", folders.len())
            } else {
                String::new()
            };
            if component == "tidb" {
                parts.push(format!("TiDB {past}{waves}"));
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
    for (i, w) in plan.waves.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nwave {} ({}, sync-wave {}, up to {}):",
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
    }
    out
}

/// The plan for a pull request: summary, a Mermaid diagram of the waves, a
/// table per wave.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Rollout plan `{}`\n", plan.hash);
    let _ = writeln!(out, "**{}**\n", plan.summary);
    if plan.waves.is_empty() {
        return out;
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
    }
    out
}

/// The JSON Schema of `plan --format json`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).expect("a schema serializes")
}
