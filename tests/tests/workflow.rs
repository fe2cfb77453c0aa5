//! The daily workflow through the real binary, against a synced snapshot:
//! install (scanning the project, transitive, frozen, offline, pinned old
//! locks), update, audit, verify, ls, stats, approval without a TTY.

use std::fs;
use std::path::Path;

use mlld_e2e::{
    Client, JSON_UTILS_GIST, JSON_UTILS_NEW, JSON_UTILS_OLD, Site, assert_fails, assert_ok,
    build_examples, build_from, build_time, demo_key, examples, rewound_gists, tree,
};
use serde_json::Value;

/// A client whose config trusts the demo site's key and which has synced it.
fn synced(dir: &Path) -> (Site, Client) {
    let site = if dir.join("site/latest.json").exists() {
        Site {
            dir: dir.join("site"),
            report: Default::default(),
        }
    } else {
        build_examples(&dir.join("site"), Some(1), build_time())
    };
    let client = Client::new(dir);
    fs::create_dir_all(&client.home).unwrap();
    fs::write(
        client.home.join("config.json"),
        serde_json::to_vec(&serde_json::json!({
            "registry": site.dir,
            "trustedKeys": [site.public_key()],
        }))
        .unwrap(),
    )
    .unwrap();
    assert_ok(&client.run(&["sync", "--offline"]));
    (site, client)
}

/// A client that locked json-utils at its older revision from serial 1, then
/// synced serial 2, where json-utils has moved on.
fn synced_then_moved_on(dir: &Path) -> (Site, Client) {
    let site_dir = dir.join("site");
    build_from(
        &site_dir,
        Some(1),
        build_time(),
        demo_key(),
        &examples().join("registry"),
        &rewound_gists(dir),
    );
    let (_, client) = synced(dir);
    let out = client.run(&["resolve", "@adamavenir/json-utils", "--yes"]);
    assert!(assert_ok(&out).contains(&format!("json-utils at {}", &JSON_UTILS_OLD[..12])));
    let site = build_examples(&site_dir, Some(2), build_time());
    assert_ok(&client.run(&["sync", "--offline"]));
    (site, client)
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn lock(client: &Client) -> Value {
    serde_json::from_slice(&fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap()).unwrap()
}

fn locked_keys(client: &Client) -> Vec<String> {
    lock(client)["imports"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(&assert_ok(out)).unwrap()
}

/// A project importing modules in every file kind, plus files that must be skipped.
fn sample_project(p: &Path) {
    write(
        p,
        "main.mld",
        "/import { @report } from @sarah-k/eval-report\n/import { @h } from @local/helpers\n",
    );
    write(
        p,
        "docs/guide.md",
        "# Guide\n/import { @slug } from @textkit/slugify\n```mlld\n/import { @x } from @jdoe/date-fmt\n```\n",
    );
    write(
        p,
        "tools/run.mlld",
        "import @nora-ml/embed-utils as @embed\n",
    );
    write(
        p,
        "notes.mld.md",
        "@import { y } from \"mlld://adamavenir/yaml-front\"\n",
    );
    write(
        p,
        "node_modules/pkg/x.mld",
        "/import { @a } from @jdoe/cron-parse\n",
    );
    write(p, "build/out.mld", "/import { @a } from @jdoe/csv-tools\n");
    write(p, ".gitignore", "build/\n");
    write(
        p,
        ".git/hooks/x.mld",
        "/import { @a } from @mlld-lang/std-log\n",
    );
    write(
        p,
        "readme.txt",
        "/import { @a } from @mlld-lang/mcp-tools\n",
    );
}

#[test]
fn install_scans_the_project_and_locks_dependencies_transitively() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    sample_project(&client.project);

    // Without a terminal, new imports need --yes; nothing is written.
    let stderr = assert_fails(&client.run(&["install"]), 2);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());

    let report = json(&client.run(&["install", "--yes", "--json", "--offline"]));
    let keys = locked_keys(&client);
    assert_eq!(
        keys,
        [
            "mlld://adamavenir/json-utils",
            "mlld://adamavenir/yaml-front",
            "mlld://devops-dan/http-retry",
            "mlld://mlld-lang/prompt-kit",
            "mlld://nora-ml/embed-utils",
            "mlld://sarah-k/eval-report",
            "mlld://sarah-k/llm-cache",
            "mlld://sarah-k/llm-judge",
            "mlld://textkit/slugify",
            "mlld://textkit/string-case",
            "mlld://textkit/text-wrap",
        ],
        "skipped: the mlld example fence, node_modules, .gitignore'd build/, .git, .txt"
    );
    assert_eq!(report["installed"].as_array().unwrap().len(), keys.len());
    assert_eq!(report["locked"].as_array().unwrap().len(), keys.len());
    assert_eq!(client.guard.connections(), 0);

    // A second run changes nothing; --frozen passes.
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();
    let again = json(&client.run(&["install", "--frozen", "--offline", "--json"]));
    assert_eq!(again["cached"].as_array().unwrap().len(), keys.len());
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before
    );
}

