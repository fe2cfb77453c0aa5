//! The sparse layout of the site (`mlld_schemas::sparse`): the manifest's
//! records split into content-addressed shard files and a root listing
//! their digests, which the signed `latest.json` names. A shard whose
//! records did not change keeps its bytes and so its file: a client that
//! holds it fetches nothing for it next time.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::Manifest;
use mlld_schemas::shard;
use mlld_schemas::snapshot::SiteFile;
use mlld_schemas::sparse::{self, SPARSE_FORMAT, SiteShard, SparseRoot};
use rayon::prelude::*;

/// Writes the shards the site lacks and the root into `staged_site` (moved
/// into the site before `latest.json`); returns the root and its entry
/// for `latest.json`. `site` is the published site, whose unchanged shards are
/// not written again.
pub fn write(
    staged_site: &Path,
    site: &Path,
    manifest: &Manifest,
    snapshot_sha256: &str,
) -> Result<(SiteFile, SparseRoot)> {
    let bits = sparse::site_bits(manifest.modules.len() + manifest.versioned.len());
    let split = shard::split(
        manifest.modules.iter().cloned(),
        manifest.versioned.iter().cloned(),
        &manifest.advisories,
        manifest.rejected.iter().cloned(),
        bits,
    );
    let shards_dir = staged_site.join("sparse/shards");
    std::fs::create_dir_all(&shards_dir)?;
    let written: Vec<(String, u64)> = split
        .into_par_iter()
        .enumerate()
        .map(|(n, records)| write_shard(staged_site, site, n as u32, bits, records))
        .collect::<Result<_>>()?;
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
        max_shard_size: written.iter().map(|(_, size)| *size).max().unwrap_or(0),
        shards: written.into_iter().map(|(sha, _)| sha).collect(),
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

/// One shard file, unless the site already has it; its digest and size.
fn write_shard(
    staged_site: &Path,
    site: &Path,
    n: u32,
    bits: u32,
    records: shard::Shard,
) -> Result<(String, u64)> {
    let file = SiteShard {
        format_version: SPARSE_FORMAT,
        shard: n,
        shard_bits: bits,
        records,
    };
    let bytes = mlld_site_contract::sparse::encode_shard(&file)?;
    let sha256 = mlld_schemas::sha256_hex(&bytes);
    let path = sparse::shard_path(&sha256);
    let size = bytes.len() as u64;
    if std::fs::metadata(site.join(&path)).is_ok_and(|m| m.len() == size) {
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
