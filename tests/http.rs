//! Plain HTTP on the WebSocket port: the dialer page, its scripts, /health, and the
//! refusals, over raw TCP to the real server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;

/// Sends raw bytes and returns (status, headers+body as text).
fn exchange(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

fn get(port: u16, path: &str, origin: Option<&str>) -> (u16, String) {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{origin}\r\n").as_bytes(),
    )
}

#[test]
fn pages_health_and_refusals() {
    let server = Server::start(&["--allowed-origins", "company.com"]);
    let port = server.port;

    let (status, page) = get(port, "/", None);
    assert_eq!(status, 200);
    assert!(
        page.contains("text/html") && page.contains("bapiws dialer"),
        "{page}"
    );
    assert!(page.contains("Content-Security-Policy"), "{page}");
    let (status, js) = get(port, "/dialer.js", None);
    assert_eq!(status, 200);
    assert!(js.contains("text/javascript") && js.contains("BapiwsClient"));
    let (status, lib) = get(port, "/bapiws-client.js", None);
    assert_eq!(status, 200);
    assert!(lib.contains("export class BapiwsClient"));

    let (status, health) = get(port, "/health?x=1", Some("https://crm.company.com"));
    assert_eq!(status, 200);
    assert!(health.contains("Access-Control-Allow-Origin: https://crm.company.com"));
    let body = health.split("\r\n\r\n").nth(1).expect("body");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(v["name"], "bapiws");
    assert_eq!(v["default_backend"], "sim");
    assert!(v["uptime_secs"].is_u64());
    let sim = v["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == "sim"))
        .expect("sim listed");
    assert_eq!(sim["state"], "Available");
    assert_eq!(sim["running"], true);

    // The same origin rules as the WebSocket. The refusal carries no CORS header: a
    // browser hides it from the refused page, which cannot learn that bapiws is installed
    // (docs/integrating.md, Origins).
    for path in ["/", "/health", "/bapiws-client.js"] {
        let (status, text) = get(port, path, Some("https://evil.example"));
        assert_eq!(status, 403, "{path}");
        assert!(
            !text.to_ascii_lowercase().contains("access-control-"),
            "{path}: {text}"
        );
    }
    // The server's own pages may always connect back.
    assert_eq!(
        get(port, "/health", Some(&format!("http://127.0.0.1:{port}"))).0,
        200
    );

    assert_eq!(get(port, "/nope", None).0, 404);
    // DNS rebinding: a page on a name pointed at 127.0.0.1 sends that name as Host.
    for host in ["evil.example:9898", "127.0.0.1.evil.example", ""] {
        let req = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let (status, text) = exchange(port, req.as_bytes());
        assert_eq!(status, 403, "{host}");
        assert!(text.contains("host not allowed"), "{text}");
    }
    assert_eq!(
        exchange(port, b"GET /health HTTP/1.1\r\n\r\n").0,
        403,
        "no Host at all"
    );
    assert_eq!(
        exchange(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").0,
        200
    );
    let (status, text) = exchange(
        port,
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(text.contains("Allow: GET, HEAD"));
    let (status, text) = exchange(port, b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(text.ends_with("\r\n\r\n"), "HEAD has no body");
    assert_eq!(exchange(port, b"NOT HTTP\r\n\r\n").0, 400);
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(exchange(port, huge.as_bytes()).0, 431);
    let many: String = (0..80).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(
        exchange(port, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).0,
        431
    );
    // A WebSocket handshake with the wrong version or no key.
    let bad_ws = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_eq!(exchange(port, bad_ws).0, 426);
    let no_key = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(exchange(port, no_key).0, 400);
    // A correct one gets 101 with the accept key from RFC 6455's example.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(
        text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{text}"
    );
}

/// An Origin with a tab or a space inside is not a subdomain of an allowed domain.
#[test]
fn origins_with_whitespace_inside_are_refused() {
    let server = Server::start(&["--allowed-origins", "company.com"]);
    let p = server.port;
    assert_eq!(get(p, "/health", Some("https://crm.company.com")).0, 200);
    for bad in [
        "https://evil\t.company.com",
        "https://evil .company.com",
        "https://evil\x0b.company.com",
    ] {
        let status = get(p, "/health", Some(bad)).0;
        assert!(matches!(status, 400 | 403), "{bad:?}: {status}");
    }
}

/// The browser's favicon request is answered quietly, and the page's CSP holds only
/// sources browsers accept (an IPv6 literal is not one).
#[test]
fn favicon_and_a_valid_csp() {
    let server = Server::start(&[]);
    let (status, _) = get(server.port, "/favicon.ico", None);
    assert_eq!(status, 204);
    let (_, page) = get(server.port, "/", None);
    let csp = page
        .lines()
        .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
        .expect("a CSP");
    assert!(!csp.contains('['), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
}
