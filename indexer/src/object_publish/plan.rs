//! What one publish to object storage does, decided before any request
//! changes the bucket: which site files are uploaded in which phase, which
//! are already there, and which objects become garbage once the new
//! `latest.json` is in place. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, blob_digest};

use crate::crawl_state::{CRAWL_STATE_NAME, CRAWL_STATE_SIG_NAME};
use crate::publish::ENTRY_FILES;

/// `Cache-Control` of content-addressed files: their bytes never change
/// under their name, so every cache may keep them for a year.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of every other file: caches must revalidate before
/// use, so a client never pairs a new pointer with stale files (or the
/// reverse) for longer than one request.
pub const CACHE_REVALIDATE: &str = "no-cache";

/// The classes of site files, in upload order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathClass {
    /// Named by its own content (snapshots, deltas, blobs, listing shards):
    /// adding it changes nothing a reader of the old site sees.
    Immutable,
    /// Replaced in place by a build (pages, the page's entry points,
    /// schemas, the public key).
    Mutable,
    /// `crawl-state.json.zst.minisig` and `crawl-state.json.zst`: the next build's
    /// state names the snapshot it belongs to, so it changes with the
    /// pointer (and is put back with it should the flip fail).
    StateSignature,
    State,
    /// `latest.json.minisig`, replaced just before the pointer.
    PointerSignature,
    /// `latest.json`: the flip. Everything it names is in place before it.
    Pointer,
}

impl PathClass {
    pub fn of(path: &str) -> Self {
        match path {
            LATEST_NAME => Self::Pointer,
            LATEST_SIG_NAME => Self::PointerSignature,
            CRAWL_STATE_NAME => Self::State,
            CRAWL_STATE_SIG_NAME => Self::StateSignature,
            _ if is_content_addressed(path) => Self::Immutable,
            _ => Self::Mutable,
        }
    }

    pub fn cache_control(self) -> &'static str {
        match self {
            Self::Immutable => CACHE_IMMUTABLE,
            _ => CACHE_REVALIDATE,
        }
    }

    /// Uploaded one by one, last, as the flip.
    pub fn is_flip(self) -> bool {
        self > Self::Mutable
    }
}

