//! SIP over TLS (issue #21, item 2) against a real registrar: kamailio with its TLS module
//! and a certificate authority made by the test (openssl). The built-in phone registers
//! over TLS, checking the registrar's certificate against the configured CA; calls go
//! out and come in over that connection (the phone has no TLS server of its own: the
//! registrar reuses the connection, see `tests/sip/kamailio.cfg`); a certificate from
//! another CA, or one without the expected name, is refused with a reason that says so,
//! and the phone stays `Offline`.
// The harness starts kamailio and SIPp with Unix process groups.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::time::Duration;

use common::{Server, Ws};
use harness::{Kamailio, PASSWORD, Phone, Role, SipPorts, Sipp, TestCerts};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The phone over TLS, trusting `ca`, with `extra` flags.
fn start(ports: &SipPorts, ca: &std::path::Path, extra: &[&str]) -> Server {
    let mut flags = ports.flags_for(Phone::Sip, PASSWORD, 60, "tls");
    flags.extend(["--sip-tls-ca-file".to_owned(), ca.display().to_string()]);
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(&flags)
}

/// Waits until the phone's /health entry satisfies `ok`; returns it.
async fn health_until(
    server: &Server,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let h = harness::phone_health(server.port);
        if ok(&h) {
            return h;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_calls_out_and_rings_over_tls() {
    let certs = TestCerts::make();
    let ports = SipPorts::next();
    let kamailio = Kamailio::start_tls(&ports, 60, &certs);
    let server = start(&ports, &certs.ca, &[]);
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let h = harness::phone_health(server.port);
    assert_eq!(h["link"], "registered", "{h}");
    let log = kamailio.log();
    assert!(
        log.lines()
            .any(|l| l.contains("REGISTER-SEEN") && l.contains(" tls ")),
        "kamailio took the REGISTER over TLS:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("REGISTER-SEEN") && l.contains(" udp ")),
        "no REGISTER over UDP:\n{log}"
    );

    // Out: the INVITE goes over TLS to kamailio, which relays it to SIPp.
    let far = Sipp::start(&ports, Role::Far, "uas_answer_then_bye.xml", &["-d", "800"]);
    assert_eq!(c.call("CallOut", json!(["2001"])).await, json!(0));
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    let ended = c.expect_notification("CallDisconnected").await;
    assert_eq!(ended, [id.as_str(), "Connection reset by peer"]);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    let wire = harness::passed(far, WAIT).await;
    assert!(wire.contains("Proxy-Authorization: Digest"), "{wire}");

    // In: SIPp calls 1001 through kamailio, which reaches the phone over its connection.
    let caller = Sipp::start(&ports, Role::Caller, "uac_call.xml", &[]);
    let coming = c.expect_notification("CallComing").await;
    assert_eq!(coming[1], "2001", "the caller's number");
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.call("Answer", json!([])).await, json!(0));
    assert_eq!(
        c.expect_notification("CallConnected").await,
        [coming[0].as_str()]
    );
    c.call("HangUp", json!([])).await;
    assert_eq!(
        c.expect_notification("CallDisconnected").await[0],
        coming[0]
    );
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    harness::passed(caller, WAIT).await;
    let log = kamailio.log();
    assert!(
        !log.contains("ERROR") || !log.contains("tls_"),
        "kamailio's TLS had errors:\n{log}"
    );
}

/// A registrar whose certificate comes from a CA the phone does not trust: no
/// registration, `Offline`, and a last failure that names the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_with_the_reason() {
    let certs = TestCerts::make();
    let ports = SipPorts::next();
    let kamailio = Kamailio::start_tls(&ports, 60, &certs);
    let server = start(&ports, &certs.other_ca, &[]);
    let h = health_until(&server, "a failure", |h| h["last_error"].is_string()).await;
    let why = h["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        why.contains("TLS certificate refused") && why.contains("UnknownIssuer"),
        "the reason names the certificate's issuer: {h}"
    );
    assert_eq!(h["state"], "Offline", "{h}");
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Offline"));
    assert!(
        !kamailio.log().contains("REGISTER-SEEN"),
        "no REGISTER reached kamailio:\n{}",
        kamailio.log()
    );
}

/// A certificate that does not carry the name the phone expects (`tls_server_name`):
/// refused, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused_with_the_reason() {
    let certs = TestCerts::make();
    let ports = SipPorts::next();
    let kamailio = Kamailio::start_tls(&ports, 60, &certs);
    let server = start(&ports, &certs.ca, &["--sip-tls-server-name", "other.test"]);
    let h = health_until(&server, "a failure", |h| h["last_error"].is_string()).await;
    let why = h["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        why.contains("TLS certificate refused") && why.contains("NotValidForName"),
        "the reason names the certificate's name: {h}"
    );
    assert_eq!(h["state"], "Offline", "{h}");
    assert!(!kamailio.log().contains("REGISTER-SEEN"));
    // The name the certificate does carry is accepted.
    drop(server);
    let server = start(&ports, &certs.ca, &["--sip-tls-server-name", "pbx.test"]);
    common::baresip::connect_when(&server, "Available", WAIT).await;
}

/// A `sips:` account: REGISTER, Contact and the dialled number are `sips:` URIs, over TLS
/// (the transport the scheme implies, with no flag for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sips_account_registers_and_calls_with_sips_uris() {
    let certs = TestCerts::make();
    let ports = SipPorts::next();
    let kamailio = Kamailio::start_tls(&ports, 60, &certs);
    let mut flags = ports.flags_for(Phone::Sip, PASSWORD, 60, "tls");
    let at = flags
        .iter()
        .position(|f| f == "--sip-transport")
        .expect("a transport flag");
    flags.drain(at..at + 2);
    let at = flags
        .iter()
        .position(|f| f == "--sip-account")
        .expect("an account flag");
    flags[at + 1] = flags[at + 1].replacen("sip:", "sips:", 1);
    flags.extend([
        "--sip-tls-ca-file".to_owned(),
        certs.ca.display().to_string(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&flags);
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let log = kamailio.log();
    assert!(
        log.lines()
            .any(|l| l.contains("REGISTER-SEEN") && l.contains(" tls ")),
        "kamailio took the REGISTER over TLS:\n{log}"
    );
    let far = Sipp::start(&ports, Role::Far, "uas_answer_then_bye.xml", &["-d", "500"]);
    assert_eq!(c.call("CallOut", json!(["2001"])).await, json!(0));
    let id = c.expect_notification("CallingOut").await[0].clone();
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    c.expect_notification("CallDisconnected").await;
    let wire = harness::passed(far, WAIT).await;
    let invite = wire
        .split("-----")
        .find(|m| m.contains("INVITE sips:"))
        .unwrap_or_else(|| panic!("a sips: INVITE reached the far end:\n{wire}"));
    assert!(invite.contains("INVITE sips:2001@"), "{invite}");
    assert!(invite.contains("From: <sips:1001@"), "{invite}");
    assert!(invite.contains("Contact: <sips:1001@"), "{invite}");
}
