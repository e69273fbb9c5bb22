//! A stand-in ToolJet server for tests and benchmarks (see shared/tooljet-contract.md).
//!
//! It implements the routes the operator uses, with ToolJet's paths, status codes, casing
//! and messages, keeps its state in memory, and offers test hooks: editing an app as a user
//! would, fault knobs and a request log. It is a test double, never part of the operator.

mod auth;
mod config;
mod error;
mod faults;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

pub use auth::{ADMIN_KEY_HEADER, SESSION_COOKIE, WORKSPACE_HEADER};
pub use config::{
    ConstantSnapshot, MASK, MSG_CONSTANT_EXISTS, MSG_CONSTANT_NAME, MSG_CONSTANT_NOT_FOUND,
    MSG_CONSTANT_TYPE,
};
pub use error::nest_body;
pub use faults::Faults;
pub use state::{
    AppSnapshot, DataSourceSnapshot, ImportDamage, MAX_APP_NAME, MSG_NAME_TAKEN, MSG_SLUG_TAKEN,
    MSG_TOO_NEW, PAGE_SIZE, VersionSnapshot, leading_version,
};

use faults::Verdict;
use routes::Shared;

/// The version the stand-in claims to be unless told otherwise.
pub const DEFAULT_SERVER_VERSION: &str = "3.5.11";
/// The 2.x version whose behaviour the `2.27` flavour reproduces (`2.27-vs-contract.md`).
pub const V2_27_SERVER_VERSION: &str = "2.27.1";

/// Which ToolJet family the stand-in answers like.
///
/// `V3` follows `tooljet-contract.md` (3.x LTS). `V2_27` reproduces what a real ToolJet CE
/// 2.27.1 was seen to do (`tooljet-real/2.27-vs-contract.md`): no release route (release with
/// `PUT /apps/:id {app:{current_version_id}}`), no admin API key, no version check on import,
/// 409 for a taken name on import, names kept verbatim and unlimited on import, `type` ignored
/// in listings, 500 for the export of an unknown app, no `tableNameMapping`, no `/api/ext`.
/// Both flavours carry the fixes the record tags CONTRACT: error bodies
/// `{statusCode, timestamp, path, message}`, 409 for a taken name or slug on rename, `PUT
/// /apps/:id` answering an update result and ignoring a body without `{app: …}`, 500 for an
/// oversized body, case-sensitive names, `GET /api/metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// ToolJet CE 2.27.1, as recorded.
    V2_27,
    /// ToolJet 3.x LTS, as the contract describes it.
    #[default]
    V3,
}

impl Flavour {
    /// Both flavours, for tests that run against each.
    pub const ALL: [Flavour; 2] = [Flavour::V2_27, Flavour::V3];

    /// The version `GET /api/metadata` answers unless one is set.
    pub fn default_server_version(self) -> &'static str {
        match self {
            Flavour::V2_27 => V2_27_SERVER_VERSION,
            Flavour::V3 => DEFAULT_SERVER_VERSION,
        }
    }

    /// The name used on the command line (`--flavour`).
    pub fn name(self) -> &'static str {
        match self {
            Flavour::V2_27 => "2.27",
            Flavour::V3 => "3.x",
        }
    }

    /// Whether the admin API key exists (3.x only).
    pub fn has_admin_api_key(self) -> bool {
        self == Flavour::V3
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Flavour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "2.27" | "2.27.1" | "2.x" | "2" => Ok(Flavour::V2_27),
            "3.x" | "3" => Ok(Flavour::V3),
            other => Err(format!("unknown flavour {other:?}; use 2.27 or 3.x")),
        }
    }
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the stand-in to {addr}: {source}; pick another port")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up TLS for the stand-in: {0}")]
    Tls(String),
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Whether a route handler ran (false for requests a fault knob answered).
    pub reached_handler: bool,
}

/// Builds a [`StandIn`]; every field has a test-friendly default.
#[derive(Debug, Clone)]
pub struct StandInBuilder {
    port: u16,
    workspace_id: String,
    flavour: Flavour,
    /// `None`: the flavour's default.
    server_version: Option<String>,
    email: String,
    password: String,
    admin_api_key: Option<String>,
    external_token: Option<String>,
    self_signed_tls: bool,
}

