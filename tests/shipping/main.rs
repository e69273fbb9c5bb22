//! What ships: the Helm chart and the container image. `cargo test --test shipping`.

#[path = "../tools/mod.rs"]
mod tools;

mod chart;
mod image;
