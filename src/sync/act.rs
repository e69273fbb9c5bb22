//! Act: carry out the decision and say how it went (the verdict of a run that reached its goal).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::changes::change_summary;
use super::convert::app_status;
use super::engine::{Mode, Run, pending_summary};
use super::error::SyncError;
use super::observe::Observation;
use super::plan::{Decision, ObservedApp, Refusal, ReplaceReason, backfill_fingerprint};
use crate::api::{ChangesStatus, CommitInfo, Drift, HistoryEntry, Reason, Verdict};

impl Run<'_, '_> {
    /// Carries out the decision (writes in [`Mode::Apply`], records the steps in both modes) and
    /// says how it went.
    pub(super) async fn act(
        &mut self,
        decision: Decision,
        seen: Observation,
    ) -> Result<Verdict, SyncError> {
        let short = CommitInfo::short_sha_of(&seen.target.sha);
        let wanted = seen.wanted.clone();
        match decision {
            Decision::Nothing { local_edits_kept } => {
                Ok(self.up_to_date(seen.owned.as_ref(), local_edits_kept, &wanted, &short))
            }
            Decision::Create { recreate } => {
                if recreate {
                    self.drift = Some(Drift {
                        message: format!(
                            "app {wanted:?} was deleted in ToolJet; importing it again"
                        ),
                        corrected: false,
                    });
                }
                self.create(&seen.source, &seen.locator, &wanted, &seen.target.sha)
                    .await?;
                self.correct_drift();
                Ok(Verdict::new(
                    if recreate {
                        Reason::Recreated
                    } else {
                        Reason::Imported
                    },
                    format!(
                        "{} app {wanted:?} from commit {short}",
                        self.verb("imported", "would import")
                    ),
                ))
            }
            Decision::Replace { old, why } => self.replace_and_report(old, why, seen).await,
            Decision::Rename { app } => {
                self.rename(&app, &wanted).await?;
                Ok(Verdict::new(
                    Reason::Renamed,
                    format!(
                        "{} app {:?} to {wanted:?}",
                        self.verb("renamed", "would rename"),
                        app.name
                    ),
                ))
            }
            Decision::Refuse(Refusal::NameConflict { holder }) => Err(SyncError::NameConflict {
                name: holder.name,
                id: holder.id,
            }),
            Decision::Refuse(Refusal::LocalChanges { app }) => {
                // The new commit may be ToolJet's own edits pushed to git (an AppExport of this
                // app, or ToolJet's Git Sync): git and ToolJet then agree, so the commit is
                // recorded as applied and nothing is written. Without this an AppExport and an
                // editable AppImport of one app on one branch would stop at LocalChanges.
                if let Some(hash) = self.target_is_live(&seen, &app).await {
                    return Ok(self.record_live_commit(&app, &seen.target.sha, hash, &short));
                }
                Err(SyncError::LocalChanges {
                    name: app.name,
                    applied: seen.applied.unwrap_or_default(),
                    target: seen.target.sha,
                })
            }
        }
    }

    /// Records `sha`, whose app is the one ToolJet holds now, as applied (nothing is written to
    /// ToolJet).
    fn record_live_commit(
        &mut self,
        app: &ObservedApp,
        sha: &str,
        content_hash: String,
        short: &str,
    ) -> Verdict {
        if self.mode == Mode::Apply {
            let commit = match &self.state.latest_commit {
                Some(latest) if latest.sha == sha => latest.clone(),
                _ => self.commit_info_for(sha),
            };
            self.state.push_history(HistoryEntry {
                sha: commit.sha.clone(),
                applied_at: Time(Timestamp::now()),
            });
            self.state.last_applied_commit = Some(commit);
            self.state.last_applied_hash = Some(content_hash);
            self.state.app = Some(app_status(app));
        }
        Verdict::new(
            Reason::InSyncWithToolJet,
            format!(
                "commit {short} holds the edits made in ToolJet to app {:?} (pushed from ToolJet); {} it as applied without writing to ToolJet",
                app.name,
                self.verb("recorded", "would record")
            ),
        )
    }

