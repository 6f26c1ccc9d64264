//! One connection's protocol state: the chosen backend and its subscription, and the
//! handling of each incoming text message. No sockets here, so it can be driven in memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::backends::{Backend, Backends};
use super::hub::Subscription;
use crate::access::{DialPolicy, Refusal};
use crate::phone::{CallAction, Command, PhoneError, Reply};
use crate::protocol::api::{self, Answer, Method};
use crate::protocol::jsonrpc::{self, ErrorCode, Id, Incoming, Request, RpcError};
use crate::protocol::openrpc;

/// Where a session's output goes: replies and notifications, already encoded, in the
/// order the client must receive them.
pub trait Outbox {
    /// Appends one message.
    fn push(&mut self, text: &str);
    /// Appends one message that `write` writes (JSON, so UTF-8), with no copy in between.
    fn push_json(&mut self, write: impl FnOnce(&mut Vec<u8>));
}

impl Outbox for Vec<String> {
    fn push(&mut self, text: &str) {
        Vec::push(self, text.to_owned());
    }
    fn push_json(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = Vec::new();
        write(&mut bytes);
        Vec::push(self, String::from_utf8_lossy(&bytes).into_owned());
    }
}

/// The reply due to one request.
enum Response {
    /// Already encoded (the error for an invalid request).
    Encoded(String),
    /// A result.
    Success(Id, Answer),
    /// An error.
    Failure(Id, RpcError),
}

impl Response {
    fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Response::Encoded(text) => buf.extend_from_slice(text.as_bytes()),
            Response::Success(id, answer) => {
                jsonrpc::write_success_with(buf, id, |out| answer.write_json(out))
            }
            Response::Failure(id, e) => jsonrpc::write_error(buf, Some(id), e),
        }
    }
}

/// Who is on the other end, for the log.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Connection number, unique in this process.
    pub id: u64,
    /// The Origin header, if any.
    pub origin: Option<String>,
}

/// What every session applies: limits and policies from the configuration.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Whether the audit log shows dialled numbers in full.
    pub full_numbers: bool,
    /// State-changing commands per second, sustained.
    pub command_rate: u32,
    /// State-changing commands at once.
    pub command_burst: u32,
    /// Which numbers may be dialled.
    pub dial: DialPolicy,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            max_batch: 100,
            full_numbers: false,
            command_rate: 20,
            command_burst: 40,
            dial: DialPolicy::default(),
        }
    }
}

/// How often a connection's refused commands are summed up in the log.
const RATE_LOG_EVERY: Duration = Duration::from_secs(10);

/// A token bucket: `burst` commands at once, refilled at `rate` a second.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    refused: u64,
    last_log: Option<Instant>,
}

impl Bucket {
    fn new(burst: u32) -> Bucket {
        Bucket {
            tokens: f64::from(burst),
            last: Instant::now(),
            refused: 0,
            last_log: None,
        }
    }

