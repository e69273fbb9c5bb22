//! The AppExport controller: on every `spec.interval` (and on spec or annotation changes) it
//! exports the apps with [`crate::sync::export`] and reports kstatus conditions, `lastCommit`,
//! `apps` and Events. AppExports are only read (no finalizer: deleting one leaves git and ToolJet
//! as they are); their status is written with server-side apply.
//!
//! Item 7 of issue 18: an AppExport of an app that a non-editable AppImport owns on the same
//! instance is refused (`ConflictsWithAppImport`); editable ones coexist (the engine records the
//! exported commit as applied).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::ControllerError;
use super::app_import::verdict_of;
use super::apply::{apply_status, publish_event};
use super::caches::{Cache, CacheSynced};
use super::conditions;
use super::resolve::{CACHE_WAIT, instance_secret_names, not_listed, read_secrets};
use crate::api::{
    ANNOTATION_RECONCILE_REQUESTED_AT, AppExport, AppExportStatus, AppImport, ExportCommit,
    ExportedAppStatus, Reason, ToolJetInstance, Verdict, select_instance, select_instance_for,
};
use crate::process::metrics::Metrics;
use crate::process::shutdown::Shutdown;
use crate::source::SourceCache;
use crate::sync::export::{self, ExportOutcome, ExportRequest, ImportOnInstance};
use crate::sync::{git_credentials, tooljet_client};

/// Requeue after a failure that retrying may fix.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What an AppExport reconcile works with.
pub struct ExportContext {
    pub client: Client,
    pub source: SourceCache,
    pub instances: Cache<ToolJetInstance>,
    /// The AppImports the AppImport controller watches (the ping-pong rule reads them).
    pub apps: Cache<AppImport>,
    pub secrets: Cache<Secret>,
    pub recorder: Recorder,
    /// `tooljet_operator_reconciles_total{kind="AppExport"}` and its duration.
    pub metrics: Arc<Metrics>,
}

/// Runs the AppExport controller (its own watch) until `shutdown`. A watch that never completes
/// its first list (the AppExport CRD not installed, RBAC missing) holds no reconcile, so on
/// shutdown it stops at once instead of waiting out the grace period.
pub async fn run(ctx: Arc<ExportContext>, namespace: Option<&str>, shutdown: Shutdown) {
    let api: Api<AppExport> = match namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let synced = CacheSynced::default();
    let (store, writer) = kube::runtime::reflector::store();
    let changes = synced
        .track(
            watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(|obj: &mut AppExport| obj.meta_mut().managed_fields = None)
                .reflect(writer),
        )
        .applied_objects()
        .predicate_filter(
            predicates::generation::<AppExport>.combine(predicates::annotations::<AppExport>),
            PredicateConfig::default(),
        );
    let running = Controller::for_stream(changes, store)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "AppExport controller");
            }
        });
    let stop_unsynced = async {
        shutdown.await;
        if synced.is_synced() {
            futures::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = running => {}
        () = stop_unsynced => {
            warn!("the AppExport watch never completed a list (is the AppExport CRD installed? `tooljet-operator crds`); stopped");
        }
    }
}

/// Requeue after a failure that escaped reconcile (API server errors).
pub fn error_policy(obj: Arc<AppExport>, error: &ControllerError, _: Arc<ExportContext>) -> Action {
    warn!(appexport = %obj.name_any(), %error, "reconcile failed");
    Action::requeue(RETRY_AFTER)
}

