//! What the search parts are made from, so that a build whose listing
//! rows search alike keeps the previous build's parts.
//!
//! A part holds terms of the rows' user, name, description and tags with
//! their row positions, nothing else: a night of changed gists changes none
//! of them (descriptions and tags are the registry's), yet at a million
//! modules the parts took a fifth of the page-data stage's CPU, much of it
//! on one thread. The inputs, in listing order, are hashed as the listing
//! is written; when the digest is the previous build's and its part files
//! are still in the site as they were written, the new page names them
//! again. Any edit to a name, description or tag, an added or removed
//! module, or a new [`SEARCH_FORMAT`] builds them all again.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bump when the page comes to read the parts otherwise (`site/search.js`).
/// How the indexer finds terms and writes parts needs no bump: every digest
/// also covers the parts of a few fixed rows ([`sample_parts`]).
const SEARCH_FORMAT: u32 = 1;

/// The search parts one build made, and what they were made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPartsKey {
    /// SHA-256 (hex) over [`SEARCH_FORMAT`] and every row's inputs in order.
    pub inputs: String,
    /// The parts' site-relative files, in part order.
    pub files: Vec<String>,
}

/// The running digest of the rows' search inputs.
pub(super) struct SearchInputs(Sha256);

impl SearchInputs {
    pub(super) fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(SEARCH_FORMAT.to_le_bytes());
        for body in sample_parts() {
            hasher.update(body);
            hasher.update(b"\n");
        }
        Self(hasher)
    }

    /// Adds the next row's inputs, as [`row_input`] encodes them.
    pub(super) fn add(&mut self, encoded: &[u8]) {
        self.0.update(encoded);
    }

    pub(super) fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The parts of a few fixed rows, which every digest covers: a change to
/// how terms are found or parts written (`mlld_schemas::search`,
/// `search_parts.rs`) then keeps no previous build's parts, whether or not
/// anyone remembered [`SEARCH_FORMAT`]. (Microseconds a build.)
fn sample_parts() -> Vec<String> {
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let rows = [
        (
            "alice",
            "json-utils",
            "Parse JSON fast: élan & it's",
            tags(&["JSON", "data-tools"]),
        ),
        ("@Bob", "yaml", "to json", tags(&["json"])),
        (
            "carol",
            "LLM_cache2",
            "Caches prompts; 😀 ünïcode",
            tags(&[]),
        ),
    ];
    super::search_parts::parts(rows.iter().map(|(u, n, d, t)| (*u, *n, *d, t.as_slice())))
}

/// One row's inputs, unambiguously: a JSON array and a newline.
pub(super) fn row_input(user: &str, name: &str, description: &str, tags: &[String]) -> Vec<u8> {
    let mut encoded =
        serde_json::to_vec(&(user, name, description, tags)).expect("strings serialise");
    encoded.push(b'\n');
    encoded
}

/// Whether `previous`'s part files are all in `site` as they were
/// written: regular files (not links, in a real `data` folder) named
/// `data/search-<digest>.js` whose bytes hash to that digest. A part
/// removed or changed since means building them again.
pub(super) fn parts_intact(site: &Path, previous: &SearchPartsKey) -> bool {
    use rayon::prelude::*;
    let data = site.join("data");
    let real = |path: &Path, dir: bool| {
        std::fs::symlink_metadata(path).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
    };
    real(&data, true)
        && previous.files.par_iter().all(|file| {
            let Some(name) = file.strip_prefix("data/") else {
                return false;
            };
            let Some(digest) = (name.strip_prefix("search-"))
                .and_then(|rest| rest.strip_suffix(".js"))
                .filter(|d| d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            else {
                return false;
            };
            real(&data.join(name), false)
                && mlld_fsutil::read_regular_in_dir(site, &data, name, MAX_PART_BYTES)
                    .is_ok_and(|bytes| mlld_schemas::sha256_hex(&bytes).starts_with(digest))
        })
}

/// The most a part may hold to be kept (at a million rows they are some
/// 300 KB each).
const MAX_PART_BYTES: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_input_cannot_be_read_as_another() {
        let t = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let inputs = [
            row_input("ann", "tool", "a b", &t(&[])),
            row_input("ann", "tool", "a", &t(&["b"])),
            row_input("ann", "tool\",\"a", "", &t(&[])),
            row_input("ann", "tool", "a\nb", &t(&[])),
            row_input("ann", "toola", "", &t(&[])),
        ];
        for (i, a) in inputs.iter().enumerate() {
            for b in &inputs[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Rows in sequence cannot run into each other either.
        let two = |a: Vec<u8>, b: Vec<u8>| [a, b].concat();
        assert_ne!(
            two(row_input("a", "b", "", &[]), row_input("c", "d", "", &[])),
            two(row_input("a", "b", "c", &[]), row_input("", "d", "", &[]))
        );
    }

    #[test]
    fn parts_are_kept_only_whole_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        let body = b"mlldRegistry.searchPart(0,JSON.parse('{}'));\n";
        let digest = &mlld_schemas::sha256_hex(body)[..32];
        let file = format!("data/search-{digest}.js");
        std::fs::create_dir_all(site.join("data")).unwrap();
        std::fs::write(site.join(&file), body).unwrap();
        let key = |files: Vec<String>| SearchPartsKey {
            inputs: "x".into(),
            files,
        };
        assert!(parts_intact(&site, &key(vec![file.clone()])));
        // Not a part's name, outside the site's `data`, or another digest.
        std::fs::write(dir.path().join(format!("search-{digest}.js")), body).unwrap();
        let z = "z".repeat(32);
        let other = format!("data/search-{}.js", "0".repeat(32));
        std::fs::write(site.join(&other), body).unwrap();
        for bad in [
            format!("data/search-{z}.js"),
            format!("data/../../search-{digest}.js"),
            format!("../search-{digest}.js"),
            format!("data/listing-{digest}.js"),
            other,
        ] {
            assert!(!parts_intact(&site, &key(vec![bad.clone()])), "{bad}");
        }
        // Changed, missing, or a link in its place.
        std::fs::write(site.join(&file), b"other").unwrap();
        assert!(!parts_intact(&site, &key(vec![file.clone()])));
        std::fs::remove_file(site.join(&file)).unwrap();
        assert!(!parts_intact(&site, &key(vec![file.clone()])));
        std::fs::write(site.join("elsewhere"), body).unwrap();
        std::os::unix::fs::symlink(site.join("elsewhere"), site.join(&file)).unwrap();
        assert!(!parts_intact(&site, &key(vec![file.clone()])));
        // Whole again, but in a linked folder.
        std::fs::remove_file(site.join(&file)).unwrap();
        std::fs::write(site.join(&file), body).unwrap();
        assert!(parts_intact(&site, &key(vec![file.clone()])));
        std::fs::rename(site.join("data"), site.join("data-real")).unwrap();
        std::os::unix::fs::symlink(site.join("data-real"), site.join("data")).unwrap();
        assert!(!parts_intact(&site, &key(vec![file])));
    }
}
