//! The end-to-end harness: a client for the cluster named by `TOOLJET_OPERATOR_E2E_KUBECONFIG`, a
//! fresh namespace per test, and (for the controller tests) three ToolJet stand-ins with one
//! ToolJetInstance each, a real git repository served as `file://`, and the controller itself,
//! running in this process. The operator reaches ToolJet and git on loopback, so only the API
//! server has to be reachable.

use std::future::Future;
use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tooljet_operator::api::{AppImport, ToolJetInstance, condition};
use tooljet_operator::controller::{self, ControllerError, RunOptions};
use tooljet_standin::StandIn;

pub const ENV_VAR: &str = "TOOLJET_OPERATOR_E2E_KUBECONFIG";
/// The git app every test imports.
pub const APP: &str = CREDIT_CARD.0;
/// Long enough for a git fetch, an import and a status write on a loaded machine.
pub const TIMEOUT: Duration = Duration::from_secs(90);
/// Poll interval of every wait (`kubectl wait` polls the same way).
const POLL: Duration = Duration::from_millis(200);
const API_KEY: &str = "e2e-admin-api-key";
/// The three environments; each has its own stand-in (a ToolJet server) and ToolJetInstance.
pub const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

/// A client for the cluster, or `None` (after saying why) when the variable is unset.
pub async fn kube_client() -> Option<Client> {
    let Ok(path) = std::env::var(ENV_VAR) else {
        eprintln!(
            "skipping: {ENV_VAR} is not set; point it at a kubeconfig to run the end-to-end tests \
             (README, \"End-to-end tests against a cluster\")"
        );
        return None;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The operator's logs, shown with a failing test (or with --nocapture); RUST_LOG overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("tooljet_operator=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("{ENV_VAR}={path}: cannot read the kubeconfig: {e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{ENV_VAR}={path}: unusable kubeconfig: {e}"));
    Some(Client::try_from(config).expect("a client from the kubeconfig"))
}

/// Polls `check` every 200ms until it returns `Some`; panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_or_none(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` every 200ms until it returns `Some`, or returns `None` once `limit` passed.
pub async fn wait_for_or_none<T, F, Fut>(limit: Duration, check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    test_support::poll::until_some(limit, POLL, check).await
}

/// A namespace with a server-generated unique name (`tje2e-xxxxx`).
pub async fn create_namespace(client: &Client) -> String {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"generateName": "tje2e-"}})).expect("ns");
    let ns = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("test namespace created");
    let name = ns.name_any();
    eprintln!("test namespace: {name}");
    name
}

/// Requests deletion of a namespace. Without a controller-manager (envtest) it stays
/// `Terminating`, empty, because the namespace controller never runs.
pub async fn delete_namespace(client: &Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .expect("test namespace deleted");
}

/// The export bundle of [`APP`] with a version marker (its icon) that tests can see in ToolJet.
pub fn bundle(version: &str) -> Vec<u8> {
    let mut b: Value = serde_json::from_slice(CREDIT_CARD.1).expect("fixture json");
    b["app"][0]["definition"]["appV2"]["icon"] = json!(version);
    serde_json::to_vec(&b).expect("json")
}

/// The condition of this type on an AppImport, if present.
pub fn cond<'a>(app: &'a AppImport, type_: &str) -> Option<&'a Condition> {
    app.status.as_ref()?.condition(type_)
}

