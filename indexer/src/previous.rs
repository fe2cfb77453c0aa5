//! The last published site, for incremental builds.
//!
//! Trust: `latest.json` must verify with the build's own key, and the
//! snapshot file must hash to the digest it names; only then is anything in
//! it reused. `crawl-state.json` (ETags, cached rejections, the snapshot's
//! frame table) is used only when it is signed by the same key and names
//! the same snapshot.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{MANIFEST_NAME, blob_digest};
use mlld_schemas::{Latest, Manifest, ModuleRecord};
use mlld_site_contract::paths;

use crate::crawl_state::{self, CachedRejection, CrawlState, StateFile};
use crate::members::Members;
use crate::module_names::ModuleNames;
use crate::previous_manifest::PreviousManifest;
use crate::record_spill::{RecordHead, RecordSpill};
use crate::signing::SigningKey;
use crate::snapshot_writer::FrameTable;
use crate::text_map::{TextListMap, TextMap};
use mlld_site_contract::reader::Site;
pub use mlld_site_contract::reader::Timeouts;

mod site;
pub use site::{OutSite, load_copy, out_site};
use site::{open, public_key, read_latest};

/// The previous build, unpacked.
pub struct Previous {
    pub latest: Latest,
    /// Without its `modules` (in `records`) and `members`.
    pub manifest: Manifest,
    pub members: Members,
    pub etags: TextMap,
    pub rejected: BTreeMap<String, CachedRejection>,
    pub frames: FrameTable,
    pub imports: TextListMap,
    pub pages: TextMap,
    pub published: Vec<String>,
    pub published_index: Vec<String>,
    pub published_deltas: Vec<Vec<String>>,
    pub search: Option<crate::search_incremental::SearchState>,
    pub search_parts: Option<crate::site_data::SearchPartsKey>,
    pub versions_rejected: BTreeMap<String, crate::versioned_assemble::CachedVersionRejection>,
    /// The previous snapshot file (verified against the signed latest.json).
    pub snapshot: PathBuf,
    /// Its index-only snapshot (likewise verified), the base of the next delta;
    /// `None` when the previous site has none.
    pub index_snapshot: Option<PathBuf>,
    /// Holds `blobs/…` of the previous snapshot.
    pub blob_root: PathBuf,
    /// The digests of the blobs under `blob_root` (every blob member),
    /// for the build's blob directory to take.
    pub blob_digests: hashbrown::HashSet<[u8; 32]>,
    /// The previous module records (`manifest.modules` stays empty),
    /// spilled as the manifest was parsed, with their names; each is handed
    /// to the crawl once.
    records: RecordSpill,
    names: ModuleNames,
    taken: Vec<AtomicBool>,
    /// Previous records that could not be read back, each fetched again.
    unreadable: AtomicUsize,
}

