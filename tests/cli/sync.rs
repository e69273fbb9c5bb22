//! `tooljet-operator sync` and `plan` as a CI pipeline runs them: the real binary, manifest files,
//! a real git repository and the ToolJet stand-in.

use std::path::{Path, PathBuf};
use std::process::Output;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use serde_json::json;
use tooljet_standin::flavoured;
use tooljet_standin::{Flavour, StandIn};

const APP: &str = CREDIT_CARD.0;
const API_KEY: &str = "cli-test-admin-key-0451";
const EMAIL: &str = "ci@example.com";
const PASSWORD: &str = "cli-test-password-7730";

struct Pipeline {
    flavour: Flavour,
    standin: StandIn,
    repo: TestRepo,
    dir: tempfile::TempDir,
}

impl Pipeline {
    /// ToolJet of `flavour`; the instance logs in with a password on 2.27 (no admin API key
    /// there), with the admin API key on 3.x.
    async fn new(flavour: Flavour) -> Pipeline {
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", APP, "v1", CREDIT_CARD.1);
        repo.commit("first version");
        repo.publish();
        let mut builder = StandIn::builder()
            .flavour(flavour)
            .credentials(EMAIL, PASSWORD)
            .admin_api_key(API_KEY);
        // The credit card bundle comes from 2.50.5: a 2.x server must be at least that new, or
        // the operator refuses the bundle (issue 13, item 9). It still answers as 2.27.1 does.
        if flavour == Flavour::V2_27 {
            builder = builder.server_version("2.50.5");
        }
        let standin = builder.start().await.expect("stand-in starts");
        Pipeline {
            flavour,
            standin,
            repo,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes the manifests a team would keep in its pipeline's repository.
    fn manifests(&self, app_import_extra: &str) -> PathBuf {
        let auth = match self.flavour {
            Flavour::V2_27 => "{password: {secretRef: {name: tj-login}}}",
            Flavour::V3 => "{adminApiKey: {secretRef: {name: tj-admin, key: api-key}}}",
        };
        let yaml = format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: tj-admin, namespace: ci}}
stringData: {{api-key: {API_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: tj-login, namespace: ci}}
stringData: {{email: {EMAIL}, password: {PASSWORD}}}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: ToolJetInstance
metadata: {{name: tooljet-staging, namespace: ci}}
spec:
  url: {url}
  environment: staging
  workspaceId: {ws}
  auth: {auth}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: AppImport
metadata: {{name: credit-card, namespace: ci}}
spec:
  environment: staging
  source: {{url: "{git}", ref: {{branch: master}}, app: "{APP}"}}
{app_import_extra}
"#,
            url = self.standin.base_url(),
            ws = self.standin.workspace_id(),
            git = self.repo.file_url(),
        );
        let path = self.dir.path().join("staging.yaml");
        std::fs::write(&path, yaml).expect("write manifests");
        path
    }

