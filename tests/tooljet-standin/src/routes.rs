//! The HTTP routes of contract §2 and §3, with ToolJet's casing and messages.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Flavour;
use crate::auth::{self, SESSION_COOKIE};
use crate::config;
use crate::error::ApiError;
use crate::state::{self, AppSnapshot, DataSourceSnapshot, NameCheck, PAGE_SIZE, State, new_id};

/// ToolJet's body-parser limit.
pub const BODY_LIMIT: usize = 50 * 1024 * 1024;

pub type Shared = Arc<Mutex<State>>;
type ApiResult = Result<Response, ApiError>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A body that could not be read. Over the limit, ToolJet's body parser throws and the exception
/// filter answers 500 (2.27-vs-contract.md D15), not 413.
fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "request entity too large",
        )
    } else {
        ApiError::new(status, text)
    }
}

/// A JSON body whose rejections (bad JSON, too large) are NestJS-shaped.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(JsonRejection::BytesRejection(r)) => Err(body_error(r.status(), r.body_text())),
            Err(r) => Err(ApiError::new(r.status(), r.body_text())),
        }
    }
}

/// A JSON body kept with its bytes, for routes that record what arrived verbatim.
pub struct JsonWithBytes(Value, axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonWithBytes {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(r) => return Err(body_error(r.status(), r.body_text())),
        };
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("Unexpected token in JSON: {e}")))?;
        Ok(JsonWithBytes(value, bytes))
    }
}

