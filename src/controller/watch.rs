//! Which objects a change re-enqueues: AppImports that use a ToolJetInstance or a Secret, and
//! ToolJetInstances that use a Secret ([`SecretUsers`]); AppImports of a pushed repository
//! ([`Enqueue`], the webhooks' [`PushTarget`]). Matching is by reference, not by resolution, so a
//! deleted instance still re-enqueues the AppImports that pointed at it (they then report
//! InstanceNotFound).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tracing::warn;

use super::resolve::instance_secret_names;
use crate::api::{AppImport, ToolJetInstance};
use crate::process::webhook::{PushTarget, matching_apps};
use crate::source::SourceCache;
use crate::sync::promotion::{AppImportKey, UpstreamState, grant_of, upstream_key};

/// True when `app` targets `instance`: through `instanceRef`, or by environment in its namespace.
pub fn app_uses_instance(app: &AppImport, instance: &ToolJetInstance) -> bool {
    let app_ns = app.namespace().unwrap_or_default();
    let inst_ns = instance.namespace().unwrap_or_default();
    match &app.spec.instance_ref {
        Some(r) => {
            r.name == instance.name_any() && r.namespace.as_deref().unwrap_or(&app_ns) == inst_ns
        }
        None => app_ns == inst_ns && app.spec.environment == instance.spec.environment,
    }
}

