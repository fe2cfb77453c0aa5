//! One index build: registry → gists → blobs → signed snapshot → site.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::snapshot::{
    AdvisoryRecord, Latest, Manifest, Member, SNAPSHOT_FORMAT, SiteFile, blob_digest, blob_path,
};
pub use time::{Duration, OffsetDateTime};

use crate::assemble::{self, Freshness, Job};
use crate::blobs::BlobDir;
use crate::delta_writer;
use crate::gist::GistSource;
use crate::previous::{self, CachedRejection, CrawlState, Previous};
use crate::progress::Progress;
use crate::raw::HttpRawConfig;
pub use crate::raw::RawConfig;
use crate::report::{BuildReport, Stale};
use crate::retention;
use crate::search_incremental;
use crate::signing::SigningKey;
use crate::versioned_assemble::PreviousVersions;
use crate::{capture, publish, registry_load, site_data, snapshot_writer};
use crate::{versioned_build, versioned_load};

/// Where the previous build comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreviousSite {
    /// The output directory's current site.
    Output,
    /// Another site: a directory or an http(s) URL.
    At(String),
    /// Start afresh: a full crawl, serial 1 unless given.
    None,
}

pub struct BuildConfig {
    pub registry: PathBuf,
    /// The site directory; built in place, `latest.json` replaced last.
    pub out: PathBuf,
    pub key: SigningKey,
    /// Defaults to the previous serial plus one.
    pub serial: Option<u64>,
    /// The build time (from `SOURCE_DATE_EPOCH` for reproducible builds).
    pub created: OffsetDateTime,
    pub expires_in: Duration,
    pub previous: PreviousSite,
    /// Gists fetched at once.
    pub concurrency: usize,
    /// Snapshots kept on the site (the newest first); older ones are deleted.
    pub keep_snapshots: usize,
    /// Where versioned modules' files are fetched (default: raw.githubusercontent.com).
    pub raw: RawConfig,
}

impl BuildConfig {
    /// A configuration with the defaults for everything but the paths and key.
    pub fn new(registry: PathBuf, out: PathBuf, key: SigningKey, created: OffsetDateTime) -> Self {
        Self {
            registry,
            out,
            key,
            serial: None,
            created,
            expires_in: Duration::days(14),
            previous: PreviousSite::Output,
            concurrency: 8,
            keep_snapshots: 3,
            raw: RawConfig::Http(HttpRawConfig::default()),
        }
    }

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
    let mut report = BuildReport::default();
    let progress = Progress::new();