pub async fn reconcile(
    obj: Arc<AppExport>,
    ctx: Arc<ExportContext>,
) -> Result<Action, ControllerError> {
    let ns = obj
        .namespace()
        .ok_or_else(|| ControllerError::InvalidObject("AppExport without a namespace".into()))?;
    let api: Api<AppExport> = Api::namespaced(ctx.client.clone(), &ns);
    let previous = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let interval = obj
        .spec
        .interval_duration()
        .unwrap_or(Duration::from_secs(300));
    let now = Timestamp::now();
    if obj.spec.suspend {
        let mut status = previous.clone();
        status.conditions = conditions::suspended(&previous.conditions, generation, now);
        status.observed_generation = generation;
        apply_status(&api, obj.as_ref(), &status).await?;
        return Ok(Action::await_change());
    }
    let started = tokio::time::Instant::now();
    let result = export_once(&obj, &ns, &ctx).await;
    let report = match &result {
        Ok(outcome) => outcome.verdict(&obj.spec.destination.branch),
        Err(e) => *e.clone(),
    };
    ctx.metrics
        .reconciled("AppExport", verdict_of(&report), started.elapsed());
    let status = status_after(&previous, &obj, result.as_ref().ok(), &report, now);
    apply_status(&api, obj.as_ref(), &status).await?;
    match &result {
        Ok(outcome) => {
            if let Some(commit) = &outcome.commit {
                info!(appexport = %format!("{ns}/{}", obj.name_any()), commit = %commit.sha, "exported");
                publish(&ctx, &obj, EventType::Normal, "Exported", &report.message).await;
            }
        }
        Err(_) => {
            publish(
                &ctx,
                &obj,
                EventType::Warning,
                report.reason.as_str(),
                &report.message,
            )
            .await
        }
    }
    Ok(if !report.retryable() {
        Action::requeue(interval)
    } else {
        Action::requeue(RETRY_AFTER.min(interval))
    })
}

/// One export; a failure as the verdict the conditions are made of.
async fn export_once(
    obj: &AppExport,
    ns: &str,
    ctx: &ExportContext,
) -> Result<ExportOutcome, Box<Verdict>> {
    let spec = &obj.spec;
    if let Err(e) = spec.check() {
        return Err(Box::new(Verdict::new(Reason::InvalidSpec, e.to_string())));
    }
    let Some(instances) = ctx.instances.synced_state(CACHE_WAIT).await else {
        return Err(Box::new(not_listed("ToolJetInstance")));
    };
    let instance = select_instance_for(
        spec.environment,
        spec.instance_ref.as_ref(),
        ns,
        instances.iter().map(|i| i.as_ref()),
        ns,
    )
    .map_err(|e| Box::new(e.verdict()))?;
    let inst_ns = instance.namespace().unwrap_or_else(|| ns.to_owned());
    let (inst_secrets, _) = read_secrets(
        &ctx.secrets,
        &inst_ns,
        &instance_secret_names(&instance.spec),
    )
    .await?;
    let client = tooljet_client(instance, &inst_secrets)?;
    let secret_names: Vec<String> = spec
        .destination
        .secret_ref
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let (git_secrets, _) = read_secrets(&ctx.secrets, ns, &secret_names).await?;
    let creds = git_credentials(secret_names.first().map(String::as_str), &git_secrets)
        .map_err(|e| Box::new(e.verdict()))?;

    // Item 7: the AppImports of this namespace on the same instance.
    let Some(imports) = ctx.apps.synced_state(CACHE_WAIT).await else {
        return Err(Box::new(not_listed("AppImport")));
    };
    let on_instance: Vec<ImportOnInstance> = imports
        .iter()
        .filter(|imp| imp.namespace().as_deref() == Some(ns))
        .filter(|imp| {
            select_instance(imp, ns, instances.iter().map(|i| i.as_ref()), ns)
                .is_ok_and(|i| i.uid() == instance.uid() && i.name_any() == instance.name_any())
        })
        .map(|imp| ImportOnInstance::of(ns, imp))
        .collect();
    let request = ExportRequest::for_spec(spec, creds);
    if let Some(e) = export::conflicting_import(&request.apps, &on_instance) {
        return Err(Box::new(e.verdict()));
    }
    export::export(&ctx.source, &client, &request)
        .await
        .map_err(|e| Box::new(e.verdict()))
}

/// The status after a run: conditions from the report; on success, `lastCommit` when one was
/// pushed and `apps` (an unchanged app keeps the time it was last written).
pub fn status_after(
    previous: &AppExportStatus,
    obj: &AppExport,
    outcome: Option<&ExportOutcome>,
    report: &Verdict,
    now: Timestamp,
) -> AppExportStatus {
    let generation = obj.metadata.generation;
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.conditions = conditions::from_report(&previous.conditions, report, generation, now);
    status.last_handled_reconcile_at = obj
        .annotations()
        .get(ANNOTATION_RECONCILE_REQUESTED_AT)
        .cloned()
        .or(status.last_handled_reconcile_at);
    if let Some(outcome) = outcome {
        status.last_export_time = Some(Time(now));
        if let Some(c) = &outcome.commit {
            status.last_commit = Some(ExportCommit {
                sha: c.sha.clone(),
                message: c.message.clone(),
                date: Time(c.date),
            });
        }
        status.apps = outcome
            .apps
            .iter()
            .map(|a| {
                let earlier = previous
                    .apps
                    .iter()
                    .find(|p| p.id == a.id)
                    .and_then(|p| p.exported_at.clone());
                ExportedAppStatus {
                    name: a.name.clone(),
                    id: a.id.clone(),
                    updated_at: a.updated_at.clone(),
                    exported_at: if a.changed { Some(Time(now)) } else { earlier },
                }
            })
            .collect();
    }
    status
}

