//! Delta sync: a client that holds a snapshot patches it into the new one
//! and fetches the new blobs in one pack; where it cannot use the patch, it
//! fetches the index-only snapshot and only the blobs it lacks. Everything
//! is checked against the signed `latest.json` and manifest; anything bad
//! or missing is refused and the current snapshot stays.

use std::collections::BTreeMap;
use std::fs;
use std::process::Output;

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::synth_site::SynthSite;
use mlld_e2e::{Client, assert_fails, assert_ok, demo_key, tree};
use mlld_site_contract::chunk_delta::Writer;
use mlld_synth::SynthConfig;
use serde_json::Value;

struct World {
    _dir: tempfile::TempDir,
    s: SynthSite,
    server: HttpServer,
    client: Client,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let s = SynthSite::new(
        dir.path(),
        SynthConfig {
            users: 6,
            modules: 60,
            seed: 11,
        },
    );
    let server = HttpServer::start(static_files(s.site.clone()));
    let client = Client::new(dir.path());
    World {
        _dir: dir,
        s,
        server,
        client,
    }
}

impl World {
    fn sync(&self, extra: &[&str]) -> Output {
        let key = self.s.site.join("mlld-registry.pub");
        let url = self.server.url();
        let mut args = vec![
            "sync",
            "--from",
            &url,
            "--trusted-key",
            key.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        self.client
            .command(&args)
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .output()
            .unwrap()
    }

    /// Moves these modules to a new generation and rebuilds the site.
    fn change(&self, modules: &[usize]) {
        let changed: BTreeMap<usize, u32> = modules.iter().map(|&i| (i, 1)).collect();
        self.s.change(&changed);
    }

    fn latest(&self) -> mlld_schemas::Latest {
        serde_json::from_slice(&fs::read(self.s.site.join("latest.json")).unwrap()).unwrap()
    }

    /// Takes the delta patch off the site, so a sync must use the index-only snapshot.
    fn remove_patch(&self) {
        fs::remove_file(self.s.site.join(&self.latest().chunk_deltas[0].patch.path)).unwrap();
    }

    /// Rewrites `latest.json` and signs it with the site's key, as a
    /// compromised or buggy indexer would publish it.
    fn resign_latest(&self, edit: impl FnOnce(&mut mlld_schemas::Latest)) {
        let mut latest = self.latest();
        edit(&mut latest);
        let mut bytes = serde_json::to_vec_pretty(&latest).unwrap();
        bytes.push(b'\n');
        let sig = demo_key().sign(&bytes, "mlld-registry latest (re-signed by a test)");
        fs::write(self.s.site.join("latest.json.minisig"), sig).unwrap();
        fs::write(self.s.site.join("latest.json"), bytes).unwrap();
    }

    /// Publishes `pack` (a tar of `(path, bytes)`, zstd-compressed) as the
    /// delta's blob pack, in a re-signed `latest.json`.
    fn replace_blob_pack(&self, members: &[(String, Vec<u8>)]) {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in members {
            let mut h = tar::Header::new_ustar();
            // Written raw: `set_path` would refuse the hostile names some tests need.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            tar.append(&h, &bytes[..]).unwrap();
        }
        let pack = zstd::bulk::compress(&tar.into_inner().unwrap(), 3).unwrap();
        let sha = mlld_schemas::sha256_hex(&pack);
        let path = mlld_schemas::snapshot::delta_blobs_path(&sha);
        fs::write(self.s.site.join(&path), &pack).unwrap();
        self.resign_latest(|l| {
            l.chunk_deltas[0].blobs = mlld_schemas::SiteFile {
                path,
                sha256: sha,
                size: pack.len() as u64,
            }
        });
    }

    /// Publishes a chunk delta written by `ops` in place of the indexer's,
    /// in a re-signed `latest.json` (base and target digests unchanged).
    fn replace_patch(&self, ops: impl FnOnce(&mut Writer<Vec<u8>>)) {
        let mut writer = Writer::new(Vec::new(), 3).unwrap();
        ops(&mut writer);
        self.publish_patch(&writer.finish().unwrap());
    }

    fn publish_patch(&self, patch: &[u8]) {
        let sha = mlld_schemas::sha256_hex(patch);
        let path = mlld_site_contract::paths::chunk_delta_path(&sha);
        fs::write(self.s.site.join(&path), patch).unwrap();
        self.resign_latest(|l| {
            l.chunk_deltas[0].patch = mlld_schemas::SiteFile {
                path,
                sha256: sha,
                size: patch.len() as u64,
            }
        });
    }

    fn current_serial(&self) -> u64 {
        let state: Value =
            serde_json::from_slice(&fs::read(self.client.home.join("state.json")).unwrap())
                .unwrap();
        state["current"]["serial"].as_u64().unwrap()
    }

    /// A loose blob of the newest build that the previous one did not have.
    fn new_blob(&self, module: usize) -> std::path::PathBuf {
        let content = self.s.synth.content(module, 1);
        self.s.site.join(mlld_schemas::snapshot::blob_path(
            &mlld_schemas::sha256_hex(content.as_bytes()),
        ))
    }
}

fn report(out: &Output) -> Value {
    mlld_e2e::project::envelope_data(assert_ok(out).lines().last().unwrap().as_bytes())
}

#[test]
fn a_delta_sync_patches_the_stored_snapshot_and_installs_like_a_full_one() {
    let w = world();
    let first = report(&w.sync(&[]));
    assert_eq!(
        first["mode"], "full",
        "nothing to start from: the whole snapshot"
    );
    w.change(&[3, 17, 42]);
    let latest = w.latest();
    let [delta] = &latest.chunk_deltas[..] else {
        panic!("one delta, from serial 1: {:?}", latest.chunk_deltas)
    };
    assert_eq!(delta.from_serial, 1);
    // Only under its own name: a client that knows only the retired zstd
    // patches (`deltas`) finds none and takes the index-only snapshot.
    let raw: Value =
        serde_json::from_slice(&fs::read(w.s.site.join("latest.json")).unwrap()).unwrap();
    assert!(raw.get("deltas").is_none(), "{raw}");
    assert!(delta.patch.path.ends_with(".chunks.zst"), "{delta:?}");
    assert!(w.s.site.join(&delta.patch.path).is_file());
    assert!(w.s.site.join(&delta.blobs.path).is_file());
    let second = report(&w.sync(&[]));
    assert_eq!(second["mode"], "delta");
    assert_eq!(second["serial"], 2);
    let d = &second["delta"];
    assert_eq!(d["route"], "patch", "{second}");
    assert_eq!(d["blobsFromPack"], 3, "{second}");
    assert_eq!(d["blobsFetched"], 0, "{second}");
    assert!(d["blobsReused"].as_u64().unwrap() >= 57);
    let downloaded = second["downloadedBytes"].as_u64().unwrap();
    assert_eq!(downloaded, delta.patch.size + delta.blobs.size);
    let index = latest.index.as_ref().unwrap();
    // Smaller by far at scale (`cargo xtask bench sync`); in a 60-module
    // registry the new search segment, carried whole, is much of it.
    assert!(
        downloaded * 3 < index.size * 2,
        "the patch and pack ({downloaded} bytes) are far smaller than the index-only snapshot ({}): {delta:?}",
        index.size
    );

    // The stored snapshot is the full one: resolve a changed module, search, install offline.
    let m = &w.s.synth.modules[17];
    let key = w.s.site.join("mlld-registry.pub");
    let key = key.to_str().unwrap();
    assert_ok(&w.client.run(&[
        "resolve",
        &format!("@{}/{}", m.user, m.name),
        "--yes",
        "--trusted-key",
        key,
    ]));
    let cached = w.client.project.join(format!(
        ".mlld/cache/gist/{}/{}/{}/content.mld",
        m.user,
        m.gist,
        w.s.synth.revision(17, 1)
    ));
    assert_eq!(
        fs::read_to_string(cached).unwrap(),
        w.s.synth.content(17, 1)
    );
    let found = assert_ok(
        &w.client
            .run(&["search", &m.name, "--json", "--trusted-key", key]),
    );
    assert!(found.contains(&m.name), "{found}");
    // The nightly index kept its base segment and added one for the changed
    // modules; the search above ran across both.
    let index = tree(
        &w.client
            .home
            .join("snapshots")
            .join(&latest.sha256)
            .join("index"),
    );
    assert!(
        index
            .iter()
            .any(|f| f.starts_with(mlld_schemas::search::DELTA_SEGMENT_ID)),
        "{index:?}"
    );
    let verified = assert_ok(&w.client.run(&["verify", "--json"]));
    assert!(!verified.contains("mismatch"), "{verified}");

    // Nothing new: up to date, nothing downloaded.
    let third = report(&w.sync(&[]));
    assert_eq!(third["upToDate"], true);
}

#[test]
fn the_patched_store_equals_a_full_sync() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[2, 50]);
    report(&w.sync(&[]));
    let full = Client::new(&w._dir.path().join("full"));
    let key = w.s.site.join("mlld-registry.pub");
    let url = w.server.url();
    assert_ok(
        &full
            .command(&[
                "sync",
                "--from",
                &url,
                "--trusted-key",
                key.to_str().unwrap(),
            ])
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap(),
    );
    let sha = w.latest().sha256;
    let dir = |c: &Client| c.home.join("snapshots").join(&sha);
    for name in ["manifest.json", "manifest.json.minisig"] {
        assert_eq!(
            fs::read(dir(&w.client).join(name)).unwrap(),
            fs::read(dir(&full).join(name)).unwrap(),
            "{name}"
        );
    }
    // The packs hold the same members (in another order: a delta appends the new blobs).
    let members = |c: &Client| {
        let idx = fs::read_to_string(dir(c).join("pack.idx")).unwrap();
        let mut m: Vec<String> = idx
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect();
        m.sort();
        m
    };
    assert_eq!(members(&w.client), members(&full));
    assert_eq!(
        tree(&dir(&w.client).join("index")),
        tree(&dir(&full).join("index"))
    );
}

