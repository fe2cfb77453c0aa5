//! Test inputs for the page data and the sparse shards: a manifest of
//! synthetic records, and the staged manifest holding them in a spill.

use std::path::Path;

use mlld_schemas::{Manifest, ModuleRecord};

use crate::record_spill::RecordSpill;
use crate::staged_manifest::StagedManifest;

/// `manifest` with its records in a spill at `path`.
pub fn staged(manifest: &Manifest, path: &Path) -> StagedManifest {
    StagedManifest {
        format_version: manifest.format_version,
        serial: manifest.serial,
        created: manifest.created.clone(),
        expires: manifest.expires.clone(),
        modules: RecordSpill::from_records(path, &manifest.modules).unwrap(),
        advisories: manifest.advisories.clone(),
        versioned: manifest.versioned.clone(),
        members: {
            let mut members = crate::members::Members::default();
            members.extend(manifest.members.clone());
            members
        },
        rejected: manifest.rejected.clone(),
    }
}

/// An empty manifest (serial 1).
pub fn empty_manifest() -> Manifest {
    serde_json::from_value(serde_json::json!({
        "formatVersion": 1, "serial": 1, "created": "2024-01-01T00:00:00Z",
        "expires": "2024-01-15T00:00:00Z", "modules": [], "advisories": [], "members": {}
    }))
    .unwrap()
}

/// A module record with the given content digest and dependencies.
pub fn module(user: &str, name: &str, integrity: &str, deps: &[String]) -> ModuleRecord {
    serde_json::from_value(serde_json::json!({
        "user": user, "name": name, "gist": format!("g-{user}-{name}"), "description": "",
        "tags": [], "revision": "a".repeat(40), "file": "m.mld", "integrity": integrity,
        "size": 1, "files": [], "dependencies": deps
    }))
    .unwrap()
}
