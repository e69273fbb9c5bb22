//! The sync engine (no Kubernetes): runs, swaps, recovery, faults, the bad-input corpus, the
//! diff round trip and the property tests. `cargo test --test sync`.

mod corpus;
mod diff_roundtrip;
mod engine;
mod export;
mod faults;
mod instance_config;
mod noop_requests;
mod properties;
