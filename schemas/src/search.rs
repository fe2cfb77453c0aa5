//! The search index every snapshot carries: its tantivy schema, field names,
//! term analysis and the shape of a search result, in one place for the
//! indexer (which writes the index) and the client (which queries it).
//!
//! Every indexed field is filled with terms this module computes (lowercase
//! words, name parts, prefixes), stored under tantivy's `raw` tokenizer, so
//! the index and the client's queries analyse text with the same code and
//! no tokenizer has to be registered anywhere. Scoring is by constant
//! weights per field (see the client's query builder), so no field keeps
//! frequencies, positions or norms.
//!
//! In a snapshot the index lives under `index/`: tantivy's `meta.json`, the
//! files of the base segment, named by [`SEGMENT_ID`], and after an
//! incremental build those of one more segment, [`DELTA_SEGMENT_ID`],
//! holding the modules changed since the base was built, plus the base's
//! deletion file (`<id>.<opstamp>.del`) marking their old documents.

use serde::{Deserialize, Serialize};
/// The tantivy the index format is written with, for the indexer and client to share.
pub use tantivy;
use tantivy::TantivyDocument;
use tantivy::schema::{
    Field, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};

use crate::advisory::Severity;
use crate::snapshot::ModuleRecord;
use crate::snapshot_versioned::VersionedModule;

/// The directory of the index inside a snapshot and under a stored snapshot.
pub const INDEX_DIR: &str = "index";
/// tantivy's index metadata file.
pub const META_FILE: &str = "meta.json";
/// tantivy names segment files after a random UUID; the indexer renames its
/// single segment to this fixed id so the same input gives the same bytes.
pub const SEGMENT_ID: &str = "6d6c6c642d7365617263682d696e6478";
/// The id of the segment an incremental build adds beside the base one.
pub const DELTA_SEGMENT_ID: &str = "6d6c6c642d7365617263682d64656c74";
/// Words shorter than this get no prefix terms (a one-letter prefix matches too much).
pub const MIN_PREFIX: usize = 2;
/// Prefix terms are indexed up to this many characters.
pub const MAX_PREFIX: usize = 24;
/// Longer "words" (hashes, base64 runs) are not indexed.
pub const MAX_WORD: usize = 40;

/// The fields of the index. Stored fields are exactly what a result shows.
#[derive(Clone, Copy, Debug)]
pub struct SearchFields {
    /// Stored: `user/module` as registered.
    pub full_name: Field,
    /// Stored: the registry description as written.
    pub description: Field,
    /// Stored: the tags as written, one value each.
    pub tags: Field,
    /// Stored: the highest severity of the advisories affecting the module.
    pub advisory: Field,
    /// Stored: how many advisories affect the module.
    pub advisory_count: Field,
    /// The forms that count as the module's exact name: `module`,
    /// `user/module` and the name with its separators removed.
    pub exact: Field,
    /// Name parts plus the joined form (`json`, `utils`, `jsonutils`).
    pub name: Field,
    /// Prefixes of the `name` terms.
    pub name_prefix: Field,
    /// The author's login, lowercase: the `author:` filter.
    pub author: Field,
    /// The login's parts plus the login itself.
    pub author_words: Field,
    /// Each tag, lowercase: the `tag:` filter.
    pub tag: Field,
    /// Tag parts plus the joined tags.
    pub tag_words: Field,
    /// Prefixes of the `tag_words` terms.
    pub tag_prefix: Field,
    /// Words of the description and of the module file's headings and
    /// leading comment (one field: they rank alike, and one field is one
    /// posting list per word to walk instead of two).
    pub text_words: Field,
    /// Stored: the latest version of a versioned module (`@author/name`);
    /// absent for a gist module.
    pub version: Field,
}

/// The advisory flag of a result: flagged, never hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryFlag {
    pub highest: Severity,
    pub count: u64,
}

/// One search result, as `search --json` prints it (one JSON object a line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    /// `user/module`.
    pub name: String,
    pub author: String,
    pub module: String,
    pub description: String,
    pub tags: Vec<String>,
    /// `null` when no advisory affects the module.
    pub advisory: Option<AdvisoryFlag>,
    /// The latest version of a versioned module (then `name` is `@author/name`);
    /// absent for a gist module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn terms_only() -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    )
}

