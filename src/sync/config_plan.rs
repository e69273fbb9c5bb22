//! What to write for an instance's constants and data-source options (issue 15): pure
//! decisions, no I/O. The engine resolves the spec's values ([`resolve`]), reads the server
//! (constants; data sources; the options of each one it configures), asks this module what to
//! do, writes, and saves the new record in status only after every write succeeded.
//!
//! Every bad input is refused for the whole instance before anything is written, with an
//! error that names the entry and never a value ([`ConfigError`]).
//!
//! **Hashes.** Masked Secret values cannot be read back, so status keeps, per owned constant
//! and per configured data source, a keyed hash of what was written: `hmac-sha256:<hex>` of
//! the entry's name, type and value, keyed with [`ValueHasher::new`]'s key. Keyed (not a bare
//! sha256), so that someone who can read status but not the Secrets cannot test guesses of a
//! weak value offline without also holding the key, and equal values of two instances do not
//! show as equal hashes. Recommended key: the instance's `metadata.uid` followed by its ToolJet
//! credential (the admin API key or password): readers of status have neither's secret part;
//! rotating the credential changes every hash, which costs one rewrite, nothing more.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::api::{
    Reason,
    ConfiguredDataSource, ConstantKind, ConstantSpec, DataSourceConfig, MAX_CONSTANT_NAME,
    MAX_CONSTANT_NAME_V2, MAX_CONSTANT_VALUE, MAX_OPTION_VALUE, OwnedConstant, SecretKeyRef,
    ValueSource,
};
use crate::tooljet::{
    Constant, ConstantType, DataSource, Family, MergedOptions, OptionEntry, OptionMap,
    merge_options,
};

/// Why an instance's configuration cannot be applied. Names entries, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "constant `{name}`: {problem}; ToolJet names start with a letter or underscore and contain only letters, digits and underscores"
    )]
    InvalidConstantName { name: String, problem: String },
    #[error("constant `{name}`: the value has {chars} characters; ToolJet accepts 1 to 10,000")]
    ConstantValueLength { name: String, chars: usize },
    #[error(
        "constant `{name}` is of type Secret, which ToolJet {version} does not have: it would store the value in plain text, readable by every user of the workspace and without login through any public app; nothing was written: put the credential into an encrypted data-source option (dataSources[].options.<key> with encrypted: true) instead, or upgrade to ToolJet 3.x"
    )]
    SecretConstantOnV2 { name: String, version: String },
    #[error("constant `{name}` is listed twice; each constant name may appear once")]
    DuplicateConstant { name: String },
    #[error(
        "constant `{name}` exists in the workspace and was not created by this instance; nothing was written: set adoptExisting: true on the entry to take it over, or choose another name"
    )]
    ConstantConflict { name: String },
    #[error(
        "constant `{name}` exists as {found} and the spec asks for {wanted}; nothing was written: ToolJet cannot change a constant's type: delete it in ToolJet (or rename the entry) and the operator creates it anew"
    )]
    ConstantTypeMismatch {
        name: String,
        found: ConstantKind,
        wanted: ConstantKind,
    },
    #[error("data source `{name}` is listed twice in dataSources; each may appear once")]
    DuplicateDataSource { name: String },
    #[error("data source `{name}`, option `{key}`: {problem}")]
    InvalidOption {
        name: String,
        key: String,
        problem: String,
    },
    #[error(
        "data source `{name}` exists {count} times in the workspace (ToolJet allows duplicate names); nothing was written: delete or rename the extra ones in ToolJet so that the name is unique"
    )]
    DataSourceAmbiguous { name: String, count: usize },
    #[error(
        "data source `{name}` exists in the workspace with kind `{found}`, not `{wanted}`; nothing was written: correct kind in the spec, or rename the data source"
    )]
    DataSourceKindMismatch {
        name: String,
        wanted: String,
        found: String,
    },
    #[error(
        "{entry}: Secret `{secret}` does not exist in the instance's namespace; create it, or correct valueFrom.secretKeyRef.name"
    )]
    SecretNotFound { entry: String, secret: String },
    #[error(
        "{entry}: Secret `{secret}` has no key `{key}`; add the key, or correct valueFrom.secretKeyRef.key"
    )]
    SecretKeyNotFound {
        entry: String,
        secret: String,
        key: String,
    },
    #[error("{entry}: key `{key}` of Secret `{secret}` is not UTF-8 text; store the value as text")]
    SecretNotText {
        entry: String,
        secret: String,
        key: String,
    },
    #[error("{entry}: set exactly one of value or valueFrom.secretKeyRef")]
    NoSingleValue { entry: String },
}

