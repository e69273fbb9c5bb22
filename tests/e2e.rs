//! End-to-end: the controller, in this process, against a real API server named by
//! `TOOLJET_OPERATOR_E2E_KUBECONFIG`, with the ToolJet stand-in and real git repositories on
//! loopback. Needs no pods, kubelet or controller-manager: an API server (and etcd) is enough,
//! e.g. envtest's binaries or `kind`. Without the variable every test prints why it skips and passes.
//!
//! Covered: CRD install, Ready by environment matching, an update after a push, deletion with
//! `deletionPolicy: Delete`, and a bad object rejected with the CRD's message.

use std::future::Future;
use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use tooljet_operator::api::{AppImport, ToolJetInstance};
use tooljet_operator::controller::{self, RunOptions};
use tooljet_standin::StandIn;

const ENV_VAR: &str = "TOOLJET_OPERATOR_E2E_KUBECONFIG";
const API_KEY: &str = "e2e-key";
const TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);

async fn client() -> Option<Client> {
    let Ok(path) = std::env::var(ENV_VAR) else {
        eprintln!(
            "skipping the end-to-end test: set {ENV_VAR} to a kubeconfig (see README, End-to-end tests)"
        );
        return None;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(&path).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig usable");
    Some(Client::try_from(config).expect("client"))
}

/// Polls `check` every 500ms until it returns Some, or panics with `what` after the timeout.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn condition(app: &AppImport, type_: &str) -> Option<(String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn wait_ready(api: &Api<AppImport>, name: &str) -> AppImport {
    wait_for(&format!("AppImport {name} Ready=True"), || async {
        let app = api.get(name).await.ok()?;
        (condition(&app, "Ready")?.0 == "True").then_some(app)
    })
    .await
}

fn bundle(version: &str) -> Vec<u8> {
    let mut b: Value = serde_json::from_slice(CREDIT_CARD.1).expect("fixture json");
    b["app"][0]["definition"]["appV2"]["icon"] = json!(version);
    serde_json::to_vec(&b).expect("json")
}

fn unique_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("tje2e-{:x}", nanos % 0xffff_ffff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appimport_lifecycle_against_a_real_api_server() {
    let Some(client) = client().await else {
        return;
    };
    controller::install_crds(&client)
        .await
        .expect("CRDs installed");
    let ns = unique_namespace();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
        )
        .await
        .expect("namespace created");

    let repo = TestRepo::new();
    repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", &bundle("v1"));
    repo.commit("v1");
    repo.publish();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in");

    let cache = tempfile::tempdir().expect("tempdir");
    let operator = tokio::spawn(controller::run(
        client.clone(),
        RunOptions {
            namespace: Some(ns.clone()),
            concurrency: 2,
            cache_dir: cache.path().to_owned(),
            install_crds: false,
        },
    ));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "tj-admin"}, "stringData": {"api-key": API_KEY}}),
            )
            .expect("secret"),
        )
        .await
        .expect("secret created");
    let instances: Api<ToolJetInstance> = Api::namespaced(client.clone(), &ns);
    instances
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
                "metadata": {"name": "dev"},
                "spec": {"url": standin.base_url(), "environment": "development",
                         "workspaceId": standin.workspace_id(),
                         "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}}}
            }))
            .expect("instance"),
        )
        .await
        .expect("instance created");

    let apps: Api<AppImport> = Api::namespaced(client.clone(), &ns);
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": "cards"},
            "spec": {"environment": "development", "deletionPolicy": "Delete",
                     "source": {"url": repo.file_url(), "ref": {"branch": "master"}, "app": CREDIT_CARD.0}}
        }))
        .expect("app"),
    )
    .await
    .expect("AppImport created");

    let ready = wait_ready(&apps, "cards").await;
    let status = ready.status.expect("status");
    let app_id = status.app.expect("status.app").id;
    assert!(
        standin.apps().iter().any(|a| a.id == app_id),
        "app imported into ToolJet"
    );

    // A push, and an immediate reconcile on request.
    let new_sha = {
        repo.git_sync_write("app-1", CREDIT_CARD.0, "v2", &bundle("v2"));
        let sha = repo.commit("v2");
        repo.publish();
        sha
    };
    apps.patch(
        "cards",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"gitops.tooljet.dev/reconcile-requested-at": "e2e-1"}}})),
    )
    .await
    .expect("annotated");
    wait_for("the update to the pushed commit", || async {
        let app = apps.get("cards").await.ok()?;
        let s = app.status?;
        (s.last_applied_commit?.sha == new_sha
            && s.last_handled_reconcile_at.as_deref() == Some("e2e-1"))
        .then_some(())
    })
    .await;

    // A bad object is rejected by the API server with the CRD's message.
    let bad = apps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
                "metadata": {"name": "bad"},
                "spec": {"environment": "development", "interval": "1s",
                         "source": {"url": repo.file_url(), "ref": {"branch": "master"}, "app": CREDIT_CARD.0}}
            }))
            .expect("app"),
        )
        .await
        .expect_err("interval below 10s is rejected");
    assert!(bad.to_string().contains("at least 10s"), "{bad}");

    // Delete policy: the object goes (finalizer released) and so does the app in ToolJet.
    apps.delete("cards", &Default::default())
        .await
        .expect("delete");
    wait_for("the AppImport to be gone", || async {
        matches!(apps.get_opt("cards").await, Ok(None)).then_some(())
    })
    .await;
    let current = standin
        .apps()
        .into_iter()
        .find(|a| a.name == CREDIT_CARD.0)
        .map(|a| a.id);
    assert_eq!(current, None, "deletionPolicy Delete removed the app");

    operator.abort();
    // Best effort: without a controller-manager the namespace stays Terminating; it is unique.
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
}
