//! The Kubernetes objects of a cluster, built from the model and the lock.
//!
//! Every object is a `serde_json::Value` built field by field, in the order
//! a reader expects (`apiVersion`, `kind`, `metadata`, `spec`), with the
//! defaults the API server would add written out, so a GitOps tool sees no
//! drift between git and the live object. Nothing here does IO or decides
//! ordering: `graph` gives each object its wave, `layout` its file.
//!
//! Facts about images, flags, ports and probes come from FACTS.md; where it
//! calls something unverified or inferred, the comment says so.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::Configs;
use crate::diag::Diagnostic;
use crate::lock::{Entry, Lock, State};
use crate::model::{Component, Model, Node, Resources, ServiceType, Stateful, Toleration};

#[path = "backup.rs"]
pub mod backup;

/// The shell scripts that run in pods (tested in tests/pod_scripts.rs).
pub const INIT_DIR_SH: &str = include_str!("pod/init-dir.sh");
pub const PD_START_SH: &str = include_str!("pod/pd-start.sh");
pub const TIDB_START_SH: &str = include_str!("pod/tidb-start.sh");
pub const PD_SETTINGS_SH: &str = include_str!("pod/pd-settings.sh");
pub const TIKV_GATE_SH: &str = include_str!("pod/tikv-gate.sh");
pub const TIKV_START_SH: &str = include_str!("pod/tikv-start.sh");
pub const TIKV_PRESTOP_SH: &str = include_str!("pod/tikv-prestop.sh");
pub const PD_PRESTOP_SH: &str = include_str!("pod/pd-prestop.sh");
pub const PD_API_SH: &str = include_str!("pod/pd-api.sh");
pub const PD_HTTP_SH: &str = include_str!("pod/pd-http.sh");
pub const STORE_DELETE_SH: &str = include_str!("pod/store-delete.sh");
pub const PD_MEMBER_DELETE_SH: &str = include_str!("pod/pd-member-delete.sh");
pub const RECLAIM_SH: &str = include_str!("pod/reclaim.sh");

/// The scripts of the day-2 Jobs, in a ConfigMap of their own (so adding
/// them never restarts a workload), by key.
pub fn day2_scripts() -> &'static [(&'static str, &'static str)] {
    &[
        ("pd-api.sh", PD_API_SH),
        ("pd-http.sh", PD_HTTP_SH),
        ("pd-member-delete.sh", PD_MEMBER_DELETE_SH),
        ("reclaim.sh", RECLAIM_SH),
        ("store-delete.sh", STORE_DELETE_SH),
    ]
}

/// The pd.toml tables PD copies into its own storage at the first start and
/// then reads from there, ignoring the file (FACTS §3, verified for these
/// two; other persisted sections are not assumed).
pub const PD_STORED_TABLES: [&str; 2] = ["replication", "schedule"];

/// Where the scripts ConfigMap is mounted in every pod.
const SCRIPTS_DIR: &str = "/etc/tidb-gitops";
/// The unprivileged user of the official images' base (`pingcap`, FACTS §1),
/// for the Jobs that write nothing but their /tmp.
const PINGCAP_UID: u32 = 1000;
const PINGCAP_GID: u32 = 2000;
/// The owner marker the init container writes (see src/pod/init-dir.sh).
pub const OWNER_MARKER: &str = ".tidb-gitops-owner";
/// The Secret key that holds TiDB's initial root password.
pub const ROOT_PASSWORD_KEY: &str = "root";

pub const PD_CLIENT_PORT: u16 = 2379;
pub const PD_PEER_PORT: u16 = 2380;
pub const TIKV_PORT: u16 = 20160;
pub const TIKV_STATUS_PORT: u16 = 20180;
pub const TIDB_PORT: u16 = 4000;
pub const TIDB_STATUS_PORT: u16 = 10080;

/// Annotations that keep GitOps tools from ever deleting an object that
/// holds or guards data, even when it disappears from git.
pub const ARGO_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub const ARGO_NO_DELETE: &str = "Prune=false,Delete=false";
pub const FLUX_PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";
pub const ARGO_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_CLUSTER: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_INSTANCE_ID: &str = "tidb-gitops.io/instance-id";
/// On a day-2 Job: the instance it acts on (not `instance-id`, which marks
/// the instance's own objects).
pub const LABEL_TARGET: &str = "tidb-gitops.io/target";

/// Kubernetes' name limits: DNS-1123 subdomains (most objects), DNS-1123
/// labels (Services, Namespaces), and StatefulSets, whose pods get a
/// `controller-revision-hash` label of the name plus 11 characters.
const MAX_SUBDOMAIN: usize = 253;
const MAX_LABEL: usize = 63;
const MAX_STATEFULSET: usize = 52;

/// What one object is, for ordering and file naming.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Namespace and StorageClass: needed by everything else.
    Base,
    /// ConfigMaps, Services, PodDisruptionBudgets.
    Shared,
    /// The PV and claim of one instance.
    Volume(crate::model::InstanceId),
    /// The StatefulSet of one PD or TiKV instance.
    Workload(crate::model::InstanceId),
    /// TiDB's StatefulSet.
    Tidb,
    /// The Job that applies PD's stored settings through pd-ctl.
    PdSettings,
    /// The Job that closes a TiKV wave, with the instances of the wave.
    TikvGate(Vec<crate::model::InstanceId>),
    /// The full backup of the old version before an upgrade's first PD.
    BackupBeforeUpgrade,
    /// A one-shot restore Job, once the cluster is up.
    Restore,
    /// The backup CronJob and the log backup Job, last.
    Backup,
    /// Deleting failed PD members by name, before any PD wave (so a
    /// replacement joins a member list without them).
    PdMemberDelete,
    /// Taking leaving TiKV stores and PD members, and failed stores whose
    /// replacements run, out through PD, after every TiKV wave.
    Decommission,
    /// Wiping the directory of a gone instance, last of all.
    Reclaim,
}

#[derive(Clone, Debug)]
pub struct Object {
    pub role: Role,
    pub kind: &'static str,
    pub name: String,
    pub value: Value,
    /// The object's YAML with its sync-wave set, when `objects` rendered it
    /// as it was built; `value` is then `Null`. The objects of PD and TiKV
    /// instances are nearly all of a large cluster's: holding every one's
    /// tree until the end would take gigabytes at 10,000 nodes.
    pub rendered: Option<String>,
}

/// The names of every object of a cluster, computed once.
#[derive(Clone, Debug)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
    pub storage_class: String,
    pub pd_service: String,
    pub pd_peer: String,
    pub tikv_peer: String,
    pub tidb_service: String,
    pub tidb_peer: String,
    pub tidb: String,
}

impl Names {
    pub fn new(model: &Model) -> Names {
        let c = &model.cluster.name;
        Names {
            cluster: c.clone(),
            namespace: model.cluster.namespace.clone(),
            // Cluster-scoped: the namespace is part of the name, and dots
            // (which neither part may hold) keep `a-b`/`c` apart from `a`/`b-c`.
            storage_class: format!("{}.{c}.local", model.cluster.namespace),
            pd_service: format!("{c}-pd"),
            pd_peer: format!("{c}-pd-peer"),
            tikv_peer: format!("{c}-tikv-peer"),
            tidb_service: format!("{c}-tidb"),
            tidb_peer: format!("{c}-tidb-peer"),
            tidb: format!("{c}-tidb"),
        }
    }

    pub fn workload(&self, id: crate::model::InstanceId) -> String {
        format!("{}-{id}", self.cluster)
    }

    pub fn claim(&self, id: crate::model::InstanceId) -> String {
        format!("{}-{id}", self.cluster)
    }

    pub fn volume(&self, id: crate::model::InstanceId) -> String {
        format!("{}.{}.{id}", self.namespace, self.cluster)
    }

