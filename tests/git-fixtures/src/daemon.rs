use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{git_exec_path, spawn_listening};

/// `git daemon` serving every repository under a base directory on 127.0.0.1; killed on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    /// Serves the repositories under `base_dir` (e.g. [`TestRepo::base_dir`](crate::TestRepo::base_dir)).
    pub fn start(base_dir: &Path) -> GitDaemon {
        Self::start_inner(base_dir, false)
    }

    /// Like [`GitDaemon::start`], also accepting pushes (`--enable=receive-pack`).
    pub fn start_writable(base_dir: &Path) -> GitDaemon {
        Self::start_inner(base_dir, true)
    }

    fn start_inner(base_dir: &Path, writable: bool) -> GitDaemon {
        let (child, port) = spawn_listening("git daemon", |port| {
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
                .arg(base_dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn git daemon")
        });
        GitDaemon { child, port }
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
