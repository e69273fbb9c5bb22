//! Issue 15: a ToolJetInstance's workspace constants and data-source options, from the spec and
//! from Secrets, applied by `sync::instance_config` on both stand-in flavours, and through
//! `sync -f` / `plan -f`; and the controllers' side against kube's mock API server: the
//! instance's status and conditions, and an AppImport waiting for its instance's configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tooljet_operator::api::{ConnectionState, Reason, ToolJetInstance};
use tooljet_operator::sync::instance_config::{ConfigOutcome, ConfigRecord, configure, hasher_for};
use tooljet_operator::sync::{Action, Mode, Secrets, tooljet_client};
use tooljet_operator::tooljet::{ConstantType, DataSourceOption, ToolJetClient};
use tooljet_standin::{Flavour, StandIn, flavoured};

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "instance-config-login-5512";
/// A value that must never show in status, output or the state file.
const DB_PASSWORD: &str = "pg-secret-Zq81xT";
const DB_PASSWORD_ROTATED: &str = "pg-rotated-Kp07wY";

/// A stand-in, an instance spec, its namespace's Secrets and the record status would keep.
struct Rig {
    standin: StandIn,
    instance: ToolJetInstance,
    secrets: Secrets,
    record: ConfigRecord,
}

impl Rig {
    async fn start(flavour: Flavour) -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let standin = StandIn::builder()
            .flavour(flavour)
            .credentials(EMAIL, PASSWORD)
            .start()
            .await
            .expect("stand-in starts");
        let mut rig = Rig {
            instance: instance(&standin, ""),
            standin,
            secrets: Secrets::in_namespace("team"),
            record: ConfigRecord::default(),
        };
        rig.secret("tj-login", &[("email", EMAIL), ("password", PASSWORD)]);
        rig
    }

    fn v3(&self) -> bool {
        self.standin.flavour() == Flavour::V3
    }

    fn secret(&mut self, name: &str, data: &[(&str, &str)]) {
        let data: BTreeMap<String, Vec<u8>> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.secrets.insert(name, data);
    }

    /// Sets the spec's `constants:` / `dataSources:` part.
    fn spec(&mut self, config_yaml: &str) {
        self.instance = instance(&self.standin, config_yaml);
    }

    fn client(&self) -> ToolJetClient {
        tooljet_client(&self.instance, &self.secrets).expect("client")
    }

    async fn run(&mut self, mode: Mode) -> ConfigOutcome {
        let hasher = hasher_for("uid-1", &self.instance.spec, &self.secrets);
        let outcome = configure(
            &self.client(),
            &self.instance.spec,
            &self.record,
            &self.secrets,
            &hasher,
            mode,
        )
        .await;
        if mode == Mode::Apply {
            self.record = outcome.record.clone();
        }
        let shown = format!(
            "{:?} {} {}",
            outcome,
            serde_json::to_string(&outcome.record).expect("json"),
            serde_json::to_string(&outcome.actions).expect("json")
        );
        for secret in [DB_PASSWORD, DB_PASSWORD_ROTATED] {
            assert!(!shown.contains(secret), "a value leaked: {shown}");
        }
        outcome
    }

    async fn apply(&mut self) -> ConfigOutcome {
        self.run(Mode::Apply).await
    }

    fn constant(&self, name: &str) -> Option<tooljet_standin::ConstantSnapshot> {
        self.standin
            .constants()
            .into_iter()
            .find(|c| c.name == name)
    }

    fn data_source_id(&self, name: &str) -> String {
        self.standin
            .data_sources()
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| d.id)
            .unwrap_or_else(|| panic!("no data source {name}"))
    }
}

fn instance(standin: &StandIn, config_yaml: &str) -> ToolJetInstance {
    let yaml = format!(
        "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: ToolJetInstance\nmetadata: {{name: tj, namespace: team, uid: uid-1}}\nspec:\n  url: {}\n  environment: production\n  workspaceId: {}\n  auth: {{password: {{secretRef: {{name: tj-login}}}}}}\n{config_yaml}",
        standin.base_url(),
        standin.workspace_id()
    );
    serde_saphyr::from_str(&yaml).expect("instance parses")
}

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(ToString::to_string).collect()
}

