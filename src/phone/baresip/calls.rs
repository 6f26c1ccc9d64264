//! The call list kept from baresip's events: a pure state machine, so it can be tested as
//! tables. It gives every call its own GUID (baresip's SIP Call-IDs come late for
//! outgoing calls, and never with the `dial` response) and turns baresip's events into
//! phone events in the documented order.

use std::time::SystemTime;

use super::ctrl::Event;
use crate::phone::{
    Availability, BackendStatus, Call, CallId, CallState, Direction, PhoneEvent, PhoneState,
};

/// The `extraInfo` of calls that ended because baresip went away.
pub const REASON_CONNECTION_LOST: &str = "phone connection lost";

#[derive(Clone, Debug)]
struct Tracked {
    call: Call,
    /// baresip's SIP Call-ID, once known.
    sip_id: Option<String>,
    /// The URI dialled or calling.
    peer_uri: String,
    /// Whether the first notification (CallingOut/CallComing) has been sent; events of a
    /// call not yet announced wait in `deferred`.
    announced: bool,
    deferred: Vec<PhoneEvent>,
    /// Ended before it was announced.
    closed: bool,
    /// The token of a `dial` that baresip has not answered yet (it did not answer in
    /// time): its late response settles the call.
    dial_token: Option<String>,
}

/// The calls and the phone's state as baresip reported them.
#[derive(Debug)]
pub struct Calls {
    calls: Vec<Tracked>,
    /// Connected to baresip.
    pub connected: bool,
    /// Registration: `None` while unknown, `Some(false)` after REGISTER_FAIL.
    pub registered: Option<bool>,
    /// Whether the account registers at all (if not, it is never waited for).
    pub registers: bool,
    /// The user's availability.
    pub availability: Availability,
    /// Why the account is not registered now (the registrar's status), if it failed.
    pub registration_error: Option<String>,
    /// The last failure worth telling an operator, kept after recovery.
    pub last_failure: Option<String>,
    /// Whether the calls' hold states must be read again from baresip (`listcalls`).
    holds_due: bool,
    /// Whether the current call's microphone is muted, as baresip last answered `mute`.
    muted: bool,
    reported: PhoneState,
    out: Vec<PhoneEvent>,
}

impl Calls {
    /// No calls, not connected.
    pub fn new(availability: Availability, registers: bool) -> Self {
        Calls {
            calls: Vec::new(),
            connected: false,
            registered: None,
            registers,
            availability,
            registration_error: None,
            last_failure: None,
            holds_due: false,
            muted: false,
            reported: PhoneState::Offline,
            out: Vec::new(),
        }
    }

    /// Whether commands can go to the phone.
    pub fn online(&self) -> bool {
        self.connected && (!self.registers || self.registered == Some(true))
    }

    /// The state GetState reports: `Offline` while baresip is unreachable; `Busy` while
    /// any call exists, even when the registration lapsed meanwhile (the call goes on);
    /// otherwise `Offline` until registered, then the availability.
    pub fn state(&self) -> PhoneState {
        if !self.connected {
            PhoneState::Offline
        } else if self.calls.iter().any(|t| t.announced) {
            PhoneState::Online(Availability::Busy)
        } else if !self.online() {
            PhoneState::Offline
        } else {
            PhoneState::Online(self.availability)
        }
    }

    /// Why commands that need the registration cannot run now, if they cannot.
    pub fn offline_reason(&self) -> Option<String> {
        if !self.connected {
            Some("baresip is not reachable".into())
        } else if self.online() {
            None
        } else {
            Some(match &self.registration_error {
                Some(why) => format!("the SIP account is not registered: {why}"),
                None => "the SIP account is not registered (yet)".into(),
            })
        }
    }

    /// The link and the last failure, for operators.
    pub fn status(&self) -> BackendStatus {
        let link = if !self.connected {
            "baresip not reachable"
        } else if !self.registers {
            "connected (no registration)"
        } else {
            match self.registered {
                Some(true) => "registered",
                Some(false) => "not registered",
                None => "registering",
            }
        };
        BackendStatus {
            link: Some(link.to_owned()),
            last_error: self.last_failure.clone(),
            audio: None,
        }
    }

    /// The announced calls, oldest first.
    pub fn list(&self) -> Vec<Call> {
        self.calls
            .iter()
            .filter(|t| t.announced)
            .map(|t| t.call.clone())
            .collect()
    }

