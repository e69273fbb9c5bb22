//! From an AppImport, its ToolJetInstance and the Secrets they name to what the engine needs: a
//! ToolJet client and a [`SyncRequest`]. The controller (objects from its watch caches) and
//! `sync -f` / `plan -f` (objects from files) both build them here, so the same objects give the
//! same request, and the same failure the same [`Verdict`]. No Kubernetes client: callers hand
//! over objects they already hold.

use std::borrow::Cow;

use kube::ResourceExt;

use super::connect::{Secrets, git_credentials, tooljet_config};
use super::names::ImportKey;
use super::state::SyncState;
use crate::api::{
    ANNOTATION_APPROVE, ANNOTATION_FORCE_PULL, AppImport, AppImportSpec, AuthMethod, GitRef,
    Reason, ToolJetInstance, ToolJetInstanceSpec, Verdict,
};
use crate::source::Credentials;
use crate::tooljet::ToolJetClient;

/// Namespace of objects whose manifest names none (as `kubectl apply` would use).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One AppImport to sync, with everything resolved by the caller.
pub struct SyncRequest<'a> {
    pub key: ImportKey,
    pub spec: &'a AppImportSpec,
    pub instance: &'a ToolJetInstanceSpec,
    /// Changes whenever the spec changes (metadata.generation, or a hash of the spec).
    pub generation: Option<i64>,
    /// The `gitops.tooljet.dev/approve` annotation.
    pub approve: Option<&'a str>,
    /// The `gitops.tooljet.dev/force-pull` annotation.
    pub force_pull: Option<&'a str>,
    pub git_credentials: Credentials,
    /// What the last run left (status, or the state file).
    pub state: SyncState,
}

/// An object's namespace, [`DEFAULT_NAMESPACE`] when it names none.
pub fn namespace_of(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned()
}

/// Names of the Secrets an instance reads (auth, the CA when set, and those of its constants and
/// data-source options), in its own namespace. The Secret watch re-checks the instance when one
/// of them changes, so a rotated value reaches ToolJet within seconds.
pub fn instance_secret_names(spec: &ToolJetInstanceSpec) -> Vec<String> {
    let mut names = super::instance_config::config_secret_names(spec);
    match spec.auth.method() {
        Some(AuthMethod::AdminApiKey(r)) | Some(AuthMethod::ExternalToken(r)) => {
            names.push(r.name.clone())
        }
        Some(AuthMethod::Password(r)) => names.push(r.name.clone()),
        None => {}
    }
    if let Some(ca) = spec.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
        names.push(ca.name.clone());
    }
    names.sort();
    names.dedup();
    names
}

/// Names of the Secrets an AppImport reads in its own namespace (the git credentials).
pub fn import_secret_names(app: &AppImport) -> Vec<String> {
    app.spec
        .source
        .secret_ref
        .iter()
        .map(|r| r.name.clone())
        .collect()
}

/// A ToolJet client for `instance`, from the Secrets of the instance's namespace.
pub fn tooljet_client(
    instance: &ToolJetInstance,
    secrets: &Secrets,
) -> Result<ToolJetClient, Verdict> {
    let config = tooljet_config(&instance.spec, secrets).map_err(|e| e.verdict())?;
    ToolJetClient::new(config).map_err(|e| {
        Verdict::new(
            Reason::ToolJetConfigInvalid,
            format!("{e}; fix the ToolJetInstance"),
        )
    })
}

/// `app` as the engine syncs it: a promotion's followed commit becomes a pinned `ref.commit`
/// (fetched from this AppImport's own `source.url`, so a Manual policy offers it for approval
/// as any new commit); a branch, tag or commit ref, or no commit to follow, leaves it as it is.
pub fn with_promotion<'a>(app: &'a AppImport, followed_sha: Option<&str>) -> Cow<'a, AppImport> {
    match followed_sha {
        Some(sha) if app.spec.source.git_ref.from_app_import.is_some() => {
            let mut pinned = app.clone();
            pinned.spec.source.git_ref = GitRef {
                commit: Some(sha.to_owned()),
                ..GitRef::default()
            };
            Cow::Owned(pinned)
        }
        _ => Cow::Borrowed(app),
    }
}

