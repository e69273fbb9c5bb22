//! `--install-crds`: server-side apply of the CRDs at start-up, waiting until they are served.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tracing::info;

use super::ControllerError;
use super::apply::FIELD_MANAGER;

const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Server-side applies the CRDs and waits until the API server serves them.
pub async fn install_crds(client: &Client) -> Result<(), ControllerError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crate::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| ControllerError::InstallCrd {
                name: name.clone(),
                source,
            })?;
        info!(crd = %name, "CRD applied");
        let deadline = tokio::time::Instant::now() + CRD_ESTABLISH_TIMEOUT;
        loop {
            let current = api
                .get(&name)
                .await
                .map_err(|source| ControllerError::InstallCrd {
                    name: name.clone(),
                    source,
                })?;
            if is_established(&current) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::CrdNotEstablished {
                    name,
                    seconds: CRD_ESTABLISH_TIMEOUT.as_secs(),
                });
            }
            // Poll interval while the API server registers the new types.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}
