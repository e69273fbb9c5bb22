//! `ToolJetInstance`: one ToolJet server for one environment.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::instance_config::{
    ConfiguredDataSource, ConstantSpec, DataSourceConfig, OwnedConstant, UNIQUE_NAMES,
};
use super::shared::{Environment, SecretKeyRef, SecretRef};

/// One ToolJet server serving one environment (development, staging or production).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitops.tooljet.dev",
    version = "v1alpha1",
    kind = "ToolJetInstance",
    plural = "tooljetinstances",
    namespaced,
    status = "ToolJetInstanceStatus",
    shortname = "tji",
    category = "tooljet",
    derive = "PartialEq",
    doc = "A ToolJet server for one environment; AppImports of that environment import into it.",
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.serverVersion"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.workspaceId) || !(has(self.auth.adminApiKey) || has(self.auth.externalToken))"
).message("workspaceId is required with adminApiKey or externalToken auth; only password auth finds the workspace by itself"))]
#[allow(clippy::duplicated_attributes)]
pub struct ToolJetInstanceSpec {
    /// Base URL of the ToolJet server, e.g. `http://tooljet.tooljet-prod.svc`; the client appends `/api/...`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^/?#\\\\s]+')")
        .message("url must be an http:// or https:// URL with a host, for example http://tooljet.tooljet.svc"))]
    pub url: String,

    /// The environment this server serves: development, staging or production.
    pub environment: Environment,

    /// Workspace (organization) UUID to import into. Required with adminApiKey and externalToken
    /// auth; optional with password auth (the login's default workspace is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub workspace_id: Option<String>,

    /// How the operator logs in to ToolJet: exactly one method.
    pub auth: InstanceAuth,

    /// TLS settings for https URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,

    /// Whether AppImports with `editable: true` may import into this instance.
    /// Default: true for development, false for staging and production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_editable_apps: Option<bool>,

    /// Namespaces (besides this instance's own) whose AppImports may use this instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub allowed_namespaces: Vec<String>,

    /// Workspace constants of this environment (never in git). The instance owns the ones it
    /// created or adopted: it prunes one removed from this list and never touches another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[x_kube(validation = kube::core::Rule::new(UNIQUE_NAMES)
        .message("two constants have the same name; each constant name may appear once"))]
    pub constants: Vec<ConstantSpec>,

    /// Options (credentials included) of workspace data sources for this environment, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new(UNIQUE_NAMES)
        .message("two dataSources entries have the same name; each data source may appear once"))]
    pub data_sources: Vec<DataSourceConfig>,
}

impl ToolJetInstanceSpec {
    /// Whether editable imports are allowed: `allowEditableApps`, or by default only in development.
    pub fn editable_apps_allowed(&self) -> bool {
        self.allow_editable_apps
            .unwrap_or(self.environment == Environment::Development)
    }

    /// Whether an AppImport in `namespace` may use this instance, which lives in `own_namespace`.
    pub fn namespace_allowed(&self, own_namespace: &str, namespace: &str) -> bool {
        namespace == own_namespace || self.allowed_namespaces.iter().any(|n| n == namespace)
    }
}

/// Login method. Exactly one of the three must be set.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.adminApiKey) ? 1 : 0) + (has(self.password) ? 1 : 0) + (has(self.externalToken) ? 1 : 0) == 1"
).message("auth must set exactly one of adminApiKey, password or externalToken"))]
pub struct InstanceAuth {
    /// An admin API key (ToolJet's `TJ_ADMIN_API_KEY`), sent as the `tj-admin-api-key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_api_key: Option<SecretKeyAuth>,
    /// Email and password login; the Secret holds the keys `email` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretAuth>,
    /// A token for ToolJet EE's external API (`/api/ext` routes, `EXTERNAL_API_ACCESS_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_token: Option<SecretKeyAuth>,
}

