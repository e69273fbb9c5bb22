//! Every validation rule of the CRDs, checked against the *generated* schema: the CEL rules with
//! kube's client-side CEL evaluator, the plain OpenAPI constraints (enum, pattern, lengths) with a
//! JSON-schema validator. Each rule has an object it accepts and one it rejects.

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};

use super::*;

fn openapi_schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("generated CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Messages of the CEL rules the object breaks.
fn cel_messages(schema: &Value, obj: &Value) -> Vec<String> {
    match Validator::new().validate(schema, obj, None) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

/// Instance paths of the plain OpenAPI constraints the object breaks.
fn openapi_violations(schema: &Value, obj: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    validator
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_accepted(schema: &Value, obj: &Value) {
    let cel = cel_messages(schema, obj);
    let openapi = openapi_violations(schema, obj);
    assert!(
        cel.is_empty() && openapi.is_empty(),
        "expected {obj} to be accepted; CEL: {cel:?}; OpenAPI: {openapi:?}"
    );
}

fn assert_cel_rejects(schema: &Value, obj: &Value, message: &str) {
    let cel = cel_messages(schema, obj);
    assert!(
        cel.iter().any(|m| m == message),
        "expected {obj} to be rejected with `{message}`, got {cel:?}"
    );
}

fn assert_openapi_rejects(schema: &Value, obj: &Value, path: &str) {
    let openapi = openapi_violations(schema, obj);
    assert!(
        openapi.iter().any(|m| m.starts_with(&format!("{path}:"))),
        "expected {obj} to be rejected at {path}, got {openapi:?}"
    );
}

/// Sets `value` at a JSON pointer (creating objects on the way); `Value::Null` removes the field.
fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let mut node = &mut obj;
    for part in parent.split('/').skip(1) {
        node = node
            .as_object_mut()
            .expect("parent is an object")
            .entry(part)
            .or_insert_with(|| json!({}));
    }
    let map = node.as_object_mut().expect("parent is an object");
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), value);
    }
    obj
}

fn good_import() -> Value {
    json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1",
        "kind": "AppImport",
        "metadata": {"name": "sales", "namespace": "team-a"},
        "spec": {
            "environment": "production",
            "source": {
                "url": "https://github.com/acme/tooljet-apps.git",
                "ref": {"branch": "main"},
                "app": "Sales Dashboard"
            }
        }
    })
}

fn good_instance() -> Value {
    json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1",
        "kind": "ToolJetInstance",
        "metadata": {"name": "tooljet-prod", "namespace": "tooljet"},
        "spec": {
            "url": "http://tooljet.tooljet-prod.svc",
            "environment": "production",
            "workspaceId": "5b3c5a0e-8f0e-4c0c-9d0c-2b1f4a0d9e11",
            "auth": {"adminApiKey": {"secretRef": {"name": "tj-admin", "key": "api-key"}}}
        }
    })
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn exactly_one_of_branch_tag_commit_or_from_app_import() {
    let s = openapi_schema::<AppImport>();
    let msg = "ref must set exactly one of branch, tag, commit or fromAppImport";
    let upstream = json!({"name": "sales-staging", "namespace": "team-a"});
    for r in [
        json!({"branch": "main"}),
        json!({"tag": "v1.2.0"}),
        json!({"commit": SHA}),
        json!({"fromAppImport": upstream}),
        json!({"fromAppImport": {"name": "sales-staging"}, "readyFor": "30m"}),
    ] {
        assert_accepted(&s, &with(good_import(), "/spec/source/ref", r));
    }
    for r in [
        json!({}),
        json!({"branch": "main", "tag": "v1"}),
        json!({"branch": "main", "commit": SHA}),
        json!({"branch": "main", "fromAppImport": upstream}),
        json!({"commit": SHA, "fromAppImport": upstream, "readyFor": "1h"}),
        json!({"readyFor": "1h"}),
    ] {
        assert_cel_rejects(&s, &with(good_import(), "/spec/source/ref", r), msg);
    }
}

