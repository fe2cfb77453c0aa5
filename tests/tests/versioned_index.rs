//! Today's registry layout end to end: the examples' `modules/` tree beside
//! the Phase-1 user folders, its pinned files served by a loopback raw host
//! (`--raw-base`), every contentHash verified, versions reused without a
//! request on rebuilds, `check` on either layout, search through the client.

use std::path::{Path, PathBuf};

use mlld_e2e::raw_host::RawHost;
use mlld_e2e::{
    Client, assert_ok, build_time, copy_dir, demo_key, examples, recorded_raw, verify_site,
};
use mlld_indexer::{
    BuildConfig, BuildReport, HttpRawConfig, PreviousSite, RawConfig, RecordedGists,
};
use mlld_schemas::Manifest;

/// A build of `registry` into `out` whose raw files come from `raw`.
fn build(registry: &Path, out: &Path, raw: RawConfig, previous: PreviousSite) -> BuildReport {
    let mut config = BuildConfig::new(
        registry.to_path_buf(),
        out.to_path_buf(),
        demo_key(),
        build_time(),
    );
    config.raw = raw;
    config.previous = previous;
    let gists = RecordedGists {
        dir: examples().join("gists"),
    };
    mlld_indexer::build(&config, &gists).expect("the build succeeds")
}

fn http(host: &RawHost) -> RawConfig {
    RawConfig::Http(HttpRawConfig {
        base: host.url(),
        request_timeout: std::time::Duration::from_secs(5),
        retry_base: std::time::Duration::from_millis(5),
        ..HttpRawConfig::default()
    })
}

fn rejected(report: &BuildReport) -> Vec<(String, String)> {
    report
        .versions_rejected
        .iter()
        .map(|r| (format!("{}@{}", r.module, r.version), r.reason.clone()))
        .collect()
}

fn reason<'a>(rejected: &'a [(String, String)], version: &str) -> &'a str {
    &rejected
        .iter()
        .find(|(v, _)| v == version)
        .unwrap_or_else(|| panic!("{version} is not rejected: {rejected:#?}"))
        .1
}

#[test]
fn both_layouts_land_in_one_snapshot_with_the_right_versions() {
    let dir = tempfile::tempdir().unwrap();
    let host = RawHost::examples();
    let report = build(
        &examples().join("registry"),
        dir.path(),
        http(&host),
        PreviousSite::None,
    );
    assert!(report.layouts.user_folders && report.layouts.versioned);
    // Root files, _index/ and modules/ are not users: the 8 Phase-1 folders stay 8.
    assert_eq!(report.users, 8);
    assert_eq!(report.modules_accepted, 24);
    assert_eq!(
        (report.versions_accepted, report.versioned_modules),
        (10, 5)
    );
    assert_eq!(report.versions_fetched, 10);

    let rejected = rejected(&report);
    assert_eq!(rejected.len(), 4, "{rejected:#?}");
    let missing = reason(&rejected, "@alice-dev/table-fmt@0.3.0");
    assert!(missing.contains("not found (404)"), "{missing}");
    let wrong = reason(&rejected, "@bobcodes/http-kit@1.0.1");
    assert!(
        wrong.contains("contentHash mismatch")
            && wrong.contains("41898d131e64b754d2fcae3260d2335cd43e45393ac3b1eb15b5f77e8b76a47f")
            && wrong.contains("cb7d508b3a817f908b780bf4b9b6ee92b370abf1ace3e18cc5a287992afd1609"),
        "expected and computed hashes: {wrong}"
    );
    let unpinned = reason(&rejected, "@bobcodes/http-kit@1.1.0");
    assert!(
        unpinned.starts_with("modules/bobcodes/http-kit/1.1.0.json:10:12:")
            && unpinned.contains("does not pin a commit"),
        "{unpinned}"
    );
    let url = reason(&rejected, "@bobcodes/http-kit@0.9.0");
    assert!(
        url.contains("0.9.0.json:9:13:") && url.contains("not pinned"),
        "{url}"
    );
    assert_eq!(report.name_overlaps, ["adamavenir/json-utils"]);
    assert!(report.to_string().contains("layout      both"), "{report}");

    let manifest = verify_site(dir.path());
    assert_versioned_records(&manifest);
    // The Phase-1 module of the same name is there, as it always was.
    let gist_module = manifest.find("adamavenir", "json-utils").unwrap();
    assert_eq!(gist_module.current.revision, mlld_e2e::JSON_UTILS_NEW);
    // Nothing from the stale root modules.json.
    assert!(manifest.find_versioned("mallory", "evil").is_none());
}

