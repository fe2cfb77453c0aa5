//! The mlld registry client: resolves `mlld://user/module` imports through a
//! signed snapshot, writes `.mlld/mlld.lock.json`, fills `.mlld/cache/`.
//!
//! It never talks to GitHub, trusts no byte before its signature and hash
//! are checked, and writes only inside the project's `.mlld/` and its store.

pub mod approve;
pub mod cli;
pub mod commands;
pub mod context;
pub mod info;
pub mod project;
pub mod resolve;
pub mod search;
pub mod search_query;
pub mod search_store;
pub mod snapshot_import;
pub mod store;
pub mod trust;
