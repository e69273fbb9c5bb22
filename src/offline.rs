//! `tooljet-operator sync` and `plan` without a cluster: manifests from files, state in a file,
//! the same engine as the controller.
//!
//! The state file is JSON, one AppImport status per `namespace/name`, rewritten atomically after
//! every step of a run (a killed run loses nothing it created), and under the key
//! `toolJetInstances` each instance's configuration record (owned constants and configured data
//! sources: names and keyed hashes, never values). Since files have no `metadata.generation`, a
//! hash of the spec stands in for it.
//!
//! Instances in the manifests with constants or data sources are configured first (`plan`
//! lists the writes, never a value); an AppImport not imported yet waits while its instance's
//! configuration failed, as in the cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::condition::READY;
use crate::api::{
    AppExport, AppImport, AppImportStatus, DeletionPolicy, InstanceChoiceError, Reason,
    ToolJetInstance, Verdict, validate_against_crd,
};
use crate::diff::{AppDiff, markdown_text};
use crate::source::{SourceCache, display_url};
use crate::sync::instance_config::{ConfigRecord, configure, has_configuration, hasher_for};
use crate::sync::promotion::{AppImportKey, Decision, Hold, Promotion, promotion_of, upstream_key};
use crate::sync::request::{DEFAULT_NAMESPACE, namespace_of};
use crate::sync::{
    Checkpoint, DEFAULT_CONCURRENCY, Engine, Mode, Secrets, SyncOutcome, SyncState, source_of,
    sync_request, tooljet_client, with_promotion,
};

mod prune;
use crate::tooljet::ToolJetClient;
pub use prune::{Orphan, OrphanResult, OrphanStatus, orphans_markdown, orphans_summary};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {index} is not a valid {kind}: {reason}")]
    Parse {
        path: PathBuf,
        index: usize,
        kind: String,
        reason: String,
    },
    #[error(
        "no AppImport, and no ToolJetInstance with constants or dataSources, in the given files; pass the files that hold them with -f"
    )]
    NothingToSync,
    #[error("cannot use the state file {path}: {reason}")]
    State { path: PathBuf, reason: String },
}

/// Everything read from the manifests.
#[derive(Default)]
pub struct Manifests {
    pub app_imports: Vec<AppImport>,
    /// For `export -f` (`sync -f` checks them and leaves them alone).
    pub app_exports: Vec<AppExport>,
    pub instances: Vec<ToolJetInstance>,
    /// Secrets by namespace.
    pub secrets: BTreeMap<String, Secrets>,
}

impl Manifests {
    /// Reads multi-document YAML files; documents of other kinds are skipped.
    pub fn load(paths: &[PathBuf]) -> Result<Manifests, OfflineError> {
        let mut m = Manifests::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| OfflineError::Read {
                path: path.clone(),
                source,
            })?;
            let docs: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&text).map_err(|e| OfflineError::Parse {
                    path: path.clone(),
                    index: 0,
                    kind: "YAML".into(),
                    reason: e.to_string(),
                })?;
            for (index, doc) in docs.into_iter().enumerate() {
                let kind = doc
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let parse_err = |e: serde_json::Error| OfflineError::Parse {
                    path: path.clone(),
                    index: index + 1,
                    kind: kind.clone(),
                    reason: e.to_string(),
                };
                // Files never pass an API server: check the CRD's rules here instead.
                let invalid = |e: crate::api::ApiError| OfflineError::Parse {
                    path: path.clone(),
                    index: index + 1,
                    kind: kind.clone(),
                    reason: e.to_string(),
                };
                match kind.as_str() {
                    "AppImport" => {
                        let app: AppImport = serde_json::from_value(doc).map_err(parse_err)?;
                        validate_against_crd(&app).map_err(invalid)?;
                        m.app_imports.push(app);
                    }
                    "AppExport" => {
                        let export: AppExport = serde_json::from_value(doc).map_err(parse_err)?;
                        validate_against_crd(&export).map_err(invalid)?;
                        export.spec.check().map_err(invalid)?;
                        m.app_exports.push(export);
                    }
                    "ToolJetInstance" => {
                        let instance: ToolJetInstance =
                            serde_json::from_value(doc).map_err(parse_err)?;
                        validate_against_crd(&instance).map_err(invalid)?;
                        m.instances.push(instance);
                    }
                    "Secret" => {
                        let secret: Secret = serde_json::from_value(doc).map_err(parse_err)?;
                        let namespace = namespace_of(secret.metadata.namespace.as_deref());
                        let mut data: BTreeMap<String, Vec<u8>> = secret
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0))
                            .collect();
                        // stringData wins over data, as on an API server.
                        for (k, v) in secret.string_data.unwrap_or_default() {
                            data.insert(k, v.into_bytes());
                        }
                        m.secrets
                            .entry(namespace.clone())
                            .or_insert_with(|| Secrets::in_namespace(namespace))
                            .insert(secret.metadata.name.unwrap_or_default(), data);
                    }
                    _ => {}
                }
            }
        }
        Ok(m)
    }

    /// The instance an AppImport uses: `instanceRef`, or the one instance of its environment in
    /// its namespace. Cross-namespace use needs the instance's `allowedNamespaces`.
    pub fn instance_for(&self, app: &AppImport) -> Result<&ToolJetInstance, InstanceChoiceError> {
        let ns = namespace_of(app.metadata.namespace.as_deref());
        crate::api::select_instance(app, &ns, &self.instances, DEFAULT_NAMESPACE)
    }

    /// The Secrets of a namespace (none when the files hold none there).
    pub fn secrets_in(&self, namespace: &str) -> Secrets {
        self.secrets
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| Secrets::in_namespace(namespace))
    }
}

