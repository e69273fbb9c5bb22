//! The git source: shared bare mirrors, cheap "anything new?" checks, refs, credentials, and
//! reading a ToolJet app from a commit without a checkout.
//!
//! Cache layout: `<cache dir>/mirrors/<key>.git`, one bare repository per (normalised URL,
//! credential identity); `<key>` is a hash of both, so different Secrets never share objects and
//! nothing secret is on disk (remotes are anonymous; no URL or credential in the mirror's config).
//! The default cache dir is `$XDG_CACHE_HOME/tooljet-operator`, else `/tmp/tooljet-operator-cache`.
//! Each mirror holds a `tooljet-operator-last-used` marker; [`SourceCache::gc`] removes mirrors
//! unused for longer than the TTL. A mirror that fails verification (a ref pointing at an
//! unreadable object, or not a repository) is deleted and fetched again. Lock files (`*.lock`) that a
//! killed process left in a mirror are removed the first time this process opens it.
//!
//! Concurrency: one operation at a time per mirror (an async mutex per key, held by the blocking
//! git task until it ends, even after a timeout). A caller that waited reuses a ref listing that
//! started after it asked, and fetches nothing when the commit is already there: N concurrent
//! resolves of one ref cost one listing and at most one fetch. A listing is kept whole, so it
//! answers for every branch and tag of the repository: the controller reuses it for
//! `reuse_ref_checks`, the command line (`one_listing_per_run`) for the whole run, and a run that
//! announced its refs ([`SourceCache::expect_refs`]) fetches the ones it lacks in one fetch.
//! Mirrors (one per URL and credential identity) are independent of each other. One process owns
//! a cache directory.
//!
//! Network: a ref check is a connection that lists refs (no objects); a fetch happens only when
//! the wanted commit is missing. A pinned commit already in the mirror needs no network. Every
//! call's network work has a deadline (`network_timeout`), enforced by libgit2's socket timeouts,
//! by the transfer callbacks, and by a tokio timeout around the blocking task.
//!
//! Decisions where the issue was silent:
//! - `Resolved::moved` is true when the caller knew no commit. `force_pushed` means the new
//!   commit does not descend from the known one; a known commit absent from the (complete,
//!   never shallow) mirror counts as not an ancestor.
//! - `AppSource::last_change` follows first parents and compares the tree entry of the app's
//!   directory (`<gitAppName>/`, Git Sync layout) or of the bundle (path), so a commit to another
//!   app, or to `.meta/meta.json` alone, is not a change of this app. `app_changed_between`
//!   compares the bundle's path and blob id; an app absent from both commits is unchanged.
//! - For a bundle at a path, `git_app_name` is `appV2.name` (else the file stem) and
//!   `version_name` the editing version's name (else the file stem).
//! - A pinned commit is fetched by sha first (servers with `uploadpack.allowAnySHA1InWant` or
//!   `allowReachableSHA1InWant`), then by fetching all branches and tags, then `CommitNotFound`.
//!
//! Writing (AppExport): [`SourceCache::commit_and_push`] builds a commit on the mirror without a
//! checkout and pushes it without force, retrying on a branch that moved (see `push.rs`).

mod cache;
mod credentials;
mod error;
mod known_hosts;
mod layout;
mod push;
mod remote;

pub use cache::{
    CacheConfig, GitRef, MirrorStats, Resolved, SourceCache, SourceObserver, SourceSpec,
    default_cache_dir,
};
pub use credentials::{Credentials, TOKEN_USERNAME};
pub use error::{Result, SourceError};
pub use known_hosts::{HostKeyCheck, KnownHosts};
pub use layout::{AppLocator, AppSource, CommitInfo, MAX_BUNDLE_BYTES};
pub use push::{
    FileChange, HeadTree, Planned, Planner, PushOutcome, PushRequest, check_branch, check_repo_path,
};
pub(crate) use remote::display_url;
