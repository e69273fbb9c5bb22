//! Writing to a repository: a commit built on top of a branch's newest commit without a checkout
//! (tree builders on the shared bare mirror), pushed without force.
//!
//! Each attempt lists the remote refs, fetches the branch (or, when it does not exist, the
//! default branch that `HEAD` names), asks the caller's planner what to write on top of that
//! head, and pushes `refs/tooljet-export/<branch>:refs/heads/<branch>` (no '+'). A branch that
//! moved in between (libgit2's fast-forward check, or the server refusing a stale ref) starts a
//! new attempt on the new head, up to [`PushRequest::max_attempts`]; every other refusal is an
//! error. No empty commit is ever made: a planner that has nothing to write, or changes that leave
//! the tree as it was, end in [`PushOutcome::Unchanged`].

use std::sync::Arc;

use git2::{ObjectType, Oid, Repository, Signature, Tree};

use super::cache::{self, Job};
use super::error::{Result, SourceError};
use super::layout::{self, CommitInfo, MODE_TREE, git_err};
use super::remote::{PushVerdict, display_url};

/// Where the commit to push is kept in the mirror while it is pushed.
const PUSH_REF_PREFIX: &str = "refs/tooljet-export/";
const MODE_BLOB: i32 = 0o100644;

/// One change of a file, by path relative to the repository root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileChange {
    Write {
        path: String,
        bytes: Vec<u8>,
    },
    /// Removing a file that is not there is not a change.
    Remove {
        path: String,
    },
}

/// What a planner wants committed.
#[derive(Clone, Debug)]
pub struct Planned {
    pub changes: Vec<FileChange>,
    pub message: String,
}

/// Asked on every attempt, with the head the commit goes on top of; `None`: nothing to commit.
pub type Planner = Arc<dyn Fn(&HeadTree<'_>) -> Result<Option<Planned>> + Send + Sync>;

/// A commit to build and push.
#[derive(Clone)]
pub struct PushRequest {
    pub branch: String,
    pub author_name: String,
    pub author_email: String,
    pub planner: Planner,
    /// Attempts before [`SourceError::PushConflict`] (at least 1).
    pub max_attempts: u32,
}

/// What [`crate::source::SourceCache::commit_and_push`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed {
        commit: CommitInfo,
        /// The commit it was built on (`None`: the first commit of an empty repository).
        parent: Option<String>,
        /// The branch did not exist and was created.
        created_branch: bool,
        attempts: u32,
    },
    /// Nothing to commit; the branch's head (`None`: the branch and repository are empty).
    /// `branch_exists` false: the branch is not on the remote, and `head` is the default
    /// branch's, which already holds what the planner wanted (the branch is not created for
    /// nothing).
    Unchanged {
        head: Option<String>,
        branch_exists: bool,
    },
}

/// Read-only view of the tree a commit will be built on.
pub struct HeadTree<'r> {
    repo: &'r Repository,
    tree: Option<Tree<'r>>,
    head: Option<String>,
    /// The branch exists on the remote (else `head` is the default branch's, or none).
    branch_exists: bool,
    limit: u64,
}

