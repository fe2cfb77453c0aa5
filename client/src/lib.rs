//! The mlld registry client: syncs signed snapshots, resolves
//! `mlld://user/module` imports through them, writes `.mlld/mlld.lock.json`,
//! fills `.mlld/cache/`, audits, verifies and updates.
//!
//! It never talks to GitHub, trusts no byte before its signature and hash
//! are checked, and writes only inside the project's `.mlld/` and its store.

pub mod advisory_fix;
pub mod approval;
pub mod approve;
pub mod approve_change;
pub mod cli;
pub mod color;
pub mod commands;
pub mod config;
pub mod context;
mod gist_lock;
pub mod imported_state;
pub mod info;
pub mod info_versioned;
pub mod input;
pub mod json_output;
pub mod lock_graph;
#[macro_use]
pub mod output;
mod manifest_check;
pub mod mlld_config;
pub mod mlld_home;
pub mod pins;
pub mod project;
pub mod registry;
pub mod rejected;
pub mod resolve;
pub mod scan;
pub mod search;
mod search_dir;
pub mod search_query;
pub mod search_store;
pub mod sparse;
pub mod store;
pub mod sync;
pub mod trust;
pub mod usage;
pub mod versioned;
pub mod versioned_cache;
pub mod versioned_lock;
pub mod workflow;