impl SearchFields {
    /// The schema and its fields. Field order is part of the index format.
    pub fn build() -> (Schema, SearchFields) {
        let mut b = Schema::builder();
        let fields = SearchFields {
            full_name: b.add_text_field("full_name", STORED),
            description: b.add_text_field("description", STORED),
            tags: b.add_text_field("tags", STORED),
            advisory: b.add_text_field("advisory", STORED),
            advisory_count: b.add_u64_field("advisory_count", STORED),
            exact: b.add_text_field("exact", terms_only()),
            name: b.add_text_field("name", terms_only()),
            name_prefix: b.add_text_field("name_prefix", terms_only()),
            author: b.add_text_field("author", terms_only()),
            author_words: b.add_text_field("author_words", terms_only()),
            tag: b.add_text_field("tag", terms_only()),
            tag_words: b.add_text_field("tag_words", terms_only()),
            tag_prefix: b.add_text_field("tag_prefix", terms_only()),
            text_words: b.add_text_field("text_words", terms_only()),
            version: b.add_text_field("version", STORED),
        };
        (b.build(), fields)
    }

    /// The document of one module. `content` is the text of its headings and
    /// leading comment; `advisory` its flag, if any advisory affects it.
    pub fn document(
        &self,
        module: &ModuleRecord,
        content: &str,
        advisory: Option<AdvisoryFlag>,
    ) -> TantivyDocument {
        self.fill(
            Entry {
                full_name: module.full_name(),
                key: document_key(module),
                user: &module.user,
                name: &module.name,
                description: &module.description,
                tags: &module.tags,
                version: None,
            },
            content,
            advisory,
        )
    }

    /// The document of a versioned module: `@author/name`, its `about`, and
    /// the keywords and version of its latest version. `content` is the
    /// headings and leading comment of that version's entry file.
    pub fn versioned_document(&self, module: &VersionedModule, content: &str) -> TantivyDocument {
        let latest = module.latest();
        self.fill(
            Entry {
                full_name: module.full_name(),
                key: versioned_document_key(module),
                user: &module.author,
                name: &module.name,
                description: &module.about,
                tags: latest.map_or(&[][..], |v| &v.keywords[..]),
                version: latest.map(|v| v.version.as_str()),
            },
            content,
            None,
        )
    }

    fn fill(&self, e: Entry<'_>, content: &str, advisory: Option<AdvisoryFlag>) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.full_name, &e.full_name);
        doc.add_text(self.description, e.description);
        for tag in e.tags {
            doc.add_text(self.tags, tag);
        }
        if let Some(flag) = advisory {
            doc.add_text(self.advisory, flag.highest.as_str());
            doc.add_u64(self.advisory_count, flag.count);
        }
        if let Some(version) = e.version {
            doc.add_text(self.version, version);
        }
        let module_terms = name_terms(e.name);
        let exact = [e.name.to_lowercase(), e.key, joined(e.name)];
        add_terms(&mut doc, self.exact, exact);
        add_terms(&mut doc, self.name_prefix, prefix_terms(&module_terms));
        add_terms(&mut doc, self.name, module_terms);
        let login = e.user.to_lowercase();
        let mut author_words = name_terms_of(&login);
        author_words.push(login.clone());
        add_terms(&mut doc, self.author, [login]);
        add_terms(&mut doc, self.author_words, author_words);
        let tags: Vec<String> = e.tags.iter().map(|t| t.to_lowercase()).collect();
        let tag_words: Vec<String> = tags.iter().flat_map(|t| name_terms(t)).collect();
        add_terms(&mut doc, self.tag_prefix, prefix_terms(&tag_words));
        add_terms(&mut doc, self.tag_words, tag_words);
        add_terms(&mut doc, self.tag, tags);
        let mut text = words(e.description);
        text.extend(words(content));
        add_terms(&mut doc, self.text_words, text);
        doc
    }

    /// The result a stored document shows; `None` for a document this
    /// schema did not write.
    pub fn hit(&self, doc: &TantivyDocument) -> Option<SearchHit> {
        let text = |field| doc.get_first(field).and_then(|v| v.as_str());
        let name = text(self.full_name)?.to_string();
        let (author, module) = name.split_once('/')?;
        let author = author.strip_prefix('@').unwrap_or(author);
        let advisory = match (text(self.advisory), doc.get_first(self.advisory_count)) {
            (Some(highest), Some(count)) => Some(AdvisoryFlag {
                highest: highest.parse().ok()?,
                count: count.as_u64()?,
            }),
            _ => None,
        };
        Some(SearchHit {
            author: author.to_string(),
            module: module.to_string(),
            description: text(self.description).unwrap_or_default().to_string(),
            tags: doc
                .get_all(self.tags)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            advisory,
            version: text(self.version).map(str::to_string),
            name,
        })
    }
}

/// The `exact` term only this module's document holds (`user/module`,
/// lowercase; names hold no `/`): how an incremental build deletes it.
pub fn document_key(module: &ModuleRecord) -> String {
    module.full_name().to_lowercase()
}

/// What one document is made of, for either kind of module.
struct Entry<'a> {
    full_name: String,
    key: String,
    user: &'a str,
    name: &'a str,
    description: &'a str,
    tags: &'a [String],
    version: Option<&'a str>,
}

