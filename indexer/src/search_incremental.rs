//! The nightly search index without rebuilding it: the base segment of the
//! last full build stays as it is (byte for byte, so clients' delta patches
//! stay small), and one more segment holds every module whose document
//! differs from the base's, whose old document the base's deletion file
//! marks. Each build rebuilds that delta segment from the base, so there are
//! never more than two segments; once the delta passes a tenth of the
//! registry, the build starts over with a full rebuild.
//!
//! What the base holds is remembered in the signed crawl state as one
//! fingerprint per document (everything the document is made of), so
//! finding the changed modules reads no content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::search::tantivy;
use mlld_schemas::search::{INDEX_DIR, META_FILE, SEGMENT_ID, SearchFields};
use mlld_schemas::snapshot::{AdvisoryIndex, AdvisoryRecord, Member};
use mlld_schemas::snapshot_versioned::VersionedModule;
use mlld_site_contract::hashing::Hashing;
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::NoMergePolicy;
use tantivy::{Index, TantivyDocument, Term};

use crate::blobs::BlobDir;
use crate::record_spill::RecordSpill;
use crate::search_index::{self, Doc, MEMORY_BUDGET, WORK_DIR, advisory_flag};
use crate::text_map::TextMap;

/// A delta larger than this share of the registry triggers a full rebuild.
const MAX_DELTA_SHARE: usize = 10;

/// What the next build needs to know about the base segment.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchState {
    /// The base's own `meta.json`, as the full build wrote it.
    pub base_meta: String,
    /// The base segment's files (no deletion file): name → SHA-256.
    pub base_files: BTreeMap<String, String>,
    /// Document key → fingerprint of every document in the base.
    pub base_docs: TextMap,
}

/// How the index was built, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum IndexBuild {
    Full,
    /// On the previous base: this many documents replaced or added, this many deleted.
    Incremental {
        changed: usize,
        removed: usize,
    },
}

/// The index of `modules`, written to `root/index/`: incremental on `base`
/// (with its files read from `previous_index`, an index-only snapshot)
/// when that is possible and small, full otherwise.
pub fn write(
    root: &Path,
    blobs: &BlobDir,
    modules: &RecordSpill,
    versioned: &[VersionedModule],
    advisories: &[AdvisoryRecord],
    base: Option<(SearchState, &Path)>,
) -> Result<(BTreeMap<String, Member>, SearchState, IndexBuild)> {
    let index = AdvisoryIndex::new(advisories);
    let mut prints: Vec<(String, String)> = modules.par_map(|_, m| {
        let doc = Doc::Gist(&m);
        Ok((doc.key(), fingerprint(&doc, &index)))
    })?;
    prints.extend(versioned.iter().map(|v| {
        let doc = Doc::Versioned(v);
        (doc.key(), fingerprint(&doc, &index))
    }));
    let work = root.join(WORK_DIR);
    if let Some((state, previous_index)) = base
        && let Some(plan) = plan(&state, &prints)
        && unpack_base(&state, previous_index, &work).is_ok()
    {
        let docs = (modules, versioned);
        let members = incremental(root, blobs, docs, &index, &work, &plan)?;
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
        let build = IndexBuild::Incremental {
            changed: plan.changed.len(),
            removed: plan.deleted.len() - plan.changed_in_base,
        };
        // The base stays the base: its state goes on as it is.
        return Ok((members, state, build));
    }
    let members = search_index::write(root, blobs, modules, versioned, advisories)?;
    let state = SearchState {
        base_meta: std::fs::read_to_string(root.join(INDEX_DIR).join(META_FILE))?,
        base_files: members
            .iter()
            .filter_map(|(p, m)| {
                let name = p.strip_prefix(INDEX_DIR)?.strip_prefix('/')?;
                (name != META_FILE).then(|| (name.to_string(), m.sha256.clone()))
            })
            .collect(),
        base_docs: prints.into_iter().collect(),
    };
    Ok((members, state, IndexBuild::Full))
}

/// Everything a module's document is made of: equal prints, equal documents.
fn fingerprint(doc: &Doc<'_>, advisories: &AdvisoryIndex<'_>) -> String {
    let parts = match doc {
        Doc::Gist(module) => {
            let flag = advisory_flag(module, advisories);
            serde_json::json!([
                module.full_name(),
                module.description,
                module.tags,
                module.current.integrity,
                flag.map(|f| (f.highest.as_str(), f.count)),
            ])
        }
        Doc::Versioned(module) => {
            let latest = module.latest();
            serde_json::json!([
                module.full_name(),
                module.about,
                latest.map(|v| (&v.version, &v.keywords, &v.integrity)),
            ])
        }
    };
    mlld_schemas::sha256_hex(parts.to_string().as_bytes())[..32].to_string()
}

