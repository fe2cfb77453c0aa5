//! Versioned modules into snapshot records: fetch every version's files
//! (or reuse what the previous snapshot captured at the same pinned
//! source), verify its `contentHash`, content-address the files.

use mlld_schemas::content_hash::directory_content_hash;
use mlld_schemas::import_ref::ModuleRef;
use mlld_schemas::snapshot_versioned::{SourceRecord, VersionFileRecord, VersionRecord};
use mlld_schemas::versioned::{RAW_HOST, RawLocation, Source};
use rayon::prelude::*;

use crate::blobs::BlobDir;
use crate::capture::{CaptureError, capture_newest, check_owner, scan_module};
use crate::gist::{FetchError, Fetched, GistSource};
use crate::raw::RawSource;
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

/// Where this build finds what the previous snapshot captured.
pub trait PreviousVersions: Sync {
    fn version(&self, author: &str, name: &str, version: &str) -> Option<&VersionRecord>;
}

/// Where the bytes come from.
pub struct Sources<'a> {
    pub raw: &'a dyn RawSource,
    pub gists: &'a dyn GistSource,
}

pub fn index_all(
    jobs: &[VersionJob<'_>],
    sources: &Sources<'_>,
    blobs: &BlobDir,
    previous: Option<&dyn PreviousVersions>,
    concurrency: usize,
) -> anyhow::Result<Vec<Result<IndexedVersion, VersionRejection>>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()?;
    Ok(pool.install(|| {
        jobs.par_iter()
            .map(|job| {
                let reject = |reason: String| VersionRejection {
                    module: job.module.full_name(),
                    version: job.version.record.version.clone(),
                    file: job.version.file.clone(),
                    reason,
                };
                index_one(job, sources, blobs, previous).map_err(reject)
            })
            .collect()
    }))
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
) -> Result<IndexedVersion, String> {
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
                blobs
                    .require(&f.sha256)
                    .map_err(|e| format!("carrying over from the previous snapshot: {e}"))?;
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
        .ok_or_else(|| format!("the entry point `{entry}` is not among the files"))?
        .clone();
    let entry_path = blobs
        .require(&entry_file.sha256)
        .map_err(|e| e.to_string())?;
    let entry_bytes =
        std::fs::read(entry_path).map_err(|e| format!("reading the entry file: {e}"))?;
    let imports = scan_module(&entry, &entry_bytes)?;
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
) -> Result<Fetched4, String> {
    let put = |path: &str, bytes: &[u8]| -> Result<VersionFileRecord, String> {
        let sha256 = blobs
            .put(bytes)
            .map_err(|e| format!("storing `{path}`: {e}"))?;
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
    match &job.version.source {
        Source::Github {
            file, content_hash, ..
        } => {
            let bytes = sources.raw.fetch(file, "").map_err(|e| e.to_string())?;
            let computed = mlld_schemas::sha256_hex(&bytes);
            if &computed != content_hash {
                return Err(mismatch(content_hash, &computed));
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
                let bytes = sources.raw.fetch(base, path).map_err(|e| e.to_string())?;
                fetched.push((path.clone(), mlld_schemas::sha256_hex(&bytes), bytes));
            }
            let computed =
                directory_content_hash(fetched.iter().map(|(p, h, _)| (p.as_str(), h.as_str())));
            if &computed != content_hash {
                return Err(mismatch(content_hash, &computed));
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
            let gist = match sources.gists.fetch(gist_id, None) {
                Ok(Fetched::Fresh { gist, .. }) => gist,
                Ok(Fetched::NotModified) => {
                    return Err(format!("gist {gist_id} answered 304 to a plain request"));
                }
                Err(FetchError::NotFound) => {
                    return Err(format!(
                        "gist {gist_id} was not found (deleted, or made private)"
                    ));
                }
                Err(e) => return Err(format!("gist {gist_id} could not be fetched: {e}")),
            };
            check_owner(&job.module.author, &gist)?;
            let (revision, _) = capture_newest(&job.module.name, &gist, sources.gists, blobs)
                .map_err(|e| match e {
                    CaptureError::Rejected(why) | CaptureError::Unavailable(why) => why,
                })?;
            let computed = revision.integrity.trim_start_matches("sha256:").to_string();
            if let Some(expected) = content_hash
                && *expected != computed
            {
                return Err(mismatch(expected, &computed));
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
