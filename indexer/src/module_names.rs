//! The accepted gist modules' names, compactly, for the lookups the build
//! makes by name (linking imports, versioned modules' dependencies and
//! overlaps) without holding their records.

use std::hash::{Hash, Hasher};

/// `user/name` of every accepted gist module, in manifest order, and a
/// sorted table from a hash of the lookup key (user in lower case, as
/// GitHub logins compare, and the exact module name) to a position.
#[derive(Debug, Default)]
pub struct ModuleNames {
    full: Vec<Box<str>>,
    by_key: Vec<(u64, u32)>,
}

fn key_hash(user: &str, name: &str) -> u64 {
    // SipHash with fixed keys: the same in every run.
    let mut h = std::hash::DefaultHasher::new();
    user.to_ascii_lowercase().hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

impl ModuleNames {
    /// From `user/name` of every module, in manifest order.
    pub fn new(full: Vec<Box<str>>) -> Self {
        let mut by_key: Vec<(u64, u32)> = full
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (user, name) = f.split_once('/').unwrap_or((f, ""));
                (key_hash(user, name), i as u32)
            })
            .collect();
        by_key.sort_unstable();
        Self { full, by_key }
    }

    /// `user/name` of the module at `position`.
    pub fn full_name(&self, position: usize) -> &str {
        &self.full[position]
    }

    /// The position of the module `user/name`, the user matched in any case.
    pub fn find(&self, user: &str, name: &str) -> Option<usize> {
        let hash = key_hash(user, name);
        let start = self.by_key.partition_point(|&(h, _)| h < hash);
        self.by_key[start..]
            .iter()
            .take_while(|&&(h, _)| h == hash)
            .map(|&(_, i)| i as usize)
            .find(|&i| {
                let (u, n) = self.full[i].split_once('/').unwrap_or((&self.full[i], ""));
                u.eq_ignore_ascii_case(user) && n == name
            })
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
    }
}
