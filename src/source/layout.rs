//! Reading a ToolJet app from a commit's tree, without a checkout: by name through
//! `.meta/meta.json` (ToolJet Git Sync) or an export bundle at a path. Paths are confined to the
//! tree: no `..`, no absolute paths, symbolic links are never followed, blob sizes are checked
//! before reading.

use std::collections::BTreeMap;

use git2::{Commit, ObjectType, Oid, Repository, Tree, TreeEntry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Result, SourceError};

/// ToolJet refuses imports above 50 MB; there is no point reading more.
pub const MAX_BUNDLE_BYTES: u64 = 50 * 1024 * 1024;

const META_PATH: &str = ".meta/meta.json";
pub(crate) const MODE_TREE: i32 = 0o040000;
const MODE_LINK: i32 = 0o120000;
const MODE_SUBMODULE: i32 = 0o160000;

/// Which app to read from a commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AppLocator {
    /// ToolJet Git Sync layout: the `gitAppName` in `.meta/meta.json`.
    ByName(String),
    /// An export bundle at this path, relative to the repository root.
    Path(String),
}

/// A commit as shown to users (ToolJet's "Check for updates" shows message, author and date).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    /// First line of the message.
    pub message: String,
    pub author: String,
    pub author_email: String,
    pub date: jiff::Timestamp,
}

impl CommitInfo {
    pub(crate) fn of(c: &Commit<'_>) -> CommitInfo {
        let a = c.author();
        CommitInfo {
            sha: c.id().to_string(),
            message: c.summary().ok().flatten().unwrap_or_default().to_string(),
            author: a.name().unwrap_or_default().to_string(),
            author_email: a.email().unwrap_or_default().to_string(),
            date: jiff::Timestamp::from_second(a.when().seconds()).unwrap_or_default(),
        }
    }
}

