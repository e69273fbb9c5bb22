//! The mirror cache: one bare mirror per (repository URL, credential identity), shared by all
//! callers, one operation at a time per mirror. See the module docs in `mod.rs`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use git2::{Oid, Repository};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use super::credentials::Credentials;
use super::error::{Result, SourceError};
use super::layout::{self, AppLocator, AppSource, CommitInfo, MAX_BUNDLE_BYTES, git_err};
use super::push::{self, PushOutcome, PushRequest};
use super::remote::{RemoteCtx, display_url};

/// Local work (opening, verifying, reading a bundle) allowed on top of the network timeout
/// before the async guard gives up on a blocking task.
const LOCAL_GRACE: Duration = Duration::from_secs(30);
/// Marker whose modification time records the last use of a mirror (for [`SourceCache::gc`]).
const LAST_USED: &str = "tooljet-operator-last-used";

/// Cache settings.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Cache directory; mirrors live in `<dir>/mirrors/<key>.git`.
    pub dir: PathBuf,
    /// Budget for the network work of one call (ref listing and fetches). Also sets libgit2's
    /// connect and socket timeouts, which are process-wide: the first cache created sets them.
    pub network_timeout: Duration,
    /// [`SourceCache::gc`] removes mirrors unused for longer than this.
    pub unused_mirror_ttl: Duration,
    /// Bundles (and meta.json) larger than this are refused.
    pub max_bundle_bytes: u64,
    /// A remote ref listing younger than this is reused instead of listing again, so the many
    /// AppImports of one repository cost one "anything new?" check per window. Zero (the default)
    /// reuses only a listing that started after the caller asked. [`SourceCache::forget_ref_checks`]
    /// makes earlier listings unusable (a push was announced).
    pub reuse_ref_checks: Duration,
    /// The cache serves one run (`sync -f`, `plan -f`): the first listing of a repository
    /// answers every later resolve of the cache, of any ref, however long the run takes (a push
    /// made during the run is seen by the next run). Overrides `reuse_ref_checks`.
    pub one_listing_per_run: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir: default_cache_dir(),
            network_timeout: Duration::from_secs(60),
            unused_mirror_ttl: Duration::from_secs(24 * 3600),
            max_bundle_bytes: MAX_BUNDLE_BYTES,
            reuse_ref_checks: Duration::ZERO,
            one_listing_per_run: false,
        }
    }
}

/// `$XDG_CACHE_HOME/tooljet-operator`, else `/tmp/tooljet-operator-cache`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("tooljet-operator"),
        _ => PathBuf::from("/tmp/tooljet-operator-cache"),
    }
}

/// A repository and the ref to follow in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceSpec {
    pub url: String,
    pub git_ref: GitRef,
}

/// What to follow in a repository.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    /// A full 40-hex commit sha.
    Commit(String),
}

/// The outcome of [`SourceCache::resolve`].
#[derive(Clone, Debug)]
pub struct Resolved {
    pub commit: CommitInfo,
    /// The commit differs from the one the caller knew (true when the caller knew none).
    pub moved: bool,
    /// The ref moved to a commit that does not descend from the known one.
    pub force_pushed: bool,
    /// Objects were fetched for this call.
    pub fetched: bool,
}

/// Counters of one mirror (summed over credential identities in [`SourceCache::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Remote ref listings (connections without object transfer).
    pub checks: u64,
    pub fetches: u64,
    pub objects_received: u64,
    pub bytes_received: u64,
    /// Times the mirror was found corrupt and rebuilt.
    pub reclones: u64,
}

/// Told about remote git work as it ends (for metrics). Called on blocking git threads: keep it
/// cheap and never block.
pub trait SourceObserver: Send + Sync {
    /// A remote ref listing (an "anything new?" check) ended, successfully or not, after `took`.
    fn ref_checked(&self, took: Duration);
    /// A fetch ended, successfully or not, after `took`.
    fn fetched(&self, took: Duration);
}

