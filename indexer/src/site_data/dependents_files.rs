//! Who depends on each gist module, for the web page: one file a bucket of
//! names, `data/dependents/<bits>/<bucket>.js`, instead of a field of every
//! module page. A module's dependents change whenever a module naming it
//! changes its imports: as a page field, a nightly build at a million
//! modules rewrote some 40,000 unchanged pages a night (each read back from
//! the previous site's blobs, rendered, written and renamed into the site)
//! for 10,000 changed modules. As buckets it rewrites at most `2^bits`
//! small files, and a page changes only with its own module.
//!
//! The page (`loadDependents` in `site/app.js`, `mlldPage.bucketOf` in
//! `site/page.js`) finds a module's bucket by the same hash of its name:
//! FNV-1a (32 bits) of the name's UTF-8 bytes, its low `bits` bits.
//! `data/site.js` names `bits` as `dependentsBits`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use rayon::prelude::*;

use super::dependents::Dependents;
use super::{fnv1a, json_text_call, page_key, write_file};
use crate::text_map::TextMap;

/// About this many modules a bucket: a file of some 7 KB at 100,000
/// modules for the page to load beside a module's page data (at 256 a
/// bucket, 13 KB took a module link to 96.5 KB of its 100 KB budget), and
/// at a million modules 8,192 files (publishing pays a rename per file).
const MODULES_PER_BUCKET: usize = 128;
const MAX_BITS: u32 = 16;
/// Page keys of bucket files start with a character no module name holds
/// (user names are GitHub logins, versioned ones start with `@`).
const KEY_PREFIX: &str = "#dependents/";

/// The bucket count (as bits) for a registry of `modules` gist modules.
pub fn bits_for(modules: usize) -> u32 {
    let buckets = modules.div_ceil(MODULES_PER_BUCKET).max(1);
    buckets.next_power_of_two().trailing_zeros().min(MAX_BITS)
}

/// The bucket of the module named `full` (`user/module`) among `2^bits`.
pub fn bucket_of(full: &str, bits: u32) -> u32 {
    fnv1a(full.bytes().map(u32::from)) & ((1u32 << bits) - 1)
}

/// The site path of a bucket file.
fn bucket_path(bits: u32, bucket: u32) -> String {
    format!("data/dependents/{bits}/{bucket}.js")
}

/// The site file a page key (as [`super::write`] returns them) stands for,
/// when the key is a bucket's; module pages' keys are their module names.
pub fn bucket_file(key: &str) -> Option<String> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (bits, bucket) = rest.split_once('/')?;
    Some(bucket_path(bits.parse().ok()?, bucket.parse().ok()?))
}

