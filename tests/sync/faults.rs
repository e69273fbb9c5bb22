//! Fault matrix (issue 9, item 1): every ToolJet call of a first import and of an update fails
//! once — a 5xx, a timeout whose write did happen, a connection dropped before the write — then a
//! clean run must restore the invariant: one app under the real name with its slug, the old or new
//! definition, no leftover app, and a state that names the app ToolJet holds.
//! Then the whole-service faults: ToolJet down and back, the git server gone and back, rotated git
//! credentials, a force-push, a corrupt mirror.

use test_support::engine::{EngineRig, RunArgs};
use test_support::pipeline as reliability_common;

use std::time::Duration;

use git_fixtures::{HttpGitServer, TestRepo};
use reliability_common::{APP, assert_converged, push_version, start_standin};
use serde_json::json;
use tooljet_operator::api::AppImportSpec;
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::{Engine, SyncOutcome};
use tooljet_standin::flavoured;
use tooljet_standin::{Flavour, StandIn};

const API_KEY: &str = "faults-test-admin-key";
/// The client gives up after this; a delayed answer comes after it.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(700);
const LATE: Duration = Duration::from_millis(1500);

/// The shared engine rig (tests/support), with the source and credentials the next run uses.
struct Rig {
    rig: EngineRig,
    url: String,
    creds: Credentials,
    editable: bool,
}

impl std::ops::Deref for Rig {
    type Target = EngineRig;
    fn deref(&self) -> &EngineRig {
        &self.rig
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut EngineRig {
        &mut self.rig
    }
}

impl Rig {
    /// A ToolJet of `flavour`; the client logs in with a password on 2.27 (no admin API key
    /// there), with the admin API key on 3.x.
    async fn new(flavour: Flavour) -> Rig {
        let repo = TestRepo::new();
        push_version(&repo, "v1");
        let standin = start_standin(flavour, API_KEY).await;
        let url = repo.file_url();
        Rig {
            rig: EngineRig::new(
                standin,
                repo,
                flavour,
                API_KEY,
                CLIENT_TIMEOUT,
                Some(Duration::from_secs(10)),
            ),
            url,
            creds: Credentials::Anonymous,
            editable: false,
        }
    }

    fn spec(&self) -> AppImportSpec {
        serde_json::from_value(json!({
            "environment": "development",
            "source": {"url": self.url, "ref": {"branch": "master"}, "app": APP},
            "editable": self.editable,
        }))
        .expect("app import spec")
    }

    async fn sync(&mut self) -> SyncOutcome {
        let spec = self.spec();
        let args = RunArgs {
            git_credentials: self.creds.clone(),
            ..RunArgs::default()
        };
        self.rig.sync(&spec, args).await
    }

