//! The foundation path end to end: examples → signed site → offline
//! resolve and install through the real binary.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use mlld_e2e::{Client, assert_fails, assert_ok, build_examples, build_time, examples, tree};
use serde_json::Value;

/// What GitHub recorded for a gist: (owner, current revision, file name → content).
fn recorded_gist(id: &str) -> (String, String, BTreeMap<String, String>) {
    let v: Value =
        serde_json::from_slice(&fs::read(examples().join(format!("gists/{id}.json"))).unwrap())
            .unwrap();
    let files = v["files"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| {
            (
                f["filename"].as_str().unwrap().to_string(),
                f["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (
        v["owner"]["login"].as_str().unwrap().to_string(),
        v["history"][0]["version"].as_str().unwrap().to_string(),
        files,
    )
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn build_reports_bad_input_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(dir.path(), None, build_time());
    let r = &site.report;
    assert_eq!(r.users, 8);
    assert_eq!(r.users_rejected, ["broken-example"]);
    let broken = r
        .diagnostics
        .iter()
        .find(|d| d.file == "broken-example/registry.json")
        .expect("the malformed file is reported");
    assert_eq!((broken.line, broken.column), (9, 33));
    assert!(broken.to_string().contains("help:"), "{broken}");
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.file == "mlld-lang/registry.json"
                && d.path.to_string() == "$.servers"
                && !d.is_error())
    );
    assert_eq!(r.modules_accepted, 24);
    let rejected: BTreeMap<_, _> = r
        .modules_rejected
        .iter()
        .map(|x| (x.module.as_str(), x.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected["jdoe/quick-helpers"].contains("owned by `mallory`"),
        "{rejected:?}"
    );
    assert!(
        rejected["devops-dan/deploy-notes"].contains("no module file"),
        "{rejected:?}"
    );
    assert_eq!(r.advisories, 5);
    assert!(r.signed_with_demo_key);
    assert_eq!(r.serial, 1);
    // The site has exactly the published files; staging is gone.
    let files = tree(dir.path());
    let (blobs, others): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.starts_with("blobs/"));
    for f in [
        "crawl-state.json.zst",
        "crawl-state.json.zst.minisig",
        "index.html",
        "latest.json",
        "latest.json.minisig",
        "mlld-registry.pub",
    ] {
        assert!(others.iter().any(|o| *o == f), "{f} missing: {others:?}");
    }
    let snapshots: Vec<_> = others
        .iter()
        .filter(|f| f.starts_with("snapshots/"))
        .collect();
    assert_eq!(
        snapshots.len(),
        2,
        "a full and an index-only snapshot: {others:?}"
    );
    assert_eq!(
        snapshots
            .iter()
            .filter(|f| f.ends_with(".index.tar.zst"))
            .count(),
        1
    );
    assert!(
        !others
            .iter()
            .any(|f| f.contains(".staging") || f.contains(".tmp")),
        "{others:?}"
    );
    assert_eq!(blobs.len(), r.blobs, "every blob is published loose");
    for b in blobs {
        let digest = mlld_schemas::snapshot::blob_digest(b).unwrap();
        assert_eq!(sha256(&fs::read(dir.path().join(b)).unwrap()), digest);
    }
    // A second build continues the serial.
    let again = build_examples(dir.path(), None, build_time());
    assert_eq!(again.report.serial, 2);
}

#[test]
fn resolve_and_install_offline_match_the_guide_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let client = Client::new(dir.path());
    let (snapshot, key) = (site.snapshot(), site.public_key());
    let args = [
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ];

    let out = client.run(
        &[
            &["resolve", "mlld://sarah-k/eval-report", "--yes"][..],
            &args,
        ]
        .concat(),
    );
    let stdout = assert_ok(&out);
    assert!(
        stdout.contains("locked mlld://sarah-k/eval-report"),
        "{stdout}"
    );

    // eval-report → llm-judge → prompt-kit → text-wrap, llm-judge → http-retry, llm-cache → json-utils → string-case.
    let lock_text = fs::read_to_string(client.project.join(".mlld/mlld.lock.json")).unwrap();
    let lock: Value = serde_json::from_str(&lock_text).unwrap();
    let imports = lock["imports"].as_object().unwrap();
    let keys: Vec<&str> = imports.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "mlld://adamavenir/json-utils",
            "mlld://devops-dan/http-retry",
            "mlld://mlld-lang/prompt-kit",
            "mlld://sarah-k/eval-report",
            "mlld://sarah-k/llm-cache",
            "mlld://sarah-k/llm-judge",
            "mlld://textkit/string-case",
            "mlld://textkit/text-wrap",
        ]
    );

    // Rebuild the expected lock file from the recorded gists alone, in the guide's exact layout.
    let gist_of = |import: &str| -> (&str, &str) {
        let resolved = imports[import]["resolved"].as_str().unwrap();
        let rest = resolved.strip_prefix("mlld://gist/").unwrap();
        rest.split_once('/').unwrap()
    };
    let mut expected = String::from("{\n  \"version\": \"1.0.0\",\n  \"imports\": {\n");
    for (i, import) in keys.iter().enumerate() {
        let (user, gist) = gist_of(import);
        let (owner, revision, files) = recorded_gist(gist);
        assert_eq!(owner, user);
        let module = import.rsplit('/').next().unwrap();
        let content = files
            .iter()
            .find(|(name, _)| name.starts_with(&format!("{module}.")))
            .map(|(_, c)| c)
            .unwrap();
        let integrity = format!("sha256:{}", sha256(content.as_bytes()));
        let approved = imports[*import]["approvedAt"].as_str().unwrap();
        assert!(mlld_schemas::names::check_timestamp(approved).is_ok());
        expected.push_str(&format!(
            "    \"{import}\": {{\n      \"resolved\": \"mlld://gist/{user}/{gist}\",\n      \"gistRevision\": \"{revision}\",\n      \"integrity\": \"{integrity}\",\n      \"approvedAt\": \"{approved}\"\n    }}{}\n",
            if i + 1 < keys.len() { "," } else { "" }
        ));

        // The cache holds the recorded content byte for byte, with its metadata.
        let dir = client
            .project
            .join(format!(".mlld/cache/gist/{user}/{gist}/{revision}"));
        assert_eq!(
            fs::read_to_string(dir.join("content.mld")).unwrap(),
            *content
        );
        let meta: Value =
            serde_json::from_slice(&fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        let meta_keys: Vec<&str> = meta
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            meta_keys,
            [
                "importPath",
                "gistRevision",
                "integrity",
                "cachedAt",
                "size"
            ]
        );
        assert_eq!(meta["importPath"], *import);
        assert_eq!(meta["gistRevision"], revision);
        assert_eq!(meta["integrity"], integrity);
        assert_eq!(meta["size"], content.len());
    }
    expected.push_str("  }\n}\n");
    assert_eq!(lock_text, expected);

    // Install from the lock into an empty cache gives the same bytes; a second install finds all cached.
    let cache = client.project.join(".mlld/cache");
    let before: Vec<(String, Vec<u8>)> = tree(&cache)
        .into_iter()
        .filter(|f| f.ends_with("content.mld"))
        .map(|f| (f.clone(), fs::read(cache.join(&f)).unwrap()))
        .collect();
    fs::remove_dir_all(&cache).unwrap();
    let report: Value =
        mlld_e2e::project::json(&client.run(&[&["install", "--json"][..], &args].concat()));
    assert_eq!(report["installed"].as_array().unwrap().len(), 8);
    for (f, bytes) in &before {
        assert_eq!(&fs::read(cache.join(f)).unwrap(), bytes);
    }
    let report: Value =
        mlld_e2e::project::json(&client.run(&[&["install", "--json"][..], &args].concat()));
    assert_eq!(report["cached"].as_array().unwrap().len(), 8);
    assert_eq!(
        fs::read_to_string(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        lock_text,
        "install does not rewrite the lock"
    );

    // A damaged cache file is repaired.
    let (first, _) = &before[0];
    fs::write(cache.join(first), "tampered").unwrap();
    let report: Value =
        mlld_e2e::project::json(&client.run(&[&["install", "--json"][..], &args].concat()));
    assert_eq!(report["repaired"].as_array().unwrap().len(), 1);
    assert_eq!(fs::read(cache.join(first)).unwrap(), before[0].1);

    // Nothing went near a network, and nothing was written outside .mlld/,
    // mlld's own mlld-lock.json and the store.
    assert_eq!(client.guard.connections(), 0);
    let project_files = tree(&client.project);
    assert!(
        project_files
            .iter()
            .all(|f| f.starts_with(".mlld/") || f == "mlld-lock.json"),
        "{project_files:?}"
    );
}

