//! The export engine against the ToolJet stand-in (both flavours) and real repositories served
//! over git daemon, smart HTTP and SSH: one commit per real edit, none otherwise, ToolJet's Git
//! Sync layout read back by the AppImport reader, no data-source options in git, and the round
//! trip through an AppImport into another ToolJet.

use std::collections::BTreeMap;

use git_fixtures::tooljet::{BASE64, ORDERS_DASHBOARD};
use git_fixtures::{GitDaemon, HttpGitServer, SshGitServer, TestRepo};
use serde_json::{Value, json};
use std::time::Duration;

use test_support::engine::{self, EngineRig, RunArgs};
use test_support::pipeline::start_standin;
use tooljet_operator::api::{AppImportSpec, Reason};
use tooljet_operator::diff;
use tooljet_operator::source::{AppLocator, CacheConfig, Credentials, SourceCache, SourceError};
use tooljet_operator::sync::export::{self, ExportError, ExportLayout, ExportRequest};
use tooljet_operator::tooljet::ToolJetClient;
use tooljet_standin::{Flavour, StandIn, flavoured};

const API_KEY: &str = "export-test-key";
/// The git server's password (HTTP basic auth).
const PASSWORD: &str = "export-test-password";
const BRANCH: &str = "tooljet/development";
const APP: &str = ORDERS_DASHBOARD.0;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct ToolJet {
    standin: StandIn,
    client: ToolJetClient,
}

async fn tooljet(flavour: Flavour) -> ToolJet {
    let standin = start_standin(flavour, API_KEY).await;
    let client = engine::client(&standin, flavour, API_KEY, Some(REQUEST_TIMEOUT));
    ToolJet { standin, client }
}

/// A ToolJet holding the orders dashboard (with its data sources) and the base64 app.
async fn development(flavour: Flavour) -> ToolJet {
    let tj = tooljet(flavour).await;
    tj.client
        .import_bundle(ORDERS_DASHBOARD.1, APP)
        .await
        .expect("import orders dashboard");
    tj.client
        .import_bundle(BASE64.1, BASE64.0)
        .await
        .expect("import base64");
    tj
}

fn cache() -> (SourceCache, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().to_owned(),
        ..CacheConfig::default()
    });
    (cache, dir)
}

fn seeded_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "apps");
    repo.commit("initial");
    repo
}

fn request(url: &str, apps: &[&str], creds: Credentials) -> ExportRequest {
    ExportRequest {
        apps: apps.iter().map(|a| a.to_string()).collect(),
        url: url.into(),
        branch: BRANCH.into(),
        layout: ExportLayout::GitSync,
        path: String::new(),
        author_name: "ToolJet export".into(),
        author_email: "tooljet@example.com".into(),
        source_name: "development".into(),
        credentials: creds,
    }
}

fn app_id(standin: &StandIn, name: &str) -> String {
    standin
        .apps()
        .into_iter()
        .find(|a| a.name == name)
        .expect("app")
        .id
}

fn commits(repo: &TestRepo) -> usize {
    repo.served_git(&["rev-list", "--count", BRANCH])
        .parse()
        .expect("count")
}

