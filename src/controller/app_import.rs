//! Reconcile of one AppImport: resolve its instance and Secrets, run the sync engine, write status
//! (server-side apply on the status subresource, field manager `tooljet-operator`), publish Events.
//!
//! Requeue: at `spec.interval` after success and after failures that need the user (Stalled);
//! failures that retrying can fix back off per object, 5s doubling to 5m, reset on success.
//!
//! Deletion: the finalizer `gitops.tooljet.dev/finalizer` applies `deletionPolicy` through
//! `Engine::release`. It never blocks deletion forever:
//! - when the ToolJetInstance (or its Secret) no longer exists, ToolJet cannot be reached for good:
//!   the finalizer is released with a Warning Event `CleanupSkipped` (apps stay in ToolJet);
//! - when ToolJet is unreachable and will not come back, set the annotation
//!   `gitops.tooljet.dev/skip-finalizer-cleanup: "true"` on the AppImport: the finalizer is released
//!   without touching ToolJet (same Event).

mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::ControllerError;
use super::apply::{apply_status, publish_event};
use super::caches::Cache;
use super::conditions;
use super::resolve::{CACHE_WAIT, ClientCache, not_listed, read_secrets, select_instance};
use crate::api::condition::{CONFIG_APPLIED, READY};
use crate::api::{
    ANNOTATION_RECONCILE_REQUESTED_AT, AppImport, AppImportStatus, Consequence, DeletionPolicy,
    DetailReason, FINALIZER, Reason, ToolJetInstance, Verdict,
};
use crate::process::metrics::{Metrics, ReconcileResult};
use crate::source::{SourceCache, display_url};
use crate::sync::instance_config::mark_configured;
use crate::sync::promotion::{AppImportKey, Promotion, promotion_of};
use crate::sync::request::import_secret_names;
use crate::sync::{
    self, Checkpoint, Engine, ImportKey, Mode, SyncOutcome, SyncState, sync_request, with_promotion,
};

/// Field manager of every server-side apply the operator makes.
pub use super::apply::FIELD_MANAGER;
/// Annotation: `"true"` releases the finalizer without touching ToolJet (ToolJet gone for good).
pub const ANNOTATION_SKIP_CLEANUP: &str = "gitops.tooljet.dev/skip-finalizer-cleanup";

const BACKOFF_START: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Shared by all reconciles of the AppImport controller.
pub struct Context {
    pub client: Client,
    /// The git cache the engine works over (its own handle: metrics observe it, a webhook's
    /// push forgets its ref checks).
    pub source: SourceCache,
    pub engine: Engine,
    pub recorder: Recorder,
    /// All ToolJetInstances (the instance controller's reflector).
    pub instances: Cache<ToolJetInstance>,
    /// All Secrets the operator watches (instance auth, CA, git credentials).
    pub secrets: Cache<Secret>,
    pub clients: ClientCache,
    /// All AppImports (this controller's reflector): the upstreams of promotions.
    pub apps: Cache<AppImport>,
    /// Reconcile counts and durations, git and ToolJet traffic, managed apps, drift.
    pub metrics: Arc<Metrics>,
    backoff: Backoff,
}

impl Context {
    pub fn new(
        client: Client,
        source: SourceCache,
        recorder: Recorder,
        instances: Cache<ToolJetInstance>,
        secrets: Cache<Secret>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        Context {
            client,
            engine: Engine::new(source.clone()),
            source,
            recorder,
            instances,
            secrets,
            clients: ClientCache::default(),
            apps: Cache::from_objects([]),
            metrics: metrics.clone(),
            backoff: Backoff::default(),
        }
        .with_metrics(metrics)
    }

    /// Reads promotion upstreams from `apps` (without it, every fromAppImport is UpstreamNotFound).
    pub fn with_apps(mut self, apps: Cache<AppImport>) -> Self {
        self.apps = apps;
        self
    }

    /// Records into `metrics`, git and ToolJet traffic included.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.source.set_observer(metrics.clone());
        self.clients = ClientCache::with_observer(metrics.clone());
        self.metrics = metrics;
        self
    }
}

/// Per-object exponential backoff (kube-runtime requeues failures at a fixed delay only).
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, Duration>>);

