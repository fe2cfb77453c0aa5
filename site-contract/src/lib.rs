//! The published site is the contract between indexer and client: both
//! depend on this crate for how its files are encoded, so neither spells
//! them on its own. The formats themselves (types, paths) are in
//! `mlld_schemas`, which stays free of I/O and codecs.

pub mod paths;
pub mod sparse;
