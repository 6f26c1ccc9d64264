//! G.711 (ITU-T): μ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8), 8 kHz,
//! one byte per sample. Encoding is computed; decoding uses a table built once.

use std::sync::OnceLock;

/// The two G.711 laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// μ-law, RTP payload type 0.
    Pcmu,
    /// A-law, RTP payload type 8.
    Pcma,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }

    /// The encoding name in SDP's rtpmap.
    pub fn name(self) -> &'static str {
        match self {
            Law::Pcmu => "PCMU",
            Law::Pcma => "PCMA",
        }
    }

    /// Encodes samples into `out` (cleared first): one byte per sample.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Law::Pcmu => out.extend(samples.iter().map(|&s| ulaw_encode(s))),
            Law::Pcma => out.extend(samples.iter().map(|&s| alaw_encode(s))),
        }
    }

    /// Decodes bytes into `out` (cleared first).
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.clear();
        let table = tables();
        let t = match self {
            Law::Pcmu => &table.ulaw,
            Law::Pcma => &table.alaw,
        };
        out.extend(bytes.iter().map(|&b| t[usize::from(b)]));
    }

    /// The byte that decodes to silence.
    pub fn silence(self) -> u8 {
        match self {
            Law::Pcmu => ulaw_encode(0),
            Law::Pcma => alaw_encode(0),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// One sample to μ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment is the position of the highest set bit above bit 7 (0..=7).
    let exponent = (31 - s.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    // The value is at most 0xFF before the complement.
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// One μ-law byte to a sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    // At most 32124: always fits.
    let m = magnitude as i16;
    if u & 0x80 != 0 { -m } else { m }
}

/// One sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3; // 13-bit magnitude range
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    // Segment: how many times the value exceeds 0x1F, doubling (0..=7); 8 is overflow.
    let mut segment = 0;
    let mut limit = 0x1F;
    while segment < 8 && v > limit {
        segment += 1;
        limit = (limit << 1) | 1;
    }
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let step = if segment < 2 { 1 } else { segment };
    let aval = ((segment << 4) | ((v >> step) & 0x0F)) as u8;
    aval ^ mask
}

/// One A-law byte to a sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let segment = i32::from((a & 0x70) >> 4);
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= segment - 1;
        }
    }
    // At most 32256: always fits.
    let t = t as i16;
    if a & 0x80 != 0 { t } else { -t }
}

struct Tables {
    ulaw: [i16; 256],
    alaw: [i16; 256],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Tables {
            ulaw: [0; 256],
            alaw: [0; 256],
        };
        for b in 0..=255u8 {
            t.ulaw[usize::from(b)] = ulaw_decode(b);
            t.alaw[usize::from(b)] = alaw_decode(b);
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Silence and full scale, as the standard's tables give them.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(alaw_decode(0xD5), 8);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            // 0x7F is μ-law's "negative zero": it decodes to 0, which encodes as 0xFF.
            if b != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(b)), b, "ulaw {b:#x}");
            }
            assert_eq!(alaw_encode(alaw_decode(b)), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_small_relative_to_the_sample() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            for (law, d) in [
                (Law::Pcmu, ulaw_decode(ulaw_encode(s))),
                (Law::Pcma, alaw_decode(alaw_encode(s))),
            ] {
                let err = (i32::from(s) - i32::from(d)).abs();
                // Logarithmic quantisation: under 1/16 of the value plus the smallest step.
                assert!(err <= i32::from(s).abs() / 16 + 33, "{law:?} {s} -> {d}");
            }
        }
    }

    #[test]
    fn monotonic_decoding() {
        let mut u: Vec<i16> = (0..=255u8).map(ulaw_decode).collect();
        let mut a: Vec<i16> = (0..=255u8).map(alaw_decode).collect();
        u.sort_unstable();
        a.sort_unstable();
        u.dedup();
        a.dedup();
        assert_eq!(u.len(), 255); // the two zeros are one value
        assert_eq!(a.len(), 256);
    }
}