impl ConfigError {
    /// The condition reason for this error (CamelCase).
    pub fn reason(&self) -> Reason {
        match self {
            ConfigError::ConstantConflict { .. } => Reason::ConstantConflict,
            ConfigError::SecretConstantOnV2 { .. } => Reason::SecretConstantUnsupported,
            ConfigError::ConstantTypeMismatch { .. } => Reason::ConstantConflict,
            ConfigError::DataSourceAmbiguous { .. } => Reason::DataSourceAmbiguous,
            ConfigError::DataSourceKindMismatch { .. } => Reason::DataSourceKindMismatch,
            ConfigError::SecretNotFound { .. }
            | ConfigError::SecretKeyNotFound { .. }
            | ConfigError::SecretNotText { .. } => Reason::SecretNotFound,
            ConfigError::InvalidConstantName { .. }
            | ConfigError::ConstantValueLength { .. }
            | ConfigError::DuplicateConstant { .. }
            | ConfigError::DuplicateDataSource { .. }
            | ConfigError::InvalidOption { .. }
            | ConfigError::NoSingleValue { .. } => Reason::InvalidSpec,
        }
    }
}

// ---- resolving the spec -----------------------------------------------------------------

/// What looking up a Secret key gave.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretLookup {
    Found(String),
    SecretMissing,
    KeyMissing,
    NotText,
}

impl std::fmt::Debug for SecretLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretLookup::Found(_) => "Found(<redacted>)",
            SecretLookup::SecretMissing => "SecretMissing",
            SecretLookup::KeyMissing => "KeyMissing",
            SecretLookup::NotText => "NotText",
        })
    }
}

/// A constant the spec asks for, its value resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct DesiredConstant {
    pub name: String,
    pub kind: ConstantKind,
    pub value: String,
    pub adopt_existing: bool,
}

impl std::fmt::Debug for DesiredConstant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredConstant")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("value", &"<redacted>")
            .field("adopt_existing", &self.adopt_existing)
            .finish()
    }
}

/// A data source the spec configures, its option values resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredDataSource {
    pub name: String,
    pub kind: Option<String>,
    /// Sorted by key.
    pub options: Vec<OptionEntry>,
}

/// The spec's constants and data sources with every value read (inline, or through `lookup`
/// from the instance's namespace). All problems are reported together.
pub fn resolve(
    constants: &[ConstantSpec],
    data_sources: &[DataSourceConfig],
    lookup: &dyn Fn(&SecretKeyRef) -> SecretLookup,
) -> Result<(Vec<DesiredConstant>, Vec<DesiredDataSource>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut read = |entry: String, source: Option<ValueSource<'_>>| -> Option<String> {
        match source {
            None => {
                errors.push(ConfigError::NoSingleValue { entry });
                None
            }
            Some(ValueSource::Inline(v)) => Some(v.to_string()),
            Some(ValueSource::Secret(r)) => {
                let failed = match lookup(r) {
                    SecretLookup::Found(v) => return Some(v),
                    SecretLookup::SecretMissing => ConfigError::SecretNotFound {
                        entry,
                        secret: r.name.clone(),
                    },
                    SecretLookup::KeyMissing => ConfigError::SecretKeyNotFound {
                        entry,
                        secret: r.name.clone(),
                        key: r.key.clone(),
                    },
                    SecretLookup::NotText => ConfigError::SecretNotText {
                        entry,
                        secret: r.name.clone(),
                        key: r.key.clone(),
                    },
                };
                errors.push(failed);
                None
            }
        }
    };
    let mut desired_constants = Vec::new();
    for c in constants {
        if let Some(value) = read(format!("constant `{}`", c.name), c.source()) {
            desired_constants.push(DesiredConstant {
                name: c.name.clone(),
                kind: c.kind,
                value,
                adopt_existing: c.adopt_existing,
            });
        }
    }
    let mut desired_sources = Vec::new();
    for d in data_sources {
        let mut options = Vec::new();
        for (key, option) in &d.options {
            let entry = format!("data source `{}`, option `{key}`", d.name);
            if let Some(value) = read(entry, option.source()) {
                options.push(OptionEntry {
                    key: key.clone(),
                    value,
                    encrypted: option.encrypted,
                });
            }
        }
        desired_sources.push(DesiredDataSource {
            name: d.name.clone(),
            kind: d.kind.clone(),
            options,
        });
    }
    if errors.is_empty() {
        Ok((desired_constants, desired_sources))
    } else {
        Err(errors)
    }
}

