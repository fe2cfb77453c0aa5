//! The page data streamed from the spill is, file for file, what the whole
//! manifest held in memory gives: computed here the old way (every row in
//! memory, the listing cut in `SHARD`s, dependents by a map of names).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mlld_schemas::{Manifest, ModuleRecord};

use super::test_support::{empty_manifest, module, staged};
use super::*;

const MODULES: usize = 2_600;
const WORDS: [&str; 7] = ["json", "yaml", "fast", "Data", "tools", "élan", "it's"];

/// Modules spread over several listing shards, each depending on two
/// modules far from it (one twice), on one that does not exist and on one
/// whose case differs; a few stale, advised or written in Markdown.
fn manifest(blobs: &BlobDir) -> Manifest {
    let code = format!(
        "sha256:{}",
        blobs.put(b"/var @x = 1\n/export { x }\n").unwrap()
    );
    let doc = format!(
        "sha256:{}",
        blobs.put(b"# Title\n\nSome *text*.\n").unwrap()
    );
    let full = |i: usize| format!("u{:03}/m{}", i / 10, i % 10);
    let mut m = empty_manifest();
    m.modules = (0..MODULES)
        .map(|i| {
            let deps = [
                full((i * 37 + 11) % MODULES),
                full((i + 1500) % MODULES),
                full((i * 37 + 11) % MODULES),
                "nobody/here".to_string(),
                full(i / 2).to_uppercase(),
            ];
            let integrity = if i % 4 == 0 { &doc } else { &code };
            let mut r = module(
                &format!("u{:03}", i / 10),
                &format!("m{}", i % 10),
                integrity,
                &deps,
            );
            r.description = format!("{} for {} w{i}", WORDS[i % 7], WORDS[(i * 3) % 7]);
            r.tags = vec![format!("t{}", i % 5), WORDS[i % 3].to_string()];
            if i % 4 == 0 {
                r.current.file = "m.mld.md".into();
            }
            r.stale = (i % 13 == 0).then(|| "gist deleted".to_string());
            r.updated = (i % 3 == 0).then(|| format!("2024-03-{:02}T00:00:00Z", i % 28 + 1));
            r
        })
        .collect();
    m.advisories = serde_json::from_value(serde_json::json!([
        { "user": "u005", "id": "1", "created": "2024-01-01T00:00:00Z", "severity": "high",
          "affects": ["m3"], "gists": ["g-u100-m1"], "type": "rce", "description": "d", "recommendation": "r" }
    ]))
    .unwrap();
    m.versioned = serde_json::from_value(serde_json::json!([
        { "author": "alice", "name": "kit", "about": "a json kit", "versions": [], "tags": {} },
        { "author": "bob", "name": "yaml", "about": "", "versions": [], "tags": {} }
    ]))
    .unwrap();
    m
}

/// The old `dependents_of`: dependency as written → its dependents' names.
fn dependents_by_name(manifest: &Manifest) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &manifest.modules {
        for d in &m.current.dependencies {
            out.entry(d.clone()).or_default().insert(m.full_name());
        }
    }
    (out.into_iter())
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

fn gist_row<'a>(m: &'a ModuleRecord, index: &AdvisoryIndex<'_>) -> Row<'a> {
    let updated =
        unix_time(m.updated.as_deref()).or_else(|| unix_time(m.current.committed_at.as_deref()));
    Row(
        m.user.clone(),
        &m.name,
        &m.description,
        &m.tags,
        u8::from(index.for_module(m).next().is_some()),
        u8::from(m.stale.is_some()),
        "",
        updated.unwrap_or(0),
    )
}

