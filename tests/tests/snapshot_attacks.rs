//! Attacks on snapshots (from The Update Framework's list, where they apply):
//! each is refused with a clear error, and nothing is written.

use std::fs;
use std::path::Path;

use mlld_e2e::{
    Client, RawMember, Site, assert_fails, build_examples, build_time, build_with, craft_snapshot,
    demo_key, examples, snapshot_members, tree,
};

/// Runs `resolve` against `snapshot` and checks it was refused with a message containing `expect`.
fn refused(client: &Client, snapshot: &Path, key: &Path, expect: &str) {
    let out = client.run(&[
        "resolve",
        "@textkit/slugify",
        "--yes",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains(expect), "expected `{expect}` in:\n{stderr}");
    assert_nothing_written(client);
}

fn assert_nothing_written(client: &Client) {
    assert!(
        !client.project.join(".mlld").exists(),
        "the project was written to"
    );
    let stored: Vec<_> = tree(&client.home)
        .into_iter()
        .filter(|f| !f.starts_with("tmp"))
        .collect();
    assert!(stored.is_empty(), "the store was written to: {stored:?}");
    assert!(
        tree(&client.home.join("tmp")).is_empty(),
        "staging was left behind"
    );
}

fn site(dir: &Path) -> Site {
    build_examples(&dir.join("site"), None, build_time())
}

#[test]
fn any_flipped_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let original = fs::read(site.snapshot()).unwrap();
    let client = Client::new(dir.path());
    let tampered = dir.path().join("tampered.tar.zst");
    let step = original.len() / 23;
    let unpacked = |bytes: &[u8]| zstd::decode_all(bytes).ok();
    let content = unpacked(&original);
    for offset in (0..original.len())
        .step_by(step)
        .chain([original.len() - 1])
    {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x20;
        // A few bits of a zstd block (table padding) do not change what it
        // decompresses to: such a file holds exactly the signed content.
        if unpacked(&bytes) == content {
            continue;
        }
        fs::write(&tampered, &bytes).unwrap();
        let out = client.run(&[
            "install",
            "--snapshot",
            tampered.to_str().unwrap(),
            "--trusted-key",
            site.public_key().to_str().unwrap(),
        ]);
        assert_fails(&out, 2);
        assert_nothing_written(&client);
    }
}

#[test]
fn a_snapshot_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let (_, other_pub) = mlld_indexer::signing::generate_keypair(&keys, "other", None).unwrap();
    let client = Client::new(dir.path());
    refused(
        &client,
        &site.snapshot(),
        &other_pub,
        "does not verify with the trusted key",
    );
}

#[test]
fn an_expired_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = build_time() - time::Duration::days(15);
    let site = build_examples(&dir.path().join("site"), None, old);
    let client = Client::new(dir.path());
    // Choosing new content from it is refused; the project is untouched. (The
    // verified snapshot itself may be stored: pinned content stays usable
    // offline, see `freshness.rs`.)
    let out = client.run(&[
        "resolve",
        "@textkit/slugify",
        "--yes",
        "--snapshot",
        site.snapshot().to_str().unwrap(),
        "--trusted-key",
        site.public_key().to_str().unwrap(),
    ]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains("expired"), "{stderr}");
    assert!(stderr.contains("run `mlld-registry sync`"), "{stderr}");
    assert!(
        !client.project.join(".mlld").exists(),
        "the project was written to"
    );
}

#[test]
fn members_mixed_from_two_snapshots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = site(dir.path());
    // A second registry whose json-utils content differs: copy the examples and change one gist's module.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    fs::remove_dir_all(registry.join("textkit")).unwrap();
    let b = build_with(
        &dir.path().join("site-b"),
        None,
        build_time(),
        demo_key(),
        &registry,
    );
    let (a_members, b_members) = (
        snapshot_members(&a.snapshot()),
        snapshot_members(&b.snapshot()),
    );
    // A's signed manifest with B's blobs (and A's own search index): A's textkit blobs are missing.
    let mut mixed: Vec<RawMember<'_>> = a_members[..2]
        .iter()
        .map(|(n, b)| RawMember::regular(n, b))
        .collect();
    let b_blobs = b_members[2..]
        .iter()
        .filter(|(n, _)| n.starts_with("blobs/"));
    let a_index = a_members[2..]
        .iter()
        .filter(|(n, _)| n.starts_with("index/"));
    mixed.extend(
        b_blobs
            .chain(a_index)
            .map(|(n, b)| RawMember::regular(n, b)),
    );
    let path = dir.path().join("mixed.tar.zst");
    craft_snapshot(&path, &mixed);
    let client = Client::new(dir.path());
    refused(&client, &path, &a.public_key(), "missing from the snapshot");

    // B's manifest and signature with one of A's blobs added: not listed, refused.
    let extra = a_members
        .iter()
        .find(|(n, _)| !b_members.iter().any(|(m, _)| m == n))
        .unwrap();
    let mut mixed: Vec<RawMember<'_>> = b_members
        .iter()
        .map(|(n, b)| RawMember::regular(n, b))
        .collect();
    mixed.push(RawMember::regular(&extra.0, &extra.1));
    craft_snapshot(&path, &mixed);
    refused(
        &client,
        &path,
        &a.public_key(),
        "not listed in the signed manifest",
    );
}

