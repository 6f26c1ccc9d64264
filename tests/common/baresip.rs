//! Test support for the baresip backend: a second baresip as the remote party, driven
//! over its own ctrl_tcp, and the flags that make bapiws manage a baresip.
//!
//! Everything stays on loopback: SIP, RTP and ctrl_tcp bind 127.0.0.1, and DNS points at
//! 127.0.0.1 so libre's resolver sends nothing elsewhere.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use bapiws::phone::baresip::ctrl::{Event, Frame, Response, parse_frame};
use bapiws::phone::baresip::netstring::{Decoder, encode};
use bapiws::phone::baresip::{BaresipSettings, process};

use super::TempDir;

/// Ports for one test: the phone bapiws manages and the remote party.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub phone_sip: u16,
    pub phone_ctrl: u16,
    pub phone_rtp: u16,
    pub remote_sip: u16,
    pub remote_ctrl: u16,
    pub remote_rtp: u16,
}

impl Ports {
    /// A block of 40 ports no other test in this process uses (up to 25 tests), below the kernel's
    /// ephemeral range (32768 and up), spread by process id and time so that concurrent
    /// test runs rarely meet (the managed backend refuses a taken control port).
    pub fn next() -> Ports {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        static RUN: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
        let run = *RUN.get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            ((std::process::id() ^ nanos) % 20) as u16
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 25;
        let base = 12000 + run * 1000 + n * 40;
        Ports {
            phone_sip: base,
            phone_ctrl: base + 2,
            phone_rtp: base + 20,
            remote_sip: base + 10,
            remote_ctrl: base + 12,
            remote_rtp: base + 30,
        }
    }

    /// `bapiws serve` flags for a managed baresip phone with number 1001 that dials the
    /// remote party's address.
    pub fn serve_flags(&self) -> Vec<String> {
        let remote = format!("127.0.0.1:{}", self.remote_sip);
        self.managed_flags(&self.phone_uri(), &remote, Vec::new())
    }

    /// `bapiws serve` flags for a managed baresip phone on these ports, loopback only, with
    /// test audio: account `account`, dialling `sip:NUMBER@dial_host`, plus `extra` flags.
    pub fn managed_flags(
        &self,
        account: &str,
        dial_host: &str,
        extra: Vec<(&'static str, String)>,
    ) -> Vec<String> {
        let flags = [
            ("--default-backend", "baresip".to_owned()),
            ("--baresip-account", account.to_owned()),
            (
                "--baresip-sip-listen",
                format!("127.0.0.1:{}", self.phone_sip),
            ),
            (
                "--baresip-ctrl-address",
                format!("127.0.0.1:{}", self.phone_ctrl),
            ),
            (
                "--baresip-rtp-ports",
                format!("{}-{}", self.phone_rtp, self.phone_rtp + 9),
            ),
            ("--baresip-audio-source", "ausine,440".to_owned()),
            ("--baresip-audio-player", "aubridge,nil".to_owned()),
            ("--baresip-dial-uri", format!("sip:{{number}}@{dial_host}")),
            ("--baresip-dns-server", "127.0.0.1:53".to_owned()),
            ("--baresip-net-interface", "127.0.0.1".to_owned()),
        ];
        flags
            .into_iter()
            .chain(extra)
            .flat_map(|(k, v)| [k.to_owned(), v])
            .collect()
    }

    /// The phone's SIP URI, as the remote party dials it.
    pub fn phone_uri(&self) -> String {
        format!("sip:1001@127.0.0.1:{}", self.phone_sip)
    }
}

/// Fails the test (never skips it) when baresip is not installed.
pub fn require_baresip() {
    let found = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "baresip is not installed; these tests need it: apt-get install baresip-core"
    );
}

/// The remote party: a baresip with number 1002 that answers only when told.
pub struct Remote {
    child: Child,
    ctrl: TcpStream,
    decoder: Decoder,
    events: VecDeque<Event>,
    next_token: u64,
    _dir: TempDir,
}

impl Remote {
    pub fn start(ports: &Ports) -> Remote {
        Remote::start_traced(ports, None)
    }

    /// As [`Remote::start`]; with `sip_log`, the remote writes every SIP message it sends
    /// and receives (baresip's `-s`, SIP trace) to that file.
    pub fn start_traced(ports: &Ports, sip_log: Option<&std::path::Path>) -> Remote {
        Remote::start_with(ports, sip_log, &[], "")
    }

