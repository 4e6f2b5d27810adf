//! The input files as the user writes them: serde types for `cluster.toml` and
//! `inventory.toml`, and the reader that turns their text into those types plus
//! diagnostics.
//!
//! These types mirror the files key for key (DESIGN §2) and hold strings where
//! the user's text needs checking (quantities, names, paths); `validate` turns
//! them into the domain model. Keeping them dumb keeps every check in one
//! place, where all problems are collected at once.
//!
//! The reader parses the file into a spanned TOML document first (recovering
//! from syntax errors where it can), then deserializes each section on its own
//! so a wrong type in `[pd]` does not hide a wrong type in `[tikv]`. Unknown
//! keys do not stop deserialization: they are collected through
//! `serde_ignored`, located in the spanned document, and the nearest known key
//! is looked up in the JSON Schema generated from these same types.

use std::collections::BTreeMap;
use std::ops::Range;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, FileKind};
use crate::quantity::Quantity;
use crate::spanned::Sp;

/// A map of Kubernetes resource names (`cpu`, `memory`, ...) to quantities.
pub type ResourceMap = BTreeMap<String, Sp<QuantityText>>;
// Map keys are plain strings: `serde_ignored` cannot capture spanned keys.
// Messages about a key point at its value, which is on the same line.

/// A quantity as written; `validate` parses it exactly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct QuantityText(pub String);

impl JsonSchema for QuantityText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Quantity::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Quantity::json_schema(generator)
    }
}

/// A component's `config` table, passed on to the component's own TOML file.
/// Its keys are the component's, checked against upstream references later.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ConfigTable(pub toml::Table);

impl JsonSchema for ConfigTable {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConfigTable".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "Component configuration: quoted dotted keys (\"a.b\" = 1) and nested tables are both accepted and merged"
        })
    }
}

// ---------------------------------------------------------------------------
// cluster.toml

/// `cluster.toml`: what the cluster should be.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "tidb-gitops cluster.toml")]
pub struct ClusterFile {
    pub cluster: ClusterSection,
    #[serde(default)]
    pub topology: TopologySection,
    pub pd: PdSection,
    pub tikv: TikvSection,
    pub tidb: TidbSection,
    #[serde(default)]
    pub backup: Option<BackupSection>,
    #[serde(default)]
    pub restore: Vec<RestoreEntry>,
    #[serde(default)]
    pub acknowledge: Vec<AcknowledgeEntry>,
    #[serde(default)]
    pub reclaimed: Vec<ReclaimedEntry>,
    #[serde(default)]
    pub gitops: Option<GitopsSection>,
}

/// `[gitops]`: where Flux and Argo CD fetch the compiled output from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GitopsSection {
    /// The URL of the Git repository that holds the output folder, as Flux
    /// and Argo CD should clone it; without it the example objects under
    /// `deploy/gitops/` name a placeholder.
    #[serde(default)]
    pub repository: Option<Sp<String>>,
    /// The branch they follow; default `main`.
    #[serde(default)]
    pub branch: Option<Sp<String>>,
}

/// `[cluster]`: identity and images.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ClusterSection {
    /// DNS-1035 label of at most 40 characters; it starts every generated name.
    pub name: Sp<String>,
    /// Kubernetes namespace; defaults to the name.
    #[serde(default)]
    pub namespace: Option<Sp<String>>,
    /// The TiDB release for every component image, such as `v8.5.1`.
    pub version: Sp<String>,
    /// Image registry and organisation; images are `{registry}/{pd,tikv,tidb,br}:{version}`.
    #[serde(default)]
    pub registry: Option<Sp<String>>,
}

/// `[topology]`: failure domains and replication.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TopologySection {
    /// Inventory label keys, coarse to fine; `host` is the node name. Default `["host"]`.
    #[serde(default)]
    pub location_labels: Option<Sp<Vec<Sp<String>>>>,
    /// One of `location_labels`: TiKV replicas of a Region go to distinct domains of this label.
    #[serde(default)]
    pub isolation_level: Option<Sp<String>>,
    /// PD `replication.max-replicas`; default 3.
    #[serde(default)]
    pub max_replicas: Option<Sp<i64>>,
}

