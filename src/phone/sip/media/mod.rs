//! A call's media: one RTP stream of G.711 audio both ways on a UDP port pair from the
//! configured range (RTP on an even port, RTCP on the next), paced by a 20 ms clock.
//!
//! - [`g711`]: the codecs; [`rtp`]: packets; [`jitter`]: the adaptive jitter buffer;
//!   [`dtmf`]: RFC 4733 telephone-events.
//! - [`Stream`]: the task. It takes only packets from the far end's address (its IP, any
//!   port: symmetric RTP behind NAT), of one SSRC (another replaces it once it has been
//!   silent for 200 ms), only the agreed payload types, at most
//!   [`MAX_DATAGRAMS_PER_TICK`] datagrams per tick; everything else is dropped uncounted.
//!   Mute sends silence (the far end keeps hearing a stream, NAT bindings stay open).
//! - [`srtp`]: when the call is encrypted, every RTP and RTCP packet is protected as it
//!   leaves and every RTP packet checked and decrypted as it comes, before anything else
//!   reads it; one that does not check is dropped and counted.

pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod rtp;
pub mod srtp;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::audio::{FRAME, Sink, Source};
use super::sdp::{Agreed, Direction};
use g711::Law;
use jitter::{JitterBuffer, Pop};
use srtp::MasterKey;

/// The media clock's tick.
pub const TICK: Duration = Duration::from_millis(20);
/// Most datagrams read per tick; a flood beyond it waits in (and overflows) the socket's
/// buffer, so it cannot take more CPU than this.
pub const MAX_DATAGRAMS_PER_TICK: usize = 64;
/// How long (8 kHz units: 200 ms) the far end's stream must be silent before packets of
/// another SSRC from its address replace it.
const SSRC_SWITCH_SILENCE: u64 = 1600;
/// Seconds between RTCP reports.
const RTCP_EVERY_TICKS: u64 = 250;

/// A change to a running stream.
#[derive(Debug)]
pub enum Control {
    /// The far end's address, codec and direction (a new offer or answer).
    Agreed(Agreed),
    /// Our own direction (sendonly while we hold the call).
    Direction(Direction),
    /// Send silence instead of the source.
    Mute(bool),
    /// Send DTMF digits.
    Dtmf(String),
}

/// What a stream counted, readable while it runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Audio packets sent.
    pub sent: AtomicU64,
    /// Audio packets received from the far end.
    pub received: AtomicU64,
    /// DTMF events sent.
    pub dtmf_sent: AtomicU64,
    /// SRTP packets from the far end's address that did not check (forged, replayed, of
    /// another key).
    pub refused: AtomicU64,
}

/// A running stream.
pub struct Stream {
    control: mpsc::Sender<Control>,
    /// What it counted.
    pub counters: Arc<Counters>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// What the stream tells its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The far end sent a DTMF digit.
    Dtmf(char),
}