    /// The stable DNS name of a PD or TiKV instance's pod (its StatefulSet
    /// has one replica, so the pod is `<statefulset>-0`).
    pub fn host(&self, id: crate::model::InstanceId) -> String {
        let peer = match id.component {
            Component::Pd => &self.pd_peer,
            _ => &self.tikv_peer,
        };
        format!("{}-0.{peer}.{}.svc", self.workload(id), self.namespace)
    }

    pub fn pd_url(&self) -> String {
        format!(
            "http://{}.{}.svc:{PD_CLIENT_PORT}",
            self.pd_service, self.namespace
        )
    }

    pub fn pd_peer_url(&self) -> String {
        format!(
            "http://{}.{}.svc:{PD_CLIENT_PORT}",
            self.pd_peer, self.namespace
        )
    }
}

/// Checks generated names against their Kubernetes limit: one diagnostic
/// per kind of name, naming the longest and how many others are too long.
pub fn check_names<'n>(
    kind: &str,
    max: usize,
    names: impl IntoIterator<Item = &'n str>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let too_long: Vec<&str> = names.into_iter().filter(|n| n.len() > max).collect();
    let Some(longest) = too_long.iter().max_by_key(|n| n.len()) else {
        return;
    };
    let mut d = Diagnostic::error(format!(
        "the {kind} name `{longest}` has {} characters; Kubernetes allows {max}",
        longest.len()
    ));
    if too_long.len() > 1 {
        d = d.note(format!("{} {kind} names are too long", too_long.len()));
    }
    diagnostics.push(d.hint(
        "choose a shorter cluster name or namespace in cluster.toml ([cluster] name, namespace)",
    ));
}

