//! The `baresip` backend: a real SIP softphone, driven over baresip's ctrl_tcp protocol.
//!
//! - [`netstring`]: the framing; [`ctrl`]: the ctrl_tcp client (commands by token,
//!   events); [`calls`]: the call list kept from baresip's events (pure, tested as
//!   tables); [`process`]: managed mode's generated configuration and child process.
//! - This module: the settings and the backend task, which connects (starting baresip
//!   itself in managed mode), reconnects with backoff, and carries out commands. Every
//!   command to baresip has a timeout, and only validated values reach it: a number that
//!   passed CallOut's validation, put into the configured dial URI template.

pub mod calls;
pub mod ctrl;
pub mod netstring;
pub mod process;
mod settings;

pub use settings::{Args, BaresipSettings, Mode};
/// This backend's resolved settings.
pub type Settings = BaresipSettings;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use super::{CallAction, CallId, Command, Envelope, Events, PhoneError, PhoneHandle, Reply};
use calls::Calls;
use ctrl::{Connection, Frame, Response};

/// Connects to the control port, retrying for up to `patience` (while a managed baresip
/// starts up).
async fn connect(address: std::net::SocketAddr, patience: Duration) -> Option<Connection> {
    let deadline = Instant::now() + patience;
    loop {
        let tried = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(address)).await;
        let error = match tried {
            Ok(Ok(c)) => return Some(c),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if Instant::now() >= deadline {
            tracing::warn!(%address, %error, "cannot reach baresip's control port");
            return None;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// First and longest wait between attempts to reach baresip.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long baresip gets to open its control port after it starts.
const START_WAIT: Duration = Duration::from_secs(5);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// How long one connection attempt to the control port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait, when the control connection closes, for our baresip's exit.
const EXIT_GRACE: Duration = Duration::from_millis(300);
/// How long an answered call may take to connect.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// Starts the backend task.
pub fn spawn(settings: BaresipSettings, events: Events) -> PhoneHandle {
    let (handle, commands, snapshot) = PhoneHandle::channel();
    if settings.mode == Mode::Managed {
        process::remove_stale_dirs();
    }
    let actor = Actor {
        snapshot,
        calls: Calls::new(settings.availability, settings.register),
        config_dir: process::config_dir(&settings.ctrl_address.port().to_string()),
        s: settings,
        events,
        conn: None,
        child: None,
        backoff: BACKOFF_MIN,
        next_attempt: Instant::now(),
        connected_at: None,
        connecting: None,
    };
    tokio::spawn(actor.run(commands));
    handle
}

struct Actor {
    snapshot: std::sync::Arc<super::Snapshot>,
    s: BaresipSettings,
    events: Events,
    calls: Calls,
    conn: Option<Connection>,
    child: Option<Child>,
    backoff: Duration,
    next_attempt: Instant,
    connected_at: Option<Instant>,
    config_dir: PathBuf,
    /// A connection attempt under way, in its own task so that commands meanwhile fail
    /// at once instead of waiting behind it.
    connecting: Option<JoinHandle<Option<Connection>>>,
}

async fn attempt_done(
    connecting: &mut Option<JoinHandle<Option<Connection>>>,
) -> Option<Connection> {
    match connecting {
        Some(task) => task.await.ok().flatten(),
        None => std::future::pending().await,
    }
}

async fn next_frame(conn: &mut Option<Connection>) -> Option<Frame> {
    match conn {
        Some(c) => c.frames.recv().await,
        None => std::future::pending().await,
    }
}

async fn child_exit(child: &mut Option<Child>) -> String {
    match child {
        Some(c) => match c.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        },
        None => std::future::pending().await,
    }
}

async fn retry_at(disconnected: bool, at: Instant) {
    if disconnected {
        sleep_until(at).await
    } else {
        std::future::pending().await
    }
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Envelope>) {
        loop {
            self.flush();
            let disconnected = self.conn.is_none() && self.connecting.is_none();
            tokio::select! {
                cmd = commands.recv() => {
                    let Some((command, reply_to)) = cmd else { break };
                    if command == Command::Shutdown {
                        self.stop().await;
                        self.flush();
                        let _ = reply_to.send(Ok(Reply::Done));
                        return;
                    }
                    let result = self.handle(command).await;
                    self.refresh_holds().await;
                    // Events first, then the answer (see the phone module's contract).
                    self.flush();
                    let _ = reply_to.send(result);
                }
                frame = next_frame(&mut self.conn) => match frame {
                    Some(Frame::Event(e)) => {
                        self.calls.on_event(&e, SystemTime::now());
                        self.refresh_holds().await;
                    }
                    Some(Frame::Response(r)) => self.late_response(&r),
                    None => self.control_closed().await,
                },
                status = child_exit(&mut self.child) => {
                    tracing::warn!(%status, "baresip exited");
                    self.child = None;
                    if let Some(task) = self.connecting.take() {
                        task.abort();
                    }
                    self.gone();
                }
                conn = attempt_done(&mut self.connecting) => {
                    self.connecting = None;
                    self.connected(conn).await;
                }
                _ = retry_at(disconnected, self.next_attempt) => self.attempt(),
            }
        }
        self.stop().await;
    }

    fn flush(&mut self) {
        let events = self.calls.take_events();
        self.snapshot.publish_status(&self.calls.status());
        self.snapshot
            .publish_if_changed(self.calls.state(), &self.calls.list());
        for e in events {
            self.events.emit(e);
        }
    }

    /// Starts connecting (in its own task), starting baresip first in managed mode.
    fn attempt(&mut self) {
        if self.s.mode == Mode::Managed && self.child.is_none() {
            // baresip starts even when it cannot open its control port, and we would then
            // talk to whatever holds it: make sure the port is free first.
            if let Err(e) = std::net::TcpListener::bind(self.s.ctrl_address) {
                tracing::error!(address = %self.s.ctrl_address, error = %e, "baresip's control port is taken by another program");
                self.gone();
                return;
            }
            let started = process::write_config(&self.config_dir, &self.s)
                .and_then(|()| process::start(&self.s.binary, &self.config_dir));
            match started {
                Ok(child) => {
                    tracing::info!(
                        binary = %self.s.binary.display(),
                        config = %self.config_dir.display(),
                        "started baresip"
                    );
                    self.child = Some(child);
                }
                Err(e) => {
                    tracing::error!(binary = %self.s.binary.display(), error = %e, "cannot start baresip");
                    self.calls.last_failure = Some(if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "cannot start baresip: {} not found; install it (Debian: apt install baresip-core) or set baresip.binary",
                            self.s.binary.display()
                        )
                    } else {
                        format!("cannot start baresip: {e}")
                    });
                    self.gone();
                    return;
                }
            }
        }
        let address = self.s.ctrl_address;
        // Managed: baresip needs a moment to open its control port.
        let patience = if self.child.is_some() {
            START_WAIT
        } else {
            Duration::ZERO
        };
        self.connecting = Some(tokio::spawn(connect(address, patience)));
    }

    /// A connection attempt ended: resynchronise on success, give up on failure.
    async fn connected(&mut self, conn: Option<Connection>) {
        let Some(conn) = conn else {
            if let Some(mut child) = self.child.take() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            self.gone();
            return;
        };
        tracing::info!(address = %self.s.ctrl_address, "connected to baresip");
        self.conn = Some(conn);
        self.connected_at = Some(Instant::now());
        self.calls.connected = true;
        // Resynchronise: baresip does not replay what happened while nobody listened.
        let aor = self.s.account.split(';').next().unwrap_or(&self.s.account);
        let aor = aor.to_owned();
        if let Ok(r) = self.request("reginfo", None).await {
            let listed = clean_lines(&r.data).any(|l| l.contains(aor.as_str()));
            if self.s.mode == Mode::Managed && !listed {
                self.add_account().await;
            } else if self.s.register {
                self.calls.registered = registration(&r.data, &aor);
            }
        }
        if let Ok(r) = self.request("listcalls", None).await {
            self.calls.reconcile(listed_peers(&r.data));
        }
    }

    /// Gives a managed baresip its account over the control connection (`uanew`), so that
    /// the password is never written to disk. baresip's answer repeats the account line,
    /// password included: it is never logged.
    async fn add_account(&mut self) {
        let line = process::account_line(&self.s);
        match self.request("uanew", Some(&line)).await {
            Ok(r) if r.ok => tracing::info!(account = %self.s.account, "account added to baresip"),
            Ok(_) => {
                tracing::error!(account = %self.s.account, "baresip refused the account");
                self.calls.last_failure = Some("baresip refused the account".into());
            }
            Err(e) => tracing::warn!(error = %e, "could not add the account to baresip"),
        }
    }

    /// A response that no command waits for any more: a dial that timed out is settled
    /// by it; anything else is dropped.
    fn late_response(&mut self, r: &Response) {
        if self.calls.dial_settled(&r.token, r.ok, &clean(&r.data)) {
            tracing::info!(token = %r.token, ok = r.ok, "baresip answered a dial late");
        } else {
            tracing::debug!(token = %r.token, "late response from baresip ignored");
        }
    }

    /// Reads the calls' hold states from baresip when a change may have moved them.
    async fn refresh_holds(&mut self) {
        if !self.calls.take_holds_due() {
            return;
        }
        if let Ok(r) = self.request("listcalls", None).await {
            self.calls.apply_holds(&listed_holds(&r.data));
        }
    }

    fn schedule_retry(&mut self) {
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// The control connection dropped: offline until reconnected; calls are kept until
    /// then, since baresip may still have them.
    fn disconnected(&mut self, why: &str) {
        if self.conn.take().is_none() {
            return;
        }
        tracing::warn!(reason = why, "lost the connection to baresip");
        self.calls.suspend();
        if self
            .connected_at
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE)
        {
            self.backoff = BACKOFF_MIN;
        }
        self.schedule_retry();
    }

    /// The control connection closed: if our baresip exited (killed, crashed), its calls
    /// have ended; otherwise (another client took the connection) they may live on.
    async fn control_closed(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Ok(status)) = tokio::time::timeout(EXIT_GRACE, child.wait()).await
        {
            tracing::warn!(%status, "baresip exited");
            self.child = None;
            self.gone();
            return;
        }
        self.disconnected("baresip closed the control connection");
    }

    /// baresip is gone (exited, or unreachable): its calls have ended.
    fn gone(&mut self) {
        if self.conn.is_some() {
            self.disconnected("baresip is gone");
        } else if Instant::now() >= self.next_attempt {
            self.schedule_retry();
        }
        self.calls.end_all();
    }

    /// Sends a command and waits for its response, applying events that come meanwhile.
    async fn request(
        &mut self,
        command: &str,
        params: Option<&str>,
    ) -> Result<Response, PhoneError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(PhoneError::Unavailable("baresip is not connected".into()));
        };
        let token = match conn.send(command, params).await {
            Ok(t) => t,
            Err(e) => {
                self.disconnected(&format!("write failed: {e}"));
                return Err(PhoneError::Unavailable(
                    "the connection to baresip broke".into(),
                ));
            }
        };
        self.response(&token, command).await
    }

    /// Waits for the response with this token, applying events that come meanwhile.
    async fn response(&mut self, token: &str, command: &str) -> Result<Response, PhoneError> {
        let unavailable = |why: &str| PhoneError::Unavailable(why.to_owned());
        let deadline = Instant::now() + self.s.command_timeout;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(unavailable("baresip is not connected"));
            };
            match timeout_at(deadline, conn.frames.recv()).await {
                Err(_) => {
                    tracing::warn!(command, "baresip did not answer in time");
                    return Err(unavailable(&format!(
                        "baresip did not answer {command} within {} ms",
                        self.s.command_timeout.as_millis()
                    )));
                }
                Ok(None) => {
                    self.disconnected("baresip closed the control connection");
                    return Err(unavailable("the connection to baresip broke"));
                }
                Ok(Some(Frame::Event(e))) => self.calls.on_event(&e, SystemTime::now()),
                Ok(Some(Frame::Response(r))) if r.token == token => return Ok(r),
                Ok(Some(Frame::Response(r))) => self.late_response(&r),
            }
        }
    }

    fn require_connected(&self) -> Result<(), PhoneError> {
        if self.calls.connected {
            Ok(())
        } else {
            Err(PhoneError::Unavailable("baresip is not reachable".into()))
        }
    }

    fn require_online(&self) -> Result<(), PhoneError> {
        match self.calls.offline_reason() {
            None => Ok(()),
            Some(why) => Err(PhoneError::Unavailable(why)),
        }
    }

    async fn handle(&mut self, command: Command) -> Result<Reply, PhoneError> {
        match command {
            Command::CallOut(number) => {
                self.require_online()?;
                let uri = self.s.dial_uri_for(number.as_str());
                let id = self
                    .calls
                    .dial_started(&uri, number.as_str(), SystemTime::now());
                let sent = match self.conn.as_mut() {
                    Some(conn) => conn.send("dial", Some(&uri)).await,
                    None => Err(std::io::ErrorKind::NotConnected.into()),
                };
                let token = match sent {
                    Ok(token) => token,
                    Err(e) => {
                        self.calls.dial_failed(&id);
                        self.disconnected(&format!("write failed: {e}"));
                        return Err(PhoneError::Unavailable(
                            "the connection to baresip broke".into(),
                        ));
                    }
                };
                match self.response(&token, "dial").await {
                    Ok(r) if r.ok => {
                        self.calls.dial_confirmed(&id);
                        Ok(Reply::Call(id))
                    }
                    Ok(r) => {
                        self.calls.dial_failed(&id);
                        Err(PhoneError::Refused(clean(&r.data)))
                    }
                    // baresip has the dial but has not answered: it may still place the
                    // call, so the call is announced and tracked until baresip settles it
                    // (a refusal then ends it), rather than denied and placed anyway.
                    Err(e) if self.calls.dial_unsettled(&id, token) => {
                        tracing::warn!(error = %e, "baresip is slow to answer a dial; the call is reported and followed");
                        Ok(Reply::Call(id))
                    }
                    Err(e) => Err(e),
                }
            }
            Command::Answer => {
                // Ending or answering calls needs the connection, not the registration.
                self.require_connected()?;
                let (id, sip_id) = self
                    .calls
                    .answer_target()
                    .ok_or_else(|| PhoneError::NoSuchCall("no ringing inbound call".into()))?;
                self.answer(&id, &sip_id).await
            }
            Command::Call { call, action } => {
                self.require_connected()?;
                let id = super::pick_call(&self.calls.list(), call.as_ref(), &action)?;
                self.call_action(&id, action).await
            }
            Command::Mute(on) => {
                self.require_connected()?;
                if self.calls.is_empty() {
                    return Err(PhoneError::NoSuchCall("no active call".into()));
                }
                self.mute(on).await
            }
            Command::HangUp => {
                self.require_connected()?;
                let (_, sip_id) = self
                    .calls
                    .hangup_target()
                    .ok_or_else(|| PhoneError::NoSuchCall("no active call".into()))?;
                match sip_id {
                    Some(sip_id) => self.on_call(&sip_id, "hangup").await.map(|()| Reply::Done),
                    // A call not yet identified by baresip can only be told apart when it
                    // is the only one, as baresip's current call.
                    None if self.calls.len() > 1 => Err(PhoneError::Refused(
                        "the phone has not identified the call yet; try again".into(),
                    )),
                    None => self.simple("hangup").await,
                }
            }
            Command::Shutdown => Ok(Reply::Done),
        }
    }

    /// Answers the call with this SIP Call-ID and waits until it is connected.
    async fn answer(&mut self, id: &CallId, sip_id: &str) -> Result<Reply, PhoneError> {
        self.on_call(sip_id, "accept").await?;
        // baresip says ok even when it did not answer (two calls ringing): wait
        // for the call to connect.
        let deadline = Instant::now() + ANSWER_WAIT;
        while !self.calls.is_connected(id) {
            if !self.next_event_until(deadline).await {
                return Err(PhoneError::Refused(
                    "the phone did not answer the call".into(),
                ));
            }
        }
        Ok(Reply::Done)
    }

    /// A call-control extension on one call (already picked): `callfind`, then baresip's
    /// command; the resulting state is read back from baresip.
    async fn call_action(&mut self, id: &CallId, action: CallAction) -> Result<Reply, PhoneError> {
        let unidentified =
            || PhoneError::Refused("the phone has not identified the call yet; try again".into());
        let sip_id = self.calls.sip_id(id);
        match action {
            CallAction::Answer => {
                let sip_id = sip_id.ok_or_else(unidentified)?;
                self.answer(id, &sip_id).await
            }
            CallAction::HangUp => match sip_id {
                Some(sip_id) => self.on_call(&sip_id, "hangup").await.map(|()| Reply::Done),
                None if self.calls.len() > 1 => Err(unidentified()),
                None => self.simple("hangup").await,
            },
            CallAction::Hold | CallAction::Resume => {
                let hold = action == CallAction::Hold;
                let sip_id = sip_id.ok_or_else(unidentified)?;
                self.on_call(&sip_id, if hold { "hold" } else { "resume" })
                    .await?;
                // The state is what baresip lists afterwards, not what was asked.
                self.calls.holds_changed();
                self.refresh_holds().await;
                if self.calls.is_held(id) == hold {
                    Ok(Reply::Done)
                } else {
                    Err(PhoneError::Refused(format!(
                        "baresip did not {} the call",
                        if hold { "hold" } else { "resume" }
                    )))
                }
            }
            CallAction::Transfer(number) => {
                let sip_id = sip_id.ok_or_else(unidentified)?;
                let uri = self.s.dial_uri_for(number.as_str());
                self.on_call_with(&sip_id, "transfer", Some(&uri)).await?;
                self.calls.transferred(id, number.as_str());
                Ok(Reply::Done)
            }
            // baresip 1.0's control interface has no attended transfer.
            CallAction::TransferTo(_) => Err(PhoneError::Unsupported),
            CallAction::SendDtmf(digits) => {
                let sip_id = sip_id.ok_or_else(unidentified)?;
                self.on_call_with(&sip_id, "sndcode", Some(digits.as_str()))
                    .await
                    .map(|()| Reply::Done)
            }
        }
    }

    /// Mutes or unmutes baresip's current call. baresip's `mute` is a toggle that answers
    /// with the new state: it is sent only when the state reported last differs, and once
    /// more when baresip's answer shows the call was in the other state.
    async fn mute(&mut self, on: bool) -> Result<Reply, PhoneError> {
        if self.calls.muted() == on {
            return Ok(Reply::Done);
        }
        for _ in 0..2 {
            let r = self.request("mute", None).await?;
            let text = clean(&r.data).to_ascii_lowercase();
            if !r.ok {
                return Err(PhoneError::Refused(clean(&r.data)));
            }
            let now = if text.contains("un-muted") || text.contains("unmuted") {
                false
            } else if text.contains("muted") {
                true
            } else {
                return Err(PhoneError::Refused(format!(
                    "baresip's answer to mute was not understood: {}",
                    clean(&r.data)
                )));
            };
            self.calls.set_muted(now);
            if now == on {
                return Ok(Reply::Done);
            }
        }
        Err(PhoneError::Refused(
            "baresip did not change the mute state".into(),
        ))
    }

    /// Runs `command` on the call with this SIP Call-ID: `callfind` and the command are
    /// written together, so baresip runs them back to back and no other call can become
    /// current in between.
    async fn on_call(&mut self, sip_id: &str, command: &str) -> Result<(), PhoneError> {
        self.on_call_with(sip_id, command, None).await
    }

    /// [`Actor::on_call`] with the command's params (only validated values: a dial URI
    /// from the template, DTMF digits).
    async fn on_call_with(
        &mut self,
        sip_id: &str,
        command: &str,
        params: Option<&str>,
    ) -> Result<(), PhoneError> {
        let unavailable = || PhoneError::Unavailable("baresip is not connected".into());
        let conn = self.conn.as_mut().ok_or_else(unavailable)?;
        let sent = async {
            let find = conn.send("callfind", Some(sip_id)).await?;
            let act = conn.send(command, params).await?;
            Ok::<_, std::io::Error>((find, act))
        }
        .await;
        let (find, act) = match sent {
            Ok(tokens) => tokens,
            Err(e) => {
                self.disconnected(&format!("write failed: {e}"));
                return Err(unavailable());
            }
        };
        let found = self.response(&find, "callfind").await?;
        let done = self.response(&act, command).await?;
        if !found.ok || found.data.contains("not found") {
            return Err(PhoneError::NoSuchCall(
                "the phone no longer has this call".into(),
            ));
        }
        if done.ok {
            Ok(())
        } else {
            Err(PhoneError::Refused(clean(&done.data)))
        }
    }

    /// Reads frames (applying events) until the next event or `deadline`; false when
    /// the deadline passed or the connection broke.
    async fn next_event_until(&mut self, deadline: Instant) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        match timeout_at(deadline, conn.frames.recv()).await {
            Ok(Some(Frame::Event(e))) => {
                self.calls.on_event(&e, SystemTime::now());
                true
            }
            Ok(Some(Frame::Response(_))) => true,
            Ok(None) => {
                self.disconnected("baresip closed the control connection");
                false
            }
            Err(_) => false,
        }
    }

    async fn simple(&mut self, command: &str) -> Result<Reply, PhoneError> {
        let r = self.request(command, None).await?;
        if r.ok {
            Ok(Reply::Done)
        } else {
            Err(PhoneError::Refused(clean(&r.data)))
        }
    }

    /// Stops a managed baresip: `quit`, then a kill if it lingers.
    async fn stop(&mut self) {
        if let Some(task) = self.connecting.take() {
            task.abort();
        }
        if self.s.mode == Mode::Managed && self.conn.is_some() {
            let _ = self.request("quit", None).await;
        }
        self.conn = None;
        if let Some(mut child) = self.child.take() {
            let exited = tokio::time::timeout(Duration::from_secs(3), child.wait()).await;
            if exited.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            tracing::info!("stopped baresip");
        }
        self.calls.end_all();
        if self.s.mode == Mode::Managed {
            let _ = std::fs::remove_dir_all(&self.config_dir);
        }
    }
}

