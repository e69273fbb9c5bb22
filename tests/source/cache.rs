//! The shared mirror cache: coalesced fetches, force-pushes, corrupt mirrors, gc, secrets.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{author, cache, cache_with_ttl, tooljet_repo};
use git_fixtures::HttpGitServer;
use git_fixtures::tooljet::CREDIT_CARD;
use tooljet_operator::source::{
    AppLocator, CacheConfig, Credentials, GitRef, SourceCache, SourceError, SourceSpec,
};

fn master(url: &str) -> SourceSpec {
    SourceSpec {
        url: url.to_string(),
        git_ref: GitRef::Branch("master".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_resolves_fetch_once() {
    let (repo, sha) = tooljet_repo();
    let server = HttpGitServer::start(repo.base_dir());
    let url = server.url(&repo.served_name());
    let (cache, _dir) = cache();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let spec = master(&url);
            tokio::spawn(async move { cache.resolve(&spec, &Credentials::Anonymous, None).await })
        })
        .collect();
    let mut fetched = 0;
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.commit.sha, sha);
        fetched += r.fetched as u32;
    }
    assert_eq!(fetched, 1);
    let stats = cache.stats(&url);
    assert_eq!(stats.fetches, 1, "{stats:?}");
    // Waiters reuse the listing made after they asked: far fewer than 50 connections.
    assert!(stats.checks < 50, "{stats:?}");
    assert_eq!(
        server.upload_pack_posts(),
        1,
        "exactly one object negotiation on the server"
    );

    // Nothing new: the next check transfers nothing.
    let posts = server.upload_pack_posts();
    let r = cache
        .resolve(&master(&url), &Credentials::Anonymous, Some(&sha))
        .await
        .unwrap();
    assert!(!r.fetched && !r.moved);
    assert_eq!(server.upload_pack_posts(), posts);
    assert_eq!(cache.stats(&url).objects_received, stats.objects_received);
}

#[tokio::test]
async fn force_push_is_followed_and_reported() {
    let (repo, first) = tooljet_repo();
    repo.write("a.txt", "a");
    let second = repo.commit_as("second", &author(2));
    let (cache, _dir) = cache();
    let url = repo.file_url();
    let anon = &Credentials::Anonymous;

    let r = cache
        .resolve(&master(&url), anon, Some(&first))
        .await
        .unwrap();
    assert_eq!(r.commit.sha, second);
    assert!(
        r.moved && !r.force_pushed,
        "fast-forward is not a force-push"
    );

    repo.reset_hard("HEAD~1");
    repo.write("b.txt", "rewritten");
    let rewritten = repo.commit_as("rewritten history", &author(3));
    let r = cache
        .resolve(&master(&url), anon, Some(&second))
        .await
        .unwrap();
    assert_eq!(r.commit.sha, rewritten);
    assert!(r.moved && r.force_pushed && r.fetched);

    // Moved back to a commit the mirror already has: no fetch, still a force-push.
    repo.reset_hard(&first);
    let r = cache
        .resolve(&master(&url), anon, Some(&rewritten))
        .await
        .unwrap();
    assert_eq!(r.commit.sha, first);
    assert!(r.force_pushed && !r.fetched);
}