    fn take(&mut self, rules: &Rules) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(rules.command_rate);
        self.tokens = (self.tokens + refill).min(f64::from(rules.command_burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// The number refused since the last log line, when a line is due.
    fn log_due(&mut self) -> Option<u64> {
        let due = self.last_log.is_none_or(|t| t.elapsed() >= RATE_LOG_EVERY);
        if due && self.refused > 0 {
            self.last_log = Some(Instant::now());
            Some(std::mem::take(&mut self.refused))
        } else {
            None
        }
    }
}

/// A connection's protocol state.
pub struct Session {
    peer: Peer,
    rules: Arc<Rules>,
    bucket: Bucket,
    backends: Arc<Backends>,
    backend: Arc<Backend>,
    subscription: Subscription,
    /// Notifications of the backend switched away from, not yet written.
    carried: Vec<Arc<str>>,
}

impl Session {
    /// A session on the default backend, already subscribed to its notifications, that
    /// applies `rules`.
    pub fn new(peer: Peer, backends: Arc<Backends>, rules: Arc<Rules>) -> Session {
        let backend = backends.get_default();
        let subscription = backend.hub.subscribe();
        Session {
            peer,
            bucket: Bucket::new(rules.command_burst),
            rules,
            backends,
            backend,
            subscription,
            carried: Vec::new(),
        }
    }

    /// Decodes one incoming text message.
    fn decode(&self, text: &str) -> Incoming {
        jsonrpc::decode(text, self.rules.max_batch)
    }

    /// The backend this connection is on.
    #[cfg(test)]
    pub fn backend_name(&self) -> &str {
        &self.backend.name
    }

    /// Signalled when this connection's notification queue overflowed.
    pub fn overflow_signal(&self) -> &tokio::sync::Notify {
        &self.subscription.overflow
    }

    /// The subscription to the current backend's notifications.
    pub fn subscription(&mut self) -> &mut Subscription {
        &mut self.subscription
    }

    /// Handles one text message: writes to `out` the notifications already due (what
    /// earlier requests caused comes before this one's reply), then the reply, if one is
    /// due. A batch is carried out entry by entry, writing the notifications it causes in
    /// between, so that a large batch cannot fill the connection's own queue.
    pub async fn handle_text<O: Outbox>(&mut self, text: &str, out: &mut O) {
        self.drain_events(out);
        match self.decode(text) {
            Incoming::Invalid(reply) => {
                tracing::debug!(conn = self.peer.id, "invalid message");
                out.push(&reply);
            }
            Incoming::Single(entry) => {
                let reply = self.handle_entry(entry).await;
                self.write_carried(out);
                if let Some(reply) = reply {
                    out.push_json(|buf| reply.write(buf));
                }
            }
            Incoming::Batch(entries) => {
                let mut batch = Vec::new();
                for entry in entries {
                    if let Some(reply) = self.handle_entry(entry).await {
                        batch.push(if batch.is_empty() { b'[' } else { b',' });
                        reply.write(&mut batch);
                    }
                    self.write_carried(out);
                    self.drain_events(out);
                }
                if !batch.is_empty() {
                    batch.push(b']');
                    out.push_json(|buf| buf.extend_from_slice(&batch));
                }
            }
        }
    }

    /// Writes every notification already queued for this connection.
    pub fn drain_events<O: Outbox>(&mut self, out: &mut O) {
        while let Ok(event) = self.subscription.queue.try_recv() {
            out.push(&event);
        }
    }

    /// Writes the notifications left from the backend a request switched away from.
    fn write_carried<O: Outbox>(&mut self, out: &mut O) {
        for event in self.carried.drain(..) {
            out.push(&event);
        }
    }

    /// Handles one request of a message; returns the reply, if one is due.
    async fn handle_entry(&mut self, entry: jsonrpc::Entry) -> Option<Response> {
        let request = match entry {
            Ok(r) => r,
            Err(reply) => return Some(Response::Encoded(reply)),
        };
        let Request { id, method, params } = request;
        let result = match api::decode_method(&method, params) {
            Ok(m) if !m.is_read() && !self.bucket.take(&self.rules) => {
                if let Some(n) = self.bucket.log_due() {
                    tracing::warn!(
                        conn = self.peer.id,
                        refused = n,
                        rate = self.rules.command_rate,
                        burst = self.rules.command_burst,
                        "too many requests: commands refused by the connection's rate limit"
                    );
                }
                Err(RpcError::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "too many requests: at most {} commands a second (bursts of {}); GetState and GetActiveCalls are not limited",
                        self.rules.command_rate, self.rules.command_burst
                    ),
                ))
            }
            // Commands wait on the phone: their (large) future is boxed, so that every
            // connection does not carry its size while idle; reads never wait.
            Ok(m) if m.is_read() => self.read(&m),
            Ok(m) => Box::pin(self.execute(m)).await,
            Err(e) => {
                // Every CallOut is audited, also one refused for its params.
                if method.eq_ignore_ascii_case("CallOut") {
                    self.audit("CallOut", "-", &Err(e.clone()));
                }
                Err(e)
            }
        };
        let id = id?;
        Some(match result {
            Ok(answer) => Response::Success(id, answer),
            Err(e) => Response::Failure(id, e),
        })
    }

    /// A read: from the backend's published snapshot, no round trip, nothing awaited.
    fn read(&self, method: &Method) -> Result<Answer, RpcError> {
        let answer = match method {
            Method::GetActiveCalls => Answer::List(api::active_calls(&self.backend.phone.calls())),
            Method::Discover => Answer::Document(openrpc::document(), openrpc::document_text()),
            _ => Answer::Text(self.backend.phone.state().as_str()),
        };
        tracing::debug!(
            conn = self.peer.id,
            method = method.name(),
            ok = true,
            "request"
        );
        Ok(answer)
    }

