//! The ToolJet client against the stand-in server: every endpoint, every error.

use std::time::Duration;

use serde_json::{Value, json};
use tooljet_operator::tooljet::{
    AppUpdate, Auth, ClientConfig, Family, ToolJetClient, ToolJetError, TransientKind,
};
use tooljet_standin::flavoured;
use tooljet_standin::{Flavour, MSG_NAME_TAKEN, StandIn};

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "pw-Secret-7f3a91";
const ADMIN_KEY: &str = "admin-Secret-5c2e88";
const EXT_TOKEN: &str = "ext-Secret-0d4b17";
const FIXTURES: [&str; 5] = [
    "credit-card-test-data-generator",
    "base64-encoder-decoder",
    "ai-powered-code-explainer",
    "orders-dashboard",
    "orders-report",
];

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/tooljet-apps/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn standin() -> StandIn {
    StandIn::builder()
        .credentials(EMAIL, PASSWORD)
        .admin_api_key(ADMIN_KEY)
        .external_token(EXT_TOKEN)
        .start()
        .await
        .unwrap()
}

fn config(s: &StandIn, auth: Auth) -> ClientConfig {
    let mut c = ClientConfig::new(s.base_url(), auth);
    c.workspace_id = Some(s.workspace_id().to_string());
    c.request_timeout = Duration::from_secs(10);
    c
}

/// A client as an operator would configure it for the stand-in's flavour: the admin API key on
/// 3.x, a password on 2.27 (which has no admin API key).
fn client_of(s: &StandIn) -> ToolJetClient {
    match s.flavour() {
        Flavour::V2_27 => password_client(s),
        Flavour::V3 => admin_client(s),
    }
}

fn password_client(s: &StandIn) -> ToolJetClient {
    let mut c = config(
        s,
        Auth::Password {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
    );
    // Password mode learns the workspace at login.
    c.workspace_id = None;
    ToolJetClient::new(c).unwrap()
}

fn admin_client(s: &StandIn) -> ToolJetClient {
    ToolJetClient::new(config(s, Auth::AdminApiKey(ADMIN_KEY.into()))).unwrap()
}

fn ext_client(s: &StandIn, token: &str) -> ToolJetClient {
    ToolJetClient::new(config(s, Auth::ExternalToken(token.into()))).unwrap()
}

fn logins(s: &StandIn) -> usize {
    s.request_log()
        .iter()
        .filter(|r| r.path.starts_with("/api/authenticate"))
        .count()
}

flavoured!(password_mode_covers_every_endpoint, flavour, {
    let s = standin_of(flavour, None).await;
    let c = password_client(&s);
    assert_eq!(c.check().await.unwrap(), s.workspace_id());

    let bundle = fixture("credit-card-test-data-generator");
    let imported = c.import_app(&bundle, "  Cards  ").await.unwrap();
    assert_eq!(imported.name, "Cards");
    let bundle_id = bundle["app"][0]["definition"]["appV2"]["id"]
        .as_str()
        .unwrap();
    assert_ne!(imported.id, bundle_id, "every import gets a fresh id");

    let app = c.get_app(&imported.id).await.unwrap();
    assert_eq!(app.name, "Cards");
    assert_eq!(app.current_version_id, None, "not released before release");
    let editing = app.editing_version.clone().unwrap();
    assert_eq!(editing.name, "v1");

    let found = c.find_apps_by_name("Cards").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, imported.id);

    let exported = c.export_app(&imported.id, None).await.unwrap();
    assert_eq!(exported["app"][0]["definition"]["appV2"]["name"], "Cards");
    assert_eq!(exported["tooljet_version"], s.server_version());
    let by_version = c.export_app(&imported.id, Some(&editing.id)).await.unwrap();
    assert_eq!(
        by_version["app"][0]["definition"]["appV2"]["editingVersion"]["id"],
        json!(editing.id)
    );

    c.release_app(&imported.id, &editing.id).await.unwrap();
    let app = c.get_app(&imported.id).await.unwrap();
    assert_eq!(app.current_version_id.as_deref(), Some(editing.id.as_str()));

    let update = AppUpdate {
        name: Some("Cards 2".into()),
        slug: Some("cards-two".into()),
    };
    c.update_app(&imported.id, &update).await.unwrap();
    let app = c.get_app(&imported.id).await.unwrap();
    assert_eq!(
        (app.name.as_str(), app.slug.as_str()),
        ("Cards 2", "cards-two")
    );

    // Constants and data-source options: tests/tooljet/client_config.rs.
    let envs = c.environments().await.unwrap();
    let names: Vec<(&str, u32)> = envs.iter().map(|e| (e.name.as_str(), e.priority)).collect();
    match flavour {
        Flavour::V2_27 => assert_eq!(names, [("production", 3)]),
        Flavour::V3 => assert_eq!(
            names,
            [("development", 1), ("staging", 2), ("production", 3)]
        ),
    }

    c.delete_app(&imported.id).await.unwrap();
    assert!(matches!(
        c.get_app(&imported.id).await,
        Err(ToolJetError::NotFound { .. })
    ));
    assert!(s.apps().is_empty());
});

