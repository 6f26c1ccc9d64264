//! End-to-end tests of both real phones in a real SIP network: the bapiws server with
//! its own SIP phone (`sip`) or managing a baresip phone, registering (digest auth) with
//! a real registrar (Debian's kamailio), and SIPp (Debian's sip-tester) as the far ends,
//! with the scenarios in `tests/sip/`. Everything runs on loopback (see
//! `tests/sip/harness.rs`); the tests fail, never skip, when baresip, kamailio or SIPp is
//! missing.
//!
//! One table of scenarios ([`scenarios!`]) runs against both phones (`baresip::…` and
//! `sip::…`); where the built-in phone does better than baresip 1.0's documented limits,
//! the scenario asserts the better behaviour for `sip`. The tests about supervising
//! baresip's process, and the built-in phone's own faults, stand alone below the table.
// The baresip backend runs on Linux (Unix) only: on Windows it is not offered
// (docs/windows.md), so these tests are not built there.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::time::Duration;

use common::baresip::managed_baresip_pid;
use common::{Server, Ws};
use harness::{Kamailio, PASSWORD, Phone, Role, SipPorts, Sipp, kill};
use serde_json::json;

/// Runs each scenario against both phones: `baresip::NAME` and `sip::NAME`.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod baresip {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Phone::Baresip).await
                }
            )*
        }
        mod sip {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Phone::Sip).await
                }
            )*
        }
    };
}

scenarios!(
    registers_with_digest_auth_and_a_call_out_ends_with_the_far_ends_bye,
    hang_up_sends_bye,
    rejections_end_the_call_with_their_reasons,
    hang_up_while_ringing_sends_cancel,
    call_in_rings_with_the_callers_number_and_is_answered,
    call_in_cancelled_by_the_caller,
    call_in_rejected,
    a_wrong_password_is_offline_with_the_reason,
    a_registration_lapse_during_a_call_stays_busy_until_it_ends,
    call_out_during_a_call_reports_what_the_phone_does,
    two_calls_ringing_are_told_apart_by_answer_and_hang_up,
    far_end_hold_and_resume_are_answered,
    hold_and_resume_reach_the_far_end,
    a_refer_from_the_far_end_is_a_new_call_with_its_own_id,
    a_dial_answered_only_with_trying_is_visible_and_can_be_hung_up,
    a_registrar_that_goes_away_makes_the_phone_offline_then_available,
);

/// Long enough for any one SIP step on loopback (registrations, answers, BYEs).
const SIP_WAIT: Duration = Duration::from_secs(20);

/// The registration interval the phone uses in these tests (kamailio caps it too).
const INTERVAL: u32 = 5;

/// A phone registered with a registrar, and a WebSocket client that saw nothing yet.
struct Net {
    ports: SipPorts,
    kamailio: Kamailio,
    server: Server,
}

fn start_server(phone: Phone, ports: &SipPorts, password: &str, extra: &[&str]) -> Server {
    start_server_on(phone, ports, password, "udp", extra)
}

fn start_server_on(
    phone: Phone,
    ports: &SipPorts,
    password: &str,
    transport: &str,
    extra: &[&str],
) -> Server {
    if phone == Phone::Baresip {
        common::baresip::require_baresip();
    }
    let mut flags = ports.flags_for(phone, password, INTERVAL, transport);
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(&flags)
}

/// How many of a baresip-only flag list apply to `phone` (all, or none).
fn phone_flags(phone: Phone) -> usize {
    match phone {
        Phone::Baresip => 2,
        Phone::Sip => 0,
    }
}

fn network(phone: Phone, extra: &[&str]) -> Net {
    let ports = SipPorts::next();
    let kamailio = Kamailio::start(&ports, 60);
    let server = start_server(phone, &ports, PASSWORD, extra);
    Net {
        ports,
        kamailio,
        server,
    }
}

/// Connects once the phone is in `state` (within [`SIP_WAIT`]).
async fn connect_when(server: &Server, state: &str) -> Ws {
    common::baresip::connect_when(server, state, SIP_WAIT).await
}

/// CallOut 2001 from an idle phone: CallingOut, StateChanged and CallConnected for the
/// call, in that order; returns its id.
async fn call_out_connected(c: &mut Ws) -> String {
    c.call("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    c.expect_notification("StateChanged").await;
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    id
}

/// The rows of GetActiveCalls as (id, direction, state, number).
async fn calls(c: &mut Ws) -> Vec<(String, String, String, String)> {
    let flat = c.call("GetActiveCalls", json!([])).await;
    let flat: Vec<String> = flat
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_owned())
        .collect();
    flat.chunks(6)
        .map(|f| (f[4].clone(), f[1].clone(), f[2].clone(), f[3].clone()))
        .collect()
}

