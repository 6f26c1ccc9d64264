//! SDP (RFC 4566) as far as a G.711 phone needs it, and the offer/answer rules of RFC 3264:
//! write an offer or answer for one audio stream, read a far end's description (bounded:
//! every count and length is capped, unknown lines are ignored), and agree on a codec, the
//! telephone-event payload type, the far end's address and the stream's direction (hold);
//! and SDES (RFC 4568): `a=crypto` keys for SRTP, offered and answered as
//! [`Encryption`] says.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::Engine as _;

use super::media::g711::Law;
use super::media::srtp::{MASTER_LEN, MasterKey, Suite};

/// The largest description read.
pub const MAX_LEN: usize = 16 * 1024;
/// Most lines read; further lines are ignored.
const MAX_LINES: usize = 256;
/// Most media sections kept.
const MAX_MEDIA: usize = 8;
/// Most formats kept per media section.
const MAX_FORMATS: usize = 32;
/// The telephone-event payload type we offer.
pub const DTMF_PAYLOAD_TYPE: u8 = 101;
/// Most `a=crypto` lines kept per media section.
const MAX_CRYPTO: usize = 8;

/// Whether calls encrypt their media (SRTP keyed by SDES).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Plain RTP; an offer that requires SRTP (`RTP/SAVP`) is refused.
    #[default]
    Off,
    /// Offer SRTP keys on `RTP/AVP` and use SRTP when the far end agrees; plain otherwise.
    Optional,
    /// Offer `RTP/SAVP` only; a far end without SRTP gets no call.
    Mandatory,
}

impl Encryption {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Off => "off",
            Encryption::Optional => "optional",
            Encryption::Mandatory => "mandatory",
        }
    }
}

/// One usable `a=crypto` line: its tag, suite and master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// The tag that an answer repeats.
    pub tag: u32,
    /// The suite.
    pub suite: Suite,
    /// The master key and salt.
    pub key: MasterKey,
}

impl Crypto {
    /// Reads the value of an `a=crypto:` attribute; `None` for what we cannot use (another
    /// suite, a key of the wrong size, an MKI, session parameters such as
    /// `UNENCRYPTED_SRTP`, more than one key).
    fn parse(arg: &str) -> Option<Crypto> {
        let mut parts = arg.split_ascii_whitespace();
        let tag = parts
            .next()?
            .parse::<u32>()
            .ok()
            .filter(|&t| t < 1_000_000_000)?;
        let suite = Suite::parse(parts.next()?)?;
        let params = parts.next()?;
        if parts.next().is_some() || params.contains(';') {
            return None;
        }
        let inline = params.strip_prefix("inline:")?;
        let mut fields = inline.split('|');
        let key = fields.next()?;
        // A lifetime may follow; an MKI (`n:len`) may not: we send no MKI.
        if fields.any(|f| f.contains(':')) {
            return None;
        }
        if key.len() > 64 {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
        let key: [u8; MASTER_LEN] = bytes.try_into().ok()?;
        Some(Crypto {
            tag,
            suite,
            key: MasterKey(key),
        })
    }

    fn write(&self) -> String {
        format!(
            "a=crypto:{} {} inline:{}\r\n",
            self.tag,
            self.suite.name(),
            base64::engine::general_purpose::STANDARD.encode(self.key.0)
        )
    }
}

/// Which way media flows, from the describing side's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The describing side only sends (it holds the other side).
    SendOnly,
    /// The describing side only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// Whether the describing side sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing side receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The answer's direction for an offer in this direction, when we want `ours`
    /// (RFC 3264 §6.1).
    pub fn answer(self, ours: Direction) -> Direction {
        Direction::from_flags(
            self.receives() && ours.sends(),
            self.sends() && ours.receives(),
        )
    }
}

/// One `a=rtpmap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type.
    pub payload_type: u8,
    /// The encoding name, as written.
    pub name: String,
    /// The clock rate.
    pub rate: u32,
}