/// The state file: the engine's state of each AppImport by `namespace/name`, in the JSON shape of
/// an AppImport's status (files written before `SyncState` carried `observedGeneration` too, and
/// still read), with what pruning needs beside it ([`PruneRecord`], under `prune`).
pub struct StateFile {
    path: Option<PathBuf>,
    states: Mutex<BTreeMap<String, StateEntry>>,
    instances: Mutex<BTreeMap<String, ConfigRecord>>,
    /// Counts changes to either map; bumped under that map's lock.
    changes: std::sync::atomic::AtomicU64,
    /// The change count the file on disk holds; held while writing, so writes never overlap.
    written: tokio::sync::Mutex<u64>,
}

/// One AppImport's entry of the state file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct StateEntry {
    #[serde(flatten)]
    state: SyncState,
    /// Absent in files written before `--prune` existed, and until the AppImport's first sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prune: Option<PruneRecord>,
}

/// What `sync --prune` needs once an AppImport has left the manifests: its last
/// `deletionPolicy`, and the instance its app lives in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PruneRecord {
    pub deletion_policy: DeletionPolicy,
    /// The ToolJetInstance, `namespace/name`.
    pub instance: String,
    /// Its `spec.url`: an instance of that name that now points elsewhere does not hold the app.
    pub instance_url: String,
}

/// The state file's key for the instances' configuration records (AppImport keys always hold a
/// `/`, so it cannot collide with one).
const INSTANCES_KEY: &str = "toolJetInstances";

impl StateFile {
    /// Opens the file (a missing file is an empty state); `None` keeps state in memory only.
    pub fn open(path: Option<&Path>) -> Result<StateFile, OfflineError> {
        let (states, instances) = match path {
            Some(p) if p.exists() => read_state_file(p)?,
            _ => (BTreeMap::new(), BTreeMap::new()),
        };
        Ok(StateFile {
            path: path.map(Path::to_owned),
            states: Mutex::new(states),
            instances: Mutex::new(instances),
            changes: std::sync::atomic::AtomicU64::new(0),
            written: tokio::sync::Mutex::new(0),
        })
    }

