//! The Kubernetes controller (`tooljet-operator run`): one controller for AppImports, one for
//! ToolJetInstances, on kube-runtime. It needs only the API server (in-cluster config or a
//! kubeconfig), no pods of its own, and never stores app JSON in etcd.
//!
//! - this file: the start-up sequence ([`run_until`]) and the watches feeding both controllers.
//! - [`conditions`]: kstatus conditions from the engine's report (pure).
//! - [`caches`]: the watched objects, and when each cache holds its first full list.
//! - [`resolve`]: instance matching, tenancy, Secrets and ToolJet clients.
//! - [`app_import`]: the AppImport reconcile, finalizer, Events and backoff.
//! - [`app_export`]: the AppExport controller (export to git on an interval).
//! - `apply`: status by server-side apply and Event notes, for every controller.
//! - [`instance`]: the ToolJetInstance reconcile (login and reachability).
//! - [`watch`]: which AppImports a change to an instance or Secret, or a webhook push, re-enqueues.
//! - `crds`: `--install-crds` ([`install_crds`]).
//!
//! The HTTP server, metrics, webhooks, leader election and shutdown are process plumbing in
//! [`crate::process`]; the controllers use its handles, it knows nothing of reconciles.

pub mod app_export;
pub mod app_import;
mod apply;
pub mod caches;
pub mod conditions;
mod crds;
pub mod instance;
pub mod resolve;
pub mod watch;

pub use crds::install_crds;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tracing::{info, warn};

use self::caches::{Cache, CacheSynced};
use self::watch::{Enqueue, SecretUsers};
use crate::api::{AppImport, ToolJetInstance};
use crate::process::leader::{LeaderConfig, LeaderElector, LeadershipLost, when_leader};
use crate::process::metrics::{Metrics, ReconcileResult};
use crate::process::server::{self, Readiness};
use crate::process::shutdown::{
    AbortOnDrop, SHUTDOWN_GRACE, Shutdown, shutdown_signal, within_shutdown_grace,
};
use crate::process::webhook::{HookTarget, WebhookSecrets, WebhookState};
use crate::source::{CacheConfig, SourceCache};

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

/// Webhook pushes and Secret changes waiting for a controller (it dedups repeats of one object).
const WEBHOOK_QUEUE: usize = 1024;

/// AppImports of one repository reconciled within this window share one remote ref listing.
/// Pushes announced by a webhook or a `reconcile-requested-at` request are seen at once
/// ([`SourceCache::forget_ref_checks`]); other pushes wait at most this long more than `interval`.
pub const REUSE_REF_CHECKS: Duration = Duration::from_secs(5);

/// How often unused git mirrors are looked for (the first look is at start-up).
const MIRROR_GC_EVERY: Duration = Duration::from_secs(3600);

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

impl From<LeadershipLost> for ControllerError {
    fn from(lost: LeadershipLost) -> Self {
        ControllerError::LeadershipLost { lease: lost.lease }
    }
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    if opts.install_crds {
        install_crds(&client).await?;
    }
    let shutdown: Shutdown = shutdown.boxed().shared();
    let parts = Parts {
        metrics: Arc::new(Metrics::new()),
        readiness: Readiness::default(),
        hooks: HookTarget::default(),
        shutdown: shutdown.clone(),
    };
    // Serves from the start (probes, and webhooks on a standby); stops by itself on shutdown, and
    // is dropped (stopped) on the way out when leadership is lost.
    let _server = match serve.metrics_addr {
        Some(addr) => Some(start_server(addr, &client, &opts, &serve, &parts).await?),
        None => None,
    };
    let controllers = async {
        match serve.leader_election {
            None => run_controllers(client, &opts, parts).await,
            Some(cfg) => {
                info!(lease = %cfg.lease_name, namespace = %cfg.namespace, identity = %cfg.identity, "leader election on");
                let elector = LeaderElector::new(client.clone(), cfg);
                let readiness = parts.readiness.clone();
                run_when_leader(elector, readiness, shutdown.clone(), || {
                    run_controllers(client, &opts, parts)
                })
                .await
            }
        }
    };
    within_shutdown_grace(controllers, shutdown.clone(), SHUTDOWN_GRACE).await
}

/// Waits to become leader on the Lease of `elector`, then runs `controllers` until they end (the
/// Lease is then released), or stops them at once with [`ControllerError::LeadershipLost`].
/// `readiness` turns ready on a standby. Returns `Ok` when `shutdown` resolves before leading.
pub async fn run_when_leader<F, Fut>(
    elector: LeaderElector,
    readiness: Readiness,
    shutdown: Shutdown,
    controllers: F,
) -> Result<(), ControllerError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    when_leader(elector, readiness, shutdown, controllers).await
}

/// What the controllers share with the HTTP server.
struct Parts {
    metrics: Arc<Metrics>,
    readiness: Readiness,
    hooks: HookTarget,
    shutdown: Shutdown,
}

