//! The engine: observe git and ToolJet, decide ([`super::plan`]), then write in a crash-safe order.
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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tracing::{debug, info, warn};

use super::datasources::{self, bundle_query_count, versions_and_sources};
use super::error::SyncError;
use super::names::ImportKey;
use super::outcome::{Action, Drift, Report, SyncOutcome};
use super::plan::{Decision, Facts, ObservedApp, Refusal, ReplaceReason, choose_target, decide};
use super::verify;
use crate::api::{
    AppImportSpec, AppImportStatus, AppLocation, AppStatus, CommitInfo, DataSourceAction,
    DataSourceStatus, HistoryEntry, PendingApp, RefKind, ToolJetInstanceSpec,
};
use crate::source::{self, AppLocator, AppSource, Credentials, GitRef, SourceCache, SourceSpec};
use crate::tooljet::{AppDetails, AppSummary, AppUpdate, Family, ToolJetClient, ToolJetError};

/// Whether a run writes (`sync`) or only says what it would do (`plan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Plan,
}

/// Saves the state between the steps of a run, so a crash never forgets an app it created.
/// The controller patches status; the command line rewrites its state file.
pub trait Checkpoint: Send + Sync {
    fn save<'a>(&'a self, state: &'a AppImportStatus) -> BoxFuture<'a, Result<(), String>>;
}

/// For callers that keep state only at the end of a run (and for `plan`).
pub struct NoCheckpoint;

impl Checkpoint for NoCheckpoint {
    fn save<'a>(&'a self, _state: &'a AppImportStatus) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// One AppImport to sync, with everything resolved by the caller.
pub struct SyncRequest<'a> {
    pub key: &'a ImportKey,
    pub spec: &'a AppImportSpec,
    pub instance: &'a ToolJetInstanceSpec,
    /// Changes whenever the spec changes (metadata.generation, or a hash of the spec).
    pub generation: Option<i64>,
    /// The `gitops.tooljet.dev/approve` annotation.
    pub approve: Option<&'a str>,
    /// The `gitops.tooljet.dev/force-pull` annotation.
    pub force_pull: Option<&'a str>,
    pub git_credentials: &'a Credentials,
    /// What the last run left (status, or the state file).
    pub state: AppImportStatus,
}

/// The sync engine. Cheap to share: one per process, over one git cache.
pub struct Engine {
    source: SourceCache,
}

impl Engine {
    pub fn new(source: SourceCache) -> Self {
        Self { source }
    }

