//! Promotion (`source.ref.fromAppImport` + `readyFor`) through the AppImport controller's
//! reconcile: a real git repository, the ToolJet stand-in, and kube's tower-test mock API server
//! that keeps the status each AppImport last wrote (fed back to the next reconcile and to the
//! AppImport cache its downstreams read, as the watches would deliver them). Time passing upstream
//! is shown by moving the upstream's recorded times back (its Ready condition's
//! lastTransitionTime and its history), which is exactly what the decision reads.

use kube_mock::{Seen, base64_of, mock_api, secret_cache};
use test_support::kube_mock;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use http::StatusCode;
use jiff::Timestamp;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tooljet_operator::api::{AppImport, ToolJetInstance};
use tooljet_operator::controller::app_import::{Context, reconcile};
use tooljet_operator::controller::caches::Cache;
use tooljet_operator::source::{CacheConfig, SourceCache};
use tooljet_standin::StandIn;

const NS: &str = "team";
const API_KEY: &str = "promotion-test-key";

type Objects = Arc<Mutex<BTreeMap<(String, String), Value>>>;

/// One repository, one ToolJet, instances for three environments in two namespaces, and the
/// AppImports as the API server holds them.
struct World {
    repo: TestRepo,
    standin: StandIn,
    source: SourceCache,
    client: Client,
    objects: Objects,
    events: Arc<Mutex<Vec<Value>>>,
    instances: Vec<ToolJetInstance>,
    _server: tokio::task::JoinHandle<Vec<Seen>>,
    _cache: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
        repo.commit("one app");
        repo.publish();
        let standin = StandIn::builder()
            .admin_api_key(API_KEY)
            .start()
            .await
            .expect("stand-in starts");
        let mut instances = Vec::new();
        for ns in [NS, "other"] {
            for env in ["development", "staging", "production"] {
                instances.push(
                    serde_json::from_value(json!({
                        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
                        "metadata": {"name": format!("tj-{env}"), "namespace": ns,
                                     "uid": format!("i-{ns}-{env}"), "resourceVersion": "3"},
                        "spec": {"url": standin.base_url(), "environment": env,
                                 "workspaceId": standin.workspace_id(),
                                 "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}}}
                    }))
                    .expect("instance"),
                );
            }
        }
        let objects: Objects = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (by_mock, events_by_mock) = (objects.clone(), events.clone());
        let (client, server) = mock_api(move |s| answer(&by_mock, &events_by_mock, s));
        let cache = tempfile::tempdir().expect("tempdir");
        let source = SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            ..CacheConfig::default()
        });
        World {
            repo,
            standin,
            source,
            client,
            objects,
            events,
            instances,
            _server: server,
            _cache: cache,
        }
    }

    /// Adds an AppImport `ns/name` of `env` with source ref `git_ref`; `extra` merges into spec.
    fn add(&self, ns: &str, name: &str, env: &str, git_ref: Value, extra: Value) {
        let mut spec = json!({"environment": env, "appName": format!("Cards {ns} {name}"),
            "source": {"url": self.repo.file_url(), "ref": git_ref, "app": CREDIT_CARD.0}});
        if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
            s.extend(e);
        }
        let obj = json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": name, "namespace": ns, "uid": format!("u-{ns}-{name}"),
                         "generation": 1, "resourceVersion": "7",
                         "finalizers": ["gitops.tooljet.dev/finalizer"]},
            "spec": spec,
        });
        self.objects
            .lock()
            .expect("lock")
            .insert((ns.into(), name.into()), obj);
    }

    fn edit(&self, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut objects = self.objects.lock().expect("lock");
        f(objects
            .get_mut(&(ns.to_owned(), name.to_owned()))
            .expect("object"));
    }

    fn get(&self, ns: &str, name: &str) -> Value {
        self.objects.lock().expect("lock")[&(ns.to_owned(), name.to_owned())].clone()
    }

    /// Reconciles `ns/name` once, as the controller would with its caches as they are now.
    async fn reconcile(&self, ns: &str, name: &str) -> Action {
        let all: Vec<AppImport> = self
            .objects
            .lock()
            .expect("lock")
            .values()
            .map(|v| serde_json::from_value(v.clone()).expect("app"))
            .collect();
        let obj = all
            .iter()
            .find(|a| {
                a.metadata.namespace.as_deref() == Some(ns)
                    && a.metadata.name.as_deref() == Some(name)
            })
            .expect("object")
            .clone();
        let reporter = Reporter {
            controller: "tooljet-operator".into(),
            instance: None,
        };
        let ctx = Arc::new(
            Context::new(
                self.client.clone(),
                self.source.clone(),
                Recorder::new(self.client.clone(), reporter),
                Cache::from_objects(self.instances.clone()),
                secret_cache(vec![admin_secret(NS), admin_secret("other")]),
            )
            .with_apps(Cache::from_objects(all)),
        );
        reconcile(Arc::new(obj), ctx).await.expect("reconcile")
    }

    /// The condition `type_` of `ns/name`: (status, reason, message).
    fn condition(&self, ns: &str, name: &str, type_: &str) -> Option<(String, String, String)> {
        let obj = self.get(ns, name);
        let c = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)?
            .clone();
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
        Some((s("status"), s("reason"), s("message")))
    }

    fn ready(&self, ns: &str, name: &str) -> (String, String, String) {
        self.condition(ns, name, "Ready").expect("Ready condition")
    }

    fn applied(&self, ns: &str, name: &str) -> Option<String> {
        self.get(ns, name)["status"]["lastAppliedCommit"]["sha"]
            .as_str()
            .map(str::to_owned)
    }

    /// Moves what `ns/name` recorded (Ready's lastTransitionTime, its history) back by `by`: as if
    /// it had been Ready on its applied commit for that much longer.
    fn age(&self, ns: &str, name: &str, by: Duration) {
        let back = |v: &mut Value| {
            let t: Timestamp = v.as_str().expect("time").parse().expect("timestamp");
            let moved = t - jiff::SignedDuration::try_from(by).expect("duration");
            *v = json!(moved.to_string());
        };
        self.edit(ns, name, |obj| {
            if let Some(cs) = obj["status"]["conditions"].as_array_mut() {
                for c in cs {
                    back(&mut c["lastTransitionTime"]);
                }
            }
            if let Some(h) = obj["status"]["history"].as_array_mut() {
                for e in h {
                    back(&mut e["appliedAt"]);
                }
            }
        });
    }

    /// Events published about `name`, as (reason, note).
    fn events_of(&self, name: &str) -> Vec<(String, String)> {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                    e["note"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn clear_events(&self) {
        self.events.lock().expect("lock").clear();
    }

    /// A second commit that changes the app (a new version of its definition).
    fn new_commit(&self) -> String {
        self.repo.git_sync_write(
            "app-1",
            CREDIT_CARD.0,
            "v2",
            &git_fixtures::tooljet::rekeyed(CREDIT_CARD.1, 7),
        );
        let sha = self.repo.commit("second version");
        self.repo.publish();
        sha
    }
}

fn admin_secret(ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tj-admin", "namespace": ns, "resourceVersion": "9"},
        "data": {"api-key": base64_of(API_KEY)}})
}

