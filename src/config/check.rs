//! Checks the keys of `[pd.config]`, `[tikv.config]` and `[tidb.config]`.
//!
//! The checks work on the spanned document, so every diagnostic points at
//! the key as written (a quoted dotted key or a key inside a nested table).

use std::collections::BTreeMap;

use toml::de::DeTable;

use super::reference::Reference;
use super::tree::{self, Leaf};
use crate::diag::{Diagnostic, FileKind};
use crate::model::{Component, Model};

const F: FileKind = FileKind::Cluster;

/// Keys each component takes from its command line or the compiler, which a
/// config file must not change, each with what it is (for the hint): the
/// instance's identity, addresses, data directory and bootstrap arguments (a
/// wrong value splits or strands the cluster), and TiKV's store labels (from
/// the inventory, per instance).
pub fn owned(component: Component) -> &'static [(&'static str, &'static str)] {
    const PD: &[(&str, &str)] = &[
        ("name", "each member's name (its instance id)"),
        (
            "data-dir",
            "the data directory (the instance's local volume)",
        ),
        ("client-urls", "the client listening address"),
        ("peer-urls", "the peer listening address"),
        ("advertise-client-urls", "the advertised client address"),
        ("advertise-peer-urls", "the advertised peer address"),
        ("initial-cluster", "the bootstrap member list"),
        ("initial-cluster-state", "how each member starts"),
        ("join", "the members a new member joins"),
    ];
    const TIKV: &[(&str, &str)] = &[
        ("server.addr", "the listening address"),
        ("server.advertise-addr", "the advertised address"),
        ("server.status-addr", "the status listening address"),
        (
            "server.advertise-status-addr",
            "the advertised status address",
        ),
        (
            "storage.data-dir",
            "the data directory (the instance's local volume)",
        ),
        ("pd.endpoints", "the PD endpoints"),
        ("server.labels", "each store's labels (its node's labels)"),
    ];
    const TIDB: &[(&str, &str)] = &[
        ("store", "the storage engine (tikv)"),
        ("path", "the PD endpoints"),
        ("host", "the listening address"),
        ("port", "the MySQL port"),
        ("advertise-address", "the advertised address"),
        ("status.status-port", "the status port"),
        ("status.status-host", "the status listening address"),
    ];
    match component {
        Component::Pd => PD,
        Component::Tikv => TIKV,
        Component::Tidb => TIDB,
    }
}

/// PD keys that `[topology]` sets, with the `[topology]` key to use instead.
pub const PD_TOPOLOGY: &[(&str, &str)] = &[
    ("replication.location-labels", "location_labels"),
    ("replication.isolation-level", "isolation_level"),
    ("replication.max-replicas", "max_replicas"),
];

/// The `[topology]` key that owns `path` in PD's config, if any.
pub fn topology_key(component: Component, path: &[String]) -> Option<&'static str> {
    if component != Component::Pd {
        return None;
    }
    let joined = path.join(".");
    PD_TOPOLOGY
        .iter()
        .find(|(key, _)| *key == joined)
        .map(|(_, topology)| *topology)
}

/// What the compiler-owned key that `path` is, or lies below, is.
pub fn owned_key(component: Component, path: &[String]) -> Option<&'static str> {
    owned(component).iter().find_map(|(key, what)| {
        let key: Vec<&str> = key.split('.').collect();
        let below = path.len() >= key.len() && path.iter().zip(&key).all(|(a, b)| a == b);
        below.then_some(*what)
    })
}

pub fn check(model: &Model, cluster_text: &str, strict: bool) -> Vec<Diagnostic> {
    let (root, _) = DeTable::parse_recoverable(cluster_text);
    let mut diagnostics = Vec::new();
    for component in [Component::Pd, Component::Tikv, Component::Tidb] {
        let Some(table) = tree::config_table(root.get_ref(), component.as_str()) else {
            continue;
        };
        let checker = Checker {
            component,
            reference: Reference::of(component),
            text: cluster_text,
            version: &model.cluster.version,
            strict,
        };
        checker.check(table, &mut diagnostics);
    }
    crate::diag::sort(&mut diagnostics);
    diagnostics
}

struct Checker<'a> {
    component: Component,
    reference: &'static Reference,
    text: &'a str,
    version: &'a crate::model::Version,
    strict: bool,
}

