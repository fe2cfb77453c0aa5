//! Every fault the GitHub API can throw ends in a signed, consistent
//! snapshot with the right modules stale or rejected; a failed build leaves
//! the published site exactly as it was.

use std::path::Path;
use std::time::Duration;

use mlld_e2e::fake_github::{FakeGithub, GistFault};
use mlld_e2e::{example_gist_ids, examples, github_build, github_config, tree, verify_site};
use mlld_indexer::{BuildReport, PreviousSite};

const JSON_UTILS: &str = "a1f3e09a42db6c680b454f6f93efa9d8";
const HTTP_RETRY: &str = "02ae6f6b98bea7ee40645719a8b4ae6e";

/// A build of the example registry from the fake GitHub, with the test settings tuned by `tune`.
fn try_build(
    out: &Path,
    github: &FakeGithub,
    previous: PreviousSite,
    tune: impl FnOnce(&mut mlld_indexer::GithubConfig),
) -> anyhow::Result<BuildReport> {
    github_build(
        &examples().join("registry"),
        out,
        &github.url(),
        previous,
        tune,
    )
}

fn build(out: &Path, github: &FakeGithub, previous: PreviousSite) -> BuildReport {
    try_build(out, github, previous, |_| {}).expect("the build publishes")
}

fn stale(report: &BuildReport) -> Vec<(&str, &str)> {
    report
        .modules_stale
        .iter()
        .map(|s| (s.module.as_str(), s.reason.as_str()))
        .collect()
}

fn rejected<'a>(report: &'a BuildReport, module: &str) -> Option<&'a str> {
    report
        .modules_rejected
        .iter()
        .find(|r| r.module == module)
        .map(|r| r.reason.as_str())
}

#[test]
fn bursts_of_server_errors_and_broken_bodies_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.burst([
        GistFault::Status(500),
        GistFault::Status(502),
        GistFault::Status(503),
        GistFault::Drop,
    ]);
    github.fault(
        JSON_UTILS,
        [GistFault::TruncatedBody, GistFault::Status(502)],
    );
    // Six faults in all, and any one gist may draw several of them in a row
    // (which gist meets the burst is a matter of timing): seven attempts, so
    // the test checks that the faults are retried, not how they fall.
    let report = try_build(dir.path(), &github, PreviousSite::Output, |c| {
        c.max_attempts = 7
    })
    .expect("the build publishes");
    assert_eq!(
        report.modules_accepted, 24,
        "{:?} {:?}",
        report.modules_rejected, report.requests
    );
    assert!(report.modules_stale.is_empty());
    assert!(
        report.requests.as_ref().unwrap().retries >= 6,
        "{:?}",
        report.requests
    );
    verify_site(dir.path());
}

#[test]
fn slow_responses_time_out_and_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.fault(HTTP_RETRY, [GistFault::Slow(Duration::from_secs(3))]);
    let report = try_build(dir.path(), &github, PreviousSite::Output, |c| {
        c.request_timeout = Duration::from_millis(500);
    })
    .unwrap();
    assert_eq!(report.modules_accepted, 24);
    assert!(report.requests.as_ref().unwrap().retries >= 1);
    verify_site(dir.path());
}

#[test]
fn a_gist_that_keeps_failing_is_stale_with_a_previous_record_and_rejected_without() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.fault(JSON_UTILS, vec![GistFault::Status(502); 4]);
    let first = build(dir.path(), &github, PreviousSite::Output);
    let reason = rejected(&first, "adamavenir/json-utils").expect("no previous record: rejected");
    assert!(
        reason.contains("gave up after 4 attempts") && reason.contains("502"),
        "{reason}"
    );
    assert_eq!(first.modules_accepted, 23);

    let second = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(second.modules_accepted, 24);
    github.fault(HTTP_RETRY, vec![GistFault::Status(500); 4]);
    let third = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(third.modules_accepted, 24, "the last good record stands");
    let stale = stale(&third);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].0, "devops-dan/http-retry");
    assert!(stale[0].1.contains("500"), "{}", stale[0].1);
    let manifest = verify_site(dir.path());
    let record = manifest.find("devops-dan", "http-retry").unwrap();
    assert!(
        record
            .stale
            .as_deref()
            .unwrap()
            .contains("could not be fetched")
    );
    assert_eq!(
        record.current.revision,
        "5ac6ee0d574b5e6a34ba87338d94133a5ab77567"
    );
}

