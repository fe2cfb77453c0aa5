//! Wire formats of the mlld registry: the types, their validators, and the
//! JSON Schemas generated from them.
//!
//! This crate does no I/O: callers read files and hand over the text, and
//! get values plus [`Diagnostic`]s that name the file, JSON path and
//! line:column of every problem.

pub mod advisory;
pub mod advisory_scope;
pub mod content_hash;
pub mod diag;
pub mod document;
pub mod import_ref;
pub mod import_scan;
pub mod locate;
pub mod lock;
pub mod mlld_files;
pub mod names;
pub mod output;
pub mod registry;
#[cfg(feature = "search")]
pub mod search;
pub mod shard;
pub mod snapshot;
pub mod snapshot_versioned;
pub mod sparse;
mod strict_value;
pub mod terminal;
pub mod version_spec;
pub mod versioned;

pub use advisory::{Advisory, AdvisoryFile, Severity, check_advisories};
pub use diag::{Diagnostic, JsonPath, Level};
pub use document::Checked;
pub use import_ref::{ImportSite, ModuleRef, SourceMode, scan_imports};
pub use lock::{CacheMetadata, LockEntry, LockFile, check_lock};
pub use registry::{ModuleEntry, UserRegistry, check_registry};
pub use snapshot::RejectedRecord;
pub use snapshot::{
    AdvisoryIndex, AdvisoryRecord, ChunkDelta, Digest, GistFile, Latest, Manifest, Member,
    ModuleRecord, RevisionRecord, SiteFile,
};
pub use snapshot_versioned::{SourceRecord, VersionFileRecord, VersionRecord, VersionedModule};
pub use version_spec::VersionSpec;

/// The JSON Schemas published for the formats mlld shares with the registry:
/// file name under `schemas/json/` and its pretty-printed text.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    fn render<T: schemars::JsonSchema>() -> String {
        let mut text =
            serde_json::to_string_pretty(&schemars::schema_for!(T)).expect("schemas serialize");
        text.push('\n');
        text
    }
    vec![
        ("registry.schema.json", render::<UserRegistry>()),
        ("advisories.schema.json", render::<AdvisoryFile>()),
        ("lock.schema.json", render::<LockFile>()),
        ("version.schema.json", render::<versioned::VersionFile>()),
        (
            "module-metadata.schema.json",
            render::<versioned::ModuleMetadata>(),
        ),
        ("cache-metadata.schema.json", render::<CacheMetadata>()),
        ("manifest.schema.json", render::<Manifest>()),
        ("latest.schema.json", render::<Latest>()),
        ("sparse-root.schema.json", render::<sparse::SparseRoot>()),
        (
            "output.schema.json",
            render::<output::Envelope<serde_json::Value>>(),
        ),
        (
            "output-audit.schema.json",
            render::<output::Envelope<output::AuditReport>>(),
        ),
    ]
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256_bytes(bytes))
}

/// The SHA-256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// `sha256:<hex>`, the integrity string of the lock file.
pub fn integrity_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}
