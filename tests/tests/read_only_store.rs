//! Every read-only command works on a read-only store: nothing takes a
//! write lock or writes there. The store is made read-only with a
//! read-only bind mount in a private mount namespace (`unshare -rm`), since
//! tests often run as root, for whom permission bits do not stop writes.

use std::process::Command;

use mlld_e2e::project::synced;
use mlld_e2e::{Client, assert_ok, tree};

/// `client`'s command for `args`, run with the store mounted read-only;
/// `None` when this machine cannot make a mount namespace.
fn read_only_store(client: &Client, args: &[&str]) -> Option<Command> {
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "mount --bind -o ro / / 2>/dev/null; mount -o remount,bind,ro / 2>/dev/null; true",
        ])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    let inner = client.command(args);
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c"])
        .arg(r#"home="$1"; shift; mount --bind -o ro "$home" "$home" && exec "$@""#)
        .arg("sh")
        .arg(&client.home)
        .arg(inner.get_program())
        .args(inner.get_args());
    cmd.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    Some(cmd)
}

#[test]
fn read_only_commands_work_on_a_read_only_store() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@adamavenir/json-utils", "--yes"]));
    let before = tree(&client.home);
    let Some(mut check) = read_only_store(&client, &["verify"]) else {
        eprintln!(
            "SKIPPED: no mount namespace here (unshare -rm); the read-only store test did not run"
        );
        return;
    };
    assert_ok(&check.output().unwrap());
    let snapshot = site.snapshot();
    let snapshot = snapshot.to_str().unwrap();
    for args in [
        &["search", "json"][..],
        &["search", "json", "--snapshot", snapshot],
        &["info", "adamavenir/json-utils"],
        &["info", "adamavenir/json-utils", "--snapshot", snapshot],
        &["ls"],
        &["audit"],
        &["verify"],
        &["resolve", "--help"],
        &["stats"],
    ] {
        let out = read_only_store(&client, args).unwrap().output().unwrap();
        assert_ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("Read-only"), "{args:?}: {stderr}");
    }
    assert_eq!(tree(&client.home), before, "the store changed");
}

#[test]
fn a_write_to_the_read_only_store_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    fs_forget(&client);
    let Some(mut sync) = read_only_store(
        &client,
        &[
            "sync",
            "--offline",
            "--from",
            site.snapshot().to_str().unwrap(),
        ],
    ) else {
        eprintln!("SKIPPED: no mount namespace here (unshare -rm)");
        return;
    };
    let out = sync.output().unwrap();
    let stderr = mlld_e2e::assert_fails(&out, 2);
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}

/// Forgets the synced snapshot, so a sync must write the store.
fn fs_forget(client: &Client) {
    std::fs::remove_dir_all(client.home.join("snapshots")).unwrap();
    std::fs::write(client.home.join("state.json"), "{}").unwrap();
}