impl HeadTree<'_> {
    /// The commit the new one will descend from.
    pub fn head(&self) -> Option<&str> {
        self.head.as_deref()
    }

    pub fn branch_exists(&self) -> bool {
        self.branch_exists
    }

    /// The file at `path`, `None` when absent (or a directory).
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(tree) = &self.tree else {
            return Ok(None);
        };
        match layout::lookup(self.repo, tree, path, self.head.as_deref().unwrap_or("")) {
            Ok(e) if e.kind() == Some(ObjectType::Blob) => {
                layout::read_blob(self.repo, e.id(), path, self.limit).map(Some)
            }
            Ok(_) | Err(SourceError::BundleMissing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names of the files directly in directory `dir` (empty when there is no such directory).
    pub fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let Some(tree) = &self.tree else {
            return Ok(Vec::new());
        };
        let sub = if dir.trim_matches('/').is_empty() {
            tree.clone()
        } else {
            match layout::lookup(self.repo, tree, dir, "") {
                Ok(e) if e.filemode() == MODE_TREE => self
                    .repo
                    .find_tree(e.id())
                    .map_err(|e| git_err(self.repo, e))?,
                Ok(_) | Err(SourceError::BundleMissing { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        };
        Ok(sub
            .iter()
            .filter(|e| e.kind() == Some(ObjectType::Blob))
            .filter_map(|e| e.name().ok().map(str::to_string))
            .collect())
    }
}

/// Validates the branch name as git does.
pub fn check_branch(branch: &str) -> Result<()> {
    // `git check-ref-format --branch` also refuses a leading '-' (it would read as an option).
    if branch.is_empty()
        || branch.starts_with('-')
        || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
    {
        return Err(SourceError::InvalidBranch {
            name: branch.to_string(),
        });
    }
    Ok(())
}

/// Checks that a repository-relative path stays inside the repository (no '..', not absolute).
pub fn check_repo_path(path: &str) -> Result<()> {
    layout::clean(path).map(|_| ())
}

pub(super) fn commit_and_push(
    job: &mut Job,
    repo: &Repository,
    req: &PushRequest,
) -> Result<PushOutcome> {
    check_branch(&req.branch)?;
    let refname = format!("refs/heads/{}", req.branch);
    let push_ref = format!("{PUSH_REF_PREFIX}{}", req.branch);
    let attempts = req.max_attempts.max(1);
    for attempt in 1..=attempts {
        let (base, branch_exists) = fetch_base(job, repo, &refname)?;
        let base_commit = match base {
            Some(oid) => Some(repo.find_commit(oid).map_err(|e| git_err(repo, e))?),
            None => None,
        };
        let base_tree = match &base_commit {
            Some(c) => Some(c.tree().map_err(|e| git_err(repo, e))?),
            None => None,
        };
        let view = HeadTree {
            repo,
            tree: base_tree.clone(),
            head: base.map(|o| o.to_string()),
            branch_exists,
            limit: job.limit,
        };
        let Some(planned) = (req.planner)(&view)? else {
            return Ok(PushOutcome::Unchanged {
                head: view.head,
                branch_exists,
            });
        };
        let new_tree = apply(repo, base_tree.as_ref(), &planned.changes)?;
        let base_tree_id = base_tree.as_ref().map(Tree::id);
        let unchanged = match (new_tree, base_tree_id) {
            (None, None) => true,
            (Some(n), Some(b)) => n == b,
            _ => false,
        };
        // Creating a branch at the default branch's head is a change even with the same tree,
        // but an empty commit is not made for it: the caller asked for files, not for a branch.
        if unchanged {
            return Ok(PushOutcome::Unchanged {
                head: view.head,
                branch_exists,
            });
        }
        let tree_id = match new_tree {
            Some(t) => t,
            None => empty_tree(repo)?,
        };
        let tree = repo.find_tree(tree_id).map_err(|e| git_err(repo, e))?;
        let sig = Signature::now(&req.author_name, &req.author_email).map_err(|e| {
            SourceError::Internal(format!(
                "invalid author {:?}: {}",
                req.author_name,
                e.message()
            ))
        })?;
        let parents: Vec<&git2::Commit<'_>> = base_commit.iter().collect();
        let oid = repo
            .commit(None, &sig, &sig, &planned.message, &tree, &parents)
            .map_err(|e| git_err(repo, e))?;
        repo.reference(&push_ref, oid, true, "tooljet-operator: commit to push")
            .map_err(|e| git_err(repo, e))?;
        let verdict = cache::remote(job).push(repo, &format!("{push_ref}:{refname}"));
        let _ = repo.find_reference(&push_ref).and_then(|mut r| r.delete());
        match verdict? {
            PushVerdict::Accepted => {
                // The mirror's branch follows the remote's, as after a fetch.
                let _ = repo.reference(&refname, oid, true, "tooljet-operator: pushed");
                job.forget_listing();
                let commit = repo.find_commit(oid).map_err(|e| git_err(repo, e))?;
                tracing::info!(url = %display_url(&job.url), branch = %req.branch, commit = %oid, attempt, "pushed");
                return Ok(PushOutcome::Pushed {
                    commit: CommitInfo::of(&commit),
                    parent: base.map(|o| o.to_string()),
                    created_branch: !branch_exists,
                    attempts: attempt,
                });
            }
            PushVerdict::Stale(why) => {
                tracing::info!(url = %display_url(&job.url), branch = %req.branch, attempt, reason = %why, "branch moved during the push; building the commit again on its new head");
                job.forget_listing();
            }
            PushVerdict::Rejected(reason) => {
                return Err(SourceError::PushRejected {
                    url: display_url(&job.url),
                    branch: req.branch.clone(),
                    reason,
                });
            }
        }
    }
    Err(SourceError::PushConflict {
        url: display_url(&job.url),
        branch: req.branch.clone(),
        attempts,
    })
}

/// The commit to build on: the branch's head, else the default branch's (`HEAD`), else none
/// (an empty repository). Fetched into the mirror when missing. Returns (commit, branch exists).
fn fetch_base(job: &mut Job, repo: &Repository, refname: &str) -> Result<(Option<Oid>, bool)> {
    let refs = job.list_refs(repo)?;
    let find = |name: &str| refs.iter().find(|(n, _)| n == name).map(|(_, o)| *o);
    let (source_ref, oid, exists) = match find(refname) {
        Some(oid) => (refname.to_string(), oid, true),
        None => {
            let Some(head) = find("HEAD") else {
                return Ok((None, false));
            };
            // The branch HEAD points at: the one of refs/heads/* with HEAD's commit.
            let named = refs
                .iter()
                .find(|(n, o)| n.starts_with("refs/heads/") && *o == head)
                .map(|(n, _)| n.clone());
            let Some(named) = named else {
                return Ok((None, false));
            };
            (named, head, false)
        }
    };
    if repo.find_commit(oid).is_err() {
        cache::fetch(job, repo, &[&format!("+{source_ref}:{source_ref}")])?;
        if repo.find_commit(oid).is_err() {
            // It moved again between listing and fetching: build on what was fetched.
            let now = repo
                .find_reference(&source_ref)
                .and_then(|r| r.peel_to_commit())
                .map_err(|e| git_err(repo, e))?;
            return Ok((Some(now.id()), exists));
        }
    }
    Ok((Some(oid), exists))
}

fn empty_tree(repo: &Repository) -> Result<Oid> {
    repo.treebuilder(None)
        .and_then(|b| b.write())
        .map_err(|e| git_err(repo, e))
}

/// The tree after the changes, `None` when it ends up empty.
fn apply(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changes: &[FileChange],
) -> Result<Option<Oid>> {
    let mut edits: Vec<(Vec<String>, Option<Oid>)> = Vec::with_capacity(changes.len());
    for change in changes {
        let (path, blob) = match change {
            FileChange::Write { path, bytes } => {
                (path, Some(repo.blob(bytes).map_err(|e| git_err(repo, e))?))
            }
            FileChange::Remove { path } => (path, None),
        };
        let parts = layout::clean(path)?;
        edits.push((parts.iter().map(|p| p.to_string()).collect(), blob));
    }
    edit_tree(repo, base, &edits, "")
}

/// Applies edits (path components relative to this tree) recursively; empty trees vanish.
fn edit_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    edits: &[(Vec<String>, Option<Oid>)],
    at: &str,
) -> Result<Option<Oid>> {
    let mut builder = repo.treebuilder(base).map_err(|e| git_err(repo, e))?;
    let mut dirs: Vec<&str> = Vec::new();
    for (parts, blob) in edits {
        let Some((first, rest)) = parts.split_first() else {
            continue;
        };
        if rest.is_empty() {
            match blob {
                Some(oid) => {
                    if builder
                        .get(first)
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.filemode() == MODE_TREE)
                    {
                        return Err(SourceError::UnsupportedLayout {
                            path: format!("{at}{first}"),
                            reason: "a directory is in the way of a file to write".into(),
                        });
                    }
                    builder
                        .insert(first, *oid, MODE_BLOB)
                        .map_err(|e| git_err(repo, e))?;
                }
                None => {
                    if builder.get(first).ok().flatten().is_some() {
                        builder.remove(first).map_err(|e| git_err(repo, e))?;
                    }
                }
            }
        } else if !dirs.contains(&first.as_str()) {
            dirs.push(first);
        }
    }
    for dir in dirs {
        let sub_edits: Vec<(Vec<String>, Option<Oid>)> = edits
            .iter()
            .filter(|(p, _)| p.len() > 1 && p[0] == dir)
            .map(|(p, b)| (p[1..].to_vec(), *b))
            .collect();
        let existing = builder
            .get(dir)
            .ok()
            .flatten()
            .map(|e| (e.id(), e.filemode()));
        let sub_base = match existing {
            Some((id, MODE_TREE)) => Some(repo.find_tree(id).map_err(|e| git_err(repo, e))?),
            Some(_) => {
                return Err(SourceError::UnsupportedLayout {
                    path: format!("{at}{dir}"),
                    reason: "a file (or link) is in the way of a directory to write into".into(),
                });
            }
            None => None,
        };
        match edit_tree(repo, sub_base.as_ref(), &sub_edits, &format!("{at}{dir}/"))? {
            Some(oid) => {
                builder
                    .insert(dir, oid, MODE_TREE)
                    .map_err(|e| git_err(repo, e))?;
            }
            None => {
                if existing.is_some() {
                    builder.remove(dir).map_err(|e| git_err(repo, e))?;
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    builder.write().map(Some).map_err(|e| git_err(repo, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_git_refuses_are_refused() {
        for bad in [
            "",
            "a..b",
            "has space",
            "x.lock",
            "a:b",
            "~x",
            "-/x/",
            "end/",
        ] {
            assert!(
                matches!(check_branch(bad), Err(SourceError::InvalidBranch { .. })),
                "{bad:?} should be refused"
            );
        }
        for good in ["main", "tooljet/development", "feature-1"] {
            assert!(check_branch(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn tree_edits_write_remove_and_drop_empty_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let w = |p: &str, b: &str| FileChange::Write {
            path: p.into(),
            bytes: b.as_bytes().to_vec(),
        };
        let t1 = apply(
            &repo,
            None,
            &[w("a/b/c.json", "1"), w(".meta/meta.json", "{}")],
        )
        .expect("apply")
        .expect("tree");
        let tree1 = repo.find_tree(t1).expect("tree");
        assert!(tree1.get_path(std::path::Path::new("a/b/c.json")).is_ok());
        let t2 = apply(
            &repo,
            Some(&tree1),
            &[
                FileChange::Remove {
                    path: "a/b/c.json".into(),
                },
                w("a/d.json", "2"),
            ],
        )
        .expect("apply")
        .expect("tree");
        let tree2 = repo.find_tree(t2).expect("tree");
        assert!(
            tree2.get_path(std::path::Path::new("a/b")).is_err(),
            "empty dir dropped"
        );
        assert!(tree2.get_path(std::path::Path::new("a/d.json")).is_ok());
        // Same content again: same tree id, which is how "no empty commit" is decided.
        let t3 = apply(&repo, Some(&tree2), &[w("a/d.json", "2")]).expect("apply");
        assert_eq!(t3, Some(t2));
        for bad in ["../x.json", "/etc/passwd", "a/../../x"] {
            assert!(
                matches!(
                    apply(&repo, Some(&tree2), &[w(bad, "x")]),
                    Err(SourceError::PathEscapesRepo { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
