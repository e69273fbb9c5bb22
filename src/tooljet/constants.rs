//! Workspace constants (`tooljet-real/config-api.md` §2): the same routes on 2.x and 3.x, with
//! 2.x's differences handled here. 2.x has no Secret type (it drops `type` and stores the value
//! in plain text), so a Secret constant is refused before anything is sent.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Call, ToolJetClient, seg};
use super::error::ToolJetError;
use super::model::{Constant, ConstantType, Family};

const ROUTE_LIST: &str = "GET /api/organization-constants";
const ROUTE_OF_ENV: &str = "GET /api/organization-constants/environment/:environmentId";
const ROUTE_CREATE: &str = "POST /api/organization-constants";
const ROUTE_UPDATE: &str = "PATCH /api/organization-constants/:id";
const ROUTE_DELETE: &str = "DELETE /api/organization-constants/:id";

/// A constant as `GET /api/organization-constants/environment/:id` lists it (one environment).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct EnvironmentConstant {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: ConstantType,
    /// Masked (`********`) for a Secret on 3.x.
    #[serde(default)]
    pub value: String,
}

impl ToolJetClient {
    fn constants_allowed(&self, operation: &'static str) -> Result<(), ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported(operation));
        }
        Ok(())
    }

    /// Every workspace constant with its values per environment (2.x: plain text, type
    /// `Global`; 3.x: Secret values masked).
    pub async fn constants(&self) -> Result<Vec<Constant>, ToolJetError> {
        self.constants_allowed("listing workspace constants")?;
        #[derive(serde::Deserialize)]
        struct Answer {
            constants: Vec<Constant>,
        }
        let call = Call::new(Method::GET, ROUTE_LIST, "/api/organization-constants");
        Ok(self.execute_json::<Answer>(call).await?.constants)
    }

    /// The constants of one environment (an unknown environment lists none).
    pub async fn constants_of_environment(
        &self,
        environment_id: &str,
    ) -> Result<Vec<EnvironmentConstant>, ToolJetError> {
        self.constants_allowed("listing workspace constants")?;
        #[derive(serde::Deserialize)]
        struct Answer {
            constants: Vec<EnvironmentConstant>,
        }
        let call = Call::new(
            Method::GET,
            ROUTE_OF_ENV,
            format!(
                "/api/organization-constants/environment/{}",
                seg(environment_id)
            ),
        );
        Ok(self.execute_json::<Answer>(call).await?.constants)
    }

    /// Creates a constant in `environment_ids` (CE writes every environment) and returns its
    /// id. A taken name is [`ToolJetError::ConstantExists`]; a Secret on 2.x is
    /// [`ToolJetError::SecretConstantUnsupported`], with nothing sent. The value never appears
    /// in an error.
    pub async fn create_constant(
        &self,
        name: &str,
        value: &str,
        kind: ConstantType,
        environment_ids: &[String],
    ) -> Result<String, ToolJetError> {
        self.constants_allowed("writing workspace constants")?;
        let family = self.family().await?;
        if family == Family::V2 && kind == ConstantType::Secret {
            return Err(ToolJetError::SecretConstantUnsupported {
                name: name.to_string(),
            });
        }
        let mut body = json!({
            "constant_name": name,
            "value": value,
            "environments": environment_ids,
        });
        // 2.x would drop it anyway (K2); 3.x requires it.
        if family == Family::V3 {
            body["type"] = json!(kind);
        }
        let call = Call::new(Method::POST, ROUTE_CREATE, "/api/organization-constants").body(&body);
        let answer: Value = self
            .execute_json(call)
            .await
            .map_err(|e| constant_error(e, name, value))?;
        answer
            .pointer("/constant/id")
            .or_else(|| answer.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ToolJetError::InvalidResponse {
                route: ROUTE_CREATE,
                detail: "the created constant has no id".into(),
            })
    }

    /// Sets a constant's value in `environment_id` (CE: every environment). Both are required
    /// by ToolJet. An unknown id is [`ToolJetError::NotFound`] (2.x answers 500).
    pub async fn update_constant(
        &self,
        id: &str,
        value: &str,
        environment_id: &str,
    ) -> Result<(), ToolJetError> {
        self.constants_allowed("writing workspace constants")?;
        let body = json!({"value": value, "environment_id": environment_id});
        let call = Call::new(
            Method::PATCH,
            ROUTE_UPDATE,
            format!("/api/organization-constants/{}", seg(id)),
        )
        .body(&body);
        self.execute(call)
            .await
            .map(drop)
            .map_err(|e| constant_error(e, id, value))
    }

    /// Deletes a constant (with `environment_id` on EE multi-environment, only that
    /// environment's value). An unknown id is [`ToolJetError::NotFound`].
    pub async fn delete_constant(
        &self,
        id: &str,
        environment_id: Option<&str>,
    ) -> Result<(), ToolJetError> {
        self.constants_allowed("writing workspace constants")?;
        let mut call = Call::new(
            Method::DELETE,
            ROUTE_DELETE,
            format!("/api/organization-constants/{}", seg(id)),
        );
        if let Some(env) = environment_id {
            call = call.query("environmentId", env);
        }
        self.execute(call).await.map(drop)
    }
}

/// Names a taken constant, and keeps the value out of whatever the server said.
fn constant_error(e: ToolJetError, name: &str, value: &str) -> ToolJetError {
    match e {
        ToolJetError::Rejected {
            route,
            status: 422,
            detail,
        } if detail.contains("Already exists") => ToolJetError::ConstantExists {
            route,
            name: name.to_string(),
        },
        other => other.redacted(&[value]),
    }
}
