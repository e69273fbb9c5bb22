//! Recover: finish or clean up what an interrupted run left (a pending app, an app moved aside,
//! temporary apps), and the deletions every path shares.

use tracing::info;

use super::convert::{app_status, observed};
use super::datasources::versions_and_sources;
use super::engine::{Mode, Run};
use super::error::SyncError;
use super::names::{ImportKey, NAME_PREFIX};
use super::outcome::Action;
use crate::tooljet::{AppSummary, Family, ToolJetClient, ToolJetError};

impl Run<'_, '_> {
    /// Finishes or cleans up what an interrupted run left: a pending app that already took the
    /// real name, an old app moved aside, temporary apps.
    pub(super) async fn recover(&mut self) -> Result<(), SyncError> {
        let key = &self.req.key;
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
}

/// This AppImport's leftovers in ToolJet, found by the tag in their names. Every name the engine
/// invents starts with [`NAME_PREFIX`], so one listing of those serves every AppImport of the
/// instance: the client shares it (within its reuse window, and never across one of its own app
/// writes), and in steady state it holds nothing, so it is one request per window. While more
/// temporary names exist than one answer holds (a busy pass), each AppImport lists its own tag.
pub(super) async fn leftovers(
    tj: &ToolJetClient,
    key: &ImportKey,
) -> Result<Vec<AppSummary>, SyncError> {
    let owned = |a: &AppSummary| key.owns_name(&a.name);
    Ok(match tj.list_apps_matching_shared(NAME_PREFIX).await? {
        Some(all) => all.iter().filter(|a| owned(a)).cloned().collect(),
        None => tj
            .list_apps_matching(&key.tag())
            .await?
            .into_iter()
            .filter(owned)
            .collect(),
    })
}

pub(super) async fn delete_if_present(tj: &ToolJetClient, id: &str) -> Result<(), SyncError> {
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
