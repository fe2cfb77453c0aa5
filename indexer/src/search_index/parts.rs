//! The full build's writer: documents go into parts of at most
//! [`PART_DOCS`] documents, each written to disk as one segment when it
//! fills, and the parts are then merged, in order, into the one segment the
//! snapshot holds.
//!
//! A tantivy segment writer keeps every posting in memory until it is
//! finalized (about 1.2 KB a module), so one writer for a million modules
//! would hold over a gigabyte; a part bounds that whatever the registry's
//! size. The merge reads the parts as streams and keeps document order, so
//! the same modules still give the same bytes; a registry of one part is
//! written exactly as before, with no merge.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::search::tantivy;
use tantivy::directory::MmapDirectory;
use tantivy::index::IndexSettings;
use tantivy::schema::Schema;
use tantivy::{Index, SingleSegmentIndexWriter, TantivyDocument};

/// Documents in a part: about 120 MB of postings in the writer.
pub(crate) const PART_DOCS: usize = 100_000;

/// The writer's arena hint for a part.
const PART_MEMORY: usize = super::MEMORY_BUDGET;

/// Writes parts under `work/part-NNNN/` and merges them into `work/merged/`.
pub(crate) struct Parts {
    work: PathBuf,
    schema: Schema,
    settings: IndexSettings,
    part_docs: usize,
    writer: Option<SingleSegmentIndexWriter<TantivyDocument>>,
    in_part: usize,
    done: Vec<Index>,
}

impl Parts {
    /// Starts the first part (an empty registry still gets its one
    /// segment); a part holds at most `part_docs` documents.
    pub(crate) fn new(
        work: &Path,
        schema: Schema,
        settings: IndexSettings,
        part_docs: usize,
    ) -> Result<Self> {
        let mut parts = Self {
            work: work.to_path_buf(),
            schema,
            settings,
            part_docs: part_docs.max(1),
            writer: None,
            in_part: 0,
            done: Vec::new(),
        };
        parts.writer = Some(parts.open_part()?);
        Ok(parts)
    }

    fn part_dir(&self, n: usize) -> PathBuf {
        self.work.join(format!("part-{n:04}"))
    }

    fn open_part(&self) -> Result<SingleSegmentIndexWriter<TantivyDocument>> {
        let dir = self.part_dir(self.done.len());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Index::builder()
            .schema(self.schema.clone())
            .settings(self.settings.clone())
            .single_segment_index_writer::<TantivyDocument>(
                MmapDirectory::open(&dir)?,
                PART_MEMORY,
            )?)
    }

    pub(crate) fn add(&mut self, doc: TantivyDocument) -> Result<()> {
        if self.writer.is_none() {
            self.writer = Some(self.open_part()?);
        }
        let writer = self.writer.as_mut().context("a part is open")?;
        writer.add_document(doc)?;
        self.in_part += 1;
        if self.in_part == self.part_docs {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            let index = writer
                .finalize()
                .context("finishing a part of the search index")?;
            self.done.push(index);
            self.in_part = 0;
        }
        Ok(())
    }

    /// The directory of the finished index: the one part as it is, or the
    /// parts merged in order (the parts are then removed).
    pub(crate) fn finish(mut self) -> Result<PathBuf> {
        self.close_part()?;
        if self.done.len() == 1 {
            return Ok(self.part_dir(0));
        }
        let merged = self.work.join("merged");
        std::fs::create_dir_all(&merged)
            .with_context(|| format!("creating {}", merged.display()))?;
        tantivy::indexer::merge_indices(&self.done, MmapDirectory::open(&merged)?)
            .context("merging the parts of the search index")?;
        // The parts' handles go before their files do.
        let parts = std::mem::take(&mut self.done).len();
        for n in 0..parts {
            let dir = self.part_dir(n);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(merged)
    }
}