fn assert_versioned_records(manifest: &Manifest) {
    let names: Vec<String> = manifest.versioned.iter().map(|m| m.full_name()).collect();
    assert_eq!(
        names,
        [
            "@adamavenir/json-utils",
            "@alice-dev/prompt-lib",
            "@alice-dev/table-fmt",
            "@bobcodes/http-kit",
            "@mlld-lang/log-levels"
        ]
    );
    let prompt = manifest.find_versioned("alice-dev", "prompt-lib").unwrap();
    assert_eq!(prompt.version_names(), ["1.3.0-beta.1", "1.2.0", "1.0.0"]);
    assert_eq!(prompt.latest().unwrap().version, "1.2.0");
    assert_eq!(prompt.tags["beta"], "1.3.0-beta.1");
    assert_eq!(prompt.owners, ["alice-dev", "bobcodes"]);
    let v = prompt.version("1.2.0").unwrap();
    assert_eq!(v.entry, "index.mld");
    let paths: Vec<&str> = v.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "index.mld",
            "module.yml",
            "prompts/system.mld",
            "tests/prompt-lib.test.mld"
        ]
    );
    let entry = v.entry_file().unwrap();
    assert_eq!(v.integrity, format!("sha256:{}", entry.sha256));
    assert_eq!(v.size, entry.size);
    // Every file is a blob of the snapshot.
    for f in &v.files {
        let member = &manifest.members[&mlld_schemas::snapshot::blob_path(&f.sha256)];
        assert_eq!(member.size, f.size);
    }
    // `node` is a runtime, not a module; the entry file's import comes with its range.
    assert_eq!(
        v.dependencies,
        [
            "@adamavenir/json-utils@^1.0",
            "@adamavenir/json-utils@^1.0.0"
        ]
    );
    assert_eq!(v.source.kind, "directory");
    assert_eq!(v.source.path, "prompt-lib");
    assert_eq!(v.needs, ["js"]);
    assert_eq!(v.kind.as_deref(), Some("library"));

    let table = manifest.find_versioned("alice-dev", "table-fmt").unwrap();
    assert!(table.tags.is_empty());
    assert_eq!(
        table.latest().unwrap().version,
        "0.2.0",
        "no tags: the highest"
    );
    assert_eq!(table.version("0.2.0").unwrap().published_by, None);

    let http_kit = manifest.find_versioned("bobcodes", "http-kit").unwrap();
    assert_eq!(http_kit.version_names(), ["1.0.0"]);
    assert_eq!(
        http_kit.tags.keys().collect::<Vec<_>>(),
        ["latest"],
        "`next` names a rejected version"
    );
    assert_eq!(
        http_kit.versions[0].dependencies,
        ["@alice-dev/table-fmt@~0.2.0"]
    );

    let json = manifest.find_versioned("adamavenir", "json-utils").unwrap();
    assert_eq!(json.version_names(), ["2.0.0", "1.1.0", "1.0.0"]);
    assert_eq!(json.tags["stable"], "1.1.0");
    let v110 = json.version("1.1.0").unwrap();
    assert_eq!(v110.files.len(), 1);
    assert_eq!(v110.entry, "json-utils.mld");
    assert_eq!(
        v110.content_hash, v110.files[0].sha256,
        "`sha256:` prefix accepted"
    );

    let log = manifest.find_versioned("mlld-lang", "log-levels").unwrap();
    let v = &log.versions[0];
    assert_eq!(v.source.kind, "gist");
    assert_eq!(v.source.url, "53890b469dffde5dc733546262179da0");
    assert_eq!(v.source.commit, "887e87c98d6ad3239ba936e827a70367695ba46b");
    assert_eq!(v.entry, "std-log.mld");
    assert_eq!(v.content_hash, v.files[0].sha256);
    // The same gist as mlld-lang/std-log: the same blob, captured once.
    let std_log = manifest.find("mlld-lang", "std-log").unwrap();
    assert_eq!(v.integrity, std_log.current.integrity);
}

