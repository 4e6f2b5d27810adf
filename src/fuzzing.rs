//! The logic of the fuzz targets (`fuzz/fuzz_targets/*.rs`), kept in the
//! library so the committed corpus replays as an ordinary test
//! (`tests/fuzz_corpus.rs`) through exactly the same code.
//!
//! Each function takes the raw bytes a fuzzer made and panics when an
//! invariant breaks:
//!
//! - the parser targets (`cluster_toml`, `inventory_toml`, `placement_lock`,
//!   `observed_json`) put the bytes in place of one file of a valid cluster
//!   folder and compile: no panic; a failure is diagnostics, each naming a
//!   file and pointing inside that file's text; rendering them works;
//! - `pipeline` derives a structurally valid cluster (nodes, zones, racks,
//!   directories, sizes, replicas, config keys, node states, evidence) with
//!   `arbitrary`, writes it as `cluster.toml` and `inventory.toml` text, and
//!   compiles it twice, then again with the lock it produced, then a changed
//!   inventory against that lock: either diagnostics or an output whose YAML
//!   parses with `apiVersion`, `kind` and (except Kustomize's own files)
//!   `metadata.name`; the same texts give the same bytes; a compile with its
//!   own lock changes nothing.
//!
//! Not part of the public API.

use std::fmt::Write as _;

use arbitrary::{Arbitrary, Unstructured};

use crate::compile::{self, Compiled, Options};
use crate::diag::{self, Diagnostic, FileKind, Sources};
use crate::evidence;
use crate::load::{self, Texts};

/// The minimal example: the valid folder the parser targets break one file of.
pub const CLUSTER: &str = include_str!("../examples/minimal/cluster.toml");
pub const INVENTORY: &str = include_str!("../examples/minimal/inventory.toml");
pub const LOCK: &str = include_str!("../examples/minimal/placement.lock");

/// A fuzz target: the bytes the fuzzer made; panics on a broken invariant.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus
/// folders `fuzz/corpus/<name>/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("cluster_toml", cluster_toml),
    ("inventory_toml", inventory_toml),
    ("placement_lock", placement_lock),
    ("observed_json", observed_json),
    ("pipeline", pipeline),
];

/// Text the fuzzer made for one file: decoded, or checked that the decode
/// error says where the first bad byte is.
fn text(kind: FileKind, data: &[u8]) -> Option<&str> {
    match std::str::from_utf8(data) {
        Ok(text) => Some(text),
        Err(e) => {
            let (d, shown) = load::not_utf8(kind, kind.file_name(), data);
            let span = d
                .span
                .clone()
                .expect("a UTF-8 error points at the bad byte");
            assert!(span.end <= shown.len(), "{d:?}");
            assert_eq!(shown[..span.start].len(), e.valid_up_to());
            let mut sources = Sources::default();
            sources.add(kind, kind.file_name(), shown);
            let rendered = diag::render(&[d], &sources, false);
            assert!(rendered.contains(kind.file_name()), "{rendered}");
            None
        }
    }
}

/// Checks that every diagnostic names a file it can point into and that its
/// span lies inside that file's text, and that they render.
fn check_diagnostics(diagnostics: &[Diagnostic], texts: Texts<'_>, located: bool) {
    let mut sources = Sources::default();
    sources.add(FileKind::Cluster, "cluster.toml", texts.cluster);
    sources.add(FileKind::Inventory, "inventory.toml", texts.inventory);
    if let Some(lock) = texts.lock {
        sources.add(FileKind::Lock, "placement.lock", lock);
    }
    for d in diagnostics {
        assert!(!d.message.is_empty(), "{d:?}");
        if located {
            assert!(d.file.is_some(), "a reading error names no file: {d:?}");
        }
        if let Some(span) = &d.span {
            let file = d.file.expect("a diagnostic with a span names its file");
            let len = sources
                .text(file)
                .map(str::len)
                .unwrap_or_else(|| panic!("{d:?} points into {file:?}, which was not read"));
            assert!(
                span.start <= span.end && span.end <= len,
                "span {span:?} outside {} ({len} bytes): {d:?}",
                file.file_name()
            );
        }
    }
    let rendered = diag::render(diagnostics, &sources, false);
    for d in diagnostics.iter().filter(|d| d.span.is_some()) {
        let name = d.file.map(FileKind::file_name).unwrap_or_default();
        assert!(rendered.contains(&format!("{name}:")), "{rendered}");
    }
}

