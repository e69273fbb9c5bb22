//! Data-source options per environment and the connection test (`tooljet-real/config-api.md`
//! §3): read the environment's option set, merge ours into it, write the whole set back (a
//! `PUT` replaces it), then test the stored configuration.
//!
//! Routes: 2.x `GET /api/v2/data_sources?environmentId=` (camelCase; no single read),
//! `PUT /api/v2/data_sources/:id?environment_id=`, `POST /api/data_sources/test_connection`;
//! 3.x `GET /api/data-sources/:id/environment/:envId`, `PUT /api/data-sources/:id?environment_id=`,
//! `POST /api/data-sources/:id/test-connection`.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Call, ToolJetClient, seg};
use super::error::ToolJetError;
use super::model::{DataSourceOption, Family};

/// A data source's options in one environment, in ToolJet's list shape: `{key: {value,
/// encrypted:false}}`, secrets as `{key: {credential_id, encrypted:true}}` (never a value).
pub type OptionMap = Map<String, Value>;

/// One option the caller wants set, with its value resolved (from the spec or a Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct OptionEntry {
    pub key: String,
    pub value: String,
    /// Store it as a secret (`encrypted: true`).
    pub encrypted: bool,
}

impl std::fmt::Debug for OptionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptionEntry")
            .field("key", &self.key)
            .field(
                "value",
                &if self.encrypted {
                    "<secret>"
                } else {
                    &self.value
                },
            )
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

/// The whole option set to `PUT`, from [`merge_options`].
#[derive(Clone, PartialEq)]
pub struct MergedOptions {
    /// Every key: ours with their values, the others as the server holds them.
    pub options: Vec<DataSourceOption>,
    /// Stored secrets that are not ours: on 3.x CE the `PUT` cannot carry their values (they
    /// are never readable) and empties them. Empty on 2.x, which keeps a value-less secret.
    pub secrets_emptied: Vec<String>,
}

impl std::fmt::Debug for MergedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<(&str, bool)> = self
            .options
            .iter()
            .map(|o| (o.key.as_str(), o.encrypted))
            .collect();
        f.debug_struct("MergedOptions")
            .field("keys", &keys)
            .field("secrets_emptied", &self.secrets_emptied)
            .finish()
    }
}

impl MergedOptions {
    /// The secret values this set carries, to keep out of errors and logs.
    pub fn secret_values(&self) -> Vec<&str> {
        self.options
            .iter()
            .filter(|o| o.encrypted)
            .filter_map(|o| o.value.as_str())
            .collect()
    }
}

/// Merges `ours` into `current` (the environment's stored set) and returns the whole set to
/// write, since a `PUT` deletes every key it does not carry (D13).
///
/// - Keys we do not set keep what the server holds: a plain value as it is (types included);
///   a secret as `{key, encrypted:true}` without a value, which 2.x keeps (D15) and 3.x CE
///   empties (listed in [`MergedOptions::secrets_emptied`]).
/// - Our keys carry their value, secrets with `encrypted: true` and always their value (3.x
///   CE re-creates every credential on each write).
/// - A plain value of ours is sent with the type the server holds for that key when it reads
///   as one (`"5432"` → 5432 where a number is stored, `"false"` → false): plugins compare
///   typed values (a string "false" is true in JavaScript).
///
/// Keys come out sorted, so the same input always makes the same request.
pub fn merge_options(family: Family, current: &OptionMap, ours: &[OptionEntry]) -> MergedOptions {
    let mut options: std::collections::BTreeMap<&str, DataSourceOption> = Default::default();
    let mut secrets_emptied = Vec::new();
    for (key, stored) in current {
        if ours.iter().any(|o| o.key == *key) {
            continue;
        }
        let secret = stored.get("encrypted").and_then(Value::as_bool) == Some(true);
        let option = if secret {
            if family == Family::V3 {
                secrets_emptied.push(key.clone());
            }
            DataSourceOption {
                key: key.clone(),
                value: Value::Null,
                encrypted: true,
            }
        } else {
            DataSourceOption {
                key: key.clone(),
                value: stored.get("value").cloned().unwrap_or(Value::Null),
                encrypted: false,
            }
        };
        options.insert(key.as_str(), option);
    }
    for entry in ours {
        let value = if entry.encrypted {
            Value::String(entry.value.clone())
        } else {
            typed_like(
                current.get(&entry.key).and_then(|s| s.get("value")),
                &entry.value,
            )
        };
        options.insert(
            entry.key.as_str(),
            DataSourceOption {
                key: entry.key.clone(),
                value,
                encrypted: entry.encrypted,
            },
        );
    }
    secrets_emptied.sort();
    MergedOptions {
        options: options.into_values().collect(),
        secrets_emptied,
    }
}