/// `[pd]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PdSection {
    pub replicas: Sp<i64>,
    /// The claim's request: the least capacity a PD directory must have.
    pub storage: Sp<QuantityText>,
    /// Use only directories with this media tag.
    #[serde(default)]
    pub media: Option<Sp<String>>,
    #[serde(default)]
    pub requests: ResourceMap,
    #[serde(default)]
    pub limits: ResourceMap,
    #[serde(default)]
    pub tolerations: Vec<Sp<Toleration>>,
    /// Merged into `pd.toml`; dotted keys and nested tables are both accepted.
    #[serde(default)]
    pub config: Option<Sp<ConfigTable>>,
}

/// `[tikv]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TikvSection {
    pub replicas: Sp<i64>,
    /// The claim's request: the least capacity a TiKV directory must have.
    pub storage: Sp<QuantityText>,
    #[serde(default)]
    pub media: Option<Sp<String>>,
    /// The most TiKV instances one node may hold.
    #[serde(default)]
    pub max_per_node: Option<Sp<i64>>,
    #[serde(default)]
    pub requests: ResourceMap,
    #[serde(default)]
    pub limits: ResourceMap,
    #[serde(default)]
    pub tolerations: Vec<Sp<Toleration>>,
    /// Merged into `tikv.toml`.
    #[serde(default)]
    pub config: Option<Sp<ConfigTable>>,
}

/// `[tidb]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TidbSection {
    pub replicas: Sp<i64>,
    #[serde(default)]
    pub requests: ResourceMap,
    #[serde(default)]
    pub limits: ResourceMap,
    #[serde(default)]
    pub tolerations: Vec<Sp<Toleration>>,
    #[serde(default)]
    pub service: Option<ServiceSection>,
    /// An existing Secret holding the initial root password.
    #[serde(default)]
    pub root_password_secret: Option<Sp<String>>,
    /// Merged into `tidb.toml`.
    #[serde(default)]
    pub config: Option<Sp<ConfigTable>>,
}

/// The TiDB client Service.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ServiceSection {
    #[serde(rename = "type", default)]
    pub service_type: Option<Sp<ServiceType>>,
    /// Annotations for the Service, for example a cloud load balancer's settings.
    #[serde(default)]
    pub annotations: BTreeMap<String, Sp<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// A Kubernetes toleration, written with Kubernetes' own field names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Toleration {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub operator: Option<TolerationOperator>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub effect: Option<TaintEffect>,
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum TolerationOperator {
    Exists,
    Equal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// `[backup]`: scheduled BR snapshot backups to one object store.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BackupSection {
    /// Five-field cron schedule (minute hour day-of-month month
    /// day-of-week), in UTC.
    pub schedule: Sp<String>,
    /// How many scheduled backups to keep; older ones are pruned.
    #[serde(default)]
    pub keep: Option<Sp<i64>>,
    /// Who prunes old backups: `job` (a step after each backup, with an
    /// object-store client image) or `lifecycle` (a bucket lifecycle rule
    /// the user sets up; nothing is deleted by tidb-gitops). Default `job`.
    #[serde(default)]
    pub prune: Option<Sp<PruneMode>>,
    /// The image of the prune step; default per store (aws-cli, cloud-sdk,
    /// azure-cli).
    #[serde(default)]
    pub prune_image: Option<Sp<String>>,
    /// BR `--concurrency`.
    #[serde(default)]
    pub concurrency: Option<Sp<i64>>,
    /// BR `--ratelimit`, in MiB/s per TiKV.
    #[serde(default)]
    pub rate_limit: Option<Sp<i64>>,
    /// Run a full backup in a wave before the first PD restarts whenever the
    /// version changes.
    #[serde(default)]
    pub before_upgrade: Option<Sp<bool>>,
    /// A ServiceAccount (created by you) for the backup pods; without a
    /// storage `secret`, its cloud identity (IRSA, Workload Identity) gives
    /// the credentials.
    #[serde(default)]
    pub service_account: Option<Sp<String>>,
    #[serde(default)]
    pub s3: Option<Sp<S3Storage>>,
    #[serde(default)]
    pub gcs: Option<Sp<GcsStorage>>,
    #[serde(default)]
    pub azblob: Option<Sp<AzblobStorage>>,
    /// Continuous log backup for point-in-time recovery.
    #[serde(default)]
    pub log: Option<Sp<LogBackup>>,
}

/// Who prunes old backups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PruneMode {
    Job,
    Lifecycle,
}

