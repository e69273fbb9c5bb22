//! Observe: what git and ToolJet look like now, read as little as the no-op rules allow.

use std::sync::Arc;

use tracing::debug;

use super::convert::{commit_status, locator_name, observed, observed_summary, source_of};
use super::engine::Run;
use super::error::SyncError;
use super::plan::{
    Facts, LatestChange, ObservedApp, Recorded, TargetChoice, choose_target, needs_name_check,
};
use crate::source::{AppLocator, AppSource, SourceSpec};
use crate::tooljet::ToolJetError;

/// What a run found in git and ToolJet, before deciding.
pub(super) struct Observation {
    pub(super) source: SourceSpec,
    pub(super) locator: AppLocator,
    /// The commit last applied, if any.
    pub(super) applied: Option<String>,
    pub(super) target: TargetChoice,
    /// The name the app must have in ToolJet.
    pub(super) wanted: String,
    pub(super) owned: Option<ObservedApp>,
    pub(super) owned_vanished: bool,
    pub(super) holder: Option<ObservedApp>,
    pub(super) content_changed: bool,
}

impl Run<'_, '_> {
    /// Reads what the decision needs, skipping what the no-op rules of [`super::plan`] say cannot
    /// have changed; finishes what an interrupted run left on the way.
    pub(super) async fn observe(&mut self) -> Result<Observation, SyncError> {
        let spec = self.req.spec;
        let (source, locator) = source_of(spec)?;
        if spec.editable && !self.req.instance.editable_apps_allowed() {
            return Err(SyncError::EditableNotAllowed {
                app: spec
                    .app_name
                    .clone()
                    .unwrap_or_else(|| locator_name(&locator)),
            });
        }

        // Git: where is the ref now? Lists the remote's refs; fetches only when it moved.
        let known = self.state.latest_commit.as_ref().map(|c| c.sha.clone());
        let resolved = self
            .source
            .resolve(&source, &self.req.git_credentials, known.as_deref())
            .await?;
        self.force_pushed = resolved.force_pushed;
        let latest = commit_status(&resolved.commit);
        self.state.latest_commit = Some(latest.clone());

        // ToolJet: which family is it? (read once per client; a clear refusal when unknown).
        match self.tj.family().await {
            // The external API token cannot read the version; it cannot release either.
            Ok(_) | Err(ToolJetError::Unsupported { .. }) => {}
            Err(e) => return Err(e.into()),
        }

        self.recover().await?;
        let (owned, owned_vanished) = self.observe_owned().await?;

        let applied = self
            .state
            .last_applied_commit
            .as_ref()
            .map(|c| c.sha.clone());
        let recorded = Recorded {
            generation: self.req.generation,
            applied_generation: self.state.last_applied_generation,
            applied_commit: applied.as_deref(),
            hash_recorded: self.state.last_applied_hash.is_some(),
        };
        let latest_differs = match (recorded.latest_change(&latest.sha), &applied) {
            (LatestChange::CompareFiles, Some(a)) => {
                self.app_changed(&source, &locator, a, &latest.sha).await
            }
            (LatestChange::Same, _) => false,
            _ => true,
        };
        let target = choose_target(
            spec.update_policy,
            applied.as_deref(),
            &latest.sha,
            latest_differs,
            self.req.approve,
        );
        if target.awaiting_approval {
            self.update_available = Some(latest.clone());
        }
        let pending = target.awaiting_approval.then_some(latest.sha.as_str());
        self.note_pending(&source, &locator, applied.as_deref(), pending)
            .await;

        let content_changed = if recorded.content_known_unchanged(&target.sha, latest_differs) {
            false
        } else {
            let app = self.read_app(&source, &locator, &target.sha).await?;
            self.state.last_applied_hash.as_deref() != Some(app.content_hash.as_str())
        };

        let wanted = match (&spec.app_name, &locator) {
            (Some(name), _) => name.trim().to_owned(),
            (None, AppLocator::ByName(name)) => name.clone(),
            (None, AppLocator::Path(_)) => self
                .read_app(&source, &locator, &target.sha)
                .await?
                .git_app_name
                .clone(),
        };

        let holder = if needs_name_check(owned.as_ref().map(|o| o.name.as_str()), &wanted) {
            self.name_holder(&wanted, owned.as_ref()).await?
        } else {
            None
        };

        Ok(Observation {
            source,
            locator,
            applied,
            target,
            wanted,
            owned,
            owned_vanished,
            holder,
            content_changed,
        })
    }

