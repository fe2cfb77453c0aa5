//! Writes the static site: loose blobs and the snapshot first, `latest.json` last.
//!
//! A client that reads the site at any moment sees either the old
//! `latest.json` (whose snapshot is still there: snapshots are immutable
//! and never overwritten) or the new one, whose snapshot is already complete.
//! `latest.json.minisig` is replaced just before `latest.json`; a client
//! that reads the pair mid-publish gets a signature mismatch and retries.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, Latest, PUBLIC_KEY_NAME, blob_path};

use crate::blobs::BlobDir;
use crate::crawl_state::{self, CRAWL_STATE_NAME, CRAWL_STATE_SIG_NAME, CrawlState};
use crate::members::Members;
use crate::signing::SigningKey;

/// Everything one build publishes.
pub struct Publication<'a> {
    pub staged_snapshot: &'a Path,
    pub staged_index: &'a Path,
    /// The delta's patch and blob pack, published under the paths `latest.chunkDeltas` names.
    pub staged_delta: Option<(&'a Path, &'a Path)>,
    pub latest: &'a Latest,
    /// Staged site files (page, data, module pages): moved into the site as they are.
    pub site_files: &'a Path,
    pub state: &'a CrawlState,
    pub members: &'a Members,
    pub blobs: &'a BlobDir,
}

/// Moves a finished snapshot into the site and points `latest.json` at it.
pub fn publish(out: &Path, key: &SigningKey, p: &Publication<'_>) -> Result<()> {
    let (latest, state) = (p.latest, p.state);
    // The crawl state is compressed while the files move (it is CPU, they
    // are the disk); it is written after them, as before.
    let (state_bytes, moved) = crate::beside::beside(
        "encoding the crawl state",
        || crawl_state::encode(state),
        || move_files(out, key, p),
    );
    moved?;
    let state_bytes = state_bytes?.0?;
    // ETags for the next crawl; it names the snapshot it belongs to, so a stale file is ignored.
    mlld_fsutil::write_atomic(&out.join(CRAWL_STATE_NAME), &state_bytes)?;
    let state_sig = key.sign(
        &state_bytes,
        &format!("mlld-registry crawl state for {}", state.snapshot),
    );
    mlld_fsutil::write_atomic(&out.join(CRAWL_STATE_SIG_NAME), state_sig.as_bytes())?;
    let mut latest_bytes = serde_json::to_vec_pretty(latest)?;
    latest_bytes.push(b'\n');
    let sig = key.sign(
        &latest_bytes,
        &format!("mlld-registry latest serial:{}", latest.serial),
    );
    mlld_fsutil::write_atomic(&out.join(LATEST_SIG_NAME), sig.as_bytes())?;
    mlld_fsutil::write_atomic(&out.join(LATEST_NAME), &latest_bytes)?;
    Ok(())
}

/// Moves everything but the crawl state and `latest.json` into the site:
/// loose blobs, the snapshots and the delta, the public key, the staged
/// site files.
fn move_files(out: &Path, key: &SigningKey, p: &Publication<'_>) -> Result<()> {
    let Publication {
        staged_snapshot,
        staged_index,
        staged_delta,
        latest,
        site_files,
        members,
        blobs,
        ..
    } = *p;
    move_blobs(out, members, blobs)?;
    // (staged file, its path in the site, what it is), the snapshot last.
    let mut moves: Vec<(&Path, &str, &str)> = Vec::new();
    if let Some(index) = &latest.index {
        moves.push((staged_index, &index.path, "the index snapshot"));
    }
    if let (Some((patch, blobs)), Some(delta)) = (staged_delta, latest.chunk_deltas.first()) {
        moves.push((patch, &delta.patch.path, "the delta"));
        moves.push((blobs, &delta.blobs.path, "the delta"));
    }
    moves.push((staged_snapshot, &latest.snapshot, "the snapshot"));
    // Their folders are the site's own, as the pages' are: never a link.
    let rels: Vec<PathBuf> = moves.iter().map(|(_, rel, _)| PathBuf::from(rel)).collect();
    site_folders(out, &rels)?;
    for (staged, rel, what) in moves {
        let dest = out.join(rel);
        mlld_fsutil::rename_durable(staged, &dest)
            .with_context(|| format!("moving {what} to {}", dest.display()))?;
    }
    mlld_fsutil::write_atomic(&out.join(PUBLIC_KEY_NAME), key.public_key_file().as_bytes())?;
    // Without a previous build the pages land in folders made for them.
    move_site_files(out, site_files, blobs.previous_root().is_some())
}

