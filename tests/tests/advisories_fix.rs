//! Advisories you can act on: an advisory's ranges (`affectedVersions`,
//! `patchedVersions`, `affectedRevisions`, `before`) decide which locked
//! versions and revisions it affects, and `audit` says what fixes it and
//! the dependency path that brought the module in. Uses the examples'
//! `adamavenir/2024-001` (json-utils below 1.1.0 and its old gist revision)
//! and `sarah-k/2024-002` (text-wrap, every revision before Dec 2024).

use std::fs;
use std::process::Output;

use mlld_e2e::project::{envelope_data, lock, synced, synced_then_moved_on};
use mlld_e2e::{JSON_UTILS_NEW, JSON_UTILS_OLD, assert_ok};
use serde_json::Value;

/// `audit --json`'s report, whatever the exit code.
fn audit_json(client: &mlld_e2e::Client) -> (Option<i32>, Value) {
    let out = client.run(&["audit", "--json"]);
    (out.status.code(), envelope_data(&out.stdout))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn findings_of<'a>(report: &'a Value, advisory: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["advisory"] == advisory)
        .collect()
}

#[test]
fn a_versioned_module_below_the_patched_range_is_fixed_by_update_or_a_new_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@adamavenir/json-utils@1.0.0", "--yes"]));

    // Pinned exactly: 1.1.0 fixes it, but the pin must change first.
    let (code, report) = audit_json(&client);
    assert_eq!(code, Some(1));
    let found = findings_of(&report, "adamavenir/2024-001");
    assert_eq!(found.len(), 1, "{report:#}");
    let f = found[0];
    assert_eq!(f["import"], "@adamavenir/json-utils");
    assert_eq!(f["version"], "1.0.0");
    assert_eq!(f["patchedVersions"], ">=1.1.0");
    assert_eq!(
        f["fix"],
        serde_json::json!({"version": "1.1.0", "byUpdate": false})
    );
    let human = text(&client.run(&["audit"]));
    assert!(
        human.contains("fixed in 1.1.0 (patched: >=1.1.0), outside what the project asks for"),
        "{human}"
    );

    // A source pin that allows the fix: `update` moves within the sources'
    // pins, and the audit says so as `outdated` and `update` do.
    let main = client.project.join("main.mld");
    fs::write(&main, "/import { @x } from @adamavenir/json-utils@^1.0\n").unwrap();
    let (_, report) = audit_json(&client);
    let f = findings_of(&report, "adamavenir/2024-001")[0].clone();
    assert_eq!(
        f["fix"],
        serde_json::json!({"version": "1.1.0", "byUpdate": true}),
        "{report:#}"
    );
    fs::remove_file(&main).unwrap();

    // Asked as ^1.0.0 (as after `resolve @adamavenir/json-utils@^1.0` when
    // 1.0.0 was newest): `update` reaches the fix.
    let path = client.project.join(".mlld/mlld.lock.json");
    let mut l = lock(&client);
    l["modules"]["@adamavenir/json-utils"]["requested"] = "^1.0.0".into();
    fs::write(&path, serde_json::to_vec_pretty(&l).unwrap()).unwrap();
    let (_, report) = audit_json(&client);
    let f = findings_of(&report, "adamavenir/2024-001")[0].clone();
    assert_eq!(
        f["fix"],
        serde_json::json!({"version": "1.1.0", "byUpdate": true})
    );
    let human = text(&client.run(&["audit"]));
    assert!(
        human.contains(
            "fixed in 1.1.0 (patched: >=1.1.0): run `mlld-registry update @adamavenir/json-utils`"
        ),
        "{human}"
    );
    assert_ok(&client.run(&["update", "--yes"]));
    let (code, report) = audit_json(&client);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(findings_of(&report, "adamavenir/2024-001").is_empty());
}

#[test]
fn a_patched_version_is_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    // latest is 2.0.0: within patchedVersions.
    assert_ok(&client.run(&["resolve", "@adamavenir/json-utils", "--yes"]));
    let (code, report) = audit_json(&client);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["findings"], serde_json::json!([]));
}

#[test]
fn an_affected_gist_revision_is_fixed_by_the_newest_revision() {
    let dir = tempfile::tempdir().unwrap();
    // Locked at the old revision 996153b, which the advisory lists.
    let (_, client) = synced_then_moved_on(dir.path());
    let (code, report) = audit_json(&client);
    assert_eq!(code, Some(1), "{report:#}");
    let f = findings_of(&report, "adamavenir/2024-001")[0].clone();
    assert_eq!(f["gistRevision"], JSON_UTILS_OLD);
    assert_eq!(
        f["fix"],
        serde_json::json!({"revision": JSON_UTILS_NEW, "byUpdate": true})
    );
    let human = text(&client.run(&["audit"]));
    assert!(
        human.contains(&format!(
            "fixed in {}: run `mlld-registry update adamavenir/json-utils`",
            &JSON_UTILS_NEW[..12]
        )),
        "{human}"
    );
    // A source pin holding the module at the affected revision: `update`
    // would keep it there, so the fix is the newest revision, outside the pin.
    let main = client.project.join("main.mld");
    let pin = format!(
        "/import {{ @x }} from @adamavenir/json-utils@{}\n",
        &JSON_UTILS_OLD[..7]
    );
    fs::write(&main, pin).unwrap();
    let (_, report) = audit_json(&client);
    let f = findings_of(&report, "adamavenir/2024-001")[0].clone();
    assert_eq!(
        f["fix"],
        serde_json::json!({"revision": JSON_UTILS_NEW, "byUpdate": false}),
        "{report:#}"
    );
    fs::remove_file(&main).unwrap();
    assert_ok(&client.run(&["update", "--yes"]));
    let (code, report) = audit_json(&client);
    assert_eq!(code, Some(0), "{report:#}");
}

#[test]
fn every_revision_before_the_time_is_affected_and_the_path_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    let (code, report) = audit_json(&client);
    assert_eq!(code, Some(1));
    let f = findings_of(&report, "sarah-k/2024-002")[0].clone();
    assert_eq!(f["import"], "mlld://textkit/text-wrap");
    assert_eq!(f["fix"], Value::Null, "no revision after Dec 2024 exists");
    assert_eq!(
        f["path"],
        serde_json::json!([
            "mlld://sarah-k/eval-report",
            "mlld://sarah-k/llm-judge",
            "mlld://mlld-lang/prompt-kit",
            "mlld://textkit/text-wrap"
        ])
    );
    let cache = findings_of(&report, "sarah-k/2024-001")[0].clone();
    assert_eq!(
        cache["path"],
        serde_json::json!(["mlld://sarah-k/eval-report", "mlld://sarah-k/llm-cache"])
    );
    let human = text(&client.run(&["audit"]));
    assert!(
        human.contains(
            "path: sarah-k/eval-report → sarah-k/llm-judge → mlld-lang/prompt-kit → textkit/text-wrap"
        ),
        "{human}"
    );
    assert!(
        human.contains("no fixed revision in this snapshot yet"),
        "{human}"
    );
    // The root is its own path.
    let (_, report) = audit_json(&client);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["path"][0] == "mlld://sarah-k/eval-report"),
        "{report:#}"
    );
}
