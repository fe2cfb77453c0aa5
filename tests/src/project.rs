//! Projects synced to the example site, for the workflow tests: a client
//! whose config trusts the demo key, and small helpers over `.mlld/`.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::{
    Client, JSON_UTILS_OLD, Site, assert_ok, build_examples, build_from, build_time, demo_key,
    examples, rewound_gists,
};

/// A client whose config trusts the demo site's key and which has synced it.
pub fn synced(dir: &Path) -> (Site, Client) {
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
pub fn synced_then_moved_on(dir: &Path) -> (Site, Client) {
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
    // mlld:// names the Phase-1 module: the name also exists as a versioned module.
    let out = client.run(&["resolve", "mlld://adamavenir/json-utils", "--yes"]);
    assert!(assert_ok(&out).contains(&format!("json-utils at {}", &JSON_UTILS_OLD[..12])));
    let site = build_examples(&site_dir, Some(2), build_time());
    assert_ok(&client.run(&["sync", "--offline"]));
    (site, client)
}

pub fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

pub fn lock(client: &Client) -> Value {
    serde_json::from_slice(&fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap()).unwrap()
}

pub fn locked_keys(client: &Client) -> Vec<String> {
    lock(client)["imports"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The `data` of a successful command's `--json` envelope.
pub fn json(out: &std::process::Output) -> Value {
    envelope_data(assert_ok(out).as_bytes())
}

/// The `data` of a `--json` envelope on `stdout`, whatever the exit code:
/// one document with `formatVersion` 1 (errors are checked by the caller).
pub fn envelope_data(stdout: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: not one JSON document:\n{}",
            String::from_utf8_lossy(stdout)
        )
    });
    assert_eq!(v["formatVersion"], 1, "{v}");
    assert!(v["command"].is_string() && v["errors"].is_array(), "{v}");
    v["data"].clone()
}
