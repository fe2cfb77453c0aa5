//! The accepted gist modules' records, written once to a staged file and
//! read back one at a time.
//!
//! A million records take gigabytes as Rust values but under a gigabyte as
//! JSON, and every stage after the crawl (search index, manifest, page
//! data, sparse shards) only ever walks them in order. So the crawl writes
//! each record once, as the manifest spells it (one line of JSON each, in
//! manifest order), and the stages stream over the file: what stays in
//! memory is one offset a record. The file lives in the build's staging
//! directory and goes with it.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, ensure};
use mlld_schemas::ModuleRecord;
use rayon::prelude::*;

/// Records decoded at once by [`RecordSpill::par_map`], for each core (up
/// to [`PAR_CORES`]): enough to keep the cores busy, few enough that
/// memory does not follow the registry.
const PAR_CHUNK: usize = 4096;
const PAR_CORES: usize = 8;

/// Module records in manifest order (user, then name), one JSON line each.
#[derive(Debug)]
pub struct RecordSpill {
    path: PathBuf,
    /// Where each record's line starts, then the file's length.
    offsets: Vec<u64>,
    /// One handle for [`RecordSpill::read_at`] from any thread.
    shared: OnceLock<File>,
}

/// The fields of a record's line that passes over every record need,
/// read without decoding the rest (several times faster than a whole
/// [`ModuleRecord`], which holds some twenty strings).
#[derive(serde::Deserialize)]
pub struct RecordHead<'a> {
    #[serde(borrow)]
    pub user: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub gist: Cow<'a, str>,
    /// The current revision's.
    #[serde(borrow, default)]
    pub dependencies: Vec<Cow<'a, str>>,
}

impl<'a> RecordHead<'a> {
    pub fn of(line: &'a [u8]) -> Result<Self> {
        serde_json::from_slice(line).context("reading a record's names back from the spill")
    }

    /// `user/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.user, self.name)
    }
}

/// Writes a spill record by record; [`SpillWriter::finish`] makes it readable.
pub struct SpillWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offsets: Vec<u64>,
    at: u64,
    line: Vec<u8>,
}

impl SpillWriter {
    /// Appends `record`; records must come in manifest order.
    pub fn push(&mut self, record: &ModuleRecord) -> Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        serde_json::to_writer(&mut line, record)?;
        let pushed = self.push_raw(&line);
        self.line = line;
        pushed
    }

    /// Appends one record as the JSON `json` (one line: no newline inside).
    pub fn push_raw(&mut self, json: &[u8]) -> Result<()> {
        ensure!(!json.contains(&b'\n'), "a spilled record must be one line");
        self.offsets.push(self.at);
        self.out.write_all(json)?;
        self.out.write_all(b"\n")?;
        self.at += json.len() as u64 + 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<RecordSpill> {
        self.out.flush()?;
        self.offsets.push(self.at);
        Ok(RecordSpill {
            path: self.path,
            offsets: self.offsets,
            shared: OnceLock::new(),
        })
    }
}

