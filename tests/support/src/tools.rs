//! External programs the shipping tests drive (helm, kubectl, lua, buildah, podman, promtool,
//! prometheus): where to find them, and how a missing one is reported.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> &'static Path {
    crate::repo_root()
}

/// A tool from `$env_var`, `.ci/bin/<name>` or PATH. When absent: fails in CI (`CI=true`, where
/// `.ci/run` installs every tool), else says why the test skips (`how_to_get` says how to get it)
/// and returns None.
pub fn tool(env_var: &str, names: &[&str], how_to_get: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env_var)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            names
                .iter()
                .map(|n| repo().join(".ci/bin").join(n))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        skip_unless_ci(&format!(
            "{} not found (set {env_var}, {how_to_get}, or put it on PATH)",
            names[0]
        ));
    }
    found
}

/// Reports a missing prerequisite: a failure in CI, a skip message elsewhere.
pub fn skip_unless_ci(msg: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}: required in CI"
    );
    eprintln!("SKIPPED: {msg}");
}

/// Runs a command; Ok(stdout) on success, Err(what failed, with its output) otherwise.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