    /// A run with no fault converges; checks the invariant and that the state names the app.
    async fn converge(&mut self, slug: Option<&str>, version: &str) -> String {
        self.standin.faults().reset();
        let out = self.sync().await;
        assert!(out.report.ready(), "recovery run: {:?}", out.report);
        let app = assert_converged(&self.standin, slug, &[version]);
        let recorded = self.state.app.as_ref().expect("state names the app");
        assert_eq!(recorded.id, app.id, "the state is true to ToolJet");
        assert!(self.state.pending_app.is_none(), "{:?}", self.state);
        app.slug
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Status5xx,
    /// The server handles the request, the client times out before the answer.
    TimeoutAfterWrite,
    /// The connection closes before the server handles the request.
    Dropped,
}

const FAULTS: [Fault; 3] = [Fault::Status5xx, Fault::TimeoutAfterWrite, Fault::Dropped];

fn inject(standin: &StandIn, fault: Fault, method: &str, pattern: &str, n: u64) {
    let f = standin.faults();
    match fault {
        Fault::Status5xx => f.fail_nth(method, pattern, n, 503),
        Fault::TimeoutAfterWrite => f.delay_answer_nth(method, pattern, n, LATE),
        Fault::Dropped => f.drop_nth(method, pattern, n),
    }
}

/// One ToolJet call of a run: method, route pattern, which call of that route within the run
/// (1-based), and what the engine does with it.
type Call = (&'static str, &'static str, u64, &'static str);

/// The calls of a first import, in order (n counts calls of that route within the run), as a clean
/// run makes them (checked against the stand-in's request log by the matrix). The client's first
/// run logs in (2.27: password) and asks the server version; on 2.x the release is a
/// `PUT /api/apps/:id` (`{app: {current_version_id}}`), so the rename is that route's second call.
fn create_calls(flavour: Flavour) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    if flavour == Flavour::V2_27 {
        calls.push(("POST", "/api/authenticate/*", 1, "log in"));
    }
    calls.extend([
        ("GET", "/api/metadata", 1, "ask the server version"),
        ("GET", "/api/apps", 1, "list leftovers"),
        ("GET", "/api/apps", 2, "look for an app holding the name"),
        (
            "POST",
            "/api/v2/resources/import",
            1,
            "import under a temporary name",
        ),
        ("GET", "/api/apps/*", 1, "read the imported app"),
        export_to_verify(),
        list_data_sources(flavour, 1),
        release(flavour),
        ("GET", "/api/apps/*", 2, "verify the release"),
        (
            "PUT",
            "/api/apps/*",
            rename(flavour, 1),
            "take the real name",
        ),
        (
            "GET",
            "/api/apps/*",
            3,
            "check the app under the real name, record it",
        ),
    ]);
    calls
}

/// After an import: its export, compared with the bundle (pages, components, queries).
fn export_to_verify() -> Call {
    (
        "POST",
        "/api/v2/resources/export",
        1,
        "export the import to verify its pages, components and queries",
    )
}

/// The n-th listing of the workspace's data sources (the family's route).
fn list_data_sources(flavour: Flavour, n: u64) -> Call {
    match (flavour, n) {
        (Flavour::V2_27, 1) => (
            "GET",
            "/api/v2/data_sources",
            1,
            "list data sources: every query's exists",
        ),
        (Flavour::V2_27, _) => (
            "GET",
            "/api/v2/data_sources",
            n,
            "list the data sources to free",
        ),
        (Flavour::V3, _) => (
            "GET",
            "/api/data-sources/*",
            n,
            "list data sources: every query's exists",
        ),
    }
}

/// The calls of an update (swap), in order, as a clean run makes them (the client is logged in and
/// knows the server version). On 2.x the renames come after the release `PUT /api/apps/:id`, and
/// deleting the old app first frees the data sources its versions own (read the app, list the
/// workspace's data sources).
fn update_calls(flavour: Flavour) -> Vec<Call> {
    let mut calls: Vec<Call> = vec![
        ("GET", "/api/apps", 1, "list leftovers"),
        ("GET", "/api/apps/*", 1, "observe the owned app"),
        (
            "POST",
            "/api/v2/resources/import",
            1,
            "import under a temporary name",
        ),
        ("GET", "/api/apps/*", 2, "read the imported app"),
        export_to_verify(),
        list_data_sources(flavour, 1),
        release(flavour),
        ("GET", "/api/apps/*", 3, "verify the release"),
        (
            "PUT",
            "/api/apps/*",
            rename(flavour, 1),
            "move the old app aside",
        ),
        (
            "PUT",
            "/api/apps/*",
            rename(flavour, 2),
            "give the new app the real name",
        ),
        (
            "GET",
            "/api/apps/*",
            4,
            "check the new app under the real name, record it",
        ),
    ];
    let mut reads = 4;
    if flavour == Flavour::V2_27 {
        reads += 1;
        calls.extend([
            (
                "GET",
                "/api/apps/*",
                reads,
                "read the old app's data sources",
            ),
            list_data_sources(flavour, 2),
        ]);
    }
    calls.extend([
        ("DELETE", "/api/apps/*", 1, "delete the old app"),
        (
            "GET",
            "/api/apps/*",
            reads + 1,
            "verify the queries were kept",
        ),
    ]);
    calls
}

/// The release: `PUT /api/apps/:id/release` on 3.x, the first `PUT /api/apps/:id` on 2.x.
fn release(flavour: Flavour) -> Call {
    match flavour {
        Flavour::V2_27 => ("PUT", "/api/apps/*", 1, "release"),
        Flavour::V3 => ("PUT", "/api/apps/*/release", 1, "release"),
    }
}

/// The n-th rename of a run as the n-th call of `PUT /api/apps/:id` (after the release on 2.x).
fn rename(flavour: Flavour, n: u64) -> u64 {
    u64::from(flavour == Flavour::V2_27) + n
}

/// The calls the stand-in logged, as (method, route pattern, n-th call of that route): ids (UUIDs)
/// become `*`.
fn logged_calls(standin: &StandIn) -> Vec<(String, String, u64)> {
    let mut seen: Vec<(String, String, u64)> = Vec::new();
    for r in standin.request_log() {
        let pattern = r
            .path
            .split('/')
            .map(|seg| {
                let uuid = seg.len() == 36
                    && seg.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
                    && seg.matches('-').count() == 4;
                if uuid { "*" } else { seg }
            })
            .collect::<Vec<_>>()
            .join("/");
        let n = 1 + seen
            .iter()
            .filter(|(m, p, _)| *m == r.method && *p == pattern)
            .count() as u64;
        seen.push((r.method, pattern, n));
    }
    seen
}

/// The table must be every call of a clean run, in order: a call the engine adds (a data-source
/// list, a login) fails the matrix until the table names it.
fn assert_table_is_every_call(standin: &StandIn, table: &[Call], what: &str) {
    let logged = logged_calls(standin);
    let expected: Vec<(String, String, u64)> = table
        .iter()
        .map(|(m, p, n, _)| (m.to_string(), p.to_string(), *n))
        .collect();
    assert_eq!(
        logged,
        expected,
        "{what} on {}: the table is not the clean run's calls",
        standin.flavour()
    );
}

/// The failed run must say what failed, and never leave two apps under the name; a failed update
/// leaves exactly one (`keeps_app`): the users keep an app while the next run is awaited.
fn check_failed_run(standin: &StandIn, out: &SyncOutcome, what: &str, keeps_app: bool) {
    assert!(!out.report.ready(), "{what}: the fault went unnoticed");
    assert_eq!(
        out.report.reason, "ToolJetUnavailable",
        "{what}: {:?}",
        out.report
    );
    assert!(out.report.retryable(), "{what}");
    let under_name = standin.apps().iter().filter(|a| a.name == APP).count();
    let leftovers = standin
        .apps()
        .iter()
        .filter(|a| a.name.starts_with("tjop-"))
        .count();
    // The table in RELIABILITY.md comes from this line (`--nocapture`).
    eprintln!(
        "| {what} | {} | {under_name} | {leftovers} |",
        out.report.reason
    );
    assert!(under_name <= 1, "{what}: {under_name} apps under the name");
    if keeps_app {
        assert_eq!(
            under_name, 1,
            "{what}: the users lost their app until the next run"
        );
    }
}

flavoured!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    each_call_of_a_first_import_fails_once_then_a_run_converges,
    flavour,
    {
        let calls = create_calls(flavour);
        let mut clean = Rig::new(flavour).await;
        clean.converge(None, "v1").await;
        assert_table_is_every_call(&clean.standin, &calls, "a first import");
        for fault in FAULTS {
            for (method, pattern, n, step) in &calls {
                let what =
                    format!("{flavour}: create, {step} ({method} {pattern} #{n}): {fault:?}");
                let mut r = Rig::new(flavour).await;
                inject(&r.standin, fault, method, pattern, *n);
                let failed = r.sync().await;
                check_failed_run(&r.standin, &failed, &what, false);
                r.converge(None, "v1").await;
            }
        }
    }
);

flavoured!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    each_call_of_an_update_fails_once_then_a_run_converges,
    flavour,
    {
        let calls = update_calls(flavour);
        let mut clean = Rig::new(flavour).await;
        let slug = clean.converge(None, "v1").await;
        push_version(&clean.repo, "v2");
        clean.standin.clear_request_log();
        clean.converge(Some(&slug), "v2").await;
        assert_table_is_every_call(&clean.standin, &calls, "an update");
        for fault in FAULTS {
            for (method, pattern, n, step) in &calls {
                let what =
                    format!("{flavour}: update, {step} ({method} {pattern} #{n}): {fault:?}");
                let mut r = Rig::new(flavour).await;
                let slug = r.converge(None, "v1").await;
                push_version(&r.repo, "v2");
                inject(&r.standin, fault, method, pattern, *n);
                let failed = r.sync().await;
                check_failed_run(&r.standin, &failed, &what, true);
                r.converge(Some(&slug), "v2").await;
            }
        }
    }
);

