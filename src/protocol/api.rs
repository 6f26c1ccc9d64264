//! The documented API: method names and their params, result shapes, notifications, and
//! the mapping of phone errors to JSON-RPC errors. This is where JSON-RPC meets the phone
//! abstraction; nothing here knows how a phone works.

use std::time::SystemTime;

use serde_json::Value;

use super::jsonrpc::{ErrorCode, Params, RpcError, encode_notification, truncate};
use crate::phone::sim::SimControl;
use crate::phone::{
    Availability, Call, CallAction, CallId, Dtmf, MAX_DTMF, NumberError, PhoneError, PhoneEvent,
    PhoneNumber,
};

/// A decoded method call with typed params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `Init [backend?]`: choose the backend for this connection (`None`: the default).
    Init(Option<String>),
    /// `GetState []`.
    GetState,
    /// `CallOut [number]`.
    CallOut(PhoneNumber),
    /// `HangUp []`: the documented form, without a call id.
    HangUp,
    /// `Answer []`: the documented form, without a call id.
    Answer,
    /// `GetActiveCalls []`.
    GetActiveCalls,
    /// `Sim.*`: drive the simulated phone.
    Sim(SimControl),
    /// An action on one call: `HangUp [callId]`, `Answer [callId]`, `Call.Hold`,
    /// `Call.Resume`, `Call.Transfer`, `Call.SendDtmf`.
    Call {
        /// The call the client named, if any.
        call: Option<CallId>,
        /// What to do.
        action: CallAction,
    },
    /// `Call.Mute []` (`true`) or `Call.Unmute []`.
    Mute(bool),
    /// `Events.Subscribe [name, …]`: the extension notifications asked for, as a mask of
    /// [`EXTENSION_NOTIFICATIONS`] bits.
    Subscribe(u8),
    /// `rpc.discover []`: the OpenRPC document.
    Discover,
}

impl Method {
    /// The canonical method name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Init(_) => "Init",
            Method::GetState => "GetState",
            Method::CallOut(_) => "CallOut",
            Method::HangUp => "HangUp",
            Method::Answer => "Answer",
            Method::GetActiveCalls => "GetActiveCalls",
            Method::Sim(c) => match c {
                SimControl::IncomingCall { .. } => "Sim.IncomingCall",
                SimControl::QueueCall { .. } => "Sim.QueueCall",
                SimControl::RemoteAnswer { .. } => "Sim.RemoteAnswer",
                SimControl::RemoteHangUp { .. } => "Sim.RemoteHangUp",
                SimControl::SetAvailability(_) => "Sim.SetAvailability",
                SimControl::SetOffline => "Sim.SetOffline",
                SimControl::SetOnline => "Sim.SetOnline",
            },
            Method::Call { action, .. } => match action {
                CallAction::Answer => "Answer",
                CallAction::HangUp => "HangUp",
                CallAction::Hold => "Call.Hold",
                CallAction::Resume => "Call.Resume",
                CallAction::Transfer(_) | CallAction::TransferTo(_) => "Call.Transfer",
                CallAction::SendDtmf(_) => "Call.SendDtmf",
            },
            Method::Mute(true) => "Call.Mute",
            Method::Mute(false) => "Call.Unmute",
            Method::Subscribe(_) => "Events.Subscribe",
            Method::Discover => "rpc.discover",
        }
    }

    /// Whether this request controls a call (logged as an audit line).
    pub fn is_call_control(&self) -> bool {
        matches!(
            self,
            Method::CallOut(_)
                | Method::HangUp
                | Method::Answer
                | Method::Call { .. }
                | Method::Mute(_)
        )
    }

    /// Whether this only reads (GetState, GetActiveCalls, rpc.discover): reads are never
    /// rate-limited.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Method::GetState | Method::GetActiveCalls | Method::Discover
        )
    }
}

/// The default queue name of `Sim.QueueCall`.
pub const DEFAULT_QUEUE_NAME: &str = "Simulated queue";

