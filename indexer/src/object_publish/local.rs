//! The local site about to be published: every file hashed, what its signed
//! `latest.json` names, and what its crawl state still keeps.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::Latest;
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME};
use rayon::prelude::*;
use sha2::Digest;

use super::plan::LocalFile;

/// The cap on `latest.json` read here.
const MAX_STATE_BYTES: u64 = 1 << 30;

/// A built site directory, ready to upload.
pub struct LocalSite {
    pub files: Vec<LocalFile>,
    pub latest: Latest,
    /// The bytes of `latest.json`, to compare with the bucket's.
    pub latest_bytes: Vec<u8>,
    /// Older snapshots, index-only snapshots and delta files the crawl state
    /// keeps published (they stay in the bucket though not in `files`).
    pub kept: BTreeSet<String>,
}

impl LocalSite {
    /// Reads and hashes the site at `root`. Hidden entries (a build's
    /// `.staging-*`, temporary files) and `*.tmp` leftovers are not part of
    /// the site; a link leading out of it, or a file that is not regular, is
    /// refused. Refuses a site whose `latest.json` names a file it lacks
    /// and does not keep from an earlier build.
    pub fn read(root: &Path) -> Result<Self> {
        let paths = site_paths(root)?;
        let files = paths
            .par_iter()
            .map(|rel| hash_file(root, rel))
            .collect::<Result<Vec<_>>>()?;
        let latest_bytes = mlld_fsutil::read_regular(&root.join(LATEST_NAME), MAX_STATE_BYTES)
            .with_context(|| {
                format!(
                    "reading {}: is {} a built site? (cargo xtask index --out DIR builds one)",
                    LATEST_NAME,
                    root.display()
                )
            })?;
        let latest: Latest = serde_json::from_slice(&latest_bytes).with_context(|| {
            format!(
                "{} in {} is not a valid pointer",
                LATEST_NAME,
                root.display()
            )
        })?;
        if !files.iter().any(|f| f.path == LATEST_SIG_NAME) {
            bail!(
                "{} has {LATEST_NAME} but no {LATEST_SIG_NAME}; rebuild the site",
                root.display()
            );
        }
        let kept = kept_files(root)?;
        let have: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        for named in named_by(&latest) {
            if !have.contains(named.as_str()) && !kept.contains(&named) {
                bail!(
                    "{} names {named}, which {} lacks; publishing it would point clients at a missing file. Rebuild the site",
                    LATEST_NAME,
                    root.display()
                );
            }
        }
        Ok(Self {
            files,
            latest,
            latest_bytes,
            kept,
        })
    }
}

/// Every file `latest` points clients at.
pub fn named_by(latest: &Latest) -> Vec<String> {
    let mut named = vec![latest.snapshot.clone()];
    named.extend(latest.index.iter().map(|i| i.path.clone()));
    for d in &latest.chunk_deltas {
        named.push(d.patch.path.clone());
        named.push(d.blobs.path.clone());
    }
    named
}

/// The site-relative paths of the files to publish, sorted.
fn site_paths(root: &Path) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_dir() || name.ends_with(".tmp") {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walked below the root");
        let Some(rel) = rel.to_str().filter(|r| !r.contains('\\')) else {
            bail!(
                "{} is not a valid object name (UTF-8, no backslash)",
                entry.path().display()
            );
        };
        if entry.path_is_symlink() {
            mlld_fsutil::check_within(root, entry.path())?;
        }
        paths.push(rel.to_string());
    }
    Ok(paths)
}

/// One file's size, SHA-256 and MD5, read once.
fn hash_file(root: &Path, rel: &str) -> Result<LocalFile> {
    let path = root.join(rel);
    let reading = || format!("reading {}", path.display());
    let mut file = mlld_fsutil::open_regular(&path).with_context(reading)?;
    let (mut sha256, mut md5) = (sha2::Sha256::new(), md5::Md5::new());
    let mut size = 0u64;
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buf).with_context(reading)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        md5.update(&buf[..n]);
        size += n as u64;
    }
    let sha256 = hex::encode(sha256.finalize());
    if let Some(named) = super::plan::own_digest(rel)
        && !sha256.starts_with(&named)
    {
        bail!(
            "{} is named by SHA-256 {named} but hashes to {sha256}: the site is damaged (nothing was uploaded); rebuild it",
            path.display()
        );
    }
    Ok(LocalFile {
        path: rel.to_string(),
        size,
        sha256,
        md5: hex::encode(md5.finalize()),
    })
}

