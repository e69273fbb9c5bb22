//! The user-facing API: the `ToolJetInstance`, `AppImport` and `AppExport` custom resources
//! (group `gitops.tooljet.dev`, version `v1alpha1`), their validation rules, and the CRD YAML.

mod app_export;
mod app_import;
mod instance;
mod instance_config;
mod matching;
mod shared;
#[cfg(test)]
mod validation_tests;
mod verdict;

pub use app_export::{
    AppExport, AppExportSpec, AppExportStatus, AppName, ExportAuthor, ExportCommit,
    ExportDestination, ExportLayout, ExportedAppStatus,
};
pub use app_import::{
    AppImport, AppImportSpec, AppImportStatus, AppLocation, AppStatus, CommitInfo,
    DEFAULT_INTERVAL, DataSourceAction, DataSourceStatus, DeletionPolicy, GitRef, GitSource,
    HISTORY_LIMIT, HistoryEntry, INTERVAL_PATTERN, InstanceRef, MIN_INTERVAL, PendingApp, RefKind,
    UpdatePolicy,
};
pub use app_import::{AppImportRef, PromotionRef, PromotionStatus};
pub use app_import::{ChangeSummary, ChangesStatus};
pub use instance::{
    AuthMethod, InstanceAuth, SecretAuth, SecretKeyAuth, TlsConfig, ToolJetInstance,
    ToolJetInstanceSpec, ToolJetInstanceStatus,
};
pub use instance_config::{
    CONSTANT_NAME_PATTERN, ConfiguredDataSource, ConnectionState, ConstantKind, ConstantSpec,
    DataSourceConfig, DataSourceOptionSpec, MAX_CONSTANT_NAME, MAX_CONSTANT_NAME_V2,
    MAX_CONSTANT_VALUE, MAX_CONSTANTS, MAX_DATA_SOURCES, MAX_OPTION_VALUE, MAX_OPTIONS,
    OwnedConstant, ValueFrom, ValueSource,
};
pub use matching::{InstanceChoiceError, select_instance, select_instance_for};
pub use shared::ANNOTATION_PROMOTE_TO_NAMESPACES;
pub use shared::{
    ANNOTATION_APPROVE, ANNOTATION_FORCE_PULL, ANNOTATION_RECONCILE_REQUESTED_AT, Environment,
    FINALIZER, GROUP, SecretKeyRef, SecretRef, VERSION,
};
pub use verdict::{Consequence, DetailReason, Drift, Reason, Verdict, reasons_markdown};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Condition types reported in `status.conditions`.
pub mod condition {
    /// kstatus: the object is in its desired state.
    pub const READY: &str = "Ready";
    /// kstatus: work is in progress.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: progress stopped until the user acts.
    pub const STALLED: &str = "Stalled";
    /// AppImport with `updatePolicy: Manual`: a newer commit waits for approval.
    pub const UPDATE_AVAILABLE: &str = "UpdateAvailable";
    /// AppImport with `editable: false`: the app was edited in ToolJet and is being restored.
    pub const DRIFTED: &str = "Drifted";
    /// ToolJetInstance: its constants and data-source options are written as the spec says.
    pub const CONFIG_APPLIED: &str = "ConfigApplied";
    /// ToolJetInstance: ToolJet's connection test of every configured data source passed
    /// (False is a warning, not a stall).
    pub const DATA_SOURCES_HEALTHY: &str = "DataSourcesHealthy";
    /// AppImport: the instance configures every data source the app's queries use
    /// (informative).
    pub const DATA_SOURCES_CONFIGURED: &str = "DataSourcesConfigured";

    /// Reasons named by the API; every reason is in [`super::Reason`].
    pub mod reason {
        use super::super::Reason;
        /// Editable app edited in ToolJet while a newer commit arrived: nothing written.
        pub const LOCAL_CHANGES: &str = Reason::LocalChanges.as_str();
        /// Editable import into an instance with `allowEditableApps: false`.
        pub const EDITABLE_NOT_ALLOWED: &str = Reason::EditableNotAllowed.as_str();
        /// An app of that name exists that this AppImport did not import.
        pub const NAME_CONFLICT: &str = Reason::NameConflict.as_str();
    }
}

/// Errors of the api layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "spec.interval `{value}` is not usable: {reason}; write a duration of at least 10s such as 30s, 5m or 1h30m"
    )]
    InvalidInterval { value: String, reason: String },
    #[error("spec.source.ref is invalid: {0}")]
    InvalidRef(String),
    #[error("{kind} `{name}` is invalid: {problems}; fix the manifest")]
    Invalid {
        kind: String,
        name: String,
        problems: String,
    },
    #[error(
        "could not write the CRDs as YAML: {0}; this is a bug in tooljet-operator, please report it"
    )]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// The CustomResourceDefinitions: ToolJetInstance, AppImport, AppExport.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![ToolJetInstance::crd(), AppImport::crd(), AppExport::crd()]
}

/// The CRDs as multi-document YAML: what `tooljet-operator crds` prints and `crds/` holds.
pub fn crds_yaml() -> Result<String, ApiError> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

/// Checks an object against the CEL rules of its CRD, as the API server would on create.
///
/// For objects that never met an API server (`sync -f` / `plan -f` read them from files).
/// Plain OpenAPI constraints (enums, required fields) are enforced by deserialising into the types.
/// The CRD's rules are generated and compiled once per kind and thread (that was nine tenths of
/// the cost of checking one object, and a manifest holds hundreds).
pub fn validate_against_crd<K>(obj: &K) -> Result<(), ApiError>
where
    K: kube::CustomResourceExt + kube::Resource + serde::Serialize,
{
    let kind = K::api_resource().kind;
    let invalid = |problems: String| ApiError::Invalid {
        kind: kind.clone(),
        name: obj.meta().name.clone().unwrap_or_default(),
        problems,
    };
    let object = serde_json::to_value(obj).map_err(|e| invalid(e.to_string()))?;
    CEL_RULES
        .with(|rules| rules.validate::<K>(&kind, &object))
        .map_err(|errors| {
            invalid(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

/// The CEL rules of the CRDs, compiled on first use.
struct CelRules {
    validator: kube::core::cel::Validator,
    by_kind: std::cell::RefCell<
        std::collections::HashMap<String, std::rc::Rc<kube::core::cel::CompiledSchema>>,
    >,
}

thread_local! {
    static CEL_RULES: CelRules = CelRules {
        validator: kube::core::cel::Validator::new(),
        by_kind: Default::default(),
    };
}

impl CelRules {
    fn validate<K: kube::CustomResourceExt>(
        &self,
        kind: &str,
        object: &serde_json::Value,
    ) -> Result<(), kube::core::cel::ValidationErrors> {
        let cached = self.by_kind.borrow().get(kind).cloned();
        let compiled = match cached {
            Some(c) => c,
            None => {
                // As kube's `validate_cel` reads it: the first version's openAPIV3Schema.
                let schema = K::crd()
                    .spec
                    .versions
                    .first()
                    .and_then(|v| v.schema.as_ref())
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or_default();
                let compiled = std::rc::Rc::new(kube::core::cel::compile_schema(&schema));
                self.by_kind
                    .borrow_mut()
                    .insert(kind.to_owned(), compiled.clone());
                compiled
            }
        };
        self.validator.validate_compiled(&compiled, object, None)
    }
}
