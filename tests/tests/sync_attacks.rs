//! The attacks from The Update Framework's list that apply to `sync`: each
//! is refused with a clear error, and nothing is written.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mlld_e2e::http::{Request, Response, static_files};
use mlld_e2e::served::*;
use mlld_e2e::{Client, assert_fails, assert_ok, build_examples, build_time};

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
