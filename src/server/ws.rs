//! The server side of the WebSocket protocol (RFC 6455), frames only: the handshake is in
//! [`super::http`]. Written here rather than taken from a library so that the server
//! controls exactly what it answers: every Close frame is answered, everything read before
//! a Close is answered first, a refused frame gets the right close code, and buffers are
//! sized by what a connection needs now.
//!
//! [`Decoder`] turns bytes from the client into [`Msg`]s (or a [`Fail`] naming the close
//! code to send); [`Encoder`] appends unmasked frames to an output buffer that the
//! connection writes out in one go. No I/O here, so both are tested in memory.

/// Close codes the server sends (RFC 6455 §7.4.1).
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away.
    pub const AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// A data type the server does not accept (binary).
    pub const UNSUPPORTED: u16 = 1003;
    /// Data inconsistent with the message type (text that is not UTF-8).
    pub const INVALID: u16 = 1007;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
}

/// Whether a peer may send this close code (RFC 6455 §7.4): the defined codes other
/// than those reserved for reporting (1004–1006, 1015), and the registered and private
/// ranges 3000–4999.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A frame or message that ends the connection: the close code and reason to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    /// The close code.
    pub code: u16,
    /// Why, for the close frame and the log.
    pub reason: String,
}

impl Fail {
    fn protocol(why: &str) -> Fail {
        Fail {
            code: code::PROTOCOL,
            reason: format!("protocol error: {why}"),
        }
    }
}

/// One complete message (or control frame) from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A text message, valid UTF-8.
    Text(&'a str),
    /// A binary message (its content is not kept).
    Binary,
    /// A ping with its payload; the pong is due.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame: its code (none when the frame had no payload).
    Close(Option<u16>),
}

/// The read buffer's normal size, and what it shrinks back to after a large message.
pub const READ_CHUNK: usize = 1024;
/// A buffer that grew beyond this for one large message is given back once empty.
const SHRINK_ABOVE: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// Reads frames from the bytes a client sent. Holds at most one frame being read and one
/// fragmented message being assembled, each bounded by the message limit.
pub struct Decoder {
    /// Bytes read from the socket; `start..` not yet decoded.
    buf: Vec<u8>,
    start: usize,
    /// A fragmented message being assembled.
    partial: Option<(Kind, Vec<u8>)>,
    /// The last fragmented message completed (kept so that [`Msg::Text`] can borrow it).
    done: Vec<u8>,
    /// How many bytes the frame at `start` needs, once its header has been seen.
    want: usize,
    max_message: usize,
    /// Set once a close frame or a failure was returned: nothing more is decoded.
    finished: bool,
}

