//! The sync engine against real git repositories and the ToolJet stand-in. The stand-in's request
//! log counts writes; its fault knobs fail each call of a swap.

use git_fixtures::TestRepo;
use git_fixtures::tooljet::{BASE64, CODE_EXPLAINER, CREDIT_CARD};
use serde_json::json;
use tooljet_operator::api::{AppImportSpec, AppImportStatus, ToolJetInstanceSpec};
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::{Engine, ImportKey, Mode, NoCheckpoint, SyncOutcome, SyncRequest};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::{AppSnapshot, Flavour, StandIn, leading_version};

const APP: &str = CREDIT_CARD.0;
const API_KEY: &str = "engine-test-key";
const EMAIL: &str = "engine@example.com";
const PASSWORD: &str = "engine-test-password";
/// The version the 2.x stand-in claims: the newest 2.x fixture (credit card) was exported from
/// 2.50.5, and the operator refuses a bundle newer than the server (issue 13, item 9). The
/// stand-in still answers as 2.27.1 does.
const V2_VERSION: &str = "2.50.5";

/// Runs a test once against each stand-in flavour (2.27 and 3.x), as `<name>::on_2_27` and
/// `<name>::on_3_x`; the body sees the flavour as `$flavour`.
macro_rules! flavoured {
    ($name:ident, $flavour:ident, $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn on_2_27() {
                run(Flavour::V2_27).await
            }
            #[tokio::test]
            async fn on_3_x() {
                run(Flavour::V3).await
            }
            async fn run($flavour: Flavour) $body
        }
    };
}

struct World {
    standin: StandIn,
    repo: TestRepo,
    _cache_dir: tempfile::TempDir,
    engine: Engine,
    client: ToolJetClient,
    instance: ToolJetInstanceSpec,
    key: ImportKey,
    state: AppImportStatus,
    generation: i64,
}

impl World {
    /// A repository with two apps in ToolJet's Git Sync layout, and an empty ToolJet of
    /// `flavour`. The client logs in with a password on 2.27 (no admin API key there), with the
    /// admin API key on 3.x.
    async fn new(flavour: Flavour) -> World {
        World::claiming(flavour, None).await
    }

    /// Like [`World::new`], with the stand-in claiming `version` (its flavour's by default).
    async fn claiming(flavour: Flavour, version: Option<&str>) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
        repo.git_sync_write("app-2", BASE64.0, "v1", BASE64.1);
        repo.commit("two apps");
        repo.publish();
        let mut builder = StandIn::builder()
            .flavour(flavour)
            .credentials(EMAIL, PASSWORD)
            .admin_api_key(API_KEY);
        let default = (flavour == Flavour::V2_27).then_some(V2_VERSION);
        if let Some(v) = version.or(default) {
            builder = builder.server_version(v);
        }
        let standin = builder.start().await.expect("stand-in starts");
        let cache_dir = tempfile::tempdir().expect("tempdir");
        let cache = SourceCache::new(CacheConfig {
            dir: cache_dir.path().to_owned(),
            ..CacheConfig::default()
        });
        let auth = match flavour {
            Flavour::V2_27 => Auth::Password {
                email: EMAIL.into(),
                password: PASSWORD.into(),
            },
            Flavour::V3 => Auth::AdminApiKey(API_KEY.into()),
        };
        let mut config = ClientConfig::new(standin.base_url(), auth);
        config.workspace_id = Some(standin.workspace_id().to_owned());
        config.request_timeout = std::time::Duration::from_secs(5);
        let client = ToolJetClient::new(config).expect("client");
        let instance: ToolJetInstanceSpec = serde_json::from_value(json!({
            "url": standin.base_url(),
            "environment": "development",
            "workspaceId": standin.workspace_id(),
            "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}
        }))
        .expect("instance spec");
        World {
            standin,
            repo,
            _cache_dir: cache_dir,
            engine: Engine::new(cache),
            client,
            instance,
            key: ImportKey::new("team-a", "credit-card"),
            state: AppImportStatus::default(),
            generation: 1,
        }
    }

    fn spec(&self, extra: serde_json::Value) -> AppImportSpec {
        let mut spec = json!({
            "environment": "development",
            "source": {"url": self.repo.file_url(), "ref": {"branch": "master"}, "app": APP},
        });
        merge(&mut spec, extra);
        serde_json::from_value(spec).expect("app import spec")
    }

    async fn sync(&mut self, spec: &AppImportSpec) -> SyncOutcome {
        self.sync_with(spec, None, None, Mode::Apply).await
    }

    async fn sync_with(
        &mut self,
        spec: &AppImportSpec,
        approve: Option<&str>,
        force_pull: Option<&str>,
        mode: Mode,
    ) -> SyncOutcome {
        let outcome = self
            .engine
            .sync(
                SyncRequest {
                    key: &self.key,
                    spec,
                    instance: &self.instance,
                    generation: Some(self.generation),
                    approve,
                    force_pull,
                    git_credentials: &Credentials::Anonymous,
                    state: self.state.clone(),
                },
                &self.client,
                mode,
                &NoCheckpoint,
            )
            .await;
        if mode == Mode::Apply {
            self.state = outcome.state.clone();
        }
        outcome
    }

    fn apps_named(&self, name: &str) -> Vec<AppSnapshot> {
        self.standin
            .apps()
            .into_iter()
            .filter(|a| a.name == name)
            .collect()
    }

    /// Exactly one app under the name, and no temporary or moved-aside app anywhere.
    fn the_app(&self, name: &str) -> AppSnapshot {
        let all = self.standin.apps();
        let leftovers: Vec<_> = all.iter().filter(|a| a.name.starts_with("tjop-")).collect();
        assert!(leftovers.is_empty(), "leftover apps: {leftovers:?}");
        let named = self.apps_named(name);
        assert_eq!(named.len(), 1, "apps named {name:?}: {all:?}");
        named.into_iter().next().expect("one app")
    }

    fn writes_since(&self, before: usize) -> usize {
        self.standin.write_count() - before
    }

    /// A new version of the app pushed to git, as ToolJet's Git Sync would.
    fn push_new_version(&self, version: &str) -> String {
        let mut bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
        bundle["app"][0]["definition"]["appV2"]["icon"] = json!(version);
        let bytes = serde_json::to_vec(&bundle).expect("json");
        self.repo.git_sync_write("app-1", APP, version, &bytes);
        let sha = self.repo.commit(&format!("{APP} {version}"));
        self.repo.publish();
        sha
    }
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn assert_ready(outcome: &SyncOutcome, reason: &str) {
    assert!(
        outcome.report.ready && outcome.report.reason == reason,
        "expected Ready with {reason}, got {:?}",
        outcome.report
    );
}