flavoured!(
    constants_are_created_updated_from_secrets_and_pruned,
    flavour,
    {
        let mut rig = Rig::start(flavour).await;
        rig.secret("api", &[("base", "https://api.staging.example")]);
        rig.spec(
        "  constants:\n  - {name: REGION, value: eu-west-1}\n  - {name: API_BASE, valueFrom: {secretKeyRef: {name: api, key: base}}}\n",
    );
        let out = rig.apply().await;
        assert_eq!(
            out.verdict.reason,
            Reason::Configured,
            "{}",
            out.verdict.message
        );
        assert_eq!(out.actions.len(), 2, "{:?}", names(&out.actions));
        assert_eq!(rig.constant("REGION").expect("created").value, "eu-west-1");
        assert_eq!(
            rig.constant("API_BASE").expect("created").value,
            "https://api.staging.example"
        );
        let owned: Vec<&str> = rig
            .record
            .constants
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(owned, vec!["REGION", "API_BASE"]);
        assert!(rig.record.constants.iter().all(|c| {
            c.written_hash
                .as_deref()
                .is_some_and(|h| h.starts_with("hmac-sha256:"))
        }));

        // Nothing changed: nothing written.
        let writes = rig.standin.write_count();
        let out = rig.apply().await;
        assert!(out.actions.is_empty(), "{:?}", names(&out.actions));
        assert_eq!(rig.standin.write_count(), writes);

        // The Secret rotates: the constant is rewritten.
        rig.secret("api", &[("base", "https://api2.staging.example")]);
        let out = rig.apply().await;
        assert_eq!(
            names(&out.actions),
            vec!["write a new value to constant API_BASE (value not shown)"]
        );
        assert_eq!(
            rig.constant("API_BASE").expect("kept").value,
            "https://api2.staging.example"
        );

        // An edit in ToolJet of a readable constant is restored.
        assert!(rig.standin.set_constant_as_user("REGION", "us-east-1"));
        rig.apply().await;
        assert_eq!(rig.constant("REGION").expect("kept").value, "eu-west-1");

        // Removed from the spec: pruned.
        rig.spec("  constants:\n  - {name: API_BASE, valueFrom: {secretKeyRef: {name: api, key: base}}}\n");
        let out = rig.apply().await;
        assert_eq!(names(&out.actions), vec!["delete constant REGION"]);
        assert!(rig.constant("REGION").is_none());
        assert_eq!(rig.record.constants.len(), 1);

        // Everything removed: the last owned constant goes too.
        rig.spec("");
        rig.apply().await;
        assert!(rig.standin.constants().is_empty());
        assert!(rig.record.constants.is_empty());
    }
);

flavoured!(a_foreign_constant_is_a_conflict_until_adopted, flavour, {
    let mut rig = Rig::start(flavour).await;
    let env = production_env(&rig).await;
    let client = rig.client();
    client
        .create_constant(
            "SHARED",
            "by-hand",
            ConstantType::Global,
            std::slice::from_ref(&env),
        )
        .await
        .expect("created by hand");
    client
        .create_constant("OTHER", "untouched", ConstantType::Global, &[env])
        .await
        .expect("created by hand");
    rig.spec("  constants:\n  - {name: NEW_ONE, value: x}\n  - {name: SHARED, value: ours}\n");
    let writes = rig.standin.write_count();
    let out = rig.apply().await;
    assert_eq!(out.verdict.reason, Reason::ConstantConflict);
    assert!(out.verdict.stalled());
    assert!(
        out.verdict.message.contains("SHARED") && out.verdict.message.contains("adoptExisting")
    );
    assert_eq!(rig.standin.write_count(), writes, "nothing half-written");
    assert!(rig.constant("NEW_ONE").is_none());
    assert_eq!(rig.constant("SHARED").expect("kept").value, "by-hand");

    rig.spec("  constants:\n  - {name: NEW_ONE, value: x}\n  - {name: SHARED, value: ours, adoptExisting: true}\n");
    let out = rig.apply().await;
    assert_eq!(
        out.verdict.reason,
        Reason::Configured,
        "{}",
        out.verdict.message
    );
    assert_eq!(rig.constant("SHARED").expect("adopted").value, "ours");
    assert!(rig.record.constants.iter().any(|c| c.name == "SHARED"));

    // Adopted is owned: removing it prunes it; the foreign OTHER is never touched.
    rig.spec("  constants:\n  - {name: NEW_ONE, value: x}\n");
    rig.apply().await;
    assert!(rig.constant("SHARED").is_none());
    assert_eq!(
        rig.constant("OTHER").expect("foreign kept").value,
        "untouched"
    );
});

