//! From a ToolJetInstance / AppImport and the Secret data they name, to a ToolJet client
//! configuration and git credentials. Shared by the controller (Secrets from the API server)
//! and `sync -f` (Secrets from files).

use std::collections::BTreeMap;
use std::fmt;

use super::error::SyncError;
use crate::api::{AuthMethod, SecretKeyRef, ToolJetInstanceSpec};
use crate::source::Credentials;
use crate::tooljet::{Auth, ClientConfig, REUSE_APP_LISTS};

/// The Secrets of one namespace, by name, as `data` (already base64-decoded).
#[derive(Clone, Default)]
pub struct Secrets {
    /// Named in the error when a Secret is missing.
    namespace: Option<String>,
    by_name: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// The Secrets of `namespace` (none yet).
    pub fn in_namespace(namespace: impl Into<String>) -> Self {
        Secrets {
            namespace: Some(namespace.into()),
            by_name: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, name: impl Into<String>, data: BTreeMap<String, Vec<u8>>) {
        self.by_name.insert(name.into(), data);
    }

    /// The whole Secret, or [`SyncError::SecretNotFound`] naming it.
    pub fn secret(&self, name: &str) -> Result<&BTreeMap<String, Vec<u8>>, SyncError> {
        self.by_name
            .get(name)
            .ok_or_else(|| SyncError::SecretNotFound {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
            })
    }

    /// One key of a Secret as UTF-8 text (surrounding whitespace trimmed).
    pub fn text(&self, name: &str, key: &str) -> Result<String, SyncError> {
        let bytes = self
            .secret(name)?
            .get(key)
            .ok_or_else(|| SyncError::InvalidSpec(format!("Secret {name:?} has no key {key:?}")))?;
        let text = std::str::from_utf8(bytes).map_err(|_| {
            SyncError::InvalidSpec(format!("key {key:?} of Secret {name:?} is not UTF-8 text"))
        })?;
        Ok(text.trim().to_owned())
    }

    fn key_ref(&self, r: &SecretKeyRef) -> Result<String, SyncError> {
        self.text(&r.name, &r.key)
    }
}

impl fmt::Debug for Secrets {
    /// Names and keys only: never the values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.by_name
                    .iter()
                    .map(|(name, data)| (name, data.keys().collect::<Vec<_>>())),
            )
            .finish()
    }
}

/// The ToolJet client configuration for an instance.
pub fn tooljet_config(
    spec: &ToolJetInstanceSpec,
    secrets: &Secrets,
) -> Result<ClientConfig, SyncError> {
    let auth = match spec.auth.method() {
        Some(AuthMethod::AdminApiKey(r)) => Auth::AdminApiKey(secrets.key_ref(r)?),
        Some(AuthMethod::ExternalToken(r)) => Auth::ExternalToken(secrets.key_ref(r)?),
        Some(AuthMethod::Password(r)) => Auth::Password {
            email: secrets.text(&r.name, "email")?,
            password: secrets.text(&r.name, "password")?,
        },
        None => {
            return Err(SyncError::InvalidSpec(
                "auth must set exactly one of adminApiKey, password or externalToken".into(),
            ));
        }
    };
    let mut config = ClientConfig::new(spec.url.trim_end_matches('/'), auth);
    config.workspace_id = spec.workspace_id.clone();
    // The AppImports of one instance share their leftover listings (see `sync::recover`).
    config.reuse_app_lists = REUSE_APP_LISTS;
    if let Some(tls) = &spec.tls {
        config.insecure_skip_verify = tls.insecure_skip_verify;
        if let Some(r) = &tls.ca_secret_ref {
            config.ca_pem = Some(secrets.key_ref(r)?.into_bytes());
        }
    }
    Ok(config)
}

/// Git credentials for a source: none without a secretRef.
pub fn git_credentials(
    secret_name: Option<&str>,
    secrets: &Secrets,
) -> Result<Credentials, SyncError> {
    match secret_name {
        None => Ok(Credentials::Anonymous),
        Some(name) => Ok(Credentials::from_secret_data(secrets.secret(name)?)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_and_keys_but_never_values() {
        let mut secrets = Secrets::new();
        secrets.insert(
            "tj-admin",
            BTreeMap::from([("api-key".to_string(), b"s3cr3t-value".to_vec())]),
        );
        let shown = format!("{secrets:?}");
        assert!(
            shown.contains("tj-admin") && shown.contains("api-key"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }

    #[test]
    fn missing_secret_and_key_are_named_in_the_error() {
        let mut secrets = Secrets::new();
        secrets.insert("present", BTreeMap::new());
        let e = secrets.text("absent", "k").unwrap_err().to_string();
        assert!(e.contains("\"absent\""), "{e}");
        let e = secrets.text("present", "k").unwrap_err().to_string();
        assert!(e.contains("no key \"k\""), "{e}");
    }
}
