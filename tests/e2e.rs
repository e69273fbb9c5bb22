//! End-to-end: the controller, in this process, against a real API server named by
//! `TOOLJET_OPERATOR_E2E_KUBECONFIG`, with ToolJet stand-ins and a real git repository on loopback.
//! Needs no pods, kubelet or controller-manager: an API server (and etcd) is enough, e.g.
//! envtest's binaries or `kind`. Without the variable every test prints why it skips and passes.
//!
//! One test per behaviour of issue 6: CRDs installed; an instance per environment Ready; an
//! AppImport per environment Ready; a push applied (and `reconcile-requested-at` echoed); drift
//! restored; LocalChanges kept until force-pull; a transient failure retried with backoff; NameConflict; Manual + approve; deletion with
//! Retain and Delete; bad objects rejected with the CRD's messages; the example manifests accepted;
//! and (issue 7) leader election: two replicas, one Lease holder, failover after a crash.
//! Each test works in its own namespace (see `harness`), so the tests may run in parallel.

#[path = "e2e/harness.rs"]
mod harness;
use test_support::http_probe;

use git_fixtures::tooljet::BASE64;
use harness::{
    APP, ENVIRONMENTS, Harness, TIMEOUT, cond, create_namespace, delete_namespace, has_cond,
    kube_client, wait_for, wait_for_or_none,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, CustomResourceExt, Resource, ResourceExt};
use serde_json::{Value, json};
use tooljet_operator::api::condition::reason::{
    EDITABLE_NOT_ALLOWED, LOCAL_CHANGES, NAME_CONFLICT,
};
use tooljet_operator::api::condition::{DRIFTED, READY, RECONCILING, STALLED, UPDATE_AVAILABLE};
use tooljet_operator::api::{
    ANNOTATION_APPROVE, ANNOTATION_FORCE_PULL, AppExport, AppImport, AppStatus, FINALIZER,
    ToolJetInstance,
};
use tooljet_operator::controller::{self, app_import::FIELD_MANAGER};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::{AppSnapshot, StandIn};

/// The apps named [`APP`] in a stand-in.
fn apps_named_app(standin: &StandIn) -> Vec<AppSnapshot> {
    standin
        .apps()
        .into_iter()
        .filter(|a| a.name == APP)
        .collect()
}

/// The one app named [`APP`] in a stand-in.
fn the_app(standin: &StandIn) -> AppSnapshot {
    let mut named = apps_named_app(standin);
    assert_eq!(named.len(), 1, "apps in ToolJet: {:?}", standin.apps());
    named.remove(0)
}

fn owned_app(app: &AppImport) -> AppStatus {
    app.status
        .as_ref()
        .and_then(|s| s.app.clone())
        .expect("status.app")
}

fn applied_sha(app: &AppImport) -> Option<&str> {
    Some(
        app.status
            .as_ref()?
            .last_applied_commit
            .as_ref()?
            .sha
            .as_str(),
    )
}