/// Every object of the cluster, or the names that break Kubernetes' limits.
pub fn objects(
    model: &Model,
    lock: &Lock,
    configs: &Configs,
) -> Result<Vec<Object>, Vec<Diagnostic>> {
    let names = Names::new(model);
    let mut diagnostics = Vec::new();
    let b = Builder::new(model, &names, configs, lock);
    let mut out = Vec::with_capacity(16 + lock.entries.len() * 3);

    out.push(b.namespace());
    out.push(b.storage_class());
    out.extend(b.config_maps());
    out.extend(b.services());
    out.extend(b.disruption_budgets());
    // The instances' objects are independent of each other: build them on
    // all cores, in chunks whose results are joined in lock order.
    let per_thread = lock.entries.len().div_ceil(crate::threads()).max(1);
    let chunks: Vec<Vec<Object>> = std::thread::scope(|scope| {
        let b = &b;
        let handles: Vec<_> = lock
            .entries
            .chunks(per_thread)
            .map(|entries| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(entries.len() * 3);
                    for entry in entries {
                        out.push(render_early(model, lock, b.volume(entry)));
                        out.push(render_early(model, lock, b.claim(entry)));
                        // A failed instance keeps its volume objects (its
                        // data stays reviewable and undeletable) but no
                        // workload: its node is gone or down, or its
                        // directory no longer qualifies.
                        if entry.state.runs()
                            && let Some(node) = model.inventory.node(&entry.node)
                        {
                            let workload = b.stateful_set(entry, node, lock);
                            out.push(render_early(model, lock, workload));
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a builder thread panicked"))
            .collect()
    });
    out.extend(chunks.into_iter().flatten());
    out.push(b.tidb());
    out.push(b.pd_settings());
    // One gate per TiKV wave: per failure domain at the isolation level, or
    // per store without one (the waves `graph` gives them).
    let topology = &model.cluster.topology;
    let mut waves: BTreeMap<String, Vec<&Object>> = BTreeMap::new();
    for object in &out {
        if let Role::Workload(id) = object.role
            && id.component == Component::Tikv
            && let Ok(i) = lock.entries.binary_search_by_key(&id, |e| e.id)
            && let Some(node) = model.inventory.node(&lock.entries[i].node)
        {
            let key = topology
                .domain(&node.labels)
                .unwrap_or_else(|| id.to_string());
            waves.entry(key).or_default().push(object);
        }
    }
    let gates: Vec<Object> = waves
        .iter()
        .map(|(domain, workloads)| b.tikv_gate(domain, workloads))
        .collect();
    out.extend(gates);
    out.extend(b.day2_objects(lock));
    out.extend(b.backup_objects(lock));

    let mut by_kind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for object in &out {
        by_kind.entry(object.kind).or_default().push(&object.name);
    }
    for (kind, names) in by_kind {
        let max = match kind {
            // A CronJob's Jobs are named after it plus 11 characters.
            "StatefulSet" | "CronJob" => MAX_STATEFULSET,
            // Their names are DNS labels: Services and Namespaces appear in
            // DNS names, and ConfigMaps are kept to the same limit.
            "Namespace" | "Service" | "Job" => MAX_LABEL,
            _ => MAX_SUBDOMAIN,
        };
        check_names(kind, max, names, &mut diagnostics);
    }
    if diagnostics.is_empty() {
        Ok(out)
    } else {
        Err(diagnostics)
    }
}

/// `object` rendered to YAML with its sync-wave, its tree dropped.
fn render_early(model: &Model, lock: &Lock, mut object: Object) -> Object {
    let wave = crate::graph::sync_wave(model, lock, &object.role);
    crate::layout::set_sync_wave(&mut object.value, wave);
    object.rendered = Some(crate::yaml::to_string(&object.value));
    object.value = Value::Null;
    object
}

/// The first 10 hex digits of the SHA-256 of some named texts: short enough
/// for names, long enough that two different configs never share one.
pub fn content_hash<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    for (key, text) in parts {
        // Length prefixes make the encoding unambiguous.
        hasher.update((key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

struct Builder<'a> {
    model: &'a Model,
    names: &'a Names,
    config_names: BTreeMap<Component, String>,
    config_texts: BTreeMap<Component, &'a str>,
    /// The scripts ConfigMap of each component, by name.
    scripts_names: BTreeMap<Component, String>,
    /// The most running TiKV instances on one node.
    tikv_per_node: u32,
}

fn obj(map: Value) -> Map<String, Value> {
    match map {
        Value::Object(m) => m,
        _ => unreachable!("object literal"),
    }
}

impl<'a> Builder<'a> {
    fn new(model: &'a Model, names: &'a Names, configs: &'a Configs, lock: &Lock) -> Builder<'a> {
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        for e in &lock.entries {
            if e.id.component == Component::Tikv && e.state.runs() {
                *per_node.entry(e.node.0.as_str()).or_default() += 1;
            }
        }
        let tikv_per_node = per_node.values().copied().max().unwrap_or(1);
        let texts = BTreeMap::from([
            (Component::Pd, configs.pd.as_str()),
            (Component::Tikv, configs.tikv.as_str()),
            (Component::Tidb, configs.tidb.as_str()),
        ]);
        let config_names = texts
            .iter()
            .map(|(c, text)| {
                let file = format!("{c}.toml");
                // PD's name leaves out the tables PD keeps in its own
                // storage: a change to them must not restart PD (it would
                // ignore them anyway); the settings Job applies it.
                let hashed = match c {
                    Component::Pd => pd_stored(text).rest,
                    _ => text.to_string(),
                };
                (
                    *c,
                    format!(
                        "{}-{c}-{}",
                        names.cluster,
                        content_hash([(file.as_str(), hashed.as_str())])
                    ),
                )
            })
            .collect();
        let scripts_names = [Component::Pd, Component::Tikv, Component::Tidb]
            .into_iter()
            .map(|c| {
                let name = format!(
                    "{}-{c}-scripts-{}",
                    names.cluster,
                    content_hash(scripts(c).iter().copied())
                );
                (c, name)
            })
            .collect();
        Builder {
            model,
            names,
            config_names,
            config_texts: texts,
            scripts_names,
            tikv_per_node,
        }
    }

    fn labels(&self, component: Option<Component>) -> Map<String, Value> {
        let mut labels = Map::new();
        labels.insert(LABEL_CLUSTER.into(), json!(self.names.cluster));
        if let Some(c) = component {
            labels.insert(LABEL_COMPONENT.into(), json!(c.as_str()));
        }
        labels.insert(LABEL_MANAGED_BY.into(), json!("tidb-gitops"));
        labels
    }

    fn selector(&self, component: Component) -> Value {
        json!({
            LABEL_CLUSTER: self.names.cluster,
            LABEL_COMPONENT: component.as_str(),
        })
    }

    fn metadata(
        &self,
        name: &str,
        namespaced: bool,
        labels: Map<String, Value>,
        keep_data: bool,
    ) -> Value {
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        if namespaced {
            meta.insert("namespace".into(), json!(self.names.namespace));
        }
        meta.insert("labels".into(), Value::Object(labels));
        if keep_data {
            meta.insert(
                "annotations".into(),
                json!({ ARGO_SYNC_OPTIONS: ARGO_NO_DELETE, FLUX_PRUNE: "disabled" }),
            );
        }
        Value::Object(meta)
    }

    fn namespace(&self) -> Object {
        let name = &self.names.namespace;
        Object {
            role: Role::Base,
            kind: "Namespace",
            rendered: None,
            name: name.clone(),
            // Deleting a namespace deletes every claim in it: never prune it.
            value: json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": self.metadata(name, false, self.labels(None), true),
            }),
        }
    }

    fn storage_class(&self) -> Object {
        let name = &self.names.storage_class;
        Object {
            role: Role::Base,
            kind: "StorageClass",
            rendered: None,
            name: name.clone(),
            value: json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": self.metadata(name, false, self.labels(None), false),
                "provisioner": "kubernetes.io/no-provisioner",
                "reclaimPolicy": "Retain",
                "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": false,
            }),
        }
    }

    /// Hashed ConfigMaps are never pruned by Flux: Flux applies the shared
    /// wave first and would delete the old ConfigMap while pods of later
    /// waves still mount it, and such a pod, if recreated before its wave
    /// (a drain during a rollout), could not start, so its store would stay
    /// down and the gates would wait for ever. Argo CD prunes them after the
    /// whole sync (`PruneLast`). Old ones stay under Flux until removed by
    /// hand (README).
    fn config_maps(&self) -> Vec<Object> {
        let mut out = self.config_maps_unpruned();
        for object in &mut out {
            let metadata = object.value["metadata"].as_object_mut().expect("metadata");
            metadata.insert("annotations".into(), json!({ FLUX_PRUNE: "disabled" }));
        }
        out
    }

    fn config_maps_unpruned(&self) -> Vec<Object> {
        let mut out = Vec::new();
        for (component, text) in &self.config_texts {
            let name = &self.config_names[component];
            out.push(Object {
                role: Role::Shared,
                kind: "ConfigMap",
                rendered: None,
                name: name.clone(),
                value: json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": self.metadata(name, true, self.labels(Some(*component)), false),
                    // The name carries the content hash, so a config change
                    // is a new ConfigMap and rolls exactly the pods that
                    // mount it. PD's hash leaves out its stored tables, whose
                    // changes update this ConfigMap in place instead (for
                    // members that bootstrap later) and reach the running
                    // cluster through the settings Job.
                    "immutable": *component != Component::Pd,
                    "data": { format!("{component}.toml"): text },
                }),
            });
        }
        // One scripts ConfigMap per component, so a change to TiKV's
        // scripts rolls TiKV alone.
        for (component, name) in &self.scripts_names {
            let mut data = Map::new();
            for &(key, text) in scripts(*component) {
                data.insert(key.to_string(), json!(text));
            }
            out.push(Object {
                role: Role::Shared,
                kind: "ConfigMap",
                rendered: None,
                name: name.clone(),
                value: json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": self.metadata(name, true, self.labels(Some(*component)), false),
                    "immutable": true,
                    "data": data,
                }),
            });
        }
        out
    }

    fn service(
        &self,
        name: &str,
        component: Component,
        headless: bool,
        ports: &[(&str, u16)],
    ) -> Object {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(port_name, port)| {
                json!({ "name": port_name, "port": port, "protocol": "TCP", "targetPort": port })
            })
            .collect();
        let mut spec = Map::new();
        if headless {
            spec.insert("clusterIP".into(), json!("None"));
        }
        spec.insert("ports".into(), json!(ports));
        if headless {
            // Peers must find each other's names before any is ready: PD
            // members need them to form a quorum (FACTS §8.2).
            spec.insert("publishNotReadyAddresses".into(), json!(true));
        }
        spec.insert("selector".into(), self.selector(component));
        spec.insert("sessionAffinity".into(), json!("None"));
        spec.insert("type".into(), json!("ClusterIP"));
        Object {
            role: Role::Shared,
            kind: "Service",
            rendered: None,
            name: name.into(),
            value: json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": self.metadata(name, true, self.labels(Some(component)), false),
                "spec": spec,
            }),
        }
    }

    fn services(&self) -> Vec<Object> {
        let n = self.names;
        let tidb = &self.model.cluster.tidb;
        let mut client = self.service(
            &n.tidb_service,
            Component::Tidb,
            false,
            &[("mysql", TIDB_PORT), ("status", TIDB_STATUS_PORT)],
        );
        let spec = &mut client.value["spec"];
        spec["type"] = json!(match tidb.service_type {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        });
        if tidb.service_type != ServiceType::ClusterIP {
            spec["externalTrafficPolicy"] = json!("Cluster");
        }
        if !tidb.service_annotations.is_empty() {
            client.value["metadata"]["annotations"] = json!(tidb.service_annotations);
        }
        // In TiDB's wave, not the shared one: Argo CD counts a LoadBalancer
        // Service as progressing until it has an address, which would hold
        // back every wave after it.
        client.role = Role::Tidb;
        vec![
            self.service(
                &n.pd_service,
                Component::Pd,
                false,
                &[("client", PD_CLIENT_PORT)],
            ),
            self.service(
                &n.pd_peer,
                Component::Pd,
                true,
                &[("peer", PD_PEER_PORT), ("client", PD_CLIENT_PORT)],
            ),
            self.service(
                &n.tikv_peer,
                Component::Tikv,
                true,
                &[("server", TIKV_PORT), ("status", TIKV_STATUS_PORT)],
            ),
            client,
            self.service(
                &n.tidb_peer,
                Component::Tidb,
                true,
                &[("mysql", TIDB_PORT), ("status", TIDB_STATUS_PORT)],
            ),
        ]
    }

    /// PodDisruptionBudgets. PD: one member at a time keeps the quorum.
    /// TiDB: one at a time keeps capacity. TiKV: as many as the fullest node
    /// holds (from the lock, at most `max_per_node`), so `kubectl drain` of one node can finish —
    /// a budget of one would block forever on the second store of a node,
    /// because that pod cannot come back anywhere else while its node is
    /// cordoned. The stores of one node share its failure domain, so
    /// draining one node at a time keeps every Region's quorum; draining
    /// nodes of two domains at once does not, and the budget cannot tell
    /// the two apart (README "Node maintenance").
    fn disruption_budgets(&self) -> Vec<Object> {
        let tikv = self.tikv_per_node.max(1);
        [
            (Component::Pd, 1),
            (Component::Tikv, tikv),
            (Component::Tidb, 1),
        ]
        .into_iter()
        .map(|(component, max)| {
            let name = format!("{}-{component}", self.names.cluster);
            Object {
                role: Role::Shared,
                kind: "PodDisruptionBudget",
                rendered: None,
                name: name.clone(),
                value: json!({
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": self.metadata(&name, true, self.labels(Some(component)), false),
                    "spec": {
                        "maxUnavailable": max,
                        "selector": { "matchLabels": self.selector(component) },
                        // An unready pod may always be evicted: it serves
                        // nothing, and keeping it would block a drain.
                        "unhealthyPodEvictionPolicy": "AlwaysAllow",
                    },
                }),
            }
        })
        .collect()
    }

    fn instance_labels(&self, entry: &Entry) -> Map<String, Value> {
        let mut labels = self.labels(Some(entry.id.component));
        labels.insert(LABEL_INSTANCE_ID.into(), json!(entry.id.to_string()));
        labels
    }

    fn stateful(&self, component: Component) -> &Stateful {
        self.model.cluster.stateful(component)
    }

    fn volume(&self, entry: &Entry) -> Object {
        let name = self.names.volume(entry.id);
        // The lock may name a node or directory the inventory no longer has
        // (a failed instance); the volume object still describes where the
        // data is, with the capacity the claim asked for.
        let capacity = self
            .model
            .inventory
            .node(&entry.node)
            .and_then(|n| n.dir(&entry.path))
            .map(|d| d.capacity.as_str().to_string())
            .unwrap_or_else(|| {
                self.stateful(entry.id.component)
                    .storage
                    .as_str()
                    .to_string()
            });
        Object {
            role: Role::Volume(entry.id),
            kind: "PersistentVolume",
            rendered: None,
            name: name.clone(),
            value: with(
                json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": null,
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "capacity": { "storage": capacity },
                        "claimRef": {
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "name": self.names.claim(entry.id),
                            "namespace": self.names.namespace,
                        },
                        "local": { "path": entry.path.0 },
                        "nodeAffinity": { "required": { "nodeSelectorTerms": [ { "matchExpressions": [
                            { "key": "kubernetes.io/hostname", "operator": "In", "values": [entry.node.0] }
                        ] } ] } },
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": self.names.storage_class,
                        "volumeMode": "Filesystem",
                    },
                }),
                "/metadata",
                self.metadata(&name, false, self.instance_labels(entry), true),
            ),
        }
    }

    fn claim(&self, entry: &Entry) -> Object {
        let name = self.names.claim(entry.id);
        Object {
            role: Role::Volume(entry.id),
            kind: "PersistentVolumeClaim",
            rendered: None,
            name: name.clone(),
            value: with(
                json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": null,
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": {
                            "storage": self.stateful(entry.id.component).storage.as_str()
                        } },
                        "storageClassName": self.names.storage_class,
                        "volumeMode": "Filesystem",
                        "volumeName": self.names.volume(entry.id),
                    },
                }),
                "/metadata",
                self.metadata(&name, true, self.instance_labels(entry), true),
            ),
        }
    }

    fn image(&self, component: &str) -> String {
        let c = &self.model.cluster;
        format!("{}/{component}:{}", c.registry, c.version.text)
    }

    /// One StatefulSet of one replica for a PD or TiKV instance, using the
    /// instance's pre-bound claim as a plain volume: no claim templates
    /// (which GitOps tools show as drift), and any single instance can be
    /// retired or replaced on its own.
    fn stateful_set(&self, entry: &Entry, node: &Node, lock: &Lock) -> Object {
        let id = entry.id;
        let component = id.component;
        let stateful = self.stateful(component);
        let dir = node.dir(&entry.path);
        let require_mount = dir.is_none_or(|d| d.require_mount);
        let data_dir = match component {
            Component::Pd => "/var/lib/pd",
            _ => "/var/lib/tikv",
        };
        let name = self.names.workload(id);
        let host = self.names.host(id);
        let config = format!("/etc/{component}/{component}.toml");

        let init = json!({
            "name": "init-dir",
            "image": self.image(component.as_str()),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", format!("{SCRIPTS_DIR}/init-dir.sh")],
            "env": env(&[
                ("DATA_DIR", data_dir.to_string()),
                ("OWNER", format!(
                    "tidb-gitops cluster={}/{} instance={id}",
                    self.names.namespace, self.names.cluster
                )),
                ("HOST_PATH", entry.path.0.clone()),
                ("NODE_NAME", entry.node.0.clone()),
                ("REQUIRE_MOUNT", require_mount.to_string()),
            ]),
            "resources": {},
            "securityContext": security_context(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [
                mount("data", data_dir, false),
                mount("scripts", SCRIPTS_DIR, true),
            ],
        });

        let (main, grace) = match component {
            Component::Pd => (self.pd_container(entry, &host, data_dir, &config, lock), 60),
            _ => (
                self.tikv_container(entry, node, &host, data_dir, &config),
                600,
            ),
        };
        let volumes = json!([
            { "name": "config", "configMap": { "defaultMode": 420, "name": self.config_names[&component] } },
            { "name": "data", "persistentVolumeClaim": { "claimName": self.names.claim(id) } },
            { "name": "scripts", "configMap": { "defaultMode": 493, "name": self.scripts_names[&component] } },
            { "name": "tmp", "emptyDir": {} },
        ]);
        let mut pod_labels = self.instance_labels(entry);
        pod_labels.remove(LABEL_MANAGED_BY);
        let mut selector = self.selector(component);
        selector[LABEL_INSTANCE_ID] = json!(id.to_string());
        let mut object = Object {
            role: Role::Workload(id),
            kind: "StatefulSet",
            rendered: None,
            name: name.clone(),
            value: json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": null,
                "spec": {
                    "minReadySeconds": 0,
                    "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" },
                    "podManagementPolicy": "Parallel",
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "selector": { "matchLabels": selector },
                    "serviceName": match component {
                        Component::Pd => &self.names.pd_peer,
                        _ => &self.names.tikv_peer,
                    },
                    "template": {
                        "metadata": { "labels": pod_labels },
                        "spec": null,
                    },
                    "updateStrategy": { "rollingUpdate": { "partition": 0 }, "type": "RollingUpdate" },
                },
            }),
        };
        let metadata = self.metadata(&name, true, self.instance_labels(entry), false);
        let pod = self.pod_spec(
            &entry.node.0,
            &stateful.tolerations,
            grace,
            vec![init],
            main,
            volumes,
        );
        object.value = with(object.value, "/metadata", metadata);
        object.value = with(object.value, "/spec/template/spec", pod);
        object
    }

    fn pod_spec(
        &self,
        node: &str,
        tolerations: &[Toleration],
        grace: u32,
        init: Vec<Value>,
        main: Value,
        volumes: Value,
    ) -> Value {
        let mut spec = Map::new();
        // No container here talks to the Kubernetes API (the scripts speak
        // only to PD and TiDB): no service account token in the pod.
        spec.insert("automountServiceAccountToken".into(), json!(false));
        spec.insert("containers".into(), Value::Array(vec![main]));
        spec.insert("dnsPolicy".into(), json!("ClusterFirst"));
        // Hundreds of Services in one namespace would otherwise become
        // thousands of environment variables in every container.
        spec.insert("enableServiceLinks".into(), json!(false));
        if !init.is_empty() {
            spec.insert("initContainers".into(), Value::Array(init));
        }
        if !node.is_empty() {
            // The volume's node affinity pins the pod already; saying it here
            // too makes `kubectl describe` show why the pod waits for a node.
            spec.insert(
                "nodeSelector".into(),
                json!({ "kubernetes.io/hostname": node }),
            );
        }
        spec.insert("restartPolicy".into(), json!("Always"));
        spec.insert("schedulerName".into(), json!("default-scheduler"));
        spec.insert(
            "securityContext".into(),
            json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
        );
        spec.insert("terminationGracePeriodSeconds".into(), json!(grace));
        if !tolerations.is_empty() {
            spec.insert(
                "tolerations".into(),
                Value::Array(tolerations.iter().map(toleration).collect()),
            );
        }
        spec.insert("volumes".into(), volumes);
        Value::Object(spec)
    }

    fn pd_container(
        &self,
        entry: &Entry,
        host: &str,
        data_dir: &str,
        config: &str,
        lock: &Lock,
    ) -> Value {
        let id = entry.id;
        // PD bootstrap (DESIGN §5): the first PD instance ever (ordinal 0)
        // starts the cluster alone; every other member joins through the
        // client Service, which routes only to ready members. Both are fixed
        // for the member's life: PD ignores them once its data directory
        // holds a member, and the start script refuses to bootstrap when a
        // cluster already answers.
        let bootstraps = id.ordinal == 0 && lock.entries.iter().any(|e| e.id == id);
        let mut vars = vec![
            ("PD_NAME", id.to_string()),
            ("DATA_DIR", data_dir.to_string()),
            ("ADVERTISE_HOST", host.to_string()),
            ("CONFIG", config.to_string()),
        ];
        if bootstraps {
            vars.push(("PD_MODE", "bootstrap".into()));
            vars.push((
                "INITIAL_CLUSTER",
                format!("{id}=http://{host}:{PD_PEER_PORT}"),
            ));
        } else {
            vars.push(("PD_MODE", "join".into()));
            vars.push(("JOIN_URLS", self.names.pd_url()));
        }
        vars.push((
            "PROBE_URLS",
            format!("{},{}", self.names.pd_url(), self.names.pd_peer_url()),
        ));
        // `/pd/api/v2/ready` (region metadata loaded, answered locally)
        // exists from v8.5.2 (FACTS §4, §5). Before it, the client port: the
        // other endpoints ask every member in turn, so one member down would
        // make all of them unready and empty PD's client Service.
        let v = &self.model.cluster.version;
        let readiness = if (v.major, v.minor, v.patch) >= (8, 5, 2) {
            http_probe("/pd/api/v2/ready", PD_CLIENT_PORT)
        } else {
            tcp_probe(PD_CLIENT_PORT)
        };
        let stateful = self.stateful(Component::Pd);
        json!({
            "name": "pd",
            "image": self.image("pd"),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", format!("{SCRIPTS_DIR}/pd-start.sh")],
            "env": env(&vars),
            // The PD leader hands leadership to a healthy member before it
            // stops (bounded at 30 s); always exits 0.
            "lifecycle": { "preStop": { "exec": { "command": ["/bin/bash", format!("{SCRIPTS_DIR}/pd-prestop.sh")] } } },
            "ports": [
                port("client", PD_CLIENT_PORT),
                port("peer", PD_PEER_PORT),
            ],
            "readinessProbe": readiness,
            "resources": resources(&stateful.requests, &stateful.limits),
            "securityContext": security_context(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [
                mount("config", "/etc/pd", true),
                mount("data", data_dir, false),
                mount("scripts", SCRIPTS_DIR, true),
                mount("tmp", "/tmp", false),
            ],
        })
    }

    fn tikv_container(
        &self,
        entry: &Entry,
        node: &Node,
        host: &str,
        data_dir: &str,
        config: &str,
    ) -> Value {
        let stateful = self.stateful(Component::Tikv);
        // Every location label, `host` included, becomes a store label so PD
        // sees zone, rack and host. `--labels` replaces the config file's
        // `server.labels` as a whole (FACTS §3), so the config leaves it unset.
        let labels: Vec<String> = self
            .model
            .cluster
            .topology
            .location_labels
            .iter()
            .filter_map(|key| node.labels.get(key).map(|v| format!("{key}={v}")))
            .collect();
        let capacity = node
            .dir(&entry.path)
            .map(|d| tikv_capacity(d.capacity.nanos() / 1_000_000_000))
            .unwrap_or_else(|| "0".into());
        json!({
            "name": "tikv",
            "image": self.image("tikv"),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", format!("{SCRIPTS_DIR}/tikv-start.sh")],
            "args": [
                format!("--pd={}", self.names.pd_url()),
                format!("--addr=0.0.0.0:{TIKV_PORT}"),
                format!("--advertise-addr={host}:{TIKV_PORT}"),
                format!("--status-addr=0.0.0.0:{TIKV_STATUS_PORT}"),
                format!("--advertise-status-addr={host}:{TIKV_STATUS_PORT}"),
                format!("--data-dir={data_dir}"),
                format!("--capacity={capacity}"),
                format!("--config={config}"),
                format!("--labels={}", labels.join(",")),
            ],
            "env": env(&[
                ("PD_URL", self.names.pd_url()),
                ("ADVERTISE_ADDR", format!("{host}:{TIKV_PORT}")),
                ("DATA_DIR", data_dir.to_string()),
            ]),
            // Before the store stops, its Region leaders move to other
            // stores (bounded at 300 s); the start script takes the
            // eviction back once the store is Up again. The hook always
            // exits 0, so it never changes how the pod stops.
            "lifecycle": { "preStop": { "exec": { "command": ["/bin/bash", format!("{SCRIPTS_DIR}/tikv-prestop.sh")] } } },
            "ports": [
                port("server", TIKV_PORT),
                port("status", TIKV_STATUS_PORT),
            ],
            // No liveness probe: the status server starts only after
            // recovery, which can take long (FACTS §5).
            "readinessProbe": http_probe("/status", TIKV_STATUS_PORT),
            "resources": resources(&stateful.requests, &stateful.limits),
            "securityContext": security_context(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [
                mount("config", "/etc/tikv", true),
                mount("data", data_dir, false),
                mount("scripts", SCRIPTS_DIR, true),
                mount("tmp", "/tmp", false),
            ],
        })
    }

    /// The Job that applies PD's stored settings ([replication],
    /// [schedule]) through pd-ctl. Its name carries the hash of the
    /// settings, so it runs once per change; there is no
    /// `ttlSecondsAfterFinished`, because a GitOps tool would create a
    /// deleted Job again and run it twice.
    fn pd_settings(&self) -> Object {
        let stored = pd_stored(self.config_texts[&Component::Pd]);
        let mut command = vec![
            "/bin/bash".to_string(),
            format!("{SCRIPTS_DIR}/pd-settings.sh"),
        ];
        command.extend(stored.schedule.iter().map(|(k, v)| format!("{k}={v}")));
        let mut vars = vec![("PD_URL", self.names.pd_url())];
        if let Some(json) = stored.replication {
            vars.push(("REPLICATION_JSON", json));
        }
        self.named_job(
            "pd-settings",
            Role::PdSettings,
            Component::Pd,
            command,
            &vars,
            1_800,
        )
    }

    /// A Job named by the hash of its whole spec (settings, image, scripts,
    /// tolerations): the API server refuses to change a Job's pod template,
    /// so any change must be a new Job, and an unchanged one stays done.
    fn named_job(
        &self,
        what: &str,
        role: Role,
        component: Component,
        command: Vec<String>,
        vars: &[(&str, String)],
        deadline_seconds: u32,
    ) -> Object {
        let value = self.job("", what, component, command, vars, deadline_seconds);
        self.spec_named_job(what, role, value)
    }

    /// Names a Job `<cluster>-<what>-<hash of its spec>`: the API server
    /// refuses to change a Job's pod template, so a changed Job must be a
    /// new one, and an unchanged one keeps its name and stays done.
    fn spec_named_job(&self, what: &str, role: Role, mut value: Value) -> Object {
        let spec = value["spec"].to_string();
        let name = format!(
            "{}-{what}-{}",
            self.names.cluster,
            content_hash([("spec", spec.as_str())])
        );
        value["metadata"]["name"] = json!(name);
        Object {
            role,
            kind: "Job",
            rendered: None,
            value,
            name,
        }
    }

    /// A Job of one pod that runs a script in a component's image. Its pod
    /// carries its own `component` label, so it never joins the component's
    /// Services or counts against its disruption budget.
    fn job(
        &self,
        name: &str,
        role: &str,
        component: Component,
        command: Vec<String>,
        vars: &[(&str, String)],
        deadline_seconds: u32,
    ) -> Value {
        let container = json!({
            "name": role,
            "image": self.image(component.as_str()),
            "imagePullPolicy": "IfNotPresent",
            "command": command,
            "env": env(vars),
            "resources": {},
            "securityContext": security_context(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [ mount("scripts", SCRIPTS_DIR, true), mount("tmp", "/tmp", false) ],
        });
        // The Job's script speaks only to PD: no service account token. It
        // writes nothing but /tmp (an emptyDir, writable by anyone), so it
        // runs as the images' unprivileged `pingcap` user (uid 1000, gid
        // 2000, FACTS §1) rather than root; `reclaim_job` needs root back.
        let mut spec = obj(json!({
            "automountServiceAccountToken": false,
            "containers": [],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": false,
            "restartPolicy": "OnFailure",
            "schedulerName": "default-scheduler",
            "securityContext": {
                "runAsGroup": PINGCAP_GID,
                "runAsNonRoot": true,
                "runAsUser": PINGCAP_UID,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "terminationGracePeriodSeconds": 30,
        }));
        spec["containers"] = Value::Array(vec![container]);
        let tolerations = match component {
            Component::Tidb => &self.model.cluster.tidb.tolerations,
            c => &self.stateful(c).tolerations,
        };
        if !tolerations.is_empty() {
            spec.insert(
                "tolerations".into(),
                Value::Array(tolerations.iter().map(toleration).collect()),
            );
        }
        spec.insert(
            "volumes".into(),
            json!([
                { "name": "scripts", "configMap": { "defaultMode": 493, "name": self.scripts_names[&component] } },
                { "name": "tmp", "emptyDir": {} },
            ]),
        );
        let value = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": null,
            "spec": {
                // A Job that cannot finish fails visibly and halts the
                // waves after it; delete it to run it again.
                "activeDeadlineSeconds": deadline_seconds,
                "backoffLimit": 6,
                "completionMode": "NonIndexed",
                "completions": 1,
                "manualSelector": false,
                "parallelism": 1,
                "podReplacementPolicy": "TerminatingOrFailed",
                "suspend": false,
                "template": {
                    "metadata": { "labels": {
                        LABEL_CLUSTER: self.names.cluster,
                        LABEL_COMPONENT: role,
                    } },
                    "spec": null,
                },
            },
        });
        with(
            with(
                value,
                "/metadata",
                self.metadata(name, true, self.labels(Some(component)), false),
            ),
            "/spec/template/spec",
            Value::Object(spec),
        )
    }

    /// The Jobs of day-2 steps (see `lock`'s states): a store deleted
    /// through PD for each `leaving` or `removing` TiKV; a member deleted by
    /// name for each `leaving` or `failed` PD; a reclaim Job for each `gone`
    /// instance whose node is in the inventory. Named by the hash of their
    /// spec, so an upgrade runs them again (they are idempotent) rather
    /// than changing a Job the API server refuses to change.
    fn day2_objects(&self, lock: &Lock) -> Vec<Object> {
        let mut out = Vec::new();
        for e in &lock.entries {
            let node = self.model.inventory.node(&e.node);
            match (e.id.component, e.state) {
                (Component::Tikv, State::Leaving | State::Removing) => {
                    let force = node.is_some_and(|n| n.state == crate::input::NodeState::Destroyed);
                    out.push(self.day2_job(
                        &format!("remove-{}", e.id),
                        Role::Decommission,
                        Component::Tikv,
                        "store-delete",
                        "store-delete.sh",
                        &[
                            ("INSTANCE", e.id.to_string()),
                            ("PD_URL", self.names.pd_url()),
                            (
                                "STORE_ADDRESS",
                                format!("{}:{TIKV_PORT}", self.names.host(e.id)),
                            ),
                            ("FORCE", force.to_string()),
                        ],
                        e,
                    ));
                }
                (Component::Pd, State::Leaving | State::Failed) => {
                    let role = if e.state == State::Failed {
                        Role::PdMemberDelete
                    } else {
                        Role::Decommission
                    };
                    out.push(self.day2_job(
                        &format!("remove-{}", e.id),
                        role,
                        Component::Pd,
                        "pd-member-delete",
                        "pd-member-delete.sh",
                        &[
                            ("MEMBER", e.id.to_string()),
                            ("PD_URL", self.names.pd_url()),
                        ],
                        e,
                    ));
                }
                (_, State::Gone) if node.is_some() => out.push(self.reclaim_job(e)),
                _ => {}
            }
        }
        if !out.is_empty() {
            out.push(self.day2_scripts_map());
        }
        out
    }

    fn day2_scripts_name(&self) -> String {
        scripts_map_name(&self.names.cluster, "day2", day2_scripts())
    }

    fn day2_scripts_map(&self) -> Object {
        self.scripts_map(self.day2_scripts_name(), day2_scripts())
    }

    /// An immutable ConfigMap of scripts, named by their hash (see
    /// `scripts_map_name`), mounted by Jobs that need no restart of any
    /// workload when a script changes.
    fn scripts_map(&self, name: String, scripts: &[(&str, &str)]) -> Object {
        let data: Map<String, Value> = scripts
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let value = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.metadata(&name, true, self.labels(None), false),
            "immutable": true,
            "data": data,
        });
        Object {
            role: Role::Shared,
            kind: "ConfigMap",
            rendered: None,
            name,
            value,
        }
    }

    /// A day-2 Job running `script` in the component's image, named
    /// `<cluster>-<what>-<hash of its spec>`, labelled with the instance it
    /// acts on.
    #[allow(clippy::too_many_arguments)]
    fn day2_job(
        &self,
        what: &str,
        role: Role,
        component: Component,
        step: &str,
        script: &str,
        vars: &[(&str, String)],
        entry: &Entry,
    ) -> Object {
        let command = vec!["/bin/bash".to_string(), format!("{SCRIPTS_DIR}/{script}")];
        let mut value = self.job("", step, component, command, vars, 3_600);
        value["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] =
            json!(self.day2_scripts_name());
        value["metadata"]["labels"][LABEL_TARGET] = json!(entry.id.to_string());
        value["metadata"]["labels"][LABEL_COMPONENT] = json!(step);
        self.spec_named_job(what, role, value)
    }

    /// The Job that wipes a gone instance's directory: pinned to its node,
    /// the directory (exactly that path) mounted by `hostPath`, the only
    /// `hostPath` in the output. It refuses unless the owner marker names
    /// the instance, and cannot be scheduled while a pod of the instance is
    /// still on the node (anti-affinity). A node that is down leaves it
    /// pending in the last wave, where it holds back nothing.
    fn reclaim_job(&self, entry: &Entry) -> Object {
        let owner = format!(
            "tidb-gitops cluster={}/{} instance={}",
            self.names.namespace, self.names.cluster, entry.id
        );
        let command = vec!["/bin/bash".to_string(), format!("{SCRIPTS_DIR}/reclaim.sh")];
        let vars = [
            ("HOST_PATH", entry.path.0.clone()),
            ("NODE_NAME", entry.node.0.clone()),
            ("OWNER", owner),
            ("RECLAIM_DIR", "/reclaim".to_string()),
        ];
        let mut value = self.job("", "reclaim", Component::Tikv, command, &vars, 3_600);
        let pod = &mut value["spec"]["template"]["spec"];
        pod["volumes"][0]["configMap"]["name"] = json!(self.day2_scripts_name());
        pod["containers"][0]["volumeMounts"]
            .as_array_mut()
            .expect("mounts")
            .push(mount("reclaim", "/reclaim", false));
        pod["volumes"].as_array_mut().expect("volumes").push(
            json!({ "name": "reclaim", "hostPath": { "path": entry.path.0, "type": "Directory" } }),
        );
        let mut spec = pod.as_object().cloned().expect("pod spec");
        // Root, unlike the other Jobs: the directory and the files the
        // instance left in it belong to root (the images run as root). Every
        // capability stays dropped, so root here cannot pass file
        // permissions it does not own.
        spec.insert(
            "securityContext".into(),
            json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
        );
        spec.insert(
            "affinity".into(),
            json!({ "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": { "matchLabels": {
                    LABEL_CLUSTER: self.names.cluster,
                    LABEL_INSTANCE_ID: entry.id.to_string(),
                } },
                "topologyKey": "kubernetes.io/hostname",
            }] } }),
        );
        spec.insert(
            "nodeSelector".into(),
            json!({ "kubernetes.io/hostname": entry.node.0 }),
        );
        let sorted: Map<String, Value> = {
            let mut entries: Vec<(String, Value)> = spec.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.into_iter().collect()
        };
        *pod = Value::Object(sorted);
        value["metadata"]["labels"][LABEL_TARGET] = json!(entry.id.to_string());
        value["metadata"]["labels"][LABEL_COMPONENT] = json!("reclaim");
        value["metadata"]["labels"][crate::evidence::LABEL_RECLAIM] = json!(entry.id.to_string());
        value["spec"]["template"]["metadata"]["labels"][crate::evidence::LABEL_RECLAIM] =
            json!(entry.id.to_string());
        self.spec_named_job(&format!("reclaim-{}", entry.id), Role::Reclaim, value)
    }

    /// The gate after a TiKV wave: a Job that completes once the wave's
    /// stores are Up in PD and no Region has a down or pending peer, so the
    /// GitOps tool starts the next failure domain only then. Its name
    /// carries the hash of the wave's pod templates: it runs again exactly
    /// when the wave changes, and stays completed otherwise.
    fn tikv_gate(&self, domain: &str, workloads: &[&Object]) -> Object {
        let stores: Vec<String> = workloads
            .iter()
            .filter_map(|w| match w.role {
                Role::Workload(id) => Some(format!("{}:{TIKV_PORT}", self.names.host(id))),
                _ => None,
            })
            .collect();
        let ids = workloads
            .iter()
            .filter_map(|w| match w.role {
                Role::Workload(id) => Some(id),
                _ => None,
            })
            .collect();
        // The name must change whenever the wave's pods change, so the gate
        // runs again after every rollout of its wave: a hash of the
        // workloads (their pod templates and the rest) is part of the Job's
        // spec.
        let mut parts = vec![("domain", domain)];
        parts.extend(workloads.iter().map(|w| {
            let yaml = w.rendered.as_deref();
            (
                "workload",
                yaml.expect("instance workloads are rendered early"),
            )
        }));
        self.named_job(
            "tikv-gate",
            Role::TikvGate(ids),
            Component::Tikv,
            vec!["/bin/bash".into(), format!("{SCRIPTS_DIR}/tikv-gate.sh")],
            &[
                ("PD_URL", self.names.pd_url()),
                ("STORES", stores.join(",")),
                ("WAVE", content_hash(parts)),
            ],
            21_600,
        )
    }

    fn tidb(&self) -> Object {
        let tidb = &self.model.cluster.tidb;
        let name = &self.names.tidb;
        let host = format!(
            "$(POD_NAME).{}.{}.svc",
            self.names.tidb_peer, self.names.namespace
        );
        let pd_addr = format!(
            "{}.{}.svc:{PD_CLIENT_PORT}",
            self.names.pd_service, self.names.namespace
        );
        let mut env = vec![json!({
            "name": "POD_NAME",
            "valueFrom": { "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.name" } },
        })];
        let mut vars = vec![
            ("ADVERTISE_HOST", host),
            ("PD_ADDR", pd_addr),
            ("CONFIG", "/etc/tidb/tidb.toml".to_string()),
        ];
        let mut mounts = vec![
            mount("config", "/etc/tidb", true),
            mount("log", "/var/log/tidb", false),
            mount("scripts", SCRIPTS_DIR, true),
            mount("tmp", "/tmp", false),
        ];
        let mut volumes = vec![
            json!({ "name": "config", "configMap": { "defaultMode": 420, "name": self.config_names[&Component::Tidb] } }),
            // The slow-query log (tidb.toml points there).
            json!({ "name": "log", "emptyDir": {} }),
            json!({ "name": "scripts", "configMap": { "defaultMode": 493, "name": self.scripts_names[&Component::Tidb] } }),
            json!({ "name": "tmp", "emptyDir": {} }),
        ];
        if let Some(secret) = &tidb.root_password_secret {
            vars.push((
                "ROOT_PASSWORD_FILE",
                format!("/etc/tidb-root/{ROOT_PASSWORD_KEY}"),
            ));
            // The SQL file that sets the password lives in memory, never on
            // the node's disk.
            vars.push(("INIT_SQL", "/var/run/tidb-gitops/init.sql".to_string()));
            mounts.push(mount("init", "/var/run/tidb-gitops", false));
            volumes.push(json!({ "name": "init", "emptyDir": { "medium": "Memory" } }));
            mounts.push(mount("root-password", "/etc/tidb-root", true));
            volumes.insert(
                1,
                json!({ "name": "root-password", "secret": {
                    "defaultMode": 256,
                    "items": [ { "key": ROOT_PASSWORD_KEY, "path": ROOT_PASSWORD_KEY } ],
                    "secretName": secret,
                } }),
            );
        }
        env.extend(env_values(&vars));
        let container = json!({
            "name": "tidb",
            "image": self.image("tidb"),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", format!("{SCRIPTS_DIR}/tidb-start.sh")],
            "env": env,
            // TiDB's /status turns 500 when shutdown starts; the pause lets
            // endpoints drop the pod before SIGQUIT drains the clients
            // (FACTS §6). `kill -QUIT 1` reaches TiDB because the start
            // script execs it as PID 1.
            "lifecycle": { "preStop": { "exec": { "command": ["/bin/sh", "-c", "sleep 10 && kill -QUIT 1"] } } },
            "ports": [
                port("mysql", TIDB_PORT),
                port("status", TIDB_STATUS_PORT),
            ],
            "readinessProbe": http_probe("/status", TIDB_STATUS_PORT),
            "resources": resources(&tidb.requests, &tidb.limits),
            "securityContext": security_context(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": mounts,
        });
        Object {
            role: Role::Tidb,
            kind: "StatefulSet",
            rendered: None,
            name: name.clone(),
            value: json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": self.metadata(name, true, self.labels(Some(Component::Tidb)), false),
                "spec": {
                    "minReadySeconds": 0,
                    "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" },
                    "podManagementPolicy": "Parallel",
                    "replicas": tidb.replicas,
                    "revisionHistoryLimit": 10,
                    "selector": { "matchLabels": self.selector(Component::Tidb) },
                    "serviceName": self.names.tidb_peer,
                    "template": {
                        "metadata": { "labels": self.selector(Component::Tidb) },
                        "spec": tidb_spread(
                            self.pod_spec("", &tidb.tolerations, 60, Vec::new(), container, Value::Array(volumes)),
                            self.selector(Component::Tidb),
                        ),
                    },
                    "updateStrategy": { "rollingUpdate": { "partition": 0 }, "type": "RollingUpdate" },
                },
            }),
        }
    }
}

