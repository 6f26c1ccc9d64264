//! The SIP stack under the phone: rsipstack's endpoint (transports, transactions, timers
//! per RFC 3261), its dialog layer, the registration task and the filter every incoming
//! request passes before it reaches the phone. Nothing here knows about calls' ids or the
//! API; [`super`] drives it.
//!
//! The filter: requests inside a dialog go to that dialog (481 when there is none); new
//! INVITEs go to the phone at most [`INVITES_PER_SECOND`] a second (more are dropped) and
//! only from the allowed addresses (403 otherwise); OPTIONS is answered 200; anything
//! else out of a dialog gets 405.
//!
//! Over TCP every connection is pinged (RFC 5626 §4.4.1: a double CRLF, answered by a
//! single CRLF) and one that has received nothing for [`silence_limit`] is closed, so a
//! registrar that stops answering without closing the connection is noticed. The loss of
//! the connection to the registrar or proxy wakes the [`Registrar`] at once.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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
use rsipstack::transport::connection::KEEPALIVE_REQUEST;
use rsipstack::transport::{
    SipAddr, SipConnection, TcpListenerConnection, TransportEvent, TransportLayer,
    udp::UdpConnection,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
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
    /// Counts the losses of the TCP connection to the next hop (the registrar or proxy):
    /// the [`Registrar`] watches it.
    pub flow: watch::Receiver<u64>,
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
    let clean: String = text.chars().filter(|&c| !invisible(c)).collect();
    crate::settings::shown(&clean)
}

/// A transport error as a user reads it: a refused TLS certificate says which check
/// failed and which setting to look at; anything else as it is (made printable).
pub fn in_users_words(error: &str) -> String {
    let Some(at) = error.find("invalid peer certificate") else {
        return printable(error);
    };
    let detail = error[at + "invalid peer certificate".len()..].trim_start_matches([':', ' ']);
    let known = if detail.contains("UnknownIssuer") {
        Some("UnknownIssuer: from an authority not trusted here; set tls_ca_file in [sip]")
    } else if detail.contains("not valid for name") || detail.contains("NotValidForName") {
        Some("NotValidForName: not for the expected name; set tls_server_name in [sip]")
    } else if detail.contains("Expired") {
        Some("Expired")
    } else {
        None
    };
    match known {
        Some(why) => format!("TLS certificate refused ({why})"),
        None => format!("TLS certificate refused ({})", printable(detail)),
    }
}

/// Whether a peer's character must not be passed on: a control character, or one of
/// Unicode's invisible formatting controls (bidirectional marks, overrides and isolates,
/// zero-width characters, the byte-order mark).
pub fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
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

/// TCP connections to track at most; more are served but never pinged (they close once
/// silent for [`silence_limit`]).
const FLOWS_MAX: usize = 1024;

/// The live TCP connections, oldest first, and the next hop whose connection's loss is
/// told to the [`Registrar`].
struct Flows {
    live: Mutex<Vec<SipConnection>>,
    next_hop: SocketAddr,
    lost: watch::Sender<u64>,
}

fn same_tcp(a: &SipConnection, b: &SipConnection) -> bool {
    match (a, b) {
        (SipConnection::Tcp(a), SipConnection::Tcp(b)) => Arc::ptr_eq(&a.inner, &b.inner),
        _ => false,
    }
}

fn remote(c: &SipConnection) -> Option<SocketAddr> {
    c.get_remote_addr()?.get_socketaddr().ok()
}

