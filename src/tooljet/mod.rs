//! The HTTP client for ToolJet (contract §2 and §3 of `shared/tooljet-contract.md`).
//!
//! One [`ToolJetClient`] talks to one ToolJet workspace with one of the three
//! authentication modes ([`Auth`]). Every failure is a [`ToolJetError`] a caller can act
//! on; only [`ToolJetError::Transient`] is worth retrying.

mod app_list;
mod client;
mod config;
mod constants;
mod datasource_options;
mod error;
mod model;

pub use app_list::REUSE_APP_LISTS;
pub use client::{MAX_REQUEST_BODY, RequestObserver, ToolJetClient};
pub use config::{Auth, ClientConfig};
pub use constants::EnvironmentConstant;
pub use datasource_options::{
    ConnectionTest, MAX_CONNECTION_MESSAGE, MergedOptions, OptionEntry, OptionMap, merge_options,
};
pub use error::{ToolJetError, TransientKind};
pub use model::{
    AppDetails, AppSummary, AppUpdate, Constant, ConstantType, ConstantValue, DataQuery,
    DataSource, DataSourceOption, Environment, Family, ImportedApp, MASKED_VALUE, NEWEST_MAJOR,
    OLDEST_SUPPORTED, ServerVersion, VersionInfo,
};
