//! Input files planted by someone else: a FIFO `latest.json` or
//! `registry.json` must not hang the client or the build, and a symlinked
//! one must not be read from outside its site or registry. And errors about
//! a file name their position: a lock file that is not UTF-8, an
//! `audit.ignore` entry without a reason.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use mlld_e2e::project::{synced, write};
use mlld_e2e::{
    Client, assert_fails, build_examples, build_time, copy_dir, demo_key, examples, mkfifo,
    run_bounded,
};

fn sync_from(client: &Client, site: &Path, key: &Path) -> std::process::Output {
    run_bounded(client.command(&[
        "sync",
        "--offline",
        "--from",
        site.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ]))
}

#[test]
fn a_fifo_latest_json_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    for name in ["latest.json", "latest.json.minisig"] {
        let copy = dir.path().join(format!("copy-{name}"));
        copy_dir(&site.dir, &copy);
        mkfifo(&copy.join(name));
        let stderr = assert_fails(&sync_from(&client, &copy, &site.public_key()), 2);
        assert!(stderr.contains("not a regular file (a FIFO)"), "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn a_latest_json_linked_out_of_the_site_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    let copy = dir.path().join("copy");
    copy_dir(&site.dir, &copy);
    let outside = dir.path().join("elsewhere.json");
    fs::rename(copy.join("latest.json"), &outside).unwrap();
    symlink(&outside, copy.join("latest.json")).unwrap();
    let stderr = assert_fails(&sync_from(&client, &copy, &site.public_key()), 2);
    assert!(stderr.contains("leading out of"), "{stderr}");
    // A link that stays inside the site is fine.
    fs::remove_file(copy.join("latest.json")).unwrap();
    fs::rename(&outside, copy.join("real-latest.json")).unwrap();
    symlink("real-latest.json", copy.join("latest.json")).unwrap();
    mlld_e2e::assert_ok(&sync_from(&client, &copy, &site.public_key()));
}

/// Builds `registry` in a thread; fails the test instead of hanging.
fn build_bounded(registry: &Path, out: &Path) -> mlld_indexer::BuildReport {
    let (tx, rx) = std::sync::mpsc::channel();
    let (registry, out) = (registry.to_path_buf(), out.to_path_buf());
    std::thread::spawn(move || {
        let mut config = mlld_indexer::BuildConfig::new(registry, out, demo_key(), build_time());
        config.serial = Some(1);
        let source = mlld_indexer::RecordedGists {
            dir: examples().join("gists"),
        };
        let _ = tx.send(mlld_indexer::build(&config, &source));
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the build hung")
        .expect("the build succeeds despite one bad user file")
}

#[test]
fn a_fifo_registry_json_fails_only_its_user_and_never_hangs_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    copy_dir(&examples().join("registry"), &registry);
    mkfifo(&registry.join("jdoe/registry.json"));
    let report = build_bounded(&registry, &dir.path().join("site"));
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.file == "jdoe/registry.json")
        .expect("a diagnostic for the FIFO");
    assert!(d.message.contains("FIFO"), "{d}");
    assert!(report.modules_accepted > 0);
}

#[test]
fn a_registry_json_linked_out_of_the_registry_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    copy_dir(&examples().join("registry"), &registry);
    let secret = dir.path().join("secret.json");
    let text = fs::read_to_string(registry.join("jdoe/registry.json"))
        .unwrap()
        .replacen(
            "\"description\": \"",
            "\"description\": \"TOP-SECRET-VALUE ",
            1,
        );
    fs::write(&secret, text).unwrap();
    fs::remove_file(registry.join("jdoe/registry.json")).unwrap();
    symlink(&secret, registry.join("jdoe/registry.json")).unwrap();
    let site = dir.path().join("site");
    let report = build_bounded(&registry, &site);
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.file == "jdoe/registry.json")
        .expect("a diagnostic for the link");
    assert!(d.message.contains("leading out of"), "{d}");
    let shown = serde_json::to_string(&report).unwrap();
    assert!(!shown.contains("TOP-SECRET-VALUE"), "echoed: {shown}");
    let manifest = mlld_e2e::verify_site(&site);
    assert!(manifest.modules.iter().all(|m| m.user != "jdoe"));
}

#[test]
fn a_lock_file_that_is_not_utf8_names_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    fs::create_dir_all(client.project.join(".mlld")).unwrap();
    fs::write(
        client.project.join(".mlld/mlld.lock.json"),
        b"{\n  \"version\": \"1.0\",\n  \"imports\": {\"\xc3\x28\": {}}\n}\n",
    )
    .unwrap();
    for args in [&["ls"][..], &["audit"], &["verify"], &["install", "--yes"]] {
        let stderr = assert_fails(&client.run(args), 2);
        assert!(
            stderr.contains("mlld.lock.json:3:16:"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("not UTF-8"), "{args:?}: {stderr}");
    }
}

#[test]
fn an_ignored_advisory_without_a_reason_names_its_entry_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    mlld_e2e::assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    let config = "{\n  \"audit\": {\n    \"ignore\": [\n      { \"advisory\": \"sarah-k/2024-001\", \"reason\": \"fine\" },\n      { \"advisory\": \"sarah-k/2024-002\" }\n    ]\n  }\n}\n";
    write(&client.project, ".mlld/config.json", config);
    let stderr = assert_fails(&client.run(&["audit"]), 2);
    assert!(
        stderr.contains("config.json:5:7: $.audit.ignore[1].reason"),
        "{stderr}"
    );
    // An empty reason points at the reason itself.
    let config = config.replace(
        "\"sarah-k/2024-002\" }",
        "\"sarah-k/2024-002\", \"reason\": \" \" }",
    );
    write(&client.project, ".mlld/config.json", &config);
    let stderr = assert_fails(&client.run(&["audit"]), 2);
    assert!(
        stderr.contains("config.json:5:51: $.audit.ignore[1].reason"),
        "{stderr}"
    );
}
