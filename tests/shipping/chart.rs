//! The shipping artefacts: the Helm chart (linted and rendered with real helm), the kustomize
//! overlays (rendered with `kubectl kustomize`), the Argo CD health check (run with a real Lua)
//! and the GitOps manifests that point at them.
//!
//! Tools come from `HELM` / `KUBECTL` / `LUA`, then `.ci/bin/` (`.ci/install-helm.sh` fills it),
//! then PATH. A missing tool fails the test in CI (`CI=true`) and skips it with a message
//! elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::CustomResourceExt;
use serde_json::{Value, json};
use tooljet_operator::api::{
    AppImport, Environment, ToolJetInstance, UpdatePolicy, validate_against_crd,
};

use test_support::tools;
use tools::{repo, run, tool};

const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

fn chart_dir() -> PathBuf {
    repo().join("charts/tooljet-operator")
}

const INSTALL_HELM: &str = "run .ci/install-helm.sh";

fn helm() -> Option<PathBuf> {
    tool("HELM", &["helm"], INSTALL_HELM)
}

fn kubectl() -> Option<PathBuf> {
    tool("KUBECTL", &["kubectl"], INSTALL_HELM)
}

/// helm with its config, cache and data in a temporary directory (nothing from the user's home).
fn helm_cmd(helm: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(helm);
    for (var, dir) in [
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.join(dir));
    }
    cmd
}

/// `helm template` of the chart as release `release` in namespace `ns`, with values files and
/// `--set` pairs; the non-empty documents.
fn template(
    helm: &Path,
    release: &str,
    ns: &str,
    values: &[&str],
    set: &[&str],
) -> Result<Vec<Value>, String> {
    let home = tempfile::tempdir().expect("temp dir");
    let mut cmd = helm_cmd(helm, home.path());
    cmd.arg("template")
        .arg(release)
        .arg(chart_dir())
        .args(["--namespace", ns]);
    for v in values {
        cmd.arg("-f").arg(chart_dir().join(v));
    }
    for s in set {
        cmd.args(["--set", s]);
    }
    let docs = parse_docs(&run(&mut cmd)?, release);
    assert_well_formed(
        &docs,
        &format!("helm template {release} {values:?} {set:?}"),
    );
    Ok(docs)
}

fn parse_docs(text: &str, origin: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("{origin}: rendered output is not YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str, origin: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "{origin}: expected one {kind}");
    found[0]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The hardening every operator Deployment must have, wherever it comes from.
fn assert_hardened_deployment(dep: &Value, origin: &str) {
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{origin}");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{origin}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{origin}"
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{origin}");
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{origin}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{origin}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{origin}");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{origin}");
    assert!(
        sc["capabilities"]["add"].is_null(),
        "{origin}: adds capabilities"
    );
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{origin}");
    for kind in ["requests", "limits"] {
        let r = &c["resources"][kind];
        assert!(
            r["cpu"].is_string() || r["cpu"].is_number(),
            "{origin}: no cpu {kind}"
        );
        assert!(r["memory"].is_string(), "{origin}: no memory {kind}");
    }
    // The git cache: an emptyDir at the path passed as --cache-dir.
    let args = strings(&c["args"]);
    assert_eq!(args.first(), Some(&"run"), "{origin}");
    assert!(
        args.contains(&"--cache-dir=/var/cache/tooljet-operator"),
        "{origin}: {args:?}"
    );
    assert!(
        args.iter()
            .any(|a| a.starts_with("--metrics-addr=0.0.0.0:")),
        "{origin}: {args:?}"
    );
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["mountPath"] == "/var/cache/tooljet-operator")
        })
        .unwrap_or_else(|| panic!("{origin}: no mount at the cache dir"));
    let volume = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
        .unwrap_or_else(|| panic!("{origin}: no cache volume"));
    assert!(
        volume["emptyDir"].is_object(),
        "{origin}: cache not an emptyDir"
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"], "/healthz",
        "{origin}"
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"], "/readyz",
        "{origin}"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http", "{origin}");
    assert_eq!(c["ports"][0]["name"], "http", "{origin}");
}