#[test]
fn ready_for_is_a_duration_beside_from_app_import_only() {
    let s = openapi_schema::<AppImport>();
    let from = json!({"name": "sales-staging"});
    let obj = |d: &str| {
        with(
            good_import(),
            "/spec/source/ref",
            json!({"fromAppImport": from, "readyFor": d}),
        )
    };
    for d in ["0s", "30m", "1h30m", "1.5h", "90s", "168h"] {
        assert_accepted(&s, &obj(d));
    }
    let msg = "ref.readyFor must be a duration such as 0s, 30m or 1h30m";
    for d in ["30 minutes", "0", "1d", "-5m", "1.m", "soon"] {
        assert_cel_rejects(&s, &obj(d), msg);
    }
    assert_openapi_rejects(&s, &obj("1d"), "/spec/source/ref/readyFor");
    let msg = "ref.readyFor applies only with ref.fromAppImport: it is how long the upstream AppImport must be Ready on a commit before it is promoted";
    assert_cel_rejects(
        &s,
        &with(
            good_import(),
            "/spec/source/ref",
            json!({"branch": "main", "readyFor": "30m"}),
        ),
        msg,
    );
}

#[test]
fn from_app_import_names_are_bounded() {
    let s = openapi_schema::<AppImport>();
    let obj = |upstream: Value| {
        with(
            good_import(),
            "/spec/source/ref",
            json!({"fromAppImport": upstream}),
        )
    };
    assert_openapi_rejects(
        &s,
        &obj(json!({"name": ""})),
        "/spec/source/ref/fromAppImport/name",
    );
    assert_openapi_rejects(
        &s,
        &obj(json!({"name": "a", "namespace": "n".repeat(64)})),
        "/spec/source/ref/fromAppImport/namespace",
    );
    assert_openapi_rejects(
        &s,
        &obj(json!({"namespace": "team-a"})),
        "/spec/source/ref/fromAppImport",
    );
}

/// The same rules in code, for files read by `sync -f` that never met an API server.
#[test]
fn promotion_ref_reads_what_the_crd_accepts_and_refuses_the_rest() {
    let git_ref = |r: Value| -> GitRef { serde_json::from_value(r).expect("ref parses") };
    let plain = git_ref(json!({"branch": "main"}));
    assert_eq!(plain.promotion().expect("valid"), None);
    assert_eq!(plain.kind(), Some(RefKind::Branch("main")));

    let soaked = git_ref(
        json!({"fromAppImport": {"name": "staging", "namespace": "team-a"}, "readyFor": "1h30m"}),
    );
    let p = soaked.promotion().expect("valid").expect("a promotion");
    assert_eq!(p.upstream.name, "staging");
    assert_eq!(p.upstream.namespace_or("team-b"), "team-a");
    assert_eq!(p.ready_for, std::time::Duration::from_secs(5400));
    // Not a git ref: the engine must not read it as one.
    assert_eq!(soaked.kind(), None);

    let unsoaked = git_ref(json!({"fromAppImport": {"name": "staging"}}));
    let p = unsoaked.promotion().expect("valid").expect("a promotion");
    assert_eq!(p.ready_for, std::time::Duration::ZERO);
    assert_eq!(p.upstream.namespace_or("team-b"), "team-b");

    let refused = [
        (
            json!({"branch": "main", "readyFor": "5m"}),
            "readyFor is set without fromAppImport",
        ),
        (
            json!({"tag": "v1", "fromAppImport": {"name": "staging"}}),
            "beside a branch, tag or commit",
        ),
        (
            json!({"fromAppImport": {"name": "staging"}, "readyFor": "1d"}),
            "readyFor `1d` is not usable",
        ),
    ];
    for (r, expected) in refused {
        let err = git_ref(r.clone())
            .promotion()
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains(expected) && err.starts_with("spec.source.ref is invalid"),
            "{r}: {err}"
        );
    }
    // The same objects fail the CRD's CEL rules, checked client-side for `sync -f`.
    let mut obj: AppImport = serde_json::from_value(with(
        good_import(),
        "/spec/source/ref",
        json!({"branch": "main", "readyFor": "5m"}),
    ))
    .expect("parses");
    assert!(validate_against_crd(&obj).is_err());
    obj.spec.source.git_ref = unsoaked;
    validate_against_crd(&obj).expect("fromAppImport alone passes");
}

