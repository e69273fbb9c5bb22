//! Commits built without a checkout and pushed without force, over git daemon (receive-pack
//! enabled), smart HTTP (basic auth) and SSH: branch creation from the default branch, no empty
//! commits, a branch that moves during the push, refusals (read-only credentials, hooks, bad
//! branch names, paths outside the repository).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::cache;
use git_fixtures::{GitDaemon, HttpGitServer, SshGitServer, TestRepo};
use tooljet_operator::source::{
    Credentials, FileChange, Planned, Planner, PushOutcome, PushRequest, SourceCache, SourceError,
};

const PASSWORD: &str = "push-password";

fn write(path: &str, text: &str) -> FileChange {
    FileChange::Write {
        path: path.into(),
        bytes: text.as_bytes().to_vec(),
    }
}

fn request(branch: &str, planner: Planner) -> PushRequest {
    PushRequest {
        branch: branch.into(),
        author_name: "ToolJet export".into(),
        author_email: "tooljet@example.com".into(),
        planner,
        max_attempts: 3,
    }
}

/// A planner that always writes these files with this message.
fn fixed(changes: Vec<FileChange>, message: &str) -> Planner {
    let message = message.to_string();
    Arc::new(move |_| {
        Ok(Some(Planned {
            changes: changes.clone(),
            message: message.clone(),
        }))
    })
}

fn seeded_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README.md", "apps");
    repo.commit("initial");
    repo
}

/// Creates a branch from the default branch, makes no empty commit on a re-run, then commits
/// a change on top of the branch; checks the remote's history each time.
async fn create_then_update(repo: &TestRepo, url: &str, creds: &Credentials) {
    let (cache, _dir) = cache();
    let master = repo.served_git(&["rev-parse", "master"]);
    // Files the default branch already holds: the branch is not created for nothing.
    let nothing = cache
        .commit_and_push(
            url,
            creds,
            request(
                "tooljet/dev",
                fixed(vec![write("README.md", "apps")], "Export nothing"),
            ),
        )
        .await
        .expect("nothing to push");
    assert_eq!(
        nothing,
        PushOutcome::Unchanged {
            head: Some(master.clone()),
            branch_exists: false
        }
    );
    assert!(
        repo.served_git(&["branch", "--list", "tooljet/dev"])
            .is_empty()
    );
    let first = cache
        .commit_and_push(
            url,
            creds,
            request(
                "tooljet/dev",
                fixed(vec![write("apps/a.json", "{\"v\":1}")], "Export a"),
            ),
        )
        .await
        .expect("first push");
    let PushOutcome::Pushed {
        commit,
        parent,
        created_branch,
        attempts,
    } = first
    else {
        panic!("expected a push, got {first:?}");
    };
    assert!(created_branch);
    assert_eq!(attempts, 1);
    assert_eq!(
        parent.as_deref(),
        Some(master.as_str()),
        "built on the default branch"
    );
    assert_eq!(commit.author, "ToolJet export");
    assert_eq!(commit.message, "Export a");
    assert_eq!(repo.served_git(&["rev-parse", "tooljet/dev"]), commit.sha);
    assert_eq!(
        repo.served_git(&["show", "tooljet/dev:apps/a.json"]),
        "{\"v\":1}"
    );
    assert_eq!(
        repo.served_git(&["rev-parse", "master"]),
        master,
        "the default branch is untouched"
    );

    // The same files again: no commit.
    let again = cache
        .commit_and_push(
            url,
            creds,
            request(
                "tooljet/dev",
                fixed(vec![write("apps/a.json", "{\"v\":1}")], "Export a"),
            ),
        )
        .await
        .expect("second run");
    assert_eq!(
        again,
        PushOutcome::Unchanged {
            head: Some(commit.sha.clone()),
            branch_exists: true
        }
    );
    assert_eq!(repo.served_git(&["rev-parse", "tooljet/dev"]), commit.sha);

    // A change, with a removal: one commit on top of the previous one.
    let next = cache
        .commit_and_push(
            url,
            creds,
            request(
                "tooljet/dev",
                fixed(
                    vec![
                        FileChange::Remove {
                            path: "apps/a.json".into(),
                        },
                        write("apps/b.json", "{\"v\":2}"),
                    ],
                    "Export b",
                ),
            ),
        )
        .await
        .expect("third push");
    let PushOutcome::Pushed {
        commit: second,
        parent,
        created_branch,
        ..
    } = next
    else {
        panic!("expected a push, got {next:?}");
    };
    assert!(!created_branch);
    assert_eq!(parent.as_deref(), Some(commit.sha.as_str()));
    assert_eq!(
        repo.served_git(&["ls-tree", "-r", "--name-only", "tooljet/dev"]),
        "README.md\napps/b.json"
    );
    assert_eq!(
        repo.served_git(&["rev-list", "--count", "tooljet/dev"]),
        "3"
    );
    assert_eq!(repo.served_git(&["rev-parse", "tooljet/dev"]), second.sha);
}

