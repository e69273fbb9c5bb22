//! Applies a ToolJetInstance's configuration (issue 15): its workspace constants and the options
//! of the data sources it configures, for its environment. No Kubernetes: the controller (after
//! login) and `sync -f` / `plan -f` both call [`configure`] with the spec, the Secrets of the
//! instance's namespace and the record the last run left.
//!
//! The order keeps bad input from half-writing anything: resolve every value, check every
//! entry, read the server (environments, constants, data sources, the options of each one),
//! plan every write ([`super::config_plan`]), and only then write: constants (delete, create,
//! update), then each data source's options, each followed by ToolJet's connection test. The
//! record (names and keyed hashes, never values) is what status keeps.

use serde::{Deserialize, Serialize};

use super::config_plan::{
    ConfigError, ConstantPlan, DesiredConstant, DesiredDataSource, Located, OptionsPlan,
    SecretLookup, ValueHasher, check_data_sources, locate_data_source, plan_constants,
    plan_options, resolve,
};
use super::connect::Secrets;
use super::engine::Mode;
use super::error::SyncError;
use super::outcome::Action;
use crate::api::{
    AuthMethod, ConfiguredDataSource, ConnectionState, OwnedConstant, Reason, SecretKeyRef,
    ToolJetInstanceSpec, Verdict,
};
use crate::tooljet::{ConnectionTest, OptionMap, ToolJetClient, ToolJetError};

/// What status (or the state file) keeps of an instance's configuration: never a value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRecord {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constants: Vec<OwnedConstant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_sources: Vec<ConfiguredDataSource>,
}

/// What one configuration run gives.
#[derive(Clone, Debug)]
pub struct ConfigOutcome {
    /// The record to keep (after a failure: what is known to be on the server).
    pub record: ConfigRecord,
    /// Writes made (apply) or that would be made (plan), in order; never a value.
    pub actions: Vec<Action>,
    /// `Configured`, or why the configuration is not (fully) applied.
    pub verdict: Verdict,
    /// Things the user should know that are not failures (secrets emptied on 3.x, data sources
    /// waiting for an import).
    pub notes: Vec<String>,
}

impl ConfigOutcome {
    /// The configured data sources whose connection test failed, with ToolJet's message.
    pub fn failed_connections(&self) -> Vec<(&str, &str)> {
        failed_connections(&self.record)
    }
}

/// The configured data sources whose last connection test failed, with ToolJet's message.
pub fn failed_connections(record: &ConfigRecord) -> Vec<(&str, &str)> {
    record
        .data_sources
        .iter()
        .filter(|d| d.connection == ConnectionState::Failed)
        .map(|d| (d.name.as_str(), d.message.as_deref().unwrap_or("")))
        .collect()
}

/// Whether there is anything to configure: the spec lists constants or data sources, or the
/// record still owns constants to prune.
pub fn has_configuration(spec: &ToolJetInstanceSpec, record: &ConfigRecord) -> bool {
    !(spec.constants.is_empty() && spec.data_sources.is_empty() && record.constants.is_empty())
}

