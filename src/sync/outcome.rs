//! What a sync returns: the new state, the steps taken (or planned), and the [`Verdict`] the
//! controller turns into conditions and the command line into a summary.

use std::fmt;

use serde::Serialize;

use super::state::SyncState;
use crate::api::Verdict;
use crate::diff::AppDiff;

/// One step the engine took, or would take in `plan`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Imported the app from a commit under a name (a temporary one during an update).
    Import { name: String, commit: String },
    /// Made the imported version the released one.
    Release { name: String, version_id: String },
    /// Moved the old app's name and slug aside so the new one can take them.
    MoveAside { id: String, name: String },
    /// Gave an app the real name and slug.
    TakeName {
        id: String,
        name: String,
        slug: String,
    },
    /// Renamed the owned app (spec.appName changed).
    Rename {
        id: String,
        from: String,
        to: String,
    },
    /// Deleted an app: the replaced one, a leftover, or the owned app on deletion.
    Delete { id: String, name: String },
    /// Put an app moved aside by an interrupted swap back under its name.
    RestoreAside { id: String, name: String },
    /// Created a global data source the bundle uses (without secrets), before the import.
    CreateDataSource { name: String, kind: String },
    /// Freed a data source from the app version that created it (ToolJet 2.x), so that deleting
    /// that app no longer deletes it.
    FreeDataSource { id: String, name: String },
    /// ToolJetInstance: deleted an owned constant removed from the spec.
    DeleteConstant { name: String },
    /// ToolJetInstance: created a workspace constant (`Global` or `Secret`).
    CreateConstant { name: String, kind: String },
    /// ToolJetInstance: wrote a new value to an owned constant.
    UpdateConstant { name: String },
    /// ToolJetInstance: created a configured data source with its options (keys named, never
    /// values).
    CreateConfiguredDataSource {
        name: String,
        kind: String,
        keys: Vec<String>,
    },
    /// ToolJetInstance: wrote a data source's options for the environment (keys named, never
    /// values).
    WriteOptions { name: String, keys: Vec<String> },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Import { name, commit } => {
                write!(
                    f,
                    "import the app from commit {} as {name:?}",
                    short(commit)
                )
            }
            Action::Release { name, version_id } => {
                write!(f, "release version {version_id} of {name:?}")
            }
            Action::MoveAside { id, name } => {
                write!(f, "move the old app {id} aside (name and slug {name:?})")
            }
            Action::TakeName { id, name, slug } => {
                write!(f, "give app {id} the name {name:?} and the slug {slug:?}")
            }
            Action::Rename { id, from, to } => write!(f, "rename app {id} from {from:?} to {to:?}"),
            Action::Delete { id, name } => write!(f, "delete app {name:?} ({id})"),
            Action::RestoreAside { id, name } => {
                write!(f, "put app {id} back under its name {name:?}")
            }
            Action::CreateDataSource { name, kind } => {
                write!(
                    f,
                    "create the {kind} data source {name:?} (global, without secrets)"
                )
            }
            Action::FreeDataSource { id, name } => {
                write!(
                    f,
                    "free the data source {name:?} ({id}) from the app version that created it"
                )
            }
            Action::DeleteConstant { name } => write!(f, "delete constant {name}"),
            Action::CreateConstant { name, kind } => {
                write!(f, "create {kind} constant {name} (value not shown)")
            }
            Action::UpdateConstant { name } => {
                write!(f, "write a new value to constant {name} (value not shown)")
            }
            Action::CreateConfiguredDataSource { name, kind, keys } => write!(
                f,
                "create the {kind} data source {name:?} with options {} (values not shown)",
                keys.join(", ")
            ),
            Action::WriteOptions { name, keys } => write!(
                f,
                "write the options of data source {name:?}, setting {} (values not shown)",
                keys.join(", ")
            ),
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Everything a sync returns.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutcome {
    /// The state to keep for the next run (the controller writes it to status).
    pub state: SyncState,
    /// Steps taken (sync) or that would be taken (plan), in order.
    pub actions: Vec<Action>,
    /// Ready, retrying or stalled, with the reason.
    pub report: Verdict,
    /// What the update (or restore) changes inside the app, or what the commit waiting for
    /// approval would; `None` when nothing changes or it could not be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<AppDiff>,
}

impl SyncOutcome {
    /// How many ToolJet writes the steps amount to (every step is one write).
    pub fn writes(&self) -> usize {
        self.actions.len()
    }
}
