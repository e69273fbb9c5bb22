//! Reconcile of one ToolJetInstance: read its Secrets, log in (`check`), apply its constants and
//! data-source options ([`crate::sync::instance_config`]), and report `Ready` with the workspace
//! id, `ConfigApplied` and `DataSourcesHealthy`. Rechecked every 5 minutes while ready, every
//! minute while not, and at once when the instance or one of its Secrets changes (a rotated
//! Secret value reaches ToolJet within seconds).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::ControllerError;
use super::apply::{apply_status, publish_event};
use super::caches::Cache;
use super::conditions::{condition, from_report};
use super::resolve::{instance_secret_names, read_secrets};
use crate::api::condition::{CONFIG_APPLIED, DATA_SOURCES_HEALTHY, READY};
use crate::api::{
    ConnectionState, Consequence, DetailReason, Reason, ToolJetInstance, ToolJetInstanceStatus,
    Verdict,
};
use crate::sync::instance_config::{self, ConfigOutcome, ConfigRecord};
use crate::sync::{Mode, Secrets, tooljet_config};
use crate::tooljet::{ToolJetClient, ToolJetError};

const RECHECK_READY: Duration = Duration::from_secs(300);
const RECHECK_NOT_READY: Duration = Duration::from_secs(60);

/// Shared by all reconciles of the instance controller.
pub struct InstanceContext {
    pub client: Client,
    /// All Secrets the operator watches (auth and CA Secrets are read from here).
    pub secrets: Cache<Secret>,
    pub recorder: Recorder,
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

/// Logs in; with a ready check, the client and the Secrets for the configuration step.
async fn check(
    secret_cache: &Cache<Secret>,
    obj: &ToolJetInstance,
) -> (Check, Option<(ToolJetClient, Secrets)>) {
    let fail = |reason: Reason, message: String| Check {
        reason,
        message,
        workspace_id: None,
        server_version: None,
    };
    let ns = obj.namespace().unwrap_or_default();
    let secrets = match read_secrets(secret_cache, &ns, &instance_secret_names(&obj.spec)).await {
        Ok((s, _)) => s,
        Err(r) => return (fail(r.reason, r.message), None),
    };
    let (check, client) = login(obj, &secrets).await;
    (check, client.map(|c| (c, secrets)))
}

async fn login(obj: &ToolJetInstance, secrets: &Secrets) -> (Check, Option<ToolJetClient>) {
    let fail = |reason: Reason, message: String| {
        (
            Check {
                reason,
                message,
                workspace_id: None,
                server_version: None,
            },
            None,
        )
    };
    // A missing Secret is SecretNotFound; anything else wrong with auth or TLS is InvalidSpec.
    let config = match tooljet_config(&obj.spec, secrets) {
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
        Ok(workspace_id) => (
            Check {
                reason: Reason::Connected,
                message: format!("logged in to {} (workspace {workspace_id})", obj.spec.url),
                workspace_id: Some(workspace_id),
                server_version,
            },
            Some(tooljet),
        ),
        Err(e) => {
            let (reason, message) = check_failure(&e);
            let (check, _) = fail(reason, message);
            (
                Check {
                    server_version,
                    ..check
                },
                None,
            )
        }
    }
}

/// The configuration record as status holds it.
pub fn record_of(status: Option<&ToolJetInstanceStatus>) -> ConfigRecord {
    status.map_or_else(ConfigRecord::default, |s| ConfigRecord {
        constants: s.constants.clone(),
        data_sources: s.data_sources.clone(),
    })
}

/// Applies the instance's constants and data-source options after a successful login.
async fn configure(
    obj: &ToolJetInstance,
    tooljet: &ToolJetClient,
    secrets: &Secrets,
) -> ConfigOutcome {
    let identity = obj
        .uid()
        .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()));
    let hasher = instance_config::hasher_for(&identity, &obj.spec, secrets);
    instance_config::configure(
        tooljet,
        &obj.spec,
        &record_of(obj.status.as_ref()),
        secrets,
        &hasher,
        Mode::Apply,
    )
    .await
}

