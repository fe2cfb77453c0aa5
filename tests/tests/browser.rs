//! The web page in headless Chromium, against a site built from the
//! examples and served on loopback (and from file://): a module page worth
//! reading (rendered and sanitised documentation, the import line and its
//! copy button, source link, tags and authors, dates, revisions and
//! versions with their advisories), inert injected HTML, unknown modules.
//! Search, listings and layout are in browser_find.rs and browser_layout.rs.

use std::path::Path;

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::webdriver::{Browser, browser_or_skip};
use mlld_e2e::{build_examples, build_from, build_time, demo_key, examples, workspace_root};
use serde_json::{Value, json};

fn shot(b: &Browser, name: &str) {
    b.screenshot(&workspace_root().join(format!("target/browser/{name}.png")))
        .unwrap();
}

/// Sets the search box as a user would and waits for the results to settle.
fn search(b: &Browser, query: &str) {
    b.eval(&format!("const q = document.getElementById('q'); q.value = {}; q.dispatchEvent(new Event('input')); return 1", json!(query))).unwrap();
    b.wait_for(&format!(
        "return new URLSearchParams(location.hash.split('?')[1] || '').get('q') === {}",
        json!(query)
    ))
    .unwrap();
}

/// The examples' gists with hostile Markdown in prompt-kit's README.
fn gists_with_hostile_readme(dir: &Path) -> std::path::PathBuf {
    let gists = dir.join("gists");
    mlld_e2e::copy_dir(&examples().join("gists"), &gists);
    let path = gists.join("bb37439abcc06aa19c9230dd144038b6.json");
    let mut gist: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let readme = concat!(
        "# prompt-kit\n\n<script>window.alerted = true</script>\n\n",
        "<img src=\"https://evil.example/pixel.png\" onerror=\"window.alerted = true\">\n\n",
        "<a href=\"https://example.org/\" onmouseover=\"window.alerted = true\">docs</a> ",
        "[click](javascript:window.alerted=true)\n\n",
        "![tracker](https://evil.example/t.gif)\n\n```mlld\n/show @x <b>not bold</b>\n```\n",
    );
    gist["files"]["README.md"]["content"] = json!(readme);
    gist["files"]["README.md"]["size"] = json!(readme.len());
    std::fs::write(&path, serde_json::to_vec_pretty(&gist).unwrap()).unwrap();
    gists
}

