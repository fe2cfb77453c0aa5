//! The last published site, for incremental builds.
//!
//! Trust: `latest.json` must verify with the build's own key, and the
//! snapshot file must hash to the digest it names; only then is anything in
//! it reused. `crawl-state.json` (ETags, cached rejections, the snapshot's
//! frame table) is used only when it is signed by the same key and names
//! the same snapshot.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, MANIFEST_NAME, blob_digest};
use mlld_schemas::{Latest, Manifest, ModuleRecord};
use serde::{Deserialize, Serialize};

pub use crate::previous_http::Timeouts;
use crate::previous_http::{MAX_PREVIOUS_BYTES, Remote};
use crate::signing::SigningKey;
use crate::snapshot_writer::FrameTable;

pub const CRAWL_STATE_NAME: &str = "crawl-state.json";
pub const CRAWL_STATE_SIG_NAME: &str = "crawl-state.json.minisig";

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
    /// Where the snapshot's compressed frames lie, for the next build to copy.
    #[serde(default)]
    pub frames: FrameTable,
    /// Module content digest → the registry references it makes, so an
    /// unchanged module is not read and scanned again.
    #[serde(default)]
    pub imports: BTreeMap<String, Vec<String>>,
    /// `user/module` → the key of its generated page (see `site_data`).
    #[serde(default)]
    pub pages: BTreeMap<String, String>,
    /// Snapshots this site has published, newest first (for retention);
    /// index-only snapshots likewise.
    #[serde(default)]
    pub published: Vec<String>,
    #[serde(default)]
    pub published_index: Vec<String>,
    /// The search index's base segment, for an incremental index.
    #[serde(default)]
    pub search: Option<crate::search_incremental::SearchState>,
    /// Delta files (patch and blob pack) each build published, newest first.
    #[serde(default)]
    pub published_deltas: Vec<Vec<String>>,
    /// `@author/name@version` → a rejection decided on content pinned by
    /// commit (hash mismatch, file absent from the commit, too large): the
    /// same source is rejected again without a request.
    #[serde(default)]
    pub versions_rejected: BTreeMap<String, crate::versioned_assemble::CachedVersionRejection>,
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
    pub frames: FrameTable,
    pub imports: BTreeMap<String, Vec<String>>,
    pub pages: BTreeMap<String, String>,
    pub published: Vec<String>,
    pub published_index: Vec<String>,
    pub published_deltas: Vec<Vec<String>>,
    pub search: Option<crate::search_incremental::SearchState>,
    pub versions_rejected: BTreeMap<String, crate::versioned_assemble::CachedVersionRejection>,
    /// The previous snapshot file (verified against the signed latest.json).
    pub snapshot: PathBuf,
    /// Its index-only snapshot (likewise verified), the base of the next delta;
    /// `None` when the previous site has none.
    pub index_snapshot: Option<PathBuf>,
    /// Holds `blobs/…` of the previous snapshot.
    pub blob_root: PathBuf,
    by_name: BTreeMap<(String, String), usize>,
    /// The previous module records (moved out of `manifest.modules`), each
    /// handed to the crawl once: the new record replaces it as the crawl
    /// goes, instead of both registries' records being held until its end.
    modules: Vec<Mutex<Option<ModuleRecord>>>,
}

impl Previous {
    /// The previous record of `user/name` if it was built from the same
    /// gist, taken: a second call for the same module gets `None`.
    pub fn take_module(&self, user: &str, name: &str, gist: &str) -> Option<ModuleRecord> {
        let i = *self
            .by_name
            .get(&(user.to_ascii_lowercase(), name.to_string()))?;
        let mut slot = self.modules[i].lock().unwrap_or_else(|e| e.into_inner());
        slot.take_if(|m| m.gist == gist)
    }

    /// Frees the previous module records and advisories once the crawl no
    /// longer needs them (at 100,000 modules they take hundreds of
    /// megabytes); the manifest's members stay, for the delta.
    pub fn release_records(&mut self) {
        self.manifest.modules = Vec::new();
        self.manifest.advisories = Vec::new();
        self.by_name = BTreeMap::new();
        self.modules = Vec::new();
    }

