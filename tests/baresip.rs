//! End-to-end tests of the baresip backend with real processes: the bapiws server managing
//! a baresip phone, and a second baresip as the remote party, both on loopback only.
// The baresip backend runs on Linux (Unix) only: on Windows it is not offered
// (docs/windows.md), so these tests are not built there.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::baresip::{Ports, Remote, connect_when_ready, managed_baresip_pid, remote, start};
use common::{Server, Ws};
use serde_json::json;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Calls the far end and has it answer; returns the call id once connected.
async fn connected_outbound_call(c: &mut Ws, far: Remote) -> (Remote, String) {
    c.call("CallOut", json!(["1002"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    let (far, _) = remote(far, |r| {
        r.wait_event("CALL_INCOMING", EVENT_WAIT);
        r.accept();
    })
    .await;
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    (far, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_out_connect_and_remote_hang_up() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;

    c.send(r#"{"jsonrpc":"2.0","id":1455629182045,"params":["1002"],"method":"CallOut"}"#)
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"jsonrpc":"2.0","result":0,"id":1455629182045}"#
    );
    let out = c.expect_notification("CallingOut").await;
    assert_eq!(out[1], "1002");
    let id = out[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);

    // The remote party rings, then answers.
    let (r, incoming) = remote(r, |r| r.wait_event("CALL_INCOMING", EVENT_WAIT)).await;
    assert_eq!(incoming.peer_uri, ports.phone_uri());
    let (r, _) = remote(r, |r| r.accept()).await;
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);

    let calls = c.call("GetActiveCalls", json!([])).await;
    let calls: Vec<&str> = calls
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(calls.len(), 6, "{calls:?}");
    assert_eq!(
        &calls[..5],
        ["1", "Outbound", "Connected", "1002", id.as_str()]
    );

    // The remote hangs up.
    let sip_id = incoming.id.clone();
    let (_r, _) = remote(r, move |r| r.hangup(sip_id.as_deref())).await;
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert!(!ended[1].is_empty(), "baresip's reason: {ended:?}");
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    assert_eq!(c.call("GetActiveCalls", json!([])).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_in_answer_and_hang_up() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    assert_eq!(c.error_code("Answer", json!([])).await, -32002);
    assert_eq!(c.error_code("HangUp", json!([])).await, -32002);
    assert_eq!(c.error_code("Sim.IncomingCall", json!(["1"])).await, -32601);

    let uri = ports.phone_uri();
    let (r, _) = remote(r, move |r| r.dial(&uri)).await;
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "1002", "the caller's number");
    let id = coming[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    let calls = c.call("GetActiveCalls", json!([])).await;
    assert_eq!(calls[1], "Inbound");
    assert_eq!(calls[2], "Ringing");

    assert_eq!(c.call("Answer", json!([])).await, json!(0));
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    // The remote party's own events confirm the call really was answered …
    let (r, established) = remote(r, |r| r.wait_event("CALL_ESTABLISHED", EVENT_WAIT)).await;
    assert_eq!(established.direction, "outgoing");

    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    // … and really ended.
    let (_r, closed) = remote(r, |r| r.wait_event("CALL_CLOSED", EVENT_WAIT)).await;
    assert_eq!(closed.id, established.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_inbound_call_and_hang_up_ends_the_right_one() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;

    let uri = ports.phone_uri();
    let (r, _) = remote(r, move |r| r.dial(&uri)).await;
    let first = c.expect_notification("CallComing").await[0].clone();
    c.expect_notification("StateChanged").await;
    c.call("Answer", json!([])).await;
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [first.as_str()]
    );
    let (r, first_est) = remote(r, |r| r.wait_event("CALL_ESTABLISHED", EVENT_WAIT)).await;

    // A second call while the first is connected.
    let uri = ports.phone_uri();
    let (r, _) = remote(r, move |r| r.dial(&uri)).await;
    let second = c.expect_notification("CallComing").await[0].clone();
    assert_ne!(first, second);
    let calls = c.call("GetActiveCalls", json!([])).await;
    assert_eq!(calls.as_array().map(Vec::len), Some(12));
    assert_eq!(
        (calls[2].clone(), calls[8].clone()),
        (json!("Connected"), json!("Ringing"))
    );

    // HangUp ends the connected call, not the ringing one.
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], first);
    let (r, closed) = remote(r, |r| r.wait_event("CALL_CLOSED", EVENT_WAIT)).await;
    assert_eq!(closed.id, first_est.id, "the remote saw the first call end");
    let calls = c.call("GetActiveCalls", json!([])).await;
    assert_eq!(calls.as_array().map(Vec::len), Some(6));
    assert_eq!(calls[4], json!(second));

    // Now Answer takes the second one; HangUp ends it.
    c.call("Answer", json!([])).await;
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [second.as_str()]
    );
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], second);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    drop(r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_killed_mid_call_is_restarted() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    let (r, id) = connected_outbound_call(&mut c, r).await;

    let pid = managed_baresip_pid(server.child.id()).expect("the managed baresip runs");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = tokio::time::Instant::now();
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.call("GetState", json!([])).await, json!("Offline"));
    assert_eq!(c.error_code("CallOut", json!(["1002"])).await, -32001);

    // Restarted by the server; the same WebSocket sees the phone come back.
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let new_pid = managed_baresip_pid(server.child.id()).expect("restarted");
    assert_ne!(new_pid, pid);
    // And it works again.
    c.call("CallOut", json!(["1002"])).await;
    c.expect_notification("CallingOut").await;
    drop(r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_out_to_nobody_ends_with_the_reason() {
    let ports = Ports::next();
    let _r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    assert_eq!(c.call("CallOut", json!(["999"])).await, json!(0));
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended, [id.as_str(), "404 Not Found"]);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    assert_eq!(c.call("GetActiveCalls", json!([])).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_managed_baresip() {
    let ports = Ports::next();
    let server = start(&ports);
    let _c = connect_when_ready(&server).await;
    let server_pid = server.child.id();
    let pid = managed_baresip_pid(server_pid).expect("the managed baresip runs");
    let (status, _, _) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "baresip {pid} still runs after the server stopped"
    );
}

/// Attach mode: bapiws connects to a baresip the user runs, and reconnects when that
/// baresip goes away and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_mode_reconnects_to_a_user_run_baresip() {
    let phone_ports = Ports::next();
    let far_ports = Ports::next();
    // The user's own baresip (its control port is taken over by bapiws) and a far end.
    let phone = Remote::start(&phone_ports);
    let far = Remote::start(&far_ports);
    let flags = [
        "--default-backend".to_owned(),
        "baresip".to_owned(),
        "--baresip-mode".to_owned(),
        "attach".to_owned(),
        "--baresip-ctrl-address".to_owned(),
        format!("127.0.0.1:{}", phone_ports.remote_ctrl),
        "--baresip-dial-uri".to_owned(),
        format!("sip:{{number}}@127.0.0.1:{}", far_ports.remote_sip),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&flags);
    let mut c = connect_when_ready(&server).await;

    c.call("CallOut", json!(["1002"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    c.expect_notification("StateChanged").await;
    let (far, _) = remote(far, |r| {
        r.wait_event("CALL_INCOMING", EVENT_WAIT);
        r.accept();
    })
    .await;
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);

    // The user's baresip dies: the phone is offline at once, and the call ends when
    // the reconnect shows baresip is gone (not merely the connection).
    drop(phone);
    assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);

    // It comes back: bapiws reconnects by itself (it may have to take the control port
    // back from the helper that started it, so Offline may flap once).
    let _phone = tokio::task::spawn_blocking(move || Remote::start(&phone_ports))
        .await
        .expect("restart");
    let back = async {
        loop {
            let n = c.recv().await;
            if n["method"] == "StateChanged" && n["params"][0] == "Available" {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), back)
        .await
        .expect("reconnected and Available again");
    // (Another Offline/Available flap may still be on its way: skip notifications.)
    assert_eq!(c.control("GetActiveCalls", json!([])).await, json!([]));
    drop(far);
}

/// The control connection drops during a live call while baresip keeps running: the
/// call survives the reconnect under the same id, and can still be hung up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_control_connection_keeps_live_calls() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    let (r, id) = connected_outbound_call(&mut c, r).await;

    // Someone else connects to the phone's control port: baresip drops bapiws.
    let thief = std::net::TcpStream::connect(("127.0.0.1", ports.phone_ctrl)).expect("connect");
    assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
    drop(thief);
    // bapiws reconnects and finds the call still there: Busy, no CallDisconnected.
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    let calls = c.call("GetActiveCalls", json!([])).await;
    assert_eq!(calls[4], json!(id));
    assert_eq!(calls[2], json!("Connected"));
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let (_r, closed) = remote(r, |r| r.wait_event("CALL_CLOSED", EVENT_WAIT)).await;
    assert!(closed.id.is_some());
}

/// baresip 1.0 answers `ok` but answers nothing when two inbound calls ring: Answer
/// must say it failed rather than claim success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_with_two_calls_ringing_never_claims_success_falsely() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    let uri = ports.phone_uri();
    let (_r, _) = remote(r, move |r| {
        r.dial(&uri);
        r.dial(&uri);
    })
    .await;
    let first = c.expect_notification("CallComing").await[0].clone();
    c.expect_notification("StateChanged").await;
    let second = c.expect_notification("CallComing").await[0].clone();
    let resp = c.request("Answer", json!([])).await;
    if resp.get("error").is_some() {
        assert_eq!(resp["error"]["code"], -32004, "{resp}");
    } else {
        // If baresip did answer, it must have been the newest ringing call.
        assert_eq!(
            c.expect_notification("CallConnected").await,
            [second.as_str()]
        );
    }
    let calls = c.call("GetActiveCalls", json!([])).await;
    let states: Vec<(&str, &str)> = calls
        .as_array()
        .expect("array")
        .chunks(6)
        .map(|f| (f[4].as_str().unwrap_or(""), f[2].as_str().unwrap_or("")))
        .collect();
    assert!(states.iter().any(|(i, _)| *i == first), "{states:?}");
    assert!(
        states
            .iter()
            .all(|(_, s)| *s == "Ringing" || *s == "Connected"),
        "{states:?}"
    );
}

