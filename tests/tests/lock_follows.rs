//! The lock follows the project, through the real binary against the
//! example site: `remove`, pruning on `install`, pins that bound `update`,
//! `outdated`, and modules the indexer rejected.
//!
//! The example gist modules' imports: eval-report → llm-judge, llm-cache;
//! llm-judge → http-retry, prompt-kit; prompt-kit → text-wrap; llm-cache →
//! json-utils; json-utils → string-case; slugify → string-case; yaml-front
//! → json-utils.

use std::fs;
use std::path::Path;

use mlld_e2e::project::*;
use mlld_e2e::{
    Client, JSON_UTILS_GIST, JSON_UTILS_NEW, JSON_UTILS_OLD, assert_fails, assert_ok, tree,
};
use serde_json::Value;

const EVAL_REPORT_ONLY: [&str; 6] = [
    "mlld://devops-dan/http-retry",
    "mlld://mlld-lang/prompt-kit",
    "mlld://sarah-k/eval-report",
    "mlld://sarah-k/llm-cache",
    "mlld://sarah-k/llm-judge",
    "mlld://textkit/text-wrap",
];
const SHARED: [&str; 4] = [
    "mlld://adamavenir/json-utils",
    "mlld://adamavenir/yaml-front",
    "mlld://textkit/slugify",
    "mlld://textkit/string-case",
];

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Imports eval-report (and its six-module tree), slugify and yaml-front
/// (which share json-utils and string-case with it), all installed.
fn installed_project(dir: &Path) -> Client {
    let (_, client) = synced(dir);
    write(
        &client.project,
        "main.mld",
        "/import { @report } from @sarah-k/eval-report\n/import { @slug } from @textkit/slugify\n",
    );
    write(
        &client.project,
        "docs/notes.mld",
        "/import { @y } from mlld://adamavenir/yaml-front\n",
    );
    assert_ok(&client.run(&["install", "--yes", "--offline"]));
    let mut all: Vec<&str> = EVAL_REPORT_ONLY.iter().chain(&SHARED).copied().collect();
    all.sort();
    assert_eq!(locked_keys(&client), all);
    client
}

/// The gist cache directories (`user/gist`) that hold an entry.
fn cached_gists(client: &Client) -> Vec<String> {
    let mut dirs: Vec<String> = tree(&client.project.join(".mlld/cache/gist"))
        .iter()
        .map(|f| f.split('/').take(2).collect::<Vec<_>>().join("/"))
        .collect();
    dirs.dedup();
    dirs
}

fn mlld_lock_keys(client: &Client) -> Vec<String> {
    let text = fs::read(client.project.join("mlld-lock.json")).unwrap();
    let v: Value = serde_json::from_slice(&text).unwrap();
    v["modules"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn remove_drops_the_module_and_what_only_it_needed_with_their_caches() {
    let dir = tempfile::tempdir().unwrap();
    let client = installed_project(dir.path());
    assert_eq!(cached_gists(&client).len(), 10);
    assert!(mlld_lock_keys(&client).contains(&"@sarah-k/llm-judge".to_string()));
    write(
        &client.project,
        "main.mld",
        "/import { @slug } from @textkit/slugify\n",
    );

    let out = client.run(&["remove", "@sarah-k/eval-report"]);
    let text = assert_ok(&out);
    assert!(
        text.starts_with("removed mlld://sarah-k/eval-report ("),
        "{text}"
    );
    assert!(
        text.contains("removed mlld://sarah-k/llm-judge (") && text.contains(", no longer needed)"),
        "{text}"
    );
    assert!(text.contains("deleted .mlld/cache/gist/sarah-k/"), "{text}");
    assert!(!stderr(&out).contains("still imports"), "{}", stderr(&out));
    assert_eq!(locked_keys(&client), SHARED, "what others need stays");
    // The cache entries went with them; what stays is still cached.
    let cached = cached_gists(&client);
    assert_eq!(cached.len(), 4, "{cached:?}");
    assert!(cached.contains(&format!("adamavenir/{JSON_UTILS_GIST}")));
    assert!(
        !tree(&client.project.join(".mlld/cache/gist/sarah-k"))
            .iter()
            .any(|_| true)
    );
    assert!(!client.project.join(".mlld/cache/gist/sarah-k").exists());
    // mlld's own lock follows.
    let mlld = mlld_lock_keys(&client);
    assert_eq!(
        mlld,
        [
            "@adamavenir/json-utils",
            "@adamavenir/yaml-front",
            "@textkit/slugify",
            "@textkit/string-case"
        ]
    );
    // The lock is complete for the project: --frozen and verify agree.
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));
    assert_ok(&client.run(&["verify"]));
}

