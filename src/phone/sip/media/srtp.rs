//! SRTP and SRTCP (RFC 3711) with the AES counter-mode suites that SDES (RFC 4568) keys:
//! `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`, no MKI, key derivation rate 0.
//!
//! One [`Sender`] encrypts and authenticates what we send with our master key; one
//! [`Receiver`] checks and decrypts what the far end sends with its key. A packet whose
//! tag does not check, that is a replay, or that is too old for the 64-packet window is
//! refused before anything of it is used. The tag is compared in constant time.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A master key and salt's length in octets (16 + 14), as `inline:` carries them.
pub const MASTER_LEN: usize = 30;
const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;
const AUTH_KEY_LEN: usize = 20;
/// The replay window, in packets.
const WINDOW: u64 = 64;
/// Most of the far end's sources (SSRCs) whose state a receiver keeps.
const MAX_SOURCES: usize = 4;
/// SRTCP's authentication tag: 80 bits for both suites (RFC 4568 §6.2).
const RTCP_TAG_LEN: usize = 10;

/// A crypto suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag on RTP (80 on RTCP).
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The name SDP uses.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite of an SDP name (case as written by RFC 4568).
    pub fn parse(name: &str) -> Option<Suite> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// The RTP authentication tag's length.
    pub fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// A master key and salt. Its `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey(pub [u8; MASTER_LEN]);

impl MasterKey {
    /// A new key from the operating system's random source.
    pub fn random() -> std::io::Result<MasterKey> {
        let mut k = [0u8; MASTER_LEN];
        getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(MasterKey(k))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

/// Why a packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than its header and tag.
    Truncated,
    /// The authentication tag does not check.
    Authentication,
    /// Seen already, or older than the replay window.
    Replay,
}

/// The session keys of one direction of RTP or RTCP.
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; SALT_LEN],
    mac: Hmac<Sha1>,
}

impl SessionKeys {
    /// Derives the keys with the labels from `first` (0 for RTP, 3 for RTCP).
    fn derive(master: &MasterKey, first: u8) -> SessionKeys {
        let (k, a, s) = derive_keys(master, first);
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&a)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        SessionKeys {
            cipher: Aes128::new(&Array::from(k)),
            salt: s,
            mac,
        }
    }

    /// XORs `data` with the keystream of the packet of `ssrc` with index `index`.
    fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..SALT_LEN].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        let mut block = [0u8; 16];
        for (counter, chunk) in data.chunks_mut(16).enumerate() {
            iv[14..].copy_from_slice(&(counter as u16).to_be_bytes());
            block.copy_from_slice(&iv);
            let mut b = Array::from(block);
            self.cipher.encrypt_block(&mut b);
            for (d, k) in chunk.iter_mut().zip(b.iter()) {
                *d ^= k;
            }
        }
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn check(&self, parts: &[&[u8]], tag: &[u8]) -> Result<(), SrtpError> {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        mac.verify_truncated_left(tag)
            .map_err(|_| SrtpError::Authentication)
    }
}

/// RFC 3711 §4.3 with a key derivation rate of 0: the session's cipher key, auth key and
/// salt from the master key, with the labels from `first` (0 for RTP, 3 for RTCP).
fn derive_keys(
    master: &MasterKey,
    first: u8,
) -> ([u8; KEY_LEN], [u8; AUTH_KEY_LEN], [u8; SALT_LEN]) {
    let (key, salt) = master.0.split_at(KEY_LEN);
    let master_cipher = Aes128::new(&Array::from(array::<KEY_LEN>(key)));
    let prf = |label: u8, out: &mut [u8]| {
        let mut iv = [0u8; 16];
        iv[..SALT_LEN].copy_from_slice(salt);
        iv[7] ^= label;
        keystream(&master_cipher, iv, out);
    };
    let mut k = [0u8; KEY_LEN];
    let mut a = [0u8; AUTH_KEY_LEN];
    let mut s = [0u8; SALT_LEN];
    prf(first, &mut k);
    prf(first + 1, &mut a);
    prf(first + 2, &mut s);
    (k, a, s)
}

fn array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// AES counter mode's keystream from `iv` into `out` (the key derivation's PRF).
fn keystream(cipher: &Aes128, mut iv: [u8; 16], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(16).enumerate() {
        iv[14..].copy_from_slice(&(counter as u16).to_be_bytes());
        let mut b = Array::from(iv);
        cipher.encrypt_block(&mut b);
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// The length of an RTP packet's header (fixed part, CSRCs, extension), if it has one.
fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0F);
    if p[0] & 0x10 != 0 {
        let words = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= p.len()).then_some(len)
}

