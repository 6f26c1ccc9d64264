//! JSON-RPC 2.0 over a real WebSocket: ids, notifications, batches and error codes.

mod common;

use std::time::Duration;

use common::{Server, Ws, brief};
use serde_json::{Value, json};

#[tokio::test]
async fn ids_of_every_type_are_echoed_exactly() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    let ids = [
        "1455629097084",
        "9007199254740993",
        "18446744073709551616123",
        "\"1455629182021\"",
        "\"caf\\u00e9\"",
        "-1",
        "0",
        "1.25",
        "null",
    ];
    for id in ids {
        c.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"params":[],"method":"GetState"}}"#
        ))
        .await;
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"jsonrpc":"2.0","result":"Available","id":{id}}}"#),
            "id {id}"
        );
    }
}

/// Each standard error code the wire can produce, with the id the spec requires.
#[tokio::test]
async fn standard_error_codes() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    let cases: &[(&str, i64, Value)] = &[
        ("{not json", -32700, Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"GetState""#,
            -32700,
            Value::Null,
        ),
        ("", -32700, Value::Null),
        ("[]", -32600, Value::Null),
        ("42", -32600, Value::Null),
        (
            r#"{"jsonrpc":"1.0","id":3,"method":"GetState"}"#,
            -32600,
            json!(3),
        ),
        (r#"{"jsonrpc":"2.0","id":4,"method":7}"#, -32600, json!(4)),
        (
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"GetState"}"#,
            -32600,
            Value::Null,
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":"GetState","params":"x"}"#,
            -32600,
            json!(5),
        ),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"Dial","params":[]}"#,
            -32601,
            json!(6),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"s","method":"CallOut","params":[1]}"#,
            -32602,
            json!("s"),
        ),
    ];
    for (text, code, id) in cases {
        c.send(text).await;
        let reply = c.recv().await;
        assert_eq!(reply["jsonrpc"], "2.0", "{text}");
        assert_eq!(reply["error"]["code"], *code, "{text}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{text}: {reply}");
        assert_eq!(reply["id"], *id, "{text}: {reply}");
        assert!(reply.get("result").is_none(), "{text}: {reply}");
    }
    // The connection still works after all of that.
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
}

#[tokio::test]
async fn client_notifications_get_no_reply_but_take_effect() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    c.send(r#"{"jsonrpc":"2.0","method":"GetState","params":[]}"#)
        .await;
    c.send(r#"{"jsonrpc":"2.0","method":"NoSuchMethod"}"#).await;
    c.send(r#"{"jsonrpc":"2.0","method":"CallOut","params":["+358401234567"]}"#)
        .await;
    // No reply to any of them; the CallOut happened.
    let n = c.recv().await;
    assert_eq!(brief(&n).split(' ').next(), Some("CallingOut"), "{n}");
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
}

#[tokio::test]
async fn mixed_batch_is_answered_in_order() {
    let server = Server::start(&["--sim-auto-answer", "false"]);
    let mut c = Ws::connect(&server.url).await;
    c.send(
        r#"[
        {"jsonrpc":"2.0","id":1,"method":"GetState","params":[]},
        {"jsonrpc":"2.0","method":"Sim.SetAvailability","params":["Away"]},
        {"jsonrpc":"2.0","id":"two","method":"NoSuchMethod"},
        {"foo":"boo"},
        5,
        {"jsonrpc":"2.0","id":3,"method":"GetState"},
        {"jsonrpc":"2.0","id":4,"method":"CallOut","params":["x"]}
    ]"#,
    )
    .await;
    // The state change happened inside the batch; its notification may come first.
    let mut reply = c.recv().await;
    if reply.get("method").is_some() {
        assert_eq!(brief(&reply), "StateChanged Away");
        reply = c.recv().await;
    }
    let items = reply.as_array().expect("a batch reply is an array");
    let got: Vec<(Value, Value)> = items
        .iter()
        .map(|r| {
            (
                r["id"].clone(),
                r.get("result")
                    .cloned()
                    .unwrap_or(r["error"]["code"].clone()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!(1), json!("Available")),
            (json!("two"), json!(-32601)),
            (Value::Null, json!(-32600)),
            (Value::Null, json!(-32600)),
            (json!(3), json!("Away")),
            (json!(4), json!(-32602)),
        ]
    );
}

#[tokio::test]
async fn empty_batch_is_one_error_and_notification_batch_gets_nothing() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    c.send("[]").await;
    let reply = c.recv().await;
    assert!(reply.is_object(), "one error object, not an array: {reply}");
    assert_eq!(reply["error"]["code"], -32600);
    assert_eq!(reply["id"], Value::Null);

    c.send(
        r#"[{"jsonrpc":"2.0","method":"GetState"},{"jsonrpc":"2.0","method":"GetActiveCalls","params":[]}]"#,
    )
    .await;
    c.expect_silence(Duration::from_millis(300)).await;
    // The next reply is the next request's, not anything for the batch.
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
}

#[tokio::test]
async fn spec_answer_example_with_a_string_id() {
    let server = Server::start(&[]);
    let mut c = Ws::connect(&server.url).await;
    let mut driver = Ws::connect(&server.url).await;
    driver
        .control("Sim.IncomingCall", json!(["0505010269"]))
        .await;
    c.expect_notification("CallComing").await;
    c.expect_notification("StateChanged").await;
    c.send(r#"{"jsonrpc":"2.0","id":"1455629182021","params":[],"method":"Answer"}"#)
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"jsonrpc":"2.0","result":0,"id":"1455629182021"}"#
    );
    c.expect_notification("CallConnected").await;
}

