//! `config` and `doctor` through the real binary, and `cargo xtask man`.

use std::path::PathBuf;

use mlld_e2e::project::{json, synced, write};
use mlld_e2e::{Client, assert_fails, assert_ok};

#[test]
fn config_says_where_files_are_and_where_settings_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    let report = json(&client.run(&["config", "--json"]));
    let file = |name: &str| {
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
            .clone()
    };
    assert_eq!(
        file("user config")["path"],
        client.home.join("config.json").to_str().unwrap()
    );
    assert_eq!(file("user config")["exists"], true);
    assert_eq!(file("store")["path"], client.home.to_str().unwrap());
    assert_eq!(file("project config")["exists"], false);
    let setting = |report: &serde_json::Value, name: &str| {
        report["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let registry = setting(&report, "registry");
    assert_eq!(registry["value"], site.dir.to_str().unwrap());
    assert!(
        registry["source"]
            .as_str()
            .unwrap()
            .starts_with("config file ")
    );
    assert_eq!(setting(&report, "idleTimeout")["source"], "default");

    let mut cmd = client.command(&["config", "--json", "--trusted-key", "/k.pub"]);
    cmd.env("MLLD_REGISTRY_URL", "https://example.org/");
    let report = json(&cmd.output().unwrap());
    assert_eq!(
        setting(&report, "registry")["source"],
        "environment MLLD_REGISTRY_URL"
    );
    assert_eq!(
        setting(&report, "trustedKeys")["source"],
        "flag --trusted-key"
    );

    // A broken config file is reported, not fatal.
    write(&client.home, "config.json", "{\"registy\": 1}");
    let text = assert_ok(&client.run(&["config"]));
    assert!(
        text.contains("user config") && text.contains("error:"),
        "{text}"
    );
    assert!(text.contains("config.json:1:"), "{text}");
}

#[test]
fn the_missing_key_error_names_a_config_command_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(dir.path());
    let out = client.run(&["audit", "--snapshot", "/nonexistent.tar.zst"]);
    let stderr = assert_fails(&out, 2);
    assert!(
        stderr.contains("`mlld-registry config` shows where"),
        "{stderr}"
    );
    let text = assert_ok(&client.run(&["config"]));
    assert!(text.contains("user config"), "{text}");
}

#[test]
fn doctor_reports_each_check_and_fails_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@textkit/text-wrap", "--yes"]));
    let text = assert_ok(&client.run(&["doctor"]));
    for check in [
        "trusted keys",
        "store",
        "snapshot",
        "project cache",
        "user config",
        "mlld lock file",
        "mlld cache index",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "{check}: {text}"
        );
    }

    // Damage: a cached module edited, mlld's lock file not JSON.
    let cache = client.project.join(".mlld/cache");
    let content = walk(&cache)
        .into_iter()
        .find(|p| p.ends_with("content.mld"))
        .unwrap();
    std::fs::write(&content, "changed").unwrap();
    write(&client.project, "mlld-lock.json", "{ not json");
    let out = client.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = mlld_e2e::project::envelope_data(&out.stdout);
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("project cache"), "error");
    assert_eq!(status("mlld lock file"), "error");
    assert_eq!(status("trusted keys"), "ok");
    assert_eq!(report["ok"], false);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn xtask_man_and_index_write_under_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let xtask = mlld_e2e::xtask_bin();
    let out = std::process::Command::new(&xtask)
        .arg("man")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_ok(&out);
    let man = dir.path().join("target/man");
    for page in [
        "mlld-registry.1",
        "mlld-registry-audit.1",
        "mlld-registry-doctor.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    let audit = std::fs::read_to_string(man.join("mlld-registry-audit.1")).unwrap();
    assert!(audit.contains("severity"), "{audit}");

    // The example site lands here too, not in the xtask's source tree.
    let out = std::process::Command::new(&xtask)
        .arg("index")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(dir.path().join("target/site/latest.json").is_file());
}
