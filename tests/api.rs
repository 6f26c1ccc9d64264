//! The documented methods and notifications over a real WebSocket to the real server.

mod common;

use std::time::Duration;

use common::{Server, Ws};
use serde_json::json;

/// The spec's "Calling out" example, request for request.
#[tokio::test]
async fn spec_calling_out_example() {
    let server = Server::start(&[]);
    let mut client = Ws::connect(&server.url).await;
    let mut far_end = Ws::connect(&server.url).await;

    client
        .send(
            r#"{"jsonrpc":"2.0","id":1455629182045,"params":["+358449388834"],"method":"CallOut"}"#,
        )
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"{"jsonrpc":"2.0","result":0,"id":1455629182045}"#
    );
    let calling = client.expect_notification("CallingOut").await;
    assert_eq!(calling.len(), 2);
    assert_eq!(calling[1], "+358449388834");
    let id = calling[0].clone();
    assert_eq!(id.len(), 36, "a GUID call id: {id}");
    assert_eq!(client.expect_notification("StateChanged").await, ["Busy"]);
    // The simulated far end answers after 200 ms.
    assert_eq!(
        client.expect_notification("CallConnected").await,
        [id.as_str()]
    );
    // The remote party disconnects, so no HangUp command from this client.
    far_end.control("Sim.RemoteHangUp", json!([])).await;
    assert_eq!(
        client.expect_notification("CallDisconnected").await,
        [id.as_str(), ""]
    );
    assert_eq!(
        client.expect_notification("StateChanged").await,
        ["Available"]
    );
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn methods_succeed_with_the_spec_shapes() {
    let server = Server::start(&["--sim-auto-answer", "false"]);
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("Init", json!(["sim"])).await, json!(0));
    assert_eq!(c.call("Init", json!([])).await, json!(0));
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    assert_eq!(c.call("GetActiveCalls", json!([])).await, json!([]));

    assert_eq!(
        c.call("CallOut", json!(["+358 (44) 938-8834"])).await,
        json!(0)
    );
    let out = c.expect_notification("CallingOut").await;
    assert_eq!(out[1], "+358449388834", "separators are removed");
    c.expect_notification("StateChanged").await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Busy"));

    let calls = c.call("GetActiveCalls", json!([])).await;
    let calls: Vec<&str> = calls
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("strings only"))
        .collect();
    assert_eq!(
        &calls[..5],
        ["1", "Outbound", "Calling", "+358449388834", out[0].as_str()]
    );
    let started = calls[5];
    assert_eq!(started.len(), 23, "yyyy-MM-dd HH:mm:ss.fff: {started}");
    assert_eq!(&started[4..5], "-");
    assert_eq!(&started[10..11], " ");
    assert_eq!(&started[19..20], ".");

    // An inbound call while the outbound one is calling; Answer takes it.
    let inbound = c.call("Sim.IncomingCall", json!(["0505010269"])).await;
    let inbound = inbound.as_str().expect("call id").to_owned();
    assert_eq!(
        c.expect_notification("CallComing").await,
        [inbound.as_str(), "0505010269"]
    );
    assert_eq!(c.call("Answer", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [inbound.as_str()]
    );
    let calls = c.call("GetActiveCalls", json!([])).await;
    assert_eq!(calls.as_array().map(Vec::len), Some(12));
    assert_eq!(calls[6], "2");
    assert_eq!(calls[7], "Inbound");
    assert_eq!(calls[8], "Connected");

    // HangUp ends the connected call, then the one still calling.
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], inbound);
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], out[0]);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    assert_eq!(c.call("GetActiveCalls", json!([])).await, json!([]));
}

#[tokio::test]
async fn methods_fail_with_the_documented_codes() {
    let server = Server::start(&["--sim-auto-answer", "false", "--sim-max-calls", "1"]);
    let mut c = Ws::connect(&server.url).await;
    let cases = [
        ("HangUp", json!([]), -32002),
        ("Answer", json!([]), -32002),
        ("Sim.RemoteAnswer", json!([]), -32002),
        ("Sim.RemoteHangUp", json!(["no-such-call"]), -32002),
        ("CallOut", json!([]), -32602),
        ("CallOut", json!(["abc"]), -32602),
        ("CallOut", json!([""]), -32602),
        ("CallOut", json!([358449388834u64]), -32602),
        ("CallOut", json!(["1", "2"]), -32602),
        ("GetState", json!(["extra"]), -32602),
        ("Init", json!([42]), -32602),
        ("Sim.SetAvailability", json!(["Sleeping"]), -32602),
        ("Init", json!(["voice"]), -32003),
        ("NoSuchMethod", json!([]), -32601),
        ("rpc.describe", json!([]), -32601),
    ];
    for (method, params, code) in cases {
        assert_eq!(
            c.error_code(method, params.clone()).await,
            code,
            "{method} {params}"
        );
    }

    // -32003 lists the names that would work.
    let resp = c.request("Init", json!(["voice"])).await;
    let names = resp["error"]["data"]
        .as_array()
        .expect("data lists backends");
    assert!(names.contains(&json!("sim")), "{resp}");

    // -32004: the phone refuses (the simulated phone holds one call at most here).
    c.call("CallOut", json!(["1"])).await;
    c.expect_notification("CallingOut").await;
    c.expect_notification("StateChanged").await;
    assert_eq!(c.error_code("CallOut", json!(["2"])).await, -32004);
    c.call("HangUp", json!([])).await;
    c.expect_notification("CallDisconnected").await;
    c.expect_notification("StateChanged").await;

    // -32001: the phone is offline.
    c.call("Sim.SetOffline", json!([])).await;
    assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
    assert_eq!(c.call("GetState", json!([])).await, json!("Offline"));
    assert_eq!(c.error_code("CallOut", json!(["1"])).await, -32001);
    assert_eq!(c.error_code("Answer", json!([])).await, -32001);
    assert_eq!(c.error_code("HangUp", json!([])).await, -32001);
    assert_eq!(c.error_code("Sim.IncomingCall", json!(["1"])).await, -32001);
    c.call("Sim.SetOnline", json!([])).await;
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
}

