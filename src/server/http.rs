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
    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
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

/// Whether `key` is the base64 encoding of 16 bytes, as a `Sec-WebSocket-Key` must be
/// (RFC 6455 §4.1): 22 characters of the base64 alphabet, the last of which carries no
/// bits beyond the 16th byte, then `==`.
pub fn valid_websocket_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        && matches!(b[21], b'A' | b'Q' | b'g' | b'w')
}

/// Reads one request head.
pub async fn read_head(stream: &mut TcpStream) -> Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.capacity() == buf.len() {
            buf.reserve(1024);
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let path = req.path.unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path).to_owned();
                return Ok(Head {
                    method: req.method.unwrap_or("").to_owned(),
                    path,
                    minor_version: req.version.unwrap_or(0),
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
        204 => "No Content",
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

/// Why a WebSocket handshake is refused: the HTTP status, text and extra headers.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub text: &'static str,
    /// Headers the status calls for.
    pub headers: &'static [(&'static str, &'static str)],
}

impl Refusal {
    fn plain(status: u16, text: &'static str) -> Refusal {
        Refusal {
            status,
            text,
            headers: &[],
        }
    }

    /// Writes the refusal.
    pub async fn send(&self, stream: &mut TcpStream) {
        respond(
            stream,
            self.status,
            "text/plain; charset=utf-8",
            self.text.as_bytes(),
            self.headers,
            false,
        )
        .await;
    }
}

/// Checks a WebSocket upgrade request and writes the `101` response; `Err` is how to
/// refuse it.
pub async fn accept_websocket(stream: &mut TcpStream, head: &Head) -> Result<(), Refusal> {
    if head.method != "GET" {
        return Err(Refusal::plain(
            405,
            "a WebSocket handshake is a GET request\n",
        ));
    }
    if head.minor_version < 1 {
        return Err(Refusal::plain(
            400,
            "a WebSocket handshake needs HTTP/1.1 or later\n",
        ));
    }
    if !head.header_has_token("connection", "upgrade") {
        return Err(Refusal::plain(
            400,
            "the handshake lacks Connection: Upgrade\n",
        ));
    }
    if head.header("sec-websocket-version") != Some("13") {
        // RFC 6455 §4.2.2: say which version is supported.
        return Err(Refusal {
            status: 426,
            text: "only WebSocket version 13 is supported\n",
            headers: &[("Sec-WebSocket-Version", "13")],
        });
    }
    let Some(key) = head
        .header("sec-websocket-key")
        .filter(|k| valid_websocket_key(k))
    else {
        return Err(Refusal::plain(
            400,
            "the handshake lacks a valid Sec-WebSocket-Key (base64 of 16 bytes)\n",
        ));
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream
        .write_all(response.as_bytes())
        .await
        .map_err(|_| Refusal::plain(400, "write failed\n"))?;
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
        // Browsers ask for it; there is none, and saying so quietly keeps the console clean.
        "/favicon.ico" => respond(stream, 204, "image/x-icon", b"", &[], head_only).await,
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
        "/openrpc.json" => {
            respond(
                stream,
                200,
                "application/json",
                crate::protocol::openrpc::document_text().as_bytes(),
                &cors,
                head_only,
            )
            .await
        }
        _ => respond_text(stream, 404, "not found; try / or /health\n").await,
    }
}

/// The dialer page may load only its own script and connect only back to this server.
/// (A CSP host source cannot name an IPv6 address: a page served from `[::1]` connects
/// back through `'self'`.)
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws://127.0.0.1:* ws://localhost:*; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn health(shared: &Shared) -> serde_json::Value {
    let mut backends = Vec::new();
    let running = shared.backends.running();
    for (name, kind) in shared.backends.instances() {
        let backend = running.iter().find(|b| *b.name == *name);
        let state = backend.map(|b| b.phone.state().as_str());
        // A backend's own status: its link (baresip: `registered`, `not registered`,
        // `baresip not reachable`, …) and its last failure (a refused registration, a
        // baresip that cannot start), each `null` when the backend has none.
        let status = backend.map(|b| b.phone.status()).unwrap_or_default();
        backends.push(json!({
            "name": name,
            "kind": kind,
            "running": backend.is_some(),
            "state": state,
            "link": status.link,
            "last_error": status.last_error,
            "audio": status.audio,
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
    fn websocket_keys() {
        for good in [
            "dGhlIHNhbXBsZSBub25jZQ==",
            "AAAAAAAAAAAAAAAAAAAAAA==",
            "/+9aZ0ZZZZZZZZZZZZZZZw==",
        ] {
            assert!(valid_websocket_key(good), "{good}");
        }
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAB==",
            "AAAAAAAAAAAAAAAAAAAA!A==",
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            "dGhlIHNhbXBsZSBub25jZQ== ",
        ] {
            assert!(!valid_websocket_key(bad), "{bad}");
        }
    }
}
