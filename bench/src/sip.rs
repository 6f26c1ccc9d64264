//! How fast and how heavy the phone is (`bapiws-bench all --only sip`), side by side:
//! bapiws managing a real baresip, and bapiws's own `sip` backend, each without a
//! registrar, against a minimal SIP far end in this harness on UDP 127.0.0.1 that
//! timestamps what it sends and receives.
//!
//! - In: the peer sends an INVITE to the phone (timestamp just before `send_to`) and the
//!   WebSocket client times the `CallComing`; the peer also times the phone's
//!   `180 Ringing` (both phones send it when they raise the call), which splits the figure
//!   into the phone's SIP part and the part after it. Then `HangUp` (the phone answers
//!   486, the peer ACKs it).
//! - Out: the client sends `CallOut` (timestamp before the write) and the peer times the
//!   INVITE's arrival (a blocking receive on its own thread); it answers 486 at once.
//! - Media: the client places `concurrent` calls, the peer answers each with SDP (PCMU)
//!   and sends each call 50 RTP packets a second from its own port pair while counting
//!   what the phone sends; the calls are held for `hold`, and the CPU time of bapiws and
//!   its children (baresip) over that window, minus the same process tree's CPU over an
//!   idle window before the calls (scaled to the same length), is divided by the calls;
//!   so is the resident memory with the calls up minus the idle figure.
//!
//! Everything goes to 127.0.0.1: the peer sends RTP only to loopback addresses from the
//! phone's SDP and stops at the end of each run; every loop is bounded in count and time.
//! baresip is not in `all` or `smoke` (it needs `apt-get install baresip-core`); the
//! `sip` backend alone runs briefly in `smoke`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bapiws::client::Client;
use serde_json::{Value, json};

use crate::process::{Kind, Programs, Server};

/// Which phone bapiws drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phone {
    /// A managed baresip child.
    Baresip,
    /// The built-in `sip` backend.
    Sip,
}

impl Phone {
    pub fn name(self) -> &'static str {
        match self {
            Phone::Baresip => "baresip",
            Phone::Sip => "sip",
        }
    }
}

/// How much to do in one run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub warmup: usize,
    pub calls: usize,
    pub concurrent: usize,
    pub hold: Duration,
    pub idle: Duration,
}

/// Most calls at once either phone is configured for here (both default to 4).
const MAX_CALLS: usize = 16;
/// The least time between two INVITEs to the phone: the `sip` backend takes 20 new
/// INVITEs a second (a flood limit); both phones get the same pace.
const INVITE_GAP: Duration = Duration::from_millis(60);
/// The RTP clock of the peer's streams.
const TICK: Duration = Duration::from_millis(20);

/// What the SIP peer saw: (first line, Call-ID, when it arrived).
type Seen = (String, String, Instant);

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A response to `req` copying its Via, From, To (with our tag), Call-ID and CSeq, with
/// extra header lines and a body.
fn response(req: &str, status: &str, extra: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for l in req.lines() {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(l.trim_end());
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(l.trim_end());
            if !lower.contains("tag=") {
                out.push_str(";tag=bench");
            }
            out.push_str("\r\n");
        }
    }
    out.push_str(extra);
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

/// The audio address and direction of an SDP body; only loopback addresses are taken.
fn media_of(msg: &str) -> Option<(SocketAddr, &'static str)> {
    let body = msg.split_once("\r\n\r\n")?.1;
    let ip: IpAddr = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let lines: Vec<&str> = body.lines().map(str::trim).collect();
    let answer = if lines.contains(&"a=sendonly") {
        "recvonly"
    } else if lines.contains(&"a=inactive") {
        "inactive"
    } else if lines.contains(&"a=recvonly") {
        "sendonly"
    } else {
        "sendrecv"
    };
    (ip.is_loopback() && port != 0).then_some((SocketAddr::new(ip, port), answer))
}

/// One answered call's media at the peer.
struct MediaCall {
    call_id: String,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    remote: SocketAddr,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
}

/// What the peer shares with the run.
#[derive(Default)]
struct Shared {
    /// Answer new INVITEs with 200 and media (else 486).
    answer: AtomicBool,
    stop: AtomicBool,
    calls: Mutex<Vec<MediaCall>>,
    /// RTP packets the peer sent, and received from the phone.
    sent: AtomicU64,
    received: AtomicU64,
    /// re-INVITEs the phone sent (hold, resume).
    reinvites: AtomicU64,
}

