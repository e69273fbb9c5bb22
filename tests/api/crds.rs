//! `crds/crds.yaml` must be exactly what `tooljet-operator crds` prints.

use std::path::Path;
use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tooljet_operator::api::crds_yaml;

const REGENERATE: &str = "run `cargo run -- crds > crds/crds.yaml` and commit the result";

#[test]
fn crds_directory_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/crds.yaml");
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {REGENERATE}", path.display()));
    let generated = crds_yaml().expect("CRDs serialize");
    assert!(
        on_disk == generated,
        "crds/crds.yaml is stale (the API types changed); {REGENERATE}"
    );
}

#[test]
fn crds_command_prints_the_generated_crds() {
    let out = Command::new(env!("CARGO_BIN_EXE_tooljet-operator"))
        .arg("crds")
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "crds failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).expect("utf-8"),
        crds_yaml().expect("CRDs serialize")
    );
}

#[test]
fn crds_yaml_reads_back_as_three_crds() {
    let yaml = crds_yaml().expect("CRDs serialize");
    let crds: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&yaml).expect("CRD YAML parses");
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "tooljetinstances.gitops.tooljet.dev",
            "appimports.gitops.tooljet.dev",
            "appexports.gitops.tooljet.dev"
        ]
    );
    for crd in &crds {
        assert_eq!(crd.spec.group, "gitops.tooljet.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["tooljet".to_string()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
    let short: Vec<_> = crds
        .iter()
        .map(|c| c.spec.names.short_names.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        short,
        [
            vec!["tji".to_string()],
            vec!["tjapp".to_string()],
            vec!["tjexport".to_string()]
        ]
    );
    let columns = |i: usize| -> Vec<String> {
        crds[i].spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(
        columns(0),
        ["Environment", "URL", "Version", "Ready", "Age"]
    );
    assert_eq!(
        columns(1),
        ["Environment", "App", "Commit", "Ready", "Editable", "Age"]
    );
    assert_eq!(
        columns(2),
        ["Environment", "Branch", "Commit", "Ready", "Age"]
    );
}

#[test]
fn run_without_a_cluster_configuration_fails_and_says_what_to_set() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_tooljet-operator"))
        .arg("run")
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("absent"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("set KUBECONFIG or run in a cluster"),
        "{stderr}"
    );
}

/// Runs `run` without a cluster (it logs an error and exits 1) and returns its stderr.
fn run_logs(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_tooljet-operator"))
        .args(args)
        .arg("run")
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("absent"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("TOOLJET_OPERATOR_LOG_FORMAT")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).expect("utf-8 logs")
}

#[test]
fn logs_are_json_lines_when_not_on_a_terminal_and_text_on_request_never_coloured() {
    for logs in [run_logs(&[]), run_logs(&["--log-format", "json"])] {
        let lines: Vec<&str> = logs.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "some log line: {logs}");
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            assert!(v["message"].is_string(), "fields at the top level: {line}");
        }
    }
    let text = run_logs(&["--log-format", "text"]);
    assert!(text.contains("ERROR"), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap_or("")).is_err());
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI colour codes off a terminal: {text}"
    );
}
