//! The ToolJet client's constants and data-source option routes against the stand-in, on both
//! flavours (issue 15; `shared/tooljet-real/config-api.md`).

use std::time::Duration;

use serde_json::json;
use tooljet_operator::tooljet::{
    Auth, ClientConfig, ConnectionTest, ConstantType, Family, OptionEntry, ToolJetClient,
    ToolJetError, merge_options,
};
use tooljet_standin::{Flavour, StandIn, flavoured};

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "operator-password";
const ADMIN_KEY: &str = "admin-key-for-tests";

async fn standin(flavour: Flavour) -> StandIn {
    let _ = rustls::crypto::ring::default_provider().install_default();
    StandIn::builder()
        .flavour(flavour)
        .credentials(EMAIL, PASSWORD)
        .admin_api_key(ADMIN_KEY)
        .start()
        .await
        .unwrap()
}

/// The admin API key on 3.x, a password on 2.27 (which has no admin API key).
fn client_of(s: &StandIn) -> ToolJetClient {
    let auth = match s.flavour() {
        Flavour::V2_27 => Auth::Password {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
        Flavour::V3 => Auth::AdminApiKey(ADMIN_KEY.into()),
    };
    let mut c = ClientConfig::new(s.base_url(), auth);
    c.workspace_id = Some(s.workspace_id().to_string());
    c.request_timeout = Duration::from_secs(10);
    ToolJetClient::new(c).unwrap()
}

async fn production(c: &ToolJetClient) -> String {
    c.environments()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.name == "production")
        .unwrap()
        .id
}

fn entry(key: &str, value: &str, encrypted: bool) -> OptionEntry {
    OptionEntry {
        key: key.into(),
        value: value.into(),
        encrypted,
    }
}

flavoured!(constants_are_created_updated_listed_and_deleted, flavour, {
    let s = standin(flavour).await;
    let c = client_of(&s);
    let env = production(&c).await;
    let id = c
        .create_constant(
            "API_URL",
            "https://x",
            ConstantType::Global,
            std::slice::from_ref(&env),
        )
        .await
        .unwrap();
    let listed = c.constants().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(
        listed[0].kind,
        ConstantType::Global,
        "2.x lists no type: Global"
    );
    assert_eq!(listed[0].readable_value("production"), Some("https://x"));
    c.update_constant(&id, "https://y", &env).await.unwrap();
    let of_env = c.constants_of_environment(&env).await.unwrap();
    assert_eq!(
        (of_env[0].name.as_str(), of_env[0].value.as_str()),
        ("API_URL", "https://y")
    );
    assert_eq!(s.constants()[0].value, "https://y");

    // A taken name (case-sensitive) is named in the error.
    let err = c
        .create_constant(
            "API_URL",
            "z",
            ConstantType::Global,
            std::slice::from_ref(&env),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolJetError::ConstantExists { name, .. } if name == "API_URL"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`API_URL` already exists"),
        "{err}"
    );
    c.create_constant(
        "api_url",
        "z",
        ConstantType::Global,
        std::slice::from_ref(&env),
    )
    .await
    .unwrap();

    // Unknown ids are NotFound on both (2.x answers 500, which must not look transient).
    let ghost = "00000000-0000-4000-8000-000000000000";
    for err in [
        c.update_constant(ghost, "v", &env).await.unwrap_err(),
        c.delete_constant(ghost, None).await.unwrap_err(),
    ] {
        assert!(matches!(err, ToolJetError::NotFound { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }
    let err = c.update_constant(&id, "v", ghost).await.unwrap_err();
    assert!(
        matches!(err, ToolJetError::NotFound { .. }),
        "unknown environment: {err:?}"
    );

    c.delete_constant(&id, Some(&env)).await.unwrap();
    let names: Vec<String> = c
        .constants()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["api_url"]);
});

flavoured!(
    secret_constants_are_masked_on_3_x_and_refused_unsent_on_2_x,
    flavour,
    {
        let s = standin(flavour).await;
        let c = client_of(&s);
        let env = production(&c).await;
        s.clear_request_log();
        let result = c
            .create_constant(
                "PAYMENT_KEY",
                "sk_live_123456",
                ConstantType::Secret,
                &[env],
            )
            .await;
        match flavour {
            Flavour::V2_27 => {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, ToolJetError::SecretConstantUnsupported { .. }),
                    "{err:?}"
                );
                let text = err.to_string();
                assert!(text.contains("encrypted data-source option"), "{text}");
                assert!(!text.contains("sk_live"), "{text}");
                assert_eq!(s.write_count(), 0, "nothing was sent");
                assert!(s.constants().is_empty());
            }
            Flavour::V3 => {
                result.unwrap();
                let listed = c.constants().await.unwrap();
                assert_eq!(listed[0].kind, ConstantType::Secret);
                assert_eq!(listed[0].readable_value("production"), None, "masked");
                assert_eq!(s.constants()[0].value, "sk_live_123456");
            }
        }
    }
);