#[test]
fn secondary_rate_limits_are_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.fault(
        JSON_UTILS,
        [GistFault::Secondary {
            status: 403,
            retry_after: 1,
        }],
    );
    github.fault(
        HTTP_RETRY,
        [GistFault::Secondary {
            status: 429,
            retry_after: 1,
        }],
    );
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(report.modules_accepted, 24);
    let stats = report.requests.as_ref().unwrap();
    assert!(
        stats.rate_limit_wait_secs >= 1 && stats.retries >= 2,
        "{stats:?}"
    );
    verify_site(dir.path());
}

#[test]
fn an_exhausted_primary_limit_is_waited_for_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.rate_limit(5000, 10, Duration::from_secs(2));
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(report.modules_accepted, 24);
    assert!(report.requests.as_ref().unwrap().rate_limit_wait_secs >= 1);
    verify_site(dir.path());
}

#[test]
fn a_limit_exhausted_before_the_first_request_is_learnt_from_the_refusal_and_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    // The indexer cannot know: its first requests are refused with 403.
    github.rate_limit(5000, 0, Duration::from_secs(2));
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(report.modules_accepted, 24);
    assert!(report.requests.as_ref().unwrap().rate_limit_wait_secs >= 1);
    assert!(github.counts.get(&github.counts.rate_limited) >= 1);
    verify_site(dir.path());
}

#[test]
fn a_primary_limit_beyond_the_budget_publishes_with_the_last_good_records() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    build(dir.path(), &github, PreviousSite::Output);
    // Change every gist, then allow only 5 requests until an hour from now.
    for entry in std::fs::read_dir(examples().join("gists")).unwrap() {
        let mut gist: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        gist["description"] = "changed".into();
        github.put(&gist);
    }
    github.rate_limit(5000, 5, Duration::from_secs(3600));
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(report.modules_accepted, 24, "nothing is lost");
    let stale = stale(&report);
    assert!(stale.len() >= 18, "{stale:?}");
    assert!(
        stale
            .iter()
            .all(|(_, why)| why.contains("primary rate limit")),
        "{stale:?}"
    );
    let refused = github.counts.get(&github.counts.rate_limited);
    assert!(
        refused <= 8,
        "it stops asking once the limit is out (at most the requests already in flight): {refused} refused"
    );
    let manifest = verify_site(dir.path());
    assert_eq!(
        manifest
            .modules
            .iter()
            .filter(|m| m.stale.is_some())
            .count(),
        stale.len()
    );
}

#[test]
fn deleted_gists_are_reported_and_keep_their_last_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    github.delete(JSON_UTILS);
    let first = build(dir.path(), &github, PreviousSite::None);
    assert!(
        rejected(&first, "adamavenir/json-utils")
            .unwrap()
            .contains("not found on GitHub")
    );

    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    build(dir.path(), &github, PreviousSite::Output);
    github.delete(JSON_UTILS);
    let second = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(stale(&second).len(), 1);
    assert!(stale(&second)[0].1.contains("deleted, or made private"));
    verify_site(dir.path());
}

#[test]
fn owner_mismatch_and_files_without_modules_or_over_the_size_limit_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let mut big = github.gist(HTTP_RETRY);
    big["files"]["http-retry.mld"]["size"] = (11 * 1024 * 1024).into();
    github.put(&big);
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert!(
        rejected(&report, "jdoe/quick-helpers")
            .unwrap()
            .contains("owned by `mallory`")
    );
    assert!(
        rejected(&report, "devops-dan/deploy-notes")
            .unwrap()
            .contains("no module file")
    );
    assert!(
        rejected(&report, "devops-dan/http-retry")
            .unwrap()
            .contains("over the 10485760-byte limit")
    );
    let manifest = verify_site(dir.path());
    assert!(manifest.find("jdoe", "quick-helpers").is_none());
}

#[test]
fn truncated_files_are_fetched_whole_from_raw_url() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let full = github.gist(JSON_UTILS)["files"]["json-utils.mld"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    github.truncate_file(JSON_UTILS, "json-utils.mld", 40);
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(report.modules_accepted, 24);
    assert_eq!(github.counts.get(&github.counts.raw), 1);
    let record = verify_site(dir.path())
        .find("adamavenir", "json-utils")
        .unwrap()
        .clone();
    assert_eq!(
        record.current.integrity,
        mlld_schemas::integrity_of(full.as_bytes())
    );
    assert_eq!(record.current.size, full.len() as u64);
}

