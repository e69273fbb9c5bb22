//! `tooljet-operator sync` and `plan` as a CI pipeline runs them: the real binary, manifest files,
//! a real git repository and the ToolJet stand-in.

use std::path::{Path, PathBuf};
use std::process::Output;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use serde_json::json;
use test_support::pipeline as ci;
use tooljet_standin::flavoured;
use tooljet_standin::{Flavour, StandIn};

const APP: &str = CREDIT_CARD.0;
const API_KEY: &str = "cli-test-admin-key-0451";

/// A repository with the app, a ToolJet of `flavour` and the shared CI pipeline (tests/support:
/// manifests, state file, cache).
struct Pipeline {
    standin: StandIn,
    repo: TestRepo,
    ci: ci::Pipeline,
}

impl Pipeline {
    /// ToolJet of `flavour`; the instance logs in with a password on 2.27 (no admin API key
    /// there), with the admin API key on 3.x.
    async fn new(flavour: Flavour) -> Pipeline {
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", APP, "v1", CREDIT_CARD.1);
        repo.commit("first version");
        repo.publish();
        let standin = ci::start_standin(flavour, API_KEY).await;
        Pipeline {
            standin,
            repo,
            ci: ci::Pipeline::flavoured(API_KEY, flavour),
        }
    }

    /// Writes the manifests a team would keep in its pipeline's repository.
    fn manifests(&self, app_import_extra: &str) -> PathBuf {
        self.ci
            .manifests(&self.standin, &self.repo.file_url(), app_import_extra)
    }

    /// A client for the stand-in, as the instance logs in.
    fn client(&self) -> tooljet_operator::tooljet::ToolJetClient {
        test_support::engine::client(&self.standin, self.ci.flavour, API_KEY, None)
    }

    fn state(&self) -> PathBuf {
        self.ci.state_path()
    }

    async fn run(&self, args: &[&str]) -> Output {
        let cache = self.ci.cache_dir();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tooljet-operator"));
        cmd.args(args)
            .env("XDG_CACHE_HOME", cache)
            .env("RUST_LOG", "debug");
        cmd.output().await.expect("runs")
    }

    async fn sync(&self, manifests: &Path) -> Output {
        self.run(&[
            "sync",
            "-f",
            manifests.to_str().expect("utf8"),
            "--state",
            self.state().to_str().expect("utf8"),
        ])
        .await
    }

    fn the_app(&self) -> tooljet_standin::AppSnapshot {
        let apps = self.standin.apps();
        assert!(
            apps.iter().all(|a| !a.name.starts_with("tjop-")),
            "leftovers: {apps:?}"
        );
        let named: Vec<_> = apps.into_iter().filter(|a| a.name == APP).collect();
        assert_eq!(named.len(), 1, "{named:?}");
        named.into_iter().next().expect("one")
    }