/// Whether `path` is named by a digest: a loose blob (`blobs/sha256/<2>/<62>`),
/// or a file whose name holds a digest of at least 128 bits in lowercase
/// hex (`snapshots/<sha256>.tar.zst`, `deltas/<sha256>.chunks.zst`,
/// `data/listing-<sha256 prefix>.js`). The site's writers give such names
/// only to bytes that never change under them. Module pages are named by
/// the module, which a registrant chooses (and could spell in hex), so
/// nothing under `modules/` counts.
pub fn is_content_addressed(path: &str) -> bool {
    if blob_digest(path).is_some() {
        return true;
    }
    if path.starts_with("modules/") {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split(['.', '-', '_']).any(|part| {
        part.len() >= 32 && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// What a file named by its own content is named by: the SHA-256 of blobs,
/// snapshots, deltas, sparse roots and shards, or its first 32 hex digits
/// for the web page's `data/<kind>-<hex>.js`. Each goes up as immutable
/// (cached for a year), so a damaged one must not go up at all.
pub fn own_digest(path: &str) -> Option<String> {
    if let Some(digest) = blob_digest(path) {
        return Some(digest);
    }
    let (dir, name) = path.rsplit_once('/')?;
    let hex = match dir {
        "snapshots" | "deltas" | "sparse" | "sparse/shards" => name.split('.').next()?,
        "data" => name.strip_suffix(".js")?.rsplit_once('-')?.1,
        _ => return None,
    };
    let lower_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (matches!(hex.len(), 32 | 64) && lower_hex).then(|| hex.to_string())
}

/// The `Content-Type` a browser or CDN needs for a site file.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".tar.zst") || name.ends_with(".zst") {
        return "application/zstd";
    }
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("minisig" | "pub") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// One file of the local site, hashed.
#[derive(Clone, Debug)]
pub struct LocalFile {
    /// Site-relative, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Hex MD5: what S3 reports as the ETag of a single-part upload.
    pub md5: String,
}

/// One object under the site's prefix, as listed.
#[derive(Clone, Debug)]
pub struct RemoteObject {
    pub size: u64,
    pub e_tag: Option<String>,
}

/// What to do with one local file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Upload,
    /// The object holds these bytes (same size and MD5 ETag).
    Unchanged,
    /// Same size, but the ETag is not an MD5 (a multipart upload, or an
    /// encrypted object): its stored `sha256` metadata decides.
    CheckSha256,
}

/// Decides for one file from the listing alone.
pub fn decide(local: &LocalFile, remote: Option<&RemoteObject>) -> Decision {
    let Some(remote) = remote else {
        return Decision::Upload;
    };
    if remote.size != local.size {
        return Decision::Upload;
    }
    match remote.e_tag.as_deref().and_then(md5_etag) {
        Some(md5) if md5 == local.md5 => Decision::Unchanged,
        Some(_) => Decision::Upload,
        None => Decision::CheckSha256,
    }
}

/// The hex MD5 in an ETag of a single-part upload (`"<32 hex>"`); `None` for
/// any other form (`"<hex>-<parts>"` of a multipart upload, weak tags).
fn md5_etag(e_tag: &str) -> Option<String> {
    let hex = e_tag.trim_matches('"');
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// The site files in upload order, grouped by phase.
#[derive(Debug, Default)]
pub struct Phases<'a> {
    pub immutable: Vec<&'a LocalFile>,
    pub mutable: Vec<&'a LocalFile>,
    /// The page's entry files (`data/site.js`, `index.html`), after the
    /// other mutable files: they name data files (a new dependents bucket
    /// count, say), which must be in place when they are.
    pub entry: Vec<&'a LocalFile>,
    /// The crawl state's signature and state, `latest.json.minisig`, then
    /// `latest.json`, one after the other.
    pub flip: Vec<&'a LocalFile>,
}

impl<'a> Phases<'a> {
    /// Groups `files` by class; the flip is ordered by class.
    pub fn of(files: impl IntoIterator<Item = &'a LocalFile>) -> Self {
        let mut phases = Self::default();
        for f in files {
            match PathClass::of(&f.path) {
                PathClass::Immutable => phases.immutable.push(f),
                PathClass::Mutable if ENTRY_FILES.contains(&f.path.as_str()) => {
                    phases.entry.push(f)
                }
                PathClass::Mutable => phases.mutable.push(f),
                _ => phases.flip.push(f),
            }
        }
        phases.flip.sort_by_key(|f| PathClass::of(&f.path));
        phases
            .entry
            .sort_by_key(|f| ENTRY_FILES.iter().position(|e| *e == f.path));
        phases
    }
}

/// The objects to delete after the flip: everything under the prefix that
/// the new site neither holds (`local`) nor still names (`kept`: older
/// snapshots and deltas within the retention count, which the local site
/// may not hold when it was built from a previous site read over HTTP).
pub fn garbage(
    remote: &BTreeMap<String, RemoteObject>,
    local: &BTreeSet<&str>,
    kept: &BTreeSet<String>,
) -> Vec<String> {
    remote
        .keys()
        .filter(|path| !local.contains(path.as_str()) && !kept.contains(*path))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn files_named_by_their_digest_are_immutable_and_pages_are_not_hashed() {
        let named = [
            format!("blobs/sha256/01/{}", &HEX[2..]),
            format!("snapshots/{HEX}.tar.zst"),
            format!("snapshots/{HEX}.index.tar.zst"),
            format!("deltas/{HEX}.blobs.tar.zst"),
            format!("sparse/{HEX}.root.json"),
            format!("sparse/shards/{HEX}.json.zst"),
            format!("data/search-{}.js", &HEX[..32]),
        ];
        for path in &named {
            assert!(
                own_digest(path).is_some_and(|d| HEX.starts_with(&d)),
                "{path}"
            );
            assert_eq!(PathClass::of(path), PathClass::Immutable, "{path}");
        }
        for path in [
            "modules/u/m.js",
            "data/site.js",
            "index.html",
            "data/dependents/3/1.js",
        ] {
            assert_eq!(own_digest(path), None, "{path}");
        }
    }

    fn file(path: &str, size: u64, md5: &str) -> LocalFile {
        LocalFile {
            path: path.into(),
            size,
            sha256: "s".into(),
            md5: md5.into(),
        }
    }

    #[test]
    fn content_addressed_names_are_immutable_and_the_rest_revalidates() {
        for path in [
            format!("snapshots/{HEX}.tar.zst"),
            format!("snapshots/{HEX}.index.tar.zst"),
            format!("deltas/{HEX}.chunks.zst"),
            format!("deltas/{HEX}.blobs.tar.zst"),
            format!("data/listing-{HEX}.js"),
            format!("data/listing-{}.js", &HEX[..32]),
            format!("blobs/sha256/01/{}", &HEX[2..]),
        ] {
            assert_eq!(PathClass::of(&path), PathClass::Immutable, "{path}");
            assert_eq!(PathClass::of(&path).cache_control(), CACHE_IMMUTABLE);
        }
        for path in [
            "index.html",
            "app.js",
            "data/site.js",
            "modules/sarah-k/llm-cache.json",
            "mlld-registry.pub",
            "schemas/lock.schema.json",
            // A digest's prefix is not a digest.
            "data/listing-0123456789abcdef.js",
            // Nor is 64 characters that are not lowercase hex.
            "data/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef.js",
            // A module may be named like a digest; its page still changes.
            &format!("modules/sarah-k/{HEX}.json"),
        ] {
            assert_eq!(PathClass::of(path), PathClass::Mutable, "{path}");
            assert_eq!(PathClass::of(path).cache_control(), "no-cache");
        }
        assert_eq!(PathClass::of("latest.json"), PathClass::Pointer);
        assert_eq!(
            PathClass::of("latest.json.minisig"),
            PathClass::PointerSignature
        );
        assert_eq!(PathClass::of("latest.json").cache_control(), "no-cache");
    }

    #[test]
    fn phases_put_content_first_and_the_pointer_after_its_signature() {
        let files = [
            file("latest.json", 1, ""),
            file("crawl-state.json.zst", 1, ""),
            file("index.html", 1, ""),
            file("modules/ann/tool.js", 1, ""),
            file("data/site.js", 1, ""),
            file(&format!("snapshots/{HEX}.tar.zst"), 1, ""),
            file("latest.json.minisig", 1, ""),
            file("crawl-state.json.zst.minisig", 1, ""),
        ];
        let phases = Phases::of(&files);
        let names = |v: &[&LocalFile]| v.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&phases.immutable),
            [format!("snapshots/{HEX}.tar.zst")]
        );
        assert_eq!(names(&phases.mutable), ["modules/ann/tool.js"]);
        assert_eq!(names(&phases.entry), ["data/site.js", "index.html"]);
        let flip = [
            "crawl-state.json.zst.minisig",
            "crawl-state.json.zst",
            "latest.json.minisig",
            "latest.json",
        ];
        assert_eq!(names(&phases.flip), flip);
    }

    #[test]
    fn unchanged_needs_the_same_size_and_md5_and_other_etags_ask_for_the_digest() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        let local = file("a", 5, md5);
        let remote = |size, tag: &str| RemoteObject {
            size,
            e_tag: Some(tag.to_string()),
        };
        assert_eq!(decide(&local, None), Decision::Upload);
        assert_eq!(
            decide(&local, Some(&remote(5, &format!("\"{md5}\"")))),
            Decision::Unchanged
        );
        let upper = format!("\"{}\"", md5.to_uppercase());
        assert_eq!(
            decide(&local, Some(&remote(5, &upper))),
            Decision::Unchanged
        );
        assert_eq!(
            decide(&local, Some(&remote(6, &format!("\"{md5}\"")))),
            Decision::Upload
        );
        let other = "\"00000000000000000000000000000000\"";
        assert_eq!(decide(&local, Some(&remote(5, other))), Decision::Upload);
        assert_eq!(
            decide(&local, Some(&remote(5, "\"abc-3\""))),
            Decision::CheckSha256
        );
        let untagged = RemoteObject {
            size: 5,
            e_tag: None,
        };
        assert_eq!(decide(&local, Some(&untagged)), Decision::CheckSha256);
    }

    #[test]
    fn garbage_is_what_the_new_site_neither_holds_nor_keeps() {
        let remote: BTreeMap<String, RemoteObject> = ["a", "old-snapshot", "gone"]
            .into_iter()
            .map(|k| {
                (
                    k.to_string(),
                    RemoteObject {
                        size: 1,
                        e_tag: None,
                    },
                )
            })
            .collect();
        let local = BTreeSet::from(["a", "new"]);
        let kept = BTreeSet::from(["old-snapshot".to_string()]);
        assert_eq!(garbage(&remote, &local, &kept), ["gone"]);
    }

    #[test]
    fn content_types_serve_the_page_and_the_data() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("data/site.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("latest.json"), "application/json");
        assert_eq!(
            content_type(&format!("snapshots/{HEX}.tar.zst")),
            "application/zstd"
        );
        assert_eq!(
            content_type("latest.json.minisig"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type("blobs/sha256/01/23"),
            "application/octet-stream"
        );
    }
}
