//! Module records split into shards by a stable hash of the name, so that a
//! reader needing a few modules reads a few small files instead of the whole
//! registry (the idea of TUF's hashed bins and Go's checksum-database tiles).
//!
//! The shard of a module is the top `bits` bits of the SHA-256 of its key,
//! `user/name` lowercased; a gist module and a versioned module of the same
//! name share a key and so a shard. A shard holds everything a command asks
//! about those names: the records of both layouts, the advisories that
//! affect them, and who depends on them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::snapshot::{AdvisoryRecord, ModuleRecord, RejectedRecord};
use crate::snapshot_versioned::VersionedModule;

/// Modules per shard the bit count aims at: a shard stays a few tens of
/// kilobytes, and a million-module registry has 16,384 of them.
pub const TARGET_PER_SHARD: usize = 64;
/// No registry is split finer than this.
pub const MAX_BITS: u32 = 16;

/// The key a module is sharded by: `user/name`, lowercased (users compare
/// case-insensitively, and a lowercase name cannot collide differently).
pub fn shard_key(user: &str, name: &str) -> String {
    format!("{user}/{name}").to_ascii_lowercase()
}

/// The shard of `key` when the registry is split into `2^bits` shards.
pub fn shard_of(key: &str, bits: u32) -> u32 {
    if bits == 0 {
        return 0;
    }
    let digest = crate::sha256_bytes(key.as_bytes());
    let top = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    top >> (32 - bits.min(MAX_BITS))
}

/// The bit count for a registry of `modules` names.
pub fn bits_for(modules: usize) -> u32 {
    let shards = modules.div_ceil(TARGET_PER_SHARD).max(1);
    shards.next_power_of_two().trailing_zeros().min(MAX_BITS)
}

/// Everything known about the names of one shard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    /// Gist modules (Phase 1), in manifest order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleRecord>,
    /// Versioned modules, in manifest order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versioned: Vec<VersionedModule>,
    /// Every advisory affecting a module of this shard, in manifest order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisories: Vec<AdvisoryRecord>,
    /// Modules and versions of these names the indexer rejected, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedRecord>,
    /// Shard key → the `user/module` names of the gist modules depending on
    /// it, sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependents: BTreeMap<String, Vec<String>>,
}

impl Shard {
    pub fn module(&self, user: &str, name: &str) -> Option<&ModuleRecord> {
        self.modules
            .iter()
            .find(|m| crate::names::same_user(&m.user, user) && m.name == name)
    }

    pub fn versioned(&self, author: &str, name: &str) -> Option<&VersionedModule> {
        self.versioned
            .iter()
            .find(|m| crate::names::same_user(&m.author, author) && m.name == name)
    }

    /// Whether the advisory `a` affects a record held here: a gist module it
    /// names or whose gist it lists, or a versioned module it names.
    pub fn affected_by(&self, a: &AdvisoryRecord) -> bool {
        self.modules.iter().any(|m| a.affects(m))
            || self.versioned.iter().any(|v| {
                crate::names::same_user(&a.user, &v.author) && a.advisory.affects.contains(&v.name)
            })
    }

    pub fn dependents(&self, user: &str, name: &str) -> &[String] {
        self.dependents
            .get(&shard_key(user, name))
            .map_or(&[], Vec::as_slice)
    }
}

/// Splits a manifest's records into `2^bits` shards (empty ones included,
/// so a reader can tell "no such module" from "shard missing"). Records are
/// taken by value: a million-module manifest is not held twice.
pub fn split(
    modules: impl IntoIterator<Item = ModuleRecord>,
    versioned: impl IntoIterator<Item = VersionedModule>,
    advisories: &[AdvisoryRecord],
    rejected: impl IntoIterator<Item = RejectedRecord>,
    bits: u32,
) -> Vec<Shard> {
    let mut shards = vec![Shard::default(); 1 << bits];
    let affected = Affected::new(advisories);
    let mut picked: Vec<Vec<usize>> = vec![Vec::new(); shards.len()];
    for m in modules {
        let s = shard_of(&shard_key(&m.user, &m.name), bits) as usize;
        picked[s].extend(affected.module(&m));
        for dep in &m.current.dependencies {
            let Some((user, name)) = dep.split_once('/') else {
                continue;
            };
            let key = shard_key(user, name);
            let t = shard_of(&key, bits) as usize;
            shards[t]
                .dependents
                .entry(key)
                .or_default()
                .push(m.full_name());
        }
        shards[s].modules.push(m);
    }
    for v in versioned {
        let s = shard_of(&shard_key(&v.author, &v.name), bits) as usize;
        picked[s].extend(affected.by_name(&v.author, &v.name));
        shards[s].versioned.push(v);
    }
    for r in rejected {
        let Some((user, name)) = r.user_and_name() else {
            continue;
        };
        let s = shard_of(&shard_key(user, name), bits) as usize;
        shards[s].rejected.push(r);
    }
    for (shard, mut picked) in shards.iter_mut().zip(picked) {
        picked.sort_unstable();
        picked.dedup();
        shard.advisories = picked.into_iter().map(|i| advisories[i].clone()).collect();
        for names in shard.dependents.values_mut() {
            names.sort();
            names.dedup();
        }
    }
    shards
}

