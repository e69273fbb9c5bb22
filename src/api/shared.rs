//! Types shared by both custom resources: environments, Secret references, annotation names.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of both custom resources.
pub const GROUP: &str = "gitops.tooljet.dev";
/// API version of both custom resources.
pub const VERSION: &str = "v1alpha1";

/// Annotation: any new value asks for an immediate reconcile; echoed in
/// `status.lastHandledReconcileAt` once handled (same contract as Flux's `reconcile.fluxcd.io/requestedAt`).
pub const ANNOTATION_RECONCILE_REQUESTED_AT: &str = "gitops.tooljet.dev/reconcile-requested-at";
/// Annotation: with `updatePolicy: Manual`, the commit sha the user approves for import.
pub const ANNOTATION_APPROVE: &str = "gitops.tooljet.dev/approve";
/// Annotation: with `editable: true`, the commit sha that may overwrite local edits made in ToolJet.
pub const ANNOTATION_FORCE_PULL: &str = "gitops.tooljet.dev/force-pull";
/// Annotation on an AppImport: the other namespaces (comma-separated) whose AppImports may
/// promote from it with `ref.fromAppImport`. Same-namespace promotion needs no annotation.
pub const ANNOTATION_PROMOTE_TO_NAMESPACES: &str = "gitops.tooljet.dev/promote-to-namespaces";
/// Finalizer that applies `deletionPolicy` before an AppImport goes away.
pub const FINALIZER: &str = "gitops.tooljet.dev/finalizer";

/// The ToolJet environment an instance serves and an import targets.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Staging,
    Production,
}

impl Environment {
    /// The name used in manifests and by ToolJet (`development`, `staging`, `production`).
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole Secret in the referring object's namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One key of a Secret in the referring object's namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}
