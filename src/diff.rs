//! Pull-request previews: what a change does to the cluster, for the people
//! who review it.
//!
//! A preview compares two outputs (as file maps), like a plan, and shows in
//! this order: a one-line summary; placement changes (which instance gets or
//! leaves which directory, and why); the rollout plan; warnings that need a
//! reviewer's eyes; and per-object unified diffs grouped by wave.
//!
//! Only files whose bytes differ are parsed, so an unchanged cluster costs a
//! map comparison. Objects are matched by kind, namespace and name across
//! all changed files, so an object that moves between folders is one
//! change. A ConfigMap whose name carries a content hash (`…-<10 hex>`) and
//! is replaced by one of the same stem is shown as one replacement with the
//! config keys that changed. Secret values are replaced by `***` before any
//! text is rendered: a preview names the keys that changed, never a value.
//!
//! Markdown previews fit a pull-request comment: `Budget` keeps the summary,
//! placement, plan and warnings whole and truncates the object diffs with a
//! note, or splits the whole preview into numbered parts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::layout::Files;
use crate::lock::{Lock, State};
use crate::place::Event;
use crate::plan::{self, Change, Plan};
use crate::yaml;

/// A change of where an instance's data lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Move {
    /// `pd-0` or `tikv-3`.
    pub instance: String,
    /// `node:path` before, or none for a new instance.
    pub from: Option<String>,
    /// `node:path` after, or none when the instance leaves the output.
    pub to: Option<String>,
    /// Why, from the placement solver when it can tell.
    pub why: String,
}

/// How one object changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectChange {
    Added,
    Removed,
    Modified,
    /// An object named by a content hash (a config ConfigMap, a gate Job)
    /// replaced by its successor of the same stem.
    Replaced {
        from: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ObjectDiff {
    /// `ConfigMap`, `StatefulSet`, …
    pub kind: String,
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub name: String,
    pub change: ObjectChange,
    /// For ConfigMaps: the config keys that changed (`tikv.toml:
    /// storage.reserve-space "2GiB" -> "5GiB"`); for Secrets: the data keys
    /// that changed (never their values).
    pub keys: Vec<String>,
    /// A unified diff of the object's YAML (Secret values masked).
    pub diff: String,
}

/// The changed objects of one wave folder (`gitops` for the Flux and Argo
/// CD objects, `root` for files at the top of the output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Group {
    pub folder: String,
    pub objects: Vec<ObjectDiff>,
}

/// The whole preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Preview {
    /// One line in the spirit of `terraform plan`.
    pub summary: String,
    pub placement: Vec<Move>,
    pub plan: Plan,
    /// Things a reviewer must look at: unsafe plans, data-bearing objects
    /// removed or moved, immutable fields changed.
    pub warnings: Vec<String>,
    pub groups: Vec<Group>,
}

impl Preview {
    /// Whether anything at all changes.
    pub fn changed(&self) -> bool {
        !self.groups.is_empty() || !self.placement.is_empty()
    }
}

/// The marker label every instance's objects carry.
const INSTANCE_LABEL: &str = "tidb-gitops.io/instance-id";

/// What the preview knows besides the two outputs.
pub struct Context<'a> {
    /// The new lock (instance states).
    pub lock: &'a Lock,
    /// The solver's events from the base lock to the new one, when known.
    pub events: &'a [Event],
}

/// One object of an output, parsed.
struct Object {
    folder: String,
    value: Value,
}

type Key = (String, String, String);

fn folder_of(path: &str) -> String {
    if let Some((folder, _)) = path
        .strip_prefix("manifests/")
        .and_then(|rest| rest.split_once('/'))
    {
        return folder.to_string();
    }
    match path.split_once('/') {
        Some((top, _)) => top.to_string(),
        None => "root".to_string(),
    }
}

/// The objects in the given files of an output. Kustomize build files and
/// the marker are not objects that reach the cluster.
fn objects(files: &Files, paths: &BTreeSet<&str>) -> Result<BTreeMap<Key, Object>, String> {
    let mut out = BTreeMap::new();
    for path in paths {
        let Some(text) = files.get(*path) else {
            continue;
        };
        if !(path.ends_with(".yaml") || path.ends_with(".yml"))
            || path.rsplit('/').next() == Some("kustomization.yaml")
        {
            continue;
        }
        for value in yaml::parse_fast(text).map_err(|e| format!("{path}: {e}"))? {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let key = (
                text(&value["kind"]),
                text(&value["metadata"]["namespace"]),
                text(&value["metadata"]["name"]),
            );
            out.insert(
                key,
                Object {
                    folder: folder_of(path),
                    value,
                },
            );
        }
    }
    Ok(out)
}

