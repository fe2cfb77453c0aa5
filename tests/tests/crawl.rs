//! The crawl through the GitHub API, against a fake GitHub on loopback:
//! a full crawl, incremental rebuilds, and captured revisions that stay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use mlld_e2e::fake_github::FakeGithub;
use mlld_e2e::{
    Client, assert_ok, example_gist_ids, examples, github_build, github_config, verify_site,
};
use mlld_indexer::{BuildReport, PreviousSite};
use mlld_synth::{Synth, SynthConfig};

/// An incremental build of `registry` into `out` against the fake GitHub, with the test settings.
fn rebuild(registry: &Path, out: &Path, github: &FakeGithub) -> BuildReport {
    github_build(registry, out, &github.url(), PreviousSite::Output, |_| {}).unwrap()
}

#[test]
fn a_full_crawl_of_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let report = rebuild(&examples().join("registry"), dir.path(), &github);
    assert_eq!(report.modules_accepted, 24);
    let rejected: Vec<_> = report
        .modules_rejected
        .iter()
        .map(|r| r.module.as_str())
        .collect();
    assert_eq!(rejected, ["devops-dan/deploy-notes", "jdoe/quick-helpers"]);
    let stats = report.requests.as_ref().unwrap();
    assert_eq!(
        (
            stats.requests,
            stats.primary,
            stats.not_modified,
            stats.retries
        ),
        (26, 26, 0, 0)
    );
    assert_eq!(github.counts.get(&github.counts.counted), 26);
    assert!(stats.bytes_downloaded > 20_000, "{stats:?}");
    let manifest = verify_site(dir.path());
    assert_eq!(manifest.modules.len(), 24);
    let json_utils = manifest.find("adamavenir", "json-utils").unwrap();
    assert_eq!(
        json_utils.current.revision,
        "b20e54d6dbf422252b7b670af492632f2fa6c1a2"
    );
    assert_eq!(json_utils.current.dependencies, ["textkit/string-case"]);
}

#[test]
fn a_rebuild_with_nothing_changed_costs_no_counted_request() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let registry = examples().join("registry");
    let first = rebuild(&registry, dir.path(), &github);
    let before = verify_site(dir.path());
    let counted = github.counts.get(&github.counts.counted);

    let second = rebuild(&registry, dir.path(), &github);
    let stats = second.requests.as_ref().unwrap();
    assert_eq!(stats.primary, 0, "{stats:?}");
    assert_eq!(stats.not_modified, 26);
    assert_eq!(
        github.counts.get(&github.counts.counted),
        counted,
        "the fake GitHub saw no counted request"
    );
    assert_eq!((second.modules_fetched, second.modules_unchanged), (0, 24));
    assert_eq!(
        second.modules_rejected.len(),
        2,
        "rejections are remembered, not re-fetched"
    );
    assert_eq!(second.serial, first.serial + 1);
    let after = verify_site(dir.path());
    assert_eq!(
        after.modules, before.modules,
        "the same records, from the previous snapshot"
    );
    assert_eq!(after.members, before.members);
}

/// A synthetic registry on disk, its gists served by a fake GitHub; returns
/// the registry and site paths inside the returned directory.
fn synthetic(
    users: usize,
    modules: usize,
    seed: u64,
) -> (tempfile::TempDir, Synth, FakeGithub, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let synth = Synth::new(SynthConfig {
        users,
        modules,
        seed,
    });
    synth
        .write(&dir.path().join("data"), &BTreeMap::new())
        .unwrap();
    let github = FakeGithub::start();
    serve(&synth, &github, &BTreeMap::new());
    let (registry, site) = (dir.path().join("data/registry"), dir.path().join("site"));
    (dir, synth, github, registry, site)
}

/// A synthetic registry served by the fake GitHub, with some modules moved to a new generation.
fn serve(synth: &Synth, github: &FakeGithub, changed: &BTreeMap<usize, u32>) {
    for i in 0..synth.modules.len() {
        github.put(&synth.gist_response(i, changed.get(&i).copied().unwrap_or(0)));
    }
}

#[test]
fn a_rebuild_with_a_few_changes_costs_about_that_many() {
    let (_dir, synth, github, registry, site) = synthetic(12, 240, 3);
    let first = rebuild(&registry, &site, &github);
    assert_eq!(first.modules_accepted, 240);

    let changed: BTreeMap<usize, u32> = [3, 50, 77, 120, 199, 238]
        .into_iter()
        .map(|i| (i, 1))
        .collect();
    serve(&synth, &github, &changed);
    let second = rebuild(&registry, &site, &github);
    let stats = second.requests.as_ref().unwrap();
    assert_eq!(stats.primary, 6, "{stats:?}");
    assert_eq!((second.modules_fetched, second.modules_unchanged), (6, 234));
    let manifest = verify_site(&site);
    for &i in changed.keys() {
        let m = &synth.modules[i];
        let record = manifest.find(&m.user, &m.name).unwrap();
        assert_eq!(record.current.revision, synth.revision(i, 1));
        let old: Vec<_> = record.history.iter().map(|r| r.revision.clone()).collect();
        assert_eq!(old, [synth.revision(i, 0)], "the earlier capture stays");
    }
}

