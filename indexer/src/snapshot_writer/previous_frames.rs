//! Where a frame that must be compressed again finds its unchanged blobs:
//! in the previous snapshot's frames that held them, not in loose files.
//!
//! A 1% change at a million modules recompresses about 10,000 frames of
//! about 16 blobs each. Read as loose files, those 150,000 blobs are random
//! reads scattered over a directory of a million files, which held most of
//! the pack stage's wall time; the previous snapshot was just read end to
//! end for its hash, so its frames are usually in the page cache, and a
//! frame decompresses in microseconds. Every blob taken from there is still
//! re-hashed against the new manifest before it is packed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use mlld_schemas::snapshot::{Member, blob_digest};

use super::{Frame, FrameTable, frame_id};

/// A previous frame that the frame table places in the previous snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Source {
    first: String,
    last: String,
    offset: u64,
    len: u64,
    /// Its tar stream's length (headers, data, padding): the cap on decompressing it.
    tar_len: u64,
}

/// Walks the previous snapshot's frames beside the new ones (both in path
/// order), keeping those that may overlap the frame being placed.
pub(super) struct PreviousFrames<'a, I: Iterator<Item = Frame>> {
    frames: std::iter::Peekable<I>,
    table: &'a FrameTable,
    window: VecDeque<Source>,
}

impl<'a, I: Iterator<Item = Frame>> PreviousFrames<'a, I> {
    pub(super) fn new(frames: I, table: &'a FrameTable) -> Self {
        Self {
            frames: frames.peekable(),
            table,
            window: VecDeque::new(),
        }
    }

    /// The previous frames whose paths overlap `frame`'s range. Frames must
    /// be given in path order.
    pub(super) fn overlapping(&mut self, frame: &Frame) -> Vec<Source> {
        let (Some((first, _)), Some((last, _))) = (frame.first(), frame.last()) else {
            return Vec::new();
        };
        while self.window.front().is_some_and(|s| s.last < *first) {
            self.window.pop_front();
        }
        while let Some(next) = self
            .frames
            .next_if(|f| f.first().is_some_and(|(p, _)| p <= last))
        {
            if let Some(source) = self.source(&next)
                && source.last >= *first
            {
                self.window.push_back(source);
            }
        }
        self.window
            .iter()
            .filter(|s| s.first <= *last)
            .cloned()
            .collect()
    }

    /// The frame's place, when the table has one that a frame of its
    /// members could fill: a table damaged past that offers nothing.
    fn source(&self, frame: &Frame) -> Option<Source> {
        let (first, last) = (frame.first()?, frame.last()?);
        let &(offset, len) = self.table.frames.get(&frame_id(frame))?;
        let tar_len = frame.iter().try_fold(0u64, |sum, (_, m)| {
            sum.checked_add(m.size.checked_next_multiple_of(512)?.checked_add(512)?)
        })?;
        let bound = zstd::zstd_safe::compress_bound(usize::try_from(tar_len).ok()?) as u64;
        if len > bound.saturating_add(MAX_FRAME_OVERHEAD) {
            return None;
        }
        Some(Source {
            first: first.0.clone(),
            last: last.0.clone(),
            offset,
            len,
            tar_len,
        })
    }
}

/// zstd's frame header and checksum beyond its compress bound.
const MAX_FRAME_OVERHEAD: u64 = 1024;

/// The blobs of `frame` that `sources` hold, read out of the previous
/// snapshot `file`, as (path, bytes). Only blobs: their paths name their
/// content, where another member (the search index's files) keeps its path
/// as its content changes. Unverified: the caller hashes them. A source
/// that cannot be read yields nothing: the blobs are then read as files,
/// which every blob of the previous build also is.
pub(super) fn read_blobs(
    file: &File,
    sources: &[Source],
    frame: &[(String, Member)],
) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for source in sources {
        // Whatever a damaged frame gave before failing is dropped with it.
        let mut from_source = Vec::new();
        if read_source(file, source, frame, &mut from_source).is_ok() {
            found.append(&mut from_source);
        }
    }
    found
}

