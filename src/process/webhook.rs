//! Push webhooks: `POST /hooks/github`, `/hooks/gitlab`, `/hooks/generic`.
//!
//! Each route is enabled by its secret (env `WEBHOOK_GITHUB_SECRET`, `WEBHOOK_GITLAB_TOKEN`,
//! `WEBHOOK_GENERIC_TOKEN`) and answers 404 without it. A call is verified first (GitHub: HMAC-SHA256
//! of the body in `X-Hub-Signature-256`; GitLab: `X-Gitlab-Token`; generic: `Authorization:
//! Bearer`), all compared in constant time; a bad or missing signature gets 401 and changes nothing.
//! A verified push names its repository; every AppImport whose `spec.source.url` is that repository
//! (any URL form, see [`super::urls`]) is reconciled at once. The answer (202, `{"enqueued": n}`)
//! never waits for a reconcile.
//!
//! Where the reconcile requests go:
//! - on the replica running the controllers: to its [`PushTarget`], the AppImport controller's
//!   queue (`Controller::reconcile_on`), matching against its reflector store;
//! - on a standby replica (leader election; the Service may route a webhook to it): the matching
//!   AppImports are listed from the API server and annotated with
//!   `gitops.tooljet.dev/reconcile-requested-at`, which makes the leader reconcile them.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use super::metrics::Metrics;
use super::urls::repo_key;
use crate::api::{ANNOTATION_RECONCILE_REQUESTED_AT, AppImport};

/// GitHub allows payloads up to 25 MB; push payloads are far smaller.
const MAX_BODY: usize = 25 * 1024 * 1024;

/// The webhook secrets; a `None` disables its route. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    pub github: Option<String>,
    pub gitlab: Option<String>,
    pub generic: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<redacted>" } else { "<unset>" };
        f.debug_struct("WebhookSecrets")
            .field("github", &shown(&self.github))
            .field("gitlab", &shown(&self.gitlab))
            .field("generic", &shown(&self.generic))
            .finish()
    }
}

impl WebhookSecrets {
    /// From `WEBHOOK_GITHUB_SECRET`, `WEBHOOK_GITLAB_TOKEN`, `WEBHOOK_GENERIC_TOKEN`; empty is unset.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        WebhookSecrets {
            github: var("WEBHOOK_GITHUB_SECRET"),
            gitlab: var("WEBHOOK_GITLAB_TOKEN"),
            generic: var("WEBHOOK_GENERIC_TOKEN"),
        }
    }
}

/// Where verified pushes go while the controllers run on this replica: the AppImport controller
/// implements it over its queue. The webhook knows repositories, not how they are reconciled.
pub trait PushTarget: Send + Sync {
    /// Requests, without waiting, a reconcile of every AppImport whose source is one of `repos`
    /// (keys from [`repo_key`]); returns how many were requested.
    fn pushed(&self, repos: &HashSet<String>) -> usize;
}

/// The current [`PushTarget`]: set while the controllers run on this replica, unset on a standby.
#[derive(Clone, Default)]
pub struct HookTarget(Arc<RwLock<Option<Arc<dyn PushTarget>>>>);

impl HookTarget {
    pub fn set(&self, target: Option<impl PushTarget + 'static>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) =
            target.map(|t| Arc::new(t) as Arc<dyn PushTarget>);
    }

    pub fn clear(&self) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn get(&self) -> Option<Arc<dyn PushTarget>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Everything the webhook routes need.
pub struct WebhookState {
    secrets: WebhookSecrets,
    target: HookTarget,
    metrics: Arc<Metrics>,
    /// For a standby replica: annotate matching AppImports through the API server.
    standby: Option<(Client, Option<String>)>,
}

impl WebhookState {
    pub fn new(secrets: WebhookSecrets, target: HookTarget, metrics: Arc<Metrics>) -> Self {
        WebhookState {
            secrets,
            target,
            metrics,
            standby: None,
        }
    }

