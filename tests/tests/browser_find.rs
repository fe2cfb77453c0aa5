//! Finding things on the web page in headless Chromium: search ranks the
//! shared query list (tests/search_parity.json) as `mlld-registry search`
//! does (search_parity.rs checks the CLI), and so does the first stage
//! (the search parts, before the whole listing), the query lives in the URL,
//! the keyboard works, and the listing pages list what they say.

use mlld_e2e::http::{HttpServer, static_files};
use mlld_e2e::webdriver::{Browser, browser_or_skip};
use mlld_e2e::{build_examples, build_time, workspace_root};
use serde_json::{Value, json};

/// Each query with the names that must come first, in order.
fn cases() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(workspace_root().join("tests/search_parity.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let top = c["top"].as_array().unwrap();
            let top = top.iter().map(|n| n.as_str().unwrap().to_string());
            (c["query"].as_str().unwrap().to_string(), top.collect())
        })
        .collect()
}

/// The names shown for `query` once the whole listing is in.
fn results_for(b: &Browser, base: &str, query: &str) -> Vec<String> {
    let url = format!("{base}#/?q={}", url_escape(query));
    b.goto(&url).unwrap();
    let names = b
        .wait_for(&format!(
            "const s = document.getElementById('summary').textContent; return document.getElementById('q').value === {} && /match/.test(s) && !/loading/.test(s) && [...document.querySelectorAll('#results .name')].map(a => a.textContent)",
            json!(query)
        ))
        .unwrap();
    serde_json::from_value(names).unwrap()
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn page_search_agrees_with_the_cli_on_the_shared_queries() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    let base = format!("{}/", server.url());
    let mut wrong = Vec::new();
    for (query, top) in cases() {
        let names = results_for(&b, &base, &query);
        if names.get(..top.len()) != Some(&top[..]) {
            wrong.push(format!("{query:?}: expected {top:?} first, got {names:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_first_stage_ranks_the_shared_queries_as_the_whole_listing_does() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    let base = format!("{}/", server.url());
    let mut wrong = Vec::new();
    for (query, top) in cases() {
        // The parts this query loads, and then the whole listing.
        results_for(&b, &base, &query);
        let ranked = b
            .eval(&format!(
                "const q = mlldSearch.parse({}); const name = (r) => r[0] + '/' + r[1]; const stage = mlldSearch.firstStage(q, mlldSearch.size()); return [mlldSearch.stageRank(q, stage, mlldSearch.rowAt).map((p) => name(mlldSearch.rowAt(p))), mlldSearch.run(q).map(name)]",
                json!(query)
            ))
            .unwrap();
        let (staged, full) = (&ranked[0], &ranked[1]);
        let staged: Vec<String> = serde_json::from_value(staged.clone()).unwrap();
        if json!(staged) != *full || staged.get(..top.len()) != Some(&top[..]) {
            wrong.push(format!(
                "{query:?}: first stage {staged:?}, whole listing {full}, expected {top:?} first"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_query_lives_in_the_url_and_the_keyboard_works() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    b.goto(&format!("{}/#/textkit/slugify", server.url()))
        .unwrap();
    b.wait_for("return document.querySelector('#module .name')")
        .unwrap();
    // `/` focuses the search box from anywhere.
    b.press("/").unwrap();
    b.wait_for(
        "return document.activeElement === document.getElementById('q') && location.hash === '#/'",
    )
    .unwrap();
    b.type_into("#q", "retyr").unwrap();
    b.wait_for("return location.hash === '#/?q=retyr' && document.querySelector('#results .name')")
        .unwrap();
    let first = b
        .eval("return document.querySelector('#results .name').textContent")
        .unwrap();
    assert_eq!(
        first,
        json!("devops-dan/http-retry"),
        "a typo still finds it"
    );
    // Survives a reload.
    b.refresh().unwrap();
    b.wait_for("return document.getElementById('q').value === 'retyr' && document.querySelector('#results .name') && document.querySelector('#results .name').textContent === 'devops-dan/http-retry'").unwrap();
    // Arrow keys move through the results; Enter opens one.
    b.eval("document.getElementById('q').focus(); return 1")
        .unwrap();
    b.press("\u{E015}\u{E015}").unwrap();
    let focused = b
        .eval("const links = [...document.querySelectorAll('#results .name')]; return links.indexOf(document.activeElement)")
        .unwrap();
    assert_eq!(focused, json!(1));
    b.press("\u{E013}").unwrap();
    b.wait_for("return [...document.querySelectorAll('#results .name')].indexOf(document.activeElement) === 0").unwrap();
    b.press("\u{E007}").unwrap();
    b.wait_for("return location.hash === '#/devops-dan/http-retry' && document.querySelector('#module .name')").unwrap();
    // Back returns to the search, query and results restored.
    b.back().unwrap();
    b.wait_for("return location.hash === '#/?q=retyr' && document.getElementById('q').value === 'retyr' && !document.getElementById('search-view').hidden && document.querySelector('#results .name')").unwrap();
    // Enter in the box opens the first result.
    b.eval("document.getElementById('q').focus(); return 1")
        .unwrap();
    b.press("\u{E007}").unwrap();
    b.wait_for("return location.hash === '#/devops-dan/http-retry'")
        .unwrap();
}

#[test]
fn listing_pages_recent_by_author_by_tag_and_advisories() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let server = HttpServer::start(static_files(dir.path().to_path_buf()));
    let base = server.url();
    let shown = |hash: &str, title: &str| -> Vec<String> {
        b.goto(&format!("{base}/{hash}")).unwrap();
        let names = b
            .wait_for(&format!(
                "const s = document.getElementById('summary').textContent; return document.getElementById('list-title').textContent === {} && !/loading/.test(s) && [...document.querySelectorAll('#results .name')].map(a => a.textContent)",
                json!(title)
            ))
            .unwrap();
        serde_json::from_value(names).unwrap()
    };
    // Recently updated: newest first, by the times the listing carries.
    let recent = shown("#/recent", "Recently updated");
    assert!(recent.len() > 10, "{recent:?}");
    let times = b
        .eval("return [...document.querySelectorAll('#results time')].map(t => Date.parse(t.getAttribute('datetime')))")
        .unwrap();
    let times: Vec<f64> = serde_json::from_value(times).unwrap();
    assert_eq!(times.len(), recent.len());
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    b.screenshot(&workspace_root().join("target/browser/recent.png"))
        .unwrap();

    let advisories = shown("#/advisories", "Modules with open advisories");
    assert!(
        advisories.contains(&"sarah-k/llm-cache".to_string())
            && advisories.contains(&"devops-dan/shell-utils".to_string()),
        "{advisories:?}"
    );
    assert_eq!(
        b.eval("return [...document.querySelectorAll('#results li')].every(li => li.querySelector('.badge.advisory'))").unwrap(),
        json!(true)
    );
    b.screenshot(&workspace_root().join("target/browser/advisories.png"))
        .unwrap();

    let by_author = shown("#/?q=author%3Atextkit", "Modules by textkit");
    assert_eq!(
        by_author,
        [
            "textkit/md-toc",
            "textkit/slugify",
            "textkit/string-case",
            "textkit/text-wrap"
        ]
    );
    // A tag on a result is a link to its listing.
    b.click("#results li .tags a").unwrap();
    let tag = b
        .wait_for("const t = document.getElementById('list-title').textContent; return t.startsWith('Modules tagged') && t")
        .unwrap();
    let tag = tag.as_str().unwrap().trim_start_matches("Modules tagged ");
    let every = b
        .wait_for(&format!("const rows = [...document.querySelectorAll('#results li')]; return rows.length > 0 && rows.every(li => [...li.querySelectorAll('.tag')].some(t => t.textContent.toLowerCase() === {}))", json!(tag)))
        .unwrap();
    assert_eq!(every, json!(true));
}