fn handled_request(app: &AppImport) -> Option<&str> {
    app.status.as_ref()?.last_handled_reconcile_at.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_installed_and_established() {
    let Some(client) = kube_client().await else {
        return;
    };
    controller::install_crds(&client)
        .await
        .expect("CRDs installed");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for expected in tooljet_operator::api::crds() {
        let name = expected.name_any();
        let served = crds.get(&name).await.expect("CRD exists");
        let conditions = served
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for type_ in ["Established", "NamesAccepted"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == "True"),
                "{name}: {type_} is not True: {conditions:?}"
            );
        }
        let (got, want) = (&served.spec.names, &expected.spec.names);
        assert_eq!(
            (&got.kind, &got.plural, &got.short_names, &got.categories),
            (
                &want.kind,
                &want.plural,
                &want.short_names,
                &want.categories
            ),
            "{name}"
        );
        let version = &served.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1alpha1", true, true)
        );
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            "{name}: status subresource"
        );
        let applied_by_operator = served.managed_fields().iter().any(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
        });
        assert!(
            applied_by_operator,
            "{name}: not server-side applied by {FIELD_MANAGER}: {:?}",
            served.managed_fields()
        );
    }
    // Both kinds are served.
    let one = ListParams::default().limit(1);
    Api::<ToolJetInstance>::all(client.clone())
        .list(&one)
        .await
        .expect("ToolJetInstances listed");
    Api::<AppImport>::all(client)
        .list(&one)
        .await
        .expect("AppImports listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_per_environment_is_ready_with_its_workspace() {
    let Some(h) = Harness::start().await else {
        return;
    };
    for env in ENVIRONMENTS {
        let instance = h
            .instances()
            .get(&Harness::instance_name(env))
            .await
            .expect("instance");
        let status = instance.status.clone().expect("status");
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Connected"),
            "{env}: {}",
            ready.message
        );
        assert_eq!(
            status.workspace_id.as_deref(),
            Some(h.standin(env).workspace_id()),
            "{env}"
        );
        assert_eq!(status.observed_generation, instance.metadata.generation);
    }
    // Production logs in with a password and found its workspace by itself.
    let prod = h
        .instances()
        .get(&Harness::instance_name("production"))
        .await
        .expect("instance");
    assert_eq!(prod.spec.workspace_id, None);

    // A changed Secret re-checks the instance: a wrong password is LoginFailed.
    Api::<Secret>::namespaced(h.client.clone(), &h.ns)
        .patch(
            "tooljet-production-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "wrong"}})),
        )
        .await
        .expect("Secret patched");
    let refused = h
        .wait_instance("production", "Ready=False LoginFailed", |i| {
            i.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == READY && c.status == "False" && c.reason == "LoginFailed")
            })
        })
        .await;
    // kstatus: a refused login needs the user (Stalled), and `kubectl describe` shows why.
    let stalled = refused
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == STALLED))
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "LoginFailed")
    );
    let production = Harness::instance_name("production");
    h.wait_event_about("ToolJetInstance", &production, "Connected")
        .await;
    let note = h
        .wait_event_about("ToolJetInstance", &production, "LoginFailed")
        .await;
    assert!(!note.contains("wrong"), "no password in the Event: {note}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_import_per_environment_becomes_ready() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let head = h.repo.head();
    for env in ENVIRONMENTS {
        // As in deploy/examples: editable in development only.
        let extra = json!({"editable": env == "development"});
        h.create_app(&format!("cards-{env}"), env, extra).await;
    }
    for env in ENVIRONMENTS {
        let name = format!("cards-{env}");
        let app = h.wait_ready(&name).await;
        let status = app.status.clone().expect("status");
        let owned = owned_app(&app);
        assert_eq!(owned.name, APP);
        assert_eq!(applied_sha(&app), Some(head.as_str()), "{name}");
        assert_eq!(status.observed_generation, app.metadata.generation);
        assert!(status.last_sync_time.is_some() && status.last_applied_hash.is_some());
        assert_eq!(status.history.len(), 1);
        assert!(cond(&app, STALLED).is_none() && cond(&app, RECONCILING).is_none());
        assert!(app.finalizers().iter().any(|f| f == FINALIZER), "{name}");
        assert_eq!(app.spec.editable, env == "development");

        let in_tooljet = the_app(h.standin(env));
        assert_eq!((&in_tooljet.id, &in_tooljet.slug), (&owned.id, &owned.slug));
        assert_eq!(
            in_tooljet.current_version_id.as_deref(),
            Some(in_tooljet.editing_version_id.as_str()),
            "{name}: released"
        );
        h.wait_event(&name, "Imported").await;
    }

    // Staging does not allow editable apps.
    h.create_app(
        "cards-editable",
        "staging",
        json!({"editable": true, "appName": "Cards editable"}),
    )
    .await;
    let refused = h
        .wait_app("cards-editable", "Ready=False EditableNotAllowed", |a| {
            has_cond(a, READY, "False", Some(EDITABLE_NOT_ALLOWED))
        })
        .await;
    assert!(has_cond(
        &refused,
        STALLED,
        "True",
        Some(EDITABLE_NOT_ALLOWED)
    ));
    assert!(
        !h.standin("staging")
            .apps()
            .iter()
            .any(|a| a.name == "Cards editable")
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_commit_is_applied_on_request() {
    let Some(h) = Harness::start().await else {
        return;
    };
    h.create_app("cards", "development", json!({})).await;
    let before = owned_app(&h.wait_ready("cards").await);
    let sha = h.push("v2");
    let requested = h.request_reconcile("cards").await;
    let app = h
        .wait_app(
            "cards",
            "the pushed commit applied, the request echoed",
            |a| {
                applied_sha(a) == Some(sha.as_str())
                    && handled_request(a) == Some(requested.as_str())
            },
        )
        .await;
    assert!(has_cond(&app, READY, "True", Some("Updated")));
    let after = owned_app(&app);
    assert_ne!(after.id, before.id, "a fresh import");
    assert_eq!(after.slug, before.slug, "the end users' URL stays");
    let status = app.status.as_ref().expect("status");
    assert_eq!(status.history.len(), 2);
    assert_eq!(status.history[0].sha, sha);

    let in_tooljet = the_app(h.standin("development"));
    assert_eq!(in_tooljet.id, after.id);
    assert_eq!(in_tooljet.definition["icon"], json!("v2"));
    h.wait_event("cards", "Updated").await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_tooljet_failure_is_retried_with_backoff() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let standin = h.standin("development");
    // The first import answers 503; the per-object backoff retries it 5s later.
    standin
        .faults()
        .fail_nth("POST", "/api/v2/resources/import", 1, 503);
    h.create_app("cards", "development", json!({})).await;
    let failed = h
        .wait_app(
            "cards",
            "Ready=False and Reconciling=True (Retrying)",
            |a| {
                has_cond(a, READY, "False", None)
                    && has_cond(a, RECONCILING, "True", Some("Retrying"))
            },
        )
        .await;
    assert!(cond(&failed, STALLED).is_none(), "{:?}", failed.status);
    let app = h.wait_ready("cards").await;
    assert!(cond(&app, RECONCILING).is_none());
    assert_eq!(the_app(standin).id, owned_app(&app).id);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_non_editable_app_is_restored() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let standin = h.standin("staging");
    h.create_app("cards", "staging", json!({})).await;
    let before = owned_app(&h.wait_ready("cards").await);
    assert!(standin.edit_app_as_user(&before.id));
    let requested = h.request_reconcile("cards").await;
    let app = h
        .wait_app("cards", "the request handled", |a| {
            handled_request(a) == Some(requested.as_str())
        })
        .await;
    assert!(has_cond(&app, READY, "True", None), "{:?}", app.status);
    let note = h.wait_event("cards", "DriftCorrected").await;
    assert!(!note.is_empty());
    let after = owned_app(&app);
    assert_ne!(after.id, before.id, "the git version re-imported");
    assert_eq!(after.slug, before.slug);
    let in_tooljet = the_app(standin);
    assert_eq!(in_tooljet.id, after.id);
    assert!(has_cond(&app, DRIFTED, "False", Some("DriftCorrected")));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_editable_app_keeps_local_changes_until_force_pull() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let standin = h.standin("development");
    h.create_app("cards", "development", json!({"editable": true}))
        .await;
    let before = owned_app(&h.wait_ready("cards").await);
    assert!(standin.edit_app_as_user(&before.id));
    let sha = h.push("v2");
    h.request_reconcile("cards").await;
    let refused = h
        .wait_app("cards", "Ready=False LocalChanges", |a| {
            has_cond(a, READY, "False", Some(LOCAL_CHANGES))
        })
        .await;
    assert!(has_cond(&refused, STALLED, "True", Some(LOCAL_CHANGES)));
    let message = &cond(&refused, READY).expect("Ready").message;
    assert!(message.contains(&sha), "{message}");
    assert_eq!(
        the_app(standin).id,
        before.id,
        "the edited app is untouched"
    );
    h.wait_event("cards", LOCAL_CHANGES).await;

    h.annotate("cards", ANNOTATION_FORCE_PULL, &sha).await;
    let pulled = h
        .wait_app("cards", "the force-pulled commit applied", |a| {
            applied_sha(a) == Some(sha.as_str()) && has_cond(a, READY, "True", None)
        })
        .await;
    let after = owned_app(&pulled);
    assert_ne!(after.id, before.id);
    assert_eq!(after.slug, before.slug);
    let in_tooljet = the_app(standin);
    assert_eq!(in_tooljet.id, after.id);
    assert_eq!(in_tooljet.definition["icon"], json!("v2"));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_app_of_the_same_name_is_a_name_conflict() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let standin = h.standin("development");
    // A user imported another app under the same name, outside the operator.
    let mut config = ClientConfig::new(
        standin.base_url(),
        Auth::AdminApiKey(standin.admin_api_key().expect("key").into()),
    );
    config.workspace_id = Some(standin.workspace_id().to_owned());
    let user = ToolJetClient::new(config).expect("client");
    let bundle: Value = serde_json::from_slice(BASE64.1).expect("json");
    let foreign = user.import_app(&bundle, APP).await.expect("import").id;
    let writes = standin.write_count();

    h.create_app("cards", "development", json!({})).await;
    let app = h
        .wait_app("cards", "Ready=False NameConflict", |a| {
            has_cond(a, READY, "False", Some(NAME_CONFLICT))
        })
        .await;
    assert!(has_cond(&app, STALLED, "True", Some(NAME_CONFLICT)));
    let message = &cond(&app, READY).expect("Ready").message;
    assert!(message.contains("adoptExisting"), "{message}");
    assert!(app.status.as_ref().is_some_and(|s| s.app.is_none()));
    assert_eq!(standin.write_count(), writes, "nothing written to ToolJet");
    assert_eq!(the_app(standin).id, foreign, "the foreign app is untouched");
    h.wait_event("cards", NAME_CONFLICT).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_updates_wait_for_approval() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let standin = h.standin("production");
    let first_sha = h.repo.head();
    h.create_app("cards", "production", json!({"updatePolicy": "Manual"}))
        .await;
    let before = owned_app(&h.wait_ready("cards").await);
    let sha = h.push("v2");
    h.request_reconcile("cards").await;
    let waiting = h
        .wait_app("cards", "UpdateAvailable=True for the pushed commit", |a| {
            has_cond(a, UPDATE_AVAILABLE, "True", None)
                && a.status
                    .as_ref()
                    .and_then(|s| s.latest_commit.as_ref())
                    .is_some_and(|c| c.sha == sha)
        })
        .await;
    assert_eq!(applied_sha(&waiting), Some(first_sha.as_str()));
    assert!(has_cond(&waiting, READY, "True", None));
    let message = &cond(&waiting, UPDATE_AVAILABLE).expect("condition").message;
    assert!(
        message.contains(&format!("{ANNOTATION_APPROVE}: \"{sha}\"")),
        "{message}"
    );
    let unchanged = the_app(standin);
    assert_eq!(unchanged.id, before.id, "not applied before approval");
    assert_eq!(unchanged.definition["icon"], json!("v1"));

    h.annotate("cards", ANNOTATION_APPROVE, &sha).await;
    let applied = h
        .wait_app("cards", "the approved commit applied", |a| {
            applied_sha(a) == Some(sha.as_str()) && cond(a, UPDATE_AVAILABLE).is_none()
        })
        .await;
    assert!(has_cond(&applied, READY, "True", None));
    let after = owned_app(&applied);
    assert_ne!(after.id, before.id);
    assert_eq!(after.slug, before.slug);
    assert_eq!(the_app(standin).definition["icon"], json!("v2"));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_retains_or_deletes_the_app() {
    let Some(h) = Harness::start().await else {
        return;
    };
    h.create_app("kept", "staging", json!({"deletionPolicy": "Retain"}))
        .await;
    h.create_app("removed", "production", json!({"deletionPolicy": "Delete"}))
        .await;
    let kept = owned_app(&h.wait_ready("kept").await);
    let removed = owned_app(&h.wait_ready("removed").await);
    assert_eq!(the_app(h.standin("production")).id, removed.id);

    h.delete_app("kept").await;
    assert_eq!(
        the_app(h.standin("staging")).id,
        kept.id,
        "Retain leaves the app in ToolJet"
    );
    h.delete_app("removed").await;
    assert!(
        apps_named_app(h.standin("production")).is_empty(),
        "Delete removed the app: {:?}",
        h.standin("production").apps()
    );
    h.finish().await;
}

/// An untyped API, so that objects the types cannot hold (an unknown environment) can be sent.
fn dynamic<K: Resource<DynamicType = ()>>(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()))
}

/// `base` with the field at `pointer` set to `value` (removed when `value` is null).
fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut v = base.clone();
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let object = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("the parent is an object");
    if value.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_owned(), value);
    }
    v
}

