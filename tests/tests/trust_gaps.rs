//! Rollback and trust gaps beyond `sync`'s own: a `--snapshot FILE` older
//! than the store's floor, a floor that must hold across a key rotation
//! (one floor per registry, not per key), and `search --snapshot` noticing
//! that the trusted keys changed.

use std::fs;
use std::path::Path;

use mlld_e2e::project::*;
use mlld_e2e::served::{current_serial, written};
use mlld_e2e::{
    Client, JSON_UTILS_NEW, JSON_UTILS_OLD, assert_fails, assert_ok, build_examples, build_from,
    build_time, build_with, demo_key, examples, rewound_gists,
};
use mlld_indexer::SigningKey;

fn trust(client: &Client, keys: &[&Path]) {
    fs::create_dir_all(&client.home).unwrap();
    fs::write(
        client.home.join("config.json"),
        serde_json::to_vec(&serde_json::json!({ "trustedKeys": keys })).unwrap(),
    )
    .unwrap();
}

#[test]
fn an_older_snapshot_file_is_refused_unless_allowed_older() {
    let dir = tempfile::tempdir().unwrap();
    let old = build_from(
        &dir.path().join("old"),
        Some(1),
        build_time(),
        demo_key(),
        &examples().join("registry"),
        &rewound_gists(dir.path()),
    );
    build_examples(&dir.path().join("site"), Some(2), build_time());
    let (_, client) = synced(dir.path());
    let old_file = old.snapshot();
    let before = written(&client);

    // mlld:// names the Phase-1 module (a versioned module shares the name).
    let args = [
        "resolve",
        "mlld://adamavenir/json-utils",
        "--yes",
        "--snapshot",
    ];
    let out = client.run(&[&args[..], &[old_file.to_str().unwrap()]].concat());
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains("rollback refused"), "{stderr}");
    assert!(stderr.contains("--allow-older"), "{stderr}");
    assert_eq!(written(&client), before, "nothing is stored or locked");
    // `search` and `info` on that file are refused alike.
    let out = client.run(&[
        "info",
        "mlld://adamavenir/json-utils",
        "--snapshot",
        old_file.to_str().unwrap(),
    ]);
    assert!(assert_fails(&out, 2).contains("--allow-older"));

    // Knowingly: the old revision, with a warning that says what it risks.
    let out = client.run(&[&args[..], &[old_file.to_str().unwrap(), "--allow-older"]].concat());
    let stdout = assert_ok(&out);
    assert!(stdout.contains(&JSON_UTILS_OLD[..12]), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("may lack fixes and advisories"));
    // Without the file, the synced snapshot still decides.
    let out = client.run(&["info", "mlld://adamavenir/json-utils", "--json"]);
    assert_eq!(json(&out)["current"]["revision"], JSON_UTILS_NEW);
}

#[test]
fn the_floor_is_per_registry_so_a_rotated_key_cannot_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let (new_key, new_pub) = mlld_indexer::signing::generate_keypair(&keys, "new", None).unwrap();
    let registry = examples().join("registry");
    let by_old = build_examples(&dir.path().join("by-old"), Some(5), build_time());
    let by_new = build_with(
        &dir.path().join("by-new"),
        Some(3),
        build_time(),
        SigningKey::from_file(&new_key, None).unwrap(),
        &registry,
    );
    let client = Client::new(dir.path());
    // During a rotation the client trusts both keys.
    trust(&client, &[&by_old.public_key(), &new_pub]);
    assert_ok(&client.run(&["sync", "--from", by_old.dir.to_str().unwrap()]));
    let out = client.run(&["sync", "--from", by_new.dir.to_str().unwrap()]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains("rollback refused"), "{stderr}");
    assert_eq!(current_serial(&client), Some(5));
    let out = client.run(&["sync", "--from", by_new.snapshot().to_str().unwrap()]);
    assert!(assert_fails(&out, 2).contains("rollback refused"));
    // The new key continuing the sequence is accepted.
    let next = build_with(
        &dir.path().join("next"),
        Some(6),
        build_time(),
        SigningKey::from_file(&new_key, None).unwrap(),
        &registry,
    );
    assert_ok(&client.run(&["sync", "--from", next.dir.to_str().unwrap()]));
    assert_eq!(current_serial(&client), Some(6));
}

#[test]
fn search_of_a_snapshot_file_verifies_again_when_the_trusted_keys_change() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    trust(&client, &[&site.public_key()]);
    let file = site.snapshot();
    // The store remembers a file only once it has been still for two seconds.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let search = ["search", "json", "--snapshot", file.to_str().unwrap()];
    assert_ok(&client.run(&search));
    assert_ok(&client.run(&search));
    assert!(
        client
            .home
            .join("snapshot-files")
            .read_dir()
            .unwrap()
            .next()
            .is_some()
    );

    // The config now trusts only another key: the remembered file no longer counts.
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let (_, other) = mlld_indexer::signing::generate_keypair(&keys, "other", None).unwrap();
    trust(&client, &[&other]);
    let stderr = assert_fails(&client.run(&search), 2);
    assert!(stderr.contains("does not verify"), "{stderr}");
}