    pub fn get(&self, key: &str) -> SyncState {
        self.lock()
            .get(key)
            .map(|e| e.state.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StateEntry>> {
        // A panic while holding the lock cannot leave the map half-written; keep using it.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one AppImport's state and rewrites the file atomically (write, fsync, rename).
    pub async fn put(&self, key: &str, state: &SyncState) -> Result<(), String> {
        let change = {
            let mut states = self.lock();
            states.entry(key.to_owned()).or_default().state = state.clone();
            self.bump()
        };
        self.write(change).await
    }

    /// A new change number; call it holding the lock of the map changed.
    fn bump(&self) -> u64 {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Sets what pruning this AppImport would need; written with its next [`put`](Self::put).
    pub fn set_prune_record(&self, key: &str, record: PruneRecord) {
        self.lock().entry(key.to_owned()).or_default().prune = Some(record);
    }

    /// The prune record of an AppImport, when one was written.
    pub fn prune_record(&self, key: &str) -> Option<PruneRecord> {
        self.lock().get(key).and_then(|e| e.prune.clone())
    }

    /// The AppImports the file knows (`namespace/name`).
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Drops an AppImport's entry and rewrites the file atomically.
    pub async fn forget(&self, key: &str) -> Result<(), String> {
        let change = {
            let mut states = self.lock();
            states.remove(key);
            self.bump()
        };
        self.write(change).await
    }

    /// An instance's configuration record (`namespace/name`).
    pub fn instance(&self, key: &str) -> ConfigRecord {
        self.lock_instances().get(key).cloned().unwrap_or_default()
    }

    /// Records an instance's configuration and rewrites the file atomically.
    pub async fn put_instance(&self, key: &str, record: &ConfigRecord) -> Result<(), String> {
        let change = {
            let mut instances = self.lock_instances();
            instances.insert(key.to_owned(), record.clone());
            self.bump()
        };
        self.write(change).await
    }

    fn lock_instances(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ConfigRecord>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a state holding change `change` on disk, atomically (write, fsync, rename), off the
    /// async threads. One write at a time: a writer that waited finds its change already written
    /// by the one before it, or writes everything up to now itself (so concurrent checkpoints
    /// share writes, and an older state never replaces a newer one).
    async fn write(&self, change: u64) -> Result<(), String> {
        let mut written = self.written.lock().await;
        if *written >= change {
            return Ok(());
        }
        let (text, now) = self.serialize()?;
        if let Some(path) = self.path.clone() {
            tokio::task::spawn_blocking(move || {
                write_atomically(&path, &text).map_err(|e| format!("{}: {e}", path.display()))
            })
            .await
            .map_err(|e| format!("the write of the state file failed: {e}"))??;
        }
        *written = now;
        Ok(())
    }

    /// The whole file as it is now, and the change count it holds.
    fn serialize(&self) -> Result<(Vec<u8>, u64), String> {
        let states = self.lock();
        let instances = self.lock_instances();
        let now = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        let whole = WholeFile {
            states: &states,
            instances: &instances,
        };
        let text = serde_json::to_vec_pretty(&whole).map_err(|e| e.to_string())?;
        Ok((text, now))
    }
}

/// The file as written: the AppImports' entries and, beside them, the instances' records.
#[derive(Serialize)]
struct WholeFile<'a> {
    #[serde(flatten)]
    states: &'a BTreeMap<String, StateEntry>,
    #[serde(
        rename = "toolJetInstances",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    instances: &'a BTreeMap<String, ConfigRecord>,
}

type StateMaps = (BTreeMap<String, StateEntry>, BTreeMap<String, ConfigRecord>);

fn read_state_file(p: &Path) -> Result<StateMaps, OfflineError> {
    let text = std::fs::read_to_string(p).map_err(|e| OfflineError::State {
        path: p.to_owned(),
        reason: e.to_string(),
    })?;
    let bad = |e: serde_json::Error| OfflineError::State {
        path: p.to_owned(),
        reason: format!("not a state file ({e}); move it away to start afresh"),
    };
    let mut all: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).map_err(bad)?;
    let instances = match all.remove(INSTANCES_KEY) {
        Some(v) => serde_json::from_value(v).map_err(bad)?,
        None => BTreeMap::new(),
    };
    let states = all
        .into_iter()
        .map(|(k, v)| Ok((k, serde_json::from_value(v)?)))
        .collect::<Result<_, serde_json::Error>>()
        .map_err(bad)?;
    Ok((states, instances))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

struct FileCheckpoint<'a> {
    file: &'a StateFile,
    key: String,
}

impl Checkpoint for FileCheckpoint<'_> {
    fn save<'a>(&'a self, state: &'a SyncState) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.file.put(&self.key, state).await })
    }
}

/// The result of one AppImport.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    pub name: String,
    pub report: Verdict,
    pub actions: Vec<crate::sync::Action>,
    /// The ToolJet server talked to, e.g. `ToolJet 2.27.1 (2.x routes)`, when its version is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// What the run's update or restore changes inside the app (or what the commit waiting for
    /// approval would).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<AppDiff>,
}

/// How a run goes.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    pub mode: Mode,
    /// AppImports synced at the same time (at least 1), within each promotion wave.
    pub concurrency: usize,
    /// Apply the recorded `deletionPolicy` of AppImports that the state file knows and the
    /// manifests no longer hold (without it they are only reported).
    pub prune: bool,
}

impl RunOptions {
    /// The defaults of the command line: [`DEFAULT_CONCURRENCY`], no pruning.
    pub fn new(mode: Mode) -> RunOptions {
        RunOptions {
            mode,
            concurrency: usize::from(DEFAULT_CONCURRENCY),
            prune: false,
        }
    }
}

/// What a run did: one result per configured instance and AppImport of the manifests, then one
/// per AppImport of the state file that left them.
pub struct RunReport {
    pub results: Vec<ImportResult>,
    pub orphans: Vec<OrphanResult>,
}

impl RunReport {
    /// As [`exit_code`], and 1 when pruning an orphan failed (a reported orphan is no failure).
    pub fn exit_code(&self) -> u8 {
        let pruning_failed = self
            .orphans
            .iter()
            .any(|o| o.orphan.status == OrphanStatus::Failed);
        exit_code(&self.results).max(u8::from(pruning_failed))
    }
}