impl Default for StandInBuilder {
    fn default() -> Self {
        StandInBuilder {
            port: 0,
            workspace_id: state::new_id(),
            flavour: Flavour::default(),
            server_version: None,
            email: "admin@example.com".to_string(),
            password: "stand-in-password".to_string(),
            admin_api_key: None,
            external_token: None,
            self_signed_tls: false,
        }
    }
}

impl StandInBuilder {
    /// Port on 127.0.0.1; 0 (the default) lets the OS choose.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn workspace_id(mut self, id: impl Into<String>) -> Self {
        self.workspace_id = id.into();
        self
    }
    /// Which ToolJet to answer like; also picks the default server version.
    pub fn flavour(mut self, flavour: Flavour) -> Self {
        self.flavour = flavour;
        self
    }
    /// The version to claim (`GET /api/metadata`, exports, the 3.x import version check).
    pub fn server_version(mut self, v: impl Into<String>) -> Self {
        self.server_version = Some(v.into());
        self
    }
    /// The one user that can log in with a password.
    pub fn credentials(mut self, email: impl Into<String>, password: impl Into<String>) -> Self {
        self.email = email.into();
        self.password = password.into();
        self
    }
    /// Enables `tj-admin-api-key` (ToolJet's `TJ_ADMIN_API_KEY`); the `2.27` flavour has no
    /// such key and answers 401 to it whatever is set here.
    pub fn admin_api_key(mut self, key: impl Into<String>) -> Self {
        self.admin_api_key = Some(key.into());
        self
    }
    /// Enables the EE `/api/ext` routes (`EXTERNAL_API_ACCESS_TOKEN`).
    pub fn external_token(mut self, token: impl Into<String>) -> Self {
        self.external_token = Some(token.into());
        self
    }
    /// Serves HTTPS with a fresh self-signed CA; see [`StandIn::ca_pem`].
    pub fn self_signed_tls(mut self) -> Self {
        self.self_signed_tls = true;
        self
    }

    pub async fn start(self) -> Result<StandIn, StartError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let (tls, ca_pem) = if self.self_signed_tls {
            let (acceptor, ca) = tls_acceptor()?;
            (Some(acceptor), Some(ca))
        } else {
            (None, None)
        };
        let server_version = self
            .server_version
            .clone()
            .unwrap_or_else(|| self.flavour.default_server_version().to_string());
        let state: Shared = Arc::new(Mutex::new(state::State::new(
            self.workspace_id.clone(),
            server_version.clone(),
            self.email.clone(),
            self.password.clone(),
            self.admin_api_key.clone(),
            self.external_token.clone(),
            self.flavour,
        )));
        let inner = Arc::new(Inner {
            router: routes::router(state.clone()),
            faults: Faults::default(),
            log: Mutex::new(Vec::new()),
            in_flight: InFlight::default(),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, inner.clone(), tls, shutdown_rx));
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        // Certificates name "localhost", so HTTPS URLs use it.
        let host = if ca_pem.is_some() {
            "localhost".to_string()
        } else {
            local.ip().to_string()
        };
        Ok(StandIn {
            base_url: format!("{scheme}://{host}:{}", local.port()),
            addr: local,
            server_version,
            config: self,
            state,
            inner,
            shutdown: shutdown_tx,
            ca_pem,
        })
    }
}

struct Inner {
    router: axum::Router,
    faults: Faults,
    log: Mutex<Vec<RequestRecord>>,
    in_flight: InFlight,
}

