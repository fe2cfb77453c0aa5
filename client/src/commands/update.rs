//! `update [user/module]`: move locked modules to the snapshot's newest
//! revision, showing what changes; changed content needs approval again.

use std::process::ExitCode;

use anyhow::{Result, bail};
use mlld_schemas::lock::parse_resolved;
use mlld_schemas::names::parse_timestamp;
use mlld_schemas::{LockEntry, ModuleRecord, ModuleRef, RevisionRecord};
use serde::Serialize;

use crate::approve_change::approve_change;
use crate::commands::update_versioned;
use crate::commands::{print_json, safe, short};
use crate::context::Context;
use crate::pins::{self, SourcePins};
use crate::registry::Registry;
use crate::resolve::{self, Lookup};
use crate::versioned::VersionedIndex;
use crate::workflow::{self, Locker, Request, is_registry_import};
use crate::{approve, mlld_home, usage, versioned_lock};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry update                      # every locked module\n  mlld-registry update adamavenir/json-utils\n  mlld-registry update --yes --json         # approve changed content without asking"
)]
pub struct Args {
    /// Only this module (user/module, @user/module or mlld://user/module).
    pub module: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub import: String,
    pub from: String,
    pub to: String,
    pub from_date: Option<String>,
    pub to_date: Option<String>,
    pub from_size: Option<u64>,
    pub to_size: u64,
    pub content_changed: bool,
    /// Advisories about the module created after the old entry was approved: `user/id (severity)`.
    pub new_advisories: Vec<String>,
    /// A short unified diff of the module file.
    pub diff: String,
    /// A versioned module: the range or tag the move stayed within
    /// (`from` and `to` are versions, not revisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// A newer release the pins keep out:
    /// `(2.0.0 available outside ^1.2 pinned at main.mld:3)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outside: Option<String>,
}

