//! Parsing JSON text into a [`Value`] while noticing repeated keys.
//!
//! serde_json keeps the last of two equal keys in an object without a word;
//! a registry file that says two things about one module must be refused.
//! Noticing it while parsing costs nothing extra, where scanning every file
//! again for positions cost a fifth of loading a million-module registry;
//! the positions are scanned only for files that have something to report.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The value `src` holds, and whether some object in it repeats a key.
/// Errors are serde_json's (syntax, trailing characters, nesting depth).
pub fn parse(src: &str) -> Result<(Value, bool), serde_json::Error> {
    let repeated = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(src);
    let value = Seed(&repeated).deserialize(&mut de)?;
    de.end()?;
    Ok((value, repeated.get()))
}

/// Builds a value as serde_json's own does, flagging repeated keys.
#[derive(Clone, Copy)]
struct Seed<'f>(&'f Cell<bool>);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if object.insert(key, value).is_some() {
                self.0.set(true);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_serde_jsons_and_repeated_keys_are_noticed_at_any_depth() {
        let src =
            r#"{"a": [1, -2, 2.5, 18446744073709551615, true, null, "s\u00e9"], "b": {"c": {}}}"#;
        let (value, repeated) = parse(src).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(src).unwrap());
        assert!(!repeated);
        // Key order is the file's, as serde_json's (preserve_order) keeps it.
        let keys: Vec<_> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "b"]);
        for src in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"m": {"x": {"gist": "1", "gist": "2"}}}"#,
            r#"[{"k": 1}, {"k": 1, "k": 1}]"#,
        ] {
            let (value, repeated) = parse(src).unwrap();
            assert!(repeated, "{src}");
            // Otherwise the same value serde_json makes (the last one kept).
            assert_eq!(value, serde_json::from_str::<Value>(src).unwrap(), "{src}");
        }
        // Equal keys in different objects are no repeat.
        assert!(!parse(r#"[{"k": 1}, {"k": 2}]"#).unwrap().1);
    }

    #[test]
    fn errors_are_serde_jsons_with_their_positions() {
        for src in ["{\"a\": 1,}", "[1] 2", "{\"a\":\n  tru}", ""] {
            let ours = parse(src).unwrap_err();
            let theirs = serde_json::from_str::<Value>(src).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{src:?}");
            assert_eq!(
                (ours.line(), ours.column()),
                (theirs.line(), theirs.column())
            );
        }
        // Nesting is capped as serde_json caps it: no stack overflow.
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
    }
}
