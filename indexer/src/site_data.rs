//! The static site's web page and its data, generated at build time.
//!
//! - `index.html`: the page, from `site/`, with its style, scripts and
//!   the entry point inlined, so that it is one request.
//! - `data/site.js`: the page's entry point (serial, counts, the data
//!   files' names), also inlined in `index.html`; publishing's clean-up
//!   keeps the data files it names. Mutable.
//! - `data/listing-<sha256>.js`: the module listing in compact shards
//!   (rows, see [`Row`]; like the search parts, a `JSON.parse` of a string,
//!   see [`json_call`]). Immutable. The page loads them only to search or
//!   list, never to show one module.
//! - `data/search-<sha256>.js`: the first-stage search data, the listing's
//!   terms partitioned by their first characters (`site_data/search_parts.rs`).
//! - `modules/<user>/<module>.js`: one module's page data (what `info`
//!   shows, its rendered documentation and import line), written once, as
//!   a script so that the page also works from `file://`; versioned modules
//!   at `modules/@<author>/<name>.js` (`site_data/versioned.rs`). The
//!   module's text is not copied into it: the page reads the loose blob
//!   (`contentBlob`), which the site holds anyway.
//! - `data/dependents/<bits>/<bucket>.js`: who depends on each gist
//!   module, in buckets by a hash of its name (`site_data/dependents_files.rs`),
//!   so that a module's page changes only with its own module. Mutable.
//! - `advisories.json`: every user's advisories, merged; `schemas/*.json`.
//!
//! Files are written to the build's staging directory and moved into the
//! site at publish time; module pages whose inputs did not change are not
//! regenerated (their key is kept in the crawl state), nor are the search
//! parts (kept in the site, never staged: `site_data/search_inputs.rs`).

use crate::text_map::TextMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::snapshot::AdvisoryIndex;
use mlld_schemas::{AdvisoryRecord, ModuleRecord, VersionedModule};
use rayon::prelude::*;
use serde::Serialize;

use crate::blobs::BlobDir;
use crate::record_spill::RecordHead;
use crate::staged_manifest::StagedManifest;
pub use dependents_files::bucket_file;
use listing::write_listing;
use page_key::{gist_page_key, page_key};
pub use search_inputs::SearchPartsKey;

mod dependents;
mod dependents_files;
mod doc;
mod gist_page;
mod listing;
mod page_key;
mod search_inputs;
mod search_parts;
#[cfg(test)]
mod streaming_tests;
#[cfg(test)]
pub(crate) mod test_support;
mod versioned;

/// The page: `site/index.html` names these files; the build writes it with
/// each inlined (see [`page_html`]).
const PAGE_HTML: &str = include_str!("../../site/index.html");
const PAGE_FILES: [(&str, &str); 5] = [
    ("style.css", include_str!("../../site/style.css")),
    ("page.js", include_str!("../../site/page.js")),
    ("search.js", include_str!("../../site/search.js")),
    ("module.js", include_str!("../../site/module.js")),
    ("app.js", include_str!("../../site/app.js")),
];
/// Modules per listing shard: small enough that the rows a search shows
/// first come from a few shards.
const SHARD: usize = 1000;
/// Bump when a page changes shape (5: dependents moved to their buckets).
const PAGE_FORMAT: u32 = 5;
/// Documentation rendered on a module page is cut here; the snapshot has the rest.
const MAX_PAGE_CONTENT: usize = 64 * 1024;

/// One module in the listing: user (`@author` for a versioned module),
/// name, description, tags, advisory (0/1), stale (0/1), latest version
/// (empty for a gist module), and when it was last updated (Unix seconds,
/// 0 when unknown). An array, not an object: the listing is the largest
/// thing the page downloads.
#[derive(Serialize)]
pub struct Row<'a>(String, &'a str, &'a str, &'a [String], u8, u8, &'a str, i64);