#[tokio::test]
async fn queue_call_then_call_coming_for_the_same_id() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    let id = c
        .call(
            "Sim.QueueCall",
            json!(["+358501231234", "+3581011223", "Master queue 1"]),
        )
        .await;
    let id = id.as_str().expect("call id").to_owned();
    let q = c.expect_notification("QueueCallComing").await;
    assert_eq!(q.len(), 6);
    assert_eq!(q[0], id);
    assert_eq!(q[2], "+358501231234");
    assert_eq!(q[3], "+3581011223");
    assert_eq!(q[5], "Master queue 1");
    assert_eq!(
        c.expect_notification("CallComing").await,
        [id.as_str(), "+358501231234"]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
}

#[tokio::test]
async fn availability_changes_are_notified() {
    let server = Server::start(&["--sim-availability", "Away"]);
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Away"));
    for (set, want) in [
        ("DND", "DND"),
        ("brb", "BRB"),
        ("OffWork", "OffWork"),
        ("Available", "Available"),
    ] {
        c.call("Sim.SetAvailability", json!({"availability": set}))
            .await;
        assert_eq!(c.expect_notification("StateChanged").await, [want]);
        assert_eq!(c.call("GetState", json!([])).await, json!(want));
    }
}

#[tokio::test]
async fn named_params_work_like_positional_ones() {
    let server = Server::start(&["--sim-auto-answer", "false"]);
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("Init", json!({"backend": "sim"})).await, json!(0));
    assert_eq!(
        c.call("CallOut", json!({"number": "+358401234567"})).await,
        json!(0)
    );
    let out = c.expect_notification("CallingOut").await;
    c.expect_notification("StateChanged").await;
    c.call("Sim.RemoteAnswer", json!({"callId": out[0]})).await;
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [out[0].as_str()]
    );
    c.call(
        "Sim.RemoteHangUp",
        json!({"callId": out[0], "reason": "busy here"}),
    )
    .await;
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [out[0].as_str(), "busy here"]
    );
    c.expect_notification("StateChanged").await;
    assert_eq!(c.error_code("CallOut", json!({"phone": "1"})).await, -32602);
}

/// Pages written for the original call `Init ["lync"]` (the documented API's own first
/// example) or `Init ["VfW"]`: both name the default backend.
#[tokio::test]
async fn the_originals_backend_names_work_unchanged() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    c.send(r#"{"jsonrpc":"2.0","id":1455629097083,"params":["lync"],"method":"Init"}"#)
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"jsonrpc":"2.0","result":0,"id":1455629097083}"#
    );
    assert_eq!(c.call("Init", json!(["VfW"])).await, json!(0));
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    // Configured aliases take precedence over the built-in ones.
    let server = Server::start(&["--extra-backend", "agent2=sim", "--alias", "vfw=agent2"]);
    let mut a = Ws::connect(&server.url).await;
    let mut b = Ws::connect(&server.url).await;
    assert_eq!(a.call("Init", json!(["vfw"])).await, json!(0));
    assert_eq!(b.call("Init", json!(["lync"])).await, json!(0));
    // b is on the default (sim): a's availability change on agent2 does not reach it.
    a.call("Sim.SetAvailability", json!(["DND"])).await;
    assert_eq!(a.expect_notification("StateChanged").await, ["DND"]);
    b.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(b.call("GetState", json!([])).await, json!("Available"));
}

/// Everything a request caused reaches the client before the reply of any later request
/// on that connection, even when the later one switches backend.
#[tokio::test]
async fn notifications_survive_a_backend_switch_in_the_same_write() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start(&["--extra-backend", "agent2=sim"]);
    for attempt in 0..5 {
        let mut c = Ws::connect(&server.url).await;
        let call_out = r#"{"jsonrpc":"2.0","id":1,"method":"CallOut","params":["+358401234567"]}"#;
        let init = r#"{"jsonrpc":"2.0","id":2,"method":"Init","params":["agent2"]}"#;
        // Both frames in one write.
        c.ws.feed(Message::text(call_out)).await.expect("feed");
        c.ws.feed(Message::text(init)).await.expect("feed");
        c.ws.flush().await.expect("flush");
        let mut got = Vec::new();
        for _ in 0..4 {
            let m = c.recv().await;
            got.push(match m["method"].as_str() {
                Some(method) => method.to_owned(),
                None => format!("reply {}", m["id"]),
            });
        }
        assert_eq!(
            got,
            ["reply 1", "CallingOut", "StateChanged", "reply 2"],
            "attempt {attempt}"
        );
        // Back on the default backend to end the call.
        assert_eq!(c.control("Init", json!([])).await, json!(0));
        assert_eq!(c.control("HangUp", json!([])).await, json!(0));
    }
}
