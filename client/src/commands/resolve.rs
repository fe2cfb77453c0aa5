//! `resolve REFERENCE`: lock one module (with its dependencies) and cache it.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{print_json, safe, short};
use crate::context::Context;
use crate::workflow::{self, Locked, Locker, Request};
use crate::{mlld_home, versioned_lock};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry resolve mlld://adamavenir/json-utils\n  mlld-registry resolve @adamavenir/json-utils@b20e54d --yes\n  mlld-registry resolve @alice-dev/prompt-lib@^1.2  # a versioned module: range, version or tag\n  mlld-registry resolve @alice-dev/prompt-lib@stable\n  mlld-registry resolve @textkit/slugify --snapshot registry.tar.zst --trusted-key mlld-registry.pub"
)]
pub struct Args {
    /// mlld://user/module, @user/module, @user/module@<revision prefix>, or
    /// @author/name@<version, range or tag> for a versioned module.
    pub reference: String,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let before = ctx.project.read_lock()?;
    let locked = resolve(ctx, &args.reference)?;
    if ctx.json {
        print_json(&locked)?;
        return Ok(ExitCode::SUCCESS);
    }
    let after = ctx.project.read_lock()?;
    for (i, l) in locked.iter().enumerate() {
        let at = |version: Option<&String>, revision: Option<&String>| match (version, revision) {
            (Some(v), _) => v.clone(),
            (None, Some(rev)) => short(rev).to_string(),
            (None, None) => String::new(),
        };
        let now = at(l.version.as_ref(), l.gist_revision.as_ref());
        let was = before
            .imports
            .get(&l.import)
            .map(|e| short(&e.gist_revision).to_string())
            .or_else(|| before.modules.get(&l.import).map(|e| e.version.clone()));
        let asked = |lock: &mlld_schemas::LockFile| {
            lock.modules.get(&l.import).map(|e| e.requested.clone())
        };
        let (asked_before, asked_now) = (asked(&before), asked(&after));
        let name = safe(&l.import);
        // The root (first) says how an existing entry met a new pin.
        match (&was, i == 0) {
            (Some(was), true) if *was != now => crate::outln!(
                "moved {name} from {} to {} ({}), as {} asks",
                safe(was),
                safe(&now),
                safe(&l.integrity),
                safe(&args.reference)
            ),
            (Some(_), true) if asked_before != asked_now => crate::outln!(
                "kept {name} at {} ({}): it satisfies {}; the lock now asks for {} instead of {}",
                safe(&now),
                safe(&l.integrity),
                safe(asked_now.as_deref().unwrap_or("")),
                safe(asked_now.as_deref().unwrap_or("")),
                safe(asked_before.as_deref().unwrap_or(""))
            ),
            _ => {
                let verb = if l.added { "locked" } else { "already locked" };
                crate::outln!("{verb} {name} at {} ({})", safe(&now), safe(&l.integrity));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves `reference` and its dependencies, records them in the lock file
/// and caches their content; keeps mlld's own files current.
pub fn resolve(ctx: &Context, reference: &str) -> Result<Vec<Locked>> {
    let request = Request::parse(reference)?;
    let verified = ctx.registry()?;
    // A new import chooses content: refused on an expired snapshot before
    // the project is touched (the locker checks again for dependencies).
    let lock = ctx.project.read_lock()?;
    let r = &request.reference;
    let names = [r.import_path(), format!("@{}/{}", r.user, r.module)];
    let is_locked = lock
        .imports
        .keys()
        .chain(lock.modules.keys())
        .any(|k| names.iter().any(|n| k.eq_ignore_ascii_case(n)));
    if !is_locked {
        ctx.require_fresh(&format!("locking {}", r.full_name()))?;
    }
    let _guard = ctx.project.exclusive()?;
    ctx.project.clean_staging()?;
    mlld_home::check(ctx)?;
    let mut locker = Locker::new(ctx, verified, ctx.project.read_lock()?);
    locker.approvals.origin = Some("asked for on the command line".into());
    let locked = locker.lock_requests(std::slice::from_ref(&request))?;
    locker.approve_pending()?;
    if locker.changed {
        ctx.project.write_lock(&locker.lock)?;
    }
    for l in &locked {
        if let Some(entry) = locker.lock.modules.get(&l.import) {
            let snapshot = Some((verified, &locker.versioned));
            versioned_lock::install_entry(ctx, snapshot, &l.import, entry)?;
        } else {
            let entry = &locker.lock.imports[&l.import];
            workflow::install_entry(ctx, Some(verified), Some(&locker.lookup), &l.import, entry)?;
        }
    }
    let keys: Vec<String> = locked.iter().map(|l| l.import.clone()).collect();
    mlld_home::sync(ctx, &locker.lock, &keys)?;
    Ok(locked)
}
