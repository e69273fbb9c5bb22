//! Workspace constants, data-source options per environment, the connection test and the
//! connection pool, as `shared/tooljet-real/config-api.md` records them (2.27.1 verified, 3.x
//! from the source).
//!
//! The stand-in models CE: one option set and one value per constant for every environment
//! (2.27.1 CE has one environment; 3.x CE writes all three). Unlike ToolJet it keeps secret
//! values readable by tests ([`crate::StandIn::data_source_secret`]), in a credentials table
//! apart from the data sources, as ToolJet's `credentials` table is.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Flavour;
use crate::auth;
use crate::error::ApiError;
use crate::routes::{JsonBody, St, lock, only_on};
use crate::state::{Constant, DataSourceSnapshot, State, new_id};

type ApiResult = Result<Response, ApiError>;

/// ToolJet's messages for constants (2.27.1, K5–K34; 3.x from the source).
pub const MSG_CONSTANT_NAME: &str = "Constant name must start with a letter or underscore and contain only letters, numbers, and underscores";
pub const MSG_CONSTANT_EXISTS: &str = "Already exists!";
pub const MSG_CONSTANT_NOT_FOUND: &str = "Constant not found";
pub const MSG_CONSTANT_TYPE: &str = "Type must be either Global or Secret";
/// What 3.x shows for a Secret constant's value.
pub const MASK: &str = "********";
pub const MAX_VALUE: usize = 10_000;

/// What the connection test says of an unknown kind (D9).
const MSG_NOT_A_PLUGIN: &str = "server_1.default[kind] is not a constructor";

/// Plugins the stand-in can "connect" with; another kind fails as ToolJet's plugin lookup does.
const KNOWN_KINDS: &[&str] = &[
    "postgresql",
    "mysql",
    "mariadb",
    "mssql",
    "oracledb",
    "mongodb",
    "redis",
    "restapi",
    "graphql",
    "elasticsearch",
    "s3",
    "snowflake",
    "bigquery",
    "clickhouse",
    "dynamodb",
];

/// A copy of one constant with its stored value, for tests (ToolJet 3.x would mask Secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstantSnapshot {
    pub id: String,
    pub name: String,
    /// `Global` or `Secret` (always `Global` on 2.27, which drops `type`).
    pub kind: String,
    /// The value, the same in every environment (CE).
    pub value: String,
    pub updated_at: String,
}

/// A database the stand-in pretends to reach: a connection test or a query of a data source
/// of `kind` succeeds when every listed option resolves to the listed value.
#[derive(Debug, Clone, Default)]
pub struct ConnectionTarget {
    pub expected: BTreeMap<String, String>,
}

/// The connection a pooled plugin caches per data source (config-api.md §3.6): built from the
/// options as they resolved when it was made, kept until the options are written again.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The data source's `updated_at` when the connection was built.
    pub built_at: String,
    pub outcome: Result<BTreeMap<String, String>, String>,
}

fn message_list(messages: &[&str]) -> ApiError {
    ApiError::validation_list(messages.iter().map(|m| m.to_string()).collect())
}

fn not_uuid(id: &str) -> Option<ApiError> {
    uuid::Uuid::parse_str(id).is_err().then(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid input syntax for type uuid: \"{id}\""),
        )
    })
}

fn missing_environment(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "Could not find any entity of type \"AppEnvironment\" matching: {{\n    \"id\": \"{id}\"\n}}"
        ),
    )
}

fn missing_data_source(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "Could not find any entity of type \"DataSource\" matching: {{\n    \"id\": \"{id}\"\n}}"
        ),
    )
}

impl State {
    fn environment_known(&self, id: &str) -> bool {
        self.environments.iter().any(|e| e.id == id)
    }

    /// The longest constant name the create route accepts: 32 on 2.27.1 (K10), 50 on 3.x.
    fn max_constant_name(&self) -> usize {
        match self.flavour {
            Flavour::V2_27 => 32,
            Flavour::V3 => 50,
        }
    }

    /// A constant's value in the (CE: every) environment.
    fn constant_value(c: &Constant) -> &str {
        c.values.values().next().map_or("", String::as_str)
    }

    /// The constants as tests see them.
    pub fn constant_snapshots(&self) -> Vec<ConstantSnapshot> {
        self.constants
            .iter()
            .map(|c| ConstantSnapshot {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: c.kind.clone(),
                value: Self::constant_value(c).to_string(),
                updated_at: c.updated_at.clone(),
            })
            .collect()
    }

