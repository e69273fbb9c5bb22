//! What a pass with nothing to do costs ToolJet, counted from the stand-in's request log, when the
//! AppImports of one instance share one client (as in the controller and `sync -f`): one
//! `GET /api/apps/:id` per AppImport (the drift check, which no listing can replace) and one
//! shared listing of the engine's temporary names per reuse window, where each AppImport used to
//! make its own. And what the sharing must not cost: drift is still restored, and a leftover of
//! this client's own writes is still found at once.

use std::time::Duration;

use futures::StreamExt;
use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use serde_json::json;
use test_support::engine::{EngineRig, RunArgs, login};
use test_support::pipeline::start_standin;
use tooljet_operator::api::AppImportSpec;
use tooljet_operator::sync::{ImportKey, NoCheckpoint, SyncOutcome, SyncState};
use tooljet_operator::tooljet::{ClientConfig, ToolJetClient};
use tooljet_standin::{Flavour, StandIn, flavoured};

const API_KEY: &str = "noop-requests-key";

/// AppImports `team-a/app-<i>` of one repository, each importing the same git app under its own
/// name, over one engine and one client.
struct Fleet {
    rig: EngineRig,
    imports: Vec<(ImportKey, AppImportSpec, SyncState)>,
}

/// A client of the rig's stand-in sharing app listings for `reuse`.
fn sharing_client(standin: &StandIn, flavour: Flavour, reuse: Duration) -> ToolJetClient {
    let mut config = ClientConfig::new(standin.base_url(), login(flavour, API_KEY));
    config.workspace_id = Some(standin.workspace_id().to_owned());
    config.request_timeout = Duration::from_secs(10);
    config.reuse_app_lists = reuse;
    ToolJetClient::new(config).expect("client")
}

impl Fleet {
    async fn new(flavour: Flavour, n: usize, reuse: Duration) -> Fleet {
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
        repo.commit("one app");
        repo.publish();
        let standin = start_standin(flavour, API_KEY).await;
        let mut rig = EngineRig::new(
            standin,
            repo,
            flavour,
            API_KEY,
            Duration::from_secs(10),
            None,
        );
        rig.client = sharing_client(&rig.standin, flavour, reuse);
        let imports = (1..=n)
            .map(|i| {
                let spec = serde_json::from_value(json!({
                    "environment": "development",
                    "source": {"url": rig.repo.file_url(), "ref": {"branch": "master"}, "app": CREDIT_CARD.0},
                    "appName": format!("Cards {i}"),
                }))
                .expect("spec");
                (ImportKey::new("team-a", format!("app-{i}")), spec, SyncState::default())
            })
            .collect();
        Fleet { rig, imports }
    }

