//! `AppImport`: one ToolJet app, from one git repository, into one environment.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::shared::{Environment, SecretRef};

/// How many applied commits `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;

/// Imports one ToolJet app from a git repository into the ToolJet instance of an environment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitops.tooljet.dev",
    version = "v1alpha1",
    kind = "AppImport",
    plural = "appimports",
    namespaced,
    status = "AppImportStatus",
    shortname = "tjapp",
    category = "tooljet",
    derive = "PartialEq",
    doc = "Imports one ToolJet app from git into the ToolJet instance of one environment.",
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(name = "App", type_ = "string", json_path = ".status.app.name"),
    printcolumn(
        name = "Commit",
        type_ = "string",
        json_path = ".status.lastAppliedCommit.shortSha"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Editable", type_ = "boolean", json_path = ".spec.editable"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::duplicated_attributes)]
pub struct AppImportSpec {
    /// Picks the one ToolJetInstance of this environment in the AppImport's namespace
    /// (unless `instanceRef` names one).
    pub environment: Environment,

    /// An explicit ToolJetInstance; in another namespace it must list ours in `allowedNamespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<InstanceRef>,

    /// Where the app comes from.
    pub source: GitSource,

    /// Name of the app in ToolJet ("App name"). Default: the git app name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub app_name: Option<String>,

    /// "Make application editable": when true, edits made in ToolJet are kept, never overwritten silently.
    #[serde(default)]
    pub editable: bool,

    /// Automatic applies new commits; Manual reports them and waits for the approve annotation.
    #[serde(default)]
    pub update_policy: UpdatePolicy,

    /// How often to check the repository for new commits: a Go-style duration (`30s`, `5m`, `1h30m`), at least 10s.
    #[serde(default = "default_interval")]
    #[schemars(length(min = 2, max = 32), regex(pattern = INTERVAL_PATTERN))]
    #[x_kube(validation = Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10s')"
    ).message("interval must be a duration of at least 10s, such as 30s, 5m or 1h30m"))]
    pub interval: String,

    /// Stop reconciling (nothing is read or written) while true.
    #[serde(default)]
    pub suspend: bool,

    /// What happens to the ToolJet app when the AppImport is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Take over an existing app of the same name that this AppImport did not import.
    #[serde(default)]
    pub adopt_existing: bool,

    /// Make the imported version the released one.
    #[serde(default = "default_true")]
    pub release: bool,
}

/// Go `time.ParseDuration` syntax without a sign (what the CRD's pattern allows).
pub const INTERVAL_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";
/// Default of `spec.interval`.
pub const DEFAULT_INTERVAL: &str = "5m";
/// Smallest `spec.interval` the CRD accepts.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_owned()
}

fn default_true() -> bool {
    true
}

impl AppImportSpec {
    /// The name the app must have in ToolJet: `appName`, or else the app's name in git.
    pub fn wanted_app_name<'a>(&'a self, git_app_name: &'a str) -> &'a str {
        self.app_name.as_deref().unwrap_or(git_app_name)
    }

    /// `spec.interval` as a duration; refuses anything the CRD would refuse (bad syntax, under 10s).
    pub fn interval_duration(&self) -> Result<Duration, ApiError> {
        Self::parse_interval(&self.interval)
    }

    /// An `interval` field as a duration (the CRD's rule: Go syntax, at least 10s).
    pub(crate) fn parse_interval(interval: &str) -> Result<Duration, ApiError> {
        let d = parse_go_duration(interval).map_err(|reason| ApiError::InvalidInterval {
            value: interval.to_owned(),
            reason,
        })?;
        if d < MIN_INTERVAL {
            return Err(ApiError::InvalidInterval {
                value: interval.to_owned(),
                reason: "it is shorter than the minimum of 10s".into(),
            });
        }
        Ok(d)
    }
}

/// Parses an unsigned Go duration (`300ms`, `1.5h`, `1h30m`), as the API server's CEL `duration()` does.
fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                format!("the number `{rest}` has no unit (use ns, us, ms, s, m or h)")
            })?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "`{unit}` is not a unit (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let value: f64 = num
            .parse()
            .ok()
            .filter(|_| !num.starts_with('.') && !num.ends_with('.'))
            .ok_or_else(|| format!("`{num}` is not a number"))?;
        total = Duration::try_from_secs_f64(value * nanos_per_unit / 1e9)
            .ok()
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| "it is too large".to_string())?;
        rest = tail;
    }
    Ok(total)
}

/// An explicit ToolJetInstance reference.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
pub struct InstanceRef {
    /// Name of the ToolJetInstance.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace; default: the AppImport's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// A git repository, a ref in it, and the app to take from it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.app) != has(self.path)")
    .message("source must set exactly one of app (an app name from .meta/meta.json) or path (an export bundle)"))]