/// Syncs (or plans) every AppImport in the manifests with the command line's defaults; see
/// [`run_with`].
pub async fn run(
    manifests: &Manifests,
    cache: SourceCache,
    state: &StateFile,
    mode: Mode,
) -> Result<Vec<ImportResult>, OfflineError> {
    Ok(run_with(manifests, cache, state, &RunOptions::new(mode))
        .await?
        .results)
}

/// Syncs (or plans) every AppImport in the manifests, `concurrency` at a time. An AppImport
/// promoted from another one (`fromAppImport`) runs after it, and reads its state from this run
/// (see [`as_upstream`]). Then the AppImports the state file knows and the manifests no longer
/// hold are reported, or with `prune` removed as their `deletionPolicy` says.
pub async fn run_with(
    manifests: &Manifests,
    cache: SourceCache,
    state: &StateFile,
    opts: &RunOptions,
) -> Result<RunReport, OfflineError> {
    let configured: Vec<&ToolJetInstance> = manifests
        .instances
        .iter()
        .filter(|i| has_configuration(&i.spec, &state.instance(&instance_key(i))))
        .collect();
    let orphans = prune::orphans(manifests, state);
    if manifests.app_imports.is_empty() && configured.is_empty() && orphans.is_empty() {
        return Err(OfflineError::NothingToSync);
    }
    // Every AppImport of the run shares one listing and at most one fetch per repository.
    cache.expect_refs(
        manifests
            .app_imports
            .iter()
            .filter_map(|a| source_of(&a.spec).ok().map(|(spec, _)| spec))
            .collect::<Vec<_>>()
            .iter(),
    );
    let engine = Engine::new(cache.clone());
    let mut clients: BTreeMap<String, Arc<ToolJetClient>> = BTreeMap::new();
    let mut results = Vec::new();
    // Instances whose configuration failed: their AppImports not imported yet wait.
    let mut unconfigured = Vec::new();
    for instance in configured {
        let result = configure_one(manifests, instance, &mut clients, state, opts.mode).await;
        if !result.report.ready() {
            unconfigured.push(instance_key(instance));
        }
        results.push(result);
    }
    let run = AppRun {
        manifests,
        engine: &engine,
        state,
        opts,
        unconfigured: &unconfigured,
    };
    results.extend(run.in_waves(&mut clients).await);
    let orphans = prune::apply(&run, orphans, &mut clients).await;
    for (url, traffic) in cache.traffic() {
        tracing::info!(
            url,
            listings = traffic.checks,
            fetches = traffic.fetches,
            objects = traffic.objects_received,
            bytes = traffic.bytes_received,
            "git traffic of this run"
        );
    }
    Ok(RunReport { results, orphans })
}

/// What every AppImport of a run shares.
struct AppRun<'r> {
    manifests: &'r Manifests,
    engine: &'r Engine,
    state: &'r StateFile,
    opts: &'r RunOptions,
    /// Instances whose configuration failed: their AppImports not imported yet wait.
    unconfigured: &'r [String],
}

impl AppRun<'_> {
    /// The AppImports wave by wave (a wave ends before the next starts), `concurrency` at a
    /// time within a wave; results in manifest order.
    async fn in_waves(
        &self,
        clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
    ) -> Vec<ImportResult> {
        let apps = &self.manifests.app_imports;
        let mut app_results: Vec<Option<ImportResult>> = apps.iter().map(|_| None).collect();
        // The AppImports of this run as their downstreams see them: spec, and once run, status.
        let mut seen: BTreeMap<AppImportKey, AppImport> =
            apps.iter().map(|a| (key_of(a), a.clone())).collect();
        for wave in promotion_waves(apps) {
            let now = Timestamp::now();
            let batch: Vec<(usize, ImportResult)> = stream::iter(wave)
                .map(|i| {
                    let app = &apps[i];
                    let prepared =
                        prepare(self.manifests, app, clients, self.unconfigured, self.state);
                    let promotion = offline_promotion(app, &seen, now);
                    async move { (i, self.sync_one(app, prepared, promotion).await) }
                })
                .buffer_unordered(self.opts.concurrency.max(1))
                .collect()
                .await;
            for (i, result) in batch {
                let upstream = as_upstream(&apps[i], &self.state.get(&result.name), &result.report);
                seen.insert(key_of(&apps[i]), upstream);
                app_results[i] = Some(result);
            }
        }
        app_results.into_iter().flatten().collect()
    }
}

fn key_of(app: &AppImport) -> AppImportKey {
    AppImportKey::new(
        namespace_of(app.metadata.namespace.as_deref()),
        app.name_any(),
    )
}

