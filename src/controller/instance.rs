//! Reconcile of one ToolJetInstance: read its Secrets, log in (`check`), and report `Ready` with
//! the workspace id. Rechecked every 5 minutes while ready, every minute while not, and at once
//! when the instance or one of its Secrets changes.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::ControllerError;
use super::app_import::FIELD_MANAGER;
use super::caches::Cache;
use super::conditions::condition;
use super::resolve::{instance_secret_names, read_secrets};
use crate::api::condition::READY;
use crate::api::{Consequence, Reason, ToolJetInstance, ToolJetInstanceStatus};
use crate::sync::tooljet_config;
use crate::tooljet::{ToolJetClient, ToolJetError};

const RECHECK_READY: Duration = Duration::from_secs(300);
const RECHECK_NOT_READY: Duration = Duration::from_secs(60);

/// Shared by all reconciles of the instance controller.
pub struct InstanceContext {
    pub client: Client,
    /// All Secrets the operator watches (auth and CA Secrets are read from here).
    pub secrets: Cache<Secret>,
}

/// The outcome of checking one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub reason: Reason,
    pub message: String,
    pub workspace_id: Option<String>,
    /// The server's version, when it was read.
    pub server_version: Option<String>,
}

impl Check {
    pub fn ready(&self) -> bool {
        self.reason.consequence() == Consequence::Ready
    }
}

/// Reason and advice for a failed login or reachability check.
pub fn check_failure(e: &ToolJetError) -> (Reason, String) {
    match e {
        ToolJetError::Unauthorized { .. } | ToolJetError::Forbidden { .. } => (
            Reason::LoginFailed,
            format!("{e}; fix the credentials in the auth Secret"),
        ),
        ToolJetError::Tls { .. } | ToolJetError::Config(_) => (
            Reason::InvalidSpec,
            format!("{e}; fix spec.url or spec.tls"),
        ),
        ToolJetError::UnsupportedServerVersion { .. } => {
            (Reason::UnsupportedVersion, e.to_string())
        }
        _ => (
            Reason::Unreachable,
            format!("{e}; check spec.url and that ToolJet is running"),
        ),
    }
}

async fn check(secret_cache: &Cache<Secret>, obj: &ToolJetInstance) -> Check {
    let fail = |reason: Reason, message: String| Check {
        reason,
        message,
        workspace_id: None,
        server_version: None,
    };
    let ns = obj.namespace().unwrap_or_default();
    let secrets = match read_secrets(secret_cache, &ns, &instance_secret_names(&obj.spec)).await {
        Ok((s, _)) => s,
        Err(r) => return fail(r.reason, r.message),
    };
    // A missing Secret is SecretNotFound; anything else wrong with auth or TLS is InvalidSpec.
    let config = match tooljet_config(&obj.spec, &secrets) {
        Ok(c) => c,
        Err(e) if e.reason() == Reason::SecretNotFound => return fail(e.reason(), e.to_string()),
        Err(e) => return fail(Reason::InvalidSpec, e.to_string()),
    };
    let tooljet = match ToolJetClient::new(config) {
        Ok(c) => c,
        Err(e) => return fail(Reason::InvalidSpec, format!("{e}; fix the ToolJetInstance")),
    };
    let result = tooljet.check().await;
    let server_version = tooljet.known_server_version().map(|v| v.to_string());
    match result {
        Ok(workspace_id) => Check {
            reason: Reason::Connected,
            message: format!("logged in to {} (workspace {workspace_id})", obj.spec.url),
            workspace_id: Some(workspace_id),
            server_version,
        },
        Err(e) => {
            let (reason, message) = check_failure(&e);
            Check {
                server_version,
                ..fail(reason, message)
            }
        }
    }
}