flavoured!(constant_errors_never_carry_the_value, flavour, {
    let s = standin(flavour).await;
    let c = client_of(&s);
    let env = production(&c).await;
    let value = "hunter2-super-secret";
    s.faults().fail_route_with_message(
        "POST",
        "/api/organization-constants",
        400,
        Some(&format!("value {value} is not allowed")),
    );
    let err = c
        .create_constant("X", value, ConstantType::Global, &[env])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolJetError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(value), "{err}");
    assert!(err.to_string().contains("<redacted>"), "{err}");
});

flavoured!(options_are_read_merged_written_and_tested, flavour, {
    let s = standin(flavour).await;
    let c = client_of(&s);
    let env = production(&c).await;
    s.set_connection_target(
        "postgresql",
        &[("host", "db.prod.svc"), ("password", "s3cret-pw")],
    );
    let family = c.family().await.unwrap();

    // Create with our options (the workspace lacks it).
    let first = merge_options(
        family,
        &Default::default(),
        &[
            entry("host", "127.0.0.1", false),
            entry("password", "s3cret-pw", true),
        ],
    );
    let id = c
        .create_data_source_with_options("sales-db", "postgresql", &first, &env)
        .await
        .unwrap();
    let stored = c.data_source_options(&id, &env).await.unwrap();
    assert_eq!(
        stored["host"],
        json!({"value": "127.0.0.1", "encrypted": false})
    );
    assert!(
        stored["password"].get("credential_id").is_some(),
        "{stored:?}"
    );
    assert_eq!(
        s.data_source_secret(&id, "password").as_deref(),
        Some("s3cret-pw")
    );

    // Someone sets more options in the UI: a port (a number) and another secret.
    let ui = merge_options(
        family,
        &stored,
        &[
            entry("port", "5432", false),
            entry("ca_cert", "PEM-FROM-UI", true),
        ],
    );
    let ui = {
        // The UI sends the number as a number.
        let mut ui = ui;
        for o in &mut ui.options {
            if o.key == "port" {
                o.value = json!(5432);
            }
        }
        ui
    };
    c.put_data_source_options(&id, &env, &ui).await.unwrap();

    // The test fails while the host is wrong, and says why without any secret.
    let stored = c.data_source_options(&id, &env).await.unwrap();
    let outcome = c
        .test_connection(&id, "postgresql", &env, &stored, &["s3cret-pw"])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ConnectionTest::Failed {
            message: "connect ECONNREFUSED 127.0.0.1:5432".into()
        }
    );

    // Our change: the host, the port as text, the password again (3.x needs every secret).
    let ours = [
        entry("host", "db.prod.svc", false),
        entry("port", "6543", false),
        entry("password", "s3cret-pw", true),
    ];
    let merged = merge_options(family, &stored, &ours);
    match family {
        Family::V2 => assert!(merged.secrets_emptied.is_empty()),
        Family::V3 => assert_eq!(merged.secrets_emptied, ["ca_cert"]),
    }
    c.put_data_source_options(&id, &env, &merged).await.unwrap();
    let after = c.data_source_options(&id, &env).await.unwrap();
    assert_eq!(
        after["port"]["value"],
        json!(6543),
        "the stored type is kept"
    );
    assert_eq!(after["host"]["value"], "db.prod.svc");
    assert_eq!(
        s.data_source_secret(&id, "password").as_deref(),
        Some("s3cret-pw")
    );
    let ca = s.data_source_secret(&id, "ca_cert").unwrap();
    match family {
        Family::V2 => assert_eq!(ca, "PEM-FROM-UI", "2.x keeps a value-less secret"),
        Family::V3 => assert_eq!(ca, "", "3.x CE empties it, as merge_options reported"),
    }
    let outcome = c
        .test_connection(&id, "postgresql", &env, &after, &["s3cret-pw"])
        .await
        .unwrap();
    assert_eq!(outcome, ConnectionTest::Ok);

    // A failure message that echoes a secret is cleaned.
    s.fail_connections(Some("auth failed with password s3cret-pw"));
    let outcome = c
        .test_connection(&id, "postgresql", &env, &after, &["s3cret-pw"])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ConnectionTest::Failed {
            message: "auth failed with password <redacted>".into()
        }
    );
});

