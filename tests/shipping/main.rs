//! What ships: the Helm chart and the container image. `cargo test --test shipping`.

mod chart;
mod image;
