//! Delta sync: a client that holds a snapshot fetches the index-only
//! snapshot and only the blobs it lacks, each checked against the signed
//! manifest; a bad or missing blob is refused and the current snapshot stays.

use std::collections::BTreeMap;
use std::fs;
use std::process::Output;

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::{Client, assert_fails, assert_ok, build_from, build_time, demo_key, tree};
use mlld_synth::{Synth, SynthConfig};
use serde_json::Value;

struct World {
    _dir: tempfile::TempDir,
    synth: Synth,
    data: std::path::PathBuf,
    site: std::path::PathBuf,
    server: HttpServer,
    client: Client,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let synth = Synth::new(SynthConfig {
        users: 6,
        modules: 60,
        seed: 11,
    });
    let data = dir.path().join("data");
    synth.write(&data, &BTreeMap::new()).unwrap();
    let site = dir.path().join("site");
    build_from(
        &site,
        None,
        build_time(),
        demo_key(),
        &data.join("registry"),
        &data.join("gists"),
    );
    let server = HttpServer::start(static_files(site.clone()));
    let client = Client::new(dir.path());
    World {
        _dir: dir,
        synth,
        data,
        site,
        server,
        client,
    }
}

impl World {
    fn sync(&self, extra: &[&str]) -> Output {
        let key = self.site.join("mlld-registry.pub");
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
        self.synth.write(&self.data, &changed).unwrap();
        build_from(
            &self.site,
            None,
            build_time(),
            demo_key(),
            &self.data.join("registry"),
            &self.data.join("gists"),
        );
    }

    fn latest(&self) -> mlld_schemas::Latest {
        serde_json::from_slice(&fs::read(self.site.join("latest.json")).unwrap()).unwrap()
    }

    fn current_serial(&self) -> u64 {
        let state: Value =
            serde_json::from_slice(&fs::read(self.client.home.join("state.json")).unwrap())
                .unwrap();
        state["current"]["serial"].as_u64().unwrap()
    }

    /// A loose blob of the newest build that the previous one did not have.
    fn new_blob(&self, module: usize) -> std::path::PathBuf {
        let content = self.synth.content(module, 1);
        self.site.join(mlld_schemas::snapshot::blob_path(
            &mlld_schemas::sha256_hex(content.as_bytes()),
        ))
    }
}

fn report(out: &Output) -> Value {
    serde_json::from_str(assert_ok(out).lines().last().unwrap()).unwrap()
}

#[test]
fn a_delta_sync_downloads_only_what_changed_and_installs_like_a_full_one() {
    let w = world();
    let first = report(&w.sync(&[]));
    assert_eq!(
        first["mode"], "full",
        "nothing to start from: the whole snapshot"
    );
    w.change(&[3, 17, 42]);
    let full_size = w.latest().size;
    let second = report(&w.sync(&[]));
    assert_eq!(second["mode"], "delta");
    assert_eq!(second["serial"], 2);
    assert_eq!(second["delta"]["blobsFetched"], 3, "{second}");
    assert!(second["delta"]["blobsReused"].as_u64().unwrap() >= 57);
    let downloaded = second["downloadedBytes"].as_u64().unwrap();
    assert!(downloaded < full_size, "{downloaded} of {full_size}");
    assert_eq!(
        downloaded,
        w.latest().index.unwrap().size + second["delta"]["blobBytesFetched"].as_u64().unwrap()
    );

    // The stored snapshot is the full one: resolve a changed module, search, install offline.
    let m = &w.synth.modules[17];
    let key = w.site.join("mlld-registry.pub");
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
        w.synth.revision(17, 1)
    ));
    assert_eq!(fs::read_to_string(cached).unwrap(), w.synth.content(17, 1));
    let found = assert_ok(
        &w.client
            .run(&["search", &m.name, "--json", "--trusted-key", key]),
    );
    assert!(found.contains(&m.name), "{found}");

    // Nothing new: up to date, nothing downloaded.
    let third = report(&w.sync(&[]));
    assert_eq!(third["upToDate"], true);
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
    let blob = w.new_blob(9);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[10] ^= 0x20;
    fs::write(&blob, &bytes).unwrap();
    assert_sync_refused(&w, "but the signed manifest says");
}

#[test]
fn a_host_that_lacks_a_blob_is_a_clear_error() {
    let w = world();
    report(&w.sync(&[]));
    w.change(&[30]);
    fs::remove_file(w.new_blob(30)).unwrap();
    assert_sync_refused(&w, "the site lacks blob");
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
    let index = w.site.join(w.latest().index.unwrap().path);
    let mut bytes = fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&index, &bytes).unwrap();
    assert_sync_refused(&w, "the download was altered");
}
