//! The controllers' caches (reflector stores of AppImports, ToolJetInstances and Secrets) and when
//! each holds its first full list.
//!
//! Why not `Store::wait_until_ready` everywhere: in kube-runtime 5.0 it awaits a `DelayedInit`,
//! whose oneshot receiver keeps a single waker. A `Controller` built on a store already waits on it
//! (its runner is held until the store is ready). A second task awaiting the same store at the same
//! time (a readiness task, a reconcile) replaces that waker, and the one that registered first is
//! never woken: the controller never starts, or `/readyz` never turns 200, depending on timing.
//! So each store has exactly one waiter, its own `Controller`, and everything else waits on a
//! [`CacheSynced`] flag, set from the watch stream itself when the reflector reports its first full
//! list (`InitDone`, seen after the store applied it) and awaitable by any number of tasks.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::watch;

/// Set once a reflector's store holds its first full list; any number of tasks may wait on it.
#[derive(Clone, Debug)]
pub struct CacheSynced(Arc<watch::Sender<bool>>);

impl Default for CacheSynced {
    fn default() -> Self {
        CacheSynced(Arc::new(watch::channel(false).0))
    }
}

impl CacheSynced {
    /// Passes `events` (a reflected watch stream) through, marking the cache synced when the
    /// reflector reports its first full list.
    pub fn track<K, S>(&self, events: S) -> impl Stream<Item = S::Item> + Send + 'static + use<K, S>
    where
        K: Send + 'static,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let flag = self.0.clone();
        events.inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                flag.send_replace(true);
            }
        })
    }

    pub fn is_synced(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the cache is synced (at once when it already is).
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    fn mark_synced(&self) {
        self.0.send_replace(true);
    }
}

/// A reflector store and its [`CacheSynced`] flag.
#[derive(Clone)]
pub struct Cache<K: kube::Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    pub store: Store<K>,
    pub synced: CacheSynced,
}

impl<K> Cache<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    /// Every object, once the first full list is in (before it, an empty store would say "not
    /// found" for objects that exist); `None` when that takes longer than `limit`.
    pub async fn synced_state(&self, limit: Duration) -> Option<Vec<Arc<K>>> {
        tokio::time::timeout(limit, self.synced.wait()).await.ok()?;
        Some(self.store.state())
    }

    /// The object `namespace/name` (`Some(None)`: there is none), once the first full list is in;
    /// `None` when that takes longer than `limit`.
    pub async fn synced_get(
        &self,
        namespace: &str,
        name: &str,
        limit: Duration,
    ) -> Option<Option<Arc<K>>> {
        tokio::time::timeout(limit, self.synced.wait()).await.ok()?;
        Some(self.store.get(&ObjectRef::new(name).within(namespace)))
    }

    /// A synced cache holding `objects` (tests, and callers without a cluster).
    pub fn from_objects(objects: impl IntoIterator<Item = K>) -> Self {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for obj in objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(obj));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let synced = CacheSynced::default();
        synced.mark_synced();
        Cache { store, synced }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use kube::runtime::WatchStreamExt as _;

    fn secret(name: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("ns".into());
        s
    }

    #[tokio::test]
    async fn many_waiters_are_all_woken_by_the_first_full_list() {
        let (store, writer) = reflector::store::<Secret>();
        let synced = CacheSynced::default();
        let cache = Cache {
            store,
            synced: synced.clone(),
        };
        // Eight tasks wait at once (the kube DelayedInit would wake only one of them).
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .synced_get("ns", "a", Duration::from_secs(30))
                        .await
                        .flatten()
                        .is_some()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!synced.is_synced());
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(secret("a"))),
            Ok(watcher::Event::InitDone),
        ]);
        let seen: Vec<_> = synced.track(events.boxed().reflect(writer)).collect().await;
        assert_eq!(seen.len(), 3);
        for waiter in waiters {
            let found = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("every waiter is woken")
                .expect("waiter task");
            assert!(
                found,
                "the store holds the listed object when the flag is set"
            );
        }
    }

    #[tokio::test]
    async fn an_unsynced_cache_keeps_its_waiters_waiting() {
        let (store, _writer) = reflector::store::<Secret>();
        let cache = Cache {
            store,
            synced: CacheSynced::default(),
        };
        let waited = cache.synced_state(Duration::from_millis(50)).await;
        assert!(waited.is_none(), "must wait for the first full list");
        let ready = Cache::from_objects([secret("b")]);
        let listed = ready.synced_state(Duration::from_secs(5)).await;
        assert_eq!(listed.map(|l| l.len()), Some(1));
    }
}