#[test]
fn a_lock_pinned_to_an_old_revision_installs_from_todays_snapshot() {
    let (dir, synth, github, registry, site) = synthetic(3, 12, 9);
    rebuild(&registry, &site, &github);

    let client = Client::new(dir.path());
    let key = site.join("mlld-registry.pub");
    let snapshot_of = |site: &std::path::Path| {
        let latest: mlld_schemas::Latest =
            serde_json::from_slice(&std::fs::read(site.join("latest.json")).unwrap()).unwrap();
        site.join(latest.snapshot)
    };
    let (i, m) = (5, &synth.modules[5]);
    let old_snapshot = snapshot_of(&site);
    let reference = format!("@{}/{}", m.user, m.name);
    assert_ok(&client.run(&[
        "resolve",
        &reference,
        "--yes",
        "--snapshot",
        old_snapshot.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ]));

    // Two more builds: the module changes twice.
    for generation in [1, 2] {
        serve(&synth, &github, &[(i, generation)].into_iter().collect());
        rebuild(&registry, &site, &github);
    }
    let today = snapshot_of(&site);
    std::fs::remove_file(&old_snapshot).ok();
    std::fs::remove_dir_all(client.project.join(".mlld/cache")).unwrap();
    std::fs::remove_dir_all(&client.home).unwrap();
    let out = client.run(&[
        "install",
        "--json",
        "--snapshot",
        today.to_str().unwrap(),
        "--trusted-key",
        key.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let dir0 = client.project.join(format!(
        ".mlld/cache/gist/{}/{}/{}",
        m.user,
        m.gist,
        synth.revision(i, 0)
    ));
    assert_eq!(
        std::fs::read_to_string(dir0.join("content.mld")).unwrap(),
        synth.content(i, 0)
    );
    assert_eq!(
        verify_site(&site)
            .find(&m.user, &m.name)
            .unwrap()
            .history
            .len(),
        2
    );
    assert_eq!(
        github.counts.api.load(Ordering::SeqCst) as usize,
        12 * 3,
        "one request per gist per build"
    );
}

#[test]
fn a_tampered_crawl_state_is_ignored_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let registry = examples().join("registry");
    rebuild(&registry, dir.path(), &github);
    // The state is signed in its stored (compressed) form: a state altered
    // and stored again, as an attacker with write access to the site would,
    // no longer verifies.
    let state = dir.path().join("crawl-state.json.zst");
    let text =
        String::from_utf8(zstd::decode_all(&std::fs::read(&state).unwrap()[..]).unwrap()).unwrap();
    let tampered = text.replacen(
        "\"etags\":{",
        "\"etags\":{\"0000000000000000000000\":\"x\",",
        1,
    );
    assert_ne!(tampered, text);
    std::fs::write(&state, zstd::encode_all(tampered.as_bytes(), 3).unwrap()).unwrap();
    let report = rebuild(&registry, dir.path(), &github);
    let stats = report.requests.as_ref().unwrap();
    assert_eq!(
        (stats.primary, stats.not_modified),
        (26, 0),
        "no ETag from an unsigned state was used"
    );
    assert_eq!(
        report.frames_reused, 0,
        "no frame table from an unsigned state was used"
    );
    assert_eq!(report.modules_accepted, 24);
    verify_site(dir.path());
}

#[test]
fn requests_carry_the_api_headers_and_the_token_stays_with_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.truncate_file("a1f3e09a42db6c680b454f6f93efa9d8", "json-utils.mld", 10);
    rebuild(&examples().join("registry"), dir.path(), &github);
    let seen = github.seen.lock().unwrap();
    let api: Vec<_> = seen
        .iter()
        .filter(|r| r.path().starts_with("/gists/"))
        .collect();
    assert_eq!(api.len(), 26);
    for r in &api {
        assert_eq!(r.header("authorization"), Some("Bearer test-token"));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("mlld-registry-indexer/"))
        );
    }
    let raw: Vec<_> = seen
        .iter()
        .filter(|r| r.path().starts_with("/raw/"))
        .collect();
    assert_eq!(raw.len(), 1);
    assert_eq!(
        raw[0].header("authorization"),
        None,
        "raw URLs are another host in real life: no token"
    );
}

#[test]
fn the_previous_site_can_come_from_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let registry = examples().join("registry");
    let published = dir.path().join("published");
    let first = rebuild(&registry, &published, &github);
    let host = mlld_e2e::http::HttpServer::start(mlld_e2e::http::static_files(published.clone()));

    // A fresh checkout (as in CI) restores nothing locally and builds on the published site.
    let fresh = dir.path().join("fresh");
    let second = github_build(
        &registry,
        &fresh,
        &github.url(),
        PreviousSite::At(host.url()),
        |_| {},
    )
    .unwrap();
    assert_eq!(second.serial, first.serial + 1);
    assert_eq!(second.requests.as_ref().unwrap().primary, 0);
    assert_eq!(second.modules_unchanged, 24);
    assert_eq!(
        second.frames_compressed, 0,
        "every frame is copied from the downloaded snapshot"
    );
    assert_eq!(verify_site(&fresh).modules, verify_site(&published).modules);
}

