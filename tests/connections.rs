//! Connections: fan-out, backends, origins, timeouts, slow clients, limits, shutdown, log.

mod common;

use std::time::Duration;

use common::{Server, Ws, brief};
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

/// Drives a few calls from a third connection and returns how many notifications that
/// produces.
async fn drive_calls(driver: &mut Ws, rounds: usize) -> usize {
    for i in 0..rounds {
        driver
            .control("Sim.IncomingCall", json!([format!("+35840{i:07}")]))
            .await;
        driver.control("Sim.RemoteHangUp", json!([])).await;
    }
    rounds * 4
}

#[tokio::test]
async fn connections_on_a_backend_see_every_notification_in_the_same_order() {
    // Many commands from one connection on purpose: the rate limit is lifted.
    let server = Server::start(&["--extra-backend", "agent2=sim", "--command-burst", "100000"]);
    let mut a = Ws::connect(&server.url).await;
    let mut b = Ws::connect(&server.url).await;
    let mut other = Ws::connect(&server.url).await;
    assert_eq!(other.call("Init", json!(["agent2"])).await, json!(0));
    let mut driver = Ws::connect(&server.url).await;
    let n = drive_calls(&mut driver, 25).await;
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..n {
        seen_a.push(brief(&a.recv().await));
        seen_b.push(brief(&b.recv().await));
    }
    assert_eq!(seen_a, seen_b);
    // Every call: CallComing, Busy, CallDisconnected, Available; no duplicates.
    for (i, chunk) in seen_a.chunks(4).enumerate() {
        let number = format!("+35840{i:07}");
        assert!(
            chunk[0].starts_with("CallComing ") && chunk[0].ends_with(&number),
            "{chunk:?}"
        );
        assert_eq!(chunk[1], "StateChanged Busy");
        assert!(chunk[2].starts_with("CallDisconnected "), "{chunk:?}");
        assert_eq!(chunk[3], "StateChanged Available");
    }
    a.expect_silence(Duration::from_millis(200)).await;
    b.expect_silence(Duration::from_millis(10)).await;
    // The connection on the other backend saw none of it, and has its own phone.
    other.expect_silence(Duration::from_millis(10)).await;
    assert_eq!(other.call("GetActiveCalls", json!([])).await, json!([]));
    other.call("Sim.IncomingCall", json!(["123"])).await;
    other.expect_notification("CallComing").await;
    a.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn init_switches_notifications_to_the_new_backend() {
    let server = Server::start(&["--extra-backend", "agent2=sim", "--alias", "lync=agent2"]);
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("Init", json!(["LYNC"])).await, json!(0));
    let mut sim_driver = Ws::connect(&server.url).await;
    sim_driver.control("Sim.IncomingCall", json!(["1"])).await;
    c.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(c.call("Init", json!([])).await, json!(0));
    assert_eq!(c.call("GetState", json!([])).await, json!("Busy"));
    sim_driver.control("Sim.RemoteHangUp", json!([])).await;
    c.expect_notification("CallDisconnected").await;
}

#[tokio::test]
async fn origins_are_checked_at_the_handshake() {
    let server = Server::start(&[
        "--allowed-origins",
        "company.com,https://crm.partner.example:8443",
    ]);
    let allowed = [
        None,
        Some("https://company.com"),
        Some("http://company.com:3000"),
        Some("https://crm.company.com"),
        Some("https://crm.partner.example:8443"),
    ];
    for origin in allowed {
        let mut c = Ws::try_connect(&server.url, origin)
            .await
            .unwrap_or_else(|e| panic!("{origin:?} should be allowed: {e}"));
        assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    }
    let refused = [
        "null",
        "https://evilcompany.com",
        "https://company.com.evil.net",
        "https://crm.partner.example",
        "http://crm.partner.example:8443",
        "https://other.example",
    ];
    for origin in refused {
        match Ws::try_connect(&server.url, Some(origin)).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403, "{origin}"),
            Err(e) => panic!("{origin}: expected HTTP 403, got {e}"),
            Ok(_) => panic!("{origin} should be refused"),
        }
    }
    // One log line per refusal, naming the origin.
    let (_, stderr, _) = server.terminate();
    for origin in refused {
        let lines = stderr
            .lines()
            .filter(|l| l.contains("origin not allowed") && l.contains(origin))
            .count();
        assert!(lines >= 1, "no refusal line for {origin}:\n{stderr}");
    }
}

