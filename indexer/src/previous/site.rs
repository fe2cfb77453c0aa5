//! Opening the previous site and reading its signed `latest.json`, and
//! telling what an output directory holds next to it (a copy of it, to
//! build on in place, or something else).

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

/// What an output directory holds, next to the published site a build is
/// to start from.
#[derive(Debug)]
pub enum OutSite {
    /// No `latest.json`: nothing to build on in place.
    NoSite,
    /// A copy of the published site (the last build, kept between runs,
    /// such as a CI cache): its `latest.json` verifies with the build's key
    /// and says what the published one says (serial, snapshot, index,
    /// deltas, sparse root).
    Copy(Box<Latest>),
    /// A build of this key newer than the published site: one whose
    /// publishing failed (it can still be published as it is).
    Unpublished(String),
    /// Another site, or one that does not verify: why.
    Other(String),
}

/// What `local` holds next to the site at `source`; `Err` only when
/// `source`'s `latest.json` cannot be read and verified.
pub fn out_site(
    local: &Path,
    source: &str,
    key: &SigningKey,
    timeouts: Timeouts,
) -> Result<OutSite> {
    let pk = public_key(key)?;
    let here =
        mlld_site_contract::latest::read_signed(&Site::Dir(local.to_path_buf()), verifier(&pk));
    let here = match here {
        Ok(None) => return Ok(OutSite::NoSite),
        Ok(Some(v)) => v.latest,
        Err(e) => return Ok(OutSite::Other(format!("{e:#}"))),
    };
    Ok(match read_latest(&open(source, timeouts)?, &pk)? {
        Some(published) if published == here => OutSite::Copy(Box::new(here)),
        Some(p) => {
            let why = format!(
                "it holds serial {} (snapshot {}) while the published site is serial {} (snapshot {})",
                here.serial, here.sha256, p.serial, p.sha256
            );
            if here.serial > p.serial {
                OutSite::Unpublished(why)
            } else {
                OutSite::Other(why)
            }
        }
        None => OutSite::Other(format!("{source} has no latest.json")),
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

/// The build key's public half, which every site it built verifies with.
pub(super) fn public_key(key: &SigningKey) -> Result<minisign_verify::PublicKey> {
    minisign_verify::PublicKey::decode(&key.public_key_file()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The verified `latest.json` of the previous site at `site`; `None` when it has none.
pub(super) fn read_latest(site: &Site, pk: &minisign_verify::PublicKey) -> Result<Option<Latest>> {
    let verified = mlld_site_contract::latest::read_signed(site, verifier(pk))
        .context("reading the previous site (pass --previous none to start afresh)")?;
    Ok(verified.map(|v| v.latest))
}

/// Checks a `latest.json` against its signature with the build's key.
fn verifier(pk: &minisign_verify::PublicKey) -> impl FnOnce(&[u8], &str) -> Result<()> + '_ {
    |bytes, sig| {
        let sig = minisign_verify::Signature::decode(sig)
            .map_err(|e| anyhow::anyhow!("its latest.json signature is malformed: {e}"))?;
        pk.verify(bytes, &sig, false).map_err(|e| {
            anyhow::anyhow!("its latest.json does not verify with this build's key ({e})")
        })
    }
}

/// The previous build from `local`, a copy of the published site whose
/// verified `latest.json` is `latest` (see [`out_site`]).
pub fn load_copy(
    local: &Path,
    latest: Latest,
    key: &SigningKey,
    scratch: &Path,
) -> Result<Option<super::Previous>> {
    let site = Site::Dir(local.to_path_buf());
    super::load_latest(&site, &public_key(key)?, latest, scratch)
}
