//! The page's first search stage on a site cut into several search parts
//! and listing shards (the examples fit in one of each): a direct search
//! link loads only the parts its words name, shows results before the
//! whole listing, and those rank as the whole listing ranks them, for the
//! kinds of query `cargo xtask bench page` times.

use std::sync::{Arc, Mutex};

use mlld_e2e::http::{HttpServer, Request, static_files};
use mlld_e2e::synth_site::SynthSite;
use mlld_e2e::webdriver::browser_or_skip;
use mlld_synth::SynthConfig;
use serde_json::json;

/// A whole name, a first word, a typo of a first word, an author filter,
/// a tag filter with a word.
fn queries(site: &SynthSite) -> Vec<String> {
    let mut out = Vec::new();
    for (i, m) in site.synth.modules.iter().step_by(397).take(4).enumerate() {
        let first = m.name.split('-').next().unwrap_or(&m.name).to_string();
        out.push(m.name.clone());
        out.push(first.clone());
        if first.chars().count() >= 4 {
            let mut c: Vec<char> = first.chars().collect();
            c.swap(1, 2);
            out.push(c.into_iter().collect());
        }
        out.push(format!("author:{}", m.user.to_lowercase()));
        if let Some(tag) = m.tags.get(i % m.tags.len().max(1)) {
            out.push(format!("tag:{tag} {first}"));
        }
    }
    out
}

#[test]
fn the_first_stage_loads_only_its_parts_and_ranks_as_the_whole_listing() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = SynthSite::new(
        dir.path(),
        SynthConfig {
            users: 150,
            modules: 2000,
            seed: 3,
        },
    );
    let parts = std::fs::read_dir(site.site.join("data"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("search-")
        })
        .count();
    assert_eq!(parts, 8, "2,000 rows cut into 8 parts");
    let paths = Arc::new(Mutex::new(Vec::<String>::new()));
    let (files, seen) = (static_files(site.site.clone()), paths.clone());
    let server = HttpServer::start(Arc::new(move |req: &Request| {
        seen.lock().unwrap().push(req.path().to_string());
        files(req)
    }));
    let mut wrong = Vec::new();
    for q in queries(&site) {
        b.goto("about:blank").unwrap();
        paths.lock().unwrap().clear();
        b.goto(&format!(
            "{}/#/?q={}",
            server.url(),
            q.replace(' ', "%20").replace(':', "%3A")
        ))
        .unwrap();
        // The first results, and what had been asked for until then.
        b.wait_for("return performance.getEntriesByName('mlld:results').length")
            .unwrap();
        let before = paths.lock().unwrap().clone();
        let asked = |kind: &str| before.iter().filter(|p| p.contains(kind)).count();
        assert!(
            (1..parts).contains(&asked("/data/search-")),
            "{q:?}: only the parts its words name: {before:?}"
        );
        b.wait_for("const s = document.getElementById('summary').textContent; return /\\d/.test(s) && !/loading/.test(s)").unwrap();
        let same = b
            .eval(&format!(
                "const q = mlldSearch.parse({}); const stage = mlldSearch.firstStage(q, mlldSearch.size()); const staged = mlldSearch.stageRank(q, stage, mlldSearch.rowAt, 50).map(mlldSearch.rowAt); const full = mlldSearch.run(q).slice(0, 50); return [JSON.stringify(staged) === JSON.stringify(full), full.length]",
                json!(q)
            ))
            .unwrap();
        if same[0] != json!(true) || same[1] == json!(0) {
            wrong.push(format!("{q:?}: {same}"));
        }
    }
    assert!(wrong.is_empty(), "first stage differs: {wrong:#?}");
}