/// Site files the page loads first, moved after the rest, in this order:
/// `index.html` (with `data/site.js` inlined) names the data files, which
/// must be there when it is.
pub(crate) const ENTRY_FILES: [&str; 2] = ["data/site.js", "index.html"];

/// Moves the staged page, data and module pages into the site, the
/// entry files last. An incremental build rewrites tens of thousands of
/// module pages spread over as many user folders, whose entries are
/// mostly not cached: the moves wait on the disk, many at once, a few
/// thousand at a time.
fn move_site_files(out: &Path, site_files: &Path, dests_may_exist: bool) -> Result<()> {
    let mut chunk = Vec::with_capacity(SITE_FILES_AT_ONCE);
    for entry in walkdir::WalkDir::new(site_files) {
        let entry = entry?;
        let rel = (entry.path().strip_prefix(site_files)).expect("walked below site_files");
        if entry.file_type().is_file() && !ENTRY_FILES.iter().any(|e| Path::new(e) == rel) {
            chunk.push(rel.to_path_buf());
            if chunk.len() == SITE_FILES_AT_ONCE {
                move_site_chunk(out, site_files, &chunk, dests_may_exist)?;
                chunk.clear();
            }
        }
    }
    move_site_chunk(out, site_files, &chunk, dests_may_exist)?;
    for entry in ENTRY_FILES.iter().map(PathBuf::from) {
        if site_files.join(&entry).is_file() {
            move_site_chunk(out, site_files, &[entry], dests_may_exist)?;
        }
    }
    Ok(())
}

const SITE_FILES_AT_ONCE: usize = 4096;

/// Moves `rels` from `site_files` into `out`. Only where a previous
/// build left pages are destinations looked up first and replaced pages
/// held open; a new site's million pages need neither.
fn move_site_chunk(
    out: &Path,
    site_files: &Path,
    rels: &[PathBuf],
    dests_may_exist: bool,
) -> Result<()> {
    use rayon::prelude::*;
    let dests: Vec<PathBuf> = rels.iter().map(|rel| out.join(rel)).collect();
    if dests_may_exist {
        crate::io_threads::look_up_ahead(&dests);
    }
    site_folders(out, rels)?;
    crate::io_threads::on_io_threads(|| {
        (rels.par_iter().zip(&dests)).try_for_each(|(rel, dest)| {
            let from = site_files.join(rel);
            match dests_may_exist {
                true => rename_over(&from, dest),
                false => std::fs::rename(&from, dest),
            }
            .with_context(|| format!("publishing {}", rel.display()))
        })
    })
}

/// Makes every folder `rels` go into a folder of the site itself: one
/// that is missing is made, and a link or file in a folder's place is
/// removed first, so that no page is written through a link (a
/// `modules/<user>` link leading out of the site, say). Each folder of
/// `rels` is looked at once a call, not once a page (a caller that passes
/// its files in chunks has the shared top folders looked at again per
/// chunk: a few lookups), and a level's folders many at once on the I/O
/// threads (a new site's 100,000 user folders are made here).
fn site_folders(out: &Path, rels: &[PathBuf]) -> Result<()> {
    use rayon::prelude::*;
    let folders: std::collections::BTreeSet<&Path> = (rels.iter())
        .flat_map(|rel| rel.ancestors().skip(1))
        .filter(|folder| !folder.as_os_str().is_empty())
        .collect();
    let depth = |folder: &Path| folder.components().count();
    let deepest = folders.iter().map(|f| depth(f)).max().unwrap_or(0);
    // A level at a time, so a folder is made before the folders in it.
    for level in 1..=deepest {
        let these: Vec<&Path> = (folders.iter().copied())
            .filter(|f| depth(f) == level)
            .collect();
        crate::io_threads::on_io_threads(|| {
            (these.par_iter()).try_for_each(|folder| real_folder(&out.join(folder)))
        })?;
    }
    Ok(())
}