pub struct GitSource {
    /// Repository URL: `https://`, `ssh://`, `git://`, `file://`, or scp-like `git@host:org/repo.git`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(
        "self.matches('^(https|ssh|git|file)://[^\\\\s]+$') || self.matches('^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^\\\\s]+$')"
    ).message("source.url must be an https://, ssh://, git:// or file:// URL, or scp-like user@host:path (for example git@github.com:acme/apps.git)"))]
    pub url: String,

    /// The branch, tag or commit to follow: exactly one.
    #[serde(rename = "ref")]
    pub git_ref: GitRef,

    /// Git credentials: `username` + `password`, or `token` (https); `identity`, optional
    /// `passphrase` and `known_hosts` (ssh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,

    /// The app's name in the repository's `.meta/meta.json` (ToolJet's "Create app from").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub app: Option<String>,

    /// ...or the path of an export bundle (JSON) in the repository, relative, without `..`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new(
        "!self.startsWith('/') && !self.matches('(^|/)\\\\.\\\\.(/|$)')"
    ).message("source.path must be relative to the repository root and must not contain `..`"))]
    pub path: Option<String>,
}

/// Which of the app's two possible locations in the repository is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppLocation<'a> {
    /// An app name from `.meta/meta.json`.
    GitApp(&'a str),
    /// An export bundle at this path.
    BundlePath(&'a str),
}

impl GitSource {
    /// Where the app is, or `None` when neither or both are set (refused by the CRD, but files
    /// read by `sync -f` did not pass the API server).
    pub fn app_location(&self) -> Option<AppLocation<'_>> {
        match (&self.app, &self.path) {
            (Some(a), None) => Some(AppLocation::GitApp(a)),
            (None, Some(p)) => Some(AppLocation::BundlePath(p)),
            _ => None,
        }
    }
}

/// Exactly one of branch, tag, commit or fromAppImport (with `readyFor` only beside fromAppImport).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Default)]
#[x_kube(validation = Rule::new(
    "(has(self.branch) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.commit) ? 1 : 0) + (has(self.fromAppImport) ? 1 : 0) == 1"
).message("ref must set exactly one of branch, tag, commit or fromAppImport"))]
#[x_kube(validation = Rule::new("!has(self.readyFor) || has(self.fromAppImport)")
    .message("ref.readyFor applies only with ref.fromAppImport: it is how long the upstream AppImport must be Ready on a commit before it is promoted"))]
pub struct GitRef {
    /// Follow the tip of this branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub branch: Option<String>,
    /// Import this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
    /// Import exactly this commit (full 40-character lowercase sha); pin an older one to restore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 40, max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]{40}$')")
        .message("ref.commit must be a full commit sha: 40 lowercase hexadecimal characters"))]
    pub commit: Option<String>,
    /// Promotion: follow the commit that this other AppImport has applied and kept Ready for
    /// `readyFor`. In another namespace it must allow ours (annotation
    /// `gitops.tooljet.dev/promote-to-namespaces`).
    #[serde(
        rename = "fromAppImport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub from_app_import: Option<AppImportRef>,
    /// With fromAppImport: how long the upstream must have been Ready on its applied commit
    /// before this AppImport follows it, a Go-style duration (`0s`, `30m`, `1h30m`). Default 0.
    #[serde(rename = "readyFor", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = INTERVAL_PATTERN))]
    #[x_kube(validation = Rule::new(
        "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$')"
    ).message("ref.readyFor must be a duration such as 0s, 30m or 1h30m"))]
    pub ready_for: Option<String>,
}

/// Another AppImport, the upstream of a promotion.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
pub struct AppImportRef {
    /// Name of the upstream AppImport.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace; default: this AppImport's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

impl AppImportRef {
    /// The upstream's namespace, `own_namespace` when unset.
    pub fn namespace_or<'a>(&'a self, own_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(own_namespace)
    }
}

/// `ref.fromAppImport` with its soak time, as [`GitRef::promotion`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromotionRef<'a> {
    pub upstream: &'a AppImportRef,
    /// `readyFor`; zero when unset.
    pub ready_for: Duration,
}

/// The one ref kind set in a [`GitRef`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Commit(&'a str),
}