flavoured!(
    /// An editable app's failed swap puts the old app back; that rename is the operator's own write,
    /// not an edit made in ToolJet, so the next run must not refuse with LocalChanges.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    editable_app_failed_swap_is_not_mistaken_for_local_edits,
    flavour,
    {
        let steps: [(&str, Fault, u64); 3] = [
            ("move aside", Fault::TimeoutAfterWrite, 1),
            ("take name", Fault::Status5xx, 2),
            ("take name", Fault::TimeoutAfterWrite, 2),
        ];
        // On 2.x the release is the first PUT /api/apps/:id of the update: the renames follow it.
        let release = u64::from(flavour == Flavour::V2_27);
        for (step, fault, n) in steps {
            let mut r = Rig::new(flavour).await;
            r.editable = true;
            let slug = r.converge(None, "v1").await;
            push_version(&r.repo, "v2");
            inject(&r.standin, fault, "PUT", "/api/apps/*", release + n);
            let failed = r.sync().await;
            assert!(!failed.report.ready(), "{step} {fault:?}");
            r.standin.faults().reset();
            let out = r.sync().await;
            assert!(
                out.report.ready(),
                "{step} {fault:?}: the recovery run refused: {:?}",
                out.report
            );
            assert_converged(&r.standin, Some(&slug), &["v2"]);
        }
    }
);