/// `[backup.log]`: a continuous log backup task (`br log start`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LogBackup {
    /// Where the log backup goes, under the store's bucket; default
    /// `<prefix>/log`.
    #[serde(default)]
    pub prefix: Option<Sp<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct S3Storage {
    pub bucket: Sp<String>,
    #[serde(default)]
    pub prefix: Option<Sp<String>>,
    #[serde(default)]
    pub region: Option<Sp<String>>,
    /// For S3-compatible stores.
    #[serde(default)]
    pub endpoint: Option<Sp<String>>,
    #[serde(default)]
    pub provider: Option<Sp<String>>,
    /// An existing Secret with keys `access_key` and `secret_key`.
    #[serde(default)]
    pub secret: Option<Sp<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GcsStorage {
    pub bucket: Sp<String>,
    #[serde(default)]
    pub prefix: Option<Sp<String>>,
    /// An existing Secret with the service account key.
    #[serde(default)]
    pub secret: Option<Sp<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AzblobStorage {
    pub container: Sp<String>,
    #[serde(default)]
    pub prefix: Option<Sp<String>>,
    #[serde(default)]
    pub account: Option<Sp<String>>,
    /// An existing Secret with the account credentials.
    #[serde(default)]
    pub secret: Option<Sp<String>>,
}

/// `[[restore]]`: a one-shot restore.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RestoreEntry {
    pub name: Sp<String>,
    /// The snapshot backup's URL, such as `s3://bucket/prefix/2026-11-20T020000Z`.
    pub from: Sp<String>,
    /// Point-in-time recovery: restore up to this time (`2026-11-20
    /// 10:00:00+0000`), replaying the log backup after the snapshot.
    #[serde(default)]
    pub until: Option<Sp<String>>,
    /// The log backup's URL for `until`; default the `[backup.log]` location.
    #[serde(default)]
    pub log_from: Option<Sp<String>>,
}

/// `[[acknowledge]]`: a reviewed, deliberate unsafe change.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AcknowledgeEntry {
    /// The change hash that `plan` printed.
    pub change: Sp<String>,
    pub reason: Sp<String>,
}

/// `[[reclaimed]]`: a gone instance's directory declared free by hand (the
/// reclaim Job cannot run, or its evidence cannot be captured).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ReclaimedEntry {
    /// The gone instance, such as `tikv-3`.
    pub instance: Sp<String>,
    pub reason: Sp<String>,
}

// ---------------------------------------------------------------------------
// inventory.toml

/// `inventory.toml`: which nodes exist and which local directories each offers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "tidb-gitops inventory.toml")]
pub struct InventoryFile {
    #[serde(default)]
    pub node: Vec<NodeEntry>,
}

/// `[[node]]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NodeEntry {
    /// The node's `kubernetes.io/hostname` label value.
    pub name: Sp<String>,
    /// Location labels; `host` is implicit: the node's name.
    #[serde(default)]
    pub labels: BTreeMap<String, Sp<String>>,
    #[serde(default)]
    pub state: Option<Sp<NodeState>>,
    /// What the node can give pods; placement then respects requests.
    #[serde(default)]
    pub allocatable: ResourceMap,
    #[serde(default)]
    pub dir: Vec<DirEntry>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Schedulable: keeps its instances and may get new ones.
    Up,
    /// Keeps what it has, gets nothing new.
    Cordoned,
    /// Gone or broken: its instances fail over.
    Down,
    /// Down for good, its disks lost: its instances fail over, and their
    /// stores are deleted through PD with `?force` (nothing can move off
    /// them).
    Destroyed,
}

impl NodeState {
    /// Whether the node's instances fail over.
    pub fn is_down(self) -> bool {
        matches!(self, NodeState::Down | NodeState::Destroyed)
    }
}

/// `[[node.dir]]`: one local directory, one mount point.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DirEntry {
    /// Absolute host path.
    pub path: Sp<String>,
    pub capacity: Sp<QuantityText>,
    /// A free tag matched against a component's `media`.
    #[serde(default)]
    pub media: Option<Sp<String>>,
    /// Default true: the pod refuses to start unless the path is a mount point.
    #[serde(default)]
    pub require_mount: Option<bool>,
}

// ---------------------------------------------------------------------------
// Reading

