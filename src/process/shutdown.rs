//! Stopping the process: the first SIGTERM or Ctrl-C, shared by everything that stops on it, and
//! the grace period running reconciles get after it.

use std::future::Future;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tracing::{error, info, warn};

/// Resolves once shutdown was requested; cloned into every part that stops on it.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// How long running reconciles may take after SIGTERM; under Kubernetes' default 30 s grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Resolves on the first SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> Shutdown {
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

/// Runs `work` to its end, but once `shutdown` has fired waits at most `grace` for it: a
/// controller still waiting for its first list (API server unreachable) never sees the shutdown.
pub async fn within_shutdown_grace<F, E>(
    work: F,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::select! {
        result = work => result,
        () = async { shutdown.await; tokio::time::sleep(grace).await } => {
            warn!(?grace, "reconciles did not stop within the grace period after shutdown was requested; exiting");
            Ok(())
        }
    }
}

/// Aborts a background task when dropped (on every way out of what spawned it).
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stuck_work_is_abandoned_after_the_grace_period_once_shutdown_fired() {
        let stuck = futures::future::pending::<Result<(), String>>();
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
            Err("boom".to_owned())
        };
        let result = within_shutdown_grace(failing, async {}, Duration::from_secs(25)).await;
        assert!(matches!(result, Err(ref e) if e == "boom"), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_shutdown_stuck_work_keeps_running() {
        let stuck = futures::future::pending::<Result<(), String>>();
        let never = futures::future::pending::<()>();
        let outcome = tokio::time::timeout(
            Duration::from_secs(3600),
            within_shutdown_grace(stuck, never, Duration::from_secs(25)),
        )
        .await;
        assert!(outcome.is_err(), "must still be running");
    }
}