    /// As [`Remote::start_traced`], with `config` lines added to the remote's config
    /// (modules and their settings) and `account_params` to its account line (e.g.
    /// `;mediaenc=srtp-mand`).
    pub fn start_with(
        ports: &Ports,
        sip_log: Option<&std::path::Path>,
        config: &[String],
        account_params: &str,
    ) -> Remote {
        require_baresip();
        let dir = TempDir::new("remote");
        let settings = BaresipSettings {
            account: format!("sip:1002@127.0.0.1:{}", ports.remote_sip),
            sip_listen: Some(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                ports.remote_sip,
            ))),
            ctrl_address: SocketAddr::from(([127, 0, 0, 1], ports.remote_ctrl)),
            rtp_ports: Some((ports.remote_rtp, ports.remote_rtp + 9)),
            audio_source: "ausine,880".into(),
            audio_player: "aubridge,nil".into(),
            dns_server: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 53))),
            net_interface: Some("127.0.0.1".into()),
            ..BaresipSettings::default()
        };
        process::write_config(dir.path(), &settings).expect("remote config");
        if !config.is_empty() {
            let file = dir.path().join("config");
            let text = std::fs::read_to_string(&file).expect("remote config") + &config.join("\n");
            std::fs::write(&file, text + "\n").expect("remote config");
        }
        // The remote's account goes in its file (bapiws gives its own with `uanew`).
        std::fs::write(
            dir.path().join("accounts"),
            process::account_line(&settings) + account_params + "\n",
        )
        .expect("remote accounts");
        let stdout = match sip_log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("sip log")),
            None => Stdio::null(),
        };
        let child = Command::new("baresip")
            .args(sip_log.map(|_| "-s"))
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("start the remote baresip");
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            match TcpStream::connect(settings.ctrl_address) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("remote baresip ctrl_tcp: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        ctrl.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Remote {
            child,
            ctrl,
            decoder: Decoder::default(),
            events: VecDeque::new(),
            next_token: 0,
            _dir: dir,
        }
    }

    fn read_frame(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if let Ok(Some(payload)) = self.decoder.next_frame() {
                if let Some(frame) = parse_frame(&payload) {
                    return Some(frame);
                }
                continue;
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut buf = [0u8; 8192];
            match self.ctrl.read(&mut buf) {
                Ok(0) => panic!("the remote baresip closed its control connection"),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    /// Runs a command and returns its response.
    pub fn command(&mut self, command: &str, params: Option<&str>) -> Response {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let mut req = serde_json::json!({"command": command, "token": token});
        if let Some(p) = params {
            req["params"] = serde_json::Value::String(p.to_owned());
        }
        self.ctrl
            .write_all(&encode(req.to_string().as_bytes()))
            .expect("write to the remote");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.read_frame(deadline) {
                Some(Frame::Response(r)) if r.token == token => return r,
                Some(Frame::Response(_)) => {}
                Some(Frame::Event(e)) => self.events.push_back(e),
                None => panic!("the remote baresip did not answer {command}"),
            }
        }
    }

    /// Waits for the next call event of this type (other events are skipped).
    pub fn wait_event(&mut self, kind: &str, limit: Duration) -> Event {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events.pop_front() {
                if e.kind == kind {
                    return e;
                }
                continue;
            }
            match self.read_frame(deadline) {
                Some(Frame::Event(e)) => self.events.push_back(e),
                Some(Frame::Response(_)) => {}
                None => panic!("the remote baresip raised no {kind} within {limit:?}"),
            }
        }
    }

    /// Dials the phone.
    pub fn dial(&mut self, uri: &str) {
        let r = self.command("dial", Some(uri));
        assert!(r.ok, "remote dial: {r:?}");
    }

    /// Answers (the current call) or hangs up (the call with this SIP id).
    pub fn accept(&mut self) {
        assert!(self.command("accept", None).ok);
    }

    pub fn hangup(&mut self, sip_id: Option<&str>) {
        if let Some(id) = sip_id {
            let r = self.command("callfind", Some(id));
            assert!(
                r.ok && !r.data.contains("not found"),
                "callfind {id}: {r:?}"
            );
        }
        assert!(self.command("hangup", None).ok);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the baresip that the server with `server_pid` runs, if any.
pub fn managed_baresip_pid(server_pid: u32) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some((comm_part, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(server_pid)
            && comm_part.ends_with("(baresip")
            && !rest.trim_start().starts_with('Z')
        {
            return Some(pid);
        }
    }
    None
}

/// Starts `bapiws serve` managing a baresip phone on `ports` (see [`Ports::serve_flags`]).
pub fn start(ports: &Ports) -> super::Server {
    require_baresip();
    let flags = ports.serve_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    super::Server::start(&flags)
}

/// Connects once the phone is in `state`: a probe connection polls GetState (up to
/// `limit`), so the returned connection sees no notification from before.
pub async fn connect_when(server: &super::Server, state: &str, limit: Duration) -> super::Ws {
    let mut probe = super::Ws::connect(&server.url).await;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = probe.control("GetState", serde_json::json!([])).await;
        if now == serde_json::json!(state) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the phone is {now}, not {state}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    super::Ws::connect(&server.url).await
}

/// [`connect_when`] the phone is Available, within 10 s.
pub async fn connect_when_ready(server: &super::Server) -> super::Ws {
    connect_when(server, "Available", Duration::from_secs(10)).await
}

/// Runs a blocking remote-party step without stalling the WebSocket client.
pub async fn remote<T: Send + 'static>(
    r: Remote,
    f: impl FnOnce(&mut Remote) -> T + Send + 'static,
) -> (Remote, T) {
    tokio::task::spawn_blocking(move || {
        let mut r = r;
        let out = f(&mut r);
        (r, out)
    })
    .await
    .expect("remote step")
}
