//! Every ref kind over every transport (file, git daemon, smart HTTP with basic auth, SSH), and
//! the failures of each transport: authentication, host keys, missing repositories.

use crate::common;

use std::collections::BTreeMap;

use common::{author, cache, tooljet_repo};
use git_fixtures::tooljet::CREDIT_CARD;
use git_fixtures::{GitDaemon, HttpGitServer, SshGitServer, TestRepo};
use tooljet_operator::source::{
    AppLocator, Credentials, GitRef, KnownHosts, SourceError, SourceSpec,
};

const PASSWORD: &str = "correct-horse-battery-staple";

fn spec(url: &str, git_ref: GitRef) -> SourceSpec {
    SourceSpec {
        url: url.to_string(),
        git_ref,
    }
}

fn ssh_creds(server: &SshGitServer, known_hosts: &str) -> Credentials {
    let mut data = BTreeMap::new();
    data.insert(
        "identity".to_string(),
        server.private_key().as_bytes().to_vec(),
    );
    data.insert("known_hosts".to_string(), known_hosts.as_bytes().to_vec());
    Credentials::from_secret_data(&data).unwrap()
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: user.into(),
        password: password.into(),
    }
}

/// Branch, lightweight tag, annotated tag, second branch, pinned commit; no-op re-check;
/// unknown branch/tag/commit; reading the app.
async fn every_ref_kind(repo: &TestRepo, url: &str, creds: &Credentials) {
    let c1 = repo.head();
    repo.tag("v1");
    repo.annotated_tag("v1-annotated", "release v1");
    repo.branch("feature");
    repo.write("notes.txt", "feature work");
    let c2 = repo.commit_as("feature work", &author(2));
    repo.checkout("master");
    repo.write("README.md", "hello");
    let c3 = repo.commit_as("readme", &author(3));

    let (cache, _dir) = cache();
    let r = cache
        .resolve(&spec(url, GitRef::Branch("master".into())), creds, None)
        .await
        .unwrap();
    assert_eq!(r.commit.sha, c3);
    assert_eq!(r.commit.message, "readme");
    assert_eq!(r.commit.author, "Author 3");
    assert_eq!(r.commit.author_email, "author3@example.com");
    assert_eq!(r.commit.date.to_string(), "2026-01-03T10:00:00Z");
    assert!(r.fetched && r.moved && !r.force_pushed);
    let after_first = cache.stats(url);
    assert_eq!((after_first.checks, after_first.fetches), (1, 1));
    assert!(after_first.objects_received > 0);

    // Nothing new: one ref listing, no fetch, no objects.
    let r = cache
        .resolve(
            &spec(url, GitRef::Branch("master".into())),
            creds,
            Some(&c3),
        )
        .await
        .unwrap();
    assert!(!r.fetched && !r.moved && !r.force_pushed);
    let s = cache.stats(url);
    assert_eq!(s.checks, 2);
    assert_eq!(s.fetches, 1);
    assert_eq!(s.objects_received, after_first.objects_received);

    for tag in ["v1", "v1-annotated"] {
        let r = cache
            .resolve(&spec(url, GitRef::Tag(tag.into())), creds, None)
            .await
            .unwrap();
        assert_eq!(r.commit.sha, c1, "tag {tag}");
    }
    let r = cache
        .resolve(&spec(url, GitRef::Branch("feature".into())), creds, None)
        .await
        .unwrap();
    assert_eq!(r.commit.sha, c2);

    // A pinned commit already in the mirror: no network at all.
    let before = cache.stats(url);
    let r = cache
        .resolve(&spec(url, GitRef::Commit(c1.clone())), creds, None)
        .await
        .unwrap();
    assert_eq!(r.commit.sha, c1);
    assert!(!r.fetched);
    assert_eq!(cache.stats(url), before);

    let app = cache
        .read_app(url, creds, &c3, &AppLocator::ByName(CREDIT_CARD.0.into()))
        .await
        .unwrap();
    assert_eq!(app.bundle_bytes, CREDIT_CARD.1);
    assert_eq!(app.last_change.sha, c1);

    match cache
        .resolve(&spec(url, GitRef::Branch("nope".into())), creds, None)
        .await
    {
        Err(SourceError::RefNotFound {
            kind: "branch",
            name,
            available,
            ..
        }) => {
            assert_eq!(name, "nope");
            assert_eq!(available, vec!["feature".to_string(), "master".to_string()]);
        }
        other => panic!("unknown branch: {other:?}"),
    }
    match cache
        .resolve(&spec(url, GitRef::Tag("v9".into())), creds, None)
        .await
    {
        Err(SourceError::RefNotFound {
            kind: "tag",
            available,
            ..
        }) => {
            assert!(available.contains(&"v1".to_string()), "{available:?}");
        }
        other => panic!("unknown tag: {other:?}"),
    }
    let missing = "0123456789abcdef0123456789abcdef01234567";
    match cache
        .resolve(&spec(url, GitRef::Commit(missing.into())), creds, None)
        .await
    {
        Err(e @ SourceError::CommitNotFound { .. }) => assert!(e.to_string().contains(missing)),
        other => panic!("unknown commit: {other:?}"),
    }
    match cache
        .resolve(&spec(url, GitRef::Commit("abc123".into())), creds, None)
        .await
    {
        Err(SourceError::InvalidCommitId { .. }) => {}
        other => panic!("short sha: {other:?}"),
    }
}