/// The `app[i].definition` texts of an import body, as they arrived.
fn received_definitions(bytes: &[u8]) -> Vec<Option<String>> {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow, default)]
        app: Vec<Entry<'a>>,
    }
    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(borrow, default)]
        definition: Option<&'a serde_json::value::RawValue>,
    }
    serde_json::from_slice::<Body>(bytes)
        .map(|b| {
            b.app
                .iter()
                .map(|e| e.definition.map(|d| d.get().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/authenticate", post(authenticate))
        .route("/api/metadata", get(metadata))
        .route("/api/authenticate/{workspace_id}", post(authenticate_ws))
        .route("/api/v2/resources/import", post(import))
        .route("/api/v2/resources/export", post(export))
        .route("/api/apps", get(list_apps))
        .route(
            "/api/apps/{id}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route("/api/apps/{id}/release", put(release))
        .route("/api/app-environments", get(environments))
        .route(
            "/api/v2/data_sources",
            get(list_data_sources_v2).post(create_data_source_v2),
        )
        .route(
            "/api/v2/data_sources/{id}",
            delete(delete_data_source_v2).put(config::update_data_source_v2),
        )
        .route(
            "/api/v2/data_sources/{id}/scope",
            post(scope_data_source_v2),
        )
        .route("/api/data-sources", post(create_data_source_v3))
        .route(
            "/api/data-sources/{id}",
            get(list_data_sources_v3)
                .delete(delete_data_source_v3)
                .put(config::update_data_source_v3),
        )
        .route("/api/data-sources/{id}/scope", post(scope_data_source_v3))
        .route(
            "/api/organization-constants",
            get(config::list_constants).post(config::create_constant),
        )
        .route(
            "/api/organization-constants/{id}",
            get(config::constants_of_app)
                .patch(config::update_constant)
                .delete(config::delete_constant),
        )
        .route(
            "/api/organization-constants/environment/{env}",
            get(config::constants_of_environment),
        )
        .route(
            "/api/organization-constants/public/{slug}",
            get(config::public_constants_v3),
        )
        .route(
            "/api/data_sources/test_connection",
            post(config::test_connection_v2),
        )
        .route(
            "/api/data-sources/{id}/test-connection",
            post(config::test_connection_v3),
        )
        .route(
            "/api/data-sources/{id}/environment/{env}",
            get(config::data_source_of_environment_v3),
        )
        .route(
            "/api/ext/import/workspace/{workspace_id}/apps",
            post(ext_import),
        )
        .route("/api/ext/workspace/{workspace_id}/apps", get(ext_list))
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::route_missing(method.as_str(), uri.path())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

pub(crate) type St = axum::extract::State<Shared>;

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

async fn authenticate(st: St, JsonBody(body): JsonBody) -> ApiResult {
    login(&st, None, &body)
}

async fn authenticate_ws(st: St, Path(ws): Path<String>, JsonBody(body): JsonBody) -> ApiResult {
    login(&st, Some(ws), &body)
}

fn login(st: &Shared, ws: Option<String>, body: &Value) -> ApiResult {
    let mut s = lock(st);
    let ok = str_field(body, "email") == Some(s.email.as_str())
        && str_field(body, "password") == Some(s.password.as_str());
    if !ok {
        return Err(ApiError::unauthorized("Invalid credentials"));
    }
    if ws.as_deref().is_some_and(|w| w != s.workspace_id) {
        return Err(ApiError::unauthorized(
            "User is not assigned to any workspaces",
        ));
    }
    let token = format!("standin.{}.{}", new_id(), new_id());
    let workspace = s.workspace_id.clone();
    s.sessions.insert(token.clone(), workspace.clone());
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let body = json!({
        "id": "00000000-0000-4000-8000-000000000001",
        "email": s.email,
        "first_name": "Stand",
        "last_name": "In",
        "current_organization_id": workspace,
        "current_organization_slug": "stand-in",
    });
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(body),
    )
        .into_response())
}

/// Checks `organization_id` of a body against the caller's workspace. 3.x refuses another
/// workspace (403); 2.27.1 writes into whatever workspace the body names, and an unknown one
/// fails on the foreign key (422, D6); the stand-in has only one workspace.
fn body_workspace(flavour: Flavour, body: &Value, caller: &str) -> Result<(), ApiError> {
    match str_field(body, "organization_id") {
        None => Err(ApiError::bad_request("organization_id must be a UUID")),
        Some(ws) if ws != caller => Err(match flavour {
            Flavour::V3 => ApiError::forbidden("You do not have access to this workspace"),
            Flavour::V2_27 => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "insert or update on table \"apps\" violates foreign key constraint \"FK_73348049217c53d971b890800d4\"",
            ),
        }),
        Some(_) => Ok(()),
    }
}

/// `GET /api/metadata`: the server's version (3.x adds `instance_id`).
async fn metadata(st: St, headers: HeaderMap) -> ApiResult {
    let s = lock(&st);
    auth::internal(&s, &headers)?;
    let mut body = json!({
        "installed_version": s.server_version,
        "version_ignored": false,
        "onboarded": true,
    });
    if s.flavour == Flavour::V3 {
        body["instance_id"] = json!(s.instance_id);
    }
    Ok(Json(body).into_response())
}

/// Validates all apps of an import first, so a failure imports nothing.
fn import_all(
    s: &mut State,
    ws: &str,
    body: &Value,
    raw: &[u8],
    default_name: Option<&str>,
) -> Result<Vec<AppSnapshot>, ApiError> {
    s.check_version(str_field(body, "tooljet_version"))?;
    let Some(apps) = body.get("app").and_then(Value::as_array) else {
        return Err(ApiError::bad_request("app must be an array"));
    };
    let mut plan = Vec::new();
    for entry in apps {
        let Some(def) = entry.get("definition") else {
            return Err(ApiError::bad_request("app definition is required"));
        };
        let app_v2 = def.get("appV2").unwrap_or(def);
        let name = str_field(entry, "appName")
            .or(default_name)
            .or_else(|| str_field(app_v2, "name"))
            .unwrap_or_default();
        let app_type = str_field(app_v2, "type").unwrap_or("front-end");
        let name = s.check_name(ws, app_type, name, None, NameCheck::Import)?;
        if plan
            .iter()
            .any(|(_, n, t): &(&Value, String, &str)| *n == name && *t == app_type)
        {
            return Err(match s.flavour {
                Flavour::V3 => ApiError::bad_request(state::MSG_NAME_TAKEN),
                Flavour::V2_27 => ApiError::conflict(state::MSG_NAME_TAKEN),
            });
        }
        plan.push((def, name, app_type));
    }
    let received = received_definitions(raw);
    let mut imported = Vec::new();
    for (i, (def, name, _)) in plan.into_iter().enumerate() {
        let mut app = s.import_app(ws, def, &name)?;
        if let Some(damage) = s.import_damage.take()
            && let Some(stored) = s.apps.iter_mut().find(|a| a.id == app.id)
        {
            state::damage(stored, damage);
            app.definition = stored.definition.clone();
        }
        if let Some(Some(text)) = received.get(i) {
            app.received_definition = text.clone();
            if let Some(stored) = s.apps.iter_mut().find(|a| a.id == app.id) {
                stored.received_definition = text.clone();
            }
        }
        imported.push(app);
    }
    Ok(imported)
}

async fn import(st: St, headers: HeaderMap, JsonWithBytes(body, raw): JsonWithBytes) -> ApiResult {
    let mut s = lock(&st);
    let ws = auth::internal(&s, &headers)?;
    body_workspace(s.flavour, &body, &ws)?;
    let imported = import_all(&mut s, &ws, &body, &raw, None)?;
    let apps: Vec<Value> = imported
        .iter()
        .map(|a| json!({"id": a.id, "name": a.name}))
        .collect();
    let mut imports = json!({"app": apps, "tooljet_database": []});
    // 2.27.1 answers without tableNameMapping (D4).
    if s.flavour == Flavour::V3 {
        imports["tableNameMapping"] = json!({});
    }
    let body = json!({"imports": imports, "success": true});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn export(st: St, headers: HeaderMap, JsonBody(body): JsonBody) -> ApiResult {
    let s = lock(&st);
    let ws = auth::internal(&s, &headers)?;
    body_workspace(s.flavour, &body, &ws)?;
    let Some(wanted) = body.get("app").and_then(Value::as_array) else {
        return Err(ApiError::bad_request("app must be an array"));
    };
    let mut out = Vec::new();
    for w in wanted {
        let id = str_field(w, "id").unwrap_or_default();
        let app = match (s.app(&ws, id), s.flavour) {
            (Ok(app), _) => app,
            // 2.27.1 fails inside the export service on a missing app (D14).
            (Err(_), Flavour::V2_27) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Cannot read properties of undefined (reading 'id')",
                ));
            }
            (Err(e), Flavour::V3) => return Err(e),
        };
        if let Some(v) = w
            .pointer("/search_params/version_id")
            .and_then(Value::as_str)
            && !app.versions.iter().any(|x| x.id == v)
        {
            return Err(ApiError::not_found("App version not found"));
        }
        out.push(json!({"definition": {"appV2": app.definition}}));
    }
    let body = json!({
        "app": out,
        "tooljet_database": [],
        "tooljet_version": s.server_version,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn app_json(flavour: Flavour, a: &AppSnapshot) -> Value {
    let mut out = json!({
        "id": a.id,
        "name": a.name,
        "slug": a.slug,
        "organization_id": a.workspace_id,
        "current_version_id": a.current_version_id,
        "is_public": a.is_public,
        "is_maintenance_on": a.is_maintenance_on,
        "icon": a.definition.get("icon"),
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    });
    // 2.27.1 apps have no type (D10).
    if flavour == Flavour::V3 {
        out["type"] = json!(a.app_type);
    }
    out
}

/// What `PUT /apps/:id` answers: TypeORM's UpdateResult, not the app (D17).
fn update_result() -> Response {
    Json(json!({"generated_maps": [], "raw": [], "affected": 1})).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<usize>,
    #[serde(rename = "searchKey")]
    search_key: Option<String>,
    #[serde(rename = "type")]
    app_type: Option<String>,
}

async fn list_apps(st: St, headers: HeaderMap, Query(q): Query<ListQuery>) -> ApiResult {
    let s = lock(&st);
    let ws = auth::internal(&s, &headers)?;
    // 2.27.1 ignores `type` (D10).
    let app_type = match s.flavour {
        Flavour::V3 => Some(q.app_type.as_deref().unwrap_or("front-end")),
        Flavour::V2_27 => None,
    };
    // ToolJet searches with ILIKE '%key%' and lists newest first.
    let key = q.search_key.unwrap_or_default().to_lowercase();
    let mut matching: Vec<&AppSnapshot> = s
        .apps
        .iter()
        .filter(|a| a.workspace_id == ws && app_type.is_none_or(|t| a.app_type == t))
        .filter(|a| a.name.to_lowercase().contains(&key))
        .collect();
    matching.reverse();
    let total = matching.len();
    let page = q.page.unwrap_or(1).max(1);
    let apps: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|a| app_json(s.flavour, a))
        .collect();
    let body = json!({
        "apps": apps,
        "meta": {
            "total_pages": total.div_ceil(PAGE_SIZE),
            "folder_count": 0,
            "total_count": total,
            "current_page": page,
        },
    });
    Ok(Json(body).into_response())
}

async fn get_app(st: St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let s = lock(&st);
    let ws = auth::internal(&s, &headers)?;
    let app = s.app(&ws, &id)?;
    let mut body = app_json(s.flavour, app);
    if let Some(v) = app.versions.iter().find(|v| v.id == app.editing_version_id) {
        body["editing_version"] = json!({"id": v.id, "name": v.name, "updated_at": v.updated_at});
    }
    // The editing version's queries, each with its own `updated_at` (E25; on 2.27.1 the only
    // timestamp a query edit moves).
    body["data_queries"] = json!(data_queries(&s, app));
    Ok(Json(body).into_response())
}

/// The editing version's queries as `GET /apps/:id` shows them (config-api.md §5, I2, A3):
/// `data_source_id` also for static sources, the source's kind inline.
fn data_queries(s: &State, app: &AppSnapshot) -> Vec<Value> {
    let queries = app
        .definition
        .get("dataQueries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    queries
        .iter()
        .filter(|q| {
            q.get("appVersionId")
                .and_then(Value::as_str)
                .is_none_or(|v| v == app.editing_version_id)
        })
        .map(|q| {
            let source = state::query_source(q).map(str::to_string);
            let kind = source.as_deref().and_then(|id| s.source_kind(app, id));
            json!({
                "id": q.get("id"),
                "name": q.get("name"),
                "kind": kind,
                "data_source_id": source,
                "app_version_id": app.editing_version_id,
                "options": q.get("options"),
                "data_source": {"kind": kind},
                "created_at": q.get("createdAt"),
                "updated_at": q.get("updatedAt"),
            })
        })
        .collect()
}

async fn update_app(
    st: St,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    let ws = auth::internal(&s, &headers)?;
    let app_type = s.app(&ws, &id)?.app_type.clone();
    // Without the {app: …} wrapper ToolJet updates nothing and still answers 200 (D18).
    let Some(fields) = body.get("app").filter(|f| f.is_object()).cloned() else {
        return Ok(update_result());
    };
    let name = match str_field(&fields, "name") {
        Some(n) => Some(s.check_name(&ws, &app_type, n, Some(&id), NameCheck::Rename)?),
        None => None,
    };
    let slug = str_field(&fields, "slug").map(str::to_string);
    if let Some(slug) = &slug {
        s.check_slug(&ws, slug, &id)?;
    }
    // 2.27.1 releases through this route (D9); 3.x has its own release route.
    let release = match (s.flavour, fields.get("current_version_id")) {
        (Flavour::V2_27, Some(Value::String(v))) => {
            if !s.apps.iter().any(|a| a.versions.iter().any(|x| x.id == *v)) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "insert or update on table \"apps\" violates foreign key constraint \"FK_apps_current_version_id\"",
                ));
            }
            Some(Some(v.clone()))
        }
        (Flavour::V2_27, Some(Value::Null)) => Some(None),
        _ => None,
    };
    if name.is_some() && s.ignore_rename_to.is_some() && s.ignore_rename_to == name {
        s.ignore_rename_to = None;
        return Ok(update_result());
    }
    let unrelease =
        name.is_some() && s.unrelease_on_rename_to.is_some() && s.unrelease_on_rename_to == name;
    if unrelease {
        s.unrelease_on_rename_to = None;
    }
    let now = s.now();
    let app = s.app_mut(&ws, &id)?;
    if unrelease {
        app.definition["currentVersionId"] = Value::Null;
        app.current_version_id = None;
    }
    if let Some(name) = name {
        app.definition["name"] = json!(name);
        app.name = name;
    }
    if let Some(slug) = slug {
        app.definition["slug"] = json!(slug);
        app.slug = slug;
    }
    if let Some(b) = fields.get("is_public").and_then(Value::as_bool) {
        app.is_public = b;
    }
    if let Some(b) = fields.get("is_maintenance_on").and_then(Value::as_bool) {
        app.is_maintenance_on = b;
    }
    if let Some(version) = release {
        app.definition["currentVersionId"] = json!(version);
        app.current_version_id = version;
    }
    app.updated_at = now;
    Ok(update_result())
}

