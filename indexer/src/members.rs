//! A snapshot's members, compactly: every blob as its digest and size (40
//! bytes, where a path and a digest as strings in a map take about 250),
//! and the few other members (the search index's files) by path. A million
//! modules have more than a million blobs, and an incremental build holds
//! the previous snapshot's members beside its own.
//!
//! Iteration, lookups and serialisation follow the member paths' order,
//! the order of the manifest's `members` object.

mod json;

use std::collections::BTreeMap;
use std::fmt;

use mlld_schemas::snapshot::{Member, blob_digest_bytes, blob_path};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Sorted by digest, each digest once.
    blobs: Vec<([u8; 32], u64)>,
    /// Members that are not blobs named by their digest, by path.
    others: BTreeMap<String, Member>,
}

impl Members {
    /// Adds a member; [`Members::seal`] must follow before lookups.
    pub(crate) fn insert(&mut self, path: String, member: Member) {
        match blob_digest_bytes(&path) {
            Some(digest) if names_digest(&member.sha256, &digest) => {
                self.blobs.push((digest, member.size));
            }
            _ => {
                self.others.insert(path, member);
            }
        }
    }

    /// [`Self::insert`] of a member as a manifest spells it, allocating
    /// only for one that is not a blob (a million blobs a manifest).
    pub(crate) fn insert_spelled(&mut self, path: &str, sha256: &str, size: u64) {
        match blob_digest_bytes(path) {
            Some(digest) if names_digest(sha256, &digest) => self.blobs.push((digest, size)),
            _ => {
                let member = Member {
                    sha256: sha256.to_string(),
                    size,
                };
                self.others.insert(path.to_string(), member);
            }
        }
    }

    /// Sorts the blobs inserted since the last seal, for lookups.
    pub(crate) fn seal(&mut self) {
        self.blobs.sort_unstable();
        self.blobs.dedup_by_key(|(digest, _)| *digest);
    }

    /// Adds members that are not blobs (or are), by path.
    pub fn extend(&mut self, members: impl IntoIterator<Item = (String, Member)>) {
        for (path, member) in members {
            self.insert(path, member);
        }
        self.seal();
    }

    pub fn len(&self) -> usize {
        self.blobs.len() + self.others.len()
    }

    /// The blobs: digest and size, by digest.
    pub fn blobs(&self) -> &[([u8; 32], u64)] {
        &self.blobs
    }

    /// Whether the blob `digest` is a member.
    pub fn has_blob(&self, digest: &[u8; 32]) -> bool {
        self.blob_size(digest).is_some()
    }

    pub(crate) fn blob_size(&self, digest: &[u8; 32]) -> Option<u64> {
        let i = self.blobs.binary_search_by(|(d, _)| d.cmp(digest)).ok()?;
        Some(self.blobs[i].1)
    }

    pub fn get(&self, path: &str) -> Option<Member> {
        if let Some(member) = self.others.get(path) {
            return Some(member.clone());
        }
        let digest = blob_digest_bytes(path)?;
        let size = self.blob_size(&digest)?;
        let sha256 = hex::encode(digest);
        Some(Member { sha256, size })
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.others.contains_key(path) || blob_digest_bytes(path).is_some_and(|d| self.has_blob(&d))
    }

    /// The paths of the members not held as blobs (the search index's
    /// files), in order.
    pub fn other_paths(&self) -> impl Iterator<Item = &str> {
        self.others.keys().map(String::as_str)
    }

