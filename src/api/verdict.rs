//! The verdict of a reconcile or a `sync -f` run, and the one table of reasons it can carry.
//!
//! Modelled on kstatus as Flux uses it: every reason has one consequence, by what the user has to
//! do about it: nothing ([`Consequence::Ready`]), wait while the operator retries with backoff
//! ([`Consequence::Retrying`]), or change something ([`Consequence::Stalled`]). The engine and
//! the checks before it return a [`Verdict`]; the controller turns it into conditions and Events,
//! the command line into text and an exit code. A reason's CamelCase name is the same in
//! conditions, Events, command line output and metrics.
//!
//! Adding a reason: one line in the [`reasons!`] table below (name, consequence, meaning for the
//! user), then `cargo run -- reasons > docs/reasons.md`; a test walks every reason through the
//! controller and the command line, and another fails while `docs/reasons.md` is stale.

use std::fmt;

use serde::{Serialize, Serializer};

use super::CommitInfo;

/// What a verdict means for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Consequence {
    /// The object is in its desired state (`Ready=True`).
    Ready,
    /// Not ready; retrying later, with nothing changed by the user, may help (`Reconciling=True`,
    /// retried with backoff).
    Retrying,
    /// Not ready until the user changes something (`Stalled=True`, rechecked at the interval).
    Stalled,
    /// Waiting for something that comes by itself (a promotion's soak time, the upstream
    /// AppImport): the current app stays as it is, `Ready` keeps its status and
    /// `Reconciling=True` says what is awaited. Rechecked when it is due or the upstream changes,
    /// never with backoff.
    Waiting,
}

impl Consequence {
    pub fn as_str(self) -> &'static str {
        match self {
            Consequence::Ready => "Ready",
            Consequence::Retrying => "Retrying",
            Consequence::Stalled => "Stalled",
            Consequence::Waiting => "Waiting",
        }
    }
}

/// Defines [`Reason`]: one line per reason, `Name => Consequence, "what it means for the user"`.
macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => $consequence:ident, $meaning:literal; )*) => {
        /// Why an object is (not) ready: the `Ready` condition's reason, the Warning Event's
        /// reason on a failure, and what `sync -f` prints.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $name, )*
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[ $( Reason::$name, )* ];

            /// The CamelCase name users see.
            pub const fn as_str(self) -> &'static str {
                match self { $( Reason::$name => stringify!($name), )* }
            }

            /// What the user has to do about it.
            pub fn consequence(self) -> Consequence {
                match self { $( Reason::$name => Consequence::$consequence, )* }
            }

            /// What it means for the user, in one sentence (the reference table in the docs).
            pub fn meaning(self) -> &'static str {
                match self { $( Reason::$name => $meaning, )* }
            }
        }
    };
}

