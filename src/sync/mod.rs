//! The sync engine: applies one app from git to one ToolJet instance, safely and idempotently.
//! It knows nothing about Kubernetes: the controller and `tooljet-operator sync` / `plan` both
//! call it with a spec, the instance, credentials and the state the last run left.
//!
//! - [`plan`]: the pure decision (create, update, restore, rename, refuse, nothing).
//! - [`engine`]: observation and the crash-safe write order (import under a temporary name, swap).
//! - [`names`]: the names of temporary and moved-aside apps, by which leftovers are recognised.
//! - [`verify`]: what an imported app must hold before a run reports success.
//! - [`connect`]: ToolJet client configuration and git credentials from Secret data.
//! - [`config_plan`]: what to write for an instance's constants and data-source options (pure).
//! - [`export`]: apps from ToolJet back into git (AppExport, `export -f`).
//! - [`promotion`]: the pure rules of `ref.fromAppImport` (which upstream commit, from when,
//!   tenancy, cycles).

pub mod config_plan;
pub mod connect;
mod datasources;
pub mod engine;
mod error;
pub mod export;
pub mod names;
mod outcome;
pub mod plan;
pub mod promotion;
mod verify;

pub use connect::{Secrets, git_credentials, tooljet_config};
pub use engine::{Checkpoint, Engine, Mode, NoCheckpoint, SyncRequest, commit_status};
pub use error::SyncError;
pub use names::ImportKey;
pub use outcome::{Action, Drift, Report, SyncOutcome};
