//! Faults: a control peer that answers garbage, a log folder that cannot be written, and
//! the audit trail's masking switch. The WebSocket client is never dropped.

mod common;

use common::{Server, TempDir, Ws};
use serde_json::json;

/// The baresip backend (Unix only, docs/windows.md) fed garbage by a fake control peer.
#[cfg(unix)]
mod garbage_from_the_phone {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use bapiws::phone::baresip::netstring::{Decoder, encode};
    use serde_json::Value;

    /// A fake baresip control port: answers every request `ok` with its token, and sends
    /// what the test asks it to. (The baresip backend runs on Unix only.)
    struct FakeBaresip {
        stream: TcpStream,
    }

    impl FakeBaresip {
        fn accept(listener: &TcpListener) -> FakeBaresip {
            let (stream, _) = listener.accept().expect("bapiws connects");
            let reader = stream.try_clone().expect("clone");
            // Answer requests in the background.
            std::thread::spawn(move || answer_requests(reader));
            FakeBaresip { stream }
        }

        fn send_raw(&mut self, bytes: &[u8]) {
            let _ = self.stream.write_all(bytes);
        }

        fn send_frame(&mut self, payload: &str) {
            self.send_raw(&encode(payload.as_bytes()));
        }
    }

    fn answer_requests(mut stream: TcpStream) {
        let mut decoder = Decoder::default();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            decoder.feed(&buf[..n]);
            while let Ok(Some(frame)) = decoder.next_frame() {
                let Ok(req) = serde_json::from_slice::<Value>(&frame) else {
                    continue;
                };
                let token = req["token"].as_str().unwrap_or("");
                let resp = json!({"response": true, "ok": true, "data": "", "token": token});
                if stream
                    .write_all(&encode(resp.to_string().as_bytes()))
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_from_the_phone_is_skipped_and_a_corrupt_stream_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = Server::start(&[
            "--default-backend",
            "baresip",
            "--baresip-mode",
            "attach",
            "--baresip-ctrl-address",
            &format!("127.0.0.1:{port}"),
            "--baresip-command-timeout-ms",
            "1000",
        ]);
        let listener2 = listener.try_clone().expect("clone listener");
        let mut fake = tokio::task::spawn_blocking(move || FakeBaresip::accept(&listener2))
            .await
            .expect("accept");
        // Wait until the phone is online, on a probe connection.
        let mut probe = Ws::connect(&server.url).await;
        while probe.control("GetState", json!([])).await != json!("Available") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut c = Ws::connect(&server.url).await;

        // Garbage of several kinds, then a real event: the event still gets through.
        fake.send_frame("this is not JSON");
        fake.send_frame("[1,2,3]");
        fake.send_frame(r#"{"event":true,"type":12,"class":[],"id":{"x":1},"param":null}"#);
        fake.send_frame(r#"{"response":true,"ok":"yes","token":7}"#);
        fake.send_frame(&"{".repeat(10_000));
        fake.send_frame(
            r#"{"event":true,"type":"CALL_INCOMING","class":"call","direction":"incoming","peeruri":"sip:1002@127.0.0.1","id":"abc123","param":"sip:1002@127.0.0.1"}"#,
        );
        let coming = c.expect_notification("CallComing").await;
        assert_eq!(coming[1], "1002");
        assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);

        // A corrupt stream (not a netstring): bapiws drops it and reconnects.
        fake.send_raw(b"garbage without a length:,");
        assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
        let _fake2 = tokio::task::spawn_blocking(move || FakeBaresip::accept(&listener))
            .await
            .expect("reconnected");
        // The call is gone after the reconnect (baresip lists none), then online again.
        assert_eq!(
            c.expect_notification("CallDisconnected").await[0],
            coming[0]
        );
        assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
        // The same WebSocket connection served all along.
        assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
        let (status, stderr, _) = tokio::task::spawn_blocking(move || server.terminate())
            .await
            .expect("join");
        assert!(status.success());
        assert!(
            stderr.contains("neither a response nor an event"),
            "{stderr}"
        );
        assert!(stderr.contains("corrupt"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn an_unwritable_log_folder_does_not_stop_the_server() {
    let dir = TempDir::new("log");
    // A "folder" that is a file: the log cannot be created, whoever we are.
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("write");
    let bad = file.join("logs");
    let server = Server::start(&["--log-dir", bad.to_str().expect("utf-8 path")]);
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    c.call("CallOut", json!(["+358401234567"])).await;
    c.expect_notification("CallingOut").await;
    drop(c);
    let (status, stderr, _) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success());
    assert!(stderr.contains("cannot write the log file"), "{stderr}");
    assert!(stderr.contains("still serving"), "{stderr}");
}

#[tokio::test]
async fn the_audit_trail_masks_numbers_unless_told_not_to() {
    for (flags, shows_full) in [
        (&[][..], false),
        (&["--log-full-numbers", "true"][..], true),
    ] {
        let server = Server::start(flags);
        let mut c = Ws::connect_with_origin(&server.url, "https://crm.example").await;
        c.call("CallOut", json!(["+358401234567"])).await;
        drop(c);
        let (_, stderr, _) = tokio::task::spawn_blocking(move || server.terminate())
            .await
            .expect("join");
        let line = stderr
            .lines()
            .find(|l| l.contains("call control") && l.contains("CallOut"))
            .unwrap_or_else(|| panic!("no audit line:\n{stderr}"));
        assert!(
            line.contains("conn=") && line.contains("https://crm.example"),
            "{line}"
        );
        assert_eq!(line.contains("+358401234567"), shows_full, "{line}");
    }
}
