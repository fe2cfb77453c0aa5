//! Sparse sync: a client fetches the signed root, then only the shards and
//! blobs its project reads, each checked against the signed digests; later
//! commands fetch what they lack unless `--offline`. The attacks: a shard
//! that does not match the root, a root that rolls back or belongs to
//! another build, a missing shard, a mirror serving another registry's shard.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Output;

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::synth_site::SynthSite;
use mlld_e2e::{Client, assert_fails, assert_ok, build_time, demo_key, tree};
use mlld_schemas::Latest;
use mlld_schemas::shard::{shard_key, shard_of};
use mlld_schemas::sparse::{SparseRoot, shard_path};
use mlld_synth::SynthConfig;
use serde_json::Value;

struct World {
    dir: tempfile::TempDir,
    s: SynthSite,
    server: HttpServer,
    client: Client,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    // Enough modules for several shards, so "only what it needs" shows.
    let s = SynthSite::new(dir.path(), config(5));
    let server = HttpServer::start(static_files(s.site.clone()));
    let client = Client::new(dir.path());
    World {
        dir,
        s,
        server,
        client,
    }
}

fn config(seed: u64) -> SynthConfig {
    SynthConfig {
        users: 8,
        modules: 300,
        seed,
    }
}

fn latest(site: &Path) -> Latest {
    serde_json::from_slice(&fs::read(site.join("latest.json")).unwrap()).unwrap()
}

fn root(site: &Path) -> SparseRoot {
    let path = latest(site)
        .sparse
        .expect("the site publishes a sparse root")
        .path;
    serde_json::from_slice(&fs::read(site.join(path)).unwrap()).unwrap()
}

/// Re-signs `latest.json` after `edit`, as a holder of the key could.
fn resign_latest(site: &Path, edit: impl FnOnce(&mut Latest)) {
    let mut l = latest(site);
    edit(&mut l);
    let mut bytes = serde_json::to_vec_pretty(&l).unwrap();
    bytes.push(b'\n');
    let sig = demo_key().sign(&bytes, "mlld-registry latest (re-signed by a test)");
    fs::write(site.join("latest.json.minisig"), sig).unwrap();
    fs::write(site.join("latest.json"), bytes).unwrap();
}

impl World {
    fn key(&self) -> String {
        self.s.site.join("mlld-registry.pub").display().to_string()
    }

    /// Runs the client with loopback reachable and the site's key trusted.
    fn run(&self, args: &[&str]) -> Output {
        let key = self.key();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--trusted-key", &key]);
        self.client
            .command(&all)
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .output()
            .unwrap()
    }

    fn sync_sparse(&self) -> Output {
        self.run(&["sync", "--sparse", "--from", &self.server.url(), "--json"])
    }

    fn module(&self, i: usize) -> String {
        let m = &self.s.synth.modules[i];
        format!("mlld://{}/{}", m.user, m.name)
    }

    /// The site path of the shard holding module `i`.
    fn shard_of_module(&self, i: usize) -> String {
        let m = &self.s.synth.modules[i];
        let root = root(&self.s.site);
        let n = shard_of(&shard_key(&m.user, &m.name), root.shard_bits);
        shard_path(&root.shards[n as usize])
    }

    fn stored_shards(&self) -> Vec<String> {
        tree(&self.client.home.join("sparse/shards"))
    }

    fn state(&self) -> Vec<u8> {
        fs::read(self.client.home.join("state.json")).unwrap_or_default()
    }
}

fn data(out: &Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["data"].clone()
}