/// FNV-1a (32 bits) of `units`: how the page finds the data file of a
/// term (`search_parts`, by its first two characters) or of a module's
/// dependents (`dependents_files`, by its name's bytes); `fnv1a` in
/// `site/page.js` is the same.
fn fnv1a(units: impl IntoIterator<Item = u32>) -> u32 {
    (units.into_iter()).fold(0x811c_9dc5, |hash, unit| {
        (hash ^ unit).wrapping_mul(0x0100_0193)
    })
}

/// An RFC 3339 time as Unix seconds.
fn unix_time(text: Option<&str>) -> Option<i64> {
    let parsed = time::OffsetDateTime::parse(text?, &time::format_description::well_known::Rfc3339);
    parsed.ok().map(time::OffsetDateTime::unix_timestamp)
}

/// Writes the site files under `dest`; returns the new page keys
/// (`user/module` → key) and the search parts' files with their inputs'
/// digest. `previous_search` is the previous build's, with the site it was
/// published to: parts whose inputs did not change are kept there.
///
/// The gist modules' records are read from the spill twice: whole, in
/// order (the listing, the search parts and who depends on whom), and as
/// lines whose names alone are read (the pages, decoding only a record
/// whose page changed); a third time when the previous search parts could
/// have served but do not. What stays in memory is the search terms (none
/// when the parts are kept), the modules' names and their dependencies as
/// positions.
pub fn write(
    dest: &Path,
    manifest: &StagedManifest,
    blobs: &BlobDir,
    previous_keys: &TextMap,
    previous_search: Option<(&Path, &SearchPartsKey)>,
) -> Result<(TextMap, SearchPartsKey)> {
    for (name, text) in mlld_schemas::json_schemas() {
        write_file(dest, &format!("schemas/{name}"), text.as_bytes())?;
    }
    let mut advisories = serde_json::to_vec_pretty(&manifest.advisories)?;
    advisories.push(b'\n');
    write_file(dest, "advisories.json", &advisories)?;

    let advisory_index = AdvisoryIndex::new(&manifest.advisories);
    let (listing, dependents) = write_listing(dest, manifest, &advisory_index, previous_search)?;
    let dependents_bits = dependents_files::bits_for(manifest.modules.len());
    let entry = serde_json::json!({ "serial": manifest.serial, "created": manifest.created, "count": manifest.modules.len(), "versioned": manifest.versioned.len(), "rowsPerShard": SHARD, "shards": listing.shards, "search": listing.search.files, "dependentsBits": dependents_bits });
    let entry = format!("mlldRegistry.site({entry});\n");
    write_file(dest, "data/site.js", entry.as_bytes())?;
    write_file(dest, "index.html", page_html(&entry)?.as_bytes())?;

    // Most pages are unchanged: their key comes from the record's line as
    // the spill holds it, and only a changed page's record is decoded.
    let buckets =
        dependents_files::write_buckets(dest, &dependents, dependents_bits, previous_keys)?;
    drop(dependents);
    let pages = GistPageWriter {
        dest,
        manifest,
        advisory_index: &advisory_index,
        blobs,
    };
    let keyed = manifest.modules.par_map_lines(|_, line| {
        let names = RecordHead::of(line)?;
        let full = names.full_name();
        let advisories: Vec<&AdvisoryRecord> = (advisory_index)
            .for_names(&names.user, &names.name, &names.gist)
            .collect();
        let key = gist_page_key(line, &advisories)?;
        let mut deferred = false;
        if previous_keys.get(&full) != Some(key.as_str()) {
            let m = manifest.modules.decode_line(line)?;
            match pages.reads_previous_site(&m) {
                true => deferred = true,
                false => pages.write_one(&m, advisories)?,
            }
        }
        Ok((full, key, deferred))
    })?;
    let deferred: Vec<u32> = (keyed.iter().enumerate())
        .filter(|(_, (_, _, deferred))| *deferred)
        .map(|(i, _)| i as u32)
        .collect();
    pages.write_reading_ahead(&deferred)?;
    let gist_pages = keyed.into_iter().map(|(full, key, _)| (full, key));
    let versioned_pages: Vec<(String, String)> = manifest
        .versioned
        .par_iter()
        .map(|v| versioned_page(dest, &manifest.advisories, v, blobs, previous_keys))
        .filter_map(Result::transpose)
        .collect::<Result<_>>()?;
    let keys = gist_pages.chain(versioned_pages).chain(buckets).collect();
    Ok((keys, listing.search))
}