flavoured!(all_fixture_bundles_import_with_fresh_ids, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    assert_eq!(c.check().await.unwrap(), s.workspace_id());
    for name in FIXTURES {
        let bundle = fixture(name);
        let app_name = format!("fixture {name}")
            .chars()
            .take(50)
            .collect::<String>();
        let imported = c.import_app(&bundle, &app_name).await.unwrap();
        let def = &bundle["app"][0]["definition"]["appV2"];
        assert_ne!(imported.id, def["id"].as_str().unwrap());
        let app = c.get_app(&imported.id).await.unwrap();
        assert_ne!(
            app.editing_version.unwrap().id,
            def["editingVersion"]["id"].as_str().unwrap()
        );
        // The stand-in keeps the definition, so the export carries the components.
        let exported = c.export_app(&imported.id, None).await.unwrap();
        assert_eq!(
            exported["app"][0]["definition"]["appV2"]["components"]
                .as_array()
                .map(Vec::len),
            def["components"].as_array().map(Vec::len)
        );
    }
    assert_eq!(s.apps().len(), FIXTURES.len());
    assert_eq!(
        s.write_count(),
        FIXTURES.len(),
        "one import each; exports are not writes"
    );
});

flavoured!(user_edits_move_updated_at, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    let imported = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap();
    let before = c.get_app(&imported.id).await.unwrap();
    assert!(s.edit_app_as_user(&imported.id));
    let after = c.get_app(&imported.id).await.unwrap();
    assert!(after.updated_at > before.updated_at);
    let (b, a) = (
        before.editing_version.unwrap().updated_at.unwrap(),
        after.editing_version.unwrap().updated_at.unwrap(),
    );
    assert!(a > b, "{a} > {b}");
});

