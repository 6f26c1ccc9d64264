//! How fast the phone reacts (`bapiws-bench all --only sip`): bapiws managing a real
//! baresip (no registrar), and a minimal SIP peer in this harness on UDP 127.0.0.1 that
//! timestamps what it sends and receives.
//!
//! - In: the peer sends an INVITE to the phone (timestamp just before `send_to`) and the
//!   WebSocket client times the `CallComing`; the peer also times baresip's `180 Ringing`
//!   (baresip sends it when it raises the call to its controller), which splits the
//!   figure into baresip's part and the part after it (ctrl_tcp, bapiws, WebSocket).
//!   Then `HangUp` (baresip answers 486, the peer ACKs it).
//! - Out: the client sends `CallOut` (timestamp before the write) and the peer times the
//!   INVITE's arrival (a blocking receive on its own thread); it answers 486 at once.
//!
//! Not in `all` or `smoke`: it needs baresip (`apt-get install baresip-core`).

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bapiws::client::Client;
use serde_json::{Value, json};

use crate::process::{Kind, Programs, Server};

/// What the SIP peer saw: (first line, Call-ID, when it arrived).
type Seen = (String, String, Instant);

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A response to `req` copying its Via, From, To (with our tag), Call-ID and CSeq.
fn response(req: &str, status: &str) -> String {
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
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The peer's receive loop: answers INVITEs with 486, ACKs final failures of our own
/// INVITEs, and reports every message with its arrival time.
fn peer(sock: UdpSocket, seen: mpsc::Sender<Seen>, phone: String) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return;
        };
        let at = Instant::now();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let first = msg.lines().next().unwrap_or("").to_owned();
        let call_id = header(&msg, "Call-ID").unwrap_or("").to_owned();
        if first.starts_with("INVITE ") {
            let _ = sock.send_to(response(&msg, "486 Busy Here").as_bytes(), from);
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
                let _ = sock.send_to(ack.as_bytes(), from);
            }
        }
        if seen.send((first, call_id, at)).is_err() {
            return;
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

/// The figures, in µs: in (CallComing), in (180 from baresip), out (INVITE on the wire),
/// and GetState round trips on the same connection, each sorted.
pub struct Figures {
    pub incoming: Vec<Duration>,
    pub ringing: Vec<Duration>,
    pub outgoing: Vec<Duration>,
    pub get_state: Vec<Duration>,
}

/// Runs `calls` calls each way after `warmup` unmeasured ones.
pub async fn run(p: &Programs, warmup: usize, calls: usize) -> Figures {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the SIP peer");
    let me = sock.local_addr().expect("address").port();
    // The phone's ports, below the ephemeral range, spread by process id.
    let base = 24000 + (std::process::id() % 400) as u16 * 20;
    let (sip, ctrl, rtp) = (base, base + 2, base + 4);
    let flags = [
        "--default-backend".to_owned(),
        "baresip".to_owned(),
        "--baresip-account".to_owned(),
        format!("sip:1001@127.0.0.1:{sip}"),
        "--baresip-sip-listen".to_owned(),
        format!("127.0.0.1:{sip}"),
        "--baresip-ctrl-address".to_owned(),
        format!("127.0.0.1:{ctrl}"),
        "--baresip-rtp-ports".to_owned(),
        format!("{rtp}-{}", rtp + 9),
        "--baresip-audio-source".to_owned(),
        "ausine,440".to_owned(),
        "--baresip-audio-player".to_owned(),
        "aubridge,nil".to_owned(),
        "--baresip-dial-uri".to_owned(),
        format!("sip:{{number}}@127.0.0.1:{me}"),
        "--baresip-dns-server".to_owned(),
        "127.0.0.1:53".to_owned(),
        "--baresip-net-interface".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(Kind::Bapiws, p, &flags);
    let mut ws = crate::load::connect(&server.url()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while ws.call("GetState", json!([])).await.ok() != Some(json!("Available")) {
        assert!(
            Instant::now() < deadline,
            "the baresip phone never became Available (is baresip-core installed?)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (tx, rx) = mpsc::channel();
    let reader = sock.try_clone().expect("socket");
    let phone_uri = format!("sip:1001@127.0.0.1:{sip}");
    std::thread::spawn(move || peer(reader, tx, phone_uri));
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
    };
    for i in 0..warmup + calls {
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
        if i >= warmup {
            f.incoming.push(coming - sent);
            f.ringing.push(ringing.saturating_duration_since(sent));
            f.outgoing.push(arrived.saturating_duration_since(dialled));
            f.get_state.push(rtt);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    for v in [
        &mut f.incoming,
        &mut f.ringing,
        &mut f.outgoing,
        &mut f.get_state,
    ] {
        v.sort();
    }
    f
}