#[tokio::test]
async fn file_transport_every_ref_kind() {
    let (repo, _) = tooljet_repo();
    every_ref_kind(&repo, &repo.file_url(), &Credentials::Anonymous).await;
}

#[tokio::test]
async fn git_daemon_every_ref_kind() {
    let (repo, _) = tooljet_repo();
    let daemon = GitDaemon::start(repo.base_dir());
    every_ref_kind(
        &repo,
        &daemon.url(&repo.served_name()),
        &Credentials::Anonymous,
    )
    .await;
}

#[tokio::test]
async fn http_basic_auth_every_ref_kind() {
    let (repo, _) = tooljet_repo();
    let server = HttpGitServer::start_with_basic_auth(repo.base_dir(), "alice", PASSWORD);
    let url = server.url(&repo.served_name());
    every_ref_kind(&repo, &url, &basic("alice", PASSWORD)).await;
}

#[tokio::test]
async fn http_token_from_secret_data() {
    let (repo, sha) = tooljet_repo();
    let server = HttpGitServer::start_with_basic_auth(repo.base_dir(), "x-access-token", PASSWORD);
    let mut data = BTreeMap::new();
    data.insert("token".to_string(), PASSWORD.as_bytes().to_vec());
    let creds = Credentials::from_secret_data(&data).unwrap();
    let (cache, _dir) = cache();
    let url = server.url(&repo.served_name());
    let r = cache
        .resolve(&spec(&url, GitRef::Branch("master".into())), &creds, None)
        .await
        .unwrap();
    assert_eq!(r.commit.sha, sha);
}

#[tokio::test]
async fn ssh_every_ref_kind() {
    let (repo, _) = tooljet_repo();
    let server = SshGitServer::start();
    let url = server.url(repo.served_path());
    let creds = ssh_creds(&server, &server.known_hosts_line());
    every_ref_kind(&repo, &url, &creds).await;
}

#[tokio::test]
async fn ssh_key_with_passphrase() {
    let (repo, sha) = tooljet_repo();
    let server = SshGitServer::start_with_key_passphrase(Some("open sesame"));
    let mut data = BTreeMap::new();
    data.insert(
        "identity".to_string(),
        server.private_key().as_bytes().to_vec(),
    );
    data.insert("passphrase".to_string(), b"open sesame".to_vec());
    data.insert(
        "known_hosts".to_string(),
        server.known_hosts_line().into_bytes(),
    );
    let creds = Credentials::from_secret_data(&data).unwrap();
    let (cache, _dir) = cache();
    let url = server.url(repo.served_path());
    let r = cache
        .resolve(&spec(&url, GitRef::Branch("master".into())), &creds, None)
        .await;
    assert_eq!(
        r.map(|r| r.commit.sha)
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log())),
        sha
    );

    data.insert("passphrase".to_string(), b"wrong phrase".to_vec());
    let creds = Credentials::from_secret_data(&data).unwrap();
    let (fresh, _dir2) = common::cache();
    let err = fresh
        .resolve(&spec(&url, GitRef::Branch("master".into())), &creds, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong phrase"));
}

