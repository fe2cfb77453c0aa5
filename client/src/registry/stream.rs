//! Writing `records.bin` from a verified manifest without holding the
//! registry: the manifest is parsed as a stream, each record checked (by
//! the caller's [`ManifestCheck`]) and spilled (`spill`), then the buckets
//! assembled a group at a time. Memory is a group's records per core plus
//! the advisories, not the manifest.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::shard::{self};
use mlld_schemas::{AdvisoryRecord, Member, ModuleRecord, RejectedRecord, VersionedModule};
use mlld_site_contract::json_stream::{self, Field, ObjectVisitor, Value};

use super::spill::Groups;

/// What the query store's head needs from the manifest, and its format.
#[derive(Debug, Default)]
pub struct Streamed {
    pub format_version: u32,
    pub serial: u64,
    pub created: String,
    pub expires: String,
    pub modules: usize,
    pub versioned: usize,
    pub advisories: usize,
}

/// What a reader of the manifest stream checks as it goes by: each record
/// before it is spilled, the members (a reader that wants them), and the
/// head once its fields are known. The first error stops the stream.
pub trait ManifestCheck {
    /// `formatVersion`, `serial` and `expires` are known (called once,
    /// before the first list when the head comes first, else at the end).
    fn head(&mut self, _head: &Streamed) -> Result<()> {
        Ok(())
    }
    fn module(&mut self, _index: usize, _m: &ModuleRecord) -> Result<()> {
        Ok(())
    }
    fn versioned(&mut self, _index: usize, _v: &VersionedModule) -> Result<()> {
        Ok(())
    }
    fn rejected(&mut self, _index: usize, _r: &RejectedRecord) -> Result<()> {
        Ok(())
    }
    fn advisory(&mut self, _index: usize, _a: &AdvisoryRecord) -> Result<()> {
        Ok(())
    }
    /// Whether [`ManifestCheck::member`] is called; otherwise members are skipped.
    fn wants_members(&self) -> bool {
        false
    }
    fn member(&mut self, _path: String, _m: Member) -> Result<()> {
        Ok(())
    }
}

/// Checks nothing: for a manifest whose every record was checked when it
/// was synced (`sync --repair` rebuilding the query store).
pub struct Unchecked;
impl ManifestCheck for Unchecked {}

/// Streams the manifest `reader` into `records` (a new `records.bin`),
/// spilling through files in `spill` (created, then removed).
pub fn write_records(reader: impl Read, records: &Path, spill: &Path) -> Result<Streamed> {
    let mut sink = RecordSpill::create(spill)?;
    parse(reader, &mut sink, &mut Unchecked)?;
    sink.finish(records)
}

/// Parses the manifest `reader` into `sink`, each record passing `check`
/// first. Nothing is assembled: the caller finishes the sink once every
/// other check has passed too.
pub fn parse(
    reader: impl Read,
    sink: &mut RecordSpill,
    check: &mut dyn ManifestCheck,
) -> Result<()> {
    let mut visitor = ManifestVisitor {
        sink: &mut *sink,
        check: &mut *check,
        head_fields: 0,
        head_checked: false,
    };
    json_stream::read_object(reader, "the signed manifest", &mut visitor)?;
    if !visitor.head_checked {
        check.head(&sink.head)?;
    }
    Ok(())
}

/// The records of a manifest on their way to `records.bin`: spilled to
/// group files, the advisories held, until [`RecordSpill::finish`].
pub struct RecordSpill {
    groups: Groups,
    advisories: Vec<AdvisoryRecord>,
    head: Streamed,
    dir: PathBuf,
}

impl RecordSpill {
    /// Spills into the new directory `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            groups: Groups::create(dir)?,
            advisories: Vec::new(),
            head: Streamed::default(),
            dir: dir.to_path_buf(),
        })
    }

    /// Assembles `records` from the spill, then removes the spill.
    pub fn finish(self, records: &Path) -> Result<Streamed> {
        let Self {
            groups,
            advisories,
            mut head,
            dir,
        } = self;
        let paths = groups.finish()?;
        head.advisories = advisories.len();
        let bits = shard::bits_for(head.modules + head.versioned);
        super::spill::assemble(&paths, &advisories, bits, records)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(head)
    }
}

/// The manifest, visited field by field: records are checked and go to
/// the spill as they parse, advisories are checked and kept, members go to
/// the check if it wants them, anything else is skipped.
struct ManifestVisitor<'a> {
    sink: &'a mut RecordSpill,
    check: &'a mut dyn ManifestCheck,
    /// How many of `formatVersion`, `serial` and `expires` were read.
    head_fields: u32,
    head_checked: bool,
}

impl ManifestVisitor<'_> {
    /// Checks the head before the first list, once all its fields are read.
    fn head_known(&mut self) -> Result<()> {
        if self.head_fields == 3 && !self.head_checked {
            self.head_checked = true;
            self.check.head(&self.sink.head)?;
        }
        Ok(())
    }
}

impl ObjectVisitor for ManifestVisitor<'_> {
    fn field(&mut self, key: &str) -> Result<Field> {
        Ok(match key {
            "formatVersion" | "serial" | "expires" | "created" => Field::Whole,
            "advisories" => {
                self.head_known()?;
                Field::Whole
            }
            "modules" | "versioned" | "rejected" => {
                self.head_known()?;
                Field::Elements
            }
            "members" if self.check.wants_members() => {
                self.head_known()?;
                Field::Elements
            }
            _ => Field::Skip,
        })
    }

    fn value(&mut self, key: &str, value: Value<'_>) -> Result<()> {
        let head = &mut self.sink.head;
        match key {
            "formatVersion" => head.format_version = value.parse()?,
            "serial" => head.serial = value.parse()?,
            "expires" => head.expires = value.parse()?,
            "created" => {
                head.created = value.parse()?;
                return Ok(());
            }
            "advisories" => {
                let advisories: Vec<AdvisoryRecord> = value.parse()?;
                for (i, a) in advisories.iter().enumerate() {
                    self.check.advisory(i, a)?;
                }
                self.sink.advisories = advisories;
                return Ok(());
            }
            _ => return Ok(()),
        }
        self.head_fields += 1;
        Ok(())
    }

    /// Each record is parsed from the text the manifest spells it with,
    /// checked, and spilled as it was spelled (not serialised again).
    fn element(
        &mut self,
        key: &str,
        index: usize,
        name: Option<&str>,
        value: Value<'_>,
    ) -> Result<()> {
        let groups = &mut self.sink.groups;
        match (key, name) {
            ("modules", None) => {
                let m: ModuleRecord = value.parse()?;
                self.check.module(index, &m)?;
                groups.module(&m, value.raw())?;
                self.sink.head.modules = index + 1;
            }
            ("versioned", None) => {
                let v: VersionedModule = value.parse()?;
                self.check.versioned(index, &v)?;
                groups.versioned(&v, value.raw())?;
                self.sink.head.versioned = index + 1;
            }
            ("rejected", None) => {
                let r: RejectedRecord = value.parse()?;
                self.check.rejected(index, &r)?;
                groups.rejected(&r, value.raw())?;
            }
            ("members", Some(path)) => self.check.member(path.to_string(), value.parse()?)?,
            _ => bail!("the signed manifest's {key:?} is not a list of records"),
        }
        Ok(())
    }
}