/// Every method name, with the names of its params in positional order and how many are
/// required. The single source for decoding and for `docs/protocol.md`.
pub const METHODS: &[(&str, &[&str], usize)] = &[
    ("Init", &["backend"], 0),
    ("GetState", &[], 0),
    ("CallOut", &["number"], 1),
    ("HangUp", &["callId"], 0),
    ("Answer", &["callId"], 0),
    ("GetActiveCalls", &[], 0),
    ("Sim.IncomingCall", &["number"], 1),
    ("Sim.QueueCall", &["number", "queueNumber", "queueName"], 1),
    ("Sim.RemoteAnswer", &["callId"], 0),
    ("Sim.RemoteHangUp", &["callId", "reason"], 0),
    ("Sim.SetAvailability", &["availability"], 1),
    ("Sim.SetOffline", &[], 0),
    ("Sim.SetOnline", &[], 0),
    ("Call.Hold", &["callId"], 0),
    ("Call.Resume", &["callId"], 0),
    // `[number, callId?]` (blind) or `[callId, targetCallId]` (attended); by name
    // `{number, callId?}` or `{callId, targetCallId}`.
    ("Call.Transfer", &["number", "callId", "targetCallId"], 0),
    ("Call.SendDtmf", &["digits", "callId"], 1),
    ("Call.Mute", &[], 0),
    ("Call.Unmute", &[], 0),
    // Repeated: `[name, name, …]` by position, `{"names": [name, …]}` by name.
    ("Events.Subscribe", &[SUBSCRIBE_PARAM], 1),
    ("rpc.discover", &[], 0),
];

/// The name of `Events.Subscribe`'s repeated param.
pub const SUBSCRIBE_PARAM: &str = "name…";

/// The extension notifications a connection can ask for with `Events.Subscribe`, each
/// with its params; bit `i` of a subscription mask is entry `i`.
pub const EXTENSION_NOTIFICATIONS: &[(&str, &[&str])] = &[
    ("CallHeld", &["callId"]),
    ("CallResumed", &["callId"]),
    ("CallTransferred", &["callId", "number"]),
    ("MuteChanged", &["state"]),
    ("CallHeldByFarEnd", &["callId"]),
    ("CallResumedByFarEnd", &["callId"]),
];

/// The subscription bit of an event: 0 for the documented notifications, which every
/// connection receives.
pub fn extension_bit(event: &PhoneEvent) -> u8 {
    match event {
        PhoneEvent::CallHeld { .. } => 1,
        PhoneEvent::CallResumed { .. } => 1 << 1,
        PhoneEvent::CallTransferred { .. } => 1 << 2,
        PhoneEvent::MuteChanged(_) => 1 << 3,
        PhoneEvent::CallHeldByFarEnd { .. } => 1 << 4,
        PhoneEvent::CallResumedByFarEnd { .. } => 1 << 5,
        _ => 0,
    }
}

/// A method's entry in [`METHODS`]: the exact name by a `match` (no scan), any other
/// case by a case-insensitive search.
fn lookup(name: &str) -> Option<&'static (&'static str, &'static [&'static str], usize)> {
    let exact = match name {
        "Init" => Some(0),
        "GetState" => Some(1),
        "CallOut" => Some(2),
        "HangUp" => Some(3),
        "Answer" => Some(4),
        "GetActiveCalls" => Some(5),
        _ => None,
    };
    match exact {
        Some(i) => METHODS.get(i),
        None => METHODS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name)),
    }
}

/// What a method answers, encoded straight into the reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `0`: done.
    Zero,
    /// A fixed string (GetState).
    Text(&'static str),
    /// A string (a new call's id).
    Owned(String),
    /// A list of strings (GetActiveCalls).
    List(Vec<String>),
    /// A fixed JSON document and its text (rpc.discover).
    Document(&'static Value, &'static str),
}

impl Answer {
    /// Writes the answer's JSON into `out`: our own fixed strings (plain ASCII) directly,
    /// the rest through serde.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Answer::Zero => out.push(b'0'),
            Answer::Document(_, text) => out.extend_from_slice(text.as_bytes()),
            Answer::Text(t) if t.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                out.push(b'"');
                out.extend_from_slice(t.as_bytes());
                out.push(b'"');
            }
            other => {
                if serde_json::to_writer(&mut *out, other).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
        }
    }
}

impl serde::Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Zero => s.serialize_u8(0),
            Answer::Text(t) => s.serialize_str(t),
            Answer::Owned(t) => s.serialize_str(t),
            Answer::List(l) => l.serialize(s),
            Answer::Document(v, _) => v.serialize(s),
        }
    }
}

