//! What can go wrong talking to ToolJet, in terms a caller can act on.

use std::fmt;

/// Why a request that may well succeed later failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransientKind {
    /// The server answered with this status (5xx, 408 or 429).
    Status(u16),
    /// No answer within the request timeout (or no connection within the connect timeout).
    Timeout,
    /// Nothing listens at the address.
    ConnectionRefused,
    /// The connection was reset or closed before a full answer.
    ConnectionClosed,
    /// The connection could not be made for another reason (DNS, routing).
    ConnectFailed,
}

impl fmt::Display for TransientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransientKind::Status(s) => write!(f, "the server answered {s}"),
            TransientKind::Timeout => f.write_str("the request timed out"),
            TransientKind::ConnectionRefused => f.write_str("the connection was refused"),
            TransientKind::ConnectionClosed => {
                f.write_str("the connection was reset or closed before an answer")
            }
            TransientKind::ConnectFailed => f.write_str("the server could not be reached"),
        }
    }
}

/// Errors of the ToolJet client. `route` is `METHOD /path/template`.
#[derive(Debug, thiserror::Error)]
pub enum ToolJetError {
    #[error(
        "{route}: this app name is already taken in the workspace; choose another name or rename the existing app"
    )]
    NameTaken { route: &'static str },
    #[error(
        "{route}: this slug is already taken in the workspace; choose another slug or rename the other app's slug"
    )]
    SlugTaken { route: &'static str },
    /// Refused by ToolJet 3.x itself, or by the operator before the import on 2.x (which has no
    /// such check and would import it).
    #[error(
        "{route}: the bundle was exported from ToolJet {bundle_version}, newer than this server (ToolJet {server_version}); apps built on later versions of ToolJet cannot be imported, and nothing was written: upgrade the ToolJet server, or export the app from a ToolJet no newer than {server_version}"
    )]
    BundleNewerThanServer {
        route: &'static str,
        bundle_version: String,
        /// The server's `installed_version`, or `unknown`.
        server_version: String,
    },
    /// Refused before sending: ToolJet answers a body over its limit with a 500 (2.x) that
    /// would look like a passing fault and be retried forever.
    #[error(
        "{route}: the import would send {size} bytes, over ToolJet's request limit of {limit} bytes (50 MB); nothing was written: make the app smaller (fewer or smaller components, queries or embedded files)"
    )]
    BodyTooLarge {
        route: &'static str,
        size: usize,
        limit: usize,
    },
    #[error(
        "{route}: ToolJet refused the credentials ({mode}, 401: {detail}); check the credentials and the workspace id"
    )]
    Unauthorized {
        route: &'static str,
        mode: &'static str,
        detail: String,
    },
    #[error(
        "{route}: ToolJet forbids this ({mode}, 403: {detail}); check the token, the workspace id and the user's permissions"
    )]
    Forbidden {
        route: &'static str,
        mode: &'static str,
        detail: String,
    },
    #[error("{route}: not found (404: {detail}); the app or version may have been deleted")]
    NotFound { route: &'static str, detail: String },
    /// A 404 for the route itself (NestJS's "Cannot PUT /api/…"), not for an app.
    #[error(
        "{route}: this ToolJet server has no such route (404: {detail}); its version does not offer it: check the server version (status.serverVersion of the ToolJetInstance); supported are ToolJet 2.27 or later 2.x, and 3.x"
    )]
    RouteMissing { route: &'static str, detail: String },
    #[error(
        "ToolJet {version} is not supported ({detail}); the operator knows ToolJet 2.27 or later 2.x, and 3.x: upgrade ToolJet, or point spec.url of the ToolJetInstance at a supported server"
    )]
    UnsupportedServerVersion { version: String, detail: String },
    #[error(
        "releasing version {version_id} of app {app_id} did not take: ToolJet accepted the request but the app's released version is {found}; check the server version and the app in ToolJet"
    )]
    ReleaseNotApplied {
        app_id: String,
        version_id: String,
        found: String,
    },
    #[error(
        "{route}: the ToolJet plan's limit is reached (451: {detail}); free capacity or upgrade the plan"
    )]
    PlanLimit { route: &'static str, detail: String },
    #[error("{route}: {kind}; retry later")]
    Transient {
        route: &'static str,
        kind: TransientKind,
    },
    #[error("{route}: ToolJet refused the request ({status}: {detail})")]
    Rejected {
        route: &'static str,
        status: u16,
        detail: String,
    },
    #[error(
        "{operation} is not offered to the {mode} mode; use the admin API key or password mode"
    )]
    Unsupported {
        operation: &'static str,
        mode: &'static str,
    },
    #[error(
        "{route}: unexpected answer from ToolJet ({detail}); is the base URL a ToolJet server?"
    )]
    InvalidResponse { route: &'static str, detail: String },
    #[error(
        "TLS with ToolJet failed ({detail}); set the CA bundle or, for tests only, skip verification"
    )]
    Tls { detail: String },
    #[error("invalid ToolJet client configuration: {0}")]
    Config(String),
    #[error(
        "{route}: a workspace constant named `{name}` already exists (names are unique per workspace, case-sensitively)"
    )]
    ConstantExists { route: &'static str, name: String },
    /// Refused before sending: 2.x drops `type` and would store the value as a plain constant,
    /// readable by any session and, for a public app, by anyone.
    #[error(
        "constant `{name}` is of type Secret, which ToolJet 2.x does not have: it would store the value in plain text, readable by every user of the workspace and without login through any public app; nothing was written: put the credential into an encrypted data-source option (encrypted: true) instead, or upgrade to ToolJet 3.x"
    )]
    SecretConstantUnsupported { name: String },
}

impl ToolJetError {
    /// The same error with each of `values` (of 4 characters or more) replaced by
    /// `<redacted>` wherever the server echoed it: for calls that carry secret values.
    pub fn redacted(self, values: &[&str]) -> ToolJetError {
        let scrub = |mut text: String| {
            for v in values.iter().filter(|v| v.len() >= 4) {
                text = text.replace(*v, "<redacted>");
            }
            text
        };
        match self {
            ToolJetError::Unauthorized {
                route,
                mode,
                detail,
            } => ToolJetError::Unauthorized {
                route,
                mode,
                detail: scrub(detail),
            },
            ToolJetError::Forbidden {
                route,
                mode,
                detail,
            } => ToolJetError::Forbidden {
                route,
                mode,
                detail: scrub(detail),
            },
            ToolJetError::NotFound { route, detail } => ToolJetError::NotFound {
                route,
                detail: scrub(detail),
            },
            ToolJetError::RouteMissing { route, detail } => ToolJetError::RouteMissing {
                route,
                detail: scrub(detail),
            },
            ToolJetError::PlanLimit { route, detail } => ToolJetError::PlanLimit {
                route,
                detail: scrub(detail),
            },
            ToolJetError::Rejected {
                route,
                status,
                detail,
            } => ToolJetError::Rejected {
                route,
                status,
                detail: scrub(detail),
            },
            ToolJetError::InvalidResponse { route, detail } => ToolJetError::InvalidResponse {
                route,
                detail: scrub(detail),
            },
            ToolJetError::Config(detail) => ToolJetError::Config(scrub(detail)),
            other => other,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ToolJetError::Transient { .. })
    }
}