/// `text` as the JSON type of `stored` when it reads as that type, else as a string.
fn typed_like(stored: Option<&Value>, text: &str) -> Value {
    match stored {
        Some(Value::Number(_)) => serde_json::from_str::<serde_json::Number>(text.trim())
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.to_string())),
        Some(Value::Bool(_)) => match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        Some(Value::Array(_) | Value::Object(_)) => match serde_json::from_str::<Value>(text) {
            Ok(v @ (Value::Array(_) | Value::Object(_))) => v,
            _ => Value::String(text.to_string()),
        },
        _ => Value::String(text.to_string()),
    }
}

/// What ToolJet's connection test said. `Failed` carries ToolJet's message with the secret
/// values the caller named removed ([`ConnectionTest::redacted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionTest {
    Ok,
    Failed { message: String },
}

/// The longest connection-test message kept (it goes to status).
pub const MAX_CONNECTION_MESSAGE: usize = 512;

impl ConnectionTest {
    /// The same outcome with each of `values` (4 characters or more) replaced by `<redacted>`.
    pub fn redacted(self, values: &[&str]) -> ConnectionTest {
        match self {
            ConnectionTest::Ok => ConnectionTest::Ok,
            ConnectionTest::Failed { mut message } => {
                for v in values.iter().filter(|v| v.len() >= 4) {
                    message = message.replace(*v, "<redacted>");
                }
                ConnectionTest::Failed { message }
            }
        }
    }
}

