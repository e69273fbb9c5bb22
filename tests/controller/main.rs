//! The controller and its process (server, webhooks, metrics, leader election) against kube
//! mocks and the in-process API server; the monitoring objects. `cargo test --test controller`.

mod changes;
mod export;
mod mock;
mod monitoring;
mod observe;
mod promotion;
mod secure_defaults;
mod start;
