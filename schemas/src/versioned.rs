//! Today's mlld registry layout: `modules/{author}/{name}/{version}.json`
//! (one immutable file per version), `metadata.json` and `tags.json` beside
//! them. Readers are tolerant (unknown fields are kept and warned about);
//! the checks are strict about what decides which bytes get installed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::JsonPath;
use crate::document::{self, Checked};
use crate::names;

/// The host whose URLs pin content to a commit. `--raw-base` replaces it.
pub const RAW_HOST: &str = "https://raw.githubusercontent.com";

/// `modules/{author}/{name}/{version}.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionFile {
    pub version: String,
    /// Runtimes the module needs (`js`, `sh`, `node`, …).
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// The mlld versions it runs on: a range, `*` or an exact version.
    #[serde(default)]
    pub mlld_version: Option<String>,
    pub source: Value,
    /// Module names (`@author/name`) to ranges, mixed with runtime keys such as `node`.
    #[serde(default)]
    pub dependencies: BTreeMap<String, Value>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub bugs: Option<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub published_at: Option<String>,
    /// The publisher's numeric GitHub user id.
    #[serde(default)]
    pub published_by: Option<u64>,
    /// `library`, `app`, `command`, `skill` or `environment`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// Where a version's bytes come from, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// One file at a pinned commit.
    Github {
        file: RawLocation,
        content_hash: String,
        repository: Option<Repository>,
    },
    /// Several files under a pinned directory; `entry_point` is among `files`.
    Directory {
        base: RawLocation,
        files: Vec<String>,
        entry_point: String,
        content_hash: String,
        repository: Option<Repository>,
    },
    /// A gist, fetched through the gist path of the Phase-1 registry.
    Gist {
        gist_id: String,
        content_hash: Option<String>,
    },
}

/// `https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{path}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RawLocation {
    pub owner: String,
    pub repo: String,
    /// 40 lowercase hex digits.
    pub commit: String,
    /// Relative path under the commit; empty for a repository's root directory.
    pub path: String,
}

/// `source.repository`: the git repository and commit the files come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Repository {
    pub url: String,
    pub commit: String,
    #[serde(default)]
    pub path: String,
}

impl RawLocation {
    /// Parses a raw URL; a URL that does not pin a 40-hex commit is a
    /// mutable source and an error.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix(RAW_HOST)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| format!("`{url}` is not a {RAW_HOST}/… URL"))?;
        let mut parts = rest.splitn(4, '/');
        let (owner, repo, commit) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let path = parts.next().unwrap_or("").trim_end_matches('/');
        names::check_user(owner).map_err(|e| format!("`{url}`: {e}"))?;
        if repo.is_empty()
            || !repo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || repo.starts_with('.')
        {
            return Err(format!("`{url}`: `{repo}` is not a repository name"));
        }
        if commit.len() != 40 || !names::is_lower_hex(commit) {
            return Err(format!(
                "`{url}` does not pin a commit (`{commit}` is not 40 lowercase hex digits): a branch or tag can change under the same version"
            ));
        }
        if !path.is_empty() {
            check_relative_path(path).map_err(|e| format!("`{url}`: {e}"))?;
        }
        Ok(Self {
            owner: owner.into(),
            repo: repo.into(),
            commit: commit.into(),
            path: path.into(),
        })
    }

    /// The URL of `relative` under this location on `raw_base`
    /// (`https://raw.githubusercontent.com` unless a mirror replaces it).
    pub fn url(&self, raw_base: &str, relative: &str) -> String {
        let mut url = format!(
            "{}/{}/{}/{}",
            raw_base.trim_end_matches('/'),
            self.owner,
            self.repo,
            self.commit
        );
        for part in [self.path.as_str(), relative] {
            if !part.is_empty() {
                url.push('/');
                url.push_str(part);
            }
        }
        url
    }
}

/// A relative path inside a module: no `..`, `.`, empty or absolute
/// parts, no backslashes or control characters, at most 255 bytes a part.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.len() > 255);
    if bad {
        Err(format!(
            "`{path}` is not a safe relative path (no `..`, `.`, empty or absolute parts, no backslashes)"
        ))
    } else {
        Ok(())
    }
}