    /// Frees the previous versioned records once versions are indexed.
    pub fn release_versioned(&mut self) {
        self.manifest.versioned = Vec::new();
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
pub fn load(
    source: &str,
    key: &SigningKey,
    scratch: &Path,
    timeouts: Timeouts,
) -> Result<Option<Previous>> {
    let remote = if source.starts_with("http://") || source.starts_with("https://") {
        Some(Remote::new(timeouts)?)
    } else {
        None
    };
    let remote = remote.as_ref();
    let Some(latest_bytes) = read_small(source, remote, LATEST_NAME)? else {
        return Ok(None);
    };
    let sig = read_small(source, remote, LATEST_SIG_NAME)?
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
    std::fs::create_dir_all(scratch)?;
    let snapshot = if let Some(remote) = remote {
        let dest = scratch.join("previous.tar.zst");
        remote.download(
            &format!("{}/{}", source.trim_end_matches('/'), latest.snapshot),
            &dest,
            latest.size,
        )?;
        dest
    } else {
        Path::new(source).join(&latest.snapshot)
    };
    // Hashing the snapshot, parsing its manifest and reading the crawl state
    // run side by side; nothing parsed is used unless the hashes match.
    let (actual, index_snapshot, manifest, state) = std::thread::scope(|s| {
        let hashed = s.spawn(|| -> Result<_> {
            let actual = file_sha256(&snapshot).with_context(|| {
                format!(
                    "the previous snapshot {} is missing or unreadable",
                    latest.snapshot
                )
            })?;
            let index_snapshot = match &latest.index {
                Some(index) => fetch_verified(
                    source,
                    remote,
                    &index.path,
                    &index.sha256,
                    scratch,
                    "previous.index.tar.zst",
                )?,
                None => None,
            };
            Ok((actual, index_snapshot))
        });
        let state = s.spawn(|| read_state(source, remote, &pk, &latest));
        let manifest = read_manifest(&snapshot);
        let (actual, index_snapshot) = hashed.join().expect("hashing does not panic")?;
        let state = state.join().expect("reading the state does not panic")?;
        anyhow::Ok((actual, index_snapshot, manifest, state))
    })?;
    if actual != latest.sha256 {
        bail!(
            "the previous snapshot {} hashes to {actual}, not the signed {}; refusing to build on it",
            latest.snapshot,
            latest.sha256
        );
    }
    let mut manifest = manifest?;
    // The site's loose blobs spare unpacking the snapshot; any that are
    // missing mean unpacking it. Either way, packing re-verifies every blob.
    let site_blobs_complete = remote.is_none() && {
        use rayon::prelude::*;
        let blobs: Vec<_> = manifest
            .members
            .iter()
            .filter(|(path, _)| blob_digest(path).is_some())
            .collect();
        blobs.par_iter().all(|(path, m)| {
            std::fs::metadata(Path::new(source).join(path))
                .is_ok_and(|md| md.is_file() && md.len() == m.size)
        })
    };
    let blob_root = if site_blobs_complete {
        PathBuf::from(source)
    } else {
        let dest = scratch.join("unpacked");
        unpack_blobs(&snapshot, &dest)?;
        dest
    };
    let by_name = manifest
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.user.to_ascii_lowercase(), m.name.clone()), i))
        .collect();
    let modules = std::mem::take(&mut manifest.modules)
        .into_iter()
        .map(|m| Mutex::new(Some(m)))
        .collect();
    Ok(Some(Previous {
        latest,
        manifest,
        etags: state.etags,
        rejected: state.rejected,
        frames: state.frames,
        imports: state.imports,
        pages: state.pages,
        published: state.published,
        published_index: state.published_index,
        published_deltas: state.published_deltas,
        search: state.search,
        versions_rejected: state.versions_rejected,
        snapshot,
        index_snapshot,
        blob_root,
        by_name,
        modules,
    }))
}

