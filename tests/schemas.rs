//! The JSON Schemas in `schemas/` are generated from the input types; this
//! test fails when the checked-in copies drift. `UPDATE_GOLDEN=1` rewrites them.

use std::path::PathBuf;

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, text) in tidb_gitops::schema::all() {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/{stale:?} differ from the types; run `UPDATE_GOLDEN=1 cargo test --test schemas` and commit them"
    );
}

#[test]
fn schemas_reject_unknown_keys_and_describe_fields() {
    let (_, cluster) = &tidb_gitops::schema::all()[0];
    let value: serde_json::Value = serde_json::from_str(cluster).unwrap();
    assert_eq!(value["additionalProperties"], serde_json::json!(false));
    let pd = &value["$defs"]["PdSection"];
    assert_eq!(pd["additionalProperties"], serde_json::json!(false));
    assert_eq!(
        pd["properties"]["storage"]["$ref"],
        serde_json::json!("#/$defs/Quantity")
    );
    assert!(value["$defs"]["Quantity"]["pattern"].is_string());
}