/// The mock API server: status patches replace the object's status; Events are recorded.
fn answer(objects: &Objects, events: &Mutex<Vec<Value>>, s: &Seen) -> (StatusCode, Value) {
    let path = s.uri.split('?').next().unwrap_or_default();
    if path.contains("/events") {
        events.lock().expect("lock").push(s.json());
        return (StatusCode::OK, s.json());
    }
    let parts: Vec<&str> = path.split('/').collect();
    // /apis/gitops.tooljet.dev/v1alpha1/namespaces/{ns}/appimports/{name}[/status]
    let (Some(ns), Some(name)) = (parts.get(5), parts.get(7)) else {
        return (StatusCode::NOT_FOUND, json!({}));
    };
    let mut objects = objects.lock().expect("lock");
    let Some(obj) = objects.get_mut(&((*ns).to_owned(), (*name).to_owned())) else {
        return (StatusCode::NOT_FOUND, json!({}));
    };
    if s.method == "PATCH" && parts.get(8) == Some(&"status") {
        obj["status"] = s.json()["status"].clone();
    }
    (StatusCode::OK, obj.clone())
}

fn from(name: &str, ready_for: &str) -> Value {
    json!({"fromAppImport": {"name": name}, "readyFor": ready_for})
}

/// The delay of a requeue (kube's `Action` keeps it private; its Debug shows it).
fn requeue_of(action: &Action) -> Duration {
    let shown = format!("{action:?}");
    let secs = shown
        .split("Some(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("a requeue");
    let secs = secs.trim_end_matches('s');
    let value: f64 = if let Some(ms) = secs.strip_suffix("m") {
        ms.parse::<f64>().expect("ms") / 1000.0
    } else {
        secs.parse().expect("seconds")
    };
    Duration::from_secs_f64(value)
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

#[tokio::test]
async fn a_commit_is_promoted_through_dev_staging_prod_after_its_soak_time() {
    let w = World::start().await;
    let c1 = w.repo.head();
    w.add(
        NS,
        "dev",
        "development",
        json!({"branch": "master"}),
        json!({}),
    );
    w.add(NS, "staging", "staging", from("dev", "2m"), json!({}));
    w.add(NS, "prod", "production", from("staging", "2m"), json!({}));

    w.reconcile(NS, "dev").await;
    assert_eq!(w.ready(NS, "dev").0, "True");
    assert_eq!(w.applied(NS, "dev").as_deref(), Some(c1.as_str()));

    // Staging: dev is Ready on c1, but not for 2m yet.
    let before = Timestamp::now();
    let action = w.reconcile(NS, "staging").await;
    let (status, reason, message) = w.ready(NS, "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PromotionPending")
    );
    assert!(
        message.contains(short(&c1)) && message.contains("team/dev"),
        "{message}"
    );
    let reconciling = w
        .condition(NS, "staging", "Reconciling")
        .expect("Reconciling");
    assert_eq!(reconciling.1, "PromotionPending");
    assert!(w.condition(NS, "staging", "Stalled").is_none());
    let promotion = w.get(NS, "staging")["status"]["promotion"].clone();
    assert_eq!(promotion["from"], "team/dev");
    assert_eq!(promotion["sha"], c1.as_str());
    let ready_since: Timestamp = promotion["readySince"]
        .as_str()
        .expect("readySince")
        .parse()
        .expect("t");
    let eligible_at: Timestamp = promotion["eligibleAt"]
        .as_str()
        .expect("eligibleAt")
        .parse()
        .expect("t");
    assert_eq!(eligible_at.duration_since(ready_since).as_secs(), 120);
    assert!(message.contains(&eligible_at.to_string()), "{message}");
    // Requeued at eligibleAt (not at the 5m interval, not with backoff).
    let due = requeue_of(&action);
    let expected = eligible_at.duration_since(before).as_secs_f64();
    assert!(
        due.as_secs_f64() <= expected + 0.01 && due.as_secs_f64() > expected - 30.0,
        "requeue {due:?}, eligible in {expected}s"
    );
    assert_eq!(
        w.applied(NS, "staging"),
        None,
        "nothing imported while pending"
    );
    assert!(w.standin.apps().iter().all(|a| !a.name.contains("staging")));

    // Ten minutes later (upstream-wise): staging follows c1, with a Promoted Event.
    w.age(NS, "dev", Duration::from_secs(600));
    w.reconcile(NS, "staging").await;
    assert_eq!(
        w.ready(NS, "staging").0,
        "True",
        "{:?}",
        w.ready(NS, "staging")
    );
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c1.as_str()));
    let promoted: Vec<_> = w
        .events_of("staging")
        .into_iter()
        .filter(|(r, _)| r == "Promoted")
        .collect();
    assert_eq!(promoted.len(), 1, "{:?}", w.events_of("staging"));
    assert!(
        promoted[0].1.contains(short(&c1))
            && promoted[0].1.contains("team/dev")
            && promoted[0].1.contains("10m"),
        "{}",
        promoted[0].1
    );
    assert!(
        w.standin
            .apps()
            .iter()
            .any(|a| a.name == "Cards team staging")
    );

    // Prod waits for staging's own soak, then follows.
    w.reconcile(NS, "prod").await;
    assert_eq!(w.ready(NS, "prod").1, "PromotionPending");
    w.age(NS, "staging", Duration::from_secs(600));
    w.reconcile(NS, "prod").await;
    assert_eq!(w.ready(NS, "prod").0, "True");
    assert_eq!(w.applied(NS, "prod").as_deref(), Some(c1.as_str()));

    // A new commit reaches dev: staging keeps c1 (and stays Ready) while c2 soaks; prod, which
    // reads staging's applied commit, is not disturbed and promotes nothing again.
    w.clear_events();
    let c2 = w.new_commit();
    w.reconcile(NS, "dev").await;
    assert_eq!(w.applied(NS, "dev").as_deref(), Some(c2.as_str()));
    w.reconcile(NS, "staging").await;
    let (status, reason, _) = w.ready(NS, "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "PromotionPending")
    );
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c1.as_str()));
    assert_eq!(
        w.get(NS, "staging")["status"]["promotion"]["sha"],
        c2.as_str()
    );
    w.reconcile(NS, "prod").await;
    assert_eq!(w.ready(NS, "prod").0, "True");
    assert_eq!(w.applied(NS, "prod").as_deref(), Some(c1.as_str()));
    assert!(
        w.events_of("prod").iter().all(|(r, _)| r != "Promoted"),
        "{:?}",
        w.events_of("prod")
    );
    // Once c2 proved itself in dev, staging takes it.
    w.age(NS, "dev", Duration::from_secs(600));
    w.reconcile(NS, "staging").await;
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c2.as_str()));
    assert!(
        w.events_of("staging")
            .iter()
            .any(|(r, n)| r == "Promoted" && n.contains(short(&c2)))
    );
}