/// Decodes a method name (case-insensitive) and its params.
pub fn decode_method(name: &str, params: Params) -> Result<Method, RpcError> {
    let Some(&(canonical, names, required)) = lookup(name) else {
        return Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("Method not found: {}", truncate(name)),
        ));
    };
    if canonical == "Events.Subscribe" {
        return subscribe(params).map(Method::Subscribe);
    }
    let mut args = take_params(canonical, names, required, params)?.into_iter();
    let mut next = || args.next().flatten();
    let method = match canonical {
        "Init" => Method::Init(next()),
        "GetState" => Method::GetState,
        "CallOut" => Method::CallOut(number(canonical, next())?),
        "HangUp" => match next() {
            None => Method::HangUp,
            id => targeted(canonical, id, CallAction::HangUp)?,
        },
        "Answer" => match next() {
            None => Method::Answer,
            id => targeted(canonical, id, CallAction::Answer)?,
        },
        "GetActiveCalls" => Method::GetActiveCalls,
        "Call.Hold" => targeted(canonical, next(), CallAction::Hold)?,
        "Call.Resume" => targeted(canonical, next(), CallAction::Resume)?,
        "Call.Transfer" => {
            let (first, second, third) = (next(), next(), next());
            let attended = |call: Option<String>, target: String| {
                let target = call_id(canonical, "targetCallId", target)?;
                targeted(canonical, call, CallAction::TransferTo(target))
            };
            match (first, second, third) {
                // By name: {callId, targetCallId}.
                (None, Some(call), Some(target)) => attended(Some(call), target)?,
                (None, None, Some(_)) => {
                    return Err(invalid(canonical, "callId is required with targetCallId"));
                }
                (Some(_), _, Some(_)) => {
                    return Err(invalid(
                        canonical,
                        "give a number (blind transfer) or a targetCallId (attended), not both",
                    ));
                }
                // By position: [callId, targetCallId] when the first is no number.
                (Some(f), Some(s), None) if PhoneNumber::parse(&f).is_err() => {
                    attended(Some(f), s)?
                }
                (f, call, None) => {
                    let number = number(canonical, f)?;
                    targeted(canonical, call, CallAction::Transfer(number))?
                }
            }
        }
        "Call.SendDtmf" => {
            let text = next().unwrap_or_default();
            let digits = Dtmf::parse(&text).ok_or_else(|| {
                invalid(
                    canonical,
                    format!("digits must be 1 to {MAX_DTMF} of 0-9, *, #, A-D"),
                )
            })?;
            targeted(canonical, next(), CallAction::SendDtmf(digits))?
        }
        "Call.Mute" => Method::Mute(true),
        "Call.Unmute" => Method::Mute(false),
        "rpc.discover" => Method::Discover,
        "Sim.IncomingCall" => Method::Sim(SimControl::IncomingCall {
            number: number(canonical, next())?,
        }),
        "Sim.QueueCall" => {
            let number = number(canonical, next())?;
            let queue_number = next().unwrap_or_default();
            let queue_name = next().unwrap_or_else(|| DEFAULT_QUEUE_NAME.to_owned());
            Method::Sim(SimControl::QueueCall {
                number,
                queue_number: bounded_text(canonical, "queueNumber", queue_number)?,
                queue_name: bounded_text(canonical, "queueName", queue_name)?,
            })
        }
        "Sim.RemoteAnswer" => Method::Sim(SimControl::RemoteAnswer {
            call: next().map(CallId::from_string),
        }),
        "Sim.RemoteHangUp" => {
            let call = next().map(CallId::from_string);
            let reason = bounded_text(canonical, "reason", next().unwrap_or_default())?;
            Method::Sim(SimControl::RemoteHangUp { call, reason })
        }
        "Sim.SetAvailability" => {
            let text = next().unwrap_or_default();
            let a = Availability::parse(&text).ok_or_else(|| {
                invalid(
                    canonical,
                    format!(
                        "availability must be one of {}",
                        Availability::ALL.map(|a| a.as_str()).join(", ")
                    ),
                )
            })?;
            Method::Sim(SimControl::SetAvailability(a))
        }
        "Sim.SetOffline" => Method::Sim(SimControl::SetOffline),
        _ => Method::Sim(SimControl::SetOnline),
    };
    Ok(method)
}

/// The longest call id accepted.
const MAX_CALL_ID: usize = 128;

/// A call id param (`name` in errors): 1 to [`MAX_CALL_ID`] bytes, no control characters.
fn call_id(method: &str, name: &str, id: String) -> Result<CallId, RpcError> {
    if id.is_empty() || id.len() > MAX_CALL_ID || id.chars().any(char::is_control) {
        return Err(invalid(
            method,
            format!("{name} must be 1 to {MAX_CALL_ID} bytes without control characters"),
        ));
    }
    Ok(CallId::from_string(id))
}