fn assert_refused(outcome: &SyncOutcome, reason: &str) {
    assert!(
        !outcome.report.ready && outcome.report.reason == reason,
        "expected a refusal with {reason}, got {:?}",
        outcome.report
    );
}

flavoured!(first_import_creates_releases_and_records, flavour, {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({}));
    let out = w.sync(&spec).await;
    assert_ready(&out, "Imported");
    let app = w.the_app(APP);
    assert_eq!(
        app.current_version_id.as_deref(),
        Some(app.editing_version_id.as_str()),
        "release: true releases the import"
    );
    let recorded = w.state.app.clone().expect("app recorded");
    assert_eq!((recorded.id, recorded.slug), (app.id, app.slug));
    assert_eq!(
        w.state.last_applied_commit.as_ref().map(|c| c.sha.as_str()),
        Some(w.repo.head().as_str())
    );
    assert!(w.state.last_applied_hash.is_some());
    assert_eq!(w.state.history.len(), 1);
    assert!(w.state.pending_app.is_none());
});

flavoured!(
    second_run_with_nothing_new_writes_nothing_and_fetches_nothing,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({}));
        assert_ready(&w.sync(&spec).await, "Imported");
        let writes = w.standin.write_count();
        let fetches = w.engine.source().stats(&w.repo.file_url()).fetches;
        let out = w.sync(&spec).await;
        assert_ready(&out, "UpToDate");
        assert!(out.actions.is_empty(), "{:?}", out.actions);
        assert_eq!(w.writes_since(writes), 0);
        assert_eq!(w.engine.source().stats(&w.repo.file_url()).fetches, fetches);
    }
);

flavoured!(new_commit_swaps_and_keeps_the_slug, flavour, {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({}));
    w.sync(&spec).await;
    let before = w.the_app(APP);
    let sha = w.push_new_version("v2");
    let out = w.sync(&spec).await;
    assert_ready(&out, "Updated");
    let after = w.the_app(APP);
    assert_ne!(after.id, before.id, "a fresh import");
    assert_eq!(after.slug, before.slug, "the end users' URL stays");
    assert_eq!(after.definition["icon"], json!("v2"));
    assert_eq!(
        w.state.last_applied_commit.as_ref().map(|c| c.sha.clone()),
        Some(sha)
    );
    assert_eq!(w.state.history.len(), 2);
});

flavoured!(commit_to_another_app_writes_nothing, flavour, {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({}));
    w.sync(&spec).await;
    w.repo
        .git_sync_write("app-3", CODE_EXPLAINER.0, "v1", CODE_EXPLAINER.1);
    w.repo.commit("another app");
    w.repo.publish();
    let writes = w.standin.write_count();
    let out = w.sync(&spec).await;
    assert_ready(&out, "UpToDate");
    assert_eq!(w.writes_since(writes), 0);
});

