//! The HTTP side of the listening port: reading a request head, the WebSocket upgrade
//! (done here, so the Origin check and the limits answer in plain HTTP before any
//! upgrade), and the few plain HTTP routes: the dialer page, its client library, and
//! `/health`.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Shared;

/// The largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers in a request head.
pub const MAX_HEADERS: usize = 64;

/// The dialer page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// The dialer page's script.
const DIALER_JS: &str = include_str!("assets/dialer.js");
/// The JavaScript client library, as built from `clients/js` (ESM).
const CLIENT_JS: &str = include_str!("../../clients/js/dist/index.js");

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    /// `GET`, …
    pub method: String,
    /// The request target, without the query.
    pub path: String,
    headers: Vec<(String, String)>,
    /// Bytes the client sent after the head.
    pub leftover: Vec<u8>,
}

/// Why a head could not be read; each maps to an HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The connection closed or failed before a whole head arrived.
    Closed,
    /// Malformed (400).
    Malformed,
    /// Over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers (431).
    TooLarge,
}

impl Head {
    /// A header's value (first occurrence, name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The bytes after the head; the rest of the head is freed.
    pub fn into_leftover(self) -> Vec<u8> {
        self.leftover
    }

    /// Whether this asks for a WebSocket upgrade.
    pub fn wants_websocket(&self) -> bool {
        self.header_has_token("upgrade", "websocket")
    }
}

/// Whether the Host header names this machine by a loopback name or address, or one of
/// the configured `allowed` hosts. Refusing other names defeats DNS rebinding: a page on
/// a name that an attacker points at 127.0.0.1 still sends its own name as Host.
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return false };
    let host = host.trim();
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") || name == "[::1]" {
        return true;
    }
    if name
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    allowed.contains(&name)
}

/// Reads one request head.
pub async fn read_head(stream: &mut TcpStream) -> Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let path = req.path.unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path).to_owned();
                return Ok(Head {
                    method: req.method.unwrap_or("").to_owned(),
                    path,
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).trim().to_owned(),
                            )
                        })
                        .collect(),
                    leftover: buf[len..].to_vec(),
                });
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(HeadError::TooLarge);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        }
    }
}

/// Writes a complete response and flushes it.
pub async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    head_only: bool,
) {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    let _ = stream.write_all(&bytes).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// A plain-text error response.
pub async fn respond_text(stream: &mut TcpStream, status: u16, text: &str) {
    respond(
        stream,
        status,
        "text/plain; charset=utf-8",
        text.as_bytes(),
        &[],
        false,
    )
    .await;
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Checks a WebSocket upgrade request and writes the `101` response; `Err` is the
/// status and text to refuse it with.
pub async fn accept_websocket(
    stream: &mut TcpStream,
    head: &Head,
) -> Result<(), (u16, &'static str)> {
    if head.method != "GET" {
        return Err((405, "a WebSocket handshake is a GET request\n"));
    }
    if !head.header_has_token("connection", "upgrade") {
        return Err((400, "the handshake lacks Connection: Upgrade\n"));
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err((426, "only WebSocket version 13 is supported\n"));
    }
    let Some(key) = head.header("sec-websocket-key").filter(|k| k.len() == 24) else {
        return Err((400, "the handshake lacks a valid Sec-WebSocket-Key\n"));
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream
        .write_all(response.as_bytes())
        .await
        .map_err(|_| (400, "write failed\n"))?;
    Ok(())
}

/// Serves a plain HTTP request (the Origin check has been made).
pub async fn serve(stream: &mut TcpStream, head: &Head, shared: &Shared) {
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        respond(
            stream,
            405,
            "text/plain; charset=utf-8",
            b"only GET and HEAD are served\n",
            &[("Allow", "GET, HEAD")],
            false,
        )
        .await;
        return;
    }
    // A page from an allowed origin may read /health (CORS); same-origin needs nothing.
    let cors: Vec<(&str, &str)> = match head.header("origin") {
        Some(o) => vec![("Access-Control-Allow-Origin", o), ("Vary", "Origin")],
        None => Vec::new(),
    };
    match head.path.as_str() {
        "/" | "/index.html" => {
            respond(
                stream,
                200,
                "text/html; charset=utf-8",
                INDEX_HTML.as_bytes(),
                &[("Content-Security-Policy", CSP)],
                head_only,
            )
            .await
        }
        "/dialer.js" => {
            respond(
                stream,
                200,
                "text/javascript; charset=utf-8",
                DIALER_JS.as_bytes(),
                &[],
                head_only,
            )
            .await
        }
        "/bapiws-client.js" => {
            respond(
                stream,
                200,
                "text/javascript; charset=utf-8",
                CLIENT_JS.as_bytes(),
                &cors,
                head_only,
            )
            .await
        }
        "/health" => {
            let body = health(shared).to_string();
            respond(
                stream,
                200,
                "application/json",
                body.as_bytes(),
                &cors,
                head_only,
            )
            .await
        }
        _ => respond_text(stream, 404, "not found; try / or /health\n").await,
    }
}

/// The dialer page may load only its own script and connect only back to this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws://127.0.0.1:* ws://localhost:* ws://[::1]:*; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn health(shared: &Shared) -> serde_json::Value {
    let mut backends = Vec::new();
    let running = shared.backends.running();
    for (name, kind) in shared.backends.instances() {
        let backend = running.iter().find(|b| *b.name == *name);
        let state = backend.map(|b| b.phone.state().as_str());
        backends.push(json!({
            "name": name,
            "kind": kind,
            "running": backend.is_some(),
            "state": state,
        }));
    }
    json!({
        "name": "bapiws",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": shared.started.elapsed().as_secs(),
        "default_backend": shared.backends.default_name(),
        "backends": backends,
        "aliases": shared.backends.aliases(),
        "connections": shared.connection_count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table() {
        let allowed = vec!["phone.example.lan".to_owned(), "192.0.2.7".to_owned()];
        let cases: &[(Option<&str>, bool)] = &[
            (Some("127.0.0.1:9898"), true),
            (Some("127.0.0.1"), true),
            (Some("127.8.9.10:9898"), true),
            (Some("localhost:9898"), true),
            (Some("LOCALHOST"), true),
            (Some("localhost.:9898"), true),
            (Some("app.localhost:9898"), true),
            (Some("[::1]:9898"), true),
            (Some("[::1]"), true),
            (Some("phone.example.lan:9898"), true),
            (Some("192.0.2.7:9898"), true),
            (None, false),
            (Some(""), false),
            (Some("evil.example:9898"), false),
            (Some("localhost.evil.example"), false),
            (Some("127.0.0.1.evil.example"), false),
            (Some("[::2]:9898"), false),
            (Some("10.0.0.1:9898"), false),
            (Some("[::1"), false),
            (Some("0.0.0.0:9898"), false),
        ];
        for (host, want) in cases {
            assert_eq!(host_allowed(*host, &allowed), *want, "{host:?}");
        }
    }
}
