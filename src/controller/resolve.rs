//! What an AppImport needs before the engine can run: its ToolJetInstance (environment matching
//! or `instanceRef`, with `allowedNamespaces` tenancy), the Secrets it may read (from the watched
//! Secret cache), and a ToolJet client (cached per instance and Secret version).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::caches::Cache;

use crate::api::{AppImport, Reason, ToolJetInstance, Verdict};
use crate::sync::Secrets;
pub use crate::sync::request::instance_secret_names;
use crate::sync::request::tooljet_client;
use crate::tooljet::{RequestObserver, ToolJetClient};

/// The instance an AppImport in `app_ns` targets among `instances` (see
/// [`crate::api::select_instance`]), or the verdict the controller reports when there is none.
pub fn select_instance<'a>(
    app: &AppImport,
    app_ns: &str,
    instances: &'a [Arc<ToolJetInstance>],
) -> Result<&'a Arc<ToolJetInstance>, Verdict> {
    let chosen =
        crate::api::select_instance(app, app_ns, instances.iter().map(|i| i.as_ref()), app_ns)
            .map_err(|e| e.verdict())?;
    instances
        .iter()
        .find(|i| std::ptr::eq(i.as_ref(), chosen))
        .ok_or_else(|| {
            Verdict::new(
                Reason::InstanceNotFound,
                "the chosen instance vanished; retrying",
            )
        })
}

/// How long a reconcile waits for a watch's first full list before it gives up and retries.
pub const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A watch that has not delivered its first full list within [`CACHE_WAIT`] (RBAC, API server).
pub fn not_listed(kind: &str) -> Verdict {
    Verdict::new(
        Reason::CacheNotSynced,
        format!(
            "the operator's {kind} watch has not completed its first list within {}s; check that the operator may list and watch {kind}s (RBAC) and that the API server answers; retrying",
            CACHE_WAIT.as_secs()
        ),
    )
}

/// Reads the named Secrets of one namespace from the Secret cache (the watch the controllers
/// share; no API request). Returns those that exist (a missing one is reported by whoever needs
/// it, as `SecretNotFound`) with a fingerprint of their resourceVersions (so a rotated or
/// created Secret yields a new client).
pub async fn read_secrets(
    cache: &Cache<Secret>,
    namespace: &str,
    names: &[String],
) -> Result<(Secrets, String), Verdict> {
    let mut secrets = Secrets::in_namespace(namespace);
    let mut versions = String::new();
    for name in names {
        let Some(found) = cache.synced_get(namespace, name, CACHE_WAIT).await else {
            return Err(not_listed("Secret"));
        };
        let Some(secret) = found else {
            versions.push_str("-,");
            continue;
        };
        versions.push_str(&secret.resource_version().unwrap_or_default());
        versions.push(',');
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        secrets.insert(name.clone(), data);
    }
    Ok((secrets, versions))
}

/// ToolJet clients by instance uid, instance resourceVersion and Secret versions: a client keeps
/// its login session across reconciles, and any change to the instance or its Secrets builds a
/// new one.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<String, (String, Arc<ToolJetClient>)>>,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl ClientCache {
    /// A cache whose clients report their requests to `observer` (metrics).
    pub fn with_observer(observer: Arc<dyn RequestObserver>) -> Self {
        ClientCache {
            clients: Mutex::default(),
            observer: Some(observer),
        }
    }

    /// The client for `instance`, reading its Secrets from the instance's namespace.
    pub async fn client_for(
        &self,
        secret_cache: &Cache<Secret>,
        instance: &ToolJetInstance,
    ) -> Result<Arc<ToolJetClient>, Verdict> {
        let ns = instance.namespace().unwrap_or_default();
        let (secrets, secret_versions) =
            read_secrets(secret_cache, &ns, &instance_secret_names(&instance.spec)).await?;
        let uid = instance
            .uid()
            .unwrap_or_else(|| format!("{ns}/{}", instance.name_any()));
        let version = format!(
            "{}/{secret_versions}",
            instance.resource_version().unwrap_or_default()
        );
        if let Some((v, c)) = self.lock().get(&uid)
            && *v == version
        {
            return Ok(c.clone());
        }
        let mut client = tooljet_client(instance, &secrets)?;
        if let Some(observer) = &self.observer {
            client = client.with_observer(observer.clone());
        }
        let client = Arc::new(client);
        self.lock().insert(uid, (version, client.clone()));
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Arc<ToolJetClient>)>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(ns: &str, name: &str, yaml: &str) -> Arc<ToolJetInstance> {
        let mut i: ToolJetInstance = serde_saphyr::from_str(yaml).expect("instance parses");
        i.metadata.namespace = Some(ns.into());
        i.metadata.name = Some(name.into());
        Arc::new(i)
    }

    const STAGING: &str = "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: ToolJetInstance\nmetadata: {}\nspec:\n  url: http://tj\n  environment: staging\n  workspaceId: w\n  auth: {adminApiKey: {secretRef: {name: tj, key: k}}}\n";

    fn app(ns: &str, extra: &str) -> AppImport {
        let yaml = format!(
            "apiVersion: gitops.tooljet.dev/v1alpha1\nkind: AppImport\nmetadata: {{name: a, namespace: {ns}}}\nspec:\n  environment: staging\n  source: {{url: 'file:///r', ref: {{branch: main}}, app: x}}\n{extra}"
        );
        serde_saphyr::from_str(&yaml).expect("app parses")
    }

    #[test]
    fn environment_matching_picks_the_one_instance_in_the_namespace() {
        let list = vec![
            instance("team", "tj", STAGING),
            instance("other", "tj2", STAGING),
        ];
        let got = select_instance(&app("team", ""), "team", &list).expect("found");
        assert_eq!(got.name_any(), "tj");
    }

    #[test]
    fn none_or_several_instances_are_refused_with_a_hint() {
        let e = select_instance(&app("team", ""), "team", &[]).unwrap_err();
        assert_eq!(e.reason, "InstanceNotFound");
        assert!(e.message.contains("instanceRef") && !e.retryable());
        let list = vec![
            instance("team", "a", STAGING),
            instance("team", "b", STAGING),
        ];
        let e = select_instance(&app("team", ""), "team", &list).unwrap_err();
        assert_eq!(e.reason, "SeveralInstances");
        assert!(e.message.contains("2 ToolJetInstances"), "{}", e.message);
    }

    #[test]
    fn instance_ref_across_namespaces_needs_allowed_namespaces() {
        let refd = "  instanceRef: {name: shared, namespace: platform}\n";
        let list = vec![instance("platform", "shared", STAGING)];
        let e = select_instance(&app("team", refd), "team", &list).unwrap_err();
        assert_eq!(e.reason, "NamespaceNotAllowed");
        assert!(e.message.contains("allowedNamespaces"));

        let allowed = format!("{STAGING}  allowedNamespaces: [team]\n");
        let list = vec![instance("platform", "shared", &allowed)];
        let got = select_instance(&app("team", refd), "team", &list).expect("allowed");
        assert_eq!(got.name_any(), "shared");
    }
}