impl Backoff {
    /// The next delay for `key`: 5s, 10s, 20s, ... up to 5m.
    pub fn next(&self, key: &str) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let delay = map
            .get(key)
            .map_or(BACKOFF_START, |d| (*d * 2).min(BACKOFF_MAX));
        map.insert(key.to_owned(), delay);
        delay
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

fn object_key(obj: &AppImport) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The controller's reconcile function.
pub async fn reconcile(obj: Arc<AppImport>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let verdict = Mutex::new(ReconcileResult::Success);
    let result = reconcile_inner(obj, &ctx, &verdict).await;
    let verdict = match &result {
        Err(_) => ReconcileResult::Error,
        Ok(_) => *verdict.lock().unwrap_or_else(|p| p.into_inner()),
    };
    ctx.metrics
        .reconciled("AppImport", verdict, started.elapsed());
    result
}

async fn reconcile_inner(
    obj: Arc<AppImport>,
    ctx: &Context,
    verdict: &Mutex<ReconcileResult>,
) -> Result<Action, ControllerError> {
    let ns = obj
        .namespace()
        .ok_or_else(|| ControllerError::InvalidObject("AppImport without a namespace".into()))?;
    let api: Api<AppImport> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => apply(&api, &obj, ctx, verdict).await,
            FinalizerEvent::Cleanup(obj) => cleanup(&obj, ctx).await,
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(Box::new(e)))
}