/// Shared cache of bare mirrors. Cheap to clone; clones share mirrors and locks.
#[derive(Clone)]
pub struct SourceCache {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: CacheConfig,
    /// When the cache was made: with `one_listing_per_run`, any listing since then is reused.
    created: Instant,
    mirrors: Mutex<HashMap<String, Arc<Mirror>>>,
    observer: std::sync::RwLock<Option<Arc<dyn SourceObserver>>>,
    /// Branches and tags that callers announced they will resolve, by normalised URL
    /// ([`SourceCache::expect_refs`]): a fetch of one brings the others the listing shows missing.
    expected: Mutex<HashMap<String, BTreeSet<String>>>,
}

struct Mirror {
    url_norm: String,
    path: PathBuf,
    lock: Arc<tokio::sync::Mutex<MirrorState>>,
    stats: Mutex<MirrorStats>,
    /// Set by gc after deleting the directory; holders of this entry must look it up again.
    removed: AtomicBool,
    /// Set once this process has cleared lock files a killed process left in the mirror.
    swept: AtomicBool,
    /// Ref listings that started before this are not reused ([`SourceCache::forget_ref_checks`]).
    checks_stale_before: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct MirrorState {
    /// The last remote ref listing. A listing that started after a caller asked is as fresh as
    /// one the caller would make, so it is reused, for any ref of the repository.
    listing: Option<Listing>,
    /// When this process last marked the mirror as used ([`LAST_USED`]).
    touched: Option<Instant>,
}

/// One remote ref listing: when it started, and every ref the server advertised (peeled tags as
/// `<name>^{}`).
struct Listing {
    started: Instant,
    refs: Vec<(String, Oid)>,
}

impl Listing {
    /// The commit a branch or tag points at (a tag peeled).
    fn commit_of(&self, refname: &str) -> Option<Oid> {
        let peeled = format!("{refname}^{{}}");
        self.refs
            .iter()
            .find(|(n, _)| *n == peeled)
            .or_else(|| self.refs.iter().find(|(n, _)| n == refname))
            .map(|(_, oid)| *oid)
    }
}

/// Everything a blocking operation on one mirror needs, lock included.
pub(super) struct Job {
    mirror: Arc<Mirror>,
    state: OwnedMutexGuard<MirrorState>,
    pub(super) url: String,
    creds: Credentials,
    deadline: Instant,
    timeout: Duration,
    pub(super) limit: u64,
    /// [`CacheConfig::unused_mirror_ttl`], for how often the mirror is marked as used.
    unused_ttl: Duration,
    observer: Option<Arc<dyn SourceObserver>>,
    /// Other refs of this repository that callers will resolve ([`SourceCache::expect_refs`]).
    expected: Vec<String>,
}

impl Job {
    /// The remote ref listing is out of date (this process moved a ref).
    pub(super) fn forget_listing(&mut self) {
        self.state.listing = None;
    }