    /// Sets a constant's value as a person would in the dashboard (no `updated_at` of any data
    /// source moves). False when there is no such constant.
    pub fn set_constant_value(&mut self, name: &str, value: &str) -> bool {
        let Some(c) = self.constants.iter_mut().find(|c| c.name == name) else {
            return false;
        };
        for v in c.values.values_mut() {
            *v = value.to_string();
        }
        true
    }

    /// Replaces `{{constants.x}}` (and on 3.x `{{secrets.x}}`) with current values; 2.27 has no
    /// types, so `constants.` names any constant there.
    fn resolve_text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for c in &self.constants {
            let value = Self::constant_value(c);
            let prefix = match (self.flavour, c.kind.as_str()) {
                (Flavour::V3, "Secret") => "secrets",
                _ => "constants",
            };
            for pattern in [
                format!("{{{{{prefix}.{}}}}}", c.name),
                format!("{{{{ {prefix}.{} }}}}", c.name),
            ] {
                out = out.replace(&pattern, value);
            }
        }
        out
    }

    /// The options as a plugin sees them: credentials looked up, constants substituted, every
    /// value as text (a missing credential reads as empty).
    fn resolve_options(&self, options: &Map<String, Value>) -> BTreeMap<String, String> {
        options
            .iter()
            .map(|(k, v)| {
                let raw = match v.get("credential_id").and_then(Value::as_str) {
                    Some(id) => {
                        Value::String(self.credentials.get(id).cloned().unwrap_or_default())
                    }
                    None => v.get("value").cloned().unwrap_or(Value::Null),
                };
                let text = match raw {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), self.resolve_text(&text))
            })
            .collect()
    }

    /// What connecting with `resolved` options of `kind` gives: the options, or the plugin's
    /// message. Never echoes a value but the user name (as PostgreSQL does).
    fn connect(
        &self,
        kind: &str,
        resolved: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        if !KNOWN_KINDS.contains(&kind) {
            return Err(MSG_NOT_A_PLUGIN.to_string());
        }
        if let Some(message) = &self.connection_failure {
            return Err(message.clone());
        }
        let Some(target) = self.connection_targets.get(kind) else {
            return Ok(resolved.clone());
        };
        for (key, want) in &target.expected {
            let got = resolved.get(key).map_or("", String::as_str);
            if got == want {
                continue;
            }
            let user = resolved.get("username").map_or("", String::as_str);
            return Err(match key.as_str() {
                "password" if got.is_empty() => {
                    "SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string".into()
                }
                "password" => format!("password authentication failed for user \"{user}\""),
                "host" | "port" => format!(
                    "connect ECONNREFUSED {}:{}",
                    resolved.get("host").map_or("", String::as_str),
                    resolved.get("port").map_or("", String::as_str)
                ),
                other => {
                    format!("the server refused the connection: {other} is not what it expects")
                }
            });
        }
        Ok(resolved.clone())
    }

    /// A query of an app using data source `id`: a pooled connection, rebuilt only when the
    /// data source's options were written after it was built (config-api.md §3.6, X1–X14).
    pub fn connect_as_app(&mut self, id: &str) -> Option<Result<BTreeMap<String, String>, String>> {
        let d = self.data_sources.iter().find(|d| d.id == id)?;
        if let Some(pool) = self.pools.get(id)
            && pool.built_at >= d.updated_at
        {
            return Some(pool.outcome.clone());
        }
        let outcome = self.connect(&d.kind, &self.resolve_options(&d.options));
        let built_at = d.updated_at.clone();
        self.pools.insert(
            id.to_string(),
            Pool {
                built_at,
                outcome: outcome.clone(),
            },
        );
        Some(outcome)
    }

    /// Turns a write-shape option list into the stored list shape (config-api.md §3.3):
    /// a secret keeps its credential on 2.27 (value replaced when one is sent, kept when the
    /// value is absent or null); on 3.x CE every secret gets a new credential and an absent
    /// value becomes "". A key switched to encrypted gets a new credential; the old one is
    /// orphaned, not deleted (D18–D21).
    fn store_options(
        &mut self,
        previous: &Map<String, Value>,
        entries: &[Value],
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for entry in entries {
            let Some(key) = entry.get("key").and_then(Value::as_str) else {
                continue;
            };
            let value = entry.get("value").filter(|v| !v.is_null());
            if entry.get("encrypted").and_then(Value::as_bool) != Some(true) {
                out.insert(
                    key.to_string(),
                    json!({"value": value.cloned().unwrap_or(Value::Null), "encrypted": false}),
                );
                continue;
            }
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let existing = previous
                .get(key)
                .and_then(|v| v.get("credential_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let credential = match (self.flavour, existing) {
                (Flavour::V2_27, Some(id)) => {
                    if let Some(v) = value {
                        self.credentials.insert(id.clone(), text(v));
                    }
                    id
                }
                _ => {
                    let id = new_id();
                    self.credentials
                        .insert(id.clone(), value.map(text).unwrap_or_default());
                    id
                }
            };
            out.insert(
                key.to_string(),
                json!({"credential_id": credential, "encrypted": true}),
            );
        }
        out
    }

    /// Creates a data source's stored options from a create body (new credentials for secrets).
    pub fn options_for_create(&mut self, entries: &[Value]) -> Map<String, Value> {
        self.store_options(&Map::new(), entries)
    }
}

