use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use base64::Engine;
use tokio::io::AsyncWriteExt;

use crate::util::git_exec_path;

/// Smart HTTP git server: each request runs `git http-backend` as a CGI program. Optional basic
/// auth answers 401 with `WWW-Authenticate` like a real host. Stopped on drop.
pub struct HttpGitServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    ref_advertisements: AtomicU64,
    upload_pack_posts: AtomicU64,
    unauthorized: AtomicU64,
}

struct Shared {
    root: PathBuf,
    backend: PathBuf,
    /// Expected `Authorization` header value, when auth is demanded.
    expected_auth: Option<String>,
    /// Pushes are refused with 403, as a host does for credentials without write access.
    read_only: bool,
    counters: Arc<Counters>,
}

impl HttpGitServer {
    /// Serves the repositories under `root` without authentication.
    pub fn start(root: &Path) -> HttpGitServer {
        Self::start_inner(root, None, false)
    }

    /// Serves the repositories under `root` with basic auth; these credentials may read but
    /// not push (receive-pack answers 403).
    pub fn start_read_only_with_basic_auth(
        root: &Path,
        username: &str,
        password: &str,
    ) -> HttpGitServer {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Self::start_inner(root, Some(format!("Basic {token}")), true)
    }

    /// Serves the repositories under `root`, demanding HTTP basic auth with these credentials.
    pub fn start_with_basic_auth(root: &Path, username: &str, password: &str) -> HttpGitServer {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Self::start_inner(root, Some(format!("Basic {token}")), false)
    }

    fn start_inner(root: &Path, expected_auth: Option<String>, read_only: bool) -> HttpGitServer {
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            backend: git_exec_path().join("git-http-backend"),
            expected_auth,
            read_only,
            counters: counters.clone(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // Own thread and runtime: works whatever runtime (or none) the test uses.
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new()
                    .fallback(handle)
                    .layer(DefaultBodyLimit::disable())
                    .with_state(shared);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        HttpGitServer {
            addr,
            counters,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<name>`
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{}", self.addr, name)
    }

    /// All requests seen.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// `GET .../info/refs?service=git-upload-pack` requests: every ref listing, and the one a
    /// fetch starts with.
    pub fn ref_advertisements(&self) -> u64 {
        self.counters.ref_advertisements.load(Ordering::SeqCst)
    }

    /// `POST .../git-upload-pack` requests: the ones that negotiate and transfer objects.
    pub fn upload_pack_posts(&self) -> u64 {
        self.counters.upload_pack_posts.load(Ordering::SeqCst)
    }

    /// Requests answered 401.
    pub fn unauthorized(&self) -> u64 {
        self.counters.unauthorized.load(Ordering::SeqCst)
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    s.counters.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(expected) = &s.expected_auth {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            s.counters.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("WWW-Authenticate", "Basic realm=\"git\"")
                .body(Body::from("authentication required\n"))
                .unwrap_or_default();
        }
    }
    let pushing = uri.path().ends_with("/git-receive-pack")
        || uri
            .query()
            .is_some_and(|q| q.contains("service=git-receive-pack"));
    if s.read_only && pushing {
        return error(StatusCode::FORBIDDEN, "write access denied\n");
    }
    if method == Method::GET
        && uri.path().ends_with("/info/refs")
        && uri.query() == Some("service=git-upload-pack")
    {
        s.counters.ref_advertisements.fetch_add(1, Ordering::SeqCst);
    }
    if method == Method::POST && uri.path().ends_with("/git-upload-pack") {
        s.counters.upload_pack_posts.fetch_add(1, Ordering::SeqCst);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = tokio::process::Command::new(&s.backend);
    cmd.env_clear()
        .env("GIT_PROJECT_ROOT", &s.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot run git http-backend",
        );
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let Ok(out) = child.wait_with_output().await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "git http-backend failed");
    };
    cgi_response(&out.stdout)
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(msg.to_string()))
        .unwrap_or_default()
}

/// Turns CGI output (headers, blank line, body) into an HTTP response.
fn cgi_response(out: &[u8]) -> Response<Body> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        });
    let Some((head_end, body_start)) = split else {
        return error(StatusCode::BAD_GATEWAY, "bad CGI output");
    };
    let head = String::from_utf8_lossy(&out[..head_end]);
    let mut builder = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok());
            if let Some(code) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                builder = builder.status(code);
            }
        } else {
            builder = builder.header(k.trim(), v);
        }
    }
    builder
        .body(Body::from(out[body_start..].to_vec()))
        .unwrap_or_default()
}
