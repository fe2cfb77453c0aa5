//! Synthetic registries at any scale: `{user}/registry.json`,
//! `{user}/advisories.json`, and for every gist a `GET /gists/{id}` response
//! in GitHub's shape, with module content like real mlld modules (front
//! matter, comments, imports of other modules, 0.5 to 8 KB).
//!
//! Output is a pure function of the parameters and the seed, so tests and
//! benchmarks can regenerate it and a later "change 1%" step can be replayed.

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

mod words;

/// A deterministic PRNG (splitmix64): no dependency, same sequence everywhere.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(len);
        s
    }
}

#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub users: usize,
    pub modules: usize,
    pub seed: u64,
}

/// One generated module, as the registry and the fake GitHub see it.
#[derive(Clone, Debug)]
pub struct SynthModule {
    pub user: String,
    pub name: String,
    pub gist: String,
    pub description: String,
    pub tags: Vec<String>,
}

/// The generated registry in memory.
pub struct Synth {
    pub config: SynthConfig,
    pub users: Vec<String>,
    /// Modules, grouped by user in order.
    pub modules: Vec<SynthModule>,
}

pub fn user_name(i: usize) -> String {
    format!(
        "{}-{}{i}",
        words::USER_PREFIXES[i % words::USER_PREFIXES.len()],
        words::USER_SUFFIXES[(i / 7) % words::USER_SUFFIXES.len()]
    )
}

impl Synth {
    pub fn new(config: SynthConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let users: Vec<String> = (0..config.users.max(1)).map(user_name).collect();
        let mut modules = Vec::with_capacity(config.modules);
        for i in 0..config.modules {
            let user = users[i % users.len()].clone();
            let a = rng.pick(words::TOPICS);
            let b = rng.pick(words::KINDS);
            let name = format!("{a}-{b}-{i}");
            let tags: Vec<String> = (0..1 + rng.below(4))
                .map(|_| rng.pick(words::TAGS).to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let description = format!(
                "{} {} {} for {} workflows",
                rng.pick(words::ADJECTIVES),
                a,
                b,
                rng.pick(words::TOPICS)
            );
            modules.push(SynthModule {
                user,
                name,
                gist: format!(
                    "{:032x}",
                    (config.seed as u128) << 64 | i as u128 | 1 << 127
                ),
                description,
                tags,
            });
        }
        modules.sort_by(|x, y| (&x.user, &x.name).cmp(&(&y.user, &y.name)));
        Self {
            config,
            users,
            modules,
        }
    }

    /// The current revision of module `index` at generation `generation`
    /// (a "change" bumps the generation of some modules).
    pub fn revision(&self, index: usize, generation: u32) -> String {
        let mut rng = Rng::new(
            self.config.seed
                ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)
                ^ u64::from(generation) << 48,
        );
        rng.hex(40)
    }

    /// The module file's content for module `index` at `generation`.
    pub fn content(&self, index: usize, generation: u32) -> String {
        let m = &self.modules[index];
        let mut rng = Rng::new(
            self.config
                .seed
                .wrapping_add(index as u64 * 31 + u64::from(generation)),
        );
        let mut out = format!(
            "---\nname: {}\nauthor: {}\ndescription: {}\nversion: 1.{generation}.0\n---\n\n",
            m.name, m.user, m.description
        );
        out.push_str(&format!(">> {} — {}\n\n", m.name, m.description));
        // Imports of earlier modules make a realistic dependency graph without cycles.
        for _ in 0..rng.below(4) {
            if index == 0 {
                break;
            }
            let dep = &self.modules[rng.below(index)];
            out.push_str(&format!(
                "/import {{ @{} }} from @{}/{}\n",
                words::ident(&dep.name),
                dep.user,
                dep.name
            ));
        }
        let target = 500 + rng.below(7500);
        let mut exports = Vec::new();
        while out.len() < target {
            let verb = rng.pick(words::VERBS);
            let n = exports.len();
            out.push_str(&format!(
                "\n>> {verb} the input and return a {} result\n/exe @{verb}{n}(input, options) = js {{\n  const opts = Object.assign({{ indent: {} }}, options || {{}});\n  return JSON.stringify({{ value: input, step: \"{verb}\" }}, null, opts.indent);\n}}\n",
                rng.pick(words::ADJECTIVES),
                rng.below(8)
            ));
            exports.push(format!("@{verb}{n}"));
        }
        out.push_str(&format!("\n/export {{ {} }}\n", exports.join(", ")));
        out
    }

