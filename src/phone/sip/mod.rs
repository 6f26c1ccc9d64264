//! The `sip` backend: bapiws's own SIP phone — signalling, RTP media and audio in this
//! process, no other program.
//!
//! - [`settings`]: the `[sip]` table and `--sip-…` flags.
//! - [`stack`]: the SIP stack (rsipstack: transports, transactions, dialogs), the
//!   registration task and the filter every incoming request passes.
//! - [`queue`]: the `[sip.queue]` rule that tells a queue call and reads its fields.
//! - [`sdp`]: session descriptions and offer/answer; [`media`]: RTP streams with G.711, the
//!   jitter buffer and DTMF; [`audio`]: sources and sinks (devices, tone, WAV, silence).
//! - This module: the backend task. It owns the calls; the stack's tasks and each call's
//!   media stream report to it through bounded channels, and every network operation it
//!   starts runs in a task of its own, so a slow far end never holds up a command.

pub mod audio;
pub mod media;
pub mod queue;
pub mod sdp;
mod settings;
pub mod stack;

pub use settings::{Args, InviteSources, PasswordFrom, SipSettings, Transport};
/// This backend's resolved settings.
pub type Settings = SipSettings;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{self, HeadersExt};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::{mpsc, oneshot};

use super::{
    Availability, BackendStatus, Call, CallAction, CallId, CallState, Command, Direction, Envelope,
    Events, PhoneError, PhoneEvent, PhoneHandle, PhoneNumber, PhoneState, Reply, Snapshot,
    pick_call,
};
use media::srtp::MasterKey;
use media::{Control, MediaEvent, Stream};
use sdp::{Agreed, Encryption, Local, SdpError, Session};
use stack::{Registrar, RegistrationEvent, Stack};

/// The reason a call we ended carries.
pub const REASON_LOCAL: &str = "Connection reset by user";
/// The reason a call the far end ended carries.
pub const REASON_REMOTE: &str = "Connection reset by peer";
/// How long an inbound call may ring before the phone answers 480 itself.
const RING_LIMIT: Duration = Duration::from_secs(180);
/// How long a call we cancelled or hung up may take to end on the wire.
const END_LIMIT: Duration = Duration::from_secs(32);