#[test]
fn without_the_patch_a_delta_sync_takes_the_index_only_snapshot() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[3, 17, 42]);
    w.remove_patch();
    let second = report(&w.sync(&[]));
    let d = &second["delta"];
    assert_eq!(d["route"], "index", "{second}");
    assert!(
        d["patchUnusable"]
            .as_str()
            .unwrap()
            .contains("the site lacks"),
        "{second}"
    );
    assert_eq!(d["blobsFetched"], 3, "{second}");
    assert_eq!(
        second["downloadedBytes"].as_u64().unwrap(),
        w.latest().index.unwrap().size + d["blobBytesFetched"].as_u64().unwrap()
    );
}

#[test]
fn a_client_two_builds_behind_takes_the_index_only_snapshot() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[4]);
    w.change(&[4, 5]);
    assert_eq!(w.latest().chunk_deltas[0].from_serial, 2);
    let third = report(&w.sync(&[]));
    assert_eq!(third["serial"], 3);
    assert_eq!(third["delta"]["route"], "index", "{third}");
    assert_eq!(third["delta"]["blobsFetched"], 2, "{third}");
}

#[test]
fn without_the_blob_pack_new_blobs_come_one_by_one() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[6, 7]);
    fs::remove_file(w.s.site.join(&w.latest().chunk_deltas[0].blobs.path)).unwrap();
    let second = report(&w.sync(&[]));
    assert_eq!(second["delta"]["route"], "patch", "{second}");
    assert_eq!(second["delta"]["blobsFetched"], 2, "{second}");
    assert_eq!(second["delta"]["blobsFromPack"], 0, "{second}");
}

