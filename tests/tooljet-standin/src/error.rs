//! NestJS-shaped errors as ToolJet answers them: `{statusCode, timestamp, path, message}`, where
//! `message` is a list for validation errors (2.27-vs-contract.md D1; 3.x builds the same keys).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Answer `message` as a one-item list, as class-validator errors are.
    pub as_list: bool,
    /// Several validation messages (answered as this list; `message` joins them).
    pub list: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            as_list: false,
            list: Vec::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// A DTO validation failure: 400 with `message` as a list.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError {
            as_list: true,
            ..Self::bad_request(message)
        }
    }
    /// A DTO validation failure with several messages: 400 with `message` as this list.
    pub fn validation_list(messages: Vec<String>) -> Self {
        ApiError {
            as_list: true,
            list: messages.clone(),
            ..Self::bad_request(messages.join("; "))
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// What NestJS answers for a path no controller serves.
    pub fn route_missing(method: &str, path: &str) -> Self {
        Self::not_found(format!("Cannot {method} {path}"))
    }

    fn message_value(&self) -> Value {
        if !self.list.is_empty() {
            json!(self.list)
        } else if self.as_list {
            json!([self.message])
        } else {
            json!(self.message)
        }
    }

    /// The body for a request to `path`.
    pub fn body(&self, path: &str) -> Value {
        nest_body_value(self.status, self.message_value(), path)
    }
}

/// The response body ToolJet's exception filter produces, for a request to `path`
/// (path and query, as NestJS's `request.url`).
pub fn nest_body(status: StatusCode, message: &str, path: &str) -> Value {
    nest_body_value(status, json!(message), path)
}

fn nest_body_value(status: StatusCode, message: Value, path: &str) -> Value {
    let timestamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    json!({
        "statusCode": status.as_u16(),
        "timestamp": timestamp,
        "path": path,
        "message": message,
    })
}

/// Marks a response as an error whose body still needs the request's path; the server fills it
/// in (handlers do not know the path they were reached by).
#[derive(Debug, Clone)]
pub struct PendingError(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body(""))).into_response();
        resp.extensions_mut().insert(PendingError(self));
        resp
    }
}
