//! The snapshot's search index: one tantivy segment over every accepted
//! module, written so that the same modules always give the same bytes.
//!
//! tantivy names a segment's files after a random UUID and records it in
//! `meta.json`; everything else it writes is a function of the documents
//! and their order. So the index is built on disk, single-threaded (no
//! background compression thread), in parts of a bounded number of
//! documents merged in manifest order into exactly one segment
//! ([`parts`]), and its files are then written out under the fixed
//! [`SEGMENT_ID`](mlld_schemas::search::SEGMENT_ID) with `meta.json` rewritten to match. The result is opened
//! again before it is listed, so a broken index fails the build instead of
//! reaching clients.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::search::tantivy;
use mlld_schemas::search::{AdvisoryFlag, INDEX_DIR, SearchFields};
use mlld_schemas::snapshot::{AdvisoryIndex, AdvisoryRecord, Member, ModuleRecord};
use mlld_schemas::snapshot_versioned::VersionedModule;

use crate::blobs::BlobDir;
use crate::record_spill::RecordSpill;
use rayon::prelude::*;
use tantivy::TantivyDocument;
use tantivy::index::IndexSettings;
use tantivy::store::Compressor;

use crate::content_summary;

mod parts;
mod segment_files;

pub(crate) use segment_files::{check_opens, export};

/// Where the index is built before its files are copied out.
pub(crate) const WORK_DIR: &str = "index.work";

/// The writer's arena; a 100,000-module registry needs well under this.
pub(crate) const MEMORY_BUDGET: usize = 256 << 20;

/// One document of the index: a gist module or a versioned one.
#[derive(Clone, Copy)]
pub enum Doc<'a> {
    Gist(&'a ModuleRecord),
    Versioned(&'a VersionedModule),
}

impl Doc<'_> {
    /// The term only this document holds (how an incremental build deletes it).
    pub fn key(&self) -> String {
        match self {
            Doc::Gist(m) => mlld_schemas::search::document_key(m),
            Doc::Versioned(m) => mlld_schemas::search::versioned_document_key(m),
        }
    }

    /// The entry file's digest (gist module: its module file; versioned: the latest version's entry).
    pub fn content_digest(&self) -> Option<&str> {
        let integrity = match self {
            Doc::Gist(m) => &m.current.integrity,
            Doc::Versioned(m) => &m.latest()?.integrity,
        };
        integrity.strip_prefix("sha256:")
    }

    pub fn document(
        &self,
        fields: &SearchFields,
        content: &str,
        advisories: &AdvisoryIndex<'_>,
    ) -> TantivyDocument {
        match self {
            Doc::Gist(m) => fields.document(m, content, advisory_flag(m, advisories)),
            Doc::Versioned(m) => fields.versioned_document(m, content),
        }
    }

    pub fn full_name(&self) -> String {
        match self {
            Doc::Gist(m) => m.full_name(),
            Doc::Versioned(m) => m.full_name(),
        }
    }
}

/// Builds the index of every module of `modules`, then of `versioned`
/// (manifest order), into `root/index/` and returns its members, keyed by
/// their path in the snapshot. Each module's content is read from `blobs`.
pub fn write(
    root: &Path,
    blobs: &BlobDir,
    modules: &RecordSpill,
    versioned: &[VersionedModule],
    advisories: &[AdvisoryRecord],
) -> Result<BTreeMap<String, Member>> {
    write_in_parts(
        root,
        blobs,
        (modules, versioned),
        advisories,
        parts::PART_DOCS,
    )
}

/// [`write`], with at most `part_docs` documents held by the writer at once.
fn write_in_parts(
    root: &Path,
    blobs: &BlobDir,
    (modules, versioned): (&RecordSpill, &[VersionedModule]),
    advisories: &[AdvisoryRecord],
    part_docs: usize,
) -> Result<BTreeMap<String, Member>> {
    let (schema, fields) = SearchFields::build();
    let settings = IndexSettings {
        docstore_compression: Compressor::Lz4,
        // A compression thread would be the only other thread; one thread keeps the build simple to reason about.
        docstore_compress_dedicated_thread: false,
        ..IndexSettings::default()
    };
    // On disk, not in memory: at a million modules the segment is hundreds
    // of megabytes. Its files are copied out under fixed names below.
    let work = root.join(WORK_DIR);
    // Whatever an incremental attempt left there is not this index's.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let mut parts = parts::Parts::new(&work, schema, settings, part_docs)?;
    let advisories = AdvisoryIndex::new(advisories);
    let documents = Documents {
        blobs,
        fields: &fields,
        advisories: &advisories,
    };
    let added = documents.add(modules.chunks()?, versioned, &mut |d| parts.add(d))?;
    let dir = parts.finish()?;
    let members = export(&dir, &root.join(INDEX_DIR))?;
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    check_opens(&root.join(INDEX_DIR), added)?;
    Ok(members)
}

