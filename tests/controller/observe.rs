//! Observing and steering the running operator: the webhook routes (through the real axum router,
//! `oneshot`), the probes and `/metrics`, the metrics after real reconciles (kube's tower-test mock
//! API server, the ToolJet stand-in, a real git repository), and the leader Lease's request shapes.

use kube_mock::{finish, mock_api};
use reconcile_rig::{self as rig, Rig};
use test_support::kube_mock;
use test_support::promql;
use test_support::reconcile_rig;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body as AxumBody;
use hmac::{Hmac, Mac};
use http::{Request, StatusCode};
use kube::Client;
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tooljet_operator::api::AppImport;
use tooljet_operator::controller::watch::Enqueue;
use tooljet_operator::process::leader::{LeaderConfig, LeaderElector, Standing};
use tooljet_operator::process::metrics::Metrics;
use tooljet_operator::process::server::{self, Readiness};
use tooljet_operator::process::webhook::{HookTarget, WebhookSecrets, WebhookState};
use tooljet_operator::source::{CacheConfig, SourceCache};
use tower::ServiceExt;

const GITHUB_SECRET: &str = "gh-hook-secret";
const GITLAB_TOKEN: &str = "gl-hook-token";
const GENERIC_TOKEN: &str = "generic-hook-token";

// ---------------------------------------------------------------- a mock API server

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

// ---------------------------------------------------------------- webhooks

fn app(ns: &str, name: &str, url: &str) -> AppImport {
    serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")},
        "spec": {"environment": "development",
                 "source": {"url": url, "ref": {"branch": "main"}, "app": "x"}},
    }))
    .expect("app")
}