/// The AppImports in runs: those whose upstream is in the manifests after it (a chain of three
/// takes three runs); the others, and the AppImports of a cycle (refused), in the first.
fn promotion_waves(apps: &[AppImport]) -> Vec<Vec<usize>> {
    let index: BTreeMap<AppImportKey, usize> = apps
        .iter()
        .enumerate()
        .map(|(i, a)| (key_of(a), i))
        .collect();
    let depth = |start: usize| {
        let mut visited = vec![start];
        let mut at = start;
        loop {
            let ns = namespace_of(apps[at].metadata.namespace.as_deref());
            let Some(up) = upstream_key(&apps[at], &ns).and_then(|k| index.get(&k).copied()) else {
                return visited.len() - 1;
            };
            if visited.contains(&up) {
                return 0;
            }
            visited.push(up);
            at = up;
        }
    };
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for i in 0..apps.len() {
        let d = depth(i);
        if waves.len() <= d {
            waves.resize(d + 1, Vec::new());
        }
        waves[d].push(i);
    }
    waves
}

/// The promotion `app` asks for, its upstream read from this run; an upstream that is not in
/// the manifests is refused with what to pass.
fn offline_promotion(
    app: &AppImport,
    seen: &BTreeMap<AppImportKey, AppImport>,
    now: Timestamp,
) -> Result<Option<Promotion>, Verdict> {
    let ns = namespace_of(app.metadata.namespace.as_deref());
    let promotion = promotion_of(app, &ns, |k| seen.get(k), now)?;
    match &promotion {
        Some(Promotion {
            from,
            decision: Decision::Hold(Hold::UpstreamNotFound { .. }),
        }) => Err(Verdict::new(
            Reason::UpstreamNotFound,
            format!(
                "source.ref.fromAppImport names AppImport {from}, which is not in the files given with -f; sync -f promotes only from an AppImport of the same run (it reads that one's applied commit from the state file): pass its manifest with -f too"
            ),
        )),
        _ => Ok(promotion),
    }
}

/// `app` as a downstream sees it after its run: the state file's applied commit and history, and
/// a Ready condition from this run's verdict, True since the applied commit was applied (the
/// command line keeps no condition history). Waiting keeps the current app, which stays Ready.
pub fn as_upstream(app: &AppImport, state: &SyncState, report: &Verdict) -> AppImport {
    let applied = state.last_applied_commit.as_ref();
    let ready = report.ready() || (report.waiting() && applied.is_some());
    let since = applied
        .and_then(|c| state.history.iter().find(|h| h.sha == c.sha))
        .map(|h| h.applied_at.0)
        .or(state.last_sync_time)
        .unwrap_or_else(Timestamp::now);
    let mut upstream = app.clone();
    upstream.metadata.generation = None;
    upstream.status = Some(AppImportStatus {
        last_applied_commit: state.last_applied_commit.clone(),
        history: state.history.clone(),
        conditions: vec![Condition {
            type_: READY.into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: report.reason.as_str().into(),
            message: report.message.clone(),
            observed_generation: None,
            last_transition_time: Time(since),
        }],
        ..AppImportStatus::default()
    });
    upstream
}

fn instance_key(instance: &ToolJetInstance) -> String {
    format!(
        "{}/{}",
        namespace_of(instance.metadata.namespace.as_deref()),
        instance.name_any()
    )
}

fn client_for(
    manifests: &Manifests,
    instance: &ToolJetInstance,
    clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
) -> Result<Arc<ToolJetClient>, Box<Verdict>> {
    let inst_ns = namespace_of(instance.metadata.namespace.as_deref());
    let inst_key = instance_key(instance);
    Ok(match clients.get(&inst_key) {
        Some(c) => c.clone(),
        None => {
            let client = Arc::new(tooljet_client(instance, &manifests.secrets_in(&inst_ns))?);
            clients.insert(inst_key, client.clone());
            client
        }
    })
}

/// Applies (or plans) one instance's constants and data sources; the record goes to the state
/// file only in apply.
async fn configure_one(
    manifests: &Manifests,
    instance: &ToolJetInstance,
    clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
    state: &StateFile,
    mode: Mode,
) -> ImportResult {
    let key = instance_key(instance);
    let name = format!("{key} (ToolJetInstance)");
    let client = match client_for(manifests, instance, clients) {
        Ok(c) => c,
        Err(report) => return ImportResult::not_run(name, *report, None),
    };
    let secrets = manifests.secrets_in(&namespace_of(instance.metadata.namespace.as_deref()));
    let hasher = hasher_for(&key, &instance.spec, &secrets);
    let outcome = configure(
        &client,
        &instance.spec,
        &state.instance(&key),
        &secrets,
        &hasher,
        mode,
    )
    .await;
    let mut report = outcome.verdict.clone();
    for note in &outcome.notes {
        report.message.push_str("; ");
        report.message.push_str(note);
    }
    for (source, message) in outcome.failed_connections() {
        report.message.push_str(&format!(
            "; warning: ToolJet's connection test of data source `{source}` failed: {message}"
        ));
    }
    if mode == Mode::Apply
        && let Err(e) = state.put_instance(&key, &outcome.record).await
    {
        report = state_not_saved(&e);
    }
    ImportResult {
        name,
        report,
        actions: outcome.actions,
        server: server_of(&client),
        changes: None,
    }
}