/// Requests being handled now, and the most seen at once: whether a client overlaps its
/// requests, told without timing.
#[derive(Default)]
struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// Counts one request in flight until dropped.
struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    fn enter(&self) -> InFlightGuard<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        InFlightGuard(self)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Inner {
    fn log(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stand-in; shut down on [`StandIn::shutdown`] or drop.
pub struct StandIn {
    base_url: String,
    addr: SocketAddr,
    server_version: String,
    config: StandInBuilder,
    state: Shared,
    inner: Arc<Inner>,
    shutdown: watch::Sender<bool>,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    pub fn builder() -> StandInBuilder {
        StandInBuilder::default()
    }

    /// `http://127.0.0.1:<port>` (or `https://localhost:<port>` with TLS), without `/api`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn workspace_id(&self) -> &str {
        &self.config.workspace_id
    }
    pub fn server_version(&self) -> &str {
        &self.server_version
    }
    pub fn flavour(&self) -> Flavour {
        self.config.flavour
    }
    pub fn email(&self) -> &str {
        &self.config.email
    }
    pub fn password(&self) -> &str {
        &self.config.password
    }
    pub fn admin_api_key(&self) -> Option<&str> {
        self.config.admin_api_key.as_deref()
    }
    pub fn external_token(&self) -> Option<&str> {
        self.config.external_token.as_deref()
    }
    /// The PEM of the CA that signed the server certificate, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The fault knobs.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Every request seen so far, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.inner.log().clone()
    }

    /// Writes that reached a handler, whatever they answered: POST, PUT, PATCH
    /// and DELETE, except the two POSTs that change nothing (login and export).
    pub fn write_count(&self) -> usize {
        self.inner
            .log()
            .iter()
            .filter(|r| r.reached_handler && is_write(&r.method, &r.path))
            .count()
    }

    pub fn clear_request_log(&self) {
        self.inner.log().clear();
    }

    /// The most requests handled at the same time since the start (or the last
    /// [`reset_peak_in_flight`](Self::reset_peak_in_flight)), latency knob included.
    pub fn peak_in_flight(&self) -> usize {
        self.inner
            .in_flight
            .peak
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn reset_peak_in_flight(&self) {
        self.inner
            .in_flight
            .peak
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }

    fn state(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// All apps of all workspaces, oldest first.
    pub fn apps(&self) -> Vec<AppSnapshot> {
        self.state().apps.clone()
    }

    /// The workspace data sources (user ones; the static built-ins live in each app).
    pub fn data_sources(&self) -> Vec<DataSourceSnapshot> {
        self.state().data_sources.clone()
    }

    /// The workspace constants with their values (which 3.x would mask for Secrets).
    pub fn constants(&self) -> Vec<ConstantSnapshot> {
        self.state().constant_snapshots()
    }

    /// Changes a constant's value as a person would in the dashboard. False when there is no
    /// such constant.
    pub fn set_constant_as_user(&self, name: &str, value: &str) -> bool {
        self.state().set_constant_value(name, value)
    }

    /// The stored value of a data source's secret option `key` (ToolJet never shows it);
    /// `None` when the option is not a secret or there is no such data source.
    pub fn data_source_secret(&self, data_source_id: &str, key: &str) -> Option<String> {
        let s = self.state();
        let d = s.data_sources.iter().find(|d| d.id == data_source_id)?;
        let id = d.options.get(key)?.get("credential_id")?.as_str()?;
        Some(s.credentials.get(id).cloned().unwrap_or_default())
    }

    /// How many secret values the server holds, orphans included (a key switched from
    /// encrypted to plain and back leaves its old credential behind, D18–D21).
    pub fn credential_count(&self) -> usize {
        self.state().credentials.len()
    }

    /// The database data sources of `kind` reach: connecting succeeds only when each listed
    /// option resolves (credentials read, constants substituted) to the listed value. Without
    /// one, every connection of a known kind succeeds.
    pub fn set_connection_target(&self, kind: &str, expected: &[(&str, &str)]) {
        self.state().connection_targets.insert(
            kind.to_string(),
            config::ConnectionTarget {
                expected: expected
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    }

    /// A fault knob: every connection test and query connection fails with `message` until
    /// called with `None`.
    pub fn fail_connections(&self, message: Option<&str>) {
        self.state().connection_failure = message.map(str::to_string);
    }

    /// Runs a query of an app on data source `id` as ToolJet does: through the pooled
    /// connection, rebuilt only when the data source's options were written after it was made
    /// (a changed constant alone is not seen, config-api.md §3.6). Returns the option values
    /// the connection uses, or the plugin's message; `None` when there is no such data source.
    pub fn connect_as_app(
        &self,
        data_source_id: &str,
    ) -> Option<Result<std::collections::BTreeMap<String, String>, String>> {
        self.state().connect_as_app(data_source_id)
    }

    /// A fault knob: the next import (of one app) stores it without `damage`'s part of the
    /// bundle, and still answers success.
    pub fn damage_next_import(&self, damage: ImportDamage) {
        self.state().import_damage = Some(damage);
    }

    /// A fault knob: the next rename of an app to `name` answers success and changes nothing.
    pub fn ignore_next_rename_to(&self, name: &str) {
        self.state().ignore_rename_to = Some(name.to_owned());
    }

    /// A fault knob: the next rename of an app to `name` also clears its release.
    pub fn unrelease_on_next_rename_to(&self, name: &str) {
        self.state().unrelease_on_rename_to = Some(name.to_owned());
    }

    /// Deletes an app as a person would in the dashboard, with the server's cascades (2.27: the
    /// data sources its versions created and every query using them). False when there is no
    /// such app.
    pub fn delete_app_as_user(&self, app_id: &str) -> bool {
        let mut s = self.state();
        if !s.apps.iter().any(|a| a.id == app_id) {
            return false;
        }
        s.delete_app(app_id);
        true
    }

    /// Saves an edit in the ToolJet editor: bumps `updated_at` of the app and of
    /// its editing version. Returns false when there is no such app.
    pub fn edit_app_as_user(&self, app_id: &str) -> bool {
        let mut s = self.state();
        let now = s.now();
        let Some(app) = s.apps.iter_mut().find(|a| a.id == app_id) else {
            return false;
        };
        app.updated_at = now.clone();
        app.definition["updatedAt"] = serde_json::json!(now);
        let editing = app.editing_version_id.clone();
        if let Some(v) = app.versions.iter_mut().find(|v| v.id == editing) {
            v.updated_at = now;
        }
        true
    }

    /// Saves an edit of a query in the ToolJet editor (the first one, or the one named
    /// `query`): changes its options and its own `updatedAt`. On 2.27.1 that is all that moves:
    /// neither the app's nor the editing version's `updated_at` (issue 13). On 3.x the editing
    /// version's `updated_at` moves too, as the contract says of every edit (§ Editable).
    /// Returns false when there is no such app or query.
    pub fn edit_query_as_user(&self, app_id: &str, query: Option<&str>) -> bool {
        let mut s = self.state();
        let now = s.now();
        let flavour = s.flavour;
        let Some(app) = s.apps.iter_mut().find(|a| a.id == app_id) else {
            return false;
        };
        let Some(q) = app
            .definition
            .get_mut("dataQueries")
            .and_then(serde_json::Value::as_array_mut)
            .and_then(|qs| {
                qs.iter_mut().find(|q| {
                    query.is_none_or(|n| q.get("name").and_then(|v| v.as_str()) == Some(n))
                })
            })
        else {
            return false;
        };
        if !q.get("options").is_some_and(serde_json::Value::is_object) {
            q["options"] = serde_json::json!({});
        }
        q["options"]["code"] = serde_json::json!(format!("return 'edited in ToolJet at {now}';"));
        q["updatedAt"] = serde_json::json!(now);
        if flavour == Flavour::V3 {
            touch_editing_version(app, &now);
        }
        true
    }

    /// Adds a query in the ToolJet editor (a RunJS query named `name`), with the same
    /// timestamps as [`StandIn::edit_query_as_user`]. Returns its id, or `None` when there is no
    /// such app.
    pub fn add_query_as_user(&self, app_id: &str, name: &str) -> Option<String> {
        let mut s = self.state();
        let now = s.now();
        let flavour = s.flavour;
        let app = s.apps.iter_mut().find(|a| a.id == app_id)?;
        let id = state::new_id();
        let source = app
            .query_values()
            .first()
            .and_then(|q| q.get("dataSourceId"))
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let query = serde_json::json!({
            "id": id,
            "name": name,
            "options": {"code": "return 1;"},
            "dataSourceId": source,
            "appVersionId": app.editing_version_id,
            "createdAt": now,
            "updatedAt": now,
        });
        match app
            .definition
            .get_mut("dataQueries")
            .and_then(serde_json::Value::as_array_mut)
        {
            Some(qs) => qs.push(query),
            None => app.definition["dataQueries"] = serde_json::json!([query]),
        }
        if flavour == Flavour::V3 {
            touch_editing_version(app, &now);
        }
        Some(id)
    }

    /// Ends every login session, as when ToolJet's JWTs expire.
    pub fn expire_sessions(&self) {
        self.state().sessions.clear();
    }

    /// Stops accepting connections and closes open ones.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn touch_editing_version(app: &mut AppSnapshot, now: &str) {
    let editing = app.editing_version_id.clone();
    if let Some(v) = app.versions.iter_mut().find(|v| v.id == editing) {
        v.updated_at = now.to_string();
    }
}

fn is_write(method: &str, path: &str) -> bool {
    let read_only_post =
        path == "/api/v2/resources/export" || path.starts_with("/api/authenticate");
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") && !(method == "POST" && read_only_post)
}

fn tls_acceptor() -> Result<(tokio_rustls::TlsAcceptor, String), StartError> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let err = |e: &dyn std::fmt::Display| StartError::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(|e| err(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).map_err(|e| err(&e))?;
    let ca_issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(|e| err(&e))?;
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| err(&e))?;
    let cert = params.signed_by(&key, &ca_issuer).map_err(|e| err(&e))?;
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| err(&e))?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem()))
}

