//! Reading a manifest-sized JSON object from a stream a field at a time.
//!
//! serde_json's reader interface (`from_reader`) reads byte by byte through
//! a trait and is about 2.5 times slower than parsing from memory; at a
//! million modules that is most of what reading a manifest costs. Here the
//! stream is read into a window, a scanner finds only where each value
//! ends (strings skipped with `memchr`, brackets counted), and the value is
//! handed over as the text it is spelled with, for serde_json to parse
//! from memory ([`Value::parse`]), which does all the checking the scanner
//! does not. Arrays and objects the caller asks for are handed over one
//! element at a time, so no more than one element is held, however large
//! the list.

use std::io::Read;

use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// How [`read_object`] hands over a top-level field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Whole, to [`ObjectVisitor::value`].
    Whole,
    /// An array or object, one element at a time, to [`ObjectVisitor::element`].
    Elements,
    /// Checked to be JSON, then dropped (element by element when it is a list).
    Skip,
}

/// What [`read_object`] calls as the object streams by.
pub trait ObjectVisitor {
    /// A top-level key was read: how its value is wanted.
    fn field(&mut self, key: &str) -> Result<Field>;
    /// The whole value of a [`Field::Whole`] key.
    fn value(&mut self, key: &str, value: Value<'_>) -> Result<()>;
    /// Element `index` of a [`Field::Elements`] key's array, or its
    /// object's member `name`.
    fn element(
        &mut self,
        key: &str,
        index: usize,
        name: Option<&str>,
        value: Value<'_>,
    ) -> Result<()>;
}

/// One value as spelled in the document, and where it starts.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    raw: &'a str,
    at: Position,
    what: &'a str,
    path: JsonPath<'a>,
}

/// Where a value sits in the document, for errors.
#[derive(Clone, Copy)]
enum JsonPath<'a> {
    Key,
    Field(&'a str),
    Index(&'a str, usize),
    Member(&'a str, &'a str),
}

impl std::fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key => f.write_str("a key"),
            Self::Field(key) => write!(f, "{key}"),
            Self::Index(key, index) => write!(f, "{key}[{index}]"),
            Self::Member(key, name) => write!(f, "{key}.{name:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    line: u64,
    column: u64,
}

impl<'a> Value<'a> {
    /// The value's JSON text, exactly as the document spells it (not yet
    /// checked to be JSON: parse or [`Value::check`] it).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Parses the value; an error names the document, line and column.
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T> {
        serde_json::from_str(self.raw).map_err(|e| self.error(&e))
    }

    /// Checks that the value is JSON, and nothing after it.
    pub fn check(&self) -> Result<()> {
        self.parse::<IgnoredAny>().map(drop)
    }

    fn error(&self, e: &serde_json::Error) -> anyhow::Error {
        // serde counts from the value's first character.
        let (line, column) = match e.line() {
            0 | 1 => (
                self.at.line,
                self.at.column + e.column().saturating_sub(1) as u64,
            ),
            n => (self.at.line + n as u64 - 1, e.column() as u64),
        };
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        anyhow!(
            "{}, {} (line {line}, column {column}): {message}",
            self.what,
            self.path
        )
    }
}

/// The largest single value (a record, a key or a small field) the window
/// grows to hold.
pub const MAX_VALUE_BYTES: usize = 64 << 20;
const WINDOW: usize = 1 << 20;

/// Reads the JSON object `reader` holds, handing each field to `visitor`
/// as it asks; `what` names the document in errors ("the signed
/// manifest"). Errors name the line and column; the visitor's own errors
/// are returned as they are.
pub fn read_object(reader: impl Read, what: &str, visitor: &mut dyn ObjectVisitor) -> Result<()> {
    let mut w = Window::new(reader, what);
    w.expect(b'{', "'{' opening the document")?;
    if !w.eat(b'}')? {
        loop {
            let key = w.key()?;
            match visitor.field(&key)? {
                Field::Whole => {
                    let v = Value {
                        path: JsonPath::Field(&key),
                        ..w.value()?
                    };
                    visitor.value(&key, v)?;
                }
                Field::Elements => w.elements(&key, visitor, false)?,
                Field::Skip => w.elements(&key, visitor, true)?,
            }
            if !w.separator(b'}')? {
                break;
            }
        }
    }
    if w.next_byte()?.is_some() {
        return Err(w.syntax("nothing after the document's closing '}'"));
    }
    Ok(())
}

/// The stream, a window of it at a time.
struct Window<'w, R> {
    reader: R,
    what: &'w str,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    /// `buf[mark]` is at `mark_at` in the document (moved forward as
    /// values are read, so positions cost one pass over the text).
    mark: usize,
    mark_at: Position,
}

impl<'w, R: Read> Window<'w, R> {
    fn new(reader: R, what: &'w str) -> Self {
        Self {
            reader,
            what,
            buf: vec![0; WINDOW],
            pos: 0,
            end: 0,
            eof: false,
            mark: 0,
            mark_at: Position { line: 1, column: 1 },
        }
    }