/// Creates with `dryRun=All`: fully validated and admitted, never stored.
async fn dry_run_create(api: &Api<DynamicObject>, doc: &Value) -> Result<(), kube::Error> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).expect("an object");
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    api.create(&params, &obj).await.map(|_| ())
}

/// Which kind a bad object is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    App,
    Instance,
}

fn object(kind: Kind, spec: Value) -> Value {
    let kind = match kind {
        Kind::App => "AppImport",
        Kind::Instance => "ToolJetInstance",
    };
    json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": kind,
           "metadata": {"name": "bad"}, "spec": spec})
}

/// A valid AppImport and ToolJetInstance.
fn good_objects() -> [(Kind, Value); 2] {
    [
        (
            Kind::App,
            object(
                Kind::App,
                json!({"environment": "staging",
                "source": {"url": "https://git.example.com/apps.git", "ref": {"branch": "main"}, "app": APP}}),
            ),
        ),
        (
            Kind::Instance,
            object(
                Kind::Instance,
                json!({"url": "http://tooljet.example", "environment": "staging", "workspaceId": "w",
                "auth": {"adminApiKey": {"secretRef": {"name": "s", "key": "k"}}}}),
            ),
        ),
    ]
}

/// Each bad object is a good one with one change, and the message the API server must give:
/// the CRD rule's message (an enum violation has the API server's own wording).
fn bad_objects() -> Vec<(&'static str, Kind, Value, &'static str)> {
    let [(_, app), (_, instance)] = good_objects();
    vec![
        (
            "ref with branch and tag",
            Kind::App,
            with(&app, "/spec/source/ref/tag", json!("v1")),
            "ref must set exactly one of branch, tag, commit or fromAppImport",
        ),
        (
            "readyFor beside a branch",
            Kind::App,
            with(&app, "/spec/source/ref/readyFor", json!("30m")),
            "ref.readyFor applies only with ref.fromAppImport",
        ),
        (
            "readyFor of one day",
            Kind::App,
            with(
                &app,
                "/spec/source/ref",
                json!({"fromAppImport": {"name": "sales-staging"}, "readyFor": "1d"}),
            ),
            "ref.readyFor must be a duration such as 0s, 30m or 1h30m",
        ),
        (
            "commit not 40 lowercase hex",
            Kind::App,
            with(
                &app,
                "/spec/source/ref",
                json!({"commit": "ABCDEF0123ABCDEF0123ABCDEF0123ABCDEF0123"}),
            ),
            "ref.commit must be a full commit sha: 40 lowercase hexadecimal characters",
        ),
        (
            "both app and path",
            Kind::App,
            with(&app, "/spec/source/path", json!("x.json")),
            "source must set exactly one of app (an app name from .meta/meta.json) or path (an export bundle)",
        ),
        (
            "path with ..",
            Kind::App,
            with(
                &with(&app, "/spec/source/app", Value::Null),
                "/spec/source/path",
                json!("exports/../x.json"),
            ),
            "source.path must be relative to the repository root and must not contain `..`",
        ),
        (
            "environment qa",
            Kind::App,
            with(&app, "/spec/environment", json!("qa")),
            "Unsupported value: \"qa\"",
        ),
        (
            "interval 5s",
            Kind::App,
            with(&app, "/spec/interval", json!("5s")),
            "interval must be a duration of at least 10s, such as 30s, 5m or 1h30m",
        ),
        (
            "source url http://",
            Kind::App,
            with(&app, "/spec/source/url", json!("http://x")),
            "source.url must be an https://, ssh://, git:// or file:// URL",
        ),
        (
            "two auth methods",
            Kind::Instance,
            with(
                &instance,
                "/spec/auth/password",
                json!({"secretRef": {"name": "login"}}),
            ),
            "auth must set exactly one of adminApiKey, password or externalToken",
        ),
        (
            "instance url ftp://",
            Kind::Instance,
            with(&instance, "/spec/url", json!("ftp://x")),
            "url must be an http:// or https:// URL with a host",
        ),
    ]
}

