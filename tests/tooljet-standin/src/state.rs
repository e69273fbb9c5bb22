//! In-memory ToolJet state and the rules ToolJet enforces on it (contract §3, §4).

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::Flavour;
use crate::error::ApiError;

/// Exact messages ToolJet answers with; clients match on them.
pub const MSG_NAME_TAKEN: &str = "This app name is already taken.";
/// What ToolJet answers for a taken slug (2.27.1, 409; the contract's "This slug is already
/// taken." was not seen).
pub const MSG_SLUG_TAKEN: &str = "This app slug is already taken.";
/// What `PUT /apps/:id` answers for a name over 50 characters (a validation error: a list).
pub const MSG_NAME_TOO_LONG: &str = "Maximum length has been reached.";
pub const MSG_TOO_NEW: &str = "Apps built on later versions of ToolJet cannot be imported";
pub const MAX_APP_NAME: usize = 50;
pub const PAGE_SIZE: usize = 9;

/// One app version as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSnapshot {
    pub id: String,
    pub name: String,
    pub updated_at: String,
}

/// A copy of one app, for tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSnapshot {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub app_type: String,
    pub workspace_id: String,
    pub current_version_id: Option<String>,
    pub editing_version_id: String,
    pub versions: Vec<VersionSnapshot>,
    pub created_at: String,
    pub updated_at: String,
    pub is_public: bool,
    pub is_maintenance_on: bool,
    /// The `appV2` definition with ToolJet's fresh ids substituted in.
    pub definition: Value,
    /// The import's `app[i].definition` exactly as it arrived (the request's bytes), to check
    /// that a client sends what git holds.
    pub received_definition: String,
}

/// A workspace data source (`data_sources` row with its options), for tests to inspect.
///
/// Only user data sources live here (`type:"default"`); the static per-version built-ins
/// (runjsdefault, …) stay inside each app's definition, as ToolJet lists them nowhere.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSourceSnapshot {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// `global`, or `local` for a row created through the API without `scope` (hidden in lists).
    pub scope: String,
    /// On 2.27 a data source created by an import belongs to the importing version and is
    /// deleted with it (config-api.md §4.2); `None` for API-created ones and on 3.x.
    pub app_version_id: Option<String>,
    pub workspace_id: String,
    /// The options in the list shape: `{value, encrypted:false}`, or for secrets
    /// `{credential_id, encrypted:true}` (the stand-in keeps no secret value).
    pub options: serde_json::Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

