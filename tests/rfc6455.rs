//! RFC 6455 conformance over raw TCP: every check writes the handshake and the frames
//! byte by byte, without a WebSocket library (a library client would hide exactly the
//! mistakes these look for), and reads what the server sends back the same way.
//!
//! The checks run one after another against one server; every failure is collected and
//! reported together.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::Server;

const STEP: Duration = Duration::from_secs(5);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The RFC's own example: the accept value for [`KEY`].
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const GET_STATE: &str = r#"{"jsonrpc":"2.0","id":7,"method":"GetState"}"#;
const STATE_REPLY: &str = r#"{"jsonrpc":"2.0","result":"Available","id":7}"#;

type Check = Result<(), String>;

/// A frame as the server sent it.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

impl Frame {
    fn close_code(&self) -> Option<u16> {
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// What the end of the stream looked like after the server's last frame.
#[derive(Debug, PartialEq)]
enum Eof {
    /// An orderly close (FIN).
    Clean,
    /// A reset: the server closed with unread data, or aborted.
    Reset,
    /// Still open after the wait.
    Open,
}

/// One client frame: FIN, RSV bits, opcode, and a masked payload (unmasked if `mask`
/// is `None`).
fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

const MASK: Option<[u8; 4]> = Some([0x12, 0x9a, 0x5c, 0xe1]);

fn text(s: &str) -> Vec<u8> {
    frame(true, 0, 0x1, MASK, s.as_bytes())
}

fn close(code: Option<u16>, reason: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    if let Some(c) = code {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(reason);
    frame(true, 0, 0x8, MASK, &p)
}

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> Result<Raw, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(STEP)).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Raw { s, buf: Vec::new() })
    }

    /// A standard handshake request with `extra` header lines, and `host` as the Host.
    fn request(port: u16, first_line: &str, headers: &[(&str, &str)]) -> String {
        let host = format!("127.0.0.1:{port}");
        let mut r = format!("{first_line}\r\n");
        let defaults = [
            ("Host", host.as_str()),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ];
        for (name, value) in defaults {
            match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((n, v)) if !v.is_empty() => r.push_str(&format!("{n}: {v}\r\n")),
                Some(_) => {} // an empty value leaves the header out
                None => r.push_str(&format!("{name}: {value}\r\n")),
            }
        }
        for (n, v) in headers {
            if !defaults.iter().any(|(d, _)| d.eq_ignore_ascii_case(n)) {
                r.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        r.push_str("\r\n");
        r
    }

    /// Sends `request` (and `then`, in the same write) and reads the response head.
    fn handshake_raw(port: u16, request: &str, then: &[u8]) -> Result<(Raw, Head), String> {
        let mut raw = Raw::connect(port)?;
        let mut bytes = request.as_bytes().to_vec();
        bytes.extend_from_slice(then);
        raw.s.write_all(&bytes).map_err(|e| format!("write: {e}"))?;
        let head = raw.read_head()?;
        Ok((raw, head))
    }

    /// A handshake that must succeed.
    fn open(port: u16) -> Result<Raw, String> {
        let req = Raw::request(port, "GET / HTTP/1.1", &[]);
        let (raw, head) = Raw::handshake_raw(port, &req, &[])?;
        if head.status != 101 {
            return Err(format!("handshake answered {}", head.status));
        }
        Ok(raw)
    }

    fn read_more(&mut self) -> Result<usize, std::io::Error> {
        let mut chunk = [0u8; 4096];
        let n = self.s.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_head(&mut self) -> Result<Head, String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return Head::parse(&text);
            }
            match self.read_more() {
                Ok(0) => return Err("closed before a response head".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading the response head: {e}")),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s.write_all(bytes).map_err(|e| format!("write: {e}"))
    }

    /// The next frame from the server.
    fn frame(&mut self) -> Result<Frame, String> {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(f);
            }
            match self.read_more() {
                Ok(0) => return Err("connection closed before a frame".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading a frame: {e}")),
            }
        }
    }

    /// The next frame, which must be a text frame; returns its text.
    fn text(&mut self) -> Result<String, String> {
        let f = self.frame()?;
        if f.opcode != 0x1 {
            return Err(format!("expected a text frame, got {f:?}"));
        }
        Ok(f.text())
    }

    /// The next frame, which must be a close frame; returns its code.
    fn close_frame(&mut self) -> Result<Option<u16>, String> {
        let f = self.frame()?;
        if f.opcode != 0x8 {
            return Err(format!("expected a close frame, got {f:?} ({})", f.text()));
        }
        Ok(f.close_code())
    }

    /// How the stream ends after the last frame (waiting up to `wait`); any more frames
    /// are an error.
    fn eof(&mut self, wait: Duration) -> Result<Eof, String> {
        if !self.buf.is_empty() {
            return Err(format!("unexpected bytes after the close: {:?}", self.buf));
        }
        let _ = self.s.set_read_timeout(Some(wait));
        let mut chunk = [0u8; 256];
        match self.s.read(&mut chunk) {
            Ok(0) => Ok(Eof::Clean),
            Ok(n) => Err(format!(
                "unexpected bytes after the close: {:?}",
                &chunk[..n]
            )),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(Eof::Reset),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(Eof::Open)
            }
            Err(e) => Err(format!("after the close: {e}")),
        }
    }

    /// The server closes with `code`, we answer its close, and it ends TCP cleanly.
    fn expect_server_close(&mut self, code: u16) -> Check {
        let got = self.close_frame()?;
        if got != Some(code) {
            return Err(format!("close code {got:?}, wanted {code}"));
        }
        // Answering may fail if the server already closed its side; that is fine.
        let _ = self.s.write_all(&close(Some(code), b""));
        match self.eof(STEP)? {
            Eof::Clean => Ok(()),
            other => Err(format!("after the close frame: {other:?}")),
        }
    }

    /// We sent a close; the server answers with `code` (None: an empty close) and then
    /// ends TCP cleanly without waiting for anything more.
    fn expect_close_reply(&mut self, code: Option<u16>) -> Check {
        let got = self.close_frame()?;
        if got != code {
            return Err(format!("close reply {got:?}, wanted {code:?}"));
        }
        match self.eof(STEP)? {
            Eof::Clean => Ok(()),
            other => Err(format!("after the close reply: {other:?}")),
        }
    }
}