/// The span check on one error at `span` of a `cluster.toml` holding
/// `text`: the replay test shows that it can fail.
pub fn check_spans_for_test(span: std::ops::Range<usize>, text: &str) {
    let d = Diagnostic::error("a problem").at(FileKind::Cluster, span);
    let texts = Texts {
        cluster: text,
        inventory: "",
        lock: None,
    };
    check_diagnostics(&[d], texts, true);
}

/// Loads and compiles texts; checks the diagnostics of a failure.
fn compile_checked(texts: Texts<'_>, options: &Options) -> Option<Compiled> {
    let (loaded, diagnostics) = load::load(texts);
    check_diagnostics(&diagnostics, texts, true);
    if loaded.is_none() {
        assert!(diag::has_errors(&diagnostics), "no load and no error");
    }
    match compile::compile(texts, options) {
        Ok(compiled) => {
            assert!(loaded.is_some(), "compiled what did not load");
            check_diagnostics(&compiled.warnings, texts, false);
            check_output(&compiled);
            Some(compiled)
        }
        Err(diagnostics) => {
            assert!(diag::has_errors(&diagnostics), "failed without an error");
            check_diagnostics(&diagnostics, texts, false);
            None
        }
    }
}

/// Every output file is text the tools read: YAML documents with
/// `apiVersion`, `kind` and a name.
fn check_output(compiled: &Compiled) {
    assert!(!compiled.files.is_empty());
    for (path, text) in &compiled.files {
        assert!(!path.is_empty() && !path.starts_with('/') && !path.contains(".."));
        assert!(!text.is_empty(), "{path} is empty");
        if !path.ends_with(".yaml") {
            continue;
        }
        let docs = crate::yaml::parse(text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        assert!(!docs.is_empty(), "{path} holds no document");
        for doc in docs {
            let field = |name: &str| doc.get(name).and_then(|v| v.as_str()).unwrap_or("");
            assert!(!field("apiVersion").is_empty(), "{path}: no apiVersion");
            assert!(!field("kind").is_empty(), "{path}: no kind");
            if field("apiVersion").starts_with("kustomize.config.k8s.io/") {
                continue;
            }
            let name = doc
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            assert!(!name.is_empty(), "{path}: no metadata.name");
        }
    }
}

/// `cluster.toml` from the fuzzer, the rest of the minimal example.
pub fn cluster_toml(data: &[u8]) {
    let Some(cluster) = text(FileKind::Cluster, data) else {
        return;
    };
    let texts = Texts {
        cluster,
        inventory: INVENTORY,
        lock: Some(LOCK),
    };
    compile_checked(texts, &Options::default());
}

/// `inventory.toml` from the fuzzer, the rest of the minimal example.
pub fn inventory_toml(data: &[u8]) {
    let Some(inventory) = text(FileKind::Inventory, data) else {
        return;
    };
    let texts = Texts {
        cluster: CLUSTER,
        inventory,
        lock: Some(LOCK),
    };
    compile_checked(texts, &Options::default());
}

/// `placement.lock` from the fuzzer, the rest of the minimal example.
pub fn placement_lock(data: &[u8]) {
    let Some(lock) = text(FileKind::Lock, data) else {
        return;
    };
    let texts = Texts {
        cluster: CLUSTER,
        inventory: INVENTORY,
        lock: Some(lock),
    };
    if let Some(compiled) = compile_checked(texts, &Options::default()) {
        // What the compiler writes, it reads back unchanged.
        let rendered = compiled.lock.render();
        let again = crate::lock::parse(&rendered).expect("the written lock parses");
        assert_eq!(again.render(), rendered);
    }
}

/// An `--observed` file from the fuzzer, against the minimal example.
pub fn observed_json(data: &[u8]) {
    const NAME: &str = "observed.json";
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(_) => {
            let error = evidence::read_bytes(NAME, data).expect_err("not UTF-8 is an error");
            check_evidence_error(&error, &String::from_utf8_lossy(data));
            return;
        }
    };
    let file = match evidence::read(NAME, text) {
        Ok(file) => file,
        Err(error) => {
            check_evidence_error(&error, text);
            return;
        }
    };
    let texts = Texts {
        cluster: CLUSTER,
        inventory: INVENTORY,
        lock: Some(LOCK),
    };
    let options = Options {
        observed: vec![file],
        ..Options::default()
    };
    compile_checked(texts, &options);
}

