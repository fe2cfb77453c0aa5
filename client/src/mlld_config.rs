//! A project's `mlld-config.json` (at the project root): its
//! `dependencies` (`{"@author/name": "range or tag"}`) are imports too.
//! Every other key belongs to mlld and is left alone.

use std::path::Path;

use mlld_schemas::import_ref::RefForm;
use mlld_schemas::locate::SpanTree;
use mlld_schemas::{JsonPath, ModuleRef};
use serde_json::Value;

use crate::scan::{Found, Problem};
use crate::workflow::Request;

pub const MLLD_CONFIG: &str = "mlld-config.json";

/// The dependencies `mlld-config.json` declares, with the line of each, and
/// every problem in it (file, JSON path and line:column).
pub fn dependencies(root: &Path) -> (Vec<Found>, Vec<Problem>) {
    let path = root.join(MLLD_CONFIG);
    // A regular file only (a FIFO would hang install); not UTF-8 names its position.
    let text = match crate::input::read_text(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return (vec![], vec![]),
        Err(e) => {
            return (
                vec![],
                vec![problem(0, 0, "$", &format!("cannot be read: {e:#}"))],
            );
        }
    };
    parse(&text)
}

fn problem(line: usize, column: usize, path: &str, message: &str) -> Problem {
    Problem {
        file: MLLD_CONFIG.into(),
        line,
        column: Some(column),
        message: format!("{path}: {message}"),
    }
}

/// [`dependencies`] of the text of `mlld-config.json`.
pub fn parse(text: &str) -> (Vec<Found>, Vec<Problem>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("invalid JSON: {e}; fix the file");
            return (vec![], vec![problem(e.line(), e.column(), "$", &msg)]);
        }
    };
    let spans = SpanTree::parse(text);
    let at = |p: &JsonPath| spans.as_ref().and_then(|s| s.position(p)).unwrap_or((1, 1));
    let deps_path = JsonPath::root().key("dependencies");
    // JSON keeps a repeated key's last value: which version was meant (or
    // whether there are dependencies at all) is the user's to say.
    let mut problems = repeated_keys(spans.as_ref(), &deps_path);
    let deps = match value.get("dependencies") {
        None | Some(Value::Null) => return (vec![], problems),
        Some(Value::Object(map)) => map,
        Some(_) => {
            let (l, c) = at(&deps_path);
            let msg = "must be an object of \"@author/name\": \"range or tag\"";
            problems.push(problem(l, c, &deps_path.to_string(), msg));
            return (vec![], problems);
        }
    };
    let mut found = Vec::new();
    for (name, wanted) in deps {
        let path = deps_path.key(name.clone());
        let (line, column) = at(&path);
        let bad = |msg: String| problem(line, column, &path.to_string(), &msg);
        let Some(wanted) = wanted.as_str() else {
            problems.push(bad(
                "the value must be a string: a version, range or tag".into()
            ));
            continue;
        };
        let reference = match ModuleRef::parse(name) {
            Ok(r) if name.starts_with('@') && r.pin.is_none() => r,
            Ok(_) => {
                problems.push(bad(format!(
                    "`{}` must be written @author/name, without a pin (the value holds the version)",
                    name.escape_debug()
                )));
                continue;
            }
            Err(e) => {
                problems.push(bad(e.to_string()));
                continue;
            }
        };
        if let Err(e) = mlld_schemas::VersionSpec::parse(wanted) {
            problems.push(bad(e));
            continue;
        }
        let pin =
            (!wanted.trim().is_empty() && wanted.trim() != "*").then(|| wanted.trim().to_string());
        found.push(Found {
            request: Request {
                reference: ModuleRef { pin, ..reference },
                form: RefForm::At,
            },
            file: MLLD_CONFIG.into(),
            line,
        });
    }
    (found, problems)
}

/// `dependencies` written twice, or a key in it: each where it repeats.
fn repeated_keys(spans: Option<&SpanTree>, deps_path: &JsonPath) -> Vec<Problem> {
    let ours = |p: &JsonPath| p.0.len() <= 2 && p.0.first() == deps_path.0.first();
    let repeats = spans.into_iter().flat_map(|s| &s.duplicates);
    (repeats.filter(|(p, ..)| ours(p)))
        .map(|(path, line, column)| {
            let msg = "is written twice; keep the one you mean";
            problem(*line, *column, &path.to_string(), msg)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_written_twice_is_a_problem_at_the_second() {
        let text = "{\"dependencies\": {\n  \"@a/x\": \"^1\",\n  \"@a/x\": \"^2\"\n},\n\"other\": 1, \"other\": 2}";
        let (_, problems) = parse(text);
        let located: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            located.len(),
            1,
            "mlld's own keys are left alone: {located:?}"
        );
        assert!(
            located[0]
                .starts_with("mlld-config.json:3:3: $.dependencies[\"@a/x\"]: is written twice"),
            "{located:?}"
        );
        let text = "{\"dependencies\": {\"@a/x\": \"^1\"},\n \"dependencies\": null}";
        let (found, problems) = parse(text);
        assert!(found.is_empty());
        let located: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(located.len(), 1, "{located:?}");
        assert!(
            located[0].starts_with("mlld-config.json:2:2: $.dependencies: is written twice"),
            "{located:?}"
        );
    }

    #[test]
    fn dependencies_become_imports_and_problems_are_located() {
        let text = "{\n  \"name\": \"demo\",\n  \"dependencies\": {\n    \"@alice/tool\": \"^1.2\",\n    \"@bob/x\": \">=1.0.0 <2\",\n    \"@carol/y\": \"stable\",\n    \"@dave/z\": 3,\n    \"@erin/../w\": \"1.0.0\",\n    \"@frank/v\": \"^^1\"\n  }\n}";
        let (found, problems) = parse(text);
        let refs: Vec<(String, usize)> = found
            .iter()
            .map(|f| (f.request.reference.to_string(), f.line))
            .collect();
        assert_eq!(
            refs,
            [
                ("@alice/tool@^1.2".to_string(), 4),
                ("@bob/x@>=1.0.0 <2".to_string(), 5),
                ("@carol/y@stable".to_string(), 6)
            ]
        );
        let located: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(located.len(), 3, "{located:?}");
        assert!(
            located[0].starts_with("mlld-config.json:7:16: $.dependencies[\"@dave/z\"]"),
            "{located:?}"
        );
        assert!(located[1].starts_with("mlld-config.json:8:"), "{located:?}");
        assert!(located[2].contains("^^1"), "{located:?}");
        let (_, problems) = parse("{\n  \"dependencies\": [\n");
        assert!(
            problems[0].to_string().starts_with("mlld-config.json:3:"),
            "{problems:?}"
        );
    }
}
