//! Checking a project through the real binary: audit exit codes and
//! ignores, verify and repair, malformed lock files, statistics, and
//! concurrent clients on one project.

use std::fs;

use mlld_e2e::project::*;
use mlld_e2e::{assert_fails, assert_ok, tree};
use serde_json::Value;

#[test]
fn audit_exit_codes_thresholds_and_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    // No lock: nothing to audit, clean.
    assert_ok(&client.run(&["audit"]));
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));

    let out = client.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = mlld_e2e::project::envelope_data(&out.stdout);
    let found: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["advisory"].as_str().unwrap().to_string(),
                f["import"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "sarah-k/2024-001".to_string(),
                "mlld://sarah-k/llm-cache".to_string()
            ),
            (
                "devops-dan/2024-001".to_string(),
                "mlld://devops-dan/http-retry".to_string()
            ),
            (
                "sarah-k/2024-002".to_string(),
                "mlld://textkit/text-wrap".to_string()
            ),
        ]
    );
    assert_eq!(
        client.run(&["audit", "--severity", "medium"]).status.code(),
        Some(1)
    );
    assert_eq!(
        client
            .run(&["audit", "--severity", "critical"])
            .status
            .code(),
        Some(0)
    );
    let text = String::from_utf8(client.run(&["audit", "--severity", "high"]).stdout).unwrap();
    assert!(
        text.contains("cache-poisoning") && text.contains("sarah-k/2024-001"),
        "{text}"
    );

    // An ignore list with reasons in the project config.
    write(
        &client.project,
        ".mlld/config.json",
        r#"{"audit": {"ignore": [{"advisory": "sarah-k/2024-001", "reason": "we never cache model output"}]}}"#,
    );
    let out = client.run(&["audit", "--severity", "high", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = mlld_e2e::project::envelope_data(&out.stdout);
    assert_eq!(
        report["findings"][0]["ignored"],
        "we never cache model output"
    );
    assert_eq!(client.run(&["audit"]).status.code(), Some(1));

    // Errors are 2: a bad threshold, an ignore without a reason.
    assert_fails(&client.run(&["audit", "--severity", "severe"]), 2);
    write(
        &client.project,
        ".mlld/config.json",
        r#"{"audit": {"ignore": [{"advisory": "sarah-k/2024-001", "reason": ""}]}}"#,
    );
    let stderr = assert_fails(&client.run(&["audit"]), 2);
    assert!(stderr.contains("reason"), "{stderr}");
}

#[test]
fn verify_detects_tampering_and_install_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@mlld-lang/mcp-tools", "--yes"]));
    assert_ok(&client.run(&["verify"]));
    let cache = client.project.join(".mlld/cache/gist/mlld-lang");
    let contents: Vec<_> = tree(&cache)
        .into_iter()
        .filter(|f| f.ends_with("content.mld"))
        .collect();
    assert_eq!(contents.len(), 2);
    fs::write(cache.join(&contents[0]), "/run {rm -rf ~}\n").unwrap();
    fs::remove_dir_all(cache.join(&contents[1]).parent().unwrap()).unwrap();

    let out = client.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = mlld_e2e::project::envelope_data(&out.stdout);
    let mut states: Vec<&str> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    states.sort();
    assert_eq!(states, ["missing", "tampered"]);

    let report = json(&client.run(&["install", "--json"]));
    assert_eq!(report["repaired"].as_array().unwrap().len(), 1);
    assert_eq!(report["installed"].as_array().unwrap().len(), 1);
    assert!(assert_ok(&client.run(&["verify"])).contains("2 of 2 cached modules match"));
}

#[test]
fn a_malformed_lock_file_is_an_error_with_its_position_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let bad = "{\n  \"version\": \"1.0.0\",\n  \"imports\": {,}\n}\n";
    write(&client.project, ".mlld/mlld.lock.json", bad);
    for args in [
        vec!["install", "--yes"],
        vec!["resolve", "@jdoe/date-fmt", "--yes"],
        vec!["verify"],
        vec!["audit"],
    ] {
        let stderr = assert_fails(&client.run(&args), 2);
        assert!(stderr.contains("mlld.lock.json:3:"), "{args:?}: {stderr}");
    }
    assert_eq!(
        fs::read_to_string(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        bad
    );
}

#[test]
fn stats_are_off_by_default_and_aggregate_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@jdoe/csv-tools", "--yes"]));
    assert!(
        !client.project.join(".mlld/stats").exists(),
        "off by default"
    );

    write(&client.project, ".mlld/config.json", r#"{"stats": true}"#);
    assert_ok(&client.run(&["resolve", "@jdoe/cron-parse", "--yes"]));
    assert_ok(&client.run(&["install"]));
    let agg = json(&client.run(&["stats", "--json"]));
    assert_eq!(agg["enabled"], true);
    assert_eq!(agg["modules"]["mlld://jdoe/cron-parse"]["import"], 1);
    // csv-tools, date-fmt, string-case (earlier) and cron-parse are cached: 4 cache hits.
    assert_eq!(agg["totals"]["cache-hit"], 4);
    assert_eq!(agg["totals"]["import"], 1);
    let lines = fs::read_to_string(client.project.join(".mlld/stats/usage.jsonl")).unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "import");
    assert!(first["timestamp"].is_string());

    let later = json(&client.run(&["stats", "--json", "--since", "2999-01-01"]));
    assert_eq!(later["events"], 0);
    assert!(assert_ok(&client.run(&["stats"])).contains("mlld://jdoe/cron-parse"));
    assert_fails(&client.run(&["stats", "--since", "yesterday"]), 2);
}

#[test]
fn concurrent_clients_serialise_on_the_project_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let modules = [
        "@jdoe/date-fmt",
        "@textkit/md-toc",
        "@nora-ml/rag-chunk",
        "@mlld-lang/github-pr",
        "@devops-dan/k8s-status",
        "@sarah-k/token-count",
    ];
    let children: Vec<_> = modules
        .iter()
        .map(|m| client.command(&["resolve", m, "--yes"]).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let keys = locked_keys(&client);
    for m in modules {
        let import = format!("mlld://{}", &m[1..]);
        assert!(keys.contains(&import), "{import} lost: {keys:?}");
    }
    assert_ok(&client.run(&["verify"]));
}