/// An RTP/RTCP socket pair on 127.0.0.1 (RTP on an even port).
fn bind_pair() -> Option<(UdpSocket, UdpSocket)> {
    for _ in 0..200 {
        let rtp = UdpSocket::bind("127.0.0.1:0").ok()?;
        let port = rtp.local_addr().ok()?.port();
        if port % 2 == 1 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            rtp.set_nonblocking(true).ok()?;
            rtcp.set_nonblocking(true).ok()?;
            return Some((rtp, rtcp));
        }
    }
    None
}

fn answer_sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na={direction}\r\n"
    )
}

/// The peer's receive loop: answers INVITEs with 486 (or, while `answer` is set, with 200
/// and media), answers re-INVITEs and BYEs, ACKs final failures of its own INVITEs, and
/// reports every message with its arrival time.
fn peer(sock: UdpSocket, seen: mpsc::Sender<Seen>, phone: String, shared: Arc<Shared>, me: u16) {
    let mut buf = vec![0u8; 65536];
    let contact = format!("Contact: <sip:2001@127.0.0.1:{me}>\r\n");
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        if !from.ip().is_loopback() {
            continue;
        }
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let first = msg.lines().next().unwrap_or("").to_owned();
        let call_id = header(&msg, "Call-ID").unwrap_or("").to_owned();
        let reply = |text: String| {
            let _ = sock.send_to(text.as_bytes(), from);
        };
        if first.starts_with("INVITE ") {
            let mut calls = shared.calls.lock().expect("calls");
            let existing = calls.iter_mut().find(|c| c.call_id == call_id);
            match (existing, media_of(&msg)) {
                (Some(c), Some((remote, direction))) => {
                    shared.reinvites.fetch_add(1, Ordering::Relaxed);
                    c.remote = remote;
                    let port = c.rtp.local_addr().map_or(0, |a| a.port());
                    let sdp = answer_sdp(port, direction);
                    let extra = format!("{contact}Content-Type: application/sdp\r\n");
                    reply(response(&msg, "200 OK", &extra, &sdp));
                }
                (None, Some((remote, direction))) if shared.answer.load(Ordering::Relaxed) => {
                    match bind_pair() {
                        Some((rtp, rtcp)) => {
                            let port = rtp.local_addr().map_or(0, |a| a.port());
                            let ssrc = 0x6265_0000 | calls.len() as u32;
                            calls.push(MediaCall {
                                call_id: call_id.clone(),
                                rtp,
                                rtcp,
                                remote,
                                sequence: 0,
                                timestamp: 0,
                                ssrc,
                            });
                            let sdp = answer_sdp(port, direction);
                            let extra = format!("{contact}Content-Type: application/sdp\r\n");
                            reply(response(&msg, "200 OK", &extra, &sdp));
                        }
                        None => reply(response(&msg, "503 Service Unavailable", "", "")),
                    }
                }
                _ => reply(response(&msg, "486 Busy Here", "", "")),
            }
        } else if first.starts_with("BYE ") {
            shared
                .calls
                .lock()
                .expect("calls")
                .retain(|c| c.call_id != call_id);
            reply(response(&msg, "200 OK", "", ""));
        } else if first.starts_with("OPTIONS ")
            || first.starts_with("CANCEL ")
            || first.starts_with("INFO ")
            || first.starts_with("UPDATE ")
        {
            reply(response(&msg, "200 OK", "", ""));
        } else if let Some(status) = first.strip_prefix("SIP/2.0 ") {
            let code: u16 = status.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            if code >= 300 && header(&msg, "CSeq").is_some_and(|c| c.ends_with("INVITE")) {
                let ack = format!(
                    "ACK {} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    phone,
                    header(&msg, "Via").unwrap_or(""),
                    header(&msg, "From").unwrap_or(""),
                    header(&msg, "To").unwrap_or(""),
                );
                reply(ack);
            }
        }
        if seen.send((first, call_id, at)).is_err() {
            return;
        }
    }
}

