//! One index build: registry → gists → blobs → signed snapshot → site.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::snapshot::{
    AdvisoryRecord, Latest, Manifest, Member, SNAPSHOT_FORMAT, blob_path,
};
pub use time::{Duration, OffsetDateTime};

use crate::assemble::{self, Job};
use crate::blobs::BlobDir;
use crate::gist::GistSource;
use crate::report::BuildReport;
use crate::signing::SigningKey;
use crate::{publish, registry_load, search_index, site_page, snapshot_writer};

pub struct BuildConfig {
    pub registry: PathBuf,
    /// The site directory; built in place, `latest.json` replaced last.
    pub out: PathBuf,
    pub key: SigningKey,
    /// Defaults to the site's current serial plus one.
    pub serial: Option<u64>,
    /// The build time (from `SOURCE_DATE_EPOCH` for reproducible builds).
    pub created: OffsetDateTime,
    pub expires_in: time::Duration,
}

impl BuildConfig {
    /// The build time: `SOURCE_DATE_EPOCH` when set, else now.
    pub fn now_or_source_date_epoch() -> Result<OffsetDateTime> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => {
                let secs: i64 = v.trim().parse().with_context(|| {
                    format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds")
                })?;
                Ok(OffsetDateTime::from_unix_timestamp(secs)?)
            }
            Err(_) => Ok(OffsetDateTime::now_utc()),
        }
    }
}

pub fn build(config: &BuildConfig, source: &dyn GistSource) -> Result<BuildReport> {
    let started = Instant::now();
    let registry = registry_load::load(&config.registry)
        .with_context(|| format!("reading the registry at {}", config.registry.display()))?;
    if registry.users.is_empty() {
        bail!(
            "{} holds no user folders with a registry.json; is it a registry checkout?",
            config.registry.display()
        );
    }
    let serial = match config.serial {
        Some(s) => s,
        None => publish::current_serial(&config.out)?.map_or(1, |s| s + 1),
    };

    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("creating {}", config.out.display()))?;
    // Staging lives inside the site directory so the final moves are renames on one file system.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&config.out)?;
    let blobs = BlobDir::new(staging.path());

    let jobs: Vec<Job<'_>> = registry
        .users
        .iter()
        .filter_map(|u| u.registry.as_ref().map(|r| (u, r)))
        .flat_map(|(u, r)| {
            r.modules.iter().map(move |(name, entry)| Job {
                user: &u.folder,
                name,
                entry,
            })
        })
        .collect();
    let mut indexed = Vec::new();
    let mut rejected = Vec::new();
    for result in assemble::index_all(&jobs, source, &blobs) {
        match result {
            Ok(i) => indexed.push(i),
            Err(r) => rejected.push(r),
        }
    }
    let unresolved_imports = assemble::link_dependencies(&mut indexed);
    let mut modules: Vec<_> = indexed.into_iter().map(|i| i.record).collect();
    modules.sort_by(|a, b| (&a.user, &a.name).cmp(&(&b.user, &b.name)));
    rejected.sort_by(|a, b| a.module.cmp(&b.module));

    let mut advisories: Vec<AdvisoryRecord> = registry
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

    let mut members = BTreeMap::new();
    for m in &modules {
        for f in m.revisions().flat_map(|r| &r.files) {
            members.insert(
                blob_path(&f.sha256),
                Member {
                    sha256: f.sha256.clone(),
                    size: f.size,
                },
            );
        }
    }
    let blobs = members.len();
    members.extend(
        search_index::write(staging.path(), &modules, &advisories)
            .context("building the search index")?,
    );
    let created = format_timestamp(config.created);
    let manifest = Manifest {
        format_version: SNAPSHOT_FORMAT,
        serial,
        created: created.clone(),
        expires: format_timestamp(config.created + config.expires_in),
        modules,
        advisories,
        members,
    };
    let mut manifest_bytes = serde_json::to_vec(&manifest)?;
    manifest_bytes.push(b'\n');
    let signature = config.key.sign(
        &manifest_bytes,
        &format!("mlld-registry manifest serial:{serial} created:{created}"),
    );

    let staged = staging.path().join("snapshot.tar.zst");
    let mtime = config.created.unix_timestamp().max(0) as u64;
    let (sha256, size) = snapshot_writer::write(
        &staged,
        &manifest_bytes,
        signature.as_bytes(),
        &manifest.members,
        staging.path(),
        mtime,
    )
    .context("writing the snapshot")?;
    let latest = Latest {
        format_version: SNAPSHOT_FORMAT,
        snapshot: publish::snapshot_site_path(&sha256),
        sha256,
        size,
        serial,
        created,
        expires: manifest.expires.clone(),
    };
    publish::publish(
        &config.out,
        &staged,
        &latest,
        &config.key,
        &site_page::render(&manifest),
    )?;

    let users_rejected = registry.rejected_users().map(str::to_string).collect();
    let diagnostics = registry.diagnostics;
    Ok(BuildReport {
        serial,
        users: registry.users.len(),
        users_rejected,
        modules_accepted: manifest.modules.len(),
        modules_rejected: rejected,
        unresolved_imports,
        advisories: manifest.advisories.len(),
        blobs,
        snapshot: latest.snapshot,
        snapshot_bytes: size,
        errors: diagnostics.iter().filter(|d| d.is_error()).count(),
        warnings: diagnostics.iter().filter(|d| !d.is_error()).count(),
        diagnostics,
        signed_with_demo_key: config.key.is_demo,
        elapsed: started.elapsed(),
    })
}