    /// A client for the stand-in, as the instance logs in.
    fn client(&self) -> tooljet_operator::tooljet::ToolJetClient {
        use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = match self.flavour {
            Flavour::V2_27 => Auth::Password {
                email: EMAIL.into(),
                password: PASSWORD.into(),
            },
            Flavour::V3 => Auth::AdminApiKey(API_KEY.into()),
        };
        let mut config = ClientConfig::new(self.standin.base_url(), auth);
        config.workspace_id = Some(self.standin.workspace_id().to_owned());
        ToolJetClient::new(config).expect("client")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    async fn run(&self, args: &[&str]) -> Output {
        let cache = self.dir.path().join("cache");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"));
        cmd.args(args)
            .env("XDG_CACHE_HOME", cache)
            .env("RUST_LOG", "debug");
        cmd.output().await.expect("runs")
    }

    async fn sync(&self, manifests: &Path) -> Output {
        self.run(&[
            "sync",
            "-f",
            manifests.to_str().expect("utf8"),
            "--state",
            self.state().to_str().expect("utf8"),
        ])
        .await
    }

    fn the_app(&self) -> tooljet_standin::AppSnapshot {
        let apps = self.standin.apps();
        assert!(
            apps.iter().all(|a| !a.name.starts_with("tjop-")),
            "leftovers: {apps:?}"
        );
        let named: Vec<_> = apps.into_iter().filter(|a| a.name == APP).collect();
        assert_eq!(named.len(), 1, "{named:?}");
        named.into_iter().next().expect("one")
    }

    fn push_v2(&self) {
        let mut bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        bundle["app"][0]["definition"]["appV2"]["icon"] = json!("v2");
        self.repo.git_sync_write(
            "app-1",
            APP,
            "v2",
            &serde_json::to_vec(&bundle).expect("json"),
        );
        self.repo.commit("second version");
        self.repo.publish();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

flavoured!(plan_then_sync_then_nothing_to_do, flavour, {
    let p = Pipeline::new(flavour).await;
    let manifests = p.manifests("");
    let f = manifests.to_str().expect("utf8");

    let plan = p
        .run(&[
            "plan",
            "-f",
            f,
            "--state",
            p.state().to_str().expect("utf8"),
        ])
        .await;
    assert!(plan.status.success(), "{}{}", stdout(&plan), stderr(&plan));
    let text = stdout(&plan);
    assert!(text.contains("ci/credit-card: ready"), "{text}");
    let server = match flavour {
        Flavour::V2_27 => "server: ToolJet 2.50.5 (2.x routes)",
        Flavour::V3 => "server: ToolJet 3.5.11 (3.x routes)",
    };
    assert!(text.contains(server), "{text}");
    assert!(text.contains("would: import the app from commit"), "{text}");
    assert!(text.contains("would import app"), "{text}");
    assert!(
        text.contains(&format!("would: give app (new app) the name {APP:?}")),
        "{text}"
    );
    assert_eq!(p.standin.write_count(), 0, "plan writes nothing to ToolJet");
    assert!(!p.state().exists(), "plan writes no state");

    let sync = p.sync(&manifests).await;
    assert!(sync.status.success(), "{}{}", stdout(&sync), stderr(&sync));
    assert!(stdout(&sync).contains("(Imported)"), "{}", stdout(&sync));
    let app = p.the_app();
    assert!(p.state().exists());

    let writes = p.standin.write_count();
    let again = p.sync(&manifests).await;
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("did: nothing"),
        "{}",
        stdout(&again)
    );
    assert_eq!(p.standin.write_count(), writes);

    p.push_v2();
    let json_out = p
        .run(&[
            "sync",
            "-f",
            f,
            "--state",
            p.state().to_str().expect("utf8"),
            "-o",
            "json",
        ])
        .await;
    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let results: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("json output");
    assert_eq!(results[0]["report"]["reason"], json!("Updated"));
    assert_eq!(
        results[0]["server"],
        json!(server.trim_start_matches("server: "))
    );
    let updated = p.the_app();
    assert_eq!(updated.slug, app.slug);
    assert_eq!(updated.definition["icon"], json!("v2"));

    // No secret in anything the command printed, even at debug level.
    for out in [&plan, &sync, &again, &json_out] {
        for secret in [API_KEY, PASSWORD] {
            assert!(!stdout(out).contains(secret) && !stderr(out).contains(secret));
        }
    }
});

flavoured!(
    a_conflict_exits_non_zero_with_a_clear_reason_and_writes_nothing,
    flavour,
    {
        let p = Pipeline::new(flavour).await;
        let bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        p.client()
            .import_app(&bundle, APP)
            .await
            .expect("someone's own app");
        let writes = p.standin.write_count();

        let out = p.sync(&p.manifests("")).await;
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stdout(&out).contains("NOT READY (NameConflict)"),
            "{}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("adoptExisting"), "{}", stdout(&out));
        assert_eq!(p.standin.write_count(), writes);
    }
);

flavoured!(
    invalid_manifest_is_refused_before_anything_happens,
    flavour,
    {
        let p = Pipeline::new(flavour).await;
        let manifests = p.manifests("  interval: 1s");
        let out = p.sync(&manifests).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("interval"), "{}", stderr(&out));
        assert_eq!(p.standin.write_count(), 0);
    }
);

// The command line's own failure path: each call of the swap failed once, then a clean run.
flavoured!(failed_swap_then_a_clean_run_converges, flavour, {
    // 2.x releases with PUT /api/apps/:id: one more PUT there than on 3.x.
    let puts = match flavour {
        Flavour::V2_27 => 3,
        Flavour::V3 => 2,
    };
    let calls = std::iter::once(("POST", "/api/v2/resources/import", 1))
        .chain((1..=puts).map(|n| ("PUT", "/api/apps/*", n)))
        .chain([("DELETE", "/api/apps/*", 1)]);
    for (method, pattern, nth) in calls {
        let p = Pipeline::new(flavour).await;
        let manifests = p.manifests("");
        assert!(p.sync(&manifests).await.status.success());
        let slug = p.the_app().slug;
        p.push_v2();
        p.standin.faults().fail_nth(method, pattern, nth, 502);
        let failed = p.sync(&manifests).await;
        p.standin.faults().reset();
        assert_eq!(
            failed.status.code(),
            Some(1),
            "{flavour}: {method} {pattern} #{nth}"
        );
        assert_eq!(
            p.standin.apps().iter().filter(|a| a.name == APP).count(),
            1,
            "a working app under the real name after {method} {pattern} #{nth}"
        );
        let ok = p.sync(&manifests).await;
        assert!(ok.status.success(), "{}", stdout(&ok));
        let app = p.the_app();
        assert_eq!(app.slug, slug);
        assert_eq!(app.definition["icon"], json!("v2"));
    }
});
