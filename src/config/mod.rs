//! Component configuration: checking the user's `[pd.config]`,
//! `[tikv.config]` and `[tidb.config]` tables, and rendering `pd.toml`,
//! `tikv.toml` and `tidb.toml` from them and the compiler's own settings.
//!
//! - `reference`: the keys each component is known to accept, generated from
//!   the upstream config templates and documentation by
//!   `scripts/gen-config-keys.py`.
//! - `tree`: dotted keys and nested tables to key paths, and back to one
//!   merged table.
//! - `check`: diagnostics for typos, unknown keys, keys the compiler owns and
//!   keys given twice.
//! - `render`: the compiler's defaults plus the user's table, through the
//!   templates in `templates/`.

mod check;
mod reference;
mod render;
mod tree;

use crate::diag::Diagnostic;
use crate::model::Model;

/// The rendered `pd.toml`, `tikv.toml` and `tidb.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configs {
    pub pd: String,
    pub tikv: String,
    pub tidb: String,
}

/// Checks the keys of `[pd.config]`, `[tikv.config]` and `[tidb.config]`;
/// returns diagnostics (errors and warnings).
///
/// `cluster_text` is the text of cluster.toml the model was read from: the
/// diagnostics point at the keys in it. With `strict`, a key the references
/// do not know is an error instead of a warning.
pub fn check(model: &Model, cluster_text: &str, strict: bool) -> Vec<Diagnostic> {
    check::check(model, cluster_text, strict)
}

