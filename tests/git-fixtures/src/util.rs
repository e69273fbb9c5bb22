use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Runs `git` with `args` in `dir`, panicking with its stderr on failure; returns trimmed stdout.
pub(crate) fn git(dir: &Path, args: &[&str], envs: &[(&str, String)]) -> String {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).args(args);
    // Keep the user's and system's config out of the fixtures.
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The directory holding git's helper programs (`git-http-backend`, ...), asked from git itself
/// because this machine has more than one git installed.
pub fn git_exec_path() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A port that was free a moment ago. Servers that cannot take a listening socket from us
/// (git daemon, sshd) get one of these; [`spawn_listening`] retries when another process wins it.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Starts a server with `spawn(port)` and waits until it accepts connections on 127.0.0.1:port.
/// Retries with a fresh port when the process exits early (port taken meanwhile).
pub fn spawn_listening(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return (child, port);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // exited: most likely the port was taken; try another
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what} did not accept connections on port {port} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{what} failed to start 5 times");
}
