//! An adaptive jitter buffer for one RTP stream: packets go in as they arrive (late,
//! reordered, duplicated or lost), frames come out at the playout clock's pace in sequence
//! order. Its depth follows the measured interarrival jitter (RFC 3550 §6.4.1): deeper when
//! packets arrive unevenly, back down when they arrive steadily. It holds at most
//! [`CAPACITY`] frames of at most [`MAX_PAYLOAD`] bytes, whatever the far end sends.

/// Frames the buffer can hold (640 ms of 20 ms frames).
pub const CAPACITY: usize = 32;
/// The largest payload kept; a larger one is dropped (G.711 at 20 ms is 160 bytes).
pub const MAX_PAYLOAD: usize = 1024;
/// The shallowest and deepest playout targets, in frames.
pub const MIN_TARGET: usize = 1;
/// See [`MIN_TARGET`].
pub const MAX_TARGET: usize = 12;

/// What the playout clock gets for one tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<'a> {
    /// The next frame's payload.
    Frame(&'a [u8]),
    /// The next frame is missing (lost or late): conceal it.
    Lost,
    /// Filling up before playout starts (or restarts after running dry): play silence.
    Buffering,
}

#[derive(Default)]
struct Slot {
    used: bool,
    sequence: u16,
    payload: Vec<u8>,
}

/// What the buffer has seen, for logs and RTCP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted.
    pub received: u64,
    /// Packets that came after their playout time.
    pub late: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Frames concealed at playout.
    pub concealed: u64,
    /// Frames dropped to bring the depth back down.
    pub dropped: u64,
    /// Times the stream restarted (a jump in sequence numbers).
    pub resets: u64,
}

/// The buffer.
pub struct JitterBuffer {
    slots: Vec<Slot>,
    /// The sequence number to play next, once known.
    next: Option<u16>,
    playing: bool,
    buffered: usize,
    /// The current depth target, in frames.
    target: usize,
    /// RFC 3550 jitter estimate, in timestamp units, times 16 (fixed point).
    jitter16: u64,
    /// Samples per frame, in timestamp units (160 for 20 ms at 8 kHz).
    frame_units: u32,
    last_transit: Option<i64>,
    /// Consecutive ticks with more frames than the target needs.
    surplus_ticks: u32,
    stats: JitterStats,
}

/// Sequence distance from `a` to `b`, as a signed number (wrap-aware).
fn seq_diff(a: u16, b: u16) -> i32 {
    i32::from(b.wrapping_sub(a) as i16)
}

impl JitterBuffer {
    /// A buffer for frames of `frame_units` timestamp units.
    pub fn new(frame_units: u32) -> JitterBuffer {
        JitterBuffer {
            slots: (0..CAPACITY).map(|_| Slot::default()).collect(),
            next: None,
            playing: false,
            buffered: 0,
            target: 2,
            jitter16: 0,
            frame_units: frame_units.max(1),
            last_transit: None,
            surplus_ticks: 0,
            stats: JitterStats::default(),
        }
    }

    /// The current depth target, in frames.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Frames held now.
    pub fn depth(&self) -> usize {
        self.buffered
    }

