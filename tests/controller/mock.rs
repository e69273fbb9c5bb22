//! Request-shape tests of the AppImport controller against kube's tower-test mock API server:
//! the finalizer is added with a JSON patch, status is written by server-side apply on the status
//! subresource (never the app JSON), and Events go to events.k8s.io/v1. The ToolJet side is the
//! real stand-in and the git side a real repository.

use kube_mock::{Seen, base64_of, finish, mock_api, ready_store, secret_cache};
use test_support::kube_mock;

use std::sync::Arc;
use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use http::StatusCode;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tooljet_operator::api::{AppImport, ToolJetInstance};
use tooljet_operator::controller::app_import::{Context, reconcile};
use tooljet_operator::controller::caches::Cache;
use tooljet_operator::source::{CacheConfig, SourceCache};
use tooljet_standin::StandIn;

const NS: &str = "team";
const API_KEY: &str = "mock-test-key";
const STATUS_PATH: &str = "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/appimports/a/status";

fn app_json(extra_meta: Value, extra_spec: Value, url: &str) -> Value {
    let mut v = json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": "a", "namespace": NS, "uid": "u-1", "generation": 2,
                     "resourceVersion": "7", "finalizers": ["gitops.tooljet.dev/finalizer"]},
        "spec": {"environment": "development",
                 "source": {"url": url, "ref": {"branch": "master"}, "app": CREDIT_CARD.0}},
    });
    merge(&mut v["metadata"], extra_meta);
    merge(&mut v["spec"], extra_spec);
    v
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

/// The ToolJetInstance of `standin`, logging in with the admin key of [`admin_secret`].
fn standin_instance(standin: &StandIn) -> ToolJetInstance {
    serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
        "metadata": {"name": "tj", "namespace": NS, "uid": "i-1", "resourceVersion": "3"},
        "spec": {"url": standin.base_url(), "environment": "development",
                 "workspaceId": standin.workspace_id(),
                 "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}}}
    }))
    .expect("instance")
}

fn admin_secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tj-admin", "namespace": NS, "resourceVersion": "9"},
        "data": {"api-key": base64_of(API_KEY)}})
}

/// A mock API server that echoes `app` for everything (Secrets come from the Secret cache).
fn serve_app(app: Value) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
    mock_api(echo_app(app))
}

fn context(
    client: Client,
    store: Cache<ToolJetInstance>,
    cache_dir: &std::path::Path,
) -> Arc<Context> {
    let source = SourceCache::new(CacheConfig {
        dir: cache_dir.to_owned(),
        ..CacheConfig::default()
    });
    context_over(client, store, source)
}

/// A context over an existing git cache (several reconciles sharing one, as in the controller).
fn context_over(
    client: Client,
    store: Cache<ToolJetInstance>,
    source: SourceCache,
) -> Arc<Context> {
    Arc::new(Context::new(
        client.clone(),
        source,
        Recorder::new(client, reporter()),
        store,
        secret_cache(vec![admin_secret()]),
    ))
}

fn echo_app(app: Value) -> impl Fn(&Seen) -> (StatusCode, Value) {
    move |_| (StatusCode::OK, app.clone())
}

#[tokio::test]
async fn finalizer_is_added_with_a_json_patch_on_the_object() {
    let mut app = app_json(json!({}), json!({}), "file:///nowhere");
    app["metadata"]["finalizers"] = json!([]);
    let (client, server) = mock_api(echo_app(app.clone()));
    let store = ready_store(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
    drop(ctx);
    let seen = finish(server).await;
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let patch = &seen[0];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(
        patch.uri,
        "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/appimports/a?"
    );
    assert_eq!(patch.content_type, "application/json-patch+json");
    let ops = patch.json();
    let adds: Vec<&Value> = ops
        .as_array()
        .expect("json patch is a list")
        .iter()
        .filter(|op| op["op"] == "add")
        .collect();
    assert!(
        adds.iter().any(|op| op["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/metadata/finalizers"))
            && op["value"]
                .to_string()
                .contains("gitops.tooljet.dev/finalizer")),
        "{ops}"
    );
}

/// A ToolJetInstance watch that never delivers its first list (e.g. RBAC refuses it): the reconcile
/// does not hang; after a bounded wait it reports a retryable `CacheNotSynced` that names RBAC.
#[tokio::test(start_paused = true)]
async fn an_instance_watch_that_never_lists_is_reported_not_waited_for_forever() {
    use tooljet_operator::controller::caches::CacheSynced;
    let app = app_json(json!({}), json!({}), "file:///nowhere");
    let (client, server) = mock_api(echo_app(app.clone()));
    let (store, _writer) = kube::runtime::reflector::store::<ToolJetInstance>();
    let never_listed = Cache {
        store,
        synced: CacheSynced::default(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, never_listed, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(action, Action::requeue(Duration::from_secs(5)), "backoff");
    drop(ctx);
    let seen = finish(server).await;
    let status = seen
        .iter()
        .rev()
        .find(|s| s.uri.starts_with(STATUS_PATH))
        .map(Seen::json)
        .expect("a status write");
    let ready = status["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready")
        .clone();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "CacheNotSynced");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("RBAC")),
        "{ready}"
    );
}

