//! Scenario 4, through the controller, against the cluster named by
//! `TOOLJET_OPERATOR_E2E_KUBECONFIG` (as the end-to-end tests, `tests/e2e/harness.rs`). Only the
//! API server is remote: `tooljet-operator run` runs on this machine as a child process (built by
//! cargo with the bench), and reaches the stand-in and the `git daemon` servers on loopback.
//!
//! Measured: commit-to-applied latency by webhook (`POST /hooks/generic`) and by polling
//! (`interval: 10s`), and the operator's resident memory once Ready and idle.

use std::fmt::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use tooljet_operator::api::{AppImport, ToolJetInstance, condition};

use crate::Fail;
use crate::measure::{Spread, machine, ms, status_kib_of};
use crate::world::{API_KEY, AppRepo, StandInProc};

pub const ENV_VAR: &str = "TOOLJET_OPERATOR_E2E_KUBECONFIG";
/// The one line printed (and `all` goes on) when there is no cluster.
pub const SKIP_LINE: &str = "skipped: needs a Kubernetes API server; set TOOLJET_OPERATOR_E2E_KUBECONFIG to a kubeconfig (README, \"End-to-end tests against a cluster\")";
/// Built by cargo for bench targets, in the same profile as the bench.
const OPERATOR: &str = env!("CARGO_BIN_EXE_tooljet-operator");
/// A dummy token for a webhook on loopback; not a secret of anyone's.
const WEBHOOK_TOKEN: &str = "bench-webhook-token";
/// How often the AppImport is read while waiting for a commit to be applied.
const POLL: Duration = Duration::from_millis(20);
/// Bound of every wait (start-up, first import, one commit through the webhook).
const TIMEOUT: Duration = Duration::from_secs(60);
/// `spec.interval` of the polled AppImport (the smallest the CRD accepts).
const INTERVAL: Duration = Duration::from_secs(10);
/// How long the operator sits idle before its memory is read.
const IDLE: Duration = Duration::from_secs(3);
const INSTANCE: &str = "tooljet";
const HOOKED: &str = "bench-webhook";
const POLLED: &str = "bench-polling";

/// Runs scenario 4 when the variable is set; `None` when it is not (the caller says so). The result
/// is the Markdown of the scenario's own section of BENCHMARKS.md.
pub async fn cluster(runs: usize) -> Result<Option<String>, Fail> {
    let Ok(path) = std::env::var(ENV_VAR) else {
        return Ok(None);
    };
    eprintln!("bench: scenario cluster ({runs} runs) against {ENV_VAR}={path}");
    let started = Instant::now();
    // Started first and dropped last: the operator may still talk to them during cleanup.
    let parts = Parts {
        standin: StandInProc::start()?,
        hooked: AppRepo::new("hooked", 1)?,
        polled: AppRepo::new("polled", 1)?,
    };
    let client = kube_client(&path).await?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| format!("{ENV_VAR}={path}: cannot reach the API server: {e}"))?
        .git_version;
    tooljet_operator::controller::install_crds(&client).await?;
    let ns = create_namespace(&client)
        .await
        .map_err(|e| format!("cannot create a namespace (tjbench-…): {e}"))?;
    eprintln!("bench: namespace {ns}");
    let mut env = Env {
        client,
        ns,
        operator: None,
    };
    let measured = measure(&mut env, &parts, &path, runs).await;
    let cleaned = env.cleanup(measured.is_err()).await;
    drop(parts);
    let mut md = measured?;
    cleaned?;
    let _ = writeln!(
        md,
        "\nAPI server {version}. Run: `cargo bench --bench bench -- cluster --runs {runs}` took {:.0} s.\n\nMachine (the operator, stand-in and git servers ran here):\n\n{}",
        started.elapsed().as_secs_f64(),
        machine()
    );
    Ok(Some(md))
}