/// A call action on the named call, or on the single call that fits.
fn targeted(method: &str, call: Option<String>, action: CallAction) -> Result<Method, RpcError> {
    let call = call.map(|id| call_id(method, "callId", id)).transpose()?;
    Ok(Method::Call { call, action })
}

/// `Events.Subscribe`'s params: one or more notification names, by position or as
/// `{"names": […]}`; at most one of each.
fn subscribe(params: Params) -> Result<u8, RpcError> {
    const METHOD: &str = "Events.Subscribe";
    let known = || {
        EXTENSION_NOTIFICATIONS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let values = match params {
        Params::None => Vec::new(),
        Params::Array(a) => a,
        Params::Object(mut o) => {
            let names = o.remove("names");
            if let Some(k) = o.keys().next() {
                return Err(invalid(
                    METHOD,
                    format!("unknown param {:?}, expected names", truncate(k)),
                ));
            }
            match names {
                Some(Value::Array(a)) => a,
                None => Vec::new(),
                Some(_) => return Err(invalid(METHOD, "names must be an array of strings")),
            }
        }
    };
    if values.is_empty() || values.len() > EXTENSION_NOTIFICATIONS.len() {
        return Err(invalid(
            METHOD,
            format!(
                "1 to {} notification names expected, of {}",
                EXTENSION_NOTIFICATIONS.len(),
                known()
            ),
        ));
    }
    let mut mask = 0u8;
    for v in values {
        let Value::String(name) = v else {
            return Err(invalid(METHOD, "every name must be a string"));
        };
        let Some(i) = EXTENSION_NOTIFICATIONS
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            return Err(invalid(
                METHOD,
                format!(
                    "unknown notification {:?}; one of {}",
                    truncate(&name),
                    known()
                ),
            ));
        };
        mask |= 1 << i;
    }
    Ok(mask)
}

/// The longest free-text param accepted (queue names, reasons).
const MAX_TEXT_PARAM: usize = 256;

fn bounded_text(method: &str, name: &str, text: String) -> Result<String, RpcError> {
    if text.chars().count() > MAX_TEXT_PARAM || text.chars().any(char::is_control) {
        return Err(invalid(
            method,
            format!(
                "{name} must be at most {MAX_TEXT_PARAM} characters without control characters"
            ),
        ));
    }
    Ok(text)
}

fn invalid(method: &str, why: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidParams,
        format!("Invalid params for {method}: {why}"),
    )
}

fn number(method: &str, text: Option<String>) -> Result<PhoneNumber, RpcError> {
    let text = text.unwrap_or_default();
    PhoneNumber::parse(&text).map_err(|e: NumberError| match e {
        // That message states the rule already.
        NumberError::InvalidCharacter => invalid(method, e),
        _ => invalid(
            method,
            format!("{e}; a number is an optional leading '+' and 1 to 32 digits (spaces and -.() are ignored)"),
        ),
    })
}

