//! The listing's shards and the search parts, from one pass over the
//! spill in order. Each record is read on all cores for the fields the
//! listing shows ([`Listed`]), not decoded whole, and its row written as
//! JSON and its search terms worked out there; what stays sequential is
//! adding its terms, its row and its dependencies. The search parts are
//! then written on all cores. When the previous build's parts may still
//! serve (`search_inputs.rs`), the pass leaves the terms out; a second
//! pass works them out when they do not (the rows' search inputs changed,
//! or a part is no longer in the site as written).

use std::path::Path;

use anyhow::Result;
use mlld_schemas::snapshot::AdvisoryIndex;
use rayon::prelude::*;
use serde::Deserialize;

use super::dependents::{Dependents, DependentsBuilder};
use super::search_inputs::{SearchInputs, SearchPartsKey, parts_intact, row_input};
use super::search_parts::{RowTerms, SearchParts};
use super::{Row, SHARD, json_text_call, unix_time, versioned, write_addressed};
use crate::staged_manifest::StagedManifest;

/// The listing's and search parts' files, in order.
pub(super) struct Listing {
    pub(super) shards: Vec<String>,
    /// The search parts, written by this build or kept from the previous one.
    pub(super) search: SearchPartsKey,
}

/// What the listing needs of a gist module's record.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedFields {
    user: String,
    name: String,
    gist: String,
    description: String,
    tags: Vec<String>,
    #[serde(default)]
    updated: Option<String>,
    #[serde(default)]
    committed_at: Option<String>,
    #[serde(default)]
    stale: Option<String>,
    /// The current revision's.
    #[serde(default)]
    dependencies: Vec<String>,
}

/// A gist module ready for the listing: its fields, its row's JSON, its
/// search inputs and (unless left for later) its search terms.
struct Listed {
    fields: ListedFields,
    row: String,
    input: Vec<u8>,
    terms: Option<RowTerms>,
}

impl Listed {
    fn of(line: &[u8], advisories: &AdvisoryIndex<'_>, with_terms: bool) -> Result<Self> {
        let m: ListedFields = serde_json::from_slice(line)?;
        let advisory = advisories.for_names(&m.user, &m.name, &m.gist).next();
        let updated =
            unix_time(m.updated.as_deref()).or_else(|| unix_time(m.committed_at.as_deref()));
        let row = Row(
            m.user.clone(),
            &m.name,
            &m.description,
            &m.tags,
            u8::from(advisory.is_some()),
            u8::from(m.stale.is_some()),
            "",
            updated.unwrap_or(0),
        );
        let row = serde_json::to_string(&row)?;
        let input = row_input(&m.user, &m.name, &m.description, &m.tags);
        let terms = with_terms.then(|| RowTerms::of(&m.user, &m.name, &m.description, &m.tags));
        Ok(Self {
            fields: m,
            row,
            input,
            terms,
        })
    }
}

/// Writes the listing shard by shard and the search parts, reading the
/// spill once (twice when `previous_search`, the previous build's parts in
/// the site they were published to, turns out not to serve); returns their
/// files and who depends on whom.
pub(super) fn write_listing(
    dest: &Path,
    manifest: &StagedManifest,
    advisory_index: &AdvisoryIndex<'_>,
    previous_search: Option<(&Path, &SearchPartsKey)>,
) -> Result<(Listing, Dependents)> {
    let rows = manifest.modules.len() + manifest.versioned.len();
    let mut search = previous_search.is_none().then(|| SearchParts::new(rows));
    let with_terms = search.is_some();
    let mut inputs = SearchInputs::new();
    let mut dependents = DependentsBuilder::default();
    let mut shards = ShardWriter::new(dest);
    let listed = (manifest.modules)
        .par_map_chunks(|_, line| Listed::of(line, advisory_index, with_terms))?;
    for chunk in listed {
        for listed in chunk? {
            let m = listed.fields;
            inputs.add(&listed.input);
            if let (Some(search), Some(terms)) = (&mut search, listed.terms) {
                search.add_terms(terms);
            }
            shards.push(listed.row)?;
            dependents.add(&m.user, &m.name, &m.dependencies)?;
        }
    }
    for v in &manifest.versioned {
        let advisory = !versioned::advisories(&manifest.advisories, v).is_empty();
        let row = versioned::row(v, advisory);
        inputs.add(&row_input(&row.0, row.1, row.2, row.3));
        if let Some(search) = &mut search {
            search.add_terms(RowTerms::of(&row.0, row.1, row.2, row.3));
        }
        shards.push(serde_json::to_string(&row)?)?;
    }
    let inputs = inputs.finish();
    let files = match (search, previous_search) {
        (Some(search), _) => write_parts(dest, search)?,
        (None, Some((site, previous)))
            if previous.inputs == inputs && parts_intact(site, previous) =>
        {
            previous.files.clone()
        }
        (None, _) => write_parts(dest, parts_from_spill(manifest)?)?,
    };
    let listing = Listing {
        shards: shards.finish()?,
        search: SearchPartsKey { inputs, files },
    };
    Ok((listing, dependents.finish()))
}

/// What the search parts need of a gist module's record.
#[derive(Deserialize)]
struct SearchedFields {
    user: String,
    name: String,
    description: String,
    tags: Vec<String>,
}

/// The search parts of every row, gist modules read again from the spill.
fn parts_from_spill(manifest: &StagedManifest) -> Result<SearchParts> {
    let mut search = SearchParts::new(manifest.modules.len() + manifest.versioned.len());
    let terms = manifest.modules.par_map_chunks(|_, line| {
        let m: SearchedFields = serde_json::from_slice(line)?;
        Ok(RowTerms::of(&m.user, &m.name, &m.description, &m.tags))
    })?;
    for chunk in terms {
        chunk?.into_iter().for_each(|t| search.add_terms(t));
    }
    for v in &manifest.versioned {
        let row = versioned::row(v, false);
        search.add_terms(RowTerms::of(&row.0, row.1, row.2, row.3));
    }
    Ok(search)
}

/// The parts' files, written on all cores, in part order.
fn write_parts(dest: &Path, search: SearchParts) -> Result<Vec<String>> {
    search
        .bodies()
        .map(|body| write_addressed(dest, "search", &body))
        .collect()
}

/// Writes the listing's rows (each as JSON) `SHARD` at a time as they come.
struct ShardWriter<'a> {
    dest: &'a Path,
    rows: Vec<String>,
    written: Vec<String>,
}

impl<'a> ShardWriter<'a> {
    fn new(dest: &'a Path) -> Self {
        Self {
            dest,
            rows: Vec::with_capacity(SHARD),
            written: Vec::new(),
        }
    }

    fn push(&mut self, row: String) -> Result<()> {
        self.rows.push(row);
        if self.rows.len() == SHARD {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(SHARD));
        let array = format!("[{}]", rows.join(","));
        let body = json_text_call("shard", self.written.len(), &array);
        self.written
            .push(write_addressed(self.dest, "listing", &body)?);
        Ok(())
    }

    /// The shards' files, in order.
    fn finish(mut self) -> Result<Vec<String>> {
        if !self.rows.is_empty() {
            self.flush()?;
        }
        Ok(self.written)
    }
}
