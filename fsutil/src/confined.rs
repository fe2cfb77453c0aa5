//! Writes confined to a directory tree: no directory or file below the
//! tree's root is ever followed through a symbolic link, so a symlinked
//! `.mlld`, `cache`, `.lock` or `tmp` cannot redirect a write elsewhere.
//!
//! The root itself is trusted (the user named it, and it may well sit
//! under a symlinked `/tmp` or home); everything below it must be a real
//! directory or file. A link is refused with an error naming it, never
//! followed and never silently replaced.

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::FileLock;

/// A directory tree whose writes never follow a symbolic link below its root.
#[derive(Clone, Debug)]
pub struct Confined {
    root: PathBuf,
}

impl Confined {
    /// A relative `root` is taken from the current directory, as are the
    /// paths checked against it: staging directories come back absolute
    /// from `tempfile`, and must still be found inside a root named
    /// relatively (`MLLD_REGISTRY_HOME=store`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            root: std::path::absolute(&root).unwrap_or(root),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks that no existing part of `path` below the root is a symbolic
    /// link, and that `path` lies inside the root.
    pub fn check(&self, path: &Path) -> io::Result<()> {
        let mut at = self.root.clone();
        for part in self.parts(path)? {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Err(symlink_error(&at)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates `dir` and its parents, each a real directory: an existing
    /// symbolic link or non-directory on the way is an error naming it.
    pub fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let parts = self.parts(dir)?;
        fs::create_dir_all(&self.root)?;
        let mut at = self.root.clone();
        for part in parts {
            at.push(part);
            match fs::create_dir(&at) {
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let m = fs::symlink_metadata(&at)?;
            if m.file_type().is_symlink() {
                return Err(symlink_error(&at));
            }
            if !m.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", at.display()),
                ));
            }
        }
        Ok(())
    }

    /// [`crate::write_atomic`] inside the tree. The final rename replaces a
    /// link at `path` itself rather than writing through it.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.create_dir_all(crate::parent_dir(path))?;
        crate::write_atomic(path, bytes)
    }

    /// [`crate::write_atomic_with`] inside the tree.
    pub fn write_atomic_with(
        &self,
        path: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        self.create_dir_all(crate::parent_dir(path))?;
        crate::write_atomic_with(path, fill)
    }

    /// [`FileLock::acquire`] inside the tree (the lock file is never a link).
    pub fn lock(&self, path: &Path) -> io::Result<FileLock> {
        self.create_dir_all(crate::parent_dir(path))?;
        FileLock::acquire(path)
    }

    /// Opens `path` for appending, created if needed, never through a link.
    pub fn open_append(&self, path: &Path) -> io::Result<File> {
        self.create_dir_all(crate::parent_dir(path))?;
        let mut options = fs::OpenOptions::new();
        options.create(true).append(true);
        crate::no_follow(&mut options);
        options.open(path).map_err(|e| crate::explain_open(path, e))
    }

    /// [`crate::rename_durable`] into the tree: `to`'s parents are real directories.
    pub fn rename_durable(&self, from: &Path, to: &Path) -> io::Result<()> {
        // A rename changes the directory `from` is in as much as `to`'s: a
        // link on its way would move (and, staged, delete) what lies outside.
        self.check(from)?;
        self.create_dir_all(crate::parent_dir(to))?;
        self.check(to)?;
        crate::rename_durable(from, to)
    }

    /// The components of `path` below the root; a path outside the root, or
    /// one that climbs with `..`, is refused.
    fn parts(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let path = std::path::absolute(path)?;
        let rest = path.strip_prefix(&self.root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to write {}: it is outside {}",
                    path.display(),
                    self.root.display()
                ),
            )
        })?;
        rest.components()
            .map(|c| match c {
                Component::Normal(p) => Ok(PathBuf::from(p)),
                Component::CurDir => Ok(PathBuf::new()),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "refusing to write {}: it leaves {}",
                        path.display(),
                        self.root.display()
                    ),
                )),
            })
            .filter(|p| !matches!(p, Ok(p) if p.as_os_str().is_empty()))
            .collect()
    }
}

fn symlink_error(at: &Path) -> io::Error {
    io::Error::other(format!(
        "refusing to write through the symbolic link {}: it could point outside; replace it with a real directory or file",
        at.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Confined, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        (dir, Confined::new(root), outside)
    }

    fn assert_refused(err: io::Error, link: &Path) {
        let text = err.to_string();
        assert!(text.contains("symbolic link"), "{text}");
        assert!(text.contains(&link.display().to_string()), "{text}");
    }

    #[test]
    fn a_symlinked_directory_on_the_way_is_refused() {
        let (_d, c, outside) = setup();
        let link = c.root().join(".mlld");
        symlink(&outside, &link).unwrap();
        let target = c.root().join(".mlld/cache/gist/x/content.mld");
        assert_refused(c.write_atomic(&target, b"x").unwrap_err(), &link);
        assert_refused(
            c.create_dir_all(target.parent().unwrap()).unwrap_err(),
            &link,
        );
        assert_refused(c.check(&target).unwrap_err(), &link);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_rename_from_under_a_symlinked_directory_is_refused() {
        let (_d, c, outside) = setup();
        fs::create_dir_all(outside.join("query")).unwrap();
        fs::write(outside.join("query/keep"), b"x").unwrap();
        let link = c.root().join("snap");
        symlink(&outside, &link).unwrap();
        let err = c
            .rename_durable(&link.join("query"), &c.root().join("tmp/old"))
            .unwrap_err();
        assert_refused(err, &link);
        assert!(outside.join("query/keep").is_file());
    }

    #[test]
    fn a_symlinked_nested_directory_is_refused() {
        let (_d, c, outside) = setup();
        fs::create_dir_all(c.root().join(".mlld")).unwrap();
        let link = c.root().join(".mlld/cache");
        symlink(&outside, &link).unwrap();
        let err = c
            .create_dir_all(&c.root().join(".mlld/cache/gist"))
            .unwrap_err();
        assert_refused(err, &link);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_symlinked_lock_or_append_file_is_never_followed() {
        let (_d, c, outside) = setup();
        fs::create_dir_all(c.root().join(".mlld")).unwrap();
        let victim = outside.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let lock = c.root().join(".mlld/.lock");
        symlink(&victim, &lock).unwrap();
        let err = c.lock(&lock).err().expect("a linked lock is refused");
        assert!(err.to_string().contains(".lock"), "{err}");
        let log = c.root().join(".mlld/usage.jsonl");
        symlink(&victim, &log).unwrap();
        assert!(c.open_append(&log).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn an_atomic_write_replaces_a_linked_file_instead_of_following_it() {
        let (_d, c, outside) = setup();
        let victim = outside.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let target = c.root().join("state.json");
        symlink(&victim, &target).unwrap();
        c.write_atomic(&target, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(
            !fs::symlink_metadata(&target)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let (_d, c, outside) = setup();
        assert!(c.write_atomic(&outside.join("f"), b"x").is_err());
        assert!(
            c.write_atomic(&c.root().join("../outside/f"), b"x")
                .is_err()
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        c.write_atomic(&c.root().join("./a/b"), b"x").unwrap();
    }
}
