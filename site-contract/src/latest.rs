//! Reading the site's signed pointer, `latest.json`, the same way on both
//! sides: capped reads of the file and its minisign signature, the
//! signature checked by the caller's trust (the client's trusted keys, or
//! the indexer's own key) before a byte of it is parsed, then the format.
//! What each side checks beyond that (expiry and rollback for the client)
//! stays with it.

use anyhow::{Context, Result, bail};
use mlld_schemas::Latest;
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, SNAPSHOT_FORMAT};
use mlld_schemas::sparse::SparseRoot;

use crate::reader::Site;

/// The most bytes `latest.json` and its signature may have.
pub const MAX_LATEST_BYTES: u64 = 64 << 10;
pub const MAX_SIGNATURE_BYTES: u64 = 4 << 10;

/// A pointer whose signature verified, with what the verifier returned
/// (for the client, the id of the key that signed it).
pub struct Verified<K> {
    pub latest: Latest,
    pub signer: K,
}

/// Reads and verifies `latest.json`; `None` when the site has none (an
/// empty site, for the indexer's first build). `verify` gets the file's
/// bytes and the signature's text and errors unless a trusted key signed them.
pub fn read_signed<K>(
    site: &Site,
    verify: impl FnOnce(&[u8], &str) -> Result<K>,
) -> Result<Option<Verified<K>>> {
    let Some(bytes) = site.read(LATEST_NAME, MAX_LATEST_BYTES)? else {
        return Ok(None);
    };
    let sig = site
        .read(LATEST_SIG_NAME, MAX_SIGNATURE_BYTES)?
        .with_context(|| {
            format!(
                "{} has {LATEST_NAME} but no {LATEST_SIG_NAME}: the site is incomplete or not signed",
                site.describe()
            )
        })?;
    let sig = String::from_utf8(sig).with_context(|| format!("{LATEST_SIG_NAME} is not text"))?;
    let signer = verify(&bytes, &sig)?;
    let latest: Latest = serde_json::from_slice(&bytes)
        .with_context(|| format!("the signed {LATEST_NAME} is malformed"))?;
    if latest.format_version != SNAPSHOT_FORMAT {
        bail!(
            "the site publishes snapshot format {} (this build reads {SNAPSHOT_FORMAT}); upgrade mlld-registry",
            latest.format_version
        );
    }
    Ok(Some(Verified { latest, signer }))
}

/// A sparse root must be the pointer's own build: the same serial, expiry
/// and snapshot. A root of another build or registry, even one signed
/// pointer's digest away, is refused.
pub fn check_root_binding(root: &SparseRoot, latest: &Latest) -> Result<()> {
    if root.serial != latest.serial || root.snapshot != latest.sha256 {
        bail!(
            "the sparse root is serial {} of snapshot {}, but the signed latest.json is serial {} of snapshot {}: the site mixes two builds or registries; refused, nothing was written",
            root.serial,
            root.snapshot,
            latest.serial,
            latest.sha256
        );
    }
    if root.expires != latest.expires {
        bail!(
            "the sparse root expires at {}, but the signed latest.json at {}; refused, nothing was written",
            root.expires,
            latest.expires
        );
    }
    Ok(())
}
