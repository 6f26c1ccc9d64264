//! The built-in simulated phone (`sim`).
//!
//! [`SimPhone`] is a plain state machine: a command in, a reply and the events it caused
//! out. [`spawn`] runs it as a backend task and adds the one thing a state machine cannot
//! do alone: the far end answering an outbound call after a delay.

use std::time::SystemTime;

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use tokio::sync::oneshot;

mod settings;
pub use settings::{Args, SimSettings};
/// This backend's resolved settings.
pub type Settings = SimSettings;

use super::{
    Availability, Call, CallAction, CallId, CallState, Capabilities, Command, Direction, Events,
    PhoneError, PhoneEvent, PhoneHandle, PhoneNumber, PhoneState, Reply,
};

/// The simulated phone's controls: what a person or the far end would do. A capability of
/// this backend only ([`Simulator`]), not a shared [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimControl {
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

/// What the state machine takes: a shared command or a control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A command every backend takes.
    Phone(Command),
    /// A simulator control.
    Control(SimControl),
}

impl From<Command> for Input {
    fn from(c: Command) -> Input {
        Input::Phone(c)
    }
}

impl From<SimControl> for Input {
    fn from(c: SimControl) -> Input {
        Input::Control(c)
    }
}

type ControlEnvelope = (SimControl, oneshot::Sender<Result<Reply, PhoneError>>);

/// The simulated phone's capability: its controls, sent to its task.
#[derive(Clone, Debug)]
pub struct Simulator {
    controls: mpsc::Sender<ControlEnvelope>,
}