/// The version a file name names: `1.2.3.json` → `1.2.3`, when the name
/// matches `^\d+\.\d+\.\d+(-[\w.]+)?\.json$`.
pub fn version_of_file_name(name: &str) -> Option<&str> {
    let version = name.strip_suffix(".json")?;
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let core_ok = numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let pre_ok = pre.is_none_or(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    });
    (core_ok && pre_ok).then_some(version)
}

/// Reads one version file of `@{author}/{name}` named `{file_version}.json`.
/// The value holds the checked [`Source`] when every rule passed.
pub fn check_version_file(
    file: &str,
    file_version: &str,
    src: &str,
) -> Checked<(VersionFile, Source)> {
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
    let value = std::mem::take(&mut doc.value);
    let Some(record) = doc.take::<VersionFile>(value, &root, "version record") else {
        return doc.finish(None);
    };
    doc.warn_unknown(&record.extra, &root);
    let mut ok = doc.rule(
        root.key("version"),
        if record.version == file_version {
            Ok(())
        } else {
            Err(format!(
                "`version` is `{}` but the file is named `{file_version}.json`",
                record.version
            ))
        },
        "a version file is immutable: its name and its `version` must agree",
    );
    ok &= doc.rule(
        root.key("version"),
        crate::version_spec::parse_version(&record.version).map(|_| ()),
        "write the version as MAJOR.MINOR.PATCH",
    );
    if let Some(at) = &record.published_at {
        doc.rule(
            root.key("publishedAt"),
            names::check_timestamp(at),
            "write the time as RFC 3339",
        );
    }
    let source = check_source(&mut doc, &root.key("source"), &record.source);
    ok &= source.is_some();
    let value = match (ok, source) {
        (true, Some(source)) => Some((record, source)),
        _ => None,
    };
    doc.finish(value)
}

fn check_source(
    doc: &mut document::Document<'_>,
    path: &JsonPath,
    source: &Value,
) -> Option<Source> {
    let help = "pin the source to a commit: https://raw.githubusercontent.com/{owner}/{repo}/{40-hex commit}/{path}";
    let text = |key: &str| source.get(key).and_then(Value::as_str).map(str::to_string);
    let kind = text("type").unwrap_or_default();
    let content_hash = |doc: &mut document::Document<'_>| -> Option<String> {
        let Some(field) = text("contentHash") else {
            doc.sink.error(
                path.key("contentHash"),
                "`contentHash` is missing",
                "publish the version again so the registry records the hash of its content",
            );
            return None;
        };
        let parsed = crate::content_hash::parse_content_hash(&field).map(str::to_string);
        let hex = parsed.clone().ok();
        doc.rule(
            path.key("contentHash"),
            parsed.map(|_| ()),
            "write the SHA-256 hex of the content",
        );
        hex
    };
    let repository = source
        .get("repository")
        .and_then(|r| serde_json::from_value::<Repository>(r.clone()).ok());
    match kind.as_str() {
        "github" => {
            let url = text("url").unwrap_or_default();
            let file = RawLocation::parse(&url);
            let file_ok = doc.rule(path.key("url"), file.clone().map(|_| ()), help);
            let hash = content_hash(doc);
            let file = file.ok().filter(|f| !f.path.is_empty());
            if file_ok && file.is_none() {
                doc.sink
                    .error(path.key("url"), "the URL names no file", help);
            }
            Some(Source::Github {
                file: file?,
                content_hash: hash?,
                repository,
            })
        }
        "directory" => {
            let base_url = text("baseUrl").unwrap_or_default();
            let base = RawLocation::parse(&base_url);
            doc.rule(path.key("baseUrl"), base.clone().map(|_| ()), help);
            let files: Vec<String> = source
                .get("files")
                .and_then(|f| serde_json::from_value(f.clone()).ok())
                .unwrap_or_default();
            let mut files_ok = !files.is_empty();
            if !files_ok {
                doc.sink.error(
                    path.key("files"),
                    "`files` must list the directory's files",
                    "list every file of the module, relative to baseUrl",
                );
            }
            for (i, f) in files.iter().enumerate() {
                files_ok &= doc.rule(
                    path.key("files").index(i),
                    check_relative_path(f),
                    "list paths relative to baseUrl",
                );
            }
            let mut unique = files.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != files.len() {
                files_ok = false;
                doc.sink.error(
                    path.key("files"),
                    "`files` lists a path twice",
                    "list each file once",
                );
            }
            let entry_point = text("entryPoint").unwrap_or_else(|| "index.mld".into());
            let entry_ok = doc.rule(
                path.key("entryPoint"),
                if files.contains(&entry_point) {
                    Ok(())
                } else {
                    Err(format!("entry point `{entry_point}` is not among `files`"))
                },
                "name one of the listed files as the entry point",
            );
            let hash = content_hash(doc);
            (files_ok && entry_ok).then_some(())?;
            Some(Source::Directory {
                base: base.ok()?,
                files,
                entry_point,
                content_hash: hash?,
                repository,
            })
        }
        "gist" => {
            let gist_id = text("gistId").unwrap_or_default();
            doc.rule(
                path.key("gistId"),
                names::check_gist_id(&gist_id),
                "copy the id from the gist's URL",
            )
            .then_some(())?;
            let content_hash = match text("contentHash") {
                Some(_) => Some(content_hash(doc)?),
                None => None,
            };
            Some(Source::Gist {
                gist_id,
                content_hash,
            })
        }
        other => {
            let why = match other {
                "url" => "a `url` source is not pinned to content: its bytes can change under the same version".to_string(),
                "" => "`source.type` is missing".to_string(),
                other => format!("source type `{other}` is not supported"),
            };
            doc.sink.error(path.key("type"), why, "publish the module from a git repository (a `github` or `directory` source pinned to a commit)");
            None
        }
    }
}

