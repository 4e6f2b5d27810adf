//! Evidence from the live cluster, fed back as files (`--observed FILE`).
//!
//! The compiler never talks to a cluster. A day-2 step that needs proof
//! (a store is Tombstone, a PD member is gone, a reclaim Job finished)
//! takes it from JSON the user captures and commits or passes along:
//!
//! - stores: what `pd-ctl store --state Up,Offline,Tombstone` prints (PD's
//!   `/pd/api/v1/stores` format, `stores[].store.{id,address,state_name}`;
//!   plain `pd-ctl store` leaves out Tombstone stores);
//! - members: what `pd-ctl member` prints (`members[].name`);
//! - reclaim Jobs: what `kubectl get jobs -l tidb-gitops.io/reclaim -o json`
//!   prints (`items[].metadata.labels`, `items[].status.succeeded`).
//!
//! Each file is recognised by its shape; several may be given. A store
//! absent from the evidence is unknown, never gone. Evidence that
//! contradicts the lock (a running store of an unknown address, a store
//! Tombstone that the lock says is up, a store Up that the lock says is
//! gone) is an error that says what differs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::lock::{Lock, State};
use crate::manifest::{Names, TIKV_PORT};
use crate::model::{Component, InstanceId};

/// The label on a reclaim Job naming the instance whose directory it wipes.
pub const LABEL_RECLAIM: &str = "tidb-gitops.io/reclaim";

/// One evidence file, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum File {
    /// `(store id, address, state name)`.
    Stores(Vec<(u64, String, String)>),
    Members(Vec<String>),
    /// Instance ids (from the reclaim label) whose Job succeeded.
    Reclaimed(Vec<String>),
}

/// The evidence, resolved against the lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The PD state name of each TiKV instance's store, where known.
    pub stores: BTreeMap<InstanceId, String>,
    /// PD's members, when a member list was given.
    pub members: Option<BTreeSet<String>>,
    /// Instances whose reclaim Job succeeded.
    pub reclaimed: BTreeSet<InstanceId>,
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty() && self.members.is_none() && self.reclaimed.is_empty()
    }
}

/// Reads one evidence file from its bytes: [`read`], after checking that
/// they are UTF-8 text (an error names the line and column of the first bad
/// byte).
pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<File, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let shown = String::from_utf8_lossy(bytes);
        let (line, column, text) = crate::diag::line_col(&shown, e.valid_up_to());
        let byte = bytes[e.valid_up_to()];
        format!(
            "{name}:{line}:{column}: not UTF-8 text: invalid byte 0x{byte:02x}\n  | {}\n  = help: save the file as UTF-8; {HELP}",
            crate::diag::clip_line(text, column)
        )
    })?;
    read(name, text)
}

const HELP: &str = "pass the JSON that `pd-ctl store --state Up,Offline,Tombstone`, `pd-ctl member` or `kubectl get jobs -l tidb-gitops.io/reclaim -o json` printed, unedited";

/// Reads one evidence file. Errors name the file, the line and column, and
/// show the line (cut around the column when it is long).
pub fn read(name: &str, text: &str) -> Result<File, String> {
    if text.starts_with('\u{feff}') {
        return Err(format!(
            "{name}:1:1: the file starts with a byte order mark (U+FEFF)\n  = help: save it as UTF-8 without a byte order mark; {HELP}"
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let line = text
            .split('\n')
            .nth(e.line().saturating_sub(1))
            .unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        format!(
            "{name}:{}:{}: {e}\n  | {}\n  = help: {HELP}",
            e.line(),
            e.column(),
            crate::diag::clip_line(line, e.column()),
        )
    })?;
    let shape = |what: &str| format!("{name}: {what}\n  = help: {HELP}");
    if let Some(stores) = value.get("stores") {
        let list = stores
            .as_array()
            .ok_or_else(|| shape("`stores` is not a list"))?;
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let store = &s["store"];
            let (Some(id), Some(address), Some(state)) = (
                store["id"].as_u64(),
                store["address"].as_str(),
                store["state_name"].as_str(),
            ) else {
                return Err(shape(&format!(
                    "stores[{i}] lacks store.id, store.address or store.state_name"
                )));
            };
            // A host name (at most 253 bytes), `:` and a port; anything
            // longer is no address PD printed.
            if address.len() > 260 || state.len() > 64 {
                return Err(shape(&format!(
                    "stores[{i}] has a store.address of {} bytes or a store.state_name of {} bytes, longer than PD writes them",
                    address.len(),
                    state.len()
                )));
            }
            out.push((id, address.to_string(), state.to_string()));
        }
        return Ok(File::Stores(out));
    }
    if let Some(members) = value.get("members") {
        let list = members
            .as_array()
            .ok_or_else(|| shape("`members` is not a list"))?;
        let mut out = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let name = m["name"]
                .as_str()
                .ok_or_else(|| shape(&format!("members[{i}] has no name")))?;
            out.push(name.to_string());
        }
        return Ok(File::Members(out));
    }
    if let Some(items) = value.get("items").and_then(Value::as_array) {
        let reclaimed = items
            .iter()
            .filter(|job| job["status"]["succeeded"].as_u64().unwrap_or(0) >= 1)
            .filter_map(|job| job["metadata"]["labels"][LABEL_RECLAIM].as_str())
            .map(str::to_string)
            .collect();
        return Ok(File::Reclaimed(reclaimed));
    }
    Err(shape(
        "neither a store list (`stores`), a member list (`members`) nor a Job list (`items`)",
    ))
}

