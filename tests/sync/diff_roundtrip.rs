//! The "regenerated ids are not a change" rule against what a ToolJet server does: every fixture
//! imported into the stand-in (both flavours re-key the app, its versions and its data sources)
//! and exported again is the same app; an edit made before the import is all the diff shows.

use std::time::Duration;

use git_fixtures::tooljet::{BASE64, CODE_EXPLAINER, CREDIT_CARD, ORDERS_DASHBOARD, ORDERS_REPORT};
use serde_json::{Value, json};
use tooljet_operator::diff::{Status, diff, same_app};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::{Flavour, StandIn, flavoured};

const ADMIN_KEY: &str = "diff-admin-key-3391";
const EMAIL: &str = "diff@example.com";
const PASSWORD: &str = "diff-password-2207";

async fn standin(flavour: Flavour) -> (StandIn, ToolJetClient) {
    let standin = StandIn::builder()
        .flavour(flavour)
        .credentials(EMAIL, PASSWORD)
        .admin_api_key(ADMIN_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let auth = match flavour {
        Flavour::V2_27 => Auth::Password {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
        Flavour::V3 => Auth::AdminApiKey(ADMIN_KEY.into()),
    };
    let mut config = ClientConfig::new(standin.base_url(), auth);
    config.workspace_id = Some(standin.workspace_id().to_owned());
    config.request_timeout = Duration::from_secs(10);
    let client = ToolJetClient::new(config).expect("client");
    (standin, client)
}

async fn round_trip(client: &ToolJetClient, bundle: &Value, name: &str) -> Value {
    let imported = client.import_app(bundle, name).await.expect("imports");
    client
        .export_app(&imported.id, None)
        .await
        .expect("exports")
}

flavoured!(
    every_fixture_survives_import_and_export_unchanged,
    flavour,
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (_standin, client) = standin(flavour).await;
        for (name, bytes) in [
            CREDIT_CARD,
            BASE64,
            CODE_EXPLAINER,
            ORDERS_DASHBOARD,
            ORDERS_REPORT,
        ] {
            let bundle: Value = serde_json::from_slice(bytes).expect("fixture is JSON");
            let exported = round_trip(&client, &bundle, name).await;
            let (before, after) = (
                &bundle["app"][0]["definition"]["appV2"],
                &exported["app"][0]["definition"]["appV2"],
            );
            assert_ne!(
                before["id"], after["id"],
                "{name}: the server re-keyed the app"
            );
            assert_ne!(
                before["editingVersion"]["id"], after["editingVersion"]["id"],
                "{name}: and its version"
            );
            let d = diff(&bundle, &exported).expect("diffs");
            assert!(
                d.is_empty(),
                "{name} on {flavour:?}: {}",
                serde_json::to_string_pretty(&d).expect("json")
            );
            assert!(same_app(&bundle, &exported).expect("compares"));
        }
    }
);

flavoured!(an_edit_survives_import_and_export_alone, flavour, {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_standin, client) = standin(flavour).await;
    let bundle: Value = serde_json::from_slice(ORDERS_DASHBOARD.1).expect("fixture is JSON");
    let mut edited = bundle.clone();
    let app = &mut edited["app"][0]["definition"]["appV2"];
    for c in app["components"].as_array_mut().expect("components") {
        if c["name"] == "refresh_button" {
            c["properties"]["text"]["value"] = json!("Reload");
        }
    }
    let exported = round_trip(&client, &edited, ORDERS_DASHBOARD.0).await;
    let d = diff(&bundle, &exported).expect("diffs");
    assert_eq!(d.summary(), "1 page, 1 component changed", "{}", d.text());
    let c = &d.pages[0].components[0];
    assert_eq!(
        (c.name.as_str(), c.status),
        ("refresh_button", Status::Changed)
    );
    assert_eq!(c.changes[0].field, "properties.text");
    assert_eq!(c.changes[0].to.as_deref(), Some("\"Reload\""));
});