#[test]
fn a_module_page_worth_reading() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let gists = gists_with_hostile_readme(dir.path());
    build_from(
        &site,
        None,
        build_time(),
        demo_key(),
        &examples().join("registry"),
        &gists,
    );
    let server = HttpServer::start(static_files(site.clone()));
    b.goto(&format!("{}/#/sarah-k/llm-cache", server.url()))
        .unwrap();
    b.wait_for("return document.getElementById('advisories')")
        .unwrap();
    let advisory = b
        .eval("return document.getElementById('advisories').textContent")
        .unwrap();
    assert!(
        advisory
            .as_str()
            .unwrap()
            .contains("2024-001 [high] cache-poisoning"),
        "{advisory}"
    );
    // The import line runs in today's mlld, and the button copies exactly it.
    let line = b
        .eval("return document.getElementById('import-line').textContent")
        .unwrap();
    let line = line.as_str().unwrap();
    assert!(
        line.starts_with("/import { @") && line.ends_with(" } from @sarah-k/llm-cache"),
        "{line}"
    );
    b.eval("window.copied = null; Object.defineProperty(navigator, 'clipboard', { value: { writeText: (t) => { window.copied = t; return Promise.resolve(); } } }); return 1").unwrap();
    b.click("#copy-import").unwrap();
    b.wait_for("return document.getElementById('copy-import').textContent === 'Copied'")
        .unwrap();
    assert_eq!(b.eval("return window.copied").unwrap(), json!(line));
    // The module's text, read from its loose blob, shown as text.
    let recorded: Value = serde_json::from_slice(
        &std::fs::read(gists.join("27eea315972f5c49098c7b5b05f531dc.json")).unwrap(),
    )
    .unwrap();
    let text = b
        .wait_for("const c = document.getElementById('content'); return c && c.textContent")
        .unwrap();
    assert_eq!(text, recorded["files"]["llm-cache.mld"]["content"]);
    // Its dependents, from the file of their bucket, loaded beside the page.
    let dependents = b
        .wait_for("const d = document.querySelectorAll('#dependents a'); return d.length && [...d].map(a => [a.getAttribute('href'), a.textContent])")
        .unwrap();
    assert_eq!(
        dependents,
        json!([["#/sarah-k/eval-report", "sarah-k/eval-report"]])
    );
    // The page finds a bucket as the indexer does: FNV-1a of the name's UTF-8.
    let fnv1a = |text: &str| {
        (text.bytes()).fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    };
    let names = ["a", "foobar", "sarah-k/llm-cache", "ünï-cödé/名前"];
    let buckets = b
        .eval(&format!(
            "return {}.map(n => [mlldPage.bucketOf(n, 16), mlldPage.bucketOf(n, 0), mlldPage.bucketOf(n, 31)])",
            json!(names)
        ))
        .unwrap();
    let expected: Vec<[u32; 3]> = (names.iter())
        .map(|n| [fnv1a(n) & 0xffff, 0, fnv1a(n) & 0x7fff_ffff])
        .collect();
    assert_eq!(buckets, json!(expected));
    assert_eq!(expected[0][0], 0x292c, "FNV-1a of \"a\" is e40c292c");
    // Source, tags and author as links; dates readable, exact on hover.
    let source = b
        .eval("const a = document.querySelector('.source a'); return [a.href, a.rel]")
        .unwrap();
    assert!(
        source[0]
            .as_str()
            .unwrap()
            .starts_with("https://gist.github.com/sarah-k/27eea315972f5c49098c7b5b05f531dc/"),
        "{source}"
    );
    assert_eq!(source[1], "nofollow noopener");
    let tags = b
        .eval("return [...document.querySelectorAll('#module .tags a')].map(a => a.getAttribute('href'))")
        .unwrap();
    assert!(
        tags.as_array().unwrap().contains(&json!("#/?q=tag%3Allm")),
        "{tags}"
    );
    let dates = b
        .eval("return [...document.querySelectorAll('#module time')].map(t => [t.textContent, t.title])")
        .unwrap();
    let first = &dates[0];
    assert!(
        first[1].as_str().unwrap().ends_with(" UTC") && first[0].as_str().unwrap().contains(", 20"),
        "{dates}"
    );
    // Every revision shows the advisory that affects it.
    let revisions = b
        .eval("return [...document.querySelectorAll('#revisions tbody tr')].map(r => r.querySelector('.adv').textContent)")
        .unwrap();
    assert!(!revisions.as_array().unwrap().is_empty());
    assert!(
        revisions
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r == "2024-001"),
        "{revisions}"
    );
    let deps = b
        .eval("return [...document.querySelectorAll('#module ul a')].map(a => a.textContent)")
        .unwrap();
    assert_eq!(
        deps,
        json!(["adamavenir/json-utils", "sarah-k/eval-report"])
    );
    shot(&b, "module-page");
    // The author link lists the author's modules.
    b.click("#module dl.meta dd a").unwrap();
    b.wait_for("return document.getElementById('list-title').textContent === 'Modules by sarah-k' && document.querySelectorAll('#results li').length === 4").unwrap();

    // Rendered documentation: hostile Markdown is inert.
    b.eval("window.alerted = false; window.alert = () => { window.alerted = true; }; location.hash = '#/mlld-lang/prompt-kit'; return 1").unwrap();
    b.wait_for("return document.getElementById('doc')").unwrap();
    let doc = b
        .eval("const d = document.getElementById('doc'); return { h1: d.querySelector('h1') && d.querySelector('h1').textContent, active: d.querySelectorAll('script, img, iframe, [onerror], [onmouseover], [onclick]').length, js: [...d.querySelectorAll('a')].filter(a => /^javascript:/i.test(a.getAttribute('href') || '')).length, rels: [...d.querySelectorAll('a[href]')].map(a => a.rel), image: [...d.querySelectorAll('a')].some(a => a.textContent === 'image: tracker' && a.href === 'https://evil.example/t.gif'), code: d.querySelector('pre code').textContent, bold: d.querySelectorAll('pre b').length }")
        .unwrap();
    assert_eq!(doc["h1"], "prompt-kit", "{doc}");
    assert_eq!(doc["active"], 0, "{doc}");
    assert_eq!(doc["js"], 0, "{doc}");
    assert_eq!(doc["image"], true, "remote images become links: {doc}");
    assert!(
        doc["rels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r == "nofollow noopener"),
        "{doc}"
    );
    assert_eq!(doc["code"], "/show @x <b>not bold</b>\n", "{doc}");
    assert_eq!(doc["bold"], 0);
    let images = b
        .eval("return performance.getEntriesByType('resource').filter(r => r.name.includes('evil.example')).length")
        .unwrap();
    assert_eq!(
        images,
        json!(0),
        "nothing was fetched from the README's hosts"
    );
    assert_eq!(b.eval("return window.alerted").unwrap(), json!(false));
    shot(&b, "module-readme");

    // A `.mld.md` module reads as Markdown, its code as code.
    b.eval("location.hash = '#/textkit/md-toc'; return 1")
        .unwrap();
    let toc = b
        .wait_for("const d = document.getElementById('doc'); return d && [d.querySelector('h1').textContent, [...d.querySelectorAll('pre code')].map(c => c.textContent)]")
        .unwrap();
    assert_eq!(toc[0], "md-toc");
    assert!(
        toc[1].as_array().unwrap().iter().any(|c| c
            .as_str()
            .unwrap()
            .starts_with("/import { @wrap } from @textkit/text-wrap")),
        "{toc}"
    );
    assert_eq!(
        b.eval("return document.getElementById('content')").unwrap(),
        Value::Null,
        "shown once"
    );

    // Injected HTML in a description is text, not markup.
    b.eval("location.hash = '#/nora-ml/llm-summarize'; return 1")
        .unwrap();
    let desc = b
        .wait_for("const d = document.querySelector('#module .desc'); return d && d.textContent")
        .unwrap();
    assert!(
        desc.as_str()
            .unwrap()
            .contains("<script>alert(1)</script> <b>bold</b>"),
        "{desc}"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('#module .desc b, #module .desc script').length")
            .unwrap(),
        json!(0)
    );
    search(&b, "summaries");
    b.wait_for("const a = document.querySelector('#results li .name'); return a && a.textContent === 'nora-ml/llm-summarize'").unwrap();
    assert_eq!(
        b.eval("return document.querySelectorAll('#results b, #results script').length")
            .unwrap(),
        json!(0)
    );
    assert_eq!(b.eval("return window.alerted").unwrap(), json!(false));
    shot(&b, "search-escaped");
}

