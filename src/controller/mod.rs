//! The Kubernetes controller (`tooljet-operator run`).

pub mod conditions;
