//! tooljet-operator: imports ToolJet apps from git into ToolJet instances, one environment at a time.
pub mod api;
pub mod source;
pub mod tooljet;
pub mod offline;
pub mod sync;