#[tokio::test]
async fn push_over_git_daemon() {
    let repo = seeded_repo();
    let daemon = GitDaemon::start_writable(repo.base_dir());
    create_then_update(
        &repo,
        &daemon.url(&repo.served_name()),
        &Credentials::Anonymous,
    )
    .await;
}

#[tokio::test]
async fn push_over_smart_http_with_basic_auth() {
    let repo = seeded_repo();
    let server = HttpGitServer::start_with_basic_auth(repo.base_dir(), "writer", PASSWORD);
    let creds = Credentials::Basic {
        username: "writer".into(),
        password: PASSWORD.into(),
    };
    create_then_update(&repo, &server.url(&repo.served_name()), &creds).await;
}

#[tokio::test]
async fn push_over_ssh() {
    let repo = seeded_repo();
    let server = SshGitServer::start();
    let mut data = BTreeMap::new();
    data.insert(
        "identity".to_string(),
        server.private_key().as_bytes().to_vec(),
    );
    data.insert(
        "known_hosts".to_string(),
        server.known_hosts_line().into_bytes(),
    );
    let creds = Credentials::from_secret_data(&data).expect("creds");
    create_then_update(&repo, &server.url(repo.served_path()), &creds).await;
}

#[tokio::test]
async fn an_empty_repository_gets_a_first_commit() {
    let repo = TestRepo::new();
    let (cache, _dir) = cache();
    let out = cache
        .commit_and_push(
            &repo.file_url(),
            &Credentials::Anonymous,
            request("main", fixed(vec![write("a.json", "{}")], "first")),
        )
        .await
        .expect("push");
    assert!(matches!(
        out,
        PushOutcome::Pushed {
            parent: None,
            created_branch: true,
            ..
        }
    ));
    assert_eq!(repo.served_git(&["show", "main:a.json"]), "{}");
}

/// Another developer pushes to the branch after the export fetched it and before it pushes:
/// the push is refused as non-fast-forward, the export is rebuilt on the new head, both commits
/// survive, nothing is forced.
#[tokio::test]
async fn a_branch_that_moves_during_the_push_is_fetched_and_rebuilt() {
    let repo = seeded_repo();
    let daemon = GitDaemon::start_writable(repo.base_dir());
    let url = daemon.url(&repo.served_name());
    let (cache, _dir) = cache();
    let served = Arc::new(repo);
    let calls = Arc::new(AtomicU32::new(0));
    let (r, c) = (served.clone(), calls.clone());
    let others: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let o = others.clone();
    let planner: Planner = Arc::new(move |head| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            // After this attempt's fetch, before its push.
            let sha = r.push_to_served("master", "other.txt", "someone else", "other work");
            assert_ne!(head.head(), Some(sha.as_str()));
            *o.lock().unwrap() = Some(sha);
        }
        Ok(Some(Planned {
            changes: vec![write("apps/a.json", "{}")],
            message: "Export a".into(),
        }))
    });
    let out = cache
        .commit_and_push(&url, &Credentials::Anonymous, request("master", planner))
        .await
        .expect("push after a retry");
    let other = others.lock().unwrap().clone().expect("the other commit");
    let PushOutcome::Pushed {
        commit,
        parent,
        attempts,
        ..
    } = out
    else {
        panic!("expected a push, got {out:?}");
    };
    assert_eq!(attempts, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        parent.as_deref(),
        Some(other.as_str()),
        "built on the other commit"
    );
    assert_eq!(served.served_git(&["rev-parse", "master"]), commit.sha);
    assert_eq!(
        served.served_git(&["ls-tree", "--name-only", "master"]),
        "README.md\napps\nother.txt"
    );
    let log = served.served_git(&["log", "--format=%s", "master"]);
    assert_eq!(log, "Export a\nother work\ninitial");
}

/// A branch that moves before every push: bounded attempts, a clear error, only the others'
/// commits on the remote.
#[tokio::test]
async fn a_branch_that_keeps_moving_is_a_conflict_after_bounded_attempts() {
    let repo = Arc::new(seeded_repo());
    let (cache, _dir) = cache();
    let url = repo.file_url();
    let calls = Arc::new(AtomicU32::new(0));
    let (r, c) = (repo.clone(), calls.clone());
    let planner: Planner = Arc::new(move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        r.push_to_served("master", "other.txt", &format!("work {n}"), "other work");
        Ok(Some(Planned {
            changes: vec![write("apps/a.json", "{}")],
            message: "Export a".into(),
        }))
    });
    let err = cache
        .commit_and_push(&url, &Credentials::Anonymous, request("master", planner))
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, SourceError::PushConflict { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        err.to_string().contains("nothing was force-pushed"),
        "{err}"
    );
    let log = repo.served_git(&["log", "--format=%s", "master"]);
    assert!(!log.contains("Export a"), "{log}");
    assert_eq!(log.lines().count(), 4, "{log}");
}