/// The status after a check and, when it logged in, a configuration run: `Ready` is True only
/// when both succeeded; `ConfigApplied` says how the configuration went; `DataSourcesHealthy`
/// (present once a data source was tested) is False while a connection test fails, a warning
/// that does not make the instance not ready.
pub fn status_after(
    obj: &ToolJetInstance,
    check: &Check,
    config: Option<&ConfigOutcome>,
    now: Timestamp,
) -> ToolJetInstanceStatus {
    let mut status = status_for(obj, check, now);
    let Some(config) = config else {
        // Not logged in: the configuration conditions keep what the last run found.
        let previous = obj.status.clone().unwrap_or_default();
        status.conditions.extend(
            previous
                .conditions
                .into_iter()
                .filter(|c| c.type_ == CONFIG_APPLIED || c.type_ == DATA_SOURCES_HEALTHY),
        );
        return status;
    };
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let generation = obj.meta().generation;
    let verdict: &Verdict = &config.verdict;
    let mut message = verdict.message.clone();
    for note in &config.notes {
        message.push_str("; ");
        message.push_str(note);
    }
    if !verdict.ready() {
        status.conditions = from_report(
            &previous,
            &Verdict::new(verdict.reason, message.clone()),
            generation,
            now,
        );
    }
    status.conditions.push(condition(
        &previous,
        CONFIG_APPLIED,
        if verdict.ready() { "True" } else { "False" },
        verdict.reason.as_str(),
        &message,
        generation,
        now,
    ));
    let failed = config.failed_connections();
    let tested = config
        .record
        .data_sources
        .iter()
        .any(|d| d.connection != ConnectionState::Untested);
    if !failed.is_empty() {
        let listed: Vec<String> = failed
            .iter()
            .map(|(name, msg)| format!("`{name}`: {msg}"))
            .collect();
        status.conditions.push(condition(
            &previous,
            DATA_SOURCES_HEALTHY,
            "False",
            DetailReason::DataSourceTestFailed.as_str(),
            &format!(
                "ToolJet's connection test failed for {}; check the options (and the Secrets they come from) in spec.dataSources",
                listed.join("; ")
            ),
            generation,
            now,
        ));
    } else if tested {
        status.conditions.push(condition(
            &previous,
            DATA_SOURCES_HEALTHY,
            "True",
            DetailReason::ConnectionsOk.as_str(),
            "ToolJet's connection test passed for every configured data source",
            generation,
            now,
        ));
    }
    status.constants = config.record.constants.clone();
    status.data_sources = config.record.data_sources.clone();
    status
}

/// Whether `instance` has applied the configuration of its current spec (what an AppImport's
/// first import waits for). An instance with nothing to configure has.
pub fn config_applied(instance: &ToolJetInstance) -> bool {
    let record = record_of(instance.status.as_ref());
    if !instance_config::has_configuration(&instance.spec, &record) {
        return true;
    }
    instance.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == CONFIG_APPLIED
                && c.status == "True"
                && c.observed_generation == instance.meta().generation
        })
    })
}