#[tokio::test]
async fn idle_connections_are_closed_and_keep_alive_keeps_them_open() {
    let server = Server::start(&["--idle-timeout-secs", "2"]);
    let mut silent = Ws::connect(&server.url).await;
    let mut talker = Ws::connect(&server.url).await;
    let mut pinger = Ws::connect(&server.url).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        talker.call("GetState", json!([])).await;
        use futures_util::SinkExt;
        pinger
            .ws
            .send(tokio_tungstenite::tungstenite::Message::Ping(
                vec![1].into(),
            ))
            .await
            .expect("ping");
    }
    let frame = silent
        .recv_close(Duration::from_secs(2))
        .await
        .expect("a close frame with a reason");
    assert_eq!(u16::from(frame.code), 1000);
    assert!(frame.reason.contains("idle"), "{}", frame.reason);
    // Alive after 5 s, more than twice the timeout.
    assert_eq!(talker.call("GetState", json!([])).await, json!("Available"));
    assert_eq!(pinger.call("GetState", json!([])).await, json!("Available"));
}

/// A client that stops reading must not hold up anyone else; it is disconnected once its
/// queue is full.
#[tokio::test]
async fn a_client_that_stops_reading_does_not_delay_others() {
    let server = Server::start(&["--send-queue", "64", "--command-burst", "100000"]);
    let mut stalled = Ws::connect_small_buffer(&server.url).await;
    stalled.call("GetState", json!([])).await; // subscribed; from now on it never reads
    let mut reader = Ws::connect(&server.url).await;
    let mut driver = Ws::connect(&server.url).await;
    // Each round: 10 calls in and out (40 notifications) in one batch; the reader must
    // receive all of them, in order, while the stalled client's buffers fill up.
    let batch: Vec<_> = (0..10)
        .flat_map(|_| {
            [
                json!({"jsonrpc":"2.0","method":"Sim.IncomingCall","params":["+358401234567"]}),
                json!({"jsonrpc":"2.0","method":"Sim.RemoteHangUp","params":[]}),
            ]
        })
        .collect();
    let batch = serde_json::Value::Array(batch).to_string();
    // Until the stalled client is dropped: how soon depends on how much the kernel
    // buffers for it, so rounds go on (bounded) until the server holds one connection
    // fewer.
    let mut received = 0usize;
    let mut rounds = 0usize;
    while open_connections(server.port) == 3 {
        assert!(rounds < 10_000, "the stalled client was never dropped");
        for _ in 0..100 {
            driver.send(&batch).await;
            for _ in 0..40 {
                // The driver is on the same phone: it reads its notifications too.
                driver.recv().await;
                let n = reader.recv().await;
                let expect = [
                    "CallComing",
                    "StateChanged",
                    "CallDisconnected",
                    "StateChanged",
                ][received % 4];
                assert_eq!(
                    n["method"], expect,
                    "notification {received} in round {rounds}"
                );
                received += 1;
            }
            rounds += 1;
        }
    }
    assert_eq!(received, rounds * 40);
    // The stalled client was dropped: reading now ends before it has everything.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        use futures_util::StreamExt;
        let mut count = 0usize;
        while let Some(Ok(_)) = stalled.ws.next().await {
            count += 1;
        }
        count
    })
    .await
    .expect("the stalled connection was closed");
    assert!(
        got < rounds * 40,
        "the stalled client got everything ({got})"
    );
    let (_, stderr, _) = server.terminate();
    let why = stderr
        .lines()
        .find(|l| l.contains("connection closed") && l.contains("conn=1 "))
        .unwrap_or_else(|| panic!("no close line for the stalled client:\n{stderr}"));
    assert!(why.contains("too slow"), "{why}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("too slow") && !l.contains("conn=1 ")),
        "only the stalled client was too slow:\n{stderr}"
    );
}