async fn delete_app(st: St, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let mut s = lock(&st);
    let ws = auth::internal(&s, &headers)?;
    s.app(&ws, &id)?;
    s.delete_app(&id);
    Ok(StatusCode::OK.into_response())
}

async fn release(
    st: St,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    if s.flavour == Flavour::V2_27 {
        return Err(ApiError::route_missing(
            "PUT",
            &format!("/api/apps/{id}/release"),
        ));
    }
    let ws = auth::internal(&s, &headers)?;
    let version = str_field(&body, "versionToBeReleased").map(str::to_string);
    let now = s.now();
    let app = s.app_mut(&ws, &id)?;
    let Some(version) = version.filter(|v| app.versions.iter().any(|x| x.id == *v)) else {
        return Err(ApiError::bad_request(
            "versionToBeReleased must be a version of this app",
        ));
    };
    app.definition["currentVersionId"] = json!(version);
    app.current_version_id = Some(version);
    app.updated_at = now;
    Ok(Json(app_json(Flavour::V3, app)).into_response())
}

async fn environments(st: St, headers: HeaderMap) -> ApiResult {
    let s = lock(&st);
    auth::internal(&s, &headers)?;
    let envs: Vec<Value> = s
        .environments
        .iter()
        .map(|e| {
            json!({"id": e.id, "name": e.name, "priority": e.priority,
                   "is_default": e.name == "production", "enabled": true})
        })
        .collect();
    Ok(Json(json!({ "environments": envs })).into_response())
}

