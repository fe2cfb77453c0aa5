//! The sparse layout of the site (`mlld_schemas::sparse`): the manifest's
//! records split into content-addressed shard files and a root listing
//! their digests, which the signed `latest.json` names. A shard whose
//! records did not change keeps its bytes and so its file: a client that
//! holds it fetches nothing for it next time.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::SiteFile;
use mlld_schemas::sparse::{self, SPARSE_FORMAT, SparseRoot};
use rayon::prelude::*;

use crate::staged_manifest::StagedManifest;
use previous_shards::PreviousShards;

mod compose;
mod previous_shards;

/// Writes the shards the site lacks and the root into `staged_site` (moved
/// into the site before `latest.json`); returns the root and its entry
/// for `latest.json`. `site` is the published site, whose unchanged shards are
/// not written again, nor compressed again when `previous_root` (the
/// previous `latest.json`'s entry) names them. (The build writes the two
/// apart, [`write_shards`] while the snapshot is packed, then [`write_root`].)
#[cfg(test)]
pub fn write(
    staged_site: &Path,
    (site, previous_root): (&Path, Option<&SiteFile>),
    manifest: &StagedManifest,
    snapshot_sha256: &str,
) -> Result<(SiteFile, SparseRoot)> {
    let shards = write_shards(staged_site, (site, previous_root), manifest)?;
    write_root(staged_site, manifest, shards, snapshot_sha256)
}

/// Writes the shards the site lacks into `staged_site` (see [`write_root`]
/// for the root); `site` is the published site, whose unchanged shards are
/// not written again. Shards need nothing of the snapshot: the build
/// writes them while it is packed. Their digests and sizes, in order, for
/// [`write_root`].
pub fn write_shards(
    staged_site: &Path,
    (site, previous_root): (&Path, Option<&SiteFile>),
    manifest: &StagedManifest,
) -> Result<Vec<(String, u64)>> {
    write_shards_in_batches(staged_site, (site, previous_root), manifest, BATCH_SHARDS)
}

/// [`write_shards`], building `batch` shards at a time.
fn write_shards_in_batches(
    staged_site: &Path,
    (site, previous_root): (&Path, Option<&SiteFile>),
    manifest: &StagedManifest,
    batch: usize,
) -> Result<Vec<(String, u64)>> {
    let previous = PreviousShards::read(site, previous_root);
    let bits = sparse::site_bits(manifest.modules.len() + manifest.versioned.len());
    let shards_dir = staged_site.join("sparse/shards");
    std::fs::create_dir_all(&shards_dir)?;
    let mut written: Vec<(String, u64)> = Vec::with_capacity(1 << bits);
    let mut batches = compose::json_in_batches(manifest, bits, batch)?;
    let mut next = batches.next();
    // A batch is composed while the one before it is compressed and
    // written (two batches' JSON in memory at once): one after the other,
    // a core idled through much of each composition, which is mostly one
    // thread's work.
    while let Some(composed) = next {
        let (first, shards) = composed?;
        let write = || -> Result<Vec<(String, u64)>> {
            (shards.into_par_iter().enumerate())
                .map(|(i, json)| {
                    let n = first + i as u32;
                    write_shard((staged_site, site), previous.as_ref(), (n, bits), &json)
                })
                .collect()
        };
        let (batch, following) = rayon::join(write, || batches.next());
        written.extend(batch?);
        next = following;
    }
    Ok(written)
}

/// The signed root's content for `shards` (as [`write_shards`] wrote
/// them), naming the snapshot `snapshot_sha256`, staged under its digest.
pub fn write_root(
    staged_site: &Path,
    manifest: &StagedManifest,
    shards: Vec<(String, u64)>,
    snapshot_sha256: &str,
) -> Result<(SiteFile, SparseRoot)> {
    let bits = sparse::site_bits(manifest.modules.len() + manifest.versioned.len());
    let root = SparseRoot {
        format_version: SPARSE_FORMAT,
        serial: manifest.serial,
        created: manifest.created.clone(),
        expires: manifest.expires.clone(),
        snapshot: snapshot_sha256.to_string(),
        modules: manifest.modules.len(),
        versioned: manifest.versioned.len(),
        advisories: manifest.advisories.len(),
        shard_bits: bits,
        max_shard_size: shards.iter().map(|(_, size)| *size).max().unwrap_or(0),
        shards: shards.into_iter().map(|(sha, _)| sha).collect(),
    };
    let mut bytes = serde_json::to_vec(&root)?;
    bytes.push(b'\n');
    let sha256 = mlld_schemas::sha256_hex(&bytes);
    let path = sparse::root_path(&sha256);
    mlld_fsutil::write_atomic(&staged_site.join(&path), &bytes)
        .with_context(|| format!("writing {path}"))?;
    let file = SiteFile {
        path,
        sha256,
        size: bytes.len() as u64,
    };
    Ok((file, root))
}

