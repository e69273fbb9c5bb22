//! Who is calling: the three authentication modes of contract §2.

use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::state::State;

pub const SESSION_COOKIE: &str = "tj_auth_token";
pub const WORKSPACE_HEADER: &str = "tj-workspace-id";
pub const ADMIN_KEY_HEADER: &str = "tj-admin-api-key";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// Authenticates an internal (`/api/...`, not `/api/ext`) call and returns
/// the caller's workspace id.
pub fn internal(state: &State, headers: &HeaderMap) -> Result<String, ApiError> {
    let workspace = header(headers, WORKSPACE_HEADER);
    // 2.27.1 does not know the header: only the session counts (D16).
    let admin_key = header(headers, ADMIN_KEY_HEADER).filter(|_| state.flavour.has_admin_api_key());
    if let Some(key) = admin_key {
        if state.admin_api_key.as_deref() != Some(key) {
            return Err(ApiError::unauthorized("Invalid admin API key"));
        }
        let Some(workspace) = workspace else {
            return Err(ApiError::bad_request(
                "tj-workspace-id header is required with the admin API key",
            ));
        };
        if workspace != state.workspace_id {
            return Err(ApiError::forbidden("Workspace not found or not accessible"));
        }
        return Ok(workspace.to_string());
    }
    let Some(token) = session_cookie(headers) else {
        return Err(ApiError::unauthorized("Unauthorized"));
    };
    let Some(session_ws) = state.sessions.get(token) else {
        return Err(ApiError::unauthorized("Unauthorized"));
    };
    // ToolJet needs the header as well as the cookie; without it the guard fails.
    match workspace {
        Some(ws) if ws == session_ws => Ok(ws.to_string()),
        _ => Err(ApiError::unauthorized("Unauthorized")),
    }
}

/// Authenticates an `/api/ext` call: every failure is 403 (3.x EE; 2.27 CE has no such routes).
pub fn external(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = header(headers, "authorization").and_then(|v| v.strip_prefix("Basic "));
    match (&state.external_token, presented) {
        (Some(expected), Some(given)) if expected == given => Ok(()),
        _ => Err(ApiError::forbidden("Forbidden resource")),
    }
}