async fn ext_import(
    st: St,
    headers: HeaderMap,
    Path(ws): Path<String>,
    JsonWithBytes(body, raw): JsonWithBytes,
) -> ApiResult {
    let mut s = lock(&st);
    if s.flavour == Flavour::V2_27 {
        return Err(ApiError::route_missing(
            "POST",
            &format!("/api/ext/import/workspace/{ws}/apps"),
        ));
    }
    auth::external(&s, &headers)?;
    if ws != s.workspace_id {
        return Err(ApiError::bad_request("Invalid workspace"));
    }
    let default_name = str_field(&body, "appName").map(str::to_string);
    import_all(&mut s, &ws, &body, &raw, default_name.as_deref())?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"message": "App imported successfully"})),
    )
        .into_response())
}

async fn ext_list(st: St, headers: HeaderMap, Path(ws): Path<String>) -> ApiResult {
    let s = lock(&st);
    if s.flavour == Flavour::V2_27 {
        return Err(ApiError::route_missing(
            "GET",
            &format!("/api/ext/workspace/{ws}/apps"),
        ));
    }
    auth::external(&s, &headers)?;
    if ws != s.workspace_id {
        return Err(ApiError::bad_request("Invalid workspace"));
    }
    let apps: Vec<Value> = s
        .apps
        .iter()
        .filter(|a| a.workspace_id == ws)
        .map(|a| {
            let versions: Vec<Value> = a
                .versions
                .iter()
                .map(|v| json!({"id": v.id, "name": v.name}))
                .collect();
            json!({"id": a.id, "name": a.name, "slug": a.slug,
                   "organizationId": a.workspace_id, "versions": versions})
        })
        .collect();
    Ok(Json(Value::Array(apps)).into_response())
}