/// Protects what we send. The caller keeps the rollover counter (it counts every packet
/// of the stream, encrypted or not, so that no index is ever encrypted twice).
#[derive(Clone)]
pub struct Sender {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    rtcp_index: u32,
}

impl Sender {
    /// A sender with our master key.
    pub fn new(suite: Suite, key: &MasterKey) -> Sender {
        Sender {
            suite,
            rtp: SessionKeys::derive(key, 0),
            rtcp: SessionKeys::derive(key, 3),
            rtcp_index: 0,
        }
    }

    /// Takes the suite the far end chose anew (a later offer or answer): only the tag's
    /// length changes; the keys and the rollover counter stay.
    pub fn set_suite(&mut self, suite: Suite) {
        self.suite = suite;
    }

    /// Encrypts an RTP packet whose sequence number has rolled over `roc` times in place
    /// and appends its tag. A buffer that is not RTP is left as it is and false returned
    /// (it must then not be sent).
    pub fn protect(&mut self, packet: &mut Vec<u8>, roc: u32) -> bool {
        let Some(header) = rtp_header_len(packet) else {
            return false;
        };
        let sequence = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let index = (u64::from(roc) << 16) | u64::from(sequence);
        self.rtp.crypt(ssrc, index, &mut packet[header..]);
        let tag = self.rtp.tag(&[packet, &roc.to_be_bytes()]);
        packet.extend_from_slice(&tag[..self.suite.tag_len()]);
        true
    }

    /// Encrypts an RTCP compound packet in place and appends the SRTCP index and tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> bool {
        if packet.len() < 8 {
            return false;
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let index = self.rtcp_index & 0x7FFF_FFFF;
        self.rtcp_index = (index + 1) & 0x7FFF_FFFF;
        self.rtcp.crypt(ssrc, u64::from(index), &mut packet[8..]);
        packet.extend_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.rtcp.tag(&[packet]);
        packet.extend_from_slice(&tag[..RTCP_TAG_LEN]);
        true
    }
}

/// What a receiver knows of the stream it authenticates.
#[derive(Clone, Copy)]
struct Received {
    ssrc: u32,
    roc: u32,
    /// The highest sequence number authenticated (RFC 3711's s_l).
    highest: u16,
    /// Which of the 64 packets up to the highest index were seen (bit 0: the highest).
    window: u64,
}

/// Checks and decrypts what the far end sends: the state of each of its latest
/// [`MAX_SOURCES`] sources (an old packet of a source it used before is checked against
/// that source's window, not taken for a new stream).
#[derive(Clone)]
pub struct Receiver {
    suite: Suite,
    rtp: SessionKeys,
    #[cfg_attr(not(test), allow(dead_code))]
    rtcp: SessionKeys,
    /// The sources, the one heard last at the end.
    sources: Vec<Received>,
}

impl Receiver {
    /// A receiver with the far end's master key.
    pub fn new(suite: Suite, key: &MasterKey) -> Receiver {
        Receiver {
            suite,
            rtp: SessionKeys::derive(key, 0),
            rtcp: SessionKeys::derive(key, 3),
            sources: Vec::with_capacity(MAX_SOURCES),
        }
    }

    /// Takes the suite of a later offer or answer with the same key: the sources' state
    /// stays.
    pub fn set_suite(&mut self, suite: Suite) {
        self.suite = suite;
    }

