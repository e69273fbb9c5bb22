//! One HTTP/1.1 request to the operator's server on loopback (probes, webhooks), without a client
//! library: the status code, or 0 when nothing answers.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `method path` with extra `headers` (each ending in `\r\n`) and `body`; returns the status.
pub async fn status(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> u16 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
