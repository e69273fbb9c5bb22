//! The AppExport controller wired into `run`: against the in-process API server (AppExport,
//! ToolJetInstance and Secret from fixed objects), the ToolJet stand-in and a real repository,
//! a reconcile exports the app, pushes one commit and writes status (Ready, lastCommit, apps);
//! a non-editable AppImport of the same app makes it refuse with ConflictsWithAppImport.

use test_support::engine;
use test_support::http_probe;
use test_support::kube_mock::apiserver::ApiServer;
use test_support::pipeline::start_standin;
use test_support::poll::until_some;

use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::BASE64;
use serde_json::{Value, json};
use tooljet_operator::controller::{RunOptions, ServeOptions, run_until};
use tooljet_standin::{Flavour, StandIn};

const NS: &str = "team";
const API_KEY: &str = "controller-export-key";
const STATUS: &str = "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/appexports/dev/status";
const BRANCH: &str = "tooljet/development";

fn objects(standin: &StandIn, repo: &TestRepo, extra: Option<Value>) -> Vec<Value> {
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tj", "namespace": NS, "resourceVersion": "3"},
            "data": {"api-key": base64(API_KEY)}}),
        json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": "tj", "namespace": NS, "uid": "u-tj", "generation": 1,
                         "resourceVersion": "4"},
            "spec": {"url": standin.base_url(), "environment": "development",
                     "workspaceId": standin.workspace_id(),
                     "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}}}),
        json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppExport",
            "metadata": {"name": "dev", "namespace": NS, "uid": "u-dev", "generation": 2,
                         "resourceVersion": "5"},
            "spec": {"environment": "development", "apps": [BASE64.0],
                     "destination": {"url": repo.file_url(), "branch": BRANCH},
                     "author": {"name": "ToolJet export", "email": "tooljet@example.com"},
                     "interval": "1h"}}),
    ];
    out.extend(extra);
    out
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The last status the controller wrote for the AppExport, once one was written.
async fn status_written(server: &ApiServer) -> Option<Value> {
    until_some(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let last = server
                .seen()
                .into_iter()
                .rev()
                .find(|r| r.method == "PATCH" && r.path == STATUS)?;
            let body: Value = serde_json::from_str(&last.body).expect("status patch is JSON");
            Some(body["status"].clone())
        },
    )
    .await
}

async fn start(
    server: &ApiServer,
    cache: &std::path::Path,
    metrics_addr: Option<std::net::SocketAddr>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tooljet_operator::controller::ControllerError>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(run_until(
        server.client(),
        RunOptions {
            namespace: Some(NS.into()),
            concurrency: 1,
            cache_dir: cache.to_owned(),
            install_crds: false,
        },
        ServeOptions {
            metrics_addr,
            ..ServeOptions::default()
        },
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, run)
}

async fn setup() -> (StandIn, TestRepo) {
    let standin = start_standin(Flavour::V3, API_KEY).await;
    engine::client(&standin, Flavour::V3, API_KEY, None)
        .import_bundle(BASE64.1, BASE64.0)
        .await
        .expect("seed");
    let repo = TestRepo::new();
    repo.write("README.md", "apps");
    repo.commit("initial");
    (standin, repo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_exports_and_reports_status() {
    let (standin, repo) = setup().await;
    let server = ApiServer::start(objects(&standin, &repo, None)).await;
    let cache = tempfile::tempdir().expect("tempdir");
    let metrics_addr = http_probe::free_loopback_addr();
    let (stop, run) = start(&server, cache.path(), Some(metrics_addr)).await;
    let status = status_written(&server).await.expect("status written");
    // The reconcile is counted under its own kind.
    let counted = until_some(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let text = http_probe::get_ok(metrics_addr, "/metrics").await?;
            text.lines()
                .any(|l| {
                    l.starts_with("tooljet_operator_reconciles_total{")
                        && l.contains("kind=\"AppExport\"")
                        && l.contains("result=\"success\"")
                        && l.ends_with(" 1")
                })
                .then_some(())
        },
    )
    .await;
    assert!(counted.is_some(), "no AppExport reconcile in /metrics");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("stops")
        .expect("task")
        .expect("run ok");

    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready")
        .clone();
    assert_eq!(ready["status"], "True", "{status}");
    assert_eq!(ready["reason"], "Exported", "{status}");
    assert_eq!(status["observedGeneration"], 2);
    let sha = status["lastCommit"]["sha"].as_str().expect("lastCommit");
    assert_eq!(repo.served_git(&["rev-parse", BRANCH]), sha);
    assert_eq!(status["apps"][0]["name"], BASE64.0);
    assert!(status["apps"][0]["exportedAt"].is_string(), "{status}");
    assert!(
        server.seen().iter().any(|r| r.method == "POST"
            && r.path.ends_with("/events")
            && r.body.contains("Exported")),
        "an Exported Event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_editable_app_import_of_the_app_stalls_the_export() {
    let (standin, repo) = setup().await;
    let import = json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": "b64", "namespace": NS, "uid": "u-b64", "generation": 1,
                     "resourceVersion": "6"},
        "spec": {"environment": "development", "editable": false,
                 "source": {"url": "file:///nowhere", "ref": {"branch": "main"}, "app": BASE64.0}}});
    let server = ApiServer::start(objects(&standin, &repo, Some(import))).await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (stop, run) = start(&server, cache.path(), None).await;
    let status = status_written(&server).await.expect("status written");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;

    let conditions = status["conditions"].as_array().expect("conditions").clone();
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "ConflictsWithAppImport", "{status}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("team/b64")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Stalled" && c["status"] == "True")
    );
    assert!(
        repo.served_git(&["branch", "--list", BRANCH]).is_empty(),
        "nothing pushed"
    );
}
