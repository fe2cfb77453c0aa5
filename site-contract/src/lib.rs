//! The published site is the contract between indexer and client: both
//! depend on this crate for where its files live ([`paths`]), how they are
//! read ([`reader`]: a directory or HTTP, capped, timed, hashed while they
//! stream), how `latest.json` is verified ([`latest`]), how its archives
//! are read ([`archive`]), how the sparse shards ([`sparse`]) and the
//! chunk deltas ([`chunk_delta`]) are encoded, so neither side spells them on its own. The formats
//! themselves (types) are in `mlld_schemas`, which stays free of I/O.

pub mod archive;
pub mod chunk_delta;
pub mod hashing;
pub mod json_stream;
pub mod latest;
pub mod paths;
pub mod reader;
pub mod sparse;
