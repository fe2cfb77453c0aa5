//! A file written by a thread of its own, for the large staged files a
//! stage produces on one thread (the manifest: about a gigabyte at
//! 1,000,000 modules). Copying the bytes into the page cache is a third of
//! that stage's CPU; beside the thread that makes them, it costs no time.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes handed to the writing thread at once.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: the maker runs at most this far ahead of the
/// thread's `write` calls.
const IN_FLIGHT: usize = 4;

/// Buffers writes and hands them, a chunk at a time, to a thread that
/// writes them to the file. Only [`BackgroundWriter::finish`] completes
/// the file: it returns it once every byte is written, or the first error
/// the thread met. Dropped unfinished (an error elsewhere), the writer
/// waits for the thread and the file holds whole chunks only.
pub struct BackgroundWriter {
    buf: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    /// Written chunks come back to be filled again: fresh memory is slow
    /// to touch, and a gigabyte would otherwise pass through a thousand.
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<File>>>,
}

impl BackgroundWriter {
    pub fn new(file: File) -> io::Result<Self> {
        let (full, chunks) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (give_back, empty) = sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let thread = std::thread::Builder::new()
            .name("background-write".into())
            .spawn(move || {
                let mut file = file;
                for mut chunk in chunks {
                    file.write_all(&chunk)?;
                    chunk.clear();
                    let _ = give_back.try_send(chunk);
                }
                Ok(file)
            })?;
        Ok(Self {
            buf: Vec::with_capacity(CHUNK),
            full: Some(full),
            empty,
            thread: Some(thread),
        })
    }

    /// Hands the buffer over; a thread that stopped reports its error.
    fn hand_over(&mut self) -> io::Result<()> {
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.full.as_ref().map(|full| full.send(chunk).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread ended early: only an error ends it.
        self.join()
            .and(Err(io::Error::other("the background writer stopped")))
    }

    fn join(&mut self) -> io::Result<File> {
        self.full = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the background writer panicked"))?,
            None => Err(io::Error::other("the background writer already stopped")),
        }
    }

    /// Writes what is buffered, waits for the thread, and returns the file.
    pub fn finish(mut self) -> io::Result<File> {
        if !self.buf.is_empty() {
            self.hand_over()?;
        }
        self.join()
    }
}

impl Write for BackgroundWriter {
    /// Takes at most what fills the current chunk, so chunks stay their
    /// size; a full chunk is handed over first, so an error takes no bytes.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= CHUNK {
            self.hand_over()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Hands what is buffered to the thread; only
    /// [`BackgroundWriter::finish`] waits until it is in the file.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hand_over()
    }
}

impl Drop for BackgroundWriter {
    /// Unfinished: the thread writes what it was handed, then ends.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_order_through_many_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = BackgroundWriter::new(File::create(&path).unwrap()).unwrap();
        let mut expected = Vec::new();
        for i in 0..300_000u32 {
            let line = format!("{i}\n");
            w.write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        w.write_all(&vec![7u8; 3 * CHUNK + 5]).unwrap();
        expected.extend(std::iter::repeat_n(7u8, 3 * CHUNK + 5));
        w.finish().unwrap();
        assert!(expected.len() > 4 * CHUNK);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn dropped_unfinished_it_ends_with_whole_chunks_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = BackgroundWriter::new(File::create(&path).unwrap()).unwrap();
        w.write_all(&vec![3u8; 2 * CHUNK + 10]).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), vec![3u8; 2 * CHUNK]);
    }

    #[test]
    fn a_failing_file_is_an_error_not_a_hang() {
        // Read-only: every write fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let file = File::open(&path).unwrap();
        let mut w = BackgroundWriter::new(file).unwrap();
        let chunk = vec![1u8; CHUNK];
        let mut failed = false;
        for _ in 0..(IN_FLIGHT + 3) {
            if w.write_all(&chunk).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed || w.finish().is_err());
    }
}
