//! Search queries over a snapshot's index: parsing what the user typed,
//! turning it into a tantivy query with tiered constant scores, and
//! reading the results.
//!
//! Ranking is by tiers, not by term statistics, so it is easy to predict and
//! the same everywhere: an exact name match outranks everything; each word
//! then scores by the best place it matches (a name word above a tag above
//! the author above the description above the content; an exact word above a
//! prefix above a one-typo match), with a small share of its other matches
//! added; ties go to the lower document id, which is manifest order
//! (`user`, then `module`).

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use mlld_schemas::search::tantivy::{
    self, Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use mlld_schemas::search::{
    MAX_PREFIX, MIN_PREFIX, SearchFields, SearchHit, joined, name_terms, words,
};
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, DisjunctionMaxQuery, FuzzyTermQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};

/// Added once when the query is the module's name (in any spelling) or `user/module`.
const EXACT_NAME: f32 = 10_000.0;
/// A word's score is its best match plus this share of its other matches.
const TIE_BREAKER: f32 = 0.01;
/// Words this long or longer also match with one typo (an edit or a swap).
pub const MIN_TYPO_LEN: usize = 4;
/// Names weighed for a suggestion when nothing matched.
const NEAR_CANDIDATES: usize = 200;

/// Weights of one field: an exact word, a prefix, one typo.
struct Tier {
    exact: f32,
    prefix: Option<f32>,
    typo: f32,
}

/// What the user asked for: free words and filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// The free text, filters removed.
    pub text: String,
    /// Lowercase authors the results must have (all of them).
    pub authors: Vec<String>,
    /// Lowercase tags the results must have (all of them).
    pub tags: Vec<String>,
}

impl SearchQuery {
    /// Reads `author:U` and `tag:T` filters out of `input` and adds the flags' ones.
    pub fn parse(input: &str, author: Option<&str>, tags: &[String]) -> Result<Self> {
        let mut query = SearchQuery::default();
        let mut text = Vec::new();
        for token in input.split_whitespace() {
            let filter = token.split_once(':').and_then(|(key, value)| {
                match key.to_ascii_lowercase().as_str() {
                    "author" | "user" => Some((true, value)),
                    "tag" => Some((false, value)),
                    _ => None,
                }
            });
            match filter {
                Some((_, "")) => bail!(
                    "`{token}` has no value; write author:USER or tag:TAG with no space after the colon"
                ),
                Some((true, user)) => query.authors.push(user.to_lowercase()),
                Some((false, tag)) => query.tags.push(tag.to_lowercase()),
                None => text.push(token),
            }
        }
        query.authors.extend(author.map(str::to_lowercase));
        query.tags.extend(tags.iter().map(|t| t.to_lowercase()));
        query.text = text.join(" ");
        if words(&query.text).is_empty() && query.authors.is_empty() && query.tags.is_empty() {
            bail!(
                "nothing to search for: give words (e.g. `json utils`) or a filter (author:USER, tag:TAG)"
            );
        }
        Ok(query)
    }

    /// What a person most likely meant as a module name, for suggestions.
    pub fn as_name(&self) -> String {
        if self.text.contains('/') {
            self.text.to_lowercase()
        } else {
            words(&self.text).join("-")
        }
    }
}

/// A snapshot's search index, opened memory-mapped from the store.
pub struct SearchIndex {
    reader: IndexReader,
    fields: SearchFields,
}

impl SearchIndex {
    pub fn open(dir: &Path) -> Result<Self> {
        let directory = crate::search_dir::ReadOnlyDirectory::open(dir)
            .with_context(|| format!("opening the search index in {}", dir.display()))?;
        let index = Index::open(directory)
            .with_context(|| format!("the search index in {} is unreadable", dir.display()))?;
        Self::from_index(&index).with_context(|| format!("the search index in {}", dir.display()))
    }

    /// Searches an opened index, which must have this client's schema.
    pub fn from_index(index: &Index) -> Result<Self> {
        let (schema, fields) = SearchFields::build();
        if index.schema() != schema {
            bail!("it has a layout this client does not know; upgrade mlld-registry");
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self { reader, fields })
    }

