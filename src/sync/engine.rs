//! The engine: one run is observe → decide → act → verdict.
//!
//! - observe ([`super::observe`]): where the ref is, what ToolJet holds, what an interrupted run
//!   left ([`super::recover`]); the no-op rules of [`super::plan`] say what need not be read.
//! - decide ([`super::plan::decide`]): pure.
//! - act ([`super::act`]): the writes, in a crash-safe order ([`super::swap`], [`super::import`]).
//! - verdict: [`crate::api::Verdict`], with the state to keep ([`SyncState`]).
//!
//! Write order and why nothing is lost:
//! - create: import under a temporary name, checkpoint it as `pendingApp`, release, take the real
//!   name. A crash leaves either a temporary app (deleted by the next run) or a pending app that
//!   already has the real name (recognised by its id and adopted).
//! - update: import under a temporary name (checkpoint), release it, move the old app's name and
//!   slug aside, give the new app the real name and the old slug, record it (checkpoint), delete
//!   the old app. A failure puts the old app back at once; a crash is finished by the next run,
//!   which recognises its own leftovers by name (see [`super::names`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use jiff::Timestamp;
use tracing::{debug, warn};

use super::error::SyncError;
use super::names::ImportKey;
use super::outcome::{Action, SyncOutcome};
use super::plan::decide;
use super::recover::{delete_if_present, leftovers};
use super::request::SyncRequest;
use super::state::SyncState;
use crate::api::{CommitInfo, Drift, Verdict};
use crate::diff::AppDiff;
use crate::source::{AppSource, SourceCache};
use crate::tooljet::{AppUpdate, ToolJetClient};

/// Whether a run writes (`sync`) or only says what it would do (`plan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Plan,
}

/// Saves the state between the steps of a run, so a crash never forgets an app it created.
/// The controller patches status; the command line rewrites its state file.
pub trait Checkpoint: Send + Sync {
    fn save<'a>(&'a self, state: &'a SyncState) -> BoxFuture<'a, Result<(), String>>;
}

/// For callers that keep state only at the end of a run (and for `plan`).
pub struct NoCheckpoint;

impl Checkpoint for NoCheckpoint {
    fn save<'a>(&'a self, _state: &'a SyncState) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The sync engine. Cheap to share: one per process, over one git cache.
pub struct Engine {
    source: SourceCache,
}

impl Engine {
    pub fn new(source: SourceCache) -> Self {
        Self { source }
    }

    /// Brings the app in ToolJet to what the request asks for (or, in [`Mode::Plan`], only says
    /// what that would take). Never fails as a call: failures are in the report.
    pub async fn sync(
        &self,
        req: SyncRequest<'_>,
        tooljet: &ToolJetClient,
        mode: Mode,
        checkpoint: &dyn Checkpoint,
    ) -> SyncOutcome {
        let mut run = Run {
            source: &self.source,
            req: &req,
            tj: tooljet,
            mode,
            checkpoint,
            state: req.state.clone(),
            actions: Vec::new(),
            app: None,
            drift: None,
            update_available: None,
            force_pushed: false,
            diff: None,
        };
        let result = run.run().await;
        run.finish(result)
    }

    /// Applies `deletionPolicy` when the AppImport goes: `Delete` removes the owned app, and both
    /// policies remove this AppImport's own leftovers (temporary and moved-aside apps).
    /// An app that is already gone counts as deleted.
    pub async fn release(
        &self,
        key: &ImportKey,
        delete_app: bool,
        state: &SyncState,
        tooljet: &ToolJetClient,
        mode: Mode,
    ) -> Result<Vec<Action>, SyncError> {
        let mut doomed: Vec<(String, String)> = leftovers(tooljet, key)
            .await?
            .into_iter()
            .map(|a| (a.id, a.name))
            .collect();
        if let Some(p) = &state.pending_app {
            doomed.push((p.id.clone(), p.name.clone()));
        }
        if delete_app && let Some(app) = &state.app {
            doomed.push((app.id.clone(), app.name.clone()));
        }
        doomed.sort();
        doomed.dedup();
        let mut actions = Vec::new();
        for (id, name) in doomed {
            if mode == Mode::Apply {
                delete_if_present(tooljet, &id).await?;
            }
            actions.push(Action::Delete { id, name });
        }
        Ok(actions)
    }
}

/// The recorded summary of what commit `sha`, waiting for approval, changes.
pub(super) fn pending_summary(state: &SyncState, sha: &str) -> Option<String> {
    state
        .changes
        .as_ref()
        .and_then(|c| c.pending.as_ref())
        .filter(|p| p.commit == sha)
        .map(|p| p.summary.clone())
}

/// One run of the engine over one AppImport: what it reads, writes and found so far.
pub(super) struct Run<'r, 'a> {
    pub(super) source: &'r SourceCache,
    pub(super) req: &'r SyncRequest<'a>,
    pub(super) tj: &'r ToolJetClient,
    pub(super) mode: Mode,
    pub(super) checkpoint: &'r dyn Checkpoint,
    pub(super) state: SyncState,
    pub(super) actions: Vec<Action>,
    /// The app read at the target commit, kept so a run reads it at most once.
    pub(super) app: Option<Arc<AppSource>>,
    pub(super) drift: Option<Drift>,
    pub(super) update_available: Option<CommitInfo>,
    pub(super) force_pushed: bool,
    /// What this run's update, restore or pending commit changes inside the app (for `plan`).
    pub(super) diff: Option<AppDiff>,
}

impl Run<'_, '_> {
    /// One run: observe, decide, act; the verdict says how it went.
    async fn run(&mut self) -> Result<Verdict, SyncError> {
        let seen = self.observe().await?;
        let decision = decide(&self.facts(&seen));
        debug!(import = %self.req.key, ?decision, target = %seen.target.sha, "decided");
        self.act(decision, seen).await
    }

