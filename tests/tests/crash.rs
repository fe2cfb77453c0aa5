//! A client killed at any moment of an install leaves a valid lock file and
//! a valid cache: every cache entry present is complete and matches the lock.

use std::fs;
use std::path::Path;

use mlld_e2e::{Client, assert_ok, build_examples, build_time, tree};
use mlld_schemas::{CacheMetadata, LockFile, check_lock};

const MODULES: [&str; 12] = [
    "@sarah-k/eval-report",
    "@nora-ml/llm-summarize",
    "@textkit/md-toc",
    "@mlld-lang/github-pr",
    "@mlld-lang/mcp-tools",
    "@devops-dan/k8s-status",
    "@devops-dan/shell-utils",
    "@jdoe/csv-tools",
    "@jdoe/cron-parse",
    "@adamavenir/yaml-front",
    "@adamavenir/env-config",
    "@nora-ml/embed-utils",
];

/// Checks the project: the lock (if any) is valid, and every cache entry is
/// whole and agrees with it. Returns how many entries are cached.
fn check_valid(project: &Path) -> usize {
    let lock_path = project.join(".mlld/mlld.lock.json");
    let lock: Option<LockFile> = fs::read_to_string(&lock_path).ok().map(|text| {
        let checked = check_lock("mlld.lock.json", &text);
        assert!(!checked.has_errors(), "invalid lock after a kill:\n{text}");
        checked.value.unwrap()
    });
    let cache = project.join(".mlld/cache/gist");
    let mut entries = 0;
    let files = tree(&cache);
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        if parts.len() > 2 && parts[2].ends_with(".partial") {
            continue; // staging of a killed run: not an entry
        }
        assert_eq!(parts.len(), 4, "unexpected cache file {f}");
        let dir = cache.join(parts[0]).join(parts[1]).join(parts[2]);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["content.mld", "metadata.json"],
            "partial entry {}",
            dir.display()
        );
        if parts[3] != "content.mld" {
            continue;
        }
        entries += 1;
        let content = fs::read(dir.join("content.mld")).unwrap();
        let meta: CacheMetadata =
            serde_json::from_slice(&fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(mlld_schemas::integrity_of(&content), meta.integrity);
        assert_eq!(meta.gist_revision, parts[2]);
        assert_eq!(meta.size, content.len() as u64);
        let lock = lock.as_ref().expect("a cache entry without a lock file");
        let entry = &lock.imports[&meta.import_path];
        assert_eq!(entry.integrity, meta.integrity);
        assert_eq!(entry.gist_revision, meta.gist_revision);
    }
    entries
}

#[test]
fn killing_install_at_any_moment_leaves_lock_and_cache_valid() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), Some(1), build_time());
    let client = Client::new(dir.path());
    let key = site.public_key();
    let k = key.to_str().unwrap();
    assert_ok(&client.run(&[
        "sync",
        "--from",
        site.dir.to_str().unwrap(),
        "--trusted-key",
        k,
    ]));
    let source: String = MODULES
        .iter()
        .map(|m| format!("/import {{ @x }} from {m}\n"))
        .collect();
    fs::write(client.project.join("main.mld"), source).unwrap();

    // How long one whole install takes here, to spread the kills over it:
    // timed on a second run, like the rounds below (the first also fills
    // mlld's content cache in the home directory, which later runs reuse).
    assert_ok(&client.run(&["install", "--yes", "--trusted-key", k]));
    fs::remove_dir_all(client.project.join(".mlld/cache")).unwrap();
    fs::remove_file(client.project.join(".mlld/mlld.lock.json")).unwrap();
    let started = std::time::Instant::now();
    assert_ok(&client.run(&["install", "--yes", "--trusted-key", k]));
    let full = started.elapsed();
    let expected = check_valid(&client.project);
    assert_eq!(expected, 24, "the modules and their dependencies: all 24");

    let rounds = 40u32;
    let mut interrupted = 0;
    for round in 0..rounds {
        let _ = fs::remove_dir_all(client.project.join(".mlld/cache"));
        if round % 2 == 0 {
            // Also from scratch, so kills land while the lock file is being written.
            let _ = fs::remove_file(client.project.join(".mlld/mlld.lock.json"));
        }
        let mut child = client
            .command(&["install", "--yes", "--trusted-key", k])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(f64::from(round) / f64::from(rounds)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            interrupted += 1;
        }
        check_valid(&client.project);
        // mlld's lock is replaced atomically: always whole JSON.
        let mlld_lock = fs::read(client.project.join("mlld-lock.json")).unwrap();
        serde_json::from_slice::<serde_json::Value>(&mlld_lock).unwrap();
    }
    assert!(
        interrupted >= rounds / 2,
        "only {interrupted} runs were interrupted"
    );

    // The next install finishes the job and verify agrees.
    assert_ok(&client.run(&["install", "--yes", "--trusted-key", k]));
    assert_eq!(check_valid(&client.project), expected);
    assert_ok(&client.run(&["verify"]));
    let leftovers: Vec<String> = tree(&client.project.join(".mlld"))
        .into_iter()
        .filter(|f| f.contains(".partial") || f.contains(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging of killed runs remains: {leftovers:?}"
    );
}