/// Which advisories affect a module: those naming it in their user's
/// `affects`, and those listing its gist (as [`AdvisoryRecord::affects`]).
pub struct Affected<'a> {
    by_name: HashMap<(String, String), Vec<usize>>,
    by_gist: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Affected<'a> {
    pub fn new(advisories: &'a [AdvisoryRecord]) -> Self {
        let mut out = Self {
            by_name: HashMap::new(),
            by_gist: HashMap::new(),
        };
        for (i, a) in advisories.iter().enumerate() {
            for name in &a.advisory.affects {
                let key = (a.user.to_ascii_lowercase(), name.clone());
                out.by_name.entry(key).or_default().push(i);
            }
            for gist in &a.advisory.gists {
                out.by_gist.entry(gist).or_default().push(i);
            }
        }
        out
    }

    /// The advisories (indices) naming `user/name` in their user's `affects`.
    pub fn by_name(&self, user: &str, name: &str) -> impl Iterator<Item = usize> + '_ {
        self.by_name
            .get(&(user.to_ascii_lowercase(), name.to_string()))
            .into_iter()
            .flatten()
            .copied()
    }

    /// The advisories (indices) naming the gist `gist`.
    pub fn by_gist(&self, gist: &str) -> impl Iterator<Item = usize> + '_ {
        self.by_gist.get(gist).into_iter().flatten().copied()
    }

    /// The advisories (indices) affecting the gist module `m`.
    pub fn module(&self, m: &ModuleRecord) -> Vec<usize> {
        let mut out: Vec<usize> = self.by_name(&m.user, &m.name).collect();
        out.extend(self.by_gist(&m.gist));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_grow_with_the_registry() {
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(64), 0);
        assert_eq!(bits_for(65), 1);
        assert_eq!(bits_for(100_000), 11);
        assert_eq!(bits_for(1_000_000), 14);
        assert_eq!(bits_for(usize::MAX / 2), MAX_BITS);
    }

    #[test]
    fn the_shard_of_a_name_ignores_case_and_stays_in_range() {
        for bits in [0, 1, 5, 11, 16] {
            let a = shard_of(&shard_key("Alice", "json-utils"), bits);
            assert_eq!(a, shard_of(&shard_key("alice", "json-utils"), bits));
            assert!(a < 1 << bits);
        }
        // Stable across releases: readers and writers must agree.
        assert_eq!(shard_of("alice/json-utils", 16), {
            let d = crate::sha256_bytes(b"alice/json-utils");
            u32::from(u16::from_be_bytes([d[0], d[1]]))
        });
    }

    fn module(user: &str, name: &str, gist: &str, deps: &[&str]) -> ModuleRecord {
        serde_json::from_value(serde_json::json!({
            "user": user, "name": name, "gist": gist, "description": "", "tags": [],
            "revision": "a".repeat(40), "file": "m.mld", "integrity": "sha256:00", "size": 1,
            "files": [], "dependencies": deps
        }))
        .unwrap()
    }

    #[test]
    fn a_shard_holds_its_records_their_advisories_and_dependents() {
        let advisories: Vec<AdvisoryRecord> = serde_json::from_value(serde_json::json!([
            { "user": "ann", "id": "1", "created": "2024-01-01T00:00:00Z", "severity": "high",
              "affects": ["m"], "gists": [], "type": "rce", "description": "d", "recommendation": "r" },
            { "user": "zed", "id": "2", "created": "2024-01-01T00:00:00Z", "severity": "low",
              "affects": [], "gists": ["g2"], "type": "bug", "description": "d", "recommendation": "r" },
            { "user": "zed", "id": "3", "created": "2024-01-01T00:00:00Z", "severity": "low",
              "affects": ["other"], "gists": [], "type": "bug", "description": "d", "recommendation": "r" }
        ]))
        .unwrap();
        let modules = vec![
            module("Ann", "m", "g1", &[]),
            module("bob", "n", "g2", &["ann/m"]),
            module("cy", "o", "g3", &["ANN/m", "bob/n"]),
        ];
        for bits in [0, 3, 8] {
            let shards = split(modules.clone(), vec![], &advisories, vec![], bits);
            assert_eq!(shards.len(), 1 << bits);
            let at = |u: &str, n: &str| &shards[shard_of(&shard_key(u, n), bits) as usize];
            let ann = at("ann", "m");
            assert_eq!(ann.module("ANN", "m").unwrap().gist, "g1");
            assert_eq!(ann.dependents("ann", "m"), ["bob/n", "cy/o"]);
            let ids = |s: &Shard, m: &ModuleRecord| -> Vec<String> {
                s.advisories
                    .iter()
                    .filter(|a| a.affects(m))
                    .map(|a| a.advisory.id.clone())
                    .collect()
            };
            assert_eq!(ids(ann, &modules[0]), ["1"]);
            assert_eq!(ids(at("bob", "n"), &modules[1]), ["2"], "by gist");
            assert!(ids(at("cy", "o"), &modules[2]).is_empty());
            let total: usize = shards.iter().map(|s| s.modules.len()).sum();
            assert_eq!(total, 3);
        }
    }
}
