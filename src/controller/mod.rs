//! The Kubernetes controller (`tooljet-operator run`): one controller for AppImports, one for
//! ToolJetInstances, on kube-runtime. It needs only the API server (in-cluster config or a
//! kubeconfig), no pods of its own, and never stores app JSON in etcd.
//!
//! - [`conditions`]: kstatus conditions from the engine's report (pure).
//! - [`caches`]: the watched objects, and when each cache holds its first full list.
//! - [`resolve`]: instance matching, tenancy, Secrets and ToolJet clients.
//! - [`app_import`]: the AppImport reconcile, finalizer, Events and backoff.
//! - [`instance`]: the ToolJetInstance reconcile (login and reachability).
//! - [`watch`]: which AppImports a change to an instance or Secret re-enqueues.
//! - [`server`], [`metrics`], [`webhook`], [`urls`]: `/metrics`, probes and push webhooks.
//! - [`leader`]: leader election on a Lease (`--leader-elect`).

pub mod app_import;
pub mod caches;
pub mod conditions;
pub mod instance;
pub mod leader;
pub mod metrics;
pub mod resolve;
pub mod server;
pub mod urls;
pub mod watch;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use self::caches::{Cache, CacheSynced};
use self::leader::{LeaderConfig, LeaderElector};
use self::metrics::{Metrics, ReconcileResult};
use self::server::Readiness;
use self::webhook::{Enqueue, HookTarget, WebhookSecrets, WebhookState};

use crate::api::{AppImport, ToolJetInstance};
use crate::source::{CacheConfig, SourceCache};
use crate::sync::Engine;

/// How `run` is configured (from `tooljet-operator run` flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Watch only this namespace; `None` watches all namespaces.
    pub namespace: Option<String>,
    /// How many AppImports are reconciled at the same time (at least 1).
    pub concurrency: u16,
    /// Directory of the shared git mirrors.
    pub cache_dir: PathBuf,
    /// Apply the CRDs with server-side apply before starting.
    pub install_crds: bool,
}

/// The HTTP server and leader election of `run` (`--metrics-addr`, `--leader-elect`).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Address of the HTTP server (metrics, probes, webhooks); `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election; `None` runs the controllers at once (a single replica).
    pub leader_election: Option<LeaderConfig>,
    /// Secrets enabling the webhook routes.
    pub webhook_secrets: WebhookSecrets,
}

/// Webhook pushes waiting for the AppImport controller (it dedups repeats of one object).
const WEBHOOK_QUEUE: usize = 1024;

/// Errors of the controller layer.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}; check the operator's RBAC and that the API server is reachable")]
    Kube(#[source] kube::Error),
    #[error("{0}")]
    InvalidObject(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ControllerError>>),
    #[error("cleanup on deletion failed: {0}")]
    Cleanup(String),
    #[error(
        "cannot install CRD {name}: {source}; the operator needs create/patch on customresourcedefinitions, or install crds/ with kubectl and run without --install-crds"
    )]
    InstallCrd {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "CRD {name} was applied but did not become Established within {seconds}s; check `kubectl describe crd {name}`"
    )]
    CrdNotEstablished { name: String, seconds: u64 },
    #[error("cannot listen on {addr}: {source}; choose another --metrics-addr")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "leadership of Lease {lease} lost (taken by another replica, or not renewed in time); exiting so this replica restarts as a standby"
    )]
    LeadershipLost { lease: String },
}

/// Runs both controllers until SIGTERM or Ctrl-C, then lets running reconciles finish; no HTTP
/// server, no leader election (see [`run_with`]).
pub async fn run(client: Client, opts: RunOptions) -> Result<(), ControllerError> {
    run_with(client, opts, ServeOptions::default()).await
}

/// Serves metrics, probes and webhooks (when `serve.metrics_addr` is set) and runs both
/// controllers (once leader, with `serve.leader_election`) until SIGTERM or Ctrl-C, then lets
/// running reconciles finish.
pub async fn run_with(
    client: Client,
    opts: RunOptions,
    serve: ServeOptions,
) -> Result<(), ControllerError> {
    run_until(client, opts, serve, shutdown_signal()).await
}

