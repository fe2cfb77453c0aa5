//! `sync` over a real loopback HTTP server (and from a directory or file),
//! and the attacks from The Update Framework's list that apply to it: each
//! is refused with a clear error, and nothing is written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mlld_e2e::http::{Handler, HttpServer, Request, Response, static_files};
use mlld_e2e::{
    Client, RawMember, Site, assert_fails, assert_ok, build_examples, build_time, craft_snapshot,
    demo_key, snapshot_members, tree,
};
use mlld_schemas::Latest;
use serde_json::Value;

/// A site served on loopback; counts requests.
struct Served {
    server: HttpServer,
    requests: Arc<AtomicUsize>,
}

fn serve(handler: Handler) -> Served {
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let server = HttpServer::start(Arc::new(move |r: &Request| {
        count.fetch_add(1, Ordering::SeqCst);
        handler(r)
    }));
    Served { server, requests }
}

fn serve_dir(dir: &Path) -> Served {
    serve(static_files(dir.to_path_buf()))
}

/// Runs the client with loopback exempt from the proxy guard (so only the
/// test server is reachable); any other connection still hits the guard.
fn run(client: &Client, args: &[&str]) -> Output {
    client
        .command(args)
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap()
}

/// A full sync: these tests attack the whole-snapshot download (delta sync
/// has its own tests in `delta_sync.rs`).
fn sync(client: &Client, url: &str, key: &Path) -> Output {
    run(
        client,
        &[
            "sync",
            "--full",
            "--from",
            url,
            "--trusted-key",
            key.to_str().unwrap(),
            "--json",
        ],
    )
}

/// Everything in the store (but staging) with its bytes, and the project's `.mlld/`.
fn written(client: &Client) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = tree(&client.home)
        .into_iter()
        .filter(|f| !f.starts_with("tmp") && f != ".lock")
        .map(|f| {
            let bytes = fs::read(client.home.join(&f)).unwrap();
            (f, bytes)
        })
        .collect();
    out.extend(
        tree(&client.project)
            .into_iter()
            .map(|f| (format!("project/{f}"), Vec::new())),
    );
    out
}

/// Asserts `out` failed with exit 2 naming `expect`, and nothing changed.
fn refused(client: &Client, out: &Output, before: &[(String, Vec<u8>)], expect: &str) {
    let stderr = assert_fails(out, 2);
    assert!(stderr.contains(expect), "expected `{expect}` in:\n{stderr}");
    assert_eq!(written(client), before, "a refused sync changed the store");
    assert!(
        tree(&client.home.join("tmp")).is_empty(),
        "staging was left behind"
    );
    assert_eq!(client.guard.connections(), 0, "a connection left loopback");
}

fn site_at(dir: &Path, name: &str, serial: u64) -> Site {
    build_examples(&dir.join(name), Some(serial), build_time())
}

fn current_serial(client: &Client) -> Option<u64> {
    let state: Value =
        serde_json::from_slice(&fs::read(client.home.join("state.json")).ok()?).unwrap();
    state["current"]["serial"].as_u64()
}

/// Re-signs a site's latest.json after `edit` (what a holder of the key could publish).
fn resign_latest(site: &Path, edit: impl FnOnce(&mut Latest)) {
    let mut latest: Latest =
        serde_json::from_slice(&fs::read(site.join("latest.json")).unwrap()).unwrap();
    edit(&mut latest);
    let mut bytes = serde_json::to_vec_pretty(&latest).unwrap();
    bytes.push(b'\n');
    let sig = demo_key().sign(
        &bytes,
        &format!("mlld-registry latest serial:{}", latest.serial),
    );
    fs::write(site.join("latest.json"), bytes).unwrap();
    fs::write(site.join("latest.json.minisig"), sig).unwrap();
}

#[test]
fn sync_over_http_then_every_command_uses_the_current_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let served = serve_dir(&site.dir);
    let client = Client::new(dir.path());
    let key = site.public_key();

    let report: Value =
        serde_json::from_str(&assert_ok(&sync(&client, &served.server.url(), &key))).unwrap();
    assert_eq!(report["serial"], 1);
    assert_eq!(report["modules"], 24);
    assert_eq!(report["upToDate"], false);
    assert_eq!(report["snapshot"], site.latest().sha256);
    let requests = served.requests.load(Ordering::SeqCst);
    assert_eq!(requests, 3, "latest.json, its signature, the snapshot");

    // No --snapshot: resolve and install read the synced one, offline.
    let k = key.to_str().unwrap();
    let out = client.run(&[
        "resolve",
        "@textkit/slugify",
        "--yes",
        "--trusted-key",
        k,
        "--offline",
    ]);
    assert!(assert_ok(&out).contains("locked mlld://textkit/slugify"));
    assert_ok(&client.run(&["install", "--trusted-key", k, "--offline"]));
    assert_eq!(served.requests.load(Ordering::SeqCst), requests);

    // A second sync finds nothing new, and downloads no snapshot again.
    let again: Value =
        serde_json::from_str(&assert_ok(&sync(&client, &served.server.url(), &key))).unwrap();
    assert_eq!(again["upToDate"], true);
    assert_eq!(served.requests.load(Ordering::SeqCst), requests + 2);
    assert_eq!(client.guard.connections(), 0);
}

