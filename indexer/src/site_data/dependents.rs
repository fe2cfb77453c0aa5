//! Which modules depend on each module, for the web page, without a
//! map of owned names: the modules' full names in one string, a hash table
//! from each name to its first position, and the (dependency, dependent)
//! pairs as positions. A million modules take a few tens of megabytes.
//! Names are matched by hash, not by sorting a million names and
//! searching them (twenty string compares a lookup, each a cache miss:
//! seconds of the page data's critical path at a million modules); a
//! module's dependents are sorted by name when its bucket file is written
//! (`dependents_files`).

use anyhow::{Context, Result};
use hashbrown::HashMap;
use rayon::prelude::*;

/// Strings end to end in one buffer, found by their ends.
#[derive(Default)]
struct Strings {
    text: String,
    ends: Vec<usize>,
}

impl Strings {
    fn push(&mut self, parts: &[&str]) {
        for part in parts {
            self.text.push_str(part);
        }
        self.ends.push(self.text.len());
    }

    fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j]);
        &self.text[start..self.ends[i]]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// Fed every module in spill order, then [`DependentsBuilder::finish`].
#[derive(Default)]
pub struct DependentsBuilder {
    names: Strings,
    dependencies: Strings,
    /// For each dependency in `dependencies`, the position of the module naming it.
    named_by: Vec<u32>,
}

impl DependentsBuilder {
    /// Adds the module `user/name` at the next position, with its current
    /// revision's dependencies.
    pub fn add(&mut self, user: &str, name: &str, dependencies: &[String]) -> Result<()> {
        let position =
            u32::try_from(self.names.len()).context("more than 2^32 modules in the manifest")?;
        self.names.push(&[user, "/", name]);
        for dependency in dependencies {
            self.dependencies.push(&[dependency]);
            self.named_by.push(position);
        }
        Ok(())
    }

    pub fn finish(self) -> Dependents {
        let Self {
            names,
            dependencies,
            named_by,
        } = self;
        // Each position's name stands for the first module of that name:
        // modules of one name share their dependents.
        let mut first_of_name: HashMap<&str, u32> = HashMap::with_capacity(names.len());
        let firsts: Vec<u32> = (0..names.len() as u32)
            .map(|p| *first_of_name.entry(names.get(p as usize)).or_insert(p))
            .collect();
        let mut pairs: Vec<(u32, u32)> = (named_by.par_iter().enumerate())
            .filter_map(|(k, &dependent)| {
                let target = *first_of_name.get(dependencies.get(k))?;
                Some((target, firsts[dependent as usize]))
            })
            .collect();
        drop(first_of_name);
        pairs.par_sort_unstable();
        pairs.dedup();
        Dependents { names, pairs }
    }
}

/// `user/module` → the modules that depend on it, sorted by name, each once.
pub struct Dependents {
    names: Strings,
    /// (first position of the name depended on, of the dependent's), sorted.
    pairs: Vec<(u32, u32)>,
}

impl Dependents {
    /// The modules something depends on, each as the first position of its
    /// name, grouped by `bucket` of that name (`buckets` groups).
    pub fn targets_by_bucket(
        &self,
        buckets: usize,
        bucket: impl Fn(&str) -> usize,
    ) -> Vec<Vec<u32>> {
        let mut grouped = vec![Vec::new(); buckets];
        for same_target in self.pairs.chunk_by(|a, b| a.0 == b.0) {
            let target = same_target[0].0;
            grouped[bucket(self.names.get(target as usize))].push(target);
        }
        grouped
    }

    /// The full name of the module at `target` (a first position) and the
    /// names of the modules depending on it, sorted.
    pub fn named(&self, target: u32) -> (&str, Vec<&str>) {
        let start = self.pairs.partition_point(|&(t, _)| t < target);
        let mut names: Vec<&str> = self.pairs[start..]
            .iter()
            .take_while(|&&(t, _)| t == target)
            .map(|&(_, dependent)| self.names.get(dependent as usize))
            .collect();
        names.sort_unstable();
        (self.names.get(target as usize), names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::ModuleRecord;

    fn module(user: &str, name: &str, deps: &[&str]) -> ModuleRecord {
        serde_json::from_value(serde_json::json!({
            "user": user, "name": name, "gist": "g", "description": "", "tags": [],
            "revision": "r", "file": "m.mld", "size": 1, "integrity": "sha256:00", "files": [],
            "dependencies": deps
        }))
        .unwrap()
    }

    fn dependents_of(modules: &[ModuleRecord]) -> Dependents {
        let mut builder = DependentsBuilder::default();
        for m in modules {
            builder
                .add(&m.user, &m.name, &m.current.dependencies)
                .unwrap();
        }
        builder.finish()
    }

    #[test]
    fn dependents_are_sorted_by_name_each_once_and_matched_exactly() {
        // Spill order (user, then name) is not name order: "a-b/x" < "a/x".
        let modules = [
            module("a", "x", &["z/z", "a-b/x", "a-b/x"]),
            module("a", "y", &["a/x", "A/X", "nobody/here"]),
            module("a-b", "x", &["a/x"]),
            module("z", "z", &["a/x", "a/y"]),
        ];
        let dependents = dependents_of(&modules);
        assert_eq!(dependents.named(0), ("a/x", vec!["a-b/x", "a/y", "z/z"]));
        assert_eq!(dependents.named(1), ("a/y", vec!["z/z"]));
        assert_eq!(dependents.named(2), ("a-b/x", vec!["a/x"]));
        assert_eq!(dependents.named(3), ("z/z", vec!["a/x"]));
        // Every module depended on, once, in the bucket its name falls in.
        let by_first_letter = dependents.targets_by_bucket(2, |n| usize::from(n > "m"));
        assert_eq!(by_first_letter, [vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn modules_of_one_name_share_their_dependents() {
        let modules = [
            module("a", "x", &[]),
            module("a", "x", &[]),
            module("b", "y", &["a/x"]),
        ];
        let dependents = dependents_of(&modules);
        assert_eq!(dependents.targets_by_bucket(1, |_| 0), [vec![0]]);
        assert_eq!(dependents.named(0), ("a/x", vec!["b/y"]));
    }
}