/// Shards built at once: each batch reads the records of its own shards
/// only (at a million modules, 256 of 8,192 shards: some 30,000 records).
const BATCH_SHARDS: usize = 256;

/// Shard `n`'s file, unless the site already has it; its digest and size.
/// A shard whose JSON equals the previous build's keeps that file without
/// being compressed again.
fn write_shard(
    (staged_site, site): (&Path, &Path),
    previous: Option<&PreviousShards>,
    (n, bits): (u32, u32),
    json: &[u8],
) -> Result<(String, u64)> {
    if let Some(kept) = previous.and_then(|p| p.unchanged(n, bits, json)) {
        return Ok(kept);
    }
    let bytes = mlld_site_contract::sparse::compress_shard_json(json)?;
    let sha256 = mlld_schemas::sha256_hex(&bytes);
    let path = sparse::shard_path(&sha256);
    let size = bytes.len() as u64;
    // Kept only when the site's file is these very bytes: a torn file of
    // the right size would be named by the root and fail every client.
    let present = mlld_fsutil::read_regular_within(site, &site.join(&path), size);
    if present.is_ok_and(|b| b == bytes) {
        return Ok((sha256, size));
    }
    std::fs::write(staged_site.join(&path), &bytes).with_context(|| format!("writing {path}"))?;
    Ok((sha256, size))
}