impl Simulator {
    /// Carries out a control and waits for the phone's answer.
    pub async fn send(&self, control: SimControl) -> Result<Reply, PhoneError> {
        let (tx, rx) = oneshot::channel();
        let gone = || PhoneError::Unavailable("the backend has stopped".into());
        if self.controls.send((control, tx)).await.is_err() {
            return Err(gone());
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// The `extraInfo` of a call ended by HangUp.
pub const REASON_LOCAL_HANGUP: &str = "local hang-up";
/// The `extraInfo` of an inbound call rejected by HangUp while ringing.
pub const REASON_REJECTED: &str = "rejected";
/// The `extraInfo` of calls ended by the phone going offline.
pub const REASON_OFFLINE: &str = "phone offline";
/// The `extraInfo` of a call ended by a blind transfer (`Call.Transfer`).
pub const REASON_TRANSFERRED: &str = "transferred";

/// What one command did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The answer to the command.
    pub reply: Result<Reply, PhoneError>,
    /// The events it caused, in order.
    pub events: Vec<PhoneEvent>,
    /// An outbound call the far end should answer after the configured delay.
    pub schedule_answer: Option<CallId>,
}

/// The simulated phone's state machine.
#[derive(Debug)]
pub struct SimPhone {
    settings: SimSettings,
    online: bool,
    availability: Availability,
    /// Active calls, oldest first.
    calls: Vec<Call>,
    /// Whether the microphone is muted (only while a call exists).
    muted: bool,
}

impl SimPhone {
    /// A phone that is online with the configured availability and no calls.
    pub fn new(settings: SimSettings) -> Self {
        SimPhone {
            availability: settings.availability,
            settings,
            online: true,
            calls: Vec::new(),
            muted: false,
        }
    }

    /// The state GetState reports.
    pub fn state(&self) -> PhoneState {
        if !self.online {
            PhoneState::Offline
        } else if !self.calls.is_empty() {
            PhoneState::Online(Availability::Busy)
        } else {
            PhoneState::Online(self.availability)
        }
    }

    /// The active calls, oldest first.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Carries out one command or control at time `now`.
    pub fn handle(&mut self, input: impl Into<Input>, now: SystemTime) -> Outcome {
        let command = input.into();
        let before = self.state();
        let mut events = Vec::new();
        let mut schedule_answer = None;
        let reply = self.apply(command, now, &mut events, &mut schedule_answer);
        let after = self.state();
        if before != after {
            events.push(PhoneEvent::StateChanged(after));
        }
        Outcome {
            reply,
            events,
            schedule_answer,
        }
    }

    fn apply(
        &mut self,
        command: Input,
        now: SystemTime,
        events: &mut Vec<PhoneEvent>,
        schedule_answer: &mut Option<CallId>,
    ) -> Result<Reply, PhoneError> {
        match command {
            Input::Phone(Command::CallOut(number)) => {
                self.require_online()?;
                self.require_room()?;
                self.hold_connected(events);
                let id = CallId::new_guid();
                self.calls.push(Call {
                    id: id.clone(),
                    direction: Direction::Outbound,
                    state: CallState::Calling,
                    number: number.as_str().to_owned(),
                    started: now,
                });
                events.push(PhoneEvent::CallingOut {
                    id: id.clone(),
                    number: number.as_str().to_owned(),
                });
                if self.settings.auto_answer {
                    *schedule_answer = Some(id.clone());
                }
                Ok(Reply::Call(id))
            }
            Input::Phone(Command::Answer) => {
                self.require_online()?;
                let i = self
                    .latest(|c| c.state == CallState::Ringing)
                    .ok_or_else(|| PhoneError::NoSuchCall("no ringing inbound call".into()))?;
                self.connect(i, events);
                Ok(Reply::Done)
            }
            Input::Phone(Command::HangUp) => {
                self.require_online()?;
                let i = crate::phone::HANG_UP_ORDER
                    .into_iter()
                    .find_map(|s| self.latest(|c| c.state == s))
                    .ok_or_else(|| PhoneError::NoSuchCall("no active call".into()))?;
                let reason = if self.calls[i].state == CallState::Ringing {
                    REASON_REJECTED
                } else {
                    REASON_LOCAL_HANGUP
                };
                self.end(i, reason.to_owned(), events);
                Ok(Reply::Done)
            }
            Input::Phone(Command::Call { call, action }) => {
                self.require_online()?;
                let id = super::pick_call(&self.calls, call.as_ref(), &action)?;
                let i = self
                    .find(&id)
                    .ok_or_else(|| PhoneError::NoSuchCall("no such active call".into()))?;
                match action {
                    CallAction::Answer => self.connect(i, events),
                    CallAction::HangUp => {
                        let reason = if self.calls[i].state == CallState::Ringing {
                            REASON_REJECTED
                        } else {
                            REASON_LOCAL_HANGUP
                        };
                        self.end(i, reason.to_owned(), events);
                    }
                    CallAction::Hold => {
                        self.calls[i].state = CallState::OnHold;
                        events.push(PhoneEvent::CallHeld { id });
                    }
                    CallAction::Resume => {
                        self.hold_connected(events);
                        self.calls[i].state = CallState::Connected;
                        events.push(PhoneEvent::CallResumed { id });
                    }
                    CallAction::Transfer(number) => {
                        events.push(PhoneEvent::CallTransferred {
                            id,
                            number: number.as_str().to_owned(),
                        });
                        self.end(i, REASON_TRANSFERRED.to_owned(), events);
                    }
                    CallAction::TransferTo(target) => {
                        let number = super::transfer_target(&self.calls, &id, &target)?
                            .number
                            .clone();
                        events.push(PhoneEvent::CallTransferred { id, number });
                        // The two far ends talk to each other: both calls end here.
                        self.end(i, REASON_TRANSFERRED.to_owned(), events);
                        if let Some(j) = self.find(&target) {
                            self.end(j, REASON_TRANSFERRED.to_owned(), events);
                        }
                    }
                    // The simulated far end hears the tones; nothing changes.
                    CallAction::SendDtmf(_) => {}
                }
                Ok(Reply::Done)
            }
            Input::Phone(Command::Mute(on)) => {
                self.require_online()?;
                if self.calls.is_empty() {
                    return Err(PhoneError::NoSuchCall("no active call".into()));
                }
                if self.muted != on {
                    self.muted = on;
                    events.push(PhoneEvent::MuteChanged(on));
                }
                Ok(Reply::Done)
            }
            Input::Control(sim) => self.simulate(sim, now, events),
            Input::Phone(Command::Shutdown) => Ok(Reply::Done),
        }
    }

    fn simulate(
        &mut self,
        command: SimControl,
        now: SystemTime,
        events: &mut Vec<PhoneEvent>,
    ) -> Result<Reply, PhoneError> {
        match command {
            SimControl::IncomingCall { number } => {
                let id = self.ring(number.as_str(), now)?;
                events.push(PhoneEvent::CallComing {
                    id: id.clone(),
                    number: number.as_str().to_owned(),
                });
                Ok(Reply::Call(id))
            }
            SimControl::QueueCall {
                number,
                queue_number,
                queue_name,
            } => {
                let id = self.ring(number.as_str(), now)?;
                events.push(PhoneEvent::QueueCallComing {
                    id: id.clone(),
                    queue_call_id: CallId::new_guid().as_str().to_owned(),
                    caller: number.as_str().to_owned(),
                    queue_number,
                    queue_id: CallId::new_guid().as_str().to_owned(),
                    queue_name,
                });
                events.push(PhoneEvent::CallComing {
                    id: id.clone(),
                    number: number.as_str().to_owned(),
                });
                Ok(Reply::Call(id))
            }
            SimControl::RemoteAnswer { call } => {
                self.require_online()?;
                let is_calling =
                    |c: &Call| c.direction == Direction::Outbound && c.state == CallState::Calling;
                let i = match &call {
                    Some(id) => self.find(id).filter(|&i| is_calling(&self.calls[i])),
                    None => self.latest(is_calling),
                }
                .ok_or_else(|| PhoneError::NoSuchCall("no outbound call is calling".into()))?;
                self.connect(i, events);
                Ok(Reply::Done)
            }
            SimControl::RemoteHangUp { call, reason } => {
                self.require_online()?;
                let i = match &call {
                    Some(id) => self.find(id),
                    None => self.calls.len().checked_sub(1),
                }
                .ok_or_else(|| PhoneError::NoSuchCall("no such active call".into()))?;
                self.end(i, reason, events);
                Ok(Reply::Done)
            }
            SimControl::SetAvailability(a) => {
                self.availability = a;
                Ok(Reply::Done)
            }
            SimControl::SetOffline => {
                while !self.calls.is_empty() {
                    self.end(0, REASON_OFFLINE.to_owned(), events);
                }
                self.online = false;
                Ok(Reply::Done)
            }
            SimControl::SetOnline => {
                self.online = true;
                Ok(Reply::Done)
            }
        }
    }

    /// Called when the answer delay of an outbound call has passed.
    pub fn answer_timer_fired(&mut self, id: &CallId) -> Vec<PhoneEvent> {
        let still_calling = self
            .find(id)
            .is_some_and(|i| self.calls[i].state == CallState::Calling);
        if !still_calling {
            return Vec::new();
        }
        self.handle(
            SimControl::RemoteAnswer {
                call: Some(id.clone()),
            },
            SystemTime::now(),
        )
        .events
    }

    fn require_online(&self) -> Result<(), PhoneError> {
        if self.online {
            Ok(())
        } else {
            Err(PhoneError::Unavailable(
                "the simulated phone is offline".into(),
            ))
        }
    }

    fn require_room(&self) -> Result<(), PhoneError> {
        if self.calls.len() < self.settings.max_calls {
            Ok(())
        } else {
            Err(PhoneError::Refused(format!(
                "the simulated phone already has {} calls",
                self.calls.len()
            )))
        }
    }

    fn ring(&mut self, number: &str, now: SystemTime) -> Result<CallId, PhoneError> {
        self.require_online()?;
        self.require_room()?;
        let id = CallId::new_guid();
        self.calls.push(Call {
            id: id.clone(),
            direction: Direction::Inbound,
            state: CallState::Ringing,
            number: number.to_owned(),
            started: now,
        });
        Ok(id)
    }

    fn find(&self, id: &CallId) -> Option<usize> {
        self.calls.iter().position(|c| &c.id == id)
    }

    fn latest(&self, pred: impl Fn(&Call) -> bool) -> Option<usize> {
        self.calls.iter().rposition(pred)
    }

    /// Puts every connected call on hold, as a phone does when another call becomes active.
    fn hold_connected(&mut self, events: &mut Vec<PhoneEvent>) {
        for c in &mut self.calls {
            if c.state == CallState::Connected {
                c.state = CallState::OnHold;
                events.push(PhoneEvent::CallHeld { id: c.id.clone() });
            }
        }
    }

    fn connect(&mut self, i: usize, events: &mut Vec<PhoneEvent>) {
        self.hold_connected(events);
        self.calls[i].state = CallState::Connected;
        events.push(PhoneEvent::CallConnected {
            id: self.calls[i].id.clone(),
        });
    }

    fn end(&mut self, i: usize, reason: String, events: &mut Vec<PhoneEvent>) {
        let call = self.calls.remove(i);
        events.push(PhoneEvent::CallDisconnected {
            id: call.id,
            reason,
        });
        // Mute belongs to the calls: it ends with the last one.
        if self.calls.is_empty() && self.muted {
            self.muted = false;
            events.push(PhoneEvent::MuteChanged(false));
        }
    }
}

/// Starts the simulated phone as a backend task.
pub fn spawn(settings: SimSettings, events: Events) -> PhoneHandle {
    let (handle, commands, snapshot) = PhoneHandle::channel();
    let (controls_tx, controls) = mpsc::channel(super::COMMAND_CHANNEL_CAPACITY);
    let phone = SimPhone::new(settings);
    snapshot.publish(phone.state(), Vec::new());
    tokio::spawn(run(phone, commands, controls, events, snapshot));
    handle.with_capabilities(Capabilities {
        simulator: Some(Simulator {
            controls: controls_tx,
        }),
    })
}

async fn run(
    mut phone: SimPhone,
    mut commands: mpsc::Receiver<super::Envelope>,
    mut controls: mpsc::Receiver<ControlEnvelope>,
    events: Events,
    snapshot: std::sync::Arc<super::Snapshot>,
) {
    // Pending far-end answers, one per outbound call still calling; cancelled when the
    // call is answered or ends, so at most `max_calls` exist at once.
    let mut timers: HashMap<CallId, AbortHandle> = HashMap::new();
    let (timer_tx, mut timer_rx) = mpsc::channel::<CallId>(phone.settings.max_calls.max(1));
    loop {
        tokio::select! {
            input = next_input(&mut commands, &mut controls) => {
                let Some((input, reply_to)) = input else { break };
                let outcome = phone.handle(input, SystemTime::now());
                snapshot.publish_if_changed(phone.state(), &phone.calls);
                emit(&events, &mut timers, outcome.events);
                if let Some(id) = outcome.schedule_answer {
                    let tx = timer_tx.clone();
                    let delay = phone.settings.answer_delay;
                    let timer_id = id.clone();
                    let task = tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(timer_id).await;
                    });
                    timers.insert(id, task.abort_handle());
                }
                // The caller may have gone away; the events happened regardless.
                let _ = reply_to.send(outcome.reply);
            }
            Some(id) = timer_rx.recv() => {
                timers.remove(&id);
                let fired = phone.answer_timer_fired(&id);
                snapshot.publish_if_changed(phone.state(), &phone.calls);
                emit(&events, &mut timers, fired);
            }
        }
    }
    for timer in timers.into_values() {
        timer.abort();
    }
}

