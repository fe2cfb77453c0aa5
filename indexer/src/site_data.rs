//! The static site's web page and its data, generated at build time.
//!
//! - `index.html`, `page.js`, `search.js`, `module.js`, `app.js`,
//!   `style.css`: the page (from `site/`).
//! - `data/site.js`: the page's entry point (serial, counts, shard list). Mutable.
//! - `data/listing-<sha256>.js`: the module listing in compact shards
//!   (rows, see [`Row`]). Immutable. The page loads them only to search or
//!   list, never to show one module.
//! - `data/search-<sha256>.js`: the first-stage search data, the listing's
//!   terms partitioned by their first characters (`site_data/search_parts.rs`).
//! - `modules/<user>/<module>.js`: one module's page data (what `info`
//!   shows, its rendered documentation and import line), written once, as
//!   a script so that the page also works from `file://`; versioned modules
//!   at `modules/@<author>/<name>.js` (`site_data/versioned.rs`). The
//!   module's text is not copied into it: the page reads the loose blob
//!   (`contentBlob`), which the site holds anyway.
//! - `advisories.json`: every user's advisories, merged; `schemas/*.json`.
//!
//! Files are written to the build's staging directory and moved into the
//! site at publish time; module pages whose inputs did not change are not
//! regenerated (their key is kept in the crawl state).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::AdvisoryIndex;
use mlld_schemas::{AdvisoryRecord, Manifest, VersionedModule};
use rayon::prelude::*;
use serde::Serialize;
use sha2::Digest as _;

use crate::blobs::BlobDir;

mod doc;
mod gist_page;
mod search_parts;
mod versioned;

const STATIC: [(&str, &str); 6] = [
    ("index.html", include_str!("../../site/index.html")),
    ("page.js", include_str!("../../site/page.js")),
    ("module.js", include_str!("../../site/module.js")),
    ("app.js", include_str!("../../site/app.js")),
    ("search.js", include_str!("../../site/search.js")),
    ("style.css", include_str!("../../site/style.css")),
];
/// Modules per listing shard: small enough that the rows a search shows
/// first come from a few shards.
const SHARD: usize = 1000;
/// Bump when a page changes shape.
const PAGE_FORMAT: u32 = 3;
/// Documentation rendered on a module page is cut here; the snapshot has the rest.
const MAX_PAGE_CONTENT: usize = 64 * 1024;

/// One module in the listing: user (`@author` for a versioned module),
/// name, description, tags, advisory (0/1), stale (0/1), latest version
/// (empty for a gist module), and when it was last updated (Unix seconds,
/// 0 when unknown). An array, not an object: the listing is the largest
/// thing the page downloads.
#[derive(Serialize)]
pub struct Row<'a>(String, &'a str, &'a str, &'a [String], u8, u8, &'a str, i64);

/// An RFC 3339 time as Unix seconds.
fn unix_time(text: Option<&str>) -> Option<i64> {
    let parsed = time::OffsetDateTime::parse(text?, &time::format_description::well_known::Rfc3339);
    parsed.ok().map(time::OffsetDateTime::unix_timestamp)
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

    let mut rows: Vec<Row<'_>> = manifest
        .modules
        .iter()
        .map(|m| {
            let advisory = advisory_index.for_module(m).next().is_some();
            let updated = unix_time(m.updated.as_deref())
                .or_else(|| unix_time(m.current.committed_at.as_deref()));
            Row(
                m.user.clone(),
                &m.name,
                &m.description,
                &m.tags,
                u8::from(advisory),
                u8::from(m.stale.is_some()),
                "",
                updated.unwrap_or(0),
            )
        })
        .collect();
    rows.extend(manifest.versioned.iter().map(|v| {
        let advisory = !versioned::advisories(&manifest.advisories, v).is_empty();
        versioned::row(v, advisory)
    }));
    let mut shards = Vec::new();
    for (i, chunk) in rows.chunks(SHARD).enumerate() {
        let body = format!(
            "mlldRegistry.shard({i},{});\n",
            serde_json::to_string(chunk)?
        );
        shards.push(write_addressed(dest, "listing", &body)?);
    }
    let search = search_parts::parts(rows.iter().map(|r| (r.0.as_str(), r.1, r.2, r.3)))
        .iter()
        .map(|body| write_addressed(dest, "search", body))
        .collect::<Result<Vec<_>>>()?;
    let entry = serde_json::json!({ "serial": manifest.serial, "created": manifest.created, "count": manifest.modules.len(), "versioned": manifest.versioned.len(), "rowsPerShard": SHARD, "shards": shards, "search": search });
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
                let page = gist_page::page(m, deps_of_me, advisories, blobs, MAX_PAGE_CONTENT)?;
                write_page(dest, &full, &page)?;
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
        write_page(dest, &full, &page)?;
    }
    Ok(Some((full, key)))
}

/// Removes the `.json` copies that sites built before pages were written
/// once still hold, for each page this build wrote anew (a new page
/// format rewrites them all once). Run after the flip.
pub fn remove_legacy_pages(
    out: &Path,
    previous: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Result<()> {
    for (page, key) in current {
        if previous.get(page) == Some(key) {
            continue;
        }
        let legacy = out.join(format!("modules/{page}.json"));
        match std::fs::remove_file(&legacy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", legacy.display()));
            }
            _ => {}
        }
    }
    Ok(())
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

/// A module's page data, `modules/{full}.js`: a script calling the page's
/// `mlldRegistry.module`, so that it loads from `file://` too.
fn write_page(dest: &Path, full: &str, page: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string(page)?;
    write_file(
        dest,
        &format!("modules/{full}.js"),
        format!("mlldRegistry.module({json});\n").as_bytes(),
    )
}

/// Writes `body` as `data/<kind>-<digest>.js`, named by its content so
/// that a page never mixes two builds' files; returns the site path.
fn write_addressed(dest: &Path, kind: &str, body: &str) -> Result<String> {
    let name = format!(
        "data/{kind}-{}.js",
        &mlld_schemas::sha256_hex(body.as_bytes())[..32]
    );
    write_file(dest, &name, body.as_bytes())?;
    Ok(name)
}

fn write_file(dest: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = dest.join(rel);
    std::fs::create_dir_all(path.parent().expect("site files have a parent"))?;
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}