fn display_name(key: &Key) -> String {
    if key.1.is_empty() {
        key.2.clone()
    } else {
        format!("{}/{}", key.1, key.2)
    }
}

/// The stem of a content-hashed name: `c-tikv-0123456789` -> `c-tikv`.
fn hash_stem(name: &str) -> Option<&str> {
    let (stem, hash) = name.rsplit_once('-')?;
    (hash.len() == 10
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(stem)
}

/// Replaces every value of a Secret by `***`. Other objects are returned
/// unchanged.
fn masked(value: &Value) -> Value {
    if value["kind"] != "Secret" {
        return value.clone();
    }
    let mut value = value.clone();
    for field in ["data", "stringData"] {
        if let Some(map) = value.get_mut(field).and_then(Value::as_object_mut) {
            for v in map.values_mut() {
                *v = Value::String("***".into());
            }
        }
    }
    // `kubectl apply` keeps a copy of the whole object here.
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for (k, v) in annotations.iter_mut() {
            if k == "kubectl.kubernetes.io/last-applied-configuration" {
                *v = Value::String("***".into());
            }
        }
    }
    value
}

/// The data keys of a Secret whose values differ (names only).
fn secret_keys(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let mut keys = BTreeSet::new();
    for field in ["data", "stringData"] {
        let get = |v: Option<&Value>| {
            v.and_then(|v| v.get(field))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (b, a) = (get(before), get(after));
        for k in b.keys().chain(a.keys()) {
            if b.get(k) != a.get(k) {
                keys.insert(format!("{field}.{k}"));
            }
        }
    }
    keys.into_iter().collect()
}

/// The config keys that differ between two ConfigMaps: dotted TOML keys for
/// `.toml` data, the data key itself for other texts.
fn config_keys(before: &Value, after: &Value) -> Vec<String> {
    let data = |v: &Value| -> BTreeMap<String, String> {
        v["data"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (b, a) = (data(before), data(after));
    let names: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        match (b.get(name), a.get(name)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if name.ends_with(".toml") => {
                let (x, y) = (plan::toml_keys(x), plan::toml_keys(y));
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) if p != q => out.push(format!("{name}: {k} {p} -> {q}")),
                        (None, Some(q)) => out.push(format!("{name}: {k} = {q} (new)")),
                        (Some(_), None) => out.push(format!("{name}: {k} (removed)")),
                        _ => {}
                    }
                }
            }
            (Some(_), Some(_)) => out.push(format!("{name} (text changed)")),
            (None, Some(_)) => out.push(format!("{name} (new)")),
            (Some(_), None) => out.push(format!("{name} (removed)")),
            (None, None) => {}
        }
    }
    out
}

fn unified(before: &str, after: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}

/// Fields Kubernetes refuses to change in place, per kind.
const IMMUTABLE: &[(&str, &[&str])] = &[
    (
        "StatefulSet",
        &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/podManagementPolicy",
        ],
    ),
    (
        "PersistentVolume",
        &[
            "/spec/local",
            "/spec/nodeAffinity",
            "/spec/storageClassName",
            "/spec/claimRef",
            "/spec/volumeMode",
        ],
    ),
    (
        "PersistentVolumeClaim",
        &[
            "/spec/volumeName",
            "/spec/storageClassName",
            "/spec/accessModes",
            "/spec/selector",
            "/spec/volumeMode",
        ],
    ),
    (
        "Job",
        &["/spec/template", "/spec/selector", "/spec/completions"],
    ),
    ("Service", &["/spec/clusterIP", "/spec/clusterIPs"]),
    (
        "StorageClass",
        &[
            "/provisioner",
            "/parameters",
            "/reclaimPolicy",
            "/volumeBindingMode",
        ],
    ),
];

fn immutable_changes(kind: &str, before: &Value, after: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (k, fields) in IMMUTABLE {
        if *k == kind {
            for field in *fields {
                if before.pointer(field) != after.pointer(field) {
                    out.push(*field);
                }
            }
        }
    }
    if kind == "ConfigMap"
        && before["immutable"] == Value::Bool(true)
        && (before["data"] != after["data"] || before["binaryData"] != after["binaryData"])
    {
        out.push("/data");
    }
    out
}

