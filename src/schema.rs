//! JSON Schemas of the files a user or an editor sees: `cluster.toml`,
//! `inventory.toml` and `placement.lock`, and of the JSON `plan` and `diff`
//! print, generated from the serde types so
//! they cannot drift from what the reader accepts. The checked-in copies in
//! `schemas/` are compared with these by a test.

use crate::input::{ClusterFile, InventoryFile, schema_of};
use crate::lock::LockFile;

/// Each schema's file name under `schemas/` and its text.
pub fn all() -> Vec<(&'static str, String)> {
    [
        ("cluster.schema.json", schema_of::<ClusterFile>()),
        ("inventory.schema.json", schema_of::<InventoryFile>()),
        ("placement-lock.schema.json", schema_of::<LockFile>()),
        ("plan.schema.json", crate::plan::schema()),
        ("diff.schema.json", crate::diff::schema()),
    ]
    .into_iter()
    .map(|(name, schema)| {
        (
            name,
            serde_json::to_string_pretty(&sorted(schema)).expect("a schema serializes") + "\n",
        )
    })
    .collect()
}

/// The value with every map's keys in byte order, so the checked-in files
/// do not depend on the order in which the generator inserted them.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(list) => Value::Array(list.into_iter().map(sorted).collect()),
        other => other,
    }
}