/// Runs without a cluster: the objects of the test below are good or bad as intended, by kube's
/// client-side CEL evaluator on the generated CRDs, so the cluster test checks the right thing.
#[test]
fn bad_objects_break_the_intended_crd_rule() {
    let schema = |kind: Kind| {
        let crd = match kind {
            Kind::App => AppImport::crd(),
            Kind::Instance => ToolJetInstance::crd(),
        };
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema");
        serde_json::to_value(schema).expect("schema serializes")
    };
    let cel = |kind: Kind, doc: &Value| -> Vec<String> {
        match kube::core::cel::Validator::new().validate(&schema(kind), doc, None) {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
        }
    };
    for (kind, doc) in good_objects() {
        assert_eq!(cel(kind, &doc), Vec::<String>::new(), "{doc}");
    }
    for (label, kind, doc, expected) in bad_objects() {
        if label == "environment qa" {
            // An enum, not a CEL rule: the types refuse it too.
            assert!(serde_json::from_value::<AppImport>(doc).is_err());
            continue;
        }
        let messages = cel(kind, &doc);
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{label}: expected {expected:?}, got {messages:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_are_rejected_with_the_crd_messages() {
    let Some(client) = kube_client().await else {
        return;
    };
    controller::install_crds(&client)
        .await
        .expect("CRDs installed");
    let ns = create_namespace(&client).await;
    let api = |kind: Kind| match kind {
        Kind::App => dynamic::<AppImport>(&client, &ns),
        Kind::Instance => dynamic::<ToolJetInstance>(&client, &ns),
    };
    for (kind, doc) in good_objects() {
        dry_run_create(&api(kind), &doc)
            .await
            .unwrap_or_else(|e| panic!("the good {kind:?} is refused: {e}"));
    }
    for (label, kind, doc, expected) in bad_objects() {
        match dry_run_create(&api(kind), &doc).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{label}: {status:?}");
                assert!(
                    status.message.contains(expected),
                    "{label}: expected {expected:?} in {:?}",
                    status.message
                );
            }
            Err(other) => panic!("{label}: not an API rejection: {other}"),
            Ok(()) => panic!("{label}: accepted, but the CRD should reject it: {doc}"),
        }
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_manifests_are_accepted_by_the_api_server() {
    let Some(client) = kube_client().await else {
        return;
    };
    controller::install_crds(&client)
        .await
        .expect("CRDs installed");
    let ns = create_namespace(&client).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut applied = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        for doc in docs {
            let api = match doc["kind"].as_str() {
                Some("Secret") => dynamic::<Secret>(&client, &ns),
                Some("ToolJetInstance") => dynamic::<ToolJetInstance>(&client, &ns),
                Some("AppImport") => dynamic::<AppImport>(&client, &ns),
                other => panic!("{}: unexpected kind {other:?}", file.display()),
            };
            dry_run_create(&api, &doc)
                .await
                .unwrap_or_else(|e| panic!("{}: {} refused: {e}", file.display(), doc["kind"]));
            applied += 1;
        }
    }
    assert!(applied >= 6, "only {applied} objects in the examples");
    delete_namespace(&client, &ns).await;
}

/// The poll helper itself (runs without a cluster): it polls until the condition holds.
#[tokio::test]
async fn wait_for_returns_the_first_value_that_holds() {
    let mut calls = 0;
    let got = wait_for("the third call", TIMEOUT, || {
        calls += 1;
        let n = calls;
        async move { (n == 3).then_some(n) }
    })
    .await;
    assert_eq!(got, 3);
}

/// Issue 7: two controllers, one Lease. Only the holder reconciles; when it dies without
/// releasing (a crash), the other takes the Lease within the lease duration and reconciles.
#[tokio::test]
async fn two_replicas_elect_one_leader_and_fail_over() {
    use k8s_openapi::api::coordination::v1::Lease;
    use tooljet_operator::controller::{RunOptions, ServeOptions};
    use tooljet_operator::process::leader::LeaderConfig;

    let Some(client) = kube_client().await else {
        return;
    };
    controller::install_crds(&client)
        .await
        .expect("CRDs installed");
    let ns = create_namespace(&client).await;
    let cache = tempfile::tempdir().expect("tempdir");
    let replica = |identity: &str| {
        let mut lease = LeaderConfig::new(ns.clone());
        lease.identity = identity.to_owned();
        tokio::spawn(controller::run_with(
            client.clone(),
            RunOptions {
                namespace: Some(ns.clone()),
                concurrency: 2,
                cache_dir: cache.path().join(identity),
                install_crds: false,
            },
            ServeOptions {
                leader_election: Some(lease),
                ..ServeOptions::default()
            },
        ))
    };
    let mut replicas = vec![
        ("replica-a", replica("replica-a")),
        ("replica-b", replica("replica-b")),
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let lease_name = LeaderConfig::new(ns.clone()).lease_name;
    let holder = |leases: Api<Lease>, name: String| async move {
        leases
            .get(&name)
            .await
            .ok()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
    };

    let first = wait_for("a Lease holder", TIMEOUT, || {
        holder(leases.clone(), lease_name.clone())
    })
    .await;
    // The holder keeps it: several renewal periods later it is still the same replica.
    let lease_duration = LeaderConfig::new(ns.clone()).lease_duration;
    let settle_until = tokio::time::Instant::now() + lease_duration * 2;
    wait_for("two lease durations to pass", TIMEOUT, || {
        let (leases, name, first) = (leases.clone(), lease_name.clone(), first.clone());
        async move {
            let now = holder(leases, name).await;
            assert_eq!(
                now.as_deref(),
                Some(first.as_str()),
                "the Lease changed hands with both replicas alive"
            );
            (tokio::time::Instant::now() >= settle_until).then_some(())
        }
    })
    .await;

    // Crash the leader: abort its task (no release).
    let index = replicas
        .iter()
        .position(|(id, _)| *id == first)
        .expect("holder is one of ours");
    let (_, leader) = replicas.remove(index);
    leader.abort();
    let (survivor, _) = &replicas[0];
    let took_over = wait_for(
        "the other replica to take the Lease",
        lease_duration * 3,
        || {
            let (leases, name, first) = (leases.clone(), lease_name.clone(), first.clone());
            async move { holder(leases, name).await.filter(|h| *h != first) }
        },
    )
    .await;
    assert_eq!(took_over, *survivor);

    // The new leader reconciles: a ToolJetInstance becomes Ready.
    let standin = StandIn::builder()
        .admin_api_key("lease-test-key")
        .start()
        .await
        .expect("stand-in");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "tj"}, "stringData": {"api-key": "lease-test-key"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
    let instance: ToolJetInstance = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
        "metadata": {"name": "tj"},
        "spec": {"url": standin.base_url(), "environment": "staging",
                 "workspaceId": standin.workspace_id(),
                 "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}}
    }))
    .expect("instance");
    let instances: Api<ToolJetInstance> = Api::namespaced(client.clone(), &ns);
    instances
        .create(&PostParams::default(), &instance)
        .await
        .expect("instance created");
    wait_for("the new leader to make the instance Ready", TIMEOUT, || {
        let instances = instances.clone();
        async move {
            instances.get("tj").await.ok().filter(|i| {
                i.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == READY && c.status == "True")
                })
            })
        }
    })
    .await;

    for (_, task) in replicas {
        task.abort();
    }
    instances
        .delete("tj", &Default::default())
        .await
        .expect("instance deleted");
    delete_namespace(&client, &ns).await;
}

