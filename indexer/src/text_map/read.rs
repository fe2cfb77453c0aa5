//! Reading a text map's JSON: each string appended straight to the map's
//! text as the deserialiser lends it, never allocated on its own.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::TextMapBuilder;

impl TextMapBuilder {
    /// Reads a map from `map`, each string appended straight to
    /// the text: no string is allocated on its own (a state holds millions).
    /// With `lists`, each value is a list of strings, joined by newlines;
    /// the text is reserved for `text_bytes`.
    fn read_map<'de, A: MapAccess<'de>>(
        mut map: A,
        lists: bool,
        text_bytes: usize,
    ) -> Result<Self, A::Error> {
        let mut b = Self::with_capacity(text_bytes, 0);
        loop {
            let start = b.0.text.len();
            if map.next_key_seed(AppendStr(&mut b.0.text))?.is_none() {
                return Ok(b);
            }
            let key_end = b.0.text.len();
            let text = &mut b.0.text;
            if lists {
                map.next_value_seed(AppendValue::List(text))?;
            } else {
                map.next_value_seed(AppendValue::Text(text))?;
            }
            (b.end_entry(start, key_end))
                .ok_or_else(|| serde::de::Error::custom("a text map over 4 GiB"))?;
        }
    }
}

/// A map read with its text reserved up front: its strings, or (with
/// `lists`) each value a list of strings joined by newlines.
pub(super) struct ReservedRead {
    lists: bool,
    text_bytes: usize,
}

impl ReservedRead {
    pub(super) fn new(lists: bool, text_bytes: usize) -> Self {
        Self { lists, text_bytes }
    }

    pub(super) fn read(self, reader: impl std::io::Read) -> serde_json::Result<TextMapBuilder> {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
        let map = de.deserialize_map(self)?;
        de.end()?;
        Ok(map)
    }
}

impl<'de> Visitor<'de> for ReservedRead {
    type Value = TextMapBuilder;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TextMapBuilder, A::Error> {
        TextMapBuilder::read_map(map, self.lists, self.text_bytes)
    }
}

/// A string appended to a buffer as it is read, borrowing what the
/// deserialiser lends instead of allocating it.
struct AppendStr<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for AppendStr<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AppendStr<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        self.0.push_str(s);
        Ok(())
    }
}

/// A map's value appended to its text: a string as it is, or a list of
/// strings joined by newlines (as [`TextListMapBuilder::insert`] joins them).
enum AppendValue<'b> {
    Text(&'b mut String),
    List(&'b mut String),
}

impl<'de> DeserializeSeed<'de> for AppendValue<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self {
            Self::Text(text) => d.deserialize_str(AppendStr(text)),
            Self::List(text) => d.deserialize_seq(AppendList(text)),
        }
    }
}

/// A list of strings appended to a buffer, newline-separated.
struct AppendList<'b>(&'b mut String);

impl<'de> Visitor<'de> for AppendList<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut first = true;
        loop {
            let before = self.0.len();
            if !first {
                self.0.push('\n');
            }
            if seq.next_element_seed(AppendStr(self.0))?.is_none() {
                self.0.truncate(before);
                return Ok(());
            }
            first = false;
        }
    }
}
