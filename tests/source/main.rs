//! The source layer (git): cache, repository layout, transports. `cargo test --test source`.
//! The timeout test has its own binary (tests/source_timeout.rs): libgit2's socket timeouts are
//! process-wide, set by the first cache.

mod common;

mod cache;
mod layout;
mod push;
mod transports;