flavoured!(renaming_app_name_renames_without_import, flavour, {
    let mut w = World::new(flavour).await;
    w.sync(&w.spec(json!({}))).await;
    let before = w.the_app(APP);
    w.generation += 1;
    let renamed = w.spec(json!({"appName": "Cards"}));
    let out = w.sync(&renamed).await;
    assert_ready(&out, "Renamed");
    let after = w.the_app("Cards");
    assert_eq!((after.id, after.slug), (before.id, before.slug));
    assert_eq!(out.actions.len(), 1, "{:?}", out.actions);
});

flavoured!(edit_of_a_non_editable_app_is_restored_as_drift, flavour, {
    let mut w = World::new(flavour).await;
    w.instance.allow_editable_apps = Some(true);
    let spec = w.spec(json!({"editable": false}));
    w.sync(&spec).await;
    let before = w.the_app(APP);
    assert!(w.standin.edit_app_as_user(&before.id));
    let out = w.sync(&spec).await;
    assert_ready(&out, "DriftCorrected");
    let drift = out.report.drift.expect("drift reported");
    assert!(drift.corrected);
    let after = w.the_app(APP);
    assert_ne!(after.id, before.id);
    assert_eq!(after.slug, before.slug);
    // Restored: the next run is a no-op again.
    assert_ready(&w.sync(&spec).await, "UpToDate");
});

flavoured!(
    edited_editable_app_keeps_local_changes_until_force_pull,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({"editable": true}));
        w.sync(&spec).await;
        let app = w.the_app(APP);
        w.standin.edit_app_as_user(&app.id);
        // An edit alone is kept.
        assert_ready(&w.sync(&spec).await, "UpToDate");
        let sha = w.push_new_version("v2");
        let writes = w.standin.write_count();
        let out = w.sync(&spec).await;
        assert_refused(&out, "LocalChanges");
        assert!(out.report.message.contains(&sha), "{}", out.report.message);
        assert_eq!(w.writes_since(writes), 0);
        assert_eq!(w.the_app(APP).id, app.id, "the edited app is untouched");
        let out = w.sync_with(&spec, None, Some(&sha), Mode::Apply).await;
        assert_ready(&out, "ForcePulled");
        assert_ne!(w.the_app(APP).id, app.id);
    }
);

flavoured!(
    editable_import_into_a_locked_instance_is_refused,
    flavour,
    {
        let mut w = World::new(flavour).await;
        w.instance.allow_editable_apps = Some(false);
        let out = w.sync(&w.spec(json!({"editable": true}))).await;
        assert_refused(&out, "EditableNotAllowed");
        assert!(out.report.stalled);
        assert_eq!(w.standin.write_count(), 0);
    }
);

/// Imports an app by hand, as a user would, outside the operator.
async fn foreign_app(w: &World, name: &str) -> String {
    let bundle: serde_json::Value = serde_json::from_slice(BASE64.1).expect("json");
    w.client.import_app(&bundle, name).await.expect("import").id
}

flavoured!(
    foreign_app_of_the_same_name_is_a_conflict_then_adopted,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let foreign = foreign_app(&w, APP).await;
        let foreign_slug = w.the_app(APP).slug;
        let writes = w.standin.write_count();
        let out = w.sync(&w.spec(json!({}))).await;
        assert_refused(&out, "NameConflict");
        assert!(
            out.report.message.contains("adoptExisting"),
            "{}",
            out.report.message
        );
        assert_eq!(w.writes_since(writes), 0);
        assert_eq!(w.the_app(APP).id, foreign);

        w.generation += 1;
        let out = w.sync(&w.spec(json!({"adoptExisting": true}))).await;
        assert_ready(&out, "Adopted");
        let app = w.the_app(APP);
        assert_ne!(app.id, foreign, "replaced by the git version");
        assert_eq!(app.slug, foreign_slug);
    }
);

flavoured!(
    manual_policy_reports_the_update_and_applies_it_when_approved,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({"updatePolicy": "Manual"}));
        assert_ready(&w.sync(&spec).await, "Imported");
        let first = w.the_app(APP);
        let sha = w.push_new_version("v2");
        let out = w.sync(&spec).await;
        assert_ready(&out, "UpToDate");
        let available = out.report.update_available.expect("update available");
        assert_eq!(available.sha, sha);
        assert_eq!(available.message, format!("{APP} v2"));
        assert_eq!(w.the_app(APP).id, first.id, "not applied before approval");
        assert_eq!(
            w.state.latest_commit.as_ref().map(|c| c.sha.clone()),
            Some(sha.clone())
        );
        let out = w.sync_with(&spec, Some(&sha), None, Mode::Apply).await;
        assert_ready(&out, "Updated");
        assert!(out.report.update_available.is_none());
        assert_ne!(w.the_app(APP).id, first.id);
    }
);

