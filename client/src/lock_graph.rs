//! The lock as a graph: each entry's dependencies among the other entries,
//! read from the snapshot's record of the locked revision or version. What
//! the project's roots (source imports, `mlld-config.json`) reach stays;
//! `remove` and `install` drop the rest, with its cache entries; `audit`
//! shows the path from a root to each affected entry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{Context as _, Result};
use mlld_schemas::import_ref::RefForm;
use mlld_schemas::lock::parse_resolved;
use mlld_schemas::{LockFile, ModuleRef};

use crate::project::Project;
use crate::resolve::{self, Lookup};
use crate::scan::{Found, Problem};
use crate::versioned::{self, Target, VersionedIndex};
use crate::workflow::{Request, is_registry_import};
use crate::{mlld_config, scan, versioned_cache};

/// Lock key → the lock keys it depends on.
pub struct LockGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl LockGraph {
    pub fn new(lock: &LockFile, lookup: &Lookup<'_>, index: &VersionedIndex<'_>) -> Self {
        let mut edges = BTreeMap::new();
        for (key, entry) in &lock.imports {
            if !is_registry_import(key) {
                continue;
            }
            let deps = ModuleRef::parse(key)
                .ok()
                .and_then(|r| lookup.get(&r.user, &r.module).ok().flatten())
                .and_then(|m| resolve::locked_revision(m, &entry.gist_revision))
                .map(|rev| rev.dependencies.clone())
                .unwrap_or_default();
            let targets = deps
                .iter()
                .filter_map(|d| ModuleRef::parse(d).ok())
                .filter_map(|reference| {
                    let form = RefForm::MlldUrl;
                    key_of(lock, lookup, index, &Request { reference, form })
                })
                .collect();
            edges.insert(key.clone(), targets);
        }
        for (key, entry) in &lock.modules {
            let deps = ModuleRef::parse(key)
                .ok()
                .and_then(|r| index.get(&r.user, &r.module).ok().flatten())
                .and_then(|m| m.version(&entry.version))
                .map(|v| v.dependencies.clone())
                .unwrap_or_default();
            let targets = deps
                .iter()
                .filter_map(|d| Request::parse(d).ok())
                .filter_map(|req| key_of(lock, lookup, index, &req))
                .collect();
            edges.insert(key.clone(), targets);
        }
        Self { edges }
    }

    /// Every key reachable from `roots` (the roots included).
    pub fn reachable(&self, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().collect();
        while let Some(key) = stack.pop() {
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some(deps) = self.edges.get(&key) {
                stack.extend(deps.iter().filter(|d| !seen.contains(*d)).cloned());
            }
        }
        seen
    }

