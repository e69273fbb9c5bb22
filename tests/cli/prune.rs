//! `sync --prune` / `plan --prune` as a CI pipeline runs them: an AppImport dropped from the
//! manifests is removed as its last recorded `deletionPolicy` says, only with `--prune`; the real
//! binary, a real git repository and the ToolJet stand-in.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use test_support::pipeline::{self as ci, app_import_yaml};
use tooljet_standin::{Flavour, StandIn, flavoured};

const API_KEY: &str = "prune-test-admin-key-3390";
const KEPT: &str = "Kept App";
const GONE: &str = "Gone App";

/// Two AppImports of one instance: `ci/kept` stays in the manifests, `ci/gone` leaves them.
struct Rig {
    standin: StandIn,
    repo: TestRepo,
    ci: ci::Pipeline,
}

impl Rig {
    async fn new(flavour: Flavour) -> Rig {
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
        repo.commit("first version");
        repo.publish();
        Rig {
            standin: ci::start_standin(flavour, API_KEY).await,
            repo,
            ci: ci::Pipeline::flavoured(API_KEY, flavour),
        }
    }

    /// Both AppImports (`gone` with its own `extra` spec lines), or only `kept`.
    fn manifests(&self, with_gone: Option<&str>) -> PathBuf {
        let url = self.repo.file_url();
        let mut yaml = format!(
            "{}---\n{}",
            self.ci.instance_yaml(&self.standin),
            app_import_yaml("kept", &url, &format!("  appName: {KEPT}"))
        );
        if let Some(extra) = with_gone {
            let extra = format!("  appName: {GONE}\n{extra}");
            yaml.push_str(&format!("---\n{}", app_import_yaml("gone", &url, &extra)));
        }
        let name = if with_gone.is_some() {
            "both.yaml"
        } else {
            "kept.yaml"
        };
        self.ci.write_manifests(name, &yaml)
    }

    async fn run(&self, verb: &str, manifests: &Path, extra: &[&str]) -> Output {
        let mut cmd = self.ci.command(verb, manifests, extra);
        cmd.output().await.expect("runs")
    }

    /// Syncs both AppImports; returns the manifests without `gone`.
    async fn both_synced(&self, gone_extra: &str) -> PathBuf {
        let out = self
            .run("sync", &self.manifests(Some(gone_extra)), &[])
            .await;
        assert!(out.status.success(), "{}", ci::text(&out));
        assert_eq!(self.named(GONE), 1);
        self.manifests(None)
    }

    fn named(&self, name: &str) -> usize {
        self.standin
            .apps()
            .iter()
            .filter(|a| a.name == name)
            .count()
    }

