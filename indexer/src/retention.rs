//! What a build keeps publishing and what it retires: the newest
//! `keep_snapshots` snapshots, index-only snapshots and delta files, and the
//! pages of modules that left the registry. Everything retired is removed
//! only after the new `latest.json` is in place.

use crate::text_map::TextMap;

use mlld_schemas::Latest;

use crate::previous::Previous;

/// The published lists for the next crawl state, and the files to remove.
pub struct Retention {
    pub published: Vec<String>,
    pub published_index: Vec<String>,
    pub published_deltas: Vec<Vec<String>>,
    /// Site-relative files no longer needed.
    pub retired: Vec<String>,
    /// Page keys (`user/module`, or a dependents bucket's) of files to remove.
    pub removed_pages: Vec<String>,
}

/// Decides what stays, given the new `latest`, the previous build, how many
/// builds to keep, and the pages this build wrote.
pub fn decide(
    latest: &Latest,
    previous: Option<&Previous>,
    keep: usize,
    pages: &TextMap,
) -> Retention {
    let keep = keep.max(1);
    let (published, mut retired) = retain(
        &latest.snapshot,
        previous.map(|p| &p.published[..]).unwrap_or_default(),
        keep,
    );
    let index_path = latest
        .index
        .as_ref()
        .map(|i| i.path.clone())
        .unwrap_or_default();
    let (published_index, retired_index) = retain(
        &index_path,
        previous.map(|p| &p.published_index[..]).unwrap_or_default(),
        keep,
    );
    retired.extend(retired_index);
    // The delta files of the newest `keep` builds (this one first). Equal
    // content gets an equal name (an empty blob pack recurs), so a file
    // still named by a kept build is never retired.
    let mut published_deltas: Vec<Vec<String>> = vec![
        latest
            .chunk_deltas
            .iter()
            .flat_map(|d| [d.patch.path.clone(), d.blobs.path.clone()])
            .collect(),
    ];
    let older_deltas = previous
        .map(|p| &p.published_deltas[..])
        .unwrap_or_default();
    published_deltas.extend(older_deltas.iter().take(keep - 1).cloned());
    retired.extend(
        older_deltas
            .iter()
            .skip(keep - 1)
            .flatten()
            .filter(|p| !published_deltas.iter().flatten().any(|k| k == *p))
            .cloned(),
    );
    let removed_pages = previous
        .iter()
        .flat_map(|p| p.pages.keys())
        .filter(|k| pages.get(k).is_none())
        .map(str::to_string)
        .collect();
    Retention {
        published,
        published_index,
        published_deltas,
        retired,
        removed_pages,
    }
}

/// The newest `keep` of `current` followed by `older` (newest first), and the rest to delete.
fn retain(current: &str, older: &[String], keep: usize) -> (Vec<String>, Vec<String>) {
    let mut all = vec![current.to_string()];
    all.extend(older.iter().filter(|s| *s != current).cloned());
    let retired = all.split_off(keep.min(all.len()));
    (all, retired)
}