#[test]
fn commit_is_40_hex_characters() {
    let s = openapi_schema::<AppImport>();
    let msg = "ref.commit must be a full commit sha: 40 lowercase hexadecimal characters";
    let obj = |c: &str| with(good_import(), "/spec/source/ref", json!({"commit": c}));
    assert_accepted(&s, &obj(SHA));
    assert_cel_rejects(&s, &obj(&SHA.replace('a', "g")), msg);
    assert_cel_rejects(&s, &obj(&SHA.to_uppercase()), msg);
    assert_cel_rejects(&s, &obj("0123abc"), msg);
    assert_openapi_rejects(&s, &obj("0123abc"), "/spec/source/ref/commit");
}

#[test]
fn exactly_one_of_app_or_path() {
    let s = openapi_schema::<AppImport>();
    let msg = "source must set exactly one of app (an app name from .meta/meta.json) or path (an export bundle)";
    let path_only = with(
        with(good_import(), "/spec/source/app", Value::Null),
        "/spec/source/path",
        json!("exports/sales.json"),
    );
    assert_accepted(&s, &good_import());
    assert_accepted(&s, &path_only);
    let both = with(
        good_import(),
        "/spec/source/path",
        json!("exports/sales.json"),
    );
    assert_cel_rejects(&s, &both, msg);
    let neither = with(good_import(), "/spec/source/app", Value::Null);
    assert_cel_rejects(&s, &neither, msg);
}

#[test]
fn path_is_relative_without_dot_dot() {
    let s = openapi_schema::<AppImport>();
    let msg = "source.path must be relative to the repository root and must not contain `..`";
    let obj = |p: &str| {
        with(
            with(good_import(), "/spec/source/app", Value::Null),
            "/spec/source/path",
            json!(p),
        )
    };
    for p in [
        "exports/sales.json",
        "sales.json",
        "a/..b/c..json",
        "./x.json",
    ] {
        assert_accepted(&s, &obj(p));
    }
    for p in [
        "/etc/sales.json",
        "../sales.json",
        "a/../../b.json",
        "a/..",
        "..",
    ] {
        assert_cel_rejects(&s, &obj(p), msg);
    }
}

#[test]
fn exactly_one_auth_method() {
    let s = openapi_schema::<ToolJetInstance>();
    let msg = "auth must set exactly one of adminApiKey, password or externalToken";
    let key = json!({"secretRef": {"name": "tj", "key": "token"}});
    let login = json!({"secretRef": {"name": "tj-login"}});
    for auth in [
        json!({"adminApiKey": key}),
        json!({"password": login}),
        json!({"externalToken": key}),
    ] {
        assert_accepted(&s, &with(good_instance(), "/spec/auth", auth));
    }
    for auth in [
        json!({}),
        json!({"adminApiKey": key, "password": login}),
        json!({"adminApiKey": key, "password": login, "externalToken": key}),
    ] {
        assert_cel_rejects(&s, &with(good_instance(), "/spec/auth", auth), msg);
    }
}

#[test]
fn workspace_id_is_required_unless_password_auth() {
    let s = openapi_schema::<ToolJetInstance>();
    let msg = "workspaceId is required with adminApiKey or externalToken auth; only password auth finds the workspace by itself";
    let key = json!({"secretRef": {"name": "tj", "key": "token"}});
    let without = |auth: Value| {
        with(
            with(good_instance(), "/spec/workspaceId", Value::Null),
            "/spec/auth",
            auth,
        )
    };
    assert_accepted(&s, &good_instance());
    assert_accepted(
        &s,
        &without(json!({"password": {"secretRef": {"name": "tj-login"}}})),
    );
    assert_cel_rejects(&s, &without(json!({"adminApiKey": key})), msg);
    assert_cel_rejects(&s, &without(json!({"externalToken": key})), msg);
}