impl ToolJetClient {
    fn options_allowed(&self, operation: &'static str) -> Result<(), ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported(operation));
        }
        Ok(())
    }

    /// The options of data source `id` in `environment_id`, secrets as credential ids.
    /// 2.x has no single read: the workspace list of that environment is read and searched.
    /// A data source that is not there is [`ToolJetError::NotFound`].
    pub async fn data_source_options(
        &self,
        id: &str,
        environment_id: &str,
    ) -> Result<OptionMap, ToolJetError> {
        self.options_allowed("reading data-source options")?;
        #[derive(serde::Deserialize)]
        struct Listed {
            id: String,
            #[serde(default)]
            options: Option<OptionMap>,
        }
        let (route, found) = match self.family().await? {
            Family::V2 => {
                #[derive(serde::Deserialize)]
                struct Answer {
                    data_sources: Vec<Listed>,
                }
                let route = "GET /api/v2/data_sources";
                // camelCase here; `environment_id` would be ignored (D37, D38).
                let call = Call::new(Method::GET, route, "/api/v2/data_sources")
                    .query("environmentId", environment_id);
                let answer: Answer = self.execute_json(call).await?;
                (route, answer.data_sources.into_iter().find(|d| d.id == id))
            }
            Family::V3 => {
                let route = "GET /api/data-sources/:id/environment/:environmentId";
                let call = Call::new(
                    Method::GET,
                    route,
                    format!(
                        "/api/data-sources/{}/environment/{}",
                        seg(id),
                        seg(environment_id)
                    ),
                );
                let listed: Listed = self.execute_json(call).await?;
                (route, (listed.id == id).then_some(listed))
            }
        };
        let found = found.ok_or_else(|| ToolJetError::NotFound {
            route,
            detail: format!("no data source {id} in environment {environment_id}"),
        })?;
        Ok(found.options.unwrap_or_default())
    }

    /// Creates a global data source with `options` for `environment_id` (CE: every
    /// environment) and returns its id. ToolJet allows two data sources with one name (D29):
    /// look for one first.
    pub async fn create_data_source_with_options(
        &self,
        name: &str,
        kind: &str,
        options: &MergedOptions,
        environment_id: &str,
    ) -> Result<String, ToolJetError> {
        self.options_allowed("creating data sources")?;
        let body = json!({
            "name": name,
            "kind": kind,
            "options": options.options,
            "scope": "global",
            "environment_id": environment_id,
        });
        self.post_data_source(&body, &options.secret_values()).await
    }

    /// `POST`s a new global data source (2.x `/api/v2/data_sources`, 3.x `/api/data-sources`)
    /// and returns its id; `secrets` are kept out of errors.
    pub(super) async fn post_data_source(
        &self,
        body: &Value,
        secrets: &[&str],
    ) -> Result<String, ToolJetError> {
        let call = match self.family().await? {
            Family::V2 => Call::new(
                Method::POST,
                "POST /api/v2/data_sources",
                "/api/v2/data_sources",
            ),
            Family::V3 => Call::new(Method::POST, "POST /api/data-sources", "/api/data-sources"),
        }
        .body(body);
        let route = call.route_name();
        let answer: Value = self
            .execute_json(call)
            .await
            .map_err(|e| e.redacted(secrets))?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ToolJetError::InvalidResponse {
                route,
                detail: "the created data source has no id".into(),
            })
    }

    /// Writes the whole option set of data source `id` in `environment_id` (from
    /// [`merge_options`]); also what makes pooled connections pick up a changed constant
    /// (§3.6). Never sends a body without `options`, which would wipe them (D25).
    pub async fn put_data_source_options(
        &self,
        id: &str,
        environment_id: &str,
        options: &MergedOptions,
    ) -> Result<(), ToolJetError> {
        self.options_allowed("writing data-source options")?;
        let body = json!({ "options": options.options });
        let call = match self.family().await? {
            Family::V2 => Call::new(
                Method::PUT,
                "PUT /api/v2/data_sources/:id",
                format!("/api/v2/data_sources/{}", seg(id)),
            ),
            Family::V3 => Call::new(
                Method::PUT,
                "PUT /api/data-sources/:id",
                format!("/api/data-sources/{}", seg(id)),
            ),
        }
        .query("environment_id", environment_id)
        .body(&body);
        self.execute(call)
            .await
            .map(drop)
            .map_err(|e| e.redacted(&options.secret_values()))
    }

    /// Runs ToolJet's connection test on data source `id` (of `kind`) with `options` in the
    /// list shape, as [`ToolJetClient::data_source_options`] returns them: stored secrets are
    /// tested without knowing them (D4). The message of a failed test has each of `secrets`
    /// removed; HTTP failures are errors, a failed test is not.
    pub async fn test_connection(
        &self,
        id: &str,
        kind: &str,
        environment_id: &str,
        options: &OptionMap,
        secrets: &[&str],
    ) -> Result<ConnectionTest, ToolJetError> {
        self.options_allowed("testing data-source connections")?;
        #[derive(serde::Deserialize)]
        struct Answer {
            status: String,
            #[serde(default)]
            message: Option<Value>,
        }
        let body = json!({"kind": kind, "options": options, "environment_id": environment_id});
        let call = match self.family().await? {
            Family::V2 => Call::new(
                Method::POST,
                "POST /api/data_sources/test_connection",
                "/api/data_sources/test_connection",
            ),
            Family::V3 => Call::new(
                Method::POST,
                "POST /api/data-sources/:id/test-connection",
                format!("/api/data-sources/{}/test-connection", seg(id)),
            ),
        }
        .body(&body);
        let route = call.route_name();
        let answer: Answer = self
            .execute_json(call)
            .await
            .map_err(|e| e.redacted(secrets))?;
        let outcome = match answer.status.as_str() {
            "ok" => ConnectionTest::Ok,
            "failed" => {
                let mut message = match answer.message {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => "the connection test failed without a message".to_string(),
                };
                if message.len() > MAX_CONNECTION_MESSAGE {
                    let mut end = MAX_CONNECTION_MESSAGE;
                    while !message.is_char_boundary(end) {
                        end -= 1;
                    }
                    message.truncate(end);
                    message.push('…');
                }
                ConnectionTest::Failed { message }
            }
            other => {
                return Err(ToolJetError::InvalidResponse {
                    route,
                    detail: format!("unknown connection test status {other:?}"),
                });
            }
        };
        Ok(outcome.redacted(secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> OptionMap {
        serde_json::from_value(json!({
            "host": {"value": "127.0.0.1", "encrypted": false},
            "port": {"value": 55432, "encrypted": false},
            "ssl_enabled": {"value": false, "encrypted": false},
            "connection_options": {"value": [["", ""]], "encrypted": false},
            "password": {"credential_id": "c1", "encrypted": true},
            "ca_cert": {"credential_id": "c2", "encrypted": true},
        }))
        .unwrap()
    }

    fn entry(key: &str, value: &str, encrypted: bool) -> OptionEntry {
        OptionEntry {
            key: key.into(),
            value: value.into(),
            encrypted,
        }
    }

    fn sent(m: &MergedOptions) -> Value {
        serde_json::to_value(&m.options).unwrap()
    }

    #[test]
    fn the_whole_set_is_sent_with_ours_merged_in() {
        let ours = [
            entry("host", "db.prod.svc", false),
            entry("port", "5432", false),
            entry("ssl_enabled", "true", false),
            entry("password", "s3cret", true),
            entry("database", "sales", false),
        ];
        let merged = merge_options(Family::V2, &current(), &ours);
        assert_eq!(
            sent(&merged),
            json!([
                {"key": "ca_cert", "value": null, "encrypted": true},
                {"key": "connection_options", "value": [["", ""]], "encrypted": false},
                {"key": "database", "value": "sales", "encrypted": false},
                {"key": "host", "value": "db.prod.svc", "encrypted": false},
                {"key": "password", "value": "s3cret", "encrypted": true},
                {"key": "port", "value": 5432, "encrypted": false},
                {"key": "ssl_enabled", "value": true, "encrypted": false},
            ])
        );
        assert!(
            merged.secrets_emptied.is_empty(),
            "2.x keeps value-less secrets"
        );
        assert_eq!(merged.secret_values(), ["s3cret"]);
        assert!(!format!("{merged:?}").contains("s3cret"));
    }

    #[test]
    fn on_3_x_secrets_not_ours_are_reported_as_emptied() {
        let merged = merge_options(Family::V3, &current(), &[entry("password", "pw12", true)]);
        assert_eq!(merged.secrets_emptied, ["ca_cert"]);
        let all = merge_options(
            Family::V3,
            &current(),
            &[
                entry("password", "pw12", true),
                entry("ca_cert", "PEM", true),
            ],
        );
        assert!(all.secrets_emptied.is_empty());
    }

    #[test]
    fn values_keep_the_stored_type_only_when_they_read_as_it() {
        assert_eq!(typed_like(Some(&json!(1)), "5432"), json!(5432));
        assert_eq!(typed_like(Some(&json!(1)), "5.5"), json!(5.5));
        assert_eq!(typed_like(Some(&json!(1)), "n/a"), json!("n/a"));
        assert_eq!(typed_like(Some(&json!(true)), "false"), json!(false));
        assert_eq!(typed_like(Some(&json!(true)), "no"), json!("no"));
        assert_eq!(
            typed_like(Some(&json!([])), r#"[["a","b"]]"#),
            json!([["a", "b"]])
        );
        assert_eq!(typed_like(Some(&json!([])), "3"), json!("3"));
        assert_eq!(typed_like(Some(&json!("x")), "5432"), json!("5432"));
        assert_eq!(typed_like(None, "5432"), json!("5432"));
    }

    #[test]
    fn an_empty_set_is_only_ours_and_a_secret_switch_is_honoured() {
        let merged = merge_options(Family::V3, &OptionMap::new(), &[entry("host", "h", false)]);
        assert_eq!(
            sent(&merged),
            json!([{"key": "host", "value": "h", "encrypted": false}])
        );
        // A stored secret we now set in plain text is sent in plain text (the user asked).
        let merged = merge_options(Family::V2, &current(), &[entry("password", "p", false)]);
        let pw = merged.options.iter().find(|o| o.key == "password").unwrap();
        assert!(!pw.encrypted);
    }

    #[test]
    fn connection_messages_lose_secret_values() {
        let failed = ConnectionTest::Failed {
            message: "login failed for s3cret-pw at db".into(),
        };
        assert_eq!(
            failed.redacted(&["s3cret-pw", "ab"]),
            ConnectionTest::Failed {
                message: "login failed for <redacted> at db".into()
            }
        );
        assert_eq!(ConnectionTest::Ok.redacted(&["x"]), ConnectionTest::Ok);
    }
}