#[tokio::test]
async fn missing_instance_is_stalled_by_ssa_status_and_a_warning_event() {
    let app = app_json(
        json!({"annotations": {"gitops.tooljet.dev/reconcile-requested-at": "now-1"}}),
        json!({}),
        "file:///nowhere",
    );
    let (client, server) = mock_api(echo_app(app.clone()));
    let store = ready_store(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    // Stalled waits for the interval (default 5m), no backoff.
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    drop(ctx);
    let seen = finish(server).await;
    assert_eq!(seen.len(), 2, "{seen:#?}");

    let status = &seen[0];
    assert_eq!(status.method, "PATCH");
    assert_eq!(
        status.uri,
        format!("{STATUS_PATH}?&force=true&fieldManager=tooljet-operator")
    );
    assert_eq!(status.content_type, "application/apply-patch+yaml");
    let body = status.json();
    assert_eq!(body["apiVersion"], "gitops.tooljet.dev/v1alpha1");
    assert_eq!(body["kind"], "AppImport");
    assert!(
        body.get("spec").is_none() && body.get("metadata").is_none(),
        "{body}"
    );
    assert_eq!(body["status"]["lastHandledReconcileAt"], "now-1");
    // kstatus: a refusal before the engine still describes this generation...
    assert_eq!(body["status"]["observedGeneration"], 2);
    // ...but nothing was applied for it.
    assert!(
        body["status"].get("lastAppliedGeneration").is_none(),
        "{body}"
    );
    let conditions = body["status"]["conditions"].as_array().expect("conditions");
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InstanceNotFound");
    assert_eq!(ready["observedGeneration"], 2);
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("instanceRef"))
    );
    let stalled = conditions
        .iter()
        .find(|c| c["type"] == "Stalled")
        .expect("Stalled");
    assert_eq!(stalled["status"], "True");

    let event = &seen[1];
    assert_eq!(event.method, "POST");
    assert_eq!(event.uri, "/apis/events.k8s.io/v1/namespaces/team/events?");
    let ev = event.json();
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "InstanceNotFound");
    assert_eq!(ev["regarding"]["name"], "a");
    assert_eq!(ev["regarding"]["kind"], "AppImport");
    assert_eq!(ev["reportingController"], "tooljet-operator");
}

#[tokio::test]
async fn suspended_writes_only_status_with_reason_suspended() {
    let app = app_json(
        json!({"annotations": {"gitops.tooljet.dev/reconcile-requested-at": "r2"}}),
        json!({"suspend": true}),
        "file:///nowhere",
    );
    let (client, server) = mock_api(echo_app(app.clone()));
    let store = ready_store(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
    drop(ctx);
    let seen = finish(server).await;
    assert_eq!(seen.len(), 1, "nothing but the status patch: {seen:#?}");
    assert!(seen[0].uri.starts_with(STATUS_PATH));
    let body = seen[0].json();
    assert_eq!(body["status"]["conditions"][0]["reason"], "Suspended");
    assert_eq!(body["status"]["lastHandledReconcileAt"], "r2");
}

#[tokio::test]
async fn import_checkpoints_status_publishes_imported_and_delete_policy_removes_the_app() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let repo = TestRepo::new();
    repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
    repo.commit("one app");
    repo.publish();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let instance = standin_instance(&standin);
    let app = app_json(json!({}), json!({}), &repo.file_url());
    let instance_for_delete = instance.clone();
    let (client, server) = mock_api(echo_app(app.clone()));
    let store = ready_store(vec![instance]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    drop(ctx);
    let seen = finish(server).await;

    assert!(
        !seen.iter().any(|s| s.uri.contains("/secrets")),
        "Secrets come from the watched cache, never a GET: {seen:#?}"
    );
    let patches: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.uri.starts_with(STATUS_PATH))
        .collect();
    assert!(
        patches.len() >= 2,
        "a checkpoint before the final status: {seen:#?}"
    );
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml");
        // The bundle's content never reaches the API server.
        assert!(!p.body.contains("\"definition\""), "{}", p.body);
        assert!(
            p.body.len() < 8_000,
            "status is small: {} bytes",
            p.body.len()
        );
    }
    let last = patches.last().expect("final status").json();
    let ready = last["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready")
        .clone();
    assert_eq!(ready["status"], "True", "{last}");
    assert_eq!(last["status"]["observedGeneration"], 2);
    assert_eq!(last["status"]["lastAppliedGeneration"], 2);
    let app_id = last["status"]["app"]["id"]
        .as_str()
        .expect("app id")
        .to_owned();
    assert!(
        standin.apps().iter().any(|a| a.id == app_id),
        "the app exists in ToolJet"
    );
    assert_eq!(last["status"]["lastAppliedCommit"]["sha"], repo.head());

    let events: Vec<Value> = seen
        .iter()
        .filter(|s| s.method == "POST" && s.uri.contains("/apis/events.k8s.io/v1/"))
        .map(Seen::json)
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Imported" && e["type"] == "Normal"),
        "{events:#?}"
    );

    // Deleting it with deletionPolicy: Delete removes the app from ToolJet, then the finalizer.
    let mut deleted = app_json(
        json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        json!({"deletionPolicy": "Delete"}),
        &repo.file_url(),
    );
    deleted["status"] = last["status"].clone();
    let (client, server) = mock_api(echo_app(deleted.clone()));
    let store = ready_store(vec![instance_for_delete]);
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(deleted).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("cleanup");
    assert_eq!(action, Action::await_change());
    drop(ctx);
    let seen = finish(server).await;
    assert!(
        standin.apps().iter().all(|a| a.id != app_id),
        "the app is gone from ToolJet"
    );
    let last = seen.last().expect("finalizer removal");
    assert_eq!(last.content_type, "application/json-patch+json");
    assert!(last.body.contains("/metadata/finalizers/0"), "{seen:#?}");
}

