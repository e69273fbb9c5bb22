//! Secrets (issue 9, item 5): the scenarios run with known secret values — ToolJet password and
//! admin key, a git HTTP password, an SSH key and its passphrase, wrong values too — and every
//! log line (trace level, in-process and of the command line), report message, state file,
//! action and JSON output is searched: none may contain a secret.
//!
//! Alone in its own test binary, with a global subscriber: `tracing` caches per call site whether
//! anyone listens, and the git work runs on blocking threads a thread-local subscriber misses.

use test_support::pipeline as reliability_common;

use kube_mock::{base64_of, mock_api, ready_store, secret_cache};
use test_support::kube_mock;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use git_fixtures::{HttpGitServer, SshGitServer, TestRepo};
use reliability_common::{APP, Pipeline, push_version};
use serde_json::json;
use tooljet_operator::api::{AppImportSpec, ToolJetInstanceSpec};
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::SyncState;
use tooljet_operator::sync::{Engine, ImportKey, Mode, NoCheckpoint, SyncOutcome, SyncRequest};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::StandIn;

const EMAIL: &str = "ops@example.com";
const TJ_PASSWORD: &str = "tj-pw-Secret-91c3e7";
const TJ_WRONG_PASSWORD: &str = "tj-wrong-Secret-44af02";
const ADMIN_KEY: &str = "admin-key-Secret-3b8d55";
const GIT_USER: &str = "ci-bot";
const GIT_PASSWORD: &str = "git-pw-Secret-c0ffee77";
const GIT_WRONG_PASSWORD: &str = "git-wrong-Secret-deadbe";
const PASSPHRASE: &str = "ssh-passphrase-Secret-5e5a";
const WRONG_PASSPHRASE: &str = "ssh-wrong-Secret-9a9a";

/// Everything `tracing` (and the `log` records of the HTTP and TLS crates) wrote in this process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this test binary");
        logs
    })
}

fn logs() -> String {
    String::from_utf8_lossy(&captured().0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

fn assert_no_secret(place: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{place} contains the secret {secret:?}:\n{text}"
        );
    }
}

const ALL: &[&str] = &[
    TJ_PASSWORD,
    TJ_WRONG_PASSWORD,
    ADMIN_KEY,
    GIT_PASSWORD,
    GIT_WRONG_PASSWORD,
    PASSPHRASE,
    WRONG_PASSPHRASE,
];

/// Everything an outcome shows: report (status conditions, Events), state (status), actions.
fn outcome_text(o: &SyncOutcome) -> String {
    format!(
        "{o:?}\n{}\n{}\n{}",
        serde_json::to_string(&o.report).expect("json"),
        serde_json::to_string(&o.state).expect("json"),
        serde_json::to_string(&o.actions).expect("json"),
    )
}

/// The command line with ToolJet password login (then the admin key) and git over SSH with a
/// passphrase-protected key (the CRD admits https, not plain http, so no basic auth here; the
/// engine test covers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_output_state_and_trace_logs_hold_no_secret() {
    let repo = TestRepo::new();
    push_version(&repo, "v1");
    let ssh = SshGitServer::start_with_key_passphrase(Some(PASSPHRASE));
    let standin = StandIn::builder()
        .credentials(EMAIL, TJ_PASSWORD)
        .admin_api_key(ADMIN_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let p = Pipeline::new(ADMIN_KEY);
    let git_url = ssh.url(repo.served_path());
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let key_line = ssh
        .private_key()
        .lines()
        .nth(2)
        .expect("a key body line")
        .to_owned();

    let write = |tj_password: &str, passphrase: &str, auth: &str| {
        let yaml = format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: tj-login, namespace: ci}}