#[test]
fn remove_accepts_every_spelling_and_warns_when_a_source_still_imports() {
    let dir = tempfile::tempdir().unwrap();
    let client = installed_project(dir.path());
    // Still imported by main.mld: removed, with a warning naming the line.
    let out = client.run(&["remove", "mlld://sarah-k/eval-report", "--json"]);
    let envelope: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert_eq!(envelope["formatVersion"], 1);
    assert_eq!(envelope["command"], "remove");
    let report = &envelope["data"];
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["import"].as_str().unwrap())
        .collect();
    assert_eq!(removed[0], "mlld://sarah-k/eval-report");
    let mut sorted = removed.clone();
    sorted.sort();
    assert_eq!(sorted, EVAL_REPORT_ONLY);
    assert_eq!(report["stillImported"], serde_json::json!(["main.mld:1"]));
    let err = stderr(&out);
    assert!(
        err.contains("warning: main.mld:1 still imports mlld://sarah-k/eval-report")
            && err.contains("install"),
        "{err}"
    );
    // ... so the frozen install that follows names it.
    let err = assert_fails(&client.run(&["install", "--frozen", "--offline"]), 2);
    assert!(
        err.contains("eval-report is imported but not in the lock file"),
        "{err}"
    );

    // user/module and a different case of the user name.
    let out = client.run(&["remove", "TEXTKIT/slugify"]);
    assert!(assert_ok(&out).contains("removed mlld://textkit/slugify"));
    // string-case stays: json-utils (through yaml-front) needs it.
    assert!(locked_keys(&client).contains(&"mlld://textkit/string-case".to_string()));
}

#[test]
fn remove_refuses_unknown_modules_pins_and_modules_others_need() {
    let dir = tempfile::tempdir().unwrap();
    let client = installed_project(dir.path());
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();

    let err = assert_fails(&client.run(&["remove", "@sarah-k/llm-judgee"]), 2);
    assert!(
        err.contains("@sarah-k/llm-judgee is not in the lock file")
            && err.contains("Did you mean")
            && err.contains("llm-judge"),
        "{err}"
    );
    let err = assert_fails(&client.run(&["remove", "@jdoe/date-fmt"]), 2);
    assert!(err.contains("not in the lock file"), "{err}");
    let err = assert_fails(&client.run(&["remove", "@sarah-k/llm-judge"]), 2);
    assert!(
        err.contains("mlld://sarah-k/llm-judge is a dependency of mlld://sarah-k/eval-report"),
        "{err}"
    );
    let err = assert_fails(&client.run(&["remove", "@textkit/slugify@b20e54d"]), 2);
    assert!(err.contains("without a pin"), "{err}");
    let err = assert_fails(&client.run(&["remove", "not a module"]), 2);
    assert!(err.contains("not a module reference"), "{err}");
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before,
        "nothing changed"
    );
}

