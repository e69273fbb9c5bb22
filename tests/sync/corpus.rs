//! Bad input corpus (issue 9, item 3): AppImports that pass the schema but are wrong, and
//! repository contents that are broken or hostile. Each case is a row of `tests/corpus/cases.tsv`
//! with its files under `tests/corpus/repos/<case>/` (or made at test time when too big or not
//! storable in this repository). Each must end not ready, with the expected reason, without a
//! panic, and with nothing created in ToolJet.

use std::path::{Path, PathBuf};

use git_fixtures::TestRepo;
use git_fixtures::tooljet::CREDIT_CARD;
use serde_json::json;
use tooljet_operator::api::{AppImportSpec, ToolJetInstanceSpec};
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::SyncState;
use tooljet_operator::sync::{Engine, ImportKey, Mode, NoCheckpoint, SyncRequest};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::StandIn;

const API_KEY: &str = "corpus-admin-key";
const BROKEN: &str = "Broken App";

struct Case {
    name: String,
    base: String,
    spec: serde_json::Value,
    reason: String,
    what: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join("cases.tsv")).expect("cases.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 5, "malformed row: {l:?}");
            Case {
                name: cols[0].into(),
                base: cols[1].into(),
                spec: serde_json::from_str(cols[2]).expect("spec column is JSON"),
                reason: cols[3].into(),
                what: cols[4].into(),
            }
        })
        .collect()
}

fn meta(name: &str) -> String {
    json!({"11111111-aaaa-bbbb-cccc-000000000001": {
        "gitAppName": name, "gitVersionName": "v1", "lastCommitMessage": "push",
        "lastCommitUser": "ada", "lastpushDate": "2026-01-01T12:00:00.000Z"}})
    .to_string()
}