flavoured!(a_secret_constant_needs_3x, flavour, {
    let mut rig = Rig::start(flavour).await;
    rig.secret("pay", &[("key", DB_PASSWORD)]);
    rig.spec("  constants:\n  - {name: PLAIN, value: p}\n  - {name: PAY_KEY, type: Secret, valueFrom: {secretKeyRef: {name: pay, key: key}}}\n");
    let writes = rig.standin.write_count();
    let out = rig.apply().await;
    if rig.v3() {
        assert_eq!(
            out.verdict.reason,
            Reason::Configured,
            "{}",
            out.verdict.message
        );
        let c = rig.constant("PAY_KEY").expect("created");
        assert_eq!((c.kind.as_str(), c.value.as_str()), ("Secret", DB_PASSWORD));
        // Masked on the server: unchanged is known by the recorded hash.
        let writes = rig.standin.write_count();
        assert!(rig.apply().await.actions.is_empty());
        assert_eq!(rig.standin.write_count(), writes);
        rig.secret("pay", &[("key", DB_PASSWORD_ROTATED)]);
        let out = rig.apply().await;
        assert_eq!(out.actions.len(), 1, "{:?}", names(&out.actions));
        assert_eq!(
            rig.constant("PAY_KEY").expect("kept").value,
            DB_PASSWORD_ROTATED
        );
    } else {
        assert_eq!(out.verdict.reason, Reason::SecretConstantUnsupported);
        assert!(
            out.verdict.message.contains("encrypted"),
            "{}",
            out.verdict.message
        );
        assert_eq!(rig.standin.write_count(), writes, "nothing written");
        assert!(rig.standin.constants().is_empty());
        assert!(rig.record.constants.is_empty());
    }
});

async fn production_env(rig: &Rig) -> String {
    let envs = rig.client().environments().await.expect("environments");
    envs.into_iter()
        .find(|e| e.name == "production")
        .expect("production")
        .id
}

const SALES_DB: &str = "  dataSources:\n  - name: sales-db\n    kind: postgresql\n    options:\n      host: {value: db.prod.svc}\n      username: {value: sales}\n      password: {valueFrom: {secretKeyRef: {name: sales-db, key: password}}, encrypted: true}\n";

flavoured!(
    a_data_source_is_created_with_secret_options_and_tested,
    flavour,
    {
        let mut rig = Rig::start(flavour).await;
        rig.secret("sales-db", &[("password", DB_PASSWORD)]);
        rig.standin.set_connection_target(
            "postgresql",
            &[("host", "db.prod.svc"), ("password", DB_PASSWORD)],
        );
        rig.spec(SALES_DB);
        let out = rig.apply().await;
        assert_eq!(
            out.verdict.reason,
            Reason::Configured,
            "{}",
            out.verdict.message
        );
        assert_eq!(
            names(&out.actions),
            vec![
                "create the postgresql data source \"sales-db\" with options host, password, username (values not shown)"
            ]
        );
        let id = rig.data_source_id("sales-db");
        assert_eq!(
            rig.standin.data_source_secret(&id, "password").as_deref(),
            Some(DB_PASSWORD)
        );
        let entry = &rig.record.data_sources[0];
        assert_eq!(
            (entry.id.as_deref(), entry.connection),
            (Some(id.as_str()), ConnectionState::Ok)
        );
        assert!(out.failed_connections().is_empty());
        // Unchanged: nothing written on the next run.
        let writes = rig.standin.write_count();
        assert!(rig.apply().await.actions.is_empty());
        assert_eq!(rig.standin.write_count(), writes);
    }
);

flavoured!(
    a_failed_connection_test_is_a_warning_with_tooljets_message,
    flavour,
    {
        let mut rig = Rig::start(flavour).await;
        rig.secret("sales-db", &[("password", DB_PASSWORD)]);
        rig.standin
            .set_connection_target("postgresql", &[("password", "what-the-db-wants")]);
        rig.spec(SALES_DB);
        let out = rig.apply().await;
        // Written all the same: a warning, not a stall.
        assert_eq!(
            out.verdict.reason,
            Reason::Configured,
            "{}",
            out.verdict.message
        );
        assert!(out.verdict.ready());
        let entry = &rig.record.data_sources[0];
        assert_eq!(entry.connection, ConnectionState::Failed);
        let message = entry.message.as_deref().expect("ToolJet's message");
        assert!(
            message.contains("password authentication failed"),
            "{message}"
        );
        assert_eq!(out.failed_connections(), vec![("sales-db", message)]);
        // Fixed in the Secret: written again and Ok.
        rig.secret("sales-db", &[("password", "what-the-db-wants")]);
        rig.apply().await;
        assert_eq!(rig.record.data_sources[0].connection, ConnectionState::Ok);
        // The database goes away: the next run (nothing to write) tests again only while not Ok;
        // a write retests.
        rig.standin
            .fail_connections(Some("connect ECONNREFUSED 10.0.0.9:5432"));
        rig.secret("sales-db", &[("password", DB_PASSWORD)]);
        rig.apply().await;
        assert_eq!(
            rig.record.data_sources[0].connection,
            ConnectionState::Failed
        );
        assert_eq!(
            rig.record.data_sources[0].message.as_deref(),
            Some("connect ECONNREFUSED 10.0.0.9:5432")
        );
    }
);