    /// Lists the remote's refs (counted as a ref check).
    pub(super) fn list_refs(&self, repo: &Repository) -> Result<Vec<(String, Oid)>> {
        let started = Instant::now();
        bump(self, |s| s.checks += 1);
        let refs = remote(self).list_refs(repo);
        if let Some(o) = &self.observer {
            o.ref_checked(started.elapsed());
        }
        refs
    }
}

impl SourceCache {
    pub fn new(cfg: CacheConfig) -> SourceCache {
        static GIT_TIMEOUTS: Once = Once::new();
        let ms = i32::try_from(cfg.network_timeout.as_millis()).unwrap_or(i32::MAX);
        GIT_TIMEOUTS.call_once(|| {
            // SAFETY: plain integer options of libgit2, written once before this cache runs any
            // git operation; libgit2 reads them only when opening a connection.
            unsafe {
                let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
                let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
            }
        });
        SourceCache {
            inner: Arc::new(Inner {
                cfg,
                created: Instant::now(),
                mirrors: Mutex::new(HashMap::new()),
                observer: std::sync::RwLock::new(None),
                expected: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.cfg
    }

    /// Reports every later ref check and fetch of this cache (and its clones) to `observer`.
    pub fn set_observer(&self, observer: Arc<dyn SourceObserver>) {
        *self
            .inner
            .observer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    /// Resolves the ref to a commit: lists the remote refs (no object transfer), fetches only
    /// when the commit is missing locally. A pinned commit already present costs no network.
    /// `known` is the sha the caller saw last, for `moved` and `force_pushed`.
    pub async fn resolve(
        &self,
        spec: &SourceSpec,
        creds: &Credentials,
        known: Option<&str>,
    ) -> Result<Resolved> {
        let asked = Instant::now();
        let window_start = if self.inner.cfg.one_listing_per_run {
            self.inner.created
        } else {
            let reuse = self.inner.cfg.reuse_ref_checks;
            asked.checked_sub(reuse).unwrap_or(asked)
        };
        let git_ref = spec.git_ref.clone();
        let known = known.map(str::to_string);
        self.with_mirror(&spec.url, creds, "resolve", move |job, repo| {
            // The oldest listing this call may reuse: within the reuse window (or this run),
            // never one made before a push was announced.
            let stale_before = *job
                .mirror
                .checks_stale_before
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let requested_at = stale_before.map_or(window_start, |s| s.max(window_start));
            let (oid, fetched) = match &git_ref {
                GitRef::Commit(sha) => ensure_commit(job, repo, sha)?,
                GitRef::Branch(b) => follow_ref(job, repo, &format!("refs/heads/{b}"), requested_at)?,
                GitRef::Tag(t) => follow_ref(job, repo, &format!("refs/tags/{t}"), requested_at)?,
            };
            let commit = repo
                .find_object(oid, None)
                .and_then(|o| o.peel_to_commit())
                .map_err(|e| git_err(repo, e))?;
            let sha = commit.id().to_string();
            let moved = known.as_deref() != Some(sha.as_str());
            let force_pushed = match (&git_ref, known.as_deref()) {
                (GitRef::Commit(_), _) | (_, None) => false,
                (_, Some(k)) if k == sha => false,
                // A known commit missing from a complete (non-shallow) mirror is not an ancestor.
                (_, Some(k)) => !Oid::from_str(k)
                    .ok()
                    .filter(|k| repo.find_commit(*k).is_ok())
                    .is_some_and(|k| repo.graph_descendant_of(commit.id(), k).unwrap_or(false)),
            };
            if force_pushed {
                tracing::warn!(url = %display_url(&job.url), known = ?known, new = %sha, "ref was force-pushed");
            }
            Ok(Resolved {
                commit: CommitInfo::of(&commit),
                moved,
                force_pushed,
                fetched,
            })
        })
        .await
    }

    /// Reads an app from a commit (fetched by sha first if the mirror lacks it).
    pub async fn read_app(
        &self,
        url: &str,
        creds: &Credentials,
        commit_sha: &str,
        locator: &AppLocator,
    ) -> Result<AppSource> {
        let sha = commit_sha.to_string();
        let locator = locator.clone();
        self.with_mirror(url, creds, "read app", move |job, repo| {
            let (oid, _) = ensure_commit(job, repo, &sha)?;
            let commit = repo.find_commit(oid).map_err(|e| git_err(repo, e))?;
            layout::read_app(repo, &commit, &locator, job.limit)
        })
        .await
    }

    /// Whether the app's files differ between two commits, by comparing tree entry ids (no
    /// bundle is read). An app absent from both commits is unchanged.
    pub async fn app_changed_between(
        &self,
        url: &str,
        creds: &Credentials,
        locator: &AppLocator,
        a_sha: &str,
        b_sha: &str,
    ) -> Result<bool> {
        let (a, b) = (a_sha.to_string(), b_sha.to_string());
        let locator = locator.clone();
        self.with_mirror(url, creds, "compare commits", move |job, repo| {
            let mut prints = Vec::new();
            for sha in [&a, &b] {
                let (oid, _) = ensure_commit(job, repo, sha)?;
                let commit = repo.find_commit(oid).map_err(|e| git_err(repo, e))?;
                prints.push(layout::fingerprint(repo, &commit, &locator, job.limit)?);
            }
            Ok(prints[0] != prints[1])
        })
        .await
    }

    /// Commits on top of `request.branch` (or, when the branch does not exist, of the default
    /// branch) and pushes without force; see [`super::push`]. `request.planner` runs on the
    /// fetched head of each attempt.
    pub async fn commit_and_push(
        &self,
        url: &str,
        creds: &Credentials,
        request: PushRequest,
    ) -> Result<PushOutcome> {
        let request = Arc::new(request);
        self.with_mirror(url, creds, "push", move |job, repo| {
            push::commit_and_push(job, repo, &request)
        })
        .await
    }

    /// Removes mirrors unused for longer than the TTL (and not in use now); returns their paths.
    pub async fn gc(&self) -> Result<Vec<PathBuf>> {
        let root = self.inner.cfg.dir.join("mirrors");
        let ttl = self.inner.cfg.unused_mirror_ttl;
        let Ok(dir) = std::fs::read_dir(&root) else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            if !path.is_dir() || path.extension().is_none_or(|e| e != "git") {
                continue;
            }
            let Some(key) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let used = std::fs::metadata(path.join(LAST_USED))
                .or_else(|_| std::fs::metadata(&path))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let age = SystemTime::now().duration_since(used).unwrap_or_default();
            // A mirror in use may have been marked up to `touch_every` ago.
            if age <= ttl + touch_every(ttl) {
                continue;
            }
            let known = self.lock_map().get(&key).cloned();
            // Hold the mirror's lock while deleting, skip it when busy.
            let _guard = match &known {
                Some(m) => match m.lock.clone().try_lock_owned() {
                    Ok(g) => Some(g),
                    Err(_) => continue,
                },
                None => None,
            };
            let p = path.clone();
            let result = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&p))
                .await
                .map_err(|e| SourceError::Internal(e.to_string()))?;
            if let Err(e) = result {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove unused mirror");
                continue;
            }
            if let Some(m) = known {
                m.removed.store(true, Ordering::SeqCst);
                self.lock_map().remove(&key);
            }
            tracing::info!(path = %path.display(), age_secs = age.as_secs(), "removed unused git mirror");
            removed.push(path);
        }
        Ok(removed)
    }

    /// Runs [`gc`](Self::gc) every `every` until the returned task is aborted.
    pub fn spawn_gc(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = cache.gc().await {
                    tracing::warn!(error = %e, "git mirror gc failed");
                }
            }
        })
    }

    /// A push to `url` was announced (a verified webhook, an explicit reconcile request): the
    /// next resolve of it lists the remote refs again, whatever [`CacheConfig::reuse_ref_checks`]
    /// allows. Does not wait for operations in progress.
    pub fn forget_ref_checks(&self, url: &str) {
        let norm = normalize_url(url);
        let now = Instant::now();
        for m in self.lock_map().values().filter(|m| m.url_norm == norm) {
            *m.checks_stale_before
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
    }

    /// Says which refs callers of this cache are about to resolve (the command line knows all of
    /// a run's AppImports up front): when one of them must be fetched, the same fetch brings every
    /// other expected branch and tag of that repository that the mirror lacks, so the run
    /// fetches the repository once. Pinned commits are fetched on their own, when missing.
    pub fn expect_refs<'s>(&self, specs: impl IntoIterator<Item = &'s SourceSpec>) {
        let mut expected = self
            .inner
            .expected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for spec in specs {
            let refname = match &spec.git_ref {
                GitRef::Branch(b) => format!("refs/heads/{b}"),
                GitRef::Tag(t) => format!("refs/tags/{t}"),
                GitRef::Commit(_) => continue,
            };
            expected
                .entry(normalize_url(&spec.url))
                .or_default()
                .insert(refname);
        }
    }

    /// Counters of every repository this cache has used, by URL as it may be shown (no
    /// credentials in it), all credential identities of a URL together.
    pub fn traffic(&self) -> Vec<(String, MirrorStats)> {
        let urls: BTreeSet<String> = self
            .lock_map()
            .values()
            .map(|m| m.url_norm.clone())
            .collect();
        urls.into_iter()
            .map(|url| {
                let stats = self.stats(&url);
                (display_url(&url), stats)
            })
            .collect()
    }

    /// Counters of the mirrors of `url` (all credential identities together).
    pub fn stats(&self, url: &str) -> MirrorStats {
        let norm = normalize_url(url);
        let mut total = MirrorStats::default();
        for m in self.lock_map().values().filter(|m| m.url_norm == norm) {
            let s = *m.stats.lock().unwrap_or_else(|p| p.into_inner());
            total.checks += s.checks;
            total.fetches += s.fetches;
            total.objects_received += s.objects_received;
            total.bytes_received += s.bytes_received;
            total.reclones += s.reclones;
        }
        total
    }

    /// Directory of the mirror for this URL and credentials (it may not exist yet).
    pub fn mirror_path(&self, url: &str, creds: &Credentials) -> PathBuf {
        self.inner
            .cfg
            .dir
            .join("mirrors")
            .join(format!("{}.git", mirror_key(url, creds)))
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mirror>>> {
        self.inner.mirrors.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mirror(&self, url: &str, creds: &Credentials) -> Arc<Mirror> {
        let key = mirror_key(url, creds);
        let path = self.mirror_path(url, creds);
        self.lock_map()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Mirror {
                    url_norm: normalize_url(url),
                    path,
                    lock: Arc::new(tokio::sync::Mutex::new(MirrorState::default())),
                    stats: Mutex::new(MirrorStats::default()),
                    removed: AtomicBool::new(false),
                    swept: AtomicBool::new(false),
                    checks_stale_before: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Runs `op` on the mirror in a blocking task, holding the mirror's lock until the task
    /// really ends (even when the async side gave up on it), so two fetches never overlap.
    async fn with_mirror<T, F>(
        &self,
        url: &str,
        creds: &Credentials,
        operation: &'static str,
        op: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Job, &Repository) -> Result<T> + Send + 'static,
    {
        let (mirror, state) = loop {
            let m = self.mirror(url, creds);
            let guard = m.lock.clone().lock_owned().await;
            if !m.removed.load(Ordering::SeqCst) {
                break (m, guard);
            }
        };
        let timeout = self.inner.cfg.network_timeout;
        let expected = self
            .inner
            .expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&mirror.url_norm)
            .map(|refs| refs.iter().cloned().collect())
            .unwrap_or_default();
        let mut job = Job {
            expected,
            mirror,
            state,
            url: url.to_string(),
            creds: creds.clone(),
            deadline: Instant::now() + timeout,
            timeout,
            limit: self.inner.cfg.max_bundle_bytes,
            unused_ttl: self.inner.cfg.unused_mirror_ttl,
            observer: self
                .inner
                .observer
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let task = tokio::task::spawn_blocking(move || run_job(&mut job, &op));
        match tokio::time::timeout(timeout + LOCAL_GRACE, task).await {
            Err(_) => Err(SourceError::Timeout {
                url: display_url(url),
                operation,
                after: timeout + LOCAL_GRACE,
            }),
            Ok(Err(e)) => Err(SourceError::Internal(format!("git task failed: {e}"))),
            Ok(Ok(r)) => r,
        }
    }
}

/// Opens (or creates) the mirror and runs `op`; a corrupt mirror is rebuilt and `op` retried.
fn run_job<T>(job: &mut Job, op: &dyn Fn(&mut Job, &Repository) -> Result<T>) -> Result<T> {
    let path = job.mirror.path.clone();
    let repo = open_mirror(job, &path)?;
    touch_when_due(job, &path);
    match op(job, &repo) {
        Err(SourceError::Mirror { message, .. }) if verify(&repo).is_err() => {
            drop(repo);
            tracing::warn!(path = %path.display(), error = %message, "git mirror corrupt during use; rebuilding");
            let repo = rebuild(job, &path)?;
            op(job, &repo)
        }
        other => other,
    }
}

/// How often a mirror in use is marked as used: every quarter of the unused-mirror TTL, at most
/// every minute. [`SourceCache::gc`] allows for that lag.
fn touch_every(unused_ttl: Duration) -> Duration {
    (unused_ttl / 4).min(Duration::from_secs(60))
}

/// Marks the mirror as used for [`SourceCache::gc`] when [`touch_every`] says it is due: a write
/// to the disk per operation costs more than a no-op's whole git work.
fn touch_when_due(job: &mut Job, path: &Path) {
    let every = touch_every(job.unused_ttl);
    if job.state.touched.is_some_and(|t| t.elapsed() < every) {
        return;
    }
    touch(path);
    job.state.touched = Some(Instant::now());
}

fn open_mirror(job: &mut Job, path: &Path) -> Result<Repository> {
    let mirror_err = |e: std::io::Error| SourceError::Mirror {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(mirror_err)?;
        return Repository::init_bare(path).map_err(|e| git_err_at(path, e));
    }
    if !job.mirror.swept.swap(true, Ordering::SeqCst) {
        remove_stale_locks(path);
    }
    match Repository::open_bare(path)
        .map_err(|e| e.message().to_string())
        .and_then(|r| {
            verify(&r)?;
            Ok(r)
        }) {
        Ok(r) => Ok(r),
        Err(problem) => {
            tracing::warn!(path = %path.display(), problem = %problem, "git mirror corrupt; rebuilding");
            rebuild(job, path)
        }
    }
}

/// Removes the lock files a killed process left in a mirror: libgit2 writes `<file>.lock` while it
/// rewrites HEAD, config, packed-refs, shallow or a ref, and a leftover one fails every later fetch
/// of the mirror. One process owns the cache, and this runs under the mirror's lock the first time
/// this process opens the mirror, so any lock file found then is stale.
fn remove_stale_locks(path: &Path) {
    fn sweep(dir: &Path, recursive: bool) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if recursive {
                    sweep(&p, true);
                }
            } else if p.extension().is_some_and(|e| e == "lock") {
                match std::fs::remove_file(&p) {
                    Ok(()) => tracing::warn!(file = %p.display(), "removed a stale git lock file"),
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "cannot remove a stale git lock file")
                    }
                }
            }
        }
    }
    sweep(path, false);
    sweep(&path.join("refs"), true);
}

