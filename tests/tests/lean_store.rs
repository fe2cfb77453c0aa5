//! After `sync`, commands read the query store `sync` wrote from verified
//! bytes (each name's records, a blob index), not the whole signed
//! manifest; a damaged query store is refused with a way out, and
//! `sync --repair` rebuilds it.

use std::path::{Path, PathBuf};

use mlld_e2e::project::{json, synced};
use mlld_e2e::{Client, assert_fails, assert_ok, mkfifo, run_bounded};
use mlld_schemas::shard::{shard_key, shard_of};

fn current_dir(client: &Client) -> PathBuf {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(client.home.join("state.json")).unwrap()).unwrap();
    let sha = state["current"]["snapshot"].as_str().unwrap();
    client.home.join("snapshots").join(sha)
}

/// Where the record of `user/name` lies in `records.bin`, and where its
/// entry in its bucket's directory lies (see `mlld_registry::registry::records`).
fn record_span(records: &Path, user: &str, name: &str) -> (usize, usize, usize) {
    let bytes = std::fs::read(records).unwrap();
    let bits = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let n = shard_of(&shard_key(user, name), bits) as usize;
    let at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()) as usize;
    let (dir, count) = (at(16 + 16 * n), at(24 + 16 * n));
    let key = mlld_schemas::sha256_bytes(shard_key(user, name).as_bytes());
    let entry = (0..count)
        .map(|i| dir + 32 + 80 * i)
        .find(|&e| bytes[e..e + 32] == key)
        .expect("the name is listed in its bucket");
    (at(entry + 32), at(entry + 40), entry)
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn sync_writes_a_query_store_and_commands_never_read_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let snap = current_dir(&client);
    for file in ["head2.json", "records.bin", "blobs.idx"] {
        assert!(snap.join("query").join(file).is_file(), "query/{file}");
    }
    // The signed manifest is what sync verified; commands do not read it
    // again. Replace it with garbage: every command still works.
    std::fs::write(snap.join("manifest.json"), b"not even json").unwrap();
    assert_ok(&client.run(&["resolve", "mlld://adamavenir/json-utils", "--yes"]));
    assert_ok(&client.run(&["resolve", "@adamavenir/json-utils@^1", "--yes"]));
    let info = json(&client.run(&["info", "jdoe/date-fmt", "--json"]));
    assert_eq!(info["name"], "jdoe/date-fmt");
    assert_ok(&client.run(&["install"]));
    assert_ok(&client.run(&["ls"]));
    assert_ok(&client.run(&["verify"]));
    assert_ok(&client.run(&["audit"]));
    assert_ok(&client.run(&["search", "json"]));
    // A full check does read it, and refuses it.
    let err = assert_fails(&client.run(&["sync", "--repair"]), 2);
    assert!(err.contains("manifest"), "{err}");
}

#[test]
fn an_altered_record_is_refused_and_sync_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let records = current_dir(&client).join("query/records.bin");
    let (offset, length, _) = record_span(&records, "jdoe", "date-fmt");
    // A byte of the record's JSON.
    flip(&records, offset + length / 2);

    let err = assert_fails(&client.run(&["info", "jdoe/date-fmt"]), 2);
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(err.contains("sync --repair"), "{err}");
    let err = assert_fails(
        &client.run(&["resolve", "mlld://jdoe/date-fmt", "--yes"]),
        2,
    );
    assert!(err.contains("is damaged"), "{err}");
    assert!(
        !client.project.join(".mlld/mlld.lock.json").exists(),
        "nothing was locked from a damaged record"
    );
    // Other names are read as before: only what was damaged is refused.
    assert_ok(&client.run(&["resolve", "mlld://adamavenir/json-utils", "--yes"]));

    let out = assert_ok(&client.run(&["sync", "--repair"]));
    assert!(out.contains("repaired"), "{out}");
    let info = json(&client.run(&["info", "jdoe/date-fmt", "--json"]));
    assert_eq!(info["name"], "jdoe/date-fmt");
}

#[test]
fn an_altered_directory_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let records = current_dir(&client).join("query/records.bin");
    let (_, _, entry) = record_span(&records, "jdoe", "date-fmt");
    // The first byte of the name's key: the directory would no longer list
    // it, and the name would read as absent if the directory were believed.
    flip(&records, entry);
    let err = assert_fails(&client.run(&["info", "jdoe/date-fmt"]), 2);
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("sync --repair"), "{err}");
    assert!(!err.contains("not in the registry snapshot"), "{err}");
    assert_ok(&client.run(&["sync", "--repair"]));
    assert_ok(&client.run(&["info", "jdoe/date-fmt"]));
}

#[test]
fn a_damaged_head_or_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let snap = current_dir(&client);
    let head = snap.join("query/head2.json");
    let text = std::fs::read_to_string(&head).unwrap();
    std::fs::write(&head, text.replace("\"serial\":1", "\"serial\":9")).unwrap();
    let err = assert_fails(&client.run(&["info", "jdoe/date-fmt"]), 2);
    assert!(err.contains("is damaged"), "{err}");
    assert_ok(&client.run(&["sync", "--repair"]));

    // The module's blob changed in the pack: locking it is refused.
    let info = json(&client.run(&["info", "jdoe/date-fmt", "--json"]));
    let integrity = info["current"]["integrity"].as_str().unwrap();
    let hex = integrity.strip_prefix("sha256:").unwrap();
    let member = format!(" blobs/sha256/{}/{}", &hex[..2], &hex[2..]);
    let idx = std::fs::read_to_string(snap.join("pack.idx")).unwrap();
    let line: Vec<&str> = idx
        .lines()
        .find(|l| l.ends_with(&member))
        .unwrap()
        .split(' ')
        .collect();
    let (offset, size): (usize, usize) = (line[0].parse().unwrap(), line[1].parse().unwrap());
    let mut pack = std::fs::read(snap.join("pack")).unwrap();
    pack[offset + size / 2] ^= 1;
    std::fs::write(snap.join("pack"), pack).unwrap();
    let err = assert_fails(
        &client.run(&["resolve", "mlld://jdoe/date-fmt", "--yes"]),
        2,
    );
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());
    assert!(!client.project.join(".mlld/cache").exists());
}

