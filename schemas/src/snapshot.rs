//! Our own formats: the snapshot manifest and the `latest.json` pointer.
//!
//! A snapshot is `snapshots/<sha256>.tar.zst` holding, in this order,
//! `manifest.json`, `manifest.json.minisig`, then every other member listed
//! in the manifest's `members` (blobs under `blobs/sha256/<2 hex>/<62 hex>`,
//! then the search index's files under `index/`, see `search`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::advisory::Advisory;
use crate::snapshot_versioned::VersionedModule;

pub const SNAPSHOT_FORMAT: u32 = 1;
pub const MANIFEST_NAME: &str = "manifest.json";
pub const MANIFEST_SIG_NAME: &str = "manifest.json.minisig";
pub const LATEST_NAME: &str = "latest.json";
pub const LATEST_SIG_NAME: &str = "latest.json.minisig";
pub const PUBLIC_KEY_NAME: &str = "mlld-registry.pub";

/// Where blob paths start; the digest's first two hex digits, a `/`, and
/// the other 62 follow.
pub const BLOB_PREFIX: &str = "blobs/sha256/";

/// The path of a blob inside a snapshot or a store: `blobs/sha256/ab/cdef…`.
pub fn blob_path(sha256_hex: &str) -> String {
    format!("{BLOB_PREFIX}{}/{}", &sha256_hex[..2], &sha256_hex[2..])
}

/// The inverse of [`blob_path`]: the digest a blob path names.
pub fn blob_digest(path: &str) -> Option<String> {
    let rest = path.strip_prefix(BLOB_PREFIX)?;
    let (dir, file) = rest.split_once('/')?;
    let hex = format!("{dir}{file}");
    (dir.len() == 2 && crate::names::check_sha256_hex(&hex).is_ok()).then_some(hex)
}

/// [`blob_digest`] as bytes, without allocating (it runs once for every
/// member of a snapshot a client verifies).
pub fn blob_digest_bytes(path: &str) -> Option<[u8; 32]> {
    let rest = path.strip_prefix(BLOB_PREFIX)?.as_bytes();
    if rest.len() != 65 || rest[2] != b'/' {
        return None;
    }
    let mut hex = [0u8; 64];
    hex[..2].copy_from_slice(&rest[..2]);
    hex[2..].copy_from_slice(&rest[3..]);
    if !hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex, &mut digest).ok()?;
    Some(digest)
}

/// The signed table of contents of a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    /// Grows by one with every build; clients refuse to go back.
    pub serial: u64,
    pub created: String,
    /// Clients refuse the snapshot after this time.
    pub expires: String,
    /// Accepted modules, sorted by user then name.
    pub modules: Vec<ModuleRecord>,
    /// Every user's advisories, sorted by user then id.
    pub advisories: Vec<AdvisoryRecord>,
    /// Versioned modules of today's registry layout (`@author/name`), sorted
    /// by author then name. Absent from a Phase-1-only snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versioned: Vec<VersionedModule>,
    /// Every member other than the manifest and its signature: path to digest.
    pub members: BTreeMap<String, Member>,
    /// Modules (and versions) the indexer left out, with why, sorted by
    /// module then version: clients tell a rejected module from an unknown
    /// one. Absent when nothing was rejected, and from older snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedRecord>,
}

/// A module, or one version of a versioned module, that the indexer left
/// out of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RejectedRecord {
    /// `user/module` (a Phase-1 module) or `@author/name` (a versioned module).
    pub module: String,
    /// The version left out; absent when the whole module was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why, as the build report says it.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    pub sha256: String,
    pub size: u64,
}

/// One module at its current revision, with the older revisions the
/// indexer has captured.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleRecord {
    pub user: String,
    pub name: String,
    pub gist: String,
    pub description: String,
    pub tags: Vec<String>,
    /// When the module was registered, from registry.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The gist's `updated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(flatten)]
    pub current: RevisionRecord,
    /// Older captured revisions, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionRecord>,
    /// Set when the last crawl could not refresh this module and kept its
    /// last good record: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
}