    /// The `GET /gists/{id}` response for module `index` at `generation`.
    pub fn gist_response(&self, index: usize, generation: u32) -> Value {
        let m = &self.modules[index];
        let content = self.content(index, generation);
        let revision = self.revision(index, generation);
        let file = format!("{}.mld", m.name);
        let mut files = serde_json::Map::new();
        files.insert(
            file.clone(),
            file_json(&m.user, &m.gist, &revision, &file, &content),
        );
        if index.is_multiple_of(10) {
            let readme = format!(
                "# {}\n\n{}\n\n```mlld\n/import {{ @x }} from @{}/{}\n```\n",
                m.name, m.description, m.user, m.name
            );
            files.insert(
                "README.md".into(),
                file_json(&m.user, &m.gist, &revision, "README.md", &readme),
            );
        }
        let history: Vec<Value> = (0..=generation)
            .rev()
            .map(|g| json!({ "version": self.revision(index, g), "committed_at": timestamp(index, g), "user": { "login": m.user } }))
            .collect();
        json!({
            "id": m.gist,
            "url": format!("https://api.github.com/gists/{}", m.gist),
            "html_url": format!("https://gist.github.com/{}", m.gist),
            "public": true,
            "description": m.description,
            "owner": { "login": m.user, "type": "User" },
            "files": files,
            "created_at": timestamp(index, 0),
            "updated_at": timestamp(index, generation),
            "truncated": false,
            "history": history,
        })
    }

    /// Writes `registry/{user}/…` and `gists/{id}.json` under `out`, all at generation 0
    /// except the modules `changed` names (index → generation).
    pub fn write(
        &self,
        out: &Path,
        changed: &std::collections::BTreeMap<usize, u32>,
    ) -> Result<()> {
        self.write_registry(&out.join("registry"))?;
        let gists = out.join("gists");
        std::fs::create_dir_all(&gists)?;
        for i in 0..self.modules.len() {
            let generation = changed.get(&i).copied().unwrap_or(0);
            std::fs::write(
                gists.join(format!("{}.json", self.modules[i].gist)),
                serde_json::to_vec(&self.gist_response(i, generation))?,
            )?;
        }
        Ok(())
    }

    /// Writes only `{user}/registry.json` and `{user}/advisories.json` under `registry`.
    pub fn write_registry(&self, registry: &Path) -> Result<()> {
        let mut start = 0;
        while start < self.modules.len() {
            let user = &self.modules[start].user;
            let end = start
                + self.modules[start..]
                    .iter()
                    .take_while(|m| &m.user == user)
                    .count();
            let mut modules = serde_json::Map::new();
            for m in &self.modules[start..end] {
                modules.insert(m.name.clone(), json!({ "gist": m.gist, "description": m.description, "tags": m.tags, "created": "2024-05-28T00:00:00Z" }));
            }
            let dir = registry.join(user);
            std::fs::create_dir_all(&dir)?;
            let doc = json!({ "version": "1.0.0", "updated": "2024-05-28T00:00:00Z", "author": user, "modules": modules });
            std::fs::write(dir.join("registry.json"), serde_json::to_vec_pretty(&doc)?)?;
            let advisories: Vec<Value> = if start.is_multiple_of(50) {
                vec![
                    json!({ "id": format!("{user}-001"), "created": "2024-06-01T00:00:00Z", "severity": "medium", "affects": [self.modules[start].name], "gists": [], "type": "vulnerability", "description": "synthetic advisory", "recommendation": "update" }),
                ]
            } else {
                Vec::new()
            };
            std::fs::write(
                dir.join("advisories.json"),
                serde_json::to_vec_pretty(
                    &json!({ "version": "1.0.0", "author": user, "advisories": advisories }),
                )?,
            )?;
            start = end;
        }
        Ok(())
    }
}

fn file_json(owner: &str, gist: &str, revision: &str, name: &str, content: &str) -> Value {
    json!({
        "filename": name,
        "type": "text/plain",
        "language": null,
        "raw_url": format!("https://gist.githubusercontent.com/{owner}/{gist}/raw/{revision}/{name}"),
        "size": content.len(),
        "truncated": false,
        "content": content,
    })
}

fn timestamp(index: usize, generation: u32) -> String {
    let day = 1 + (index % 28);
    let hour = generation % 24;
    format!("2025-{:02}-{day:02}T{hour:02}:00:00Z", 1 + index % 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_valid() {
        let a = Synth::new(SynthConfig {
            users: 3,
            modules: 20,
            seed: 7,
        });
        let b = Synth::new(SynthConfig {
            users: 3,
            modules: 20,
            seed: 7,
        });
        assert_eq!(a.content(5, 0), b.content(5, 0));
        assert_ne!(a.content(5, 0), a.content(5, 1));
        assert_ne!(a.revision(5, 0), a.revision(5, 1));
        let g = a.gist_response(4, 2);
        assert_eq!(g["history"].as_array().unwrap().len(), 3);
        assert_eq!(g["history"][0]["version"], a.revision(4, 2));
        for m in &a.modules {
            assert_eq!(m.gist.len(), 32);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                m.name
            );
        }
        let sizes: Vec<usize> = (0..20).map(|i| a.content(i, 0).len()).collect();
        assert!(sizes.iter().all(|s| (500..9000).contains(s)), "{sizes:?}");
    }
}