/// A count from the environment (`name`), or `default`.
fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Issue 12: the real binary, started `E2E_STARTS` times (default 20) against one namespace,
/// reconciles an existing AppImport and answers `/readyz` 200 within 10 s of every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reconciles_and_is_ready_within_10s_of_every_start() {
    use harness::OperatorProcess;
    let Some(h) = Harness::start_without_operator().await else {
        return;
    };
    let starts = count_from_env("E2E_STARTS", 20);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("operator.log");
    h.create_app("cards", "development", json!({})).await;
    let mut slowest = std::time::Duration::ZERO;
    for start in 0..starts {
        let mut operator = OperatorProcess::start(&h.ns, h.cache.path(), log.clone());
        let started = tokio::time::Instant::now();
        let requested = h.request_reconcile("cards").await;
        let within = std::time::Duration::from_secs(10);
        let apps = h.apps();
        let handled = wait_for_or_none(within, || async {
            let app = apps.get("cards").await.ok()?;
            (handled_request(&app) == Some(requested.as_str())).then_some(())
        })
        .await;
        let ready = wait_for_or_none(within, || async {
            (operator.http("GET", "/readyz", "", "").await == 200).then_some(())
        })
        .await;
        slowest = slowest.max(started.elapsed());
        assert!(
            handled.is_some() && ready.is_some(),
            "start {start} of {starts}: reconcile-requested-at echoed {}, /readyz 200 {} within {within:?}; logs:\n{}",
            handled.is_some(),
            ready.is_some(),
            operator.logs()
        );
        assert!(operator.terminate().await, "clean exit on SIGTERM");
    }
    eprintln!("{starts} starts: each reconciled and ready; slowest {slowest:?}");
    let operator = OperatorProcess::start(&h.ns, h.cache.path(), log);
    h.finish().await;
    drop(operator);
}