struct Plan {
    /// Positions (in manifest order: gist modules, then versioned ones) of
    /// documents to add, ascending.
    changed: Vec<usize>,
    /// Keys of base documents to delete (changed or gone).
    deleted: Vec<String>,
    /// How many of `changed` replace a base document.
    changed_in_base: usize,
}

/// What differs from the base, or `None` when a full rebuild is better.
fn plan(state: &SearchState, prints: &[(String, String)]) -> Option<Plan> {
    let mut changed = Vec::new();
    let mut deleted = Vec::new();
    for (i, (key, print)) in prints.iter().enumerate() {
        match state.base_docs.get(key) {
            Some(old) if old == print => {}
            Some(_) => {
                changed.push(i);
                deleted.push(key.clone());
            }
            None => changed.push(i),
        }
    }
    let changed_in_base = deleted.len();
    let present: BTreeSet<&str> = prints.iter().map(|(k, _)| k.as_str()).collect();
    deleted.extend(
        state
            .base_docs
            .keys()
            .filter(|k| !present.contains(k))
            .map(str::to_string),
    );
    let moved = changed.len() + deleted.len() - changed_in_base;
    (moved * MAX_DELTA_SHARE <= prints.len().max(1)).then_some(Plan {
        changed,
        deleted,
        changed_in_base,
    })
}

/// Unpacks the base segment's files from the previous index-only snapshot
/// into `work`, each checked against the digest the (signed) crawl state
/// remembers as it streams.
fn unpack_base(state: &SearchState, previous_index: &Path, work: &Path) -> Result<()> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let mut found = 0;
    let file = std::fs::File::open(previous_index)?;
    let mut archive = mlld_site_contract::archive::open_zstd(file)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = mlld_site_contract::archive::member_path(&entry)
            .context("the previous index-only snapshot has an unsafe member")?;
        let Some(name) = path
            .strip_prefix(INDEX_DIR)
            .and_then(|p| p.strip_prefix('/'))
        else {
            continue;
        };
        let Some(digest) = state.base_files.get(name) else {
            continue;
        };
        let out = std::fs::File::create(work.join(name))?;
        let mut out = Hashing::new(std::io::BufWriter::new(out));
        std::io::copy(&mut entry, &mut out)?;
        let (actual, out) = out.finish();
        out.into_inner().map_err(|e| e.into_error())?;
        if &actual.sha256 != digest {
            bail!("the previous snapshot's {path} is not the base segment's");
        }
        found += 1;
    }
    if found != state.base_files.len() {
        bail!("the previous snapshot lacks files of the base segment");
    }
    std::fs::write(work.join(META_FILE), state.base_meta.as_bytes())?;
    Ok(())
}

