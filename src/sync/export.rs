//! The export engine (issue 18): apps from ToolJet back into git. Knows nothing of Kubernetes:
//! the AppExport controller and `tooljet-operator export -f` call it with what to export, where
//! to, and a client.
//!
//! Each run exports the apps (by name, or every front-end app of the workspace) with ToolJet's
//! export endpoint, removes what must not leave ToolJet (data-source options), and writes them on
//! top of the branch's newest commit, in ToolJet's Git Sync layout (`.meta/meta.json` +
//! `<app>/<version>.json`, the app's other version files removed as ToolJet does) or as plain
//! bundles (`<path>/<app>.json`). An app is written only when it differs from what the branch
//! holds by [`crate::diff::same_app`] (ids and timestamps an export regenerates are no change);
//! when no app differs there is no commit. The commit is pushed without force; a branch that moved
//! is fetched and the export re-applied on it (see `source/push.rs`).
//!
//! Who edited: ToolJet's export and app listing carry no editor, only the app's owner
//! (`appV2.userId`, a user id) and `updatedAt`; the commit message names each app with its
//! version, when it was last edited and that user id.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::{source_reason, tooljet_reason};
use crate::api::{Reason, Verdict};
use crate::diff;
use crate::source::{
    CommitInfo, Credentials, FileChange, HeadTree, Planned, Planner, PushOutcome, PushRequest,
    SourceCache, SourceError, check_branch,
};
use crate::tooljet::{ToolJetClient, ToolJetError};

/// Where `.meta/meta.json` lives: the repository root, where ToolJet's Git Sync writes it and
/// where AppImports read it.
pub const META_PATH: &str = ".meta/meta.json";
/// Attempts at pushing on top of a branch that keeps moving.
pub const PUSH_ATTEMPTS: u32 = 3;

/// How apps are written into the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExportLayout {
    /// ToolJet Git Sync: `.meta/meta.json` and `<app>/<version>.json` at the repository root.
    #[default]
    GitSync,
    /// One export bundle per app: `<path>/<app>.json`.
    Bundle,
}

/// What to export, and where to.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// App names in ToolJet; empty: every front-end app of the workspace.
    pub apps: Vec<String>,
    pub url: String,
    pub branch: String,
    pub layout: ExportLayout,
    /// Folder for bundles (Bundle layout); must be empty for GitSync.
    pub path: String,
    pub author_name: String,
    pub author_email: String,
    /// Named in the commit message (the environment or instance exported from).
    pub source_name: String,
    pub credentials: Credentials,
}

/// One exported app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedApp {
    pub name: String,
    pub id: String,
    pub version: String,
    /// ToolJet's `updatedAt` of the app, when it says.
    pub updated_at: Option<String>,
    /// Where the bundle is in the repository.
    pub path: String,
    /// The app differed from the branch and was written by this run's commit.
    pub changed: bool,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOutcome {
    pub apps: Vec<ExportedApp>,
    /// The commit pushed, when something changed.
    pub commit: Option<CommitInfo>,
    /// The branch's head after the run.
    pub head: Option<String>,
    /// Push attempts (more than one: the branch moved during the push).
    pub attempts: u32,
    pub created_branch: bool,
    /// Nothing was committed and the branch does not exist: the default branch (`head`) already
    /// holds the apps, so the branch is left to the first export that changes something.
    pub branch_missing: bool,
}