/// While bapiws waits for a managed baresip that is slow to open its control port (the
/// attempt lasts up to 5 s), commands fail at once instead of queueing behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_fail_fast_while_baresip_is_starting() {
    let ports = Ports::next();
    let dir = common::TempDir::new("slow-baresip");
    let fake = dir.path().join("baresip-that-never-listens");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 30\n").expect("write the script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut flags = ports.serve_flags();
    flags.extend(["--baresip-binary".to_owned(), fake.display().to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&flags);
    let mut c = Ws::connect(&server.url).await;
    for attempt in 0..3 {
        let started = tokio::time::Instant::now();
        assert_eq!(c.error_code("CallOut", json!(["1002"])).await, -32001);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "attempt {attempt}: answered after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    drop(server);
}

/// Answering a second call while one is connected makes baresip hold the first: the
/// hold state shown is the one baresip reports (`listcalls`), and the first call is
/// connected again once the second ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_a_second_call_shows_the_hold_baresip_made() {
    let ports = Ports::next();
    let r = Remote::start(&ports);
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    let uri = ports.phone_uri();
    let (r, _) = remote(r, move |r| r.dial(&uri)).await;
    let first = c.expect_notification("CallComing").await[0].clone();
    c.expect_notification("StateChanged").await;
    c.call("Answer", json!([])).await;
    c.expect_notification("CallConnected").await;
    let uri = ports.phone_uri();
    let (_r, _) = remote(r, move |r| r.dial(&uri)).await;
    let second = c.expect_notification("CallComing").await[0].clone();
    c.call("Answer", json!([])).await;
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [second.as_str()]
    );
    let states = |calls: serde_json::Value| -> Vec<(String, String)> {
        calls
            .as_array()
            .expect("array")
            .chunks(6)
            .map(|f| {
                (
                    f[4].as_str().unwrap_or("").to_owned(),
                    f[2].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        states(c.call("GetActiveCalls", json!([])).await),
        [
            (first.clone(), "OnHold".to_owned()),
            (second.clone(), "Connected".to_owned())
        ]
    );
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], second);
    assert_eq!(
        states(c.call("GetActiveCalls", json!([])).await),
        [(first.clone(), "Connected".to_owned())]
    );
}
