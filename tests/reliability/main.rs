//! The timed reliability runs: SIGKILL during updates and the load test. `cargo test --test
//! reliability`. They take turns (`ONE_AT_A_TIME`): kill points are timed against a measured run,
//! and the load run would skew them.

mod crash;
mod load;

/// The timed runs of this binary take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
