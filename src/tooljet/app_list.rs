//! App listings shared by the callers of one client (one ToolJet workspace), so that the many
//! AppImports of one instance look for their leftovers in one listing per window instead of one
//! listing each.
//!
//! A listing is reused only while it is younger than the reuse window **and** it started after
//! the last app write of this client ended (import, rename, release, delete): a caller never
//! misses an app that a write of this client named, renamed or removed, in particular a
//! temporary app that its own previous run imported. Callers that ask while a listing is under
//! way wait for it (one request for all of them) and take it when it started after they asked.
//! Apps written by others (people, another process) are seen within the window.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::ToolJetError;
use super::model::AppSummary;

/// How long the controller and the command line reuse a listing of apps by name (the same window
/// as their git ref listings).
pub const REUSE_APP_LISTS: Duration = Duration::from_secs(5);

/// The shared listings of one client and the clock of its app writes.
pub(super) struct AppLists {
    reuse: Duration,
    /// When the last app write through this client ended (answered, failed or abandoned).
    last_write_done: Mutex<Option<Instant>>,
    /// The latest listing per search text, with the instant it started. The async lock is held
    /// while listing, so concurrent callers wait for one listing instead of making their own.
    lists: tokio::sync::Mutex<HashMap<String, Listing>>,
}

/// A listing and the instant it started; `None` when the matches did not fit in one answer.
type Listing = (Instant, Option<Arc<Vec<AppSummary>>>);

impl AppLists {
    pub(super) fn new(reuse: Duration) -> Self {
        AppLists {
            reuse,
            last_write_done: Mutex::new(None),
            lists: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The listing for `text`: one that started after `oldest_usable`, or a new one from `list`.
    pub(super) async fn get_or_list<F, Fut>(
        &self,
        text: &str,
        list: F,
    ) -> Result<Option<Arc<Vec<AppSummary>>>, ToolJetError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Vec<AppSummary>>, ToolJetError>>,
    {
        let asked = Instant::now();
        let mut lists = self.lists.lock().await;
        // Read after the wait: a write that ended meanwhile makes older listings stale.
        let oldest_usable = self.oldest_usable(asked);
        if let Some((started, apps)) = lists.get(text)
            && *started >= oldest_usable
        {
            return Ok(apps.clone());
        }
        let started = Instant::now();
        let apps = list().await?.map(Arc::new);
        lists.insert(text.to_owned(), (started, apps.clone()));
        Ok(apps)
    }

    /// The earliest start a listing may have to serve a caller that asked at `asked`.
    fn oldest_usable(&self, asked: Instant) -> Instant {
        let window_start = asked.checked_sub(self.reuse).unwrap_or(asked);
        let last_write = *self
            .last_write_done
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        last_write.map_or(window_start, |w| w.max(window_start))
    }

    /// Drops every listing: the next caller lists again (a pass that wants ToolJet as it is now).
    pub(super) fn forget(&self) {
        // Listings that started before now are older than any write that ends from now on, so
        // recording "a write ended now" retires them all, even one under way.
        self.write_ended();
    }

    /// Marks the start of an app write; the returned guard records its end when dropped, so an
    /// abandoned request (a cancelled run) counts as a write too.
    pub(super) fn write_guard(&self) -> WriteGuard<'_> {
        WriteGuard(self)
    }

    fn write_ended(&self) {
        *self
            .last_write_done
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
}

/// Held while an app write is under way; see [`AppLists::write_guard`].
pub(super) struct WriteGuard<'a>(&'a AppLists);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.write_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn app(id: &str) -> AppSummary {
        AppSummary {
            id: id.into(),
            name: format!("tjop-{id}"),
            slug: id.into(),
            current_version_id: None,
            updated_at: None,
        }
    }

    async fn listed(lists: &AppLists, calls: &AtomicUsize, id: &str) -> Vec<String> {
        lists
            .get_or_list("tjop-", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Some(vec![app(id)]))
            })
            .await
            .expect("listing")
            .expect("in one answer")
            .iter()
            .map(|a| a.id.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_listing_is_reused_within_the_window_until_a_write_ends() {
        let lists = AppLists::new(Duration::from_secs(3600));
        let calls = AtomicUsize::new(0);
        assert_eq!(listed(&lists, &calls, "a").await, ["a"]);
        assert_eq!(listed(&lists, &calls, "b").await, ["a"], "reused");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(lists.write_guard());
        assert_eq!(listed(&lists, &calls, "c").await, ["c"], "listed again");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        lists.forget();
        assert_eq!(listed(&lists, &calls, "d").await, ["d"], "forgotten");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_write_in_progress_makes_the_listing_made_meanwhile_stale_once_it_ends() {
        let lists = AppLists::new(Duration::from_secs(3600));
        let calls = AtomicUsize::new(0);
        let write = lists.write_guard();
        assert_eq!(listed(&lists, &calls, "a").await, ["a"]);
        drop(write);
        assert_eq!(listed(&lists, &calls, "b").await, ["b"]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn without_a_window_each_caller_lists_again() {
        let lists = AppLists::new(Duration::ZERO);
        let calls = AtomicUsize::new(0);
        assert_eq!(listed(&lists, &calls, "a").await, ["a"]);
        assert_eq!(listed(&lists, &calls, "b").await, ["b"]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callers_that_ask_during_a_listing_wait_for_it_and_share_it() {
        let lists = AppLists::new(Duration::from_secs(3600));
        let calls = AtomicUsize::new(0);
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let first = lists.get_or_list("tjop-", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = gate_rx.await;
            Ok(Some(vec![app("a")]))
        });
        let others = futures::future::join_all((0..8).map(|i| {
            let (lists, calls) = (&lists, &calls);
            async move { listed(lists, calls, &format!("other-{i}")).await }
        }));
        let release = async {
            // Every caller is waiting on the listing by now: it is the only runnable future.
            tokio::task::yield_now().await;
            let _ = gate_tx.send(());
        };
        let (first, others, ()) = tokio::join!(first, others, release);
        assert_eq!(first.expect("first").expect("in one answer")[0].id, "a");
        assert!(others.iter().all(|ids| ids == &["a"]), "{others:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one listing for nine callers"
        );
    }

    #[tokio::test]
    async fn an_answer_too_long_for_one_page_is_shared_as_such() {
        let lists = AppLists::new(Duration::from_secs(3600));
        for _ in 0..2 {
            let got = lists
                .get_or_list("tjop-", || async { Ok(None) })
                .await
                .expect("listing");
            assert!(got.is_none());
        }
        let calls = AtomicUsize::new(0);
        let again = lists
            .get_or_list("tjop-", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(None)
            })
            .await
            .expect("listing");
        assert!(again.is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 0, "reused within the window");
    }

    #[tokio::test]
    async fn a_failed_listing_is_not_kept() {
        let lists = AppLists::new(Duration::from_secs(3600));
        let calls = AtomicUsize::new(0);
        let failed = lists
            .get_or_list("tjop-", || async {
                Err(ToolJetError::Config("down".into()))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(listed(&lists, &calls, "a").await, ["a"]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