    /// The facts the pure decision is made on.
    pub(super) fn facts<'s>(&'s self, seen: &'s Observation) -> Facts<'s> {
        let spec = self.req.spec;
        let recorded_app = self.state.app.as_ref();
        Facts {
            wanted_name: &seen.wanted,
            editable: spec.editable,
            adopt_existing: spec.adopt_existing,
            force_pull: self.req.force_pull,
            owned: seen.owned.as_ref(),
            owned_vanished: seen.owned_vanished,
            recorded_updated_at: recorded_app.and_then(|a| a.updated_at.as_deref()),
            recorded_fingerprint: recorded_app.and_then(|a| a.edit_fingerprint.as_deref()),
            release: spec.release,
            name_holder: seen.holder.as_ref(),
            target_sha: &seen.target.sha,
            content_changed: seen.content_changed,
        }
    }

    /// Whether the app's files differ between two commits; on any doubt, says they do.
    pub(super) async fn app_changed(
        &self,
        spec: &SourceSpec,
        locator: &AppLocator,
        a: &str,
        b: &str,
    ) -> bool {
        match self
            .source
            .app_changed_between(&spec.url, &self.req.git_credentials, locator, a, b)
            .await
        {
            Ok(changed) => changed,
            Err(e) => {
                debug!(error = %e, "could not compare commits; reading the app instead");
                true
            }
        }
    }

    pub(super) async fn read_app(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        sha: &str,
    ) -> Result<Arc<AppSource>, SyncError> {
        if let Some(app) = &self.app
            && app.commit.sha == sha
        {
            return Ok(app.clone());
        }
        let app = Arc::new(
            self.source
                .read_app(&spec.url, &self.req.git_credentials, sha, locator)
                .await?,
        );
        self.app = Some(app.clone());
        Ok(app)
    }

    /// When the app at the target commit is the app ToolJet holds now (by
    /// [`crate::diff::same_app`]: ids and timestamps an export regenerates do not count), the
    /// bundle's content hash. Any doubt (unreadable bundle, failed export) is `None`: the caller
    /// keeps refusing.
    pub(super) async fn target_is_live(
        &mut self,
        seen: &Observation,
        app: &ObservedApp,
    ) -> Option<String> {
        let bundle = self
            .read_app(&seen.source, &seen.locator, &seen.target.sha)
            .await
            .ok()?;
        let live = match self.tj.export_app(&app.id, None).await {
            Ok(live) => live,
            Err(e) => {
                debug!(error = %e, "could not export the app to compare it with the new commit");
                return None;
            }
        };
        crate::diff::same_app(&bundle.bundle, &live)
            .ok()
            .filter(|same| *same)
            .map(|_| bundle.content_hash.clone())
    }

    /// The owned app as ToolJet shows it now; `(None, true)` when ToolJet no longer has it.
    pub(super) async fn observe_owned(&self) -> Result<(Option<ObservedApp>, bool), SyncError> {
        let Some(app) = &self.state.app else {
            return Ok((None, false));
        };
        match self.tj.get_app(&app.id).await {
            Ok(details) => Ok((Some(observed(&details)), false)),
            Err(ToolJetError::NotFound { .. }) => Ok((None, true)),
            Err(e) => Err(e.into()),
        }
    }

    /// An app that is not ours holding `name`.
    pub(super) async fn name_holder(
        &self,
        name: &str,
        owned: Option<&ObservedApp>,
    ) -> Result<Option<ObservedApp>, SyncError> {
        let pending = self.state.pending_app.as_ref().map(|p| p.id.as_str());
        Ok(self
            .tj
            .find_apps_by_name(name)
            .await?
            .into_iter()
            .find(|a| {
                Some(a.id.as_str()) != owned.map(|o| o.id.as_str())
                    && Some(a.id.as_str()) != pending
            })
            .map(|a| observed_summary(&a)))
    }
}
