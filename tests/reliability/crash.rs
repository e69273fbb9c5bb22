//! Crash safety (issue 9, item 2): `tooljet-operator sync` killed with SIGKILL at random points
//! of updates, each time followed by a normal run that must converge to the invariant: one app
//! under the real name with the first import's slug, the old or new definition, no leftover app,
//! and a state file that names the real app.
//!
//! It runs against both stand-in flavours (2.27, logging in with a password and releasing with
//! `PUT /api/apps/:id`; 3.x, with the admin API key), one after the other so that the two do not
//! share the machine's cores while kills are timed. Each keeps the 60 kills of the single-flavour
//! test: with 30 or 40, 3.x runs saw only 4 or 5 kills with leftovers, too close to the threshold
//! of 3 to prove anything reliably.
//!
//! The kill points are drawn from a fixed seed over the measured length of an update; the stand-in
//! answers every request a few milliseconds late so that kills land between ToolJet calls (during
//! the import, between the import and the swap, between the two renames, before the delete).

use test_support::pipeline as reliability_common;

use std::time::{Duration, Instant};

use git_fixtures::TestRepo;
use reliability_common::*;
use tooljet_standin::Flavour;
use tooljet_standin::flavoured;

const API_KEY: &str = "crash-test-admin-key-7731";
/// Per flavour.
const KILLS: usize = 60;
const SEED: u64 = 0x5EED_0009;
/// Each flavour stops killing after this, so CI time stays bounded on a slow machine.
const BUDGET: Duration = Duration::from_secs(80);

/// The flavours' runs take turns (with the load run too): kill points are timed against a
/// measured run.
use crate::ONE_AT_A_TIME;

flavoured!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    sigkill_during_updates_never_costs_the_app,
    flavour,
    {
        let _turn = ONE_AT_A_TIME.lock().await;
        crash_rounds(flavour).await;
    }
);

async fn crash_rounds(flavour: Flavour) {
    let repo = TestRepo::new();
    push_version(&repo, "v0");
    let standin = start_standin(flavour, API_KEY).await;
    let p = Pipeline::flavoured(API_KEY, flavour);
    let manifests = p.manifests(&standin, &repo.file_url(), "");

    let started_all = Instant::now();
    let first = p.sync(&manifests).await;
    assert!(first.status.success(), "{}", text(&first));
    let slug = assert_converged(&standin, None, &["v0"]).slug;
    // ToolJet's latency, so that a run spends its time between calls rather than in start-up.
    standin.faults().set_latency(Duration::from_millis(4));

    // Uninterrupted updates measure how long a run takes; kills are drawn over 0..=that. The
    // median of three, so that one run slowed by a busy machine does not push every kill late.
    let mut runs_ms = Vec::new();
    for version in ["m1", "m2", "v1"] {
        push_version(&repo, version);
        let started = Instant::now();
        let measured = p.sync(&manifests).await;
        runs_ms.push(started.elapsed().as_millis() as u64);
        assert!(measured.status.success(), "{}", text(&measured));
        assert_converged(&standin, Some(&slug), &[version]);
    }
    runs_ms.sort_unstable();
    let run_ms = runs_ms[1];

    let mut rng = Rng::new(SEED);
    let mut stats = Stats::default();
    let deadline = Instant::now() + BUDGET;
    let mut current = "v1".to_owned();
    for round in 0..KILLS {
        if Instant::now() > deadline {
            break;
        }
        let next = format!("v{}", round + 2);
        push_version(&repo, &next);
        let delay = rng.up_to(run_ms + run_ms / 4);

        let mut child = p
            .sync_command(&manifests, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawns");
        tokio::time::sleep(Duration::from_millis(delay)).await; // the kill point, not a wait
        let finished_first = child.try_wait().expect("try_wait").is_some();
        // SIGKILL on Unix: no destructor, no signal handler, no flush.
        let _ = child.start_kill();
        let status = child.wait().await.expect("child reaped");
        stats.kills += 1;
        if finished_first || status.success() {
            stats.finished_before_kill += 1;
        }

        let after_kill = seen(&standin);
        if after_kill.leftovers > 0 {
            stats.left_leftovers += 1;
        }
        if after_kill.under_name == 0 {
            stats.name_vacant += 1;
        }
        if after_kill.under_name > 1 {
            panic!("{flavour}: two apps under the real name after a kill: {after_kill:?}");
        }

        // A normal run converges, to the new version.
        let recovery = p.sync(&manifests).await;
        assert!(
            recovery.status.success(),
            "{flavour}, round {round} (kill after {delay} ms): {}",
            text(&recovery)
        );
        let app = assert_converged(&standin, Some(&slug), &[&current, &next]);
        assert_eq!(
            app.definition["icon"].as_str(),
            Some(next.as_str()),
            "{flavour}, round {round}: a completed run applies the latest commit"
        );
        assert_eq!(
            p.state_app_id().as_deref(),
            Some(app.id.as_str()),
            "{flavour}, round {round}: the state file names the real app"
        );
        if after_kill.leftovers > 0 {
            stats.leftovers_cleaned += 1;
        }
        current = next;
    }

    eprintln!(
        "crash test on {flavour}: run {run_ms} ms, {stats:?}, {} s",
        started_all.elapsed().as_secs()
    );
    assert!(
        stats.kills >= 50,
        "{flavour}: only {} kills in the budget",
        stats.kills
    );
    assert!(
        stats.left_leftovers >= 3,
        "{flavour}: too few kills landed mid-update to prove anything: {stats:?}"
    );
    assert_eq!(stats.leftovers_cleaned, stats.left_leftovers, "{flavour}");
    assert!(
        stats.finished_before_kill < stats.kills / 2,
        "{flavour}: most kills came too late: {stats:?}"
    );
}

#[derive(Debug, Default)]
struct Stats {
    kills: usize,
    /// The child had exited before the kill (its run completed).
    finished_before_kill: usize,
    /// Right after the kill ToolJet held a temporary or moved-aside app.
    left_leftovers: usize,
    /// Right after the kill no app held the real name (between "move aside" and "take name").
    name_vacant: usize,
    /// Kills with leftovers after which the next run converged.
    leftovers_cleaned: usize,
}