fn rebuild(job: &mut Job, path: &Path) -> Result<Repository> {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path).map_err(|e| SourceError::Mirror {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let repo = Repository::init_bare(path).map_err(|e| git_err_at(path, e))?;
    job.state.touched = None;
    touch_when_due(job, path);
    job.state.listing = None;
    bump(job, |s| s.reclones += 1);
    Ok(repo)
}

/// Every ref must point at a readable object: catches truncated packs and lost objects.
fn verify(repo: &Repository) -> std::result::Result<(), String> {
    let odb = repo.odb().map_err(|e| e.message().to_string())?;
    let refs = repo.references().map_err(|e| e.message().to_string())?;
    for r in refs {
        let r = r.map_err(|e| e.message().to_string())?;
        if let Some(oid) = r.target() {
            odb.read_header(oid)
                .map_err(|e| format!("{}: {}", r.name().unwrap_or("?"), e.message()))?;
            if let Ok(c) = repo.find_commit(oid) {
                c.tree().map_err(|e| e.message().to_string())?;
            }
        }
    }
    Ok(())
}

fn touch(path: &Path) {
    let marker = path.join(LAST_USED);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&marker);
    if let Ok(f) = file {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn bump(job: &Job, f: impl FnOnce(&mut MirrorStats)) {
    f(&mut job.mirror.stats.lock().unwrap_or_else(|p| p.into_inner()));
}

pub(super) fn remote<'a>(job: &'a Job) -> RemoteCtx<'a> {
    RemoteCtx {
        url: &job.url,
        creds: &job.creds,
        deadline: job.deadline,
        timeout: job.timeout,
    }
}