/// The base as it was, its changed documents deleted, and one segment of
/// the changed modules' new documents (in manifest order).
fn incremental(
    root: &Path,
    blobs: &BlobDir,
    (modules, versioned): (&RecordSpill, &[VersionedModule]),
    advisories: &AdvisoryIndex<'_>,
    work: &Path,
    plan: &Plan,
) -> Result<BTreeMap<String, Member>> {
    let index = Index::open(MmapDirectory::open(work)?).context("opening the base segment")?;
    let (_, fields) = SearchFields::build();
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, MEMORY_BUDGET)?;
    writer.set_merge_policy(Box::new(NoMergePolicy));
    for key in &plan.deleted {
        writer.delete_term(Term::from_field_text(fields.exact, key));
    }
    let split = plan.changed.partition_point(|&i| i < modules.len());
    let (in_modules, in_versioned) = plan.changed.split_at(split);
    let in_modules: Vec<u32> = in_modules.iter().map(|&i| i as u32).collect();
    let chunks = in_modules.chunks(4096).map(|positions| {
        let records = modules.par_select(positions)?;
        Ok((0, records))
    });
    let changed_versioned: Vec<VersionedModule> = in_versioned
        .iter()
        .map(|&i| versioned[i - modules.len()].clone())
        .collect();
    let documents = search_index::Documents {
        blobs,
        fields: &fields,
        advisories,
    };
    documents.add(chunks, &changed_versioned, &mut |d| {
        writer.add_document(d)?;
        Ok(())
    })?;
    writer
        .commit()
        .context("committing the search index delta")?;
    writer.wait_merging_threads()?;
    drop(index);
    let members = search_index::export(work, &root.join(INDEX_DIR))?;
    search_index::check_opens(&root.join(INDEX_DIR), modules.len() + versioned.len())?;
    if !members.contains_key(&format!("{INDEX_DIR}/{SEGMENT_ID}.store")) {
        bail!("the incremental search index lost its base segment");
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use tantivy::collector::DocSetCollector;
    use tantivy::directory::MmapDirectory;
    use tantivy::query::TermQuery;
    use tantivy::schema::IndexRecordOption;

    use super::*;
    use mlld_schemas::ModuleRecord;

    fn module(blobs: &BlobDir, name: &str, description: &str) -> ModuleRecord {
        let content = format!(">> {name} does things\n/var @x = 1\n");
        let mut m = crate::search_index::tests::module(blobs.root(), "ann", name, &content);
        m.description = description.into();
        m
    }

    fn spill(dir: &Path, modules: &[ModuleRecord]) -> RecordSpill {
        RecordSpill::from_records(&dir.join("records.jsonl"), modules).unwrap()
    }

    /// The index-only snapshot a build would publish: just the index files, as a tar.zst.
    fn pack(root: &Path, members: &BTreeMap<String, Member>) -> std::path::PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        for path in members.keys() {
            tar.append_path_with_name(root.join(path), path).unwrap();
        }
        let file = root.join("index.tar.zst");
        std::fs::write(
            &file,
            zstd::encode_all(&tar.into_inner().unwrap()[..], 1).unwrap(),
        )
        .unwrap();
        file
    }

    /// The full names of the documents holding `word` in their text.
    fn find(dir: &Path, word: &str) -> BTreeSet<String> {
        let index = Index::open(MmapDirectory::open(dir.join(INDEX_DIR)).unwrap()).unwrap();
        let (_, fields) = SearchFields::build();
        let searcher = index.reader().unwrap().searcher();
        let query = TermQuery::new(
            Term::from_field_text(fields.text_words, word),
            IndexRecordOption::Basic,
        );
        let docs = searcher.search(&query, &DocSetCollector).unwrap();
        docs.into_iter()
            .map(|a| {
                let doc: TantivyDocument = searcher.doc(a).unwrap();
                fields.hit(&doc).unwrap().name
            })
            .collect()
    }

    #[test]
    fn an_incremental_index_answers_like_a_full_one_and_keeps_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path().join("blobs"), None);
        let names: Vec<String> = (0..40).map(|i| format!("mod-{i:02}")).collect();
        let mut modules: Vec<_> = names
            .iter()
            .map(|n| module(&blobs, n, "parses apples"))
            .collect();
        let first = dir.path().join("first");
        let (members, state, build) =
            write(&first, &blobs, &spill(dir.path(), &modules), &[], &[], None).unwrap();
        assert_eq!(build, IndexBuild::Full);
        let previous = pack(&first, &members);

        // One description changes, one module leaves, one arrives.
        modules[3] = module(&blobs, "mod-03", "parses oranges");
        modules.remove(7);
        modules.push(module(&blobs, "mod-zz", "parses oranges"));
        let second = dir.path().join("second");
        let (inc, state2, build) = write(
            &second,
            &blobs,
            &spill(dir.path(), &modules),
            &[],
            &[],
            Some((state.clone(), &previous)),
        )
        .unwrap();
        assert_eq!(
            build,
            IndexBuild::Incremental {
                changed: 2,
                removed: 1
            }
        );
        // The base segment's files are the previous ones, byte for byte.
        for (name, digest) in &state.base_files {
            assert_eq!(
                &inc[&format!("{INDEX_DIR}/{name}")].sha256,
                digest,
                "{name}"
            );
        }
        assert!(inc.keys().any(|p| p.ends_with(".del")), "{inc:?}");
        assert_eq!(state2.base_docs, state.base_docs, "the base stays the base");

        let full = dir.path().join("full");
        write(&full, &blobs, &spill(dir.path(), &modules), &[], &[], None).unwrap();
        for word in ["apples", "oranges", "parses"] {
            assert_eq!(find(&second, word), find(&full, word), "{word}");
        }
        assert_eq!(find(&second, "oranges").len(), 2);
        assert!(!find(&second, "apples").contains("ann/mod-03"));
        assert!(!find(&second, "apples").contains("ann/mod-07"));

        // Reproducible: the same base and modules give the same bytes.
        let again = dir.path().join("again");
        let (inc2, _, _) = write(
            &again,
            &blobs,
            &spill(dir.path(), &modules),
            &[],
            &[],
            Some((state.clone(), &previous)),
        )
        .unwrap();
        assert_eq!(inc, inc2);
    }

    #[test]
    fn a_large_change_rebuilds_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path().join("blobs"), None);
        let mut modules: Vec<_> = (0..20)
            .map(|i| module(&blobs, &format!("m{i}"), "one"))
            .collect();
        let first = dir.path().join("first");
        let (members, state, _) =
            write(&first, &blobs, &spill(dir.path(), &modules), &[], &[], None).unwrap();
        let previous = pack(&first, &members);
        for m in modules.iter_mut().take(5) {
            m.description = "two".into();
        }
        let (_, _, build) = write(
            &dir.path().join("second"),
            &blobs,
            &spill(dir.path(), &modules),
            &[],
            &[],
            Some((state.clone(), &previous)),
        )
        .unwrap();
        assert_eq!(build, IndexBuild::Full);
    }
}
