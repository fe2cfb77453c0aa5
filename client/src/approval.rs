//! One approval screen for every module a command is about to lock for the
//! first time: each with its author, revision or version, size, advisories
//! (its own and those of the dependencies it brings in) and why it is here
//! (imported at `main.mld:3`, asked for on the command line, or a
//! dependency of another module); then approve all, review one by one, or
//! abort. The `Locker` collects while it walks and asks once at the end,
//! before anything is written.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use mlld_schemas::{AdvisoryRecord, Severity};

use crate::commands::safe;
use crate::lock_graph::display_name;
use crate::output::count;

/// A module waiting for approval.
pub struct Pending {
    /// The lock key.
    pub key: String,
    pub author: String,
    /// `revision 3b1823d6fc64` or `version 1.2.0 (asked ^1.0)`.
    pub at: String,
    /// Bytes of content it brings.
    pub size: u64,
    /// The full review text (`approve::describe…`), shown one by one.
    pub details: String,
}

/// One advisory line: severity, then `user/id type: description`.
type AdvisoryLine = (Severity, String);

/// What a walk of the locker found out for the screen.
#[derive(Default)]
pub struct Approvals {
    /// Why the roots of the next walk are here (`imported at main.mld:3`);
    /// `None` for entries the lock holds already.
    pub origin: Option<String>,
    pending: Vec<Pending>,
    reasons: BTreeMap<String, BTreeSet<String>>,
    children: BTreeMap<String, BTreeSet<String>>,
    advisories: BTreeMap<String, Vec<AdvisoryLine>>,
}

impl Approvals {
    /// Records that the walk locked `key`, as a root or brought in by `via`.
    pub fn note(&mut self, key: &str, via: Option<&str>) {
        let reason = match via {
            Some(parent) => {
                self.children
                    .entry(parent.to_string())
                    .or_default()
                    .insert(key.to_string());
                format!("dependency of {}", display_name(parent))
            }
            None => match &self.origin {
                Some(origin) => origin.clone(),
                // A root without an origin: an entry the lock holds already.
                None => return,
            },
        };
        self.reasons
            .entry(key.to_string())
            .or_default()
            .insert(reason);
    }