#[tokio::test]
async fn an_upstream_that_is_not_ready_holds_the_promotion_and_the_current_app_stays() {
    let w = World::start().await;
    let c1 = w.repo.head();
    w.add(
        NS,
        "dev",
        "development",
        json!({"branch": "master"}),
        json!({}),
    );
    w.add(NS, "staging", "staging", from("dev", "0s"), json!({}));

    // Dev has never applied anything.
    let action = w.reconcile(NS, "staging").await;
    let (status, reason, message) = w.ready(NS, "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "UpstreamNeverApplied")
    );
    assert!(message.contains("team/dev"), "{message}");
    assert_eq!(
        requeue_of(&action),
        Duration::from_secs(300),
        "interval, no backoff"
    );
    assert!(
        w.events_of("staging")
            .iter()
            .all(|(r, _)| r != "UpstreamNeverApplied")
    );

    w.reconcile(NS, "dev").await;
    w.reconcile(NS, "staging").await;
    assert_eq!(
        w.applied(NS, "staging").as_deref(),
        Some(c1.as_str()),
        "readyFor 0s"
    );
    assert_eq!(w.ready(NS, "staging").0, "True");

    // Dev breaks (its ToolJet is unreachable) after applying c2: c2 is not promoted.
    let c2 = w.new_commit();
    w.reconcile(NS, "dev").await;
    w.edit(NS, "dev", |obj| {
        for c in obj["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
        {
            if c["type"] == "Ready" {
                c["status"] = json!("False");
                c["reason"] = json!("ToolJetUnavailable");
                c["message"] = json!("connection refused");
            }
        }
    });
    w.reconcile(NS, "staging").await;
    let (status, reason, message) = w.ready(NS, "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "UpstreamNotReady")
    );
    assert!(
        message.contains("ToolJetUnavailable") && message.contains(short(&c2)),
        "{message}"
    );
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c1.as_str()));
    assert!(w.get(NS, "staging")["status"]["promotion"].is_null());

    // A spec change dev has not reconciled yet holds too.
    w.edit(NS, "dev", |obj| obj["metadata"]["generation"] = json!(2));
    w.reconcile(NS, "dev").await;
    w.edit(NS, "dev", |obj| obj["metadata"]["generation"] = json!(3));
    w.reconcile(NS, "staging").await;
    assert_eq!(w.ready(NS, "staging").1, "UpstreamNotReconciled");

    // The upstream is gone: Stalled, the app stays.
    w.objects
        .lock()
        .expect("lock")
        .remove(&(NS.to_owned(), "dev".to_owned()));
    w.reconcile(NS, "staging").await;
    let (status, reason, _) = w.ready(NS, "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "UpstreamNotFound")
    );
    assert_eq!(
        w.condition(NS, "staging", "Stalled")
            .map(|c| c.1)
            .as_deref(),
        Some("UpstreamNotFound")
    );
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c1.as_str()));
    assert!(
        w.standin
            .apps()
            .iter()
            .any(|a| a.name == "Cards team staging")
    );
}