flavoured!(
    /// The same, when putting the old app back also fails: the next run finds the old app aside and
    /// the new one gone, and puts the old one back itself before updating.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    editable_app_put_back_by_the_next_run_is_not_mistaken_for_local_edits,
    flavour,
    {
        let mut r = Rig::new(flavour).await;
        r.editable = true;
        let slug = r.converge(None, "v1").await;
        push_version(&r.repo, "v2");
        // On 2.x the release is the first PUT /api/apps/:id of the update: the renames follow it.
        let release = u64::from(flavour == Flavour::V2_27);
        inject(
            &r.standin,
            Fault::TimeoutAfterWrite,
            "PUT",
            "/api/apps/*",
            release + 1,
        );
        inject(
            &r.standin,
            Fault::Status5xx,
            "PUT",
            "/api/apps/*",
            release + 2,
        );
        let failed = r.sync().await;
        assert!(!failed.report.ready());
        let aside: Vec<_> = r
            .standin
            .apps()
            .into_iter()
            .filter(|a| a.name.starts_with("tjop-old-"))
            .collect();
        assert_eq!(aside.len(), 1, "the old app is left aside for the next run");
        r.standin.faults().reset();
        let out = r.sync().await;
        assert!(
            out.report.ready(),
            "the recovery run refused: {:?}",
            out.report
        );
        assert_converged(&r.standin, Some(&slug), &["v2"]);
    }
);

flavoured!(
    /// A release that keeps failing: every failed run removes the app it imported, so retries never
    /// pile up temporary apps (nor import again over a leftover), and nothing under the real name is
    /// touched; once the release works, the run converges.
    #[tokio::test]
    a_release_that_keeps_failing_leaves_nothing_behind,
    flavour,
    {
        for update in [false, true] {
            let mut r = Rig::new(flavour).await;
            let slug = if update {
                let slug = r.converge(None, "v1").await;
                push_version(&r.repo, "v2");
                Some(slug)
            } else {
                None
            };
            // On 2.x the release is a PUT /api/apps/:id, the first of the run: failing that
            // route fails every release (the renames come after it).
            let release = match flavour {
                Flavour::V2_27 => "/api/apps/*",
                Flavour::V3 => "/api/apps/*/release",
            };
            r.standin.faults().fail_route("PUT", release, 503);
            for attempt in 0..3 {
                let out = r.sync().await;
                assert!(!out.report.ready(), "attempt {attempt}: {:?}", out.report);
                assert!(out.report.retryable(), "attempt {attempt}");
                let apps = r.standin.apps();
                assert!(
                    !apps.iter().any(|a| a.name.starts_with("tjop-")),
                    "update {update}, attempt {attempt}: a temporary app was left: {apps:#?}"
                );
                assert_eq!(
                    apps.iter().filter(|a| a.name == APP).count(),
                    usize::from(update),
                    "update {update}, attempt {attempt}: the users' app is untouched"
                );
            }
            r.standin.faults().reset();
            r.converge(slug.as_deref(), if update { "v2" } else { "v1" })
                .await;
        }
    }
);