/// What one AppImport needs besides the engine: its instance, the instance's client, and the
/// Secrets of its own namespace.
struct Prepared<'m> {
    instance: &'m ToolJetInstance,
    client: Arc<ToolJetClient>,
    secrets: Secrets,
}

fn prepare<'m>(
    manifests: &'m Manifests,
    app: &AppImport,
    clients: &mut BTreeMap<String, Arc<ToolJetClient>>,
    unconfigured: &[String],
    state: &StateFile,
) -> Result<Prepared<'m>, Box<Verdict>> {
    let instance = manifests
        .instance_for(app)
        .map_err(|e| Box::new(e.verdict()))?;
    let inst_key = instance_key(instance);
    let app_key = format!(
        "{}/{}",
        namespace_of(app.metadata.namespace.as_deref()),
        app.name_any()
    );
    if unconfigured.contains(&inst_key) && state.get(&app_key).app.is_none() {
        return Err(Box::new(Verdict::new(
            Reason::WaitingForInstanceConfig,
            format!(
                "ToolJetInstance {inst_key} has not applied its constants and data sources (see its line); the first import waits for it"
            ),
        )));
    }
    let client = client_for(manifests, instance, clients)?;
    Ok(Prepared {
        instance,
        client,
        secrets: manifests.secrets_in(&namespace_of(app.metadata.namespace.as_deref())),
    })
}

impl ImportResult {
    /// A result of an AppImport the engine did not run for.
    fn not_run(name: String, report: Verdict, server: Option<String>) -> ImportResult {
        ImportResult {
            name,
            report,
            actions: Vec::new(),
            server,
            changes: None,
        }
    }
}

impl AppRun<'_> {
    async fn sync_one(
        &self,
        app: &AppImport,
        prepared: Result<Prepared<'_>, Box<Verdict>>,
        promotion: Result<Option<Promotion>, Verdict>,
    ) -> ImportResult {
        let (state, mode) = (self.state, self.opts.mode);
        let ns = namespace_of(app.metadata.namespace.as_deref());
        let name = format!("{ns}/{}", app.name_any());
        let waiting = match &promotion {
            Err(report) => Some(report.clone()),
            Ok(p) => p.as_ref().and_then(Promotion::waiting_verdict),
        };
        if let Some(report) = waiting {
            // Refused, or nothing to follow yet: the current app stays.
            return ImportResult::not_run(name, report, None);
        }
        let promotion = promotion.ok().flatten();
        let synced = with_promotion(app, promotion.as_ref().and_then(Promotion::followed_sha));
        let app = synced.as_ref();
        let prepared = match prepared {
            Ok(p) => p,
            Err(report) => return ImportResult::not_run(name, *report, None),
        };
        let generation = Some(spec_generation(app));
        let request = match sync_request(
            app,
            prepared.instance,
            &prepared.secrets,
            generation,
            state.get(&name),
        ) {
            Ok(request) => request,
            Err(report) => {
                return ImportResult::not_run(name, report, server_of(&prepared.client));
            }
        };
        if mode == Mode::Apply {
            // Written with the first checkpoint, before anything is created in ToolJet.
            state.set_prune_record(&name, prune_record(app, prepared.instance));
        }
        let checkpoint = FileCheckpoint {
            file: state,
            key: name.clone(),
        };
        let mut outcome: SyncOutcome = self
            .engine
            .sync(request, &prepared.client, mode, &checkpoint)
            .await;
        crate::sync::instance_config::mark_configured(
            &mut outcome.state.data_sources,
            &prepared.instance.spec,
        );
        let mut report = outcome.report;
        if let Some(p) = &promotion {
            report = p.engine_verdict(report, &display_url(&app.spec.source.url));
        }
        if mode == Mode::Apply
            && let Err(e) = state.put(&name, &outcome.state).await
        {
            report = state_not_saved(&e);
        }
        ImportResult {
            name,
            report,
            actions: outcome.actions,
            server: server_of(&prepared.client),
            changes: outcome.diff,
        }
    }
}

fn state_not_saved(error: &str) -> Verdict {
    Verdict::new(
        Reason::StateNotSaved,
        format!("could not save the state file: {error}"),
    )
}

