//! The sync engine against real git repositories and the ToolJet stand-in. The stand-in's request
//! log counts writes; its fault knobs fail each call of a swap.

use git_fixtures::TestRepo;
use git_fixtures::tooljet::{BASE64, CODE_EXPLAINER, CREDIT_CARD, ORDERS_DASHBOARD, ORDERS_REPORT};
use serde_json::json;
use test_support::engine::{EngineRig, RunArgs};
use test_support::pipeline::start_standin_claiming;
use tooljet_operator::api::{AppImportSpec, DataSourceAction};
use tooljet_operator::sync::SyncState;
use tooljet_operator::sync::{Action, ImportKey, Mode, SyncOutcome};
use tooljet_standin::flavoured;
use tooljet_standin::{AppSnapshot, Flavour, ImportDamage, leading_version};

const APP: &str = CREDIT_CARD.0;
const API_KEY: &str = "engine-test-key";

/// The shared engine rig (tests/support), with the generation the next request carries.
struct World {
    rig: EngineRig,
    generation: i64,
}

impl std::ops::Deref for World {
    type Target = EngineRig;
    fn deref(&self) -> &EngineRig {
        &self.rig
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut EngineRig {
        &mut self.rig
    }
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
        let repo = TestRepo::new();
        repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1);
        repo.git_sync_write("app-2", BASE64.0, "v1", BASE64.1);
        repo.commit("two apps");
        repo.publish();
        let standin = start_standin_claiming(flavour, API_KEY, version).await;
        World {
            rig: EngineRig::new(
                standin,
                repo,
                flavour,
                API_KEY,
                std::time::Duration::from_secs(5),
                None,
            ),
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
        let args = RunArgs {
            generation: Some(self.generation),
            approve,
            force_pull,
            mode,
            ..RunArgs::default()
        };
        self.rig.sync(spec, args).await
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
        outcome.report.ready() && outcome.report.reason == reason,
        "expected Ready with {reason}, got {:?}",
        outcome.report
    );
}

