//! RTP (RFC 3550) packets: the fixed header, CSRCs and header extension skipped, padding
//! removed; RTCP sender/receiver reports built and recognised. Every length comes from the
//! datagram and is checked against it: a packet that does not add up is refused, never
//! read past.

/// The fixed RTP header's size.
pub const HEADER_LEN: usize = 12;

/// An RTP packet, borrowed from the datagram it came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The marker bit (the first packet of a talkspurt or of a DTMF event).
    pub marker: bool,
    /// The payload type (0..=127).
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The sender's synchronisation source.
    pub ssrc: u32,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

/// Why a datagram is not an RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than its headers say.
    Truncated,
    /// Not version 2.
    Version,
    /// The padding count is larger than the payload.
    Padding,
}

impl<'a> Packet<'a> {
    /// Parses a datagram.
    pub fn parse(data: &'a [u8]) -> Result<Packet<'a>, RtpError> {
        if data.len() < HEADER_LEN {
            return Err(RtpError::Truncated);
        }
        if data[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let padding = data[0] & 0x20 != 0;
        let extension = data[0] & 0x10 != 0;
        let csrcs = usize::from(data[0] & 0x0F);
        let mut offset = HEADER_LEN + 4 * csrcs;
        if extension {
            let words = data
                .get(offset + 2..offset + 4)
                .ok_or(RtpError::Truncated)?;
            let words = usize::from(u16::from_be_bytes([words[0], words[1]]));
            offset += 4 + 4 * words;
        }
        if offset > data.len() {
            return Err(RtpError::Truncated);
        }
        let mut end = data.len();
        if padding {
            let count = usize::from(data[end - 1]);
            if count == 0 || count > end - offset {
                return Err(RtpError::Padding);
            }
            end -= count;
        }
        Ok(Packet {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7F,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            payload: &data[offset..end],
        })
    }

    /// Writes the packet (no CSRCs, no extension, no padding) into `out`, cleared first.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// Whether a datagram on the media port is RTCP rather than RTP (RFC 5761's test: the
/// packet types 192..=223 in the second byte).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// What a receiver knows for its report block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceptionStats {
    /// The remote sender's SSRC.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost in total (24 bits on the wire, clamped).
    pub cumulative_lost: i32,
    /// The highest sequence number received, extended with its cycle count.
    pub extended_highest: u32,
    /// The interarrival jitter, in timestamp units.
    pub jitter: u32,
}

/// What a sender knows for its sender report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP time of the report (seconds since 1900 in the high 32 bits).
    pub ntp: u64,
    /// The RTP timestamp matching `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// Writes a compound RTCP packet: a sender report (or a receiver report when `sender` is
/// `None`) with at most one report block, then an SDES CNAME.
pub fn write_rtcp_report(
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReceptionStats>,
    cname: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    let blocks = u8::from(block.is_some());
    let (pt, words) = match sender {
        Some(_) => (200u8, 6 + 6 * u16::from(blocks)),
        None => (201u8, 1 + 6 * u16::from(blocks)),
    };
    out.push(0x80 | blocks);
    out.push(pt);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(s) = sender {
        out.extend_from_slice(&s.ntp.to_be_bytes());
        out.extend_from_slice(&s.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&s.packets.to_be_bytes());
        out.extend_from_slice(&s.octets.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.extended_highest.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&[0; 8]); // LSR and DLSR: not tracked
    }
    // SDES with one chunk: SSRC, CNAME item, end, padded to a word.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let mut chunk = Vec::with_capacity(8 + name.len());
    chunk.extend_from_slice(&ssrc.to_be_bytes());
    chunk.push(1);
    chunk.push(name.len() as u8);
    chunk.extend_from_slice(name);
    chunk.push(0);
    while chunk.len() % 4 != 0 {
        chunk.push(0);
    }
    out.push(0x81);
    out.push(202);
    out.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(&chunk);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let payload = [1u8, 2, 3, 4];
        let p = Packet {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 42,
            payload: &payload,
        };
        let mut out = Vec::new();
        p.write(&mut out);
        assert_eq!(out.len(), HEADER_LEN + 4);
        assert_eq!(Packet::parse(&out), Ok(p));
        assert!(!is_rtcp(&out));
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        let mut d = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension of one word
        d.extend_from_slice(&[5, 6]); // payload
        d.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let p = Packet::parse(&d).expect("valid");
        assert_eq!(p.payload, &[5, 6]);
    }

    #[test]
    fn lies_are_refused() {
        assert_eq!(Packet::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(Packet::parse(&[0x40; 12]), Err(RtpError::Version));
        // 15 CSRCs claimed in a 12-byte packet.
        let mut d = [0u8; 12];
        d[0] = 0x8F;
        assert_eq!(Packet::parse(&d), Err(RtpError::Truncated));
        // An extension longer than the packet.
        let mut d = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert_eq!(Packet::parse(&d), Err(RtpError::Truncated));
        d.truncate(14);
        assert_eq!(Packet::parse(&d), Err(RtpError::Truncated));
        // Padding larger than the payload, and a zero count.
        let mut d = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200];
        assert_eq!(Packet::parse(&d), Err(RtpError::Padding));
        d[13] = 0;
        assert_eq!(Packet::parse(&d), Err(RtpError::Padding));
    }

    #[test]
    fn every_short_prefix_is_handled() {
        let mut d = [0xB3u8; 64];
        d[1] = 0;
        for n in 0..d.len() {
            let _ = Packet::parse(&d[..n]);
        }
    }

    #[test]
    fn rtcp_reports_are_well_formed() {
        let mut out = Vec::new();
        write_rtcp_report(
            7,
            Some(SenderInfo::default()),
            Some(ReceptionStats::default()),
            "bapiws",
            &mut out,
        );
        assert!(is_rtcp(&out));
        // The first packet's length field covers the SR with one block.
        let words = usize::from(u16::from_be_bytes([out[2], out[3]]));
        assert_eq!((words + 1) * 4, 52);
        assert_eq!(out[52 + 1], 202);
        assert_eq!(out.len() % 4, 0);
        write_rtcp_report(7, None, None, "x", &mut out);
        assert_eq!(out[1], 201);
    }
}