async fn wait_message(sipp: &Sipp, first_line: &str) {
    let deadline = tokio::time::Instant::now() + SIP_WAIT;
    while !sipp
        .messages()
        .lines()
        .any(|l| l.trim_start().starts_with(first_line))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIPp never saw {first_line}:\n{}",
            sipp.messages()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Digest registration makes the phone Available (and /health says registered); a call
/// out goes through the registrar, is answered, and ends with the far end's BYE.
async fn registers_with_digest_auth_and_a_call_out_ends_with_the_far_ends_bye(phone: Phone) {
    let net = network(phone, &[]);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_answer_then_bye.xml",
        &["-d", "1000"],
    );
    let mut c = connect_when(&net.server, "Available").await;
    let h = harness::phone_health(net.server.port);
    assert_eq!(h["state"], "Available", "{h}");
    assert_eq!(h["link"], "registered", "{h}");

    assert_eq!(c.call("CallOut", json!(["2001"])).await, json!(0));
    let out = c.expect_notification("CallingOut").await;
    assert_eq!(out[1], "2001");
    let id = out[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended, [id.as_str(), "Connection reset by peer"]);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    assert!(
        wire.contains("Proxy-Authorization: Digest"),
        "the INVITE was authenticated:\n{wire}"
    );
}

/// HangUp of a connected call sends BYE (SIPp's scenario passes only if it gets one).
async fn hang_up_sends_bye(phone: Phone) {
    let net = network(phone, &[]);
    let far = Sipp::start(&net.ports, Role::Far, "uas_answer.xml", &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let id = call_out_connected(&mut c).await;
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [id.as_str(), "Connection reset by user"]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    assert!(wire.contains("BYE sip:"), "{wire}");
}

/// The far end refuses: 486, 404 and 603 each end the call with their reason.
async fn rejections_end_the_call_with_their_reasons(phone: Phone) {
    let net = network(phone, &[]);
    let mut c = connect_when(&net.server, "Available").await;
    for (code, reason) in [(486, "Busy Here"), (404, "Not Found"), (603, "Decline")] {
        let far = Sipp::start_rejecting(&net.ports, code, reason);
        c.call("CallOut", json!(["2001"])).await;
        let id = c.expect_notification("CallingOut").await[0].clone();
        assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
        let ended = c.expect_notification("CallDisconnected").await;
        assert_eq!(ended, [id.clone(), format!("{code} {reason}")]);
        assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
        harness::passed(far, SIP_WAIT).await;
        assert!(calls(&mut c).await.is_empty());
    }
}

/// HangUp while the far end rings sends CANCEL.
async fn hang_up_while_ringing_sends_cancel(phone: Phone) {
    let net = network(phone, &[]);
    let far = Sipp::start(&net.ports, Role::Far, "uas_ring.xml", &[]);
    let mut c = connect_when(&net.server, "Available").await;
    c.call("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    c.expect_notification("StateChanged").await;
    wait_message(&far, "SIP/2.0 180").await;
    assert_eq!(calls(&mut c).await[0].2, "Calling");
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    assert!(wire.contains("CANCEL sip:"), "{wire}");
}

/// A call in through the registrar: CallComing with the caller's number, Answer, and
/// HangUp sends BYE to the caller.
async fn call_in_rings_with_the_callers_number_and_is_answered(phone: Phone) {
    let net = network(phone, &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let caller = Sipp::start(&net.ports, Role::Caller, "uac_call.xml", &[]);
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "2001", "the caller's number");
    let id = coming[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(
        calls(&mut c).await,
        [(
            id.clone(),
            "Inbound".into(),
            "Ringing".into(),
            "2001".into()
        )]
    );
    assert_eq!(c.call("Answer", json!([])).await, json!(0));
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    assert_eq!(calls(&mut c).await[0].2, "Connected");
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    harness::passed(caller, SIP_WAIT).await;
}

/// The caller gives up while the phone rings (CANCEL): the call ends.
async fn call_in_cancelled_by_the_caller(phone: Phone) {
    let net = network(phone, &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let caller = Sipp::start(&net.ports, Role::Caller, "uac_cancel.xml", &["-d", "1000"]);
    let id = c.expect_notification("CallComing").await[0].clone();
    c.expect_notification("StateChanged").await;
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    harness::passed(caller, SIP_WAIT).await;
    assert!(calls(&mut c).await.is_empty());
}

/// HangUp of a ringing inbound call rejects it (the caller gets 486).
async fn call_in_rejected(phone: Phone) {
    let net = network(phone, &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let caller = Sipp::start(&net.ports, Role::Caller, "uac_rejected.xml", &[]);
    let id = c.expect_notification("CallComing").await[0].clone();
    c.expect_notification("StateChanged").await;
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    harness::passed(caller, SIP_WAIT).await;
}

/// A wrong password: Offline, and the registrar's answer is in /health, in the log at
/// warn, and in CallOut's error.
async fn a_wrong_password_is_offline_with_the_reason(phone: Phone) {
    let ports = SipPorts::next();
    let _kamailio = Kamailio::start(&ports, 60);
    let server = start_server(phone, &ports, "not-the-password", &[]);
    let mut c = Ws::connect(&server.url).await;
    let deadline = tokio::time::Instant::now() + SIP_WAIT;
    let h = loop {
        let h = harness::phone_health(server.port);
        if h["link"] == "not registered" {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(h["state"], "Offline", "{h}");
    assert_eq!(
        h["last_error"], "registration failed: 401 Unauthorized",
        "{h}"
    );
    assert_eq!(c.call("GetState", json!([])).await, json!("Offline"));
    let resp = c.request("CallOut", json!(["2001"])).await;
    assert_eq!(resp["error"]["code"], -32001, "{resp}");
    let message = resp["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("401 Unauthorized"), "{resp}");
    assert_eq!(
        resp["error"]["data"]["lastError"], "registration failed: 401 Unauthorized",
        "the reason in the error's data: {resp}"
    );
    let err = server.stderr_after_kill();
    let warned = err
        .lines()
        .any(|l| l.contains("WARN") && l.contains("registration failed") && l.contains("401"));
    assert!(warned, "no warning with the status in:\n{err}");
    assert!(!err.contains(PASSWORD) && !err.contains("not-the-password"));
}

/// The registration lapses during a call (the registrar comes back refusing REGISTER):
/// the phone stays Busy with the call listed until it ends, then reports Offline.
async fn a_registration_lapse_during_a_call_stays_busy_until_it_ends(phone: Phone) {
    let mut net = network(phone, &[]);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_answer_then_bye.xml",
        &["-d", "12000"],
    );
    let mut c = connect_when(&net.server, "Available").await;
    let id = call_out_connected(&mut c).await;
    tokio::task::block_in_place(|| net.kamailio.restart_refusing_registrations());
    // The next refresh (every INTERVAL s) fails with 503.
    let deadline = tokio::time::Instant::now() + SIP_WAIT;
    while harness::phone_health(net.server.port)["link"] != "not registered" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "registration never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.call("GetState", json!([])).await, json!("Busy"));
    assert_eq!(calls(&mut c).await[0].2, "Connected");
    // The far end hangs up (through the registrar, by the recorded route).
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
    harness::passed(far, SIP_WAIT).await;
    let h = harness::phone_health(net.server.port);
    assert_eq!(
        h["last_error"], "registration failed: 503 Registrar Unavailable",
        "{h}"
    );
}

/// baresip is stopped when CallOut comes (it cannot answer the dial in time) and goes on
/// later: the reply, the events and GetActiveCalls agree with the call it then places,
/// under one call id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_that_baresip_answers_late_is_one_call_with_one_id() {
    let net = network(Phone::Baresip, &["--baresip-command-timeout-ms", "300"]);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_answer_then_bye.xml",
        &["-d", "500"],
    );
    let mut c = connect_when(&net.server, "Available").await;
    let pid = managed_baresip_pid(net.server.child.id()).expect("baresip runs");
    kill(pid, "STOP");
    let resp = c.request("CallOut", json!(["2001"])).await;
    let stopped_calls = {
        let out = c.expect_notification("CallingOut").await;
        assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
        let listed = calls(&mut c).await;
        kill(pid, "CONT");
        assert_eq!(resp["result"], json!(0), "{resp}");
        (out[0].clone(), listed)
    };
    let (id, listed) = stopped_calls;
    assert_eq!(
        listed,
        [(
            id.clone(),
            "Outbound".into(),
            "Calling".into(),
            "2001".into()
        )]
    );
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    harness::passed(far, SIP_WAIT).await;
    // No second call anywhere.
    c.expect_silence(Duration::from_millis(300)).await;
}

/// CallOut while a call is connected. baresip does not hold the first call (no
/// re-INVITE), so it must not be reported OnHold; the built-in phone holds it (a
/// re-INVITE with a=sendonly, CallHeld) as the simulator does.
async fn call_out_during_a_call_reports_what_the_phone_does(phone: Phone) {
    let net = network(phone, &[]);
    let far = Sipp::start(&net.ports, Role::Far, "uas_answer.xml", &["-m", "2"]);
    let mut c = connect_when(&net.server, "Available").await;
    c.call("Events.Subscribe", json!(["CallHeld", "CallResumed"]))
        .await;
    c.call("CallOut", json!(["2001"])).await;
    let first = c.expect_notification("CallingOut").await[0].clone();
    c.expect_notification("StateChanged").await;
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [first.as_str()]
    );
    c.call("CallOut", json!(["2002"])).await;
    if phone == Phone::Sip {
        assert_eq!(c.expect_notification("CallHeld").await, [first.as_str()]);
    }
    let second = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [second.as_str()]
    );
    let states: Vec<(String, String)> = calls(&mut c)
        .await
        .into_iter()
        .map(|(id, _, state, _)| (id, state))
        .collect();
    let wire = far.messages();
    let invites = wire.matches("INVITE sip:").count();
    let first_state = match phone {
        Phone::Baresip => {
            assert_eq!(invites, 2, "no hold re-INVITE was sent:\n{wire}");
            "Connected"
        }
        Phone::Sip => {
            assert_eq!(invites, 3, "two calls and one hold re-INVITE:\n{wire}");
            assert!(wire.contains("a=sendonly"), "{wire}");
            "OnHold"
        }
    };
    assert_eq!(
        states,
        [
            (first.clone(), first_state.to_owned()),
            (second.clone(), "Connected".to_owned())
        ]
    );
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], second);
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], first);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    harness::passed(far, SIP_WAIT).await;
}