fn assert_refused(outcome: &SyncOutcome, reason: &str) {
    assert!(
        !outcome.report.ready() && outcome.report.reason == reason,
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
        let fetches = w.cache.stats(&w.repo.file_url()).fetches;
        let out = w.sync(&spec).await;
        assert_ready(&out, "UpToDate");
        assert!(out.actions.is_empty(), "{:?}", out.actions);
        assert_eq!(w.writes_since(writes), 0);
        assert_eq!(w.cache.stats(&w.repo.file_url()).fetches, fetches);
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
        assert!(out.report.stalled());
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
    assert!(out.report.ready(), "{:?}", out.report);
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
            assert!(!failed.report.ready(), "{label}: the fault went unnoticed");
            assert!(failed.report.retryable(), "{label}: {:?}", failed.report);
            let out = w.sync(&spec).await;
            assert!(out.report.ready(), "{label}: {:?}", out.report);
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
        assert!(!failed.report.ready());
        w.standin.faults().reset();
        // Left behind: the old app under the aside name, the new one pending under its temporary name.
        let names: Vec<String> = w.standin.apps().into_iter().map(|a| a.name).collect();
        assert!(names.contains(&w.key.aside_name()), "{names:?}");
        assert!(w.state.pending_app.is_some());
        let out = w.sync(&spec).await;
        assert!(out.report.ready(), "{:?}", out.report);
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
        assert!(!failed.report.ready(), "{:?}", failed.report);
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
            w.state = SyncState::default();
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
        assert!(!out.report.retryable());
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
                out.report.stalled() && !out.report.retryable(),
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
    assert!(!out.report.retryable());
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
        after.query_values(),
        before.query_values(),
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
        .query_values()
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

// ---- data sources (issue 13, items 3 and 5) ------------------------------------------------
//
// Two apps share the global PostgreSQL data source `orders-db` (the Orders fixtures). On ToolJet
// 2.x a data source an import created belongs to the importing version and is deleted with that
// app, and with it every query using it, in every app (config-api.md §4.2); the stand-in's 2.27
// flavour does the same. Whatever the operator does, no data source another app uses goes, and
// every app keeps every query of its bundle.

const DASH: &str = ORDERS_DASHBOARD.0;
const REPORT: &str = ORDERS_REPORT.0;

impl World {
    /// [`World::new`] plus the two Orders apps in the repository.
    async fn orders(flavour: Flavour) -> World {
        let w = World::new(flavour).await;
        w.repo
            .git_sync_write("app-3", DASH, "v1", ORDERS_DASHBOARD.1);
        w.repo
            .git_sync_write("app-4", REPORT, "v1", ORDERS_REPORT.1);
        w.repo.commit("two apps sharing orders-db");
        w.repo.publish();
        w
    }

    fn spec_of(&self, app: &str) -> AppImportSpec {
        self.spec(json!({"source": {"app": app}}))
    }

    /// Syncs as another AppImport, whose state is `state`.
    async fn sync_as(
        &mut self,
        key: &ImportKey,
        state: &mut SyncState,
        spec: &AppImportSpec,
    ) -> SyncOutcome {
        let own_key = std::mem::replace(&mut self.key, key.clone());
        let own_state = std::mem::replace(&mut self.state, std::mem::take(state));
        let out = self.sync(spec).await;
        *state = std::mem::replace(&mut self.state, own_state);
        self.key = own_key;
        out
    }

    /// A new version of the dashboard pushed to git (its icon changes).
    fn push_dashboard(&self, version: &str) {
        let mut bundle: serde_json::Value =
            serde_json::from_slice(ORDERS_DASHBOARD.1).expect("json");
        bundle["app"][0]["definition"]["appV2"]["icon"] = json!(version);
        let bytes = serde_json::to_vec(&bundle).expect("json");
        self.repo.git_sync_write("app-3", DASH, version, &bytes);
        self.repo.commit(&format!("{DASH} {version}"));
        self.repo.publish();
    }

    /// The app named `name` has every query of `bundle`, each bound to a data source that
    /// exists (a workspace one, or a static one of the app).
    fn assert_all_queries(&self, name: &str, bundle: &[u8], label: &str) {
        let bundle: serde_json::Value = serde_json::from_slice(bundle).expect("json");
        let mut want: Vec<String> = bundle["app"][0]["definition"]["appV2"]["dataQueries"]
            .as_array()
            .expect("queries")
            .iter()
            .map(|q| q["name"].as_str().expect("name").to_owned())
            .collect();
        let named = self.apps_named(name);
        assert_eq!(named.len(), 1, "{label}: apps named {name:?}");
        let app = &named[0];
        let sources: Vec<String> = self
            .standin
            .data_sources()
            .into_iter()
            .map(|d| d.id)
            .chain(
                app.definition["dataSources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| d["type"] == "static")
                    .filter_map(|d| d["id"].as_str().map(str::to_owned)),
            )
            .collect();
        let queries = app.queries();
        let mut got: Vec<String> = queries.iter().map(|(n, _)| n.clone()).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{label}: the queries of {name:?}");
        for (q, ds) in &queries {
            let ds = ds.as_deref().unwrap_or_default();
            assert!(
                sources.iter().any(|s| s == ds),
                "{label}: query {q} of {name:?} uses {ds}, which does not exist"
            );
        }
    }

    /// One `orders-db` and one `shipping-api` in the workspace, neither owned by an app version.
    fn assert_shared_sources_global(&self, label: &str) {
        let sources = self.standin.data_sources();
        for name in ["orders-db", "shipping-api"] {
            let found: Vec<_> = sources.iter().filter(|d| d.name == name).collect();
            assert_eq!(found.len(), 1, "{label}: {name}: {sources:?}");
            assert_eq!(found[0].scope, "global", "{label}");
            assert_eq!(
                found[0].app_version_id, None,
                "{label}: {name} belongs to an app version, so deleting that app would delete it"
            );
        }
    }
}

fn recorded(state: &SyncState) -> Vec<(String, String, DataSourceAction)> {
    state
        .data_sources
        .iter()
        .map(|d| (d.name.clone(), d.kind.clone(), d.action))
        .collect()
}

// The headline of issue 13: an update of app A leaves app B, which shares A's data source, with
// all its queries (on 2.27, A's swap deleted the old A and with it the data source its import had
// created, and B's queries with it).
flavoured!(
    update_of_an_app_keeps_the_queries_of_an_app_sharing_its_data_source,
    flavour,
    {
        let mut w = World::orders(flavour).await;
        let report_key = ImportKey::new("team-a", "orders-report");
        let mut report_state = SyncState::default();
        let dash = w.spec_of(DASH);
        let report = w.spec_of(REPORT);

        assert_ready(&w.sync(&dash).await, "Imported");
        let out = w.sync_as(&report_key, &mut report_state, &report).await;
        assert_ready(&out, "Imported");

        w.push_dashboard("v2");
        let out = w.sync(&dash).await;
        // First what users would lose: B's queries, then A's, then the shared data sources.
        w.assert_all_queries(REPORT, ORDERS_REPORT.1, "B after A's update");
        assert_ready(&out, "Updated");
        assert_eq!(w.the_app(DASH).definition["icon"], json!("v2"));
        w.assert_all_queries(DASH, ORDERS_DASHBOARD.1, "A after its update");
        w.assert_shared_sources_global("after A's update");

        // Status: A's first run created both (and they stay recorded as the operator's), B's
        // run linked to the one it shares.
        let created = DataSourceAction::Created;
        assert_eq!(
            recorded(&w.state),
            [
                ("orders-db".into(), "postgresql".into(), created),
                ("shipping-api".into(), "restapi".into(), created),
            ]
        );
        assert!(w.state.data_sources.iter().all(|d| d.id.is_some()));
        assert_eq!(
            recorded(&report_state),
            [(
                "orders-db".into(),
                "postgresql".into(),
                DataSourceAction::Linked
            )]
        );
        assert_eq!(
            report_state.data_sources[0].id, w.state.data_sources[0].id,
            "B links to the data source A's run created"
        );
        let db = w.standin.data_sources();
        let db = db
            .iter()
            .find(|d| d.name == "orders-db")
            .expect("orders-db");
        // Created without secrets; the bundle's non-secret options kept, with their types.
        assert_eq!(db.options["host"]["value"], "orders-db.dev.internal");
        assert_eq!(db.options["port"]["value"], 5432);
        assert!(db.options.get("password").is_none(), "{:?}", db.options);

        assert_ready(&w.sync(&dash).await, "UpToDate");
        assert_ready(
            &w.sync_as(&report_key, &mut report_state, &report).await,
            "UpToDate",
        );
    }
);

flavoured!(
    drift_restore_and_delete_keep_the_shared_data_source_and_other_queries,
    flavour,
    {
        let mut w = World::orders(flavour).await;
        let report_key = ImportKey::new("team-a", "orders-report");
        let mut report_state = SyncState::default();
        let dash = w.spec_of(DASH);
        assert_ready(&w.sync(&dash).await, "Imported");
        assert_ready(
            &w.sync_as(&report_key, &mut report_state, &w.spec_of(REPORT))
                .await,
            "Imported",
        );

        assert!(w.standin.edit_app_as_user(&w.the_app(DASH).id));
        assert_ready(&w.sync(&dash).await, "DriftCorrected");
        w.assert_all_queries(REPORT, ORDERS_REPORT.1, "B after A's drift restore");
        w.assert_all_queries(DASH, ORDERS_DASHBOARD.1, "A after its drift restore");
        w.assert_shared_sources_global("after the drift restore");

        w.engine
            .release(&w.key, true, &w.state, &w.client, Mode::Apply)
            .await
            .expect("deletion");
        assert!(w.apps_named(DASH).is_empty());
        w.assert_all_queries(REPORT, ORDERS_REPORT.1, "B after A's deletion");
        w.assert_shared_sources_global("after A's deletion");
    }
);

// Data sources that an import made before the operator managed the app (a person imported B by
// hand): on 2.27 B's version owns orders-db. The operator frees it after importing A, which links
// to it, so B's later deletion by a person no longer takes A's queries; and deleting an app the
// operator owns never takes a data source with it.
flavoured!(
    data_sources_owned_by_an_app_version_are_freed_before_they_can_cascade,
    flavour,
    {
        let mut w = World::orders(flavour).await;
        let bundle = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).expect("json");
        let by_hand = w
            .client
            .import_app(&bundle(ORDERS_REPORT.1), "Report by hand")
            .await
            .expect("import by hand");
        let owned_by_b = w.standin.data_sources();
        assert_eq!(
            owned_by_b[0].app_version_id.is_some(),
            flavour == Flavour::V2_27,
            "{owned_by_b:?}"
        );

        let out = w.sync(&w.spec_of(DASH)).await;
        assert_ready(&out, "Imported");
        assert_eq!(
            recorded(&w.state),
            [
                (
                    "orders-db".into(),
                    "postgresql".into(),
                    DataSourceAction::Linked
                ),
                (
                    "shipping-api".into(),
                    "restapi".into(),
                    DataSourceAction::Created
                ),
            ]
        );
        let freed = out
            .actions
            .iter()
            .any(|a| matches!(a, Action::FreeDataSource { name, .. } if name == "orders-db"));
        assert_eq!(freed, flavour == Flavour::V2_27, "{:?}", out.actions);
        w.assert_shared_sources_global("after A's import");
        assert!(w.standin.delete_app_as_user(&by_hand.id));
        w.assert_all_queries(DASH, ORDERS_DASHBOARD.1, "A after B's deletion by hand");

        // The operator deletes an app whose version owns a data source another app uses: D, an
        // app an earlier operator version imported, whose import created `legacy-api` (a new
        // name, so it is not linked to a global one), and E, imported by hand, linked to it.
        let text = String::from_utf8(ORDERS_DASHBOARD.1.to_vec()).expect("utf-8");
        let legacy = bundle(text.replace("shipping-api", "legacy-api").as_bytes());
        let d = w
            .client
            .import_app(&legacy, "Legacy D")
            .await
            .expect("import by hand");
        let legacy_source = w
            .standin
            .data_sources()
            .into_iter()
            .find(|s| s.name == "legacy-api")
            .expect("legacy-api");
        assert_eq!(
            legacy_source.app_version_id.is_some(),
            flavour == Flavour::V2_27
        );
        let e = w
            .client
            .import_app(&legacy, "Legacy E")
            .await
            .expect("import by hand");
        let state = SyncState {
            app: Some(tooljet_operator::api::AppStatus {
                id: d.id.clone(),
                name: d.name.clone(),
                slug: String::new(),
                updated_at: None,
                version_id: None,
                edit_fingerprint: None,
            }),
            ..SyncState::default()
        };
        w.engine
            .release(
                &ImportKey::new("team-a", "legacy"),
                true,
                &state,
                &w.client,
                Mode::Apply,
            )
            .await
            .expect("deletion");
        assert!(w.apps_named("Legacy D").is_empty());
        assert!(
            w.standin
                .data_sources()
                .iter()
                .any(|s| s.id == legacy_source.id && s.app_version_id.is_none()),
            "the data source D's import created is kept and freed"
        );
        let e_queries = w
            .standin
            .apps()
            .into_iter()
            .find(|a| a.id == e.id)
            .expect("E")
            .queries();
        assert_eq!(e_queries.len(), 4, "E kept its queries: {e_queries:?}");
    }
);

// Each ToolJet call of an update of A failed once (the run stops there, as a crash would, minus
// the checkpoint), with B sharing A's data source: after a clean run, A and B have every query
// and the shared data sources are still there, global.
flavoured!(
    failure_at_each_call_of_an_update_keeps_every_query_of_both_apps,
    flavour,
    {
        let list = match flavour {
            Flavour::V2_27 => "/api/v2/data_sources",
            Flavour::V3 => "/api/data-sources/*",
        };
        // On 2.x the list is read before the import, after it (to free linked sources) and
        // before the old app's deletion (to free the sources its version owns).
        let calls = [
            ("GET", list, 1),
            ("GET", list, 2),
            ("GET", list, 3),
            ("POST", "/api/v2/resources/import", 1),
            ("GET", "/api/apps/*", 2),
            ("PUT", "/api/apps/*", 1),
            ("PUT", "/api/apps/*", 2),
            ("PUT", "/api/apps/*", 3),
            ("GET", "/api/apps/*", 4),
            ("DELETE", "/api/apps/*", 1),
            ("GET", "/api/apps/*", 6),
        ];
        for (method, pattern, nth) in calls {
            for drop in [false, true] {
                let label = format!("{flavour}: {method} {pattern} #{nth} drop={drop}");
                let mut w = World::orders(flavour).await;
                let report_key = ImportKey::new("team-a", "orders-report");
                let mut report_state = SyncState::default();
                let dash = w.spec_of(DASH);
                assert_ready(&w.sync(&dash).await, "Imported");
                assert_ready(
                    &w.sync_as(&report_key, &mut report_state, &w.spec_of(REPORT))
                        .await,
                    "Imported",
                );
                w.push_dashboard("v2");
                if drop {
                    w.standin.faults().drop_nth(method, pattern, nth);
                } else {
                    w.standin.faults().fail_nth(method, pattern, nth, 500);
                }
                let first = w.sync(&dash).await;
                w.standin.faults().reset();
                assert_eq!(
                    w.apps_named(DASH).len(),
                    1,
                    "{label}: {:?}",
                    w.standin.apps()
                );
                w.assert_all_queries(REPORT, ORDERS_REPORT.1, &label);
                let out = w.sync(&dash).await;
                assert!(
                    out.report.ready(),
                    "{label}: {:?} then {:?}",
                    first.report,
                    out.report
                );
                assert_eq!(w.the_app(DASH).definition["icon"], json!("v2"), "{label}");
                w.the_app(REPORT);
                w.assert_all_queries(DASH, ORDERS_DASHBOARD.1, &label);
                w.assert_all_queries(REPORT, ORDERS_REPORT.1, &label);
                w.assert_shared_sources_global(&label);
            }
        }
    }
);

// The first import stops after creating one of its two data sources: the next run links to it,
// creates the other, and still reports both as created by the operator.
flavoured!(
    a_run_stopped_between_data_source_creations_is_finished_by_the_next,
    flavour,
    {
        let mut w = World::orders(flavour).await;
        let create = match flavour {
            Flavour::V2_27 => "/api/v2/data_sources",
            Flavour::V3 => "/api/data-sources",
        };
        w.standin.faults().fail_nth("POST", create, 2, 503);
        let dash = w.spec_of(DASH);
        let failed = w.sync(&dash).await;
        assert!(
            !failed.report.ready() && failed.report.retryable(),
            "{:?}",
            failed.report
        );
        assert!(w.apps_named(DASH).is_empty());
        assert_eq!(w.standin.data_sources().len(), 1);
        w.standin.faults().reset();
        assert_ready(&w.sync(&dash).await, "Imported");
        assert_eq!(w.standin.data_sources().len(), 2);
        w.assert_shared_sources_global("after the retry");
        w.assert_all_queries(DASH, ORDERS_DASHBOARD.1, "after the retry");
        let actions: Vec<DataSourceAction> =
            w.state.data_sources.iter().map(|d| d.action).collect();
        // Both created by the operator: the first by the stopped run, recorded before it stopped.
        assert_eq!(
            actions,
            [DataSourceAction::Created, DataSourceAction::Created]
        );
    }
);

/// A checkpoint that "crashes" at its `n`th save (counting from 0): that save and every later one
/// fail, so the run stops there, and the state kept is the last one saved before, as a process
/// killed at that point would leave it.
struct CrashAt {
    n: usize,
    count: std::sync::atomic::AtomicUsize,
    saved: std::sync::Mutex<Option<SyncState>>,
}

impl CrashAt {
    fn new(n: usize) -> CrashAt {
        CrashAt {
            n,
            count: std::sync::atomic::AtomicUsize::new(0),
            saved: std::sync::Mutex::new(None),
        }
    }
}

impl tooljet_operator::sync::Checkpoint for CrashAt {
    fn save<'a>(
        &'a self,
        state: &'a SyncState,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        let i = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let result = if i >= self.n {
            Err("crashed here".to_owned())
        } else {
            *self.saved.lock().expect("lock") = Some(state.clone());
            Ok(())
        };
        Box::pin(async move { result })
    }
}