/// `node:path` of an instance's local PersistentVolume.
fn volume_place(pv: &Value) -> Option<String> {
    let node = pv
        .pointer("/spec/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions/0/values/0")?
        .as_str()?;
    let path = pv.pointer("/spec/local/path")?.as_str()?;
    Some(format!("{node}:{path}"))
}

/// Computes the preview from `base` (none: the cluster is created) to `new`.
pub fn preview(
    base: Option<&Files>,
    new: &Files,
    plan: Plan,
    context: &Context<'_>,
) -> Result<Preview, String> {
    let empty = Files::new();
    let base_files = base.unwrap_or(&empty);
    let changed: BTreeSet<&str> = base_files
        .iter()
        .filter(|(p, t)| new.get(*p) != Some(*t))
        .map(|(p, _)| p.as_str())
        .chain(
            new.iter()
                .filter(|(p, t)| base_files.get(*p) != Some(*t))
                .map(|(p, _)| p.as_str()),
        )
        .collect();
    let before = objects(base_files, &changed)?;
    let after = objects(new, &changed)?;

    let mut warnings: Vec<String> = plan
        .unsafe_reasons
        .iter()
        .map(|r| format!("unsafe: {r}"))
        .chain(plan.warnings.iter().cloned())
        .chain(
            plan.waiting
                .iter()
                .map(|w| format!("evidence awaited: {w}")),
        )
        .collect();

    // Pair each removed object whose name carries a content hash (config
    // and scripts ConfigMaps, gate and settings Jobs) with an added one of
    // the same kind and stem: one replacement, not two unrelated objects.
    let mut replaced: BTreeMap<Key, Key> = BTreeMap::new(); // new -> old
    {
        let mut removed_by_stem: BTreeMap<(&str, &str, &str), Vec<&Key>> = BTreeMap::new();
        for key in before.keys().filter(|k| !after.contains_key(*k)) {
            if let Some(stem) = hash_stem(&key.2) {
                removed_by_stem
                    .entry((&key.0, &key.1, stem))
                    .or_default()
                    .push(key);
            }
        }
        for key in after.keys().filter(|k| !before.contains_key(*k)) {
            let Some(stem) = hash_stem(&key.2) else {
                continue;
            };
            // Several share a stem (one gate Job per TiKV wave): the one in
            // the same folder is the predecessor, else the first.
            if let Some(list) = removed_by_stem.get_mut(&(&key.0, &key.1, stem))
                && !list.is_empty()
            {
                let folder = &after[key].folder;
                let i = list
                    .iter()
                    .position(|old| &before[*old].folder == folder)
                    .unwrap_or(0);
                replaced.insert(key.clone(), list.remove(i).clone());
            }
        }
    }
    let replacing: BTreeSet<&Key> = replaced.values().collect();

    let mut groups: BTreeMap<String, Vec<(Key, ObjectDiff)>> = BTreeMap::new();
    let keys: BTreeSet<&Key> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (b, a) = (before.get(key), after.get(key));
        let kind = key.0.as_str();
        let name = display_name(key);
        let (change, old_key, old) = match (b, a) {
            (Some(b), Some(a)) if b.value == a.value => continue,
            (Some(_), Some(_)) => (ObjectChange::Modified, key, b),
            (None, Some(_)) => match replaced.get(key) {
                Some(old_key) => (
                    ObjectChange::Replaced {
                        from: display_name(old_key),
                    },
                    old_key,
                    before.get(old_key),
                ),
                None => (ObjectChange::Added, key, None),
            },
            (Some(_), None) if replacing.contains(key) => continue,
            (Some(_), None) => (ObjectChange::Removed, key, None),
            (None, None) => continue,
        };
        let old = old.or(b);
        let render = |o: Option<&Object>| o.map(|o| yaml::to_string(&masked(&o.value)));
        let (old_text, new_text) = (render(old), render(a));
        let diff = unified(
            old_text.as_deref().unwrap_or(""),
            new_text.as_deref().unwrap_or(""),
            &format!("a/{kind}/{}", display_name(old_key)),
            &format!("b/{kind}/{name}"),
        );
        let keys = match (kind, old, a) {
            ("Secret", o, n) => secret_keys(o.map(|o| &o.value), n.map(|n| &n.value)),
            ("ConfigMap", Some(o), Some(n)) => config_keys(&o.value, &n.value),
            _ => Vec::new(),
        };
        if let (ObjectChange::Modified, Some(o), Some(n)) = (&change, old, a) {
            for field in immutable_changes(kind, &o.value, &n.value) {
                warnings.push(format!(
                    "{kind} {name}: {field} changes, which Kubernetes refuses to update in place; the sync fails until the object is deleted and recreated by hand"
                ));
            }
        }
        if change == ObjectChange::Removed
            && matches!(
                kind,
                "PersistentVolume" | "PersistentVolumeClaim" | "Namespace"
            )
        {
            warnings.push(format!(
                "{kind} {name} leaves the output: Argo CD and Flux keep it in the cluster (Prune=false, prune: disabled), and with it the data; delete it by hand only after review"
            ));
        }
        let folder = a.or(b).expect("one side has it").folder.clone();
        groups.entry(folder).or_default().push((
            key.clone(),
            ObjectDiff {
                kind: kind.to_string(),
                name,
                change,
                keys,
                diff,
            },
        ));
    }

    let placement = placement(&before, &after, context, &mut warnings);
    let summary = summary(&plan, &after, &groups);
    let groups = groups
        .into_iter()
        .map(|(folder, mut objects)| {
            objects.sort_by(|(x, _), (y, _)| (kind_order(&x.0), x).cmp(&(kind_order(&y.0), y)));
            Group {
                folder,
                objects: objects.into_iter().map(|(_, o)| o).collect(),
            }
        })
        .collect();
    Ok(Preview {
        summary,
        placement,
        plan,
        warnings,
        groups,
    })
}

