//! `sync -f` / `plan -f` with many AppImports: one remote ref listing and at most one fetch per
//! repository per run, counted by the git servers themselves; `--concurrency` overlaps
//! AppImports (and 1 does not), counted by the ToolJet stand-in, while promotion waves keep
//! their order.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use git_fixtures::tooljet::CREDIT_CARD;
use git_fixtures::{GitDaemon, TestRepo};
use test_support::pipeline::{self as ci, app_import_yaml};
use tooljet_standin::{Flavour, StandIn};

const API_KEY: &str = "scale-test-admin-key-7710";
/// AppImports per repository.
const PER_REPO: usize = 3;

fn repo_with_the_app(name: &str) -> TestRepo {
    let repo = TestRepo::named(name);
    repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
    repo.commit("first version");
    repo.publish();
    repo
}

struct Rig {
    standin: StandIn,
    ci: ci::Pipeline,
}

impl Rig {
    async fn new() -> Rig {
        Rig {
            standin: ci::start_standin(Flavour::V3, API_KEY).await,
            ci: ci::Pipeline::new(API_KEY),
        }
    }

    /// The instance, then `count` AppImports of the app from each URL (distinct app names),
    /// and `extra` documents.
    fn manifests(&self, urls: &[String], count: usize, extra: &str) -> PathBuf {
        let mut yaml = self.ci.instance_yaml(&self.standin);
        for (r, url) in urls.iter().enumerate() {
            for i in 0..count {
                let spec = format!("  appName: App {r}-{i}");
                yaml.push_str(&format!(
                    "---\n{}",
                    app_import_yaml(&format!("app-{r}-{i}"), url, &spec)
                ));
            }
        }
        yaml.push_str(extra);
        self.ci.write_manifests("apps.yaml", &yaml)
    }

    async fn run(&self, verb: &str, manifests: &Path, extra: &[&str]) -> Output {
        let mut cmd = self.ci.command(verb, manifests, extra);
        // The run's own count of git traffic is an info line.
        cmd.args(["--log-format", "json"])
            .env("RUST_LOG", "tooljet_operator=info");
        let out = cmd.output().await.expect("runs");
        assert!(out.status.success(), "{verb}: {}", ci::text(&out));
        out
    }
}

/// The run's own count, from its log: (listings, fetches) of `url`.
fn logged_traffic(out: &Output, url: &str) -> (u64, u64) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "git traffic of this run" && l["url"] == url)
        .unwrap_or_else(|| panic!("no traffic line for {url} in:\n{stderr}"));
    (
        line["listings"].as_u64().expect("listings"),
        line["fetches"].as_u64().expect("fetches"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_lists_each_repository_once_and_fetches_it_at_most_once() {
    let repos = [repo_with_the_app("one"), repo_with_the_app("two")];
    let servers: Vec<GitDaemon> = repos
        .iter()
        .map(|r| GitDaemon::start_counting(r.base_dir()))
        .collect();
    let urls: Vec<String> = repos
        .iter()
        .zip(&servers)
        .map(|(r, s)| s.url(&r.served_name()))
        .collect();
    // Connections to each repository's server so far (each lists the refs once).
    let wire = |i: usize| servers[i].upload_pack_requests(&repos[i].served_name());
    let rig = Rig::new().await;
    let manifests = rig.manifests(&urls, PER_REPO, "");

    // First sync: one listing, then one fetch (which lists on its own connection first).
    let first = rig.run("sync", &manifests, &[]).await;
    assert_eq!(
        rig.standin.apps().len(),
        2 * PER_REPO,
        "{}",
        ci::text(&first)
    );
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(wire(i), 2, "{url}");
        assert_eq!(logged_traffic(&first, url), (1, 1), "{url}");
    }

    // Nothing new: one listing per repository, no fetch.
    let noop = rig.run("sync", &manifests, &[]).await;
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(wire(i), 3, "{url}");
        assert_eq!(logged_traffic(&noop, url), (1, 0), "{url}");
    }

    // plan starts from empty mirrors (a temporary directory): one listing, one fetch.
    let plan = rig.run("plan", &manifests, &[]).await;
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(wire(i), 5, "{url}");
        assert_eq!(logged_traffic(&plan, url), (1, 1), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_overlaps_app_imports_and_one_runs_them_in_turn() {
    let repo = repo_with_the_app("apps");
    let rig = Rig::new().await;
    let url = repo.file_url();
    // A downstream of app-0-0 in the same run: it reads what its upstream's wave applied.
    let promoted = format!(
        "---\napiVersion: gitops.tooljet.dev/v1alpha1\nkind: AppImport\nmetadata: {{name: promoted, namespace: ci}}\nspec:\n  environment: staging\n  appName: Promoted\n  source: {{url: \"{url}\", ref: {{fromAppImport: {{name: app-0-0}}, readyFor: 0s}}, app: \"{}\"}}\n",
        CREDIT_CARD.0
    );
    let manifests = rig.manifests(std::slice::from_ref(&url), 4, &promoted);
    // Every request takes a while, so AppImports running at once overlap at ToolJet.
    rig.standin.faults().set_latency(Duration::from_millis(20));

    let one = rig
        .run("sync", &manifests, &["--concurrency", "1", "-o", "json"])
        .await;
    assert_eq!(rig.standin.peak_in_flight(), 1, "one AppImport at a time");
    let results: serde_json::Value = serde_json::from_slice(&one.stdout).expect("json");
    let promoted = results
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["name"] == "ci/promoted")
        .expect("promoted");
    assert_eq!(promoted["report"]["reason"], "Imported", "{promoted}");

    ci::push_version(&repo, "v2");
    rig.standin.reset_peak_in_flight();
    let four = rig
        .run("sync", &manifests, &["--concurrency", "4", "-o", "json"])
        .await;
    assert!(
        rig.standin.peak_in_flight() > 1,
        "AppImports overlapped: peak {}",
        rig.standin.peak_in_flight()
    );
    let results: serde_json::Value = serde_json::from_slice(&four.stdout).expect("json");
    let reasons: Vec<&str> = results
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["report"]["reason"].as_str().expect("reason"))
        .collect();
    // The four follow the branch; the downstream, in the next wave, follows app-0-0 at once.
    assert_eq!(reasons, vec!["Updated"; 5], "{results}");
}