#[test]
fn remove_a_versioned_module_and_its_versioned_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    // http-kit 1.0.0 needs @alice-dev/table-fmt@~0.2.0; json-utils has both layouts.
    for r in [
        "@bobcodes/http-kit@1.0.0",
        "@adamavenir/json-utils",
        "mlld://adamavenir/json-utils",
    ] {
        assert_ok(&client.run(&["resolve", r, "--yes", "--offline"]));
    }
    let modules = |c: &Client| -> Vec<String> {
        lock(c)["modules"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(
        modules(&client),
        [
            "@adamavenir/json-utils",
            "@alice-dev/table-fmt",
            "@bobcodes/http-kit"
        ]
    );
    let registry_cache = client.project.join(".mlld/cache/registry");
    assert!(registry_cache.join("alice-dev/table-fmt").is_dir());

    let err = assert_fails(&client.run(&["remove", "@alice-dev/table-fmt"]), 2);
    assert!(
        err.contains("is a dependency of @bobcodes/http-kit"),
        "{err}"
    );

    let text = assert_ok(&client.run(&["remove", "@bobcodes/http-kit"]));
    assert!(
        text.contains("removed @bobcodes/http-kit (1.0.0)")
            && text.contains("removed @alice-dev/table-fmt (0.2.")
            && text.contains("deleted .mlld/cache/registry/bobcodes/http-kit/1.0.0"),
        "{text}"
    );
    assert_eq!(modules(&client), ["@adamavenir/json-utils"]);
    assert!(!registry_cache.join("bobcodes").exists());
    assert!(!registry_cache.join("alice-dev").exists());
    let mlld = mlld_lock_keys(&client);
    assert!(
        !mlld
            .iter()
            .any(|k| k.contains("http-kit") || k.contains("table-fmt")),
        "{mlld:?}"
    );

    // `@` names the versioned module, `mlld://` the gist one: each removes only its own.
    let text = assert_ok(&client.run(&["remove", "mlld://adamavenir/json-utils"]));
    assert!(
        text.contains("removed mlld://adamavenir/json-utils"),
        "{text}"
    );
    assert_eq!(modules(&client), ["@adamavenir/json-utils"]);
    assert!(
        !lock(&client)["imports"]
            .as_object()
            .unwrap()
            .contains_key("mlld://adamavenir/json-utils")
    );
    assert_eq!(mlld_lock_keys(&client), ["@adamavenir/json-utils"]);
    let source =
        serde_json::from_slice::<Value>(&fs::read(client.project.join("mlld-lock.json")).unwrap())
            .unwrap()["modules"]["@adamavenir/json-utils"]["source"]
            .clone();
    assert_eq!(source, "registry://@adamavenir/json-utils@2.0.0");
    assert_ok(&client.run(&["remove", "@adamavenir/json-utils"]));
    assert!(lock(&client)["modules"].is_null());
    assert_eq!(mlld_lock_keys(&client), Vec::<String>::new());
    assert_ok(&client.run(&["verify"]));
}

#[test]
fn install_prunes_what_no_import_reaches_and_frozen_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let client = installed_project(dir.path());
    // llm-cache (high) comes with eval-report: audit fails while it is locked.
    assert_fails(&client.run(&["audit"]), 1);
    write(
        &client.project,
        "main.mld",
        "/import { @slug } from @textkit/slugify\n",
    );
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();
    let err = assert_fails(&client.run(&["install", "--frozen", "--offline"]), 2);
    assert!(
        err.contains("the lock holds 6 modules that no import in the project reaches any more")
            && EVAL_REPORT_ONLY.iter().all(|k| err.contains(k))
            && err.contains("--frozen"),
        "{err}"
    );
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before
    );

    let out = client.run(&["install", "--offline"]);
    let text = assert_ok(&out);
    for k in EVAL_REPORT_ONLY {
        assert!(
            text.contains(&format!("removed {k} ("))
                && text.contains("no import in the project reaches it any more"),
            "{k} in {text}"
        );
    }
    assert_eq!(locked_keys(&client), SHARED);
    assert_eq!(cached_gists(&client).len(), 4);
    assert!(!mlld_lock_keys(&client).contains(&"@sarah-k/llm-cache".to_string()));
    // The advisories of modules the project no longer uses no longer fail it.
    assert_ok(&client.run(&["audit"]));
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));
    // A second run has nothing to remove.
    let again = json(&client.run(&["install", "--offline", "--json"]));
    assert_eq!(again["removed"], serde_json::json!([]));
}

