//! The signed manifest's member list, held compactly while a snapshot is
//! verified: a blob's path is a function of its digest
//! (`blobs/sha256/<2>/<62>`), so each blob is 40 bytes (digest and size) in
//! a sorted table, not a map of path strings; the few search-index files
//! keep their paths. At 1,000,000 modules this is tens of megabytes where
//! the parsed map was hundreds.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use mlld_schemas::Member;
use mlld_schemas::search::is_index_member;
use mlld_schemas::snapshot::blob_path;

/// The members of one signed manifest.
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// Sorted by digest once [`Members::finish`] ran.
    blobs: Vec<Blob>,
    index: BTreeMap<String, Member>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Blob {
    digest: [u8; 32],
    size: u64,
}

/// A member's place in [`Members`], to mark it seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(usize);

impl Members {
    /// Adds the manifest's entry `path`: a blob path naming its own digest,
    /// or a search-index file.
    pub fn insert(&mut self, path: String, member: Member) -> Result<()> {
        if let Some(digest) = digest_of_blob_path(&path) {
            let named = hex::decode(&member.sha256).ok();
            if named.as_deref() != Some(&digest[..]) {
                bail!("manifest member `{path}` is a blob path that does not match its digest");
            }
            self.blobs.push(Blob {
                digest,
                size: member.size,
            });
            return Ok(());
        }
        if !is_index_member(&path) {
            bail!(
                "manifest member `{path}` is neither a blob path matching its digest nor a search index file"
            );
        }
        if mlld_schemas::names::check_sha256_hex(&member.sha256).is_err() {
            bail!("manifest member `{path}` has a malformed digest");
        }
        if self.index.insert(path.clone(), member).is_some() {
            bail!("manifest member `{path}` is listed twice");
        }
        Ok(())
    }

    /// Sorts the blob table; refuses a blob listed twice.
    pub fn finish(&mut self) -> Result<()> {
        self.blobs.sort_unstable();
        if let Some(w) = self.blobs.windows(2).find(|w| w[0].digest == w[1].digest) {
            bail!(
                "manifest member `{}` is listed twice",
                blob_path(&hex::encode(w[0].digest))
            );
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.blobs.len() + self.index.len()
    }

    pub fn has_index(&self) -> bool {
        !self.index.is_empty()
    }

    /// Whether a blob with this digest is listed.
    pub fn has_blob(&self, digest: &[u8; 32]) -> bool {
        self.blob_slot(digest).is_some()
    }

    fn blob_slot(&self, digest: &[u8; 32]) -> Option<usize> {
        self.blobs.binary_search_by(|b| b.digest.cmp(digest)).ok()
    }

    /// Blobs come first in slot order, then the search-index files.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// The listed blob with this digest: its slot, signed size and digest.
    pub fn get_blob(&self, digest: &[u8; 32]) -> Option<(Slot, u64, [u8; 32])> {
        let i = self.blob_slot(digest)?;
        Some((Slot(i), self.blobs[i].size, *digest))
    }

    /// The listed member at `path`: its slot, its signed size and digest.
    pub fn get(&self, path: &str) -> Option<(Slot, u64, [u8; 32])> {
        if let Some(digest) = digest_of_blob_path(path) {
            return self.get_blob(&digest);
        }
        let (pos, (_, m)) = self
            .index
            .iter()
            .enumerate()
            .find(|(_, (p, _))| *p == path)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&m.sha256, &mut digest).ok()?;
        Some((Slot(self.blobs.len() + pos), m.size, digest))
    }

