//! Writes the static site: the snapshot first, `latest.json` last.
//!
//! A client that reads the site at any moment sees either the old
//! `latest.json` (whose snapshot is still there: snapshots are immutable
//! and never overwritten) or the new one, whose snapshot is already complete.
//! `latest.json.minisig` is replaced just before `latest.json`; a client
//! that reads the pair mid-publish gets a signature mismatch and retries.

use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, Latest, PUBLIC_KEY_NAME};

use crate::previous::{CRAWL_STATE_NAME, CrawlState};
use crate::signing::SigningKey;

/// The site-relative path of a snapshot with this digest.
pub fn snapshot_site_path(sha256: &str) -> String {
    format!("snapshots/{sha256}.tar.zst")
}

/// Moves a finished snapshot into the site and points `latest.json` at it.
pub fn publish(
    out: &Path,
    staged_snapshot: &Path,
    latest: &Latest,
    key: &SigningKey,
    index_html: &str,
    state: &CrawlState,
) -> Result<()> {
    let dest = out.join(&latest.snapshot);
    std::fs::create_dir_all(dest.parent().expect("snapshot paths have a parent"))?;
    mlld_fsutil::rename_durable(staged_snapshot, &dest)
        .with_context(|| format!("moving the snapshot to {}", dest.display()))?;
    mlld_fsutil::write_atomic(&out.join(PUBLIC_KEY_NAME), key.public_key_file().as_bytes())?;
    mlld_fsutil::write_atomic(&out.join("index.html"), index_html.as_bytes())?;
    // ETags for the next crawl; it names the snapshot it belongs to, so a stale file is ignored.
    mlld_fsutil::write_atomic(&out.join(CRAWL_STATE_NAME), &serde_json::to_vec(state)?)?;
    let mut latest_bytes = serde_json::to_vec_pretty(latest)?;
    latest_bytes.push(b'\n');
    let sig = key.sign(
        &latest_bytes,
        &format!("mlld-registry latest serial:{}", latest.serial),
    );
    mlld_fsutil::write_atomic(&out.join(LATEST_SIG_NAME), sig.as_bytes())?;
    mlld_fsutil::write_atomic(&out.join(LATEST_NAME), &latest_bytes)?;
    Ok(())
}
