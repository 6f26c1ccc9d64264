//! One connection's protocol state: the chosen backend and its subscription, and the
//! handling of each incoming text message. No sockets here, so it can be driven in memory.

use std::sync::Arc;

use serde_json::json;

use super::backends::{Backend, Backends};
use super::hub::Subscription;
use crate::phone::{Command, PhoneError, Reply};
use crate::protocol::api::{self, Method};
use crate::protocol::jsonrpc::{
    self, ErrorCode, Incoming, Request, RpcError, encode_batch, encode_error, encode_success,
};

/// Who is on the other end, for the log.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Connection number, unique in this process.
    pub id: u64,
    /// The peer's socket address.
    pub addr: String,
    /// The Origin header, if any.
    pub origin: Option<String>,
}

/// A connection's protocol state.
pub struct Session {
    peer: Peer,
    backends: Arc<Backends>,
    backend: Arc<Backend>,
    subscription: Subscription,
}

impl Session {
    /// A session on the default backend.
    pub fn new(peer: Peer, backends: Arc<Backends>) -> Session {
        let backend = backends.get_default();
        let subscription = backend.hub.subscribe();
        Session {
            peer,
            backends,
            backend,
            subscription,
        }
    }

    /// The backend this connection is on.
    pub fn backend_name(&self) -> &str {
        &self.backend.name
    }

    /// The subscription to the current backend's notifications.
    pub fn subscription(&mut self) -> &mut Subscription {
        &mut self.subscription
    }

    /// Handles one text message; returns the reply, if one is due.
    pub async fn handle_text(&mut self, text: &str) -> Option<String> {
        match jsonrpc::decode(text) {
            Incoming::Invalid(reply) => {
                tracing::debug!(conn = self.peer.id, "invalid message");
                Some(reply)
            }
            Incoming::Single(entry) => self.handle_entry(entry).await,
            Incoming::Batch(entries) => {
                let mut replies = Vec::new();
                for entry in entries {
                    if let Some(r) = self.handle_entry(entry).await {
                        replies.push(r);
                    }
                }
                (!replies.is_empty()).then(|| encode_batch(&replies))
            }
        }
    }

    async fn handle_entry(&mut self, entry: jsonrpc::Entry) -> Option<String> {
        let request = match entry {
            Ok(r) => r,
            Err(reply) => return Some(reply),
        };
        let Request { id, method, params } = request;
        let result = match api::decode_method(&method, params) {
            Ok(m) => self.execute(m).await,
            Err(e) => Err(e),
        };
        let id = id?;
        Some(match result {
            Ok(value) => encode_success(&id, &value),
            Err(e) => encode_error(Some(&id), &e),
        })
    }

    async fn execute(&mut self, method: Method) -> Result<serde_json::Value, RpcError> {
        let name = method.name();
        let audit = method.is_call_control().then(|| match &method {
            Method::CallOut(n) => n.masked(),
            _ => "-".to_owned(),
        });
        let result = match method {
            Method::Init(name) => self.init(name.as_deref()),
            Method::GetState => match self.backend.phone.send(Command::GetState).await {
                Ok(Reply::State(s)) => Ok(json!(s.as_str())),
                other => Err(unexpected(other)),
            },
            Method::GetActiveCalls => match self.backend.phone.send(Command::GetCalls).await {
                Ok(Reply::Calls(calls)) => Ok(json!(api::active_calls(&calls))),
                other => Err(unexpected(other)),
            },
            Method::CallOut(n) => self.simple(Command::CallOut(n)).await,
            Method::HangUp => self.simple(Command::HangUp).await,
            Method::Answer => self.simple(Command::Answer).await,
            Method::Sim(c) => match self.backend.phone.send(Command::Simulate(c)).await {
                Ok(Reply::Call(id)) => Ok(json!(id.as_str())),
                Ok(_) => Ok(json!(0)),
                Err(e) => Err(api::phone_error(&e)),
            },
        };
        if let Some(number) = audit {
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("error {}: {}", e.code.code(), e.message),
            };
            tracing::info!(
                conn = self.peer.id,
                origin = self.peer.origin.as_deref().unwrap_or("-"),
                backend = %self.backend.name,
                method = name,
                number = %number,
                result = %outcome,
                "call control"
            );
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

    async fn simple(&self, command: Command) -> Result<serde_json::Value, RpcError> {
        match self.backend.phone.send(command).await {
            Ok(_) => Ok(json!(0)),
            Err(e) => Err(api::phone_error(&e)),
        }
    }

    fn init(&mut self, name: Option<&str>) -> Result<serde_json::Value, RpcError> {
        let instance = match name {
            None => self.backends.default_name().to_owned(),
            Some(n) => self.backends.resolve(n).map_err(|e| {
                RpcError::new(
                    ErrorCode::UnknownBackend,
                    format!("Unknown backend: {}", jsonrpc::truncate(n)),
                )
                .with_data(json!(e.known))
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
            self.subscription = self.backend.hub.subscribe();
            tracing::info!(conn = self.peer.id, backend = %instance, "connection switched backend");
        }
        Ok(json!(0))
    }
}

fn unexpected(reply: Result<Reply, PhoneError>) -> RpcError {
    match reply {
        Err(e) => api::phone_error(&e),
        Ok(other) => RpcError::new(
            ErrorCode::InternalError,
            format!("Internal error: unexpected reply from the phone: {other:?}"),
        ),
    }
}