    /// The entries that depend on `key` directly.
    pub fn dependents(&self, key: &str) -> Vec<String> {
        self.edges
            .iter()
            .filter(|(k, deps)| k.as_str() != key && deps.contains(key))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The shortest path of lock keys from a root to `key` (just `key` when
    /// it is a root, or only reachable through a cycle).
    pub fn path_to(&self, key: &str) -> Vec<String> {
        let needed: BTreeSet<&str> = self.edges.values().flatten().map(String::as_str).collect();
        let roots = self.edges.keys().filter(|k| !needed.contains(k.as_str()));
        let mut parent: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut queue = VecDeque::new();
        for root in roots {
            parent.insert(root, None);
            queue.push_back(root.as_str());
        }
        while let Some(at) = queue.pop_front() {
            if at == key {
                break;
            }
            for next in self.edges.get(at).into_iter().flatten() {
                if !parent.contains_key(next.as_str()) {
                    parent.insert(next, Some(at));
                    queue.push_back(next);
                }
            }
        }
        let mut path = vec![key.to_string()];
        let mut at = key;
        while let Some(Some(up)) = parent.get(at) {
            path.push(up.to_string());
            at = up;
        }
        path.reverse();
        path
    }

    /// Every key of the lock's registry entries.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.edges.keys()
    }
}

/// A lock key as people write module names: `user/module` for a gist
/// module, `@author/name` for a versioned one.
pub fn display_name(key: &str) -> &str {
    key.strip_prefix("mlld://").unwrap_or(key)
}

/// `a → b → c`.
pub fn render_path(path: &[String]) -> String {
    path.iter()
        .map(|k| display_name(k))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The lock key a reference names, when the lock holds it: the same rule
/// as locking (`versioned::route`), names compared case-insensitively.
pub fn key_of(
    lock: &LockFile,
    lookup: &Lookup<'_>,
    index: &VersionedIndex<'_>,
    request: &Request,
) -> Option<String> {
    let r = &request.reference;
    let find = |mut keys: Box<dyn Iterator<Item = &String> + '_>, wanted: &str| {
        keys.find(|k| k.eq_ignore_ascii_case(wanted)).cloned()
    };
    let at = r.at_name();
    let gist = r.import_path();
    match versioned::route(index, lookup, r, request.form) {
        Ok(Target::Versioned(_)) => find(Box::new(lock.modules.keys()), &at),
        // Not in the snapshot as a versioned module: a versioned entry
        // locked earlier still answers an `@` reference without a revision pin.
        _ if request.form == RefForm::At && r.revision_prefix().is_none() => {
            find(Box::new(lock.modules.keys()), &at)
                .or_else(|| find(Box::new(lock.imports.keys()), &gist))
        }
        _ => find(Box::new(lock.imports.keys()), &gist),
    }
}

/// What the project imports: every registry import of its mlld files and
/// the dependencies of `mlld-config.json`, each where it was found first,
/// and the problems met on the way.
pub fn project_roots(project: &Project, prefixes: &[String]) -> Result<(Vec<Found>, Vec<Problem>)> {
    let (mut found, mut problems) = scan::project_imports(project.root(), prefixes)?;
    let (declared, config_problems) = mlld_config::dependencies(project.root());
    found.extend(declared);
    problems.extend(config_problems);
    Ok((found, problems))
}

/// One removed lock entry, for the report.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// The lock key (`mlld://user/module` or `@author/name`).
    pub import: String,
    /// The revision (Phase-1) or version it was locked at.
    pub at: String,
    /// The project cache entry deleted with it, relative to the project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
}

/// Drops `keys` from `lock` (the caller writes it), returning what each was.
pub fn drop_entries(lock: &mut LockFile, keys: &BTreeSet<String>) -> Vec<(Removed, Entry)> {
    let mut out = Vec::new();
    for key in keys {
        if let Some(e) = lock.imports.remove(key) {
            let at = e.gist_revision.clone();
            out.push((removed(key, at), Entry::Gist(e)));
        } else if let Some(e) = lock.modules.remove(key) {
            let at = e.version.clone();
            out.push((removed(key, at), Entry::Versioned(e)));
        }
    }
    out
}

fn removed(key: &str, at: String) -> Removed {
    Removed {
        import: key.to_string(),
        at,
        cache: None,
    }
}

/// A dropped lock entry of either map.
pub enum Entry {
    Gist(mlld_schemas::LockEntry),
    Versioned(mlld_schemas::lock::VersionedLockEntry),
}