/// Requeue after a failure that escaped reconcile (API server errors): backoff per object.
pub fn error_policy(obj: Arc<AppImport>, error: &ControllerError, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next(&object_key(&obj));
    warn!(appimport = %object_key(&obj), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How a verdict counts in `tooljet_operator_reconciles_total`.
pub fn verdict_of(report: &Verdict) -> ReconcileResult {
    match report.consequence() {
        Consequence::Ready | Consequence::Waiting => ReconcileResult::Success,
        Consequence::Retrying => ReconcileResult::Error,
        Consequence::Stalled => ReconcileResult::Refused,
    }
}

/// Ready with an app in ToolJet (`tooljet_operator_managed_apps`).
fn is_managed(status: &AppImportStatus) -> bool {
    status.app.is_some()
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == READY && c.status == "True")
}

async fn apply(
    api: &Api<AppImport>,
    obj: &AppImport,
    ctx: &Context,
    verdict: &Mutex<ReconcileResult>,
) -> Result<Action, ControllerError> {
    let key = object_key(obj);
    let set_verdict = |v| *verdict.lock().unwrap_or_else(|p| p.into_inner()) = v;
    let interval = match obj.spec.interval_duration() {
        Ok(d) => d,
        Err(e) => {
            // The CRD rejects such intervals; an old object may still carry one.
            let report = Verdict::new(Reason::InvalidSpec, e.to_string());
            set_verdict(verdict_of(&report));
            ctx.metrics.set_managed(&key, false);
            let base = obj.status.clone().unwrap_or_default();
            write_status(api, obj, &base, None, &report).await?;
            return Ok(Action::await_change());
        }
    };
    let previous = obj.status.clone().unwrap_or_default();
    if obj.spec.suspend {
        let mut status = previous.clone();
        status.conditions = conditions::suspended(
            &previous.conditions,
            obj.meta().generation,
            Timestamp::now(),
        );
        status.observed_generation = obj.meta().generation;
        status.last_handled_reconcile_at = requested_at(obj).or(status.last_handled_reconcile_at);
        apply_status(api, obj, &status).await?;
        ctx.metrics.set_managed(&key, is_managed(&status));
        ctx.backoff.reset(&key);
        return Ok(Action::await_change());
    }

    // An explicit request (the annotation, set by a user or by a standby replica for a webhook)
    // wants what is in git now, not a ref listing another AppImport made moments ago.
    if let Some(requested) = requested_at(obj)
        && previous.last_handled_reconcile_at.as_deref() != Some(requested.as_str())
    {
        ctx.source.forget_ref_checks(&obj.spec.source.url);
    }
    let now = Timestamp::now();
    let promotion = match resolve_promotion(obj, ctx, now).await {
        Ok(p) => p,
        Err(report) => {
            // Refused before the upstream was read: status.promotion says nothing any more.
            let base = AppImportStatus {
                promotion: None,
                ..previous.clone()
            };
            return refused(api, obj, ctx, &base, &report, interval, verdict).await;
        }
    };
    // status.promotion: the candidate commit and when it is eligible (none for other refs).
    let base = AppImportStatus {
        promotion: promotion.as_ref().and_then(Promotion::record),
        ..previous.clone()
    };
    if let Some(waiting) = promotion.as_ref().and_then(Promotion::waiting_verdict) {
        // Nothing to follow yet: the current app stays; look again when it is due (or when the
        // upstream changes: the AppImport watch re-enqueues downstreams).
        set_verdict(verdict_of(&waiting));
        ctx.metrics.set_managed(&key, is_managed(&previous));
        write_status(api, obj, &base, None, &waiting).await?;
        if waiting.stalled() {
            publish(
                ctx,
                obj,
                EventType::Warning,
                waiting.reason.as_str(),
                &waiting.message,
            )
            .await;
        }
        ctx.backoff.reset(&key);
        let due = promotion
            .as_ref()
            .and_then(|p| p.decision.requeue_after(now))
            .map_or(interval, |d| d.min(interval));
        info!(appimport = %key, reason = %waiting.reason, requeue_in = ?due, "promotion waits");
        return Ok(Action::requeue(due));
    }
    let followed = promotion.as_ref().and_then(Promotion::followed_sha);
    let mut outcome = match run_engine(obj, followed, ctx, api, &base).await {
        Ok(outcome) => outcome,
        Err(report) => return refused(api, obj, ctx, &base, &report, interval, verdict).await,
    };
    if let Some(p) = &promotion {
        outcome.report = p.engine_verdict(outcome.report, &display_url(&obj.spec.source.url));
    }
    set_verdict(verdict_of(&outcome.report));
    ctx.metrics
        .set_managed(&key, outcome.report.ready() && outcome.state.app.is_some());
    write_status(api, obj, &base, Some(&outcome.state), &outcome.report).await?;
    publish_outcome(ctx, obj, &previous, &outcome).await;
    if let Some(note) = promotion.as_ref().and_then(|p| {
        p.promoted_event(
            previous
                .last_applied_commit
                .as_ref()
                .map(|c| c.sha.as_str()),
            outcome
                .state
                .last_applied_commit
                .as_ref()
                .map(|c| c.sha.as_str()),
        )
    }) {
        info!(appimport = %key, %note, "promoted");
        publish(
            ctx,
            obj,
            EventType::Normal,
            DetailReason::Promoted.as_str(),
            &note,
        )
        .await;
    }
    Ok(requeue(ctx, &key, &outcome.report, interval))
}

/// A run stopped before the engine (or by a refusal of it): status, Events, requeue.
async fn refused(
    api: &Api<AppImport>,
    obj: &AppImport,
    ctx: &Context,
    base: &AppImportStatus,
    report: &Verdict,
    interval: Duration,
    verdict: &Mutex<ReconcileResult>,
) -> Result<Action, ControllerError> {
    let key = object_key(obj);
    *verdict.lock().unwrap_or_else(|p| p.into_inner()) = verdict_of(report);
    ctx.metrics.set_managed(&key, false);
    write_status(api, obj, base, None, report).await?;
    let had_app = obj.status.as_ref().is_some_and(|s| s.app.is_some());
    for (type_, reason, note) in events_for(had_app, None, report) {
        publish(ctx, obj, type_, reason, note).await;
    }
    Ok(requeue(ctx, &key, report, interval))
}

/// The promotion `obj` asks for, its upstream read from the AppImport cache.
async fn resolve_promotion(
    obj: &AppImport,
    ctx: &Context,
    now: Timestamp,
) -> Result<Option<Promotion>, Verdict> {
    if obj.spec.source.git_ref.from_app_import.is_none()
        && obj.spec.source.git_ref.ready_for.is_none()
    {
        return Ok(None);
    }
    // Before the first list completes the store is empty: waiting avoids a false UpstreamNotFound.
    let all = ctx
        .apps
        .synced_state(CACHE_WAIT)
        .await
        .ok_or_else(|| not_listed("AppImport"))?;
    let ns = obj.namespace().unwrap_or_default();
    let lookup = |k: &AppImportKey| {
        all.iter()
            .find(|a| {
                a.namespace().as_deref() == Some(k.namespace.as_str()) && a.name_any() == k.name
            })
            .cloned()
    };
    promotion_of(obj, &ns, lookup, now)
}

/// Success and Stalled wait `interval`; only retryable failures back off.
fn requeue(ctx: &Context, key: &str, report: &Verdict, interval: Duration) -> Action {
    if report.retryable() {
        Action::requeue(ctx.backoff.next(key))
    } else {
        ctx.backoff.reset(key);
        Action::requeue(interval)
    }
}

/// Runs the engine; `followed` is the commit a promotion follows (a pinned commit ref), and
/// `previous` the status the run starts from.
async fn run_engine(
    obj: &AppImport,
    followed: Option<&str>,
    ctx: &Context,
    api: &Api<AppImport>,
    previous: &AppImportStatus,
) -> Result<SyncOutcome, Verdict> {
    let ns = obj.namespace().unwrap_or_default();
    let instance = resolve_instance(obj, ctx).await?;
    let tooljet = ctx.clients.client_for(&ctx.secrets, &instance).await?;
    // Git credentials only from the AppImport's own namespace (tenancy).
    let (secrets, _) = read_secrets(&ctx.secrets, &ns, &import_secret_names(obj)).await?;
    let previous = previous.clone();
    // The first import waits for the instance's constants and data-source credentials: an app
    // imported before them would run its queries against empty or development values.
    if previous.app.is_none() && !super::instance::config_applied(&instance) {
        let why = instance
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONFIG_APPLIED))
            .filter(|c| c.status == "False")
            .map(|c| format!(" (ConfigApplied=False, {}: {})", c.reason, c.message))
            .unwrap_or_default();
        return Err(Verdict::new(
            Reason::WaitingForInstanceConfig,
            format!(
                "ToolJetInstance {}/{} has not applied its constants and data sources yet{why}; the first import waits for it",
                instance.namespace().unwrap_or_default(),
                instance.name_any()
            ),
        ));
    }
    let synced = with_promotion(obj, followed);
    let request = sync_request(
        &synced,
        &instance,
        &secrets,
        obj.meta().generation,
        status::state_of(&previous),
    )?;
    let checkpoint = StatusCheckpoint {
        api: api.clone(),
        obj,
        previous,
    };
    let mut outcome = ctx
        .engine
        .sync(request, &tooljet, Mode::Apply, &checkpoint)
        .await;
    mark_configured(&mut outcome.state.data_sources, &instance.spec);
    Ok(outcome)
}