/// Starts the backend task, with the SIP stack and the calls' media, on a thread of its
/// own with a single-threaded runtime: the hops between the stack's tasks, the filter
/// and the backend task are then switches within one thread, not wake-ups of another
/// (see docs/performance.md). Where that thread cannot start, they run on the caller's
/// runtime.
pub fn spawn(settings: SipSettings, events: Events) -> PhoneHandle {
    let (handle, commands, snapshot) = PhoneHandle::channel();
    snapshot.publish_status(&BackendStatus {
        link: Some("starting".into()),
        last_error: None,
        audio: None,
    });
    let phone = run(settings, events, snapshot, commands);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("sip-phone")
        .build();
    match runtime {
        Ok(runtime) => {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let started = std::thread::Builder::new()
                .name("sip-phone".into())
                .spawn(move || {
                    if let Ok(phone) = rx.recv() {
                        runtime.block_on(phone);
                    }
                });
            match started {
                Ok(_) => {
                    let _ = tx.send(phone);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the SIP phone's thread did not start; the phone shares the server's");
                    tokio::spawn(phone);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the SIP phone's runtime did not start; the phone shares the server's");
            tokio::spawn(phone);
        }
    }
    handle
}

/// What the phone's tasks tell the backend task.
enum Input {
    /// An outbound INVITE's transaction finished (the dialog's states tell the rest).
    Dialled(String, Result<Option<sip::StatusCode>, String>),
    /// The far end's REFER asks us to call this number (the call's SIP Call-ID).
    Referred(String, PhoneNumber),
    /// The far end accepted our REFER.
    TransferAccepted(String),
    /// A re-INVITE of ours was answered (Call-ID, the answer's SDP, whether it succeeded).
    Reinvited(String, Option<Vec<u8>>, bool),
    /// A call rang too long or took too long to end.
    Expired(String),
}

struct Entry {
    call: Call,
    /// The SIP Call-ID: dialogs are found by it.
    sip_id: String,
    dialog: Option<InviteDialog>,
    /// The far end's offer (inbound, until answered).
    offer: Option<Vec<u8>>,
    /// Our RTP sockets until the stream starts, then the stream.
    sockets: Option<(tokio::net::UdpSocket, tokio::net::UdpSocket)>,
    media_addr: SocketAddr,
    stream: Option<Stream>,
    local: Local,
    agreed: Option<Agreed>,
    /// We hold the call.
    held: bool,
    /// The far end holds the call (its last offer was sendonly, inactive or 0.0.0.0).
    far_held: bool,
    /// The transfer target we sent a REFER for.
    transfer: Option<String>,
    /// Whether `CallTransferred` was raised for it.
    transfer_told: bool,
    /// Our SRTP master key for the call (offered or answered when media is encrypted).
    key: MasterKey,
}

impl Entry {
    /// A connected call's state: our hold first, then the far end's.
    fn connected_state(&self) -> CallState {
        if self.held {
            CallState::OnHold
        } else if self.far_held {
            CallState::HeldByFarEnd
        } else {
            CallState::Connected
        }
    }
}

struct Phone {
    s: SipSettings,
    events: Events,
    snapshot: Arc<Snapshot>,
    stack: Arc<Stack>,
    registered: bool,
    last_error: Option<String>,
    calls: Vec<Entry>,
    muted: bool,
    allowed: Vec<IpAddr>,
    next_hop: SocketAddr,
    inputs: mpsc::Sender<Input>,
    media_events: mpsc::Sender<(String, MediaEvent)>,
    /// What `/health` says of the audio.
    audio: String,
}

/// The audio in a few words, warning when a configured device is missing: a phone
/// without a sound device still registers and connects calls.
async fn describe_audio(s: &SipSettings) -> String {
    use audio::{SinkSpec, SourceSpec};
    let wants_device = matches!(s.audio_source, SourceSpec::Device(_))
        || matches!(s.audio_sink, SinkSpec::Device(_));
    let devices = if wants_device {
        tokio::task::spawn_blocking(audio::device::status)
            .await
            .ok()
    } else {
        None
    };
    let source = match &s.audio_source {
        SourceSpec::Device(_) if devices.is_some_and(|d| !d.input) => {
            tracing::warn!("no microphone: calls will send silence");
            "no microphone: calls send silence".to_owned()
        }
        SourceSpec::Device(None) => "the default microphone".to_owned(),
        SourceSpec::Device(Some(n)) => format!("microphone {:?}", crate::settings::shown(n)),
        SourceSpec::Tone(hz) => format!("a {hz} Hz tone"),
        SourceSpec::Wav(p) => format!(
            "the WAV file {}",
            crate::settings::shown(&p.display().to_string())
        ),
        SourceSpec::Silence => "silence".to_owned(),
    };
    let sink = match &s.audio_sink {
        SinkSpec::Device(_) if devices.is_some_and(|d| !d.output) => {
            tracing::warn!("no speaker: nobody hears the far end");
            "no speaker: nobody hears the far end".to_owned()
        }
        SinkSpec::Device(None) => "the default speaker".to_owned(),
        SinkSpec::Device(Some(n)) => format!("speaker {:?}", crate::settings::shown(n)),
        SinkSpec::Wav(p) => format!(
            "WAV recordings {}",
            crate::settings::shown(&p.display().to_string())
        ),
        SinkSpec::Discard => "discarded".to_owned(),
    };
    format!("in: {source}; out: {sink}")
}

/// What is left to do for an inbound call once the client has been told of it: run the
/// INVITE's transaction (it answers retransmissions, ACK and CANCEL), send `180 Ringing`,
/// and end the call if it rings too long. The client hears first because nothing here
/// can refuse the call any more, and the `CallComing` then leaves before this work.
struct Ring {
    tx: Transaction,
    dialog: InviteDialog,
    sip_id: String,
}

impl Ring {
    fn start(self, inputs: mpsc::Sender<Input>) {
        let Ring {
            mut tx,
            dialog,
            sip_id,
        } = self;
        // The stack answers a CANCEL from the transaction's own copy of the INVITE, which
        // has no To tag yet: without the dialog's, its 487 would carry a new tag, unlike
        // the 180 (two early dialogs from one phone).
        if let Ok(to) = tx.original.to_header() {
            let tagged = to.clone().with_tag(dialog.id().local_tag.clone().into());
            tx.original.headers.unique_push(tagged.into());
        }
        let mut handler = dialog.clone();
        tokio::spawn(async move {
            if let Err(e) = handler.handle(&mut tx).await {
                tracing::debug!(error = %e, "an inbound INVITE's transaction failed");
            }
        });
        let _ = dialog.ringing(None, None);
        tokio::spawn(async move {
            tokio::time::sleep(RING_LIMIT).await;
            let _ = inputs.send(Input::Expired(sip_id)).await;
        });
    }
}

async fn run(
    s: SipSettings,
    events: Events,
    snapshot: Arc<Snapshot>,
    mut commands: mpsc::Receiver<Envelope>,
) {
    let start = async {
        let registrar = stack::resolve(&s.registrar).await?;
        let proxy = match &s.outbound_proxy {
            Some(p) => Some(stack::resolve(p).await?),
            None => None,
        };
        let next_hop = proxy.unwrap_or(registrar);
        let (stack, channels) = stack::start(&s, next_hop).await?;
        Ok::<_, String>((registrar, proxy, next_hop, stack, channels))
    };
    let (registrar, proxy, next_hop, stack, mut channels) = match start.await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the SIP phone cannot start");
            snapshot.publish_status(&BackendStatus {
                link: Some("not started".into()),
                last_error: Some(e.clone()),
                audio: None,
            });
            // Answer every command with the reason until the server stops.
            while let Some((command, reply)) = commands.recv().await {
                let done = command == Command::Shutdown;
                let _ = reply.send(if done {
                    Ok(Reply::Done)
                } else {
                    Err(PhoneError::Unavailable(e.clone()))
                });
                if done {
                    return;
                }
            }
            return;
        }
    };
    tracing::info!(local = %stack.local, contact = %stack.contact, "the SIP phone listens");
    let (inputs_tx, mut inputs) = mpsc::channel::<Input>(64);
    let (media_tx, mut media_rx) = mpsc::channel::<(String, MediaEvent)>(64);
    let mut allowed = vec![registrar.ip()];
    if let Some(p) = proxy {
        allowed.push(p.ip());
    }
    let stack = Arc::new(stack);
    let mut phone = Phone {
        s: s.clone(),
        events,
        snapshot,
        stack: Arc::clone(&stack),
        registered: !s.register,
        last_error: None,
        calls: Vec::new(),
        muted: false,
        allowed,
        next_hop,
        inputs: inputs_tx.clone(),
        media_events: media_tx,
        audio: describe_audio(&s).await,
    };
    phone.publish();
    if !s.register {
        phone.emit(vec![PhoneEvent::StateChanged(phone.state())]);
    }
    let (reg_tx, mut reg_rx) = mpsc::channel(8);
    let (stop_tx, stop_rx) = oneshot::channel();
    if s.register {
        let server = stack::uri(&format!("{}:{}{}", s.scheme(), s.domain, s.uri_param()));
        match server {
            Ok(server) => {
                let r = Registrar {
                    server,
                    proxy: (registrar.to_string() != s.domain).then_some(next_hop),
                    contact: stack.contact.clone(),
                    credential: s.password.as_ref().map(|password| Credential {
                        username: s.user.clone(),
                        password: password.expose().to_owned(),
                        realm: None,
                        auth_username: (s.auth_user != s.user).then(|| s.auth_user.clone()),
                    }),
                    interval: s.register_interval,
                    reliable: s.transport.is_stream(),
                    tls: s.transport == Transport::Tls,
                    flow: stack.flow.clone(),
                };
                tokio::spawn(r.run(stack.endpoint.clone(), reg_tx, stop_rx));
            }
            Err(e) => phone.last_error = Some(e),
        }
    }
    let mut stop = Some(stop_tx);
    loop {
        tokio::select! {
            c = commands.recv() => {
                let Some((command, reply)) = c else { break };
                if command == Command::Shutdown {
                    phone.shutdown(stop.take()).await;
                    let _ = reply.send(Ok(Reply::Done));
                    return;
                }
                let (result, events) = phone.command(command).await;
                phone.publish();
                phone.emit(events);
                let _ = reply.send(result);
            }
            Some(r) = reg_rx.recv() => {
                let events = phone.registration(r);
                phone.publish();
                phone.emit(events);
            }
            Some(state) = channels.states.recv() => {
                let events = phone.dialog_state(state).await;
                phone.publish();
                phone.emit(events);
            }
            Some((tx, from)) = channels.invites.recv() => {
                // The client hears of the call first; the 180 follows (see `Ring`).
                if let Some((events, ring)) = phone.invite(tx, from) {
                    phone.publish();
                    phone.emit(events);
                    ring.start(phone.inputs.clone());
                }
            }
            Some(input) = inputs.recv() => {
                let events = phone.input(input).await;
                phone.publish();
                phone.emit(events);
            }
            Some((sip_id, e)) = media_rx.recv() => {
                let MediaEvent::Dtmf(d) = e;
                let id = phone.calls.iter().find(|c| c.sip_id == sip_id).map(|c| c.call.id.to_string());
                tracing::info!(call = id.as_deref().unwrap_or("?"), digit = %d, "DTMF received");
            }
        }
    }
    phone.shutdown(stop.take()).await;
}

/// A request URI with the transport parameter `param` added unless it names one (or is
/// a `sips:` URI, whose scheme says TLS).
fn with_transport(uri: &str, param: &str) -> String {
    let lower = uri.to_ascii_lowercase();
    if lower.contains(";transport=") || lower.starts_with("sips:") {
        uri.to_owned()
    } else {
        format!("{uri}{param}")
    }
}

