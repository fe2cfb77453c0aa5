//! Ranking, matching and filters of [`SearchIndex`] over small in-memory indexes.

use mlld_schemas::search::tantivy::{Index, TantivyDocument};
use mlld_schemas::search::{AdvisoryFlag, SearchFields};
use mlld_schemas::{ModuleRecord, RevisionRecord, Severity};

use super::*;

/// (user, module, description, tags, content) in manifest order.
type Row<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a str);

fn record(user: &str, name: &str, description: &str, tags: &[&str]) -> ModuleRecord {
    ModuleRecord {
        user: user.into(),
        name: name.into(),
        gist: "a1f3e09a42db6c680b454f6f93efa9d8".into(),
        description: description.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        created: None,
        updated: None,
        current: RevisionRecord {
            revision: "b".repeat(40),
            committed_at: None,
            file: format!("{name}.mld"),
            integrity: format!("sha256:{}", "e".repeat(64)),
            size: 1,
            files: Vec::new(),
            dependencies: Vec::new(),
        },
        history: Vec::new(),
        stale: None,
    }
}

fn index(rows: &[Row<'_>]) -> SearchIndex {
    let (schema, fields) = SearchFields::build();
    let index = Index::create_in_ram(schema);
    let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
    for (user, name, description, tags, content) in rows {
        let flag = (*name == "flagged").then_some(AdvisoryFlag {
            highest: Severity::Critical,
            count: 1,
        });
        let doc: TantivyDocument =
            fields.document(&record(user, name, description, tags), content, flag);
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    SearchIndex::from_index(&index).unwrap()
}

fn names(index: &SearchIndex, query: &str) -> Vec<String> {
    let query = SearchQuery::parse(query, None, &[]).unwrap();
    index
        .search(&query, 20)
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect()
}

const EXAMPLES: &[Row<'static>] = &[
    (
        "alice",
        "json-utils-extra",
        "More JSON helpers",
        &["json"],
        "",
    ),
    (
        "alice",
        "yaml-front",
        "Front matter, shown as JSON",
        &["yaml"],
        "",
    ),
    ("bob", "csv-tools", "Parse CSV", &["csv", "json"], ""),
    (
        "bob",
        "slugify",
        "URL-safe slugs",
        &["text"],
        "Titles become slugs",
    ),
    ("zed", "json-utils", "Formatting utilities", &["format"], ""),
    (
        "zed",
        "flagged",
        "Runs shell commands",
        &["shell"],
        "# Shell helper",
    ),
];

#[test]
fn an_exact_name_comes_first_in_every_spelling() {
    let idx = index(EXAMPLES);
    for query in [
        "json-utils",
        "json utils",
        "jsonutils",
        "JSON_Utils",
        "zed/json-utils",
    ] {
        assert_eq!(names(&idx, query)[0], "zed/json-utils", "{query}");
    }
    // The other name holding both words follows; modules without `utils` anywhere do not match.
    assert_eq!(
        names(&idx, "json utils"),
        ["zed/json-utils", "alice/json-utils-extra"]
    );
}

#[test]
fn name_and_tag_matches_rank_above_description_and_content() {
    let idx = index(EXAMPLES);
    // Name match, then tag match, then description: whatever the document order.
    assert_eq!(
        names(&idx, "json"),
        [
            "alice/json-utils-extra",
            "zed/json-utils",
            "bob/csv-tools",
            "alice/yaml-front"
        ]
    );
    assert_eq!(names(&idx, "slugs"), ["bob/slugify"]);
    assert_eq!(names(&idx, "titles"), ["bob/slugify"]);
}

#[test]
fn ties_break_by_manifest_order_and_results_repeat() {
    let rows: &[Row<'_>] = &[
        ("amy", "alpha", "same words", &["t"], ""),
        ("bo", "beta", "same words", &["t"], ""),
        ("cy", "gamma", "same words", &["t"], ""),
    ];
    let idx = index(rows);
    let first = names(&idx, "same words");
    assert_eq!(first, ["amy/alpha", "bo/beta", "cy/gamma"]);
    for _ in 0..3 {
        assert_eq!(names(&idx, "same words"), first);
    }
}

#[test]
fn prefixes_match_and_typos_need_four_letters() {
    let idx = index(EXAMPLES);
    assert_eq!(names(&idx, "slug")[0], "bob/slugify");
    assert_eq!(names(&idx, "jso")[0], "alice/json-utils-extra");
    assert_eq!(names(&idx, "forma"), ["zed/json-utils"]);
    // One typo: a swap, a missing letter, a wrong letter.
    let typo = names(&idx, "jsno utils");
    assert_eq!(typo.len(), 2, "{typo:?}");
    assert!(typo.contains(&"zed/json-utils".to_string()), "{typo:?}");
    assert_eq!(names(&idx, "slugfy"), ["bob/slugify"]);
    assert_eq!(names(&idx, "shel")[0], "zed/flagged");
    assert_eq!(names(&idx, "yamk"), ["alice/yaml-front"]);
    // Under four letters a typo is not forgiven.
    assert!(names(&idx, "cvs").is_empty());
    assert!(names(&idx, "zzzz").is_empty());
}

#[test]
fn filters_restrict_in_the_query_and_as_flags() {
    let idx = index(EXAMPLES);
    assert_eq!(names(&idx, "json author:zed"), ["zed/json-utils"]);
    assert_eq!(names(&idx, "json tag:csv"), ["bob/csv-tools"]);
    assert_eq!(
        names(&idx, "tag:JSON"),
        ["alice/json-utils-extra", "bob/csv-tools"]
    );
    assert_eq!(names(&idx, "author:bob tag:text"), ["bob/slugify"]);
    // A filter matches a whole value only.
    assert!(names(&idx, "tag:jso").is_empty());
    assert!(names(&idx, "author:ze").is_empty());
    let query = SearchQuery::parse("json", Some("Alice"), &["YAML".into()]).unwrap();
    let hits = idx.search(&query, 20).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].name, "alice/yaml-front");
}

#[test]
fn flagged_modules_are_shown_with_their_flag() {
    let idx = index(EXAMPLES);
    let hits = idx
        .search(&SearchQuery::parse("shell", None, &[]).unwrap(), 5)
        .unwrap();
    assert_eq!(hits[0].name, "zed/flagged");
    assert_eq!(
        hits[0].advisory,
        Some(AdvisoryFlag {
            highest: Severity::Critical,
            count: 1
        })
    );
    assert_eq!(hits[0].tags, ["shell"]);
}

#[test]
fn queries_without_words_or_filters_are_refused() {
    for bad in ["", "  ", "-- /", "author:", "tag:"] {
        assert!(SearchQuery::parse(bad, None, &[]).is_err(), "{bad:?}");
    }
    let q = SearchQuery::parse("Tag:LLM cache user:Sarah-K", None, &[]).unwrap();
    assert_eq!(q.text, "cache");
    assert_eq!(q.tags, ["llm"]);
    assert_eq!(q.authors, ["sarah-k"]);
    assert_eq!(q.as_name(), "cache");
}

#[test]
fn near_names_come_from_the_index() {
    let idx = index(EXAMPLES);
    assert_eq!(idx.near_names("slugifier", 3).unwrap(), ["bob/slugify"]);
    assert_eq!(
        idx.near_names("zed/jsonutil", 3).unwrap()[0],
        "zed/json-utils"
    );
    assert_eq!(
        idx.near_names("yaml-frnt", 3).unwrap(),
        ["alice/yaml-front"]
    );
    assert!(idx.near_names("qqqq", 3).unwrap().is_empty());
}
