//! The ToolJet layer: the HTTP client and the stand-in it is tested against (both flavours).
//! `cargo test --test tooljet`. The secrets test has its own binary (tests/tooljet_secrets.rs): it
//! needs to be the only test of its process (see there).

mod client;
mod client_config;
mod standin_config;
mod standin_rules;