/// bapiws is killed (SIGKILL): its baresip goes too, and no file holding the SIP
/// password is left behind; the next start removes the dead server's folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_bapiws_leaves_no_password_on_disk() {
    let net = network(Phone::Baresip, &[]);
    let _c = connect_when(&net.server, "Available").await;
    let pid = net.server.child.id();
    let folders = |pid: u32| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(std::env::temp_dir())
            .expect("temp dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("bapiws-baresip-{pid}-")))
            })
            .collect()
    };
    let mine = folders(pid);
    assert_eq!(mine.len(), 1, "{mine:?}");
    let holds_password = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                std::fs::read(f.path())
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(PASSWORD))
            })
    };
    assert!(!holds_password(&mine[0]), "the password is on disk");
    let baresip = managed_baresip_pid(pid).expect("baresip runs");
    let Net {
        ports,
        kamailio,
        server,
    } = net;
    server.stderr_after_kill();
    // baresip follows its parent (SIGTERM on the parent's death).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{baresip}")).exists()
        && !std::fs::read_to_string(format!("/proc/{baresip}/stat"))
            .is_ok_and(|s| s.contains(") Z"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "baresip outlived bapiws"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for dir in folders(pid) {
        assert!(!holds_password(&dir), "the password was left in {dir:?}");
    }
    // The next server cleans up what the killed one left.
    let next = start_server(Phone::Baresip, &ports, PASSWORD, &[]);
    let _c = connect_when(&next, "Available").await;
    assert!(folders(pid).is_empty(), "{:?}", folders(pid));
    drop(kamailio);
}

/// Two calls ring at once (one SIPp caller placing two calls): both are announced with
/// the caller's number.
///
/// baresip 1.0 answers neither while both ring, and Answer says so (`-32004`, no 200 OK
/// on the wire, both still Ringing): the reply matches the phone. HangUp then rejects the
/// newest ringing call (486 for that call on the wire), Answer answers the one left, and
/// HangUp ends it (BYE).
///
/// The built-in phone tells them apart: `Answer [first]` answers exactly the first (a 200
/// for its Call-ID only) while the second keeps ringing, `HangUp [second]` rejects exactly
/// the second (486 for its Call-ID), and HangUp ends the first (BYE).
async fn two_calls_ringing_are_told_apart_by_answer_and_hang_up(phone: Phone) {
    let net = network(phone, &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let caller = Sipp::start(
        &net.ports,
        Role::Caller,
        "uac_two_calls.xml",
        &["-m", "2", "-l", "2", "-r", "10"],
    );
    let first = c.expect_notification("CallComing").await;
    assert_eq!(first[1], "2001");
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    let second = c.expect_notification("CallComing").await;
    assert_eq!(second[1], "2001");
    let (first, second) = (first[0].clone(), second[0].clone());
    assert_ne!(first, second);
    let states = |rows: Vec<(String, String, String, String)>| -> Vec<(String, String)> {
        rows.into_iter().map(|(id, _, s, _)| (id, s)).collect()
    };
    let both_ringing = [
        (first.clone(), "Ringing".to_owned()),
        (second.clone(), "Ringing".to_owned()),
    ];
    assert_eq!(states(calls(&mut c).await), both_ringing);
    // The message of the caller's log that answers `status` for the call `call_id`.
    let answered_for = |wire: &str, status: &str, call_id: &str| -> bool {
        wire.split("-----")
            .any(|m| m.contains(status) && m.contains(&format!("Call-ID: {call_id}")))
    };
    match phone {
        Phone::Baresip => {
            let answered = c.request("Answer", json!([])).await;
            assert_eq!(answered["error"]["code"], -32004, "{answered}");
            assert!(
                !caller.messages().contains("SIP/2.0 200"),
                "the phone answered although Answer failed:\n{}",
                caller.messages()
            );
            assert_eq!(states(calls(&mut c).await), both_ringing);
            // HangUp rejects the newest ringing call.
            assert_eq!(c.call("HangUp", json!([])).await, json!(0));
            assert_eq!(c.expect_notification("CallDisconnected").await[0], second);
            wait_message(&caller, "SIP/2.0 486").await;
            assert!(answered_for(&caller.messages(), "SIP/2.0 486", "2-"));
            // One call rings now: Answer answers it.
            assert_eq!(c.call("Answer", json!([])).await, json!(0));
            assert_eq!(
                c.expect_notification("CallConnected").await,
                [first.as_str()]
            );
        }
        Phone::Sip => {
            assert_eq!(c.call("Answer", json!([first])).await, json!(0));
            assert_eq!(
                c.expect_notification("CallConnected").await,
                [first.as_str()]
            );
            wait_message(&caller, "SIP/2.0 200").await;
            let wire = caller.messages();
            assert!(answered_for(&wire, "SIP/2.0 200", "1-"), "{wire}");
            assert!(!answered_for(&wire, "SIP/2.0 200", "2-"), "{wire}");
            assert_eq!(
                states(calls(&mut c).await),
                [
                    (first.clone(), "Connected".to_owned()),
                    (second.clone(), "Ringing".to_owned())
                ]
            );
            assert_eq!(c.call("HangUp", json!([second])).await, json!(0));
            assert_eq!(c.expect_notification("CallDisconnected").await[0], second);
            wait_message(&caller, "SIP/2.0 486").await;
            let wire = caller.messages();
            assert!(answered_for(&wire, "SIP/2.0 486", "2-"), "{wire}");
            assert!(!answered_for(&wire, "SIP/2.0 486", "1-"), "{wire}");
        }
    }
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [first.as_str(), "Connection reset by user"]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(caller, SIP_WAIT).await;
    assert!(wire.contains("BYE sip:"), "{wire}");
}

/// The far end holds the call (re-INVITE a=sendonly) and resumes it (a=sendrecv): both
/// phones answer both (recvonly, then sendrecv). baresip's `listcalls` marks only calls it
/// holds itself, so with it the client sees `Connected` throughout and nothing but the
/// call's start and end. The built-in phone shows the far end's hold: `HeldByFarEnd` in
/// GetActiveCalls and `CallHeldByFarEnd`/`CallResumedByFarEnd` for a subscriber, then
/// `Connected` again.
async fn far_end_hold_and_resume_are_answered(phone: Phone) {
    let net = network(phone, &[]);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_hold_resume.xml",
        &["-d", "1500"],
    );
    let mut c = connect_when(&net.server, "Available").await;
    c.call(
        "Events.Subscribe",
        json!(["CallHeldByFarEnd", "CallResumedByFarEnd"]),
    )
    .await;
    c.call("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    wait_message(&far, "ACK").await;
    match phone {
        Phone::Sip => {
            assert_eq!(
                c.expect_notification("CallHeldByFarEnd").await,
                [id.as_str()]
            );
            assert_eq!(calls(&mut c).await[0].2, "HeldByFarEnd");
            // The hold was answered recvonly (we still send) on its way to the far end.
            wait_message(&far, "a=recvonly").await;
            assert_eq!(
                c.expect_notification("CallResumedByFarEnd").await,
                [id.as_str()]
            );
            assert_eq!(calls(&mut c).await[0].2, "Connected");
        }
        Phone::Baresip => {
            let deadline = tokio::time::Instant::now() + SIP_WAIT;
            while far.messages().matches("a=recvonly").count() < 1 {
                assert!(tokio::time::Instant::now() < deadline, "{}", far.messages());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(calls(&mut c).await[0].2, "Connected");
        }
    }
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended, [id.as_str(), "Connection reset by peer"]);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    assert!(
        wire.contains("a=sendonly") && wire.contains("a=sendrecv"),
        "{wire}"
    );
    // The phone itself sent no re-INVITE (it never held the call).
    assert_eq!(wire.matches("INVITE sip:").count(), 3, "{wire}");
    c.expect_silence(Duration::from_millis(300)).await;
}

/// The phone holds the call (`Call.Hold`: a re-INVITE offering a=sendonly, which the far
/// end answers a=recvonly) and resumes it (`Call.Resume`: a=sendrecv); the far end checks
/// each offer's direction and fails on any other. GetActiveCalls follows: `OnHold`, then
/// `Connected`; `HangUp` sends the BYE.
async fn hold_and_resume_reach_the_far_end(phone: Phone) {
    let net = network(phone, &[]);
    let far = Sipp::start(&net.ports, Role::Far, "uas_held_by_the_phone.xml", &[]);
    let mut c = connect_when(&net.server, "Available").await;
    c.call("Events.Subscribe", json!(["CallHeld", "CallResumed"]))
        .await;
    c.call("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    wait_message(&far, "ACK").await;
    assert_eq!(c.call("Call.Hold", json!([id])).await, json!(0));
    assert_eq!(c.expect_notification("CallHeld").await, [id.as_str()]);
    wait_message(&far, "X-Offer-Seen: a=sendonly").await;
    assert_eq!(calls(&mut c).await[0].2, "OnHold");
    assert_eq!(c.call("Call.Resume", json!([id])).await, json!(0));
    assert_eq!(c.expect_notification("CallResumed").await, [id.as_str()]);
    wait_message(&far, "X-Offer-Seen: a=sendrecv").await;
    assert_eq!(calls(&mut c).await[0].2, "Connected");
    assert_eq!(c.call("HangUp", json!([id])).await, json!(0));
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    // Three INVITE transactions (the call, the hold, the resume), counted by CSeq: on a
    // loaded machine the phone may retransmit one, and SIPp logs each copy.
    let mut invites: Vec<&str> = wire
        .lines()
        .filter(|l| l.starts_with("CSeq:") && l.trim_end().ends_with(" INVITE"))
        .collect();
    invites.sort_unstable();
    invites.dedup();
    assert_eq!(invites.len(), 3, "{wire}");
    assert!(wire.contains("BYE sip:"), "{wire}");
}

/// The far end transfers the call (REFER to 2002): the phone places a new call, which
/// appears under its own id. baresip does not hold the first call (no re-INVITE from the
/// phone), so it is not reported held; the built-in phone holds it (a=sendonly, OnHold).
/// HangUp ends the newest connected call first.
async fn a_refer_from_the_far_end_is_a_new_call_with_its_own_id(phone: Phone) {
    let net = network(phone, &[]);
    let registrar = format!("127.0.0.1:{}", net.ports.registrar);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_refer.xml",
        &["-m", "2", "-aa", "-key", "registrar", &registrar],
    );
    let mut c = connect_when(&net.server, "Available").await;
    c.call("CallOut", json!(["2001"])).await;
    let first = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [first.as_str()]
    );
    let out = c.expect_notification("CallingOut").await;
    assert_eq!(out[1], "2002", "the transfer target");
    let second = out[0].clone();
    assert_ne!(second, first);
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [second.as_str()]
    );
    let rows: Vec<(String, String, String)> = calls(&mut c)
        .await
        .into_iter()
        .map(|(id, dir, state, _)| (id, dir, state))
        .collect();
    let wire = far.messages();
    let held = wire.contains("a=sendonly");
    let first_state = match phone {
        Phone::Baresip => {
            assert!(!held, "baresip 1.0 does not hold on REFER:\n{wire}");
            "Connected"
        }
        Phone::Sip => {
            assert!(held, "the first call is held by a re-INVITE:\n{wire}");
            "OnHold"
        }
    };
    assert_eq!(
        rows,
        [
            (first.clone(), "Outbound".into(), first_state.into()),
            (second.clone(), "Outbound".into(), "Connected".into())
        ]
    );
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], second);
    c.call("HangUp", json!([])).await;
    assert_eq!(c.expect_notification("CallDisconnected").await[0], first);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    assert!(
        wire.contains("REFER sip:") && wire.contains("SIP/2.0 202"),
        "{wire}"
    );
}