#[tokio::test]
async fn skip_cleanup_annotation_releases_the_finalizer_without_touching_tooljet() {
    let app = app_json(
        json!({"deletionTimestamp": "2026-01-01T00:00:00Z",
               "annotations": {"gitops.tooljet.dev/skip-finalizer-cleanup": "true"}}),
        json!({"deletionPolicy": "Delete"}),
        "file:///nowhere",
    );
    let (client, server) = mock_api(echo_app(app.clone()));
    let store = ready_store(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    let action = reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(action, Action::await_change());
    drop(ctx);
    let seen = finish(server).await;
    assert_eq!(
        seen.len(),
        2,
        "an Event, then the finalizer removal: {seen:#?}"
    );
    let ev = seen[0].json();
    assert_eq!(
        (ev["type"].as_str(), ev["reason"].as_str()),
        (Some("Warning"), Some("CleanupSkipped"))
    );
    let patch = &seen[1];
    assert_eq!(patch.content_type, "application/json-patch+json");
    let ops = patch.json();
    assert!(
        ops.as_array().is_some_and(|o| o
            .iter()
            .any(|op| op["op"] == "remove" && op["path"] == "/metadata/finalizers/0")),
        "{ops}"
    );
}

#[tokio::test]
async fn deletion_with_a_missing_instance_does_not_block() {
    let app = app_json(
        json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        json!({}),
        "file:///nowhere",
    );
    let (client, server) = mock_api(echo_app(app.clone()));
    let store = ready_store(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(client, store, dir.path());
    let obj: AppImport = serde_json::from_value(app).expect("app");
    reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    drop(ctx);
    let seen = finish(server).await;
    let ev = seen[0].json();
    assert_eq!(ev["reason"], "CleanupSkipped");
    assert!(
        ev["note"]
            .as_str()
            .is_some_and(|n| n.contains("InstanceNotFound") || n.contains("no ToolJetInstance")),
        "{ev}"
    );
    assert!(seen[1].body.contains("/metadata/finalizers/0"), "{seen:#?}");
}

#[tokio::test]
async fn instance_check_logs_in_and_applies_ready_with_the_workspace() {
    use tooljet_operator::controller::instance::{
        InstanceContext, reconcile as reconcile_instance,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let instance = json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
        "metadata": {"name": "tj", "namespace": NS, "generation": 5},
        "spec": {"url": standin.base_url(), "environment": "development",
                 "workspaceId": standin.workspace_id(),
                 "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}}}
    });
    let run = |key: &'static str| {
        let instance = instance.clone();
        async move {
            let secret = json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "tj-admin", "namespace": NS, "resourceVersion": "1"},
                "data": {"api-key": base64_of(key)}});
            let (client, server) = mock_api(echo_app(instance.clone()));
            let ctx = Arc::new(InstanceContext {
                client: client.clone(),
                secrets: secret_cache(vec![secret]),
                recorder: Recorder::new(client, reporter()),
            });
            let obj: ToolJetInstance = serde_json::from_value(instance).expect("instance");
            let action = reconcile_instance(Arc::new(obj), ctx.clone())
                .await
                .expect("reconcile");
            drop(ctx);
            (action, finish(server).await)
        }
    };

    let (action, seen) = run(API_KEY).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let (patches, events) = status_patches_and_events(&seen);
    assert_eq!(
        patches.len() + events.len(),
        seen.len(),
        "no other request; the Secret is cached: {seen:#?}"
    );
    assert_eq!(patches.len(), 1, "one status patch: {seen:#?}");
    assert_eq!(event_reasons(&events), ["Normal Connected"]);
    let patch = patches[0];
    assert_eq!(
        patch.uri,
        "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/tooljetinstances/tj/status?&force=true&fieldManager=tooljet-operator"
    );
    let body = patch.json();
    assert_eq!(body["kind"], "ToolJetInstance");
    assert_eq!(body["status"]["workspaceId"], standin.workspace_id());
    assert_eq!(body["status"]["serverVersion"], standin.server_version());
    assert_eq!(body["status"]["observedGeneration"], 5);
    assert_eq!(body["status"]["conditions"][0]["status"], "True");
    assert!(!patch.body.contains(API_KEY), "no secret in status");

    let (action, seen) = run("wrong-key").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let (patches, events) = status_patches_and_events(&seen);
    let body = patches[0].json();
    assert_eq!(body["status"]["conditions"][0]["status"], "False");
    assert_eq!(body["status"]["conditions"][0]["reason"], "LoginFailed");
    let stalled = &body["status"]["conditions"][1];
    assert_eq!(
        (&stalled["type"], &stalled["status"], &stalled["reason"]),
        (&json!("Stalled"), &json!("True"), &json!("LoginFailed")),
        "kstatus: a login refused needs the user"
    );
    assert_eq!(event_reasons(&events), ["Warning LoginFailed"]);
    for request in &seen {
        assert!(
            !request.body.contains("wrong-key"),
            "no secret in status or Events"
        );
    }
}