// ---- constants ------------------------------------------------------------------------------

fn constant_list_json(s: &State, c: &Constant) -> Value {
    let values: Vec<Value> = s
        .environments
        .iter()
        .filter_map(|e| {
            let v = c.values.get(&e.id)?;
            Some(match s.flavour {
                Flavour::V2_27 => json!({"environmentName": e.name, "value": v, "id": e.id}),
                Flavour::V3 => {
                    let shown = if c.kind == "Secret" && !v.is_empty() {
                        MASK
                    } else {
                        v
                    };
                    json!({"environmentName": e.name, "value": shown})
                }
            })
        })
        .collect();
    let mut out = json!({"id": c.id, "name": c.name, "values": values, "createdAt": c.created_at});
    if s.flavour == Flavour::V3 {
        out["type"] = json!(c.kind);
    }
    out
}

fn constant_entity_json(s: &State, c: &Constant) -> Value {
    json!({"constant": {
        "id": c.id, "constant_name": c.name, "organization_id": s.workspace_id,
        "created_at": c.created_at, "updated_at": c.updated_at,
    }})
}

/// `GET /api/organization-constants`: plain text on 2.27 (K3), Secrets masked on 3.x.
pub async fn list_constants(st: St, headers: HeaderMap) -> ApiResult {
    let s = lock(&st);
    auth::internal(&s, &headers)?;
    let list: Vec<Value> = s
        .constants
        .iter()
        .map(|c| constant_list_json(&s, c))
        .collect();
    Ok(Json(json!({ "constants": list })).into_response())
}

/// `GET /api/organization-constants/environment/:envId` (K4; unknown environment: empty, K36).
pub async fn constants_of_environment(
    st: St,
    headers: HeaderMap,
    Path(env): Path<String>,
) -> ApiResult {
    let s = lock(&st);
    auth::internal(&s, &headers)?;
    let list: Vec<Value> = s
        .constants
        .iter()
        .filter_map(|c| {
            let v = c.values.get(&env)?;
            Some(match s.flavour {
                Flavour::V2_27 => json!({"id": c.id, "name": c.name, "value": v}),
                Flavour::V3 => {
                    let shown = if c.kind == "Secret" && !v.is_empty() {
                        MASK
                    } else {
                        v
                    };
                    json!({"id": c.id, "name": c.name, "type": c.kind, "value": shown})
                }
            })
        })
        .collect();
    Ok(Json(json!({ "constants": list })).into_response())
}

fn check_constant_value(value: Option<&Value>, required: &[&str]) -> Result<String, ApiError> {
    match value {
        None | Some(Value::Null) => Err(message_list(required)),
        Some(Value::String(v)) if v.is_empty() => Err(message_list(&[
            "Constant value must be at least 1 character",
            "value should not be empty",
        ])),
        Some(Value::String(v)) if v.chars().count() > MAX_VALUE => Err(message_list(&[
            "Constant value must be less than 10000 characters",
        ])),
        Some(Value::String(v)) => Ok(v.clone()),
        Some(_) => Err(message_list(&["value must be a string"])),
    }
}

fn check_name_length(name: &str, max: usize) -> Result<(), ApiError> {
    if name.chars().count() > max {
        return Err(message_list(&[&format!(
            "Constant name must be less than {max} characters"
        )]));
    }
    Ok(())
}

