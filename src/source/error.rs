//! Errors of the git source layer. Messages never carry a secret: URLs are shown with any
//! password removed and libgit2's messages are passed through [`Credentials::redact`].
//!
//! [`Credentials::redact`]: super::Credentials::redact

use std::time::Duration;

/// Everything that can go wrong while resolving a ref or reading an app from git.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "invalid repository URL {url:?}: {reason}; use https://, http://, ssh://, git://, file:// or user@host:path"
    )]
    InvalidUrl { url: String, reason: String },

    #[error("{value:?} is not a full commit sha; pin a commit with its 40 hex digits")]
    InvalidCommitId { value: String },

    #[error("invalid credentials Secret: {reason}")]
    InvalidCredentials { reason: String },

    #[error(
        "{url} asks for credentials and none were given; reference a Secret with username+password, token, or identity"
    )]
    AuthenticationRequired { url: String },

    #[error(
        "authentication to {url} failed; check the username, password/token or SSH key in the Secret"
    )]
    AuthenticationFailed { url: String },

    #[error(
        "the SSH host key of {host} is not in known_hosts; add the host's key to known_hosts in the Secret (ssh-keyscan)"
    )]
    HostKeyUnknown { host: String },

    #[error(
        "the SSH host key of {host} does not match known_hosts (possible man-in-the-middle, or the host key changed); verify the key and update known_hosts in the Secret"
    )]
    HostKeyMismatch { host: String },

    #[error(
        "{operation} on {url} did not finish within {after:?}; check that the git host is reachable, or raise the network timeout"
    )]
    Timeout {
        url: String,
        operation: &'static str,
        after: Duration,
    },

    #[error(
        "cannot reach repository {url}: {message}; check the URL and that the repository exists and the credentials can read it"
    )]
    RemoteUnavailable { url: String, message: String },

    #[error("{kind} {name:?} not found in {url}; available: {available:?}")]
    RefNotFound {
        url: String,
        kind: &'static str,
        name: String,
        available: Vec<String>,
    },

    #[error(
        "commit {sha} not found in {url}: it is not reachable from any branch or tag and the server refuses to send unadvertised commits; pin a commit on a branch or tag"
    )]
    CommitNotFound { url: String, sha: String },

    #[error("git mirror {path} failed: {message}")]
    Mirror { path: String, message: String },

    #[error(
        "commit {commit} has no .meta/meta.json, so it is not a ToolJet Git Sync layout; select the app by path to an export bundle instead"
    )]
    MetaJsonMissing { commit: String },

    #[error(
        ".meta/meta.json at commit {commit} is malformed: {reason}; it must map app ids to {{gitAppName, gitVersionName, ...}}"
    )]
    MetaJsonInvalid { commit: String, reason: String },

    #[error("app {name:?} is not in .meta/meta.json at commit {commit}; apps there: {available:?}")]
    AppNotFound {
        name: String,
        commit: String,
        available: Vec<String>,
    },

    #[error("bundle {path:?} does not exist at commit {commit}")]
    BundleMissing { path: String, commit: String },

    #[error("bundle {path:?} is not valid JSON: {reason}")]
    BundleNotJson { path: String, reason: String },

    #[error("bundle {path:?} has no app[0].definition; it is not a ToolJet app export")]
    BundleWithoutDefinition { path: String },

    #[error(
        "bundle {path:?} is {size} bytes, more than the limit of {limit} bytes (ToolJet's import limit)"
    )]
    BundleTooLarge { path: String, size: u64, limit: u64 },

    #[error(
        "path {path:?} is not confined to the repository: {reason}; use a relative path without '..'"
    )]
    PathEscapesRepo { path: String, reason: String },

    #[error(
        "path {path:?} goes through a symbolic link, which is never followed; point at the real file"
    )]
    SymlinkNotFollowed { path: String },

    #[error("unsupported layout at {path:?}: {reason}")]
    UnsupportedLayout { path: String, reason: String },

    #[error(
        "branch name {name:?} is not valid in git (git check-ref-format refuses refs/heads/{name}); use a name without spaces, '..', '~', '^', ':' or a trailing '.lock'"
    )]
    InvalidBranch { name: String },

    #[error(
        "{url} refused the push: the credentials cannot write to the repository ({message}); give the Secret write access (a token with push rights, a deploy key with write access)"
    )]
    PushDenied { url: String, message: String },

    #[error("{url} rejected the push to branch {branch:?}: {reason}; nothing was changed there")]
    PushRejected {
        url: String,
        branch: String,
        reason: String,
    },

    #[error(
        "branch {branch:?} of {url} kept moving: {attempts} attempts to commit on top of its newest commit were all overtaken by other pushes; nothing was force-pushed, try again later"
    )]
    PushConflict {
        url: String,
        branch: String,
        attempts: u32,
    },

    #[error("internal error in the git source: {0}")]
    Internal(String),
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;
