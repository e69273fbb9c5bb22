//! The parts a benchmark runs against: the ToolJet stand-in in a child process, repositories in
//! ToolJet's Git Sync layout served by `git daemon`, a fleet of AppImports over one engine, and
//! the baseline script.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use git_fixtures::tooljet::{BASE64, CODE_EXPLAINER, CREDIT_CARD};
use git_fixtures::{GitDaemon, TestRepo};
use serde_json::json;
use tooljet_operator::api::{AppImportSpec, ToolJetInstanceSpec};
use tooljet_operator::source::{CacheConfig, Credentials, MirrorStats, SourceCache};
use tooljet_operator::sync::SyncState;
use tooljet_operator::sync::{Engine, ImportKey, Mode, NoCheckpoint, SyncRequest};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};

use crate::Fail;

/// A dummy key for a stand-in on loopback; not a secret of anyone's.
pub const API_KEY: &str = "bench-admin-key";
/// Set in the environment of the child process that runs the stand-in.
pub const CHILD_ENV: &str = "TOOLJET_OPERATOR_BENCH_STANDIN";

/// Entry point of the child process: runs the stand-in and answers counters on stdin/stdout
/// (`writes`, `requests`, `apps`, `lists`) until stdin closes. The stand-in runs out of the measuring
/// process so that its memory (every imported bundle) is not counted as the engine's.
pub fn standin_child() -> Result<(), Fail> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let standin = tooljet_standin::StandIn::builder()
            .admin_api_key(API_KEY)
            .start()
            .await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ready {} {}",
            standin.base_url(),
            standin.workspace_id()
        )?;
        out.flush()?;
        drop(out);
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
        while let Some(line) = lines.next_line().await? {
            let answer = match line.trim() {
                "writes" => standin.write_count(),
                "requests" => standin.request_log().len(),
                "apps" => standin.apps().len(),
                "lists" => standin
                    .request_log()
                    .iter()
                    .filter(|r| r.method == "GET" && r.path == "/api/apps")
                    .count(),
                other => return Err(format!("unknown stand-in command {other:?}").into()),
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{answer}")?;
            out.flush()?;
        }
        standin.shutdown();
        Ok(())
    })
}

/// The stand-in running in a child process (this same program, see [`standin_child`]).
pub struct StandInProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub base_url: String,
    pub workspace_id: String,
}

impl StandInProc {
    pub fn start() -> Result<StandInProc, Fail> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("stand-in child has no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("stand-in has no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (Some("ready"), Some(url), Some(ws)) = (words.next(), words.next(), words.next())
        else {
            return Err(format!("the stand-in child did not start: {line:?}").into());
        };
        Ok(StandInProc {
            base_url: url.to_owned(),
            workspace_id: ws.to_owned(),
            child,
            stdin: Some(stdin),
            stdout,
        })
    }

    fn ask(&mut self, what: &str) -> Result<usize, Fail> {
        let stdin = self.stdin.as_mut().ok_or("stand-in stopped")?;
        writeln!(stdin, "{what}")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().parse()?)
    }

    /// The child's process id (its CPU time and memory are in `/proc/<pid>/`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes that reached ToolJet's handlers so far (see `StandIn::write_count`).
    pub fn writes(&mut self) -> Result<usize, Fail> {
        self.ask("writes")
    }

    pub fn requests(&mut self) -> Result<usize, Fail> {
        self.ask("requests")
    }

    pub fn apps(&mut self) -> Result<usize, Fail> {
        self.ask("apps")
    }

    /// Listings of apps (`GET /api/apps`) so far.
    pub fn lists(&mut self) -> Result<usize, Fail> {
        self.ask("lists")
    }

    /// A client as the operator builds one for an instance.
    pub fn client(&self) -> Result<ToolJetClient, Fail> {
        let mut config = ClientConfig::new(&self.base_url, Auth::AdminApiKey(API_KEY.into()));
        config.workspace_id = Some(self.workspace_id.clone());
        config.request_timeout = Duration::from_secs(30);
        // As the controller configures it: AppImports share their leftover listings.
        config.reuse_app_lists = tooljet_operator::tooljet::REUSE_APP_LISTS;
        Ok(ToolJetClient::new(config)?)
    }

    pub fn instance(&self) -> Result<ToolJetInstanceSpec, Fail> {
        Ok(serde_json::from_value(json!({
            "url": self.base_url,
            "environment": "development",
            "workspaceId": self.workspace_id,
            "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}
        }))?)
    }
}