reasons! {
    // An AppImport that reached its goal.
    UpToDate => Ready, "The app in ToolJet matches git and the spec; nothing was written.";
    Imported => Ready, "The app was imported for the first time.";
    Recreated => Ready, "The app had been deleted in ToolJet and was imported again.";
    Updated => Ready, "A new commit was imported and swapped in for the old app (the slug stays).";
    ForcePulled => Ready, "The force-pull annotation named the commit: edits made in ToolJet were overwritten.";
    DriftCorrected => Ready, "The app had been edited in ToolJet (editable: false); the git version was restored.";
    Adopted => Ready, "adoptExisting: an app of that name that the operator had not imported was taken over.";
    Renamed => Ready, "Only spec.appName changed: the app was renamed in ToolJet, nothing imported.";
    InSyncWithToolJet => Ready, "Editable app: the new commit holds the app as ToolJet has it now (its edits, exported to git); recorded as applied, nothing written.";
    // A ToolJetInstance the operator can log in to.
    Connected => Ready, "ToolJetInstance: the operator logged in to ToolJet.";
    Configured => Ready, "ToolJetInstance: the constants and data-source options of the spec are written (ConfigApplied=True); a failed connection test shows in DataSourcesHealthy.";

    // An AppExport that reached its goal (UpToDate when the branch already held every app).
    Exported => Ready, "AppExport: the apps that changed in ToolJet were committed and pushed to the destination branch.";

    // Failures that retrying may fix.
    GitUnavailable => Retrying, "The git server did not answer in time or refused the connection; retried with backoff.";
    GitError => Retrying, "The local git mirror failed (disk, corruption); it is rebuilt and retried.";
    ToolJetUnavailable => Retrying, "ToolJet did not answer, timed out or returned a server error; retried with backoff.";
    StateNotSaved => Retrying, "The sync state (status, or the state file) could not be saved; the next run recovers from what it finds in ToolJet.";
    QueriesMissing => Retrying, "The imported app lacks some of its bundle's queries (a data source was missing or deleted); imported again.";
    ImportIncomplete => Retrying, "The imported app did not come out as its bundle says; nothing was swapped, and it is imported again.";
    CacheNotSynced => Retrying, "The operator's watch of ToolJetInstances or Secrets has not listed them yet (check its RBAC); retried.";
    WaitingForInstanceConfig => Retrying, "AppImport: the first import waits until its ToolJetInstance has applied its constants and data sources (ConfigApplied=True); re-enqueued when the instance changes.";
    GitPushConflict => Retrying, "AppExport: the destination branch kept moving while the export was re-applied on its new head; never forced, retried with backoff.";
    Unreachable => Retrying, "ToolJetInstance: ToolJet did not answer; check spec.url and that ToolJet runs. Rechecked every minute.";

    // Failures that need a change by the user.
    InvalidSpec => Stalled, "The AppImport or ToolJetInstance is invalid (ref, source, auth, TLS, interval, a missing Secret key); fix the manifest.";
    EditableNotAllowed => Stalled, "editable: true, but the ToolJetInstance has allowEditableApps: false.";
    NameConflict => Stalled, "An app of that name exists that this AppImport did not import; rename it, choose another appName, or set adoptExisting: true.";
    LocalChanges => Stalled, "Editable app edited in ToolJet while a newer commit changes it in git; nothing written until the edits are pushed or force-pull names the commit.";
    GitAuthenticationFailed => Stalled, "The git server refused the credentials of source.secretRef (or needs some).";
    GitHostKeyRejected => Stalled, "The ssh host key of the git server is unknown or does not match known_hosts.";
    RefNotFound => Stalled, "The branch, tag or commit of source.ref does not exist in the repository.";
    AppNotFound => Stalled, "The repository has no app of that name, or no bundle at that path, at the commit.";
    InvalidBundle => Stalled, "The app's files in git are not a usable ToolJet export (meta.json, JSON, size, layout).";
    BundleNewerThanServer => Stalled, "The bundle was exported by a later ToolJet than the server runs; upgrade ToolJet or export from this version.";
    ToolJetAuthenticationFailed => Stalled, "ToolJet refused the credentials of the ToolJetInstance's auth Secret.";
    ToolJetNotFound => Stalled, "ToolJet answered 404 where the operator expected an object (workspace, app).";
    ToolJetUnsupported => Stalled, "The ToolJet server or the credentials do not offer an operation the operator needs.";
    ToolJetVersionUnsupported => Stalled, "The ToolJet server's version is not supported (2.27 or later is needed).";
    ReleaseFailed => Stalled, "ToolJet accepted the release but the app's released version did not change.";
    PlanLimit => Stalled, "ToolJet refused the import because of the plan's limit on apps.";
    ToolJetError => Stalled, "ToolJet refused a request or answered something unexpected; the message has its answer.";
    ToolJetConfigInvalid => Stalled, "The ToolJetInstance's URL, TLS settings or CA cannot be used to build a client.";
    InstanceNotFound => Stalled, "No ToolJetInstance for the AppImport's environment in its namespace, or instanceRef names none.";
    SeveralInstances => Stalled, "Several ToolJetInstances serve the environment in the namespace; set instanceRef.";
    NamespaceNotAllowed => Stalled, "instanceRef names an instance in another namespace that does not list this one in allowedNamespaces.";
    EnvironmentMismatch => Stalled, "instanceRef names an instance of another environment than spec.environment.";
    SecretNotFound => Stalled, "A Secret the object names (auth, CA, git credentials) does not exist in its namespace.";
    LoginFailed => Stalled, "ToolJetInstance: ToolJet refused the credentials; fix the auth Secret.";
    UnsupportedVersion => Stalled, "ToolJetInstance: the ToolJet server's version is not supported.";
    // A ToolJetInstance's constants and data sources.
    ConstantConflict => Stalled, "A workspace constant of that name (or type) exists that this ToolJetInstance did not create; rename or remove it, or set adoptExisting: true.";
    SecretConstantUnsupported => Stalled, "type: Secret constants need ToolJet 3.x; on 2.x put the value in an encrypted data-source option instead.";
    DataSourceAmbiguous => Stalled, "Several workspace data sources have the name of a spec.dataSources entry; rename one in ToolJet.";
    DataSourceKindMismatch => Stalled, "The workspace data source of that name is of another kind than spec.dataSources[].kind.";
    // Exports to git (AppExport, `export -f`).
    GitPushDenied => Stalled, "AppExport: the git server refused the push for these credentials (no write access); give them write access to the repository.";
    GitPushRejected => Stalled, "AppExport: the git server rejected the push (branch protection or a hook); nothing was forced; allow the push or choose another branch.";
    ConflictsWithAppImport => Stalled, "AppExport: a non-editable AppImport imports that app into this instance and restores git's version; export only apps that are editable there.";
    InvalidAppName => Stalled, "AppExport: an app's or version's name in ToolJet cannot be a file name in the repository; rename it in ToolJet.";
    InvalidRepository => Stalled, "AppExport: a file the export must update on the branch (meta.json) is unreadable; fix or remove it.";
    // Promotion (source.ref.fromAppImport).
    PromotionNotAllowed => Stalled, "fromAppImport names an AppImport in another namespace whose gitops.tooljet.dev/promote-to-namespaces annotation does not list this namespace.";
    PromotionCycle => Stalled, "The fromAppImport chain loops back to an AppImport already in it; point one of them at a branch, tag or commit.";
    CommitNotInRepository => Stalled, "The commit the upstream AppImport applied is not in this AppImport's source.url; both must use the same repository.";
    UpstreamNotFound => Stalled, "fromAppImport names an AppImport that does not exist; the current app stays.";
    PromotionPending => Waiting, "The upstream is Ready on a new commit, but not yet for readyFor; the current app stays until status.promotion.eligibleAt.";
    UpstreamNotReady => Waiting, "The upstream AppImport is not Ready; its commit is not promoted and the current app stays.";
    UpstreamNeverApplied => Waiting, "The upstream AppImport has not applied any commit yet; the current app stays.";
    UpstreamNotReconciled => Waiting, "The upstream AppImport has a spec change it has not reconciled yet; the current app stays.";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Lets `report.reason == "NameConflict"` read as it always did.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// Reasons of the conditions other than `Ready`, and of Events that are not verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetailReason {
    /// `Reconciling=True` while a [`Consequence::Retrying`] failure is retried with backoff.
    Retrying,
    /// `Drifted=True` while an edit made in ToolJet lasts.
    DriftDetected,
    /// `Drifted=False` (and a Normal Event) on the run that restored the git version.
    DriftCorrected,
    /// `UpdateAvailable=True` with `updatePolicy: Manual`.
    AwaitingApproval,
    /// `Ready` (status kept) while `spec.suspend` is true.
    Suspended,
    /// Warning Event: the finalizer was released without applying deletionPolicy.
    CleanupSkipped,
    /// Warning Event: applying deletionPolicy failed; retried.
    CleanupFailed,
    /// ToolJetInstance `DataSourcesHealthy=True`: every tested data source connected.
    ConnectionsOk,
    /// ToolJetInstance `DataSourcesHealthy=False`: a connection test failed (a warning).
    DataSourceTestFailed,
    /// AppImport `DataSourcesConfigured=True`: the instance configures every data source used.
    AllConfigured,
    /// AppImport `DataSourcesConfigured=False`: some data source used is not configured.
    NotConfigured,
    /// Normal Event: a commit promoted from the upstream AppImport was applied.
    Promoted,
}

