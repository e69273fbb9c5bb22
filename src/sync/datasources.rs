//! The data sources around an import (issue 13, item 3; `tooljet-real/config-api.md` §4).
//!
//! ToolJet binds each user data source of a bundle to a workspace one with the same id, else the
//! same name and kind, else it creates one; on 2.x a data source an import created belongs to
//! the importing app version and is deleted with it, and deleting a data source deletes every
//! query using it, in every app. The update swap deletes the old app, so on 2.x it could take
//! the new app's and other apps' queries with it. Hence:
//! - before every import, the engine creates the bundle's data sources that the workspace lacks
//!   (global, by name and kind, non-secret options only), so the import links to them and
//!   creates none;
//! - on 2.x, after an import and before deleting any app, every data source tied to an app
//!   version the engine touches is freed (`/scope`), so no app deletion can cascade.
//!
//! The engine never deletes a data source.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::tooljet::{AppDetails, DataSourceOption};

/// A user data source named by a bundle (`appV2.dataSources[]`, not static).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleSource {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// Its non-secret options in the bundle's default environment, in ToolJet's write shape.
    pub options: Vec<DataSourceOption>,
}

fn app_v2(bundle: &Value) -> Option<&Value> {
    let def = bundle.pointer("/app/0/definition")?;
    Some(def.get("appV2").unwrap_or(def))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The bundle's user data sources: every `appV2.dataSources[]` entry that is neither a static
/// built-in (runjsdefault, …) nor a 3.x sample, once per name and kind.
pub fn bundle_sources(bundle: &Value) -> Vec<BundleSource> {
    let Some(app) = app_v2(bundle) else {
        return Vec::new();
    };
    let default_env = app
        .get("appEnvironments")
        .and_then(Value::as_array)
        .and_then(|envs| {
            envs.iter()
                .find(|e| e.get("isDefault").and_then(Value::as_bool) == Some(true))
        })
        .map(|e| text(e, "id").to_owned());
    let rows: Vec<&Value> = app
        .get("dataSourceOptions")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let mut out: Vec<BundleSource> = Vec::new();
    for ds in app
        .get("dataSources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (id, name, kind) = (text(ds, "id"), text(ds, "name"), text(ds, "kind"));
        if matches!(text(ds, "type"), "static" | "sample") || name.is_empty() || kind.is_empty() {
            continue;
        }
        if out.iter().any(|s| s.name == name && s.kind == kind) {
            continue;
        }
        let mine: Vec<&&Value> = rows
            .iter()
            .filter(|r| {
                text(r, "dataSourceId") == id && r.get("options").is_some_and(Value::is_object)
            })
            .collect();
        let row = mine
            .iter()
            .find(|r| Some(text(r, "environmentId")) == default_env.as_deref())
            .or_else(|| mine.first());
        let options = row
            .and_then(|r| r.get("options").and_then(Value::as_object))
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.get("encrypted").and_then(Value::as_bool) != Some(true))
                    .filter_map(|(k, v)| {
                        Some(DataSourceOption {
                            key: k.clone(),
                            value: v.get("value")?.clone(),
                            encrypted: false,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(BundleSource {
            id: id.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            options,
        });
    }
    out
}

/// How many queries the bundle's editing version has (what the imported app must show).
pub fn bundle_query_count(bundle: &Value) -> usize {
    let Some(app) = app_v2(bundle) else {
        return 0;
    };
    let editing = app.pointer("/editingVersion/id").and_then(Value::as_str);
    app.get("dataQueries")
        .and_then(Value::as_array)
        .map(|qs| {
            qs.iter()
                .filter(
                    |q| match (q.get("appVersionId").and_then(Value::as_str), editing) {
                        (Some(v), Some(e)) => v == e,
                        _ => true,
                    },
                )
                .count()
        })
        .unwrap_or(0)
}

/// The app versions and data sources an app's deletion could take with it on 2.x.
pub fn versions_and_sources(details: &AppDetails) -> (BTreeSet<String>, BTreeSet<String>) {
    let versions = details
        .editing_version
        .iter()
        .map(|v| v.id.clone())
        .chain(details.current_version_id.iter().cloned())
        .collect();
    let sources = details
        .data_queries
        .iter()
        .flatten()
        .filter_map(|q| q.data_source_id.clone())
        .collect();
    (versions, sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_sources_with_non_secret_options_of_the_default_environment() {
        let bundle = json!({"app": [{"definition": {"appV2": {
            "editingVersion": {"id": "v"},
            "appEnvironments": [{"id": "dev", "isDefault": false}, {"id": "prod", "isDefault": true}],
            "dataSources": [
                {"id": "s", "name": "runjsdefault", "kind": "runjs", "type": "static"},
                {"id": "p", "name": "orders-db", "kind": "postgresql", "type": "default", "scope": "global"},
                {"id": "p2", "name": "orders-db", "kind": "postgresql", "type": "default"},
                {"id": "x", "name": "sample", "kind": "postgresql", "type": "sample"},
            ],
            "dataSourceOptions": [
                {"dataSourceId": "s", "environmentId": "prod", "options": null},
                {"dataSourceId": "p", "environmentId": "dev", "options": {"host": {"value": "dev-host", "encrypted": false}}},
                {"dataSourceId": "p", "environmentId": "prod", "options": {
                    "host": {"value": "prod-host", "encrypted": false},
                    "port": {"value": 5432, "encrypted": false},
                    "password": {"credential_id": "c", "encrypted": true}}},
            ],
            "dataQueries": [
                {"id": "q1", "appVersionId": "v"}, {"id": "q2", "appVersionId": "other"}, {"id": "q3"},
            ],
        }}}]});
        let sources = bundle_sources(&bundle);
        assert_eq!(sources.len(), 1, "{sources:?}");
        let s = &sources[0];
        assert_eq!(
            (s.id.as_str(), s.name.as_str(), s.kind.as_str()),
            ("p", "orders-db", "postgresql")
        );
        let keys: Vec<&str> = s.options.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["host", "port"], "no secret is ever sent");
        assert_eq!(s.options[0].value, json!("prod-host"));
        assert_eq!(s.options[1].value, json!(5432));
        assert!(s.options.iter().all(|o| !o.encrypted));
        assert_eq!(bundle_query_count(&bundle), 2);
        assert!(bundle_sources(&json!({"app": []})).is_empty());
    }
}