/// An evidence error names the file, with a line and column inside the text
/// when it has them, and stays short whatever the input.
fn check_evidence_error(error: &str, text: &str) {
    let rest = error
        .strip_prefix("observed.json")
        .unwrap_or_else(|| panic!("the error does not name the file: {error}"));
    assert!(
        error.len() < 2_000,
        "the error is {} bytes long",
        error.len()
    );
    let mut parts = rest.splitn(4, ':');
    let (Some(""), Some(line), Some(column)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(line), Ok(column)) = (line.parse::<usize>(), column.parse::<usize>()) else {
        return;
    };
    let lines = text.split('\n').count();
    assert!(
        (1..=lines).contains(&line),
        "line {line} of {lines}: {error}"
    );
    // serde_json counts columns in bytes, and from 0 at the start of a line.
    let width = text.split('\n').nth(line - 1).unwrap_or("").len();
    assert!(column <= width + 1, "column {column} of {width}: {error}");
}

// ---------------------------------------------------------------------------
// The whole pipeline on structurally valid inputs

/// A cluster folder's contents, as the fuzzer chooses them. Every field is
/// small and picks from values of the right type, so most inputs reach
/// placement and the manifests; when `mischief` allows, choices include
/// invalid ones (zero replicas, a config key the compiler owns, no backup
/// credentials), which must end in diagnostics.
#[derive(Arbitrary, Debug)]
pub struct Shape {
    mischief: u8,
    /// Directories name their media, and components may ask for one.
    media: bool,
    name: u8,
    namespace: Option<u8>,
    version: u8,
    registry: bool,
    labels: u8,
    isolation: u8,
    max_replicas: Option<u8>,
    pd: Component,
    tikv: Component,
    tikv_max_per_node: Option<u8>,
    tidb_replicas: u8,
    tidb_service: Option<(u8, bool)>,
    root_password_secret: bool,
    config: Vec<(u8, u8)>,
    backup: Option<Backup>,
    restore: Option<u8>,
    gitops: Option<bool>,
    zones: u8,
    racks: u8,
    node_count: u8,
    dirs_per_node: u8,
    /// Node details, used in turn by the nodes.
    nodes: Vec<Node>,
    /// Changes for the second compile, against the first one's lock.
    changes: Vec<Change>,
    /// Evidence for the second compile, one state per lock entry.
    evidence: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Component {
    replicas: u8,
    storage: u8,
    media: Option<u8>,
    requests: Option<(u8, u8)>,
    limits: Option<(u8, u8)>,
    toleration: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct Backup {
    schedule: u8,
    keep: Option<u8>,
    storage: u8,
    credentials: u8,
    log: bool,
    prune: Option<bool>,
}

#[derive(Arbitrary, Debug, Clone)]
struct Node {
    state: u8,
    allocatable: Option<(u8, u8)>,
    dirs: Vec<Dir>,
}

#[derive(Arbitrary, Debug, Clone)]
struct Dir {
    capacity: u8,
    media: Option<u8>,
    require_mount: Option<bool>,
}

#[derive(Arbitrary, Debug)]
enum Change {
    State(u8, u8),
    Remove(u8),
    Add(Node),
    TikvReplicas(u8),
    PdReplicas(u8),
    DropDir(u8),
}

fn pick<'a>(choices: &[&'a str], i: u8) -> &'a str {
    choices[usize::from(i) % choices.len()]
}

