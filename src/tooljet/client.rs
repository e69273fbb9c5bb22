//! The client: request plumbing, authentication, and one method per endpoint.

use std::time::Instant;

use tracing::Instrument;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use url::Url;

use super::app_list::AppLists;
use super::config::{Auth, ClientConfig};
use super::error::{ToolJetError, TransientKind};
use super::model::{
    AppDetails, AppSummary, AppUpdate, DataSource, DataSourceOption, Environment, Family,
    ImportedApp, ServerVersion,
};

const SESSION_COOKIE: &str = "tj_auth_token";
const WORKSPACE_HEADER: &str = "tj-workspace-id";
const ADMIN_KEY_HEADER: &str = "tj-admin-api-key";
/// ToolJet's list page size; a shorter page is the last one.
const PAGE_SIZE: usize = 9;
/// A bound on pages walked, so a misbehaving server cannot loop us forever.
const MAX_PAGES: usize = 10_000;
const MAX_DETAIL: usize = 300;

/// One page of `GET /api/apps`.
#[derive(serde::Deserialize)]
struct AppPage {
    apps: Vec<AppSummary>,
    #[serde(default)]
    meta: PageMeta,
}

#[derive(serde::Deserialize, Default)]
struct PageMeta {
    /// All matches, on every page (ToolJet's `meta.total_count`).
    #[serde(default)]
    total_count: Option<usize>,
}

/// Told about every HTTP request the client made (for metrics); must be cheap and never block.
pub trait RequestObserver: Send + Sync {
    /// `route` is the path template (e.g. `"PUT /api/apps/:id"`); `status` is `None` when no
    /// answer came (connection error, timeout).
    fn request_finished(&self, route: &'static str, status: Option<u16>, took: std::time::Duration);
}

/// A client for one ToolJet workspace. Cheap to share behind an `Arc`; all
/// methods take `&self`.
pub struct ToolJetClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    workspace: std::sync::RwLock<Option<String>>,
    /// The session cookie's value (password mode).
    session: tokio::sync::Mutex<Option<String>>,
    /// What `GET /api/metadata` said, read once; forgotten on a re-login or a lost connection
    /// (the server may have been upgraded), so the next call reads it again.
    version: std::sync::RwLock<Option<ServerVersion>>,
    observer: Option<std::sync::Arc<dyn RequestObserver>>,
    /// Listings of apps by name shared by this client's callers, and the clock of its app writes.
    lists: AppLists,
}

impl std::fmt::Debug for ToolJetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolJetClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("workspace", &self.workspace_opt())
            .finish_non_exhaustive()
    }
}

/// A request ready to send (and to send again after a re-login).
pub(super) struct Call<'a> {
    method: Method,
    route: &'static str,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<&'a Value>,
    /// A body already serialised (an import carrying the bundle's bytes as git holds them).
    raw_body: Option<Vec<u8>>,
    /// The `tooljet_version` of an imported bundle, for the "newer than the server" error.
    bundle_version: Option<String>,
    /// Creates, renames, releases or deletes an app: shared listings made before it ended are
    /// not reused ([`AppLists`]).
    changes_apps: bool,
}

impl<'a> Call<'a> {
    pub(super) fn new(method: Method, route: &'static str, path: impl Into<String>) -> Self {
        Call {
            method,
            route,
            path: path.into(),
            query: Vec::new(),
            body: None,
            raw_body: None,
            bundle_version: None,
            changes_apps: false,
        }
    }
    fn changes_apps(mut self) -> Self {
        self.changes_apps = true;
        self
    }
    pub(super) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
    /// The route template, for errors.
    pub(super) fn route_name(&self) -> &'static str {
        self.route
    }
    pub(super) fn body(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }
    fn raw_body(mut self, body: Vec<u8>, bundle_version: Option<String>) -> Self {
        self.raw_body = Some(body);
        self.bundle_version = bundle_version;
        self
    }
}

