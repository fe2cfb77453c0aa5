//! Publishing to S3-compatible object storage, against a real server on
//! loopback (moto in server mode) behind a proxy that records every request
//! in order: `cargo xtask index --out s3://…` and `cargo xtask publish`,
//! then `mlld-registry sync` from the bucket's public URL.

use std::path::Path;
use std::process::Output;

use mlld_e2e::s3::bucket::{BUCKET, Bucket, PREFIX};
use mlld_e2e::s3::{Failure, Logged};
use mlld_e2e::{assert_fails, assert_ok, examples, rewound_gists};

/// Site-relative paths of the proxy's log entries with `method`.
fn paths(log: &[Logged], method: &str) -> Vec<String> {
    let prefix = format!("/{BUCKET}/{PREFIX}/");
    log.iter()
        .filter(|l| l.method == method)
        .filter_map(|l| l.path.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

fn position(log: &[Logged], method: &str, rel: &str) -> Option<usize> {
    let path = format!("/{BUCKET}/{PREFIX}/{rel}");
    log.iter()
        .position(|l| l.method == method && l.path == path)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn index_to_s3_publishes_in_order_with_cache_rules_and_then_only_what_changed() {
    let bucket = Bucket::start();
    let rewound = rewound_gists(bucket.dir.path());

    // Without --previous the build would restart at serial 1: refused.
    let target = format!("s3://{BUCKET}/{PREFIX}");
    let err = assert_fails(&bucket.xtask(&["index", "--out", &target]), 1);
    assert!(err.contains("needs --previous"), "{err}");
    assert!(bucket.proxy.take_log().is_empty(), "nothing was sent");

    let out = bucket.index(&rewound, "none");
    assert_ok(&out);
    assert_eq!(bucket.sync("first"), 1);

    // Order: every content-addressed file before any other, the pointer's
    // signature next to last and the pointer last; nothing deleted.
    let log = bucket.proxy.take_log();
    let puts = paths(&log, "PUT");
    assert_eq!(
        puts.len(),
        bucket.objects().len(),
        "one PUT per object: {puts:?}"
    );
    let classes: Vec<_> = puts
        .iter()
        .map(|p| mlld_indexer::object_publish::PathClass::of(p))
        .collect();
    assert!(classes.is_sorted(), "PUTs out of order: {puts:?}");
    assert_eq!(
        puts[puts.len() - 2..],
        ["latest.json.minisig", "latest.json"]
    );
    assert!(paths(&log, "DELETE").is_empty());

    // Cache rules per class, and the types a browser needs.
    let latest: mlld_schemas::Latest = bucket.get("latest.json").json().unwrap();
    let listing = puts
        .iter()
        .find(|p| p.starts_with("data/listing-"))
        .unwrap();
    let blob = puts
        .iter()
        .find(|p| p.starts_with("blobs/sha256/"))
        .unwrap();
    for (rel, cache) in [
        (
            latest.snapshot.as_str(),
            "public, max-age=31536000, immutable",
        ),
        (
            latest.index.as_ref().unwrap().path.as_str(),
            "public, max-age=31536000, immutable",
        ),
        (listing, "public, max-age=31536000, immutable"),
        (blob, "public, max-age=31536000, immutable"),
        ("latest.json", "no-cache"),
        ("latest.json.minisig", "no-cache"),
        ("index.html", "no-cache"),
        ("data/site.js", "no-cache"),
    ] {
        let resp = bucket.get(rel);
        assert_eq!(resp.status(), 200, "{rel}");
        assert_eq!(resp.headers()["cache-control"], cache, "{rel}");
    }
    assert_eq!(
        bucket.get("index.html").headers()["content-type"],
        "text/html; charset=utf-8"
    );

    // A nightly build: json-utils moved on. Incremental from the public URL.
    let before = bucket.objects();
    let out = bucket.index(&examples().join("gists"), &bucket.public_url());
    assert_ok(&out);
    let after = bucket.objects();
    let log = bucket.proxy.take_log();
    let puts = paths(&log, "PUT");
    for rel in &puts {
        assert_ne!(
            before.get(rel),
            after.get(rel),
            "{rel} was uploaded with the same bytes"
        );
    }
    assert!(
        puts.len() * 2 < after.len(),
        "uploaded {} of {} objects",
        puts.len(),
        after.len()
    );
    for (rel, tag) in &after {
        if before.get(rel) != Some(tag) {
            assert!(puts.contains(rel), "{rel} changed without an upload");
        }
    }
    // Garbage goes only after the flip, and the previous snapshot stays.
    let deletes = paths(&log, "DELETE");
    assert!(
        !deletes.is_empty(),
        "the old listing shard is garbage: {log:?}"
    );
    let flip = position(&log, "PUT", "latest.json").expect("latest.json uploaded");
    for rel in &deletes {
        assert!(
            position(&log, "DELETE", rel).unwrap() > flip,
            "{rel} deleted before the flip"
        );
        assert!(!after.contains_key(rel));
    }
    assert!(
        after.contains_key(&latest.snapshot),
        "the previous snapshot is kept"
    );
    // What did not change stays: pages built in an empty staging directory
    // are all there for the publish to compare, none taken for garbage.
    let unchanged = "modules/textkit/slugify.js";
    assert!(after.contains_key(unchanged), "{unchanged} was removed");
    assert!(
        !puts.iter().any(|p| p == unchanged),
        "{unchanged} uploaded again"
    );
    assert!(after.contains_key("data/dependents/0/0.js"));
    assert_eq!(bucket.sync("second"), 2);
    assert!(
        stderr(&out).is_empty() || !stderr(&out).contains("error"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_publish_that_fails_before_the_flip_leaves_the_previous_site_valid() {
    let bucket = Bucket::start();
    let rewound = rewound_gists(bucket.dir.path());
    assert_ok(&bucket.index(&rewound, "none"));
    let first: mlld_schemas::Latest = bucket.get("latest.json").json().unwrap();
    let (gists, previous) = (examples().join("gists"), bucket.public_url());
    bucket.proxy.take_log();

    // A snapshot's upload is refused: no later phase runs.
    bucket.proxy.fail(Some(Failure {
        method: "PUT",
        path_matches: Box::new(|p| p.contains("/snapshots/")),
        status: 403,
    }));
    let err = assert_fails(&bucket.index(&gists, &previous), 1);
    assert!(
        err.contains("the published site is unchanged and valid"),
        "{err}"
    );
    let log = bucket.proxy.take_log();
    assert_eq!(position(&log, "PUT", "latest.json.minisig"), None);
    assert_eq!(position(&log, "PUT", "latest.json"), None);
    assert!(paths(&log, "DELETE").is_empty());
    assert_eq!(bucket.serial(), 1);
    assert_eq!(bucket.sync("after-content-failure"), 1);

    // The pointer is refused after its new signature (and the new crawl
    // state) went up: they are put back, so the old pair verifies.
    bucket.proxy.fail(Some(Failure {
        method: "PUT",
        path_matches: Box::new(|p| p == format!("/{BUCKET}/{PREFIX}/latest.json")),
        status: 403,
    }));
    let err = assert_fails(&bucket.index(&gists, &previous), 1);
    assert!(err.contains("were put back"), "{err}");
    let log = bucket.proxy.take_log();
    let signatures = paths(&log, "PUT")
        .into_iter()
        .filter(|p| p == "latest.json.minisig");
    assert_eq!(
        signatures.count(),
        2,
        "the new signature, then the old one again"
    );
    assert!(paths(&log, "DELETE").is_empty());
    assert_eq!(bucket.serial(), 1);
    assert_eq!(bucket.sync("after-pointer-failure"), 1);

    // Once the fault is gone the next publish completes, and what the
    // failed attempts left behind is removed after its flip.
    bucket.proxy.fail(None);
    assert_ok(&bucket.index(&gists, &previous));
    assert_eq!(bucket.sync("recovered"), 2);
    let second: mlld_schemas::Latest = bucket.get("latest.json").json().unwrap();
    let snapshots: Vec<String> = bucket
        .objects()
        .into_keys()
        .filter(|k| k.starts_with("snapshots/"))
        .collect();
    let mut named: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|l| [l.snapshot.clone(), l.index.as_ref().unwrap().path.clone()])
        .collect();
    named.sort();
    assert_eq!(snapshots, named, "only the published snapshots remain");
}

#[test]
fn publish_from_a_directory_in_parts_skips_by_stored_digest_and_refuses_a_rollback() {
    let bucket = Bucket::start();
    let dir = bucket.dir.path();
    let time = mlld_e2e::build_time();
    let registry = examples().join("registry");
    let rewound = rewound_gists(dir);
    let old = mlld_e2e::build_from(
        &dir.join("old"),
        Some(1),
        time,
        mlld_e2e::demo_key(),
        &registry,
        &rewound,
    );
    let new = mlld_e2e::build_examples(&dir.join("new"), Some(2), time);
    let target = format!("s3://{BUCKET}/{PREFIX}");
    let publish = |site: &Path| {
        let from = site.to_str().unwrap();
        bucket.xtask(&[
            "publish",
            "--from",
            from,
            "--to",
            &target,
            "--multipart-threshold",
            "0",
        ])
    };

    let out = assert_ok(&publish(&new.dir));
    assert!(out.contains("published   serial 2"), "{out}");
    let objects = bucket.objects();
    assert!(
        objects.values().all(|tag| tag.contains('-')),
        "multipart ETags: {objects:?}"
    );
    let snapshot = new.latest().snapshot;
    assert_eq!(
        bucket.get(&snapshot).headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(bucket.sync("parts"), 2);
    bucket.proxy.take_log();

    // Multipart ETags say nothing about the bytes: the stored SHA-256 does.
    let out = assert_ok(&publish(&new.dir));
    assert!(out.contains("uploaded    0 files"), "{out}");
    let log = bucket.proxy.take_log();
    assert!(paths(&log, "PUT").is_empty(), "{log:?}");
    assert_eq!(paths(&log, "HEAD").len(), objects.len());

    // An older site is refused before anything is uploaded.
    let err = assert_fails(&publish(&old.dir), 1);
    assert!(err.contains("rollback"), "{err}");
    let log = bucket.proxy.take_log();
    assert!(
        paths(&log, "PUT").is_empty() && paths(&log, "DELETE").is_empty(),
        "{log:?}"
    );
    assert_eq!(bucket.serial(), 2);
}

#[test]
fn a_kept_staging_directory_is_built_on_when_it_is_the_published_site() {
    let bucket = Bucket::start();
    let gists = examples().join("gists");
    let staging = bucket.dir.path().join("staging");
    let report = bucket.dir.path().join("report.json");
    let kept = [
        "--staging",
        staging.to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
    ];
    assert_ok(&bucket.index_with(&gists, "none", &kept));
    // A night behind: the copy the next build leaves is no longer published.
    let behind = bucket.dir.path().join("behind");
    mlld_e2e::copy_dir(&staging, &behind);

    let url = bucket.public_url();
    assert_ok(&bucket.index_with(&gists, &url, &kept));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        json["previousSite"]["readFrom"],
        staging.to_str().unwrap(),
        "the kept staging directory is the published site: built on in place"
    );
    assert_eq!(bucket.serial(), 2);
    assert_eq!(bucket.sync("kept"), 2);

    // Anything else would be uploaded beside the new site: refused, nothing sent.
    bucket.proxy.take_log();
    let behind_args = ["--staging", behind.to_str().unwrap()];
    let err = assert_fails(&bucket.index_with(&gists, &url, &behind_args), 1);
    assert!(
        err.contains("not a copy of") && err.contains("holds serial 1"),
        "{err}"
    );
    assert!(bucket.proxy.take_log().is_empty(), "nothing was sent");
    assert_eq!(bucket.serial(), 2);
    let err = assert_fails(&bucket.index_with(&gists, "none", &behind_args), 1);
    assert!(err.contains("is not empty"), "{err}");
    // Files that are no site at all are refused before anything is read.
    let stray = bucket.dir.path().join("stray");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), "not a site").unwrap();
    let stray_args = ["--staging", stray.to_str().unwrap()];
    let err = assert_fails(&bucket.index_with(&gists, &url, &stray_args), 1);
    assert!(err.contains("holds no site to build on"), "{err}");
    assert!(bucket.proxy.take_log().is_empty(), "nothing was sent");
}