// A crash after each checkpoint of an update of A (the state kept is the one saved last), then a
// normal run: A and B end with every query, the shared data sources are still there and global.
flavoured!(
    a_crash_at_each_step_of_an_update_keeps_every_query_of_both_apps,
    flavour,
    {
        let mut step = 0;
        loop {
            let label = format!("{flavour}: crash at save #{step}");
            let mut w = World::orders(flavour).await;
            let report_key = ImportKey::new("team-a", "orders-report");
            let mut report_state = SyncState::default();
            let dash = w.spec_of(DASH);
            assert_ready(&w.sync(&dash).await, "Imported");
            assert_ready(
                &w.sync_as(&report_key, &mut report_state, &w.spec_of(REPORT))
                    .await,
                "Imported",
            );
            w.push_dashboard("v2");
            let before = w.state.clone();
            let crash = CrashAt::new(step);
            let out = w
                .run(
                    &w.key,
                    w.state.clone(),
                    &dash,
                    RunArgs {
                        generation: Some(w.generation),
                        ..RunArgs::default()
                    },
                    &crash,
                )
                .await;
            let saves = crash.count.load(std::sync::atomic::Ordering::SeqCst);
            if out.report.ready() {
                // No save left to crash at: every step was covered.
                assert!(step > 2, "{label}: an update saves state several times");
                break;
            }
            assert_eq!(
                out.report.reason, "StateNotSaved",
                "{label}: {:?}",
                out.report
            );
            w.state = crash.saved.lock().expect("lock").clone().unwrap_or(before);
            w.assert_all_queries(REPORT, ORDERS_REPORT.1, &label);
            let next = w.sync(&dash).await;
            assert!(
                next.report.ready(),
                "{label} ({saves} saves): {:?}",
                next.report
            );
            assert_eq!(w.the_app(DASH).definition["icon"], json!("v2"), "{label}");
            w.assert_all_queries(DASH, ORDERS_DASHBOARD.1, &label);
            w.assert_all_queries(REPORT, ORDERS_REPORT.1, &label);
            w.assert_shared_sources_global(&label);
            step += 1;
        }
    }
);