/// The peer's media clock: every 20 ms, each answered call gets one PCMU packet (a 1 kHz
/// tone) and what the phone sent it is read and counted.
fn media(shared: Arc<Shared>) {
    let mut samples = [0i16; 160];
    for (i, s) in samples.iter_mut().enumerate() {
        let phase = i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0;
        *s = (phase.sin() * 8000.0) as i16;
    }
    let mut payload = Vec::new();
    bapiws::phone::sip::media::g711::Law::Pcmu.encode(&samples, &mut payload);
    let mut packet = Vec::with_capacity(12 + payload.len());
    let mut buf = [0u8; 2048];
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        next += TICK;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_millis(200) {
            next = now;
        }
        let mut calls = shared.calls.lock().expect("calls");
        for c in calls.iter_mut() {
            while let Ok((_, from)) = c.rtp.recv_from(&mut buf) {
                if from.ip().is_loopback() {
                    shared.received.fetch_add(1, Ordering::Relaxed);
                }
            }
            while c.rtcp.recv_from(&mut buf).is_ok() {}
            packet.clear();
            packet.extend_from_slice(&[0x80, 0]);
            packet.extend_from_slice(&c.sequence.to_be_bytes());
            packet.extend_from_slice(&c.timestamp.to_be_bytes());
            packet.extend_from_slice(&c.ssrc.to_be_bytes());
            packet.extend_from_slice(&payload);
            c.sequence = c.sequence.wrapping_add(1);
            c.timestamp = c.timestamp.wrapping_add(160);
            // `media_of` took only loopback addresses.
            if c.remote.ip().is_loopback() && c.rtp.send_to(&packet, c.remote).is_ok() {
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn invite(i: usize, phone: u16, me: u16) -> String {
    let sdp = format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        me + 2
    );
    format!(
        "INVITE sip:1001@127.0.0.1:{phone} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-bench-{i}\r\nFrom: <sip:2001@127.0.0.1:{me}>;tag=b{i}\r\nTo: <sip:1001@127.0.0.1:{phone}>\r\nCall-ID: bench-in-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:2001@127.0.0.1:{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

async fn until(ws: &mut Client, method: &str, first: &str) -> Instant {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), ws.notification())
            .await
            .unwrap_or_else(|_| panic!("no {method} {first} within 10 s"))
            .expect("connection");
        if n["method"] == method && (first.is_empty() || n["params"][0] == first) {
            return Instant::now();
        }
    }
}

/// The figures of one run: latencies sorted, CPU in ms and memory in KiB.
pub struct Figures {
    pub incoming: Vec<Duration>,
    pub ringing: Vec<Duration>,
    pub outgoing: Vec<Duration>,
    pub get_state: Vec<Duration>,
    /// CPU time of bapiws (+ baresip) per measured call in and out (signalling only).
    pub cpu_per_call_pair_ms: f64,
    /// CPU time of bapiws (+ baresip) over the hold, minus the idle share, per call.
    pub cpu_per_call_ms: f64,
    /// The same over the whole hold, and over the idle window scaled to the hold.
    pub cpu_held_ms: f64,
    pub cpu_idle_ms: f64,
    /// (RSS with the calls − idle RSS) / calls, and the idle RSS.
    pub rss_per_call_kib: f64,
    pub rss_idle_kib: f64,
    /// RTP packets over the hold: sent by the peer, received from the phone.
    pub peer_sent: u64,
    pub peer_received: u64,
    pub reinvites: u64,
}

/// The process and its children (baresip is bapiws's child).
fn tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

fn tree_cpu(pid: u32) -> Duration {
    tree(pid).into_iter().map(crate::process::cpu_time_of).sum()
}

fn tree_rss(pid: u32) -> u64 {
    tree(pid).into_iter().map(crate::process::rss_of).sum()
}

/// A wrapper around baresip that raises the managed configuration's `call_max_calls`
/// (bapiws writes 4) before starting it, so that the hold can have 10 calls.
fn baresip_wrapper(dir: &Path) -> String {
    let path = dir.join("baresip-more-calls");
    let script = format!(
        "#!/bin/sh\n# bapiws-bench: managed baresip with call_max_calls {MAX_CALLS} (bapiws writes 4)\nif [ \"$1\" = \"-f\" ] && [ -f \"$2/config\" ]; then\n  sed -i 's/^call_max_calls.*/call_max_calls\\t\\t{MAX_CALLS}/' \"$2/config\"\nfi\nexec baresip \"$@\"\n"
    );
    std::fs::write(&path, script).expect("write the baresip wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .expect("make the wrapper executable");
    }
    path.display().to_string()
}

fn flags(phone: Phone, p: &Programs, base: u16, me: u16) -> Vec<String> {
    let dial = format!("sip:{{number}}@127.0.0.1:{me}");
    let pairs: Vec<(&str, String)> = match phone {
        Phone::Baresip => [
            ("--default-backend", "baresip".into()),
            ("--baresip-binary", baresip_wrapper(&p.log_dir)),
            ("--baresip-account", format!("sip:1001@127.0.0.1:{base}")),
            ("--baresip-sip-listen", format!("127.0.0.1:{base}")),
            ("--baresip-ctrl-address", format!("127.0.0.1:{}", base + 2)),
            (
                "--baresip-rtp-ports",
                format!("{}-{}", base + 10, base + 49),
            ),
            ("--baresip-audio-source", "ausine,440".into()),
            ("--baresip-audio-player", "aubridge,nil".into()),
            ("--baresip-dial-uri", dial),
            ("--baresip-dns-server", "127.0.0.1:53".into()),
            ("--baresip-net-interface", "127.0.0.1".into()),
        ]
        .to_vec(),
        Phone::Sip => [
            ("--default-backend", "sip".into()),
            ("--sip-account", "sip:1001@127.0.0.1".into()),
            ("--sip-register", "false".into()),
            ("--sip-accept-invites-from", "any".into()),
            ("--sip-listen", format!("127.0.0.1:{}", base + 4)),
            ("--sip-rtp-ports", format!("{}-{}", base + 50, base + 89)),
            ("--sip-audio-source", "tone:440".into()),
            ("--sip-audio-sink", "discard".into()),
            ("--sip-dial-uri", dial),
            ("--sip-max-calls", MAX_CALLS.to_string()),
        ]
        .to_vec(),
    };
    pairs
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
}

/// One run against one phone: `load.calls` calls each way after `load.warmup` unmeasured
/// ones, then the media hold.
pub async fn run(p: &Programs, phone: Phone, load: Load) -> Figures {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the SIP peer");
    let me = sock.local_addr().expect("address").port();
    // The phones' ports, below the ephemeral range, spread by process id.
    let base = 20000 + (std::process::id() % 140) as u16 * 90;
    let sip = match phone {
        Phone::Baresip => base,
        Phone::Sip => base + 4,
    };
    let flags = flags(phone, p, base, me);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(Kind::Bapiws, p, &flags);
    let pid = server.child.id();
    let mut ws = crate::load::connect(&server.url()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while ws.call("GetState", json!([])).await.ok() != Some(json!("Available")) {
        assert!(
            Instant::now() < deadline,
            "the {} phone never became Available (for baresip: is baresip-core installed?)",
            phone.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel();
    let reader = sock.try_clone().expect("socket");
    let phone_uri = format!("sip:1001@127.0.0.1:{sip}");
    let peer_shared = Arc::clone(&shared);
    let peer_thread = std::thread::spawn(move || peer(reader, tx, phone_uri, peer_shared, me));
    let media_shared = Arc::clone(&shared);
    let media_thread = std::thread::spawn(move || media(media_shared));
    let drain = |rx: &mpsc::Receiver<Seen>| while rx.try_recv().is_ok() {};
    let wait_for = |rx: &mpsc::Receiver<Seen>, first: &str, call: Option<&str>| -> Instant {
        loop {
            let (line, id, at) = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("the peer never saw {first}"));
            if line.starts_with(first) && call.is_none_or(|c| c == id) {
                return at;
            }
        }
    };
    let mut f = Figures {
        incoming: Vec::new(),
        ringing: Vec::new(),
        outgoing: Vec::new(),
        get_state: Vec::new(),
        cpu_per_call_pair_ms: 0.0,
        cpu_per_call_ms: 0.0,
        cpu_held_ms: 0.0,
        cpu_idle_ms: 0.0,
        rss_per_call_kib: 0.0,
        rss_idle_kib: 0.0,
        peer_sent: 0,
        peer_received: 0,
        reinvites: 0,
    };
    let mut signalling0 = tree_cpu(pid);
    for i in 0..load.warmup + load.calls {
        let began = Instant::now();
        if i == load.warmup {
            signalling0 = tree_cpu(pid);
        }
        // In.
        drain(&rx);
        let msg = invite(i, sip, me);
        let sent = Instant::now();
        sock.send_to(msg.as_bytes(), ("127.0.0.1", sip))
            .expect("send INVITE");
        let coming = until(&mut ws, "CallComing", "").await;
        let ringing = wait_for(&rx, "SIP/2.0 180", Some(&format!("bench-in-{i}")));
        let hung = ws.call("HangUp", json!([])).await;
        assert_eq!(hung.ok(), Some(json!(0)), "HangUp");
        until(&mut ws, "StateChanged", "Available").await;
        // Out.
        drain(&rx);
        let request =
            json!({"jsonrpc":"2.0","id":1000 + i,"method":"CallOut","params":["2001"]}).to_string();
        let dialled = Instant::now();
        ws.send_text(request).await.expect("send CallOut");
        let arrived = wait_for(&rx, "INVITE ", None);
        until(&mut ws, "StateChanged", "Available").await;
        // The same connection's GetState round trip: the WebSocket and bapiws alone.
        let t = Instant::now();
        let _: Value = ws.call("GetState", json!([])).await.expect("GetState");
        let rtt = t.elapsed();
        if i >= load.warmup {
            f.incoming.push(coming - sent);
            f.ringing.push(ringing.saturating_duration_since(sent));
            f.outgoing.push(arrived.saturating_duration_since(dialled));
            f.get_state.push(rtt);
        }
        tokio::time::sleep(INVITE_GAP.saturating_sub(began.elapsed())).await;
    }
    f.cpu_per_call_pair_ms =
        (tree_cpu(pid) - signalling0).as_secs_f64() * 1000.0 / load.calls.max(1) as f64;
    for v in [
        &mut f.incoming,
        &mut f.ringing,
        &mut f.outgoing,
        &mut f.get_state,
    ] {
        v.sort();
    }

    // Idle: the same process tree over `idle`, before any media.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = tree_rss(pid);
    let cpu0 = tree_cpu(pid);
    tokio::time::sleep(load.idle).await;
    let idle =
        (tree_cpu(pid) - cpu0).as_secs_f64() * load.hold.as_secs_f64() / load.idle.as_secs_f64();

    // Media: `concurrent` calls out, answered with PCMU, held for `hold`.
    shared.answer.store(true, Ordering::Relaxed);
    for i in 0..load.concurrent {
        let r = ws.call("CallOut", json!([format!("{}", 3000 + i)])).await;
        assert!(r.is_ok(), "CallOut {i}: {r:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.calls.lock().expect("calls").len() <= i {
            assert!(Instant::now() < deadline, "call {i} never reached the peer");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the phone see the answer (and hold the others) before the next.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shared.answer.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let active = ws.call("GetActiveCalls", json!([])).await.ok();
    // Six fields a call: index, direction, state, number, id, start.
    let up = active.as_ref().and_then(Value::as_array).map_or(0, |a| {
        a.iter()
            .filter(|v| *v == "Connected" || *v == "OnHold")
            .count()
    });
    assert_eq!(
        up,
        load.concurrent,
        "the {} phone has {up} calls, not {}: {active:?}",
        phone.name(),
        load.concurrent
    );
    let (sent0, received0) = (
        shared.sent.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed),
    );
    let cpu0 = tree_cpu(pid);
    tokio::time::sleep(load.hold).await;
    let held = (tree_cpu(pid) - cpu0).as_secs_f64();
    let rss_held = tree_rss(pid);
    f.peer_sent = shared.sent.load(Ordering::Relaxed) - sent0;
    f.peer_received = shared.received.load(Ordering::Relaxed) - received0;
    f.reinvites = shared.reinvites.load(Ordering::Relaxed);
    f.cpu_held_ms = held * 1000.0;
    f.cpu_idle_ms = idle * 1000.0;
    f.cpu_per_call_ms = (held - idle) * 1000.0 / load.concurrent as f64;
    f.rss_idle_kib = rss_idle as f64 / 1024.0;
    f.rss_per_call_kib = (rss_held as f64 - rss_idle as f64) / 1024.0 / load.concurrent as f64;
    for _ in 0..load.concurrent {
        let hung = ws.call("HangUp", json!([])).await;
        assert_eq!(hung.ok(), Some(json!(0)), "HangUp");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ws.call("GetState", json!([])).await.ok() != Some(json!("Available")) {
        assert!(Instant::now() < deadline, "the calls never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = media_thread.join();
    let _ = peer_thread.join();
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    f
}