    /// The advisories affecting what `key` is locked at.
    pub fn advisories_of<'a>(
        &mut self,
        key: &str,
        advisories: impl IntoIterator<Item = &'a AdvisoryRecord>,
    ) {
        let lines = advisories
            .into_iter()
            .map(|a| {
                (
                    a.advisory.severity,
                    format!(
                        "{}/{} {}: {}",
                        a.user, a.advisory.id, a.advisory.kind, a.advisory.description
                    ),
                )
            })
            .collect();
        self.advisories.insert(key.to_string(), lines);
    }

    pub fn add(&mut self, pending: Pending) {
        self.pending.push(pending);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Asks once for everything pending (nothing with `yes`); without a
    /// terminal, refuses and names `--yes`. Clears what it approved.
    pub fn confirm(&mut self, yes: bool) -> Result<()> {
        if self.pending.is_empty() || yes {
            self.pending.clear();
            return Ok(());
        }
        let names: Vec<&str> = self.pending.iter().map(|p| display_name(&p.key)).collect();
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            bail!(
                "importing {} for the first time needs approval and there is no terminal to ask on; review {} with `mlld-registry info {}` and run again with --yes",
                safe(&names.join(", ")),
                if names.len() == 1 { "it" } else { "them" },
                safe(names[0])
            );
        }
        eprint!(
            "{}Approve {}? [a] approve all  [r] review one by one  [N] abort: ",
            self.screen(),
            if names.len() == 1 {
                safe(names[0]).into_owned()
            } else {
                format!("all {}", count(names.len(), "new module", "new modules"))
            }
        );
        match read_answer(&stdin)?.as_str() {
            "a" | "all" | "y" | "yes" => {}
            "r" | "review" => self.review(&stdin)?,
            _ => bail!(
                "{} not approved; nothing was changed",
                if names.len() == 1 {
                    format!("{} was", safe(names[0]))
                } else {
                    format!(
                        "the {} were",
                        count(names.len(), "new module", "new modules")
                    )
                }
            ),
        }
        self.pending.clear();
        Ok(())
    }

    fn review(&self, stdin: &std::io::Stdin) -> Result<()> {
        for (i, p) in self.pending.iter().enumerate() {
            let name = display_name(&p.key);
            eprint!(
                "\n({}/{}) {}Approve {}? [y/N] ",
                i + 1,
                self.pending.len(),
                p.details,
                safe(name)
            );
            if !matches!(read_answer(stdin)?.as_str(), "y" | "yes") {
                bail!("{} was not approved; nothing was changed", safe(name));
            }
        }
        Ok(())
    }

    /// The whole set, one block per module. Registry text passes through [`safe`].
    pub fn screen(&self) -> String {
        let mut out = format!(
            "{} to approve:\n",
            count(self.pending.len(), "new module", "new modules")
        );
        for p in &self.pending {
            out.push_str(&format!(
                "\n  {}  {}  {}  by {}\n",
                safe(display_name(&p.key)),
                safe(&p.at),
                size(p.size),
                safe(&p.author)
            ));
            let why = self
                .reasons
                .get(&p.key)
                .map(|r| r.iter().cloned().collect::<Vec<_>>().join("; "))
                .unwrap_or_else(|| "in the lock file".into());
            out.push_str(&format!("    why         {}\n", safe(&why)));
            let own = self
                .advisories
                .get(&p.key)
                .map_or(&[][..], |v| v.as_slice());
            if own.is_empty() {
                out.push_str("    advisories  none\n");
            }
            for (severity, line) in own {
                out.push_str(&format!(
                    "    ADVISORY    [{}] {}\n",
                    label(*severity),
                    safe(line)
                ));
            }
            for (dep, (severity, line)) in self.brought_in(&p.key) {
                out.push_str(&format!(
                    "    ADVISORY    [{}] via {}: {}\n",
                    label(severity),
                    safe(display_name(&dep)),
                    safe(&line)
                ));
            }
        }
        out.push('\n');
        out
    }

    /// The advisories of the modules `key` brings in, transitively.
    fn brought_in(&self, key: &str) -> Vec<(String, AdvisoryLine)> {
        let mut seen = BTreeSet::from([key.to_string()]);
        let mut stack = vec![key.to_string()];
        let mut out = Vec::new();
        while let Some(at) = stack.pop() {
            for child in self.children.get(&at).into_iter().flatten() {
                if seen.insert(child.clone()) {
                    for a in self.advisories.get(child).into_iter().flatten() {
                        out.push((child.clone(), a.clone()));
                    }
                    stack.push(child.clone());
                }
            }
        }
        out.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

fn read_answer(stdin: &std::io::Stdin) -> Result<String> {
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(answer.trim().to_ascii_lowercase())
}

/// The severity, in its colour when stderr gets colour.
fn label(severity: Severity) -> String {
    if crate::color::stderr_enabled() {
        format!(
            "\x1b[{}m{severity}\x1b[0m",
            crate::color::severity_code(severity)
        )
    } else {
        severity.to_string()
    }
}

/// `886 B`, `1.2 KiB`, `3.4 MiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_lists_every_module_with_why_and_inherited_advisories() {
        let mut a = Approvals {
            origin: Some("imported at main.mld:3".into()),
            ..Default::default()
        };
        a.note("mlld://s/top", None);
        a.note("mlld://s/mid", Some("mlld://s/top"));
        a.note("mlld://d/leaf", Some("mlld://s/mid"));
        a.advisories.insert(
            "mlld://d/leaf".into(),
            vec![(Severity::High, "d/1 rce: bad\x1b[2J".into())],
        );
        for key in ["mlld://s/top", "mlld://s/mid", "mlld://d/leaf"] {
            a.add(Pending {
                key: key.into(),
                author: "s".into(),
                at: "revision 0123456789ab".into(),
                size: 2048,
                details: String::new(),
            });
        }
        let text = a.screen();
        for wanted in [
            "3 new modules to approve:",
            "  s/top  revision 0123456789ab  2.0 KiB  by s",
            "    why         imported at main.mld:3",
            "    why         dependency of s/mid",
            "    ADVISORY    [high] via d/leaf: d/1 rce: bad\\x1b[2J",
            "    ADVISORY    [high] d/1 rce: bad\\x1b[2J",
        ] {
            assert!(text.contains(wanted), "{wanted:?} in\n{text}");
        }
        assert_eq!(text.matches("via d/leaf").count(), 2, "{text}");
    }

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(size(886), "886 B");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