/// baresip's human text, without colour codes, trimmed and bounded.
fn clean(data: &str) -> String {
    let mut out = String::new();
    let mut chars = data.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip an ANSI sequence: ESC [ … letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if !c.is_control() || c == ' ' {
            out.push(c);
        } else {
            out.push(' ');
        }
    }
    let t = out.trim();
    if t.is_empty() {
        "baresip refused the command".to_owned()
    } else {
        t.chars().take(200).collect()
    }
}

/// The peer URIs of the calls in `listcalls`' output (one `[line N]` row per call, the
/// URI last).
fn listed_peers(data: &str) -> Vec<String> {
    clean_lines(data)
        .filter(|l| l.contains("[line"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

/// The peer URI of each call in `listcalls`' output, in order, and whether baresip
/// holds it (`(on hold)` in its row).
fn listed_holds(data: &str) -> Vec<(String, bool)> {
    clean_lines(data)
        .filter(|l| l.contains("[line"))
        .filter_map(|l| {
            let peer = l.split_whitespace().last()?.to_owned();
            Some((peer, l.contains("(on hold)")))
        })
        .collect()
}

/// The account's registration in `reginfo`'s output: its row says `OK` once
/// registered, `ERR` when registration failed (`zzz` while it is still going on).
fn registration(data: &str, account: &str) -> Option<bool> {
    let aor = account.split(';').next().unwrap_or(account);
    let row = clean_lines(data).find(|l| l.contains(aor))?;
    let mut tokens = row.split_whitespace();
    if tokens.any(|t| t == "OK") {
        return Some(true);
    }
    row.split_whitespace().any(|t| t == "ERR").then_some(false)
}

fn clean_lines(data: &str) -> impl Iterator<Item = String> + '_ {
    data.lines().map(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_uris() {
        let mut s = BaresipSettings {
            account: "sip:1001@pbx.example.com;transport=tcp".into(),
            ..BaresipSettings::default()
        };
        assert_eq!(s.domain(), "pbx.example.com");
        assert_eq!(
            s.dial_uri_for("+358401234567"),
            "sip:+358401234567@pbx.example.com"
        );
        s.dial_uri = "sip:{number}@127.0.0.1:5080".into();
        assert_eq!(s.dial_uri_for("1002"), "sip:1002@127.0.0.1:5080");
    }

    #[test]
    fn text_helpers() {
        assert_eq!(
            clean("\u{1b}[31mcall not found\u{1b}[;m\n"),
            "call not found"
        );
        assert_eq!(clean(""), "baresip refused the command");
        let calls = "\n--- Active calls (2) ---\n  [line 1]  0:00:03  ESTABLISHED             sip:b@127.0.0.1:5080\n> [line 2]  0:00:00   INCOMING             sip:c@127.0.0.1:5080\n\n";
        assert_eq!(
            listed_peers(calls),
            ["sip:b@127.0.0.1:5080", "sip:c@127.0.0.1:5080"]
        );
        assert!(listed_peers("\n--- Active calls (0) ---\n\n").is_empty());
        let held = "\n--- Active calls (2) ---\n  [line 1]  0:00:09  ESTABLISHED (on hold)  sip:2001@r\n> [line 2]  0:00:02  ESTABLISHED  sip:2002@r\n\n";
        assert_eq!(
            listed_holds(held),
            [
                ("sip:2001@r".to_owned(), true),
                ("sip:2002@r".to_owned(), false)
            ]
        );
        let reg = |status: &str| {
            format!(
                "\n--- User Agents (1) ---\n> sip:1001@pbx.example.com             \u{1b}[32m{status}\u{1b}[;m pbx.example.com\n\n"
            )
        };
        let acct = "sip:1001@pbx.example.com;transport=tcp";
        assert_eq!(registration(&reg("OK "), acct), Some(true));
        assert_eq!(registration(&reg("ERR"), acct), Some(false));
        assert_eq!(registration(&reg("zzz"), acct), None);
        assert_eq!(registration("\n--- User Agents (0) ---\n", acct), None);
    }
}