#[test]
fn site_and_key_come_from_the_environment_or_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let served = serve_dir(&site.dir);
    let client = Client::new(dir.path());

    // Nothing configured: the messages say how to configure.
    let stderr = assert_fails(&run(&client, &["sync"]), 2);
    assert!(
        stderr.contains("--from") && stderr.contains("MLLD_REGISTRY_URL"),
        "{stderr}"
    );
    let stderr = assert_fails(&run(&client, &["sync", "--from", &served.server.url()]), 2);
    assert!(
        stderr.contains("--trusted-key") && stderr.contains("MLLD_REGISTRY_KEY"),
        "{stderr}"
    );
    let stderr = assert_fails(
        &client.run(&[
            "install",
            "--trusted-key",
            site.public_key().to_str().unwrap(),
        ]),
        2,
    );
    assert!(stderr.contains("mlld-registry sync"), "{stderr}");

    // The environment.
    let out = client
        .command(&["sync", "--json"])
        .env("NO_PROXY", "127.0.0.1")
        .env("MLLD_REGISTRY_URL", served.server.url())
        .env("MLLD_REGISTRY_KEY", site.public_key())
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(current_serial(&client), Some(1));

    // The config file (in MLLD_REGISTRY_HOME for tests), with the key inline.
    let other = Client::new(&dir.path().join("other"));
    let pub_text = fs::read_to_string(site.public_key()).unwrap();
    let key_line = pub_text.lines().last().unwrap();
    fs::create_dir_all(&other.home).unwrap();
    fs::write(
        other.home.join("config.json"),
        serde_json::to_vec(&serde_json::json!({
            "registry": served.server.url(),
            "trustedKeys": [key_line],
        }))
        .unwrap(),
    )
    .unwrap();
    assert_ok(&run(&other, &["sync"]));
    assert_ok(&other.run(&["resolve", "@jdoe/date-fmt", "--yes"]));

    // A config file with a typo is an error with its position.
    fs::write(other.home.join("config.json"), "{\n  \"registy\": \"x\"\n}").unwrap();
    let stderr = assert_fails(&other.run(&["ls"]), 2);
    assert!(stderr.contains("config.json:2:"), "{stderr}");
}