flavoured!(pinning_an_older_commit_restores_that_version, flavour, {
    let mut w = World::new(flavour).await;
    let old = w.repo.head();
    let spec = w.spec(json!({}));
    w.sync(&spec).await;
    w.push_new_version("v2");
    w.sync(&spec).await;
    assert_eq!(w.the_app(APP).definition["icon"], json!("v2"));
    w.generation += 1;
    let pinned = w.spec(json!({"source": {"ref": {"branch": null, "commit": old}}}));
    let out = w.sync(&pinned).await;
    assert_ready(&out, "Updated");
    assert_eq!(w.the_app(APP).definition["icon"], json!("apps"));
    assert_eq!(
        w.state.last_applied_commit.as_ref().map(|c| c.sha.clone()),
        Some(old)
    );
});

flavoured!(
    deletion_policy_delete_removes_the_app_and_retain_keeps_it,
    flavour,
    {
        let mut w = World::new(flavour).await;
        w.sync(&w.spec(json!({}))).await;
        let app = w.the_app(APP);
        let kept = w
            .engine
            .release(&w.key, false, &w.state, &w.client, Mode::Apply)
            .await
            .expect("retain");
        assert!(kept.is_empty());
        assert_eq!(w.the_app(APP).id, app.id);
        let deleted = w
            .engine
            .release(&w.key, true, &w.state, &w.client, Mode::Apply)
            .await
            .expect("delete");
        assert_eq!(deleted.len(), 1);
        assert!(w.apps_named(APP).is_empty());
        // Deleting again (the app already gone) succeeds.
        w.engine
            .release(&w.key, true, &w.state, &w.client, Mode::Apply)
            .await
            .expect("idempotent");
    }
);

flavoured!(plan_says_what_sync_would_do_and_writes_nothing, flavour, {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({}));
    let out = w.sync_with(&spec, None, None, Mode::Plan).await;
    assert!(out.report.ready, "{:?}", out.report);
    assert!(!out.actions.is_empty());
    assert!(
        out.actions[0].to_string().starts_with("import the app"),
        "{}",
        out.actions[0]
    );
    assert_eq!(w.standin.write_count(), 0);
    assert!(w.standin.apps().is_empty());
});

// Each ToolJet call of an update, failed once; the next clean run converges.
flavoured!(
    failure_at_each_call_of_the_swap_then_a_clean_run_converges,
    flavour,
    {
        // (method, path pattern, which matching call of the update fails)
        // 2.x releases with a PUT /api/apps/:id: the swap's renames are the 2nd and 3rd PUT there.
        let calls = match flavour {
            Flavour::V3 => vec![
                ("POST", "/api/v2/resources/import", 1),
                ("GET", "/api/apps/*", 1),
                ("PUT", "/api/apps/*/release", 1),
                ("PUT", "/api/apps/*", 1),
                ("PUT", "/api/apps/*", 2),
                ("GET", "/api/apps/*", 2),
                ("DELETE", "/api/apps/*", 1),
            ],
            Flavour::V2_27 => vec![
                ("POST", "/api/v2/resources/import", 1),
                ("GET", "/api/apps/*", 1),
                ("PUT", "/api/apps/*", 1),
                ("PUT", "/api/apps/*", 2),
                ("PUT", "/api/apps/*", 3),
                ("GET", "/api/apps/*", 2),
                ("DELETE", "/api/apps/*", 1),
            ],
        };
        for (method, pattern, nth) in calls {
            let mut w = World::new(flavour).await;
            let spec = w.spec(json!({}));
            assert_ready(&w.sync(&spec).await, "Imported");
            let slug = w.the_app(APP).slug;
            w.push_new_version("v2");
            // Count from the start of the update: skip the calls before the swap.
            let skip = match (method, pattern) {
                // observe: GET owned app
                ("GET", "/api/apps/*") => 1,
                _ => 0,
            };
            w.standin
                .faults()
                .fail_nth(method, pattern, skip + nth, 500);
            let failed = w.sync(&spec).await;
            w.standin.faults().reset();
            let label = format!("{flavour}: {method} {pattern} #{nth}");
            // Whatever happened, a working app is under the real name right after the failure.
            assert_eq!(
                w.apps_named(APP).len(),
                1,
                "{label}: {:?}",
                w.standin.apps()
            );
            assert!(!failed.report.ready, "{label}: the fault went unnoticed");
            assert!(failed.report.retryable, "{label}: {:?}", failed.report);
            let out = w.sync(&spec).await;
            assert!(out.report.ready, "{label}: {:?}", out.report);
            let app = w.the_app(APP);
            assert_eq!(app.slug, slug, "{label}");
            assert_eq!(app.definition["icon"], json!("v2"), "{label}");
            assert_ready(&w.sync(&spec).await, "UpToDate");
        }
    }
);