// ---- data sources (config-api.md §3.2; 2.27 `/api/v2/data_sources`, 3.x `/api/data-sources`)

pub(crate) fn data_source_json(d: &DataSourceSnapshot) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "type": "default",
        "plugin_id": null,
        "app_version_id": d.app_version_id,
        "organization_id": d.workspace_id,
        "scope": d.scope,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "plugin": null,
        "options": d.options,
    })
}

/// The workspace's global data sources; an unknown environment lists nothing (D39).
fn list_data_sources(s: &State, ws: &str, environment: Option<&str>) -> Response {
    let known = environment.is_none_or(|e| s.environments.iter().any(|x| x.id == e));
    let list: Vec<Value> = s
        .data_sources
        .iter()
        .filter(|d| known && d.workspace_id == ws && d.scope == "global")
        .map(data_source_json)
        .collect();
    Json(json!({ "data_sources": list })).into_response()
}

/// `POST` of a data source: `{name, kind, options:[{key, value, encrypted}], scope}`. A secret
/// becomes a credential id (the stand-in keeps no value); a row without `scope:"global"` is a
/// hidden local one on 2.27 (D31); 3.x always creates global ones.
fn create_data_source(s: &mut State, ws: &str, body: &Value) -> ApiResult {
    let name = str_field(body, "name")
        .unwrap_or_default()
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::validation("name should not be empty"));
    }
    let Some(kind) = str_field(body, "kind").filter(|k| !k.is_empty()) else {
        return Err(ApiError::validation("kind should not be empty"));
    };
    let entries: Vec<Value> = body
        .get("options")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let options = s.options_for_create(&entries);
    let scope = match (s.flavour, str_field(body, "scope")) {
        (Flavour::V3, _) | (Flavour::V2_27, Some("global")) => "global",
        (Flavour::V2_27, _) => "local",
    };
    let now = s.now();
    let d = DataSourceSnapshot {
        id: new_id(),
        name,
        kind: kind.to_string(),
        scope: scope.into(),
        app_version_id: None,
        workspace_id: ws.to_string(),
        options,
        created_at: now.clone(),
        updated_at: now,
    };
    let body = json!({
        "id": d.id, "name": d.name, "kind": d.kind, "type": "default", "scope": d.scope,
        "organization_id": d.workspace_id, "created_at": d.created_at, "updated_at": d.updated_at,
    });
    s.data_sources.push(d);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `/scope`: makes the data source global and frees it from its app version (R7).
