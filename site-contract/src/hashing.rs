//! SHA-256 and length of what streams through a reader or writer, so a
//! file is named by its digest as it is written or read, never re-read:
//! the indexer's writers and the client's delta both use it.

use std::io::{self, Read, Write};

use sha2::Digest as _;

/// Hashes and counts what passes through `inner`, either way.
pub struct Hashing<T> {
    pub inner: T,
    pub hasher: sha2::Sha256,
    pub len: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: sha2::Sha256::new(),
            len: 0,
        }
    }

    /// The digest (hex) and length of everything so far, and `inner`.
    pub fn finish(self) -> (mlld_schemas::snapshot::Digest, T) {
        let digest = mlld_schemas::snapshot::Digest {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.len,
        };
        (digest, self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