/// Every built-in object deserializes as its Kubernetes type and serializes back unchanged: a
/// misspelt or misplaced field would be dropped on the way and show up here.
fn assert_well_formed(docs: &[Value], origin: &str) {
    use k8s_openapi::api::{apps, core, networking, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, origin: &str) {
        let typed: T = serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{origin}: {} is malformed: {e}", doc["kind"]));
        let back = serde_json::to_value(&typed).expect("serializes");
        assert_eq!(
            &back, doc,
            "{origin}: {} has fields its type does not know",
            doc["kind"]
        );
    }
    for doc in docs {
        match doc["kind"].as_str().unwrap_or_default() {
            "Deployment" => round_trip::<apps::v1::Deployment>(doc, origin),
            "Service" => round_trip::<core::v1::Service>(doc, origin),
            "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(doc, origin),
            "Secret" => round_trip::<core::v1::Secret>(doc, origin),
            "Namespace" => round_trip::<core::v1::Namespace>(doc, origin),
            "Role" => round_trip::<rbac::v1::Role>(doc, origin),
            "ClusterRole" => round_trip::<rbac::v1::ClusterRole>(doc, origin),
            "RoleBinding" => round_trip::<rbac::v1::RoleBinding>(doc, origin),
            "ClusterRoleBinding" => round_trip::<rbac::v1::ClusterRoleBinding>(doc, origin),
            "NetworkPolicy" => round_trip::<networking::v1::NetworkPolicy>(doc, origin),
            "ConfigMap" => round_trip::<core::v1::ConfigMap>(doc, origin),
            "PrometheusRule" => check_prometheus_rule(doc, origin),
            "CustomResourceDefinition" => round_trip::<ext::CustomResourceDefinition>(doc, origin),
            "ToolJetInstance" | "AppImport" | "ServiceMonitor" => {}
            other => panic!("{origin}: unexpected kind {other}"),
        }
    }
}

/// The shape of monitoring.coreos.com/v1 PrometheusRule that Prometheus operators accept: groups
/// of named rules, each an alert or a recording rule with a PromQL expression and only the fields
/// the CRD knows.
fn check_prometheus_rule(doc: &Value, origin: &str) {
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{origin}");
    let groups = doc["spec"]["groups"].as_array().expect("spec.groups");
    assert!(!groups.is_empty(), "{origin}: no rule groups");
    for group in groups {
        assert!(
            group["name"].is_string(),
            "{origin}: a group without a name"
        );
        for rule in group["rules"].as_array().expect("rules") {
            let fields: BTreeSet<&str> = rule
                .as_object()
                .expect("a rule is an object")
                .keys()
                .map(String::as_str)
                .collect();
            let known = BTreeSet::from(["alert", "record", "expr", "for", "labels", "annotations"]);
            assert!(fields.is_subset(&known), "{origin}: rule fields {fields:?}");
            assert!(
                rule["alert"].is_string() != rule["record"].is_string(),
                "{origin}: a rule is an alert or a recording rule: {rule}"
            );
            assert!(
                rule["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{origin}: {rule}"
            );
        }
    }
}

type Verbs = BTreeMap<String, BTreeSet<String>>;

/// The rules of a Role or ClusterRole as "group/resource" -> verbs; no wildcard anywhere.
fn verbs(role: &Value, origin: &str) -> Verbs {
    let mut out = Verbs::new();
    for rule in role["rules"].as_array().expect("rules") {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            assert!(
                !strings(&rule[field]).contains(&"*"),
                "{origin}: wildcard in {field}: {rule}"
            );
        }
        for group in strings(&rule["apiGroups"]) {
            for res in strings(&rule["resources"]) {
                out.entry(format!("{group}/{res}"))
                    .or_default()
                    .extend(strings(&rule["verbs"]).iter().map(|v| v.to_string()));
            }
        }
    }
    out
}

fn expect(pairs: &[(&str, &[&str])]) -> Verbs {
    pairs
        .iter()
        .map(|(r, v)| (r.to_string(), v.iter().map(|v| v.to_string()).collect()))
        .collect()
}

fn operator_verbs() -> Verbs {
    const FULL: &[&str] = &["get", "list", "watch", "patch", "update"];
    const STATUS: &[&str] = &["get", "patch", "update"];
    expect(&[
        ("gitops.tooljet.dev/appimports", FULL),
        ("gitops.tooljet.dev/tooljetinstances", FULL),
        ("gitops.tooljet.dev/appexports", &["get", "list", "watch"]),
        ("gitops.tooljet.dev/appimports/status", STATUS),
        ("gitops.tooljet.dev/appexports/status", STATUS),
        ("gitops.tooljet.dev/tooljetinstances/status", STATUS),
        ("gitops.tooljet.dev/appimports/finalizers", &["update"]),
        (
            "gitops.tooljet.dev/tooljetinstances/finalizers",
            &["update"],
        ),
        ("/secrets", &["list", "watch"]),
        ("events.k8s.io/events", &["create", "patch"]),
    ])
}