/// TiDB's pods spread over nodes where they can: two TiDB on one node
/// would go down together in a node failure or drain. A preference, not a
/// rule, so a small cluster still schedules every replica.
fn tidb_spread(mut spec: Value, selector: Value) -> Value {
    spec["topologySpreadConstraints"] = json!([{
        "labelSelector": { "matchLabels": selector },
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
    }]);
    spec
}

/// Moves `part` into `value` at `pointer` (which must exist, as `null`).
/// `json!` copies a `Value` it is given by serializing it; the per-instance
/// objects are built thousands of times, so their large parts are moved in
/// afterwards instead.
fn with(mut value: Value, pointer: &str, part: Value) -> Value {
    *value.pointer_mut(pointer).expect("the placeholder exists") = part;
    value
}

/// `<cluster>-<what>-scripts-<hash of the scripts>`.
pub(crate) fn scripts_map_name(cluster: &str, what: &str, scripts: &[(&str, &str)]) -> String {
    format!(
        "{cluster}-{what}-scripts-{}",
        content_hash(scripts.iter().copied())
    )
}

/// The scripts a component's pods and Jobs run, by ConfigMap key.
pub fn scripts(component: Component) -> &'static [(&'static str, &'static str)] {
    match component {
        Component::Pd => &[
            ("init-dir.sh", INIT_DIR_SH),
            ("pd-prestop.sh", PD_PRESTOP_SH),
            ("pd-settings.sh", PD_SETTINGS_SH),
            ("pd-start.sh", PD_START_SH),
        ],
        Component::Tikv => &[
            ("init-dir.sh", INIT_DIR_SH),
            ("pd-api.sh", PD_API_SH),
            ("tikv-gate.sh", TIKV_GATE_SH),
            ("tikv-prestop.sh", TIKV_PRESTOP_SH),
            ("tikv-start.sh", TIKV_START_SH),
        ],
        Component::Tidb => &[("tidb-start.sh", TIDB_START_SH)],
    }
}

