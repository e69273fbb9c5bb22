//! The per-environment configuration a `ToolJetInstance` owns: workspace constants and the
//! options (credentials) of workspace data sources (issue 15; `shared/api.md`).
//!
//! Values come from the spec or from a Secret key in the instance's namespace and never appear
//! in status: status records names, ids and a keyed hash of what was written (see
//! [`crate::sync::config_plan`] for how the hash is made and used).

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::SecretKeyRef;

/// ToolJet's name rule for constants (2.27.1 and 3.x create routes; the PATCH route of both has
/// no pattern check, so the operator checks names itself).
pub const CONSTANT_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// The longest constant name 3.x creates; 2.x creates at most [`MAX_CONSTANT_NAME_V2`].
pub const MAX_CONSTANT_NAME: usize = 50;
/// The longest constant name 2.27.1 creates (33 is refused, K10).
pub const MAX_CONSTANT_NAME_V2: usize = 32;
/// The longest constant value ToolJet accepts (10,001 is refused, K12).
pub const MAX_CONSTANT_VALUE: usize = 10_000;
/// The longest data-source option value accepted in the spec (certificates fit).
pub const MAX_OPTION_VALUE: usize = 65_536;
/// How many constants one instance may declare.
pub const MAX_CONSTANTS: usize = 200;
/// How many data sources one instance may configure.
pub const MAX_DATA_SOURCES: usize = 64;
/// How many options one data source entry may set.
pub const MAX_OPTIONS: usize = 64;

/// A constant's type: `Global` (readable, `{{constants.x}}`) or `Secret` (3.x only, masked,
/// `{{secrets.x}}`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ConstantKind {
    #[default]
    Global,
    Secret,
}

impl ConstantKind {
    /// The name ToolJet uses (`Global`, `Secret`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConstantKind::Global => "Global",
            ConstantKind::Secret => "Secret",
        }
    }
}

impl std::fmt::Display for ConstantKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a value comes from when it is not written in the spec.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A key of a Secret in the instance's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A value written in the spec or read from a Secret: exactly one of the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSource<'a> {
    Inline(&'a str),
    Secret(&'a SecretKeyRef),
}

fn value_source<'a>(
    value: &'a Option<String>,
    from: &'a Option<ValueFrom>,
) -> Option<ValueSource<'a>> {
    match (value, from) {
        (Some(v), None) => Some(ValueSource::Inline(v)),
        (None, Some(f)) => Some(ValueSource::Secret(&f.secret_key_ref)),
        _ => None,
    }
}

/// One workspace constant of this environment.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)")
    .message("a constant must set exactly one of value or valueFrom.secretKeyRef"))]
pub struct ConstantSpec {
    /// The constant's name in ToolJet: letters, digits and underscores, not starting with a
    /// digit; at most 50 characters (32 on ToolJet 2.x). Case-sensitive.
    #[schemars(length(min = 1, max = 50), regex(pattern = CONSTANT_NAME_PATTERN))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$') && size(self) <= 50")
        .message("constant names start with a letter or underscore, contain only letters, digits and underscores, and have at most 50 characters (32 on ToolJet 2.x)"))]
    pub name: String,

    /// `Global` (default) or `Secret` (ToolJet 3.x only: 2.x stores every constant in plain
    /// text, readable by any session; put credentials into an encrypted data-source option).
    #[serde(default, rename = "type")]
    pub kind: ConstantKind,

    /// The value, written in the spec (1 to 10,000 characters). Exactly one of value / valueFrom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 10000")
        .message("a constant value must have 1 to 10,000 characters"))]
    pub value: Option<String>,

    /// The value, read from a key of a Secret in the instance's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,

    /// Take over a constant of this name that this instance did not create (otherwise a
    /// `ConstantConflict`). Once adopted it is owned: removing it from the list deletes it.
    #[serde(default)]
    pub adopt_existing: bool,
}

impl ConstantSpec {
    /// Where the value comes from; `None` when zero or both are set (refused by the CRD, but
    /// files read by `sync -f` did not pass the API server).
    pub fn source(&self) -> Option<ValueSource<'_>> {
        value_source(&self.value, &self.value_from)
    }
}

/// One option of a data source: a value (inline or from a Secret) and whether ToolJet stores
/// it encrypted.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)")
    .message("a data-source option must set exactly one of value or valueFrom.secretKeyRef"))]
pub struct DataSourceOptionSpec {
    /// The value, written in the spec. Where ToolJet holds a number or a boolean for this key,
    /// a value that reads as one is sent as one (`"5432"` → 5432, `"false"` → false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub value: Option<String>,

    /// The value, read from a key of a Secret in the instance's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,

    /// Store it encrypted (ToolJet keeps only a credential id; the value is never listed or
    /// exported). Set it for every key the plugin treats as secret, e.g. postgresql `password`:
    /// ToolJet lets the client decide, and stores a secret sent unencrypted in plain text.
    #[serde(default)]
    pub encrypted: bool,
}

impl DataSourceOptionSpec {
    /// Where the value comes from; `None` when zero or both are set.
    pub fn source(&self) -> Option<ValueSource<'_>> {
        value_source(&self.value, &self.value_from)
    }
}

/// The options of one workspace data source for this instance's environment.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataSourceConfig {
    /// The data source's name in ToolJet, as the apps' queries use it.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("size(self.trim()) > 0")
        .message("a data source name must not be blank"))]
    pub name: String,

    /// The plugin kind (e.g. `postgresql`, `restapi`). When set, the data source is created if
    /// the workspace lacks it, and an existing one of another kind is an error; when unset,
    /// the operator waits for an import to create it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]+$')")
        .message("a data source kind is a plugin name such as postgresql or restapi: letters, digits, '.', '_' and '-'"))]
    pub kind: Option<String>,

    /// Options to set, by key; keys not listed here keep what ToolJet holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z0-9_.-]+$') && size(k) <= 100)")
        .message("data-source option keys are plugin option names such as host or password: letters, digits, '.', '_' and '-', at most 100 characters"))]
    pub options: BTreeMap<String, DataSourceOptionSpec>,
}

/// A constant this instance owns (created, or adopted): never its value.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OwnedConstant {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ConstantKind,
    /// A keyed hash of the last value written (never the value): masked Secret values cannot
    /// be read back, so a change of source is found by comparing hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub written_hash: Option<String>,
}

/// The outcome of ToolJet's connection test for a configured data source.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnectionState {
    Ok,
    Failed,
    #[default]
    Untested,
}

/// A data source this instance configures.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfiguredDataSource {
    pub name: String,
    /// ToolJet's id of the workspace data source (absent until it exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub connection: ConnectionState,
    /// ToolJet's message when the test failed (secret values removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
    /// A keyed hash of the options last written and of the constants they were written after;
    /// a change means the options must be written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub written_hash: Option<String>,
}

/// The CEL rule refusing two entries with one name in a list (constants or data sources).
pub(super) const UNIQUE_NAMES: &str = "self.all(a, self.exists_one(b, b.name == a.name))";