    /// The interarrival jitter estimate, in timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 / 16).unwrap_or(u32::MAX)
    }

    /// What the buffer has seen.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn clear(&mut self) {
        for s in &mut self.slots {
            s.used = false;
        }
        self.buffered = 0;
        self.playing = false;
        self.next = None;
    }

    /// Takes a packet: its sequence number, RTP timestamp, arrival time in timestamp
    /// units (any fixed origin) and payload.
    pub fn push(&mut self, sequence: u16, timestamp: u32, arrival: u64, payload: &[u8]) {
        if payload.len() > MAX_PAYLOAD {
            return;
        }
        self.update_jitter(timestamp, arrival);
        if let Some(next) = self.next {
            let ahead = seq_diff(next, sequence);
            if ahead < 0 {
                if ahead > -(CAPACITY as i32) * 4 {
                    self.stats.late += 1;
                    return;
                }
                // Far behind: the sender restarted its numbering.
                self.stats.resets += 1;
                self.clear();
            } else if ahead >= CAPACITY as i32 {
                // Far ahead: a jump (or a long silence): start again from here.
                self.stats.resets += 1;
                self.clear();
            }
        }
        let next = *self.next.get_or_insert(sequence);
        if !self.playing && seq_diff(next, sequence) < 0 {
            // Before playout starts, an earlier packet moves the start back.
            self.next = Some(sequence);
        }
        let slot = &mut self.slots[usize::from(sequence) % CAPACITY];
        if slot.used {
            if slot.sequence == sequence {
                self.stats.duplicates += 1;
                return;
            }
            // A stale frame from a wrap of the ring: replaced.
            self.buffered -= 1;
        }
        slot.used = true;
        slot.sequence = sequence;
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.buffered += 1;
        self.stats.received += 1;
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: u64) {
        // Transit time modulo 2^32 in a signed form; only differences matter.
        let transit = i64::from(arrival as u32 as i32) - i64::from(timestamp as i32);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // Differences beyond a second are stream jumps, not jitter.
            if d < 8000 {
                // J += (|D| - J) / 16, in fixed point times 16.
                let j = self.jitter16 as i64;
                self.jitter16 = (j + (d as i64 * 16 - j) / 16).max(0) as u64;
            }
        }
        self.last_transit = Some(transit);
        // Hold about three jitters' worth of frames, plus one.
        let jitter = self.jitter16 / 16;
        let frames = (3 * jitter).div_ceil(u64::from(self.frame_units)) as usize + 1;
        self.target = frames.clamp(MIN_TARGET, MAX_TARGET);
    }

    /// One playout tick.
    pub fn pop(&mut self) -> Pop<'_> {
        let Some(next) = self.next else {
            return Pop::Buffering;
        };
        if !self.playing {
            if self.buffered < self.target {
                return Pop::Buffering;
            }
            self.playing = true;
        }
        if self.buffered == 0 {
            // Ran dry: fill up to the target again before playing.
            self.playing = false;
            self.stats.concealed += 1;
            self.next = Some(next.wrapping_add(1));
            return Pop::Lost;
        }
        // Too deep for a while: skip the oldest frame to cut the delay.
        if self.buffered > self.target + 2 {
            self.surplus_ticks += 1;
        } else {
            self.surplus_ticks = 0;
        }
        let mut next = next;
        // After half a second too deep, one frame in five is dropped until it is not.
        if self.surplus_ticks >= 25 {
            self.surplus_ticks = 20;
            let slot = &mut self.slots[usize::from(next) % CAPACITY];
            if slot.used && slot.sequence == next {
                slot.used = false;
                self.buffered -= 1;
            }
            self.stats.dropped += 1;
            next = next.wrapping_add(1);
        }
        self.next = Some(next.wrapping_add(1));
        let index = usize::from(next) % CAPACITY;
        let slot = &mut self.slots[index];
        if slot.used && slot.sequence == next {
            slot.used = false;
            self.buffered -= 1;
            Pop::Frame(&self.slots[index].payload)
        } else {
            self.stats.concealed += 1;
            Pop::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u16) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    fn played(b: &mut JitterBuffer) -> Option<Option<u16>> {
        match b.pop() {
            Pop::Frame(p) => Some(Some(u16::from_be_bytes([p[0], p[1]]))),
            Pop::Lost => Some(None),
            Pop::Buffering => None,
        }
    }

    #[test]
    fn steady_stream_plays_in_order() {
        let mut b = JitterBuffer::new(160);
        let mut out = Vec::new();
        for n in 0..100u16 {
            let t = u32::from(n) * 160;
            b.push(n.wrapping_add(65500), t, u64::from(t), &frame(n));
            if let Some(p) = played(&mut b) {
                out.push(p);
            }
        }
        assert!(b.target() <= 2);
        // Everything that played is in order, nothing lost, across the wrap of 65535.
        let got: Vec<u16> = out.iter().map(|p| p.expect("no loss")).collect();
        assert!(got.len() >= 98);
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn reordering_and_duplicates_are_repaired() {
        let mut b = JitterBuffer::new(160);
        let order = [0u16, 2, 1, 1, 4, 3, 5, 6, 7, 8];
        for (i, &n) in order.iter().enumerate() {
            b.push(n, u32::from(n) * 160, i as u64 * 160, &frame(n));
        }
        assert_eq!(b.stats().duplicates, 1);
        let mut got = Vec::new();
        while let Some(Some(n)) = played(&mut b) {
            got.push(n);
        }
        assert_eq!(got, (0..=8).collect::<Vec<u16>>());
    }

    #[test]
    fn a_lost_packet_is_concealed_and_a_late_one_dropped() {
        let mut b = JitterBuffer::new(160);
        for n in [0u16, 1, 3, 4] {
            b.push(n, u32::from(n) * 160, u64::from(n) * 160, &frame(n));
        }
        assert_eq!(played(&mut b), Some(Some(0)));
        assert_eq!(played(&mut b), Some(Some(1)));
        assert_eq!(played(&mut b), Some(None));
        b.push(2, 320, 800, &frame(2)); // too late now
        assert_eq!(b.stats().late, 1);
        assert_eq!(played(&mut b), Some(Some(3)));
        assert_eq!(played(&mut b), Some(Some(4)));
    }

    #[test]
    fn uneven_arrival_deepens_the_buffer_and_steady_arrival_lowers_it() {
        let mut b = JitterBuffer::new(160);
        // Packets arrive in bursts of five every 100 ms.
        for n in 0..200u16 {
            let t = u32::from(n) * 160;
            let arrival = u64::from(n / 5) * 800 + 800;
            b.push(n, t, arrival, &frame(n));
        }
        let deep = b.target();
        assert!(deep >= 4, "target {deep}");
        for n in 200..1200u16 {
            let t = u32::from(n) * 160;
            b.push(n, t, u64::from(t), &frame(n));
            let _ = b.pop();
        }
        assert!(b.target() < deep, "{} !< {deep}", b.target());
    }

    #[test]
    fn a_buffer_too_deep_drops_frames_to_catch_up() {
        let mut b = JitterBuffer::new(160);
        // A burst leaves 15 frames queued; then packets keep arriving one per tick, so
        // without dropping the delay would stay 300 ms for ever.
        for n in 0..15u16 {
            b.push(n, u32::from(n) * 160, 0, &frame(n));
        }
        for n in 15..200u16 {
            b.push(n, u32::from(n) * 160, u64::from(n) * 160, &frame(n));
            let _ = b.pop();
        }
        assert!(b.stats().dropped >= 5, "{:?}", b.stats());
        assert!(b.depth() <= b.target() + 3, "depth {}", b.depth());
    }

    #[test]
    fn jumps_restart_and_oversized_payloads_are_refused() {
        let mut b = JitterBuffer::new(160);
        b.push(10, 0, 0, &frame(10));
        b.push(30_000, 160, 160, &frame(1));
        assert_eq!(b.stats().resets, 1);
        assert_eq!(b.depth(), 1);
        b.push(30_001, 320, 320, &vec![0; MAX_PAYLOAD + 1]);
        assert_eq!(b.depth(), 1);
    }

    #[test]
    fn hostile_sequences_never_exceed_capacity() {
        let mut b = JitterBuffer::new(160);
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let seq = (x >> 8) as u16;
            b.push(seq, x, u64::from(x >> 3), &[0; 4]);
            assert!(b.depth() <= CAPACITY);
            if x.is_multiple_of(3) {
                let _ = b.pop();
            }
        }
    }
}
