//! A correctly signed manifest whose records hold invalid values (a gist id
//! or revision of `../..`, a versioned file path leaving its module) is
//! refused by `sync` with nothing written, so it can never become current
//! and never reach a lock file.

use std::fs;
use std::path::Path;

use mlld_e2e::{
    Client, RawMember, assert_fails, build_examples, build_time, craft_snapshot, demo_key,
    snapshot_members, tree,
};
use serde_json::{Value, json};

/// The example snapshot with its manifest changed by `edit` and signed again
/// with the site's own key.
fn resigned(site_snapshot: &Path, dest: &Path, edit: impl FnOnce(&mut Value)) {
    let members = snapshot_members(site_snapshot);
    let mut manifest: Value = serde_json::from_slice(&members[0].1).unwrap();
    edit(&mut manifest);
    let mut bytes = serde_json::to_vec(&manifest).unwrap();
    bytes.push(b'\n');
    let sig = demo_key().sign(&bytes, "mlld-registry manifest (crafted)");
    let mut raw = vec![
        RawMember::regular("manifest.json", &bytes),
        RawMember::regular("manifest.json.minisig", sig.as_bytes()),
    ];
    raw.extend(members[2..].iter().map(|(n, b)| RawMember::regular(n, b)));
    craft_snapshot(dest, &raw);
}

fn assert_refused(client: &Client, snapshot: &Path, key: &Path, expect: &str) {
    let out = client.run(&[
        "sync",
        "--offline",
        "--from",
        snapshot.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains(expect), "expected `{expect}` in:\n{stderr}");
    let stored: Vec<_> = tree(&client.home)
        .into_iter()
        .filter(|f| !f.starts_with("tmp") && f != ".lock")
        .collect();
    assert!(stored.is_empty(), "the store was written to: {stored:?}");
    assert!(tree(&client.home.join("tmp")).is_empty());
    assert!(!client.project.join(".mlld").exists());
}

/// A change to a manifest.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[test]
fn a_signed_manifest_with_invalid_fields_is_refused_by_sync() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    let evil = dir.path().join("evil.tar.zst");
    let cases: Vec<(&str, Edit)> = vec![
        (
            "modules[0].gist",
            Box::new(|m: &mut Value| m["modules"][0]["gist"] = json!("../..")),
        ),
        (
            "modules[0].revision",
            Box::new(|m: &mut Value| m["modules"][0]["revision"] = json!("../..")),
        ),
        (
            "modules[0].revision",
            Box::new(|m: &mut Value| m["modules"][0]["revision"] = json!("abc")),
        ),
        (
            "modules[1].user",
            Box::new(|m: &mut Value| m["modules"][1]["user"] = json!("../../x")),
        ),
        (
            "modules[0].dependencies[0]",
            Box::new(|m: &mut Value| m["modules"][0]["dependencies"] = json!(["../etc"])),
        ),
        (
            "versioned[0].versions[0].files[0].path",
            Box::new(|m: &mut Value| {
                m["versioned"] = json!([{
                    "author": "alice", "name": "tool", "tags": {"latest": "1.0.0"},
                    "versions": [{
                        "version": "1.0.0",
                        "source": {"type": "gist", "url": "x", "commit": "b".repeat(40)},
                        "contentHash": "e".repeat(64), "entry": "index.mld",
                        "integrity": format!("sha256:{}", "e".repeat(64)), "size": 1,
                        "files": [{"path": "../../etc/passwd", "sha256": "e".repeat(64), "size": 1}],
                        "dependencies": []
                    }]
                }]);
            }),
        ),
    ];
    for (expect, edit) in cases {
        resigned(&site.snapshot(), &evil, edit);
        assert_refused(&client, &evil, &site.public_key(), expect);
        let _ = fs::remove_file(client.home.join(".lock"));
    }
    // The untouched snapshot, re-signed the same way, is accepted: the refusals are the fields'.
    resigned(&site.snapshot(), &evil, |_| {});
    mlld_e2e::assert_ok(&client.run(&[
        "sync",
        "--offline",
        "--from",
        evil.to_str().unwrap(),
        "--trusted-key",
        site.public_key().to_str().unwrap(),
    ]));
}