impl DetailReason {
    pub const ALL: &'static [DetailReason] = &[
        DetailReason::Retrying,
        DetailReason::DriftDetected,
        DetailReason::DriftCorrected,
        DetailReason::AwaitingApproval,
        DetailReason::Suspended,
        DetailReason::CleanupSkipped,
        DetailReason::CleanupFailed,
        DetailReason::ConnectionsOk,
        DetailReason::DataSourceTestFailed,
        DetailReason::AllConfigured,
        DetailReason::NotConfigured,
        DetailReason::Promoted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DetailReason::Retrying => "Retrying",
            DetailReason::DriftDetected => "DriftDetected",
            DetailReason::DriftCorrected => "DriftCorrected",
            DetailReason::AwaitingApproval => "AwaitingApproval",
            DetailReason::Suspended => "Suspended",
            DetailReason::CleanupSkipped => "CleanupSkipped",
            DetailReason::CleanupFailed => "CleanupFailed",
            DetailReason::ConnectionsOk => "ConnectionsOk",
            DetailReason::DataSourceTestFailed => "DataSourceTestFailed",
            DetailReason::AllConfigured => "AllConfigured",
            DetailReason::NotConfigured => "NotConfigured",
            DetailReason::Promoted => "Promoted",
        }
    }

    /// Where users see it, and what it means.
    pub fn meaning(self) -> &'static str {
        match self {
            DetailReason::Retrying => {
                "`Reconciling=True`: a failure that retrying may fix is retried with backoff (5s doubling to 5m)."
            }
            DetailReason::DriftDetected => {
                "`Drifted=True`: the app was edited in ToolJet (editable: false) and is being restored."
            }
            DetailReason::DriftCorrected => {
                "`Drifted=False` and a Normal Event: the run restored the git version."
            }
            DetailReason::AwaitingApproval => {
                "`UpdateAvailable=True`: a newer commit waits for the approve annotation (updatePolicy: Manual)."
            }
            DetailReason::Suspended => {
                "`Ready` keeps its status: spec.suspend is true, nothing is read or written."
            }
            DetailReason::CleanupSkipped => {
                "Warning Event: the finalizer was released without applying deletionPolicy (instance or Secret gone, or the skip annotation); apps stay in ToolJet."
            }
            DetailReason::CleanupFailed => {
                "Warning Event: applying deletionPolicy failed; the AppImport stays until it succeeds."
            }
            DetailReason::ConnectionsOk => {
                "ToolJetInstance `DataSourcesHealthy=True`: ToolJet's connection test passed for every configured data source it tested."
            }
            DetailReason::DataSourceTestFailed => {
                "ToolJetInstance `DataSourcesHealthy=False` and a Warning Event: ToolJet's connection test of a configured data source failed (its message in status.dataSources); the options are written and the instance stays Ready: a warning, not a stall."
            }
            DetailReason::AllConfigured => {
                "AppImport `DataSourcesConfigured=True`: the instance's spec.dataSources configures every data source the app's queries use."
            }
            DetailReason::NotConfigured => {
                "AppImport `DataSourcesConfigured=False`: some data sources the app uses are not in the instance's spec.dataSources (named in the message); informative, the import is not blocked."
            }
            DetailReason::Promoted => {
                "Normal Event: a commit promoted from the upstream AppImport was applied; it names the commit, the upstream and how long the upstream was Ready on it."
            }
        }
    }
}

