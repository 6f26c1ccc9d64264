//! The SIP stack under the phone: rsipstack's endpoint (transports, transactions, timers
//! per RFC 3261), its dialog layer, the registration task and the filter every incoming
//! request passes before it reaches the phone. Nothing here knows about calls' ids or the
//! API; [`super`] drives it.
//!
//! The filter: requests inside a dialog go to that dialog (481 when there is none); new
//! INVITEs go to the phone at most [`INVITES_PER_SECOND`] a second (more are dropped) and
//! only from the allowed addresses (403 otherwise); OPTIONS is answered 200; anything
//! else out of a dialog gets 405.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogStateReceiver, DialogStateSender};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::registration::Registration;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{self, HeadersExt};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::endpoint::{EndpointInnerRef, TransportEventInspector};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{
    TcpListenerConnection, TransportEvent, TransportLayer, udp::UdpConnection,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::settings::{SipSettings, Transport};

/// New INVITEs taken per second (a burst of twice as many is allowed).
pub const INVITES_PER_SECOND: u32 = 20;
/// New INVITEs waiting for the phone; more are answered 503.
pub const INVITE_QUEUE: usize = 16;

/// A started stack.
pub struct Stack {
    /// The endpoint, for registrations.
    pub endpoint: EndpointInnerRef,
    /// The dialog layer.
    pub dialogs: Arc<DialogLayer>,
    /// Where dialogs report their changes.
    pub states: DialogStateSender,
    /// The local SIP address.
    pub local: SocketAddr,
    /// The IP address other parties reach us at (in Contact and SDP).
    pub public_ip: IpAddr,
    /// Our Contact URI.
    pub contact: sip::Uri,
    cancel: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What the stack hands the phone.
pub struct Channels {
    /// Changes of dialogs.
    pub states: DialogStateReceiver,
    /// New INVITEs that passed the filter, with the address they came from.
    pub invites: mpsc::Receiver<(Transaction, IpAddr)>,
}

/// The text of a URI we build from checked settings.
pub fn uri(text: &str) -> Result<sip::Uri, String> {
    sip::Uri::try_from(text).map_err(|e| format!("{text} is not a SIP URI: {e}"))
}

/// Text from the network as it may be shown to a user or a page: control and bidi
/// characters dropped, at most 64 characters (with an ellipsis when cut).
pub fn printable(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|&c| {
            !c.is_control()
                && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    crate::settings::shown(&clean)
}

/// The address a request came from: the transport's (the datagram's source, or the TCP
/// peer). Never the Via, which the sender writes: rsipstack 0.7.14 keeps a `received`
/// parameter the sender put there itself when the Via's sent-by equals the source (see
/// [`mend_via`]), so a scanner could claim to be the registrar.
pub fn source_ip(tx: &Transaction) -> Option<IpAddr> {
    let remote = tx.connection.as_ref()?.get_remote_addr()?;
    Some(remote.get_socketaddr().ok()?.ip())
}

/// Makes a request's top Via tell the truth about where it came from: a `received`
/// parameter that is not `source` is replaced by `source` (or removed when the sent-by
/// host already is `source`). rsipstack adds `received` when the sent-by differs from the
/// source, but when they are equal it leaves the sender's own `received` in place, and
/// answers go where that says (RFC 3261 §18.2.2). Returns whether the Via was changed.
pub fn mend_via(request: &mut sip::Request, source: IpAddr) -> bool {
    let Ok(via) = request.via_header_mut() else {
        return false;
    };
    let mut changed = false;
    let _ = via.update_first_value(|v| {
        let mut typed = v.typed()?;
        let lies = typed.params.iter().any(|p| match p {
            sip::Param::Received(r) => r.parse().ok() != Some(source),
            _ => false,
        });
        if !lies {
            return Ok(v);
        }
        typed
            .params
            .retain(|p| !matches!(p, sip::Param::Received(_)));
        if typed.uri.host_with_port.host != sip::Host::IpAddr(source) {
            let shown = match source {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            typed
                .params
                .push(sip::Param::Received(sip::param::Received::new(shown)));
        }
        changed = true;
        Ok(typed.into())
    });
    changed
}

/// Runs [`mend_via`] on every request the transports deliver, before any transaction
/// sees it.
struct ViaGuard;

impl TransportEventInspector for ViaGuard {
    fn handle<'a, 'b>(
        &'a self,
        event: TransportEvent,
    ) -> Pin<Box<dyn Future<Output = Option<TransportEvent>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            match event {
                TransportEvent::Incoming(sip::SipMessage::Request(mut req), conn, from) => {
                    if let Ok(source) = from.get_socketaddr() {
                        mend_via(&mut req, source.ip());
                    }
                    Some(TransportEvent::Incoming(req.into(), conn, from))
                }
                other => Some(other),
            }
        })
    }
}