#[tokio::test]
async fn a_cross_namespace_upstream_needs_its_grant() {
    let w = World::start().await;
    let c1 = w.repo.head();
    w.add(
        NS,
        "dev",
        "development",
        json!({"branch": "master"}),
        json!({}),
    );
    w.add(
        "other",
        "staging",
        "staging",
        json!({"fromAppImport": {"name": "dev", "namespace": NS}}),
        json!({}),
    );
    w.reconcile(NS, "dev").await;

    let action = w.reconcile("other", "staging").await;
    let (status, reason, message) = w.ready("other", "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PromotionNotAllowed")
    );
    assert!(
        message.contains("gitops.tooljet.dev/promote-to-namespaces") && message.contains("other"),
        "{message}"
    );
    // Nothing of the upstream's status leaks into the refusal.
    assert!(!message.contains(short(&c1)), "{message}");
    assert_eq!(
        w.condition("other", "staging", "Stalled")
            .map(|c| c.1)
            .as_deref(),
        Some("PromotionNotAllowed")
    );
    assert!(
        w.events_of("staging")
            .iter()
            .any(|(r, _)| r == "PromotionNotAllowed")
    );
    assert_eq!(requeue_of(&action), Duration::from_secs(300));
    assert_eq!(w.applied("other", "staging"), None);

    // A grant naming another namespace, or `*`, is no grant.
    w.edit(NS, "dev", |obj| {
        obj["metadata"]["annotations"] =
            json!({"gitops.tooljet.dev/promote-to-namespaces": "*, qa"})
    });
    w.reconcile("other", "staging").await;
    assert_eq!(w.ready("other", "staging").1, "PromotionNotAllowed");

    w.edit(
        NS,
        "dev",
        |obj| {
            obj["metadata"]["annotations"] =
                json!({"gitops.tooljet.dev/promote-to-namespaces": "qa, other"})
        },
    );
    w.reconcile("other", "staging").await;
    assert_eq!(
        w.ready("other", "staging").0,
        "True",
        "{:?}",
        w.ready("other", "staging")
    );
    assert_eq!(w.applied("other", "staging").as_deref(), Some(c1.as_str()));
}

