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
pub mod number;
pub mod sim;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

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
}

impl CallState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ringing => "Ringing",
            CallState::Calling => "Calling",
            CallState::Connected => "Connected",
            CallState::OnHold => "OnHold",
        }
    }
}

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
}

/// Commands for the built-in simulated phone. Other backends answer
/// [`PhoneError::Unsupported`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimCommand {
    /// A call comes in from this number.
    IncomingCall {
        /// The caller.
        number: PhoneNumber,
    },
    /// A call comes in through a service queue.
    QueueCall {
        /// The caller.
        number: PhoneNumber,
        /// The queue's number.
        queue_number: String,
        /// The queue's name.
        queue_name: String,
    },
    /// The far end answers an outbound call (the latest calling one when `None`).
    RemoteAnswer {
        /// Which call.
        call: Option<CallId>,
    },
    /// The far end hangs up (the latest call when `None`).
    RemoteHangUp {
        /// Which call.
        call: Option<CallId>,
        /// The reason reported in `CallDisconnected`.
        reason: String,
    },
    /// The user changes availability.
    SetAvailability(Availability),
    /// The phone goes offline: every call ends.
    SetOffline,
    /// The phone comes back online.
    SetOnline,
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
    /// Report the state.
    GetState,
    /// Report the active calls.
    GetCalls,
    /// Drive the simulated phone.
    Simulate(SimCommand),
    /// Stop: the server is shutting down (a backend that runs a program stops it).
    Shutdown,
}

/// A backend's successful answer to a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done, nothing to report.
    Done,
    /// The phone's state.
    State(PhoneState),
    /// The active calls, oldest first.
    Calls(Vec<Call>),
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

/// The handle through which everything outside a backend talks to it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PhoneHandle {
    commands: mpsc::Sender<Envelope>,
    snapshot: Arc<Snapshot>,
}

/// The phone's state and calls as its backend last published them, readable without a
/// round trip to the backend task. A backend publishes before it emits the events of a
/// change, so a reader never sees an older state than the notifications it has.
#[derive(Debug)]
pub struct Snapshot {
    inner: std::sync::RwLock<(PhoneState, Vec<Call>)>,
}

impl Snapshot {
    fn new() -> Self {
        Snapshot {
            inner: std::sync::RwLock::new((PhoneState::Offline, Vec::new())),
        }
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
            },
            rx,
            snapshot,
        )
    }

    /// The phone's state, as last published (no round trip).
    pub fn state(&self) -> PhoneState {
        self.snapshot.state()
    }

    /// The active calls, as last published (no round trip).
    pub fn calls(&self) -> Vec<Call> {
        self.snapshot.calls()
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

/// The kinds of backend this build knows. One line per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The built-in simulated phone.
    Sim,
    /// A baresip SIP softphone.
    Baresip,
}

impl BackendKind {
    /// Every kind with its canonical name.
    pub const ALL: [(&'static str, BackendKind); 2] =
        [("sim", BackendKind::Sim), ("baresip", BackendKind::Baresip)];

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

/// Settings every backend may need.
#[derive(Clone, Debug, Default)]
pub struct BackendSettings {
    /// The simulated phone's settings.
    pub sim: sim::SimSettings,
    /// The baresip backend's settings.
    pub baresip: baresip::BaresipSettings,
}

/// Starts a backend of the given kind on the current tokio runtime.
pub fn spawn(kind: BackendKind, settings: &BackendSettings, events: Events) -> PhoneHandle {
    match kind {
        BackendKind::Sim => sim::spawn(settings.sim.clone(), events),
        BackendKind::Baresip => baresip::spawn(settings.baresip.clone(), events),
    }
}