/// Reads `cluster.toml`. Returns the file when every section deserialized,
/// and every problem found on the way.
pub fn read_cluster(text: &str) -> (Option<ClusterFile>, Vec<Diagnostic>) {
    let mut reader = Reader::new(FileKind::Cluster, text, schema_of::<ClusterFile>);
    let Some(mut root) = reader.document() else {
        return (None, reader.diagnostics);
    };
    let cluster = reader.required(&mut root, "cluster");
    let topology = reader.optional(&mut root, "topology");
    let pd = reader.required(&mut root, "pd");
    let tikv = reader.required(&mut root, "tikv");
    let tidb = reader.required(&mut root, "tidb");
    let backup = reader.optional(&mut root, "backup");
    let restore = reader.array(&mut root, "restore");
    let acknowledge = reader.array(&mut root, "acknowledge");
    let reclaimed = reader.array(&mut root, "reclaimed");
    let gitops = reader.optional(&mut root, "gitops");
    reader.unknown_top_level(&root);
    let file = (|| {
        Some(ClusterFile {
            cluster: cluster?,
            topology: topology?.unwrap_or_default(),
            pd: pd?,
            tikv: tikv?,
            tidb: tidb?,
            backup: backup?,
            restore: restore?,
            acknowledge: acknowledge?,
            reclaimed: reclaimed?,
            gitops: gitops?,
        })
    })();
    reader.finish(file)
}

/// Reads `inventory.toml`; each `[[node]]` is deserialized on its own.
///
/// Unlike the other readers it returns the nodes that did deserialize even
/// when others did not (the diagnostics then hold errors), so validation can
/// still report everything else wrong with them in the same run.
pub fn read_inventory(text: &str) -> (Option<InventoryFile>, Vec<Diagnostic>) {
    let mut reader = Reader::new(FileKind::Inventory, text, schema_of::<InventoryFile>);
    let Some(mut root) = reader.document() else {
        return (None, reader.diagnostics);
    };
    let mut node = Vec::new();
    reader.array_partial(&mut root, "node", &mut node);
    reader.unknown_top_level(&root);
    (Some(InventoryFile { node }), reader.diagnostics)
}

/// Deserializes a whole document in one go (for files the compiler writes
/// itself, such as the lock), still collecting unknown keys with their spans.
pub fn read_whole<T: DeserializeOwned + JsonSchema>(
    file: FileKind,
    text: &str,
) -> (Option<T>, Vec<Diagnostic>) {
    let mut reader = Reader::new(file, text, schema_of::<T>);
    let Some(root) = reader.document() else {
        return (None, reader.diagnostics);
    };
    let span = 0..text.len();
    let value = Spanned::new(span, DeValue::Table(root));
    let parsed = reader.deserialize::<T>(value, Vec::new());
    reader.finish(parsed)
}

pub(crate) fn schema_of<T: JsonSchema>() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

struct Reader<'a> {
    file: FileKind,
    text: &'a str,
    /// Makes the schema that names the known keys. Only needed when a key is
    /// unknown, so it is not built on the common path.
    schema: fn() -> serde_json::Value,
    known: Option<serde_json::Value>,
    /// The whole document again, parsed only when an unknown key must be
    /// located: deserialization consumes the sections.
    lookup: Option<Spanned<DeValue<'a>>>,
    diagnostics: Vec<Diagnostic>,
}