    /// Every AppImport once, 4 at a time (the controller's default concurrency); the reasons.
    async fn pass(&mut self, concurrency: usize) -> Vec<String> {
        let rig = &self.rig;
        let outcomes: Vec<(usize, SyncOutcome)> =
            futures::stream::iter(self.imports.iter().enumerate())
                .map(|(i, (key, spec, state))| async move {
                    let out = rig
                        .run(key, state.clone(), spec, RunArgs::default(), &NoCheckpoint)
                        .await;
                    (i, out)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let mut reasons = vec![String::new(); outcomes.len()];
        for (i, out) in outcomes {
            assert!(
                out.report.ready(),
                "{}: {:?}",
                self.imports[i].0,
                out.report
            );
            reasons[i] = out.report.reason.to_string();
            self.imports[i].2 = out.state;
        }
        reasons
    }

    fn app_id(&self, i: usize) -> String {
        self.imports[i].2.app.as_ref().expect("imported").id.clone()
    }
}

/// ToolJet requests since the log was cleared: listings of apps, reads of one app, the rest.
fn requests(standin: &StandIn) -> (usize, usize, Vec<String>) {
    let log = standin.request_log();
    let lists = log
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/apps")
        .count();
    let gets = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/apps/"))
        .count();
    let other = log
        .iter()
        .filter(|r| !(r.method == "GET" && r.path.starts_with("/api/apps")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    (lists, gets, other)
}

fn all_up_to_date(reasons: &[String]) -> bool {
    reasons.iter().all(|r| r == "UpToDate")
}

flavoured!(
    a_no_op_pass_costs_one_get_per_app_import_and_one_shared_listing,
    flavour,
    {
        const N: usize = 6;
        // A window longer than the test, so that the count does not depend on the machine's
        // speed (the controller's is REUSE_APP_LISTS, 5 s).
        let mut fleet = Fleet::new(flavour, N, Duration::from_secs(3600)).await;
        fleet.pass(4).await;
        // The first pass after the imports lists once (the imports wrote); the next one, inside
        // the window and with nothing written since, not at all.
        for (pass, listings) in [(1, 1), (2, 0)] {
            fleet.rig.standin.clear_request_log();
            let reasons = fleet.pass(4).await;
            assert!(all_up_to_date(&reasons), "{reasons:?}");
            let (lists, gets, other) = requests(&fleet.rig.standin);
            assert_eq!(gets, N, "pass {pass}: one drift check per AppImport");
            assert_eq!(
                lists, listings,
                "pass {pass}: leftover listings for all of them"
            );
            assert!(other.is_empty(), "pass {pass}: {other:?}");
        }
    }
);

flavoured!(
    without_sharing_each_app_import_lists_its_own_leftovers,
    flavour,
    {
        const N: usize = 4;
        let mut fleet = Fleet::new(flavour, N, Duration::ZERO).await;
        fleet.pass(1).await;
        fleet.rig.standin.clear_request_log();
        assert!(all_up_to_date(&fleet.pass(1).await));
        let (lists, gets, other) = requests(&fleet.rig.standin);
        assert_eq!(
            (lists, gets),
            (N, N),
            "two requests per AppImport: {other:?}"
        );
        assert!(other.is_empty(), "{other:?}");
    }
);

flavoured!(drift_is_restored_while_the_listing_is_shared, flavour, {
    let mut fleet = Fleet::new(flavour, 3, Duration::from_secs(3600)).await;
    fleet.pass(4).await;
    assert!(all_up_to_date(&fleet.pass(4).await));
    // Edits in ToolJet between two passes, inside the listing's window: one the listing
    // could never show (a query saved, which on 2.x moves only the query's own timestamp),
    // one that moves the app's.
    let (edited_query, edited_app) = (fleet.app_id(0), fleet.app_id(2));
    assert!(fleet.rig.standin.edit_query_as_user(&edited_query, None));
    assert!(fleet.rig.standin.edit_app_as_user(&edited_app));
    let reasons = fleet.pass(4).await;
    assert_eq!(reasons, ["DriftCorrected", "UpToDate", "DriftCorrected"]);
    assert_ne!(fleet.app_id(0), edited_query, "restored by a fresh import");
    assert_ne!(fleet.app_id(2), edited_app);
    let apps = fleet.rig.standin.apps();
    assert!(
        !apps.iter().any(|a| a.name.starts_with("tjop-")),
        "{apps:#?}"
    );
    // The restores wrote: the next pass lists again (once), then all is quiet.
    fleet.rig.standin.clear_request_log();
    assert!(all_up_to_date(&fleet.pass(4).await));
    assert_eq!(requests(&fleet.rig.standin).0, 1);
});

flavoured!(
    a_leftover_this_client_wrote_is_found_inside_the_window,
    flavour,
    {
        let mut fleet = Fleet::new(flavour, 2, Duration::from_secs(3600)).await;
        fleet.pass(4).await;
        assert!(all_up_to_date(&fleet.pass(4).await));
        // A run that imported under its temporary name, then failed before recording it (its
        // checkpoint lost): only the listing can find that app.
        let key = fleet.imports[1].0.clone();
        let bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        let temp = key.temp_name("0123456789abcdef");
        let leftover = fleet
            .rig
            .client
            .import_app(&bundle, &temp)
            .await
            .expect("import");
        let reasons = fleet.pass(4).await;
        assert!(all_up_to_date(&reasons), "{reasons:?}");
        let apps = fleet.rig.standin.apps();
        assert!(
            !apps.iter().any(|a| a.id == leftover.id),
            "the leftover was found in a fresh listing and deleted: {apps:#?}"
        );
        assert_eq!(apps.len(), 2, "{apps:#?}");
    }
);

flavoured!(
    a_leftover_another_writer_made_is_found_once_the_window_has_passed,
    flavour,
    {
        let window = Duration::from_millis(300);
        let mut fleet = Fleet::new(flavour, 2, window).await;
        fleet.pass(4).await;
        assert!(all_up_to_date(&fleet.pass(4).await));
        // Another client (another process) leaves a temporary app of AppImport 1.
        let other = test_support::engine::client(&fleet.rig.standin, flavour, API_KEY, None);
        let bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        let temp = fleet.imports[0].0.temp_name("fedcba9876543210");
        let leftover = other.import_app(&bundle, &temp).await.expect("import").id;
        let started = std::time::Instant::now();
        let mut passes = 0;
        while fleet.rig.standin.apps().iter().any(|a| a.id == leftover) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the leftover was never found"
            );
            assert!(all_up_to_date(&fleet.pass(4).await));
            passes += 1;
            // The poll interval, not a synchronisation: the loop waits on the condition.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(passes >= 1);
    }
);

flavoured!(
    with_more_temporary_names_than_one_answer_each_app_import_lists_its_own,
    flavour,
    {
        const N: usize = 3;
        let mut fleet = Fleet::new(flavour, N, Duration::from_secs(3600)).await;
        fleet.pass(4).await;
        // A busy workspace: ten temporary apps of other AppImports (another operator's run), more
        // than one answer of 9 holds, and a leftover of AppImport 2 (its own client's write).
        let other = test_support::engine::client(&fleet.rig.standin, flavour, API_KEY, None);
        let bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        let mut foreign = Vec::new();
        for i in 0..10 {
            let name = format!("tjop-tmp-ffffffffff-{i:08}");
            foreign.push(other.import_app(&bundle, &name).await.expect("import").id);
        }
        let temp = fleet.imports[1].0.temp_name("0123456789abcdef");
        let leftover = fleet
            .rig
            .client
            .import_app(&bundle, &temp)
            .await
            .expect("import");
        fleet.rig.standin.clear_request_log();
        let reasons = fleet.pass(1).await;
        assert!(all_up_to_date(&reasons), "{reasons:?}");
        let apps = fleet.rig.standin.apps();
        assert!(!apps.iter().any(|a| a.id == leftover.id), "{apps:#?}");
        assert!(foreign.iter().all(|id| apps.iter().any(|a| &a.id == id)));
        // One answer that did not hold them all (shared), one listing of its own tag each, and
        // the shared one again after AppImport 2 deleted its leftover.
        let (lists, gets, _) = requests(&fleet.rig.standin);
        assert_eq!(lists, N + 2);
        assert!(gets >= N);
    }
);