/// `text` as a URI header value: everything but RFC 3986's unreserved characters
/// percent-encoded.
fn uri_escaped(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn reason_text(r: &TerminatedReason) -> String {
    match r {
        TerminatedReason::UasBye => REASON_REMOTE.into(),
        TerminatedReason::UacBye => REASON_LOCAL.into(),
        TerminatedReason::UacCancel => "cancelled by the caller".into(),
        TerminatedReason::UasBusy => sip::StatusCode::BusyHere.to_string(),
        TerminatedReason::UasDecline => sip::StatusCode::Decline.to_string(),
        TerminatedReason::UacBusy => sip::StatusCode::BusyHere.to_string(),
        TerminatedReason::Timeout => "no answer (SIP timeout)".into(),
        TerminatedReason::ProxyAuthRequired => {
            "407 Proxy Authentication Required (check the account's password)".into()
        }
        TerminatedReason::ProxyError(c)
        | TerminatedReason::UacOther(c)
        | TerminatedReason::UasOther(c) => stack::printable(&c.to_string()),
    }
}

/// The caller's number: the From URI's user part (display name when it has none).
fn caller_number(request: &sip::Request) -> String {
    let from = request.from_header().ok().and_then(|f| f.typed().ok());
    let user = from
        .as_ref()
        .and_then(|f| f.uri.user().map(str::to_owned))
        .filter(|u| !u.is_empty())
        .or_else(|| from.as_ref().and_then(|f| f.display_name.clone()))
        .unwrap_or_default();
    shown_number(&user)
}

/// A number from the network as it may be shown: printable, bounded.
fn shown_number(raw: &str) -> String {
    stack::printable(raw)
}

fn sdp_headers() -> Option<Vec<sip::Header>> {
    Some(vec![sip::Header::ContentType("application/sdp".into())])
}

impl Phone {
    fn state(&self) -> PhoneState {
        if !self.calls.is_empty() {
            PhoneState::Online(Availability::Busy)
        } else if self.registered {
            PhoneState::Online(self.s.availability)
        } else {
            PhoneState::Offline
        }
    }

    fn status(&self) -> BackendStatus {
        BackendStatus {
            link: Some(
                if !self.s.register {
                    "not registering"
                } else if self.registered {
                    "registered"
                } else if self.last_error.is_none() {
                    "registering"
                } else {
                    "not registered"
                }
                .into(),
            ),
            last_error: self.last_error.clone(),
            audio: Some(self.audio.clone()),
        }
    }

    fn publish(&self) {
        let calls: Vec<Call> = self.calls.iter().map(|c| c.call.clone()).collect();
        self.snapshot.publish_if_changed(self.state(), &calls);
        self.snapshot.publish_status(&self.status());
    }

    fn emit(&self, events: Vec<PhoneEvent>) {
        for e in events {
            self.events.emit(e);
        }
    }

    /// Runs `change` and adds a StateChanged event when the state moved.
    fn tracking<T>(
        &mut self,
        change: impl FnOnce(&mut Phone, &mut Vec<PhoneEvent>) -> T,
    ) -> (T, Vec<PhoneEvent>) {
        let before = self.state();
        let mut events = Vec::new();
        let r = change(self, &mut events);
        let after = self.state();
        if after != before {
            events.push(PhoneEvent::StateChanged(after));
        }
        (r, events)
    }

    fn registration(&mut self, r: RegistrationEvent) -> Vec<PhoneEvent> {
        self.tracking(|p, _| match r {
            RegistrationEvent::Registered(secs) => {
                if !p.registered {
                    tracing::info!(seconds = secs, "registered");
                }
                p.registered = true;
            }
            RegistrationEvent::Failed(reason) => {
                if p.registered || p.last_error.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(reason = %reason, "SIP registration failed");
                }
                p.registered = false;
                p.last_error = Some(reason);
            }
        })
        .1
    }

    fn unavailable(&self) -> PhoneError {
        PhoneError::Unavailable(match &self.last_error {
            Some(e) if e.contains(" 401 ") || e.contains(" 403 ") => format!(
                "the phone is not registered ({e}): check the [sip] account, auth_user and password"
            ),
            Some(e) => format!("the phone is not registered ({e})"),
            None => "the phone is not registered yet".into(),
        })
    }

    fn index(&self, id: &CallId) -> Option<usize> {
        self.calls.iter().position(|c| &c.call.id == id)
    }

    fn by_sip_id(&self, sip_id: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.sip_id == sip_id)
    }

    fn latest(&self, state: CallState) -> Option<usize> {
        self.calls.iter().rposition(|c| c.call.state == state)
    }

    async fn command(&mut self, command: Command) -> (Result<Reply, PhoneError>, Vec<PhoneEvent>) {
        match command {
            Command::CallOut(number) => self.call_out(number, None).await,
            Command::Answer => {
                let Some(i) = self.latest(CallState::Ringing) else {
                    return (
                        Err(PhoneError::NoSuchCall("no ringing inbound call".into())),
                        vec![],
                    );
                };
                let id = self.calls[i].call.id.clone();
                self.answer(&id).await
            }
            Command::HangUp => {
                let i = super::HANG_UP_ORDER
                    .into_iter()
                    .find_map(|s| self.latest(s));
                match i {
                    Some(i) => {
                        let id = self.calls[i].call.id.clone();
                        let (_, events) = self.tracking(|p, ev| p.hang_up(&id, ev));
                        (Ok(Reply::Done), events)
                    }
                    None => (Err(PhoneError::NoSuchCall("no active call".into())), vec![]),
                }
            }
            Command::Call { call, action } => {
                let calls: Vec<Call> = self.calls.iter().map(|c| c.call.clone()).collect();
                let id = match pick_call(&calls, call.as_ref(), &action) {
                    Ok(id) => id,
                    Err(e) => return (Err(e), vec![]),
                };
                match action {
                    CallAction::Answer => self.answer(&id).await,
                    CallAction::HangUp => {
                        let (_, events) = self.tracking(|p, ev| p.hang_up(&id, ev));
                        (Ok(Reply::Done), events)
                    }
                    CallAction::Hold => {
                        let mut events = Vec::new();
                        let r = self.hold(&id, true, &mut events);
                        (r.map(|_| Reply::Done), events)
                    }
                    CallAction::Resume => {
                        let mut events = Vec::new();
                        for other in self.connected_except(&id) {
                            let _ = self.hold(&other, true, &mut events);
                        }
                        let r = self.hold(&id, false, &mut events);
                        (r.map(|_| Reply::Done), events)
                    }
                    CallAction::Transfer(number) => (self.transfer(&id, &number), vec![]),
                    CallAction::TransferTo(target) => (self.transfer_to(&id, &target), vec![]),
                    CallAction::SendDtmf(digits) => (self.dtmf(&id, digits.as_str()), vec![]),
                }
            }
            Command::Mute(on) => {
                if self.calls.is_empty() {
                    return (Err(PhoneError::NoCallFits("no active call".into())), vec![]);
                }
                if self.muted == on {
                    return (Ok(Reply::Done), vec![]);
                }
                self.muted = on;
                for c in &self.calls {
                    if let Some(st) = &c.stream {
                        st.control(Control::Mute(on));
                    }
                }
                (Ok(Reply::Done), vec![PhoneEvent::MuteChanged(on)])
            }
            Command::Shutdown => (Ok(Reply::Done), vec![]),
        }
    }

    fn connected_except(&self, id: &CallId) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|c| &c.call.id != id && c.call.state.is_up())
            .map(|c| c.call.id.clone())
            .collect()
    }

    async fn bind_media(
        &self,
    ) -> Result<((tokio::net::UdpSocket, tokio::net::UdpSocket), SocketAddr), PhoneError> {
        let bind_ip = self.stack.local.ip();
        let pair = media::bind_pair(bind_ip, &self.s.rtp_ports)
            .await
            .map_err(|e| {
                PhoneError::Refused(format!(
                    "no free RTP port in {}-{}: {e}",
                    self.s.rtp_ports.start(),
                    self.s.rtp_ports.end()
                ))
            })?;
        let port = pair.0.local_addr().map(|a| a.port()).unwrap_or(0);
        Ok((pair, SocketAddr::new(self.stack.public_ip, port)))
    }

    fn session_id() -> u64 {
        (uuid::Uuid::new_v4().as_u128() as u64) >> 12
    }

    /// A call's SRTP master key, from the system's random source.
    fn new_key() -> Result<MasterKey, PhoneError> {
        MasterKey::random()
            .map_err(|e| PhoneError::Refused(format!("no random source for the call's keys: {e}")))
    }

    /// `CallTransferred` for call `i`'s REFER, once.
    fn transferred(&mut self, i: usize) -> Option<PhoneEvent> {
        let entry = &mut self.calls[i];
        let number = entry.transfer.clone().filter(|_| !entry.transfer_told)?;
        entry.transfer_told = true;
        Some(PhoneEvent::CallTransferred {
            id: entry.call.id.clone(),
            number,
        })
    }

    /// A failed call's reason, with what a 488 likely means when SRTP is mandatory.
    fn explained(&self, mut reason: String) -> String {
        if self.s.srtp == Encryption::Mandatory && reason.starts_with("488") {
            reason.push_str(" (the far end may not support encrypted media, which [sip] srtp = \"mandatory\" requires)");
        }
        reason
    }

    /// Agrees on a far end's offer under the `srtp` setting.
    fn agree(&self, body: &[u8]) -> Result<Agreed, SdpError> {
        Session::parse(body).and_then(|s| sdp::agree(&s, &self.s.codecs, self.s.srtp))
    }

    /// Agrees on the far end's answer to call `i`'s last offer of ours.
    fn agree_answer(&self, i: usize, body: &[u8]) -> Result<Agreed, SdpError> {
        Session::parse(body)
            .and_then(|s| sdp::agree_answer(&s, &self.s.codecs, self.s.srtp, &self.calls[i].local))
    }

    /// Ends a call whose far end answered without the encryption the setting requires:
    /// BYE on the wire, the reason to the clients and the log.
    fn end_unencrypted(&mut self, i: usize, e: &SdpError, events: &mut Vec<PhoneEvent>) {
        let entry = &self.calls[i];
        tracing::warn!(call = %entry.call.id, "the call was ended: {e}");
        if let Some(dialog) = entry.dialog.clone() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(END_LIMIT, dialog.bye()).await;
            });
        }
        self.remove(i, e.to_string(), events);
    }

    /// Places a call (from CallOut, or because the far end of `referred_by` asked).
    async fn call_out(
        &mut self,
        number: PhoneNumber,
        referred_by: Option<&str>,
    ) -> (Result<Reply, PhoneError>, Vec<PhoneEvent>) {
        if !self.registered {
            return (Err(self.unavailable()), vec![]);
        }
        if self.calls.len() >= self.s.max_calls {
            return (
                Err(PhoneError::Refused(format!(
                    "the phone has {} calls, its most",
                    self.s.max_calls
                ))),
                vec![],
            );
        }
        let srtp_key = match Self::new_key() {
            Ok(k) => k,
            Err(e) => return (Err(e), vec![]),
        };
        let (sockets, media_addr) = match self.bind_media().await {
            Ok(v) => v,
            Err(e) => return (Err(e), vec![]),
        };
        let local = Local::offer(
            media_addr,
            Self::session_id(),
            &self.s.codecs,
            sdp::Direction::SendRecv,
            self.s.srtp,
            srtp_key,
        );
        let target = with_transport(
            &self.s.dial_uri.replace("{number}", number.as_str()),
            self.s.uri_param(),
        );
        let callee = match stack::uri(&target) {
            Ok(u) => u,
            Err(e) => return (Err(PhoneError::Refused(e)), vec![]),
        };
        let caller = match stack::uri(&self.s.account) {
            Ok(u) => u,
            Err(e) => return (Err(PhoneError::Refused(e)), vec![]),
        };
        let sip_id = format!("{}@bapiws", uuid::Uuid::new_v4().simple());
        let destination = self
            .s
            .outbound_proxy
            .as_ref()
            .map(|_| self.next_hop)
            .map(|a| rsipstack::transport::SipAddr {
                r#type: Some(match self.s.transport {
                    Transport::Udp => sip::Transport::Udp,
                    Transport::Tcp => sip::Transport::Tcp,
                    Transport::Tls => sip::Transport::Tls,
                }),
                addr: a.into(),
            });
        let option = InviteOption {
            caller,
            callee,
            destination,
            contact: self.stack.contact.clone(),
            credential: self.s.password.as_ref().map(|password| Credential {
                username: self.s.user.clone(),
                password: password.expose().to_owned(),
                realm: None,
                auth_username: (self.s.auth_user != self.s.user).then(|| self.s.auth_user.clone()),
            }),
            content_type: Some("application/sdp".into()),
            offer: Some(local.write().into_bytes()),
            call_id: Some(sip_id.clone()),
            ..InviteOption::default()
        };
        let (dialog, handle) = match self
            .stack
            .dialogs
            .do_invite_async(option, self.stack.states.clone())
        {
            Ok(v) => v,
            Err(e) => {
                return (
                    Err(PhoneError::Refused(format!(
                        "the call could not be placed: {e}"
                    ))),
                    vec![],
                );
            }
        };
        let inputs = self.inputs.clone();
        let key = sip_id.clone();
        tokio::spawn(async move {
            let r = match handle.await {
                Ok(Ok((_, resp))) => Ok(resp.map(|r| r.status_code)),
                Ok(Err(e)) => Err(stack::printable(&e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            let _ = inputs.send(Input::Dialled(key, r)).await;
        });
        let id = CallId::new_guid();
        if let Some(by) = referred_by {
            tracing::info!(call = %id, "calling the transfer target the far end of {by} asked for");
        }
        let ((), events) = self.tracking(|p, ev| {
            for other in p.connected_except(&id) {
                let _ = p.hold(&other, true, ev);
            }
            p.calls.push(Entry {
                call: Call {
                    id: id.clone(),
                    direction: Direction::Outbound,
                    state: CallState::Calling,
                    number: number.as_str().to_owned(),
                    started: SystemTime::now(),
                },
                sip_id,
                dialog: Some(dialog),
                offer: None,
                sockets: Some(sockets),
                media_addr,
                stream: None,
                local,
                agreed: None,
                held: false,
                far_held: false,
                transfer: None,
                transfer_told: false,
                key: srtp_key,
            });
            ev.push(PhoneEvent::CallingOut {
                id: id.clone(),
                number: number.as_str().to_owned(),
            });
        });
        (Ok(Reply::Call(id)), events)
    }

    /// Starts (or updates) a call's media for an agreed description.
    fn start_media(&mut self, i: usize, agreed: Agreed) {
        let call_id = self.calls[i].call.id.to_string();
        let entry = &mut self.calls[i];
        let was_encrypted = entry.agreed.is_some_and(|a| a.srtp.is_some());
        entry.agreed = Some(agreed);
        if let Some(stream) = &entry.stream {
            if was_encrypted && agreed.srtp.is_none() {
                tracing::warn!(call = %call_id, "the far end's new description has no SRTP key: the call's media is plain RTP from now on");
            }
            stream.control(Control::Agreed(agreed));
            return;
        }
        let Some(sockets) = entry.sockets.take() else {
            return;
        };
        let source = self.s.audio_source.open().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no audio source: the far end hears silence");
            Box::new(audio::Silence)
        });
        let sink = self.s.audio_sink.open(&call_id).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no audio sink: the far end is not heard");
            Box::new(audio::Discard)
        });
        let (tx, mut rx) = mpsc::channel(16);
        let forward = self.media_events.clone();
        let sip_id = entry.sip_id.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if forward.send((sip_id.clone(), e)).await.is_err() {
                    return;
                }
            }
        });
        let direction = if entry.held {
            sdp::Direction::SendOnly
        } else {
            sdp::Direction::SendRecv
        };
        if let Some(c) = agreed.srtp {
            tracing::info!(call = %call_id, suite = c.suite.name(), "the call's media is encrypted (SRTP)");
        }
        let stream = Stream::start(
            sockets,
            agreed,
            direction,
            source,
            sink,
            tx,
            format!("bapiws@{}", self.stack.public_ip),
            entry.key,
        );
        if self.muted {
            stream.control(Control::Mute(true));
        }
        entry.stream = Some(stream);
    }

    async fn answer(&mut self, id: &CallId) -> (Result<Reply, PhoneError>, Vec<PhoneEvent>) {
        let Some(i) = self.index(id) else {
            return (
                Err(PhoneError::NoSuchCall(format!(
                    "no active call has id {id}"
                ))),
                vec![],
            );
        };
        let (sockets, media_addr) = match self.bind_media().await {
            Ok(v) => v,
            Err(e) => return (Err(e), vec![]),
        };
        let entry = &mut self.calls[i];
        let Some(dialog) = entry.dialog.clone() else {
            return (
                Err(PhoneError::Refused("the call has no dialog".into())),
                vec![],
            );
        };
        let offer = entry.offer.take();
        let key = entry.key;
        let (body, agreed) = match offer.as_deref().map(Session::parse) {
            Some(Ok(session)) => match sdp::agree(&session, &self.s.codecs, self.s.srtp) {
                Ok(agreed) => {
                    let local = Local::answer(
                        media_addr,
                        Self::session_id(),
                        &agreed,
                        sdp::Direction::SendRecv,
                        key,
                    );
                    let body = local.write();
                    entry.local = local;
                    (body, Some(agreed))
                }
                Err(e) => {
                    let reason = e.to_string();
                    let _ = dialog.reject(
                        Some(sip::StatusCode::NotAcceptableHere),
                        Some(reason.clone()),
                    );
                    let (_, events) = self.tracking(|p, ev| p.remove(i, reason.clone(), ev));
                    return (
                        Err(PhoneError::Refused(format!(
                            "the call cannot be answered: {reason}"
                        ))),
                        events,
                    );
                }
            },
            // No offer (or an unreadable one): ours goes in the 200, the answer in the ACK.
            _ => {
                let local = Local::offer(
                    media_addr,
                    Self::session_id(),
                    &self.s.codecs,
                    sdp::Direction::SendRecv,
                    self.s.srtp,
                    key,
                );
                let body = local.write();
                entry.local = local;
                (body, None)
            }
        };
        entry.sockets = Some(sockets);
        entry.media_addr = media_addr;
        if let Err(e) = dialog.accept(sdp_headers(), Some(body.into_bytes())) {
            return (
                Err(PhoneError::Refused(format!(
                    "the call could not be answered: {e}"
                ))),
                vec![],
            );
        }
        let (_, events) = self.tracking(|p, ev| {
            for other in p.connected_except(id) {
                let _ = p.hold(&other, true, ev);
            }
            if let Some(i) = p.index(id) {
                p.calls[i].call.state = CallState::Connected;
                if let Some(a) = agreed {
                    p.start_media(i, a);
                }
                ev.push(PhoneEvent::CallConnected { id: id.clone() });
            }
        });
        (Ok(Reply::Done), events)
    }

    /// Ends a call from our side: reject, cancel or BYE as its state needs.
    fn hang_up(&mut self, id: &CallId, events: &mut Vec<PhoneEvent>) {
        let Some(i) = self.index(id) else { return };
        let entry = &self.calls[i];
        if let Some(dialog) = entry.dialog.clone() {
            match (entry.call.direction, entry.call.state) {
                (Direction::Inbound, CallState::Ringing) => {
                    let _ = dialog.reject(Some(sip::StatusCode::BusyHere), None);
                }
                (Direction::Outbound, CallState::Calling) => {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(END_LIMIT, dialog.cancel()).await;
                    });
                }
                _ => {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(END_LIMIT, dialog.bye()).await;
                    });
                }
            }
        }
        let reason = if entry.call.state == CallState::Ringing {
            "rejected"
        } else {
            REASON_LOCAL
        };
        self.remove(i, reason.to_owned(), events);
    }

    fn remove(&mut self, i: usize, reason: String, events: &mut Vec<PhoneEvent>) {
        let entry = self.calls.remove(i);
        if let Some(stream) = &entry.stream {
            let (sent, received) = stream.counts();
            let refused = stream.refused();
            tracing::info!(call = %entry.call.id, sent, received, refused, "call media ended");
        }
        // The stack drops the dialog when it terminates (a BYE's answer, a CANCEL's 487);
        // one that never does (a far end that stops answering) is dropped after SIP's
        // longest transaction time, so the stack's table cannot grow call by call.
        if let Some(dialog) = &entry.dialog {
            let id = dialog.id();
            let dialogs = Arc::clone(&self.stack.dialogs);
            tokio::spawn(async move {
                tokio::time::sleep(END_LIMIT * 2).await;
                dialogs.remove_dialog(&id);
            });
        }
        if self.calls.is_empty() && self.muted {
            self.muted = false;
            events.push(PhoneEvent::MuteChanged(false));
        }
        events.push(PhoneEvent::CallDisconnected {
            id: entry.call.id,
            reason,
        });
    }

    /// Holds (`true`) or resumes a call with a re-INVITE.
    fn hold(
        &mut self,
        id: &CallId,
        on: bool,
        events: &mut Vec<PhoneEvent>,
    ) -> Result<(), PhoneError> {
        let i = self
            .index(id)
            .ok_or_else(|| PhoneError::NoSuchCall(format!("no active call has id {id}")))?;
        let entry = &mut self.calls[i];
        let Some(dialog) = entry.dialog.clone() else {
            return Err(PhoneError::Refused("the call has no dialog".into()));
        };
        entry.held = on;
        entry.local.version += 1;
        entry.local.direction = if on {
            sdp::Direction::SendOnly
        } else {
            sdp::Direction::SendRecv
        };
        let body = entry.local.write().into_bytes();
        if let Some(stream) = &entry.stream {
            stream.control(Control::Direction(entry.local.direction));
        }
        entry.call.state = entry.connected_state();
        let inputs = self.inputs.clone();
        let sip_id = entry.sip_id.clone();
        tokio::spawn(async move {
            let r =
                tokio::time::timeout(END_LIMIT, dialog.reinvite(sdp_headers(), Some(body))).await;
            let (body, ok) = match r {
                Ok(Ok(Some(resp))) => {
                    let ok = resp.status_code.kind() == sip::StatusCodeKind::Successful;
                    (Some(resp.body().to_vec()), ok)
                }
                _ => (None, false),
            };
            let _ = inputs.send(Input::Reinvited(sip_id, body, ok)).await;
        });
        events.push(if on {
            PhoneEvent::CallHeld { id: id.clone() }
        } else {
            PhoneEvent::CallResumed { id: id.clone() }
        });
        Ok(())
    }

    fn transfer(&mut self, id: &CallId, number: &PhoneNumber) -> Result<Reply, PhoneError> {
        let target = stack::uri(&with_transport(
            &self.s.dial_uri.replace("{number}", number.as_str()),
            self.s.uri_param(),
        ))
        .map_err(PhoneError::Refused)?;
        self.refer(id, target.into(), number.as_str())
    }

    /// Attended transfer: the far end of `id` is asked to call the far end of `target`,
    /// replacing our call with it (RFC 3891 Replaces in the Refer-To, through the PBX).
    fn transfer_to(&mut self, id: &CallId, target: &CallId) -> Result<Reply, PhoneError> {
        let calls: Vec<Call> = self.calls.iter().map(|c| c.call.clone()).collect();
        let number = crate::phone::transfer_target(&calls, id, target)?
            .number
            .clone();
        let t = self
            .index(target)
            .ok_or_else(|| PhoneError::NoSuchCall(format!("no active call has id {target}")))?;
        let dialog = self.calls[t]
            .dialog
            .as_ref()
            .ok_or_else(|| PhoneError::Refused("the target call has no dialog".into()))?
            .id();
        let user = PhoneNumber::parse(&number).map_err(|_| {
            PhoneError::Refused(format!(
                "the target call's number {:?} cannot be dialled",
                stack::printable(&number)
            ))
        })?;
        let uri = with_transport(
            &self.s.dial_uri.replace("{number}", user.as_str()),
            self.s.uri_param(),
        );
        // The far end of the target call checks the tags against its own dialog: its
        // local tag is our remote one (RFC 3891 §3).
        let replaces = format!(
            "{};to-tag={};from-tag={}",
            dialog.call_id, dialog.remote_tag, dialog.local_tag
        );
        let refer_to = format!("<{uri}?Replaces={}>", uri_escaped(&replaces));
        self.refer(id, refer_to.into(), &number)
    }

    /// Sends REFER on call `id`; `number` is what `CallTransferred` will name.
    fn refer(
        &mut self,
        id: &CallId,
        refer_to: sip::headers::ReferTo,
        number: &str,
    ) -> Result<Reply, PhoneError> {
        let i = self
            .index(id)
            .ok_or_else(|| PhoneError::NoSuchCall(format!("no active call has id {id}")))?;
        let target = refer_to;
        let entry = &mut self.calls[i];
        let dialog = entry
            .dialog
            .clone()
            .ok_or_else(|| PhoneError::Refused("the call has no dialog".into()))?;
        entry.transfer = Some(number.to_owned());
        entry.transfer_told = false;
        let inputs = self.inputs.clone();
        let sip_id = entry.sip_id.clone();
        tokio::spawn(async move {
            let r = tokio::time::timeout(END_LIMIT, dialog.refer(target, None, None)).await;
            let accepted = matches!(&r, Ok(Ok(Some(resp))) if resp.status_code.kind() == sip::StatusCodeKind::Successful);
            if !accepted {
                tracing::warn!("the far end refused the transfer");
                return;
            }
            let _ = inputs.send(Input::TransferAccepted(sip_id)).await;
        });
        Ok(Reply::Done)
    }

    fn dtmf(&mut self, id: &CallId, digits: &str) -> Result<Reply, PhoneError> {
        let i = self
            .index(id)
            .ok_or_else(|| PhoneError::NoSuchCall(format!("no active call has id {id}")))?;
        let entry = &self.calls[i];
        match (&entry.stream, entry.agreed.and_then(|a| a.dtmf)) {
            (Some(stream), Some(_)) => {
                if stream.control(Control::Dtmf(digits.to_owned())) {
                    Ok(Reply::Done)
                } else {
                    Err(PhoneError::Refused(
                        "too many DTMF digits are waiting".into(),
                    ))
                }
            }
            (None, _) => Err(PhoneError::Refused("the call has no media yet".into())),
            (_, None) => Err(PhoneError::Refused(
                "the far end takes no DTMF events (telephone-event)".into(),
            )),
        }
    }

    /// Decides whether a new INVITE that passed the stack's filter rings. When it does,
    /// the call is added and the events that tell the client are returned with what is
    /// left to do on the network (the [`Ring`]); otherwise the INVITE is refused here.
    fn invite(&mut self, tx: Transaction, from: IpAddr) -> Option<(Vec<PhoneEvent>, Ring)> {
        let allowed =
            self.s.accept_invites_from == InviteSources::Any || self.allowed.contains(&from);
        let refuse = |tx: Transaction, code: sip::StatusCode| {
            tokio::spawn(async move {
                let mut tx = tx;
                let _ = tx.reply(code).await;
            });
        };
        if !allowed {
            tracing::warn!(%from, "an INVITE from an address that is not the registrar or proxy was refused");
            refuse(tx, sip::StatusCode::Forbidden);
            return None;
        }
        if self.calls.len() >= self.s.max_calls {
            refuse(tx, sip::StatusCode::BusyHere);
            return None;
        }
        if self.s.register && !self.registered {
            refuse(tx, sip::StatusCode::TemporarilyUnavailable);
            return None;
        }
        let request = &tx.original;
        let sip_id = request
            .call_id_header()
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        if sip_id.is_empty() || sip_id.len() > 256 || self.by_sip_id(&sip_id).is_some() {
            refuse(tx, sip::StatusCode::BadRequest);
            return None;
        }
        // An offer without the encryption the setting requires (or with one it does not
        // allow) never rings: 488 with a Warning that says which.
        if !request.body.is_empty()
            && let Err(e @ (SdpError::NotEncrypted | SdpError::EncryptionRequired(_))) =
                self.agree(&request.body)
        {
            tracing::warn!(%from, "an INVITE was refused: {e}");
            let text = match (e, self.s.srtp) {
                (SdpError::NotEncrypted, _) => "Encrypted media (SRTP) required",
                (_, Encryption::Off) => "Encrypted media (SRTP) not enabled",
                _ => "SRTP suite or key parameters not supported",
            };
            let warning = sip::Header::Warning(format!("399 bapiws \"{text}\"").into());
            tokio::spawn(async move {
                let mut tx = tx;
                let _ = tx
                    .reply_with(sip::StatusCode::NotAcceptableHere, vec![warning], None)
                    .await;
            });
            return None;
        }
        let srtp_key = match Self::new_key() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("an INVITE was refused: {e}");
                refuse(tx, sip::StatusCode::ServerInternalError);
                return None;
            }
        };
        let dialog = match self.stack.dialogs.get_or_create_server_invite(
            &tx,
            self.stack.states.clone(),
            None,
            Some(self.stack.contact.clone()),
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "an INVITE could not start a dialog");
                refuse(tx, sip::StatusCode::BadRequest);
                return None;
            }
        };
        // Through a proxy (a Record-Route), requests in the dialog go to the caller's Contact
        // as it is: the stack gives it the transport of the hop the INVITE came over (TCP,
        // TLS), which the proxy would then use to reach a caller on another transport.
        if !request.record_route_headers().is_empty()
            && let Some(contact) = request
                .typed_contact_headers()
                .ok()
                .and_then(|c| c.into_iter().next())
            && let Some(d) = self.stack.dialogs.get_dialog(&dialog.id())
        {
            d.set_remote_target(contact.uri, request.contact_header().ok().cloned());
        }
        let number = caller_number(request);
        let queue = self.s.queue.as_ref().and_then(|rule| rule.fields(request));
        let offer = (!request.body.is_empty()).then(|| request.body.clone());
        let id = CallId::new_guid();
        let ring = Ring {
            tx,
            dialog: dialog.clone(),
            sip_id: sip_id.clone(),
        };
        let ((), events) = self.tracking(|p, ev| {
            p.calls.push(Entry {
                call: Call {
                    id: id.clone(),
                    direction: Direction::Inbound,
                    state: CallState::Ringing,
                    number: number.clone(),
                    started: SystemTime::now(),
                },
                sip_id,
                dialog: Some(dialog),
                offer,
                sockets: None,
                media_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                stream: None,
                local: Local::offer(
                    SocketAddr::from(([0, 0, 0, 0], 0)),
                    0,
                    &p.s.codecs,
                    sdp::Direction::SendRecv,
                    p.s.srtp,
                    srtp_key,
                ),
                agreed: None,
                held: false,
                far_held: false,
                transfer: None,
                transfer_told: false,
                key: srtp_key,
            });
            if let Some(q) = queue {
                tracing::info!(
                    call = %id,
                    queue = %stack::printable(&q.queue_name),
                    "a queue call rings"
                );
                ev.push(PhoneEvent::QueueCallComing {
                    id: id.clone(),
                    queue_call_id: q.queue_call_id,
                    caller: number.clone(),
                    queue_number: q.queue_number,
                    queue_id: q.queue_id,
                    queue_name: q.queue_name,
                });
            }
            ev.push(PhoneEvent::CallComing { id, number });
        });
        Some((events, ring))
    }

    async fn dialog_state(&mut self, state: DialogState) -> Vec<PhoneEvent> {
        match state {
            DialogState::Confirmed(id, resp) => {
                let Some(i) = self.by_sip_id(&id.call_id) else {
                    return vec![];
                };
                let entry = &self.calls[i];
                if entry.call.direction == Direction::Outbound
                    && entry.call.state == CallState::Calling
                {
                    let agreed = match self.agree_answer(i, resp.body()) {
                        Ok(a) => Some(a),
                        Err(e @ (SdpError::NotEncrypted | SdpError::EncryptionRequired(_))) => {
                            return self.tracking(|p, ev| p.end_unencrypted(i, &e, ev)).1;
                        }
                        Err(_) => None,
                    };
                    let entry = &self.calls[i];
                    let cid = entry.call.id.clone();
                    self.calls[i].call.state = CallState::Connected;
                    if let Some(a) = agreed {
                        self.start_media(i, a);
                    } else {
                        tracing::warn!(call = %cid, "the far end's answer has no usable audio: the call has no media");
                    }
                    return vec![PhoneEvent::CallConnected { id: cid }];
                }
                if entry.call.direction == Direction::Inbound && entry.agreed.is_none() {
                    // Our offer went in the 200: the answer is in the ACK.
                    let ack = entry.dialog.as_ref().and_then(|d| d.last_remote_ack());
                    if let Some(ack) = ack {
                        match self.agree_answer(i, ack.body()) {
                            Ok(a) => self.start_media(i, a),
                            Err(e @ (SdpError::NotEncrypted | SdpError::EncryptionRequired(_))) => {
                                return self.tracking(|p, ev| p.end_unencrypted(i, &e, ev)).1;
                            }
                            Err(_) => {}
                        }
                    }
                }
                vec![]
            }
            DialogState::Updated(id, request, handle) => {
                let Some(i) = self.by_sip_id(&id.call_id) else {
                    let _ = handle
                        .reply(sip::StatusCode::CallTransactionDoesNotExist)
                        .await;
                    return vec![];
                };
                if request.method != sip::Method::Invite && request.body.is_empty() {
                    let _ = handle.reply(sip::StatusCode::OK).await;
                    return vec![];
                }
                let mut events = Vec::new();
                let entry = &mut self.calls[i];
                let ours = if entry.held {
                    sdp::Direction::SendOnly
                } else {
                    sdp::Direction::SendRecv
                };
                let answer = if request.body.is_empty() {
                    // An offerless re-INVITE: offer again, the answer comes in the ACK.
                    entry.local.version += 1;
                    entry.local.direction = ours;
                    entry.local.write()
                } else {
                    let parsed = Session::parse(&request.body)
                        .and_then(|s| sdp::agree(&s, &self.s.codecs, self.s.srtp));
                    match parsed {
                        Ok(agreed) => {
                            let mut local = Local::answer(
                                entry.media_addr,
                                entry.local.session_id,
                                &agreed,
                                ours,
                                entry.key,
                            );
                            local.version = entry.local.version + 1;
                            entry.local = local;
                            let held = agreed.held_by_far_end();
                            tracing::info!(call = %entry.call.id, held, "the far end changed the media");
                            self.start_media(i, agreed);
                            let entry = &mut self.calls[i];
                            if entry.call.state != CallState::Ringing
                                && entry.call.state != CallState::Calling
                                && held != entry.far_held
                            {
                                entry.far_held = held;
                                entry.call.state = entry.connected_state();
                                let id = entry.call.id.clone();
                                events.push(if held {
                                    PhoneEvent::CallHeldByFarEnd { id }
                                } else {
                                    PhoneEvent::CallResumedByFarEnd { id }
                                });
                            }
                            self.calls[i].local.write()
                        }
                        Err(e) => {
                            let _ = handle.reply(sip::StatusCode::NotAcceptableHere).await;
                            tracing::info!(error = %e, "a re-INVITE was refused");
                            return vec![];
                        }
                    }
                };
                let _ = handle
                    .respond(
                        sip::StatusCode::OK,
                        sdp_headers(),
                        Some(answer.into_bytes()),
                    )
                    .await;
                events
            }
            DialogState::Refer(id, request, handle) => {
                let Some(i) = self.by_sip_id(&id.call_id) else {
                    let _ = handle
                        .reply(sip::StatusCode::CallTransactionDoesNotExist)
                        .await;
                    return vec![];
                };
                let target = request
                    .refer_to_header()
                    .map(|h| h.value().to_owned())
                    .and_then(|v| {
                        let inner = v.trim().trim_start_matches('<');
                        let inner = inner.split('>').next().unwrap_or(inner);
                        sip::Uri::try_from(inner).ok()
                    })
                    .and_then(|u| u.user().map(str::to_owned))
                    .and_then(|user: String| PhoneNumber::parse(&user).ok());
                let Some(number) = target else {
                    let _ = handle.reply(sip::StatusCode::BadRequest).await;
                    return vec![];
                };
                let _ = handle.reply(sip::StatusCode::Accepted).await;
                if let Some(dialog) = self.calls[i].dialog.clone() {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            END_LIMIT,
                            dialog.notify_refer(sip::StatusCode::Trying, "active;expires=60"),
                        )
                        .await;
                    });
                }
                let sip_id = self.calls[i].sip_id.clone();
                self.input(Input::Referred(sip_id, number)).await
            }
            DialogState::Notify(id, request, handle) => {
                let _ = handle.reply(sip::StatusCode::OK).await;
                // A NOTIFY about our REFER: a final success ends the transferred call.
                let Some(i) = self.by_sip_id(&id.call_id) else {
                    return vec![];
                };
                let body = String::from_utf8_lossy(&request.body);
                let done = body.starts_with("SIP/2.0 2");
                if done && self.calls[i].transfer.is_some() {
                    // The REFER's 202 may not have been taken yet (it comes on another
                    // channel): a success NOTIFY says it was accepted.
                    let told = self.transferred(i);
                    let cid = self.calls[i].call.id.clone();
                    let (_, rest) = self.tracking(|p, ev| p.hang_up(&cid, ev));
                    return told.into_iter().chain(rest).collect();
                }
                vec![]
            }
            DialogState::Info(_, _, handle)
            | DialogState::Options(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                let _ = handle.reply(sip::StatusCode::OK).await;
                vec![]
            }
            DialogState::Terminated(id, reason) => {
                self.stack.dialogs.remove_dialog(&id);
                let Some(i) = self.by_sip_id(&id.call_id) else {
                    return vec![];
                };
                let text = self.explained(reason_text(&reason));
                self.tracking(|p, ev| p.remove(i, text, ev)).1
            }
            DialogState::Calling(_)
            | DialogState::Trying(_)
            | DialogState::Early(..)
            | DialogState::WaitAck(..) => vec![],
        }
    }

    async fn input(&mut self, input: Input) -> Vec<PhoneEvent> {
        match input {
            Input::Dialled(sip_id, result) => {
                // The dialog's Terminated state usually comes first; this ends a call that
                // failed without one.
                let Some(i) = self.by_sip_id(&sip_id) else {
                    return vec![];
                };
                if self.calls[i].call.state != CallState::Calling {
                    return vec![];
                }
                let reason = match result {
                    Ok(Some(code)) if code.kind() == sip::StatusCodeKind::Successful => {
                        return vec![];
                    }
                    Ok(Some(code)) => self.explained(stack::printable(&code.to_string())),
                    Ok(None) => "no answer".to_owned(),
                    Err(e) => e,
                };
                self.tracking(|p, ev| p.remove(i, reason, ev)).1
            }
            Input::Referred(sip_id, number) => {
                let Some(i) = self.by_sip_id(&sip_id) else {
                    return vec![];
                };
                let first = self.calls[i].call.id.to_string();
                let (r, events) = self.call_out(number, Some(&first)).await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "the transfer target could not be called");
                }
                events
            }
            Input::TransferAccepted(sip_id) => {
                // Our REFER was accepted: the transfer is under way.
                let Some(i) = self.by_sip_id(&sip_id) else {
                    return vec![];
                };
                self.transferred(i).into_iter().collect()
            }
            Input::Reinvited(sip_id, body, ok) => {
                let Some(i) = self.by_sip_id(&sip_id) else {
                    return vec![];
                };
                if !ok {
                    tracing::warn!(call = %self.calls[i].call.id, "the far end did not accept the hold/resume re-INVITE");
                    return vec![];
                }
                match body.map(|b| self.agree_answer(i, &b)) {
                    Some(Ok(a)) => self.start_media(i, a),
                    Some(Err(e @ (SdpError::NotEncrypted | SdpError::EncryptionRequired(_)))) => {
                        return self.tracking(|p, ev| p.end_unencrypted(i, &e, ev)).1;
                    }
                    _ => {}
                }
                vec![]
            }
            Input::Expired(sip_id) => {
                let Some(i) = self.by_sip_id(&sip_id) else {
                    return vec![];
                };
                if self.calls[i].call.state != CallState::Ringing {
                    return vec![];
                }
                if let Some(d) = &self.calls[i].dialog {
                    let _ = d.reject(Some(sip::StatusCode::TemporarilyUnavailable), None);
                }
                self.tracking(|p, ev| p.remove(i, "not answered".into(), ev))
                    .1
            }
        }
    }

    /// Ends every call, un-registers and stops the stack.
    async fn shutdown(&mut self, stop: Option<oneshot::Sender<oneshot::Sender<()>>>) {
        let ids: Vec<CallId> = self.calls.iter().map(|c| c.call.id.clone()).collect();
        let mut events = Vec::new();
        for id in ids {
            self.hang_up(&id, &mut events);
        }
        self.publish();
        self.emit(events);
        if let Some(stop) = stop {
            let (done_tx, done_rx) = oneshot::channel();
            if stop.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(3), done_rx).await;
            }
        }
        // Let BYEs and CANCELs leave before the sockets close.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
