//! What the engine remembers between runs. The controller keeps it in the AppImport's status
//! (and owns that mapping: conditions and `observedGeneration` are not the engine's); the command
//! line keeps it in its state file, one per `namespace/name`, in the same JSON shape as status.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::{
    AppStatus, ChangesStatus, CommitInfo, DataSourceStatus, HISTORY_LIMIT, HistoryEntry, PendingApp,
};

/// The engine's memory of one AppImport.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// The app in ToolJet that this AppImport owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppStatus>,
    /// A temporary app created during a swap, kept so an interrupted swap can be finished or
    /// cleaned up by the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_app: Option<PendingApp>,
    /// The commit whose app definition is in ToolJet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<CommitInfo>,
    /// The newest commit of the ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_commit: Option<CommitInfo>,
    /// The generation whose spec the app in ToolJet matches (set only by a successful sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_generation: Option<i64>,
    /// Hash of the applied app definition (never the definition itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_hash: Option<String>,
    /// When the last successful sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Timestamp>,
    /// The last applied commits, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// The workspace data sources the bundle uses, as the last import found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_sources: Vec<DataSourceStatus>,
    /// What the update waiting for approval and the last applied one change inside the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangesStatus>,
}

impl SyncState {
    /// Records an applied commit at the front of `history`, keeping the newest [`HISTORY_LIMIT`].
    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.insert(0, entry);
        self.history.truncate(HISTORY_LIMIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn history_keeps_the_newest_ten() {
        let mut state = SyncState::default();
        for i in 0..12 {
            state.push_history(HistoryEntry {
                sha: format!("{i:040}"),
                applied_at: Time(jiff::Timestamp::UNIX_EPOCH),
            });
        }
        assert_eq!(state.history.len(), HISTORY_LIMIT);
        assert_eq!(state.history[0].sha, format!("{:040}", 11));
        assert_eq!(state.history[9].sha, format!("{:040}", 2));
    }
}