stringData: {{email: {EMAIL}, password: {tj_password}, api-key: {ADMIN_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: git-creds, namespace: ci}}
stringData:
  passphrase: {passphrase}
  known_hosts: "{known_hosts}"
  identity: |
{identity}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: ToolJetInstance
metadata: {{name: tooljet-staging, namespace: ci}}
spec:
  url: {url}
  environment: staging
  workspaceId: {ws}
  auth: {auth}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: AppImport
metadata: {{name: credit-card, namespace: ci}}
spec:
  environment: staging
  source: {{url: "{git_url}", ref: {{branch: master}}, app: "{APP}", secretRef: {{name: git-creds}}}}
"#,
            known_hosts = ssh.known_hosts_line().trim(),
            identity = indent(ssh.private_key()),
            url = standin.base_url(),
            ws = standin.workspace_id(),
        );
        let path = p.dir.path().join("manifests.yaml");
        std::fs::write(&path, yaml).expect("write manifests");
        path
    };
    let password_auth = "{password: {secretRef: {name: tj-login}}}";
    let key_auth = "{adminApiKey: {secretRef: {name: tj-login, key: api-key}}}";

    let mut outputs = Vec::new();
    let run = |manifests: std::path::PathBuf| {
        let mut cmd = p.sync_command(&manifests, &["-o", "json"]);
        cmd.env("RUST_LOG", "trace");
        async move { cmd.output().await.expect("runs") }
    };
    // Import, update, then wrong passphrase, wrong ToolJet password, ToolJet down.
    let ok = run(write(TJ_PASSWORD, PASSPHRASE, password_auth)).await;
    assert!(ok.status.success(), "{}", reliability_common::text(&ok));
    outputs.push(("first import", ok));
    push_version(&repo, "v2");
    let updated = run(write(TJ_PASSWORD, PASSPHRASE, key_auth)).await;
    assert!(
        updated.status.success(),
        "{}",
        reliability_common::text(&updated)
    );
    outputs.push(("update with the admin key", updated));
    push_version(&repo, "v3");
    let bad_git = run(write(TJ_PASSWORD, WRONG_PASSPHRASE, password_auth)).await;
    assert!(
        !bad_git.status.success() && !bad_git.stdout.is_empty(),
        "{}",
        reliability_common::text(&bad_git)
    );
    outputs.push(("wrong passphrase", bad_git));
    let bad_tj = run(write(TJ_WRONG_PASSWORD, PASSPHRASE, password_auth)).await;
    assert!(
        String::from_utf8_lossy(&bad_tj.stdout).contains("ToolJetAuthenticationFailed"),
        "{}",
        reliability_common::text(&bad_tj)
    );
    outputs.push(("wrong ToolJet password", bad_tj));
    standin.faults().set_down(true);
    let down = run(write(TJ_PASSWORD, PASSPHRASE, password_auth)).await;
    standin.faults().set_down(false);
    assert!(!down.status.success());
    outputs.push(("ToolJet down", down));

    let mut secrets = ALL.to_vec();
    secrets.push(&key_line);
    let secrets = &secrets[..];
    for (scenario, out) in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // RUST_LOG=trace reached the binary: the search covers real log lines.
        assert!(
            stderr.lines().count() > 2,
            "{scenario}: few log lines: {stderr}"
        );
        assert_no_secret(
            &format!("{scenario}: stdout"),
            &String::from_utf8_lossy(&out.stdout),
            secrets,
        );
        assert_no_secret(
            &format!("{scenario}: stderr (trace logs)"),
            &stderr,
            secrets,
        );
    }
    let state = std::fs::read_to_string(p.state_path()).expect("state file");
    assert_no_secret("state file", &state, secrets);
    // The cache holds mirrors only: no credential in a mirror's config or remote.
    for entry in walk(&p.cache_dir()) {
        if entry.ends_with("config") || entry.ends_with("FETCH_HEAD") {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            assert_no_secret(&entry.display().to_string(), &text, secrets);
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

struct EngineRig {
    standin: StandIn,
    engine: Engine,
    _cache: tempfile::TempDir,
    instance: ToolJetInstanceSpec,
}

impl EngineRig {
    async fn new() -> EngineRig {
        let standin = StandIn::builder()
            .credentials(EMAIL, TJ_PASSWORD)
            .admin_api_key(ADMIN_KEY)
            .start()
            .await
            .expect("stand-in starts");
        let cache = tempfile::tempdir().expect("tempdir");
        let engine = Engine::new(SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            ..CacheConfig::default()
        }));
        let instance = serde_json::from_value(json!({
            "url": standin.base_url(),
            "environment": "staging",
            "workspaceId": standin.workspace_id(),
            "auth": {"password": {"secretRef": {"name": "tj"}}}
        }))
        .expect("instance");
        EngineRig {
            standin,
            engine,
            _cache: cache,
            instance,
        }
    }

    fn client(&self, password: &str) -> ToolJetClient {
        let mut config = ClientConfig::new(
            self.standin.base_url(),
            Auth::Password {
                email: EMAIL.into(),
                password: password.into(),
            },
        );
        config.workspace_id = Some(self.standin.workspace_id().to_owned());
        ToolJetClient::new(config).expect("client")
    }

    async fn sync(
        &self,
        url: &str,
        creds: &Credentials,
        tj_password: &str,
        state: SyncState,
    ) -> SyncOutcome {
        let spec: AppImportSpec = serde_json::from_value(json!({
            "environment": "staging",
            "source": {"url": url, "ref": {"branch": "master"}, "app": APP,
                       "secretRef": {"name": "git"}},
        }))
        .expect("spec");
        self.engine
            .sync(
                SyncRequest {
                    key: ImportKey::new("team-a", "credit-card"),
                    spec: &spec,
                    instance: &self.instance,
                    generation: Some(1),
                    approve: None,
                    force_pull: None,
                    git_credentials: creds.clone(),
                    state,
                },
                &self.client(tj_password),
                Mode::Apply,
                &NoCheckpoint,
            )
            .await
    }
}