/// Which one of [`InstanceAuth`]'s methods is set; see [`InstanceAuth::method`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod<'a> {
    AdminApiKey(&'a SecretKeyRef),
    Password(&'a SecretRef),
    ExternalToken(&'a SecretKeyRef),
}

impl InstanceAuth {
    /// The one login method set, or `None` when zero or several are set (the CRD refuses both,
    /// but objects read from files in `sync -f` did not pass the API server).
    pub fn method(&self) -> Option<AuthMethod<'_>> {
        match (&self.admin_api_key, &self.password, &self.external_token) {
            (Some(k), None, None) => Some(AuthMethod::AdminApiKey(&k.secret_ref)),
            (None, Some(p), None) => Some(AuthMethod::Password(&p.secret_ref)),
            (None, None, Some(t)) => Some(AuthMethod::ExternalToken(&t.secret_ref)),
            _ => None,
        }
    }
}

/// A credential held in one key of a Secret.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyAuth {
    pub secret_ref: SecretKeyRef,
}

/// Credentials held in a whole Secret (for password auth: keys `email` and `password`).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretAuth {
    pub secret_ref: SecretRef,
}

/// TLS settings for talking to ToolJet over https.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// A PEM CA bundle to trust in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Skip certificate verification (testing only; never in production).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Observed state of a ToolJetInstance.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolJetInstanceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (login and reachability), plus kstatus `Reconciling` / `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The workspace in use (from spec, or the login's default workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// ToolJet's version (`installed_version` of `GET /api/metadata`), which decides the routes
    /// used (2.x or 3.x). Not known with the external API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub server_version: Option<String>,
    /// The constants this object owns (names and a hash of what was written; never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub constants: Vec<OwnedConstant>,
    /// The data sources this object configures, with the last connection test.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub data_sources: Vec<ConfiguredDataSource>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ToolJetInstanceSpec {
        serde_saphyr::from_str(yaml).expect("spec parses")
    }

    #[test]
    fn editable_apps_default_to_development_only() {
        let auth = "auth: {adminApiKey: {secretRef: {name: a, key: k}}}";
        let dev = spec(&format!(
            "url: http://t\nenvironment: development\n{auth}\n"
        ));
        let prod = spec(&format!("url: http://t\nenvironment: production\n{auth}\n"));
        let prod_open = spec(&format!(
            "url: http://t\nenvironment: production\nallowEditableApps: true\n{auth}\n"
        ));
        assert!(dev.editable_apps_allowed());
        assert!(!prod.editable_apps_allowed());
        assert!(prod_open.editable_apps_allowed());
        assert_eq!(
            prod.auth.method(),
            Some(AuthMethod::AdminApiKey(&SecretKeyRef {
                name: "a".into(),
                key: "k".into()
            }))
        );
    }

    #[test]
    fn other_namespaces_need_to_be_listed() {
        let s = spec(
            "url: http://t\nenvironment: staging\nauth: {password: {secretRef: {name: l}}}\nallowedNamespaces: [team-a]\n",
        );
        assert!(s.namespace_allowed("tooljet", "tooljet"));
        assert!(s.namespace_allowed("tooljet", "team-a"));
        assert!(!s.namespace_allowed("tooljet", "team-b"));
    }

    #[test]
    fn configuration_status_has_the_shape_api_md_names() {
        use crate::api::{ConnectionState, ConstantKind};
        let status = ToolJetInstanceStatus {
            constants: vec![OwnedConstant {
                name: "API_BASE".into(),
                kind: ConstantKind::Global,
                written_hash: Some("hmac-sha256:00".into()),
            }],
            data_sources: vec![ConfiguredDataSource {
                name: "sales-db".into(),
                id: Some("d1".into()),
                connection: ConnectionState::Failed,
                message: Some("password authentication failed".into()),
                written_hash: None,
            }],
            ..Default::default()
        };
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "constants": [{"name": "API_BASE", "type": "Global", "writtenHash": "hmac-sha256:00"}],
                "dataSources": [{"name": "sales-db", "id": "d1", "connection": "Failed",
                                 "message": "password authentication failed"}],
            })
        );
        let back: ToolJetInstanceStatus =
            serde_json::from_value(serde_json::json!({"dataSources": [{"name": "x"}]}))
                .expect("parses");
        assert_eq!(back.data_sources[0].connection, ConnectionState::Untested);
    }
}
