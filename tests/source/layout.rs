//! Reading apps from commits (file:// transport; the layout code is transport-independent).

use crate::common;

use common::{B64_ID, CC_ID, author, cache, tooljet_repo};
use git_fixtures::TestRepo;
use git_fixtures::tooljet::{BASE64, CODE_EXPLAINER, CREDIT_CARD};
use sha2::{Digest, Sha256};
use tooljet_operator::source::{AppLocator, Credentials, MAX_BUNDLE_BYTES, SourceError};

const ANON: &Credentials = &Credentials::Anonymous;

async fn read(
    repo: &TestRepo,
    sha: &str,
    locator: AppLocator,
) -> Result<tooljet_operator::source::AppSource, SourceError> {
    let (cache, _dir) = cache();
    cache.read_app(&repo.file_url(), ANON, sha, &locator).await
}

#[tokio::test]
async fn reads_app_by_name_with_commit_info_and_last_change() {
    let (repo, first) = tooljet_repo();
    repo.git_sync_write(B64_ID, BASE64.0, "v2", CODE_EXPLAINER.1);
    let second = repo.commit_as("push base64 v2", &author(2));

    let (cache, _dir) = cache();
    let url = repo.file_url();
    let cc = AppLocator::ByName(CREDIT_CARD.0.into());
    let app = cache.read_app(&url, ANON, &second, &cc).await.unwrap();
    assert_eq!(app.path, format!("{}/v1.json", CREDIT_CARD.0));
    assert_eq!(app.bundle_bytes, CREDIT_CARD.1);
    assert_eq!(app.content_hash, hex::encode(Sha256::digest(CREDIT_CARD.1)));
    assert_eq!(app.git_app_name, CREDIT_CARD.0);
    assert_eq!(app.version_name, "v1");
    assert!(app.bundle.pointer("/app/0/definition/appV2").is_some());
    assert_eq!(app.commit.sha, second);
    assert_eq!(app.commit.message, "push base64 v2");
    assert_eq!(app.commit.author, "Author 2");
    // The other app's push did not touch this app's files.
    assert_eq!(app.last_change.sha, first);
    assert_eq!(app.last_change.message, "push both apps");
    assert_eq!(app.last_change.date.to_string(), "2026-01-01T10:00:00Z");

    let b64 = AppLocator::ByName(BASE64.0.into());
    let app = cache.read_app(&url, ANON, &second, &b64).await.unwrap();
    assert_eq!(app.version_name, "v2");
    assert_eq!(app.path, format!("{}/v2.json", BASE64.0));
    assert_eq!(app.bundle_bytes, CODE_EXPLAINER.1);
    assert_eq!(app.last_change.sha, second);

    // Did the app change? Only base64's files did.
    assert!(
        !cache
            .app_changed_between(&url, ANON, &cc, &first, &second)
            .await
            .unwrap()
    );
    assert!(
        cache
            .app_changed_between(&url, ANON, &b64, &first, &second)
            .await
            .unwrap()
    );
    assert!(
        !cache
            .app_changed_between(&url, ANON, &b64, &second, &second)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn reads_bundle_at_path() {
    let repo = TestRepo::new();
    repo.write("apps/explainer.json", CODE_EXPLAINER.1);
    repo.write("other.txt", "x");
    let first = repo.commit("add explainer");
    repo.write("other.txt", "y");
    let second = repo.commit("unrelated");
    let app = read(
        &repo,
        &second,
        AppLocator::Path("./apps//explainer.json".into()),
    )
    .await
    .unwrap();
    assert_eq!(app.path, "apps/explainer.json");
    assert_eq!(app.bundle_bytes, CODE_EXPLAINER.1);
    assert_eq!(app.git_app_name, "AI Code Explainer");
    assert_eq!(app.last_change.sha, first);
    let (cache, _dir) = cache();
    let loc = AppLocator::Path("apps/explainer.json".into());
    assert!(
        !cache
            .app_changed_between(&repo.file_url(), ANON, &loc, &first, &second)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn app_not_in_meta_lists_the_apps_that_are() {
    let (repo, sha) = tooljet_repo();
    match read(&repo, &sha, AppLocator::ByName("Sales Dashboard".into())).await {
        Err(e @ SourceError::AppNotFound { .. }) => {
            let SourceError::AppNotFound { available, .. } = &e else {
                unreachable!()
            };
            assert_eq!(
                available,
                &vec![CREDIT_CARD.0.to_string(), BASE64.0.to_string()]
            );
            assert!(e.to_string().contains(CREDIT_CARD.0), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_or_missing_meta_json() {
    let repo = TestRepo::new();
    repo.write("README.md", "no meta");
    let sha = repo.commit("no meta");
    let err = read(&repo, &sha, AppLocator::ByName("x".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::MetaJsonMissing { .. }),
        "{err:?}"
    );

    repo.write(".meta/meta.json", "{ \"id\": { \"gitAppName\": 1 ");
    let sha = repo.commit("broken meta");
    let err = read(&repo, &sha, AppLocator::ByName("x".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::MetaJsonInvalid { .. }),
        "{err:?}"
    );

    repo.write(".meta/meta.json", "{ \"id\": { \"gitAppName\": \"x\" } }");
    let sha = repo.commit("meta without version");
    let err = read(&repo, &sha, AppLocator::ByName("x".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::MetaJsonInvalid { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bundle_not_json_or_without_definition() {
    let (repo, _) = tooljet_repo();
    repo.git_sync_write(CC_ID, CREDIT_CARD.0, "v2", b"{ not json");
    let sha = repo.commit("broken bundle");
    let err = read(&repo, &sha, AppLocator::ByName(CREDIT_CARD.0.into()))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::BundleNotJson { .. }), "{err:?}");

    repo.git_sync_write(
        CC_ID,
        CREDIT_CARD.0,
        "v3",
        br#"{"app":[{"nodefinition":{}}],"tooljet_version":"3.0.0"}"#,
    );
    let sha = repo.commit("bundle without definition");
    let err = read(&repo, &sha, AppLocator::ByName(CREDIT_CARD.0.into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::BundleWithoutDefinition { .. }),
        "{err:?}"
    );

    repo.write("plain.json", "[1,2,3]");
    let sha = repo.commit("array");
    let err = read(&repo, &sha, AppLocator::Path("plain.json".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::BundleWithoutDefinition { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn paths_are_confined_and_symlinks_not_followed() {
    let (repo, _) = tooljet_repo();
    repo.symlink("link.json", "/etc/passwd");
    repo.symlink("linkdir", "..");
    repo.write("real/app.json", CREDIT_CARD.1);
    let sha = repo.commit("links");
    for p in [
        "../outside.json",
        "/etc/passwd",
        "apps/../../x.json",
        "a\\..\\b.json",
    ] {
        let err = read(&repo, &sha, AppLocator::Path(p.into()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::PathEscapesRepo { .. }),
            "{p}: {err:?}"
        );
    }
    for p in ["link.json", "linkdir/repo.git/config"] {
        let err = read(&repo, &sha, AppLocator::Path(p.into()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::SymlinkNotFollowed { .. }),
            "{p}: {err:?}"
        );
    }
    let err = read(&repo, &sha, AppLocator::Path("real/missing.json".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::BundleMissing { .. }), "{err:?}");

    // meta.json naming a path outside the app's directory.
    repo.write(
        ".meta/meta.json",
        r#"{"id":{"gitAppName":"..","gitVersionName":"etc/passwd"}}"#,
    );
    let sha = repo.commit("evil meta");
    let err = read(&repo, &sha, AppLocator::ByName("..".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::PathEscapesRepo { .. }),
        "{err:?}"
    );

    // The app's directory itself a symlink.
    let repo = TestRepo::new();
    repo.write("target/v1.json", CREDIT_CARD.1);
    repo.symlink("App", "target");
    repo.write(
        ".meta/meta.json",
        r#"{"id":{"gitAppName":"App","gitVersionName":"v1"}}"#,
    );
    let sha = repo.commit("symlinked app dir");
    let err = read(&repo, &sha, AppLocator::ByName("App".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::SymlinkNotFollowed { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversize_bundle_is_refused() {
    let repo = TestRepo::new();
    let mut big = br#"{"app":[{"definition":{"appV2":{}}}],"pad":""#.to_vec();
    big.resize(MAX_BUNDLE_BYTES as usize + 1 - 2, b' ');
    big.extend_from_slice(b"\"}");
    assert_eq!(big.len() as u64, MAX_BUNDLE_BYTES + 1);
    repo.write("big.json", &big);
    let sha = repo.commit("big");
    match read(&repo, &sha, AppLocator::Path("big.json".into())).await {
        Err(SourceError::BundleTooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_BUNDLE_BYTES + 1, MAX_BUNDLE_BYTES));
        }
        other => panic!("{:?}", other.map(|a| a.path)),
    }
}

#[tokio::test]
async fn split_layout_is_reported_unsupported() {
    let repo = TestRepo::new();
    repo.write("App/v1/app.json", "{}");
    repo.write("App/v1/pages/home.json", "{}");
    repo.write(
        ".meta/meta.json",
        r#"{"id":{"gitAppName":"App","gitVersionName":"v1"}}"#,
    );
    repo.write("dir.json/inner.json", "{}");
    let sha = repo.commit("split");
    let err = read(&repo, &sha, AppLocator::ByName("App".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::UnsupportedLayout { .. }),
        "{err:?}"
    );
    let err = read(&repo, &sha, AppLocator::Path("dir.json".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::UnsupportedLayout { .. }),
        "{err:?}"
    );
}