impl Previous {
    /// The previous record of `user/name` if it was built from the same
    /// gist, taken: a second call for the same module gets `None`.
    /// A spilled record that cannot be read back (the staging directory
    /// damaged under the build) is treated as absent: the module is fetched.
    pub fn take_module(&self, user: &str, name: &str, gist: &str) -> Option<ModuleRecord> {
        let i = self.names.find(user, name)?;
        let Ok(record) = self.records.read_at(i) else {
            self.unreadable.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if record.gist != gist {
            return None;
        }
        let first = !self.taken[i].swap(true, Ordering::Relaxed);
        first.then_some(record)
    }

    /// How many previous records the crawl could not read back (and so
    /// fetched again): not zero only when the staging directory was
    /// damaged under the build or the previous manifest came from an
    /// indexer with another record shape.
    pub fn unreadable_records(&self) -> usize {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// Frees what the crawl alone needed (the names, the advisories, the
    /// ETags and the imports: a million modules' worth of each); the
    /// manifest's members stay, for the delta.
    pub fn release_records(&mut self) {
        self.manifest.advisories = Vec::new();
        self.etags = TextMap::default();
        self.imports = TextListMap::default();
        self.names = ModuleNames::default();
        self.taken = Vec::new();
    }

    /// Frees the previous versioned records once versions are indexed.
    pub fn release_versioned(&mut self) {
        self.manifest.versioned = Vec::new();
    }

    pub fn etag(&self, gist: &str) -> Option<&str> {
        self.etags.get(gist)
    }

    /// The previous content-based rejection of `user/name`, if its gist is the same.
    pub fn rejection(&self, user: &str, name: &str, gist: &str) -> Option<&CachedRejection> {
        self.rejected
            .get(&format!("{user}/{name}"))
            .filter(|r| r.gist == gist)
    }
}

/// A previous snapshot larger than this is refused.
const MAX_PREVIOUS_BYTES: u64 = 8 << 30;

/// Loads the site at `source` (a directory or an http(s) URL); `None` when it has no `latest.json`.
pub fn load(
    source: &str,
    key: &SigningKey,
    scratch: &Path,
    timeouts: Timeouts,
) -> Result<Option<Previous>> {
    let site = open(source, timeouts)?;
    let pk = public_key(key)?;
    let Some(latest) = read_latest(&site, &pk)? else {
        return Ok(None);
    };
    load_latest(&site, &pk, latest, scratch)
}

/// The build `latest` names, read from `site`.
fn load_latest(
    site: &Site,
    pk: &minisign_verify::PublicKey,
    latest: Latest,
    scratch: &Path,
) -> Result<Option<Previous>> {
    paths::expect_path(
        "snapshot",
        &latest.snapshot,
        &paths::snapshot_path(&latest.sha256),
    )
    .map_err(|e| anyhow::anyhow!("the previous {e}"))?;
    std::fs::create_dir_all(scratch)?;
    let snapshot = match site.dir() {
        Some(dir) => dir.join(&latest.snapshot),
        None => {
            if latest.size > MAX_PREVIOUS_BYTES {
                bail!(
                    "the previous snapshot is {} bytes, over the {MAX_PREVIOUS_BYTES}-byte limit",
                    latest.size
                );
            }
            let dest = scratch.join("previous.tar.zst");
            site.download(&latest.snapshot, latest.size, &dest, &|_| {})?
                .with_context(|| format!("the previous site lacks {}", latest.snapshot))?;
            dest
        }
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
                Some(index) => fetch_verified(site, index, scratch, "previous.index.tar.zst")?,
                None => None,
            };
            Ok((actual, index_snapshot))
        });
        let state = s.spawn(|| read_state(site, pk, &latest));
        let manifest = read_manifest(&snapshot, &scratch.join("previous-records.jsonl"));
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
    let PreviousManifest {
        manifest,
        members,
        records,
    } = manifest?;
    // The site's loose blobs spare unpacking the snapshot; any that are
    // missing mean unpacking it. Either way, packing re-verifies every blob.
    let complete_blobs = site
        .dir()
        .filter(|dir| crate::blobs::dir_holds_all(dir, members.blobs()));
    let blob_root = if let Some(dir) = complete_blobs {
        dir.to_path_buf()
    } else {
        let dest = scratch.join("unpacked");
        unpack_blobs(&snapshot, &dest)?;
        dest
    };
    // The set beside the names: each is a second of one thread at a
    // million modules.
    let (names, blob_digests) = rayon::join(
        || -> Result<ModuleNames> {
            let full = records
                .par_map_lines(|_, line| Ok(RecordHead::of(line)?.full_name().into_boxed_str()))
                .context("reading back the previous records")?;
            Ok(ModuleNames::new(full))
        },
        || members.blobs().iter().map(|(d, _)| *d).collect(),
    );
    let names = names?;
    let taken = (0..records.len()).map(|_| AtomicBool::new(false)).collect();
    Ok(Some(Previous {
        latest,
        manifest,
        members,
        etags: state.etags,
        rejected: state.rejected,
        frames: state.frames,
        imports: state.imports,
        pages: state.pages,
        published: state.published,
        published_index: state.published_index,
        published_deltas: state.published_deltas,
        search: state.search,
        search_parts: state.search_parts,
        versions_rejected: state.versions_rejected,
        snapshot,
        index_snapshot,
        blob_root,
        blob_digests,
        records,
        names,
        taken,
        unreadable: AtomicUsize::new(0),
    }))
}

