//! One JSON envelope for every command's `--json`:
//! `{"formatVersion": 1, "command", "data", "errors": [{code, message, file, line, column}]}`,
//! one document on stdout whatever the outcome; its JSON Schema is
//! published beside the others.

use std::fs;

use mlld_e2e::project::{synced, synced_then_moved_on, write};
use serde_json::Value;

fn envelope(client: &mlld_e2e::Client, args: &[&str]) -> (Option<i32>, Value) {
    let out = client.run(args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}: not one JSON document:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["formatVersion"], 1, "{args:?}: {v}");
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["formatVersion", "command", "data", "errors"],
        "{args:?}: {v}"
    );
    (out.status.code(), v)
}

#[test]
fn every_command_prints_one_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @slug } from @textkit/slugify\n",
    );
    let site_dir = site.dir.to_str().unwrap().to_string();
    for (args, code, command) in [
        (
            vec!["sync", "--from", site_dir.as_str(), "--offline"],
            0,
            "sync",
        ),
        (
            vec!["resolve", "@sarah-k/eval-report", "--yes"],
            0,
            "resolve",
        ),
        (vec!["install", "--yes"], 0, "install"),
        (vec!["update", "--yes"], 0, "update"),
        (vec!["audit"], 1, "audit"),
        (vec!["verify"], 0, "verify"),
        (vec!["ls"], 0, "ls"),
        (vec!["stats"], 0, "stats"),
        (vec!["search", "slugify"], 0, "search"),
        (vec!["info", "textkit/slugify"], 0, "info"),
        (vec!["info", "@alice-dev/prompt-lib"], 0, "info"),
        (vec!["config"], 0, "config"),
    ] {
        let mut full = args.clone();
        full.push("--json");
        let (got, v) = envelope(&client, &full);
        assert_eq!(got, Some(code), "{full:?}: {v}");
        assert_eq!(v["command"], command, "{v}");
        assert_eq!(v["errors"], serde_json::json!([]), "{full:?}: {v}");
        assert!(!v["data"].is_null(), "{full:?}: {v}");
    }
    let (_, doctor) = envelope(&client, &["doctor", "--json"]);
    assert_eq!(doctor["command"], "doctor");
}

#[test]
fn no_match_is_an_empty_result_and_a_failure_is_an_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let (code, v) = envelope(&client, &["search", "zzzzqqq", "--json"]);
    assert_eq!(code, Some(1));
    assert_eq!(v["data"], serde_json::json!([]));
    assert_eq!(v["errors"], serde_json::json!([]));

    let (code, v) = envelope(&client, &["resolve", "@nobody/nothing", "--json"]);
    assert_eq!(code, Some(2));
    assert_eq!(v["data"], Value::Null);
    let error = &v["errors"][0];
    assert_eq!(error["code"], "error");
    assert!(error["message"].as_str().unwrap().contains("nobody"), "{v}");
    for key in ["file", "line", "column"] {
        assert_eq!(error[key], Value::Null, "{v}");
    }

    // An error about a file carries its position.
    let lock = client.project.join(".mlld/mlld.lock.json");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    fs::write(
        &lock,
        "{\n  \"version\": \"1.0.0\",\n  \"imports\": {,}\n}\n",
    )
    .unwrap();
    let (code, v) = envelope(&client, &["audit", "--json"]);
    assert_eq!(code, Some(2));
    let error = &v["errors"][0];
    assert_eq!(error["code"], "invalid-input", "{v}");
    assert!(
        error["file"].as_str().unwrap().ends_with("mlld.lock.json"),
        "{v}"
    );
    assert_eq!(error["line"], 3, "{v}");
    assert!(error["column"].as_u64().unwrap() > 0, "{v}");

    // So does one about the project's config file, with one position in
    // its message (serde's own "at line … column …" is not repeated).
    fs::remove_file(&lock).unwrap();
    let config = client.project.join(".mlld/config.json");
    fs::write(&config, "{\n  \"audit\": {\n    \"bogus\": 1\n  }\n}\n").unwrap();
    let (code, v) = envelope(&client, &["audit", "--json"]);
    assert_eq!(code, Some(2));
    let error = &v["errors"][0];
    assert_eq!(error["code"], "invalid-input", "{v}");
    assert!(
        error["file"].as_str().unwrap().ends_with("config.json"),
        "{v}"
    );
    assert_eq!(error["line"], 3, "{v}");
    assert!(error["column"].as_u64().unwrap() > 0, "{v}");
    let message = error["message"].as_str().unwrap();
    assert!(!message.contains(" at line "), "{v}");
}

#[test]
fn the_audit_envelope_matches_its_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced_then_moved_on(dir.path());
    let (_, v) = envelope(&client, &["audit", "--json"]);
    let schemas = mlld_schemas::json_schemas();
    let (_, text) = schemas
        .iter()
        .find(|(name, _)| *name == "output-audit.schema.json")
        .expect("the audit envelope's schema is published");
    let schema: Value = serde_json::from_str(text).unwrap();
    let published = mlld_e2e::workspace_root().join("schemas/json/output-audit.schema.json");
    assert_eq!(
        fs::read_to_string(published).unwrap(),
        *text,
        "run `cargo xtask schemas`"
    );
    // Every key of the output is a property the schema declares.
    let finding_props = &schema["$defs"]["Finding"]["properties"];
    for finding in v["data"]["findings"].as_array().unwrap() {
        for key in finding.as_object().unwrap().keys() {
            assert!(finding_props.get(key).is_some(), "{key} not in the schema");
        }
    }
    let report_props = &schema["$defs"]["AuditReport"]["properties"];
    for key in v["data"].as_object().unwrap().keys() {
        assert!(report_props.get(key).is_some(), "{key} not in the schema");
    }
    // Parses as the published type.
    let typed: mlld_schemas::output::Envelope<mlld_schemas::output::AuditReport> =
        serde_json::from_value(v).unwrap();
    assert!(!typed.data.unwrap().findings.is_empty());
}

#[test]
fn every_problem_of_an_install_is_its_own_error_object_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @a } from @nobody-here/nothing\n\n/import { @b } from @textkit/slugify@zzzz\n",
    );
    write(
        &client.project,
        "b.mld",
        "/import { @c } from @bad..name/x\n",
    );
    let (code, v) = envelope(&client, &["install", "--json", "--yes"]);
    assert_eq!(code, Some(2), "{v}");
    assert!(v["data"].is_null(), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{v}");
    let at: Vec<(String, u64)> = errors
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap();
            let name = std::path::Path::new(file).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                e["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(at.contains(&("main.mld".into(), 1)), "{v}");
    assert!(at.contains(&("main.mld".into(), 3)), "{v}");
    assert!(at.contains(&("b.mld".into(), 1)), "{v}");
    for e in errors {
        let code = e["code"].as_str().unwrap();
        assert!(code == "unresolved" || code == "invalid-input", "{e}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
    }
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());
}
