//! Page keys: a module page's inputs hashed, so that a page whose key the
//! previous build recorded is not generated again.

use anyhow::Result;
use mlld_schemas::AdvisoryRecord;
use serde::Serialize;
use sha2::Digest as _;

use super::PAGE_FORMAT;

/// Everything a page depends on, hashed: equal keys mean an equal page.
pub(super) fn page_key(inputs: &impl Serialize) -> Result<String> {
    Ok(finish_page_key(hashed(serde_json::to_vec(inputs)?)))
}

/// [`page_key`] of a gist module's `(record, advisories)`, with the record
/// given as its JSON line (`serde_json` writes a tuple as `[a,b]`, so the
/// bytes hashed are the same).
pub(super) fn gist_page_key(record_json: &[u8], advisories: &[&AdvisoryRecord]) -> Result<String> {
    let mut h = hashed(b"[");
    h.update(record_json);
    h.update(b",");
    h.update(serde_json::to_vec(advisories)?);
    h.update(b"]");
    Ok(finish_page_key(h))
}

fn hashed(bytes: impl AsRef<[u8]>) -> sha2::Sha256 {
    let mut h = sha2::Sha256::new();
    h.update(bytes);
    h
}

fn finish_page_key(mut h: sha2::Sha256) -> String {
    // A new page format must regenerate every page.
    h.update(PAGE_FORMAT.to_le_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site_data::test_support::module;

    #[test]
    fn a_gist_page_key_from_the_records_line_is_the_key_of_the_record() {
        let mut m = module(
            "Ann",
            "tool",
            "sha256:00",
            &["bob/lib".into(), "c/d".into()],
        );
        m.tags = vec!["a \"quoted\" tag".into(), "ünïcode".into()];
        m.description = "line\nbreak </script>".into();
        let advisories: Vec<AdvisoryRecord> = serde_json::from_value(serde_json::json!([
            { "user": "ann", "id": "1", "created": "2024-01-01T00:00:00Z", "severity": "high",
              "affects": ["tool"], "gists": [], "type": "rce", "description": "d", "recommendation": "r" }
        ]))
        .unwrap();
        let advisories: Vec<&AdvisoryRecord> = advisories.iter().collect();
        let line = serde_json::to_vec(&m).unwrap();
        for advisories in [vec![], advisories.clone()] {
            let whole = page_key(&(&m, &advisories)).unwrap();
            assert_eq!(gist_page_key(&line, &advisories).unwrap(), whole);
        }
        // Any input changed changes the key.
        let base = gist_page_key(&line, &[]).unwrap();
        assert_ne!(gist_page_key(&line, &advisories).unwrap(), base);
        m.description.push('!');
        assert_ne!(
            gist_page_key(&serde_json::to_vec(&m).unwrap(), &[]).unwrap(),
            base
        );
        // What the page pass reads of every line without decoding it.
        let head = crate::record_spill::RecordHead::of(&line).unwrap();
        assert_eq!(head.full_name(), "Ann/tool");
        assert_eq!(head.gist, m.gist);
        assert_eq!(head.dependencies, ["bob/lib", "c/d"]);
    }
}
