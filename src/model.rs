//! The validated domain model: what `validate` produces and every later stage
//! consumes.
//!
//! Plain Rust with newtypes; no serde here. A value of these types has passed
//! every check of DESIGN §2 (names, quantities, paths, labels), so the solver
//! and renderers never re-check input. Spans are kept only where a later stage
//! may need to point back at the user's file (for example the `replicas` line
//! that a placement cannot satisfy).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

pub use crate::input::{NodeState, ServiceType, Toleration};
use crate::quantity::Quantity;

/// A component of a TiDB cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Pd,
    Tikv,
    Tidb,
}

impl Component {
    /// The components that own a directory, in the order they are placed.
    pub const STATEFUL: [Component; 2] = [Component::Pd, Component::Tikv];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Pd => "pd",
            Component::Tikv => "tikv",
            Component::Tidb => "tidb",
        }
    }

    /// The name used in messages.
    pub fn title(self) -> &'static str {
        match self {
            Component::Pd => "PD",
            Component::Tikv => "TiKV",
            Component::Tidb => "TiDB",
        }
    }

    pub fn parse(s: &str) -> Option<Component> {
        match s {
            "pd" => Some(Component::Pd),
            "tikv" => Some(Component::Tikv),
            "tidb" => Some(Component::Tidb),
            _ => None,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's `kubernetes.io/hostname` label value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(pub String);

/// An absolute, normalized host directory path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirPath(pub String);

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for DirPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A PD or TiKV instance: `tikv-12`. Ordinals are never reused within a
/// component, so an id names one data directory for the cluster's whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    pub component: Component,
    pub ordinal: u32,
}

impl InstanceId {
    pub fn new(component: Component, ordinal: u32) -> InstanceId {
        InstanceId { component, ordinal }
    }

    /// Parses `pd-3` or `tikv-12`.
    pub fn parse(s: &str) -> Option<InstanceId> {
        let (component, ordinal) = s.rsplit_once('-')?;
        let component = Component::parse(component)?;
        if component == Component::Tidb
            || ordinal.is_empty()
            || (ordinal.len() > 1 && ordinal.starts_with('0'))
        {
            return None;
        }
        Some(InstanceId {
            component,
            ordinal: ordinal.parse().ok()?,
        })
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.component, self.ordinal)
    }
}

/// Resource name to quantity (`cpu`, `memory`, ...).
pub type Resources = BTreeMap<String, Quantity>;

/// The whole validated input: the cluster and the inventory.
#[derive(Clone, Debug)]
pub struct Model {
    pub cluster: Cluster,
    pub inventory: Inventory,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub name: String,
    pub namespace: String,
    pub version: Version,
    pub registry: String,
    pub topology: Topology,
    pub pd: Stateful,
    pub tikv: Stateful,
    pub tidb: Tidb,
    pub backup: Option<crate::input::BackupSection>,
    pub restores: Vec<crate::input::RestoreEntry>,
    pub acknowledgements: Vec<Acknowledgement>,
    /// Gone instances whose directories are declared free by hand.
    pub reclaimed: Vec<InstanceId>,
    pub gitops: Gitops,
}

/// Where Flux and Argo CD fetch the output from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gitops {
    /// `None` when `[gitops] repository` is not set.
    pub repository: Option<String>,
    pub branch: String,
}

impl Cluster {
    pub fn stateful(&self, component: Component) -> &Stateful {
        match component {
            Component::Pd => &self.pd,
            Component::Tikv => &self.tikv,
            Component::Tidb => panic!("TiDB owns no directory"),
        }
    }
}

/// A release such as `v8.5.1`, ordered by its numbers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Anything after the numbers (`-beta.1`), as written.
    pub suffix: String,
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct Topology {
    /// Label keys, coarse to fine. Always ends with `host`: the node name is
    /// the finest domain even when the user did not list it.
    pub location_labels: Vec<String>,
    /// Whether `host` was listed by the user (it is then passed to PD).
    pub host_listed: bool,
    pub isolation_level: Option<String>,
    pub isolation_span: Range<usize>,
    pub max_replicas: u64,
}

impl Topology {
    /// The failure domain at the isolation level of a node with `labels`,
    /// named by its path from the coarsest label (`zone=a/rack=r1`): rack
    /// `r1` of zone `a` and rack `r1` of zone `b` are different racks, as
    /// PD sees them. `None` without an isolation level or when a label is
    /// missing.
    pub fn domain(&self, labels: &BTreeMap<String, String>) -> Option<String> {
        let level = self.isolation_level.as_ref()?;
        let mut path = String::new();
        for key in &self.location_labels {
            let value = labels.get(key)?;
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(key);
            path.push('=');
            path.push_str(value);
            if key == level {
                return Some(path);
            }
        }
        None
    }
}

/// A component that owns local directories: PD or TiKV.
#[derive(Clone, Debug)]
pub struct Stateful {
    pub component: Component,
    pub replicas: u32,
    pub replicas_span: Range<usize>,
    pub storage: Quantity,
    pub media: Option<String>,
    pub max_per_node: Option<u32>,
    pub requests: Resources,
    pub limits: Resources,
    pub tolerations: Vec<Toleration>,
    pub config: toml::Table,
}

#[derive(Clone, Debug)]
pub struct Tidb {
    pub replicas: u32,
    pub requests: Resources,
    pub limits: Resources,
    pub tolerations: Vec<Toleration>,
    pub service_type: ServiceType,
    pub service_annotations: BTreeMap<String, String>,
    pub root_password_secret: Option<String>,
    pub config: toml::Table,
}

#[derive(Clone, Debug)]
pub struct Acknowledgement {
    pub change: String,
    pub reason: String,
}

/// The nodes, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub nodes: Vec<Node>,
}

impl Inventory {
    pub fn node(&self, name: &NodeName) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: NodeName,
    /// Location labels, `host` included (the node name).
    pub labels: BTreeMap<String, String>,
    pub state: NodeState,
    pub allocatable: Option<Resources>,
    /// Sorted by path.
    pub dirs: Vec<Dir>,
    pub span: Range<usize>,
}

impl Node {
    pub fn dir(&self, path: &DirPath) -> Option<&Dir> {
        self.dirs
            .binary_search_by(|d| d.path.cmp(path))
            .ok()
            .map(|i| &self.dirs[i])
    }
}

#[derive(Clone, Debug)]
pub struct Dir {
    pub path: DirPath,
    pub capacity: Quantity,
    pub media: Option<String>,
    pub require_mount: bool,
    pub span: Range<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_round_trip() {
        for s in ["pd-0", "tikv-12", "tikv-4294967295"] {
            assert_eq!(InstanceId::parse(s).unwrap().to_string(), s);
        }
        for s in [
            "tidb-0",
            "tikv-",
            "tikv-01",
            "tikv--1",
            "pd0",
            "tikv-x",
            "tikv-4294967296",
        ] {
            assert_eq!(InstanceId::parse(s), None, "{s}");
        }
    }
}