// `plan` says which data sources a first import would create, and writes nothing.
flavoured!(plan_names_the_data_sources_it_would_create, flavour, {
    let mut w = World::orders(flavour).await;
    let out = w.sync_with(&w.spec_of(DASH), None, None, Mode::Plan).await;
    assert!(out.report.ready(), "{:?}", out.report);
    let creates: Vec<String> = out
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateDataSource { name, kind } => Some(format!("{kind}:{name}")),
            _ => None,
        })
        .collect();
    assert_eq!(creates, ["postgresql:orders-db", "restapi:shipping-api"]);
    assert!(
        out.actions[0].to_string().contains("without secrets"),
        "{}",
        out.actions[0]
    );
    assert_eq!(w.standin.write_count(), 0);
    assert!(w.standin.data_sources().is_empty());
});

// Item 7: every write is verified before success is reported.

/// A failed check of a first import: a clear retryable reason, nothing left in ToolJet, and the
/// next run imports the app whole.
async fn first_import_check_fails(flavour: Flavour, damage: ImportDamage, reason: &str) -> String {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({}));
    w.standin.damage_next_import(damage);
    let out = w.sync(&spec).await;
    assert_refused(&out, reason);
    assert!(
        out.report.retryable() && !out.report.stalled(),
        "{:?}",
        out.report
    );
    assert!(
        w.standin.apps().is_empty(),
        "the import was removed: {:?}",
        w.standin.apps()
    );
    assert!(w.state.app.is_none() && w.state.pending_app.is_none());
    assert_ready(&w.sync(&spec).await, "Imported");
    let app = w.the_app(APP);
    let bundle: serde_json::Value = serde_json::from_slice(CREDIT_CARD.1).expect("json");
    let def = &bundle["app"][0]["definition"]["appV2"];
    for key in ["pages", "components", "dataQueries"] {
        assert_eq!(
            app.definition[key].as_array().map(Vec::len),
            def[key].as_array().map(Vec::len),
            "{key} of the retried import"
        );
    }
    out.report.message
}

