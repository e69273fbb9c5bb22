//! Credentials handed in by the caller (the data of a Kubernetes Secret), Flux-like keys:
//! `username` + `password`, or `token` (optionally with `username`) for HTTPS;
//! `identity` (private key, PEM) with optional `passphrase` and `known_hosts` for SSH.
//! Secrets live only in memory: `Debug` redacts them and the mirror key uses a hash.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::error::{Result, SourceError};
use super::known_hosts::KnownHosts;

/// Username sent with a bare token, as GitHub and Gitea expect.
pub const TOKEN_USERNAME: &str = "x-access-token";

/// How to authenticate to a git host.
#[derive(Clone, Default)]
pub enum Credentials {
    /// Public repository (or file://).
    #[default]
    Anonymous,
    /// HTTPS basic auth.
    Basic { username: String, password: String },
    /// HTTPS token, sent as basic auth with `username` (default [`TOKEN_USERNAME`]).
    Token { username: String, token: String },
    /// SSH private key; the host key is always checked against `known_hosts`.
    Ssh {
        private_key: String,
        passphrase: Option<String>,
        known_hosts: Option<KnownHosts>,
    },
}

impl Credentials {
    /// Reads Secret data. Unknown keys are ignored; an incomplete pair is an error naming the key
    /// (never its value).
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Credentials> {
        let get = |key: &str| -> Result<Option<String>> {
            match data.get(key) {
                None => Ok(None),
                Some(v) => String::from_utf8(v.clone()).map(Some).map_err(|_| {
                    SourceError::InvalidCredentials {
                        reason: format!("key {key:?} is not UTF-8 text"),
                    }
                }),
            }
        };
        let username = get("username")?.filter(|u| !u.is_empty());
        let password = get("password")?;
        let known_hosts = match get("known_hosts")? {
            Some(text) => Some(KnownHosts::parse(&text)?),
            None => None,
        };
        if let Some(private_key) = get("identity")? {
            // Flux stores the key's passphrase under `password`; accept both.
            let passphrase = get("passphrase")?.or(password).filter(|p| !p.is_empty());
            return Ok(Credentials::Ssh {
                private_key,
                passphrase,
                known_hosts,
            });
        }
        if let Some(token) = get("token")? {
            return Ok(Credentials::Token {
                username: username.unwrap_or_else(|| TOKEN_USERNAME.to_string()),
                token,
            });
        }
        match (username, password) {
            (Some(username), Some(password)) => Ok(Credentials::Basic { username, password }),
            (Some(_), None) => Err(SourceError::InvalidCredentials {
                reason: "key \"username\" is set but \"password\" is missing".into(),
            }),
            (None, Some(_)) => Err(SourceError::InvalidCredentials {
                reason: "key \"password\" is set but \"username\" is missing (or use \"token\")"
                    .into(),
            }),
            (None, None) => Ok(Credentials::Anonymous),
        }
    }

    /// Who these credentials are, for the mirror key: kind, username and a hash of the secret.
    /// Mirrors are not shared between different secrets, so a wrong secret never reads what a
    /// right one fetched.
    pub(crate) fn identity(&self) -> String {
        let h = |s: &str| hex::encode(Sha256::digest(s.as_bytes()));
        match self {
            Credentials::Anonymous => "anonymous".into(),
            Credentials::Basic { username, password } => {
                format!("basic:{username}:{}", h(password))
            }
            Credentials::Token { username, token } => format!("token:{username}:{}", h(token)),
            Credentials::Ssh { private_key, .. } => format!("ssh:{}", h(private_key)),
        }
    }

    /// Replaces every secret value that occurs in `text` (e.g. a libgit2 message) by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = match self {
            Credentials::Anonymous => vec![],
            Credentials::Basic { password, .. } => vec![password],
            Credentials::Token { token, .. } => vec![token],
            Credentials::Ssh {
                private_key,
                passphrase,
                ..
            } => {
                let mut v = vec![private_key.as_str()];
                v.extend(passphrase.as_deref());
                v
            }
        };
        let mut out = text.to_string();
        for s in secrets.into_iter().filter(|s| s.len() >= 3) {
            out = out.replace(s, "<redacted>");
        }
        out
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
            Credentials::Ssh {
                passphrase,
                known_hosts,
                ..
            } => f
                .debug_struct("Ssh")
                .field("private_key", &"<redacted>")
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .field("known_hosts", known_hosts)
                .finish(),
        }
    }
}
