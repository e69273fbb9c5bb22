//! The operator's one HTTP server (`--metrics-addr`, default `0.0.0.0:8080`): `GET /metrics`,
//! `GET /healthz` (the process answers), `GET /readyz` (caches synced on the replica running the
//! controllers, leader known on a standby) and the webhook routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::leader::Leadership;
use super::metrics::{CONTENT_TYPE, Metrics};
use super::shutdown::{AbortOnDrop, Shutdown};
use super::webhook::{self, WebhookState};

/// Set once this replica can do its job: controllers' caches synced, or (standby) the leader known.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Follows the Lease task: a standby (another replica leads) is ready, to serve metrics and
    /// webhooks; it stays ready when it takes over. Ends when the Lease task does.
    pub async fn follow(self, mut leadership: watch::Receiver<Leadership>) {
        loop {
            if matches!(*leadership.borrow_and_update(), Leadership::Standby { .. }) {
                self.set(true);
            }
            if leadership.changed().await.is_err() {
                return;
            }
        }
    }
}

/// All routes of the server.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness, hooks: Arc<WebhookState>) -> Router {
    let probes = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: caches not synced or leader unknown\n",
                        )
                    }
                }
            }),
        );
    probes.merge(webhook::router(hooks))
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Listens on `addr` and serves `router` in its own task until `shutdown` resolves, or until the
/// returned handle is dropped.
pub async fn start(
    addr: std::net::SocketAddr,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<AbortOnDrop<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(AbortOnDrop(tokio::spawn(serve(listener, router, shutdown))))
}