    async fn execute(&mut self, method: Method) -> Result<Answer, RpcError> {
        let name = method.name();
        let audit = method.is_call_control().then(|| match &method {
            Method::CallOut(n)
            | Method::Call {
                action: CallAction::Transfer(n),
                ..
            } if self.rules.full_numbers => n.as_str().to_owned(),
            Method::CallOut(n)
            | Method::Call {
                action: CallAction::Transfer(n),
                ..
            } => n.masked(),
            _ => "-".to_owned(),
        });
        let result = match method {
            Method::Init(name) => self.init(name.as_deref()),
            // Reads come from the backend's published snapshot: no round trip.
            Method::GetState => Ok(Answer::Text(self.backend.phone.state().as_str())),
            Method::GetActiveCalls => {
                Ok(Answer::List(api::active_calls(&self.backend.phone.calls())))
            }
            Method::CallOut(n) => match self.dial_allowed(n.as_str()) {
                Ok(()) => self.simple(Command::CallOut(n)).await,
                Err(e) => Err(e),
            },
            Method::Call { call, action } => {
                let allowed = match &action {
                    CallAction::Transfer(n) => self.dial_allowed(n.as_str()),
                    _ => Ok(()),
                };
                match allowed {
                    Ok(()) => self.extension(name, Command::Call { call, action }).await,
                    Err(e) => Err(e),
                }
            }
            Method::Mute(on) => self.extension(name, Command::Mute(on)).await,
            Method::Subscribe(mask) => {
                let all = self.subscription.extensions() | mask;
                self.subscription.set_extensions(all);
                Ok(Answer::Zero)
            }
            Method::Discover => Ok(Answer::Document(
                openrpc::document(),
                openrpc::document_text(),
            )),
            Method::HangUp => self.simple(Command::HangUp).await,
            Method::Answer => self.simple(Command::Answer).await,
            Method::Sim(c) => match &self.backend.phone.capabilities().simulator {
                Some(simulator) => match simulator.send(c).await {
                    Ok(Reply::Call(id)) => Ok(Answer::Owned(id.as_str().to_owned())),
                    Ok(_) => Ok(Answer::Zero),
                    Err(e) => Err(api::phone_error(&e)),
                },
                None => Err(api::phone_error(&PhoneError::Unsupported)),
            },
        };
        if let Some(number) = audit {
            self.audit(name, &number, &result);
        } else {
            tracing::debug!(
                conn = self.peer.id,
                method = name,
                ok = result.is_ok(),
                "request"
            );
        }
        result
    }

    /// Whether the dial policy lets this number be dialled (CallOut, Call.Transfer).
    fn dial_allowed(&self, number: &str) -> Result<(), RpcError> {
        self.rules.dial.check(number).map_err(|refusal| {
            RpcError::new(
                ErrorCode::NotAllowed,
                match refusal {
                    Refusal::Denied => "the number is not allowed by the dial policy (denied)",
                    Refusal::NotAllowed => {
                        "the number is not allowed by the dial policy (not in the allowed list)"
                    }
                },
            )
        })
    }

    /// A call-control extension command: as [`Session::simple`], with a backend that
    /// cannot do it answering -32601.
    async fn extension(&self, method: &str, command: Command) -> Result<Answer, RpcError> {
        match self.backend.phone.send(command).await {
            Err(PhoneError::Unsupported) => Err(api::unsupported_call_control(method)),
            Ok(_) => Ok(Answer::Zero),
            Err(e) => Err(api::phone_error(&e)),
        }
    }

