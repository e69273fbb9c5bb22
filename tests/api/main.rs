//! The API layer: CRD types, the generated CRDs and the deployed examples. `cargo test --test api`.

mod crds;
mod examples;