#[test]
fn an_unknown_module_says_so_and_suggests_near_names() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    for base in [
        server.url(),
        format!("file://{}/index.html", dir.path().display()),
    ] {
        b.goto(&format!("{base}#/sarah-k/llm-cahce")).unwrap();
        let near = b
            .wait_for("const n = document.querySelector('#near ul'); return n && [document.querySelector('#module h2').textContent, [...n.querySelectorAll('a')].map(a => a.textContent)]")
            .unwrap();
        assert_eq!(near[0], "No module named sarah-k/llm-cahce", "{base}");
        assert_eq!(near[1][0], "sarah-k/llm-cache", "{near}");
    }
    shot(&b, "unknown-module");
    // A name that cannot be a path is unknown at once, with no request.
    b.eval("location.hash = '#/..%2F..%2Fetc/passwd'; return 1")
        .unwrap();
    b.wait_for("const h = document.querySelector('#module h2'); return h && h.textContent.startsWith('No module named')").unwrap();
}

#[test]
fn the_page_works_from_file_urls() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    b.goto(&format!(
        "file://{}/index.html#/textkit/string-case",
        dir.path().display()
    ))
    .unwrap();
    let title = b
        .wait_for("const n = document.querySelector('#module .name'); return n && n.textContent")
        .unwrap();
    assert_eq!(title, json!("textkit/string-case"));
    // A page opened from a file may not read the blob: it shows it in a
    // sandboxed frame, with a link.
    let frame = b
        .wait_for("const f = document.getElementById('content-frame'); return f && [f.getAttribute('src'), f.getAttribute('sandbox'), f.nextElementSibling.querySelector('a').getAttribute('href')]")
        .unwrap();
    let src = frame[0].as_str().unwrap();
    assert!(src.starts_with("blobs/sha256/"), "{frame}");
    assert_eq!(frame[1], json!(""), "no scripts in the frame");
    assert_eq!(frame[2], frame[0]);
    assert!(
        std::fs::read_to_string(dir.path().join(src))
            .unwrap()
            .contains("@camelCase"),
        "the frame shows the module's text"
    );
    // The dependents' bucket is a script too: it loads from a file.
    let dependents = b
        .wait_for("const h = document.querySelector('#dependents h3'); return h && /\\(\\d+\\)$/.test(h.textContent) && h.textContent")
        .unwrap();
    assert!(
        dependents.as_str().unwrap().starts_with("Dependents ("),
        "{dependents}"
    );
    b.eval("location.hash = '#/'; return 1").unwrap();
    b.wait_for("return document.getElementById('summary').textContent.includes('24 of 24')")
        .unwrap();
}

