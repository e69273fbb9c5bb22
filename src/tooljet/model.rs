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
    #[serde(default)]
    pub is_public: Option<bool>,
    #[serde(default)]
    pub is_maintenance_on: Option<bool>,
    #[serde(default)]
    pub icon: Option<String>,
    /// The editing version's queries (`data_source_id` also for static sources); `None` when
    /// the server does not list them, so that nothing is concluded from their absence.
    #[serde(default)]
    pub data_queries: Option<Vec<DataQuery>>,
}

/// A query of an app's editing version, as `GET /api/apps/:id` lists it. On 2.x a query edit
/// moves only the query's own `updated_at`, not the app's nor the version's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DataQuery {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub data_source_id: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A workspace (global) data source, as the family's list route shows it. Options are left out:
/// secrets appear there only as credential ids, but the engine needs none of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DataSource {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[serde(default, rename = "type")]
    pub source_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// 2.x: the app version that created it (an import); deleting that version deletes it.
    #[serde(default)]
    pub app_version_id: Option<String>,
}

/// One option of a data source to create, in ToolJet's write shape `{key, value, encrypted}`.
/// The engine sends only non-secret options (`encrypted: false`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSourceOption {
    pub key: String,
    pub value: serde_json::Value,
    pub encrypted: bool,
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

/// A constant's type. 2.x has none (it drops `type`): its constants list as `Global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum ConstantType {
    #[default]
    Global,
    Secret,
}

/// What 3.x shows instead of a Secret constant's value.
pub const MASKED_VALUE: &str = "********";

/// A workspace constant, as `GET /api/organization-constants` lists it: 2.x in plain text and
/// without `type`, 3.x with Secret values masked as `********`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Constant {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: ConstantType,
    #[serde(default)]
    pub values: Vec<ConstantValue>,
}

impl Constant {
    /// The value in environment `name`, when listed; `None` also for a masked Secret.
    pub fn readable_value(&self, environment: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|v| v.environment_name == environment)
            .map(|v| v.value.as_str())
            .filter(|v| !(self.kind == ConstantType::Secret && *v == MASKED_VALUE))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConstantValue {
    #[serde(rename = "environmentName")]
    pub environment_name: String,
    #[serde(default)]
    pub value: String,
    /// The environment's id (2.x lists it; 3.x does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The ToolJet family, which decides the routes the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Family {
    /// ToolJet 2.x (2.27 and later): release with `PUT /apps/:id {app:{current_version_id}}`.
    V2,
    /// ToolJet 3.x: release with `PUT /apps/:id/release`.
    V3,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V2 => "2.x",
            Family::V3 => "3.x",
        })
    }
}

/// The oldest 2.x the client knows the routes of (the one that was checked: 2.27.1).
pub const OLDEST_SUPPORTED: (u64, u64) = (2, 27);
/// The newest major the client knows.
pub const NEWEST_MAJOR: u64 = 3;

/// The longest version text accepted (`status.serverVersion` allows 64 characters).
pub const MAX_VERSION_LEN: usize = 64;

/// What `GET /api/metadata` says the server is (`installed_version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// As the server wrote it, e.g. `2.27.1` or `3.5.11-ee-lts`.
    pub raw: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl ServerVersion {
    /// Reads the leading `x.y[.z]` of a ToolJet version (suffixes such as `-ee-lts` ignored);
    /// `None` when there is none, or when the text is longer than [`MAX_VERSION_LEN`] (it is
    /// shown in status).
    pub fn parse(raw: &str) -> Option<ServerVersion> {
        let trimmed = raw.trim();
        if trimmed.len() > MAX_VERSION_LEN {
            return None;
        }
        let head: String = trimmed
            .strip_prefix('v')
            .unwrap_or(trimmed)
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = head.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            None | Some("") => 0,
            Some(p) => p.parse().ok()?,
        };
        Some(ServerVersion {
            raw: trimmed.to_string(),
            major,
            minor,
            patch,
        })
    }

    /// The family, when the client supports this version: 2.27 or later 2.x, or 3.x.
    pub fn family(&self) -> Option<Family> {
        match self.major {
            2 if (self.major, self.minor) >= OLDEST_SUPPORTED => Some(Family::V2),
            3 => Some(Family::V3),
            _ => None,
        }
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_absent_are_unknown_not_none() {
        let base = serde_json::json!({"id": "a", "name": "A", "slug": "a", "updated_at": "t"});
        let app: AppDetails = serde_json::from_value(base.clone()).unwrap();
        assert_eq!(app.data_queries, None);
        let mut listed = base;
        listed["data_queries"] = serde_json::json!([
            {"id": "q", "name": "list", "kind": "postgresql", "data_source_id": "d"}
        ]);
        let app: AppDetails = serde_json::from_value(listed).unwrap();
        let queries = app.data_queries.unwrap();
        assert_eq!(queries[0].data_source_id.as_deref(), Some("d"));
    }

    #[test]
    fn versions_and_families() {
        let v = ServerVersion::parse("2.27.1").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (2, 27, 1));
        assert_eq!(v.family(), Some(Family::V2));
        let v = ServerVersion::parse(" v3.5.11-ee-lts ").unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.raw.as_str()),
            (3, 5, 11, "v3.5.11-ee-lts")
        );
        assert_eq!(v.family(), Some(Family::V3));
        assert_eq!(
            ServerVersion::parse("2.50").unwrap().family(),
            Some(Family::V2)
        );
        assert_eq!(ServerVersion::parse("2.26.9").unwrap().family(), None);
        assert_eq!(ServerVersion::parse("1.9.0").unwrap().family(), None);
        assert_eq!(ServerVersion::parse("4.0.0").unwrap().family(), None);
        let long = format!("3.1.0-{}", "x".repeat(60));
        for bad in ["", "latest", "3", "3.x", "x.1.2", long.as_str()] {
            assert_eq!(ServerVersion::parse(bad), None, "{bad:?}");
        }
    }
}
