//! JSON Schemas of the files a user or an editor sees: `cluster.toml`,
//! `inventory.toml` and `placement.lock`, generated from the serde types so
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
    ]
    .into_iter()
    .map(|(name, schema)| {
        (
            name,
            serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n",
        )
    })
    .collect()
}