impl ExportOutcome {
    /// The verdict of a run that reached its goal: `Exported` when a commit was pushed to
    /// `branch`, `UpToDate` when the branch already held every app. The controller and
    /// `export -f` report it alike.
    pub fn verdict(&self, branch: &str) -> Verdict {
        match &self.commit {
            Some(c) => {
                let names: Vec<&str> = self
                    .apps
                    .iter()
                    .filter(|a| a.changed)
                    .map(|a| a.name.as_str())
                    .collect();
                Verdict::new(
                    Reason::Exported,
                    format!(
                        "pushed commit {} to branch {branch:?}{} with {}",
                        c.sha,
                        if self.created_branch {
                            " (branch created)"
                        } else {
                            ""
                        },
                        names.join(", ")
                    ),
                )
            }
            None if self.branch_missing => Verdict::new(
                Reason::UpToDate,
                format!(
                    "branch {branch:?} does not exist and the default branch (commit {}) already holds the {} exported app(s); nothing committed, the branch is created by the first export that changes something",
                    self.head.as_deref().unwrap_or("none"),
                    self.apps.len()
                ),
            ),
            None => Verdict::new(
                Reason::UpToDate,
                format!(
                    "branch {branch:?} already holds the {} exported app(s) (commit {}); nothing committed",
                    self.apps.len(),
                    self.head.as_deref().unwrap_or("none")
                ),
            ),
        }
    }
}

