use super::*;
use anyhow::bail;
use serde_json::json;

/// Hands a document over `chunk` bytes at a time (to cross window edges).
struct Trickle<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(out.len()).min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Everything a visitor saw, as `key`, `key[index]` or `key.name` → JSON.
#[derive(Default)]
struct Seen {
    elements_of: Vec<&'static str>,
    skip: Vec<&'static str>,
    seen: Vec<(String, serde_json::Value)>,
}

impl ObjectVisitor for Seen {
    fn field(&mut self, key: &str) -> Result<Field> {
        Ok(if self.elements_of.contains(&key) {
            Field::Elements
        } else if self.skip.contains(&key) {
            Field::Skip
        } else {
            Field::Whole
        })
    }

    fn value(&mut self, key: &str, value: Value<'_>) -> Result<()> {
        self.seen.push((key.to_string(), value.parse()?));
        Ok(())
    }

    fn element(
        &mut self,
        key: &str,
        index: usize,
        name: Option<&str>,
        value: Value<'_>,
    ) -> Result<()> {
        let at = match name {
            Some(name) => format!("{key}.{name}"),
            None => format!("{key}[{index}]"),
        };
        if value.raw() == "\"refuse\"" {
            bail!("refused {at}");
        }
        self.seen.push((at, value.parse()?));
        Ok(())
    }
}

fn read(doc: &str, chunk: usize, visitor: &mut Seen) -> Result<()> {
    let reader = Trickle {
        bytes: doc.as_bytes(),
        chunk,
    };
    read_object(reader, "the manifest", visitor)
}

fn visitor() -> Seen {
    Seen {
        elements_of: vec!["modules", "members"],
        skip: vec!["ignored"],
        ..Seen::default()
    }
}

#[test]
fn fields_and_elements_come_as_the_document_spells_them_whatever_the_reads() {
    let doc = r#" {"serial": 7, "created":"2026-01-01T00:00:00Z",
      "modules": [ {"name": "a \"quoted\" \\ name ]}", "deps": [[], {}]},
                   {"name":"b\u00e9", "n": -1.5e3}, "x", null, true ],
      "ignored": {"deep": [1, {"k": "]"}]}, "members": {"p/1": {"s": 1}, "p\"2": 2},
      "after": [1,2] }
    "#;
    let want = vec![
        ("serial".to_string(), json!(7)),
        ("created".into(), json!("2026-01-01T00:00:00Z")),
        (
            "modules[0]".into(),
            json!({"name": "a \"quoted\" \\ name ]}", "deps": [[], {}]}),
        ),
        ("modules[1]".into(), json!({"name": "bé", "n": -1500.0})),
        ("modules[2]".into(), json!("x")),
        ("modules[3]".into(), json!(null)),
        ("modules[4]".into(), json!(true)),
        ("members.p/1".into(), json!({"s": 1})),
        ("members.p\"2".into(), json!(2)),
        ("after".into(), json!([1, 2])),
    ];
    for chunk in [1, 2, 3, 7, 64, 1 << 20] {
        let mut seen = visitor();
        read(doc, chunk, &mut seen).unwrap();
        assert_eq!(seen.seen, want, "reads of {chunk} bytes");
    }
}

#[test]
fn empty_objects_and_lists_and_values_larger_than_the_window() {
    let mut seen = visitor();
    read(r#"{"modules": [], "members": {}}"#, 5, &mut seen).unwrap();
    assert!(seen.seen.is_empty());
    let mut seen = visitor();
    read("{}", 1, &mut seen).unwrap();
    // A record three windows long, read a few bytes at a time.
    let long = "x".repeat(3 * WINDOW);
    let doc = format!(r#"{{"modules": [{{"text": "{long}"}}, 1]}}"#);
    let mut seen = visitor();
    read(&doc, 4096, &mut seen).unwrap();
    assert_eq!(seen.seen[0].1["text"].as_str().unwrap().len(), long.len());
    assert_eq!(seen.seen[1], ("modules[1]".to_string(), json!(1)));
}

fn error(doc: &str) -> String {
    let mut seen = visitor();
    format!("{:#}", read(doc, 3, &mut seen).unwrap_err())
}

#[test]
fn malformed_documents_are_refused_with_their_line_and_column() {
    let cases = [
        ("", "line 1, column 1: expected '{'"),
        ("[1]", "line 1, column 1: expected '{'"),
        ("{\"a\": 1", "line 1, column 8: expected ',' or '}'"),
        ("{\"a\" 1}", "line 1, column 6: expected ':'"),
        ("{a: 1}", "line 1, column 2: expected a string key"),
        ("{\"a\": 1} x", "line 1, column 10: expected nothing after"),
        (
            "{\n\"modules\": [1,\n  2 3]}",
            "line 3, column 5: expected ',' or ']'",
        ),
        (
            "{\n\"modules\": \"no list\"}",
            "line 2, column 12: expected an array or object",
        ),
        ("{\"a\": \"open", "expected the end of a value"),
        // The scanner finds the end; the parser finds what is wrong inside.
        (
            "{\n \"modules\": [{\"k\": tru}]}",
            "the manifest, modules[0] (line 2, column 23): expected ident",
        ),
        (
            "{\"modules\": [1],\n  \"a\": {\"k\": 1]}",
            "the manifest, a (line 2, column 15): expected `,` or `}`",
        ),
        (
            "{\"ignored\": [1, {]}",
            "the manifest, ignored[1] (line 1, column 18):",
        ),
    ];
    for (doc, want) in cases {
        let got = error(doc);
        assert!(got.contains(want), "{doc:?}: {got:?} lacks {want:?}");
    }
}

#[test]
fn text_that_is_not_utf8_is_refused() {
    let mut doc = br#"{"modules": [""#.to_vec();
    doc.extend([0xff, 0xfe]);
    doc.extend(br#""]}"#);
    let reader = Trickle {
        bytes: &doc,
        chunk: 1 << 20,
    };
    let err = read_object(reader, "the manifest", &mut visitor()).unwrap_err();
    assert!(err.to_string().contains("expected UTF-8 text"), "{err}");
}

#[test]
fn the_visitors_own_errors_come_back_as_they_are() {
    let err = error(r#"{"modules": [1, "refuse", 3]}"#);
    assert_eq!(err, "refused modules[1]");
}

#[test]
fn a_value_past_the_cap_is_refused_without_reading_on() {
    // Endless text inside one string: refused once the window would pass the cap.
    struct Endless;
    impl Read for Endless {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            out.fill(b'x');
            Ok(out.len())
        }
    }
    let doc = std::io::Cursor::new(br#"{"modules": [""#.to_vec()).chain(Endless);
    let err = read_object(doc, "the manifest", &mut visitor()).unwrap_err();
    assert!(err.to_string().contains("larger than 64 MiB"), "{err}");
}