    /// The best `limit` matches, best first.
    pub fn search(&self, query: &SearchQuery, limit: usize) -> Result<Vec<SearchHit>> {
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &self.build(&searcher, query)?,
            &TopDocs::with_limit(limit.max(1)).order_by_score(),
        )?;
        top.into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher.doc(address)?;
                self.fields
                    .hit(&doc)
                    .context("the search index holds a document without a module name")
            })
            .collect()
    }

    /// The query tantivy runs for `query`.
    fn build(&self, searcher: &Searcher, query: &SearchQuery) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in words(&query.text) {
            clauses.push((Occur::Must, self.word_query(searcher, &word)?));
        }
        for author in &query.authors {
            clauses.push((Occur::Must, filter(f.author, author)));
        }
        for tag in &query.tags {
            clauses.push((Occur::Must, filter(f.tag, tag)));
        }
        let mut exact_forms = vec![joined(&query.text)];
        if !query.text.contains(char::is_whitespace) {
            exact_forms.push(query.text.to_lowercase());
        }
        exact_forms.retain(|form| !form.is_empty());
        exact_forms.dedup();
        for form in exact_forms {
            clauses.push((
                Occur::Should,
                Box::new(ConstScoreQuery::new(term_query(f.exact, &form), EXACT_NAME)),
            ));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// One word: the best of its matches in every field.
    fn word_query(&self, searcher: &Searcher, word: &str) -> Result<Box<dyn Query>> {
        let f = &self.fields;
        // Name and tag matches must outrank any description or content match: the
        // lowest of theirs (30) is above the highest below (10 plus tie-breaker shares).
        let tiers = [
            (
                f.name,
                Some(f.name_prefix),
                Tier {
                    exact: 100.0,
                    prefix: Some(60.0),
                    typo: 40.0,
                },
            ),
            (
                f.tag_words,
                Some(f.tag_prefix),
                Tier {
                    exact: 80.0,
                    prefix: Some(50.0),
                    typo: 30.0,
                },
            ),
            (
                f.author_words,
                None,
                Tier {
                    exact: 30.0,
                    prefix: None,
                    typo: 15.0,
                },
            ),
            (
                f.text_words,
                None,
                Tier {
                    exact: 10.0,
                    prefix: Some(6.0),
                    typo: 4.0,
                },
            ),
        ];
        let len = word.chars().count();
        let mut disjuncts: Vec<Box<dyn Query>> = Vec::new();
        for (field, prefix_field, tier) in tiers {
            disjuncts.push(constant(term_query(field, word), tier.exact));
            if let Some(weight) = tier.prefix.filter(|_| len >= MIN_PREFIX) {
                match prefix_field {
                    // Indexed prefixes: one term lookup.
                    Some(pf) if len <= MAX_PREFIX => {
                        disjuncts.push(constant(term_query(pf, word), weight))
                    }
                    Some(_) => {}
                    // Other fields: walk the term dictionary for words starting with `word`.
                    None => disjuncts.push(constant(
                        Box::new(FuzzyTermQuery::new_prefix(term(field, word), 0, true)),
                        weight,
                    )),
                }
            }
            // A typo is forgiven where the word itself does not occur: a real word
            // is taken as meant, and a common word costs no walk of the dictionary.
            if len >= MIN_TYPO_LEN && searcher.doc_freq(&term(field, word))? == 0 {
                disjuncts.push(constant(
                    Box::new(FuzzyTermQuery::new(term(field, word), 1, true)),
                    tier.typo,
                ));
            }
        }
        Ok(Box::new(DisjunctionMaxQuery::with_tie_breaker(
            disjuncts,
            TIE_BREAKER,
        )))
    }

    /// Up to `limit` registered names near `wanted` (a module name or
    /// `user/module`), closest first. Candidates come from the index (names
    /// sharing a word's first letters, or a word within one typo, or the
    /// author) and are ranked like `resolve`'s suggestions.
    pub fn near_names(&self, wanted: &str, limit: usize) -> Result<Vec<String>> {
        let f = &self.fields;
        let (user, name) = wanted.rsplit_once('/').unwrap_or(("", wanted));
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in name_terms(name) {
            let start: String = word.chars().take(3).collect();
            if start.chars().count() >= MIN_PREFIX {
                clauses.push((Occur::Should, term_query(f.name_prefix, &start)));
            }
            if word.chars().count() >= MIN_TYPO_LEN {
                clauses.push((
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new(term(f.name, &word), 1, true)),
                ));
            }
        }
        if !user.is_empty() {
            clauses.push((Occur::Should, term_query(f.author, &user.to_lowercase())));
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(NEAR_CANDIDATES).order_by_score(),
        )?;
        let mut names = Vec::with_capacity(top.len());
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            names.extend(self.fields.hit(&doc).map(|h| h.name));
        }
        Ok(crate::resolve::closest_names(wanted, names, limit))
    }
}

fn term(field: Field, text: &str) -> Term {
    Term::from_field_text(field, text)
}

fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(term(field, text), IndexRecordOption::Basic))
}

fn constant(query: Box<dyn Query>, score: f32) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, score))
}

/// A filter: must match, adds nothing to the score.
fn filter(field: Field, value: &str) -> Box<dyn Query> {
    constant(term_query(field, value), 0.0)
}

#[cfg(test)]
#[path = "search_query_tests.rs"]
mod tests;
