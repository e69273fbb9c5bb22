//! Client configuration; holds secrets, so `Debug` is written by hand.

use std::fmt;
use std::time::Duration;

/// How the client authenticates (contract §2); one per ToolJet instance.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Log in with e-mail and password; the session cookie is renewed once on a 401.
    Password { email: String, password: String },
    /// `tj-admin-api-key` (ToolJet CE `TJ_ADMIN_API_KEY`); needs a workspace id.
    AdminApiKey(String),
    /// EE external API token (`Authorization: Basic <token>`); only `/api/ext` routes.
    ExternalToken(String),
}

impl Auth {
    /// The mode's name, for messages.
    pub fn mode(&self) -> &'static str {
        match self {
            Auth::Password { .. } => "password",
            Auth::AdminApiKey(_) => "admin API key",
            Auth::ExternalToken(_) => "external API token",
        }
    }

    /// The secret this mode carries, to scrub from anything the server echoes.
    pub(crate) fn secret(&self) -> &str {
        match self {
            Auth::Password { password, .. } => password,
            Auth::AdminApiKey(k) | Auth::ExternalToken(k) => k,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Password { email, .. } => f
                .debug_struct("Password")
                .field("email", email)
                .field("password", &"<redacted>")
                .finish(),
            Auth::AdminApiKey(_) => f.debug_tuple("AdminApiKey").field(&"<redacted>").finish(),
            Auth::ExternalToken(_) => f.debug_tuple("ExternalToken").field(&"<redacted>").finish(),
        }
    }
}

/// Everything needed to reach one ToolJet workspace.
#[derive(Clone)]
pub struct ClientConfig {
    /// ToolJet's address without `/api`, e.g. `https://tooljet.example.com`.
    pub base_url: String,
    /// The workspace (organization) id; required except in password mode,
    /// where the user's current workspace is used when absent.
    pub workspace_id: Option<String>,
    pub auth: Auth,
    /// PEM CA bundle to trust instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate. Only for trying things out.
    pub insecure_skip_verify: bool,
    pub connect_timeout: Duration,
    /// Limit for one whole request, answer included.
    pub request_timeout: Duration,
    /// How long a listing of apps by name is shared by the client's callers
    /// ([`ToolJetClient::list_apps_matching_shared`](super::ToolJetClient::list_apps_matching_shared)).
    /// Zero (the default) shares none; the controller and the command line use
    /// [`REUSE_APP_LISTS`](super::REUSE_APP_LISTS).
    pub reuse_app_lists: Duration,
}

impl ClientConfig {
    /// A config with default timeouts (10 s to connect, 60 s per request).
    pub fn new(base_url: impl Into<String>, auth: Auth) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            workspace_id: None,
            auth,
            ca_pem: None,
            insecure_skip_verify: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            reuse_app_lists: Duration::ZERO,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("workspace_id", &self.workspace_id)
            .field("auth", &self.auth)
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("reuse_app_lists", &self.reuse_app_lists)
            .finish()
    }
}