/// `POST /api/organization-constants` `{constant_name, environments, value, type}`.
pub async fn create_constant(st: St, headers: HeaderMap, JsonBody(body): JsonBody) -> ApiResult {
    let mut s = lock(&st);
    auth::internal(&s, &headers)?;
    let name = body
        .get("constant_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let valid = {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !valid {
        return Err(message_list(&[MSG_CONSTANT_NAME]));
    }
    check_name_length(&name, s.max_constant_name())?;
    let value = check_constant_value(
        body.get("value"),
        &["value should not be empty", "value must be a string"],
    )?;
    let Some(environments) = body.get("environments").and_then(Value::as_array) else {
        return Err(message_list(&[
            "each value in environments should not be empty",
            "each value in environments must be a string",
        ]));
    };
    // 2.27.1 drops `type` (whitelisting pipe, K2); 3.x requires it.
    let kind = match s.flavour {
        Flavour::V2_27 => "Global".to_string(),
        Flavour::V3 => match body.get("type").and_then(Value::as_str) {
            Some(k @ ("Global" | "Secret")) => k.to_string(),
            _ => return Err(message_list(&[MSG_CONSTANT_TYPE])),
        },
    };
    for env in environments {
        let id = env.as_str().unwrap_or_default();
        if !s.environment_known(id) {
            return Err(missing_environment(id));
        }
    }
    if s.constants.iter().any(|c| c.name == name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            MSG_CONSTANT_EXISTS,
        ));
    }
    // CE: the value lands in every environment; `environments: []` leaves "" everywhere (K15).
    let stored = if environments.is_empty() {
        String::new()
    } else {
        value
    };
    let values = s
        .environments
        .iter()
        .map(|e| (e.id.clone(), stored.clone()))
        .collect();
    let now = s.now();
    let c = Constant {
        id: new_id(),
        name,
        kind,
        values,
        created_at: now.clone(),
        updated_at: now,
    };
    let out = constant_entity_json(&s, &c);
    s.constants.push(c);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `PATCH /api/organization-constants/:id` `{value, environment_id, constant_name?}`: no name
/// pattern check (K26), only the 32-character limit; a value-only change keeps `updated_at` (K21).
pub async fn update_constant(
    st: St,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    auth::internal(&s, &headers)?;
    if let Some(e) = not_uuid(&id) {
        return Err(e);
    }
    let value = check_constant_value(
        body.get("value"),
        &["value should not be empty", "value must be a string"],
    )?;
    let Some(env) = body.get("environment_id").and_then(Value::as_str) else {
        return Err(message_list(&[
            "environment_id should not be empty",
            "environment_id must be a string",
        ]));
    };
    let rename = body
        .get("constant_name")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(name) = &rename {
        check_name_length(name, 32)?;
    }
    if !s.constants.iter().any(|c| c.id == id) {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            MSG_CONSTANT_NOT_FOUND,
        ));
    }
    if !s.environment_known(env) {
        return Err(missing_environment(env));
    }
    if let Some(name) = &rename
        && s.constants.iter().any(|c| c.name == *name && c.id != id)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            MSG_CONSTANT_EXISTS,
        ));
    }
    let now = s.now();
    let Some(c) = s.constants.iter_mut().find(|c| c.id == id) else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            MSG_CONSTANT_NOT_FOUND,
        ));
    };
    for v in c.values.values_mut() {
        *v = value.clone();
    }
    if let Some(name) = rename
        && name != c.name
    {
        c.name = name;
        c.updated_at = now;
    }
    let c = c.clone();
    Ok(Json(constant_entity_json(&s, &c)).into_response())
}

/// `DELETE /api/organization-constants/:id[?environmentId=]`: 200 `{"statusCode":204}` (K20,
/// K32); with one environment (2.27) or without a multi-environment licence (3.x CE) the whole
/// constant goes.
pub async fn delete_constant(st: St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let mut s = lock(&st);
    auth::internal(&s, &headers)?;
    if let Some(e) = not_uuid(&id) {
        return Err(e);
    }
    let before = s.constants.len();
    s.constants.retain(|c| c.id != id);
    if s.constants.len() == before {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            MSG_CONSTANT_NOT_FOUND,
        ));
    }
    Ok(Json(json!({"statusCode": 204})).into_response())
}

/// 2.27 `GET /api/organization-constants/:app_slug` with no session: every constant in plain
/// text when the app is public, 403 otherwise (P2, P4). On 3.x this route needs a session.
pub async fn constants_of_app(st: St, headers: HeaderMap, Path(slug): Path<String>) -> ApiResult {
    let s = lock(&st);
    if s.flavour == Flavour::V3 {
        auth::internal(&s, &headers)?;
        let list: Vec<Value> = s
            .constants
            .iter()
            .map(|c| constant_list_json(&s, c))
            .collect();
        return Ok(Json(json!({ "constants": list })).into_response());
    }
    if !s.apps.iter().any(|a| a.slug == slug && a.is_public) {
        return Err(ApiError::forbidden("Forbidden resource"));
    }
    let list: Vec<Value> = s
        .constants
        .iter()
        .map(|c| constant_list_json(&s, c))
        .collect();
    Ok(Json(json!({ "constants": list })).into_response())
}