/// Checks the params against the method's list of string params and returns them in
/// positional order.
fn take_params(
    method: &str,
    names: &[&str],
    required: usize,
    params: Params,
) -> Result<Vec<Option<String>>, RpcError> {
    let expect = || {
        if names.is_empty() {
            "no params".to_owned()
        } else {
            format!("[{}] ({} required)", names.join(", "), required)
        }
    };
    let values: Vec<Option<Value>> = match params {
        Params::None => Vec::new(),
        Params::Array(a) => {
            if a.len() > names.len() {
                return Err(invalid(
                    method,
                    format!("{} params given, expected {}", a.len(), expect()),
                ));
            }
            a.into_iter().map(Some).collect()
        }
        Params::Object(mut o) => {
            let out = names.iter().map(|n| o.remove(*n)).collect();
            if let Some(k) = o.keys().next() {
                return Err(invalid(
                    method,
                    format!("unknown param {:?}, expected {}", truncate(k), expect()),
                ));
            }
            out
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match values.get(i).cloned().flatten() {
            Some(Value::String(s)) => out.push(Some(s)),
            Some(_) => return Err(invalid(method, format!("{name} must be a string"))),
            None if i < required => {
                return Err(invalid(
                    method,
                    format!("{name} is required, expected {}", expect()),
                ));
            }
            None => out.push(None),
        }
    }
    Ok(out)
}

/// The JSON-RPC error for a call-control extension the backend does not support.
pub fn unsupported_call_control(method: &str) -> RpcError {
    RpcError::new(
        ErrorCode::MethodNotFound,
        format!("Method not found: this phone does not support {method}"),
    )
}

/// The JSON-RPC error for a phone error.
pub fn phone_error(e: &PhoneError) -> RpcError {
    match e {
        PhoneError::Unavailable(m) => RpcError::new(ErrorCode::PhoneUnavailable, m.clone()),
        PhoneError::NoSuchCall(m) => RpcError::new(ErrorCode::NoSuchCall, m.clone()),
        PhoneError::NoCallFits(m) => {
            RpcError::new(ErrorCode::NoSuchCall, m.clone()).with_data(Value::Array(Vec::new()))
        }
        PhoneError::Ambiguous(ids) => RpcError::new(
            ErrorCode::AmbiguousCall,
            format!(
                "ambiguous call: {} calls fit; give a call id (data lists them)",
                ids.len()
            ),
        )
        .with_data(Value::Array(
            ids.iter()
                .map(|id| Value::String(id.as_str().to_owned()))
                .collect(),
        )),
        PhoneError::Refused(m) => RpcError::new(ErrorCode::PhoneRefused, m.clone()),
        PhoneError::Unsupported => RpcError::new(
            ErrorCode::MethodNotFound,
            "Method not found: Sim.* methods exist only on the simulated phone (Init [\"sim\"])",
        ),
    }
}

/// `started` as the API shows it: `yyyy-MM-dd HH:mm:ss.fff`, local time.
pub fn format_started(t: SystemTime) -> String {
    let local: chrono::DateTime<chrono::Local> = t.into();
    local.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// GetActiveCalls' result: six strings per call, flat.
pub fn active_calls(calls: &[Call]) -> Vec<String> {
    let mut out = Vec::with_capacity(calls.len() * 6);
    for (i, c) in calls.iter().enumerate() {
        out.push((i + 1).to_string());
        out.push(c.direction.as_str().to_owned());
        out.push(c.state.as_str().to_owned());
        out.push(c.number.clone());
        out.push(c.id.as_str().to_owned());
        out.push(format_started(c.started));
    }
    out
}

/// The notification for a phone event.
pub fn encode_event(event: &PhoneEvent) -> String {
    match event {
        PhoneEvent::StateChanged(s) => encode_notification("StateChanged", &[s.as_str()]),
        PhoneEvent::CallComing { id, number } => {
            encode_notification("CallComing", &[id.as_str(), number])
        }
        PhoneEvent::QueueCallComing {
            id,
            queue_call_id,
            caller,
            queue_number,
            queue_id,
            queue_name,
        } => encode_notification(
            "QueueCallComing",
            &[
                id.as_str(),
                queue_call_id,
                caller,
                queue_number,
                queue_id,
                queue_name,
            ],
        ),
        PhoneEvent::CallingOut { id, number } => {
            encode_notification("CallingOut", &[id.as_str(), number])
        }
        PhoneEvent::CallConnected { id } => encode_notification("CallConnected", &[id.as_str()]),
        PhoneEvent::CallDisconnected { id, reason } => {
            encode_notification("CallDisconnected", &[id.as_str(), reason])
        }
        PhoneEvent::CallHeld { id } => encode_notification("CallHeld", &[id.as_str()]),
        PhoneEvent::CallResumed { id } => encode_notification("CallResumed", &[id.as_str()]),
        PhoneEvent::CallTransferred { id, number } => {
            encode_notification("CallTransferred", &[id.as_str(), number])
        }
        PhoneEvent::MuteChanged(on) => {
            encode_notification("MuteChanged", &[if *on { "on" } else { "off" }])
        }
        PhoneEvent::CallHeldByFarEnd { id } => {
            encode_notification("CallHeldByFarEnd", &[id.as_str()])
        }
        PhoneEvent::CallResumedByFarEnd { id } => {
            encode_notification("CallResumedByFarEnd", &[id.as_str()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{CallState, Direction, PhoneState};
    use serde_json::json;

    fn params(v: Value) -> Params {
        match v {
            Value::Null => Params::None,
            Value::Array(a) => Params::Array(a),
            Value::Object(o) => Params::Object(o),
            other => panic!("bad test params {other}"),
        }
    }

    #[test]
    fn answers_written_directly_match_serde() {
        for a in [
            Answer::Zero,
            Answer::Text("Available"),
            Answer::Text("OffWork"),
            Answer::Owned("a\"b\u{1}".into()),
            Answer::List(vec!["1".into(), "x\ny".into()]),
        ] {
            let mut direct = Vec::new();
            a.write_json(&mut direct);
            assert_eq!(direct, serde_json::to_vec(&a).unwrap_or_default(), "{a:?}");
        }
    }

    #[test]
    fn the_exact_lookup_agrees_with_the_table() {
        for (name, _, _) in METHODS {
            assert_eq!(lookup(name).map(|m| m.0), Some(*name));
            assert_eq!(lookup(&name.to_ascii_lowercase()).map(|m| m.0), Some(*name));
        }
        assert!(lookup("GetStat").is_none());
    }

    /// docs/protocol.md lists exactly the methods and params of [`METHODS`].
    #[test]
    fn the_documented_method_table_matches_the_code() {
        let doc = include_str!("../../docs/protocol.md");
        let section = doc
            .split("\n## Methods\n")
            .nth(1)
            .expect("a Methods section");
        let documented: Vec<(String, String)> = section
            .lines()
            .skip_while(|l| !l.starts_with("| Method |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
                (cells[1].to_owned(), cells[2].to_owned())
            })
            .collect();
        let code: Vec<(String, String)> = METHODS
            .iter()
            .map(|(name, params, required)| {
                let list: Vec<String> = params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if i < *required {
                            p.to_string()
                        } else {
                            format!("{p}?")
                        }
                    })
                    .collect();
                (name.to_string(), format!("[{}]", list.join(", ")))
            })
            .collect();
        assert_eq!(documented, code);
    }

    #[test]
    fn method_table() {
        let n = |s: &str| PhoneNumber::parse(s).expect("valid");
        let ok: Vec<(&str, Value, Method)> = vec![
            ("Init", json!(["lync"]), Method::Init(Some("lync".into()))),
            ("Init", json!([]), Method::Init(None)),
            (
                "init",
                json!({"backend": "sim"}),
                Method::Init(Some("sim".into())),
            ),
            ("GetState", json!([]), Method::GetState),
            ("GetState", Value::Null, Method::GetState),
            ("GetState", json!({}), Method::GetState),
            (
                "CallOut",
                json!(["+358449388834"]),
                Method::CallOut(n("+358449388834")),
            ),
            (
                "CallOut",
                json!({"number": "040 123"}),
                Method::CallOut(n("040123")),
            ),
            ("Hangup", json!([]), Method::HangUp),
            ("HangUp", json!([]), Method::HangUp),
            ("Answer", json!([]), Method::Answer),
            ("GetActiveCalls", json!([]), Method::GetActiveCalls),
            (
                "Sim.IncomingCall",
                json!(["0505010269"]),
                Method::Sim(SimControl::IncomingCall {
                    number: n("0505010269"),
                }),
            ),
            (
                "Sim.QueueCall",
                json!(["1", "2", "Q"]),
                Method::Sim(SimControl::QueueCall {
                    number: n("1"),
                    queue_number: "2".into(),
                    queue_name: "Q".into(),
                }),
            ),
            (
                "Sim.QueueCall",
                json!({"number": "1"}),
                Method::Sim(SimControl::QueueCall {
                    number: n("1"),
                    queue_number: String::new(),
                    queue_name: DEFAULT_QUEUE_NAME.into(),
                }),
            ),
            (
                "Sim.RemoteAnswer",
                json!([]),
                Method::Sim(SimControl::RemoteAnswer { call: None }),
            ),
            (
                "Sim.RemoteHangUp",
                json!(["x", "busy"]),
                Method::Sim(SimControl::RemoteHangUp {
                    call: Some(CallId::from_string("x")),
                    reason: "busy".into(),
                }),
            ),
            (
                "Sim.SetAvailability",
                json!(["dnd"]),
                Method::Sim(SimControl::SetAvailability(Availability::Dnd)),
            ),
            (
                "Sim.SetOffline",
                json!([]),
                Method::Sim(SimControl::SetOffline),
            ),
            (
                "Sim.SetOnline",
                json!([]),
                Method::Sim(SimControl::SetOnline),
            ),
            (
                "HangUp",
                json!(["c1"]),
                Method::Call {
                    call: Some(CallId::from_string("c1")),
                    action: CallAction::HangUp,
                },
            ),
            (
                "answer",
                json!({"callId": "c1"}),
                Method::Call {
                    call: Some(CallId::from_string("c1")),
                    action: CallAction::Answer,
                },
            ),
            (
                "Call.Hold",
                json!([]),
                Method::Call {
                    call: None,
                    action: CallAction::Hold,
                },
            ),
            (
                "call.resume",
                json!(["c2"]),
                Method::Call {
                    call: Some(CallId::from_string("c2")),
                    action: CallAction::Resume,
                },
            ),
            (
                "Call.Transfer",
                json!(["040 123", "c3"]),
                Method::Call {
                    call: Some(CallId::from_string("c3")),
                    action: CallAction::Transfer(n("040123")),
                },
            ),
            (
                "Call.Transfer",
                json!(["c3", "c4"]),
                Method::Call {
                    call: Some(CallId::from_string("c3")),
                    action: CallAction::TransferTo(CallId::from_string("c4")),
                },
            ),
            (
                "Call.Transfer",
                json!({"callId": "c3", "targetCallId": "c4"}),
                Method::Call {
                    call: Some(CallId::from_string("c3")),
                    action: CallAction::TransferTo(CallId::from_string("c4")),
                },
            ),
            (
                "Call.SendDtmf",
                json!({"digits": "12*#abcd"}),
                Method::Call {
                    call: None,
                    action: CallAction::SendDtmf(Dtmf::parse("12*#ABCD").expect("dtmf")),
                },
            ),
            ("Call.Mute", json!([]), Method::Mute(true)),
            ("Call.Unmute", Value::Null, Method::Mute(false)),
            (
                "Events.Subscribe",
                json!(["CallHeld", "mutechanged"]),
                Method::Subscribe(0b1001),
            ),
            (
                "Events.Subscribe",
                json!({"names": ["CallTransferred"]}),
                Method::Subscribe(0b100),
            ),
            ("rpc.discover", json!([]), Method::Discover),
        ];
        for (name, p, want) in ok {
            assert_eq!(
                decode_method(name, params(p.clone())),
                Ok(want),
                "{name} {p}"
            );
        }
        let err: Vec<(&str, Value, ErrorCode)> = vec![
            ("Nope", json!([]), ErrorCode::MethodNotFound),
            ("rpc.describe", json!([]), ErrorCode::MethodNotFound),
            ("rpc.discover", json!(["x"]), ErrorCode::InvalidParams),
            ("HangUp", json!([1]), ErrorCode::InvalidParams),
            ("HangUp", json!([""]), ErrorCode::InvalidParams),
            ("Answer", json!(["a\u{1}"]), ErrorCode::InvalidParams),
            (
                "Call.Hold",
                json!(["x".repeat(129)]),
                ErrorCode::InvalidParams,
            ),
            ("Call.Hold", json!(["a", "b"]), ErrorCode::InvalidParams),
            ("Call.Transfer", json!([]), ErrorCode::InvalidParams),
            (
                "Call.Transfer",
                json!(["sip:x@y"]),
                ErrorCode::InvalidParams,
            ),
            ("Call.SendDtmf", json!([]), ErrorCode::InvalidParams),
            ("Call.SendDtmf", json!([""]), ErrorCode::InvalidParams),
            ("Call.SendDtmf", json!(["12E"]), ErrorCode::InvalidParams),
            (
                "Call.SendDtmf",
                json!(["1".repeat(33)]),
                ErrorCode::InvalidParams,
            ),
            ("Call.Mute", json!(["x"]), ErrorCode::InvalidParams),
            ("Events.Subscribe", json!([]), ErrorCode::InvalidParams),
            (
                "Events.Subscribe",
                json!(["CallComing"]),
                ErrorCode::InvalidParams,
            ),
            ("Events.Subscribe", json!([1]), ErrorCode::InvalidParams),
            (
                "Events.Subscribe",
                json!({"names": "CallHeld"}),
                ErrorCode::InvalidParams,
            ),
            (
                "Events.Subscribe",
                json!({"x": []}),
                ErrorCode::InvalidParams,
            ),
            (
                "Events.Subscribe",
                json!(vec!["CallHeld"; 7]),
                ErrorCode::InvalidParams,
            ),
            ("GetState", json!(["x"]), ErrorCode::InvalidParams),
            ("GetState", json!({"x": 1}), ErrorCode::InvalidParams),
            ("CallOut", json!([]), ErrorCode::InvalidParams),
            ("CallOut", Value::Null, ErrorCode::InvalidParams),
            (
                "CallOut",
                json!([358449388834u64]),
                ErrorCode::InvalidParams,
            ),
            ("CallOut", json!(["abc"]), ErrorCode::InvalidParams),
            ("CallOut", json!([""]), ErrorCode::InvalidParams),
            ("CallOut", json!(["1", "2"]), ErrorCode::InvalidParams),
            ("CallOut", json!({"num": "1"}), ErrorCode::InvalidParams),
            ("CallOut", json!([null]), ErrorCode::InvalidParams),
            ("Init", json!([1]), ErrorCode::InvalidParams),
            ("Init", json!(["a", "b"]), ErrorCode::InvalidParams),
            (
                "Sim.SetAvailability",
                json!(["Sleeping"]),
                ErrorCode::InvalidParams,
            ),
            (
                "Sim.SetAvailability",
                json!(["Offline"]),
                ErrorCode::InvalidParams,
            ),
            (
                "Sim.RemoteHangUp",
                json!(["x", "a\nb"]),
                ErrorCode::InvalidParams,
            ),
        ];
        for (name, p, code) in err {
            let got = decode_method(name, params(p.clone()));
            assert_eq!(got.map_err(|e| e.code), Err(code), "{name} {p}");
        }
    }

    #[test]
    fn every_method_name_decodes() {
        for (name, _, required) in METHODS {
            // Call.Transfer's params are all optional by name, but it needs one of two forms.
            let required = if *name == "Call.Transfer" {
                1
            } else {
                *required
            };
            let args: Vec<Value> = (0..required)
                .map(|_| {
                    json!(if name.contains("Availability") {
                        "Away"
                    } else if name.starts_with("Events.") {
                        "CallHeld"
                    } else {
                        "123"
                    })
                })
                .collect();
            let m = decode_method(name, Params::Array(args)).expect(name);
            assert_eq!(m.name(), *name);
        }
    }

    #[test]
    fn notifications_match_the_spec() {
        let id = CallId::from_string("ID1");
        let cases = vec![
            (
                PhoneEvent::StateChanged(PhoneState::Online(Availability::Busy)),
                r#"{"jsonrpc":"2.0","method":"StateChanged","params":["Busy"]}"#,
            ),
            (
                PhoneEvent::StateChanged(PhoneState::Offline),
                r#"{"jsonrpc":"2.0","method":"StateChanged","params":["Offline"]}"#,
            ),
            (
                PhoneEvent::CallComing {
                    id: id.clone(),
                    number: "0505010269".into(),
                },
                r#"{"jsonrpc":"2.0","method":"CallComing","params":["ID1","0505010269"]}"#,
            ),
            (
                PhoneEvent::QueueCallComing {
                    id: id.clone(),
                    queue_call_id: "q".into(),
                    caller: "+358501231234".into(),
                    queue_number: "+3581011223".into(),
                    queue_id: "qid".into(),
                    queue_name: "Master queue 1".into(),
                },
                r#"{"jsonrpc":"2.0","method":"QueueCallComing","params":["ID1","q","+358501231234","+3581011223","qid","Master queue 1"]}"#,
            ),
            (
                PhoneEvent::CallingOut {
                    id: id.clone(),
                    number: "+358505010269".into(),
                },
                r#"{"jsonrpc":"2.0","method":"CallingOut","params":["ID1","+358505010269"]}"#,
            ),
            (
                PhoneEvent::CallConnected { id: id.clone() },
                r#"{"jsonrpc":"2.0","method":"CallConnected","params":["ID1"]}"#,
            ),
            (
                PhoneEvent::CallDisconnected {
                    id,
                    reason: "CustomData".into(),
                },
                r#"{"jsonrpc":"2.0","method":"CallDisconnected","params":["ID1","CustomData"]}"#,
            ),
        ];
        for (event, want) in cases {
            assert_eq!(encode_event(&event), want);
        }
    }

    #[test]
    fn active_calls_are_flat_records() {
        let started = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_455_629_181_183);
        let calls = vec![
            Call {
                id: CallId::from_string("ID1"),
                direction: Direction::Outbound,
                state: CallState::Calling,
                number: "+358449388834".into(),
                started,
            },
            Call {
                id: CallId::from_string("ID2"),
                direction: Direction::Inbound,
                state: CallState::Ringing,
                number: "1".into(),
                started,
            },
        ];
        let got = active_calls(&calls);
        assert_eq!(got.len(), 12);
        assert_eq!(
            &got[..5],
            ["1", "Outbound", "Calling", "+358449388834", "ID1"]
        );
        assert_eq!(&got[6..11], ["2", "Inbound", "Ringing", "1", "ID2"]);
        let ts = &got[5];
        assert_eq!(ts.len(), "2016-02-16 13:26:21.183".len(), "{ts}");
        assert!(ts.ends_with(".183"), "{ts}");
        assert!(active_calls(&[]).is_empty());
    }
}
