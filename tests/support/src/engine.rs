//! The engine rig: a real git repository, the ToolJet stand-in, a git cache, the engine and a
//! client, with what the last run left. Requests are built by the operator's own builder
//! (`tooljet_operator::sync::request`), as the controller and `sync -f` build them.

use std::collections::BTreeMap;
use std::time::Duration;

use git_fixtures::TestRepo;
use serde_json::json;
use tooljet_operator::api::{
    ANNOTATION_APPROVE, ANNOTATION_FORCE_PULL, AppImport, AppImportSpec, ToolJetInstance,
    ToolJetInstanceSpec,
};
use tooljet_operator::source::{CacheConfig, Credentials, SourceCache};
use tooljet_operator::sync::{
    Checkpoint, Engine, ImportKey, Mode, NoCheckpoint, Secrets, SyncOutcome, SyncState,
    sync_request,
};
use tooljet_operator::tooljet::{Auth, ClientConfig, ToolJetClient};
use tooljet_standin::{Flavour, StandIn};

use crate::pipeline::{EMAIL, PASSWORD};

/// How a client logs in to a stand-in started by [`crate::pipeline::start_standin`]: with a
/// password on 2.27 (no admin API key there), with the admin API key on 3.x.
pub fn login(flavour: Flavour, api_key: &str) -> Auth {
    match flavour {
        Flavour::V2_27 => Auth::Password {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
        Flavour::V3 => Auth::AdminApiKey(api_key.into()),
    }
}

/// A client for `standin`'s workspace, logging in as [`login`] says; `timeout` per request when
/// set (the client's default otherwise).
pub fn client(
    standin: &StandIn,
    flavour: Flavour,
    api_key: &str,
    timeout: Option<Duration>,
) -> ToolJetClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig::new(standin.base_url(), login(flavour, api_key));
    config.workspace_id = Some(standin.workspace_id().to_owned());
    if let Some(timeout) = timeout {
        config.request_timeout = timeout;
    }
    ToolJetClient::new(config).expect("client")
}

/// What one run asks beyond the spec: the request's generation and annotations, the git
/// credentials (the rig's specs name no Secret) and the mode.
pub struct RunArgs<'a> {
    pub generation: Option<i64>,
    pub approve: Option<&'a str>,
    pub force_pull: Option<&'a str>,
    pub git_credentials: Credentials,
    pub mode: Mode,
}

impl Default for RunArgs<'_> {
    fn default() -> Self {
        RunArgs {
            generation: Some(1),
            approve: None,
            force_pull: None,
            git_credentials: Credentials::Anonymous,
            mode: Mode::Apply,
        }
    }
}

/// The stand-in, the repository and the engine over its own git cache, for AppImport `key`.
pub struct EngineRig {
    pub standin: StandIn,
    pub repo: TestRepo,
    /// The git cache's folder (gone with the rig).
    pub cache_dir: tempfile::TempDir,
    /// The rig's handle on the engine's cache (clones share mirrors): stats, mirror paths.
    pub cache: SourceCache,
    pub engine: Engine,
    pub client: ToolJetClient,
    pub instance: ToolJetInstanceSpec,
    pub key: ImportKey,
    /// What the last applied run left.
    pub state: SyncState,
}

impl EngineRig {
    /// The rig around `standin` (of `flavour`, logins as [`crate::pipeline::start_standin`]
    /// sets them) and `repo`; the client gives up after `request_timeout`, git after
    /// `network_timeout` when set. The AppImport is `team-a/credit-card`.
    pub fn new(
        standin: StandIn,
        repo: TestRepo,
        flavour: Flavour,
        api_key: &str,
        request_timeout: Duration,
        network_timeout: Option<Duration>,
    ) -> EngineRig {
        let cache_dir = tempfile::tempdir().expect("tempdir");
        let mut config = CacheConfig {
            dir: cache_dir.path().to_owned(),
            ..CacheConfig::default()
        };
        if let Some(timeout) = network_timeout {
            config.network_timeout = timeout;
        }
        let cache = SourceCache::new(config);
        let client = client(&standin, flavour, api_key, Some(request_timeout));
        let instance: ToolJetInstanceSpec = serde_json::from_value(json!({
            "url": standin.base_url(),
            "environment": "development",
            "workspaceId": standin.workspace_id(),
            "auth": {"adminApiKey": {"secretRef": {"name": "tj", "key": "api-key"}}}
        }))
        .expect("instance spec");
        EngineRig {
            standin,
            repo,
            cache_dir,
            engine: Engine::new(cache.clone()),
            cache,
            client,
            instance,
            key: ImportKey::new("team-a", "credit-card"),
            state: SyncState::default(),
        }
    }

    /// One run of `spec` for this rig's AppImport, from and into [`EngineRig::state`] (only an
    /// applied run changes it).
    pub async fn sync(&mut self, spec: &AppImportSpec, args: RunArgs<'_>) -> SyncOutcome {
        let mode = args.mode;
        let outcome = self
            .run(&self.key, self.state.clone(), spec, args, &NoCheckpoint)
            .await;
        if mode == Mode::Apply {
            self.state = outcome.state.clone();
        }
        outcome
    }

    /// One run of `spec` as AppImport `key` from `state`, saving through `checkpoint`. The
    /// request comes from the operator's builder, as the controller's does.
    pub async fn run(
        &self,
        key: &ImportKey,
        state: SyncState,
        spec: &AppImportSpec,
        args: RunArgs<'_>,
        checkpoint: &dyn Checkpoint,
    ) -> SyncOutcome {
        let mut annotations = BTreeMap::new();
        if let Some(approve) = args.approve {
            annotations.insert(ANNOTATION_APPROVE.to_owned(), approve.to_owned());
        }
        if let Some(force_pull) = args.force_pull {
            annotations.insert(ANNOTATION_FORCE_PULL.to_owned(), force_pull.to_owned());
        }
        // The credentials come in resolved: the object names no Secret.
        let mut unsecret = spec.clone();
        unsecret.source.secret_ref = None;
        let mut app = AppImport::new(&key.name, unsecret);
        app.metadata.namespace = Some(key.namespace.clone());
        app.metadata.annotations = Some(annotations);
        let instance = ToolJetInstance::new("tj", self.instance.clone());
        let mut req = sync_request(&app, &instance, &Secrets::new(), args.generation, state)
            .expect("a request without Secrets");
        req.spec = spec;
        req.git_credentials = args.git_credentials;
        self.engine
            .sync(req, &self.client, args.mode, checkpoint)
            .await
    }
}