flavoured!(
    an_import_without_a_page_s_components_is_removed_and_retried,
    flavour,
    {
        let message = first_import_check_fails(
            flavour,
            ImportDamage::LastPageComponents,
            "ImportIncomplete",
        )
        .await;
        assert!(
            message.contains("component") && message.contains("of page"),
            "{message}"
        );
    }
);

flavoured!(an_import_without_a_page_is_removed_and_retried, flavour, {
    let message =
        first_import_check_fails(flavour, ImportDamage::LastPage, "ImportIncomplete").await;
    assert!(message.contains("page \""), "{message}");
});

flavoured!(
    an_import_with_a_query_on_a_missing_data_source_is_removed,
    flavour,
    {
        let message = first_import_check_fails(
            flavour,
            ImportDamage::DanglingDataSource,
            "ImportIncomplete",
        )
        .await;
        assert!(message.contains("not in the workspace"), "{message}");
    }
);

flavoured!(an_import_without_a_query_is_removed_and_retried, flavour, {
    first_import_check_fails(flavour, ImportDamage::LastQuery, "QueriesMissing").await;
});

/// A failed check of an update: the app users see is untouched, the new import removed, and
/// the next run swaps.
async fn update_check_fails(w: &mut World, reason: &str) -> String {
    let spec = w.spec(json!({}));
    let out = w.sync(&spec).await;
    assert_refused(&out, reason);
    assert!(out.report.retryable(), "{:?}", out.report);
    let app = w.the_app(APP);
    assert_eq!(
        app.definition["icon"],
        json!("v1"),
        "the old app is untouched"
    );
    assert!(app.current_version_id.is_some(), "and still released");
    assert_eq!(w.standin.apps().len(), 1, "{:?}", w.standin.apps());
    assert_ready(&w.sync(&spec).await, "Updated");
    let after = w.the_app(APP);
    assert_ne!(after.id, app.id);
    assert_eq!(after.slug, app.slug);
    assert_eq!(after.definition["icon"], json!("v2"));
    out.report.message
}

