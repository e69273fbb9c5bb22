//! What the client returns, in ToolJet's vocabulary (snake_case on the wire).

use serde::{Deserialize, Serialize};

/// One app in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AppSummary {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub current_version_id: Option<String>,
    /// Absent in the EE external API listing.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A version of an app (the editing version, in [`AppDetails`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct VersionInfo {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// `GET /api/apps/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AppDetails {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The released version; `None` until released.
    #[serde(default)]
    pub current_version_id: Option<String>,
    pub updated_at: String,
    #[serde(default)]
    pub editing_version: Option<VersionInfo>,
}

/// The app an import created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ImportedApp {
    pub id: String,
    pub name: String,
}

/// Fields to change with `PUT /api/apps/:id`; `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Environment {
    pub id: String,
    pub name: String,
    pub priority: u32,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ConstantType {
    Global,
    Secret,
}

/// A workspace constant; ToolJet masks secret values as `********`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Constant {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ConstantType,
    #[serde(default)]
    pub values: Vec<ConstantValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConstantValue {
    #[serde(rename = "environmentName")]
    pub environment_name: String,
    pub value: String,
}
