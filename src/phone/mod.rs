//! The phone abstraction: what every phone backend offers, in phone terms only.
//!
//! A backend is a task that owns the phone's state. It takes [`Command`]s from a
//! [`PhoneHandle`] and reports [`PhoneEvent`]s to an [`EventSink`], in the order they
//! happened. A backend reports the events a command caused before it answers the
//! command, so whoever waits for the answer can rely on the events being out already.
//! Nothing here knows about WebSockets or JSON-RPC; the protocol layer translates.
//!
//! Adding a backend: write a module with a `spawn(settings, events) -> PhoneHandle`
//! function and add one line to [`BackendKind`] and [`spawn`].

pub mod baresip;
mod names;
pub mod number;
pub mod sim;
pub mod sip;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

pub use names::{BUILTIN_ALIASES, BackendNames, UnknownBackend};
pub use number::{NumberError, PhoneNumber};

/// Capacity of the channel carrying commands to a backend.
pub const COMMAND_CHANNEL_CAPACITY: usize = 256;

/// A call id as the phone reports it. One call keeps one id from its first event to its
/// last.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallId(Arc<str>);

impl CallId {
    /// A new random GUID call id, as Voice for Windows uses.
    pub fn new_guid() -> Self {
        CallId(uuid::Uuid::new_v4().hyphenated().to_string().into())
    }

    /// Wraps an id a backend already has.
    pub fn from_string(id: impl Into<Arc<str>>) -> Self {
        CallId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user's availability, as set on the phone (the Enreach platform's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Free to take calls.
    Available,
    /// Busy (set by the user, not by a call).
    Busy,
    /// Away from the desk.
    Away,
    /// Be right back.
    Brb,
    /// Do not disturb.
    Dnd,
    /// Off work.
    OffWork,
}

impl Availability {
    /// Every value, in documentation order.
    pub const ALL: [Availability; 6] = [
        Availability::Available,
        Availability::Busy,
        Availability::Away,
        Availability::Brb,
        Availability::Dnd,
        Availability::OffWork,
    ];

    /// The wire name (`Available`, `Busy`, `Away`, `BRB`, `DND`, `OffWork`).
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Available => "Available",
            Availability::Busy => "Busy",
            Availability::Away => "Away",
            Availability::Brb => "BRB",
            Availability::Dnd => "DND",
            Availability::OffWork => "OffWork",
        }
    }

    /// Parses a wire name, case-insensitively.
    pub fn parse(s: &str) -> Option<Availability> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// What GetState reports: the availability, `Busy` during calls, or `Offline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneState {
    /// The phone is reachable and has this availability (`Busy` while on a call).
    Online(Availability),
    /// The phone is not running, signed out or unreachable.
    Offline,
}

impl PhoneState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneState::Online(a) => a.as_str(),
            PhoneState::Offline => "Offline",
        }
    }
}

/// Which side started the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The far end called us.
    Inbound,
    /// We called the far end.
    Outbound,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        }
    }
}

/// Where a call is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// An inbound call not yet answered.
    Ringing,
    /// An outbound call not yet answered by the far end.
    Calling,
    /// Both ends are talking.
    Connected,
    /// Connected but put on hold.
    OnHold,
    /// Connected, and the far end holds it (its re-INVITE made it `sendonly` or
    /// `inactive`); only a phone that sees the far end's SDP reports it. A hold of ours
    /// shows as `OnHold` whatever the far end does.
    HeldByFarEnd,
}

impl CallState {
    /// Whether the call is connected and not held by us (the far end may hold it).
    pub fn is_up(self) -> bool {
        matches!(self, CallState::Connected | CallState::HeldByFarEnd)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ringing => "Ringing",
            CallState::Calling => "Calling",
            CallState::Connected => "Connected",
            CallState::OnHold => "OnHold",
            CallState::HeldByFarEnd => "HeldByFarEnd",
        }
    }
}

/// Which call a `HangUp` without a call id ends, by state: connected (by both ends, then
/// held by the far end), else calling, else ringing, else on hold (the newest within each;
/// every backend follows it).
pub const HANG_UP_ORDER: [CallState; 5] = [
    CallState::Connected,
    CallState::HeldByFarEnd,
    CallState::Calling,
    CallState::Ringing,
    CallState::OnHold,
];