/// What a component asks for; the last two fit few directories.
const STORAGE: &[&str] = &[
    "1Gi", "10Gi", "100Gi", "500Mi", "1.5Gi", "1000M", "20Gi", "64Mi", "1Ti", "3Ti",
];
/// Ascending, so a limit can be picked at or above its request.
const CPU: &[&str] = &["500m", "1", "1500m", "2", "8", "16"];
const MEMORY: &[&str] = &["512Mi", "1Gi", "2Gi", "16Gi", "64Gi"];
/// Mostly counts that place, sometimes zero or an even PD count.
/// Counts that place, then (last two) invalid ones.
const PD_REPLICAS: &[u8] = &[1, 3, 3, 5, 1, 3, 0, 2];
const TIKV_REPLICAS: &[u8] = &[3, 1, 3, 4, 5, 6, 2, 12, 0];
const TIDB_REPLICAS: &[u8] = &[1, 2, 3, 1, 0];
/// What a directory holds, mostly enough for the storage sizes.
const CAPACITIES: &[&str] = &["100Gi", "1Ti", "3Ti", "20Gi", "500Gi", "1Gi", "10Gi", "2T"];

/// A request and a limit at or above it, or (rarely) below.
fn request_limit(choices: &[&str], request: u8, limit: u8) -> (String, String) {
    let r = usize::from(request) % choices.len();
    let l = if limit == 255 {
        0
    } else {
        (r + usize::from(limit % 3)).min(choices.len() - 1)
    };
    (choices[r].to_string(), choices[l].to_string())
}
const STATES: &[&str] = &["up", "up", "up", "up", "cordoned", "down", "destroyed"];

/// Config keys and values per component: known keys, a typo, a key the
/// compiler owns, an unknown key, a nested table.
const CONFIG: &[(&str, &str, &str)] = &[
    ("tikv", "\"log.level\"", "\"info\""),
    ("tikv", "\"raftstore.apply-pool-size\"", "2"),
    ("tikv", "\"storage.reserve-space\"", "\"1GB\""),
    ("tikv", "\"server.addr\"", "\"0.0.0.0:1\""),
    ("tikv", "\"log.levl\"", "\"info\""),
    ("tikv", "\"unknown-section.x\"", "1"),
    ("tikv", "readpool", "{ unified = { max-thread-count = 4 } }"),
    ("pd", "\"log.level\"", "\"warn\""),
    ("pd", "\"schedule.leader-schedule-limit\"", "4"),
    ("pd", "\"replication.max-replicas\"", "3"),
    ("pd", "\"lease\"", "3"),
    ("tidb", "\"log.level\"", "\"warn\""),
    ("tidb", "\"performance.max-procs\"", "2"),
    ("tidb", "\"new-feature.enable\"", "true"),
    ("tidb", "\"token-limit\"", "1000"),
    ("tidb", "\"path\"", "\"x\""),
];

/// Config keys that are errors: owned by the compiler, or a typo.
const INVALID_CONFIG: &[&str] = &[
    "\"server.addr\"",
    "\"log.levl\"",
    "\"replication.max-replicas\"",
    "\"path\"",
];

impl Shape {
    /// Inputs may be invalid only for one shape in four.
    fn mischief(&self) -> bool {
        self.mischief.is_multiple_of(4)
    }

    /// A choice among `choices`, whose last `invalid` are taken only when
    /// mischief is allowed.
    fn choose<T: Copy>(&self, choices: &[T], invalid: usize, i: u8) -> T {
        let n = if self.mischief() {
            choices.len()
        } else {
            choices.len() - invalid
        };
        choices[usize::from(i) % n]
    }

    fn zone(&self, i: usize) -> usize {
        i % usize::from(self.zones % 4 + 1)
    }

    fn rack(&self, i: usize) -> usize {
        (i / usize::from(self.zones % 4 + 1)) % usize::from(self.racks % 3 + 1)
    }