async fn publish(ctx: &ExportContext, obj: &AppExport, type_: EventType, reason: &str, note: &str) {
    publish_event(&ctx.recorder, obj, type_, reason, note, "Export").await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::export::{ExportError, ExportedApp};
    use serde_json::json;

    fn export_obj() -> AppExport {
        let mut obj: AppExport = serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1",
            "kind": "AppExport",
            "metadata": {"name": "dev", "namespace": "team-a", "generation": 3},
            "spec": {
                "environment": "development",
                "destination": {"url": "https://git.example/r.git", "branch": "tooljet/dev"},
                "author": {"name": "ToolJet export", "email": "t@example.com"}
            }
        }))
        .expect("AppExport");
        obj.metadata.generation = Some(3);
        obj
    }

    fn app(id: &str, changed: bool) -> ExportedApp {
        ExportedApp {
            name: format!("App {id}"),
            id: id.into(),
            version: "v1".into(),
            updated_at: Some("2026-01-01T00:00:00Z".into()),
            path: format!("App {id}/v1.json"),
            changed,
        }
    }

    #[test]
    fn status_records_commits_apps_and_conditions() {
        let obj = export_obj();
        let t1 = Timestamp::from_second(1_700_000_000).expect("t1");
        let commit = crate::source::CommitInfo {
            sha: "a".repeat(40),
            message: "Export App 1".into(),
            author: "ToolJet export".into(),
            author_email: "t@example.com".into(),
            date: t1,
        };
        let first = ExportOutcome {
            apps: vec![app("1", true), app("2", true)],
            commit: Some(commit),
            head: Some("a".repeat(40)),
            attempts: 1,
            created_branch: true,
            branch_missing: false,
        };
        let report = first.verdict("tooljet/dev");
        let s1 = status_after(&AppExportStatus::default(), &obj, Some(&first), &report, t1);
        assert_eq!(s1.observed_generation, Some(3));
        assert_eq!(
            s1.last_commit.as_ref().map(|c| c.sha.clone()),
            Some("a".repeat(40))
        );
        assert!(s1.apps.iter().all(|a| a.exported_at == Some(Time(t1))));
        let ready = s1
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Exported")
        );

        // Later: app 2 changed, app 1 did not; app 1 keeps its time.
        let t2 = Timestamp::from_second(1_700_000_600).expect("t2");
        let second = ExportOutcome {
            apps: vec![app("1", false), app("2", true)],
            commit: first.commit.clone(),
            ..first.clone()
        };
        let s2 = status_after(&s1, &obj, Some(&second), &second.verdict("b"), t2);
        assert_eq!(s2.apps[0].exported_at, Some(Time(t1)));
        assert_eq!(s2.apps[1].exported_at, Some(Time(t2)));

        // A failure keeps lastCommit and apps, and says why (Stalled when retrying cannot help).
        let e = ExportError::AppNotFound {
            name: "Gone".into(),
            available: vec![],
        };
        let s3 = status_after(&s2, &obj, None, &e.verdict(), t2);
        assert_eq!(s3.last_commit, s2.last_commit);
        assert_eq!(s3.apps, s2.apps);
        let ready = s3
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "AppNotFound")
        );
        assert!(
            s3.conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.status == "True")
        );
        // A retryable failure: Reconciling, not Stalled.
        let busy = ExportError::Source(crate::source::SourceError::PushConflict {
            url: "u".into(),
            branch: "b".into(),
            attempts: 3,
        });
        let s4 = status_after(&s2, &obj, None, &busy.verdict(), t2);
        assert!(
            s4.conditions
                .iter()
                .any(|c| c.type_ == "Reconciling" && c.status == "True")
        );
        assert!(!s4.conditions.iter().any(|c| c.type_ == "Stalled"));
    }
}