impl RecordSpill {
    /// Starts a spill at `path` (replacing any file there).
    pub fn create(path: &Path) -> Result<SpillWriter> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(SpillWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            offsets: Vec::new(),
            at: 0,
            line: Vec::new(),
        })
    }

    /// A spill of `records` at `path` (tests, and small registries).
    pub fn from_records<'a>(
        path: &Path,
        records: impl IntoIterator<Item = &'a ModuleRecord>,
    ) -> Result<Self> {
        let mut w = Self::create(path)?;
        for r in records {
            w.push(r)?;
        }
        w.finish()
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spill's file (removed with the staging directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record's JSON, as the manifest spells it, in order.
    pub fn lines(&self) -> Result<impl Iterator<Item = Result<Vec<u8>>> + '_> {
        self.lines_in(0..self.len())
    }

    /// Every record, decoded one at a time, in order.
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<ModuleRecord>> + '_> {
        Ok(self.lines()?.map(|line| self.decode(&line?)))
    }

    /// Record `i`.
    pub fn get(&self, i: usize) -> Result<ModuleRecord> {
        let i = u32::try_from(i).context("a record position past 2^32")?;
        self.par_select(&[i])?.pop().context("no record")
    }

    /// Record `i`, read through one handle that every thread shares.
    pub fn read_at(&self, i: usize) -> Result<ModuleRecord> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt as _;
            ensure!(i < self.len(), "record {i} of {} in the spill", self.len());
            if self.shared.get().is_none() {
                let file = File::open(&self.path)
                    .with_context(|| format!("opening {}", self.path.display()))?;
                let _ = self.shared.set(file);
            }
            let file = self.shared.get().context("the spill's handle")?;
            let (start, end) = (self.offsets[i], self.offsets[i + 1]);
            let mut line = vec![0; (end - start) as usize];
            file.read_exact_at(&mut line, start)?;
            self.decode(&line[..line.len() - 1])
        }
        #[cfg(not(unix))]
        self.get(i)
    }

    /// The records at `positions` in that order, read through one handle
    /// and decoded on all cores (for more than a few records).
    pub fn par_select(&self, positions: &[u32]) -> Result<Vec<ModuleRecord>> {
        self.par_decode(&self.select_lines(positions)?)
    }

    /// The lines of the records at `positions`, in that order, read through
    /// one handle.
    pub fn select_lines(&self, positions: &[u32]) -> Result<Vec<Vec<u8>>> {
        let mut file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        (positions.iter())
            .map(|&i| {
                let i = i as usize;
                ensure!(i < self.len(), "record {i} of {} in the spill", self.len());
                let (start, end) = (self.offsets[i], self.offsets[i + 1]);
                let mut line = vec![0; (end - start - 1) as usize];
                read_exact_at(&mut file, &mut line, start)?;
                Ok(line)
            })
            .collect()
    }

    fn par_decode(&self, lines: &[Vec<u8>]) -> Result<Vec<ModuleRecord>> {
        lines.par_iter().map(|line| self.decode(line)).collect()
    }

    /// `f(position, record)` for every record on all cores, a few thousand
    /// records at a time; the results in order (keep them small).
    pub fn par_map<T: Send>(
        &self,
        f: impl Fn(usize, ModuleRecord) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        self.par_map_lines(|i, line| f(i, self.decode(line)?))
    }

    /// `f(position, line)` for every record's JSON, as [`RecordSpill::par_map`]:
    /// for a pass that needs only part of a record, or only some records
    /// decoded (the line is what the manifest spells, see [`Self::decode_line`]).
    pub fn par_map_lines<T: Send>(
        &self,
        f: impl Fn(usize, &[u8]) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(self.len());
        for mapped in self.par_map_chunks(f)? {
            out.extend(mapped?);
        }
        Ok(out)
    }

    /// `f(position, line)` for every record's JSON on all cores, a chunk
    /// at a time, the chunks' results in order: for a pass that takes
    /// them in order without holding them all.
    pub fn par_map_chunks<'s, T: Send + 's>(
        &'s self,
        f: impl Fn(usize, &[u8]) -> Result<T> + Sync + 's,
    ) -> Result<impl Iterator<Item = Result<Vec<T>>> + 's> {
        Ok(self.line_chunks()?.map(move |chunk| {
            let (first, lines) = chunk?;
            (lines.par_iter().enumerate())
                .map(|(k, line)| f(first + k, line))
                .collect()
        }))
    }

    /// The records in order, a few thousand at a time (enough for every
    /// core), each chunk with the position of its first record.
    pub fn chunks(&self) -> Result<impl Iterator<Item = Result<(usize, Vec<ModuleRecord>)>> + '_> {
        Ok(self.line_chunks()?.map(|chunk| {
            let (first, lines) = chunk?;
            Ok((first, self.par_decode(&lines)?))
        }))
    }

    /// The records' lines in order, a few thousand a core at a time, each
    /// chunk with the position of its first record.
    fn line_chunks(&self) -> Result<impl Iterator<Item = Result<(usize, Vec<Vec<u8>>)>> + '_> {
        let step = PAR_CHUNK * rayon::current_num_threads().clamp(1, PAR_CORES);
        let mut lines = self.lines()?;
        Ok((0..self.len()).step_by(step).map(move |first| {
            let last = (first + step).min(self.len());
            let chunk = (first..last)
                .map(|_| lines.next().context("the spill ended early")?)
                .collect::<Result<_>>()?;
            Ok((first, chunk))
        }))
    }

    /// A record from its line (see [`Self::par_map_lines`]).
    pub fn decode_line(&self, line: &[u8]) -> Result<ModuleRecord> {
        self.decode(line)
    }

    fn lines_in(
        &self,
        range: std::ops::Range<usize>,
    ) -> Result<impl Iterator<Item = Result<Vec<u8>>> + '_> {
        let mut file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        let start = self.offsets.get(range.start).copied().unwrap_or(0);
        file.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        Ok(range.map(move |i| {
            let mut line = Vec::with_capacity((self.offsets[i + 1] - self.offsets[i]) as usize);
            reader.read_until(b'\n', &mut line)?;
            ensure!(
                line.pop() == Some(b'\n'),
                "{}: record {i} is cut short",
                self.path.display()
            );
            Ok(line)
        }))
    }

    fn decode(&self, line: &[u8]) -> Result<ModuleRecord> {
        serde_json::from_slice(line)
            .with_context(|| format!("reading a record back from {}", self.path.display()))
    }
}

