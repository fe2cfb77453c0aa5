//! The previous build's shard files, so an unchanged shard is recognised by
//! its JSON instead of being compressed again: at a million modules every
//! shard recompressed at the shard level took most of a nightly build's
//! page-data stage, though one in a hundred changed.

use std::path::{Path, PathBuf};

use mlld_schemas::snapshot::SiteFile;
use mlld_schemas::sparse::{self, SparseRoot};

/// The previous root's shards, in the published site.
pub(super) struct PreviousShards {
    site: PathBuf,
    bits: u32,
    shards: Vec<String>,
    max_shard_size: u64,
}

impl PreviousShards {
    /// The shards the previous root names; `None` when there is no root
    /// or it does not match the digest the (verified) `latest.json` gives,
    /// and then every shard is simply written afresh.
    pub(super) fn read(site: &Path, root: Option<&SiteFile>) -> Option<Self> {
        let root = root?;
        let bytes =
            mlld_fsutil::read_regular_within(site, &site.join(&root.path), 64 << 20).ok()?;
        if mlld_schemas::sha256_hex(&bytes) != root.sha256 {
            return None;
        }
        let parsed: SparseRoot = serde_json::from_slice(&bytes).ok()?;
        parsed.check().ok()?;
        Some(Self {
            site: site.to_path_buf(),
            bits: parsed.shard_bits,
            shards: parsed.shards,
            max_shard_size: parsed.max_shard_size,
        })
    }

    /// Shard `n`'s previous file and size, if its JSON is `json`. The file
    /// is hashed against the root's digest before its JSON is compared, so
    /// a file changed on disk is never reused.
    pub(super) fn unchanged(&self, n: u32, bits: u32, json: &[u8]) -> Option<(String, u64)> {
        if bits != self.bits {
            return None;
        }
        let sha256 = self.shards.get(n as usize)?;
        let path = self.site.join(sparse::shard_path(sha256));
        let bytes =
            mlld_fsutil::read_regular_within(&self.site, &path, self.max_shard_size).ok()?;
        if mlld_schemas::sha256_hex(&bytes) != *sha256 {
            return None;
        }
        let previous = mlld_site_contract::sparse::shard_json_of(&bytes).ok()?;
        (previous == json).then(|| (sha256.clone(), bytes.len() as u64))
    }
}