#[tokio::test]
async fn a_promotion_cycle_is_refused() {
    let w = World::start().await;
    w.add(NS, "a", "staging", from("b", "0s"), json!({}));
    w.add(NS, "b", "production", from("a", "0s"), json!({}));
    w.add(NS, "self", "development", from("self", "0s"), json!({}));
    for name in ["a", "self"] {
        w.reconcile(NS, name).await;
        let (status, reason, message) = w.ready(NS, name);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "PromotionCycle"),
            "{name}"
        );
        assert!(message.contains(&format!("team/{name}")), "{message}");
        assert!(w.condition(NS, name, "Stalled").is_some());
    }
    assert!(w.standin.apps().is_empty());
}

#[tokio::test]
async fn with_manual_policy_the_promoted_commit_waits_for_approval() {
    let w = World::start().await;
    let c1 = w.repo.head();
    w.add(
        NS,
        "dev",
        "development",
        json!({"branch": "master"}),
        json!({}),
    );
    w.add(
        NS,
        "staging",
        "staging",
        from("dev", "0s"),
        json!({"updatePolicy": "Manual"}),
    );
    w.reconcile(NS, "dev").await;
    // The first import is the user's decision (creating the AppImport), as for branches.
    w.reconcile(NS, "staging").await;
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c1.as_str()));

    let c2 = w.new_commit();
    w.reconcile(NS, "dev").await;
    w.clear_events();
    w.reconcile(NS, "staging").await;
    assert_eq!(
        w.applied(NS, "staging").as_deref(),
        Some(c1.as_str()),
        "not approved yet"
    );
    assert_eq!(
        w.get(NS, "staging")["status"]["latestCommit"]["sha"],
        c2.as_str()
    );
    let update = w
        .condition(NS, "staging", "UpdateAvailable")
        .expect("UpdateAvailable");
    assert_eq!(update.1, "AwaitingApproval");
    assert!(update.2.contains(&c2), "{}", update.2);
    assert!(w.events_of("staging").iter().all(|(r, _)| r != "Promoted"));

    w.edit(NS, "staging", |obj| {
        obj["metadata"]["annotations"] = json!({"gitops.tooljet.dev/approve": c2.as_str()})
    });
    w.reconcile(NS, "staging").await;
    assert_eq!(w.applied(NS, "staging").as_deref(), Some(c2.as_str()));
    assert!(w.condition(NS, "staging", "UpdateAvailable").is_none());
    assert!(
        w.events_of("staging")
            .iter()
            .any(|(r, n)| r == "Promoted" && n.contains(short(&c2)))
    );
}

