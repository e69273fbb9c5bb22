//! `status.changes` and the messages that carry what an update or a drift changes inside the app,
//! through the controller's reconcile against kube's mock API server, the real stand-in and a
//! real git repository: under `updatePolicy: Manual` the reviewer sees what the waiting commit
//! changes before approving it; the Updated Event says what the approved one changed; an edit
//! made in ToolJet is described by what the restore undoes.

use kube_mock::{Seen, base64_of, finish, mock_api, ready_store, secret_cache};
use test_support::kube_mock;

use std::sync::Arc;
use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::ORDERS_DASHBOARD;
use http::StatusCode;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tooljet_operator::api::{AppImport, ToolJetInstance};
use tooljet_operator::controller::app_import::{Context, reconcile};
use tooljet_operator::controller::caches::Cache;
use tooljet_operator::source::{CacheConfig, SourceCache};
use tooljet_standin::StandIn;

const NS: &str = "team";
const API_KEY: &str = "changes-test-key";
const STATUS_PATH: &str = "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/appimports/a/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/team/events";
const APP: &str = ORDERS_DASHBOARD.0;

fn app_json(url: &str, extra_spec: Value) -> Value {
    let mut v = json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": "a", "namespace": NS, "uid": "u-1", "generation": 2,
                     "resourceVersion": "7", "finalizers": ["gitops.tooljet.dev/finalizer"]},
        "spec": {"environment": "development",
                 "source": {"url": url, "ref": {"branch": "master"}, "app": APP}},
    });
    if let (Some(spec), Value::Object(extra)) = (v["spec"].as_object_mut(), extra_spec) {
        spec.extend(extra);
    }
    v
}

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

/// A git repository holding the fixture app, and the edit a developer pushes later: the refresh
/// button's label and one query option changed.
struct Repo {
    repo: TestRepo,
}

impl Repo {
    fn new() -> (Repo, String) {
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", APP, "v1", ORDERS_DASHBOARD.1);
        let first = repo.commit("first version");
        repo.publish();
        (Repo { repo }, first)
    }

    fn push_edit(&self) -> String {
        let mut bundle: Value = serde_json::from_slice(ORDERS_DASHBOARD.1).expect("json");
        let app = &mut bundle["app"][0]["definition"]["appV2"];
        for (list, name, pointer, value) in [
            (
                "components",
                "refresh_button",
                "/properties/text/value",
                json!("Reload"),
            ),
            (
                "dataQueries",
                "list_orders",
                "/options/runOnPageLoad",
                json!(false),
            ),
        ] {
            let row = app[list]
                .as_array_mut()
                .expect("list")
                .iter_mut()
                .find(|r| r["name"] == name)
                .expect("row");
            *row.pointer_mut(pointer).expect("field") = value;
        }
        self.repo.git_sync_write(
            "app-1",
            APP,
            "v1",
            &serde_json::to_vec_pretty(&bundle).expect("json"),
        );
        let sha = self.repo.commit("reload button");
        self.repo.publish();
        sha
    }
}

