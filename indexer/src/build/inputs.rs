//! The build's first stages: the registry checkout, the staging directory,
//! and the previous build (its blobs, records and serial).

use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::Diagnostic;
use tempfile::TempDir;

use super::{BuildConfig, PreviousSite};
use crate::blobs::BlobDir;
use crate::previous::{self, OutSite, Previous};
use crate::registry_load::{self, LoadedRegistry};
use crate::report::{BuildReport, PreviousRead};
use crate::versioned_load::{self, LoadedVersioned};

/// Both layouts of a registry checkout, read and checked.
pub(super) struct Registry {
    /// User folders (`{user}/registry.json`, `{user}/advisories.json`).
    pub(super) folders: LoadedRegistry,
    /// `modules/{author}/{name}/…` with pinned versions.
    pub(super) versioned: LoadedVersioned,
}

impl Registry {
    /// Frees the module entries once the crawls have turned them into
    /// records (a million entries hold several hundred megabytes); the
    /// folders, their advisories and which users were rejected stay.
    pub(super) fn release_modules(&mut self) {
        let registries = self
            .folders
            .users
            .iter_mut()
            .filter_map(|u| u.registry.as_mut());
        registries.for_each(|r| r.modules = Default::default());
    }

    /// Every diagnostic the registry's files produced, user folders first.
    pub(super) fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        let mut diagnostics = std::mem::take(&mut self.folders.diagnostics);
        diagnostics.append(&mut self.versioned.diagnostics);
        diagnostics
    }
}

/// Stage "load registry": takes the checkout at `root`; produces both of
/// its layouts and records in `report` which layouts it holds. Refuses a
/// directory with neither (most likely not a registry checkout).
pub(super) fn load_registry(root: &Path, report: &mut BuildReport) -> Result<Registry> {
    let reading = || format!("reading the registry at {}", root.display());
    let folders = registry_load::load(root).with_context(reading)?;
    // The folders just read say whether there are any (detecting them
    // apart would walk a hundred thousand folders twice).
    let layouts = versioned_load::Layouts {
        user_folders: !folders.users.is_empty(),
        versioned: versioned_load::has_modules_dir(root),
    };
    let versioned = versioned_load::load(root).with_context(reading)?;
    if folders.users.is_empty() && !layouts.versioned {
        bail!(
            "{} holds no user folders with a registry.json and no modules/ folder; is it a registry checkout?",
            root.display()
        );
    }
    report.layouts = layouts;
    Ok(Registry { folders, versioned })
}

/// Creates the site directory `out` and a staging directory inside it, so
/// that the final moves are renames on one file system. The staging
/// directory is removed when the returned handle drops.
pub(super) fn open_staging(out: &Path) -> Result<TempDir> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    Ok(tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(out)?)
}

/// The previous build at `source`, read from the output directory instead
/// when that holds a copy of it (the last build, kept between runs): the
/// copy's loose blobs, module pages and search parts are then kept in
/// place, and nothing but `source`'s `latest.json` is downloaded. An output
/// directory holding any other site, or a copy that turns out damaged, is
/// refused: its files would be published beside the new site's.
fn load_at(
    config: &BuildConfig,
    source: &str,
    scratch: &Path,
    timeouts: previous::Timeouts,
) -> Result<(Option<Previous>, PreviousRead)> {
    let out = config.out.to_string_lossy();
    match previous::out_site(&config.out, source, &config.key, timeouts)? {
        OutSite::NoSite => {
            let previous = previous::load(source, &config.key, scratch, timeouts)?;
            Ok((previous, PreviousRead::new(source, source)))
        }
        OutSite::Copy(latest) => {
            let previous = previous::load_copy(&config.out, *latest, &config.key, scratch)
                .with_context(|| {
                    format!("reading {out}, the copy of {source} to build on; if it is damaged, empty it (or restore a good copy) and build again")
                })?;
            Ok((previous, PreviousRead::new(source, &out)))
        }
        OutSite::Unpublished(why) => bail!(
            "{out} holds a build that was never published: {why}; publish it as it is (for object storage: cargo xtask publish --from {out} --to s3://…), or empty it to build on the published site"
        ),
        OutSite::Other(why) => bail!(
            "{out} holds a site that is not a copy of {source}: {why}; empty it, or build into a new directory (its files would be published beside the new site's)"
        ),
    }
}

/// The previous build as this one starts from it.
pub(super) struct Start {
    pub(super) previous: Option<Previous>,
    /// New blobs go under the staging directory; the previous build's are found in place.
    pub(super) blobs: BlobDir,
    /// This build's serial, greater than the previous one's.
    pub(super) serial: u64,
}

/// Stage "read previous site": takes the configuration and the staging
/// directory; produces the previous build (read and verified against the
/// signing key; none for a fresh build), the blob directory that reuses its
/// blobs, and the new serial. Refuses a serial that does not grow.
pub(super) fn read_previous(
    config: &BuildConfig,
    staging: &Path,
    report: &mut BuildReport,
) -> Result<Start> {
    let scratch = staging.join("previous");
    let timeouts = config.timeouts();
    let mut previous = match &config.previous {
        PreviousSite::None => None,
        PreviousSite::Output => previous::load(
            &config.out.to_string_lossy(),
            &config.key,
            &scratch,
            timeouts,
        )?,
        PreviousSite::At(src) => {
            let (previous, read) = load_at(config, src, &scratch, timeouts)?;
            report.previous_site = Some(read);
            previous
        }
    };
    let mut blobs = BlobDir::new(
        staging.join("new"),
        previous.as_ref().map(|p| p.blob_root.clone()),
    );
    if let Some(p) = &mut previous {
        // `previous::load` made sure every blob of its manifest is under `blob_root`.
        blobs = blobs.with_previous_digests(std::mem::take(&mut p.blob_digests));
    }
    let serial = config
        .serial
        .unwrap_or_else(|| previous.as_ref().map_or(1, |p| p.latest.serial + 1));
    if let Some(p) = &previous
        && serial <= p.latest.serial
    {
        bail!(
            "serial {serial} does not grow over the previous snapshot's {}; clients would refuse it as a rollback",
            p.latest.serial
        );
    }
    Ok(Start {
        previous,
        blobs,
        serial,
    })
}
