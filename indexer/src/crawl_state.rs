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
//! The compressed file is independent zstd frames, each one JSON document:
//! the state without its four tables that grow with the registry, then
//! those tables ([`SECTIONS`]), so that they are read on all cores. At a
//! million modules they are 370 MB of JSON, and read as one document they
//! were the longest part of the stage that reads the previous site. A file
//! of one frame is a whole state, as indexers before the split wrote it;
//! those indexers cannot read the split file, and crawl afresh.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::snapshot_writer::FrameTable;
use crate::text_map::{TextListMap, TextMap};

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
    /// `user/module` → the key of its generated page (see `site_data`).
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
            Self::Compressed => decode_frames(bytes),
        }
    }
}

/// The tables stored each in a frame of its own, after the rest of the
/// state, in this order (the last is the search state's `baseDocs`).
pub const SECTIONS: [&str; 4] = ["etags", "imports", "pages", "search.baseDocs"];

/// The state's stored form: the rest of the state, then each of
/// [`SECTIONS`], each a compressed frame, encoded on all cores.
pub fn encode(state: &CrawlState) -> Result<Vec<u8>> {
    let head = without_tables(state);
    let no_docs = TextMap::default();
    let docs = state.search.as_ref().map_or(&no_docs, |s| &s.base_docs);
    let ((head, etags), (imports, (pages, docs))) = rayon::join(
        || rayon::join(|| frame(&head), || frame(&state.etags)),
        || {
            rayon::join(
                || frame(&state.imports),
                || rayon::join(|| frame(&state.pages), || frame(docs)),
            )
        },
    );
    let mut stored = head?;
    for section in [etags, imports, pages, docs] {
        stored.extend_from_slice(&section?);
    }
    Ok(stored)
}

/// `state` with empty [`SECTIONS`].
fn without_tables(state: &CrawlState) -> CrawlState {
    // Every field named: one added later must be placed here or in a section.
    CrawlState {
        snapshot: state.snapshot.clone(),
        etags: TextMap::default(),
        rejected: state.rejected.clone(),
        frames: state.frames.clone(),
        imports: TextListMap::default(),
        pages: TextMap::default(),
        published: state.published.clone(),
        published_index: state.published_index.clone(),
        search: (state.search.as_ref()).map(|s| crate::search_incremental::SearchState {
            base_meta: s.base_meta.clone(),
            base_files: s.base_files.clone(),
            base_docs: TextMap::default(),
        }),
        published_deltas: state.published_deltas.clone(),
        versions_rejected: state.versions_rejected.clone(),
    }
}

/// `value` as JSON in one compressed frame, whose header gives the JSON's
/// length (counted first: the reader reserves the table's text with it).
fn frame(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut counted = Counted(0);
    serde_json::to_writer(&mut counted, value)?;
    let mut encoder = zstd::Encoder::new(Vec::new(), LEVEL)?;
    encoder.set_pledged_src_size(Some(counted.0))?;
    let mut out = std::io::BufWriter::new(&mut encoder);
    serde_json::to_writer(&mut out, value)?;
    out.flush()?;
    drop(out);
    Ok(encoder.finish()?)
}

/// Counts the bytes written to it.
struct Counted(u64);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stored state: one frame holding it whole, or the rest and then
/// [`SECTIONS`], read on all cores. Those frames must each give their
/// JSON's length, together at most [`MAX_JSON_BYTES`], and expand to no
/// more than they give.
fn decode_frames(bytes: &[u8]) -> Result<CrawlState> {
    match split_frames(bytes)?.as_slice() {
        [whole] => parse(whole, MAX_JSON_BYTES),
        [head, etags, imports, pages, docs] => {
            let sizes = [head, etags, imports, pages, docs].map(|f| declared_size(f));
            let [head_len, etags_len, imports_len, pages_len, docs_len] = sizes;
            let total = sizes.iter().try_fold(0u64, |sum, s| Some(sum + (*s)?));
            anyhow::ensure!(
                total.is_some_and(|t| t <= MAX_JSON_BYTES),
                "the state's frames do not each give a length, or give more than {MAX_JSON_BYTES} bytes together"
            );
            let sized = |len: Option<u64>| len.expect("checked above");
            let (head, ((etags, imports), (pages, docs))) = rayon::join(
                || parse::<CrawlState>(head, sized(head_len)),
                || {
                    rayon::join(
                        || {
                            rayon::join(
                                || table(etags, sized(etags_len), |r, n| TextMap::from_json(r, n)),
                                || {
                                    table(imports, sized(imports_len), |r, n| {
                                        TextListMap::from_json(r, n)
                                    })
                                },
                            )
                        },
                        || {
                            rayon::join(
                                || table(pages, sized(pages_len), |r, n| TextMap::from_json(r, n)),
                                || table(docs, sized(docs_len), |r, n| TextMap::from_json(r, n)),
                            )
                        },
                    )
                },
            );
            let mut state = head?;
            (state.etags, state.imports, state.pages) = (etags?, imports?, pages?);
            let docs = docs?;
            match &mut state.search {
                Some(search) => search.base_docs = docs,
                None => anyhow::ensure!(docs.is_empty(), "search documents without a search state"),
            }
            Ok(state)
        }
        frames => anyhow::bail!(
            "the state has {} frames, not 1 or {}",
            frames.len(),
            SECTIONS.len() + 1
        ),
    }
}

/// The JSON length a frame's header gives, if it gives one.
fn declared_size(frame: &[u8]) -> Option<u64> {
    zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
}

/// The zstd frames `bytes` holds, in order.
fn split_frames(mut bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        anyhow::ensure!(
            frames.len() <= SECTIONS.len(),
            "the state has more than {} frames",
            SECTIONS.len() + 1
        );
        let len = zstd::zstd_safe::find_frame_compressed_size(bytes).map_err(|code| {
            anyhow::anyhow!(
                "not a zstd frame: {}",
                zstd::zstd_safe::get_error_name(code)
            )
        })?;
        let (frame, rest) = bytes.split_at(len);
        frames.push(frame);
        bytes = rest;
    }
    Ok(frames)
}

/// A table's frame, read by `read` with its JSON's length, `len` (from the
/// frame's header: its text is reserved with it), expanding to no more.
fn table<T>(
    frame: &[u8],
    len: u64,
    read: fn(&mut dyn Read, usize) -> serde_json::Result<T>,
) -> Result<T> {
    let mut expanded = zstd::Decoder::with_buffer(frame)?.take(len);
    Ok(read(&mut expanded, usize::try_from(len)?)?)
}

/// One frame's JSON, expanding to at most `limit` bytes.
fn parse<T: serde::de::DeserializeOwned>(frame: &[u8], limit: u64) -> Result<T> {
    let expanded = zstd::Decoder::with_buffer(frame)?.take(limit);
    Ok(serde_json::from_reader(std::io::BufReader::new(expanded))?)
}

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
