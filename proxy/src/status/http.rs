//! The HTTP face for Prometheus and Kubernetes on `--metrics-addr`: `GET /metrics` (the text
//! format; a `shard` label per source shard of a cluster source), `/healthz` (the process is
//! alive) and `/readyz` (every stream streaming, with the byte lag under `--ready-lag`; 503
//! otherwise). A deliberately small HTTP/1.1 server: one request per
//! connection, request head capped at 8 KiB, anything else answered 404 or 405.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::metrics;
use super::shards::Streams;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Binds `addr` (an error names it) and serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Streams>,
    handle: PrometheusHandle,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on --metrics-addr {addr}: {e}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %addr, "metrics on http://{addr}/metrics (also /healthz, /readyz)");
    Ok(tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = stop.cancelled() => return,
            };
            let Ok((sock, _)) = conn else { continue };
            let (status, handle) = (status.clone(), handle.clone());
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), answer(sock, &status, &handle))
                        .await;
            });
        }
    }))
}

async fn answer(
    mut sock: TcpStream,
    streams: &Streams,
    handle: &PrometheusHandle,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return reply(
                &mut sock,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return reply(
            &mut sock,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        )
        .await;
    }
    match path {
        "/metrics" => {
            for s in streams.list() {
                metrics::update(&s.status, &s.label);
            }
            let body = handle.render();
            reply(
                &mut sock,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        "/healthz" => reply(&mut sock, "200 OK", "text/plain", "ok\n").await,
        "/readyz" => {
            // Ready when every stream is (a cluster source: every shard).
            let mut body = String::new();
            for s in streams.list() {
                let lag = s
                    .status
                    .lag_bytes()
                    .map_or("unknown".to_string(), |l| l.to_string());
                if !s.label.is_empty() {
                    body.push_str(&format!("shard {} ", s.label));
                }
                body.push_str(&format!(
                    "phase {} lag_bytes {lag}\n",
                    s.status.phase().name()
                ));
            }
            if streams.ready() {
                reply(&mut sock, "200 OK", "text/plain", &body).await
            } else {
                reply(&mut sock, "503 Service Unavailable", "text/plain", &body).await
            }
        }
        _ => reply(&mut sock, "404 Not Found", "text/plain", "not found\n").await,
    }
}

async fn reply(sock: &mut TcpStream, code: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}