#[test]
fn the_state_is_stored_compressed_and_a_legacy_uncompressed_state_is_still_used() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let registry = examples().join("registry");
    rebuild(&registry, dir.path(), &github);
    let stored = std::fs::read(dir.path().join("crawl-state.json.zst")).unwrap();
    let expanded = zstd::decode_all(&stored[..]).unwrap();
    assert!(
        stored.len() * 2 < expanded.len(),
        "compressed {} vs JSON {}",
        stored.len(),
        expanded.len()
    );
    assert!(!dir.path().join("crawl-state.json").exists());
    // One JSON document a frame: the state without its tables, then the
    // ETags, imports, page keys and search documents.
    let mut docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&expanded)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs.len(), 5);
    assert_eq!(docs[0]["etags"], serde_json::json!({}));
    // An ETag for each of the 24 accepted modules' gists.
    assert!(docs[1].as_object().unwrap().len() >= 24, "{}", docs[1]);
    let mut whole = docs.remove(0);
    whole["search"]["baseDocs"] = docs.pop().unwrap();
    for (table, doc) in ["etags", "imports", "pages"].into_iter().zip(docs) {
        whole[table] = doc;
    }
    let json = serde_json::to_vec(&whole).unwrap();

    // A site published before the state was compressed: its signed
    // `crawl-state.json` still spares the next build its requests.
    std::fs::remove_file(dir.path().join("crawl-state.json.zst")).unwrap();
    std::fs::remove_file(dir.path().join("crawl-state.json.zst.minisig")).unwrap();
    let key = mlld_e2e::demo_key();
    std::fs::write(dir.path().join("crawl-state.json"), &json).unwrap();
    std::fs::write(
        dir.path().join("crawl-state.json.minisig"),
        key.sign(&json, "legacy crawl state"),
    )
    .unwrap();
    let report = rebuild(&registry, dir.path(), &github);
    let stats = report.requests.as_ref().unwrap();
    assert_eq!(
        (stats.primary, stats.not_modified),
        (0, 26),
        "the legacy state's ETags were used"
    );
    assert!(report.frames_reused > 0, "its frame table too");
    for gone in ["crawl-state.json", "crawl-state.json.minisig"] {
        assert!(!dir.path().join(gone).exists(), "{gone} was cleaned up");
    }
    assert!(dir.path().join("crawl-state.json.zst").exists());
    verify_site(dir.path());
}

#[test]
fn page_files_of_an_older_site_are_cleaned_up_after_the_flip() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let registry = examples().join("registry");
    rebuild(&registry, dir.path(), &github);
    // A site published when the page's scripts and style were separate files.
    for old in ["app.js", "page.js", "module.js", "search.js", "style.css"] {
        std::fs::write(dir.path().join(old), "/* an older page */").unwrap();
    }
    rebuild(&registry, dir.path(), &github);
    for old in ["app.js", "page.js", "module.js", "search.js", "style.css"] {
        assert!(!dir.path().join(old).exists(), "{old} is left behind");
    }
    let index = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        !index.contains("src=\"app.js\""),
        "the page loads no separate script"
    );
    verify_site(dir.path());
}

#[test]
fn many_gists_come_back_in_order_and_are_handed_on_at_the_byte_budget() {
    use mlld_indexer::gist::{Fetched, GistSource};
    let github = FakeGithub::with_examples();
    let gists = mlld_indexer::GithubGists::new(github_config(&github.url())).unwrap();
    let ids = example_gist_ids();
    let fresh: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
    let all = gists.fetch_many(&fresh, 4, u64::MAX);
    let mut etags = Vec::new();
    for (fetched, id) in all.iter().zip(&ids) {
        match fetched {
            Ok(Fetched::Fresh { gist, etag }) => {
                assert_eq!(&gist.id, id, "in the order asked");
                etags.push(etag.clone().unwrap());
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(all.len(), ids.len());
    // One in flight and a budget of one byte: the first gist's content fills it.
    assert_eq!(gists.fetch_many(&fresh, 1, 1).len(), 1);
    // Revalidated with their ETags, all at once: nothing counted.
    let counted = github.counts.get(&github.counts.counted);
    let again: Vec<(&str, Option<&str>)> = (ids.iter().zip(&etags))
        .map(|(id, etag)| (id.as_str(), Some(etag.as_str())))
        .collect();
    let revalidated = gists.fetch_many(&again, 8, 1);
    assert_eq!(revalidated.len(), ids.len(), "a 304 fills no budget");
    assert!(
        revalidated
            .iter()
            .all(|r| matches!(r, Ok(Fetched::NotModified)))
    );
    assert_eq!(github.counts.get(&github.counts.counted), counted);
}