/// [`run_with`], stopping when `shutdown` resolves instead of on SIGTERM or Ctrl-C (for embedding
/// the controller, and for tests that start and stop it many times in one process).
pub async fn run_until(
    client: Client,
    opts: RunOptions,
    serve: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    if opts.install_crds {
        install_crds(&client).await?;
    }
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let hooks = HookTarget::default();
    let shutdown = shutdown.boxed().shared();
    let server = match serve.metrics_addr {
        Some(addr) => {
            let webhook = WebhookState::new(
                serve.webhook_secrets.clone(),
                hooks.clone(),
                metrics.clone(),
            )
            .with_standby(client.clone(), opts.namespace.clone());
            let router = server::router(metrics.clone(), readiness.clone(), Arc::new(webhook));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ControllerError::Listen { addr, source })?;
            info!(%addr, secrets = ?serve.webhook_secrets, "serving /metrics, /healthz, /readyz and /hooks/*");
            Some(tokio::spawn(server::serve(
                listener,
                router,
                shutdown.clone(),
            )))
        }
        None => None,
    };

    let parts = Parts {
        metrics,
        readiness: readiness.clone(),
        hooks,
        shutdown: shutdown.clone(),
    };
    let controllers = async {
        match serve.leader_election {
            None => run_controllers(client, &opts, parts).await,
            Some(cfg) => {
                info!(lease = %cfg.lease_name, namespace = %cfg.namespace, identity = %cfg.identity, "leader election on");
                let elector = LeaderElector::new(client.clone(), cfg);
                leader::run_when_leader(elector, readiness, shutdown.clone(), || {
                    run_controllers(client, &opts, parts)
                })
                .await
            }
        }
    };
    let result = within_shutdown_grace(controllers, shutdown.clone(), SHUTDOWN_GRACE).await;
    // On shutdown the server stops by itself; on lost leadership it is stopped here.
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// AppImports of one repository reconciled within this window share one remote ref listing.
/// Pushes announced by a webhook or a `reconcile-requested-at` request are seen at once
/// ([`SourceCache::forget_ref_checks`]); other pushes wait at most this long more than `interval`.
pub const REUSE_REF_CHECKS: Duration = Duration::from_secs(5);