/// One active call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The phone's id of the call.
    pub id: CallId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Ringing, calling, connected or on hold.
    pub state: CallState,
    /// The remote party's number.
    pub number: String,
    /// When the call started (first rang or was dialled).
    pub started: SystemTime,
}

/// Something that happened on the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneEvent {
    /// The reported state changed.
    StateChanged(PhoneState),
    /// An inbound call rings.
    CallComing {
        /// The call.
        id: CallId,
        /// The caller's number.
        number: String,
    },
    /// An inbound call from a service queue rings (always followed by `CallComing`).
    QueueCallComing {
        /// The call.
        id: CallId,
        /// The queue platform's id of the queued call.
        queue_call_id: String,
        /// The caller's number.
        caller: String,
        /// The queue's number.
        queue_number: String,
        /// The queue's id.
        queue_id: String,
        /// The queue's name.
        queue_name: String,
    },
    /// The phone started calling out.
    CallingOut {
        /// The call.
        id: CallId,
        /// The dialled number.
        number: String,
    },
    /// A call (either direction) is connected.
    CallConnected {
        /// The call.
        id: CallId,
    },
    /// A call (either direction) ended.
    CallDisconnected {
        /// The call.
        id: CallId,
        /// Backend-specific reason; may be empty.
        reason: String,
    },
    /// A connected call was put on hold (by a command, or because another call became
    /// active). An extension event: only connections that asked for it receive it.
    CallHeld {
        /// The call.
        id: CallId,
    },
    /// A held call was resumed (extension event).
    CallResumed {
        /// The call.
        id: CallId,
    },
    /// The far end of a call was asked to call `number` (a blind transfer; extension event).
    CallTransferred {
        /// The call.
        id: CallId,
        /// Where the call was transferred.
        number: String,
    },
    /// The microphone was muted (`true`) or unmuted (extension event).
    MuteChanged(bool),
    /// The far end put a call on hold (extension event).
    CallHeldByFarEnd {
        /// The call.
        id: CallId,
    },
    /// The far end took a call off hold (extension event).
    CallResumedByFarEnd {
        /// The call.
        id: CallId,
    },
}

impl PhoneEvent {
    /// Whether this is an extension event (beyond the documented notifications).
    pub fn is_extension(&self) -> bool {
        matches!(
            self,
            PhoneEvent::CallHeld { .. }
                | PhoneEvent::CallResumed { .. }
                | PhoneEvent::CallTransferred { .. }
                | PhoneEvent::MuteChanged(_)
                | PhoneEvent::CallHeldByFarEnd { .. }
                | PhoneEvent::CallResumedByFarEnd { .. }
        )
    }
}

/// DTMF digits to send: 1 to [`MAX_DTMF`] of `0-9`, `*`, `#`, `A-D` (lowercase `a-d` are
/// accepted and kept uppercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtmf(String);

/// The most DTMF digits one command sends.
pub const MAX_DTMF: usize = 32;

impl Dtmf {
    /// Validates DTMF digits.
    pub fn parse(input: &str) -> Option<Dtmf> {
        let n = input.chars().count();
        if n == 0 || n > MAX_DTMF {
            return None;
        }
        input
            .chars()
            .map(|c| match c {
                '0'..='9' | '*' | '#' | 'A'..='D' => Some(c),
                'a'..='d' => Some(c.to_ascii_uppercase()),
                _ => None,
            })
            .collect::<Option<String>>()
            .map(Dtmf)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a targeted call command does to its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Answer a ringing inbound call.
    Answer,
    /// End the call (rejecting it when it rings).
    HangUp,
    /// Put a connected call on hold.
    Hold,
    /// Resume a held call (other connected calls are held).
    Resume,
    /// Blind transfer: the far end of a connected call is asked to call this number.
    Transfer(PhoneNumber),
    /// Attended transfer: the far end of a connected or held call is connected to the far
    /// end of this other call of ours (SIP: REFER with Replaces), and both calls end here.
    TransferTo(CallId),
    /// Send DTMF digits on a connected call.
    SendDtmf(Dtmf),
}

impl CallAction {
    /// Whether a call in this state can take the action (with or without a call id).
    pub fn fits(&self, call: &Call) -> bool {
        match self {
            CallAction::Answer => {
                call.direction == Direction::Inbound && call.state == CallState::Ringing
            }
            CallAction::HangUp => true,
            CallAction::Resume => call.state == CallState::OnHold,
            CallAction::Hold | CallAction::Transfer(_) | CallAction::SendDtmf(_) => {
                call.state.is_up()
            }
            CallAction::TransferTo(_) => call.state.is_up() || call.state == CallState::OnHold,
        }
    }

