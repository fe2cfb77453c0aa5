//! Reading input files that someone else may have planted: only regular
//! files, never a FIFO or device (opening one would hang or stream for
//! ever), never through a symbolic link that leads out of the tree the
//! file belongs to, and never more than a cap.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Reads the regular file `path`, at most `cap` bytes. A FIFO, socket,
/// device or directory is refused without blocking.
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {cap} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// Like [`read_regular`], and `path` must resolve inside `root`: a symbolic
/// link is followed only when its target stays inside the tree.
pub fn read_regular_within(root: &Path, path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    check_within(root, path)?;
    read_regular(path, cap)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, cap)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

/// Errors unless `path`, with every link resolved, lies inside `root`.
pub fn check_within(root: &Path, path: &Path) -> io::Result<()> {
    let real_root = std::fs::canonicalize(root)?;
    let real = std::fs::canonicalize(path)?;
    if real.starts_with(&real_root) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symbolic link leading out of {} (to {}); refusing to read it",
                path.display(),
                root.display(),
                real.display()
            ),
        ))
    }
}

/// Opens `path` without blocking on a FIFO and checks it is a regular file
/// (for a reader that streams it rather than reading it whole).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file ({}); refusing to read it",
                path.display(),
                describe(kind)
            ),
        ));
    }
    Ok(file)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_read_and_caps_hold() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_regular(&f, 5).unwrap(), b"hello");
        assert!(read_regular(&f, 4).is_err());
        assert!(
            read_regular(dir.path(), 10)
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("latest.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_regular(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn links_may_not_leave_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("registry");
        std::fs::create_dir_all(root.join("alice")).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::write(root.join("alice/real.json"), b"r").unwrap();
        let out = root.join("alice/registry.json");
        std::os::unix::fs::symlink(dir.path().join("secret"), &out).unwrap();
        let inside = root.join("alice/inside.json");
        std::os::unix::fs::symlink(root.join("alice/real.json"), &inside).unwrap();
        let err = read_regular_within(&root, &out, 10).unwrap_err();
        assert!(err.to_string().contains("leading out of"), "{err}");
        assert_eq!(read_regular_within(&root, &inside, 10).unwrap(), b"r");
    }
}