/// The site file `rel`, checked against the signed digest `sha256`; `None`
/// when the site lacks it (the build then publishes no delta).
fn fetch_verified(
    source: &str,
    remote: Option<&Remote>,
    rel: &str,
    sha256: &str,
    scratch: &Path,
    name: &str,
) -> Result<Option<PathBuf>> {
    if !rel
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..")
    {
        bail!("the previous latest.json names an unsafe path `{rel}`");
    }
    let path = if let Some(remote) = remote {
        let dest = scratch.join(name);
        let url = format!("{}/{rel}", source.trim_end_matches('/'));
        if remote.download(&url, &dest, MAX_PREVIOUS_BYTES).is_err() {
            return Ok(None);
        }
        dest
    } else {
        Path::new(source).join(rel)
    };
    let actual = match file_sha256(&path) {
        Ok(actual) => actual,
        Err(_) => return Ok(None),
    };
    if actual != sha256 {
        bail!(
            "the previous site's {rel} hashes to {actual}, not the signed {sha256}; refusing to build on it"
        );
    }
    Ok(Some(path))
}

/// The crawl state, if it is signed by this build's key and belongs to the
/// previous snapshot; otherwise none (the build then fetches and packs afresh).
fn read_state(
    source: &str,
    remote: Option<&Remote>,
    pk: &minisign_verify::PublicKey,
    latest: &Latest,
) -> Result<CrawlState> {
    let (Some(bytes), Some(sig)) = (
        read_small(source, remote, CRAWL_STATE_NAME)?,
        read_small(source, remote, CRAWL_STATE_SIG_NAME)?,
    ) else {
        return Ok(CrawlState::default());
    };
    let verified = minisign_verify::Signature::decode(&String::from_utf8_lossy(&sig))
        .is_ok_and(|sig| pk.verify(&bytes, &sig, false).is_ok());
    if !verified {
        eprintln!(
            "warning: {CRAWL_STATE_NAME} does not verify with this build's key; ignoring it (a full crawl follows)"
        );
        return Ok(CrawlState::default());
    }
    Ok(serde_json::from_slice::<CrawlState>(&bytes)
        .ok()
        .filter(|s| s.snapshot == latest.sha256)
        .unwrap_or_default())
}

/// A small file of the site; `None` when it does not exist.
fn read_small(source: &str, remote: Option<&Remote>, name: &str) -> Result<Option<Vec<u8>>> {
    if let Some(remote) = remote {
        let url = format!("{}/{name}", source.trim_end_matches('/'));
        return remote.read(&url, 256 << 20);
    }
    // A regular file only: a FIFO in the previous site would hang the build.
    match mlld_fsutil::read_regular(&Path::new(source).join(name), 256 << 20) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {source}/{name}")),
    }
}

fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn entries(
    snapshot: &Path,
) -> Result<tar::Archive<zstd::Decoder<'static, std::io::BufReader<std::fs::File>>>> {
    Ok(tar::Archive::new(zstd::Decoder::new(std::fs::File::open(
        snapshot,
    )?)?))
}

/// The manifest, which is the snapshot's first member: nothing else is read.
fn read_manifest(snapshot: &Path) -> Result<Manifest> {
    let mut archive = entries(snapshot)?;
    let mut first = archive
        .entries()?
        .next()
        .context("the previous snapshot is empty")??;
    if first.path()?.to_string_lossy() != MANIFEST_NAME {
        bail!("the previous snapshot does not start with {MANIFEST_NAME}");
    }
    let mut bytes = Vec::new();
    first.read_to_end(&mut bytes)?;
    serde_json::from_slice(&bytes).context("the previous manifest is malformed")
}

/// Unpacks the blobs of a snapshot whose whole-file digest is verified.
/// Paths are still checked: nothing lands outside `dest`.
fn unpack_blobs(snapshot: &Path, dest: &Path) -> Result<()> {
    let mut archive = entries(snapshot)?;
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
        if blob_digest(&path.to_string_lossy()).is_some() {
            let out = dest.join(&path);
            std::fs::create_dir_all(out.parent().expect("blob paths have a parent"))?;
            entry.unpack(&out)?;
        }
    }
    Ok(())
}

impl crate::versioned_assemble::PreviousVersions for Previous {
    fn version(
        &self,
        author: &str,
        name: &str,
        version: &str,
    ) -> Option<&mlld_schemas::VersionRecord> {
        self.manifest.find_versioned(author, name)?.version(version)
    }

    fn rejection(
        &self,
        author: &str,
        name: &str,
        version: &str,
    ) -> Option<&crate::versioned_assemble::CachedVersionRejection> {
        self.versions_rejected
            .get(&format!("@{author}/{name}@{version}"))
    }
}
