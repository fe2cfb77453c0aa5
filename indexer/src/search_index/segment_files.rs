//! The index's files as the snapshot lists them: segments under fixed ids,
//! `meta.json` rewritten to name them, and the check that the result opens.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use mlld_schemas::search::tantivy;
use mlld_schemas::search::{DELTA_SEGMENT_ID, INDEX_DIR, META_FILE, SEGMENT_ID};
use mlld_schemas::snapshot::Member;
use mlld_site_contract::hashing::Hashing;
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::{Directory, Index, ReloadPolicy};

/// Writes the index's files with its segments under fixed ids (a full
/// build's one segment as [`SEGMENT_ID`]; beside that base, an incremental
/// build's new segment as [`DELTA_SEGMENT_ID`]), and `meta.json` naming them.
/// The index is the one committed in the directory `from`; each file is
/// copied from there as a stream and hashed as it goes (at a million
/// modules the store alone is hundreds of megabytes).
pub(crate) fn export(from: &Path, dest: &Path) -> Result<BTreeMap<String, Member>> {
    let index = Index::open(MmapDirectory::open(from)?)
        .with_context(|| format!("opening the search index in {}", from.display()))?;
    let meta = index.load_metas()?;
    let ids: Vec<String> = meta.segments.iter().map(|s| s.id().uuid_string()).collect();
    let renames = renames(&ids)?;
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut members = BTreeMap::new();
    let mut files: Vec<PathBuf> = meta.list_segment_files().into_iter().collect();
    files.sort();
    for file in files {
        if !index.directory().exists(&file)? {
            continue;
        }
        let name = file.to_str().context("tantivy file names are UTF-8")?;
        let (suffix, to) = renames
            .iter()
            .find_map(|(from, to)| Some((name.strip_prefix(from.as_str())?, *to)))
            .with_context(|| format!("segment file `{name}` is not named after a segment"))?;
        let to = format!("{to}{suffix}");
        let member = copy_hashed(&from.join(&file), &dest.join(&to))?;
        members.insert(format!("{INDEX_DIR}/{to}"), member);
    }
    let meta_text = String::from_utf8(index.directory().atomic_read(Path::new(META_FILE))?)?;
    let meta_bytes = rename_segments(&meta_text, &renames)?;
    std::fs::write(dest.join(META_FILE), &meta_bytes)
        .with_context(|| format!("writing {}", dest.join(META_FILE).display()))?;
    members.insert(
        format!("{INDEX_DIR}/{META_FILE}"),
        Member {
            sha256: mlld_schemas::sha256_hex(&meta_bytes),
            size: meta_bytes.len() as u64,
        },
    );
    Ok(members)
}

/// Which segment id becomes which fixed one.
fn renames(ids: &[String]) -> Result<Vec<(String, &'static str)>> {
    Ok(match ids {
        [only] => vec![(only.clone(), SEGMENT_ID)],
        [a, b] if a == SEGMENT_ID || b == SEGMENT_ID => {
            let other = if a == SEGMENT_ID { b } else { a };
            ensure!(other != SEGMENT_ID, "two segments named {SEGMENT_ID}");
            vec![
                (SEGMENT_ID.to_string(), SEGMENT_ID),
                (other.clone(), DELTA_SEGMENT_ID),
            ]
        }
        _ => bail!(
            "the search index has segments {ids:?}; one, or the base and one more, are expected"
        ),
    })
}

/// Copies `from` to `to`, returning the copy's digest and size.
fn copy_hashed(from: &Path, to: &Path) -> Result<Member> {
    let mut source =
        std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let file = std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let mut sink = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    std::io::copy(&mut source, &mut sink).with_context(|| format!("writing {}", to.display()))?;
    let (digest, mut writer) = sink.finish();
    writer
        .flush()
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(Member {
        sha256: digest.sha256,
        size: digest.size,
    })
}

/// `meta.json` with each segment's id replaced as `renames` says.
fn rename_segments(meta_text: &str, renames: &[(String, &'static str)]) -> Result<Vec<u8>> {
    let mut meta: serde_json::Value = serde_json::from_str(meta_text)?;
    let segments = meta
        .pointer_mut("/segments")
        .and_then(|s| s.as_array_mut())
        .context("tantivy's meta.json lists no segments")?;
    for segment in segments {
        let id = segment
            .get_mut("segment_id")
            .context("tantivy's meta.json has a segment without an id")?;
        let plain = id.as_str().unwrap_or_default().replace('-', "");
        let (_, to) = renames
            .iter()
            .find(|(from, _)| *from == plain)
            .with_context(|| format!("meta.json names segment {plain}, which the index lacks"))?;
        // tantivy writes ids in the hyphenated form; serialising a SegmentId keeps that.
        *id = serde_json::to_value(
            SegmentId::from_uuid_string(to).expect("fixed ids are 32 hex digits"),
        )?;
    }
    // A merge records the parts' random ids as the commit's payload.
    if let Some(payload) = meta.get_mut("payload") {
        *payload = serde_json::Value::Null;
    }
    let mut bytes = serde_json::to_vec_pretty(&meta)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Opens the written index the way the client will, and counts its documents.
pub(crate) fn check_opens(dir: &Path, expected_docs: usize) -> Result<()> {
    let index = Index::open(MmapDirectory::open(dir)?)
        .with_context(|| format!("the search index in {} does not open", dir.display()))?;
    let ids = index.searchable_segment_ids()?;
    ensure!(
        ids.iter()
            .all(|id| [SEGMENT_ID, DELTA_SEGMENT_ID].contains(&id.uuid_string().as_str())),
        "the search index names segments other than {SEGMENT_ID} and {DELTA_SEGMENT_ID}"
    );
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    let docs = reader.searcher().num_docs();
    ensure!(
        docs == expected_docs as u64,
        "the search index holds {docs} documents, not {expected_docs}"
    );
    Ok(())
}
