//! The controller and its process (server, webhooks, metrics, leader election) against kube
//! mocks and the in-process API server; the monitoring objects. `cargo test --test controller`.

#[path = "../http_probe/mod.rs"]
mod http_probe;
#[path = "../kube_mock/mod.rs"]
mod kube_mock;
#[path = "../promql/mod.rs"]
mod promql;
#[path = "../reconcile_rig/mod.rs"]
mod reconcile_rig;
#[path = "../tools/mod.rs"]
mod tools;

mod mock;
mod monitoring;
mod observe;
mod secure_defaults;
mod start;