flavoured!(expired_session_logs_in_again_once, flavour, {
    let s = standin_of(flavour, None).await;
    let c = password_client(&s);
    c.check().await.unwrap();
    assert_eq!(logins(&s), 1);
    s.expire_sessions();
    assert!(c.environments().await.is_ok());
    assert_eq!(logins(&s), 2, "one re-login after the 401");

    // A server that keeps refusing: one re-login, then Unauthorized.
    s.faults().fail_route("GET", "/api/app-environments", 401);
    let err = c.environments().await.unwrap_err();
    assert!(matches!(err, ToolJetError::Unauthorized { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(logins(&s), 3);
});

flavoured!(wrong_password_is_unauthorized, flavour, {
    let s = standin_of(flavour, None).await;
    let mut cfg = config(
        &s,
        Auth::Password {
            email: EMAIL.into(),
            password: "not-it".into(),
        },
    );
    cfg.workspace_id = None;
    let err = ToolJetClient::new(cfg).unwrap().check().await.unwrap_err();
    assert!(matches!(err, ToolJetError::Unauthorized { .. }), "{err}");
});

#[tokio::test]
async fn bad_admin_key_and_foreign_workspace() {
    let s = standin().await;
    let bad = ToolJetClient::new(config(&s, Auth::AdminApiKey("wrong".into()))).unwrap();
    assert!(matches!(
        bad.environments().await,
        Err(ToolJetError::Unauthorized { .. })
    ));
    let mut cfg = config(&s, Auth::AdminApiKey(ADMIN_KEY.into()));
    cfg.workspace_id = Some("00000000-0000-4000-8000-00000000dead".into());
    let foreign = ToolJetClient::new(cfg).unwrap();
    assert!(matches!(
        foreign.environments().await,
        Err(ToolJetError::Forbidden { .. })
    ));
}

flavoured!(taken_names_and_slugs, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    let bundle = fixture("base64-encoder-decoder");
    let first = c.import_app(&bundle, "Same").await.unwrap();
    let writes = s.write_count();
    let err = c.import_app(&bundle, "Same").await.unwrap_err();
    assert!(matches!(err, ToolJetError::NameTaken { .. }), "{err}");
    assert_eq!(s.apps().len(), 1, "nothing imported");
    assert_eq!(s.write_count(), writes + 1);

    // The constraint-violation path answers 409 with the same message.
    s.faults().fail_route_with_message(
        "POST",
        "/api/v2/resources/import",
        409,
        Some(MSG_NAME_TAKEN),
    );
    let err = c.import_app(&bundle, "Other").await.unwrap_err();
    assert!(matches!(err, ToolJetError::NameTaken { .. }), "{err}");
    s.faults().clear_routes();

    let second = c.import_app(&bundle, "Second").await.unwrap();
    let rename = AppUpdate {
        name: Some("Same".into()),
        slug: None,
    };
    let err = c.update_app(&second.id, &rename).await.unwrap_err();
    assert!(matches!(err, ToolJetError::NameTaken { .. }), "{err}");

    let first_slug = c.get_app(&first.id).await.unwrap().slug;
    let reslug = AppUpdate {
        name: None,
        slug: Some(first_slug),
    };
    let err = c.update_app(&second.id, &reslug).await.unwrap_err();
    assert!(matches!(err, ToolJetError::SlugTaken { .. }), "{err}");

    let bad_slug = AppUpdate {
        name: None,
        slug: Some("Not A Slug".into()),
    };
    let err = c.update_app(&second.id, &bad_slug).await.unwrap_err();
    assert!(
        matches!(err, ToolJetError::Rejected { status: 400, .. }),
        "{err}"
    );

    // 3.x limits import names to 50 characters; 2.27 imports any length (D8).
    let long = "x".repeat(51);
    match flavour {
        Flavour::V3 => {
            let err = c.import_app(&bundle, &long).await.unwrap_err();
            assert!(
                matches!(err, ToolJetError::Rejected { status: 400, .. }),
                "{err}"
            );
        }
        Flavour::V2_27 => assert_eq!(c.import_app(&bundle, &long).await.unwrap().name, long),
    }
});

#[tokio::test]
async fn bundle_newer_than_server_is_refused() {
    let s = StandIn::builder()
        .admin_api_key(ADMIN_KEY)
        .server_version("2.40.0")
        .start()
        .await
        .unwrap();
    let c = admin_client(&s);
    let err = c
        .import_app(&fixture("credit-card-test-data-generator"), "Cards")
        .await
        .unwrap_err();
    match &err {
        ToolJetError::BundleNewerThanServer { bundle_version, .. } => {
            assert_eq!(bundle_version, "2.50.5.5.29")
        }
        other => panic!("expected BundleNewerThanServer, got {other}"),
    }
    assert!(s.apps().is_empty());
    // 2.38.0-ee… is older than 2.40.0.
    c.import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap();
}

#[tokio::test]
async fn external_token_mode() {
    let s = standin().await;
    let bad = ext_client(&s, "wrong-token");
    let err = bad
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap_err();
    assert!(matches!(err, ToolJetError::Forbidden { .. }), "{err}");
    assert!(matches!(
        bad.check().await,
        Err(ToolJetError::Forbidden { .. })
    ));

    let c = ext_client(&s, EXT_TOKEN);
    assert_eq!(c.check().await.unwrap(), s.workspace_id());
    let imported = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap();
    assert_eq!(s.apps()[0].id, imported.id);
    assert_eq!(c.find_apps_by_name("B64").await.unwrap().len(), 1);
    assert_eq!(c.list_apps_matching("b6").await.unwrap().len(), 1);
    let err = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap_err();
    assert!(matches!(err, ToolJetError::NameTaken { .. }), "{err}");
    for err in [
        c.get_app(&imported.id).await.unwrap_err(),
        c.export_app(&imported.id, None).await.unwrap_err(),
        c.delete_app(&imported.id).await.unwrap_err(),
        c.environments().await.unwrap_err(),
    ] {
        assert!(matches!(err, ToolJetError::Unsupported { .. }), "{err}");
    }
}

flavoured!(server_errors_and_plan_limit, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    s.faults()
        .fail_route("POST", "/api/v2/resources/import", 503);
    let err = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ToolJetError::Transient {
                kind: TransientKind::Status(503),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(s.write_count(), 0, "the fault answered before any handler");

    s.faults()
        .fail_route("POST", "/api/v2/resources/import", 451);
    let err = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap_err();
    assert!(matches!(err, ToolJetError::PlanLimit { .. }), "{err}");
    assert!(!err.is_retryable());

    s.faults().reset();
    s.faults().set_error_rate(1.0, 42);
    let err = c.environments().await.unwrap_err();
    assert!(
        matches!(
            err,
            ToolJetError::Transient {
                kind: TransientKind::Status(500),
                ..
            }
        ),
        "{err}"
    );
});

flavoured!(not_found_everywhere, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    let id = "00000000-0000-4000-8000-000000000404";
    for err in [
        c.get_app(id).await.unwrap_err(),
        c.export_app(id, None).await.unwrap_err(),
        c.delete_app(id).await.unwrap_err(),
        c.release_app(id, id).await.unwrap_err(),
    ] {
        assert!(matches!(err, ToolJetError::NotFound { .. }), "{err}");
    }
});

flavoured!(unexpected_answers_are_invalid_responses, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    // A 200 whose body is not an app.
    s.faults().fail_route("GET", "/api/apps/*", 200);
    let err = c.get_app("any").await.unwrap_err();
    assert!(matches!(err, ToolJetError::InvalidResponse { .. }), "{err}");
    assert!(!err.is_retryable());
});

