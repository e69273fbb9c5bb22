//! Real git repositories and loopback git servers for tests.
//!
//! - [`TestRepo`]: a working repository plus the bare repository it publishes to (the one the
//!   servers serve). Every mutation (commit, tag, reset) is pushed with `--force --mirror`, so a
//!   reset followed by a commit is a force-push as a git host would see it.
//! - [`GitDaemon`], [`HttpGitServer`] (smart HTTP over `git http-backend`, optional basic auth),
//!   [`SshGitServer`] (`sshd` with generated host and user keys): all bind 127.0.0.1 and are
//!   stopped on drop.
//!
//! - [`tooljet`]: real ToolJet export bundles and a writer for ToolJet Git Sync's layout.
//!
//! Everything panics on failure: this crate is only used from tests.

mod daemon;
mod http;
mod repo;
mod ssh;
pub mod tooljet;
mod util;

pub use daemon::GitDaemon;
pub use http::HttpGitServer;
pub use repo::{Author, TestRepo};
pub use ssh::SshGitServer;
pub use util::{git_exec_path, spawn_listening};
