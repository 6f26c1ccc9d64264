//! What one client may do to the others and to the phone: the per-connection rate limit
//! on state-changing commands, the dial policy, and the audit trail of refused calls,
//! over real sockets to the real server.

mod common;

use std::time::Duration;

use common::{Server, Ws};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Reads every notification until `quiet` passes without one, doing a little work per
/// message; returns the methods seen, or why the connection ended.
async fn read_all(mut ws: Ws, quiet: Duration) -> Result<Vec<String>, String> {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(quiet, ws.ws.next()).await {
            Err(_) => return Ok(seen),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                let method = v["method"].as_str().unwrap_or("reply").to_owned();
                let id = v["params"][0].as_str().unwrap_or("").to_owned();
                seen.push(format!("{method} {id}"));
                // Some work per message, as a page updating its view would do.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
            Ok(None) => return Err("the server closed the connection".into()),
        }
    }
}

/// Sends a request and skips the notifications before its reply.
async fn reply_to(ws: &mut Ws, id: u64, method: &str) -> Value {
    ws.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": []}).to_string())
        .await;
    loop {
        let m = ws.recv().await;
        if m["id"] == json!(id) {
            return m;
        }
    }
}

/// A connection that floods batches of CallOut and HangUp notifications cannot make the
/// server drop the connections beside it: its commands are limited, everyone else gets
/// every notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_connection_does_not_silence_the_others() {
    let server = Server::start(&["--sim-auto-answer", "false"]);
    let mut readers = Vec::new();
    for _ in 0..10 {
        let ws = Ws::connect(&server.url).await;
        readers.push(tokio::spawn(read_all(ws, Duration::from_secs(3))));
    }
    let mut flooder = Ws::connect(&server.url).await;
    let mut batch = Vec::new();
    for _ in 0..50 {
        batch.push(json!({"jsonrpc": "2.0", "method": "CallOut", "params": ["+358401234567"]}));
        batch.push(json!({"jsonrpc": "2.0", "method": "HangUp", "params": []}));
    }
    let batch = Value::Array(batch).to_string();
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    // Bounded in time and count.
    while started.elapsed() < Duration::from_secs(3) && sent < 3000 {
        flooder
            .ws
            .send(Message::text(batch.clone()))
            .await
            .expect("the flooder may send");
        sent += 1;
    }
    eprintln!("the flooder sent {sent} batches of 100 commands");
    // Beyond the burst, a request is told why; reads are never limited.
    let reply = reply_to(&mut flooder, 1, "HangUp").await;
    assert_eq!(reply["error"]["code"], -32005, "{reply}");
    let reply = reply_to(&mut flooder, 2, "GetState").await;
    assert!(reply["result"].is_string(), "{reply}");
    let mut sequences = Vec::new();
    for r in readers {
        sequences.push(r.await.expect("reader task").expect("reader kept"));
    }
    let first = &sequences[0];
    assert!(!first.is_empty(), "the readers saw the flooder's calls");
    assert!(
        first.len() < 2000,
        "at most the burst and the rate got through: {} notifications",
        first.len()
    );
    for (i, s) in sequences.iter().enumerate() {
        assert_eq!(s, first, "reader {i} saw every notification, in order");
    }
    let log = server.terminate().1;
    let limited = log
        .lines()
        .filter(|l| l.contains("too many requests"))
        .count();
    assert!(
        (1..=2).contains(&limited),
        "the refusals are logged once per period: {limited} lines"
    );
}

/// The dial policy: denied prefixes and the allowed list, refused with -32006 and an
/// audit line; a CallOut refused for its params is audited too.
#[tokio::test]
async fn the_dial_policy_and_the_audit_of_refused_calls() {
    let server = Server::start(&[
        "--dial-allow",
        "+358*,0*",
        "--dial-deny",
        "+358600*,00*",
        "--sim-auto-answer",
        "false",
    ]);
    let mut c = Ws::connect(&server.url).await;
    for (number, code) in [
        ("+358 600 12345", -32006),
        ("0046123456", -32006),
        ("+4612345678", -32006),
        ("sip:1001@example.com", -32602),
        ("$(reboot)", -32602),
    ] {
        assert_eq!(
            c.error_code("CallOut", json!([number])).await,
            code,
            "{number}"
        );
    }
    assert_eq!(
        c.control("CallOut", json!(["+358401234567"])).await,
        json!(0)
    );
    c.control("HangUp", json!([])).await;
    let log_dir = server.log_dir();
    // The log is written off the request path: wait for the lines.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let text = std::fs::read_dir(&log_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect::<String>();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("call control") && l.contains("CallOut"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= 6 || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(audit.len(), 6, "every CallOut is audited: {audit:#?}");
    assert_eq!(audit.iter().filter(|l| l.contains("-32006")).count(), 3);
    assert_eq!(audit.iter().filter(|l| l.contains("-32602")).count(), 2);
    assert!(!audit.iter().any(|l| l.contains("reboot")), "{audit:#?}");
}

