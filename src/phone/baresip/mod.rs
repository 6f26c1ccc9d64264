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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use super::{Availability, Command, Envelope, Events, PhoneError, PhoneHandle, Reply};
use calls::Calls;
use ctrl::{Connection, Frame, Response};

/// How baresip is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// bapiws starts baresip with a generated configuration and supervises it.
    Managed,
    /// bapiws connects to a baresip the user runs.
    Attach,
}

/// The baresip backend's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaresipSettings {
    /// Managed or attach.
    pub mode: Mode,
    /// Where ctrl_tcp listens (managed: where baresip is told to listen).
    pub ctrl_address: SocketAddr,
    /// The baresip program (managed).
    pub binary: PathBuf,
    /// The SIP account's address, `sip:user@domain` (managed).
    pub account: String,
    /// Authentication user (managed).
    pub auth_user: Option<String>,
    /// Authentication password (managed).
    pub auth_password: Option<String>,
    /// Whether to register with the account's registrar (managed).
    pub register: bool,
    /// Outbound proxy URI (managed).
    pub outbound_proxy: Option<String>,
    /// SIP transport: `udp`, `tcp` or `tls` (managed).
    pub transport: String,
    /// Local SIP address and port, `IP:PORT` (managed; baresip's default when unset).
    pub sip_listen: Option<String>,
    /// RTP port range, `FROM-TO` (managed).
    pub rtp_ports: Option<String>,
    /// Microphone, `driver,device` (managed).
    pub audio_source: String,
    /// Speaker, `driver,device` (managed).
    pub audio_player: String,
    /// What CallOut dials: `{number}` is replaced by the validated number and `{domain}`
    /// by the account's domain.
    pub dial_uri: String,
    /// DNS server, `IP:PORT` (managed; the system's when unset).
    pub dns_server: Option<String>,
    /// Network interface or address (managed).
    pub net_interface: Option<String>,
    /// Folder of baresip's modules (managed).
    pub module_path: Option<PathBuf>,
    /// The availability reported while baresip is online and idle.
    pub availability: Availability,
    /// How long one command to baresip may take.
    pub command_timeout: Duration,
}

impl Default for BaresipSettings {
    fn default() -> Self {
        BaresipSettings {
            mode: Mode::Managed,
            ctrl_address: SocketAddr::from(([127, 0, 0, 1], 4444)),
            binary: PathBuf::from("baresip"),
            account: "sip:bapiws@127.0.0.1".into(),
            auth_user: None,
            auth_password: None,
            register: false,
            outbound_proxy: None,
            transport: "udp".into(),
            sip_listen: None,
            rtp_ports: None,
            audio_source: "alsa,default".into(),
            audio_player: "alsa,default".into(),
            dial_uri: "sip:{number}@{domain}".into(),
            dns_server: None,
            net_interface: None,
            module_path: default_module_path(),
            availability: Availability::Available,
            command_timeout: Duration::from_secs(5),
        }
    }
}

#[cfg(target_os = "linux")]
fn default_module_path() -> Option<PathBuf> {
    Some(PathBuf::from("/usr/lib/baresip/modules"))
}

#[cfg(not(target_os = "linux"))]
fn default_module_path() -> Option<PathBuf> {
    None
}

impl BaresipSettings {
    /// The account's domain: the host part of `account`.
    pub fn domain(&self) -> &str {
        let after = self.account.split_once('@').map_or("", |(_, d)| d);
        after.split([';', '>']).next().unwrap_or(after)
    }

    /// The URI CallOut dials for a validated number.
    pub fn dial_uri_for(&self, number: &str) -> String {
        self.dial_uri
            .replace("{number}", number)
            .replace("{domain}", self.domain())
    }
}

/// First and longest wait between attempts to reach baresip.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long baresip gets to open its control port after it starts.
const START_WAIT: Duration = Duration::from_secs(5);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);