/// One controller over one git cache; each reconcile runs against a fresh mock API server that
/// echoes the object, and returns the last status written and the Events' notes by reason.
struct Rig {
    standin: StandIn,
    store: Cache<ToolJetInstance>,
    source: SourceCache,
    _cache: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let standin = StandIn::builder()
            .admin_api_key(API_KEY)
            .start()
            .await
            .expect("stand-in starts");
        let store = ready_store(vec![standin_instance(&standin)]);
        let cache = tempfile::tempdir().expect("tempdir");
        let source = SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            // Every reconcile lists the remote's refs: a push is seen at once.
            reuse_ref_checks: Duration::ZERO,
            ..CacheConfig::default()
        });
        Rig {
            standin,
            store,
            source,
            _cache: cache,
        }
    }

    async fn reconcile(&self, app: &Value) -> (Value, Vec<(String, String)>) {
        let echoed = app.clone();
        let (client, server) = mock_api(move |_: &Seen| (StatusCode::OK, echoed.clone()));
        let reporter = Reporter {
            controller: "tooljet-operator".into(),
            instance: None,
        };
        let ctx = Arc::new(Context::new(
            client.clone(),
            self.source.clone(),
            Recorder::new(client, reporter),
            self.store.clone(),
            secret_cache(vec![admin_secret()]),
        ));
        let obj: AppImport = serde_json::from_value(app.clone()).expect("app");
        reconcile(Arc::new(obj), ctx.clone())
            .await
            .expect("reconcile");
        drop(ctx);
        let seen = finish(server).await;
        let status = seen
            .iter()
            .rev()
            .find(|s| s.uri.starts_with(STATUS_PATH))
            .map(Seen::json)
            .expect("a status write")["status"]
            .clone();
        let events = seen
            .iter()
            .filter(|s| s.uri.starts_with(EVENTS_PATH) && s.method == "POST")
            .map(|s| {
                let e = s.json();
                (
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                    e["note"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        (status, events)
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

// The diff counts the page a changed component is on as a changed page.
const EXPECTED: &str = "1 page, 1 component, 1 query changed";

#[tokio::test]
async fn manual_shows_what_the_waiting_commit_changes_before_approval() {
    let rig = Rig::new().await;
    let (repo, first) = Repo::new();
    let mut app = app_json(&repo.repo.file_url(), json!({"updatePolicy": "Manual"}));

    let (status, _) = rig.reconcile(&app).await;
    assert_eq!(status["lastAppliedCommit"]["sha"], first.as_str());
    assert!(
        status["changes"].is_null(),
        "a first import has nothing to compare: {status}"
    );
    app["status"] = status;

    let second = repo.push_edit();
    let writes = rig.standin.write_count();
    let (status, events) = rig.reconcile(&app).await;
    assert_eq!(
        status["lastAppliedCommit"]["sha"],
        first.as_str(),
        "waits for approval"
    );
    assert_eq!(
        rig.standin.write_count(),
        writes,
        "nothing written to ToolJet"
    );
    let pending = &status["changes"]["pending"];
    assert_eq!(pending["summary"], EXPECTED, "{status}");
    assert_eq!(pending["from"], first.as_str());
    assert_eq!(pending["commit"], second.as_str());
    assert_eq!(
        (
            &pending["pages"],
            &pending["components"],
            &pending["queries"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    let waiting = condition(&status, "UpdateAvailable")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(waiting.contains(EXPECTED), "{waiting}");
    assert!(waiting.len() < 400, "bounded: {waiting}");
    let ready = condition(&status, "Ready")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(ready.contains(EXPECTED), "{ready}");
    assert!(events.is_empty(), "nothing applied, no Event: {events:?}");
    app["status"] = status;

    // A reconcile that finds nothing new keeps the summary as it was.
    let (status, _) = rig.reconcile(&app).await;
    assert_eq!(status["changes"], app["status"]["changes"]);

    // Approved: the update is applied, its Event says what it changed, nothing waits.
    app["metadata"]["annotations"] = json!({"gitops.tooljet.dev/approve": second.as_str()});
    let (status, events) = rig.reconcile(&app).await;
    assert_eq!(status["lastAppliedCommit"]["sha"], second.as_str());
    assert!(status["changes"]["pending"].is_null(), "{status}");
    assert_eq!(status["changes"]["lastApplied"]["summary"], EXPECTED);
    assert_eq!(status["changes"]["lastApplied"]["from"], first.as_str());
    assert!(condition(&status, "UpdateAvailable").is_null());
    let updated: Vec<&String> = events
        .iter()
        .filter(|(reason, _)| reason == "Updated")
        .map(|(_, note)| note)
        .collect();
    assert_eq!(updated.len(), 1, "{events:?}");
    assert!(updated[0].contains(EXPECTED), "{}", updated[0]);
}

#[tokio::test]
async fn a_restore_says_what_the_edit_in_tooljet_was() {
    let rig = Rig::new().await;
    let (repo, _first) = Repo::new();
    let mut app = app_json(&repo.repo.file_url(), json!({}));
    let (status, _) = rig.reconcile(&app).await;
    let id = status["app"]["id"].as_str().expect("app id").to_owned();
    app["status"] = status;

    assert!(rig.standin.edit_query_as_user(&id, Some("list_orders")));
    let (status, events) = rig.reconcile(&app).await;
    let drifted = condition(&status, "Drifted");
    assert_eq!(drifted["reason"], "DriftCorrected", "{status}");
    let message = drifted["message"].as_str().unwrap_or_default();
    assert!(message.contains("(1 query changed)"), "{message}");
    let note = events
        .iter()
        .find(|(reason, _)| reason == "DriftCorrected")
        .map(|(_, note)| note.as_str())
        .unwrap_or_default();
    assert!(note.contains("(1 query changed)"), "{events:?}");
    assert!(
        status["changes"].is_null(),
        "a restore is no update from git: {status}"
    );
}
