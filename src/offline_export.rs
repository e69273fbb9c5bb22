//! `tooljet-operator export -f FILE...`: AppExports from manifest files, one shot, the same
//! export engine as the controller. ToolJetInstances and Secrets are read as `sync -f` reads
//! them ([`Manifests::load`]); the AppExports here. No state file: what the branch holds is
//! the state (an unchanged app is never committed again).

use std::path::PathBuf;

use kube::ResourceExt;
use serde::Serialize;

use crate::api::{AppExport, select_instance_for, validate_against_crd};
use crate::offline::{Manifests, OfflineError};
use crate::source::SourceCache;
use crate::sync::export::{self, ExportOutcome, ExportRequest, ImportOnInstance};
use crate::sync::{Secrets, git_credentials, tooljet_config};
use crate::tooljet::ToolJetClient;

/// Namespace of objects whose manifest names none (as `kubectl apply` would use).
const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ExportInputError {
    #[error(transparent)]
    Manifests(#[from] OfflineError),
    #[error("{path}: document {index} is not a valid AppExport: {reason}")]
    Invalid {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    #[error("no AppExport in the given files; pass the files that hold them with -f")]
    NothingToExport,
}

/// Everything `export -f` needs from the files.
pub struct ExportManifests {
    pub exports: Vec<AppExport>,
    pub others: Manifests,
}

impl ExportManifests {
    /// Reads multi-document YAML files: AppExports (checked against the CRD's rules and the
    /// code's), ToolJetInstances and Secrets; other kinds are skipped.
    pub fn load(paths: &[PathBuf]) -> Result<ExportManifests, ExportInputError> {
        let others = Manifests::load(paths)?;
        let mut exports = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| OfflineError::Read {
                path: path.clone(),
                source,
            })?;
            let docs: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&text).map_err(|e| OfflineError::Parse {
                    path: path.clone(),
                    index: 0,
                    kind: "YAML".into(),
                    reason: e.to_string(),
                })?;
            for (index, doc) in docs.into_iter().enumerate() {
                if doc.get("kind").and_then(|k| k.as_str()) != Some("AppExport") {
                    continue;
                }
                let invalid = |reason: String| ExportInputError::Invalid {
                    path: path.clone(),
                    index: index + 1,
                    reason,
                };
                let export: AppExport =
                    serde_json::from_value(doc).map_err(|e| invalid(e.to_string()))?;
                validate_against_crd(&export).map_err(|e| invalid(e.to_string()))?;
                export.spec.check().map_err(|e| invalid(e.to_string()))?;
                exports.push(export);
            }
        }
        if exports.is_empty() {
            return Err(ExportInputError::NothingToExport);
        }
        Ok(ExportManifests { exports, others })
    }
}

/// The result of one AppExport.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult {
    /// `namespace/name`.
    pub name: String,
    pub ready: bool,
    /// CamelCase, as the condition reason: `Exported`, `UpToDate`, or why it failed.
    pub reason: String,
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

fn namespace_of(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned()
}

/// Runs every AppExport, one after the other (two may write the same branch).
pub async fn run(manifests: &ExportManifests, cache: &SourceCache) -> Vec<ExportResult> {
    let mut results = Vec::with_capacity(manifests.exports.len());
    for export in &manifests.exports {
        results.push(run_one(manifests, export, cache).await);
    }
    results
}

async fn run_one(m: &ExportManifests, obj: &AppExport, cache: &SourceCache) -> ExportResult {
    let ns = namespace_of(obj.metadata.namespace.as_deref());
    let name = format!("{ns}/{}", obj.name_any());
    let fail = |reason: &str, message: String| ExportResult {
        name: name.clone(),
        ready: false,
        reason: reason.to_owned(),
        message,
        commit: None,
        apps: Vec::new(),
    };
    let spec = &obj.spec;
    let instance = match select_instance_for(
        spec.environment,
        spec.instance_ref.as_ref(),
        &ns,
        &m.others.instances,
        DEFAULT_NAMESPACE,
    ) {
        Ok(i) => i,
        Err(e) => return fail(e.reason(), e.to_string()),
    };
    let empty = Secrets::new();
    let inst_ns = namespace_of(instance.metadata.namespace.as_deref());
    let config = match tooljet_config(
        &instance.spec,
        m.others.secrets.get(&inst_ns).unwrap_or(&empty),
    ) {
        Ok(c) => c,
        Err(e) => return fail(e.reason(), e.to_string()),
    };
    let client = match ToolJetClient::new(config) {
        Ok(c) => c,
        Err(e) => return fail("ToolJetConfigInvalid", e.to_string()),
    };
    let creds = match git_credentials(
        spec.destination
            .secret_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        m.others.secrets.get(&ns).unwrap_or(&empty),
    ) {
        Ok(c) => c,
        Err(e) => return fail(e.reason(), e.to_string()),
    };
    // Item 7: never export an app that a non-editable AppImport owns on this instance.
    let on_instance: Vec<ImportOnInstance> = m
        .others
        .app_imports
        .iter()
        .filter(|imp| {
            m.others
                .instance_for(imp)
                .is_ok_and(|i| std::ptr::eq(i, instance))
        })
        .map(|imp| ImportOnInstance::of(&namespace_of(imp.metadata.namespace.as_deref()), imp))
        .collect();
    let request = ExportRequest::for_spec(spec, creds);
    if let Some(e) = export::conflicting_import(&request.apps, &on_instance) {
        return fail(e.reason(), e.to_string());
    }
    match export::export(cache, &client, &request).await {
        Ok(outcome) => done(name, outcome, &request.branch),
        Err(e) => fail(e.reason(), e.to_string()),
    }
}

fn done(name: String, outcome: ExportOutcome, branch: &str) -> ExportResult {
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
    let (reason, message) = match &outcome.commit {
        Some(c) => (
            "Exported",
            format!(
                "pushed commit {} to branch {branch:?}{}",
                c.sha,
                if outcome.created_branch {
                    " (branch created)"
                } else {
                    ""
                }
            ),
        ),
        None => (
            "UpToDate",
            format!(
                "branch {branch:?} already holds these apps (commit {}); nothing committed",
                outcome.head.as_deref().unwrap_or("none")
            ),
        ),
    };
    ExportResult {
        name,
        ready: true,
        reason: reason.into(),
        message,
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