    /// Checks an SRTP packet and decrypts it in place; the plain packet's length (without
    /// the tag) on success. A packet of a new SSRC that checks starts a new source (only
    /// the key's holder can make one that checks).
    pub fn unprotect(&mut self, data: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.tag_len();
        let end = data
            .len()
            .checked_sub(tag_len)
            .ok_or(SrtpError::Truncated)?;
        let header = rtp_header_len(&data[..end]).ok_or(SrtpError::Truncated)?;
        let sequence = u16::from_be_bytes([data[2], data[3]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let at = self.sources.iter().position(|s| s.ssrc == ssrc);
        let known = at.map(|i| self.sources[i]);
        let (roc, index) = match known {
            Some(s) => {
                let roc = estimate_roc(s.roc, s.highest, sequence);
                let index = (u64::from(roc) << 16) | u64::from(sequence);
                let highest = (u64::from(s.roc) << 16) | u64::from(s.highest);
                if index <= highest {
                    let age = highest - index;
                    if age >= WINDOW || s.window & (1 << age) != 0 {
                        return Err(SrtpError::Replay);
                    }
                }
                (roc, index)
            }
            None => (0, u64::from(sequence)),
        };
        let (signed, tag) = data.split_at(end);
        self.rtp.check(&[signed, &roc.to_be_bytes()], tag)?;
        self.rtp.crypt(ssrc, index, &mut data[header..end]);
        let state = match known {
            None => Received {
                ssrc,
                roc,
                highest: sequence,
                window: 1,
            },
            Some(s) => {
                let highest = (u64::from(s.roc) << 16) | u64::from(s.highest);
                if index > highest {
                    let shift = index - highest;
                    let window = if shift >= WINDOW {
                        0
                    } else {
                        s.window << shift
                    };
                    Received {
                        ssrc,
                        roc,
                        highest: sequence,
                        window: window | 1,
                    }
                } else {
                    Received {
                        window: s.window | 1 << (highest - index),
                        ..s
                    }
                }
            }
        };
        if let Some(i) = at {
            self.sources.remove(i);
        } else if self.sources.len() >= MAX_SOURCES {
            self.sources.remove(0);
        }
        self.sources.push(state);
        Ok(end)
    }

    /// Checks an SRTCP packet and decrypts it in place; the plain packet's length.
    /// (Received reports are not used yet: this checks what [`Sender::protect_rtcp`]
    /// makes.)
    #[cfg(test)]
    pub fn unprotect_rtcp(&mut self, data: &mut [u8]) -> Result<usize, SrtpError> {
        let end = data
            .len()
            .checked_sub(RTCP_TAG_LEN + 4)
            .filter(|&e| e >= 8)
            .ok_or(SrtpError::Truncated)?;
        let (signed, tag) = data.split_at(end + 4);
        self.rtcp.check(&[signed], tag)?;
        let e_index = u32::from_be_bytes([data[end], data[end + 1], data[end + 2], data[end + 3]]);
        let ssrc = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        if e_index & 0x8000_0000 != 0 {
            self.rtcp
                .crypt(ssrc, u64::from(e_index & 0x7FFF_FFFF), &mut data[8..end]);
        }
        Ok(end)
    }
}

/// RFC 3711 §3.3.1: the rollover counter of a packet with `sequence`, given the highest
/// sequence number `s_l` authenticated with `roc`.
fn estimate_roc(roc: u32, s_l: u16, sequence: u16) -> u32 {
    if s_l < 0x8000 {
        if sequence > s_l && sequence - s_l > 0x8000 {
            roc.wrapping_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > sequence {
        roc.wrapping_add(1)
    } else {
        roc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn master(key: &str, salt: &str) -> MasterKey {
        let mut m = [0u8; MASTER_LEN];
        m[..16].copy_from_slice(&hex(key));
        m[16..].copy_from_slice(&hex(salt));
        MasterKey(m)
    }

    /// RFC 3711 appendix B.2: the AES-CM keystream.
    #[test]
    fn the_keystream_is_rfc_3711s() {
        let cipher = Aes128::new(&Array::from(array::<16>(&hex(
            "2B7E151628AED2A6ABF7158809CF4F3C",
        ))));
        let iv = array::<16>(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
        let mut out = [0u8; 48];
        keystream(&cipher, iv, &mut out);
        assert_eq!(
            out.to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
    }

    /// RFC 3711 appendix B.3: the session keys derived from a master key.
    #[test]
    fn the_key_derivation_is_rfc_3711s() {
        let m = master(
            "E1F97A0D3E018BE0D64FA32C06DE4139",
            "0EC675AD498AFEEBB6960B3AABE6",
        );
        let (k, a, s) = derive_keys(&m, 0);
        assert_eq!(k.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(a.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        // RTCP's labels (3, 4, 5) give other keys.
        let (k3, a3, s3) = derive_keys(&m, 3);
        assert!(k3 != k && a3 != a && s3 != s);
    }

    fn packet(sequence: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&sequence.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 160, 0xDE, 0xCA, 0xFB, 0xAD]);
        p.extend_from_slice(payload);
        p
    }

    fn pair(suite: Suite) -> (Sender, Receiver) {
        let k = MasterKey::random().expect("random");
        (Sender::new(suite, &k), Receiver::new(suite, &k))
    }

    #[test]
    fn a_protected_packet_comes_back_and_hides_its_payload() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let (mut tx, mut rx) = pair(suite);
            let plain = packet(7, &[0xAB; 160]);
            let mut p = plain.clone();
            assert!(tx.protect(&mut p, 0));
            assert_eq!(p.len(), plain.len() + suite.tag_len());
            assert_eq!(p[..12], plain[..12], "the header stays in clear");
            assert!(p[12..172].iter().filter(|&&b| b == 0xAB).count() < 8);
            let n = rx.unprotect(&mut p).expect("checks");
            assert_eq!(&p[..n], &plain[..]);
        }
    }

    #[test]
    fn tampered_replayed_and_foreign_packets_are_refused() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
        let mut p = packet(100, &[1; 160]);
        tx.protect(&mut p, 0);
        let mut bad = p.clone();
        bad[20] ^= 1;
        assert_eq!(rx.unprotect(&mut bad), Err(SrtpError::Authentication));
        let mut again = p.clone();
        rx.unprotect(&mut p).expect("checks");
        assert_eq!(rx.unprotect(&mut again), Err(SrtpError::Replay));
        // Another key's packet, and what is too short to hold a tag.
        let (mut other, _) = pair(Suite::AesCm128HmacSha1_80);
        let mut q = packet(101, &[1; 160]);
        other.protect(&mut q, 0);
        assert_eq!(rx.unprotect(&mut q), Err(SrtpError::Authentication));
        for n in 0..22 {
            let mut short = vec![0x80; n];
            assert!(rx.unprotect(&mut short).is_err(), "{n}");
        }
    }

    #[test]
    fn late_packets_within_the_window_pass_once_and_older_ones_do_not() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
        let mut sent: Vec<Vec<u8>> = (0..100u16)
            .map(|s| {
                let mut p = packet(s, &[s as u8; 20]);
                tx.protect(&mut p, 0);
                p
            })
            .collect();
        // 0 and 99 first, then 40 (59 behind: inside), then 30 (69 behind: outside).
        rx.unprotect(&mut sent[0].clone()).expect("0");
        rx.unprotect(&mut sent[99].clone()).expect("99");
        let n = rx.unprotect(&mut sent[40]).expect("40 is late but inside");
        assert_eq!(sent[40][12..n], [40u8; 20]);
        assert_eq!(
            rx.unprotect(&mut sent[30].clone()),
            Err(SrtpError::Replay),
            "older than the window"
        );
    }

    #[test]
    fn the_rollover_counter_follows_a_sequence_wrap() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_32);
        for (roc, s) in (65500u16..=65535)
            .map(|s| (0, s))
            .chain((0..100).map(|s| (1, s)))
        {
            let mut p = packet(s, &[9; 40]);
            tx.protect(&mut p, roc);
            let n = rx
                .unprotect(&mut p)
                .unwrap_or_else(|e| panic!("{s}: {e:?}"));
            assert_eq!(p[12..n], [9u8; 40], "{s}");
        }
        assert_eq!(estimate_roc(5, 10, 65000), 4);
        assert_eq!(estimate_roc(5, 65000, 10), 6);
        assert_eq!(estimate_roc(5, 40000, 39000), 5);
    }

    #[test]
    fn srtcp_round_trips_with_its_index() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_32);
        let plain: Vec<u8> = [0x80, 200, 0, 6, 1, 2, 3, 4]
            .into_iter()
            .chain([0x55; 20])
            .collect();
        for i in 0..3u32 {
            let mut p = plain.clone();
            assert!(tx.protect_rtcp(&mut p));
            assert_eq!(p.len(), plain.len() + 4 + RTCP_TAG_LEN);
            let end = plain.len();
            assert_eq!(
                u32::from_be_bytes([p[end], p[end + 1], p[end + 2], p[end + 3]]),
                0x8000_0000 | i
            );
            assert_ne!(p[8..end], plain[8..]);
            let n = rx.unprotect_rtcp(&mut p).expect("checks");
            assert_eq!(&p[..n], &plain[..]);
        }
    }

    fn packet_of(ssrc: u32, sequence: u16) -> Vec<u8> {
        let mut p = packet(sequence, &[4; 20]);
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn each_source_keeps_its_own_window() {
        let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
        let mut sealed = |ssrc, seq, roc| {
            let mut p = packet_of(ssrc, seq);
            tx.protect(&mut p, roc);
            p
        };
        let old = sealed(1, 10, 0);
        rx.unprotect(&mut old.clone()).expect("source 1");
        // The far end moves to source 2, past a rollover of its sequence numbers.
        for seq in [65530u16, 65535] {
            rx.unprotect(&mut sealed(2, seq, 0)).expect("source 2");
        }
        rx.unprotect(&mut sealed(2, 3, 1))
            .expect("source 2 after its rollover");
        // A replay of source 1's old packet is still a replay, and source 2 goes on.
        assert_eq!(rx.unprotect(&mut old.clone()), Err(SrtpError::Replay));
        rx.unprotect(&mut sealed(2, 4, 1))
            .expect("source 2 keeps its rollover counter");
        // Sources beyond the most kept push the oldest out; the latest stay known.
        for ssrc in 3..=6 {
            rx.unprotect(&mut sealed(ssrc, 100, 0))
                .expect("a new source");
        }
        assert_eq!(rx.sources.len(), MAX_SOURCES);
        assert_eq!(rx.unprotect(&mut sealed(6, 100, 0)), Err(SrtpError::Replay));
    }
}