/// The status after a check, keeping `lastTransitionTime` when Ready did not change.
pub fn status_for(obj: &ToolJetInstance, check: &Check, now: Timestamp) -> ToolJetInstanceStatus {
    let previous = obj.status.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    ToolJetInstanceStatus {
        observed_generation: generation,
        // kstatus, as for AppImports: Ready, and Reconciling or Stalled while not ready.
        conditions: from_report(
            &previous.conditions,
            &Verdict::new(check.reason, check.message.clone()),
            generation,
            now,
        ),
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
    let (result, logged_in) = check(&ctx.secrets, &obj).await;
    info!(instance = %format!("{ns}/{}", obj.name_any()), ready = result.ready(), reason = %result.reason, "checked");
    let config = match &logged_in {
        Some((tooljet, secrets)) => Some(configure(&obj, tooljet, secrets).await),
        None => None,
    };
    if let Some(config) = &config {
        info!(instance = %format!("{ns}/{}", obj.name_any()), reason = %config.verdict.reason,
            writes = config.actions.len(), failed_connections = config.failed_connections().len(), "configured");
    }
    let status = status_after(&obj, &result, config.as_ref(), Timestamp::now());
    let ready = result.ready() && config.as_ref().is_none_or(|c| c.verdict.ready());
    let api: Api<ToolJetInstance> = Api::namespaced(ctx.client.clone(), &ns);
    apply_status(&api, obj.as_ref(), &status).await?;
    for (type_, reason, note) in events_for(obj.status.as_ref(), &status, config.as_ref()) {
        publish(&ctx, &obj, type_, reason, &note).await;
    }
    Ok(Action::requeue(if ready {
        RECHECK_READY
    } else {
        RECHECK_NOT_READY
    }))
}

/// Events for a reconcile, as `kubectl describe` shows them: a Warning with the reason when
/// `Ready` turns False or changes reason, a Normal one when it turns True again, and a Normal
/// `Configured` when constants or data-source options were written. A recheck that finds the
/// same state publishes nothing.
pub fn events_for(
    previous: Option<&ToolJetInstanceStatus>,
    status: &ToolJetInstanceStatus,
    config: Option<&ConfigOutcome>,
) -> Vec<(EventType, &'static str, String)> {
    let ready_of = |s: Option<&ToolJetInstanceStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY).cloned())
    };
    let mut events = Vec::new();
    let before = ready_of(previous);
    if let Some(now) = ready_of(Some(status)) {
        let changed = before
            .as_ref()
            .is_none_or(|b| b.status != now.status || b.reason != now.reason);
        let reason = Reason::ALL
            .iter()
            .find(|r| r.as_str() == now.reason)
            .map_or("Checked", |r| r.as_str());
        if changed && now.status == "True" {
            events.push((EventType::Normal, reason, now.message.clone()));
        } else if changed {
            events.push((EventType::Warning, reason, now.message.clone()));
        }
    }
    if let Some(config) = config.filter(|c| !c.actions.is_empty() && c.verdict.ready()) {
        events.push((
            EventType::Normal,
            Reason::Configured.as_str(),
            format!(
                "{} write(s) of constants and data-source options: {}",
                config.actions.len(),
                config.verdict.message
            ),
        ));
    }
    events
}

async fn publish(
    ctx: &InstanceContext,
    obj: &ToolJetInstance,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    publish_event(&ctx.recorder, obj, type_, reason, note, "Reconcile").await;
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
    use serde_json::json;

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

    #[test]
    fn config_applied_needs_the_condition_of_the_current_generation() {
        let mut obj: ToolJetInstance = serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": "tj", "namespace": "ns", "generation": 2},
            "spec": {"url": "http://tj", "environment": "staging", "workspaceId": "w",
                     "auth": {"adminApiKey": {"secretRef": {"name": "s", "key": "k"}}}}
        }))
        .expect("instance");
        assert!(config_applied(&obj), "nothing to configure");
        obj.spec.constants =
            serde_json::from_value(json!([{"name": "A", "value": "v"}])).expect("constants");
        assert!(!config_applied(&obj), "no status yet");
        let t0 = Timestamp::from_second(1_700_000_000).expect("t");
        let check = Check {
            reason: Reason::Connected,
            message: "ok".into(),
            workspace_id: Some("w".into()),
            server_version: None,
        };
        let outcome = |reason: Reason| ConfigOutcome {
            record: ConfigRecord::default(),
            actions: Vec::new(),
            verdict: Verdict::new(reason, "m"),
            notes: vec!["a note".into()],
        };
        let stalled = status_after(&obj, &check, Some(&outcome(Reason::SecretNotFound)), t0);
        let ready = stalled
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "SecretNotFound")
        );
        obj.status = Some(stalled);
        assert!(!config_applied(&obj));
        obj.status = Some(status_after(
            &obj,
            &check,
            Some(&outcome(Reason::Configured)),
            t0,
        ));
        assert!(config_applied(&obj));
        let applied = obj
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONFIG_APPLIED))
            .expect("ConfigApplied");
        assert!(applied.message.contains("a note"), "{}", applied.message);
        // Not logged in: the configuration conditions are kept as they were.
        let down = Check {
            reason: Reason::Unreachable,
            ..check
        };
        let kept = status_after(&obj, &down, None, t0);
        assert!(
            kept.conditions
                .iter()
                .any(|c| c.type_ == CONFIG_APPLIED && c.status == "True")
        );
        obj.metadata.generation = Some(3);
        assert!(!config_applied(&obj), "a newer spec is not applied yet");
    }
}