async fn imported_then_pushed(flavour: Flavour) -> World {
    let mut w = World::new(flavour).await;
    let spec = w.spec(json!({}));
    assert_ready(&w.sync(&spec).await, "Imported");
    w.push_new_version("v1");
    assert_ready(&w.sync(&spec).await, "Updated");
    w.push_new_version("v2");
    w
}

flavoured!(an_incomplete_update_keeps_the_old_app, flavour, {
    let mut w = imported_then_pushed(flavour).await;
    w.standin
        .damage_next_import(ImportDamage::LastPageComponents);
    let message = update_check_fails(&mut w, "ImportIncomplete").await;
    assert!(message.contains("component"), "{message}");
});

flavoured!(
    an_update_with_a_dangling_data_source_keeps_the_old_app,
    flavour,
    {
        let mut w = imported_then_pushed(flavour).await;
        w.standin
            .damage_next_import(ImportDamage::DanglingDataSource);
        let message = update_check_fails(&mut w, "ImportIncomplete").await;
        assert!(message.contains("data source"), "{message}");
    }
);

flavoured!(
    a_swap_whose_new_app_did_not_take_the_name_keeps_the_old_app,
    flavour,
    {
        let mut w = imported_then_pushed(flavour).await;
        // The rename answers success and changes nothing: the final check sees the new app
        // still under its temporary name, puts the old app back and removes the new one.
        w.standin.ignore_next_rename_to(APP);
        let message = update_check_fails(&mut w, "ImportIncomplete").await;
        assert!(message.contains("still named"), "{message}");
    }
);

