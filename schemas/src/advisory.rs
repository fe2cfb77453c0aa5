//! A user's `advisories.json`: security advisories about modules and gists.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::JsonPath;
use crate::document::{self, Checked};
use crate::names;

/// `{user}/advisories.json`, exactly as in the registry guide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdvisoryFile {
    pub version: String,
    #[schemars(regex(pattern = r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*$"), length(max = 39))]
    pub author: String,
    #[serde(default)]
    pub advisories: Vec<Advisory>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Advisory {
    pub id: String,
    #[schemars(extend("format" = "date-time"))]
    pub created: String,
    pub severity: Severity,
    /// Module names (of this user) the advisory affects.
    #[serde(default)]
    pub affects: Vec<String>,
    /// Gist ids the advisory affects, whoever registered them.
    #[serde(default)]
    pub gists: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    #[serde(default)]
    pub recommendation: String,
    /// Versioned modules: the affected versions, as an npm range
    /// (`<1.1.0`, `>=1.0.0 <1.2.3 || 2.0.0`). Without it (and without
    /// `patchedVersions`) every version is affected.
    #[serde(
        default,
        rename = "affectedVersions",
        skip_serializing_if = "Option::is_none"
    )]
    pub affected_versions: Option<String>,
    /// Versioned modules: the versions that fix it, as an npm range
    /// (`>=1.1.0`). A patched version is never affected.
    #[serde(
        default,
        rename = "patchedVersions",
        skip_serializing_if = "Option::is_none"
    )]
    pub patched_versions: Option<String>,
    /// Gist modules: the affected revisions (7 to 40 lowercase hex digits,
    /// a prefix of the revision).
    #[serde(
        default,
        rename = "affectedRevisions",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub affected_revisions: Vec<String>,
    /// Gist modules: every revision committed before this time is affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub before: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// Ordered from least to most severe, so thresholds compare with `>=`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "`{s}` is not a severity (low, medium, high or critical)"
            )),
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
struct Header {
    version: String,
    author: String,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// Reads `advisories.json` of the folder `folder`. A bad advisory is an error
/// and is left out; file-level problems make the file unusable.
pub fn check_advisories(file: &str, folder: &str, src: &str) -> Checked<AdvisoryFile> {
    let mut doc = match document::parse(file, src) {
        Ok(doc) => doc,
        Err(diagnostics) => {
            return Checked {
                value: None,
                diagnostics,
            };
        }
    };
    let root = JsonPath::root();
    if !doc.value.is_object() {
        doc.sink.error(
            root,
            "advisories.json must hold a JSON object",
            "see the registry guide for the format",
        );
        return doc.finish(None);
    }
    let list = document::remove_key(&mut doc.value, "advisories");
    let value = std::mem::take(&mut doc.value);
    let Some(header) = doc.take::<Header>(value, &root, "advisory file") else {
        return doc.finish(None);
    };
    doc.warn_unknown(&header.extra, &root);
    let mut usable = true;
    if !names::same_user(&header.author, folder) {
        doc.sink.error(
            root.key("author"),
            format!(
                "author `{}` does not match the folder name `{folder}`",
                header.author
            ),
            format!("set \"author\" to \"{folder}\""),
        );
        usable = false;
    }
    let list_path = root.key("advisories");
    let mut advisories = Vec::new();
    match list {
        None => {}
        Some(Value::Array(items)) => {
            let mut ids = std::collections::BTreeSet::new();
            for (i, item) in items.into_iter().enumerate() {
                let path = list_path.index(i);
                let Some(adv) = doc.take::<Advisory>(item, &path, "advisory") else {
                    continue;
                };
                doc.warn_unknown(&adv.extra, &path);
                let mut ok = doc.rule(
                    path.key("created"),
                    names::check_timestamp(&adv.created),
                    "write the time as RFC 3339, e.g. 2024-05-28T00:00:00Z",
                );
                for (j, gist) in adv.gists.iter().enumerate() {
                    ok &= doc.rule(
                        path.key("gists").index(j),
                        names::check_gist_id(gist),
                        "list gist ids as they appear in the gist URL",
                    );
                }
                for (j, module) in adv.affects.iter().enumerate() {
                    ok &= doc.rule(
                        path.key("affects").index(j),
                        names::check_module(module),
                        "name the affected module as it appears in registry.json",
                    );
                }
                ok &= crate::advisory_scope::check_scope(&adv, &path, &mut doc);
                if adv.affects.is_empty() && adv.gists.is_empty() {
                    doc.sink.error(
                        path.clone(),
                        "the advisory affects nothing",
                        "list the module names in `affects` or the gist ids in `gists`",
                    );
                    ok = false;
                }
                if !ids.insert(adv.id.clone()) {
                    doc.sink.error(
                        path.key("id"),
                        format!("advisory id `{}` is used twice", adv.id),
                        "give every advisory its own id",
                    );
                    ok = false;
                }
                if ok {
                    advisories.push(adv);
                }
            }
        }
        Some(_) => {
            doc.sink.error(
                list_path,
                "`advisories` must be an array",
                "write \"advisories\": [ ... ]",
            );
            usable = false;
        }
    }
    let file_value = usable.then(|| AdvisoryFile {
        version: header.version,
        author: header.author,
        advisories,
        extra: header.extra,
    });
    doc.finish(file_value)
}