/// Every file `write` should leave, by path under `dest`, and the page keys.
fn expected(
    manifest: &Manifest,
    blobs: &BlobDir,
) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let mut files = BTreeMap::new();
    let mut addressed = |kind: &str, body: String| {
        let name = format!(
            "data/{kind}-{}.js",
            &mlld_schemas::sha256_hex(body.as_bytes())[..32]
        );
        files.insert(name.clone(), body.into_bytes());
        name
    };
    let index = AdvisoryIndex::new(&manifest.advisories);
    let mut rows: Vec<Row<'_>> = manifest
        .modules
        .iter()
        .map(|m| gist_row(m, &index))
        .collect();
    rows.extend(manifest.versioned.iter().map(|v| {
        versioned::row(
            v,
            !versioned::advisories(&manifest.advisories, v).is_empty(),
        )
    }));
    let shards: Vec<String> = (rows.chunks(SHARD).enumerate())
        .map(|(i, chunk)| {
            addressed(
                "listing",
                json_call("shard", i, &serde_json::to_value(chunk).unwrap()),
            )
        })
        .collect();
    let search: Vec<String> =
        search_parts::parts(rows.iter().map(|r| (r.0.as_str(), r.1, r.2, r.3)))
            .into_iter()
            .map(|body| addressed("search", body))
            .collect();
    let bits = dependents_files::bits_for(manifest.modules.len());
    let entry = serde_json::json!({ "serial": manifest.serial, "created": manifest.created, "count": manifest.modules.len(), "versioned": manifest.versioned.len(), "rowsPerShard": SHARD, "shards": shards, "search": search, "dependentsBits": bits });
    let entry = format!("mlldRegistry.site({entry});\n");
    files.insert("index.html".into(), page_html(&entry).unwrap().into_bytes());
    files.insert("data/site.js".into(), entry.into_bytes());
    for (name, text) in mlld_schemas::json_schemas() {
        files.insert(format!("schemas/{name}"), text.as_bytes().to_vec());
    }
    let mut advisories = serde_json::to_vec_pretty(&manifest.advisories).unwrap();
    advisories.push(b'\n');
    files.insert("advisories.json".into(), advisories);
    let mut keys = BTreeMap::new();
    for m in &manifest.modules {
        let full = m.full_name();
        let advisories: Vec<&AdvisoryRecord> = index.for_module(m).collect();
        keys.insert(full.clone(), page_key(&(m, &advisories)).unwrap());
        let page = gist_page::page(m, advisories, blobs, MAX_PAGE_CONTENT).unwrap();
        let json = serde_json::to_string(&page).unwrap();
        files.insert(
            format!("modules/{full}.js"),
            format!("mlldRegistry.module({json});\n").into_bytes(),
        );
    }
    // Dependents of the modules there are, by bucket of their names.
    let names: BTreeSet<String> = manifest.modules.iter().map(|m| m.full_name()).collect();
    let mut buckets = vec![BTreeMap::new(); 1 << bits];
    for (name, deps) in dependents_by_name(manifest) {
        if names.contains(&name) {
            let bucket = dependents_files::bucket_of(&name, bits) as usize;
            buckets[bucket].insert(name, deps);
        }
    }
    for (i, bucket) in buckets.iter().enumerate() {
        let json = serde_json::to_value(bucket).unwrap();
        let body = json_call("dependents", i, &json);
        keys.insert(format!("#dependents/{bits}/{i}"), page_key(&body).unwrap());
        files.insert(format!("data/dependents/{bits}/{i}.js"), body.into_bytes());
    }
    (files, keys)
}

/// Every file under `dir`, by relative path.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    (walkdir::WalkDir::new(dir).into_iter())
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// `dest` holds the files `want` and `keys` are `want_keys`, each the same.
fn assert_written(
    dest: &Path,
    keys: &TextMap,
    (want, want_keys): (&BTreeMap<String, Vec<u8>>, &BTreeMap<String, String>),
) {
    assert!(*keys == want_keys.iter().collect(), "the page keys differ");
    let got = files_under(dest);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in want {
        assert!(&got[path] == bytes, "{path} differs");
    }
}

#[test]
fn the_streamed_site_data_is_the_whole_manifests_file_for_file() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobDir::new(dir.path().join("blobs"), None);
    let manifest = manifest(&blobs);
    let staged = staged(&manifest, &dir.path().join("records"));
    let (want, want_keys) = expected(&manifest, &blobs);
    // The inputs reach what streaming must get right.
    let listing = want
        .keys()
        .filter(|k| k.starts_with("data/listing-"))
        .count();
    assert_eq!(listing, (MODULES + 2).div_ceil(SHARD));
    assert!(listing >= 3);
    let deps = dependents_by_name(&manifest);
    assert!(deps.values().filter(|d| d.len() >= 2).count() > MODULES / 2);
    let buckets = want.keys().filter(|k| k.starts_with("data/dependents/"));
    assert!(buckets.count() >= 8, "dependents in several buckets");

    let dest = dir.path().join("site");
    let (keys, _) = write(&dest, &staged, &blobs, &Default::default(), None).unwrap();
    assert_written(&dest, &keys, (&want, &want_keys));

    // Unchanged keys: no page or bucket is written again.
    let again = dir.path().join("again");
    assert_eq!(write(&again, &staged, &blobs, &keys, None).unwrap().0, keys);
    assert!(!again.join("modules").exists());
    assert!(!again.join("data/dependents").exists());
}