/// PD's stored settings of a rendered pd.toml: `[replication]` as the JSON
/// body of `POST /pd/api/v1/config/replicate` (lists as comma-joined
/// strings and booleans as strings, as that API takes them, FACTS §3), and
/// `[schedule]` as pd-ctl `config set` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PdStored {
    /// The text without the stored tables: what names PD's ConfigMap.
    pub rest: String,
    pub replication: Option<String>,
    pub schedule: Vec<(String, String)>,
}

pub fn pd_stored(text: &str) -> PdStored {
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return PdStored {
            rest: text.to_string(),
            ..PdStored::default()
        };
    };
    let mut stored = PdStored::default();
    if let Some(toml::Value::Table(replication)) = table.remove("replication") {
        let mut pairs = Vec::new();
        flatten_settings("", &replication, &mut pairs);
        let body: Map<String, Value> = replication
            .iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    toml::Value::Integer(i) => json!(i),
                    toml::Value::Float(f) => json!(f),
                    toml::Value::Table(_) => return None,
                    _ => json!(pairs.iter().find(|(key, _)| key == k)?.1),
                };
                Some((k.clone(), value))
            })
            .collect();
        stored.replication = Some(Value::Object(body).to_string());
    }
    if let Some(toml::Value::Table(schedule)) = table.remove("schedule") {
        flatten_settings("", &schedule, &mut stored.schedule);
    }
    stored.rest = toml::to_string(&table).unwrap_or_default();
    stored
}