// ---- hashes -----------------------------------------------------------------------------

/// Keyed hashes of written values (see the module documentation).
#[derive(Clone)]
pub struct ValueHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for ValueHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValueHasher(<key redacted>)")
    }
}

const HASH_PREFIX: &str = "hmac-sha256:";

impl ValueHasher {
    /// A hasher keyed with `key` (recommended: the instance's uid, then its ToolJet credential).
    pub fn new(key: &[u8]) -> Self {
        ValueHasher { key: key.to_vec() }
    }

    fn hash(&self, parts: &[&[u8]]) -> String {
        // HMAC takes a key of any length; new_from_slice cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        for part in parts {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        format!("{HASH_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The hash of a constant as written.
    pub fn constant(&self, name: &str, kind: ConstantKind, value: &str) -> String {
        self.hash(&[
            b"constant",
            name.as_bytes(),
            kind.as_str().as_bytes(),
            value.as_bytes(),
        ])
    }

    /// The hash of a data source's options as written, after the constants of `record`: a
    /// constant change changes it, so the options are written again and pooled connections
    /// reconnect with the new value (config-api.md §3.6).
    pub fn data_source(&self, source: &DesiredDataSource, record: &[OwnedConstant]) -> String {
        let mut parts: Vec<Vec<u8>> =
            vec![b"data-source".to_vec(), source.name.as_bytes().to_vec()];
        parts.push(source.kind.clone().unwrap_or_default().into_bytes());
        let mut options: Vec<&OptionEntry> = source.options.iter().collect();
        options.sort_by(|a, b| a.key.cmp(&b.key));
        for o in options {
            parts.push(o.key.as_bytes().to_vec());
            parts.push(vec![u8::from(o.encrypted)]);
            parts.push(o.value.as_bytes().to_vec());
        }
        let mut constants: Vec<&OwnedConstant> = record.iter().collect();
        constants.sort_by(|a, b| a.name.cmp(&b.name));
        for c in constants {
            parts.push(c.name.as_bytes().to_vec());
            parts.push(c.written_hash.clone().unwrap_or_default().into_bytes());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.hash(&refs)
    }
}

// ---- constants --------------------------------------------------------------------------

/// One constant write.
#[derive(Clone, PartialEq, Eq)]
pub struct ConstantWrite {
    pub name: String,
    pub kind: ConstantType,
    pub value: String,
}

impl std::fmt::Debug for ConstantWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConstantWrite({} {:?}, <redacted>)",
            self.name, self.kind
        )
    }
}

/// What to do about the constants, in this order: delete, create, update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConstantPlan {
    /// Create these (missing on the server).
    pub create: Vec<ConstantWrite>,
    /// Update these: `(server id, write)`.
    pub update: Vec<(String, ConstantWrite)>,
    /// Delete these owned constants removed from the spec: `(server id, name)`.
    pub delete: Vec<(String, String)>,
    /// Names taken over with `adoptExisting` (owned from now on).
    pub adopted: Vec<String>,
    /// Names already as wanted.
    pub unchanged: Vec<String>,
    /// The status record to save once every write succeeded.
    pub record: Vec<OwnedConstant>,
}

impl ConstantPlan {
    /// Whether any constant is written (then the configured data sources are written again).
    pub fn writes(&self) -> bool {
        !(self.create.is_empty() && self.update.is_empty() && self.delete.is_empty())
    }

    /// The record to save when some writes failed: owned names are never forgotten while the
    /// server may still hold them, so a retry can still prune them.
    pub fn record_after_failure(&self, previous: &[OwnedConstant]) -> Vec<OwnedConstant> {
        let mut out: Vec<OwnedConstant> = previous.to_vec();
        for c in &self.record {
            if !out.iter().any(|o| o.name == c.name) {
                // Not written yet: no hash, so the next run writes it.
                out.push(OwnedConstant {
                    written_hash: None,
                    ..c.clone()
                });
            }
        }
        out
    }
}

