//! The call-control extensions (issue 14) on the simulated phone, over a real WebSocket to
//! the real server: every method, every error, the targeting rules, Events.Subscribe,
//! rpc.discover and /openrpc.json, and that a connection that uses no extension receives
//! exactly what it did before, byte for byte.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Server, Ws, brief};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

fn manual() -> Server {
    Server::start(&["--sim-auto-answer", "false", "--command-burst", "100000"])
}

/// An inbound call from `number`, answered; returns its id (the caller's notifications
/// are read).
async fn answered(c: &mut Ws, number: &str) -> String {
    c.drain().await;
    let id = c.call("Sim.IncomingCall", json!([number])).await;
    let id = id.as_str().expect("call id").to_owned();
    let seen = c.drain().await;
    assert_eq!(seen.first(), Some(&format!("CallComing {id} {number}")));
    assert_eq!(c.call("Answer", json!([id])).await, json!(0));
    id
}

trait Quiet {
    async fn drain(&mut self) -> Vec<String>;
}

impl Quiet for Ws {
    /// Every notification that arrives until the connection is quiet, as `brief`.
    async fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(text) = tokio::time::timeout(QUIET, self.ws.recv_text()).await {
            let text = text.expect("read");
            let v: Value = serde_json::from_str(&text).expect("JSON");
            out.push(brief(&v));
        }
        out
    }
}

/// The whole error object of a request.
async fn error(c: &mut Ws, method: &str, params: Value) -> Value {
    let resp = c.request(method, params).await;
    assert!(
        resp.get("error").is_some(),
        "{method}: expected an error: {resp}"
    );
    resp["error"].clone()
}

