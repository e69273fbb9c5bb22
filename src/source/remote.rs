//! Talking to the git host: listing refs without transferring objects, and fetching.
//! All functions block; callers run them in `spawn_blocking`. Every operation carries a
//! deadline checked in libgit2's callbacks, on top of libgit2's socket timeouts.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions,
    PushOptions, RemoteCallbacks, Repository,
};

use super::credentials::Credentials;
use super::error::{Result, SourceError};
use super::known_hosts::HostKeyCheck;

/// Where and how to reach a remote, and until when.
pub(crate) struct RemoteCtx<'a> {
    pub url: &'a str,
    pub creds: &'a Credentials,
    pub deadline: Instant,
    pub timeout: Duration,
}

/// What a fetch transferred.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Transfer {
    pub objects: u64,
    pub bytes: u64,
}

/// What the callbacks saw, to turn libgit2's generic errors into precise ones.
#[derive(Default)]
struct CallbackState {
    offered: Cell<bool>,
    auth_failed: Cell<bool>,
    auth_missing: Cell<bool>,
    timed_out: Cell<bool>,
    host_key: RefCell<Option<SourceError>>,
}

impl RemoteCtx<'_> {
    /// Lists the remote's refs (name, oid) with one connection and no object transfer.
    pub fn list_refs(&self, repo: &Repository) -> Result<Vec<(String, git2::Oid)>> {
        let state = Rc::new(CallbackState::default());
        let mut remote = repo
            .remote_anonymous(self.url)
            .map_err(|e| self.map_error(e, &state, "listing refs"))?;
        let conn = remote
            .connect_auth(Direction::Fetch, Some(self.callbacks(&state)), None)
            .map_err(|e| self.map_error(e, &state, "listing refs"))?;
        let heads = conn
            .list()
            .map_err(|e| self.map_error(e, &state, "listing refs"))?;
        Ok(heads
            .iter()
            .map(|h| (h.name().to_string(), h.oid()))
            .collect())
    }

    /// Fetches `refspecs` into `repo`; reports what was transferred.
    pub fn fetch(&self, repo: &Repository, refspecs: &[&str]) -> Result<Transfer> {
        let state = Rc::new(CallbackState::default());
        let mut remote = repo
            .remote_anonymous(self.url)
            .map_err(|e| self.map_error(e, &state, "fetch"))?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks(&state))
            .download_tags(AutotagOption::None)
            .update_fetchhead(false);
        remote
            .fetch(refspecs, Some(&mut opts), None)
            .map_err(|e| self.map_error(e, &state, "fetch"))?;
        let stats = remote.stats();
        Ok(Transfer {
            objects: stats.received_objects() as u64,
            bytes: stats.received_bytes() as u64,
        })
    }

    /// Pushes `refspec` (never forced: the caller passes no '+'). The server's per-ref verdict
    /// is read from the status callback: a ref it refused is [`PushVerdict::Rejected`], never
    /// success. libgit2's own fast-forward check (the remote ref holds a commit that the local
    /// one does not descend from) is [`PushVerdict::Stale`].
    pub fn push(&self, repo: &Repository, refspec: &str) -> Result<PushVerdict> {
        debug_assert!(!refspec.starts_with('+'), "never a force push");
        let state = Rc::new(CallbackState::default());
        let mut remote = repo
            .remote_anonymous(self.url)
            .map_err(|e| self.map_error(e, &state, "push"))?;
        let mut cb = self.callbacks(&state);
        let refused: Rc<RefCell<Option<String>>> = Rc::default();
        let seen = refused.clone();
        cb.push_update_reference(move |refname, status| {
            if let Some(msg) = status {
                *seen.borrow_mut() = Some(format!("{refname}: {msg}"));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        match remote.push(&[refspec], Some(&mut opts)) {
            Ok(()) => {}
            Err(e) if e.code() == git2::ErrorCode::NotFastForward => {
                return Ok(PushVerdict::Stale(e.message().to_string()));
            }
            Err(e) => return Err(self.map_push_error(e, &state)),
        }
        let verdict = refused.borrow_mut().take();
        Ok(match verdict {
            None => PushVerdict::Accepted,
            Some(msg) if is_stale_rejection(&msg) => PushVerdict::Stale(msg),
            Some(msg) => PushVerdict::Rejected(self.creds.redact(&msg)),
        })
    }

    /// A push error: refusals of write access get their own error, the rest as for fetches.
    fn map_push_error(&self, e: git2::Error, state: &CallbackState) -> SourceError {
        let lower = e.message().to_ascii_lowercase();
        let denied = [
            "403",
            "access denied",
            "service not enabled",
            "not enabled",
            "permission",
            "read-only",
            "read only",
            "not allowed",
            "forbidden",
        ];
        if state.host_key.borrow().is_none()
            && !state.timed_out.get()
            && denied.iter().any(|d| lower.contains(d))
        {
            return SourceError::PushDenied {
                url: display_url(self.url),
                message: self.creds.redact(e.message()),
            };
        }
        self.map_error(e, state, "push")
    }

    fn callbacks(&self, state: &Rc<CallbackState>) -> RemoteCallbacks<'static> {
        let mut cb = RemoteCallbacks::new();
        let deadline = self.deadline;
        let creds = self.creds.clone();
        let s = state.clone();
        cb.credentials(move |_url, username_from_url, allowed| {
            if Instant::now() > deadline {
                s.timed_out.set(true);
                return Err(git2::Error::from_str("deadline passed"));
            }
            if allowed.contains(CredentialType::USERNAME) {
                // SSH asks for the username first; that is not an attempt to log in.
                return Cred::username(username_from_url.unwrap_or("git"));
            }
            // libgit2 asks again and again while the server refuses the secret: the second
            // request means the first was refused.
            if s.offered.replace(true) {
                s.auth_failed.set(true);
                return Err(git2::Error::from_str("authentication failed"));
            }
            match &creds {
                Credentials::Anonymous => {
                    s.auth_missing.set(true);
                    Err(git2::Error::from_str("no credentials"))
                }
                Credentials::Basic { username, password } => {
                    Cred::userpass_plaintext(username, password)
                }
                Credentials::Token { username, token } => Cred::userpass_plaintext(username, token),
                Credentials::Ssh {
                    private_key,
                    passphrase,
                    ..
                } => Cred::ssh_key_from_memory(
                    username_from_url.unwrap_or("git"),
                    None,
                    private_key,
                    passphrase.as_deref(),
                ),
            }
        });
        let s = state.clone();
        cb.transfer_progress(move |_| {
            let ok = Instant::now() <= deadline;
            s.timed_out.set(!ok);
            ok
        });
        let s = state.clone();
        cb.sideband_progress(move |_| {
            let ok = Instant::now() <= deadline;
            s.timed_out.set(!ok);
            ok
        });
        let s = state.clone();
        let creds = self.creds.clone();
        let endpoint = ssh_endpoint(self.url);
        cb.certificate_check(move |cert, _host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: let libgit2 verify against the system's CA roots.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let (host, port) = endpoint.clone().unwrap_or_default();
            let shown = if port == 22 {
                host.clone()
            } else {
                format!("[{host}]:{port}")
            };
            let known = match &creds {
                Credentials::Ssh { known_hosts, .. } => known_hosts.as_ref(),
                _ => None,
            };
            let verdict = match (known, hostkey.hostkey()) {
                (Some(kh), Some(key)) => kh.check(&host, port, key),
                _ => HostKeyCheck::Unknown,
            };
            match verdict {
                HostKeyCheck::Match => Ok(CertificateCheckStatus::CertificateOk),
                HostKeyCheck::Mismatch => {
                    *s.host_key.borrow_mut() = Some(SourceError::HostKeyMismatch { host: shown });
                    Err(git2::Error::from_str("host key mismatch"))
                }
                HostKeyCheck::Unknown => {
                    *s.host_key.borrow_mut() = Some(SourceError::HostKeyUnknown { host: shown });
                    Err(git2::Error::from_str("host key unknown"))
                }
            }
        });
        cb
    }

    fn map_error(
        &self,
        e: git2::Error,
        state: &CallbackState,
        operation: &'static str,
    ) -> SourceError {
        let url = display_url(self.url);
        if let Some(err) = state.host_key.borrow_mut().take() {
            return err;
        }
        if state.timed_out.get() || Instant::now() > self.deadline {
            return SourceError::Timeout {
                url,
                operation,
                after: self.timeout,
            };
        }
        if state.auth_missing.get() {
            return SourceError::AuthenticationRequired { url };
        }
        let mut message = self.creds.redact(e.message());
        if let Some(pw) = url::Url::parse(self.url)
            .ok()
            .and_then(|u| u.password().map(str::to_string))
        {
            message = message.replace(&pw, "redacted");
        }
        tracing::debug!(url = %url, class = ?e.class(), code = ?e.code(), message = %message, "git remote error");
        // A key that cannot be decrypted (wrong passphrase) or parsed fails inside libssh2.
        let bad_key = state.offered.get()
            && e.class() == git2::ErrorClass::Ssh
            && message.contains("private key");
        if state.auth_failed.get() || bad_key || e.code() == git2::ErrorCode::Auth {
            return SourceError::AuthenticationFailed { url };
        }
        if e.class() == git2::ErrorClass::Net && message.contains("timed out") {
            return SourceError::Timeout {
                url,
                operation,
                after: self.timeout,
            };
        }
        SourceError::RemoteUnavailable { url, message }
    }
}