#[test]
fn environment_is_one_of_three() {
    for (s, good) in [
        (openapi_schema::<AppImport>(), good_import()),
        (openapi_schema::<ToolJetInstance>(), good_instance()),
    ] {
        for env in ["development", "staging", "production"] {
            assert_accepted(&s, &with(good.clone(), "/spec/environment", json!(env)));
        }
        for env in ["prod", "Production", ""] {
            assert_openapi_rejects(
                &s,
                &with(good.clone(), "/spec/environment", json!(env)),
                "/spec/environment",
            );
        }
    }
    // The Rust types refuse it too (sync -f reads files that never met an API server).
    let bad = with(good_import(), "/spec/environment", json!("prod"));
    assert!(serde_json::from_value::<AppImport>(bad).is_err());
}

#[test]
fn interval_is_a_duration_of_at_least_10s() {
    let s = openapi_schema::<AppImport>();
    let msg = "interval must be a duration of at least 10s, such as 30s, 5m or 1h30m";
    let obj = |i: &str| with(good_import(), "/spec/interval", json!(i));
    for i in ["10s", "30s", "5m", "1h30m", "1.5h", "10000ms"] {
        assert_accepted(&s, &obj(i));
    }
    for i in ["9s", "9999ms", "0s", "5 minutes", "5", "-5m", "1d", "1.m"] {
        assert_cel_rejects(&s, &obj(i), msg);
    }
    assert_openapi_rejects(&s, &obj("5 minutes"), "/spec/interval");
    // Omitted, the default (5m) applies and passes.
    assert_accepted(&s, &good_import());
}

#[test]
fn instance_url_is_http_or_https() {
    let s = openapi_schema::<ToolJetInstance>();
    let msg = "url must be an http:// or https:// URL with a host, for example http://tooljet.tooljet.svc";
    let obj = |u: &str| with(good_instance(), "/spec/url", json!(u));
    for u in [
        "http://tooljet.svc",
        "https://tooljet.acme.io/",
        "http://127.0.0.1:8082",
    ] {
        assert_accepted(&s, &obj(u));
    }
    for u in [
        "ftp://tooljet.svc",
        "tooljet.svc",
        "http://",
        "https:///path",
    ] {
        assert_cel_rejects(&s, &obj(u), msg);
    }
}

#[test]
fn source_url_is_https_ssh_git_file_or_scp_like() {
    let s = openapi_schema::<AppImport>();
    let msg = "source.url must be an https://, ssh://, git:// or file:// URL, or scp-like user@host:path (for example git@github.com:acme/apps.git)";
    let obj = |u: &str| with(good_import(), "/spec/source/url", json!(u));
    for u in [
        "https://github.com/acme/apps.git",
        "ssh://git@github.com/acme/apps.git",
        "git://git.acme.io/apps.git",
        "file:///srv/git/apps.git",
        "git@github.com:acme/apps.git",
    ] {
        assert_accepted(&s, &obj(u));
    }
    for u in [
        "http://github.com/acme/apps.git",
        "ftp://acme.io/apps.git",
        "/srv/git/apps.git",
        "github.com/acme/apps.git",
        "https://github.com/acme/my apps.git",
    ] {
        assert_cel_rejects(&s, &obj(u), msg);
    }
}

