//! Renders `pd.toml`, `tikv.toml` and `tidb.toml`: the compiler's own
//! settings, then the user's config table on top (the user's value wins),
//! as one table printed with sorted keys and `[a.b]` sections under a header
//! that says what the compiler set and why.

use minijinja::{AutoEscape, Environment, Value, context};

use super::check::{owned_key, topology_key};
use super::reference::Reference;
use super::tree::{self, Tree};
use crate::model::{Component, Model, Resources};
use crate::quantity::Quantity;

use super::Configs;

const TEMPLATES: [(&str, &str); 3] = [
    ("pd.toml", include_str!("templates/pd.toml.j2")),
    ("tikv.toml", include_str!("templates/tikv.toml.j2")),
    ("tidb.toml", include_str!("templates/tidb.toml.j2")),
];

/// TiKV's own block cache ratio (45% of the memory it detects), applied to
/// the memory Kubernetes gives the pod.
const BLOCK_CACHE_PERCENT: u128 = 45;

/// TiDB's default memory limit ratio (80% of the memory it detects).
const TIDB_MEMORY_PERCENT: u128 = 80;

/// Seconds TiDB keeps serving after SIGTERM while its `/status` answers 500,
/// so that Services and load balancers stop sending new connections before
/// it closes its listeners.
const TIDB_GRACEFUL_WAIT_SECONDS: i64 = 10;

const MIB: u128 = 1 << 20;

/// A setting the compiler makes, shown in the file's header.
struct Setting {
    key: &'static str,
    /// `None` when there was nothing to compute it from.
    value: Option<toml::Value>,
    why: String,
}

pub fn render(model: &Model) -> Configs {
    let cluster = &model.cluster;
    Configs {
        pd: component(Component::Pd, pd_settings(model), &cluster.pd.config),
        tikv: component(Component::Tikv, tikv_settings(model), &cluster.tikv.config),
        tidb: component(Component::Tidb, tidb_settings(model), &cluster.tidb.config),
    }
}

fn pd_settings(model: &Model) -> Vec<Setting> {
    let topology = &model.cluster.topology;
    // `host` is the finest domain of the placement even when the user did not
    // list it; PD isolates replicas by host only when the user asked for it.
    let labels: Vec<toml::Value> = topology
        .location_labels
        .iter()
        .filter(|label| topology.host_listed || label.as_str() != "host")
        .map(|label| toml::Value::String(label.clone()))
        .collect();
    let mut settings = vec![Setting {
        key: "replication.location-labels",
        value: Some(toml::Value::Array(labels)),
        why: if topology.host_listed {
            "location_labels".to_string()
        } else {
            "location_labels (host is not listed there, so PD does not isolate by it)".to_string()
        },
    }];
    if let Some(level) = &topology.isolation_level {
        settings.push(Setting {
            key: "replication.isolation-level",
            value: Some(toml::Value::String(level.clone())),
            why: "isolation_level".to_string(),
        });
    }
    settings.push(Setting {
        key: "replication.max-replicas",
        value: Some(toml::Value::Integer(
            i64::try_from(topology.max_replicas).unwrap_or(i64::MAX),
        )),
        why: "max_replicas".to_string(),
    });
    settings
}

/// The memory the pod can count on: its limit, else its request.
fn pod_memory<'r>(
    component: &str,
    limits: &'r Resources,
    requests: &'r Resources,
) -> Option<(String, &'r Quantity)> {
    if let Some(limit) = limits.get("memory") {
        return Some((format!("{component}.limits.memory"), limit));
    }
    requests
        .get("memory")
        .map(|request| (format!("{component}.requests.memory"), request))
}

/// `percent`% of a quantity of bytes, rounded down to whole bytes.
fn share_of_bytes(quantity: &Quantity, percent: u128) -> u128 {
    let whole_bytes = (quantity.nanos() / 1_000_000_000).unsigned_abs();
    whole_bytes / 100 * percent + whole_bytes % 100 * percent / 100
}

fn tikv_settings(model: &Model) -> Vec<Setting> {
    let tikv = &model.cluster.tikv;
    // TiKV takes 45% of the memory it detects. It does read a container's
    // memory limit, but without one it sees the whole node, and a pod with
    // only a request would take a block cache sized for the node. Writing the
    // value also puts it where a reviewer sees it.
    let (value, why) = match pod_memory("tikv", &tikv.limits, &tikv.requests) {
        Some((source, memory)) => {
            let mib = share_of_bytes(memory, BLOCK_CACHE_PERCENT) / MIB;
            if mib == 0 {
                (
                    None,
                    format!("not set: {source} ({memory}) is too small to size it"),
                )
            } else {
                (
                    Some(toml::Value::String(format!("{mib}MiB"))),
                    format!("{BLOCK_CACHE_PERCENT}% of {source} ({memory}), rounded down to MiB"),
                )
            }
        }
        None => (
            None,
            format!(
                "not set: [tikv] gives no memory limit or request, so TiKV takes {BLOCK_CACHE_PERCENT}% of the memory it detects (the node's, without a limit)"
            ),
        ),
    };
    vec![Setting {
        key: "storage.block-cache.capacity",
        value,
        why,
    }]
}

