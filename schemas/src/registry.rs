//! A user's `registry.json`: module names mapped to gists.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::JsonPath;
use crate::document::{self, Checked};
use crate::names;

/// `{user}/registry.json`, exactly as in the registry guide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistry {
    /// Format version of the file, "1.0.0".
    pub version: String,
    /// When the user last changed the file (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub updated: Option<String>,
    /// The GitHub user; must equal the folder name (case-insensitively).
    #[schemars(regex(pattern = r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*$"), length(max = 39))]
    pub author: String,
    /// Module name to module entry.
    #[serde(default)]
    pub modules: BTreeMap<String, ModuleEntry>,
    /// Fields this version does not know (such as `servers`), kept as they are.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// One module of a user's registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModuleEntry {
    /// The gist that holds the module: 20 to 32 hex digits, or an old numeric id.
    #[schemars(regex(pattern = r"^(?:[0-9a-f]{20,32}|[0-9]{1,20})$"))]
    pub gist: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the module was registered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub created: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct Header {
    version: String,
    #[serde(default)]
    updated: Option<String>,
    author: String,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// Reads `registry.json` of the folder `folder`. File-level problems (syntax,
/// author) make the file unusable; a bad module entry drops only that module.
pub fn check_registry(file: &str, folder: &str, src: &str) -> Checked<UserRegistry> {
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
            "registry.json must hold a JSON object",
            "see the registry guide for the format",
        );
        return doc.finish(None);
    }
    let modules_value = document::remove_key(&mut doc.value, "modules");
    let value = std::mem::take(&mut doc.value);
    let Some(header) = doc.take::<Header>(value, &root, "registry") else {
        return doc.finish(None);
    };
    doc.warn_unknown(&header.extra, &root);
    let mut usable = doc.rule(
        root.key("author"),
        names::check_user(&header.author),
        "use the GitHub user name that owns this folder",
    );
    if usable && !names::same_user(&header.author, folder) {
        doc.sink.error(
            root.key("author"),
            format!(
                "author `{}` does not match the folder name `{folder}`",
                header.author
            ),
            format!(
                "set \"author\" to \"{folder}\", or move the file into the folder `{}`",
                header.author
            ),
        );
        usable = false;
    }
    if let Some(updated) = &header.updated {
        doc.rule(
            root.key("updated"),
            names::check_timestamp(updated),
            "write the time as RFC 3339, e.g. 2024-05-28T00:00:00Z",
        );
    }

    let mut modules = BTreeMap::new();
    let modules_path = root.key("modules");
    match modules_value {
        None => doc.sink.warn(
            modules_path,
            "no `modules` object: this user registers nothing",
            "add \"modules\": { ... }",
        ),
        Some(Value::Object(map)) => {
            for (name, entry) in map {
                let path = modules_path.key(name.clone());
                if let Some(module) = check_module_entry(&mut doc, &path, &name, entry) {
                    modules.insert(name, module);
                }
            }
        }
        Some(_) => {
            doc.sink.error(
                modules_path,
                "`modules` must be an object keyed by module name",
                "write \"modules\": { \"name\": { \"gist\": ... } }",
            );
            usable = false;
        }
    }
    let registry = usable.then(|| UserRegistry {
        version: header.version,
        updated: header.updated,
        author: header.author,
        modules,
        extra: header.extra,
    });
    doc.finish(registry)
}

fn check_module_entry(
    doc: &mut document::Document<'_>,
    path: &JsonPath,
    name: &str,
    entry: Value,
) -> Option<ModuleEntry> {
    // A rule's path is made only when it fails: a registry of a million
    // modules passes millions of them.
    let name_ok = match names::check_module(name) {
        Ok(()) => true,
        failed => doc.key_rule(
            path.clone(),
            failed,
            "rename the module: lowercase letters, digits, `-`, `_`, `.`, at most 64",
        ),
    };
    let module: ModuleEntry = doc.take(entry, path, "module entry")?;
    doc.warn_unknown(&module.extra, path);
    let mut ok = name_ok;
    if let failed @ Err(_) = names::check_gist_id(&module.gist) {
        ok &= doc.rule(
            path.key("gist"),
            failed,
            "copy the id from the gist's URL: https://gist.github.com/<user>/<id>",
        );
    }
    if let Some(created) = &module.created
        && let failed @ Err(_) = names::check_timestamp(created)
    {
        ok &= doc.rule(
            path.key("created"),
            failed,
            "write the time as RFC 3339, e.g. 2024-05-28T00:00:00Z",
        );
    }
    if module.description.trim().is_empty() {
        doc.sink.warn(
            path.key("description"),
            "module has no description",
            "add a one-line description so people can find it",
        );
    }
    ok.then_some(module)
}
