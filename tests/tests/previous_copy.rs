//! `--previous URL` with an output directory that already holds a site (a
//! CI cache of the last build): read in place when it is a copy of the
//! published site, refused otherwise (its files would be published beside
//! the new site's).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mlld_e2e::fake_github::FakeGithub;
use mlld_e2e::http::{HttpServer, Request, static_files};
use mlld_e2e::{copy_dir, examples, github_build, verify_site};
use mlld_indexer::{BuildReport, PreviousSite};

/// A published site served over HTTP, with the paths asked of it.
struct Published {
    dir: PathBuf,
    server: HttpServer,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Published {
    fn start(dir: PathBuf) -> Self {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (files, log) = (static_files(dir.clone()), asked.clone());
        let server = HttpServer::start(Arc::new(move |req: &Request| {
            log.lock().unwrap().push(req.path().to_string());
            files(req)
        }));
        Self { dir, server, asked }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

fn try_build(
    out: &Path,
    github: &FakeGithub,
    previous: PreviousSite,
) -> anyhow::Result<BuildReport> {
    let registry = examples().join("registry");
    github_build(&registry, out, &github.url(), previous, |_| {})
}

fn build(out: &Path, github: &FakeGithub, previous: PreviousSite) -> BuildReport {
    try_build(out, github, previous).unwrap()
}

/// A site published twice (so it has deltas and a retired snapshot), served.
fn published(root: &Path, github: &FakeGithub) -> (Published, BuildReport) {
    let dir = root.join("published");
    build(&dir, github, PreviousSite::None);
    let report = build(&dir, github, PreviousSite::Output);
    (Published::start(dir), report)
}

/// A published site and a copy of it in `cache`, as a CI cache restores it.
struct World {
    /// Holds both folders; removed when the test ends.
    _root: tempfile::TempDir,
    github: FakeGithub,
    site: Published,
    /// The published build's report.
    last: BuildReport,
    cache: PathBuf,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let github = FakeGithub::with_examples();
        let (site, last) = published(root.path(), &github);
        let cache = root.path().join("cache");
        copy_dir(&site.dir, &cache);
        Self {
            _root: root,
            github,
            site,
            last,
            cache,
        }
    }
}

/// A file's inode and modification time: the same only if it was not written again.
fn identity(path: &Path) -> (u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    (meta.ino(), meta.modified().unwrap())
}

fn read_from(report: &BuildReport) -> &str {
    let read = report.previous_site.as_ref().expect("--previous was given");
    &read.read_from
}

#[test]
fn a_copy_of_the_published_site_is_built_on_in_place() {
    let w = World::new();
    let page = w.cache.join("modules/textkit/slugify.js");
    let page_before = identity(&page);

    let report = build(&w.cache, &w.github, PreviousSite::At(w.site.server.url()));
    assert_eq!(read_from(&report), w.cache.to_str().unwrap());
    assert_eq!(
        identity(&page),
        page_before,
        "an unchanged module page is kept, not written again"
    );
    assert_eq!(report.serial, w.last.serial + 1);
    assert_eq!(
        w.site.asked(),
        ["/latest.json", "/latest.json.minisig"],
        "only the published pointer is read: the snapshot, state and index come from the copy"
    );
    assert_eq!(report.frames_compressed, 0);
    assert_eq!(
        verify_site(&w.cache).modules,
        verify_site(&w.site.dir).modules
    );
}

#[test]
fn a_copy_of_an_older_build_is_refused() {
    let w = World::new();
    // The published site moves on; the cache is a night behind.
    let newer = build(&w.site.dir, &w.github, PreviousSite::Output);
    let before = std::fs::read(w.cache.join("latest.json")).unwrap();

    let err = try_build(&w.cache, &w.github, PreviousSite::At(w.site.server.url())).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("not a copy of")
            && err.contains(&format!("holds serial {}", newer.serial - 1))
            && err.contains(&format!("published site is serial {}", newer.serial))
            && err.contains("empty it"),
        "{err}"
    );
    assert_eq!(std::fs::read(w.cache.join("latest.json")).unwrap(), before);
    assert!(
        !w.site.asked().iter().any(|p| p.starts_with("/snapshots/")),
        "refused before anything but latest.json is read: {:?}",
        w.site.asked()
    );
}

#[test]
fn a_damaged_copy_is_refused() {
    let w = World::new();
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(w.cache.join("latest.json")).unwrap()).unwrap();
    let snapshot = w.cache.join(&latest.snapshot);
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();

    let err = try_build(&w.cache, &w.github, PreviousSite::At(w.site.server.url())).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("the copy of")
            && err.contains("if it is damaged")
            && err.contains("hashes to"),
        "{err}"
    );
    let after: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(w.cache.join("latest.json")).unwrap()).unwrap();
    assert_eq!(after, latest, "nothing was published over the copy");
}

#[test]
fn an_empty_output_directory_reads_the_published_site() {
    let root = tempfile::tempdir().unwrap();
    let github = FakeGithub::with_examples();
    let (site, last) = published(root.path(), &github);
    let fresh = root.path().join("fresh");

    let url = site.server.url();
    let report = build(&fresh, &github, PreviousSite::At(url.clone()));
    assert_eq!(read_from(&report), url);
    assert_eq!(report.serial, last.serial + 1);
    verify_site(&fresh);
}

#[test]
fn a_newer_build_that_was_never_published_is_refused_with_advice() {
    let w = World::new();
    // Built, then its deploy failed: the cache is a night ahead.
    build(&w.cache, &w.github, PreviousSite::Output);

    let err = try_build(&w.cache, &w.github, PreviousSite::At(w.site.server.url())).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("never published")
            && err.contains(&format!("holds serial {}", w.last.serial + 1))
            && err.contains("publish it"),
        "{err}"
    );
}

#[test]
fn a_site_that_does_not_verify_is_refused() {
    let w = World::new();
    let sig = w.cache.join("latest.json.minisig");
    let mut bad = std::fs::read(&sig).unwrap();
    let at = bad.len() - 10;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&sig, &bad).unwrap();

    let err = try_build(&w.cache, &w.github, PreviousSite::At(w.site.server.url())).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("not a copy of") && err.contains("does not verify with this build's key"),
        "{err}"
    );
}