/// AppImports to re-enqueue when `instance` changes.
pub fn apps_using_instance(
    apps: &[Arc<AppImport>],
    instance: &ToolJetInstance,
) -> Vec<ObjectRef<AppImport>> {
    apps.iter()
        .filter(|a| app_uses_instance(a, instance))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

fn instance_uses_secret(instance: &ToolJetInstance, secret: &Secret) -> bool {
    instance.namespace() == secret.namespace()
        && instance_secret_names(&instance.spec).contains(&secret.name_any())
}

/// ToolJetInstances to re-check when `secret` changes.
pub fn instances_using_secret(
    instances: &[Arc<ToolJetInstance>],
    secret: &Secret,
) -> Vec<ObjectRef<ToolJetInstance>> {
    instances
        .iter()
        .filter(|i| instance_uses_secret(i, secret))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// AppImports to re-enqueue when `secret` changes: those whose git secretRef names it, and those
/// whose instance reads it.
pub fn apps_using_secret(
    apps: &[Arc<AppImport>],
    instances: &[Arc<ToolJetInstance>],
    secret: &Secret,
) -> Vec<ObjectRef<AppImport>> {
    let users: Vec<&Arc<ToolJetInstance>> = instances
        .iter()
        .filter(|i| instance_uses_secret(i, secret))
        .collect();
    apps.iter()
        .filter(|a| {
            let git = a.namespace() == secret.namespace()
                && a.spec.source.secret_ref.as_ref().map(|r| r.name.as_str())
                    == Some(secret.name_any().as_str());
            git || users.iter().any(|i| app_uses_instance(a, i))
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// What a downstream's promotion decision reads of `upstream` (applied commit, Ready and its
/// transition, generations, history, the grant annotation), as a hash for `predicate_filter`:
/// a status write that changes none of it re-enqueues nothing.
pub fn promotion_facts(upstream: &AppImport) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let state = UpstreamState::from_app_import(upstream);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    state.applied_commit.hash(&mut h);
    state.ready.hash(&mut h);
    state.ready_since.map(|t| t.as_nanosecond()).hash(&mut h);
    state.generation.hash(&mut h);
    state.ready_observed_generation.hash(&mut h);
    for c in &state.history {
        (c.sha.as_str(), c.applied_at.as_nanosecond()).hash(&mut h);
    }
    grant_of(upstream).hash(&mut h);
    upstream.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// AppImports to re-enqueue when `upstream` changes: those whose `fromAppImport` names it.
pub fn downstreams_of(apps: &[Arc<AppImport>], upstream: &AppImport) -> Vec<ObjectRef<AppImport>> {
    let key = AppImportKey::new(
        upstream.namespace().unwrap_or_default(),
        upstream.name_any(),
    );
    apps.iter()
        .filter(|a| upstream_key(a, &a.namespace().unwrap_or_default()).as_ref() == Some(&key))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// Re-enqueues the downstreams of an AppImport whose promotion facts changed, from the
/// AppImport controller's own watch, after its reflector wrote the event to the store: the
/// downstream's reconcile, reading its upstream from that store, sees at least the change that
/// woke it. (A second watch raced the store: the downstream could read the upstream's old status
/// and wait out its requeue interval.)
pub struct DownstreamNotifier {
    store: Store<AppImport>,
    queue: mpsc::Sender<ObjectRef<AppImport>>,
    /// The last [`promotion_facts`] seen of each AppImport.
    facts: HashMap<ObjectRef<AppImport>, u64>,
}

impl DownstreamNotifier {
    pub fn new(store: Store<AppImport>, queue: mpsc::Sender<ObjectRef<AppImport>>) -> Self {
        DownstreamNotifier {
            store,
            queue,
            facts: HashMap::new(),
        }
    }

    /// Called with every event of the watch, after the reflector applied it.
    pub fn observe(&mut self, event: &watcher::Event<AppImport>) {
        match event {
            watcher::Event::Apply(app) => {
                let facts = promotion_facts(app).unwrap_or_default();
                if self.facts.insert(ObjectRef::from_obj(app), facts) != Some(facts) {
                    self.notify(app);
                }
            }
            watcher::Event::Delete(app) => {
                self.facts.remove(&ObjectRef::from_obj(app));
                self.notify(app);
            }
            // A (re)list: the store is swapped in at InitDone, and every AppImport is reconciled
            // then anyway; only remember what the downstreams saw.
            watcher::Event::InitApply(app) => {
                let facts = promotion_facts(app).unwrap_or_default();
                self.facts.insert(ObjectRef::from_obj(app), facts);
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    fn notify(&self, upstream: &AppImport) {
        for downstream in downstreams_of(&self.store.state(), upstream) {
            // Full: the controller is far behind; the downstream's interval still covers it.
            if let Err(error) = self.queue.try_send(downstream) {
                warn!(%error, "could not re-enqueue a promotion downstream");
            }
        }
    }
}

/// The running AppImport controller's queue and store: where verified webhook pushes go.
#[derive(Clone)]
pub struct Enqueue {
    pub apps: Store<AppImport>,
    pub queue: mpsc::Sender<ObjectRef<AppImport>>,
    /// The controller's git cache: a verified push makes its cached ref listings of the
    /// repository unusable, so the reconcile sees the new commit.
    pub source: SourceCache,
}

impl PushTarget for Enqueue {
    /// Puts the matching AppImports in the controller's queue without waiting.
    fn pushed(&self, repos: &HashSet<String>) -> usize {
        let apps = self.apps.state();
        let mut count = 0;
        for app in matching_apps(apps.iter().map(|a| a.as_ref()), repos) {
            self.source.forget_ref_checks(&app.spec.source.url);
            match self.queue.try_send(ObjectRef::from_obj(app)) {
                Ok(()) => count += 1,
                // Full: the controller is far behind; the object's interval still covers it.
                Err(error) => {
                    warn!(appimport = %app.name_any(), %error, "webhook could not enqueue a reconcile")
                }
            }
        }
        count
    }
}

/// The objects that read a changed Secret, and the queues that re-enqueue them.
#[derive(Clone)]
pub struct SecretUsers {
    pub instances: Store<ToolJetInstance>,
    pub apps: Store<AppImport>,
    pub instance_queue: mpsc::Sender<ObjectRef<ToolJetInstance>>,
    pub app_queue: mpsc::Sender<ObjectRef<AppImport>>,
}

impl SecretUsers {
    pub async fn notify(self, secret: Result<Secret, watcher::Error>) {
        let secret = match secret {
            Ok(secret) => secret,
            Err(error) => {
                warn!(%error, "Secret watch");
                return;
            }
        };
        let instances = self.instances.state();
        for instance in instances_using_secret(&instances, &secret) {
            // Closed only when the controller stopped.
            let _ = self.instance_queue.send(instance).await;
        }
        for app in apps_using_secret(&self.apps.state(), &instances, &secret) {
            let _ = self.app_queue.send(app).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(ns: &str, name: &str, extra: serde_json::Value) -> Arc<AppImport> {
        let mut spec = json!({"environment": "staging",
            "source": {"url": "file:///r", "ref": {"branch": "main"}, "app": "x"}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        Arc::new(
            serde_json::from_value(
                json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}),
            )
            .expect("app"),
        )
    }

    fn inst(ns: &str, name: &str, env: &str) -> Arc<ToolJetInstance> {
        Arc::new(
            serde_json::from_value(
                json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"url": "http://tj", "environment": env, "workspaceId": "w",
                         "auth": {"adminApiKey": {"secretRef": {"name": "tj-key", "key": "k"}}}}}),
            )
            .expect("instance"),
        )
    }

    fn secret(ns: &str, name: &str) -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}}))
            .expect("secret")
    }

    fn names(refs: Vec<ObjectRef<AppImport>>) -> Vec<String> {
        let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    }

    #[test]
    fn instance_change_enqueues_matching_and_referring_apps_only() {
        let apps = vec![
            app("team", "by-env", json!({})),
            app("team", "prod", json!({"environment": "production"})),
            app(
                "other",
                "by-ref",
                json!({"instanceRef": {"name": "tj", "namespace": "team"}}),
            ),
            app("other", "by-env-elsewhere", json!({})),
        ];
        let got = names(apps_using_instance(&apps, &inst("team", "tj", "staging")));
        assert_eq!(got, vec!["by-env", "by-ref"]);
    }

    #[test]
    fn an_upstream_change_enqueues_its_downstreams_only() {
        let from = |name: &str, ns: Option<&str>| {
            json!({"environment": "production", "source": {"url": "file:///r",
                "ref": {"fromAppImport": {"name": name, "namespace": ns}}, "app": "x"}})
        };
        let apps = vec![
            app("team", "dev", json!({})),
            app("team", "staging", from("dev", None)),
            app("team", "prod", from("staging", None)),
            app("other", "elsewhere", from("dev", Some("team"))),
            app("other", "same-name-own-ns", from("dev", None)),
        ];
        assert_eq!(
            names(downstreams_of(&apps, &apps[0])),
            vec!["elsewhere", "staging"]
        );
        assert_eq!(names(downstreams_of(&apps, &apps[1])), vec!["prod"]);
        assert!(downstreams_of(&apps, &apps[2]).is_empty());
    }

    #[test]
    fn promotion_facts_ignore_status_writes_a_decision_does_not_read() {
        let mut up: AppImport = (*app("team", "dev", json!({}))).clone();
        up.status = Some(
            serde_json::from_value(json!({
            "lastAppliedCommit": {"sha": "a", "shortSha": "a", "message": "", "author": ""},
            "lastSyncTime": "2025-01-01T10:00:00Z"}))
            .expect("status"),
        );
        let before = promotion_facts(&up);
        if let Some(s) = up.status.as_mut() {
            s.last_sync_time = None;
        }
        assert_eq!(promotion_facts(&up), before, "lastSyncTime is not read");
        if let Some(s) = up.status.as_mut() {
            s.last_applied_commit = None;
        }
        assert_ne!(promotion_facts(&up), before, "the applied commit is");
    }

    #[test]
    fn secret_change_enqueues_git_and_instance_users() {
        let apps = vec![
            app(
                "team",
                "git-user",
                json!({"environment": "production",
                "source": {"url": "file:///r", "ref": {"branch": "main"}, "app": "x", "secretRef": {"name": "git"}}}),
            ),
            app("team", "inst-user", json!({})),
            app("other", "unrelated", json!({})),
        ];
        let instances = vec![inst("team", "tj", "staging")];
        assert_eq!(
            names(apps_using_secret(&apps, &instances, &secret("team", "git"))),
            vec!["git-user"]
        );
        assert_eq!(
            names(apps_using_secret(
                &apps,
                &instances,
                &secret("team", "tj-key")
            )),
            vec!["inst-user"]
        );
        assert!(apps_using_secret(&apps, &instances, &secret("other", "tj-key")).is_empty());
        assert_eq!(
            instances_using_secret(&instances, &secret("team", "tj-key")).len(),
            1
        );
    }

    #[test]
    fn the_notifier_enqueues_downstreams_once_the_store_has_the_change() {
        use kube::runtime::reflector;
        let from_dev = json!({"source": {"url": "file:///r",
            "ref": {"fromAppImport": {"name": "dev"}}, "app": "x"}});
        let dev = (*app("team", "dev", json!({}))).clone();
        let staging = (*app("team", "staging", from_dev)).clone();
        let (store, mut writer) = reflector::store();
        let (queue, mut queued) = mpsc::channel(8);
        let mut notifier = DownstreamNotifier::new(store.clone(), queue);
        let mut deliver = |event: watcher::Event<AppImport>| {
            writer.apply_watcher_event(&event);
            notifier.observe(&event);
        };
        deliver(watcher::Event::Init);
        deliver(watcher::Event::InitApply(dev.clone()));
        deliver(watcher::Event::InitApply(staging.clone()));
        deliver(watcher::Event::InitDone);
        assert!(queued.try_recv().is_err(), "a list re-enqueues nothing");

        // dev applies a commit: staging is re-enqueued, and the store already has it.
        let mut applied = dev.clone();
        applied.status = Some(
            serde_json::from_value(json!({
                "lastAppliedCommit": {"sha": "a", "shortSha": "a", "message": "", "author": ""}}))
            .expect("status"),
        );
        deliver(watcher::Event::Apply(applied.clone()));
        let woken = queued.try_recv().expect("staging re-enqueued");
        assert_eq!(woken.name, "staging");
        let seen = store
            .get(&ObjectRef::from_obj(&applied))
            .and_then(|a| a.status.clone())
            .and_then(|s| s.last_applied_commit);
        assert_eq!(seen.map(|c| c.sha), Some("a".to_owned()));

        // The same facts again (a status write that moves nothing of them): nothing.
        deliver(watcher::Event::Apply(applied.clone()));
        assert!(queued.try_recv().is_err());

        // dev deleted: staging re-enqueued (it will say UpstreamNotFound).
        deliver(watcher::Event::Delete(applied));
        assert_eq!(queued.try_recv().expect("re-enqueued").name, "staging");
    }
}