#[test]
fn plain_openapi_constraints() {
    let s = openapi_schema::<AppImport>();
    let long_name = "x".repeat(51);
    assert_accepted(
        &s,
        &with(good_import(), "/spec/appName", json!("x".repeat(50))),
    );
    assert_openapi_rejects(
        &s,
        &with(good_import(), "/spec/appName", json!(long_name)),
        "/spec/appName",
    );
    assert_openapi_rejects(
        &s,
        &with(good_import(), "/spec/updatePolicy", json!("Sometimes")),
        "/spec/updatePolicy",
    );
    assert_openapi_rejects(
        &s,
        &with(good_import(), "/spec/deletionPolicy", json!("Purge")),
        "/spec/deletionPolicy",
    );
    assert_openapi_rejects(
        &s,
        &with(good_import(), "/spec/source/ref", Value::Null),
        "/spec/source",
    );
    let i = openapi_schema::<ToolJetInstance>();
    assert_openapi_rejects(
        &i,
        &with(
            good_instance(),
            "/spec/url",
            json!(format!("http://{}", "a".repeat(2048))),
        ),
        "/spec/url",
    );
    assert_openapi_rejects(
        &i,
        &with(good_instance(), "/spec/allowedNamespaces", json!([""])),
        "/spec/allowedNamespaces/0",
    );
}

/// The API server refuses a CRD whose CEL rules inspect unbounded strings or lists (cost budget).
#[test]
fn every_string_a_rule_inspects_is_bounded() {
    fn walk(node: &Value, path: &str, found: &mut Vec<String>) {
        let Some(map) = node.as_object() else { return };
        if map.contains_key("x-kubernetes-validations") {
            match map.get("type").and_then(Value::as_str) {
                Some("string") if !map.contains_key("maxLength") => found.push(path.to_owned()),
                Some("object") => {
                    for (name, prop) in map
                        .get("properties")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let t = prop.get("type").and_then(Value::as_str);
                        // An enum bounds a string's length as well as maxLength does.
                        let bounded = prop.get("maxLength").is_some() || prop.get("enum").is_some();
                        if (t == Some("string") && !bounded)
                            || (t == Some("array") && prop.get("maxItems").is_none())
                        {
                            found.push(format!("{path}.{name}"));
                        }
                    }
                }
                _ => {}
            }
        }
        for (k, v) in map {
            walk(v, &format!("{path}.{k}"), found);
        }
    }
    for s in [
        openapi_schema::<AppImport>(),
        openapi_schema::<ToolJetInstance>(),
    ] {
        let mut found = vec![];
        walk(&s, "", &mut found);
        assert!(
            found.is_empty(),
            "unbounded fields under CEL rules: {found:?}"
        );
    }
}

#[test]
fn defaults_are_filled_in() {
    let imp: AppImport = serde_json::from_value(good_import()).expect("parses");
    assert_eq!(imp.spec.update_policy, UpdatePolicy::Automatic);
    assert_eq!(imp.spec.interval, "5m");
    assert_eq!(imp.spec.deletion_policy, DeletionPolicy::Retain);
    assert!(!imp.spec.suspend && !imp.spec.adopt_existing && !imp.spec.editable);
    assert!(imp.spec.release);
    assert_eq!(
        imp.spec.interval_duration().expect("valid"),
        std::time::Duration::from_secs(300)
    );
    assert_eq!(
        imp.spec.wanted_app_name("Sales Dashboard"),
        "Sales Dashboard"
    );
    let named = with(good_import(), "/spec/appName", json!("Sales"));
    let named: AppImport = serde_json::from_value(named).expect("parses");
    assert_eq!(named.spec.wanted_app_name("Sales Dashboard"), "Sales");
}

// ---- spec.constants and spec.dataSources (issue 15) ----------------------------------------

fn with_constants(constants: Value) -> Value {
    with(good_instance(), "/spec/constants", constants)
}

fn with_data_sources(sources: Value) -> Value {
    with(good_instance(), "/spec/dataSources", sources)
}