/// Renders `pd.toml`, `tikv.toml` and `tidb.toml`. Pure and deterministic
/// (the same bytes on every run).
pub fn render(model: &Model) -> Configs {
    render::render(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{FileKind, Severity, Sources};
    use crate::load::{Texts, load};

    const INVENTORY: &str = r#"
[[node]]
name = "n1"
labels = { zone = "a" }
[[node.dir]]
path = "/mnt/a"
capacity = "100Gi"
[[node.dir]]
path = "/mnt/b"
capacity = "100Gi"
"#;

    /// A cluster.toml with `extra` appended (config tables go there).
    fn cluster(topology: &str, resources: &str, extra: &str) -> String {
        format!(
            r#"[cluster]
name = "c"
version = "v8.5.1"
[topology]
{topology}
[pd]
replicas = 1
storage = "1Gi"
[tikv]
replicas = 1
storage = "1Gi"
{resources}
[tidb]
replicas = 1
{resources}
{extra}"#
        )
    }

    fn model(text: &str) -> Model {
        let (loaded, diagnostics) = load(Texts {
            cluster: text,
            inventory: INVENTORY,
            lock: None,
        });
        loaded
            .unwrap_or_else(|| panic!("the test input loads: {diagnostics:?}"))
            .model
    }

    fn checked(extra: &str, strict: bool) -> (String, Vec<Diagnostic>) {
        let text = cluster("max_replicas = 1", "", extra);
        let diagnostics = check(&model(&text), &text, strict);
        for d in &diagnostics {
            assert!(d.hint.is_some(), "every diagnostic has a hint: {d:?}");
            assert!(!d.message.ends_with('.'), "{d:?}");
            assert_eq!(d.file, Some(FileKind::Cluster), "{d:?}");
        }
        (text, diagnostics)
    }

    /// The 1-based line and column a diagnostic points at.
    fn position(text: &str, d: &Diagnostic) -> (usize, usize) {
        let mut sources = Sources::default();
        sources.add(FileKind::Cluster, "cluster.toml", text);
        let span = d.span.clone().expect("the diagnostic points at a key");
        sources.line_col(FileKind::Cluster, span.start).unwrap()
    }

    fn parse(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_else(|e| panic!("invalid TOML: {e}\n{text}"))
    }

    fn get<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
        let mut parts = key.split('.');
        let mut value = table.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    #[test]
    fn known_keys_in_either_form_pass() {
        let (_, diagnostics) = checked(
            r#"[pd.config]
"schedule.leader-schedule-limit" = 4
[pd.config.log]
level = "info"
[tikv.config]
"storage.block-cache.capacity" = "8GiB"
[tikv.config.raftstore]
apply-pool-size = 4
[tikv.config.security.encryption.master-key]
type = "kms"
key-id = "abc"
[tidb.config]
"log.level" = "info"
[tidb.config.labels]
"topology.kubernetes.io/zone" = "a"
"#,
            true,
        );
        assert_eq!(diagnostics, vec![]);
    }

    #[test]
    fn a_typo_is_an_error_at_its_key_naming_the_known_key() {
        let (text, diagnostics) = checked(
            "[tikv.config]\n\"storage.block-cache.capacty\" = \"8GiB\"\n[tikv.config.raftstore]\napply-pool-sise = 4\n",
            false,
        );
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        let d = &diagnostics
            .iter()
            .find(|d| d.message.contains("capacty"))
            .unwrap();
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(
            d.message,
            "unknown TiKV config key `storage.block-cache.capacty` in [tikv.config]"
        );
        assert_eq!(
            d.hint.as_deref(),
            Some("did you mean `storage.block-cache.capacity`?")
        );
        let line = text.lines().position(|l| l.contains("capacty")).unwrap() + 1;
        assert_eq!(position(&text, d), (line, 1));
        assert_eq!(
            &text[d.span.clone().unwrap()],
            "\"storage.block-cache.capacty\""
        );
        let d = &diagnostics
            .iter()
            .find(|d| d.message.contains("sise"))
            .unwrap();
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(
            d.hint.as_deref(),
            Some("did you mean `raftstore.apply-pool-size`?")
        );
        let line = text.lines().position(|l| l.contains("sise")).unwrap() + 1;
        assert_eq!(position(&text, d), (line, 1));
    }

    #[test]
    fn an_unknown_key_is_a_warning_or_with_strict_an_error() {
        let extra = "[pd.config]\n\"replication-mode.replication-mode\" = \"dr-auto-sync\"\n";
        let (text, diagnostics) = checked(extra, false);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let d = &diagnostics[0];
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(
            d.message,
            "PD config key `replication-mode.replication-mode` is not in the references; it is passed through as written"
        );
        let hint = d.hint.as_deref().unwrap();
        assert!(hint.contains("PD v8.5.1"), "{hint}");
        assert!(
            hint.contains("https://docs.pingcap.com/tidb/v8.5/pd-configuration-file"),
            "{hint}"
        );
        assert!(hint.contains("--strict-config"), "{hint}");
        let line = text
            .lines()
            .position(|l| l.contains("replication-mode"))
            .unwrap()
            + 1;
        assert_eq!(position(&text, d).0, line);

        let (_, diagnostics) = checked(extra, true);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].severity, Severity::Error);
        assert!(
            diagnostics[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("--strict-config")
        );
    }

    #[test]
    fn keys_the_compiler_sets_are_errors() {
        let (_, diagnostics) = checked(
            r#"[pd.config]
name = "x"
join = "http://a:2379"
[tikv.config]
"server.advertise-addr" = "a:20160"
[tikv.config.server.labels]
zone = "a"
[tidb.config]
port = 4001
[tidb.config.status]
status-port = 10081
"#,
            false,
        );
        let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`name` in [pd.config] is set by tidb-gitops",
                "`join` in [pd.config] is set by tidb-gitops",
                "`server.advertise-addr` in [tikv.config] is set by tidb-gitops",
                "`server.labels.zone` in [tikv.config] is set by tidb-gitops",
                "`port` in [tidb.config] is set by tidb-gitops",
                "`status.status-port` in [tidb.config] is set by tidb-gitops",
            ]
        );
        assert!(diagnostics.iter().all(Diagnostic::is_error));
        assert!(
            diagnostics[3]
                .hint
                .as_deref()
                .unwrap()
                .contains("inventory"),
            "{:?}",
            diagnostics[3]
        );
    }

    #[test]
    fn pd_replication_keys_point_to_topology() {
        let (_, diagnostics) = checked(
            "[pd.config.replication]\nmax-replicas = 5\nlocation-labels = [\"zone\"]\nstrictly-match-label = true\n",
            false,
        );
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        let hints: Vec<&str> = diagnostics
            .iter()
            .filter_map(|d| d.hint.as_deref())
            .collect();
        assert!(
            hints
                .iter()
                .any(|h| h.contains("`max_replicas` in [topology]")),
            "{hints:?}"
        );
        assert!(
            hints
                .iter()
                .any(|h| h.contains("`location_labels` in [topology]")),
            "{hints:?}"
        );
        assert!(
            diagnostics
                .iter()
                .all(|d| d.is_error() && d.message.contains("[topology]"))
        );
    }

    #[test]
    fn the_same_key_dotted_and_nested_is_an_error_at_the_second() {
        let (text, diagnostics) = checked(
            "[tikv.config]\n\"storage.block-cache.capacity\" = \"8GiB\"\n[tikv.config.storage.block-cache]\ncapacity = \"4GiB\"\n",
            false,
        );
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let d = &diagnostics[0];
        assert!(d.is_error());
        assert_eq!(
            d.message,
            "`storage.block-cache.capacity` is set twice in [tikv.config]"
        );
        let line = |prefix: &str| text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1;
        assert_eq!(position(&text, d).0, line("capacity"));
        assert_eq!(
            d.notes,
            [format!("first set on line {}", line("\"storage"))]
        );
    }

    #[test]
    fn a_value_and_a_table_at_one_key_is_an_error() {
        let (_, diagnostics) = checked(
            "[tikv.config]\n\"storage.block-cache\" = \"8GiB\"\n\"storage.block-cache.capacity\" = \"8GiB\"\n",
            false,
        );
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(
            diagnostics[0].message,
            "`storage.block-cache` in [tikv.config] is both a value and a table"
        );
        let (_, diagnostics) =
            checked("[tikv.config]\n\"storage.block-cache\" = \"8GiB\"\n", false);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(
            diagnostics[0].message,
            "`storage.block-cache` is a table of TiKV's config, not a value"
        );
        assert!(
            diagnostics[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("storage.block-cache.capacity")
        );
    }

    fn rendered(topology: &str, resources: &str, extra: &str) -> Configs {
        let configs = render(&model(&cluster(topology, resources, extra)));
        for text in [&configs.pd, &configs.tikv, &configs.tidb] {
            parse(text);
            assert!(text.starts_with("# @generated by tidb-gitops"), "{text}");
            assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{text:?}");
        }
        configs
    }

    #[test]
    fn every_rendered_file_is_valid_toml_and_deterministic() {
        let extra = r#"[pd.config]
"schedule.leader-schedule-limit" = 4
[pd.config.log.file]
max-days = 3
[tikv.config]
"rocksdb.defaultcf.compression-per-level" = ["no", "no", "lz4", "lz4", "lz4", "zstd", "zstd"]
"quote\"d" = "a\nb"
[tidb.config]
"log.level" = "warn"
[[tidb.config.extra]]
a = 1
"#;
        let a = rendered(
            "location_labels = [\"zone\", \"host\"]",
            "limits = { memory = \"4Gi\" }",
            extra,
        );
        let b = rendered(
            "location_labels = [\"zone\", \"host\"]",
            "limits = { memory = \"4Gi\" }",
            extra,
        );
        assert_eq!(a, b);
        let tikv = parse(&a.tikv);
        assert_eq!(
            get(&tikv, "quote\"d").and_then(|v| v.as_str()),
            Some("a\nb")
        );
        assert_eq!(
            get(&tikv, "rocksdb.defaultcf.compression-per-level")
                .and_then(|v| v.as_array())
                .map(Vec::len),
            Some(7)
        );
        let tidb = parse(&a.tidb);
        assert_eq!(
            get(&tidb, "extra").and_then(|v| v.as_array()).map(Vec::len),
            Some(1)
        );
        // Nested tables are sections, not inline tables.
        assert!(a.pd.contains("\n[log.file]\nmax-days = 3\n"), "{}", a.pd);
        assert!(
            a.pd.contains("\n[schedule]\nleader-schedule-limit = 4\n"),
            "{}",
            a.pd
        );
    }

    #[test]
    fn dotted_and_nested_user_keys_merge_and_user_values_win() {
        let configs = rendered(
            "",
            "limits = { memory = \"32Gi\" }",
            r#"[tikv.config]
"storage.block-cache.capacity" = "8GiB"
[tikv.config.storage]
reserve-space = "0GB"
[tikv.config.storage.flow-control]
enable = false
[tidb.config]
graceful-wait-before-shutdown = 30
"#,
        );
        let tikv = parse(&configs.tikv);
        let storage = get(&tikv, "storage").and_then(|v| v.as_table()).unwrap();
        assert_eq!(
            storage.keys().map(String::as_str).collect::<Vec<_>>(),
            ["block-cache", "flow-control", "reserve-space"]
        );
        assert_eq!(
            get(&tikv, "storage.block-cache.capacity").and_then(|v| v.as_str()),
            Some("8GiB")
        );
        assert!(
            configs
                .tikv
                .contains("storage.block-cache.capacity: set in [tikv.config]"),
            "{}",
            configs.tikv
        );
        let tidb = parse(&configs.tidb);
        assert_eq!(
            get(&tidb, "graceful-wait-before-shutdown").and_then(|v| v.as_integer()),
            Some(30)
        );
    }

    #[test]
    fn block_cache_and_tidb_memory_limit_are_sized_from_memory() {
        // 45% of 32Gi is 14745.6MiB, rounded down; 80% of 32Gi in bytes.
        let configs = rendered(
            "",
            "limits = { memory = \"32Gi\" }\nrequests = { memory = \"8Gi\" }",
            "",
        );
        let tikv = parse(&configs.tikv);
        assert_eq!(
            get(&tikv, "storage.block-cache.capacity").and_then(|v| v.as_str()),
            Some("14745MiB")
        );
        assert!(
            configs.tikv.contains("45% of tikv.limits.memory (32Gi)"),
            "{}",
            configs.tikv
        );
        let tidb = parse(&configs.tidb);
        assert_eq!(
            get(&tidb, "performance.server-memory-quota").and_then(|v| v.as_integer()),
            Some(27487790694)
        );
        assert_eq!(
            get(&tidb, "log.slow-query-file").and_then(|v| v.as_str()),
            Some("/var/log/tidb/slow.log")
        );
        assert_eq!(
            get(&tidb, "graceful-wait-before-shutdown").and_then(|v| v.as_integer()),
            Some(10)
        );
        assert!(
            configs.tidb.contains("unverified whether v8.5 reads it"),
            "{}",
            configs.tidb
        );

        // The request when there is no limit.
        let configs = rendered("", "requests = { memory = \"1000Mi\" }", "");
        let tikv = parse(&configs.tikv);
        assert_eq!(
            get(&tikv, "storage.block-cache.capacity").and_then(|v| v.as_str()),
            Some("450MiB")
        );
        assert!(
            configs.tikv.contains("tikv.requests.memory (1000Mi)"),
            "{}",
            configs.tikv
        );

        // Nothing to size from: left to the components, and said so.
        let configs = rendered("", "", "");
        let tikv = parse(&configs.tikv);
        assert_eq!(get(&tikv, "storage"), None);
        assert!(
            configs
                .tikv
                .contains("storage.block-cache.capacity: not set"),
            "{}",
            configs.tikv
        );
        let tidb = parse(&configs.tidb);
        assert_eq!(get(&tidb, "performance"), None);
        assert!(
            configs
                .tidb
                .contains("performance.server-memory-quota: not set"),
            "{}",
            configs.tidb
        );
    }

    #[test]
    fn pd_gets_replication_from_topology_and_never_user_copies() {
        let configs = rendered(
            "location_labels = [\"zone\"]\nisolation_level = \"zone\"\nmax_replicas = 1",
            "",
            "[pd.config.replication]\nmax-replicas = 5\nstrictly-match-label = true\n",
        );
        let pd = parse(&configs.pd);
        assert_eq!(
            get(&pd, "replication.max-replicas").and_then(|v| v.as_integer()),
            Some(1)
        );
        assert_eq!(
            get(&pd, "replication.isolation-level").and_then(|v| v.as_str()),
            Some("zone")
        );
        // "host" is implicit here, so PD does not get it.
        assert_eq!(
            get(&pd, "replication.location-labels"),
            Some(&toml::Value::Array(vec!["zone".into()]))
        );
        assert_eq!(
            get(&pd, "replication.strictly-match-label").and_then(|v| v.as_bool()),
            Some(true)
        );
        assert!(
            configs.pd.contains("ignores this file for them"),
            "{}",
            configs.pd
        );

        let configs = rendered(
            "location_labels = [\"zone\", \"host\"]\nmax_replicas = 1",
            "",
            "",
        );
        let pd = parse(&configs.pd);
        assert_eq!(
            get(&pd, "replication.location-labels"),
            Some(&toml::Value::Array(vec!["zone".into(), "host".into()]))
        );
        assert_eq!(get(&pd, "replication.isolation-level"), None);
    }

    #[test]
    fn store_labels_and_addresses_never_reach_the_files() {
        let configs = rendered(
            "max_replicas = 1",
            "",
            "[tikv.config.server]\nlabels = { zone = \"a\" }\naddr = \"0.0.0.0:1\"\ngrpc-concurrency = 8\n",
        );
        let tikv = parse(&configs.tikv);
        assert_eq!(get(&tikv, "server.labels"), None);
        assert_eq!(get(&tikv, "server.addr"), None);
        assert_eq!(
            get(&tikv, "server.grpc-concurrency").and_then(|v| v.as_integer()),
            Some(8)
        );
    }
}