    /// What fits, in words, for errors.
    fn wants(&self) -> &'static str {
        match self {
            CallAction::Answer => "ringing inbound call",
            CallAction::HangUp => "active call",
            CallAction::Resume => "call on hold",
            CallAction::Hold | CallAction::Transfer(_) | CallAction::SendDtmf(_) => {
                "connected call"
            }
            CallAction::TransferTo(_) => "connected or held call",
        }
    }
}

/// The target of an attended transfer of `id`: another active call, connected or held.
pub fn transfer_target<'a>(
    calls: &'a [Call],
    id: &CallId,
    target: &CallId,
) -> Result<&'a Call, PhoneError> {
    if id == target {
        return Err(PhoneError::Refused(
            "a call cannot be transferred to itself".into(),
        ));
    }
    let call = calls
        .iter()
        .find(|c| &c.id == target)
        .ok_or_else(|| PhoneError::NoSuchCall(format!("no active call has id {target}")))?;
    if call.state.is_up() || call.state == CallState::OnHold {
        Ok(call)
    } else {
        Err(PhoneError::Refused(format!(
            "the target call is {}; it must be connected or held",
            call.state.as_str()
        )))
    }
}

/// The call a targeted command acts on: the call with `id`, which must fit the action;
/// without an id, the single call that fits. Errors: no call with that id
/// ([`PhoneError::NoSuchCall`]), a call in the wrong state ([`PhoneError::Refused`]),
/// none that fits ([`PhoneError::NoCallFits`]) or several ([`PhoneError::Ambiguous`]).
pub fn pick_call(
    calls: &[Call],
    id: Option<&CallId>,
    action: &CallAction,
) -> Result<CallId, PhoneError> {
    match id {
        Some(id) => {
            let call = calls
                .iter()
                .find(|c| &c.id == id)
                .ok_or_else(|| PhoneError::NoSuchCall(format!("no active call has id {id}")))?;
            if action.fits(call) {
                Ok(call.id.clone())
            } else {
                Err(PhoneError::Refused(format!(
                    "the call is {}; this needs a {}",
                    call.state.as_str(),
                    action.wants()
                )))
            }
        }
        None => {
            let mut fitting: Vec<CallId> = calls
                .iter()
                .filter(|c| action.fits(c))
                .map(|c| c.id.clone())
                .collect();
            if fitting.len() > 1 {
                return Err(PhoneError::Ambiguous(fitting));
            }
            fitting
                .pop()
                .ok_or_else(|| PhoneError::NoCallFits(format!("no {}", action.wants())))
        }
    }
}

/// A request to a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Dial a number.
    CallOut(PhoneNumber),
    /// Answer the latest unanswered inbound call.
    Answer,
    /// End the active call.
    HangUp,
    /// An action on one call: the call with this id, or the single call that fits
    /// ([`pick_call`]). Backends that cannot answer [`PhoneError::Unsupported`].
    Call {
        /// The call, when the client named it.
        call: Option<CallId>,
        /// What to do.
        action: CallAction,
    },
    /// Mute (`true`) or unmute the microphone of the current call; a no-op when it already
    /// is. Needs an active call.
    Mute(bool),
    /// Stop: the server is shutting down (a backend that runs a program stops it).
    Shutdown,
}

/// A backend's successful answer to a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done, nothing to report.
    Done,
    /// The call that the command created.
    Call(CallId),
}