/// A bucket that cannot be loaded says so and leaves the rest of the page
/// whole; the next module of that bucket asks for it again.
#[test]
fn dependents_that_cannot_be_loaded_say_so_and_are_asked_for_again() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let bucket = dir.path().join("data/dependents/0/0.js");
    let kept = std::fs::read(&bucket).unwrap();
    std::fs::remove_file(&bucket).unwrap();
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    b.goto(&format!("{}/#/sarah-k/llm-cache", server.url()))
        .unwrap();
    let failed = b
        .wait_for("const d = document.getElementById('dependents'); return d && d.textContent.includes('Could not') && document.getElementById('content') && d.textContent")
        .unwrap();
    assert_eq!(failed, json!("DependentsCould not load the dependents."));
    std::fs::write(&bucket, kept).unwrap();
    b.eval("location.hash = '#/sarah-k/eval-report'; return 1")
        .unwrap();
    b.wait_for("const n = document.querySelector('#module .name'); return n && n.textContent === 'sarah-k/eval-report'")
        .unwrap();
    b.eval("location.hash = '#/sarah-k/llm-cache'; return 1")
        .unwrap();
    let links = b
        .wait_for("const d = document.querySelectorAll('#dependents a'); return d.length && [...d].map(a => a.textContent)")
        .unwrap();
    assert_eq!(links, json!(["sarah-k/eval-report"]));
}

