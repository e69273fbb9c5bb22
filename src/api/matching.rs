//! Which ToolJetInstance an AppImport targets (environment matching, `instanceRef`, and the
//! `allowedNamespaces` tenancy rule). Shared by the controller and `sync -f` / `plan -f`.

use kube::ResourceExt;

use super::{AppImport, Environment, InstanceRef, Reason, ToolJetInstance, Verdict};

/// Why no instance could be chosen; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceChoiceError {
    #[error(
        "instanceRef names ToolJetInstance {namespace}/{name}, which does not exist; create it or fix instanceRef"
    )]
    RefNotFound { namespace: String, name: String },
    #[error(
        "ToolJetInstance {namespace}/{name} does not list namespace {app_namespace:?} in allowedNamespaces; add it there, or use an instance in this namespace"
    )]
    NamespaceNotAllowed {
        namespace: String,
        name: String,
        app_namespace: String,
    },
    #[error(
        "ToolJetInstance {namespace}/{name} serves environment {serves}, but the AppImport targets {wanted}; point instanceRef at a {wanted} instance or change spec.environment"
    )]
    EnvironmentMismatch {
        namespace: String,
        name: String,
        serves: String,
        wanted: String,
    },
    #[error(
        "no ToolJetInstance for environment {environment} in namespace {namespace:?}; create one, or set instanceRef"
    )]
    NoneForEnvironment {
        environment: String,
        namespace: String,
    },
    #[error(
        "{count} ToolJetInstances serve environment {environment} in namespace {namespace:?}; set instanceRef to pick one"
    )]
    Several {
        count: usize,
        environment: String,
        namespace: String,
    },
}

impl InstanceChoiceError {
    /// The reason for the Ready condition.
    pub fn reason(&self) -> Reason {
        match self {
            InstanceChoiceError::RefNotFound { .. }
            | InstanceChoiceError::NoneForEnvironment { .. } => Reason::InstanceNotFound,
            InstanceChoiceError::NamespaceNotAllowed { .. } => Reason::NamespaceNotAllowed,
            InstanceChoiceError::EnvironmentMismatch { .. } => Reason::EnvironmentMismatch,
            InstanceChoiceError::Several { .. } => Reason::SeveralInstances,
        }
    }

    /// The verdict an AppImport gets when no instance can be chosen.
    pub fn verdict(&self) -> Verdict {
        Verdict::new(self.reason(), self.to_string())
    }
}

/// The instance an AppImport in `app_ns` targets, among `instances`. Objects without a namespace
/// count as being in `default_ns` (manifest files often omit it).
///
/// With `instanceRef`: that instance, if it is in the AppImport's namespace or lists it in
/// `allowedNamespaces`, and serves the AppImport's environment. Without: the one instance of
/// `spec.environment` in the AppImport's namespace.
pub fn select_instance<'a>(
    app: &AppImport,
    app_ns: &str,
    instances: impl IntoIterator<Item = &'a ToolJetInstance>,
    default_ns: &str,
) -> Result<&'a ToolJetInstance, InstanceChoiceError> {
    select_instance_for(
        app.spec.environment,
        app.spec.instance_ref.as_ref(),
        app_ns,
        instances,
        default_ns,
    )
}

/// [`select_instance`] for any object with an environment and an optional `instanceRef`
/// (an AppExport chooses its instance by the same rules).
pub fn select_instance_for<'a>(
    env: Environment,
    instance_ref: Option<&InstanceRef>,
    app_ns: &str,
    instances: impl IntoIterator<Item = &'a ToolJetInstance>,
    default_ns: &str,
) -> Result<&'a ToolJetInstance, InstanceChoiceError> {
    let ns_of = |i: &ToolJetInstance| {
        i.namespace()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_ns.to_owned())
    };
    if let Some(r) = instance_ref {
        let target_ns = r.namespace.as_deref().unwrap_or(app_ns);
        let inst = instances
            .into_iter()
            .find(|i| i.name_any() == r.name && ns_of(i) == target_ns)
            .ok_or_else(|| InstanceChoiceError::RefNotFound {
                namespace: target_ns.to_owned(),
                name: r.name.clone(),
            })?;
        if !inst.spec.namespace_allowed(target_ns, app_ns) {
            return Err(InstanceChoiceError::NamespaceNotAllowed {
                namespace: target_ns.to_owned(),
                name: r.name.clone(),
                app_namespace: app_ns.to_owned(),
            });
        }
        if inst.spec.environment != env {
            return Err(InstanceChoiceError::EnvironmentMismatch {
                namespace: target_ns.to_owned(),
                name: r.name.clone(),
                serves: inst.spec.environment.to_string(),
                wanted: env.to_string(),
            });
        }
        return Ok(inst);
    }
    let matching: Vec<&ToolJetInstance> = instances
        .into_iter()
        .filter(|i| i.spec.environment == env && ns_of(i) == app_ns)
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(InstanceChoiceError::NoneForEnvironment {
            environment: env.to_string(),
            namespace: app_ns.to_owned(),
        }),
        many => Err(InstanceChoiceError::Several {
            count: many.len(),
            environment: env.to_string(),
            namespace: app_ns.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst(ns: Option<&str>, name: &str, env: &str) -> ToolJetInstance {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        serde_json::from_value(
            json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "ToolJetInstance",
            "metadata": meta,
            "spec": {"url": "http://tj", "environment": env, "workspaceId": "w",
                     "auth": {"adminApiKey": {"secretRef": {"name": "s", "key": "k"}}}}}),
        )
        .expect("instance")
    }

    fn app(instance_ref: Option<serde_json::Value>) -> AppImport {
        let mut spec = json!({"environment": "staging",
            "source": {"url": "file:///r", "ref": {"branch": "main"}, "app": "x"}});
        if let Some(r) = instance_ref {
            spec["instanceRef"] = r;
        }
        serde_json::from_value(
            json!({"apiVersion": "gitops.tooljet.dev/v1alpha1", "kind": "AppImport",
            "metadata": {"name": "a"}, "spec": spec}),
        )
        .expect("app")
    }

    #[test]
    fn objects_without_namespace_count_as_the_default_namespace() {
        let list = [
            inst(None, "tj", "staging"),
            inst(Some("x"), "other", "staging"),
        ];
        let got = select_instance(&app(None), "default", &list, "default").expect("found");
        assert_eq!(got.name_any(), "tj");
    }

    #[test]
    fn instance_ref_to_another_environment_is_refused() {
        let list = [inst(Some("default"), "prod", "production")];
        let e = select_instance(
            &app(Some(json!({"name": "prod"}))),
            "default",
            &list,
            "default",
        )
        .unwrap_err();
        assert_eq!(e.reason(), "EnvironmentMismatch");
        assert!(e.to_string().contains("change spec.environment"), "{e}");
    }
}