/// The site file `file`, checked against its signed digest; `None` when
/// the site lacks it (the build then publishes no delta).
fn fetch_verified(
    site: &Site,
    file: &mlld_schemas::snapshot::SiteFile,
    scratch: &Path,
    name: &str,
) -> Result<Option<PathBuf>> {
    let expected = paths::index_snapshot_path(&file.sha256);
    paths::expect_path("index-only snapshot", &file.path, &expected)
        .map_err(|e| anyhow::anyhow!("the previous {e}"))?;
    // A directory's file is hashed in place; a download is hashed as it streams.
    let (path, actual) = match site.dir() {
        Some(dir) => {
            let path = dir.join(&file.path);
            match file_sha256(&path) {
                Ok(actual) => (path, actual),
                Err(_) => return Ok(None),
            }
        }
        None => {
            let dest = scratch.join(name);
            let cap = file.size.min(MAX_PREVIOUS_BYTES);
            match site.download(&file.path, cap, &dest, &|_| {}) {
                Ok(Some(actual)) => (dest, actual),
                _ => return Ok(None),
            }
        }
    };
    if actual != file.sha256 {
        bail!(
            "the previous site's {} hashes to {actual}, not the signed {}; refusing to build on it",
            file.path,
            file.sha256
        );
    }
    Ok(Some(path))
}

/// The crawl state, if it is signed by this build's key and belongs to the
/// previous snapshot; otherwise none (the build then fetches and packs afresh).
fn read_state(site: &Site, pk: &minisign_verify::PublicKey, latest: &Latest) -> Result<CrawlState> {
    for file in StateFile::ALL {
        let Some(bytes) = site.read(file.name(), crawl_state::MAX_STORED_BYTES)? else {
            continue;
        };
        let Some(sig) = site.read(file.signature_name(), 4 << 10)? else {
            return Ok(CrawlState::default());
        };
        let verified = minisign_verify::Signature::decode(&String::from_utf8_lossy(&sig))
            .is_ok_and(|sig| pk.verify(&bytes, &sig, false).is_ok());
        if !verified {
            eprintln!(
                "warning: {} does not verify with this build's key; ignoring it (a full crawl follows)",
                file.name()
            );
            return Ok(CrawlState::default());
        }
        return Ok(file
            .decode(&bytes)
            .ok()
            .filter(|s| s.snapshot == latest.sha256)
            .unwrap_or_default());
    }
    Ok(CrawlState::default())
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

fn entries(snapshot: &Path) -> Result<mlld_site_contract::archive::ZstdTar<std::fs::File>> {
    mlld_site_contract::archive::open_zstd(std::fs::File::open(snapshot)?)
}

/// The manifest, which is the snapshot's first member: nothing else is
/// read. Its records are spilled to `spill`.
fn read_manifest(snapshot: &Path, spill: &Path) -> Result<PreviousManifest> {
    let mut archive = entries(snapshot)?;
    let first = archive
        .entries()?
        .next()
        .context("the previous snapshot is empty")??;
    if first.path()?.to_string_lossy() != MANIFEST_NAME {
        bail!("the previous snapshot does not start with {MANIFEST_NAME}");
    }
    crate::previous_manifest::read(first, spill)
}

/// Unpacks the blobs of a snapshot whose whole-file digest is verified.
/// Paths are still checked: nothing lands outside `dest`.
fn unpack_blobs(snapshot: &Path, dest: &Path) -> Result<()> {
    let mut archive = entries(snapshot)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = mlld_site_contract::archive::member_path(&entry)
            .context("the previous snapshot has an unsafe member")?;
        if blob_digest(&path).is_some() {
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
