//! The call-control extensions (issue 14) on the baresip backend, end to end: the bapiws
//! server managing a baresip phone, and a second real baresip as the far end, which
//! reports what reached it over its own ctrl_tcp.
// The baresip backend runs on Linux (Unix) only: on Windows it is not offered
// (docs/windows.md), so these tests are not built there.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::Ws;
use common::baresip::{Ports, Remote, connect_when_ready, remote, start};
use serde_json::json;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Skips notifications until `method`; returns its params.
async fn until(c: &mut Ws, method: &str) -> Vec<String> {
    loop {
        let n = c.recv().await;
        if n["method"] == method {
            return n["params"]
                .as_array()
                .expect("params")
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
        }
    }
}

async fn state_of(c: &mut Ws, id: &str) -> String {
    let calls = c.control("GetActiveCalls", json!([])).await;
    let calls = calls.as_array().expect("array").clone();
    calls
        .chunks(6)
        .find(|r| r[4] == id)
        .map(|r| r[2].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_resume_dtmf_mute_and_transfer_reach_the_far_end() {
    let ports = Ports::next();
    let dir = common::TempDir::new("sip-trace");
    let sip_log = dir.path().join("remote-sip.log");
    let far = Remote::start_traced(&ports, Some(&sip_log));
    let server = start(&ports);
    let mut c = connect_when_ready(&server).await;
    c.call(
        "Events.Subscribe",
        json!(["CallHeld", "CallResumed", "CallTransferred", "MuteChanged"]),
    )
    .await;

    c.call("CallOut", json!(["1002"])).await;
    let id = until(&mut c, "CallingOut").await[0].clone();
    let (far, _) = remote(far, |r| {
        r.wait_event("CALL_INCOMING", EVENT_WAIT);
        r.accept();
        r.wait_event("CALL_ESTABLISHED", EVENT_WAIT);
    })
    .await;
    until(&mut c, "CallConnected").await;

    // Hold: baresip sends a re-INVITE whose SDP holds the far end (sendonly or
    // inactive); the far end reports the new remote SDP and lists the call's direction.
    assert_eq!(c.control("Call.Hold", json!([])).await, json!(0));
    assert_eq!(until(&mut c, "CallHeld").await, [id.as_str()]);
    assert_eq!(state_of(&mut c, &id).await, "OnHold");
    let (far, _) = remote(far, |r| r.wait_event("CALL_REMOTE_SDP", EVENT_WAIT)).await;
    let trace = std::fs::read_to_string(&sip_log).unwrap_or_default();
    let reinvites: Vec<&str> = trace.split("INVITE sip:").skip(2).collect();
    assert!(
        reinvites
            .first()
            .is_some_and(|m| m.contains("a=sendonly") || m.contains("a=inactive")),
        "the far end received a re-INVITE holding it: {trace}"
    );

    assert_eq!(c.control("Call.Resume", json!([id])).await, json!(0));
    assert_eq!(until(&mut c, "CallResumed").await, [id.as_str()]);
    assert_eq!(state_of(&mut c, &id).await, "Connected");
    let (far, _) = remote(far, |r| r.wait_event("CALL_REMOTE_SDP", EVENT_WAIT)).await;
    let trace = std::fs::read_to_string(&sip_log).unwrap_or_default();
    let reinvites: Vec<&str> = trace.split("INVITE sip:").skip(2).collect();
    assert!(
        reinvites.get(1).is_some_and(|m| m.contains("a=sendrecv")),
        "the far end received a re-INVITE resuming it: {trace}"
    );

    // DTMF: the far end reports each digit.
    assert_eq!(c.control("Call.SendDtmf", json!(["12#"])).await, json!(0));
    let (far, digits) = remote(far, |r| {
        (0..3)
            .map(|_| r.wait_event("CALL_DTMF_START", EVENT_WAIT).param)
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(digits, ["1", "2", "#"]);

    // Mute follows baresip's toggle and survives a second Mute.
    assert_eq!(c.control("Call.Mute", json!([])).await, json!(0));
    assert_eq!(until(&mut c, "MuteChanged").await, ["on"]);
    assert_eq!(c.control("Call.Mute", json!([])).await, json!(0));
    assert_eq!(c.control("Call.Unmute", json!([])).await, json!(0));
    assert_eq!(
        until(&mut c, "MuteChanged").await,
        ["off"],
        "the second Mute changed nothing: the next change is Unmute's"
    );

    // Transfer: baresip sends REFER; the far end reports its Refer-To.
    assert_eq!(
        c.control("Call.Transfer", json!(["2003", id])).await,
        json!(0)
    );
    assert_eq!(
        until(&mut c, "CallTransferred").await,
        [id.clone(), "2003".into()]
    );
    let (_far, refer) = remote(far, |r| r.wait_event("TRANSFER", EVENT_WAIT)).await;
    assert!(
        refer
            .param
            .contains(&format!("sip:2003@127.0.0.1:{}", ports.remote_sip)),
        "Refer-To: {refer:?}"
    );
    let trace = std::fs::read_to_string(&sip_log).unwrap_or_default();
    assert!(
        trace.contains(&format!(
            "Refer-To: sip:2003@127.0.0.1:{}",
            ports.remote_sip
        )) || trace.contains(&format!(
            "Refer-To: <sip:2003@127.0.0.1:{}",
            ports.remote_sip
        )),
        "the REFER's Refer-To in the far end's SIP trace"
    );
}
