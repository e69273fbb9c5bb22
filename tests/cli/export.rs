//! `tooljet-operator export -f` as a pipeline runs it: the real binary, manifest files, the
//! ToolJet stand-in and a repository served over SSH, the push key and known_hosts in a Secret.

use std::path::PathBuf;
use std::process::Output;

use git_fixtures::tooljet::ORDERS_DASHBOARD;
use git_fixtures::{SshGitServer, TestRepo};
use serde_json::Value;
use test_support::engine;
use test_support::pipeline::{EMAIL, PASSWORD, start_standin};
use tooljet_standin::{Flavour, StandIn, flavoured};

const APP: &str = ORDERS_DASHBOARD.0;
const API_KEY: &str = "export-cli-admin-key-0451";
const BRANCH: &str = "tooljet/development";

struct Pipeline {
    flavour: Flavour,
    standin: StandIn,
    repo: TestRepo,
    git: SshGitServer,
    dir: tempfile::TempDir,
}

impl Pipeline {
    async fn new(flavour: Flavour) -> Pipeline {
        let repo = TestRepo::new();
        repo.write("README.md", "apps");
        repo.commit("initial");
        let git = SshGitServer::start();
        let standin = start_standin(flavour, API_KEY).await;
        let p = Pipeline {
            flavour,
            standin,
            repo,
            git,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        p.client()
            .import_bundle(ORDERS_DASHBOARD.1, APP)
            .await
            .expect("seed the app");
        p
    }

    fn client(&self) -> tooljet_operator::tooljet::ToolJetClient {
        engine::client(&self.standin, self.flavour, API_KEY, None)
    }

    /// The manifests; the push Secret holds `identity` (the server's user key unless given).
    fn manifests(&self, apps: &str, identity: Option<&str>) -> PathBuf {
        let identity = identity.unwrap_or(self.git.private_key());
        let indented: String = identity.lines().map(|l| format!("    {l}\n")).collect();
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
apiVersion: v1
kind: Secret
metadata: {{name: git-push, namespace: ci}}
stringData:
  identity: |
{indented}  known_hosts: "{known_hosts}"
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: ToolJetInstance
metadata: {{name: tooljet-dev, namespace: ci}}
spec:
  url: {url}
  environment: development
  workspaceId: {ws}
  auth: {auth}
---
apiVersion: gitops.tooljet.dev/v1alpha1
kind: AppExport
metadata: {{name: dev-export, namespace: ci}}
spec:
  environment: development
  apps: {apps}
  destination:
    url: "{git}"
    branch: {BRANCH}
    secretRef: {{name: git-push}}
  author: {{name: ToolJet export, email: tooljet@example.com}}
"#,
            url = self.standin.base_url(),
            ws = self.standin.workspace_id(),
            git = self.git.url(self.repo.served_path()),
            known_hosts = self.git.known_hosts_line(),
        );
        let path = self.dir.path().join("export.yaml");
        std::fs::write(&path, yaml).expect("write manifests");
        path
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"));
        cmd.args(args)
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("RUST_LOG", "debug");
        cmd.output().await.expect("runs")
    }

    fn commits(&self) -> String {
        self.repo.served_git(&["rev-list", "--count", "--all"])
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

flavoured!(export_commits_once_then_reports_up_to_date, flavour, {
    let p = Pipeline::new(flavour).await;
    let file = p.manifests(&format!("[\"{APP}\"]"), None);
    let file = file.to_str().expect("utf8");

    let out = p.run(&["export", "-f", file, "-o", "json"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let results: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(results[0]["name"], "ci/dev-export");
    assert_eq!(results[0]["reason"], "Exported");
    let sha = results[0]["commit"]["sha"]
        .as_str()
        .expect("sha")
        .to_owned();
    assert_eq!(p.repo.served_git(&["rev-parse", BRANCH]), sha);
    assert!(
        p.repo
            .served_git(&["ls-tree", "-r", "--name-only", BRANCH])
            .contains(&format!("{APP}/")),
    );
    let key_body = p
        .git
        .private_key()
        .lines()
        .nth(1)
        .expect("key body")
        .to_owned();
    for secret in [key_body.as_str(), PASSWORD, API_KEY] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed"
        );
    }
    let commits = p.commits();

    let out = p.run(&["export", "-f", file]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ci/dev-export: ready (UpToDate)"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("unchanged: {APP}")), "{stdout}");
    assert_eq!(p.commits(), commits, "no second commit");
});

#[tokio::test]
async fn failures_exit_1_and_unusable_input_exits_2() {
    let p = Pipeline::new(Flavour::V3).await;
    let before = p.repo.served_git(&["for-each-ref"]);

    // An app ToolJet does not have: exit 1, the reason printed, nothing pushed.
    let file = p.manifests("[\"No Such App\"]", None);
    let out = p.run(&["export", "-f", file.to_str().unwrap()]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("NOT READY (AppNotFound)"), "{stdout}");

    // A key the server does not know: exit 1, authentication named, the key never printed.
    let (other_key, _) = SshGitServer::keygen(None);
    let other_body = other_key.lines().nth(1).expect("key body").to_owned();
    let file = p.manifests(&format!("[\"{APP}\"]"), Some(&other_key));
    let out = p.run(&["export", "-f", file.to_str().unwrap()]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("GitAuthenticationFailed"), "{stdout}");
    assert!(!stdout.contains(&other_body) && !stderr.contains(&other_body));
    assert_eq!(
        p.repo.served_git(&["for-each-ref"]),
        before,
        "nothing pushed"
    );

    // A non-editable AppImport of the same app on the same instance: refused (it would loop);
    // an editable one may coexist.
    let file = p.manifests(&format!("[\"{APP}\"]"), None);
    let with_import = |editable: bool| {
        format!(
            "{}---\napiVersion: gitops.tooljet.dev/v1alpha1\nkind: AppImport\nmetadata: {{name: orders, namespace: ci}}\nspec:\n  environment: development\n  editable: {editable}\n  source: {{url: \"file:///nowhere\", ref: {{branch: {BRANCH}}}, app: \"{APP}\"}}\n",
            std::fs::read_to_string(&file).unwrap()
        )
    };
    let conflicting = p.dir.path().join("conflict.yaml");
    std::fs::write(&conflicting, with_import(false)).unwrap();
    let out = p
        .run(&["export", "-f", conflicting.to_str().unwrap()])
        .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("NOT READY (ConflictsWithAppImport)"),
        "{stdout}"
    );
    assert!(stdout.contains("ci/orders"), "{stdout}");
    assert_eq!(
        p.repo.served_git(&["for-each-ref"]),
        before,
        "nothing pushed"
    );
    std::fs::write(&conflicting, with_import(true)).unwrap();
    let out = p
        .run(&["export", "-f", conflicting.to_str().unwrap()])
        .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("ready (Exported)"), "{stdout}");

    // A branch git refuses: unusable input, exit 2, before anything is contacted.
    let yaml = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&format!("branch: {BRANCH}"), "branch: \"bad..branch\"");
    std::fs::write(&file, yaml).unwrap();
    let out = p.run(&["export", "-f", file.to_str().unwrap()]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("destination.branch"), "{stderr}");

    // No AppExport at all: exit 2.
    let empty = p.dir.path().join("empty.yaml");
    std::fs::write(
        &empty,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let out = p.run(&["export", "-f", empty.to_str().unwrap()]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no AppExport"), "{stderr}");
}