flavoured!(options_are_merged_into_what_tooljet_holds, flavour, {
    let mut rig = Rig::start(flavour).await;
    let client = rig.client();
    client
        .create_data_source(
            "sales-db",
            "postgresql",
            &[
                DataSourceOption {
                    key: "host".into(),
                    value: "dev-db".into(),
                    encrypted: false,
                },
                DataSourceOption {
                    key: "database".into(),
                    value: "sales".into(),
                    encrypted: false,
                },
                DataSourceOption {
                    key: "port".into(),
                    value: 5432.into(),
                    encrypted: false,
                },
            ],
        )
        .await
        .expect("created by an import");
    rig.secret("sales-db", &[("password", DB_PASSWORD)]);
    rig.spec(
        "  dataSources:\n  - name: sales-db\n    options:\n      host: {value: db.prod.svc}\n      port: {value: \"6432\"}\n      password: {valueFrom: {secretKeyRef: {name: sales-db, key: password}}, encrypted: true}\n",
    );
    let out = rig.apply().await;
    assert_eq!(
        out.verdict.reason,
        Reason::Configured,
        "{}",
        out.verdict.message
    );
    let id = rig.data_source_id("sales-db");
    let env = production_env(&rig).await;
    let options = client
        .data_source_options(&id, &env)
        .await
        .expect("options");
    assert_eq!(options["host"]["value"], "db.prod.svc");
    assert_eq!(
        options["database"]["value"], "sales",
        "a key not in the spec is kept"
    );
    assert_eq!(options["port"]["value"], 6432, "typed as ToolJet holds it");
    assert_eq!(options["password"]["encrypted"], true);
    assert_eq!(
        rig.standin.data_source_secret(&id, "password").as_deref(),
        Some(DB_PASSWORD)
    );
});

flavoured!(
    rotation_rewrites_options_and_the_pool_picks_it_up,
    flavour,
    {
        let mut rig = Rig::start(flavour).await;
        rig.secret("sales-db", &[("password", DB_PASSWORD)]);
        rig.spec(&format!(
            "  constants:\n  - {{name: DB_HOST, value: db-a.prod.svc}}\n{}",
            SALES_DB.replace("{value: db.prod.svc}", "{value: \"{{constants.DB_HOST}}\"}")
        ));
        rig.apply().await;
        let id = rig.data_source_id("sales-db");
        let pooled = rig
            .standin
            .connect_as_app(&id)
            .expect("exists")
            .expect("connects");
        assert_eq!(pooled["password"], DB_PASSWORD);
        assert_eq!(pooled["host"], "db-a.prod.svc");

        // The Secret rotates: the options are written again and the pool reconnects.
        rig.secret("sales-db", &[("password", DB_PASSWORD_ROTATED)]);
        let out = rig.apply().await;
        assert!(
            names(&out.actions)
                .iter()
                .any(|a| a.starts_with("write the options of data source \"sales-db\"")),
            "{:?}",
            names(&out.actions)
        );
        assert_eq!(
            rig.standin.data_source_secret(&id, "password").as_deref(),
            Some(DB_PASSWORD_ROTATED)
        );
        let pooled = rig
            .standin
            .connect_as_app(&id)
            .expect("exists")
            .expect("connects");
        assert_eq!(pooled["password"], DB_PASSWORD_ROTATED);

        // A constant changes: the options are written again too, so the pool sees the new value.
        rig.spec(&format!(
            "  constants:\n  - {{name: DB_HOST, value: db-b.prod.svc}}\n{}",
            SALES_DB.replace("{value: db.prod.svc}", "{value: \"{{constants.DB_HOST}}\"}")
        ));
        let out = rig.apply().await;
        assert_eq!(out.actions.len(), 2, "{:?}", names(&out.actions));
        let pooled = rig
            .standin
            .connect_as_app(&id)
            .expect("exists")
            .expect("connects");
        assert_eq!(pooled["host"], "db-b.prod.svc");
    }
);