impl Drop for StandInProc {
    fn drop(&mut self) {
        // Closing stdin ends the child; kill only if it does not go.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository of `n` apps in ToolJet's Git Sync layout, served over git:// (and file://).
pub struct AppRepo {
    pub repo: TestRepo,
    daemon: GitDaemon,
    pub git_url: String,
    pub names: Vec<String>,
}

impl AppRepo {
    /// `App 001`…: the three real bundles cycled, each made distinct (as real apps are) so that
    /// git stores one blob per app.
    pub fn new(name: &str, n: usize) -> Result<AppRepo, Fail> {
        AppRepo::of(name, n, &[CREDIT_CARD.1, BASE64.1, CODE_EXPLAINER.1])
    }

    /// Like [`AppRepo::new`], cycling `templates` instead.
    pub fn of(name: &str, n: usize, templates: &[&[u8]]) -> Result<AppRepo, Fail> {
        let repo = TestRepo::named(name);
        let mut names = Vec::with_capacity(n);
        for i in 1..=n {
            let app = format!("App {i:03}");
            let template = templates[(i - 1) % templates.len()];
            let bytes = distinct(template, i, "v1")?;
            repo.git_sync_write(&format!("id-{i:03}"), &app, "v1", &bytes);
            names.push(app);
        }
        repo.commit(&format!("{n} apps"));
        repo.publish();
        let daemon = GitDaemon::start(repo.base_dir());
        let git_url = daemon.url(&repo.served_name());
        Ok(AppRepo {
            repo,
            daemon,
            git_url,
            names,
        })
    }

    /// The process id of the `git daemon` serving this repository.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// A new version of app number `i` (1-based), committed and published; its commit sha.
    pub fn touch(&self, i: usize, version: &str) -> Result<String, Fail> {
        self.repo.git_sync_write(
            &format!("id-{i:03}"),
            &self.names[i - 1],
            version,
            &bundle(i, version)?,
        );
        let sha = self.repo.commit(&format!("App {i:03} {version}"));
        self.repo.publish();
        Ok(sha)
    }
}

fn bundle(i: usize, version: &str) -> Result<Vec<u8>, Fail> {
    distinct(
        [CREDIT_CARD.1, BASE64.1, CODE_EXPLAINER.1][(i - 1) % 3],
        i,
        version,
    )
}

/// `template` made distinct for app number `i` at `version` (its icon).
fn distinct(template: &[u8], i: usize, version: &str) -> Result<Vec<u8>, Fail> {
    let mut bundle: serde_json::Value = serde_json::from_slice(template)?;
    bundle["app"][0]["definition"]["appV2"]["icon"] = json!(format!("app-{i}-{version}"));
    Ok(serde_json::to_vec_pretty(&bundle)?)
}

/// One AppImport: its identity, spec and the state its last run left.
pub struct Import {
    pub key: ImportKey,
    pub spec: AppImportSpec,
    pub state: SyncState,
}

impl Import {
    /// Follows `master` of `url` and imports `git_app` under `app_name`.
    pub fn new(
        ns: &str,
        name: &str,
        url: &str,
        git_app: &str,
        app_name: &str,
    ) -> Result<Import, Fail> {
        Ok(Import {
            key: ImportKey::new(ns, name),
            spec: serde_json::from_value(json!({
                "environment": "development",
                "source": {"url": url, "ref": {"branch": "master"}, "app": git_app},
                "appName": app_name,
            }))?,
            state: SyncState::default(),
        })
    }
}

impl Import {
    /// The git side of this AppImport's spec (every bench AppImport follows `master`).
    pub fn source_spec(&self) -> tooljet_operator::source::SourceSpec {
        tooljet_operator::source::SourceSpec {
            url: self.spec.source.url.clone(),
            git_ref: tooljet_operator::source::GitRef::Branch("master".into()),
        }
    }
}

/// One AppImport per app of `repos`: `team-<r>/app-<i>`, named `R<r> App <i>` in ToolJet.
pub fn imports_of(repos: &[AppRepo]) -> Result<Vec<Import>, Fail> {
    let mut imports = Vec::with_capacity(repos.iter().map(|r| r.names.len()).sum());
    for (r, repo) in repos.iter().enumerate() {
        for (i, name) in repo.names.iter().enumerate() {
            imports.push(Import::new(
                &format!("team-{r:03}"),
                &format!("app-{:03}", i + 1),
                &repo.git_url,
                name,
                &format!("R{r:03} {name}"),
            )?);
        }
    }
    Ok(imports)
}

/// What one pass over a fleet measured.
pub struct Pass {
    pub wall: Duration,
    /// Time of each `Engine::sync` call.
    pub calls: Vec<Duration>,
    pub reasons: Vec<String>,
}

/// AppImports sharing one engine (one git cache), as in one controller process.
pub struct Fleet {
    pub engine: Engine,
    /// The engine's git cache (the bench's own handle).
    pub source: SourceCache,
    pub client: ToolJetClient,
    pub instance: ToolJetInstanceSpec,
    pub imports: Vec<Import>,
    _cache: tempfile::TempDir,
}

impl Fleet {
    /// A fresh engine over an empty (cold) cache directory.
    pub fn new(standin: &StandInProc, imports: Vec<Import>) -> Result<Fleet, Fail> {
        let cache = tempfile::tempdir()?;
        // As in the controller: AppImports of one repository share a ref listing for a while.
        let source = SourceCache::new(CacheConfig {
            dir: cache.path().to_owned(),
            reuse_ref_checks: tooljet_operator::controller::REUSE_REF_CHECKS,
            ..CacheConfig::default()
        });
        Ok(Fleet {
            engine: Engine::new(source.clone()),
            source,
            client: standin.client()?,
            instance: standin.instance()?,
            imports,
            _cache: cache,
        })
    }

    /// Syncs every AppImport once, `concurrency` at a time (the controller's worker count).
    /// A failed sync fails the benchmark: its numbers would mean nothing.
    pub async fn pass(&mut self, concurrency: usize) -> Result<Pass, Fail> {
        let (engine, client, instance) = (&self.engine, &self.client, &self.instance);
        let start = Instant::now();
        let results: Vec<_> = futures::stream::iter(self.imports.iter().enumerate())
            .map(|(i, imp)| async move {
                let t = Instant::now();
                let out = engine
                    .sync(
                        SyncRequest {
                            key: imp.key.clone(),
                            spec: &imp.spec,
                            instance,
                            generation: Some(1),
                            approve: None,
                            force_pull: None,
                            git_credentials: Credentials::Anonymous,
                            state: imp.state.clone(),
                        },
                        client,
                        Mode::Apply,
                        &NoCheckpoint,
                    )
                    .await;
                (i, out, t.elapsed())
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let wall = start.elapsed();
        let mut pass = Pass {
            wall,
            calls: Vec::with_capacity(results.len()),
            reasons: Vec::with_capacity(results.len()),
        };
        for (i, out, took) in results {
            if !out.report.ready() {
                return Err(format!(
                    "sync of {} failed: {}: {}",
                    self.imports[i].key, out.report.reason, out.report.message
                )
                .into());
            }
            self.imports[i].state = out.state;
            pass.calls.push(took);
            pass.reasons.push(out.report.reason.to_string());
        }
        Ok(pass)
    }

    /// One `Engine::sync` of AppImport `i` alone; fails unless it is a no-op. Its time.
    pub async fn sync_one(&mut self, i: usize) -> Result<Duration, Fail> {
        let imp = &self.imports[i];
        let t = Instant::now();
        let out = self
            .engine
            .sync(
                SyncRequest {
                    key: imp.key.clone(),
                    spec: &imp.spec,
                    instance: &self.instance,
                    generation: Some(1),
                    approve: None,
                    force_pull: None,
                    git_credentials: Credentials::Anonymous,
                    state: imp.state.clone(),
                },
                &self.client,
                Mode::Apply,
                &NoCheckpoint,
            )
            .await;
        let took = t.elapsed();
        if out.report.reason != "UpToDate" {
            return Err(format!("{}: {:?}", imp.key, out.report).into());
        }
        self.imports[i].state = out.state;
        Ok(took)
    }

    /// Git counters summed over `urls`.
    pub fn git_stats(&self, urls: &[String]) -> MirrorStats {
        let mut total = MirrorStats::default();
        for url in urls {
            let s = self.source.stats(url);
            total.checks += s.checks;
            total.fetches += s.fetches;
            total.objects_received += s.objects_received;
            total.bytes_received += s.bytes_received;
        }
        total
    }
}

/// Runs the baseline script for one app; `replace` deletes an app of that name first.
pub fn baseline(
    standin: &StandInProc,
    repo_url: &str,
    git_app: &str,
    app_name: &str,
    replace: bool,
) -> Result<Duration, Fail> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline-import.sh");
    let start = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .args([repo_url, git_app, app_name])
        .env("TOOLJET_URL", &standin.base_url)
        .env("TOOLJET_API_KEY", API_KEY)
        .env("TOOLJET_WORKSPACE_ID", &standin.workspace_id)
        .env("REPLACE", if replace { "1" } else { "0" })
        .stdin(Stdio::null())
        .output()?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "baseline-import.sh {git_app:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(took)
}