// The swap stops after the old app moved aside and cannot be put back (both renames fail): the
// next run finds the moved-aside app and the pending one, and finishes the swap.
flavoured!(
    interrupted_swap_with_the_old_app_aside_is_finished_by_the_next_run,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({}));
        w.sync(&spec).await;
        let before = w.the_app(APP);
        w.push_new_version("v2");
        // The renames after the move aside; on 2.x the release is the first PUT /api/apps/:id.
        let release = u64::from(flavour == Flavour::V2_27);
        w.standin
            .faults()
            .fail_nth("PUT", "/api/apps/*", release + 2, 503);
        w.standin
            .faults()
            .fail_nth("PUT", "/api/apps/*", release + 3, 503);
        let failed = w.sync(&spec).await;
        assert!(!failed.report.ready);
        w.standin.faults().reset();
        // Left behind: the old app under the aside name, the new one pending under its temporary name.
        let names: Vec<String> = w.standin.apps().into_iter().map(|a| a.name).collect();
        assert!(names.contains(&w.key.aside_name()), "{names:?}");
        assert!(w.state.pending_app.is_some());
        let out = w.sync(&spec).await;
        assert!(out.report.ready, "{:?}", out.report);
        let after = w.the_app(APP);
        assert_eq!(after.slug, before.slug);
        assert_eq!(after.definition["icon"], json!("v2"));
        assert!(w.state.pending_app.is_none());
        assert_ready(&w.sync(&spec).await, "UpToDate");
    }
);

// A foreign app named like another AppImport's leftovers is never touched.
flavoured!(leftovers_of_other_imports_are_left_alone, flavour, {
    let mut w = World::new(flavour).await;
    let other = ImportKey::new("team-b", "other");
    let foreign = foreign_app(&w, &other.aside_name()).await;
    w.sync(&w.spec(json!({}))).await;
    assert!(w.standin.apps().iter().any(|a| a.id == foreign));
});

// A spec change whose first run fails must still be applied by the next run: the engine may
// trust "spec unchanged" only for a spec it applied successfully.
flavoured!(
    spec_change_that_failed_once_is_applied_by_the_next_run,
    flavour,
    {
        let mut w = World::new(flavour).await;
        w.sync(&w.spec(json!({}))).await;
        assert_eq!(w.the_app(APP).definition["icon"], json!("apps"));
        w.generation += 1;
        let other_app = w.spec(json!({"source": {"app": BASE64.0}, "appName": APP}));
        w.standin
            .faults()
            .fail_nth("POST", "/api/v2/resources/import", 1, 503);
        let failed = w.sync(&other_app).await;
        assert!(!failed.report.ready, "{:?}", failed.report);
        w.standin.faults().reset();
        let out = w.sync(&other_app).await;
        assert_ready(&out, "Updated");
        assert_eq!(w.the_app(APP).definition["icon"], json!("server"));
    }
);

/// The number literals of a JSON text, outside strings, in order of appearance.
fn number_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut current = String::new();
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let continues = !current.is_empty() && matches!(c, '+' | '.' | 'e' | 'E');
        if c.is_ascii_digit() || c == '-' || continues {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        in_string = c == '"';
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `app[0].definition` of a bundle, byte for byte as the file holds it.
fn definition_text(bundle: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Bundle<'a> {
        #[serde(borrow)]
        app: Vec<Entry<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        #[serde(borrow)]
        definition: &'a serde_json::value::RawValue,
    }
    let b: Bundle = serde_json::from_slice(bundle).expect("a bundle");
    assert_eq!(b.app.len(), 1);
    b.app[0].definition.get().to_owned()
}

