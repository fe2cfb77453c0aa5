//! `resolve REFERENCE`: lock one module (with its dependencies) and cache it.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{print_json, safe, short};
use crate::context::Context;
use crate::workflow::{self, Locked, Locker, Request};
use crate::{mlld_home, versioned_lock};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry resolve mlld://adamavenir/json-utils\n  mlld-registry resolve @adamavenir/json-utils@b20e54d --yes\n  mlld-registry resolve @alice/tool@^1.2      # a versioned module: range, exact version or tag\n  mlld-registry resolve @alice/tool@stable\n  mlld-registry resolve @textkit/slugify --snapshot registry.tar.zst --trusted-key mlld-registry.pub"
)]
pub struct Args {
    /// mlld://user/module, @user/module, @user/module@<revision prefix>, or
    /// @author/name@<version, range or tag> for a versioned module.
    pub reference: String,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let locked = resolve(ctx, &args.reference)?;
    if ctx.json {
        print_json(&locked)?;
    } else {
        for l in &locked {
            let verb = if l.added { "locked" } else { "already locked" };
            let at = match (&l.version, &l.gist_revision) {
                (Some(v), _) => v.clone(),
                (None, Some(rev)) => short(rev).to_string(),
                (None, None) => String::new(),
            };
            crate::outln!(
                "{verb} {} at {} ({})",
                safe(&l.import),
                safe(&at),
                safe(&l.integrity)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves `reference` and its dependencies, records them in the lock file
/// and caches their content; keeps mlld's own files current.
pub fn resolve(ctx: &Context, reference: &str) -> Result<Vec<Locked>> {
    let request = Request::parse(reference)?;
    let verified = ctx.manifest()?;
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