#[tokio::test]
async fn a_commit_missing_from_this_repository_is_refused() {
    let w = World::start().await;
    let elsewhere = TestRepo::named("elsewhere");
    elsewhere.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
    elsewhere.commit("unrelated history");
    elsewhere.publish();
    w.add(
        NS,
        "dev",
        "development",
        json!({"branch": "master"}),
        json!({}),
    );
    w.add(NS, "staging", "staging", from("dev", "0s"), json!({}));
    w.edit(NS, "staging", |obj| {
        obj["spec"]["source"]["url"] = json!(elsewhere.file_url())
    });
    w.reconcile(NS, "dev").await;
    w.reconcile(NS, "staging").await;
    let (status, reason, message) = w.ready(NS, "staging");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CommitNotInRepository")
    );
    assert!(
        message.contains(&w.repo.head())
            && message.contains("team/dev")
            && message.contains("source.url"),
        "{message}"
    );
    assert!(w.condition(NS, "staging", "Stalled").is_some());
}

/// `sync -f`: upstreams run first in the same run, and their downstreams read the state this run
/// left (the state file's applied commit and history); an upstream not in the files is refused
/// with what to pass.
#[tokio::test]
async fn the_command_line_promotes_from_an_upstream_of_the_same_run() {
    use tooljet_operator::offline::{Manifests, StateFile, exit_code, run, summary};
    use tooljet_operator::sync::Mode;

    let w = World::start().await;
    let c1 = w.repo.head();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut docs = vec![admin_secret(NS)];
    docs.extend(
        w.instances
            .iter()
            .filter(|i| i.metadata.namespace.as_deref() == Some(NS))
            .map(|i| serde_json::to_value(i).expect("json")),
    );
    // Listed downstream first: the order of the files does not matter.
    w.add(NS, "prod", "production", from("staging", "1h"), json!({}));
    w.add(NS, "staging", "staging", from("dev", "0s"), json!({}));
    w.add(
        NS,
        "dev",
        "development",
        json!({"branch": "master"}),
        json!({}),
    );
    for name in ["prod", "staging", "dev"] {
        docs.push(w.get(NS, name));
    }
    let yaml: String = docs
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).expect("json")))
        .collect();
    let manifest = dir.path().join("apps.yaml");
    std::fs::write(&manifest, yaml).expect("write");
    let state_path = dir.path().join("state.json");
    let sync = async || {
        let manifests = Manifests::load(std::slice::from_ref(&manifest)).expect("manifests");
        let state = StateFile::open(Some(&state_path)).expect("state");
        let cache = SourceCache::new(CacheConfig {
            dir: dir.path().join("cache"),
            ..CacheConfig::default()
        });
        run(&manifests, cache, &state, Mode::Apply)
            .await
            .expect("run")
    };

    let results = sync().await;
    let by_name = |name: &str| {
        results
            .iter()
            .find(|r| r.name == format!("{NS}/{name}"))
            .expect("result")
    };
    assert_eq!(results[0].name, "team/prod", "results in the files' order");
    assert_eq!(by_name("dev").report.reason, "Imported");
    assert_eq!(
        by_name("staging").report.reason,
        "Imported",
        "{:?}",
        by_name("staging").report
    );
    let prod = &by_name("prod").report;
    assert_eq!(prod.reason, "PromotionPending", "{prod:?}");
    assert!(prod.message.contains(short(&c1)) && prod.message.contains("team/staging"));
    let text = summary(&results, Mode::Apply, false);
    assert!(
        text.contains("team/prod: waiting (PromotionPending)"),
        "{text}"
    );
    assert_eq!(exit_code(&results), 0, "waiting is not a failure");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).expect("state")).expect("json");
    assert_eq!(
        state["team/staging"]["lastAppliedCommit"]["sha"],
        c1.as_str()
    );
    assert!(state["team/prod"]["lastAppliedCommit"].is_null());

    // Staging applied c1 two hours ago (as the state file records it): prod follows.
    let mut state = state;
    for entry in state["team/staging"]["history"]
        .as_array_mut()
        .expect("history")
    {
        let t: Timestamp = entry["appliedAt"].as_str().expect("t").parse().expect("t");
        entry["appliedAt"] = json!((t - jiff::SignedDuration::from_hours(2)).to_string());
    }
    std::fs::write(&state_path, state.to_string()).expect("write state");
    let results = sync().await;
    let prod = results
        .iter()
        .find(|r| r.name == "team/prod")
        .expect("prod");
    assert_eq!(prod.report.reason, "Imported", "{:?}", prod.report);
    assert!(w.standin.apps().iter().any(|a| a.name == "Cards team prod"));

    // Prod alone: its upstream is not in the files.
    let alone = dir.path().join("prod.yaml");
    let mut docs_alone: Vec<Value> = docs.clone();
    docs_alone.retain(|d| d["kind"] != "AppImport" || d["metadata"]["name"] == "prod");
    let yaml: String = docs_alone
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).expect("json")))
        .collect();
    std::fs::write(&alone, yaml).expect("write");
    let manifests = Manifests::load(&[alone]).expect("manifests");
    let state = StateFile::open(Some(&state_path)).expect("state");
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().join("cache"),
        ..CacheConfig::default()
    });
    let results = run(&manifests, cache, &state, Mode::Plan)
        .await
        .expect("run");
    assert_eq!(results[0].report.reason, "UpstreamNotFound");
    assert!(
        results[0].report.message.contains("-f"),
        "{}",
        results[0].report.message
    );
    assert_eq!(exit_code(&results), 1);
}
