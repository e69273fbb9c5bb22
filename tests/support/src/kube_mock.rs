//! A mock Kubernetes API server for controller tests (kube's tower-test pair): it records every
//! request and answers with a function of it. Shared by the test binaries that drive the
//! controller without a cluster; each uses part of it.

pub mod apiserver;

use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tooljet_operator::api::ToolJetInstance;
use tooljet_operator::controller::caches::Cache;

/// One request the operator made to the API server.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub content_type: String,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A client whose API server answers with `respond` and records every request; the server task
/// ends (returning what it saw) when the client is dropped.
pub fn mock_api(
    respond: impl Fn(&Seen) -> (StatusCode, Value) + Send + 'static,
) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("request body");
            let s = Seen {
                method,
                uri,
                content_type,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            };
            let (status, body) = respond(&s);
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("response");
            send.send_response(response);
            seen.push(s);
        }
        seen
    });
    (Client::new(service, "default"), server)
}

/// What the mock server saw, once every client clone is dropped.
pub async fn finish(server: tokio::task::JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("mock API server finished (client dropped)")
        .expect("mock API server did not panic")
}

/// A ToolJetInstance cache that has completed its first list, holding `instances`.
pub fn ready_store(instances: Vec<ToolJetInstance>) -> Cache<ToolJetInstance> {
    Cache::from_objects(instances)
}

/// A Secret cache that has completed its first list, holding `secrets` (Secret JSON objects).
pub fn secret_cache(secrets: Vec<Value>) -> Cache<Secret> {
    Cache::from_objects(
        secrets
            .into_iter()
            .map(|s| serde_json::from_value::<Secret>(s).expect("a Secret")),
    )
}

/// Secret `data` values are base64.
pub fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
