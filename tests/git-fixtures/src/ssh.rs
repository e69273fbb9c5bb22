use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::spawn_listening;

/// `sshd` on 127.0.0.1 with a generated ed25519 host key, accepting one generated user key for
/// the current user (root in CI); git runs over it as on any host. Killed on drop.
pub struct SshGitServer {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    user: String,
    private_key: String,
    host_public_key: String,
}

impl SshGitServer {
    /// Starts sshd with a fresh host key and a fresh unencrypted user key.
    pub fn start() -> SshGitServer {
        Self::start_with_key_passphrase(None)
    }

    /// Starts sshd; the user key is encrypted with `passphrase` when given.
    pub fn start_with_key_passphrase(passphrase: Option<&str>) -> SshGitServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, host_public_key) = keygen_in(dir.path(), "host_key", None);
        let (private_key, user_public) = keygen_in(dir.path(), "user_key", passphrase);
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("{user_public}\n"),
        )
        .expect("authorized_keys");
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .trim()
        .to_string();
        let d = dir.path().to_path_buf();
        let (child, port) = spawn_listening("sshd", |port| {
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nPubkeyAuthentication yes\n\
                 LogLevel VERBOSE\n",
                hk = d.join("host_key").display(),
                d = d.display(),
            );
            let cfg = d.join("sshd_config");
            std::fs::write(&cfg, config).expect("sshd_config");
            let log = std::fs::File::create(d.join("sshd.log")).expect("sshd.log");
            Command::new("/usr/sbin/sshd")
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn sshd (apt-get install openssh-server)")
        });
        SshGitServer {
            dir,
            child,
            port,
            user,
            private_key,
            host_public_key,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh://<user>@127.0.0.1:<port><absolute path of the repository>`
    pub fn url(&self, repo_path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo_path.display()
        )
    }

    /// The user's private key (OpenSSH PEM format).
    pub fn private_key(&self) -> &str {
        &self.private_key
    }

    /// A known_hosts line for this server: `[127.0.0.1]:<port> ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key)
    }

    /// The host's public key as `<type> <base64>`.
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// sshd's log so far (for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Generates an ed25519 key pair: (private key PEM, public key `<type> <base64>`).
    pub fn keygen(passphrase: Option<&str>) -> (String, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        keygen_in(dir.path(), "key", passphrase)
    }
}

fn keygen_in(dir: &Path, name: &str, passphrase: Option<&str>) -> (String, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "",
            "-N",
            passphrase.unwrap_or(""),
            "-f",
        ])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let private = std::fs::read_to_string(&path).expect("private key");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    (private, public)
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
