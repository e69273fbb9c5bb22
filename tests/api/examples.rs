//! Every manifest under deploy/examples/ parses as its type, passes the CRD's rules, and refers
//! only to Secrets (and keys) defined beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::CustomResourceExt;
use serde_json::Value;
use tooljet_operator::api::{
    AppImport, AuthMethod, Environment, SecretKeyRef, ToolJetInstance, validate_against_crd,
};

/// Everything found in one example file.
#[derive(Default)]
struct Example {
    instances: Vec<ToolJetInstance>,
    imports: Vec<AppImport>,
    /// Secret name -> its keys (from `data` and `stringData`).
    secrets: BTreeMap<String, Vec<String>>,
}

fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/examples exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// The plain OpenAPI part of a CRD (enums, patterns, lengths), checked with a JSON-schema validator.
fn check_openapi<K: CustomResourceExt>(doc: &Value, file: &Path) {
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
    assert!(errors.is_empty(), "{}: {errors:?}", file.display());
}

fn load(file: &Path) -> Example {
    let text = std::fs::read_to_string(file).expect("example readable");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
    let mut ex = Example::default();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Secret" => {
                let s: Secret = serde_json::from_value(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let mut keys: Vec<String> =
                    s.data.iter().flatten().map(|(k, _)| k.clone()).collect();
                keys.extend(s.string_data.iter().flatten().map(|(k, _)| k.clone()));
                ex.secrets
                    .insert(s.metadata.name.expect("Secret has a name"), keys);
            }
            "ToolJetInstance" => {
                check_openapi::<ToolJetInstance>(&doc, file);
                let i: ToolJetInstance = serde_json::from_value(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                validate_against_crd(&i).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                ex.instances.push(i);
            }
            "AppImport" => {
                check_openapi::<AppImport>(&doc, file);
                let a: AppImport = serde_json::from_value(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                validate_against_crd(&a).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                ex.imports.push(a);
            }
            other => panic!("{}: unexpected kind `{other}`", file.display()),
        }
    }
    ex
}

fn assert_key(ex: &Example, r: &SecretKeyRef, file: &Path) {
    let keys = ex
        .secrets
        .get(&r.name)
        .unwrap_or_else(|| panic!("{}: no Secret `{}`", file.display(), r.name));
    assert!(
        keys.contains(&r.key),
        "{}: Secret `{}` has no key `{}`",
        file.display(),
        r.name,
        r.key
    );
}

#[test]
fn every_example_parses_validates_and_is_complete() {
    let files = example_files();
    assert!(!files.is_empty(), "no examples found");
    let mut environments = vec![];
    for file in &files {
        let ex = load(file);
        assert_eq!(
            (ex.instances.len(), ex.imports.len()),
            (1, 1),
            "{}: one instance and one import",
            file.display()
        );
        let (instance, import) = (&ex.instances[0], &ex.imports[0]);
        assert_eq!(
            instance.spec.environment,
            import.spec.environment,
            "{}",
            file.display()
        );
        match instance.spec.auth.method().expect("one auth method") {
            AuthMethod::AdminApiKey(r) | AuthMethod::ExternalToken(r) => assert_key(&ex, r, file),
            AuthMethod::Password(r) => {
                for key in ["email", "password"] {
                    assert_key(
                        &ex,
                        &SecretKeyRef {
                            name: r.name.clone(),
                            key: key.into(),
                        },
                        file,
                    );
                }
            }
        }
        if let Some(ca) = instance
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.ca_secret_ref.as_ref())
        {
            assert_key(&ex, ca, file);
        }
        if let Some(git) = &import.spec.source.secret_ref {
            let keys = &ex.secrets[&git.name];
            let usable = |k: &[&str]| k.iter().all(|k| keys.iter().any(|x| x == k));
            assert!(
                usable(&["token"])
                    || usable(&["username", "password"])
                    || usable(&["identity", "known_hosts"]),
                "{}: git Secret `{}` has neither token, username+password nor identity+known_hosts",
                file.display(),
                git.name
            );
        }
        // Development imports are editable and allowed to be; staging and production are not.
        let dev = instance.spec.environment == Environment::Development;
        assert_eq!(import.spec.editable, dev, "{}", file.display());
        assert_eq!(
            instance.spec.editable_apps_allowed(),
            dev,
            "{}",
            file.display()
        );
        environments.push(instance.spec.environment);
    }
    environments.sort_by_key(|e| e.as_str());
    assert_eq!(
        environments,
        [
            Environment::Development,
            Environment::Production,
            Environment::Staging
        ]
    );
}