#[tokio::test]
async fn credentials_without_write_access_push_nothing() {
    let repo = seeded_repo();
    let before = repo.served_git(&["for-each-ref"]);
    let server =
        HttpGitServer::start_read_only_with_basic_auth(repo.base_dir(), "reader", PASSWORD);
    let creds = Credentials::Basic {
        username: "reader".into(),
        password: PASSWORD.into(),
    };
    let (cache, _dir) = cache();
    let err = cache
        .commit_and_push(
            &server.url(&repo.served_name()),
            &creds,
            request("master", fixed(vec![write("a.json", "{}")], "Export")),
        )
        .await
        .expect_err("denied");
    assert!(matches!(err, SourceError::PushDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("write access"), "{err}");
    assert!(!err.to_string().contains(PASSWORD));
    assert_eq!(repo.served_git(&["for-each-ref"]), before, "nothing pushed");

    // git daemon without receive-pack: the same refusal.
    let daemon = GitDaemon::start(repo.base_dir());
    let err = cache
        .commit_and_push(
            &daemon.url(&repo.served_name()),
            &Credentials::Anonymous,
            request("master", fixed(vec![write("a.json", "{}")], "Export")),
        )
        .await
        .expect_err("denied");
    assert!(matches!(err, SourceError::PushDenied { .. }), "{err:?}");
    assert_eq!(repo.served_git(&["for-each-ref"]), before, "nothing pushed");
}

#[tokio::test]
async fn a_hook_that_refuses_is_an_error_and_not_retried() {
    let repo = seeded_repo();
    let hook = repo.served_path().join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = repo.served_git(&["rev-parse", "master"]);
    let (cache, _dir) = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let planner: Planner = Arc::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(Some(Planned {
            changes: vec![write("a.json", "{}")],
            message: "Export".into(),
        }))
    });
    // Over a real server: libgit2's file:// transport writes refs itself and runs no hooks.
    let daemon = GitDaemon::start_writable(repo.base_dir());
    let err = cache
        .commit_and_push(
            &daemon.url(&repo.served_name()),
            &Credentials::Anonymous,
            request("master", planner),
        )
        .await
        .expect_err("rejected");
    assert!(matches!(err, SourceError::PushRejected { .. }), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a refusal is not retried");
    assert_eq!(repo.served_git(&["rev-parse", "master"]), before);
}

#[tokio::test]
async fn bad_branch_names_and_escaping_paths_are_refused_before_any_push() {
    let repo = seeded_repo();
    let before = repo.served_git(&["for-each-ref"]);
    let (cache, _dir) = cache();
    for branch in ["has space", "a..b", "x.lock", ""] {
        let err = cache
            .commit_and_push(
                &repo.file_url(),
                &Credentials::Anonymous,
                request(branch, fixed(vec![write("a.json", "{}")], "Export")),
            )
            .await
            .expect_err("invalid branch");
        assert!(matches!(err, SourceError::InvalidBranch { .. }), "{err:?}");
    }
    for path in ["../a.json", "/etc/a.json", "x/../../a.json"] {
        let err = cache
            .commit_and_push(
                &repo.file_url(),
                &Credentials::Anonymous,
                request("master", fixed(vec![write(path, "{}")], "Export")),
            )
            .await
            .expect_err("escaping path");
        assert!(
            matches!(err, SourceError::PathEscapesRepo { .. }),
            "{err:?}"
        );
    }
    assert_eq!(repo.served_git(&["for-each-ref"]), before, "nothing pushed");
}

/// The push shares the mirror with reads: after a push, resolving the branch sees the new
/// commit without another fetch of it.
#[tokio::test]
async fn a_resolve_after_a_push_sees_the_pushed_commit() {
    use tooljet_operator::source::{GitRef, SourceSpec};
    let repo = seeded_repo();
    let (cache, _dir): (SourceCache, _) = cache();
    let url = repo.file_url();
    let out = cache
        .commit_and_push(
            &url,
            &Credentials::Anonymous,
            request("master", fixed(vec![write("a.json", "{}")], "Export")),
        )
        .await
        .expect("push");
    let PushOutcome::Pushed { commit, .. } = out else {
        panic!("{out:?}");
    };
    let resolved = cache
        .resolve(
            &SourceSpec {
                url: url.clone(),
                git_ref: GitRef::Branch("master".into()),
            },
            &Credentials::Anonymous,
            None,
        )
        .await
        .expect("resolve");
    assert_eq!(resolved.commit.sha, commit.sha);
    assert!(
        !resolved.fetched,
        "the pushed commit is already in the mirror"
    );
}
