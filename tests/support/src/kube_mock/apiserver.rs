//! A small in-process Kubernetes API server on loopback HTTP: lists from fixed objects, watches
//! that stay open (as a real server's do), PATCH answered with the object, Events accepted. Every
//! request is recorded. Unlike the tower-test pair, the operator talks to it over a real socket
//! from as many tasks as it likes, so start-up races between its watches show.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the operator made.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    /// Objects by collection path (e.g. `/api/v1/namespaces/team/secrets`).
    collections: BTreeMap<String, Vec<Value>>,
    seen: Vec<Request>,
}

/// The running server; it stops when dropped.
pub struct ApiServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The collection path of a namespaced object (`apiVersion`, `kind`, namespace).
fn collection_of(obj: &Value) -> String {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    let plural = format!("{}s", obj["kind"].as_str().unwrap_or("").to_lowercase());
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    format!("{prefix}/namespaces/{ns}/{plural}")
}

impl ApiServer {
    /// Serves `objects` (each with apiVersion, kind, metadata.name and metadata.namespace).
    pub async fn start(objects: Vec<Value>) -> ApiServer {
        let mut state = State::default();
        for obj in objects {
            state
                .collections
                .entry(collection_of(&obj))
                .or_default()
                .push(obj);
        }
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let state = shared.clone();
            async move { answer(&state, method, uri, body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ApiServer { url, state, task }
    }

    /// A kube client for this server (plain HTTP, namespace `default`).
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("url"));
        config.read_timeout = Some(Duration::from_secs(600));
        kube::Client::try_from(config).expect("client")
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Request> {
        self.state.lock().expect("state").seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.state.lock().expect("state").seen.clear();
    }
}

fn answer(state: &Mutex<State>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let mut state = state.lock().expect("state");
    state.seen.push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let json_response = |status: StatusCode, v: Value| {
        (
            status,
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    if method == Method::GET
        && query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
    {
        // An open watch with no news: it ends only when the server or the client goes away.
        let never = futures::stream::pending::<Result<Bytes, Infallible>>();
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            Body::from_stream(never),
        )
            .into_response();
    }
    if method == Method::POST && path.contains("/events") {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return json_response(StatusCode::CREATED, v);
    }
    if method == Method::GET
        && let Some(items) = state.collections.get(&path)
    {
        return json_response(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "List",
                   "metadata": {"resourceVersion": "100"}, "items": items}),
        );
    }
    if method == Method::GET && is_collection(&path) && !path.contains("/namespaces/") {
        // A list across namespaces, or of a kind with no objects.
        let items: Vec<Value> = state
            .collections
            .iter()
            .filter(|(c, _)| c.ends_with(path.rsplit('/').next().unwrap_or("")))
            .flat_map(|(_, items)| items.clone())
            .collect();
        return json_response(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "List",
                   "metadata": {"resourceVersion": "100"}, "items": items}),
        );
    }
    // One object (GET or PATCH, with or without /status): answer with it.
    let object_path = path.trim_end_matches("/status");
    if let Some((collection, name)) = object_path.rsplit_once('/')
        && let Some(obj) = state
            .collections
            .get(collection)
            .and_then(|items| items.iter().find(|o| o["metadata"]["name"] == name))
    {
        return json_response(StatusCode::OK, obj.clone());
    }
    if method == Method::GET && is_collection(&path) {
        // A collection with no objects.
        return json_response(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "List",
                   "metadata": {"resourceVersion": "100"}, "items": []}),
        );
    }
    json_response(
        StatusCode::NOT_FOUND,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    )
}

/// Whether `path` names a collection of a kind the operator lists.
fn is_collection(path: &str) -> bool {
    const KINDS: [&str; 6] = [
        "appimports",
        "appexports",
        "tooljetinstances",
        "secrets",
        "leases",
        "events",
    ];
    path.rsplit('/')
        .next()
        .is_some_and(|last| KINDS.contains(&last))
}