    progress.stage("load registry");
    let t = Instant::now();
    let reading = || format!("reading the registry at {}", config.registry.display());
    let layouts = versioned_load::detect(&config.registry).with_context(reading)?;
    let mut registry = registry_load::load(&config.registry).with_context(reading)?;
    let versioned = versioned_load::load(&config.registry).with_context(reading)?;
    if registry.users.is_empty() && !layouts.versioned {
        bail!(
            "{} holds no user folders with a registry.json and no modules/ folder; is it a registry checkout?",
            config.registry.display()
        );
    }
    report.layouts = layouts;
    report.stage("load registry", t);

    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("creating {}", config.out.display()))?;
    // Staging lives inside the site directory so the final moves are renames on one file system.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&config.out)?;

    progress.stage("read previous site");
    let t = Instant::now();
    let scratch = staging.path().join("previous");
    let mut previous: Option<Previous> = match &config.previous {
        PreviousSite::None => None,
        PreviousSite::Output => {
            previous::load(&config.out.to_string_lossy(), &config.key, &scratch)?
        }
        PreviousSite::At(src) => previous::load(src, &config.key, &scratch)?,
    };
    let mut blobs = BlobDir::new(
        staging.path().join("new"),
        previous.as_ref().map(|p| p.blob_root.clone()),
    );
    if let Some(p) = &previous {
        // `previous::load` made sure every blob of its manifest is under `blob_root`.
        blobs = blobs.with_previous_digests(
            p.manifest
                .members
                .iter()
                .filter(|(path, _)| blob_digest(path).is_some())
                .map(|(_, m)| m.sha256.clone())
                .collect(),
        );
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
    report.stage("read previous site", t);

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
    progress.stage("crawl gists");
    let t = Instant::now();
    let bar = progress.bar(jobs.len() as u64);
    let results = assemble::index_all(
        &jobs,
        source,
        &blobs,
        previous.as_ref(),
        config.concurrency,
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    let mut indexed = Vec::new();
    let mut etags = BTreeMap::new();
    let mut imports_cache = BTreeMap::new();
    for result in results {
        match result {
            Ok(i) => {
                match i.freshness {
                    Freshness::Fetched => report.modules_fetched += 1,
                    Freshness::Unchanged => report.modules_unchanged += 1,
                    Freshness::Stale => report.modules_stale.push(Stale {
                        module: i.record.full_name(),
                        reason: i.record.stale.clone().unwrap_or_default(),
                    }),
                }
                imports_cache.insert(
                    i.record
                        .current
                        .integrity
                        .trim_start_matches("sha256:")
                        .to_string(),
                    i.imports.iter().map(ToString::to_string).collect(),
                );
                if let Some(etag) = &i.etag {
                    etags.insert(i.record.gist.clone(), etag.clone());
                }
                indexed.push(i);
            }
            Err(r) => report.modules_rejected.push(r),
        }
    }
    report.unresolved_imports = capture::link_dependencies(&mut indexed);
    let mut modules: Vec<_> = indexed.into_iter().map(|i| i.record).collect();
    modules.sort_by(|a, b| (&a.user, &a.name).cmp(&(&b.user, &b.name)));
    report
        .modules_rejected
        .sort_by(|a, b| a.module.cmp(&b.module));
    report.modules_stale.sort_by(|a, b| a.module.cmp(&b.module));
    if modules.is_empty() && !jobs.is_empty() {
        bail!(
            "no module could be indexed ({} registered); refusing to publish an empty registry",
            jobs.len()
        );
    }
    report.stage("crawl gists", t);

    progress.stage("fetch versions");
    let t = Instant::now();
    let raw = config.raw.source();
    let indexed_versions = versioned_build::index(
        &versioned,
        &modules,
        &versioned_build::Inputs {
            raw: raw.as_ref(),
            gists: source,
            blobs: &blobs,
            previous: previous.as_ref().map(|p| p as &dyn PreviousVersions),
            concurrency: config.concurrency,
        },
        &mut report,
    )?;
    let versioned_modules = indexed_versions.modules;
    let versions_rejected_state = indexed_versions.rejections;
    let mut diagnostics = std::mem::take(&mut registry.diagnostics);
    diagnostics.extend(versioned.diagnostics);
    diagnostics.extend(indexed_versions.diagnostics);
    report.stage("fetch versions", t);
    if let Some(p) = previous.as_mut() {
        p.release_records();
        p.release_versioned();
    }

    progress.stage("search index and manifest");
    let t = Instant::now();
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
    for f in versioned_modules
        .iter()
        .flat_map(|m| &m.versions)
        .flat_map(|v| &v.files)
    {
        members.insert(
            blob_path(&f.sha256),
            Member {
                sha256: f.sha256.clone(),
                size: f.size,
            },
        );
    }
    let blob_count = members.len();
    let index_base = previous
        .as_ref()
        .and_then(|p| Some((p.search.as_ref()?, p.index_snapshot.as_deref()?)));
    let (index_members, search_state, index_build) = search_incremental::write(
        staging.path(),
        &blobs,
        &modules,
        &versioned_modules,
        &advisories,
        index_base,
    )
    .context("building the search index")?;
    members.extend(index_members);
    report.search_index = Some(index_build);
    let created = format_timestamp(config.created);
    let manifest = Manifest {
        format_version: SNAPSHOT_FORMAT,
        serial,
        created: created.clone(),
        expires: format_timestamp(config.created + config.expires_in),
        modules,
        advisories,
        versioned: versioned_modules,
        members,
    };
    let mut manifest_bytes = serde_json::to_vec(&manifest)?;
    manifest_bytes.push(b'\n');
    let signature = config.key.sign(
        &manifest_bytes,
        &format!("mlld-registry manifest serial:{serial} created:{created}"),
    );
    report.stage("search index and manifest", t);
    progress.stage("pack snapshot");
    let t = Instant::now();
    let staged = staging.path().join("snapshot.tar.zst");
    let mtime = config.created.unix_timestamp().max(0) as u64;
    let reuse = previous.as_ref().map(|p| snapshot_writer::Reuse {
        snapshot: &p.snapshot,
        table: &p.frames,
    });
    let head = snapshot_writer::head_frame(&manifest_bytes, signature.as_bytes(), mtime)?;
    let manifest_len = manifest_bytes.len();
    drop(manifest_bytes);
    let written = snapshot_writer::write(
        &staged,
        &head,
        &manifest.members,
        &|path, hex| {
            if blob_digest(path).is_some() {
                blobs.locate(hex)
            } else {
                Some(staging.path().join(path))
            }
        },
        reuse,
    )
    .context("writing the snapshot")?;
    report.frames_reused = written.frames_reused;
    report.frames_compressed = written.frames_compressed;
    let (sha256, size) = (written.sha256.clone(), written.size);
    // The same snapshot without blobs, for delta sync: its frames are the full snapshot's, copied.
    let index_members: BTreeMap<String, Member> = manifest
        .members
        .iter()
        .filter(|(p, _)| blob_digest(p).is_none())
        .map(|(p, m)| (p.clone(), m.clone()))
        .collect();
    let staged_index = staging.path().join("snapshot.index.tar.zst");
    let index_written = snapshot_writer::write(
        &staged_index,
        &head,
        &index_members,
        &|path, _| Some(staging.path().join(path)),
        Some(snapshot_writer::Reuse {
            snapshot: &staged,
            table: &written.table,
        }),
    )
    .context("writing the index-only snapshot")?;
    report.stage("pack snapshot", t);
    drop(head);

    // The delta and the web page's data need nothing from each other: one
    // is built on a second thread while the other is written.
    progress.stage("delta and site data");
    let t = Instant::now();
    let delta_job = || -> Result<Option<delta_writer::StagedDelta>> {
        Ok(match previous.as_ref() {
            Some(p) if p.index_snapshot.is_some() => {
                let origin = delta_writer::Origin {
                    serial: p.latest.serial,
                    snapshot_sha256: &p.latest.sha256,
                    manifest: &p.manifest,
                    index_snapshot: p.index_snapshot.as_deref().expect("checked"),
                };
                let staged = delta_writer::write(
                    staging.path(),
                    &origin,
                    &staged_index,
                    manifest_len,
                    &manifest.members,
                    &blobs,
                )
                .context("writing the delta from the previous snapshot")?;
                Some(staged)
            }
            _ => None,
        })
    };
    let site_dir = staging.path().join("site");
    let no_pages = BTreeMap::new();
    let pages_job = || {
        site_data::write(
            &site_dir,
            &manifest,
            &blobs,
            previous.as_ref().map_or(&no_pages, |p| &p.pages),
        )
    };
    let (delta, pages) = std::thread::scope(|s| {
        let delta = s.spawn(delta_job);
        let pages = pages_job();
        (delta.join().expect("the delta does not panic"), pages)
    });
    let (delta, pages) = (delta?, pages?);
    report.delta_bytes = delta
        .as_ref()
        .map(|d| d.delta.patch.size + d.delta.blobs.size);
    report.stage("delta and site data", t);
    let latest = Latest {
        format_version: SNAPSHOT_FORMAT,
        snapshot: publish::snapshot_site_path(&sha256),
        sha256: sha256.clone(),
        size,
        serial,
        created,
        expires: manifest.expires.clone(),
        index: Some(SiteFile {
            path: publish::index_snapshot_site_path(&index_written.sha256),
            sha256: index_written.sha256.clone(),
            size: index_written.size,
        }),
        deltas: delta.iter().map(|d| d.delta.clone()).collect(),
    };
    let rejected = report
        .modules_rejected
        .iter()
        .filter_map(|r| {
            Some((
                r.module.clone(),
                CachedRejection {
                    gist: r.gist.clone(),
                    etag: r.etag.clone()?,
                    reason: r.reason.clone(),
                },
            ))
        })
        .collect();

    progress.stage("publish");
    let t = Instant::now();
    let retention::Retention {
        published,
        published_index,
        published_deltas,
        retired,
        removed_pages,
    } = retention::decide(&latest, previous.as_ref(), config.keep_snapshots, &pages);
    let state = CrawlState {
        snapshot: sha256,
        etags,
        rejected,
        frames: written.table,
        imports: imports_cache,
        pages,
        published,
        published_index,
        published_deltas,
        search: Some(search_state),
        versions_rejected: versions_rejected_state,
    };
    let publication = publish::Publication {
        staged_snapshot: &staged,
        staged_index: &staged_index,
        staged_delta: delta
            .as_ref()
            .map(|d| (d.patch.as_path(), d.blobs.as_path())),
        latest: &latest,
        site_files: &site_dir,
        state: &state,
        members: &manifest.members,
        blobs: &blobs,
    };
    publish::publish(&config.out, &config.key, &publication)?;
    report.stage("publish", t);
    let t = Instant::now();
    // After the flip nothing refers to these any more.
    publish::clean_up(&config.out, &retired, &removed_pages, &manifest.members)?;
    report.stage("clean up", t);

    report.users_rejected = registry.rejected_users().map(str::to_string).collect();
    report.serial = serial;
    report.users = registry.users.len();
    report.modules_accepted = manifest.modules.len();
    report.advisories = manifest.advisories.len();
    report.blobs = blob_count;
    report.snapshot = latest.snapshot;
    report.snapshot_bytes = size;
    report.versioned_modules = manifest.versioned.len();
    report.versions_accepted = manifest.versioned.iter().map(|m| m.versions.len()).sum();
    report.errors = diagnostics.iter().filter(|d| d.is_error()).count();
    report.warnings = diagnostics.len() - report.errors;
    report.diagnostics = diagnostics;
    report.signed_with_demo_key = config.key.is_demo;
    report.requests = source.request_stats();
    report.elapsed = started.elapsed();
    // Freeing a registry's worth of records takes half a second at 100,000
    // modules; nothing waits for it (a process that exits first skips it).
    drop(jobs);
    let registry_users = registry.users;
    std::thread::spawn(move || drop((registry_users, previous, manifest, state, index_members)));
    Ok(report)
}