#[tokio::test]
async fn corrupt_mirror_is_detected_and_recloned() {
    let (repo, sha) = tooljet_repo();
    let (cache, _dir) = cache();
    let url = repo.file_url();
    let anon = &Credentials::Anonymous;
    cache.resolve(&master(&url), anon, None).await.unwrap();
    let mirror = cache.mirror_path(&url, anon);
    // Damage every object file (packs and loose objects) in place.
    let mut damaged = 0;
    for entry in walk(&mirror.join("objects")) {
        if entry.is_file() {
            let len = std::fs::metadata(&entry).unwrap().len() as usize;
            std::fs::write(&entry, vec![0x5au8; len.max(1)]).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    let r = cache
        .resolve(&master(&url), anon, Some(&sha))
        .await
        .unwrap();
    assert_eq!(r.commit.sha, sha);
    assert!(r.fetched);
    assert_eq!(cache.stats(&url).reclones, 1);
    let app = cache
        .read_app(&url, anon, &sha, &AppLocator::ByName(CREDIT_CARD.0.into()))
        .await
        .unwrap();
    assert_eq!(app.bundle_bytes, CREDIT_CARD.1);

    // Not a repository at all any more.
    std::fs::remove_dir_all(mirror.join("refs")).unwrap();
    std::fs::write(mirror.join("HEAD"), "garbage").unwrap();
    let r = cache
        .resolve(&master(&url), anon, Some(&sha))
        .await
        .unwrap();
    assert_eq!(r.commit.sha, sha);
    assert_eq!(cache.stats(&url).reclones, 2);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn gc_removes_unused_mirrors_only() {
    let (repo, sha) = tooljet_repo();
    let (other, _) = tooljet_repo();
    let (cache, _dir) = cache_with_ttl(Duration::from_secs(3600));
    let anon = &Credentials::Anonymous;
    cache
        .resolve(&master(&repo.file_url()), anon, None)
        .await
        .unwrap();
    cache
        .resolve(&master(&other.file_url()), anon, None)
        .await
        .unwrap();
    let old = cache.mirror_path(&repo.file_url(), anon);
    let fresh = cache.mirror_path(&other.file_url(), anon);
    assert!(old.is_dir() && fresh.is_dir());
    std::fs::File::options()
        .write(true)
        .open(old.join("tooljet-operator-last-used"))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();

    let removed = cache.gc().await.unwrap();
    assert_eq!(removed, vec![old.clone()]);
    assert!(!old.exists() && fresh.is_dir());

    // A removed mirror comes back on the next use.
    let r = cache
        .resolve(&master(&repo.file_url()), anon, Some(&sha))
        .await
        .unwrap();
    assert!(r.fetched && old.is_dir());
}

/// A resolve that finds nothing new writes nothing to the mirror: no ref rewritten (a lock file
/// and a rename each time), and the mark gc reads at most once a minute (gc allows for the lag).
#[tokio::test]
async fn a_resolve_with_nothing_new_writes_nothing_to_the_mirror() {
    use std::os::unix::fs::MetadataExt;
    let (repo, sha) = tooljet_repo();
    let (cache, _dir) = cache_with_ttl(Duration::from_secs(3600));
    let anon = &Credentials::Anonymous;
    let url = repo.file_url();
    cache.resolve(&master(&url), anon, None).await.unwrap();
    let mirror = cache.mirror_path(&url, anon);
    let branch = mirror.join("refs/heads/master");
    let marker = mirror.join("tooljet-operator-last-used");
    let inode = std::fs::metadata(&branch).unwrap().ino();
    let half_an_hour_ago = SystemTime::now() - Duration::from_secs(1800);
    std::fs::File::options()
        .write(true)
        .open(&marker)
        .unwrap()
        .set_modified(half_an_hour_ago)
        .unwrap();
    let r = cache
        .resolve(&master(&url), anon, Some(&sha))
        .await
        .unwrap();
    assert!(!r.moved && !r.fetched);
    assert_eq!(
        std::fs::metadata(&branch).unwrap().ino(),
        inode,
        "ref rewritten"
    );
    let marked = std::fs::metadata(&marker).unwrap().modified().unwrap();
    assert_eq!(marked, half_an_hour_ago, "marked again within the minute");
    assert!(
        cache.gc().await.unwrap().is_empty(),
        "a mirror in use is kept"
    );

    // The remote moved back to a commit the mirror has: the branch follows it.
    repo.write("README.md", "two");
    let second = repo.commit("two");
    repo.publish();
    cache
        .resolve(&master(&url), anon, Some(&sha))
        .await
        .unwrap();
    repo.reset_hard(&sha);
    repo.publish();
    let r = cache
        .resolve(&master(&url), anon, Some(&second))
        .await
        .unwrap();
    assert_eq!(r.commit.sha, sha);
    let git = git2::Repository::open_bare(&mirror).unwrap();
    assert_eq!(
        git.refname_to_id("refs/heads/master").unwrap().to_string(),
        sha
    );
}

#[tokio::test]
async fn mirrors_are_per_credential_identity_and_hold_no_secret() {
    let (repo, _) = tooljet_repo();
    let server = HttpGitServer::start_with_basic_auth(repo.base_dir(), "alice", "pa55-w0rd-xyz");
    let url = server.url(&repo.served_name());
    let (cache, dir) = cache();
    let good = Credentials::Basic {
        username: "alice".into(),
        password: "pa55-w0rd-xyz".into(),
    };
    let wrong = Credentials::Basic {
        username: "alice".into(),
        password: "not-the-password".into(),
    };
    let r = cache.resolve(&master(&url), &good, None).await.unwrap();
    assert_ne!(
        cache.mirror_path(&url, &good),
        cache.mirror_path(&url, &wrong)
    );
    // A wrong secret cannot read what the right one fetched, even for a commit in the cache.
    let pinned = SourceSpec {
        url: url.clone(),
        git_ref: GitRef::Commit(r.commit.sha.clone()),
    };
    let err = cache.resolve(&pinned, &wrong, None).await.unwrap_err();
    assert!(
        matches!(err, SourceError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    // Nothing on disk holds the password or the URL's port in clear.
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("pa55-w0rd-xyz"),
            "{} holds the password",
            file.display()
        );
        assert!(
            !text.contains("alice"),
            "{} holds the username",
            file.display()
        );
    }
}

#[test]
fn credentials_from_secret_data_and_redaction() {
    let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let c = Credentials::from_secret_data(&data(&[
        ("username", "bob"),
        ("password", "hunter2-secret"),
    ]))
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        shown.contains("bob") && !shown.contains("hunter2-secret"),
        "{shown}"
    );
    assert_eq!(c.redact("oops hunter2-secret here"), "oops <redacted> here");

    let c = Credentials::from_secret_data(&data(&[("token", "ghp_tokenvalue")])).unwrap();
    assert!(matches!(&c, Credentials::Token { username, .. } if username == "x-access-token"));
    assert!(!format!("{c:?}").contains("ghp_tokenvalue"));

    let c = Credentials::from_secret_data(&data(&[
        ("identity", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretkeybody\n-----END OPENSSH PRIVATE KEY-----\n"),
        ("passphrase", "pass-phrase-1"),
        ("known_hosts", "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"),
    ]))
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("secretkeybody") && !shown.contains("pass-phrase-1"),
        "{shown}"
    );

    assert!(matches!(
        Credentials::from_secret_data(&BTreeMap::new()).unwrap(),
        Credentials::Anonymous
    ));
    for bad in [
        &[("username", "bob")][..],
        &[("password", "x")][..],
        &[("known_hosts", "bad line")][..],
    ] {
        let err = Credentials::from_secret_data(&data(bad)).unwrap_err();
        assert!(
            matches!(err, SourceError::InvalidCredentials { .. }),
            "{err:?}"
        );
    }
    let mut non_utf8 = BTreeMap::new();
    non_utf8.insert("token".to_string(), vec![0xff, 0xfe]);
    assert!(Credentials::from_secret_data(&non_utf8).is_err());
}

#[tokio::test]
async fn periodic_gc_removes_an_expired_mirror() {
    let (repo, _) = tooljet_repo();
    let (cache, _dir) = cache_with_ttl(Duration::from_millis(1));
    let anon = &Credentials::Anonymous;
    cache
        .resolve(&master(&repo.file_url()), anon, None)
        .await
        .unwrap();
    let path = cache.mirror_path(&repo.file_url(), anon);
    assert!(path.is_dir());
    let task = cache.spawn_gc(Duration::from_millis(50));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while path.exists() {
        assert!(std::time::Instant::now() < deadline, "mirror not collected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}

/// The controller's window: the many AppImports of one repository share one ref listing, and a
/// push announced by a webhook (or an explicit request) is seen at once.
#[tokio::test]
async fn ref_listings_are_reused_within_the_window_until_a_push_is_announced() {
    let repo = git_fixtures::TestRepo::new();
    repo.write("README.md", "one");
    let first_sha = repo.commit("one");
    repo.publish();
    let url = repo.file_url();
    let spec = SourceSpec {
        url: url.clone(),
        git_ref: GitRef::Branch("master".into()),
    };
    let creds = Credentials::Anonymous;

    // Default: no reuse, every resolve lists the refs.
    let (plain, _plain_dir) = common::cache();
    for _ in 0..2 {
        plain.resolve(&spec, &creds, None).await.expect("resolve");
    }
    assert_eq!(plain.stats(&url).checks, 2);

    let dir = tempfile::tempdir().expect("tempdir");
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().to_owned(),
        reuse_ref_checks: std::time::Duration::from_secs(3600),
        ..CacheConfig::default()
    });
    let a = cache.resolve(&spec, &creds, None).await.expect("resolve");
    let b = cache
        .resolve(&spec, &creds, Some(&a.commit.sha))
        .await
        .expect("resolve");
    assert_eq!(
        (a.commit.sha.as_str(), b.commit.sha.as_str()),
        (first_sha.as_str(), first_sha.as_str())
    );
    assert_eq!(
        cache.stats(&url).checks,
        1,
        "the second resolve reused the listing"
    );

    repo.write("README.md", "two");
    let second_sha = repo.commit("two");
    repo.publish();
    let stale = cache
        .resolve(&spec, &creds, Some(&first_sha))
        .await
        .expect("resolve");
    assert_eq!(
        stale.commit.sha, first_sha,
        "inside the window the push is not looked for"
    );
    cache.forget_ref_checks(&url);
    let fresh = cache
        .resolve(&spec, &creds, Some(&first_sha))
        .await
        .expect("resolve");
    assert_eq!(
        fresh.commit.sha, second_sha,
        "an announced push is seen at once"
    );
    assert!(fresh.moved);
    assert_eq!(cache.stats(&url).checks, 2);
}

/// The command line's run: the first listing of a repository answers every resolve of the run,
/// of any branch or tag, and the refs the run announced come in one fetch. A second run (a new
/// cache over the same directory) with nothing new lists once and fetches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_lists_a_repository_once_and_fetches_it_once() {
    let repo = git_fixtures::TestRepo::new();
    repo.write("README.md", "one");
    let master_sha = repo.commit("one");
    repo.tag("v1");
    repo.branch("feature");
    repo.checkout("feature");
    repo.write("README.md", "feature");
    let feature_sha = repo.commit("feature");
    repo.checkout("master");
    repo.publish();
    let server = HttpGitServer::start(repo.base_dir());
    let url = server.url(&repo.served_name());
    let specs: Vec<SourceSpec> = [
        GitRef::Branch("master".into()),
        GitRef::Branch("feature".into()),
        GitRef::Tag("v1".into()),
    ]
    .into_iter()
    .map(|git_ref| SourceSpec {
        url: url.clone(),
        git_ref,
    })
    .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        SourceCache::new(CacheConfig {
            dir: dir.path().to_owned(),
            one_listing_per_run: true,
            ..CacheConfig::default()
        })
    };
    let resolve_all = |cache: SourceCache| {
        let specs = specs.clone();
        async move {
            cache.expect_refs(&specs);
            // 30 AppImports over the three refs, ten at a time, as a run's waves would.
            let results: Vec<String> = futures::stream::iter((0..30).map(|i| specs[i % 3].clone()))
                .map(|spec| {
                    let cache = cache.clone();
                    async move {
                        cache
                            .resolve(&spec, &Credentials::Anonymous, None)
                            .await
                            .expect("resolves")
                            .commit
                            .sha
                    }
                })
                .buffered(10)
                .collect()
                .await;
            (cache, results)
        }
    };
    use futures::StreamExt;

    let (first, shas) = resolve_all(run()).await;
    assert_eq!(
        (shas[0].as_str(), shas[1].as_str(), shas[2].as_str()),
        (
            master_sha.as_str(),
            feature_sha.as_str(),
            master_sha.as_str()
        )
    );
    let stats = first.stats(&url);
    assert_eq!((stats.checks, stats.fetches), (1, 1), "{stats:?}");
    // On the wire: the listing, and the fetch's own advertisement before its one negotiation.
    assert_eq!(server.ref_advertisements(), 2);
    assert_eq!(server.upload_pack_posts(), 1);
    assert_eq!(
        first.traffic(),
        vec![(url.clone(), stats)],
        "the run's counters by repository"
    );

    let (second, _) = resolve_all(run()).await;
    let stats = second.stats(&url);
    assert_eq!((stats.checks, stats.fetches), (1, 0), "{stats:?}");
    assert_eq!(server.ref_advertisements(), 3, "one listing, no fetch");
    assert_eq!(server.upload_pack_posts(), 1);
}

/// Within the controller's window too, AppImports following different refs of one repository
/// share a listing (the listing is kept whole, not per ref).
#[tokio::test]
async fn a_listing_serves_every_ref_of_the_repository_within_the_window() {
    let repo = git_fixtures::TestRepo::new();
    repo.write("README.md", "one");
    repo.commit("one");
    repo.tag("v1");
    repo.publish();
    let url = repo.file_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().to_owned(),
        reuse_ref_checks: Duration::from_secs(3600),
        ..CacheConfig::default()
    });
    for git_ref in [GitRef::Branch("master".into()), GitRef::Tag("v1".into())] {
        let spec = SourceSpec {
            url: url.clone(),
            git_ref,
        };
        cache
            .resolve(&spec, &Credentials::Anonymous, None)
            .await
            .expect("resolves");
    }
    assert_eq!(cache.stats(&url).checks, 1);
    let missing = SourceSpec {
        url: url.clone(),
        git_ref: GitRef::Branch("nope".into()),
    };
    let err = cache
        .resolve(&missing, &Credentials::Anonymous, None)
        .await
        .expect_err("no such branch");
    assert!(
        matches!(&err, SourceError::RefNotFound { available, .. } if available == &vec!["master".to_string()]),
        "{err:?}"
    );
    assert_eq!(
        cache.stats(&url).checks,
        1,
        "answered from the same listing"
    );
}