/// What writing a gist module's page needs beside its record.
struct GistPageWriter<'a> {
    dest: &'a Path,
    manifest: &'a StagedManifest,
    advisory_index: &'a AdvisoryIndex<'a>,
    blobs: &'a BlobDir,
}

/// A batch of deferred pages: their records, and the previous site's
/// files they read.
struct Batch {
    records: Vec<ModuleRecord>,
    files: Vec<PathBuf>,
}

impl GistPageWriter<'_> {
    /// Deferred pages decoded and read ahead at once (fewer in tests, so
    /// that they take several batches).
    const BATCH: usize = if cfg!(test) { 1000 } else { 4096 };

    fn write_one(&self, m: &ModuleRecord, advisories: Vec<&AdvisoryRecord>) -> Result<()> {
        let page = gist_page::page(m, advisories, self.blobs, MAX_PAGE_CONTENT)?;
        write_page(self.dest, &m.full_name(), &page)
    }

    /// The previous site's files among those `m`'s page reads, which are
    /// not cached: this build fetched the rest moments ago.
    fn previous_site_files(&self, m: &ModuleRecord) -> impl Iterator<Item = PathBuf> {
        (gist_page::page_blobs(m))
            .filter_map(|d| self.blobs.locate(d.trim_start_matches("sha256:")))
            .filter(|path| !path.starts_with(self.blobs.root()))
    }

    /// Whether `m`'s page reads a file of the previous site: a module
    /// whose content did not change but whose page did (an advisory, a
    /// dependency accepted or rejected, a new page format). Such pages
    /// wait for [`Self::write_reading_ahead`].
    fn reads_previous_site(&self, m: &ModuleRecord) -> bool {
        self.blobs.previous_root().is_some() && self.previous_site_files(m).next().is_some()
    }

    /// Writes the pages of the modules at `positions` (ascending), a batch
    /// at a time. Each reads a loose blob of the previous site, uncached:
    /// on a thread a core the disk served two reads at a time and the
    /// cores idled (an incremental build at a million modules rewrites
    /// some 40,000 such pages). The I/O threads read the next batch's
    /// files into the page cache, many at once, while this one renders.
    fn write_reading_ahead(&self, positions: &[u32]) -> Result<()> {
        let mut batches = positions.chunks(Self::BATCH);
        let mut current = batches.next().map(|b| self.prepare(b)).transpose()?;
        if let Some(first) = &current {
            crate::io_threads::read_into_cache(&first.files);
        }
        while let Some(Batch { records, .. }) = current.take() {
            let next = batches.next().map(|b| self.prepare(b)).transpose()?;
            std::thread::scope(|scope| {
                let reading = (next.as_ref())
                    .map(|n| scope.spawn(|| crate::io_threads::read_into_cache(&n.files)));
                let written = (records.par_iter()).try_for_each(|m| {
                    let advisories = (self.advisory_index)
                        .for_names(&m.user, &m.name, &m.gist)
                        .collect();
                    self.write_one(m, advisories)
                });
                if let Some(Err(panic)) = reading.map(|r| r.join()) {
                    std::panic::resume_unwind(panic);
                }
                written
            })?;
            current = next;
        }
        Ok(())
    }

    fn prepare(&self, positions: &[u32]) -> Result<Batch> {
        let lines = self.manifest.modules.select_lines(positions)?;
        let records: Vec<ModuleRecord> = (lines.par_iter())
            .map(|line| self.manifest.modules.decode_line(line))
            .collect::<Result<_>>()?;
        let files = records
            .iter()
            .flat_map(|m| self.previous_site_files(m))
            .collect();
        Ok(Batch { records, files })
    }
}