/// The server's answer to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PushVerdict {
    Accepted,
    /// The branch moved since it was read (non-fast-forward, stale or locked ref): fetch and
    /// build the commit again.
    Stale(String),
    /// Refused for another reason (a hook, branch protection): retrying cannot help.
    Rejected(String),
}

/// Whether a per-ref refusal means "the branch moved under you".
fn is_stale_rejection(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "non-fast-forward",
        "fetch first",
        "stale",
        "cannot lock",
        "failed to lock",
        "failed to update ref",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// Host and port of an SSH URL (`ssh://user@host:port/path` or `user@host:path`).
pub(crate) fn ssh_endpoint(url: &str) -> Option<(String, u16)> {
    if let Ok(u) = url::Url::parse(url) {
        if u.scheme() == "ssh" || u.scheme() == "git+ssh" || u.scheme() == "ssh+git" {
            let host = u.host_str()?.trim_start_matches('[').trim_end_matches(']');
            return Some((host.to_string(), u.port().unwrap_or(22)));
        }
        return None;
    }
    // scp-like: [user@]host:path
    let (left, _) = url.split_once(':')?;
    let host = left.rsplit('@').next()?;
    Some((host.to_string(), 22))
}

/// The URL as shown in messages and logs: any password in it removed.
pub(crate) fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_endpoints() {
        assert_eq!(
            ssh_endpoint("ssh://git@h.example:2222/r.git"),
            Some(("h.example".into(), 2222))
        );
        assert_eq!(
            ssh_endpoint("ssh://h.example/r.git"),
            Some(("h.example".into(), 22))
        );
        assert_eq!(
            ssh_endpoint("git@github.com:org/r.git"),
            Some(("github.com".into(), 22))
        );
        assert_eq!(ssh_endpoint("https://github.com/org/r.git"), None);
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(
            display_url("https://u:s3cret@h.example/r.git"),
            "https://u:redacted@h.example/r.git"
        );
        assert_eq!(
            display_url("https://h.example/r.git"),
            "https://h.example/r.git"
        );
    }
}
