//! One HTTP/1.1 request to the operator's server on loopback (probes, webhooks), without a client
//! library: the status code (0 when nothing answers), or the body of a 200.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `method path` with extra `headers` (each ending in `\r\n`) and `body`; returns the status.
pub async fn status(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> u16 {
    exchange(addr, method, path, headers, body)
        .await
        .and_then(|answer| {
            answer
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
        })
        .unwrap_or(0)
}

/// The body of `GET path` when it answers 200 (e.g. `/metrics`), `None` otherwise.
pub async fn get_ok(addr: SocketAddr, path: &str) -> Option<String> {
    let answer = exchange(addr, "GET", path, "", "").await?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The whole answer to one request, `None` when nothing answers.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    Some(answer)
}

/// A loopback address nothing listens on (a port the system handed out, released again): for the
/// operator's server in a test.
pub fn free_loopback_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}
