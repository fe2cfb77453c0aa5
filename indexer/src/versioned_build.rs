//! The build's stage for today's layout: every version fetched or reused,
//! verified, grouped into the manifest's `versioned` modules, with the
//! report's counts and the rejections the next build remembers.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use mlld_schemas::snapshot_versioned::VersionedModule;
use mlld_schemas::{Diagnostic, ModuleRecord, RevisionRecord};

use crate::blobs::BlobDir;
use crate::gist::GistSource;
use crate::raw::RawSource;
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

/// Indexes every loaded version; `phase1` are the accepted gist modules
/// (their captured revisions serve `gist` sources, and their names are
/// checked for overlaps). Fills the report's version counts.
pub fn index(
    loaded: &LoadedVersioned,
    phase1: &[ModuleRecord],
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
    let captured: BTreeMap<String, (String, RevisionRecord)> = phase1
        .iter()
        .map(|m| (m.gist.clone(), (m.user.clone(), m.current.clone())))
        .collect();
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
    let grouped = versioned_records::group(&loaded.modules, accepted, phase1);
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