flavoured!(
    #[tokio::test]
    tooljet_down_then_back,
    flavour,
    {
        let mut r = Rig::new(flavour).await;
        let slug = r.converge(None, "v1").await;
        push_version(&r.repo, "v2");
        r.standin.faults().set_down(true);
        let writes = r.standin.write_count();
        let out = r.sync().await;
        assert!(
            !out.report.ready() && out.report.retryable(),
            "{:?}",
            out.report
        );
        assert_eq!(out.report.reason, "ToolJetUnavailable");
        assert_eq!(r.standin.write_count(), writes, "nothing written");
        r.standin.faults().set_down(false);
        r.converge(Some(&slug), "v2").await;
    }
);

flavoured!(
    #[tokio::test]
    git_server_gone_then_back,
    flavour,
    {
        let mut r = Rig::new(flavour).await;
        let slug = r.converge(None, "v1").await;
        push_version(&r.repo, "v2");
        let served = r.repo.served_path().to_owned();
        let away = served.with_extension("away");
        std::fs::rename(&served, &away).expect("take the repository away");
        let writes = r.standin.write_count();
        let out = r.sync().await;
        std::fs::rename(&away, &served).expect("bring it back");
        assert!(!out.report.ready(), "{:?}", out.report);
        assert_eq!(out.report.reason, "GitUnavailable", "{:?}", out.report);
        assert!(out.report.retryable(), "{:?}", out.report);
        assert_eq!(r.standin.write_count(), writes, "nothing written");
        assert_converged(&r.standin, Some(&slug), &["v1"]);
        r.converge(Some(&slug), "v2").await;
    }
);

flavoured!(
    #[tokio::test]
    rotated_git_password_fails_clearly_then_converges,
    flavour,
    {
        let mut r = Rig::new(flavour).await;
        let server =
            HttpGitServer::start_with_basic_auth(r.repo.base_dir(), "ci", "new-password-42");
        r.url = server.url(&r.repo.served_name());
        r.creds = Credentials::Basic {
            username: "ci".into(),
            password: "old-password-17".into(),
        };
        let out = r.sync().await;
        assert!(!out.report.ready(), "{:?}", out.report);
        assert_eq!(
            out.report.reason, "GitAuthenticationFailed",
            "{:?}",
            out.report
        );
        assert!(!out.report.message.contains("old-password-17"));
        assert_eq!(r.standin.write_count(), 0, "nothing written");
        // The Secret is updated with the new password.
        r.creds = Credentials::Basic {
            username: "ci".into(),
            password: "new-password-42".into(),
        };
        r.converge(None, "v1").await;
    }
);

flavoured!(
    #[tokio::test]
    force_push_applies_the_older_content_and_says_so,
    flavour,
    {
        let mut r = Rig::new(flavour).await;
        let slug = r.converge(None, "v1").await;
        push_version(&r.repo, "v2");
        r.converge(Some(&slug), "v2").await;
        r.repo.reset_hard("HEAD~1");
        let out = r.sync().await;
        assert!(out.report.ready(), "{:?}", out.report);
        assert!(out.report.force_pushed, "{:?}", out.report);
        assert_converged(&r.standin, Some(&slug), &["v1"]);
    }
);

