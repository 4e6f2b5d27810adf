//! Turns the input files into the domain model, checking every rule of
//! DESIGN §2 and reporting all problems at once.
//!
//! Each check pushes a diagnostic and carries on with a placeholder value, so
//! one run lists everything wrong in both files. The model is returned only
//! when no check failed; warnings travel alongside it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::diag::{Diagnostic, FileKind};
use crate::input::{self, ClusterFile, InventoryFile, QuantityText, ResourceMap, ServiceType};
use crate::model::*;
use crate::names;
use crate::quantity::Quantity;
use crate::spanned::Sp;

/// The registry of the official images.
pub const DEFAULT_REGISTRY: &str = "pingcap";

/// The longest cluster name: the longest generated names append a component,
/// an instance ordinal and a hash to it and must stay within Kubernetes' limits.
pub const MAX_CLUSTER_NAME: usize = 40;

/// Validates both files. Either may be missing (it failed to parse); the other
/// is still checked so the user sees all problems in one run.
pub fn validate(
    cluster: Option<&ClusterFile>,
    inventory: Option<&InventoryFile>,
    inventory_text: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Model> {
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let mut v = Validator {
        diagnostics,
        inventory_text,
    };
    let cluster = cluster.map(|c| v.cluster(c));
    let inventory = inventory.map(|i| v.inventory(i));
    if let (Some(cluster), Some(inventory)) = (&cluster, &inventory) {
        v.labels_cover_topology(cluster, inventory);
    }
    let errors_after = v.diagnostics.iter().filter(|d| d.is_error()).count();
    match (cluster, inventory) {
        (Some(cluster), Some(inventory)) if errors_after == errors_before => {
            Some(Model { cluster, inventory })
        }
        _ => None,
    }
}

struct Validator<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    /// For line numbers in messages that mention a second place.
    inventory_text: &'d str,
}

