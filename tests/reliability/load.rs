//! Load (issue 9, item 7): many AppImports created, updated and deleted through the engine while
//! the stand-in fails 5% of requests (seeded). Every AppImport is retried, as the controller's
//! backoff would, until it converges (bounded rounds). At the end of each phase: every app exactly
//! once, with the right content and slug, no leftover, nothing lost.
//!
//! 1000 AppImports take about 45 s in a debug build on two shared cores; `LOAD_IMPORTS=<n>`
//! changes the count for a quick local run or a bigger one.

use test_support::pipeline as reliability_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use git_fixtures::TestRepo;
use reliability_common::{APP, push_version};
use serde_json::json;
use tooljet_operator::api::{AppImportSpec, ToolJetInstanceSpec};
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::SyncState;
use tooljet_operator::sync::{Engine, ImportKey, Mode, NoCheckpoint, SyncRequest};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::StandIn;

const API_KEY: &str = "load-test-key";
const ERROR_RATE: f64 = 0.05;
const SEED: u64 = 42;
const MAX_ROUNDS: usize = 25;
const CONCURRENCY: usize = 16;

struct Import {
    key: ImportKey,
    spec: AppImportSpec,
    state: SyncState,
}

fn name_of(i: usize) -> String {
    format!("load-app-{i:04}")
}

struct Load {
    standin: StandIn,
    repo: TestRepo,
    engine: Arc<Engine>,
    client: Arc<ToolJetClient>,
    instance: Arc<ToolJetInstanceSpec>,
    imports: Vec<Import>,
    _cache: tempfile::TempDir,
}