    /// The location labels: none, host, zone+host, zone+rack+host.
    fn location_labels(&self) -> &'static [&'static str] {
        match self.labels % 4 {
            0 => &[],
            1 => &["host"],
            2 => &["zone", "host"],
            _ => &["zone", "rack", "host"],
        }
    }

    fn cluster_toml(&self) -> String {
        let mut out = String::new();
        let name = pick(&["fz", "db", "tidb-prod", "a1", "x"], self.name);
        let _ = writeln!(out, "[cluster]\nname = \"{name}\"");
        if let Some(ns) = self.namespace {
            let _ = writeln!(
                out,
                "namespace = \"{}\"",
                pick(&["tidb", "db-ns", "prod"], ns)
            );
        }
        let version = pick(&["v8.5.1", "v8.5.0", "v7.5.4", "v8.1.2"], self.version);
        let _ = writeln!(out, "version = \"{version}\"");
        if self.registry {
            out.push_str("registry = \"registry.example.com/pingcap\"\n");
        }
        out.push_str("\n[topology]\n");
        let labels = self.location_labels();
        if !labels.is_empty() {
            let list: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
            let _ = writeln!(out, "location_labels = [{}]", list.join(", "));
            if self.isolation % 2 == 1 {
                let level = labels[usize::from(self.isolation / 2) % labels.len()];
                let _ = writeln!(out, "isolation_level = \"{level}\"");
            }
        }
        if let Some(max) = self.max_replicas {
            let _ = writeln!(out, "max_replicas = {}", max % 5 + 1);
        }
        self.component(&mut out, "pd", &self.pd, PD_REPLICAS);
        self.component(&mut out, "tikv", &self.tikv, TIKV_REPLICAS);
        if let Some(max) = self.tikv_max_per_node {
            let _ = writeln!(out, "max_per_node = {}", max % 4 + 1);
        }
        self.config(&mut out, "pd");
        self.config(&mut out, "tikv");
        let _ = writeln!(
            out,
            "\n[tidb]\nreplicas = {}",
            self.choose(TIDB_REPLICAS, 1, self.tidb_replicas)
        );
        let load_balancer = self.tidb_service.is_some_and(|(kind, _)| kind % 3 == 2);
        if self.root_password_secret || load_balancer {
            out.push_str("root_password_secret = \"tidb-root\"\n");
        }
        self.config(&mut out, "tidb");
        if let Some((kind, annotated)) = self.tidb_service {
            let kind = pick(&["ClusterIP", "NodePort", "LoadBalancer"], kind);
            let _ = writeln!(out, "\n[tidb.service]\ntype = \"{kind}\"");
            if annotated {
                out.push_str("annotations = { \"example.com/lb\" = \"internal\" }\n");
            }
        }
        if let Some(backup) = &self.backup {
            backup_toml(&mut out, backup, self.mischief());
            if let Some(restore) = self.restore {
                let _ = writeln!(
                    out,
                    "\n[[restore]]\nname = \"r{}\"\nfrom = \"{}://fuzz-backups/{}2026-01-01T000000Z\"",
                    restore % 4,
                    ["s3", "gcs", "azure"][usize::from(backup.storage % 3)],
                    if backup.storage % 3 == 0 { "fz/" } else { "" }
                );
            }
        }
        if let Some(branch) = self.gitops {
            out.push_str("\n[gitops]\nrepository = \"https://git.example.com/fuzz/deploy.git\"\n");
            if branch {
                out.push_str("branch = \"release\"\n");
            }
        }
        out
    }

    fn component(&self, out: &mut String, name: &str, c: &Component, counts: &[u8]) {
        let _ = writeln!(
            out,
            "\n[{name}]\nreplicas = {}\nstorage = \"{}\"",
            self.choose(counts, 2, c.replicas),
            self.choose(STORAGE, 2, c.storage)
        );
        // The first directory of a node is an SSD, the others NVMe, when
        // their media is written (see `inventory_toml`).
        if let Some(m) = c
            .media
            .filter(|m| m % 4 == 0 && (self.media || self.mischief()))
        {
            let media = if self.mischief() && m % 8 == 0 {
                "hdd"
            } else if name == "pd" {
                "ssd"
            } else {
                "nvme"
            };
            let _ = writeln!(out, "media = \"{media}\"");
        }
        if let Some((cpu, memory)) = c.requests {
            let (limit_cpu, limit_memory) = c.limits.unwrap_or((0, 0));
            let (cpu, limit_cpu) = request_limit(CPU, cpu, limit_cpu);
            let (memory, limit_memory) = request_limit(MEMORY, memory, limit_memory);
            let _ = writeln!(
                out,
                "requests = {{ cpu = \"{cpu}\", memory = \"{memory}\" }}"
            );
            if c.limits.is_some() {
                let _ = writeln!(
                    out,
                    "limits = {{ cpu = \"{limit_cpu}\", memory = \"{limit_memory}\" }}"
                );
            }
        }
        if let Some(t) = c.toleration {
            let toleration = match t % 3 {
                0 => {
                    "{ key = \"dedicated\", operator = \"Equal\", value = \"tidb\", effect = \"NoSchedule\" }"
                }
                1 => "{ operator = \"Exists\" }",
                _ => {
                    "{ key = \"node.kubernetes.io/unreachable\", operator = \"Exists\", effect = \"NoExecute\", tolerationSeconds = 30 }"
                }
            };
            let _ = writeln!(out, "tolerations = [{toleration}]");
        }
    }

    fn config(&self, out: &mut String, component: &str) {
        let mut keys: Vec<(&str, &str)> = self
            .config
            .iter()
            .map(|(k, _)| CONFIG[usize::from(*k) % CONFIG.len()])
            .filter(|(_, key, _)| self.mischief() || !INVALID_CONFIG.contains(key))
            .filter(|(c, _, _)| *c == component)
            .map(|(_, k, v)| (k, v))
            .collect();
        keys.sort_unstable();
        keys.dedup_by_key(|(k, _)| *k);
        if keys.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n[{component}.config]");
        for (key, value) in keys {
            let _ = writeln!(out, "{key} = {value}");
        }
    }

    /// `node_count` nodes (1 to 16) with `dirs_per_node` directories (1 to
    /// 5), taking their details from `nodes` in turn.
    fn nodes(&self) -> Vec<Node> {
        let dirs = usize::from(self.dirs_per_node % 5) + 1;
        (0..usize::from(self.node_count % 16) + 1)
            .map(|i| {
                let mut node = self
                    .nodes
                    .get(i % self.nodes.len().max(1))
                    .cloned()
                    .unwrap_or(Node {
                        state: 0,
                        allocatable: None,
                        dirs: Vec::new(),
                    });
                node.dirs = (0..dirs)
                    .map(|j| {
                        node.dirs.get(j).cloned().unwrap_or(Dir {
                            capacity: 0,
                            media: None,
                            require_mount: None,
                        })
                    })
                    .collect();
                node
            })
            .collect()
    }

    fn inventory_toml(&self, nodes: &[Option<Node>]) -> String {
        let labels = self.location_labels();
        let mut out = String::new();
        for (i, node) in nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            let _ = writeln!(out, "[[node]]\nname = \"n{i:02}\"");
            let mut written = Vec::new();
            if labels.contains(&"zone") {
                written.push(format!("zone = \"z{}\"", self.zone(i)));
            }
            if labels.contains(&"rack") {
                written.push(format!("rack = \"r{}\"", self.rack(i)));
            }
            if !written.is_empty() {
                let _ = writeln!(out, "labels = {{ {} }}", written.join(", "));
            }
            // At most every other node is not up.
            if node.state % 8 != 0 && i % 2 == 1 {
                let _ = writeln!(out, "state = \"{}\"", pick(STATES, node.state));
            }
            if let Some((cpu, memory)) = node.allocatable.filter(|(c, _)| c % 2 == 0) {
                // Room for several instances, or anything when mischief allows.
                let (cpu, memory) = if self.mischief() {
                    (pick(CPU, cpu), pick(MEMORY, memory))
                } else {
                    ("64", "512Gi")
                };
                let _ = writeln!(
                    out,
                    "allocatable = {{ cpu = \"{cpu}\", memory = \"{memory}\" }}"
                );
            }
            for (j, dir) in node.dirs.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "\n[[node.dir]]\npath = \"/mnt/d{j}\"\ncapacity = \"{}\"",
                    pick(CAPACITIES, dir.capacity)
                );
                if self.media || dir.media.is_some_and(|m| m % 4 == 0) {
                    let _ = writeln!(out, "media = \"{}\"", if j == 0 { "ssd" } else { "nvme" });
                }
                if let Some(r) = dir.require_mount {
                    let _ = writeln!(out, "require_mount = {r}");
                }
            }
            out.push('\n');
        }
        out
    }

    /// The second round: the first inventory with the changes applied, and
    /// the cluster with new replica counts.
    fn changed(&mut self) -> (String, String) {
        let mut nodes: Vec<Option<Node>> = self.nodes().into_iter().map(Some).collect();
        for change in self.changes.iter().take(8) {
            let index = |i: &u8| usize::from(*i) % nodes.len().max(1);
            match change {
                Change::State(i, s) if !nodes.is_empty() => {
                    let i = index(i);
                    if let Some(n) = &mut nodes[i] {
                        n.state = *s;
                    }
                }
                Change::Remove(i) if !nodes.is_empty() => {
                    let i = index(i);
                    nodes[i] = None;
                }
                Change::DropDir(i) if !nodes.is_empty() => {
                    let i = index(i);
                    if let Some(n) = &mut nodes[i] {
                        n.dirs.pop();
                    }
                }
                Change::Add(node) if nodes.len() < 32 => nodes.push(Some(node.clone())),
                Change::TikvReplicas(r) => self.tikv.replicas = *r,
                Change::PdReplicas(r) => self.pd.replicas = *r,
                _ => {}
            }
        }
        (self.cluster_toml(), self.inventory_toml(&nodes))
    }
}