impl ToolJetClient {
    /// Builds a client; checks the configuration but does not contact ToolJet
    /// (see [`ToolJetClient::check`]).
    pub fn new(config: ClientConfig) -> Result<Self, ToolJetError> {
        // reqwest is built without a crypto provider; ring is the process-wide one.
        // Err means one is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let base = Url::parse(config.base_url.trim())
            .map_err(|e| ToolJetError::Config(format!("base_url is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ToolJetError::Config(
                "base_url must start with http:// or https://".into(),
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ToolJetError::Config(
                "base_url must not carry credentials; use the auth settings".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ToolJetError::Config(
                "base_url must not have a query or fragment".into(),
            ));
        }
        let workspace = config
            .workspace_id
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string);
        if workspace.is_none() && !matches!(config.auth, Auth::Password { .. }) {
            return Err(ToolJetError::Config(format!(
                "the {} mode needs a workspace id",
                config.auth.mode()
            )));
        }
        if config.auth.secret().is_empty() {
            return Err(ToolJetError::Config(format!(
                "the {} mode needs a non-empty secret",
                config.auth.mode()
            )));
        }

        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // Redirects could carry the admin key header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tooljet-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
                ToolJetError::Config("ca_pem is not a valid PEM certificate bundle".into())
            })?;
            if certs.is_empty() {
                return Err(ToolJetError::Config(
                    "ca_pem holds no PEM certificate".into(),
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        if config.insecure_skip_verify {
            tracing::warn!(base = %base, "TLS certificate verification is off for ToolJet");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| ToolJetError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ToolJetClient {
            http,
            base,
            auth: config.auth,
            workspace: std::sync::RwLock::new(workspace),
            session: tokio::sync::Mutex::new(None),
            version: std::sync::RwLock::new(None),
            observer: None,
            lists: AppLists::new(config.reuse_app_lists),
        })
    }

    /// Reports every request this client makes to `observer`.
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub(super) fn workspace_opt(&self) -> Option<String> {
        self.workspace
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn workspace(&self, route: &'static str) -> Result<String, ToolJetError> {
        self.workspace_opt()
            .ok_or_else(|| ToolJetError::InvalidResponse {
                route,
                detail: "no workspace id is known after logging in".into(),
            })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// Replaces the configured secret wherever a server echoed it.
    fn scrub(&self, text: &str) -> String {
        let secret = self.auth.secret();
        let mut out = if secret.is_empty() {
            text.to_string()
        } else {
            text.replace(secret, "<redacted>")
        };
        if out.len() > MAX_DETAIL {
            let mut end = MAX_DETAIL;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push('…');
        }
        out
    }

    pub(super) fn ext_only(&self) -> bool {
        matches!(self.auth, Auth::ExternalToken(_))
    }

    pub(super) fn unsupported(&self, operation: &'static str) -> ToolJetError {
        ToolJetError::Unsupported {
            operation,
            mode: self.auth.mode(),
        }
    }

    // ---- plumbing -------------------------------------------------------------------

    fn auth_headers(&self, session: Option<&str>) -> Result<HeaderMap, ToolJetError> {
        let mut headers = HeaderMap::new();
        let sensitive = |v: String| {
            HeaderValue::from_str(&v)
                .map(|mut h| {
                    h.set_sensitive(true);
                    h
                })
                .map_err(|_| {
                    ToolJetError::Config(format!(
                        "the {} contains characters not allowed in an HTTP header",
                        self.auth.mode()
                    ))
                })
        };
        let workspace = self.workspace_opt();
        match &self.auth {
            Auth::Password { .. } => {
                if let Some(token) = session {
                    headers.insert(
                        reqwest::header::COOKIE,
                        sensitive(format!("{SESSION_COOKIE}={token}"))?,
                    );
                }
            }
            Auth::AdminApiKey(key) => {
                headers.insert(ADMIN_KEY_HEADER, sensitive(key.clone())?);
            }
            Auth::ExternalToken(token) => {
                // The literal token, not base64 (contract §2).
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    sensitive(format!("Basic {token}"))?,
                );
            }
        }
        if let (Some(ws), false) = (workspace, self.ext_only()) {
            let value = HeaderValue::from_str(&ws).map_err(|_| {
                ToolJetError::Config("the workspace id is not a valid header value".into())
            })?;
            headers.insert(WORKSPACE_HEADER, value);
        }
        Ok(headers)
    }

    /// Sends once; returns status, headers and body, or a transport error.
    async fn send(
        &self,
        call: &Call<'_>,
        headers: HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ToolJetError> {
        let span = tracing::debug_span!(
            "tooljet_request",
            method = %call.method,
            route = call.route,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let mut req = self
            .http
            .request(call.method.clone(), self.url(&call.path))
            .headers(headers);
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let result = async {
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>((status, headers, bytes))
        }
        .instrument(span.clone())
        .await;
        let took = started.elapsed();
        if let Some(observer) = &self.observer {
            let status = result.as_ref().ok().map(|(s, _, _)| s.as_u16());
            observer.request_finished(call.route, status, took);
        }
        let duration_ms = took.as_millis() as u64;
        span.record("duration_ms", duration_ms);
        let _entered = span.enter();
        match result {
            Ok((status, headers, bytes)) => {
                span.record("status", status.as_u16());
                tracing::debug!(
                    method = %call.method,
                    route = call.route,
                    status = status.as_u16(),
                    duration_ms,
                    "tooljet request"
                );
                Ok((status, headers, bytes))
            }
            Err(e) => {
                let err = transport_error(call.route, &e);
                // Reconnecting may reach another (upgraded) server: read its version again.
                self.forget_version();
                tracing::debug!(
                    method = %call.method,
                    route = call.route,
                    duration_ms,
                    error = %err,
                    "tooljet request failed"
                );
                Err(err)
            }
        }
    }

    /// Sends a call with authentication, logging in again once on a 401 in
    /// password mode, and maps failures to [`ToolJetError`].
    pub(super) async fn execute(&self, call: Call<'_>) -> Result<Vec<u8>, ToolJetError> {
        let _app_write = call.changes_apps.then(|| self.lists.write_guard());
        let body = match (&call.raw_body, call.body) {
            (Some(raw), _) => Some(raw.clone()),
            (None, Some(v)) => Some(serde_json::to_vec(v).map_err(|e| {
                ToolJetError::Config(format!("the request body cannot be serialised: {e}"))
            })?),
            (None, None) => None,
        };
        let password_mode = matches!(self.auth, Auth::Password { .. });
        let mut token = if password_mode {
            Some(self.session_token(None).await?)
        } else {
            None
        };
        let mut relogged = false;
        loop {
            let headers = self.auth_headers(token.as_deref())?;
            let (status, _, bytes) = self.send(&call, headers, body.as_deref()).await?;
            if status.is_success() {
                return Ok(bytes);
            }
            if status == StatusCode::UNAUTHORIZED && password_mode && !relogged {
                // The session may have expired: log in once more, then give up.
                tracing::debug!(route = call.route, "session refused; logging in again");
                relogged = true;
                token = Some(self.session_token(token.as_deref()).await?);
                continue;
            }
            return Err(self.status_error(
                call.route,
                status,
                &bytes,
                call.bundle_version.as_deref(),
            ));
        }
    }

    pub(super) async fn execute_json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<T, ToolJetError> {
        let route = call.route;
        let bytes = self.execute(call).await?;
        serde_json::from_slice(&bytes).map_err(|e| ToolJetError::InvalidResponse {
            route,
            detail: format!("cannot read the JSON answer: {e}"),
        })
    }

    /// The current session token; logs in when there is none or when the
    /// current one is `stale` (refused by the server).
    async fn session_token(&self, stale: Option<&str>) -> Result<String, ToolJetError> {
        let mut session = self.session.lock().await;
        match (&*session, stale) {
            (Some(current), Some(stale)) if current != stale => return Ok(current.clone()),
            (Some(current), None) => return Ok(current.clone()),
            _ => {}
        }
        if stale.is_some() {
            // A refused session may mean a restarted (upgraded) server.
            self.forget_version();
        }
        let token = self.login_request().await?;
        *session = Some(token.clone());
        Ok(token)
    }

    async fn login_request(&self) -> Result<String, ToolJetError> {
        let Auth::Password { email, password } = &self.auth else {
            return Err(self.unsupported("password login"));
        };
        let (route, path) = match self.workspace_opt() {
            Some(ws) => (
                "POST /api/authenticate/:workspaceId",
                format!("/api/authenticate/{ws}"),
            ),
            None => ("POST /api/authenticate", "/api/authenticate".to_string()),
        };
        let body = serde_json::to_vec(&json!({"email": email, "password": password}))
            .map_err(|e| ToolJetError::Config(format!("cannot encode the login: {e}")))?;
        let call = Call::new(Method::POST, route, path);
        let (status, headers, bytes) = self.send(&call, HeaderMap::new(), Some(&body)).await?;
        if !status.is_success() {
            return Err(self.status_error(route, status, &bytes, None));
        }
        let token = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == SESSION_COOKIE)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ToolJetError::InvalidResponse {
                route,
                detail: format!("the login set no {SESSION_COOKIE} cookie"),
            })?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut workspace = self.workspace.write().unwrap_or_else(|p| p.into_inner());
        if workspace.is_none() {
            match answer
                .get("current_organization_id")
                .and_then(Value::as_str)
            {
                Some(ws) => *workspace = Some(ws.to_string()),
                None => {
                    return Err(ToolJetError::InvalidResponse {
                        route,
                        detail: "the login answer has no current_organization_id".into(),
                    });
                }
            }
        }
        tracing::debug!(route, "logged in to ToolJet");
        Ok(token)
    }

    fn status_error(
        &self,
        route: &'static str,
        status: StatusCode,
        body: &[u8],
        bundle_version: Option<&str>,
    ) -> ToolJetError {
        let message = nest_message(body);
        let detail = self.scrub(&message);
        let lower = message.to_lowercase();
        let code = status.as_u16();
        match code {
            400 | 409 if lower.contains("app name is already taken") => {
                ToolJetError::NameTaken { route }
            }
            400 | 409 if lower.contains("slug is already taken") => {
                ToolJetError::SlugTaken { route }
            }
            400 if lower.contains("later versions of tooljet") => {
                let bundle_version = bundle_version.unwrap_or("(unknown)");
                ToolJetError::BundleNewerThanServer {
                    route,
                    bundle_version: self.scrub(bundle_version),
                    server_version: self
                        .known_server_version()
                        .map_or_else(|| "unknown".into(), |v| v.raw),
                }
            }
            401 => ToolJetError::Unauthorized {
                route,
                mode: self.auth.mode(),
                detail: match self.auth {
                    Auth::AdminApiKey(_) => format!(
                        "{detail}; ToolJet 2.x has no admin API key: use password auth with it"
                    ),
                    _ => detail,
                },
            },
            403 => ToolJetError::Forbidden {
                route,
                mode: self.auth.mode(),
                detail,
            },
            404 if is_route_missing(&message) => ToolJetError::RouteMissing { route, detail },
            404 => ToolJetError::NotFound { route, detail },
            451 => ToolJetError::PlanLimit { route, detail },
            // 2.x answers an unknown constant, data source or environment with a 500 from its
            // ORM (K28, K29, D23, D24): not a passing fault, so not worth retrying.
            500 if lower.contains("constant not found")
                || lower.starts_with("could not find any entity of type") =>
            {
                ToolJetError::NotFound { route, detail }
            }
            408 | 429 | 500..=599 => ToolJetError::Transient {
                route,
                kind: TransientKind::Status(code),
            },
            300..=399 => ToolJetError::Rejected {
                route,
                status: code,
                detail: "the server redirected; set base_url to the final address".into(),
            },
            _ => ToolJetError::Rejected {
                route,
                status: code,
                detail,
            },
        }
    }

    // ---- endpoints -------------------------------------------------------------------

    /// Checks that ToolJet answers and accepts the credentials, and (except with the external
    /// API token, which cannot read it) that the server's version is supported; returns the
    /// workspace id. The version is then known: [`ToolJetClient::known_server_version`].
    pub async fn check(&self) -> Result<String, ToolJetError> {
        let workspace = match &self.auth {
            Auth::Password { .. } => {
                let token = self.login_request().await?;
                *self.session.lock().await = Some(token);
                self.workspace("POST /api/authenticate")?
            }
            Auth::AdminApiKey(_) => {
                self.environments().await?;
                self.workspace("GET /api/app-environments")?
            }
            Auth::ExternalToken(_) => {
                self.ext_list().await?;
                return self.workspace("GET /api/ext/workspace/:workspaceId/apps");
            }
        };
        self.family().await?;
        Ok(workspace)
    }

    /// The server's version from `GET /api/metadata`, read once per client (again after a
    /// re-login or a lost connection). Not offered to the external API token.
    pub async fn server_version(&self) -> Result<ServerVersion, ToolJetError> {
        if let Some(v) = self.known_server_version() {
            return Ok(v);
        }
        if self.ext_only() {
            return Err(self.unsupported("reading the server version"));
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            installed_version: Option<String>,
        }
        let route = "GET /api/metadata";
        let call = Call::new(Method::GET, route, "/api/metadata");
        let answer: Metadata = self.execute_json(call).await?;
        let raw = answer
            .installed_version
            .ok_or_else(|| ToolJetError::InvalidResponse {
                route,
                detail: "the answer has no installed_version".into(),
            })?;
        // The text ends up in messages and status: never let it carry the secret.
        let raw = self.scrub(&raw);
        let version =
            ServerVersion::parse(&raw).ok_or_else(|| ToolJetError::UnsupportedServerVersion {
                version: format!("{raw:?}"),
                detail: "GET /api/metadata answers a version that cannot be read as x.y.z".into(),
            })?;
        tracing::debug!(version = %version, "ToolJet server version");
        *self.version.write().unwrap_or_else(|p| p.into_inner()) = Some(version.clone());
        Ok(version)
    }

    /// The server version if this client has read it (no request).
    pub fn known_server_version(&self) -> Option<ServerVersion> {
        self.version
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn forget_version(&self) {
        *self.version.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The route family of the server; an error for versions the client does not know.
    pub async fn family(&self) -> Result<Family, ToolJetError> {
        let version = self.server_version().await?;
        version
            .family()
            .ok_or_else(|| ToolJetError::UnsupportedServerVersion {
                version: version.raw.clone(),
                detail: if version.major <= 2 {
                    "older than 2.27, whose routes were checked".into()
                } else {
                    "a major version newer than 3, whose routes are unknown".into()
                },
            })
    }

    /// Logs in (password mode) or checks the credentials; same as [`ToolJetClient::check`].
    pub async fn login(&self) -> Result<String, ToolJetError> {
        self.check().await
    }

    /// Front-end apps whose name is exactly `name` (ToolJet trims names).
    pub async fn find_apps_by_name(&self, name: &str) -> Result<Vec<AppSummary>, ToolJetError> {
        let name = name.trim();
        let apps = self.list_apps_matching(name).await?;
        Ok(apps.into_iter().filter(|a| a.name == name).collect())
    }

    /// Front-end apps whose name contains `text` (case-insensitive), all pages.
    pub async fn list_apps_matching(&self, text: &str) -> Result<Vec<AppSummary>, ToolJetError> {
        if self.ext_only() {
            return self.ext_list_matching(text).await;
        }
        let mut all: Vec<AppSummary> = Vec::new();
        for page in 1..=MAX_PAGES {
            let got = self.list_page(text, page).await?;
            let n = got.apps.len();
            for app in got.apps {
                // Pages can shift while apps are created: keep each id once.
                if !all.iter().any(|a| a.id == app.id) {
                    all.push(app);
                }
            }
            // Trust the server's total when it gives one; the page size otherwise.
            let done = match got.meta.total_count {
                Some(total) => n == 0 || all.len() >= total,
                None => n < PAGE_SIZE,
            };
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// One page of [`ToolJetClient::list_apps_matching`].
    async fn list_page(&self, text: &str, page: usize) -> Result<AppPage, ToolJetError> {
        let call = Call::new(Method::GET, "GET /api/apps", "/api/apps")
            .query("page", page.to_string())
            .query("searchKey", text)
            .query("type", "front-end");
        self.execute_json(call).await
    }

    /// Like [`ToolJetClient::list_apps_matching`], from a listing shared by this client's callers:
    /// reused within `reuse_app_lists` of [`ClientConfig`], and never when it started before an
    /// app write of this client ended, so it always shows what this client's writes did.
    ///
    /// `None` when the matches do not fit in one answer (more than one page): a listing of several
    /// pages is no snapshot while apps are created, renamed and deleted (an app leaving a page
    /// already read moves one of the next page onto it, unseen), so it is neither trusted nor
    /// shared, and callers search more narrowly. One page is one query on ToolJet's side.
    pub async fn list_apps_matching_shared(
        &self,
        text: &str,
    ) -> Result<Option<std::sync::Arc<Vec<AppSummary>>>, ToolJetError> {
        self.lists
            .get_or_list(text, || self.list_in_one_answer(text))
            .await
    }

    /// The matches when one answer holds them all; `None` otherwise (one request either way).
    async fn list_in_one_answer(
        &self,
        text: &str,
    ) -> Result<Option<Vec<AppSummary>>, ToolJetError> {
        if self.ext_only() {
            // The external API lists the whole workspace in one answer.
            return self.ext_list_matching(text).await.map(Some);
        }
        let first = self.list_page(text, 1).await?;
        let complete = match first.meta.total_count {
            Some(total) => first.apps.len() >= total,
            None => first.apps.len() < PAGE_SIZE,
        };
        Ok(complete.then_some(first.apps))
    }

    /// Makes every shared listing stale: the next [`ToolJetClient::list_apps_matching_shared`]
    /// lists again, as after an app write of this client.
    pub fn forget_shared_listings(&self) {
        self.lists.forget();
    }

    async fn ext_list_matching(&self, text: &str) -> Result<Vec<AppSummary>, ToolJetError> {
        let needle = text.to_lowercase();
        let apps = self.ext_list().await?;
        Ok(apps
            .into_iter()
            .filter(|a| a.name.to_lowercase().contains(&needle))
            .collect())
    }

    async fn ext_list(&self) -> Result<Vec<AppSummary>, ToolJetError> {
        let route = "GET /api/ext/workspace/:workspaceId/apps";
        let ws = self.workspace(route)?;
        let call = Call::new(Method::GET, route, format!("/api/ext/workspace/{ws}/apps"));
        let answer: Value = self.execute_json(call).await?;
        // Some builds wrap the array as {apps, total}.
        let list = match &answer {
            Value::Array(items) => items.clone(),
            Value::Object(o) => match o.get("apps") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if !answer.is_array() && !answer.get("apps").is_some_and(Value::is_array) {
            return Err(ToolJetError::InvalidResponse {
                route,
                detail: "expected an array of apps".into(),
            });
        }
        list.into_iter()
            .map(|item| {
                let field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
                Ok(AppSummary {
                    id: field("id").ok_or_else(|| ToolJetError::InvalidResponse {
                        route,
                        detail: "an app has no id".into(),
                    })?,
                    name: field("name").unwrap_or_default(),
                    slug: field("slug").unwrap_or_default(),
                    current_version_id: field("currentVersionId"),
                    updated_at: field("updatedAt"),
                })
            })
            .collect()
    }

    /// One app with its editing version.
    pub async fn get_app(&self, id: &str) -> Result<AppDetails, ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("reading an app"));
        }
        let call = Call::new(
            Method::GET,
            "GET /api/apps/:id",
            format!("/api/apps/{}", seg(id)),
        );
        self.execute_json(call).await
    }

    /// Refuses, before any write, a bundle whose `tooljet_version` is newer than the server's
    /// `installed_version`, as ToolJet 3.x refuses it on import. ToolJet 2.x has no such check
    /// and imports anything, so the operator checks on both families. A bundle without a
    /// version (old exports), or with one that cannot be read as `x.y.z`, is left to ToolJet;
    /// so is every bundle for the external API token, which cannot read the server's version.
    pub async fn check_bundle_version(&self, bundle: &[u8]) -> Result<(), ToolJetError> {
        if self.ext_only() {
            return Ok(());
        }
        let Some(text) = RawBundle::parse(bundle)?.version_text() else {
            return Ok(());
        };
        let Some(bundle_version) = ServerVersion::parse(&text) else {
            tracing::debug!("the bundle's tooljet_version cannot be read; left to ToolJet");
            return Ok(());
        };
        let server = self.server_version().await?;
        let key = |v: &ServerVersion| (v.major, v.minor, v.patch);
        if key(&bundle_version) > key(&server) {
            return Err(ToolJetError::BundleNewerThanServer {
                route: "POST /api/v2/resources/import",
                bundle_version: self.scrub(&text),
                server_version: server.raw,
            });
        }
        Ok(())
    }

    /// Imports a full export bundle under `app_name`; see [`ToolJetClient::import_bundle`].
    pub async fn import_app(
        &self,
        bundle: &Value,
        app_name: &str,
    ) -> Result<ImportedApp, ToolJetError> {
        let bytes = serde_json::to_vec(bundle)
            .map_err(|e| ToolJetError::Config(format!("the bundle cannot be serialised: {e}")))?;
        self.import_bundle(&bytes, app_name).await
    }

    /// Imports an export bundle, as the bytes git holds, under `app_name`. The bundle's
    /// `app[0].definition`, `tooljet_version` and `tooljet_database` are sent byte for byte as
    /// they are in `bundle` (numbers, escapes and key order untouched): what git holds is what
    /// ToolJet gets.
    pub async fn import_bundle(
        &self,
        bundle: &[u8],
        app_name: &str,
    ) -> Result<ImportedApp, ToolJetError> {
        let route = if self.ext_only() {
            "POST /api/ext/import/workspace/:workspaceId/apps"
        } else {
            "POST /api/v2/resources/import"
        };
        let parts = RawBundle::parse(bundle)?;
        let name = app_name.trim();
        if name.is_empty() {
            return Err(ToolJetError::Config("the app name is empty".into()));
        }
        let bundle_version = parts.version_text();
        let ws = self.workspace_opt();
        if self.ext_only() {
            let ws = self.workspace(route)?;
            let body = encode(&ExtImportBody {
                app: [ExtImportEntry {
                    definition: parts.definition,
                }],
                app_name: name,
                tooljet_version: parts.tooljet_version,
            })?;
            check_body_size(route, &body)?;
            let call = Call::new(
                Method::POST,
                route,
                format!("/api/ext/import/workspace/{}/apps", seg(&ws)),
            )
            .raw_body(body, bundle_version)
            .changes_apps();
            self.execute(call).await?;
            // The external API answers without an id: find the app by name.
            let mut found = self.find_apps_by_name(name).await?;
            return match found.len() {
                1 => {
                    let app = found.remove(0);
                    Ok(ImportedApp {
                        id: app.id,
                        name: app.name,
                    })
                }
                n => Err(ToolJetError::InvalidResponse {
                    route,
                    detail: format!("after the import, {n} apps carry the name"),
                }),
            };
        }
        // Password mode learns the workspace at login.
        let ws = match ws {
            Some(ws) => ws,
            None => self.check().await?,
        };
        let body = encode(&ImportBody {
            organization_id: &ws,
            tooljet_version: parts.tooljet_version,
            app: [ImportEntry {
                definition: parts.definition,
                app_name: name,
            }],
            tooljet_database: parts.tooljet_database,
        })?;
        check_body_size(route, &body)?;
        let call = Call::new(Method::POST, route, "/api/v2/resources/import")
            .raw_body(body, bundle_version)
            .changes_apps();
        let answer: Value = self.execute_json(call).await?;
        let app = answer.pointer("/imports/app/0").cloned().ok_or_else(|| {
            ToolJetError::InvalidResponse {
                route,
                detail: "the answer has no imports.app[0]".into(),
            }
        })?;
        serde_json::from_value(app).map_err(|e| ToolJetError::InvalidResponse {
            route,
            detail: format!("imports.app[0] is not {{id, name}}: {e}"),
        })
    }

    /// The export bundle of an app (of `version_id`, or the editing version).
    pub async fn export_app(
        &self,
        id: &str,
        version_id: Option<&str>,
    ) -> Result<Value, ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("exporting an app"));
        }
        let route = "POST /api/v2/resources/export";
        let ws = match self.workspace_opt() {
            Some(ws) => ws,
            None => self.check().await?,
        };
        let mut app = json!({"id": id});
        if let Some(v) = version_id {
            app["search_params"] = json!({"version_id": v});
        }
        let body = json!({"organization_id": ws, "app": [app]});
        let call = Call::new(Method::POST, route, "/api/v2/resources/export").body(&body);
        let answer: Value = match self.execute_json(call).await {
            Ok(answer) => answer,
            // ToolJet 2.x answers 500 for an app that does not exist: tell that apart.
            Err(
                e @ ToolJetError::Transient {
                    kind: TransientKind::Status(500),
                    ..
                },
            ) => {
                return match self.get_app(id).await {
                    Err(not_found @ ToolJetError::NotFound { .. }) => Err(not_found),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        if answer.pointer("/app/0/definition").is_none() {
            return Err(ToolJetError::InvalidResponse {
                route,
                detail: "the answer has no app[0].definition".into(),
            });
        }
        Ok(answer)
    }

    /// Renames an app and/or changes its slug.
    pub async fn update_app(&self, id: &str, update: &AppUpdate) -> Result<(), ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("updating an app"));
        }
        let body = json!({ "app": update });
        let call = Call::new(
            Method::PUT,
            "PUT /api/apps/:id",
            format!("/api/apps/{}", seg(id)),
        )
        .body(&body)
        .changes_apps();
        self.execute(call).await.map(drop)
    }

    pub async fn delete_app(&self, id: &str) -> Result<(), ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("deleting an app"));
        }
        let call = Call::new(
            Method::DELETE,
            "DELETE /api/apps/:id",
            format!("/api/apps/{}", seg(id)),
        )
        .changes_apps();
        self.execute(call).await.map(drop)
    }

    /// Makes `version_id` the version end users see, with the route of the server's family
    /// (3.x: `PUT /apps/:id/release`; 2.x: `PUT /apps/:id {app:{current_version_id}}`), then
    /// reads the app back: the release only counts when `current_version_id` is `version_id`
    /// ([`ToolJetError::ReleaseNotApplied`] otherwise). Returns the app as read back.
    pub async fn release_app(
        &self,
        id: &str,
        version_id: &str,
    ) -> Result<AppDetails, ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("releasing an app"));
        }
        let call = match self.family().await? {
            Family::V3 => {
                let body = json!({ "versionToBeReleased": version_id });
                Call::new(
                    Method::PUT,
                    "PUT /api/apps/:id/release",
                    format!("/api/apps/{}/release", seg(id)),
                )
                .raw_body(encode(&body)?, None)
                .changes_apps()
            }
            Family::V2 => {
                let body = json!({ "app": { "current_version_id": version_id } });
                Call::new(
                    Method::PUT,
                    "PUT /api/apps/:id",
                    format!("/api/apps/{}", seg(id)),
                )
                .raw_body(encode(&body)?, None)
                .changes_apps()
            }
        };
        self.execute(call).await?;
        let app = self.get_app(id).await?;
        if app.current_version_id.as_deref() != Some(version_id) {
            return Err(ToolJetError::ReleaseNotApplied {
                app_id: id.to_string(),
                version_id: version_id.to_string(),
                found: app
                    .current_version_id
                    .clone()
                    .unwrap_or_else(|| "none".into()),
            });
        }
        Ok(app)
    }

    /// The workspace's global data sources (static built-ins are never listed): 2.x
    /// `GET /api/v2/data_sources`, 3.x `GET /api/data-sources/:workspaceId`.
    pub async fn data_sources(&self) -> Result<Vec<DataSource>, ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("listing data sources"));
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Answer {
            Wrapped { data_sources: Vec<DataSource> },
            Bare(Vec<DataSource>),
        }
        let call = match self.family().await? {
            Family::V2 => Call::new(
                Method::GET,
                "GET /api/v2/data_sources",
                "/api/v2/data_sources",
            ),
            Family::V3 => {
                let route = "GET /api/data-sources/:workspaceId";
                let ws = match self.workspace_opt() {
                    Some(ws) => ws,
                    None => self.check().await?,
                };
                Call::new(
                    Method::GET,
                    route,
                    format!("/api/data-sources/{}", seg(&ws)),
                )
            }
        };
        Ok(match self.execute_json::<Answer>(call).await? {
            Answer::Wrapped { data_sources } | Answer::Bare(data_sources) => data_sources,
        })
    }

    /// Creates a global data source (`scope: "global"`, tied to no app version) with `options`;
    /// 2.x `POST /api/v2/data_sources`, 3.x `POST /api/data-sources`. Returns its id.
    pub async fn create_data_source(
        &self,
        name: &str,
        kind: &str,
        options: &[DataSourceOption],
    ) -> Result<String, ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("creating data sources"));
        }
        let body = json!({"name": name, "kind": kind, "options": options, "scope": "global"});
        self.post_data_source(&body, &[]).await
    }

    /// Frees a data source from the app version that created it (`app_version_id` null,
    /// `scope: "global"`), so deleting that app no longer deletes it: 2.x
    /// `POST /api/v2/data_sources/:id/scope`, 3.x `POST /api/data-sources/:id/scope`.
    pub async fn make_data_source_global(&self, id: &str) -> Result<(), ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("changing data sources"));
        }
        let call = match self.family().await? {
            Family::V2 => Call::new(
                Method::POST,
                "POST /api/v2/data_sources/:id/scope",
                format!("/api/v2/data_sources/{}/scope", seg(id)),
            ),
            Family::V3 => Call::new(
                Method::POST,
                "POST /api/data-sources/:id/scope",
                format!("/api/data-sources/{}/scope", seg(id)),
            ),
        };
        self.execute(call).await.map(drop)
    }

    pub async fn environments(&self) -> Result<Vec<Environment>, ToolJetError> {
        if self.ext_only() {
            return Err(self.unsupported("listing environments"));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            environments: Vec<Environment>,
        }
        let call = Call::new(
            Method::GET,
            "GET /api/app-environments",
            "/api/app-environments",
        );
        Ok(self.execute_json::<Answer>(call).await?.environments)
    }
}