/// The server's count of open connections, from /health.
fn open_connections(port: u16) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).expect("health JSON");
    // This request's own connection is counted too.
    v["connections"]
        .as_u64()
        .expect("connections")
        .saturating_sub(1)
}

/// While one client does not read, 100 others receive every notification, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_get_every_notification_beside_a_stalled_one() {
    let server = Server::start(&["--send-queue", "64", "--command-burst", "100000"]);
    let mut stalled = Ws::connect_small_buffer(&server.url).await;
    stalled.call("GetState", json!([])).await; // subscribed; from now on it never reads
    let rounds = 50;
    let per_round = 40;
    // 100 readers, each checking the order of everything it receives.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(100);
    let mut readers = Vec::new();
    for _ in 0..100 {
        let mut r = Ws::connect(&server.url).await;
        r.call("GetState", json!([])).await;
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let expect = [
                "CallComing",
                "StateChanged",
                "CallDisconnected",
                "StateChanged",
            ];
            for i in 0..rounds * per_round {
                let n = r.recv().await;
                assert_eq!(n["method"], expect[i % 4], "notification {i}");
                if i % per_round == per_round - 1 {
                    let _ = ready.send(()).await;
                }
            }
        }));
    }
    drop(ready_tx);
    let mut driver = Ws::connect(&server.url).await;
    let batch: Vec<_> = (0..per_round / 4)
        .flat_map(|_| {
            [
                json!({"jsonrpc":"2.0","method":"Sim.IncomingCall","params":["+358401234567"]}),
                json!({"jsonrpc":"2.0","method":"Sim.RemoteHangUp","params":[]}),
            ]
        })
        .collect();
    let batch = serde_json::Value::Array(batch).to_string();
    for _ in 0..rounds {
        driver.send(&batch).await;
        for _ in 0..per_round {
            driver.recv().await; // the driver is on the same phone
        }
        // Every reader has the whole round before the next one starts.
        for _ in 0..100 {
            ready_rx.recv().await.expect("readers alive");
        }
    }
    for r in readers {
        r.await.expect("reader saw every notification in order");
    }
    // (That the stalled client is then disconnected is shown by the test above, which
    // runs long enough to fill its socket buffers.)
    drop(stalled);
}

#[tokio::test]
async fn oversized_and_binary_messages_close_with_the_right_codes() {
    let server = Server::start(&["--max-message-bytes", "1024"]);
    let mut big = Ws::connect(&server.url).await;
    let padding = "x".repeat(2000);
    big.send(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{padding}"}}"#
    ))
    .await;
    let frame = big
        .recv_close(Duration::from_secs(5))
        .await
        .expect("close frame");
    assert_eq!(u16::from(frame.code), 1009, "{}", frame.reason);

    let mut bin = Ws::connect(&server.url).await;
    use futures_util::SinkExt;
    bin.ws
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            b"{}".to_vec().into(),
        ))
        .await
        .expect("send binary");
    let frame = bin
        .recv_close(Duration::from_secs(5))
        .await
        .expect("close frame");
    assert_eq!(u16::from(frame.code), 1003, "{}", frame.reason);

    // Others are unaffected.
    let mut ok = Ws::connect(&server.url).await;
    assert_eq!(ok.call("GetState", json!([])).await, json!("Available"));
}

