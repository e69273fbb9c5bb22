//! The controller starts every time (issue 12): started and stopped many times in one process
//! against an in-process list/watch API server, each start must reconcile the existing AppImport
//! and ToolJetInstance and answer `/readyz` 200. Before the fix, a second task awaiting a
//! reflector store (kube-runtime's single-waker `DelayedInit`) left one waiter asleep for good:
//! the AppImport controller never ran, or `/readyz` stayed 503, depending on timing.
//! `CONTROLLER_START_CYCLES` sets the number of starts (default 25).

use kube_mock::apiserver::{ApiServer, Request};
use test_support::http_probe;
use test_support::kube_mock;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tooljet_operator::controller::{RunOptions, ServeOptions, run_until};

const NS: &str = "team";
const APP_STATUS: &str = "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/appimports/a/status";
const INSTANCE_STATUS: &str =
    "/apis/gitops.tooljet.dev/v1alpha1/namespaces/team/tooljetinstances/tj/status";

fn objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": "a", "namespace": NS, "uid": "u-a", "generation": 1,
                         "resourceVersion": "5", "finalizers": ["gitops.tooljet.dev/finalizer"]},
            "spec": {"environment": "development",
                     "source": {"url": "file:///nowhere", "ref": {"branch": "main"}, "app": "x"}}}),
        // Its auth Secret does not exist: both reconciles end in SecretNotFound without
        // touching git or ToolJet, after reading the Secret cache.
        json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": "tj", "namespace": NS, "uid": "u-tj", "generation": 1,
                         "resourceVersion": "6"},
            "spec": {"url": "http://127.0.0.1:9", "environment": "development",
                     "workspaceId": "ws",
                     "auth": {"adminApiKey": {"secretRef": {"name": "absent", "key": "k"}}}}}),
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "unrelated", "namespace": NS, "resourceVersion": "7"},
            "data": {}}),
    ]
}

fn patched(seen: &[Request], path: &str) -> bool {
    seen.iter().any(|r| r.method == "PATCH" && r.path == path)
}

/// Polls `done` until it holds or `limit` passes; returns whether it held.
async fn wait_until<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let held = || {
        let check = done();
        async move { check.await.then_some(()) }
    };
    test_support::poll::until_some(limit, Duration::from_millis(20), held)
        .await
        .is_some()
}

/// A mirror directory last used two days ago (older than the cache's one-day TTL).
fn old_mirror(cache: &Path) -> std::path::PathBuf {
    let mirror = cache.join("mirrors").join("unused0000.git");
    std::fs::create_dir_all(&mirror).expect("mirror dir");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&mirror)
        .status()
        .expect("touch runs");
    assert!(touched.success());
    mirror
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_reconciles_both_kinds_and_turns_ready() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cycles: usize = std::env::var("CONTROLLER_START_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let server = ApiServer::start(objects()).await;
    let cache = tempfile::tempdir().expect("tempdir");
    let mirror = old_mirror(cache.path());
    let mut failures = Vec::new();
    for cycle in 0..cycles {
        server.clear_seen();
        let addr = test_support::http_probe::free_loopback_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(run_until(
            server.client(),
            RunOptions {
                namespace: Some(NS.into()),
                concurrency: 2,
                cache_dir: cache.path().to_owned(),
                install_crds: false,
            },
            ServeOptions {
                metrics_addr: Some(addr),
                ..ServeOptions::default()
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let app = wait_until(Duration::from_secs(10), || {
            let seen = server.seen();
            async move { patched(&seen, APP_STATUS) }
        })
        .await;
        let instance = wait_until(Duration::from_secs(10), || {
            let seen = server.seen();
            async move { patched(&seen, INSTANCE_STATUS) }
        })
        .await;
        let ready = wait_until(Duration::from_secs(10), || async move {
            http_probe::status(addr, "GET", "/readyz", "", "").await == 200
        })
        .await;
        if !(app && instance && ready) {
            failures.push(format!(
                "start {cycle}: AppImport reconciled {app}, ToolJetInstance reconciled {instance}, /readyz 200 {ready}"
            ));
        }
        let _ = stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("run_until returns after shutdown")
            .expect("run task");
        assert!(result.is_ok(), "start {cycle}: {result:?}");
    }
    assert!(
        failures.is_empty(),
        "{} of {cycles} starts failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        !mirror.exists(),
        "the mirror garbage collector runs: an unused mirror is removed"
    );
}
