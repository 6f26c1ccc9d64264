//! Hostile and malformed input over a real WebSocket, as a table: each case with its
//! exact expected outcome, and after each one the same connection (where the protocol
//! allows) or a new one still works. The server must never panic, and never log a
//! request body in full.

mod common;

use std::time::Duration;

use common::{Server, Ws};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// What goes over the wire.
enum Send {
    Text(String),
    Binary(Vec<u8>),
    /// A text frame with these (possibly invalid UTF-8) bytes.
    RawText(Vec<u8>),
    /// One text message in several frames.
    Fragments(Vec<String>),
}

/// What must come back.
#[derive(Debug)]
enum Expect {
    /// One error object with this code (and `id: null` when `null_id`).
    Error(i64, bool),
    /// One success result equal to this.
    Result(Value),
    /// A batch reply with this many entries.
    Batch(usize),
    /// Nothing at all.
    Nothing,
    /// A close frame with this code.
    Close(u16),
    /// Exactly this text.
    Raw(&'static str),
}

fn t(s: &str) -> Send {
    Send::Text(s.to_owned())
}

fn req(method: &str, params: Value) -> Send {
    Send::Text(json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string())
}

fn cases() -> Vec<(&'static str, Send, Expect)> {
    use Expect::*;
    let deep_array = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let deep_params = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"GetState","params":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let many_params: Vec<Value> = (0..20_000).map(|_| json!(1)).collect();
    let batch_of = |n: usize| {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "GetState"}))
            .collect();
        Send::Text(Value::Array(items).to_string())
    };
    let notifications: Vec<Value> = (0..50)
        .map(|_| json!({"jsonrpc": "2.0", "method": "GetState"}))
        .collect();
    vec![
        // Invalid JSON of many kinds: -32700, id null.
        ("empty message", t(""), Error(-32700, true)),
        ("whitespace", t("   \n\t"), Error(-32700, true)),
        ("open brace", t("{"), Error(-32700, true)),
        ("close bracket", t("]"), Error(-32700, true)),
        (
            "trailing comma",
            t(r#"{"jsonrpc":"2.0","method":"GetState",}"#),
            Error(-32700, true),
        ),
        ("single quotes", t("{'jsonrpc':'2.0'}"), Error(-32700, true)),
        ("bare word", t("GetState"), Error(-32700, true)),
        ("NaN", t("NaN"), Error(-32700, true)),
        (
            "Infinity",
            t(r#"{"jsonrpc":"2.0","id":Infinity,"method":"GetState"}"#),
            Error(-32700, true),
        ),
        (
            "missing colon",
            t(r#"{"jsonrpc" "2.0"}"#),
            Error(-32700, true),
        ),
        (
            "unterminated string",
            t(r#"{"jsonrpc":"2.0"#),
            Error(-32700, true),
        ),
        (
            "trailing garbage",
            t(r#"{"jsonrpc":"2.0","method":"GetState"} x"#),
            Error(-32700, true),
        ),
        ("comment", t("// hello\n{}"), Error(-32700, true)),
        (
            "hex number",
            t(r#"{"jsonrpc":"2.0","id":0x10,"method":"GetState"}"#),
            Error(-32700, true),
        ),
        (
            "bad escape",
            t(r#"{"jsonrpc":"2.0","method":"\q"}"#),
            Error(-32700, true),
        ),
        (
            "lone surrogate escape",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#),
            Error(-32600, false),
        ),
        // Deep nesting: answered, never a stack overflow.
        ("deeply nested arrays", Send::Text(deep_array), Batch(1)),
        (
            "deeply nested objects",
            Send::Text(deep_object),
            Error(-32600, true),
        ),
        // Structured params that cannot be read are invalid params, not an invalid
        // request.
        (
            "deeply nested params",
            Send::Text(deep_params),
            Error(-32602, false),
        ),
        (
            "lone surrogate in params",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"CallOut","params":["\ud800"]}"#),
            Error(-32602, false),
        ),
        (
            "number beyond f64 in params",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"CallOut","params":[1e999]}"#),
            Error(-32602, false),
        ),
        (
            "duplicate member in params",
            t(
                r#"{"jsonrpc":"2.0","id":1,"method":"CallOut","params":{"number":"1","number":"2"}}"#,
            ),
            Error(-32602, false),
        ),
        (
            "array as a request",
            t(r#"[["2.0","GetState",[],1]]"#),
            Batch(1),
        ),
        // An id beyond f64 is still echoed exactly as sent.
        (
            "number out of range",
            t(r#"{"jsonrpc":"2.0","id":1e400,"method":"GetState"}"#),
            Raw(r#"{"jsonrpc":"2.0","result":"Available","id":1e400}"#),
        ),
        ("NUL byte", t("\u{0}"), Error(-32700, true)),
        // Valid JSON, not a request: -32600.
        ("number", t("42"), Error(-32600, true)),
        ("string", t(r#""GetState""#), Error(-32600, true)),
        ("null", t("null"), Error(-32600, true)),
        ("true", t("true"), Error(-32600, true)),
        ("empty batch", t("[]"), Error(-32600, true)),
        ("empty object", t("{}"), Error(-32600, true)),
        (
            "no jsonrpc",
            t(r#"{"id":1,"method":"GetState"}"#),
            Error(-32600, false),
        ),
        (
            "jsonrpc 1.0",
            t(r#"{"jsonrpc":"1.0","id":1,"method":"GetState"}"#),
            Error(-32600, false),
        ),
        (
            "jsonrpc number",
            t(r#"{"jsonrpc":2,"id":1,"method":"GetState"}"#),
            Error(-32600, false),
        ),
        (
            "method number",
            t(r#"{"jsonrpc":"2.0","id":1,"method":1}"#),
            Error(-32600, false),
        ),
        (
            "method null",
            t(r#"{"jsonrpc":"2.0","id":1,"method":null}"#),
            Error(-32600, false),
        ),
        (
            "method array",
            t(r#"{"jsonrpc":"2.0","id":1,"method":["GetState"]}"#),
            Error(-32600, false),
        ),
        (
            "params string",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"GetState","params":"x"}"#),
            Error(-32600, false),
        ),
        (
            "params number",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"GetState","params":5}"#),
            Error(-32600, false),
        ),
        (
            "params null",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"GetState","params":null}"#),
            Error(-32600, false),
        ),
        (
            "id object",
            t(r#"{"jsonrpc":"2.0","id":{},"method":"GetState"}"#),
            Error(-32600, true),
        ),
        (
            "id array",
            t(r#"{"jsonrpc":"2.0","id":[1],"method":"GetState"}"#),
            Error(-32600, true),
        ),
        (
            "id boolean",
            t(r#"{"jsonrpc":"2.0","id":true,"method":"GetState"}"#),
            Error(-32600, true),
        ),
        (
            "duplicate member",
            t(r#"{"jsonrpc":"2.0","id":1,"method":"GetState","method":"HangUp"}"#),
            Error(-32600, true),
        ),
        ("batch over the limit", batch_of(101), Error(-32600, true)),
        ("batch of thousands", batch_of(1200), Error(-32600, true)),
        // Methods.
        (
            "unknown method",
            req("Dial", json!([])),
            Error(-32601, false),
        ),
        (
            "reserved rpc. method",
            req("rpc.describe", json!([])),
            Error(-32601, false),
        ),
        ("empty method", req("", json!([])), Error(-32601, false)),
        (
            "method with a space",
            req("GetState ", json!([])),
            Error(-32601, false),
        ),
        (
            "huge method name",
            req(&"M".repeat(20_000), json!([])),
            Error(-32601, false),
        ),
        (
            "unicode method",
            req("GetStat\u{0435}", json!([])),
            Error(-32601, false),
        ),
        // Params: wrong counts and types in every field.
        (
            "GetState with a param",
            req("GetState", json!(["x"])),
            Error(-32602, false),
        ),
        (
            "GetActiveCalls with an object param",
            req("GetActiveCalls", json!({"a": 1})),
            Error(-32602, false),
        ),
        (
            "HangUp with a param",
            req("HangUp", json!([1])),
            Error(-32602, false),
        ),
        (
            "Answer with a param",
            req("Answer", json!([null])),
            Error(-32602, false),
        ),
        (
            "Init with a number",
            req("Init", json!([1])),
            Error(-32602, false),
        ),
        (
            "Init with null",
            req("Init", json!([null])),
            Error(-32602, false),
        ),
        (
            "Init with two",
            req("Init", json!(["sim", "sim"])),
            Error(-32602, false),
        ),
        (
            "Init unknown",
            req("Init", json!(["../../etc/passwd"])),
            Error(-32003, false),
        ),
        (
            "CallOut without number",
            req("CallOut", json!([])),
            Error(-32602, false),
        ),
        (
            "CallOut with a number type",
            req("CallOut", json!([358401234567u64])),
            Error(-32602, false),
        ),
        (
            "CallOut with null",
            req("CallOut", json!([null])),
            Error(-32602, false),
        ),
        (
            "CallOut with an array",
            req("CallOut", json!([["1"]])),
            Error(-32602, false),
        ),
        (
            "CallOut with an object",
            req("CallOut", json!([{"n": "1"}])),
            Error(-32602, false),
        ),
        (
            "CallOut with two numbers",
            req("CallOut", json!(["1", "2"])),
            Error(-32602, false),
        ),
        (
            "CallOut named wrong",
            req("CallOut", json!({"num": "1"})),
            Error(-32602, false),
        ),
        (
            "CallOut named wrong type",
            req("CallOut", json!({"number": 1})),
            Error(-32602, false),
        ),
        (
            "CallOut with letters",
            req("CallOut", json!(["040ABC123"])),
            Error(-32602, false),
        ),
        (
            "CallOut SIP URI",
            req("CallOut", json!(["sip:112@evil.example"])),
            Error(-32602, false),
        ),
        (
            "CallOut tel URI",
            req("CallOut", json!(["tel:+358401234567"])),
            Error(-32602, false),
        ),
        (
            "CallOut control character",
            req("CallOut", json!(["040\n1234"])),
            Error(-32602, false),
        ),
        (
            "CallOut NUL",
            req("CallOut", json!(["040\u{0}1234"])),
            Error(-32602, false),
        ),
        (
            "CallOut shell metacharacters",
            req("CallOut", json!(["123;reboot"])),
            Error(-32602, false),
        ),
        (
            "CallOut command substitution",
            req("CallOut", json!(["$(reboot)"])),
            Error(-32602, false),
        ),
        (
            "CallOut pipe",
            req("CallOut", json!(["1|2"])),
            Error(-32602, false),
        ),
        (
            "CallOut hundreds of digits",
            req("CallOut", json!(["1".repeat(300)])),
            Error(-32602, false),
        ),
        (
            "CallOut Arabic-Indic digits",
            req("CallOut", json!(["\u{0661}\u{0662}\u{0663}"])),
            Error(-32602, false),
        ),
        (
            "CallOut fullwidth digits",
            req("CallOut", json!(["\u{FF11}\u{FF12}\u{FF13}"])),
            Error(-32602, false),
        ),
        (
            "CallOut empty",
            req("CallOut", json!([""])),
            Error(-32602, false),
        ),
        (
            "CallOut only plus",
            req("CallOut", json!(["+"])),
            Error(-32602, false),
        ),
        (
            "CallOut two pluses",
            req("CallOut", json!(["++358"])),
            Error(-32602, false),
        ),
        (
            "CallOut star and hash",
            req("CallOut", json!(["*21#"])),
            Error(-32602, false),
        ),
        (
            "huge params array",
            req("GetState", Value::Array(many_params)),
            Error(-32602, false),
        ),
        (
            "Sim availability Offline",
            req("Sim.SetAvailability", json!(["Offline"])),
            Error(-32602, false),
        ),
        (
            "Sim reason with newline",
            req("Sim.RemoteHangUp", json!({"reason": "a\nb"})),
            Error(-32602, false),
        ),
        // Things that work, or get no reply.
        ("batch of 100", batch_of(100), Batch(100)),
        (
            "batch of notifications only",
            Send::Text(Value::Array(notifications).to_string()),
            Nothing,
        ),
        (
            "notification to an unknown method",
            t(r#"{"jsonrpc":"2.0","method":"Nope"}"#),
            Nothing,
        ),
        (
            "fragmented message",
            Send::Fragments(vec![
                r#"{"jsonrpc":"2.0","#.into(),
                r#""id":7,"method":"#.into(),
                r#""GetState"}"#.into(),
            ]),
            Result(json!("Available")),
        ),
        (
            "huge valid id",
            t(r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"GetState"}"#),
            Result(json!("Available")),
        ),
        // Frames the protocol does not accept: the connection closes with the right code.
        (
            "binary frame",
            Send::Binary(br#"{"jsonrpc":"2.0","id":1,"method":"GetState"}"#.to_vec()),
            Close(1003),
        ),
        (
            "invalid UTF-8 in a text frame",
            Send::RawText(vec![b'{', 0xff, 0xfe, b'}']),
            Close(1007),
        ),
        (
            "oversized message",
            Send::Text(format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
                "x".repeat(70_000)
            )),
            Close(1009),
        ),
        (
            "oversized in fragments",
            Send::Fragments(vec!["[".repeat(40_000), "1".repeat(40_000)]),
            Close(1009),
        ),
    ]
}

async fn send(ws: &mut Ws, what: Send) {
    let r = match what {
        Send::Text(s) => ws.ws.send(Message::text(s)).await,
        Send::Binary(b) => ws.ws.send(Message::Binary(b.into())).await,
        Send::RawText(b) => {
            ws.ws
                .send(Message::Frame(Frame::message(
                    b,
                    OpCode::Data(Data::Text),
                    true,
                )))
                .await
        }
        Send::Fragments(parts) => {
            let n = parts.len();
            let mut r = Ok(());
            for (i, p) in parts.into_iter().enumerate() {
                let op = if i == 0 { Data::Text } else { Data::Continue };
                r = ws
                    .ws
                    .send(Message::Frame(Frame::message(
                        p.into_bytes(),
                        OpCode::Data(op),
                        i + 1 == n,
                    )))
                    .await;
                if r.is_err() {
                    break;
                }
            }
            r
        }
    };
    // Writing may fail once the server has closed: the close frame is checked below.
    let _ = r;
}

#[tokio::test]
async fn hostile_inputs_table() {
    let marker = "M".repeat(20_000);
    let mut server = Server::start(&[]);
    let table = cases();
    assert!(table.len() >= 60, "{} cases", table.len());
    eprintln!("{} hostile-input cases", table.len());
    let mut ws = Ws::connect(&server.url).await;
    for (name, input, expect) in table {
        send(&mut ws, input).await;
        match &expect {
            Expect::Close(code) => {
                let frame = ws
                    .recv_close(Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|| panic!("{name}: close frame without code"));
                assert_eq!(u16::from(frame.code), *code, "{name}: {}", frame.reason);
                // A new connection works.
                ws = Ws::connect(&server.url).await;
            }
            Expect::Nothing => ws.expect_silence(Duration::from_millis(200)).await,
            Expect::Error(code, null_id) => {
                let reply = ws.recv().await;
                assert_eq!(reply["error"]["code"], *code, "{name}: {reply}");
                assert!(reply["error"]["message"].is_string(), "{name}: {reply}");
                assert!(reply.get("result").is_none(), "{name}: {reply}");
                if *null_id {
                    assert_eq!(reply["id"], Value::Null, "{name}: {reply}");
                } else {
                    assert_ne!(reply["id"], Value::Null, "{name}: {reply}");
                }
                let text = reply.to_string();
                assert!(
                    text.len() < 1000,
                    "{name}: errors stay short: {} bytes",
                    text.len()
                );
            }
            Expect::Result(v) => {
                let reply = ws.recv().await;
                assert_eq!(&reply["result"], v, "{name}: {reply}");
            }
            Expect::Raw(text) => assert_eq!(ws.recv_text().await, *text, "{name}"),
            Expect::Batch(n) => {
                let reply = ws.recv().await;
                assert_eq!(reply.as_array().map(Vec::len), Some(*n), "{name}");
            }
        }
        // The connection (or its replacement) still works.
        assert_eq!(
            ws.call("GetState", json!([])).await,
            json!("Available"),
            "after {name}"
        );
    }
    // The server is alive, did not panic, and never logged a body in full.
    assert!(
        server_alive(&mut server),
        "the server died during the hostile inputs"
    );
    let (status, stderr, _) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains(&marker),
        "a request body was logged in full"
    );
    assert!(
        !stderr.contains(&"x".repeat(1000)),
        "a request body was logged in full"
    );
}

fn server_alive(server: &mut Server) -> bool {
    matches!(server.child.try_wait(), Ok(None))
}

/// 10,000 requests sent back to back on one connection are all answered, in order.
#[tokio::test]
async fn a_burst_of_ten_thousand_requests_is_answered_in_order() {
    let server = Server::start(&[]);
    let ws = Ws::connect(&server.url).await;
    let (mut sink, mut stream) = ws.ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..10_000u32 {
            let req = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"GetState"}}"#);
            sink.feed(Message::text(req)).await.expect("feed");
        }
        sink.flush().await.expect("flush");
        sink
    });
    let mut next = 0u32;
    while next < 10_000 {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("replies keep coming")
            .expect("open")
            .expect("read");
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["id"], json!(next), "in order");
        assert_eq!(v["result"], json!("Available"));
        next += 1;
    }
    let _ = writer.await;
}