/// One step of a key path inside a document.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl<'a> Reader<'a> {
    fn new(file: FileKind, text: &'a str, schema: fn() -> serde_json::Value) -> Reader<'a> {
        Reader {
            file,
            text,
            schema,
            known: None,
            lookup: None,
            diagnostics: Vec::new(),
        }
    }

    /// The span of the last key of `path` (from the document root).
    fn locate(&mut self, path: &[Step]) -> Option<Range<usize>> {
        let text = self.text;
        let doc = self.lookup.get_or_insert_with(|| {
            let (root, _) = DeTable::parse_recoverable(text);
            Spanned::new(0..text.len(), DeValue::Table(root.into_inner()))
        });
        locate_key(doc, path)
    }

    fn finish<T>(self, value: Option<T>) -> (Option<T>, Vec<Diagnostic>) {
        let ok = !crate::diag::has_errors(&self.diagnostics);
        (value.filter(|_| ok), self.diagnostics)
    }

    /// Parses the TOML syntax, reporting every syntax error the parser can
    /// recover from.
    fn document(&mut self) -> Option<DeTable<'a>> {
        if let Some(at) = too_deep(self.text) {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "invalid TOML: nested more than {MAX_DEPTH} levels deep"
                ))
                .at(self.file, at..at + 1)
                .label("too deep")
                .hint("no input of tidb-gitops needs more than a few levels of arrays, inline tables or dotted keys; look for brackets that do not close"),
            );
            return None;
        }
        let (root, errors) = DeTable::parse_recoverable(self.text);
        if errors.is_empty() {
            return Some(root.into_inner());
        }
        let hint = if self.file == FileKind::Lock {
            LOCK_RESTORE_HINT
        } else {
            "fix the TOML syntax; strings need double quotes and tables a `[name]` header"
        };
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            let span = if span.is_empty() && span.start < self.text.len() {
                span.start..span.start + 1
            } else {
                span
            };
            let message = error.message().trim_end_matches('\n');
            let (message, hint) = if message.starts_with("duplicate key") {
                let key = self.text.get(span.clone()).unwrap_or("").trim();
                let hint = if self.file == FileKind::Lock {
                    hint
                } else {
                    "remove one of the two"
                };
                (format!("invalid TOML: key `{key}` is defined twice"), hint)
            } else {
                (format!("invalid TOML: {message}"), hint)
            };
            self.diagnostics.push(
                Diagnostic::error(message)
                    .at(self.file, span)
                    .label("here")
                    .hint(hint),
            );
        }
        None
    }

    fn required<T: DeserializeOwned>(&mut self, root: &mut DeTable<'a>, key: &str) -> Option<T> {
        match root.remove(key) {
            Some(value) => self.deserialize(value, vec![Step::Key(key.into())]),
            None => {
                self.diagnostics.push(
                    Diagnostic::error(format!("missing table `[{key}]`"))
                        .in_file(self.file)
                        .hint(format!(
                            "add a `[{key}]` table; `tidb-gitops init DIR` writes a commented example"
                        )),
                );
                None
            }
        }
    }

    /// `Some(None)` when absent, `None` when present but invalid.
    fn optional<T: DeserializeOwned>(
        &mut self,
        root: &mut DeTable<'a>,
        key: &str,
    ) -> Option<Option<T>> {
        match root.remove(key) {
            Some(value) => self
                .deserialize(value, vec![Step::Key(key.into())])
                .map(Some),
            None => Some(None),
        }
    }

    /// An array of tables, each element deserialized on its own so every bad
    /// element is reported.
    fn array<T: DeserializeOwned>(&mut self, root: &mut DeTable<'a>, key: &str) -> Option<Vec<T>> {
        let mut out = Vec::new();
        self.array_partial(root, key, &mut out).then_some(out)
    }

    /// Like `array`, keeping the elements that deserialized; false when any did not.
    fn array_partial<T: DeserializeOwned>(
        &mut self,
        root: &mut DeTable<'a>,
        key: &str,
        out: &mut Vec<T>,
    ) -> bool {
        match self.array_inner(root, key) {
            Some(items) => {
                let ok = items.iter().all(Option::is_some);
                out.extend(items.into_iter().flatten());
                ok
            }
            None => false,
        }
    }

    fn array_inner<T: DeserializeOwned>(
        &mut self,
        root: &mut DeTable<'a>,
        key: &str,
    ) -> Option<Vec<Option<T>>> {
        let Some(value) = root.remove(key) else {
            return Some(Vec::new());
        };
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.diagnostics.push(
                Diagnostic::error(format!("`{key}` must be an array of tables"))
                    .at(self.file, span)
                    .label("not an array")
                    .hint(format!("write each entry under its own `[[{key}]]` header")),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            out.push(self.deserialize(item, vec![Step::Key(key.into()), Step::Index(index)]));
        }
        Some(out)
    }

    fn unknown_top_level(&mut self, root: &DeTable<'a>) {
        for (key, value) in root.iter() {
            let before = self.diagnostics.len();
            self.unknown_key(key.get_ref(), key.span(), &[]);
            if matches!(value.get_ref(), DeValue::Table(_))
                && let Some(d) = self.diagnostics.get_mut(before)
            {
                d.message = format!("unknown table `[{}]`", key.get_ref());
            }
        }
    }

    fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'a>>,
        at: Vec<Step>,
    ) -> Option<T> {
        let mut ignored: Vec<Vec<Step>> = Vec::new();
        let deserializer = toml::de::ValueDeserializer::from(value);
        let result = serde_ignored::deserialize(deserializer, |path| ignored.push(steps(&path)));
        let typo_of_missing = |error: &toml::de::Error| {
            let Some(field) = missing_field(error.message()) else {
                return false;
            };
            ignored.iter().any(|path| match path.last() {
                Some(Step::Key(k)) => crate::diag::nearest(k, [field]).is_some(),
                _ => false,
            })
        };
        let typo = matches!(&result, Err(error) if typo_of_missing(error));
        for path in ignored {
            let mut full = at.clone();
            full.extend(path);
            let Some(span) = self.locate(&full) else {
                continue;
            };
            let Some((Step::Key(key), table)) = full.split_last() else {
                continue;
            };
            self.unknown_key(key, span, table);
        }
        match result {
            Ok(value) => Some(value),
            // The unknown key reported above already says `did you mean`.
            Err(_) if typo => None,
            Err(error) => {
                self.type_error(&error, &at);
                None
            }
        }
    }

    fn unknown_key(&mut self, key: &str, span: Range<usize>, table: &[Step]) {
        let schema = self.known.get_or_insert_with(self.schema);
        let known = known_keys(schema, table);
        let mut d = Diagnostic::error(format!("unknown key `{key}` {}", describe_table(table)))
            .at(self.file, span)
            .label("unknown key");
        d = match crate::diag::nearest(key, known.iter().map(String::as_str)) {
            Some(near) => d.hint(format!("did you mean `{near}`?")),
            None if known.is_empty() => d.hint("remove it"),
            None => d.hint(format!("remove it; known keys here: {}", known.join(", "))),
        };
        self.diagnostics.push(d);
    }

    fn type_error(&mut self, error: &toml::de::Error, at: &[Step]) {
        let raw = error.message().trim_end_matches('\n').to_string();
        let span = error.span().unwrap_or(0..0);
        let key = self
            .text
            .get(..span.start)
            .and_then(|before| before.lines().next_back())
            .and_then(|line| {
                line.split_once('=')
                    .map(|(k, _)| k.trim().trim_matches('"').to_string())
            })
            .filter(|k| !k.is_empty() && !k.contains(['[', '{']));
        let hint = hint_for(&raw, at, key.as_deref());
        let message = plain_message(&raw, key.as_deref());
        self.diagnostics.push(
            Diagnostic::error(format!("{message} {}", describe_table(at)))
                .at(self.file, span)
                .label("here")
                .hint(hint),
        );
    }
}