    /// Takes the phone events produced so far, adding `StateChanged` if the state moved.
    pub fn take_events(&mut self) -> Vec<PhoneEvent> {
        // Mute belongs to baresip's calls: a new call starts unmuted.
        if self.muted && self.calls.is_empty() {
            self.set_muted(false);
        }
        self.sync_state();
        std::mem::take(&mut self.out)
    }

    fn sync_state(&mut self) {
        let now = self.state();
        if now != self.reported {
            self.reported = now;
            self.out.push(PhoneEvent::StateChanged(now));
        }
    }

    /// Records a dial about to be sent; returns the call's id. Its events wait until
    /// [`Calls::dial_confirmed`].
    pub fn dial_started(&mut self, uri: &str, number: &str, now: SystemTime) -> CallId {
        let id = CallId::new_guid();
        self.calls.push(Tracked {
            call: Call {
                id: id.clone(),
                direction: Direction::Outbound,
                state: CallState::Calling,
                number: number.to_owned(),
                started: now,
            },
            sip_id: None,
            peer_uri: uri.to_owned(),
            announced: false,
            deferred: Vec::new(),
            closed: false,
            dial_token: None,
        });
        id
    }

    /// baresip accepted the dial: announce the call, then whatever happened to it since.
    pub fn dial_confirmed(&mut self, id: &CallId) {
        let Some(i) = self.index(id) else { return };
        let t = &mut self.calls[i];
        t.announced = true;
        let deferred = std::mem::take(&mut t.deferred);
        let closed = t.closed;
        self.out.push(PhoneEvent::CallingOut {
            id: id.clone(),
            number: t.call.number.clone(),
        });
        self.sync_state();
        let before = self.out.len();
        self.out.extend(deferred);
        if closed {
            self.calls.remove(i);
        }
        if self.out.len() > before {
            self.sync_state();
        }
    }

    /// baresip did not answer the dial in time but may still carry it out: announce the
    /// call now and keep it until baresip settles it (its late response, the call's own
    /// events, or the connection's end). False when the call is already gone.
    pub fn dial_unsettled(&mut self, id: &CallId, token: String) -> bool {
        let Some(i) = self.index(id) else {
            return false;
        };
        self.calls[i].dial_token = Some(token);
        self.dial_confirmed(id);
        true
    }

    /// A late response to a dial: ends the call if baresip refused it. False when no dial
    /// waits for this token.
    pub fn dial_settled(&mut self, token: &str, ok: bool, reason: &str) -> bool {
        let Some(i) = self
            .calls
            .iter()
            .position(|t| t.dial_token.as_deref() == Some(token))
        else {
            return false;
        };
        self.calls[i].dial_token = None;
        if !ok {
            let id = self.calls[i].call.id.clone();
            self.emit(
                i,
                PhoneEvent::CallDisconnected {
                    id,
                    reason: reason.to_owned(),
                },
            );
            self.calls.remove(i);
        }
        true
    }

    /// baresip refused the dial: forget the call.
    pub fn dial_failed(&mut self, id: &CallId) {
        if let Some(i) = self.index(id) {
            self.calls.remove(i);
        }
    }

    /// The call HangUp ends: connected, else calling, else ringing, else on hold; newest
    /// first within each. Returns its id and SIP Call-ID.
    pub fn hangup_target(&self) -> Option<(CallId, Option<String>)> {
        crate::phone::HANG_UP_ORDER
            .into_iter()
            .find_map(|s| {
                self.calls
                    .iter()
                    .rev()
                    .find(|t| t.announced && t.call.state == s)
            })
            .map(|t| (t.call.id.clone(), t.sip_id.clone()))
    }

    /// The call Answer takes: the newest ringing inbound call, with its SIP Call-ID.
    pub fn answer_target(&self) -> Option<(CallId, String)> {
        self.calls
            .iter()
            .rev()
            .find(|t| t.announced && t.call.state == CallState::Ringing)
            .and_then(|t| Some((t.call.id.clone(), t.sip_id.clone()?)))
    }

    /// How many calls baresip has that we know of (announced or not).
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether there are no calls.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The control connection dropped but baresip may still run: the phone is offline
    /// for now, its calls are kept until [`Calls::reconcile`] or [`Calls::end_all`].
    pub fn suspend(&mut self) {
        self.connected = false;
        self.registered = None;
        self.calls.retain(|t| t.announced);
    }