fn small_bundle() -> String {
    json!({"app": [{"definition": {"appV2": {"id": "00000000-0000-0000-0000-000000000001",
        "name": BROKEN, "type": "front-end"}}}], "tooljet_version": "3.5.11"})
    .to_string()
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// Contents too big, or not storable in this repository, made at test time.
fn generate(repo: &TestRepo, what: &str) {
    let work = repo.work_dir();
    match what {
        "deep-bundle" => {
            let depth = 100_000;
            repo.write(".meta/meta.json", meta(BROKEN));
            repo.write(
                "Broken App/v1.json",
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            );
        }
        "deep-meta" => {
            let depth = 100_000;
            repo.write(
                ".meta/meta.json",
                format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)),
            );
            repo.write("Broken App/v1.json", small_bundle());
        }
        "huge-bundle" => {
            repo.write(".meta/meta.json", meta(BROKEN));
            let filler = "a".repeat(51 * 1024 * 1024);
            repo.write(
                "Broken App/v1.json",
                format!(r#"{{"app":[{{"definition":{{"appV2":{{"name":"{filler}"}}}}}}]}}"#),
            );
        }
        "symlink-bundle" => {
            repo.write(".meta/meta.json", meta(BROKEN));
            repo.symlink("Broken App/v1.json", "/etc/passwd");
        }
        "symlink-app-dir" => {
            repo.write(".meta/meta.json", meta(BROKEN));
            repo.write("real/v1.json", small_bundle());
            repo.symlink("Broken App", "real");
        }
        "symlink-meta-dir" => {
            repo.write("real-meta/meta.json", meta(BROKEN));
            repo.symlink(".meta", "real-meta");
            repo.write("Broken App/v1.json", small_bundle());
        }
        "submodule" => {
            repo.write(".meta/meta.json", meta(BROKEN));
            let sub = work.join("Broken App");
            std::fs::create_dir_all(&sub).expect("mkdir");
            git(&sub, &["init", "-q", "-b", "master"]);
            std::fs::write(sub.join("v1.json"), small_bundle()).expect("write");
            git(&sub, &["add", "-A"]);
            git(&sub, &["commit", "-q", "-m", "inner"]);
        }
        "non-utf8-name" => {
            use std::os::unix::ffi::OsStrExt;
            repo.write(".meta/meta.json", meta("Caf\u{e9} App"));
            let dir = work.join(std::ffi::OsStr::from_bytes(b"Caf\xe9 App"));
            std::fs::create_dir_all(&dir).expect("mkdir latin-1 name");
            std::fs::write(dir.join("v1.json"), small_bundle()).expect("write");
        }
        other => panic!("unknown generator {other:?}"),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read corpus dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
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

/// The repository of one case, committed and published.
fn build_repo(case: &Case) -> TestRepo {
    let repo = TestRepo::new();
    match case.base.as_str() {
        "gitsync" => repo.git_sync_write("app-1", CREDIT_CARD.0, "v1", CREDIT_CARD.1),
        "empty" => {}
        gen_ => generate(
            &repo,
            gen_.strip_prefix("gen:")
                .expect("base is gitsync, empty or gen:"),
        ),
    }
    let overlay = corpus_dir().join("repos").join(&case.name);
    if overlay.is_dir() {
        copy_tree(&overlay, repo.work_dir());
    }
    repo.commit(&case.name);
    repo.publish();
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_with_its_reason_and_nothing_written() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cases = cases();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let standin = StandIn::builder()
        .admin_api_key(API_KEY)
        .start()
        .await
        .expect("stand-in starts");
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let engine = std::sync::Arc::new(Engine::new(SourceCache::new(CacheConfig {
        dir: cache_dir.path().to_owned(),
        ..CacheConfig::default()
    })));
    let mut config = ClientConfig::new(standin.base_url(), Auth::AdminApiKey(API_KEY.into()));
    config.workspace_id = Some(standin.workspace_id().to_owned());
    let client = std::sync::Arc::new(ToolJetClient::new(config).expect("client"));
    let instance: ToolJetInstanceSpec = serde_json::from_value(json!({
        "url": standin.base_url(),
        "environment": "production",
        "workspaceId": standin.workspace_id(),
        "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}
    }))
    .expect("instance spec");

    let mut failures = Vec::new();
    for case in &cases {
        let repo = build_repo(case);
        let app = if case.base == "gitsync" {
            CREDIT_CARD.0
        } else {
            BROKEN
        };
        let mut spec = json!({
            "environment": "production",
            "source": {"url": repo.file_url(), "ref": {"branch": "master"}, "app": app},
        });
        merge(&mut spec, case.spec.clone());
        let spec: AppImportSpec = match serde_json::from_value(spec) {
            Ok(s) => s,
            Err(e) => panic!("{}: the spec column does not make a spec: {e}", case.name),
        };
        standin.clear_request_log();
        let (engine, client, instance) = (engine.clone(), client.clone(), instance.clone());
        let key = ImportKey::new("corpus", case.name.clone());
        // A task of its own, so a panic is caught and reported per case.
        let run = tokio::spawn(async move {
            engine
                .sync(
                    SyncRequest {
                        key: key.clone(),
                        spec: &spec,
                        instance: &instance,
                        generation: Some(1),
                        approve: None,
                        force_pull: None,
                        git_credentials: Credentials::Anonymous,
                        state: SyncState::default(),
                    },
                    &client,
                    Mode::Apply,
                    &NoCheckpoint,
                )
                .await
        })
        .await;
        let outcome = match run {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: the engine panicked: {e}", case.name));
                continue;
            }
        };
        let r = &outcome.report;
        let accepted_writes: Vec<_> = standin
            .request_log()
            .into_iter()
            .filter(|q| {
                q.method != "GET"
                    && q.status.is_some_and(|s| (200..300).contains(&s))
                    && !q.path.starts_with("/api/authenticate")
            })
            .collect();
        let line = format!(
            "| {} | {} | {} | {} |",
            case.name, case.what, r.reason, r.message
        );
        eprintln!("{line}");
        if r.ready() || r.reason != case.reason {
            failures.push(format!(
                "{}: expected not ready with {}, got ready={} {} ({})",
                case.name,
                case.reason,
                r.ready(),
                r.reason,
                r.message
            ));
        }
        if !accepted_writes.is_empty() || !standin.apps().is_empty() {
            failures.push(format!(
                "{}: ToolJet was written to: {accepted_writes:?}",
                case.name
            ));
        }
        if r.message.trim().is_empty() {
            failures.push(format!("{}: no message", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