/// One media section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// The media type (`audio`, `video`, …).
    pub kind: String,
    /// The port (0: the stream is refused or removed).
    pub port: u16,
    /// The transport protocol (`RTP/AVP`, `RTP/SAVP`, …).
    pub proto: String,
    /// The payload types, in preference order.
    pub formats: Vec<u8>,
    /// The rtpmap attributes.
    pub rtpmaps: Vec<RtpMap>,
    /// The section's own connection address.
    pub connection: Option<IpAddr>,
    /// The direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=ptime`, in milliseconds.
    pub ptime: Option<u32>,
    /// The `a=crypto` lines we can use, in the order given.
    pub crypto: Vec<Crypto>,
}

/// A far end's session description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The session-level connection address.
    pub connection: Option<IpAddr>,
    /// The session-level direction attribute.
    pub direction: Option<Direction>,
    /// The media sections.
    pub media: Vec<Media>,
}

/// Why a description cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not SDP, or broken.
    #[error("the session description is malformed: {0}")]
    Malformed(&'static str),
    /// Larger than [`MAX_LEN`].
    #[error("the session description is too large")]
    TooLarge,
    /// No audio stream we can use.
    #[error("no common audio codec (we offer PCMU and PCMA)")]
    NoCodec,
    /// SRTP is mandatory here, and the far end offers or answers no key we can use.
    #[error(
        "the far end did not agree to encrypted media (SRTP with AES_CM_128_HMAC_SHA1_80 or _32, keyed in the SDP), which [sip] srtp = \"mandatory\" requires"
    )]
    NotEncrypted,
    /// The far end requires SRTP, and we have it off or support none of its suites.
    #[error("{0}")]
    EncryptionRequired(&'static str),
}

impl Session {
    /// Parses a description.
    pub fn parse(body: &[u8]) -> Result<Session, SdpError> {
        if body.len() > MAX_LEN {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8"))?;
        let mut session = Session {
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut seen_version = false;
        let mut skipping = false;
        for line in text.lines().take(MAX_LINES) {
            let line = line.trim_end_matches('\r');
            let Some((kind, value)) = line.split_once('=') else {
                if line.is_empty() {
                    continue;
                }
                return Err(SdpError::Malformed("a line without '='"));
            };
            if kind.len() != 1 {
                return Err(SdpError::Malformed("a line type longer than one letter"));
            }
            match kind {
                "v" => {
                    if value != "0" {
                        return Err(SdpError::Malformed("version is not 0"));
                    }
                    seen_version = true;
                }
                "m" => {
                    if session.media.len() >= MAX_MEDIA {
                        skipping = true;
                        continue;
                    }
                    session.media.push(parse_media(value)?);
                }
                "c" => {
                    let address = parse_connection(value)?;
                    match session.media.last_mut() {
                        _ if skipping => {}
                        Some(m) => m.connection = Some(address),
                        None => session.connection = Some(address),
                    }
                }
                "a" if !skipping => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    match session.media.last_mut() {
                        None => {
                            if let Some(d) = Direction::parse(name) {
                                session.direction = Some(d);
                            }
                        }
                        Some(m) => parse_media_attribute(m, name, arg),
                    }
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::Malformed("no v= line"));
        }
        Ok(session)
    }

    /// The first audio section on RTP with a port, and its effective direction and
    /// address.
    fn audio(&self) -> Option<(&Media, Direction, Option<IpAddr>)> {
        let m = self
            .media
            .iter()
            .find(|m| m.kind == "audio" && m.port != 0 && m.proto.starts_with("RTP/"))?;
        let direction = m
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv);
        Some((m, direction, m.connection.or(self.connection)))
    }
}

fn parse_media(value: &str) -> Result<Media, SdpError> {
    let mut parts = value.split_ascii_whitespace();
    let kind = parts.next().ok_or(SdpError::Malformed("empty m= line"))?;
    let port = parts
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(SdpError::Malformed("m= port"))?;
    let proto = parts.next().ok_or(SdpError::Malformed("m= protocol"))?;
    let formats = parts
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|&pt| pt < 128)
        .take(MAX_FORMATS)
        .collect();
    Ok(Media {
        kind: kind.chars().take(16).collect(),
        port,
        proto: proto.chars().take(32).collect(),
        formats,
        rtpmaps: Vec::new(),
        connection: None,
        direction: None,
        ptime: None,
        crypto: Vec::new(),
    })
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut parts = value.split_ascii_whitespace();
    if parts.next() != Some("IN") {
        return Err(SdpError::Malformed("c= network type"));
    }
    let family = parts.next();
    let address = parts
        .next()
        .and_then(|a| a.split('/').next())
        .ok_or(SdpError::Malformed("c= address"))?;
    let ip: IpAddr = address
        .parse()
        .map_err(|_| SdpError::Malformed("c= address is not an IP address"))?;
    match (family, ip) {
        (Some("IP4"), IpAddr::V4(_)) | (Some("IP6"), IpAddr::V6(_)) => Ok(ip),
        _ => Err(SdpError::Malformed("c= address family")),
    }
}