async fn kube_client(path: &str) -> Result<Client, Fail> {
    let kubeconfig = Kubeconfig::read_from(path)
        .map_err(|e| format!("{ENV_VAR}={path}: cannot read the kubeconfig: {e}"))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{ENV_VAR}={path}: unusable kubeconfig: {e}"))?;
    Ok(Client::try_from(config)?)
}

async fn create_namespace(client: &Client) -> Result<String, Fail> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"generateName": "tjbench-"}}))?;
    let ns = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(ns.name_any())
}

/// Polls `check` every [`POLL`] until it returns `Some`; an error naming `what` after `timeout`.
async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, Fail>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Fail>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `tooljet-operator run` in a child process; killed on drop.
struct Operator {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _cache: tempfile::TempDir,
}

impl Operator {
    fn start(kubeconfig: &str, ns: &str) -> Result<Operator, Fail> {
        // A free port: bound by the OS, released, handed to the operator.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let cache = tempfile::tempdir()?;
        let log =
            std::env::temp_dir().join(format!("tooljet-bench-operator-{}.log", std::process::id()));
        let child = Command::new(OPERATOR)
            .args(["run", "--namespace", ns, "--metrics-addr"])
            .arg(addr.to_string())
            .arg("--cache-dir")
            .arg(cache.path())
            .env("KUBECONFIG", kubeconfig)
            .env("WEBHOOK_GENERIC_TOKEN", WEBHOOK_TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {OPERATOR}: {e}"))?;
        Ok(Operator {
            child,
            addr,
            log,
            _cache: cache,
        })
    }

    /// An error when the process has exited (a wait would only time out).
    fn alive(&mut self) -> Result<(), Fail> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(format!(
                "the operator exited ({status}); its log: {}",
                self.log.display()
            )
            .into()),
        }
    }

    /// `VmRSS` and `VmHWM` of the operator, in MiB.
    fn memory(&self) -> (f64, f64) {
        let pid = self.child.id().to_string();
        let mib = |field| status_kib_of(&pid, field).unwrap_or(0) as f64 / 1024.0;
        (mib("VmRSS"), mib("VmHWM"))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the operator talks to on this machine: the stand-in, and one repository per AppImport.
struct Parts {
    standin: StandInProc,
    hooked: AppRepo,
    polled: AppRepo,
}

/// What cleanup needs, whatever happened in between.
struct Env {
    client: Client,
    ns: String,
    operator: Option<Operator>,
}

impl Env {
    fn apps(&self) -> Api<AppImport> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Deletes the AppImports while the operator still runs (it releases their finalizers), then
    /// stops it and deletes the namespace. The operator's log is kept when `keep_log`.
    async fn cleanup(mut self, keep_log: bool) -> Result<(), Fail> {
        let apps = self.apps();
        let all = ListParams::default();
        let gone = async {
            apps.delete_collection(&DeleteParams::default(), &all)
                .await?;
            poll_until("every AppImport to be gone", TIMEOUT, || async {
                Ok(apps.list(&all).await?.items.is_empty().then_some(()))
            })
            .await
        }
        .await;
        let log = self.operator.take().map(|op| op.log.clone());
        // As the end-to-end harness: without a controller-manager nothing empties the namespace.
        let instances: Api<ToolJetInstance> = Api::namespaced(self.client.clone(), &self.ns);
        let _ = instances
            .delete_collection(&DeleteParams::default(), &all)
            .await;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let _ = secrets
            .delete_collection(&DeleteParams::default(), &all)
            .await;
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.ns, &DeleteParams::default())
            .await?;
        if keep_log || gone.is_err() {
            if let Some(log) = &log {
                eprintln!("bench: the operator's log: {}", log.display());
            }
        } else if let Some(log) = &log {
            let _ = std::fs::remove_file(log);
        }
        gone?;
        Ok(())
    }
}

