//! JSON-RPC 2.0 message model: decoding requests (single and batch) and encoding
//! responses and notifications. Knows nothing of phones or methods.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A request id, kept as the exact JSON text the client sent so it is echoed byte for
/// byte (integers above 2^53, strings with escapes, `null`).
#[derive(Clone, Debug)]
pub struct Id(Box<RawValue>);

impl Id {
    /// The id's JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

/// JSON-RPC error codes used by this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Invalid JSON.
    ParseError,
    /// Valid JSON that is not a request object.
    InvalidRequest,
    /// No such method.
    MethodNotFound,
    /// Missing, extra or wrongly typed parameters.
    InvalidParams,
    /// A fault inside the server.
    InternalError,
    /// The phone is offline or the backend cannot be reached.
    PhoneUnavailable,
    /// No call the command could act on.
    NoSuchCall,
    /// Init named a backend that is not configured.
    UnknownBackend,
    /// The phone refused or failed the command.
    PhoneRefused,
    /// The connection sent state-changing commands faster than its rate limit.
    TooManyRequests,
    /// The number is not allowed by the dial policy.
    NotAllowed,
    /// No call id was given and several calls fit.
    AmbiguousCall,
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::PhoneUnavailable => -32001,
            ErrorCode::NoSuchCall => -32002,
            ErrorCode::UnknownBackend => -32003,
            ErrorCode::PhoneRefused => -32004,
            ErrorCode::TooManyRequests => -32005,
            ErrorCode::NotAllowed => -32006,
            ErrorCode::AmbiguousCall => -32007,
        }
    }
}

/// An error to send back to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// The code.
    pub code: ErrorCode,
    /// A human-readable message.
    pub message: String,
    /// Extra detail, where useful.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// The params of a request.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Params {
    /// No `params` member.
    #[default]
    None,
    /// By position.
    Array(Vec<Value>),
    /// By name.
    Object(Map<String, Value>),
}

/// A well-formed request or client notification.
#[derive(Clone, Debug)]
pub struct Request {
    /// `None` for a notification (no reply is sent).
    pub id: Option<Id>,
    /// The method name.
    pub method: String,
    /// The params.
    pub params: Params,
}

/// One element of an incoming message: a request, or the error reply for a malformed one.
pub type Entry = Result<Request, String>;

/// A decoded incoming text message.
#[derive(Debug)]
pub enum Incoming {
    /// One request (or the error reply for it).
    Single(Entry),
    /// A non-empty batch.
    Batch(Vec<Entry>),
    /// The message as a whole is invalid: this is the error reply.
    Invalid(String),
}

fn parse_error(e: &serde_json::Error) -> Incoming {
    Incoming::Invalid(encode_error(
        None,
        &RpcError::new(
            ErrorCode::ParseError,
            "Parse error: the message is not valid JSON",
        )
        .with_data(Value::String(truncate(&e.to_string()))),
    ))
}

/// Decodes one incoming text message; a batch may hold at most `max_batch` requests.
/// A single request is read in one pass; only an error is looked at twice (to tell
/// invalid JSON, -32700, from a valid JSON value that is not a request, -32600).
pub fn decode(text: &str, max_batch: usize) -> Incoming {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<RawRequest>(text) {
            Ok(req) => Incoming::Single(check(req)),
            Err(e) if e.is_syntax() || e.is_eof() => parse_error(&e),
            // A data error came first; the text may still be invalid JSON further on.
            Err(_) => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(e) => parse_error(&e),
                Ok(_) => Incoming::Single(Err(invalid_request(
                    None,
                    "a request must be an object without duplicate members",
                ))),
            },
        },
        _ => decode_slow(text, max_batch),
    }
}