#[test]
fn first_import_without_a_tty_asks_for_yes() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let client = Client::new(dir.path());
    let out = client.run(&[
        "resolve",
        "@textkit/slugify",
        "--snapshot",
        site.snapshot().to_str().unwrap(),
        "--trusted-key",
        site.public_key().to_str().unwrap(),
    ]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());
}

#[test]
fn revision_pins_and_missing_modules() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let client = Client::new(dir.path());
    let (snapshot, key) = (site.snapshot(), site.public_key());
    let common = [
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
        "--yes",
    ];
    assert_ok(&client.run(&[&["resolve", "@devops-dan/http-retry@5ac6ee0"][..], &common].concat()));
    let lock: Value =
        serde_json::from_slice(&fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap())
            .unwrap();
    assert_eq!(
        lock["imports"]["mlld://devops-dan/http-retry"]["gistRevision"],
        "5ac6ee0d574b5e6a34ba87338d94133a5ab77567"
    );

    let stderr = assert_fails(
        &client.run(&[&["resolve", "@devops-dan/http-retry@ffff"][..], &common].concat()),
        2,
    );
    assert!(
        stderr.contains("no revision starting with `ffff`"),
        "{stderr}"
    );
    let stderr = assert_fails(
        &client.run(&[&["resolve", "@textkit/slugfy"][..], &common].concat()),
        2,
    );
    assert!(stderr.contains("did you mean textkit/slugify"), "{stderr}");
}