/// Pages whose text is the previous site's are written after the others,
/// their files read ahead a batch at a time: the same files as when the
/// text is this build's.
#[test]
fn pages_reading_the_previous_sites_files_are_the_same_pages() {
    let dir = tempfile::tempdir().unwrap();
    let fetched = BlobDir::new(dir.path().join("previous"), None);
    let manifest = manifest(&fetched);
    let staged = staged(&manifest, &dir.path().join("records"));
    let (want, want_keys) = expected(&manifest, &fetched);
    let carried = BlobDir::new(dir.path().join("new"), Some(dir.path().join("previous")));
    let advisories = AdvisoryIndex::new(&staged.advisories);
    let pages = |blobs| GistPageWriter {
        dest: dir.path(),
        manifest: &staged,
        advisory_index: &advisories,
        blobs,
    };
    let first = &manifest.modules[0];
    assert!(pages(&carried).reads_previous_site(first));
    assert!(!pages(&fetched).reads_previous_site(first));
    const {
        assert!(
            MODULES > 2 * GistPageWriter::BATCH,
            "several batches read ahead"
        )
    };

    let dest = dir.path().join("site");
    let (keys, _) = write(&dest, &staged, &carried, &Default::default(), None).unwrap();
    assert_written(&dest, &keys, (&want, &want_keys));
}

/// The search parts are kept while the rows search alike and the parts are
/// still in the site as written; otherwise they are written again, the
/// same files a build without a previous one writes.
#[test]
fn search_parts_are_kept_while_the_rows_search_alike() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let blobs = BlobDir::new(at("blobs"), None);
    let mut manifest = manifest(&blobs);
    let site = at("site");
    let first = staged(&manifest, &at("records1"));
    let (keys, search) = write(&site, &first, &blobs, &Default::default(), None).unwrap();
    assert!(search.files.len() > 1, "several parts");
    let previous = Some((site.as_path(), &search));
    let read = |dir: &str, file: &str| std::fs::read(at(dir).join(file)).unwrap();

    // A gist changed (another revision, updated since): its row changes,
    // its search inputs do not. The page names the parts already in the site.
    manifest.modules[5].updated = Some("2025-01-01T00:00:00Z".into());
    manifest.modules[5].current.revision = "b".repeat(40);
    let changed = staged(&manifest, &at("records2"));
    let (_, kept) = write(&at("next"), &changed, &blobs, &keys, previous).unwrap();
    assert_eq!(kept, search);
    assert!(search.files.iter().all(|f| !at("next").join(f).exists()));
    let (_, fresh) = write(&at("fresh-changed"), &changed, &blobs, &keys, None).unwrap();
    assert_eq!(fresh, kept, "what a build from nothing writes");
    let entry = String::from_utf8(read("next", "data/site.js")).unwrap();
    assert!(search.files.iter().all(|f| entry.contains(f.as_str())));
    assert_ne!(read("next", "data/site.js"), read("site", "data/site.js"));

    // A description or a versioned module's text edited: every part is
    // written again, as a build from nothing writes it.
    for edit in 0..2 {
        let mut edited = manifest.clone();
        match edit {
            0 => edited.modules[7].description = "quite new words".into(),
            _ => edited.versioned[0].about = "another kit".into(),
        }
        let edited = staged(&edited, &at(&format!("records-edit{edit}")));
        let (_, rebuilt) = write(&at("edited"), &edited, &blobs, &keys, previous).unwrap();
        let (_, fresh) = write(&at("fresh"), &edited, &blobs, &keys, None).unwrap();
        assert_eq!(rebuilt, fresh);
        assert_ne!(rebuilt.inputs, search.inputs);
        assert_ne!(rebuilt.files, search.files);
        for f in &rebuilt.files {
            assert_eq!(read("edited", f), read("fresh", f), "{f}");
        }
    }

    // The inputs alike, but a part changed in the site: written again.
    let part = read("site", &search.files[1]);
    std::fs::write(site.join(&search.files[1]), b"damaged").unwrap();
    let (_, again) = write(&at("healed"), &changed, &blobs, &keys, previous).unwrap();
    assert_eq!(again, search);
    assert_eq!(read("healed", &search.files[1]), part);
}
