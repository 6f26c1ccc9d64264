//! How the built-in SIP phone recovers when its registrar goes away (issue #21, item 3),
//! timed against a real registrar (kamailio) on loopback: a stopped registrar makes the
//! phone `Offline` within the bounds docs/sip-phone.md gives (the registration's expiry
//! over UDP, the connection's loss over TCP, the keep-alive for a registrar that stops
//! answering without closing the connection); a restarted one, which has lost every
//! registration, gets the phone registered again and a caller's INVITE (SIPp) rings it
//! within the refresh interval (UDP) or 30 s (TCP). Throughout, kamailio's log (one line
//! per REGISTER, see `tests/sip/kamailio.cfg`) shows at most one REGISTER transaction a
//! second, also with a wrong password, which backs off to minutes.
// The harness starts kamailio and SIPp with Unix process groups.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::time::{Duration, Instant, SystemTime};

use common::{Server, Ws};
use harness::{Kamailio, PASSWORD, Phone, Role, SipPorts, Sipp};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The phone on `transport`, registering for `interval` seconds, with `extra` flags.
fn start(
    ports: &SipPorts,
    password: &str,
    interval: u32,
    transport: &str,
    extra: &[&str],
) -> Server {
    let mut flags = ports.flags_for(Phone::Sip, password, interval, transport);
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(&flags)
}

/// The wall clock as kamailio's `$TV(Sn)` gives it.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One REGISTER kamailio received (its retransmissions left out).
#[derive(Debug, Clone)]
struct Seen {
    /// When kamailio took it (seconds since the epoch).
    at: f64,
    cseq: u32,
    /// Whether it answers a digest challenge (carries Authorization).
    answer: bool,
}

/// The REGISTERs in kamailio's log, in the order it took them, one per CSeq.
fn registers(log: &str) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.split("REGISTER-SEEN ").nth(1) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let [at, _proto, _call_id, cseq, kind] = f[..] else {
            panic!("a REGISTER-SEEN line of another shape: {line}");
        };
        let (Ok(at), Ok(cseq)) = (at.parse::<f64>(), cseq.parse::<u32>()) else {
            panic!("a REGISTER-SEEN line of another shape: {line}");
        };
        if seen.iter().any(|s| s.cseq == cseq) {
            continue; // a retransmission
        }
        seen.push(Seen {
            at,
            cseq,
            answer: kind == "answer",
        });
    }
    seen
}

/// Asserts the phone's REGISTER rate: the first REGISTERs of two transactions (not the
/// digest answers) reached kamailio at least 0.95 s apart, except those kamailio took
/// late in `backlog` (a stopped kamailio reads what waited in its sockets at once), and
/// the REGISTERs it never saw or saw late (CSeqs missing between two it took in time)
/// number at most one a second of the time between. Returns the most REGISTER messages
/// (answers included) kamailio took in any one second, for the report.
fn assert_polite(seen: &[Seen], backlog: Option<(f64, f64)>) -> usize {
    let late = |s: &Seen| backlog.is_some_and(|(a, b)| s.at >= a && s.at <= b);
    let firsts: Vec<&Seen> = seen.iter().filter(|s| !s.answer && !late(s)).collect();
    for w in firsts.windows(2) {
        assert!(
            w[1].at - w[0].at >= 0.95,
            "two REGISTER transactions {:.3} s apart: {w:?}\nall: {seen:?}",
            w[1].at - w[0].at
        );
    }
    let answers = seen.iter().filter(|s| s.answer).count();
    assert!(
        answers <= seen.len() - answers,
        "more answers than challenges: {seen:?}"
    );
    let mut timely: Vec<&Seen> = seen.iter().filter(|s| !late(s)).collect();
    timely.sort_by_key(|s| s.cseq);
    for w in timely.windows(2) {
        let missing = w[1].cseq - w[0].cseq - 1;
        let secs = w[1].at - w[0].at;
        assert!(
            f64::from(missing) <= secs + 2.0,
            "{missing} REGISTERs in {secs:.1} s between {w:?}\nall: {seen:?}"
        );
    }
    let mut most = 0;
    for s in seen {
        let n = seen
            .iter()
            .filter(|o| o.at >= s.at && o.at < s.at + 1.0)
            .count();
        most = most.max(n);
    }
    most
}

