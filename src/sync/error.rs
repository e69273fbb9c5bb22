//! Why a sync did not reach its goal, with the condition reason users see.

use crate::source::SourceError;
use crate::tooljet::ToolJetError;

/// A sync that stopped. Every variant maps to a CamelCase condition reason, and says whether
/// retrying without a change by the user can help.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the AppImport is invalid: {0}")]
    InvalidSpec(String),

    #[error(
        "app {app:?} is editable, but the ToolJetInstance does not allow editable apps (allowEditableApps: false); set editable: false, or allow editable apps on the instance"
    )]
    EditableNotAllowed { app: String },

    #[error(
        "an app named {name:?} (id {id}) already exists in ToolJet and was not imported by this AppImport; rename or delete it in ToolJet, choose another appName, or set adoptExisting: true to take it over"
    )]
    NameConflict { name: String, id: String },

    #[error(
        "app {name:?} was edited in ToolJet since commit {applied} was imported, and commit {target} changes it in git; the edits are kept and nothing was written. Push the edits to git from ToolJet, or set the annotation gitops.tooljet.dev/force-pull: \"{target}\" to overwrite them"
    )]
    LocalChanges {
        name: String,
        applied: String,
        target: String,
    },

    #[error("git: {0}")]
    Source(#[from] SourceError),

    #[error("ToolJet: {0}")]
    ToolJet(#[from] ToolJetError),

    #[error(
        "could not save the sync state: {0}; the next run recovers from what it finds in ToolJet"
    )]
    Checkpoint(String),

    #[error(
        "app {app:?} has {found} of the {expected} queries of its bundle in ToolJet: a data source they use is missing or was deleted (on ToolJet 2.x, deleting an app deletes the data sources its import created, with every query using them, in every app); the next run imports the app again and creates the missing data sources; check other apps using them"
    )]
    QueriesMissing {
        app: String,
        expected: usize,
        found: usize,
    },

    #[error(
        "app {app:?} did not come out of the import as its bundle says: missing {missing}; nothing was swapped (the app users see is untouched), the imported copy was removed, and the next run imports it again; if this repeats, check the ToolJet server's logs for the import"
    )]
    ImportIncomplete { app: String, missing: String },
}

impl SyncError {
    /// The condition reason (CamelCase) for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            SyncError::InvalidSpec(_) => "InvalidSpec",
            SyncError::EditableNotAllowed { .. } => "EditableNotAllowed",
            SyncError::NameConflict { .. } => "NameConflict",
            SyncError::LocalChanges { .. } => "LocalChanges",
            SyncError::Source(e) => source_reason(e),
            SyncError::ToolJet(e) => tooljet_reason(e),
            SyncError::Checkpoint(_) => "StateNotSaved",
            SyncError::QueriesMissing { .. } => "QueriesMissing",
            SyncError::ImportIncomplete { .. } => "ImportIncomplete",
        }
    }

    /// True when retrying later, with nothing changed by the user, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Source(e) => matches!(
                e,
                SourceError::Timeout { .. }
                    | SourceError::RemoteUnavailable { .. }
                    | SourceError::Mirror { .. }
                    | SourceError::PushConflict { .. }
                    | SourceError::Internal(_)
            ),
            SyncError::ToolJet(e) => e.is_retryable(),
            SyncError::Checkpoint(_)
            | SyncError::QueriesMissing { .. }
            | SyncError::ImportIncomplete { .. } => true,
            _ => false,
        }
    }
}

fn source_reason(e: &SourceError) -> &'static str {
    match e {
        SourceError::InvalidUrl { .. } | SourceError::InvalidCommitId { .. } => "InvalidSpec",
        SourceError::InvalidCredentials { .. }
        | SourceError::AuthenticationRequired { .. }
        | SourceError::AuthenticationFailed { .. } => "GitAuthenticationFailed",
        SourceError::HostKeyUnknown { .. } | SourceError::HostKeyMismatch { .. } => {
            "GitHostKeyRejected"
        }
        SourceError::Timeout { .. } | SourceError::RemoteUnavailable { .. } => "GitUnavailable",
        SourceError::RefNotFound { .. } | SourceError::CommitNotFound { .. } => "RefNotFound",
        SourceError::AppNotFound { .. } | SourceError::BundleMissing { .. } => "AppNotFound",
        SourceError::MetaJsonMissing { .. }
        | SourceError::MetaJsonInvalid { .. }
        | SourceError::BundleNotJson { .. }
        | SourceError::BundleWithoutDefinition { .. }
        | SourceError::BundleTooLarge { .. }
        | SourceError::PathEscapesRepo { .. }
        | SourceError::SymlinkNotFollowed { .. }
        | SourceError::UnsupportedLayout { .. } => "InvalidBundle",
        SourceError::InvalidBranch { .. } => "InvalidSpec",
        SourceError::PushDenied { .. } => "GitPushDenied",
        SourceError::PushRejected { .. } => "GitPushRejected",
        SourceError::PushConflict { .. } => "GitPushConflict",
        SourceError::Mirror { .. } | SourceError::Internal(_) => "GitError",
    }
}

fn tooljet_reason(e: &ToolJetError) -> &'static str {
    match e {
        ToolJetError::NameTaken { .. } | ToolJetError::SlugTaken { .. } => "NameConflict",
        ToolJetError::BundleNewerThanServer { .. } => "BundleNewerThanServer",
        ToolJetError::BodyTooLarge { .. } => "InvalidBundle",
        ToolJetError::Unauthorized { .. } | ToolJetError::Forbidden { .. } => {
            "ToolJetAuthenticationFailed"
        }
        ToolJetError::NotFound { .. } => "ToolJetNotFound",
        ToolJetError::RouteMissing { .. } => "ToolJetUnsupported",
        ToolJetError::UnsupportedServerVersion { .. } => "ToolJetVersionUnsupported",
        ToolJetError::ReleaseNotApplied { .. } => "ReleaseFailed",
        ToolJetError::PlanLimit { .. } => "PlanLimit",
        ToolJetError::Transient { .. } => "ToolJetUnavailable",
        ToolJetError::Rejected { .. } | ToolJetError::InvalidResponse { .. } => "ToolJetError",
        ToolJetError::Unsupported { .. } => "ToolJetUnsupported",
        ToolJetError::Tls { .. } | ToolJetError::Config(_) => "ToolJetConfigInvalid",
        ToolJetError::ConstantExists { .. } => "ConstantConflict",
        ToolJetError::SecretConstantUnsupported { .. } => "SecretConstantUnsupported",
    }
}