fn parse_frame(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let mask = if masked {
        if b.len() < at + 4 {
            return None;
        }
        at += 4;
        Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
    } else {
        None
    };
    if b.len() < at + len {
        return None;
    }
    let mut payload = b[at..at + len].to_vec();
    if let Some(k) = mask {
        for (i, x) in payload.iter_mut().enumerate() {
            *x ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 0x7,
            opcode: b[0] & 0x0f,
            masked,
            payload,
        },
        at + len,
    ))
}

struct Head {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(text: &str) -> Result<Head, String> {
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_owned();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Head {
            version,
            status,
            headers,
        })
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

// ---- §4 the opening handshake ----

fn handshake_status(port: u16, first_line: &str, headers: &[(&str, &str)]) -> Result<Head, String> {
    let req = Raw::request(port, first_line, headers);
    Raw::handshake_raw(port, &req, &[]).map(|(_, h)| h)
}

fn expect_status(port: u16, first_line: &str, headers: &[(&str, &str)], want: u16) -> Check {
    let head = handshake_status(port, first_line, headers)?;
    if head.status != want {
        return Err(format!("status {}, wanted {want}", head.status));
    }
    Ok(())
}

fn accept_key_and_headers(port: u16) -> Check {
    let head = handshake_status(port, "GET / HTTP/1.1", &[])?;
    let checks = [
        (head.version == "HTTP/1.1", "HTTP/1.1"),
        (head.status == 101, "status 101"),
        (
            head.header("sec-websocket-accept") == Some(ACCEPT),
            "the accept key",
        ),
        (
            head.header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
            "Upgrade: websocket",
        ),
        (
            head.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
            "Connection: Upgrade",
        ),
        (
            head.header("sec-websocket-protocol").is_none(),
            "no subprotocol chosen",
        ),
        (
            head.header("sec-websocket-extensions").is_none(),
            "no extension chosen",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err(format!("missing {what}: {:?}", head.headers)),
        None => Ok(()),
    }
}

fn version_refused_with_header(port: u16, version: &str) -> Check {
    let head = handshake_status(
        port,
        "GET / HTTP/1.1",
        &[("Sec-WebSocket-Version", version)],
    )?;
    if head.status != 426 {
        return Err(format!("status {}, wanted 426", head.status));
    }
    match head.header("sec-websocket-version") {
        Some("13") => Ok(()),
        other => Err(format!("426 without Sec-WebSocket-Version: 13 ({other:?})")),
    }
}

fn frames_with_the_handshake_are_read(port: u16) -> Check {
    let req = Raw::request(port, "GET / HTTP/1.1", &[]);
    let (mut raw, head) = Raw::handshake_raw(port, &req, &text(GET_STATE))?;
    if head.status != 101 {
        return Err(format!("status {}", head.status));
    }
    expect_text(&raw.text()?, STATE_REPLY)
}

fn expect_text(got: &str, want: &str) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, wanted {want:?}"))
    }
}