/// baresip is killed (SIGKILL) during a call with a SIPp far end: the call ends
/// (`phone connection lost`), the phone is Offline, bapiws starts baresip again, and it
/// registers: Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_baresip_mid_call_ends_the_call_and_recovers() {
    let net = network(Phone::Baresip, &[]);
    let far = Sipp::start(&net.ports, Role::Far, "uas_answer.xml", &[]);
    let mut c = connect_when(&net.server, "Available").await;
    let id = call_out_connected(&mut c).await;
    let pid = managed_baresip_pid(net.server.child.id()).expect("baresip runs");
    kill(pid, "KILL");
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [id.as_str(), "phone connection lost"]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Offline"]);
    let back = tokio::time::timeout(SIP_WAIT, c.expect_notification("StateChanged")).await;
    assert_eq!(back.expect("registered again in time"), ["Available"]);
    assert!(calls(&mut c).await.is_empty());
    let next = managed_baresip_pid(net.server.child.id()).expect("a new baresip");
    assert_ne!(next, pid);
    drop(far);
}

/// CallOut to a far end that never rings (100 Trying only), with baresip stopped around
/// the dial: the call is visible as Calling at once, and HangUp cancels it (CANCEL on the
/// wire), with no -32002.
async fn a_dial_answered_only_with_trying_is_visible_and_can_be_hung_up(phone: Phone) {
    let net = network(
        phone,
        &["--baresip-command-timeout-ms", "300"][..phone_flags(phone)],
    );
    let far = Sipp::start(&net.ports, Role::Far, "uas_trying.xml", &[]);
    let mut c = connect_when(&net.server, "Available").await;
    // baresip is stopped around the dial; the built-in phone has no process to stop.
    let pid = match phone {
        Phone::Baresip => {
            let pid = managed_baresip_pid(net.server.child.id()).expect("baresip runs");
            kill(pid, "STOP");
            Some(pid)
        }
        Phone::Sip => None,
    };
    let resp = c.request("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    if let Some(pid) = pid {
        kill(pid, "CONT");
    }
    assert_eq!(resp["result"], json!(0), "{resp}");
    wait_message(&far, "SIP/2.0 100").await;
    assert_eq!(
        calls(&mut c).await,
        [(
            id.clone(),
            "Outbound".into(),
            "Calling".into(),
            "2001".into()
        )]
    );
    let hung = c.request("HangUp", json!([])).await;
    assert_eq!(hung["result"], json!(0), "{hung}");
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    assert!(wire.contains("CANCEL sip:"), "{wire}");
    c.expect_silence(Duration::from_millis(300)).await;
}