// Each bad input: refused with its reason, and nothing written (even the good entries).
flavoured!(
    every_bad_input_is_refused_with_nothing_half_written,
    flavour,
    {
        let mut rig = Rig::start(flavour).await;
        let client = rig.client();
        for name in ["twice", "twice"] {
            client
                .create_data_source(name, "restapi", &[])
                .await
                .expect("created");
        }
        client
            .create_data_source("a-mysql", "mysql", &[])
            .await
            .expect("created");
        rig.secret("present", &[("k", "v")]);
        let long = "x".repeat(10_001);
        let good = "  - {name: GOOD, value: g}\n";
        let cases: Vec<(&str, String, Reason, &str)> = vec![
            (
                "missing Secret",
                format!(
                    "  constants:\n{good}  - {{name: A, valueFrom: {{secretKeyRef: {{name: absent, key: k}}}}}}\n"
                ),
                Reason::SecretNotFound,
                "absent",
            ),
            (
                "missing key",
                format!(
                    "  constants:\n{good}  - {{name: A, valueFrom: {{secretKeyRef: {{name: present, key: nope}}}}}}\n"
                ),
                Reason::SecretNotFound,
                "nope",
            ),
            (
                "bad name",
                format!("  constants:\n{good}  - {{name: 9lives, value: v}}\n"),
                Reason::InvalidSpec,
                "9lives",
            ),
            (
                "too long",
                format!("  constants:\n{good}  - {{name: LONG, value: {long}}}\n"),
                Reason::InvalidSpec,
                "10,000",
            ),
            (
                "duplicate",
                format!("  constants:\n{good}  - {{name: GOOD, value: h}}\n"),
                Reason::InvalidSpec,
                "twice",
            ),
            (
                "data source listed twice",
                format!(
                    "  constants:\n{good}  dataSources:\n  - {{name: a-mysql}}\n  - {{name: a-mysql}}\n"
                ),
                Reason::InvalidSpec,
                "listed twice",
            ),
            (
                "ambiguous",
                format!(
                    "  constants:\n{good}  dataSources:\n  - {{name: twice, options: {{url: {{value: 'http://x'}}}}}}\n"
                ),
                Reason::DataSourceAmbiguous,
                "2 times",
            ),
            (
                "kind mismatch",
                format!(
                    "  constants:\n{good}  dataSources:\n  - {{name: a-mysql, kind: postgresql, options: {{host: {{value: h}}}}}}\n"
                ),
                Reason::DataSourceKindMismatch,
                "mysql",
            ),
        ];
        for (what, yaml, reason, named) in cases {
            rig.spec(&yaml);
            let writes = rig.standin.write_count();
            let out = rig.apply().await;
            assert_eq!(
                out.verdict.reason, reason,
                "{what}: {}",
                out.verdict.message
            );
            assert!(out.verdict.stalled(), "{what}");
            assert!(
                out.verdict.message.contains(named),
                "{what}: {}",
                out.verdict.message
            );
            assert!(
                out.verdict.message.contains("nothing written"),
                "{what}: {}",
                out.verdict.message
            );
            assert!(out.actions.is_empty(), "{what}");
            assert_eq!(
                rig.standin.write_count(),
                writes,
                "{what}: nothing half-written"
            );
            assert!(rig.constant("GOOD").is_none(), "{what}");
            assert!(rig.record.constants.is_empty(), "{what}");
        }
    }
);

flavoured!(plan_lists_writes_and_writes_nothing, flavour, {
    let mut rig = Rig::start(flavour).await;
    rig.secret("sales-db", &[("password", DB_PASSWORD)]);
    rig.spec(&format!(
        "  constants:\n  - {{name: REGION, value: eu}}\n{SALES_DB}"
    ));
    let writes = rig.standin.write_count();
    let out = rig.run(Mode::Plan).await;
    assert_eq!(out.verdict.reason, Reason::Configured);
    assert_eq!(out.actions.len(), 2, "{:?}", names(&out.actions));
    assert_eq!(rig.standin.write_count(), writes);
    assert!(rig.standin.constants().is_empty());
    assert!(rig.record.constants.is_empty());
});

// ---- command line ----------------------------------------------------------------------------