/// GetActiveCalls as (id, state) pairs.
async fn states(c: &mut Ws) -> Vec<(String, String)> {
    let calls = c.call("GetActiveCalls", json!([])).await;
    let calls = calls.as_array().expect("array").clone();
    calls
        .chunks(6)
        .map(|r| {
            (
                r[4].as_str().expect("id").to_owned(),
                r[2].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn hold_resume_and_targeting() {
    let server = manual();
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(
        c.call("Events.Subscribe", json!(["CallHeld", "CallResumed"]))
            .await,
        json!(0)
    );
    // No call at all: nothing fits.
    let e = error(&mut c, "Call.Hold", json!([])).await;
    assert_eq!(
        (e["code"].clone(), e["data"].clone()),
        (json!(-32002), json!([]))
    );
    let e = error(&mut c, "Call.Resume", json!([])).await;
    assert_eq!(
        (e["code"].clone(), e["data"].clone()),
        (json!(-32002), json!([]))
    );

    let a = answered(&mut c, "0501").await;
    assert_eq!(c.drain().await, [format!("CallConnected {a}")]);
    assert_eq!(states(&mut c).await, [(a.clone(), "Connected".into())]);

    // Without an id: the one connected call.
    assert_eq!(c.call("Call.Hold", json!([])).await, json!(0));
    assert_eq!(c.drain().await, [format!("CallHeld {a}")]);
    assert_eq!(states(&mut c).await, [(a.clone(), "OnHold".into())]);
    // Held already: by id the phone refuses; without id nothing fits.
    assert_eq!(error(&mut c, "Call.Hold", json!([a])).await["code"], -32004);
    assert_eq!(error(&mut c, "Call.Hold", json!([])).await["code"], -32002);
    assert_eq!(c.call("Call.Resume", json!({"callId": a})).await, json!(0));
    assert_eq!(c.drain().await, [format!("CallResumed {a}")]);
    assert_eq!(states(&mut c).await, [(a.clone(), "Connected".into())]);

    // A second call answered: the first is held by the phone (CallHeld too).
    let b = answered(&mut c, "0502").await;
    assert_eq!(
        c.drain().await,
        [format!("CallHeld {a}"), format!("CallConnected {b}")]
    );
    assert_eq!(
        states(&mut c).await,
        [
            (a.clone(), "OnHold".into()),
            (b.clone(), "Connected".into())
        ]
    );
    // Resume without an id: the single held call, and the connected one is held.
    assert_eq!(c.call("Call.Resume", json!([])).await, json!(0));
    assert_eq!(
        c.drain().await,
        [format!("CallHeld {b}"), format!("CallResumed {a}")]
    );
    // Both held: Resume without an id is ambiguous, data lists both, oldest first.
    assert_eq!(c.call("Call.Hold", json!([])).await, json!(0));
    assert_eq!(c.drain().await, [format!("CallHeld {a}")]);
    let e = error(&mut c, "Call.Resume", json!([])).await;
    assert_eq!(e["code"], -32007, "{e}");
    assert_eq!(e["data"], json!([a, b]));
    assert_eq!(
        states(&mut c).await,
        [(a.clone(), "OnHold".into()), (b.clone(), "OnHold".into())],
        "nothing was done"
    );
    // By id it is not ambiguous.
    assert_eq!(c.call("Call.Resume", json!([b])).await, json!(0));
    assert_eq!(c.drain().await, [format!("CallResumed {b}")]);

    // Unknown ids are -32002, with no data; a bad id is -32602.
    for m in ["Call.Hold", "Call.Resume", "HangUp", "Answer"] {
        let e = error(&mut c, m, json!(["no-such-call"])).await;
        assert_eq!(e["code"], -32002, "{m}: {e}");
        assert!(e.get("data").is_none(), "{m}: {e}");
        assert_eq!(error(&mut c, m, json!([""])).await["code"], -32602, "{m}");
        assert_eq!(error(&mut c, m, json!([1])).await["code"], -32602, "{m}");
    }
    // Answer by id of a connected call: refused; HangUp by id ends that call, whatever
    // its state (the held one here, not the connected one HangUp [] would end).
    assert_eq!(error(&mut c, "Answer", json!([b])).await["code"], -32004);
    assert_eq!(c.call("HangUp", json!([a])).await, json!(0));
    assert_eq!(
        c.drain().await,
        [format!("CallDisconnected {a} local hang-up")]
    );
    assert_eq!(states(&mut c).await, [(b.clone(), "Connected".into())]);

    // A ringing call: Answer by id takes that one, not the newest.
    let r1 = c.call("Sim.IncomingCall", json!(["0601"])).await;
    c.drain().await;
    let r2 = c.call("Sim.IncomingCall", json!(["0602"])).await;
    c.drain().await;
    assert_eq!(
        error(&mut c, "Call.Hold", json!([r1])).await["code"],
        -32004
    );
    assert_eq!(c.call("Answer", json!([r1])).await, json!(0));
    assert_eq!(
        c.drain().await,
        [
            format!("CallHeld {b}"),
            format!("CallConnected {}", r1.as_str().unwrap_or_default())
        ]
    );
    // HangUp by id of a ringing call rejects it.
    assert_eq!(c.call("HangUp", json!({"callId": r2})).await, json!(0));
    assert_eq!(
        c.drain().await,
        [format!(
            "CallDisconnected {} rejected",
            r2.as_str().unwrap_or_default()
        )]
    );
}

#[tokio::test]
async fn transfer_dtmf_and_mute() {
    let server = Server::start(&["--sim-auto-answer", "false", "--dial-deny", "+1900*"]);
    let mut c = Ws::connect(&server.url).await;
    c.call(
        "Events.Subscribe",
        json!({"names": ["CallTransferred", "MuteChanged"]}),
    )
    .await;
    // Nothing to act on.
    assert_eq!(
        error(&mut c, "Call.Transfer", json!(["2002"])).await["code"],
        -32002
    );
    assert_eq!(
        error(&mut c, "Call.SendDtmf", json!(["1"])).await["code"],
        -32002
    );
    assert_eq!(error(&mut c, "Call.Mute", json!([])).await["code"], -32002);
    assert_eq!(
        error(&mut c, "Call.Unmute", json!([])).await["code"],
        -32002
    );

    let a = answered(&mut c, "0501").await;
    c.drain().await;
    // DTMF: valid digits, and the rule.
    assert_eq!(
        c.call("Call.SendDtmf", json!(["0123456789*#ABCD"])).await,
        json!(0)
    );
    assert_eq!(c.call("Call.SendDtmf", json!(["abcd", a])).await, json!(0));
    for bad in [
        json!([""]),
        json!(["12E"]),
        json!(["1".repeat(33)]),
        json!([]),
        json!([5]),
    ] {
        assert_eq!(
            error(&mut c, "Call.SendDtmf", bad.clone()).await["code"],
            -32602,
            "{bad}"
        );
    }
    assert_eq!(
        c.drain().await,
        Vec::<String>::new(),
        "DTMF sends no notification"
    );

    // Mute: a toggle in some phones, a state here: a second Mute changes nothing.
    assert_eq!(c.call("Call.Mute", json!([])).await, json!(0));
    assert_eq!(c.drain().await, ["MuteChanged on"]);
    assert_eq!(c.call("Call.Mute", json!([])).await, json!(0));
    assert_eq!(c.drain().await, Vec::<String>::new());
    assert_eq!(c.call("Call.Unmute", json!([])).await, json!(0));
    assert_eq!(c.drain().await, ["MuteChanged off"]);
    assert_eq!(
        error(&mut c, "Call.Mute", json!(["x"])).await["code"],
        -32602
    );

    // Transfer: validated like CallOut, checked against the dial policy.
    assert_eq!(
        error(&mut c, "Call.Transfer", json!(["sip:x@y"])).await["code"],
        -32602
    );
    assert_eq!(
        error(&mut c, "Call.Transfer", json!([])).await["code"],
        -32602
    );
    assert_eq!(
        error(&mut c, "Call.Transfer", json!(["+1 900 123"])).await["code"],
        -32006
    );
    assert_eq!(states(&mut c).await.len(), 1, "nothing was transferred");
    // Muted when the last call ends: unmuted with it.
    c.call("Call.Mute", json!([])).await;
    assert_eq!(c.drain().await, ["MuteChanged on"]);
    assert_eq!(
        c.call("Call.Transfer", json!(["+358 40 123", a])).await,
        json!(0)
    );
    assert_eq!(
        c.drain().await,
        [
            format!("CallTransferred {a} +35840123"),
            format!("CallDisconnected {a} transferred"),
            "MuteChanged off".to_owned(),
            "StateChanged Available".to_owned(),
        ]
    );

    // Two connected-capable calls where only one is connected: no ambiguity.
    let b = answered(&mut c, "0502").await;
    let d = answered(&mut c, "0503").await;
    c.drain().await;
    assert_eq!(c.call("Call.SendDtmf", json!(["5"])).await, json!(0));
    // b is held: a transfer by its id is refused.
    assert_eq!(
        error(&mut c, "Call.Transfer", json!(["1", b])).await["code"],
        -32004
    );

    // Attended transfer: the held b to the connected d. By position or by name; the
    // target must be another active call.
    assert_eq!(
        error(&mut c, "Call.Transfer", json!([b, b])).await["code"],
        -32004
    );
    assert_eq!(
        error(&mut c, "Call.Transfer", json!([b, "no-such-call"])).await["code"],
        -32002
    );
    assert_eq!(
        error(&mut c, "Call.Transfer", json!({"targetCallId": d})).await["code"],
        -32602
    );
    assert_eq!(
        error(
            &mut c,
            "Call.Transfer",
            json!({"number": "1", "targetCallId": d})
        )
        .await["code"],
        -32602
    );
    assert_eq!(
        c.call("Call.Transfer", json!({"callId": b, "targetCallId": d}))
            .await,
        json!(0)
    );
    assert_eq!(
        c.drain().await,
        [
            format!("CallTransferred {b} 0503"),
            format!("CallDisconnected {b} transferred"),
            format!("CallDisconnected {d} transferred"),
            "StateChanged Available".to_owned(),
        ]
    );
    let e = answered(&mut c, "0504").await;
    let f = answered(&mut c, "0505").await;
    c.drain().await;
    assert_eq!(c.call("Call.Transfer", json!([e, f])).await, json!(0));
    assert_eq!(c.drain().await.len(), 4, "both calls ended");

    // The phone offline: -32001.
    c.control("Sim.SetOffline", json!([])).await;
    c.drain().await;
    for (m, p) in [
        ("Call.Hold", json!([])),
        ("Call.Resume", json!([])),
        ("Call.Transfer", json!(["1"])),
        ("Call.SendDtmf", json!(["1"])),
        ("Call.Mute", json!([])),
        ("Call.Unmute", json!([])),
    ] {
        assert_eq!(error(&mut c, m, p).await["code"], -32001, "{m}");
    }
}

#[tokio::test]
async fn subscribe_errors_and_the_rate_limit() {
    let server = Server::start(&[
        "--sim-auto-answer",
        "false",
        "--command-burst",
        "3",
        "--command-rate",
        "1",
    ]);
    let mut c = Ws::connect(&server.url).await;
    for bad in [
        json!([]),
        json!(["CallComing"]),
        json!(["Nope"]),
        json!([1]),
        json!({"names": "CallHeld"}),
        json!({"other": ["CallHeld"]}),
        json!(vec!["CallHeld"; 7]),
    ] {
        let e = error(&mut c, "Events.Subscribe", bad.clone()).await;
        assert_eq!(e["code"], -32602, "{bad}: {e}");
    }
    // Events.Subscribe and the Call.* methods are limited, reads and rpc.discover are not.
    for _ in 0..3 {
        c.call("Events.Subscribe", json!(["CallHeld"])).await;
    }
    assert_eq!(error(&mut c, "Call.Hold", json!([])).await["code"], -32005);
    for _ in 0..5 {
        let doc = c.call("rpc.discover", json!([])).await;
        assert_eq!(doc["openrpc"], "1.3.2");
    }
    // Other rpc.* names stay reserved.
    assert_eq!(
        error(&mut c, "rpc.describe", json!([])).await["code"],
        -32601
    );
}

/// GET over plain HTTP; returns the status and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn rpc_discover_and_openrpc_json_agree_and_list_every_method() {
    let server = manual();
    let mut c = Ws::connect(&server.url).await;
    let doc = c.call("rpc.discover", json!([])).await;
    let (status, body) = http_get(server.port, "/openrpc.json");
    assert_eq!(status, 200);
    let served: Value = serde_json::from_str(&body).expect("JSON document");
    assert_eq!(served, doc);
    let names: Vec<&str> = doc["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for (name, _, _) in bapiws::protocol::api::METHODS {
        assert!(names.contains(name), "{name} missing from the document");
    }
    // Every listed method exists on the server (none answers -32601 on the sim).
    for name in &names {
        let resp = c.request(name, json!({})).await;
        assert_ne!(resp["error"]["code"], -32601, "{name}: {resp}");
        c.drain().await;
    }
    let notifications: Vec<&str> = doc["x-notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for n in [
        "CallComing",
        "CallHeld",
        "CallResumed",
        "CallTransferred",
        "MuteChanged",
    ] {
        assert!(notifications.contains(&n), "{n}");
    }
}

/// A connection that uses no extension receives exactly the documented messages, byte
/// for byte, while another connection on the same phone holds, resumes, mutes and
/// transfers; a subscribed connection receives the extension notifications too.
#[tokio::test]
async fn an_unsubscribed_connection_sees_exactly_the_documented_traffic() {
    let server = manual();
    let mut plain = Ws::connect(&server.url).await;
    let mut agent = Ws::connect(&server.url).await;
    let mut watcher = Ws::connect(&server.url).await;
    watcher
        .call(
            "Events.Subscribe",
            json!(["CallHeld", "CallResumed", "CallTransferred", "MuteChanged"]),
        )
        .await;

    // The plain connection's own requests, exactly as a page written for the original.
    plain
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"Init","params":["lync"]}"#)
        .await;
    assert_eq!(
        plain.recv_text().await,
        r#"{"jsonrpc":"2.0","result":0,"id":1}"#
    );

    let mut got = Vec::new();
    // Reads the plain connection until the reply with this id.
    async fn until_reply(plain: &mut Ws, got: &mut Vec<String>, id: u32) {
        loop {
            let text = plain.recv_text().await;
            let done = text.ends_with(&format!(r#""id":{id}}}"#));
            got.push(text);
            if done {
                break;
            }
        }
    }
    let a = agent
        .control("Sim.IncomingCall", json!(["0505010269"]))
        .await;
    let a = a.as_str().expect("id").to_owned();
    plain
        .send(r#"{"jsonrpc":"2.0","id":2,"method":"Answer","params":[]}"#)
        .await;
    until_reply(&mut plain, &mut got, 2).await;
    let b = agent
        .control("Sim.IncomingCall", json!(["0505010270"]))
        .await;
    let b = b.as_str().expect("id").to_owned();
    // Answering b holds a (CallHeld for subscribers only).
    for (m, p) in [
        ("Answer", json!([b])),
        ("Call.Mute", json!([])),
        ("Call.Resume", json!([a])),
        ("Call.SendDtmf", json!(["1"])),
        ("Call.Unmute", json!([])),
        ("Call.Transfer", json!(["2002", a])),
    ] {
        assert_eq!(agent.control(m, p).await, json!(0), "{m}");
    }
    plain
        .send(r#"{"jsonrpc":"2.0","id":3,"method":"HangUp","params":[]}"#)
        .await;
    until_reply(&mut plain, &mut got, 3).await;
    while let Ok(text) = tokio::time::timeout(QUIET, plain.ws.recv_text()).await {
        got.push(text.expect("read").to_string());
    }
    let n = |m: &str, p: &[&str]| {
        format!(
            r#"{{"jsonrpc":"2.0","method":"{m}","params":{}}}"#,
            serde_json::to_string(p).expect("params")
        )
    };
    let want = vec![
        n("CallComing", &[&a, "0505010269"]),
        n("StateChanged", &["Busy"]),
        r#"{"jsonrpc":"2.0","result":0,"id":2}"#.to_owned(),
        n("CallConnected", &[&a]),
        n("CallComing", &[&b, "0505010270"]),
        n("CallConnected", &[&b]),
        n("CallDisconnected", &[&a, "transferred"]),
        r#"{"jsonrpc":"2.0","result":0,"id":3}"#.to_owned(),
        n("CallDisconnected", &[&b, "local hang-up"]),
        n("StateChanged", &["Available"]),
    ];
    assert_eq!(got, want);

    let seen = watcher.drain().await;
    for ext in [
        format!("CallHeld {a}"),
        "MuteChanged on".to_owned(),
        format!("CallHeld {b}"),
        format!("CallResumed {a}"),
        "MuteChanged off".to_owned(),
        format!("CallTransferred {a} 2002"),
    ] {
        assert!(seen.contains(&ext), "{ext} missing from {seen:#?}");
    }
}

/// The subscription follows the connection across Init.
#[tokio::test]
async fn the_subscription_survives_init() {
    let server = Server::start(&[
        "--sim-auto-answer",
        "false",
        "--extra-backend",
        "agent2=sim",
    ]);
    let mut c = Ws::connect(&server.url).await;
    c.call("Events.Subscribe", json!(["CallHeld"])).await;
    c.call("Init", json!(["agent2"])).await;
    let a = answered(&mut c, "0501").await;
    c.drain().await;
    c.call("Call.Hold", json!([])).await;
    assert_eq!(c.drain().await, [format!("CallHeld {a}")]);
    // Only what was asked for: no CallResumed.
    c.call("Call.Resume", json!([])).await;
    assert_eq!(c.drain().await, Vec::<String>::new());
}