#[test]
fn sparse_sync_fetches_the_root_then_only_what_commands_read() {
    let w = world();
    let root = root(&w.s.site);
    assert!(root.shards.len() >= 2, "{} shards", root.shards.len());
    let report = data(&w.sync_sparse());
    assert_eq!(report["mode"], "sparse");
    let full = latest(&w.s.site).size;
    let fetched = report["downloadedBytes"].as_u64().unwrap();
    assert!(fetched < full / 10, "root {fetched} bytes, snapshot {full}");
    assert!(w.stored_shards().is_empty(), "no lock yet, no shard");
    assert!(!w.client.home.join("snapshots").exists());

    // Resolving fetches the module's shard and content on demand.
    assert_ok(&w.run(&["resolve", &w.module(3), "--yes"]));
    assert_ok(&w.run(&["install"]));
    assert_ok(&w.run(&["verify"]));
    assert_ok(&w.run(&["ls"]));
    assert_ok(&w.run(&["audit"]));
    let doctor = String::from_utf8_lossy(&w.run(&["doctor"]).stdout).to_string();
    assert!(
        doctor.contains("ok    snapshot          sparse, serial"),
        "{doctor}"
    );
    let held = w.stored_shards();
    assert!(
        !held.is_empty() && held.len() < root.shards.len(),
        "{} of {} shards",
        held.len(),
        root.shards.len()
    );
    // Offline, what was fetched still works, and nothing else is reached.
    let info = w.run(&["info", &w.module(3)[7..], "--offline", "--json"]);
    assert_ok(&info);
    let other = (0..w.s.synth.modules.len())
        .find(|&i| {
            !held
                .iter()
                .any(|s| w.shard_of_module(i).ends_with(s.as_str()))
        })
        .expect("a module in a shard not fetched");
    let err = assert_fails(&w.run(&["info", &w.module(other)[7..], "--offline"]), 2);
    assert!(err.contains("--offline forbids fetching"), "{err}");
    let err = assert_fails(&w.run(&["search", "json"]), 2);
    assert!(err.contains("sparse sync"), "{err}");
    // A new project with the same lock: sync --sparse prefetches its shards and blobs.
    let lock = fs::read(w.client.project.join(".mlld/mlld.lock.json")).unwrap();
    fs::remove_dir_all(w.client.home.join("sparse/shards")).unwrap();
    fs::remove_dir_all(w.client.home.join("sparse/blobs")).unwrap();
    fs::remove_dir_all(w.client.project.join(".mlld/cache")).unwrap();
    let report = data(&w.sync_sparse());
    let locked: Value = serde_json::from_slice(&lock).unwrap();
    let imports = locked["imports"].as_object().unwrap().len();
    assert_eq!(
        report["sparse"]["prefetched"]["modules"], imports,
        "{report}"
    );
    assert_eq!(
        fs::read(w.client.project.join(".mlld/mlld.lock.json")).unwrap(),
        lock
    );
    assert_ok(&w.run(&["install", "--offline"]));
    assert_eq!(w.client.guard.connections(), 0);
}