#[test]
fn a_failed_build_leaves_the_published_site_exactly_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    build(dir.path(), &github, PreviousSite::Output);
    let before: Vec<(String, Vec<u8>)> = tree(dir.path())
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(dir.path().join(&f)).unwrap()))
        .collect();

    // GitHub is down and there is nothing to fall back on: nothing may be published.
    github.burst(vec![GistFault::Status(503); 200]);
    let err = try_build(dir.path(), &github, PreviousSite::None, |_| {}).unwrap_err();
    assert!(
        format!("{err:#}").contains("refusing to publish an empty registry"),
        "{err:#}"
    );

    // A tampered previous site is refused rather than built upon.
    let sig = dir.path().join("latest.json.minisig");
    let good_sig = std::fs::read(&sig).unwrap();
    let mut bad = good_sig.clone();
    let at = bad.len() - 10;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&sig, &bad).unwrap();
    let err = try_build(dir.path(), &github, PreviousSite::Output, |_| {}).unwrap_err();
    assert!(
        format!("{err:#}").contains("does not verify with this build's key"),
        "{err:#}"
    );
    std::fs::write(&sig, &good_sig).unwrap();

    let after: Vec<(String, Vec<u8>)> = tree(dir.path())
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(dir.path().join(&f)).unwrap()))
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "no file added or removed (staging is gone)"
    );
    assert!(before == after, "the site changed");
}

#[test]
fn damaged_loose_blobs_in_the_site_are_healed_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    build(dir.path(), &github, PreviousSite::Output);
    let blob = mlld_e2e::tree(dir.path())
        .into_iter()
        .find(|f| f.starts_with("blobs/"))
        .unwrap();
    let path = dir.path().join(&blob);
    let good = std::fs::read(&path).unwrap();

    // Torn (shorter): the build unpacks the previous snapshot instead, and the site is healed.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let report = build(dir.path(), &github, PreviousSite::Output);
    assert_eq!(report.modules_accepted, 24);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    verify_site(dir.path());

    // Same size, other bytes: whenever the blob must be packed afresh (here: no
    // frame table to copy from), packing re-hashes it and refuses to sign it.
    let mut evil = good.clone();
    evil[0] ^= 1;
    std::fs::write(&path, &evil).unwrap();
    std::fs::remove_file(dir.path().join("crawl-state.json.zst")).unwrap();
    let latest = std::fs::read(dir.path().join("latest.json")).unwrap();
    let err = try_build(dir.path(), &github, PreviousSite::Output, |_| {}).unwrap_err();
    assert!(
        format!("{err:#}").contains("the blob directory is damaged"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("latest.json")).unwrap(),
        latest,
        "nothing was published"
    );

    // A full rebuild fetches every blob afresh and heals the site.
    build(dir.path(), &github, PreviousSite::None);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    verify_site(dir.path());
}

#[test]
fn a_slow_gist_holds_up_only_itself_among_the_requests_in_flight() {
    use mlld_indexer::gist::{Fetched, GistSource};
    use std::time::Instant;
    let github = FakeGithub::with_examples();
    let ids = example_gist_ids();
    github.fault(&ids[0], [GistFault::Slow(Duration::from_secs(4))]);
    let gists = mlld_indexer::GithubGists::new(mlld_indexer::GithubConfig {
        request_timeout: Duration::from_secs(30),
        max_attempts: 1,
        ..github_config(&github.url())
    })
    .unwrap();
    let requests: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
    std::thread::scope(|s| {
        let fetching = s.spawn(|| gists.fetch_many(&requests, 2, u64::MAX));
        // Long before the slow answer, every other gist has been asked for.
        let asked = Instant::now() + Duration::from_secs(3);
        while github.counts.get(&github.counts.api) < ids.len() as u64 {
            assert!(
                Instant::now() < asked,
                "{} of {} asked while one answer was slow",
                github.counts.get(&github.counts.api),
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let all = fetching.join().unwrap();
        assert_eq!(all.len(), ids.len());
        assert!(all.iter().all(|r| matches!(r, Ok(Fetched::Fresh { .. }))));
    });
}