/// The engine's request for `app` on `instance`, with the git credentials from `secrets` (the
/// Secrets of the AppImport's own namespace: tenancy). `generation` changes with the spec.
pub fn sync_request<'a>(
    app: &'a AppImport,
    instance: &'a ToolJetInstance,
    secrets: &Secrets,
    generation: Option<i64>,
    state: SyncState,
) -> Result<SyncRequest<'a>, Verdict> {
    let git_secret = app.spec.source.secret_ref.as_ref().map(|r| r.name.as_str());
    let git_credentials = git_credentials(git_secret, secrets).map_err(|e| e.verdict())?;
    let annotation = |name: &str| {
        app.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(name))
            .map(String::as_str)
    };
    Ok(SyncRequest {
        key: ImportKey::new(
            namespace_of(app.metadata.namespace.as_deref()),
            app.name_any(),
        ),
        spec: &app.spec,
        instance: &instance.spec,
        generation,
        approve: annotation(ANNOTATION_APPROVE),
        force_pull: annotation(ANNOTATION_FORCE_PULL),
        git_credentials,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn objects(secret_ref: &str) -> (AppImport, ToolJetInstance) {
        let app: AppImport = serde_saphyr::from_str(&format!(
            "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: AppImport\nmetadata:\n  name: sales\n  namespace: team\n  annotations: {{gitops.tooljet.dev/approve: abcdef0}}\nspec:\n  environment: staging\n  source: {{url: 'https://git.example/r.git', ref: {{branch: main}}, app: x{secret_ref}}}\n"
        ))
        .expect("app");
        let instance: ToolJetInstance = serde_saphyr::from_str(
            "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: ToolJetInstance\nmetadata: {name: tj, namespace: platform}\nspec:\n  url: http://tj\n  environment: staging\n  workspaceId: w\n  auth: {adminApiKey: {secretRef: {name: tj-admin, key: key}}}\n  tls: {caSecretRef: {name: ca, key: ca.crt}}\n",
        )
        .expect("instance");
        (app, instance)
    }

    #[test]
    fn the_request_carries_key_annotations_and_generation() {
        let (app, instance) = objects("");
        let req = sync_request(
            &app,
            &instance,
            &Secrets::in_namespace("team"),
            Some(7),
            SyncState::default(),
        )
        .expect("request");
        assert_eq!(req.key, ImportKey::new("team", "sales"));
        assert_eq!(req.approve, Some("abcdef0"));
        assert_eq!(req.force_pull, None);
        assert_eq!(req.generation, Some(7));
        assert!(matches!(req.git_credentials, Credentials::Anonymous));
    }

    #[test]
    fn a_missing_secret_is_secret_not_found_naming_its_namespace() {
        let (app, instance) = objects(", secretRef: {name: git}");
        let Err(v) = sync_request(
            &app,
            &instance,
            &Secrets::in_namespace("team"),
            None,
            SyncState::default(),
        ) else {
            panic!("a missing git Secret must be refused");
        };
        assert_eq!(v.reason, Reason::SecretNotFound);
        assert!(v.message.contains("team/git"), "{}", v.message);
        let Err(v) = tooljet_client(&instance, &Secrets::in_namespace("platform")) else {
            panic!("a missing auth Secret must be refused");
        };
        assert_eq!(v.reason, Reason::SecretNotFound);
        assert!(v.message.contains("platform/"), "{}", v.message);
        let mut secrets = Secrets::in_namespace("platform");
        secrets.insert("tj-admin", BTreeMap::new());
        secrets.insert("ca", BTreeMap::new());
        let Err(v) = tooljet_client(&instance, &secrets) else {
            panic!("a missing key must be refused");
        };
        assert_eq!(v.reason, Reason::InvalidSpec);
    }

    #[test]
    fn a_followed_promotion_is_a_pinned_commit_and_nothing_else_changes() {
        let (mut app, _) = objects("");
        let sha = "c".repeat(40);
        // A branch ref is never rewritten.
        assert!(matches!(with_promotion(&app, Some(&sha)), Cow::Borrowed(_)));
        app.spec.source.git_ref = serde_json::from_value(
            serde_json::json!({"fromAppImport": {"name": "dev"}, "readyFor": "1h"}),
        )
        .expect("ref");
        assert!(matches!(with_promotion(&app, None), Cow::Borrowed(_)));
        let pinned = with_promotion(&app, Some(&sha));
        assert_eq!(
            pinned.spec.source.git_ref.kind(),
            Some(crate::api::RefKind::Commit(sha.as_str()))
        );
        assert_eq!(pinned.spec.source.url, app.spec.source.url);
        assert_eq!(pinned.metadata, app.metadata);
    }

    #[test]
    fn secret_names_cover_auth_ca_and_git() {
        let (app, instance) = objects(", secretRef: {name: git}");
        assert_eq!(
            instance_secret_names(&instance.spec),
            vec!["ca", "tj-admin"]
        );
        assert_eq!(import_secret_names(&app), vec!["git"]);
        assert_eq!(namespace_of(None), "default");
        assert_eq!(namespace_of(Some("")), "default");
    }
}