fn manifests(dir: &std::path::Path, standin: &StandIn, password: &str, constants: &str) -> PathBuf {
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: tj-login, namespace: ci}}
stringData: {{email: {EMAIL}, password: {PASSWORD}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sales-db, namespace: ci}}
stringData: {{password: {password}}}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: ToolJetInstance
metadata: {{name: tooljet-prod, namespace: ci}}
spec:
  url: {url}
  environment: production
  workspaceId: {ws}
  auth: {{password: {{secretRef: {{name: tj-login}}}}}}
  constants:
{constants}
{sales_db}"#,
        url = standin.base_url(),
        ws = standin.workspace_id(),
        sales_db = SALES_DB,
    );
    let path = dir.join("prod.yaml");
    std::fs::write(&path, yaml).expect("write");
    path
}

async fn cli(dir: &std::path::Path, args: &[&str]) -> (String, String, bool) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"))
        .args(args)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

flavoured!(
    sync_and_plan_from_files_configure_an_environment_without_a_cluster,
    flavour,
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let standin = StandIn::builder()
            .flavour(flavour)
            .credentials(EMAIL, PASSWORD)
            .start()
            .await
            .expect("stand-in");
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        let state_arg = state.to_str().expect("utf8");
        let constants = "  - {name: REGION, value: eu-central-1}";
        let file = manifests(dir.path(), &standin, DB_PASSWORD, constants);
        let file_arg = file.to_str().expect("utf8");

        let (stdout, stderr, ok) =
            cli(dir.path(), &["plan", "-f", file_arg, "--state", state_arg]).await;
        assert!(ok, "{stdout}{stderr}");
        assert!(
            stdout.contains("would: create Global constant REGION"),
            "{stdout}"
        );
        assert!(
            stdout.contains("would: create the postgresql data source \"sales-db\""),
            "{stdout}"
        );
        assert!(
            !format!("{stdout}{stderr}").contains(DB_PASSWORD),
            "plan showed a value"
        );
        assert!(
            !stdout.contains("eu-central-1"),
            "plan showed a value: {stdout}"
        );
        assert_eq!(standin.write_count(), 0, "plan writes nothing");
        assert!(standin.constants().is_empty());

        let (stdout, stderr, ok) =
            cli(dir.path(), &["sync", "-f", file_arg, "--state", state_arg]).await;
        assert!(ok, "{stdout}{stderr}");
        assert!(
            stdout.contains("ci/tooljet-prod (ToolJetInstance): ready (Configured)"),
            "{stdout}"
        );
        assert_eq!(standin.constants()[0].value, "eu-central-1");
        let id = standin.data_sources()[0].id.clone();
        assert_eq!(
            standin.data_source_secret(&id, "password").as_deref(),
            Some(DB_PASSWORD)
        );
        let saved = std::fs::read_to_string(&state).expect("state file");
        assert!(
            saved.contains("toolJetInstances") && saved.contains("REGION"),
            "{saved}"
        );
        assert!(
            !saved.contains(DB_PASSWORD) && !saved.contains("eu-central-1"),
            "{saved}"
        );
        assert!(!format!("{stdout}{stderr}").contains(DB_PASSWORD));

        // Rotated in the files: plan names the write, sync makes it.
        let file = manifests(dir.path(), &standin, DB_PASSWORD_ROTATED, constants);
        let file_arg = file.to_str().expect("utf8");
        let (stdout, stderr, _) =
            cli(dir.path(), &["plan", "-f", file_arg, "--state", state_arg]).await;
        assert!(
            stdout.contains("would: write the options of data source \"sales-db\""),
            "{stdout}"
        );
        assert!(!format!("{stdout}{stderr}").contains(DB_PASSWORD_ROTATED));
        let (stdout, stderr, ok) =
            cli(dir.path(), &["sync", "-f", file_arg, "--state", state_arg]).await;
        assert!(ok, "{stdout}{stderr}");
        assert_eq!(
            standin.data_source_secret(&id, "password").as_deref(),
            Some(DB_PASSWORD_ROTATED)
        );
        let saved = std::fs::read_to_string(&state).expect("state file");
        assert!(!saved.contains(DB_PASSWORD_ROTATED));

        // Bad input in a pipeline: exit 1, the reason, nothing written.
        let writes = standin.write_count();
        let file = manifests(
            dir.path(),
            &standin,
            DB_PASSWORD,
            "  - {name: REGION, value: eu-central-2}\n  - {name: TOKEN, valueFrom: {secretKeyRef: {name: sales-db, key: token}}}",
        );
        let (stdout, _, ok) = cli(
            dir.path(),
            &[
                "sync",
                "-f",
                file.to_str().expect("utf8"),
                "--state",
                state_arg,
            ],
        )
        .await;
        assert!(!ok);
        assert!(
            stdout.contains("NOT READY (SecretNotFound)") && stdout.contains("token"),
            "{stdout}"
        );
        assert_eq!(standin.write_count(), writes);
        assert_eq!(standin.constants()[0].value, "eu-central-1");
    }
);