fn reporter() -> Reporter {
    Reporter {
        controller: "tooljet-operator".into(),
        instance: None,
    }
}

/// The status patches and the Events among the requests a reconcile made.
fn status_patches_and_events(seen: &[Seen]) -> (Vec<&Seen>, Vec<&Seen>) {
    let patches = seen.iter().filter(|r| r.uri.contains("/status?")).collect();
    let events = seen
        .iter()
        .filter(|r| r.method == "POST" && r.uri.contains("/events"))
        .collect();
    (patches, events)
}

/// "type reason" of each Event posted.
fn event_reasons(events: &[&Seen]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let body = e.json();
            format!(
                "{} {}",
                body["type"].as_str().unwrap_or_default(),
                body["reason"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// The controller reuses a ref listing for a few seconds across AppImports of one repository; a
/// new `reconcile-requested-at` value is an explicit request and lists the refs again.
#[tokio::test]
async fn a_reconcile_request_sees_a_push_inside_the_reuse_window() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let repo = TestRepo::new();
    repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
    let first = repo.commit("v1");
    repo.publish();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let store = ready_store(vec![standin_instance(&standin)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = SourceCache::new(CacheConfig {
        dir: dir.path().to_owned(),
        reuse_ref_checks: Duration::from_secs(3600),
        ..CacheConfig::default()
    });
    // Reconciles `app` and returns the last status the controller wrote.
    let reconcile_once = |app: Value| {
        let (store, source) = (store.clone(), source.clone());
        async move {
            let (client, server) = serve_app(app.clone());
            let ctx = context_over(client, store, source);
            let obj: AppImport = serde_json::from_value(app).expect("app");
            reconcile(Arc::new(obj), ctx.clone())
                .await
                .expect("reconcile");
            drop(ctx);
            let seen = finish(server).await;
            seen.iter()
                .rev()
                .find(|s| s.uri.starts_with(STATUS_PATH))
                .map(Seen::json)
                .expect("a status write")["status"]
                .clone()
        }
    };
    let mut app = app_json(json!({}), json!({}), &repo.file_url());
    app["status"] = reconcile_once(app.clone()).await;
    assert_eq!(app["status"]["lastAppliedCommit"]["sha"], first.as_str());

    let mut bundle: Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
    bundle["app"][0]["definition"]["appV2"]["icon"] = json!("v2");
    repo.git_sync_write(
        "app-1",
        CREDIT_CARD.0,
        "v2",
        &serde_json::to_vec(&bundle).expect("json"),
    );
    let second = repo.commit("v2");
    repo.publish();

    // A periodic reconcile inside the window reuses the listing: the push waits.
    app["status"] = reconcile_once(app.clone()).await;
    assert_eq!(app["status"]["lastAppliedCommit"]["sha"], first.as_str());
    // An explicit request lists the refs again and applies the push.
    app["metadata"]["annotations"] = json!({"gitops.tooljet.dev/reconcile-requested-at": "push-1"});
    app["status"] = reconcile_once(app.clone()).await;
    assert_eq!(app["status"]["lastAppliedCommit"]["sha"], second.as_str());
    assert_eq!(app["status"]["lastHandledReconcileAt"], "push-1");
}
