//! Modules and versions the indexer rejected, as the signed manifest records
//! them (`rejected`): a reference to one is reported as rejected, with the
//! reason, not as a module the snapshot does not know.

use mlld_schemas::{RejectedRecord, VersionSpec, VersionedModule};

use crate::commands::safe;

/// Whether a rejection names `user/module` (`@author/name` alike; users
/// compare case-insensitively).
fn names(r: &RejectedRecord, user: &str, module: &str) -> bool {
    r.user_and_name()
        .is_some_and(|(u, m)| u.eq_ignore_ascii_case(user) && m == module)
}

/// Why the module `user/module` is not in the snapshot, when the indexer
/// rejected it (the whole gist module, or every version of a versioned one).
pub fn module_message(
    rejected: &[RejectedRecord],
    serial: u64,
    user: &str,
    module: &str,
) -> Option<String> {
    let found: Vec<&RejectedRecord> = rejected.iter().filter(|r| names(r, user, module)).collect();
    let first = found.first()?;
    let why = match found.iter().find(|r| r.version.is_none()) {
        Some(whole) => safe(&whole.reason).into_owned(),
        None => found
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.version.as_deref().unwrap_or("?"),
                    safe(&r.reason)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    };
    Some(format!(
        "{} was rejected by the registry's indexer (snapshot serial {}): {why}. It cannot be locked until its author fixes it and a new snapshot is published (then `mlld-registry sync`)",
        safe(&first.module),
        serial
    ))
}

/// Why a pin that selects none of a versioned module's versions selects
/// nothing: the rejected versions it would have accepted.
pub fn version_message(
    rejected: &[RejectedRecord],
    serial: u64,
    module: &VersionedModule,
    pin: Option<&str>,
) -> Option<String> {
    let spec = pin.and_then(|p| VersionSpec::parse(p).ok());
    let hit: Vec<String> = rejected
        .iter()
        .filter(|r| names(r, &module.author, &module.name))
        .filter_map(|r| Some((r.version.as_deref()?, r)))
        .filter(|(v, _)| match &spec {
            Some(s @ (VersionSpec::Exact(_) | VersionSpec::Range(_))) => s.matches(v, &module.tags),
            _ => false,
        })
        .map(|(v, r)| format!("{v}: {}", safe(&r.reason)))
        .collect();
    if hit.is_empty() {
        return None;
    }
    Some(format!(
        "{}@{} matches none of the versions in this snapshot ({}): the registry's indexer rejected {} (snapshot serial {}); pick another version",
        module.full_name(),
        safe(pin.unwrap_or("latest")),
        crate::versioned::available(module),
        hit.join("; "),
        serial,
    ))
}
