//! `AppExport`: apps from the ToolJet instance of one environment back into a git branch
//! (Git Sync for the community edition).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::app_import::{AppImportSpec, INTERVAL_PATTERN, InstanceRef};
use super::shared::{Environment, SecretRef};

/// Exports apps from the ToolJet instance of one environment into a git branch.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitops.tooljet.dev",
    version = "v1alpha1",
    kind = "AppExport",
    plural = "appexports",
    namespaced,
    status = "AppExportStatus",
    shortname = "tjexport",
    category = "tooljet",
    derive = "PartialEq",
    doc = "Exports ToolJet apps of one environment into a git branch (never a force push).",
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(
        name = "Branch",
        type_ = "string",
        json_path = ".spec.destination.branch"
    ),
    printcolumn(
        name = "Commit",
        type_ = "string",
        json_path = ".status.lastCommit.sha"
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
#[allow(clippy::duplicated_attributes)]
pub struct AppExportSpec {
    /// Picks the one ToolJetInstance of this environment in the AppExport's namespace (unless
    /// `instanceRef` names one).
    pub environment: Environment,

    /// An explicit ToolJetInstance; in another namespace it must list ours in `allowedNamespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<InstanceRef>,

    /// App names in ToolJet; empty: every app of the workspace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[x_kube(validation = Rule::new("self.all(a, self.filter(b, b == a).size() == 1)")
        .message("apps must not list an app twice"))]
    pub apps: Vec<AppName>,

    /// Where the commits go.
    pub destination: ExportDestination,

    /// Author and committer of the commits.
    pub author: ExportAuthor,

    /// How often to look for edits in ToolJet: a Go-style duration (`30s`, `5m`, `1h30m`), at
    /// least 10s.
    #[serde(default = "default_interval")]
    #[schemars(length(min = 2, max = 32), regex(pattern = INTERVAL_PATTERN))]
    #[x_kube(validation = Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10s')"
    ).message("interval must be a duration of at least 10s, such as 30s, 5m or 1h30m"))]
    pub interval: String,

    /// Stop exporting (nothing is read or written) while true.
    #[serde(default)]
    pub suspend: bool,
}

/// An app's name in ToolJet.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct AppName(#[schemars(length(min = 1, max = 255))] pub String);

fn default_interval() -> String {
    super::DEFAULT_INTERVAL.to_owned()
}

/// A git branch to commit to.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.layout) || self.layout != 'GitSync' || !has(self.path) || self.path == ''")
    .message("destination.path applies to layout Bundle only: layout GitSync writes .meta/meta.json and <app>/<version>.json at the repository root, where ToolJet and AppImports read them"))]
pub struct ExportDestination {
    /// Repository URL: `https://`, `ssh://`, `git://`, `file://`, or scp-like `git@host:org/repo.git`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(
        "self.matches('^(https|ssh|git|file)://[^\\\\s]+$') || self.matches('^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^\\\\s]+$')"
    ).message("destination.url must be an https://, ssh://, git:// or file:// URL, or scp-like user@host:path (for example git@github.com:acme/apps.git)"))]
    pub url: String,

    /// The branch commits go to; created from the repository's default branch when missing.
    /// Never force-pushed.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new(
        "!self.matches('(^[/.-]|[/.]$|\\\\.\\\\.|//|@\\\\{|[\\\\s~^:?*\\\\[\\\\\\\\]|\\\\.lock$|/\\\\.)')"
    ).message("destination.branch is not a branch name git accepts (no spaces, '..', '~', '^', ':', '?', '*', '[', '\\\\', '@{', no leading '-', '.' or '/', no trailing '.', '/' or '.lock')"))]
    pub branch: String,

    /// Git credentials with write access: `username` + `password`, or `token` (https);
    /// `identity`, optional `passphrase` and `known_hosts` (ssh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,

    /// GitSync: `.meta/meta.json` + `<app>/<version>.json` (ToolJet Git Sync). Bundle: one
    /// export bundle per app, `<path>/<app>.json`.
    #[serde(default)]
    pub layout: ExportLayout,

    /// Folder in the repository for Bundle (relative, without `..`); empty for GitSync.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(
        "!self.startsWith('/') && !self.matches('(^|/)\\\\.\\\\.(/|$)')"
    ).message("destination.path must be relative to the repository root and must not contain `..`"))]
    pub path: String,
}

/// How apps are laid out in the repository.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExportLayout {
    #[default]
    GitSync,
    Bundle,
}

/// Author (and committer) of the export commits.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
pub struct ExportAuthor {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(min = 3, max = 254))]
    #[x_kube(validation = Rule::new("self.contains('@')").message("author.email must be an email address"))]
    pub email: String,
}

/// Observed state.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppExportStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled (kstatus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The last commit this AppExport pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<ExportCommit>,
    /// The exported apps, as of the last successful run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub apps: Vec<ExportedAppStatus>,
    /// When the last successful run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_export_time: Option<Time>,
    /// The last handled value of the `gitops.tooljet.dev/reconcile-requested-at` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// A commit pushed by the export.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct ExportCommit {
    pub sha: String,
    /// First line of the message.
    pub message: String,
    pub date: Time,
}

/// One exported app.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExportedAppStatus {
    pub name: String,
    /// The app's id in ToolJet.
    pub id: String,
    /// ToolJet's `updatedAt` of the app at the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// When the app was last written to git (a run that found it unchanged keeps the old time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<Time>,
}

impl AppExportSpec {
    /// `spec.interval` as a duration; refuses what the CRD would refuse.
    pub fn interval_duration(&self) -> Result<std::time::Duration, ApiError> {
        AppImportSpec::parse_interval(&self.interval)
    }

    /// What the CRD's rules check, and what only git knows (the branch name), for objects read
    /// from files that never met an API server.
    pub fn check(&self) -> Result<(), ApiError> {
        let invalid = |problem: String| ApiError::Invalid {
            kind: "AppExport".into(),
            name: String::new(),
            problems: problem,
        };
        self.interval_duration()?;
        let branch = &self.destination.branch;
        if branch.is_empty()
            || branch.starts_with('-')
            || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
        {
            return Err(invalid(format!(
                "destination.branch {branch:?} is not a branch name git accepts"
            )));
        }
        let path = &self.destination.path;
        if self.destination.layout == ExportLayout::GitSync && !path.trim_matches('/').is_empty() {
            return Err(invalid(
                "destination.path applies to layout Bundle only; GitSync writes at the repository root".into(),
            ));
        }
        if path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(invalid(format!(
                "destination.path {path:?} must be relative to the repository root and must not contain `..`"
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for app in &self.apps {
            if app.0.trim().is_empty() {
                return Err(invalid("an app name in apps is empty".into()));
            }
            if !seen.insert(app.0.trim()) {
                return Err(invalid(format!("apps lists {:?} twice", app.0)));
            }
        }
        Ok(())
    }
}
