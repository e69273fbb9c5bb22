//! OpenSSH known_hosts parsing and matching: `host`, `[host]:port`, comma lists, `*`/`?`
//! wildcards, `!negation`, hashed `|1|salt|hash` entries, `@revoked`; `@cert-authority` lines
//! are skipped (libssh2 shows us plain host keys only).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::error::{Result, SourceError};

#[derive(Clone, Debug)]
struct Entry {
    patterns: Vec<String>,
    key_type: String,
    key: Vec<u8>,
    revoked: bool,
}

/// Parsed known_hosts data.
#[derive(Clone, Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// Result of checking a host key.
#[derive(Debug, PartialEq, Eq)]
pub enum HostKeyCheck {
    Match,
    /// The host has entries, none with this key (or the key is revoked).
    Mismatch,
    /// No entry for the host at all.
    Unknown,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Result<KnownHosts> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if let Some(marker) = first.strip_prefix('@') {
                match marker {
                    "revoked" => revoked = true,
                    _ => continue, // @cert-authority: not usable with plain host keys
                }
                first = fields.next().unwrap_or_default();
            }
            let (Some(key_type), Some(b64)) = (fields.next(), fields.next()) else {
                return Err(SourceError::InvalidCredentials {
                    reason: format!("known_hosts line {} has fewer than 3 fields", n + 1),
                });
            };
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| SourceError::InvalidCredentials {
                    reason: format!("known_hosts line {}: the key is not base64", n + 1),
                })?;
            entries.push(Entry {
                patterns: first.split(',').map(str::to_string).collect(),
                key_type: key_type.to_string(),
                key,
                revoked,
            });
        }
        Ok(KnownHosts { entries })
    }

    /// Checks the raw host key blob (as sent in the SSH handshake) of `host:port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyCheck {
        // known_hosts writes non-default ports as `[host]:port`.
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let mut known = false;
        let mut matched = false;
        for e in self
            .entries
            .iter()
            .filter(|e| host_matches(&e.patterns, &name))
        {
            if e.revoked {
                if e.key == key {
                    return HostKeyCheck::Mismatch;
                }
                continue;
            }
            known = true;
            // The blob starts with its own type name, so comparing blobs compares types too.
            if e.key == key && key_type_of(key).is_none_or(|t| t == e.key_type) {
                matched = true;
            }
        }
        match (matched, known) {
            (true, _) => HostKeyCheck::Match,
            (false, true) => HostKeyCheck::Mismatch,
            (false, false) => HostKeyCheck::Unknown,
        }
    }
}

/// The key type name at the start of an SSH public key blob.
fn key_type_of(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut hit = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if let Some(hashed) = p.strip_prefix("|1|") {
            hit |= hashed_matches(hashed, name);
        } else {
            hit |= glob(p, name);
        }
    }
    hit
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH host pattern: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (kind.len() as u32).to_be_bytes().to_vec();
        v.extend(kind.as_bytes());
        v.extend(body);
        v
    }

    #[test]
    fn matches_plain_port_wildcard_hashed_and_revoked() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let k1 = blob("ssh-ed25519", b"one");
        let k2 = blob("ssh-ed25519", b"two");
        let salt = b"0123456789abcdef0123";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[hashed.example]:2222");
        let hash = mac.finalize().into_bytes();
        let text = format!(
            "# comment\ngit.example,10.0.0.1 ssh-ed25519 {k1}\n[git.example]:2222 ssh-ed25519 {k2}\n\
             *.wild.example,!bad.wild.example ssh-ed25519 {k1}\n|1|{salt}|{hash} ssh-ed25519 {k2}\n\
             @revoked git.example ssh-ed25519 {k2}\n",
            k1 = b64.encode(&k1),
            k2 = b64.encode(&k2),
            salt = b64.encode(salt),
            hash = b64.encode(hash),
        );
        let kh = KnownHosts::parse(&text).unwrap();
        assert_eq!(kh.check("git.example", 22, &k1), HostKeyCheck::Match);
        assert_eq!(kh.check("GIT.example", 22, &k1), HostKeyCheck::Match);
        assert_eq!(
            kh.check("git.example", 22, &k2),
            HostKeyCheck::Mismatch,
            "revoked"
        );
        assert_eq!(kh.check("git.example", 2222, &k2), HostKeyCheck::Match);
        assert_eq!(kh.check("git.example", 2222, &k1), HostKeyCheck::Mismatch);
        assert_eq!(kh.check("a.wild.example", 22, &k1), HostKeyCheck::Match);
        assert_eq!(kh.check("bad.wild.example", 22, &k1), HostKeyCheck::Unknown);
        assert_eq!(kh.check("hashed.example", 2222, &k2), HostKeyCheck::Match);
        assert_eq!(kh.check("hashed.example", 22, &k2), HostKeyCheck::Unknown);
        assert_eq!(kh.check("other.example", 22, &k1), HostKeyCheck::Unknown);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(KnownHosts::parse("host ssh-ed25519").is_err());
        assert!(KnownHosts::parse("host ssh-ed25519 not*base64").is_err());
    }
}