/// How long running reconciles may take after SIGTERM; under Kubernetes' default 30 s grace period.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Runs `work` to its end, but once `shutdown` has fired waits at most `grace` for it: a
/// controller still waiting for its first list (API server unreachable) never sees the shutdown.
async fn within_shutdown_grace<F>(
    work: F,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> Result<(), ControllerError>
where
    F: std::future::Future<Output = Result<(), ControllerError>>,
{
    tokio::select! {
        result = work => result,
        () = async { shutdown.await; tokio::time::sleep(grace).await } => {
            warn!(?grace, "reconciles did not stop within the grace period after shutdown was requested; exiting");
            Ok(())
        }
    }
}

/// What the controllers share with the HTTP server.
struct Parts {
    metrics: Arc<Metrics>,
    readiness: Readiness,
    hooks: HookTarget,
    shutdown: Shared<BoxFuture<'static, ()>>,
}

async fn run_controllers(
    client: Client,
    opts: &RunOptions,
    parts: Parts,
) -> Result<(), ControllerError> {
    let Parts {
        metrics,
        readiness,
        hooks,
        shutdown,
    } = parts;
    let (apps, instances, secrets) = match &opts.namespace {
        Some(ns) => (
            Api::<AppImport>::namespaced(client.clone(), ns),
            Api::<ToolJetInstance>::namespaced(client.clone(), ns),
            Api::<Secret>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    // Each reflector store is awaited by its own Controller only; everything else waits on the
    // CacheSynced flags (see `caches` for why a second `wait_until_ready` would hang).
    let instance_cache_synced = CacheSynced::default();
    let app_cache_synced = CacheSynced::default();
    let secret_cache_synced = CacheSynced::default();

    // Both controllers write their own status; reacting to those writes would loop (status
    // carries lastSyncTime). Spec (generation), annotations, finalizers and deletion re-enqueue.
    let (instance_store, writer) = reflector::store();
    let instance_changes = instance_cache_synced
        .track(
            watcher::watcher(instances.clone(), watcher::Config::default())
                .default_backoff()
                .modify(drop_managed_fields)
                .reflect(writer),
        )
        .applied_objects()
        .predicate_filter(
            predicates::generation::<ToolJetInstance>.combine(being_deleted::<ToolJetInstance>),
            PredicateConfig::default(),
        );
    // Secret changes reach both controllers through these queues (one Secret watch, see below).
    let (instance_queue, instances_to_check) = mpsc::channel(WEBHOOK_QUEUE);
    let instance_controller = Controller::for_stream(instance_changes, instance_store.clone())
        .reconcile_on(tokio_stream_of(instances_to_check))
        .graceful_shutdown_on(shutdown.clone());

    let (app_store, writer) = reflector::store();
    let app_changes = app_cache_synced
        .track(
            watcher::watcher(apps, watcher::Config::default())
                .default_backoff()
                .modify(drop_managed_fields)
                .reflect(writer),
        )
        .applied_objects()
        .predicate_filter(
            predicates::generation::<AppImport>
                .combine(predicates::annotations::<AppImport>)
                .combine(predicates::finalizers::<AppImport>)
                .combine(being_deleted::<AppImport>),
            PredicateConfig::default(),
        );
    // Verified webhook pushes enter the AppImport queue directly.
    let (queue, pushes) = mpsc::channel(WEBHOOK_QUEUE);
    let (app_queue, apps_to_sync) = mpsc::channel(WEBHOOK_QUEUE);
    let apps_for_instances = app_store.clone();
    let app_controller = Controller::for_stream(app_changes, app_store.clone())
        .with_config(ControllerConfig::default().concurrency(opts.concurrency.max(1)))
        .reconcile_on(tokio_stream_of(pushes))
        .reconcile_on(tokio_stream_of(apps_to_sync))
        .watches(instances, watcher::Config::default(), move |inst| {
            watch::apps_using_instance(&apps_for_instances.state(), &inst)
        })
        .graceful_shutdown_on(shutdown);

    // One Secret watch fills the cache that reconciles read Secrets from, and re-enqueues the
    // instances and AppImports that use a changed Secret.
    let (secret_store, writer) = reflector::store();
    let secret_users = SecretUsers {
        instances: instance_store.clone(),
        apps: app_store.clone(),
        instance_queue,
        app_queue,
    };
    let secret_watch = secret_cache_synced
        .track(
            watcher::watcher(secrets, watcher::Config::default())
                .default_backoff()
                .modify(drop_managed_fields)
                .reflect(writer),
        )
        .touched_objects()
        .for_each(move |secret| secret_users.clone().notify(secret));
    let secret_cache = Cache {
        store: secret_store,
        synced: secret_cache_synced.clone(),
    };

    let reporter = Reporter {
        controller: "tooljet-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let source = SourceCache::new(CacheConfig {
        dir: opts.cache_dir.clone(),
        reuse_ref_checks: REUSE_REF_CHECKS,
        ..CacheConfig::default()
    });
    // Mirrors of repositories no AppImport uses any more are removed after the cache's TTL.
    let mirror_gc = AbortOnDrop(source.spawn_gc(MIRROR_GC_EVERY));
    let engine = Engine::new(source.clone());
    let app_ctx = Arc::new(
        app_import::Context::new(
            client.clone(),
            engine,
            Recorder::new(client.clone(), reporter),
            Cache {
                store: instance_store.clone(),
                synced: instance_cache_synced.clone(),
            },
            secret_cache.clone(),
        )
        .with_metrics(metrics.clone()),
    );
    let instance_ctx = Arc::new(instance::InstanceContext {
        client: client.clone(),
        secrets: secret_cache,
    });
    info!(
        namespace = opts.namespace.as_deref().unwrap_or("<all>"),
        concurrency = opts.concurrency,
        "controllers starting"
    );

    hooks.set(Some(Enqueue {
        apps: app_store,
        queue,
        source,
    }));
    // Ready once the three caches hold a full list.
    let synced = AbortOnDrop(tokio::spawn(async move {
        app_cache_synced.wait().await;
        instance_cache_synced.wait().await;
        secret_cache_synced.wait().await;
        info!("caches synced: ready");
        readiness.set(true);
    }));

    let apps_done = app_controller
        .run(app_import::reconcile, app_import::error_policy, app_ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "AppImport controller");
            }
        });
    let instance_metrics = metrics.clone();
    let instances_done = instance_controller
        .run(
            move |obj, ctx| {
                let metrics = instance_metrics.clone();
                async move {
                    let started = tokio::time::Instant::now();
                    let result = instance::reconcile(obj, ctx).await;
                    let verdict = if result.is_ok() {
                        ReconcileResult::Success
                    } else {
                        ReconcileResult::Error
                    };
                    metrics.reconciled("ToolJetInstance", verdict, started.elapsed());
                    result
                }
            },
            instance::error_policy,
            instance_ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "ToolJetInstance controller");
            }
        });
    // The Secret watch never ends by itself: it runs for as long as the controllers do.
    tokio::select! {
        _ = async { futures::join!(apps_done, instances_done) } => {}
        () = async { secret_watch.await; futures::future::pending::<()>().await } => {}
    }
    drop((synced, mirror_gc));
    hooks.set(None);
    info!("controllers stopped");
    Ok(())
}

