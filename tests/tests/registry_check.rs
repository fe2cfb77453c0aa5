//! `cargo xtask check`: pull-request checks with positions and GitHub annotations.

use mlld_e2e::examples;
use mlld_e2e::fake_github::FakeGithub;
use mlld_indexer::check::{check, github_annotation};
use mlld_indexer::{GistSource, GithubConfig, GithubGists};

fn github_source(api: &str) -> GithubGists {
    GithubGists::new(GithubConfig {
        api: api.to_string(),
        token: None,
        request_timeout: std::time::Duration::from_secs(2),
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(30),
        max_attempts: 2,
        retry_base: std::time::Duration::from_millis(5),
    })
    .unwrap()
}

#[test]
fn offline_check_reports_file_rules_with_positions() {
    let diagnostics = check(&examples().join("registry"), None).unwrap();
    // Today's layout (`modules/`) has its own deliberate errors: see versioned_index.rs.
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|d| d.is_error() && !d.file.starts_with("modules/"))
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].file.as_str(), errors[0].line, errors[0].column),
        ("broken-example/registry.json", 9, 33)
    );
}

#[test]
fn online_check_finds_gists_owned_by_someone_else_and_missing_gists() {
    let github = FakeGithub::with_examples();
    github.delete("52e517de86bc3ac4618e577948289b11"); // sarah-k/token-count
    let source = github_source(&github.url());
    let diagnostics = check(
        &examples().join("registry"),
        Some(&source as &dyn GistSource),
    )
    .unwrap();
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error() && !d.file.starts_with("modules/"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let owner = errors
        .iter()
        .find(|e| e.contains("mallory"))
        .expect("the owner mismatch is reported");
    assert!(
        owner.starts_with("jdoe/registry.json:")
            && owner.contains(r#"$.modules["quick-helpers"].gist"#),
        "{owner}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("sarah-k/registry.json:") && e.contains("does not exist")),
        "{errors:#?}"
    );
}

#[test]
fn annotations_follow_the_github_actions_format() {
    let diagnostics = check(&examples().join("registry"), None).unwrap();
    let lines: Vec<String> = diagnostics
        .iter()
        .map(|d| github_annotation(d, "registry/"))
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::error file=registry/broken-example/registry.json,line=9,col=33,title=$::invalid JSON"
        )),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::warning file=registry/mlld-lang/registry.json,line=48,col=3,title=$.servers::"
        )),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| !l.contains('\n')));
}
