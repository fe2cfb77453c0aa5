//! Opening the previous site and reading its signed `latest.json`, and
//! telling whether a local directory holds a copy of it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::Latest;
use mlld_site_contract::reader::{Advice, Site, Timeouts};

use crate::signing::SigningKey;

/// What a timeout reading the previous site tells the indexer's user.
const ADVICE: Advice = Advice {
    idle_setting: "--idle-timeout sets it",
    rate_setting: "--min-rate sets it",
    next_step: "Nothing was published; try again, or pass --previous none for a full build",
};

/// Whether the site in `local` is a copy of the one at `source` (a cache of
/// the last build kept between runs, such as a CI cache): both `latest.json`
/// verify with the build's key and say the same (serial, snapshot, index,
/// deltas, sparse root). `Err` only when `source` cannot be read: a `local`
/// that is empty, unsigned or another build is not a copy, with the reason.
pub fn local_copy_of(
    local: &Path,
    source: &str,
    key: &SigningKey,
    timeouts: Timeouts,
) -> Result<std::result::Result<Latest, String>> {
    let pk = public_key(key)?;
    let published = read_latest(&open(source, timeouts)?, &pk)?;
    let here = read_latest(&Site::Dir(local.to_path_buf()), &pk);
    Ok(match (published, here) {
        (None, _) => Err(format!("{source} has no latest.json")),
        (_, Err(e)) => Err(format!("{e:#}")),
        (_, Ok(None)) => Err("it holds no site".into()),
        (Some(p), Ok(Some(h))) if p == h => Ok(h),
        (Some(p), Ok(Some(h))) => Err(format!(
            "it holds serial {} (snapshot {}), the published site serial {} (snapshot {})",
            h.serial, h.sha256, p.serial, p.sha256
        )),
    })
}

/// The site at `source`: a directory, or an http(s) URL read with `timeouts`.
pub(super) fn open(source: &str, timeouts: Timeouts) -> Result<Site> {
    Ok(
        if source.starts_with("http://") || source.starts_with("https://") {
            let agent = concat!("mlld-indexer/", env!("CARGO_PKG_VERSION"));
            Site::http(source, timeouts, ADVICE, agent)?
        } else {
            Site::Dir(PathBuf::from(source))
        },
    )
}

pub(super) fn public_key(key: &SigningKey) -> Result<minisign_verify::PublicKey> {
    minisign_verify::PublicKey::decode(&key.public_key_file()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `site`'s `latest.json`, verified with `pk`; `None` when it has none.
pub(super) fn read_latest(site: &Site, pk: &minisign_verify::PublicKey) -> Result<Option<Latest>> {
    let verified = mlld_site_contract::latest::read_signed(site, |bytes, sig| {
        let sig = minisign_verify::Signature::decode(sig)
            .map_err(|e| anyhow::anyhow!("the previous latest.json signature is malformed: {e}"))?;
        pk.verify(bytes, &sig, false).map_err(|e| {
            anyhow::anyhow!("the previous site's latest.json does not verify with this build's key ({e}); refusing to build on it (pass --previous none to start afresh)")
        })
    })
    .context("reading the previous site")?;
    Ok(verified.map(|v| v.latest))
}
