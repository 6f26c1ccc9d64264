//! Hostile network input against the built-in SIP phone (`sip` backend), registered with
//! a real kamailio on loopback: 10,000 malformed or hostile datagrams on its SIP port,
//! direct INVITEs from an address that is not the registrar (127.0.0.2, loopback), and
//! garbage on a connected call's RTP port. Every datagram goes to 127.0.0.1; every loop
//! is bounded in count and time.
// Reads the server's memory from /proc and binds 127.0.0.2 (Linux answers on all of
// 127.0.0.0/8; other systems need an alias), so Unix only; the harness is too.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Server, Ws};
use harness::{Kamailio, PASSWORD, Role, SipPorts, Sipp, health};
use serde_json::json;

/// Long enough for any one SIP step on loopback.
const SIP_WAIT: Duration = Duration::from_secs(20);

/// How many datagrams the flood sends.
const FLOOD: usize = 10_000;
/// The flood's own limit in time (it paces itself well below it).
const FLOOD_LIMIT: Duration = Duration::from_secs(60);

/// `bapiws serve` flags for the built-in phone registered as 1001 with kamailio.
fn sip_flags(ports: &SipPorts, sink: &str, extra: &[&str]) -> Vec<String> {
    let rtp = ports.ports.phone_rtp;
    let mut flags: Vec<String> = [
        "--default-backend".to_owned(),
        "sip".to_owned(),
        "--sip-account".to_owned(),
        format!("sip:1001@127.0.0.1:{}", ports.registrar),
        "--sip-password".to_owned(),
        PASSWORD.to_owned(),
        "--sip-listen".to_owned(),
        format!("127.0.0.1:{}", ports.ports.phone_sip),
        "--sip-rtp-ports".to_owned(),
        format!("{rtp}-{}", rtp + 9),
        "--sip-audio-source".to_owned(),
        "tone:440".to_owned(),
        "--sip-audio-sink".to_owned(),
        sink.to_owned(),
        "--sip-register-interval-secs".to_owned(),
        "5".to_owned(),
    ]
    .into();
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    flags
}

struct Net {
    ports: SipPorts,
    _kamailio: Kamailio,
    server: Server,
}

fn network(extra: &[&str]) -> Net {
    network_with_sink("discard", extra)
}

fn network_with_sink(sink: &str, extra: &[&str]) -> Net {
    let ports = SipPorts::next();
    let kamailio = Kamailio::start(&ports, 60);
    let flags = sip_flags(&ports, sink, extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&flags);
    Net {
        ports,
        _kamailio: kamailio,
        server,
    }
}

impl Net {
    fn phone(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.ports.phone_sip))
    }
}

async fn connect_when(server: &Server, state: &str) -> Ws {
    common::baresip::connect_when(server, state, SIP_WAIT).await
}