/// What `update` did: the moves, and the modules a pin kept where they are
/// although a newer release exists (`@a/b 1.4.0 (2.0.0 available outside …)`).
pub struct Updated {
    pub changes: Vec<Change>,
    pub held: Vec<String>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let Updated { changes, held } = update(ctx, args.module.as_deref())?;
    if ctx.json {
        print_json(&changes)?;
        for h in &held {
            eprintln!("note: kept {}", safe(h));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if changes.is_empty() {
        match &args.module {
            Some(m) => crate::outln!(
                "{} is at the newest revision or version its pins allow",
                safe(m)
            ),
            None => crate::outln!(
                "every locked module is at the newest revision or version its pins allow (versioned modules: the newest version their range or tag selects)"
            ),
        }
    }
    for c in &changes {
        let outside = c
            .outside
            .as_deref()
            .map_or(String::new(), |o| format!(" {o}"));
        crate::outln!(
            "updated {} {} → {}{}",
            safe(&c.import),
            safe(short(&c.from)),
            safe(short(&c.to)),
            safe(&outside)
        );
    }
    for h in &held {
        crate::outln!("kept {}", safe(h));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn update(ctx: &Context, only: Option<&str>) -> Result<Updated> {
    let only = only.map(ModuleRef::parse).transpose()?;
    if let Some(pin) = only.as_ref().and_then(|o| o.pin.as_deref()) {
        bail!(
            "`update` moves a module to the snapshot's newest revision and takes no pin (`@{pin}`); to lock a given revision, run `mlld-registry resolve` with it"
        );
    }
    let verified = ctx.registry()?;
    ctx.require_fresh("update")?;
    let lookup = Lookup::new(verified);
    let _guard = ctx.project.exclusive()?;
    ctx.project.clean_staging()?;
    mlld_home::check(ctx)?;
    let mut lock = ctx.project.read_lock()?;
    let versioned_locked = |o: &ModuleRef| {
        lock.modules
            .keys()
            .any(|k| k.eq_ignore_ascii_case(&o.at_name()))
    };
    if let Some(o) = &only
        && !lock.imports.contains_key(&o.import_path())
        && !versioned_locked(o)
    {
        bail!(
            "{} is not in the lock file; add it with `mlld-registry resolve {}`",
            o.import_path(),
            o.full_name()
        );
    }
    let index = VersionedIndex::new(verified);
    let pins = SourcePins::scan(ctx, &lock, &lookup, &index)?;
    let mut changes = Vec::new();
    let mut held = Vec::new();
    let mut updated = Vec::new();
    let imports: Vec<String> = lock.imports.keys().cloned().collect();
    for import in imports.iter().filter(|k| is_registry_import(k)) {
        let r = ModuleRef::parse(import)?;
        if only
            .as_ref()
            .is_some_and(|o| o.import_path() != r.import_path())
        {
            continue;
        }
        let Some(module) = lookup.get(&r.user, &r.module)? else {
            let import = safe(import);
            eprintln!(
                "note: {import} is no longer in the registry snapshot; it stays at its locked revision"
            );
            continue;
        };
        let entry = lock.imports[import].clone();
        // A revision pin in a source holds the module at that revision.
        let source_pins = pins.of(import);
        let new = pins::wanted_revision(module, source_pins)?;
        let outside = pins::outside_note(
            short(&module.current.revision),
            short(&new.revision),
            &pins::describe_bound(source_pins, None),
            module.current.revision != new.revision,
        );
        let same_gist = parse_resolved(&entry.resolved).is_some_and(|(_, g)| g == module.gist);
        if same_gist && new.revision == entry.gist_revision {
            if let Some(note) = outside {
                held.push(format!("{import} {} {note}", short(&entry.gist_revision)));
            }
            continue;
        }
        let content = verified.read_blob(&new.integrity)?;
        let mut change = describe(ctx, verified, module, &entry, new, &content, import)?;
        change.outside = outside;
        if !ctx.json {
            crate::out!("{}", render(&change));
        }
        if change.content_changed {
            approve_change(
                &approve::describe(&verified.advisories_for(module)?, module, new, &content),
                &module.full_name(),
                ctx.yes,
                &format!(
                    "moving {import} from revision {} to {} changes its content",
                    short(&entry.gist_revision),
                    short(&new.revision)
                ),
            )?;
        }
        let mut fresh = workflow::new_entry(module, new, ctx);
        if !change.content_changed {
            fresh.approved_at = entry.approved_at.clone();
        }
        fresh.extra = entry.extra.clone();
        lock.imports.insert(import.clone(), fresh);
        updated.push((module, new, content, import.clone()));
        changes.push(change);
    }
    let moved =
        update_versioned::update(ctx, verified, &mut lock, only.as_ref(), &pins, &mut held)?;
    let moved_keys: Vec<String> = moved.iter().map(|c| c.import.clone()).collect();
    changes.extend(moved);
    if !changes.is_empty() {
        // Versions that moved may need modules the lock does not hold yet.
        let mut locker = Locker::new(ctx, verified, lock);
        let index = VersionedIndex::new(verified);
        for key in &moved_keys {
            let (_, record) =
                versioned_lock::locked_record(&index, key, &locker.lock.modules[key])?;
            let deps: Vec<Request> = record
                .dependencies
                .iter()
                .map(|d| Request::parse(d))
                .collect::<Result<_>>()?;
            locker.lock_dependencies(&deps)?;
        }
        locker.approve_pending()?;
        let lock = locker.lock;
        ctx.project.write_lock(&lock)?;
        for (module, rev, content, import) in &updated {
            workflow::write_cache(ctx, module, rev, import, content)?;
        }
        for (key, entry) in &lock.modules {
            versioned_lock::install_entry(ctx, Some((verified, &index)), key, entry)?;
        }
        let keys: Vec<String> = changes.iter().map(|c| c.import.clone()).collect();
        mlld_home::sync(ctx, &lock, &keys)?;
        let events: Vec<_> = changes
            .iter()
            .map(|c| (c.import.clone(), usage::UPDATE))
            .collect();
        usage::record(ctx, &events);
    }
    Ok(Updated { changes, held })
}

fn describe(
    ctx: &Context,
    verified: &Registry,
    module: &ModuleRecord,
    entry: &LockEntry,
    new: &RevisionRecord,
    content: &[u8],
    import: &str,
) -> Result<Change> {
    let old = resolve::locked_revision(module, &entry.gist_revision);
    // The old content: from the snapshot's history, else from the project cache.
    let old_content = old
        .and_then(|o| verified.read_blob(&o.integrity).ok())
        .or_else(|| {
            let (user, gist) = parse_resolved(&entry.resolved)?;
            let dir = ctx.project.cache_dir(user, gist, &entry.gist_revision);
            let bytes = std::fs::read(dir.join("content.mld")).ok()?;
            (mlld_schemas::integrity_of(&bytes) == entry.integrity).then_some(bytes)
        });
    let new_advisories = advisories_since(verified.advisories_for(module)?, &entry.approved_at);
    let diff = match &old_content {
        Some(old) => short_diff(old, content, 40),
        None => "(the old content is in neither the snapshot nor the cache)\n".into(),
    };
    Ok(Change {
        import: import.to_string(),
        from: entry.gist_revision.clone(),
        to: new.revision.clone(),
        from_date: old.and_then(|o| o.committed_at.clone()),
        to_date: new.committed_at.clone(),
        from_size: old
            .map(|o| o.size)
            .or(old_content.as_ref().map(|c| c.len() as u64)),
        to_size: new.size,
        content_changed: entry.integrity != new.integrity,
        new_advisories,
        diff,
        requested: None,
        outside: None,
    })
}

pub(crate) fn render(c: &Change) -> String {
    let date = |d: &Option<String>| d.clone().unwrap_or_else(|| "unknown date".into());
    let size = match c.from_size {
        Some(f) => format!(
            "{f} → {} bytes ({:+})",
            c.to_size,
            c.to_size as i64 - f as i64
        ),
        None => crate::output::count(c.to_size, "byte", "bytes"),
    };
    let (label, within) = match &c.requested {
        Some(requested) => ("version", format!(", within {requested}")),
        None => ("revision", String::new()),
    };
    let mut out = format!(
        "{}\n  {label:<10}{} ({}) → {} ({}){}\n  size      {size}\n",
        safe(&c.import),
        safe(short(&c.from)),
        safe(&date(&c.from_date)),
        safe(short(&c.to)),
        safe(&date(&c.to_date)),
        safe(&within)
    );
    for a in &c.new_advisories {
        out.push_str(&format!("  ADVISORY  {}\n", safe(a)));
    }
    if !c.content_changed {
        out.push_str("  content   unchanged\n");
    }
    for line in c.diff.lines() {
        out.push_str(&format!("  {}\n", diff_line(line)));
    }
    out
}

/// A diff line in its colour (when colour is on): removals red, additions
/// green, hunk headers cyan.
fn diff_line(line: &str) -> String {
    let code = match line.as_bytes().first() {
        _ if line.starts_with("---") || line.starts_with("+++") => "1",
        Some(b'-') => "31",
        Some(b'+') => "32",
        Some(b'@') => "36",
        _ => return line.to_string(),
    };
    crate::color::paint(line, code)
}

/// A unified diff of at most `max_lines` lines, control characters replaced.
pub(crate) fn short_diff(old: &[u8], new: &[u8], max_lines: usize) -> String {
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header("locked", "newest")
        .to_string();
    let mut out = String::new();
    let total = text.lines().count();
    for line in text.lines().take(max_lines) {
        out.push_str(&safe(line));
        out.push('\n');
    }
    if total > max_lines {
        out.push_str(&format!("… {} more diff lines\n", total - max_lines));
    }
    out
}

/// `user/id (severity)` of the advisories created after `approved_at` (all
/// of them when either date does not parse: better shown twice than missed).
pub(crate) fn advisories_since<'a>(
    advisories: impl IntoIterator<Item = &'a mlld_schemas::AdvisoryRecord>,
    approved_at: &str,
) -> Vec<String> {
    let approved = parse_timestamp(approved_at).ok();
    advisories
        .into_iter()
        .filter(|a| match (parse_timestamp(&a.advisory.created), approved) {
            (Ok(created), Some(approved)) => created > approved,
            _ => true,
        })
        .map(|a| {
            format!(
                "{}/{} ({})",
                a.user,
                a.advisory.id,
                a.advisory.severity.as_str()
            )
        })
        .collect()
}
