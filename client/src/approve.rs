//! First-time imports need a person's approval (or `--yes`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use mlld_schemas::terminal::terminal_safe as safe;
use mlld_schemas::{AdvisoryRecord, ModuleRecord, RevisionRecord, VersionRecord, VersionedModule};

use crate::registry::Registry;

/// What a person sees before approving an import.
pub fn describe(
    advisories: &[&AdvisoryRecord],
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

/// What a person sees before approving a version of a versioned module:
/// version, source, files and size, needs, license, advisories and the
/// entry file's first lines. Registry text passes through [`safe`].
pub fn describe_versioned(
    advisories: &[&AdvisoryRecord],
    module: &VersionedModule,
    record: &VersionRecord,
    requested: &str,
    files: &[(String, Vec<u8>)],
) -> String {
    let opt = |s: &Option<String>| {
        s.as_deref()
            .map_or("unknown".into(), |v| safe(v).into_owned())
    };
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let mut out = format!(
        "module     {}\nversion    {} (asked: {}; published {})\nsource     {} {} @ {}\nfiles      {} file(s), {total} bytes: {}\nentry      {} {}\nneeds      {}\nlicense    {}\nmlld       {}\n",
        safe(&module.full_name()),
        safe(&record.version),
        safe(requested),
        opt(&record.published_at),
        safe(&record.source.kind),
        safe(&record.source.url),
        safe(&record.source.commit),
        files.len(),
        safe(
            &files
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        safe(&record.entry),
        record.integrity,
        safe(&record.needs.join(", ")),
        opt(&record.license),
        opt(&record.mlld_version),
    );
    if advisories.is_empty() {
        out.push_str("advisories none\n");
    }
    for a in advisories {
        out.push_str(&format!(
            "ADVISORY   {} [{}] {}: {}\n",
            safe(&a.advisory.id),
            a.advisory.severity.as_str(),
            safe(&a.advisory.kind),
            safe(&a.advisory.description)
        ));
    }
    out.push_str("entry file (first lines):\n");
    if let Some((_, bytes)) = files.iter().find(|(p, _)| *p == record.entry) {
        for line in String::from_utf8_lossy(bytes).lines().take(12) {
            out.push_str(&format!("  | {}\n", safe(line)));
        }
    }
    out
}

/// The advisories affecting `revision` of a gist module (within their ranges).
pub fn gist_advisories<'m>(
    registry: &'m Registry,
    module: &ModuleRecord,
    revision: &RevisionRecord,
) -> Result<Vec<&'m AdvisoryRecord>> {
    Ok(registry
        .advisories_for(module)?
        .into_iter()
        .filter(|a| {
            a.advisory
                .affects_revision(&revision.revision, revision.committed_at.as_deref())
        })
        .collect())
}

/// The advisories affecting `version` of a versioned module (within their ranges).
pub fn version_advisories<'m>(
    registry: &'m Registry,
    module: &VersionedModule,
    version: &str,
) -> Result<Vec<&'m AdvisoryRecord>> {
    Ok(registry
        .versioned_advisories(module)?
        .into_iter()
        .filter(|a| a.advisory.affects_version(version))
        .collect())
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_version_is_described_with_its_files_and_advisories_escaped() {
        let module: mlld_schemas::VersionedModule = serde_json::from_value(serde_json::json!({
            "author": "alice", "name": "tool", "tags": {"latest": "1.0.0"},
            "versions": [{
                "version": "1.0.0", "needs": ["js"], "license": "MIT", "mlldVersion": ">=2.0.0",
                "source": {"type": "directory", "url": "https://raw.example/alice/r/c/tool", "commit": "c"},
                "contentHash": "00", "entry": "index.mld", "integrity": "sha256:00", "size": 3,
                "files": [], "dependencies": []
            }]
        }))
        .unwrap();
        let advisories: Vec<mlld_schemas::AdvisoryRecord> =
            serde_json::from_value(serde_json::json!([{
                "user": "alice", "id": "2026-001", "created": "2026-01-01T00:00:00Z",
                "severity": "high", "affects": ["tool"], "gists": [], "type": "rce",
                "description": "bad\u{1b}[2J", "recommendation": "upgrade"
            }]))
            .unwrap();
        let files = vec![
            ("index.mld".to_string(), b"/export { @x }\n".to_vec()),
            ("lib/a.mld".to_string(), b"x".to_vec()),
        ];
        let advisories: Vec<_> = advisories.iter().collect();
        let text =
            super::describe_versioned(&advisories, &module, &module.versions[0], "^1", &files);
        for wanted in [
            "module     @alice/tool",
            "version    1.0.0 (asked: ^1;",
            "files      2 file(s), 16 bytes: index.mld, lib/a.mld",
            "needs      js",
            "license    MIT",
            "ADVISORY   2026-001 [high] rce: bad\\x1b[2J",
            "  | /export { @x }",
        ] {
            assert!(text.contains(wanted), "{wanted:?} in\n{text}");
        }
    }
}