#[test]
fn a_rebuild_with_nothing_new_makes_no_raw_request_and_a_new_version_fetches_only_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, raw, site) = (
        dir.path().join("registry"),
        dir.path().join("raw"),
        dir.path().join("site"),
    );
    copy_dir(&examples().join("registry"), &registry);
    copy_dir(&examples().join("raw"), &raw);
    let host = RawHost::serve(raw.clone());
    build(&registry, &site, http(&host), PreviousSite::Output);
    let first = verify_site(&site);
    let requests = host.count();
    assert!(requests > 0);

    // Nightly, nothing new: every version comes from the previous snapshot,
    // and rejections decided on pinned content are remembered.
    let again = build(&registry, &site, http(&host), PreviousSite::Output);
    assert_eq!(host.count(), requests, "no raw request: {:?}", host.seen());
    assert_eq!((again.versions_fetched, again.versions_reused), (0, 10));
    assert_eq!(rejected(&again).len(), 4);
    assert_eq!(again.raw_requests.as_ref().unwrap().requests, 0);
    let second = verify_site(&site);
    assert_eq!(second.versioned, first.versioned);
    assert_eq!(second.serial, first.serial + 1);

    // A new version: only its file is fetched.
    let commit = "1111111111111111111111111111111111111111";
    let content = ">> json-utils 2.1.0\n/exe @prettyJson(v) = js { return JSON.stringify(v, null, 2); }\n/export { @prettyJson }\n";
    let file = raw.join(format!("adamavenir/mlld-json/{commit}/json-utils.mld"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, content).unwrap();
    let record = serde_json::json!({
        "version": "2.1.0", "needs": ["js"], "license": "CC0", "mlldVersion": ">=2.0.0",
        "source": {"type": "github",
            "url": format!("https://raw.githubusercontent.com/adamavenir/mlld-json/{commit}/json-utils.mld"),
            "contentHash": mlld_e2e::sha256_hex(content.as_bytes())},
        "dependencies": {}, "keywords": ["json"], "publishedAt": "2025-11-01T00:00:00Z", "publishedBy": 1
    });
    std::fs::write(
        registry.join("modules/adamavenir/json-utils/2.1.0.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    let before = host.seen().len();
    let third = build(&registry, &site, http(&host), PreviousSite::Output);
    assert_eq!(
        host.seen()[before..],
        [format!("/adamavenir/mlld-json/{commit}/json-utils.mld")]
    );
    assert_eq!((third.versions_fetched, third.versions_reused), (1, 10));
    let manifest = verify_site(&site);
    let json = manifest.find_versioned("adamavenir", "json-utils").unwrap();
    assert_eq!(json.version_names(), ["2.1.0", "2.0.0", "1.1.0", "1.0.0"]);
    assert_eq!(
        json.latest().unwrap().version,
        "2.0.0",
        "the `latest` tag decides"
    );
}

#[test]
fn server_errors_are_retried_and_what_still_fails_is_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let host = RawHost::examples();
    let path = "/bobcodes/http-kit/5381b237b30580df07b28e8b02365af79b4104e8/http-kit.mld";
    host.fail(path, 503, 2);
    let report = build(
        &examples().join("registry"),
        &dir.path().join("a"),
        http(&host),
        PreviousSite::None,
    );
    assert_eq!(report.versions_accepted, 10, "{:#?}", rejected(&report));
    assert!(report.raw_requests.as_ref().unwrap().retries >= 2);

    // A host that keeps failing rejects only that version, and the next build tries again.
    host.fail(path, 500, 100);
    let out = dir.path().join("b");
    let report = build(
        &examples().join("registry"),
        &out,
        http(&host),
        PreviousSite::None,
    );
    let rejected = rejected(&report);
    assert!(
        reason(&rejected, "@bobcodes/http-kit@1.0.0").contains("HTTP 500"),
        "{rejected:#?}"
    );
    assert_eq!(report.versions_accepted, 9);
    host.fail(path, 500, 0);
    let report = build(
        &examples().join("registry"),
        &out,
        http(&host),
        PreviousSite::Output,
    );
    assert_eq!(
        report.versions_accepted, 10,
        "{:#?}",
        report.versions_rejected
    );
}

#[test]
fn builds_are_reproducible_whichever_way_the_files_come() {
    let dir = tempfile::tempdir().unwrap();
    let host = RawHost::examples();
    let registry = examples().join("registry");
    build(
        &registry,
        &dir.path().join("a"),
        http(&host),
        PreviousSite::None,
    );
    build(
        &registry,
        &dir.path().join("b"),
        recorded_raw(),
        PreviousSite::None,
    );
    let snapshot = |d: &str| -> PathBuf {
        let site = dir.path().join(d);
        let latest: mlld_schemas::Latest =
            serde_json::from_slice(&std::fs::read(site.join("latest.json")).unwrap()).unwrap();
        site.join(latest.snapshot)
    };
    assert_eq!(
        std::fs::read(snapshot("a")).unwrap(),
        std::fs::read(snapshot("b")).unwrap()
    );
}

#[test]
fn check_validates_either_layout_and_takes_no_root_file_for_a_user() {
    use mlld_indexer::check::check;
    let dir = tempfile::tempdir().unwrap();
    let errors = |root: &Path| -> Vec<String> {
        check(root, None)
            .unwrap()
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()
    };

    // A Phase-1-era checkout: user folders plus `_index/advisories.json` and root files.
    let phase1 = dir.path().join("phase1");
    copy_dir(&examples().join("registry"), &phase1);
    std::fs::remove_dir_all(phase1.join("modules")).unwrap();
    let found = errors(&phase1);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("broken-example/registry.json:9:33"));

    // Today's layout alone.
    let versioned = dir.path().join("versioned");
    copy_dir(
        &examples().join("registry/modules"),
        &versioned.join("modules"),
    );
    let found = errors(&versioned);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("modules/bobcodes/http-kit/0.9.0.json:9:13"))
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("modules/bobcodes/http-kit/1.1.0.json:10:12"))
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("modules/bobcodes/http-kit/tags.json:3:11"))
    );
    let all = check(&versioned, None).unwrap();
    assert!(all.iter().any(|d| !d.is_error()
        && d.file == "modules/mlld-lang/log-levels/1.0.0.json"
        && d.message.contains("deprecated")));
    assert!(
        all.iter()
            .any(|d| !d.is_error() && d.file == "modules/bobcodes/registry.json")
    );

    // A version file whose name disagrees with its `version`, and metadata of another folder.
    let renamed = versioned.join("modules/alice-dev/table-fmt/0.9.9.json");
    std::fs::copy(
        versioned.join("modules/alice-dev/table-fmt/0.2.0.json"),
        &renamed,
    )
    .unwrap();
    std::fs::write(
        versioned.join("modules/alice-dev/prompt-lib/metadata.json"),
        r#"{"name":"prompt-lib","author":"mallory","about":"x"}"#,
    )
    .unwrap();
    let found = errors(&versioned);
    assert!(
        found
            .iter()
            .any(|e| e.contains("0.9.9.json") && e.contains("named `0.9.9.json`")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("prompt-lib/metadata.json") && e.contains("mallory")),
        "{found:#?}"
    );
}