/// ToolJet's request body limit (`limit: 52428800` in its body parser).
pub const MAX_REQUEST_BODY: usize = 50 * 1024 * 1024;

/// Refuses an import body over ToolJet's limit before sending it.
fn check_body_size(route: &'static str, body: &[u8]) -> Result<(), ToolJetError> {
    if body.len() > MAX_REQUEST_BODY {
        return Err(ToolJetError::BodyTooLarge {
            route,
            size: body.len(),
            limit: MAX_REQUEST_BODY,
        });
    }
    Ok(())
}

/// The parts of an export bundle an import sends, borrowed verbatim from the bundle's bytes.
#[derive(serde::Deserialize)]
struct RawBundle<'a> {
    #[serde(borrow)]
    app: Vec<RawBundleApp<'a>>,
    #[serde(borrow, default)]
    tooljet_version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tooljet_database: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct RawBundleApp<'a> {
    #[serde(borrow, default)]
    definition: Option<&'a RawValue>,
}

/// The parts of a bundle to import: exactly one app's definition, and the optional rest.
struct BundleParts<'a> {
    definition: &'a RawValue,
    tooljet_version: Option<&'a RawValue>,
    tooljet_database: Option<&'a RawValue>,
}

impl<'a> RawBundle<'a> {
    fn parse(bytes: &'a [u8]) -> Result<BundleParts<'a>, ToolJetError> {
        let shape = || {
            ToolJetError::Config(
                "the bundle must hold exactly one app with a definition (app[0].definition)".into(),
            )
        };
        let bundle: RawBundle<'a> = serde_json::from_slice(bytes).map_err(|_| shape())?;
        let definition = match bundle.app.as_slice() {
            [one] => one.definition.ok_or_else(shape)?,
            _ => return Err(shape()),
        };
        Ok(BundleParts {
            definition,
            tooljet_version: bundle.tooljet_version,
            tooljet_database: bundle.tooljet_database,
        })
    }
}

impl BundleParts<'_> {
    /// `tooljet_version` as text, when it is a string.
    fn version_text(&self) -> Option<String> {
        self.tooljet_version
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
    }
}