impl AppSnapshot {
    /// The queries of the app's definition (`dataQueries`), as ToolJet keeps them.
    pub fn query_values(&self) -> &[Value] {
        self.definition
            .get("dataQueries")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The app's queries as `(name, data source id)`, in definition order.
    pub fn queries(&self) -> Vec<(String, Option<String>)> {
        self.definition
            .get("dataQueries")
            .and_then(Value::as_array)
            .map(|qs| {
                qs.iter()
                    .map(|q| {
                        (
                            q.get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            query_source(q).map(str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct Constant {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// environment id -> value
    pub values: HashMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub id: String,
    pub name: &'static str,
    pub priority: u32,
}

#[derive(Debug)]
pub struct State {
    pub workspace_id: String,
    pub server_version: String,
    pub email: String,
    pub password: String,
    pub admin_api_key: Option<String>,
    pub external_token: Option<String>,
    /// session token -> workspace id
    pub sessions: HashMap<String, String>,
    pub apps: Vec<AppSnapshot>,
    pub environments: Vec<Environment>,
    pub constants: Vec<Constant>,
    pub data_sources: Vec<DataSourceSnapshot>,
    /// credential id -> secret value (ToolJet's `credentials` table; orphans are kept).
    pub credentials: HashMap<String, String>,
    /// kind -> the database a data source of that kind reaches (a test knob).
    pub connection_targets: HashMap<String, crate::config::ConnectionTarget>,
    /// A fault knob: every connection test and query connection fails with this message.
    pub connection_failure: Option<String>,
    /// data source id -> the pooled connection queries use (config-api.md §3.6).
    pub pools: HashMap<String, crate::config::Pool>,
    pub flavour: Flavour,
    /// What 3.x's `GET /api/metadata` answers as `instance_id`.
    pub instance_id: String,
    /// A fault knob: the next import stores its app without this part of the bundle.
    pub import_damage: Option<ImportDamage>,
    /// A fault knob: the next rename to this name answers success and changes nothing.
    pub ignore_rename_to: Option<String>,
    /// A fault knob: the next rename to this name also clears the app's release.
    pub unrelease_on_rename_to: Option<String>,
    last_timestamp: jiff::Timestamp,
}

/// Part of a bundle an import can lose while still answering success (a fault knob: a bug or
/// a crash inside ToolJet's import service). Damage applies to the editing version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportDamage {
    /// The last page keeps none of its components.
    LastPageComponents,
    /// The last page is not stored, nor its components.
    LastPage,
    /// The last query is not stored.
    LastQuery,
    /// The last query points at a data source that does not exist.
    DanglingDataSource,
}

/// Where a name is being checked: ToolJet validates import and rename differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCheck {
    Import,
    Rename,
}

impl State {
    pub fn new(
        workspace_id: String,
        server_version: String,
        email: String,
        password: String,
        admin_api_key: Option<String>,
        external_token: Option<String>,
        flavour: Flavour,
    ) -> Self {
        // 2.27.1 CE has one environment, production (C1); 3.x has three, in CE too.
        let names: &[(&'static str, u32)] = match flavour {
            Flavour::V2_27 => &[("production", 3)],
            Flavour::V3 => &[("development", 1), ("staging", 2), ("production", 3)],
        };
        let environments = names
            .iter()
            .copied()
            .map(|(name, priority)| Environment {
                id: new_id(),
                name,
                priority,
            })
            .collect();
        State {
            workspace_id,
            server_version,
            email,
            password,
            admin_api_key,
            external_token,
            sessions: HashMap::new(),
            apps: Vec::new(),
            environments,
            constants: Vec::new(),
            data_sources: Vec::new(),
            credentials: HashMap::new(),
            connection_targets: HashMap::new(),
            connection_failure: None,
            pools: HashMap::new(),
            flavour,
            instance_id: new_id(),
            import_damage: None,
            ignore_rename_to: None,
            unrelease_on_rename_to: None,
            last_timestamp: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    /// A strictly increasing timestamp in ToolJet's format, so that every
    /// change moves `updated_at` even within one millisecond.
    pub fn now(&mut self) -> String {
        let mut now = jiff::Timestamp::now();
        let min = self.last_timestamp + jiff::SignedDuration::from_millis(1);
        if now < min {
            now = min;
        }
        // Truncate to milliseconds, which is what ToolJet (Postgres via JSON) shows.
        let ms = now.as_millisecond();
        now = jiff::Timestamp::from_millisecond(ms).unwrap_or(now);
        self.last_timestamp = now;
        now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub fn app_mut(&mut self, workspace: &str, id: &str) -> Result<&mut AppSnapshot, ApiError> {
        self.apps
            .iter_mut()
            .find(|a| a.id == id && a.workspace_id == workspace)
            .ok_or_else(|| ApiError::not_found("App not found"))
    }

    pub fn app(&self, workspace: &str, id: &str) -> Result<&AppSnapshot, ApiError> {
        self.apps
            .iter()
            .find(|a| a.id == id && a.workspace_id == workspace)
            .ok_or_else(|| ApiError::not_found("App not found"))
    }

    /// Checks a new app name; `except` is the app being renamed. Returns the name to store.
    ///
    /// Rename (`PUT`, both flavours): trimmed, at most 50 characters (a validation error), a
    /// taken name is 409. Import on 3.x: trimmed, at most 50 (400), a taken name is 400 (the
    /// pre-check). Import on 2.27.1: kept verbatim, any length, a taken name is 409 (the
    /// database constraint). Uniqueness is case-sensitive everywhere.
    pub fn check_name(
        &self,
        workspace: &str,
        app_type: &str,
        name: &str,
        except: Option<&str>,
        check: NameCheck,
    ) -> Result<String, ApiError> {
        let legacy_import = check == NameCheck::Import && self.flavour == Flavour::V2_27;
        let name = if legacy_import { name } else { name.trim() };
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("App name can not be empty"));
        }
        if !legacy_import && name.chars().count() > MAX_APP_NAME {
            return Err(match check {
                NameCheck::Rename => ApiError::validation(MSG_NAME_TOO_LONG),
                NameCheck::Import => {
                    ApiError::bad_request("App name can not be longer than 50 characters")
                }
            });
        }
        let taken = self.apps.iter().any(|a| {
            a.workspace_id == workspace
                && a.app_type == app_type
                && a.name == name
                && Some(a.id.as_str()) != except
        });
        if taken {
            return Err(
                if check == NameCheck::Import && self.flavour == Flavour::V3 {
                    ApiError::bad_request(MSG_NAME_TAKEN)
                } else {
                    ApiError::conflict(MSG_NAME_TAKEN)
                },
            );
        }
        Ok(name.to_string())
    }

    pub fn check_slug(&self, workspace: &str, slug: &str, except: &str) -> Result<(), ApiError> {
        let valid = !slug.is_empty()
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ApiError::bad_request(
                "Slug can only contain lowercase letters, numbers and hyphens",
            ));
        }
        let taken = self
            .apps
            .iter()
            .any(|a| a.workspace_id == workspace && a.slug == slug && a.id != except);
        if taken {
            return Err(ApiError::conflict(MSG_SLUG_TAKEN));
        }
        Ok(())
    }

    /// Refuses a bundle made by a newer ToolJet than this server.
    /// 2.27.1 has no such check: it imports anything.
    pub fn check_version(&self, bundle_version: Option<&str>) -> Result<(), ApiError> {
        if self.flavour == Flavour::V2_27 {
            return Ok(());
        }
        // Old bundles carry no version: ToolJet accepts them.
        let Some(bundle_version) = bundle_version else {
            return Ok(());
        };
        let (Some(bundle), Some(server)) = (
            leading_version(bundle_version),
            leading_version(&self.server_version),
        ) else {
            return Err(ApiError::bad_request("Invalid tooljet_version"));
        };
        if bundle > server {
            return Err(ApiError::bad_request(MSG_TOO_NEW));
        }
        Ok(())
    }

    /// Imports one `appV2` definition under `name`, with fresh ids everywhere.
    pub fn import_app(
        &mut self,
        workspace: &str,
        definition: &Value,
        name: &str,
    ) -> Result<AppSnapshot, ApiError> {
        let app_v2 = definition.get("appV2").unwrap_or(definition);
        let Some(old_id) = app_v2.get("id").and_then(Value::as_str) else {
            return Err(ApiError::bad_request("Invalid app definition: missing id"));
        };
        let app_type = app_v2
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("front-end")
            .to_string();
        let name = self.check_name(workspace, &app_type, name, None, NameCheck::Import)?;

        // ToolJet re-keys every entity on import; re-keying the app and its
        // versions is what the operator can observe.
        let new_app_id = new_id();
        let mut replacements = vec![(old_id.to_string(), new_app_id.clone())];
        let old_versions: Vec<(String, String)> = app_v2
            .get("appVersions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| {
                        Some((
                            v.get("id")?.as_str()?.to_string(),
                            v.get("name")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let editing_old = app_v2
            .pointer("/editingVersion/id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut versions = Vec::new();
        let now = self.now();
        for (old, vname) in &old_versions {
            let new = new_id();
            replacements.push((old.clone(), new.clone()));
            versions.push(VersionSnapshot {
                id: new,
                name: vname.clone(),
                updated_at: now.clone(),
            });
        }
        if versions.is_empty() {
            let vname = app_v2
                .pointer("/editingVersion/name")
                .and_then(Value::as_str)
                .unwrap_or("v1")
                .to_string();
            let new = new_id();
            if let Some(old) = &editing_old {
                replacements.push((old.clone(), new.clone()));
            }
            versions.push(VersionSnapshot {
                id: new,
                name: vname,
                updated_at: now.clone(),
            });
        }
        let editing_new = editing_old
            .and_then(|old| {
                replacements
                    .iter()
                    .find(|(o, _)| *o == old)
                    .map(|(_, n)| n.clone())
            })
            .unwrap_or_else(|| versions[versions.len() - 1].id.clone());

        // Bind the bundle's user data sources to workspace ones (config-api.md §4.1): the same
        // id, else the same name + kind, else a new global one (on 2.27 owned by the importing
        // version). Queries follow through the id replacement below.
        let created =
            self.bind_data_sources(workspace, app_v2, &editing_new, &now, &mut replacements);

        let mut text = app_v2.to_string();
        // Longest first, so an id that contains another is replaced whole.
        replacements.sort_by_key(|(old, _)| std::cmp::Reverse(old.len()));
        for (old, new) in &replacements {
            text = text.replace(old.as_str(), new.as_str());
        }
        let mut def: Value = serde_json::from_str(&text)
            .map_err(|_| ApiError::bad_request("Invalid app definition"))?;
        self.data_sources.extend(created);
        if let Some(obj) = def.as_object_mut() {
            obj.insert("name".into(), json!(name));
            obj.insert("slug".into(), json!(new_app_id));
            obj.insert("organizationId".into(), json!(workspace));
            obj.insert("currentVersionId".into(), Value::Null);
            obj.insert("updatedAt".into(), json!(now));
            obj.insert("createdAt".into(), json!(now));
        }
        let app = AppSnapshot {
            // ToolJet generates the slug from the id.
            slug: new_app_id.clone(),
            id: new_app_id,
            name,
            app_type,
            workspace_id: workspace.to_string(),
            current_version_id: None,
            editing_version_id: editing_new,
            versions,
            created_at: now.clone(),
            updated_at: now,
            is_public: app_v2
                .get("isPublic")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            is_maintenance_on: false,
            definition: def,
            received_definition: definition.to_string(),
        };
        self.apps.push(app.clone());
        Ok(app)
    }
}

impl State {
    /// Chooses the workspace data source for each user data source of a bundle; returns the
    /// ones to create and pushes `(bundle id, chosen id)` onto `replacements`.
    fn bind_data_sources(
        &self,
        workspace: &str,
        app_v2: &Value,
        version_id: &str,
        now: &str,
        replacements: &mut Vec<(String, String)>,
    ) -> Vec<DataSourceSnapshot> {
        let mut created: Vec<DataSourceSnapshot> = Vec::new();
        let sources = app_v2
            .get("dataSources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for ds in &sources {
            let field = |k: &str| ds.get(k).and_then(Value::as_str).unwrap_or_default();
            let (old_id, name, kind) = (field("id"), field("name"), field("kind"));
            if matches!(field("type"), "static" | "sample") || old_id.is_empty() {
                continue;
            }
            let usable = |d: &&DataSourceSnapshot| {
                d.workspace_id == workspace && d.scope == "global" && d.kind == kind
            };
            let chosen = self
                .data_sources
                .iter()
                .chain(created.iter())
                .filter(usable)
                .find(|d| d.id == old_id)
                .or_else(|| {
                    self.data_sources
                        .iter()
                        .chain(created.iter())
                        .filter(usable)
                        .find(|d| d.name == name)
                })
                .map(|d| d.id.clone());
            let id = match chosen {
                Some(id) => id,
                None => {
                    let id = new_id();
                    created.push(DataSourceSnapshot {
                        id: id.clone(),
                        name: name.to_string(),
                        kind: kind.to_string(),
                        scope: "global".into(),
                        app_version_id: (self.flavour == Flavour::V2_27)
                            .then(|| version_id.to_string()),
                        workspace_id: workspace.to_string(),
                        options: imported_options(app_v2, old_id),
                        created_at: now.to_string(),
                        updated_at: now.to_string(),
                    });
                    id
                }
            };
            if id != old_id {
                replacements.push((old_id.to_string(), id));
            }
        }
        created
    }

    /// Deletes data sources and, as `ON DELETE CASCADE` does, every query using them in every
    /// app (config-api.md §3.5).
    pub fn delete_data_sources(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        self.data_sources.retain(|d| !ids.contains(&d.id));
        for app in &mut self.apps {
            if let Some(queries) = app
                .definition
                .get_mut("dataQueries")
                .and_then(Value::as_array_mut)
            {
                queries.retain(|q| query_source(q).is_none_or(|id| !ids.iter().any(|x| x == id)));
            }
        }
    }

    /// Deletes an app. On 2.27 the data sources its versions created go with it, and with them
    /// every query using them in every app (config-api.md §4.2, R4).
    pub fn delete_app(&mut self, id: &str) {
        let versions: Vec<String> = self
            .apps
            .iter()
            .filter(|a| a.id == id)
            .flat_map(|a| a.versions.iter().map(|v| v.id.clone()))
            .collect();
        self.apps.retain(|a| a.id != id);
        if self.flavour == Flavour::V2_27 {
            let owned: Vec<String> = self
                .data_sources
                .iter()
                .filter(|d| {
                    d.app_version_id
                        .as_ref()
                        .is_some_and(|v| versions.contains(v))
                })
                .map(|d| d.id.clone())
                .collect();
            self.delete_data_sources(&owned);
        }
    }

    /// The kind of the data source `id` as seen from `app`: a workspace one, or a static one of
    /// the app's definition.
    pub fn source_kind(&self, app: &AppSnapshot, id: &str) -> Option<String> {
        if let Some(d) = self.data_sources.iter().find(|d| d.id == id) {
            return Some(d.kind.clone());
        }
        app.definition
            .get("dataSources")
            .and_then(Value::as_array)?
            .iter()
            .find(|d| d.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|d| d.get("kind").and_then(Value::as_str))
            .map(str::to_string)
    }
}

/// Applies an [`ImportDamage`] to an app as stored.
pub fn damage(app: &mut AppSnapshot, damage: ImportDamage) {
    let editing = app.editing_version_id.clone();
    let of_editing = |v: &Value| {
        v.get("appVersionId")
            .and_then(Value::as_str)
            .is_none_or(|x| x == editing)
    };
    let def = &mut app.definition;
    let last_page = def
        .get("pages")
        .and_then(Value::as_array)
        .and_then(|ps| ps.iter().rev().find(|p| of_editing(p)))
        .and_then(|p| p.get("id").and_then(Value::as_str))
        .map(str::to_string);
    let last_query = def
        .get("dataQueries")
        .and_then(Value::as_array)
        .and_then(|qs| qs.iter().rposition(of_editing));
    match damage {
        ImportDamage::LastPageComponents | ImportDamage::LastPage => {
            let Some(page) = last_page else { return };
            if let Some(cs) = def.get_mut("components").and_then(Value::as_array_mut) {
                cs.retain(|c| c.get("pageId").and_then(Value::as_str) != Some(page.as_str()));
            }
            if damage == ImportDamage::LastPage
                && let Some(ps) = def.get_mut("pages").and_then(Value::as_array_mut)
            {
                ps.retain(|p| p.get("id").and_then(Value::as_str) != Some(page.as_str()));
            }
        }
        ImportDamage::LastQuery => {
            if let (Some(i), Some(qs)) = (
                last_query,
                def.get_mut("dataQueries").and_then(Value::as_array_mut),
            ) {
                qs.remove(i);
            }
        }
        ImportDamage::DanglingDataSource => {
            if let Some(q) = last_query.and_then(|i| def.pointer_mut(&format!("/dataQueries/{i}")))
            {
                q["dataSourceId"] = json!(new_id());
            }
        }
    }
}

/// The data source a query of a definition uses.
pub fn query_source(q: &Value) -> Option<&str> {
    q.get("dataSourceId")
        .or_else(|| q.get("data_source_id"))
        .and_then(Value::as_str)
}

/// The options an import gives a data source it creates: the bundle's non-secret options (of
/// the first environment that has them), every secret an empty credential (R2, R2d).
fn imported_options(app_v2: &Value, bundle_id: &str) -> serde_json::Map<String, Value> {
    // Every secret is an empty credential (R2d); a credential id with no stored value reads as "".
    let found = app_v2
        .get("dataSourceOptions")
        .and_then(Value::as_array)
        .and_then(|rows| {
            rows.iter().find(|r| {
                r.get("dataSourceId").and_then(Value::as_str) == Some(bundle_id)
                    && r.get("options").is_some_and(Value::is_object)
            })
        })
        .and_then(|r| r.get("options").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    found
        .into_iter()
        .map(|(k, v)| {
            let secret = v.get("encrypted").and_then(Value::as_bool) == Some(true);
            let v = if secret {
                json!({"credential_id": new_id(), "encrypted": true})
            } else {
                json!({"value": v.get("value").cloned().unwrap_or(Value::Null), "encrypted": false})
            };
            (k, v)
        })
        .collect()
}

pub fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// The leading `x.y.z` of a ToolJet version string such as
/// `2.50.5.5.29`, `2.38.0-ee2.15.28-cloud2.3.12` or `3.0.15-cloud-lts`.
pub fn leading_version(v: &str) -> Option<(u64, u64, u64)> {
    let head: String = v
        .trim()
        .trim_start_matches('v')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = head.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(
            new_id(),
            "3.5.11".into(),
            "a@b.c".into(),
            "pw".into(),
            None,
            None,
            Flavour::V3,
        )
    }

    #[test]
    fn leading_version_parses_tooljet_suffixes() {
        assert_eq!(leading_version("2.50.5.5.29"), Some((2, 50, 5)));
        assert_eq!(
            leading_version("2.38.0-ee2.15.28-cloud2.3.12"),
            Some((2, 38, 0))
        );
        assert_eq!(leading_version("3.0.15-cloud-lts"), Some((3, 0, 15)));
        assert_eq!(leading_version("3.5.11-ee-lts"), Some((3, 5, 11)));
        assert_eq!(leading_version("garbage"), None);
    }

    #[test]
    fn version_check_refuses_newer_bundles_only() {
        let s = state();
        assert!(s.check_version(Some("3.5.11-ee-lts")).is_ok());
        assert!(s.check_version(Some("3.0.15-cloud-lts")).is_ok());
        let err = s.check_version(Some("3.5.12")).unwrap_err();
        assert_eq!(err.message, MSG_TOO_NEW);
        assert!(s.check_version(Some("4.0.0")).is_err());
    }

    #[test]
    fn names_are_trimmed_limited_and_unique_per_type() {
        let mut s = state();
        let ws = s.workspace_id.clone();
        let def = json!({"appV2": {"id": "old", "type": "front-end", "appVersions": [{"id": "v-old", "name": "v1"}], "editingVersion": {"id": "v-old", "name": "v1"}}});
        let app = s.import_app(&ws, &def, "  Sales  ").unwrap();
        assert_eq!(app.name, "Sales");
        assert_ne!(app.id, "old");
        assert_ne!(app.editing_version_id, "v-old");
        assert_eq!(
            app.definition["editingVersion"]["id"],
            json!(app.editing_version_id)
        );
        let err = s.import_app(&ws, &def, "Sales").unwrap_err();
        assert_eq!(err.message, MSG_NAME_TAKEN);
        // Another type may share the name.
        let module = json!({"appV2": {"id": "m", "type": "module"}});
        assert!(s.import_app(&ws, &module, "Sales").is_ok());
        assert!(s.import_app(&ws, &def, &"x".repeat(51)).is_err());
        assert!(s.import_app(&ws, &def, &"x".repeat(50)).is_ok());
    }

    #[test]
    fn slugs_are_unique_and_lowercase() {
        let mut s = state();
        let ws = s.workspace_id.clone();
        let def = json!({"appV2": {"id": "old"}});
        let a = s.import_app(&ws, &def, "A").unwrap();
        let b = s.import_app(&ws, &def, "B").unwrap();
        assert!(s.check_slug(&ws, "Upper", &a.id).is_err());
        assert!(s.check_slug(&ws, "with space", &a.id).is_err());
        assert_eq!(
            s.check_slug(&ws, &b.slug, &a.id).unwrap_err().message,
            MSG_SLUG_TAKEN
        );
        assert!(s.check_slug(&ws, &a.slug, &a.id).is_ok());
        assert!(s.check_slug(&ws, "sales-2", &a.id).is_ok());
    }

    #[test]
    fn timestamps_strictly_increase() {
        let mut s = state();
        let a = s.now();
        let b = s.now();
        assert!(b > a, "{b} > {a}");
    }
}