/// The status after a check, keeping `lastTransitionTime` when Ready did not change.
pub fn status_for(obj: &ToolJetInstance, check: &Check, now: Timestamp) -> ToolJetInstanceStatus {
    let previous = obj.status.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    ToolJetInstanceStatus {
        observed_generation: generation,
        conditions: vec![condition(
            &previous.conditions,
            READY,
            if check.ready() { "True" } else { "False" },
            check.reason.as_str(),
            &check.message,
            generation,
            now,
        )],
        // Keep the last known workspace while ToolJet is down: AppImports may still name it.
        workspace_id: check.workspace_id.clone().or(previous.workspace_id),
        server_version: check.server_version.clone().or(previous.server_version),
        // The configuration record (owned constants, data sources) is not the check's to change.
        constants: previous.constants,
        data_sources: previous.data_sources,
    }
}

/// The instance controller's reconcile function.
pub async fn reconcile(
    obj: Arc<ToolJetInstance>,
    ctx: Arc<InstanceContext>,
) -> Result<Action, ControllerError> {
    let ns = obj.namespace().ok_or_else(|| {
        ControllerError::InvalidObject("ToolJetInstance without a namespace".into())
    })?;
    let result = check(&ctx.secrets, &obj).await;
    info!(instance = %format!("{ns}/{}", obj.name_any()), ready = result.ready(), reason = %result.reason, "checked");
    let status = status_for(&obj, &result, Timestamp::now());
    let api: Api<ToolJetInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "apiVersion": ToolJetInstance::api_version(&()),
        "kind": ToolJetInstance::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(ControllerError::Kube)?;
    Ok(Action::requeue(if result.ready() {
        RECHECK_READY
    } else {
        RECHECK_NOT_READY
    }))
}

/// API server errors: retry in a minute.
pub fn error_policy(
    obj: Arc<ToolJetInstance>,
    error: &ControllerError,
    _ctx: Arc<InstanceContext>,
) -> Action {
    warn!(instance = %obj.name_any(), %error, "reconcile failed");
    Action::requeue(RECHECK_NOT_READY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tooljet::TransientKind;

    #[test]
    fn failures_map_to_login_unreachable_and_invalid_spec() {
        let unauthorized = ToolJetError::Unauthorized {
            route: "POST /api/authenticate",
            mode: "password",
            detail: "bad".into(),
        };
        assert_eq!(check_failure(&unauthorized).0, "LoginFailed");
        assert!(check_failure(&unauthorized).1.contains("Secret"));
        let tls = ToolJetError::Tls {
            detail: "unknown CA".into(),
        };
        assert_eq!(check_failure(&tls).0, "InvalidSpec");
        let down = ToolJetError::Transient {
            route: "GET /api/app-environments",
            kind: TransientKind::ConnectionRefused,
        };
        assert_eq!(check_failure(&down).0, "Unreachable");
        let old = ToolJetError::UnsupportedServerVersion {
            version: "2.20.0".into(),
            detail: "older than 2.27".into(),
        };
        assert_eq!(check_failure(&old).0, "UnsupportedVersion");
        assert!(check_failure(&old).1.contains("2.20.0"));
    }

    #[test]
    fn status_keeps_workspace_and_transition_time() {
        let mut obj: ToolJetInstance = serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": "tj", "namespace": "ns", "generation": 4},
            "spec": {"url": "http://tj", "environment": "staging", "workspaceId": "w",
                     "auth": {"adminApiKey": {"secretRef": {"name": "s", "key": "k"}}}}
        }))
        .expect("instance");
        let t0 = Timestamp::from_second(1_700_000_000).expect("t");
        let ok = Check {
            reason: Reason::Connected,
            message: "ok".into(),
            workspace_id: Some("w1".into()),
            server_version: Some("2.27.1".into()),
        };
        let s = status_for(&obj, &ok, t0);
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.workspace_id.as_deref(), Some("w1"));
        obj.status = Some(s);
        let down = Check {
            reason: Reason::Unreachable,
            message: "down".into(),
            workspace_id: None,
            server_version: None,
        };
        let later = t0
            .checked_add(jiff::SignedDuration::from_secs(60))
            .expect("t");
        let s2 = status_for(&obj, &down, later);
        assert_eq!(s2.workspace_id.as_deref(), Some("w1"));
        assert_eq!(s2.server_version.as_deref(), Some("2.27.1"));
        assert_eq!(s2.conditions[0].status, "False");
        assert_eq!(s2.conditions[0].last_transition_time.0, later);
    }
}
