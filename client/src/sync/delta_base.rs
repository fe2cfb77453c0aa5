//! The delta base as the store holds it: the snapshot's manifest file, then
//! its search index members (`delta_base_parts`), read in place from the
//! pack. Nothing is copied or held: a chunk delta reads the ranges it
//! copies, and the whole is hashed once against the signed digest first.

use std::fs::File;
use std::io;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::{MANIFEST_NAME, delta_base_parts};
use mlld_site_contract::chunk_delta::Base;
use sha2::Digest as _;

use crate::store::{PACK_NAME, VerifiedManifest};

/// The base's parts, in order, each a range of one of `files`.
pub(crate) struct StoredBase {
    files: Vec<File>,
    spans: Vec<Span>,
    len: u64,
}

struct Span {
    file: usize,
    /// Where it lies in its file.
    at: u64,
    /// Where it starts in the base.
    start: u64,
    len: u64,
}

impl StoredBase {
    /// The base of `current`, as its store directory holds it.
    pub(crate) fn open(current: &VerifiedManifest) -> Result<Self> {
        let manifest_path = current.dir().join(MANIFEST_NAME);
        let pack_path = current.dir().join(PACK_NAME);
        let open = |path: &std::path::Path| {
            mlld_fsutil::open_regular(path).with_context(|| format!("opening {}", path.display()))
        };
        let files = vec![open(&manifest_path)?, open(&pack_path)?];
        let mut spans = Vec::new();
        let mut len = 0;
        for part in delta_base_parts(&current.manifest) {
            let (file, at, size) = if part == MANIFEST_NAME {
                (0, 0, files[0].metadata()?.len())
            } else {
                let (at, size) = current.member_location(part)?;
                (1, at, size)
            };
            spans.push(Span {
                file,
                at,
                start: len,
                len: size,
            });
            len += size;
        }
        Ok(Self { files, spans, len })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The SHA-256 (hex) of the whole base, read in order.
    pub(crate) fn sha256(&self) -> io::Result<String> {
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0; 1 << 20];
        let mut offset = 0;
        while offset < self.len {
            let n = (self.len - offset).min(buf.len() as u64) as usize;
            self.read_at(&mut buf[..n], offset)?;
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

impl Base for StoredBase {
    fn read_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        let mut i = self.spans.partition_point(|s| s.start + s.len <= offset);
        while !buf.is_empty() {
            let span = self.spans.get(i).ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read beyond the delta base")
            })?;
            let within = offset - span.start;
            let n = (span.len - within).min(buf.len() as u64) as usize;
            let (now, rest) = buf.split_at_mut(n);
            self.files[span.file].read_at(now, span.at + within)?;
            buf = rest;
            offset += n as u64;
            i += 1;
        }
        Ok(())
    }
}