impl Decoder {
    /// A decoder accepting messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            partial: None,
            done: Vec::new(),
            want: 0,
            max_message,
            finished: false,
        }
    }

    /// The buffer to read into, with room for what the current frame still needs (at
    /// least [`READ_CHUNK`] bytes free). Decoded bytes are dropped first.
    pub fn read_buf(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::with_capacity(READ_CHUNK);
        }
        if self.done.capacity() > SHRINK_ABOVE {
            self.done = Vec::new();
        }
        let free = self.buf.capacity() - self.buf.len();
        let need = self.want.saturating_sub(self.buf.len()).max(READ_CHUNK);
        if free < need.min(READ_CHUNK) || (self.want > self.buf.len() && free < need) {
            self.buf.reserve_exact(need);
        }
        &mut self.buf
    }

    /// The next complete message in what has been read, `Ok(None)` when more bytes are
    /// needed. After a [`Msg::Close`] or an error, always `Ok(None)`.
    pub fn next_message(&mut self) -> Result<Option<Msg<'_>>, Fail> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let Some(frame) = self.frame()? else {
                return Ok(None);
            };
            let Frame {
                fin,
                opcode,
                payload,
            } = frame;
            match opcode {
                0x8 => {
                    self.finished = true;
                    let code = self.close_code(payload)?;
                    return Ok(Some(Msg::Close(code)));
                }
                0x9 => return Ok(Some(Msg::Ping(&self.buf[payload.0..payload.1]))),
                0xA => return Ok(Some(Msg::Pong)),
                0x1 | 0x2 => {
                    let kind = if opcode == 0x1 {
                        Kind::Text
                    } else {
                        Kind::Binary
                    };
                    if self.partial.is_some() {
                        return Err(self.fail(Fail::protocol(
                            "a new message began before the fragmented one ended",
                        )));
                    }
                    if !fin {
                        self.partial = Some((kind, self.buf[payload.0..payload.1].to_vec()));
                        continue;
                    }
                    return match kind {
                        Kind::Binary => Ok(Some(Msg::Binary)),
                        Kind::Text => text(&self.buf[payload.0..payload.1], &mut self.finished),
                    };
                }
                0x0 => {
                    let Some((_, data)) = self.partial.as_mut() else {
                        return Err(self.fail(Fail::protocol(
                            "a continuation frame with no message to continue",
                        )));
                    };
                    data.extend_from_slice(&self.buf[payload.0..payload.1]);
                    if !fin {
                        continue;
                    }
                    let Some((kind, data)) = self.partial.take() else {
                        continue;
                    };
                    self.done = data;
                    return match kind {
                        Kind::Binary => Ok(Some(Msg::Binary)),
                        Kind::Text => text(&self.done, &mut self.finished),
                    };
                }
                _ => return Err(self.fail(Fail::protocol("reserved opcode"))),
            }
        }
    }

    fn fail(&mut self, fail: Fail) -> Fail {
        self.finished = true;
        fail
    }

    /// A close frame's code: none for an empty payload; a payload of one byte, a code a
    /// peer may not send, or a reason that is not UTF-8 is an error.
    fn close_code(&mut self, (from, to): (usize, usize)) -> Result<Option<u16>, Fail> {
        let payload = &self.buf[from..to];
        match payload {
            [] => Ok(None),
            [_] => Err(Fail::protocol("a close frame with a one-byte payload")),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !close_code_allowed(code) {
                    return Err(Fail::protocol(&format!(
                        "close code {code} may not be sent"
                    )));
                }
                if std::str::from_utf8(reason).is_err() {
                    return Err(invalid_utf8());
                }
                Ok(Some(code))
            }
        }
    }

    /// The next whole frame, unmasked in place; `None` when more bytes are needed.
    fn frame(&mut self) -> Result<Option<Frame>, Fail> {
        let bytes = &self.buf[self.start..];
        if bytes.len() < 2 {
            self.want = 2;
            return Ok(None);
        }
        let (b0, b1) = (bytes[0], bytes[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x70 != 0 {
            return Err(self.fail(Fail::protocol("reserved bits set")));
        }
        if matches!(opcode, 0x3..=0x7 | 0xB..=0xF) {
            return Err(self.fail(Fail::protocol("reserved opcode")));
        }
        if b1 & 0x80 == 0 {
            return Err(self.fail(Fail::protocol("a client's frame must be masked")));
        }
        let control = opcode & 0x8 != 0;
        let len_end = match b1 & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        if bytes.len() < len_end {
            self.want = len_end;
            return Ok(None);
        }
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let header = len_end + 4;
        if control && !fin {
            return Err(self.fail(Fail::protocol("a fragmented control frame")));
        }
        if control && len > 125 {
            return Err(self.fail(Fail::protocol("a control frame over 125 bytes")));
        }
        if len >> 63 != 0 {
            return Err(self.fail(Fail::protocol("a frame length with the top bit set")));
        }
        if !control {
            let so_far = self.partial.as_ref().map_or(0, |(_, d)| d.len()) as u64;
            if so_far.saturating_add(len) > self.max_message as u64 {
                return Err(self.fail(Fail {
                    code: code::TOO_BIG,
                    reason: format!("message too big: the limit is {} bytes", self.max_message),
                }));
            }
        }
        // Bounded by the checks above: at most the message limit plus a header.
        let len = len as usize;
        let total = header + len;
        if bytes.len() < total {
            self.want = total;
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&bytes[header - 4..header]);
        let from = self.start + header;
        let to = from + len;
        unmask(&mut self.buf[from..to], mask);
        self.start = to;
        self.want = 0;
        Ok(Some(Frame {
            fin,
            opcode,
            payload: (from, to),
        }))
    }
}

struct Frame {
    fin: bool,
    opcode: u8,
    /// Where the payload is in the buffer.
    payload: (usize, usize),
}

fn invalid_utf8() -> Fail {
    Fail {
        code: code::INVALID,
        reason: "invalid UTF-8 in a text message".into(),
    }
}

/// A complete text message, or 1007 (and the decoder finished) when it is not UTF-8.
fn text<'a>(bytes: &'a [u8], finished: &mut bool) -> Result<Option<Msg<'a>>, Fail> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Some(Msg::Text(s))),
        Err(_) => {
            *finished = true;
            Err(invalid_utf8())
        }
    }
}