/// The registrar goes away (over TCP, so that a refresh fails at once instead of after
/// SIP's 32 s timer): the phone is Offline within the registration interval plus a
/// margin, with the reason in /health, and Available again once the registrar is back.
async fn a_registrar_that_goes_away_makes_the_phone_offline_then_available(phone: Phone) {
    let ports = SipPorts::next();
    let mut kamailio = Kamailio::start_tcp(&ports, 60);
    let server = start_server_on(phone, &ports, PASSWORD, "tcp", &[]);
    let mut c = connect_when(&server, "Available").await;
    let stopped = std::time::Instant::now();
    tokio::task::block_in_place(|| kamailio.stop());
    let limit = Duration::from_secs(u64::from(INTERVAL) + 5);
    let offline = tokio::time::timeout(limit, c.expect_notification("StateChanged")).await;
    assert_eq!(
        offline.expect("Offline within the interval plus a margin"),
        ["Offline"]
    );
    let took = stopped.elapsed();
    let h = harness::phone_health(server.port);
    assert_eq!(h["link"], "not registered", "{h}");
    eprintln!("offline after {took:?}: {h}");
    let restarted = std::time::Instant::now();
    tokio::task::block_in_place(|| kamailio.restart());
    // baresip 1.0 retries on its own 30–60 s schedule; the built-in phone backs off from
    // a second and registers again within 30 s.
    let patience = match phone {
        Phone::Baresip => Duration::from_secs(90),
        Phone::Sip => Duration::from_secs(30),
    };
    let deadline = tokio::time::Instant::now() + patience;
    while harness::phone_health(server.port)["state"] != "Available" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never registered again within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    eprintln!("available again after {:?}", restarted.elapsed());
}