fn parse_media_attribute(m: &mut Media, name: &str, arg: &str) {
    if let Some(d) = Direction::parse(name) {
        m.direction = Some(d);
        return;
    }
    match name {
        "rtpmap" if m.rtpmaps.len() < MAX_FORMATS => {
            let Some((pt, encoding)) = arg.split_once(' ') else {
                return;
            };
            let Ok(payload_type) = pt.parse::<u8>() else {
                return;
            };
            let mut e = encoding.split('/');
            let name: String = e.next().unwrap_or("").chars().take(32).collect();
            let Some(rate) = e.next().and_then(|r| r.parse::<u32>().ok()) else {
                return;
            };
            m.rtpmaps.push(RtpMap {
                payload_type,
                name,
                rate,
            });
        }
        "ptime" => m.ptime = arg.trim().parse().ok().filter(|&p| (10..=200).contains(&p)),
        "crypto" => {
            if m.crypto.len() < MAX_CRYPTO
                && let Some(c) = Crypto::parse(arg)
            {
                m.crypto.push(c);
            }
        }
        _ => {}
    }
}

/// What both sides agreed on for the audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// Where the far end receives RTP (its port may be 0.0.0.0 when it holds the call).
    pub remote: SocketAddr,
    /// The codec.
    pub law: Law,
    /// Its payload type.
    pub payload_type: u8,
    /// The telephone-event payload type, when both sides have it.
    pub dtmf: Option<u8>,
    /// The far end's direction.
    pub remote_direction: Direction,
    /// The far end's SRTP key, when the media is encrypted.
    pub srtp: Option<Crypto>,
    /// Whether the far end's section is `RTP/SAVP` (an answer repeats the offer's).
    pub savp: bool,
}

impl Agreed {
    /// Whether the far end holds the call: it receives nothing (sendonly/inactive), or
    /// uses the old hold form, connection 0.0.0.0 (RFC 3264 §8.4).
    pub fn held_by_far_end(&self) -> bool {
        !self.remote_direction.receives() || self.remote.ip().is_unspecified()
    }
}

/// Whether `pt` in `m` is the codec `law` (by rtpmap, or by its static number).
fn is_law(m: &Media, pt: u8, law: Law) -> bool {
    match m.rtpmaps.iter().find(|r| r.payload_type == pt) {
        Some(r) => r.name.eq_ignore_ascii_case(law.name()) && r.rate == 8000,
        None => pt == law.payload_type(),
    }
}

fn telephone_event(m: &Media) -> Option<u8> {
    m.rtpmaps
        .iter()
        .find(|r| {
            r.name.eq_ignore_ascii_case("telephone-event")
                && r.rate == 8000
                && m.formats.contains(&r.payload_type)
        })
        .map(|r| r.payload_type)
}

/// Agrees on the audio stream of a far end's `offer` (we answer; the offer's order
/// decides among the codecs we allow in `ours`), or reads the far end's `answer` to our
/// offer (the answer's first codec that we offered); and on its encryption, as
/// `encryption` allows: the first `a=crypto` line we can use.
pub fn agree(remote: &Session, ours: &[Law], encryption: Encryption) -> Result<Agreed, SdpError> {
    agree_with(remote, ours, encryption, |_| true)
}