    fn state_keys(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.ci.state_path()).expect("state file");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v.as_object().expect("object").keys().cloned().collect()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

flavoured!(delete_prunes_the_app_only_with_prune, flavour, {
    let rig = Rig::new(flavour).await;
    let kept_only = rig.both_synced("  deletionPolicy: Delete").await;

    // Without --prune: reported, kept, exit code unchanged.
    let writes = rig.standin.write_count();
    let out = rig.run("sync", &kept_only, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ci/gone: orphaned (deletionPolicy Delete): no longer in the manifests; --prune would delete app \"Gone App\""),
        "{text}"
    );
    assert!(text.contains("run with --prune to apply it"), "{text}");
    assert!(text.contains("ci/kept: ready (UpToDate)"), "{text}");
    assert_eq!(rig.standin.write_count(), writes);
    assert_eq!(rig.state_keys(), vec!["ci/gone", "ci/kept"]);

    // plan --prune: says what would go, writes nothing anywhere.
    let state_before = std::fs::read(rig.ci.state_path()).expect("state");
    let out = rig.run("plan", &kept_only, &["--prune"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ci/gone: would prune (deletionPolicy Delete): no longer in the manifests: would delete app \"Gone App\""),
        "{text}"
    );
    assert!(text.contains("  would: delete app \"Gone App\""), "{text}");
    assert_eq!(rig.standin.write_count(), writes);
    assert_eq!(
        std::fs::read(rig.ci.state_path()).expect("state"),
        state_before
    );
    let out = rig
        .run("plan", &kept_only, &["--prune", "-o", "markdown"])
        .await;
    let text = stdout(&out);
    assert!(
        text.contains("ci/gone: would prune (deletionPolicy Delete)"),
        "the pull-request comment says it too: {text}"
    );

    // sync --prune: the app goes, the entry goes, the other AppImport stays.
    let out = rig
        .run("sync", &kept_only, &["--prune", "-o", "json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let gone = &json[1];
    assert_eq!(gone["name"], "ci/gone");
    assert_eq!(gone["orphan"]["status"], "Pruned");
    assert_eq!(gone["orphan"]["deletionPolicy"], "Delete");
    assert_eq!(json[0]["report"]["reason"], "UpToDate");
    assert_eq!(rig.named(GONE), 0, "deleted from ToolJet");
    assert_eq!(rig.named(KEPT), 1);
    assert_eq!(rig.state_keys(), vec!["ci/kept"]);

    // Nothing left to prune.
    let out = rig.run("sync", &kept_only, &["--prune"]).await;
    assert!(out.status.success(), "{}", ci::text(&out));
    assert!(!stdout(&out).contains("ci/gone"), "{}", stdout(&out));
});

flavoured!(retain_forgets_the_entry_and_leaves_the_app, flavour, {
    let rig = Rig::new(flavour).await;
    let kept_only = rig.both_synced("").await;
    let writes = rig.standin.write_count();
    let out = rig.run("sync", &kept_only, &["--prune"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
    assert!(
        stdout(&out).contains("ci/gone: pruned (deletionPolicy Retain): no longer in the manifests: forgot the entry and left app \"Gone App\""),
        "{}",
        stdout(&out)
    );
    assert_eq!(rig.named(GONE), 1, "the app stays in ToolJet");
    assert_eq!(rig.standin.write_count(), writes, "nothing written");
    assert_eq!(rig.state_keys(), vec!["ci/kept"]);
});

/// The instance left the manifests with the AppImport: nothing can reach the app, so the entry
/// stays (and the run fails) until the instance is passed again.
#[tokio::test]
async fn an_orphan_whose_instance_is_gone_is_a_clear_error_and_nothing_is_lost() {
    let rig = Rig::new(Flavour::V3).await;
    rig.both_synced("  deletionPolicy: Delete").await;
    let nothing = rig.ci.write_manifests(
        "secrets-only.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: unrelated, namespace: ci}\nstringData: {a: b}\n",
    );
    let state_before = std::fs::read(rig.ci.state_path()).expect("state");
    let out = rig.run("sync", &nothing, &["--prune"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", ci::text(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "ci/gone: PRUNE FAILED (deletionPolicy Delete): no longer in the manifests, but its app cannot be deleted: its ToolJetInstance ci/tooljet-staging ({}) is not in the files given with -f",
            rig.standin.base_url()
        )),
        "{text}"
    );
    assert!(text.contains("kept in the state file"), "{text}");
    // `kept` has policy Retain: forgotten even without the instance.
    assert!(
        text.contains("ci/kept: pruned (deletionPolicy Retain)"),
        "{text}"
    );
    assert_eq!(rig.named(GONE), 1);
    assert_eq!(rig.state_keys(), vec!["ci/gone"]);
    assert_ne!(
        std::fs::read(rig.ci.state_path()).expect("state"),
        state_before
    );

    // Passing the instance again lets the next run finish the job.
    let instance_only = rig
        .ci
        .write_manifests("instance.yaml", &rig.ci.instance_yaml(&rig.standin));
    let out = rig.run("sync", &instance_only, &["--prune"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
    assert_eq!(rig.named(GONE), 0);
    assert!(rig.state_keys().is_empty());
}

flavoured!(
    a_failed_or_killed_delete_keeps_the_entry_for_the_next_run,
    flavour,
    {
        let rig = Rig::new(flavour).await;
        let kept_only = rig.both_synced("  deletionPolicy: Delete").await;

        // ToolJet refuses the delete: the run fails, the entry and the app stay.
        rig.standin
            .faults()
            .fail_route("DELETE", "/api/apps/*", 502);
        let out = rig.run("sync", &kept_only, &["--prune"]).await;
        rig.standin.faults().reset();
        assert_eq!(out.status.code(), Some(1), "{}", ci::text(&out));
        assert!(
            stdout(&out).contains("ci/gone: PRUNE FAILED (deletionPolicy Delete)"),
            "{}",
            stdout(&out)
        );
        assert!(
            stdout(&out).contains("the next sync --prune retries"),
            "{}",
            stdout(&out)
        );
        assert_eq!(rig.named(GONE), 1);
        assert_eq!(rig.state_keys(), vec!["ci/gone", "ci/kept"]);

        // Killed after ToolJet deleted the app, before the answer came back.
        rig.standin
            .faults()
            .delay_answer_nth("DELETE", "/api/apps/*", 1, Duration::from_secs(60));
        let mut child = rig
            .ci
            .sync_command(&kept_only, &["--prune"])
            .spawn()
            .expect("starts");
        let deleted = test_support::poll::until_some(
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async { (rig.named(GONE) == 0).then_some(()) },
        )
        .await;
        assert!(deleted.is_some(), "the DELETE reached ToolJet");
        child.kill().await.expect("killed");
        rig.standin.faults().reset();
        assert_eq!(
            rig.state_keys(),
            vec!["ci/gone", "ci/kept"],
            "not forgotten before ToolJet answered"
        );

        // The next run finds the app gone and forgets the entry.
        let out = rig.run("sync", &kept_only, &["--prune"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
        assert!(
            stdout(&out).contains("ci/gone: pruned (deletionPolicy Delete): no longer in the manifests: deleted app \"Gone App\""),
            "{}",
            stdout(&out)
        );
        assert_eq!(rig.state_keys(), vec!["ci/kept"]);
        assert_eq!(rig.named(KEPT), 1);
    }
);

/// An entry written before the state file recorded `deletionPolicy`: pruned as `Retain` (the
/// default), so an app is never deleted on a guess.
#[tokio::test]
async fn an_entry_without_a_recorded_policy_is_pruned_as_retain() {
    let rig = Rig::new(Flavour::V3).await;
    let kept_only = rig.both_synced("  deletionPolicy: Delete").await;
    let path = rig.ci.state_path();
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("state")).expect("json");
    let removed = state["ci/gone"]
        .as_object_mut()
        .and_then(|entry| entry.remove("prune"));
    assert!(removed.is_some(), "the sync recorded it: {state}");
    std::fs::write(&path, state.to_string()).expect("write the old shape");

    let out = rig.run("sync", &kept_only, &["--prune"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", ci::text(&out));
    assert!(
        stdout(&out).contains("ci/gone: pruned (no deletionPolicy recorded): no longer in the manifests: forgot the entry and left app \"Gone App\""),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("so Retain, the default"));
    assert_eq!(rig.named(GONE), 1);
    assert_eq!(rig.state_keys(), vec!["ci/kept"]);
}
