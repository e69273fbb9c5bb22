//! The stand-in's constants, data-source options, connection test and connection pool, over raw
//! HTTP on both flavours, against what `shared/tooljet-real/config-api.md` records (2.27.1
//! verified: K…, D…, X…, P…; 3.x from the source).

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tooljet_standin::{
    Flavour, MASK, MSG_CONSTANT_EXISTS, MSG_CONSTANT_NAME, MSG_CONSTANT_NOT_FOUND, StandIn,
    flavoured,
};

/// A password session on a stand-in of one flavour.
struct Tj {
    s: StandIn,
    c: Client,
    cookie: String,
}

impl Tj {
    async fn start(flavour: Flavour) -> Tj {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s = StandIn::builder()
            .flavour(flavour)
            .credentials("a@example.com", "pw")
            .start()
            .await
            .unwrap();
        let c = Client::new();
        let resp = c
            .post(format!(
                "{}/api/authenticate/{}",
                s.base_url(),
                s.workspace_id()
            ))
            .json(&json!({"email": "a@example.com", "password": "pw"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        Tj { s, c, cookie }
    }

    fn v3(&self) -> bool {
        self.s.flavour() == Flavour::V3
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .c
            .request(method, format!("{}{path}", self.s.base_url()))
            .header("cookie", &self.cookie)
            .header("tj-workspace-id", self.s.workspace_id());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn environments(&self) -> Vec<(String, String)> {
        let (_, body) = self.call(Method::GET, "/api/app-environments", None).await;
        body["environments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    async fn env(&self) -> String {
        self.environments()
            .await
            .into_iter()
            .find(|(n, _)| n == "production")
            .unwrap()
            .1
    }

    async fn create_constant(&self, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/organization-constants", Some(body))
            .await
    }

    async fn constants(&self) -> Vec<Value> {
        let (status, body) = self
            .call(Method::GET, "/api/organization-constants", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["constants"].as_array().unwrap().clone()
    }

    fn ds_prefix(&self) -> &'static str {
        if self.v3() {
            "/api/data-sources"
        } else {
            "/api/v2/data_sources"
        }
    }

    async fn create_data_source(&self, name: &str, kind: &str, options: Value) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                self.ds_prefix(),
                Some(json!({"name": name, "kind": kind, "options": options, "scope": "global"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn put_options(&self, id: &str, env: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut path = format!("{}/{id}", self.ds_prefix());
        if let Some(env) = env {
            path.push_str(&format!("?environment_id={env}"));
        }
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// The options of data source `id` as the family's read route lists them.
    async fn options(&self, id: &str) -> Value {
        let env = self.env().await;
        let (status, body) = if self.v3() {
            self.call(
                Method::GET,
                &format!("/api/data-sources/{id}/environment/{env}"),
                None,
            )
            .await
        } else {
            self.call(
                Method::GET,
                &format!("/api/v2/data_sources?environmentId={env}"),
                None,
            )
            .await
        };
        assert_eq!(status, StatusCode::OK, "{body}");
        let ds = if self.v3() {
            body
        } else {
            body["data_sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == id)
                .cloned()
                .unwrap()
        };
        ds["options"].clone()
    }

    async fn test_connection(&self, id: &str, kind: &str, options: Value) -> Value {
        let env = self.env().await;
        let body = json!({"kind": kind, "options": options, "environment_id": env});
        let path = if self.v3() {
            format!("/api/data-sources/{id}/test-connection")
        } else {
            "/api/data_sources/test_connection".to_string()
        };
        let (status, answer) = self.call(Method::POST, &path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "always 201 (D3–D9): {answer}");
        answer
    }
}

fn pg_options(password: &str) -> Value {
    json!([
        {"key": "host", "value": "127.0.0.1", "encrypted": false},
        {"key": "port", "value": 55432, "encrypted": false},
        {"key": "username", "value": "postgres", "encrypted": false},
        {"key": "password", "value": password, "encrypted": true},
        {"key": "ssl_enabled", "value": false, "encrypted": false},
    ])
}

fn messages(body: &Value) -> Vec<String> {
    match &body["message"] {
        Value::Array(items) => items
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("no message in {other}"),
    }
}

flavoured!(environments_are_those_of_each_flavour, flavour, {
    let tj = Tj::start(flavour).await;
    let names: Vec<String> = tj.environments().await.into_iter().map(|e| e.0).collect();
    match flavour {
        // 2.27.1 CE has exactly one environment (C1).
        Flavour::V2_27 => assert_eq!(names, ["production"]),
        Flavour::V3 => assert_eq!(names, ["development", "staging", "production"]),
    }
    let (_, body) = tj.call(Method::GET, "/api/app-environments", None).await;
    let default: Vec<&Value> = body["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["is_default"] == true)
        .collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["name"], "production");
});

flavoured!(constant_creation_rules, flavour, {
    let tj = Tj::start(flavour).await;
    let env = tj.env().await;
    let body = |name: &str, value: Value| json!({"constant_name": name, "value": value, "environments": [env], "type": "Global"});
    // K7, K8, K17: the name rule, no trim.
    for bad in ["db-host", "1db", " padded ", ""] {
        let (status, answer) = tj.create_constant(body(bad, json!("v"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {answer}");
        assert_eq!(messages(&answer), [MSG_CONSTANT_NAME], "{bad:?}");
    }
    // K9, K10: 32 characters on 2.27.1; 50 on 3.x.
    let (limit, over) = match flavour {
        Flavour::V2_27 => (32, "Constant name must be less than 32 characters"),
        Flavour::V3 => (50, "Constant name must be less than 50 characters"),
    };
    let (status, _) = tj
        .create_constant(body(&"a".repeat(limit), json!("v")))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = tj
        .create_constant(body(&"b".repeat(limit + 1), json!("v")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(messages(&answer), [over]);
    // K11, K12, K13: value of 1 to 10,000 characters.
    let (status, answer) = tj.create_constant(body("empty", json!(""))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        messages(&answer),
        [
            "Constant value must be at least 1 character",
            "value should not be empty"
        ]
    );
    let (status, answer) = tj
        .create_constant(body("long", json!("x".repeat(10_001))))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        messages(&answer),
        ["Constant value must be less than 10000 characters"]
    );
    let (status, _) = tj
        .create_constant(body("long", json!("x".repeat(10_000))))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // K18: stored verbatim.
    let verbatim = "  a b\nc ü {{x}} ";
    let (status, created) = tj.create_constant(body("verbatim", json!(verbatim))).await;
    assert_eq!(status, StatusCode::CREATED);
    // K1: the answer is the entity without values.
    assert_eq!(created["constant"]["constant_name"], "verbatim");
    assert!(created["constant"]["id"].is_string() && created["constant"].get("values").is_none());
    let listed = tj.constants().await;
    let v = listed.iter().find(|c| c["name"] == "verbatim").unwrap();
    assert_eq!(v["values"][0]["value"], verbatim);
    // K5, K6: duplicate names are 422 "Already exists!", case-sensitively.
    let (status, answer) = tj.create_constant(body("verbatim", json!("2"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["message"], MSG_CONSTANT_EXISTS);
    let (status, _) = tj.create_constant(body("VERBATIM", json!("2"))).await;
    assert_eq!(status, StatusCode::CREATED);
    // K14, K15, K16: environments missing, empty, unknown.
    let (status, answer) = tj
        .create_constant(json!({"constant_name": "noenv", "value": "v", "type": "Global"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        messages(&answer),
        [
            "each value in environments should not be empty",
            "each value in environments must be a string"
        ]
    );
    let (status, _) = tj
        .create_constant(
            json!({"constant_name": "blank", "value": "v", "environments": [], "type": "Global"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let blank =
        tj.s.constants()
            .into_iter()
            .find(|c| c.name == "blank")
            .unwrap();
    assert_eq!(
        blank.value, "",
        "K15: created with \"\" in every environment"
    );
    let before = tj.s.constants().len();
    let (status, answer) = tj
        .create_constant(
            json!({"constant_name": "ghost", "value": "v", "type": "Global",
                                "environments": ["00000000-0000-4000-8000-000000000000"]}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not find any entity of type \"AppEnvironment\""),
        "{answer}"
    );
    assert_eq!(tj.s.constants().len(), before, "nothing created");
});

flavoured!(secret_constants_exist_only_on_3_x, flavour, {
    let tj = Tj::start(flavour).await;
    let env = tj.env().await;
    let (status, _) = tj
        .create_constant(
            json!({"constant_name": "db_password", "value": "s3cr3t-value",
                                "environments": [env], "type": "Secret"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let listed = tj.constants().await;
    let c = listed.iter().find(|c| c["name"] == "db_password").unwrap();
    match flavour {
        Flavour::V2_27 => {
            // K2, K3: `type` is dropped; the value is listed in plain text, with no type.
            assert!(c.get("type").is_none(), "{c}");
            assert_eq!(c["values"][0]["value"], "s3cr3t-value");
            assert_eq!(tj.s.constants()[0].kind, "Global");
            let (_, by_env) = tj
                .call(
                    Method::GET,
                    &format!("/api/organization-constants/environment/{env}"),
                    None,
                )
                .await;
            assert_eq!(by_env["constants"][0]["value"], "s3cr3t-value", "K4");
        }
        Flavour::V3 => {
            assert_eq!(c["type"], "Secret");
            assert!(
                c["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|v| v["value"] == MASK)
            );
            assert_eq!(
                c["values"].as_array().unwrap().len(),
                3,
                "CE writes all three"
            );
            let (_, by_env) = tj
                .call(
                    Method::GET,
                    &format!("/api/organization-constants/environment/{env}"),
                    None,
                )
                .await;
            assert_eq!(by_env["constants"][0]["value"], MASK);
            assert_eq!(by_env["constants"][0]["type"], "Secret");
            // 3.x requires the type.
            let (status, answer) = tj
                .create_constant(
                    json!({"constant_name": "untyped", "value": "v", "environments": [env]}),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(messages(&answer), ["Type must be either Global or Secret"]);
        }
    }
});

flavoured!(public_apps_leak_constants_on_2_27_only, flavour, {
    let tj = Tj::start(flavour).await;
    let env = tj.env().await;
    for (name, kind) in [("api_url", "Global"), ("db_password", "Secret")] {
        let (status, _) = tj
            .create_constant(
                json!({"constant_name": name, "value": format!("{name}-value"),
                                    "environments": [env], "type": kind}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let bundle: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/tooljet-apps/base64-encoder-decoder.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let (status, imported) = tj
        .call(
            Method::POST,
            "/api/v2/resources/import",
            Some(json!({"organization_id": tj.s.workspace_id(), "tooljet_version": bundle["tooljet_version"],
                        "app": [{"definition": bundle["app"][0]["definition"], "appName": "Public"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let id = imported["imports"]["app"][0]["id"].as_str().unwrap();
    let slug = tj.s.apps()[0].slug.clone();
    let anonymous = |path: String| {
        let c = tj.c.clone();
        let url = format!("{}{path}", tj.s.base_url());
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let public_path = match flavour {
        Flavour::V2_27 => format!("/api/organization-constants/{slug}"),
        Flavour::V3 => format!("/api/organization-constants/public/{slug}"),
    };
    // P4: a private app shows nothing.
    let (status, _) = anonymous(public_path.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = tj
        .call(
            Method::PUT,
            &format!("/api/apps/{id}"),
            Some(json!({"app": {"is_public": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = anonymous(public_path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body.to_string();
    assert!(text.contains("api_url-value"));
    match flavour {
        // P2: every constant, in plain text, without a session.
        Flavour::V2_27 => assert!(text.contains("db_password-value"), "{text}"),
        // 3.x: Global constants only.
        Flavour::V3 => assert!(!text.contains("db_password"), "{text}"),
    }
});

flavoured!(constant_update_and_delete_rules, flavour, {
    let tj = Tj::start(flavour).await;
    let env = tj.env().await;
    for name in ["db_host", "taken"] {
        let (status, _) = tj
            .create_constant(json!({"constant_name": name, "value": "pg.prod.internal",
                                    "environments": [env], "type": "Global"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let id = tj.s.constants()[0].id.clone();
    let before = tj.s.constants()[0].updated_at.clone();
    let path = format!("/api/organization-constants/{id}");
    let patch = |body: Value| tj.call(Method::PATCH, &path, Some(body));
    // K22, K23: both value and environment_id are required.
    let (status, answer) = patch(json!({"value": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        messages(&answer),
        [
            "environment_id should not be empty",
            "environment_id must be a string"
        ]
    );
    let (status, _) = patch(json!({"environment_id": env})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = patch(json!({"value": "", "environment_id": env})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "K30");
    // K21: a value-only change does not move updated_at.
    let (status, answer) =
        patch(json!({"value": "pg2.prod.internal", "environment_id": env})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["constant"]["constant_name"], "db_host");
    let now = &tj.s.constants()[0];
    assert_eq!(now.value, "pg2.prod.internal");
    assert_eq!(now.updated_at, before, "K21");
    // K26: the PATCH has no name pattern: a name create refuses is stored.
    let (status, _) =
        patch(json!({"constant_name": "bad-name with space", "value": "y", "environment_id": env}))
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tj.s.constants()[0].name, "bad-name with space");
    // ...but the 32-character limit, on both flavours.
    let (status, _) =
        patch(json!({"constant_name": "c".repeat(33), "value": "y", "environment_id": env})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // K27: rename to a taken name.
    let (status, answer) =
        patch(json!({"constant_name": "taken", "value": "y", "environment_id": env})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["message"], MSG_CONSTANT_EXISTS);
    // K29: unknown environment.
    let (status, _) =
        patch(json!({"value": "y", "environment_id": "00000000-0000-4000-8000-000000000000"}))
            .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // K28, K34: unknown id is 500, not a uuid 422.
    let missing = "00000000-0000-4000-8000-000000000000";
    let (status, answer) = tj
        .call(
            Method::PATCH,
            &format!("/api/organization-constants/{missing}"),
            Some(json!({"value": "y", "environment_id": env})),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer["message"], MSG_CONSTANT_NOT_FOUND);
    let (status, _) = tj
        .call(
            Method::DELETE,
            "/api/organization-constants/not-a-uuid",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // K20, K32, K33: delete answers 200 {"statusCode":204}; again 500.
    let path = format!("/api/organization-constants/{id}?environmentId={env}");
    let (status, answer) = tj.call(Method::DELETE, &path, None).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"statusCode": 204}))
    );
    assert_eq!(tj.s.constants().len(), 1, "the whole constant goes");
    let (status, answer) = tj.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer["message"], MSG_CONSTANT_NOT_FOUND);
});

flavoured!(option_updates_replace_the_whole_set, flavour, {
    let tj = Tj::start(flavour).await;
    let env = tj.env().await;
    let id = tj
        .create_data_source("ops_pg", "postgresql", pg_options("postgres"))
        .await;
    let options = tj.options(&id).await;
    assert_eq!(
        options["port"],
        json!({"value": 55432, "encrypted": false}),
        "types kept"
    );
    let credential = options["password"]["credential_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        options["password"].get("value").is_none(),
        "never listed: {options}"
    );
    assert_eq!(
        tj.s.data_source_secret(&id, "password").as_deref(),
        Some("postgres")
    );

    // D10, D11: a new secret value; 2.27 keeps the credential, 3.x CE makes a new one.
    let updated_before = tj.s.data_sources()[0].updated_at.clone();
    let (status, answer) = tj
        .put_options(&id, Some(&env), json!({"options": pg_options("wrong-now")}))
        .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, Value::Null),
        "200, empty body"
    );
    assert!(
        tj.s.data_sources()[0].updated_at > updated_before,
        "updated_at moves"
    );
    let after = tj.options(&id).await;
    let same_credential = after["password"]["credential_id"] == credential.as_str();
    assert_eq!(same_credential, flavour == Flavour::V2_27, "{after}");
    assert_eq!(
        tj.s.data_source_secret(&id, "password").as_deref(),
        Some("wrong-now")
    );

    // D15–D17: a secret sent without a value is kept on 2.27, emptied on 3.x CE.
    let mut no_value = pg_options("unused");
    no_value[3] = json!({"key": "password", "encrypted": true});
    let (status, _) = tj
        .put_options(&id, Some(&env), json!({"options": no_value}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let kept = tj.s.data_source_secret(&id, "password").unwrap();
    match flavour {
        Flavour::V2_27 => assert_eq!(kept, "wrong-now"),
        Flavour::V3 => assert_eq!(kept, "", "3.x CE: a value-less key empties the secret"),
    }

    // D13, D14: keys missing from the PUT are deleted.
    let (status, _) = tj
        .put_options(
            &id,
            Some(&env),
            json!({"options": [{"key": "password", "value": "postgres", "encrypted": true}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let only = tj.options(&id).await;
    assert_eq!(
        only.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["password"]
    );

    // D18, D19: sent unencrypted, a password is stored and listed in plain text; switching
    // back makes a new credential and orphans the old (D20, D21).
    let credentials = tj.s.credential_count();
    let mut plain = pg_options("postgres");
    plain[3] = json!({"key": "password", "value": "postgres", "encrypted": false});
    tj.put_options(&id, Some(&env), json!({"options": plain}))
        .await;
    assert_eq!(
        tj.options(&id).await["password"],
        json!({"value": "postgres", "encrypted": false})
    );
    tj.put_options(&id, Some(&env), json!({"options": pg_options("postgres")}))
        .await;
    assert!(
        tj.s.credential_count() > credentials,
        "old credentials are orphaned, not deleted"
    );

    // D25, D26: a rename-only PUT wipes every option.
    let (status, _) = tj
        .put_options(&id, Some(&env), json!({"name": "ops_pg_renamed"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tj.s.data_sources()[0].name, "ops_pg_renamed");
    assert_eq!(tj.options(&id).await, json!({}));

    // D22: without environment_id the default environment is written.
    let (status, _) = tj
        .put_options(&id, None, json!({"options": pg_options("p")}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // D23: unknown environment; D24: unknown data source.
    let ghost = "00000000-0000-4000-8000-000000000000";
    let (status, answer) = tj
        .put_options(&id, Some(ghost), json!({"options": pg_options("p")}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    let (status, _) = tj
        .put_options(ghost, Some(&env), json!({"options": pg_options("p")}))
        .await;
    match flavour {
        Flavour::V2_27 => assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR),
        Flavour::V3 => assert_eq!(status, StatusCode::NOT_FOUND),
    }
    // The other family's route does not exist.
    let other = if tj.v3() {
        format!("/api/v2/data_sources/{id}")
    } else {
        format!("/api/data-sources/{id}")
    };
    let (status, _) = tj
        .call(Method::PUT, &other, Some(json!({"options": []})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

flavoured!(connection_test_rules, flavour, {
    let tj = Tj::start(flavour).await;
    let env = tj.env().await;
    tj.s.set_connection_target(
        "postgresql",
        &[("host", "127.0.0.1"), ("password", "postgres")],
    );
    let id = tj
        .create_data_source("ops_pg", "postgresql", pg_options("postgres"))
        .await;
    // D4: the listed options (credential id, no value) test the stored secret.
    let listed = tj.options(&id).await;
    assert_eq!(
        tj.test_connection(&id, "postgresql", listed.clone()).await,
        json!({"status": "ok"})
    );
    // D3, D5: options with values.
    let mut wrong = listed.clone();
    wrong["password"] = json!({"value": "nope", "encrypted": true});
    assert_eq!(
        tj.test_connection(&id, "postgresql", wrong).await,
        json!({"status": "failed", "message": "password authentication failed for user \"postgres\""})
    );
    // D7, X15: {{constants.x}} is resolved, in a value or inside a stored secret.
    tj.create_constant(json!({"constant_name": "pg_pw", "value": "postgres",
                              "environments": [env], "type": "Global"}))
        .await;
    let mut by_constant = pg_options("{{constants.pg_pw}}");
    tj.put_options(&id, Some(&env), json!({"options": by_constant.take()}))
        .await;
    let listed = tj.options(&id).await;
    assert_eq!(
        tj.test_connection(&id, "postgresql", listed.clone()).await["status"],
        "ok"
    );
    // D6: array options are not read: the defaults are tried.
    let answer = tj
        .test_connection(&id, "postgresql", pg_options("postgres"))
        .await;
    assert_eq!(answer["status"], "failed");
    assert_eq!(answer["message"], "connect ECONNREFUSED 127.0.0.1:5432");
    // D9: an unknown kind.
    let answer = tj.test_connection(&id, "nosuchkind", listed.clone()).await;
    assert_eq!(
        answer,
        json!({"status": "failed", "message": "server_1.default[kind] is not a constructor"})
    );
    // R2d: a never-configured secret.
    let mut empty = listed.clone();
    empty["password"] = json!({"value": "", "encrypted": true});
    assert_eq!(
        tj.test_connection(&id, "postgresql", empty).await["message"],
        "SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string"
    );
    // The fault knob.
    tj.s.fail_connections(Some("getaddrinfo ENOTFOUND db.internal"));
    assert_eq!(
        tj.test_connection(&id, "postgresql", listed.clone()).await,
        json!({"status": "failed", "message": "getaddrinfo ENOTFOUND db.internal"})
    );
    tj.s.fail_connections(None);
    assert_eq!(
        tj.test_connection(&id, "postgresql", listed.clone()).await["status"],
        "ok"
    );
    if tj.v3() {
        // 3.x: the id in the path must be a data source of the workspace.
        let (status, _) = tj
            .call(
                Method::POST,
                "/api/data-sources/00000000-0000-4000-8000-000000000000/test-connection",
                Some(json!({"kind": "postgresql", "options": listed})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
});

flavoured!(
    pooled_connections_keep_the_old_constant_until_options_are_written,
    flavour,
    {
        let tj = Tj::start(flavour).await;
        let env = tj.env().await;
        tj.s.set_connection_target("postgresql", &[("password", "postgres")]);
        tj.create_constant(json!({"constant_name": "pg_pw", "value": "postgres",
                              "environments": [env], "type": "Global"}))
            .await;
        let id = tj
            .create_data_source("ops_pg", "postgresql", pg_options("{{constants.pg_pw}}"))
            .await;
        let cid = tj.s.constants()[0].id.clone();
        let constant_path = format!("/api/organization-constants/{cid}");
        let set_constant = |value: &'static str| {
            tj.call(
                Method::PATCH,
                &constant_path,
                Some(json!({"value": value, "environment_id": env})),
            )
        };
        let touch = || async {
            let mut same = pg_options("x");
            same[3] = json!({"key": "password", "encrypted": true, "value": "{{constants.pg_pw}}"});
            tj.put_options(&id, Some(&env), json!({"options": same}))
                .await
        };
        // X2: a query connects with the constant's value.
        assert_eq!(
            tj.s.connect_as_app(&id).unwrap().unwrap()["password"],
            "postgres"
        );
        // X3, X4: the constant changes; the cached connection still uses the old value.
        set_constant("wrong-pw").await;
        assert_eq!(
            tj.s.connect_as_app(&id).unwrap().unwrap()["password"],
            "postgres"
        );
        // X9, X10: writing the same options again makes the pool reconnect with the new value.
        touch().await;
        assert_eq!(
            tj.s.connect_as_app(&id).unwrap(),
            Err("password authentication failed for user \"postgres\"".to_string())
        );
        // X11, X12: a bad connection is cached too; fixing the constant is not enough.
        set_constant("postgres").await;
        assert!(tj.s.connect_as_app(&id).unwrap().is_err());
        // X13, X14: touch again.
        touch().await;
        assert!(tj.s.connect_as_app(&id).unwrap().is_ok());
        // A constant changed in the dashboard is not seen either.
        assert!(tj.s.set_constant_as_user("pg_pw", "other"));
        assert!(tj.s.connect_as_app(&id).unwrap().is_ok());
        assert!(tj.s.connect_as_app("no-such-id").is_none());
    }
);