impl Checker<'_> {
    fn table(&self) -> String {
        format!("[{}.config]", self.component.as_str())
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// Where the component's documentation lists its config keys for the
    /// cluster's release.
    fn docs(&self) -> String {
        format!(
            "https://docs.pingcap.com/tidb/v{}.{}/{}-configuration-file",
            self.version.major,
            self.version.minor,
            self.component.as_str()
        )
    }

    fn check(&self, table: &DeTable<'_>, diagnostics: &mut Vec<Diagnostic>) {
        let mut leaves = tree::leaves_spanned(self.reference, table);
        leaves.sort_by_key(|leaf| (leaf.span.start, leaf.span.end));
        // The first place each path is set; a second one is a conflict.
        let mut first: BTreeMap<&[String], &Leaf<()>> = BTreeMap::new();
        for leaf in &leaves {
            match first.get(leaf.path.as_slice()) {
                Some(earlier) => diagnostics.push(self.twice(leaf, earlier)),
                None => {
                    first.insert(&leaf.path, leaf);
                }
            }
        }
        // A path that holds a value and also has values below it.
        let paths: Vec<&[String]> = first.keys().copied().collect();
        for (i, path) in paths.iter().enumerate() {
            // Sorted by segments, the paths below `path` come right after it.
            if let Some(below) = paths.get(i + 1).filter(|other| other.starts_with(path)) {
                diagnostics.push(self.value_and_table(first[path], first[below]));
                continue;
            }
            if let Some(d) = self.key(first[path]) {
                diagnostics.push(d);
            }
        }
    }

    fn twice(&self, leaf: &Leaf<()>, earlier: &Leaf<()>) -> Diagnostic {
        let key = leaf.path.join(".");
        Diagnostic::error(format!("`{key}` is set twice in {}", self.table()))
            .at(F, leaf.span.clone())
            .label("set again here")
            .note(format!(
                "first set on line {}",
                self.line_of(earlier.span.start)
            ))
            .hint("a quoted dotted key and a nested table name the same key; keep one of the two")
    }

    fn value_and_table(&self, value: &Leaf<()>, below: &Leaf<()>) -> Diagnostic {
        let key = value.path.join(".");
        Diagnostic::error(format!(
            "`{key}` in {} is both a value and a table",
            self.table()
        ))
        .at(F, value.span.clone())
        .label("a value here")
        .note(format!(
            "`{}` on line {} puts a key inside it",
            below.path.join("."),
            self.line_of(below.span.start)
        ))
        .hint("keep the value or the keys below it, not both")
    }

    /// The diagnostic for one key, if it needs one.
    fn key(&self, leaf: &Leaf<()>) -> Option<Diagnostic> {
        let key = leaf.path.join(".");
        let title = self.component.title();
        let table = self.table();
        let at = |d: Diagnostic| d.at(F, leaf.span.clone());
        if leaf.path.iter().any(String::is_empty) {
            return Some(
                at(Diagnostic::error(format!(
                    "config key `{key}` in {table} has an empty part"
                )))
                .label("empty part")
                .hint("write a dotted key as section names and a key joined by single dots"),
            );
        }
        if let Some(topology) = topology_key(self.component, &leaf.path) {
            return Some(
                at(Diagnostic::error(format!(
                    "`{key}` is set by [topology], not by {table}"
                )))
                .label("set by [topology]")
                .hint(format!(
                    "remove it and set `{topology}` in [topology]; the compiler passes it to PD"
                )),
            );
        }
        if let Some(what) = owned_key(self.component, &leaf.path) {
            return Some(at(Diagnostic::error(format!(
                "`{key}` in {table} is set by tidb-gitops"
            )))
            .label("set by the compiler")
            .hint(format!(
                "remove it: the compiler sets {what} from cluster.toml and the inventory, and another value would break the cluster"
            )));
        }
        if self.reference.knows(&leaf.path) {
            return None;
        }
        if self.reference.is_section(&leaf.path) {
            let example = self
                .reference
                .first_key_below(&leaf.path)
                .map(|k| format!(", such as `{k}`"))
                .unwrap_or_default();
            return Some(
                at(Diagnostic::error(format!(
                    "`{key}` is a table of {title}'s config, not a value"
                )))
                .label("a table")
                .hint(format!("set the keys inside it{example}")),
            );
        }
        if let Some(near) = self.reference.suggest(&leaf.path) {
            return Some(
                at(Diagnostic::error(format!(
                    "unknown {title} config key `{key}` in {table}"
                )))
                .label("unknown key")
                .hint(format!("did you mean `{near}`?")),
            );
        }
        let version = &self.version.text;
        let docs = self.docs();
        if self.strict {
            return Some(at(Diagnostic::error(format!(
                "unknown {title} config key `{key}` in {table}"
            )))
            .label("not in the references")
            .hint(format!(
                "--strict-config accepts only keys the references know; remove it, or check that {title} {version} accepts it ({docs}) and compile without --strict-config"
            )));
        }
        Some(at(Diagnostic::warning(format!(
            "{title} config key `{key}` is not in the references; it is passed through as written"
        )))
        .label("not in the references")
        .hint(format!(
            "check that {title} {version} accepts it ({docs}); --strict-config makes this an error"
        )))
    }
}