/// The next command or control, in arrival order per channel; `None` once the phone's
/// handle is gone.
async fn next_input(
    commands: &mut mpsc::Receiver<super::Envelope>,
    controls: &mut mpsc::Receiver<ControlEnvelope>,
) -> Option<(Input, oneshot::Sender<Result<Reply, PhoneError>>)> {
    tokio::select! {
        c = commands.recv() => c.map(|(c, tx)| (Input::Phone(c), tx)),
        Some((c, tx)) = controls.recv() => Some((Input::Control(c), tx)),
    }
}

/// Reports events, cancelling the answer timer of every call answered or ended.
fn emit(events: &Events, timers: &mut HashMap<CallId, AbortHandle>, emitted: Vec<PhoneEvent>) {
    for event in emitted {
        if let PhoneEvent::CallConnected { id } | PhoneEvent::CallDisconnected { id, .. } = &event
            && let Some(timer) = timers.remove(id)
        {
            timer.abort();
        }
        events.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::PhoneNumber;
    use std::time::Duration;

    fn num(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).expect("valid number")
    }

    fn manual() -> SimPhone {
        SimPhone::new(SimSettings {
            auto_answer: false,
            ..SimSettings::default()
        })
    }

    /// Events with call ids replaced by the index of the call in order of appearance,
    /// so tables can name them.
    fn shape(events: &[PhoneEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                PhoneEvent::StateChanged(s) => format!("StateChanged {}", s.as_str()),
                PhoneEvent::CallComing { number, .. } => format!("CallComing {number}"),
                PhoneEvent::QueueCallComing { caller, .. } => format!("QueueCallComing {caller}"),
                PhoneEvent::CallingOut { number, .. } => format!("CallingOut {number}"),
                PhoneEvent::CallConnected { .. } => "CallConnected".into(),
                PhoneEvent::CallDisconnected { reason, .. } => {
                    format!("CallDisconnected {reason}")
                }
                PhoneEvent::CallHeld { .. } => "CallHeld".into(),
                PhoneEvent::CallResumed { .. } => "CallResumed".into(),
                PhoneEvent::CallTransferred { number, .. } => format!("CallTransferred {number}"),
                PhoneEvent::MuteChanged(on) => format!("MuteChanged {on}"),
                PhoneEvent::CallHeldByFarEnd { .. } | PhoneEvent::CallResumedByFarEnd { .. } => {
                    unreachable!("only the built-in SIP phone sees the far end's hold")
                }
            })
            .collect()
    }

    fn call_out(n: &str) -> Input {
        Command::CallOut(num(n)).into()
    }
    fn sim(c: SimControl) -> Input {
        c.into()
    }
    fn incoming(n: &str) -> Input {
        sim(SimControl::IncomingCall { number: num(n) })
    }
    fn remote_hangup() -> Input {
        sim(SimControl::RemoteHangUp {
            call: None,
            reason: String::new(),
        })
    }

    /// Each row: commands run in order on a fresh manual phone; the last one's reply kind,
    /// all events of the last command, and the final state.
    #[test]
    fn state_machine_table() {
        type Row = (
            &'static str,
            Vec<Input>,
            Result<&'static str, &'static str>,
            Vec<&'static str>,
            &'static str,
        );
        assert_eq!(manual().state().as_str(), "Available", "idle state");
        let rows: Vec<Row> = vec![
            (
                "call out",
                vec![call_out("+358449388834")],
                Ok("call"),
                vec!["CallingOut +358449388834", "StateChanged Busy"],
                "Busy",
            ),
            (
                "remote answers",
                vec![call_out("1"), sim(SimControl::RemoteAnswer { call: None })],
                Ok("done"),
                vec!["CallConnected"],
                "Busy",
            ),
            (
                "remote hangs up",
                vec![call_out("1"), remote_hangup()],
                Ok("done"),
                vec!["CallDisconnected ", "StateChanged Available"],
                "Available",
            ),
            (
                "hang up own call",
                vec![call_out("1"), Command::HangUp.into()],
                Ok("done"),
                vec!["CallDisconnected local hang-up", "StateChanged Available"],
                "Available",
            ),
            (
                "hang up with no call",
                vec![Command::HangUp.into()],
                Err("nosuchcall"),
                vec![],
                "Available",
            ),
            (
                "answer with no call",
                vec![Command::Answer.into()],
                Err("nosuchcall"),
                vec![],
                "Available",
            ),
            (
                "incoming",
                vec![incoming("0505010269")],
                Ok("call"),
                vec!["CallComing 0505010269", "StateChanged Busy"],
                "Busy",
            ),
            (
                "answer incoming",
                vec![incoming("1"), Command::Answer.into()],
                Ok("done"),
                vec!["CallConnected"],
                "Busy",
            ),
            (
                "reject ringing",
                vec![incoming("1"), Command::HangUp.into()],
                Ok("done"),
                vec!["CallDisconnected rejected", "StateChanged Available"],
                "Available",
            ),
            (
                "queue call",
                vec![sim(SimControl::QueueCall {
                    number: num("+358501231234"),
                    queue_number: "+3581011223".into(),
                    queue_name: "Master queue 1".into(),
                })],
                Ok("call"),
                vec![
                    "QueueCallComing +358501231234",
                    "CallComing +358501231234",
                    "StateChanged Busy",
                ],
                "Busy",
            ),
            (
                "availability",
                vec![sim(SimControl::SetAvailability(Availability::Dnd))],
                Ok("done"),
                vec!["StateChanged DND"],
                "DND",
            ),
            (
                "availability while busy is silent",
                vec![
                    call_out("1"),
                    sim(SimControl::SetAvailability(Availability::Away)),
                ],
                Ok("done"),
                vec![],
                "Busy",
            ),
            (
                "availability returns after call",
                vec![
                    call_out("1"),
                    sim(SimControl::SetAvailability(Availability::Away)),
                    Command::HangUp.into(),
                ],
                Ok("done"),
                vec!["CallDisconnected local hang-up", "StateChanged Away"],
                "Away",
            ),
            (
                "offline ends calls",
                vec![call_out("1"), incoming("2"), sim(SimControl::SetOffline)],
                Ok("done"),
                vec![
                    "CallDisconnected phone offline",
                    "CallDisconnected phone offline",
                    "StateChanged Offline",
                ],
                "Offline",
            ),
            (
                "offline refuses call out",
                vec![sim(SimControl::SetOffline), call_out("1")],
                Err("unavailable"),
                vec![],
                "Offline",
            ),
            (
                "offline refuses incoming",
                vec![sim(SimControl::SetOffline), incoming("1")],
                Err("unavailable"),
                vec![],
                "Offline",
            ),
            (
                "online again",
                vec![sim(SimControl::SetOffline), sim(SimControl::SetOnline)],
                Ok("done"),
                vec!["StateChanged Available"],
                "Available",
            ),
            (
                "offline twice is silent",
                vec![sim(SimControl::SetOffline), sim(SimControl::SetOffline)],
                Ok("done"),
                vec![],
                "Offline",
            ),
            (
                "remote answer needs a calling call",
                vec![incoming("1"), sim(SimControl::RemoteAnswer { call: None })],
                Err("nosuchcall"),
                vec![],
                "Busy",
            ),
            (
                "remote answer of unknown id",
                vec![
                    call_out("1"),
                    sim(SimControl::RemoteAnswer {
                        call: Some(CallId::from_string("nope")),
                    }),
                ],
                Err("nosuchcall"),
                vec![],
                "Busy",
            ),
            (
                "second call out holds the first, hang up ends the newest",
                vec![
                    call_out("1"),
                    sim(SimControl::RemoteAnswer { call: None }),
                    call_out("2"),
                    Command::HangUp.into(),
                ],
                Ok("done"),
                vec!["CallDisconnected local hang-up"],
                "Busy",
            ),
        ];
        let act = |action: CallAction| -> Input { Command::Call { call: None, action }.into() };
        let answered = |n: &str| vec![incoming(n), Command::Answer.into()];
        let with = |mut v: Vec<Input>, more: Vec<Input>| {
            v.extend(more);
            v
        };
        let extension_rows: Vec<Row> = vec![
            (
                "hold the connected call",
                with(answered("1"), vec![act(CallAction::Hold)]),
                Ok("done"),
                vec!["CallHeld"],
                "Busy",
            ),
            (
                "hold with nothing connected",
                vec![incoming("1"), act(CallAction::Hold)],
                Err("nofit"),
                vec![],
                "Busy",
            ),
            (
                "resume the held call",
                with(
                    answered("1"),
                    vec![act(CallAction::Hold), act(CallAction::Resume)],
                ),
                Ok("done"),
                vec!["CallResumed"],
                "Busy",
            ),
            (
                "answering a second call holds the first",
                with(answered("1"), answered("2")),
                Ok("done"),
                vec!["CallHeld", "CallConnected"],
                "Busy",
            ),
            (
                "resume with two held is ambiguous",
                with(
                    with(answered("1"), answered("2")),
                    vec![act(CallAction::Hold), act(CallAction::Resume)],
                ),
                Err("ambiguous"),
                vec![],
                "Busy",
            ),
            (
                "transfer ends the call",
                with(answered("1"), vec![act(CallAction::Transfer(num("2002")))]),
                Ok("done"),
                vec![
                    "CallTransferred 2002",
                    "CallDisconnected transferred",
                    "StateChanged Available",
                ],
                "Available",
            ),
            (
                "dtmf on the connected call",
                with(
                    answered("1"),
                    vec![act(CallAction::SendDtmf(
                        crate::phone::Dtmf::parse("12#").expect("dtmf"),
                    ))],
                ),
                Ok("done"),
                vec![],
                "Busy",
            ),
            (
                "mute, then mute again",
                with(
                    answered("1"),
                    vec![Command::Mute(true).into(), Command::Mute(true).into()],
                ),
                Ok("done"),
                vec![],
                "Busy",
            ),
            (
                "mute ends with the last call",
                with(
                    answered("1"),
                    vec![Command::Mute(true).into(), remote_hangup()],
                ),
                Ok("done"),
                vec![
                    "CallDisconnected ",
                    "MuteChanged false",
                    "StateChanged Available",
                ],
                "Available",
            ),
            (
                "mute without a call",
                vec![Command::Mute(true).into()],
                Err("nosuchcall"),
                vec![],
                "Available",
            ),
        ];
        let rows = rows.into_iter().chain(extension_rows);
        for (name, commands, want_reply, want_events, want_state) in rows {
            let mut phone = manual();
            let mut last = None;
            for c in commands {
                last = Some(phone.handle(c, SystemTime::now()));
            }
            let last = last.expect("each row has a command");
            let kind = match &last.reply {
                Ok(Reply::Done) => Ok("done"),
                Ok(Reply::Call(_)) => Ok("call"),
                Err(PhoneError::NoSuchCall(_)) => Err("nosuchcall"),
                Err(PhoneError::Unavailable(_)) => Err("unavailable"),
                Err(PhoneError::Refused(_)) => Err("refused"),
                Err(PhoneError::Unsupported) => Err("unsupported"),
                Err(PhoneError::NoCallFits(_)) => Err("nofit"),
                Err(PhoneError::Ambiguous(_)) => Err("ambiguous"),
            };
            assert_eq!(kind, want_reply, "{name}: reply");
            assert_eq!(shape(&last.events), want_events, "{name}: events");
            assert_eq!(phone.state().as_str(), want_state, "{name}: state");
        }
    }

    #[test]
    fn one_call_keeps_one_id() {
        let mut phone = manual();
        let out = phone.handle(call_out("123"), SystemTime::now());
        let Ok(Reply::Call(id)) = out.reply else {
            panic!("call out failed: {:?}", out.reply)
        };
        assert_eq!(
            out.events[0],
            PhoneEvent::CallingOut {
                id: id.clone(),
                number: "123".into()
            }
        );
        let answered = phone.answer_timer_fired(&id);
        assert_eq!(answered, vec![PhoneEvent::CallConnected { id: id.clone() }]);
        // A second firing does nothing: the call is no longer calling.
        assert!(phone.answer_timer_fired(&id).is_empty());
        let end = phone.handle(Command::HangUp, SystemTime::now());
        assert_eq!(
            end.events[0],
            PhoneEvent::CallDisconnected {
                id,
                reason: REASON_LOCAL_HANGUP.into()
            }
        );
    }

    #[test]
    fn calls_listed_oldest_first_with_states() {
        let mut phone = manual();
        phone.handle(call_out("1"), SystemTime::now());
        phone.handle(
            sim(SimControl::RemoteAnswer { call: None }),
            SystemTime::now(),
        );
        phone.handle(incoming("2"), SystemTime::now());
        phone.handle(Command::Answer, SystemTime::now());
        let calls = phone.calls();
        let got: Vec<_> = calls
            .iter()
            .map(|c| (c.direction, c.state, c.number.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Direction::Outbound, CallState::OnHold, "1"),
                (Direction::Inbound, CallState::Connected, "2"),
            ]
        );
    }

    #[test]
    fn refuses_more_than_max_calls() {
        let mut phone = SimPhone::new(SimSettings {
            auto_answer: false,
            max_calls: 2,
            ..SimSettings::default()
        });
        phone.handle(call_out("1"), SystemTime::now());
        phone.handle(incoming("2"), SystemTime::now());
        let third = phone.handle(call_out("3"), SystemTime::now());
        assert!(matches!(third.reply, Err(PhoneError::Refused(_))));
        assert!(third.events.is_empty());
    }

    /// Calls that end before the far end answers leave no timer behind.
    #[tokio::test]
    async fn ended_calls_cancel_their_answer_timers() {
        struct Discard;
        impl crate::phone::EventSink for Discard {
            fn emit(&self, _: PhoneEvent) {}
        }
        let phone = spawn(
            SimSettings {
                answer_delay: Duration::from_secs(3600),
                ..SimSettings::default()
            },
            std::sync::Arc::new(Discard),
        );
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        for _ in 0..200 {
            phone
                .send(Command::CallOut(num("1")))
                .await
                .expect("call out");
            phone.send(Command::HangUp).await.expect("hang up");
        }
        // Aborted tasks go away at their next poll; give them a moment.
        for _ in 0..100 {
            if metrics.num_alive_tasks() <= before + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            metrics.num_alive_tasks() <= before + 1,
            "{} tasks alive, {before} before",
            metrics.num_alive_tasks()
        );
    }

    #[test]
    fn auto_answer_is_scheduled() {
        let mut phone = SimPhone::new(SimSettings::default());
        let out = phone.handle(call_out("1"), SystemTime::now());
        assert!(out.schedule_answer.is_some());
        let mut manual = manual();
        assert!(
            manual
                .handle(call_out("1"), SystemTime::now())
                .schedule_answer
                .is_none()
        );
    }
}
