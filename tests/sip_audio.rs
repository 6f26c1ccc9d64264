//! The built-in SIP phone's audio, end to end on loopback: a call through a real
//! registrar (kamailio) to a SIPp far end that echoes RTP (`-rtp_echo`), with a 1 kHz tone
//! as the source and a WAV recording as the sink, for PCMU and PCMA; and DTMF sent with
//! `Call.SendDtmf` arriving as RFC 4733 events at a second bapiws, which logs them.
// The harness starts kamailio and SIPp with Unix process groups.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::time::Duration;

use bapiws::phone::sip::audio::{WavReader, peak_frequency, tone_share};
use common::{TempDir, Ws};
use harness::{Kamailio, PASSWORD, Phone, Role, SipPorts, Sipp, media_field, start, with};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn tone_round_trip(codec: &str) {
    let ports = SipPorts::next();
    let _kamailio = Kamailio::start(&ports, 60);
    let rec = TempDir::new("recording");
    let recording = rec.path().join("call.wav");
    let flags = ports.flags_for(Phone::Sip, PASSWORD, 60, "udp");
    let flags = with(flags, "--sip-audio-source", "tone:1000");
    let flags = with(
        flags,
        "--sip-audio-sink",
        &format!("wav:{}", recording.display()),
    );
    let flags = with(flags, "--sip-codecs", codec);
    let server = start(&flags);
    let extra = ["-rtp_echo", "-d", "4000"];
    let far = match codec {
        "PCMA" => Sipp::start_pcma(&ports, "uas_answer_then_bye.xml", &extra),
        _ => Sipp::start(&ports, Role::Far, "uas_answer_then_bye.xml", &extra),
    };
    let mut c = common::baresip::connect_when(&server, "Available", WAIT).await;
    c.call("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    c.expect_notification("StateChanged").await;
    assert_eq!(c.expect_notification("CallConnected").await, [id.as_str()]);
    let ended = tokio::time::timeout(WAIT, c.expect_notification("CallDisconnected"))
        .await
        .expect("the far end hangs up");
    assert_eq!(ended[0], id);
    let wire = tokio::task::spawn_blocking(move || far.passed(WAIT))
        .await
        .expect("join");
    let answer = wire
        .split("-----")
        .find(|m| m.contains("INVITE sip:"))
        .unwrap_or("");
    let pt = if codec == "PCMA" { "8" } else { "0" };
    assert!(
        answer.contains(&format!("RTP/AVP {pt}")),
        "{codec} offered:\n{answer}"
    );
    let log = tokio::task::block_in_place(|| server.stderr_after_kill());
    let (sent, received) = (media_field(&log, "sent="), media_field(&log, "received="));
    // About four seconds of 50 packets a second.
    assert!(sent >= 150, "sent {sent}");
    // Every packet comes back but those still in flight when the far end's BYE ends the
    // call: up to half a second of echo on a loaded machine (25 packets), or 2 %.
    let lost = sent.saturating_sub(received);
    assert!(
        lost <= (sent / 50).max(25),
        "{codec}: {received} of {sent} packets came back"
    );
    let bytes = std::fs::read(&recording).expect("the recording");
    let samples = WavReader::decode(&bytes).expect("a WAV file");
    assert!(samples.len() >= 8000 * 3, "{} samples", samples.len());
    // The middle of the call: past the echo's start, before the hang-up.
    let middle = &samples[8000..samples.len() - 4000];
    let peak = peak_frequency(middle, 500.0, 1500.0, 2.0);
    assert!(
        (980.0..=1020.0).contains(&peak),
        "{codec}: the received audio peaks at {peak} Hz"
    );
    let share = tone_share(middle, 1000.0);
    assert!(
        share > 0.8,
        "{codec}: 1 kHz is {share:.2} of the received energy"
    );
    eprintln!("{codec}: sent {sent}, received {received}, peak {peak} Hz, share {share:.3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1khz_tone_comes_back_through_an_rtp_echo_pcmu() {
    tone_round_trip("PCMU").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1khz_tone_comes_back_through_an_rtp_echo_pcma() {
    tone_round_trip("PCMA").await;
}

/// Two bapiws servers with the built-in phone, no registrar: A calls B directly, B
/// answers, A sends `Call.SendDtmf ["123#"]`, and B logs each digit once as it arrives
/// as telephone-events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_arrives_as_telephone_events_at_a_second_bapiws() {
    let a_ports = SipPorts::next();
    let b_ports = SipPorts::next();
    let phone = |p: &SipPorts, dial: u16| -> Vec<String> {
        let f = p.flags_for(Phone::Sip, PASSWORD, 60, "udp");
        let f = with(f, "--sip-register", "false");
        let f = with(f, "--sip-accept-invites-from", "any");
        with(
            f,
            "--sip-dial-uri",
            &format!("sip:{{number}}@127.0.0.1:{dial}"),
        )
    };
    let b = start(&phone(&b_ports, a_ports.ports.phone_sip));
    let a = start(&phone(&a_ports, b_ports.ports.phone_sip));
    let mut cb = Ws::connect(&b.url).await;
    let mut ca = common::baresip::connect_when(&a, "Available", WAIT).await;
    ca.call("CallOut", json!(["1001"])).await;
    let id = ca.expect_notification("CallingOut").await[0].clone();
    let coming = cb.expect_notification("CallComing").await;
    assert_eq!(coming[1], "1001", "the caller's user");
    assert_eq!(cb.expect_notification("StateChanged").await, ["Busy"]);
    cb.call("Answer", json!([])).await;
    cb.expect_notification("CallConnected").await;
    ca.expect_notification("StateChanged").await;
    assert_eq!(ca.expect_notification("CallConnected").await, [id.as_str()]);
    assert_eq!(ca.call("Call.SendDtmf", json!(["123#"])).await, json!(0));
    // Four digits of 100 ms with 60 ms gaps, and the end packets.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ca.call("HangUp", json!([])).await;
    cb.expect_notification("CallDisconnected").await;
    let log = tokio::task::block_in_place(|| b.stderr_after_kill());
    let digits: String = log
        .lines()
        .filter(|l| l.contains("DTMF received"))
        .filter_map(|l| l.split("digit=").nth(1))
        .filter_map(|d| d.chars().next())
        .collect();
    assert_eq!(digits, "123#", "B's log:\n{log}");
}

/// The phone's audio as /health tells it, with the default devices: on a machine without
/// sound devices (CI) it still starts and says calls send silence, and warns in the log;
/// where devices exist it names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_tells_the_audio_and_a_machine_without_devices_still_runs_the_phone() {
    let ports = SipPorts::next();
    let f = ports.flags_for(Phone::Sip, PASSWORD, 60, "udp");
    let f = with(f, "--sip-register", "false");
    let f = with(f, "--sip-audio-source", "device");
    let f = with(f, "--sip-audio-sink", "device");
    let server = start(&f);
    let _c = common::baresip::connect_when(&server, "Available", WAIT).await;
    let h = harness::health(server.port);
    let sip = h["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["kind"] == "sip").cloned())
        .expect("the sip backend");
    let audio = sip["audio"].as_str().unwrap_or_default().to_owned();
    let devices = bapiws::phone::sip::audio::device::status();
    let log = tokio::task::block_in_place(|| server.stderr_after_kill());
    if devices.input {
        assert!(audio.contains("in: the default microphone"), "{sip}");
    } else {
        assert!(audio.contains("no microphone: calls send silence"), "{sip}");
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("no microphone")),
            "{log}"
        );
    }
    if devices.output {
        assert!(audio.contains("out: the default speaker"), "{sip}");
    } else {
        assert!(audio.contains("no speaker"), "{sip}");
    }
}
