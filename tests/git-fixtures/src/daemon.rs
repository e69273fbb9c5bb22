use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::util::{git_exec_path, spawn_listening};

/// `git daemon` serving every repository under a base directory on 127.0.0.1; killed on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
    /// The daemon's `--verbose` log, when started with [`GitDaemon::start_counting`].
    log: Option<(tempfile::TempDir, PathBuf)>,
}

impl GitDaemon {
    /// Serves the repositories under `base_dir` (e.g. [`TestRepo::base_dir`](crate::TestRepo::base_dir)).
    pub fn start(base_dir: &Path) -> GitDaemon {
        Self::spawn(base_dir, false, None)
    }

    /// Like [`GitDaemon::start`], also accepting pushes (`--enable=receive-pack`).
    pub fn start_writable(base_dir: &Path) -> GitDaemon {
        Self::spawn(base_dir, true, None)
    }

    /// Like [`start`](Self::start), logging every request so that
    /// [`upload_pack_requests`](Self::upload_pack_requests) can count them.
    pub fn start_counting(base_dir: &Path) -> GitDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.log");
        Self::spawn(base_dir, false, Some((dir, path)))
    }

    /// Connections that asked for `git-upload-pack` of `name` (a repository under the base
    /// directory): every ref listing, and every fetch (which lists the refs on its own
    /// connection first). Needs [`start_counting`](Self::start_counting).
    pub fn upload_pack_requests(&self, name: &str) -> u64 {
        let (_, path) = self.log.as_ref().expect("started with start_counting");
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let wanted = format!("Request upload-pack for '/{name}'");
        log.lines().filter(|l| l.contains(&wanted)).count() as u64
    }

    fn spawn(
        base_dir: &Path,
        writable: bool,
        log: Option<(tempfile::TempDir, PathBuf)>,
    ) -> GitDaemon {
        let (child, port) = spawn_listening("git daemon", |port| {
            let stderr = match &log {
                Some((_, path)) => Stdio::from(std::fs::File::create(path).expect("daemon log")),
                None => Stdio::null(),
            };
            // The dashed program itself: `git daemon` would leave it running when killed.
            let mut cmd = Command::new(git_exec_path().join("git-daemon"));
            if writable {
                cmd.arg("--enable=receive-pack");
            }
            cmd.arg("--reuseaddr")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", base_dir.display()))
                .arg("--export-all")
                .arg("--informative-errors")
                .args(log.as_ref().map(|_| "--verbose"))
                .arg(base_dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn git daemon")
        });
        GitDaemon { child, port, log }
    }

    /// The daemon's process id (its children, one `git-upload-pack` per connection, are reaped
    /// by it: their CPU time is in its `cutime`/`cstime`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `git://127.0.0.1:<port>/<name>` for a repository under the base directory.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{}", self.port, name)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