    /// Every blob, in digest order: its path and member entry.
    pub fn blobs(&self) -> impl Iterator<Item = (String, Member)> + '_ {
        self.blobs.iter().map(|b| {
            let hex = hex::encode(b.digest);
            (
                blob_path(&hex),
                Member {
                    sha256: hex,
                    size: b.size,
                },
            )
        })
    }

    /// The path of the member in `slot`.
    pub fn path(&self, slot: Slot) -> String {
        match self.blobs.get(slot.0) {
            Some(b) => blob_path(&hex::encode(b.digest)),
            None => self
                .index
                .keys()
                .nth(slot.0 - self.blobs.len())
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// A bitmap of slots, to mark members seen.
    pub fn slots(&self) -> Seen {
        Seen(vec![0; self.len().div_ceil(64)])
    }
}

/// Which members were seen.
pub(crate) struct Seen(Vec<u64>);

impl Seen {
    /// Marks `slot`; false if it was marked already.
    pub fn mark(&mut self, slot: Slot) -> bool {
        let (word, bit) = (slot.0 / 64, 1u64 << (slot.0 % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }

    /// The first slot in `from..to` not marked, if any.
    pub fn first_unmarked(&self, from: usize, to: usize) -> Option<Slot> {
        (from..to)
            .find(|&i| self.0[i / 64] & (1 << (i % 64)) == 0)
            .map(Slot)
    }
}

/// The digest a blob path names (`blobs/sha256/<2 hex>/<62 hex>`, lower
/// case), or `None` for any other path.
pub(crate) use mlld_schemas::snapshot::blob_digest_bytes as digest_of_blob_path;

#[cfg(test)]
mod tests {
    use super::*;

    fn member(hex: &str, size: u64) -> Member {
        Member {
            sha256: hex.to_string(),
            size,
        }
    }

    #[test]
    fn blobs_and_index_files_are_found_by_path_and_marked_once() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let mut m = Members::default();
        m.insert(blob_path(&b), member(&b, 2)).unwrap();
        m.insert(blob_path(&a), member(&a, 1)).unwrap();
        m.insert("index/meta.json".into(), member(&a, 9)).unwrap();
        m.finish().unwrap();
        assert_eq!(m.len(), 3);
        let (slot, size, digest) = m.get(&blob_path(&b)).unwrap();
        assert_eq!((size, hex::encode(digest)), (2, b.clone()));
        assert_eq!(m.path(slot), blob_path(&b));
        let (index_slot, size, _) = m.get("index/meta.json").unwrap();
        assert_eq!(size, 9);
        assert_eq!(m.path(index_slot), "index/meta.json");
        assert!(m.get(&blob_path(&"c".repeat(64))).is_none());
        let mut seen = m.slots();
        assert!(seen.mark(slot));
        assert!(!seen.mark(slot), "a second mark is reported");
        assert!(seen.mark(index_slot));
        assert_eq!(
            m.path(seen.first_unmarked(0, m.len()).unwrap()),
            blob_path(&a)
        );
        let paths: Vec<String> = m.blobs().map(|(p, _)| p).collect();
        assert_eq!(paths, [blob_path(&a), blob_path(&b)]);
    }

    #[test]
    fn blob_paths_follow_the_schema_rule() {
        let a = "0123456789abcdef".repeat(4);
        for path in [
            blob_path(&a),
            blob_path(&a.to_uppercase()),
            format!("blobs/sha256/01/{}", &a[..61]),
            format!("blobs/sha256/012/{}", &a[3..]),
            format!("blobs/sha256/../{}", &a[2..]),
            "blobs/sha256/".to_string(),
        ] {
            assert_eq!(
                digest_of_blob_path(&path).map(hex::encode),
                mlld_schemas::snapshot::blob_digest(&path),
                "{path}"
            );
        }
    }

    #[test]
    fn malformed_and_repeated_members_are_refused() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let mut m = Members::default();
        let err = m.insert(blob_path(&a), member(&b, 1)).unwrap_err();
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        let err = m.insert("etc/passwd".into(), member(&a, 1)).unwrap_err();
        assert!(err.to_string().contains("neither a blob path"), "{err}");
        m.insert(blob_path(&a), member(&a, 1)).unwrap();
        m.insert(blob_path(&a), member(&a, 1)).unwrap();
        let err = m.finish().unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
