//! The mixed query set of the search benchmark, and its baseline: the same
//! queries answered by reading every `registry.json` (what a client without
//! an index would have to do).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::UserRegistry;
use mlld_synth::{Rng, Synth};

/// One benchmark query: what is typed, plus the `--author`/`--tag` flags.
#[derive(Clone, Debug)]
pub struct BenchQuery {
    pub kind: &'static str,
    pub text: String,
}

/// A deterministic mix of what people type: exact names, word pairs,
/// prefixes, typos, filtered queries, description words and misses.
pub fn mixed(synth: &Synth, count: usize, seed: u64) -> Vec<BenchQuery> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let m = &synth.modules[rng.below(synth.modules.len())];
        let parts: Vec<&str> = m.name.split('-').collect();
        let (topic, kind) = (parts[0], parts[1]);
        let (label, text) = match i % 8 {
            0 => ("exact name", m.name.clone()),
            1 => ("two words", format!("{topic} {kind}")),
            2 => ("prefix", prefix(topic, kind)),
            3 => ("typo", typo(&format!("{topic}{kind}"))),
            4 => ("tag filter", format!("tag:{} {kind}", rng.pick(&m.tags))),
            5 => ("author filter", format!("author:{} {topic}", m.user)),
            6 => (
                "description word",
                m.description.split(' ').next().unwrap_or(topic).to_string(),
            ),
            _ => ("no match", format!("zq{}", rng.hex(6))),
        };
        out.push(BenchQuery { kind: label, text });
    }
    out
}

/// The first letters of the longer of two words (at least three).
fn prefix(a: &str, b: &str) -> String {
    let word = if a.len() >= b.len() { a } else { b };
    word.chars().take(word.len().clamp(3, 4)).collect()
}

/// Two neighbouring letters swapped in the middle of the word.
fn typo(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() >= 4 {
        let at = chars.len() / 2;
        chars.swap(at - 1, at);
    }
    chars.into_iter().collect()
}

/// The registry in memory as the scan reads it: `user/module` → (description, tags).
type Scanned = BTreeMap<String, (String, Vec<String>)>;

/// Answers `query` by reading and parsing every `{user}/registry.json` under
/// `registry`, then matching each word against user, name, description and
/// tags (case-insensitive substrings, so prefixes match; typos do not). Returns
/// up to `limit` names, names containing the words first, then by name.
pub fn linear_scan(registry: &Path, query: &str, limit: usize) -> Result<Vec<String>> {
    let mut scanned = Scanned::new();
    for entry in std::fs::read_dir(registry)? {
        let path = entry?.path().join("registry.json");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(file) = serde_json::from_slice::<UserRegistry>(&bytes) else {
            continue;
        };
        let user = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .context("user folders have UTF-8 names")?
            .to_string();
        for (name, module) in file.modules {
            scanned.insert(format!("{user}/{name}"), (module.description, module.tags));
        }
    }
    let (mut words, mut author, mut tag) = (Vec::new(), None, None);
    for token in query.split_whitespace() {
        if let Some(a) = token.strip_prefix("author:") {
            author = Some(a.to_lowercase());
        } else if let Some(t) = token.strip_prefix("tag:") {
            tag = Some(t.to_lowercase());
        } else {
            words.extend(token.split('-').map(str::to_lowercase));
        }
    }
    let mut hits: Vec<(bool, &String)> = scanned
        .iter()
        .filter(|(full, (_, tags))| {
            let user = full.split('/').next().unwrap_or_default();
            author
                .as_deref()
                .is_none_or(|a| user.eq_ignore_ascii_case(a))
                && tag
                    .as_deref()
                    .is_none_or(|t| tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
        })
        .filter_map(|(full, (description, tags))| {
            let haystack = format!("{full} {description} {}", tags.join(" ")).to_lowercase();
            words
                .iter()
                .all(|w| haystack.contains(w.as_str()))
                .then(|| (words.iter().all(|w| full.contains(w.as_str())), full))
        })
        .collect();
    hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    Ok(hits
        .into_iter()
        .take(limit)
        .map(|(_, n)| n.clone())
        .collect())
}