/// Binds an RTP/RTCP port pair on `ip` from `ports` (trying even ports from a random start).
pub async fn bind_pair(
    ip: IpAddr,
    ports: &RangeInclusive<u16>,
) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let (low, high) = (*ports.start() & !1, *ports.end());
    let pairs = u32::from(high.saturating_sub(low) / 2).max(1);
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(pairs)) as u32;
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free RTP port");
    for i in 0..pairs {
        let port = low + 2 * ((start + i) % pairs) as u16;
        if port.checked_add(1).is_none_or(|p| p > high) {
            continue;
        }
        match UdpSocket::bind((ip, port)).await {
            Ok(rtp) => match UdpSocket::bind((ip, port + 1)).await {
                Ok(rtcp) => return Ok((rtp, rtcp)),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Stream {
    /// Starts a stream on bound sockets with an agreed far end, a source and a sink;
    /// `key` is our SRTP master key, used when `agreed` says the media is encrypted.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        (rtp, rtcp): (UdpSocket, UdpSocket),
        agreed: Agreed,
        direction: Direction,
        source: Box<dyn Source>,
        sink: Box<dyn Sink>,
        events: mpsc::Sender<MediaEvent>,
        cname: String,
        key: MasterKey,
    ) -> Stream {
        let local = rtp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (control, commands) = mpsc::channel(16);
        let counters = Arc::new(Counters::default());
        let ssrc = uuid::Uuid::new_v4().as_u128() as u32;
        let runner = Runner {
            srtp_out: agreed.srtp.map(|c| srtp::Sender::new(c.suite, &key)),
            srtp_in: agreed.srtp.map(|c| srtp::Receiver::new(c.suite, &c.key)),
            key,
            rtp,
            rtcp,
            agreed,
            direction,
            source,
            sink,
            events,
            cname,
            counters: Arc::clone(&counters),
            muted: false,
            ssrc,
            // Below 0x8000: a far end that misses the first packets cannot take the
            // first it gets for one after a rollover (RFC 3711 §3.3.1).
            sequence: (ssrc >> 16) as u16 & 0x7FFF,
            rollovers: 0,
            timestamp: ssrc.rotate_left(7),
            jitter: JitterBuffer::new(FRAME as u32),
            dtmf: dtmf::Sender::default(),
            dtmf_in: dtmf::Receiver::default(),
            remote_ssrc: None,
            remote_heard: 0,
            octets: 0,
            dtmf_start: 0,
        };
        let task = tokio::spawn(runner.run(commands));
        Stream {
            control,
            counters,
            local,
            task,
        }
    }

    /// The local RTP address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sends a change; false when the stream has stopped or is too busy to take it.
    pub fn control(&self, c: Control) -> bool {
        self.control.try_send(c).is_ok()
    }

    /// SRTP packets refused so far.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Packets sent and received so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counters.sent.load(Ordering::Relaxed),
            self.counters.received.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Runner {
    /// Our SRTP master key (the same for the whole call).
    key: MasterKey,
    /// What protects our packets, once the call was first encrypted: kept for the rest
    /// of the call (its rollover counter with it), so that no packet index is ever
    /// encrypted twice with our key, whatever later offers and answers say.
    srtp_out: Option<srtp::Sender>,
    /// What checks the far end's packets, with its key (a new key starts a new one).
    srtp_in: Option<srtp::Receiver>,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    agreed: Agreed,
    direction: Direction,
    source: Box<dyn Source>,
    sink: Box<dyn Sink>,
    events: mpsc::Sender<MediaEvent>,
    cname: String,
    counters: Arc<Counters>,
    muted: bool,
    ssrc: u32,
    sequence: u16,
    /// How often `sequence` wrapped (SRTP's rollover counter, kept for plain packets too).
    rollovers: u32,
    timestamp: u32,
    jitter: JitterBuffer,
    dtmf: dtmf::Sender,
    dtmf_in: dtmf::Receiver,
    remote_ssrc: Option<u32>,
    /// When the latched sender was last heard, in 8 kHz units since the stream started.
    remote_heard: u64,
    octets: u32,
    /// The RTP timestamp of the DTMF event being sent.
    dtmf_start: u32,
}

impl Runner {
    async fn run(mut self, mut commands: mpsc::Receiver<Control>) {
        let mut clock = tokio::time::interval(TICK);
        clock.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let origin = Instant::now();
        let mut buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 1500];
        let mut ticks: u64 = 0;
        let mut samples = [0i16; FRAME];
        let mut encoded = Vec::with_capacity(FRAME);
        let mut packet = Vec::with_capacity(FRAME + 12);
        let mut decoded = Vec::with_capacity(FRAME);
        let mut read_this_tick = 0usize;
        loop {
            tokio::select! {
                biased;
                c = commands.recv() => match c {
                    None => return,
                    Some(c) => self.apply(c),
                },
                _ = clock.tick() => {
                    ticks += 1;
                    read_this_tick = 0;
                    self.send_tick(&mut samples, &mut encoded, &mut packet);
                    self.play_tick(&mut decoded);
                    if ticks.is_multiple_of(RTCP_EVERY_TICKS) {
                        self.send_rtcp(&mut packet).await;
                    }
                }
                r = self.rtp.recv_from(&mut buf), if read_this_tick < MAX_DATAGRAMS_PER_TICK => {
                    read_this_tick += 1;
                    if let Ok((n, from)) = r {
                        let arrival = (origin.elapsed().as_micros() / 125) as u64;
                        self.receive(&mut buf[..n], from, arrival);
                    }
                }
                r = self.rtcp.recv_from(&mut rtcp_buf), if read_this_tick < MAX_DATAGRAMS_PER_TICK => {
                    // Reports from the far end are read and dropped: nothing here uses them.
                    read_this_tick += 1;
                    let _ = r;
                }
            }
        }
    }

    fn apply(&mut self, c: Control) {
        match c {
            Control::Agreed(a) => {
                if a.remote != self.agreed.remote {
                    self.remote_ssrc = None;
                }
                // The far end's new key (or none) starts a new receiving context; the same
                // key keeps its state and follows the suite, as ours does.
                match (&mut self.srtp_in, a.srtp) {
                    (Some(r), Some(c)) if self.agreed.srtp.map(|o| o.key) == Some(c.key) => {
                        r.set_suite(c.suite);
                    }
                    _ => self.srtp_in = a.srtp.map(|c| srtp::Receiver::new(c.suite, &c.key)),
                }
                if let Some(c) = a.srtp {
                    match &mut self.srtp_out {
                        Some(s) => s.set_suite(c.suite),
                        None => self.srtp_out = Some(srtp::Sender::new(c.suite, &self.key)),
                    }
                }
                self.agreed = a;
            }
            Control::Direction(d) => self.direction = d,
            Control::Mute(m) => self.muted = m,
            Control::Dtmf(digits) => {
                let _ = self.dtmf.queue(&digits);
            }
        }
    }

    fn sending(&self) -> bool {
        self.direction.sends()
            && self.agreed.remote_direction.receives()
            && !self.agreed.remote.ip().is_unspecified()
            && self.agreed.remote.port() != 0
    }

    fn send_tick(
        &mut self,
        samples: &mut [i16; FRAME],
        encoded: &mut Vec<u8>,
        packet: &mut Vec<u8>,
    ) {
        // The source is read every tick, sent or not, so a file or tone keeps its pace.
        self.source.read(samples);
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        if !self.sending() {
            return;
        }
        if let Some(pt) = self.agreed.dtmf
            && let Some(out) = self.dtmf.tick(FRAME as u16)
        {
            if out.marker {
                self.dtmf_start = timestamp;
            }
            let start = self.dtmf_start;
            let payload = out.event.bytes();
            let p = rtp::Packet {
                marker: out.marker,
                payload_type: pt,
                sequence: self.sequence,
                timestamp: start,
                ssrc: self.ssrc,
                payload: &payload,
            };
            p.write(packet);
            let roc = self.next_sequence();
            if out.marker {
                self.counters.dtmf_sent.fetch_add(1, Ordering::Relaxed);
            }
            if self.protect(packet, roc) {
                let _ = self.rtp.try_send_to(packet, self.agreed.remote);
            }
            return;
        }
        if self.muted {
            samples.fill(0);
        }
        self.agreed.law.encode(samples, encoded);
        let p = rtp::Packet {
            marker: false,
            payload_type: self.agreed.payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
            payload: encoded,
        };
        p.write(packet);
        let roc = self.next_sequence();
        if self.protect(packet, roc) && self.rtp.try_send_to(packet, self.agreed.remote).is_ok() {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.octets = self.octets.wrapping_add(encoded.len() as u32);
        }
    }

    /// Moves on to the next sequence number; the rollover count of the packet that had
    /// the current one.
    fn next_sequence(&mut self) -> u32 {
        let roc = self.rollovers;
        self.sequence = self.sequence.wrapping_add(1);
        if self.sequence == 0 {
            self.rollovers = self.rollovers.wrapping_add(1);
        }
        roc
    }

    /// Encrypts an RTP packet (of rollover count `roc`) when the call is encrypted; false
    /// if it must not be sent.
    fn protect(&mut self, packet: &mut Vec<u8>, roc: u32) -> bool {
        match (&mut self.srtp_out, self.agreed.srtp) {
            (Some(s), Some(_)) => s.protect(packet, roc),
            _ => true,
        }
    }

    fn receive(&mut self, data: &mut [u8], from: SocketAddr, arrival: u64) {
        if from.ip() != self.agreed.remote.ip() {
            return;
        }
        let data = match &mut self.srtp_in {
            Some(s) => match s.unprotect(data) {
                Ok(n) => &data[..n],
                Err(_) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            None => &data[..],
        };
        let Ok(p) = rtp::Packet::parse(data) else {
            return;
        };
        // Latch onto one sender; another SSRC replaces it only once it has been silent
        // for SSRC_SWITCH_SILENCE. (A marker bit is no proof of a new stream: one datagram
        // in eight of random bytes parses as RTP with it set, and from the far end's
        // address it would have cut the real far end off for the rest of the call.)
        match self.remote_ssrc {
            Some(s) if s != p.ssrc => {
                if arrival.saturating_sub(self.remote_heard) < SSRC_SWITCH_SILENCE {
                    return;
                }
                self.jitter = JitterBuffer::new(FRAME as u32);
                self.remote_ssrc = Some(p.ssrc);
            }
            None => self.remote_ssrc = Some(p.ssrc),
            _ => {}
        }
        self.remote_heard = arrival;
        if Some(p.payload_type) == self.agreed.dtmf {
            if let Some(e) = dtmf::Event::parse(p.payload)
                && let Some(d) = self.dtmf_in.take(p.timestamp, &e)
            {
                let _ = self.events.try_send(MediaEvent::Dtmf(d));
            }
            return;
        }
        if p.payload_type != self.agreed.payload_type {
            return;
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.jitter
            .push(p.sequence, p.timestamp, arrival, p.payload);
    }

    fn play_tick(&mut self, decoded: &mut Vec<i16>) {
        let law: Law = self.agreed.law;
        match self.jitter.pop() {
            Pop::Frame(payload) => {
                law.decode(payload, decoded);
                self.sink.write(decoded);
            }
            Pop::Lost | Pop::Buffering => {
                decoded.clear();
                decoded.resize(FRAME, 0);
                self.sink.write(decoded);
            }
        }
    }

    async fn send_rtcp(&mut self, out: &mut Vec<u8>) {
        if !self.sending() {
            return;
        }
        let sender = rtp::SenderInfo {
            ntp: ntp_now(),
            rtp_timestamp: self.timestamp,
            packets: self.counters.sent.load(Ordering::Relaxed) as u32,
            octets: self.octets,
        };
        let block = self.remote_ssrc.map(|ssrc| rtp::ReceptionStats {
            ssrc,
            jitter: self.jitter.jitter(),
            ..rtp::ReceptionStats::default()
        });
        rtp::write_rtcp_report(self.ssrc, Some(sender), block, &self.cname, out);
        if let (Some(s), Some(_)) = (&mut self.srtp_out, self.agreed.srtp)
            && !s.protect_rtcp(out)
        {
            return;
        }
        let to = SocketAddr::new(
            self.agreed.remote.ip(),
            self.agreed.remote.port().wrapping_add(1),
        );
        let _ = self.rtcp.try_send_to(out, to);
    }
}

/// The wall clock as an NTP timestamp.
fn ntp_now() -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(now.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}