async fn resolve_instance(obj: &AppImport, ctx: &Context) -> Result<Arc<ToolJetInstance>, Verdict> {
    // Before the first list completes the store is empty: waiting avoids a false InstanceNotFound.
    let all = ctx
        .instances
        .synced_state(CACHE_WAIT)
        .await
        .ok_or_else(|| not_listed("ToolJetInstance"))?;
    let ns = obj.namespace().unwrap_or_default();
    select_instance(obj, &ns, &all).cloned()
}

/// Saves the engine's state mid-run, so a crash never forgets an app it created. The rest of the
/// last full write (conditions, observedGeneration) is sent again: server-side apply would drop
/// fields the manager omits.
struct StatusCheckpoint<'a> {
    api: Api<AppImport>,
    obj: &'a AppImport,
    previous: AppImportStatus,
}

impl Checkpoint for StatusCheckpoint<'_> {
    fn save<'a>(&'a self, state: &'a SyncState) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let status = status::with_state(self.previous.clone(), state);
            apply_status(&self.api, self.obj, &status)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Writes the status after a run: `base` (the status before it, with this run's
/// `status.promotion`), the engine's `state` (when it ran) and the verdict's conditions.
async fn write_status(
    api: &Api<AppImport>,
    obj: &AppImport,
    base: &AppImportStatus,
    state: Option<&SyncState>,
    report: &Verdict,
) -> Result<(), ControllerError> {
    let status = status::after_run(
        base,
        state,
        report,
        obj.meta().generation,
        requested_at(obj),
        Timestamp::now(),
    );
    apply_status(api, obj, &status).await
}

fn requested_at(obj: &AppImport) -> Option<String> {
    obj.annotations()
        .get(ANNOTATION_RECONCILE_REQUESTED_AT)
        .cloned()
}

async fn publish(ctx: &Context, obj: &AppImport, type_: EventType, reason: &str, note: &str) {
    publish_event(&ctx.recorder, obj, type_, reason, note, "Reconcile").await;
}

/// Events for what a sync did: Imported / Updated on a new app version, DriftCorrected, and a
/// Warning with the verdict's reason (LocalChanges, NameConflict, ...) on every failure. Pure:
/// `had_app` is whether the status named an app before the run, `outcome` the engine's when it ran.
pub fn events_for<'a>(
    had_app: bool,
    outcome: Option<&'a SyncOutcome>,
    report: &'a Verdict,
) -> Vec<(EventType, &'static str, &'a str)> {
    let mut events = Vec::new();
    let imported = outcome.is_some_and(|o| {
        o.actions
            .iter()
            .any(|a| matches!(a, sync::Action::Import { .. }))
    });
    if imported && report.ready() {
        let reason = if had_app {
            Reason::Updated
        } else {
            Reason::Imported
        };
        events.push((EventType::Normal, reason.as_str(), report.message.as_str()));
    }
    if let Some(drift) = &report.drift
        && drift.corrected
    {
        events.push((
            EventType::Normal,
            DetailReason::DriftCorrected.as_str(),
            drift.message.as_str(),
        ));
    }
    if report.retryable() || report.stalled() {
        events.push((
            EventType::Warning,
            report.reason.as_str(),
            report.message.as_str(),
        ));
    }
    events
}

