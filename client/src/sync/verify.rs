//! The checks every way into the store shares: caps on what a hostile
//! snapshot can make us read, the streamed hash, member paths, expiry (the
//! manifest's own checks are `manifest_stream`'s). `snapshot_import` and its
//! streaming part `unpack` both build on these, and neither on the other's internals.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::{Manifest, names};
use sha2::Digest as _;

/// Caps that bound what a hostile snapshot can make us read or write.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub compressed: u64,
    pub unpacked: u64,
    pub manifest: u64,
    /// A blob (module content).
    pub member: u64,
    /// A file of the search index, which grows with the registry (80 MB
    /// for one of them at 1,000,000 modules).
    pub index_member: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            compressed: 4 << 30,
            unpacked: 16 << 30,
            manifest: 2 << 30,
            member: 16 << 20,
            index_member: 1 << 30,
        }
    }
}

/// The SHA-256 of a file, streamed.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut f =
        mlld_fsutil::open_regular(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    io::copy(&mut f, &mut HashWriter(&mut h))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

struct HashWriter<'a>(&'a mut sha2::Sha256);
impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that fails once more than `left` bytes pass through it.
pub(crate) struct Capped<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
    pub(crate) what: &'static str,
}
impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "the snapshot's {} size is over the limit",
                self.what
            ))
        })?;
        Ok(n)
    }
}

/// What every verification of a snapshot is checked against: the trusted
/// keys, the clock (expiry), the caps, and the acceptance rule (the
/// rollback floor) applied to the signed serial before anything is written.
#[derive(Clone, Copy)]
pub struct Verifier<'a> {
    pub keys: &'a crate::trust::TrustedKeys,
    pub now: time::OffsetDateTime,
    pub limits: Limits,
    pub accept: Accept<'a>,
}

/// A check on a verified manifest, given the id of the key that signed it
/// and its serial, made before anything is written: `sync` refuses
/// rollbacks with it.
pub type Accept<'a> = &'a (dyn Fn(&str, u64) -> Result<()> + Sync);

/// Refuses a snapshot whose expiry has passed (a frozen mirror).
pub fn check_fresh(manifest: &Manifest, now: time::OffsetDateTime) -> Result<()> {
    check_expiry(manifest.serial, &manifest.expires, now)
}

pub(crate) fn check_expiry(serial: u64, expires: &str, now: time::OffsetDateTime) -> Result<()> {
    let at = names::parse_timestamp(expires).map_err(anyhow::Error::msg)?;
    if at <= now {
        bail!(
            "snapshot serial {serial} expired at {expires}: the site has stopped publishing or is serving a stale copy; sync from an up-to-date site"
        );
    }
    Ok(())
}

/// Staged files are synced before the snapshot directory is renamed into the
/// store, so a crash never leaves a pack that promises bytes it does not hold.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The member's path under the site contract's one set of member rules.
pub(crate) use mlld_site_contract::archive::member_path as safe_member_path;