fn flatten_settings(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten_settings(&key, inner, out);
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        out.push((key, text));
    }
}

/// TiKV's `--capacity`: TiKV reads `GB` and `MB` as binary units. A whole
/// number of GiB is written as such; anything else is rounded down to MiB,
/// so TiKV never believes it has more room than the directory.
pub fn tikv_capacity(bytes: i128) -> String {
    const MIB: i128 = 1 << 20;
    const GIB: i128 = 1 << 30;
    if bytes > 0 && bytes % GIB == 0 {
        format!("{}GB", bytes / GIB)
    } else {
        format!("{}MB", bytes / MIB)
    }
}

fn env(vars: &[(&str, String)]) -> Value {
    Value::Array(env_values(vars))
}

fn env_values(vars: &[(&str, String)]) -> Vec<Value> {
    vars.iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect()
}

fn mount(name: &str, path: &str, read_only: bool) -> Value {
    let mut m = obj(json!({ "mountPath": path, "name": name }));
    if read_only {
        m.insert("readOnly".into(), json!(true));
    }
    Value::Object(m)
}

fn port(name: &str, port: u16) -> Value {
    json!({ "containerPort": port, "name": name, "protocol": "TCP" })
}

fn tcp_probe(port: u16) -> Value {
    json!({
        "failureThreshold": 3,
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "successThreshold": 1,
        "tcpSocket": { "port": port },
        "timeoutSeconds": 3,
    })
}

