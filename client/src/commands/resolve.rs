//! `resolve REFERENCE`: lock one module (with its dependencies) and cache it.

use std::process::ExitCode;

use anyhow::Result;
use mlld_schemas::ModuleRef;

use crate::commands::{print_json, safe, short};
use crate::context::Context;
use crate::workflow::{self, Locked, Locker};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry resolve mlld://adamavenir/json-utils\n  mlld-registry resolve @adamavenir/json-utils@b20e54d --yes\n  mlld-registry resolve @textkit/slugify --snapshot registry.tar.zst --trusted-key mlld-registry.pub"
)]
pub struct Args {
    /// mlld://user/module, @user/module, or @user/module@<revision prefix>.
    pub reference: String,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let locked = resolve(ctx, &args.reference)?;
    if ctx.json {
        print_json(&locked)?;
    } else {
        for l in &locked {
            let verb = if l.added { "locked" } else { "already locked" };
            crate::outln!(
                "{verb} {} at {} ({})",
                safe(&l.import),
                safe(short(&l.gist_revision)),
                safe(&l.integrity)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves `reference` and its dependencies, records them in the lock file
/// and caches their content.
pub fn resolve(ctx: &Context, reference: &str) -> Result<Vec<Locked>> {
    let reference = ModuleRef::parse(reference)?;
    let verified = ctx.manifest()?;
    // A new import chooses content: refused on an expired snapshot before
    // the project is touched (the locker checks again for dependencies).
    if !ctx
        .project
        .read_lock()?
        .imports
        .contains_key(&reference.import_path())
    {
        ctx.require_fresh(&format!("locking {}", reference.full_name()))?;
    }
    let _guard = ctx.project.exclusive()?;
    ctx.project.clean_staging()?;
    let mut locker = Locker::new(ctx, verified, ctx.project.read_lock()?);
    let locked = locker.lock_all(std::slice::from_ref(&reference))?;
    if locker.changed {
        ctx.project.write_lock(&locker.lock)?;
    }
    for l in &locked {
        let entry = &locker.lock.imports[&l.import];
        workflow::install_entry(ctx, Some(verified), Some(&locker.lookup), &l.import, entry)?;
    }
    Ok(locked)
}
