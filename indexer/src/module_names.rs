//! The accepted gist modules' names, compactly, for the lookups the build
//! makes by name (linking imports, versioned modules' dependencies and
//! overlaps) without holding their records.

use std::hash::{BuildHasher, Hasher};

use hashbrown::{DefaultHashBuilder, HashTable, hash_table::Entry};
use rayon::prelude::*;

/// `user/name` of every accepted gist module, in manifest order, and a hash
/// index from the lookup key (user in lower case, as GitHub logins compare,
/// and the exact module name) to a position: a lookup, made for every gist
/// of every build, costs a cache miss or two instead of a binary search's
/// twenty.
#[derive(Debug, Default)]
pub struct ModuleNames {
    full: Vec<Box<str>>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

fn split(full: &str) -> (&str, &str) {
    full.split_once('/').unwrap_or((full, ""))
}

impl ModuleNames {
    /// From `user/name` of every module, in manifest order. Of two names
    /// equal but for the user's case, the first is found.
    pub fn new(full: Vec<Box<str>>) -> Self {
        let mut names = Self {
            full,
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        };
        // Hashed on all cores; the table is filled in order, on one.
        let hashes: Vec<u64> = (names.full.par_iter())
            .map(|f| {
                let (user, name) = split(f);
                names.key_hash(user, name)
            })
            .collect();
        let mut index = HashTable::with_capacity(names.full.len());
        for (i, (f, &hash)) in names.full.iter().zip(&hashes).enumerate() {
            let (user, name) = split(f);
            let rehash = |&j: &u32| {
                let (u, n) = split(&names.full[j as usize]);
                names.key_hash(u, n)
            };
            if let Entry::Vacant(slot) = index.entry(hash, |&j| names.is(j, user, name), rehash) {
                slot.insert(i as u32);
            }
        }
        names.index = index;
        names
    }

    fn key_hash(&self, user: &str, name: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        // The user in lower case, without allocating it.
        for chunk in user.as_bytes().chunks(32) {
            let mut lower = [0u8; 32];
            lower[..chunk.len()].copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            h.write(&lower[..chunk.len()]);
        }
        h.write_u8(b'/');
        h.write(name.as_bytes());
        h.finish()
    }

    fn is(&self, position: u32, user: &str, name: &str) -> bool {
        let (u, n) = split(&self.full[position as usize]);
        u.eq_ignore_ascii_case(user) && n == name
    }

    /// `user/name` of the module at `position`.
    pub fn full_name(&self, position: usize) -> &str {
        &self.full[position]
    }

    /// The position of the module `user/name`, the user matched in any case.
    pub fn find(&self, user: &str, name: &str) -> Option<usize> {
        let hash = self.key_hash(user, name);
        (self.index)
            .find(hash, |&i| self.is(i, user, name))
            .map(|&i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_with_the_user_in_any_case_and_the_name_exactly() {
        let names = ModuleNames::new(
            ["Alice/json", "alice-b/json", "bob/Tools"]
                .map(Box::from)
                .to_vec(),
        );
        assert_eq!(names.find("alice", "json"), Some(0));
        assert_eq!(names.find("ALICE", "json"), Some(0));
        assert_eq!(names.find("alice", "JSON"), None);
        assert_eq!(names.find("alice-b", "json"), Some(1));
        assert_eq!(names.find("bob", "Tools"), Some(2));
        assert_eq!(names.find("bob", "tools"), None);
        assert_eq!(names.find("carol", "json"), None);
        assert_eq!(names.full_name(2), "bob/Tools");
        // Of two names equal but for the user's case, the first is found.
        let names = ModuleNames::new(["Bob/x", "bob/x"].map(Box::from).to_vec());
        assert_eq!(names.find("BOB", "x"), Some(0));
    }
}
