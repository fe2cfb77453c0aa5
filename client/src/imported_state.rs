//! `.mlld/imported.json`: the lock keys the project's imports (its files and
//! `mlld-config.json`, with their dependencies) reached at the last
//! `install`. An entry `install` finds no import reaching any more is pruned
//! only when it is listed here: the imports that held it were deleted. An
//! entry locked with `resolve` and never imported stays, as does every
//! entry of a lock checked out without this file (the registry guide's
//! workflow: `resolve`, then `install` from the lock).

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};

use crate::project::Project;

const STATE_FILE: &str = ".mlld/imported.json";

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    imported: BTreeSet<String>,
}

/// The keys recorded by the last install (none when the file is absent or
/// unreadable: then nothing is pruned, which is the safe side).
pub fn read(project: &Project) -> BTreeSet<String> {
    let path = project.root().join(STATE_FILE);
    crate::input::read_text(&path)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<State>(&t).ok())
        .map(|s| s.imported)
        .unwrap_or_default()
}

/// Records `imported`, atomically, when it differs from what is recorded.
/// Call under [`Project::exclusive`].
pub fn write(project: &Project, imported: &BTreeSet<String>) -> Result<()> {
    if *imported == read(project) && project.root().join(STATE_FILE).exists() {
        return Ok(());
    }
    let path = project.root().join(STATE_FILE);
    let mut bytes = serde_json::to_vec_pretty(&State {
        imported: imported.clone(),
    })?;
    bytes.push(b'\n');
    project
        .fs()
        .write_atomic(&path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Forgets keys that left the lock (`remove`, pruning).
pub fn forget(project: &Project, keys: &[String]) -> Result<()> {
    let mut imported = read(project);
    let before = imported.len();
    for k in keys {
        imported.remove(k);
    }
    if imported.len() == before {
        return Ok(());
    }
    write(project, &imported)
}