    /// Replaces the app (a new commit, force-pull, a drift restore or an adoption) and says what
    /// changed inside it.
    async fn replace_and_report(
        &mut self,
        old: ObservedApp,
        why: ReplaceReason,
        seen: Observation,
    ) -> Result<Verdict, SyncError> {
        let Observation {
            source,
            locator,
            applied,
            target,
            wanted,
            ..
        } = seen;
        let short = CommitInfo::short_sha_of(&target.sha);
        if why == ReplaceReason::DriftRestore {
            let edit = self
                .drift_changes(&source, &locator, &old, &target.sha)
                .await;
            let what = edit
                .as_ref()
                .filter(|d| !d.is_empty())
                .map(|d| format!(" ({})", d.summary()))
                .unwrap_or_default();
            self.drift = Some(Drift {
                message: format!(
                    "app {:?} was edited in ToolJet{what}; restoring the version of commit {short} from git",
                    old.name
                ),
                corrected: false,
            });
            self.diff = edit;
        }
        // What the new commit changes, from the commit it replaces (both in git).
        let update = match (why, applied.as_deref()) {
            (ReplaceReason::NewCommit | ReplaceReason::ForcePull, Some(from))
                if from != target.sha =>
            {
                self.compare_commits(&source, &locator, from, &target.sha)
                    .await
                    .map(|d| (from.to_owned(), d))
            }
            _ => None,
        };
        if why == ReplaceReason::Adopt {
            // Own the adopted app first, so a crash mid-swap is recovered like any update.
            self.state.app = Some(app_status(&old));
            self.save().await?;
        }
        self.replace(&source, &locator, &old, &wanted, &target.sha)
            .await?;
        self.correct_drift();
        let mut changed = String::new();
        if let Some((from, d)) = update {
            let summary = change_summary(&from, &target.sha, &d);
            changed = if d.is_empty() {
                "; nothing changes inside the app (ids, timestamps or formatting only)".into()
            } else {
                format!(": {}", summary.summary)
            };
            self.state
                .changes
                .get_or_insert_with(ChangesStatus::default)
                .last_applied = Some(summary);
            self.diff = Some(d);
        }
        let (reason, what) = match why {
            ReplaceReason::NewCommit => (Reason::Updated, self.verb("updated", "would update")),
            ReplaceReason::ForcePull => (
                Reason::ForcePulled,
                self.verb(
                    "overwrote the edits made in ToolJet of",
                    "would overwrite the edits made in ToolJet of",
                ),
            ),
            ReplaceReason::DriftRestore => (
                Reason::DriftCorrected,
                self.verb("restored", "would restore"),
            ),
            ReplaceReason::Adopt => (Reason::Adopted, self.verb("took over", "would take over")),
        };
        Ok(Verdict::new(
            reason,
            format!("{what} app {wanted:?} from commit {short}{changed}"),
        ))
    }

    /// Nothing to write: the verdict says so (and what waits for approval).
    fn up_to_date(
        &mut self,
        owned: Option<&ObservedApp>,
        local_edits_kept: bool,
        wanted: &str,
        short: &str,
    ) -> Verdict {
        let recorded = self.state.app.as_ref();
        if let Some(app) = owned
            && self.mode == Mode::Apply
            && backfill_fingerprint(
                local_edits_kept,
                recorded.is_some(),
                recorded.and_then(|a| a.edit_fingerprint.as_deref()),
            )
        {
            self.state.app = Some(app_status(app));
        }
        let mut message = format!("app {wanted:?} is up to date with commit {short}");
        if local_edits_kept {
            message.push_str("; edits made in ToolJet are kept (editable app)");
        }
        if let Some(next) = &self.update_available {
            let changes = pending_summary(&self.state, &next.sha)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            message.push_str(&format!(
                "; commit {}{changes} is available: approve it with the annotation gitops.tooljet.dev/approve: \"{}\"",
                next.short_sha, next.sha
            ));
        }
        Verdict::new(Reason::UpToDate, message)
    }
}