fn app_store(apps: Vec<AppImport>) -> (reflector::Store<AppImport>, Writer<AppImport>) {
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for a in apps {
        writer.apply_watcher_event(&watcher::Event::InitApply(a));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

/// The apps every webhook test sees: two forms of acme/apps, another repo, another host.
fn sample_apps() -> Vec<AppImport> {
    vec![
        app("team", "https-form", "https://github.com/acme/apps.git"),
        app("other", "scp-form", "git@github.com:acme/apps.git"),
        app("team", "other-repo", "https://github.com/acme/tools.git"),
        app("team", "other-host", "https://gitlab.com/acme/apps.git"),
    ]
}

struct Hooks {
    router: Router,
    queue: mpsc::Receiver<ObjectRef<AppImport>>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    _writer: Writer<AppImport>,
}

fn hooks(secrets: WebhookSecrets) -> Hooks {
    let dir = std::env::temp_dir().join("tooljet-operator-observe-unused-cache");
    let source = SourceCache::new(CacheConfig {
        dir,
        ..CacheConfig::default()
    });
    hooks_over(secrets, sample_apps(), source)
}

fn hooks_over(secrets: WebhookSecrets, apps: Vec<AppImport>, source: SourceCache) -> Hooks {
    let (store, writer) = app_store(apps);
    let (tx, queue) = mpsc::channel(16);
    let target = HookTarget::default();
    target.set(Some(Enqueue {
        apps: store,
        queue: tx,
        source,
    }));
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let state = WebhookState::new(secrets, target, metrics.clone());
    Hooks {
        router: server::router(metrics.clone(), readiness.clone(), Arc::new(state)),
        queue,
        metrics,
        readiness,
        _writer: writer,
    }
}

fn all_secrets() -> WebhookSecrets {
    WebhookSecrets {
        github: Some(GITHUB_SECRET.into()),
        gitlab: Some(GITLAB_TOKEN.into()),
        generic: Some(GENERIC_TOKEN.into()),
    }
}

fn github_push(clone_url: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {
            "full_name": "Acme/apps",
            "clone_url": clone_url,
            "ssh_url": "git@github.com:Acme/apps.git",
            "git_url": "git://github.com/Acme/apps.git",
            "html_url": "https://github.com/Acme/apps",
        }
    }))
    .expect("json")
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn call(
    router: &Router,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method("POST").uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = router
        .clone()
        .oneshot(request.body(AxumBody::from(body)).expect("request"))
        .await
        .expect("router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn drain(queue: &mut mpsc::Receiver<ObjectRef<AppImport>>) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    while let Ok(r) = queue.try_recv() {
        got.insert(format!(
            "{}/{}",
            r.namespace.clone().unwrap_or_default(),
            r.name
        ));
    }
    got
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn github_push_with_a_good_signature_enqueues_every_form_of_the_repository() {
    let mut h = hooks(all_secrets());
    let body = github_push("https://github.com/Acme/apps.git");
    let sig = sign(GITHUB_SECRET, &body);
    let (status, answer) = call(
        &h.router,
        "/hooks/github",
        &[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sig),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["enqueued"], 2);
    assert_eq!(
        drain(&mut h.queue),
        names(&["other/scp-form", "team/https-form"])
    );
    assert!(h.metrics.render().contains(
        "tooljet_operator_webhook_requests_total{provider=\"github\",result=\"enqueued\"} 1"
    ));
}

#[tokio::test]
async fn github_bad_or_missing_signature_is_401_and_enqueues_nothing() {
    let mut h = hooks(all_secrets());
    let body = github_push("https://github.com/acme/apps.git");
    let wrong_secret = sign("not-the-secret", &body);
    let other_body = sign(GITHUB_SECRET, b"{}");
    for headers in [
        vec![("x-hub-signature-256", wrong_secret.as_str())],
        vec![("x-hub-signature-256", other_body.as_str())],
        vec![("x-hub-signature-256", "sha256=not-hex")],
        vec![("x-hub-signature-256", "sha1=abcd")],
        vec![],
    ] {
        let (status, answer) = call(&h.router, "/hooks/github", &headers, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}: {answer}");
    }
    assert!(drain(&mut h.queue).is_empty(), "nothing enqueued");
    assert!(h.metrics.render().contains(
        "tooljet_operator_webhook_requests_total{provider=\"github\",result=\"unauthorized\"} 5"
    ));
}

#[tokio::test]
async fn github_ping_is_answered_without_enqueueing() {
    let mut h = hooks(all_secrets());
    let body = github_push("https://github.com/acme/apps.git");
    let sig = sign(GITHUB_SECRET, &body);
    let (status, answer) = call(
        &h.router,
        "/hooks/github",
        &[("x-github-event", "ping"), ("x-hub-signature-256", &sig)],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["enqueued"], 0);
    assert!(drain(&mut h.queue).is_empty());
}

#[tokio::test]
async fn routes_without_a_secret_are_disabled() {
    let mut h = hooks(WebhookSecrets::default());
    for path in ["/hooks/github", "/hooks/gitlab", "/hooks/generic"] {
        let (status, answer) = call(
            &h.router,
            path,
            &[
                ("authorization", "Bearer anything"),
                ("x-gitlab-token", "anything"),
            ],
            br#"{"repository": "https://github.com/acme/apps"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    assert!(drain(&mut h.queue).is_empty());
}

#[tokio::test]
async fn gitlab_push_is_verified_by_its_token() {
    let mut h = hooks(all_secrets());
    let body = serde_json::to_vec(&json!({
        "object_kind": "push",
        "project": {
            "git_http_url": "https://gitlab.com/acme/apps.git",
            "git_ssh_url": "git@gitlab.com:acme/apps.git",
            "web_url": "https://gitlab.com/acme/apps",
        }
    }))
    .expect("json");
    let (status, _) = call(
        &h.router,
        "/hooks/gitlab",
        &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "wrong")],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(drain(&mut h.queue).is_empty());

    let (status, answer) = call(
        &h.router,
        "/hooks/gitlab",
        &[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", GITLAB_TOKEN),
        ],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["enqueued"], 1);
    assert_eq!(drain(&mut h.queue), names(&["team/other-host"]));
}

#[tokio::test]
async fn generic_push_needs_the_bearer_token_and_a_repository() {
    let mut h = hooks(all_secrets());
    let body = br#"{"repository": "ssh://git@GitHub.com:22/acme/tools"}"#.to_vec();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic Z2VuZXJpYy1ob29rLXRva2Vu"),
        Some(GENERIC_TOKEN),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, _) = call(&h.router, "/hooks/generic", &headers, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert!(drain(&mut h.queue).is_empty());

    let bearer = format!("Bearer {GENERIC_TOKEN}");
    let (status, answer) = call(
        &h.router,
        "/hooks/generic",
        &[("authorization", &bearer)],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(drain(&mut h.queue), names(&["team/other-repo"]));

    for bad in [
        &br#"{"repo": "x"}"#[..],
        b"not json",
        br#"{"repository": ""}"#,
    ] {
        let (status, _) = call(
            &h.router,
            "/hooks/generic",
            &[("authorization", &bearer)],
            bad.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // A repository nobody imports from: accepted, nothing to do.
    let (status, answer) = call(
        &h.router,
        "/hooks/generic",
        &[("authorization", &bearer)],
        br#"{"repository": "https://github.com/acme/unknown"}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (status, answer["enqueued"].as_u64()),
        (StatusCode::ACCEPTED, Some(0))
    );
    assert!(drain(&mut h.queue).is_empty());
}

#[tokio::test]
async fn standby_requests_reconciles_by_annotation_through_the_api_server() {
    let list = json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImportList",
        "metadata": {"resourceVersion": "1"},
        "items": sample_apps()});
    let (client, server) = mock_api(move |s| {
        if s.method == "GET" {
            (StatusCode::OK, list.clone())
        } else {
            (
                StatusCode::OK,
                serde_json::to_value(app("team", "https-form", "x")).expect("json"),
            )
        }
    });
    let metrics = Arc::new(Metrics::new());
    // No controller here (HookTarget unset): a standby replica.
    let state = WebhookState::new(all_secrets(), HookTarget::default(), metrics.clone())
        .with_standby(client, None);
    let router = server::router(metrics, Readiness::default(), Arc::new(state));
    let bearer = format!("Bearer {GENERIC_TOKEN}");
    let (status, answer) = call(
        &router,
        "/hooks/generic",
        &[("authorization", &bearer)],
        br#"{"repository": "https://github.com/acme/apps"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["enqueued"], 2);
    drop(router);
    let seen = finish(server).await;
    assert_eq!(seen[0].method, "GET");
    assert!(
        seen[0]
            .uri
            .starts_with("/apis/gitops.tooljet.dev/v1alpha1/appimports"),
        "{seen:#?}"
    );
    let patched: BTreeSet<String> = seen[1..]
        .iter()
        .map(|s| {
            assert_eq!(s.method, "PATCH");
            assert!(
                s.json()["metadata"]["annotations"]["gitops.tooljet.dev/reconcile-requested-at"]
                    .is_string(),
                "{}",
                s.body
            );
            s.uri.split('?').next().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        patched,
        names(&[
            "/apis/gitops.tooljet.dev/v1alpha1/namespaces/other/appimports/scp-form",
            "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/appimports/https-form",
        ])
    );
}

// ---------------------------------------------------------------- probes and /metrics

async fn get(router: &Router, path: &str) -> (StatusCode, Option<String>, String) {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .uri(path)
                .body(AxumBody::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn probes_and_metrics_endpoint() {
    let h = hooks(all_secrets());
    assert_eq!(get(&h.router, "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(&h.router, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.readiness.set(true);
    assert_eq!(get(&h.router, "/readyz").await.0, StatusCode::OK);
    let (status, content_type, text) = get(&h.router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "content type"
    );
    assert!(
        text.contains("# TYPE tooljet_operator_git_checks counter"),
        "{text}"
    );
    assert!(text.contains("tooljet_operator_managed_apps 0"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

// ---------------------------------------------------------------- metrics after reconciles

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_reconciles_git_and_tooljet_traffic() {
    let rig = Rig::start().await;
    // `a` twice (imported, then nothing to do), `b` once (refused: no instance).
    for name in [rig::GOOD, rig::GOOD, rig::LOST] {
        rig.reconcile(name).await.expect("reconcile");
    }
    let metrics = rig.metrics.clone();
    rig.finish().await;

    let text = metrics.render();
    let value =
        |prefix: &str| metric(&text, prefix).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    assert_eq!(
        value("tooljet_operator_reconciles_total{kind=\"AppImport\",result=\"success\"}"),
        2.0
    );
    assert_eq!(
        value("tooljet_operator_reconciles_total{kind=\"AppImport\",result=\"refused\"}"),
        1.0
    );
    assert_eq!(
        value("tooljet_operator_reconcile_duration_seconds_count{kind=\"AppImport\"}"),
        3.0
    );
    assert_eq!(
        value("tooljet_operator_reconcile_duration_seconds_bucket{le=\"+Inf\",kind=\"AppImport\"}"),
        3.0
    );
    assert!(value("tooljet_operator_reconcile_duration_seconds_sum{kind=\"AppImport\"}") > 0.0);
    // Two reconciles of one ref: two checks; the commit is fetched once.
    assert_eq!(value("tooljet_operator_git_checks_total"), 2.0);
    assert_eq!(value("tooljet_operator_git_fetches_total"), 1.0);
    assert_eq!(
        value("tooljet_operator_git_fetch_duration_seconds_count"),
        1.0
    );
    assert_eq!(value("tooljet_operator_managed_apps"), 1.0);
    assert_eq!(value("tooljet_operator_drift_corrections_total"), 0.0);
    let tooljet_ok: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("tooljet_operator_tooljet_requests_total{") && l.contains("status=\"20")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        tooljet_ok >= 2.0,
        "ToolJet requests counted by route:\n{text}"
    );
    assert!(
        text.contains("route=\"POST /api/v2/resources/import\""),
        "route templates as labels:\n{text}"
    );
    assert!(!text.contains(rig::API_KEY));
}

/// What a query names that a scrape does not offer: unknown metrics, and labels neither the
/// metric carries nor Prometheus adds to a target's series. `allowed` names series of Prometheus
/// itself (`up`).
fn unknown_names(
    query: &str,
    exported: &std::collections::BTreeMap<String, BTreeSet<String>>,
    allowed: &[&str],
) -> Vec<String> {
    let (selectors, grouping) = promql::selectors(query);
    let mut problems = Vec::new();
    let mut labels_in_query: BTreeSet<String> = promql::TARGET_LABELS
        .iter()
        .map(|l| l.to_string())
        .collect();
    for s in &selectors {
        if allowed.contains(&s.metric.as_str()) {
            labels_in_query.extend(s.labels.iter().cloned());
            continue;
        }
        let Some(labels) = exported.get(&s.metric) else {
            problems.push(format!("metric {:?} is not exported", s.metric));
            continue;
        };
        labels_in_query.extend(labels.iter().cloned());
        for l in &s.labels {
            if !labels.contains(l) && !promql::TARGET_LABELS.contains(&l.as_str()) {
                problems.push(format!("{} has no label {l:?}", s.metric));
            }
        }
    }
    for l in grouping.difference(&labels_in_query) {
        problems.push(format!(
            "grouping by {l:?}, which no series of the query has"
        ));
    }
    problems
}

/// The dashboard's queries and the alert rules name only metrics and labels that `/metrics`
/// shows after real reconciles and a webhook call.
#[tokio::test]
async fn dashboard_and_alert_rules_name_only_what_a_scrape_shows() {
    let rig = Rig::start().await;
    for name in [rig::GOOD, rig::LOST] {
        rig.reconcile(name).await.expect("reconcile");
    }
    let metrics = rig.metrics.clone();
    rig.finish().await;
    let state = WebhookState::new(all_secrets(), HookTarget::default(), metrics.clone());
    let router = server::router(metrics, Readiness::default(), Arc::new(state));
    let (status, _) = call(
        &router,
        "/hooks/generic",
        &[("authorization", "Bearer wrong")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, scrape) = get(&router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let exported = promql::exported(&scrape);
    assert!(
        exported["tooljet_operator_webhook_requests_total"].contains("provider"),
        "{scrape}"
    );

    let queries = promql::dashboard_queries();
    assert!(queries.len() >= 10, "{queries:#?}");
    for (panel, query) in &queries {
        let problems = unknown_names(query, &exported, &[]);
        assert!(
            problems.is_empty(),
            "dashboard panel {panel:?}: {problems:?}\nquery: {query}\nscrape:\n{scrape}"
        );
    }
    let rules = promql::rule_exprs(&promql::rules_path());
    assert_eq!(rules.len(), 6);
    for (alert, expr) in &rules {
        let problems = unknown_names(expr, &exported, &["up"]);
        assert!(
            problems.is_empty(),
            "alert {alert}: {problems:?}\nexpr: {expr}\nscrape:\n{scrape}"
        );
    }
    // The comparison can fail: a misspelt metric, a label the metric lacks, a grouping by it.
    for (bogus, said) in [
        (
            "sum(rate(tooljet_operator_reconcile_total[5m]))",
            "not exported",
        ),
        (
            "tooljet_operator_managed_apps{route=\"x\"}",
            "no label \"route\"",
        ),
        (
            "sum by (provider) (tooljet_operator_git_fetches_total)",
            "grouping by \"provider\"",
        ),
    ] {
        let problems = unknown_names(bogus, &exported, &[]);
        assert!(
            problems.iter().any(|p| p.contains(said)),
            "{bogus}: {problems:?}"
        );
    }
}

// ---------------------------------------------------------------- the leader Lease

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";

fn elector(client: Client, identity: &str) -> LeaderElector {
    let mut cfg = LeaderConfig::new("ops");
    cfg.identity = identity.into();
    LeaderElector::new(client, cfg)
}

fn lease(holder: Option<&str>, resource_version: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "tooljet-operator", "namespace": "ops", "resourceVersion": resource_version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": 3,
                 "renewTime": "2026-01-01T00:00:00.000000Z", "acquireTime": "2026-01-01T00:00:00.000000Z"}})
}

#[tokio::test]
async fn no_lease_is_created_held_by_us() {
    let (client, server) = mock_api(|s| {
        if s.method == "GET" {
            not_found()
        } else {
            (StatusCode::CREATED, s.json())
        }
    });
    let mut e = elector(client, "pod-a-1");
    assert_eq!(e.step().await.expect("step"), Standing::Leading);
    drop(e);
    let seen = finish(server).await;
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].method, "GET");
    assert!(
        seen[0]
            .uri
            .starts_with(&format!("{LEASES}/tooljet-operator"))
    );
    assert_eq!(seen[1].method, "POST");
    assert!(seen[1].uri.starts_with(LEASES));
    let body = seen[1].json();
    assert_eq!(body["metadata"]["name"], "tooljet-operator");
    assert_eq!(body["spec"]["holderIdentity"], "pod-a-1");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
    assert!(body["spec"]["renewTime"].is_string());
}

#[tokio::test]
async fn own_lease_is_renewed_with_its_resource_version() {
    let (client, server) = mock_api(|s| {
        if s.method == "GET" {
            (StatusCode::OK, lease(Some("pod-a-1"), "41"))
        } else {
            (StatusCode::OK, s.json())
        }
    });
    let mut e = elector(client, "pod-a-1");
    assert_eq!(e.step().await.expect("step"), Standing::Leading);
    drop(e);
    let seen = finish(server).await;
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[1].method, "PUT");
    assert!(
        seen[1]
            .uri
            .starts_with(&format!("{LEASES}/tooljet-operator"))
    );
    let body = seen[1].json();
    assert_eq!(
        body["metadata"]["resourceVersion"], "41",
        "optimistic concurrency"
    );
    assert_eq!(body["spec"]["holderIdentity"], "pod-a-1");
    assert_eq!(
        body["spec"]["leaseTransitions"], 3,
        "a renewal is no transition"
    );
    assert_ne!(body["spec"]["renewTime"], "2026-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn a_lease_held_by_another_is_followed_and_a_free_one_taken() {
    let (client, server) = mock_api(|s| {
        if s.method == "GET" {
            (StatusCode::OK, lease(Some("pod-b-7"), "5"))
        } else {
            (StatusCode::OK, s.json())
        }
    });
    let mut e = elector(client, "pod-a-1");
    assert_eq!(
        e.step().await.expect("step"),
        Standing::Following {
            holder: "pod-b-7".into()
        }
    );
    drop(e);
    let seen = finish(server).await;
    assert_eq!(seen.len(), 1, "no write to another's Lease: {seen:#?}");

    let (client, server) = mock_api(|s| {
        if s.method == "GET" {
            (StatusCode::OK, lease(None, "6"))
        } else {
            (StatusCode::OK, s.json())
        }
    });
    let mut e = elector(client, "pod-a-1");
    assert_eq!(e.step().await.expect("step"), Standing::Leading);
    drop(e);
    let seen = finish(server).await;
    let body = seen[1].json();
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(body["metadata"]["resourceVersion"], "6");
    assert_eq!(body["spec"]["holderIdentity"], "pod-a-1");
    assert_eq!(body["spec"]["leaseTransitions"], 4);
}

#[tokio::test]
async fn losing_a_race_is_an_error_and_release_clears_only_our_hold() {
    let (client, server) = mock_api(|s| {
        if s.method == "GET" {
            (StatusCode::OK, lease(None, "6"))
        } else {
            (
                StatusCode::CONFLICT,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
            )
        }
    });
    let mut e = elector(client, "pod-a-1");
    assert!(e.step().await.is_err(), "409: another replica won");
    drop(e);
    finish(server).await;

    let (client, server) = mock_api(|s| {
        if s.method == "GET" {
            (StatusCode::OK, lease(Some("pod-a-1"), "8"))
        } else {
            (StatusCode::OK, s.json())
        }
    });
    let mut e = elector(client, "pod-a-1");
    e.release().await.expect("release");
    drop(e);
    let seen = finish(server).await;
    assert_eq!(seen[1].method, "PUT");
    let body = seen[1].json();
    assert!(body["spec"].get("holderIdentity").is_none(), "{body}");
    assert_eq!(body["metadata"]["resourceVersion"], "8");

    let (client, server) = mock_api(|_| (StatusCode::OK, lease(Some("pod-b-7"), "9")));
    let mut e = elector(client, "pod-a-1");
    e.release().await.expect("release");
    drop(e);
    assert_eq!(
        finish(server).await.len(),
        1,
        "another's Lease is left alone"
    );
}

/// Sets its flag when dropped: shows the controllers were stopped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn never_shut_down() -> futures::future::Shared<futures::future::BoxFuture<'static, ()>> {
    use futures::FutureExt;
    futures::future::pending::<()>().boxed().shared()
}

// Paused time: the 5s retry period passes as soon as everything else waits (no real sleeping).
#[tokio::test(start_paused = true)]
async fn a_leader_that_finds_another_holder_stops_its_controllers_and_fails() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tooljet_operator::controller::ControllerError;
    use tooljet_operator::controller::run_when_leader;

    let gets = Arc::new(AtomicUsize::new(0));
    let gets_in_mock = gets.clone();
    let (client, server) = mock_api(move |s| match s.method.as_str() {
        // First look: no Lease (we create it); then another replica holds it.
        "GET" if gets_in_mock.fetch_add(1, Ordering::SeqCst) == 0 => not_found(),
        "GET" => (StatusCode::OK, lease(Some("pod-b-7"), "12")),
        _ => (StatusCode::CREATED, s.json()),
    });
    let readiness = Readiness::default();
    let started = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));
    let (started_c, stopped_c) = (started.clone(), stopped.clone());
    let result = run_when_leader(
        elector(client, "pod-a-1"),
        readiness,
        never_shut_down(),
        move || async move {
            let _guard = DropFlag(stopped_c);
            started_c.store(true, Ordering::SeqCst);
            futures::future::pending::<Result<(), ControllerError>>().await
        },
    )
    .await;
    assert!(
        matches!(result, Err(ControllerError::LeadershipLost { ref lease }) if lease == "tooljet-operator"),
        "{result:?}"
    );
    assert!(
        started.load(Ordering::SeqCst),
        "controllers ran while leading"
    );
    assert!(
        stopped.load(Ordering::SeqCst),
        "controllers stopped on loss"
    );
    let seen = finish(server).await;
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "POST", "GET"],
        "no write to the other's Lease"
    );
}

#[tokio::test(start_paused = true)]
async fn a_standby_is_ready_and_takes_over_once_the_lease_is_released() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tooljet_operator::controller::run_when_leader;

    let gets = Arc::new(AtomicUsize::new(0));
    let gets_in_mock = gets.clone();
    let (client, server) = mock_api(move |s| match s.method.as_str() {
        // Held by another twice, then released (no holder): taken over. After the controllers
        // end, the release reads it held by us.
        "GET" => match gets_in_mock.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => (StatusCode::OK, lease(Some("pod-b-7"), "20")),
            2 => (StatusCode::OK, lease(None, "21")),
            _ => (StatusCode::OK, lease(Some("pod-a-1"), "22")),
        },
        _ => (StatusCode::OK, s.json()),
    });
    let readiness = Readiness::default();
    let ready_when_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (r, flag) = (readiness.clone(), ready_when_started.clone());
    run_when_leader(
        elector(client, "pod-a-1"),
        readiness,
        never_shut_down(),
        move || async move {
            flag.store(r.is_ready(), Ordering::SeqCst);
            Ok(())
        },
    )
    .await
    .expect("controllers ended normally");
    assert!(
        ready_when_started.load(Ordering::SeqCst),
        "ready as a standby, before leading"
    );
    let seen = finish(server).await;
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    // follow, follow, take over (PUT), then release on the way out (GET, PUT).
    assert_eq!(
        methods,
        ["GET", "GET", "GET", "PUT", "GET", "PUT"],
        "{seen:#?}"
    );
    assert_eq!(seen[3].json()["spec"]["holderIdentity"], "pod-a-1");
    assert!(seen[5].json()["spec"].get("holderIdentity").is_none());
}