/// Removes roots other than the current one and the previous one, and
/// shard files neither names (a client still reading the previous build
/// finds its shards until the next one).
pub fn clean_up(site: &Path, current: (&str, &SparseRoot), previous: Option<&str>) -> Result<()> {
    let dir = site.join("sparse");
    if !dir.is_dir() {
        return Ok(());
    }
    let previous_root = previous
        .and_then(|path| std::fs::read(site.join(path)).ok())
        .and_then(|bytes| serde_json::from_slice::<SparseRoot>(&bytes).ok());
    let wanted: BTreeSet<&str> = current
        .1
        .shards
        .iter()
        .chain(previous_root.iter().flat_map(|r| &r.shards))
        .map(String::as_str)
        .collect();
    let keep_roots = [Some(current.0), previous_root.as_ref().and(previous)];
    for entry in walkdir::WalkDir::new(&dir).min_depth(1).max_depth(2) {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(site)
            .expect("walked below the site")
            .to_string_lossy()
            .into_owned();
        let stale = match (sparse::root_digest(&rel), sparse::shard_digest(&rel)) {
            (Some(_), _) => !keep_roots.contains(&Some(rel.as_str())),
            (_, Some(sha)) => !wanted.contains(sha),
            _ => false,
        };
        if stale {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site_data::test_support::{empty_manifest, module, staged};
    use mlld_schemas::Manifest;
    use mlld_schemas::shard;
    use mlld_schemas::snapshot::{AdvisoryRecord, RejectedRecord};
    use mlld_schemas::sparse::SiteShard;

    /// `n` modules, each depending on two others, most of them in other
    /// shards; an advisory, a rejection and two versioned modules.
    fn manifest(n: usize) -> Manifest {
        let mut manifest = empty_manifest();
        manifest.modules = (0..n)
            .map(|i| {
                let deps = [
                    format!("u{}/m{}", (i * 7) % n, (i * 7) % n),
                    format!("U{}/m{}", (i + 1) % n, (i + 1) % n),
                ];
                module(&format!("u{i}"), &format!("m{i}"), "sha256:00", &deps)
            })
            .collect();
        manifest.advisories = serde_json::from_value::<Vec<AdvisoryRecord>>(serde_json::json!([
            { "user": "u5", "id": "1", "created": "2024-01-01T00:00:00Z", "severity": "high",
              "affects": ["m5"], "gists": ["g-u9-m9"], "type": "rce", "description": "d", "recommendation": "r" }
        ]))
        .unwrap();
        manifest.rejected = vec![RejectedRecord {
            module: "u7/gone".into(),
            version: None,
            reason: "no module file".into(),
        }];
        manifest.versioned = serde_json::from_value(serde_json::json!([
            { "author": "alice", "name": "kit", "versions": [], "tags": {} },
            { "author": "bob", "name": "m3", "versions": [], "tags": {} }
        ]))
        .unwrap();
        manifest
    }

    fn whole_split(manifest: &Manifest, bits: u32) -> Vec<shard::Shard> {
        shard::split(
            manifest.modules.iter().cloned(),
            manifest.versioned.iter().cloned(),
            &manifest.advisories,
            manifest.rejected.iter().cloned(),
            bits,
        )
    }

    #[test]
    fn batches_give_the_json_of_the_whole_split() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(300);
        let staged = staged(&manifest, &dir.path().join("records"));
        let bits = 4;
        let whole: Vec<Vec<u8>> = whole_shard_files(&manifest, bits)
            .map(|file| mlld_site_contract::sparse::shard_json(&file).unwrap())
            .collect();
        for batch in [1, 3, 16, 64] {
            let batched: Vec<Vec<u8>> = compose::json_in_batches(&staged, bits, batch)
                .unwrap()
                .flat_map(|composed| {
                    let (first, shards) = composed.unwrap();
                    assert_eq!(first as usize % batch, 0);
                    shards
                })
                .collect();
            assert!(
                batched == whole,
                "batches of {batch} differ from the whole split"
            );
        }
        let split = whole_split(&manifest, bits);
        assert!(
            split
                .iter()
                .any(|s| !s.dependents.is_empty() && !s.advisories.is_empty())
        );
        assert!(split.iter().any(|s| !s.rejected.is_empty()));
        assert!(split.iter().any(|s| !s.versioned.is_empty()));
    }

    /// Every file under `dir`, by relative path.
    fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        (walkdir::WalkDir::new(dir).into_iter())
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(dir).unwrap();
                (
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    /// The shard files of the whole split, before compression.
    fn whole_shard_files(manifest: &Manifest, bits: u32) -> impl Iterator<Item = SiteShard> {
        let split = whole_split(manifest, bits).into_iter().enumerate();
        split.map(move |(n, records)| SiteShard {
            format_version: SPARSE_FORMAT,
            shard: n as u32,
            shard_bits: bits,
            records,
        })
    }

    #[test]
    fn the_written_shards_and_root_are_the_whole_splits() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(3_000);
        let staged = staged(&manifest, &dir.path().join("records"));
        let bits = sparse::site_bits(3_002);
        assert_eq!(bits, 5);
        // The shard files the whole manifest in memory gives.
        let mut want = std::collections::BTreeMap::new();
        let mut shas = Vec::new();
        for file in whole_shard_files(&manifest, bits) {
            assert!(!file.records.modules.is_empty() && !file.records.dependents.is_empty());
            let bytes = mlld_site_contract::sparse::encode_shard(&file).unwrap();
            let sha = mlld_schemas::sha256_hex(&bytes);
            want.insert(sparse::shard_path(&sha), bytes);
            shas.push(sha);
        }
        let empty_site = dir.path().join("site");
        let mut roots = Vec::new();
        for batch in [3, BATCH_SHARDS] {
            let out = dir.path().join(format!("staged-{batch}"));
            let shards =
                write_shards_in_batches(&out, (&empty_site, None), &staged, batch).unwrap();
            let (file, root) = write_root(&out, &staged, shards, "ab").unwrap();
            assert_eq!(root.shards, shas);
            assert_eq!(
                (root.modules, root.versioned, root.shard_bits),
                (3_000, 2, bits)
            );
            let mut got = files_under(&out);
            let root_bytes = got.remove(&file.path).unwrap();
            assert_eq!(
                root_bytes,
                [serde_json::to_vec(&root).unwrap(), b"\n".to_vec()].concat()
            );
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            assert!(got == want, "batches of {batch}: the shard files differ");
            roots.push(file);
        }
        assert_eq!(roots[0], roots[1]);
        // A site holding every shard gets none written again.
        let out = dir.path().join("again");
        let (file, _) = write(&out, (&dir.path().join("staged-3"), None), &staged, "ab").unwrap();
        assert_eq!(file, roots[0]);
        assert_eq!(files_under(&out).len(), 1);
    }

    /// A previous site whose shard files hold `manifest`'s shards
    /// compressed at level 1 (so their digests differ from a fresh
    /// build's), and its root's entry.
    fn previous_site(site: &Path, manifest: &Manifest, bits: u32) -> SiteFile {
        let mut shards = Vec::new();
        for file in whole_shard_files(manifest, bits) {
            let json = mlld_site_contract::sparse::shard_json(&file).unwrap();
            let bytes = zstd::bulk::compress(&json, 1).unwrap();
            let sha = mlld_schemas::sha256_hex(&bytes);
            let path = site.join(sparse::shard_path(&sha));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &bytes).unwrap();
            shards.push(sha);
        }
        let root = SparseRoot {
            format_version: SPARSE_FORMAT,
            serial: 1,
            created: String::new(),
            expires: String::new(),
            snapshot: "ab".repeat(32),
            modules: manifest.modules.len(),
            versioned: manifest.versioned.len(),
            advisories: manifest.advisories.len(),
            shard_bits: bits,
            max_shard_size: 1 << 20,
            shards,
        };
        let bytes = serde_json::to_vec(&root).unwrap();
        let sha256 = mlld_schemas::sha256_hex(&bytes);
        let path = sparse::root_path(&sha256);
        std::fs::create_dir_all(site.join(&path).parent().unwrap()).unwrap();
        std::fs::write(site.join(&path), &bytes).unwrap();
        SiteFile {
            path,
            sha256,
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn an_unchanged_shard_keeps_the_previous_file_and_a_changed_or_damaged_one_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let old = manifest(300);
        let bits = sparse::site_bits(302);
        let site = dir.path().join("site");
        let previous_root = previous_site(&site, &old, bits);
        let previous: SparseRoot =
            serde_json::from_slice(&std::fs::read(site.join(&previous_root.path)).unwrap())
                .unwrap();

        // The same records: every shard is the previous file, none written.
        let same = staged(&old, &dir.path().join("records-old"));
        let out = dir.path().join("same");
        let (_, root) = write(&out, (&site, Some(&previous_root)), &same, "ab").unwrap();
        assert_eq!(root.shards, previous.shards);
        assert_eq!(files_under(&out).len(), 1, "only the root");

        // One module's description changed: its shard alone is new.
        let mut new = old.clone();
        new.modules[7].description = "changed".into();
        let changed = compose::shard_of(&new.modules[7].user, &new.modules[7].name, bits) as usize;
        let changed_manifest = staged(&new, &dir.path().join("records-new"));
        let out = dir.path().join("changed");
        let (_, root) =
            write(&out, (&site, Some(&previous_root)), &changed_manifest, "ab").unwrap();
        for (n, (now, before)) in root.shards.iter().zip(&previous.shards).enumerate() {
            assert_eq!(now == before, n != changed, "shard {n}");
        }
        assert_eq!(files_under(&out).len(), 2, "the root and the changed shard");

        // A previous file damaged on disk is not reused, though its JSON is right.
        let damaged = site.join(sparse::shard_path(&previous.shards[0]));
        let mut bytes = std::fs::read(&damaged).unwrap();
        let json = zstd::decode_all(&bytes[..]).unwrap();
        bytes = zstd::bulk::compress(&json, 2).unwrap();
        std::fs::write(&damaged, &bytes).unwrap();
        let again = staged(&old, &dir.path().join("records-again"));
        let out = dir.path().join("damaged");
        let (_, root) = write(&out, (&site, Some(&previous_root)), &again, "ab").unwrap();
        assert_ne!(root.shards[0], previous.shards[0]);
        assert_eq!(root.shards[1..], previous.shards[1..]);
    }
}
