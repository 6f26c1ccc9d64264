//! The OpenRPC document (`rpc.discover`, `GET /openrpc.json`), generated from the method
//! table [`METHODS`] and the notification tables: every method the server decodes, with
//! its params as the table lists them, and its result and errors from `describe`.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::api::{EXTENSION_NOTIFICATIONS, METHODS, SUBSCRIBE_PARAM};
use super::jsonrpc::ErrorCode;

/// The OpenRPC version the document follows.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// The documented notifications, with their params.
pub const NOTIFICATIONS: &[(&str, &[&str])] = &[
    ("StateChanged", &["state"]),
    ("CallComing", &["callId", "number"]),
    (
        "QueueCallComing",
        &[
            "callId",
            "queueCallId",
            "callerNumber",
            "queueNumber",
            "queueId",
            "queueName",
        ],
    ),
    ("CallingOut", &["callId", "number"]),
    ("CallConnected", &["callId"]),
    ("CallDisconnected", &["callId", "extraInfo"]),
];

/// What a method returns.
enum Returns {
    Zero,
    CallId,
    State,
    Calls,
    Document,
}

/// A method's summary, result and application errors (beyond -32600…-32602 and -32005,
/// which any method can answer). A method missing here is still listed, with a generic
/// summary: the table, not this function, decides which methods exist.
fn describe(name: &str) -> (&'static str, Returns, &'static [ErrorCode]) {
    use ErrorCode::*;
    const CALL: &[ErrorCode] = &[PhoneUnavailable, NoSuchCall, PhoneRefused, AmbiguousCall];
    match name {
        "Init" => (
            "Choose the phone backend for this connection",
            Returns::Zero,
            &[UnknownBackend],
        ),
        "GetState" => ("The phone's state", Returns::State, &[]),
        "CallOut" => (
            "Start a call",
            Returns::Zero,
            &[PhoneUnavailable, PhoneRefused, NotAllowed],
        ),
        "HangUp" => (
            "End the active call, or the call with callId",
            Returns::Zero,
            &[PhoneUnavailable, NoSuchCall, PhoneRefused],
        ),
        "Answer" => (
            "Answer the latest ringing inbound call, or the call with callId",
            Returns::Zero,
            &[PhoneUnavailable, NoSuchCall, PhoneRefused],
        ),
        "GetActiveCalls" => (
            "The active calls: six strings per call, flat",
            Returns::Calls,
            &[],
        ),
        "Sim.IncomingCall" | "Sim.QueueCall" => (
            "Simulated phone: a call comes in",
            Returns::CallId,
            &[MethodNotFound, PhoneUnavailable, PhoneRefused],
        ),
        "Call.Hold" => ("Put a connected call on hold", Returns::Zero, CALL),
        "Call.Resume" => ("Resume a held call", Returns::Zero, CALL),
        "Call.Transfer" => (
            "Blind transfer ([number, callId?]): the far end of a connected call is asked to call number; attended transfer ([callId, targetCallId]): the far ends of the two calls are connected and both calls end",
            Returns::Zero,
            &[
                PhoneUnavailable,
                NoSuchCall,
                PhoneRefused,
                AmbiguousCall,
                NotAllowed,
            ],
        ),
        "Call.SendDtmf" => (
            "Send DTMF digits (0-9, *, #, A-D) on a connected call",
            Returns::Zero,
            CALL,
        ),
        "Call.Mute" => (
            "Mute the microphone of the current call",
            Returns::Zero,
            &[PhoneUnavailable, NoSuchCall, PhoneRefused],
        ),
        "Call.Unmute" => (
            "Unmute the microphone of the current call",
            Returns::Zero,
            &[PhoneUnavailable, NoSuchCall, PhoneRefused],
        ),
        "Events.Subscribe" => (
            "Receive these extension notifications on this connection",
            Returns::Zero,
            &[],
        ),
        "rpc.discover" => ("This OpenRPC document", Returns::Document, &[]),
        n if n.starts_with("Sim.") => (
            "Simulated phone control",
            Returns::Zero,
            &[MethodNotFound, PhoneUnavailable, NoSuchCall],
        ),
        _ => ("", Returns::Zero, &[]),
    }
}

fn error_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::ParseError => "Parse error",
        ErrorCode::InvalidRequest => "Invalid Request",
        ErrorCode::MethodNotFound => "Method not found (Sim.* on another backend)",
        ErrorCode::InvalidParams => "Invalid params",
        ErrorCode::InternalError => "Internal error",
        ErrorCode::PhoneUnavailable => "Phone unavailable",
        ErrorCode::NoSuchCall => "No such call (data: the fitting call ids, when no id was given)",
        ErrorCode::UnknownBackend => "Unknown backend (data: the configured names)",
        ErrorCode::PhoneRefused => "The phone refused or failed the command",
        ErrorCode::TooManyRequests => "Too many requests",
        ErrorCode::NotAllowed => "The number is not allowed by the dial policy",
        ErrorCode::AmbiguousCall => "Ambiguous call: several calls fit (data: their ids)",
    }
}

