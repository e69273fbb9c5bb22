//! Swap: the crash-safe write order of a create (import under a temporary name, take the real
//! name) and of an update (import, move the old app aside, take its name and slug, delete it),
//! with the checks after each step and the way back when one fails.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tracing::{debug, warn};

use super::convert::{app_status, commit_status, observed};
use super::datasources::bundle_query_count;
use super::engine::{Mode, Run};
use super::error::SyncError;
use super::outcome::Action;
use super::plan::ObservedApp;
use super::recover::delete_if_present;
use crate::api::{CommitInfo, HistoryEntry, PendingApp};
use crate::source::{AppLocator, SourceSpec};
use crate::tooljet::{AppDetails, AppUpdate, ToolJetError};

impl Run<'_, '_> {
    /// First import: under a temporary name, then the real one.
    pub(super) async fn create(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        wanted: &str,
        sha: &str,
    ) -> Result<(), SyncError> {
        let Some(new) = self.import_pending(spec, locator, sha).await? else {
            self.actions.push(Action::TakeName {
                id: "(new app)".into(),
                name: wanted.to_owned(),
                slug: "(its own)".into(),
            });
            return Ok(());
        };
        if let Err(e) = self.take_name(&new.id, wanted, &new.slug).await {
            // Someone took the name since we looked: drop our import, report the conflict.
            self.drop_pending(&new).await;
            return Err(match e {
                SyncError::ToolJet(ToolJetError::NameTaken { .. }) => SyncError::NameConflict {
                    name: wanted.to_owned(),
                    id: "unknown".into(),
                },
                other => other,
            });
        }
        let details = match self.verify_named(&new, wanted).await {
            Ok(details) => details,
            Err(e) => {
                // A failed read leaves the app for the next run, which finds it by state.
                if matches!(e, SyncError::ImportIncomplete { .. }) {
                    self.drop_pending(&new).await;
                }
                return Err(e);
            }
        };
        self.record_owned(&details, &new);
        self.save().await
    }

    /// Update: import under a temporary name, swap it in for `old`, delete `old`.
    pub(super) async fn replace(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        old: &ObservedApp,
        wanted: &str,
        sha: &str,
    ) -> Result<(), SyncError> {
        let Some(new) = self.import_pending(spec, locator, sha).await? else {
            self.plan_swap(old, wanted);
            return Ok(());
        };
        let aside = self.req.key.aside_name();
        let moved = self
            .tj
            .update_app(
                &old.id,
                &AppUpdate {
                    name: Some(aside.clone()),
                    slug: Some(aside.clone()),
                },
            )
            .await;
        if let Err(e) = moved {
            // The answer can be lost although the move happened (a timeout): put the old app
            // back when it sits aside, so the users are not left without their app.
            match self.tj.get_app(&old.id).await {
                Ok(details) if details.name == aside => {
                    self.put_back(old).await;
                }
                Ok(_) => {}
                Err(check) => {
                    warn!(error = %check, "could not check whether the old app was moved aside; the next run will")
                }
            }
            self.drop_pending(&new).await;
            return Err(e.into());
        }
        self.actions.push(Action::MoveAside {
            id: old.id.clone(),
            name: aside,
        });
        if let Err(e) = self.take_name(&new.id, wanted, &old.slug).await {
            // Put the old app back at once, then drop the new one: the user keeps a working app.
            // When that fails, both stay for the next run, which finishes the swap (it knows
            // both by state).
            if self.put_back(old).await {
                self.drop_pending(&new).await;
            }
            return Err(e);
        }
        // The old app is deleted only once the new one holds the name (and the release).
        let details = match self.verify_named(&new, wanted).await {
            Ok(details) => details,
            Err(e) => {
                // A failed read leaves both apps for the next run, which finishes the swap.
                // A failed check: the new app gives the name back (it may hold it), the old
                // app is put back, then the new one is removed.
                if matches!(e, SyncError::ImportIncomplete { .. }) {
                    let back = self
                        .tj
                        .update_app(
                            &new.id,
                            &AppUpdate {
                                name: Some(new.name.clone()),
                                slug: Some(new.slug.clone()),
                            },
                        )
                        .await;
                    match back {
                        Ok(()) => {
                            if self.put_back(old).await {
                                self.drop_pending(&new).await;
                            }
                        }
                        Err(r) => {
                            warn!(error = %r, "could not move the new app off the name; the next run will")
                        }
                    }
                }
                return Err(e);
            }
        };
        self.record_owned(&details, &new);
        self.save().await?;
        self.delete(&old.id, &old.name).await?;
        self.verify_queries_kept(spec, locator, &new, sha).await
    }

    /// After the old app is gone: the new app still has every query of its bundle (nothing the
    /// deletion cascaded to). Otherwise the applied hash is forgotten, so the next run imports
    /// the app again, and the run fails with the count.
    pub(super) async fn verify_queries_kept(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        new: &PendingApp,
        sha: &str,
    ) -> Result<(), SyncError> {
        let app = self.read_app(spec, locator, sha).await?;
        let expected = bundle_query_count(&app.bundle);
        let details = self.tj.get_app(&new.id).await?;
        let Some(found) = details.data_queries.as_ref().map(Vec::len) else {
            debug!("the server does not list an app's queries; the check is skipped");
            return Ok(());
        };
        if found >= expected {
            return Ok(());
        }
        self.state.last_applied_hash = None;
        self.save().await?;
        Err(SyncError::QueriesMissing {
            app: details.name,
            expected,
            found,
        })
    }