    /// baresip is gone: every call ends.
    pub fn end_all(&mut self) {
        self.suspend();
        for t in std::mem::take(&mut self.calls) {
            self.out.push(PhoneEvent::CallDisconnected {
                id: t.call.id,
                reason: REASON_CONNECTION_LOST.to_owned(),
            });
        }
    }

    /// After a reconnect: keeps the calls baresip still lists (matched by peer URI) and
    /// ends the others.
    pub fn reconcile(&mut self, mut listed_peers: Vec<String>) {
        let mut kept = Vec::new();
        for t in std::mem::take(&mut self.calls) {
            if let Some(i) = listed_peers.iter().position(|p| *p == t.peer_uri) {
                listed_peers.remove(i);
                kept.push(t);
            } else {
                self.out.push(PhoneEvent::CallDisconnected {
                    id: t.call.id,
                    reason: REASON_CONNECTION_LOST.to_owned(),
                });
            }
        }
        self.calls = kept;
        if !listed_peers.is_empty() {
            tracing::warn!(
                calls = listed_peers.len(),
                "baresip has calls this server did not see start; they are not reported"
            );
        }
    }

    /// Whether the call is connected now.
    pub fn is_connected(&self, id: &CallId) -> bool {
        self.index(id)
            .is_some_and(|i| self.calls[i].call.state == CallState::Connected)
    }

    /// Applies one baresip event.
    pub fn on_event(&mut self, e: &Event, now: SystemTime) {
        match e.kind.as_str() {
            "REGISTER_OK" => {
                if self.registered == Some(false) {
                    tracing::info!("the SIP account is registered again");
                }
                self.registered = Some(true);
                self.registration_error = None;
            }
            "REGISTER_FAIL" => {
                let why = if e.param.trim().is_empty() {
                    "no reason given".to_owned()
                } else {
                    e.param.trim().chars().take(200).collect()
                };
                tracing::warn!(status = %why, "SIP registration failed");
                self.registered = Some(false);
                self.last_failure = Some(format!("registration failed: {why}"));
                self.registration_error = Some(why);
            }
            "CALL_INCOMING" => {
                self.find_or_add(e, now);
            }
            "CALL_RINGING" | "CALL_PROGRESS" => {
                self.find_or_add(e, now);
            }
            "CALL_ESTABLISHED" => {
                let Some(i) = self.find_or_add(e, now) else {
                    return;
                };
                if self.calls[i].call.state != CallState::Connected {
                    // Whether other calls are now on hold is read from baresip: it holds
                    // them when it answers a second call, not when it dials one.
                    self.holds_due = self.calls.len() > 1;
                    self.calls[i].call.state = CallState::Connected;
                    let id = self.calls[i].call.id.clone();
                    self.emit(i, PhoneEvent::CallConnected { id });
                }
            }
            "CALL_CLOSED" => {
                let Some(i) = self.find_or_add(e, now) else {
                    return;
                };
                let id = self.calls[i].call.id.clone();
                self.emit(
                    i,
                    PhoneEvent::CallDisconnected {
                        id,
                        reason: e.param.clone(),
                    },
                );
                if self.calls[i].announced {
                    self.calls.remove(i);
                } else {
                    self.calls[i].closed = true;
                }
                // baresip may resume a held call now: read it again.
                self.holds_due = self.calls.iter().any(|t| t.call.state == CallState::OnHold);
            }
            _ => {}
        }
    }

    /// The SIP Call-ID of a call, once baresip has told it.
    pub fn sip_id(&self, id: &CallId) -> Option<String> {
        self.index(id).and_then(|i| self.calls[i].sip_id.clone())
    }

    /// Asks for the hold states to be read again (after `hold` or `resume`).
    pub fn holds_changed(&mut self) {
        self.holds_due = true;
    }

    /// Whether the call is on hold now.
    pub fn is_held(&self, id: &CallId) -> bool {
        self.index(id)
            .is_some_and(|i| self.calls[i].call.state == CallState::OnHold)
    }

    /// baresip sent the REFER of a blind transfer of this call to `number`.
    pub fn transferred(&mut self, id: &CallId, number: &str) {
        if let Some(i) = self.index(id) {
            self.emit(
                i,
                PhoneEvent::CallTransferred {
                    id: id.clone(),
                    number: number.to_owned(),
                },
            );
        }
    }