/// Branch or tag: the remote's current commit, fetched when missing. Returns (oid, fetched).
fn follow_ref(
    job: &mut Job,
    repo: &Repository,
    refname: &str,
    requested_at: Instant,
) -> Result<(Oid, bool)> {
    let listing = fresh_listing(job, repo, requested_at)?;
    let Some(wanted) = listing.commit_of(refname) else {
        let error = ref_not_found(&job.url, refname, &listing.refs);
        job.state.listing = Some(listing);
        return Err(error);
    };
    if repo.find_commit(wanted).is_ok() {
        job.state.listing = Some(listing);
        // Keep the mirror's branch where the remote's is (it may have moved back); writing a
        // ref that is already there would cost a lock file and a rename per call.
        if refname.starts_with("refs/heads/") && repo.refname_to_id(refname).ok() != Some(wanted) {
            let _ = repo.reference(refname, wanted, true, "tooljet-operator: follow remote");
        }
        return Ok((wanted, false));
    }
    // One fetch for this ref and every other expected one the mirror lacks, so a run of many
    // AppImports of one repository fetches it once.
    let missing: Vec<String> = std::iter::once(refname)
        .chain(
            job.expected
                .iter()
                .map(String::as_str)
                .filter(|r| *r != refname),
        )
        .filter(|r| {
            listing
                .commit_of(r)
                .is_some_and(|oid| repo.find_commit(oid).is_err())
        })
        .map(|r| format!("+{r}:{r}"))
        .collect();
    job.state.listing = Some(listing);
    let specs: Vec<&str> = missing.iter().map(String::as_str).collect();
    fetch(job, repo, &specs)?;
    if repo.find_commit(wanted).is_err() {
        // The ref moved again between listing and fetching: take what was fetched, and list
        // again next time.
        let now = repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .map_err(|e| git_err(repo, e))?;
        job.state.listing = None;
        return Ok((now.id(), true));
    }
    Ok((wanted, true))
}