/// `modules/{author}/{name}/metadata.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleMetadata {
    pub name: String,
    pub author: String,
    #[serde(default)]
    pub about: String,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub maintainers: Vec<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<u64>,
    /// mlld writes `firstPublishPR` (not camelCase's `firstPublishPr`).
    #[serde(default, rename = "firstPublishPR")]
    pub first_publish_pr: Option<Value>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// Reads `metadata.json` of the folder `modules/{author}/{name}`.
pub fn check_metadata(file: &str, author: &str, name: &str, src: &str) -> Checked<ModuleMetadata> {
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
    let value = std::mem::take(&mut doc.value);
    let Some(meta) = doc.take::<ModuleMetadata>(value, &root, "module metadata") else {
        return doc.finish(None);
    };
    doc.warn_unknown(&meta.extra, &root);
    let mut ok = doc.rule(
        root.key("name"),
        if meta.name == name {
            Ok(())
        } else {
            Err(format!(
                "`name` is `{}` but the folder is `{name}`",
                meta.name
            ))
        },
        "metadata.json must describe the module of its folder",
    );
    ok &= doc.rule(
        root.key("author"),
        if names::same_user(&meta.author, author) {
            Ok(())
        } else {
            Err(format!(
                "`author` is `{}` but the folder is `{author}`",
                meta.author
            ))
        },
        "metadata.json must describe the module of its folder",
    );
    if let Some(created) = &meta.created {
        doc.rule(
            root.key("created"),
            names::check_timestamp(created),
            "write the time as RFC 3339",
        );
    }
    doc.finish(ok.then_some(meta))
}

/// `modules/{author}/{name}/tags.json`: dist-tag to version. Tags must
/// name versions in `versions`.
pub fn check_tags(file: &str, src: &str, versions: &[String]) -> Checked<BTreeMap<String, String>> {
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
    let value = std::mem::take(&mut doc.value);
    let Some(tags) = doc.take::<BTreeMap<String, String>>(value, &root, "dist-tags") else {
        return doc.finish(None);
    };
    let mut kept = BTreeMap::new();
    for (tag, version) in tags {
        let path = root.key(tag.clone());
        let tag_ok = doc.key_rule(
            path.clone(),
            check_tag_name(&tag),
            "name tags with letters, digits, `-`, `_` and `.`",
        );
        let exists = doc.rule(
            path,
            if versions.contains(&version) {
                Ok(())
            } else {
                Err(format!(
                    "tag `{tag}` names version `{version}`, which has no accepted version file"
                ))
            },
            "point the tag at a published version",
        );
        if tag_ok && exists {
            kept.insert(tag, version);
        }
    }
    doc.finish(Some(kept))
}

