//! Secure defaults (issue 9, item 6), each shown end to end through the engine or the controller:
//! TLS verified, SSH host keys verified, Secrets read only from their own namespaces. Paths
//! confined to the repository: tests/source/layout.rs and the corpus (reliability_corpus.rs).

use kube_mock::{base64_of, mock_api, ready_store, secret_cache};
use test_support::kube_mock;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use git_fixtures::tooljet::CREDIT_CARD;
use git_fixtures::{SshGitServer, TestRepo};
use http::StatusCode;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::json;
use tooljet_operator::api::{AppImport, AppImportSpec, ToolJetInstance};
use tooljet_operator::controller::app_import::{Context, reconcile};
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::SyncState;
use tooljet_operator::sync::{
    Engine, ImportKey, Mode, NoCheckpoint, SyncOutcome, SyncRequest, tooljet_config,
};
use tooljet_operator::tooljet::ToolJetClient;
use tooljet_standin::StandIn;

const API_KEY: &str = "secure-defaults-key";

fn cache() -> (Engine, tempfile::TempDir) {
    let (source, dir) = source_cache();
    (Engine::new(source), dir)
}

fn source_cache() -> (SourceCache, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = SourceCache::new(CacheConfig {
        dir: dir.path().to_owned(),
        ..CacheConfig::default()
    });
    (source, dir)
}

fn one_app_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
    repo.commit("one app");
    repo.publish();
    repo
}

/// The client exactly as the controller and `sync -f` build it: from the instance spec and its
/// Secret, with no TLS settings.
fn client_from_spec(
    standin: &StandIn,
) -> (ToolJetClient, tooljet_operator::api::ToolJetInstanceSpec) {
    let instance: tooljet_operator::api::ToolJetInstanceSpec = serde_json::from_value(json!({
        "url": standin.base_url(),
        "environment": "staging",
        "workspaceId": standin.workspace_id(),
        "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}
    }))
    .expect("instance");
    let mut secrets = tooljet_operator::sync::Secrets::new();
    secrets.insert(
        "tj",
        BTreeMap::from([("api-key".to_string(), API_KEY.as_bytes().to_vec())]),
    );
    let config = tooljet_config(&instance, &secrets).expect("config");
    (ToolJetClient::new(config).expect("client"), instance)
}

async fn sync(
    engine: &Engine,
    client: &ToolJetClient,
    instance: &tooljet_operator::api::ToolJetInstanceSpec,
    url: &str,
    creds: &Credentials,
) -> SyncOutcome {
    let spec: AppImportSpec = serde_json::from_value(json!({
        "environment": "staging",
        "source": {"url": url, "ref": {"branch": "master"}, "app": CREDIT_CARD.0},
    }))
    .expect("spec");
    engine
        .sync(
            SyncRequest {
                key: ImportKey::new("team", "a"),
                spec: &spec,
                instance,
                generation: Some(1),
                approve: None,
                force_pull: None,
                git_credentials: creds.clone(),
                state: SyncState::default(),
            },
            client,
            Mode::Apply,
            &NoCheckpoint,
        )
        .await
}

#[tokio::test]
async fn tls_is_verified_by_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .self_signed_tls()
        .start()
        .await
        .expect("stand-in starts");
    assert!(standin.base_url().starts_with("https://"));
    let (client, instance) = client_from_spec(&standin);
    let (engine, _dir) = cache();
    let repo = one_app_repo();
    let out = sync(
        &engine,
        &client,
        &instance,
        &repo.file_url(),
        &Credentials::Anonymous,
    )
    .await;
    assert!(!out.report.ready(), "{:?}", out.report);
    assert_eq!(
        out.report.reason, "ToolJetConfigInvalid",
        "{:?}",
        out.report
    );
    assert!(
        !out.report.retryable(),
        "a certificate problem is not retried blindly"
    );
    assert!(standin.apps().is_empty());
    assert_eq!(standin.write_count(), 0);
}