/// The mirror's last listing when it started at or after `requested_at`, else a new one. The
/// caller puts it back into `job.state` when it is still good.
fn fresh_listing(job: &mut Job, repo: &Repository, requested_at: Instant) -> Result<Listing> {
    if let Some(listing) = job.state.listing.take()
        && listing.started >= requested_at
    {
        return Ok(listing);
    }
    let started = Instant::now();
    bump(job, |s| s.checks += 1);
    let refs = remote(job).list_refs(repo);
    if let Some(o) = &job.observer {
        o.ref_checked(started.elapsed());
    }
    Ok(Listing {
        started,
        refs: refs?,
    })
}

fn ref_not_found(url: &str, refname: &str, refs: &[(String, Oid)]) -> SourceError {
    let (kind, prefix) = if refname.starts_with("refs/tags/") {
        ("tag", "refs/tags/")
    } else {
        ("branch", "refs/heads/")
    };
    let available = refs
        .iter()
        .filter_map(|(n, _)| n.strip_prefix(prefix))
        .filter(|n| !n.ends_with("^{}"))
        .take(50)
        .map(str::to_string)
        .collect();
    SourceError::RefNotFound {
        url: display_url(url),
        kind,
        name: refname.trim_start_matches(prefix).to_string(),
        available,
    }
}