flavoured!(
    a_first_import_that_did_not_take_the_name_is_removed,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({}));
        w.standin.ignore_next_rename_to(APP);
        let out = w.sync(&spec).await;
        assert_refused(&out, "ImportIncomplete");
        assert!(out.report.retryable(), "{:?}", out.report);
        assert!(w.standin.apps().is_empty(), "{:?}", w.standin.apps());
        assert_ready(&w.sync(&spec).await, "Imported");
        w.the_app(APP);
    }
);

flavoured!(
    a_swap_whose_new_app_lost_its_release_keeps_the_old_app,
    flavour,
    {
        let mut w = imported_then_pushed(flavour).await;
        // The rename to the real name also clears the release: with release: true the final check
        // refuses the new app before the old one is deleted.
        w.standin.unrelease_on_next_rename_to(APP);
        let message = update_check_fails(&mut w, "ImportIncomplete").await;
        assert!(message.contains("no released version"), "{message}");
    }
);

flavoured!(
    with_release_false_an_unreleased_new_app_is_taken,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({"release": false}));
        w.standin.unrelease_on_next_rename_to(APP);
        assert_ready(&w.sync(&spec).await, "Imported");
        assert!(w.the_app(APP).current_version_id.is_none());
    }
);

flavoured!(
    only_writes_are_verified_a_no_op_reads_nothing_more,
    flavour,
    {
        let mut w = World::new(flavour).await;
        let spec = w.spec(json!({}));
        assert_ready(&w.sync(&spec).await, "Imported");
        let verifying = |w: &World| {
            w.standin
                .request_log()
                .iter()
                .filter(|r| r.path.ends_with("/resources/export"))
                .count()
        };
        assert_eq!(verifying(&w), 1, "the import was read back once");
        w.standin.clear_request_log();
        assert_ready(&w.sync(&spec).await, "UpToDate");
        let log = w.standin.request_log();
        assert_eq!(verifying(&w), 0, "{log:?}");
        assert!(
            !log.iter()
                .any(|r| r.path.contains("data_sources") || r.path.contains("data-sources")),
            "{log:?}"
        );
        assert_eq!(log.len(), 2, "a no-op costs two requests: {log:?}");
    }
);
