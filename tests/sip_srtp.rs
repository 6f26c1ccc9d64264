//! Encrypted media on the built-in phone: SRTP keyed by SDES (RFC 3711, RFC 4568) with
//! real far ends on loopback, and what a listener on the wire sees (tcpdump).
//!
//! - baresip 1.0 with `mediaenc=srtp-mand` (its srtp module, libre's SRTP) answers a
//!   call: each side hears the other's tone (its own decoded audio dumped by baresip's
//!   sndfile module, ours recorded to WAV), and the captured RTP payloads carry neither
//!   tone in clear.
//! - A plain baresip: with `srtp = "optional"` the call goes through in clear (and the
//!   same capture analysis finds both tones: it would see them if they leaked); with
//!   `mandatory` the call fails with its reason.
//! - SIPp through kamailio: a plain INVITE to a phone that requires SRTP gets 488 with a
//!   Warning and never rings; a far end that answers our RTP/SAVP offer in plain RTP gets
//!   the ACK and a BYE, and the client the reason.
// The harness starts kamailio, SIPp and tcpdump as Unix processes.
#![cfg(unix)]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bapiws::phone::sip::audio::{WavReader, peak_frequency, tone_share};
use bapiws::phone::sip::media::g711::Law;
use common::baresip::{Remote, connect_when};
use common::{TempDir, Ws};
use harness::{
    Capture, Datagram, Kamailio, PASSWORD, Phone, Role, SipPorts, Sipp, media_field, start, with,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The phone without a registrar, dialling the remote baresip directly, sending a 1 kHz
/// tone in PCMU and recording what it hears.
fn direct_phone(p: &SipPorts, srtp: &str, recording: &Path) -> Vec<String> {
    let f = p.flags_for(Phone::Sip, PASSWORD, 60, "udp");
    let f = with(f, "--sip-register", "false");
    let f = with(f, "--sip-accept-invites-from", "any");
    let f = with(
        f,
        "--sip-dial-uri",
        &format!("sip:{{number}}@127.0.0.1:{}", p.ports.remote_sip),
    );
    let f = with(f, "--sip-srtp", srtp);
    let f = with(f, "--sip-codecs", "PCMU");
    let f = with(f, "--sip-audio-source", "tone:1000");
    with(
        f,
        "--sip-audio-sink",
        &format!("wav:{}", recording.display()),
    )
}

/// The remote baresip (1002, an 880 Hz tone), with SRTP required when `srtp`, dumping
/// the audio it decodes into `dumps`, its log and SIP trace in `log`.
fn remote(p: &SipPorts, srtp: bool, dumps: &Path, log: &Path) -> Remote {
    let mut config = vec![
        "module\t\tsndfile.so".to_owned(),
        format!("snd_path\t\t{}", dumps.display()),
    ];
    if srtp {
        config.push("module\t\tsrtp.so".to_owned());
    }
    let params = if srtp { ";mediaenc=srtp-mand" } else { "" };
    Remote::start_with(&p.ports, Some(log), &config, params)
}

/// Reads notifications until `method`; its params, and every notification before it.
async fn until(c: &mut Ws, method: &str) -> (Vec<String>, Vec<String>) {
    let mut seen = Vec::new();
    loop {
        let n: Value = tokio::time::timeout(WAIT, c.recv())
            .await
            .unwrap_or_else(|_| panic!("no {method} within {WAIT:?}; saw {seen:?}"));
        if n["method"] == method {
            let params = n["params"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            return (params, seen);
        }
        seen.push(common::brief(&n));
    }
}

/// The PCMU RTP packets (payload type 0) of a capture sent from or to the phone's ports.
fn rtp_packets(capture: &[Datagram], p: &SipPorts, from_phone: bool) -> Vec<Vec<u8>> {
    let phone = p.ports.phone_rtp..=p.ports.phone_rtp + 9;
    let remote = p.ports.remote_rtp..=p.ports.remote_rtp + 9;
    capture
        .iter()
        .filter(|d| {
            if from_phone {
                phone.contains(&d.from_port) && remote.contains(&d.to_port)
            } else {
                remote.contains(&d.from_port) && phone.contains(&d.to_port)
            }
        })
        .filter(|d| d.payload.len() >= 12 && d.payload[0] >> 6 == 2 && d.payload[1] & 0x7F == 0)
        .map(|d| d.payload.clone())
        .collect()
}

/// What a listener hears in captured packets: their 160 payload octets after the RTP
/// header decoded as PCMU, in order; the share of the energy at `hz`.
fn heard_on_the_wire(packets: &[Vec<u8>], hz: f64) -> f64 {
    let mut samples = Vec::new();
    let mut decoded = Vec::new();
    for p in packets {
        let payload = &p[12..p.len().min(12 + 160)];
        Law::Pcmu.decode(payload, &mut decoded);
        samples.extend_from_slice(&decoded);
    }
    tone_share(&samples, hz)
}

/// The peak frequency and the share of `hz` in a WAV recording's middle: the median of
/// the shares in its half-second windows (over the whole, the tone's phase jumps at a
/// hold would cancel it out).
fn recorded(path: &Path, hz: f64) -> (f64, f64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let samples = WavReader::decode(&bytes).expect("a WAV file");
    assert!(samples.len() >= 8000 * 2, "{} samples", samples.len());
    let middle = &samples[4000..samples.len() - 4000];
    let mut shares: Vec<f64> = middle
        .chunks_exact(4000)
        .map(|w| tone_share(w, hz))
        .collect();
    shares.sort_by(f64::total_cmp);
    (
        peak_frequency(middle, 500.0, 1500.0, 2.0),
        shares[shares.len() / 2],
    )
}

/// The WAV file baresip's sndfile module wrote of the audio it decoded.
fn decoded_dump(dumps: &Path) -> PathBuf {
    std::fs::read_dir(dumps)
        .expect("the dump folder")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("no decoded dump in {}", dumps.display()))
}

struct Call {
    log: String,
    capture: Vec<Datagram>,
    recording: PathBuf,
    _dir: TempDir,
}

/// The phone (with `srtp`) calls the remote, which answers; three seconds of media (and
/// with `more` the digit 5, which the remote must report, then a hold and a resume, each a
/// re-INVITE with our key, and two more seconds), then the phone hangs up. The capture
/// covers the phone's RTP ports.
async fn call_the_remote(p: &SipPorts, srtp: &str, far: &mut Remote, more: bool) -> Call {
    let dir = TempDir::new("srtp-call");
    let recording = dir.path().join("call.wav");
    let capture = Capture::start(p.ports.phone_rtp, p.ports.phone_rtp + 9);
    let server = start(&direct_phone(p, srtp, &recording));
    let mut c = connect_when(&server, "Available", WAIT).await;
    c.call("CallOut", json!(["1002"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    tokio::task::block_in_place(|| {
        far.wait_event("CALL_INCOMING", WAIT);
        far.accept();
    });
    let (connected, _) = until(&mut c, "CallConnected").await;
    assert_eq!(connected, [id.as_str()]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    if more {
        assert_eq!(c.call("Call.SendDtmf", json!(["5"])).await, json!(0));
        let digit = tokio::task::block_in_place(|| far.wait_event("CALL_DTMF_START", WAIT).param);
        assert_eq!(digit, "5", "the remote decrypted our telephone-event");
        assert_eq!(c.call("Call.Hold", json!([id])).await, json!(0));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(c.call("Call.Resume", json!([id])).await, json!(0));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    c.call("HangUp", json!([])).await;
    until(&mut c, "CallDisconnected").await;
    tokio::task::block_in_place(|| far.wait_event("CALL_CLOSED", WAIT));
    let capture = tokio::task::block_in_place(|| capture.stop());
    let log = tokio::task::block_in_place(|| server.stderr_after_kill());
    Call {
        log,
        capture,
        recording,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_with_a_baresip_that_requires_srtp_is_encrypted_both_ways() {
    let p = SipPorts::next();
    let dir = TempDir::new("srtp-remote");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).expect("dumps");
    let far_log = dir.path().join("baresip.log");
    let mut far = tokio::task::block_in_place(|| remote(&p, true, &dumps, &far_log));
    let call = call_the_remote(&p, "mandatory", &mut far, true).await;
    drop(far);
    let far_log = std::fs::read_to_string(&far_log).unwrap_or_default();

    // Both sides said so, every packet from the far end checked, and the digit arrived.
    assert!(
        call.log.contains("the call's media is encrypted (SRTP)")
            && call.log.contains("AES_CM_128_HMAC_SHA1_80"),
        "{}",
        call.log
    );
    assert!(
        far_log.contains("SRTP is Enabled"),
        "baresip's log:\n{far_log}"
    );
    assert!(
        !far_log.contains("failed to decrypt"),
        "baresip refused our packets:\n{far_log}"
    );
    let (sent, received) = (
        media_field(&call.log, "sent="),
        media_field(&call.log, "received="),
    );
    assert!(
        sent >= 100 && received >= 100,
        "sent {sent}, received {received}"
    );
    assert_eq!(media_field(&call.log, "refused="), 0, "{}", call.log);

    // What each side decrypted is the other's tone, also after the hold and resume.
    let (peak, share) = recorded(&call.recording, 880.0);
    assert!(
        (862.0..=898.0).contains(&peak) && share > 0.5,
        "we heard {peak} Hz ({share:.2} at 880 Hz); {}",
        call.log
            .lines()
            .filter(|l| l.contains("media"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let bytes = std::fs::read(&call.recording).expect("the recording");
    let samples = WavReader::decode(&bytes).expect("a WAV file");
    let last = &samples[samples.len().saturating_sub(9000)..samples.len().saturating_sub(1000)];
    let share = tone_share(last, 880.0);
    assert!(
        share > 0.5,
        "after the resume, 880 Hz is {share:.2} of what we heard"
    );
    let (peak, share) = recorded(&decoded_dump(&dumps), 1000.0);
    assert!(
        (980.0..=1020.0).contains(&peak) && share > 0.5,
        "baresip heard {peak} Hz ({share:.2} at 1 kHz)"
    );

    // On the wire: SRTP packets (a 10-octet tag after 160 octets), no tone in clear.
    let ours = rtp_packets(&call.capture, &p, true);
    let theirs = rtp_packets(&call.capture, &p, false);
    assert!(
        ours.len() >= 100 && theirs.len() >= 100,
        "captured {} and {} packets",
        ours.len(),
        theirs.len()
    );
    assert!(
        ours.iter().chain(&theirs).all(|p| p.len() == 12 + 160 + 10),
        "every RTP packet carries an 80-bit tag"
    );
    let (out, back) = (
        heard_on_the_wire(&ours, 1000.0),
        heard_on_the_wire(&theirs, 880.0),
    );
    assert!(
        out < 0.02 && back < 0.02,
        "the tones are audible on the wire: 1 kHz {out:.3}, 880 Hz {back:.3}"
    );
    // The tone is the same 160 octets in every packet: each ciphertext must differ from
    // the one before (the packet's index is in the keystream).
    for packets in [&ours, &theirs] {
        let repeats = packets
            .windows(2)
            .filter(|w| w[0][12..172] == w[1][12..172])
            .count();
        assert_eq!(repeats, 0, "consecutive packets with the same ciphertext");
    }
    // Our RTCP report went out as SRTCP (its index with the E bit set, then a 10-octet
    // tag), and baresip's log above shows it checked.
    let phone_rtcp = p.ports.phone_rtp + 1..=p.ports.phone_rtp + 9;
    let srtcp: Vec<&Datagram> = call
        .capture
        .iter()
        .filter(|d| d.from_port % 2 == 1 && phone_rtcp.contains(&d.from_port))
        .collect();
    let mut ports: Vec<(u16, u16)> = call
        .capture
        .iter()
        .map(|d| (d.from_port, d.to_port))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert!(
        !srtcp.is_empty(),
        "no RTCP from the phone was captured: {ports:?}"
    );
    for d in &srtcp {
        let n = d.payload.len();
        assert!(
            d.payload[1] == 200 && n >= 8 + 14 && d.payload[n - 14] & 0x80 != 0,
            "an SRTCP sender report: {:02x?}",
            d.payload
        );
    }
    eprintln!(
        "encrypted: sent {sent}, received {received}; on the wire 1 kHz {out:.4}, 880 Hz {back:.4}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_baresip_gets_plain_rtp_when_srtp_is_optional_and_no_call_when_mandatory() {
    let p = SipPorts::next();
    let dir = TempDir::new("srtp-remote");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).expect("dumps");
    let far_log = dir.path().join("baresip.log");
    let mut far = tokio::task::block_in_place(|| remote(&p, false, &dumps, &far_log));

    // Optional: the offer carries a key on RTP/AVP; the plain answer is used, in clear,
    // and the capture analysis hears both tones (it would, had they leaked above).
    let call = call_the_remote(&p, "optional", &mut far, false).await;
    let trace = std::fs::read_to_string(&far_log).unwrap_or_default();
    assert!(
        trace.contains("m=audio")
            && trace.contains("RTP/AVP 0")
            && trace.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "our offer, as baresip got it:\n{trace}"
    );
    assert!(!call.log.contains("media is encrypted"), "{}", call.log);
    let (peak, _) = recorded(&call.recording, 880.0);
    assert!((862.0..=898.0).contains(&peak), "we heard {peak} Hz");
    let ours = rtp_packets(&call.capture, &p, true);
    let theirs = rtp_packets(&call.capture, &p, false);
    assert!(ours.len() >= 100 && theirs.len() >= 100);
    assert!(ours.iter().all(|p| p.len() == 12 + 160), "plain RTP");
    let (out, back) = (
        heard_on_the_wire(&ours, 1000.0),
        heard_on_the_wire(&theirs, 880.0),
    );
    assert!(
        out > 0.5 && back > 0.5,
        "in clear the tones are heard: 1 kHz {out:.3}, 880 Hz {back:.3}"
    );

    // Mandatory: the far end cannot encrypt, so there is no call, and the reason says why.
    let dir = TempDir::new("srtp-call");
    let server = start(&direct_phone(&p, "mandatory", &dir.path().join("r.wav")));
    let mut c = connect_when(&server, "Available", WAIT).await;
    c.call("CallOut", json!(["1002"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    // baresip without SRTP refuses the RTP/SAVP offer.
    let (ended, before) = until(&mut c, "CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert!(
        !before.iter().any(|n| n.starts_with("CallConnected")),
        "no call connects in clear: {before:?}"
    );
    assert!(
        ended[1].contains("encrypted media") && ended[1].contains("mandatory"),
        "the reason: {ended:?}"
    );
    let log = tokio::task::block_in_place(|| server.stderr_after_kill());
    assert!(!log.contains("call media ended"), "no media ran:\n{log}");
    eprintln!("mandatory against plain baresip: {:?}", ended[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_srtp_refuses_plain_calls_both_ways_on_the_wire() {
    let p = SipPorts::next();
    let _kamailio = Kamailio::start(&p, 60);
    let f = with(
        p.flags_for(Phone::Sip, PASSWORD, 60, "udp"),
        "--sip-srtp",
        "mandatory",
    );
    let server = start(&f);
    let mut c = connect_when(&server, "Available", WAIT).await;

    // A plain INVITE: 488 with a Warning, and the phone never rings.
    let caller = Sipp::start_edited(
        &p,
        Role::Caller,
        "uac_rejected.xml",
        |s| s.replace(r#"<recv response="486"/>"#, r#"<recv response="488"/>"#),
        &[],
    );
    let wire = harness::passed(caller, WAIT).await;
    assert!(
        wire.contains("Warning: 399 bapiws \"Encrypted media (SRTP) required\""),
        "{wire}"
    );
    c.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(c.call("GetActiveCalls", json!([])).await, json!([]));

    // Our offer is RTP/SAVP with a key; a plain answer gets ACK and BYE (SIPp's scenario
    // expects both), and the client the reason.
    let far = Sipp::start(&p, Role::Far, "uas_answer.xml", &[]);
    c.call("CallOut", json!(["2001"])).await;
    let id = c.expect_notification("CallingOut").await[0].clone();
    let (ended, before) = until(&mut c, "CallDisconnected").await;
    assert_eq!(ended[0], id);
    assert!(
        !before.iter().any(|n| n.starts_with("CallConnected")),
        "{before:?}"
    );
    assert!(
        ended[1].contains("did not agree to encrypted media"),
        "{ended:?}"
    );
    let wire = harness::passed(far, WAIT).await;
    let offer = wire
        .split("-----")
        .find(|m| m.contains("INVITE sip:"))
        .unwrap_or("");
    assert!(
        offer.contains("m=audio")
            && offer.contains("RTP/SAVP 0 8 101")
            && offer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{offer}"
    );
    let log = tokio::task::block_in_place(|| server.stderr_after_kill());
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("an INVITE was refused")),
        "{log}"
    );
}
