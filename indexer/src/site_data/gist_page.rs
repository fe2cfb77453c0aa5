//! The page of a Phase-1 (gist) module, `modules/<user>/<module>.js`.

use anyhow::{Context, Result};
use mlld_schemas::{AdvisoryRecord, ModuleRecord};
use serde::Serialize;

use super::doc;
use crate::blobs::BlobDir;

/// What one module's page shows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GistPage<'a> {
    user: &'a str,
    name: &'a str,
    gist: &'a str,
    description: &'a str,
    tags: &'a [String],
    created: Option<&'a str>,
    updated: Option<&'a str>,
    revision: &'a str,
    file: &'a str,
    size: u64,
    integrity: &'a str,
    revisions: Vec<PageRevision<'a>>,
    dependencies: &'a [String],
    dependents: &'a [String],
    advisories: Vec<&'a AdvisoryRecord>,
    stale: Option<&'a str>,
    exports: Vec<String>,
    import_line: String,
    /// The gist at this revision on GitHub.
    source_url: String,
    /// The file `doc` was rendered from: the module itself when it is
    /// Markdown (`.mld.md`), else the gist's README.
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_file: Option<&'a str>,
    /// Sanitised HTML (see `doc::render_markdown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
    /// Where the page reads the module's text (its loose blob, written
    /// once for the site), unless the module is the rendered `doc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content_blob: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageRevision<'a> {
    revision: &'a str,
    committed_at: Option<&'a str>,
    size: u64,
}

pub fn page<'a>(
    m: &'a ModuleRecord,
    dependents: &'a [String],
    advisories: Vec<&'a AdvisoryRecord>,
    blobs: &BlobDir,
    max_content: usize,
) -> Result<GistPage<'a>> {
    let text = blob_text(blobs, &m.current.integrity)
        .with_context(|| format!("reading the content of {}", m.full_name()))?;
    let exports = doc::exports(&text);
    let (doc_file, doc, content_blob) = if doc::is_markdown(&m.current.file) {
        (
            Some(m.current.file.as_str()),
            Some(doc::render_markdown(&doc::cut(&text, max_content).0)),
            None,
        )
    } else {
        let readme = doc::readme(m.current.files.iter().map(|f| f.name.as_str()));
        let rendered = match readme.and_then(|r| m.current.files.iter().find(|f| f.name == r)) {
            Some(file) => {
                let text = blob_text(blobs, &file.sha256)
                    .with_context(|| format!("reading {} of {}", file.name, m.full_name()))?;
                Some(doc::render_markdown(&doc::cut(&text, max_content).0))
            }
            None => None,
        };
        (readme, rendered, Some(doc::blob_url(&m.current.integrity)))
    };
    Ok(GistPage {
        user: &m.user,
        name: &m.name,
        gist: &m.gist,
        description: &m.description,
        tags: &m.tags,
        created: m.created.as_deref(),
        updated: m.updated.as_deref(),
        revision: &m.current.revision,
        file: &m.current.file,
        size: m.current.size,
        integrity: &m.current.integrity,
        revisions: m
            .revisions()
            .map(|r| PageRevision {
                revision: &r.revision,
                committed_at: r.committed_at.as_deref(),
                size: r.size,
            })
            .collect(),
        dependencies: &m.current.dependencies,
        dependents,
        advisories,
        stale: m.stale.as_deref(),
        import_line: doc::import_line(&m.full_name(), &exports, None),
        exports,
        source_url: doc::gist_url(&m.user, &m.gist, &m.current.revision),
        doc_file,
        doc,
        content_blob,
    })
}

/// A blob (`sha256:<hex>` or `<hex>`) as text.
pub fn blob_text(blobs: &BlobDir, digest: &str) -> Result<String> {
    let hex = digest.trim_start_matches("sha256:");
    let bytes = std::fs::read(blobs.require(hex)?)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