flavoured!(
    #[tokio::test]
    corrupt_mirror_is_cloned_again,
    flavour,
    {
        for damage in ["objects and refs deleted", "HEAD and config garbled"] {
            let mut r = Rig::new(flavour).await;
            let slug = r.converge(None, "v1").await;
            let mirror = r.cache.mirror_path(&r.url, &r.creds);
            assert!(mirror.is_dir(), "{}", mirror.display());
            match damage {
                "objects and refs deleted" => {
                    std::fs::remove_dir_all(mirror.join("objects")).expect("rm objects");
                    std::fs::remove_dir_all(mirror.join("refs")).expect("rm refs");
                    let _ = std::fs::remove_file(mirror.join("packed-refs"));
                }
                _ => {
                    std::fs::write(mirror.join("HEAD"), b"\0\x01garbage").expect("garble HEAD");
                    std::fs::write(mirror.join("config"), b"[[[not a config")
                        .expect("garble config");
                }
            }
            push_version(&r.repo, "v2");
            r.converge(Some(&slug), "v2").await;
            assert!(
                r.cache.stats(&r.url).reclones >= 1,
                "{damage}: {:?}",
                r.cache.stats(&r.url)
            );
        }
    }
);

flavoured!(
    /// A process killed during a fetch leaves libgit2's lock files in the mirror (found by the crash
    /// test: `shallow.lock`). The next process must not be wedged by them.
    #[tokio::test]
    lock_files_left_by_a_killed_process_do_not_wedge_the_mirror,
    flavour,
    {
        let mut r = Rig::new(flavour).await;
        let slug = r.converge(None, "v1").await;
        let mirror = r.cache.mirror_path(&r.url, &r.creds);
        for lock in [
            "shallow.lock",
            "packed-refs.lock",
            "HEAD.lock",
            "config.lock",
        ] {
            std::fs::write(mirror.join(lock), b"").expect("leave a lock file");
        }
        let refs = mirror.join("refs/heads");
        std::fs::create_dir_all(&refs).expect("refs dir");
        std::fs::write(refs.join("master.lock"), b"").expect("leave a ref lock");
        push_version(&r.repo, "v2");
        // The next process: a new engine over the same cache directory.
        r.cache = SourceCache::new(CacheConfig {
            dir: r.cache_dir.path().to_owned(),
            network_timeout: Duration::from_secs(10),
            ..CacheConfig::default()
        });
        r.engine = Engine::new(r.cache.clone());
        r.converge(Some(&slug), "v2").await;
    }
);

flavoured!(
    /// The command line (`sync -f`, state file) through the same update faults: 5xx and dropped
    /// connections (a timeout would need the client's 60 s default; the engine rows cover it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    command_line_update_survives_each_fault,
    flavour,
    {
        for fault in [Fault::Status5xx, Fault::Dropped] {
            for (method, pattern, n, step) in update_calls(flavour) {
                let what = format!(
                    "{flavour}: sync -f, update, {step} ({method} {pattern} #{n}): {fault:?}"
                );
                let repo = TestRepo::new();
                push_version(&repo, "v1");
                let standin = start_standin(flavour, API_KEY).await;
                let p = reliability_common::Pipeline::flavoured(API_KEY, flavour);
                let manifests = p.manifests(&standin, &repo.file_url(), "");
                let first = p.sync(&manifests).await;
                assert!(
                    first.status.success(),
                    "{}",
                    reliability_common::text(&first)
                );
                let slug = assert_converged(&standin, None, &["v1"]).slug;
                push_version(&repo, "v2");
                inject(&standin, fault, method, pattern, n);
                let failed = p.sync(&manifests).await;
                assert_eq!(failed.status.code(), Some(1), "{what}");
                assert!(
                    String::from_utf8_lossy(&failed.stdout).contains("ToolJetUnavailable"),
                    "{what}: {}",
                    reliability_common::text(&failed)
                );
                let under_name = standin.apps().iter().filter(|a| a.name == APP).count();
                assert_eq!(under_name, 1, "{what}: the users keep an app");
                standin.faults().reset();
                let ok = p.sync(&manifests).await;
                assert!(
                    ok.status.success(),
                    "{what}: {}",
                    reliability_common::text(&ok)
                );
                let app = assert_converged(&standin, Some(&slug), &["v2"]);
                assert_eq!(p.state_app_id().as_deref(), Some(app.id.as_str()), "{what}");
            }
        }
    }
);
