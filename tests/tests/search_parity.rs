//! `mlld-registry search` ranks the shared query list (tests/search_parity.json)
//! as listed; browser.rs checks the web page against the same list.

use mlld_e2e::{Client, assert_ok, build_examples, build_time, workspace_root};
use serde_json::Value;

/// Each query with the names that must come first, in order.
fn cases() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(workspace_root().join("tests/search_parity.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let top = c["top"].as_array().unwrap();
            let top = top.iter().map(|n| n.as_str().unwrap().to_string());
            (c["query"].as_str().unwrap().to_string(), top.collect())
        })
        .collect()
}

#[test]
fn the_cli_ranks_the_shared_queries_as_listed() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let client = Client::new(dir.path());
    let (snapshot, key) = (site.snapshot(), site.public_key());
    let mut wrong = Vec::new();
    for (query, top) in cases() {
        let out = client.run(&[
            "search",
            "--json",
            &query,
            "--snapshot",
            snapshot.to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ]);
        // `search --json` prints one envelope whose data lists the hits.
        let envelope: Value = serde_json::from_str(&assert_ok(&out)).unwrap();
        let names: Vec<String> = envelope["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["name"].as_str().unwrap().to_string())
            .collect();
        if top.is_empty() || names.get(..top.len()) != Some(&top[..]) {
            wrong.push(format!("{query:?}: expected {top:?} first, got {names:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