#[test]
fn versioned_modules_in_search_and_on_their_page() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Hostile text in a versioned module's metadata stays text.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    let metadata = registry.join("modules/alice-dev/prompt-lib/metadata.json");
    let mut json: Value = serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    json["about"] =
        json!("Prompt templates <img src=x onerror=\"window.alerted=true\"> <b>bold</b>");
    std::fs::write(&metadata, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    // An advisory on the versioned json-utils.
    let advisories = registry.join("adamavenir/advisories.json");
    let mut file: Value = serde_json::from_slice(&std::fs::read(&advisories).unwrap()).unwrap();
    file["advisories"] = json!([{
        "id": "2025-007", "created": "2025-08-01T09:30:00Z", "severity": "high",
        "affects": ["json-utils"], "type": "prototype-pollution",
        "description": "@getPath follows __proto__.", "recommendation": "Update."
    }]);
    std::fs::write(&advisories, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    let site = dir.path().join("site");
    mlld_e2e::build_with(&site, None, build_time(), demo_key(), &registry);
    let server = HttpServer::start(static_files(site.clone()));
    b.goto(&format!("{}/", server.url())).unwrap();
    b.wait_for(
        "return document.getElementById('summary').textContent.includes('5 of 5 versioned')",
    )
    .unwrap();

    search(&b, "prompt-lib");
    let first = b.wait_for("const a = document.querySelector('#results li .name'); return a && [a.textContent, a.parentNode.querySelector('.version').textContent]").unwrap();
    assert_eq!(first, json!(["@alice-dev/prompt-lib", "1.2.0"]));
    assert_eq!(
        b.eval("return document.querySelectorAll('#results img, #results b').length")
            .unwrap(),
        json!(0),
        "the listing shows hostile text as text"
    );
    b.eval("window.alerted = false; window.alert = () => { window.alerted = true; }; return 1")
        .unwrap();
    b.click("#results li .name").unwrap();
    b.wait_for(
        "return location.hash === '#/@alice-dev/prompt-lib' && document.getElementById('versions')",
    )
    .unwrap();
    let versions = b
        .eval("return [...document.querySelectorAll('#versions tbody tr')].map(r => [...r.children].map(c => c.querySelector('time') ? c.querySelector('time').title : c.textContent))")
        .unwrap();
    assert_eq!(
        versions,
        json!([
            [
                "1.3.0-beta.1",
                "2025-10-01 12:00:00 UTC",
                "beta",
                "js",
                "*",
                "CC0",
                ""
            ],
            [
                "1.2.0",
                "2025-07-15 12:00:00 UTC",
                "latest",
                "js",
                ">=2.0.0",
                "CC0",
                ""
            ],
            [
                "1.0.0",
                "2025-05-02 08:00:00 UTC",
                "stable",
                "js",
                ">=2.0.0",
                "CC0",
                ""
            ]
        ])
    );
    let tags = b
        .eval("return [...document.querySelectorAll('#dist-tags li')].map(li => li.textContent)")
        .unwrap();
    assert_eq!(
        tags,
        json!(["beta → 1.3.0-beta.1", "latest → 1.2.0", "stable → 1.0.0"])
    );
    let line = b
        .eval("return document.getElementById('import-line').textContent")
        .unwrap();
    assert!(
        line.as_str()
            .unwrap()
            .ends_with(" } from @alice-dev/prompt-lib@^1.2.0"),
        "{line}"
    );
    let doc = b
        .eval("return document.querySelector('#doc h1').textContent")
        .unwrap();
    assert!(doc.as_str().unwrap().starts_with("prompt-lib"), "{doc}");
    let source = b
        .eval("return document.querySelector('.source a').href")
        .unwrap();
    assert!(source.as_str().unwrap().starts_with("https://"), "{source}");
    let desc = b
        .eval("return document.querySelector('#module .desc').textContent")
        .unwrap();
    assert!(desc.as_str().unwrap().contains("<img src=x"), "{desc}");
    assert_eq!(
        b.eval("return document.querySelectorAll('#module img, #module .desc b').length")
            .unwrap(),
        json!(0)
    );
    assert_eq!(b.eval("return window.alerted").unwrap(), json!(false));
    let files = b
        .eval("return [...document.querySelectorAll('#files td:first-child')].map(c => c.textContent)")
        .unwrap();
    assert!(
        files.as_array().unwrap().contains(&json!("index.mld")),
        "{files}"
    );
    shot(&b, "versioned-page");

    // The advisory shows on every version it affects.
    b.eval("location.hash = '#/@adamavenir/json-utils'; return 1")
        .unwrap();
    let affected = b
        .wait_for("const rows = [...document.querySelectorAll('#versions tbody tr')]; return rows.length && document.getElementById('advisories') && rows.map(r => r.querySelector('.adv').textContent)")
        .unwrap();
    let affected = affected.as_array().unwrap();
    assert!(affected.len() >= 2, "{affected:?}");
    assert!(affected.iter().all(|a| a == "2025-007"), "{affected:?}");

    // From file:// too.
    b.goto(&format!(
        "file://{}/index.html#/@alice-dev/table-fmt",
        site.display()
    ))
    .unwrap();
    let title = b
        .wait_for("const n = document.querySelector('#module .name'); return n && n.textContent")
        .unwrap();
    assert_eq!(title, json!("@alice-dev/table-fmt"));
}