#[test]
fn a_later_sparse_sync_fetches_only_changed_shards_it_holds() {
    let w = world();
    assert_ok(&w.sync_sparse());
    assert_ok(&w.run(&["resolve", &w.module(3), "--yes"]));
    let before = w.stored_shards();
    // Another module changes; the shard of module 3 may or may not change.
    w.s.change(&BTreeMap::from([(3, 1), (40, 1)]));
    let report = data(&w.sync_sparse());
    assert_eq!(report["mode"], "sparse");
    assert!(report["serial"].as_u64().unwrap() > report["previousSerial"].as_u64().unwrap());
    let fetched = report["downloadedBytes"].as_u64().unwrap();
    let root_bytes = report["sparse"]["rootBytes"].as_u64().unwrap();
    let shard_bytes: u64 = before
        .iter()
        .map(|s| {
            fs::metadata(w.client.home.join("sparse/shards").join(s))
                .unwrap()
                .len()
        })
        .sum();
    assert!(fetched <= root_bytes + 2 * shard_bytes + 4096, "{report}");
    // `outdated` sees the new revision through the new root.
    let out = w.run(&["outdated"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ok(&w.run(&["update", "--yes"]));
    assert_ok(&w.run(&["verify"]));
}

#[test]
fn a_shard_that_does_not_match_the_root_is_refused() {
    let w = world();
    assert_ok(&w.sync_sparse());
    let shard = w.s.site.join(w.shard_of_module(3));
    let mut bytes = fs::read(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&shard, bytes).unwrap();
    let err = assert_fails(&w.run(&["resolve", &w.module(3), "--yes"]), 2);
    assert!(err.contains("altered or foreign"), "{err}");
    assert!(!w.client.project.join(".mlld/mlld.lock.json").exists());
    assert!(
        w.stored_shards().is_empty(),
        "a refused shard is not stored"
    );
}

#[test]
fn a_stored_shard_that_was_damaged_is_fetched_again_or_refused_offline() {
    let w = world();
    assert_ok(&w.sync_sparse());
    assert_ok(&w.run(&["resolve", &w.module(3), "--yes"]));
    // The shard holding module 3, as the store keeps it (by its digest).
    let site_path = w.shard_of_module(3);
    let digest = Path::new(&site_path).file_name().unwrap();
    let stored = w.client.home.join("sparse/shards").join(digest);
    assert!(
        w.stored_shards()
            .iter()
            .any(|s| Path::new(s).file_name() == Some(digest)),
        "the store holds {site_path}: {:?}",
        w.stored_shards()
    );
    fs::write(&stored, b"tampered").unwrap();
    let err = assert_fails(&w.run(&["info", &w.module(3)[7..], "--offline"]), 2);
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("--offline forbids fetching"), "{err}");
    assert!(
        !err.contains("not in the store"),
        "it is in the store: {err}"
    );
    // Offline, nothing could replace it: it is left for the next fetch.
    assert_eq!(fs::read(&stored).unwrap(), b"tampered");
    assert_ok(&w.run(&["info", &w.module(3)[7..]]));
    assert_ne!(fs::read(&stored).unwrap(), b"tampered", "fetched again");
}

#[test]
fn a_missing_shard_is_an_error_that_says_what_to_do() {
    let w = world();
    assert_ok(&w.sync_sparse());
    fs::remove_file(w.s.site.join(w.shard_of_module(3))).unwrap();
    let err = assert_fails(&w.run(&["resolve", &w.module(3), "--yes"]), 2);
    assert!(err.contains("fetching shard"), "{err}");
    assert!(
        err.contains("is missing, though the signed metadata names it"),
        "{err}"
    );
    assert!(err.contains("mlld-registry sync"), "{err}");
    assert!(!w.client.project.join(".mlld/mlld.lock.json").exists());
}

#[test]
fn a_root_that_rolls_back_is_refused() {
    let w = world();
    let old_site = w.dir.path().join("old-site");
    mlld_e2e::copy_dir(&w.s.site, &old_site);
    w.s.change(&BTreeMap::from([(3, 1)]));
    assert_ok(&w.sync_sparse());
    let state = w.state();

    // A mirror serving the older build, validly signed: below the floor.
    let mirror = HttpServer::start(static_files(old_site.clone()));
    let out = w.run(&["sync", "--sparse", "--from", &mirror.url()]);
    let err = assert_fails(&out, 2);
    assert!(err.contains("rollback refused"), "{err}");
    assert_eq!(w.state(), state);

    // The new pointer with the old root served at its path: not its digest.
    let new_root = latest(&w.s.site).sparse.unwrap();
    let old_root = latest(&old_site).sparse.unwrap();
    fs::copy(old_site.join(&old_root.path), w.s.site.join(&new_root.path)).unwrap();
    let err = assert_fails(&w.sync_sparse(), 2);
    assert!(err.contains("altered or foreign"), "{err}");
    assert_eq!(w.state(), state);

    // A pointer re-signed to name the old root by its own digest: the root
    // is another build's (its serial and snapshot differ).
    fs::copy(old_site.join(&old_root.path), w.s.site.join(&old_root.path)).unwrap();
    resign_latest(&w.s.site, |l| {
        l.serial += 1;
        l.sparse = Some(old_root.clone());
    });
    let err = assert_fails(&w.sync_sparse(), 2);
    assert!(err.contains("mixes two builds"), "{err}");
    assert_eq!(w.state(), state);
}

#[test]
fn a_mirror_serving_another_registrys_shard_is_refused() {
    let w = world();
    // Another registry, same layout, other modules.
    let other = SynthSite::new(&w.dir.path().join("other"), config(99));
    let other_site = other.site.clone();
    let theirs = root(&other_site);
    assert_ok(&w.sync_sparse());

    // Its shard of the same number, at our shard's path.
    let ours = w.shard_of_module(3);
    let n = root(&w.s.site)
        .shards
        .iter()
        .position(|s| ours.contains(s.as_str()))
        .unwrap();
    fs::copy(
        other_site.join(shard_path(&theirs.shards[n])),
        w.s.site.join(&ours),
    )
    .unwrap();
    let err = assert_fails(&w.run(&["resolve", &w.module(3), "--yes"]), 2);
    assert!(err.contains("altered or foreign"), "{err}");
    assert!(w.stored_shards().is_empty());

    // Its whole root, named by a pointer signed with our key: another build.
    let their_root = latest(&other_site).sparse.unwrap();
    fs::copy(
        other_site.join(&their_root.path),
        w.s.site.join(&their_root.path),
    )
    .unwrap();
    let state = w.state();
    resign_latest(&w.s.site, |l| {
        l.serial += 1;
        l.sparse = Some(their_root);
    });
    let err = assert_fails(&w.sync_sparse(), 2);
    assert!(err.contains("mixes two builds"), "{err}");
    assert_eq!(w.state(), state);
}

#[test]
fn sparse_sync_prefetches_every_file_of_a_locked_version() {
    let dir = tempfile::tempdir().unwrap();
    let site = mlld_e2e::build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    let key_file = dir.path().join("mlld-registry.pub");
    fs::copy(site.public_key(), &key_file).unwrap();
    let key = key_file.display().to_string();
    let from = site.dir.display().to_string();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--trusted-key", &key]);
        client.run(&all)
    };
    assert_ok(&run(&["sync", "--sparse", "--from", &from]));
    assert_ok(&run(&["resolve", "@adamavenir/json-utils@^1", "--yes"]));
    fs::remove_dir_all(client.home.join("sparse/blobs")).unwrap();
    fs::remove_dir_all(client.project.join(".mlld/cache")).unwrap();
    let report = data(&run(&["sync", "--sparse", "--from", &from, "--json"]));
    assert_eq!(report["sparse"]["prefetched"]["modules"], 1, "{report}");
    // The site is gone: install needs only what the sparse sync stored.
    fs::rename(&site.dir, dir.path().join("site-gone")).unwrap();
    let out = assert_ok(&run(&["install", "--offline"]));
    assert!(out.contains("1 installed"), "{out}");
}

