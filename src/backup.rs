//! Backup and restore objects: BR runs in Jobs, with no operator.
//!
//! - Scheduled full backups: one CronJob (`timeZone: Etc/UTC`,
//!   `concurrencyPolicy: Forbid`). Its pod runs `backup.sh` in the BR image
//!   of the cluster's version; every run writes to its own prefix, named
//!   after its start time in UTC, because BR refuses a path that already
//!   holds a backup. With `prune = "job"` (the default) the backup is an
//!   init container and a prune step with an object-store client image runs
//!   after it succeeds, deleting run folders beyond `keep` (never anything
//!   else under the prefix). With `prune = "lifecycle"` nothing is deleted:
//!   the bucket's own lifecycle rule does it (README).
//! - Continuous log backup (`[backup.log]`): a Job that starts the task
//!   unless it already runs; named by the hash of its spec, so an upgrade
//!   runs it again harmlessly.
//! - `[[restore]]`: one Job per entry, named by the hash of the entry (not
//!   of the image), with the BR version it was first compiled at pinned in
//!   `placement.lock` (the API server refuses to change a Job's pod
//!   template, and a new name would restore twice).
//! - `before_upgrade`: a full backup of the old version in a wave before
//!   the first PD, while `placement.lock` records an upgrade.
//!
//! Credentials only by reference: Secret keys become environment variables
//! (S3: `access_key`, `secret_key` -> `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, FACTS §7; Azure: `storage_key` ->
//! `AZURE_STORAGE_KEY`) or a mounted file (GCS: key `credentials` ->
//! `GOOGLE_APPLICATION_CREDENTIALS`). That BR reads the Azure and GCS
//! variables comes from BR's storage documentation, which FACTS does not
//! cover: unverified. Without a Secret, the pods run as the configured
//! ServiceAccount and BR is told not to send credentials to TiKV
//! (`--send-credentials-to-tikv=false`), so TiKV uses its own identity.
//! TiKV uploads and downloads the backup files itself (FACTS §7): TiKV pods
//! need egress to the store.

use serde_json::{Map, Value, json};

use super::{
    Builder, LABEL_CLUSTER, LABEL_COMPONENT, Object, PD_CLIENT_PORT, Role, SCRIPTS_DIR,
    content_hash, env_values, mount, obj, security_context,
};
use crate::input::{BackupSection, PruneMode, RestoreEntry};
use crate::lock::Lock;

pub const BACKUP_SH: &str = include_str!("pod/backup.sh");
pub const BR_LIB_SH: &str = include_str!("pod/br-lib.sh");
pub const PRUNE_S3_SH: &str = include_str!("pod/backup-prune-s3.sh");
pub const PRUNE_GCS_SH: &str = include_str!("pod/backup-prune-gcs.sh");
pub const PRUNE_AZBLOB_SH: &str = include_str!("pod/backup-prune-azblob.sh");
pub const PRUNE_LIB_SH: &str = include_str!("pod/backup-prune-lib.sh");
pub const LOG_BACKUP_START_SH: &str = include_str!("pod/log-backup-start.sh");
pub const RESTORE_SH: &str = include_str!("pod/restore.sh");

/// Scheduled backups kept when `keep` is not set.
pub const DEFAULT_KEEP: i64 = 7;
/// How long one backup, restore or log-start run may take.
const DEADLINE_SECONDS: u32 = 86_400;
/// The emptyDir where the backup step leaves its run name for the prune step.
const RUN_DIR: &str = "/var/run/tidb-gitops";
/// Where a GCS key file from the Secret is mounted.
const CREDENTIALS_DIR: &str = "/var/run/secrets/tidb-gitops";

/// The object-store client images of the prune step. The tags are pinned
/// so a sync never pulls something new; that these tags exist and that the
/// images carry bash was not verified offline (override with
/// `prune_image`).
const PRUNE_IMAGE_S3: &str = "amazon/aws-cli:2.22.35";
const PRUNE_IMAGE_GCS: &str = "google/cloud-sdk:502.0.0-slim";
const PRUNE_IMAGE_AZBLOB: &str = "mcr.microsoft.com/azure-cli:2.67.0";

/// The store of `[backup]`, resolved.
pub struct Store<'a> {
    /// `s3`, `gcs` or `azure`: BR's URL scheme.
    pub scheme: &'static str,
    pub bucket: &'a str,
    pub prefix: Option<&'a str>,
    secret: Option<&'a str>,
    prune_script: &'static str,
    prune_image: &'static str,
}

