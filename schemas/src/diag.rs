//! Diagnostics: every problem names the file, the JSON path, the line:column
//! and how to fix it.

use std::fmt;

/// One step into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A JSON path such as `$.modules["json-utils"].gist`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(pub Vec<PathSeg>);

impl JsonPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segs = self.0.clone();
        segs.push(PathSeg::Key(key.into()));
        Self(segs)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(PathSeg::Index(index));
        Self(segs)
    }

    /// Appends a path reported by `serde_path_to_error` (relative to `self`).
    pub fn join_serde(&self, path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut out = self.clone();
        for seg in path.iter() {
            match seg {
                Segment::Seq { index } => out.0.push(PathSeg::Index(*index)),
                Segment::Map { key } => out.0.push(PathSeg::Key(key.clone())),
                Segment::Enum { variant } => out.0.push(PathSeg::Key(variant.clone())),
                Segment::Unknown => {}
            }
        }
        out
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for seg in &self.0 {
            match seg {
                PathSeg::Index(i) => write!(f, "[{i}]")?,
                PathSeg::Key(k) if is_plain_key(k) => write!(f, ".{k}")?,
                PathSeg::Key(k) => write!(f, "[{}]", serde_json::Value::String(k.clone()))?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Warning,
    Error,
}

/// A problem found in one input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    /// The file as the caller named it (a path relative to the registry root, say).
    pub file: String,
    pub path: JsonPath,
    /// 1-based line and column; 0 when the position is unknown.
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        // Messages quote the file's own text: shown terminal-safe.
        let safe = crate::terminal::terminal_safe;
        write!(
            f,
            "{}:{}:{}: {level}: {} (at {})",
            safe(&self.file),
            self.line,
            self.column,
            safe(&self.message),
            safe(&self.path.to_string())
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", safe(help))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Collects diagnostics for one file, resolving JSON paths to positions.
pub struct DiagSink<'a> {
    file: &'a str,
    /// The file's text, scanned for positions only when the first
    /// diagnostic needs one: nearly every file of a big registry has none.
    src: Option<&'a str>,
    spans: std::cell::OnceCell<Option<crate::locate::SpanTree>>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> DiagSink<'a> {
    /// For `file`, whose text `src` (when given) positions are found in.
    pub fn new(file: &'a str, src: Option<&'a str>) -> Self {
        Self {
            file,
            src,
            spans: std::cell::OnceCell::new(),
            diagnostics: Vec::new(),
        }
    }

    /// The positions of the file's values; scanned on first use.
    pub(crate) fn spans(&self) -> Option<&crate::locate::SpanTree> {
        let scan = || self.src.and_then(crate::locate::SpanTree::parse);
        self.spans.get_or_init(scan).as_ref()
    }

    pub fn push(
        &mut self,
        level: Level,
        path: JsonPath,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let position = self.spans().and_then(|s| s.position(&path));
        self.push_at(level, path, position, message, help);
    }

    /// Like `push`, for a problem with the key that ends `path` rather than its value.
    pub fn push_key(
        &mut self,
        level: Level,
        path: JsonPath,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let position = self.spans().and_then(|s| s.key_position(&path));
        self.push_at(level, path, position, message, Some(help.into()));
    }

    pub(crate) fn push_at(
        &mut self,
        level: Level,
        path: JsonPath,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let (line, column) = position.unwrap_or((0, 0));
        self.diagnostics.push(Diagnostic {
            level,
            file: self.file.to_string(),
            path,
            line,
            column,
            message: message.into(),
            help,
        });
    }

    pub fn error(&mut self, path: JsonPath, message: impl Into<String>, help: impl Into<String>) {
        self.push(Level::Error, path, message, Some(help.into()));
    }

    pub fn warn(&mut self, path: JsonPath, message: impl Into<String>, help: impl Into<String>) {
        self.push(Level::Warning, path, message, Some(help.into()));
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Reports a JSON syntax error at the position serde_json gives.
    pub fn syntax(&mut self, err: &serde_json::Error) {
        self.diagnostics.push(Diagnostic {
            level: Level::Error,
            file: self.file.to_string(),
            path: JsonPath::root(),
            line: err.line(),
            column: err.column(),
            message: format!("invalid JSON: {err}"),
            help: Some("fix the JSON syntax at that position (a trailing comma or a missing quote is the usual cause)".into()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_jsonpath() {
        let p = JsonPath::root()
            .key("modules")
            .key("json-utils")
            .key("tags")
            .index(2);
        assert_eq!(p.to_string(), r#"$.modules["json-utils"].tags[2]"#);
        assert_eq!(JsonPath::root().to_string(), "$");
    }
}