/// A pinned commit: no network when present; else fetched by sha (servers that allow it), else
/// by fetching all branches and tags. Returns (oid, fetched).
fn ensure_commit(job: &mut Job, repo: &Repository, sha: &str) -> Result<(Oid, bool)> {
    let oid = parse_sha(sha)?;
    if repo.find_commit(oid).is_ok() {
        return Ok((oid, false));
    }
    let keep = format!("+{sha}:refs/pinned/{sha}");
    match fetch(job, repo, &[&keep]) {
        Ok(()) if repo.find_commit(oid).is_ok() => return Ok((oid, true)),
        Ok(()) | Err(SourceError::RemoteUnavailable { .. } | SourceError::Mirror { .. }) => {}
        Err(e) => return Err(e),
    }
    tracing::debug!(url = %display_url(&job.url), sha, "server refused the commit by sha; fetching all refs");
    fetch(
        job,
        repo,
        &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
    )?;
    if repo.find_commit(oid).is_ok() {
        return Ok((oid, true));
    }
    Err(SourceError::CommitNotFound {
        url: display_url(&job.url),
        sha: sha.to_string(),
    })
}

pub(super) fn fetch(job: &mut Job, repo: &Repository, refspecs: &[&str]) -> Result<()> {
    bump(job, |s| s.fetches += 1);
    let started = Instant::now();
    let t = remote(job).fetch(repo, refspecs);
    if let Some(o) = &job.observer {
        o.fetched(started.elapsed());
    }
    let t = t?;
    bump(job, |s| {
        s.objects_received += t.objects;
        s.bytes_received += t.bytes;
    });
    tracing::info!(url = %display_url(&job.url), refspecs = ?refspecs, objects = t.objects, bytes = t.bytes, "fetched");
    Ok(())
}

