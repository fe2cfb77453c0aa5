//! The chunk delta's encoding: one zstd stream of operations that rebuild a
//! target (the new index-only tar) from a base the reader already holds
//! (its snapshot's manifest and search index). The indexer writes it,
//! deciding what to copy by content-defined chunks; the client applies it
//! as a stream. Neither side holds base or target in memory, and there is
//! no ceiling on their size but the caller's caps.
//!
//! Inside the zstd stream: the magic `MLLDCD1\n`, then operations, each a
//! tag byte and little-endian `u64` fields:
//!
//! - `C` offset length: the base's bytes `offset..offset + length`;
//! - `D` length, then that many bytes: literal bytes;
//! - `E`: the end; nothing may follow it.
//!
//! [`Reader`] refuses, with a message saying what is wrong, a stream with
//! another magic, an unknown or empty operation, a copy outside the base,
//! more bytes than the signed target size or fewer at the end, a stream cut
//! short, and anything after the end mark.

use std::io::{self, BufReader, Read, Write};

const MAGIC: &[u8; 8] = b"MLLDCD1\n";
const COPY: u8 = b'C';
const DATA: u8 = b'D';
const END: u8 = b'E';
/// The zstd window both sides use (8 MiB): the reader refuses a larger one,
/// so a hostile stream cannot make it allocate more.
const WINDOW_LOG: u32 = 23;

/// Random access into the base a delta applies to.
pub trait Base {
    /// Fills `buf` from the base's byte `offset` on. The reader calls it
    /// only for ranges within the base length it was given.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Base for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "beyond the base"))?;
        buf.copy_from_slice(range);
        Ok(())
    }
}

impl Base for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl<B: Base + ?Sized> Base for &B {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
}

/// Writes a chunk delta as its operations come, compressed as it goes.
pub struct Writer<W: Write> {
    out: zstd::Encoder<'static, W>,
    /// A copy not yet written: the next one may extend it.
    pending: Option<(u64, u64)>,
}

impl<W: Write> Writer<W> {
    /// Starts a delta on `out`, compressed at zstd `level`.
    pub fn new(out: W, level: i32) -> io::Result<Self> {
        let mut out = zstd::Encoder::new(out, level)?;
        out.window_log(WINDOW_LOG)?;
        out.include_checksum(true)?;
        out.write_all(MAGIC)?;
        Ok(Self { out, pending: None })
    }

    /// The base's bytes `offset..offset + len` come next (one operation
    /// with the copy before it when the two ranges are adjacent).
    pub fn copy(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if let Some((start, pending)) = &mut self.pending
            && *start + *pending == offset
        {
            *pending += len;
            return Ok(());
        }
        self.flush_copy()?;
        self.pending = Some((offset, len));
        Ok(())
    }