/// The commit an AppImport last applied.
async fn applied(apps: &Api<AppImport>, name: &str) -> Result<Option<String>, Fail> {
    let app = apps.get(name).await?;
    Ok(app
        .status
        .and_then(|s| s.last_applied_commit)
        .map(|c| c.sha))
}

/// Polls until `name` has applied `sha`; the time it took.
async fn wait_applied(
    env: &mut Env,
    name: &str,
    sha: &str,
    timeout: Duration,
) -> Result<Duration, Fail> {
    let t = Instant::now();
    let apps = env.apps();
    let deadline = t + timeout;
    loop {
        if applied(&apps, name).await?.as_deref() == Some(sha) {
            return Ok(t.elapsed());
        }
        if let Some(op) = env.operator.as_mut() {
            op.alive()?;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for AppImport {}/{name} to apply {sha}",
                env.ns
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn create_app(env: &Env, name: &str, repo: &AppRepo, interval: &str) -> Result<(), Fail> {
    let app: AppImport = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": name},
        "spec": {
            "environment": "development",
            "source": {"url": repo.git_url, "ref": {"branch": "master"}, "app": repo.names[0]},
            "appName": name,
            "interval": interval,
        },
    }))?;
    env.apps().create(&PostParams::default(), &app).await?;
    Ok(())
}