/// Asserts that the phone is registered and Available (GET /health).
fn assert_registered(server: &Server) {
    let h = health(server.port);
    let sip = h["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["kind"] == "sip" || b["name"] == "sip"))
        .cloned()
        .unwrap_or_else(|| h["backends"][0].clone());
    assert_eq!(sip["link"], "registered", "{h}");
    assert_eq!(sip["state"], "Available", "{h}");
}

/// The server's stderr (it is stopped) has no panic.
fn assert_no_panic(server: Server) -> String {
    let (_, err, _dir) = server.terminate();
    assert!(
        !err.contains("panicked"),
        "the server panicked:\n{}",
        err.lines()
            .filter(|l| l.contains("panic"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    err
}

/// A small deterministic generator (xorshift64*), so that a failing flood can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// 1 to `max` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = 1 + self.below(max);
        self.bytes(n)
    }
}

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// A request of `method` to the phone, from `from` (the sender's address), with `extra`
/// header lines and `body`.
fn request(
    method: &str,
    phone: SocketAddr,
    from: SocketAddr,
    n: usize,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:1001@{phone} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-hostile-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:scanner@{from}>;tag=t{n}\r\n\
         To: <sip:1001@{phone}>\r\n\
         Call-ID: hostile-{n}@{from}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:scanner@{from}>\r\n\
         {extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
                   m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The `n`th hostile datagram and whether it must come from the scanner's address
/// (anything that could be a valid INVITE does: from 127.0.0.1, the registrar's address on
/// loopback, a valid INVITE would ring, as it should).
fn hostile(
    rng: &mut Rng,
    n: usize,
    phone: SocketAddr,
    near: SocketAddr,
    far: SocketAddr,
) -> (Vec<u8>, bool) {
    let invite = request(
        "INVITE",
        phone,
        far,
        n,
        "Content-Type: application/sdp\r\n",
        SDP,
    );
    match n % 20 {
        // Binary garbage of any length up to an MTU.
        0 => (rng.some_bytes(1500), false),
        // NUL and 0xFF bytes, alone and inside a request.
        1 => (
            vec![if n % 40 == 1 { 0 } else { 0xFF }; 1 + rng.below(4000)],
            false,
        ),
        2 => {
            let mut m = invite.into_bytes();
            for _ in 0..8 {
                let at = rng.below(m.len());
                m[at] = if rng.below(2) == 0 { 0 } else { 0xFF };
            }
            (m, true)
        }
        // Truncated at any point.
        3 => {
            let cut = rng.below(invite.len());
            (invite.as_bytes()[..cut].to_vec(), true)
        }
        // A mandatory header missing.
        4 => {
            let names = ["Via:", "From:", "To:", "Call-ID:", "CSeq:", "Max-Forwards:"];
            let drop = names[rng.below(names.len())];
            let m: String = invite
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(drop))
                .collect();
            (m.into_bytes(), true)
        }
        // Content-Length lies: too long, too short, negative, not a number, huge.
        5 => {
            let lie = [
                "99999999",
                "-1",
                "abc",
                "18446744073709551616",
                "0",
                "4294967296",
            ][rng.below(6)];
            let m = invite.replace(
                &format!("Content-Length: {}", SDP.len()),
                &format!("Content-Length: {lie}"),
            );
            (m.into_bytes(), true)
        }
        // A huge body (the largest datagram), with a matching Content-Length.
        6 => {
            let head = request(
                "INVITE",
                phone,
                far,
                n,
                "Content-Type: application/sdp\r\n",
                "",
            );
            let room = MAX_DATAGRAM - head.len() - 8;
            let body = format!("{SDP}a={}\r\n", "x".repeat(room - SDP.len() - 4));
            (
                request(
                    "INVITE",
                    phone,
                    far,
                    n,
                    "Content-Type: application/sdp\r\n",
                    &body,
                )
                .into_bytes(),
                true,
            )
        }
        // Thousands of Vias: as header lines, and as one comma-separated header.
        7 => {
            let vias: String = (0..2000)
                .map(|i| {
                    format!(
                        "Via: SIP/2.0/UDP 10.0.{}.{}:5060;branch=z9hG4bK{i}\r\n",
                        i / 250,
                        i % 250
                    )
                })
                .collect();
            (
                request("OPTIONS", phone, far, n, &vias, "").into_bytes(),
                true,
            )
        }
        8 => {
            let vias = vec!["SIP/2.0/UDP 10.9.9.9"; 400].join(",");
            (
                request("OPTIONS", phone, far, n, &format!("Via: {vias}\r\n"), "").into_bytes(),
                true,
            )
        }
        // Unknown and unexpected methods out of any dialog.
        9 => {
            let methods = [
                "FOO",
                "SUBSCRIBE",
                "MESSAGE",
                "INFO",
                "UPDATE",
                "PRACK",
                "PUBLISH",
                "REFER",
                "NOTIFY",
                "BYE",
                "X\u{1b}[31m",
            ];
            let m = methods[rng.below(methods.len())];
            (request(m, phone, near, n, "", "").into_bytes(), false)
        }
        // An INVITE flood from the scanner: valid INVITEs, each a new call.
        10 | 11 => (invite.into_bytes(), true),
        // Responses to no transaction.
        12 => {
            let code = [100, 180, 200, 401, 407, 486, 503, 699][rng.below(8)];
            let r = format!(
                "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP {phone};branch=z9hG4bK-none-{n}\r\n\
                 From: <sip:1001@127.0.0.1>;tag=a{n}\r\nTo: <sip:2001@127.0.0.1>;tag=b{n}\r\n\
                 Call-ID: nothing-{n}\r\nCSeq: {n} INVITE\r\n\
                 WWW-Authenticate: Digest realm=\"x\", nonce=\"{n}\"\r\nContent-Length: 0\r\n\r\n"
            );
            (r.into_bytes(), false)
        }
        // Requests inside dialogs that do not exist; CANCEL and ACK of no transaction.
        13 => {
            let methods = ["BYE", "INVITE", "ACK", "INFO", "REFER", "NOTIFY", "CANCEL"];
            let m = methods[rng.below(methods.len())];
            let r = request(
                m,
                phone,
                near,
                n,
                "Refer-To: <sip:2002@127.0.0.1>\r\nEvent: refer\r\n",
                "",
            )
            .replace(
                &format!("To: <sip:1001@{phone}>"),
                &format!("To: <sip:1001@{phone}>;tag=no-such-{n}"),
            );
            // A CANCEL or ACK needs no To tag to miss: strip it for them.
            let r = if m == "CANCEL" {
                r.replace(&format!(";tag=no-such-{n}"), "")
            } else {
                r
            };
            (r.into_bytes(), m == "INVITE")
        }
        // Hostile header values: control characters, terminal escapes, very long lines,
        // a thousand headers, bare LF, bad URIs and typed headers that do not parse.
        14 => {
            let extra = format!(
                "Subject: \u{1b}]0;owned\u{7}\u{1b}[2J\r\nX-Long: {}\r\n",
                "A".repeat(6000)
            );
            (
                request("INVITE", phone, far, n, &extra, "").into_bytes(),
                true,
            )
        }
        15 => {
            let extra: String = (0..1000).map(|i| format!("X-{i}: {i}\r\n")).collect();
            (
                request("OPTIONS", phone, far, n, &extra, "").into_bytes(),
                true,
            )
        }
        16 => (invite.replace("\r\n", "\n").into_bytes(), true),
        17 => {
            let bad = [
                ("From: <sip:scanner@", "From: <sip:@@::]]["),
                ("To: <sip:1001@", "To: \"\u{202e}\" <tel:;;;"),
                ("CSeq: 1 INVITE", "CSeq: 99999999999999999999 INVITE"),
                ("CSeq: 1 INVITE", "CSeq: 1 BYE"),
                ("Contact: <sip:scanner@", "Contact: *;<<<sip:"),
                ("Via: SIP/2.0/UDP ", "Via: SIP/9.9/FOO "),
                ("Call-ID: hostile-", "Call-ID: "),
                ("Max-Forwards: 70", "Max-Forwards: 0"),
            ];
            let (from, to) = bad[rng.below(bad.len())];
            (invite.replacen(from, to, 1).into_bytes(), true)
        }
        // The largest datagram of garbage.
        18 => (rng.bytes(MAX_DATAGRAM), false),
        // Keepalives, whitespace, an empty-ish start line.
        _ => {
            let k: &[u8] = [
                &b"\r\n\r\n"[..],
                b"\r\n",
                b"   ",
                b"SIP/2.0\r\n\r\n",
                b"INVITE\r\n\r\n",
            ][rng.below(5)];
            (k.to_vec(), false)
        }
    }
}

/// Sends [`FLOOD`] hostile datagrams to the phone from 127.0.0.1 and 127.0.0.2, paced so
/// that the phone's socket buffer does not simply drop them; returns how many answers
/// came back and how long it took.
fn flood(phone: SocketAddr) -> (usize, Duration) {
    let near = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let far = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
    for s in [&near, &far] {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let (near_addr, far_addr) = (
        near.local_addr().expect("addr"),
        far.local_addr().expect("addr"),
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut answers = 0;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut drain = |answers: &mut usize| {
        for s in [&near, &far] {
            while s.recv_from(&mut buf).is_ok() {
                *answers += 1;
            }
        }
    };
    let start = Instant::now();
    for n in 0..FLOOD {
        assert!(
            start.elapsed() < FLOOD_LIMIT,
            "the flood took over {FLOOD_LIMIT:?}"
        );
        let (datagram, scanner) = hostile(&mut rng, n, phone, near_addr, far_addr);
        let socket = if scanner { &far } else { &near };
        // A full socket buffer (EAGAIN) is retried once after a pause.
        if socket.send_to(&datagram, phone).is_err() {
            std::thread::sleep(Duration::from_millis(5));
            let _ = socket.send_to(&datagram, phone);
        }
        if n % 25 == 24 {
            drain(&mut answers);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    drain(&mut answers);
    (answers, start.elapsed())
}

/// 10,000 malformed and hostile datagrams on the phone's SIP port: no panic, memory
/// bounded, still registered and Available, and a call out still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_datagrams_leave_the_phone_registered_and_able_to_call() {
    let net = network(&[]);
    let mut c = connect_when(&net.server, "Available").await;
    assert_registered(&net.server);
    let pid = net.server.child.id();
    // Settle first: the first seconds allocate the stack's and the media's buffers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = common::rss_kib(pid);

    let phone = net.phone();
    let (answers, took) = tokio::task::spawn_blocking(move || flood(phone))
        .await
        .expect("flood");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = common::rss_kib(pid);
    eprintln!(
        "flood: {FLOOD} datagrams in {took:?}, {answers} answers; VmRSS {before} kB before, {after} kB after"
    );
    // Bound: rsipstack keeps each request it answered (about 1,100 here) with its answer
    // for the transaction's timers (32 s), a few kB each, so a few MB; it reads at most
    // 8 KiB of a datagram. Keeping every datagram's 8 KiB buffer or parsed message (10,000
    // of them: 20 to 80 MB) would break 16 MB.
    assert!(
        after <= before + 16 * 1024,
        "VmRSS grew from {before} kB to {after} kB"
    );

    // The registration survived and still refreshes (the interval is 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_registered(&net.server);
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));

    let far = Sipp::start(&net.ports, Role::Far, "uas_answer.xml", &[]);
    assert_eq!(c.call("CallOut", json!(["2001"])).await, json!(0));
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [id.as_str(), "Connection reset by user"]
    );
    harness::passed(far, SIP_WAIT).await;
    assert_no_panic(net.server);
}

/// Writes an INVITE's Via line for the sender's address.
type ViaLine = Box<dyn Fn(SocketAddr) -> String + Send>;

/// A direct INVITE from the scanner's socket; returns the first final answer's status
/// line (100 Trying skipped), if one came within `limit`.
fn direct_invite(
    phone: SocketAddr,
    via: impl Fn(SocketAddr) -> String,
    limit: Duration,
) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
    let me = s.local_addr().expect("addr");
    let n = (me.port() as usize) * 7;
    let m = request(
        "INVITE",
        phone,
        me,
        n,
        "Content-Type: application/sdp\r\n",
        SDP,
    )
    .replacen(
        &format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-hostile-{n}"),
        &via(me),
        1,
    );
    s.send_to(m.as_bytes(), phone).expect("send");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((len, _)) = s.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            let first = text.lines().next().unwrap_or("").to_owned();
            if !first.starts_with("SIP/2.0 1") {
                return Some(first);
            }
        }
    }
    None
}