    /// `bytes` come next, literally.
    pub fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.flush_copy()?;
        self.out.write_all(&[DATA])?;
        self.out.write_all(&(bytes.len() as u64).to_le_bytes())?;
        self.out.write_all(bytes)
    }

    /// Writes the end mark, finishes the compressed stream and hands back `out`.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_copy()?;
        self.out.write_all(&[END])?;
        self.out.finish()
    }

    fn flush_copy(&mut self) -> io::Result<()> {
        if let Some((offset, len)) = self.pending.take()
            && len > 0
        {
            self.out.write_all(&[COPY])?;
            self.out.write_all(&offset.to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Where the reader is in the operation stream.
#[derive(Clone, Copy)]
enum State {
    Start,
    Between,
    Copy { offset: u64, left: u64 },
    Data { left: u64 },
    Done,
    Failed,
}

/// The target a chunk delta rebuilds from `base`, as a stream: every
/// operation is checked before a byte of it is produced.
pub struct Reader<R: Read, B: Base> {
    ops: zstd::Decoder<'static, BufReader<R>>,
    base: B,
    base_len: u64,
    target_len: u64,
    /// Bytes the target may still take.
    left: u64,
    state: State,
    failure: Option<String>,
}

impl<R: Read, B: Base> Reader<R, B> {
    /// Applies the compressed delta `patch` to `base` (`base_len` bytes),
    /// to yield exactly `target_len` bytes.
    pub fn new(patch: R, base: B, base_len: u64, target_len: u64) -> io::Result<Self> {
        let mut ops = zstd::Decoder::new(patch)?;
        ops.window_log_max(WINDOW_LOG)?;
        Ok(Self {
            ops,
            base,
            base_len,
            target_len,
            left: target_len,
            state: State::Start,
            failure: None,
        })
    }

    /// Why the delta was refused, once a read has failed on it (a reader of
    /// this stream may report the failure in its own words).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Produces up to `buf.len()` bytes of the current operation, or moves
    /// to the next one (`Ok(None)`).
    fn step(&mut self, buf: &mut [u8]) -> Result<Option<usize>, String> {
        match self.state {
            State::Start => {
                let mut magic = [0; 8];
                self.read_ops(&mut magic, "its start")?;
                if &magic != MAGIC {
                    return Err("is not a chunk delta (its magic is wrong)".into());
                }
                self.state = State::Between;
                Ok(None)
            }
            State::Between => {
                self.state = self.next_op()?;
                Ok(None)
            }
            State::Copy { offset, left } => {
                let n = left.min(buf.len() as u64) as usize;
                self.base
                    .read_at(&mut buf[..n], offset)
                    .map_err(|e| format!("could not be applied: reading the base: {e}"))?;
                self.state = match left - n as u64 {
                    0 => State::Between,
                    left => State::Copy {
                        offset: offset + n as u64,
                        left,
                    },
                };
                Ok(Some(n))
            }
            State::Data { left } => {
                let want = left.min(buf.len() as u64) as usize;
                let n = self
                    .ops
                    .read(&mut buf[..want])
                    .map_err(|e| format!("is damaged: {e}"))?;
                if n == 0 {
                    return Err("ends inside literal bytes (truncated)".into());
                }
                self.state = match left - n as u64 {
                    0 => State::Between,
                    left => State::Data { left },
                };
                Ok(Some(n))
            }
            State::Done => Ok(Some(0)),
            State::Failed => Err(self.failure.clone().unwrap_or_default()),
        }
    }

    /// Reads and checks the next operation.
    fn next_op(&mut self) -> Result<State, String> {
        let mut tag = [0; 1];
        self.read_ops(&mut tag, "an operation")?;
        match tag[0] {
            COPY => {
                let offset = self.read_u64()?;
                let len = self.read_u64()?;
                let len = self.claim(len)?;
                if offset
                    .checked_add(len)
                    .is_none_or(|end| end > self.base_len)
                {
                    return Err(format!(
                        "copies {len} bytes from offset {offset} of a {}-byte base: out of range",
                        self.base_len
                    ));
                }
                Ok(State::Copy { offset, left: len })
            }
            DATA => {
                let len = self.read_u64()?;
                let len = self.claim(len)?;
                Ok(State::Data { left: len })
            }
            END => {
                if self.left > 0 {
                    return Err(format!(
                        "ends {} bytes short of the signed {}-byte target",
                        self.left, self.target_len
                    ));
                }
                let mut more = [0; 1];
                match self.ops.read(&mut more) {
                    Ok(0) => Ok(State::Done),
                    Ok(_) => Err("has data after its end mark".into()),
                    Err(e) => Err(format!("is damaged after its end mark: {e}")),
                }
            }
            other => Err(format!("holds an unknown operation (byte {other:#04x})")),
        }
    }

    /// Takes `len` bytes of what the target may still hold.
    fn claim(&mut self, len: u64) -> Result<u64, String> {
        if len == 0 {
            return Err("holds an empty operation".into());
        }
        if len > self.left {
            return Err(format!(
                "makes more than the signed {}-byte target",
                self.target_len
            ));
        }
        self.left -= len;
        Ok(len)
    }

    fn read_u64(&mut self) -> Result<u64, String> {
        let mut bytes = [0; 8];
        self.read_ops(&mut bytes, "an operation")?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn read_ops(&mut self, buf: &mut [u8], what: &str) -> Result<(), String> {
        self.ops.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => format!("ends inside {what} (truncated)"),
            _ => format!("is damaged in {what}: {e}"),
        })
    }
}

impl<R: Read, B: Base> Read for Reader<R, B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.step(buf) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(why) => {
                    self.state = State::Failed;
                    self.failure.get_or_insert_with(|| why.clone());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "chunk_delta_tests.rs"]
mod tests;