#[test]
fn constants_and_data_sources_as_api_md_shows_them_are_accepted() {
    let s = openapi_schema::<ToolJetInstance>();
    let obj = with_data_sources(json!([{
        "name": "sales-db",
        "kind": "postgresql",
        "options": {
            "host": {"value": "db.prod.svc"},
            "port": {"value": "5432"},
            "password": {"valueFrom": {"secretKeyRef": {"name": "sales-db", "key": "password"}}, "encrypted": true}
        }
    }]));
    let obj = with(
        obj,
        "/spec/constants",
        json!([
            {"name": "API_BASE", "value": "https://api.acme.io"},
            {"name": "PAYMENT_KEY", "type": "Secret", "valueFrom": {"secretKeyRef": {"name": "pay", "key": "key"}}},
            {"name": "_legacy_1", "value": "x", "adoptExisting": true}
        ]),
    );
    assert_accepted(&s, &obj);
    let parsed: ToolJetInstance = serde_json::from_value(obj).expect("parses");
    let c = &parsed.spec.constants;
    assert_eq!(c[0].kind, ConstantKind::Global, "Global is the default");
    assert_eq!(
        c[0].source(),
        Some(ValueSource::Inline("https://api.acme.io"))
    );
    assert_eq!(c[1].kind, ConstantKind::Secret);
    assert!(matches!(c[1].source(), Some(ValueSource::Secret(r)) if r.name == "pay"));
    assert!(!c[0].adopt_existing && c[2].adopt_existing);
    let ds = &parsed.spec.data_sources[0];
    assert_eq!(ds.kind.as_deref(), Some("postgresql"));
    assert!(ds.options["password"].encrypted && !ds.options["host"].encrypted);
}

#[test]
fn constant_names_follow_tooljets_rule() {
    let s = openapi_schema::<ToolJetInstance>();
    let msg = "constant names start with a letter or underscore, contain only letters, digits and underscores, and have at most 50 characters (32 on ToolJet 2.x)";
    let obj = |n: &str| with_constants(json!([{"name": n, "value": "v"}]));
    for good in ["a", "_x1", "DB_HOST", "db_host", &"a".repeat(50)] {
        assert_accepted(&s, &obj(good));
    }
    // K7, K8, K17 (no trim), K10 (length; 3.x allows 50), a dot, unicode.
    for bad in ["db-host", "1db", " padded ", "a.b", "é", &"a".repeat(51)] {
        assert_cel_rejects(&s, &obj(bad), msg);
    }
    assert_openapi_rejects(&s, &obj("db-host"), "/spec/constants/0/name");
    assert_openapi_rejects(&s, &obj(""), "/spec/constants/0/name");
}

#[test]
fn constant_values_have_1_to_10000_characters() {
    let s = openapi_schema::<ToolJetInstance>();
    let msg = "a constant value must have 1 to 10,000 characters";
    let obj = |v: String| with_constants(json!([{"name": "x", "value": v}]));
    assert_accepted(&s, &obj("x".repeat(10_000)));
    assert_accepted(&s, &obj("  a b\nc ü {{x}} ".into()));
    assert_cel_rejects(&s, &obj("x".repeat(10_001)), msg);
    assert_cel_rejects(&s, &obj(String::new()), msg);
    assert_openapi_rejects(&s, &obj("x".repeat(10_001)), "/spec/constants/0/value");
}

#[test]
fn a_constant_has_a_value_or_a_secret_key_not_both() {
    let s = openapi_schema::<ToolJetInstance>();
    let msg = "a constant must set exactly one of value or valueFrom.secretKeyRef";
    let from = json!({"secretKeyRef": {"name": "pay", "key": "key"}});
    assert_cel_rejects(&s, &with_constants(json!([{"name": "x"}])), msg);
    assert_cel_rejects(
        &s,
        &with_constants(json!([{"name": "x", "value": "v", "valueFrom": from}])),
        msg,
    );
    assert_accepted(
        &s,
        &with_constants(json!([{"name": "x", "valueFrom": from}])),
    );
    // A secret key reference needs both parts.
    assert_openapi_rejects(
        &s,
        &with_constants(json!([{"name": "x", "valueFrom": {"secretKeyRef": {"name": "pay"}}}])),
        "/spec/constants/0/valueFrom/secretKeyRef",
    );
    assert_openapi_rejects(
        &s,
        &with_constants(json!([{"name": "x", "value": "v", "type": "Private"}])),
        "/spec/constants/0/type",
    );
}