impl<'a> Store<'a> {
    pub fn of(b: &'a BackupSection) -> Option<Store<'a>> {
        let text = |s: &'a Option<crate::spanned::Sp<String>>| s.as_ref().map(|s| s.value.as_str());
        if let Some(s3) = &b.s3 {
            let s = &s3.value;
            return Some(Store {
                scheme: "s3",
                bucket: &s.bucket.value,
                prefix: text(&s.prefix),
                secret: text(&s.secret),
                prune_script: "backup-prune-s3.sh",
                prune_image: PRUNE_IMAGE_S3,
            });
        }
        if let Some(gcs) = &b.gcs {
            let g = &gcs.value;
            return Some(Store {
                scheme: "gcs",
                bucket: &g.bucket.value,
                prefix: text(&g.prefix),
                secret: text(&g.secret),
                prune_script: "backup-prune-gcs.sh",
                prune_image: PRUNE_IMAGE_GCS,
            });
        }
        b.azblob.as_ref().map(|az| {
            let a = &az.value;
            Store {
                scheme: "azure",
                bucket: &a.container.value,
                prefix: text(&a.prefix),
                secret: text(&a.secret),
                prune_script: "backup-prune-azblob.sh",
                prune_image: PRUNE_IMAGE_AZBLOB,
            }
        })
    }

    /// `s3://bucket/prefix`, without a trailing slash.
    pub fn base_url(&self) -> String {
        match self.prefix {
            Some(p) => format!("{}://{}/{p}", self.scheme, self.bucket),
            None => format!("{}://{}", self.scheme, self.bucket),
        }
    }

    /// Where the log backup goes.
    pub fn log_url(&self, b: &BackupSection) -> String {
        let prefix = b
            .log
            .as_ref()
            .and_then(|l| l.value.prefix.as_ref())
            .map(|p| p.value.clone())
            .unwrap_or_else(|| match self.prefix {
                Some(p) => format!("{p}/log"),
                None => "log".to_string(),
            });
        format!("{}://{}/{prefix}", self.scheme, self.bucket)
    }
}

/// The scripts of the backup pods, by ConfigMap key.
pub fn scripts() -> &'static [(&'static str, &'static str)] {
    &[
        ("backup-prune-azblob.sh", PRUNE_AZBLOB_SH),
        ("backup-prune-gcs.sh", PRUNE_GCS_SH),
        ("backup-prune-lib.sh", PRUNE_LIB_SH),
        ("backup-prune-s3.sh", PRUNE_S3_SH),
        ("backup.sh", BACKUP_SH),
        ("br-lib.sh", BR_LIB_SH),
        ("log-backup-start.sh", LOG_BACKUP_START_SH),
        ("restore.sh", RESTORE_SH),
    ]
}

