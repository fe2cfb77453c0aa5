//! Everything `sync` does below its command line: where it reads
//! (`site`), verifying a snapshot and bringing it into the store
//! (`snapshot_import`, streaming in `unpack`), delta sync (`delta`, with
//! the chunk delta route in `delta_patch`, its base in `delta_base`). `commands/sync.rs` keeps the
//! arguments, the order of the steps and the printing; the sparse route is
//! in `crate::sparse`.

pub mod delta;
mod delta_base;
mod delta_patch;
mod delta_stats;
mod manifest_stream;
mod members;
pub mod run;
pub mod site;
pub mod snapshot_import;
mod unpack;
pub mod verify;