/// A random duration below `max` (std's randomly seeded hasher; no dependency).
fn random_below(max: std::time::Duration) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    std::time::Duration::from_nanos(random % nanos)
}

/// Issue 12: SIGKILL at a random moment of a webhook-triggered update (the swap), `E2E_KILLS`
/// times (default 3; RELIABILITY.md records runs with 50 and more). After each restart the
/// operator converges: one app under the real name with the first import's slug, no `tjop-`
/// leftovers, the pushed commit applied; and at the end the finalizer is still released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_operator_converges_after_restart() {
    use harness::OperatorProcess;
    let Some(h) = Harness::start_without_operator().await else {
        return;
    };
    let kills = count_from_env("E2E_KILLS", 3);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("operator.log");
    let standin = h.standin("development");
    // Only webhooks and restarts trigger updates (no periodic check during the test).
    h.create_app("cards", "development", json!({"interval": "1h"}))
        .await;
    let mut operator = OperatorProcess::start(&h.ns, h.cache.path(), log.clone());
    let first = owned_app(&h.wait_ready("cards").await);
    // How long one update takes here: kills are spread over that window.
    let sha = h.push("v-timing");
    let timed = tokio::time::Instant::now();
    assert!(
        operator.announce_push(&h.repo.file_url()).await,
        "webhook accepted"
    );
    h.wait_app("cards", "the timing commit applied", |a| {
        applied_sha(a) == Some(sha.as_str())
    })
    .await;
    let update = timed.elapsed();
    let mut mid_swap = 0;
    let mut before_applied = 0;
    for kill in 0..kills {
        let version = format!("v{kill}");
        let sha = h.push(&version);
        assert!(
            operator.announce_push(&h.repo.file_url()).await,
            "webhook accepted"
        );
        // Not a synchronisation: the kill lands at a random moment of the update.
        tokio::time::sleep(random_below(update)).await;
        operator.kill();
        let apps_at_kill = standin.apps();
        if apps_at_kill.iter().any(|a| a.name.starts_with("tjop-")) {
            mid_swap += 1;
        }
        let applied = h.apps().get("cards").await.ok();
        if applied.as_ref().and_then(applied_sha) != Some(sha.as_str()) {
            before_applied += 1;
        }
        operator = OperatorProcess::start(&h.ns, h.cache.path(), log.clone());
        // Converged: what the restarted operator reports and what ToolJet holds agree with the
        // push. (The killed process may already have checkpointed the new commit in status while
        // the old app still sat aside: only ToolJet's side tells that the work is finished.)
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let problem = converged(&h, standin, &sha, &version, &first.slug).await;
            let Some(problem) = problem else { break };
            assert!(
                tokio::time::Instant::now() < deadline,
                "kill {kill}: not converged after {TIMEOUT:?}: {problem}\nToolJet: {:#?}\n{}",
                standin.apps(),
                operator.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "{kills} kills (update ≈ {update:?}): {before_applied} before the new commit was recorded, \
         {mid_swap} with a temporary app in ToolJet; all converged"
    );
    // The finalizer is still released (Retain: the app stays).
    h.delete_app("cards").await;
    assert_eq!(apps_named_app(standin).len(), 1);
    h.finish().await;
    drop(operator);
}

