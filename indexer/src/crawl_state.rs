//! The indexer's own state for the next build, published beside the site
//! and signed with the build's key: ETags, cached rejections, the
//! snapshot's frame table, what earlier builds published.
//!
//! It is written zstd-compressed (`crawl-state.json.zst`): it is read only
//! by the indexer, and at 100,000 modules the JSON is 39 MB of the site
//! against about a sixth of that compressed. A site published before the
//! change has `crawl-state.json`, which is still read, then removed by the
//! next build's clean-up.
//!
//! The compressed file is independent zstd frames, the tables that grow
//! with the registry each in its own (`frames`); indexers from before that
//! split cannot read it, and crawl afresh.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::snapshot_writer::FrameTable;
use crate::text_map::{TextListMap, TextMap};

mod frames;

pub const CRAWL_STATE_NAME: &str = "crawl-state.json.zst";
pub const CRAWL_STATE_SIG_NAME: &str = "crawl-state.json.zst.minisig";
/// The uncompressed state of sites built before `crawl-state.json.zst`.
pub const LEGACY_STATE_NAME: &str = "crawl-state.json";
pub const LEGACY_STATE_SIG_NAME: &str = "crawl-state.json.minisig";

/// The most compressed bytes read, and the most JSON they may expand to
/// (all frames together): a state beyond these is refused (the build then
/// crawls afresh) rather than exhausting memory.
pub const MAX_STORED_BYTES: u64 = 1 << 30;
pub const MAX_JSON_BYTES: u64 = 4 << 30;

/// zstd's fastest level: most of the state is digests and ETags, which
/// no level compresses much (at a million modules, 370 MB of JSON gave
/// 145 MB at level 1 in 1.7 s, 150 MB at level 3 in 3.0 s).
const LEVEL: i32 = 1;

/// ETags from the crawl that produced `snapshot`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CrawlState {
    pub snapshot: String,
    /// Gist id → ETag of the response its accepted record came from.
    pub etags: TextMap,
    /// `user/module` → a rejection decided on a gist's content (owner, no
    /// module file), so an unchanged gist is rejected again without a counted request.
    #[serde(default)]
    pub rejected: BTreeMap<String, CachedRejection>,
    /// Where the snapshot's compressed frames lie, for the next build to copy.
    #[serde(default)]
    pub frames: FrameTable,
    /// Module content digest → the registry references it makes, so an
    /// unchanged module is not read and scanned again.
    #[serde(default)]
    pub imports: TextListMap,
    /// `user/module` → the key of its generated page, and
    /// `#dependents/<bits>/<n>` → that of a dependents bucket (see `site_data`).
    #[serde(default)]
    pub pages: TextMap,
    /// Snapshots this site has published, newest first (for retention);
    /// index-only snapshots likewise.
    #[serde(default)]
    pub published: Vec<String>,
    #[serde(default)]
    pub published_index: Vec<String>,
    /// The search index's base segment, for an incremental index.
    #[serde(default)]
    pub search: Option<crate::search_incremental::SearchState>,
    /// The web page's search parts and the digest of their inputs, kept by
    /// a build whose listing searches alike (see `site_data`).
    #[serde(default)]
    pub search_parts: Option<crate::site_data::SearchPartsKey>,
    /// Delta files (patch and blob pack) each build published, newest first.
    #[serde(default)]
    pub published_deltas: Vec<Vec<String>>,
    /// `@author/name@version` → a rejection decided on content pinned by
    /// commit (hash mismatch, file absent from the commit, too large): the
    /// same source is rejected again without a request.
    #[serde(default)]
    pub versions_rejected: BTreeMap<String, crate::versioned_assemble::CachedVersionRejection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedRejection {
    pub gist: String,
    pub etag: String,
    pub reason: String,
}

/// How a state is stored: which file, and whether it is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFile {
    Compressed,
    Legacy,
}