/// A Kubernetes-safe spelling of a version for a name: `v8.5.2` -> `v8-5-2`.
fn name_part(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// The label that names a restore's entry on its Job.
pub const LABEL_RESTORE: &str = "tidb-gitops.io/restore";

impl Builder<'_> {
    /// The labels of a backup-family object: its own component, never one
    /// of the cluster's (so no Service or budget selects its pods).
    fn step_labels(&self, step: &str, restore: Option<&str>) -> Map<String, Value> {
        let mut labels = self.labels(None);
        labels.insert(LABEL_COMPONENT.into(), json!(step));
        if let Some(name) = restore {
            labels.insert(LABEL_RESTORE.into(), json!(name));
        }
        labels
    }

    /// Every backup and restore object of the cluster.
    pub(super) fn backup_objects(&self, lock: &Lock) -> Vec<Object> {
        let cluster = &self.model.cluster;
        let mut out = Vec::new();
        let Some(b) = &cluster.backup else {
            return out;
        };
        let Some(store) = Store::of(b) else {
            return out;
        };
        out.push(self.backup_scripts());
        out.push(self.backup_cron_job(b, &store));
        if b.log.is_some() {
            out.push(self.log_backup_job(b, &store));
        }
        if let (Some(previous), Some(running)) = (&lock.pins.previous, &lock.pins.running) {
            out.push(self.backup_before_upgrade(b, &store, previous, running));
        }
        for r in &cluster.restores {
            let version = lock
                .pins
                .restores
                .get(&r.name.value)
                .cloned()
                .unwrap_or_else(|| cluster.version.text.clone());
            out.push(self.restore_job(b, &store, r, &version));
        }
        out
    }

    fn backup_scripts_name(&self) -> String {
        super::scripts_map_name(&self.names.cluster, "backup", scripts())
    }

    fn backup_scripts(&self) -> Object {
        self.scripts_map(self.backup_scripts_name(), scripts())
    }

    fn br_image(&self, version: &str) -> String {
        format!("{}/br:{version}", self.model.cluster.registry)
    }

    fn pd_addr(&self) -> String {
        format!(
            "{}.{}.svc:{PD_CLIENT_PORT}",
            self.names.pd_service, self.names.namespace
        )
    }

    /// The variables every BR step gets: where PD and the store are, the
    /// store's options, and the credentials by reference.
    fn br_env(&self, b: &BackupSection, store: &Store<'_>) -> Vec<Value> {
        let mut vars = vec![
            ("BR", "/br".to_string()),
            ("PD_ADDR", self.pd_addr()),
            ("STORAGE_BASE", store.base_url()),
        ];
        if let Some(s3) = &b.s3 {
            let s = &s3.value;
            for (name, value) in [
                ("S3_REGION", &s.region),
                ("S3_ENDPOINT", &s.endpoint),
                ("S3_PROVIDER", &s.provider),
            ] {
                if let Some(v) = value {
                    vars.push((name, v.value.clone()));
                }
            }
        }
        vars.push((
            "SEND_CREDENTIALS",
            if store.secret.is_some() {
                "true"
            } else {
                "false"
            }
            .to_string(),
        ));
        let mut out = env_values(&vars);
        out.extend(self.credentials_env(b, store));
        out
    }

    fn credentials_env(&self, b: &BackupSection, store: &Store<'_>) -> Vec<Value> {
        let from_secret = |name: &str, secret: &str, key: &str| json!({ "name": name, "valueFrom": { "secretKeyRef": { "key": key, "name": secret } } });
        let mut out = Vec::new();
        if let Some(az) = &b.azblob
            && let Some(account) = &az.value.account
        {
            out.push(json!({ "name": "AZURE_STORAGE_ACCOUNT", "value": account.value }));
        }
        let Some(secret) = store.secret else {
            return out;
        };
        match store.scheme {
            "s3" => {
                out.push(from_secret("AWS_ACCESS_KEY_ID", secret, "access_key"));
                out.push(from_secret("AWS_SECRET_ACCESS_KEY", secret, "secret_key"));
            }
            "gcs" => out.push(json!({
                "name": "GOOGLE_APPLICATION_CREDENTIALS",
                "value": format!("{CREDENTIALS_DIR}/credentials.json"),
            })),
            _ => out.push(from_secret("AZURE_STORAGE_KEY", secret, "storage_key")),
        }
        out
    }

    /// A container that runs one of the backup scripts.
    fn backup_container(
        &self,
        name: &str,
        image: &str,
        script: &str,
        env: Vec<Value>,
        store: &Store<'_>,
    ) -> Value {
        let mut mounts = vec![
            mount("run", RUN_DIR, false),
            mount("scripts", SCRIPTS_DIR, true),
            mount("tmp", "/tmp", false),
        ];
        if store.scheme == "gcs" && store.secret.is_some() {
            mounts.push(mount("credentials", CREDENTIALS_DIR, true));
        }
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", format!("{SCRIPTS_DIR}/{script}")],
            "env": env,
            "resources": {},
            "securityContext": security_context(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": mounts,
        })
    }

    /// The pod spec of a backup step: the given containers (and init
    /// containers), the scripts, scratch space and the credentials file.
    fn backup_pod(
        &self,
        b: &BackupSection,
        store: &Store<'_>,
        init: Vec<Value>,
        containers: Vec<Value>,
        role: &str,
    ) -> Value {
        // BR and the storage CLIs never call the Kubernetes API, so the pod
        // gets no service account token. A named `service_account` still
        // works for cloud identity: the EKS and Azure identity webhooks add
        // their own projected token volume, and GKE answers from the
        // metadata server (the webhooks' documented behaviour; not tested
        // here).
        let mut spec = obj(json!({
            "automountServiceAccountToken": false,
            "containers": containers,
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": false,
        }));
        if !init.is_empty() {
            spec.insert("initContainers".into(), Value::Array(init));
        }
        spec.insert("restartPolicy".into(), json!("Never"));
        spec.insert("schedulerName".into(), json!("default-scheduler"));
        spec.insert(
            "securityContext".into(),
            json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
        );
        if let Some(sa) = &b.service_account {
            spec.insert("serviceAccountName".into(), json!(sa.value));
        }
        spec.insert("terminationGracePeriodSeconds".into(), json!(30));
        let mut volumes = vec![
            json!({ "name": "run", "emptyDir": {} }),
            json!({ "name": "scripts", "configMap": { "defaultMode": 493, "name": self.backup_scripts_name() } }),
            json!({ "name": "tmp", "emptyDir": {} }),
        ];
        if let (Some(secret), "gcs") = (store.secret, store.scheme) {
            volumes.push(json!({ "name": "credentials", "secret": {
                "defaultMode": 256,
                "items": [{ "key": "credentials", "path": "credentials.json" }],
                "secretName": secret,
            } }));
        }
        spec.insert("volumes".into(), Value::Array(volumes));
        json!({
            "metadata": { "labels": { LABEL_CLUSTER: self.names.cluster, LABEL_COMPONENT: role } },
            "spec": spec,
        })
    }

    /// A Job spec of one pod that never retries: a half-written backup or
    /// restore must not be repeated behind the reviewer's back.
    fn backup_job_spec(&self, template: Value) -> Value {
        json!({
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "backoffLimit": 0,
            "completionMode": "NonIndexed",
            "completions": 1,
            "manualSelector": false,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "suspend": false,
            "template": template,
        })
    }

    fn backup_cron_job(&self, b: &BackupSection, store: &Store<'_>) -> Object {
        let name = format!("{}-backup", self.names.cluster);
        let mut env = self.br_env(b, store);
        env.push(json!({ "name": "RUN_FILE", "value": format!("{RUN_DIR}/run") }));
        for (var, value) in [
            ("RATE_LIMIT", &b.rate_limit),
            ("CONCURRENCY", &b.concurrency),
        ] {
            if let Some(v) = value {
                env.push(json!({ "name": var, "value": v.value.to_string() }));
            }
        }
        let backup = self.backup_container("backup", &self.image("br"), "backup.sh", env, store);
        let prune = b.prune.as_ref().map_or(PruneMode::Job, |p| p.value);
        let (init, containers) = match prune {
            PruneMode::Lifecycle => (vec![], vec![backup]),
            PruneMode::Job => {
                let keep = b.keep.as_ref().map_or(DEFAULT_KEEP, |k| k.value);
                let mut vars = vec![
                    ("HOME", "/tmp".to_string()),
                    ("KEEP", keep.to_string()),
                    ("PREFIX", store.prefix.unwrap_or_default().to_string()),
                    ("RUN_FILE", format!("{RUN_DIR}/run")),
                ];
                match store.scheme {
                    "s3" => {
                        vars.push(("BUCKET", store.bucket.to_string()));
                        let s = &b.s3.as_ref().expect("s3 store").value;
                        if let Some(e) = &s.endpoint {
                            vars.push(("S3_ENDPOINT", e.value.clone()));
                        }
                        if let Some(r) = &s.region {
                            vars.push(("AWS_REGION", r.value.clone()));
                        }
                    }
                    "gcs" => vars.push(("BUCKET", store.bucket.to_string())),
                    _ => {
                        vars.push(("CONTAINER", store.bucket.to_string()));
                        // The Azure CLI keeps its state under its config
                        // folder; the root filesystem is read-only.
                        vars.push(("AZURE_CONFIG_DIR", "/tmp/azure".to_string()));
                    }
                }
                if store.scheme == "gcs" {
                    vars.push(("CLOUDSDK_CONFIG", "/tmp/gcloud".to_string()));
                }
                let mut env = env_values(&vars);
                env.extend(self.credentials_env(b, store));
                let image = b
                    .prune_image
                    .as_ref()
                    .map_or(store.prune_image.to_string(), |i| i.value.clone());
                let prune = self.backup_container("prune", &image, store.prune_script, env, store);
                (vec![backup], vec![prune])
            }
        };
        let template = self.backup_pod(b, store, init, containers, "backup");
        let value = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": self.metadata(&name, true, self.step_labels("backup", None), false),
            "spec": {
                "concurrencyPolicy": "Forbid",
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": { "labels": { LABEL_CLUSTER: self.names.cluster, LABEL_COMPONENT: "backup" } },
                    "spec": self.backup_job_spec(template),
                },
                "schedule": b.schedule.value,
                // A missed run (controller down) starts late by at most an
                // hour; later than that it waits for the next slot.
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "suspend": false,
                "timeZone": "Etc/UTC",
            },
        });
        Object {
            role: Role::Backup,
            kind: "CronJob",
            rendered: None,
            name,
            value,
        }
    }

    /// A Job of the backup family with a given name and containers.
    #[allow(clippy::too_many_arguments)]
    fn backup_job(
        &self,
        name: String,
        role: Role,
        what: &str,
        restore: Option<&str>,
        b: &BackupSection,
        store: &Store<'_>,
        container: Value,
    ) -> Object {
        let template = self.backup_pod(b, store, vec![], vec![container], what);
        let value = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(&name, true, self.step_labels(what, restore), false),
            "spec": self.backup_job_spec(template),
        });
        Object {
            role,
            kind: "Job",
            rendered: None,
            name,
            value,
        }
    }

    fn log_backup_job(&self, b: &BackupSection, store: &Store<'_>) -> Object {
        let mut env = self.br_env(b, store);
        env.push(json!({ "name": "LOG_STORAGE", "value": store.log_url(b) }));
        env.push(json!({ "name": "TASK_NAME", "value": self.names.cluster }));
        let container = self.backup_container(
            "log-backup",
            &self.image("br"),
            "log-backup-start.sh",
            env,
            store,
        );
        let object = self.backup_job(
            String::new(),
            Role::Backup,
            "log-backup",
            None,
            b,
            store,
            container,
        );
        // Named by its whole spec: an upgrade or a new location starts it
        // again, and the script does nothing when the task already runs.
        self.spec_named_job("log-backup", Role::Backup, object.value)
    }

    fn backup_before_upgrade(
        &self,
        b: &BackupSection,
        store: &Store<'_>,
        previous: &str,
        running: &str,
    ) -> Object {
        let mut env = self.br_env(b, store);
        env.push(json!({ "name": "RUN_NAME", "value": format!("before-{running}") }));
        // The old cluster is backed up with the old BR.
        let container =
            self.backup_container("backup", &self.br_image(previous), "backup.sh", env, store);
        let name = format!(
            "{}-backup-before-{}",
            self.names.cluster,
            name_part(running)
        );
        self.backup_job(
            name,
            Role::BackupBeforeUpgrade,
            "backup-before-upgrade",
            None,
            b,
            store,
            container,
        )
    }

    fn restore_job(
        &self,
        b: &BackupSection,
        store: &Store<'_>,
        r: &RestoreEntry,
        version: &str,
    ) -> Object {
        let mut env = self.br_env(b, store);
        let mut vars = vec![("FROM", r.from.value.clone())];
        match &r.until {
            Some(until) => {
                vars.push(("MODE", "point".to_string()));
                let log = r
                    .log_from
                    .as_ref()
                    .map_or_else(|| store.log_url(b), |l| l.value.clone());
                vars.push(("LOG_FROM", log));
                vars.push(("RESTORED_TS", until.value.clone()));
            }
            None => vars.push(("MODE", "full".to_string())),
        }
        env.extend(env_values(&vars));
        let container =
            self.backup_container("restore", &self.br_image(version), "restore.sh", env, store);
        // The entry as the user wrote it names the Job: it runs once, and
        // neither a re-sync nor an upgrade (the image is pinned in the lock)
        // runs it again.
        let entry = [
            ("name", r.name.value.as_str()),
            ("from", r.from.value.as_str()),
            ("until", r.until.as_ref().map_or("", |u| u.value.as_str())),
            (
                "log_from",
                r.log_from.as_ref().map_or("", |u| u.value.as_str()),
            ),
        ];
        let name = format!("{}-restore-{}", self.names.cluster, content_hash(entry));
        self.backup_job(
            name,
            Role::Restore,
            "restore",
            Some(&r.name.value),
            b,
            store,
            container,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::name_part;

    #[test]
    fn versions_become_name_parts() {
        assert_eq!(name_part("v8.5.2"), "v8-5-2");
        assert_eq!(name_part("v8.5.2-rc.1+build"), "v8-5-2-rc-1-build");
    }
}
