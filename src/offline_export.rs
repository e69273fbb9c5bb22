//! `tooljet-operator export -f FILE...`: AppExports from manifest files, one shot, the same
//! export engine as the controller. AppExports, ToolJetInstances and Secrets are read as
//! `sync -f` reads them ([`Manifests::load`]). No state file: what the branch holds is the state
//! (an unchanged app is never committed again).

use kube::ResourceExt;
use serde::Serialize;

use crate::api::{AppExport, Reason, Verdict, select_instance_for};
use crate::offline::Manifests;
use crate::source::SourceCache;
use crate::sync::export::{self, ExportOutcome, ExportRequest, ImportOnInstance};
use crate::sync::git_credentials;
use crate::sync::request::{DEFAULT_NAMESPACE, namespace_of, tooljet_client};

/// The result of one AppExport.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult {
    /// `namespace/name`.
    pub name: String,
    pub ready: bool,
    /// As the condition reason: `Exported`, `UpToDate`, or why it failed.
    pub reason: Reason,
    pub message: String,
    /// The commit pushed by this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<crate::source::CommitInfo>,
    pub apps: Vec<ExportedAppResult>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedAppResult {
    pub name: String,
    pub id: String,
    pub version: String,
    pub path: String,
    pub changed: bool,
}

/// Runs every AppExport of the files, one after the other (two may write the same branch).
pub async fn run(manifests: &Manifests, cache: &SourceCache) -> Vec<ExportResult> {
    let mut results = Vec::with_capacity(manifests.app_exports.len());
    for export in &manifests.app_exports {
        let ns = namespace_of(export.metadata.namespace.as_deref());
        let name = format!("{ns}/{}", export.name_any());
        results.push(match run_one(manifests, export, &ns, cache).await {
            Ok(outcome) => done(name, outcome, &export.spec.destination.branch),
            Err(verdict) => ExportResult {
                name,
                ready: false,
                reason: verdict.reason,
                message: verdict.message,
                commit: None,
                apps: Vec::new(),
            },
        });
    }
    results
}

async fn run_one(
    m: &Manifests,
    obj: &AppExport,
    ns: &str,
    cache: &SourceCache,
) -> Result<ExportOutcome, Verdict> {
    let spec = &obj.spec;
    let instance = select_instance_for(
        spec.environment,
        spec.instance_ref.as_ref(),
        ns,
        &m.instances,
        DEFAULT_NAMESPACE,
    )
    .map_err(|e| e.verdict())?;
    let inst_ns = namespace_of(instance.metadata.namespace.as_deref());
    let client = tooljet_client(instance, &m.secrets_in(&inst_ns))?;
    let creds = git_credentials(
        spec.destination
            .secret_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        &m.secrets_in(ns),
    )
    .map_err(|e| e.verdict())?;
    // Item 7: never export an app that a non-editable AppImport owns on this instance.
    let on_instance: Vec<ImportOnInstance> = m
        .app_imports
        .iter()
        .filter(|imp| m.instance_for(imp).is_ok_and(|i| std::ptr::eq(i, instance)))
        .map(|imp| ImportOnInstance::of(&namespace_of(imp.metadata.namespace.as_deref()), imp))
        .collect();
    let request = ExportRequest::for_spec(spec, creds);
    if let Some(e) = export::conflicting_import(&request.apps, &on_instance) {
        return Err(e.verdict());
    }
    export::export(cache, &client, &request)
        .await
        .map_err(|e| e.verdict())
}

fn done(name: String, outcome: ExportOutcome, branch: &str) -> ExportResult {
    let verdict = outcome.verdict(branch);
    let apps = outcome
        .apps
        .iter()
        .map(|a| ExportedAppResult {
            name: a.name.clone(),
            id: a.id.clone(),
            version: a.version.clone(),
            path: a.path.clone(),
            changed: a.changed,
        })
        .collect();
    ExportResult {
        name,
        ready: verdict.ready(),
        reason: verdict.reason,
        message: verdict.message,
        commit: outcome.commit,
        apps,
    }
}

/// One line per AppExport, then one per app.
pub fn summary(results: &[ExportResult]) -> String {
    let mut out = String::new();
    for r in results {
        let verdict = if r.ready { "ready" } else { "NOT READY" };
        out.push_str(&format!(
            "{}: {verdict} ({}): {}\n",
            r.name, r.reason, r.message
        ));
        for a in &r.apps {
            let what = if a.changed { "exported" } else { "unchanged" };
            out.push_str(&format!("  {what}: {} -> {}\n", a.name, a.path));
        }
    }
    out
}