/// The engine in-process, with every `tracing` event (trace level) captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reports_state_and_trace_logs_hold_no_secret() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    captured();
    let mut texts: Vec<(String, String)> = Vec::new();

    // git over HTTP with basic auth; ToolJet with a password login.
    let rig = EngineRig::new().await;
    let repo = TestRepo::new();
    push_version(&repo, "v1");
    let http = HttpGitServer::start_with_basic_auth(repo.base_dir(), GIT_USER, GIT_PASSWORD);
    let url = http.url(&repo.served_name());
    let basic = |password: &str| Credentials::Basic {
        username: GIT_USER.into(),
        password: password.into(),
    };
    let first = rig
        .sync(
            &url,
            &basic(GIT_PASSWORD),
            TJ_PASSWORD,
            SyncState::default(),
        )
        .await;
    assert!(first.report.ready(), "{:?}", first.report);
    texts.push(("http import".into(), outcome_text(&first)));
    push_version(&repo, "v2");
    rig.standin.expire_sessions();
    let update = rig
        .sync(&url, &basic(GIT_PASSWORD), TJ_PASSWORD, first.state.clone())
        .await;
    assert!(update.report.ready(), "{:?}", update.report);
    texts.push(("http update, session expired".into(), outcome_text(&update)));
    push_version(&repo, "v3");
    let bad_git = rig
        .sync(
            &url,
            &basic(GIT_WRONG_PASSWORD),
            TJ_PASSWORD,
            update.state.clone(),
        )
        .await;
    assert_eq!(bad_git.report.reason, "GitAuthenticationFailed");
    texts.push(("wrong git password".into(), outcome_text(&bad_git)));
    let bad_tj = rig
        .sync(
            &url,
            &basic(GIT_PASSWORD),
            TJ_WRONG_PASSWORD,
            update.state.clone(),
        )
        .await;
    assert_eq!(bad_tj.report.reason, "ToolJetAuthenticationFailed");
    texts.push(("wrong ToolJet password".into(), outcome_text(&bad_tj)));
    let in_url = format!(
        "http://{GIT_USER}:{GIT_PASSWORD}@{}",
        url.trim_start_matches("http://")
    );
    let creds_in_url = rig
        .sync(
            &in_url,
            &Credentials::Anonymous,
            TJ_PASSWORD,
            update.state.clone(),
        )
        .await;
    texts.push(("password in the URL".into(), outcome_text(&creds_in_url)));

    // git over SSH with a passphrase-protected key.
    let ssh = SshGitServer::start_with_key_passphrase(Some(PASSPHRASE));
    let ssh_url = ssh.url(repo.served_path());
    let key_line = ssh
        .private_key()
        .lines()
        .nth(2)
        .expect("a key body line")
        .to_owned();
    let ssh_creds = |passphrase: &str| {
        let mut data = std::collections::BTreeMap::new();
        data.insert(
            "identity".to_string(),
            ssh.private_key().as_bytes().to_vec(),
        );
        data.insert("passphrase".to_string(), passphrase.as_bytes().to_vec());
        data.insert(
            "known_hosts".to_string(),
            ssh.known_hosts_line().into_bytes(),
        );
        Credentials::from_secret_data(&data).expect("ssh credentials")
    };
    let ssh_rig = EngineRig::new().await;
    let ssh_ok = ssh_rig
        .sync(
            &ssh_url,
            &ssh_creds(PASSPHRASE),
            TJ_PASSWORD,
            SyncState::default(),
        )
        .await;
    assert!(ssh_ok.report.ready(), "{:?}", ssh_ok.report);
    texts.push(("ssh import".into(), outcome_text(&ssh_ok)));
    let ssh_bad = ssh_rig
        .sync(
            &ssh_url,
            &ssh_creds(WRONG_PASSPHRASE),
            TJ_PASSWORD,
            SyncState::default(),
        )
        .await;
    assert!(!ssh_bad.report.ready(), "{:?}", ssh_bad.report);
    texts.push(("ssh wrong passphrase".into(), outcome_text(&ssh_bad)));
    texts.push((
        "Debug of the credentials".into(),
        format!("{:?} {:?}", ssh_creds(PASSPHRASE), basic(GIT_PASSWORD)),
    ));

    let mut secrets = ALL.to_vec();
    secrets.push(&key_line);
    for (scenario, text) in &texts {
        assert_no_secret(scenario, text, &secrets);
    }
    let logs = logs();
    assert!(
        logs.contains("tooljet request") && logs.lines().count() > 50,
        "the subscriber saw the engine's logs: {logs}"
    );
    assert_no_secret("trace logs", &logs, &secrets);
}

