//! The `contentHash` of today's mlld registry, computed exactly as mlld's
//! publisher computes it.
//!
//! - A single file: the SHA-256 hex of its bytes.
//! - A directory: one line `{relative path}:{sha256 hex}` per file, ordered
//!   as JavaScript's `a.localeCompare(b)` orders the paths, joined with `\n`
//!   (no trailing newline); the hash is the SHA-256 hex of that text.
//!
//! Records may prefix the hex with `sha256:`; both forms are accepted.

use std::cmp::Ordering;

/// The hex digest a `contentHash` field names, or why it is not one.
pub fn parse_content_hash(field: &str) -> Result<&str, String> {
    let hex = field.strip_prefix("sha256:").unwrap_or(field);
    crate::names::check_sha256_hex(hex).map(|()| hex).map_err(|_| {
        format!("`{field}` is not a content hash (64 lowercase hex digits, optionally after `sha256:`)")
    })
}

/// The directory content hash of `files`: (relative path, SHA-256 hex of its bytes).
pub fn directory_content_hash<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<(&str, &str)> = files.into_iter().collect();
    lines.sort_by(|a, b| locale_compare(a.0, b.0));
    let text = lines
        .iter()
        .map(|(path, hex)| format!("{path}:{hex}"))
        .collect::<Vec<_>>()
        .join("\n");
    crate::sha256_hex(text.as_bytes())
}

/// JavaScript's `a.localeCompare(b)` in the root locale (ICU's root
/// collation, CLDR's ordering of the Unicode collation algorithm), for the
/// characters that appear in file paths.
///
/// Primary strength first: spaces, then punctuation and symbols in CLDR's
/// order, then digits, then letters case-insensitively; non-ASCII
/// characters sort after ASCII letters by code point. Ties are broken at
/// tertiary strength (lowercase before uppercase at the first difference),
/// then by code point, so the order is total.
pub fn locale_compare(a: &str, b: &str) -> Ordering {
    let primary = a
        .chars()
        .map(primary_weight)
        .cmp(b.chars().map(primary_weight));
    primary
        .then_with(|| {
            a.chars()
                .map(tertiary_weight)
                .cmp(b.chars().map(tertiary_weight))
        })
        .then_with(|| a.cmp(b))
}

/// ASCII punctuation and symbols in CLDR root collation order.
const PUNCTUATION_ORDER: &str = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

fn primary_weight(c: char) -> u32 {
    match c {
        c if c.is_whitespace() => 0x100 + c as u32,
        c if c.is_ascii_digit() => 0x1000 + (c as u32 - '0' as u32),
        c if c.is_ascii_alphabetic() => 0x2000 + (c.to_ascii_lowercase() as u32 - 'a' as u32),
        c if c.is_ascii() => match PUNCTUATION_ORDER.find(c) {
            Some(i) => 0x400 + i as u32,
            None => 0x300 + c as u32, // control characters: before punctuation
        },
        c => 0x10000 + c as u32,
    }
}

fn tertiary_weight(c: char) -> u32 {
    u32::from(c.is_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_as_locale_compare_does() {
        let mut paths = vec![
            "tests/a.test.mld",
            "README.md",
            "module.yml",
            "index.mld",
            "prompts.mld",
            "Index.mld",
            "lib/b.mld",
            "lib-a.mld",
            "lib_a.mld",
            "2.mld",
            "10.mld",
        ];
        paths.sort_by(|a, b| locale_compare(a, b));
        assert_eq!(
            paths,
            [
                "10.mld",
                "2.mld",
                "index.mld",
                "Index.mld",
                "lib_a.mld",
                "lib-a.mld",
                "lib/b.mld",
                "module.yml",
                "prompts.mld",
                "README.md",
                "tests/a.test.mld",
            ]
        );
    }

    #[test]
    fn directory_hash_joins_sorted_lines_without_a_trailing_newline() {
        let a = crate::sha256_hex(b"a");
        let b = crate::sha256_hex(b"b");
        let expected = crate::sha256_hex(format!("index.mld:{a}\nREADME.md:{b}").as_bytes());
        assert_eq!(
            directory_content_hash([("README.md", b.as_str()), ("index.mld", a.as_str())]),
            expected
        );
    }

    #[test]
    fn content_hash_fields_accept_both_forms() {
        let hex = "e".repeat(64);
        assert_eq!(parse_content_hash(&hex), Ok(hex.as_str()));
        assert_eq!(
            parse_content_hash(&format!("sha256:{hex}")),
            Ok(hex.as_str())
        );
        assert!(parse_content_hash("sha512:00").is_err());
        assert!(parse_content_hash(&"E".repeat(64)).is_err());
    }
}