fn backup_toml(out: &mut String, b: &Backup, mischief: bool) {
    let schedule = pick(
        &["0 2 * * *", "*/30 * * * *", "15 3 * * 0", "0 0 1 * *"],
        b.schedule,
    );
    let _ = writeln!(out, "\n[backup]\nschedule = \"{schedule}\"");
    if let Some(keep) = b.keep {
        let _ = writeln!(out, "keep = {}", keep % 30 + 1);
    }
    if let Some(prune) = b.prune {
        let _ = writeln!(
            out,
            "prune = \"{}\"",
            if prune { "job" } else { "lifecycle" }
        );
    }
    if b.credentials % 3 == 1 {
        out.push_str("service_account = \"tidb-backup\"\n");
    }
    let secret = if b.credentials.is_multiple_of(3) || (b.credentials % 3 == 2 && !mischief) {
        "secret = \"backup-credentials\"\n"
    } else {
        ""
    };
    match b.storage % 3 {
        0 => {
            let _ = write!(
                out,
                "[backup.s3]\nbucket = \"fuzz-backups\"\nprefix = \"fz\"\nregion = \"us-east-1\"\n{secret}"
            );
        }
        1 => {
            let _ = write!(out, "[backup.gcs]\nbucket = \"fuzz-backups\"\n{secret}");
        }
        _ => {
            let _ = write!(
                out,
                "[backup.azblob]\ncontainer = \"fuzz-backups\"\naccount = \"fuzzacct\"\n{secret}"
            );
        }
    }
    if b.log {
        out.push_str("[backup.log]\n");
    }
}