fn string_param(name: &str, required: bool) -> Value {
    json!({"name": name, "required": required, "schema": {"type": "string"}})
}

fn result(returns: &Returns) -> Value {
    let schema = match returns {
        Returns::Zero => json!({"type": "integer", "const": 0}),
        Returns::CallId => json!({"type": "string"}),
        Returns::State => json!({"type": "string", "enum": [
            "Available", "Busy", "Away", "BRB", "DND", "OffWork", "Offline"]}),
        Returns::Calls => json!({"type": "array", "items": {"type": "string"}}),
        Returns::Document => json!({"type": "object"}),
    };
    json!({"name": "result", "schema": schema})
}

fn method(name: &str, params: &[&str], required: usize) -> Value {
    let (summary, returns, errors) = describe(name);
    let params: Vec<Value> = if name == "Events.Subscribe" {
        let names: Vec<&str> = EXTENSION_NOTIFICATIONS.iter().map(|(n, _)| *n).collect();
        vec![json!({
            "name": SUBSCRIBE_PARAM.trim_end_matches('…'),
            "required": true,
            "description": "One or more notification names, by position (or {\"names\": [...]})",
            "schema": {"type": "string", "enum": names},
        })]
    } else {
        params
            .iter()
            .enumerate()
            .map(|(i, p)| string_param(p, i < required))
            .collect()
    };
    let mut errors: Vec<Value> = errors
        .iter()
        .map(|&c| json!({"code": c.code(), "message": error_message(c)}))
        .collect();
    if name != "rpc.discover" && name != "GetState" && name != "GetActiveCalls" {
        let c = ErrorCode::TooManyRequests;
        errors.push(json!({"code": c.code(), "message": error_message(c)}));
    }
    let mut m = json!({
        "name": name,
        "paramStructure": if name == "Events.Subscribe" { "by-position" } else { "either" },
        "params": params,
        "result": result(&returns),
    });
    if !summary.is_empty() {
        m["summary"] = json!(summary);
    }
    if !errors.is_empty() {
        m["errors"] = json!(errors);
    }
    m
}

fn notification(name: &str, params: &[&str], extension: bool) -> Value {
    json!({
        "name": name,
        "extension": extension,
        "params": params.iter().map(|p| string_param(p, true)).collect::<Vec<_>>(),
    })
}

fn build() -> Value {
    let methods: Vec<Value> = METHODS
        .iter()
        .map(|(name, params, required)| method(name, params, *required))
        .collect();
    let notifications: Vec<Value> = NOTIFICATIONS
        .iter()
        .map(|(n, p)| notification(n, p, false))
        .chain(
            EXTENSION_NOTIFICATIONS
                .iter()
                .map(|(n, p)| notification(n, p, true)),
        )
        .collect();
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "bapiws: the EnreachClientAPI over a local WebSocket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "JSON-RPC 2.0. Method names are case-insensitive. Extension notifications (extension: true) reach only connections that asked with Events.Subscribe.",
        },
        "methods": methods,
        "x-notifications": notifications,
    })
}

static DOCUMENT: LazyLock<(Value, String)> = LazyLock::new(|| {
    let v = build();
    let text = v.to_string();
    (v, text)
});

/// The document.
pub fn document() -> &'static Value {
    &DOCUMENT.0
}

/// The document as JSON text.
pub fn document_text() -> &'static str {
    &DOCUMENT.1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method name that `decode_method` dispatches on (read from its source, so a
    /// method added there but not to the table fails here) is in the document.
    #[test]
    fn every_method_in_code_is_in_the_document() {
        let source = include_str!("api.rs");
        let body = source
            .split("pub fn decode_method")
            .nth(1)
            .and_then(|b| b.split("\n}\n").next())
            .expect("decode_method's body");
        let dispatched: Vec<&str> = body
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let rest = l.strip_prefix('"')?;
                let (name, tail) = rest.split_once('"')?;
                tail.trim_start().starts_with("=>").then_some(name)
            })
            .collect();
        assert!(dispatched.len() > 10, "read the dispatch: {dispatched:?}");
        let documented: Vec<&str> = document()["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for name in dispatched.iter().chain(METHODS.iter().map(|(n, _, _)| n)) {
            assert!(
                documented.contains(name),
                "{name} is in the code but not in the OpenRPC document"
            );
        }
        // The last arm of the dispatch is `_ =>` (Sim.SetOnline): it is in the table.
        assert!(documented.contains(&"Sim.SetOnline"));
        // Every method documented decodes.
        for name in &documented {
            let r = super::super::api::decode_method(name, super::super::jsonrpc::Params::None);
            assert!(
                !matches!(r, Err(ref e) if e.code == ErrorCode::MethodNotFound),
                "{name}"
            );
        }
    }

    #[test]
    fn the_document_is_json_text_of_itself() {
        let parsed: Value = serde_json::from_str(document_text()).expect("JSON");
        assert_eq!(&parsed, document());
        assert_eq!(parsed["openrpc"], OPENRPC_VERSION);
    }
}