/// A slow API server: every Lease renewal takes 4 s (under the 5 s step limit). The renewals run
/// beside the controllers, which keep working meanwhile (they stalled for each renewal when the
/// renewal ran inside their future).
#[tokio::test(start_paused = true)]
async fn slow_lease_renewals_do_not_stall_the_controllers() {
    use http::Response;
    use kube::client::Body;
    use std::sync::Mutex;
    use tokio::time::{Duration, Instant};
    use tooljet_operator::controller::run_when_leader;

    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let slow = request.method() == http::Method::PUT;
            let bytes = request.into_body().collect_bytes().await.expect("body");
            let answer = if slow {
                serde_json::from_slice::<Value>(&bytes).expect("lease json")
            } else {
                lease(Some("pod-a-1"), "41")
            };
            tokio::spawn(async move {
                if slow {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                }
                send.send_response(
                    Response::builder()
                        .status(StatusCode::OK)
                        .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                        .expect("response"),
                );
            });
        }
    });
    let client = Client::new(service, "default");
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let ticks_in_controllers = ticks.clone();
    run_when_leader(
        elector(client, "pod-a-1"),
        Readiness::default(),
        never_shut_down(),
        move || async move {
            // Controllers that work every 100 ms for 30 s (six renewals).
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ticks_in_controllers
                    .lock()
                    .expect("ticks")
                    .push(Instant::now());
            }
            Ok(())
        },
    )
    .await
    .expect("controllers ended normally");
    api.abort();
    let ticks = ticks.lock().expect("ticks");
    let longest = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .expect("several ticks");
    assert!(
        longest < Duration::from_secs(1),
        "the controllers paused for {longest:?} while the Lease was renewed"
    );
}

