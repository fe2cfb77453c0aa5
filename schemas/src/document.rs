//! Shared machinery for reading one JSON file tolerantly and validating it
//! strictly: syntax errors, type errors and rule violations all become
//! [`Diagnostic`]s with a path and a position.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{DiagSink, Diagnostic, JsonPath, Level};

/// A file that parsed as JSON, with positions for its diagnostics.
pub struct Document<'a> {
    pub value: Value,
    pub sink: DiagSink<'a>,
}

/// What a checked file yields: the value (if usable) and every diagnostic.
#[derive(Debug)]
pub struct Checked<T> {
    pub value: Option<T>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Checked<T> {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Parses `src`; syntax errors and duplicate keys are reported, and duplicate
/// keys make the document unusable (serde_json would silently keep the last).
/// Positions are found in `src` only when a diagnostic needs one.
pub fn parse<'a>(file: &'a str, src: &'a str) -> Result<Document<'a>, Vec<Diagnostic>> {
    let (value, repeated_keys) = match crate::strict_value::parse(src) {
        Ok(parsed) => parsed,
        Err(e) => {
            let mut sink = DiagSink::new(file, None);
            sink.syntax(&e);
            return Err(sink.diagnostics);
        }
    };
    let mut sink = DiagSink::new(file, Some(src));
    if repeated_keys {
        report_repeated_keys(&mut sink);
    }
    if sink.has_errors() {
        return Err(sink.diagnostics);
    }
    // Nearly every file holds no such text: it is found without a path
    // made for every key and item of the file, and only then looked for again.
    if holds_unsafe_text(&value) {
        warn_unsafe_text(&value, &JsonPath::root(), &mut sink);
    }
    Ok(Document { value, sink })
}

/// Reports each repeated key where the file repeats it; at the top should
/// the position scan not place the repeat the parser saw (the document is
/// refused either way).
fn report_repeated_keys(sink: &mut DiagSink<'_>) {
    const MESSAGE: &str = "this key appears more than once in its object";
    const HELP: &str = "remove or rename one of the two entries";
    let found = sink.spans().map(|s| s.duplicates.clone());
    let found = found.unwrap_or_default();
    if found.is_empty() {
        sink.error(JsonPath::root(), MESSAGE, HELP);
    }
    for (path, line, column) in found {
        let position = Some((line, column));
        sink.push_at(Level::Error, path, position, MESSAGE, Some(HELP.into()));
    }
}

/// Whether any key or string in `value` holds what [`warn_unsafe_text`] warns about.
fn holds_unsafe_text(value: &Value) -> bool {
    let unsafe_text = |s: &str| crate::terminal::first_unsafe(s).is_some();
    match value {
        Value::String(s) => unsafe_text(s),
        Value::Array(items) => items.iter().any(holds_unsafe_text),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| unsafe_text(key) || holds_unsafe_text(item)),
        _ => false,
    }
}

/// Warns about every key and string holding a control character, an escape
/// sequence or a bidirectional override: such text could disguise what a
/// terminal or a review shows (it is always displayed escaped).
fn warn_unsafe_text(value: &Value, path: &JsonPath, sink: &mut DiagSink<'_>) {
    const HELP: &str = "remove the character: registry text must be plain (tools show it escaped, as \\x1b or \\u{202e})";
    let what = |c: char| {
        format!(
            "this text holds U+{:04X}, a control character or direction override that could disguise what a terminal shows",
            c as u32
        )
    };
    match value {
        Value::String(s) => {
            if let Some((_, c)) = crate::terminal::first_unsafe(s) {
                sink.warn(path.clone(), what(c), HELP);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                warn_unsafe_text(item, &path.index(i), sink);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let at = path.key(key.clone());
                if let Some((_, c)) = crate::terminal::first_unsafe(key) {
                    sink.push_key(crate::diag::Level::Warning, at.clone(), what(c), HELP);
                }
                warn_unsafe_text(item, &at, sink);
            }
        }
        _ => {}
    }
}

impl Document<'_> {
    /// Deserializes `value` (found at `path`) into `T`, reporting type errors.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        value: Value,
        path: &JsonPath,
        what: &str,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let at = path.join_serde(e.path());
                let msg = e.inner().to_string();
                self.sink.error(
                    at,
                    format!("{what}: {msg}"),
                    format!("make this {what} match the documented format"),
                );
                None
            }
        }
    }

    /// Warns about fields this version does not know; they are kept as they are.
    pub fn warn_unknown(&mut self, extra: &BTreeMap<String, Value>, path: &JsonPath) {
        for key in extra.keys() {
            self.sink.push_key(
                crate::diag::Level::Warning,
                path.key(key.clone()),
                format!("unknown field `{key}` is kept as is but not used"),
                "check the spelling if this field was meant to be one of the documented ones",
            );
        }
    }

    /// Like [`Self::rule`], for a rule about the key that ends `path`.
    pub fn key_rule(&mut self, path: JsonPath, result: Result<(), String>, help: &str) -> bool {
        match result {
            Ok(()) => true,
            Err(msg) => {
                self.sink
                    .push_key(crate::diag::Level::Error, path, msg, help);
                false
            }
        }
    }

    /// Reports `result` as an error at `path` when it failed; returns whether it passed.
    pub fn rule(&mut self, path: JsonPath, result: Result<(), String>, help: &str) -> bool {
        match result {
            Ok(()) => true,
            Err(msg) => {
                self.sink.error(path, msg, help);
                false
            }
        }
    }

    pub fn finish<T>(self, value: Option<T>) -> Checked<T> {
        Checked {
            value,
            diagnostics: self.sink.diagnostics,
        }
    }
}

/// Takes key `key` out of a JSON object, if `value` is one.
pub fn remove_key(value: &mut Value, key: &str) -> Option<Value> {
    value.as_object_mut().and_then(|o| o.shift_remove(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_text_is_found_at_any_depth_in_keys_and_strings() {
        let clean = serde_json::json!({"a": ["tab\there", {"b": "line\nbreak"}], "n": 1});
        assert!(!holds_unsafe_text(&clean));
        for hostile in [
            serde_json::json!({"a": ["ok", {"b": "esc\u{1b}[2J"}]}),
            serde_json::json!({"a": [{"over\u{202e}ride": 1}]}),
            serde_json::json!(["\u{7}"]),
        ] {
            assert!(holds_unsafe_text(&hostile), "{hostile}");
        }
    }
}
