//! The page's first-stage search data, `data/search-<sha256>.js`: the
//! listing's terms, field by field as `site/search.js` analyses them, with
//! the listing positions of the rows that hold each, partitioned by the
//! term's first two characters. A query loads the few parts its words'
//! first characters name and ranks by them alone, then reads only the rows
//! it shows; the whole listing follows for the final ranking.
//!
//! A part is a script calling `mlldRegistry.searchPart(index, fields)`
//! (the fields as a `JSON.parse` of a string literal, which browsers read
//! several times faster than the same object written as code),
//! where `fields` maps a field (`n` name terms, `g` tag words, `a` author
//! words, `t` description words, `u` author, `k` tags, `x` the name's
//! words joined, which decides the exact-name bonus) to `{term: gaps}`:
//! the term's row positions as gaps, ascending (first position, then each
//! difference), in base 36, joined by commas: a string the page decodes
//! only for the terms a query uses. A term of `x`, `k` or `u` whose rows
//! are exactly those of the same term in `n`, `g` or `a` (almost every
//! joined name, whole tag and author) is not listed again: its value there
//! starts with `=` instead. Which part holds a term: FNV-1a (32 bits) over the code
//! points of its first two characters (the term itself when shorter),
//! modulo the number of parts; the page computes the same.

use hashbrown::HashMap;
use rayon::prelude::*;

use mlld_schemas::search::{joined, name_terms, words};

/// The fields of a part, in the page's names.
const FIELDS: [&str; 7] = ["n", "g", "a", "t", "u", "k", "x"];

/// Rows per part, roughly: parts stay a few tens of kilobytes.
const ROWS_PER_PART: usize = 400;
const MAX_PARTS: usize = 256;

/// How many parts a listing of `rows` rows is cut into.
pub fn part_count(rows: usize) -> usize {
    (rows / ROWS_PER_PART)
        .next_power_of_two()
        .clamp(1, MAX_PARTS)
}

/// The part that holds `term`, of `parts`.
pub fn part_of(term: &str, parts: usize) -> usize {
    super::fnv1a(term.chars().take(2).map(u32::from)) as usize % parts
}

/// The terms of one listing row, by field (see `FIELDS`).
fn row_terms(user: &str, name: &str, description: &str, tags: &[String]) -> [Vec<String>; 7] {
    let login = user.trim_start_matches('@').to_lowercase();
    let lower_tags: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
    let mut author_words = name_terms(&login);
    author_words.push(login.clone());
    [
        name_terms(name),
        lower_tags.iter().flat_map(|t| name_terms(t)).collect(),
        author_words,
        words(description),
        vec![login],
        lower_tags,
        vec![joined(name)],
    ]
}

/// A term's rows, kept as the part writes them (see [`gaps`]): a
/// million-row listing holds tens of millions of them.
#[derive(Default, PartialEq, Eq)]
struct Postings {
    gaps: String,
    last: u32,
}

impl Postings {
    fn push(&mut self, position: u32) {
        if self.gaps.is_empty() {
            base36(position, &mut self.gaps);
        } else if position != self.last {
            self.gaps.push(',');
            base36(position - self.last, &mut self.gaps);
        }
        self.last = position;
    }
}

/// part → field → term → rows. Hashed (with a per-process random seed,
/// so gist text cannot aim collisions) while rows are added (fifteen
/// million lookups at a million rows), sorted once when a part is written.
type Fields = [HashMap<Box<str>, Postings>; 7];

/// The parts of a listing, fed its rows one at a time in listing order.
pub struct SearchParts {
    index: Vec<Fields>,
    next: u32,
}

impl SearchParts {
    /// For a listing of `rows` rows.
    pub fn new(rows: usize) -> Self {
        Self {
            index: (0..part_count(rows)).map(|_| Default::default()).collect(),
            next: 0,
        }
    }

    /// Adds the next row (user, name, description, tags).
    pub fn add(&mut self, user: &str, name: &str, description: &str, tags: &[String]) {
        self.add_terms(RowTerms::of(user, name, description, tags));
    }

    /// Adds the next row's terms.
    pub fn add_terms(&mut self, RowTerms(fields): RowTerms) {
        let position = self.next;
        self.next = self.next.saturating_add(1);
        let count = self.index.len();
        for (field, terms) in fields.into_iter().enumerate() {
            for term in terms {
                let terms = &mut self.index[part_of(&term, count)][field];
                match terms.get_mut(term.as_str()) {
                    Some(postings) => postings.push(position),
                    None => terms
                        .entry(term.into_boxed_str())
                        .or_default()
                        .push(position),
                }
            }
        }
    }

    /// The parts' bodies, in part order, built on all cores.
    pub fn bodies(self) -> impl IndexedParallelIterator<Item = String> {
        self.index
            .into_par_iter()
            .enumerate()
            .map(|(i, fields)| body(i, fields))
    }
}

/// One row's terms by field (see `FIELDS`), without empty ones: worked out
/// on any thread, then added in listing order.
pub struct RowTerms([Vec<String>; 7]);

impl RowTerms {
    pub fn of(user: &str, name: &str, description: &str, tags: &[String]) -> Self {
        let mut fields = row_terms(user, name, description, tags);
        for terms in &mut fields {
            terms.retain(|t| !t.is_empty());
        }
        Self(fields)
    }
}