#[test]
fn number_tokens_skip_strings() {
    assert_eq!(
        number_tokens(r#"{"a":"1 \" 2","b":[-1.5e3,0,90.69767441860465]}"#),
        ["-1.5e3", "0", "90.69767441860465"]
    );
}

// Item 8 of issue 13: every fixture bundle goes from git through the engine and the client to
// ToolJet unchanged: the definition arrives byte for byte, and what the server keeps carries every
// number of the bundle with all its digits.
flavoured!(
    every_fixture_reaches_tooljet_exactly_as_git_holds_it,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tooljet-apps");
        let mut fixtures: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("fixture directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
                (stem, std::fs::read(&p).expect("fixture"))
            })
            .collect();
        fixtures.sort();
        assert!(fixtures.len() >= 3, "fixtures found: {}", fixtures.len());
        for (stem, bytes) in &fixtures {
            w.repo
                .write(&format!("bundles/{stem}.json"), bytes.as_slice());
        }
        w.repo.commit("every fixture as a plain bundle");
        w.repo.publish();

        let server = leading_version(w.standin.server_version()).expect("server version");
        let mut refused = 0;
        for (stem, bytes) in &fixtures {
            w.key = ImportKey::new("team-a", stem);
            w.state = AppImportStatus::default();
            let name = format!("Fidelity {stem}")
                .chars()
                .take(50)
                .collect::<String>();
            let spec = w.spec(json!({
                "appName": name,
                "source": {"app": null, "path": format!("bundles/{stem}.json")},
            }));
            let writes = w.standin.write_count();
            let out = w.sync(&spec).await;
            let bundle: serde_json::Value = serde_json::from_slice(bytes).expect("json");
            let made_by = bundle["tooljet_version"].as_str().unwrap_or_default();
            if leading_version(made_by).is_some_and(|v| v > server) {
                // A bundle of a later ToolJet (3.0.15 on the 2.x server) is refused, unwritten.
                assert_refused(&out, "BundleNewerThanServer");
                assert_eq!(w.writes_since(writes), 0, "{stem}");
                assert!(w.apps_named(&name).is_empty(), "{stem}");
                refused += 1;
                continue;
            }
            assert_ready(&out, "Imported");
            let app = w.the_app(&name);

            let sent = definition_text(bytes);
            assert!(
                app.received_definition == sent,
                "{stem}: the definition ToolJet received differs from git's ({} vs {} bytes)",
                app.received_definition.len(),
                sent.len()
            );

            let mut want = number_tokens(&sent);
            let stored = serde_json::to_string(&app.definition).expect("json");
            let mut got = number_tokens(&stored);
            want.sort();
            got.sort();
            assert_eq!(got, want, "{stem}: numbers kept by the server");
        }
        let expected_refusals = match flavour {
            Flavour::V2_27 => 1,
            Flavour::V3 => 0,
        };
        assert_eq!(refused, expected_refusals, "fixtures refused as too new");
    }
);

// An unknown or unsupported ToolJet is a clear refusal, before anything is written.
flavoured!(
    an_unsupported_server_is_refused_before_any_write,
    flavour,
    {
        let version = match flavour {
            Flavour::V2_27 => "2.20.0",
            Flavour::V3 => "4.0.1",
        };
        let mut w = World::claiming(flavour, Some(version)).await;
        let out = w.sync(&w.spec(json!({}))).await;
        assert_refused(&out, "ToolJetVersionUnsupported");
        assert!(
            out.report.message.contains(version),
            "{}",
            out.report.message
        );
        assert!(!out.report.retryable);
        assert_eq!(w.standin.write_count(), 0);
        assert!(w.standin.apps().is_empty());
    }
);

/// The credit card app with its `tooljet_version` set to `version`, pushed to git.
fn push_made_by(w: &World, version: &str) -> String {
    let mut bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
    bundle["tooljet_version"] = json!(version);
    bundle["app"][0]["definition"]["appV2"]["icon"] = json!(version);
    let bytes = serde_json::to_vec(&bundle).expect("json");
    w.repo.git_sync_write("app-1", APP, "v2", &bytes);
    let sha = w.repo.commit(&format!("{APP} from ToolJet {version}"));
    w.repo.publish();
    sha
}

// Item 9 of issue 13: a bundle of a later ToolJet is refused with the same reason and message on
// both families (2.x has no check of its own and would import it), before any write: neither a
// first import nor an update writes, and the app in ToolJet stays as it was.
flavoured!(
    a_bundle_newer_than_the_server_is_refused_before_any_write,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let too_new = match flavour {
            Flavour::V2_27 => "2.51.0",
            Flavour::V3 => "3.6.0-ee-lts",
        };
        let server = w.standin.server_version().to_owned();
        // A first import.
        push_made_by(&w, too_new);
        let spec = w.spec(json!({}));
        for mode in [Mode::Plan, Mode::Apply] {
            let out = w.sync_with(&spec, None, None, mode).await;
            assert_refused(&out, "BundleNewerThanServer");
            let message = &out.report.message;
            for part in [
                too_new,
                server.as_str(),
                "apps built on later versions of ToolJet cannot be imported",
                "nothing was written",
                "upgrade the ToolJet server",
            ] {
                assert!(message.contains(part), "{mode:?}: {part:?} in {message}");
            }
            assert!(
                out.report.stalled && !out.report.retryable,
                "{:?}",
                out.report
            );
        }
        assert_eq!(w.standin.write_count(), 0);
        assert!(w.standin.apps().is_empty());

        // An update: the app imported from an older commit stays, untouched.
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({}));
        assert_ready(&w.sync(&spec).await, "Imported");
        let before = w.the_app(APP);
        push_made_by(&w, too_new);
        let writes = w.standin.write_count();
        let out = w.sync(&spec).await;
        assert_refused(&out, "BundleNewerThanServer");
        assert_eq!(w.writes_since(writes), 0);
        assert_eq!(w.the_app(APP), before);
        // A bundle of the server's own version goes through.
        push_made_by(&w, &server);
        assert_ready(&w.sync(&spec).await, "Updated");
    }
);

