//! The build's stage for today's layout: every version fetched or reused,
//! verified, grouped into the manifest's `versioned` modules, with the
//! report's counts and the rejections the next build remembers.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use mlld_schemas::snapshot_versioned::VersionedModule;
use mlld_schemas::versioned::Source;
use mlld_schemas::{Diagnostic, RevisionRecord};

use crate::blobs::BlobDir;
use crate::gist::GistSource;
use crate::module_names::ModuleNames;
use crate::raw::RawSource;
use crate::record_spill::RecordSpill;
use crate::report::BuildReport;
use crate::versioned_assemble::{
    self, CachedVersionRejection, Failure, PreviousVersions, Sources, VersionJob,
};
use crate::versioned_load::LoadedVersioned;
use crate::versioned_records;

pub struct Inputs<'a> {
    pub raw: &'a dyn RawSource,
    pub gists: &'a dyn GistSource,
    pub blobs: &'a BlobDir,
    pub previous: Option<&'a dyn PreviousVersions>,
    pub concurrency: usize,
}

pub struct IndexedVersions {
    /// Sorted by author, then name.
    pub modules: Vec<VersionedModule>,
    /// Problems found while grouping (tags naming rejected versions).
    pub diagnostics: Vec<Diagnostic>,
    /// `@author/name@version` → rejections decided on pinned content, for the crawl state.
    pub rejections: BTreeMap<String, CachedVersionRejection>,
}

/// The accepted gist modules, as the versioned stage sees them.
pub struct Phase1<'a> {
    /// Their captured revisions serve `gist` sources.
    pub records: &'a RecordSpill,
    /// Their names resolve dependencies and are checked for overlaps.
    pub names: &'a ModuleNames,
}

/// Indexes every loaded version against the accepted gist modules.
/// Fills the report's version counts.
pub fn index(
    loaded: &LoadedVersioned,
    phase1: Phase1<'_>,
    inputs: &Inputs<'_>,
    report: &mut BuildReport,
) -> Result<IndexedVersions> {
    let jobs: Vec<VersionJob<'_>> = loaded
        .modules
        .iter()
        .flat_map(|module| {
            module
                .versions
                .iter()
                .map(move |version| VersionJob { module, version })
        })
        .collect();
    let captured = captured_gists(&jobs, phase1.records)?;
    let sources = Sources {
        raw: inputs.raw,
        gists: inputs.gists,
        captured: &captured,
    };
    let results = versioned_assemble::index_all(
        &jobs,
        &sources,
        inputs.blobs,
        inputs.previous,
        inputs.concurrency,
    )?;
    let mut accepted = Vec::new();
    let mut rejections = BTreeMap::new();
    report.versions_rejected = loaded.rejected.clone();
    for result in results {
        match result {
            Ok(v) => {
                if v.reused {
                    report.versions_reused += 1;
                } else {
                    report.versions_fetched += 1;
                }
                accepted.push(v);
            }
            Err(failure) => {
                let Failure {
                    rejection,
                    permanent,
                } = *failure;
                if let Some(cached) = permanent {
                    let key = format!("{}@{}", rejection.module, rejection.version);
                    rejections.insert(key, cached);
                }
                report.versions_rejected.push(rejection);
            }
        }
    }
    report
        .versions_rejected
        .sort_by(|a, b| (&a.module, &a.version, &a.file).cmp(&(&b.module, &b.version, &b.file)));
    let grouped = versioned_records::group(&loaded.modules, accepted, phase1.names);
    if grouped.modules.is_empty() && !jobs.is_empty() {
        bail!(
            "no versioned module could be indexed ({} versions listed); refusing to publish a registry without them",
            jobs.len()
        );
    }
    report.unresolved_imports.extend(grouped.unresolved);
    report.name_overlaps = grouped.overlaps;
    report.raw_requests = Some(inputs.raw.stats());
    Ok(IndexedVersions {
        modules: grouped.modules,
        diagnostics: grouped.diagnostics,
        rejections,
    })
}

/// The captured revisions of the gists that `gist` sources name: gist id →
/// (user, current revision). One pass over the records, only when a
/// version has such a source.
fn captured_gists(
    jobs: &[VersionJob<'_>],
    records: &RecordSpill,
) -> Result<BTreeMap<String, (String, RevisionRecord)>> {
    let wanted: BTreeSet<&str> = jobs
        .iter()
        .filter_map(|j| match &j.version.source {
            Source::Gist { gist_id, .. } => Some(gist_id.as_str()),
            _ => None,
        })
        .collect();
    let mut captured = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(captured);
    }
    for m in records.iter()? {
        let m = m?;
        if wanted.contains(m.gist.as_str()) {
            captured.insert(m.gist, (m.user, m.current));
        }
    }
    Ok(captured)
}