fn parse_sha(sha: &str) -> Result<Oid> {
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SourceError::InvalidCommitId {
            value: sha.to_string(),
        });
    }
    Oid::from_str(sha).map_err(|_| SourceError::InvalidCommitId {
        value: sha.to_string(),
    })
}

fn git_err_at(path: &Path, e: git2::Error) -> SourceError {
    SourceError::Mirror {
        path: path.display().to_string(),
        message: e.message().to_string(),
    }
}

/// Same repository, same key: scheme and host lowercased, trailing slashes dropped.
fn normalize_url(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(mut u) => {
            // `url` lowercases the host of http(s) and file URLs only; ssh:// and git:// hosts
            // are case-insensitive too.
            if let Some(host) = u.host_str().map(str::to_ascii_lowercase) {
                let _ = u.set_host(Some(&host));
            }
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => trimmed.to_string(),
    }
}

/// Mirror directory name: a hash of the normalised URL and the credential identity, so neither
/// the URL nor anything secret appears on disk in clear.
fn mirror_key(url: &str, creds: &Credentials) -> String {
    let mut h = Sha256::new();
    h.update(normalize_url(url).as_bytes());
    h.update(b"\n");
    h.update(creds.identity().as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_key_normalises_url_and_separates_secrets() {
        let anon = Credentials::Anonymous;
        assert_eq!(
            mirror_key("HTTPS://Git.Example/org/repo.git/", &anon),
            mirror_key("https://git.example/org/repo.git", &anon)
        );
        assert_eq!(
            mirror_key("SSH://git@Git.Example/org/repo.git", &anon),
            mirror_key("ssh://git@git.example/org/repo.git", &anon)
        );
        let a = Credentials::Token {
            username: "x".into(),
            token: "one".into(),
        };
        let b = Credentials::Token {
            username: "x".into(),
            token: "two".into(),
        };
        let url = "https://git.example/org/repo.git";
        assert_ne!(mirror_key(url, &a), mirror_key(url, &b));
        assert_ne!(mirror_key(url, &a), mirror_key(url, &anon));
        assert!(!mirror_key(url, &a).contains("one"));
    }

    #[test]
    fn pinned_commits_must_be_full_shas() {
        assert!(parse_sha("0123456789abcdef0123456789abcdef01234567").is_ok());
        assert!(parse_sha("0123456").is_err());
        assert!(parse_sha("z123456789abcdef0123456789abcdef01234567").is_err());
    }
}
