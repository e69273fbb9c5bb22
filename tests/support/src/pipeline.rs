//! Shared set-up of the reliability suites: a pipeline (manifests, state file, cache) around the
//! real binary, the ToolJet stand-in and a real git repository, and the invariant every recovery
//! must restore.

use std::path::{Path, PathBuf};
use std::process::Output;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use serde_json::json;
use tooljet_standin::{AppSnapshot, Flavour, StandIn};

pub const APP: &str = CREDIT_CARD.0;
/// The login of the 2.27 stand-in (no admin API key there).
pub const EMAIL: &str = "reliability@example.com";
pub const PASSWORD: &str = "reliability-test-password-5521";
/// The version the 2.x stand-in claims: the credit card bundle was exported from 2.50.5, and the
/// operator refuses a bundle newer than the server (issue 13, item 9). It still answers as 2.27.1.
pub const V2_VERSION: &str = "2.50.5";

/// A stand-in of `flavour` with both logins (the admin API key `api_key`, used on 3.x, and
/// [`EMAIL`]/[`PASSWORD`], used on 2.27); a 2.x one claims [`V2_VERSION`].
pub async fn start_standin(flavour: Flavour, api_key: &str) -> StandIn {
    start_standin_claiming(flavour, api_key, None).await
}

/// Like [`start_standin`], with the stand-in claiming `version` (by default its flavour's, and
/// [`V2_VERSION`] on 2.x).
pub async fn start_standin_claiming(
    flavour: Flavour,
    api_key: &str,
    version: Option<&str>,
) -> StandIn {
    let mut builder = StandIn::builder()
        .flavour(flavour)
        .credentials(EMAIL, PASSWORD)
        .admin_api_key(api_key);
    let default = (flavour == Flavour::V2_27).then_some(V2_VERSION);
    if let Some(v) = version.or(default) {
        builder = builder.server_version(v);
    }
    builder.start().await.expect("stand-in starts")
}

/// A small seeded generator (splitmix64): reproducible draws without another crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}

/// The credit-card app with `appV2.icon` set to `version`: how the suites tell versions apart.
pub fn bundle_version(version: &str) -> Vec<u8> {
    let mut bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
    bundle["app"][0]["definition"]["appV2"]["icon"] = json!(version);
    serde_json::to_vec(&bundle).expect("json")
}

/// Pushes `version` of the app to the repository, as ToolJet's Git Sync would.
pub fn push_version(repo: &TestRepo, version: &str) -> String {
    repo.git_sync_write("app-1", APP, version, &bundle_version(version));
    let sha = repo.commit(&format!("{APP} {version}"));
    repo.publish();
    sha
}

/// A CI pipeline around the real binary: manifests, state file and git cache in one directory.
pub struct Pipeline {
    pub dir: tempfile::TempDir,
    pub api_key: String,
    /// The instance logs in with the admin API key on 3.x, with [`EMAIL`]/[`PASSWORD`] on 2.27.
    pub flavour: Flavour,
}

impl Pipeline {
    pub fn new(api_key: &str) -> Pipeline {
        Pipeline::flavoured(api_key, Flavour::V3)
    }

    pub fn flavoured(api_key: &str, flavour: Flavour) -> Pipeline {
        Pipeline {
            dir: tempfile::tempdir().expect("tempdir"),
            api_key: api_key.to_owned(),
            flavour,
        }
    }

    /// Writes the manifests (Secret, ToolJetInstance, AppImport `ci/credit-card`).
    pub fn manifests(&self, standin: &StandIn, git_url: &str, app_import_extra: &str) -> PathBuf {
        let yaml = format!(
            "{}---\n{}",
            self.instance_yaml(standin),
            app_import_yaml("credit-card", git_url, app_import_extra)
        );
        self.write_manifests("staging.yaml", &yaml)
    }

    /// The Secrets and the ToolJetInstance `ci/tooljet-staging` (environment `staging`) of the
    /// stand-in, as YAML documents.
    pub fn instance_yaml(&self, standin: &StandIn) -> String {
        let auth = match self.flavour {
            Flavour::V2_27 => "{password: {secretRef: {name: tj-login}}}",
            Flavour::V3 => "{adminApiKey: {secretRef: {name: tj-admin, key: api-key}}}",
        };
        format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: tj-admin, namespace: ci}}
stringData: {{api-key: {key}}}
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
"#,
            key = self.api_key,
            url = standin.base_url(),
            ws = standin.workspace_id(),
        )
    }

    /// Writes `yaml` to `name` in the pipeline's directory.
    pub fn write_manifests(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).expect("write manifests");
        path
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `tooljet-operator sync -f <manifests> --state <state>` as a command, not yet started.
    pub fn sync_command(&self, manifests: &Path, extra: &[&str]) -> tokio::process::Command {
        self.command("sync", manifests, extra)
    }

    /// `tooljet-operator <verb> -f <manifests> --state <state> <extra>` (`sync` or `plan`), with
    /// the pipeline's git cache and warnings logged, as a command not yet started.
    pub fn command(&self, verb: &str, manifests: &Path, extra: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(crate::operator_bin());
        cmd.arg(verb)
            .arg("-f")
            .arg(manifests)
            .arg("--state")
            .arg(self.state_path())
            .args(extra)
            .env("XDG_CACHE_HOME", self.cache_dir())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        cmd
    }

    pub async fn sync(&self, manifests: &Path) -> Output {
        self.sync_command(manifests, &[])
            .output()
            .await
            .expect("runs")
    }

    /// The owned app's id as the state file records it.
    pub fn state_app_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.state_path()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).expect("state file is JSON");
        v["ci/credit-card"]["app"]["id"].as_str().map(str::to_owned)
    }
}

/// An AppImport `ci/<name>` of [`APP`] from `git_url` (branch master) for the `staging`
/// instance, with `extra` lines of its spec (two-space indented), as a YAML document.
pub fn app_import_yaml(name: &str, git_url: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: gitops.tooljet.dev/v1alpha1
kind: AppImport
metadata: {{name: {name}, namespace: ci}}
spec:
  environment: staging
  source: {{url: "{git_url}", ref: {{branch: master}}, app: "{APP}"}}
{extra}
"#
    )
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What ToolJet holds right after a run: apps under the real name, and leftovers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Seen {
    pub under_name: usize,
    pub leftovers: usize,
}

pub fn seen(standin: &StandIn) -> Seen {
    let apps = standin.apps();
    Seen {
        under_name: apps.iter().filter(|a| a.name == APP).count(),
        leftovers: apps.iter().filter(|a| a.name.starts_with("tjop-")).count(),
    }
}

/// The invariant after recovery: exactly one app under the real name, with `slug`, whose
/// definition is one of `versions`; `slug: None` when any slug will do (a first import), and no leftover (temporary or moved-aside) app.
pub fn assert_converged(standin: &StandIn, slug: Option<&str>, versions: &[&str]) -> AppSnapshot {
    let apps = standin.apps();
    let leftovers: Vec<_> = apps
        .iter()
        .filter(|a| a.name.starts_with("tjop-"))
        .collect();
    assert!(leftovers.is_empty(), "leftover apps: {leftovers:#?}");
    let named: Vec<_> = apps.iter().filter(|a| a.name == APP).collect();
    assert_eq!(named.len(), 1, "apps under the real name: {apps:#?}");
    let app = named[0].clone();
    if let Some(slug) = slug {
        assert_eq!(app.slug, slug, "the end users' URL stays");
    }
    let icon = app.definition["icon"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        versions.contains(&icon.as_str()),
        "definition {icon:?} is none of {versions:?}"
    );
    app
}
