//! A project's `.mlld/`: the lock file and the module cache, in the exact
//! formats of the registry guide.
//!
//! Every write is atomic, and every change to the lock happens under an
//! exclusive file lock on `.mlld/.lock`, so concurrent client processes
//! serialise and a killed one leaves valid files behind.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_fsutil::{Confined, FileLock};
use mlld_schemas::{CacheMetadata, LockFile, check_lock};

pub const LOCK_FILE: &str = ".mlld/mlld.lock.json";

/// What marks a project's root, as `Cargo.toml` does for cargo.
pub const ROOT_MARKERS: [&str; 3] = [".mlld", "mlld-lock.json", "mlld-config.json"];

pub struct Project {
    root: PathBuf,
    /// Every write goes through here: nothing below the root is followed
    /// through a symbolic link.
    fs: Confined,
}

/// Which project a command works on, and how it was found.
pub struct Found {
    pub project: Project,
    /// The marker that identified the root when it was found by walking up
    /// from the current directory (None: named by `--project`, or none found).
    pub marker: Option<&'static str>,
}

impl Project {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            fs: Confined::new(root.clone()),
            root,
        }
    }

    /// `--project DIR` (which must exist), else the nearest directory from
    /// `cwd` upwards holding `.mlld/`, `mlld-lock.json` or
    /// `mlld-config.json`, else `cwd` itself (a first install creates `.mlld/` there).
    pub fn discover(explicit: Option<&Path>, cwd: &Path) -> Result<Found> {
        if let Some(dir) = explicit {
            if dir.is_file() {
                bail!(
                    "--project {}: a file, not a directory; name the directory holding it (the project's root, where .mlld/ is)",
                    dir.display()
                );
            }
            if !dir.is_dir() {
                bail!(
                    "--project {}: no such directory; create it, or name the directory holding .mlld/",
                    dir.display()
                );
            }
            return Ok(Found {
                project: Self::new(dir),
                marker: None,
            });
        }
        for dir in cwd.ancestors() {
            for marker in ROOT_MARKERS {
                // A symlinked `.mlld` marks a root too: its writes are then refused, by name.
                if std::fs::symlink_metadata(dir.join(marker)).is_ok() {
                    return Ok(Found {
                        project: Self::new(dir),
                        marker: Some(marker),
                    });
                }
            }
        }
        Ok(Found {
            project: Self::new(cwd),
            marker: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The project's writes, confined to its root.
    pub fn fs(&self) -> &Confined {
        &self.fs
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// Serialises writers of this project until the guard drops.
    pub fn exclusive(&self) -> Result<FileLock> {
        let path = self.root.join(".mlld/.lock");
        self.fs
            .lock(&path)
            .with_context(|| format!("locking {}", path.display()))
    }

    /// The lock file, or an empty one when the project has none yet. A
    /// malformed lock file is an error, never replaced.
    pub fn read_lock(&self) -> Result<LockFile> {
        let path = self.lock_path();
        let Some(text) = crate::input::read_text(&path)
            .context("the lock file is unreadable and was left untouched")?
        else {
            return Ok(LockFile::new());
        };
        let checked = check_lock(LOCK_FILE, &text);
        if let Some(lock) = checked.value {
            return Ok(lock);
        }
        let errors: Vec<String> = checked.errors().map(ToString::to_string).collect();
        let message = format!(
            "the lock file is invalid and was left untouched:\n{}\nfix it by hand, or restore it from version control",
            errors.join("\n")
        );
        match checked.errors().next() {
            Some(first) => Err(crate::json_output::Located {
                message,
                at: first.clone(),
            }
            .into()),
            None => bail!(message),
        }
    }

    /// Writes the lock file, after checking that the lock reader accepts
    /// what is written: a lock this client would refuse to read is never written.
    pub fn write_lock(&self, lock: &LockFile) -> Result<()> {
        let path = self.lock_path();
        let bytes = lock.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let errors: Vec<String> = check_lock(LOCK_FILE, &text)
            .errors()
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            bail!(
                "refusing to write a lock file the lock reader would reject (the snapshot or the project holds an invalid entry); {} was left as it was:\n{}",
                path.display(),
                errors.join("\n")
            );
        }
        self.fs
            .write_atomic(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// `.mlld/cache/gist/{user}/{gist}/{revision}/`.
    pub fn cache_dir(&self, user: &str, gist: &str, revision: &str) -> PathBuf {
        self.root
            .join(".mlld/cache/gist")
            .join(user)
            .join(gist)
            .join(revision)
    }

    /// What the cache holds for this entry: `Ok(true)` when content and
    /// metadata are present and the content hashes to `integrity`.
    pub fn cache_state(
        &self,
        user: &str,
        gist: &str,
        revision: &str,
        integrity: &str,
    ) -> CacheState {
        let dir = self.cache_dir(user, gist, revision);
        let Ok(content) = std::fs::read(dir.join("content.mld")) else {
            return CacheState::Missing;
        };
        if mlld_schemas::integrity_of(&content) != integrity {
            return CacheState::Tampered;
        }
        let meta: Option<CacheMetadata> = std::fs::read(dir.join("metadata.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match meta {
            Some(m)
                if m.integrity == integrity
                    && m.gist_revision == revision
                    && m.size == content.len() as u64 =>
            {
                CacheState::Valid
            }
            _ => CacheState::BadMetadata,
        }
    }

    /// Removes temporary lock files left by an interrupted atomic write.
    /// Call under [`Project::exclusive`].
    pub fn clean_staging(&self) -> Result<()> {
        if let Ok(entries) = std::fs::read_dir(self.root.join(".mlld")) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(".tmp-"))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Writes a cache entry: staged whole in `.{revision}.partial` beside
    /// it, then renamed into place, so a process killed at any moment leaves
    /// the entry complete or absent (a stale `.partial` is removed the next
    /// time the entry is written). A damaged entry is replaced whole.
    ///
    /// Entries are not fsynced one by one: every read re-hashes them against
    /// the lock (`verify`, `install`), which repairs what a power loss
    /// damaged. The lock file itself is always written durably. Call under
    /// [`Project::exclusive`]; distinct entries may be written concurrently.
    pub fn write_cache(
        &self,
        user: &str,
        gist: &str,
        content: &[u8],
        meta: &CacheMetadata,
    ) -> Result<()> {
        use std::io::ErrorKind;
        // Names become paths: only valid user, gist and revision names may.
        let valid = mlld_schemas::names::check_user(user)
            .and_then(|()| mlld_schemas::names::check_gist_id(gist))
            .and_then(|()| mlld_schemas::names::check_revision(&meta.gist_revision));
        if let Err(e) = valid {
            bail!(
                "refusing to write a cache entry for {user}/{gist}@{}: {e}",
                meta.gist_revision
            );
        }
        let dir = self.cache_dir(user, gist, &meta.gist_revision);
        let parent = dir.parent().expect("cache dirs have a parent");
        let staging = parent.join(format!(".{}.partial", meta.gist_revision));
        let context = || format!("writing the cache entry {}", dir.display());
        self.fs.create_dir_all(parent).with_context(context)?;
        match std::fs::create_dir(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                std::fs::remove_dir_all(&staging).with_context(context)?;
                std::fs::create_dir(&staging).with_context(context)?;
            }
            Err(e) => return Err(e).with_context(context),
        }
        std::fs::write(staging.join("content.mld"), content).with_context(context)?;
        std::fs::write(staging.join("metadata.json"), meta.to_bytes()).with_context(context)?;
        if std::fs::rename(&staging, &dir).is_err() {
            // The entry exists (damaged): replace it.
            std::fs::remove_dir_all(&dir).with_context(context)?;
            std::fs::rename(&staging, &dir).with_context(context)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheState {
    Valid,
    Missing,
    /// The content does not hash to the locked integrity.
    Tampered,
    BadMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_the_reader_would_reject_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let project = Project::new(dir.path());
        let mut lock = LockFile::new();
        lock.imports.insert(
            "mlld://sarah-k/llm-cache".into(),
            mlld_schemas::LockEntry {
                resolved: "mlld://gist/sarah-k/../..".into(),
                gist_revision: "../..".into(),
                integrity: format!("sha256:{}", "e".repeat(64)),
                approved_at: "2025-01-01T00:00:00Z".into(),
                extra: Default::default(),
            },
        );
        let err = project.write_lock(&lock).unwrap_err().to_string();
        assert!(err.contains("lock reader would reject"), "{err}");
        assert!(!project.lock_path().exists());
        project.write_lock(&LockFile::new()).unwrap();
        project.read_lock().unwrap();
    }

    #[test]
    fn the_root_is_the_nearest_marked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        let deep = root.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let found = Project::discover(None, &deep).unwrap();
        assert_eq!(found.project.root(), deep);
        assert_eq!(found.marker, None);
        for marker in ["mlld-config.json", "mlld-lock.json"] {
            std::fs::write(root.join(marker), "{}").unwrap();
            let found = Project::discover(None, &deep).unwrap();
            assert_eq!(found.project.root(), root);
            std::fs::remove_file(root.join(marker)).unwrap();
        }
        std::fs::create_dir(root.join(".mlld")).unwrap();
        let found = Project::discover(None, &deep).unwrap();
        assert_eq!(
            (found.project.root(), found.marker),
            (root.as_path(), Some(".mlld"))
        );
        assert!(Project::discover(Some(&root.join("missing")), &deep).is_err());
    }
}