/// [`ModuleRecord`] as it is read: the same fields, the current revision's
/// inline. Reading through it avoids serde's `flatten`, which buffers every
/// field of every record before it is decoded (a manifest holds up to a
/// million records, parsed on every full sync).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModuleRecordFields {
    user: String,
    name: String,
    gist: String,
    description: String,
    tags: Vec<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    updated: Option<String>,
    revision: String,
    #[serde(default)]
    committed_at: Option<String>,
    file: String,
    integrity: String,
    size: u64,
    files: Vec<GistFile>,
    dependencies: Vec<String>,
    #[serde(default)]
    history: Vec<RevisionRecord>,
    #[serde(default)]
    stale: Option<String>,
}

impl<'de> Deserialize<'de> for ModuleRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = ModuleRecordFields::deserialize(d)?;
        Ok(Self {
            user: f.user,
            name: f.name,
            gist: f.gist,
            description: f.description,
            tags: f.tags,
            created: f.created,
            updated: f.updated,
            current: RevisionRecord {
                revision: f.revision,
                committed_at: f.committed_at,
                file: f.file,
                integrity: f.integrity,
                size: f.size,
                files: f.files,
                dependencies: f.dependencies,
            },
            history: f.history,
            stale: f.stale,
        })
    }
}

/// What one revision of a module's gist holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<String>,
    /// The module file's name within the gist.
    pub file: String,
    /// `sha256:<hex>` of the module file; its blob is `blobs/sha256/…` of that hex.
    pub integrity: String,
    pub size: u64,
    /// Every file of the gist at this revision, content-addressed.
    pub files: Vec<GistFile>,
    /// Registry modules the content imports, as `user/module`, sorted.
    pub dependencies: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GistFile {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdvisoryRecord {
    /// The user whose advisories.json holds it.
    pub user: String,
    #[serde(flatten)]
    pub advisory: Advisory,
}

impl RejectedRecord {
    /// The user (or author) and module name the record is about.
    pub fn user_and_name(&self) -> Option<(&str, &str)> {
        let name = self.module.strip_prefix('@').unwrap_or(&self.module);
        name.split_once('/')
    }
}

impl ModuleRecord {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.user, self.name)
    }

    /// Current revision first, then history.
    pub fn revisions(&self) -> impl Iterator<Item = &RevisionRecord> {
        std::iter::once(&self.current).chain(&self.history)
    }
}

impl AdvisoryRecord {
    /// Whether this advisory affects `module`: its `affects` names the module
    /// (within the advisory's user) or its `gists` holds the module's gist.
    pub fn affects(&self, module: &ModuleRecord) -> bool {
        (crate::names::same_user(&self.user, &module.user)
            && self.advisory.affects.contains(&module.name))
            || self.advisory.gists.contains(&module.gist)
    }
}

impl Manifest {
    pub fn find(&self, user: &str, name: &str) -> Option<&ModuleRecord> {
        self.modules
            .iter()
            .find(|m| crate::names::same_user(&m.user, user) && m.name == name)
    }

    /// The versioned module `@author/name` (authors compare case-insensitively).
    pub fn find_versioned(&self, author: &str, name: &str) -> Option<&VersionedModule> {
        self.versioned
            .iter()
            .find(|m| crate::names::same_user(&m.author, author) && m.name == name)
    }

    pub fn advisories_for<'a>(
        &'a self,
        module: &'a ModuleRecord,
    ) -> impl Iterator<Item = &'a AdvisoryRecord> {
        self.advisories.iter().filter(move |a| a.affects(module))
    }
}

/// The advisories of a manifest indexed by module and by gist, so that
/// finding those affecting each of many modules is not quadratic
/// ([`AdvisoryRecord::affects`] over every pair costs seconds at 100,000
/// modules and thousands of advisories).
pub struct AdvisoryIndex<'a> {
    advisories: &'a [AdvisoryRecord],
    /// (lowercased user, module) → positions in `advisories`.
    by_module: std::collections::HashMap<(String, &'a str), Vec<usize>>,
    by_gist: std::collections::HashMap<&'a str, Vec<usize>>,
}

