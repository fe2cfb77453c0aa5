//! The crawl state's stored form: independent zstd frames, each one JSON
//! document. The first holds the state without its four tables that grow
//! with the registry ([`SECTIONS`]); each table follows in a frame of its
//! own, so that they are read and written on all cores (at a million
//! modules they are 370 MB of JSON, and read as one document they were
//! the longest part of the stage that reads the previous site). Each
//! frame's header gives its JSON's length: the reader reserves a table's
//! text with it, and caps the whole. A file of one frame is a whole state,
//! as indexers before the split wrote it.

use std::io::{Read, Write as _};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{CrawlState, LEVEL, MAX_JSON_BYTES};
use crate::search_incremental::SearchState;
use crate::text_map::{TextListMap, TextMap};

/// The tables stored each in a frame of its own, after the rest of the
/// state, in this order (the last is the search state's `baseDocs`).
pub const SECTIONS: [&str; 4] = ["etags", "imports", "pages", "search.baseDocs"];

/// The state's stored form: the rest of the state, then each of
/// [`SECTIONS`], each a compressed frame, encoded on all cores.
pub fn encode(state: &CrawlState) -> Result<Vec<u8>> {
    let head = without_tables(state);
    let no_docs = TextMap::default();
    let docs = state.search.as_ref().map_or(&no_docs, |s| &s.base_docs);
    let mut framed: [Option<Result<Vec<u8>>>; 5] = Default::default();
    let [f0, f1, f2, f3, f4] = &mut framed;
    rayon::scope(|s| {
        s.spawn(|_| *f0 = Some(frame(&head)));
        s.spawn(|_| *f1 = Some(frame(&state.etags)));
        s.spawn(|_| *f2 = Some(frame(&state.imports)));
        s.spawn(|_| *f3 = Some(frame(&state.pages)));
        s.spawn(|_| *f4 = Some(frame(docs)));
    });
    let mut stored = Vec::new();
    for framed in framed {
        stored.extend_from_slice(&framed.expect("the scope ran every frame")?);
    }
    Ok(stored)
}

/// `state` with empty [`SECTIONS`].
pub(super) fn without_tables(state: &CrawlState) -> CrawlState {
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
        search: (state.search.as_ref()).map(|s| SearchState {
            base_meta: s.base_meta.clone(),
            base_files: s.base_files.clone(),
            base_docs: TextMap::default(),
        }),
        search_parts: state.search_parts.clone(),
        published_deltas: state.published_deltas.clone(),
        versions_rejected: state.versions_rejected.clone(),
    }
}

/// `value` as JSON in one compressed frame, whose header gives the JSON's
/// length (counted first, by writing it once to nowhere).
pub(super) fn frame(value: &impl Serialize) -> Result<Vec<u8>> {
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
pub(super) fn decode(bytes: &[u8]) -> Result<CrawlState> {
    let frames = split_frames(bytes)?;
    let [head, etags, imports, pages, docs] = match frames.as_slice() {
        [whole] => return parse(whole, MAX_JSON_BYTES),
        [head, etags, imports, pages, docs] => [*head, *etags, *imports, *pages, *docs],
        frames => anyhow::bail!(
            "the state has {} frames, not 1 or {}",
            frames.len(),
            SECTIONS.len() + 1
        ),
    };
    let sizes = [head, etags, imports, pages, docs].map(declared_size);
    let total = sizes.iter().try_fold(0u64, |sum, s| sum.checked_add((*s)?));
    anyhow::ensure!(
        total.is_some_and(|t| t <= MAX_JSON_BYTES),
        "the state's frames do not each give a length, or give more than {MAX_JSON_BYTES} bytes together"
    );
    let [head_len, etags_len, imports_len, pages_len, docs_len] =
        sizes.map(Option::unwrap_or_default);
    let (mut state, mut e, mut i, mut p, mut d) = (None, None, None, None, None);
    rayon::scope(|s| {
        s.spawn(|_| state = Some(parse::<CrawlState>(head, head_len)));
        s.spawn(|_| e = Some(table(etags, etags_len, |r, n| TextMap::from_json(r, n))));
        s.spawn(|_| {
            i = Some(table(imports, imports_len, |r, n| {
                TextListMap::from_json(r, n)
            }))
        });
        s.spawn(|_| p = Some(table(pages, pages_len, |r, n| TextMap::from_json(r, n))));
        s.spawn(|_| d = Some(table(docs, docs_len, |r, n| TextMap::from_json(r, n))));
    });
    let ran = "the scope ran every frame";
    let mut state = state.expect(ran)?;
    (state.etags, state.imports, state.pages) = (e.expect(ran)?, i.expect(ran)?, p.expect(ran)?);
    let docs = d.expect(ran)?;
    match &mut state.search {
        Some(search) => search.base_docs = docs,
        None => anyhow::ensure!(docs.is_empty(), "search documents without a search state"),
    }
    Ok(state)
}

/// The JSON length a frame's header gives, if it gives one.
pub(super) fn declared_size(frame: &[u8]) -> Option<u64> {
    zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
}

/// The zstd frames `bytes` holds, in order.
pub(super) fn split_frames(mut bytes: &[u8]) -> Result<Vec<&[u8]>> {
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
    let len = usize::try_from(len).context("a table longer than memory")?;
    Ok(read(&mut expanded, len)?)
}

/// One frame's JSON, expanding to at most `limit` bytes.
pub(super) fn parse<T: serde::de::DeserializeOwned>(frame: &[u8], limit: u64) -> Result<T> {
    let expanded = zstd::Decoder::with_buffer(frame)?.take(limit);
    Ok(serde_json::from_reader(std::io::BufReader::new(expanded))?)
}