#[tokio::test]
async fn timeout_is_transient() {
    let s = standin().await;
    let mut cfg = config(&s, Auth::AdminApiKey(ADMIN_KEY.into()));
    cfg.request_timeout = Duration::from_millis(200);
    let c = ToolJetClient::new(cfg).unwrap();
    s.faults().set_latency(Duration::from_secs(3));
    let err = c.environments().await.unwrap_err();
    assert!(
        matches!(
            err,
            ToolJetError::Transient {
                kind: TransientKind::Timeout,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn dropped_down_and_refused_connections_are_transient() {
    let s = standin().await;
    let c = admin_client(&s);
    c.environments().await.unwrap();

    s.faults().set_drop_connections(true);
    let err = c.environments().await.unwrap_err();
    assert!(
        matches!(
            err,
            ToolJetError::Transient {
                kind: TransientKind::ConnectionClosed,
                ..
            }
        ),
        "{err}"
    );
    s.faults().reset();
    c.environments().await.unwrap();

    s.faults().set_down(true);
    let err = c.environments().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    s.faults().set_down(false);
    c.environments().await.unwrap();

    s.shutdown();
    // Shutdown is asynchronous: poll until the port refuses.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match c.environments().await {
            Err(ToolJetError::Transient {
                kind: TransientKind::ConnectionRefused,
                ..
            }) => break,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still not refused: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

flavoured!(exact_name_match_walks_all_pages, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    let bundle = fixture("base64-encoder-decoder");
    let mut names = vec!["Sales".to_string(), "sales".to_string()];
    names.extend((1..=18).map(|i| format!("Sales {i}")));
    names.push("Pre-Sales".into());
    for name in &names {
        c.import_app(&bundle, name).await.unwrap();
    }
    c.import_app(&bundle, "Unrelated").await.unwrap();
    s.clear_request_log();

    let exact = c.find_apps_by_name("Sales").await.unwrap();
    assert_eq!(exact.len(), 1);
    assert_eq!(exact[0].name, "Sales");
    // 21 matches at 9 per page is three pages.
    let list_calls = s
        .request_log()
        .iter()
        .filter(|r| r.path == "/api/apps")
        .count();
    assert_eq!(list_calls, 3);

    assert_eq!(c.list_apps_matching("sales").await.unwrap().len(), 21);
    assert_eq!(c.find_apps_by_name("Sales 17").await.unwrap().len(), 1);
    assert!(c.find_apps_by_name("Sales 99").await.unwrap().is_empty());
});

#[tokio::test]
async fn tls_with_custom_ca_and_insecure_switch() {
    let s = StandIn::builder()
        .admin_api_key(ADMIN_KEY)
        .self_signed_tls()
        .start()
        .await
        .unwrap();
    assert!(s.base_url().starts_with("https://"));

    let untrusted = admin_client(&s);
    let err = untrusted.environments().await.unwrap_err();
    assert!(matches!(err, ToolJetError::Tls { .. }), "{err}");
    assert!(!err.is_retryable());

    let mut cfg = config(&s, Auth::AdminApiKey(ADMIN_KEY.into()));
    cfg.ca_pem = Some(s.ca_pem().unwrap().as_bytes().to_vec());
    let trusted = ToolJetClient::new(cfg).unwrap();
    assert_eq!(trusted.environments().await.unwrap().len(), 3);

    let mut cfg = config(&s, Auth::AdminApiKey(ADMIN_KEY.into()));
    cfg.insecure_skip_verify = true;
    let insecure = ToolJetClient::new(cfg).unwrap();
    assert_eq!(insecure.environments().await.unwrap().len(), 3);
}

#[tokio::test]
async fn configuration_errors() {
    let s = standin().await;
    let mut cfg = config(&s, Auth::AdminApiKey(ADMIN_KEY.into()));
    cfg.ca_pem = Some(b"not a pem".to_vec());
    assert!(matches!(
        ToolJetClient::new(cfg),
        Err(ToolJetError::Config(_))
    ));

    let mut cfg = config(&s, Auth::AdminApiKey(ADMIN_KEY.into()));
    cfg.workspace_id = None;
    assert!(matches!(
        ToolJetClient::new(cfg),
        Err(ToolJetError::Config(_))
    ));

    let cfg = ClientConfig::new(
        "http://user:pw@127.0.0.1:1",
        Auth::AdminApiKey(ADMIN_KEY.into()),
    );
    assert!(matches!(
        ToolJetClient::new(cfg),
        Err(ToolJetError::Config(_))
    ));

    let c = admin_client(&s);
    let err = c.import_app(&json!({"app": []}), "X").await.unwrap_err();
    assert!(matches!(err, ToolJetError::Config(_)), "{err}");
}

/// A client of the stand-in's flavour that shares its listings of apps by name for `reuse`.
fn sharing_client(s: &StandIn, reuse: Duration) -> ToolJetClient {
    let auth = match s.flavour() {
        Flavour::V2_27 => Auth::Password {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
        Flavour::V3 => Auth::AdminApiKey(ADMIN_KEY.into()),
    };
    let mut config = config(s, auth);
    config.reuse_app_lists = reuse;
    ToolJetClient::new(config).unwrap()
}

fn app_listings(s: &StandIn) -> usize {
    s.request_log()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/apps")
        .count()
}

/// The names of a shared listing, which must fit in one answer.
async fn shared_names(c: &ToolJetClient) -> Vec<String> {
    let listed = c.list_apps_matching_shared("tjop-").await.unwrap();
    let mut names: Vec<String> = listed
        .expect("fits in one answer")
        .iter()
        .map(|a| a.name.clone())
        .collect();
    names.sort();
    names
}

flavoured!(
    a_shared_listing_is_one_answer_reused_until_the_client_writes,
    flavour,
    {
        let s = standin_of(flavour, None).await;
        let c = sharing_client(&s, Duration::from_secs(3600));
        let bundle = fixture("orders-report");
        let mut ids = Vec::new();
        for i in 1..=11 {
            let name = format!("tjop-tmp-{i:02}");
            ids.push(c.import_app(&bundle, &name).await.unwrap().id);
        }
        c.import_app(&bundle, "Orders").await.unwrap();
        s.clear_request_log();

        // 11 matches at 9 per page: more than one answer holds, so no snapshot (one request),
        // and that answer is shared too.
        assert!(
            c.list_apps_matching_shared("tjop-")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            c.list_apps_matching_shared("tjop-")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(app_listings(&s), 1);

        // Two deletions by this client: 9 left, one answer, then reused.
        c.delete_app(&ids[0]).await.unwrap();
        c.delete_app(&ids[1]).await.unwrap();
        let nine = shared_names(&c).await;
        assert_eq!(nine.len(), 9);
        assert_eq!(shared_names(&c).await, nine);
        assert_eq!(app_listings(&s), 2, "reused within the window");

        // A write of this client ends the reuse: the next listing shows what it did.
        let rename = AppUpdate {
            name: Some("Renamed".into()),
            slug: None,
        };
        c.update_app(&ids[2], &rename).await.unwrap();
        assert!(!shared_names(&c).await.contains(&"tjop-tmp-03".to_string()));
        c.import_app(&bundle, "tjop-tmp-new").await.unwrap();
        assert!(shared_names(&c).await.contains(&"tjop-tmp-new".to_string()));
        assert_eq!(app_listings(&s), 4);
        // A failed write counts too: it may have reached ToolJet.
        let failed = c.import_app(&bundle, "Orders").await;
        assert!(
            matches!(failed, Err(ToolJetError::NameTaken { .. })),
            "{failed:?}"
        );
        shared_names(&c).await;
        assert_eq!(app_listings(&s), 5);
        // Another client's write is not this client's: its listing is kept for the window.
        let other = client_of(&s);
        other.delete_app(&ids[3]).await.unwrap();
        assert!(shared_names(&c).await.contains(&"tjop-tmp-04".to_string()));
        assert_eq!(app_listings(&s), 5);
        // Without a window, every call lists.
        let plain = sharing_client(&s, Duration::ZERO);
        for _ in 0..2 {
            assert!(
                !shared_names(&plain)
                    .await
                    .contains(&"tjop-tmp-04".to_string())
            );
        }
        assert_eq!(app_listings(&s), 7);
    }
);

async fn standin_of(flavour: Flavour, version: Option<&str>) -> StandIn {
    let mut b = StandIn::builder()
        .flavour(flavour)
        .credentials(EMAIL, PASSWORD)
        .admin_api_key(ADMIN_KEY);
    if let Some(v) = version {
        b = b.server_version(v);
    }
    b.start().await.unwrap()
}

fn requests(s: &StandIn, method: &str, path_prefix: &str) -> usize {
    s.request_log()
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(path_prefix))
        .count()
}

#[tokio::test]
async fn release_uses_the_route_of_each_family_and_is_verified() {
    for (flavour, family) in [(Flavour::V2_27, Family::V2), (Flavour::V3, Family::V3)] {
        let s = standin_of(flavour, None).await;
        let c = password_client(&s);
        c.check().await.unwrap();
        let version = c.known_server_version().expect("check reads the version");
        assert_eq!(version.raw, s.server_version());
        assert_eq!(c.family().await.unwrap(), family);

        let imported = c
            .import_app(&fixture("base64-encoder-decoder"), "B64")
            .await
            .unwrap();
        let editing = c
            .get_app(&imported.id)
            .await
            .unwrap()
            .editing_version
            .unwrap();
        s.clear_request_log();
        let released = c.release_app(&imported.id, &editing.id).await.unwrap();
        assert_eq!(
            released.current_version_id.as_deref(),
            Some(editing.id.as_str())
        );
        let app = s.apps().into_iter().find(|a| a.id == imported.id).unwrap();
        assert_eq!(
            app.current_version_id.as_deref(),
            Some(editing.id.as_str()),
            "{flavour}"
        );
        let release_route = format!("/api/apps/{}/release", imported.id);
        let (via_release, via_put) = (
            requests(&s, "PUT", &release_route),
            s.request_log()
                .iter()
                .filter(|r| r.method == "PUT" && r.path == format!("/api/apps/{}", imported.id))
                .count(),
        );
        match family {
            Family::V3 => assert_eq!((via_release, via_put), (1, 0), "{flavour}"),
            Family::V2 => assert_eq!((via_release, via_put), (0, 1), "{flavour}"),
        }
        assert_eq!(
            requests(&s, "GET", "/api/metadata"),
            0,
            "the version is cached"
        );
    }
}

#[tokio::test]
async fn the_version_is_read_once_and_again_after_a_new_login() {
    let s = standin_of(Flavour::V2_27, None).await;
    let c = password_client(&s);
    c.check().await.unwrap();
    c.find_apps_by_name("x").await.unwrap();
    c.family().await.unwrap();
    assert_eq!(requests(&s, "GET", "/api/metadata"), 1);
    s.expire_sessions();
    c.environments().await.unwrap();
    assert!(c.known_server_version().is_none(), "forgotten on re-login");
    assert_eq!(c.family().await.unwrap(), Family::V2);
    assert_eq!(requests(&s, "GET", "/api/metadata"), 2);
}

#[tokio::test]
async fn unknown_and_unsupported_versions_are_refused_clearly() {
    for version in ["2.26.3", "1.9.0", "4.0.0", "nightly"] {
        let s = standin_of(Flavour::V3, Some(version)).await;
        let c = password_client(&s);
        let err = c.check().await.unwrap_err();
        assert!(
            matches!(&err, ToolJetError::UnsupportedServerVersion { .. }),
            "{version}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(version), "{text}");
        assert!(text.contains("2.27") && text.contains("3.x"), "{text}");
        assert!(!err.is_retryable());
        let err = c
            .release_app("00000000-0000-4000-8000-000000000001", "v")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ToolJetError::UnsupportedServerVersion { .. }),
            "{err}"
        );
        assert_eq!(s.write_count(), 0, "{version}: nothing written");
    }
}

#[tokio::test]
async fn a_missing_route_is_not_a_deleted_app() {
    // A 2.27 server claiming 3.x: the client takes the 3.x release route, which 2.27 lacks.
    let s = standin_of(Flavour::V2_27, Some("3.0.15")).await;
    let c = password_client(&s);
    let imported = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap();
    let editing = c
        .get_app(&imported.id)
        .await
        .unwrap()
        .editing_version
        .unwrap();
    let err = c.release_app(&imported.id, &editing.id).await.unwrap_err();
    assert!(matches!(err, ToolJetError::RouteMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(!text.contains("deleted"), "{text}");
    assert!(
        text.contains("no such route") && text.contains("serverVersion"),
        "{text}"
    );
    // A genuinely missing app is still NotFound.
    let err = c
        .get_app("00000000-0000-4000-8000-000000000404")
        .await
        .unwrap_err();
    assert!(matches!(err, ToolJetError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_release_that_changes_nothing_is_an_error() {
    // A 3.x server claiming 2.x: the client releases with PUT /apps/:id, which 3.x ignores.
    let s = standin_of(Flavour::V3, Some("2.40.0")).await;
    let c = password_client(&s);
    let imported = c
        .import_app(&fixture("base64-encoder-decoder"), "B64")
        .await
        .unwrap();
    let editing = c
        .get_app(&imported.id)
        .await
        .unwrap()
        .editing_version
        .unwrap();
    let err = c.release_app(&imported.id, &editing.id).await.unwrap_err();
    match &err {
        ToolJetError::ReleaseNotApplied {
            version_id, found, ..
        } => {
            assert_eq!(version_id, &editing.id);
            assert_eq!(found, "none");
        }
        other => panic!("expected ReleaseNotApplied, got {other}"),
    }
}

#[tokio::test]
async fn version_2_27_specifics_reach_the_caller_clearly() {
    let s = standin_of(Flavour::V2_27, None).await;
    // No admin API key on 2.x: the 401 says what to do.
    let err = admin_client(&s).environments().await.unwrap_err();
    assert!(matches!(err, ToolJetError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("use password auth"), "{err}");
    // Export of an unknown app is a 500 on 2.27: the client tells it is not found.
    let c = password_client(&s);
    let err = c
        .export_app("00000000-0000-4000-8000-000000000404", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ToolJetError::NotFound { .. }), "{err}");
    // 409 and the 2.27 messages on rename; validation errors carry a list.
    let bundle = fixture("base64-encoder-decoder");
    let a = c.import_app(&bundle, "A").await.unwrap();
    let b = c.import_app(&bundle, "B").await.unwrap();
    let err = c.import_app(&bundle, "A").await.unwrap_err();
    assert!(
        matches!(err, ToolJetError::NameTaken { .. }),
        "409 on import: {err}"
    );
    let rename = |name: &str| AppUpdate {
        name: Some(name.into()),
        slug: None,
    };
    let err = c.update_app(&b.id, &rename("A")).await.unwrap_err();
    assert!(matches!(err, ToolJetError::NameTaken { .. }), "{err}");
    let slug = c.get_app(&a.id).await.unwrap().slug;
    let err = c
        .update_app(
            &b.id,
            &AppUpdate {
                name: None,
                slug: Some(slug),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolJetError::SlugTaken { .. }), "{err}");
    let err = c
        .update_app(&b.id, &rename(&"L".repeat(51)))
        .await
        .unwrap_err();
    match &err {
        ToolJetError::Rejected {
            status: 400,
            detail,
            ..
        } => {
            assert_eq!(detail, "Maximum length has been reached.")
        }
        other => panic!("expected a 400, got {other}"),
    }
}

// An import body over ToolJet's 50 MB limit is refused by the client before it is sent: 2.x
// answers such a body with a 500, which would read as a passing fault and be retried forever.
flavoured!(an_import_over_the_body_limit_is_refused_unsent, flavour, {
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    c.check().await.unwrap();
    let mut bundle = fixture("base64-encoder-decoder");
    bundle["app"][0]["definition"]["appV2"]["icon"] =
        json!("x".repeat(tooljet_operator::tooljet::MAX_REQUEST_BODY));
    let before = s.request_log().len();
    let err = c.import_app(&bundle, "Huge").await.unwrap_err();
    match &err {
        ToolJetError::BodyTooLarge { size, limit, .. } => {
            assert!(size > limit, "{size} > {limit}")
        }
        other => panic!("expected BodyTooLarge, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(s.request_log().len(), before, "nothing sent");
    assert!(s.apps().is_empty());
});

// Data sources with each family's routes: list, create (global, non-secret options only), free
// from an app version; and the queries of an app with the data sources they use.
flavoured!(data_sources_with_the_routes_of_each_family, flavour, {
    use tooljet_operator::tooljet::DataSourceOption;
    let s = standin_of(flavour, None).await;
    let c = client_of(&s);
    assert!(c.data_sources().await.unwrap().is_empty());
    let imported = c
        .import_app(&fixture("orders-report"), "Report")
        .await
        .unwrap();
    let listed = c.data_sources().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let db = &listed[0];
    assert_eq!(
        (db.name.as_str(), db.kind.as_str()),
        ("orders-db", "postgresql")
    );
    assert_eq!(db.scope.as_deref(), Some("global"));
    let app = c.get_app(&imported.id).await.unwrap();
    let version = app.editing_version.as_ref().unwrap().id.clone();
    // 2.27: the import's version owns the data source it created; 3.x: no version.
    assert_eq!(
        db.app_version_id.as_deref(),
        (flavour == Flavour::V2_27).then_some(version.as_str())
    );
    let queries = app.data_queries.clone().unwrap_or_default();
    assert_eq!(queries.len(), 2);
    assert!(
        queries
            .iter()
            .all(|q| q.data_source_id.as_deref() == Some(db.id.as_str())
                && q.kind.as_deref() == Some("postgresql")),
        "{queries:?}"
    );

    c.make_data_source_global(&db.id).await.unwrap();
    let listed = c.data_sources().await.unwrap();
    assert_eq!(listed[0].app_version_id, None);

    let id = c
        .create_data_source(
            "shipping-api",
            "restapi",
            &[DataSourceOption {
                key: "url".into(),
                value: json!("https://shipping.example.com"),
                encrypted: false,
            }],
        )
        .await
        .unwrap();
    let listed = c.data_sources().await.unwrap();
    let created = listed.iter().find(|d| d.id == id).unwrap();
    assert_eq!(created.name, "shipping-api");
    assert_eq!(created.scope.as_deref(), Some("global"));
    assert_eq!(created.app_version_id, None);
    let stored = s.data_sources();
    let stored = stored.iter().find(|d| d.id == id).unwrap();
    assert_eq!(
        stored.options["url"]["value"],
        "https://shipping.example.com"
    );
});