#[test]
fn snapshots_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_time();
    let a = build_examples(&dir.path().join("a"), Some(7), t);
    let b = build_examples(&dir.path().join("b"), Some(7), t);
    assert_eq!(
        fs::read(a.snapshot()).unwrap(),
        fs::read(b.snapshot()).unwrap()
    );
    assert_eq!(a.latest(), b.latest());
    let c = build_examples(&dir.path().join("c"), Some(8), t);
    assert_ne!(
        a.latest().sha256,
        c.latest().sha256,
        "the serial is part of the snapshot"
    );
}

#[test]
fn stock_minisign_verifies_the_signatures() {
    let Ok(out) = std::process::Command::new("minisign").arg("-v").output() else {
        eprintln!("minisign is not installed; skipping (CI installs it)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have minisign installed"
        );
        return;
    };
    assert!(out.status.success() || !out.stdout.is_empty() || !out.stderr.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let unpacked = dir.path().join("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(zstd::Decoder::new(fs::File::open(site.snapshot()).unwrap()).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let verify = |file: &Path, sig: &Path| {
        let out = std::process::Command::new("minisign")
            .args([
                "-V",
                "-m",
                file.to_str().unwrap(),
                "-x",
                sig.to_str().unwrap(),
                "-p",
                site.public_key().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = verify(
        &unpacked.join("manifest.json"),
        &unpacked.join("manifest.json.minisig"),
    );
    assert!(said.contains("serial:1"), "{said}");
    verify(
        &site.dir.join("latest.json"),
        &site.dir.join("latest.json.minisig"),
    );
    // And it refuses a changed manifest.
    let manifest = unpacked.join("manifest.json");
    let mut bytes = fs::read(&manifest).unwrap();
    bytes[10] ^= 1;
    fs::write(&manifest, bytes).unwrap();
    let out = std::process::Command::new("minisign")
        .args([
            "-V",
            "-m",
            manifest.to_str().unwrap(),
            "-x",
            unpacked.join("manifest.json.minisig").to_str().unwrap(),
            "-p",
            site.public_key().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The strongest proof of offline operation: run the client in a network
/// namespace that has no network at all (where the machine allows one).
#[test]
fn resolve_and_install_work_without_any_network() {
    let unshare_works = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unshare_works {
        eprintln!(
            "no unprivileged network namespaces here; the proxy guard in the other tests still applies"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let client = Client::new(dir.path());
    let (snapshot, key) = (site.snapshot(), site.public_key());
    for args in [
        vec!["resolve", "@nora-ml/llm-summarize", "--yes"],
        vec!["install"],
    ] {
        let inner = client.command(
            &[
                &args[..],
                &[
                    "--snapshot",
                    snapshot.to_str().unwrap(),
                    "--trusted-key",
                    key.to_str().unwrap(),
                ],
            ]
            .concat(),
        );
        let mut cmd = std::process::Command::new("unshare");
        cmd.arg("-rn")
            .arg(inner.get_program())
            .args(inner.get_args());
        cmd.env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
        assert_ok(&cmd.output().unwrap());
    }
    assert!(client.project.join(".mlld/cache/gist/nora-ml").is_dir());
}