impl fmt::Display for DetailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An edit made in ToolJet (the Drifted condition), and whether it was undone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub message: String,
    /// The git version was restored; false while the drift lasts.
    pub corrected: bool,
}

/// The verdict of one run: a reason (whose consequence says ready / retrying / stalled), a
/// message saying what happened and what to do, and the facts beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub reason: Reason,
    /// What happened, and what to do when something is wrong.
    pub message: String,
    /// An edit made in ToolJet was found (the Drifted condition), and whether it was undone.
    pub drift: Option<Drift>,
    /// Manual policy: the newest commit waiting for approval (boxed: verdicts travel in `Err`).
    pub update_available: Option<Box<CommitInfo>>,
    /// What the commit waiting for approval changes inside the app, in one line.
    pub pending_changes: Option<String>,
    /// The followed branch was force-pushed since the last run.
    pub force_pushed: bool,
}

impl Verdict {
    /// A verdict with no facts beside the reason and message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Verdict {
            reason,
            message: message.into(),
            drift: None,
            update_available: None,
            pending_changes: None,
            force_pushed: false,
        }
    }

    pub fn consequence(&self) -> Consequence {
        self.reason.consequence()
    }

    /// The object is in its desired state (or, with Manual, at the approved version).
    pub fn ready(&self) -> bool {
        self.consequence() == Consequence::Ready
    }

    /// Retrying soon, with nothing changed, may help (back off and retry).
    pub fn retryable(&self) -> bool {
        self.consequence() == Consequence::Retrying
    }

    /// No progress is possible until the user changes something (kstatus Stalled).
    pub fn stalled(&self) -> bool {
        self.consequence() == Consequence::Stalled
    }

    /// Waiting for something that comes by itself; the current app stays.
    pub fn waiting(&self) -> bool {
        self.consequence() == Consequence::Waiting
    }
}