fn scope_data_source(s: &mut State, ws: &str, id: &str) -> ApiResult {
    let now = s.now();
    let Some(d) = s
        .data_sources
        .iter_mut()
        .find(|d| d.id == id && d.workspace_id == ws)
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Could not find any entity of type \"DataSource\" matching: {id}"),
        ));
    };
    d.app_version_id = None;
    d.scope = "global".into();
    d.updated_at = now;
    Ok(StatusCode::CREATED.into_response())
}

fn delete_data_source(s: &mut State, ws: &str, id: &str, missing: ApiError) -> ApiResult {
    if !s
        .data_sources
        .iter()
        .any(|d| d.id == id && d.workspace_id == ws)
    {
        return Err(missing);
    }
    s.delete_data_sources(&[id.to_string()]);
    Ok(StatusCode::OK.into_response())
}

pub(crate) fn only_on(
    s: &State,
    flavour: Flavour,
    method: &str,
    uri: &Uri,
) -> Result<(), ApiError> {
    if s.flavour == flavour {
        Ok(())
    } else {
        Err(ApiError::route_missing(method, uri.path()))
    }
}

#[derive(Deserialize)]
struct DataSourceQuery {
    /// camelCase on 2.27 (`environment_id` is ignored, D38).
    #[serde(rename = "environmentId")]
    environment_id: Option<String>,
}

async fn list_data_sources_v2(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<DataSourceQuery>,
) -> ApiResult {
    let s = lock(&st);
    only_on(&s, Flavour::V2_27, "GET", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    Ok(list_data_sources(&s, &ws, q.environment_id.as_deref()))
}

async fn create_data_source_v2(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V2_27, "POST", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    create_data_source(&mut s, &ws, &body)
}

async fn scope_data_source_v2(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V2_27, "POST", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    scope_data_source(&mut s, &ws, &id)
}

async fn delete_data_source_v2(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V2_27, "DELETE", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    // D35: a second delete answers 400 "Bad Request".
    delete_data_source(&mut s, &ws, &id, ApiError::bad_request("Bad Request"))
}

/// 3.x `GET /api/data-sources/:organizationId`.
async fn list_data_sources_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(organization): Path<String>,
    Query(q): Query<DataSourceQuery>,
) -> ApiResult {
    let s = lock(&st);
    only_on(&s, Flavour::V3, "GET", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    if organization != ws {
        return Err(ApiError::forbidden("Forbidden resource"));
    }
    Ok(list_data_sources(&s, &ws, q.environment_id.as_deref()))
}

async fn create_data_source_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V3, "POST", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    create_data_source(&mut s, &ws, &body)
}

async fn scope_data_source_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V3, "POST", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    scope_data_source(&mut s, &ws, &id)
}

async fn delete_data_source_v3(
    st: St,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> ApiResult {
    let mut s = lock(&st);
    only_on(&s, Flavour::V3, "DELETE", &uri)?;
    let ws = auth::internal(&s, &headers)?;
    delete_data_source(
        &mut s,
        &ws,
        &id,
        ApiError::not_found("Data source not found"),
    )
}