// A bundle that is not JSON is refused with the same clear reason on both families, unwritten.
flavoured!(an_invalid_bundle_is_refused_before_any_write, flavour, {
    let mut w = World::new(flavour).await;
    w.repo
        .write("bundles/broken.json", b"{\"app\": [".as_slice());
    w.repo.commit("a broken bundle");
    w.repo.publish();
    let spec = w
        .spec(json!({"appName": "Broken", "source": {"app": null, "path": "bundles/broken.json"}}));
    let out = w.sync(&spec).await;
    assert_refused(&out, "InvalidBundle");
    assert!(
        out.report.message.contains("bundles/broken.json"),
        "{}",
        out.report.message
    );
    assert!(!out.report.retryable);
    assert_eq!(w.standin.write_count(), 0);
    assert!(w.standin.apps().is_empty());
});

/// The query edits a person can make in the ToolJet editor, by name.
#[derive(Clone, Copy, Debug)]
enum QueryEdit {
    Save,
    Add,
}

/// Makes `edit` in the app as a person would, and checks the stand-in moves the timestamps as
/// the family does: on 2.x neither the app's nor the editing version's `updated_at` (issue 13),
/// on 3.x the editing version's.
fn edit_query(w: &World, app_id: &str, edit: QueryEdit) {
    let before = w
        .standin
        .apps()
        .into_iter()
        .find(|a| a.id == app_id)
        .expect("app");
    match edit {
        QueryEdit::Save => assert!(w.standin.edit_query_as_user(app_id, Some("runjs1"))),
        QueryEdit::Add => {
            w.standin
                .add_query_as_user(app_id, "added_in_tooljet")
                .expect("query added");
        }
    }
    let after = w
        .standin
        .apps()
        .into_iter()
        .find(|a| a.id == app_id)
        .expect("app");
    assert_ne!(
        after.queries(),
        before.queries(),
        "{edit:?}: the query changed"
    );
    assert_eq!(
        after.updated_at, before.updated_at,
        "{edit:?}: app updated_at"
    );
    let version_moved = after.versions != before.versions;
    assert_eq!(
        version_moved,
        w.standin.flavour() == Flavour::V3,
        "{edit:?}: the editing version's updated_at moves on 3.x only"
    );
}

/// The queries as the bundle in git has them: names and code.
fn query_code(app: &AppSnapshot) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<_> = app
        .queries()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap_or_default().to_owned(),
                q["options"]["code"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// Item 6 of issue 13: a query saved or added in ToolJet, in an app that is not editable, is
// drift: the git version is restored, on 2.x too, where no app or version timestamp moves.
flavoured!(query_edit_of_a_non_editable_app_is_restored, flavour, {
    for edit in [QueryEdit::Save, QueryEdit::Add] {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({"editable": false}));
        assert_ready(&w.sync(&spec).await, "Imported");
        let imported = w.the_app(APP);
        let fingerprint = w
            .state
            .app
            .as_ref()
            .and_then(|a| a.edit_fingerprint.clone());
        assert!(
            fingerprint.as_ref().is_some_and(|f| f.len() == 32),
            "{fingerprint:?}"
        );
        // A status written before the fingerprint existed gets one on the next quiet run.
        if let Some(app) = w.state.app.as_mut() {
            app.edit_fingerprint = None;
        }
        assert_ready(&w.sync(&spec).await, "UpToDate");
        assert_eq!(
            w.state
                .app
                .as_ref()
                .and_then(|a| a.edit_fingerprint.clone()),
            fingerprint
        );

        edit_query(&w, &imported.id, edit);
        let out = w.sync(&spec).await;
        assert_ready(&out, "DriftCorrected");
        let drift = out.report.drift.expect("drift reported");
        assert!(drift.corrected, "{edit:?}");
        assert!(
            drift.message.contains("edited in ToolJet"),
            "{}",
            drift.message
        );
        let restored = w.the_app(APP);
        assert_ne!(restored.id, imported.id, "{edit:?}: a fresh import");
        assert_eq!(restored.slug, imported.slug);
        assert_eq!(query_code(&restored), query_code(&imported), "{edit:?}");
        let writes = w.standin.write_count();
        assert_ready(&w.sync(&spec).await, "UpToDate");
        assert_eq!(w.writes_since(writes), 0);
    }
});