    /// Whether the microphone is muted, as baresip last reported.
    pub fn muted(&self) -> bool {
        self.muted
    }

    /// Records the mute state baresip reported.
    pub fn set_muted(&mut self, on: bool) {
        if self.muted != on {
            self.muted = on;
            self.out.push(PhoneEvent::MuteChanged(on));
        }
    }

    /// Whether the hold states must be read again; clears the flag.
    pub fn take_holds_due(&mut self) -> bool {
        std::mem::take(&mut self.holds_due)
    }

    /// Applies baresip's `listcalls` rows (peer URI, on hold), in baresip's order, which
    /// is the order the calls started: each row goes to the first call not yet matched
    /// with that peer. Only connected calls can be held, and only held ones resumed.
    pub fn apply_holds(&mut self, rows: &[(String, bool)]) {
        let mut matched = vec![false; self.calls.len()];
        for (peer, on_hold) in rows {
            let Some(i) =
                (0..self.calls.len()).find(|&i| !matched[i] && self.calls[i].peer_uri == *peer)
            else {
                continue;
            };
            matched[i] = true;
            let call = &mut self.calls[i].call;
            let id = call.id.clone();
            let event = match (call.state, on_hold) {
                (CallState::Connected, true) => {
                    call.state = CallState::OnHold;
                    PhoneEvent::CallHeld { id }
                }
                (CallState::OnHold, false) => {
                    call.state = CallState::Connected;
                    PhoneEvent::CallResumed { id }
                }
                _ => continue,
            };
            self.emit(i, event);
        }
    }

    fn emit(&mut self, i: usize, event: PhoneEvent) {
        if self.calls[i].announced {
            self.out.push(event);
        } else {
            self.calls[i].deferred.push(event);
        }
    }

    fn index(&self, id: &CallId) -> Option<usize> {
        self.calls.iter().position(|t| &t.call.id == id)
    }

    /// The call an event is about: by SIP Call-ID; else an outgoing event binds to our
    /// oldest pending dial of that URI (or to the only pending dial); else, for an event
    /// that can start a call, it is a call we did not start (another controller,
    /// auto-answer) and is announced now. A `CALL_CLOSED` never creates a call.
    fn find_or_add(&mut self, e: &Event, now: SystemTime) -> Option<usize> {
        let sip_id = e.id.as_deref()?;
        if let Some(i) = self
            .calls
            .iter()
            .position(|t| t.sip_id.as_deref() == Some(sip_id))
        {
            return Some(i);
        }
        let outgoing = e.direction == "outgoing";
        if outgoing {
            let pending =
                |t: &Tracked| t.sip_id.is_none() && t.call.direction == Direction::Outbound;
            let only_pending = (self.calls.iter().filter(|t| pending(t)).count() == 1)
                .then(|| self.calls.iter().position(pending))
                .flatten();
            let i = self
                .calls
                .iter()
                .position(|t| pending(t) && t.peer_uri == e.peer_uri)
                .or(only_pending);
            if let Some(i) = i {
                self.calls[i].sip_id = Some(sip_id.to_owned());
                return Some(i);
            }
        }
        if e.kind == "CALL_CLOSED" {
            return None;
        }
        let number = user_part(&e.peer_uri);
        let id = CallId::new_guid();
        let (direction, state, first) = if outgoing {
            (
                Direction::Outbound,
                CallState::Calling,
                PhoneEvent::CallingOut {
                    id: id.clone(),
                    number: number.clone(),
                },
            )
        } else {
            (
                Direction::Inbound,
                CallState::Ringing,
                PhoneEvent::CallComing {
                    id: id.clone(),
                    number: number.clone(),
                },
            )
        };
        self.calls.push(Tracked {
            call: Call {
                id,
                direction,
                state,
                number,
                started: now,
            },
            sip_id: Some(sip_id.to_owned()),
            peer_uri: e.peer_uri.clone(),
            announced: true,
            deferred: Vec::new(),
            closed: false,
            dial_token: None,
        });
        self.out.push(first);
        self.sync_state();
        Some(self.calls.len() - 1)
    }
}