impl Flows {
    fn opened(&self, c: SipConnection) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if live.len() < FLOWS_MAX {
            live.push(c);
        }
    }

    /// Forgets `c`; when it was the newest connection to the next hop (the one requests
    /// go out on), the registrar is told.
    fn closed(&self, c: &SipConnection) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        let Some(at) = live.iter().position(|l| same_tcp(l, c)) else {
            return;
        };
        live.remove(at);
        let to_hop = remote(c) == Some(self.next_hop);
        let newer = live[at..].iter().any(|l| remote(l) == Some(self.next_hop));
        drop(live);
        if to_hop && !newer {
            tracing::info!(to = %self.next_hop, "the TCP connection to the registrar closed");
            self.lost.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn snapshot(&self) -> Vec<SipConnection> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// How long a TCP connection may receive nothing (not even a keep-alive's answer) when
/// it is pinged every `every`: one interval plus at most 5 s for the answer.
pub fn silence_limit(every: Duration) -> Duration {
    every + every.min(Duration::from_secs(5))
}

/// Pings every tracked TCP connection about every `every` (80 to 100 % of it, jittered).
async fn keep_alive(flows: Arc<Flows>, every: Duration, cancel: CancellationToken) {
    loop {
        let wait = every.mul_f64(0.8 + roll() / 5.0);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        for c in flows.snapshot() {
            if let SipConnection::Tcp(tcp) = c {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        tcp.inner.send_raw(KEEPALIVE_REQUEST),
                    )
                    .await;
                });
            }
        }
    }
}

/// A number in [0, 1) for jitter.
fn roll() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_u128() as u32) / (f64::from(u32::MAX) + 1.0)
}

/// Sees every transport event before any transaction does: runs [`mend_via`] on every
/// request, and keeps [`Flows`] up to date.
struct Guard {
    flows: Arc<Flows>,
}

impl TransportEventInspector for Guard {
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
                TransportEvent::New(c) => {
                    if matches!(c, SipConnection::Tcp(_)) {
                        self.flows.opened(c.clone());
                    }
                    Some(TransportEvent::New(c))
                }
                TransportEvent::Closed(c) => {
                    self.flows.closed(&c);
                    Some(TransportEvent::Closed(c))
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

/// The most trusted roots taken from the system.
const MAX_ROOTS: usize = 1000;

/// What rsipstack's TLS checks the next hop's certificate against: the configured CA file
/// or the system's trusted roots (as PEM), and the name the certificate must carry (the
/// setting, else the host of the outbound proxy, else of the registrar, as configured).
fn tls_config(s: &SipSettings) -> Result<rsipstack::transport::tls::TlsConfig, String> {
    let ca = match &s.tls.ca_pem {
        Some(pem) => pem.clone(),
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "SIP over TLS: no trusted certificate authorities found on this system{why}; set tls_ca_file in [sip]"
                ));
            }
            let mut pem = Vec::new();
            for cert in found.certs.iter().take(MAX_ROOTS) {
                pem.extend_from_slice(&der_to_pem(cert.as_ref()));
            }
            pem
        }
    };
    let hop = s.outbound_proxy.as_deref().unwrap_or(&s.registrar);
    let name = s
        .tls
        .server_name
        .clone()
        .unwrap_or_else(|| host_of(hop).to_owned());
    Ok(rsipstack::transport::tls::TlsConfig {
        ca_certs: Some(ca),
        sni_hostname: Some(name),
        ..Default::default()
    })
}