/// What pruning `app` would need once it leaves the manifests.
fn prune_record(app: &AppImport, instance: &ToolJetInstance) -> PruneRecord {
    PruneRecord {
        deletion_policy: app.spec.deletion_policy,
        instance: instance_key(instance),
        instance_url: instance.spec.url.clone(),
    }
}

/// What to print about the server a client talked to.
fn server_of(client: &ToolJetClient) -> Option<String> {
    let version = client.known_server_version()?;
    Some(match version.family() {
        Some(family) => format!("ToolJet {version} ({family} routes)"),
        None => format!("ToolJet {version} (unsupported)"),
    })
}

/// A stand-in for `metadata.generation`: changes whenever the spec does.
fn spec_generation(app: &AppImport) -> i64 {
    let bytes = serde_json::to_vec(&app.spec).unwrap_or_default();
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Positive, like a real generation.
    i64::from_be_bytes(first) & i64::MAX
}

/// The exit code of `sync` / `plan`: 0 when every AppImport is ready or waiting (a promotion not due
/// yet: the current app stays), 1 when one is not (retrying
/// or stalled alike: a pipeline step has no later). Unusable input (exit 2) never gets this far.
pub fn exit_code(results: &[ImportResult]) -> u8 {
    if results
        .iter()
        .all(|r| r.report.ready() || r.report.waiting())
    {
        0
    } else {
        1
    }
}

/// The first line `summary` prints for a verdict: whether it is ready, the reason, the message.
pub fn verdict_line(name: &str, report: &Verdict) -> String {
    let verdict = if report.ready() {
        "ready"
    } else if report.waiting() {
        "waiting"
    } else {
        "NOT READY"
    };
    format!("{name}: {verdict} ({}): {}", report.reason, report.message)
}