/// Starts the backend task.
pub fn spawn(settings: BaresipSettings, events: Events) -> PhoneHandle {
    let (handle, commands) = PhoneHandle::channel();
    let actor = Actor {
        calls: Calls::new(settings.availability, settings.register),
        config_dir: process::config_dir(&settings.ctrl_address.port().to_string()),
        s: settings,
        events,
        conn: None,
        child: None,
        backoff: BACKOFF_MIN,
        next_attempt: Instant::now(),
        connected_at: None,
    };
    tokio::spawn(actor.run(commands));
    handle
}

struct Actor {
    s: BaresipSettings,
    events: Events,
    calls: Calls,
    conn: Option<Connection>,
    child: Option<Child>,
    backoff: Duration,
    next_attempt: Instant,
    connected_at: Option<Instant>,
    config_dir: PathBuf,
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
            let disconnected = self.conn.is_none();
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
                    // Events first, then the answer (see the phone module's contract).
                    self.flush();
                    let _ = reply_to.send(result);
                }
                frame = next_frame(&mut self.conn) => match frame {
                    Some(Frame::Event(e)) => self.calls.on_event(&e, SystemTime::now()),
                    Some(Frame::Response(r)) => {
                        tracing::debug!(token = %r.token, "late response from baresip ignored");
                    }
                    None => self.lost("baresip closed the control connection"),
                },
                status = child_exit(&mut self.child) => {
                    tracing::warn!(%status, "baresip exited");
                    self.child = None;
                    self.lost("baresip exited");
                }
                _ = retry_at(disconnected, self.next_attempt) => self.attempt().await,
            }
        }
        self.stop().await;
    }

    fn flush(&mut self) {
        for e in self.calls.take_events() {
            self.events.emit(e);
        }
    }

    /// Connects, starting baresip first in managed mode.
    async fn attempt(&mut self) {
        if self.s.mode == Mode::Managed && self.child.is_none() {
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
                    self.schedule_retry();
                    return;
                }
            }
        }
        let deadline = Instant::now() + START_WAIT;
        let conn = loop {
            match Connection::connect(self.s.ctrl_address).await {
                Ok(c) => break Some(c),
                Err(_) if Instant::now() < deadline && self.s.mode == Mode::Managed => {
                    sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    tracing::warn!(address = %self.s.ctrl_address, error = %e, "cannot reach baresip's control port");
                    break None;
                }
            }
        };
        let Some(conn) = conn else {
            if let Some(mut child) = self.child.take() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            self.schedule_retry();
            return;
        };
        tracing::info!(address = %self.s.ctrl_address, "connected to baresip");
        self.conn = Some(conn);
        self.connected_at = Some(Instant::now());
        self.calls.connected = true;
        // Resynchronise: baresip does not replay what happened while nobody listened.
        if let Ok(r) = self.request("listcalls", None).await {
            let known = self.calls.len();
            let active = count_calls(&r.data);
            if active > known {
                tracing::warn!(
                    active,
                    known,
                    "baresip has calls this server did not see start; they are not reported"
                );
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// The connection is gone: every call ends, the phone is offline, retry later.
    fn lost(&mut self, why: &str) {
        if self.conn.take().is_some() || self.calls.connected {
            tracing::warn!(reason = why, "lost baresip");
        }
        self.calls.connection_lost();
        if self
            .connected_at
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE)
        {
            self.backoff = BACKOFF_MIN;
        }
        self.schedule_retry();
    }

    /// Sends a command and waits for its response, applying events that come meanwhile.
    async fn request(
        &mut self,
        command: &str,
        params: Option<&str>,
    ) -> Result<Response, PhoneError> {
        let unavailable = |why: &str| PhoneError::Unavailable(why.to_owned());
        let Some(conn) = self.conn.as_mut() else {
            return Err(unavailable("baresip is not connected"));
        };
        let token = match conn.send(command, params).await {
            Ok(t) => t,
            Err(e) => {
                self.lost(&format!("write failed: {e}"));
                return Err(unavailable("the connection to baresip broke"));
            }
        };
        let deadline = Instant::now() + self.s.command_timeout;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(unavailable("baresip is not connected"));
            };
            match timeout_at(deadline, conn.frames.recv()).await {
                Err(_) => {
                    tracing::warn!(command, "baresip did not answer in time");
                    return Err(unavailable(&format!(
                        "baresip did not answer {command} within {} s",
                        self.s.command_timeout.as_secs()
                    )));
                }
                Ok(None) => {
                    self.lost("baresip closed the control connection");
                    return Err(unavailable("the connection to baresip broke"));
                }
                Ok(Some(Frame::Event(e))) => self.calls.on_event(&e, SystemTime::now()),
                Ok(Some(Frame::Response(r))) if r.token == token => return Ok(r),
                Ok(Some(Frame::Response(_))) => {}
            }
        }
    }

    fn require_online(&self) -> Result<(), PhoneError> {
        if self.calls.online() {
            Ok(())
        } else if self.calls.connected {
            Err(PhoneError::Unavailable(
                "the SIP account is not registered".into(),
            ))
        } else {
            Err(PhoneError::Unavailable("baresip is not reachable".into()))
        }
    }

    async fn handle(&mut self, command: Command) -> Result<Reply, PhoneError> {
        match command {
            Command::GetState => Ok(Reply::State(self.calls.state())),
            Command::GetCalls => Ok(Reply::Calls(self.calls.list())),
            Command::CallOut(number) => {
                self.require_online()?;
                let uri = self.s.dial_uri_for(number.as_str());
                let id = self
                    .calls
                    .dial_started(&uri, number.as_str(), SystemTime::now());
                match self.request("dial", Some(&uri)).await {
                    Ok(r) if r.ok => {
                        self.calls.dial_confirmed(&id);
                        Ok(Reply::Call(id))
                    }
                    Ok(r) => {
                        self.calls.dial_failed(&id);
                        Err(PhoneError::Refused(clean(&r.data)))
                    }
                    Err(e) => {
                        self.calls.dial_failed(&id);
                        Err(e)
                    }
                }
            }
            Command::Answer => {
                self.require_online()?;
                let (_, sip_id) = self
                    .calls
                    .answer_target()
                    .ok_or_else(|| PhoneError::NoSuchCall("no ringing inbound call".into()))?;
                self.select_call(&sip_id).await?;
                self.simple("accept").await
            }
            Command::HangUp => {
                self.require_online()?;
                let (_, sip_id) = self
                    .calls
                    .hangup_target()
                    .ok_or_else(|| PhoneError::NoSuchCall("no active call".into()))?;
                match sip_id {
                    Some(sip_id) => self.select_call(&sip_id).await?,
                    // A call not yet identified by baresip can only be told apart when it
                    // is the only one, as baresip's current call.
                    None if self.calls.len() > 1 => {
                        return Err(PhoneError::Refused(
                            "the phone has not identified the call yet; try again".into(),
                        ));
                    }
                    None => {}
                }
                self.simple("hangup").await
            }
            Command::Simulate(_) => Err(PhoneError::Unsupported),
            Command::Shutdown => Ok(Reply::Done),
        }
    }

    /// Makes the call with this SIP Call-ID baresip's current call.
    async fn select_call(&mut self, sip_id: &str) -> Result<(), PhoneError> {
        let r = self.request("callfind", Some(sip_id)).await?;
        if r.ok && !r.data.contains("not found") {
            Ok(())
        } else {
            Err(PhoneError::NoSuchCall(
                "the phone no longer has this call".into(),
            ))
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
        self.calls.connection_lost();
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

/// The number in `listcalls`' "--- Active calls (N) ---".
fn count_calls(data: &str) -> usize {
    data.split("Active calls (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
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
        assert_eq!(count_calls("\n--- Active calls (2) ---\n> [line 1]"), 2);
        assert_eq!(count_calls("\n--- Active calls (0) ---\n\n"), 0);
        assert_eq!(count_calls("garbage"), 0);
    }
}