/// Everything but a single request object: batches and invalid messages.
fn decode_slow(text: &str, max_batch: usize) -> Incoming {
    let raw: &RawValue = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return parse_error(&e),
    };
    match raw.get().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = match serde_json::from_str(raw.get()) {
                Ok(items) => items,
                Err(_) => return Incoming::Invalid(invalid_request(None, "malformed batch")),
            };
            if items.is_empty() {
                return Incoming::Invalid(invalid_request(None, "empty batch"));
            }
            if items.len() > max_batch {
                return Incoming::Invalid(invalid_request(
                    None,
                    &format!(
                        "batch too large: {} requests, at most {max_batch}",
                        items.len()
                    ),
                ));
            }
            Incoming::Batch(items.into_iter().map(decode_one).collect())
        }
        _ => Incoming::Invalid(invalid_request(
            None,
            "a request must be a JSON object or an array of them",
        )),
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

fn decode_one(raw: &RawValue) -> Entry {
    // serde would also read a struct from an array; a request must be an object.
    if raw.get().as_bytes().first() != Some(&b'{') {
        return Err(invalid_request(None, "a request must be a JSON object"));
    }
    let Ok(req) = serde_json::from_str::<RawRequest>(raw.get()) else {
        return Err(invalid_request(
            None,
            "a request must be an object without duplicate members",
        ));
    };
    check(req)
}

/// A JSON string's text without reading it again when it holds no escape.
fn json_str(raw: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    let t = raw.get();
    match t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(std::borrow::Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(t)
            .ok()
            .map(std::borrow::Cow::Owned),
    }
}

/// Whether structured params are empty (`[]` or `{}`, whitespace allowed).
fn empty_structure(t: &str) -> bool {
    t.len() >= 2
        && t.get(1..t.len() - 1)
            .is_some_and(|inner| inner.trim().is_empty())
}

/// Checks a request's members.
fn check(req: RawRequest<'_>) -> Entry {
    let id = match req.id {
        None => None,
        Some(r) => match r.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9' | b'n') => Some(Id(r.to_owned())),
            _ => {
                return Err(invalid_request(
                    None,
                    "id must be a string, a number or null",
                ));
            }
        },
    };
    let version_ok = req.jsonrpc.and_then(json_str).is_some_and(|v| v == "2.0");
    if !version_ok {
        return Err(invalid_request(id.as_ref(), "jsonrpc must be \"2.0\""));
    }
    let Some(method) = req
        .method
        .and_then(json_str)
        .map(std::borrow::Cow::into_owned)
    else {
        return Err(invalid_request(id.as_ref(), "method must be a string"));
    };
    let params = match req.params {
        None => Params::None,
        Some(r) if !matches!(r.get().as_bytes().first(), Some(b'[' | b'{')) => {
            return Err(invalid_request(
                id.as_ref(),
                "params must be an array or an object",
            ));
        }
        // The usual `[]`: nothing to read.
        Some(r) if empty_structure(r.get()) => match r.get().as_bytes().first() {
            Some(b'[') => Params::Array(Vec::new()),
            _ => Params::Object(Map::new()),
        },
        // Structured, but unreadable: a duplicate member, a number beyond f64, a lone
        // surrogate, nesting too deep.
        Some(r) => match serde_json::from_str::<Strict>(r.get()) {
            Ok(Strict(Value::Array(a))) => Params::Array(a),
            Ok(Strict(Value::Object(o))) => Params::Object(o),
            Ok(_) => {
                return Err(invalid_request(
                    id.as_ref(),
                    "params must be an array or an object",
                ));
            }
            Err(e) => {
                let why = e.to_string();
                let why = why.split(" at line").next().unwrap_or(&why);
                return Err(encode_error(
                    id.as_ref(),
                    &RpcError::new(
                        ErrorCode::InvalidParams,
                        format!("Invalid params: {}", truncate(why)),
                    ),
                ));
            }
        },
    };
    Ok(Request { id, method, params })
}

/// A JSON value read like [`Value`], except that an object with a duplicate member is
/// refused (serde_json would keep the last one silently).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if members.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member {:?}",
                    truncate(&key)
                )));
            }
            members.insert(key, v);
        }
        Ok(Value::Object(members))
    }
}

