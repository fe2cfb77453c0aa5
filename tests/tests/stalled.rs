//! Stalled and trickling servers end in a clear error within the configured
//! timeouts, and a sync stuck downloading does not block another sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlld_e2e::http::{Fault, Request, static_files};
use mlld_e2e::served::*;
use mlld_e2e::{Client, assert_fails, assert_ok};

/// Serves `site`, with `fault` on the file whose path ends with `suffix`;
/// the flag turns true once that file was asked for.
fn faulty(site: &std::path::Path, suffix: &'static str, fault: Fault) -> (Served, Arc<AtomicBool>) {
    let files = static_files(site.to_path_buf());
    let asked = Arc::new(AtomicBool::new(false));
    let seen = asked.clone();
    let served = serve(Arc::new(move |r: &Request| {
        let response = files(r);
        if r.path().ends_with(suffix) {
            seen.store(true, Ordering::SeqCst);
            return response.fault(fault.clone());
        }
        response
    }));
    (served, asked)
}

fn timed_sync(
    client: &Client,
    url: &str,
    key: &std::path::Path,
    extra: &[&str],
) -> (String, Duration) {
    mlld_e2e::client_bin(); // built before the clock starts
    let started = Instant::now();
    let args = [
        &[
            "sync",
            "--full",
            "--from",
            url,
            "--trusted-key",
            key.to_str().unwrap(),
        ][..],
        extra,
    ]
    .concat();
    let out = run_loopback(client, &args);
    (assert_fails(&out, 2), started.elapsed())
}

#[test]
fn a_stalled_download_ends_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let (served, _) = faulty(
        &site.dir,
        ".tar.zst",
        Fault::Trickle(Duration::from_secs(6)),
    );
    let client = Client::new(dir.path());
    let before = written(&client);
    // The idle timeout from the environment; the default would be 20 s.
    let mut cmd = client.command(&[
        "sync",
        "--full",
        "--from",
        &served.server.url(),
        "--trusted-key",
        site.public_key().to_str().unwrap(),
    ]);
    cmd.env("NO_PROXY", "127.0.0.1")
        .env("MLLD_REGISTRY_IDLE_TIMEOUT", "2");
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let stderr = assert_fails(&out, 2);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr.contains("sent nothing for 2 s"), "{stderr}");
    assert!(stderr.contains("--idle-timeout"), "{stderr}");
    assert_eq!(written(&client), before, "nothing was stored");
}

#[test]
fn a_trickling_download_ends_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let (served, _) = faulty(
        &site.dir,
        ".tar.zst",
        Fault::Trickle(Duration::from_millis(300)),
    );
    let client = Client::new(dir.path());
    // Never idle for 2 s, but far slower than 1 GB/s: the deadline is 2 s.
    let (stderr, took) = timed_sync(
        &client,
        &served.server.url(),
        &site.public_key(),
        &["--idle-timeout", "2", "--min-rate", "1000000000"],
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(stderr.contains("deadline"), "{stderr}");
    assert!(stderr.contains("--min-rate"), "{stderr}");
}

#[test]
fn a_site_that_never_answers_ends_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let (served, _) = faulty(
        &site.dir,
        "latest.json",
        Fault::Delay(Duration::from_secs(60)),
    );
    let client = Client::new(dir.path());
    std::fs::create_dir_all(&client.home).unwrap();
    std::fs::write(client.home.join("config.json"), r#"{"idleTimeout": 2}"#).unwrap();
    let (stderr, took) = timed_sync(&client, &served.server.url(), &site.public_key(), &[]);
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(stderr.contains("did not answer in time"), "{stderr}");
}

#[test]
fn a_stalled_sync_does_not_block_a_sync_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let (served, asked) = faulty(
        &site.dir,
        ".tar.zst",
        Fault::Trickle(Duration::from_secs(10)),
    );
    let client = Client::new(dir.path());
    let key = site.public_key();
    mlld_e2e::client_bin(); // built before the clock starts
    let mut stalled = client
        .command(&[
            "sync",
            "--full",
            "--from",
            &served.server.url(),
            "--trusted-key",
            key.to_str().unwrap(),
            "--idle-timeout",
            "60",
        ])
        .env("NO_PROXY", "127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while !asked.load(Ordering::SeqCst) {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the stalled sync never started downloading"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let out = client.run(&[
        "sync",
        "--from",
        site.dir.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
        "--offline",
    ]);
    assert_ok(&out);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "blocked for {:?}",
        started.elapsed()
    );
    assert!(
        stalled.try_wait().unwrap().is_none(),
        "the first sync is still downloading"
    );
    stalled.kill().unwrap();
    stalled.wait().unwrap();
    assert_eq!(current_serial(&client), Some(1));
}

#[test]
fn the_indexer_fails_clearly_on_a_stalled_previous_site() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_at(dir.path(), "site", 1);
    let (served, _) = faulty(
        &site.dir,
        ".tar.zst",
        Fault::Trickle(Duration::from_secs(6)),
    );
    let out = dir.path().join("out");
    let mut config = mlld_indexer::BuildConfig::new(
        mlld_e2e::examples().join("registry"),
        out.clone(),
        mlld_e2e::demo_key(),
        mlld_e2e::build_time(),
    );
    config.previous = mlld_indexer::PreviousSite::At(served.server.url());
    config.previous_idle_timeout = Duration::from_secs(2);
    let gists = mlld_indexer::RecordedGists {
        dir: mlld_e2e::examples().join("gists"),
    };
    let started = Instant::now();
    let err = format!("{:#}", mlld_indexer::build(&config, &gists).unwrap_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("stalled"), "{err}");
    assert!(!out.join("latest.json").exists(), "nothing was published");
}
