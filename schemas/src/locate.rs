//! Maps JSON paths back to line:column in the source text.
//!
//! `serde_json::Value` keeps no positions, and silently keeps the last of two
//! duplicate keys; this small scanner runs over text serde_json already
//! accepted and records where every value starts and which keys repeat.

use crate::diag::{JsonPath, PathSeg};

#[derive(Debug)]
enum Kind {
    /// Key, the key's position, and the value.
    Object(Vec<(String, (usize, usize), Node)>),
    Array(Vec<Node>),
    Scalar,
}

#[derive(Debug)]
struct Node {
    line: usize,
    column: usize,
    kind: Kind,
}

/// Positions of every value of one JSON document.
#[derive(Debug)]
pub struct SpanTree {
    root: Node,
    /// Keys that occur twice in one object: the path of the repeat and its position.
    pub duplicates: Vec<(JsonPath, usize, usize)>,
}

impl SpanTree {
    /// Scans `src`; `None` when it is not valid JSON.
    pub fn parse(src: &str) -> Option<Self> {
        let mut s = Scanner {
            chars: src.char_indices().peekable(),
            src,
            line: 1,
            column: 1,
            duplicates: Vec::new(),
        };
        let root = s.value(&JsonPath::root())?;
        Some(Self {
            root,
            duplicates: s.duplicates,
        })
    }

    /// The 1-based line and column where the value at `path` starts, or of
    /// its nearest existing ancestor.
    pub fn position(&self, path: &JsonPath) -> Option<(usize, usize)> {
        let (node, _) = self.walk(path);
        Some((node.line, node.column))
    }

    /// Where the key that ends `path` is written (for problems with the key
    /// itself); the value's position when the path does not end in a key.
    pub fn key_position(&self, path: &JsonPath) -> Option<(usize, usize)> {
        match self.walk(path) {
            (_, Some(key_pos)) => Some(key_pos),
            (node, None) => Some((node.line, node.column)),
        }
    }

    /// The deepest node along `path`, and the key position of the last step if it was found.
    fn walk(&self, path: &JsonPath) -> (&Node, Option<(usize, usize)>) {
        let mut node = &self.root;
        let mut key_pos = None;
        for seg in &path.0 {
            let next = match (seg, &node.kind) {
                (PathSeg::Key(k), Kind::Object(entries)) => entries
                    .iter()
                    .rev()
                    .find(|(key, _, _)| key == k)
                    .map(|(_, pos, n)| (n, Some(*pos))),
                (PathSeg::Index(i), Kind::Array(items)) => items.get(*i).map(|n| (n, None)),
                _ => None,
            };
            match next {
                Some((n, pos)) => {
                    node = n;
                    key_pos = pos;
                }
                None => return (node, None),
            }
        }
        (node, key_pos)
    }
}

struct Scanner<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    src: &'a str,
    line: usize,
    column: usize,
    duplicates: Vec<(JsonPath, usize, usize)>,
}

impl Scanner<'_> {
    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|(_, c)| *c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn value(&mut self, path: &JsonPath) -> Option<Node> {
        self.skip_ws();
        let (line, column) = (self.line, self.column);
        let kind = match self.peek()? {
            '{' => self.object(path)?,
            '[' => self.array(path)?,
            '"' => {
                self.string()?;
                Kind::Scalar
            }
            _ => {
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
                {
                    self.bump();
                }
                Kind::Scalar
            }
        };
        Some(Node { line, column, kind })
    }

    fn object(&mut self, path: &JsonPath) -> Option<Kind> {
        self.bump();
        let mut entries: Vec<(String, (usize, usize), Node)> = Vec::new();
        loop {
            self.skip_ws();
            match self.peek()? {
                '}' => {
                    self.bump();
                    return Some(Kind::Object(entries));
                }
                ',' => {
                    self.bump();
                }
                '"' => {
                    let (line, column) = (self.line, self.column);
                    let key = self.string()?;
                    self.skip_ws();
                    if self.bump()? != ':' {
                        return None;
                    }
                    let child_path = path.key(key.clone());
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        self.duplicates.push((child_path.clone(), line, column));
                    }
                    let node = self.value(&child_path)?;
                    entries.push((key, (line, column), node));
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, path: &JsonPath) -> Option<Kind> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek()? {
                ']' => {
                    self.bump();
                    return Some(Kind::Array(items));
                }
                ',' => {
                    self.bump();
                }
                _ => {
                    let node = self.value(&path.index(items.len()))?;
                    items.push(node);
                }
            }
        }
    }

    /// Consumes a string literal and returns its decoded value.
    fn string(&mut self) -> Option<String> {
        let (start, _) = *self.chars.peek()?;
        self.bump();
        loop {
            match self.bump()? {
                '\\' => {
                    self.bump()?;
                }
                '"' => break,
                _ => {}
            }
        }
        let end = self.chars.peek().map_or(self.src.len(), |(i, _)| *i);
        serde_json::from_str(&self.src[start..end]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_positions() {
        let src =
            "{\n  \"modules\": {\n    \"a\": { \"gist\": \"x\" },\n    \"b\": [1, 2]\n  }\n}\n";
        let tree = SpanTree::parse(src).unwrap();
        assert_eq!(
            tree.position(&JsonPath::root().key("modules").key("a").key("gist")),
            Some((3, 20))
        );
        assert_eq!(
            tree.position(&JsonPath::root().key("modules").key("b").index(1)),
            Some((4, 14))
        );
        // A missing key points at its nearest ancestor.
        assert_eq!(
            tree.position(&JsonPath::root().key("modules").key("zz")),
            Some((2, 14))
        );
    }

    #[test]
    fn reports_duplicate_keys() {
        let src = r#"{"modules": {"a": 1, "b\u0021": 2, "a": 3}}"#;
        let tree = SpanTree::parse(src).unwrap();
        assert_eq!(tree.duplicates.len(), 1);
        assert_eq!(
            tree.duplicates[0].0,
            JsonPath::root().key("modules").key("a")
        );
    }
}

/// `bytes` as UTF-8 text, or where the first invalid byte is: 1-based
/// line and column (counted in characters) and the byte offset.
pub fn utf8_text(bytes: &[u8]) -> Result<&str, (usize, usize, usize)> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let before = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, column, offset)
    })
}

#[cfg(test)]
mod utf8_tests {
    #[test]
    fn the_first_invalid_byte_is_located() {
        assert_eq!(super::utf8_text(b"ok\n").unwrap(), "ok\n");
        assert_eq!(
            super::utf8_text(b"{\n  \"a\": \"\xff\"").unwrap_err(),
            (2, 9, 10)
        );
        assert_eq!(super::utf8_text(b"\xc3\xa9\xff").unwrap_err(), (1, 2, 2));
        assert_eq!(super::utf8_text(b"\xc3").unwrap_err(), (1, 1, 0));
    }
}
