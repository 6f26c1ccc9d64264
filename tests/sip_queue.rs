//! Queue calls on the built-in SIP phone: a caller (SIPp) rings the phone through a real
//! registrar (kamailio) with the markers a PBX's queue adds to the INVITE, and the phone
//! sends `QueueCallComing` with the fields `[sip.queue]` names, then `CallComing`; a
//! plain call sends only `CallComing`; a hostile marker (10 KB, escapes, bidirectional
//! overrides) arrives bounded and cleaned, and leaves the log clean too.
// The harness starts kamailio and SIPp with Unix process groups.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::time::Duration;

use common::{Server, TempDir, Ws};
use harness::{Kamailio, PASSWORD, Phone, Role, SipPorts, Sipp};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The phone on `transport` with `queue` as its `[sip.queue]` table (a file table).
fn start(ports: &SipPorts, transport: &str, queue: &str) -> (Server, TempDir) {
    let dir = TempDir::new("queue-config");
    let file = dir.path().join("bapiws.toml");
    std::fs::write(&file, format!("[sip.queue]\n{queue}")).expect("config");
    let mut flags = ports.flags_for(Phone::Sip, PASSWORD, 60, transport);
    flags.extend(["--config".to_owned(), file.display().to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    (Server::start(&flags), dir)
}

/// A caller whose INVITE carries `headers` (CRLF-free lines) and, when given, `from`
/// as its From header; the phone rejects it after the test's HangUp.
fn caller(ports: &SipPorts, headers: &[&str], from: Option<&str>, extra: &[&str]) -> Sipp {
    let headers: String = headers.iter().map(|h| format!("{h}\n")).collect();
    let from = from.map(str::to_owned);
    Sipp::start_edited(
        ports,
        Role::Caller,
        "uac_rejected.xml",
        move |text| {
            let text = text.replacen(
                "Max-Forwards: 70\n",
                &format!("Max-Forwards: 70\n{headers}"),
                1,
            );
            match from {
                Some(f) => text.replacen(
                    "From: <sip:2001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\nTo:",
                    &format!("From: {f} <sip:2001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\nTo:"),
                    1,
                ),
                None => text,
            }
        },
        extra,
    )
}

/// Rings the phone with `caller`, returns the first notification's method and params
/// (QueueCallComing or CallComing), checks CallComing follows for the same call, and
/// rejects the call.
async fn ring(c: &mut Ws, caller: Sipp) -> (String, Vec<String>) {
    let first = c.recv().await;
    let method = first["method"].as_str().unwrap_or("").to_owned();
    let params: Vec<String> = first["params"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let id = params.first().cloned().unwrap_or_default();
    if method == "QueueCallComing" {
        assert_eq!(c.expect_notification("CallComing").await[0], id);
    }
    assert_eq!(c.expect_notification("StateChanged").await, ["Busy"]);
    assert_eq!(c.call("HangUp", json!([id])).await, json!(0));
    assert_eq!(c.expect_notification("CallDisconnected").await[0], id);
    assert_eq!(c.expect_notification("StateChanged").await, ["Available"]);
    tokio::task::spawn_blocking(move || caller.passed(WAIT))
        .await
        .expect("join");
    (method, params)
}

/// Headers as a PBX dialplan adds them (see docs/sip-phone.md, Queue calls), over TCP so
/// that a 10 KB marker can travel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_markers_give_queue_call_coming_and_a_plain_call_does_not() {
    let ports = SipPorts::next();
    let _kamailio = Kamailio::start_tcp(&ports, 60);
    let (server, _config) = start(
        &ports,
        "tcp",
        "marker = \"header:X-Queue-Name\"\n\
         queue_id = \"header:X-Queue-Id\"\n\
         queue_call_id = \"header:X-Queue-Call-Id\"\n\
         queue_number = \"uri-user:Diversion\"\n",
    );
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let tcp = ["-t", "t1"];

    let (method, params) = ring(&mut c, caller(&ports, &[], None, &tcp)).await;
    assert_eq!(method, "CallComing", "a plain call: {params:?}");
    assert_eq!(params[1], "2001");

    let queue = caller(
        &ports,
        &[
            "X-Queue-Name: Support",
            "X-Queue-Id: 7",
            "X-Queue-Call-Id: 1733140000.42",
            "Diversion: <sip:%2B358100@127.0.0.1>;reason=unconditional",
        ],
        None,
        &tcp,
    );
    let (method, params) = ring(&mut c, queue).await;
    assert_eq!(method, "QueueCallComing");
    assert_eq!(
        params[1..],
        ["1733140000.42", "2001", "+358100", "7", "Support"]
    );

    // 10 KB of name around a terminal escape (percent-encoded in the Diversion user) and
    // a right-to-left override: bounded to 128 characters, with neither left.
    let long = format!("Sa\u{202E}les{}", "Q".repeat(10_000));
    let name_header = format!("X-Queue-Name: {long}");
    let hostile = caller(
        &ports,
        &[&name_header, "Diversion: <sip:%1B%5B31m555%07@127.0.0.1>"],
        None,
        &tcp,
    );
    let (method, params) = ring(&mut c, hostile).await;
    assert_eq!(method, "QueueCallComing");
    let name = &params[5];
    assert_eq!(name.chars().count(), 128, "{name}");
    assert!(name.starts_with("SalesQQQ"), "{name}");
    assert_eq!(params[3], "[31m555");
    let (_, log, _dir) = server.terminate();
    assert!(log.contains("a queue call rings"), "{log}");
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{202E}') && !log.contains('\u{7}'),
        "the log holds a peer's control characters"
    );
}

/// A queue that prefixes the caller's name (`"Sales: Ann"`), rings with an Alert-Info
/// and names its number in History-Info, over UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_name_prefix_and_alert_info_give_the_fields() {
    let ports = SipPorts::next();
    let _kamailio = Kamailio::start(&ports, 60);
    let (server, _config) = start(
        &ports,
        "udp",
        "marker = \"display-before:: \"\n\
         queue_id = \"param:Alert-Info:info\"\n\
         queue_number = \"uri-user:History-Info\"\n\
         queue_call_id = \"\"\n",
    );
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;

    let (method, _) = ring(&mut c, caller(&ports, &[], Some("\"Ann\""), &[])).await;
    assert_eq!(method, "CallComing", "a name without the queue's prefix");

    let queue = caller(
        &ports,
        &[
            "Alert-Info: <http://127.0.0.1/ring>;info=queue-3",
            "History-Info: <sip:5500@127.0.0.1>;index=1, <sip:1001@127.0.0.1>;index=1.1",
        ],
        Some("\"Sales: Ann\""),
        &[],
    );
    let (method, params) = ring(&mut c, queue).await;
    assert_eq!(method, "QueueCallComing");
    assert_eq!(params[1..], ["", "2001", "5500", "queue-3", "Sales"]);
}
