//! The published static site: layout, module pages, retention and clean-up.

use std::fs;

use mlld_e2e::{build_examples, build_time, examples, tree, verify_site};
use serde_json::Value;

#[test]
fn the_site_has_every_published_file() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(dir.path(), None, build_time());
    let files = tree(dir.path());
    for f in [
        "index.html",
        "app.js",
        "style.css",
        "data/site.js",
        "advisories.json",
        "mlld-registry.pub",
        "latest.json",
        "latest.json.minisig",
    ] {
        assert!(files.contains(&f.to_string()), "{f} missing");
    }
    for (name, _) in mlld_schemas::json_schemas() {
        assert!(
            files.contains(&format!("schemas/{name}")),
            "schema {name} missing"
        );
    }
    let entry = fs::read_to_string(dir.path().join("data/site.js")).unwrap();
    let json: Value = serde_json::from_str(
        entry
            .trim()
            .strip_prefix("mlldRegistry.site(")
            .unwrap()
            .strip_suffix(");")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["count"], 24);
    assert_eq!(json["serial"], site.report.serial);
    for shard in json["shards"].as_array().unwrap() {
        let path = dir.path().join(shard.as_str().unwrap());
        let body = fs::read(&path).unwrap();
        assert!(
            shard
                .as_str()
                .unwrap()
                .contains(&mlld_schemas::sha256_hex(&body)[..32]),
            "shards are content-addressed"
        );
    }
    let advisories: Value =
        serde_json::from_slice(&fs::read(dir.path().join("advisories.json")).unwrap()).unwrap();
    assert_eq!(advisories.as_array().unwrap().len(), 4);
}

#[test]
fn module_pages_show_what_info_shows() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let page: Value = serde_json::from_slice(
        &fs::read(dir.path().join("modules/sarah-k/llm-cache.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        page["dependencies"],
        serde_json::json!(["adamavenir/json-utils"])
    );
    assert_eq!(
        page["dependents"],
        serde_json::json!(["sarah-k/eval-report"])
    );
    assert_eq!(page["advisories"][0]["id"], "2024-001");
    assert_eq!(
        page["importLine"],
        "@import { ... } from \"mlld://sarah-k/llm-cache\""
    );
    let recorded: Value = serde_json::from_slice(
        &fs::read(examples().join("gists/27eea315972f5c49098c7b5b05f531dc.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        page["content"],
        recorded["files"]["llm-cache.mld"]["content"]
    );
    let js = fs::read_to_string(dir.path().join("modules/sarah-k/llm-cache.js")).unwrap();
    assert!(
        js.starts_with("mlldRegistry.module({"),
        "the page's loader works from file://"
    );
    // Markup in registry data stays data: JSON strings, rendered by the page as text.
    let html = fs::read_to_string(dir.path().join("modules/nora-ml/llm-summarize.json")).unwrap();
    assert!(
        html.contains("<script>alert(1)</script>"),
        "kept verbatim in data, escaped only by rendering"
    );
}

#[test]
fn old_snapshots_pages_and_blobs_are_cleaned_up_after_the_flip() {
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    for _ in 0..5 {
        snapshots.push(
            build_examples(dir.path(), None, build_time())
                .latest()
                .snapshot,
        );
    }
    let kept: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("snapshots/") && !f.ends_with(".index.tar.zst"))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    let kept_index = tree(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".index.tar.zst"))
        .count();
    assert_eq!(
        kept_index, 3,
        "index-only snapshots retire with the full ones"
    );
    for s in &snapshots[2..] {
        assert!(kept.contains(s), "{s} should be kept");
    }
    // Deltas (a patch and a blob pack per build) retire likewise, and
    // every one the current latest.json names is there.
    let deltas: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("deltas/"))
        .collect();
    let patches = deltas.iter().filter(|f| f.ends_with(".patch.zst")).count();
    assert_eq!(patches, 3, "{deltas:?}");
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&fs::read(dir.path().join("latest.json")).unwrap()).unwrap();
    for d in &latest.deltas {
        assert!(deltas.contains(&d.patch.path), "{deltas:?}");
        assert!(deltas.contains(&d.blobs.path), "{deltas:?}");
    }

    // A module leaves the registry: its page and its blobs go after the flip.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    fs::remove_dir_all(registry.join("textkit")).unwrap();
    mlld_e2e::build_with(
        dir.path(),
        None,
        build_time(),
        mlld_e2e::demo_key(),
        &registry,
    );
    let files = tree(dir.path());
    assert!(
        !files.iter().any(|f| f.starts_with("modules/textkit/")),
        "pages of removed modules are gone"
    );
    let manifest = verify_site(dir.path());
    let loose: Vec<_> = files.iter().filter(|f| f.starts_with("blobs/")).collect();
    assert_eq!(
        loose.len(),
        manifest
            .members
            .keys()
            .filter(|p| p.starts_with("blobs/"))
            .count(),
        "only the manifest's blobs stay loose"
    );
    let listings = files
        .iter()
        .filter(|f| f.starts_with("data/listing-"))
        .count();
    assert_eq!(listings, 1, "old listing shards are gone");
}
