//! `tooljet-operator diff`: what changes inside an app between two commits of a repository.
//! Reads both bundles through the source layer (the shared mirror cache, no checkout) and
//! compares them with [`crate::diff`].

use std::path::PathBuf;

use serde::Serialize;

use crate::diff::{AppDiff, DiffError};
use crate::offline::{Manifests, OfflineError};
use crate::source::{
    AppLocator, CommitInfo, Credentials, GitRef, SourceCache, SourceError, SourceSpec,
};
use crate::sync::git_credentials;

/// Why `diff` could not compare.
#[derive(Debug, thiserror::Error)]
pub enum DiffCommandError {
    #[error(
        "{rev:?} is not a branch, a tag or a full commit sha of {url}; branches: {branches:?}, tags: {tags:?}"
    )]
    UnknownRef {
        rev: String,
        url: String,
        branches: Vec<String>,
        tags: Vec<String>,
    },
    #[error("cannot read the app at {side} {rev:?}: {source}")]
    Read {
        side: &'static str,
        rev: String,
        source: Box<SourceError>,
    },
    #[error("cannot compare the app at {side} {rev:?} ({path}): {source}")]
    Bundle {
        side: &'static str,
        rev: String,
        path: String,
        source: DiffError,
    },
    #[error("cannot resolve {rev:?}: {source}")]
    Resolve {
        rev: String,
        source: Box<SourceError>,
    },
    #[error(transparent)]
    Manifests(#[from] OfflineError),
    #[error(
        "Secret {name:?} is not in the files given with -f{}",
        if .found_in.is_empty() { String::new() } else { format!(" (it is in several namespaces: {:?}; keep one)", .found_in) }
    )]
    SecretNotFound { name: String, found_in: Vec<String> },
    #[error("invalid git credentials in Secret {name:?}: {reason}")]
    Credentials { name: String, reason: String },
}

/// One side of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    /// As given on the command line.
    pub rev: String,
    pub commit: CommitInfo,
    /// Where the bundle is in the repository.
    pub path: String,
}

/// The result of `diff`.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub repo: String,
    pub from: Side,
    pub to: Side,
    pub diff: AppDiff,
}

/// The git credentials of Secret `name` in manifest files (as an AppImport's
/// `spec.source.secretRef` names it for `sync -f`); anonymous without a name.
pub fn credentials_from_files(
    files: &[PathBuf],
    name: Option<&str>,
) -> Result<Credentials, DiffCommandError> {
    let Some(name) = name else {
        return Ok(Credentials::Anonymous);
    };
    let manifests = Manifests::load(files)?;
    let holding: Vec<&String> = manifests
        .secrets
        .iter()
        .filter(|(_, secrets)| secrets.secret(name).is_ok())
        .map(|(ns, _)| ns)
        .collect();
    let [namespace] = holding.as_slice() else {
        return Err(DiffCommandError::SecretNotFound {
            name: name.to_string(),
            found_in: holding.into_iter().cloned().collect(),
        });
    };
    git_credentials(Some(name), &manifests.secrets[*namespace]).map_err(|e| {
        DiffCommandError::Credentials {
            name: name.to_string(),
            reason: e.to_string(),
        }
    })
}

fn is_full_sha(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A branch, a tag (`refs/heads/…` and `refs/tags/…` say which) or a full commit sha; a bare
/// name is looked up as a branch, then as a tag.
async fn resolve(
    cache: &SourceCache,
    url: &str,
    creds: &Credentials,
    rev: &str,
) -> Result<CommitInfo, DiffCommandError> {
    let candidates = if is_full_sha(rev) {
        vec![GitRef::Commit(rev.to_ascii_lowercase())]
    } else if let Some(b) = rev.strip_prefix("refs/heads/") {
        vec![GitRef::Branch(b.to_string())]
    } else if let Some(t) = rev.strip_prefix("refs/tags/") {
        vec![GitRef::Tag(t.to_string())]
    } else {
        vec![
            GitRef::Branch(rev.to_string()),
            GitRef::Tag(rev.to_string()),
        ]
    };
    let mut branches = Vec::new();
    let mut tags = Vec::new();
    let mut shown_url = url.to_string();
    for git_ref in candidates {
        let spec = SourceSpec {
            url: url.to_string(),
            git_ref,
        };
        match cache.resolve(&spec, creds, None).await {
            Ok(r) => return Ok(r.commit),
            Err(SourceError::RefNotFound {
                url,
                kind,
                available,
                ..
            }) => {
                shown_url = url;
                if kind == "tag" {
                    tags = available;
                } else {
                    branches = available;
                }
            }
            Err(source) => {
                return Err(DiffCommandError::Resolve {
                    rev: rev.to_string(),
                    source: Box::new(source),
                });
            }
        }
    }
    Err(DiffCommandError::UnknownRef {
        rev: rev.to_string(),
        url: shown_url,
        branches,
        tags,
    })
}

async fn read_side(
    cache: &SourceCache,
    url: &str,
    creds: &Credentials,
    locator: &AppLocator,
    side: &'static str,
    rev: &str,
) -> Result<(Side, serde_json::Value), DiffCommandError> {
    let commit = resolve(cache, url, creds, rev).await?;
    let app = cache
        .read_app(url, creds, &commit.sha, locator)
        .await
        .map_err(|source| DiffCommandError::Read {
            side,
            rev: rev.to_string(),
            source: Box::new(source),
        })?;
    Ok((
        Side {
            rev: rev.to_string(),
            commit: app.commit,
            path: app.path,
        },
        app.bundle,
    ))
}

/// Reads the app at `from` and at `to` and compares them.
pub async fn run(
    cache: &SourceCache,
    url: &str,
    creds: &Credentials,
    locator: &AppLocator,
    from: &str,
    to: &str,
) -> Result<DiffReport, DiffCommandError> {
    let (from_side, a) = read_side(cache, url, creds, locator, "FROM", from).await?;
    let (to_side, b) = read_side(cache, url, creds, locator, "TO", to).await?;
    let diff = crate::diff::diff(&a, &b).map_err(|source| {
        // Only a bundle that is not an app fails, and that is the side that is not.
        let (side, s) = match crate::diff::normalise(&a) {
            Err(_) => ("FROM", &from_side),
            Ok(_) => ("TO", &to_side),
        };
        DiffCommandError::Bundle {
            side,
            rev: s.rev.clone(),
            path: s.path.clone(),
            source,
        }
    })?;
    Ok(DiffReport {
        repo: crate::source::display_url(url),
        from: from_side,
        to: to_side,
        diff,
    })
}

fn short_sha(c: &CommitInfo) -> &str {
    c.sha.get(..7).unwrap_or(&c.sha)
}

impl DiffReport {
    /// A header naming the commits, then the diff.
    pub fn text(&self) -> String {
        format!(
            "{} {}: {} ({}) → {} ({})\n{}",
            self.repo,
            self.to.path,
            self.from.rev,
            short_sha(&self.from.commit),
            self.to.rev,
            short_sha(&self.to.commit),
            self.diff.text()
        )
    }

    /// A line naming the commits, then the app's collapsible block.
    pub fn markdown(&self) -> String {
        format!(
            "Changes in `{}` from `{}` (`{}`) to `{}` (`{}`):\n\n{}",
            self.to.path.replace('`', "'"),
            self.from.rev.replace('`', "'"),
            short_sha(&self.from.commit),
            self.to.rev.replace('`', "'"),
            short_sha(&self.to.commit),
            self.diff.markdown()
        )
    }
}
