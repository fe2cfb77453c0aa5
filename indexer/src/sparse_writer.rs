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
    let shards_dir = staged_site.join("sparse/shards");
    std::fs::create_dir_all(&shards_dir)?;
    let mut written: Vec<(String, u64)> = Vec::with_capacity(1 << bits);
    for (first, shards) in split_in_batches(manifest, bits, BATCH_SHARDS) {
        let batch: Vec<(String, u64)> = shards
            .into_par_iter()
            .enumerate()
            .map(|(i, records)| write_shard(staged_site, site, first + i as u32, bits, records))
            .collect::<Result<_>>()?;
        written.extend(batch);
    }
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

/// Shards built at once: each batch copies the records of its own shards
/// only (splitting the whole manifest would copy every record in it).
const BATCH_SHARDS: usize = 256;

/// The manifest's shards ([`shard::split`]), `batch` at a time, each batch
/// with the number of its first shard. A batch is split from copies of its
/// own records plus the records of modules depending on one of its names
/// (for its `dependents`); their shards outside the batch are dropped.
fn split_in_batches(
    manifest: &Manifest,
    bits: u32,
    batch: usize,
) -> impl Iterator<Item = (u32, Vec<shard::Shard>)> + '_ {
    let of = move |user: &str, name: &str| shard::shard_of(&shard::shard_key(user, name), bits);
    let modules: Vec<u32> = (manifest.modules.par_iter())
        .map(|m| of(&m.user, &m.name))
        .collect();
    let versioned: Vec<u32> = (manifest.versioned.par_iter())
        .map(|v| of(&v.author, &v.name))
        .collect();
    // Shard → the modules depending on one of its names.
    let mut dependents: Vec<Vec<u32>> = vec![Vec::new(); 1 << bits];
    for (i, m) in manifest.modules.iter().enumerate() {
        for dep in &m.current.dependencies {
            if let Some((user, name)) = dep.split_once('/') {
                dependents[of(user, name) as usize].push(i as u32);
            }
        }
    }
    let count = 1usize << bits;
    (0..count).step_by(batch.max(1)).map(move |first| {
        let last = (first + batch.max(1)).min(count);
        let inside = |s: u32| (first..last).contains(&(s as usize));
        let mut picked: Vec<u32> = (dependents[first..last].iter().flatten().copied()).collect();
        picked.extend((0..modules.len() as u32).filter(|&i| inside(modules[i as usize])));
        picked.sort_unstable();
        picked.dedup();
        let rejected = manifest.rejected.iter().filter(|r| {
            r.user_and_name()
                .is_some_and(|(user, name)| inside(of(user, name)))
        });
        let mut shards = shard::split(
            picked.iter().map(|&i| manifest.modules[i as usize].clone()),
            (manifest.versioned.iter().zip(&versioned))
                .filter(|&(_, &s)| inside(s))
                .map(|(v, _)| v.clone()),
            &manifest.advisories,
            rejected.cloned(),
            bits,
        );
        shards.truncate(last);
        (first as u32, shards.split_off(first))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::snapshot::{AdvisoryRecord, ModuleRecord, RejectedRecord};

    fn module(user: &str, name: &str, deps: &[String]) -> ModuleRecord {
        serde_json::from_value(serde_json::json!({
            "user": user, "name": name, "gist": format!("g-{user}-{name}"), "description": "",
            "tags": [], "revision": "a".repeat(40), "file": "m.mld", "integrity": "sha256:00",
            "size": 1, "files": [], "dependencies": deps
        }))
        .unwrap()
    }

    #[test]
    fn batches_give_the_shards_of_the_whole_split() {
        let mut manifest: Manifest = serde_json::from_value(serde_json::json!({
            "formatVersion": 1, "serial": 1, "created": "2024-01-01T00:00:00Z",
            "expires": "2024-01-15T00:00:00Z", "modules": [], "advisories": [], "members": {}
        }))
        .unwrap();
        // Every module depends on two others, most of them in other shards.
        manifest.modules = (0..300)
            .map(|i| {
                let deps = [
                    format!("u{}/m{}", (i * 7) % 300, (i * 7) % 300),
                    format!("U{}/m{}", (i + 1) % 300, (i + 1) % 300),
                ];
                module(&format!("u{i}"), &format!("m{i}"), &deps)
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
        let bits = 4;
        let whole = shard::split(
            manifest.modules.iter().cloned(),
            manifest.versioned.iter().cloned(),
            &manifest.advisories,
            manifest.rejected.iter().cloned(),
            bits,
        );
        for batch in [1, 3, 16, 64] {
            let batched: Vec<shard::Shard> = split_in_batches(&manifest, bits, batch)
                .flat_map(|(first, shards)| {
                    assert_eq!(first as usize % batch, 0);
                    shards
                })
                .collect();
            assert!(
                batched == whole,
                "batches of {batch} differ from the whole split"
            );
        }
        assert!(
            whole
                .iter()
                .any(|s| !s.dependents.is_empty() && !s.advisories.is_empty())
        );
    }
}
