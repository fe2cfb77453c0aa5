//! Module references (`mlld://user/module`, `@user/module@pin`); the
//! scanner that finds them in mlld source text is `import_scan`, re-exported here.

use std::fmt;

use crate::names;

pub use crate::import_scan::{
    ImportSite, RefForm, ScanOutcome, ScanProblem, ScannedImport, SourceMode, scan_imports,
    scan_imports_checked,
};

/// A reference to a registry module, with an optional pin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleRef {
    pub user: String,
    pub module: String,
    /// What followed `@` after the module name: a revision prefix (4+ hex)
    /// or a version-like tag this registry does not resolve.
    pub pin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a module reference: {reason} (write mlld://user/module or @user/module)")]
pub struct RefError {
    pub input: String,
    pub reason: String,
}

/// Extensions a reference may carry after the module name.
const EXTENSIONS: [&str; 5] = [".mld.md", ".mlld.md", ".mlld", ".mld", ".md"];

impl ModuleRef {
    /// Parses `mlld://user/module`, `@user/module` or `user/module`, each with
    /// an optional `@pin`.
    pub fn parse(input: &str) -> Result<Self, RefError> {
        let err = |reason: &str| RefError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let rest = input
            .strip_prefix("mlld://")
            .or_else(|| input.strip_prefix('@'))
            .unwrap_or(input);
        if rest.starts_with("gist/") {
            return Err(err("it names a gist directly, not a registry module"));
        }
        let (user, rest) = rest
            .split_once('/')
            .ok_or_else(|| err("there is no `/` between user and module"))?;
        let (module, pin) = match rest.split_once('@') {
            Some((m, p)) if !p.is_empty() => (m, Some(p.to_string())),
            Some(_) => return Err(err("the pin after `@` is empty")),
            None => (rest, None),
        };
        let module = EXTENSIONS
            .iter()
            .find_map(|ext| module.strip_suffix(ext))
            .unwrap_or(module);
        names::check_user(user).map_err(|e| err(&e))?;
        if module.is_empty()
            || module.starts_with('.')
            || module.contains("..")
            || !module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(err(
                "the module name is empty or holds characters other than letters, digits, `-`, `_`, `.`",
            ));
        }
        Ok(Self {
            user: user.to_string(),
            module: module.to_string(),
            pin,
        })
    }

    /// The lock file key: `mlld://user/module` (no pin).
    pub fn import_path(&self) -> String {
        format!("mlld://{}/{}", self.user, self.module)
    }

    /// `@user/module`: the key of a versioned module (no pin).
    pub fn at_name(&self) -> String {
        format!("@{}/{}", self.user, self.module)
    }

    /// `user/module`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.user, self.module)
    }

    /// The pin when it is a revision prefix (4 to 40 lowercase hex digits).
    pub fn revision_prefix(&self) -> Option<&str> {
        self.pin
            .as_deref()
            .filter(|p| (4..=40).contains(&p.len()) && names::is_lower_hex(p))
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}/{}", self.user, self.module)?;
        if let Some(pin) = &self.pin {
            write!(f, "@{pin}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reference_form() {
        let r = ModuleRef::parse("mlld://adamavenir/json-utils").unwrap();
        assert_eq!(
            (r.user.as_str(), r.module.as_str(), r.pin.as_deref()),
            ("adamavenir", "json-utils", None)
        );
        assert_eq!(
            ModuleRef::parse("@adamavenir/json-utils@b20e54d")
                .unwrap()
                .revision_prefix(),
            Some("b20e54d")
        );
        assert_eq!(
            ModuleRef::parse("@a/b@^1.0.0").unwrap().revision_prefix(),
            None
        );
        assert_eq!(
            ModuleRef::parse("@a/json-utils.mld").unwrap().module,
            "json-utils"
        );
        assert_eq!(ModuleRef::parse("a/b").unwrap().import_path(), "mlld://a/b");
        assert!(ModuleRef::parse("mlld://gist/a/0123456789abcdef0123").is_err());
        assert!(ModuleRef::parse("@a/").is_err());
        assert!(ModuleRef::parse("no-slash").is_err());
        assert!(ModuleRef::parse("@a--b/c").is_err());
        assert!(ModuleRef::parse("@sarah-k/../x").is_err());
        assert!(ModuleRef::parse("@sarah-k/..").is_err());
        assert!(ModuleRef::parse("mlld://../../x").is_err());
        assert!(ModuleRef::parse("@\u{0455}arah-k/x").is_err(), "Cyrillic s");
        assert!(
            ModuleRef::parse("@sarah\u{2010}k/x").is_err(),
            "Unicode hyphen"
        );
        assert!(ModuleRef::parse("@sarah-k/llm\u{2011}cache").is_err());
    }
}