/// Compiles twice and checks both runs gave the same bytes.
fn compile_twice(texts: Texts<'_>, options: &Options) -> Option<Compiled> {
    let first = compile_checked(texts, options);
    let second = compile::compile(texts, options);
    match (&first, &second) {
        (Some(a), Ok(b)) => {
            assert_eq!(a.files, b.files, "two compiles of the same texts differ");
            assert_eq!(a.lock.render(), b.lock.render());
        }
        (None, Err(_)) => {}
        _ => panic!("two compiles of the same texts disagree on success"),
    }
    first
}

/// A compile with the lock it wrote changes nothing.
fn check_idempotent(texts: Texts<'_>, compiled: &Compiled, options: &Options) {
    let lock = compiled.lock.render();
    let again = compile::compile(
        Texts {
            lock: Some(&lock),
            ..texts
        },
        options,
    )
    .unwrap_or_else(|d| panic!("a compile with its own lock fails: {d:#?}"));
    assert_eq!(again.lock.render(), lock, "the lock changed on recompile");
    assert_eq!(
        again.files, compiled.files,
        "the output changed on recompile"
    );
}

/// Evidence for the second compile: a store state per TiKV entry of the
/// lock, PD's members, and reclaim Jobs, as the fuzzer picks them.
fn evidence_for(shape: &Shape, texts: Texts<'_>) -> Vec<evidence::File> {
    let (Some(loaded), _) = load::load(texts) else {
        return Vec::new();
    };
    if shape.evidence.is_empty() {
        return Vec::new();
    }
    let names = crate::manifest::Names::new(&loaded.model);
    let mut stores = Vec::new();
    let mut members = Vec::new();
    let mut reclaimed = Vec::new();
    for (i, (entry, pick)) in loaded.lock.entries.iter().zip(&shape.evidence).enumerate() {
        match entry.id.component {
            crate::model::Component::Tikv => {
                let Some(state) = ["Up", "Offline", "Tombstone", ""].get(usize::from(pick % 4))
                else {
                    continue;
                };
                if !state.is_empty() {
                    let address =
                        format!("{}:{}", names.host(entry.id), crate::manifest::TIKV_PORT);
                    stores.push((i as u64 + 1, address, state.to_string()));
                }
            }
            _ if pick % 2 == 0 => members.push(entry.id.to_string()),
            _ => {}
        }
        if pick % 5 == 4 {
            reclaimed.push(entry.id.to_string());
        }
    }
    vec![
        evidence::File::Stores(stores),
        evidence::File::Members(members),
        evidence::File::Reclaimed(reclaimed),
    ]
}