impl GitRef {
    /// The git ref that is set, or `None` when zero or several are set, or when the ref is
    /// `fromAppImport` (a promotion is resolved to a commit before git is read: see
    /// [`GitRef::promotion`]).
    pub fn kind(&self) -> Option<RefKind<'_>> {
        if self.from_app_import.is_some() {
            return None;
        }
        match (&self.branch, &self.tag, &self.commit) {
            (Some(b), None, None) => Some(RefKind::Branch(b)),
            (None, Some(t), None) => Some(RefKind::Tag(t)),
            (None, None, Some(c)) => Some(RefKind::Commit(c)),
            _ => None,
        }
    }

    /// `Some` when the ref is `fromAppImport`, `None` for a branch, tag or commit; refuses what
    /// the CRD would refuse (files read by `sync -f` did not pass an API server): fromAppImport
    /// beside another ref, `readyFor` without fromAppImport, a `readyFor` that is no duration.
    pub fn promotion(&self) -> Result<Option<PromotionRef<'_>>, ApiError> {
        let others = [&self.branch, &self.tag, &self.commit]
            .iter()
            .filter(|r| r.is_some())
            .count();
        let Some(upstream) = &self.from_app_import else {
            return match &self.ready_for {
                Some(_) => Err(ApiError::InvalidRef(
                    "readyFor is set without fromAppImport; remove readyFor, or promote from an AppImport with fromAppImport".into(),
                )),
                None => Ok(None),
            };
        };
        if others > 0 {
            return Err(ApiError::InvalidRef(
                "fromAppImport is set beside a branch, tag or commit; keep exactly one of them"
                    .into(),
            ));
        }
        let ready_for = match &self.ready_for {
            None => Duration::ZERO,
            Some(value) => parse_go_duration(value).map_err(|reason| {
                ApiError::InvalidRef(format!(
                    "readyFor `{value}` is not usable: {reason}; write a duration such as 0s, 30m or 1h30m"
                ))
            })?,
        };
        Ok(Some(PromotionRef {
            upstream,
            ready_for,
        }))
    }
}

/// When new commits are applied.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpdatePolicy {
    /// Apply every new commit.
    #[default]
    Automatic,
    /// Report new commits (`UpdateAvailable`) and apply the one named by the approve annotation.
    Manual,
}

/// What happens to the ToolJet app when its AppImport is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Leave the app in ToolJet.
    #[default]
    Retain,
    /// Delete the app from ToolJet.
    Delete,
}

/// Observed state of an AppImport; also the sync engine's memory between runs.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppImportStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled (kstatus), UpdateAvailable, Drifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The app in ToolJet that this AppImport owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppStatus>,
    /// A temporary app created during an update swap, kept so an interrupted swap can be finished
    /// or cleaned up by the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_app: Option<PendingApp>,
    /// The commit whose app definition is in ToolJet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<CommitInfo>,
    /// The newest commit of the ref (what "Check for updates" shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_commit: Option<CommitInfo>,
    /// The `metadata.generation` whose spec the app in ToolJet matches: set only by a successful
    /// sync, so a spec change whose run failed is never mistaken for one already applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_generation: Option<i64>,
    /// Hash of the applied app definition (never the definition itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_hash: Option<String>,
    /// When the last successful sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// The last handled value of the `gitops.tooljet.dev/reconcile-requested-at` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The last applied commits, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<HistoryEntry>,
    /// The workspace data sources the app's bundle uses (static built-ins left out), as the last
    /// import found them: created by the operator before the import (no secrets: set them in
    /// ToolJet), or already there and linked by name and kind. The operator never deletes a
    /// data source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub data_sources: Vec<DataSourceStatus>,
    /// With `ref.fromAppImport`: the upstream commit being promoted and when it is (or was)
    /// eligible. Absent while the upstream holds the promotion (not Ready, nothing applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionStatus>,
    /// What the update waiting for approval and the last applied one change inside the app, in
    /// ToolJet's terms (`tooljet-operator diff` prints the whole diff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangesStatus>,
}

/// `status.changes`: what an update changes inside the app, in a few hundred characters.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChangesStatus {
    /// The newest commit, waiting for approval (`updatePolicy: Manual`): what the reviewer
    /// approves, compared with the applied commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<ChangeSummary>,
    /// The last update applied from git, compared with the commit it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<ChangeSummary>,
}

impl ChangesStatus {
    /// `None` when nothing is recorded (so status carries no empty object).
    pub fn or_none(self) -> Option<ChangesStatus> {
        (self.pending.is_some() || self.last_applied.is_some()).then_some(self)
    }
}

/// What one update changes inside the app, from one commit to another.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    /// The commit compared from (the applied one before the update).
    #[schemars(length(max = 64))]
    pub from: String,
    /// The commit of the update.
    #[schemars(length(max = 64))]
    pub commit: String,
    /// One line, e.g. `2 pages, 5 components, 1 query changed`.
    #[schemars(length(max = 300))]
    pub summary: String,
    /// Pages added, removed, renamed or changed.
    pub pages: i64,
    /// Components added, removed or changed, on all pages.
    pub components: i64,
    /// Queries added, removed or changed.
    pub queries: i64,
}