/// Why an export did not happen. Nothing was pushed in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the AppExport is invalid: {0}")]
    InvalidSpec(String),

    #[error("app {name:?} does not exist in ToolJet; apps there: {available:?}")]
    AppNotFound {
        name: String,
        available: Vec<String>,
    },

    #[error(
        "app {name:?} cannot be a file name in the repository ({reason}); rename the app in ToolJet"
    )]
    AppNameNotAPath { name: String, reason: String },

    #[error(
        "{path} on branch {branch:?} is not valid JSON ({reason}); the export does not overwrite a meta.json it cannot read: fix or remove it"
    )]
    MetaUnreadable {
        path: String,
        branch: String,
        reason: String,
    },

    #[error(
        "app {app:?} is imported into this ToolJet by AppImport {import} with editable: false, which restores the git version after every edit; exporting it would loop ToolJet's state back into git. Export apps that are editable there (editable: true), or leave {app:?} out of apps"
    )]
    ConflictsWithAppImport { app: String, import: String },

    #[error("git: {0}")]
    Source(#[from] SourceError),

    #[error("ToolJet: {0}")]
    ToolJet(#[from] ToolJetError),
}

/// An AppImport into the same ToolJet instance as an export, as the ping-pong rule sees it.
#[derive(Clone, Debug)]
pub struct ImportOnInstance {
    /// `namespace/name` of the AppImport.
    pub import: String,
    pub editable: bool,
    /// The app's name in ToolJet when known (its status, else `appName`, else `source.app`).
    pub app: Option<String>,
}

/// Issue 18, item 7: an AppExport and an *editable* AppImport of one app may coexist (the
/// AppImport records the exported commit as applied, see the engine); a *non-editable* one may
/// not: it owns the app and restores git's version, so the pair would loop. `apps` empty means
/// every app, which any non-editable AppImport on the instance conflicts with (also one whose
/// app name is not known yet).
pub fn conflicting_import(apps: &[String], imports: &[ImportOnInstance]) -> Option<ExportError> {
    imports.iter().filter(|i| !i.editable).find_map(|i| {
        let hit = match &i.app {
            Some(app) => apps.is_empty() || apps.iter().any(|a| a.trim() == app.trim()),
            None => apps.is_empty(),
        };
        hit.then(|| ExportError::ConflictsWithAppImport {
            app: i.app.clone().unwrap_or_else(|| "(every app)".into()),
            import: i.import.clone(),
        })
    })
}

impl ExportError {
    /// The condition reason, from the one table of reasons (git and ToolJet failures map as they
    /// do for an AppImport).
    pub fn reason(&self) -> Reason {
        match self {
            ExportError::InvalidSpec(_) => Reason::InvalidSpec,
            ExportError::AppNotFound { .. } => Reason::AppNotFound,
            ExportError::AppNameNotAPath { .. } => Reason::InvalidAppName,
            ExportError::ConflictsWithAppImport { .. } => Reason::ConflictsWithAppImport,
            ExportError::MetaUnreadable { .. } => Reason::InvalidRepository,
            ExportError::Source(SourceError::PathEscapesRepo { .. }) => Reason::InvalidSpec,
            ExportError::Source(e) => source_reason(e),
            ExportError::ToolJet(e) => tooljet_reason(e),
        }
    }

    /// The verdict of an export that stopped with this failure.
    pub fn verdict(&self) -> Verdict {
        Verdict::new(self.reason(), self.to_string())
    }
}

/// An app as exported, ready to write.
#[derive(Clone, Debug)]
struct Exported {
    id: String,
    name: String,
    version: String,
    updated_at: Option<String>,
    owner: Option<String>,
    bundle: Value,
    bytes: Vec<u8>,
}

impl ExportRequest {
    /// The request an AppExport's spec asks for (the controller and `export -f` alike).
    pub fn for_spec(spec: &crate::api::AppExportSpec, credentials: Credentials) -> ExportRequest {
        ExportRequest {
            apps: spec.apps.iter().map(|a| a.0.clone()).collect(),
            url: spec.destination.url.clone(),
            branch: spec.destination.branch.clone(),
            layout: match spec.destination.layout {
                crate::api::ExportLayout::GitSync => ExportLayout::GitSync,
                crate::api::ExportLayout::Bundle => ExportLayout::Bundle,
            },
            path: spec.destination.path.clone(),
            author_name: spec.author.name.clone(),
            author_email: spec.author.email.clone(),
            source_name: spec.environment.to_string(),
            credentials,
        }
    }
}

impl ImportOnInstance {
    /// An AppImport in namespace `ns`; its app name from status when it has imported one.
    pub fn of(ns: &str, import: &crate::api::AppImport) -> ImportOnInstance {
        use kube::ResourceExt;
        ImportOnInstance {
            import: format!("{ns}/{}", import.name_any()),
            editable: import.spec.editable,
            app: import
                .status
                .as_ref()
                .and_then(|s| s.app.as_ref().map(|a| a.name.clone()))
                .or_else(|| import.spec.app_name.clone())
                .or_else(|| import.spec.source.app.clone()),
        }
    }
}

/// Checks what can be checked without ToolJet or git.
pub fn validate(req: &ExportRequest) -> Result<(), ExportError> {
    check_branch(&req.branch)?;
    match req.layout {
        ExportLayout::GitSync if !req.path.trim_matches('/').is_empty() => {
            return Err(ExportError::InvalidSpec(
                "layout GitSync writes .meta/meta.json and <app>/<version>.json at the repository root, where ToolJet and AppImports read them; leave path empty, or use layout Bundle to write into a folder".into(),
            ));
        }
        ExportLayout::Bundle if !req.path.trim_matches('/').is_empty() => {
            crate::source::check_repo_path(&req.path)?;
        }
        _ => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in &req.apps {
        if name.trim().is_empty() {
            return Err(ExportError::InvalidSpec("an app name is empty".into()));
        }
        if !seen.insert(name.trim()) {
            return Err(ExportError::InvalidSpec(format!(
                "app {name:?} is listed twice"
            )));
        }
    }
    if req.author_name.trim().is_empty() || req.author_email.trim().is_empty() {
        return Err(ExportError::InvalidSpec(
            "author needs a name and an email".into(),
        ));
    }
    Ok(())
}

/// Exports and pushes. See the module docs.
pub async fn export(
    cache: &SourceCache,
    client: &ToolJetClient,
    req: &ExportRequest,
) -> Result<ExportOutcome, ExportError> {
    validate(req)?;
    let apps = export_apps(client, &req.apps).await?;
    for app in &apps {
        file_name(&app.name)?;
        file_name(&app.version).map_err(|_| ExportError::AppNameNotAPath {
            name: app.name.clone(),
            reason: format!("its version name {:?} is not a file name", app.version),
        })?;
    }
    let apps = Arc::new(apps);
    let changed: Shared<Vec<bool>> = Arc::default();
    let meta_error: Shared<Option<ExportError>> = Arc::default();
    let planner = planner(req, apps.clone(), changed.clone(), meta_error.clone());
    let outcome = cache
        .commit_and_push(
            &req.url,
            &req.credentials,
            PushRequest {
                branch: req.branch.clone(),
                author_name: req.author_name.clone(),
                author_email: req.author_email.clone(),
                planner,
                max_attempts: PUSH_ATTEMPTS,
            },
        )
        .await;
    if let Some(e) = meta_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let outcome = outcome?;
    let flags = changed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let pushed = matches!(outcome, PushOutcome::Pushed { .. });
    let exported = apps
        .iter()
        .enumerate()
        .map(|(i, a)| ExportedApp {
            name: a.name.clone(),
            id: a.id.clone(),
            version: a.version.clone(),
            updated_at: a.updated_at.clone(),
            path: bundle_path(req.layout, req.path.trim_matches('/'), a),
            changed: pushed && flags.get(i).copied().unwrap_or(false),
        })
        .collect();
    Ok(match outcome {
        PushOutcome::Pushed {
            commit,
            created_branch,
            attempts,
            ..
        } => ExportOutcome {
            apps: exported,
            head: Some(commit.sha.clone()),
            commit: Some(commit),
            attempts,
            created_branch,
            branch_missing: false,
        },
        PushOutcome::Unchanged {
            head,
            branch_exists,
        } => ExportOutcome {
            apps: exported,
            commit: None,
            head,
            attempts: 1,
            created_branch: false,
            branch_missing: !branch_exists,
        },
    })
}

/// What the planner reports back to [`export`] from inside the push (it runs on the git
/// worker, once per attempt).
type Shared<T> = Arc<std::sync::Mutex<T>>;

/// The push's planner: the files to write on top of the branch's head, in the request's layout.
/// It records which apps differ (`changed`) and, for a meta.json it cannot read, the error the
/// user sees (`meta_error`).
fn planner(
    req: &ExportRequest,
    apps: Arc<Vec<Exported>>,
    changed: Shared<Vec<bool>>,
    meta_error: Shared<Option<ExportError>>,
) -> Planner {
    let (layout, path, source, user, branch) = (
        req.layout,
        req.path.trim_matches('/').to_string(),
        req.source_name.clone(),
        req.author_name.clone(),
        req.branch.clone(),
    );
    Arc::new(move |head: &HeadTree<'_>| {
        let plan = match layout {
            ExportLayout::GitSync => plan_git_sync(head, &apps, &source, &user),
            ExportLayout::Bundle => plan_bundles(head, &apps, &path, &source),
        };
        match plan {
            Ok((flags, planned)) => {
                *changed.lock().unwrap_or_else(|p| p.into_inner()) = flags;
                Ok(planned)
            }
            Err(PlanError::Source(e)) => Err(e),
            Err(PlanError::Meta(reason)) => {
                *meta_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(ExportError::MetaUnreadable {
                        path: META_PATH.into(),
                        branch: branch.clone(),
                        reason: reason.clone(),
                    });
                Err(SourceError::MetaJsonInvalid {
                    commit: head.head().unwrap_or_default().to_string(),
                    reason,
                })
            }
        }
    })
}

/// Finds and exports the apps (all of the workspace when `names` is empty), sorted by name.
async fn export_apps(
    client: &ToolJetClient,
    names: &[String],
) -> Result<Vec<Exported>, ExportError> {
    let listed = client.list_apps_matching("").await?;
    let mut chosen = Vec::new();
    if names.is_empty() {
        chosen = listed.clone();
    } else {
        for name in names {
            let name = name.trim();
            match listed.iter().find(|a| a.name == name) {
                Some(a) => chosen.push(a.clone()),
                None => {
                    let mut available: Vec<String> =
                        listed.iter().map(|a| a.name.clone()).collect();
                    available.sort();
                    return Err(ExportError::AppNotFound {
                        name: name.to_string(),
                        available,
                    });
                }
            }
        }
    }
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(chosen.len());
    for app in chosen {
        let mut bundle = client.export_app(&app.id, None).await?;
        strip_secrets(&mut bundle);
        let app_v2 = bundle.pointer("/app/0/definition/appV2");
        let version = app_v2
            .and_then(|a| a.pointer("/editingVersion/name"))
            .and_then(Value::as_str)
            .unwrap_or("v1")
            .to_string();
        let owner = app_v2
            .and_then(|a| a.get("userId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut bytes = serde_json::to_vec_pretty(&bundle)
            .map_err(|e| ExportError::InvalidSpec(format!("bundle of {:?}: {e}", app.name)))?;
        bytes.push(b'\n');
        tracing::debug!(app = %app.name, id = %app.id, version = %version, "exported");
        out.push(Exported {
            id: app.id,
            name: app.name,
            version,
            updated_at: app.updated_at,
            owner,
            bundle,
            bytes,
        });
    }
    Ok(out)
}

/// Removes what must never leave ToolJet: every data source's options (2.x exports carry the
/// non-secret options of every data source of the workspace, with credential ids), keeping
/// the data sources' names, kinds and ids that an import binds queries with.
pub fn strip_secrets(bundle: &mut Value) {
    let Some(apps) = bundle.get_mut("app").and_then(Value::as_array_mut) else {
        return;
    };
    for app in apps {
        let Some(def) = app.get_mut("definition") else {
            continue;
        };
        let target = if def.get("appV2").is_some() {
            def.get_mut("appV2")
        } else {
            Some(def)
        };
        let Some(Value::Object(app_v2)) = target else {
            continue;
        };
        if app_v2.contains_key("dataSourceOptions") {
            app_v2.insert("dataSourceOptions".into(), json!([]));
        }
        if let Some(Value::Array(sources)) = app_v2.get_mut("dataSources") {
            for source in sources.iter_mut().filter_map(Value::as_object_mut) {
                source.remove("options");
            }
        }
    }
}

enum PlanError {
    Source(SourceError),
    Meta(String),
}

impl From<SourceError> for PlanError {
    fn from(e: SourceError) -> Self {
        PlanError::Source(e)
    }
}

/// The file name of an app or version (the reader's rule: no separators, not `.`/`..`).
fn file_name(name: &str) -> Result<(), ExportError> {
    let bad = |reason: &str| ExportError::AppNameNotAPath {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad("empty, '.' or '..'"));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(bad("it contains '/', '\\' or NUL"));
    }
    Ok(())
}

fn bundle_path(layout: ExportLayout, path: &str, app: &Exported) -> String {
    match layout {
        ExportLayout::GitSync => format!("{}/{}.json", app.name, app.version),
        ExportLayout::Bundle if path.is_empty() => format!("{}.json", app.name),
        ExportLayout::Bundle => format!("{path}/{}.json", app.name),
    }
}

/// Whether the branch's copy (if any) is the same app as the export.
fn same_as(old: Option<&[u8]>, new: &Value) -> bool {
    let Some(old) = old.and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
        return false;
    };
    diff::same_app(&old, new).unwrap_or(false)
}

fn commit_message(changed: &[&Exported], source: &str) -> String {
    let names: Vec<&str> = changed.iter().map(|a| a.name.as_str()).collect();
    let mut msg = format!("Export {} from ToolJet {source}\n\n", names.join(", "));
    for app in changed {
        msg.push_str(&format!("- {} (version {})", app.name, app.version));
        if let Some(at) = &app.updated_at {
            msg.push_str(&format!(", last edited {at}"));
        }
        if let Some(user) = &app.owner {
            msg.push_str(&format!(", owner user {user}"));
        }
        msg.push('\n');
    }
    msg
}

type Plan = (Vec<bool>, Option<Planned>);

fn plan_bundles(
    head: &HeadTree<'_>,
    apps: &[Exported],
    path: &str,
    source: &str,
) -> Result<Plan, PlanError> {
    let mut flags = Vec::with_capacity(apps.len());
    let mut changes = Vec::new();
    let mut changed = Vec::new();
    for app in apps {
        let at = bundle_path(ExportLayout::Bundle, path, app);
        let old = head.read(&at)?;
        let differs = !same_as(old.as_deref(), &app.bundle);
        flags.push(differs);
        if differs {
            changes.push(FileChange::Write {
                path: at,
                bytes: app.bytes.clone(),
            });
            changed.push(app);
        }
    }
    if changes.is_empty() {
        return Ok((flags, None));
    }
    let message = commit_message(&changed, source);
    Ok((flags, Some(Planned { changes, message })))
}

fn plan_git_sync(
    head: &HeadTree<'_>,
    apps: &[Exported],
    source: &str,
    user: &str,
) -> Result<Plan, PlanError> {
    let mut meta: Map<String, Value> = match head.read(META_PATH)? {
        None => Map::new(),
        Some(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(PlanError::Meta("it is not a JSON object".into())),
            Err(e) => return Err(PlanError::Meta(e.to_string())),
        },
    };
    // gitAppName -> meta key, for apps the branch already holds.
    let keys: BTreeMap<String, String> = meta
        .iter()
        .filter_map(|(k, v)| {
            v.get("gitAppName")
                .and_then(Value::as_str)
                .map(|n| (n.to_string(), k.clone()))
        })
        .collect();
    let mut flags = Vec::with_capacity(apps.len());
    let mut changed: Vec<&Exported> = Vec::new();
    for app in apps {
        let old_version = keys
            .get(&app.name)
            .and_then(|k| meta.get(k))
            .and_then(|v| v.get("gitVersionName"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let old = match &old_version {
            Some(v) if file_name(v).is_ok() => head.read(&format!("{}/{v}.json", app.name))?,
            _ => None,
        };
        let differs = old_version.as_deref() != Some(app.version.as_str())
            || !same_as(old.as_deref(), &app.bundle);
        flags.push(differs);
        if differs {
            changed.push(app);
        }
    }
    if changed.is_empty() {
        return Ok((flags, None));
    }
    let message = commit_message(&changed, source);
    let summary = message.lines().next().unwrap_or_default().to_string();
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut changes = Vec::new();
    for app in &changed {
        let new_file = format!("{}.json", app.version);
        // ToolJet keeps one version per app: the app's other files go.
        for old in head.list_files(&app.name)? {
            if old != new_file && old.ends_with(".json") {
                changes.push(FileChange::Remove {
                    path: format!("{}/{old}", app.name),
                });
            }
        }
        changes.push(FileChange::Write {
            path: format!("{}/{new_file}", app.name),
            bytes: app.bytes.clone(),
        });
        let key = keys
            .get(&app.name)
            .cloned()
            .unwrap_or_else(|| app.id.clone());
        meta.insert(
            key,
            json!({
                "gitAppName": app.name,
                "gitVersionId": format!("{}-{}", app.id, app.version),
                "gitVersionName": app.version,
                "lastCommitMessage": summary,
                "lastCommitUser": user,
                "lastpushDate": now,
            }),
        );
    }
    let mut meta_bytes = serde_json::to_vec_pretty(&Value::Object(meta))
        .map_err(|e| PlanError::Meta(e.to_string()))?;
    meta_bytes.push(b'\n');
    changes.push(FileChange::Write {
        path: META_PATH.into(),
        bytes: meta_bytes,
    });
    Ok((flags, Some(Planned { changes, message })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stripped_and_names_and_kinds_kept() {
        let mut bundle = json!({"app": [{"definition": {"appV2": {
            "name": "A",
            "dataSources": [{"id": "d1", "name": "pg", "kind": "postgresql", "options": {"host": {"value": "db"}}}],
            "dataSourceOptions": [{"dataSourceId": "d1", "options": {"password": {"credential_id": "c1", "encrypted": true}, "host": {"value": "db.internal"}}}]
        }}}]});
        strip_secrets(&mut bundle);
        let text = bundle.to_string();
        assert!(
            !text.contains("credential_id") && !text.contains("db.internal"),
            "{text}"
        );
        let ds = &bundle["app"][0]["definition"]["appV2"]["dataSources"][0];
        assert_eq!(
            (ds["name"].as_str(), ds["kind"].as_str(), ds["id"].as_str()),
            (Some("pg"), Some("postgresql"), Some("d1"))
        );
        assert!(ds.get("options").is_none());
    }

    #[test]
    fn only_non_editable_imports_of_an_exported_app_conflict() {
        let import = |name: &str, editable: bool, app: Option<&str>| ImportOnInstance {
            import: format!("team-a/{name}"),
            editable,
            app: app.map(str::to_string),
        };
        let apps = vec!["Sales".to_string()];
        assert!(conflicting_import(&apps, &[import("sales", true, Some("Sales"))]).is_none());
        assert!(conflicting_import(&apps, &[import("other", false, Some("Other"))]).is_none());
        let e =
            conflicting_import(&apps, &[import("sales", false, Some("Sales"))]).expect("conflict");
        assert_eq!(e.reason(), Reason::ConflictsWithAppImport);
        assert!(e.to_string().contains("team-a/sales"), "{e}");
        // Every app: any non-editable import on the instance conflicts, even an unnamed one.
        assert!(conflicting_import(&[], &[import("other", false, Some("Other"))]).is_some());
        assert!(conflicting_import(&[], &[import("p", false, None)]).is_some());
        assert!(conflicting_import(&apps, &[import("p", false, None)]).is_none());
        assert!(conflicting_import(&[], &[import("e", true, None)]).is_none());
    }

    #[test]
    fn bad_requests_are_refused() {
        let req = ExportRequest {
            apps: vec!["A".into()],
            url: "file:///tmp/x".into(),
            branch: "tooljet/dev".into(),
            layout: ExportLayout::GitSync,
            path: String::new(),
            author_name: "ToolJet export".into(),
            author_email: "t@example.com".into(),
            source_name: "development".into(),
            credentials: Credentials::Anonymous,
        };
        assert!(validate(&req).is_ok());
        let with = |f: &dyn Fn(&mut ExportRequest)| {
            let mut r = req.clone();
            f(&mut r);
            validate(&r)
        };
        assert!(matches!(
            with(&|r| r.branch = "a..b".into()),
            Err(ExportError::Source(SourceError::InvalidBranch { .. }))
        ));
        assert!(matches!(
            with(&|r| r.path = "apps".into()),
            Err(ExportError::InvalidSpec(_))
        ));
        assert!(
            with(&|r| {
                r.layout = ExportLayout::Bundle;
                r.path = "exports".into()
            })
            .is_ok()
        );
        assert!(matches!(
            with(&|r| {
                r.layout = ExportLayout::Bundle;
                r.path = "../x".into()
            }),
            Err(ExportError::Source(SourceError::PathEscapesRepo { .. }))
        ));
        assert!(matches!(
            with(&|r| {
                r.layout = ExportLayout::Bundle;
                r.path = "/etc".into()
            }),
            Err(ExportError::Source(SourceError::PathEscapesRepo { .. }))
        ));
        assert!(matches!(
            with(&|r| r.apps = vec!["A".into(), "A".into()]),
            Err(ExportError::InvalidSpec(_))
        ));
        assert!(matches!(
            with(&|r| r.author_email = String::new()),
            Err(ExportError::InvalidSpec(_))
        ));
        assert!(file_name("Sales/Dashboard").is_err());
        assert!(file_name("..").is_err());
        assert!(file_name("Sales Dashboard").is_ok());
    }
}