/// With the default `allowed_origins = "*"`, the server says at start that every page may
/// place calls, naming the setting.
#[test]
fn the_open_default_is_announced() {
    let open = Server::start(&[]).terminate().1;
    assert!(
        open.lines()
            .any(|l| l.contains("allowed_origins") && l.contains("every web page")),
        "{open}"
    );
    let closed = Server::start(&["--allowed-origins", "crm.example.com"])
        .terminate()
        .1;
    assert!(!closed.contains("every web page"), "{closed}");
}

/// On Windows the baresip backend is not offered: `Init ["baresip"]` answers the
/// unknown-backend error listing what exists, and baresip settings are refused at start.
#[cfg(windows)]
#[tokio::test]
async fn baresip_is_not_offered_on_windows() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    let reply = c.request("Init", json!(["baresip"])).await;
    assert_eq!(reply["error"]["code"], -32003, "{reply}");
    let names = reply["error"]["data"].as_array().expect("names").clone();
    assert!(names.contains(&json!("sim")), "{reply}");
    assert!(!names.contains(&json!("baresip")), "{reply}");
    let dir = common::TempDir::new("baresip-windows");
    let out = common::command(dir.path())
        .args([
            "serve",
            "--port",
            "0",
            "--listen",
            "127.0.0.1",
            "--baresip-mode",
            "attach",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not run on this operating system"),
        "{err}"
    );
}

/// No page can make the server start a process: an unconfigured baresip backend is not
/// there to choose (with a clear error), and a configured one starts with the server,
/// before any page connects.
#[cfg(unix)]
#[tokio::test]
async fn a_page_never_starts_a_process() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    let reply = c.request("Init", json!(["baresip"])).await;
    assert_eq!(reply["error"]["code"], -32003, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("not configured"), "{reply}");
    assert!(
        common::baresip::managed_baresip_pid(server.child.id()).is_none(),
        "no baresip was started"
    );
    drop(server);

    // Configured (attach mode): the server connects to it at start, unasked.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _server = Server::start(&[
        "--baresip-mode",
        "attach",
        "--baresip-ctrl-address",
        &format!("127.0.0.1:{port}"),
    ]);
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if listener.accept().is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the configured backend was not started with the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGHUP (the terminal closed) shuts down as cleanly as SIGTERM: clients get 1001, the
/// server says it stopped and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn sighup_shuts_down_cleanly() {
    let mut server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    c.call("GetState", json!([])).await;
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let frame = c
        .recv_close(Duration::from_secs(5))
        .await
        .expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    let status = common::wait_exit(&mut server.child, Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status}");
    let stderr = server.stderr_after_kill();
    assert!(
        stderr.contains("SIGHUP") && stderr.contains("stopped"),
        "{stderr}"
    );
}

/// A port already taken on one of the listen addresses stops the start, naming the
/// address and the setting: pages and the CLI must not reach the other program.
#[test]
fn a_half_taken_port_is_fatal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = common::TempDir::new("half-taken");
    let out = common::command(dir.path())
        .args(["serve", "--port", &port, "--log-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("--port"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no start-up line: {:?}", out.stdout);
}

/// Buffers grown for one large message are given back: connections that each received a
/// ~250 KB reply cost little once idle.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffers_shrink_back_after_a_large_reply() {
    const CONNECTIONS: usize = 100;
    let server = Server::start(&["--max-batch", "6000", "--max-message-bytes", "1048576"]);
    let pid = server.child.id();
    let batch: Vec<Value> = (0..5000)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "GetState"}))
        .collect();
    let batch = Value::Array(batch).to_string();
    let mut idle = Vec::new();
    // Warm up one connection, so that what the runtime keeps once is not counted.
    for _ in 0..2 {
        let mut c = Ws::connect(&server.url).await;
        c.send(&batch).await;
        c.recv_text().await;
    }
    let before = common::rss_kib(pid);
    for _ in 0..CONNECTIONS {
        let mut c = Ws::connect(&server.url).await;
        c.send(&batch).await;
        let reply = c.recv_text().await;
        assert!(
            reply.len() > 200_000,
            "a large reply: {} bytes",
            reply.len()
        );
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = common::rss_kib(pid);
    let per_connection = (after.saturating_sub(before)) / CONNECTIONS as u64;
    eprintln!(
        "RSS {before} KiB -> {after} KiB with {CONNECTIONS} idle connections that each got a 250 KB reply: {per_connection} KiB each"
    );
    assert!(
        per_connection < 64,
        "{per_connection} KiB kept per idle connection"
    );
    drop(idle);
}

/// baresip missing: the cause reaches the client (in -32001's data) and /health, not only
/// the server's stderr.
#[cfg(unix)]
#[tokio::test]
async fn a_missing_baresip_is_explained_to_the_client() {
    let server = Server::start(&[
        "--default-backend",
        "baresip",
        "--baresip-binary",
        "/nonexistent/baresip",
    ]);
    let mut c = Ws::connect(&server.url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = c.request("CallOut", json!(["1002"])).await;
        if reply["error"]["data"]["lastError"].is_string() || std::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reply["error"]["code"], -32001, "{reply}");
    let why = reply["error"]["data"]["lastError"].as_str().unwrap_or("");
    assert!(
        why.contains("not found") && why.contains("baresip-core"),
        "{reply}"
    );
    let health = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            server.port
        );
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(health.contains("baresip-core"), "{health}");
}