/// A short human summary: one line per AppImport, what changes inside the app (the whole diff
/// with `detail`), then its steps.
pub fn summary(results: &[ImportResult], mode: Mode, detail: bool) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&verdict_line(&r.name, &r.report));
        out.push('\n');
        if let Some(server) = &r.server {
            out.push_str(&format!("  server: {server}\n"));
        }
        if let Some(d) = &r.report.drift {
            out.push_str(&format!("  drift: {}\n", d.message));
        }
        if let Some(diff) = &r.changes {
            out.push_str(&format!("  changes: {}\n", diff.summary()));
            if detail {
                // The first line of `text` repeats the summary.
                for line in diff.text().lines().skip(1) {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
        if r.report.force_pushed {
            out.push_str("  note: the branch was force-pushed since the last run\n");
        }
        let verb = if mode == Mode::Plan { "would" } else { "did" };
        if r.actions.is_empty() {
            out.push_str(&format!("  {verb}: nothing (no write to ToolJet)\n"));
        }
        for a in &r.actions {
            out.push_str(&format!("  {verb}: {a}\n"));
        }
    }
    out
}

/// A pull-request comment: a title, then per AppImport its verdict and, when something changes
/// inside the app, a collapsible block with the diff.
pub fn markdown(results: &[ImportResult], mode: Mode) -> String {
    let title = match mode {
        Mode::Plan => "tooljet-operator plan",
        Mode::Apply => "tooljet-operator sync",
    };
    let changing = results.iter().filter(|r| !r.actions.is_empty()).count();
    let verb = if mode == Mode::Plan {
        "would change"
    } else {
        "changed"
    };
    let mut out = format!(
        "### {title}\n\n{} of {} AppImports {verb} in ToolJet.\n\n",
        changing,
        results.len()
    );
    for r in results {
        let state = if r.report.ready() {
            "ready"
        } else {
            "**NOT READY**"
        };
        out.push_str(&format!(
            "**{}** · {state} · {}: {}\n\n",
            markdown_text(&r.name),
            r.report.reason,
            markdown_text(&r.report.message)
        ));
        if let Some(d) = &r.report.drift {
            out.push_str(&format!("Drift: {}\n\n", markdown_text(&d.message)));
        }
        if let Some(diff) = &r.changes {
            out.push_str(&diff.markdown());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instances' configuration records share the file with the AppImports' states.
    #[tokio::test]
    async fn instance_records_round_trip_beside_app_states() {
        use crate::api::{ConstantKind, OwnedConstant};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let file = StateFile::open(Some(&path)).expect("opens");
        file.put("team/sales", &SyncState::default())
            .await
            .expect("app");
        let record = ConfigRecord {
            constants: vec![OwnedConstant {
                name: "REGION".into(),
                kind: ConstantKind::Global,
                written_hash: Some("hmac-sha256:00".into()),
            }],
            data_sources: Vec::new(),
        };
        file.put_instance("team/tj", &record)
            .await
            .expect("instance");
        let again = StateFile::open(Some(&path)).expect("reopens");
        assert_eq!(again.instance("team/tj"), record);
        assert_eq!(again.get("team/sales"), SyncState::default());
        assert_eq!(again.instance("team/other"), ConfigRecord::default());
    }

    /// The prune record rides beside the state, survives later puts, and is absent (not an
    /// error) in entries written before it existed.
    #[tokio::test]
    async fn prune_records_round_trip_and_old_entries_have_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"team/old": {"lastAppliedHash": "h"}}"#).expect("write");
        let file = StateFile::open(Some(&path)).expect("opens");
        assert_eq!(file.prune_record("team/old"), None);
        assert_eq!(file.get("team/old").last_applied_hash.as_deref(), Some("h"));
        let record = PruneRecord {
            deletion_policy: DeletionPolicy::Delete,
            instance: "team/tj".into(),
            instance_url: "https://tooljet.example".into(),
        };
        file.set_prune_record("team/new", record.clone());
        file.put("team/new", &SyncState::default())
            .await
            .expect("put");
        file.put("team/new", &SyncState::default())
            .await
            .expect("a later put keeps the record");
        let text = std::fs::read_to_string(&path).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            json["team/new"]["prune"],
            serde_json::json!({"deletionPolicy": "Delete", "instance": "team/tj",
                               "instanceUrl": "https://tooljet.example"})
        );
        let again = StateFile::open(Some(&path)).expect("reopens");
        assert_eq!(again.prune_record("team/new"), Some(record));
        assert_eq!(again.keys(), vec!["team/new", "team/old"]);
        again.forget("team/old").await.expect("forget");
        assert_eq!(
            StateFile::open(Some(&path)).expect("reopens").keys(),
            vec!["team/new"]
        );
    }

    /// AppImports of a run checkpoint at the same time: every put succeeds, and the file on disk
    /// holds every one of them (no writer renames another's half-written file, none puts an
    /// older state back over a newer one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let file = Arc::new(StateFile::open(Some(&path)).expect("opens"));
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let file = file.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        let state = SyncState {
                            last_applied_hash: Some(format!("{t}-{i}")),
                            ..SyncState::default()
                        };
                        file.put(&format!("team/app-{t}"), &state)
                            .await
                            .expect("put");
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
        let again = StateFile::open(Some(&path)).expect("reopens");
        assert_eq!(again.keys().len(), 8);
        for t in 0..8 {
            let hash = again.get(&format!("team/app-{t}")).last_applied_hash;
            assert_eq!(hash, Some(format!("{t}-24")), "the last put of writer {t}");
        }
    }

    /// A state file written before the engine had its own state type (an AppImport status per
    /// key, with `observedGeneration`) still reads, and is rewritten in the same shape.
    #[tokio::test]
    async fn a_state_file_of_the_status_shape_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let old = serde_json::json!({"team/sales": {
            "observedGeneration": 42,
            "app": {"id": "a1", "name": "Sales", "slug": "sales", "updatedAt": "t1",
                    "versionId": "v1", "editFingerprint": "f"},
            "lastAppliedCommit": {"sha": "1111111111111111111111111111111111111111",
                "shortSha": "1111111", "message": "m", "author": "dev <d@x>",
                "date": "2026-01-02T03:04:05Z"},
            "lastAppliedGeneration": 42,
            "lastAppliedHash": "h",
            "lastSyncTime": "2026-01-02T03:04:06Z",
            "history": [{"sha": "1111111111111111111111111111111111111111",
                         "appliedAt": "2026-01-02T03:04:06Z"}],
            "dataSources": [{"name": "db", "kind": "postgresql", "id": "d1", "action": "Linked"}]
        }});
        std::fs::write(&path, old.to_string()).expect("write");
        let file = StateFile::open(Some(&path)).expect("old file opens");
        let state = file.get("team/sales");
        assert_eq!(state.app.as_ref().map(|a| a.id.as_str()), Some("a1"));
        assert_eq!(state.last_applied_generation, Some(42));
        assert_eq!(state.last_applied_hash.as_deref(), Some("h"));
        assert_eq!(
            state.last_sync_time.map(|t| t.as_second()),
            Some(1_767_323_046)
        );
        assert_eq!(state.history.len(), 1);
        assert_eq!(state.data_sources.len(), 1);
        file.put("team/sales", &state).await.expect("rewrite");
        let again: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for key in [
            "app",
            "lastAppliedCommit",
            "lastAppliedGeneration",
            "lastAppliedHash",
            "lastSyncTime",
            "history",
            "dataSources",
        ] {
            assert!(!again["team/sales"][key].is_null(), "{key}");
        }
        assert_eq!(again["team/sales"]["app"], old["team/sales"]["app"]);
        assert_eq!(
            StateFile::open(Some(&path))
                .expect("reopens")
                .get("team/sales"),
            state
        );
    }
}