/// Resolves HOST:PORT (a name through the system's resolver).
pub async fn resolve(host_port: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = host_port.parse() {
        return Ok(a);
    }
    let found = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(host_port))
        .await
        .map_err(|_| format!("{host_port}: name lookup timed out"))?
        .map_err(|e| format!("{host_port}: {e}"))?;
    let mut found: Vec<SocketAddr> = found.collect();
    found.sort_by_key(|a| !a.is_ipv4());
    found
        .first()
        .copied()
        .ok_or_else(|| format!("{host_port}: no address"))
}

/// The local IP address the system would use to reach `to` (no packet is sent).
fn route_to(to: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// Starts the endpoint on the configured address; `next_hop` is where requests go first
/// (the outbound proxy, else the registrar).
pub async fn start(s: &SipSettings, next_hop: SocketAddr) -> Result<(Stack, Channels), String> {
    let cancel = CancellationToken::new();
    let layer = TransportLayer::new(cancel.child_token());
    let udp = UdpConnection::create_connection(s.listen, None, Some(cancel.child_token()))
        .await
        .map_err(|e| format!("cannot listen for SIP on udp {}: {e}", s.listen))?;
    let local = udp
        .get_addr()
        .addr
        .to_string()
        .parse::<SocketAddr>()
        .unwrap_or(s.listen);
    layer.add_transport(udp.into());
    if s.transport == Transport::Tcp {
        let tcp = TcpListenerConnection::new(local, None)
            .await
            .map_err(|e| format!("cannot listen for SIP on tcp {local}: {e}"))?;
        layer.add_transport(tcp.into());
    }
    let public_ip = if local.ip().is_unspecified() {
        route_to(next_hop).unwrap_or(local.ip())
    } else {
        local.ip()
    };
    let mut builder = rsipstack::EndpointBuilder::new();
    builder
        .with_cancel_token(cancel.clone())
        .with_transport_layer(layer)
        .with_transport_inspector(Box::new(ViaGuard))
        .with_user_agent(concat!("bapiws/", env!("CARGO_PKG_VERSION")));
    let endpoint = builder.build();
    let incoming = endpoint
        .incoming_transactions()
        .map_err(|e| format!("the SIP stack did not start: {e}"))?;
    let inner = endpoint.inner.clone();
    tokio::spawn(async move { endpoint.serve().await });
    let dialogs = Arc::new(DialogLayer::new(inner.clone()));
    let (states_tx, states_rx) = dialogs.new_dialog_state_channel();
    let host = match public_ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let transport = s.transport.uri_param();
    let contact = uri(&format!(
        "sip:{}@{host}:{}{transport}",
        s.user,
        local.port()
    ))?;
    let (invites_tx, invites_rx) = mpsc::channel(INVITE_QUEUE);
    tokio::spawn(filter(Arc::clone(&dialogs), incoming, invites_tx));
    Ok((
        Stack {
            endpoint: inner,
            dialogs,
            states: states_tx,
            local,
            public_ip,
            contact,
            cancel,
        },
        Channels {
            states: states_rx,
            invites: invites_rx,
        },
    ))
}

/// A token bucket: `rate` a second, bursts of `2 * rate`.
struct Bucket {
    tokens: f64,
    rate: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * 2.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn reply(mut tx: Transaction, code: sip::StatusCode) {
    let _ = tx.reply(code).await;
}

/// Sorts incoming transactions (see the module's docs).
async fn filter(
    dialogs: Arc<DialogLayer>,
    mut incoming: TransactionReceiver,
    invites: mpsc::Sender<(Transaction, IpAddr)>,
) {
    let mut bucket = Bucket {
        tokens: f64::from(INVITES_PER_SECOND) * 2.0,
        rate: f64::from(INVITES_PER_SECOND),
        at: tokio::time::Instant::now(),
    };
    while let Some(mut tx) = incoming.recv().await {
        let method = tx.original.method;
        let in_dialog = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .is_some();
        if in_dialog {
            match dialogs.match_dialog(&tx) {
                Some(mut d) => {
                    tokio::spawn(async move {
                        if let Err(e) = d.handle(&mut tx).await {
                            tracing::debug!(error = %e, "an in-dialog request failed");
                        }
                    });
                }
                None if method == sip::Method::Ack => {}
                None => {
                    tokio::spawn(reply(tx, sip::StatusCode::CallTransactionDoesNotExist));
                }
            }
            continue;
        }
        match method {
            sip::Method::Invite => {
                if !bucket.take() {
                    // A flood: dropped; the sender's retransmissions meet the same limit.
                    continue;
                }
                let Some(ip) = source_ip(&tx) else {
                    tokio::spawn(reply(tx, sip::StatusCode::BadRequest));
                    continue;
                };
                if let Err(mpsc::error::TrySendError::Full((tx, _))) = invites.try_send((tx, ip)) {
                    tokio::spawn(reply(tx, sip::StatusCode::ServiceUnavailable));
                }
            }
            sip::Method::Ack => {}
            sip::Method::Options => {
                tokio::spawn(reply(tx, sip::StatusCode::OK));
            }
            _ => {
                tokio::spawn(reply(tx, sip::StatusCode::MethodNotAllowed));
            }
        }
    }
}

/// What the registration task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// Registered for this many seconds.
    Registered(u32),
    /// The attempt failed, with the reason in users' words.
    Failed(String),
}

/// The first and longest waits before another REGISTER after a failure.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How long one REGISTER transaction may take over UDP (RFC 3261's timer F).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(32);
/// ... and over TCP, where nothing is retransmitted: a registrar that has not answered
/// by then (the challenge and the answer included) has lost the connection. The stack
/// itself retries a lost TCP connection until timer F, which would hide the loss.
const REGISTER_TIMEOUT_RELIABLE: Duration = Duration::from_secs(3);

/// Keeps the phone registered: refreshes at 3/4 of the granted time, retries failures
/// with a jittered backoff (at most one REGISTER a second), and un-registers when `stop`
/// fires (the answer to `stop` comes once the un-REGISTER is answered or timed out).
pub struct Registrar {
    /// The account's domain as a URI (the REGISTER's request URI).
    pub server: sip::Uri,
    /// Where REGISTER goes, when not to the domain.
    pub proxy: Option<SocketAddr>,
    /// Our Contact.
    pub contact: sip::Uri,
    /// The credentials.
    pub credential: Option<Credential>,
    /// The registration's lifetime asked for.
    pub interval: Duration,
    /// Whether the transport is reliable (TCP).
    pub reliable: bool,
}

impl Registrar {
    /// Runs until `stop` fires.
    pub async fn run(
        self,
        endpoint: EndpointInnerRef,
        events: mpsc::Sender<RegistrationEvent>,
        mut stop: oneshot::Receiver<oneshot::Sender<()>>,
    ) {
        let mut reg = Registration::new(endpoint, self.credential.clone());
        reg.outbound_proxy = self.proxy;
        reg.contact = Some(sip::typed::Contact {
            display_name: None,
            uri: self.contact.clone(),
            params: vec![],
        });
        let mut retry = RETRY_MIN;
        let expires = u32::try_from(self.interval.as_secs()).unwrap_or(3600);
        loop {
            // A stop request waits for the REGISTER under way, then un-registers.
            let limit = if self.reliable {
                REGISTER_TIMEOUT_RELIABLE
            } else {
                REGISTER_TIMEOUT
            };
            let attempt =
                tokio::time::timeout(limit, reg.register(self.server.clone(), Some(expires))).await;
            let wait = match attempt {
                Ok(Ok(resp)) if resp.status_code == sip::StatusCode::OK => {
                    let granted = reg.expires().max(1);
                    let _ = events.send(RegistrationEvent::Registered(granted)).await;
                    retry = RETRY_MIN;
                    Duration::from_secs(u64::from(granted) * 3 / 4).max(RETRY_MIN)
                }
                other => {
                    let reason = match other {
                        Ok(Ok(resp)) => format!(
                            "registration failed: {} {}",
                            resp.status_code.code(),
                            printable(
                                resp.wire_reason
                                    .as_deref()
                                    .unwrap_or(resp.status_code.text())
                            )
                        ),
                        Ok(Err(e)) => format!("registration failed: {}", printable(&e.to_string())),
                        Err(_) => "registration failed: no answer from the registrar".to_owned(),
                    };
                    let _ = events.send(RegistrationEvent::Failed(reason)).await;
                    let jitter =
                        0.75 + f64::from(uuid::Uuid::new_v4().as_u128() as u16) / 65535.0 / 2.0;
                    let wait = retry.mul_f64(jitter).max(RETRY_MIN);
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                done = &mut stop => {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        reg.register(self.server.clone(), Some(0)),
                    )
                    .await;
                    if let Ok(done) = done { let _ = done.send(()); }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_network_is_printable_and_bounded() {
        assert_eq!(printable("Forbidden\u{1b}[31m\u{202E}x"), "Forbidden[31mx");
        assert_eq!(printable(&"a".repeat(100)).chars().count(), 65);
    }
}