#[test]
fn two_entries_with_one_name_are_refused() {
    let s = openapi_schema::<ToolJetInstance>();
    assert_cel_rejects(
        &s,
        &with_constants(json!([{"name": "x", "value": "1"}, {"name": "x", "value": "2"}])),
        "two constants have the same name; each constant name may appear once",
    );
    // Case-sensitive, as ToolJet's unique constraint (K6).
    assert_accepted(
        &s,
        &with_constants(
            json!([{"name": "DB_HOST", "value": "1"}, {"name": "db_host", "value": "2"}]),
        ),
    );
    assert_cel_rejects(
        &s,
        &with_data_sources(json!([{"name": "db"}, {"name": "db", "kind": "postgresql"}])),
        "two dataSources entries have the same name; each data source may appear once",
    );
    assert_accepted(
        &s,
        &with_data_sources(json!([{"name": "db"}, {"name": "db2"}])),
    );
}

#[test]
fn data_source_entries_are_checked() {
    let s = openapi_schema::<ToolJetInstance>();
    let obj = |ds: Value| with_data_sources(json!([ds]));
    assert_cel_rejects(
        &s,
        &obj(json!({"name": "  "})),
        "a data source name must not be blank",
    );
    assert_openapi_rejects(&s, &obj(json!({"name": ""})), "/spec/dataSources/0/name");
    assert_cel_rejects(
        &s,
        &obj(json!({"name": "db", "kind": "postgre sql"})),
        "a data source kind is a plugin name such as postgresql or restapi: letters, digits, '.', '_' and '-'",
    );
    let option_msg = "a data-source option must set exactly one of value or valueFrom.secretKeyRef";
    assert_cel_rejects(
        &s,
        &obj(json!({"name": "db", "options": {"password": {"encrypted": true}}})),
        option_msg,
    );
    assert_cel_rejects(
        &s,
        &obj(json!({"name": "db", "options": {"password": {"value": "a",
            "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}, "encrypted": true}}})),
        option_msg,
    );
    assert_cel_rejects(
        &s,
        &obj(json!({"name": "db", "options": {"bad key": {"value": "a"}}})),
        "data-source option keys are plugin option names such as host or password: letters, digits, '.', '_' and '-', at most 100 characters",
    );
    // An empty option value is allowed: it clears a non-secret option.
    assert_accepted(
        &s,
        &obj(json!({"name": "db", "options": {"database": {"value": ""}}})),
    );
    assert_openapi_rejects(
        &s,
        &obj(json!({"name": "db", "options": {"ca_cert": {"value": "x".repeat(65_537)}}})),
        "/spec/dataSources/0/options/ca_cert/value",
    );
}

#[test]
fn lists_are_bounded() {
    let s = openapi_schema::<ToolJetInstance>();
    let many: Vec<Value> = (0..=MAX_CONSTANTS)
        .map(|i| json!({"name": format!("c{i}"), "value": "v"}))
        .collect();
    assert_openapi_rejects(&s, &with_constants(json!(many)), "/spec/constants");
    let many: Vec<Value> = (0..=MAX_DATA_SOURCES)
        .map(|i| json!({"name": format!("d{i}")}))
        .collect();
    assert_openapi_rejects(&s, &with_data_sources(json!(many)), "/spec/dataSources");
    let options: serde_json::Map<String, Value> = (0..=MAX_OPTIONS)
        .map(|i| (format!("k{i}"), json!({"value": "v"})))
        .collect();
    assert_openapi_rejects(
        &s,
        &with_data_sources(json!([{"name": "db", "options": options}])),
        "/spec/dataSources/0/options",
    );
}

fn app_export() -> Value {
    json!({
        "apiVersion": "gitops.tooljet.dev/v1alpha1",
        "kind": "AppExport",
        "metadata": {"name": "dev-export", "namespace": "team-a"},
        "spec": {
            "environment": "development",
            "apps": ["Sales Dashboard"],
            "destination": {
                "url": "https://github.com/acme/tooljet-apps.git",
                "branch": "tooljet/development",
                "secretRef": {"name": "git-push-creds"},
                "layout": "GitSync"
            },
            "author": {"name": "ToolJet export", "email": "tooljet@acme.io"},
            "interval": "5m"
        }
    })
}

#[test]
fn app_export_rules() {
    let schema = openapi_schema::<AppExport>();
    let ok = app_export();
    assert_accepted(&schema, &ok);
    let spec: AppExportSpec = serde_json::from_value(ok["spec"].clone()).expect("spec");
    assert!(spec.check().is_ok());
    assert_eq!(spec.destination.layout, ExportLayout::GitSync);

    // Bundle into a folder: fine. GitSync with a folder: refused.
    let bundle = with(ok.clone(), "/spec/destination/layout", json!("Bundle"));
    let bundle = with(bundle, "/spec/destination/path", json!("exports"));
    assert_accepted(&schema, &bundle);
    let git_sync_path = with(ok.clone(), "/spec/destination/path", json!("exports"));
    assert_cel_rejects(
        &schema,
        &git_sync_path,
        "destination.path applies to layout Bundle only: layout GitSync writes .meta/meta.json and <app>/<version>.json at the repository root, where ToolJet and AppImports read them",
    );
    let spec: AppExportSpec = serde_json::from_value(git_sync_path["spec"].clone()).expect("spec");
    assert!(spec.check().is_err());

    for bad in ["has space", "a..b", "x.lock", "-x", "a:b", "end/", "/start"] {
        let obj = with(ok.clone(), "/spec/destination/branch", json!(bad));
        let cel = cel_messages(&schema, &obj);
        assert!(
            cel.iter()
                .any(|m| m.starts_with("destination.branch is not a branch name")),
            "{bad:?}: {cel:?}"
        );
        let spec: AppExportSpec = serde_json::from_value(obj["spec"].clone()).expect("spec");
        assert!(spec.check().is_err(), "{bad:?} passes check()");
    }
    for path in ["../up", "/abs", "a/../../b"] {
        let obj = with(bundle.clone(), "/spec/destination/path", json!(path));
        assert_cel_rejects(
            &schema,
            &obj,
            "destination.path must be relative to the repository root and must not contain `..`",
        );
        let spec: AppExportSpec = serde_json::from_value(obj["spec"].clone()).expect("spec");
        assert!(spec.check().is_err(), "{path:?} passes check()");
    }
    assert_cel_rejects(
        &schema,
        &with(ok.clone(), "/spec/apps", json!(["A", "A"])),
        "apps must not list an app twice",
    );
    assert_cel_rejects(
        &schema,
        &with(ok.clone(), "/spec/interval", json!("5s")),
        "interval must be a duration of at least 10s, such as 30s, 5m or 1h30m",
    );
    assert_cel_rejects(
        &schema,
        &with(ok.clone(), "/spec/destination/url", json!("ftp://x/y")),
        "destination.url must be an https://, ssh://, git:// or file:// URL, or scp-like user@host:path (for example git@github.com:acme/apps.git)",
    );
    assert_cel_rejects(
        &schema,
        &with(ok.clone(), "/spec/author/email", json!("nobody")),
        "author.email must be an email address",
    );
    assert_openapi_rejects(
        &schema,
        &with(ok.clone(), "/spec/destination/layout", json!("Split")),
        "/spec/destination/layout",
    );
    assert_openapi_rejects(
        &schema,
        &with(ok.clone(), "/spec/apps", json!([""])),
        "/spec/apps/0",
    );
    // Every app of the workspace: apps left out.
    assert_accepted(&schema, &with(ok, "/spec/apps", Value::Null));
}