/// [`agree`] for the far end's answer to `offer`: its key must be on the tag and suite we
/// offered (RFC 4568 §5.1.2), and not be ours (our own packets reflected would check).
pub fn agree_answer(
    remote: &Session,
    ours: &[Law],
    encryption: Encryption,
    offer: &Local,
) -> Result<Agreed, SdpError> {
    agree_with(remote, ours, encryption, |c| {
        offer
            .crypto
            .is_some_and(|o| c.tag == o.tag && c.suite == o.suite && c.key != o.key)
    })
}

fn agree_with(
    remote: &Session,
    ours: &[Law],
    encryption: Encryption,
    usable: impl Fn(&Crypto) -> bool,
) -> Result<Agreed, SdpError> {
    let (m, direction, address) = remote.audio().ok_or(SdpError::NoCodec)?;
    let savp =
        m.proto.eq_ignore_ascii_case("RTP/SAVP") || m.proto.eq_ignore_ascii_case("RTP/SAVPF");
    let crypto = m.crypto.iter().find(|c| usable(c)).copied();
    let srtp = match (encryption, crypto) {
        (Encryption::Off, _) if savp => {
            return Err(SdpError::EncryptionRequired(
                "the far end requires encrypted media (RTP/SAVP); set [sip] srtp = \"optional\" or \"mandatory\"",
            ));
        }
        (Encryption::Off, _) => None,
        (_, Some(c)) => Some(c),
        (Encryption::Mandatory, None) => return Err(SdpError::NotEncrypted),
        (Encryption::Optional, None) if savp => {
            return Err(SdpError::EncryptionRequired(
                "the far end requires encrypted media (RTP/SAVP) with a key we cannot use (we have AES_CM_128_HMAC_SHA1_80 and _32, SDES keys without MKI)",
            ));
        }
        (Encryption::Optional, None) => None,
    };
    let (law, payload_type) = m
        .formats
        .iter()
        .find_map(|&pt| {
            ours.iter()
                .find(|&&law| is_law(m, pt, law))
                .map(|&law| (law, pt))
        })
        .ok_or(SdpError::NoCodec)?;
    let ip = address.ok_or(SdpError::Malformed("no c= line"))?;
    Ok(Agreed {
        remote: SocketAddr::new(ip, m.port),
        law,
        payload_type,
        dtmf: telephone_event(m),
        remote_direction: direction,
        srtp,
        savp,
    })
}