/// A verified push makes the controller's cached ref listings of that repository unusable: the
/// reconcile it enqueues sees the new commit at once, even inside the reuse window.
#[tokio::test]
async fn a_verified_push_makes_the_next_resolve_list_the_refs_again() {
    use git_fixtures::{GitDaemon, TestRepo};
    use tooljet_operator::source::{Credentials, GitRef, SourceSpec};

    let repo = TestRepo::new();
    repo.write("README.md", "one");
    let first = repo.commit("one");
    repo.publish();
    let daemon = GitDaemon::start(repo.base_dir());
    let url = daemon.url(&repo.served_name());
    let dir = tempfile::tempdir().expect("tempdir");
    let source = SourceCache::new(CacheConfig {
        dir: dir.path().to_owned(),
        reuse_ref_checks: std::time::Duration::from_secs(3600),
        ..CacheConfig::default()
    });
    let spec = SourceSpec {
        url: url.clone(),
        git_ref: GitRef::Branch("master".into()),
    };
    let creds = Credentials::Anonymous;
    assert_eq!(
        source
            .resolve(&spec, &creds, None)
            .await
            .expect("resolve")
            .commit
            .sha,
        first
    );

    repo.write("README.md", "two");
    let second = repo.commit("two");
    repo.publish();
    let mut h = hooks_over(
        all_secrets(),
        vec![app("team", "daemon", &url)],
        source.clone(),
    );
    // Inside the window, without the push announced, the cached listing still answers.
    assert_eq!(
        source
            .resolve(&spec, &creds, Some(&first))
            .await
            .expect("resolve")
            .commit
            .sha,
        first
    );

    let bearer = format!("Bearer {GENERIC_TOKEN}");
    let body = serde_json::to_vec(&json!({"repository": url})).expect("json");
    let (status, answer) = call(
        &h.router,
        "/hooks/generic",
        &[("authorization", &bearer)],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(drain(&mut h.queue), names(&["team/daemon"]));
    let after = source
        .resolve(&spec, &creds, Some(&first))
        .await
        .expect("resolve");
    assert_eq!(after.commit.sha, second);
    assert_eq!(source.stats(&url).checks, 2);
}