/// 3.x `GET /api/organization-constants/public/:app_slug`: Global constants only, of a public app.
pub async fn public_constants_v3(st: St, uri: Uri, Path(slug): Path<String>) -> ApiResult {
    let s = lock(&st);
    only_on(&s, Flavour::V3, "GET", &uri)?;
    if !s.apps.iter().any(|a| a.slug == slug && a.is_public) {
        return Err(ApiError::forbidden("Forbidden resource"));
    }
    let list: Vec<Value> = s
        .constants
        .iter()
        .filter(|c| c.kind == "Global")
        .map(|c| constant_list_json(&s, c))
        .collect();
    Ok(Json(json!({ "constants": list })).into_response())
}

// ---- data-source options ------------------------------------------------------------------

#[derive(Deserialize)]
pub struct EnvironmentQuery {
    /// snake_case on the update route (D22).
    environment_id: Option<String>,
}

fn update_options(s: &mut State, ws: &str, id: &str, env: Option<&str>, body: &Value) -> ApiResult {
    if let Some(env) = env
        && !s.environment_known(env)
    {
        return Err(missing_environment(env));
    }
    let Some(index) = s
        .data_sources
        .iter()
        .position(|d| d.id == id && d.workspace_id == ws)
    else {
        return Err(match s.flavour {
            Flavour::V2_27 => missing_data_source(id),
            Flavour::V3 => ApiError::not_found("Data source not found"),
        });
    };
    let previous = s.data_sources[index].options.clone();
    // A PUT replaces the whole set; without `options` it wipes them (D13, D25).
    let entries: Vec<Value> = body
        .get("options")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let options = s.store_options(&previous, &entries);
    let now = s.now();
    let d: &mut DataSourceSnapshot = &mut s.data_sources[index];
    d.options = options;
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        d.name = name.to_string();
    }
    d.updated_at = now;
    Ok(StatusCode::OK.into_response())
}

/// 2.27 `PUT /api/v2/data_sources/:id?environment_id=`.
pub async fn update_data_source_v2(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<EnvironmentQuery>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V2_27, "PUT", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    update_options(&mut s, &ws, &id, q.environment_id.as_deref(), &body)
}

/// 3.x `PUT /api/data-sources/:id?environment_id=`.
pub async fn update_data_source_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<EnvironmentQuery>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V3, "PUT", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    update_options(&mut s, &ws, &id, q.environment_id.as_deref(), &body)
}

/// 3.x `GET /api/data-sources/:id/environment/:envId`: one data source with that
/// environment's options (secrets as credential ids).
pub async fn data_source_of_environment_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path((id, env)): Path<(String, String)>,
) -> ApiResult {
    let s = lock(&st);
    only_on(&s, Flavour::V3, "GET", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    if !s.environment_known(&env) {
        return Err(missing_environment(&env));
    }
    let Some(d) = s
        .data_sources
        .iter()
        .find(|d| d.id == id && d.workspace_id == ws)
    else {
        return Err(ApiError::not_found("Data source not found"));
    };
    Ok(Json(crate::routes::data_source_json(d)).into_response())
}

/// The connection test on the body's options (list shape; credential ids resolved, constants
/// substituted). Always 201; `status` says the outcome (D3–D9).
fn test_connection(s: &State, body: &Value) -> Response {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let outcome = match body.get("options") {
        Some(Value::Object(options)) => s.connect(kind, &s.resolve_options(options)),
        // An array is not read: the plugin's defaults (a local server) are tried (D6).
        _ if KNOWN_KINDS.contains(&kind) => Err("connect ECONNREFUSED 127.0.0.1:5432".to_string()),
        _ => Err(MSG_NOT_A_PLUGIN.to_string()),
    };
    let body = match outcome {
        Ok(_) => json!({"status": "ok"}),
        Err(message) => json!({"status": "failed", "message": message}),
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

/// 2.27 `POST /api/data_sources/test_connection` `{kind, options, environment_id?}`.
pub async fn test_connection_v2(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let s = lock(&st);
    only_on(&s, Flavour::V2_27, "POST", &uri)?;
    auth::internal(&s, &headers)?;
    Ok(test_connection(&s, &body))
}

/// 3.x `POST /api/data-sources/:id/test-connection`: the id must be a data source of the
/// workspace; the test uses the body's options.
pub async fn test_connection_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let s = lock(&st);
    only_on(&s, Flavour::V3, "POST", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    if !s
        .data_sources
        .iter()
        .any(|d| d.id == id && d.workspace_id == ws)
    {
        return Err(ApiError::not_found("Data source not found"));
    }
    Ok(test_connection(&s, &body))
}