/// The hint for a damaged lock file.
pub(crate) const LOCK_RESTORE_HINT: &str = "placement.lock is generated: restore it from git (`git checkout -- placement.lock`), or after a merge conflict take one side and run `tidb-gitops place`";

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Serde's messages reworded for people who write TOML, not Rust.
fn plain_message(message: &str, key: Option<&str>) -> String {
    if let Some(field) = missing_field(message) {
        return format!("missing key `{field}`");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((given, expected)) = rest.split_once("`, expected one of ")
    {
        let what = key.map_or("value".to_string(), |k| format!("`{k}` value"));
        return format!("unknown {what} `{given}` (expected one of {expected})");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let expected = match expected {
            "i64" | "u64" | "u32" | "i32" => "an integer",
            "a boolean" | "bool" => "true or false",
            other => other,
        };
        let found = found.split_once(' ').map_or(found, |(kind, _)| kind);
        let subject = key.map_or("the value".to_string(), |k| format!("`{k}`"));
        return format!("{subject} must be {expected}, not a {found}");
    }
    message.to_string()
}

/// A hint for serde's messages, which have a small fixed set of shapes.
fn hint_for(message: &str, at: &[Step], key: Option<&str>) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((given, expected)) = rest.split_once("`, expected one of ")
    {
        let options: Vec<&str> = expected.split(", ").map(|s| s.trim_matches('`')).collect();
        if let Some(near) = crate::diag::nearest(given, options.iter().copied()) {
            return format!("did you mean `{near}`?");
        }
        return format!("use one of {expected}");
    }
    if let Some(field) = missing_field(message) {
        return format!(
            "add `{field} = ...` {}",
            describe_table(at).replacen("in ", "to ", 1)
        );
    }
    if message.starts_with("invalid type") {
        return match (
            message.contains("expected i64") || message.contains("expected u32"),
            key,
        ) {
            (true, Some(k)) => format!("write a whole number without quotes, such as `{k} = 3`"),
            (false, Some(k))
                if message.contains("quantity") || message.contains("expected a string") =>
            {
                format!("write the value in double quotes, such as `{k} = \"500Gi\"`")
            }
            _ => {
                "write the value with the type named above; strings need double quotes".to_string()
            }
        };
    }
    "see the commented example that `tidb-gitops init DIR` writes".to_string()
}

