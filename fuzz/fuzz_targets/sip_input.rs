//! Fuzzes what a datagram on the built-in phone's ports meets. On the SIP port:
//! rsipstack's message parser, then the typed header accessors the stack and the phone
//! use (Via, From, To and its tag, Call-ID, CSeq, Contact, Refer-To), the transaction
//! and dialog keys, our Via mending, and the body as SDP (parse and agree). On the RTP
//! port: SRTP's check (with a fixed key: a forged tag fails before decryption; the
//! lengths and the replay window are what meet the datagram), the RTP parser and the
//! RFC 4733 event parser. Nothing may panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use bapiws::phone::sip::media::g711::Law;
use bapiws::phone::sip::media::srtp::{MasterKey, Receiver, Sender, Suite};
use bapiws::phone::sip::media::{dtmf, rtp};
use bapiws::phone::sip::{sdp, stack};
use libfuzzer_sys::fuzz_target;
use rsipstack::dialog::DialogId;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{HeadersExt, SipMessage, Uri};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};

fn headers(m: &impl HeadersExt) {
    if let Ok(via) = m.via_header() {
        let _ = via.first_value().and_then(|v| v.typed()).map(|v| {
            let _ = v.received();
            let _ = v.branch().map(|b| b.to_string());
        });
        let _ = m.top_via_header();
    }
    let _ = m.has_multiple_vias();
    if let Ok(from) = m.from_header() {
        let _ = from.tag();
        if let Ok(f) = from.typed() {
            let _ = f.uri.user().map(str::to_owned);
            let _ = f.display_name;
        }
    }
    if let Ok(to) = m.to_header() {
        let _ = to.tag();
        let _ = to.typed();
    }
    let _ = m.call_id_header().map(|c| c.value().len());
    if let Ok(cseq) = m.cseq_header() {
        let _ = cseq.seq();
        let _ = cseq.method();
    }
    if let Ok(contact) = m.contact_header() {
        let _ = contact.typed();
    }
    if let Some(refer) = m.refer_to_header() {
        // As the phone reads it (src/phone/sip/mod.rs, DialogState::Refer).
        let v = refer.value().trim().trim_start_matches('<');
        let inner = v.split('>').next().unwrap_or(v);
        let _ = Uri::try_from(inner).map(|u| u.user().map(str::to_owned));
    }
}

fn body(b: &[u8]) {
    if let Ok(session) = sdp::Session::parse(b) {
        for e in [
            sdp::Encryption::Off,
            sdp::Encryption::Optional,
            sdp::Encryption::Mandatory,
        ] {
            if let Ok(a) = sdp::agree(&session, &[Law::Pcmu, Law::Pcma], e) {
                let key = MasterKey([3; 30]);
                let _ = sdp::Local::answer(a.remote, 1, &a, sdp::Direction::SendRecv, key).write();
            }
        }
        let _ = sdp::agree(&session, &[Law::Pcma], sdp::Encryption::Off);
    }
}

fuzz_target!(|data: &[u8]| {
    // The SIP transport reads at most 8 KiB of a datagram.
    let sip = &data[..data.len().min(8192)];
    match SipMessage::try_from(sip) {
        Ok(SipMessage::Request(mut req)) => {
            headers(&req);
            let _ = TransactionKey::from_request(&req, TransactionRole::Server);
            let _ = DialogId::try_from((&req, TransactionRole::Server));
            stack::mend_via(&mut req, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
            headers(&req);
            let _ = req.to_bytes();
            body(&req.body);
        }
        Ok(SipMessage::Response(resp)) => {
            headers(&resp);
            let _ = TransactionKey::from_response(&resp, TransactionRole::Client);
            let _ = DialogId::try_from((&resp, TransactionRole::Client));
            body(&resp.body);
        }
        Err(_) => {}
    }
    if let Ok(text) = std::str::from_utf8(sip) {
        let _ = SipMessage::try_from(text);
    }
    body(data);
    if let Ok(p) = rtp::Packet::parse(data) {
        let _ = dtmf::Event::parse(p.payload);
        let mut out = Vec::new();
        p.write(&mut out);
    }
    let _ = rtp::is_rtcp(data);
    let _ = dtmf::Event::parse(data);
    // SRTP: the datagram as it comes, and (so that the fuzzer reaches past the tag) the
    // datagram protected with the key first.
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let key = MasterKey([5; 30]);
        let mut rx = Receiver::new(suite, &key);
        let mut copy = data.to_vec();
        let _ = rx.unprotect(&mut copy);
        let mut protected = data.to_vec();
        if Sender::new(suite, &key).protect(&mut protected, 0) {
            let _ = rx.unprotect(&mut protected);
        }
    }
});