/// Resolves the files against the lock: stores to instances by their
/// advertised address, members by name.
pub fn resolve(files: &[File], lock: &Lock, names: &Names) -> Result<Observed, Vec<String>> {
    let by_address: BTreeMap<String, (InstanceId, State)> = lock
        .entries
        .iter()
        .filter(|e| e.id.component == Component::Tikv)
        .map(|e| (format!("{}:{TIKV_PORT}", names.host(e.id)), (e.id, e.state)))
        .collect();
    let state_of = |id: InstanceId| {
        lock.entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| lock.entries[i].state)
    };
    let mut observed = Observed::default();
    let mut errors = Vec::new();
    for file in files {
        match file {
            File::Stores(stores) => {
                for (store, address, state) in stores {
                    let Some((id, lock_state)) = by_address.get(address) else {
                        // Stores of instances dropped from the lock stay
                        // listed as Tombstone until someone purges them.
                        if state != "Tombstone" {
                            errors.push(format!(
                                "store {store} at {address} is {state}, but no instance in placement.lock has that address: is this evidence from another cluster?"
                            ));
                        }
                        continue;
                    };
                    let contradiction = match (lock_state, state.as_str()) {
                        (State::Up, "Tombstone" | "Offline") => Some(format!(
                            "placement.lock says {id} is up, but PD lists its store {store} as {state}: it was taken out outside tidb-gitops; mark it in inventory.toml (node down or directory removed) so it is replaced"
                        )),
                        (State::Gone, s) if s != "Tombstone" => Some(format!(
                            "placement.lock says {id} is gone, but PD lists its store {store} as {state}"
                        )),
                        _ => None,
                    };
                    if let Some(c) = contradiction {
                        errors.push(c);
                    }
                    observed.stores.insert(*id, state.clone());
                }
            }
            File::Members(members) => {
                for name in members {
                    match InstanceId::parse(name).filter(|id| id.component == Component::Pd) {
                        None => errors.push(format!(
                            "PD member `{name}` is not a PD instance name of tidb-gitops: is this evidence from another cluster?"
                        )),
                        Some(id) => match state_of(id) {
                            None => errors.push(format!(
                                "PD member `{name}` is not in placement.lock"
                            )),
                            Some(State::Gone) => errors.push(format!(
                                "placement.lock says {id} is gone, but PD still lists it as a member"
                            )),
                            Some(_) => {}
                        },
                    }
                }
                observed
                    .members
                    .get_or_insert_with(BTreeSet::new)
                    .extend(members.iter().cloned());
            }
            File::Reclaimed(ids) => {
                observed
                    .reclaimed
                    .extend(ids.iter().filter_map(|id| InstanceId::parse(id)));
            }
        }
    }
    if errors.is_empty() {
        Ok(observed)
    } else {
        Err(errors)
    }
}

/// The command that produces the evidence an instance in `state` waits
/// for, or none.
pub fn awaited(lock: &Lock, names: &Names, component: Component, state: State) -> Option<String> {
    // pd-ctl runs in a PD pod that is up.
    let pd = lock
        .entries
        .iter()
        .find(|e| e.id.component == Component::Pd && e.state == State::Up)
        .map_or(InstanceId::new(Component::Pd, 0), |e| e.id);
    let pd_ctl = |cmd: &str| {
        format!(
            "kubectl -n {ns} exec {pod}-0 -- /pd-ctl -u http://127.0.0.1:2379 {cmd}",
            ns = names.namespace,
            pod = names.workload(pd),
        )
    };
    match (component, state) {
        (Component::Tikv, State::Leaving | State::Removing | State::Failed) => Some(format!(
            "{} > stores.json",
            pd_ctl("store --state Up,Offline,Tombstone")
        )),
        (Component::Pd, State::Leaving | State::Failed) => {
            Some(format!("{} > members.json", pd_ctl("member")))
        }
        (_, State::Gone) => Some(format!(
            "kubectl -n {} get jobs -l {LABEL_RECLAIM} -o json > reclaims.json",
            names.namespace
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_recognised_by_shape() {
        let stores = r#"{"count":1,"stores":[{"store":{"id":4,"address":"a:20160","state_name":"Up"},"status":{}}]}"#;
        assert_eq!(
            read("s.json", stores).unwrap(),
            File::Stores(vec![(4, "a:20160".into(), "Up".into())])
        );
        let members =
            r#"{"header":{},"members":[{"name":"pd-0"},{"name":"pd-1"}],"leader":{"name":"pd-0"}}"#;
        assert_eq!(
            read("m.json", members).unwrap(),
            File::Members(vec!["pd-0".into(), "pd-1".into()])
        );
        let jobs = r#"{"kind":"List","items":[
            {"metadata":{"labels":{"tidb-gitops.io/reclaim":"tikv-3"}},"status":{"succeeded":1}},
            {"metadata":{"labels":{"tidb-gitops.io/reclaim":"tikv-4"}},"status":{"active":1}}]}"#;
        assert_eq!(
            read("j.json", jobs).unwrap(),
            File::Reclaimed(vec!["tikv-3".into()])
        );
    }

    #[test]
    fn bad_files_say_where() {
        let err = read("s.json", "{\n  \"stores\": [,]\n}").unwrap_err();
        assert!(err.starts_with("s.json:2:14:"), "{err}");
        assert!(err.contains("\"stores\": [,]"), "{err}");
        let err = read("x.json", "{\"count\": 3}").unwrap_err();
        assert!(err.contains("neither a store list"), "{err}");
        let err = read("s.json", r#"{"stores":[{"store":{"id":1}}]}"#).unwrap_err();
        assert!(err.contains("stores[0] lacks"), "{err}");
    }
}