impl StateFile {
    /// The names to look for, newest first.
    pub const ALL: [StateFile; 2] = [StateFile::Compressed, StateFile::Legacy];

    pub fn name(self) -> &'static str {
        match self {
            Self::Compressed => CRAWL_STATE_NAME,
            Self::Legacy => LEGACY_STATE_NAME,
        }
    }

    pub fn signature_name(self) -> &'static str {
        match self {
            Self::Compressed => CRAWL_STATE_SIG_NAME,
            Self::Legacy => LEGACY_STATE_SIG_NAME,
        }
    }

    /// Parses stored bytes, expanding under [`MAX_JSON_BYTES`].
    pub fn decode(self, bytes: &[u8]) -> Result<CrawlState> {
        match self {
            Self::Legacy => Ok(serde_json::from_slice(bytes)?),
            Self::Compressed => frames::decode(bytes),
        }
    }
}

pub use frames::encode;

/// The state in the site directory `root` (without checking its
/// signature: for the local publishing step, which built it), or `None`.
pub fn read_local(root: &Path) -> Result<Option<CrawlState>> {
    for file in StateFile::ALL {
        let path = root.join(file.name());
        match mlld_fsutil::read_regular(&path, MAX_STORED_BYTES) {
            Ok(bytes) => {
                return file
                    .decode(&bytes)
                    .map(Some)
                    .with_context(|| format!("{} is not a valid crawl state", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::frames::{SECTIONS, declared_size, frame, parse, split_frames, without_tables};
    use super::*;

    fn sample() -> CrawlState {
        let mut state = CrawlState {
            snapshot: "ab".repeat(32),
            ..CrawlState::default()
        };
        state.etags = (0..1000)
            .map(|i| (format!("gist{i}"), format!("\"etag-{i}\"")))
            .collect();
        state
    }

    #[test]
    fn the_stored_state_is_compressed_and_reads_back() {
        let state = sample();
        let stored = encode(&state).unwrap();
        let json = serde_json::to_vec(&state).unwrap();
        assert!(
            stored.len() * 3 < json.len(),
            "{} vs {}",
            stored.len(),
            json.len()
        );
        let back = StateFile::Compressed.decode(&stored).unwrap();
        assert_eq!(serde_json::to_vec(&back).unwrap(), json);
        assert_eq!(StateFile::Legacy.decode(&json).unwrap().etags.len(), 1000);
    }

    /// A state with every table and a search state.
    fn full_sample() -> CrawlState {
        let mut state = sample();
        let mut imports = crate::text_map::TextListMapBuilder::default();
        imports.insert("d1", &["@a/b", "@c/d"]);
        imports.insert("d0", &[] as &[&str]);
        state.imports = imports.finish();
        state.pages = [("u/m", "k1"), ("u/n", "k2")].into_iter().collect();
        state.published = vec!["snapshots/a.tar.zst".into()];
        state.search = Some(crate::search_incremental::SearchState {
            base_meta: "{}".into(),
            base_files: [("f".to_string(), "00".to_string())].into_iter().collect(),
            base_docs: [("u/m", "fp")].into_iter().collect(),
        });
        state.search_parts = Some(crate::site_data::SearchPartsKey {
            inputs: "ab".repeat(32),
            files: vec!["data/search-00.js".into()],
        });
        state
    }

    #[test]
    fn each_table_is_a_frame_of_its_own_and_the_whole_reads_back() {
        let state = full_sample();
        let stored = encode(&state).unwrap();
        let frames = split_frames(&stored).unwrap();
        assert_eq!(frames.len(), SECTIONS.len() + 1);
        // The first frame is the state without its tables; then the tables, in order.
        let head: CrawlState = parse(frames[0], MAX_JSON_BYTES).unwrap();
        assert_eq!(
            (head.etags.len(), head.imports.len(), head.pages.len()),
            (0, 0, 0)
        );
        assert_eq!(head.search.as_ref().unwrap().base_docs.len(), 0);
        assert_eq!(head.published, state.published);
        // Each table's frame says how long its JSON is (its text is reserved with it).
        for f in &frames[1..] {
            let size = zstd::zstd_safe::get_frame_content_size(f).unwrap().unwrap();
            assert_eq!(size, zstd::decode_all(*f).unwrap().len() as u64);
        }
        assert_eq!(
            parse::<TextMap>(frames[1], MAX_JSON_BYTES).unwrap(),
            state.etags
        );
        assert_eq!(
            parse::<TextListMap>(frames[2], MAX_JSON_BYTES).unwrap(),
            state.imports
        );
        assert_eq!(
            parse::<TextMap>(frames[3], MAX_JSON_BYTES).unwrap(),
            state.pages
        );
        let back = StateFile::Compressed.decode(&stored).unwrap();
        assert_eq!(
            serde_json::to_vec(&back).unwrap(),
            serde_json::to_vec(&state).unwrap()
        );
    }

    #[test]
    fn a_state_stored_whole_in_one_frame_still_reads() {
        let state = full_sample();
        // As indexers wrote it before the tables had frames of their own.
        let whole = frame(&state).unwrap();
        let back = StateFile::Compressed.decode(&whole).unwrap();
        assert_eq!(
            serde_json::to_vec(&back).unwrap(),
            serde_json::to_vec(&state).unwrap()
        );
    }

    #[test]
    fn frames_in_other_numbers_or_places_are_errors() {
        let stored = encode(&full_sample()).unwrap();
        let frames = split_frames(&stored).unwrap();
        let joined = |picked: &[&[u8]]| picked.concat();
        for picked in [
            &frames[..2],
            &frames[..4],
            &[
                frames[0], frames[1], frames[1], frames[2], frames[3], frames[4],
            ][..],
            // A list where a map of texts belongs.
            &[frames[0], frames[2], frames[1], frames[3], frames[4]][..],
        ] {
            assert!(StateFile::Compressed.decode(&joined(picked)).is_err());
        }
        // A table's frame that does not give its length.
        let unsized_etags = {
            let mut encoder = zstd::Encoder::new(Vec::new(), LEVEL).unwrap();
            serde_json::to_writer(&mut encoder, &full_sample().etags).unwrap();
            encoder.finish().unwrap()
        };
        assert!(declared_size(&unsized_etags).is_none());
        let picked = [frames[0], &unsized_etags, frames[2], frames[3], frames[4]];
        assert!(StateFile::Compressed.decode(&joined(&picked)).is_err());
        // Search documents, but no search state to hold them.
        let mut no_search = full_sample();
        no_search.search = None;
        let mut stored = frame(&without_tables(&no_search)).unwrap();
        for f in &frames[1..] {
            stored.extend_from_slice(f);
        }
        assert!(StateFile::Compressed.decode(&stored).is_err());
    }

    #[test]
    fn damaged_or_mislabelled_state_is_an_error_not_a_panic() {
        let stored = encode(&sample()).unwrap();
        assert!(
            StateFile::Compressed
                .decode(&stored[..stored.len() / 2])
                .is_err()
        );
        assert!(
            StateFile::Compressed
                .decode(b"{\"snapshot\":\"x\"}")
                .is_err()
        );
        assert!(StateFile::Legacy.decode(&stored).is_err());
    }

    #[test]
    fn the_local_state_prefers_the_compressed_file_and_falls_back_to_the_legacy_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_local(dir.path()).unwrap().is_none());
        let mut legacy = sample();
        legacy.snapshot = "legacy".into();
        std::fs::write(
            dir.path().join(LEGACY_STATE_NAME),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        assert_eq!(read_local(dir.path()).unwrap().unwrap().snapshot, "legacy");
        std::fs::write(
            dir.path().join(CRAWL_STATE_NAME),
            encode(&sample()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            read_local(dir.path()).unwrap().unwrap().snapshot,
            "ab".repeat(32)
        );
    }
}