impl<'a> AdvisoryIndex<'a> {
    pub fn new(advisories: &'a [AdvisoryRecord]) -> Self {
        let mut index = Self {
            advisories,
            by_module: Default::default(),
            by_gist: Default::default(),
        };
        for (i, a) in advisories.iter().enumerate() {
            for module in &a.advisory.affects {
                index
                    .by_module
                    .entry((a.user.to_ascii_lowercase(), module.as_str()))
                    .or_default()
                    .push(i);
            }
            for gist in &a.advisory.gists {
                index.by_gist.entry(gist.as_str()).or_default().push(i);
            }
        }
        index
    }

    /// The advisories affecting `module`, in manifest order, each once:
    /// the same as filtering with [`AdvisoryRecord::affects`].
    pub fn for_module(&self, module: &ModuleRecord) -> impl Iterator<Item = &'a AdvisoryRecord> {
        self.for_names(&module.user, &module.name, &module.gist)
    }

    /// [`Self::for_module`] for the module `user/name` of `gist`.
    pub fn for_names(
        &self,
        user: &str,
        name: &str,
        gist: &str,
    ) -> impl Iterator<Item = &'a AdvisoryRecord> {
        let key = (user.to_ascii_lowercase(), name);
        let mut hits: Vec<usize> = self
            .by_module
            .get(&key)
            .into_iter()
            .chain(self.by_gist.get(gist))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        let advisories = self.advisories;
        hits.into_iter().map(move |i| &advisories[i])
    }
}

/// `latest.json`: the site's pointer to its newest snapshot, signed beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Latest {
    pub format_version: u32,
    /// Path of the snapshot relative to the site root.
    pub snapshot: String,
    pub sha256: String,
    pub size: u64,
    pub serial: u64,
    pub created: String,
    pub expires: String,
    /// The same snapshot without blobs (manifest, signature, search index),
    /// for clients that fetch only the blobs they lack (`blobs/sha256/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<SiteFile>,
    /// Chunk deltas from recent snapshots to this one, for delta sync.
    /// (Named apart from the retired `deltas`, zstd patches, so a client
    /// that knows only those finds none and takes the index-only snapshot.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunk_deltas: Vec<ChunkDelta>,
    /// The sparse root of the same build (`sparse/<sha256>.root.json`):
    /// the records split into shards a client fetches one at a time
    /// (`mlld_schemas::sparse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SiteFile>,
}

/// A file of the site (relative path), with its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SiteFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Bytes that are not a file of the site, named by digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Digest {
    pub sha256: String,
    pub size: u64,
}

/// How a client holding an older snapshot reaches this one by downloading
/// only what changed: a chunk delta that turns what it holds into the new
/// index-only snapshot, and a pack of the blobs it lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkDelta {
    pub from_serial: u64,
    /// The full snapshot's digest the client must hold (`latest.json`'s `sha256` then).
    pub from_snapshot: String,
    /// The base the client assembles from that snapshot (see [`delta_base_parts`]).
    pub base: Digest,
    /// A zstd-compressed stream of copy/insert operations
    /// (`mlld_site_contract::chunk_delta`): ranges of the base and literal
    /// bytes that, in order, make the uncompressed tar of the new index-only
    /// snapshot.
    pub patch: SiteFile,
    /// That uncompressed tar.
    pub target: Digest,
    /// A `tar.zst` of every blob this snapshot lists and `from_snapshot` does
    /// not, at its `blobs/sha256/…` path.
    pub blobs: SiteFile,
}

/// The parts of a snapshot whose concatenation, in this order, is the base a
/// [`ChunkDelta`] is made against: the manifest, then every member that is
/// not a blob (the search index), in path order.
pub fn delta_base_parts(manifest: &Manifest) -> impl Iterator<Item = &str> {
    delta_base_parts_of(manifest.members.keys().map(String::as_str))
}

/// [`delta_base_parts`] of a manifest whose member paths are `paths`, in order.
pub fn delta_base_parts_of<'a>(
    paths: impl Iterator<Item = &'a str>,
) -> impl Iterator<Item = &'a str> {
    std::iter::once(MANIFEST_NAME).chain(paths.filter(|p| blob_digest(p).is_none()))
}

