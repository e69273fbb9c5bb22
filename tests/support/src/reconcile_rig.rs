//! One environment reconciled in-process, as the controller would call `reconcile`: a real git
//! repository with one app, the ToolJet stand-in, kube's tower-test mock API server that keeps
//! the status last written for each AppImport (fed back to the next reconcile, as the watch would
//! deliver it), and the operator's metrics. Used by tests/controller/observe.rs (the metrics after real
//! reconciles) and tests/controller/monitoring.rs (a real Prometheus scraping them). Needs `mod kube_mock;`
//! beside it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use http::StatusCode;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tooljet_operator::api::{AppImport, ToolJetInstance};
use tooljet_operator::controller::ControllerError;
use tooljet_operator::controller::app_import::{Context, reconcile};
use tooljet_operator::process::metrics::Metrics;
use tooljet_operator::source::{CacheConfig, SourceCache};
use tooljet_standin::StandIn;

use crate::kube_mock::{Seen, base64_of, finish, mock_api, ready_store, secret_cache};

pub const NS: &str = "team";
pub const API_KEY: &str = "observe-test-key";

/// The AppImports the rig knows: `a` imports the app into the development instance; `b` asks for
/// the production environment, which has no ToolJetInstance (refused: InstanceNotFound).
pub const GOOD: &str = "a";
pub const LOST: &str = "b";

pub struct Rig {
    pub repo: TestRepo,
    pub standin: StandIn,
    pub metrics: Arc<Metrics>,
    ctx: Mutex<Option<Arc<Context>>>,
    server: tokio::task::JoinHandle<Vec<Seen>>,
    objects: HashMap<&'static str, Value>,
    /// The last status written per AppImport name.
    written: Arc<Mutex<HashMap<String, Value>>>,
    _cache: tempfile::TempDir,
}

impl Rig {
    pub async fn start() -> Rig {
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
        let instance: ToolJetInstance = serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": "tj", "namespace": NS, "uid": "i-1", "resourceVersion": "3"},
            "spec": {"url": standin.base_url(), "environment": "development",
                     "workspaceId": standin.workspace_id(),
                     "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}}}
        }))
        .expect("instance");
        let good = json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": GOOD, "namespace": NS, "uid": "u-1", "generation": 1,
                         "resourceVersion": "7", "finalizers": ["gitops.tooljet.dev/finalizer"]},
            "spec": {"environment": "development",
                     "source": {"url": repo.file_url(), "ref": {"branch": "master"}, "app": CREDIT_CARD.0}},
        });
        let mut lost = good.clone();
        lost["metadata"]["name"] = json!(LOST);
        lost["spec"]["environment"] = json!("production");
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tj-admin", "namespace": NS, "resourceVersion": "9"},
            "data": {"api-key": base64_of(API_KEY)}});
        let written = Arc::new(Mutex::new(HashMap::new()));
        let written_by_mock = written.clone();
        let answer = good.clone();
        let (client, server) = mock_api(move |s| {
            if s.method == "PATCH"
                && let Some(rest) = s.uri.split("/appimports/").nth(1)
                && let Some((name, _)) = rest.split_once("/status")
            {
                written_by_mock
                    .lock()
                    .expect("lock")
                    .insert(name.to_owned(), s.json()["status"].clone());
            }
            (StatusCode::OK, answer.clone())
        });
        let cache = tempfile::tempdir().expect("tempdir");
        let source = SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            ..CacheConfig::default()
        });
        let reporter = Reporter {
            controller: "tooljet-operator".into(),
            instance: None,
        };
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(
            Context::new(
                client.clone(),
                source,
                Recorder::new(client, reporter),
                ready_store(vec![instance]),
                secret_cache(vec![secret]),
            )
            .with_metrics(metrics.clone()),
        );
        Rig {
            repo,
            standin,
            metrics,
            ctx: Mutex::new(Some(ctx)),
            server,
            objects: HashMap::from([(GOOD, good), (LOST, lost)]),
            written,
            _cache: cache,
        }
    }

    /// Reconciles AppImport `name` ([`GOOD`] or [`LOST`]) with the status last written for it.
    pub async fn reconcile(&self, name: &str) -> Result<Action, ControllerError> {
        let mut obj: AppImport =
            serde_json::from_value(self.objects[name].clone()).expect("AppImport");
        if let Some(status) = self.written.lock().expect("lock").get(name) {
            obj.status = serde_json::from_value(status.clone()).ok();
        }
        let ctx = self
            .ctx
            .lock()
            .expect("lock")
            .clone()
            .expect("the rig is not finished");
        reconcile(Arc::new(obj), ctx).await
    }

    /// Stops the mock API server; what it saw.
    pub async fn finish(self) -> Vec<Seen> {
        self.ctx.lock().expect("lock").take();
        finish(self.server).await
    }
}