/// XORs `data` with the masking key, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// Appends the server's (unmasked) frames to an output buffer.
#[derive(Default)]
pub struct Encoder {
    /// Bytes waiting to be written.
    pub out: Vec<u8>,
}

impl Encoder {
    /// A text message in one frame.
    pub fn text(&mut self, text: &str) {
        self.frame(0x1, text.as_bytes());
    }

    /// A text message in one frame whose payload `write` appends (it must write UTF-8):
    /// encoded straight into the output buffer, the header fixed up afterwards.
    pub fn text_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.out.len();
        // Room for the usual header: opcode, 126, a 16-bit length.
        self.out.extend_from_slice(&[0x81, 126, 0, 0]);
        write(&mut self.out);
        let len = self.out.len() - start - 4;
        if len < 126 {
            self.out[start + 1] = len as u8;
            self.out.copy_within(start + 4.., start + 2);
            self.out.truncate(self.out.len() - 2);
        } else if let Ok(short) = u16::try_from(len) {
            self.out[start + 2..start + 4].copy_from_slice(&short.to_be_bytes());
        } else {
            self.out[start + 1] = 127;
            self.out
                .splice(start + 2..start + 4, (len as u64).to_be_bytes());
        }
    }

    /// A pong echoing a ping's payload.
    pub fn pong(&mut self, payload: &[u8]) {
        self.frame(0xA, payload);
    }

    /// A close frame with a code (and a reason cut to fit the 125-byte limit on a
    /// character boundary), or an empty one.
    pub fn close(&mut self, code: Option<u16>, reason: &str) {
        let Some(code) = code else {
            self.frame(0x8, &[]);
            return;
        };
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.frame(0x8, &payload);
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        self.out.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            self.out.push(len as u8);
        } else if let Ok(short) = u16::try_from(len) {
            self.out.push(126);
            self.out.extend_from_slice(&short.to_be_bytes());
        } else {
            self.out.push(127);
            self.out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.out.extend_from_slice(payload);
    }

    /// Marks `n` bytes as written.
    pub fn consumed(&mut self, n: usize) {
        if n >= self.out.len() {
            self.out.clear();
            if self.out.capacity() > SHRINK_ABOVE {
                self.out = Vec::new();
            }
        } else {
            self.out.drain(..n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn feed(d: &mut Decoder, bytes: &[u8]) {
        d.read_buf().extend_from_slice(bytes);
    }

    #[test]
    fn text_ping_close_byte_by_byte() {
        let mut input = frame(true, 0x1, "héllo".as_bytes());
        input.extend(frame(true, 0x9, b"p"));
        input.extend(frame(true, 0x1, &[b'x'; 300]));
        input.extend(frame(true, 0x8, &1000u16.to_be_bytes()));
        let mut d = Decoder::new(1000);
        let mut got = Vec::new();
        for b in input {
            feed(&mut d, &[b]);
            while let Some(m) = d.next_message().expect("valid") {
                got.push(format!("{m:?}"));
            }
        }
        assert_eq!(
            got,
            [
                "Text(\"héllo\")".to_owned(),
                "Ping([112])".to_owned(),
                format!("Text({:?})", "x".repeat(300)),
                "Close(Some(1000))".to_owned(),
            ]
        );
    }

    #[test]
    fn fragments_with_a_code_point_split_and_a_ping_between() {
        let euro = "€".as_bytes();
        let mut d = Decoder::new(100);
        feed(&mut d, &frame(false, 0x1, &euro[..1]));
        feed(&mut d, &frame(true, 0x9, b""));
        feed(&mut d, &frame(false, 0x0, &euro[1..]));
        feed(&mut d, &frame(true, 0x0, b"!"));
        assert_eq!(d.next_message(), Ok(Some(Msg::Ping(b""))));
        assert_eq!(d.next_message(), Ok(Some(Msg::Text("€!"))));
        assert_eq!(d.next_message(), Ok(None));
    }

    #[test]
    fn refusals() {
        let big = vec![b'a'; 101];
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("rsv1", vec![0xc1, 0x80, 0, 0, 0, 0], 1002),
            ("opcode 3", vec![0x83, 0x80, 0, 0, 0, 0], 1002),
            ("opcode 11", vec![0x8b, 0x80, 0, 0, 0, 0], 1002),
            ("unmasked", vec![0x81, 0x01, b'a'], 1002),
            ("fragmented ping", frame(false, 0x9, b""), 1002),
            ("long ping", frame(true, 0x9, &[0; 126]), 1002),
            ("lone continuation", frame(true, 0x0, b"a"), 1002),
            ("close 1 byte", frame(true, 0x8, &[3]), 1002),
            ("close 1005", frame(true, 0x8, &1005u16.to_be_bytes()), 1002),
            ("close 999", frame(true, 0x8, &999u16.to_be_bytes()), 1002),
            ("close 5000", frame(true, 0x8, &5000u16.to_be_bytes()), 1002),
            ("close bad reason", frame(true, 0x8, &[3, 232, 0xff]), 1007),
            ("bad utf-8", frame(true, 0x1, &[0xff]), 1007),
            ("too big", frame(true, 0x1, &big), 1009),
        ];
        for (name, input, want) in cases {
            let mut d = Decoder::new(100);
            feed(&mut d, &input);
            let got = d.next_message().map(|m| format!("{m:?}"));
            assert_eq!(got.map_err(|f| f.code), Err(want), "{name}");
            assert_eq!(
                d.next_message(),
                Ok(None),
                "{name}: nothing after a failure"
            );
        }
    }

    #[test]
    fn too_big_is_refused_from_the_header_alone() {
        let mut d = Decoder::new(100);
        // Only the header of a 1 MB frame has arrived.
        feed(&mut d, &[0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(d.next_message().map_err(|f| f.code), Err(1009));
        let mut d = Decoder::new(100);
        feed(&mut d, &frame(false, 0x1, &[b'a'; 60]));
        feed(&mut d, &frame(true, 0x0, &[b'a'; 60])[..4]);
        assert_eq!(d.next_message().map_err(|f| f.code), Err(1009));
    }

    #[test]
    fn encoder_lengths_and_close_reason_cut() {
        let mut e = Encoder::default();
        e.text("hi");
        assert_eq!(e.out, [0x81, 2, b'h', b'i']);
        e.consumed(4);
        e.text(&"a".repeat(200));
        assert_eq!(&e.out[..4], &[0x81, 126, 0, 200]);
        e.consumed(e.out.len());
        e.text(&"a".repeat(70_000));
        assert_eq!(&e.out[..2], &[0x81, 127]);
        e.consumed(e.out.len());
        assert_eq!(e.out.capacity(), 0, "given back after a large message");
        e.close(Some(1009), &"é".repeat(100));
        assert_eq!(e.out[1] as usize, e.out.len() - 2);
        assert!(e.out.len() - 2 <= 125);
        assert!(std::str::from_utf8(&e.out[4..]).is_ok());
    }

    #[test]
    fn frames_written_in_place_match_copied_ones() {
        for n in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "é".repeat(n / 2) + &"a".repeat(n % 2);
            let mut copied = Encoder::default();
            copied.text("x");
            copied.text(&text);
            let mut in_place = Encoder::default();
            in_place.text("x");
            in_place.text_with(|b| b.extend_from_slice(text.as_bytes()));
            assert_eq!(copied.out, in_place.out, "{n}");
        }
    }

    #[test]
    fn unmask_matches_bytewise() {
        let mask = [1, 2, 3, 4];
        for n in 0..40 {
            let mut data: Vec<u8> = (0..n as u8).collect();
            unmask(&mut data, mask);
            let want: Vec<u8> = (0..n as u8).map(|i| i ^ mask[i as usize % 4]).collect();
            assert_eq!(data, want);
        }
    }

    /// Everything a decoder yields for `input` fed in pieces of `step` bytes.
    fn decode_all(input: &[u8], step: usize) -> Vec<String> {
        let mut d = Decoder::new(200);
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            feed(&mut d, piece);
            loop {
                match d.next_message() {
                    Ok(Some(m)) => out.push(format!("{m:?}")),
                    Ok(None) => break,
                    Err(f) => {
                        out.push(format!("fail {}", f.code));
                        break;
                    }
                }
            }
        }
        out
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes, in any pieces: no panic, and the same messages whatever the pieces.
            #[test]
            fn any_bytes_any_pieces(input in proptest::collection::vec(any::<u8>(), 0..600), step in 1usize..64) {
                prop_assert_eq!(decode_all(&input, step), decode_all(&input, input.len().max(1)));
            }

            /// Valid frames of any payload round-trip.
            #[test]
            fn valid_frames(payloads in proptest::collection::vec("[a-z€😀]{0,60}", 1..8), step in 1usize..32) {
                let mut input = Vec::new();
                for p in &payloads {
                    input.extend(frame(true, 0x1, p.as_bytes()));
                }
                let want: Vec<String> = payloads.iter().map(|p| format!("{:?}", Msg::Text(p))).collect();
                prop_assert_eq!(decode_all(&input, step), want);
            }
        }
    }
}