/// The host of `HOST:PORT` (`[v6]:PORT` gives the address without brackets).
fn host_of(host_port: &str) -> &str {
    let host = match host_port.rsplit_once(':') {
        Some((h, p))
            if p.bytes().all(|b| b.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => host_port,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// One certificate as PEM text.
fn der_to_pem(der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in text.as_bytes().chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    pem
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
    let keepalive = s.keepalive.filter(|_| s.transport.is_stream());
    if s.transport == Transport::Tls {
        layer.set_tls_config(tls_config(s)?);
        if let Some(every) = keepalive {
            layer.set_stream_idle_timeout(silence_limit(every));
        }
    }
    if s.transport == Transport::Tcp {
        let tcp = TcpListenerConnection::new(local, None)
            .await
            .map_err(|e| format!("cannot listen for SIP on tcp {local}: {e}"))?;
        layer.add_transport(tcp.into());
        if let Some(every) = keepalive {
            layer.set_stream_idle_timeout(silence_limit(every));
        }
    }
    let (lost, flow) = watch::channel(0u64);
    let flows = Arc::new(Flows {
        live: Mutex::new(Vec::new()),
        next_hop,
        lost,
    });
    if let Some(every) = keepalive {
        tokio::spawn(keep_alive(Arc::clone(&flows), every, cancel.child_token()));
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
        .with_transport_inspector(Box::new(Guard { flows }))
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
    let transport = s.uri_param();
    let contact = uri(&format!(
        "{}:{}@{host}:{}{transport}",
        s.scheme(),
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
            flow,
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

/// The first wait before another REGISTER after a failure; the waits double from it.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait after a failure (no answer, a refused connection, a 5xx): a registrar
/// that is back is registered with again within this (and within the refresh period
/// when that is shorter).
pub const RETRY_MAX: Duration = Duration::from_secs(25);
/// The least time between two REGISTER transactions (each may carry one digest answer).
pub const REGISTER_GAP: Duration = Duration::from_secs(1);
/// Refusals of the credentials (401, 403, 407) in a row after which the phone retries
/// only every [`REFUSED_RETRY`].
pub const REFUSALS_BEFORE_SLOW: u32 = 3;
/// The wait between tries once the credentials were refused [`REFUSALS_BEFORE_SLOW`]
/// times (80 to 100 % of it, jittered).
pub const REFUSED_RETRY: Duration = Duration::from_secs(300);
/// The most a registrar's Retry-After is followed.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);
/// How long one REGISTER transaction may take over UDP (RFC 3261's timer F).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(32);
/// ... and over TCP, where nothing is retransmitted: a registrar that has not answered
/// by then (the challenge and the answer included) has lost the connection. The stack
/// itself retries a lost TCP connection until timer F, which would hide the loss.
const REGISTER_TIMEOUT_RELIABLE: Duration = Duration::from_secs(3);
/// How long the un-REGISTER at stop may take (the phone waits 3 s for it all).
const UNREGISTER_TIMEOUT: Duration = Duration::from_millis(1800);

/// The wait before retry `n` (0: the first after a failure): 1 s doubling up to `cap`,
/// each 50 to 100 % of that (`roll` in [0, 1)), never under a second.
pub fn backoff(n: u32, cap: Duration, roll: f64) -> Duration {
    let base = RETRY_MIN.saturating_mul(1 << n.min(16)).min(cap);
    base.mul_f64(0.5 + roll.clamp(0.0, 1.0) / 2.0)
        .max(RETRY_MIN)
}

/// A whole number of seconds at the start of a header value (`120`, `120;duration=60`).
fn leading_secs(value: &str) -> Option<u64> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

/// Keeps the phone registered: refreshes at 3/4 of the granted time; reports the
/// registration lost when it expires unanswered or its TCP connection closes (and then
/// registers again at once); retries failures with a jittered backoff from 1 s to
/// [`RETRY_MAX`] (or the refresh period when shorter), at most one REGISTER transaction
/// per [`REGISTER_GAP`], and only every [`REFUSED_RETRY`] once the credentials were
/// refused [`REFUSALS_BEFORE_SLOW`] times; un-registers when `stop` fires (the answer to
/// `stop` comes once the un-REGISTER is answered or timed out).
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
    /// Whether the transport is reliable (TCP or TLS).
    pub reliable: bool,
    /// Whether it is TLS.
    pub tls: bool,
    /// The losses of the TCP connection to the next hop ([`Stack::flow`]).
    pub flow: watch::Receiver<u64>,
}

/// What ended a wait of the [`Registrar`].
enum Woken {
    /// Time for the next REGISTER.
    Due,
    /// The phone stops (with where to say that the un-REGISTER is done).
    Stop(Option<oneshot::Sender<()>>),
}

impl Registrar {
    /// Runs until `stop` fires.
    pub async fn run(
        mut self,
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
        let mut expires = u32::try_from(self.interval.as_secs()).unwrap_or(3600);
        let cap = RETRY_MAX.min(self.interval * 3 / 4).max(RETRY_MIN);
        let limit = if self.reliable {
            REGISTER_TIMEOUT_RELIABLE
        } else {
            REGISTER_TIMEOUT
        };
        let flow_target = if self.reliable {
            match self.proxy {
                Some(p) => Some(SipAddr {
                    r#type: Some(if self.tls {
                        sip::Transport::Tls
                    } else {
                        sip::Transport::Tcp
                    }),
                    addr: p.into(),
                }),
                None => SipAddr::try_from(&self.server).ok(),
            }
        } else {
            None
        };
        let mut failures: u32 = 0;
        let mut refusals: u32 = 0;
        // When the last REGISTER went out, and until when its registration holds.
        let mut sent: Option<Instant> = None;
        let mut valid_until: Option<Instant> = None;
        let mut due = Instant::now();
        let mut flow_open = true;
        loop {
            // Wait until due (and a second after the last REGISTER); while registered
            // over TCP, the loss of its connection makes the refresh due at once.
            let woken = loop {
                let at = sent.map_or(due, |s| due.max(s + REGISTER_GAP));
                let watch_flow = self.reliable && valid_until.is_some() && flow_open;
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => break Woken::Due,
                    changed = self.flow.changed(), if watch_flow => {
                        if changed.is_err() {
                            flow_open = false;
                        } else {
                            due = Instant::now();
                        }
                    }
                    done = &mut stop => break Woken::Stop(done.ok()),
                }
            };
            if let Woken::Stop(done) = woken {
                self.unregister(&mut reg, sent).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
            let started = Instant::now();
            // A registration that expires before the refresh is answered is lost.
            let expiry = valid_until.unwrap_or(started + Duration::from_secs(86_400 * 2));
            let outcome = {
                let attempt = tokio::time::timeout(limit, async {
                    // Over TCP the connection first: a refused one fails at once (the
                    // stack would retry it until the timeout), and sends no REGISTER.
                    if let Some(target) = &flow_target {
                        reg.endpoint.transport_layer.lookup(target, None).await?;
                    }
                    reg.register(self.server.clone(), Some(expires)).await
                });
                tokio::pin!(attempt);
                loop {
                    tokio::select! {
                        r = &mut attempt => break Ok(r),
                        _ = tokio::time::sleep_until(expiry), if valid_until.is_some() => {
                            valid_until = None;
                            let _ = events
                                .send(RegistrationEvent::Failed(
                                    "registration expired: no answer from the registrar"
                                        .to_owned(),
                                ))
                                .await;
                        }
                        done = &mut stop => break Err(done.ok()),
                    }
                }
            };
            let attempt = match outcome {
                Ok(a) => a,
                Err(done) => {
                    // Abandoned: a second after it began (no auth answer goes out now).
                    self.unregister(&mut reg, Some(started)).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            };
            // The gap counts from the attempt's last message (a retransmission or the
            // digest answer may have left just now).
            let ended = Instant::now();
            sent = Some(ended);
            // Losses before now are this attempt's business, not the next refresh's.
            self.flow.borrow_and_update();
            let (resp, error) = match attempt {
                Ok(Ok(resp)) if resp.status_code == sip::StatusCode::OK => {
                    let granted = reg.expires().max(1);
                    // The registrar counts from its answer, which just came.
                    valid_until = Some(ended + Duration::from_secs(u64::from(granted)));
                    failures = 0;
                    refusals = 0;
                    let _ = events.send(RegistrationEvent::Registered(granted)).await;
                    due = ended + Duration::from_secs(u64::from(granted) * 3 / 4);
                    continue;
                }
                Ok(Ok(resp)) => (Some(resp), None),
                Ok(Err(e)) => (None, Some(e.to_string())),
                Err(_) => (None, None),
            };
            valid_until = None;
            let mut reason = match (&resp, error) {
                (Some(resp), _) => format!(
                    "registration failed: {} {}",
                    resp.status_code.code(),
                    printable(
                        resp.wire_reason
                            .as_deref()
                            .unwrap_or(resp.status_code.text())
                    )
                ),
                (None, Some(e)) => format!("registration failed: {}", in_users_words(&e)),
                (None, None) => "registration failed: no answer from the registrar".to_owned(),
            };
            let code = resp.as_ref().map(|r| r.status_code.code());
            let mut wait = backoff(failures, cap, roll());
            failures = failures.saturating_add(1);
            if !matches!(code, Some(401 | 403 | 407)) {
                refusals = 0;
            } else {
                refusals = refusals.saturating_add(1);
                if refusals >= REFUSALS_BEFORE_SLOW {
                    wait = REFUSED_RETRY.mul_f64(0.8 + roll() / 5.0);
                    reason.push_str(&format!(
                        " (refused {refusals} times in a row: retrying every {} minutes)",
                        REFUSED_RETRY.as_secs() / 60
                    ));
                }
            }
            if let Some(resp) = &resp {
                for h in resp.headers.iter() {
                    match h {
                        sip::Header::RetryAfter(v) => {
                            if let Some(secs) = leading_secs(v.value()) {
                                wait = wait.max(Duration::from_secs(secs).min(RETRY_AFTER_MAX));
                            }
                        }
                        sip::Header::MinExpires(v) if code == Some(423) => {
                            if let Some(secs) = leading_secs(v.value()) {
                                let asked = u32::try_from(secs.min(86_400)).unwrap_or(86_400);
                                expires = expires.max(asked);
                            }
                        }
                        _ => {}
                    }
                }
            }
            let _ = events.send(RegistrationEvent::Failed(reason)).await;
            due = Instant::now() + wait;
        }
    }

    /// The un-REGISTER (a second after the last REGISTER at the earliest).
    async fn unregister(&self, reg: &mut Registration, sent: Option<Instant>) {
        if let Some(sent) = sent {
            tokio::time::sleep_until(sent + REGISTER_GAP).await;
        }
        let _ = tokio::time::timeout(
            UNREGISTER_TIMEOUT,
            reg.register(self.server.clone(), Some(0)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_told_in_users_words() {
        let issuer = in_users_words("I/O error: invalid peer certificate: UnknownIssuer");
        assert!(
            issuer.starts_with("TLS certificate refused (UnknownIssuer"),
            "{issuer}"
        );
        assert!(issuer.contains("tls_ca_file"), "{issuer}");
        let name = in_users_words(
            "I/O error: invalid peer certificate: certificate not valid for name \"x\"; certificate is only valid for DnsName(\"y\")",
        );
        assert!(
            name.contains("NotValidForName") && name.contains("tls_server_name"),
            "{name}"
        );
        assert_eq!(
            in_users_words("connection refused\u{202E}"),
            "connection refused"
        );
    }

    #[test]
    fn text_from_the_network_is_printable_and_bounded() {
        assert_eq!(printable("Forbidden\u{1b}[31m\u{202E}x"), "Forbidden[31mx");
        assert_eq!(printable(&"a".repeat(100)).chars().count(), 65);
    }

    #[test]
    fn the_backoff_doubles_from_a_second_to_its_cap_with_jitter() {
        let cap = RETRY_MAX;
        let secs = |n, roll| backoff(n, cap, roll).as_secs_f64();
        assert_eq!(secs(0, 0.0), 1.0);
        assert_eq!(secs(0, 0.99), 1.0);
        assert_eq!(secs(1, 0.0), 1.0);
        assert!((secs(1, 0.999) - 2.0).abs() < 0.01);
        assert_eq!(secs(3, 0.0), 4.0);
        assert_eq!(secs(5, 0.0), 12.5);
        assert!(secs(5, 0.999) <= 25.0);
        assert_eq!(secs(40, 0.0), 12.5);
        assert!(secs(u32::MAX, 1.0) <= 25.0);
        // A short refresh period caps it lower; a second stays the least.
        assert_eq!(backoff(9, Duration::from_secs(3), 0.999).as_secs(), 2);
        assert_eq!(backoff(9, Duration::from_millis(10), 0.0), RETRY_MIN);
    }

    #[test]
    fn header_seconds_are_read_bounded() {
        assert_eq!(leading_secs(" 120;duration=60"), Some(120));
        assert_eq!(leading_secs("x"), None);
        assert_eq!(leading_secs("99999999999999999999"), Some(999_999_999));
    }

    #[test]
    fn the_silence_limit_is_an_interval_and_at_most_5_s() {
        assert_eq!(silence_limit(Duration::from_secs(2)).as_secs(), 4);
        assert_eq!(silence_limit(Duration::from_secs(10)).as_secs(), 15);
        assert_eq!(silence_limit(Duration::from_secs(300)).as_secs(), 305);
    }
}
