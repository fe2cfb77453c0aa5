//! What the page derives instead of the site storing it (`derive` in
//! site/module.js): the import line (and what the copy button copies), the
//! source link, the loose blob with the module's text and the current
//! revision's row, for a Phase-1 and a versioned module; and the import
//! line and source link rules on their edge cases.

use std::path::Path;

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::webdriver::{Browser, browser_or_skip};
use mlld_e2e::{build_examples, build_time};
use serde_json::{Value, json};

/// The JSON a `modules/…js` page file hands to `mlldRegistry.module`.
fn page_data(site: &Path, full: &str) -> Value {
    let text = std::fs::read_to_string(site.join(format!("modules/{full}.js"))).unwrap();
    let json = text
        .trim()
        .strip_prefix("mlldRegistry.module(")
        .and_then(|t| t.strip_suffix(");"))
        .unwrap();
    serde_json::from_str(json).unwrap()
}

fn exports(page: &Value) -> String {
    let names: Vec<&str> = page["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(!names.is_empty(), "{page}");
    names.join(", ")
}

/// The import line shown, and what the copy button puts on the clipboard.
fn shown_and_copied_import(b: &Browser) -> (Value, Value) {
    let shown = b
        .eval("return document.getElementById('import-line').textContent")
        .unwrap();
    b.eval("window.copied = null; Object.defineProperty(navigator, 'clipboard', { configurable: true, value: { writeText: (t) => { window.copied = t; return Promise.resolve(); } } }); return 1").unwrap();
    b.click("#copy-import").unwrap();
    let copied = b.wait_for("return window.copied").unwrap();
    (shown, copied)
}

#[test]
fn the_page_derives_the_import_line_source_and_text_of_a_phase_1_module() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let page = page_data(dir.path(), "sarah-k/llm-cache");
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    b.goto(&format!("{}/#/sarah-k/llm-cache", server.url()))
        .unwrap();
    let text = b
        .wait_for("const c = document.getElementById('content'); return c && c.textContent")
        .unwrap();

    let line = format!("/import {{ {} }} from @sarah-k/llm-cache", exports(&page));
    let (shown, copied) = shown_and_copied_import(&b);
    assert_eq!(shown, json!(line));
    assert_eq!(copied, json!(line), "the button copies exactly the line");

    let revision = page["revision"].as_str().unwrap();
    let source = b
        .eval("return document.querySelector('.source a').getAttribute('href')")
        .unwrap();
    assert_eq!(
        source,
        json!(format!(
            "https://gist.github.com/sarah-k/27eea315972f5c49098c7b5b05f531dc/{revision}"
        ))
    );

    // The text shown is the loose blob the integrity names.
    let hex = page["integrity"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let blob = dir
        .path()
        .join(format!("blobs/sha256/{}/{}", &hex[..2], &hex[2..]));
    assert_eq!(text, json!(std::fs::read_to_string(blob).unwrap()));

    // The revisions table: the current revision first, then the history.
    let rows = b
        .eval("return [...document.querySelectorAll('#revisions tbody tr')].map(r => [r.querySelector('code').title, r.children[2].textContent])")
        .unwrap();
    let history = page["history"].as_array().map_or(0, Vec::len);
    assert_eq!(rows.as_array().unwrap().len(), 1 + history, "{rows}");
    assert_eq!(rows[0], json!([revision, page["size"].to_string()]));
}

#[test]
fn the_page_derives_a_pinned_import_line_and_the_source_of_a_versioned_module() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let page = page_data(dir.path(), "@alice-dev/prompt-lib");
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    b.goto(&format!("{}/#/@alice-dev/prompt-lib", server.url()))
        .unwrap();
    b.wait_for("const c = document.getElementById('content'); return c && c.textContent")
        .unwrap();

    let line = format!(
        "/import {{ {} }} from @alice-dev/prompt-lib@^1.2.0",
        exports(&page)
    );
    let (shown, copied) = shown_and_copied_import(&b);
    assert_eq!(shown, json!(line));
    assert_eq!(copied, json!(line), "the button copies exactly the line");

    let source = b
        .eval("return document.querySelector('.source a').getAttribute('href')")
        .unwrap();
    assert_eq!(
        source,
        json!(
            "https://github.com/alice-dev/mlld-modules/tree/03f02b131fc1f1983919381320aae8f3b2558693/prompt-lib"
        )
    );
    let frame = b
        .eval("return document.querySelector('#content-box') !== null")
        .unwrap();
    assert_eq!(frame, json!(true), "the entry file's text is shown");
}

#[test]
fn import_lines_and_source_links_follow_the_rules() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    b.goto(&format!("{}/#/sarah-k/llm-cache", server.url()))
        .unwrap();
    b.wait_for("return document.getElementById('import-line')")
        .unwrap();
    let lines = b
        .eval(
            "const m = mlldModulePage; return [
               m.importLine('sarah-k/llm-cache', ['@a', '@b']),
               m.importLine('@alice-dev/prompt-lib', ['@a', '@b'], m.pinRange('1.2.0')),
               m.importLine('jdoe/2fa-codes', [], m.pinRange('1.0.0-beta.1')),
               m.importLine('jdoe/json-utils', []),
             ]",
        )
        .unwrap();
    assert_eq!(
        lines,
        json!([
            "/import { @a, @b } from @sarah-k/llm-cache",
            "/import { @a, @b } from @alice-dev/prompt-lib@^1.2.0",
            "/import @jdoe/2fa-codes@1.0.0-beta.1 as @m2faCodes",
            "/import @jdoe/json-utils as @jsonUtils",
        ])
    );
    let sources = b
        .eval(
            "const s = (type, repository, path) => mlldModulePage.sourceUrl({ type, url: 'u', repository, commit: 'c0ffee', path }, 'a'); return [
               s('directory', 'https://github.com/a/r.git', 'mods/x/'),
               s('github', 'https://github.com/a/r', 'x.mld'),
               s('github', 'https://github.com/a/r/', ''),
               s('gist', null, ''),
               s('github', 'javascript:alert(1)', 'x'),
               s('github', 'https://github.com/a/r\" onclick=\"x', 'x'),
               s('github', null, 'x'),
             ]",
        )
        .unwrap();
    assert_eq!(
        sources,
        json!([
            "https://github.com/a/r/tree/c0ffee/mods/x",
            "https://github.com/a/r/blob/c0ffee/x.mld",
            "https://github.com/a/r/tree/c0ffee",
            "https://gist.github.com/a/u/c0ffee",
            null,
            null,
            null,
        ])
    );
}