/// What a document is built from besides its module.
pub(crate) struct Documents<'a> {
    pub blobs: &'a BlobDir,
    pub fields: &'a SearchFields,
    pub advisories: &'a AdvisoryIndex<'a>,
}

impl Documents<'_> {
    /// The documents of `modules` (chunks of records in manifest order),
    /// then of `versioned`, each chunk built on all cores and handed to
    /// `add` in order; returns how many.
    pub(crate) fn add(
        &self,
        modules: impl Iterator<Item = Result<(usize, Vec<ModuleRecord>)>>,
        versioned: &[VersionedModule],
        add: &mut dyn FnMut(TantivyDocument) -> Result<()>,
    ) -> Result<usize> {
        let mut added = 0;
        for chunk in modules {
            let (_, records) = chunk?;
            let docs: Vec<TantivyDocument> = records
                .par_iter()
                .map(|m| self.document(Doc::Gist(m)))
                .collect::<Result<_>>()?;
            added += docs.len();
            docs.into_iter().try_for_each(&mut *add)?;
        }
        let docs: Vec<TantivyDocument> = versioned
            .par_iter()
            .map(|v| self.document(Doc::Versioned(v)))
            .collect::<Result<_>>()?;
        added += docs.len();
        docs.into_iter().try_for_each(&mut *add)?;
        Ok(added)
    }

    fn document(&self, doc: Doc<'_>) -> Result<TantivyDocument> {
        let content = read_module_file(self.blobs, &doc)?;
        let summary = content_summary::extract(&content);
        Ok(doc.document(self.fields, &summary, self.advisories))
    }
}

pub(crate) fn read_module_file(blobs: &BlobDir, doc: &Doc<'_>) -> Result<String> {
    let hex = doc.content_digest().unwrap_or_default();
    let path = blobs.require(hex)?;
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading the content of {} ({})",
            doc.full_name(),
            path.display()
        )
    })?;
    // The indexer accepted only UTF-8 module files.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The flag of the advisories affecting `module`, if any.