/// The built-in phone stopped cleanly (SIGTERM) un-registers: a call to it then gets the
/// registrar's 404. Started again on the same ports, it registers again and rings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_sigterm_unregisters_and_a_restart_registers_again() {
    let net = network(Phone::Sip, &[]);
    let _c = connect_when(&net.server, "Available").await;
    let (status, stderr, _dir) = tokio::task::block_in_place(|| net.server.terminate());
    assert!(status.success(), "{status:?}\n{stderr}");
    let caller = Sipp::start(&net.ports, Role::Caller, "uac_not_found.xml", &[]);
    harness::passed(caller, SIP_WAIT).await;
    let server = start_server(Phone::Sip, &net.ports, PASSWORD, &[]);
    let mut c = connect_when(&server, "Available").await;
    let caller = Sipp::start(&net.ports, Role::Caller, "uac_call.xml", &[]);
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "2001");
    c.expect_notification("StateChanged").await;
    c.call("Answer", json!([])).await;
    c.expect_notification("CallConnected").await;
    c.call("HangUp", json!([])).await;
    c.expect_notification("CallDisconnected").await;
    harness::passed(caller, SIP_WAIT).await;
}

/// bapiws with the built-in phone is killed (SIGKILL) mid-call: nothing answers the far
/// end any more, and its own timers end the call (SIPp finishes instead of waiting for
/// ever); a new server on the same ports registers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_sigkill_mid_call_leaves_the_far_end_to_its_timers() {
    let net = network(Phone::Sip, &[]);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_answer_then_bye.xml",
        &["-d", "1000"],
    );
    let mut c = connect_when(&net.server, "Available").await;
    call_out_connected(&mut c).await;
    kill(net.server.child.id(), "KILL");
    // SIP's timer F (32 s) bounds the far end's BYE; SIPp gives up within its timeout.
    let (ended, wire) = tokio::task::spawn_blocking(move || far.ended(Duration::from_secs(70)))
        .await
        .expect("join");
    assert!(ended, "the far end never ended the call:\n{wire}");
    assert!(wire.contains("BYE sip:"), "{wire}");
    let after_bye = wire.split("BYE sip:").nth(1).unwrap_or("");
    assert!(
        !after_bye.contains("SIP/2.0 200 OK"),
        "nothing answered the BYE:\n{wire}"
    );
    let server = start_server(Phone::Sip, &net.ports, PASSWORD, &[]);
    let _c = connect_when(&server, "Available").await;
}