#[derive(serde::Serialize)]
struct ImportBody<'a> {
    organization_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tooljet_version: Option<&'a RawValue>,
    app: [ImportEntry<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    tooljet_database: Option<&'a RawValue>,
}

#[derive(serde::Serialize)]
struct ImportEntry<'a> {
    definition: &'a RawValue,
    #[serde(rename = "appName")]
    app_name: &'a str,
}

#[derive(serde::Serialize)]
struct ExtImportBody<'a> {
    app: [ExtImportEntry<'a>; 1],
    #[serde(rename = "appName")]
    app_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tooljet_version: Option<&'a RawValue>,
}

#[derive(serde::Serialize)]
struct ExtImportEntry<'a> {
    definition: &'a RawValue,
}

fn encode<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ToolJetError> {
    serde_json::to_vec(body)
        .map_err(|e| ToolJetError::Config(format!("the import body cannot be serialised: {e}")))
}

/// Percent-encodes a path segment, so an id cannot change the route.
pub(super) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Whether a 404's message is NestJS's "no such route" (`Cannot PUT /api/apps/…/release`),
/// as opposed to a missing app or version.
fn is_route_missing(message: &str) -> bool {
    let mut words = message.split_whitespace();
    words.next() == Some("Cannot")
        && words.next().is_some_and(|m| {
            matches!(
                m,
                "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
            )
        })
        && words.next().is_some_and(|p| p.starts_with('/'))
}