#[test]
fn a_blob_whose_bytes_differ_from_the_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = site(dir.path());
    let mut members = snapshot_members(&a.snapshot());
    members[5].1[0] ^= 1;
    let raw: Vec<_> = members
        .iter()
        .map(|(n, b)| RawMember::regular(n, b))
        .collect();
    let path = dir.path().join("bad-blob.tar.zst");
    craft_snapshot(&path, &raw);
    refused(
        &Client::new(dir.path()),
        &path,
        &a.public_key(),
        "but the signed manifest says",
    );
}

#[test]
fn paths_that_escape_and_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = site(dir.path());
    let members = snapshot_members(&a.snapshot());
    let client = Client::new(dir.path());
    let path = dir.path().join("evil.tar.zst");
    let cases: [(&str, tar::EntryType, &str); 4] = [
        ("../../evil", tar::EntryType::Regular, "leaves the archive"),
        ("/etc/evil", tar::EntryType::Regular, "absolute"),
        (
            "blobs/sha256/aa/link",
            tar::EntryType::Symlink,
            "links and devices are refused",
        ),
        (
            "blobs/sha256/aa/dev",
            tar::EntryType::Char,
            "links and devices are refused",
        ),
    ];
    for (name, kind, expect) in cases {
        // Both as the first member and after a valid signed manifest.
        for position in [0, 2] {
            let mut raw: Vec<_> = members
                .iter()
                .map(|(n, b)| RawMember::regular(n, b))
                .collect();
            raw.insert(
                position,
                RawMember {
                    name,
                    bytes: b"owned",
                    kind,
                },
            );
            craft_snapshot(&path, &raw);
            refused(&client, &path, &a.public_key(), expect);
        }
    }
    assert!(!dir.path().join("evil").exists() && !Path::new("/etc/evil").exists());
}

#[test]
fn oversized_input_is_refused_by_its_caps() {
    let dir = tempfile::tempdir().unwrap();
    let a = site(dir.path());
    let keys = mlld_registry::trust::TrustedKeys::load(Some(&a.public_key()), &[]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let defaults = mlld_registry::sync::snapshot_import::Limits::default();
    let cases = [
        (
            mlld_registry::sync::snapshot_import::Limits {
                compressed: 100,
                ..defaults
            },
            "over the 100-byte limit",
        ),
        (
            mlld_registry::sync::snapshot_import::Limits {
                unpacked: 4096,
                ..defaults
            },
            "unpacked size is over the limit",
        ),
        (
            mlld_registry::sync::snapshot_import::Limits {
                manifest: 1000,
                ..defaults
            },
            "`manifest.json` is over its 1000-byte limit",
        ),
        (
            mlld_registry::sync::snapshot_import::Limits {
                member: 100,
                ..defaults
            },
            "limit 100",
        ),
        // The search index's files have their own cap (they grow with the
        // registry); a blob-sized cap does not apply to them, nor theirs to blobs.
        (
            mlld_registry::sync::snapshot_import::Limits {
                index_member: 100,
                ..defaults
            },
            "index/",
        ),
    ];
    for (limits, expect) in cases {
        let store_dir = tempfile::tempdir().unwrap();
        let store = mlld_registry::store::Store::at(store_dir.path());
        let err = match mlld_registry::sync::snapshot_import::import(
            &store,
            &a.snapshot(),
            &keys,
            now,
            limits,
        ) {
            Ok(_) => panic!("{limits:?} accepted an over-limit snapshot"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expect), "expected `{expect}` in {err}");
        let stored: Vec<_> = tree(store_dir.path())
            .into_iter()
            .filter(|f| !f.starts_with("tmp"))
            .collect();
        assert!(stored.is_empty(), "{stored:?}");
    }
}