/// How often unused git mirrors are looked for (the first look is at start-up).
const MIRROR_GC_EVERY: Duration = Duration::from_secs(3600);

/// The objects that read a changed Secret, and the queues that re-enqueue them.
#[derive(Clone)]
struct SecretUsers {
    instances: reflector::Store<ToolJetInstance>,
    apps: reflector::Store<AppImport>,
    instance_queue: mpsc::Sender<reflector::ObjectRef<ToolJetInstance>>,
    app_queue: mpsc::Sender<reflector::ObjectRef<AppImport>>,
}

impl SecretUsers {
    async fn notify(self, secret: Result<Secret, watcher::Error>) {
        let secret = match secret {
            Ok(secret) => secret,
            Err(error) => {
                warn!(%error, "Secret watch");
                return;
            }
        };
        let instances = self.instances.state();
        for instance in watch::instances_using_secret(&instances, &secret) {
            // Closed only when the controller stopped.
            let _ = self.instance_queue.send(instance).await;
        }
        for app in watch::apps_using_secret(&self.apps.state(), &instances, &secret) {
            let _ = self.app_queue.send(app).await;
        }
    }
}

/// Cached objects keep no managedFields: the operator never reads them, and they are often the
/// largest part of an object.
fn drop_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Aborts a background task when dropped (on every way out of the controllers).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A tokio receiver as a `Stream` (tokio-stream's wrapper, without the dependency).
fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Resolves on the first SIGTERM or Ctrl-C; shared by both controllers.
fn shutdown_signal() -> Shared<BoxFuture<'static, ()>> {
    async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(error) => {
                    error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutdown requested: finishing running reconciles");
    }
    .boxed()
    .shared()
}

const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Server-side applies both CRDs and waits until the API server serves them.
pub async fn install_crds(client: &Client) -> Result<(), ControllerError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(app_import::FIELD_MANAGER).force();
    for crd in crate::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| ControllerError::InstallCrd {
                name: name.clone(),
                source,
            })?;
        info!(crd = %name, "CRD applied");
        let deadline = tokio::time::Instant::now() + CRD_ESTABLISH_TIMEOUT;
        loop {
            let current = api
                .get(&name)
                .await
                .map_err(|source| ControllerError::InstallCrd {
                    name: name.clone(),
                    source,
                })?;
            if is_established(&current) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::CrdNotEstablished {
                    name,
                    seconds: CRD_ESTABLISH_TIMEOUT.as_secs(),
                });
            }
            // Poll interval while the API server registers the new types.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// Predicate: changes when deletion starts (a deletionTimestamp does not always bump generation).
fn being_deleted<K: Resource>(obj: &K) -> Option<u64> {
    Some(u64::from(obj.meta().deletion_timestamp.is_some()))
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

#[cfg(test)]
mod shutdown_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stuck_work_is_abandoned_after_the_grace_period_once_shutdown_fired() {
        let stuck = futures::future::pending::<Result<(), ControllerError>>();
        let started = tokio::time::Instant::now();
        within_shutdown_grace(stuck, async {}, Duration::from_secs(25))
            .await
            .expect("returns");
        assert_eq!(started.elapsed().as_secs(), 25);
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_is_not_cut_short_and_its_error_is_kept() {
        let failing = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Err(ControllerError::InvalidObject("boom".into()))
        };
        let result = within_shutdown_grace(failing, async {}, Duration::from_secs(25)).await;
        assert!(matches!(result, Err(ControllerError::InvalidObject(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn without_shutdown_stuck_work_keeps_running() {
        let stuck = futures::future::pending::<Result<(), ControllerError>>();
        let never = futures::future::pending::<()>();
        let outcome = tokio::time::timeout(
            Duration::from_secs(3600),
            within_shutdown_grace(stuck, never, Duration::from_secs(25)),
        )
        .await;
        assert!(outcome.is_err(), "must still be running");
    }
}