async fn accept_loop(
    listener: TcpListener,
    inner: Arc<Inner>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "stand-in accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if inner.faults.is_down() {
            // A server that went away: close without a word.
            drop(stream);
            continue;
        }
        let inner = inner.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(io) => serve_connection(io, inner, shutdown).await,
                    Err(e) => tracing::debug!(error = %e, "stand-in TLS handshake failed"),
                },
                None => serve_connection(stream, inner, shutdown).await,
            }
        });
    }
}

async fn serve_connection<I>(io: I, inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let inner = inner.clone();
        async move { handle(req, inner).await }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        _ = conn => {}
        // Dropping the connection future closes the socket.
        _ = shutdown.wait_for(|s| *s) => {}
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the stand-in's fault knob")
    }
}
impl std::error::Error for Dropped {}

async fn handle(
    req: Request<hyper::body::Incoming>,
    inner: Arc<Inner>,
) -> Result<Response<Body>, Dropped> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // NestJS reports `request.url`: the path with its query.
    let url = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let _in_flight = inner.in_flight.enter();
    let latency = inner.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let record = |status: Option<u16>, reached_handler| RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        status,
        reached_handler,
    };
    match inner.faults.verdict(method.as_str(), &path) {
        Verdict::Drop => {
            inner.log().push(record(None, false));
            Err(Dropped)
        }
        Verdict::Status(code, message) => {
            inner.log().push(record(Some(code), false));
            let status = axum::http::StatusCode::from_u16(code)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            let message = message.unwrap_or_else(|| default_message(status));
            let body = serde_json::to_vec(&nest_body(status, &message, &url)).unwrap_or_default();
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        Verdict::Pass => {
            let resp = match inner.router.clone().oneshot(req.map(Body::new)).await {
                Ok(resp) => with_error_path(resp, &url),
                Err(never) => match never {},
            };
            inner.log().push(record(Some(resp.status().as_u16()), true));
            Ok(resp)
        }
        Verdict::DelayAnswer(delay) => {
            let resp = match inner.router.clone().oneshot(req.map(Body::new)).await {
                Ok(resp) => with_error_path(resp, &url),
                Err(never) => match never {},
            };
            inner.log().push(record(Some(resp.status().as_u16()), true));
            tokio::time::sleep(delay).await;
            Ok(resp)
        }
    }
}