impl AppImportStatus {
    /// The condition of this type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// The commit a promotion follows or waits for (`status.promotion`).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// The upstream AppImport, as `namespace/name`.
    pub from: String,
    /// The commit the upstream has applied, which this AppImport follows once eligible.
    pub sha: String,
    /// Since when the upstream has been Ready on that commit.
    pub ready_since: Time,
    /// When the commit may be followed: `readySince` + `readyFor`.
    pub eligible_at: Time,
}

/// The ToolJet app an AppImport owns.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// ToolJet's `updated_at` for the app, read right after our last write (a change means an edit in ToolJet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The app version we imported (and released when `release: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// A hash (not the content) of what an edit in ToolJet changes in the app as
    /// `GET /api/apps/:id` shows it, read right after our last write: name, slug, settings, the
    /// editing version and its `updated_at`, each query with its own `updated_at` (on 2.x a
    /// query edit moves no other timestamp). Releasing is left out: a release by hand is not an
    /// edit. A change means an edit in ToolJet; when absent (older status), `updatedAt` is
    /// compared instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_fingerprint: Option<String>,
}

/// A workspace data source an app's bundle uses.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataSourceStatus {
    /// The data source's name in the bundle (and in ToolJet).
    pub name: String,
    /// The plugin kind, e.g. `postgresql` or `restapi`.
    pub kind: String,
    /// ToolJet's id of the workspace data source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub action: DataSourceAction,
    /// Whether the instance configures it (`spec.dataSources` of the ToolJetInstance names
    /// it); absent until checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<bool>,
}

/// What the operator did about a data source the bundle uses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSourceAction {
    /// Created by the operator (global, without secrets) so that the import links to it.
    Created,
    /// Already in the workspace (same name and kind): the import links to it.
    Linked,
}

/// A temporary app created by an update swap that has not finished.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingApp {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The commit it was imported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// Hash of the definition it was imported with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// A git commit as users see it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// Full sha.
    pub sha: String,
    /// First 7 characters of the sha (shown by `kubectl get`).
    pub short_sha: String,
    /// First line of the commit message.
    #[serde(default)]
    pub message: String,
    /// Author as `Name <email>`.
    #[serde(default)]
    pub author: String,
    /// Commit time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Time>,
}

impl CommitInfo {
    /// The abbreviation used in `shortSha`.
    pub fn short_sha_of(sha: &str) -> String {
        sha.chars().take(7).collect()
    }
}

/// One applied commit.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub sha: String,
    pub applied_at: Time,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let ok = [
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("1m500ms", 60_500),
            ("2h0m0s", 7_200_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        // Each part fits in a Duration, the sum does not.
        let huge = "4000000000000000h4000000000000000h";
        assert!(parse_go_duration("4000000000000000h").is_ok());
        for s in [
            "", "5", "5 m", "1d", "-5m", ".5s", "5.s", "1.2.3s", "m", huge,
        ] {
            assert!(parse_go_duration(s).is_err(), "{s} should not parse");
        }
    }

    fn spec(interval: &str) -> AppImportSpec {
        let yaml = format!(
            "environment: staging\ninterval: '{interval}'\nsource: {{url: 'https://x/y.git', ref: {{branch: main}}, app: A}}\n"
        );
        serde_saphyr::from_str(&yaml).expect("spec parses")
    }

    #[test]
    fn interval_below_minimum_is_refused_with_the_fix() {
        assert_eq!(
            spec("30s").interval_duration().expect("valid"),
            Duration::from_secs(30)
        );
        let err = spec("5s")
            .interval_duration()
            .expect_err("too short")
            .to_string();
        assert!(
            err.contains("`5s`") && err.contains("at least 10s"),
            "{err}"
        );
        let err = spec("soon")
            .interval_duration()
            .expect_err("bad")
            .to_string();
        assert!(err.contains("`soon`"), "{err}");
    }

    #[test]
    fn ref_and_app_location_name_the_one_set() {
        let s = spec("5m");
        assert_eq!(s.source.git_ref.kind(), Some(RefKind::Branch("main")));
        assert_eq!(s.source.app_location(), Some(AppLocation::GitApp("A")));
        let both = GitRef {
            branch: Some("main".into()),
            tag: Some("v1".into()),
            ..Default::default()
        };
        assert_eq!(both.kind(), None);
        assert_eq!(CommitInfo::short_sha_of("0123456789abcdef"), "0123456");
    }
}
