//! The static site's web page and its data, generated at build time.
//!
//! - `index.html`, `app.js`, `style.css`: the page (from `site/`).
//! - `data/site.js`: the page's entry point (serial, counts, shard list). Mutable.
//! - `data/listing-<sha256>.js`: the module listing in compact shards. Immutable.
//! - `modules/<user>/<module>.json` (and `.js` for the page, which also works
//!   from `file://`): what `info` shows, with the content for display;
//!   versioned modules at `modules/@<author>/<name>.json` (`site_data/versioned.rs`).
//! - `advisories.json`: every user's advisories, merged; `schemas/*.json`.
//!
//! Files are written to the build's staging directory and moved into the
//! site at publish time; module pages whose inputs did not change are not
//! regenerated (their key is kept in the crawl state).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::AdvisoryIndex;
use mlld_schemas::{AdvisoryRecord, Manifest, ModuleRecord, VersionedModule};
use rayon::prelude::*;
use serde::Serialize;
use sha2::Digest as _;

use crate::blobs::BlobDir;

mod versioned;

const STATIC: [(&str, &str); 3] = [
    ("index.html", include_str!("../../site/index.html")),
    ("app.js", include_str!("../../site/app.js")),
    ("style.css", include_str!("../../site/style.css")),
];
/// Modules per listing shard: small enough to load progressively.
const SHARD: usize = 4000;
/// Bump when `ModulePage` changes shape.
const PAGE_FORMAT: u32 = 1;
/// Content shown on a module page is cut here; the snapshot has the rest.
const MAX_PAGE_CONTENT: usize = 64 * 1024;

/// What one module's page shows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModulePage<'a> {
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
    import_line: String,
    content: String,
    content_truncated: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageRevision<'a> {
    revision: &'a str,
    committed_at: Option<&'a str>,
    size: u64,
    integrity: &'a str,
}

/// Writes the site files under `dest`; returns the new page keys (`user/module` → key).
pub fn write(
    dest: &Path,
    manifest: &Manifest,
    blobs: &BlobDir,
    previous_keys: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    for (name, text) in STATIC {
        write_file(dest, name, text.as_bytes())?;
    }
    for (name, text) in mlld_schemas::json_schemas() {
        write_file(dest, &format!("schemas/{name}"), text.as_bytes())?;
    }
    let mut advisories = serde_json::to_vec_pretty(&manifest.advisories)?;
    advisories.push(b'\n');
    write_file(dest, "advisories.json", &advisories)?;

    let dependents = dependents_of(manifest);
    let advisory_index = AdvisoryIndex::new(&manifest.advisories);

    let mut rows: Vec<serde_json::Value> = manifest
        .modules
        .iter()
        .map(|m| {
            let advisory = advisory_index.for_module(m).next().is_some();
            serde_json::json!([
                m.user,
                m.name,
                m.description,
                m.tags,
                u8::from(advisory),
                u8::from(m.stale.is_some())
            ])
        })
        .collect();
    rows.extend(manifest.versioned.iter().map(|v| {
        let advisory = !versioned::advisories(&manifest.advisories, v).is_empty();
        versioned::row(v, advisory)
    }));
    let mut shards = Vec::new();
    for chunk in rows.chunks(SHARD) {
        let body = format!("mlldRegistry.shard({});\n", serde_json::to_string(chunk)?);
        let name = format!(
            "data/listing-{}.js",
            &mlld_schemas::sha256_hex(body.as_bytes())[..32]
        );
        write_file(dest, &name, body.as_bytes())?;
        shards.push(name);
    }
    let entry = serde_json::json!({ "serial": manifest.serial, "created": manifest.created, "count": manifest.modules.len(), "versioned": manifest.versioned.len(), "shards": shards });
    write_file(
        dest,
        "data/site.js",
        format!("mlldRegistry.site({entry});\n").as_bytes(),
    )?;

    manifest
        .modules
        .par_iter()
        .map(|m| {
            let full = m.full_name();
            let deps_of_me = dependents.get(&full).map(Vec::as_slice).unwrap_or_default();
            let advisories: Vec<&AdvisoryRecord> = advisory_index.for_module(m).collect();
            let key = page_key(&(m, deps_of_me, &advisories))?;
            if previous_keys.get(&full) != Some(&key) {
                let page = module_page(m, deps_of_me, advisories, blobs)?;
                let json = serde_json::to_string(&page)?;
                write_file(
                    dest,
                    &format!("modules/{full}.json"),
                    format!("{json}\n").as_bytes(),
                )?;
                write_file(
                    dest,
                    &format!("modules/{full}.js"),
                    format!("mlldRegistry.module({json});\n").as_bytes(),
                )?;
            }
            Ok((full, key))
        })
        .chain(
            manifest
                .versioned
                .par_iter()
                .map(|v| versioned_page(dest, manifest, v, blobs, previous_keys))
                .filter_map(Result::transpose),
        )
        .collect()
}