#[test]
fn sync_full_still_takes_the_whole_file() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[5]);
    let out = report(&w.sync(&["--full"]));
    assert_eq!(out["mode"], "full");
    assert_eq!(out["downloadedBytes"], w.latest().size);
}

/// Syncs and checks the sync was refused with `expect`, leaving the store as it was.
fn assert_sync_refused(w: &World, expect: &str) {
    let before_state = fs::read(w.client.home.join("state.json")).unwrap();
    let out = w.sync(&[]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains(expect), "expected `{expect}` in:\n{stderr}");
    assert_eq!(w.current_serial(), 1, "the current snapshot stays");
    assert_eq!(
        fs::read(w.client.home.join("state.json")).unwrap(),
        before_state
    );
    let snapshots: Vec<_> = tree(&w.client.home.join("snapshots"))
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "no second snapshot entered the store: {snapshots:?}"
    );
    assert!(
        tree(&w.client.home.join("tmp")).is_empty(),
        "staging was cleaned"
    );
}

#[test]
fn a_blob_whose_bytes_do_not_match_the_manifest_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[8, 9]);
    w.remove_patch();
    let blob = w.new_blob(9);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[10] ^= 0x20;
    fs::write(&blob, &bytes).unwrap();
    assert_sync_refused(&w, "but the signed metadata names");
}

#[test]
fn a_blob_pack_blob_that_does_not_match_the_manifest_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[8, 9]);
    let path = |m| {
        mlld_schemas::snapshot::blob_path(&mlld_schemas::sha256_hex(
            w.s.synth.content(m, 1).as_bytes(),
        ))
    };
    let mut wrong = w.s.synth.content(9, 1).into_bytes();
    wrong[10] ^= 0x20;
    w.replace_blob_pack(&[
        (path(8), w.s.synth.content(8, 1).into_bytes()),
        (path(9), wrong),
    ]);
    assert_sync_refused(&w, "but the signed manifest says");
}

