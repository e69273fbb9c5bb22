//! Import: one bundle into ToolJet under a temporary name, with the data sources it needs created
//! first, the result checked against the bundle, and the imported version released.

use tracing::{info, warn};

use super::datasources::{self, bundle_query_count, versions_and_sources};
use super::engine::{Mode, Run};
use super::error::SyncError;
use super::outcome::Action;
use super::verify;
use crate::api::{DataSourceAction, DataSourceStatus, PendingApp};
use crate::source::{AppLocator, AppSource, SourceSpec};
use crate::tooljet::{AppDetails, Family, ToolJetError};

impl Run<'_, '_> {
    /// Imports the target under a temporary name, checkpoints it as pending, releases it.
    /// `None` in plan mode (the steps are recorded, nothing is written).
    pub(super) async fn import_pending(
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

    /// Before an import: creates the bundle's data sources that the workspace lacks (global, by
    /// name and kind, non-secret options only), so that the import links to them and creates
    /// none (on 2.x an import-created one would be deleted with the app). Records in status
    /// what was created and what was already there.
    pub(super) async fn prepare_data_sources(&mut self, app: &AppSource) -> Result<(), SyncError> {
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
    pub(super) async fn record_data_sources(&mut self, mut report: Vec<DataSourceStatus>) {
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
    pub(super) async fn free_linked_data_sources(
        &mut self,
        details: &AppDetails,
    ) -> Result<(), SyncError> {
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

    /// After an import: the stored app (as `POST /v2/resources/export` shows it, on both
    /// families) holds the bundle's pages, each page's components and the queries, and every
    /// query's data source (other than the static built-ins) exists in the workspace. Skipped,
    /// with a warning, when the credentials cannot export or list data sources (the external
    /// API token).
    pub(super) async fn verify_import(
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

    /// Releases the imported app's editing version (verified by the client); returns its id.
    pub(super) async fn release(&self, details: &AppDetails) -> Result<String, SyncError> {
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
}