fn api_kind(kind: ConstantType) -> ConstantKind {
    match kind {
        ConstantType::Global => ConstantKind::Global,
        ConstantType::Secret => ConstantKind::Secret,
    }
}

fn tooljet_kind(kind: ConstantKind) -> ConstantType {
    match kind {
        ConstantKind::Global => ConstantType::Global,
        ConstantKind::Secret => ConstantType::Secret,
    }
}

/// Checks one constant against what the server family accepts.
fn check_constant(family: Family, version: &str, c: &DesiredConstant) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let max = match family {
        Family::V2 => MAX_CONSTANT_NAME_V2,
        Family::V3 => MAX_CONSTANT_NAME,
    };
    let mut chars = c.name.chars();
    let pattern_ok = chars
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !pattern_ok {
        errors.push(ConfigError::InvalidConstantName {
            name: c.name.clone(),
            problem: "the name has a character ToolJet refuses (or is empty)".into(),
        });
    } else if c.name.len() > max {
        errors.push(ConfigError::InvalidConstantName {
            name: c.name.clone(),
            problem: format!(
                "the name has {} characters; ToolJet {version} accepts at most {max}",
                c.name.len()
            ),
        });
    }
    let chars = c.value.chars().count();
    if chars == 0 || chars > MAX_CONSTANT_VALUE {
        errors.push(ConfigError::ConstantValueLength {
            name: c.name.clone(),
            chars,
        });
    }
    if family == Family::V2 && c.kind == ConstantKind::Secret {
        errors.push(ConfigError::SecretConstantOnV2 {
            name: c.name.clone(),
            version: version.to_string(),
        });
    }
    errors
}