#[test]
fn mlld_config_dependencies_keep_their_tree_until_they_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "mlld-config.json",
        r#"{"dependencies": {"@bobcodes/http-kit": "1.0.0"}}"#,
    );
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @jdoe/date-fmt\n",
    );
    assert_ok(&client.run(&["install", "--yes", "--offline"]));
    let versioned = |c: &Client| -> Vec<String> {
        lock(c)["modules"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(
        versioned(&client),
        ["@alice-dev/table-fmt", "@bobcodes/http-kit"]
    );
    // A second install keeps them: the config reaches both.
    let report = json(&client.run(&["install", "--offline", "--json"]));
    assert_eq!(report["removed"], serde_json::json!([]));

    write(
        &client.project,
        "mlld-config.json",
        r#"{"dependencies": {}}"#,
    );
    let report = json(&client.run(&["install", "--offline", "--json"]));
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["import"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["@alice-dev/table-fmt", "@bobcodes/http-kit"]);
    assert_eq!(versioned(&client), Vec::<String>::new());
    assert_eq!(locked_keys(&client), ["mlld://jdoe/date-fmt"]);
    assert!(
        !client
            .project
            .join(".mlld/cache/registry/bobcodes")
            .exists()
    );
}

#[test]
fn a_revision_pin_in_a_source_holds_update_and_frozen_install_agrees() {
    let dir = tempfile::tempdir().unwrap();
    // json-utils locked at 996153b from serial 1; serial 2 has b20e54d as newest.
    let (_, client) = synced_then_moved_on(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@996153b\n",
    );
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();

    let out = assert_ok(&client.run(&["update", "--yes", "--offline"]));
    assert!(
        out.contains(&format!(
            "kept mlld://adamavenir/json-utils {} ({} available outside 996153b pinned at main.mld:1)",
            &JSON_UTILS_OLD[..12],
            &JSON_UTILS_NEW[..12]
        )),
        "{out}"
    );
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before,
        "the pin holds the lock"
    );
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));

    // Moving the pin forward: update follows it, and asks about the change as a change.
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@b20e54d\n",
    );
    let err = assert_fails(&client.run(&["update", "--offline"]), 2);
    assert!(
        err.contains(&format!(
            "moving mlld://adamavenir/json-utils from revision {} to {} changes its content",
            &JSON_UTILS_OLD[..12],
            &JSON_UTILS_NEW[..12]
        )) && err.contains("--yes")
            && !err.contains("for the first time"),
        "{err}"
    );
    // The refusal's way to review works without a terminal (`update --json`
    // would need the same approval).
    assert!(
        err.contains("`mlld-registry info adamavenir/json-utils` shows the module"),
        "{err}"
    );
    assert!(!err.contains("update --json"), "{err}");
    assert_ok(&client.run(&["info", "adamavenir/json-utils", "--offline"]));
    let out = assert_ok(&client.run(&["update", "--yes", "--offline"]));
    assert!(
        out.contains(&format!(
            "updated mlld://adamavenir/json-utils {} → {}",
            &JSON_UTILS_OLD[..12],
            &JSON_UTILS_NEW[..12]
        )),
        "{out}"
    );
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));
    // Naming the module: the answer is about it, not every locked module.
    let out = assert_ok(&client.run(&["update", "adamavenir/json-utils", "--offline"]));
    assert!(
        out.contains("adamavenir/json-utils is at the newest revision or version its pins allow"),
        "{out}"
    );

    // A pin moved back: install re-locks it, and says it is a change.
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@996153b\n",
    );
    let err = assert_fails(&client.run(&["install", "--offline"]), 2);
    assert!(
        err.contains("moving mlld://adamavenir/json-utils from revision b20e54d to 996153b (as a pin asks) changes its content")
            && !err.contains("for the first time"),
        "{err}"
    );
}

#[test]
fn a_range_pin_in_a_source_bounds_update_and_says_what_is_outside() {
    let dir = tempfile::tempdir().unwrap();
    // Serial 1 has json-utils 1.0.0 only.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&mlld_e2e::examples().join("registry"), &registry);
    let folder = registry.join("modules/adamavenir/json-utils");
    fs::remove_file(folder.join("1.1.0.json")).unwrap();
    fs::remove_file(folder.join("2.0.0.json")).unwrap();
    fs::write(folder.join("tags.json"), "{\"latest\": \"1.0.0\"}\n").unwrap();
    mlld_e2e::build_with(
        &dir.path().join("site"),
        Some(1),
        mlld_e2e::build_time(),
        mlld_e2e::demo_key(),
        &registry,
    );
    let (_, client) = synced(dir.path());
    // Locked as `latest`, imported as ^1.0.
    assert_ok(&client.run(&["resolve", "@adamavenir/json-utils", "--yes", "--offline"]));
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@^1.0\n",
    );
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));

    // Serial 2: 1.1.0 and 2.0.0 (latest).
    mlld_e2e::build_examples(&dir.path().join("site"), Some(2), mlld_e2e::build_time());
    assert_ok(&client.run(&["sync", "--offline"]));
    let err = assert_fails(&client.run(&["update", "--offline"]), 2);
    assert!(
        err.contains("moving @adamavenir/json-utils from 1.0.0 to 1.1.0 changes its content")
            && !err.contains("for the first time"),
        "{err}"
    );
    let out = assert_ok(&client.run(&["update", "--yes", "--offline"]));
    assert!(
        out.contains(
            "updated @adamavenir/json-utils 1.0.0 → 1.1.0 (2.0.0 available outside ^1.0 pinned at main.mld:1)"
        ),
        "{out}"
    );
    let entry = lock(&client)["modules"]["@adamavenir/json-utils"].clone();
    assert_eq!(entry["version"], "1.1.0");
    assert_eq!(entry["requested"], "^1.0");
    // The lock update left is one `install --frozen` accepts.
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));
    let out = assert_ok(&client.run(&["update", "--yes", "--offline"]));
    assert!(
        out.contains(
            "kept @adamavenir/json-utils 1.1.0 (2.0.0 available outside ^1.0 pinned at main.mld:1)"
        ),
        "{out}"
    );
    let changes = json(&client.run(&["update", "--yes", "--offline", "--json"]));
    assert_eq!(changes, serde_json::json!([]));
}