    /// Reads more: drops what was read (advancing `base`), grows the window
    /// when the unread bytes fill it. False at the end of the stream.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.position();
            self.mark = 0;
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_VALUE_BYTES {
                return Err(self.syntax(&format!(
                    "a value larger than {} MiB",
                    MAX_VALUE_BYTES >> 20
                )));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("reading {}", self.what)));
                }
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Where the unread bytes start.
    fn position(&mut self) -> Position {
        self.mark_at = advance(self.mark_at, &self.buf[self.mark..self.pos]);
        self.mark = self.pos;
        self.mark_at
    }

    fn syntax(&mut self, expected: &str) -> anyhow::Error {
        let at = self.position();
        anyhow!(
            "{} is not valid JSON at line {}, column {}: expected {expected}",
            self.what,
            at.line,
            at.column
        )
    }

    /// The next byte that is not whitespace, not consumed; None at the end.
    fn next_byte(&mut self) -> Result<Option<u8>> {
        loop {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                    b => return Ok(Some(b)),
                }
            }
            if !self.refill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> Result<bool> {
        let next = self.next_byte()?;
        if next == Some(byte) {
            self.pos += 1;
        }
        Ok(next == Some(byte))
    }

    fn expect(&mut self, byte: u8, expected: &str) -> Result<()> {
        if !self.eat(byte)? {
            return Err(self.syntax(expected));
        }
        Ok(())
    }

    /// After a field or element: true on ',', false on `close`.
    fn separator(&mut self, close: u8) -> Result<bool> {
        match self.next_byte()? {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.syntax(&format!("',' or '{}'", close as char))),
        }
    }

    /// A member's key and the ':' after it.
    fn key(&mut self) -> Result<String> {
        if self.next_byte()? != Some(b'"') {
            return Err(self.syntax("a string key"));
        }
        let key: String = self.value()?.parse()?;
        self.expect(b':', "':' after a key")?;
        Ok(key)
    }

    /// The next whole value, consumed.
    fn value(&mut self) -> Result<Value<'_>> {
        if self.next_byte()?.is_none() {
            return Err(self.syntax("a value"));
        }
        let len = loop {
            match value_len(&self.buf[self.pos..self.end], self.eof) {
                Some(len) => break len,
                None if !self.eof => {
                    self.refill()?;
                }
                None => {
                    return Err(self.syntax("the end of a value before the end of the document"));
                }
            }
        };
        let at = self.position();
        let start = self.pos;
        self.pos += len;
        let what = self.what;
        // One pass: the error is built from `at`, not from `self`.
        let raw = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|_| {
            anyhow!(
                "{what} is not valid JSON at line {}, column {}: expected UTF-8 text",
                at.line,
                at.column
            )
        })?;
        Ok(Value {
            raw,
            at,
            what: self.what,
            path: JsonPath::Key,
        })
    }

    /// The value of `key`, an array or object, one element at a time (each
    /// only checked when `skip`).
    fn elements(&mut self, key: &str, visitor: &mut dyn ObjectVisitor, skip: bool) -> Result<()> {
        let object = match self.next_byte()? {
            Some(b'[') => false,
            Some(b'{') => true,
            Some(_) if skip => {
                let v = self.value()?;
                return Value {
                    path: JsonPath::Field(key),
                    ..v
                }
                .check();
            }
            _ => return Err(self.syntax(&format!("an array or object as the value of {key:?}"))),
        };
        self.pos += 1;
        let close = if object { b'}' } else { b']' };
        if self.eat(close)? {
            return Ok(());
        }
        for index in 0.. {
            let name = if object { Some(self.key()?) } else { None };
            let path = match &name {
                Some(name) => JsonPath::Member(key, name),
                None => JsonPath::Index(key, index),
            };
            let v = Value {
                path,
                ..self.value()?
            };
            if skip {
                v.check()?;
            } else {
                visitor.element(key, index, name.as_deref(), v)?;
            }
            if !self.separator(close)? {
                break;
            }
        }
        Ok(())
    }
}

/// `from` moved past `bytes`.
fn advance(from: Position, bytes: &[u8]) -> Position {
    let lines = memchr::memchr_iter(b'\n', bytes).count() as u64;
    match memchr::memrchr(b'\n', bytes) {
        Some(last) => Position {
            line: from.line + lines,
            column: (bytes.len() - last) as u64,
        },
        None => Position {
            line: from.line,
            column: from.column + bytes.len() as u64,
        },
    }
}

/// The length of the value `b` starts with (at a non-space byte), or None
/// when `b` ends first. Only finds the end: strings are skipped, brackets
/// counted; whether the text is JSON is for the parser to say.
fn value_len(b: &[u8], eof: bool) -> Option<usize> {
    match b.first()? {
        b'"' => string_end(b, 0).map(|end| end + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'"' => i = string_end(b, i)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let scalar_end = b
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            scalar_end.or(eof.then_some(b.len()))
        }
    }
}

/// The index of the quote closing the string opened at `open`.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        let j = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[j] == b'"' {
            return Some(j);
        }
        i = j + 2;
    }
}

#[cfg(test)]
#[path = "json_stream_tests.rs"]
mod tests;
