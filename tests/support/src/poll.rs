//! Waiting on a condition with a deadline: the one poll loop of the tests (no sleep is ever the
//! synchronisation; the pause only spaces the checks).

use std::future::Future;
use std::time::Duration;

/// Calls `check` every `every` until it returns `Some`, or returns `None` once `limit` passed.
pub async fn until_some<T, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
