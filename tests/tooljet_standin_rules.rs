//! The stand-in's own rules, checked over raw HTTP against contract §2 and §3.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tooljet_standin::{MSG_NAME_TAKEN, MSG_TOO_NEW, StandIn};

const KEY: &str = "dev-key";
const TOKEN: &str = "ext-token";

fn fixture() -> Value {
    let path = format!(
        "{}/tests/fixtures/tooljet-apps/base64-encoder-decoder.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn setup() -> (StandIn, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = StandIn::builder()
        .credentials("a@example.com", "pw")
        .admin_api_key(KEY)
        .external_token(TOKEN)
        .start()
        .await
        .unwrap();
    (s, Client::new())
}

fn url(s: &StandIn, path: &str) -> String {
    format!("{}{path}", s.base_url())
}

async fn admin(
    s: &StandIn,
    c: &Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c
        .request(method, url(s, path))
        .header("tj-admin-api-key", KEY)
        .header("tj-workspace-id", s.workspace_id());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn import_body(s: &StandIn, name: &str) -> Value {
    let b = fixture();
    json!({
        "organization_id": s.workspace_id(),
        "tooljet_version": b["tooljet_version"],
        "app": [{"definition": b["app"][0]["definition"], "appName": name}],
        "tooljet_database": [],
    })
}

fn assert_nest(body: &Value, status: u16) {
    assert_eq!(body["statusCode"], status, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn session_needs_cookie_and_workspace_header() {
    let (s, c) = setup().await;
    let resp = c
        .post(url(&s, "/api/authenticate"))
        .json(&json!({"email": "a@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("tj_auth_token="), "{cookie}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["current_organization_id"], s.workspace_id());
    let cookie = cookie.split(';').next().unwrap().to_string();

    let only_cookie = c
        .get(url(&s, "/api/apps"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(only_cookie.status(), StatusCode::UNAUTHORIZED);
    assert_nest(&only_cookie.json().await.unwrap(), 401);

    let both = c
        .get(url(&s, "/api/apps"))
        .header("cookie", &cookie)
        .header("tj-workspace-id", s.workspace_id())
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::OK);

    let bad_login = c
        .post(url(&s, "/api/authenticate"))
        .json(&json!({"email": "a@example.com", "password": "no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), StatusCode::UNAUTHORIZED);
    let other_ws = c
        .post(url(
            &s,
            "/api/authenticate/00000000-0000-4000-8000-000000000000",
        ))
        .json(&json!({"email": "a@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_ws.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_key_rules() {
    let (s, c) = setup().await;
    let no_ws = c
        .get(url(&s, "/api/apps"))
        .header("tj-admin-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(no_ws.status(), StatusCode::BAD_REQUEST);
    assert_nest(&no_ws.json().await.unwrap(), 400);
    let bad_key = c
        .get(url(&s, "/api/apps"))
        .header("tj-admin-api-key", "nope")
        .header("tj-workspace-id", s.workspace_id())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn external_api_rules_and_camel_case() {
    let (s, c) = setup().await;
    let path = format!("/api/ext/workspace/{}/apps", s.workspace_id());
    for auth in [
        None,
        Some("Basic nope".to_string()),
        Some(format!("Bearer {TOKEN}")),
    ] {
        let mut req = c.get(url(&s, &path));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_nest(&resp.json().await.unwrap(), 403);
    }
    let b = fixture();
    let resp = c
        .post(url(
            &s,
            &format!("/api/ext/import/workspace/{}/apps", s.workspace_id()),
        ))
        .header("authorization", format!("Basic {TOKEN}"))
        .json(&json!({"tooljet_version": b["tooljet_version"], "app": [{"definition": b["app"][0]["definition"]}], "appName": "Ext"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].is_string());
    assert!(body.get("id").is_none(), "the external API returns no id");

    let list: Value = c
        .get(url(&s, &path))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "Ext");
    assert_eq!(list[0]["organizationId"], s.workspace_id());
    assert_eq!(list[0]["versions"][0]["name"], "v1");
}

#[tokio::test]
async fn import_rules() {
    let (s, c) = setup().await;
    let post = reqwest::Method::POST;
    let (status, body) = admin(
        &s,
        &c,
        post.clone(),
        "/api/v2/resources/import",
        Some(import_body(&s, "A")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["success"], true);
    assert_eq!(body["imports"]["app"][0]["name"], "A");
    assert!(body["imports"]["tableNameMapping"].is_object());

    let (status, body) = admin(
        &s,
        &c,
        post.clone(),
        "/api/v2/resources/import",
        Some(import_body(&s, " A ")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], MSG_NAME_TAKEN);

    let mut too_new = import_body(&s, "B");
    too_new["tooljet_version"] = json!("3.5.12-ee-lts");
    let (status, body) = admin(
        &s,
        &c,
        post.clone(),
        "/api/v2/resources/import",
        Some(too_new),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], MSG_TOO_NEW);

    let mut foreign = import_body(&s, "C");
    foreign["organization_id"] = json!("00000000-0000-4000-8000-000000000000");
    let (status, _) = admin(
        &s,
        &c,
        post.clone(),
        "/api/v2/resources/import",
        Some(foreign),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // 50 MB body limit, answered NestJS-style.
    let mut huge = import_body(&s, "D");
    huge["padding"] = json!("x".repeat(50 * 1024 * 1024 + 1));
    let (status, body) = admin(&s, &c, post, "/api/v2/resources/import", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_nest(&body, 413);
    assert_eq!(s.apps().len(), 1);
}

#[tokio::test]
async fn listing_is_paged_by_nine_with_substring_search() {
    let (s, c) = setup().await;
    for i in 0..11 {
        let (status, _) = admin(
            &s,
            &c,
            reqwest::Method::POST,
            "/api/v2/resources/import",
            Some(import_body(&s, &format!("Report {i}"))),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    admin(
        &s,
        &c,
        reqwest::Method::POST,
        "/api/v2/resources/import",
        Some(import_body(&s, "Other")),
    )
    .await;
    let get = |page: u32| {
        let path = format!("/api/apps?page={page}&searchKey=rEpOrT&type=front-end");
        let (s, c) = (&s, &c);
        async move { admin(s, c, reqwest::Method::GET, &path, None).await }
    };
    let (status, p1) = get(1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p1["apps"].as_array().unwrap().len(), 9);
    assert_eq!(p1["meta"]["total_count"], 11);
    assert!(
        p1["apps"][0]["current_version_id"].is_null(),
        "not released"
    );
    let (_, p2) = get(2).await;
    assert_eq!(p2["apps"].as_array().unwrap().len(), 2);

    // Release needs a version of the app.
    let id = p1["apps"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = admin(
        &s,
        &c,
        reqwest::Method::PUT,
        &format!("/api/apps/{id}/release"),
        Some(json!({"versionToBeReleased": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn constants_rules_and_unknown_routes() {
    let (s, c) = setup().await;
    let post = reqwest::Method::POST;
    let (status, _) = admin(
        &s,
        &c,
        post.clone(),
        "/api/organization-constants",
        Some(json!({"constant_name": "1bad", "value": "v", "type": "Global", "environments": []})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin(
        &s,
        &c,
        post,
        "/api/organization-constants",
        Some(json!({"constant_name": "ok", "value": "", "type": "Global", "environments": []})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = admin(&s, &c, reqwest::Method::GET, "/api/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_nest(&body, 404);
}
