//! The web page's data for versioned modules (`@author/name`): their listing
//! rows and one page each, written beside the Phase-1 ones by `site_data`.
//!
//! Pages live at `modules/@author/name.{json,js}`: a Phase-1 user name never
//! starts with `@`, so the two kinds never share a path.

use anyhow::{Context, Result};
use mlld_schemas::names::same_user;
use mlld_schemas::{AdvisoryRecord, SourceRecord, VersionRecord, VersionedModule};
use serde::Serialize;

use crate::blobs::BlobDir;

/// What one versioned module's page shows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionedPage<'a> {
    /// Tells the page which renderer to use.
    versioned: bool,
    /// `@author`, so that `user/name` is the module's full name.
    user: String,
    name: &'a str,
    about: &'a str,
    owners: &'a [String],
    maintainers: &'a [String],
    created: Option<&'a str>,
    dist_tags: &'a std::collections::BTreeMap<String, String>,
    latest: &'a str,
    versions: Vec<PageVersion<'a>>,
    source: &'a SourceRecord,
    entry: &'a str,
    integrity: &'a str,
    content_hash: &'a str,
    files: &'a [mlld_schemas::VersionFileRecord],
    keywords: &'a [String],
    dependencies: &'a [String],
    advisories: Vec<&'a AdvisoryRecord>,
    import_line: String,
    content: String,
    content_truncated: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageVersion<'a> {
    version: &'a str,
    published_at: Option<&'a str>,
    needs: &'a [String],
    mlld_version: Option<&'a str>,
    license: Option<&'a str>,
}

/// The advisories in `{author}/advisories.json` that name the module: like
/// the client's `info`, they affect every version.
pub fn advisories<'m>(
    all: &'m [AdvisoryRecord],
    module: &VersionedModule,
) -> Vec<&'m AdvisoryRecord> {
    all.iter()
        .filter(|a| same_user(&a.user, &module.author) && a.advisory.affects.contains(&module.name))
        .collect()
}

/// The listing row: `[@author, name, about, keywords, advisory, stale, latest]`.
pub fn row(module: &VersionedModule, advisory: bool) -> serde_json::Value {
    let latest = module.latest();
    serde_json::json!([
        format!("@{}", module.author),
        module.name,
        module.about,
        latest.map(|v| v.keywords.as_slice()).unwrap_or_default(),
        u8::from(advisory),
        0,
        latest.map_or("", |v| v.version.as_str()),
    ])
}

/// The page of `module`, or `None` when it has no version to show.
pub fn page<'a>(
    module: &'a VersionedModule,
    advisories: Vec<&'a AdvisoryRecord>,
    blobs: &BlobDir,
    max_content: usize,
) -> Result<Option<VersionedPage<'a>>> {
    let Some(latest) = module.latest() else {
        return Ok(None);
    };
    let (content, content_truncated) = entry_content(module, latest, blobs, max_content)?;
    Ok(Some(VersionedPage {
        versioned: true,
        user: format!("@{}", module.author),
        name: &module.name,
        about: &module.about,
        owners: &module.owners,
        maintainers: &module.maintainers,
        created: module.created.as_deref(),
        dist_tags: &module.tags,
        latest: &latest.version,
        versions: module
            .versions
            .iter()
            .map(|v| PageVersion {
                version: &v.version,
                published_at: v.published_at.as_deref(),
                needs: &v.needs,
                mlld_version: v.mlld_version.as_deref(),
                license: v.license.as_deref(),
            })
            .collect(),
        source: &latest.source,
        entry: &latest.entry,
        integrity: &latest.integrity,
        content_hash: &latest.content_hash,
        files: &latest.files,
        keywords: &latest.keywords,
        dependencies: &latest.dependencies,
        advisories,
        // Exports are not recorded, so the line imports the module whole.
        import_line: format!("/import {}", module.full_name()),
        content,
        content_truncated,
    }))
}

/// The latest version's entry file as text, cut at `max` characters.
fn entry_content(
    module: &VersionedModule,
    latest: &VersionRecord,
    blobs: &BlobDir,
    max: usize,
) -> Result<(String, bool)> {
    let hex = latest.integrity.trim_start_matches("sha256:");
    let bytes = std::fs::read(blobs.require(hex)?).with_context(|| {
        format!(
            "reading the entry file of {}@{}",
            module.full_name(),
            latest.version
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let cut = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    Ok((text[..cut].to_string(), cut < text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisories_name_the_module_within_its_author() {
        let advisory = |user: &str, affects: &[&str]| -> AdvisoryRecord {
            serde_json::from_value(serde_json::json!({
                "user": user, "id": format!("{user}-1"), "created": "2025-01-01T00:00:00Z",
                "severity": "high", "affects": affects, "type": "t", "description": "d"
            }))
            .unwrap()
        };
        let all = [
            advisory("Alice-Dev", &["prompt-lib"]),
            advisory("bob", &["prompt-lib"]),
            advisory("alice-dev", &["other"]),
        ];
        let module: VersionedModule = serde_json::from_value(serde_json::json!({
            "author": "alice-dev", "name": "prompt-lib", "versions": []
        }))
        .unwrap();
        let ids: Vec<_> = advisories(&all, &module)
            .iter()
            .map(|a| a.advisory.id.as_str())
            .collect();
        assert_eq!(ids, ["Alice-Dev-1"]);
    }
}