/// True when the condition is present with this status (and, when given, this reason).
pub fn has_cond(app: &AppImport, type_: &str, status: &str, reason: Option<&str>) -> bool {
    cond(app, type_).is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// A unique value for the request annotations.
fn unique_value(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{nanos}")
}

/// The controller running against one test namespace, with everything it talks to.
pub struct Harness {
    pub client: Client,
    pub ns: String,
    /// One repository, on branch `master`, holding [`APP`] at version `v1` to begin with.
    pub repo: TestRepo,
    standins: Vec<(&'static str, StandIn)>,
    /// The controller in this process; `None` when the test runs the binary itself.
    operator: Option<JoinHandle<Result<(), ControllerError>>>,
    pub cache: tempfile::TempDir,
}

impl Harness {
    /// CRDs installed, a namespace with a Secret and a ToolJetInstance per environment (all
    /// Ready), the repository, and the controller watching the namespace. `None` when skipping.
    pub async fn start() -> Option<Harness> {
        Self::start_with(true).await
    }

    /// Like [`start`](Self::start), but without a controller: the test runs `tooljet-operator
    /// run` itself (see [`OperatorProcess`]). The instances are not Ready until it runs.
    pub async fn start_without_operator() -> Option<Harness> {
        Self::start_with(false).await
    }

    async fn start_with(in_process: bool) -> Option<Harness> {
        let client = kube_client().await?;
        controller::install_crds(&client)
            .await
            .expect("CRDs installed");
        let ns = create_namespace(&client).await;

        let repo = TestRepo::new();
        repo.git_sync_write("app-1", APP, "v1", &bundle("v1"));
        repo.commit(&format!("{APP} v1"));
        repo.publish();

        let mut standins = Vec::new();
        for env in ENVIRONMENTS {
            let standin = StandIn::builder()
                .admin_api_key(API_KEY)
                .start()
                .await
                .expect("stand-in started");
            standins.push((env, standin));
        }
        let cache = tempfile::tempdir().expect("tempdir");
        // `install_crds: true` is `run --install-crds`: the CRDs are applied again (a no-op).
        let operator = in_process.then(|| {
            tokio::spawn(controller::run(
                client.clone(),
                RunOptions {
                    namespace: Some(ns.clone()),
                    concurrency: 4,
                    cache_dir: cache.path().to_owned(),
                    install_crds: true,
                },
            ))
        });
        let h = Harness {
            client,
            ns,
            repo,
            standins,
            operator,
            cache,
        };
        for env in ENVIRONMENTS {
            h.create_instance(env).await;
        }
        if !in_process {
            return Some(h);
        }
        for env in ENVIRONMENTS {
            h.wait_instance(env, "Ready=True", |i| {
                i.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == condition::READY && c.status == "True")
                })
            })
            .await;
        }
        Some(h)
    }

    /// The stand-in serving `env`.
    pub fn standin(&self, env: &str) -> &StandIn {
        &self
            .standins
            .iter()
            .find(|(e, _)| *e == env)
            .unwrap_or_else(|| panic!("no stand-in for {env}"))
            .1
    }

    /// Name of the ToolJetInstance of `env`.
    pub fn instance_name(env: &str) -> String {
        format!("tooljet-{env}")
    }

    pub fn apps(&self) -> Api<AppImport> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn instances(&self) -> Api<ToolJetInstance> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Development and staging log in with an admin API key into a given workspace; production
    /// logs in with email and password and finds its workspace by itself.
    async fn create_instance(&self, env: &str) {
        let standin = self.standin(env);
        let secret_name = format!("tooljet-{env}-credentials");
        let (secret_data, auth, workspace) = if env == "production" {
            (
                json!({"email": standin.email(), "password": standin.password()}),
                json!({"password": {"secretRef": {"name": secret_name}}}),
                None,
            )
        } else {
            (
                json!({"api-key": API_KEY}),
                json!({"adminApiKey": {"secretRef": {"name": secret_name, "key": "api-key"}}}),
                Some(standin.workspace_id()),
            )
        };
        let secret: Secret = serde_json::from_value(
            json!({"metadata": {"name": secret_name}, "stringData": secret_data}),
        )
        .expect("secret");
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("Secret created");
        let mut spec = json!({"url": standin.base_url(), "environment": env, "auth": auth});
        if let Some(w) = workspace {
            spec["workspaceId"] = json!(w);
        }
        let instance: ToolJetInstance = serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": Self::instance_name(env)}, "spec": spec,
        }))
        .expect("instance");
        self.instances()
            .create(&PostParams::default(), &instance)
            .await
            .expect("ToolJetInstance created");
    }

    /// Creates an AppImport of [`APP`] from the repository's `master` branch into `env`;
    /// `extra` is merged into its spec.
    pub async fn create_app(&self, name: &str, env: &str, extra: Value) -> AppImport {
        let mut spec = json!({
            "environment": env,
            "source": {"url": self.repo.file_url(), "ref": {"branch": "master"}, "app": APP},
        });
        merge(&mut spec, extra);
        let app: AppImport = serde_json::from_value(json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("AppImport");
        self.apps()
            .create(&PostParams::default(), &app)
            .await
            .expect("AppImport created")
    }

    /// Sets one annotation on an AppImport (merge patch, as `kubectl annotate --overwrite`).
    pub async fn annotate(&self, name: &str, key: &str, value: &str) {
        self.apps()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotated");
    }

    /// Asks for an immediate reconcile; returns the value `lastHandledReconcileAt` will echo.
    pub async fn request_reconcile(&self, name: &str) -> String {
        let value = unique_value("e2e");
        self.annotate(
            name,
            tooljet_operator::api::ANNOTATION_RECONCILE_REQUESTED_AT,
            &value,
        )
        .await;
        value
    }

    /// Pushes a new version of [`APP`], as ToolJet's Git Sync would; returns the commit sha.
    pub fn push(&self, version: &str) -> String {
        self.repo
            .git_sync_write("app-1", APP, version, &bundle(version));
        let sha = self.repo.commit(&format!("{APP} {version}"));
        self.repo.publish();
        sha
    }

    /// Polls the AppImport until `ok` holds (kubectl wait style). On timeout the panic shows its
    /// last status, and says so when the controller task has stopped.
    pub async fn wait_app(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&AppImport) -> bool,
    ) -> AppImport {
        let api = self.apps();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut last = None;
        loop {
            if let Ok(app) = api.get(name).await {
                if ok(&app) {
                    return app;
                }
                last = app.status;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {TIMEOUT:?} waiting for AppImport {}/{name}: {what}{}; last status: {last:#?}",
                    self.ns,
                    if self.operator.as_ref().is_some_and(|o| o.is_finished()) {
                        " (the controller task has stopped)"
                    } else {
                        ""
                    },
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `kubectl wait --for=condition=Ready` on an AppImport.
    pub async fn wait_ready(&self, name: &str) -> AppImport {
        self.wait_app(name, "Ready=True", |a| {
            has_cond(a, condition::READY, "True", None)
        })
        .await
    }

    /// Polls the ToolJetInstance of `env` until `ok` holds.
    pub async fn wait_instance(
        &self,
        env: &str,
        what: &str,
        ok: impl Fn(&ToolJetInstance) -> bool,
    ) -> ToolJetInstance {
        let api = self.instances();
        let name = Self::instance_name(env);
        wait_for(
            &format!("ToolJetInstance {}/{name}: {what}", self.ns),
            TIMEOUT,
            || async { api.get(&name).await.ok().filter(|i| ok(i)) },
        )
        .await
    }

    /// Waits for an Event with this reason about the AppImport `name`; returns its note.
    pub async fn wait_event(&self, name: &str, reason: &str) -> String {
        self.wait_event_about("AppImport", name, reason).await
    }

    /// Waits for an Event with this reason about the object of `kind` named `name`; returns
    /// its note.
    pub async fn wait_event_about(&self, kind: &str, name: &str, reason: &str) -> String {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        wait_for(
            &format!("an Event {reason} about {kind} {}/{name}", self.ns),
            TIMEOUT,
            || async {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items.into_iter().find_map(|e| {
                    let about = e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                    });
                    (about && e.reason.as_deref() == Some(reason))
                        .then(|| e.note.unwrap_or_default())
                })
            },
        )
        .await
    }

    /// Deletes the AppImport and waits until it is gone (its finalizer released).
    pub async fn delete_app(&self, name: &str) {
        let api = self.apps();
        api.delete(name, &DeleteParams::default())
            .await
            .expect("AppImport deleted");
        wait_for(
            &format!("AppImport {}/{name} to be gone", self.ns),
            TIMEOUT,
            || async { matches!(api.get_opt(name).await, Ok(None)).then_some(()) },
        )
        .await;
    }

    /// Deletes every AppImport while the controller still runs (so finalizers are released),
    /// then stops the controller and deletes the rest and the namespace. Only reached when the
    /// test passed: a failed test leaves its namespace for inspection.
    pub async fn finish(self) {
        let apps = self.apps();
        let all = ListParams::default();
        apps.delete_collection(&DeleteParams::default(), &all)
            .await
            .expect("AppImports deleted");
        wait_for("every AppImport to be gone", TIMEOUT, || async {
            apps.list(&all)
                .await
                .ok()
                .filter(|l| l.items.is_empty())
                .map(|_| ())
        })
        .await;
        if let Some(operator) = &self.operator {
            operator.abort();
        }
        self.instances()
            .delete_collection(&DeleteParams::default(), &all)
            .await
            .expect("ToolJetInstances deleted");
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .delete_collection(&DeleteParams::default(), &all)
            .await
            .expect("Secrets deleted");
        delete_namespace(&self.client, &self.ns).await;
    }
}

/// Merges `extra` into `base`, recursively for objects; `null` removes nothing (it is set).
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// `tooljet-operator run` as a child process (the real binary), watching one namespace, with its
/// HTTP server on a free loopback port and the generic webhook enabled. Logs go to a file that
/// [`OperatorProcess::logs`] returns (shown when a test fails).
pub struct OperatorProcess {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    log: std::path::PathBuf,
}

/// Token of the generic webhook route of [`OperatorProcess`].
pub const WEBHOOK_TOKEN: &str = "e2e-webhook-token";

impl OperatorProcess {
    /// Starts the binary against the kubeconfig of `ENV_VAR`; `log` receives its stderr.
    pub fn start(ns: &str, cache_dir: &std::path::Path, log: std::path::PathBuf) -> Self {
        let kubeconfig = std::env::var(ENV_VAR).expect("the e2e kubeconfig");
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"))
            .args(["run", "--namespace", ns, "--metrics-addr"])
            .arg(addr.to_string())
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(["--log-format", "text"])
            .env("KUBECONFIG", kubeconfig)
            .env("WEBHOOK_GENERIC_TOKEN", WEBHOOK_TOKEN)
            .env("RUST_LOG", "tooljet_operator=info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("tooljet-operator starts");
        OperatorProcess { child, addr, log }
    }

    /// A request to the operator's HTTP server: the status code, or 0 when nothing answers.
    pub async fn http(&self, method: &str, path: &str, headers: &str, body: &str) -> u16 {
        crate::http_probe::status(self.addr, method, path, headers, body).await
    }

    /// Announces a push of `repo_url` on the generic webhook; true when it was accepted (202).
    pub async fn announce_push(&self, repo_url: &str) -> bool {
        let body = json!({"repository": repo_url}).to_string();
        let auth =
            format!("Authorization: Bearer {WEBHOOK_TOKEN}\r\nContent-Type: application/json\r\n");
        self.http("POST", "/hooks/generic", &auth, &body).await == 202
    }

    /// SIGKILL: no clean-up of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s); returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything the process logged so far (all starts sharing the log file).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
