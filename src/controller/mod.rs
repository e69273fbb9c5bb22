//! The Kubernetes controller (`tooljet-operator run`).

pub mod app_import;
pub mod conditions;
pub mod resolve;

/// Errors of the controller layer.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}; check the operator's RBAC and that the API server is reachable")]
    Kube(#[source] kube::Error),
    #[error("{0}")]
    InvalidObject(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ControllerError>>),
    #[error("cleanup on deletion failed: {0}")]
    Cleanup(String),
}
