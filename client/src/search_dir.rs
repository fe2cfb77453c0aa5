//! The stored search index, opened strictly read-only.
//!
//! tantivy's readers take a "meta lock" by creating `.tantivy-meta.lock`
//! in the index directory, which fails on a read-only store and writes to
//! a verified snapshot otherwise. A stored index never changes after its
//! snapshot was verified (a new snapshot gets a new directory), so there is
//! nothing to lock against: this directory grants every lock without
//! touching the disk and refuses every write.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlld_schemas::search::tantivy;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, WatchCallback, WatchHandle, WritePtr,
};

/// An [`MmapDirectory`] that never writes, and locks nothing.
#[derive(Clone, Debug)]
pub struct ReadOnlyDirectory {
    inner: MmapDirectory,
}

impl ReadOnlyDirectory {
    pub fn open(dir: &Path) -> tantivy::Result<Self> {
        Ok(Self {
            inner: MmapDirectory::open(dir)?,
        })
    }
}

fn read_only(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "the stored search index is read-only (`{}` would be written)",
            path.display()
        ),
    )
}

impl Directory for ReadOnlyDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: Arc::new(read_only(path)),
            filepath: PathBuf::from(path),
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::wrap_io_error(
            read_only(path),
            path.to_path_buf(),
        ))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(read_only(path))
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    /// Nothing writes a stored index, so every lock is granted at once.
    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::directory::META_LOCK;

    #[test]
    fn locks_and_reads_never_write() {
        let dir = tempfile::tempdir().unwrap();
        let d = ReadOnlyDirectory::open(dir.path()).unwrap();
        let _lock = d.acquire_lock(&META_LOCK).unwrap();
        assert!(d.open_write(Path::new("x")).is_err());
        assert!(d.atomic_write(Path::new("meta.json"), b"{}").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
