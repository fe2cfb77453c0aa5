//! The mlld registry indexer: reads a registry checkout, fetches every
//! module's gist (recorded responses, or the GitHub API), content-addresses
//! every file, and publishes a signed, reproducible snapshot plus a static site.
//!
//! It never reads or writes a project's `.mlld/` and never trusts a gist's
//! claim of ownership without checking it against the registering user.
//!
//! The crate's API is [`build()`] with its [`BuildConfig`] and
//! [`BuildReport`], the gist and raw sources, signing keys,
//! [`check::check`] and [`object_publish::publish`] (a built site to S3); `blobs`, `search_index` and `versioned_load` are public
//! for `cargo xtask check` and the benchmarks. Every other module is internal.

mod assemble;
mod background_write;
mod beside;
pub mod blobs;
pub mod build;
mod capture;
pub mod check;
mod content_summary;
mod crawl_state;
mod delta_chunks;
mod delta_writer;
pub mod gist;
pub mod github;
mod http;
mod io_threads;
mod members;
pub mod memory;
mod module_file;
mod module_names;
pub mod object_publish;
mod previous;
mod previous_manifest;
mod progress;
mod publish;
pub mod raw;
pub mod record_spill;
mod registry_load;
pub mod report;
mod retention;
mod search_incremental;
pub mod search_index;
pub mod signing;
mod site_data;
mod snapshot_writer;
mod sparse_writer;
mod staged_manifest;
mod text_map;
mod versioned_assemble;
mod versioned_build;
pub mod versioned_load;
mod versioned_records;

pub use build::{BuildConfig, PreviousSite, RawConfig, build};
pub use gist::{GistSource, RecordedGists};
pub use github::{GithubConfig, GithubGists};
pub use http::install_crypto_provider;
pub use object_publish::{ObjectPublishConfig, ObjectTarget, PublishReport};
pub use raw::{HttpRawConfig, RawSource};
pub use report::BuildReport;
pub use signing::SigningKey;
