//! Netstring framing (`<decimal length>:<payload>,`), as baresip's ctrl_tcp speaks it.

/// The largest frame accepted from baresip.
pub const MAX_FRAME: usize = 1024 * 1024;

/// Frames one payload.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// Why the byte stream is not valid netstrings; the connection cannot be trusted after.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is not decimal digits followed by `:`.
    #[error("bad netstring length prefix")]
    BadLength,
    /// The length is over [`MAX_FRAME`].
    #[error("netstring frame of {0} bytes is over the limit")]
    TooLong(usize),
    /// The payload is not followed by `,`.
    #[error("netstring frame not terminated by ','")]
    BadTerminator,
}

/// Incremental decoder: feed bytes as they arrive, take whole frames out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(colon) = self.buf.iter().take(8).position(|&b| b == b':') else {
            if self.buf.len() >= 8 || !self.buf.iter().all(u8::is_ascii_digit) {
                return Err(FrameError::BadLength);
            }
            return Ok(None);
        };
        let digits = &self.buf[..colon];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadLength);
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FrameError::BadLength)?;
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return Ok(None);
        }
        if self.buf[end] != b',' {
            return Err(FrameError::BadTerminator);
        }
        let payload = self.buf[colon + 1..end].to_vec();
        self.buf.drain(..=end);
        Ok(Some(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut wire = encode(b"{\"a\":1}");
        wire.extend(encode(b""));
        wire.extend(encode("é".as_bytes()));
        // Fed one byte at a time, and all at once: the same frames.
        for chunk in [1, 3, wire.len()] {
            let mut d = Decoder::default();
            let mut frames = Vec::new();
            for piece in wire.chunks(chunk) {
                d.feed(piece);
                while let Some(f) = d.next_frame().expect("valid") {
                    frames.push(f);
                }
            }
            assert_eq!(
                frames,
                vec![b"{\"a\":1}".to_vec(), vec![], "é".as_bytes().to_vec()]
            );
        }
    }

    #[test]
    fn bad_input_table() {
        let cases: &[(&[u8], FrameError)] = &[
            (b"x:", FrameError::BadLength),
            (b":abc,", FrameError::BadLength),
            (b"12a:", FrameError::BadLength),
            (b"123456789", FrameError::BadLength),
            (b"3:abc;", FrameError::BadTerminator),
            (b"9999999:", FrameError::TooLong(9_999_999)),
        ];
        for (input, want) in cases {
            let mut d = Decoder::default();
            d.feed(input);
            assert_eq!(d.next_frame(), Err(want.clone()), "{input:?}");
        }
        let mut d = Decoder::default();
        d.feed(b"12");
        assert_eq!(d.next_frame(), Ok(None), "a partial length waits for more");
    }
}