async fn publish_outcome(
    ctx: &Context,
    obj: &AppImport,
    previous: &AppImportStatus,
    outcome: &SyncOutcome,
) {
    let report = &outcome.report;
    if report.drift.as_ref().is_some_and(|d| d.corrected) {
        ctx.metrics.drift_corrected();
    }
    for (type_, reason, note) in events_for(previous.app.is_some(), Some(outcome), report) {
        if type_ == EventType::Normal && reason != DetailReason::DriftCorrected.as_str() {
            info!(appimport = %object_key(obj), reason, "app written to ToolJet");
        }
        publish(ctx, obj, type_, reason, note).await;
    }
}

async fn cleanup(obj: &AppImport, ctx: &Context) -> Result<Action, ControllerError> {
    let result = cleanup_inner(obj, ctx).await;
    if result.is_ok() {
        // The object is going: forget its backoff; it no longer manages an app.
        ctx.backoff.reset(&object_key(obj));
        ctx.metrics.set_managed(&object_key(obj), false);
    }
    result
}

async fn cleanup_inner(obj: &AppImport, ctx: &Context) -> Result<Action, ControllerError> {
    let skip = obj
        .annotations()
        .get(ANNOTATION_SKIP_CLEANUP)
        .is_some_and(|v| v == "true");
    if skip {
        let note = format!(
            "annotation {ANNOTATION_SKIP_CLEANUP} is \"true\": deletionPolicy not applied, apps left in ToolJet"
        );
        publish(
            ctx,
            obj,
            EventType::Warning,
            DetailReason::CleanupSkipped.as_str(),
            &note,
        )
        .await;
        return Ok(Action::await_change());
    }
    let instance = match resolve_instance(obj, ctx).await {
        Ok(i) => i,
        Err(r) if !r.retryable() => {
            // No instance any more: nothing can ever reach that ToolJet through this AppImport.
            let note = format!(
                "{}; deletionPolicy not applied, apps left in ToolJet",
                r.message
            );
            publish(
                ctx,
                obj,
                EventType::Warning,
                DetailReason::CleanupSkipped.as_str(),
                &note,
            )
            .await;
            return Ok(Action::await_change());
        }
        Err(r) => return Err(ControllerError::Cleanup(r.message)),
    };
    let tooljet = match ctx.clients.client_for(&ctx.secrets, &instance).await {
        Ok(c) => c,
        Err(r) if r.reason == Reason::SecretNotFound => {
            let note = format!(
                "{}; deletionPolicy not applied, apps left in ToolJet",
                r.message
            );
            publish(
                ctx,
                obj,
                EventType::Warning,
                DetailReason::CleanupSkipped.as_str(),
                &note,
            )
            .await;
            return Ok(Action::await_change());
        }
        Err(r) => return Err(ControllerError::Cleanup(r.message)),
    };
    let key = ImportKey::new(obj.namespace().unwrap_or_default(), obj.name_any());
    let state = status::state_of(&obj.status.clone().unwrap_or_default());
    let delete_app = obj.spec.deletion_policy == DeletionPolicy::Delete;
    match ctx
        .engine
        .release(&key, delete_app, &state, &tooljet, Mode::Apply)
        .await
    {
        Ok(actions) => {
            info!(appimport = %object_key(obj), deleted = actions.len(), delete_app, "released");
            Ok(Action::await_change())
        }
        Err(e) => {
            let message = format!(
                "{e}; the AppImport stays until this succeeds. If ToolJet is gone for good, set the annotation {ANNOTATION_SKIP_CLEANUP}: \"true\""
            );
            publish(
                ctx,
                obj,
                EventType::Warning,
                DetailReason::CleanupFailed.as_str(),
                &message,
            )
            .await;
            Err(ControllerError::Cleanup(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_and_resets() {
        let b = Backoff::default();
        let seq: Vec<u64> = (0..8).map(|_| b.next("ns/a").as_secs()).collect();
        assert_eq!(seq, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next("ns/other").as_secs(), 5, "per object");
        b.reset("ns/a");
        assert_eq!(b.next("ns/a").as_secs(), 5);
    }

    #[test]
    fn status_patch_carries_type_and_status_only() {
        use crate::controller::apply::status_patch;
        let status = AppImportStatus {
            last_applied_hash: Some("h".into()),
            ..Default::default()
        };
        let v = status_patch::<AppImport>(&status);
        assert_eq!(v["apiVersion"], "gitops.tooljet.dev/v1alpha1");
        assert_eq!(v["kind"], "AppImport");
        assert_eq!(v["status"]["lastAppliedHash"], "h");
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }
}