#[test]
fn search_finds_versioned_modules_with_their_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    build(
        &examples().join("registry"),
        &site,
        recorded_raw(),
        PreviousSite::None,
    );
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(site.join("latest.json")).unwrap()).unwrap();
    let client = Client::new(dir.path());
    let search = |args: &[&str]| -> Vec<serde_json::Value> {
        let snapshot = site.join(&latest.snapshot);
        let key = site.join("mlld-registry.pub");
        let common = [
            "--snapshot",
            snapshot.to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ];
        let out = assert_ok(&client.run(&[&["search", "--json"][..], args, &common[..]].concat()));
        mlld_e2e::project::envelope_data(out.as_bytes())
            .as_array()
            .unwrap()
            .clone()
    };
    // By name, by `about`, by keyword, and with the author filter.
    for query in [
        &["prompt-lib"][..],
        &["few-shot", "templates"],
        &["tag:templates"],
        &["prompt", "--author", "alice-dev"],
    ] {
        let hits = search(query);
        let hit = hits
            .iter()
            .find(|h| h["name"] == "@alice-dev/prompt-lib")
            .unwrap_or_else(|| panic!("{query:?}: {hits:#?}"));
        assert_eq!(hit["version"], "1.2.0");
        assert_eq!(hit["author"], "alice-dev");
    }
    // Both modules of a name in both layouts are found, each as what it is.
    let names: Vec<String> = search(&["json-utils"])
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"adamavenir/json-utils".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"@adamavenir/json-utils".to_string()),
        "{names:?}"
    );
    // The table shows the version beside the name.
    let key = site.join("mlld-registry.pub");
    let snapshot = site.join(&latest.snapshot);
    let table = assert_ok(&client.run(&[
        "search",
        "table-fmt",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ]));
    assert!(table.contains("@alice-dev/table-fmt  0.2.0"), "{table}");
}