    /// The blob members that `other` lacks, in path order: one merge of
    /// the two sorted digest lists instead of a lookup for each of a
    /// million blobs (what a delta's blob pack holds).
    pub fn blobs_not_in(&self, other: &Members) -> Vec<(String, Member)> {
        let mut theirs = other.blobs.iter().map(|(digest, _)| digest).peekable();
        let mut out: Vec<(String, Member)> = Vec::new();
        for (digest, size) in &self.blobs {
            while theirs.next_if(|d| *d < digest).is_some() {}
            if theirs.peek() == Some(&digest) {
                continue;
            }
            let sha256 = hex::encode(digest);
            let path = blob_path(&sha256);
            // `other` may hold the path among its others (naming another digest).
            if !other.others.contains_key(&path) {
                out.push((
                    path,
                    Member {
                        sha256,
                        size: *size,
                    },
                ));
            }
        }
        // Blob paths held among the others (a path naming another digest
        // than its member's): rare, and then sorted in.
        let odd = (self.others.iter())
            .filter(|(path, _)| blob_digest_bytes(path).is_some() && !other.contains_key(path));
        let before = out.len();
        out.extend(odd.map(|(p, m)| (p.clone(), m.clone())));
        if out.len() > before {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        out
    }

    /// Every member in path order (each path and member made as it comes).
    pub fn iter(&self) -> impl Iterator<Item = (String, Member)> + '_ {
        let mut blobs = (self.blobs.iter())
            .map(|(digest, size)| {
                let sha256 = hex::encode(digest);
                (
                    blob_path(&sha256),
                    Member {
                        sha256,
                        size: *size,
                    },
                )
            })
            .peekable();
        let mut others = self.others.iter().peekable();
        std::iter::from_fn(move || {
            let other_first = match (others.peek(), blobs.peek()) {
                (Some((path, _)), Some((blob, _))) => path.as_str() < blob.as_str(),
                (other, _) => other.is_some(),
            };
            if other_first {
                others.next().map(|(p, m)| (p.clone(), m.clone()))
            } else {
                blobs.next()
            }
        })
    }
}

/// Collects members one at a time; [`MembersBuilder::finish`] sorts the
/// blobs once.
#[derive(Default)]
pub struct MembersBuilder(Members);

impl MembersBuilder {
    pub fn add(&mut self, path: String, member: Member) {
        self.0.insert(path, member);
    }

    /// A blob member: its digest (hex) and size.
    pub fn add_blob(&mut self, sha256: &str, size: u64) {
        // The common case without making and parsing its path again (a
        // million modules have more than a million blobs): what `insert`
        // keeps of a lowercase hex digest is the digest's bytes.
        let mut digest = [0; 32];
        if sha256.len() == 64
            && mlld_schemas::names::is_lower_hex(sha256)
            && hex::decode_to_slice(sha256, &mut digest).is_ok()
        {
            self.0.blobs.push((digest, size));
            return;
        }
        let member = Member {
            sha256: sha256.to_string(),
            size,
        };
        self.add(blob_path(sha256), member);
    }