#[test]
fn outdated_lists_current_wanted_and_latest_and_exits_1_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    // Gist json-utils locked at 996153b, pinned there; b20e54d is newest.
    let (_, client) = synced_then_moved_on(dir.path());
    assert_ok(&client.run(&[
        "resolve",
        "@adamavenir/json-utils@1.0.0",
        "--yes",
        "--offline",
    ]));
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@996153b\n/import { @y } from @adamavenir/json-utils@^1.0\n",
    );
    assert_ok(&client.run(&["install", "--frozen", "--offline"]));

    let out = client.run(&["outdated"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["MODULE", "CURRENT", "WANTED", "LATEST", "PINNED"],
        "{text}"
    );
    let old = &JSON_UTILS_OLD[..12];
    let new = &JSON_UTILS_NEW[..12];
    assert_eq!(
        lines[1],
        [
            "mlld://adamavenir/json-utils",
            old,
            old,
            new,
            "996153b",
            "at",
            "main.mld:1"
        ],
        "{text}"
    );
    assert_eq!(
        lines[2],
        [
            "@adamavenir/json-utils",
            "1.0.0",
            "1.1.0",
            "2.0.0",
            "^1.0",
            "at",
            "main.mld:2"
        ],
        "{text}"
    );
    assert_eq!(lines[3].join(" "), "2 modules outdated", "{text}");

    let out = client.run(&["outdated", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["formatVersion"], 1);
    let report = &envelope["data"];
    let rows = report["outdated"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["kind"], "gist");
    assert_eq!(rows[0]["current"], JSON_UTILS_OLD);
    assert_eq!(rows[0]["wanted"], JSON_UTILS_OLD);
    assert_eq!(rows[0]["latest"], JSON_UTILS_NEW);
    assert_eq!(
        rows[1],
        serde_json::json!({
            "import": "@adamavenir/json-utils", "kind": "versioned",
            "current": "1.0.0", "wanted": "1.1.0", "latest": "2.0.0",
            "requested": "1.0.0", "pins": [{"spec": "^1.0", "at": "main.mld:2"}]
        })
    );

    // What `outdated` calls wanted is what `update` moves to.
    assert_ok(&client.run(&["update", "--yes", "--offline"]));
    let rows = serde_json::from_slice::<Value>(&client.run(&["outdated", "--json"]).stdout)
        .unwrap()["data"]["outdated"]
        .clone();
    assert_eq!(rows[1]["current"], "1.1.0");
    assert_eq!(rows[0]["current"], JSON_UTILS_OLD);

    // Pins that contradict each other are an error (exit 2).
    write(
        &client.project,
        "other.mld",
        "/import { @x } from @adamavenir/json-utils@b20e54d\n",
    );
    let err = assert_fails(&client.run(&["outdated"]), 2);
    assert!(err.contains("make the pins agree"), "{err}");
}

#[test]
fn outdated_exits_0_when_everything_is_newest_and_documents_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@jdoe/date-fmt", "--yes", "--offline"]));
    let text = assert_ok(&client.run(&["outdated"]));
    assert!(
        text.contains("every locked module is at the newest"),
        "{text}"
    );
    let report = json(&client.run(&["outdated", "--json"]));
    assert_eq!(report, serde_json::json!({"outdated": []}));
    let help = assert_ok(&client.run(&["outdated", "--help"]));
    assert!(
        help.contains("Examples:")
            && help.contains("mlld-registry outdated --json")
            && help.contains("1  at least one locked module is outdated"),
        "{help}"
    );
    let help = assert_ok(&client.run(&["remove", "--help"]));
    assert!(
        help.contains("Examples:") && help.contains("Exit codes:"),
        "{help}"
    );
}

