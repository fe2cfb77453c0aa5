//! Writes the static site: loose blobs and the snapshot first, `latest.json` last.
//!
//! A client that reads the site at any moment sees either the old
//! `latest.json` (whose snapshot is still there: snapshots are immutable
//! and never overwritten) or the new one, whose snapshot is already complete.
//! `latest.json.minisig` is replaced just before `latest.json`; a client
//! that reads the pair mid-publish gets a signature mismatch and retries.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, Latest, Member, PUBLIC_KEY_NAME};

use crate::blobs::BlobDir;
use crate::previous::{CRAWL_STATE_NAME, CRAWL_STATE_SIG_NAME, CrawlState};
use crate::signing::SigningKey;

/// The site-relative path of a snapshot with this digest.
pub fn snapshot_site_path(sha256: &str) -> String {
    format!("snapshots/{sha256}.tar.zst")
}

/// Everything one build publishes.
pub struct Publication<'a> {
    pub staged_snapshot: &'a Path,
    pub latest: &'a Latest,
    pub index_html: &'a str,
    pub state: &'a CrawlState,
    pub members: &'a BTreeMap<String, Member>,
    pub blobs: &'a BlobDir,
}

/// Moves a finished snapshot into the site and points `latest.json` at it.
pub fn publish(out: &Path, key: &SigningKey, p: &Publication<'_>) -> Result<()> {
    let Publication {
        staged_snapshot,
        latest,
        index_html,
        state,
        members,
        blobs,
    } = *p;
    // Loose blobs first: content-addressed and immutable, so adding them
    // changes nothing a client sees. A missing or torn one is replaced.
    for (path, member) in members {
        let dest = out.join(path);
        let src = blobs.require(&member.sha256)?;
        std::fs::create_dir_all(dest.parent().expect("blob paths have a parent"))?;
        if src.starts_with(blobs.root()) {
            // Fetched and hashed by this build: it replaces whatever is there.
            std::fs::rename(&src, &dest).with_context(|| format!("publishing {path}"))?;
        } else if !std::fs::metadata(&dest).is_ok_and(|m| m.len() == member.size) {
            let tmp = dest.with_extension("tmp");
            std::fs::copy(&src, &tmp).with_context(|| format!("publishing {path}"))?;
            std::fs::rename(&tmp, &dest)?;
        }
    }
    let dest = out.join(&latest.snapshot);
    std::fs::create_dir_all(dest.parent().expect("snapshot paths have a parent"))?;
    mlld_fsutil::rename_durable(staged_snapshot, &dest)
        .with_context(|| format!("moving the snapshot to {}", dest.display()))?;
    mlld_fsutil::write_atomic(&out.join(PUBLIC_KEY_NAME), key.public_key_file().as_bytes())?;
    mlld_fsutil::write_atomic(&out.join("index.html"), index_html.as_bytes())?;
    // ETags for the next crawl; it names the snapshot it belongs to, so a stale file is ignored.
    let state_bytes = serde_json::to_vec(state)?;
    mlld_fsutil::write_atomic(&out.join(CRAWL_STATE_NAME), &state_bytes)?;
    let state_sig = key.sign(
        &state_bytes,
        &format!("mlld-registry crawl state for {}", state.snapshot),
    );
    mlld_fsutil::write_atomic(&out.join(CRAWL_STATE_SIG_NAME), state_sig.as_bytes())?;
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