    fn push_v2(&self) {
        ci::push_version(&self.repo, "v2");
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

flavoured!(plan_then_sync_then_nothing_to_do, flavour, {
    let p = Pipeline::new(flavour).await;
    let manifests = p.manifests("");
    let f = manifests.to_str().expect("utf8");

    let plan = p
        .run(&[
            "plan",
            "-f",
            f,
            "--state",
            p.state().to_str().expect("utf8"),
        ])
        .await;
    assert!(plan.status.success(), "{}{}", stdout(&plan), stderr(&plan));
    let text = stdout(&plan);
    assert!(text.contains("ci/credit-card: ready"), "{text}");
    let server = match flavour {
        Flavour::V2_27 => "server: ToolJet 2.50.5 (2.x routes)",
        Flavour::V3 => "server: ToolJet 3.5.11 (3.x routes)",
    };
    assert!(text.contains(server), "{text}");
    assert!(text.contains("would: import the app from commit"), "{text}");
    assert!(text.contains("would import app"), "{text}");
    assert!(
        text.contains(&format!("would: give app (new app) the name {APP:?}")),
        "{text}"
    );
    assert_eq!(p.standin.write_count(), 0, "plan writes nothing to ToolJet");
    assert!(!p.state().exists(), "plan writes no state");

    let sync = p.sync(&manifests).await;
    assert!(sync.status.success(), "{}{}", stdout(&sync), stderr(&sync));
    assert!(stdout(&sync).contains("(Imported)"), "{}", stdout(&sync));
    let app = p.the_app();
    assert!(p.state().exists());

    let writes = p.standin.write_count();
    let again = p.sync(&manifests).await;
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("did: nothing"),
        "{}",
        stdout(&again)
    );
    assert_eq!(p.standin.write_count(), writes);

    p.push_v2();
    let json_out = p
        .run(&[
            "sync",
            "-f",
            f,
            "--state",
            p.state().to_str().expect("utf8"),
            "-o",
            "json",
        ])
        .await;
    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let results: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("json output");
    assert_eq!(results[0]["report"]["reason"], json!("Updated"));
    assert_eq!(
        results[0]["server"],
        json!(server.trim_start_matches("server: "))
    );
    let updated = p.the_app();
    assert_eq!(updated.slug, app.slug);
    assert_eq!(updated.definition["icon"], json!("v2"));

    // No secret in anything the command printed, even at debug level.
    for out in [&plan, &sync, &again, &json_out] {
        for secret in [API_KEY, ci::PASSWORD] {
            assert!(!stdout(out).contains(secret) && !stderr(out).contains(secret));
        }
    }
});

flavoured!(
    a_conflict_exits_non_zero_with_a_clear_reason_and_writes_nothing,
    flavour,
    {
        let p = Pipeline::new(flavour).await;
        let bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        p.client()
            .import_app(&bundle, APP)
            .await
            .expect("someone's own app");
        let writes = p.standin.write_count();

        let out = p.sync(&p.manifests("")).await;
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stdout(&out).contains("NOT READY (NameConflict)"),
            "{}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("adoptExisting"), "{}", stdout(&out));
        assert_eq!(p.standin.write_count(), writes);
    }
);

flavoured!(
    invalid_manifest_is_refused_before_anything_happens,
    flavour,
    {
        let p = Pipeline::new(flavour).await;
        let manifests = p.manifests("  interval: 1s");
        let out = p.sync(&manifests).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("interval"), "{}", stderr(&out));
        assert_eq!(p.standin.write_count(), 0);
    }
);

// The command line's own failure path: each call of the swap failed once, then a clean run.
flavoured!(failed_swap_then_a_clean_run_converges, flavour, {
    // 2.x releases with PUT /api/apps/:id: one more PUT there than on 3.x.
    let puts = match flavour {
        Flavour::V2_27 => 3,
        Flavour::V3 => 2,
    };
    let calls = std::iter::once(("POST", "/api/v2/resources/import", 1))
        .chain((1..=puts).map(|n| ("PUT", "/api/apps/*", n)))
        .chain([("DELETE", "/api/apps/*", 1)]);
    for (method, pattern, nth) in calls {
        let p = Pipeline::new(flavour).await;
        let manifests = p.manifests("");
        assert!(p.sync(&manifests).await.status.success());
        let slug = p.the_app().slug;
        p.push_v2();
        p.standin.faults().fail_nth(method, pattern, nth, 502);
        let failed = p.sync(&manifests).await;
        p.standin.faults().reset();
        assert_eq!(
            failed.status.code(),
            Some(1),
            "{flavour}: {method} {pattern} #{nth}"
        );
        assert_eq!(
            p.standin.apps().iter().filter(|a| a.name == APP).count(),
            1,
            "a working app under the real name after {method} {pattern} #{nth}"
        );
        let ok = p.sync(&manifests).await;
        assert!(ok.status.success(), "{}", stdout(&ok));
        let app = p.the_app();
        assert_eq!(app.slug, slug);
        assert_eq!(app.definition["icon"], json!("v2"));
    }
});
