//! No secret in any Debug output, error message or log line of the ToolJet client.
//!
//! Alone in its own test binary: `tracing` caches per call site whether anyone listens,
//! so a thread-local subscriber only sees everything when no other test runs beside it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::StandIn;

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "pw-Secret-7f3a91";
const ADMIN_KEY: &str = "admin-Secret-5c2e88";
const EXT_TOKEN: &str = "ext-Secret-0d4b17";

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

fn admin_client(s: &StandIn) -> ToolJetClient {
    ToolJetClient::new(config(s, Auth::AdminApiKey(ADMIN_KEY.into()))).unwrap()
}

fn ext_client(s: &StandIn, token: &str) -> ToolJetClient {
    ToolJetClient::new(config(s, Auth::ExternalToken(token.into()))).unwrap()
}

fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, ADMIN_KEY, EXT_TOKEN] {
        assert!(!text.contains(secret), "secret leaked in: {text}");
    }
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_errors_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = standin().await;
    let mut texts = Vec::new();
    for auth in [
        Auth::Password {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
        Auth::AdminApiKey(ADMIN_KEY.into()),
        Auth::ExternalToken(EXT_TOKEN.into()),
    ] {
        texts.push(format!("{auth:?}"));
        let cfg = config(&s, auth);
        texts.push(format!("{cfg:?}"));
        let client = ToolJetClient::new(cfg).unwrap();
        texts.push(format!("{client:?}"));
        client.check().await.unwrap();
    }
    // A server that echoes the secret back in its error message.
    s.faults().fail_route_with_message(
        "GET",
        "/api/app-environments",
        401,
        Some(&format!("bad key {ADMIN_KEY}")),
    );
    let err = admin_client(&s).environments().await.unwrap_err();
    assert!(err.to_string().contains("<redacted>"), "{err}");
    texts.push(format!("{err} {err:?}"));
    s.faults().reset();

    let wrong = |secret: &str| {
        let mut cfg = config(
            &s,
            Auth::Password {
                email: EMAIL.into(),
                password: secret.into(),
            },
        );
        cfg.workspace_id = None;
        ToolJetClient::new(cfg).unwrap()
    };
    let err = wrong("wrong").check().await.unwrap_err();
    texts.push(format!("{err} {err:?}"));
    let err = ext_client(&s, "nope").check().await.unwrap_err();
    texts.push(format!("{err} {err:?}"));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("route=\"GET /api/app-environments\""),
        "requests are logged with their route: {logs}"
    );
    texts.push(logs);
    for text in texts {
        assert_no_secret(&text);
    }
}