#[tokio::test]
async fn ssh_host_key_is_verified_by_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ssh = SshGitServer::start();
    let repo = one_app_repo();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let (client, instance) = client_from_spec(&standin);
    let (engine, _dir) = cache();
    // A Secret with a key and no known_hosts: the host cannot be verified, so it is refused.
    let mut data = BTreeMap::new();
    data.insert(
        "identity".to_string(),
        ssh.private_key().as_bytes().to_vec(),
    );
    let creds = Credentials::from_secret_data(&data).expect("credentials");
    let out = sync(
        &engine,
        &client,
        &instance,
        &ssh.url(repo.served_path()),
        &creds,
    )
    .await;
    assert!(!out.report.ready(), "{:?}", out.report);
    assert_eq!(out.report.reason, "GitHostKeyRejected", "{:?}", out.report);
    assert!(
        out.report.message.contains("known_hosts"),
        "{}",
        out.report.message
    );
    assert_eq!(standin.write_count(), 0);
}

/// An AppImport in `team` uses a shared instance in `platform`: the ToolJet login Secret is read
/// from `platform` only, the git Secret from `team` only — Secrets of the same names in the other
/// namespace exist and are never used.
#[tokio::test]
async fn secrets_are_read_only_from_their_own_namespaces() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let repo = one_app_repo();
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let instance: ToolJetInstance = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
        "metadata": {"name": "shared", "namespace": "platform", "uid": "i-1", "resourceVersion": "3"},
        "spec": {"url": standin.base_url(), "environment": "development",
                 "workspaceId": standin.workspace_id(), "allowedNamespaces": ["team"],
                 "auth": {"adminApiKey": {"secretRef": {"name": "shared-secret", "key": "api-key"}}}}
    }))
    .expect("instance");
    let app = json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": "a", "namespace": "team", "uid": "u-1", "generation": 1,
                     "resourceVersion": "7", "finalizers": ["gitops.tooljet.dev/finalizer"]},
        "spec": {"environment": "development",
                 "instanceRef": {"name": "shared", "namespace": "platform"},
                 "source": {"url": repo.file_url(), "ref": {"branch": "master"},
                            "app": CREDIT_CARD.0, "secretRef": {"name": "shared-secret"}}},
    });
    // Both namespaces hold a Secret named `shared-secret`: only `platform`'s has the right ToolJet
    // key and no git keys; `team`'s has git keys and a wrong ToolJet key. The import goes through
    // only when each is read from its own namespace (a git Secret without git keys is refused, a
    // wrong key cannot log in).
    let platform_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "shared-secret", "namespace": "platform", "resourceVersion": "9"},
        "data": {"api-key": base64_of(API_KEY)}});
    let team_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "shared-secret", "namespace": "team", "resourceVersion": "9"},
        "data": {"api-key": base64_of("wrong-key"), "username": base64_of("u"),
                 "password": base64_of("p")}});
    let app_for_mock = app.clone();
    let (client, server) = mock_api(move |_| (StatusCode::OK, app_for_mock.clone()));
    let store = ready_store(vec![instance]);
    let (source, _dir) = source_cache();
    let reporter = Reporter {
        controller: "tooljet-operator".into(),
        instance: None,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        source,
        Recorder::new(client, reporter),
        store,
        secret_cache(vec![platform_secret, team_secret]),
    ));
    let obj: AppImport = serde_json::from_value(app).expect("app");
    reconcile(Arc::new(obj), ctx.clone())
        .await
        .expect("reconcile");
    drop(ctx);
    let seen = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("mock API server finished")
        .expect("mock did not panic");
    assert!(
        !seen.iter().any(|s| s.uri.contains("/secrets")),
        "Secrets come from the watched cache, never a request: {seen:#?}"
    );
    assert!(
        standin.apps().iter().any(|a| a.name == CREDIT_CARD.0),
        "the import went through with those Secrets"
    );
}