/// Starts the HTTP server: `/metrics`, probes and the webhooks (which, while no controller runs
/// here, request reconciles by annotation).
async fn start_server(
    addr: SocketAddr,
    client: &Client,
    opts: &RunOptions,
    serve: &ServeOptions,
    parts: &Parts,
) -> Result<AbortOnDrop<std::io::Result<()>>, ControllerError> {
    let webhook = WebhookState::new(
        serve.webhook_secrets.clone(),
        parts.hooks.clone(),
        parts.metrics.clone(),
    )
    .with_standby(client.clone(), opts.namespace.clone());
    let router = server::router(
        parts.metrics.clone(),
        parts.readiness.clone(),
        Arc::new(webhook),
    );
    let running = server::start(addr, router, parts.shutdown.clone())
        .await
        .map_err(|source| ControllerError::Listen { addr, source })?;
    info!(%addr, secrets = ?serve.webhook_secrets, "serving /metrics, /healthz, /readyz and /hooks/*");
    Ok(running)
}

/// Runs both controllers until shutdown: builds the three watches, hands the webhooks the
/// AppImport queue, and sets `readiness` once every cache holds a full list.
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
    let namespace = opts.namespace.as_deref();
    let instances = instance_watch(api(&client, namespace), shutdown.clone());
    let export_shutdown = shutdown.clone();
    let (apps, pushes) = app_watch(
        api(&client, namespace),
        api(&client, namespace),
        opts.concurrency,
        shutdown,
    );
    let (secrets, secret_watch) = secret_watch(
        api(&client, namespace),
        SecretUsers {
            instances: instances.cache.store.clone(),
            apps: apps.cache.store.clone(),
            instance_queue: instances.requeue,
            app_queue: apps.requeue,
        },
    );
    let source = SourceCache::new(CacheConfig {
        dir: opts.cache_dir.clone(),
        reuse_ref_checks: REUSE_REF_CHECKS,
        ..CacheConfig::default()
    });
    // Mirrors of repositories no AppImport uses any more are removed after the cache's TTL.
    let mirror_gc = AbortOnDrop(source.spawn_gc(MIRROR_GC_EVERY));
    let app_ctx = app_context(
        &client,
        &source,
        &metrics,
        &instances.cache,
        &secrets,
        &apps.cache,
    );
    let export_ctx = Arc::new(app_export::ExportContext {
        client: client.clone(),
        source: source.clone(),
        instances: instances.cache.clone(),
        apps: apps.cache.clone(),
        secrets: secrets.clone(),
        recorder: app_ctx.recorder.clone(),
        metrics: metrics.clone(),
    });
    let instance_ctx = Arc::new(instance::InstanceContext {
        client: client.clone(),
        secrets: secrets.clone(),
        recorder: app_ctx.recorder.clone(),
    });
    info!(
        namespace = namespace.unwrap_or("<all>"),
        concurrency = opts.concurrency,
        "controllers starting"
    );

    hooks.set(Some(Enqueue {
        apps: apps.cache.store.clone(),
        queue: pushes,
        source,
    }));
    let caches = [&apps.cache.synced, &instances.cache.synced, &secrets.synced];
    let synced = AbortOnDrop(tokio::spawn(ready_when_synced(
        caches.map(CacheSynced::clone),
        readiness,
    )));
    let controllers = futures::future::join3(
        run_app_controller(apps.controller, app_ctx),
        run_instance_controller(instances.controller, instance_ctx, metrics),
        app_export::run(export_ctx, namespace, export_shutdown),
    );
    // The Secret watch never ends by itself: it runs for as long as the controllers do.
    tokio::select! {
        _ = controllers => {}
        () = async { secret_watch.await; futures::future::pending::<()>().await } => {}
    }
    drop((synced, mirror_gc));
    hooks.clear();
    info!("controllers stopped");
    Ok(())
}

/// `K` objects in `namespace`, or in all namespaces.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One kind's watch: the controller it feeds, its cache, and a queue of extra reconcile requests
/// (Secret changes) into that controller. Each reflector store is awaited by its own Controller
/// only; everything else waits on the [`CacheSynced`] flag (see `caches` for why a second
/// `wait_until_ready` would hang).
struct Watched<K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + 'static> {
    controller: Controller<K>,
    cache: Cache<K>,
    requeue: mpsc::Sender<ObjectRef<K>>,
}