// Item 6 of issue 13: in an editable app a query saved or added in ToolJet is kept: a quiet run
// says so, and a new commit is refused with LocalChanges instead of overwriting it.
flavoured!(
    query_edit_of_an_editable_app_is_kept_with_local_changes,
    flavour,
    {
        for edit in [QueryEdit::Save, QueryEdit::Add] {
            let mut w = World::new(flavour).await;
            let spec = w.spec(json!({"editable": true}));
            assert_ready(&w.sync(&spec).await, "Imported");
            let app = w.the_app(APP);
            edit_query(&w, &app.id, edit);
            let edited = query_code(&w.the_app(APP));
            let writes = w.standin.write_count();
            let out = w.sync(&spec).await;
            assert_ready(&out, "UpToDate");
            assert!(
                out.report
                    .message
                    .contains("edits made in ToolJet are kept"),
                "{}",
                out.report.message
            );
            let sha = w.push_new_version("v2");
            let out = w.sync(&spec).await;
            assert_refused(&out, "LocalChanges");
            assert!(out.report.message.contains(&sha), "{}", out.report.message);
            assert_eq!(w.writes_since(writes), 0, "{edit:?}");
            let kept = w.the_app(APP);
            assert_eq!(kept.id, app.id, "{edit:?}: the edited app is untouched");
            assert_eq!(
                query_code(&kept),
                edited,
                "{edit:?}: the query edit is kept"
            );
        }
    }
);

// Item 6 of issue 13: with release: false, a person releasing the app by hand is not drift:
// nothing is written and the app stays released.
flavoured!(release_by_hand_with_release_false_is_not_drift, flavour, {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({"editable": false, "release": false}));
    assert_ready(&w.sync(&spec).await, "Imported");
    let app = w.the_app(APP);
    assert_eq!(
        app.current_version_id, None,
        "release: false leaves it unreleased"
    );
    w.client
        .release_app(&app.id, &app.editing_version_id)
        .await
        .expect("released by hand");
    assert_ne!(
        w.the_app(APP).updated_at,
        app.updated_at,
        "the release moved updated_at"
    );
    let writes = w.standin.write_count();
    let out = w.sync(&spec).await;
    assert_ready(&out, "UpToDate");
    assert!(out.report.drift.is_none(), "{:?}", out.report.drift);
    assert_eq!(w.writes_since(writes), 0);
    let after = w.the_app(APP);
    assert_eq!(after.id, app.id);
    assert_eq!(
        after.current_version_id.as_deref(),
        Some(app.editing_version_id.as_str())
    );
    // An edit after the release is still seen.
    w.standin.edit_app_as_user(&app.id);
    assert_ready(&w.sync(&spec).await, "DriftCorrected");
});

// With release: true, a person releasing another version of the app is drift (the app is
// restored and released at the git version); with release: false it is left alone.
flavoured!(
    another_version_released_by_hand_is_drift_only_with_release_true,
    flavour,
    {
        for release in [true, false] {
            let mut w = World::new(flavour).await;
            // A bundle with two versions: the editing one and an older one a person can release.
            let mut bundle: serde_json::Value =
                serde_json::from_slice(CREDIT_CARD.1).expect("json");
            let versions = &mut bundle["app"][0]["definition"]["appV2"]["appVersions"];
            let mut older = versions[0].clone();
            older["id"] = json!("00000000-0000-4000-8000-0000000000aa");
            older["name"] = json!("v0");
            versions.as_array_mut().expect("versions").push(older);
            let bytes = serde_json::to_vec(&bundle).expect("json");
            w.repo.git_sync_write("app-1", APP, "v1", &bytes);
            w.repo.commit("two versions");
            w.repo.publish();
            let spec = w.spec(json!({"editable": false, "release": release}));
            assert_ready(&w.sync(&spec).await, "Imported");
            let app = w.the_app(APP);
            let other = app
                .versions
                .iter()
                .find(|v| v.id != app.editing_version_id)
                .expect("a second version")
                .id
                .clone();
            w.client
                .release_app(&app.id, &other)
                .await
                .expect("released by hand");
            let out = w.sync(&spec).await;
            let after = w.the_app(APP);
            if release {
                assert_ready(&out, "DriftCorrected");
                assert_ne!(after.id, app.id);
                assert_eq!(
                    after.current_version_id.as_deref(),
                    Some(after.editing_version_id.as_str()),
                    "released at the git version again"
                );
            } else {
                assert_ready(&out, "UpToDate");
                assert_eq!(after.id, app.id);
                assert_eq!(after.current_version_id.as_deref(), Some(other.as_str()));
            }
        }
    }
);
