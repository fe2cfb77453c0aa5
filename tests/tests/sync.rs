//! `sync` over a real loopback HTTP server (and from a directory or file):
//! configuration, what becomes current, and when.

use std::fs;
use std::sync::atomic::Ordering;

use mlld_e2e::served::*;
use mlld_e2e::{Client, assert_fails, assert_ok};
use serde_json::Value;

#[test]
fn sync_over_http_then_every_command_uses_the_current_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let served = serve_dir(&site.dir);
    let client = Client::new(dir.path());
    let key = site.public_key();

    let report: Value = mlld_e2e::project::envelope_data(
        assert_ok(&sync(&client, &served.server.url(), &key)).as_bytes(),
    );
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
    let again: Value = mlld_e2e::project::envelope_data(
        assert_ok(&sync(&client, &served.server.url(), &key)).as_bytes(),
    );
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
    let stderr = assert_fails(&run_loopback(&client, &["sync"]), 2);
    assert!(
        stderr.contains("--from") && stderr.contains("MLLD_REGISTRY_URL"),
        "{stderr}"
    );
    let stderr = assert_fails(
        &run_loopback(&client, &["sync", "--from", &served.server.url()]),
        2,
    );
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
    assert_ok(&run_loopback(&other, &["sync"]));
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
    let out = run_loopback(
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
    let out = run_loopback(
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
        &run_loopback(
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
    let report: Value = mlld_e2e::project::envelope_data(
        assert_ok(&sync(&client, &served.server.url(), &key)).as_bytes(),
    );
    assert_eq!(report["serial"], 2);
    assert_eq!(report["previousSerial"], 1);
    assert_eq!(current_serial(&client), Some(2));
    // The previous snapshot is kept (for readers still on it); the lock still installs.
    assert!(client.home.join("snapshots").join(&first).is_dir());
    assert_ok(&client.run(&["install", "--trusted-key", key.to_str().unwrap()]));
}