/// The watch of `api` into a reflector store, tracked by `synced`. Cached objects keep no
/// managedFields: the operator never reads them, and they are often the largest part of an object.
fn reflected<K>(
    api: Api<K>,
    writer: Writer<K>,
    synced: CacheSynced,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Default + Eq + std::hash::Hash + Send + Sync,
{
    synced.track(
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
            .reflect(writer),
    )
}

/// The ToolJetInstance controller on its own watch (spec and deletion changes).
///
/// Both controllers write their own status; reacting to those writes would loop (status carries
/// lastSyncTime). So only spec (generation), annotations, finalizers and deletion re-enqueue.
fn instance_watch(api: Api<ToolJetInstance>, shutdown: Shutdown) -> Watched<ToolJetInstance> {
    let synced = CacheSynced::default();
    let (store, writer) = reflector::store();
    let changes = reflected(api, writer, synced.clone())
        .applied_objects()
        .predicate_filter(
            predicates::generation::<ToolJetInstance>.combine(being_deleted::<ToolJetInstance>),
            PredicateConfig::default(),
        );
    let (requeue, requests) = mpsc::channel(WEBHOOK_QUEUE);
    let controller = Controller::for_stream(changes, store.clone())
        .reconcile_on(tokio_stream_of(requests))
        .graceful_shutdown_on(shutdown);
    Watched {
        controller,
        cache: Cache { store, synced },
        requeue,
    }
}

/// The AppImport controller on its own watch (spec, annotations, finalizers, deletion), also
/// re-enqueued by instance changes (a second watch), Secret changes, verified webhook pushes
/// (the returned queue), and for promotions by what downstream AppImports read of their upstream
/// (status changes the controller's own trigger filters out, seen by [`watch::DownstreamNotifier`]
/// on the same watch, after the store has them).
fn app_watch(
    apps: Api<AppImport>,
    instances: Api<ToolJetInstance>,
    concurrency: u16,
    shutdown: Shutdown,
) -> (Watched<AppImport>, mpsc::Sender<ObjectRef<AppImport>>) {
    let synced = CacheSynced::default();
    let (store, writer) = reflector::store();
    let (pushes, pushed) = mpsc::channel(WEBHOOK_QUEUE);
    let (requeue, requests) = mpsc::channel(WEBHOOK_QUEUE);
    let (downstream_queue, downstreams) = mpsc::channel(WEBHOOK_QUEUE);
    let mut notifier = watch::DownstreamNotifier::new(store.clone(), downstream_queue);
    let changes = reflected(apps, writer, synced.clone())
        .inspect_ok(move |event| notifier.observe(event))
        .applied_objects()
        .predicate_filter(
            predicates::generation::<AppImport>
                .combine(predicates::annotations::<AppImport>)
                .combine(predicates::finalizers::<AppImport>)
                .combine(being_deleted::<AppImport>),
            PredicateConfig::default(),
        );
    let apps_for_instances = store.clone();
    let controller = Controller::for_stream(changes, store.clone())
        .with_config(ControllerConfig::default().concurrency(concurrency.max(1)))
        .reconcile_on(tokio_stream_of(pushed))
        .reconcile_on(tokio_stream_of(requests))
        .reconcile_on(tokio_stream_of(downstreams))
        .watches(instances, watcher::Config::default(), move |inst| {
            watch::apps_using_instance(&apps_for_instances.state(), &inst)
        })
        .graceful_shutdown_on(shutdown);
    let watched = Watched {
        controller,
        cache: Cache { store, synced },
        requeue,
    };
    (watched, pushes)
}

/// One Secret watch fills the cache that reconciles read Secrets from, and re-enqueues the
/// instances and AppImports that use a changed Secret. The returned future never ends by itself.
fn secret_watch(
    api: Api<Secret>,
    users: SecretUsers,
) -> (Cache<Secret>, impl Future<Output = ()> + Send + 'static) {
    let synced = CacheSynced::default();
    let (store, writer) = reflector::store();
    let watch = reflected(api, writer, synced.clone())
        .touched_objects()
        .for_each(move |secret| users.clone().notify(secret));
    (Cache { store, synced }, watch)
}

/// What an AppImport reconcile works with: the engine over the shared git cache, an Event
/// recorder, the instance and Secret caches, and the metrics.
fn app_context(
    client: &Client,
    source: &SourceCache,
    metrics: &Arc<Metrics>,
    instances: &Cache<ToolJetInstance>,
    secrets: &Cache<Secret>,
    apps: &Cache<AppImport>,
) -> Arc<app_import::Context> {
    let reporter = Reporter {
        controller: "tooljet-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Arc::new(
        app_import::Context::new(
            client.clone(),
            source.clone(),
            Recorder::new(client.clone(), reporter),
            instances.clone(),
            secrets.clone(),
        )
        .with_metrics(metrics.clone())
        .with_apps(apps.clone()),
    )
}

/// Ready once the three caches hold a full list.
async fn ready_when_synced(caches: [CacheSynced; 3], readiness: Readiness) {
    for cache in caches {
        cache.wait().await;
    }
    info!("caches synced: ready");
    readiness.set(true);
}

async fn run_app_controller(controller: Controller<AppImport>, ctx: Arc<app_import::Context>) {
    controller
        .run(app_import::reconcile, app_import::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "AppImport controller");
            }
        })
        .await;
}

/// The ToolJetInstance controller, recording each reconcile's result and duration.
async fn run_instance_controller(
    controller: Controller<ToolJetInstance>,
    ctx: Arc<instance::InstanceContext>,
    metrics: Arc<Metrics>,
) {
    controller
        .run(
            move |obj, ctx| {
                let metrics = metrics.clone();
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
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "ToolJetInstance controller");
            }
        })
        .await;
}

/// A tokio receiver as a `Stream` (tokio-stream's wrapper, without the dependency).
fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Predicate: changes when deletion starts (a deletionTimestamp does not always bump generation).
fn being_deleted<K: Resource>(obj: &K) -> Option<u64> {
    Some(u64::from(obj.meta().deletion_timestamp.is_some()))
}