/// Attended transfer on the built-in phone: with a call to 2001 (held when the second is
/// placed) and one to 2002, `Call.Transfer [first, second]` sends the first call's far end
/// a REFER whose Refer-To names 2002 with `Replaces` for the second call (its Call-ID, the
/// far end's tag as to-tag, ours as from-tag). Its NOTIFY of success ends the first call
/// (our BYE); the second ends when its far end, replaced, hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_attended_transfer_refers_with_replaces() {
    let net = network(Phone::Sip, &[]);
    let far = Sipp::start(
        &net.ports,
        Role::Far,
        "uas_transferee.xml",
        &["-m", "2", "-d", "3000"],
    );
    let mut c = connect_when(&net.server, "Available").await;
    c.call("Events.Subscribe", json!(["CallTransferred"])).await;
    let first = call_out_connected(&mut c).await;
    c.call("CallOut", json!(["2002"])).await;
    let second = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [second.as_str()]
    );
    assert_eq!(
        c.call("Call.Transfer", json!([first, second])).await,
        json!(0)
    );
    assert_eq!(
        c.expect_notification("CallTransferred").await,
        [first.as_str(), "2002"]
    );
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [first.as_str(), "Connection reset by user"]
    );
    assert_eq!(
        c.expect_notification("CallDisconnected").await,
        [second.as_str(), "Connection reset by peer"]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, SIP_WAIT).await;
    // The second call's Call-ID and tags, as the phone's INVITE to 2002 and its answer had them.
    let second_invite = wire
        .split("INVITE sip:2002@")
        .nth(1)
        .unwrap_or_else(|| panic!("no INVITE to 2002:\n{wire}"));
    let header = |text: &str, name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let call_id = header(second_invite, "Call-ID:");
    let from_tag = header(second_invite, "From:")
        .split(";tag=")
        .nth(1)
        .expect("From tag")
        .to_owned();
    let refer_to = header(
        wire.split("REFER sip:").nth(1).expect("a REFER"),
        "Refer-To:",
    );
    let escaped = |t: &str| t.replace('@', "%40");
    assert!(
        refer_to.contains(&format!("Replaces={}%3Bto-tag%3D", escaped(&call_id)))
            && refer_to.ends_with(&format!("%3Bfrom-tag%3D{from_tag}>")),
        "{refer_to} (second call {call_id}, our tag {from_tag})"
    );
    c.expect_silence(Duration::from_millis(300)).await;
}

/// Over TCP, a call from a caller on UDP (SIPp through kamailio) is answered and hung up
/// by the phone: its BYE reaches the caller. The phone sends it to the caller's Contact as
/// the INVITE gave it, through the record-routed proxy; the SIP stack alone would have
/// given that Contact the TCP transport of the hop the INVITE came over, and kamailio then
/// could not reach the caller (477).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_over_tcp_a_call_from_a_udp_caller_is_hung_up_by_the_phone() {
    let ports = SipPorts::next();
    let _kamailio = Kamailio::start_tcp(&ports, 60);
    let server = start_server_on(Phone::Sip, &ports, PASSWORD, "tcp", &[]);
    let mut c = connect_when(&server, "Available").await;
    let caller = Sipp::start(&ports, Role::Caller, "uac_call.xml", &[]);
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "2001");
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.call("Answer", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [coming[0].as_str()]
    );
    assert_eq!(c.call("HangUp", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallDisconnected").await[0],
        coming[0]
    );
    let wire = harness::passed(caller, SIP_WAIT).await;
    // SIPp's scenario passes only with the BYE; its request line is the caller's Contact.
    assert!(wire.contains("BYE sip:2001@127.0.0.1"), "{wire}");
}