/// Fills `buf` from `offset`: one system call where positioned reads exist
/// (the shards' pass reads a million scattered lines), else a seek and a read.
fn read_exact_at(file: &mut File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt as _;
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::Read as _;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str, name: &str) -> ModuleRecord {
        serde_json::from_value(serde_json::json!({
            "user": user, "name": name, "gist": format!("g{name}"), "description": "d",
            "tags": [], "revision": "r", "file": "m.mld", "size": 1, "integrity": "sha256:00", "files": [],
            "dependencies": []
        }))
        .unwrap()
    }

    #[test]
    fn records_come_back_in_order_whole_and_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<_> = (0..10_000)
            .map(|i| record("u", &format!("m{i:05}")))
            .collect();
        let spill = RecordSpill::from_records(&dir.path().join("s"), &records).unwrap();
        assert_eq!(spill.len(), records.len());
        let back: Vec<_> = spill.iter().unwrap().collect::<Result<_>>().unwrap();
        assert_eq!(back, records);
        let mut chunked = Vec::new();
        for chunk in spill.chunks().unwrap() {
            let (first, decoded) = chunk.unwrap();
            assert_eq!(first, chunked.len());
            chunked.extend(decoded);
        }
        assert_eq!(chunked, records);
        assert_eq!(spill.get(7777).unwrap(), records[7777]);
        assert_eq!(spill.read_at(7777).unwrap(), records[7777]);
        assert_eq!(spill.read_at(0).unwrap(), records[0]);
        assert!(spill.read_at(10_000).is_err());
        let some = spill.par_select(&[3, 9_999, 4]).unwrap();
        assert_eq!(
            some,
            [
                records[3].clone(),
                records[9_999].clone(),
                records[4].clone()
            ]
        );
        assert!(spill.get(10_000).is_err());
        let picked = spill.par_select(&[9_999, 0, 5_000]).unwrap();
        assert_eq!(
            picked,
            [
                records[9_999].clone(),
                records[0].clone(),
                records[5_000].clone()
            ]
        );
        assert!(spill.par_select(&[10_000]).is_err());
        let names = spill.par_map(|i, r| Ok((i, r.name))).unwrap();
        assert!(names.iter().all(|(i, n)| *n == records[*i].name));
        assert_eq!(names.len(), records.len());
        // The lines are what the manifest spells.
        let first = spill.lines().unwrap().next().unwrap().unwrap();
        assert_eq!(first, serde_json::to_vec(&records[0]).unwrap());
    }

    #[test]
    fn an_empty_spill_is_empty_and_a_cut_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let spill = RecordSpill::from_records(&dir.path().join("e"), []).unwrap();
        assert!(spill.is_empty());
        assert_eq!(spill.iter().unwrap().count(), 0);
        let records = [record("u", "a"), record("u", "b")];
        let spill = RecordSpill::from_records(&dir.path().join("c"), &records).unwrap();
        let len = std::fs::metadata(spill.path()).unwrap().len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(spill.path())
            .unwrap();
        f.set_len(len - 5).unwrap();
        assert!(spill.iter().unwrap().collect::<Result<Vec<_>>>().is_err());
        assert!(spill.chunks().unwrap().any(|c| c.is_err()));
    }
}