impl Load {
    async fn new(n: usize) -> Load {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let repo = TestRepo::new();
        push_version(&repo, "v1");
        let standin = StandIn::builder()
            .admin_api_key(API_KEY)
            .start()
            .await
            .expect("stand-in starts");
        let cache = tempfile::tempdir().expect("tempdir");
        let engine = Engine::new(SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            ..CacheConfig::default()
        }));
        let mut config = ClientConfig::new(standin.base_url(), Auth::AdminApiKey(API_KEY.into()));
        config.workspace_id = Some(standin.workspace_id().to_owned());
        config.request_timeout = Duration::from_secs(30);
        let instance: ToolJetInstanceSpec = serde_json::from_value(json!({
            "url": standin.base_url(),
            "environment": "development",
            "workspaceId": standin.workspace_id(),
            "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}
        }))
        .expect("instance");
        let imports = (0..n)
            .map(|i| Import {
                key: ImportKey::new("load", format!("import-{i}")),
                spec: serde_json::from_value(json!({
                    "environment": "development",
                    "appName": name_of(i),
                    "source": {"url": repo.file_url(), "ref": {"branch": "master"}, "app": APP},
                }))
                .expect("spec"),
                state: SyncState::default(),
            })
            .collect();
        Load {
            standin,
            repo,
            engine: Arc::new(engine),
            client: Arc::new(ToolJetClient::new(config).expect("client")),
            instance: Arc::new(instance),
            imports,
            _cache: cache,
        }
    }

    /// Syncs every AppImport not yet converged, round after round; returns the rounds taken.
    async fn converge_all(&mut self, phase: &str) -> usize {
        let mut pending: Vec<usize> = (0..self.imports.len()).collect();
        for round in 1..=MAX_ROUNDS {
            let jobs: Vec<_> = pending
                .iter()
                .map(|&i| {
                    let (engine, client, instance) = (
                        self.engine.clone(),
                        self.client.clone(),
                        self.instance.clone(),
                    );
                    let key = self.imports[i].key.clone();
                    let spec = self.imports[i].spec.clone();
                    let state = self.imports[i].state.clone();
                    async move {
                        let out = engine
                            .sync(
                                SyncRequest {
                                    key: key.clone(),
                                    spec: &spec,
                                    instance: &instance,
                                    generation: Some(1),
                                    approve: None,
                                    force_pull: None,
                                    git_credentials: Credentials::Anonymous,
                                    state,
                                },
                                &client,
                                Mode::Apply,
                                &NoCheckpoint,
                            )
                            .await;
                        (i, out)
                    }
                })
                .collect();
            let results: Vec<_> = futures::stream::iter(jobs)
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            pending.clear();
            for (i, out) in results {
                if !out.report.ready() {
                    assert!(
                        out.report.retryable(),
                        "{phase}: {} stalled: {:?}",
                        name_of(i),
                        out.report
                    );
                    pending.push(i);
                }
                self.imports[i].state = out.state;
            }
            if pending.is_empty() {
                return round;
            }
        }
        panic!(
            "{phase}: {} imports did not converge in {MAX_ROUNDS} rounds",
            pending.len()
        );
    }

    /// Every app exactly once, under its name, with `version`, recorded in its state; no leftover.
    fn check(
        &self,
        version: &str,
        slugs: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, String> {
        let apps = self.standin.apps();
        let leftovers: Vec<_> = apps
            .iter()
            .filter(|a| a.name.starts_with("tjop-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{} leftovers, e.g. {:?}",
            leftovers.len(),
            leftovers.first().map(|a| &a.name)
        );
        assert_eq!(
            apps.len(),
            self.imports.len(),
            "one app per AppImport, nothing more"
        );
        let mut by_name: BTreeMap<String, &tooljet_standin::AppSnapshot> = BTreeMap::new();
        for a in &apps {
            assert!(
                by_name.insert(a.name.clone(), a).is_none(),
                "duplicate {}",
                a.name
            );
        }
        let mut found_slugs = BTreeMap::new();
        for (i, imp) in self.imports.iter().enumerate() {
            let name = name_of(i);
            let app = by_name.get(&name).unwrap_or_else(|| panic!("{name} lost"));
            assert_eq!(app.definition["icon"], json!(version), "{name}");
            let recorded = imp
                .state
                .app
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no state"));
            assert_eq!(recorded.id, app.id, "{name}: state true to ToolJet");
            if let Some(slugs) = slugs {
                assert_eq!(slugs.get(&name), Some(&app.slug), "{name}: slug kept");
            }
            found_slugs.insert(name, app.slug.clone());
        }
        found_slugs
    }

    /// Releases every AppImport with deletionPolicy Delete, retrying each until it succeeds.
    async fn delete_all(&mut self) -> usize {
        let mut pending: Vec<usize> = (0..self.imports.len()).collect();
        for round in 1..=MAX_ROUNDS {
            let mut failed = Vec::new();
            for &i in &pending {
                let imp = &self.imports[i];
                if self
                    .engine
                    .release(&imp.key, true, &imp.state, &self.client, Mode::Apply)
                    .await
                    .is_err()
                {
                    failed.push(i);
                }
            }
            pending = failed;
            if pending.is_empty() {
                return round;
            }
        }
        panic!(
            "{} deletions did not finish in {MAX_ROUNDS} rounds",
            pending.len()
        );
    }
}

async fn load(n: usize) {
    let started = Instant::now();
    let mut l = Load::new(n).await;
    l.standin.faults().set_error_rate(ERROR_RATE, SEED);

    let created = l.converge_all("create").await;
    let slugs = l.check("v1", None);

    push_version(&l.repo, "v2");
    let updated = l.converge_all("update").await;
    l.check("v2", Some(&slugs));

    let deleted = l.delete_all().await;
    assert!(
        l.standin.apps().is_empty(),
        "{} apps left",
        l.standin.apps().len()
    );
    let failures = l
        .standin
        .request_log()
        .iter()
        .filter(|r| r.status == Some(500) && !r.reached_handler)
        .count();
    assert!(
        failures > n / 10,
        "the fault knob was on: {failures} injected failures"
    );
    eprintln!(
        "load {n}: rounds create {created}, update {updated}, delete {deleted}; \
         {failures} injected failures; {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_app_imports_converge_through_five_percent_failures() {
    // Not beside the crash runs of this binary: their kill points are timed.
    let _turn = crate::ONE_AT_A_TIME.lock().await;
    let n = std::env::var("LOAD_IMPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    load(n).await;
}
