//! Expiry protects decisions about what is newest, not content pinned by
//! integrity: on an expired snapshot, installing a locked project (frozen and
//! offline too), verifying, `ls`, `info` and `search` keep working with a
//! one-line warning, while locking new content, `update` and `audit` refuse
//! unless `--allow-expired` is given (and `audit` then says its advisories
//! may be stale).

use std::path::Path;

use mlld_e2e::project::*;
use mlld_e2e::{Client, assert_fails, assert_ok, build_examples, build_time};

/// A client that synced serial 1 and locked eval-report (with its
/// dependencies), and the same registry as serial 2 built 15 days ago: an
/// expired snapshot file. The store is then made to hold serial 2 as its
/// current snapshot, as it would after syncing it back when it was fresh.
fn expired_project(dir: &Path) -> (Client, std::path::PathBuf) {
    let (_, client) = synced(dir);
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    std::fs::remove_dir_all(client.project.join(".mlld/cache")).unwrap();
    let old = build_examples(
        &dir.join("old"),
        Some(2),
        build_time() - time::Duration::days(15),
    );
    (client, old.snapshot())
}

/// Points the store's state at the stored snapshot `sha256` (serial 2).
fn make_current(client: &Client, sha256: &str) {
    let path = client.home.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["current"]["snapshot"] = sha256.into();
    state["current"]["serial"] = 2.into();
    state["floor"] = 2.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
}

fn warned(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning: Vec<&str> = stderr.lines().filter(|l| l.contains("expired")).collect();
    assert_eq!(warning.len(), 1, "one warning line: {stderr}");
    assert!(
        warning[0].starts_with("warning: the registry snapshot (serial 2) expired 1 day ago"),
        "{stderr}"
    );
    assert!(warning[0].contains("run `mlld-registry sync`"), "{stderr}");
}

#[test]
fn an_expired_snapshot_still_installs_pinned_content_but_chooses_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let (client, old) = expired_project(dir.path());
    let old = old.to_str().unwrap();
    // The expired file first, by --snapshot; then the same as the synced snapshot.
    check_expired_use(&client, &["--snapshot", old]);
    let sha = old.rsplit('/').next().unwrap().trim_end_matches(".tar.zst");
    assert!(client.home.join("snapshots").join(sha).is_dir());
    make_current(&client, sha);
    check_expired_use(&client, &[]);

    // Knowingly: audit runs and says its advisories may be stale.
    let out = client.run(&["audit", "--allow-expired"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the high advisory still applies"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("advisories may be stale"));
    let out = client.run(&["audit", "--allow-expired", "--json"]);
    let report: serde_json::Value = mlld_e2e::project::envelope_data(&out.stdout);
    assert!(report["expired"].is_string(), "{report}");
    assert_ok(&client.run(&["resolve", "@textkit/slugify", "--yes", "--allow-expired"]));

    // sync itself still refuses an expired site.
    let fresh = Client::new(&dir.path().join("other"));
    let site = dir.path().join("old");
    let stderr = assert_fails(
        &fresh.run(&[
            "sync",
            "--from",
            site.to_str().unwrap(),
            "--trusted-key",
            site.join("mlld-registry.pub").to_str().unwrap(),
        ]),
        2,
    );
    assert!(stderr.contains("expired"), "{stderr}");
}

fn check_expired_use(client: &Client, extra: &[&str]) {
    // Pinned content: works, with one warning line.
    for args in [
        &["install", "--frozen", "--offline"][..],
        &["install"],
        &["verify"],
        &["ls"],
        &["info", "sarah-k/llm-cache"],
        &["search", "json"],
    ] {
        let out = client.run(&[args, extra].concat());
        assert_ok(&out);
        if args[0] != "verify" {
            warned(&out);
        }
    }
    // Choosing content: refused, naming sync (not blaming the site).
    for args in [
        &["resolve", "@textkit/slugify", "--yes"][..],
        &["update", "--yes"],
        &["audit"],
    ] {
        let stderr = assert_fails(&client.run(&[args, extra].concat()), 2);
        assert!(
            stderr.contains("run `mlld-registry sync`"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("--allow-expired"), "{stderr}");
        assert!(!stderr.contains("stopped publishing"), "{stderr}");
    }
    assert!(!locked_keys(client).contains(&"mlld://textkit/slugify".to_string()));
}