#[test]
fn a_blob_pack_with_a_member_the_manifest_does_not_list_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[8]);
    let stray = b"not in any manifest".to_vec();
    let stray_path = mlld_schemas::snapshot::blob_path(&mlld_schemas::sha256_hex(&stray));
    w.replace_blob_pack(&[(stray_path, stray)]);
    assert_sync_refused(&w, "which is no blob of the signed manifest");
    w.replace_blob_pack(&[("../escape".to_string(), b"x".to_vec())]);
    assert_sync_refused(&w, "refused");
    // A blob twice: the client appends pack blobs as they come, so a repeat
    // would list one member twice in the staged pack.
    let content = w.s.synth.content(8, 1).into_bytes();
    let path = mlld_schemas::snapshot::blob_path(&mlld_schemas::sha256_hex(&content));
    w.replace_blob_pack(&[(path.clone(), content.clone()), (path, content)]);
    assert_sync_refused(&w, "twice");
}

#[test]
fn a_host_that_lacks_a_blob_is_a_clear_error() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[30]);
    fs::remove_file(w.s.site.join(&w.latest().chunk_deltas[0].blobs.path)).unwrap();
    fs::remove_file(w.new_blob(30)).unwrap();
    assert_sync_refused(&w, "is missing, though the signed metadata names it");
    let stderr = String::from_utf8_lossy(&w.sync(&[]).stderr).into_owned();
    assert!(
        stderr.contains("--full"),
        "the error says what to do next: {stderr}"
    );
}

#[test]
fn a_tampered_index_snapshot_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[1]);
    w.remove_patch();
    let index = w.s.site.join(w.latest().index.unwrap().path);
    let mut bytes = fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&index, &bytes).unwrap();
    assert_sync_refused(&w, "the download was altered");
}

#[test]
fn a_tampered_patch_or_blob_pack_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[1]);
    let delta = w.latest().chunk_deltas[0].clone();
    for file in [&delta.patch, &delta.blobs] {
        let path = w.s.site.join(&file.path);
        let good = fs::read(&path).unwrap();
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        fs::write(&path, &bad).unwrap();
        assert_sync_refused(&w, "the download was altered");
        fs::write(&path, &good).unwrap();
    }
    // A patch that the signed latest.json vouches for but that yields a
    // different snapshot (a buggy indexer) is refused by the target digest.
    w.resign_latest(|l| l.chunk_deltas[0].target.sha256 = "0".repeat(64));
    assert_sync_refused(&w, "patches to a tar with SHA-256");
}

#[test]
fn a_chunk_delta_copying_outside_its_base_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[1]);
    let delta = w.latest().chunk_deltas[0].clone();
    w.replace_patch(|ops| ops.copy(delta.base.size - 8, 16).unwrap());
    assert_sync_refused(&w, "out of range");
    w.replace_patch(|ops| ops.copy(u64::MAX - 4, 8).unwrap());
    assert_sync_refused(&w, "out of range");
}

#[test]
fn a_chunk_delta_making_more_than_the_signed_target_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[1]);
    let delta = w.latest().chunk_deltas[0].clone();
    w.replace_patch(|ops| {
        ops.data(&vec![b'x'; delta.target.size as usize + 1])
            .unwrap()
    });
    assert_sync_refused(&w, "makes more than the signed");
    // A length no one could hold, announced in a few bytes.
    w.replace_patch(|ops| ops.copy(0, u64::MAX).unwrap());
    assert_sync_refused(&w, "makes more than the signed");
}

#[test]
fn a_truncated_chunk_delta_is_refused() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[1]);
    let good = fs::read(w.s.site.join(&w.latest().chunk_deltas[0].patch.path)).unwrap();
    // Whole zstd frames whose operations stop early.
    let mut ops = Vec::new();
    zstd::stream::copy_decode(&good[..], &mut ops).unwrap();
    let cut = zstd::bulk::compress(&ops[..ops.len() / 2], 3).unwrap();
    w.publish_patch(&cut);
    assert_sync_refused(&w, "truncated");
    // The compressed stream cut short.
    w.publish_patch(&good[..good.len() / 2]);
    assert_sync_refused(&w, "the chunk delta");
}
