//! The git source: shared bare mirrors, cheap "anything new?" checks, refs, credentials, and
//! reading a ToolJet app from a commit without a checkout.
//!
//! Cache layout: `<cache dir>/mirrors/<key>.git`, one bare repository per (normalised URL,
//! credential identity); `<key>` is a hash of both, so different Secrets never share objects and
//! nothing secret is on disk (remotes are anonymous; no URL or credential in the mirror's config).
//! The default cache dir is `$XDG_CACHE_HOME/tooljet-operator`, else `/tmp/tooljet-operator-cache`.
//! Each mirror holds a `tooljet-operator-last-used` marker; [`SourceCache::gc`] removes mirrors
//! unused for longer than the TTL. A mirror that fails verification (a ref pointing at an
//! unreadable object, or not a repository) is deleted and fetched again.
//!
//! Concurrency: one operation at a time per mirror (an async mutex per key, held by the blocking
//! git task until it ends, even after a timeout). A caller that waited reuses a ref listing that
//! started after it asked, and fetches nothing when the commit is already there: N concurrent
//! resolves of one ref cost one listing and at most one fetch. Mirrors are independent of each
//! other. One process owns a cache directory.
//!
//! Network: a ref check is a connection that lists refs (no objects); a fetch happens only when
//! the wanted commit is missing. A pinned commit already in the mirror needs no network. Every
//! call's network work has a deadline (`network_timeout`), enforced by libgit2's socket timeouts,
//! by the transfer callbacks, and by a tokio timeout around the blocking task.

mod cache;
mod credentials;
mod error;
mod known_hosts;
mod layout;
mod remote;

pub use cache::{
    CacheConfig, GitRef, MirrorStats, Resolved, SourceCache, SourceSpec, default_cache_dir,
};
pub use credentials::{Credentials, TOKEN_USERNAME};
pub use error::{Result, SourceError};
pub use known_hosts::{HostKeyCheck, KnownHosts};
pub use layout::{AppLocator, AppSource, CommitInfo, MAX_BUNDLE_BYTES};