    /// While no controller runs here, request reconciles by annotation through `client`, among the
    /// AppImports of `namespace` (all namespaces when `None`).
    pub fn with_standby(mut self, client: Client, namespace: Option<String>) -> Self {
        self.standby = Some((client, namespace));
        self
    }
}

/// The three webhook routes.
pub fn router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .route("/hooks/generic", post(generic))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// What a verified call asks for.
enum Verdict {
    Push(Value),
    Ignored(String),
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn github(State(s): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.secrets.github else {
        return disabled(&s, "github");
    };
    if !github_signature_ok(secret, &headers, &body) {
        return unauthorized(&s, "github");
    }
    let event = header(&headers, "x-github-event").unwrap_or("push");
    let verdict = match event {
        "push" => parse(&body).map(Verdict::Push),
        other => Ok(Verdict::Ignored(other.to_owned())),
    };
    handle(&s, "github", verdict, |v| {
        urls_at(
            v,
            "repository",
            &["clone_url", "ssh_url", "git_url", "html_url", "url"],
        )
    })
    .await
}

async fn gitlab(State(s): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = &s.secrets.gitlab else {
        return disabled(&s, "gitlab");
    };
    if !header(&headers, "x-gitlab-token").is_some_and(|given| equal(given, token)) {
        return unauthorized(&s, "gitlab");
    }
    let event = header(&headers, "x-gitlab-event").unwrap_or("Push Hook");
    let verdict = match event {
        "Push Hook" | "Tag Push Hook" => parse(&body).map(Verdict::Push),
        other => Ok(Verdict::Ignored(other.to_owned())),
    };
    handle(&s, "gitlab", verdict, |v| {
        let mut urls = urls_at(
            v,
            "project",
            &[
                "git_http_url",
                "git_ssh_url",
                "web_url",
                "http_url",
                "ssh_url",
            ],
        );
        urls.extend(urls_at(
            v,
            "repository",
            &["git_http_url", "git_ssh_url", "url", "homepage"],
        ));
        urls
    })
    .await
}

async fn generic(State(s): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = &s.secrets.generic else {
        return disabled(&s, "generic");
    };
    let given = header(&headers, "authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    if !given.is_some_and(|given| equal(given, token)) {
        return unauthorized(&s, "generic");
    }
    handle(&s, "generic", parse(&body).map(Verdict::Push), |v| {
        v.get("repository")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .into_iter()
            .collect()
    })
    .await
}

fn disabled(s: &WebhookState, provider: &'static str) -> Response {
    s.metrics.webhook(provider, "disabled");
    answer(
        StatusCode::NOT_FOUND,
        json!({"error": format!("the {provider} webhook is disabled: its secret is not configured")}),
    )
}

fn unauthorized(s: &WebhookState, provider: &'static str) -> Response {
    s.metrics.webhook(provider, "unauthorized");
    warn!(
        provider,
        "webhook call with a bad or missing signature refused"
    );
    answer(
        StatusCode::UNAUTHORIZED,
        json!({"error": "bad or missing signature"}),
    )
}

async fn handle(
    s: &WebhookState,
    provider: &'static str,
    verdict: Result<Verdict, String>,
    urls: impl FnOnce(&Value) -> Vec<String>,
) -> Response {
    let payload = match verdict {
        Ok(Verdict::Push(v)) => v,
        Ok(Verdict::Ignored(event)) => {
            s.metrics.webhook(provider, "ignored");
            debug!(provider, event, "webhook event ignored (not a push)");
            return answer(StatusCode::OK, json!({"enqueued": 0, "ignored": event}));
        }
        Err(problem) => return bad_request(s, provider, problem),
    };
    let keys: HashSet<String> = urls(&payload).iter().filter_map(|u| repo_key(u)).collect();
    if keys.is_empty() {
        return bad_request(s, provider, "the payload names no repository URL".into());
    }
    let count = match s.target.get() {
        Some(target) => target.pushed(&keys),
        None => match request_by_annotation(s, &keys).await {
            Ok(n) => n,
            Err(error) => {
                s.metrics.webhook(provider, "error");
                warn!(provider, %error, "cannot list AppImports for a webhook");
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "cannot list AppImports; retry later"}),
                );
            }
        },
    };
    s.metrics.webhook(provider, "enqueued");
    info!(provider, repositories = ?keys, enqueued = count, "webhook push");
    answer(StatusCode::ACCEPTED, json!({"enqueued": count}))
}

fn bad_request(s: &WebhookState, provider: &'static str, problem: String) -> Response {
    s.metrics.webhook(provider, "bad_request");
    answer(StatusCode::BAD_REQUEST, json!({"error": problem}))
}

/// AppImports whose source is one of `keys`.
pub fn matching_apps<'a>(
    apps: impl IntoIterator<Item = &'a AppImport>,
    keys: &HashSet<String>,
) -> Vec<&'a AppImport> {
    apps.into_iter()
        .filter(|a| repo_key(&a.spec.source.url).is_some_and(|k| keys.contains(&k)))
        .collect()
}

/// Standby replica: annotate the matching AppImports so the leader reconciles them. The patches
/// run in the background; the count is of AppImports matched.
async fn request_by_annotation(
    s: &WebhookState,
    keys: &HashSet<String>,
) -> Result<usize, kube::Error> {
    let Some((client, namespace)) = &s.standby else {
        return Ok(0);
    };
    let api: Api<AppImport> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api.list(&ListParams::default()).await?;
    let targets: Vec<(String, String)> = matching_apps(list.items.iter(), keys)
        .into_iter()
        .map(|a| (a.namespace().unwrap_or_default(), a.name_any()))
        .collect();
    let count = targets.len();
    let client = client.clone();
    tokio::spawn(async move {
        let now = jiff::Timestamp::now().to_string();
        let patch = json!({"metadata": {"annotations": {ANNOTATION_RECONCILE_REQUESTED_AT: now}}});
        for (ns, name) in targets {
            let api: Api<AppImport> = Api::namespaced(client.clone(), &ns);
            if let Err(error) = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                warn!(appimport = %format!("{ns}/{name}"), %error, "cannot request a reconcile by annotation");
            }
        }
    });
    Ok(count)
}

fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))
}

fn urls_at(payload: &Value, object: &str, fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .filter_map(|f| payload.get(object)?.get(f)?.as_str())
        .map(str::to_owned)
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Constant-time comparison (the length may leak, the content does not).
fn equal(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// `X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(secret, body)>`, verified in constant time.
pub fn github_signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(hex_sig) =
        header(headers, "x-hub-signature-256").and_then(|v| v.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = WebhookSecrets {
            github: Some("gh-very-secret".into()),
            gitlab: None,
            generic: Some("bearer-very-secret".into()),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("<unset>"));
    }

    #[test]
    fn github_signature_checks_the_body_and_the_secret() {
        let body = br#"{"zen":"hi"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("hmac key");
        mac.update(body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", sig.parse().expect("header"));
        assert!(github_signature_ok("s3cret", &h, body));
        assert!(!github_signature_ok("other", &h, body));
        assert!(!github_signature_ok("s3cret", &h, b"{}"));
        assert!(!github_signature_ok("s3cret", &HeaderMap::new(), body));
        h.insert("x-hub-signature-256", "sha256=zz".parse().expect("header"));
        assert!(!github_signature_ok("s3cret", &h, body));
    }

    #[test]
    fn token_comparison() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abd", "abc"));
        assert!(!equal("ab", "abc"));
    }
}