/// Objects within a wave in the order a reader expects: storage, config,
/// then workloads.
fn kind_order(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "StorageClass" | "PersistentVolume" | "PersistentVolumeClaim" => 1,
        "ConfigMap" | "Secret" => 2,
        "Service" => 3,
        "StatefulSet" => 4,
        "Job" | "CronJob" => 5,
        _ => 6,
    }
}

/// Placement changes, read from the instances' PersistentVolumes.
fn placement(
    before: &BTreeMap<Key, Object>,
    after: &BTreeMap<Key, Object>,
    context: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Move> {
    #[derive(Default)]
    struct Side {
        place: Option<String>,
        workload: bool,
    }
    let read = |objects: &BTreeMap<Key, Object>| {
        let mut out: BTreeMap<String, Side> = BTreeMap::new();
        for (key, o) in objects {
            let Some(id) = o.value["metadata"]["labels"][INSTANCE_LABEL].as_str() else {
                continue;
            };
            let side = out.entry(id.to_string()).or_default();
            match key.0.as_str() {
                "PersistentVolume" => side.place = volume_place(&o.value),
                "StatefulSet" => side.workload = true,
                _ => {}
            }
        }
        out
    };
    let (old, new) = (read(before), read(after));
    let ids: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        let (b, a) = (old.get(id), new.get(id));
        let from = b.and_then(|s| s.place.clone());
        let to = a.and_then(|s| s.place.clone());
        let stops = b.is_some_and(|s| s.workload) && !a.is_some_and(|s| s.workload);
        if from == to && !stops {
            continue;
        }
        let event = context.events.iter().find_map(|e| {
            let about = match e {
                Event::Placed { id, .. }
                | Event::Failed { id, .. }
                | Event::Retired { id, .. }
                | Event::Advanced { id, .. } => id,
            };
            (about.to_string() == *id).then(|| crate::report::describe_event(e))
        });
        let state = context
            .lock
            .entries
            .iter()
            .find(|e| e.id.to_string() == *id)
            .map(|e| e.state);
        let why = match (&from, &to) {
            (None, Some(_)) => event.unwrap_or_else(|| "new instance".into()),
            (Some(_), None) => {
                "leaves the output; its directory keeps the data (the volume's reclaim policy is Retain)".into()
            }
            (Some(_), Some(_)) if from != to => {
                warnings.push(format!(
                    "{id} moves from {} to {}: its data does not follow",
                    from.as_deref().unwrap_or("-"),
                    to.as_deref().unwrap_or("-")
                ));
                event.unwrap_or_else(|| "moved".into())
            }
            _ => {
                let kept = match state {
                    Some(State::Failed) => "failed",
                    Some(State::Leaving) => "leaving",
                    _ => "stopped",
                };
                let detail =
                    event.unwrap_or_else(|| format!("{kept} (recorded in placement.lock)"));
                format!("{detail}; its pod stops, its volume and data stay")
            }
        };
        out.push(Move {
            instance: id.clone(),
            from,
            to: if stops && a.is_some() { None } else { to },
            why,
        });
    }
    out.sort_by_key(|m| natural(&m.instance));
    out
}