    /// Puts the old app back under its name and slug after a failed swap; false when that failed
    /// (the next run will). The rename moves the app's `updated_at`: when the app had no edits
    /// made in ToolJet, the new value is recorded, so the next run does not take the operator's
    /// own rename for an edit (an editable app would be refused with LocalChanges).
    pub(super) async fn put_back(&mut self, old: &ObservedApp) -> bool {
        let restored = self
            .tj
            .update_app(
                &old.id,
                &AppUpdate {
                    name: Some(old.name.clone()),
                    slug: Some(old.slug.clone()),
                },
            )
            .await;
        if let Err(e) = restored {
            warn!(error = %e, "could not put the old app back; the next run will");
            return false;
        }
        self.actions.push(Action::RestoreAside {
            id: old.id.clone(),
            name: old.name.clone(),
        });
        let unedited = self.state.app.as_ref().is_some_and(|a| {
            a.id == old.id
                && a.updated_at.is_some()
                && !old.edited_since(
                    a.edit_fingerprint.as_deref(),
                    a.updated_at.as_deref(),
                    false,
                )
        });
        if unedited {
            match self.tj.get_app(&old.id).await {
                Ok(details) => {
                    self.state.app = Some(app_status(&observed(&details)));
                    if let Err(e) = self.save().await {
                        warn!(error = %e, "could not save state after putting the old app back");
                    }
                }
                Err(e) => warn!(error = %e, "could not read the old app after putting it back"),
            }
        }
        true
    }

    /// What `plan` shows for the swap that follows the import.
    pub(super) fn plan_swap(&mut self, old: &ObservedApp, wanted: &str) {
        let aside = self.req.key.aside_name();
        self.actions.push(Action::MoveAside {
            id: old.id.clone(),
            name: aside,
        });
        self.actions.push(Action::TakeName {
            id: "(new app)".into(),
            name: wanted.to_owned(),
            slug: old.slug.clone(),
        });
        self.actions.push(Action::Delete {
            id: old.id.clone(),
            name: old.name.clone(),
        });
    }

    /// After the app took its real name: it holds the name, and is released when the spec says
    /// so. The app is read again (by id) and recorded as the owned one only when it passes.
    pub(super) async fn verify_named(
        &self,
        new: &PendingApp,
        wanted: &str,
    ) -> Result<AppDetails, SyncError> {
        let details = self.tj.get_app(&new.id).await?;
        let mut missing = Vec::new();
        if details.name != wanted {
            missing.push(format!(
                "the name {wanted:?} (the new app is still named {:?})",
                details.name
            ));
        }
        if self.req.spec.release && details.current_version_id.is_none() {
            missing.push("the release (the new app has no released version)".to_owned());
        }
        if missing.is_empty() {
            return Ok(details);
        }
        Err(SyncError::ImportIncomplete {
            app: wanted.to_owned(),
            missing: missing.join(", "),
        })
    }

    /// Gives an app its real name and slug.
    pub(super) async fn take_name(
        &mut self,
        id: &str,
        name: &str,
        slug: &str,
    ) -> Result<(), SyncError> {
        self.write(Action::TakeName {
            id: id.to_owned(),
            name: name.to_owned(),
            slug: slug.to_owned(),
        })
        .await
    }

    pub(super) fn record_owned(&mut self, details: &AppDetails, from: &PendingApp) {
        let applied = match (&from.commit_sha, &self.state.latest_commit) {
            (Some(sha), Some(latest)) if latest.sha == *sha => Some(latest.clone()),
            (Some(sha), _) => Some(self.commit_info_for(sha)),
            (None, _) => None,
        };
        if let Some(commit) = &applied {
            self.state.push_history(HistoryEntry {
                sha: commit.sha.clone(),
                applied_at: Time(Timestamp::now()),
            });
        }
        self.state.last_applied_commit = applied.or(self.state.last_applied_commit.take());
        if from.content_hash.is_some() {
            self.state.last_applied_hash = from.content_hash.clone();
        }
        self.state.app = Some(app_status(&observed(details)));
        self.state.pending_app = None;
    }

    /// Commit details for a sha: from the app read this run, else the sha alone.
    pub(super) fn commit_info_for(&self, sha: &str) -> CommitInfo {
        match &self.app {
            Some(app) if app.commit.sha == sha => commit_status(&app.commit),
            _ => CommitInfo {
                sha: sha.to_owned(),
                short_sha: CommitInfo::short_sha_of(sha),
                message: String::new(),
                author: String::new(),
                date: None,
            },
        }
    }

    /// Deletes the pending app after a failed step; a failure here is left to the next run.
    pub(super) async fn drop_pending(&mut self, new: &PendingApp) {
        match delete_if_present(self.tj, &new.id).await {
            Ok(()) => {
                self.actions.push(Action::Delete {
                    id: new.id.clone(),
                    name: new.name.clone(),
                });
                self.state.pending_app = None;
                if let Err(e) = self.save().await {
                    warn!(error = %e, "could not save state after dropping the temporary app");
                }
            }
            Err(e) => {
                warn!(error = %e, app = %new.id, "could not delete the temporary app; the next run will")
            }
        }
    }

    pub(super) async fn rename(
        &mut self,
        app: &ObservedApp,
        wanted: &str,
    ) -> Result<(), SyncError> {
        self.write(Action::Rename {
            id: app.id.clone(),
            from: app.name.clone(),
            to: wanted.to_owned(),
        })
        .await?;
        if self.mode == Mode::Apply {
            let details = self.tj.get_app(&app.id).await?;
            self.state.app = Some(app_status(&observed(&details)));
            self.save().await?;
        }
        Ok(())
    }
}
