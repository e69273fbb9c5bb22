//! Repository identity for webhooks: the https, ssh, scp-like (`git@host:org/repo.git`) and
//! git:// forms of one repository reduce to the same key `host/path`.
//!
//! Decisions (a false match costs one extra cheap ref check, a missed match a whole poll interval):
//! - host and path are compared case-insensitively (GitHub and GitLab paths are);
//! - ports are ignored: a server's ssh port (often 22 or 2222) and https port differ for one repo;
//! - credentials, query and fragment are ignored; a trailing `/` and `.git` are dropped;
//! - `file://` URLs keep their scheme in the key so they never match a remote repository.

/// The key of a repository URL, `host/path` (lowercase, no `.git`); `None` when `url` is not a
/// repository URL (empty, no host or path).
pub fn repo_key(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() {
        return None;
    }
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        split_url(&scheme.to_ascii_lowercase(), rest)?
    } else {
        split_scp(url)?
    };
    let path = clean_path(path);
    if path.is_empty() {
        return None;
    }
    Some(format!("{host}/{path}"))
}

/// `scheme://[user[:password]@]host[:port]/path[?query][#fragment]`.
fn split_url<'a>(scheme: &str, rest: &'a str) -> Option<(String, &'a str)> {
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    if scheme == "file" {
        return Some(("file:".to_owned(), rest));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // Credentials end at the last '@' (a password may contain '@' when not percent-encoded).
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = strip_port(host_port);
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), path))
}

/// scp-like `[user@]host:path`, as git understands it (no scheme, a ':' before any '/').
fn split_scp(url: &str) -> Option<(String, &str)> {
    let (before, path) = url.split_once(':')?;
    if before.contains('/') {
        return None;
    }
    let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), path))
}

fn strip_port(host_port: &str) -> &str {
    if let Some(v6) = host_port.strip_prefix('[') {
        // [::1]:22
        return v6.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

fn clean_path(path: &str) -> String {
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    path.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_one_repository_has_the_same_key() {
        let forms = [
            "https://github.com/Acme/Apps.git",
            "https://github.com/acme/apps",
            "https://github.com/acme/apps/",
            "https://github.com/acme/apps.git/",
            "HTTPS://GitHub.COM/acme/apps",
            "https://github.com:443/acme/apps.git",
            "https://x-access-token:s3cr%40t@github.com/acme/apps.git",
            "https://user:p@ss@github.com/acme/apps.git",
            "http://github.com/acme/apps",
            "ssh://git@github.com/acme/apps.git",
            "ssh://git@github.com:22/acme/apps.git",
            "ssh://git@github.com:2222/acme/apps",
            "git@github.com:acme/apps.git",
            "git@github.com:/acme/apps.git",
            "github.com:acme/apps",
            "git://github.com/acme/apps.git",
            "git://github.com:9418/acme/apps",
            "https://github.com/acme/apps.git?ref=main#frag",
            "  https://github.com/acme/apps.git\n",
        ];
        for form in forms {
            assert_eq!(
                repo_key(form).as_deref(),
                Some("github.com/acme/apps"),
                "{form}"
            );
        }
    }

    #[test]
    fn nested_gitlab_groups_and_ipv6_hosts() {
        assert_eq!(
            repo_key("git@gitlab.example.com:group/sub/app.git"),
            repo_key("https://gitlab.example.com/group/sub/app")
        );
        assert_eq!(
            repo_key("ssh://git@[::1]:2222/org/r.git").as_deref(),
            Some("::1/org/r")
        );
    }

    #[test]
    fn different_repositories_and_hosts_do_not_match() {
        let base = repo_key("https://github.com/acme/apps.git");
        for other in [
            "https://github.com/acme/apps2.git",
            "https://github.com/acme/apps/more",
            "https://github.com/other/apps.git",
            "https://gitlab.com/acme/apps.git",
            "git@gitlab.com:acme/apps.git",
            "https://github.com.evil.example/acme/apps.git",
            "file:///github.com/acme/apps.git",
        ] {
            assert_ne!(repo_key(other), base, "{other}");
        }
    }

    #[test]
    fn not_repository_urls_have_no_key() {
        for bad in [
            "",
            "   ",
            "https://github.com",
            "https://github.com/",
            "https:///a/b",
            "noscheme",
        ] {
            assert_eq!(repo_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_urls_keep_their_path() {
        assert_eq!(
            repo_key("file:///tmp/repos/a.git").as_deref(),
            Some("file:/tmp/repos/a")
        );
    }
}