/// Writes a versioned module's page unless its key is unchanged; `None` when
/// the module has no version to show.
fn versioned_page(
    dest: &Path,
    advisories: &[AdvisoryRecord],
    module: &VersionedModule,
    blobs: &BlobDir,
    previous_keys: &TextMap,
) -> Result<Option<(String, String)>> {
    let full = module.full_name();
    let advisories = versioned::advisories(advisories, module);
    let key = page_key(&(module, &advisories))?;
    if previous_keys.get(&full) != Some(key.as_str()) {
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
pub fn remove_legacy_pages(out: &Path, previous: &TextMap, current: &TextMap) -> Result<()> {
    for (page, key) in current.iter() {
        if previous.get(page) == Some(key) || bucket_file(page).is_some() {
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

/// `index.html` with its style, scripts and `data/site.js` (`entry`)
/// inlined: a reader's first request brings everything the page needs to
/// ask for a search's parts or a module's page, one round trip sooner than
/// six more files would (the bench of the page at scale waits for them).
fn page_html(entry: &str) -> Result<String> {
    let mut html = PAGE_HTML.to_string();
    for (name, text) in PAGE_FILES.iter().copied().chain([("data/site.js", entry)]) {
        let (tag, end, pattern) = if name.ends_with(".css") {
            (
                "style",
                "</style",
                format!(r#"<link rel="stylesheet" href="{name}">"#),
            )
        } else {
            (
                "script",
                "</script",
                format!(r#"<script src="{name}"></script>"#),
            )
        };
        // Our own files and the entry's names and numbers: none may end the element early.
        anyhow::ensure!(
            !text.to_ascii_lowercase().contains(end) && !text.contains("<!--"),
            "{name} cannot be inlined: it holds `{end}` or `<!--`"
        );
        anyhow::ensure!(
            html.contains(&pattern),
            "site/index.html does not name {name}"
        );
        html = html.replacen(&pattern, &format!("<{tag}>\n{text}</{tag}>"), 1);
    }
    Ok(html)
}

/// `mlldRegistry.<call>(<index>,JSON.parse('<value as JSON>'));`: data as a
/// string the page's `JSON.parse` reads, several times faster than a
/// browser parses the same object written as code.
fn json_call(call: &str, index: usize, value: &serde_json::Value) -> String {
    json_text_call(call, index, &value.to_string())
}

/// [`json_call`] of a value already written as JSON.
fn json_text_call(call: &str, index: usize, json: &str) -> String {
    let mut literal = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            // Line terminators may not stand raw in a string literal.
            '\u{2028}' => literal.push_str("\\u2028"),
            '\u{2029}' => literal.push_str("\\u2029"),
            c => literal.push(c),
        }
    }
    format!("mlldRegistry.{call}({index},JSON.parse('{literal}'));\n")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a JavaScript single-quoted string literal holds, for the
    /// escapes `json_call` writes.
    fn js_string(literal: &str) -> String {
        let mut out = String::new();
        let mut chars = literal.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                assert_ne!(c, '\'', "an unescaped quote ends the literal");
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn data_calls_hold_their_json_as_a_string_literal() {
        let value = serde_json::json!({"it's": ["back\\slash", "quote\"d", "line\nbreak", "sep\u{2028}\u{2029}", "</script>"]});
        let call = json_call("shard", 7, &value);
        let literal = call
            .strip_prefix("mlldRegistry.shard(7,JSON.parse('")
            .and_then(|c| c.strip_suffix("'));\n"))
            .unwrap();
        assert!(!literal.contains(['\u{2028}', '\u{2029}', '\n']));
        let back: serde_json::Value = serde_json::from_str(&js_string(literal)).unwrap();
        assert_eq!(back, value);
    }
}