fn steps(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    use serde_ignored::Path;
    fn walk(path: &Path<'_>, out: &mut Vec<Step>) {
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Step::Index(*index));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Step::Key(key.clone()));
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = Vec::new();
    walk(path, &mut out);
    // `Sp<T>` deserializes through toml's span wrapper, whose private keys show
    // up in paths; they are not the user's.
    out.retain(|s| !matches!(s, Step::Key(k) if k.starts_with("$__serde_spanned_private")));
    out
}

/// The span of the last key of `path` in the document.
fn locate_key(doc: &Spanned<DeValue<'_>>, path: &[Step]) -> Option<Range<usize>> {
    let (last, parents) = path.split_last()?;
    let mut current = doc;
    for step in parents {
        current = match (step, current.get_ref()) {
            (Step::Key(k), DeValue::Table(t)) => t.get(k.as_str())?,
            (Step::Index(i), DeValue::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    match (last, current.get_ref()) {
        (Step::Key(k), DeValue::Table(t)) => t.get_key_value(k.as_str()).map(|(key, _)| key.span()),
        _ => None,
    }
}

/// How a table is named in messages: `in [pd]`, `in [[node.dir]]`, `at the top level`.
fn describe_table(path: &[Step]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    if keys.is_empty() {
        return "at the top level".to_string();
    }
    let array = matches!(path.last(), Some(Step::Index(_)));
    if array {
        format!("in [[{}]]", keys.join("."))
    } else {
        format!("in [{}]", keys.join("."))
    }
}

/// The keys the schema allows in the table at `path`.
fn known_keys(schema: &serde_json::Value, path: &[Step]) -> Vec<String> {
    let mut nodes = vec![schema];
    for step in path {
        let mut next = Vec::new();
        for node in expand(schema, nodes) {
            let child = match step {
                Step::Key(k) => node
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
                Step::Index(_) => node.get("items"),
            };
            next.extend(child);
        }
        nodes = next;
    }
    let mut keys: Vec<String> = expand(schema, nodes)
        .into_iter()
        .filter_map(|n| n.get("properties").and_then(|p| p.as_object()))
        .flat_map(|p| p.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Follows `$ref` and the branches of `anyOf`/`oneOf`/`allOf` to the schemas
/// that actually describe a value.
fn expand<'s>(
    root: &'s serde_json::Value,
    nodes: Vec<&'s serde_json::Value>,
) -> Vec<&'s serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = nodes;
    let mut guard = 0;
    while let Some(node) = stack.pop() {
        guard += 1;
        if guard > 1000 {
            break;
        }
        if let Some(reference) = node.get("$ref").and_then(|r| r.as_str()) {
            let pointer = reference.trim_start_matches('#');
            stack.extend(root.pointer(pointer));
        }
        for combinator in ["anyOf", "oneOf", "allOf"] {
            if let Some(branches) = node.get(combinator).and_then(|b| b.as_array()) {
                stack.extend(branches.iter());
            }
        }
        out.push(node);
    }
    out
}

/// How deep arrays, inline tables and dotted keys may nest. Below the TOML
/// parser's own limit, whose error for dotted keys has no position, and far
/// above what any input needs.
pub const MAX_DEPTH: usize = 64;

/// The byte offset where `text` nests arrays and inline tables, or the
/// parts of one dotted key, more than [`MAX_DEPTH`] deep; checked before
/// parsing so the error can say where. Strings and comments are skipped;
/// a syntax error elsewhere is the parser's to report.
pub fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut dots = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            quote @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(if quote == b'"' { b"\"\"\"" } else { b"'''" });
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    if quote == b'"' && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == quote && (!triple || bytes[i..].starts_with(&[quote; 3])) {
                        i += if triple { 3 } else { 1 };
                        // A closing triple quote may be followed by up to two more quotes.
                        while triple && i < bytes.len() && bytes[i] == quote {
                            i += 1;
                        }
                        break;
                    }
                    if !triple && bytes[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                dots = 0;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                dots = 0;
            }
            b'.' => dots += 1,
            b'\n' | b'=' | b',' => dots = 0,
            _ => {}
        }
        if depth > MAX_DEPTH || dots >= MAX_DEPTH {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[cluster]
name = "c"
version = "v8.5.1"
[pd]
replicas = 1
storage = "1Gi"
[tikv]
replicas = 1
storage = "1Gi"
[tidb]
replicas = 1
"#;

    #[test]
    fn reads_a_minimal_cluster() {
        let (file, diags) = read_cluster(MINIMAL);
        assert!(diags.is_empty(), "{diags:?}");
        let file = file.unwrap();
        assert_eq!(file.cluster.name.value, "c");
        assert_eq!(&MINIMAL[file.cluster.name.span()], "\"c\"");
    }

    #[test]
    fn unknown_keys_everywhere_are_all_reported_with_suggestions() {
        let text = MINIMAL
            .replace("[pd]\n", "[pd]\nreplics = 2\n")
            .replace("[tidb]\n", "[tidb]\nreplicsa = 2\n")
            + "[extra]\n";
        let (file, diags) = read_cluster(&text);
        assert!(file.is_none());
        let messages: Vec<_> = diags
            .iter()
            .map(|d| (d.message.as_str(), d.hint.clone()))
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages.contains(&(
            "unknown key `replics` in [pd]",
            Some("did you mean `replicas`?".into())
        )));
        assert!(messages.contains(&(
            "unknown key `replicsa` in [tidb]",
            Some("did you mean `replicas`?".into())
        )));
        assert!(
            messages
                .iter()
                .any(|(m, _)| *m == "unknown table `[extra]`")
        );
    }

    #[test]
    fn type_errors_in_two_sections_are_both_reported() {
        let text = MINIMAL.replace("replicas = 1\nstorage", "replicas = \"one\"\nstorage");
        let (_, diags) = read_cluster(&text);
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(diags[0].message.contains("in [pd]"), "{diags:?}");
        assert!(diags[1].message.contains("in [tikv]"), "{diags:?}");
    }

    #[test]
    fn unknown_keys_inside_array_elements_are_located() {
        let text = "[[node]]\nname = \"a\"\n[[node.dir]]\npath = \"/mnt/a\"\ncapacity = \"1Gi\"\nmedai = \"ssd\"\n";
        let (_, diags) = read_inventory(text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].message, "unknown key `medai` in [[node.dir]]");
        assert_eq!(&text[diags[0].span.clone().unwrap()], "medai");
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `media`?"));
    }

    #[test]
    fn unknown_variant_gets_a_suggestion() {
        let text = "[[node]]\nname = \"a\"\nstate = \"upp\"\n";
        let (_, diags) = read_inventory(text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `up`?"));
    }

    #[test]
    fn syntax_errors_are_reported() {
        let (file, diags) = read_cluster("[cluster\nname = 1\n");
        assert!(file.is_none());
        assert!(!diags.is_empty());
        assert!(diags[0].message.starts_with("invalid TOML"), "{diags:?}");
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        let deep = |open: &str, n: usize| format!("x = {}", open.repeat(n));
        assert_eq!(too_deep(&deep("[", MAX_DEPTH)), None);
        assert_eq!(too_deep(&deep("[", MAX_DEPTH + 1)), Some(4 + MAX_DEPTH));
        assert_eq!(
            too_deep(&deep("{a=", MAX_DEPTH + 1)),
            Some(4 + 3 * MAX_DEPTH)
        );
        let dotted = format!("{} = 1", vec!["a"; MAX_DEPTH + 1].join("."));
        assert_eq!(too_deep(&dotted), Some(2 * MAX_DEPTH - 1));
        let quoted = format!(
            "a = \"{0}\"\nb = '{0}'\nc = \"\"\"{0}\\\"\"\"\"\n# {0}\n",
            "[{.".repeat(100)
        );
        assert_eq!(too_deep(&quoted), None, "{quoted}");
        assert_eq!(
            too_deep("[[node.dir]]\npath = \"/a\"\n[x.y.z]\nv = 1.5\n"),
            None
        );
    }
}