fn read_source(
    file: &File,
    source: &Source,
    frame: &[(String, Member)],
    found: &mut Vec<(String, Vec<u8>)>,
) -> io::Result<()> {
    let size = file.metadata()?.len();
    if source
        .offset
        .checked_add(source.len)
        .is_none_or(|end| end > size)
    {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the frame table places a frame past the previous snapshot's end",
        ));
    }
    // Bounded by `source` (see `PreviousFrames::source`).
    let mut compressed = vec![0; source.len as usize];
    file.read_exact_at(&mut compressed, source.offset)?;
    let decoder = zstd::Decoder::with_buffer(&compressed[..])?;
    let mut tar = tar::Archive::new(decoder.take(source.tar_len));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(i) = (frame.binary_search_by(|(p, _)| p.as_str().cmp(&path)).ok())
            .filter(|_| blob_digest(&path).is_some())
        else {
            continue;
        };
        mlld_site_contract::archive::member_path(&entry)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}")))?;
        let want = frame[i].1.size;
        let mut bytes = Vec::with_capacity(want.min(1 << 20) as usize);
        (&mut entry).take(want).read_to_end(&mut bytes)?;
        found.push((path, bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(path: &str) -> (String, Member) {
        let sha256 = mlld_schemas::sha256_hex(path.as_bytes());
        (path.to_string(), Member { sha256, size: 1 })
    }

    fn frame(paths: &[&str]) -> Frame {
        paths.iter().map(|p| member(p)).collect()
    }

    #[test]
    fn a_new_frame_gets_the_previous_frames_its_range_touches_and_no_others() {
        let previous = vec![frame(&["a", "c"]), frame(&["e", "g"]), frame(&["i", "k"])];
        let mut table = FrameTable::default();
        for (n, f) in previous.iter().enumerate() {
            table.frames.insert(frame_id(f), (n as u64 * 100, 100));
        }
        let mut walk = PreviousFrames::new(previous.clone().into_iter(), &table);
        let offsets = |sources: Vec<Source>| sources.iter().map(|s| s.offset).collect::<Vec<_>>();
        assert_eq!(offsets(walk.overlapping(&frame(&["b"]))), [0]);
        // Spans the first two, and the first is still offered.
        assert_eq!(offsets(walk.overlapping(&frame(&["c", "f"]))), [0, 100]);
        // Between frames: none.
        assert_eq!(offsets(walk.overlapping(&frame(&["h"]))), Vec::<u64>::new());
        assert_eq!(offsets(walk.overlapping(&frame(&["j", "z"]))), [200]);
        assert_eq!(
            offsets(walk.overlapping(&frame(&["zz"]))),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn frames_the_table_does_not_place_are_not_offered() {
        let previous = vec![frame(&["a", "c"]), frame(&["e", "g"])];
        let mut table = FrameTable::default();
        table.frames.insert(frame_id(&previous[1]), (7, 9));
        let mut walk = PreviousFrames::new(previous.into_iter(), &table);
        let got = walk.overlapping(&frame(&["b", "f"]));
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].offset, got[0].len, got[0].tar_len),
            (7, 9, 2 * 1024)
        );
        // A length no frame of these members could have is not offered.
        table
            .frames
            .insert(frame_id(&frame(&["a", "c"])), (0, 1 << 40));
        let previous = vec![frame(&["a", "c"])];
        let mut walk = PreviousFrames::new(previous.into_iter(), &table);
        assert_eq!(walk.overlapping(&frame(&["b"])), Vec::new());
    }

    #[test]
    fn frames_that_cannot_be_read_give_nothing_and_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("previous.tar.zst");
        let sha256 = mlld_schemas::sha256_hex(b"data");
        let blob_path = mlld_schemas::snapshot::blob_path(&sha256);
        let mut tar = Vec::new();
        super::super::entry(&mut tar, &blob_path, b"data", 0).unwrap();
        let good = zstd::bulk::compress(&tar, 3).unwrap();
        std::fs::write(&path, [&good[..], b"not zstd at all"].concat()).unwrap();
        let file = File::open(&path).unwrap();
        let member = Member { sha256, size: 4 };
        let source = |offset, len| Source {
            first: "a".into(),
            last: "z".into(),
            offset,
            len,
            tar_len: 1024,
        };
        let frame = [(blob_path.clone(), member)];
        let found = read_blobs(&file, &[source(0, good.len() as u64)], &frame);
        assert_eq!(found, [(blob_path.clone(), b"data".to_vec())]);
        let end = good.len() as u64;
        for bad in [
            source(end, 15),
            source(end - 2, 100),
            source(u64::MAX - 1, 10),
            source(3, 9),
        ] {
            assert_eq!(
                read_blobs(&file, std::slice::from_ref(&bad), &frame),
                [],
                "{bad:?}"
            );
        }
    }

    /// Blobs, each in its own loose file under `dir`, keyed by path.
    fn blobs(dir: &std::path::Path, range: std::ops::Range<usize>) -> Vec<(String, Member)> {
        range
            .map(|i| {
                let data = format!("module {i}\n").repeat(i % 7 + 1);
                let sha256 = mlld_schemas::sha256_hex(data.as_bytes());
                std::fs::write(dir.join(&sha256), &data).unwrap();
                let path = mlld_schemas::snapshot::blob_path(&sha256);
                let size = data.len() as u64;
                (path, Member { sha256, size })
            })
            .collect()
    }

    fn sorted(mut members: Vec<(String, Member)>) -> Vec<(String, Member)> {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members
    }

    /// Unpacks a snapshot's members (after the head) as (path, bytes).
    fn unpack(snapshot: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(snapshot).unwrap();
        let mut tar = tar::Archive::new(zstd::Decoder::new(&bytes[..]).unwrap());
        (tar.entries().unwrap())
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, data)
            })
            .filter(|(p, _)| p != "manifest.json")
            .collect()
    }

    #[test]
    fn a_recompressed_frame_takes_unchanged_blobs_from_the_previous_snapshot_and_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let loose = dir.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        let head = dir.path().join("head.zst");
        let mut manifest = Vec::new();
        super::super::entry(&mut manifest, "manifest.json", b"{}", 0).unwrap();
        std::fs::write(&head, zstd::bulk::compress(&manifest, 3).unwrap()).unwrap();
        // A search index file keeps its path as its content changes.
        let index_file = |text: &str| {
            let sha256 = mlld_schemas::sha256_hex(text.as_bytes());
            std::fs::write(loose.join(&sha256), text).unwrap();
            let size = text.len() as u64;
            ("index/terms.idx".to_string(), Member { sha256, size })
        };
        let before = sorted([blobs(&loose, 0..400), vec![index_file("old terms")]].concat());
        let locate = |dir: std::path::PathBuf| {
            move |_: &str, hex: &str| Some(dir.join(hex)).filter(|p| p.is_file())
        };
        let first = dir.path().join("first.tar.zst");
        let written = super::super::write(
            &first,
            &head,
            before.clone().into_iter(),
            &locate(loose.clone()),
            None,
        )
        .unwrap();
        // The old loose blobs are gone: only the new ones can be read as files.
        std::fs::remove_dir_all(&loose).unwrap();
        std::fs::create_dir(&loose).unwrap();
        let unchanged = before
            .iter()
            .filter(|(p, _)| p.starts_with("blobs/"))
            .cloned();
        let after = sorted(
            [
                unchanged.collect(),
                blobs(&loose, 400..410),
                vec![index_file("new terms")],
            ]
            .concat(),
        );
        let reuse =
            |members: Option<Box<dyn Iterator<Item = (String, Member)>>>| super::super::Reuse {
                snapshot: &first,
                table: &written.table,
                members,
            };
        let second = dir.path().join("second.tar.zst");
        let without = super::super::write(
            &second,
            &head,
            after.clone().into_iter(),
            &locate(loose.clone()),
            Some(reuse(None)),
        );
        assert!(
            without.is_err(),
            "no loose copies and no previous frames: the test proves nothing"
        );
        let again = super::super::write(
            &second,
            &head,
            after.clone().into_iter(),
            &locate(loose.clone()),
            Some(reuse(Some(Box::new(before.clone().into_iter())))),
        )
        .unwrap();
        assert!(again.frames_compressed > 0 && again.frames_reused > 0);
        let unpacked = unpack(&second);
        assert_eq!(unpacked.len(), after.len());
        for ((path, data), (want, m)) in unpacked.iter().zip(&after) {
            assert_eq!(path, want);
            assert_eq!(mlld_schemas::sha256_hex(data), m.sha256);
        }
        // A previous snapshot whose frames do not hold what their digests say is refused.
        let (mut damaged, mut table) = (Vec::new(), FrameTable::default());
        for f in super::super::frames(before.clone().into_iter()) {
            let mut tar = Vec::new();
            for (path, m) in &f {
                let data = format!("{}", m.size).into_bytes();
                let data = data.repeat(m.size as usize).split_off(0);
                super::super::entry(&mut tar, path, &data[..m.size as usize], 0).unwrap();
            }
            let compressed = zstd::bulk::compress(&tar, 3).unwrap();
            table.frames.insert(
                frame_id(&f),
                (damaged.len() as u64, compressed.len() as u64),
            );
            damaged.extend(compressed);
        }
        std::fs::write(&first, damaged).unwrap();
        let refused = super::super::write(
            &second,
            &head,
            after.into_iter(),
            &locate(loose),
            Some(super::super::Reuse {
                snapshot: &first,
                table: &table,
                members: Some(Box::new(before.into_iter())),
            }),
        );
        let err = refused
            .err()
            .expect("a damaged previous frame was packed")
            .to_string();
        assert!(err.contains("the previous snapshot's copy"), "{err}");
    }
}