fn invalid_request(id: Option<&Id>, why: &str) -> String {
    encode_error(
        id,
        &RpcError::new(ErrorCode::InvalidRequest, format!("Invalid Request: {why}")),
    )
}

/// Shortens client-controlled text before it is repeated in an error or a log line (at
/// most [`crate::settings::MAX_SHOWN`] characters, then `…`).
pub fn truncate(s: &str) -> String {
    crate::settings::shown(s)
}

#[derive(Serialize)]
struct SuccessOut<'a, T: Serialize> {
    jsonrpc: &'static str,
    result: &'a T,
    id: &'a RawValue,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    jsonrpc: &'static str,
    error: ErrorObject<'a>,
    id: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct NotificationOut<'a, T: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    params: &'a T,
}

/// Encodes a success response.
pub fn encode_success<T: Serialize>(id: &Id, result: &T) -> String {
    let out = SuccessOut {
        jsonrpc: "2.0",
        result,
        id: &id.0,
    };
    serde_json::to_string(&out).unwrap_or_else(|_| internal_error(id))
}

/// Writes a success response whose result `write_result` writes as JSON: the same bytes
/// as [`encode_success`], without going through serde for the envelope.
pub fn write_success_with(out: &mut Vec<u8>, id: &Id, write_result: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","result":"#);
    write_result(out);
    out.extend_from_slice(br#","id":"#);
    out.extend_from_slice(id.as_json().as_bytes());
    out.push(b'}');
}

/// Writes an error response into `out` (`id: null` when the id is unknown).
pub fn write_error(out: &mut Vec<u8>, id: Option<&Id>, err: &RpcError) {
    out.extend_from_slice(encode_error(id, err).as_bytes());
}

/// Encodes an error response (`id: null` when the id is unknown).
pub fn encode_error(id: Option<&Id>, err: &RpcError) -> String {
    let out = ErrorOut {
        jsonrpc: "2.0",
        error: ErrorObject {
            code: err.code.code(),
            message: &err.message,
            data: err.data.as_ref(),
        },
        id: id.map(|i| &*i.0),
    };
    serde_json::to_string(&out).unwrap_or_else(|_| {
        r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":null}"#.into()
    })
}

fn internal_error(id: &Id) -> String {
    encode_error(
        Some(id),
        &RpcError::new(ErrorCode::InternalError, "Internal error"),
    )
}

/// Encodes a notification (a message without id).
pub fn encode_notification<T: Serialize>(method: &str, params: &T) -> String {
    let out = NotificationOut {
        jsonrpc: "2.0",
        method,
        params,
    };
    serde_json::to_string(&out).unwrap_or_default()
}

/// Joins encoded responses into one batch reply.
pub fn encode_batch(replies: &[String]) -> String {
    let len = replies.iter().map(|r| r.len() + 1).sum::<usize>() + 1;
    let mut out = String::with_capacity(len);
    out.push('[');
    for (i, r) in replies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> Entry {
        match decode(text, 100) {
            Incoming::Single(e) => e,
            other => panic!("{text}: expected a single entry, got {other:?}"),
        }
    }

    #[test]
    fn both_ways_of_writing_a_success_agree() {
        let id = match single(r#"{"jsonrpc":"2.0","id":"a\u0062","method":"x"}"#) {
            Ok(req) => req.id,
            Err(e) => panic!("{e}"),
        };
        let Some(id) = id else { panic!("an id") };
        let a = encode_success(&id, &"Available").into_bytes();
        let mut b = Vec::new();
        write_success_with(&mut b, &id, |o| o.extend_from_slice(br#""Available""#));
        assert_eq!(a, b);
    }

    #[test]
    fn ids_are_echoed_exactly() {
        let cases = [
            "1455629097084",
            "18446744073709551616123",
            "\"1455629182021\"",
            "\"a\\u0041\"",
            "-5",
            "1.5e3",
            "null",
        ];
        for id in cases {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"GetState"}}"#);
            let req = single(&text).expect("valid request");
            let got = req.id.expect("has id");
            assert_eq!(got.as_json(), id);
            assert_eq!(
                encode_success(&got, &0),
                format!(r#"{{"jsonrpc":"2.0","result":0,"id":{id}}}"#)
            );
        }
    }

    #[test]
    fn decode_table() {
        // (input, Ok(method, has_id, params kind) | Err(code, echoed id))
        type Want = Result<(&'static str, bool, &'static str), (i64, &'static str)>;
        let cases: &[(&str, Want)] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"GetState","params":[]}"#,
                Ok(("GetState", true, "array")),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"GetState"}"#,
                Ok(("GetState", false, "none")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"CallOut","params":{"number":"1"}}"#,
                Ok(("CallOut", true, "object")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"X","extra":true}"#,
                Ok(("X", true, "none")),
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"GetState"}"#,
                Err((-32600, "1")),
            ),
            (r#"{"id":7,"method":"GetState"}"#, Err((-32600, "7"))),
            (r#"{"jsonrpc":"2.0","id":1,"method":5}"#, Err((-32600, "1"))),
            (r#"{"jsonrpc":"2.0","id":1}"#, Err((-32600, "1"))),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"A","params":"x"}"#,
                Err((-32600, "1")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"A","params":null}"#,
                Err((-32600, "1")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"A"}"#,
                Err((-32600, "null")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"A"}"#,
                Err((-32600, "null")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"A"}"#,
                Err((-32600, "null")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"A"}"#,
                Err((-32600, "null")),
            ),
            (r#"{"jsonrpc":2.0,"id":1,"method":"A"}"#, Err((-32600, "1"))),
            (
                r#"{"jsonrpc":"2\u002e0","id":1,"method":"A"}"#,
                Ok(("A", true, "none")),
            ),
        ];
        for (input, want) in cases {
            let got = single(input);
            match (want, got) {
                (Ok((m, has_id, kind)), Ok(req)) => {
                    assert_eq!(req.method, *m, "{input}");
                    assert_eq!(req.id.is_some(), *has_id, "{input}");
                    let k = match req.params {
                        Params::None => "none",
                        Params::Array(_) => "array",
                        Params::Object(_) => "object",
                    };
                    assert_eq!(k, *kind, "{input}");
                }
                (Err((code, id)), Err(reply)) => {
                    let v: Value = serde_json::from_str(&reply).expect("reply is JSON");
                    assert_eq!(v["error"]["code"], *code, "{input}");
                    assert_eq!(v["id"].to_string(), *id, "{input}");
                }
                (want, got) => panic!("{input}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn whole_message_errors() {
        let cases = [
            ("", -32700),
            ("{", -32700),
            ("{\"jsonrpc\":\"2.0\",\"method\":\"A\"} x", -32700),
            ("[]", -32600),
            ("1", -32600),
            ("\"GetState\"", -32600),
            ("null", -32600),
            ("[1,2,3]", -32600),
        ];
        for (input, code) in cases {
            let Incoming::Invalid(reply) = decode(input, 2) else {
                panic!("{input:?}: expected a whole-message error")
            };
            let v: Value = serde_json::from_str(&reply).expect("reply is JSON");
            assert_eq!(v["error"]["code"], code, "{input:?}");
            assert_eq!(v["id"], Value::Null, "{input:?}");
        }
    }

    #[test]
    fn batch_keeps_order_and_errors() {
        let Incoming::Batch(entries) = decode(
            r#"[{"jsonrpc":"2.0","id":1,"method":"A"},1,{"jsonrpc":"2.0","method":"B"}]"#,
            3,
        ) else {
            panic!("expected a batch")
        };
        assert_eq!(entries.len(), 3);
        assert!(entries[0].is_ok());
        assert!(entries[1].is_err());
        assert!(entries[2].as_ref().is_ok_and(|r| r.id.is_none()));
        // serde would read a struct from an array; a request must be an object.
        let Incoming::Batch(entries) = decode(r#"[["2.0","GetState",[],1]]"#, 3) else {
            panic!("expected a batch")
        };
        assert!(entries[0].is_err());
    }

    #[test]
    fn error_shape() {
        let err = RpcError::new(ErrorCode::NoSuchCall, "no active call");
        assert_eq!(
            encode_error(None, &err),
            r#"{"jsonrpc":"2.0","error":{"code":-32002,"message":"no active call"},"id":null}"#
        );
        assert_eq!(
            encode_notification("StateChanged", &["Busy"]),
            r#"{"jsonrpc":"2.0","method":"StateChanged","params":["Busy"]}"#
        );
        assert_eq!(encode_batch(&["1".into(), "2".into()]), "[1,2]");
    }

    #[test]
    fn long_text_is_truncated() {
        let long = "x".repeat(1000);
        let t = truncate(&long);
        assert!(t.chars().count() <= crate::settings::MAX_SHOWN + 1);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const CODES: [i64; 5] = [-32700, -32600, -32601, -32602, -32603];

        proptest! {
            /// Any text decodes without panicking, and a whole-message error is a
            /// standard JSON-RPC error object with id null.
            #[test]
            fn any_text_decodes(text in any::<String>()) {
                match decode(&text, 100) {
                    Incoming::Invalid(reply) => {
                        let v: Value = serde_json::from_str(&reply).expect("reply is JSON");
                        prop_assert!(CODES.contains(&v["error"]["code"].as_i64().unwrap_or(0)));
                        prop_assert_eq!(&v["id"], &Value::Null);
                    }
                    Incoming::Single(_) | Incoming::Batch(_) => {}
                }
            }

            /// Any JSON value decodes without panicking.
            #[test]
            fn any_json_decodes(v in arb_json()) {
                let _ = decode(&v.to_string(), 100);
            }

            /// Integer and string ids of any size come back byte for byte.
            #[test]
            fn ids_echo_exactly(digits in "-?[1-9][0-9]{0,40}", s in "[ -~]{0,40}") {
                let string_id = serde_json::to_string(&s).expect("string");
                for id in [digits.as_str(), string_id.as_str()] {
                    let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"GetState"}}"#);
                    let Incoming::Single(Ok(req)) = decode(&text, 100) else {
                        return Err(TestCaseError::fail(format!("{text} did not decode")));
                    };
                    let got = req.id.expect("id");
                    prop_assert_eq!(got.as_json(), id);
                    let tail = format!(r#""id":{id}}}"#);
                    let encoded = encode_success(&got, &0);
                    prop_assert!(encoded.ends_with(&tail), "{} does not end with {}", encoded, tail);
                }
            }

            /// A batch of n requests decodes to n entries, in order.
            #[test]
            fn batches_keep_order(n in 1usize..=100) {
                let items: Vec<String> = (0..n)
                    .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"M{i}"}}"#))
                    .collect();
                let Incoming::Batch(entries) = decode(&format!("[{}]", items.join(",")), 100) else {
                    return Err(TestCaseError::fail("not a batch"));
                };
                prop_assert_eq!(entries.len(), n);
                for (i, e) in entries.iter().enumerate() {
                    let req = e.as_ref().expect("valid");
                    prop_assert_eq!(req.method.clone(), format!("M{i}"));
                }
            }
        }

        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                "[ -~]{0,12}".prop_map(Value::String),
                Just(Value::String("jsonrpc".into())),
                Just(Value::String("2.0".into())),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("jsonrpc".to_owned()),
                            Just("id".to_owned()),
                            Just("method".to_owned()),
                            Just("params".to_owned()),
                            "[a-z]{1,6}",
                        ],
                        inner,
                        0..5
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }
    }
}
