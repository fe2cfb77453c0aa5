//! First-time imports need a person's approval (or `--yes`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use mlld_schemas::terminal::terminal_safe as safe;
use mlld_schemas::{Manifest, ModuleRecord, RevisionRecord};

/// What a person sees before approving an import.
pub fn describe(
    manifest: &Manifest,
    module: &ModuleRecord,
    revision: &RevisionRecord,
    content: &[u8],
) -> String {
    let mut out = format!(
        "module     @{}/{}\nauthor     {}\ngist       {}\nrevision   {}\nintegrity  {}\n",
        safe(&module.user),
        safe(&module.name),
        safe(&module.user),
        safe(&module.gist),
        safe(&revision.revision),
        safe(&revision.integrity)
    );
    let advisories: Vec<_> = manifest.advisories_for(module).collect();
    if advisories.is_empty() {
        out.push_str("advisories none\n");
    }
    for a in advisories {
        out.push_str(&format!(
            "ADVISORY   {} [{}] {}: {}\n",
            safe(&a.advisory.id),
            a.advisory.severity,
            safe(&a.advisory.kind),
            safe(&a.advisory.description)
        ));
    }
    out.push_str("content (first lines):\n");
    let text = String::from_utf8_lossy(content);
    for line in text.lines().take(12) {
        out.push_str(&format!("  | {}\n", safe(line)));
    }
    out
}

/// Asks on a TTY; without one, refuses and names `--yes`.
pub fn approve(description: &str, name: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "importing {name} for the first time needs approval and there is no terminal to ask on; review it with `mlld-registry info {name}` and run again with --yes"
        );
    }
    eprint!("{description}Approve {}? [y/N] ", safe(name));
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("{name} was not approved; nothing was changed")
    }
}