#[tokio::test]
async fn http_wrong_password_and_no_credentials() {
    let (repo, _) = tooljet_repo();
    let server = HttpGitServer::start_with_basic_auth(repo.base_dir(), "alice", PASSWORD);
    let url = server.url(&repo.served_name());
    let (cache, _dir) = cache();
    let wrong = basic("alice", "wrong-password-123");
    let err = cache
        .resolve(&spec(&url, GitRef::Branch("master".into())), &wrong, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {wrong:?}");
    assert!(
        !shown.contains("wrong-password-123"),
        "secret leaked: {shown}"
    );
    // libgit2 retries forever on its own; we give up after the first refusal.
    assert!(
        server.unauthorized() <= 3,
        "{} refused requests",
        server.unauthorized()
    );

    let err = cache
        .resolve(
            &spec(&url, GitRef::Branch("master".into())),
            &Credentials::Anonymous,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::AuthenticationRequired { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn ssh_wrong_key_fails_authentication() {
    let (repo, _) = tooljet_repo();
    let server = SshGitServer::start();
    let (other_key, _) = SshGitServer::keygen(None);
    let mut data = BTreeMap::new();
    data.insert("identity".to_string(), other_key.clone().into_bytes());
    data.insert(
        "known_hosts".to_string(),
        server.known_hosts_line().into_bytes(),
    );
    let creds = Credentials::from_secret_data(&data).unwrap();
    let (cache, _dir) = cache();
    let err = cache
        .resolve(
            &spec(
                &server.url(repo.served_path()),
                GitRef::Branch("master".into()),
            ),
            &creds,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {creds:?}");
    let key_body = other_key.lines().nth(1).unwrap();
    assert!(!shown.contains(key_body), "key leaked: {shown}");
}

#[tokio::test]
async fn ssh_unknown_and_mismatched_host_keys_are_refused() {
    let (repo, _) = tooljet_repo();
    let server = SshGitServer::start();
    let url = server.url(repo.served_path());
    let (_, other_host_key) = SshGitServer::keygen(None);
    let (cache, _dir) = cache();
    let master = spec(&url, GitRef::Branch("master".into()));

    // known_hosts knows other hosts only.
    let creds = ssh_creds(&server, &format!("git.example.com {other_host_key}"));
    let err = cache.resolve(&master, &creds, None).await.unwrap_err();
    assert!(matches!(err, SourceError::HostKeyUnknown { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("[127.0.0.1]:{}", server.port())),
        "{err}"
    );

    // known_hosts has another key for this host.
    let creds = ssh_creds(
        &server,
        &format!("[127.0.0.1]:{} {other_host_key}", server.port()),
    );
    let err = cache.resolve(&master, &creds, None).await.unwrap_err();
    assert!(
        matches!(err, SourceError::HostKeyMismatch { .. }),
        "{err:?}"
    );

    // No known_hosts at all: verification is the default, so this is refused too.
    let mut data = BTreeMap::new();
    data.insert(
        "identity".to_string(),
        server.private_key().as_bytes().to_vec(),
    );
    let creds = Credentials::from_secret_data(&data).unwrap();
    let err = cache.resolve(&master, &creds, None).await.unwrap_err();
    assert!(matches!(err, SourceError::HostKeyUnknown { .. }), "{err:?}");
    assert_eq!(cache.stats(&url).fetches, 0);
}

#[test]
fn known_hosts_line_of_fixture_parses() {
    let server = SshGitServer::start();
    assert!(KnownHosts::parse(&server.known_hosts_line()).is_ok());
}

#[tokio::test]
async fn missing_repository_on_every_transport() {
    let (repo, _) = tooljet_repo();
    let daemon = GitDaemon::start(repo.base_dir());
    let http = HttpGitServer::start(repo.base_dir());
    let ssh = SshGitServer::start();
    let (cache, _dir) = cache();
    let ssh_creds = ssh_creds(&ssh, &ssh.known_hosts_line());
    let cases = [
        (
            format!("file://{}/nope.git", repo.base_dir().display()),
            Credentials::Anonymous,
        ),
        (daemon.url("nope.git"), Credentials::Anonymous),
        (http.url("nope.git"), Credentials::Anonymous),
        (ssh.url(&repo.base_dir().join("nope.git")), ssh_creds),
    ];
    for (url, creds) in cases {
        let err = cache
            .resolve(&spec(&url, GitRef::Branch("master".into())), &creds, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::RemoteUnavailable { .. }),
            "{url}: {err:?}"
        );
        eprintln!("{err}");
    }
}

/// A commit no ref advertises: found when the server allows any sha in `want`, else a clear error.
#[tokio::test]
async fn unadvertised_commit_needs_server_permission() {
    let (repo, _) = tooljet_repo();
    repo.write("orphan.txt", "soon unreachable");
    let hidden = repo.commit("to be dropped");
    repo.reset_hard("HEAD~1");
    let daemon = GitDaemon::start(repo.base_dir());
    let http = HttpGitServer::start(repo.base_dir());
    for url in [
        daemon.url(&repo.served_name()),
        http.url(&repo.served_name()),
    ] {
        repo.served_config("uploadpack.allowAnySHA1InWant", "false");
        let (cache, _dir) = cache();
        let pinned = spec(&url, GitRef::Commit(hidden.clone()));
        let err = cache
            .resolve(&pinned, &Credentials::Anonymous, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::CommitNotFound { .. }),
            "{url}: {err:?}"
        );

        repo.served_config("uploadpack.allowAnySHA1InWant", "true");
        let r = cache
            .resolve(&pinned, &Credentials::Anonymous, None)
            .await
            .unwrap();
        assert_eq!(r.commit.sha, hidden);
        assert!(r.fetched);
    }
}