impl Validator<'_> {
    fn error(
        &mut self,
        file: FileKind,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diagnostics.push(
            Diagnostic::error(message)
                .at(file, span)
                .label("here")
                .hint(hint),
        );
    }

    fn name_check(
        &mut self,
        file: FileKind,
        what: &str,
        value: &Sp<String>,
        result: Result<(), names::NameError>,
    ) {
        if let Err(e) = result {
            self.error(
                file,
                value.span(),
                format!("invalid {what} `{}`: {}", value.value, e.reason),
                e.hint,
            );
        }
    }

    fn quantity(&mut self, file: FileKind, what: &str, text: &Sp<QuantityText>) -> Quantity {
        match Quantity::parse(&text.value.0) {
            Ok(q) => q,
            Err(e) => {
                self.error(
                    file,
                    text.span(),
                    format!("invalid {what} `{}`: {e}", text.value.0),
                    e.hint(),
                );
                Quantity::from_units(1)
            }
        }
    }

    /// A quantity of bytes (storage, capacity): a fraction of a byte is
    /// almost always a missing suffix.
    fn whole_bytes(&mut self, file: FileKind, what: &str, text: &Sp<QuantityText>) -> Quantity {
        let q = self.quantity(file, what, text);
        if q.nanos() % 1_000_000_000 != 0 {
            self.error(
                file,
                text.span(),
                format!("{what} `{}` is not a whole number of bytes", text.value.0),
                format!("did you mean `{}Gi`?", text.value.0),
            );
        }
        q
    }

    fn line_of(&self, offset: usize) -> usize {
        self.inventory_text[..offset.min(self.inventory_text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn count(&mut self, file: FileKind, what: &str, value: &Sp<i64>, min: i64) -> u32 {
        if value.value < min || value.value > i64::from(u32::MAX) {
            self.error(
                file,
                value.span(),
                format!("{what} must be at least {min}, not {}", value.value),
                format!("set {what} to a whole number of at least {min}"),
            );
            return min.max(0) as u32;
        }
        value.value as u32
    }

    fn resources(&mut self, file: FileKind, what: &str, map: &ResourceMap) -> Resources {
        let mut out = Resources::new();
        for (name, quantity) in map {
            if let Err(e) = names::label_key(name) {
                self.error(
                    file,
                    quantity.span(),
                    format!("invalid resource name `{name}` in {what}: {}", e.reason),
                    e.hint,
                );
            }
            out.insert(
                name.clone(),
                self.quantity(file, &format!("{what}.{name}"), quantity),
            );
        }
        out
    }

    fn tolerations(&mut self, what: &str, tolerations: &[Sp<input::Toleration>]) {
        use input::{TaintEffect, TolerationOperator};
        for located in tolerations {
            let t = &located.value;
            let operator = t.operator.unwrap_or(TolerationOperator::Equal);
            let problem = if operator == TolerationOperator::Exists
                && t.value.as_deref().is_some_and(|v| !v.is_empty())
            {
                Some((
                    "a toleration with operator Exists must not have a value",
                    "remove `value`, or use operator = \"Equal\"",
                ))
            } else if t.key.as_deref().unwrap_or("").is_empty()
                && operator != TolerationOperator::Exists
            {
                Some((
                    "a toleration without a key must use operator Exists",
                    "add the taint's `key`, or use operator = \"Exists\" to tolerate every taint",
                ))
            } else if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
                Some((
                    "tolerationSeconds is only valid with effect NoExecute",
                    "remove tolerationSeconds, or set effect = \"NoExecute\"",
                ))
            } else {
                None
            };
            if let Some((problem, hint)) = problem {
                self.error(
                    FileKind::Cluster,
                    located.span(),
                    format!("{problem} in {what}.tolerations"),
                    hint,
                );
            }
        }
    }

    fn requests_within_limits(
        &mut self,
        what: &str,
        requests: &Resources,
        limits: &Resources,
        map: &ResourceMap,
    ) {
        for (name, request) in requests {
            if let Some(limit) = limits.get(name)
                && request > limit
            {
                let span = map.get(name.as_str()).map(|v| v.span()).unwrap_or(0..0);
                self.error(
                    FileKind::Cluster,
                    span,
                    format!("{what}.requests.{name} ({request}) is more than its limit ({limit})"),
                    "a request can be at most the limit; raise the limit or lower the request",
                );
            }
        }
    }

    fn media(&mut self, file: FileKind, media: &Option<Sp<String>>) -> Option<String> {
        let media = media.as_ref()?;
        if let Err(e) = names::label_value(&media.value).and_then(|_| {
            if media.value.is_empty() {
                Err(names::NameError {
                    reason: "media tag is empty".into(),
                    hint: "remove the key, or name the media (nvme, ssd, ...)".into(),
                })
            } else {
                Ok(())
            }
        }) {
            self.error(
                file,
                media.span(),
                format!("invalid media `{}`: {}", media.value, e.reason),
                e.hint,
            );
        }
        Some(media.value.clone())
    }

    // -----------------------------------------------------------------------
    // cluster.toml

    fn cluster(&mut self, file: &ClusterFile) -> Cluster {
        const F: FileKind = FileKind::Cluster;
        let c = &file.cluster;
        self.name_check(
            F,
            "cluster name",
            &c.name,
            names::dns1035_label(&c.name.value, MAX_CLUSTER_NAME),
        );
        let namespace = match &c.namespace {
            Some(ns) => {
                self.name_check(F, "namespace", ns, names::dns1123_label(&ns.value));
                ns.value.clone()
            }
            None => c.name.value.clone(),
        };
        let version = self.version(&c.version);
        let registry = match &c.registry {
            Some(r) => {
                let ok = !r.value.is_empty()
                    && !r.value.ends_with('/')
                    && !r.value.starts_with('/')
                    && r.value.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-/:".contains(ch)
                    });
                if !ok {
                    self.error(
                        F,
                        r.span(),
                        format!("invalid registry `{}`", r.value),
                        "write a registry and repository prefix such as `pingcap` or `registry.example.com:5000/pingcap`, without a trailing slash",
                    );
                }
                r.value.clone()
            }
            None => DEFAULT_REGISTRY.to_string(),
        };
        let topology = self.topology(&file.topology);
        let pd = self.stateful(
            Component::Pd,
            &file.pd.replicas,
            &file.pd.storage,
            &file.pd.media,
            None,
            &file.pd.requests,
            &file.pd.limits,
            &file.pd.tolerations,
            &file.pd.config,
        );
        if pd.replicas.is_multiple_of(2) {
            self.diagnostics.push(
                Diagnostic::warning(format!(
                    "{} PD members tolerate no more failures than {}",
                    pd.replicas,
                    pd.replicas - 1
                ))
                .at(F, file.pd.replicas.span())
                .label("even")
                .hint("use an odd number of PD members (1, 3 or 5)"),
            );
        }
        let tikv = self.stateful(
            Component::Tikv,
            &file.tikv.replicas,
            &file.tikv.storage,
            &file.tikv.media,
            file.tikv.max_per_node.as_ref(),
            &file.tikv.requests,
            &file.tikv.limits,
            &file.tikv.tolerations,
            &file.tikv.config,
        );
        if u64::from(tikv.replicas) < topology.max_replicas {
            self.diagnostics.push(
                Diagnostic::warning(format!(
                    "{} TiKV cannot hold {} replicas of each Region",
                    tikv.replicas, topology.max_replicas
                ))
                .at(F, file.tikv.replicas.span())
                .label("fewer than topology.max_replicas")
                .hint("raise tikv.replicas or lower topology.max_replicas"),
            );
        }
        let tidb = self.tidb(&file.tidb);
        if let Some(backup) = &file.backup {
            self.backup(backup);
        }
        let mut restore_names = BTreeSet::new();
        for r in &file.restore {
            self.name_check(
                F,
                "restore name",
                &r.name,
                names::dns1123_label(&r.name.value),
            );
            if !restore_names.insert(r.name.value.as_str()) {
                self.error(
                    F,
                    r.name.span(),
                    format!("restore `{}` is declared twice", r.name.value),
                    "give each [[restore]] its own name",
                );
            }
            self.restore(r, file.backup.as_ref());
        }
        let acknowledgements = file
            .acknowledge
            .iter()
            .map(|a| {
                let ok = a.change.value.len() >= 8 && a.change.value.chars().all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase());
                if !ok {
                    self.error(
                        F,
                        a.change.span(),
                        format!("invalid change hash `{}`", a.change.value),
                        "copy the change hash that `tidb-gitops plan` printed (lowercase hexadecimal)",
                    );
                }
                if a.reason.value.trim().is_empty() {
                    self.error(F, a.reason.span(), "an acknowledgement needs a reason", "say why the change is safe, for the reviewers");
                }
                Acknowledgement {
                    change: a.change.value.clone(),
                    reason: a.reason.value.clone(),
                }
            })
            .collect();
        let reclaimed = file
            .reclaimed
            .iter()
            .filter_map(|r| {
                if r.reason.value.trim().is_empty() {
                    self.error(F, r.reason.span(), "a [[reclaimed]] entry needs a reason", "say how the directory was emptied or why it is no longer needed, for the reviewers");
                }
                let id = crate::model::InstanceId::parse(&r.instance.value)
                    .filter(|id| id.component != crate::model::Component::Tidb);
                if id.is_none() {
                    self.error(F, r.instance.span(), format!("invalid instance `{}`", r.instance.value), "name a PD or TiKV instance of placement.lock, such as \"tikv-3\"");
                }
                id
            })
            .collect();
        Cluster {
            name: c.name.value.clone(),
            namespace,
            version,
            registry,
            topology,
            pd,
            tikv,
            tidb,
            backup: file.backup.clone(),
            restores: file.restore.clone(),
            acknowledgements,
            reclaimed,
            gitops: self.gitops(file.gitops.as_ref()),
        }
    }

    fn gitops(&mut self, section: Option<&input::GitopsSection>) -> crate::model::Gitops {
        let section = section.cloned().unwrap_or_default();
        let mut plain = |value: &Option<Sp<String>>, what: &str, hint: &str| {
            let v = value.as_ref()?;
            if v.value.is_empty() || v.value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.error(
                    FileKind::Cluster,
                    v.span(),
                    format!("invalid {what} `{}`", v.value),
                    hint,
                );
            }
            Some(v.value.clone())
        };
        let repository = plain(
            &section.repository,
            "repository URL",
            "write the URL Flux and Argo CD clone, such as `https://github.com/acme/deploy.git` or `ssh://git@github.com/acme/deploy.git`",
        );
        let branch = plain(
            &section.branch,
            "branch name",
            "write a branch name such as `main`",
        );
        if let Some(b) = &section.branch
            && (b.value.starts_with('-') || b.value.contains("..") || b.value.ends_with(".lock"))
        {
            self.error(
                FileKind::Cluster,
                b.span(),
                format!("invalid branch name `{}`", b.value),
                "write a branch name such as `main`",
            );
        }
        crate::model::Gitops {
            repository,
            branch: branch.unwrap_or_else(|| "main".into()),
        }
    }

    fn version(&mut self, text: &Sp<String>) -> Version {
        let parsed = (|| {
            let rest = text.value.strip_prefix('v')?;
            let (numbers, suffix) = match rest.find(['-', '+']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let mut parts = numbers.split('.');
            let mut next = || -> Option<u64> {
                let p = parts.next()?;
                if p.is_empty()
                    || !p.chars().all(|c| c.is_ascii_digit())
                    || (p.len() > 1 && p.starts_with('0'))
                {
                    return None;
                }
                p.parse().ok()
            };
            let (major, minor, patch) = (next()?, next()?, next()?);
            if parts.next().is_some()
                || !suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-+.".contains(c))
                || suffix.len() > 64
            {
                return None;
            }
            Some(Version {
                major,
                minor,
                patch,
                suffix: suffix.to_string(),
                text: text.value.clone(),
            })
        })();
        parsed.unwrap_or_else(|| {
            let reason = if !text.value.starts_with('v') {
                "a release tag starts with `v`"
            } else {
                "a release tag has three numbers, major.minor.patch"
            };
            self.error(
                FileKind::Cluster,
                text.span(),
                format!("invalid version `{}`: {reason}", text.value),
                "write the TiDB release tag, such as `v8.5.1`",
            );
            Version {
                major: 0,
                minor: 0,
                patch: 0,
                suffix: String::new(),
                text: text.value.clone(),
            }
        })
    }

    fn topology(&mut self, t: &input::TopologySection) -> Topology {
        const F: FileKind = FileKind::Cluster;
        let mut labels: Vec<String> = Vec::new();
        let mut host_listed = false;
        match &t.location_labels {
            Some(list) => {
                if list.value.is_empty() {
                    self.error(F, list.span(), "location_labels is empty", "list label keys coarse to fine, such as [\"zone\", \"host\"], or remove the key for [\"host\"]");
                }
                for (i, label) in list.value.iter().enumerate() {
                    self.name_check(F, "location label", label, names::label_key(&label.value));
                    if labels.contains(&label.value) {
                        self.error(
                            F,
                            label.span(),
                            format!("location label `{}` is listed twice", label.value),
                            "list each label once",
                        );
                    }
                    if label.value == "host" {
                        host_listed = true;
                        if i + 1 != list.value.len() {
                            self.error(
                                F,
                                label.span(),
                                "`host` must be the last location label",
                                "list labels coarse to fine; `host` (the node) is the finest",
                            );
                        }
                    }
                    labels.push(label.value.clone());
                }
            }
            None => host_listed = true,
        }
        if !labels.iter().any(|l| l == "host") {
            labels.push("host".to_string());
        }
        let (isolation_level, isolation_span) = match &t.isolation_level {
            Some(level) => {
                let listed =
                    labels.contains(&level.value) && (level.value != "host" || host_listed);
                if !listed {
                    let known: Vec<&str> = labels
                        .iter()
                        .map(String::as_str)
                        .filter(|l| *l != "host" || host_listed)
                        .collect();
                    let hint = match crate::diag::nearest(&level.value, known.iter().copied()) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => format!("use one of location_labels: {}", known.join(", ")),
                    };
                    self.error(
                        F,
                        level.span(),
                        format!(
                            "isolation_level `{}` is not one of location_labels",
                            level.value
                        ),
                        hint,
                    );
                }
                (Some(level.value.clone()), level.span())
            }
            None => (None, 0..0),
        };
        let max_replicas = match &t.max_replicas {
            Some(m) => u64::from(self.count(F, "topology.max_replicas", m, 1)),
            None => 3,
        };
        Topology {
            location_labels: labels,
            host_listed,
            isolation_level,
            isolation_span,
            max_replicas,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stateful(
        &mut self,
        component: Component,
        replicas: &Sp<i64>,
        storage: &Sp<QuantityText>,
        media: &Option<Sp<String>>,
        max_per_node: Option<&Sp<i64>>,
        requests: &ResourceMap,
        limits: &ResourceMap,
        tolerations: &[Sp<input::Toleration>],
        config: &Option<Sp<input::ConfigTable>>,
    ) -> Stateful {
        const F: FileKind = FileKind::Cluster;
        let c = component.as_str();
        let replicas_n = self.count(F, &format!("{c}.replicas"), replicas, 1);
        let storage = self.whole_bytes(F, &format!("{c}.storage"), storage);
        let media = self.media(F, media);
        let max_per_node = max_per_node.map(|m| self.count(F, &format!("{c}.max_per_node"), m, 1));
        let requests_q = self.resources(F, &format!("{c}.requests"), requests);
        let limits_q = self.resources(F, &format!("{c}.limits"), limits);
        self.requests_within_limits(c, &requests_q, &limits_q, requests);
        self.tolerations(c, tolerations);
        self.config_depth(c, config);
        Stateful {
            component,
            replicas: replicas_n,
            replicas_span: replicas.span(),
            storage,
            media,
            max_per_node,
            requests: requests_q,
            limits: limits_q,
            tolerations: tolerations.iter().map(|t| t.value.clone()).collect(),
            config: config
                .as_ref()
                .map(|c| c.value.0.clone())
                .unwrap_or_default(),
        }
    }

    /// A config key is a path of dotted parts and nested tables; one far
    /// deeper than any component's settings (a quoted key of thousands of
    /// dots) is an error here, before the config checks walk it.
    fn config_depth(&mut self, c: &str, config: &Option<Sp<input::ConfigTable>>) {
        fn deepest(table: &toml::Table, above: usize) -> Option<(String, usize)> {
            table.iter().find_map(|(key, value)| {
                let depth = above + key.split('.').count();
                if depth > crate::input::MAX_DEPTH {
                    return Some((key.clone(), depth));
                }
                match value {
                    toml::Value::Table(inner) => deepest(inner, depth),
                    _ => None,
                }
            })
        }
        let Some(config) = config else { return };
        if let Some((key, depth)) = deepest(&config.value.0, 0) {
            self.error(
                FileKind::Cluster,
                config.span(),
                format!(
                    "the key `{key}` in [{c}.config] is {depth} levels deep, more than {}",
                    crate::input::MAX_DEPTH
                ),
                "component settings are a few levels deep (`log.level`, `storage.block-cache.capacity`); check the key",
            );
        }
    }

    fn tidb(&mut self, t: &input::TidbSection) -> Tidb {
        const F: FileKind = FileKind::Cluster;
        let replicas = self.count(F, "tidb.replicas", &t.replicas, 1);
        let requests = self.resources(F, "tidb.requests", &t.requests);
        let limits = self.resources(F, "tidb.limits", &t.limits);
        self.requests_within_limits("tidb", &requests, &limits, &t.requests);
        self.tolerations("tidb", &t.tolerations);
        let service_type = t
            .service
            .as_ref()
            .and_then(|s| s.service_type.as_ref())
            .map_or(ServiceType::ClusterIP, |s| s.value);
        let mut service_annotations = BTreeMap::new();
        if let Some(service) = &t.service {
            for (key, value) in &service.annotations {
                let located = Sp::new(key.clone(), value.span());
                self.name_check(F, "annotation key", &located, names::label_key(key));
                service_annotations.insert(key.clone(), value.value.clone());
            }
        }
        if let Some(secret) = &t.root_password_secret {
            self.name_check(
                F,
                "Secret name",
                secret,
                names::dns1123_subdomain(&secret.value),
            );
        }
        if service_type == ServiceType::LoadBalancer && t.root_password_secret.is_none() {
            let span = t
                .service
                .as_ref()
                .and_then(|s| s.service_type.as_ref())
                .map_or(t.replicas.span(), |s| s.span());
            self.error(
                F,
                span,
                "a LoadBalancer TiDB service needs tidb.root_password_secret",
                "a public endpoint with an empty root password is an open database: create a Secret with the password and name it in `root_password_secret`",
            );
        }
        self.config_depth("tidb", &t.config);
        Tidb {
            replicas,
            requests,
            limits,
            tolerations: t.tolerations.iter().map(|t| t.value.clone()).collect(),
            service_type,
            service_annotations,
            root_password_secret: t.root_password_secret.as_ref().map(|s| s.value.clone()),
            config: t
                .config
                .as_ref()
                .map(|c| c.value.0.clone())
                .unwrap_or_default(),
        }
    }

    fn backup(&mut self, b: &input::BackupSection) {
        const F: FileKind = FileKind::Cluster;
        if let Err(e) = crate::cron::check(&b.schedule.value) {
            self.error(
                F,
                b.schedule.span(),
                format!("invalid schedule `{}`: {e}", b.schedule.value),
                "write minute hour day-of-month month day-of-week in UTC, such as \"0 2 * * *\" (02:00 UTC daily)",
            );
        }
        if let Some(keep) = &b.keep {
            self.count(F, "backup.keep", keep, 1);
        }
        if let Some(c) = &b.concurrency {
            self.count(F, "backup.concurrency", c, 1);
        }
        if let Some(r) = &b.rate_limit {
            self.count(F, "backup.rate_limit", r, 1);
        }
        if let Some(image) = &b.prune_image {
            self.image_reference(F, "backup.prune_image", image);
        }
        if let Some(sa) = &b.service_account {
            self.name_check(
                F,
                "ServiceAccount name",
                sa,
                names::dns1123_subdomain(&sa.value),
            );
        }
        let stores: Vec<(&str, Range<usize>)> = [
            ("s3", b.s3.as_ref().map(|s| s.span())),
            ("gcs", b.gcs.as_ref().map(|s| s.span())),
            ("azblob", b.azblob.as_ref().map(|s| s.span())),
        ]
        .into_iter()
        .filter_map(|(name, span)| span.map(|s| (name, s)))
        .collect();
        match stores.as_slice() {
            [] => self.error(
                F,
                b.schedule.span(),
                "[backup] has no storage table",
                "add one of [backup.s3], [backup.gcs] or [backup.azblob]",
            ),
            [_] => {}
            [(first, _), rest @ ..] => {
                for (name, span) in rest {
                    self.error(
                        F,
                        span.clone(),
                        format!("[backup] has more than one storage table: [backup.{first}] and [backup.{name}]"),
                        format!("keep one storage table; remove [backup.{name}] or [backup.{first}]"),
                    );
                }
            }
        }
        let (secret, prefix, span) = if let Some(s3) = &b.s3 {
            self.bucket(F, "S3 bucket", &s3.value.bucket);
            if let Some(region) = &s3.value.region
                && (region.value.is_empty()
                    || !region
                        .value
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'))
            {
                self.error(
                    F,
                    region.span(),
                    format!("invalid S3 region `{}`", region.value),
                    "write a region such as us-east-1",
                );
            }
            if let Some(endpoint) = &s3.value.endpoint {
                let rest = endpoint
                    .value
                    .strip_prefix("https://")
                    .or_else(|| endpoint.value.strip_prefix("http://"));
                if rest.is_none_or(|r| {
                    r.is_empty() || r.contains(char::is_whitespace) || r.starts_with('/')
                }) {
                    self.error(
                        F,
                        endpoint.span(),
                        format!("invalid S3 endpoint `{}`", endpoint.value),
                        "write a URL such as https://minio.storage.svc:9000",
                    );
                }
            }
            if let Some(provider) = &s3.value.provider
                && (provider.value.is_empty()
                    || !provider
                        .value
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'))
            {
                self.error(
                    F,
                    provider.span(),
                    format!("invalid S3 provider `{}`", provider.value),
                    "write BR's provider name, such as aws, ceph or minio",
                );
            }
            (&s3.value.secret, &s3.value.prefix, s3.span())
        } else if let Some(gcs) = &b.gcs {
            self.bucket(F, "GCS bucket", &gcs.value.bucket);
            (&gcs.value.secret, &gcs.value.prefix, gcs.span())
        } else if let Some(az) = &b.azblob {
            self.bucket(F, "Azure container", &az.value.container);
            match &az.value.account {
                Some(account)
                    if !(3..=24).contains(&account.value.len())
                        || !account
                            .value
                            .bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
                {
                    self.error(
                        F,
                        account.span(),
                        format!("invalid Azure storage account `{}`", account.value),
                        "an account name has 3 to 24 lowercase letters and digits",
                    );
                }
                Some(_) => {}
                None => self.error(
                    F,
                    az.span(),
                    "[backup.azblob] has no `account`",
                    "add account = \"<storage account name>\"",
                ),
            }
            (&az.value.secret, &az.value.prefix, az.span())
        } else {
            return;
        };
        if let Some(prefix) = prefix {
            self.object_prefix(F, "backup prefix", prefix);
        }
        if let Some(log) = &b.log
            && let Some(p) = &log.value.prefix
        {
            self.object_prefix(F, "log backup prefix", p);
            if prefix.as_ref().map(|x| x.value.as_str()) == Some(p.value.as_str()) {
                self.error(
                    F,
                    p.span(),
                    "the log backup would share the snapshot backups' prefix",
                    "give [backup.log] its own prefix, such as \"<prefix>/log\"",
                );
            }
        }
        match secret {
            Some(secret) => self.name_check(
                F,
                "Secret name",
                secret,
                names::dns1123_subdomain(&secret.value),
            ),
            None if b.service_account.is_none() => self.error(
                F,
                span,
                "the backup store has no credentials",
                "name an existing Secret with `secret = \"...\"`, or set [backup] service_account to a ServiceAccount whose cloud identity may write the bucket",
            ),
            None => {}
        }
    }

    /// A bucket or container name as S3, GCS and Azure all accept it: 3 to
    /// 63 lowercase letters, digits, hyphens (and dots, not for Azure),
    /// starting and ending with a letter or digit.
    fn bucket(&mut self, file: FileKind, what: &str, name: &Sp<String>) {
        let v = &name.value;
        let dots = what != "Azure container";
        let ok = (3..=63).contains(&v.len())
            && v.bytes().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || (dots && c == b'.')
            })
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !v.contains("..")
            && !v.contains("--");
        if !ok {
            self.error(
                file,
                name.span(),
                format!("invalid {what} `{v}`"),
                "a bucket name has 3 to 63 lowercase letters, digits and hyphens, and starts and ends with a letter or digit",
            );
        }
    }

    /// A path inside a bucket: segments of safe characters, no leading or
    /// trailing slash, no empty or `..` segment.
    fn object_prefix(&mut self, file: FileKind, what: &str, prefix: &Sp<String>) {
        let v = &prefix.value;
        let ok = !v.is_empty()
            && v.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
            });
        if !ok {
            self.error(
                file,
                prefix.span(),
                format!("invalid {what} `{v}`"),
                "write a path such as \"prod/tidb\": letters, digits, `-`, `_` and `.`, separated by single slashes, without a leading or trailing slash",
            );
        }
    }

    fn image_reference(&mut self, file: FileKind, what: &str, image: &Sp<String>) {
        let v = &image.value;
        let last = v.rsplit('/').next().unwrap_or_default();
        let pinned = last.contains(':') || v.contains("@sha256:");
        if v.is_empty() || v.contains(char::is_whitespace) || !pinned || last.ends_with(":latest") {
            self.error(
                file,
                image.span(),
                format!(
                    "invalid {what} `{v}`: an image must name a tag other than latest, or a digest"
                ),
                "write a pinned image such as \"amazon/aws-cli:2.22.35\"",
            );
        }
    }

    fn storage_url(&mut self, from: &Sp<String>) -> bool {
        let ok = ["s3://", "gcs://", "gs://", "azure://", "azblob://"]
            .iter()
            .any(|scheme| {
                from.value.strip_prefix(scheme).is_some_and(|rest| {
                    !rest.is_empty()
                        && !rest.starts_with('/')
                        && !rest.contains(char::is_whitespace)
                        && !rest.contains("//")
                })
            });
        if ok && from.value.contains(['?', '#', '@']) {
            // BR also takes credentials in the URL's query; in git they
            // would be in the clear.
            self.error(
                FileKind::Cluster,
                from.span(),
                format!("backup location `{}` carries a query or user part", from.value),
                "write only scheme://bucket/path: credentials come from the Secret that [backup] names, never from the URL",
            );
            return false;
        }
        if !ok {
            self.error(
                FileKind::Cluster,
                from.span(),
                format!("invalid backup location `{}`", from.value),
                "write a URL such as s3://bucket/prefix, gcs://bucket/prefix or azure://container/prefix",
            );
        }
        ok
    }

    /// A restore reads with the `[backup]` store's credentials, so it must
    /// come from that store.
    fn restore(&mut self, r: &input::RestoreEntry, backup: Option<&input::BackupSection>) {
        const F: FileKind = FileKind::Cluster;
        let mut valid = vec![self.storage_url(&r.from)];
        if let Some(log_from) = &r.log_from {
            valid.push(self.storage_url(log_from));
        }
        let store = backup.and_then(|b| {
            b.s3.as_ref()
                .map(|s| ("s3", s.value.bucket.value.as_str()))
                .or_else(|| {
                    b.gcs
                        .as_ref()
                        .map(|g| ("gcs", g.value.bucket.value.as_str()))
                })
                .or_else(|| {
                    b.azblob
                        .as_ref()
                        .map(|a| ("azure", a.value.container.value.as_str()))
                })
        });
        let urls = std::iter::once(&r.from).chain(r.log_from.as_ref());
        for (url, _) in urls.zip(valid).filter(|(_, ok)| *ok) {
            let (scheme, rest) = url.value.split_once("://").unwrap_or(("", ""));
            let scheme = match scheme {
                "gs" => "gcs",
                "azblob" => "azure",
                s => s,
            };
            let bucket = rest.split('/').next().unwrap_or_default();
            match store {
                None => self.error(
                    F,
                    url.span(),
                    "a restore needs the store's credentials, which [backup] declares",
                    "add [backup] with the storage table of the bucket that holds the backup",
                ),
                Some((s, b)) if s != scheme || b != bucket => self.error(
                    F,
                    url.span(),
                    format!("`{}` is not in the [backup] store ({s}://{b})", url.value),
                    "restore from the bucket [backup] names, whose credentials the restore Job uses",
                ),
                Some(_) => {}
            }
        }
        if let Some(log_from) = &r.log_from
            && r.until.is_none()
        {
            self.error(
                F,
                log_from.span(),
                "`log_from` without `until` has nothing to replay",
                "add until = \"2026-11-20 10:00:00+0000\", or remove log_from",
            );
        }
        if let Some(until) = &r.until {
            if !restored_ts_ok(&until.value) {
                self.error(
                    F,
                    until.span(),
                    format!("invalid restore time `{}`", until.value),
                    "write the time with its UTC offset, such as \"2026-11-20 10:00:00+0000\"",
                );
            }
            let has_log = r.log_from.is_some() || backup.is_some_and(|b| b.log.is_some());
            if !has_log {
                self.error(
                    F,
                    until.span(),
                    "a point-in-time restore needs a log backup",
                    "add log_from = \"s3://bucket/prefix/log\", or enable [backup.log]",
                );
            }
        }
    }

    // -----------------------------------------------------------------------
    // inventory.toml

    fn inventory(&mut self, file: &InventoryFile) -> Inventory {
        const F: FileKind = FileKind::Inventory;
        // (Not when [[node]] tables are there but failed to read.)
        let unread = self
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.file == Some(F));
        if file.node.is_empty() && !unread {
            self.diagnostics.push(
                Diagnostic::error("inventory.toml lists no nodes")
                    .in_file(F)
                    .hint("describe each node that may hold PD or TiKV in a [[node]] table with its name and [[node.dir]] directories (`tidb-gitops init` writes an example)"),
            );
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(file.node.len());
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in &file.node {
            // A node's kubernetes.io/hostname is its Node name, a lowercase
            // DNS-1123 subdomain, and a label value, so both rules apply.
            let name_ok = names::node_name(&entry.name.value)
                .and_then(|_| names::dns1123_subdomain(&entry.name.value));
            self.name_check(F, "node name", &entry.name, name_ok);
            let node = self.node(entry);
            if let Some(first) = seen.insert(entry.name.value.as_str(), entry.name.span.start) {
                self.error(
                    F,
                    entry.name.span(),
                    format!(
                        "node `{}` is declared twice (first at line {})",
                        entry.name.value,
                        self.line_of(first)
                    ),
                    "each [[node]] needs its own name: rename one, or merge the two entries",
                );
                continue;
            }
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Inventory { nodes }
    }

    fn node(&mut self, entry: &input::NodeEntry) -> Node {
        const F: FileKind = FileKind::Inventory;
        let mut labels = BTreeMap::new();
        for (key, value) in &entry.labels {
            let key = &Sp::new(key.clone(), value.span());
            if key.value == "host" {
                self.error(
                    F,
                    key.span(),
                    "the `host` label is implicit",
                    "remove it: a node's host is its name",
                );
                continue;
            }
            self.name_check(F, "label key", key, names::label_key(&key.value));
            self.name_check(F, "label value", value, names::label_value(&value.value));
            labels.insert(key.value.clone(), value.value.clone());
        }
        labels.insert("host".to_string(), entry.name.value.clone());
        let allocatable = (!entry.allocatable.is_empty()).then(|| {
            self.resources(
                F,
                &format!("allocatable of node `{}`", entry.name.value),
                &entry.allocatable,
            )
        });
        let mut dirs: Vec<Dir> = Vec::with_capacity(entry.dir.len());
        for d in &entry.dir {
            let valid_path = match names::host_path(&d.path.value) {
                Ok(()) => true,
                Err(e) => {
                    self.error(
                        F,
                        d.path.span(),
                        format!("invalid directory path `{}`: {}", d.path.value, e.reason),
                        e.hint,
                    );
                    false
                }
            };
            if !valid_path {
                // Still check the rest of the entry, but keep a rejected path
                // out of the overlap checks, where it would blame good paths.
                self.whole_bytes(F, "capacity", &d.capacity);
                self.media(F, &d.media);
                continue;
            }
            {
                if let Some(other) = dirs.iter().find(|o| o.path.0 == d.path.value) {
                    let _ = other;
                    self.error(
                        F,
                        d.path.span(),
                        format!(
                            "directory `{}` is declared twice on node `{}`",
                            d.path.value, entry.name.value
                        ),
                        "list each directory of a node once",
                    );
                    continue;
                }
                if let Some(other) = dirs.iter().find(|o| {
                    names::path_is_within(&d.path.value, &o.path.0)
                        || names::path_is_within(&o.path.0, &d.path.value)
                }) {
                    self.error(
                        F,
                        d.path.span(),
                        format!(
                            "directory `{}` overlaps `{}` on node `{}`",
                            d.path.value, other.path.0, entry.name.value
                        ),
                        "one directory holds one instance's data: list separate mount points, none inside another",
                    );
                    continue;
                }
            }
            let capacity = self.whole_bytes(F, "capacity", &d.capacity);
            let media = self.media(F, &d.media);
            dirs.push(Dir {
                path: DirPath(d.path.value.clone()),
                capacity,
                media,
                require_mount: d.require_mount.unwrap_or(true),
                span: d.path.span(),
            });
        }
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Node {
            name: NodeName(entry.name.value.clone()),
            labels,
            state: entry.state.as_ref().map_or(NodeState::Up, |s| s.value),
            allocatable,
            dirs,
            span: entry.name.span(),
        }
    }

    /// Every location label must be on every node that can hold an instance,
    /// or the spread and PD's isolation would silently ignore that node's domain.
    fn labels_cover_topology(&mut self, cluster: &Cluster, inventory: &Inventory) {
        for node in &inventory.nodes {
            if node.dirs.is_empty() || node.state.is_down() {
                continue;
            }
            let missing: Vec<&str> = cluster
                .topology
                .location_labels
                .iter()
                .map(String::as_str)
                .filter(|l| !node.labels.contains_key(*l))
                .collect();
            if !missing.is_empty() {
                let list = missing
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let example = missing
                    .iter()
                    .map(|l| format!("{l} = \"...\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                // `host` is always present, so another label means a `labels` table exists.
                let hint = if node.labels.len() > 1 {
                    format!("add `{example}` to the node's labels")
                } else {
                    format!("add `labels = {{ {example} }}` to the node")
                };
                self.error(
                    FileKind::Inventory,
                    node.span.clone(),
                    format!(
                        "node `{}` has no {list} label, which topology.location_labels lists",
                        node.name
                    ),
                    hint,
                );
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an explicit UTC offset (`+0000`, `+08:00`,
/// `Z`), a form BR's `--restored-ts` takes; without an offset the time
/// would depend on the restore pod's zone.
fn restored_ts_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let date_time = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let zone = &s[19..];
    let offset = |z: &str| {
        let z = z.as_bytes();
        (z.len() == 5 && z[1..].iter().all(u8::is_ascii_digit))
            || (z.len() == 6
                && z[3] == b':'
                && z[1..3].iter().chain(&z[4..]).all(u8::is_ascii_digit))
    };
    date_time && (zone == "Z" || ((zone.starts_with('+') || zone.starts_with('-')) && offset(zone)))
}