fn natural(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((c, n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
            (c.to_string(), n.parse().unwrap_or(u64::MAX))
        }
        _ => (id.to_string(), 0),
    }
}

/// "2 TiKV added, 9 pods restart in 4 waves, 14 objects changed, 0 removed".
fn summary(
    plan: &Plan,
    after: &BTreeMap<Key, Object>,
    groups: &BTreeMap<String, Vec<(Key, ObjectDiff)>>,
) -> String {
    fn title(c: &str) -> &str {
        match c {
            "pd" => "PD",
            "tikv" => "TiKV",
            other => other,
        }
    }
    let mut added: BTreeMap<&str, usize> = BTreeMap::new();
    let mut removed: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut pods, mut restart_waves) = (0u64, 0usize);
    for wave in &plan.waves {
        let mut restarts = false;
        for c in &wave.changes {
            match &c.change {
                Change::Created if c.component != "tidb" && c.component != "pd-settings" => {
                    *added.entry(&c.component).or_default() += 1;
                }
                Change::Removed if c.component != "tidb" => {
                    *removed.entry(&c.component).or_default() += 1;
                }
                change if change.restarts() => {
                    restarts = true;
                    pods += if c.component == "tidb" {
                        tidb_replicas(after)
                    } else {
                        1
                    };
                }
                _ => {}
            }
        }
        restart_waves += usize::from(restarts);
    }
    let objects: Vec<&ObjectDiff> = groups.values().flatten().map(|(_, o)| o).collect();
    if objects.is_empty() && plan.waves.is_empty() {
        return "no change".into();
    }
    let order = |c: &&str| if *c == "pd" { 0 } else { 1 };
    let mut parts = Vec::new();
    let mut sorted: Vec<(&str, usize)> = added.into_iter().collect();
    sorted.sort_by_key(|(c, _)| order(c));
    for (c, n) in sorted {
        parts.push(format!("{n} {} added", title(c)));
    }
    let mut sorted: Vec<(&str, usize)> = removed.into_iter().collect();
    sorted.sort_by_key(|(c, _)| order(c));
    for (c, n) in sorted {
        parts.push(format!("{n} {} stopped", title(c)));
    }
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    if pods == 0 {
        parts.push("no pod restarts".into());
    } else {
        parts.push(format!(
            "{} in {}",
            plural(pods, "pod restarts", "pods restart"),
            plural(restart_waves as u64, "wave", "waves")
        ));
    }
    let gone = objects
        .iter()
        .filter(|o| o.change == ObjectChange::Removed)
        .count();
    parts.push(format!(
        "{} changed, {gone} removed",
        plural((objects.len() - gone) as u64, "object", "objects")
    ));
    parts.join(", ")
}

fn tidb_replicas(after: &BTreeMap<Key, Object>) -> u64 {
    after
        .iter()
        .find(|(k, o)| {
            k.0 == "StatefulSet"
                && o.value["metadata"]["labels"]["app.kubernetes.io/component"] == "tidb"
        })
        .and_then(|(_, o)| o.value["spec"]["replicas"].as_u64())
        .unwrap_or(1)
}

fn verb(change: &ObjectChange) -> String {
    match change {
        ObjectChange::Added => "added".into(),
        ObjectChange::Removed => "removed".into(),
        ObjectChange::Modified => "modified".into(),
        ObjectChange::Replaced { from } => format!("replaces {from}"),
    }
}

/// Terminal colors for `text`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Never,
    Always,
}