/// Writes every bucket whose file the previous build did not write the
/// same (by its key in `previous_keys`) under `dest`; returns every
/// bucket's `(key name, key)`. Every bucket has a file, an empty one `{}`:
/// the page tells "none" from "not loaded".
pub fn write_buckets(
    dest: &Path,
    dependents: &Dependents,
    bits: u32,
    previous_keys: &TextMap,
) -> Result<Vec<(String, String)>> {
    let buckets = 1usize << bits;
    let grouped = dependents.targets_by_bucket(buckets, |name| bucket_of(name, bits) as usize);
    (grouped.par_iter().enumerate())
        .map(|(bucket, targets)| {
            let bucket = bucket as u32;
            let named: BTreeMap<&str, Vec<&str>> =
                targets.iter().map(|&t| dependents.named(t)).collect();
            let body = json_text_call(
                "dependents",
                bucket as usize,
                &serde_json::to_string(&named)?,
            );
            let key_name = format!("{KEY_PREFIX}{bits}/{bucket}");
            let key = page_key(&body)?;
            if previous_keys.get(&key_name) != Some(key.as_str()) {
                write_file(dest, &bucket_path(bits, bucket), body.as_bytes())?;
            }
            Ok((key_name, key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site_data::dependents::DependentsBuilder;

    #[test]
    fn buckets_are_fnv1a_of_the_name_in_low_bits() {
        // FNV-1a's published vectors: "" → 811c9dc5, "a" → e40c292c,
        // "foobar" → bf9cf968; the page's script spells the same.
        assert_eq!(bucket_of("", 32 - 1), 0x811c_9dc5 & 0x7fff_ffff);
        assert_eq!(bucket_of("a", 16), 0x292c);
        assert_eq!(bucket_of("foobar", 12), 0x968);
    }

    #[test]
    fn bucket_counts_grow_with_the_registry() {
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(128), 0);
        assert_eq!(bits_for(129), 1);
        assert_eq!(bits_for(100_000), 10);
        assert_eq!(bits_for(1_000_000), 13);
        assert_eq!(bits_for(usize::MAX / 2), MAX_BITS);
    }

    #[test]
    fn keys_name_their_files_and_no_module() {
        assert_eq!(
            bucket_file("#dependents/13/8191").as_deref(),
            Some("data/dependents/13/8191.js")
        );
        for not_a_bucket in ["ann/tool", "@ann/tool", "#dependents/x/1", "#dependents/1"] {
            assert_eq!(bucket_file(not_a_bucket), None, "{not_a_bucket}");
        }
    }

    fn dependents(modules: &[(&str, &[&str])]) -> Dependents {
        let mut builder = DependentsBuilder::default();
        for (full, deps) in modules {
            let (user, name) = full.split_once('/').unwrap();
            let deps: Vec<String> = deps.iter().map(|d| d.to_string()).collect();
            builder.add(user, name, &deps).unwrap();
        }
        builder.finish()
    }

    fn read(dest: &Path, bits: u32, bucket: u32) -> serde_json::Value {
        let body = std::fs::read_to_string(dest.join(bucket_path(bits, bucket))).unwrap();
        let literal = (body
            .strip_prefix(&format!("mlldRegistry.dependents({bucket},JSON.parse('")))
        .and_then(|b| b.strip_suffix("'));\n"))
        .unwrap();
        serde_json::from_str(literal).unwrap()
    }

    #[test]
    fn each_module_depended_on_is_in_its_bucket_and_unchanged_buckets_are_not_rewritten() {
        let modules: &[(&str, &[&str])] = &[
            ("ann/a", &[]),
            ("ann/b", &["ann/a"]),
            ("bob/c", &["ann/a", "ann/b", "nobody/x"]),
            ("cy/d", &[]),
        ];
        let bits = 2;
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let keys = write_buckets(&first, &dependents(modules), bits, &TextMap::default()).unwrap();
        assert_eq!(keys.len(), 4, "every bucket has a key: {keys:?}");
        for bucket in 0..4 {
            let json = read(&first, bits, bucket);
            let expected: serde_json::Map<_, _> =
                [("ann/a", vec!["ann/b", "bob/c"]), ("ann/b", vec!["bob/c"])]
                    .into_iter()
                    .filter(|(name, _)| bucket_of(name, bits) == bucket)
                    .map(|(name, deps)| (name.to_string(), serde_json::json!(deps)))
                    .collect();
            assert_eq!(json, serde_json::Value::Object(expected), "bucket {bucket}");
        }
        // Only the bucket of ann/b changes when bob/c stops naming it.
        let previous: TextMap = keys.iter().cloned().collect();
        let changed: &[(&str, &[&str])] = &[
            ("ann/a", &[]),
            ("ann/b", &["ann/a"]),
            ("bob/c", &["ann/a"]),
            ("cy/d", &[]),
        ];
        let second = dir.path().join("second");
        let again = write_buckets(&second, &dependents(changed), bits, &previous).unwrap();
        let written: Vec<u32> = (0..4)
            .filter(|&b| second.join(bucket_path(bits, b)).exists())
            .collect();
        let b_bucket = bucket_of("ann/b", bits);
        assert_eq!(written, [b_bucket]);
        assert_eq!(read(&second, bits, b_bucket).get("ann/b"), None);
        let differing: Vec<&String> = (again.iter().zip(&keys))
            .filter(|(a, k)| a != k)
            .map(|(a, _)| &a.0)
            .collect();
        assert_eq!(differing, [&format!("{KEY_PREFIX}{bits}/{b_bucket}")]);
    }
}
