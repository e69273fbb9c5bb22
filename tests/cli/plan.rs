//! `tooljet-operator plan` says what changes inside each app, as a CI job runs it: the real
//! binary, manifest files, a real git repository with two commits of a fixture app, and the
//! ToolJet stand-in. A one-line summary by default, the whole diff with `--detail`, a
//! pull-request comment with `-o markdown`, the diff itself in `-o json`.

use std::path::PathBuf;
use std::process::Output;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::ORDERS_DASHBOARD;
use serde_json::{Value, json};
use tooljet_standin::{Flavour, StandIn};

const APP: &str = ORDERS_DASHBOARD.0;
const API_KEY: &str = "plan-test-admin-key-8812";
const SUMMARY: &str = "1 page, 1 component, 1 query changed";

struct Pipeline {
    standin: StandIn,
    repo: TestRepo,
    dir: tempfile::TempDir,
}

impl Pipeline {
    async fn new() -> Pipeline {
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", APP, "v1", ORDERS_DASHBOARD.1);
        repo.commit("first version");
        repo.publish();
        let standin = StandIn::builder()
            .flavour(Flavour::V3)
            .admin_api_key(API_KEY)
            .start()
            .await
            .expect("stand-in starts");
        Pipeline {
            standin,
            repo,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn manifests(&self, app_import_extra: &str) -> PathBuf {
        let yaml = format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: tj-admin, namespace: ci}}
stringData: {{api-key: {API_KEY}}}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: ToolJetInstance
metadata: {{name: tooljet-staging, namespace: ci}}
spec:
  url: {url}
  environment: staging
  workspaceId: {ws}
  auth: {{adminApiKey: {{secretRef: {{name: tj-admin, key: api-key}}}}}}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: AppImport
metadata: {{name: orders, namespace: ci}}
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

    /// Runs `verb -f manifests --state state.json` with `extra` arguments.
    async fn run(&self, verb: &str, manifests: &PathBuf, extra: &[&str]) -> Output {
        let state = self.dir.path().join("state.json");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"));
        cmd.arg(verb)
            .arg("-f")
            .arg(manifests)
            .arg("--state")
            .arg(state)
            .args(extra)
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"));
        cmd.output().await.expect("runs")
    }

    /// The developer's commit: the refresh button's label and one query option changed.
    fn push_edit(&self) {
        let mut bundle: Value = serde_json::from_slice(ORDERS_DASHBOARD.1).expect("json");
        let app = &mut bundle["app"][0]["definition"]["appV2"];
        set(
            app,
            "components",
            "refresh_button",
            "/properties/text/value",
            json!("Reload"),
        );
        set(
            app,
            "dataQueries",
            "list_orders",
            "/options/runOnPageLoad",
            json!(false),
        );
        self.repo.git_sync_write(
            "app-1",
            APP,
            "v1",
            &serde_json::to_vec_pretty(&bundle).expect("json"),
        );
        self.repo.commit("reload button");
        self.repo.publish();
    }
}

/// Sets the field at `pointer` of the row named `name` in the app's list `list`.
fn set(app: &mut Value, list: &str, name: &str, pointer: &str, value: Value) {
    let row = app[list]
        .as_array_mut()
        .expect("list")
        .iter_mut()
        .find(|r| r["name"] == name)
        .expect("row");
    *row.pointer_mut(pointer).expect("field") = value;
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

#[tokio::test]
async fn plan_shows_what_changes_inside_the_app_as_summary_detail_markdown_and_json() {
    let p = Pipeline::new().await;
    let manifests = p.manifests("");
    ok(&p.run("sync", &manifests, &[]).await);
    p.push_edit();
    let writes = p.standin.write_count();

    let text = ok(&p.run("plan", &manifests, &[]).await);
    assert!(
        text.contains("would update app \"Orders Dashboard\""),
        "{text}"
    );
    assert!(text.contains(&format!("  changes: {SUMMARY}\n")), "{text}");
    assert!(!text.contains("refresh_button"), "summary only: {text}");

    let detail = ok(&p.run("plan", &manifests, &["--detail"]).await);
    assert!(
        detail.contains(&format!("  changes: {SUMMARY}\n")),
        "{detail}"
    );
    let button = detail
        .lines()
        .position(|l| l.contains("component refresh_button"))
        .unwrap_or_else(|| panic!("the changed component: {detail}"));
    assert!(
        detail
            .lines()
            .skip(button)
            .any(|l| l.contains("\"Reload\"")),
        "{detail}"
    );
    assert!(detail.contains("query list_orders"), "{detail}");

    let markdown = ok(&p.run("plan", &manifests, &["-o", "markdown"]).await);
    assert!(
        markdown.starts_with("### tooljet-operator plan\n\n1 of 1 AppImports would change"),
        "{markdown}"
    );
    assert!(
        markdown.contains("**ci/orders** · ready · Updated:"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!(
            "<details>\n<summary><b>Orders Dashboard</b>: {SUMMARY}</summary>"
        )),
        "{markdown}"
    );
    assert!(markdown.contains("`refresh_button`"), "{markdown}");
    assert!(markdown.trim_end().ends_with("</details>"), "{markdown}");

    let json: Value = serde_json::from_str(&ok(&p.run("plan", &manifests, &["-o", "json"]).await))
        .expect("plan -o json is JSON");
    let changes = &json[0]["changes"];
    assert_eq!(
        changes["pages"][0]["components"][0]["name"], "refresh_button",
        "{json}"
    );
    assert_eq!(changes["queries"][0]["name"], "list_orders", "{json}");
    assert_eq!(p.standin.write_count(), writes, "plan writes nothing");

    // Applied: sync says what it changed; a plan after it has nothing to show.
    let synced = ok(&p.run("sync", &manifests, &[]).await);
    assert!(synced.contains(&format!(": {SUMMARY}")), "{synced}");
    let after = ok(&p.run("plan", &manifests, &["--detail"]).await);
    assert!(!after.contains("changes:"), "{after}");
    let markdown = ok(&p.run("plan", &manifests, &["-o", "markdown"]).await);
    assert!(
        markdown.contains("0 of 1 AppImports would change") && !markdown.contains("<details>"),
        "{markdown}"
    );
}

#[tokio::test]
async fn plan_under_manual_shows_what_the_reviewer_would_approve() {
    let p = Pipeline::new().await;
    let manifests = p.manifests("  updatePolicy: Manual");
    ok(&p.run("sync", &manifests, &[]).await);
    p.push_edit();
    let text = ok(&p.run("plan", &manifests, &[]).await);
    assert!(
        text.contains(&format!("({SUMMARY}) is available")),
        "{text}"
    );
    assert!(text.contains(&format!("  changes: {SUMMARY}\n")), "{text}");
    assert!(text.contains("would: nothing"), "{text}");
    let state: Value = serde_json::from_slice(
        &std::fs::read(p.dir.path().join("state.json")).expect("state file"),
    )
    .expect("json");
    assert!(
        state["ci/orders"]["changes"].is_null(),
        "plan keeps no state: {state}"
    );
    // `sync` keeps what waits in the state file, as the controller does in status.
    ok(&p.run("sync", &manifests, &[]).await);
    let state: Value = serde_json::from_slice(
        &std::fs::read(p.dir.path().join("state.json")).expect("state file"),
    )
    .expect("json");
    assert_eq!(state["ci/orders"]["changes"]["pending"]["summary"], SUMMARY);
}
