//! The page of a Phase-1 (gist) module, `modules/<user>/<module>.js`.
//!
//! It holds only what the page cannot work out: the import line, the
//! gist's URL, the loose blob of the module's text and the current
//! revision's row follow from the fields here and are derived in the
//! page (`derive` in `site/module.js`). Its dependents are not here: they
//! change with other modules (`dependents_files`).

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
    /// When the current revision was committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    committed_at: Option<&'a str>,
    file: &'a str,
    size: u64,
    integrity: &'a str,
    /// The revisions before the current one, newest first (the page adds
    /// the current one from the fields above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<PageRevision<'a>>,
    dependencies: &'a [String],
    advisories: Vec<&'a AdvisoryRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<&'a str>,
    exports: Vec<String>,
    /// The file `doc` was rendered from: the module itself when it is
    /// Markdown (`.mld.md`), else the gist's README.
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_file: Option<&'a str>,
    /// Sanitised HTML (see `doc::render_markdown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
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
    advisories: Vec<&'a AdvisoryRecord>,
    blobs: &BlobDir,
    max_content: usize,
) -> Result<GistPage<'a>> {
    let text = blob_text(blobs, &m.current.integrity)
        .with_context(|| format!("reading the content of {}", m.full_name()))?;
    let exports = doc::exports(&text);
    let (doc_file, doc) = if doc::is_markdown(&m.current.file) {
        (
            Some(m.current.file.as_str()),
            Some(doc::render_markdown(&doc::cut(&text, max_content).0)),
        )
    } else {
        let readme = readme_of(m);
        let rendered = match readme {
            Some(file) => {
                let text = blob_text(blobs, &file.sha256)
                    .with_context(|| format!("reading {} of {}", file.name, m.full_name()))?;
                Some(doc::render_markdown(&doc::cut(&text, max_content).0))
            }
            None => None,
        };
        (readme.map(|f| f.name.as_str()), rendered)
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
        committed_at: m.current.committed_at.as_deref(),
        file: &m.current.file,
        size: m.current.size,
        integrity: &m.current.integrity,
        history: m
            .history
            .iter()
            .map(|r| PageRevision {
                revision: &r.revision,
                committed_at: r.committed_at.as_deref(),
                size: r.size,
            })
            .collect(),
        dependencies: &m.current.dependencies,
        advisories,
        stale: m.stale.as_deref(),
        exports,
        doc_file,
        doc,
    })
}

/// The README file a page shows for a module that is not Markdown itself.
fn readme_of(m: &ModuleRecord) -> Option<&mlld_schemas::GistFile> {
    let readme = doc::readme(m.current.files.iter().map(|f| f.name.as_str()))?;
    m.current.files.iter().find(|f| f.name == readme)
}

/// The blobs (`sha256:<hex>`) a module's page reads: its content, and its
/// README when the module is not Markdown itself.
pub fn page_blobs(m: &ModuleRecord) -> impl Iterator<Item = &str> {
    let readme = (!doc::is_markdown(&m.current.file))
        .then(|| readme_of(m))
        .flatten();
    std::iter::once(m.current.integrity.as_str()).chain(readme.map(|f| f.sha256.as_str()))
}

/// A blob (`sha256:<hex>` or `<hex>`) as text.
pub fn blob_text(blobs: &BlobDir, digest: &str) -> Result<String> {
    let hex = digest.trim_start_matches("sha256:");
    let bytes = std::fs::read(blobs.require(hex)?)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