/// What still differs from a converged update to `sha` (`version`), or `None`.
async fn converged(
    h: &Harness,
    standin: &StandIn,
    sha: &str,
    version: &str,
    slug: &str,
) -> Option<String> {
    let app = h.apps().get("cards").await.ok()?;
    if applied_sha(&app) != Some(sha) || !has_cond(&app, READY, "True", None) {
        return Some("status does not show the pushed commit Ready yet".into());
    }
    let apps = standin.apps();
    let named = apps_named_app(standin);
    if named.len() != 1 {
        return Some(format!("{} apps under the real name", named.len()));
    }
    if apps.iter().any(|a| a.name.starts_with("tjop-")) || apps.len() != 1 {
        return Some("temporary or moved-aside apps remain".into());
    }
    let app_in_tooljet = &named[0];
    if app_in_tooljet.slug != slug {
        return Some(format!(
            "slug {} is not the first import's",
            app_in_tooljet.slug
        ));
    }
    if app_in_tooljet.definition["icon"] != json!(version) {
        return Some("the app in ToolJet is not the pushed version".into());
    }
    if app
        .status
        .as_ref()
        .and_then(|s| s.app.as_ref())
        .map(|a| a.id.as_str())
        != Some(app_in_tooljet.id.as_str())
    {
        return Some("status.app does not name the app in ToolJet".into());
    }
    None
}

/// Issue 15: a ToolJetInstance's constant read from a Secret is written to ToolJet, and rotating
/// the Secret reaches ToolJet within seconds (the Secret watch re-checks the instance). The time
/// from the Secret's update to the new value in the stand-in is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_reaches_the_instance_constant_within_seconds() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "api-config"},
        "stringData": {"base": "https://api-v1.staging.example"},
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
    let name = Harness::instance_name("staging");
    h.instances()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"constants": [
                {"name": "API_BASE", "valueFrom": {"secretKeyRef": {"name": "api-config", "key": "base"}}},
                {"name": "REGION", "value": "eu-west-1"},
            ]}})),
        )
        .await
        .expect("constants added");
    let standin = h.standin("staging");
    let value_of = |name: &str| {
        standin
            .constants()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    };
    wait_for("API_BASE written from the Secret", TIMEOUT, || async {
        (value_of("API_BASE").as_deref() == Some("https://api-v1.staging.example")).then_some(())
    })
    .await;
    let instance = h
        .wait_instance("staging", "ConfigApplied=True", |i| {
            i.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "ConfigApplied" && c.status == "True")
                    && s.constants.len() == 2
            })
        })
        .await;
    let shown = serde_json::to_string(&instance.status).expect("json");
    assert!(
        !shown.contains("api-v1.staging.example"),
        "a value in status: {shown}"
    );

    let rotated_at = std::time::Instant::now();
    secrets
        .patch(
            "api-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"base": "https://api-v2.staging.example"}})),
        )
        .await
        .expect("Secret rotated");
    wait_for("the rotated value in ToolJet", TIMEOUT, || async {
        (value_of("API_BASE").as_deref() == Some("https://api-v2.staging.example")).then_some(())
    })
    .await;
    let took = rotated_at.elapsed();
    println!(
        "issue 15: Secret rotation reached the ToolJet constant in {} ms",
        took.as_millis()
    );
    assert_eq!(value_of("REGION").as_deref(), Some("eu-west-1"));
    h.finish().await;
}

/// The `status.promotion` field of an AppImport, as JSON.
fn promotion_of(app: &AppImport) -> Value {
    app.status
        .as_ref()
        .and_then(|s| s.promotion.as_ref())
        .map(|p| serde_json::to_value(p).expect("json"))
        .unwrap_or(Value::Null)
}

/// Issue 16: a commit goes dev → staging → prod, each step after its upstream was Ready on it for
/// `readyFor` (3s): PromotionPending with the right eligibleAt, then applied, with a Promoted Event;
/// a new commit in dev waits out its soak in staging while staging keeps the current app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_goes_dev_staging_prod_after_the_soak_time() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let from = |name: &str| json!({"source": {"ref": {"branch": null, "fromAppImport": {"name": name}, "readyFor": "3s"}}});
    let c1 = h.repo.head();
    h.create_app("dev", "development", json!({})).await;
    h.create_app("staging", "staging", from("dev")).await;
    h.create_app("prod", "production", from("staging")).await;

    let pending = h
        .wait_app(
            "staging",
            "PromotionPending for the commit dev applied",
            |a| {
                has_cond(a, READY, "False", Some("PromotionPending"))
                    && promotion_of(a)["sha"] == c1.as_str()
            },
        )
        .await;
    let promotion = promotion_of(&pending);
    assert_eq!(promotion["from"], format!("{}/dev", h.ns));
    let since: jiff::Timestamp = promotion["readySince"]
        .as_str()
        .expect("readySince")
        .parse()
        .expect("t");
    let eligible: jiff::Timestamp = promotion["eligibleAt"]
        .as_str()
        .expect("eligibleAt")
        .parse()
        .expect("t");
    assert_eq!(eligible.duration_since(since).as_secs(), 3);
    let dev = h.apps().get("dev").await.expect("dev");
    let dev_ready = cond(&dev, READY).expect("dev Ready");
    assert!(
        since >= dev_ready.last_transition_time.0,
        "soak starts when dev became Ready on it"
    );
    assert!(has_cond(
        &pending,
        RECONCILING,
        "True",
        Some("PromotionPending")
    ));

    for (name, upstream) in [("staging", "dev"), ("prod", "staging")] {
        let done = h
            .wait_app(name, "the promoted commit applied", |a| {
                applied_sha(a) == Some(c1.as_str()) && has_cond(a, READY, "True", None)
            })
            .await;
        let applied_at = done
            .status
            .as_ref()
            .and_then(|s| s.last_sync_time.clone())
            .expect("lastSyncTime")
            .0;
        let eligible: jiff::Timestamp = promotion_of(&done)["eligibleAt"]
            .as_str()
            .expect("eligibleAt")
            .parse()
            .expect("t");
        assert!(
            applied_at >= eligible,
            "{name}: applied at {applied_at}, eligible at {eligible}"
        );
        let note = h.wait_event(name, "Promoted").await;
        assert!(
            note.contains(&c1[..7]) && note.contains(&format!("{}/{upstream}", h.ns)),
            "{note}"
        );
    }
    assert_eq!(
        the_app(h.standin("production")).definition["icon"],
        json!("v1")
    );

    // v2 in dev: staging waits out its soak and keeps v1 (Ready) meanwhile; then takes it.
    let c2 = h.push("v2");
    h.request_reconcile("dev").await;
    let waiting = h
        .wait_app("staging", "PromotionPending for v2", |a| {
            promotion_of(a)["sha"] == c2.as_str()
                && (has_cond(a, READY, "True", Some("PromotionPending"))
                    || applied_sha(a) == Some(c2.as_str()))
        })
        .await;
    if applied_sha(&waiting) != Some(c2.as_str()) {
        assert_eq!(
            applied_sha(&waiting),
            Some(c1.as_str()),
            "the current app stays"
        );
    }
    h.wait_app("prod", "v2 promoted to prod", |a| {
        applied_sha(a) == Some(c2.as_str())
    })
    .await;
    assert_eq!(
        the_app(h.standin("production")).definition["icon"],
        json!("v2")
    );
    h.finish().await;
}