#[test]
fn cargo_xtask_index_fetches_from_the_raw_base_and_reports_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let host = RawHost::examples();
    let (out, report) = (dir.path().join("site"), dir.path().join("report.json"));
    let index = |previous: &str| {
        let run = std::process::Command::new(mlld_e2e::xtask_bin())
            .current_dir(mlld_e2e::workspace_root())
            .args(["index", "--registry"])
            .arg(examples().join("registry"))
            .arg("--gists")
            .arg(examples().join("gists"))
            .args([
                "--raw-base",
                &host.url(),
                "--retry-base-ms",
                "5",
                "--previous",
                previous,
            ])
            .arg("--out")
            .arg(&out)
            .arg("--report-json")
            .arg(&report)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap();
        let stdout = assert_ok(&run);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (stdout, json)
    };
    let (stdout, json) = index("none");
    assert!(
        stdout.contains("layout      both: user folders (gists) and modules/ (versioned)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rejected @bobcodes/http-kit@1.0.1"),
        "{stdout}"
    );
    assert_eq!(
        json["layouts"],
        serde_json::json!({"userFolders": true, "versioned": true})
    );
    assert_eq!(json["versionsAccepted"], 10);
    assert_eq!(json["versionsRejected"].as_array().unwrap().len(), 4);
    let requests = host.count();
    assert_eq!(json["rawRequests"]["requests"], requests);
    assert!(requests >= 10);

    let (_, json) = index(out.to_str().unwrap());
    assert_eq!(
        host.count(),
        requests,
        "the nightly rebuild asks the raw host nothing"
    );
    assert_eq!(json["versionsReused"], 10);
}

#[test]
fn a_stalled_host_and_an_oversized_file_reject_only_their_versions() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    copy_dir(&examples().join("raw"), &raw);
    // table-fmt 0.1.0's file grows past the 10 MB cap.
    let big = raw.join(
        "alice-dev/mlld-modules/9c38b82773585b67b257e6fd45a6dcce2c152fa0/table-fmt/table-fmt.mld",
    );
    std::fs::write(&big, vec![b'x'; 10 * 1024 * 1024 + 1]).unwrap();
    let host = RawHost::serve(raw);
    let stalled = "/bobcodes/http-kit/5381b237b30580df07b28e8b02365af79b4104e8/http-kit.mld";
    host.slow(stalled, std::time::Duration::from_secs(3));
    let config = RawConfig::Http(HttpRawConfig {
        base: host.url(),
        request_timeout: std::time::Duration::from_millis(500),
        max_attempts: 2,
        retry_base: std::time::Duration::from_millis(5),
        ..HttpRawConfig::default()
    });
    let report = build(
        &examples().join("registry"),
        &dir.path().join("site"),
        config,
        PreviousSite::None,
    );
    let rejected = rejected(&report);
    assert!(
        reason(&rejected, "@alice-dev/table-fmt@0.1.0").contains("over the 10485760-byte limit"),
        "{rejected:#?}"
    );
    assert!(
        reason(&rejected, "@bobcodes/http-kit@1.0.0").contains("timed out"),
        "{rejected:#?}"
    );
    assert_eq!(report.versions_accepted, 8, "the other versions stand");
}