/// A dist-tag: starts with a letter, then letters, digits, `-`, `_`, `.`;
/// never a version or range.
pub fn check_tag_name(tag: &str) -> Result<(), String> {
    let ok = tag.len() <= 64
        && tag.starts_with(|c: char| c.is_ascii_alphabetic())
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("`{tag}` is not a dist-tag name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn raw_urls_must_pin_a_commit() {
        let loc =
            RawLocation::parse(&format!("{RAW_HOST}/alice/mods/{COMMIT}/tools/x.mld")).unwrap();
        assert_eq!(
            (loc.owner.as_str(), loc.path.as_str()),
            ("alice", "tools/x.mld")
        );
        assert_eq!(
            loc.url("http://127.0.0.1:9/", ""),
            format!("http://127.0.0.1:9/alice/mods/{COMMIT}/tools/x.mld")
        );
        assert!(
            RawLocation::parse(&format!("{RAW_HOST}/alice/mods/main/x.mld"))
                .unwrap_err()
                .contains("does not pin a commit")
        );
        assert!(RawLocation::parse(&format!("{RAW_HOST}/alice/mods/{COMMIT}/../x")).is_err());
        assert!(RawLocation::parse("https://example.org/a/b/c/d").is_err());
    }

    #[test]
    fn version_file_names() {
        assert_eq!(version_of_file_name("1.2.3.json"), Some("1.2.3"));
        assert_eq!(
            version_of_file_name("1.0.0-beta.1.json"),
            Some("1.0.0-beta.1")
        );
        for bad in [
            "metadata.json",
            "tags.json",
            "1.2.json",
            "v1.2.3.json",
            "1.2.3.JSON",
            "1.2.3-.json",
        ] {
            assert_eq!(version_of_file_name(bad), None, "{bad}");
        }
    }

    fn record(source: Value) -> String {
        serde_json::json!({"version": "1.0.0", "source": source, "publishedAt": "2026-01-01T00:00:00Z", "publishedBy": 7}).to_string()
    }

    #[test]
    fn sources_are_checked() {
        let hash = "a".repeat(64);
        let dir = record(serde_json::json!({
            "type": "directory", "baseUrl": format!("{RAW_HOST}/a/b/{COMMIT}/m"),
            "files": ["index.mld", "README.md"], "entryPoint": "index.mld", "contentHash": format!("sha256:{hash}")
        }));
        let checked = check_version_file("v.json", "1.0.0", &dir);
        let (_, source) = checked.value.clone().expect("valid");
        assert!(
            matches!(source, Source::Directory { ref content_hash, .. } if *content_hash == hash)
        );

        let bad_entry = record(serde_json::json!({
            "type": "directory", "baseUrl": format!("{RAW_HOST}/a/b/{COMMIT}/m"),
            "files": ["a.mld"], "entryPoint": "index.mld", "contentHash": hash
        }));
        assert!(
            check_version_file("v.json", "1.0.0", &bad_entry)
                .value
                .is_none()
        );

        let unpinned = record(
            serde_json::json!({"type": "github", "url": format!("{RAW_HOST}/a/b/main/x.mld"), "contentHash": hash}),
        );
        let checked = check_version_file("v.json", "1.0.0", &unpinned);
        assert!(checked.value.is_none());
        assert!(
            checked
                .errors()
                .any(|d| d.message.contains("does not pin a commit"))
        );

        let url = record(serde_json::json!({"type": "url", "url": "https://x.org/m.mld"}));
        assert!(
            check_version_file("v.json", "1.0.0", &url)
                .errors()
                .any(|d| d.message.contains("not pinned"))
        );

        let gist = record(
            serde_json::json!({"type": "gist", "gistId": "a1f3e09a42db6c680b454f6f93efa9d8"}),
        );
        assert!(matches!(
            check_version_file("v.json", "1.0.0", &gist).value,
            Some((_, Source::Gist { .. }))
        ));

        let renamed = check_version_file("v.json", "1.0.1", &gist);
        assert!(
            renamed
                .errors()
                .any(|d| d.message.contains("named `1.0.1.json`"))
        );
    }

    #[test]
    fn tags_must_name_versions() {
        let checked = check_tags(
            "tags.json",
            r#"{"latest":"1.0.0","beta":"9.9.9"}"#,
            &["1.0.0".into()],
        );
        assert_eq!(checked.errors().count(), 1);
        assert_eq!(checked.value.unwrap().len(), 1);
    }
}