flavoured!(
    writing_options_again_refreshes_pooled_connections,
    flavour,
    {
        let s = standin(flavour).await;
        let c = client_of(&s);
        let env = production(&c).await;
        s.set_connection_target("postgresql", &[("password", "postgres")]);
        c.create_constant(
            "pg_pw",
            "postgres",
            ConstantType::Global,
            std::slice::from_ref(&env),
        )
        .await
        .unwrap();
        let family = c.family().await.unwrap();
        let ours = [entry("password", "{{constants.pg_pw}}", true)];
        let merged = merge_options(family, &Default::default(), &ours);
        let id = c
            .create_data_source_with_options("ops_pg", "postgresql", &merged, &env)
            .await
            .unwrap();
        assert!(s.connect_as_app(&id).unwrap().is_ok());
        let constant = c.constants().await.unwrap()[0].id.clone();
        c.update_constant(&constant, "wrong", &env).await.unwrap();
        assert!(
            s.connect_as_app(&id).unwrap().is_ok(),
            "the pool still uses the old value"
        );
        let stored = c.data_source_options(&id, &env).await.unwrap();
        c.put_data_source_options(&id, &env, &merge_options(family, &stored, &ours))
            .await
            .unwrap();
        assert!(
            s.connect_as_app(&id).unwrap().is_err(),
            "rewritten: the new value is used"
        );
    }
);

flavoured!(
    missing_data_sources_and_environments_are_not_found,
    flavour,
    {
        let s = standin(flavour).await;
        let c = client_of(&s);
        let env = production(&c).await;
        let ghost = "00000000-0000-4000-8000-000000000000";
        let err = c.data_source_options(ghost, &env).await.unwrap_err();
        assert!(matches!(err, ToolJetError::NotFound { .. }), "{err:?}");
        let merged = merge_options(
            c.family().await.unwrap(),
            &Default::default(),
            &[entry("password", "s3cret-pw", true)],
        );
        let err = c
            .put_data_source_options(ghost, &env, &merged)
            .await
            .unwrap_err();
        assert!(matches!(err, ToolJetError::NotFound { .. }), "{err:?}");
        let id = c
            .create_data_source_with_options("db", "postgresql", &merged, &env)
            .await
            .unwrap();
        let err = c
            .put_data_source_options(&id, ghost, &merged)
            .await
            .unwrap_err();
        assert!(matches!(err, ToolJetError::NotFound { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("s3cret-pw"));
    }
);
