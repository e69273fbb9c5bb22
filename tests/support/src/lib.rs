//! The operator's shared test set-up, one of each: the engine rig ([`engine::EngineRig`]: a real
//! git repository, the ToolJet stand-in, a git cache and the engine), the CLI pipeline
//! ([`pipeline::Pipeline`]: manifests, state file and the real binary), the stand-in set-up
//! ([`pipeline::start_standin`]), the kube mocks, and the external tools of the shipping tests.

pub mod engine;
pub mod http_probe;
pub mod kube_mock;
pub mod pipeline;
pub mod poll;
pub mod promql;
pub mod reconcile_rig;
pub mod tools;

use std::path::{Path, PathBuf};

/// The operator's repository (the tests' files: fixtures, chart, deploy, corpus).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `tooljet-operator` binary cargo built for this test run: beside the test binary's
/// `deps/` folder (what `CARGO_BIN_EXE_tooljet-operator` names in the operator's own tests).
pub fn operator_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir.join(format!("tooljet-operator{}", std::env::consts::EXE_SUFFIX))
}