/// The `exact` term only this versioned module's document holds
/// (`@author/name`, lowercase), distinct from a gist module of the same name.
pub fn versioned_document_key(module: &VersionedModule) -> String {
    module.full_name().to_lowercase()
}

/// Adds each distinct term once; repeats would only grow the index.
fn add_terms(doc: &mut TantivyDocument, field: Field, terms: impl IntoIterator<Item = String>) {
    let mut seen = std::collections::BTreeSet::new();
    for term in terms {
        if !term.is_empty() && seen.insert(term.clone()) {
            doc.add_text(field, term);
        }
    }
}

/// Lowercase words: runs of letters and digits, at most [`MAX_WORD`] long.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() <= MAX_WORD)
        .map(str::to_lowercase)
        .collect()
}

/// The terms of a name: its words, then (when it has several) the words
/// joined, so `json-utils`, `json utils` and `jsonutils` all meet. The
/// joined form, when present, is last.
pub fn name_terms(name: &str) -> Vec<String> {
    name_terms_of(&name.to_lowercase())
}

fn name_terms_of(name: &str) -> Vec<String> {
    let mut terms = words(name);
    if terms.len() > 1 {
        let joined: String = terms.concat();
        if joined.chars().count() <= MAX_WORD {
            terms.push(joined);
        }
    }
    terms
}

/// The separator-free form of a phrase: `json-utils` and `json utils` both give `jsonutils`.
pub fn joined(text: &str) -> String {
    words(text).concat()
}

/// Every prefix of each term from [`MIN_PREFIX`] to [`MAX_PREFIX`] characters (the term itself included).
pub fn prefix_terms(terms: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for term in terms {
        for (count, (end, c)) in term.char_indices().enumerate() {
            let len = count + 1;
            if len > MAX_PREFIX {
                break;
            }
            if len >= MIN_PREFIX {
                out.push(term[..end + c.len_utf8()].to_string());
            }
        }
    }
    out
}

/// Whether `path` may be an index member of a snapshot: `index/meta.json` or
/// `index/<32 hex>.<extension>`, one plain file name, nothing else.
pub fn is_index_member(path: &str) -> bool {
    let Some(file) = path
        .strip_prefix(INDEX_DIR)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return false;
    };
    if file == META_FILE {
        return true;
    }
    let Some((stem, ext)) = file.split_once('.') else {
        return false;
    };
    // A segment's deletion file is `<id>.<opstamp>.del`.
    let ext = match ext.split_once('.') {
        Some((opstamp, "del"))
            if !opstamp.is_empty()
                && opstamp.len() <= 20
                && opstamp.bytes().all(|b| b.is_ascii_digit()) =>
        {
            "del"
        }
        _ => ext,
    };
    stem.len() == 32
        && crate::names::is_lower_hex(stem)
        && (1..=12).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_meet_in_every_spelling() {
        assert_eq!(name_terms("json-utils"), ["json", "utils", "jsonutils"]);
        assert_eq!(name_terms("Date.Fmt"), ["date", "fmt", "datefmt"]);
        assert_eq!(name_terms("slugify"), ["slugify"]);
        assert_eq!(joined("json utils"), "jsonutils");
        assert_eq!(joined("JSON-utils"), "jsonutils");
        assert_eq!(
            words("Parse, filter & write CSV!"),
            ["parse", "filter", "write", "csv"]
        );
        assert!(words(&"a".repeat(MAX_WORD + 1)).is_empty());
    }

    #[test]
    fn prefixes_cover_two_characters_to_the_cap() {
        assert_eq!(
            prefix_terms(&["json".into(), "a".into()]),
            ["js", "jso", "json"]
        );
        assert_eq!(
            prefix_terms(&["naïve".into()]),
            ["na", "naï", "naïv", "naïve"]
        );
        let long = "x".repeat(MAX_PREFIX + 5);
        assert_eq!(prefix_terms(&[long]).len(), MAX_PREFIX - MIN_PREFIX + 1);
    }

    #[test]
    fn index_members_are_plain_files_under_index() {
        assert!(is_index_member("index/meta.json"));
        assert!(is_index_member(&format!("index/{SEGMENT_ID}.store")));
        assert!(is_index_member(&format!("index/{SEGMENT_ID}.1001.del")));
        for bad in [
            "index/../blobs/x",
            "index/a/meta.json",
            "index/.managed.json",
            "index/meta.json/x",
            "meta.json",
            "index/",
            &format!("index/{SEGMENT_ID}.STORE"),
            &format!("/index/{SEGMENT_ID}.idx"),
            &format!("index/{SEGMENT_ID}.x7.del"),
            &format!("index/{SEGMENT_ID}..del"),
            &format!("index/{SEGMENT_ID}.7.store"),
        ] {
            assert!(!is_index_member(bad), "{bad}");
        }
    }
}
