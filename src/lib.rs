//! tooljet-operator: imports ToolJet apps from git into ToolJet instances, one environment at a time.
pub mod api;
pub mod controller;
pub mod diff;
pub mod diff_command;
pub mod offline;
pub mod offline_export;
pub mod process;
#[cfg(test)]
mod reason_tests;
pub mod source;
pub mod sync;
pub mod tooljet;
