//! DTMF as RFC 4733 telephone-events: the digits' event codes, the 4-byte event payload,
//! a sender that spreads digits over 20 ms ticks (the first packet of an event marked, the
//! end packet sent three times) and a receiver that reports each event once.

/// How long each digit lasts, in 20 ms ticks (100 ms).
pub const DIGIT_TICKS: u16 = 5;
/// Silence between digits, in ticks (60 ms).
pub const GAP_TICKS: u16 = 3;
/// How often the end packet is sent (RFC 4733 §2.5.1.4 suggests three).
pub const END_REPEATS: u16 = 3;

/// The event code of a DTMF digit (0–9, *, #, A–D).
pub fn event_code(digit: char) -> Option<u8> {
    Some(match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        'a'..='d' => digit as u8 - b'a' + 12,
        _ => return None,
    })
}

/// The digit of an event code, if it is a DTMF event.
pub fn digit(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => char::from(b'0' + code),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + code - 12),
        _ => return None,
    })
}

/// One telephone-event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event code.
    pub code: u8,
    /// Whether this is (a copy of) the end packet.
    pub end: bool,
    /// The power level, 0 to 63 (-dBm0).
    pub volume: u8,
    /// How long the event has lasted, in timestamp units.
    pub duration: u16,
}

impl Event {
    /// Parses a payload (exactly the first four bytes count; shorter is refused).
    pub fn parse(payload: &[u8]) -> Option<Event> {
        let b = payload.get(..4)?;
        Some(Event {
            code: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The payload.
    pub fn bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.code,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// A packet the sender wants sent this tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The event payload.
    pub event: Event,
    /// Marker bit: the first packet of an event.
    pub marker: bool,
    /// Ticks since the event began (its RTP timestamp is the start's).
    pub start_tick: u64,
}

/// Sends queued digits, one per event, paced by [`Sender::tick`].
#[derive(Debug, Default)]
pub struct Sender {
    queue: std::collections::VecDeque<u8>,
    current: Option<(u8, u16)>,
    ends_left: u16,
    gap: u16,
    tick: u64,
    start: u64,
}

/// Most digits waiting to be sent.
pub const MAX_QUEUED: usize = 64;

impl Sender {
    /// Queues digits; returns false (queuing none) when they would not fit.
    pub fn queue(&mut self, digits: &str) -> bool {
        let codes: Option<Vec<u8>> = digits.chars().map(event_code).collect();
        match codes {
            Some(c) if self.queue.len() + c.len() <= MAX_QUEUED => {
                self.queue.extend(c);
                true
            }
            _ => false,
        }
    }

    /// Whether an event is being sent (audio packets pause meanwhile).
    pub fn busy(&self) -> bool {
        self.current.is_some() || self.ends_left > 0
    }

    /// Whether nothing remains to send.
    pub fn idle(&self) -> bool {
        !self.busy() && self.queue.is_empty() && self.gap == 0
    }

    /// Advances one 20 ms tick of `units` timestamp units; returns the packet to send, if
    /// any.
    pub fn tick(&mut self, units: u16) -> Option<Outgoing> {
        self.tick += 1;
        if self.ends_left > 0 {
            return Some(self.end_packet(units));
        }
        if self.gap > 0 {
            self.gap -= 1;
            return None;
        }
        let (code, ticks) = match &mut self.current {
            Some((code, ticks)) => {
                *ticks += 1;
                (*code, *ticks)
            }
            None => {
                let code = self.queue.pop_front()?;
                self.current = Some((code, 1));
                self.start = self.tick;
                (code, 1)
            }
        };
        if ticks >= DIGIT_TICKS {
            self.ends_left = END_REPEATS;
            return Some(self.end_packet(units));
        }
        Some(Outgoing {
            event: Event {
                code,
                end: false,
                volume: 10,
                duration: ticks.saturating_mul(units),
            },
            marker: ticks == 1,
            start_tick: self.start,
        })
    }

    fn end_packet(&mut self, units: u16) -> Outgoing {
        let (code, ticks) = self.current.unwrap_or((0, DIGIT_TICKS));
        self.ends_left = self.ends_left.saturating_sub(1);
        if self.ends_left == 0 {
            self.current = None;
            self.gap = GAP_TICKS;
        }
        Outgoing {
            event: Event {
                code,
                end: true,
                volume: 10,
                duration: ticks.saturating_mul(units),
            },
            marker: false,
            start_tick: self.start,
        }
    }
}

/// Reports each received event once, however many packets carry it.
#[derive(Debug, Default)]
pub struct Receiver {
    last: Option<u32>,
}

impl Receiver {
    /// Takes an event packet with its RTP timestamp; returns the digit when this is the
    /// first packet seen of a new event.
    pub fn take(&mut self, timestamp: u32, event: &Event) -> Option<char> {
        if self.last == Some(timestamp) {
            return None;
        }
        self.last = Some(timestamp);
        digit(event.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let all = "0123456789*#ABCD";
        for (i, c) in all.chars().enumerate() {
            assert_eq!(event_code(c), Some(i as u8));
            assert_eq!(digit(i as u8), Some(c));
        }
        assert_eq!(event_code('x'), None);
        assert_eq!(digit(16), None);
    }

    #[test]
    fn payload_round_trip() {
        let e = Event {
            code: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(Event::parse(&e.bytes()), Some(e));
        assert_eq!(Event::parse(&[1, 2, 3]), None);
    }

    #[test]
    fn a_digit_is_marked_once_and_ends_three_times() {
        let mut s = Sender::default();
        assert!(s.queue("1#"));
        let mut packets = Vec::new();
        for _ in 0..40 {
            if let Some(p) = s.tick(160) {
                packets.push(p);
            }
        }
        assert!(s.idle());
        let first: Vec<_> = packets.iter().filter(|p| p.event.code == 1).collect();
        assert_eq!(first.iter().filter(|p| p.marker).count(), 1);
        assert!(first[0].marker);
        assert_eq!(first.iter().filter(|p| p.event.end).count(), 3);
        assert!(first.iter().all(|p| p.start_tick == first[0].start_tick));
        let last = first.last().expect("packets");
        assert_eq!(last.event.duration, DIGIT_TICKS * 160);
        let hash: Vec<_> = packets.iter().filter(|p| p.event.code == 11).collect();
        assert!(hash[0].start_tick > first[0].start_tick);
        assert_eq!(hash.iter().filter(|p| p.event.end).count(), 3);
        // The receiver sees two digits.
        let mut r = Receiver::default();
        let got: String = packets
            .iter()
            .filter_map(|p| r.take(p.start_tick as u32 * 160, &p.event))
            .collect();
        assert_eq!(got, "1#");
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut s = Sender::default();
        assert!(s.queue(&"1".repeat(MAX_QUEUED)));
        assert!(!s.queue("2"));
        assert!(!s.queue("x"));
    }
}
