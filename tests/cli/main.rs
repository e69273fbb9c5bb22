//! The command line (`sync -f`, `plan -f`, `diff`) as a CI pipeline runs it: the real binary.
//! `cargo test --test cli`.

mod diff;
mod export;
mod plan;
mod prune;
mod scale;
mod sync;