#[test]
fn a_module_the_indexer_rejected_is_reported_with_the_snapshot_s_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    // The signed manifest records what was left out, and why.
    let manifest = mlld_e2e::verify_site(&site.dir);
    let rejected: Vec<(String, Option<String>)> = manifest
        .rejected
        .iter()
        .map(|r| (r.module.clone(), r.version.clone()))
        .collect();
    for wanted in [
        ("devops-dan/deploy-notes", None),
        ("jdoe/quick-helpers", None),
        ("@alice-dev/table-fmt", Some("0.3.0")),
        ("@bobcodes/http-kit", Some("0.9.0")),
    ] {
        let wanted = (wanted.0.to_string(), wanted.1.map(String::from));
        assert!(rejected.contains(&wanted), "{wanted:?} in {rejected:?}");
    }

    let err = assert_fails(&client.run(&["resolve", "@jdoe/quick-helpers", "--yes"]), 2);
    assert!(
        err.contains("jdoe/quick-helpers was rejected by the registry's indexer")
            && err.contains("owned by `mallory`")
            && !err.contains("registered recently"),
        "{err}"
    );
    let err = assert_fails(
        &client.run(&["resolve", "mlld://devops-dan/deploy-notes"]),
        2,
    );
    assert!(
        err.contains("was rejected") && err.contains("no module file"),
        "{err}"
    );
    // A rejected version: the pin selects nothing else.
    let err = assert_fails(
        &client.run(&["resolve", "@alice-dev/table-fmt@0.3.0", "--yes"]),
        2,
    );
    assert!(
        err.contains(
            "@alice-dev/table-fmt@0.3.0 matches none of the versions in this snapshot (0.2.0, 0.1.0): the registry's indexer rejected 0.3.0: "
        ) && err.contains("0.3.0: "),
        "{err}"
    );
    let err = assert_fails(
        &client.run(&["resolve", "@bobcodes/http-kit@0.9.0", "--yes"]),
        2,
    );
    assert!(err.contains("0.9.0: ") && err.contains("rejected"), "{err}");
    // `install` says it for the import that names it, with its position.
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @jdoe/date-fmt\n/import { @h } from @jdoe/quick-helpers\n",
    );
    let err = assert_fails(&client.run(&["install", "--yes", "--offline"]), 2);
    assert!(
        err.contains("main.mld:2") && err.contains("was rejected by the registry's indexer"),
        "{err}"
    );
    // A module nobody registered is still unknown, not rejected.
    let err = assert_fails(
        &client.run(&["resolve", "@jdoe/no-such-module", "--yes"]),
        2,
    );
    assert!(
        err.contains("not in the registry snapshot") && !err.contains("rejected"),
        "{err}"
    );
}

#[test]
fn an_entry_locked_with_resolve_and_never_imported_is_not_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let client = installed_project(dir.path());
    // Locked by hand, imported nowhere: the registry guide's `resolve`, then `install`.
    assert_ok(&client.run(&["resolve", "@jdoe/date-fmt", "--yes", "--offline"]));
    let report = json(&client.run(&["install", "--offline", "--json"]));
    assert_eq!(report["removed"], serde_json::json!([]));
    assert!(locked_keys(&client).contains(&"mlld://jdoe/date-fmt".to_string()));
    // Once imports that held entries are deleted, those go; date-fmt stays until `remove`.
    write(&client.project, "main.mld", "");
    write(&client.project, "docs/notes.mld", "");
    let report = json(&client.run(&["install", "--offline", "--json"]));
    assert_eq!(report["removed"].as_array().unwrap().len(), 10);
    assert_eq!(locked_keys(&client), ["mlld://jdoe/date-fmt"]);
    let text = assert_ok(&client.run(&["remove", "@jdoe/date-fmt"]));
    assert!(text.contains("removed mlld://jdoe/date-fmt"), "{text}");
    assert_eq!(locked_keys(&client), Vec::<String>::new());
    assert_eq!(
        tree(&client.project.join(".mlld/cache")),
        Vec::<String>::new()
    );
}