    pub fn source(&self) -> &SourceCache {
        &self.source
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
        state: &AppImportStatus,
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

/// What a successful run reports on the Ready condition.
struct Verdict {
    reason: &'static str,
    message: String,
}

struct Run<'r, 'a> {
    source: &'r SourceCache,
    req: &'r SyncRequest<'a>,
    tj: &'r ToolJetClient,
    mode: Mode,
    checkpoint: &'r dyn Checkpoint,
    state: AppImportStatus,
    actions: Vec<Action>,
    /// The app read at the target commit, kept so a run reads it at most once.
    app: Option<Arc<AppSource>>,
    drift: Option<Drift>,
    update_available: Option<CommitInfo>,
    force_pushed: bool,
}

impl Run<'_, '_> {
    async fn run(&mut self) -> Result<Verdict, SyncError> {
        let spec = self.req.spec;
        let (source_spec, locator) = source_of(spec)?;
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
            .resolve(&source_spec, self.req.git_credentials, known.as_deref())
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

        let spec_unchanged = self.req.generation.is_some()
            && self.req.generation == self.state.last_applied_generation;
        let applied = self
            .state
            .last_applied_commit
            .as_ref()
            .map(|c| c.sha.clone());
        let latest_differs = match &applied {
            None => true,
            Some(a) if *a == latest.sha => false,
            Some(a) if spec_unchanged => {
                self.app_changed(&source_spec, &locator, a, &latest.sha)
                    .await
            }
            Some(_) => true,
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

        let known_same = spec_unchanged
            && self.state.last_applied_hash.is_some()
            && applied.is_some()
            && (applied.as_deref() == Some(target.sha.as_str()) || !latest_differs);
        let content_changed = if known_same {
            false
        } else {
            let app = self.read_app(&source_spec, &locator, &target.sha).await?;
            self.state.last_applied_hash.as_deref() != Some(app.content_hash.as_str())
        };

        let wanted = match (&spec.app_name, &locator) {
            (Some(name), _) => name.trim().to_owned(),
            (None, AppLocator::ByName(name)) => name.clone(),
            (None, AppLocator::Path(_)) => self
                .read_app(&source_spec, &locator, &target.sha)
                .await?
                .git_app_name
                .clone(),
        };

        let holder = match &owned {
            Some(o) if o.name == wanted => None,
            _ => self.name_holder(&wanted, owned.as_ref()).await?,
        };

        let decision = decide(&Facts {
            wanted_name: &wanted,
            editable: spec.editable,
            adopt_existing: spec.adopt_existing,
            force_pull: self.req.force_pull,
            owned: owned.as_ref(),
            owned_vanished,
            recorded_updated_at: self
                .state
                .app
                .as_ref()
                .and_then(|a| a.updated_at.as_deref()),
            recorded_fingerprint: self
                .state
                .app
                .as_ref()
                .and_then(|a| a.edit_fingerprint.as_deref()),
            release: spec.release,
            name_holder: holder.as_ref(),
            target_sha: &target.sha,
            content_changed,
        });
        debug!(import = %self.req.key, ?decision, target = %target.sha, "decided");

        let short = CommitInfo::short_sha_of(&target.sha);
        match decision {
            Decision::Nothing { local_edits_kept } => {
                // A status from before the edit fingerprint: record it now that the app is
                // known unedited, so that from now on every edit is seen (2.x query edits too).
                if let Some(app) = owned.as_ref().filter(|_| !local_edits_kept)
                    && self.mode == Mode::Apply
                    && self
                        .state
                        .app
                        .as_ref()
                        .is_some_and(|a| a.edit_fingerprint.is_none())
                {
                    self.state.app = Some(app_status(app));
                }
                let mut message = format!("app {wanted:?} is up to date with commit {short}");
                if local_edits_kept {
                    message.push_str("; edits made in ToolJet are kept (editable app)");
                }
                if let Some(next) = &self.update_available {
                    message.push_str(&format!(
                        "; commit {} is available: approve it with the annotation gitops.tooljet.dev/approve: \"{}\"",
                        next.short_sha, next.sha
                    ));
                }
                Ok(Verdict {
                    reason: "UpToDate",
                    message,
                })
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
                self.create(&source_spec, &locator, &wanted, &target.sha)
                    .await?;
                self.correct_drift();
                Ok(Verdict {
                    reason: if recreate { "Recreated" } else { "Imported" },
                    message: format!(
                        "{} app {wanted:?} from commit {short}",
                        self.verb("imported", "would import")
                    ),
                })
            }
            Decision::Replace { old, why } => {
                if why == ReplaceReason::DriftRestore {
                    self.drift = Some(Drift {
                        message: format!(
                            "app {:?} was edited in ToolJet; restoring the version of commit {short} from git",
                            old.name
                        ),
                        corrected: false,
                    });
                }
                if why == ReplaceReason::Adopt {
                    // Own the adopted app first, so a crash mid-swap is recovered like any update.
                    self.state.app = Some(app_status(&old));
                    self.save().await?;
                }
                self.replace(&source_spec, &locator, &old, &wanted, &target.sha)
                    .await?;
                self.correct_drift();
                let (reason, what) = match why {
                    ReplaceReason::NewCommit => ("Updated", "updated"),
                    ReplaceReason::ForcePull => {
                        ("ForcePulled", "overwrote the edits made in ToolJet of")
                    }
                    ReplaceReason::DriftRestore => ("DriftCorrected", "restored"),
                    ReplaceReason::Adopt => ("Adopted", "took over"),
                };
                Ok(Verdict {
                    reason,
                    message: format!("{what} app {wanted:?} from commit {short}"),
                })
            }
            Decision::Rename { app } => {
                self.rename(&app, &wanted).await?;
                Ok(Verdict {
                    reason: "Renamed",
                    message: format!(
                        "{} app {:?} to {wanted:?}",
                        self.verb("renamed", "would rename"),
                        app.name
                    ),
                })
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
                if let Some(hash) = self
                    .target_is_live(&source_spec, &locator, &app, &target.sha)
                    .await
                {
                    if self.mode == Mode::Apply {
                        let commit = if latest.sha == target.sha {
                            latest.clone()
                        } else {
                            self.commit_info_for(&target.sha)
                        };
                        self.state.push_history(HistoryEntry {
                            sha: commit.sha.clone(),
                            applied_at: Time(Timestamp::now()),
                        });
                        self.state.last_applied_commit = Some(commit);
                        self.state.last_applied_hash = Some(hash);
                        self.state.app = Some(app_status(&app));
                    }
                    return Ok(Verdict {
                        reason: "InSyncWithToolJet",
                        message: format!(
                            "commit {short} holds the edits made in ToolJet to app {:?} (pushed from ToolJet); {} it as applied without writing to ToolJet",
                            app.name,
                            self.verb("recorded", "would record")
                        ),
                    });
                }
                Err(SyncError::LocalChanges {
                    name: app.name,
                    applied: applied.unwrap_or_default(),
                    target: target.sha,
                })
            }
        }
    }

    fn finish(mut self, result: Result<Verdict, SyncError>) -> SyncOutcome {
        self.state.observed_generation = self.req.generation;
        let report = match result {
            Ok(verdict) => {
                if self.mode == Mode::Apply {
                    self.state.last_sync_time = Some(Time(Timestamp::now()));
                    self.state.last_applied_generation = self.req.generation;
                }
                Report {
                    ready: true,
                    reason: verdict.reason.to_owned(),
                    message: verdict.message,
                    stalled: false,
                    retryable: false,
                    drift: self.drift,
                    update_available: self.update_available,
                    force_pushed: self.force_pushed,
                }
            }
            Err(e) => {
                let retryable = e.is_retryable();
                warn!(import = %self.req.key, reason = e.reason(), error = %e, "sync failed");
                Report {
                    ready: false,
                    reason: e.reason().to_owned(),
                    message: e.to_string(),
                    stalled: !retryable,
                    retryable,
                    drift: self.drift,
                    update_available: self.update_available,
                    force_pushed: self.force_pushed,
                }
            }
        };
        SyncOutcome {
            state: self.state,
            actions: self.actions,
            report,
        }
    }

    /// The verb of a verdict: what was done, or in `plan`, what would be done.
    fn verb(&self, done: &'static str, planned: &'static str) -> &'static str {
        match self.mode {
            Mode::Apply => done,
            Mode::Plan => planned,
        }
    }

    fn correct_drift(&mut self) {
        if let Some(d) = &mut self.drift {
            d.corrected = self.mode == Mode::Apply;
        }
    }

    async fn save(&self) -> Result<(), SyncError> {
        if self.mode == Mode::Plan {
            return Ok(());
        }
        self.checkpoint
            .save(&self.state)
            .await
            .map_err(SyncError::Checkpoint)
    }

    /// Whether the app's files differ between two commits; on any doubt, says they do.
    async fn app_changed(&self, spec: &SourceSpec, locator: &AppLocator, a: &str, b: &str) -> bool {
        match self
            .source
            .app_changed_between(&spec.url, self.req.git_credentials, locator, a, b)
            .await
        {
            Ok(changed) => changed,
            Err(e) => {
                debug!(error = %e, "could not compare commits; reading the app instead");
                true
            }
        }
    }

    async fn read_app(
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
                .read_app(&spec.url, self.req.git_credentials, sha, locator)
                .await?,
        );
        self.app = Some(app.clone());
        Ok(app)
    }

    /// The owned app as ToolJet shows it now; `(None, true)` when ToolJet no longer has it.
    async fn observe_owned(&self) -> Result<(Option<ObservedApp>, bool), SyncError> {
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
    async fn name_holder(
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

    /// Finishes or cleans up what an interrupted run left: a pending app that already took the
    /// real name, an old app moved aside, temporary apps.
    async fn recover(&mut self) -> Result<(), SyncError> {
        let key = self.req.key;
        if let Some(pending) = self.state.pending_app.clone() {
            match self.tj.get_app(&pending.id).await {
                Ok(details) if !key.owns_name(&details.name) => {
                    info!(import = %key, app = %details.id, "adopting the app an interrupted run created");
                    self.record_owned(&details, &pending);
                    self.save().await?;
                }
                Ok(_) => {}
                Err(ToolJetError::NotFound { .. }) => self.state.pending_app = None,
                Err(e) => return Err(e.into()),
            }
        }

        let found = leftovers(self.tj, key).await?;
        if found.is_empty() {
            return Ok(());
        }
        let aside_name = key.aside_name();
        let mut consumed: Option<String> = None;
        if let Some(aside) = found.iter().find(|a| a.name == aside_name) {
            let owned = self.state.app.clone().filter(|o| o.id == aside.id);
            let pending = self
                .state
                .pending_app
                .clone()
                .filter(|p| found.iter().any(|a| a.id == p.id));
            match (owned, pending) {
                (Some(old), Some(new)) => {
                    // Stopped between "move aside" and "take the name": finish the swap.
                    self.take_name(&new.id, &old.name, &old.slug).await?;
                    if self.mode == Mode::Apply {
                        let details = self.tj.get_app(&new.id).await?;
                        self.record_owned(&details, &new);
                        self.save().await?;
                    }
                    self.delete(&aside.id, &aside.name).await?;
                    consumed = Some(new.id);
                }
                (Some(old), None) => {
                    // The new app is gone: put the old one back under its name.
                    self.write(Action::RestoreAside {
                        id: old.id.clone(),
                        name: old.name.clone(),
                    })
                    .await?;
                    // Moving the app aside and back moved its updated_at. An editable app swapped
                    // only without edits or under force-pull, so recording the new value never
                    // hides an edit, and keeps the next decision from a false LocalChanges. (A
                    // non-editable app keeps the old value: at worst one needless re-import.)
                    if self.req.spec.editable && self.mode == Mode::Apply {
                        let details = self.tj.get_app(&old.id).await?;
                        self.state.app = Some(app_status(&observed(&details)));
                    }
                }
                (None, _) => {
                    // The swap finished; only the old app's deletion is missing.
                    self.delete(&aside.id, &aside.name).await?;
                }
            }
        }
        for temp in found
            .iter()
            .filter(|a| a.name != aside_name && Some(&a.id) != consumed.as_ref())
        {
            self.delete(&temp.id, &temp.name).await?;
            if self
                .state
                .pending_app
                .as_ref()
                .is_some_and(|p| p.id == temp.id)
            {
                self.state.pending_app = None;
            }
        }
        self.save().await
    }

    /// First import: under a temporary name, then the real one.
    async fn create(
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
    async fn replace(
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
    async fn verify_queries_kept(
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

    /// Before an import: creates the bundle's data sources that the workspace lacks (global, by
    /// name and kind, non-secret options only), so that the import links to them and creates
    /// none (on 2.x an import-created one would be deleted with the app). Records in status
    /// what was created and what was already there.
    async fn prepare_data_sources(&mut self, app: &AppSource) -> Result<(), SyncError> {
        let wanted = datasources::bundle_sources(&app.bundle);
        if wanted.is_empty() {
            self.state.data_sources.clear();
            return Ok(());
        }
        let existing = match self.tj.data_sources().await {
            Ok(list) => list,
            Err(ToolJetError::Unsupported { .. }) => {
                warn!(import = %self.req.key, "the external API token cannot list data sources; the import binds them itself");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut report = Vec::new();
        for src in wanted {
            let found = existing
                .iter()
                .find(|d| d.id == src.id && d.kind == src.kind)
                .or_else(|| {
                    existing
                        .iter()
                        .find(|d| d.name == src.name && d.kind == src.kind)
                });
            let (id, action) = match found {
                Some(d) => {
                    // Created by an earlier run (one that stopped before its import, say).
                    let ours = self.state.data_sources.iter().any(|s| {
                        s.id.as_deref() == Some(d.id.as_str())
                            && s.action == DataSourceAction::Created
                    });
                    let action = if ours {
                        DataSourceAction::Created
                    } else {
                        DataSourceAction::Linked
                    };
                    (Some(d.id.clone()), action)
                }
                None => {
                    self.actions.push(Action::CreateDataSource {
                        name: src.name.clone(),
                        kind: src.kind.clone(),
                    });
                    let id = if self.mode == Mode::Apply {
                        let created = self
                            .tj
                            .create_data_source(&src.name, &src.kind, &src.options)
                            .await;
                        let id = match created {
                            Ok(id) => id,
                            Err(e) => {
                                // Keep what this run created on record (as created by us).
                                self.record_data_sources(report).await;
                                return Err(e.into());
                            }
                        };
                        info!(import = %self.req.key, data_source = %src.name, kind = %src.kind, id = %id,
                            "created a data source the bundle uses (global, without secrets)");
                        Some(id)
                    } else {
                        None
                    };
                    (id, DataSourceAction::Created)
                }
            };
            report.push(DataSourceStatus {
                name: src.name,
                kind: src.kind,
                id,
                action,
                configured: None,
            });
        }
        self.state.data_sources = report;
        self.save().await
    }

    /// Saves the data sources handled so far by a run that stops, keeping the earlier record
    /// of the others.
    async fn record_data_sources(&mut self, mut report: Vec<DataSourceStatus>) {
        for earlier in std::mem::take(&mut self.state.data_sources) {
            if !report
                .iter()
                .any(|r| r.name == earlier.name && r.kind == earlier.kind)
            {
                report.push(earlier);
            }
        }
        self.state.data_sources = report;
        if let Err(e) = self.save().await {
            warn!(error = %e, "could not save the data sources created so far");
        }
    }

    /// After an import on 2.x: frees every data source the new app's queries use that belongs
    /// to an app version (one an import created, before the operator or by hand), so that no
    /// app deletion can take it and its queries away.
    async fn free_linked_data_sources(&mut self, details: &AppDetails) -> Result<(), SyncError> {
        if self.state.data_sources.is_empty() || !matches!(self.tj.family().await, Ok(Family::V2)) {
            return Ok(());
        }
        let (_, used) = versions_and_sources(details);
        for ds in self.tj.data_sources().await? {
            if ds.app_version_id.is_some() && used.contains(&ds.id) {
                self.tj.make_data_source_global(&ds.id).await?;
                info!(import = %self.req.key, data_source = %ds.name, id = %ds.id,
                    "freed a data source from the app version that created it");
                self.actions.push(Action::FreeDataSource {
                    id: ds.id,
                    name: ds.name,
                });
            }
        }
        Ok(())
    }

    /// Puts the old app back under its name and slug after a failed swap; false when that failed
    /// (the next run will). The rename moves the app's `updated_at`: when the app had no edits
    /// made in ToolJet, the new value is recorded, so the next run does not take the operator's
    /// own rename for an edit (an editable app would be refused with LocalChanges).
    async fn put_back(&mut self, old: &ObservedApp) -> bool {
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
    fn plan_swap(&mut self, old: &ObservedApp, wanted: &str) {
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

    /// Imports the target under a temporary name, checkpoints it as pending, releases it.
    /// `None` in plan mode (the steps are recorded, nothing is written).
    async fn import_pending(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        sha: &str,
    ) -> Result<Option<PendingApp>, SyncError> {
        let app = self.read_app(spec, locator, sha).await?;
        // ToolJet 2.x imports a bundle of a later ToolJet without a word: refuse it here, on
        // both families, before any write (and in `plan` too).
        self.tj.check_bundle_version(&app.bundle_bytes).await?;
        self.prepare_data_sources(&app).await?;
        let temp = self.req.key.temp_name(sha);
        self.actions.push(Action::Import {
            name: temp.clone(),
            commit: sha.to_owned(),
        });
        if self.mode == Mode::Plan {
            if self.req.spec.release {
                self.actions.push(Action::Release {
                    name: temp,
                    version_id: "(imported version)".into(),
                });
            }
            return Ok(None);
        }
        let imported = self.tj.import_bundle(&app.bundle_bytes, &temp).await?;
        let details = self.tj.get_app(&imported.id).await?;
        let pending = PendingApp {
            id: details.id.clone(),
            name: details.name.clone(),
            slug: details.slug.clone(),
            commit_sha: Some(sha.to_owned()),
            content_hash: Some(app.content_hash.clone()),
        };
        self.state.pending_app = Some(pending.clone());
        self.save().await?;
        self.free_linked_data_sources(&details).await?;
        let expected = bundle_query_count(&app.bundle);
        if let Some(found) = details.data_queries.as_ref().map(Vec::len)
            && found < expected
        {
            // The import did not bind every query: nothing is swapped; the next run retries.
            self.drop_pending(&pending).await;
            return Err(SyncError::QueriesMissing {
                app: details.name.clone(),
                expected,
                found,
            });
        }
        if let Err(e) = self.verify_import(&app.bundle, &details).await {
            self.drop_pending(&pending).await;
            return Err(e);
        }
        if self.req.spec.release {
            match self.release(&details).await {
                Ok(version_id) => self.actions.push(Action::Release {
                    name: temp,
                    version_id,
                }),
                Err(e) => {
                    // An unreleased temporary app is of no use: remove it now, so a release that
                    // keeps failing does not leave one behind (and import again) on every retry.
                    self.drop_pending(&pending).await;
                    return Err(e);
                }
            }
        }
        Ok(Some(pending))
    }

    /// After an import: the stored app (as `POST /v2/resources/export` shows it, on both
    /// families) holds the bundle's pages, each page's components and the queries, and every
    /// query's data source (other than the static built-ins) exists in the workspace. Skipped,
    /// with a warning, when the credentials cannot export or list data sources (the external
    /// API token).
    async fn verify_import(
        &self,
        bundle: &serde_json::Value,
        details: &AppDetails,
    ) -> Result<(), SyncError> {
        let exported = match self.tj.export_app(&details.id, None).await {
            Ok(exported) => exported,
            Err(ToolJetError::Unsupported { .. }) => {
                warn!(import = %self.req.key, "these ToolJet credentials cannot export an app; the imported app's pages and components are not checked");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let found = verify::shape(&exported);
        let mut missing = verify::missing(&verify::shape(bundle), &found);
        match self.tj.data_sources().await {
            Ok(workspace) => missing.extend(verify::dangling(&found, &workspace)),
            Err(ToolJetError::Unsupported { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if missing.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 5;
        let more = missing.len().saturating_sub(SHOWN);
        missing.truncate(SHOWN);
        let mut text = missing.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        warn!(import = %self.req.key, app = %details.name, missing = %text, "the import is incomplete");
        Err(SyncError::ImportIncomplete {
            app: details.name.clone(),
            missing: text,
        })
    }

    /// After the app took its real name: it holds the name, and is released when the spec says
    /// so. The app is read again (by id) and recorded as the owned one only when it passes.
    async fn verify_named(&self, new: &PendingApp, wanted: &str) -> Result<AppDetails, SyncError> {
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

    /// Releases the imported app's editing version (verified by the client); returns its id.
    async fn release(&self, details: &AppDetails) -> Result<String, SyncError> {
        let version_id = details
            .editing_version
            .as_ref()
            .map(|v| v.id.clone())
            .ok_or_else(|| {
                SyncError::ToolJet(ToolJetError::InvalidResponse {
                    route: "GET /api/apps/:id",
                    detail: "the imported app has no editing version to release".into(),
                })
            })?;
        self.tj.release_app(&details.id, &version_id).await?;
        Ok(version_id)
    }

    /// Gives an app its real name and slug.
    async fn take_name(&mut self, id: &str, name: &str, slug: &str) -> Result<(), SyncError> {
        self.write(Action::TakeName {
            id: id.to_owned(),
            name: name.to_owned(),
            slug: slug.to_owned(),
        })
        .await
    }

    fn record_owned(&mut self, details: &AppDetails, from: &PendingApp) {
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
    /// When the app at `sha` is the same app as ToolJet holds now (by [`crate::diff::same_app`]:
    /// ids and timestamps an export regenerates do not count), the bundle's content hash. Any
    /// doubt (unreadable bundle, failed export) is `None`: the caller keeps refusing.
    async fn target_is_live(
        &mut self,
        spec: &SourceSpec,
        locator: &AppLocator,
        app: &ObservedApp,
        sha: &str,
    ) -> Option<String> {
        let bundle = self.read_app(spec, locator, sha).await.ok()?;
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

    fn commit_info_for(&self, sha: &str) -> CommitInfo {
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
    async fn drop_pending(&mut self, new: &PendingApp) {
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

    async fn rename(&mut self, app: &ObservedApp, wanted: &str) -> Result<(), SyncError> {
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

    async fn delete(&mut self, id: &str, name: &str) -> Result<(), SyncError> {
        self.write(Action::Delete {
            id: id.to_owned(),
            name: name.to_owned(),
        })
        .await
    }

    /// Performs one write (skipped in plan mode) and records it.
    async fn write(&mut self, action: Action) -> Result<(), SyncError> {
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
                | Action::FreeDataSource { .. } => {
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

/// This AppImport's leftovers in ToolJet, found by the tag in their names.
async fn leftovers(tj: &ToolJetClient, key: &ImportKey) -> Result<Vec<AppSummary>, SyncError> {
    Ok(tj
        .list_apps_matching(&key.search_key())
        .await?
        .into_iter()
        .filter(|a| key.owns_name(&a.name))
        .collect())
}

async fn delete_if_present(tj: &ToolJetClient, id: &str) -> Result<(), SyncError> {
    free_owned_data_sources(tj, id).await?;
    match tj.delete_app(id).await {
        Ok(()) | Err(ToolJetError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// On 2.x, before an app is deleted: frees the data sources its versions created, which ToolJet
/// would delete with it, and with them every query using them in every app. Nothing on 3.x.
async fn free_owned_data_sources(tj: &ToolJetClient, app_id: &str) -> Result<(), SyncError> {
    match tj.family().await {
        Ok(Family::V2) => {}
        Ok(Family::V3) | Err(ToolJetError::Unsupported { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let details = match tj.get_app(app_id).await {
        Ok(details) => details,
        Err(ToolJetError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let (versions, _) = versions_and_sources(&details);
    for ds in tj.data_sources().await? {
        if ds
            .app_version_id
            .as_ref()
            .is_some_and(|v| versions.contains(v))
        {
            tj.make_data_source_global(&ds.id).await?;
            info!(app = %app_id, data_source = %ds.name, id = %ds.id,
                "freed a data source from the app about to be deleted, which would take it and its queries along");
        }
    }
    Ok(())
}

/// The git side of a spec; refuses specs the CRD would refuse (files read by `sync -f` did not
/// pass an API server).
fn source_of(spec: &AppImportSpec) -> Result<(SourceSpec, AppLocator), SyncError> {
    let git_ref = match spec.source.git_ref.kind() {
        Some(RefKind::Branch(b)) => GitRef::Branch(b.to_owned()),
        Some(RefKind::Tag(t)) => GitRef::Tag(t.to_owned()),
        Some(RefKind::Commit(c)) => GitRef::Commit(c.to_owned()),
        None => {
            return Err(SyncError::InvalidSpec(
                "source.ref must set exactly one of branch, tag or commit".into(),
            ));
        }
    };
    let locator = match spec.source.app_location() {
        Some(AppLocation::GitApp(name)) => AppLocator::ByName(name.to_owned()),
        Some(AppLocation::BundlePath(path)) => AppLocator::Path(path.to_owned()),
        None => {
            return Err(SyncError::InvalidSpec(
                "source must set exactly one of app or path".into(),
            ));
        }
    };
    Ok((
        SourceSpec {
            url: spec.source.url.clone(),
            git_ref,
        },
        locator,
    ))
}

fn locator_name(locator: &AppLocator) -> String {
    match locator {
        AppLocator::ByName(n) | AppLocator::Path(n) => n.clone(),
    }
}

/// The later of the app's and its editing version's `updated_at` (ISO-8601 strings of one
/// server compare in time order).
fn edit_marker(details: &AppDetails) -> String {
    let version = details
        .editing_version
        .as_ref()
        .and_then(|v| v.updated_at.as_deref())
        .unwrap_or_default();
    details.updated_at.as_str().max(version).to_owned()
}

fn observed(details: &AppDetails) -> ObservedApp {
    ObservedApp {
        id: details.id.clone(),
        name: details.name.clone(),
        slug: details.slug.clone(),
        updated_at: edit_marker(details),
        version_id: details.editing_version.as_ref().map(|v| v.id.clone()),
        released_version_id: details.current_version_id.clone(),
        fingerprint: Some(edit_fingerprint(details)),
    }
}

/// A hash of what an edit made in the ToolJet editor changes in `GET /api/apps/:id`, on both
/// families: the app's name, slug and settings; the editing version (id and `updated_at`,
/// which pages, components, events and version settings move); and each query with its own
/// `updated_at` (on 2.x, saving or adding a query moves no other timestamp). The app's own
/// `updated_at` and `current_version_id` are left out: a release by hand moves them, and is
/// not an edit (whether it matters with `release: true` is decided apart). 128 bits in hex.
fn edit_fingerprint(details: &AppDetails) -> String {
    use sha2::{Digest, Sha256};
    let mut queries: Vec<_> = details
        .data_queries
        .iter()
        .flatten()
        .map(|q| (&q.id, &q.name, &q.data_source_id, &q.updated_at))
        .collect();
    queries.sort();
    let seen = serde_json::json!({
        "name": details.name,
        "slug": details.slug,
        "is_public": details.is_public,
        "is_maintenance_on": details.is_maintenance_on,
        "icon": details.icon,
        "editing_version": details.editing_version.as_ref().map(|v| (&v.id, &v.updated_at)),
        "queries": queries,
    });
    let digest = Sha256::digest(seen.to_string().as_bytes());
    hex::encode(&digest[..16])
}

fn observed_summary(app: &AppSummary) -> ObservedApp {
    ObservedApp {
        id: app.id.clone(),
        name: app.name.clone(),
        slug: app.slug.clone(),
        updated_at: app.updated_at.clone().unwrap_or_default(),
        version_id: app.current_version_id.clone(),
        released_version_id: app.current_version_id.clone(),
        fingerprint: None,
    }
}

fn app_status(app: &ObservedApp) -> AppStatus {
    AppStatus {
        id: app.id.clone(),
        name: app.name.clone(),
        slug: app.slug.clone(),
        updated_at: Some(app.updated_at.clone()),
        version_id: app.version_id.clone(),
        edit_fingerprint: app.fingerprint.clone(),
    }
}

/// A git commit as status shows it.
pub fn commit_status(c: &source::CommitInfo) -> CommitInfo {
    CommitInfo {
        sha: c.sha.clone(),
        short_sha: CommitInfo::short_sha_of(&c.sha),
        message: c.message.clone(),
        author: if c.author_email.is_empty() {
            c.author.clone()
        } else {
            format!("{} <{}>", c.author, c.author_email)
        },
        date: Some(Time(c.date)),
    }
}