/// Makes `dir` a folder, removing a link or file in its place.
fn real_folder(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(dir)
            .with_context(|| format!("removing {}, which is no folder", dir.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("looking at {}", dir.display())),
    }
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Renames `from` onto `to`, holding the file it replaces open meanwhile,
/// so that the replaced file is freed when this thread closes it, not
/// inside the rename: Linux frees it while holding the lock every rename
/// between folders of the file system waits for, and freeing can wait on
/// the disk (a discard per file on one mounted with `discard`). Only a
/// regular file is held; a link or anything else is just replaced.
fn rename_over(from: &Path, to: &Path) -> std::io::Result<()> {
    let replaced = mlld_fsutil::open_regular_no_follow(to).ok();
    std::fs::rename(from, to)?;
    drop(replaced);
    Ok(())
}

/// Moves the loose blobs into the site, first: content-addressed and
/// immutable, so adding them changes nothing a client sees. Every member
/// blob must be this build's or the previous one's. On a site built in
/// place (the previous blobs are the site's own, checked whole when it was
/// read) only this build's move; otherwise every member is looked at, and
/// a missing or torn one is replaced.
fn move_blobs(out: &Path, members: &Members, blobs: &BlobDir) -> Result<()> {
    use rayon::prelude::*;
    // A built manifest names each blob by its digest (`MembersBuilder::add_blob`);
    // only a parsed one may hold a blob path naming another digest.
    debug_assert!(
        (members.other_paths()).all(|p| mlld_schemas::snapshot::blob_digest(p).is_none())
    );
    let all = members.blobs();
    if let Some((digest, _)) = all.par_iter().find_any(|(d, _)| !blobs.has_digest(d)) {
        anyhow::bail!(
            "blob {} is in neither this build nor the previous one",
            hex::encode(digest)
        );
    }
    let moving: Vec<([u8; 32], u64)> = if blobs.builds_in_place(out) {
        let fresh = blobs.fresh_digests().into_iter();
        fresh
            .filter_map(|d| Some((d, members.blob_size(&d)?)))
            .collect()
    } else {
        all.to_vec()
    };
    blob_folders(out, moving.iter().map(|(d, _)| d[0]))?;
    // Each move into a site built before looks up a folder of thousands
    // of blobs: many at once (a new site's folders were just made).
    if blobs.previous_root().is_some() {
        let dests: Vec<PathBuf> = (moving.iter())
            .map(|(d, _)| out.join(blob_path(&hex::encode(d))))
            .collect();
        crate::io_threads::look_up_ahead(&dests);
    }
    crate::io_threads::on_io_threads(|| {
        (moving.par_iter()).try_for_each(|(digest, size)| move_blob(out, blobs, digest, *size))
    })
}

/// Makes `blobs/sha256/` and the folders of the digests starting with
/// `firsts` real directories of the site: a link or file in the place of
/// one is removed, never written through.
fn blob_folders(out: &Path, firsts: impl Iterator<Item = u8>) -> Result<()> {
    let firsts: std::collections::BTreeSet<u8> = firsts.collect();
    let root = out.join(mlld_schemas::snapshot::BLOB_PREFIX);
    let folders = firsts.iter().map(|b| root.join(hex::encode([*b])));
    for dir in [out.join("blobs"), root.clone()].into_iter().chain(folders) {
        real_folder(&dir)?;
    }
    Ok(())
}

/// Puts the blob `digest` of `size` bytes in its place in the site (whose
/// folder [`blob_folders`] made): one fetched by this build is moved there,
/// one of the previous build copied unless the site holds it whole.
fn move_blob(out: &Path, blobs: &BlobDir, digest: &[u8; 32], size: u64) -> Result<()> {
    let hex = hex::encode(digest);
    let path = blob_path(&hex);
    let dest = out.join(&path);
    let src = blobs.require(&hex)?;
    if src == dest {
        return Ok(()); // reused from the previous build in this very site
    }
    if src.starts_with(blobs.root()) {
        // Fetched and hashed by this build: it replaces whatever is there.
        std::fs::rename(&src, &dest).with_context(|| format!("publishing {path}"))?;
    } else if !std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size) {
        // A link in its place is replaced, not followed; so is the copy's
        // own name, made afresh beside it.
        let dir = dest.parent().expect("blob paths have a parent");
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::copy(&mut std::fs::File::open(&src)?, &mut tmp)
            .with_context(|| format!("publishing {path}"))?;
        mlld_fsutil::make_readable(tmp.as_file())?;
        tmp.persist(&dest).map_err(|e| e.error)?;
    }
    Ok(())
}