#[test]
fn a_site_directory_and_a_snapshot_file_sync_offline() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 3);
    let key = site.public_key();
    let client = Client::new(dir.path());
    let out = run(
        &client,
        &[
            "sync",
            "--offline",
            "--from",
            site.dir.to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(assert_ok(&out).contains("synced serial 3"));
    let other = Client::new(&dir.path().join("b"));
    let out = run(
        &other,
        &[
            "sync",
            "--offline",
            "--from",
            site.snapshot().to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(assert_ok(&out).contains("synced serial 3"));
    // --offline refuses a URL before any connection.
    let served = serve_dir(&site.dir);
    let stderr = assert_fails(
        &run(
            &other,
            &[
                "sync",
                "--offline",
                "--from",
                &served.server.url(),
                "--trusted-key",
                key.to_str().unwrap(),
            ],
        ),
        2,
    );
    assert!(stderr.contains("--offline"), "{stderr}");
    assert_eq!(served.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_newer_serial_replaces_the_current_one_only_once_verified() {
    let dir = tempfile::tempdir().unwrap();
    let site_dir = dir.path().join("site");
    let site = site_at(dir.path(), "site", 1);
    let served = serve_dir(&site_dir);
    let client = Client::new(dir.path());
    let key = site.public_key();
    assert_ok(&sync(&client, &served.server.url(), &key));
    let first = site.latest().sha256;

    // Serial 2 is published, but its snapshot is damaged in transit.
    let site2 = site_at(dir.path(), "site", 2);
    let snap2 = site2.snapshot();
    let good = fs::read(&snap2).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    fs::write(&snap2, &bad).unwrap();
    let before = written(&client);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "the download was altered",
    );
    // The previous snapshot is still current and usable.
    assert_eq!(current_serial(&client), Some(1));
    assert_ok(&client.run(&[
        "resolve",
        "@textkit/slugify",
        "--yes",
        "--trusted-key",
        key.to_str().unwrap(),
    ]));

    fs::write(&snap2, &good).unwrap();
    let report: Value =
        serde_json::from_str(&assert_ok(&sync(&client, &served.server.url(), &key))).unwrap();
    assert_eq!(report["serial"], 2);
    assert_eq!(report["previousSerial"], 1);
    assert_eq!(current_serial(&client), Some(2));
    // The previous snapshot is kept (for readers still on it); the lock still installs.
    assert!(client.home.join("snapshots").join(&first).is_dir());
    assert_ok(&client.run(&["install", "--trusted-key", key.to_str().unwrap()]));
}

#[test]
fn rollback_to_an_older_serial_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = site_at(dir.path(), "old", 4);
    let new = site_at(dir.path(), "new", 5);
    let client = Client::new(dir.path());
    let key = new.public_key();
    let new_served = serve_dir(&new.dir);
    assert_ok(&sync(&client, &new_served.server.url(), &key));
    let before = written(&client);

    // An old (validly signed, unexpired) site: by pointer, and by snapshot file.
    let old_served = serve_dir(&old.dir);
    refused(
        &client,
        &sync(&client, &old_served.server.url(), &key),
        &before,
        "rollback refused",
    );
    refused(
        &client,
        &sync(&client, old.snapshot().to_str().unwrap(), &key),
        &before,
        "rollback refused",
    );
    // A pointer re-signed to claim serial 6 but naming the old snapshot: the manifest disagrees.
    resign_latest(&old.dir, |l| l.serial = 6);
    refused(
        &client,
        &sync(&client, &old_served.server.url(), &key),
        &before,
        "mixes two builds",
    );
    assert_eq!(current_serial(&client), Some(5));
}

#[test]
fn one_serial_with_two_contents_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = site_at(dir.path(), "a", 7);
    let client = Client::new(dir.path());
    let key = a.public_key();
    assert_ok(&sync(&client, a.dir.to_str().unwrap(), &key));
    // Same serial, a later build time: different bytes.
    let b = build_examples(
        &dir.path().join("b"),
        Some(7),
        build_time() + time::Duration::hours(1),
    );
    assert_ne!(a.latest().sha256, b.latest().sha256);
    let before = written(&client);
    refused(
        &client,
        &sync(&client, b.dir.to_str().unwrap(), &key),
        &before,
        "already accepted with different content",
    );
}

#[test]
fn an_expired_site_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(
        &dir.path().join("site"),
        Some(1),
        build_time() - time::Duration::days(15),
    );
    let served = serve_dir(&site.dir);
    let client = Client::new(dir.path());
    let before = written(&client);
    refused(
        &client,
        &sync(&client, &served.server.url(), &site.public_key()),
        &before,
        "expired",
    );
    // A pointer re-signed with a fresh expiry does not rescue the expired manifest.
    resign_latest(&site.dir, |l| {
        l.expires = mlld_schemas::names::format_timestamp(build_time() + time::Duration::days(3))
    });
    refused(
        &client,
        &sync(&client, &served.server.url(), &site.public_key()),
        &before,
        "expired",
    );
}

#[test]
fn wrong_key_and_tampered_pointer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let served = serve_dir(&site.dir);
    let client = Client::new(dir.path());
    let keys = dir.path().join("keys");
    let (_, other) = mlld_indexer::signing::generate_keypair(&keys, "other", None).unwrap();
    let before = written(&client);
    refused(
        &client,
        &sync(&client, &served.server.url(), &other),
        &before,
        "does not verify with the trusted key",
    );
    // latest.json edited without its signature.
    let latest = site.dir.join("latest.json");
    let text = fs::read_to_string(&latest).unwrap();
    fs::write(&latest, text.replace("\"serial\": 1", "\"serial\": 9")).unwrap();
    refused(
        &client,
        &sync(&client, &served.server.url(), &site.public_key()),
        &before,
        "latest.json: the signature does not verify",
    );
}

/// Serves `site` but answers the snapshot path with `body`.
fn serve_with_snapshot(site: &Site, body: Vec<u8>) -> Served {
    let files = static_files(site.dir.clone());
    let path = format!("/{}", site.latest().snapshot);
    serve(Arc::new(move |r: &Request| {
        if r.path() == path {
            Response::new(200, body.clone())
        } else {
            files(r)
        }
    }))
}

fn members_of(snapshot: &Path) -> Vec<(String, Vec<u8>)> {
    snapshot_members(snapshot)
}

fn craft(path: &Path, members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let raw: Vec<RawMember<'_>> = members
        .iter()
        .map(|(n, b)| RawMember {
            name: n,
            bytes: b,
            kind: tar::EntryType::Regular,
        })
        .collect();
    craft_snapshot(path, &raw);
    fs::read(path).unwrap()
}

/// Points the site's (re-signed) latest.json at `bytes`, as a key holder could.
fn publish_crafted(site: &Site, bytes: &[u8]) -> PathBuf {
    let sha = mlld_schemas::sha256_hex(bytes);
    let rel = format!("snapshots/{sha}.tar.zst");
    fs::write(site.dir.join(&rel), bytes).unwrap();
    resign_latest(&site.dir, |l| {
        l.snapshot = rel.clone();
        l.sha256 = sha.clone();
        l.size = bytes.len() as u64;
    });
    site.dir.join(rel)
}

