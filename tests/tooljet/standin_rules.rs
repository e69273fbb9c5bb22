//! The stand-in's own rules, checked over raw HTTP against contract §2 and §3.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tooljet_standin::{Flavour, MSG_NAME_TAKEN, MSG_SLUG_TAKEN, MSG_TOO_NEW, StandIn};

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

/// ToolJet's error body: `{statusCode, timestamp, path, message}` and nothing else (D1).
fn assert_nest(body: &Value, status: u16) {
    assert_eq!(body["statusCode"], status, "{body}");
    assert!(
        body["message"].is_string() || body["message"].is_array(),
        "{body}"
    );
    assert!(body["timestamp"].is_string(), "{body}");
    assert!(
        body["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/api/")),
        "{body}"
    );
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["message", "path", "statusCode", "timestamp"],
        "{body}"
    );
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

    // 50 MB body limit: the body parser throws and ToolJet answers 500 (D15).
    let mut huge = import_body(&s, "D");
    huge["padding"] = json!("x".repeat(50 * 1024 * 1024 + 1));
    let (status, body) = admin(&s, &c, post, "/api/v2/resources/import", Some(huge)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_nest(&body, 500);
    assert_eq!(body["message"], "request entity too large");
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
    assert_eq!(body["message"], "Cannot GET /api/nothing-here");
    assert_eq!(body["path"], "/api/nothing-here");
}