/// The page's files that sites published separately before `index.html`
/// carried the style and scripts inline: nothing loads them any more.
const RETIRED_PAGE_FILES: [&str; 5] = ["app.js", "page.js", "module.js", "search.js", "style.css"];

/// Removes what the new `latest.json` no longer needs: snapshots past the
/// retention count, pages of modules that left the registry (and dependents
/// buckets of a bucket count no longer used), loose blobs no
/// longer in the manifest, listing shards the entry point no longer names,
/// the uncompressed crawl state of a site built before it was compressed,
/// and the page files a one-request `index.html` no longer loads.
pub fn clean_up(
    out: &Path,
    retired: &[String],
    removed_pages: &[String],
    members: &Members,
) -> Result<()> {
    remove_if_present(&out.join(crawl_state::LEGACY_STATE_SIG_NAME))?;
    remove_if_present(&out.join(crawl_state::LEGACY_STATE_NAME))?;
    for retired in RETIRED_PAGE_FILES {
        remove_if_present(&out.join(retired))?;
    }
    for snapshot in retired {
        remove_if_present(&out.join(snapshot))?;
    }
    for page in removed_pages {
        match crate::site_data::bucket_file(page) {
            Some(bucket) => {
                let file = out.join(bucket);
                remove_if_present(&file)?;
                // The last bucket of a count no longer used takes its folder along.
                let _ = std::fs::remove_dir(file.parent().expect("a bucket is in a folder"));
            }
            None => {
                remove_if_present(&out.join(format!("modules/{page}.json")))?;
                remove_if_present(&out.join(format!("modules/{page}.js")))?;
            }
        }
    }
    remove_stray_blobs(out, members)?;
    let entry_point = std::fs::read_to_string(out.join("data/site.js")).unwrap_or_default();
    for entry in walkdir::WalkDir::new(out.join("data"))
        .min_depth(1)
        .max_depth(1)
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy();
        let page_data = name.starts_with("listing-") || name.starts_with("search-");
        if page_data && !entry_point.contains(name.as_ref()) {
            remove_if_present(entry.path())?;
        }
    }
    Ok(())
}

/// Removes every loose blob (a file at `blobs/*/*/…`, at any depth below)
/// that no member names; links are neither followed nor removed. A
/// million of them: the prefix folders are listed in parallel, and a file
/// is judged by its name as the listing gives it (a digest looked up by
/// its bytes), without its path being made.
fn remove_stray_blobs(out: &Path, members: &Members) -> Result<()> {
    use rayon::prelude::*;
    let prefixes = walkdir::WalkDir::new(out.join("blobs"))
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    (prefixes.par_iter())
        .filter(|prefix| prefix.file_type().is_dir())
        .try_for_each(|prefix| {
            let first = blob_folder_byte(out, prefix.path());
            let listing = std::fs::read_dir(prefix.path())
                .with_context(|| format!("listing {}", prefix.path().display()))?;
            for entry in listing {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    remove_files_below(&entry.path())?;
                } else if kind.is_file() {
                    let digest = first.and_then(|first| blob_digest_in(first, &entry.file_name()));
                    if !digest.is_some_and(|d| members.has_blob(&d)) {
                        remove_if_present(&entry.path())?;
                    }
                }
            }
            Ok(())
        })
}

/// The digest's first byte that the folder `dir` holds blobs of, when it
/// is `out/blobs/sha256/<2 hex>` (any other folder holds no member).
fn blob_folder_byte(out: &Path, dir: &Path) -> Option<u8> {
    let rel = dir.strip_prefix(out).ok()?.to_str()?;
    let hex = rel.strip_prefix(mlld_schemas::snapshot::BLOB_PREFIX)?;
    let mut byte = [0; 1];
    crate::blobs::decode_lower_hex(hex.as_bytes(), &mut byte).then_some(byte[0])
}

/// The digest a file named `name` in the folder of `first` stands for.
fn blob_digest_in(first: u8, name: &std::ffi::OsStr) -> Option<[u8; 32]> {
    let mut digest = [first; 32];
    crate::blobs::decode_lower_hex(name.as_encoded_bytes(), &mut digest[1..]).then_some(digest)
}