/// By default the phone takes INVITEs only from its registrar: a direct INVITE from
/// 127.0.0.2 never rings and is answered 403, also when its Via claims the registrar's
/// address (as sent-by, or as a `received` parameter it wrote itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invite_from_another_address_never_rings_and_gets_403() {
    let net = network(&[]);
    let mut c = connect_when(&net.server, "Available").await;
    let phone = net.phone();
    let registrar = net.ports.registrar;
    let vias: [(&str, ViaLine); 3] = [
        (
            "honest",
            Box::new(|me| format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-d1-{}", me.port())),
        ),
        (
            "sent-by the registrar",
            Box::new(move |me| {
                format!(
                    "Via: SIP/2.0/UDP 127.0.0.1:{registrar};branch=z9hG4bK-d2-{}",
                    me.port()
                )
            }),
        ),
        (
            "received= the registrar",
            Box::new(|me| {
                format!(
                    "Via: SIP/2.0/UDP {me};received=127.0.0.1;branch=z9hG4bK-d3-{}",
                    me.port()
                )
            }),
        ),
    ];
    for (what, via) in vias {
        let answer =
            tokio::task::spawn_blocking(move || direct_invite(phone, via, Duration::from_secs(5)));
        // Never rings (a CallComing here fails the test) ...
        c.expect_silence(Duration::from_secs(1)).await;
        // ... and the sender is told 403 where it really is.
        assert_eq!(
            answer.await.expect("join").as_deref(),
            Some("SIP/2.0 403 Forbidden"),
            "the direct INVITE ({what}) was not answered 403 at its source"
        );
    }
    assert_eq!(c.call("GetActiveCalls", json!([])).await, json!([]));
    assert_no_panic(net.server);
}