/// A password session on a stand-in of `flavour`: (stand-in, client, cookie).
async fn session(flavour: Flavour) -> (StandIn, Client, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = StandIn::builder()
        .flavour(flavour)
        .credentials("a@example.com", "pw")
        .admin_api_key(KEY)
        .start()
        .await
        .unwrap();
    let c = Client::new();
    let resp = c
        .post(url(&s, &format!("/api/authenticate/{}", s.workspace_id())))
        .json(&json!({"email": "a@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    (s, c, cookie)
}

async fn call(
    s: &StandIn,
    c: &Client,
    cookie: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c
        .request(method, url(s, path))
        .header("cookie", cookie)
        .header("tj-workspace-id", s.workspace_id());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn metadata_tells_the_version_of_each_flavour() {
    for (flavour, version) in [(Flavour::V2_27, "2.27.1"), (Flavour::V3, "3.5.11")] {
        let (s, c, cookie) = session(flavour).await;
        assert_eq!(s.server_version(), version);
        let (status, body) =
            call(&s, &c, &cookie, reqwest::Method::GET, "/api/metadata", None).await;
        assert_eq!(status, StatusCode::OK, "{flavour}");
        assert_eq!(body["installed_version"], version, "{flavour}");
        assert_eq!(body["instance_id"].is_string(), flavour == Flavour::V3);
        let anonymous = c.get(url(&s, "/api/metadata")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    }
    let s = StandIn::builder()
        .flavour(Flavour::V2_27)
        .server_version("2.50.0")
        .start()
        .await
        .unwrap();
    assert_eq!(s.server_version(), "2.50.0");
}

/// Both flavours, as 2.27-vs-contract.md tags CONTRACT: 409 and 2.27's messages on rename,
/// `PUT` answers an update result, a body without `{app: …}` changes nothing, validation
/// errors carry a list, names are case-sensitive.
#[tokio::test]
async fn rename_answers_as_the_real_server_on_both_flavours() {
    for flavour in Flavour::ALL {
        let (s, c, cookie) = session(flavour).await;
        let put = reqwest::Method::PUT;
        let post = reqwest::Method::POST;
        for name in ["Alpha", "alpha", "Beta"] {
            let (status, _) = call(
                &s,
                &c,
                &cookie,
                post.clone(),
                "/api/v2/resources/import",
                Some(import_body(&s, name)),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::CREATED,
                "{flavour}: names are case-sensitive"
            );
        }
        let apps = s.apps();
        let (alpha, beta) = (&apps[0], &apps[2]);
        let path = format!("/api/apps/{}", beta.id);

        let (status, body) = call(
            &s,
            &c,
            &cookie,
            put.clone(),
            &path,
            Some(json!({"app": {"name": "  Gamma  ", "slug": "gamma"}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{flavour}");
        assert_eq!(
            body,
            json!({"generated_maps": [], "raw": [], "affected": 1}),
            "{flavour}"
        );
        let beta_now = s.apps().into_iter().find(|a| a.id == beta.id).unwrap();
        assert_eq!(
            (beta_now.name.as_str(), beta_now.slug.as_str()),
            ("Gamma", "gamma")
        );

        let (status, body) = call(
            &s,
            &c,
            &cookie,
            put.clone(),
            &path,
            Some(json!({"name": "Unwrapped"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{flavour}");
        assert_eq!(body["affected"], 1);
        assert_eq!(
            s.apps()[2].name,
            "Gamma",
            "{flavour}: no wrapper, no change"
        );

        let (status, body) = call(
            &s,
            &c,
            &cookie,
            put.clone(),
            &path,
            Some(json!({"app": {"name": "Alpha"}})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{flavour}");
        assert_nest(&body, 409);
        assert_eq!(body["message"], MSG_NAME_TAKEN);
        assert_eq!(body["path"], path);

        let (status, body) = call(
            &s,
            &c,
            &cookie,
            put.clone(),
            &path,
            Some(json!({"app": {"slug": alpha.slug}})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{flavour}");
        assert_eq!(body["message"], MSG_SLUG_TAKEN);
        assert_eq!(MSG_SLUG_TAKEN, "This app slug is already taken.");

        let (status, body) = call(
            &s,
            &c,
            &cookie,
            put,
            &path,
            Some(json!({"app": {"name": "L".repeat(51)}})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{flavour}");
        assert_nest(&body, 400);
        assert_eq!(body["message"], json!(["Maximum length has been reached."]));
    }
}

/// What only 2.27.1 does (VERSION and UNSURE in 2.27-vs-contract.md), and that 3.x does not.
#[tokio::test]
async fn flavour_2_27_answers_as_recorded() {
    let (s, c, cookie) = session(Flavour::V2_27).await;
    let (get, post, put) = (
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::PUT,
    );

    // No admin API key (D16), even the configured one.
    let (status, body) = admin(&s, &c, get.clone(), "/api/apps", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_nest(&body, 401);

    // No version check (D5); no tableNameMapping (D4); names verbatim and unlimited (D7, D8).
    let mut too_new = import_body(&s, "   Padded   ");
    too_new["tooljet_version"] = json!("99.0.0");
    let (status, body) = call(
        &s,
        &c,
        &cookie,
        post.clone(),
        "/api/v2/resources/import",
        Some(too_new),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["imports"]["app"][0]["name"], "   Padded   ");
    assert!(body["imports"].get("tableNameMapping").is_none(), "{body}");
    let long = "L".repeat(51);
    let (status, _) = call(
        &s,
        &c,
        &cookie,
        post.clone(),
        "/api/v2/resources/import",
        Some(import_body(&s, &long)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // A taken name on import is the constraint's 409 (E10).
    let (status, body) = call(
        &s,
        &c,
        &cookie,
        post.clone(),
        "/api/v2/resources/import",
        Some(import_body(&s, &long)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], MSG_NAME_TAKEN);

    // No release route (D9): release with PUT /apps/:id {app:{current_version_id}}.
    let app = s.apps()[0].clone();
    let release = format!("/api/apps/{}/release", app.id);
    let (status, body) = call(
        &s,
        &c,
        &cookie,
        put.clone(),
        &release,
        Some(json!({"versionToBeReleased": app.editing_version_id})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("Cannot PUT {release}"));
    assert!(s.apps()[0].current_version_id.is_none());
    let path = format!("/api/apps/{}", app.id);
    let (status, body) = call(
        &s,
        &c,
        &cookie,
        put.clone(),
        &path,
        Some(json!({"app": {"current_version_id": app.editing_version_id}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["affected"], 1);
    let (_, read) = call(&s, &c, &cookie, get.clone(), &path, None).await;
    assert_eq!(read["current_version_id"], json!(app.editing_version_id));
    assert!(read.get("type").is_none(), "2.27 apps have no type: {read}");

    // `type` is ignored in listings (D10).
    let (_, modules) = call(
        &s,
        &c,
        &cookie,
        get.clone(),
        "/api/apps?page=1&type=module",
        None,
    )
    .await;
    assert_eq!(modules["apps"].as_array().unwrap().len(), 2);

    // Export of an unknown app is a 500 (D14).
    let unknown = json!({"organization_id": s.workspace_id(), "app": [{"id": "00000000-0000-4000-8000-000000000000"}]});
    let (status, body) = call(
        &s,
        &c,
        &cookie,
        post.clone(),
        "/api/v2/resources/export",
        Some(unknown),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_nest(&body, 500);

    // A foreign workspace in the body fails on the foreign key (D6).
    let mut foreign = import_body(&s, "Foreign");
    foreign["organization_id"] = json!("11111111-1111-4111-8111-111111111111");
    let (status, _) = call(
        &s,
        &c,
        &cookie,
        post,
        "/api/v2/resources/import",
        Some(foreign),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // CE has no external API (E8).
    let ext = format!("/api/ext/workspace/{}/apps", s.workspace_id());
    let (status, body) = call(&s, &c, &cookie, get, &ext, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("Cannot GET {ext}"));
    assert_eq!(s.apps().len(), 2);
}

/// The same requests on 3.x keep the contract (VERSION).
#[tokio::test]
async fn flavour_3_keeps_the_contract_where_2_27_differs() {
    let (s, c, cookie) = session(Flavour::V3).await;
    let (status, _) = admin(&s, &c, reqwest::Method::GET, "/api/apps", None).await;
    assert_eq!(status, StatusCode::OK, "the admin API key works");
    let mut too_new = import_body(&s, "New");
    too_new["tooljet_version"] = json!("99.0.0");
    let (status, body) = call(
        &s,
        &c,
        &cookie,
        reqwest::Method::POST,
        "/api/v2/resources/import",
        Some(too_new),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], MSG_TOO_NEW);
    let (status, _) = call(
        &s,
        &c,
        &cookie,
        reqwest::Method::POST,
        "/api/v2/resources/import",
        Some(import_body(&s, "A")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let app = s.apps()[0].clone();
    let path = format!("/api/apps/{}", app.id);
    let (status, _) = call(
        &s,
        &c,
        &cookie,
        reqwest::Method::PUT,
        &path,
        Some(json!({"app": {"current_version_id": app.editing_version_id}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        s.apps()[0].current_version_id.is_none(),
        "3.x releases only through its release route"
    );
    let (status, _) = call(
        &s,
        &c,
        &cookie,
        reqwest::Method::PUT,
        &format!("{path}/release"),
        Some(json!({"versionToBeReleased": app.editing_version_id})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.apps()[0].current_version_id.as_deref(),
        Some(app.editing_version_id.as_str())
    );
    let unknown = json!({"organization_id": s.workspace_id(), "app": [{"id": "00000000-0000-4000-8000-000000000000"}]});
    let (status, _) = call(
        &s,
        &c,
        &cookie,
        reqwest::Method::POST,
        "/api/v2/resources/export",
        Some(unknown),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn orders_import(s: &StandIn, fixture: &str, name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/tooljet-apps/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let b: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json!({
        "organization_id": s.workspace_id(),
        "tooljet_version": b["tooljet_version"],
        "app": [{"definition": b["app"][0]["definition"], "appName": name}],
    })
}

/// `(query name, data source id)` of `GET /apps/:id`.
async fn app_queries(s: &StandIn, c: &Client, cookie: &str, id: &str) -> Vec<(String, String)> {
    let (status, body) = call(
        s,
        c,
        cookie,
        reqwest::Method::GET,
        &format!("/api/apps/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data_queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap().to_string(),
                q["data_source_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Import binds a bundle's data sources as config-api.md §4.1 says (id, then name + kind, else a
/// new global one without secrets); on 2.27 a data source an import created belongs to that
/// app's version and deleting the app deletes it and every query using it, in every app (§4.2,
/// R2–R4); 3.x keeps it. Deleting a data source deletes its queries on both (D40).
#[tokio::test]
async fn import_binds_data_sources_and_deletes_cascade_as_recorded() {
    use reqwest::Method;
    for flavour in Flavour::ALL {
        let (s, c, cookie) = session(flavour).await;
        let prefix = match flavour {
            Flavour::V2_27 => "/api/v2/data_sources",
            Flavour::V3 => "/api/data-sources",
        };
        let list_path = match flavour {
            Flavour::V2_27 => prefix.to_string(),
            Flavour::V3 => format!("{prefix}/{}", s.workspace_id()),
        };
        let (status, a) = call(
            &s,
            &c,
            &cookie,
            Method::POST,
            "/api/v2/resources/import",
            Some(orders_import(&s, "orders-dashboard", "A")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        let a = a["imports"]["app"][0]["id"].as_str().unwrap().to_string();
        let sources = s.data_sources();
        assert_eq!(sources.len(), 2, "{flavour}: {sources:?}");
        let db = sources.iter().find(|d| d.name == "orders-db").unwrap();
        assert_eq!(db.kind, "postgresql");
        assert_eq!(db.options["host"]["value"], "orders-db.dev.internal");
        assert_eq!(db.options["port"]["value"], 5432);
        assert_eq!(db.options["password"]["encrypted"], true);
        assert!(db.options["password"].get("value").is_none());
        let a_app = s.apps().into_iter().find(|x| x.id == a).unwrap();
        assert_eq!(
            db.app_version_id.as_deref(),
            (flavour == Flavour::V2_27).then_some(a_app.editing_version_id.as_str()),
            "{flavour}"
        );
        let qa = app_queries(&s, &c, &cookie, &a).await;
        assert_eq!(qa.len(), 4, "{flavour}: {qa:?}");
        assert_eq!(qa.iter().filter(|(_, d)| *d == db.id).count(), 2);

        // B links to A's data source (by id here), creating nothing.
        let (_, b) = call(
            &s,
            &c,
            &cookie,
            Method::POST,
            "/api/v2/resources/import",
            Some(orders_import(&s, "orders-report", "B")),
        )
        .await;
        let b = b["imports"]["app"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(s.data_sources().len(), 2);
        let qb = app_queries(&s, &c, &cookie, &b).await;
        assert_eq!(qb.len(), 2);
        assert!(qb.iter().all(|(_, d)| *d == db.id), "{qb:?}");

        // The list: global, non-static, with owner and options; an unknown environment: none.
        let (status, list) = call(&s, &c, &cookie, Method::GET, &list_path, None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let listed = list["data_sources"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        let row = listed.iter().find(|d| d["name"] == "orders-db").unwrap();
        assert_eq!(row["scope"], "global");
        assert_eq!(row["type"], "default");
        assert_eq!(row["app_version_id"].as_str(), db.app_version_id.as_deref());
        let (_, none) = call(
            &s,
            &c,
            &cookie,
            Method::GET,
            &format!("{list_path}?environmentId=00000000-0000-4000-8000-000000000000"),
            None,
        )
        .await;
        assert_eq!(none["data_sources"], json!([]));
        // The other family's routes do not exist.
        let other = match flavour {
            Flavour::V2_27 => format!("/api/data-sources/{}", s.workspace_id()),
            Flavour::V3 => "/api/v2/data_sources".to_string(),
        };
        let (status, _) = call(&s, &c, &cookie, Method::GET, &other, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{flavour}: {other}");

        // Deleting A: on 2.27 orders-db goes with it, and B's queries with orders-db.
        let (status, _) = call(
            &s,
            &c,
            &cookie,
            Method::DELETE,
            &format!("/api/apps/{a}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let qb = app_queries(&s, &c, &cookie, &b).await;
        match flavour {
            Flavour::V2_27 => {
                assert!(qb.is_empty(), "R4c: B lost its queries: {qb:?}");
                assert!(s.data_sources().iter().all(|d| d.name != "orders-db"));
            }
            Flavour::V3 => {
                assert_eq!(qb.len(), 2);
                assert!(s.data_sources().iter().any(|d| d.id == db.id));
            }
        }

        // Created through the API (no version), a data source is reused by name + kind and
        // survives its importer's deletion; /scope frees one an import created (R7).
        let (status, created) = call(
            &s,
            &c,
            &cookie,
            Method::POST,
            prefix,
            Some(json!({"name": "orders-db", "kind": "postgresql", "scope": "global",
                        "options": [{"key": "host", "value": "pg.prod.internal", "encrypted": false},
                                    {"key": "password", "value": "never-kept", "encrypted": true}]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let api_db = created["id"].as_str().unwrap().to_string();
        assert!(!format!("{:?}", s.data_sources()).contains("never-kept"));
        if flavour == Flavour::V3 {
            // The earlier orders-db is still there on 3.x: drop it so the name match is unique.
            let (status, _) = call(
                &s,
                &c,
                &cookie,
                Method::DELETE,
                &format!("{prefix}/{}", db.id),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            // D40: deleting a data source deletes its queries.
            assert!(app_queries(&s, &c, &cookie, &b).await.is_empty());
        }
        let (_, c_app) = call(
            &s,
            &c,
            &cookie,
            Method::POST,
            "/api/v2/resources/import",
            Some(orders_import(&s, "orders-dashboard", "C")),
        )
        .await;
        let c_id = c_app["imports"]["app"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let qc = app_queries(&s, &c, &cookie, &c_id).await;
        assert_eq!(qc.iter().filter(|(_, d)| *d == api_db).count(), 2, "{qc:?}");
        let shipping = s
            .data_sources()
            .into_iter()
            .find(|d| d.name == "shipping-api")
            .unwrap();
        let (status, _) = call(
            &s,
            &c,
            &cookie,
            Method::POST,
            &format!("{prefix}/{}/scope", shipping.id),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            s.data_sources()
                .into_iter()
                .find(|d| d.id == shipping.id)
                .unwrap()
                .app_version_id,
            None
        );
        assert!(s.delete_app_as_user(&c_id));
        assert_eq!(s.data_sources().len(), 2, "{flavour}: nothing cascades now");
        let (status, body) = call(
            &s,
            &c,
            &cookie,
            Method::DELETE,
            &format!("{prefix}/{api_db}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = call(
            &s,
            &c,
            &cookie,
            Method::DELETE,
            &format!("{prefix}/{api_db}"),
            None,
        )
        .await;
        assert!(status.is_client_error(), "{flavour}: {status}");
    }
}