/// An app read from a commit.
#[derive(Clone, Debug)]
pub struct AppSource {
    /// Path of the bundle in the repository.
    pub path: String,
    pub bundle_bytes: Vec<u8>,
    pub bundle: serde_json::Value,
    /// sha256 of `bundle_bytes`, hex.
    pub content_hash: String,
    /// `gitAppName` from meta.json; for a path: `app[0].definition.appV2.name`, else the file stem.
    pub git_app_name: String,
    /// `gitVersionName` from meta.json; for a path: the editing version's name, else the file stem.
    pub version_name: String,
    /// The commit read.
    pub commit: CommitInfo,
    /// The newest commit (along first parents) that changed the app's files.
    pub last_change: CommitInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaEntry {
    git_app_name: String,
    git_version_name: String,
}

/// Where an app lives in one commit.
struct Located {
    bundle_path: String,
    bundle: Oid,
    /// The files whose change counts as a change of the app: the app's directory for a
    /// Git Sync layout, the bundle itself for a path.
    watch_path: String,
    git_app_name: String,
    version_name: Option<String>,
}

/// Reads the app at `commit`.
pub(crate) fn read_app(
    repo: &Repository,
    commit: &Commit<'_>,
    locator: &AppLocator,
    limit: u64,
) -> Result<AppSource> {
    let loc = locate(repo, commit, locator, limit)?;
    let bytes = read_blob(repo, loc.bundle, &loc.bundle_path, limit)?;
    let bundle: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| SourceError::BundleNotJson {
            path: loc.bundle_path.clone(),
            reason: e.to_string(),
        })?;
    // ToolJet imports every app of a bundle; the engine owns exactly one app per AppImport.
    if let Some(apps) = bundle.get("app").and_then(|a| a.as_array())
        && apps.len() > 1
    {
        return Err(SourceError::UnsupportedLayout {
            path: loc.bundle_path,
            reason: format!(
                "the bundle holds {} apps; export each app to a file of its own",
                apps.len()
            ),
        });
    }
    let definition = bundle
        .get("app")
        .and_then(|a| a.get(0))
        .and_then(|a| a.get("definition"));
    let Some(definition) = definition.filter(|d| d.is_object()) else {
        return Err(SourceError::BundleWithoutDefinition {
            path: loc.bundle_path,
        });
    };
    let stem = loc
        .bundle_path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json")
        .to_string();
    let app_v2 = definition.get("appV2");
    let version_name = loc.version_name.clone().unwrap_or_else(|| {
        app_v2
            .and_then(|a| a.pointer("/editingVersion/name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| stem.clone())
    });
    let git_app_name = if loc.git_app_name.is_empty() {
        app_v2
            .and_then(|a| a.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or(stem)
    } else {
        loc.git_app_name.clone()
    };
    let last_change = last_change(repo, commit, &loc.watch_path)?;
    Ok(AppSource {
        path: loc.bundle_path,
        content_hash: hex::encode(Sha256::digest(&bytes)),
        bundle_bytes: bytes,
        bundle,
        git_app_name,
        version_name,
        commit: CommitInfo::of(commit),
        last_change,
    })
}

/// What identifies the app's content in a commit: the bundle's path and blob id, or `None` when
/// the app is not there. Comparing two of these answers "did the app change?" without reading
/// any bundle.
pub(crate) fn fingerprint(
    repo: &Repository,
    commit: &Commit<'_>,
    locator: &AppLocator,
    limit: u64,
) -> Result<Option<(String, Oid)>> {
    match locate(repo, commit, locator, limit) {
        Ok(l) => Ok(Some((l.bundle_path, l.bundle))),
        Err(SourceError::AppNotFound { .. } | SourceError::BundleMissing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn locate(
    repo: &Repository,
    commit: &Commit<'_>,
    locator: &AppLocator,
    limit: u64,
) -> Result<Located> {
    let sha = commit.id().to_string();
    let tree = commit.tree().map_err(|e| git_err(repo, e))?;
    match locator {
        AppLocator::Path(path) => {
            let entry = lookup(repo, &tree, path, &sha)?;
            if entry.filemode() == MODE_TREE {
                return Err(SourceError::UnsupportedLayout {
                    path: path.clone(),
                    reason: "this is a directory, not a JSON export bundle (ToolJet Git Sync 2.0 \
                             splits apps into directories, which is not supported)"
                        .into(),
                });
            }
            Ok(Located {
                bundle_path: clean(path)?.join("/"),
                bundle: entry.id(),
                watch_path: clean(path)?.join("/"),
                git_app_name: String::new(),
                version_name: None,
            })
        }
        AppLocator::ByName(name) => {
            let meta = match lookup(repo, &tree, META_PATH, &sha) {
                Ok(e) => e,
                Err(SourceError::BundleMissing { .. }) => {
                    return Err(SourceError::MetaJsonMissing { commit: sha });
                }
                Err(e) => return Err(e),
            };
            let invalid = |reason: String| SourceError::MetaJsonInvalid {
                commit: sha.clone(),
                reason,
            };
            if meta.filemode() == MODE_TREE {
                return Err(invalid("it is a directory".into()));
            }
            let bytes = read_blob(repo, meta.id(), META_PATH, limit)?;
            let entries: BTreeMap<String, MetaEntry> =
                serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
            let Some(entry) = entries.values().find(|e| &e.git_app_name == name) else {
                let mut available: Vec<String> =
                    entries.values().map(|e| e.git_app_name.clone()).collect();
                available.sort();
                available.dedup();
                return Err(SourceError::AppNotFound {
                    name: name.clone(),
                    commit: sha,
                    available,
                });
            };
            for part in [&entry.git_app_name, &entry.git_version_name] {
                if part.is_empty()
                    || part == "."
                    || part == ".."
                    || part.contains(['/', '\\', '\0'])
                {
                    return Err(SourceError::PathEscapesRepo {
                        path: format!("{}/{}.json", entry.git_app_name, entry.git_version_name),
                        reason: format!("meta.json names a path component {part:?}"),
                    });
                }
            }
            let bundle_path = format!("{}/{}.json", entry.git_app_name, entry.git_version_name);
            let bundle = match lookup(repo, &tree, &bundle_path, &sha) {
                Ok(e) if e.filemode() == MODE_TREE => {
                    return Err(split_layout(&bundle_path));
                }
                Ok(e) => e,
                Err(SourceError::BundleMissing { .. }) => {
                    // A directory per version instead of one file: Git Sync 2.0's split layout.
                    let version_dir = format!("{}/{}", entry.git_app_name, entry.git_version_name);
                    if let Ok(e) = lookup(repo, &tree, &version_dir, &sha)
                        && e.filemode() == MODE_TREE
                    {
                        return Err(split_layout(&version_dir));
                    }
                    return Err(SourceError::BundleMissing {
                        path: bundle_path,
                        commit: sha,
                    });
                }
                Err(e) => return Err(e),
            };
            Ok(Located {
                bundle_path,
                bundle: bundle.id(),
                watch_path: entry.git_app_name.clone(),
                git_app_name: entry.git_app_name.clone(),
                version_name: Some(entry.git_version_name.clone()),
            })
        }
    }
}

fn split_layout(path: &str) -> SourceError {
    SourceError::UnsupportedLayout {
        path: path.to_string(),
        reason: "the app is split into a directory of files (ToolJet Git Sync 2.0), which is not \
                 supported; push the app with classic Git Sync or commit an export bundle"
            .into(),
    }
}

/// Splits a repository-relative path into components, refusing anything that could leave it.
pub(crate) fn clean(path: &str) -> Result<Vec<&str>> {
    let escape = |reason: &str| SourceError::PathEscapesRepo {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.starts_with('/') {
        return Err(escape("it is absolute"));
    }
    if path.contains(['\\', '\0']) {
        return Err(escape("it contains a backslash or NUL"));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(escape("it contains '..'"));
    }
    if parts.is_empty() {
        return Err(escape("it is empty"));
    }
    Ok(parts)
}

/// Walks `path` through trees, never following a symbolic link or entering a submodule.
pub(crate) fn lookup<'r>(
    repo: &'r Repository,
    root: &Tree<'r>,
    path: &str,
    sha: &str,
) -> Result<TreeEntry<'r>> {
    let parts = clean(path)?;
    let missing = || SourceError::BundleMissing {
        path: path.to_string(),
        commit: sha.to_string(),
    };
    let mut tree = root.clone();
    for (i, part) in parts.iter().enumerate() {
        let entry = tree.get_name(part).ok_or_else(missing)?.to_owned();
        match entry.filemode() {
            MODE_LINK => {
                return Err(SourceError::SymlinkNotFollowed {
                    path: parts[..=i].join("/"),
                });
            }
            MODE_SUBMODULE => {
                return Err(SourceError::UnsupportedLayout {
                    path: parts[..=i].join("/"),
                    reason: "it is a git submodule, which is not read".into(),
                });
            }
            _ => {}
        }
        if i + 1 == parts.len() {
            return Ok(entry);
        }
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(missing());
        }
        tree = repo.find_tree(entry.id()).map_err(|e| git_err(repo, e))?;
    }
    Err(missing())
}

/// Reads a blob after checking its size in the object header (a huge blob is never loaded).
pub(crate) fn read_blob(repo: &Repository, oid: Oid, path: &str, limit: u64) -> Result<Vec<u8>> {
    let odb = repo.odb().map_err(|e| git_err(repo, e))?;
    let (size, _) = odb.read_header(oid).map_err(|e| git_err(repo, e))?;
    if size as u64 > limit {
        return Err(SourceError::BundleTooLarge {
            path: path.to_string(),
            size: size as u64,
            limit,
        });
    }
    let blob = repo.find_blob(oid).map_err(|e| git_err(repo, e))?;
    Ok(blob.content().to_vec())
}

/// The id of the entry at `path` in `commit`, `None` when absent (or not reachable safely).
fn entry_id(repo: &Repository, commit: &Commit<'_>, path: &str) -> Option<Oid> {
    let tree = commit.tree().ok()?;
    lookup(repo, &tree, path, "").ok().map(|e| e.id())
}

/// Newest commit along first parents whose entry at `path` differs from its parent's.
fn last_change(repo: &Repository, commit: &Commit<'_>, path: &str) -> Result<CommitInfo> {
    let mut current = commit.clone();
    let mut id = entry_id(repo, &current, path);
    // Bounded so a pathological history cannot stall a reconcile.
    for _ in 0..100_000 {
        let Ok(parent) = current.parent(0) else {
            break;
        };
        let parent_id = entry_id(repo, &parent, path);
        if parent_id != id {
            break;
        }
        id = parent_id;
        current = parent;
    }
    Ok(CommitInfo::of(&current))
}

pub(crate) fn git_err(repo: &Repository, e: git2::Error) -> SourceError {
    SourceError::Mirror {
        path: repo.path().display().to_string(),
        message: e.message().to_string(),
    }
}