/// Decides the constant writes.
///
/// - `desired`: the spec's constants, resolved; `owned`: the status record; `server`: what
///   `GET /api/organization-constants` lists; `environment`: the environment's name (values are
///   compared there); `version`: the server's version, for messages.
/// - A name on the server that this instance does not own is a conflict unless the entry says
///   `adoptExisting`. Only owned constants are ever pruned.
/// - A readable value (Global) is compared with the server's, so an edit in ToolJet is
///   restored; a masked one (Secret) by the recorded hash.
pub fn plan_constants(
    family: Family,
    version: &str,
    environment: &str,
    desired: &[DesiredConstant],
    owned: &[OwnedConstant],
    server: &[Constant],
    hasher: &ValueHasher,
) -> Result<ConstantPlan, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for c in desired {
        if !seen.insert(c.name.as_str()) {
            errors.push(ConfigError::DuplicateConstant {
                name: c.name.clone(),
            });
        }
        errors.extend(check_constant(family, version, c));
    }
    let mut plan = ConstantPlan::default();
    for c in desired {
        let hash = hasher.constant(&c.name, c.kind, &c.value);
        let record = owned.iter().find(|o| o.name == c.name);
        let write = ConstantWrite {
            name: c.name.clone(),
            kind: tooljet_kind(c.kind),
            value: c.value.clone(),
        };
        match server.iter().find(|s| s.name == c.name) {
            None => plan.create.push(write),
            Some(existing) => {
                if record.is_none() && !c.adopt_existing {
                    errors.push(ConfigError::ConstantConflict {
                        name: c.name.clone(),
                    });
                    continue;
                }
                let found = api_kind(existing.kind);
                // 2.x lists no type: everything there reads as Global.
                if family == Family::V3 && found != c.kind {
                    errors.push(ConfigError::ConstantTypeMismatch {
                        name: c.name.clone(),
                        found,
                        wanted: c.kind,
                    });
                    continue;
                }
                if record.is_none() {
                    plan.adopted.push(c.name.clone());
                }
                let same = match existing.readable_value(environment) {
                    Some(v) => v == c.value,
                    None => record.and_then(|r| r.written_hash.as_deref()) == Some(hash.as_str()),
                };
                if same {
                    plan.unchanged.push(c.name.clone());
                } else {
                    plan.update.push((existing.id.clone(), write));
                }
            }
        }
        plan.record.push(OwnedConstant {
            name: c.name.clone(),
            kind: c.kind,
            written_hash: Some(hash),
        });
    }
    for o in owned {
        if desired.iter().any(|c| c.name == o.name) {
            continue;
        }
        if let Some(existing) = server.iter().find(|s| s.name == o.name) {
            plan.delete.push((existing.id.clone(), o.name.clone()));
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

// ---- data sources -----------------------------------------------------------------------

/// Where a configured data source stands in the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// It exists: its id and kind.
    Existing { id: String, kind: String },
    /// Missing, with a kind in the spec: create it.
    Create { kind: String },
    /// Missing, without a kind: wait for an import to create it (reported, not an error).
    WaitForImport,
}

/// Checks the data-source entries (before any is located).
pub fn check_data_sources(desired: &[DesiredDataSource]) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for d in desired {
        if !seen.insert(d.name.as_str()) {
            errors.push(ConfigError::DuplicateDataSource {
                name: d.name.clone(),
            });
        }
        let mut keys = BTreeSet::new();
        for o in &d.options {
            if !keys.insert(o.key.as_str()) {
                errors.push(ConfigError::InvalidOption {
                    name: d.name.clone(),
                    key: o.key.clone(),
                    problem: "the key is set twice".into(),
                });
            }
            let chars = o.value.chars().count();
            if chars > MAX_OPTION_VALUE {
                errors.push(ConfigError::InvalidOption {
                    name: d.name.clone(),
                    key: o.key.clone(),
                    problem: format!(
                        "the value has {chars} characters; at most {MAX_OPTION_VALUE} are accepted"
                    ),
                });
            }
            if o.encrypted && o.value.is_empty() {
                errors.push(ConfigError::InvalidOption {
                    name: d.name.clone(),
                    key: o.key.clone(),
                    problem: "an encrypted option needs a value (an empty one would blank the stored secret)".into(),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Finds a configured data source among the workspace's (by name, case-sensitively).
pub fn locate_data_source(
    desired: &DesiredDataSource,
    server: &[DataSource],
) -> Result<Located, ConfigError> {
    let found: Vec<&DataSource> = server.iter().filter(|d| d.name == desired.name).collect();
    match (found.as_slice(), &desired.kind) {
        ([], Some(kind)) => Ok(Located::Create { kind: kind.clone() }),
        ([], None) => Ok(Located::WaitForImport),
        ([one], wanted) => match wanted {
            Some(kind) if *kind != one.kind => Err(ConfigError::DataSourceKindMismatch {
                name: desired.name.clone(),
                wanted: kind.clone(),
                found: one.kind.clone(),
            }),
            _ => Ok(Located::Existing {
                id: one.id.clone(),
                kind: one.kind.clone(),
            }),
        },
        (many, _) => Err(ConfigError::DataSourceAmbiguous {
            name: desired.name.clone(),
            count: many.len(),
        }),
    }
}

/// What to write for one located data source.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionsPlan {
    /// The whole set to send (`None`: already as wanted, nothing to write).
    pub write: Option<MergedOptions>,
    /// The hash to record once written (or kept when unchanged).
    pub hash: String,
}

/// Decides whether a data source's options must be written, and what.
///
/// `current` is the environment's stored set (empty for a data source to create); `recorded`
/// the data source's status entry; `constants` the constant record this run will save. The
/// options are written when the recorded hash differs (spec, Secret or any constant changed),
/// or when the server's set no longer holds what was written (a plain value edited in ToolJet,
/// a secret key removed).
pub fn plan_options(
    family: Family,
    desired: &DesiredDataSource,
    current: &OptionMap,
    recorded: Option<&ConfiguredDataSource>,
    constants: &[OwnedConstant],
    hasher: &ValueHasher,
) -> OptionsPlan {
    let hash = hasher.data_source(desired, constants);
    let merged = merge_options(family, current, &desired.options);
    let by_key: BTreeMap<&str, &crate::tooljet::DataSourceOption> =
        merged.options.iter().map(|o| (o.key.as_str(), o)).collect();
    let server_holds_ours = desired.options.iter().all(|o| {
        let Some(stored) = current.get(&o.key) else {
            return false;
        };
        let stored_secret =
            stored.get("encrypted").and_then(serde_json::Value::as_bool) == Some(true);
        if o.encrypted {
            stored_secret
        } else {
            !stored_secret
                && by_key
                    .get(o.key.as_str())
                    .is_some_and(|sent| stored.get("value") == Some(&sent.value))
        }
    });
    let unchanged = server_holds_ours
        && recorded.and_then(|r| r.written_hash.as_deref()) == Some(hash.as_str());
    OptionsPlan {
        write: (!unchanged).then_some(merged),
        hash,
    }
}

#[cfg(test)]
#[path = "config_plan_tests.rs"]
mod tests;