/// The files the crawl state keeps published from earlier builds. A site
/// without a crawl state keeps nothing beyond its own files.
fn kept_files(root: &Path) -> Result<BTreeSet<String>> {
    let Some(state) = crate::crawl_state::read_local(root)? else {
        return Ok(BTreeSet::new());
    };
    Ok(state
        .published
        .into_iter()
        .chain(state.published_index)
        .chain(state.published_deltas.into_iter().flatten())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of `abc`, the snapshot's content.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// A minimal site: a pointer naming one snapshot, its signature, a page.
    fn site(dir: &Path, snapshot_present: bool) {
        let snapshot = format!("snapshots/{ABC}.tar.zst");
        let latest = serde_json::json!({
            "formatVersion": 1, "snapshot": snapshot, "sha256": ABC, "size": 3,
            "serial": 7, "created": "2026-01-01T00:00:00Z", "expires": "2026-01-15T00:00:00Z"
        });
        std::fs::write(dir.join(LATEST_NAME), latest.to_string()).unwrap();
        std::fs::write(dir.join(LATEST_SIG_NAME), "sig").unwrap();
        std::fs::write(dir.join("index.html"), "<html>").unwrap();
        if snapshot_present {
            std::fs::create_dir_all(dir.join("snapshots")).unwrap();
            std::fs::write(dir.join(snapshot), "abc").unwrap();
        }
    }

    #[test]
    fn the_site_is_its_files_without_staging_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        site(dir.path(), true);
        std::fs::create_dir_all(dir.path().join(".staging-x/new")).unwrap();
        std::fs::write(dir.path().join(".staging-x/new/blob"), "x").unwrap();
        std::fs::write(dir.path().join("index.html.tmp"), "x").unwrap();
        let read = LocalSite::read(dir.path()).unwrap();
        let paths: Vec<_> = read.files.iter().map(|f| f.path.as_str()).collect();
        let snapshot = format!("snapshots/{ABC}.tar.zst");
        assert_eq!(
            paths,
            [
                "index.html",
                "latest.json",
                "latest.json.minisig",
                &snapshot
            ]
        );
        let abc = read.files.iter().find(|f| f.path == snapshot).unwrap();
        assert_eq!(abc.size, 3);
        assert_eq!(abc.sha256, ABC);
        assert_eq!(abc.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(read.latest.serial, 7);
        assert!(read.kept.is_empty());
    }

    #[test]
    fn a_file_that_does_not_hash_to_its_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        site(dir.path(), true);
        std::fs::write(dir.path().join(format!("snapshots/{ABC}.tar.zst")), "abd").unwrap();
        let err = format!("{:#}", LocalSite::read(dir.path()).err().unwrap());
        assert!(err.contains("damaged") && err.contains(ABC), "{err}");
        // A blob likewise; a page is named by what it shows, not hashed.
        site(dir.path(), true);
        let blob = format!("blobs/sha256/{}/{}", &ABC[..2], &ABC[2..]);
        std::fs::create_dir_all(dir.path().join(&blob).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(&blob), "abd").unwrap();
        let err = format!("{:#}", LocalSite::read(dir.path()).err().unwrap());
        assert!(err.contains("damaged") && err.contains(&blob), "{err}");
        std::fs::write(dir.path().join(&blob), "abc").unwrap();
        for named in [
            format!("deltas/{ABC}.chunks.zst"),
            format!("sparse/{ABC}.root.json"),
            format!("sparse/shards/{ABC}.json.zst"),
            format!("data/listing-{}.js", &ABC[..32]),
        ] {
            let path = dir.path().join(&named);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "abd").unwrap();
            let err = format!("{:#}", LocalSite::read(dir.path()).err().unwrap());
            assert!(err.contains("damaged") && err.contains(&named), "{err}");
            std::fs::write(&path, "abc").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("modules/u")).unwrap();
        std::fs::write(dir.path().join(format!("modules/u/{ABC}.js")), "x").unwrap();
        LocalSite::read(dir.path()).unwrap();
    }

    #[test]
    fn a_pointer_at_a_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        site(dir.path(), false);
        let err = format!("{:#}", LocalSite::read(dir.path()).err().unwrap());
        assert!(err.contains("snapshots/") && err.contains("lacks"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_leading_out_of_the_site_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        site(dir.path(), true);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("app.js"))
            .unwrap();
        let err = format!("{:#}", LocalSite::read(dir.path()).err().unwrap());
        assert!(err.contains("leading out"), "{err}");
    }
}