#[test]
fn frozen_fails_instead_of_changing_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "a.mld",
        "/import { @x } from @jdoe/date-fmt\n",
    );
    assert_ok(&client.run(&["install", "--yes"]));
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();
    write(
        &client.project,
        "b.mld",
        "/import { @y } from @jdoe/csv-tools\n",
    );
    let stderr = assert_fails(&client.run(&["install", "--frozen", "--yes"]), 2);
    assert!(
        stderr.contains("mlld://jdoe/csv-tools is imported but not in the lock file")
            && stderr.contains("--frozen")
            && stderr.contains("b.mld:1"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before
    );
    // A pin in the source that differs from the lock is a change too.
    write(
        &client.project,
        "b.mld",
        "/import { @y } from @devops-dan/http-retry@69334cc\n",
    );
    fs::write(client.project.join(".mlld/mlld.lock.json"), &before).unwrap();
    assert_ok(&client.run(&["resolve", "@devops-dan/http-retry", "--yes"]));
    let stderr = assert_fails(&client.run(&["install", "--frozen"]), 2);
    assert!(
        stderr.contains("locked at 5ac6ee0d574b5e6a, but a pin asks for 69334cc"),
        "{stderr}"
    );
}

#[test]
fn an_old_lock_installs_its_pinned_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced_then_moved_on(dir.path());
    let lock_text = fs::read_to_string(client.project.join(".mlld/mlld.lock.json")).unwrap();
    assert!(lock_text.contains(JSON_UTILS_OLD));

    // The lock, checked out in a fresh project: installs the locked revision, not the newest.
    let fresh = dir.path().join("fresh");
    write(&fresh, ".mlld/mlld.lock.json", &lock_text);
    write(
        &fresh,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils\n",
    );
    let fresh_arg = fresh.to_str().unwrap();
    assert_ok(&client.run(&["install", "--frozen", "--offline", "--project", fresh_arg]));
    let cache = fresh.join(format!(".mlld/cache/gist/adamavenir/{JSON_UTILS_GIST}"));
    let revisions: std::collections::BTreeSet<String> = tree(&cache)
        .iter()
        .map(|f| f.split('/').next().unwrap().to_string())
        .collect();
    assert_eq!(revisions, [JSON_UTILS_OLD.to_string()].into());
    let content = fs::read_to_string(cache.join(JSON_UTILS_OLD).join("content.mld")).unwrap();
    assert!(content.contains("version: 1.1.0"), "{content}");
    assert_eq!(
        fs::read_to_string(fresh.join(".mlld/mlld.lock.json")).unwrap(),
        lock_text
    );
    assert_ok(&client.run(&["verify", "--project", fresh_arg]));

    // ls shows the newer revision the snapshot has.
    let rows = json(&client.run(&["ls", "--json", "--project", fresh_arg]));
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["import"] == "mlld://adamavenir/json-utils")
        .unwrap();
    assert_eq!(row["state"], "ok");
    assert_eq!(row["newer"], JSON_UTILS_NEW);
    assert!(
        assert_ok(&client.run(&["ls", "--project", fresh_arg])).contains("newer: b20e54d6dbf4")
    );
}

#[test]
fn update_shows_the_change_and_changed_content_needs_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced_then_moved_on(dir.path());
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();

    let stderr = assert_fails(&client.run(&["update", "adamavenir/json-utils"]), 2);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before
    );

    let changes = json(&client.run(&["update", "adamavenir/json-utils", "--yes", "--json"]));
    let c = &changes[0];
    assert_eq!(c["import"], "mlld://adamavenir/json-utils");
    assert_eq!(c["from"], JSON_UTILS_OLD);
    assert_eq!(c["to"], JSON_UTILS_NEW);
    assert_eq!(c["contentChanged"], true);
    assert_eq!(c["toSize"], 1134);
    assert_eq!(c["toDate"], "2024-06-03T18:40:02Z");
    assert_eq!(
        c["fromSize"], 1123,
        "the old content, from the project cache"
    );
    let diff = c["diff"].as_str().unwrap();
    assert!(
        diff.contains("-version: 1.1.0") && diff.contains("+version: 1.2.0"),
        "{diff}"
    );
    let l = lock(&client);
    assert_eq!(
        l["imports"]["mlld://adamavenir/json-utils"]["gistRevision"],
        JSON_UTILS_NEW
    );
    assert!(
        client
            .project
            .join(format!(
                ".mlld/cache/gist/adamavenir/{JSON_UTILS_GIST}/{JSON_UTILS_NEW}/content.mld"
            ))
            .is_file()
    );
    // Nothing left to update.
    assert!(assert_ok(&client.run(&["update"])).contains("newest revision"));
    let stderr = assert_fails(&client.run(&["update", "jdoe/date-fmt"]), 2);
    assert!(stderr.contains("not in the lock file"), "{stderr}");
}

#[test]
fn audit_exit_codes_thresholds_and_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    // No lock: nothing to audit, clean.
    assert_ok(&client.run(&["audit"]));
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));

    let out = client.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
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