/// Deletes the project cache entry of a dropped lock entry (after the lock
/// that no longer names it was written): renamed aside first, so a killed
/// run leaves it whole or gone, then removed, with directories left empty.
/// Returns the entry's path relative to the project when one was deleted.
pub fn delete_cache(project: &Project, key: &str, entry: &Entry) -> Result<Option<String>> {
    let Some(dir) = cache_dir_of(project, key, entry) else {
        return Ok(None);
    };
    // Nothing below the project is followed through a link.
    project
        .fs()
        .check(&dir)
        .with_context(|| format!("removing {}", dir.display()))?;
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(None);
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let aside = dir.with_file_name(format!(".{name}.removing"));
    let _ = std::fs::remove_dir_all(&aside);
    std::fs::rename(&dir, &aside).with_context(|| format!("removing {}", dir.display()))?;
    std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    let cache_root = project.root().join(".mlld/cache");
    let mut parent = dir.parent();
    while let Some(p) = parent.filter(|p| p.starts_with(&cache_root) && *p != cache_root) {
        // Only an empty directory goes; the first one that is not stops it.
        if std::fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
    let rel = dir.strip_prefix(project.root()).unwrap_or(&dir);
    Ok(Some(rel.display().to_string()))
}

/// The project cache entry of a lock entry; `None` when the entry names
/// no valid place (nothing to delete).
fn cache_dir_of(project: &Project, key: &str, entry: &Entry) -> Option<std::path::PathBuf> {
    match entry {
        Entry::Gist(e) => {
            let (user, gist) = parse_resolved(&e.resolved)?;
            mlld_schemas::names::check_revision(&e.gist_revision).ok()?;
            Some(project.cache_dir(user, gist, &e.gist_revision))
        }
        Entry::Versioned(e) => versioned_cache::entry_dir(project, key, &e.version).ok(),
    }
}

/// Before the lock that drops them is written: every dropped entry's cache
/// can be removed without following a link, so that a refusal leaves the
/// lock, the cache and mlld's files as they were, not half changed.
pub fn check_removable(project: &Project, dropped: &[(Removed, Entry)]) -> Result<()> {
    for (removed, entry) in dropped {
        if let Some(dir) = cache_dir_of(project, &removed.import, entry) {
            let refused = || format!("removing {} (nothing was changed)", removed.import);
            project.fs().check(&dir).with_context(refused)?;
        }
    }
    Ok(())
}

/// After the lock that no longer names them is written: deletes the cache
/// entries of `dropped` and their entries in mlld's `mlld-lock.json`.
pub fn clean_dropped(
    ctx: &crate::context::Context,
    lock: &LockFile,
    dropped: Vec<(Removed, Entry)>,
) -> Result<Vec<Removed>> {
    let mut forget = Vec::new();
    let mut out = Vec::new();
    for (mut removed, entry) in dropped {
        removed.cache = delete_cache(&ctx.project, &removed.import, &entry)?;
        let resolved = match &entry {
            Entry::Gist(e) => e.resolved.clone(),
            Entry::Versioned(e) => e.resolved.clone(),
        };
        forget.push((removed.import.clone(), resolved));
        out.push(removed);
    }
    crate::mlld_home::forget(ctx, &forget)?;
    let keys: Vec<String> = out.iter().map(|r| r.import.clone()).collect();
    crate::imported_state::forget(&ctx.project, &keys)?;
    // mlld keys both layouts `@user/module`: an entry of the other layout
    // under the same name takes the place back.
    let names: BTreeSet<String> = out
        .iter()
        .filter_map(|r| ModuleRef::parse(&r.import).ok())
        .map(|r| r.at_name().to_ascii_lowercase())
        .collect();
    let same_name: Vec<String> = lock
        .imports
        .keys()
        .chain(lock.modules.keys())
        .filter(|k| {
            ModuleRef::parse(k).is_ok_and(|r| names.contains(&r.at_name().to_ascii_lowercase()))
        })
        .cloned()
        .collect();
    crate::mlld_home::sync(ctx, lock, &same_name)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::LockGraph;

    fn graph(edges: &[(&str, &[&str])]) -> LockGraph {
        LockGraph {
            edges: edges
                .iter()
                .map(|(k, d)| (k.to_string(), d.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn the_shortest_path_from_a_root() {
        let g = graph(&[
            ("mlld://a/top", &["mlld://a/mid", "mlld://c/leaf"]),
            ("mlld://a/mid", &["mlld://b/deep"]),
            ("mlld://b/deep", &["mlld://c/leaf"]),
            ("mlld://c/leaf", &[]),
        ]);
        assert_eq!(
            super::render_path(&g.path_to("mlld://b/deep")),
            "a/top → a/mid → b/deep"
        );
        assert_eq!(g.path_to("mlld://c/leaf").len(), 2);
        assert_eq!(g.path_to("mlld://a/top"), vec!["mlld://a/top"]);
    }

    #[test]
    fn a_cycle_without_root_is_just_the_module() {
        let g = graph(&[
            ("mlld://a/x", &["mlld://a/y"]),
            ("mlld://a/y", &["mlld://a/x"]),
        ]);
        assert_eq!(g.path_to("mlld://a/y"), vec!["mlld://a/y"]);
    }
}