#[test]
fn sparse_sync_from_one_snapshot_file_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let site = mlld_e2e::build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    let key = site.public_key().display().to_string();
    let file = site.snapshot().display().to_string();
    let out = client.run(&["sync", "--sparse", "--from", &file, "--trusted-key", &key]);
    let err = assert_fails(&out, 2);
    assert!(err.contains("drop --sparse"), "{err}");
    assert!(
        !client.home.join("state.json").exists(),
        "nothing was made current"
    );
}

#[test]
fn sync_alone_returns_to_the_stores_site_and_a_full_store_drops_its_sparse_files() {
    let w = world();
    assert_ok(&w.sync_sparse());
    assert_ok(&w.run(&["resolve", &w.module(3), "--yes"]));
    w.s.change(&BTreeMap::from([(40, 1)]));
    // No --from, no MLLD_REGISTRY_URL, no config: the site the store records.
    let report = data(&w.run(&["sync", "--json"]));
    assert_eq!(report["mode"], "sparse", "{report}");
    assert_eq!(
        report["source"],
        w.server.url().trim_end_matches('/'),
        "{report}"
    );

    // The first full sync keeps the sparse files for readers of the store
    // it replaced; the next one removes them.
    let full = data(&w.run(&["sync", "--full", "--json"]));
    assert_eq!(full["mode"], "full", "{full}");
    assert_eq!(full["upToDate"], false, "{full}");
    assert!(w.client.home.join("sparse").exists());
    w.s.change(&BTreeMap::from([(41, 1)]));
    let again = data(&w.run(&["sync", "--json"]));
    assert_ne!(again["mode"], "sparse", "{again}");
    assert!(
        !w.client.home.join("sparse").exists(),
        "the sparse files of an earlier store are gone"
    );
    assert_ok(&w.run(&["verify"]));
}

