//! What an update or a drift changes inside the app, in ToolJet's terms ([`crate::diff`]): the
//! pending commit under `updatePolicy: Manual` (what the reviewer approves), the update a run
//! applies, and the edit made in ToolJet that a restore undoes.
//!
//! Which two sides are compared:
//! - an update (pending or applied): the app at the applied commit and at the new one, both read
//!   from the local git mirror. Cheap (no network), deterministic, and the same in `plan` and in
//!   the controller. What ToolJet holds may differ from the applied commit only by an edit made
//!   there, which is drift and reported as such.
//! - drift: the app ToolJet exports now against the bundle in git, since only ToolJet knows what
//!   the user changed. One export, only on a run that found an edit.
//!
//! A comparison never fails a run: on any error the run goes on without a summary (logged).
//! The no-op rule ([`super::plan::summary_needed`]) keeps a reconcile that finds nothing new from
//! reading a second bundle.

use tracing::debug;

use super::engine::{Mode, Run};
use super::plan::{ObservedApp, summary_needed};
use crate::api::{ChangeSummary, ChangesStatus};
use crate::diff::{self, AppDiff};
use crate::source::{AppLocator, SourceSpec};

/// The status form of a diff from commit `from` to commit `to`.
pub fn change_summary(from: &str, to: &str, diff: &AppDiff) -> ChangeSummary {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    ChangeSummary {
        from: from.to_owned(),
        commit: to.to_owned(),
        summary: diff.summary(),
        pages: count(diff.pages.len()),
        components: count(diff.pages.iter().map(|p| p.components.len()).sum()),
        queries: count(diff.queries.len()),
    }
}

impl Run<'_, '_> {
    fn changes_mut(&mut self) -> &mut ChangesStatus {
        self.state
            .changes
            .get_or_insert_with(ChangesStatus::default)
    }

    /// Drops empty `changes` so status carries no empty object.
    pub(super) fn tidy_changes(&mut self) {
        self.state.changes = self.state.changes.take().and_then(ChangesStatus::or_none);
    }

    /// What the app changes from commit `from` to commit `to`, both read from git.
    pub(super) async fn compare_commits(
        &self,
        spec: &SourceSpec,
        locator: &AppLocator,
        from: &str,
        to: &str,
    ) -> Option<AppDiff> {
        let creds = &self.req.git_credentials;
        let before = self.source.read_app(&spec.url, creds, from, locator).await;
        let after = self.source.read_app(&spec.url, creds, to, locator).await;
        let (before, after) = match (before, after) {
            (Ok(before), Ok(after)) => (before, after),
            (Err(e), _) | (_, Err(e)) => {
                debug!(import = %self.req.key, error = %e, "cannot read the app to compare commits");
                return None;
            }
        };
        match diff::diff(&before.bundle, &after.bundle) {
            Ok(d) => Some(d),
            Err(e) => {
                debug!(import = %self.req.key, error = %e, "cannot compare the app's commits");
                None
            }
        }
    }

    /// Records what the commit waiting for approval changes (`changes.pending`), or forgets it
    /// when none waits. Compares only when the pending commit is new (or in `plan`, which shows
    /// the whole diff).
    pub(super) async fn note_pending(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        applied: Option<&str>,
        pending: Option<&str>,
    ) {
        let (Some(from), Some(to)) = (applied, pending) else {
            if let Some(changes) = &mut self.state.changes {
                changes.pending = None;
            }
            self.tidy_changes();
            return;
        };
        let recorded = self
            .state
            .changes
            .as_ref()
            .and_then(|c| c.pending.as_ref())
            .map(|p| (p.from.as_str(), p.commit.as_str()));
        if self.mode == Mode::Apply && !summary_needed(recorded, from, to) {
            return;
        }
        let found = self.compare_commits(spec, locator, from, to).await;
        self.changes_mut().pending = found.as_ref().map(|d| change_summary(from, to, d));
        self.tidy_changes();
        if self.diff.is_none() {
            self.diff = found;
        }
    }

    /// What the user changed in ToolJet, from the bundle of commit `sha` in git to what ToolJet
    /// exports of `app` now: what a restore undoes.
    pub(super) async fn drift_changes(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        app: &ObservedApp,
        sha: &str,
    ) -> Option<AppDiff> {
        let git = match self.read_app(spec, locator, sha).await {
            Ok(git) => git,
            Err(e) => {
                debug!(import = %self.req.key, error = %e, "cannot read the app to describe the drift");
                return None;
            }
        };
        let exported = match self.tj.export_app(&app.id, None).await {
            Ok(exported) => exported,
            Err(e) => {
                debug!(import = %self.req.key, error = %e, "cannot export the app to describe the drift");
                return None;
            }
        };
        match diff::diff(&git.bundle, &exported) {
            Ok(d) => Some(d),
            Err(e) => {
                debug!(import = %self.req.key, error = %e, "cannot compare the exported app");
                None
            }
        }
    }
}
