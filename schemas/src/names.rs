//! The naming rules of the registry, in one place.
//!
//! - User names follow GitHub's rules: ASCII letters, digits and single
//!   hyphens, not at either end, at most 39 characters. They compare
//!   case-insensitively.
//! - Module names: lowercase ASCII letters, digits, `-`, `_` and `.`;
//!   starting with a letter or digit; at most 64 characters.
//! - Gist ids: 20 to 32 lowercase hex digits, or the decimal ids of old gists.
//! - Revisions: 40 lowercase hex digits (a git commit SHA).
//! - Integrity: `sha256:` and 64 lowercase hex digits.
//! - Timestamps: RFC 3339.

pub const MAX_USER_LEN: usize = 39;
pub const MAX_MODULE_LEN: usize = 64;

pub fn check_user(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("user name is empty".into());
    }
    if name.len() > MAX_USER_LEN {
        return Err(format!(
            "user name `{name}` is longer than {MAX_USER_LEN} characters"
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!(
            "user name `{name}` may hold only ASCII letters, digits and hyphens"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!(
            "user name `{name}` may not start or end with a hyphen or hold two in a row"
        ));
    }
    Ok(())
}

/// GitHub user names compare case-insensitively.
pub fn same_user(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub fn check_module(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("module name is empty".into());
    }
    if name.len() > MAX_MODULE_LEN {
        return Err(format!(
            "module name `{name}` is longer than {MAX_MODULE_LEN} characters"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(format!(
            "module name `{name}` must start with a lowercase letter or a digit"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "module name `{name}` holds `{bad}`; allowed are lowercase letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

pub fn check_gist_id(id: &str) -> Result<(), String> {
    let hex = (20..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let numeric = !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit());
    if hex || numeric {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a gist id (20 to 32 lowercase hex digits, or the number of an old gist)"
        ))
    }
}

pub fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn check_revision(rev: &str) -> Result<(), String> {
    if rev.len() == 40 && is_lower_hex(rev) {
        Ok(())
    } else {
        Err(format!(
            "`{rev}` is not a gist revision (40 lowercase hex digits)"
        ))
    }
}

pub fn check_sha256_hex(hex: &str) -> Result<(), String> {
    if hex.len() == 64 && is_lower_hex(hex) {
        Ok(())
    } else {
        Err(format!(
            "`{hex}` is not a SHA-256 digest (64 lowercase hex digits)"
        ))
    }
}

pub fn check_integrity(integrity: &str) -> Result<(), String> {
    match integrity.strip_prefix("sha256:") {
        Some(hex) if check_sha256_hex(hex).is_ok() => Ok(()),
        _ => Err(format!(
            "`{integrity}` is not an integrity string (`sha256:` and 64 lowercase hex digits)"
        )),
    }
}

pub fn check_timestamp(ts: &str) -> Result<(), String> {
    parse_timestamp(ts).map(|_| ())
}

pub fn parse_timestamp(ts: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).map_err(|_| {
        format!("`{ts}` is not an RFC 3339 timestamp (for example 2024-05-28T00:00:00Z)")
    })
}

/// Formats a time as RFC 3339 in UTC with whole seconds, as the registry writes it.
pub fn format_timestamp(t: time::OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("UTC times format as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["adamavenir", "mlld-lang", "A1", &"a".repeat(39)] {
            assert!(check_user(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_b", "a.b", &"a".repeat(40), "ü"] {
            assert!(check_user(bad).is_err(), "{bad}");
        }
        assert!(same_user("AdamAvenir", "adamavenir"));
    }

    #[test]
    fn module_names() {
        for ok in ["json-utils", "a", "0x", "date.fmt", "a_b", &"m".repeat(64)] {
            assert!(check_module(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "Json", "a b", "a/b", &"m".repeat(65)] {
            assert!(check_module(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gist_ids() {
        assert!(check_gist_id("a1f3e09a42db6c680b454f6f93efa9d8").is_ok());
        assert!(check_gist_id("1234567").is_ok());
        assert!(check_gist_id("a1f3e09a42db6c680b45").is_ok());
        assert!(check_gist_id("A1F3E09A42DB6C680B454F6F93EFA9D8").is_err());
        assert!(check_gist_id("a1f3").is_err());
        assert!(check_gist_id("../etc/passwd").is_err());
    }

    #[test]
    fn digests_and_times() {
        assert!(check_revision(&"b".repeat(40)).is_ok());
        assert!(check_revision(&"b".repeat(39)).is_err());
        assert!(check_integrity(&format!("sha256:{}", "e".repeat(64))).is_ok());
        assert!(check_integrity(&format!("sha512:{}", "e".repeat(64))).is_err());
        assert!(check_timestamp("2024-05-28T00:00:00Z").is_ok());
        assert!(check_timestamp("2024-05-28T10:00:00.123+02:00").is_ok());
        assert!(check_timestamp("2024-05-28").is_err());
        assert_eq!(
            format_timestamp(parse_timestamp("2024-05-28T10:00:00.5+02:00").unwrap()),
            "2024-05-28T08:00:00Z"
        );
    }
}