/// The `message` of a NestJS error body (a string or a list), else the raw text.
fn nest_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(body).into_owned(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Sorts a transport failure into TLS (a setup problem) or transient kinds.
fn transport_error(route: &'static str, e: &reqwest::Error) -> ToolJetError {
    let mut io_kind = None;
    // io::Error::source skips the error it wraps, and hyper nests io errors,
    // so walk both the source chain and the wrapped errors.
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(err) = pending.pop() {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return ToolJetError::Tls {
                detail: tls.to_string(),
            };
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() != std::io::ErrorKind::Other {
                io_kind.get_or_insert(io.kind());
            }
            if let Some(inner) = io.get_ref() {
                pending.push(inner);
            }
        }
        if let Some(next) = err.source() {
            pending.push(next);
        }
    }
    use std::io::ErrorKind as K;
    let kind = if e.is_timeout() {
        TransientKind::Timeout
    } else if io_kind == Some(K::ConnectionRefused) {
        TransientKind::ConnectionRefused
    } else if e.is_connect() {
        match io_kind {
            Some(K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe) => {
                TransientKind::ConnectionClosed
            }
            _ => TransientKind::ConnectFailed,
        }
    } else {
        TransientKind::ConnectionClosed
    };
    ToolJetError::Transient { route, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_missing_is_told_apart_from_a_missing_app() {
        assert!(is_route_missing("Cannot PUT /api/apps/e95c8799/release"));
        assert!(is_route_missing("Cannot GET /api/ext/workspace/w/apps"));
        assert!(!is_route_missing("App not found. Invalid app id"));
        assert!(!is_route_missing("Cannot find the app"));
        assert!(!is_route_missing(
            "Cannot read properties of undefined (reading 'id')"
        ));
    }

    #[test]
    fn error_messages_of_both_shapes() {
        let two = br#"{"statusCode":400,"timestamp":"t","path":"/api/apps/x","message":["Maximum length has been reached.","another"]}"#;
        assert_eq!(
            nest_message(two),
            "Maximum length has been reached.; another"
        );
        let one =
            br#"{"statusCode":409,"message":"This app slug is already taken.","error":"Conflict"}"#;
        assert_eq!(nest_message(one), "This app slug is already taken.");
        assert_eq!(
            nest_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
