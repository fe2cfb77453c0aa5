//! Vocabulary for synthetic modules: names, tags and descriptions that read
//! like real mlld modules, so search benchmarks see realistic text.

pub const USER_PREFIXES: &[&str] = &[
    "ada", "bo", "cy", "dev", "eli", "fin", "gus", "hana", "ivo", "jun", "kai", "lea", "mo", "nia",
    "oz", "pia",
];
pub const USER_SUFFIXES: &[&str] = &["lab", "dev", "ops", "ml", "io", "hq", "kit", "works"];
pub const TOPICS: &[&str] = &[
    "json", "yaml", "csv", "http", "llm", "prompt", "text", "markdown", "git", "github", "shell",
    "date", "cron", "cache", "retry", "token", "embed", "vector", "rag", "eval", "judge",
    "summary", "chunk", "slug", "case", "template", "env", "config", "log", "metrics", "k8s",
    "docker",
];
pub const KINDS: &[&str] = &[
    "utils", "tools", "kit", "helpers", "parse", "format", "client", "fmt", "lib", "core",
    "runner", "check",
];
pub const TAGS: &[&str] = &[
    "json", "http", "llm", "text", "ai", "devops", "git", "data", "prompt", "testing", "utils",
    "markdown", "security", "cli",
];
pub const ADJECTIVES: &[&str] = &[
    "fast",
    "small",
    "typed",
    "robust",
    "simple",
    "streaming",
    "cached",
    "safe",
    "composable",
    "tiny",
];
pub const VERBS: &[&str] = &[
    "parse", "format", "render", "fetch", "merge", "split", "clean", "score", "rank", "wrap",
    "encode", "check",
];

/// An mlld identifier from a module name.
pub fn ident(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}