/// Waits (at most `limit`) until the phone is in `state` (by /health, polled every
/// 20 ms: the WebSocket client's reads time out sooner), then reads the StateChanged that
/// says so; returns how long it took from `since`.
async fn reach(
    c: &mut Ws,
    server: &Server,
    state: &str,
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        if health(server)["state"] == state {
            break;
        }
        assert!(
            since.elapsed() < limit,
            "not {state} within {limit:?}: {}",
            health(server)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = since.elapsed();
    assert_eq!(c.expect_notification("StateChanged").await, [state]);
    took
}

/// A caller (SIPp, over UDP to kamailio) rings the phone; the test rejects the call.
async fn rings(c: &mut Ws, ports: &SipPorts) {
    let caller = Sipp::start(ports, Role::Caller, "uac_rejected.xml", &[]);
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "2001");
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    c.call("HangUp", json!([coming[0]])).await;
    assert_eq!(
        c.expect_notification("CallDisconnected").await[0],
        coming[0]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    tokio::task::spawn_blocking(move || caller.passed(WAIT))
        .await
        .expect("join");
}

/// Over UDP nothing tells the phone that the registrar is gone: the registration's
/// expiry does (10 s here), though the refresh's transaction (32 s) is still trying.
/// The restarted registrar, with no registrations, is registered with again within
/// the interval, and the first call rings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_a_stopped_registrar_is_offline_within_the_interval_and_a_restarted_one_rings_within_it()
 {
    const INTERVAL: u32 = 10;
    let ports = SipPorts::next();
    let mut kamailio = Kamailio::start(&ports, 60);
    let server = start(&ports, PASSWORD, INTERVAL, "udp", &[]);
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let stopped = Instant::now();
    tokio::task::block_in_place(|| kamailio.stop());
    let bound = Duration::from_secs(u64::from(INTERVAL) + 1);
    let offline = reach(&mut c, &server, "Offline", stopped, bound).await;
    let h = health(&server);
    assert_eq!(h["link"], "not registered", "{h}");
    assert_eq!(
        h["last_error"], "registration expired: no answer from the registrar",
        "{h}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| kamailio.restart());
    let available = reach(&mut c, &server, "Available", restarted, bound).await;
    rings(&mut c, &ports).await;
    let rang = restarted.elapsed();
    assert!(rang <= bound, "rang {rang:?} after the restart");
    let seen = registers(&kamailio.log());
    let most = assert_polite(&seen, None);
    eprintln!(
        "udp: offline {offline:?} after the stop; available {available:?} and rang {rang:?} \
         after the restart; {} REGISTERs, at most {most} in a second",
        seen.len()
    );
}

/// Over TCP the registrar's end of the connection closes with it: `Offline` within 3 s
/// (at once, or a second after the last REGISTER).
/// Kept away for 12 s (the retries back off meanwhile), the restarted registrar is
/// registered with again within 30 s and the first call rings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_a_stopped_registrar_is_offline_within_seconds_and_a_restarted_one_rings_within_30_s() {
    let ports = SipPorts::next();
    let mut kamailio = Kamailio::start_tcp(&ports, 60);
    let server = start(&ports, PASSWORD, 60, "tcp", &[]);
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let stopped = Instant::now();
    tokio::task::block_in_place(|| kamailio.stop());
    let offline = reach(&mut c, &server, "Offline", stopped, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| kamailio.restart());
    let bound = Duration::from_secs(30);
    let available = reach(&mut c, &server, "Available", restarted, bound).await;
    rings(&mut c, &ports).await;
    let rang = restarted.elapsed();
    assert!(rang <= bound, "rang {rang:?} after the restart");
    let seen = registers(&kamailio.log());
    let most = assert_polite(&seen, None);
    eprintln!(
        "tcp: offline {offline:?} after the stop; available {available:?} and rang {rang:?} \
         after the restart; {} REGISTERs, at most {most} in a second",
        seen.len()
    );
}

/// A registrar that stops answering without closing the connection (SIGSTOP: the kernel
/// still accepts the bytes): the keep-alive (every 2 s here, so silence for 4 s counts)
/// notices and the phone is `Offline` within 8 s, long before the 45 s refresh would.
/// Before that, 6 s of answered keep-alives keep the one connection and registration.
/// Woken (SIGCONT), the registrar has the phone registered within 30 s and rings it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_a_registrar_that_stops_answering_is_noticed_by_the_keepalive() {
    let ports = SipPorts::next();
    let kamailio = Kamailio::start_tcp(&ports, 60);
    let server = start(&ports, PASSWORD, 60, "tcp", &["--sip-keepalive-secs", "2"]);
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    c.expect_silence(Duration::from_secs(6)).await;
    let before = registers(&kamailio.log());
    assert_eq!(
        before.len(),
        2,
        "one REGISTER and its answer while the keep-alives are answered: {before:?}"
    );
    let stopped = Instant::now();
    let stopped_at = now();
    kamailio.signal("STOP");
    let offline = reach(&mut c, &server, "Offline", stopped, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let woken = Instant::now();
    let woken_at = now();
    kamailio.signal("CONT");
    let bound = Duration::from_secs(30);
    let available = reach(&mut c, &server, "Available", woken, bound).await;
    rings(&mut c, &ports).await;
    let rang = woken.elapsed();
    assert!(rang <= bound, "rang {rang:?} after SIGCONT");
    let seen = registers(&kamailio.log());
    let most = assert_polite(&seen, Some((woken_at, woken_at + 0.5)));
    // What the phone sent while kamailio slept (it reads it all on waking): at most one
    // a second (each maybe with the digest answer kamailio's late challenge asks).
    let asleep = seen
        .iter()
        .filter(|s| s.at > stopped_at && s.at <= woken_at + 0.5);
    let asleep = asleep.filter(|s| !s.answer).count();
    let slept = woken_at - stopped_at;
    assert!(
        asleep as f64 <= slept + 1.0,
        "{asleep} REGISTERs in {slept:.1} s asleep: {seen:?}"
    );
    let err = server.stderr_after_kill();
    assert!(
        err.contains("the TCP connection to the registrar closed"),
        "the log does not say why:\n{err}"
    );
    eprintln!(
        "tcp silent: offline {offline:?} after SIGSTOP; available {available:?} and rang \
         {rang:?} after SIGCONT; {asleep} REGISTERs sent in {slept:.1} s asleep; {} in \
         all, at most {most} in a second",
        seen.len()
    );
}

/// A wrong password: three tries about 1 s apart (each a REGISTER and its digest
/// answer), then the phone waits minutes, and /health and the log say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_backs_off_to_minutes_and_says_so() {
    let ports = SipPorts::next();
    let kamailio = Kamailio::start(&ports, 60);
    let server = start(&ports, "not-the-password", 10, "udp", &[]);
    let deadline = Instant::now() + WAIT;
    let h = loop {
        let h = health(&server);
        if h["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("refused 3 times")
        {
            break h;
        }
        assert!(Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(h["state"], "Offline", "{h}");
    assert_eq!(
        h["last_error"],
        "registration failed: 401 Unauthorized (refused 3 times in a row: retrying every 5 \
         minutes)",
        "{h}"
    );
    let slow_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let seen = registers(&kamailio.log());
    let firsts = seen.iter().filter(|s| !s.answer).count();
    assert_eq!(firsts, 3, "three tries, then none for 8 s: {seen:?}");
    assert_eq!(seen.len(), 6, "each with one digest answer: {seen:?}");
    let most = assert_polite(&seen, None);
    let span = seen[seen.len() - 1].at - seen[0].at;
    let err = server.stderr_after_kill();
    assert!(
        err.lines().any(|l| l.contains("WARN")
            && l.contains("refused 3 times in a row: retrying every 5 minutes")),
        "no warning of the back-off in:\n{err}"
    );
    assert!(!err.contains(PASSWORD) && !err.contains("not-the-password"));
    eprintln!(
        "wrong password: 3 tries in {span:.2} s, none in the {:?} after; at most {most} \
         REGISTERs in a second",
        slow_since.elapsed()
    );
}

/// A registrar's `423 Interval Too Brief` with `Min-Expires: 30` makes the phone ask
/// for 30 s (and register); a registrar's `503` with `Retry-After: 4` makes it wait 4 s
/// between tries instead of backing off from 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrars_min_expires_and_retry_after_are_followed() {
    let ports = SipPorts::next();
    let kamailio = Kamailio::start_with(&ports, 60, false, &["MIN_EXPIRES_30"]);
    let server = start(&ports, PASSWORD, 10, "udp", &[]);
    let _c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let err = server.stderr_after_kill();
    assert!(
        err.contains("registration failed: 423 Interval Too Brief"),
        "no 423 first:\n{err}"
    );
    assert!(
        err.contains("registered seconds=30"),
        "not for 30 s:\n{err}"
    );
    drop(kamailio);

    let ports = SipPorts::next();
    let kamailio = Kamailio::start_with(&ports, 60, false, &["REFUSE_REGISTER", "RETRY_AFTER"]);
    let _server = start(&ports, PASSWORD, 10, "udp", &[]);
    tokio::time::sleep(Duration::from_millis(9500)).await;
    let seen = registers(&kamailio.log());
    assert_eq!(seen.len(), 3, "tries at 0, 4 and 8 s: {seen:?}");
    for w in seen.windows(2) {
        assert!(
            w[1].at - w[0].at >= 3.95,
            "Retry-After not followed: {seen:?}"
        );
    }
}

/// The phone's entry in /health.
fn health(server: &Server) -> serde_json::Value {
    let h = harness::health(server.port);
    h["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["kind"] != "sim").cloned())
        .unwrap_or_else(|| panic!("no sip backend in /health: {h}"))
}