fn paint(line: &str, color: Color) -> String {
    if color == Color::Never {
        return line.to_string();
    }
    let code = if line.starts_with("+++ b/") || line.starts_with("--- a/") {
        "1"
    } else if line.starts_with('+') {
        "32"
    } else if line.starts_with('-') {
        "31"
    } else if line.starts_with("@@") {
        "36"
    } else {
        return line.to_string();
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}

/// The preview for a terminal or a log.
pub fn text(preview: &Preview, color: Color) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "diff: {}", preview.summary);
    if !preview.placement.is_empty() {
        out.push_str("\nplacement:\n");
        for m in &preview.placement {
            let _ = writeln!(
                out,
                "  {}: {} -> {} ({})",
                m.instance,
                m.from.as_deref().unwrap_or("-"),
                m.to.as_deref().unwrap_or("-"),
                m.why
            );
        }
    }
    if !preview.plan.waves.is_empty() {
        out.push('\n');
        out.push_str(&plan::text_waves(&preview.plan));
    }
    if !preview.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in &preview.warnings {
            let _ = writeln!(out, "  - {w}");
        }
        if !preview.plan.unsafe_reasons.is_empty() {
            let _ = writeln!(out, "  {}", plan::acknowledgement_line(&preview.plan));
        }
    }
    for group in &preview.groups {
        let _ = writeln!(out, "\n== {} ==", group.folder);
        for o in &group.objects {
            let _ = writeln!(out, "{} {}: {}", o.kind, o.name, verb(&o.change));
            for k in &o.keys {
                let _ = writeln!(out, "  {k}");
            }
            for line in o.diff.lines() {
                out.push_str(&paint(line, color));
                out.push('\n');
            }
        }
    }
    out
}

/// A piece of a markdown preview that can be cut between lines: `head` is
/// repeated at the top of every piece and `tail` closes every piece (a
/// table's header, a `<details>` block and its code fence).
#[derive(Clone, Debug)]
struct Block {
    head: String,
    lines: Vec<String>,
    tail: String,
    /// Whether the block belongs to the part kept whole (everything but the
    /// object diffs).
    essential: bool,
}

impl Block {
    fn plain(text: &str, essential: bool) -> Block {
        Block {
            head: String::new(),
            lines: text.lines().map(|l| format!("{l}\n")).collect(),
            tail: String::new(),
            essential,
        }
    }

    fn len(&self) -> usize {
        self.head.len() + self.tail.len() + self.lines.iter().map(String::len).sum::<usize>()
    }

    fn render(&self) -> String {
        let mut s = self.head.clone();
        for l in &self.lines {
            s.push_str(l);
        }
        s.push_str(&self.tail);
        s
    }
}