/// Writes the request's path into an error body a handler produced (handlers do not know it).
fn with_error_path(mut resp: Response<Body>, url: &str) -> Response<Body> {
    if let Some(error::PendingError(e)) = resp.extensions_mut().remove::<error::PendingError>() {
        let body = serde_json::to_vec(&e.body(url)).unwrap_or_default();
        resp.headers_mut()
            .remove(axum::http::header::CONTENT_LENGTH);
        *resp.body_mut() = Body::from(body);
    }
    resp
}

fn default_message(status: axum::http::StatusCode) -> String {
    if status.is_server_error() {
        "Internal server error".to_string()
    } else {
        status.canonical_reason().unwrap_or("Error").to_string()
    }
}

/// Runs a test once against each flavour (2.27 and 3.x), as `<name>::on_2_27` and
/// `<name>::on_3_x`; the body sees the flavour as `$flavour`. Attributes before the name (the
/// test attribute, docs) go on both; without any, `#[tokio::test]`.
#[macro_export]
macro_rules! flavoured {
    ($name:ident, $flavour:ident, $body:block) => {
        $crate::flavoured!(#[tokio::test] $name, $flavour, $body);
    };
    ($(#[$m:meta])+ $name:ident, $flavour:ident, $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$m])+
            async fn on_2_27() {
                run($crate::Flavour::V2_27).await
            }
            $(#[$m])+
            async fn on_3_x() {
                run($crate::Flavour::V3).await
            }
            async fn run($flavour: $crate::Flavour) $body
        }
    };
}