fn tidb_settings(model: &Model) -> Vec<Setting> {
    let tidb = &model.cluster.tidb;
    let graceful = Setting {
        key: "graceful-wait-before-shutdown",
        value: Some(toml::Value::Integer(TIDB_GRACEFUL_WAIT_SECONDS)),
        why: "seconds from SIGTERM (when /status turns 500) to closing the listeners, so clients move away first".to_string(),
    };
    // The instance's memory quota. `performance.server-memory-quota` (bytes,
    // in the references) is what TiDB's config file offers; from v6.5 the
    // `tidb_server_memory_limit` variable takes over, and its default (80%
    // of the memory TiDB detects, the container's limit under cgroups)
    // matches this value. Whether v8.5 still reads the deprecated key is
    // unverified; writing it keeps the limit explicit in review either way.
    let (value, why) = match pod_memory("tidb", &tidb.limits, &tidb.requests) {
        Some((source, memory)) => {
            let bytes = share_of_bytes(memory, TIDB_MEMORY_PERCENT);
            if bytes == 0 {
                (
                    None,
                    format!("not set: {source} ({memory}) is too small to size it"),
                )
            } else {
                (
                    Some(toml::Value::Integer(
                        i64::try_from(bytes).unwrap_or(i64::MAX),
                    )),
                    format!(
                        "{TIDB_MEMORY_PERCENT}% of {source} ({memory}) in bytes (deprecated since v6.5 in favour of the tidb_server_memory_limit variable, whose default matches; unverified whether v8.5 reads it)"
                    ),
                )
            }
        }
        None => (
            None,
            format!(
                "not set: [tidb] gives no memory limit or request, so TiDB takes {TIDB_MEMORY_PERCENT}% of the memory it detects"
            ),
        ),
    };
    // The default slow-query file is relative to TiDB's working directory,
    // the read-only root of the image; the pod mounts a writable folder here.
    let slow_log = Setting {
        key: "log.slow-query-file",
        value: Some(toml::Value::String(TIDB_SLOW_LOG.to_string())),
        why: "the default is relative to the read-only root filesystem; the pod mounts an emptyDir at /var/log/tidb".to_string(),
    };
    vec![
        graceful,
        slow_log,
        Setting {
            key: "performance.server-memory-quota",
            value,
            why,
        },
    ]
}

/// Where TiDB writes its slow-query log (an emptyDir in the pod).
pub const TIDB_SLOW_LOG: &str = "/var/log/tidb/slow.log";

fn component(component: Component, settings: Vec<Setting>, config: &toml::Table) -> String {
    let reference = Reference::of(component);
    // Keys the compiler owns are refused by `check`; should one reach this
    // far, the compiler's own value (a flag or a `[topology]` setting) stands.
    let user: Vec<_> = tree::leaves(reference, config)
        .into_iter()
        .filter(|leaf| {
            owned_key(component, &leaf.path).is_none()
                && topology_key(component, &leaf.path).is_none()
        })
        .collect();
    let mut user_tree = Tree::default();
    for leaf in &user {
        user_tree.set(&leaf.path, leaf.value.clone());
    }
    let mut merged = Tree::default();
    let mut header = Vec::new();
    let section = format!("[{}.config]", component.as_str());
    for setting in settings {
        let path: Vec<String> = setting.key.split('.').map(String::from).collect();
        let (value, why) = if user_tree.contains(&path) {
            (None, format!("set in {section}"))
        } else {
            if let Some(value) = &setting.value {
                merged.set(&path, value.clone());
            }
            (setting.value.map(|v| v.to_string()), setting.why)
        };
        header.push(context! { key => setting.key, value => value, why => why });
    }
    for leaf in user {
        merged.set(&leaf.path, leaf.value);
    }
    let body =
        toml::to_string(&merged.into_table()).expect("a table of TOML values always serializes");
    let name = format!("{}.toml", component.as_str());
    let mut text = environment()
        .get_template(&name)
        .and_then(|t| t.render(context! { settings => Value::from(header), body => body }))
        .expect("the embedded config templates render");
    while text.ends_with("\n\n") {
        text.pop();
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .expect("the embedded config templates parse");
    }
    env
}