// ---- frames ----

/// Sends `bytes` on a fresh connection; the server must close with `code`.
fn closes_with(port: u16, bytes: &[u8], code: u16) -> Check {
    let mut raw = Raw::open(port)?;
    // The server may close before reading everything; a failed write is not the test.
    let _ = raw.s.write_all(bytes);
    raw.expect_server_close(code)
}

/// Sends `bytes` on a fresh connection; the server must answer `want`, in order, and
/// keep the connection open.
fn answers(port: u16, bytes: &[u8], want: &[&str]) -> Check {
    let mut raw = Raw::open(port)?;
    raw.send(bytes)?;
    for w in want {
        expect_text(&raw.text()?, w)?;
    }
    raw.send(&text(GET_STATE))?;
    expect_text(&raw.text()?, STATE_REPLY)
}

fn server_frames_are_unmasked_and_final(port: u16) -> Check {
    let mut raw = Raw::open(port)?;
    raw.send(&text(GET_STATE))?;
    let f = raw.frame()?;
    if f.masked || !f.fin || f.rsv != 0 || f.opcode != 1 {
        return Err(format!("{f:?}"));
    }
    Ok(())
}

fn ping_echoed(port: u16, payload: &[u8]) -> Check {
    let mut raw = Raw::open(port)?;
    raw.send(&frame(true, 0, 0x9, MASK, payload))?;
    let f = raw.frame()?;
    if f.opcode != 0xA || f.payload != payload {
        return Err(format!("wanted a pong with the ping's payload, got {f:?}"));
    }
    Ok(())
}

fn ping_between_fragments(port: u16) -> Check {
    let (a, b) = GET_STATE.split_at(20);
    let mut bytes = frame(false, 0, 0x1, MASK, a.as_bytes());
    bytes.extend(frame(true, 0, 0x9, MASK, b"between"));
    bytes.extend(frame(true, 0, 0x0, MASK, b.as_bytes()));
    let mut raw = Raw::open(port)?;
    raw.send(&bytes)?;
    let pong = raw.frame()?;
    if pong.opcode != 0xA || pong.payload != b"between" {
        return Err(format!("wanted the pong first, got {pong:?}"));
    }
    expect_text(&raw.text()?, STATE_REPLY)
}

fn fragments(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let op = if i == 0 { 0x1 } else { 0x0 };
        out.extend(frame(i + 1 == parts.len(), 0, op, MASK, p));
    }
    out
}

/// A close frame from the client is answered with the same code, then TCP ends.
fn close_echoed(port: u16, code: Option<u16>, reason: &[u8]) -> Check {
    let mut raw = Raw::open(port)?;
    raw.send(&close(code, reason))?;
    raw.expect_close_reply(code)
}

/// Requests and a close in one write: every reply, in order, then the close reply.
fn replies_before_close_reply(port: u16) -> Check {
    let mut bytes = Vec::new();
    for id in 1..=3 {
        bytes.extend(text(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"GetState"}}"#
        )));
    }
    bytes.extend(close(Some(1000), b"bye"));
    let mut raw = Raw::open(port)?;
    raw.send(&bytes)?;
    for id in 1..=3 {
        expect_text(
            &raw.text()?,
            &format!(r#"{{"jsonrpc":"2.0","result":"Available","id":{id}}}"#),
        )?;
    }
    raw.expect_close_reply(Some(1000))
}

/// A request followed by the end of the client's sending side: the reply still comes.
fn reply_before_eof(port: u16) -> Check {
    let mut raw = Raw::open(port)?;
    raw.send(&text(GET_STATE))?;
    raw.s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    expect_text(&raw.text()?, STATE_REPLY)?;
    match raw.eof(STEP)? {
        Eof::Clean => Ok(()),
        other => Err(format!("after the reply: {other:?}")),
    }
}

