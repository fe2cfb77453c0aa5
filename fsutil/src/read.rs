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
    read_capped(open_regular_with(path, 0)?, path, cap)
}

/// Reads the opened `file` of length `len`. The buffer is sized once from
/// that length: through `take` it would otherwise double its way up,
/// copying and touching twice the memory. A failed reservation falls back
/// to growing (which reports running out of memory as an error rather
/// than aborting).
fn read_capped((file, len): (File, u64), path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let expected = len.min(cap);
    let mut bytes = Vec::new();
    let _ = bytes.try_reserve_exact(usize::try_from(expected).unwrap_or(0));
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

/// Like [`read_regular_within`] for the file `name` of the folder `dir`
/// directly below `root`. When `dir` is a real directory (not a link),
/// only the file itself could lead out of the tree, so it is opened
/// without following a link and only a link is resolved and checked
/// against `root`. (The full check resolves every component of two paths
/// for each file: millions of system calls for a registry of 100,000
/// users, each of whose two files is read twice.) Anything else takes the
/// full check.
pub fn read_regular_in_dir(root: &Path, dir: &Path, name: &str, cap: u64) -> io::Result<Vec<u8>> {
    let path = dir.join(name);
    read_capped(open_in_dir(root, dir, name)?, &path, cap)
}

/// The opening half of [`read_regular_in_dir`], for a reader that streams.
pub fn open_regular_in_dir(root: &Path, dir: &Path, name: &str) -> io::Result<File> {
    open_in_dir(root, dir, name).map(|(file, _)| file)
}

/// [`open_regular_in_dir`], with the file's length.
fn open_in_dir(root: &Path, dir: &Path, name: &str) -> io::Result<(File, u64)> {
    let path = dir.join(name);
    let plain_name = !name.contains(['/', '\\']) && !matches!(name, "" | "." | "..");
    let folder_of_root = dir.parent() == Some(root)
        && std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir());
    if !(cfg!(unix) && plain_name && folder_of_root) {
        check_within(root, &path)?;
        return open_regular_with(&path, 0);
    }
    match open_regular_with(&path, NO_FOLLOW) {
        Err(e) if is_link_refused(&e) => {
            check_within(root, &path)?;
            open_regular_with(&path, 0)
        }
        other => other,
    }
}

/// Open flags: a FIFO never blocks the open; with [`NO_FOLLOW`], a link
/// at the last component is refused.
#[cfg(unix)]
const NO_FOLLOW: i32 = libc::O_NOFOLLOW;
#[cfg(not(unix))]
const NO_FOLLOW: i32 = 0;

/// What opening a link with [`NO_FOLLOW`] answers: `ELOOP` (Linux and
/// most), `EMLINK` (FreeBSD).
fn is_link_refused(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EMLINK))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
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
    open_regular_with(path, 0).map(|(file, _)| file)
}

/// [`open_regular`], refusing a link at the last component instead of
/// following it.
pub fn open_regular_no_follow(path: &Path) -> io::Result<File> {
    open_regular_with(path, NO_FOLLOW).map(|(file, _)| file)
}

/// [`open_regular`] with more open flags (`flags` is ignored off Unix),
/// and the length its check read.
fn open_regular_with(path: &Path, flags: i32) -> io::Result<(File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | flags);
    }
    #[cfg(not(unix))]
    let _ = flags;
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
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
    Ok((file, metadata.len()))
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

    /// A file in a folder of the tree is read without the full check; a
    /// link in its place is followed only inside the tree, as
    /// `read_regular_within` does; a FIFO and the cap are refused alike.
    #[cfg(unix)]
    #[test]
    fn a_file_in_a_known_folder_is_read_and_only_a_link_is_checked() {
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path().join("root");
        let folder = root.join("user");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("registry.json"), b"{}").unwrap();
        std::fs::write(root.join("shared.json"), b"[1]").unwrap();
        std::fs::write(tree.path().join("outside.json"), b"secret").unwrap();
        let read = |name: &str| read_regular_in_dir(&root, &folder, name, 16);
        assert_eq!(read("registry.json").unwrap(), b"{}");
        std::os::unix::fs::symlink("../shared.json", folder.join("inside")).unwrap();
        assert_eq!(read("inside").unwrap(), b"[1]");
        std::os::unix::fs::symlink("../../outside.json", folder.join("out")).unwrap();
        let err = read("out").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert_eq!(
            read("../../outside.json").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        let fifo = folder.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert_eq!(
            read("fifo").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        std::fs::write(folder.join("big"), [b' '; 17]).unwrap();
        assert_eq!(read("big").unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(read("missing").unwrap_err().kind(), io::ErrorKind::NotFound);
        // A folder that is itself a link out of the tree takes the full check.
        let elsewhere = tree.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("registry.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("linked")).unwrap();
        let linked = read_regular_in_dir(&root, &root.join("linked"), "registry.json", 16);
        assert_eq!(linked.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        // So does a folder that is not directly below the root.
        let deeper = read_regular_in_dir(&root, &elsewhere, "registry.json", 16);
        assert_eq!(deeper.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    }

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