/// Why a backend did not carry out a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The phone is offline or cannot be reached.
    #[error("phone unavailable: {0}")]
    Unavailable(String),
    /// There is no call the command could act on.
    #[error("no such call: {0}")]
    NoSuchCall(String),
    /// No call id was given and no call fits the command.
    #[error("no call fits: {0}")]
    NoCallFits(String),
    /// No call id was given and several calls fit the command: these.
    #[error("ambiguous: {} calls fit; name one", .0.len())]
    Ambiguous(Vec<CallId>),
    /// The phone refused or failed the command.
    #[error("phone refused the command: {0}")]
    Refused(String),
    /// This backend does not support the command.
    #[error("not supported by this phone")]
    Unsupported,
}

/// A command with the channel its answer goes back on.
pub type Envelope = (Command, oneshot::Sender<Result<Reply, PhoneError>>);
/// Where a backend reports its events. `emit` must not block: it is called from the
/// backend's task.
pub trait EventSink: Send + Sync + 'static {
    /// Reports one event.
    fn emit(&self, event: PhoneEvent);
}

/// A shared event sink.
pub type Events = Arc<dyn EventSink>;

/// What a backend can do beyond the shared [`Command`]s: each capability is an optional
/// typed handle that the backend sets when it has it.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// The simulated phone's controls (incoming calls, the far end, availability).
    pub simulator: Option<sim::Simulator>,
}

/// The handle through which everything outside a backend talks to it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PhoneHandle {
    commands: mpsc::Sender<Envelope>,
    snapshot: Arc<Snapshot>,
    capabilities: Capabilities,
}

/// What a backend says about its link to the phone service beyond the state, for
/// operators (`/health`): backend-neutral words, no secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendStatus {
    /// The link in a few words (e.g. `registered`, `not registered`, `unreachable`).
    pub link: Option<String>,
    /// The last failure, with its reason (e.g. `registration failed: 401 Unauthorized`).
    pub last_error: Option<String>,
    /// Where calls' audio comes from and goes to, in a few words, when the backend has
    /// audio of its own (e.g. `no microphone: calls send silence`).
    pub audio: Option<String>,
}

/// The phone's state and calls as its backend last published them, readable without a
/// round trip to the backend task. A backend publishes before it emits the events of a
/// change, so a reader never sees an older state than the notifications it has.
#[derive(Debug)]
pub struct Snapshot {
    inner: std::sync::RwLock<(PhoneState, Vec<Call>)>,
    status: std::sync::RwLock<BackendStatus>,
}

impl Snapshot {
    fn new() -> Self {
        Snapshot {
            inner: std::sync::RwLock::new((PhoneState::Offline, Vec::new())),
            status: std::sync::RwLock::new(BackendStatus::default()),
        }
    }

    /// Replaces the backend's status (optional: backends without one never call it).
    pub fn publish_status(&self, status: &BackendStatus) {
        let mut guard = self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *guard != *status {
            *guard = status.clone();
        }
    }

