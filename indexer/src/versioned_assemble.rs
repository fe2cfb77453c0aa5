//! Versioned modules into snapshot records: fetch every version's files
//! (or reuse what the previous snapshot captured at the same pinned
//! source), verify its `contentHash`, content-address the files.

use mlld_schemas::RevisionRecord;
use mlld_schemas::content_hash::directory_content_hash;
use mlld_schemas::import_ref::ModuleRef;
use mlld_schemas::snapshot_versioned::{SourceRecord, VersionFileRecord, VersionRecord};
use mlld_schemas::versioned::{RAW_HOST, RawLocation, Source};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::blobs::BlobDir;
use crate::capture::{CaptureError, capture_newest, check_owner, scan_module};
use crate::gist::{FetchError, Fetched, GistSource};
use crate::raw::{RawError, RawSource};
use crate::versioned_load::{LoadedModule, LoadedVersion, VersionRejection};

/// One version to index.
pub struct VersionJob<'a> {
    pub module: &'a LoadedModule,
    pub version: &'a LoadedVersion,
}

/// An accepted version and the registry references its entry file makes.
pub struct IndexedVersion {
    pub author: String,
    pub name: String,
    pub record: VersionRecord,
    pub imports: Vec<ModuleRef>,
    /// The version file's `dependencies` (module names mixed with runtime keys).
    pub version_dependencies: std::collections::BTreeMap<String, serde_json::Value>,
    /// Taken from the previous snapshot without a request.
    pub reused: bool,
}

/// A rejection that holds as long as the version's pinned source is the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedVersionRejection {
    /// [`source_fingerprint`] of the source it was decided on.
    pub source: String,
    pub reason: String,
}

/// Where this build finds what the previous snapshot captured.
pub trait PreviousVersions: Sync {
    fn version(&self, author: &str, name: &str, version: &str) -> Option<&VersionRecord>;

    /// A rejection the previous build decided on pinned content.
    fn rejection(&self, author: &str, name: &str, version: &str)
    -> Option<&CachedVersionRejection>;
}

/// Why a version was left out; `permanent` when the decision was made on
/// content pinned by commit, so the same source fails the same way.
pub struct Failure {
    pub rejection: VersionRejection,
    pub permanent: Option<CachedVersionRejection>,
}

/// A reason, and whether it is decided on pinned content (`true`) or may pass next time.
type Why = (String, bool);

fn transient(reason: String) -> Why {
    (reason, false)
}

fn permanent(reason: String) -> Why {
    (reason, true)
}

fn raw_failure(e: RawError) -> Why {
    let pinned = matches!(e, RawError::NotFound { .. } | RawError::TooLarge { .. });
    (e.to_string(), pinned)
}

/// Where the bytes come from.
pub struct Sources<'a> {
    pub raw: &'a dyn RawSource,
    pub gists: &'a dyn GistSource,
    /// Gists this build already captured for user folders: gist id → (user,
    /// current revision). A versioned module of the same author takes the
    /// revision from here instead of fetching the gist a second time.
    pub captured: &'a std::collections::BTreeMap<String, (String, RevisionRecord)>,
}

pub fn index_all(
    jobs: &[VersionJob<'_>],
    sources: &Sources<'_>,
    blobs: &BlobDir,
    previous: Option<&dyn PreviousVersions>,
    concurrency: usize,
) -> anyhow::Result<Vec<Result<IndexedVersion, Box<Failure>>>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()?;
    Ok(pool.install(|| {
        jobs.par_iter()
            .map(|job| {
                let (module, v) = (job.module, job.version);
                let source = source_fingerprint(&v.source);
                let reject = |(reason, pinned): Why| {
                    Box::new(Failure {
                        permanent: pinned.then(|| CachedVersionRejection {
                            source: source.clone(),
                            reason: reason.clone(),
                        }),
                        rejection: VersionRejection {
                            module: module.full_name(),
                            version: v.record.version.clone(),
                            file: v.file.clone(),
                            reason,
                        },
                    })
                };
                let cached = previous
                    .and_then(|p| p.rejection(&module.author, &module.name, &v.record.version))
                    .filter(|r| r.source == source);
                match cached {
                    Some(r) => Err(reject(permanent(r.reason.clone()))),
                    None => index_one(job, sources, blobs, previous).map_err(reject),
                }
            })
            .collect()
    }))
}

/// Everything a version's bytes are decided by: its source as written.
pub fn source_fingerprint(source: &Source) -> String {
    let text = format!(
        "{:?}|{:?}|{:?}",
        source_record(source),
        declared_hash(source),
        listed_files(source)
    );
    mlld_schemas::sha256_hex(text.as_bytes())
}