#[test]
fn tampered_snapshot_and_manifest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let client = Client::new(dir.path());
    let key = site.public_key();
    let before = written(&client);

    // The snapshot altered in transit: its hash is not what the signed pointer names.
    let mut altered = fs::read(site.snapshot()).unwrap();
    altered[100] ^= 1;
    let served = serve_with_snapshot(&site, altered);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "the download was altered",
    );
    // A manifest changed after signing, in a snapshot the pointer names (re-signed):
    // the manifest's own signature fails.
    let mut members = members_of(&site.snapshot());
    let crafted = dir.path().join("crafted.tar.zst");
    members[0].1[20] ^= 1;
    let bytes = craft(&crafted, &members);
    // Even when the pointer names it (re-signed), the manifest's own signature fails.
    publish_crafted(&site, &bytes);
    let served = serve_dir(&site.dir);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "snapshot manifest: the signature does not verify",
    );
    refused(
        &client,
        &sync(&client, crafted.to_str().unwrap(), &key),
        &before,
        "snapshot manifest: the signature does not verify",
    );
}

#[test]
fn members_mixed_from_two_snapshots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = site_at(dir.path(), "a", 1);
    let b = build_examples(
        &dir.path().join("b"),
        Some(2),
        build_time() - time::Duration::days(1),
    );
    let client = Client::new(dir.path());
    let key = a.public_key();
    let before = written(&client);
    let (am, bm) = (members_of(&a.snapshot()), members_of(&b.snapshot()));
    // A's signed manifest, then B's members plus one blob A lacks... here both hold the
    // same blobs, so alter one of B's to a foreign blob: refused as unlisted or mismatched.
    let mut mixed: Vec<(String, Vec<u8>)> = am[..2].to_vec();
    mixed.extend(bm[2..].iter().skip(1).cloned());
    mixed.push((
        "blobs/sha256/00/".to_string() + &"0".repeat(62),
        b"foreign".to_vec(),
    ));
    let bytes = craft(&dir.path().join("mixed.tar.zst"), &mixed);
    publish_crafted(&a, &bytes);
    let served = serve_dir(&a.dir);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "not listed in the signed manifest",
    );
    // Without the foreign blob: one member of A's manifest is missing.
    mixed.pop();
    let bytes = craft(&dir.path().join("mixed2.tar.zst"), &mixed);
    publish_crafted(&a, &bytes);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "missing from the snapshot",
    );
    // B's manifest with A's signature: the signature does not match.
    let mut swapped = vec![bm[0].clone(), am[1].clone()];
    swapped.extend(bm[2..].iter().cloned());
    let bytes = craft(&dir.path().join("mixed3.tar.zst"), &swapped);
    publish_crafted(&a, &bytes);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "signature does not verify",
    );
}

#[test]
fn oversized_downloads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let client = Client::new(dir.path());
    let key = site.public_key();
    let before = written(&client);
    let real = fs::read(site.snapshot()).unwrap();

    // The server sends more than the signed pointer announces (endless data, in effect).
    let mut big = real.clone();
    big.extend(std::iter::repeat_n(0u8, 1 << 20));
    let served = serve_with_snapshot(&site, big);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "refused before downloading",
    );
    // A huge latest.json is cut off at its cap.
    let files = static_files(site.dir.clone());
    let served = serve(Arc::new(move |r: &Request| {
        if r.path() == "/latest.json" {
            Response::new(200, vec![b' '; 1 << 20])
        } else {
            files(r)
        }
    }));
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "over its 65536-byte limit",
    );
    // A pointer announcing a snapshot over the client's cap is refused before any download.
    resign_latest(&site.dir, |l| l.size = 5 << 30);
    let served = serve_dir(&site.dir);
    refused(
        &client,
        &sync(&client, &served.server.url(), &key),
        &before,
        "over the 4294967296-byte limit",
    );
    assert_eq!(served.requests.load(Ordering::SeqCst), 2);
    // A connection cut short is an error, not a half snapshot.
    resign_latest(&site.dir, |l| l.size = real.len() as u64);
    let files = static_files(site.dir.clone());
    let path = format!("/{}", site.latest().snapshot);
    let cut = real.clone();
    let served = serve(Arc::new(move |r: &Request| {
        if r.path() == path {
            Response::new(200, cut.clone()).fault(mlld_e2e::http::Fault::TruncateBody(100))
        } else {
            files(r)
        }
    }));
    let out = sync(&client, &served.server.url(), &key);
    assert_fails(&out, 2);
    assert_eq!(written(&client), before);
}