/// Issue 16: an upstream in another namespace that does not grant promotion is refused (Stalled),
/// with nothing imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_from_another_namespace_without_a_grant_is_refused() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let elsewhere = create_namespace(&h.client).await;
    let upstream: AppImport = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
        "metadata": {"name": "dev", "namespace": elsewhere},
        "spec": {"environment": "development",
                 "source": {"url": h.repo.file_url(), "ref": {"branch": "master"}, "app": APP}},
    }))
    .expect("AppImport");
    Api::<AppImport>::namespaced(h.client.clone(), &elsewhere)
        .create(&PostParams::default(), &upstream)
        .await
        .expect("upstream created");
    h.create_app(
        "staging",
        "staging",
        json!({"source": {"ref": {"branch": null, "fromAppImport": {"name": "dev", "namespace": elsewhere}}}}),
    )
    .await;
    let refused = h
        .wait_app("staging", "PromotionNotAllowed", |a| {
            has_cond(a, STALLED, "True", Some("PromotionNotAllowed"))
        })
        .await;
    let message = &cond(&refused, READY).expect("Ready").message;
    assert!(
        message.contains("gitops.tooljet.dev/promote-to-namespaces") && message.contains(&h.ns),
        "{message}"
    );
    let note = h.wait_event("staging", "PromotionNotAllowed").await;
    assert!(note.contains(&elsewhere), "{note}");
    assert!(apps_named_app(h.standin("staging")).is_empty());
    delete_namespace(&h.client, &elsewhere).await;
    h.finish().await;
}

/// Issue 18 on a real API server: an AppExport of the development app, edited in ToolJet, pushes
/// one commit to its branch (Ready=True Exported, `status.lastCommit`, an `Exported` Event); a
/// second reconcile finds the branch up to date and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_export_pushes_the_edited_app_to_its_branch_once() {
    let Some(h) = Harness::start().await else {
        return;
    };
    let standin = h.standin("development");
    h.create_app("cards", "development", json!({"editable": true}))
        .await;
    let imported = owned_app(&h.wait_ready("cards").await);
    assert!(standin.edit_query_as_user(&imported.id, None));

    let branch = "tooljet/development";
    let exports: Api<AppExport> = Api::namespaced(h.client.clone(), &h.ns);
    let export: AppExport = serde_json::from_value(json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppExport",
        "metadata": {"name": "dev-export"},
        "spec": {"environment": "development", "apps": [APP],
                 "destination": {"url": h.repo.file_url(), "branch": branch},
                 "author": {"name": "ToolJet export", "email": "tooljet@example.com"},
                 "interval": "1h"}
    }))
    .expect("AppExport");
    exports
        .create(&PostParams::default(), &export)
        .await
        .expect("AppExport created");
    let ready = |reason: &'static str| {
        let exports = exports.clone();
        move || {
            let exports = exports.clone();
            async move {
                let e = exports.get("dev-export").await.ok()?;
                let status = e.status.clone()?;
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == READY && c.status == "True" && c.reason == reason)
                    .then_some(status)
            }
        }
    };
    let status = wait_for("AppExport Ready=True Exported", TIMEOUT, ready("Exported")).await;
    let pushed = status.last_commit.expect("status.lastCommit").sha;
    assert_eq!(h.repo.served_git(&["rev-parse", branch]), pushed);
    let message = h.repo.served_git(&["log", "-1", "--format=%B", branch]);
    assert!(message.contains(APP), "{message}");
    // The app's own file and its meta.json entry are rewritten in place: no second copy.
    let changed = h
        .repo
        .served_git(&["diff", "--name-only", "master", branch]);
    assert_eq!(
        changed.lines().collect::<Vec<_>>(),
        [".meta/meta.json".to_owned(), format!("{APP}/v1.json")],
        "{changed}"
    );
    h.wait_event_about("AppExport", "dev-export", "Exported")
        .await;

    // Asked again: the branch already holds the app, nothing is committed.
    exports
        .patch(
            "dev-export",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                tooljet_operator::api::ANNOTATION_RECONCILE_REQUESTED_AT: "again"}}})),
        )
        .await
        .expect("annotated");
    let again = wait_for("AppExport Ready=True UpToDate", TIMEOUT, ready("UpToDate")).await;
    assert_eq!(again.last_handled_reconcile_at.as_deref(), Some("again"));
    assert_eq!(h.repo.served_git(&["rev-parse", branch]), pushed);
    h.finish().await;
}
