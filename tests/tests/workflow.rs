//! The daily workflow through the real binary, against a synced snapshot:
//! install (scanning the project, transitive, frozen, offline, pinned old
//! locks) and update, with approval without a TTY.

use std::fs;
use std::path::Path;

use mlld_e2e::project::*;
use mlld_e2e::{JSON_UTILS_GIST, JSON_UTILS_NEW, JSON_UTILS_OLD, assert_fails, assert_ok, tree};

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
        "@import { x } from \"mlld://adamavenir/json-utils\"\n",
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