async fn measure(
    env: &mut Env,
    parts: &Parts,
    kubeconfig: &str,
    runs: usize,
) -> Result<String, Fail> {
    let Parts {
        standin,
        hooked,
        polled,
    } = parts;

    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "tooljet-credentials"}, "stringData": {"api-key": API_KEY},
    }))?;
    Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let instance: ToolJetInstance = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
        "metadata": {"name": INSTANCE},
        "spec": {
            "url": standin.base_url, "environment": "development",
            "workspaceId": standin.workspace_id,
            "auth": {"adminApiKey": {"secretRef": {"name": "tooljet-credentials", "key": "api-key"}}},
        },
    }))?;
    let instances: Api<ToolJetInstance> = Api::namespaced(env.client.clone(), &env.ns);
    instances.create(&PostParams::default(), &instance).await?;

    let t = Instant::now();
    env.operator = Some(Operator::start(kubeconfig, &env.ns)?);
    let (addr, log) = match &env.operator {
        Some(op) => (op.addr, op.log.clone()),
        None => return Err("the operator did not start".into()),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let readyz = format!("http://{addr}/readyz");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(op) = env.operator.as_mut() {
            op.alive()?;
        }
        let ready = http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the operator was not Ready ({readyz}) within {TIMEOUT:?}; its log: {}",
                log.display()
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
    let to_ready = t.elapsed();
    poll_until("the ToolJetInstance to be Ready", TIMEOUT, || async {
        let i = instances.get(INSTANCE).await?;
        Ok(i.status
            .is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == condition::READY && c.status == "True")
            })
            .then_some(()))
    })
    .await?;

    // Idle with one ToolJetInstance and no AppImport.
    tokio::time::sleep(IDLE).await;
    let op_memory = |env: &Env| env.operator.as_ref().map_or((0.0, 0.0), Operator::memory);
    let (empty_rss, empty_hwm) = op_memory(env);

    // The webhook one keeps the default interval (5m), so only the webhook brings its commits.
    create_app(env, HOOKED, hooked, "5m").await?;
    let first = wait_applied(env, HOOKED, &hooked.repo.head(), TIMEOUT).await?;
    let interval = format!("{}s", INTERVAL.as_secs());
    create_app(env, POLLED, polled, &interval).await?;
    wait_applied(env, POLLED, &polled.repo.head(), TIMEOUT).await?;

    // (a) By webhook: push, tell the operator, wait until applied.
    let hook_url = format!("http://{addr}/hooks/generic");
    let mut by_hook = Vec::with_capacity(runs);
    for r in 0..runs {
        let sha = hooked.touch(1, &format!("hook-{r}"))?;
        let t = Instant::now();
        let resp = http
            .post(&hook_url)
            .bearer_auth(WEBHOOK_TOKEN)
            .json(&json!({"repository": hooked.git_url}))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status != reqwest::StatusCode::ACCEPTED || body["enqueued"] != json!(1) {
            return Err(format!(
                "POST /hooks/generic answered {status} {body}, not 202 with one AppImport enqueued"
            )
            .into());
        }
        wait_applied(env, HOOKED, &sha, TIMEOUT).await?;
        by_hook.push(t.elapsed());
    }

    // (b) By polling: each push lands at a pseudo-random point of the interval, so the latency
    // spreads over 0..interval (about interval/2 on average). At most 5 runs: each costs about
    // one interval.
    let poll_runs = runs.min(5);
    let mut by_poll = Vec::with_capacity(poll_runs);
    for r in 0..poll_runs {
        tokio::time::sleep(pseudo_random_below(INTERVAL)).await;
        let sha = polled.touch(1, &format!("poll-{r}"))?;
        let t = Instant::now();
        wait_applied(env, POLLED, &sha, INTERVAL + TIMEOUT).await?;
        by_poll.push(t.elapsed());
    }

    // (c) Idle with two AppImports applied.
    tokio::time::sleep(IDLE).await;
    let (idle_rss, idle_hwm) = op_memory(env);

    let hook = Spread::of(&by_hook);
    let poll = Spread::of(&by_poll);
    let mut misses = Vec::new();
    let mut check = |ok: bool, what: String| {
        if ok {
            "yes"
        } else {
            eprintln!("bench: goal missed: {what}");
            misses.push(what);
            "**no**"
        }
    };
    let hook_ok = check(
        hook.median < Duration::from_secs(1),
        format!(
            "controller: commit-to-applied by webhook under 1 s median (got {})",
            ms(hook.median)
        ),
    );
    let rss_ok = check(
        idle_rss < 30.0,
        format!("controller: idle RSS under 30 MiB (got {idle_rss:.1} MiB)"),
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### 4. Through the controller ({runs} runs)\n\n| Measure | Value | Goal | Met |\n|---|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| `tooljet-operator run` start to Ready (`/readyz`) | {} | – | – |",
        ms(to_ready)
    );
    let _ = writeln!(
        md,
        "| First import: AppImport created to `lastAppliedCommit` | {} | – | – |",
        ms(first)
    );
    let _ = writeln!(
        md,
        "| Commit-to-applied by webhook (`POST /hooks/generic`, {} runs) | {} | < 1 s median | {hook_ok} |",
        hook.n,
        hook.show()
    );
    let _ = writeln!(
        md,
        "| Commit-to-applied by polling (`interval: {interval}`, push at a random point, {} runs) | {}, max {} | about interval/2 | – |",
        poll.n,
        poll.show(),
        ms(poll.max)
    );
    let _ = writeln!(
        md,
        "| Idle RSS, Ready, one ToolJetInstance, no AppImport (VmRSS; VmHWM) | {empty_rss:.1} MiB; {empty_hwm:.1} MiB | – | – |"
    );
    let _ = writeln!(
        md,
        "| Idle RSS after the runs, two AppImports, idle {} s (VmRSS; VmHWM) | {idle_rss:.1} MiB; {idle_hwm:.1} MiB | < 30 MiB | {rss_ok} |",
        IDLE.as_secs()
    );
    if misses.is_empty() {
        md.push_str("\nEvery goal of this scenario was met.\n");
    } else {
        md.push_str("\nGoals missed in this run:\n\n");
        for m in &misses {
            let _ = writeln!(md, "- {m}");
        }
    }
    Ok(md)
}

/// A delay in `0..below` from the clock's nanoseconds: enough spread for a push's point in the
/// poll interval, without a random-number crate.
fn pseudo_random_below(below: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let ms = below.as_millis().max(1) as u64;
    Duration::from_millis(nanos % ms)
}