/// The user part of a SIP URI (`sip:1002@pbx;transport=tcp` → `1002`), or the URI.
pub fn user_part(uri: &str) -> String {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    let end = rest.find(['@', ';', '>']).unwrap_or(rest.len());
    rest[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, dir: &str, peer: &str, id: Option<&str>, param: &str) -> Event {
        Event {
            kind: kind.into(),
            class: "call".into(),
            direction: dir.into(),
            peer_uri: peer.into(),
            id: id.map(str::to_owned),
            param: param.into(),
        }
    }

    fn online() -> Calls {
        let mut c = Calls::new(Availability::Available, false);
        c.connected = true;
        c.take_events();
        c
    }

    fn brief(events: &[PhoneEvent], ids: &[&CallId]) -> Vec<String> {
        let name = |id: &CallId| {
            ids.iter()
                .position(|x| *x == id)
                .map_or("?".to_owned(), |i| format!("c{i}"))
        };
        events
            .iter()
            .map(|e| match e {
                PhoneEvent::StateChanged(s) => format!("StateChanged {}", s.as_str()),
                PhoneEvent::CallComing { id, number } => {
                    format!("CallComing {} {number}", name(id))
                }
                PhoneEvent::CallingOut { id, number } => {
                    format!("CallingOut {} {number}", name(id))
                }
                PhoneEvent::CallConnected { id } => format!("CallConnected {}", name(id)),
                PhoneEvent::CallDisconnected { id, reason } => {
                    format!("CallDisconnected {} {reason}", name(id))
                }
                PhoneEvent::QueueCallComing { .. } => "QueueCallComing".into(),
                PhoneEvent::CallHeld { id } => format!("CallHeld {}", name(id)),
                PhoneEvent::CallResumed { id } => format!("CallResumed {}", name(id)),
                PhoneEvent::CallTransferred { id, number } => {
                    format!("CallTransferred {} {number}", name(id))
                }
                PhoneEvent::MuteChanged(on) => format!("MuteChanged {on}"),
                PhoneEvent::CallHeldByFarEnd { .. } | PhoneEvent::CallResumedByFarEnd { .. } => {
                    unreachable!("only the built-in SIP phone sees the far end's hold")
                }
            })
            .collect()
    }

    #[test]
    fn outgoing_call_in_documented_order_even_when_events_beat_the_response() {
        let now = SystemTime::now();
        let mut c = online();
        let uri = "sip:1002@127.0.0.1:5080";
        let id = c.dial_started(uri, "1002", now);
        // baresip raises events before the dial response arrives.
        c.on_event(&ev("CALL_RINGING", "outgoing", uri, Some("abc"), uri), now);
        c.on_event(
            &ev("CALL_ESTABLISHED", "outgoing", uri, Some("abc"), uri),
            now,
        );
        assert_eq!(
            c.take_events(),
            vec![],
            "nothing before the call is announced"
        );
        c.dial_confirmed(&id);
        assert_eq!(
            brief(&c.take_events(), &[&id]),
            [
                "CallingOut c0 1002",
                "StateChanged Busy",
                "CallConnected c0"
            ]
        );
        c.on_event(
            &ev(
                "CALL_CLOSED",
                "outgoing",
                uri,
                Some("abc"),
                "Connection reset by peer",
            ),
            now,
        );
        assert_eq!(
            brief(&c.take_events(), &[&id]),
            [
                "CallDisconnected c0 Connection reset by peer",
                "StateChanged Available"
            ]
        );
        assert!(c.is_empty());
    }

    #[test]
    fn failed_dial_before_confirmation() {
        let now = SystemTime::now();
        let mut c = online();
        let uri = "sip:9@127.0.0.1:5080";
        let id = c.dial_started(uri, "9", now);
        c.on_event(
            &ev("CALL_CLOSED", "outgoing", uri, Some("x"), "404 Not Found"),
            now,
        );
        c.dial_confirmed(&id);
        assert_eq!(
            brief(&c.take_events(), &[&id]),
            [
                "CallingOut c0 9",
                "StateChanged Busy",
                "CallDisconnected c0 404 Not Found",
                "StateChanged Available"
            ]
        );
        assert!(c.is_empty());
        let id2 = c.dial_started(uri, "9", now);
        c.dial_failed(&id2);
        assert!(c.is_empty());
        assert_eq!(c.take_events(), vec![]);
    }

    #[test]
    fn two_inbound_calls_hold_and_resume() {
        let now = SystemTime::now();
        let mut c = online();
        let a = "sip:1002@h";
        c.on_event(&ev("CALL_INCOMING", "incoming", a, Some("s1"), a), now);
        c.on_event(&ev("CALL_ESTABLISHED", "incoming", a, Some("s1"), a), now);
        c.on_event(
            &ev("CALL_INCOMING", "incoming", "sip:1003@h", Some("s2"), ""),
            now,
        );
        let list = c.list();
        let ids: Vec<&CallId> = list.iter().map(|x| &x.id).collect();
        assert_eq!(
            brief(&c.take_events(), &ids),
            [
                "CallComing c0 1002",
                "StateChanged Busy",
                "CallConnected c0",
                "CallComing c1 1003"
            ]
        );
        assert_eq!(c.answer_target().map(|(_, s)| s), Some("s2".to_owned()));
        assert_eq!(
            c.hangup_target().and_then(|(_, s)| s),
            Some("s1".to_owned())
        );
        c.on_event(
            &ev("CALL_ESTABLISHED", "incoming", "sip:1003@h", Some("s2"), ""),
            now,
        );
        let states: Vec<CallState> = c.list().iter().map(|x| x.state).collect();
        assert_eq!(
            states,
            [CallState::Connected, CallState::Connected],
            "nothing is assumed held"
        );
        assert!(c.take_holds_due(), "baresip is asked");
        c.apply_holds(&[(a.into(), true), ("sip:1003@h".into(), false)]);
        let states: Vec<CallState> = c.list().iter().map(|x| x.state).collect();
        assert_eq!(states, [CallState::OnHold, CallState::Connected]);
        c.on_event(
            &ev("CALL_CLOSED", "incoming", "sip:1003@h", Some("s2"), "x"),
            now,
        );
        assert!(c.take_holds_due());
        c.apply_holds(&[(a.into(), false)]);
        let states: Vec<CallState> = c.list().iter().map(|x| x.state).collect();
        assert_eq!(states, [CallState::Connected], "the held call resumes");
    }

    #[test]
    fn connection_lost_ends_every_call_then_offline() {
        let now = SystemTime::now();
        let mut c = online();
        c.on_event(
            &ev("CALL_INCOMING", "incoming", "sip:5@h", Some("s1"), ""),
            now,
        );
        let id = c.list()[0].id.clone();
        c.take_events();
        c.end_all();
        assert_eq!(
            brief(&c.take_events(), &[&id]),
            [
                "CallDisconnected c0 phone connection lost",
                "StateChanged Offline"
            ]
        );
        assert_eq!(c.state(), PhoneState::Offline);
    }

    #[test]
    fn reconnect_keeps_listed_calls_and_ends_the_others() {
        let now = SystemTime::now();
        let mut c = online();
        c.on_event(
            &ev("CALL_INCOMING", "incoming", "sip:5@h", Some("s1"), ""),
            now,
        );
        c.on_event(
            &ev("CALL_INCOMING", "incoming", "sip:6@h", Some("s2"), ""),
            now,
        );
        let ids: Vec<CallId> = c.list().into_iter().map(|x| x.id).collect();
        c.take_events();
        c.suspend();
        assert_eq!(
            brief(&c.take_events(), &[&ids[0], &ids[1]]),
            ["StateChanged Offline"]
        );
        c.connected = true;
        c.reconcile(vec!["sip:6@h".into()]);
        assert_eq!(
            brief(&c.take_events(), &[&ids[0], &ids[1]]),
            [
                "CallDisconnected c0 phone connection lost",
                "StateChanged Busy"
            ]
        );
        assert_eq!(c.list().len(), 1);
        // Events of the kept call still find it.
        c.on_event(
            &ev("CALL_CLOSED", "incoming", "sip:6@h", Some("s2"), "bye"),
            now,
        );
        assert_eq!(
            brief(&c.take_events(), &[&ids[0], &ids[1]]),
            ["CallDisconnected c1 bye", "StateChanged Available"]
        );
        // A CALL_CLOSED for a call never seen creates nothing.
        c.on_event(
            &ev("CALL_CLOSED", "incoming", "sip:7@h", Some("s9"), "bye"),
            now,
        );
        assert_eq!(c.take_events(), vec![]);
    }

    #[test]
    fn registration_decides_online() {
        let mut c = Calls::new(Availability::Dnd, true);
        c.connected = true;
        assert_eq!(c.state(), PhoneState::Offline);
        c.on_event(
            &Event {
                kind: "REGISTER_OK".into(),
                ..Event::default()
            },
            SystemTime::now(),
        );
        assert_eq!(c.state(), PhoneState::Online(Availability::Dnd));
        c.on_event(
            &Event {
                kind: "REGISTER_FAIL".into(),
                ..Event::default()
            },
            SystemTime::now(),
        );
        assert_eq!(c.state(), PhoneState::Offline);
    }

    fn reg(kind: &str, param: &str) -> Event {
        Event {
            kind: kind.into(),
            class: "register".into(),
            param: param.into(),
            ..Event::default()
        }
    }

    #[test]
    fn a_registration_lapse_during_a_call_stays_busy_until_the_call_ends() {
        let now = SystemTime::now();
        let mut c = Calls::new(Availability::Available, true);
        c.connected = true;
        c.on_event(&reg("REGISTER_OK", "200 OK"), now);
        c.on_event(
            &ev("CALL_INCOMING", "incoming", "sip:5@h", Some("s1"), ""),
            now,
        );
        c.on_event(
            &ev("CALL_ESTABLISHED", "incoming", "sip:5@h", Some("s1"), ""),
            now,
        );
        let id = c.list()[0].id.clone();
        c.take_events();
        c.on_event(&reg("REGISTER_FAIL", "503 Registrar Unavailable"), now);
        assert_eq!(c.take_events(), vec![], "still Busy");
        assert_eq!(c.state(), PhoneState::Online(Availability::Busy));
        assert_eq!(
            c.offline_reason().as_deref(),
            Some("the SIP account is not registered: 503 Registrar Unavailable")
        );
        c.on_event(
            &ev("CALL_CLOSED", "incoming", "sip:5@h", Some("s1"), "bye"),
            now,
        );
        assert_eq!(
            brief(&c.take_events(), &[&id]),
            ["CallDisconnected c0 bye", "StateChanged Offline"]
        );
        assert_eq!(
            c.status().last_error.as_deref(),
            Some("registration failed: 503 Registrar Unavailable")
        );
        c.on_event(&reg("REGISTER_OK", "200 OK"), now);
        assert_eq!(c.offline_reason(), None);
        assert_eq!(c.status().link.as_deref(), Some("registered"));
        assert!(c.status().last_error.is_some(), "the last failure stays");
    }

    #[test]
    fn a_dial_answered_late_keeps_its_call() {
        let now = SystemTime::now();
        let mut c = online();
        let uri = "sip:2001@r";
        let id = c.dial_started(uri, "2001", now);
        assert!(c.dial_unsettled(&id, "t1".into()));
        assert_eq!(
            brief(&c.take_events(), &[&id]),
            ["CallingOut c0 2001", "StateChanged Busy"]
        );
        // Events that come later bind to the same call.
        c.on_event(&ev("CALL_RINGING", "outgoing", uri, Some("x1"), ""), now);
        assert!(c.dial_settled("t1", true, ""));
        assert!(!c.dial_settled("t1", true, ""), "settled once");
        c.on_event(
            &ev("CALL_ESTABLISHED", "outgoing", uri, Some("x1"), ""),
            now,
        );
        assert_eq!(brief(&c.take_events(), &[&id]), ["CallConnected c0"]);
        // A dial refused late ends its call with baresip's reason.
        let id2 = c.dial_started("sip:2002@r", "2002", now);
        assert!(c.dial_unsettled(&id2, "t2".into()));
        assert!(c.dial_settled("t2", false, "invalid URI"));
        assert_eq!(
            brief(&c.take_events(), &[&id, &id2]),
            ["CallingOut c1 2002", "CallDisconnected c1 invalid URI"]
        );
        // A dial whose call is gone (connection lost) cannot be kept.
        let id3 = c.dial_started("sip:2003@r", "2003", now);
        c.suspend();
        assert!(!c.dial_unsettled(&id3, "t3".into()));
    }

    #[test]
    fn user_parts() {
        for (uri, want) in [
            ("sip:1002@127.0.0.1:5080", "1002"),
            ("sips:+358401234567@pbx;transport=tls", "+358401234567"),
            ("tel:+3581234", "+3581234"),
            ("weird", "weird"),
        ] {
            assert_eq!(user_part(uri), want);
        }
    }
}
