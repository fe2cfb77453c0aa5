//! The shards' JSON, a batch of shards at a time, composed from the spill's
//! lines: a record is read for its names ([`RecordHead`]) and copied as
//! spelled, never decoded whole or encoded again. The result is the JSON
//! of [`shard::split`]'s shards, byte for byte (tested in `sparse_writer`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use mlld_schemas::shard::{self, Affected};
use mlld_site_contract::sparse::{ShardParts, composed_shard_json};
use rayon::prelude::*;

use crate::record_spill::RecordHead;
use crate::staged_manifest::StagedManifest;

/// Where the gist modules fall: each one's shard, and for each shard the
/// modules depending on one of its names (positions in the spill).
struct ShardTable {
    modules: Vec<u32>,
    dependents: Vec<Vec<u32>>,
}

impl ShardTable {
    fn new(manifest: &StagedManifest, bits: u32) -> Result<Self> {
        // Only the names are needed: the records are not decoded whole.
        let placed = manifest.modules.par_map_lines(|_, line| {
            let m = RecordHead::of(line)?;
            let deps: Vec<u32> = (m.dependencies.iter())
                .filter_map(|dep| dep.split_once('/'))
                .map(|(user, name)| shard_of(user, name, bits))
                .collect();
            Ok((shard_of(&m.user, &m.name, bits), deps))
        })?;
        let mut dependents: Vec<Vec<u32>> = vec![Vec::new(); 1 << bits];
        let mut modules = Vec::with_capacity(placed.len());
        for (i, (shard, deps)) in placed.into_iter().enumerate() {
            let i = u32::try_from(i).context("more than 2^32 modules in the manifest")?;
            for dep in deps {
                dependents[dep as usize].push(i);
            }
            modules.push(shard);
        }
        Ok(Self {
            modules,
            dependents,
        })
    }
}

pub(super) fn shard_of(user: &str, name: &str, bits: u32) -> u32 {
    shard::shard_of(&shard::shard_key(user, name), bits)
}

/// The manifest's shards' JSON, `batch` shards at a time, each batch with
/// the number of its first shard. A batch reads the lines of its own
/// modules and of the modules depending on one of its names (for its
/// `dependents`).
pub(super) fn json_in_batches(
    manifest: &StagedManifest,
    bits: u32,
    batch: usize,
) -> Result<impl Iterator<Item = Result<(u32, Vec<Vec<u8>>)>> + '_> {
    let table = ShardTable::new(manifest, bits)?;
    let versioned: Vec<u32> = (manifest.versioned.par_iter())
        .map(|v| shard_of(&v.author, &v.name, bits))
        .collect();
    let affected = Affected::new(&manifest.advisories);
    let count = 1usize << bits;
    let batch = batch.max(1);
    Ok((0..count).step_by(batch).map(move |first| {
        let shards = first..(first + batch).min(count);
        let json = Batch {
            manifest,
            table: &table,
            versioned: &versioned,
            affected: &affected,
            bits,
            shards,
        }
        .json()?;
        Ok((first as u32, json))
    }))
}

/// One batch of consecutive shards.
struct Batch<'a> {
    manifest: &'a StagedManifest,
    table: &'a ShardTable,
    versioned: &'a [u32],
    affected: &'a Affected<'a>,
    bits: u32,
    shards: std::ops::Range<usize>,
}

impl Batch<'_> {
    fn inside(&self, shard: u32) -> bool {
        self.shards.contains(&(shard as usize))
    }

    /// Each shard's JSON, in order.
    fn json(&self) -> Result<Vec<Vec<u8>>> {
        let table = self.table;
        let mut picked: Vec<u32> = (table.dependents[self.shards.clone()]
            .iter()
            .flatten()
            .copied())
        .collect();
        let own =
            (0..table.modules.len() as u32).filter(|&i| self.inside(table.modules[i as usize]));
        picked.extend(own);
        picked.sort_unstable();
        picked.dedup();
        let lines = self.manifest.modules.select_lines(&picked)?;
        let heads: Vec<RecordHead<'_>> = (lines.par_iter())
            .map(|line| RecordHead::of(line))
            .collect::<Result<_>>()?;
        let mut parts: Vec<ShardParts<'_>> =
            self.shards.clone().map(|_| ShardParts::default()).collect();
        let mut advisories: Vec<Vec<usize>> = vec![Vec::new(); parts.len()];
        for ((&i, line), head) in picked.iter().zip(&lines).zip(&heads) {
            let shard = table.modules[i as usize];
            if self.inside(shard) {
                let k = shard as usize - self.shards.start;
                parts[k].modules.push(line.as_slice());
                advisories[k].extend(self.affected.by_name(&head.user, &head.name));
                advisories[k].extend(self.affected.by_gist(&head.gist));
            }
            self.add_dependent(&mut parts, head);
        }
        for (v, &shard) in self.manifest.versioned.iter().zip(self.versioned) {
            if self.inside(shard) {
                let k = shard as usize - self.shards.start;
                parts[k].versioned.push(v);
                advisories[k].extend(self.affected.by_name(&v.author, &v.name));
            }
        }
        for r in &self.manifest.rejected {
            let Some((user, name)) = r.user_and_name() else {
                continue;
            };
            let shard = shard_of(user, name, self.bits);
            if self.inside(shard) {
                parts[shard as usize - self.shards.start].rejected.push(r);
            }
        }
        for (part, mut picked) in parts.iter_mut().zip(advisories) {
            picked.sort_unstable();
            picked.dedup();
            part.advisories = picked
                .into_iter()
                .map(|i| &self.manifest.advisories[i])
                .collect();
            for names in part.dependents.values_mut() {
                names.sort();
                names.dedup();
            }
        }
        let first = self.shards.start as u32;
        (parts.par_iter().enumerate())
            .map(|(k, part)| Ok(composed_shard_json(first + k as u32, self.bits, part)?))
            .collect()
    }

    /// `head`'s module as a dependent of each of its dependencies in this batch.
    fn add_dependent(&self, parts: &mut [ShardParts<'_>], head: &RecordHead<'_>) {
        for dep in &head.dependencies {
            let Some((user, name)) = dep.split_once('/') else {
                continue;
            };
            let key = shard::shard_key(user, name);
            let shard = shard::shard_of(&key, self.bits);
            if self.inside(shard) {
                let k = shard as usize - self.shards.start;
                let names: &mut BTreeMap<String, Vec<String>> = &mut parts[k].dependents;
                names.entry(key).or_default().push(head.full_name());
            }
        }
    }
}