fn http_probe(path: &str, port: u16) -> Value {
    json!({
        "failureThreshold": 3,
        "httpGet": { "path": path, "port": port, "scheme": "HTTP" },
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "successThreshold": 1,
        "timeoutSeconds": 3,
    })
}

/// The images run as root (no `USER` in their Dockerfiles, FACTS §1) and
/// write only to their data directory and /tmp (an emptyDir): no privilege
/// escalation, no capabilities, a read-only root filesystem. That TiKV
/// needs no capability to raise its open-file limit assumes the runtime's
/// default hard limit is at least 82920 (FACTS §8.9); inferred, not verified.
fn security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
        "readOnlyRootFilesystem": true,
    })
}

fn resources(requests: &Resources, limits: &Resources) -> Value {
    let mut out = Map::new();
    let to_map = |r: &Resources| -> Value {
        Value::Object(
            r.iter()
                .map(|(k, q)| (k.clone(), json!(q.as_str())))
                .collect(),
        )
    };
    if !limits.is_empty() {
        out.insert("limits".into(), to_map(limits));
    }
    if !requests.is_empty() {
        out.insert("requests".into(), to_map(requests));
    }
    Value::Object(out)
}

fn toleration(t: &Toleration) -> Value {
    let mut m = Map::new();
    if let Some(effect) = t.effect {
        m.insert("effect".into(), json!(effect));
    }
    if let Some(key) = &t.key {
        m.insert("key".into(), json!(key));
    }
    m.insert(
        "operator".into(),
        json!(
            t.operator
                .unwrap_or(crate::input::TolerationOperator::Equal)
        ),
    );
    if let Some(seconds) = t.toleration_seconds {
        m.insert("tolerationSeconds".into(), json!(seconds));
    }
    if let Some(value) = &t.value {
        m.insert("value".into(), json!(value));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pd_stored_settings_leave_the_hashed_text() {
        let text = "[log]\nlevel = \"info\"\n\n[replication]\nisolation-level = \"zone\"\nlocation-labels = [\"zone\", \"host\"]\nmax-replicas = 3\nstrictly-match-label = true\n\n[schedule]\nleader-schedule-limit = 4\n";
        let stored = pd_stored(text);
        assert!(stored.rest.contains("[log]"));
        assert!(!stored.rest.contains("replication") && !stored.rest.contains("schedule"));
        // One JSON body, validated by PD as a whole: lists comma-joined,
        // booleans as strings, numbers as numbers.
        assert_eq!(
            stored.replication.as_deref(),
            Some(
                r#"{"isolation-level":"zone","location-labels":"zone,host","max-replicas":3,"strictly-match-label":"true"}"#
            )
        );
        assert_eq!(
            stored.schedule,
            [("leader-schedule-limit".to_string(), "4".to_string())]
        );
        assert_eq!(pd_stored("[log]\n").replication, None);
    }

    #[test]
    fn capacity_is_whole_gib_or_rounded_down_to_mib() {
        assert_eq!(tikv_capacity(1788 << 30), "1788GB");
        assert_eq!(tikv_capacity((1 << 30) + (1 << 20) + 5), "1025MB");
        assert_eq!(tikv_capacity(0), "0MB");
    }

    #[test]
    fn content_hash_depends_on_keys_and_texts() {
        let a = content_hash([("a", "xy")]);
        assert_eq!(a.len(), 10);
        assert_ne!(a, content_hash([("a", "xz")]));
        assert_ne!(a, content_hash([("b", "xy")]));
        // Length prefixes: moving a character between key and text differs.
        assert_ne!(content_hash([("ax", "y")]), a);
        assert_eq!(a, content_hash([("a", "xy")]));
    }
}