/// Removes every file below `dir` (no blob is that deep); links stay.
fn remove_files_below(dir: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(dir).follow_root_links(false) {
        let entry = entry?;
        if entry.file_type().is_file() {
            remove_if_present(entry.path())?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MembersBuilder;

    fn write(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rel).unwrap();
    }

    /// Staged site files replace what the site holds at their paths: a
    /// page, a link (replaced, never written through; nor a linked
    /// folder), a file where a folder goes, and a FIFO (not
    /// waited on when the replaced file is opened, then replaced); the
    /// entry files come last.
    #[cfg(unix)]
    #[test]
    fn site_files_replace_pages_links_and_fifos_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (out, staged) = (dir.path().join("site"), dir.path().join("staged"));
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "not the site's").unwrap();
        let pages = [
            "modules/a/page.js",
            "modules/b/link.js",
            "modules/c/fifo.js",
            "modules/d/in-linked-folder.js",
            "modules/e/in-file-named-as-folder.js",
            "data/new.js",
            "data/site.js",
            "index.html",
        ];
        for rel in pages {
            write(&staged, rel);
        }
        // A user's folder that is a link out of the site, one that is a file.
        let outside_folder = dir.path().join("outside");
        std::fs::create_dir_all(&outside_folder).unwrap();
        std::fs::create_dir_all(out.join("modules")).unwrap();
        std::os::unix::fs::symlink(&outside_folder, out.join("modules/d")).unwrap();
        std::fs::write(out.join("modules/e"), "a file").unwrap();
        write(&out, "modules/a/page.js.old");
        std::fs::rename(
            out.join("modules/a/page.js.old"),
            out.join("modules/a/page.js"),
        )
        .unwrap();
        std::fs::create_dir_all(out.join("modules/b")).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("modules/b/link.js")).unwrap();
        std::fs::create_dir_all(out.join("modules/c")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(out.join("modules/c/fifo.js"))
            .status()
            .unwrap();
        assert!(made.success());

        let (tx, rx) = std::sync::mpsc::channel();
        let (o, st) = (out.clone(), staged.clone());
        std::thread::spawn(move || {
            tx.send(move_site_files(&o, &st, true).map_err(|e| e.to_string()))
        });
        let moved = rx.recv_timeout(std::time::Duration::from_secs(20));
        moved
            .expect("a FIFO in the site does not hang publishing")
            .unwrap();

        for rel in pages {
            let path = out.join(rel);
            assert!(std::fs::symlink_metadata(&path).unwrap().is_file(), "{rel}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), rel);
            assert!(!staged.join(rel).exists(), "{rel} was moved, not copied");
        }
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not the site's");
        assert_eq!(std::fs::read_dir(&outside_folder).unwrap().count(), 0);
        assert!(
            std::fs::symlink_metadata(out.join("modules/d"))
                .unwrap()
                .is_dir()
        );
    }

    #[cfg(unix)]
    #[test]
    fn stray_blobs_go_at_any_depth_and_members_and_links_stay() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("site");
        let kept = "ab".repeat(32);
        let mut members = MembersBuilder::default();
        members.add_blob(&kept, 1);
        let members = members.finish();
        let stray = blob_path(&"cd".repeat(32));
        for rel in [
            blob_path(&kept),
            stray.clone(),
            "blobs/sha256/ee/deeper/file".into(),
            "blobs/sha256/ab/leftover.tmp".into(),
            "blobs/top-level".into(),
        ] {
            write(&out, &rel);
        }
        // A linked prefix folder is not walked into: what it leads to stays.
        let elsewhere = dir.path().join("elsewhere");
        write(&elsewhere, "precious");
        std::os::unix::fs::symlink(&elsewhere, out.join("blobs/sha256/ff")).unwrap();

        remove_stray_blobs(&out, &members).unwrap();
        assert!(out.join(blob_path(&kept)).is_file());
        assert!(
            out.join("blobs/top-level").is_file(),
            "above the prefix folders"
        );
        for gone in [
            stray.as_str(),
            "blobs/sha256/ee/deeper/file",
            "blobs/sha256/ab/leftover.tmp",
        ] {
            assert!(!out.join(gone).exists(), "{gone} stayed");
        }
        assert!(elsewhere.join("precious").is_file());
        assert!(out.join("blobs/sha256/ff").is_symlink());
    }

    /// Pages of modules that left go with their legacy copies; buckets of
    /// a bucket count no longer used go with their folder.
    #[test]
    fn removed_pages_and_buckets_go_after_the_flip() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("site");
        let files = [
            "modules/ann/gone.js",
            "modules/ann/gone.json",
            "modules/ann/kept.js",
            "data/dependents/0/0.js",
            "data/dependents/1/0.js",
            "data/dependents/1/1.js",
        ];
        for rel in files {
            write(&out, rel);
        }
        std::fs::create_dir_all(out.join("blobs/sha256")).unwrap();
        let removed = ["ann/gone".to_string(), "#dependents/0/0".to_string()];
        clean_up(&out, &[], &removed, &MembersBuilder::default().finish()).unwrap();
        let left: Vec<&str> = (files.into_iter())
            .filter(|rel| out.join(rel).exists())
            .collect();
        assert_eq!(
            left,
            [
                "modules/ann/kept.js",
                "data/dependents/1/0.js",
                "data/dependents/1/1.js"
            ]
        );
        assert!(!out.join("data/dependents/0").exists());
    }

    #[test]
    fn blobs_move_into_the_site_and_a_torn_copy_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (root, previous, out) = (
            dir.path().join("new"),
            dir.path().join("old"),
            dir.path().join("site"),
        );
        let blobs = BlobDir::new(&root, Some(previous.clone()));
        let fresh = blobs.put(b"fetched this build").unwrap();
        let old = mlld_schemas::sha256_hex(b"from the previous build");
        let old_path = previous.join(blob_path(&old));
        std::fs::create_dir_all(old_path.parent().unwrap()).unwrap();
        std::fs::write(old_path, b"from the previous build").unwrap();
        // A torn copy (another size) already in the site is replaced whole.
        write(&out, &blob_path(&old));
        let mut members = MembersBuilder::default();
        members.add_blob(&fresh, 18);
        members.add_blob(&old, 23);
        move_blobs(&out, &members.finish(), &blobs).unwrap();
        let read = |hex: &str| std::fs::read(out.join(blob_path(hex))).unwrap();
        assert_eq!(read(&fresh), b"fetched this build");
        assert_eq!(read(&old), b"from the previous build");
        assert!(!root.join(blob_path(&fresh)).exists(), "moved, not copied");
    }

    #[test]
    fn blobs_built_on_the_site_itself_move_when_fetched_and_none_may_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (root, out) = (dir.path().join("new"), dir.path().join("site"));
        let old = mlld_schemas::sha256_hex(b"from the previous build");
        write(&out, &blob_path(&old));
        let blobs = BlobDir::new(&root, Some(out.clone()))
            .with_previous_digests([hex_digest(&old)].into_iter().collect());
        let fresh = blobs.put(b"fetched this build").unwrap();
        let unlisted = blobs.put(b"fetched, then rejected").unwrap();
        // The fresh blob's folder is a link to somewhere else: replaced, not written through.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let folder = out.join(blob_path(&fresh));
        let folder = folder.parent().unwrap();
        std::fs::create_dir_all(folder.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, folder).unwrap();
        let mut members = MembersBuilder::default();
        members.add_blob(&fresh, 18);
        members.add_blob(&old, 23);
        move_blobs(&out, &members.finish(), &blobs).unwrap();
        let read = |hex: &str| std::fs::read(out.join(blob_path(hex))).unwrap();
        assert_eq!(read(&fresh), b"fetched this build");
        assert_eq!(read(&old), blob_path(&old).as_bytes(), "left as it was");
        assert!(!folder.is_symlink());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(
            !out.join(blob_path(&unlisted)).exists(),
            "no member names it"
        );

        // A member blob that neither build holds stops publishing.
        let mut members = MembersBuilder::default();
        members.add_blob(&mlld_schemas::sha256_hex(b"nowhere"), 7);
        let err = move_blobs(&out, &members.finish(), &blobs).unwrap_err();
        assert!(err.to_string().contains("in neither this build"), "{err}");
    }

    fn hex_digest(hex: &str) -> [u8; 32] {
        let mut digest = [0; 32];
        hex::decode_to_slice(hex, &mut digest).unwrap();
        digest
    }
}
