//! Every network operation has a timeout: a server that accepts and then never answers.
//! Own test binary: libgit2's socket timeouts are process-wide, set by the first cache.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tooljet_operator::source::{
    CacheConfig, Credentials, GitRef, SourceCache, SourceError, SourceSpec,
};

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and hold them open without a byte of answer.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(CacheConfig {
        dir: dir.path().to_path_buf(),
        network_timeout: Duration::from_secs(2),
        ..CacheConfig::default()
    });
    for url in [
        format!("git://127.0.0.1:{port}/repo.git"),
        format!("http://127.0.0.1:{port}/repo.git"),
    ] {
        let spec = SourceSpec {
            url: url.clone(),
            git_ref: GitRef::Branch("master".into()),
        };
        let started = Instant::now();
        let err = cache
            .resolve(&spec, &Credentials::Anonymous, None)
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Timeout { .. }), "{url}: {err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url}: took {:?}",
            started.elapsed()
        );
    }
}