/// What we describe: our media address, the session's identity and version, the codecs
/// and the direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    /// Our RTP address (the port's RTCP is the next port).
    pub address: SocketAddr,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` version: raised on every new offer or answer that changes it.
    pub version: u64,
    /// Codecs with their payload types, in preference order.
    pub codecs: Vec<(Law, u8)>,
    /// The telephone-event payload type, if offered.
    pub dtmf: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    /// Our SRTP key line, when we offer or answer one.
    pub crypto: Option<Crypto>,
    /// Whether the section is `RTP/SAVP` rather than `RTP/AVP`.
    pub savp: bool,
}

impl Local {
    /// An offer of PCMU and PCMA (in `laws` order) with telephone-event, and with `key`
    /// as SRTP's (`AES_CM_128_HMAC_SHA1_80`) unless `encryption` is off: on `RTP/SAVP`
    /// when it is mandatory.
    pub fn offer(
        address: SocketAddr,
        session_id: u64,
        laws: &[Law],
        direction: Direction,
        encryption: Encryption,
        key: MasterKey,
    ) -> Local {
        Local {
            address,
            session_id,
            version: session_id,
            codecs: laws.iter().map(|&l| (l, l.payload_type())).collect(),
            dtmf: Some(DTMF_PAYLOAD_TYPE),
            direction,
            crypto: (encryption != Encryption::Off).then_some(Crypto {
                tag: 1,
                suite: Suite::AesCm128HmacSha1_80,
                key,
            }),
            savp: encryption == Encryption::Mandatory,
        }
    }

    /// The answer to an agreed offer: the agreed codec alone, the offer's
    /// telephone-event type, the direction `ours` narrowed by the offer, and when the
    /// media is encrypted our `key` on the offer's tag, suite and protocol.
    pub fn answer(
        address: SocketAddr,
        session_id: u64,
        agreed: &Agreed,
        ours: Direction,
        key: MasterKey,
    ) -> Local {
        Local {
            address,
            session_id,
            version: session_id,
            codecs: vec![(agreed.law, agreed.payload_type)],
            dtmf: agreed.dtmf,
            direction: agreed.remote_direction.answer(ours),
            crypto: agreed.srtp.map(|c| Crypto { key, ..c }),
            savp: agreed.savp,
        }
    }

    /// The description's text.
    pub fn write(&self) -> String {
        let ip = self.address.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut formats: Vec<String> = self.codecs.iter().map(|(_, pt)| pt.to_string()).collect();
        if let Some(pt) = self.dtmf {
            formats.push(pt.to_string());
        }
        let mut s = format!(
            "v=0\r\no=bapiws {id} {v} IN {family} {ip}\r\ns=bapiws\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} {proto} {formats}\r\n",
            proto = if self.savp { "RTP/SAVP" } else { "RTP/AVP" },
            id = self.session_id,
            v = self.version,
            port = self.address.port(),
            formats = formats.join(" "),
        );
        for (law, pt) in &self.codecs {
            s.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", law.name()));
        }
        if let Some(pt) = self.dtmf {
            s.push_str(&format!(
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
            ));
        }
        s.push_str("a=ptime:20\r\n");
        s.push_str(&format!("a={}\r\n", self.direction.as_str()));
        if let Some(c) = &self.crypto {
            s.push_str(&c.write());
        }
        s
    }
}

/// The unspecified IPv4 address, for a hold in the old style.
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn key() -> MasterKey {
        MasterKey([7; MASTER_LEN])
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:20000".parse().expect("addr")
    }

    #[test]
    fn a_sipp_offer_is_agreed_and_answered() {
        let s = Session::parse(SIPP_OFFER.as_bytes()).expect("parses");
        let a = agree(&s, &[Law::Pcmu, Law::Pcma], Encryption::Off).expect("agrees");
        assert_eq!(a.law, Law::Pcmu);
        assert_eq!(a.remote, "127.0.0.1:6000".parse().expect("addr"));
        assert_eq!(a.dtmf, None);
        assert!(!a.held_by_far_end());
        let answer = Local::answer(addr(), 9, &a, Direction::SendRecv, key()).write();
        assert!(answer.contains("m=audio 20000 RTP/AVP 0\r\n"), "{answer}");
        assert!(answer.contains("a=sendrecv"));
        assert!(!answer.contains("telephone-event"));
        // Our own output parses back.
        let back = Session::parse(answer.as_bytes()).expect("parses");
        assert_eq!(
            agree(&back, &[Law::Pcmu], Encryption::Off)
                .expect("agrees")
                .remote,
            addr()
        );
    }

    #[test]
    fn the_offers_order_wins_and_dynamic_types_are_read_by_name() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 96 8 0 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/8000\r\na=sendonly\r\n";
        let s = Session::parse(offer.as_bytes()).expect("parses");
        let a = agree(&s, &[Law::Pcmu, Law::Pcma], Encryption::Off).expect("agrees");
        assert_eq!((a.law, a.payload_type, a.dtmf), (Law::Pcma, 8, Some(97)));
        assert!(a.held_by_far_end());
        let answer = Local::answer(addr(), 1, &a, Direction::SendRecv, key());
        assert_eq!(answer.direction, Direction::RecvOnly);
        // A PCMA rtpmap on a dynamic number counts as PCMA.
        let s = Session::parse(
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 110\r\na=rtpmap:110 pcma/8000\r\n",
        )
        .expect("parses");
        assert_eq!(
            agree(&s, &[Law::Pcma], Encryption::Off)
                .expect("agrees")
                .payload_type,
            110
        );
    }

    #[test]
    fn hold_forms() {
        for (sdp, held) in [
            (
                "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\na=inactive\r\n",
                true,
            ),
            ("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 5 RTP/AVP 0\r\n", true),
            (
                "v=0\r\na=sendonly\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\n",
                true,
            ),
            (
                "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\na=recvonly\r\n",
                false,
            ),
            (
                "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\na=sendrecv\r\n",
                false,
            ),
        ] {
            let s = Session::parse(sdp.as_bytes()).expect("parses");
            assert_eq!(
                agree(&s, &[Law::Pcmu], Encryption::Off)
                    .expect("agrees")
                    .held_by_far_end(),
                held,
                "{sdp}"
            );
        }
    }

    #[test]
    fn answer_directions_follow_rfc_3264() {
        use Direction::*;
        for (offer, ours, answer) in [
            (SendRecv, SendRecv, SendRecv),
            (SendOnly, SendRecv, RecvOnly),
            (RecvOnly, SendRecv, SendOnly),
            (Inactive, SendRecv, Inactive),
            (SendRecv, SendOnly, SendOnly),
            (SendOnly, SendOnly, Inactive),
        ] {
            assert_eq!(offer.answer(ours), answer, "{offer:?} {ours:?}");
        }
    }

    #[test]
    fn what_cannot_be_used_is_refused() {
        for sdp in [
            "",
            "m=audio 5 RTP/AVP 0\r\n",
            "v=1\r\n",
            "v=0\r\nxx=1\r\n",
            "v=0\r\nnonsense\r\n",
            "v=0\r\nm=audio\r\n",
            "v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 ::1\r\n",
            "v=0\r\nc=IN IP4 example.com\r\n",
        ] {
            assert!(Session::parse(sdp.as_bytes()).is_err(), "{sdp:?}");
        }
        assert_eq!(
            Session::parse(&vec![b'a'; MAX_LEN + 1]),
            Err(SdpError::TooLarge)
        );
        for sdp in [
            "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 18\r\n",
            "v=0\r\nc=IN IP4 1.1.1.1\r\nm=video 5 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 0 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\na=rtpmap:0 G729/8000\r\n",
        ] {
            let s = Session::parse(sdp.as_bytes()).expect("parses");
            assert_eq!(
                agree(&s, &[Law::Pcmu, Law::Pcma], Encryption::Off),
                Err(SdpError::NoCodec),
                "{sdp:?}"
            );
        }
        let s = Session::parse(b"v=0\r\nm=audio 5 RTP/AVP 0\r\n").expect("parses");
        assert!(agree(&s, &[Law::Pcmu], Encryption::Off).is_err());
    }

    #[test]
    fn counts_are_bounded() {
        let mut sdp = String::from("v=0\r\nc=IN IP4 1.1.1.1\r\n");
        for _ in 0..100 {
            sdp.push_str("m=audio 5 RTP/AVP 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8 0 8\r\n");
        }
        let s = Session::parse(sdp.as_bytes()).expect("parses");
        assert_eq!(s.media.len(), MAX_MEDIA);
        assert!(s.media.iter().all(|m| m.formats.len() <= MAX_FORMATS));
    }

    /// baresip 1.0's offer with `mediaenc=srtp-mand` (RTP/SAVP, two suites).
    const SAVP_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:HR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0d|2^31\r\n";

    #[test]
    fn an_srtp_offer_is_answered_with_our_key_on_its_tag_and_protocol() {
        let s = Session::parse(SAVP_OFFER.as_bytes()).expect("parses");
        let a = agree(&s, &[Law::Pcmu], Encryption::Optional).expect("agrees");
        let c = a.srtp.expect("encrypted");
        assert_eq!((c.tag, c.suite), (1, Suite::AesCm128HmacSha1_32));
        assert_eq!(c.key.0[..4], [0, 1, 2, 3]);
        assert!(a.savp);
        let answer = Local::answer(addr(), 3, &a, Direction::SendRecv, key()).write();
        assert!(
            answer.contains("m=audio 20000 RTP/SAVP 0 101\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\r\n"),
            "{answer}"
        );
        // The same under mandatory; and off refuses it, saying why.
        assert_eq!(agree(&s, &[Law::Pcmu], Encryption::Mandatory), Ok(a));
        let e = agree(&s, &[Law::Pcmu], Encryption::Off).expect_err("refused");
        assert!(e.to_string().contains("srtp = \"optional\""), "{e}");
    }

    #[test]
    fn a_plain_offer_is_refused_only_when_srtp_is_mandatory() {
        let s = Session::parse(SIPP_OFFER.as_bytes()).expect("parses");
        assert_eq!(
            agree(&s, &[Law::Pcmu], Encryption::Mandatory),
            Err(SdpError::NotEncrypted)
        );
        assert!(SdpError::NotEncrypted.to_string().contains("mandatory"));
        let a = agree(&s, &[Law::Pcmu], Encryption::Optional).expect("agrees");
        assert_eq!(a.srtp, None);
        let answer = Local::answer(addr(), 3, &a, Direction::SendRecv, key()).write();
        assert!(
            answer.contains("RTP/AVP 0") && !answer.contains("crypto"),
            "{answer}"
        );
    }

    #[test]
    fn our_offers_carry_the_key_as_the_setting_says() {
        let offer =
            |e| Local::offer(addr(), 1, &[Law::Pcmu], Direction::SendRecv, e, key()).write();
        let off = offer(Encryption::Off);
        assert!(off.contains("RTP/AVP") && !off.contains("crypto"), "{off}");
        let optional = offer(Encryption::Optional);
        assert!(optional.contains("RTP/AVP 0 101"), "{optional}");
        assert!(
            optional.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{optional}"
        );
        let mandatory = offer(Encryption::Mandatory);
        assert!(mandatory.contains("RTP/SAVP 0 101"), "{mandatory}");
        // Our offer parses back with its key.
        let back = Session::parse(mandatory.as_bytes()).expect("parses");
        let a = agree(&back, &[Law::Pcmu], Encryption::Mandatory).expect("agrees");
        assert_eq!(a.srtp.map(|c| c.key), Some(key()));
    }

    #[test]
    fn crypto_lines_we_cannot_use_are_skipped() {
        for line in [
            "1 AES_256_CM_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd UNENCRYPTED_SRTP",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBka",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd;inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
            "1 AES_CM_128_HMAC_SHA1_80 inline:not base64 at all!!!!!!!!!!!!!!!!!!!!!",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
            "1 AES_CM_128_HMAC_SHA1_80",
            "",
        ] {
            assert_eq!(Crypto::parse(line), None, "{line:?}");
        }
        let mut sdp = String::from("v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/SAVP 0\r\n");
        for _ in 0..100 {
            sdp.push_str("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n");
        }
        let s = Session::parse(sdp.as_bytes()).expect("parses");
        assert_eq!(s.media[0].crypto.len(), MAX_CRYPTO);
        let e = agree(&s, &[Law::Pcmu], Encryption::Off).expect_err("off");
        assert!(matches!(e, SdpError::EncryptionRequired(_)));
    }

    #[test]
    fn an_answer_must_repeat_our_tag_and_suite_with_a_key_of_its_own() {
        let offer = Local::offer(
            addr(),
            1,
            &[Law::Pcmu],
            Direction::SendRecv,
            Encryption::Mandatory,
            key(),
        );
        let answer = |line: &str| {
            let sdp =
                format!("v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/SAVP 0\r\na=crypto:{line}\r\n");
            let s = Session::parse(sdp.as_bytes()).expect("parses");
            agree_answer(&s, &[Law::Pcmu], Encryption::Mandatory, &offer)
        };
        let theirs = "inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
        let ok = answer(&format!("1 AES_CM_128_HMAC_SHA1_80 {theirs}")).expect("agrees");
        assert_eq!(ok.srtp.map(|c| c.key.0[1]), Some(1));
        for bad in [
            format!("2 AES_CM_128_HMAC_SHA1_80 {theirs}"),
            format!("1 AES_CM_128_HMAC_SHA1_32 {theirs}"),
            // Our own key, reflected.
            "1 AES_CM_128_HMAC_SHA1_80 inline:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH".to_owned(),
        ] {
            assert_eq!(answer(&bad), Err(SdpError::NotEncrypted), "{bad}");
        }
    }
}