/// The parts' bodies, in part order, for rows given as (user, name,
/// description, tags) in listing order.
pub fn parts<'a>(
    rows: impl ExactSizeIterator<Item = (&'a str, &'a str, &'a str, &'a [String])>,
) -> Vec<String> {
    let mut parts = SearchParts::new(rows.len());
    for (user, name, description, tags) in rows {
        parts.add(user, name, description, tags);
    }
    parts.bodies().collect()
}

/// Part `i`'s script.
fn body(i: usize, mut fields: Fields) -> String {
    let same = SUBSETS.map(|(sub, of)| take_same(&mut fields, sub, of));
    let fields: serde_json::Map<String, serde_json::Value> = FIELDS
        .iter()
        .enumerate()
        .zip(fields)
        .map(|((f, name), terms)| {
            let marked = SUBSETS
                .iter()
                .zip(&same)
                .find(|((_, of), _)| *of == f)
                .map(|(_, same)| same);
            let mut terms: Vec<(Box<str>, Postings)> = terms.into_iter().collect();
            terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let terms: serde_json::Map<String, serde_json::Value> = terms
                .into_iter()
                .map(|(term, postings)| {
                    let value = match marked.is_some_and(|m| m.contains(&term)) {
                        true => format!("={}", postings.gaps),
                        false => postings.gaps,
                    };
                    (term.into_string(), value.into())
                })
                .collect();
            (name.to_string(), terms.into())
        })
        .collect();
    super::json_call("searchPart", i, &serde_json::Value::Object(fields))
}

/// Fields whose every term also lies in another field, mostly with the
/// same rows: the whole joined name (`x`) is a name term, a whole tag
/// (`k`) a tag word, the author (`u`) an author word. (index of the
/// subset field, index of the field it repeats)
const SUBSETS: [(usize, usize); 3] = [(6, 0), (5, 1), (4, 2)];

/// Drops from field `sub` every term whose rows are exactly those of the
/// same term in field `of`, and returns them: the part marks them in `of`
/// (a value starting with `=`) instead of listing the rows twice.
fn take_same(fields: &mut Fields, sub: usize, of: usize) -> std::collections::BTreeSet<Box<str>> {
    let same: std::collections::BTreeSet<Box<str>> = fields[sub]
        .iter()
        .filter(|(term, rows)| fields[of].get(*term) == Some(rows))
        .map(|(term, _)| term.clone())
        .collect();
    fields[sub].retain(|term, _| !same.contains(term));
    same
}

/// Ascending positions as their gaps in base 36, comma-separated.
#[cfg(test)]
fn gaps(positions: &[u32]) -> String {
    let mut postings = Postings::default();
    for &p in positions {
        postings.push(p);
    }
    postings.gaps
}

fn base36(mut n: u32, out: &mut String) {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).expect("below 36"));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend(digits.iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_part_lists_its_terms_in_order_whatever_order_they_came_in() {
        // Terms are hashed while rows are added: the body must still be
        // the same bytes in every build.
        let t = tags(&[]);
        let rows = [
            ("@u", "zeta", "", &t[..]),
            ("@u", "alpha", "", &t[..]),
            ("@u", "mid", "", &t[..]),
        ];
        let bodies = parts(rows.into_iter());
        assert_eq!(bodies.len(), 1);
        // The first mention of each is in the name field, which comes first.
        let at = |term: &str| bodies[0].find(term).unwrap();
        assert!(
            at("alpha") < at("mid") && at("mid") < at("zeta"),
            "{}",
            bodies[0]
        );
    }

    #[test]
    fn the_page_and_the_indexer_place_terms_alike() {
        // What `mlldSearch.partOf` in site/search.js gives (run under node).
        let page = [
            ("json", 10),
            ("js", 10),
            ("j", 125),
            ("ünï", 79),
            ("😀x", 37),
            ("ab", 202),
        ];
        for (term, part) in page {
            assert_eq!(part_of(term, 256), part, "{term}");
        }
        assert_eq!(part_of("json", 1_000_003), 207_939);
        assert_eq!(part_count(24), 1);
        assert_eq!(part_count(100_000), 256);
    }

    #[test]
    fn terms_are_indexed_by_field_with_ascending_gaps() {
        let a = tags(&["JSON", "data-tools"]);
        let b = tags(&["json"]);
        let rows = vec![
            ("alice", "json-utils", "Parse JSON fast", &a[..]),
            ("@Bob", "yaml", "to json", &b[..]),
            ("carol", "json", "", &b[..]),
        ];
        let parts = parts(rows.into_iter());
        assert_eq!(parts.len(), 1);
        let body = parts[0]
            .strip_prefix("mlldRegistry.searchPart(0,JSON.parse('")
            .and_then(|s| s.strip_suffix("'));\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["n"]["json"], "0,2");
        assert_eq!(v["g"]["data"], "0");
        assert_eq!(v["t"]["json"], "0,1");
        // The whole joined name, tag and author, when their rows are those
        // of the same name term, tag word or author word: marked there.
        assert_eq!(v["n"]["jsonutils"], "=0");
        assert_eq!(v["n"]["yaml"], "=1");
        assert_eq!(v["g"]["json"], "=0,1,1");
        assert_eq!(v["a"]["bob"], "=1");
        assert_eq!(v["u"], serde_json::json!({}));
        // … else listed on their own.
        assert_eq!(v["x"], serde_json::json!({"json": "2"}));
        assert_eq!(v["k"], serde_json::json!({"data-tools": "0"}));
    }

    #[test]
    fn gaps_are_base_36() {
        assert_eq!(gaps(&[0, 35, 36, 36 + 1296]), "0,z,1,100");
        assert_eq!(gaps(&[u32::MAX]), "1z141z3");
    }
}