flavoured!(
    an_edit_makes_exactly_one_commit_and_a_rerun_none,
    flavour,
    {
        let tj = development(flavour).await;
        let repo = seeded_repo();
        let daemon = GitDaemon::start_writable(repo.base_dir());
        let url = daemon.url(&repo.served_name());
        let (cache, _dir) = cache();
        let req = request(&url, &[APP], Credentials::Anonymous);

        let first = export::export(&cache, &tj.client, &req)
            .await
            .expect("export");
        let commit = first.commit.clone().expect("a commit");
        assert!(first.created_branch);
        assert_eq!(first.apps.len(), 1);
        let app = &first.apps[0];
        assert!(app.changed);
        assert_eq!(app.name, APP);
        assert_eq!(app.path, format!("{APP}/{}.json", app.version));
        assert_eq!(commits(&repo), 2, "one commit on top of master");
        let full = repo.served_git(&["log", "-1", "--format=%an <%ae>%n%B", BRANCH]);
        assert!(full.starts_with("ToolJet export <tooljet@example.com>\nExport Orders Dashboard from ToolJet development"), "{full}");
        assert!(
            full.contains(&format!("- {APP} (version {})", app.version)),
            "{full}"
        );

        // Layout: meta.json names the app and its version; the bundle is where it says.
        let files = repo.served_git(&["ls-tree", "-r", "--name-only", BRANCH]);
        assert_eq!(
            files,
            format!(".meta/meta.json\n{APP}/{}.json\nREADME.md", app.version)
        );
        let meta: Value =
            serde_json::from_str(&repo.served_git(&["show", &format!("{BRANCH}:.meta/meta.json")]))
                .expect("meta.json");
        let entry = &meta[app_id(&tj.standin, APP)];
        assert_eq!(entry["gitAppName"], json!(APP));
        assert_eq!(entry["gitVersionName"], json!(app.version));
        assert_eq!(entry["lastCommitUser"], json!("ToolJet export"));
        assert_eq!(
            entry["lastCommitMessage"],
            json!("Export Orders Dashboard from ToolJet development")
        );
        assert!(
            entry["lastpushDate"]
                .as_str()
                .is_some_and(|d| d.ends_with('Z'))
        );

        // Secrets never leave ToolJet; the data sources' names and kinds stay. (ToolJet's own
        // export carries option rows, so there is something to strip.)
        let raw = tj
            .client
            .export_app(&app_id(&tj.standin, APP), None)
            .await
            .expect("raw export");
        assert!(
            raw["app"][0]["definition"]["appV2"]["dataSourceOptions"]
                .as_array()
                .is_some_and(|rows| !rows.is_empty()),
            "the stand-in's export carries data-source options"
        );
        let text = repo.served_git(&["show", &format!("{BRANCH}:{}", app.path)]);
        let bundle: Value = serde_json::from_str(&text).expect("bundle");
        let app_v2 = &bundle["app"][0]["definition"]["appV2"];
        assert!(!text.contains("credential_id"), "no credential ids in git");
        assert_eq!(app_v2["dataSourceOptions"], json!([]));
        let sources: Vec<(String, String)> = app_v2["dataSources"]
            .as_array()
            .expect("dataSources")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_owned(),
                    d["kind"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert!(
            sources.contains(&("orders-db".into(), "postgresql".into())),
            "{sources:?}"
        );
        assert!(
            app_v2["dataSources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d.get("options").is_none())
        );

        // The AppImport reader reads what the writer wrote.
        let read = cache
            .read_app(
                &url,
                &Credentials::Anonymous,
                &commit.sha,
                &AppLocator::ByName(APP.into()),
            )
            .await
            .expect("reader reads the export");
        assert_eq!(read.git_app_name, APP);
        assert_eq!(read.version_name, app.version);
        assert_eq!(read.bundle, bundle);

        // Nothing changed: no commit.
        let again = export::export(&cache, &tj.client, &req)
            .await
            .expect("re-run");
        assert!(again.commit.is_none(), "{again:?}");
        assert!(!again.apps[0].changed);
        assert_eq!(again.head.as_deref(), Some(commit.sha.as_str()));
        assert_eq!(commits(&repo), 2);

        // Only timestamps moved (a save without a change): still no commit.
        assert!(tj.standin.edit_app_as_user(&app_id(&tj.standin, APP)));
        let touched = export::export(&cache, &tj.client, &req)
            .await
            .expect("after a save");
        assert!(touched.commit.is_none(), "timestamps alone are no change");
        assert_eq!(commits(&repo), 2);

        // A real edit: exactly one commit, naming the app.
        assert!(
            tj.standin
                .edit_query_as_user(&app_id(&tj.standin, APP), None)
        );
        let edited = export::export(&cache, &tj.client, &req)
            .await
            .expect("after an edit");
        let second = edited.commit.expect("a commit for the edit");
        assert!(edited.apps[0].changed);
        assert_eq!(commits(&repo), 3);
        assert_eq!(
            repo.served_git(&["rev-parse", &format!("{second}^", second = second.sha)]),
            commit.sha
        );
        assert!(second.message.contains(APP));
        let edited_text = repo.served_git(&["show", &format!("{BRANCH}:{}", app.path)]);
        assert!(
            edited_text.contains("edited in ToolJet"),
            "the edit is in git"
        );
        let last = export::export(&cache, &tj.client, &req)
            .await
            .expect("re-run");
        assert!(last.commit.is_none());
        assert_eq!(commits(&repo), 3);
    }
);

flavoured!(
    the_exported_commit_imports_into_another_tooljet_as_the_same_app,
    flavour,
    {
        let dev = development(flavour).await;
        let repo = seeded_repo();
        let (cache, _dir) = cache();
        let url = repo.file_url();
        let out = export::export(
            &cache,
            &dev.client,
            &request(&url, &[APP], Credentials::Anonymous),
        )
        .await
        .expect("export");
        let commit = out.commit.expect("commit");

        // Another ToolJet imports the exported commit with an AppImport.
        let staging = start_standin(flavour, API_KEY).await;
        let mut rig = EngineRig::new(staging, repo, flavour, API_KEY, REQUEST_TIMEOUT, None);
        let spec: AppImportSpec = serde_json::from_value(json!({
            "environment": "development",
            "source": {"url": url, "ref": {"commit": commit.sha}, "app": APP},
        }))
        .expect("spec");
        let outcome = rig.sync(&spec, RunArgs::default()).await;
        assert!(outcome.report.ready(), "{:?}", outcome.report);
        let staging = ToolJet {
            standin: rig.standin,
            client: rig.client,
        };

        let from_dev = dev
            .client
            .export_app(&app_id(&dev.standin, APP), None)
            .await
            .expect("export dev");
        let from_staging = staging
            .client
            .export_app(&app_id(&staging.standin, APP), None)
            .await
            .expect("export staging");
        let changes = diff::diff(&from_dev, &from_staging).expect("diff");
        assert!(
            changes.is_empty(),
            "the round trip changed the app: {changes:?}"
        );
        assert!(diff::same_app(&from_dev, &from_staging).expect("same_app"));
    }
);

/// Every app of the workspace, as plain bundles in a folder, over smart HTTP with basic auth;
/// a branch already holding other files keeps them.
#[tokio::test]
async fn all_apps_as_bundles_over_smart_http() {
    let tj = development(Flavour::V3).await;
    let repo = seeded_repo();
    let server = HttpGitServer::start_with_basic_auth(repo.base_dir(), "writer", PASSWORD);
    let creds = Credentials::Basic {
        username: "writer".into(),
        password: PASSWORD.into(),
    };
    let (cache, _dir) = cache();
    let mut req = request(&server.url(&repo.served_name()), &[], creds);
    req.layout = ExportLayout::Bundle;
    req.path = "exports".into();
    let out = export::export(&cache, &tj.client, &req)
        .await
        .expect("export");
    let commit = out.commit.expect("commit");
    assert_eq!(
        repo.served_git(&["ls-tree", "-r", "--name-only", BRANCH]),
        format!("README.md\nexports/{APP}.json\nexports/{}.json", BASE64.0)
    );
    assert!(
        commit.message.contains(APP) && commit.message.contains(BASE64.0),
        "{}",
        commit.message
    );
    let again = export::export(&cache, &tj.client, &req)
        .await
        .expect("re-run");
    assert!(again.commit.is_none());
    // The bundle reader reads it too.
    let read = cache
        .read_app(
            &server.url(&repo.served_name()),
            &Credentials::Basic {
                username: "writer".into(),
                password: PASSWORD.into(),
            },
            &commit.sha,
            &AppLocator::Path(format!("exports/{APP}.json")),
        )
        .await
        .expect("read");
    assert_eq!(read.git_app_name, APP);
}

/// Over SSH, into a branch that already holds the app at an older version written by ToolJet's
/// Git Sync: the old version file goes, the meta.json entry keeps its key.
#[tokio::test]
async fn over_ssh_the_old_version_file_is_replaced() {
    let tj = development(Flavour::V3).await;
    let repo = TestRepo::new();
    repo.git_sync_write("source-app-id", APP, "v0-old", ORDERS_DASHBOARD.1);
    repo.git_sync_write("other-app-id", BASE64.0, "v1", BASE64.1);
    repo.commit("pushed from ToolJet");
    repo.branch(BRANCH);
    repo.checkout("master");
    let server = SshGitServer::start();
    let mut data = BTreeMap::new();
    data.insert(
        "identity".to_string(),
        server.private_key().as_bytes().to_vec(),
    );
    data.insert(
        "known_hosts".to_string(),
        server.known_hosts_line().into_bytes(),
    );
    let creds = Credentials::from_secret_data(&data).expect("creds");
    let (cache, _dir) = cache();
    let out = export::export(
        &cache,
        &tj.client,
        &request(&server.url(repo.served_path()), &[APP], creds),
    )
    .await
    .expect("export");
    assert!(out.commit.is_some());
    assert!(!out.created_branch);
    let version = &out.apps[0].version;
    assert_ne!(version, "v0-old");
    let files = repo.served_git(&["ls-tree", "-r", "--name-only", BRANCH]);
    assert_eq!(
        files,
        format!(
            ".meta/meta.json\n{APP}/{version}.json\n{}/v1.json",
            BASE64.0
        )
    );
    let meta: Value =
        serde_json::from_str(&repo.served_git(&["show", &format!("{BRANCH}:.meta/meta.json")]))
            .expect("meta");
    assert_eq!(meta["source-app-id"]["gitAppName"], json!(APP));
    assert_eq!(meta["source-app-id"]["gitVersionName"], json!(version));
    assert_eq!(
        meta["other-app-id"]["gitAppName"],
        json!(BASE64.0),
        "other apps kept"
    );
    assert_eq!(meta.as_object().map(|m| m.len()), Some(2));
}

#[tokio::test]
async fn an_unknown_app_or_a_read_only_secret_pushes_nothing() {
    let tj = development(Flavour::V3).await;
    let repo = seeded_repo();
    let before = repo.served_git(&["for-each-ref"]);
    let (cache, _dir) = cache();
    let err = export::export(
        &cache,
        &tj.client,
        &request(&repo.file_url(), &["No Such App"], Credentials::Anonymous),
    )
    .await
    .expect_err("unknown app");
    assert!(
        matches!(&err, ExportError::AppNotFound { name, available } if name == "No Such App" && available.contains(&APP.to_string())),
        "{err}"
    );
    assert_eq!(err.reason(), Reason::AppNotFound);

    let server =
        HttpGitServer::start_read_only_with_basic_auth(repo.base_dir(), "reader", PASSWORD);
    let creds = Credentials::Basic {
        username: "reader".into(),
        password: PASSWORD.into(),
    };
    let err = export::export(
        &cache,
        &tj.client,
        &request(&server.url(&repo.served_name()), &[APP], creds),
    )
    .await
    .expect_err("read-only");
    assert!(
        matches!(err, ExportError::Source(SourceError::PushDenied { .. })),
        "{err}"
    );
    assert_eq!(err.reason(), Reason::GitPushDenied);
    assert!(!err.to_string().contains(PASSWORD));
    assert_eq!(repo.served_git(&["for-each-ref"]), before, "nothing pushed");
}

// Item 7: an editable AppImport and an AppExport of the same app on the same branch of the same
// ToolJet. The AppImport sees the export of its own app's edits as ToolJet's own push: it
// records the commit without writing to ToolJet and without LocalChanges; the next export makes
// no commit. No ping-pong.
flavoured!(
    an_editable_app_import_and_an_export_of_its_app_coexist,
    flavour,
    {
        let dev = development(flavour).await;
        let repo = seeded_repo();
        let url = repo.file_url();
        let export_req = request(&url, &[APP], Credentials::Anonymous);
        let mut rig = EngineRig::new(dev.standin, repo, flavour, API_KEY, REQUEST_TIMEOUT, None);
        let cache = rig.cache.clone();
        let first = export::export(&cache, &rig.client, &export_req)
            .await
            .expect("export");
        assert!(first.commit.is_some());

        let spec: AppImportSpec = serde_json::from_value(json!({
            "environment": "development",
            "source": {"url": url, "ref": {"branch": BRANCH}, "app": APP},
            "editable": true,
            "adoptExisting": true,
        }))
        .expect("spec");
        let adopted = rig.sync(&spec, RunArgs::default()).await;
        assert!(adopted.report.ready(), "{:?}", adopted.report);

        // The app is the AppImport's now; the export of it changes nothing in git.
        let after_adopt = export::export(&cache, &rig.client, &export_req)
            .await
            .expect("export");
        assert!(
            after_adopt.commit.is_none(),
            "adopting changed nothing: {after_adopt:?}"
        );

        // Edited in ToolJet; the AppImport keeps the edit (editable).
        assert!(
            rig.standin
                .edit_query_as_user(&app_id(&rig.standin, APP), None)
        );
        let kept = rig.sync(&spec, RunArgs::default()).await;
        assert!(
            kept.report.ready() && kept.report.reason == "UpToDate",
            "{:?}",
            kept.report
        );

        // The export pushes the edit; the AppImport records that commit without writing.
        let pushed = export::export(&cache, &rig.client, &export_req)
            .await
            .expect("export");
        let commit = pushed.commit.expect("the edit is committed");
        let writes = rig.standin.write_count();
        let recorded = rig.sync(&spec, RunArgs::default()).await;
        assert!(
            recorded.report.ready() && recorded.report.reason == "InSyncWithToolJet",
            "{:?}",
            recorded.report
        );
        assert_eq!(
            rig.standin.write_count(),
            writes,
            "nothing written to ToolJet"
        );
        assert_eq!(
            rig.state
                .last_applied_commit
                .as_ref()
                .map(|c| c.sha.as_str()),
            Some(commit.sha.as_str())
        );

        // Settled: neither side moves again.
        let again = rig.sync(&spec, RunArgs::default()).await;
        assert!(
            again.report.ready() && again.report.reason == "UpToDate",
            "{:?}",
            again.report
        );
        assert_eq!(rig.standin.write_count(), writes);
        let no_commit = export::export(&cache, &rig.client, &export_req)
            .await
            .expect("export");
        assert!(no_commit.commit.is_none());
    }
);