// ---- controllers -----------------------------------------------------------------------------

mod controllers {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use kube::runtime::controller::Action as Requeue;
    use kube::runtime::events::{Recorder, Reporter};
    use serde_json::json;
    use tooljet_operator::controller::instance::{InstanceContext, reconcile};

    use test_support::kube_mock::{base64_of, finish, mock_api, secret_cache};

    const NS: &str = "team";
    const API_KEY: &str = "mock-config-key";

    fn instance_json(standin: &StandIn) -> serde_json::Value {
        json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": {"name": "tj", "namespace": NS, "generation": 3, "uid": "i-9"},
            "spec": {"url": standin.base_url(), "environment": "production",
                     "workspaceId": standin.workspace_id(),
                     "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}},
                     "constants": [{"name": "REGION", "value": "eu"}],
                     "dataSources": [{"name": "sales-db", "kind": "postgresql", "options": {
                         "host": {"value": "db"},
                         "password": {"valueFrom": {"secretKeyRef": {"name": "sales-db", "key": "password"}},
                                      "encrypted": true}}}]}
        })
    }

    fn secret(name: &str, data: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"}, "data": data})
    }

    /// One reconcile against the mock API server: the requeue, the status patch's body, every
    /// request body (to search for secrets) and the Events posted ("type reason").
    async fn reconcile_once(
        instance: serde_json::Value,
        secrets: Vec<serde_json::Value>,
    ) -> (Requeue, serde_json::Value, String, Vec<String>) {
        let obj: ToolJetInstance = serde_json::from_value(instance.clone()).expect("instance");
        let (client, server) = mock_api(move |_| (http::StatusCode::OK, instance.clone()));
        let reporter = Reporter {
            controller: "tooljet-operator".into(),
            instance: None,
        };
        let ctx = Arc::new(InstanceContext {
            client: client.clone(),
            secrets: secret_cache(secrets),
            recorder: Recorder::new(client, reporter),
        });
        let action = reconcile(Arc::new(obj), ctx.clone())
            .await
            .expect("reconcile");
        drop(ctx);
        let seen = finish(server).await;
        let patches: Vec<_> = seen.iter().filter(|r| r.uri.contains("/status?")).collect();
        assert_eq!(patches.len(), 1, "one status patch: {seen:#?}");
        let events = seen
            .iter()
            .filter(|r| r.method == "POST" && r.uri.contains("/events"))
            .map(|e| {
                let body = e.json();
                format!(
                    "{} {}",
                    body["type"].as_str().unwrap_or_default(),
                    body["reason"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let raw = seen.iter().map(|r| r.body.as_str()).collect();
        (action, patches[0].json(), raw, events)
    }

    fn condition<'a>(body: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
        body["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_))
            .unwrap_or_else(|| panic!("no {type_} in {body}"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_instance_controller_applies_and_reports_without_values() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let standin = StandIn::builder()
            .admin_api_key(API_KEY)
            .start()
            .await
            .expect("stand-in");
        standin.set_connection_target("postgresql", &[("password", DB_PASSWORD)]);
        let instance = instance_json(&standin);
        let admin = secret("tj-admin", json!({"api-key": base64_of(API_KEY)}));

        // The password Secret is missing: ConfigApplied=False, Ready=False, nothing written.
        let (action, body, raw, events) =
            reconcile_once(instance.clone(), vec![admin.clone()]).await;
        assert_eq!(action, Requeue::requeue(Duration::from_secs(60)));
        assert_eq!(events, ["Warning SecretNotFound"]);
        let applied = condition(&body, "ConfigApplied");
        assert_eq!(
            (applied["status"].as_str(), applied["reason"].as_str()),
            (Some("False"), Some("SecretNotFound"))
        );
        assert_eq!(applied["observedGeneration"], 3);
        assert_eq!(condition(&body, "Ready")["status"], "False");
        assert!(standin.constants().is_empty() && standin.data_sources().is_empty());
        assert!(!raw.contains(API_KEY));

        // With the Secret: applied, tested, recorded by name and hash only.
        let db = secret("sales-db", json!({"password": base64_of(DB_PASSWORD)}));
        let (action, body, raw, events) =
            reconcile_once(instance.clone(), vec![admin.clone(), db.clone()]).await;
        assert_eq!(action, Requeue::requeue(Duration::from_secs(300)));
        assert_eq!(events, ["Normal Connected", "Normal Configured"]);
        assert_eq!(condition(&body, "Ready")["status"], "True");
        assert_eq!(condition(&body, "ConfigApplied")["reason"], "Configured");
        assert_eq!(condition(&body, "DataSourcesHealthy")["status"], "True");
        assert_eq!(body["status"]["constants"][0]["name"], "REGION");
        assert_eq!(body["status"]["dataSources"][0]["connection"], "Ok");
        assert!(
            !raw.contains(DB_PASSWORD) && !raw.contains(API_KEY),
            "{raw}"
        );
        assert_eq!(standin.constants()[0].value, "eu");

        // A failed connection test: a warning condition, the instance stays Ready.
        standin.set_connection_target("postgresql", &[("password", "another")]);
        let mut with_status = instance.clone();
        with_status["status"] = body["status"].clone();
        with_status["status"]["dataSources"][0]["connection"] = json!("Failed");
        let (action, body, raw, events) = reconcile_once(with_status, vec![admin, db]).await;
        assert!(
            !events.iter().any(|e| e.contains("Connected")),
            "still Ready: no Event for it {events:?}"
        );
        assert_eq!(action, Requeue::requeue(Duration::from_secs(300)));
        assert_eq!(condition(&body, "Ready")["status"], "True");
        let healthy = condition(&body, "DataSourcesHealthy");
        assert_eq!(
            (healthy["status"].as_str(), healthy["reason"].as_str()),
            (Some("False"), Some("DataSourceTestFailed"))
        );
        assert!(
            healthy["message"].as_str().is_some_and(
                |m| m.contains("sales-db") && m.contains("password authentication failed")
            ),
            "{healthy}"
        );
        assert!(!raw.contains(DB_PASSWORD));
    }

    #[tokio::test]
    async fn an_app_import_waits_for_its_instance_configuration() {
        use git_fixtures::tooljet::CREDIT_CARD;
        use kube::runtime::events::{Recorder, Reporter};
        use tooljet_operator::api::AppImport;
        use tooljet_operator::controller::app_import::{Context, reconcile as reconcile_app};
        use tooljet_operator::source::{CacheConfig, SourceCache};

        let _ = rustls::crypto::ring::default_provider().install_default();
        let standin = StandIn::builder()
            .admin_api_key(API_KEY)
            .start()
            .await
            .expect("stand-in");
        let mut instance: ToolJetInstance =
            serde_json::from_value(instance_json(&standin)).expect("instance");
        instance.metadata.resource_version = Some("4".into());
        let app = json!({
            "apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": "a", "namespace": NS, "uid": "u-1", "generation": 1,
                         "resourceVersion": "7", "finalizers": ["gitops.tooljet.dev/finalizer"]},
            "spec": {"environment": "production",
                     "source": {"url": "file:///nowhere", "ref": {"branch": "master"}, "app": CREDIT_CARD.0}},
        });
        let echo = app.clone();
        let (client, server) = mock_api(move |_| (http::StatusCode::OK, echo.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = Arc::new(Context::new(
            client.clone(),
            SourceCache::new(CacheConfig {
                dir: dir.path().to_owned(),
                ..CacheConfig::default()
            }),
            Recorder::new(
                client,
                Reporter {
                    controller: "tooljet-operator".into(),
                    instance: None,
                },
            ),
            test_support::kube_mock::ready_store(vec![instance]),
            secret_cache(vec![secret(
                "tj-admin",
                json!({"api-key": base64_of(API_KEY)}),
            )]),
        ));
        let obj: AppImport = serde_json::from_value(app).expect("app");
        let action = reconcile_app(Arc::new(obj), ctx.clone())
            .await
            .expect("reconcile");
        drop(ctx);
        let seen = finish(server).await;
        let body = seen[0].json();
        let ready = condition(&body, "Ready");
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("WaitingForInstanceConfig"))
        );
        assert!(
            ready["message"]
                .as_str()
                .is_some_and(|m| m.contains("team/tj")),
            "{ready}"
        );
        assert_eq!(condition(&body, "Reconciling")["status"], "True");
        // Retried soon (backoff), not at the interval.
        assert_ne!(action, Requeue::requeue(Duration::from_secs(300)));
        assert!(standin.apps().is_empty(), "nothing imported");
    }
}