/// Names of the Secrets the configuration reads (in the instance's namespace).
pub fn config_secret_names(spec: &ToolJetInstanceSpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .constants
        .iter()
        .filter_map(|c| c.value_from.as_ref())
        .chain(
            spec.data_sources
                .iter()
                .flat_map(|d| d.options.values())
                .filter_map(|o| o.value_from.as_ref()),
        )
        .map(|f| f.secret_key_ref.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Looks a Secret key up among `secrets`: the value as it is stored (no trimming: a value is
/// written to ToolJet exactly as the Secret holds it).
pub fn secret_lookup(secrets: &Secrets) -> impl Fn(&SecretKeyRef) -> SecretLookup + '_ {
    move |r: &SecretKeyRef| match secrets.secret(&r.name) {
        Err(_) => SecretLookup::SecretMissing,
        Ok(data) => match data.get(&r.key) {
            None => SecretLookup::KeyMissing,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => SecretLookup::Found(text.to_string()),
                Err(_) => SecretLookup::NotText,
            },
        },
    }
}

/// The key of the hashes in the record: the instance's identity (its uid; `namespace/name`
/// outside a cluster) followed by its ToolJet credential, which readers of status lack.
pub fn hasher_for(identity: &str, spec: &ToolJetInstanceSpec, secrets: &Secrets) -> ValueHasher {
    let mut key = identity.as_bytes().to_vec();
    key.push(0);
    let mut add = |name: &str, k: Option<&str>| {
        if let Ok(data) = secrets.secret(name) {
            for (key_name, value) in data {
                if k.is_none_or(|k| k == key_name) {
                    key.extend_from_slice(key_name.as_bytes());
                    key.push(0);
                    key.extend_from_slice(value);
                    key.push(0);
                }
            }
        }
    };
    match spec.auth.method() {
        Some(AuthMethod::AdminApiKey(r)) | Some(AuthMethod::ExternalToken(r)) => {
            add(&r.name, Some(&r.key))
        }
        Some(AuthMethod::Password(r)) => add(&r.name, None),
        None => {}
    }
    ValueHasher::new(&key)
}

fn refused(errors: &[ConfigError], previous: &ConfigRecord) -> ConfigOutcome {
    // The first error's reason decides the consequence; the message lists them all.
    let reason = errors
        .first()
        .map_or(Reason::InvalidSpec, ConfigError::reason);
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ConfigOutcome {
        record: previous.clone(),
        actions: Vec::new(),
        verdict: Verdict::new(
            reason,
            format!(
                "the constants and data sources were not applied (nothing written): {}",
                listed.join("; ")
            ),
        ),
        notes: Vec::new(),
    }
}

fn tooljet_failure(e: ToolJetError, doing: &str) -> Verdict {
    let e = SyncError::ToolJet(e);
    Verdict::new(e.reason(), format!("{doing}: {e}"))
}

/// One data source the run writes or tests, decided before any write.
struct SourceStep {
    desired: DesiredDataSource,
    located: Located,
    current: OptionMap,
    plan: Option<OptionsPlan>,
}

/// Applies (or, with [`Mode::Plan`], plans) the spec's constants and data-source options on the
/// server `tj`, for the instance's environment. `previous` is what the last run recorded.
pub async fn configure(
    tj: &ToolJetClient,
    spec: &ToolJetInstanceSpec,
    previous: &ConfigRecord,
    secrets: &Secrets,
    hasher: &ValueHasher,
    mode: Mode,
) -> ConfigOutcome {
    if !has_configuration(spec, previous) {
        return ConfigOutcome {
            record: ConfigRecord::default(),
            actions: Vec::new(),
            verdict: Verdict::new(
                Reason::Configured,
                "no constants or data sources to configure",
            ),
            notes: Vec::new(),
        };
    }
    let lookup = secret_lookup(secrets);
    let (desired_constants, desired_sources) =
        match resolve(&spec.constants, &spec.data_sources, &lookup) {
            Ok(d) => d,
            Err(errors) => return refused(&errors, previous),
        };
    if let Err(errors) = check_data_sources(&desired_sources) {
        return refused(&errors, previous);
    }
    match read_and_plan(
        tj,
        spec,
        previous,
        &desired_constants,
        desired_sources,
        hasher,
    )
    .await
    {
        Err(Failure::Refused(errors)) => refused(&errors, previous),
        Err(Failure::ToolJet(verdict)) => ConfigOutcome {
            record: previous.clone(),
            actions: Vec::new(),
            verdict,
            notes: Vec::new(),
        },
        Ok(planned) => match mode {
            Mode::Plan => planned.as_plan(previous),
            Mode::Apply => planned.apply(tj, previous).await,
        },
    }
}

enum Failure {
    Refused(Vec<ConfigError>),
    ToolJet(Verdict),
}

/// Everything read and decided, nothing written yet.
struct Planned {
    environment_id: String,
    constants: ConstantPlan,
    sources: Vec<SourceStep>,
}

async fn read_and_plan(
    tj: &ToolJetClient,
    spec: &ToolJetInstanceSpec,
    previous: &ConfigRecord,
    desired_constants: &[DesiredConstant],
    desired_sources: Vec<DesiredDataSource>,
    hasher: &ValueHasher,
) -> Result<Planned, Failure> {
    let fail = |doing: &str| {
        let doing = doing.to_string();
        move |e| Failure::ToolJet(tooljet_failure(e, &doing))
    };
    let family = tj
        .family()
        .await
        .map_err(fail("reading ToolJet's version"))?;
    let version = tj
        .known_server_version()
        .map_or_else(|| "2.x".to_string(), |v| v.to_string());
    let environments = tj
        .environments()
        .await
        .map_err(fail("listing ToolJet's environments"))?;
    let wanted = spec.environment.as_str();
    // Environments are addressed by name; CE 2.x has only `production` and CE writes every
    // environment anyway, so the default one stands in for a missing name.
    let environment = environments
        .iter()
        .find(|e| e.name == wanted)
        .or_else(|| environments.iter().find(|e| e.is_default))
        .or_else(|| environments.first())
        .ok_or_else(|| {
            Failure::ToolJet(Verdict::new(
                Reason::ToolJetError,
                "ToolJet lists no environment; the constants and data sources cannot be written",
            ))
        })?;
    let server_constants = tj
        .constants()
        .await
        .map_err(fail("listing workspace constants"))?;
    let constants = plan_constants(
        family,
        &version,
        &environment.name,
        desired_constants,
        &previous.constants,
        &server_constants,
        hasher,
    )
    .map_err(Failure::Refused)?;
    let server_sources = if desired_sources.is_empty() {
        Vec::new()
    } else {
        tj.data_sources()
            .await
            .map_err(fail("listing workspace data sources"))?
    };
    let mut errors = Vec::new();
    let mut located = Vec::new();
    for d in desired_sources {
        match locate_data_source(&d, &server_sources) {
            Ok(l) => located.push((d, l)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Failure::Refused(errors));
    }
    let mut sources = Vec::new();
    for (desired, located) in located {
        let current = match &located {
            Located::Existing { id, .. } => tj
                .data_source_options(id, &environment.id)
                .await
                .map_err(fail(&format!(
                    "reading the options of data source `{}`",
                    desired.name
                )))?,
            Located::Create { .. } | Located::WaitForImport => OptionMap::new(),
        };
        let plan = match &located {
            Located::WaitForImport => None,
            _ => Some(plan_options(
                family,
                &desired,
                &current,
                previous
                    .data_sources
                    .iter()
                    .find(|r| r.name == desired.name),
                &constants.record,
                hasher,
            )),
        };
        sources.push(SourceStep {
            desired,
            located,
            current,
            plan,
        });
    }
    Ok(Planned {
        environment_id: environment.id.clone(),
        constants,
        sources,
    })
}

fn option_keys(d: &DesiredDataSource) -> Vec<String> {
    d.options.iter().map(|o| o.key.clone()).collect()
}

impl Planned {
    fn constant_actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (_, name) in &self.constants.delete {
            actions.push(Action::DeleteConstant { name: name.clone() });
        }
        for c in &self.constants.create {
            actions.push(Action::CreateConstant {
                name: c.name.clone(),
                kind: format!("{:?}", c.kind),
            });
        }
        for (_, c) in &self.constants.update {
            actions.push(Action::UpdateConstant {
                name: c.name.clone(),
            });
        }
        actions
    }

    fn source_action(step: &SourceStep) -> Option<Action> {
        step.plan.as_ref()?.write.as_ref()?;
        Some(match &step.located {
            Located::Create { kind } => Action::CreateConfiguredDataSource {
                name: step.desired.name.clone(),
                kind: kind.clone(),
                keys: option_keys(&step.desired),
            },
            _ => Action::WriteOptions {
                name: step.desired.name.clone(),
                keys: option_keys(&step.desired),
            },
        })
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for s in &self.sources {
            if s.located == Located::WaitForImport {
                notes.push(format!(
                    "data source `{}` does not exist yet and has no kind in the spec: it is configured once an import creates it",
                    s.desired.name
                ));
            }
            if let Some(merged) = s.plan.as_ref().and_then(|p| p.write.as_ref())
                && !merged.secrets_emptied.is_empty()
            {
                notes.push(format!(
                    "data source `{}`: ToolJet 3.x empties the secret option(s) {} on every write of the options; list them in the spec to keep them set",
                    s.desired.name,
                    merged.secrets_emptied.join(", ")
                ));
            }
        }
        notes
    }

    fn as_plan(&self, previous: &ConfigRecord) -> ConfigOutcome {
        let mut actions = self.constant_actions();
        actions.extend(self.sources.iter().filter_map(Self::source_action));
        let message = if actions.is_empty() {
            "the constants and data sources are as the spec says; nothing to write".to_string()
        } else {
            format!("{} write(s) to apply", actions.len())
        };
        ConfigOutcome {
            record: previous.clone(),
            actions,
            verdict: Verdict::new(Reason::Configured, message),
            notes: self.notes(),
        }
    }

    async fn apply(self, tj: &ToolJetClient, previous: &ConfigRecord) -> ConfigOutcome {
        let notes = self.notes();
        let mut actions = Vec::new();
        let mut record = ConfigRecord {
            constants: previous.constants.clone(),
            data_sources: previous.data_sources.clone(),
        };
        let failed = |record: ConfigRecord, actions: Vec<Action>, verdict: Verdict| ConfigOutcome {
            record,
            actions,
            verdict,
            notes: notes.clone(),
        };
        // Constants: delete, create, update; the record only once all succeeded.
        let env = self.environment_id.as_str();
        let constant_actions = self.constant_actions();
        let mut step = constant_actions.into_iter();
        let mut constant_failure = None;
        for (id, name) in &self.constants.delete {
            let action = step.next();
            match tj.delete_constant(id, None).await {
                Ok(()) | Err(ToolJetError::NotFound { .. }) => {
                    record.constants.retain(|c| &c.name != name);
                    actions.extend(action);
                }
                Err(e) => {
                    constant_failure =
                        Some(tooljet_failure(e, &format!("deleting constant `{name}`")));
                    break;
                }
            }
        }
        if constant_failure.is_none() {
            for c in &self.constants.create {
                let action = step.next();
                if let Err(e) = tj
                    .create_constant(&c.name, &c.value, c.kind, &[env.to_string()])
                    .await
                {
                    constant_failure = Some(tooljet_failure(
                        e,
                        &format!("creating constant `{}`", c.name),
                    ));
                    break;
                }
                actions.extend(action);
            }
        }
        if constant_failure.is_none() {
            for (id, c) in &self.constants.update {
                let action = step.next();
                if let Err(e) = tj.update_constant(id, &c.value, env).await {
                    constant_failure = Some(tooljet_failure(
                        e,
                        &format!("updating constant `{}`", c.name),
                    ));
                    break;
                }
                actions.extend(action);
            }
        }
        if let Some(verdict) = constant_failure {
            record.constants = self.constants.record_after_failure(&record.constants);
            return failed(record, actions, verdict);
        }
        record.constants = self.constants.record.clone();

        // Data sources, one at a time: each entry's record changes only once its write is done.
        let mut configured = Vec::new();
        for (index, s) in self.sources.iter().enumerate() {
            let before = previous
                .data_sources
                .iter()
                .find(|r| r.name == s.desired.name)
                .cloned();
            match self
                .apply_source(tj, s, before.as_ref(), &mut actions)
                .await
            {
                Ok(entry) => configured.push(entry),
                Err(verdict) => {
                    // Keep what is known of this and the remaining entries.
                    configured.extend(before);
                    for rest in &self.sources[index + 1..] {
                        configured.extend(
                            previous
                                .data_sources
                                .iter()
                                .find(|r| r.name == rest.desired.name)
                                .cloned(),
                        );
                    }
                    record.data_sources = configured;
                    return failed(record, actions, verdict);
                }
            }
        }
        record.data_sources = configured;
        let wrote = actions.len();
        let message = format!(
            "{} constant(s) and {} data source(s) as the spec says{}",
            self.constants.record.len(),
            self.sources.len(),
            if wrote == 0 {
                "; nothing written".to_string()
            } else {
                format!("; {wrote} write(s)")
            }
        );
        ConfigOutcome {
            record,
            actions,
            verdict: Verdict::new(Reason::Configured, message),
            notes,
        }
    }

    /// Writes one data source's options (when needed) and tests its connection (after a write,
    /// or when the last test did not pass).
    async fn apply_source(
        &self,
        tj: &ToolJetClient,
        s: &SourceStep,
        before: Option<&ConfiguredDataSource>,
        actions: &mut Vec<Action>,
    ) -> Result<ConfiguredDataSource, Verdict> {
        let name = &s.desired.name;
        let env = self.environment_id.as_str();
        let Some(plan) = &s.plan else {
            return Ok(ConfiguredDataSource {
                name: name.clone(),
                id: None,
                connection: ConnectionState::Untested,
                message: Some(
                    "waiting for an import to create it (no kind in the spec)".to_string(),
                ),
                written_hash: None,
            });
        };
        let action = Self::source_action(s);
        let (id, kind) = match (&s.located, &plan.write) {
            (Located::Existing { id, kind }, Some(merged)) => {
                tj.put_data_source_options(id, env, merged)
                    .await
                    .map_err(|e| {
                        tooljet_failure(e, &format!("writing the options of data source `{name}`"))
                    })?;
                (id.clone(), kind.clone())
            }
            (Located::Existing { id, kind }, None) => (id.clone(), kind.clone()),
            (Located::Create { kind }, Some(merged)) => {
                let id = tj
                    .create_data_source_with_options(name, kind, merged, env)
                    .await
                    .map_err(|e| tooljet_failure(e, &format!("creating data source `{name}`")))?;
                (id, kind.clone())
            }
            // A data source to create always has something to write (its hash is unrecorded).
            (Located::Create { .. }, None) | (Located::WaitForImport, _) => {
                return Err(Verdict::new(
                    Reason::ToolJetError,
                    format!("internal: data source `{name}` has nothing to create"),
                ));
            }
        };
        let wrote = plan.write.is_some();
        actions.extend(action);
        let secrets: Vec<&str> = s
            .desired
            .options
            .iter()
            .filter(|o| o.encrypted)
            .map(|o| o.value.as_str())
            .collect();
        let retest = wrote
            || before
                .is_none_or(|b| b.connection != ConnectionState::Ok || b.id.as_ref() != Some(&id));
        let (connection, message) = if retest {
            let options = if wrote {
                tj.data_source_options(&id, env).await.map_err(|e| {
                    tooljet_failure(e, &format!("reading the options of data source `{name}`"))
                })?
            } else {
                s.current.clone()
            };
            let tested = tj
                .test_connection(&id, &kind, env, &options, &secrets)
                .await
                .map_err(|e| {
                    tooljet_failure(
                        e,
                        &format!("testing the connection of data source `{name}`"),
                    )
                })?
                .redacted(&secrets);
            match tested {
                ConnectionTest::Ok => (ConnectionState::Ok, None),
                ConnectionTest::Failed { message } => (ConnectionState::Failed, Some(message)),
            }
        } else {
            let b = before.cloned();
            (
                b.as_ref()
                    .map_or(ConnectionState::Untested, |b| b.connection),
                b.and_then(|b| b.message),
            )
        };
        Ok(ConfiguredDataSource {
            name: name.clone(),
            id: Some(id),
            connection,
            message,
            written_hash: Some(plan.hash.clone()),
        })
    }
}

/// Marks each data source an app uses with whether the instance configures it (its name is in
/// `spec.dataSources`).
pub fn mark_configured(used: &mut [crate::api::DataSourceStatus], spec: &ToolJetInstanceSpec) {
    for d in used {
        d.configured = Some(spec.data_sources.iter().any(|c| c.name == d.name));
    }
}
