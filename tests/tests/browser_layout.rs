//! The web page for every reader, in headless Chromium: no horizontal
//! scrolling at 390 px, dark mode from `prefers-color-scheme`, and no
//! serious or critical axe-core violations on the home, search, module and
//! advisory pages. Screenshots at 1280 and 390 px go to `target/browser/`.
//!
//! axe-core comes from npm: `.ci/run` installs it into `target/axe`
//! (`npm install --prefix target/axe axe-core@4`).

use std::path::PathBuf;

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::webdriver::{Browser, browser_or_skip};
use mlld_e2e::{build_examples, build_time, workspace_root};
use serde_json::{Value, json};

/// The pages every reader must be able to use: (name, fragment, a script
/// that is truthy once the page has rendered).
const PAGES: [(&str, &str, &str); 6] = [
    (
        "home",
        "#/",
        "return /24 of 24/.test(document.getElementById('summary').textContent)",
    ),
    (
        "search",
        "#/?q=json",
        "return /match/.test(document.getElementById('summary').textContent) && !/loading/.test(document.getElementById('summary').textContent)",
    ),
    (
        "module",
        "#/devops-dan/http-retry",
        "return document.getElementById('revisions')",
    ),
    (
        "module-readme",
        "#/mlld-lang/prompt-kit",
        "return document.getElementById('doc')",
    ),
    (
        "versioned",
        "#/@alice-dev/prompt-lib",
        "return document.getElementById('versions')",
    ),
    (
        "advisories",
        "#/advisories",
        "return document.getElementById('list-title').textContent.includes('advisories') && !/loading/.test(document.getElementById('summary').textContent)",
    ),
];

fn open(b: &Browser, base: &str, hash: &str, ready: &str) {
    // A fresh load each time, so that every page is laid out at the current size.
    b.goto("about:blank").unwrap();
    b.goto(&format!("{base}/{hash}")).unwrap();
    b.wait_for(ready).unwrap();
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&workspace_root().join(format!("target/browser/{name}.png")))
        .unwrap();
}

#[test]
fn no_horizontal_scrolling_at_390_px_and_screenshots_at_1280() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    let mut wide = Vec::new();
    for (width, height) in [(1280, 900), (390, 844)] {
        b.set_viewport(width, height).unwrap();
        for (name, hash, ready) in PAGES {
            open(&b, &server.url(), hash, ready);
            let sizes = b
                .eval("return [document.documentElement.scrollWidth, window.innerWidth]")
                .unwrap();
            if sizes[0].as_u64() > sizes[1].as_u64() {
                wide.push(format!("{name} at {width}px: {sizes}"));
            }
            shot(&b, &format!("{name}-{width}"));
        }
    }
    assert!(wide.is_empty(), "pages wider than the screen: {wide:?}");
}

#[test]
fn dark_mode_follows_the_system() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    let background = "return getComputedStyle(document.body).backgroundColor";
    let (_, hash, ready) = PAGES[2];
    b.set_color_scheme("light").unwrap();
    open(&b, &server.url(), hash, ready);
    assert_eq!(b.eval(background).unwrap(), json!("rgb(255, 255, 255)"));
    b.set_color_scheme("dark").unwrap();
    let dark = b.eval(background).unwrap();
    assert_eq!(dark, json!("rgb(22, 23, 26)"), "dark without a reload");
    let text = b
        .eval("return getComputedStyle(document.body).color")
        .unwrap();
    assert_eq!(text, json!("rgb(230, 230, 234)"));
    for width in [1280, 390] {
        b.set_viewport(width, 844).unwrap();
        open(&b, &server.url(), hash, ready);
        shot(&b, &format!("module-dark-{width}"));
    }
}

/// axe-core's script, if installed.
fn axe_script() -> Option<String> {
    let path: PathBuf = workspace_root().join("target/axe/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install axe-core into target/axe (see .ci/run)"
            );
            eprintln!(
                "no {}; skipping the accessibility check (npm install --prefix target/axe axe-core@4)",
                path.display()
            );
            None
        }
    }
}

#[test]
fn no_serious_or_critical_accessibility_violations() {
    let Some(axe) = axe_script() else { return };
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    let mut found = Vec::new();
    for scheme in ["light", "dark"] {
        b.set_color_scheme(scheme).unwrap();
        for (name, hash, ready) in PAGES {
            open(&b, &server.url(), hash, ready);
            b.eval(&format!("{axe}\n;return 1")).unwrap();
            b.eval("window.axeResult = null; axe.run(document, { resultTypes: ['violations'] }).then(r => { window.axeResult = r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary) })); }); return 1").unwrap();
            let violations: Value = b.wait_for("return window.axeResult").unwrap();
            for v in violations.as_array().unwrap() {
                found.push(format!("{name} ({scheme}): {v}"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
