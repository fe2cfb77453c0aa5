//! What the web page asks the server for, counted on loopback: a direct
//! link to one module loads its page data, its blob and its dependents'
//! bucket, never the listing or the search parts; a search loads its
//! search parts before the listing.

use std::sync::{Arc, Mutex};

use mlld_e2e::http::{HttpServer, Request, static_files};
use mlld_e2e::webdriver::browser_or_skip;
use mlld_e2e::{build_examples, build_time};

#[test]
fn a_direct_link_loads_the_module_and_no_listing() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let paths = Arc::new(Mutex::new(Vec::<String>::new()));
    let (files, seen) = (static_files(dir.path().to_path_buf()), paths.clone());
    let server = HttpServer::start(Arc::new(move |req: &Request| {
        seen.lock().unwrap().push(req.path().to_string());
        files(req)
    }));
    b.goto(&format!("{}/#/sarah-k/llm-cache", server.url()))
        .unwrap();
    b.wait_for("return document.getElementById('content')")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let asked = paths.lock().unwrap().clone();
    assert!(
        asked.iter().any(|p| p == "/modules/sarah-k/llm-cache.js"),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|p| p.starts_with("/blobs/sha256/")),
        "the module's text comes from its blob: {asked:?}"
    );
    assert!(
        asked.iter().any(|p| p == "/data/dependents/0/0.js"),
        "its dependents come from their bucket: {asked:?}"
    );
    assert!(
        !asked
            .iter()
            .any(|p| p.contains("/data/listing-") || p.contains("/data/search-")),
        "a module page needs neither the listing nor the search data: {asked:?}"
    );
    // A search asks for its parts first, then the whole listing.
    paths.lock().unwrap().clear();
    b.eval("location.hash = '#/?q=json'; return 1").unwrap();
    b.wait_for("return !/loading/.test(document.getElementById('summary').textContent) && document.querySelectorAll('#results li').length")
        .unwrap();
    let asked = paths.lock().unwrap().clone();
    let first_listing = asked.iter().position(|p| p.contains("/data/listing-"));
    let first_part = asked.iter().position(|p| p.contains("/data/search-"));
    assert!(
        first_part.is_some() && first_part < first_listing,
        "{asked:?}"
    );
}
