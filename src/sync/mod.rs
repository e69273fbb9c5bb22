//! The sync engine: applies one app from git to one ToolJet instance, safely and idempotently.
//! It knows nothing about Kubernetes: the controller and `tooljet-operator sync` / `plan` both
//! call it with a spec, the instance, credentials and the state the last run left.
//!
//! - [`plan`]: the pure decision (create, update, restore, rename, refuse, nothing) and the no-op
//!   rules (what a run need not read).
//! - [`engine`]: one run as observe → decide → act → verdict; `observe`, `recover`, `act`,
//!   `swap` (the crash-safe write order), `import` and `convert` hold its parts.
//! - [`names`]: the names of temporary and moved-aside apps, by which leftovers are recognised.
//! - [`verify`]: what an imported app must hold before a run reports success.
//! - [`connect`]: ToolJet client configuration and git credentials from Secret data.
//! - [`config_plan`]: what to write for an instance's constants and data-source options (pure).
//! - [`instance_config`]: applies an instance's constants and data-source options (I/O around
//!   [`config_plan`]).
//! - [`export`]: apps from ToolJet back into git (AppExport, `export -f`).
//! - [`promotion`]: the pure rules of `ref.fromAppImport` (which upstream commit, from when,
//!   tenancy, cycles).
//! - [`request`]: an AppImport, its instance and Secrets to a ToolJet client and a [`SyncRequest`]
//!   (for the controller and the command line alike).
//! - [`state`]: what the engine remembers between runs ([`SyncState`]).

mod act;
mod changes;
pub mod config_plan;
pub mod connect;
mod convert;
mod datasources;
pub mod engine;
mod error;
pub mod export;
mod import;
pub mod instance_config;
pub mod names;
mod observe;
mod outcome;
pub mod plan;
pub mod promotion;
mod recover;
pub mod request;
mod state;
mod swap;
mod verify;

pub use changes::change_summary;
pub use connect::{Secrets, git_credentials, tooljet_config};
pub use convert::{commit_status, source_of};
pub use engine::{Checkpoint, Engine, Mode, NoCheckpoint};
pub use error::SyncError;
pub use names::ImportKey;
pub use outcome::{Action, SyncOutcome};
pub use request::{SyncRequest, sync_request, tooljet_client, with_promotion};
pub use state::SyncState;

/// AppImports synced at the same time unless told otherwise: the controller's workers
/// (`run --concurrency`) and a `sync -f` / `plan -f` run (`--concurrency`) alike.
pub const DEFAULT_CONCURRENCY: u16 = 4;