/// A batch that causes more notifications than the connection's queue holds still works:
/// they are delivered while the batch runs.
#[tokio::test]
async fn a_big_batch_does_not_overflow_its_own_connection() {
    // 400 commands at once on purpose: the rate limit is lifted.
    let server = Server::start(&[
        "--send-queue",
        "32",
        "--max-batch",
        "400",
        "--command-burst",
        "100000",
    ]);
    let mut c = Ws::connect(&server.url).await;
    let batch: Vec<Value> = (0..200)
        .flat_map(|i| {
            [
                json!({"jsonrpc":"2.0","id":i,"method":"CallOut","params":["+358401234567"]}),
                json!({"jsonrpc":"2.0","method":"HangUp"}),
            ]
        })
        .collect();
    c.send(&Value::Array(batch).to_string()).await;
    let mut notifications = 0;
    let reply = loop {
        let msg = c.recv().await;
        if msg.is_array() {
            break msg;
        }
        notifications += 1;
    };
    assert_eq!(
        notifications, 800,
        "CallingOut, Busy, CallDisconnected, Available per call"
    );
    let replies = reply.as_array().expect("array");
    assert_eq!(replies.len(), 200);
    assert!(
        replies
            .iter()
            .enumerate()
            .all(|(i, r)| r["id"] == json!(i) && r["result"] == 0)
    );
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
}

#[tokio::test]
async fn batches_over_the_limit_are_one_error() {
    let server = Server::start(&["--max-batch", "10"]);
    let mut c = Ws::connect(&server.url).await;
    let batch: Vec<Value> = (0..11)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"GetState"}))
        .collect();
    c.send(&Value::Array(batch).to_string()).await;
    let reply = c.recv().await;
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert_eq!(reply["id"], Value::Null);
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 10"))
    );
    // Ten is fine, and large replies (16 calls listed ten times) are delivered whole.
    let mut driver = Ws::connect(&server.url).await;
    for _ in 0..16 {
        driver
            .control("Sim.IncomingCall", json!(["+358401234567"]))
            .await;
    }
    for _ in 0..17 {
        c.recv().await; // 16 × CallComing, StateChanged Busy
    }
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"GetActiveCalls"}))
        .collect();
    c.send(&Value::Array(batch).to_string()).await;
    let reply = c.recv().await;
    let replies = reply.as_array().expect("array");
    assert_eq!(replies.len(), 10);
    assert!(
        replies
            .iter()
            .all(|r| r["result"].as_array().map(Vec::len) == Some(96))
    );
}