    pub fn finish(mut self) -> Members {
        self.0.seal();
        self.0
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (path, member) in self.iter() {
            map.serialize_entry(&path, &member)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of member paths to digests and sizes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Members::default();
                while let Some((path, member)) = map.next_entry::<String, Member>()? {
                    members.insert(path, member);
                }
                members.seal();
                Ok(members)
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// Whether `sha256` is `digest` in lower-case hex, as a blob's path names it.
fn names_digest(sha256: &str, digest: &[u8; 32]) -> bool {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex).expect("64 bytes hold 32 in hex");
    sha256.as_bytes() == hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spelled_member_lands_where_insert_puts_it() {
        let hex = "ab".repeat(32);
        let path = mlld_schemas::snapshot::blob_path(&hex);
        let cases = [
            (path.clone(), hex.clone()),
            // A blob path naming another digest, or the same in capitals.
            (path.clone(), "cd".repeat(32)),
            (path.clone(), hex.to_uppercase()),
            ("search/meta.json".to_string(), hex.clone()),
        ];
        for (path, sha256) in cases {
            let (mut inserted, mut spelled) = (Members::default(), Members::default());
            let member = Member {
                sha256: sha256.clone(),
                size: 7,
            };
            inserted.insert(path.clone(), member.clone());
            spelled.insert_spelled(&path, &sha256, 7);
            assert_eq!(inserted.blobs(), spelled.blobs(), "{path} {sha256}");
            assert_eq!(spelled.get(&path), Some(member), "{path} {sha256}");
            assert_eq!(inserted.len(), 1);
            assert_eq!(spelled.len(), 1);
        }
    }

    #[test]
    fn blobs_not_in_is_the_filter_it_replaces() {
        let member = |i: u8| Member {
            sha256: sha(i),
            size: u64::from(i),
        };
        let build = |blobs: &[u8], odd: &[(u8, u8)]| {
            let mut b = MembersBuilder::default();
            for &i in blobs {
                b.add_blob(&sha(i), u64::from(i));
            }
            for &(path, digest) in odd {
                b.add(blob_path(&sha(path)), member(digest));
            }
            b.add("index/meta.json".to_string(), member(200));
            b.finish()
        };
        let old = build(&[1, 2, 3, 5, 8, 13, 21], &[(40, 41)]);
        let new = build(&[0, 2, 3, 4, 8, 9, 21, 22, 40], &[(30, 31), (13, 14)]);
        let filtered: Vec<_> = (new.iter())
            .filter(|(p, _)| {
                mlld_schemas::snapshot::blob_digest(p).is_some() && !old.contains_key(p)
            })
            .collect();
        assert_eq!(new.blobs_not_in(&old), filtered);
        // Blobs 0, 4, 9, 22 and the odd 30; 13 and 40 are paths `old` has.
        assert_eq!(filtered.len(), 5, "{filtered:?}");
        assert!(new.blobs_not_in(&new).is_empty());
        assert_eq!(new.blobs_not_in(&Members::default()).len(), new.len() - 1);
    }

    fn sha(i: u8) -> String {
        mlld_schemas::sha256_hex(&[i])
    }

    #[test]
    fn members_read_write_and_look_up_as_the_map_they_replace() {
        let mut map = BTreeMap::new();
        for i in 0..50u8 {
            let m = Member {
                sha256: sha(i),
                size: u64::from(i),
            };
            map.insert(blob_path(&m.sha256), m);
        }
        let index = |n: &str| {
            (
                format!("index/{n}"),
                Member {
                    sha256: sha(200),
                    size: 9,
                },
            )
        };
        map.extend([index("meta.json"), index("a.store")]);
        // A blob's path naming another digest than its member's stays as written.
        let mismatched = Member {
            sha256: sha(251),
            size: 1,
        };
        map.insert(blob_path(&sha(250)), mismatched.clone());
        let odd = (
            "annex".to_string(),
            Member {
                sha256: sha(7),
                size: 7,
            },
        );
        map.insert(odd.0.clone(), odd.1.clone());

        let json = serde_json::to_string(&map).unwrap();
        let members: Members = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&members).unwrap(), json);
        assert_eq!(members.len(), map.len());
        assert_eq!(members.iter().collect::<BTreeMap<_, _>>(), map);
        for (path, m) in &map {
            assert_eq!(members.get(path).as_ref(), Some(m), "{path}");
            assert!(members.contains_key(path));
        }
        assert!(!members.contains_key(&blob_path(&sha(99))));
        assert_eq!(members.get("index/none"), None);

        let blobs: Vec<(String, u64)> = (0..50u8).rev().map(|i| (sha(i), u64::from(i))).collect();
        let mut builder = MembersBuilder::default();
        blobs.iter().for_each(|(s, n)| builder.add_blob(s, *n));
        let mut built = builder.finish();
        built.extend([index("meta.json"), index("a.store"), odd]);
        built.extend([(blob_path(&sha(250)), mismatched)]);
        assert_eq!(built, members);
    }

    #[test]
    fn a_blob_added_by_digest_is_kept_as_inserting_its_path_keeps_it() {
        let digests = [sha(1), sha(2).to_uppercase(), "ab".repeat(31), sha(1)];
        let mut builder = MembersBuilder::default();
        let mut by_path = Members::default();
        for (i, d) in digests.iter().enumerate() {
            builder.add_blob(d, i as u64);
            let member = Member {
                sha256: d.clone(),
                size: i as u64,
            };
            by_path.insert(blob_path(d), member);
        }
        by_path.seal();
        let built = builder.finish();
        assert_eq!(built, by_path);
        // The lowercase digest once (sealing sorts by digest, then size, and
        // keeps the first: the smaller size), the others by path.
        assert_eq!(built.blobs().len(), 1);
        assert_eq!(built.blobs()[0].1, 0);
        assert_eq!(built.other_paths().count(), 2);
    }
}
