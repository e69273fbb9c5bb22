//! Shared set-up for the source tests.
#![allow(dead_code)]

use std::time::Duration;

use git_fixtures::tooljet::{BASE64, CREDIT_CARD};
use git_fixtures::{Author, TestRepo};
use tooljet_operator::source::{CacheConfig, SourceCache};

pub const CC_ID: &str = "11111111-1111-1111-1111-111111111111";
pub const B64_ID: &str = "22222222-2222-2222-2222-222222222222";

/// A cache in its own temporary directory.
pub fn cache() -> (SourceCache, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().to_path_buf(),
        network_timeout: Duration::from_secs(30),
        ..CacheConfig::default()
    });
    (cache, dir)
}

/// Like [`cache`], removing mirrors unused for `ttl` ([`SourceCache::gc`]).
pub fn cache_with_ttl(ttl: Duration) -> (SourceCache, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().to_path_buf(),
        unused_mirror_ttl: ttl,
        ..CacheConfig::default()
    });
    (cache, dir)
}

pub fn author(n: u32) -> Author {
    Author {
        name: format!("Author {n}"),
        email: format!("author{n}@example.com"),
        date: format!("2026-01-{:02}T10:00:00Z", n.clamp(1, 28)),
    }
}

/// A ToolJet Git Sync repository with two apps, one commit; returns it with that commit's sha.
pub fn tooljet_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.git_sync_write(CC_ID, CREDIT_CARD.0, "v1", CREDIT_CARD.1);
    repo.git_sync_write(B64_ID, BASE64.0, "v1", BASE64.1);
    let sha = repo.commit_as("push both apps", &author(1));
    (repo, sha)
}