/// The site-relative path of a delta blob pack with this digest.
pub fn delta_blobs_path(sha256: &str) -> String {
    format!("deltas/{sha256}.blobs.tar.zst")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advisory_index_agrees_with_affects() {
        let advisory = |user: &str, id: &str, affects: &[&str], gists: &[&str]| {
            let json = serde_json::json!({
                "id": id, "created": "2026-01-01T00:00:00Z", "severity": "high",
                "affects": affects, "gists": gists, "type": "other",
                "description": "d", "recommendation": "r"
            });
            AdvisoryRecord {
                user: user.into(),
                advisory: serde_json::from_value(json).unwrap(),
            }
        };
        let advisories = vec![
            advisory("Alice", "A-1", &["tool"], &[]),
            advisory("alice", "A-2", &["tool", "other"], &["g9"]),
            advisory("bob", "B-1", &["tool"], &["g1"]),
            advisory("carol", "C-1", &[], &["g1", "g2"]),
        ];
        let index = AdvisoryIndex::new(&advisories);
        for (user, name, gist) in [
            ("alice", "tool", "g1"),
            ("ALICE", "other", "g5"),
            ("bob", "tool", "g2"),
            ("dave", "tool", "g3"),
            ("alice", "tool", "g9"),
        ] {
            let m: ModuleRecord = serde_json::from_value(serde_json::json!({
                "user": user, "name": name, "gist": gist, "description": "",
                "tags": [], "revision": "r", "file": "f", "integrity": "sha256:00",
                "size": 0, "files": [], "dependencies": []
            }))
            .unwrap();
            let naive: Vec<_> = advisories
                .iter()
                .filter(|a| a.affects(&m))
                .map(|a| &a.advisory.id)
                .collect();
            let fast: Vec<_> = index.for_module(&m).map(|a| &a.advisory.id).collect();
            assert_eq!(fast, naive, "{user}/{name} ({gist})");
        }
    }

    #[test]
    fn module_records_read_back_what_was_written_and_ignore_unknown_fields() {
        let revision = |r: &str| RevisionRecord {
            revision: r.repeat(40),
            committed_at: Some("2026-01-01T00:00:00Z".into()),
            file: "x.mld".into(),
            integrity: format!("sha256:{}", "e".repeat(64)),
            size: 3,
            files: vec![GistFile {
                name: "x.mld".into(),
                sha256: "e".repeat(64),
                size: 3,
            }],
            dependencies: vec!["a/b".into()],
        };
        let full = ModuleRecord {
            user: "u".into(),
            name: "m".into(),
            gist: "g".into(),
            description: "d".into(),
            tags: vec!["t".into()],
            created: Some("2025-01-01T00:00:00Z".into()),
            updated: Some("2026-01-01T00:00:00Z".into()),
            current: revision("b"),
            history: vec![revision("c")],
            stale: Some("why".into()),
        };
        let bare = ModuleRecord {
            created: None,
            updated: None,
            history: vec![],
            stale: None,
            current: RevisionRecord {
                committed_at: None,
                ..revision("b")
            },
            ..full.clone()
        };
        for record in [full, bare] {
            let mut json = serde_json::to_value(&record).unwrap();
            assert_eq!(json["revision"], record.current.revision, "flattened");
            assert_eq!(
                serde_json::from_value::<ModuleRecord>(json.clone()).unwrap(),
                record
            );
            json["futureField"] = serde_json::json!({"nested": [1, 2]});
            assert_eq!(
                serde_json::from_value::<ModuleRecord>(json.clone()).unwrap(),
                record
            );
            json.as_object_mut().unwrap().remove("integrity");
            assert!(serde_json::from_value::<ModuleRecord>(json).is_err());
        }
    }

    #[test]
    fn blob_paths_round_trip() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let path = blob_path(hex);
        assert_eq!(
            path,
            "blobs/sha256/e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(blob_digest(&path).as_deref(), Some(hex));
        assert_eq!(blob_digest("blobs/sha256/e3/../x"), None);
    }
}
