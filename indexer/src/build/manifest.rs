//! Stage "search index and manifest": the search index, the manifest that
//! names every member of the snapshot, and its signature.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::snapshot::{AdvisoryRecord, RejectedRecord, SNAPSHOT_FORMAT};
use mlld_schemas::snapshot_versioned::VersionedModule;

use super::BuildConfig;
use super::inputs::Registry;
use crate::background_write::BackgroundWriter;
use crate::blobs::BlobDir;
use crate::members::{Members, MembersBuilder};
use crate::previous::Previous;
use crate::record_spill::RecordSpill;
use crate::report::BuildReport;
use crate::search_incremental::{self, SearchState};
use crate::staged_manifest::StagedManifest;

/// A signed manifest.
pub(super) struct SignedManifest {
    pub(super) manifest: StagedManifest,
    /// The minisign signature of the manifest's bytes.
    pub(super) signature: String,
    /// Distinct content blobs among the members.
    pub(super) blob_count: usize,
}

/// What the stage produces.
pub(super) struct Signed {
    pub(super) signed: SignedManifest,
    /// The file holding the manifest's JSON and a newline, the bytes the
    /// signature covers (streamed there, never held whole in memory).
    pub(super) manifest_file: PathBuf,
    /// The search index's state, for the next build's incremental index.
    pub(super) search: SearchState,
}

/// The accepted records the manifest is made of.
pub(super) struct Records {
    pub(super) modules: RecordSpill,
    /// The files of every revision in `modules`, as the crawl gathered them.
    pub(super) blob_members: MembersBuilder,
    pub(super) versioned: Vec<VersionedModule>,
    pub(super) advisories: Vec<AdvisoryRecord>,
}

/// Takes the accepted records, the blobs and the previous build's search
/// index; writes the new search index under `staging/index/`
/// (incrementally on the previous one when it can) and produces the
/// manifest for `serial`, signed with the configured key. Records in
/// `report` how the index was built.
pub(super) fn sign_manifest(
    config: &BuildConfig,
    serial: u64,
    records: Records,
    blobs: &BlobDir,
    previous: Option<&mut Previous>,
    staging: &Path,
    report: &mut BuildReport,
) -> Result<Signed> {
    let Records {
        modules,
        blob_members,
        versioned,
        advisories,
    } = records;
    let mut members = with_versions(blob_members, &versioned);
    let blob_count = members.len();
    // The previous search state is taken, not copied: it is as large as
    // the registry, and an incremental index carries it on unchanged.
    let index_snapshot = previous.as_ref().and_then(|p| p.index_snapshot.clone());
    let search_base = previous.and_then(|p| p.search.take());
    let index_base = search_base.zip(index_snapshot.as_deref());
    let (index_members, search, index_build) = search_incremental::write(
        staging,
        blobs,
        &modules,
        &versioned,
        &advisories,
        index_base,
    )
    .context("building the search index")?;
    members.extend(index_members);
    report.search_index = Some(index_build);
    let created = format_timestamp(config.created);
    let manifest = StagedManifest {
        format_version: SNAPSHOT_FORMAT,
        serial,
        created: created.clone(),
        expires: format_timestamp(config.created + config.expires_in),
        modules,
        advisories,
        versioned,
        members,
        rejected: rejected(report, &config.raw),
    };
    let manifest_file = staging.join(STAGED_MANIFEST);
    let prehash = write_manifest(&manifest, &manifest_file)
        .with_context(|| format!("writing {}", manifest_file.display()))?;
    let signature = config.key.sign_prehashed(
        &prehash,
        &format!("mlld-registry manifest serial:{serial} created:{created}"),
    );
    Ok(Signed {
        signed: SignedManifest {
            manifest,
            signature,
            blob_count,
        },
        manifest_file,
        search,
    })
}

/// The staged manifest's file name, beside the search index in staging.
const STAGED_MANIFEST: &str = "manifest.staged.json";

/// Writes the manifest's JSON and a newline to `dest` (the bytes
/// `serde_json::to_vec` gives, without holding them) and returns their
/// BLAKE2b-512 prehash, which the signature covers.
fn write_manifest(manifest: &StagedManifest, dest: &Path) -> Result<[u8; 64]> {
    let file = std::fs::File::create(dest)?;
    let mut out = crate::signing::Prehashing::new(BackgroundWriter::new(file)?);
    manifest.write_json(&mut out)?;
    out.write_all(b"\n")?;
    let (prehash, _, file) = out.finish();
    file.finish()?;
    Ok(prehash)
}

/// The modules and versions this build left out, with the report's
/// reasons, so that clients can tell a rejected module from an unknown one.
/// Where this build read raw files from (a mirror, a recorded directory)
/// is not part of the reason: the raw host's URL stands for it, so the same
/// inputs give the same snapshot wherever the files came from.
fn rejected(report: &BuildReport, raw: &crate::RawConfig) -> Vec<RejectedRecord> {
    let canonical = |reason: &str| match raw {
        crate::RawConfig::Http(c) => {
            let base = c.base.trim_end_matches('/');
            reason.replace(base, mlld_schemas::versioned::RAW_HOST)
        }
        crate::RawConfig::Recorded(dir) => {
            reason.replace(&format!(" (recorded under {})", dir.display()), "")
        }
    };
    let modules = report.modules_rejected.iter().map(|r| RejectedRecord {
        module: r.module.clone(),
        version: None,
        reason: r.reason.clone(),
    });
    let versions = report.versions_rejected.iter().map(|r| RejectedRecord {
        module: r.module.clone(),
        version: Some(r.version.clone()),
        reason: canonical(&r.reason),
    });
    let mut all: Vec<RejectedRecord> = modules.chain(versions).collect();
    all.sort_by(|a, b| (&a.module, &a.version).cmp(&(&b.module, &b.version)));
    all.dedup_by(|a, b| a.module == b.module && a.version == b.version);
    all
}

/// Every user's advisories, sorted by user, then id.
pub(super) fn advisories(registry: &Registry) -> Vec<AdvisoryRecord> {
    let mut advisories: Vec<AdvisoryRecord> = registry
        .folders
        .users
        .iter()
        .filter_map(|u| u.advisories.as_ref().map(|a| (u, a)))
        .flat_map(|(u, a)| {
            a.advisories.iter().map(|adv| AdvisoryRecord {
                user: u.folder.clone(),
                advisory: adv.clone(),
            })
        })
        .collect();
    advisories.sort_by(|a, b| (&a.user, &a.advisory.id).cmp(&(&b.user, &b.advisory.id)));
    advisories
}

/// The blob members: the gist modules' files (every revision's) and every
/// version's, once.
fn with_versions(mut members: MembersBuilder, versioned: &[VersionedModule]) -> Members {
    for v in versioned.iter().flat_map(|m| &m.versions) {
        v.files
            .iter()
            .for_each(|f| members.add_blob(&f.sha256, f.size));
    }
    members.finish()
}