/// An oversized message: the 1009 close arrives whole, and TCP ends without a reset,
/// whether or not the client goes on sending.
fn too_big_arrives_intact(port: u16, bytes: &[u8], answer_close: bool) -> Check {
    let mut raw = Raw::open(port)?;
    let _ = raw.s.write_all(bytes);
    let code = raw.close_frame()?;
    if code != Some(1009) {
        return Err(format!("close code {code:?}, wanted 1009"));
    }
    if answer_close {
        let _ = raw.s.write_all(&close(Some(1009), b""));
    }
    let started = Instant::now();
    match raw.eof(STEP)? {
        Eof::Clean if started.elapsed() < Duration::from_secs(4) => Ok(()),
        other => Err(format!("after the 1009 close: {other:?}")),
    }
}

/// After the server's close frame, nothing else.
fn nothing_after_close(port: u16) -> Check {
    let mut raw = Raw::open(port)?;
    let mut bytes = close(Some(1000), b"");
    bytes.extend(text(GET_STATE));
    raw.send(&bytes)?;
    raw.expect_close_reply(Some(1000))
}

#[test]
fn rfc6455_conformance() {
    let server = Server::start(&["--max-message-bytes", "65536"]);
    let p = server.port;
    let host = |h: &'static str| vec![("Host", h)];
    let too_big_frame = text(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
        "x".repeat(70_000)
    ));
    let too_big_fragments = fragments(&[&[b'['; 40_000], &[b'1'; 40_000]]);
    let euro = "€".as_bytes();
    let split_point = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"GetState","x":"{}"}}"#,
        "€"
    );
    let split_at = split_point.find('€').unwrap_or(0) + 1;

    let mut checks: Vec<(String, Box<dyn Fn() -> Check>)> = Vec::new();
    let mut add = |name: String, f: Box<dyn Fn() -> Check>| checks.push((name, f));

    // §4.2 the opening handshake
    add(
        "§4.2.2 accept key and response headers".into(),
        Box::new(move || accept_key_and_headers(p)),
    );
    add(
        "§4.2.1 header names are case-insensitive".into(),
        Box::new(move || {
            let req = format!(
                "GET / HTTP/1.1\r\nhost: 127.0.0.1:{p}\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n"
            );
            let (_, head) = Raw::handshake_raw(p, &req, &[])?;
            if head.status == 101 {
                Ok(())
            } else {
                Err(format!("status {}", head.status))
            }
        }),
    );
    add(
        "§4.2.1 a request target with a query".into(),
        Box::new(move || expect_status(p, "GET /?token=1 HTTP/1.1", &[], 101)),
    );
    add(
        "§4.2.1 HTTP/1.0 is refused".into(),
        Box::new(move || {
            let head = handshake_status(p, "GET / HTTP/1.0", &[])?;
            if head.status >= 400 && head.status < 500 {
                Ok(())
            } else {
                Err(format!("status {}", head.status))
            }
        }),
    );
    add(
        "§4.2.1 POST is refused".into(),
        Box::new(move || expect_status(p, "POST / HTTP/1.1", &[], 405)),
    );
    add(
        "§4.2.1 no Connection: Upgrade".into(),
        Box::new(move || expect_status(p, "GET / HTTP/1.1", &[("Connection", "keep-alive")], 400)),
    );
    add(
        "§4.2.1 no Sec-WebSocket-Key".into(),
        Box::new(move || expect_status(p, "GET / HTTP/1.1", &[("Sec-WebSocket-Key", "")], 400)),
    );
    for bad_key in [
        "!!!!!!!!!!!!!!!!!!!!!!==",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAA",
        "dGhlIHNhbXBsZSBub25jZQ=="[..23].to_owned().leak(),
    ] {
        add(
            format!("§4.2.1 a key that is not base64 of 16 bytes: {bad_key:?}"),
            Box::new(move || {
                expect_status(p, "GET / HTTP/1.1", &[("Sec-WebSocket-Key", bad_key)], 400)
            }),
        );
    }
    add(
        "§4.2.2 version 8 gets 426 naming version 13".into(),
        Box::new(move || version_refused_with_header(p, "8")),
    );
    add(
        "§4.2.2 version 14 gets 426 naming version 13".into(),
        Box::new(move || version_refused_with_header(p, "14")),
    );
    add(
        "§4.2.2 no version gets 426 naming version 13".into(),
        Box::new(move || version_refused_with_header(p, "")),
    );
    for (h, want) in [
        ("[::1]evil.example", 403),
        ("[::1]:x", 403),
        ("127.0.0.1:99999", 403),
        ("127.0.0.1:", 403),
        ("evil.example", 403),
        ("127.0.0.1.evil.example:9898", 403),
        ("localhost", 101),
        ("[::1]:9898", 101),
    ] {
        add(
            format!("§4.1 Host {h:?} answers {want}"),
            Box::new(move || expect_status(p, "GET / HTTP/1.1", &host(h), want)),
        );
    }
    add(
        "§4.1 no Host header is refused".into(),
        Box::new(move || expect_status(p, "GET / HTTP/1.1", &[("Host", "")], 403)),
    );
    add(
        "§4.2 frames in the same write as the handshake".into(),
        Box::new(move || frames_with_the_handshake_are_read(p)),
    );

    // §5.1 masking, §5.2 framing
    add(
        "§5.1 an unmasked client frame closes with 1002".into(),
        Box::new(move || closes_with(p, &frame(true, 0, 0x1, None, GET_STATE.as_bytes()), 1002)),
    );
    add(
        "§5.1 the server's frames are unmasked and final".into(),
        Box::new(move || server_frames_are_unmasked_and_final(p)),
    );
    for rsv in [1u8, 2, 4] {
        add(
            format!("§5.2 RSV bits {rsv:03b} close with 1002"),
            Box::new(move || {
                closes_with(p, &frame(true, rsv, 0x1, MASK, GET_STATE.as_bytes()), 1002)
            }),
        );
    }
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        add(
            format!("§5.2 reserved opcode {op:#x} closes with 1002"),
            Box::new(move || closes_with(p, &frame(true, 0, op, MASK, b""), 1002)),
        );
    }
    add(
        "§5.2 a 16-bit length".into(),
        Box::new(move || {
            let long = format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"GetState","pad":"{}"}}"#,
                "p".repeat(300)
            );
            answers(p, &text(&long), &[STATE_REPLY])
        }),
    );
    add(
        "§5.2 a 64-bit length".into(),
        Box::new(move || {
            let long = format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"GetState","pad":"{}"}}"#,
                "p".repeat(65_400)
            );
            answers(p, &text(&long), &[STATE_REPLY])
        }),
    );
    add(
        "§5.2 a 64-bit length with the top bit set closes with 1002 or 1009".into(),
        Box::new(move || {
            let mut raw = Raw::open(p)?;
            let _ = raw
                .s
                .write_all(&[0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
            match raw.close_frame()? {
                Some(1002 | 1009) => Ok(()),
                other => Err(format!("close code {other:?}")),
            }
        }),
    );

    // §5.4 fragmentation
    add(
        "§5.4 a message in three fragments".into(),
        Box::new(move || {
            let (a, rest) = GET_STATE.split_at(10);
            let (b, c) = rest.split_at(10);
            answers(
                p,
                &fragments(&[a.as_bytes(), b.as_bytes(), c.as_bytes()]),
                &[STATE_REPLY],
            )
        }),
    );
    add(
        "§5.4 empty fragments".into(),
        Box::new(move || {
            answers(
                p,
                &fragments(&[b"", GET_STATE.as_bytes(), b""]),
                &[STATE_REPLY],
            )
        }),
    );
    add(
        "§5.4 a ping between fragments is answered at once".into(),
        Box::new(move || ping_between_fragments(p)),
    );
    add(
        "§5.4 a continuation with nothing to continue closes with 1002".into(),
        Box::new(move || closes_with(p, &frame(true, 0, 0x0, MASK, b"x"), 1002)),
    );
    add(
        "§5.4 a new message inside a fragmented one closes with 1002".into(),
        Box::new(move || {
            let mut bytes = frame(false, 0, 0x1, MASK, b"[");
            bytes.extend(text(GET_STATE));
            closes_with(p, &bytes, 1002)
        }),
    );

    // §5.5 control frames
    add(
        "§5.5.2 a ping's payload is echoed".into(),
        Box::new(move || ping_echoed(p, b"hello \x00\xff")),
    );
    add(
        "§5.5.2 an empty ping".into(),
        Box::new(move || ping_echoed(p, b"")),
    );
    add(
        "§5.5.2 a 125-byte ping".into(),
        Box::new(move || ping_echoed(p, &[0xab; 125])),
    );
    add(
        "§5.5 a 126-byte ping closes with 1002".into(),
        Box::new(move || closes_with(p, &frame(true, 0, 0x9, MASK, &[0; 126]), 1002)),
    );
    add(
        "§5.5 a fragmented ping closes with 1002".into(),
        Box::new(move || closes_with(p, &frame(false, 0, 0x9, MASK, b"x"), 1002)),
    );
    add(
        "§5.5.3 an unsolicited pong is ignored".into(),
        Box::new(move || answers(p, &frame(true, 0, 0xA, MASK, b"x"), &[])),
    );
    add(
        "§5.5.1 close 1000 is answered with 1000, then TCP ends".into(),
        Box::new(move || close_echoed(p, Some(1000), b"")),
    );
    add(
        "§5.5.1 a close with a reason is answered with its code".into(),
        Box::new(move || close_echoed(p, Some(1001), "going ✓".as_bytes())),
    );
    add(
        "§5.5.1 an empty close is answered with an empty close".into(),
        Box::new(move || close_echoed(p, None, b"")),
    );
    add(
        "§5.5.1 requests before a close are answered first".into(),
        Box::new(move || replies_before_close_reply(p)),
    );
    add(
        "§5.5.1 a request before the end of the stream is answered".into(),
        Box::new(move || reply_before_eof(p)),
    );
    add(
        "§5.5.1 nothing is read after a close".into(),
        Box::new(move || nothing_after_close(p)),
    );
    add(
        "§5.5.1 a one-byte close payload closes with 1002".into(),
        Box::new(move || {
            let mut raw = Raw::open(p)?;
            raw.send(&frame(true, 0, 0x8, MASK, &[3]))?;
            raw.expect_close_reply(Some(1002))
        }),
    );
    add(
        "§5.5.1 a close reason that is not UTF-8 closes with 1007".into(),
        Box::new(move || {
            let mut raw = Raw::open(p)?;
            raw.send(&close(Some(1000), &[0xce, 0xba, 0xff]))?;
            raw.expect_close_reply(Some(1007))
        }),
    );

    // §7.4 close codes
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        add(
            format!("§7.4 close code {code} is answered with 1002"),
            Box::new(move || {
                let mut raw = Raw::open(p)?;
                raw.send(&close(Some(code), b""))?;
                raw.expect_close_reply(Some(1002))
            }),
        );
    }
    for code in [
        1002u16, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
    ] {
        add(
            format!("§7.4 close code {code} is echoed"),
            Box::new(move || close_echoed(p, Some(code), b"")),
        );
    }

    // §8.1 UTF-8, binary, size
    add(
        "§8.1 text that is not UTF-8 closes with 1007".into(),
        Box::new(move || closes_with(p, &frame(true, 0, 0x1, MASK, b"{\"a\":\"\xc0\xaf\"}"), 1007)),
    );
    add(
        "§8.1 a surrogate encoded in UTF-8 closes with 1007".into(),
        Box::new(move || closes_with(p, &frame(true, 0, 0x1, MASK, b"\xed\xa0\x80"), 1007)),
    );
    add(
        "§8.1 a code point split across fragments".into(),
        Box::new({
            let sp = split_point.clone();
            move || {
                let b = sp.as_bytes();
                answers(
                    p,
                    &fragments(&[&b[..split_at], &b[split_at..]]),
                    &[STATE_REPLY],
                )
            }
        }),
    );
    add(
        "§8.1 an invalid sequence split across fragments closes with 1007".into(),
        Box::new(move || closes_with(p, &fragments(&[&euro[..2], b"x"]), 1007)),
    );
    add(
        "§5.6 a binary message closes with 1003".into(),
        Box::new(move || closes_with(p, &frame(true, 0, 0x2, MASK, GET_STATE.as_bytes()), 1003)),
    );
    add(
        "§7.4.1 an oversized message: 1009 arrives intact, then a clean end".into(),
        Box::new({
            let bytes = too_big_frame.clone();
            move || too_big_arrives_intact(p, &bytes, false)
        }),
    );
    add(
        "§7.4.1 an oversized message, close answered: 1009 intact".into(),
        Box::new({
            let bytes = too_big_frame.clone();
            move || too_big_arrives_intact(p, &bytes, true)
        }),
    );
    add(
        "§7.4.1 an oversized fragmented message: 1009 intact".into(),
        Box::new({
            let bytes = too_big_fragments.clone();
            move || too_big_arrives_intact(p, &bytes, false)
        }),
    );

    let total = checks.len();
    let mut failed = Vec::new();
    for (name, check) in &checks {
        match check() {
            Ok(()) => eprintln!("ok   {name}"),
            Err(why) => {
                eprintln!("FAIL {name}: {why}");
                failed.push(format!("{name}: {why}"));
            }
        }
    }
    eprintln!("{} of {total} RFC 6455 checks passed", total - failed.len());
    assert!(total >= 50, "only {total} checks");
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