#[test]
fn a_key_no_longer_trusted_is_not_trusted_through_the_query_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (_, other) = mlld_indexer::signing::generate_keypair(&keys, "other", None).unwrap();
    let out = client.run(&[
        "info",
        "adamavenir/json-utils",
        "--trusted-key",
        other.to_str().unwrap(),
    ]);
    let err = assert_fails(&out, 2);
    assert!(
        err.contains("no longer trusted") || err.contains("does not verify"),
        "{err}"
    );
}

#[test]
fn a_store_synced_before_the_query_store_still_works_and_the_next_sync_adds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let query = current_dir(&client).join("query");
    std::fs::remove_dir_all(&query).unwrap();
    let info = json(&client.run(&["info", "jdoe/date-fmt", "--json"]));
    assert_eq!(info["name"], "jdoe/date-fmt");
    assert!(!query.exists(), "read-only commands do not write the store");
    let out = assert_ok(&client.run(&["sync", "--offline"]));
    assert!(out.contains("up to date"), "{out}");
    assert!(query.join("head2.json").is_file());
    assert_ok(&client.run(&["resolve", "mlld://adamavenir/json-utils", "--yes"]));
}

#[test]
fn a_query_store_of_an_older_format_is_read_through_the_manifest_until_sync_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let query = current_dir(&client).join("query");
    // What format 1 left: `head.json` beside `shards.bin`, which this
    // client does not read (garbage here, to prove it).
    std::fs::remove_file(query.join("head2.json")).unwrap();
    std::fs::remove_file(query.join("records.bin")).unwrap();
    std::fs::write(query.join("head.json"), b"0\n{\"format\":1}").unwrap();
    std::fs::write(query.join("shards.bin"), b"MLLDSHD1 garbage").unwrap();
    let info = json(&client.run(&["info", "jdoe/date-fmt", "--json"]));
    assert_eq!(info["name"], "jdoe/date-fmt");
    assert_ok(&client.run(&["resolve", "mlld://adamavenir/json-utils", "--yes"]));
    assert!(
        !query.join("head2.json").exists(),
        "read-only commands do not write the store"
    );
    let out = assert_ok(&client.run(&["sync", "--offline"]));
    assert!(out.contains("up to date"), "{out}");
    assert!(query.join("head2.json").is_file());
    assert!(query.join("records.bin").is_file());
    assert!(
        !query.join("shards.bin").exists(),
        "the old format is swapped out whole"
    );
    assert_ok(&client.run(&["info", "jdoe/date-fmt"]));
}

#[test]
fn a_fifo_in_the_store_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let snap = current_dir(&client);
    let cases: [(PathBuf, &[&str]); 4] = [
        (snap.join("query/records.bin"), &["info", "jdoe/date-fmt"]),
        (
            snap.join("query/blobs.idx"),
            &["resolve", "mlld://jdoe/date-fmt", "--yes"],
        ),
        (
            snap.join("pack"),
            &["resolve", "mlld://jdoe/date-fmt", "--yes"],
        ),
        (client.home.join("state.json"), &["info", "jdoe/date-fmt"]),
    ];
    for (path, args) in cases {
        let saved = std::fs::read(&path).unwrap();
        mkfifo(&path);
        let out = run_bounded(client.command(args));
        let err = assert_fails(&out, 2);
        // Refused with the way out: a store file says `sync --repair`, the
        // state file that it is not a regular file and to delete it and sync.
        assert!(
            err.contains("sync --repair")
                || (err.contains("not a regular file") && err.contains("delete it and run")),
            "{}: {err}",
            path.display()
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, saved).unwrap();
    }
    // A pack that is gone cannot be repaired from the store: a new sync.
    let pack = snap.join("pack");
    let saved = std::fs::read(&pack).unwrap();
    std::fs::remove_file(&pack).unwrap();
    let err = assert_fails(
        &run_bounded(client.command(&["resolve", "mlld://jdoe/date-fmt", "--yes"])),
        2,
    );
    assert!(
        err.contains("lost its pack; delete that directory and run `mlld-registry sync`"),
        "{err}"
    );
    std::fs::write(&pack, saved).unwrap();
    assert_ok(&client.run(&["resolve", "mlld://jdoe/date-fmt", "--yes"]));
}

#[test]
fn a_store_named_by_a_relative_path_syncs_and_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    // A second store, named relative to where the client runs.
    let rel = "rel-store";
    std::fs::create_dir_all(dir.path().join(rel)).unwrap();
    std::fs::copy(
        client.home.join("config.json"),
        dir.path().join(rel).join("config.json"),
    )
    .unwrap();
    for args in [&["sync", "--offline"][..], &["sync", "--repair"]] {
        let out = (client.command_in(dir.path(), args))
            .env("MLLD_REGISTRY_HOME", rel)
            .output()
            .unwrap();
        assert_ok(&out);
    }
    assert!(dir.path().join(rel).join("state.json").is_file());
}