#[tokio::test]
async fn connections_over_the_limit_get_503_until_one_closes() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut a = Ws::connect(&server.url).await;
    let _b = Ws::connect(&server.url).await;
    match Ws::try_connect(&server.url, None).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 503),
        Err(e) => panic!("expected 503, got {e}"),
        Ok(_) => panic!("a third connection should be refused"),
    }
    a.ws.close(None).await.expect("close");
    drop(a);
    let mut accepted = None;
    for _ in 0..50 {
        if let Ok(c) = Ws::try_connect(&server.url, None).await {
            accepted = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = accepted.expect("accepted again once one closed");
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
}

/// A stop request (SIGTERM on Unix; on Windows, where no signal reaches the server, its
/// stdin closed) closes every connection with 1001 and exits 0.
#[tokio::test]
async fn a_stop_request_closes_every_connection_with_1001_and_exits_0() {
    let server = Server::start(&[]);
    let mut a = Ws::connect(&server.url).await;
    let mut b = Ws::connect(&server.url).await;
    a.call("GetState", json!([])).await;
    b.call("GetState", json!([])).await;
    let stop = tokio::task::spawn_blocking(move || server.terminate());
    for c in [&mut a, &mut b] {
        let frame = c
            .recv_close(Duration::from_secs(5))
            .await
            .expect("close frame");
        assert_eq!(u16::from(frame.code), 1001);
    }
    let (status, _, _) = stop.await.expect("join");
    assert!(status.success(), "exit status {status}");
}

/// A stop request sent the moment the start-up line appears still stops the server
/// cleanly (exit 0): it listens for them before printing the line.
#[test]
fn a_stop_request_right_after_the_start_up_line_is_clean() {
    for _ in 0..10 {
        let (status, stderr, _) = Server::start(&[]).terminate();
        assert!(status.success(), "exit status {status}; stderr: {stderr}");
    }
}

/// `--exit-on-stdin-close`: a supervisor (or a Windows harness, where no signal reaches a
/// program without a console) stops the server by closing its stdin: clients get 1001, the
/// server says why and exits 0. Without the flag, a closed stdin changes nothing.
#[tokio::test]
async fn closing_stdin_stops_the_server_cleanly_when_asked_to() {
    use std::process::Stdio;
    for flag in [true, false] {
        let dir = common::TempDir::new("stdin-close");
        let mut cmd = common::command(dir.path());
        cmd.args(["serve", "--port", "0", "--listen", "127.0.0.1", "--log-dir"])
            .arg(dir.path().join("logs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if flag {
            cmd.arg("--exit-on-stdin-close");
        }
        let mut child = cmd.spawn().expect("start bapiws");
        let stdin = child.stdin.take().expect("stdin");
        let (url, _) = common::url_from_banner(&common::read_banner(&mut child));
        let mut c = Ws::connect(&url).await;
        c.call("GetState", json!([])).await;
        drop(stdin);
        if flag {
            let frame = c
                .recv_close(Duration::from_secs(10))
                .await
                .expect("close frame");
            assert_eq!(u16::from(frame.code), 1001);
            let status = tokio::task::spawn_blocking(move || {
                let status = common::wait_exit(&mut child, common::WAIT).expect("exited");
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(
                    &mut child.stderr.take().expect("stderr"),
                    &mut err,
                );
                (status, err)
            })
            .await
            .expect("join");
            assert!(status.0.success(), "{}", status.0);
            assert!(status.1.contains("stdin closed"), "{}", status.1);
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(
                c.call("GetState", json!([])).await,
                json!("Available"),
                "still serving with stdin closed"
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn the_log_file_has_the_days_name_and_the_requests() {
    let server = Server::start(&["--sim-auto-answer", "false"]);
    let mut c = Ws::connect_with_origin(&server.url, "https://crm.example").await;
    c.call("CallOut", json!(["+358401234567"])).await;
    c.expect_notification("CallingOut").await;
    c.expect_notification("StateChanged").await;
    c.call("HangUp", json!([])).await;
    c.expect_notification("CallDisconnected").await;
    c.expect_notification("StateChanged").await;
    assert_eq!(c.error_code("Answer", json!([])).await, -32002);
    drop(c);
    let name = format!("BAPIWS_{}.log", chrono::Local::now().format("%Y%m%d"));
    let path = server.log_dir().join(&name);
    assert!(
        server.banner.contains(&name),
        "banner names the log file: {}",
        server.banner
    );
    let (status, _, _dir) = server.terminate();
    assert!(status.success());
    let log = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for needle in ["started", "connection opened", "stopped"] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("call control")).collect();
    assert_eq!(audit.len(), 3, "{log}");
    assert!(audit[0].contains("CallOut") && audit[0].contains("https://crm.example"));
    assert!(audit[0].contains("result=ok"));
    assert!(
        !audit[0].contains("+358401234567"),
        "numbers are masked: {}",
        audit[0]
    );
    assert!(audit[1].contains("HangUp"));
    assert!(audit[2].contains("Answer") && audit[2].contains("-32002"));
}