/// What a source is pinned to, as the snapshot records it.
fn source_record(source: &Source) -> SourceRecord {
    let raw =
        |loc: &RawLocation, repo: Option<&mlld_schemas::versioned::Repository>| SourceRecord {
            kind: String::new(),
            url: loc.url(RAW_HOST, ""),
            repository: repo.map(|r| r.url.clone()),
            commit: loc.commit.clone(),
            path: loc.path.clone(),
        };
    match source {
        Source::Github {
            file, repository, ..
        } => SourceRecord {
            kind: "github".into(),
            ..raw(file, repository.as_ref())
        },
        Source::Directory {
            base, repository, ..
        } => SourceRecord {
            kind: "directory".into(),
            ..raw(base, repository.as_ref())
        },
        Source::Gist { gist_id, .. } => SourceRecord {
            kind: "gist".into(),
            url: gist_id.clone(),
            repository: None,
            commit: String::new(),
            path: String::new(),
        },
    }
}

fn declared_hash(source: &Source) -> Option<&str> {
    match source {
        Source::Github { content_hash, .. } | Source::Directory { content_hash, .. } => {
            Some(content_hash)
        }
        Source::Gist { content_hash, .. } => content_hash.as_deref(),
    }
}

/// The file paths a source lists (a gist's are known only once fetched).
fn listed_files(source: &Source) -> Option<Vec<String>> {
    match source {
        Source::Github { file, .. } => Some(vec![base_name(&file.path).to_string()]),
        Source::Directory { files, .. } => Some(files.clone()),
        Source::Gist { .. } => None,
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn index_one(
    job: &VersionJob<'_>,
    sources: &Sources<'_>,
    blobs: &BlobDir,
    previous: Option<&dyn PreviousVersions>,
) -> Result<IndexedVersion, Why> {
    let v = job.version;
    let pinned = source_record(&v.source);
    let hash = declared_hash(&v.source);
    // Content pinned by commit (or, for a gist, by its hash) never changes.
    let earlier = previous
        .and_then(|p| p.version(&job.module.author, &job.module.name, &v.record.version))
        .filter(|r| {
            let same_files = match listed_files(&v.source) {
                Some(mut files) => {
                    let mut had: Vec<String> = r.files.iter().map(|f| f.path.clone()).collect();
                    files.sort();
                    had.sort();
                    files == had
                }
                None => true,
            };
            hash.is_some_and(|h| h == r.content_hash)
                && r.source.kind == pinned.kind
                && r.source.url == pinned.url
                && (pinned.kind == "gist" || r.source.commit == pinned.commit)
                && same_files
        });
    let (files, entry, content_hash, source, reused) = match earlier {
        Some(r) => {
            for f in &r.files {
                blobs.require(&f.sha256).map_err(|e| {
                    transient(format!("carrying over from the previous snapshot: {e}"))
                })?;
            }
            (
                r.files.clone(),
                r.entry.clone(),
                r.content_hash.clone(),
                r.source.clone(),
                true,
            )
        }
        None => {
            let (files, entry, content_hash, source) = fetch_version(job, &pinned, sources, blobs)?;
            (files, entry, content_hash, source, false)
        }
    };
    let entry_file = files
        .iter()
        .find(|f| f.path == entry)
        .ok_or_else(|| permanent(format!("the entry point `{entry}` is not among the files")))?
        .clone();
    let entry_path = blobs
        .require(&entry_file.sha256)
        .map_err(|e| transient(e.to_string()))?;
    let entry_bytes =
        std::fs::read(entry_path).map_err(|e| transient(format!("reading the entry file: {e}")))?;
    let imports = scan_module(&entry, &entry_bytes).map_err(permanent)?;
    let r = &v.record;
    let record = VersionRecord {
        version: r.version.clone(),
        published_at: r.published_at.clone(),
        published_by: r.published_by,
        needs: r.needs.clone(),
        license: r.license.clone(),
        mlld_version: r.mlld_version.clone(),
        kind: r.kind.clone(),
        keywords: r.keywords.clone(),
        repo: r.repo.clone(),
        bugs: r.bugs.clone(),
        homepage: r.homepage.clone(),
        source,
        content_hash,
        integrity: format!("sha256:{}", entry_file.sha256),
        size: entry_file.size,
        entry,
        files,
        dependencies: Vec::new(),
    };
    Ok(IndexedVersion {
        author: job.module.author.clone(),
        name: job.module.name.clone(),
        record,
        imports,
        version_dependencies: r.dependencies.clone(),
        reused,
    })
}

type Fetched4 = (Vec<VersionFileRecord>, String, String, SourceRecord);

/// Fetches and verifies one version: (files, entry, contentHash, source).
fn fetch_version(
    job: &VersionJob<'_>,
    pinned: &SourceRecord,
    sources: &Sources<'_>,
    blobs: &BlobDir,
) -> Result<Fetched4, Why> {
    let put = |path: &str, bytes: &[u8]| -> Result<VersionFileRecord, Why> {
        let sha256 = blobs
            .put(bytes)
            .map_err(|e| transient(format!("storing `{path}`: {e}")))?;
        Ok(VersionFileRecord {
            path: path.to_string(),
            sha256,
            size: bytes.len() as u64,
        })
    };
    let mismatch = |expected: &str, computed: &str| {
        format!(
            "contentHash mismatch: the version file records {expected}, the fetched content hashes to {computed}"
        )
    };
    let gist_failure = transient;
    match &job.version.source {
        Source::Github {
            file, content_hash, ..
        } => {
            let bytes = sources.raw.fetch(file, "").map_err(raw_failure)?;
            let computed = mlld_schemas::sha256_hex(&bytes);
            if &computed != content_hash {
                return Err(permanent(mismatch(content_hash, &computed)));
            }
            let name = base_name(&file.path);
            let record = put(name, &bytes)?;
            Ok((vec![record], name.to_string(), computed, pinned.clone()))
        }
        Source::Directory {
            base,
            files,
            entry_point,
            content_hash,
            ..
        } => {
            let mut fetched = Vec::with_capacity(files.len());
            for path in files {
                let bytes = sources.raw.fetch(base, path).map_err(raw_failure)?;
                fetched.push((path.clone(), mlld_schemas::sha256_hex(&bytes), bytes));
            }
            let computed =
                directory_content_hash(fetched.iter().map(|(p, h, _)| (p.as_str(), h.as_str())));
            if &computed != content_hash {
                return Err(permanent(mismatch(content_hash, &computed)));
            }
            let mut records = Vec::with_capacity(fetched.len());
            for (path, _, bytes) in &fetched {
                records.push(put(path, bytes)?);
            }
            records.sort_by(|a, b| a.path.cmp(&b.path));
            Ok((records, entry_point.clone(), computed, pinned.clone()))
        }
        Source::Gist {
            gist_id,
            content_hash,
        } => {
            let captured = sources
                .captured
                .get(gist_id)
                .filter(|(user, _)| mlld_schemas::names::same_user(user, &job.module.author));
            let revision = match captured {
                Some((_, revision)) => revision.clone(),
                None => fetch_gist(job, gist_id, sources, blobs)?,
            };
            let computed = revision.integrity.trim_start_matches("sha256:").to_string();
            if let Some(expected) = content_hash
                && *expected != computed
            {
                return Err(gist_failure(mismatch(expected, &computed)));
            }
            let files = revision
                .files
                .iter()
                .map(|f| VersionFileRecord {
                    path: f.name.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                })
                .collect();
            let source = SourceRecord {
                commit: revision.revision.clone(),
                ..pinned.clone()
            };
            Ok((files, revision.file, computed, source))
        }
    }
}

/// The newest revision of a gist through the gist path (owner checked, files content-addressed).
fn fetch_gist(
    job: &VersionJob<'_>,
    gist_id: &str,
    sources: &Sources<'_>,
    blobs: &BlobDir,
) -> Result<RevisionRecord, Why> {
    // A gist is not pinned: whatever fails about it may pass next time.
    let gist = match sources.gists.fetch(gist_id, None) {
        Ok(Fetched::Fresh { gist, .. }) => gist,
        Ok(Fetched::NotModified) => {
            return Err(transient(format!(
                "gist {gist_id} answered 304 to a plain request"
            )));
        }
        Err(FetchError::NotFound) => {
            return Err(transient(format!(
                "gist {gist_id} was not found (deleted, or made private)"
            )));
        }
        Err(e) => {
            return Err(transient(format!(
                "gist {gist_id} could not be fetched: {e}"
            )));
        }
    };
    check_owner(&job.module.author, &gist).map_err(transient)?;
    let (revision, _) =
        capture_newest(&job.module.name, &gist, sources.gists, blobs).map_err(|e| match e {
            CaptureError::Rejected(why) | CaptureError::Unavailable(why) => transient(why),
        })?;
    Ok(revision)
}