/// With `--sip-accept-invites-from any`, the same direct INVITE rings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_invites_accepted_from_any_address_a_direct_invite_rings() {
    let net = network(&["--sip-accept-invites-from", "any"]);
    let mut c = connect_when(&net.server, "Available").await;
    let phone = net.phone();
    let answer = tokio::task::spawn_blocking(move || {
        direct_invite(
            phone,
            |me| format!("Via: SIP/2.0/UDP {me};branch=z9hG4bK-any-{}", me.port()),
            Duration::from_secs(2),
        )
    });
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "scanner");
    // No final answer while it rings (our socket saw only provisional ones).
    assert_eq!(answer.await.expect("join"), None);
    assert_no_panic(net.server);
}

/// The phone's RTP port, from its SDP as the far end received it.
fn phone_rtp_port(messages: &str) -> u16 {
    let invite = messages
        .split("INVITE sip:")
        .nth(1)
        .unwrap_or_else(|| panic!("no INVITE in SIPp's log:\n{messages}"));
    invite
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in the phone's INVITE:\n{messages}"))
}

/// The `sent` count of the phone's "call media ended" log line.
fn media_sent(server: &Server) -> u64 {
    let mut text = String::new();
    for entry in std::fs::read_dir(server.log_dir())
        .expect("log dir")
        .flatten()
    {
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    let line = text
        .lines()
        .rfind(|l| l.contains("call media ended"))
        .unwrap_or_else(|| panic!("no 'call media ended' line in the log"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("sent="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sent= in {line}"))
}

/// The amplitude of `hz` in 8 kHz samples (Goertzel), normalised by their count.
fn tone_level(samples: &[i16], hz: f64) -> f64 {
    let c = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (mut q1, mut q2) = (0.0f64, 0.0f64);
    for &x in samples {
        let q0 = c * q1 - q2 + f64::from(x);
        q2 = q1;
        q1 = q0;
    }
    (q1 * q1 + q2 * q2 - c * q1 * q2).max(0.0).sqrt() / samples.len().max(1) as f64
}

/// An RTP packet: version 2, `pt`, `marker`, the given SSRC, 160 bytes of payload.
fn rtp(pt: u8, marker: bool, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xFF, 160));
    p
}

/// Sends 4,000 hostile datagrams to a call's RTP port (and its RTCP port, the next one):
/// garbage, the agreed codec from 127.0.0.2, the agreed codec from the far end's address
/// with other SSRCs (with and without the marker bit), payload types not agreed and
/// lying headers. Returns how many were sent.
fn rtp_flood(port: u16) -> usize {
    let near = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let other = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let start = Instant::now();
    let mut sent = 0;
    for n in 0..4000u16 {
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
        let to = SocketAddr::from(([127, 0, 0, 1], if n % 5 == 4 { port + 1 } else { port }));
        let (socket, p) = match n % 5 {
            0 => (&near, rng.some_bytes(1400)),
            1 => (&near, rtp(0, n % 10 == 1, n, 0xBAD0_0000 | u32::from(n))),
            2 => (&other, rtp(0, true, n, 0x0BAD_0BAD)),
            3 => {
                let mut p = rtp(1 + rng.below(127) as u8, false, n, rng.next() as u32);
                p[0] = 0x80 | (rng.next() as u8 & 0x3F);
                (&near, p)
            }
            _ => (&near, rng.some_bytes(200)),
        };
        if socket.send_to(&p, to).is_ok() {
            sent += 1;
        }
        if n % 20 == 19 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

/// During a connected call to a far end that echoes RTP (the phone sends a 440 Hz tone),
/// its RTP and RTCP ports get [`rtp_flood`]: the call stays connected, the phone keeps
/// sending, the echoed tone is still what the phone plays in the seconds after the flood,
/// and HangUp ends the call with a BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_rtp_port_of_a_connected_call_does_not_end_or_silence_it() {
    let dir = common::TempDir::new("rtp-flood");
    let wav = dir.path().join("heard.wav");
    let net = network_with_sink(&format!("wav:{}", wav.display()), &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let far = Sipp::start(&net.ports, Role::Far, "uas_answer.xml", &["-rtp_echo"]);
    assert_eq!(c.call("CallOut", json!(["2001"])).await, json!(0));
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    let port = phone_rtp_port(&far.messages());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let sent = tokio::task::spawn_blocking(move || rtp_flood(port))
        .await
        .expect("flood");
    // The call lives on: no notification, still Connected, for seconds of echo.
    c.expect_silence(Duration::from_secs(4)).await;
    let rows = c.call("GetActiveCalls", json!([])).await;
    assert!(rows.to_string().contains(&id), "{rows}");
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [id.as_str(), "Connection reset by user"]
    );
    harness::passed(far, SIP_WAIT).await;
    let out = media_sent(&net.server);
    // The recording, 8 kHz 16-bit mono after a 44-byte header; the file is complete
    // once the call's stream has ended (its writer is dropped).
    let mut samples = Vec::new();
    let deadline = Instant::now() + SIP_WAIT;
    while samples.len() < 8000 * 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = std::fs::read(&wav).unwrap_or_default();
        samples = bytes
            .get(44..)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
    }
    // The 3 s before the last half second: after the flood, before the hang-up.
    let end = samples.len().saturating_sub(4000);
    let after = &samples[end.saturating_sub(24_000)..end];
    let level = tone_level(after, 440.0);
    eprintln!(
        "RTP flood: {sent} datagrams; the phone sent {out} packets; 440 Hz level after the \
         flood {level:.0} ({} s recorded)",
        samples.len() / 8000
    );
    // At least 4 s of sending at 50 packets a second: the media task ran through it.
    assert!(out >= 200, "the phone sent only {out} packets");
    // The tone source's echo decodes at an amplitude in the thousands; silence is 0.
    assert!(
        level > 500.0,
        "the far end's echo was not heard after the flood (440 Hz level {level:.0})"
    );
    assert_no_panic(net.server);
}