/// Cuts a markdown text into blocks at blank lines; tables repeat their
/// header and code fences close and reopen when cut.
fn blocks_of(markdown: &str, essential: bool) -> Vec<Block> {
    let mut out = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut in_fence = false;
    let flush = |paragraph: &mut Vec<&str>, out: &mut Vec<Block>| {
        if paragraph.is_empty() {
            return;
        }
        let first = paragraph[0];
        let block = if first.starts_with("```") && paragraph.len() >= 2 {
            let last = paragraph.len() - 1;
            Block {
                head: format!("{first}\n"),
                lines: paragraph[1..last]
                    .iter()
                    .map(|l| format!("{l}\n"))
                    .collect(),
                tail: format!("{}\n\n", paragraph[last]),
                essential,
            }
        } else if first.starts_with('|') && paragraph.len() >= 2 {
            Block {
                head: format!("{first}\n{}\n", paragraph[1]),
                lines: paragraph[2..].iter().map(|l| format!("{l}\n")).collect(),
                tail: "\n".into(),
                essential,
            }
        } else {
            let mut b = Block::plain(&paragraph.join("\n"), essential);
            b.tail = "\n".into();
            b
        };
        out.push(block);
        paragraph.clear();
    };
    for line in markdown.lines() {
        if line.starts_with("```") {
            if in_fence {
                paragraph.push(line);
                in_fence = false;
                flush(&mut paragraph, &mut out);
                continue;
            }
            flush(&mut paragraph, &mut out);
            in_fence = true;
        }
        if line.is_empty() && !in_fence {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push(line);
        }
    }
    flush(&mut paragraph, &mut out);
    out
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Every block of the markdown preview, essentials first.
fn markdown_blocks(preview: &Preview) -> Vec<Block> {
    let mut essentials = String::new();
    let _ = writeln!(essentials, "## tidb-gitops preview\n");
    let _ = writeln!(essentials, "**{}**\n", preview.summary);
    if !preview.placement.is_empty() {
        essentials.push_str("### Placement\n\n| instance | from | to | why |\n|---|---|---|---|\n");
        for m in &preview.placement {
            let _ = writeln!(
                essentials,
                "| `{}` | {} | {} | {} |",
                m.instance,
                m.from.as_deref().map_or("-".into(), |p| format!("`{p}`")),
                m.to.as_deref().map_or("-".into(), |p| format!("`{p}`")),
                escape_cell(&m.why)
            );
        }
        essentials.push('\n');
    }
    if !preview.plan.waves.is_empty() {
        essentials.push_str(&plan::markdown_waves(&preview.plan));
        essentials.push('\n');
    }
    if !preview.warnings.is_empty() {
        essentials.push_str("### Warnings\n\n");
        for w in &preview.warnings {
            let _ = writeln!(essentials, "- :warning: {w}");
        }
        if !preview.plan.unsafe_reasons.is_empty() {
            let _ = writeln!(
                essentials,
                "\n{}",
                plan::acknowledgement_line(&preview.plan)
            );
        }
        essentials.push('\n');
    }
    let mut blocks = blocks_of(&essentials, true);
    if preview.groups.is_empty() {
        return blocks;
    }
    blocks.push(Block::plain("### Objects\n\n", false));
    for group in &preview.groups {
        blocks.push(Block::plain(
            &format!(
                "#### `{}`: {} object(s)\n\n",
                group.folder,
                group.objects.len()
            ),
            false,
        ));
        for o in &group.objects {
            let mut summary = format!(
                "{} <code>{}</code>: {}",
                o.kind,
                html_escape(&o.name),
                html_escape(&verb(&o.change))
            );
            if !o.keys.is_empty() {
                let _ = write!(summary, " ({} key(s))", o.keys.len());
            }
            let mut head = format!("<details><summary>{summary}</summary>\n\n");
            for k in &o.keys {
                let _ = writeln!(head, "- `{}`", k.replace('`', "'"));
            }
            if !o.keys.is_empty() {
                head.push('\n');
            }
            head.push_str("```diff\n");
            blocks.push(Block {
                head,
                lines: o.diff.lines().map(|l| format!("{l}\n")).collect(),
                tail: "```\n\n</details>\n\n".into(),
                essential: false,
            });
        }
    }
    blocks
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole markdown preview, without a budget.
pub fn markdown(preview: &Preview) -> String {
    markdown_blocks(preview).iter().map(Block::render).collect()
}

/// The default budget: under GitHub's 65,536-character limit for a
/// comment, with room for a marker line the CI step adds. Bytes are never
/// fewer than characters, so a byte budget is safe for any text.
pub const DEFAULT_MAX_BYTES: usize = 60_000;

/// The smallest budget that still fits a block's frame and a few lines.
pub const MIN_MAX_BYTES: usize = 2_000;

const CUT_NOTE_ROOM: usize = 300;

/// The markdown preview within `max_bytes`: the essentials whole (cut only
/// if they alone exceed the budget), then as many object diffs as fit, then
/// a note on what was left out.
pub fn markdown_within(preview: &Preview, max_bytes: usize) -> String {
    let blocks = markdown_blocks(preview);
    let total: usize = blocks.iter().map(Block::len).sum();
    if total <= max_bytes {
        return blocks.iter().map(Block::render).collect();
    }
    let budget = max_bytes.saturating_sub(CUT_NOTE_ROOM);
    let mut out = String::new();
    let mut left_out = 0usize;
    let mut cut_essentials = false;
    for block in &blocks {
        let room = budget.saturating_sub(out.len());
        if block.len() <= room {
            out.push_str(&block.render());
        } else if block.essential {
            let (piece, _) = cut(block, room);
            out.push_str(&piece);
            cut_essentials = true;
            break;
        } else if block.tail.contains("</details>") {
            left_out += 1;
        }
    }
    let diffs = preview
        .groups
        .iter()
        .map(|g| g.objects.len())
        .sum::<usize>();
    let note = if cut_essentials {
        format!(
            "_The preview is cut at {max_bytes} bytes, within the summary and plan; its {diffs} object diff(s) are left out. The whole preview is in the file given to `--full`, or use `--split`._\n"
        )
    } else {
        format!(
            "_{left_out} of {diffs} object diff(s) left out to fit {max_bytes} bytes. The whole preview is in the file given to `--full`, or use `--split`._\n"
        )
    };
    out.push_str(&note);
    out
}

/// The longest piece of `block` that fits `room` bytes (at least its frame
/// and one line when nothing fits), and the lines it took.
fn cut(block: &Block, room: usize) -> (String, usize) {
    let mut s = block.head.clone();
    let mut used = s.len() + block.tail.len();
    let mut taken = 0;
    for line in &block.lines {
        if used + line.len() > room && taken > 0 {
            break;
        }
        if used + line.len() > room {
            // A single line longer than the room: cut it at a character
            // boundary.
            let keep = room.saturating_sub(used + 2);
            let mut end = keep.min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            s.push_str(&line[..end]);
            s.push_str("…\n");
            taken += 1;
            break;
        }
        s.push_str(line);
        used += line.len();
        taken += 1;
    }
    s.push_str(&block.tail);
    (s, taken)
}

/// The whole markdown preview in numbered parts, each within `max_bytes`.
/// Blocks are kept whole where they fit; a block larger than a part is cut
/// between lines, its header repeated.
pub fn markdown_parts(preview: &Preview, max_bytes: usize) -> Vec<String> {
    let blocks = markdown_blocks(preview);
    // Room for the "part i of n" line.
    let budget = max_bytes.saturating_sub(80);
    let mut parts: Vec<String> = vec![String::new()];
    for block in blocks {
        let mut rest = block;
        loop {
            let current = parts.last_mut().expect("one part");
            let room = budget.saturating_sub(current.len());
            if rest.len() <= room {
                current.push_str(&rest.render());
                break;
            }
            let frame = rest.head.len() + rest.tail.len();
            if room < frame + 200 && !current.is_empty() {
                parts.push(String::new());
                continue;
            }
            let (piece, taken) = cut(&rest, room);
            current.push_str(&piece);
            rest.lines.drain(..taken);
            if rest.lines.is_empty() {
                break;
            }
            parts.push(String::new());
        }
    }
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| format!("_tidb-gitops preview, part {} of {n}_\n\n{p}", i + 1))
        .collect()
}

/// The JSON Schema of `diff --format json`.
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Preview)).expect("a schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_stems() {
        assert_eq!(hash_stem("c-tikv-0123456789"), Some("c-tikv"));
        assert_eq!(
            hash_stem("c-tikv-scripts-abcdef0123"),
            Some("c-tikv-scripts")
        );
        assert_eq!(hash_stem("c-tikv-0123"), None);
        assert_eq!(hash_stem("c-tikv-012345678g"), None);
    }

    #[test]
    fn blocks_keep_fences_and_tables_whole() {
        let md =
            "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n```mermaid\nx\n\ny\n```\nafter\n";
        let blocks = blocks_of(md, true);
        assert_eq!(blocks.len(), 4, "{blocks:?}");
        assert_eq!(blocks[1].head, "| a | b |\n|---|---|\n");
        assert_eq!(blocks[1].lines.len(), 2);
        assert_eq!(blocks[2].head, "```mermaid\n");
        assert_eq!(blocks[2].lines, vec!["x\n", "\n", "y\n"]);
        assert_eq!(blocks[3].render(), "after\n\n");
    }

    #[test]
    fn cut_repeats_the_frame() {
        let block = Block {
            head: "H\n".into(),
            lines: (0..10).map(|i| format!("line {i}\n")).collect(),
            tail: "T\n".into(),
            essential: false,
        };
        let (piece, taken) = cut(&block, 4 + 7 * 3);
        assert_eq!(taken, 3);
        assert_eq!(piece, "H\nline 0\nline 1\nline 2\nT\n");
    }

    #[test]
    fn secrets_are_masked_and_their_keys_named() {
        let a = serde_json::json!({"kind": "Secret", "data": {"password": "c2VjcmV0", "user": "cm9vdA=="}});
        let b = serde_json::json!({"kind": "Secret", "data": {"password": "b3RoZXI=", "user": "cm9vdA=="}});
        let text = yaml::to_string(&masked(&b));
        assert!(!text.contains("b3RoZXI="), "{text}");
        assert!(text.contains("'***'") || text.contains("***"), "{text}");
        assert_eq!(secret_keys(Some(&a), Some(&b)), vec!["data.password"]);
    }

    #[test]
    fn immutable_fields_are_found() {
        let a = serde_json::json!({"spec": {"selector": {"a": 1}, "replicas": 1}});
        let b = serde_json::json!({"spec": {"selector": {"a": 2}, "replicas": 2}});
        assert_eq!(
            immutable_changes("StatefulSet", &a, &b),
            vec!["/spec/selector"]
        );
        assert!(immutable_changes("Deployment", &a, &b).is_empty());
    }
}