/// Writes a versioned module's page unless its key is unchanged; `None` when
/// the module has no version to show.
fn versioned_page(
    dest: &Path,
    manifest: &Manifest,
    module: &VersionedModule,
    blobs: &BlobDir,
    previous_keys: &BTreeMap<String, String>,
) -> Result<Option<(String, String)>> {
    let full = module.full_name();
    let advisories = versioned::advisories(&manifest.advisories, module);
    let key = page_key(&(module, &advisories))?;
    if previous_keys.get(&full) != Some(&key) {
        let Some(page) = versioned::page(module, advisories, blobs, MAX_PAGE_CONTENT)? else {
            return Ok(None);
        };
        let json = serde_json::to_string(&page)?;
        write_file(
            dest,
            &format!("modules/{full}.json"),
            format!("{json}\n").as_bytes(),
        )?;
        write_file(
            dest,
            &format!("modules/{full}.js"),
            format!("mlldRegistry.module({json});\n").as_bytes(),
        )?;
    }
    Ok(Some((full, key)))
}

/// `user/module` → the modules that depend on it, sorted.
fn dependents_of(manifest: &Manifest) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &manifest.modules {
        for d in &m.current.dependencies {
            out.entry(d.clone()).or_default().insert(m.full_name());
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// Everything a page depends on, hashed: equal keys mean an equal page.
fn page_key(inputs: &impl Serialize) -> Result<String> {
    let mut h = sha2::Sha256::new();
    h.update(serde_json::to_vec(inputs)?);
    // A new page format must regenerate every page.
    h.update(PAGE_FORMAT.to_le_bytes());
    Ok(hex::encode(h.finalize()))
}

fn module_page<'a>(
    m: &'a ModuleRecord,
    dependents: &'a [String],
    advisories: Vec<&'a AdvisoryRecord>,
    blobs: &BlobDir,
) -> Result<ModulePage<'a>> {
    let hex = m.current.integrity.trim_start_matches("sha256:");
    let bytes = std::fs::read(blobs.require(hex)?)
        .with_context(|| format!("reading the content of {}", m.full_name()))?;
    let text = String::from_utf8_lossy(&bytes);
    let cut = text
        .char_indices()
        .nth(MAX_PAGE_CONTENT)
        .map_or(text.len(), |(i, _)| i);
    Ok(ModulePage {
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
                integrity: &r.integrity,
            })
            .collect(),
        dependencies: &m.current.dependencies,
        dependents,
        advisories,
        stale: m.stale.as_deref(),
        import_line: format!("@import {{ ... }} from \"mlld://{}/{}\"", m.user, m.name),
        content_truncated: cut < text.len(),
        content: text[..cut].to_string(),
    })
}

fn write_file(dest: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = dest.join(rel);
    std::fs::create_dir_all(path.parent().expect("site files have a parent"))?;
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}