/// The controller: what it writes to the API server (status patches, Events, finalizer patches)
/// and logs, for a wrong then a right git password and a password login to ToolJet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_status_events_and_logs_hold_no_secret() {
    use kube::runtime::events::{Recorder, Reporter};
    use tooljet_operator::api::{AppImport, ToolJetInstance};
    use tooljet_operator::controller::app_import::{Context, reconcile};

    let _ = rustls::crypto::ring::default_provider().install_default();
    captured();
    let repo = TestRepo::new();
    push_version(&repo, "v1");
    let git = HttpGitServer::start_with_basic_auth(repo.base_dir(), GIT_USER, GIT_PASSWORD);
    let standin = StandIn::builder()
        .credentials(EMAIL, TJ_PASSWORD)
        .start()
        .await
        .expect("stand-in starts");
    let instance: ToolJetInstance = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
        "metadata": {"name": "tj", "namespace": "team", "uid": "i-1", "resourceVersion": "3"},
        "spec": {"url": standin.base_url(), "environment": "development",
                 "workspaceId": standin.workspace_id(),
                 "auth": {"password": {"secretRef": {"name": "tj-login"}}}}
    }))
    .expect("instance");
    let app = json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": "a", "namespace": "team", "uid": "u-1", "generation": 1,
                     "resourceVersion": "7", "finalizers": ["gitops.tooljet.dev/finalizer"]},
        "spec": {"environment": "development",
                 "source": {"url": git.url(&repo.served_name()), "ref": {"branch": "master"},
                            "app": APP, "secretRef": {"name": "git-creds"}}},
    });
    let cache = tempfile::tempdir().expect("tempdir");
    let mut everything = String::new();
    for git_password in [GIT_WRONG_PASSWORD, GIT_PASSWORD] {
        let tj_secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tj-login", "namespace": "team", "resourceVersion": "9"},
            "data": {"email": base64_of(EMAIL), "password": base64_of(TJ_PASSWORD)}});
        let git_secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "git-creds", "namespace": "team", "resourceVersion": "9"},
            "data": {"username": base64_of(GIT_USER), "password": base64_of(git_password)}});
        let app_for_mock = app.clone();
        let (client, server) = mock_api(move |_| (http::StatusCode::OK, app_for_mock.clone()));
        let store = ready_store(vec![instance.clone()]);
        let source = SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            ..CacheConfig::default()
        });
        let reporter = Reporter {
            controller: "tooljet-operator".into(),
            instance: None,
        };
        let ctx = Arc::new(Context::new(
            client.clone(),
            source,
            Recorder::new(client, reporter),
            store,
            secret_cache(vec![tj_secret, git_secret]),
        ));
        let obj: AppImport = serde_json::from_value(app.clone()).expect("app");
        let _ = reconcile(Arc::new(obj), ctx.clone()).await;
        drop(ctx);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("mock API server finished")
            .expect("mock did not panic");
        // Status patches and Events were written: the search covers them.
        assert!(
            seen.iter()
                .any(|s| s.method == "PATCH" && s.uri.contains("/status")),
            "no status patch"
        );
        for s in &seen {
            everything.push_str(&format!("{} {} {}\n", s.method, s.uri, s.body));
        }
    }
    assert!(
        everything.contains("GitAuthenticationFailed"),
        "{everything}"
    );
    assert!(
        standin.apps().iter().any(|a| a.name == APP),
        "the second reconcile imported the app"
    );
    assert_no_secret("controller requests (status, Events)", &everything, ALL);
    assert_no_secret("trace logs", &logs(), ALL);
}