/// The whole pipeline on a structurally valid cluster folder.
pub fn pipeline(data: &[u8]) {
    let Ok(mut shape) = Shape::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let cluster = shape.cluster_toml();
    let nodes: Vec<Option<Node>> = shape.nodes().into_iter().map(Some).collect();
    let inventory = shape.inventory_toml(&nodes);
    let texts = Texts {
        cluster: &cluster,
        inventory: &inventory,
        lock: None,
    };
    let options = Options::default();
    let Some(first) = compile_twice(texts, &options) else {
        return;
    };
    check_idempotent(texts, &first, &options);

    // Day 2: the inventory and replicas change, evidence comes in.
    let lock = first.lock.render();
    let (cluster, inventory) = shape.changed();
    let texts = Texts {
        cluster: &cluster,
        inventory: &inventory,
        lock: Some(&lock),
    };
    let options = Options {
        observed: evidence_for(&shape, texts),
        ..Options::default()
    };
    if let Some(second) = compile_twice(texts, &options) {
        // Without new evidence, a compile with its own lock is stable: the
        // evidence's steps were all taken (docs/fuzzing.md, finding 1).
        check_idempotent(texts, &second, &Options::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_shape_compiles() {
        let component = |replicas| Component {
            replicas,
            storage: 0,
            media: None,
            requests: None,
            limits: None,
            toleration: None,
        };
        let shape = Shape {
            mischief: 1,
            media: false,
            name: 0,
            namespace: None,
            version: 0,
            registry: false,
            labels: 0,
            isolation: 0,
            max_replicas: Some(0),
            pd: component(0),
            tikv: component(1),
            tikv_max_per_node: None,
            tidb_replicas: 0,
            tidb_service: None,
            root_password_secret: false,
            config: Vec::new(),
            backup: None,
            restore: None,
            gitops: None,
            zones: 0,
            racks: 0,
            node_count: 0,
            dirs_per_node: 1,
            nodes: Vec::new(),
            changes: Vec::new(),
            evidence: Vec::new(),
        };
        let cluster = shape.cluster_toml();
        let nodes: Vec<Option<Node>> = shape.nodes().into_iter().map(Some).collect();
        let inventory = shape.inventory_toml(&nodes);
        assert!(cluster.contains("[pd]\nreplicas = 1\n"), "{cluster}");
        assert!(inventory.contains("name = \"n00\""), "{inventory}");
        let texts = Texts {
            cluster: &cluster,
            inventory: &inventory,
            lock: None,
        };
        let compiled = compile_checked(texts, &Options::default())
            .unwrap_or_else(|| panic!("{cluster}\n{inventory}"));
        check_idempotent(texts, &compiled, &Options::default());
    }

    #[test]
    fn mischief_alone_picks_invalid_values() {
        let mut shape = Shape::arbitrary(&mut Unstructured::new(&[0; 64])).unwrap();
        shape.mischief = 1;
        shape.pd.replicas = 6;
        assert!(shape.cluster_toml().contains("[pd]\nreplicas = 1\n"));
        shape.mischief = 0;
        assert!(shape.cluster_toml().contains("[pd]\nreplicas = 0\n"));
    }
}
