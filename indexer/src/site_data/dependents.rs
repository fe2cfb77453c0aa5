//! Which modules depend on each module, for the module pages, without a
//! map of names: the modules' full names in one string, their positions
//! sorted by name, and the (dependency, dependent) pairs as ranks in that
//! order. A million modules take a few tens of megabytes; sorting and
//! matching them runs on all cores.

use anyhow::{Context, Result};
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
        // Stable: modules of one name keep their order (the first is the
        // name's rank; see `Dependents::rank`).
        let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
        by_name.par_sort_by(|&a, &b| names.get(a as usize).cmp(names.get(b as usize)));
        // Each position's rank, the first of its name's run: looked up
        // once a module, where a search by name costs twenty string compares.
        let mut ranks = vec![0u32; by_name.len()];
        let mut run_start = 0;
        for (rank, &p) in by_name.iter().enumerate() {
            if rank > 0 && names.get(by_name[rank - 1] as usize) != names.get(p as usize) {
                run_start = rank as u32;
            }
            ranks[p as usize] = run_start;
        }
        let mut out = Dependents {
            names,
            by_name,
            ranks,
            pairs: Vec::new(),
        };
        let mut pairs: Vec<(u32, u32)> = (named_by.par_iter().enumerate())
            .filter_map(|(k, &dependent)| {
                let target = out.rank(dependencies.get(k))?;
                Some((target, out.rank_of(dependent as usize)))
            })
            .collect();
        pairs.par_sort_unstable();
        pairs.dedup();
        out.pairs = pairs;
        out
    }
}

/// `user/module` → the modules that depend on it, sorted by name, each once.
pub struct Dependents {
    names: Strings,
    /// Module positions, sorted by full name.
    by_name: Vec<u32>,
    /// Position → the rank of its name (see `rank`).
    ranks: Vec<u32>,
    /// (rank of the name depended on, rank of the dependent), sorted.
    pairs: Vec<(u32, u32)>,
}

impl Dependents {
    /// The full names of the modules depending on the module at `position`.
    pub fn of(&self, position: usize) -> Vec<String> {
        let target = self.rank_of(position);
        let start = self.pairs.partition_point(|&(t, _)| t < target);
        self.pairs[start..]
            .iter()
            .take_while(|&&(t, _)| t == target)
            .map(|&(_, rank)| {
                let position = self.by_name[rank as usize] as usize;
                self.names.get(position).to_string()
            })
            .collect()
    }

    /// The rank of the first module named `name`, if any.
    fn rank(&self, name: &str) -> Option<u32> {
        let rank = self
            .by_name
            .partition_point(|&p| self.names.get(p as usize) < name);
        let found = self.by_name.get(rank)?;
        (self.names.get(*found as usize) == name).then_some(rank as u32)
    }

    /// The rank of the module at `position`'s name.
    fn rank_of(&self, position: usize) -> u32 {
        self.ranks[position]
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

    #[test]
    fn dependents_are_sorted_by_name_each_once_and_matched_exactly() {
        // Spill order (user, then name) is not name order: "a-b/x" < "a/x".
        let modules = [
            module("a", "x", &["z/z", "a-b/x", "a-b/x"]),
            module("a", "y", &["a/x", "A/X", "nobody/here"]),
            module("a-b", "x", &["a/x"]),
            module("z", "z", &["a/x", "a/y"]),
        ];
        let mut builder = DependentsBuilder::default();
        for m in &modules {
            builder
                .add(&m.user, &m.name, &m.current.dependencies)
                .unwrap();
        }
        let dependents = builder.finish();
        assert_eq!(dependents.of(0), ["a-b/x", "a/y", "z/z"]);
        assert_eq!(dependents.of(1), ["z/z"]);
        assert_eq!(dependents.of(2), ["a/x"]);
        assert_eq!(dependents.of(3), ["a/x"]);
    }
}