#[test]
fn a_site_named_relative_to_one_directory_is_found_again_from_another() {
    let w = world();
    let key = w.key();
    let parent = w.s.site.parent().unwrap();
    let relative = w.s.site.file_name().unwrap().to_str().unwrap();
    let first = w
        .client
        .command_in(parent, &["sync", "--from", relative, "--trusted-key", &key])
        .output()
        .unwrap();
    assert_ok(&first);
    // Plain `sync` from the project, another directory: the store recorded
    // the site's absolute path, not the name relative to where it ran.
    let again = data(&w.run(&["sync", "--json"]));
    assert_eq!(again["source"], w.s.site.display().to_string(), "{again}");
}

#[test]
fn a_signed_shard_whose_record_breaks_the_naming_rules_is_refused() {
    use mlld_schemas::SiteFile;
    use mlld_site_contract::sparse::{compress_shard_json, shard_json_of};
    let w = world();
    // A key holder (or a compromised indexer) signs a shard whose record
    // for module 3 names a file that climbs out of the cache.
    let m = &w.s.synth.modules[3];
    let shard_rel = w.shard_of_module(3);
    let json = shard_json_of(&fs::read(w.s.site.join(&shard_rel)).unwrap()).unwrap();
    let mut shard: Value = serde_json::from_slice(&json).unwrap();
    let records = shard["records"]["modules"].as_array_mut().unwrap();
    let record = (records.iter_mut())
        .find(|r| r["user"] == m.user.as_str() && r["name"] == m.name.as_str())
        .expect("module 3 is in its shard");
    record["file"] = "../../../escaped.mld".into();
    let bytes = compress_shard_json(&serde_json::to_vec(&shard).unwrap()).unwrap();
    let sha = mlld_schemas::sha256_hex(&bytes);
    fs::create_dir_all(w.s.site.join(shard_path(&sha)).parent().unwrap()).unwrap();
    fs::write(w.s.site.join(shard_path(&sha)), &bytes).unwrap();

    let mut r = root(&w.s.site);
    let n = shard_of(&shard_key(&m.user, &m.name), r.shard_bits) as usize;
    r.shards[n] = sha;
    r.max_shard_size = r.max_shard_size.max(bytes.len() as u64);
    let root_bytes = serde_json::to_vec(&r).unwrap();
    let root_sha = mlld_schemas::sha256_hex(&root_bytes);
    let root_rel = mlld_schemas::sparse::root_path(&root_sha);
    fs::create_dir_all(w.s.site.join(&root_rel).parent().unwrap()).unwrap();
    fs::write(w.s.site.join(&root_rel), &root_bytes).unwrap();
    resign_latest(&w.s.site, |l| {
        l.sparse = Some(SiteFile {
            path: root_rel,
            sha256: root_sha,
            size: root_bytes.len() as u64,
        });
    });

    assert_ok(&w.sync_sparse());
    let err = assert_fails(&w.run(&["resolve", &w.module(3), "--yes"]), 2);
    assert!(err.contains("is refused: its modules["), "{err}");
    assert!(err.contains("].file is invalid"), "{err}");
    assert!(!w.client.project.join(".mlld/mlld.lock.json").exists());
    assert!(!w.dir.path().join("escaped.mld").exists());
}