/// The shape `sync -o json` has always printed: the consequence spelled out as booleans.
impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown<'a> {
            ready: bool,
            reason: Reason,
            message: &'a str,
            stalled: bool,
            retryable: bool,
            drift: &'a Option<Drift>,
            update_available: &'a Option<Box<CommitInfo>>,
            force_pushed: bool,
        }
        Shown {
            ready: self.ready(),
            reason: self.reason,
            message: &self.message,
            stalled: self.stalled(),
            retryable: self.retryable(),
            drift: &self.drift,
            update_available: &self.update_available,
            force_pushed: self.force_pushed,
        }
        .serialize(s)
    }
}

/// The reference of every reason, as Markdown (what `docs/reasons.md` holds).
pub fn reasons_markdown() -> String {
    let mut out = String::from(
        "# Reasons\n\n\
         Generated by `tooljet-operator reasons` from the table in `src/api/verdict.rs`; a test fails\n\
         while this file is stale.\n\n\
         Every reason has one consequence. **Ready**: `Ready=True`. **Retrying**: `Ready=False` and\n\
         `Reconciling=True` (reason `Retrying`), retried with backoff (5s doubling to 5m); `sync -f`\n\
         exits 1. **Stalled**: `Ready=False` and `Stalled=True` with the same reason, rechecked at\n\
         `spec.interval`; `sync -f` exits 1. A failure also gives a Warning Event with the reason.\n\
         **Waiting**: the current app stays, `Ready` keeps its status (False when nothing was\n\
         applied yet) and `Reconciling=True` carries the reason; rechecked when it is due (a\n\
         promotion's `eligibleAt`) or the upstream AppImport changes, never with backoff; no\n\
         Warning Event; `sync -f` exits 0.\n\
         The names are the same in conditions, Events and `sync -f` / `plan -f` output.\n\n\
         | reason | consequence | meaning |\n|---|---|---|\n",
    );
    for r in Reason::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.as_str(),
            r.consequence().as_str(),
            r.meaning()
        ));
    }
    out.push_str("\n## Other conditions and Events\n\n| reason | meaning |\n|---|---|\n");
    for r in DetailReason::ALL {
        out.push_str(&format!("| `{}` | {} |\n", r.as_str(), r.meaning()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_camel_case_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let name = r.as_str();
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
            assert!(!r.meaning().is_empty(), "{name} has no meaning");
        }
    }

    #[test]
    fn the_consequence_gives_the_derived_flags() {
        let v = Verdict::new(Reason::ToolJetUnavailable, "down");
        assert!(!v.ready() && v.retryable() && !v.stalled());
        let v = Verdict::new(Reason::NameConflict, "taken");
        assert!(!v.ready() && !v.retryable() && v.stalled());
        let v = Verdict::new(Reason::UpToDate, "ok");
        assert!(v.ready() && !v.retryable() && !v.stalled());
        assert!(Reason::NameConflict == "NameConflict");
    }

    #[test]
    fn json_keeps_the_shape_sync_has_always_printed() {
        let v = Verdict::new(Reason::GitUnavailable, "timeout");
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"ready": false, "reason": "GitUnavailable", "message": "timeout",
                "stalled": false, "retryable": true, "drift": null, "updateAvailable": null,
                "forcePushed": false})
        );
    }

    #[test]
    fn docs_reasons_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reasons.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == reasons_markdown(),
            "docs/reasons.md is stale: run `cargo run -- reasons > docs/reasons.md`"
        );
    }
}
