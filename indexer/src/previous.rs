//! The last published site, for incremental builds.
//!
//! Trust: `latest.json` must verify with the build's own key, and the
//! snapshot file must hash to the digest it names; only then is anything in
//! it reused. The ETags in `crawl-state.json` are used only when that file
//! names the same snapshot (a forged ETag can at worst cost a full fetch:
//! a `304` only comes back for GitHub's real current ETag).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, MANIFEST_NAME, blob_digest};
use mlld_schemas::{Latest, Manifest, ModuleRecord};
use serde::{Deserialize, Serialize};

use crate::signing::SigningKey;

pub const CRAWL_STATE_NAME: &str = "crawl-state.json";
/// A previous snapshot larger than this is refused.
const MAX_PREVIOUS_BYTES: u64 = 8 << 30;

/// ETags from the crawl that produced `snapshot`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CrawlState {
    pub snapshot: String,
    /// Gist id → ETag of the response its accepted record came from.
    pub etags: BTreeMap<String, String>,
    /// `user/module` → a rejection decided on a gist's content (owner, no
    /// module file), so an unchanged gist is rejected again without a counted request.
    #[serde(default)]
    pub rejected: BTreeMap<String, CachedRejection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedRejection {
    pub gist: String,
    pub etag: String,
    pub reason: String,
}

/// The previous build, unpacked.
pub struct Previous {
    pub latest: Latest,
    pub manifest: Manifest,
    pub etags: BTreeMap<String, String>,
    pub rejected: BTreeMap<String, CachedRejection>,
    /// Holds `blobs/…` of the previous snapshot.
    pub blob_root: PathBuf,
    by_name: BTreeMap<(String, String), usize>,
}

impl Previous {
    /// The previous record of `user/name` if it was built from the same gist.
    pub fn module(&self, user: &str, name: &str, gist: &str) -> Option<&ModuleRecord> {
        let i = *self
            .by_name
            .get(&(user.to_ascii_lowercase(), name.to_string()))?;
        let m = &self.manifest.modules[i];
        (m.gist == gist).then_some(m)
    }

    pub fn etag(&self, gist: &str) -> Option<&str> {
        self.etags.get(gist).map(String::as_str)
    }

    /// The previous content-based rejection of `user/name`, if its gist is the same.
    pub fn rejection(&self, user: &str, name: &str, gist: &str) -> Option<&CachedRejection> {
        self.rejected
            .get(&format!("{user}/{name}"))
            .filter(|r| r.gist == gist)
    }
}

/// Loads the site at `source` (a directory or an http(s) URL); `None` when it has no `latest.json`.
pub fn load(source: &str, key: &SigningKey, scratch: &Path) -> Result<Option<Previous>> {
    let fetch = |name: &str| -> Result<Option<Vec<u8>>> {
        if source.starts_with("http://") || source.starts_with("https://") {
            let url = format!("{}/{name}", source.trim_end_matches('/'));
            let resp = reqwest::blocking::get(&url).with_context(|| format!("fetching {url}"))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let resp = resp
                .error_for_status()
                .with_context(|| format!("fetching {url}"))?;
            let mut bytes = Vec::new();
            resp.take(MAX_PREVIOUS_BYTES + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading {url}"))?;
            Ok(Some(bytes))
        } else {
            match std::fs::read(Path::new(source).join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {source}/{name}")),
            }
        }
    };
    let Some(latest_bytes) = fetch(LATEST_NAME)? else {
        return Ok(None);
    };
    let sig = fetch(LATEST_SIG_NAME)?
        .with_context(|| format!("{source} has latest.json but no {LATEST_SIG_NAME}"))?;
    let pk = minisign_verify::PublicKey::decode(&key.public_key_file())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sig = minisign_verify::Signature::decode(&String::from_utf8_lossy(&sig))
        .map_err(|e| anyhow::anyhow!("the previous latest.json signature is malformed: {e}"))?;
    pk.verify(&latest_bytes, &sig, false).map_err(|e| {
        anyhow::anyhow!("the previous site's latest.json does not verify with this build's key ({e}); refusing to build on it (pass --previous none to start afresh)")
    })?;
    let latest: Latest =
        serde_json::from_slice(&latest_bytes).context("the previous latest.json is malformed")?;
    let snapshot = fetch(&latest.snapshot)?
        .with_context(|| format!("the previous snapshot {} is missing", latest.snapshot))?;
    let actual = mlld_schemas::sha256_hex(&snapshot);
    if actual != latest.sha256 {
        bail!(
            "the previous snapshot {} hashes to {actual}, not the signed {}; refusing to build on it",
            latest.snapshot,
            latest.sha256
        );
    }
    let manifest = unpack(&snapshot, scratch)?;
    let state = fetch(CRAWL_STATE_NAME)?
        .and_then(|b| serde_json::from_slice::<CrawlState>(&b).ok())
        .filter(|s| s.snapshot == latest.sha256)
        .unwrap_or_default();
    let by_name = manifest
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.user.to_ascii_lowercase(), m.name.clone()), i))
        .collect();
    Ok(Some(Previous {
        latest,
        manifest,
        etags: state.etags,
        rejected: state.rejected,
        blob_root: scratch.to_path_buf(),
        by_name,
    }))
}

/// Unpacks a snapshot whose whole-file digest is already verified: blobs
/// under `dest`, the manifest returned. Paths are still checked.
fn unpack(snapshot: &[u8], dest: &Path) -> Result<Manifest> {
    let mut archive = tar::Archive::new(zstd::Decoder::new(snapshot)?);
    let mut manifest = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            bail!(
                "the previous snapshot has an unsafe member `{}`",
                path.display()
            );
        }
        let name = path.to_string_lossy().into_owned();
        if name == MANIFEST_NAME {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            manifest = Some(
                serde_json::from_slice::<Manifest>(&bytes)
                    .context("the previous manifest is malformed")?,
            );
        } else if blob_digest(&name).is_some() {
            let out = dest.join(&path);
            std::fs::create_dir_all(out.parent().expect("blob paths have a parent"))?;
            entry.unpack(&out)?;
        }
    }
    manifest.context("the previous snapshot has no manifest")
}
