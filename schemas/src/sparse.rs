//! The sparse layout of a site: a small root and the module records split
//! into content-addressed shards, so a client can verify the few records a
//! project needs without downloading the registry (TUF's hashed bins, as
//! PEP 458 uses for PyPI).
//!
//! Trust flows from the signed `latest.json`: it names the root by digest
//! and size ([`crate::Latest::sparse`]); the root names every shard by
//! digest, indexed by shard number ([`crate::shard::shard_of`]); a shard's
//! file carries its own number and bit count, so a shard served in another
//! one's place is refused even before its digest is compared. The root
//! repeats the pointer's serial, expiry and snapshot digest, which readers
//! check against the verified pointer: a root from another build or another
//! registry is refused.

use serde::{Deserialize, Serialize};

use crate::shard::Shard;

pub const SPARSE_FORMAT: u32 = 1;
/// Modules per site shard the bit count aims at. Larger than the client's
/// local shards: the root lists one digest per shard and a fresh client
/// downloads it whole, so at a million modules it stays near 550 KB while a
/// shard stays a few tens of kilobytes compressed.
pub const SITE_PER_SHARD: usize = 128;
/// Largest root a reader accepts (a million modules need about 0.6 MB).
pub const MAX_ROOT_BYTES: u64 = 8 << 20;
/// Largest decompressed shard a reader accepts.
pub const MAX_SHARD_JSON_BYTES: u64 = 64 << 20;

/// `sparse/<sha256>.root.json`.
pub fn root_path(sha256_hex: &str) -> String {
    format!("sparse/{sha256_hex}.root.json")
}

/// `sparse/shards/<sha256>.json.zst`: named by the digest of the
/// compressed bytes, which is what the root lists.
pub fn shard_path(sha256_hex: &str) -> String {
    format!("sparse/shards/{sha256_hex}.json.zst")
}

/// The digest a site shard path names, or `None` for any other path.
pub fn shard_digest(path: &str) -> Option<&str> {
    let hex = path
        .strip_prefix("sparse/shards/")?
        .strip_suffix(".json.zst")?;
    crate::names::check_sha256_hex(hex).ok().map(|()| hex)
}

/// The digest a root path names, or `None` for any other path.
pub fn root_digest(path: &str) -> Option<&str> {
    let hex = path.strip_prefix("sparse/")?.strip_suffix(".root.json")?;
    crate::names::check_sha256_hex(hex).ok().map(|()| hex)
}

/// The bit count of a site split for a registry of `names` names.
pub fn site_bits(names: usize) -> u32 {
    let shards = names.div_ceil(SITE_PER_SHARD).max(1);
    shards
        .next_power_of_two()
        .trailing_zeros()
        .min(crate::shard::MAX_BITS)
}

/// The sparse root: what a build's shards are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SparseRoot {
    pub format_version: u32,
    /// The serial of the build (equal to `latest.json`'s).
    pub serial: u64,
    pub created: String,
    /// Equal to `latest.json`'s: the root is not valid longer than it.
    pub expires: String,
    /// The digest of the full snapshot of the same build (`latest.json`'s
    /// `sha256`): the root's records are that snapshot's, split.
    pub snapshot: String,
    pub modules: usize,
    pub versioned: usize,
    pub advisories: usize,
    pub shard_bits: u32,
    /// Largest shard file of this build, in bytes: a reader refuses a
    /// download that grows past it.
    pub max_shard_size: u64,
    /// The SHA-256 of every shard file, by shard number (`2^shard_bits`).
    pub shards: Vec<String>,
}

impl SparseRoot {
    /// Checks the root's own consistency (not its binding to a pointer).
    pub fn check(&self) -> Result<(), String> {
        if self.format_version != SPARSE_FORMAT {
            return Err(format!(
                "sparse root format {} (this reader knows {SPARSE_FORMAT})",
                self.format_version
            ));
        }
        if self.shard_bits > crate::shard::MAX_BITS {
            return Err(format!("{} shard bits is too many", self.shard_bits));
        }
        if self.shards.len() != 1usize << self.shard_bits {
            return Err(format!(
                "it lists {} shards for {} bits",
                self.shards.len(),
                self.shard_bits
            ));
        }
        crate::names::check_sha256_hex(&self.snapshot)?;
        for (i, s) in self.shards.iter().enumerate() {
            crate::names::check_sha256_hex(s).map_err(|e| format!("shard {i}: {e}"))?;
        }
        Ok(())
    }
}

/// A shard file (before compression): which shard it is, and its records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteShard {
    pub format_version: u32,
    pub shard: u32,
    pub shard_bits: u32,
    pub records: Shard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_refuse_anything_else() {
        let hex = "ab".repeat(32);
        assert_eq!(shard_digest(&shard_path(&hex)), Some(hex.as_str()));
        assert_eq!(root_digest(&root_path(&hex)), Some(hex.as_str()));
        assert_eq!(shard_digest("sparse/shards/../x.json.zst"), None);
        assert_eq!(root_digest(&format!("sparse/{hex}.json")), None);
    }

    #[test]
    fn a_root_must_list_one_digest_per_shard() {
        let mut root = SparseRoot {
            format_version: SPARSE_FORMAT,
            serial: 1,
            created: "2026-01-01T00:00:00Z".into(),
            expires: "2026-02-01T00:00:00Z".into(),
            snapshot: "0".repeat(64),
            modules: 0,
            versioned: 0,
            advisories: 0,
            shard_bits: 1,
            max_shard_size: 10,
            shards: vec!["1".repeat(64), "2".repeat(64)],
        };
        assert!(root.check().is_ok());
        root.shards.pop();
        assert!(root.check().is_err());
        root.shard_bits = 0;
        root.shards[0] = "xyz".into();
        assert!(root.check().is_err());
    }

    #[test]
    fn site_bits_aim_at_the_site_shard_size() {
        assert_eq!(site_bits(0), 0);
        assert_eq!(site_bits(128), 0);
        assert_eq!(site_bits(100_000), 10);
        assert_eq!(site_bits(1_000_000), 13);
    }
}