pub fn advisory_flag(
    module: &ModuleRecord,
    advisories: &AdvisoryIndex<'_>,
) -> Option<AdvisoryFlag> {
    // Only advisories open at the current revision flag it (their ranges
    // may name older revisions only).
    let current = &module.current;
    let affecting: Vec<_> = advisories
        .for_module(module)
        .filter(|a| {
            a.advisory
                .affects_revision(&current.revision, current.committed_at.as_deref())
        })
        .collect();
    let highest = affecting.iter().map(|a| a.advisory.severity).max()?;
    Some(AdvisoryFlag {
        highest,
        count: affecting.len() as u64,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use mlld_schemas::search::is_index_member;
    use mlld_schemas::snapshot::RevisionRecord;
    use mlld_schemas::{Advisory, Severity, integrity_of};

    use super::*;
    use crate::blobs::BlobDir;
    use mlld_schemas::search::SEGMENT_ID;

    /// A module of `user` whose content is put into the blob directory at `root`.
    pub(crate) fn module(root: &Path, user: &str, name: &str, content: &str) -> ModuleRecord {
        BlobDir::new(root, None).put(content.as_bytes()).unwrap();
        ModuleRecord {
            user: user.into(),
            name: name.into(),
            gist: format!("{:032x}", name.len()),
            description: format!("{name} helpers"),
            tags: vec!["json".into()],
            created: None,
            updated: None,
            current: RevisionRecord {
                revision: "a".repeat(40),
                committed_at: None,
                file: format!("{name}.mld"),
                integrity: integrity_of(content.as_bytes()),
                size: content.len() as u64,
                files: Vec::new(),
                dependencies: Vec::new(),
            },
            history: Vec::new(),
            stale: None,
        }
    }

    fn build(root: &Path, names: &[&str]) -> BTreeMap<String, Member> {
        build_in_parts(root, names, parts::PART_DOCS)
    }

    fn build_in_parts(root: &Path, names: &[&str], part_docs: usize) -> BTreeMap<String, Member> {
        let modules: Vec<_> = names
            .iter()
            .map(|n| {
                module(
                    root,
                    "ann",
                    n,
                    &format!(">> {n} does things\n/var @x = 1\n"),
                )
            })
            .collect();
        index_modules(root, &modules, part_docs)
    }

    /// The index of `modules` (their content already in `root`'s blobs).
    fn index_modules(
        root: &Path,
        modules: &[ModuleRecord],
        part_docs: usize,
    ) -> BTreeMap<String, Member> {
        let spill = RecordSpill::from_records(&root.join("records.jsonl"), modules).unwrap();
        let blobs = BlobDir::new(root, None);
        write_in_parts(root, &blobs, (&spill, &[]), &[], part_docs).unwrap()
    }

    fn files(root: &Path, members: &BTreeMap<String, Member>) -> Vec<(String, Vec<u8>)> {
        members
            .keys()
            .map(|p| (p.clone(), std::fs::read(root.join(p)).unwrap()))
            .collect()
    }

    #[test]
    fn the_same_modules_give_the_same_bytes() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let names = ["csv-tools", "json-utils", "slugify"];
        let first = build(a.path(), &names);
        let second = build(b.path(), &names);
        assert_eq!(first, second);
        assert_eq!(files(a.path(), &first), files(b.path(), &second));
        assert!(first.contains_key("index/meta.json"));
        assert!(first.keys().all(|p| is_index_member(p)), "{first:?}");
        assert!(
            first
                .keys()
                .any(|p| p.ends_with(&format!("{SEGMENT_ID}.store")))
        );
        // And it is not constant: other modules, other index.
        let other = build(c.path(), &["csv-tools", "json-utils", "slugify-two"]);
        assert_ne!(first, other);
    }

    /// The stored names of an index's documents, in document order.
    fn names_in_order(dir: &Path) -> Vec<String> {
        use tantivy::schema::Value as _;
        let index = tantivy::Index::open_in_dir(dir).unwrap();
        let (_, fields) = SearchFields::build();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 1, "one segment");
        let store = searcher.segment_reader(0).get_store_reader(1).unwrap();
        (0..searcher.num_docs() as u32)
            .map(|id| {
                let doc: tantivy::TantivyDocument = store.get(id).unwrap();
                let name = doc.get_first(fields.full_name).unwrap();
                name.as_str().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn parts_merge_into_one_segment_in_manifest_order_and_the_same_bytes() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let names = ["zeta", "alpha", "mid", "beta", "omega"];
        // Five documents in parts of two: three parts, merged.
        let first = build_in_parts(a.path(), &names, 2);
        let second = build_in_parts(b.path(), &names, 2);
        assert_eq!(files(a.path(), &first), files(b.path(), &second));
        assert!(first.keys().all(|p| is_index_member(p)), "{first:?}");
        assert!(
            first
                .keys()
                .any(|p| p.ends_with(&format!("{SEGMENT_ID}.store")))
        );
        let expected: Vec<String> = names.iter().map(|n| format!("ann/{n}")).collect();
        assert_eq!(names_in_order(&a.path().join(INDEX_DIR)), expected);
        assert!(!a.path().join(WORK_DIR).exists(), "the parts are removed");
        // One part answers the same, in the same order.
        build_in_parts(c.path(), &names, 100);
        assert_eq!(names_in_order(&c.path().join(INDEX_DIR)), expected);
    }

    #[test]
    fn parts_of_many_store_blocks_merge_by_stacking_in_order_and_the_same_bytes() {
        // tantivy stacks the parts' stored-document blocks (rather than
        // recompressing) once a part has several 16 KiB blocks, as every
        // real part of 100,000 modules does: descriptions of 60 KB here.
        let build = |root: &Path| {
            let modules: Vec<_> = (0..6)
                .map(|i| {
                    let name = format!("mod-{i}");
                    let mut m = module(root, "ann", &name, &format!(">> {name}\n"));
                    m.description = (0..6_000)
                        .map(|w| format!("w{}x{i} ", w * 7 % 997))
                        .collect();
                    m
                })
                .collect();
            index_modules(root, &modules, 2)
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = build(a.path());
        assert_eq!(files(a.path(), &first), files(b.path(), &build(b.path())));
        let expected: Vec<String> = (0..6).map(|i| format!("ann/mod-{i}")).collect();
        assert_eq!(names_in_order(&a.path().join(INDEX_DIR)), expected);
    }

    #[test]
    fn the_flag_is_the_highest_severity_and_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let m = module(dir.path(), "ann", "json-utils", "x");
        let advisory = |user: &str, severity, affects: &[&str], gists: &[&str]| AdvisoryRecord {
            user: user.into(),
            advisory: Advisory {
                id: "2024-001".into(),
                created: "2024-05-28T00:00:00Z".into(),
                severity,
                affects: affects.iter().map(|s| s.to_string()).collect(),
                gists: gists.iter().map(|s| s.to_string()).collect(),
                kind: "vulnerability".into(),
                description: String::new(),
                recommendation: String::new(),
                affected_versions: None,
                patched_versions: None,
                affected_revisions: Vec::new(),
                before: None,
                extra: Default::default(),
            },
        };
        assert_eq!(advisory_flag(&m, &AdvisoryIndex::new(&[])), None);
        let advisories = [
            advisory("ann", Severity::Low, &["json-utils"], &[]),
            advisory("bob", Severity::High, &[], &[&m.gist]),
            advisory("bob", Severity::Critical, &["json-utils"], &[]),
        ];
        assert_eq!(
            advisory_flag(&m, &AdvisoryIndex::new(&advisories)),
            Some(AdvisoryFlag {
                highest: Severity::High,
                count: 2
            })
        );
        // An advisory naming only older revisions leaves the current one unflagged.
        let mut old_only = advisory("ann", Severity::Low, &["json-utils"], &[]);
        old_only.advisory.affected_revisions = vec!["0".repeat(40)];
        assert_eq!(advisory_flag(&m, &AdvisoryIndex::new(&[old_only])), None);
    }
}
