//! The web page in headless Chromium, against a site built from the
//! examples and served on loopback (and from file://): search, a module
//! page with an advisory badge, inert injected HTML, the import line, a screenshot.

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::webdriver::{Browser, find_browser};
use mlld_e2e::{build_examples, build_time, workspace_root};
use serde_json::json;

fn browser() -> Option<Browser> {
    let Some((chromium, driver)) = find_browser() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!("no chromium/chromedriver here; skipping the browser test");
        return None;
    };
    Some(Browser::start(&chromium, &driver).expect("headless chromium starts"))
}

#[test]
fn search_module_page_advisories_and_escaping_in_a_real_browser() {
    let Some(b) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    b.goto(&format!("{}/", server.url())).unwrap();
    b.wait_for("return document.getElementById('summary').textContent.includes('24 of 24')")
        .unwrap();
    assert_eq!(
        b.eval("return getComputedStyle(document.getElementById('q')).borderRadius")
            .unwrap(),
        json!("6px"),
        "the stylesheet loaded"
    );

    // Search as you type: the exact name ranks first.
    b.type_into("#q", "json-utils").unwrap();
    let first = b.wait_for("const a = document.querySelector('#results li .name'); return a && document.getElementById('summary').textContent.includes('match') && a.textContent").unwrap();
    assert_eq!(first, json!("adamavenir/json-utils"));
    b.eval("const q = document.getElementById('q'); q.value = 'tag:llm'; q.dispatchEvent(new Event('input')); return 1").unwrap();
    b.wait_for("return [...document.querySelectorAll('#results .name')].some(a => a.textContent === 'sarah-k/llm-judge')").unwrap();
    let tagged = b.eval("return [...document.querySelectorAll('#results .tag')].length > 0 && [...document.querySelectorAll('#results li')].every(li => [...li.querySelectorAll('.tag')].some(t => t.textContent === 'llm'))").unwrap();
    assert_eq!(tagged, json!(true), "every result carries the tag");

    // A module with an advisory: the badge shows in the results and on its page.
    b.eval("const q = document.getElementById('q'); q.value = 'llm-cache'; q.dispatchEvent(new Event('input')); return 1").unwrap();
    b.wait_for("const a = document.querySelector('#results li .name'); return a && a.textContent === 'sarah-k/llm-cache' && document.querySelector('#results li .badge.advisory')").unwrap();
    b.click("#results li .name").unwrap();
    b.wait_for(
        "return location.hash === '#/sarah-k/llm-cache' && document.getElementById('advisories')",
    )
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
    let deps = b
        .eval("return [...document.querySelectorAll('#module ul a')].map(a => a.textContent)")
        .unwrap();
    assert_eq!(
        deps,
        json!(["adamavenir/json-utils", "sarah-k/eval-report"])
    );
    assert_eq!(
        b.eval("return document.getElementById('import-line').textContent")
            .unwrap(),
        json!("@import { ... } from \"mlld://sarah-k/llm-cache\"")
    );
    b.click("#copy-import").unwrap();
    b.wait_for("return document.getElementById('copy-import').textContent === 'Copied'")
        .unwrap();
    b.screenshot(&workspace_root().join("target/browser/module-page.png"))
        .unwrap();

    // Injected HTML in a description is text, not markup.
    b.eval("window.alerted = false; window.alert = () => { window.alerted = true; }; location.hash = '#/nora-ml/llm-summarize'; return 1").unwrap();
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
    assert_eq!(b.eval("return window.alerted").unwrap(), json!(false));
    b.eval("location.hash = '#/'; const q = document.getElementById('q'); q.value = 'summaries'; q.dispatchEvent(new Event('input')); return 1").unwrap();
    b.wait_for("const a = document.querySelector('#results li .name'); return a && a.textContent === 'nora-ml/llm-summarize'").unwrap();
    assert_eq!(
        b.eval("return document.querySelectorAll('#results b, #results script').length")
            .unwrap(),
        json!(0)
    );
    b.screenshot(&workspace_root().join("target/browser/search-escaped.png"))
        .unwrap();
}

#[test]
fn the_page_works_from_file_urls() {
    let Some(b) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    b.goto(&format!(
        "file://{}/index.html#/textkit/md-toc",
        dir.path().display()
    ))
    .unwrap();
    let title = b
        .wait_for("const n = document.querySelector('#module .name'); return n && n.textContent")
        .unwrap();
    assert_eq!(title, json!("textkit/md-toc"));
    let content = b
        .eval("return document.getElementById('content').textContent")
        .unwrap();
    assert!(
        content.as_str().unwrap().contains("mlld-run"),
        "the module's content is shown"
    );
    b.eval("location.hash = '#/'; return 1").unwrap();
    b.wait_for("return document.getElementById('summary').textContent.includes('24 of 24')")
        .unwrap();
}

#[test]
fn versioned_modules_in_search_and_on_their_page() {
    let Some(b) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Hostile text in a versioned module's metadata stays text.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&mlld_e2e::examples().join("registry"), &registry);
    let metadata = registry.join("modules/alice-dev/prompt-lib/metadata.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    json["about"] =
        json!("Prompt templates <img src=x onerror=\"window.alerted=true\"> <b>bold</b>");
    std::fs::write(&metadata, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let site = dir.path().join("site");
    mlld_e2e::build_with(&site, None, build_time(), mlld_e2e::demo_key(), &registry);
    let server = HttpServer::start(static_files(site.clone()));
    b.goto(&format!("{}/", server.url())).unwrap();
    b.wait_for(
        "return document.getElementById('summary').textContent.includes('5 of 5 versioned')",
    )
    .unwrap();

    b.type_into("#q", "prompt-lib").unwrap();
    let first = b.wait_for("const a = document.querySelector('#results li .name'); return a && document.getElementById('summary').textContent.includes('match') && [a.textContent, a.parentNode.querySelector('.version').textContent]").unwrap();
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
        .eval("return [...document.querySelectorAll('#versions tr')].slice(1).map(r => [...r.children].map(c => c.textContent))")
        .unwrap();
    assert_eq!(
        versions,
        json!([
            ["1.3.0-beta.1", "2025-10-01T12:00:00Z", "js", "*", "CC0"],
            ["1.2.0", "2025-07-15T12:00:00Z", "js", ">=2.0.0", "CC0"],
            ["1.0.0", "2025-05-02T08:00:00Z", "js", ">=2.0.0", "CC0"]
        ])
    );
    let tags = b
        .eval("return [...document.querySelectorAll('#dist-tags li')].map(li => li.textContent)")
        .unwrap();
    assert_eq!(
        tags,
        json!(["beta → 1.3.0-beta.1", "latest → 1.2.0", "stable → 1.0.0"])
    );
    assert_eq!(
        b.eval("return document.getElementById('import-line').textContent")
            .unwrap(),
        json!("/import @alice-dev/prompt-lib")
    );
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
    b.screenshot(&workspace_root().join("target/browser/versioned-page.png"))
        .unwrap();

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
