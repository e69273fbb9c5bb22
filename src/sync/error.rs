//! Why a sync did not reach its goal, with the condition reason users see.

use crate::api::Reason;
use crate::source::SourceError;
use crate::tooljet::ToolJetError;

/// A sync that stopped. Every variant maps to a [`Reason`], whose consequence says whether
/// retrying without a change by the user can help.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the AppImport is invalid: {0}")]
    InvalidSpec(String),

    #[error("{}", secret_not_found(namespace.as_deref(), name))]
    SecretNotFound {
        namespace: Option<String>,
        name: String,
    },

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
    /// The reason (and with it the consequence) of this failure.
    pub fn reason(&self) -> Reason {
        match self {
            SyncError::InvalidSpec(_) => Reason::InvalidSpec,
            SyncError::SecretNotFound { .. } => Reason::SecretNotFound,
            SyncError::EditableNotAllowed { .. } => Reason::EditableNotAllowed,
            SyncError::NameConflict { .. } => Reason::NameConflict,
            SyncError::LocalChanges { .. } => Reason::LocalChanges,
            SyncError::Source(e) => source_reason(e),
            SyncError::ToolJet(e) => tooljet_reason(e),
            SyncError::Checkpoint(_) => Reason::StateNotSaved,
            SyncError::QueriesMissing { .. } => Reason::QueriesMissing,
            SyncError::ImportIncomplete { .. } => Reason::ImportIncomplete,
        }
    }

    /// The verdict of a run that stopped with this failure.
    pub fn verdict(&self) -> crate::api::Verdict {
        crate::api::Verdict::new(self.reason(), self.to_string())
    }
}

fn secret_not_found(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("Secret {ns}/{name} not found; create it in namespace {ns}"),
        None => format!("Secret {name:?} not found; create it in the same namespace"),
    }
}

/// The reason of a git failure (shared with exports).
pub(super) fn source_reason(e: &SourceError) -> Reason {
    match e {
        SourceError::InvalidUrl { .. } | SourceError::InvalidCommitId { .. } => Reason::InvalidSpec,
        SourceError::InvalidCredentials { .. }
        | SourceError::AuthenticationRequired { .. }
        | SourceError::AuthenticationFailed { .. } => Reason::GitAuthenticationFailed,
        SourceError::HostKeyUnknown { .. } | SourceError::HostKeyMismatch { .. } => {
            Reason::GitHostKeyRejected
        }
        SourceError::Timeout { .. } | SourceError::RemoteUnavailable { .. } => {
            Reason::GitUnavailable
        }
        SourceError::RefNotFound { .. } | SourceError::CommitNotFound { .. } => Reason::RefNotFound,
        SourceError::AppNotFound { .. } | SourceError::BundleMissing { .. } => Reason::AppNotFound,
        SourceError::MetaJsonMissing { .. }
        | SourceError::MetaJsonInvalid { .. }
        | SourceError::BundleNotJson { .. }
        | SourceError::BundleWithoutDefinition { .. }
        | SourceError::BundleTooLarge { .. }
        | SourceError::PathEscapesRepo { .. }
        | SourceError::SymlinkNotFollowed { .. }
        | SourceError::UnsupportedLayout { .. } => Reason::InvalidBundle,
        SourceError::InvalidBranch { .. } => Reason::InvalidSpec,
        SourceError::PushDenied { .. } => Reason::GitPushDenied,
        SourceError::PushRejected { .. } => Reason::GitPushRejected,
        SourceError::PushConflict { .. } => Reason::GitPushConflict,
        SourceError::Mirror { .. } | SourceError::Internal(_) => Reason::GitError,
    }
}

/// The reason of a ToolJet failure (shared with exports).
pub(super) fn tooljet_reason(e: &ToolJetError) -> Reason {
    match e {
        ToolJetError::NameTaken { .. } | ToolJetError::SlugTaken { .. } => Reason::NameConflict,
        ToolJetError::BundleNewerThanServer { .. } => Reason::BundleNewerThanServer,
        ToolJetError::BodyTooLarge { .. } => Reason::InvalidBundle,
        ToolJetError::Unauthorized { .. } | ToolJetError::Forbidden { .. } => {
            Reason::ToolJetAuthenticationFailed
        }
        ToolJetError::NotFound { .. } => Reason::ToolJetNotFound,
        ToolJetError::RouteMissing { .. } => Reason::ToolJetUnsupported,
        ToolJetError::UnsupportedServerVersion { .. } => Reason::ToolJetVersionUnsupported,
        ToolJetError::ReleaseNotApplied { .. } => Reason::ReleaseFailed,
        ToolJetError::PlanLimit { .. } => Reason::PlanLimit,
        ToolJetError::Transient { .. } => Reason::ToolJetUnavailable,
        ToolJetError::Rejected { .. } | ToolJetError::InvalidResponse { .. } => {
            Reason::ToolJetError
        }
        ToolJetError::Unsupported { .. } => Reason::ToolJetUnsupported,
        ToolJetError::Tls { .. } | ToolJetError::Config(_) => Reason::ToolJetConfigInvalid,
        ToolJetError::ConstantExists { .. } => Reason::ConstantConflict,
        ToolJetError::SecretConstantUnsupported { .. } => Reason::SecretConstantUnsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Consequence;
    use crate::tooljet::TransientKind;

    /// The table's consequence agrees with what the ToolJet layer says about retrying.
    #[test]
    fn retryable_errors_map_to_retrying_reasons() {
        for (e, retryable) in [
            (
                ToolJetError::Transient {
                    route: "GET /api/apps",
                    kind: TransientKind::ConnectionRefused,
                },
                true,
            ),
            (
                ToolJetError::PlanLimit {
                    route: "POST /api/v2/resources/import",
                    detail: "limit".into(),
                },
                false,
            ),
        ] {
            assert_eq!(e.is_retryable(), retryable);
            let consequence = SyncError::ToolJet(e).reason().consequence();
            let expected = if retryable {
                Consequence::Retrying
            } else {
                Consequence::Stalled
            };
            assert_eq!(consequence, expected);
        }
        let gone = SyncError::SecretNotFound {
            namespace: Some("ns".into()),
            name: "git".into(),
        };
        assert_eq!(gone.reason(), Reason::SecretNotFound);
        assert_eq!(
            gone.to_string(),
            "Secret ns/git not found; create it in namespace ns"
        );
    }
}