fn lease_verbs() -> Verbs {
    expect(&[("coordination.k8s.io/leases", &["get", "create", "update"])])
}

/// The RBAC objects of a rendering: every role by name, and every binding checked to give its
/// role to `sa` in `sa_ns`.
fn rbac(docs: &[Value], sa: &str, sa_ns: &str, origin: &str) -> BTreeMap<String, Value> {
    let mut roles = BTreeMap::new();
    for r in of_kind(docs, "Role")
        .into_iter()
        .chain(of_kind(docs, "ClusterRole"))
    {
        let name = r["metadata"]["name"]
            .as_str()
            .expect("role name")
            .to_owned();
        roles.insert(name, r.clone());
    }
    for b in of_kind(docs, "RoleBinding")
        .into_iter()
        .chain(of_kind(docs, "ClusterRoleBinding"))
    {
        let role = &roles[b["roleRef"]["name"].as_str().expect("roleRef")];
        assert_eq!(b["roleRef"]["kind"], role["kind"], "{origin}: {b}");
        assert_eq!(
            b["metadata"]["namespace"], role["metadata"]["namespace"],
            "{origin}: binding and role in different namespaces"
        );
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}]),
            "{origin}"
        );
    }
    roles
}

/// The plain OpenAPI part of a CRD (enums, patterns, lengths), as the API server checks it.
fn check_openapi<K: CustomResourceExt>(doc: &Value, origin: &str) {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    let schema = serde_json::to_value(schema.expect("schema")).expect("schema serializes");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<_> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{origin}: {errors:?}");
}

/// The environment's objects: they deserialize, pass the CRDs' rules, and fit the environment.
fn check_environment(docs: &[Value], env: &str, ns: &str, origin: &str) {
    let instance_doc = one(docs, "ToolJetInstance", origin);
    check_openapi::<ToolJetInstance>(instance_doc, origin);
    let instance: ToolJetInstance =
        serde_json::from_value(instance_doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
    validate_against_crd(&instance).unwrap_or_else(|e| panic!("{origin}: {e}"));
    assert_eq!(instance.spec.environment.as_str(), env, "{origin}");
    assert_eq!(instance.metadata.namespace.as_deref(), Some(ns), "{origin}");

    let imports = of_kind(docs, "AppImport");
    assert!(!imports.is_empty(), "{origin}: no AppImport");
    for doc in imports {
        check_openapi::<AppImport>(doc, origin);
        let app: AppImport =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
        validate_against_crd(&app).unwrap_or_else(|e| panic!("{origin}: {e}"));
        assert_eq!(app.spec.environment, instance.spec.environment, "{origin}");
        assert_eq!(app.metadata.namespace.as_deref(), Some(ns), "{origin}");
        // Development is editable; staging and production are not; production waits for approval.
        let dev = app.spec.environment == Environment::Development;
        assert_eq!(app.spec.editable, dev, "{origin}");
        assert_eq!(instance.spec.editable_apps_allowed(), dev, "{origin}");
        let manual = app.spec.update_policy == UpdatePolicy::Manual;
        assert_eq!(manual, env == "production", "{origin}: updatePolicy");
    }
}

fn namespaces_of(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .map(str::to_owned)
        .collect()
}

fn env_namespace(env: &str) -> &'static str {
    match env {
        "development" => "tooljet-dev",
        "staging" => "tooljet-staging",
        _ => "tooljet-prod",
    }
}

#[test]
fn shipped_crds_are_the_repositorys() {
    let repo_crds = std::fs::read_to_string(repo().join("crds/crds.yaml")).expect("crds/");
    for copy in [
        "charts/tooljet-operator/crds/crds.yaml",
        "deploy/kustomize/base/crds.yaml",
    ] {
        let text = std::fs::read_to_string(repo().join(copy)).expect(copy);
        assert!(
            text == repo_crds,
            "{copy} differs from crds/crds.yaml; copy it again: cp crds/crds.yaml {copy}"
        );
    }
}

