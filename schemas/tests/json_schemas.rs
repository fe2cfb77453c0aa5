//! The JSON Schemas under schemas/json/ must match the Rust types.

#[test]
fn generated_schemas_are_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    let mut stale = Vec::new();
    for (name, text) in mlld_schemas::json_schemas() {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if on_disk == text => {}
            _ => stale.push(name),
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schemas {stale:?}: run `cargo xtask schemas` and commit the result"
    );
}

#[test]
fn the_registry_schema_knows_the_rules() {
    let schemas = mlld_schemas::json_schemas();
    let registry = &schemas
        .iter()
        .find(|(n, _)| *n == "registry.schema.json")
        .unwrap()
        .1;
    let v: serde_json::Value = serde_json::from_str(registry).unwrap();
    assert_eq!(v["required"], serde_json::json!(["version", "author"]));
    assert!(registry.contains("[0-9a-f]{20,32}"), "gist id pattern");
    let lock = &schemas
        .iter()
        .find(|(n, _)| *n == "lock.schema.json")
        .unwrap()
        .1;
    assert!(lock.contains("gistRevision") && lock.contains("approvedAt"));
}
