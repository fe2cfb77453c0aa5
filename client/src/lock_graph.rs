//! The lock's dependency graph, read from the snapshot's records of the
//! locked revisions and versions: which locked module brings in which, and
//! the path from a root (an entry nothing else locked needs) to each entry,
//! so `audit` can say why an affected module is in the project.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mlld_schemas::{LockFile, ModuleRef};

use crate::resolve::{self, Lookup};
use crate::versioned::VersionedIndex;
use crate::workflow::is_registry_import;

/// Lock keys and, for each, the lock keys its locked content depends on.
pub struct LockGraph {
    edges: BTreeMap<String, Vec<String>>,
}

impl LockGraph {
    /// The graph of `lock`'s registry entries, as far as the snapshot knows
    /// their dependencies (an entry the snapshot lacks has none).
    pub fn build(lock: &LockFile, lookup: &Lookup<'_>, index: &VersionedIndex<'_>) -> Self {
        let mut edges = BTreeMap::new();
        for (key, entry) in lock.imports.iter().filter(|(k, _)| is_registry_import(k)) {
            let deps = ModuleRef::parse(key)
                .ok()
                .and_then(|r| lookup.get(&r.user, &r.module))
                .and_then(|m| resolve::locked_revision(m, &entry.gist_revision))
                .map(|rev| rev.dependencies.clone())
                .unwrap_or_default();
            let targets = deps.iter().filter_map(|d| key_of(lock, d, false)).collect();
            edges.insert(key.clone(), targets);
        }
        for (key, entry) in &lock.modules {
            let deps = ModuleRef::parse(key)
                .ok()
                .and_then(|r| index.get(&r.user, &r.module))
                .and_then(|m| m.version(&entry.version))
                .map(|v| v.dependencies.clone())
                .unwrap_or_default();
            let targets = deps.iter().filter_map(|d| key_of(lock, d, true)).collect();
            edges.insert(key.clone(), targets);
        }
        Self { edges }
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

/// The lock key a dependency (`user/module`, `@author/name[@range]`) names:
/// a versioned module's dependencies prefer the versioned entry, a gist
/// module's the gist entry (the routing rule of `versioned`).
fn key_of(lock: &LockFile, dependency: &str, from_versioned: bool) -> Option<String> {
    let r = ModuleRef::parse(dependency).ok()?;
    let gist = format!("mlld://{}/{}", r.user, r.module);
    let versioned = format!("@{}/{}", r.user, r.module);
    let in_gists = || {
        let mut keys = lock.imports.keys();
        keys.find(|k| k.eq_ignore_ascii_case(&gist)).cloned()
    };
    let in_versioned = || {
        let mut keys = lock.modules.keys();
        keys.find(|k| k.eq_ignore_ascii_case(&versioned)).cloned()
    };
    if from_versioned {
        in_versioned().or_else(in_gists)
    } else {
        in_gists().or_else(in_versioned)
    }
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