    /// One audit line for a call-control command.
    fn audit(&self, method: &str, number: &str, result: &Result<Answer, RpcError>) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error {}: {}", e.code.code(), e.message),
        };
        tracing::info!(
            conn = self.peer.id,
            origin = %crate::logging::cut_keep_end(self.peer.origin.as_deref().unwrap_or("-"), 128),
            backend = %self.backend.name,
            method,
            number = %number,
            result = %outcome,
            "call control"
        );
    }

    async fn simple(&self, command: Command) -> Result<Answer, RpcError> {
        match self.backend.phone.send(command).await {
            Ok(_) => Ok(Answer::Zero),
            // Why the phone is unavailable, as the backend reports it (e.g. a
            // registration refused with 401), for the page to show.
            Err(e @ PhoneError::Unavailable(_)) => {
                let status = self.backend.phone.status();
                let error = api::phone_error(&e);
                Err(match (status.link, status.last_error) {
                    (None, None) => error,
                    (link, last_error) => error.with_data(json!({
                        "link": link,
                        "lastError": last_error,
                    })),
                })
            }
            Err(e) => Err(api::phone_error(&e)),
        }
    }

    fn init(&mut self, name: Option<&str>) -> Result<Answer, RpcError> {
        let instance = match name {
            None => self.backends.default_name().to_owned(),
            Some(n) => self.backends.resolve(n).map_err(|e| {
                let message = if self.backends.is_unconfigured(n) {
                    format!(
                        "Unknown backend: {} is not configured on this server (see its settings in docs/configuration.md)",
                        jsonrpc::truncate(n)
                    )
                } else {
                    format!("Unknown backend: {}", jsonrpc::truncate(n))
                };
                RpcError::new(ErrorCode::UnknownBackend, message).with_data(json!(e.known))
            })?,
        };
        if *instance != *self.backend.name {
            let Some(backend) = self.backends.get(&instance) else {
                return Err(RpcError::new(
                    ErrorCode::InternalError,
                    format!("Internal error: backend {instance} is not registered"),
                ));
            };
            self.backend = backend;
            let mut old = std::mem::replace(&mut self.subscription, self.backend.hub.subscribe());
            // The extension notifications asked for follow the connection.
            self.subscription.set_extensions(old.extensions());
            while let Ok(event) = old.queue.try_recv() {
                self.carried.push(event);
            }
            tracing::info!(conn = self.peer.id, backend = %instance, "connection switched backend");
        }
        Ok(Answer::Zero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::BackendSettings;
    use crate::phone::sim::SimSettings;

    fn session() -> Session {
        let names = crate::phone::BackendNames::build(
            &[("agent2".to_owned(), "sim".to_owned())],
            &[],
            None,
            &[],
        )
        .expect("registry");
        let settings = BackendSettings {
            sim: SimSettings {
                auto_answer: false,
                ..SimSettings::default()
            },
            ..BackendSettings::default()
        };
        let peer = Peer {
            id: 1,
            origin: None,
        };
        Session::new(
            peer,
            Arc::new(Backends::new(names, settings, 16)),
            Arc::new(Rules::default()),
        )
    }

    /// In memory, without sockets: requests in, replies and queued notifications out.
    #[tokio::test]
    async fn session_table() {
        let mut s = session();
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"GetState"}"#,
                Some(r#"{"jsonrpc":"2.0","result":"Available","id":1}"#),
                &[],
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"CallOut","params":["040 123"]}"#,
                Some(r#"{"jsonrpc":"2.0","result":0,"id":2}"#),
                &["CallingOut", "StateChanged"],
            ),
            (
                r#"{"jsonrpc":"2.0","method":"HangUp"}"#,
                None,
                &["CallDisconnected", "StateChanged"],
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"HangUp"}"#,
                Some(
                    r#"{"jsonrpc":"2.0","error":{"code":-32002,"message":"no active call"},"id":3}"#,
                ),
                &[],
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"Init","params":["agent2"]}"#,
                Some(r#"{"jsonrpc":"2.0","result":0,"id":4}"#),
                &[],
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":"Sim.SetAvailability","params":["DND"]}"#,
                Some(r#"{"jsonrpc":"2.0","result":0,"id":5}"#),
                &["StateChanged"],
            ),
        ];
        for (request, want_reply, want_events) in cases {
            let mut out = Vec::new();
            s.handle_text(request, &mut out).await;
            let reply = out.pop();
            assert_eq!(reply.as_deref(), *want_reply, "{request}");
            assert!(out.is_empty(), "{request}: nothing else due: {out:?}");
            // The events of one command reach the queue through the hub task.
            let mut got = Vec::new();
            for _ in 0..want_events.len() {
                let msg = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    s.subscription().queue.recv(),
                )
                .await
                .expect("notification in time")
                .expect("queue open");
                let v: serde_json::Value = serde_json::from_str(&msg).expect("JSON");
                got.push(v["method"].as_str().unwrap_or("").to_owned());
            }
            assert_eq!(got, *want_events, "{request}");
        }
        assert_eq!(s.backend_name(), "agent2");
    }
}