    fn finish(mut self, result: Result<Verdict, SyncError>) -> SyncOutcome {
        let verdict = match result {
            Ok(verdict) => {
                if self.mode == Mode::Apply {
                    self.state.last_sync_time = Some(Timestamp::now());
                    self.state.last_applied_generation = self.req.generation;
                }
                verdict
            }
            Err(e) => {
                warn!(import = %self.req.key, reason = %e.reason(), error = %e, "sync failed");
                e.verdict()
            }
        };
        let pending_changes = self
            .update_available
            .as_ref()
            .and_then(|next| pending_summary(&self.state, &next.sha));
        SyncOutcome {
            report: Verdict {
                drift: self.drift,
                update_available: self.update_available.map(Box::new),
                pending_changes,
                force_pushed: self.force_pushed,
                ..verdict
            },
            state: self.state,
            actions: self.actions,
            diff: self.diff,
        }
    }

    /// The verb of a verdict: what was done, or in `plan`, what would be done.
    pub(super) fn verb(&self, done: &'static str, planned: &'static str) -> &'static str {
        match self.mode {
            Mode::Apply => done,
            Mode::Plan => planned,
        }
    }

    pub(super) fn correct_drift(&mut self) {
        if let Some(d) = &mut self.drift {
            d.corrected = self.mode == Mode::Apply;
        }
    }

    pub(super) async fn save(&self) -> Result<(), SyncError> {
        if self.mode == Mode::Plan {
            return Ok(());
        }
        self.checkpoint
            .save(&self.state)
            .await
            .map_err(SyncError::Checkpoint)
    }

    pub(super) async fn delete(&mut self, id: &str, name: &str) -> Result<(), SyncError> {
        self.write(Action::Delete {
            id: id.to_owned(),
            name: name.to_owned(),
        })
        .await
    }

    /// Performs one write (skipped in plan mode) and records it.
    pub(super) async fn write(&mut self, action: Action) -> Result<(), SyncError> {
        if self.mode == Mode::Apply {
            match &action {
                Action::TakeName { id, name, slug } => {
                    self.tj
                        .update_app(
                            id,
                            &AppUpdate {
                                name: Some(name.clone()),
                                slug: Some(slug.clone()),
                            },
                        )
                        .await?
                }
                Action::Rename { id, to, .. } => {
                    self.tj
                        .update_app(
                            id,
                            &AppUpdate {
                                name: Some(to.clone()),
                                slug: None,
                            },
                        )
                        .await?
                }
                Action::RestoreAside { id, name } => {
                    let slug = self
                        .state
                        .app
                        .as_ref()
                        .filter(|a| a.id == *id)
                        .map(|a| a.slug.clone());
                    self.tj
                        .update_app(
                            id,
                            &AppUpdate {
                                name: Some(name.clone()),
                                slug,
                            },
                        )
                        .await?
                }
                Action::Delete { id, .. } => delete_if_present(self.tj, id).await?,
                Action::Import { .. }
                | Action::Release { .. }
                | Action::MoveAside { .. }
                | Action::CreateDataSource { .. }
                | Action::FreeDataSource { .. }
                | Action::DeleteConstant { .. }
                | Action::CreateConstant { .. }
                | Action::UpdateConstant { .. }
                | Action::CreateConfiguredDataSource { .. }
                | Action::WriteOptions { .. } => {
                    return Err(SyncError::InvalidSpec(format!(
                        "internal: {action} is not a single write"
                    )));
                }
            }
        }
        self.actions.push(action);
        Ok(())
    }
}
