//! The mlld registry indexer: reads a registry checkout, fetches every
//! module's gist (recorded responses, or the GitHub API), content-addresses
//! every file, and publishes a signed, reproducible snapshot plus a static site.
//!
//! It never reads or writes a project's `.mlld/` and never trusts a gist's
//! claim of ownership without checking it against the registering user.

pub mod assemble;
pub mod blobs;
pub mod build;
pub mod capture;
pub mod check;
pub mod content_summary;
pub mod delta_writer;
pub mod gist;
pub mod github;
pub mod http;
pub mod module_file;
pub mod previous;
pub mod previous_http;
pub mod progress;
pub mod publish;
pub mod raw;
pub mod registry_load;
pub mod report;
pub mod retention;
pub mod search_incremental;
pub mod search_index;
pub mod signing;
pub mod site_data;
pub mod snapshot_writer;
pub mod versioned_assemble;
pub mod versioned_build;
pub mod versioned_load;
pub mod versioned_records;

pub use build::{BuildConfig, PreviousSite, RawConfig, build};
pub use gist::{GistSource, RecordedGists};
pub use github::{GithubConfig, GithubGists};
pub use raw::{HttpRawConfig, RawSource};
pub use report::BuildReport;
pub use signing::SigningKey;