    /// The backend's status, as last published.
    pub fn status(&self) -> BackendStatus {
        self.status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the state and the calls.
    pub fn publish(&self, state: PhoneState, calls: Vec<Call>) {
        let mut guard = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = (state, calls);
    }

    /// Replaces the state and the calls if the state or the calls' ids and states moved.
    pub fn publish_if_changed(&self, state: PhoneState, calls: &[Call]) {
        let same = {
            let guard = self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.0 == state && guard.1 == calls
        };
        if !same {
            self.publish(state, calls.to_vec());
        }
    }

    /// The state GetState reports.
    pub fn state(&self) -> PhoneState {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    /// The active calls, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }
}

impl PhoneHandle {
    /// Creates a handle, the receiving end a backend task reads, and the snapshot the
    /// backend publishes its state to.
    pub fn channel() -> (PhoneHandle, mpsc::Receiver<Envelope>, Arc<Snapshot>) {
        let (tx, rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
        let snapshot = Arc::new(Snapshot::new());
        (
            PhoneHandle {
                commands: tx,
                snapshot: Arc::clone(&snapshot),
                capabilities: Capabilities::default(),
            },
            rx,
            snapshot,
        )
    }

    /// Adds capabilities (done by the backend that has them, at spawn).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> PhoneHandle {
        self.capabilities = capabilities;
        self
    }

    /// What this backend can do beyond the shared commands.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The phone's state, as last published (no round trip).
    pub fn state(&self) -> PhoneState {
        self.snapshot.state()
    }

    /// The active calls, as last published (no round trip).
    pub fn calls(&self) -> Vec<Call> {
        self.snapshot.calls()
    }

    /// The backend's status for operators, as last published (no round trip).
    pub fn status(&self) -> BackendStatus {
        self.snapshot.status()
    }

    /// Sends a command and waits for the backend's answer.
    pub async fn send(&self, command: Command) -> Result<Reply, PhoneError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send((command, tx)).await.is_err() {
            return Err(PhoneError::Unavailable("the backend has stopped".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(PhoneError::Unavailable("the backend has stopped".into())))
    }
}

/// Declares the registry of backends: for each, its kind, its name (in `Init` and the
/// configuration), its module, whether it runs only when configured (a backend that
/// starts a program must never be started because a web page asked for it), and whether
/// it runs on this operating system (one that does not is not offered). A backend's module provides `Args` (its flags and file
/// table, clap and serde derived), `Settings` (checked by `Args::resolve`) and
/// `spawn(settings, events) -> PhoneHandle`.
macro_rules! registry {
    ($($kind:ident => $name:literal, $module:ident, only_when_configured: $gated:literal, available_here: $here:expr;)*) => {
        /// The kinds of backend this build knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum BackendKind {
            $(
                #[doc = concat!("The `", $name, "` backend.")]
                $kind,
            )*
        }

        impl BackendKind {
            /// Every kind with its canonical name.
            pub const ALL: &'static [(&'static str, BackendKind)] =
                &[$(($name, BackendKind::$kind)),*];

            /// Whether this kind runs only when the configuration asks for it.
            pub fn only_when_configured(self) -> bool {
                match self {
                    $( BackendKind::$kind => $gated, )*
                }
            }

            /// Whether this kind runs on this operating system.
            pub fn available_here(self) -> bool {
                match self {
                    $( BackendKind::$kind => $here, )*
                }
            }
        }

        /// Every backend's settings as flags and file tables (`[sim]`, `[baresip]`, …).
        #[derive(clap::Args, serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
        pub struct BackendArgs {
            $(
                #[allow(missing_docs)]
                #[command(flatten, next_help_heading = concat!($name, " backend (file table [", $name, "])"))]
                #[serde(default)]
                pub $module: $module::Args,
            )*
        }

        /// Every backend's checked settings.
        #[derive(Clone, Debug, Default)]
        pub struct BackendSettings {
            $(
                #[allow(missing_docs)]
                pub $module: $module::Settings,
            )*
        }

        impl BackendArgs {
            /// The kinds with any setting given.
            pub fn configured_kinds(&self) -> Vec<BackendKind> {
                let mut kinds = Vec::new();
                $(
                    if self.$module != $module::Args::default() {
                        kinds.push(BackendKind::$kind);
                    }
                )*
                kinds
            }

            /// Checks every backend's settings; keys in errors are `table.key`.
            pub fn resolve(&self) -> Result<BackendSettings, crate::settings::SettingError> {
                Ok(BackendSettings {
                    $( $module: self.$module.resolve().map_err(|e| e.within($name))?, )*
                })
            }
        }

        /// Starts a backend of the given kind on the current tokio runtime.
        pub fn spawn(kind: BackendKind, settings: &BackendSettings, events: Events) -> PhoneHandle {
            match kind {
                $( BackendKind::$kind => $module::spawn(settings.$module.clone(), events), )*
            }
        }
    };
}

// The registry: adding a backend is its folder and one line here.
registry! {
    Sim => "sim", sim, only_when_configured: false, available_here: true;
    // Driving and supervising baresip is Linux (Unix) code today; see docs/windows.md.
    Baresip => "baresip", baresip, only_when_configured: true, available_here: cfg!(unix);
    // The built-in SIP phone: it opens SIP and RTP ports, so only when configured.
    Sip => "sip", sip, only_when_configured: true, available_here: true;
}

impl BackendKind {
    /// Finds a kind by its canonical name (case-insensitive).
    pub fn by_name(name: &str) -> Option<BackendKind> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, k)| k)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|&&(_, k)| k == self)
            .map(|&(n, _)| n)
            .unwrap_or("?")
    }
}