#[test]
fn chart_lints_with_each_values_file() {
    let Some(helm) = helm() else { return };
    let home = tempfile::tempdir().expect("temp dir");
    for env in ENVIRONMENTS {
        let values = chart_dir().join(format!("values-{env}.yaml"));
        let out = run(helm_cmd(&helm, home.path())
            .args(["lint", "--strict", "--namespace", env_namespace(env)])
            .arg(chart_dir())
            .arg("-f")
            .arg(&values))
        .unwrap_or_else(|e| panic!("{env}: {e}"));
        assert!(out.contains("0 chart(s) failed"), "{env}: {out}");
    }
}

#[test]
fn chart_renders_each_environment_hardened_with_least_privilege() {
    let Some(helm) = helm() else { return };
    for env in ENVIRONMENTS {
        let ns = env_namespace(env);
        let release = format!("tooljet-{env}");
        let origin = format!("helm template -f values-{env}.yaml");
        let docs = template(&helm, &release, ns, &[&format!("values-{env}.yaml")], &[])
            .unwrap_or_else(|e| panic!("{e}"));

        let dep = one(&docs, "Deployment", &origin);
        assert_hardened_deployment(dep, &origin);
        let args = strings(&dep["spec"]["template"]["spec"]["containers"][0]["args"]);
        assert!(
            args.contains(&format!("--namespace={ns}").as_str()),
            "{origin}: {args:?}"
        );
        assert!(!args.contains(&"--install-crds"), "{origin}: {args:?}");

        // Per-environment values watch one namespace: a Role there, no ClusterRole at all.
        let sa = one(&docs, "ServiceAccount", &origin)["metadata"]["name"]
            .as_str()
            .expect("sa name")
            .to_owned();
        assert_eq!(
            dep["spec"]["template"]["spec"]["serviceAccountName"], sa,
            "{origin}"
        );
        assert!(of_kind(&docs, "ClusterRole").is_empty(), "{origin}");
        assert!(of_kind(&docs, "ClusterRoleBinding").is_empty(), "{origin}");
        let roles = rbac(&docs, &sa, ns, &origin);
        let fullname = format!("{release}-tooljet-operator");
        assert_eq!(roles[&fullname]["metadata"]["namespace"], ns, "{origin}");
        assert_eq!(
            verbs(&roles[&fullname], &origin),
            operator_verbs(),
            "{origin}"
        );

        // Leader election with two replicas in production only, with its Lease Role.
        let leader = args.contains(&"--leader-elect");
        assert_eq!(leader, env == "production", "{origin}: {args:?}");
        let replicas = dep["spec"]["replicas"].as_u64().expect("replicas");
        assert_eq!(replicas > 1, leader, "{origin}");
        let lease_role = roles.get(&format!("{fullname}-leader-election"));
        assert_eq!(lease_role.is_some(), leader, "{origin}");
        if let Some(role) = lease_role {
            assert!(
                args.contains(&format!("--leader-election-namespace={ns}").as_str()),
                "{origin}: {args:?}"
            );
            assert_eq!(role["kind"], "Role", "{origin}");
            assert_eq!(verbs(role, &origin), lease_verbs(), "{origin}");
        } else {
            assert_eq!(dep["spec"]["strategy"]["type"], "Recreate", "{origin}");
        }
        assert_eq!(roles.len(), if leader { 2 } else { 1 }, "{origin}");

        let svc = one(&docs, "Service", &origin);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http", "{origin}");
        assert_eq!(
            of_kind(&docs, "NetworkPolicy").len(),
            usize::from(env == "production"),
            "{origin}"
        );
        assert!(of_kind(&docs, "ServiceMonitor").is_empty(), "{origin}");

        check_environment(&docs, env, ns, &origin);
        // Kept on uninstall: helm deletes the operator first, which could not run finalizers.
        for kind in ["ToolJetInstance", "AppImport"] {
            for d in of_kind(&docs, kind) {
                assert_eq!(
                    d["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
                    "{origin}"
                );
            }
        }
    }
}

#[test]
fn chart_without_watch_namespace_uses_a_cluster_role() {
    let Some(helm) = helm() else { return };
    let docs = template(&helm, "tjo", "ops", &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    let origin = "helm template (defaults)";
    assert_hardened_deployment(one(&docs, "Deployment", origin), origin);
    assert!(of_kind(&docs, "Role").is_empty(), "{origin}");
    let roles = rbac(&docs, "tjo-tooljet-operator", "ops", origin);
    assert_eq!(roles.len(), 1, "{origin}");
    let role = &roles["tjo-tooljet-operator"];
    assert_eq!(role["kind"], "ClusterRole", "{origin}");
    assert_eq!(verbs(role, origin), operator_verbs(), "{origin}");
    // No environment objects, no CRD access without --install-crds.
    assert!(of_kind(&docs, "AppImport").is_empty() && of_kind(&docs, "Secret").is_empty());
    let args = strings(
        &one(&docs, "Deployment", origin)["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert!(
        args.iter().all(|a| !a.starts_with("--namespace")),
        "{args:?}"
    );

    // --install-crds: the only cluster-wide extra is on the CRDs.
    let docs = template(&helm, "tjo", "ops", &[], &["installCRDs=true"]).expect("renders");
    let origin = "helm template --set installCRDs=true";
    let roles = rbac(&docs, "tjo-tooljet-operator", "ops", origin);
    let crd_role = &roles["tjo-tooljet-operator-crds"];
    assert_eq!(crd_role["kind"], "ClusterRole");
    assert_eq!(
        verbs(crd_role, origin),
        expect(&[(
            "apiextensions.k8s.io/customresourcedefinitions",
            &["get", "patch", "create"]
        )])
    );
    let args = strings(
        &one(&docs, "Deployment", origin)["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert!(args.contains(&"--install-crds"), "{args:?}");
}

#[test]
fn chart_optional_objects_and_refusals() {
    let Some(helm) = helm() else { return };
    let docs = template(
        &helm,
        "tjo",
        "ops",
        &[],
        &[
            "serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
            "replicas=3",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let origin = "helm template with ServiceMonitor and NetworkPolicy";
    let sm = one(&docs, "ServiceMonitor", origin);
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let np = one(&docs, "NetworkPolicy", origin);
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress", "Egress"]);
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 8080);
    let egress = np["spec"]["egress"].as_array().expect("egress");
    let ports = |rule: &Value| -> Vec<u64> {
        rule["ports"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["port"].as_u64()).collect())
            .unwrap_or_default()
    };
    assert!(egress.iter().any(|r| ports(r) == [53, 53]), "no DNS egress");
    assert!(
        egress
            .iter()
            .any(|r| r["to"][0]["ipBlock"]["cidr"] == "10.0.0.1/32" && ports(r).contains(&443)),
        "no API server egress"
    );
    assert!(
        egress.iter().any(|r| ports(r).contains(&22)),
        "no git ssh egress"
    );
    // replicas > 1 turns leader election on by itself.
    let dep = one(&docs, "Deployment", origin);
    let args = strings(&dep["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    assert!(
        args.contains(&"--leader-election-namespace=ops"),
        "{args:?}"
    );

    // Two replicas without a leader would fight: refused, and so are values the schema forbids.
    for (set, said) in [
        (
            &["replicas=2", "leaderElection.enabled=false"][..],
            "needs leaderElection.enabled",
        ),
        (&["concurrency=0"], "concurrency"),
        (&["unknownValue=1"], "unknownValue"),
        (&["image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["watchNamespace=Not_A_Namespace"], "watchNamespace"),
    ] {
        let err = template(&helm, "tjo", "ops", &[], set).expect_err("must be refused");
        assert!(err.contains(said), "{set:?}: {err}");
    }
}

fn promtool() -> Option<PathBuf> {
    tool(
        "PROMTOOL",
        &["promtool"],
        "apt-get install --no-install-recommends prometheus",
    )
}

#[test]
fn chart_monitoring_objects_are_off_by_default_and_valid_when_on() {
    let Some(helm) = helm() else { return };
    let docs = template(&helm, "tjo", "ops", &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(of_kind(&docs, "PrometheusRule").is_empty());
    assert!(of_kind(&docs, "ConfigMap").is_empty());
    for env in ENVIRONMENTS {
        let docs = template(&helm, "tjo", "ops", &[&format!("values-{env}.yaml")], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(of_kind(&docs, "PrometheusRule").is_empty(), "{env}");
        assert!(of_kind(&docs, "ConfigMap").is_empty(), "{env}");
    }

    let docs = template(
        &helm,
        "tjo",
        "ops",
        &[],
        &[
            "prometheusRule.enabled=true",
            "prometheusRule.labels.release=kube-prometheus-stack",
            "prometheusRule.stalledFor=30m",
            "prometheusRule.additionalRuleLabels.team=platform",
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.namespace=monitoring",
            "grafanaDashboard.annotations.grafana_folder=Operators",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let origin = "helm template with the PrometheusRule and the dashboard";
    let rule = one(&docs, "PrometheusRule", origin);
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let rules = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules.len(), 6);
    for r in rules {
        let expr = r["expr"].as_str().expect("expr");
        assert!(
            expr.contains(r#"{job="tjo-tooljet-operator",namespace="ops""#),
            "{}: every selector picks this release's series: {expr}",
            r["alert"]
        );
        assert_eq!(r["labels"]["team"], "platform", "{}", r["alert"]);
        assert!(r["labels"]["severity"].is_string(), "{}", r["alert"]);
    }
    let stalled = rules
        .iter()
        .find(|r| r["alert"] == "ToolJetOperatorAppImportStalled")
        .expect("the Stalled alert");
    assert_eq!(stalled["for"], "30m");
    if let Some(promtool) = promtool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("rules.yaml");
        std::fs::write(&file, json!({"groups": rule["spec"]["groups"]}).to_string())
            .expect("write");
        run(Command::new(promtool).arg("check").arg("rules").arg(&file))
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
    }

    let dashboard = one(&docs, "ConfigMap", origin);
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Operators"
    );
    let json_text = dashboard["data"]["tooljet-operator.json"]
        .as_str()
        .expect("the dashboard JSON");
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("dashboards/tooljet-operator.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    assert_eq!(
        serde_json::from_str::<Value>(json_text).expect("JSON in the ConfigMap"),
        shipped
    );
    assert_eq!(shipped["uid"], "tooljet-operator");

    let err = template(
        &helm,
        "tjo",
        "ops",
        &[],
        &["prometheusRule.stalledFor=soon"],
    )
    .expect_err("must be refused");
    assert!(err.contains("stalledFor"), "{err}");
}

/// deploy/prometheus/tooljet-operator.rules.yaml is the chart's PrometheusRule for job
/// "tooljet-operator" (what deploy/prometheus/render-rules.sh writes).
#[test]
fn plain_rules_file_is_the_charts_prometheus_rule() {
    let Some(helm) = helm() else { return };
    let docs = template(
        &helm,
        "tooljet-operator",
        "ops",
        &[],
        &[
            "prometheusRule.enabled=true",
            r#"prometheusRule.selector=job="tooljet-operator""#,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rule = one(&docs, "PrometheusRule", "helm template (plain rules)");
    let path = repo().join("deploy/prometheus/tooljet-operator.rules.yaml");
    let plain: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("rules file")).expect("YAML");
    assert!(
        plain == rule["spec"],
        "{} differs from the chart's PrometheusRule: run deploy/prometheus/render-rules.sh",
        path.display()
    );
}

#[test]
fn kustomize_overlays_render_and_validate() {
    let Some(kubectl) = kubectl() else { return };
    for env in ENVIRONMENTS {
        let ns = env_namespace(env);
        let dir = repo().join("deploy/kustomize/overlays").join(env);
        let origin = format!("kubectl kustomize {}", dir.display());
        let out = run(Command::new(&kubectl).arg("kustomize").arg(&dir))
            .unwrap_or_else(|e| panic!("{e}"));
        let docs = parse_docs(&out, &origin);
        assert_well_formed(&docs, &origin);

        // Everything namespaced lands in the environment's namespace, including its Namespace.
        assert_eq!(
            namespaces_of(&docs),
            BTreeSet::from([ns.to_owned()]),
            "{origin}"
        );
        assert_eq!(one(&docs, "Namespace", &origin)["metadata"]["name"], ns);
        assert_eq!(
            of_kind(&docs, "CustomResourceDefinition").len(),
            3,
            "{origin}"
        );

        let dep = one(&docs, "Deployment", &origin);
        assert_hardened_deployment(dep, &origin);
        let args = strings(&dep["spec"]["template"]["spec"]["containers"][0]["args"]);
        assert!(
            args.contains(&"--namespace=$(POD_NAMESPACE)"),
            "{origin}: {args:?}"
        );

        assert!(of_kind(&docs, "ClusterRole").is_empty(), "{origin}");
        let roles = rbac(&docs, "tooljet-operator", ns, &origin);
        assert_eq!(verbs(&roles["tooljet-operator"], &origin), operator_verbs());
        let leader = env == "production";
        assert_eq!(args.contains(&"--leader-elect"), leader, "{origin}");
        assert_eq!(
            dep["spec"]["replicas"],
            if leader { 2 } else { 1 },
            "{origin}"
        );
        match roles.get("tooljet-operator-leader-election") {
            Some(role) => {
                assert!(leader, "{origin}");
                assert_eq!(verbs(role, &origin), lease_verbs(), "{origin}");
            }
            None => assert!(!leader, "{origin}: no Lease Role"),
        }
        check_environment(&docs, env, ns, &origin);
        // Every Secret the environment names is there (as a placeholder to replace).
        let secrets: BTreeSet<&str> = of_kind(&docs, "Secret")
            .iter()
            .filter_map(|s| s["metadata"]["name"].as_str())
            .collect();
        let mut named = BTreeSet::new();
        collect_secret_refs(&Value::Array(docs.clone()), &mut named);
        for name in named {
            assert!(
                secrets.contains(name.as_str()),
                "{origin}: no Secret {name}"
            );
        }
    }
    // The development overlay turns on debug logs for the operator.
    let out = run(Command::new(&kubectl)
        .arg("kustomize")
        .arg(repo().join("deploy/kustomize/overlays/development")))
    .expect("renders");
    let docs = parse_docs(&out, "development");
    let env = &one(&docs, "Deployment", "development")["spec"]["template"]["spec"]["containers"][0]
        ["env"];
    let rust_log = env
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "RUST_LOG"))
        .expect("RUST_LOG");
    assert_eq!(rust_log["value"], "info,tooljet_operator=debug");
}

/// Names under every `secretRef` / `caSecretRef` of ToolJetInstances and AppImports.
fn collect_secret_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(items) => items
            .iter()
            .filter(|d| d["kind"] == "ToolJetInstance" || d["kind"] == "AppImport")
            .for_each(|d| collect_refs(&d["spec"], out)),
        _ => collect_refs(v, out),
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = v {
        for (k, v) in map {
            if (k == "secretRef" || k == "caSecretRef")
                && let Some(name) = v["name"].as_str()
            {
                out.insert(name.to_owned());
            }
            collect_refs(v, out);
        }
    }
}

#[test]
fn gitops_manifests_point_at_what_exists() {
    let read = |p: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(repo().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        parse_docs(&text, p)
    };
    // Argo CD: one Application per environment, each on its overlay.
    let appset = read("deploy/argocd/applicationset.yaml");
    let appset = one(&appset, "ApplicationSet", "applicationset.yaml");
    let elements = appset["spec"]["generators"][0]["list"]["elements"]
        .as_array()
        .expect("list generator");
    let envs: Vec<&str> = elements
        .iter()
        .filter_map(|e| e["environment"].as_str())
        .collect();
    assert_eq!(envs, ENVIRONMENTS);
    for e in elements {
        let env = e["environment"].as_str().expect("environment");
        assert_eq!(e["namespace"], env_namespace(env));
        let path = appset["spec"]["template"]["spec"]["source"]["path"]
            .as_str()
            .expect("path")
            .replace("{{ .environment }}", env);
        assert!(
            repo().join(&path).join("kustomization.yaml").is_file(),
            "{path}"
        );
    }
    // The argocd-cm snippet carries health-appimport.lua verbatim.
    let cm = read("deploy/argocd/argocd-cm.yaml");
    let lua =
        std::fs::read_to_string(repo().join("deploy/argocd/health-appimport.lua")).expect("lua");
    assert_eq!(
        cm[0]["data"]["resource.customizations.health.gitops.tooljet.dev_AppImport"]
            .as_str()
            .expect("health key"),
        lua,
        "deploy/argocd/argocd-cm.yaml is out of step with health-appimport.lua"
    );

    // Flux: the Kustomization's overlay and the HelmRelease's chart and values files exist.
    let source = read("deploy/flux/gitrepository.yaml");
    let source = one(&source, "GitRepository", "gitrepository.yaml");
    let ks = read("deploy/flux/kustomization-production.yaml");
    let ks = one(&ks, "Kustomization", "kustomization-production.yaml");
    assert_eq!(ks["spec"]["sourceRef"]["name"], source["metadata"]["name"]);
    let path = ks["spec"]["path"].as_str().expect("path");
    assert!(
        repo().join(path).join("kustomization.yaml").is_file(),
        "{path}"
    );
    let hr = read("deploy/flux/helmrelease-production.yaml");
    let hr = one(&hr, "HelmRelease", "helmrelease-production.yaml");
    let chart = &hr["spec"]["chart"]["spec"];
    assert_eq!(chart["sourceRef"]["name"], source["metadata"]["name"]);
    let chart_path = chart["chart"].as_str().expect("chart");
    assert!(
        repo().join(chart_path).join("Chart.yaml").is_file(),
        "{chart_path}"
    );
    for f in strings(&chart["valuesFiles"]) {
        assert!(repo().join(f).is_file(), "{f}");
    }
    assert_eq!(hr["spec"]["targetNamespace"], "tooljet-prod");
}

/// Runs the Argo CD health check on sample AppImports with a real Lua interpreter.
#[test]
fn argocd_health_check_classifies_appimports() {
    let Some(lua) = tool(
        "LUA",
        &["lua5.4", "lua5.3", "lua"],
        "apt-get install lua5.4",
    ) else {
        return;
    };
    let check = repo().join("deploy/argocd/health-appimport.lua");
    let cond =
        |t: &str, s: &str, r: &str| json!({"type": t, "status": s, "reason": r, "message": "m"});
    let obj = |spec: Value, generation: u64, observed: u64, conditions: Vec<Value>| {
        json!({"metadata": {"generation": generation}, "spec": spec,
               "status": {"observedGeneration": observed, "conditions": conditions}})
    };
    let spec = json!({"environment": "staging"});
    let cases = [
        (
            "no status",
            json!({"metadata": {"generation": 1}, "spec": spec}),
            "Progressing",
        ),
        (
            "ready",
            obj(spec.clone(), 2, 2, vec![cond("Ready", "True", "UpToDate")]),
            "Healthy",
        ),
        (
            "ready but stale",
            obj(spec.clone(), 3, 2, vec![cond("Ready", "True", "UpToDate")]),
            "Progressing",
        ),
        (
            "stalled",
            obj(
                spec.clone(),
                1,
                1,
                vec![
                    cond("Ready", "False", "NameConflict"),
                    cond("Stalled", "True", "NameConflict"),
                ],
            ),
            "Degraded",
        ),
        (
            "not ready, not retryable",
            obj(
                spec.clone(),
                1,
                1,
                vec![cond("Ready", "False", "RefNotFound")],
            ),
            "Degraded",
        ),
        (
            "retrying",
            obj(
                spec.clone(),
                1,
                1,
                vec![
                    cond("Ready", "False", "GitUnavailable"),
                    cond("Reconciling", "True", "Retrying"),
                ],
            ),
            "Progressing",
        ),
        (
            "retryable reason",
            obj(
                spec.clone(),
                1,
                1,
                vec![cond("Ready", "False", "ToolJetUnavailable")],
            ),
            "Progressing",
        ),
        (
            "suspended",
            obj(
                json!({"suspend": true}),
                1,
                1,
                vec![cond("Ready", "True", "Suspended")],
            ),
            "Suspended",
        ),
    ];
    // Argo CD hands the object to the script as a Lua table named `obj`: build one from JSON.
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, object, want) in cases {
        let script = format!(
            "obj = {}\nlocal hs = dofile({:?})\nio.write(hs.status, '\\n', hs.message or '')\n",
            lua_table(&object),
            check.display().to_string()
        );
        let file = dir.path().join("case.lua");
        std::fs::write(&file, script).expect("write case");
        let out = run(Command::new(&lua).arg(&file)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let status = out.lines().next().unwrap_or_default();
        assert_eq!(status, want, "{name}: {out}");
        assert!(
            out.lines().nth(1).is_some_and(|m| !m.is_empty()),
            "{name}: no message"
        );
    }
}

/// A JSON value as a Lua table constructor (strings quoted with %q-compatible escapes).
fn lua_table(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua_table).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua_table(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
