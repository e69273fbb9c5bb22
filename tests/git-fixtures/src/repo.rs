use std::path::{Path, PathBuf};

use crate::util::git;

/// Who made a commit and when (`date` in any format git accepts, e.g. `2026-01-02T03:04:05Z`).
#[derive(Clone, Debug)]
pub struct Author {
    pub name: String,
    pub email: String,
    pub date: String,
}

impl Default for Author {
    fn default() -> Self {
        Author {
            name: "Ada Tester".into(),
            email: "ada@example.com".into(),
            date: "2026-01-01T12:00:00Z".into(),
        }
    }
}

/// A working repository (`work/`) and the bare repository it publishes to (`<name>.git`), both in
/// one temporary directory that is removed on drop.
pub struct TestRepo {
    dir: tempfile::TempDir,
    work: PathBuf,
    served: PathBuf,
    name: String,
}

impl TestRepo {
    /// An empty repository named `repo` on branch `master` (ToolJet's default branch).
    pub fn new() -> TestRepo {
        TestRepo::named("repo")
    }

    /// An empty repository served as `<name>.git`.
    pub fn named(name: &str) -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        let served = dir.path().join(format!("{name}.git"));
        std::fs::create_dir_all(&work).expect("mkdir work");
        git(&work, &["init", "-q", "-b", "master"], &[]);
        git(&work, &["config", "core.symlinks", "true"], &[]);
        git(
            dir.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "master",
                served.to_str().expect("utf8"),
            ],
            &[],
        );
        // Lets `git daemon` serve it without --export-all and lets http-backend accept it.
        std::fs::write(served.join("git-daemon-export-ok"), b"").expect("export-ok");
        git(
            &work,
            &["remote", "add", "served", served.to_str().expect("utf8")],
            &[],
        );
        TestRepo {
            dir,
            work,
            served,
            name: name.to_string(),
        }
    }

    /// The working tree.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The bare repository the servers serve.
    pub fn served_path(&self) -> &Path {
        &self.served
    }

    /// The directory holding the served repository (a server's base path / project root).
    pub fn base_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<name>.git`, the served repository's name relative to [`base_dir`](Self::base_dir).
    pub fn served_name(&self) -> String {
        format!("{}.git", self.name)
    }

    /// `file:///.../<name>.git`
    pub fn file_url(&self) -> String {
        format!("file://{}", self.served.display())
    }

    /// Writes a file in the working tree (parents created).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.work.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, contents).expect("write file");
        self
    }

    /// Creates a symbolic link `path` -> `target` in the working tree.
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let p = self.work.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::os::unix::fs::symlink(target, p).expect("symlink");
        self
    }

    /// Removes a file or directory from the working tree.
    pub fn remove(&self, path: &str) -> &Self {
        let p = self.work.join(path);
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("rm dir");
        } else {
            std::fs::remove_file(p).expect("rm file");
        }
        self
    }

    /// Commits everything in the working tree with the default author; returns the sha.
    pub fn commit(&self, message: &str) -> String {
        self.commit_as(message, &Author::default())
    }

    /// Commits everything as `author` (also used as committer) and publishes; returns the sha.
    pub fn commit_as(&self, message: &str, author: &Author) -> String {
        let envs = [
            ("GIT_AUTHOR_NAME", author.name.clone()),
            ("GIT_AUTHOR_EMAIL", author.email.clone()),
            ("GIT_AUTHOR_DATE", author.date.clone()),
            ("GIT_COMMITTER_NAME", author.name.clone()),
            ("GIT_COMMITTER_EMAIL", author.email.clone()),
            ("GIT_COMMITTER_DATE", author.date.clone()),
        ];
        git(&self.work, &["add", "-A"], &[]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
            &envs,
        );
        self.publish();
        self.head()
    }

    /// Commits a file straight to `branch` of the served repository, as another developer's push
    /// would (the working repository is not involved, so nothing is force-pushed over what
    /// others pushed there). Returns the new commit's sha.
    pub fn push_to_served(
        &self,
        branch: &str,
        path: &str,
        contents: &str,
        message: &str,
    ) -> String {
        let tmp = tempfile::tempdir().expect("tempdir");
        let clone = tmp.path().join("clone");
        let served = self.served.to_str().expect("utf8");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "-b",
                branch,
                served,
                clone.to_str().expect("utf8"),
            ],
            &[],
        );
        let file = clone.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&file, contents).expect("write");
        let who = Author::default();
        let envs = [
            ("GIT_AUTHOR_NAME", who.name.clone()),
            ("GIT_AUTHOR_EMAIL", who.email.clone()),
            ("GIT_COMMITTER_NAME", who.name.clone()),
            ("GIT_COMMITTER_EMAIL", who.email.clone()),
        ];
        git(&clone, &["add", "-A"], &[]);
        git(&clone, &["commit", "-q", "-m", message], &envs);
        git(
            &clone,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
            &[],
        );
        git(&clone, &["rev-parse", "HEAD"], &[])
    }

    /// Runs git in the served (bare) repository and returns its output (`log`, `show`, ...).
    pub fn served_git(&self, args: &[&str]) -> String {
        git(&self.served, args, &[])
    }

    /// The sha of HEAD in the working repository.
    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"], &[])
    }

    /// Creates (or moves) a lightweight tag at HEAD and publishes.
    pub fn tag(&self, name: &str) {
        git(&self.work, &["tag", "-f", name], &[]);
        self.publish();
    }

    /// Creates (or moves) an annotated tag at HEAD and publishes.
    pub fn annotated_tag(&self, name: &str, message: &str) {
        let a = Author::default();
        let envs = [
            ("GIT_COMMITTER_NAME", a.name),
            ("GIT_COMMITTER_EMAIL", a.email),
            ("GIT_COMMITTER_DATE", a.date),
        ];
        git(&self.work, &["tag", "-f", "-a", name, "-m", message], &envs);
        self.publish();
    }

    /// Creates a branch at HEAD and switches to it.
    pub fn branch(&self, name: &str) {
        git(&self.work, &["checkout", "-q", "-b", name], &[]);
        self.publish();
    }

    /// Switches to an existing branch.
    pub fn checkout(&self, name: &str) {
        git(&self.work, &["checkout", "-q", name], &[]);
    }

    /// Moves the current branch to `rev` (e.g. `HEAD~1` or a sha), resets the working tree, and
    /// publishes with force: with a commit after it, this is a force-push.
    pub fn reset_hard(&self, rev: &str) {
        git(&self.work, &["reset", "-q", "--hard", rev], &[]);
        self.publish();
    }

    /// Sets a config value in the served repository, e.g. `uploadpack.allowAnySHA1InWant`.
    pub fn served_config(&self, key: &str, value: &str) {
        git(&self.served, &["config", key, value], &[]);
    }

    /// Pushes every branch and tag to the served repository, forcing and pruning.
    /// Objects that become unreachable stay in the served repository (no gc), like on most hosts.
    pub fn publish(&self) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "--force",
                "--prune",
                "served",
                "refs/heads/*:refs/heads/*",
                "refs/tags/*:refs/tags/*",
            ],
            &[],
        );
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        TestRepo::new()
    }
}
