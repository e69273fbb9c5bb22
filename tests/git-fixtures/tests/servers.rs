//! The servers serve what the repository holds and are gone after drop.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use git_fixtures::{GitDaemon, HttpGitServer, SshGitServer, TestRepo};

fn ls_remote(url: &str, envs: &[(&str, String)]) -> String {
    let out = Command::new("git")
        .args(["ls-remote", url])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn closed_within(port: u16, limit: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn daemon_and_http_serve_and_stop() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a");
    let sha = repo.commit("first");
    let daemon = GitDaemon::start(repo.base_dir());
    assert!(ls_remote(&daemon.url(&repo.served_name()), &[]).contains(&sha));
    let port = daemon.port();
    drop(daemon);
    assert!(closed_within(port, Duration::from_secs(5)));

    let http = HttpGitServer::start(repo.base_dir());
    assert!(ls_remote(&http.url(&repo.served_name()), &[]).contains(&sha));
    assert!(http.requests() > 0);
}

#[test]
fn ssh_serves_with_the_generated_key_and_stops() {
    let repo = TestRepo::new();
    let sha = repo.commit("first");
    let ssh = SshGitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, ssh.private_key()).unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", ssh.known_hosts_line())).unwrap();
    let cmd = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        key.display(),
        kh.display()
    );
    std::process::Command::new("chmod")
        .arg("600")
        .arg(&key)
        .status()
        .unwrap();
    let out = ls_remote(&ssh.url(repo.served_path()), &[("GIT_SSH_COMMAND", cmd)]);
    assert!(out.contains(&sha), "{out}\n{}", ssh.log());
    let port = ssh.port();
    drop(ssh);
    assert!(closed_within(port, Duration::from_secs(5)));
}
