//! The workstation's microphone and speaker, through `cpal` (ALSA on Linux, WASAPI on
//! Windows).
//!
//! cpal's streams are not `Send` everywhere, so each opened device runs on a thread of its
//! own that owns the cpal objects. Between that thread's audio callback and the call's
//! 20 ms media tick sits a [`ring`] of 8 kHz samples (200 ms): neither side ever waits for
//! the other. The callback converts the device's sample format, channel count and rate to
//! 8 kHz mono (or back). A full ring drops its oldest samples; an empty one gives silence.
//! Dropping the [`Source`] or [`Sink`] stops its thread and stream.
//!
//! Nothing here fails for lack of a sound device: [`open_source`] and [`open_sink`] then
//! return an error saying so, and the caller uses silence or discards.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI16, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};

use super::{DeviceInfo, Devices, RATE, Sink, Source, Status};
use crate::logging::{cut_keep_start, escape_line};

/// The ring's capacity: 200 ms at 8 kHz.
pub const RING_SAMPLES: usize = 1600;
/// After running empty, a reader gives silence until this much is buffered (40 ms), so
/// that one late producer does not make every later read short.
pub const PRIME_SAMPLES: usize = 320;
/// When more than this is buffered (150 ms, the two clocks drifting apart), a reader drops
/// the oldest samples down to [`PRIME_SAMPLES`]: the delay stays bounded.
pub const HIGH_SAMPLES: usize = 1200;
/// How long opening a device may take before the caller is told it failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`status`] reuses what it found.
const STATUS_TTL: Duration = Duration::from_secs(30);
/// The longest device name kept (names come from drivers).
const MAX_NAME_CHARS: usize = 120;
/// Stream errors logged per device; later ones are counted only.
const MAX_LOGGED_ERRORS: u32 = 5;

// ---------------------------------------------------------------------------------------
// The ring between the audio callback and the media tick.

struct Shared {
    slots: Box<[AtomicI16]>,
    /// Samples ever written; only the writer stores it.
    written: AtomicU64,
}

/// The writing end of a [`ring`]: one thread writes.
pub struct RingWriter {
    shared: Arc<Shared>,
}

/// The reading end of a [`ring`]: one thread reads.
pub struct RingReader {
    shared: Arc<Shared>,
    /// Samples ever read or dropped.
    read: u64,
    /// Whether enough was buffered since the ring last ran empty.
    primed: bool,
}

/// A single-writer, single-reader ring of `capacity` samples without locks: the writer
/// never waits (it overwrites the oldest samples when the ring is full) and the reader
/// never waits (it gives zeros for what is not there). When the writer overwrites samples
/// while the reader copies them, the reader may get a few newer samples: audio is being
/// dropped at that moment anyway.
pub fn ring(capacity: usize) -> (RingWriter, RingReader) {
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        slots: (0..capacity).map(|_| AtomicI16::new(0)).collect(),
        written: AtomicU64::new(0),
    });
    (
        RingWriter {
            shared: shared.clone(),
        },
        RingReader {
            shared,
            read: 0,
            primed: false,
        },
    )
}

impl Shared {
    fn capacity(&self) -> u64 {
        self.slots.len() as u64
    }
    fn slot(&self, at: u64) -> &AtomicI16 {
        // The remainder is below the slice's length.
        &self.slots[(at % self.capacity()) as usize]
    }
}

impl RingWriter {
    /// Appends `samples`, overwriting the oldest when the ring is full.
    pub fn push(&mut self, samples: &[i16]) {
        let cap = self.shared.slots.len();
        let samples = &samples[samples.len().saturating_sub(cap)..];
        let w = self.shared.written.load(Ordering::Relaxed);
        for (i, &s) in samples.iter().enumerate() {
            self.shared.slot(w + i as u64).store(s, Ordering::Relaxed);
        }
        self.shared
            .written
            .store(w + samples.len() as u64, Ordering::Release);
    }
}

impl RingReader {
    /// Samples buffered (at most the capacity).
    pub fn len(&self) -> usize {
        let w = self.shared.written.load(Ordering::Acquire);
        (w - self.read).min(self.shared.capacity()) as usize
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to `out.len()` of the oldest samples; returns how many it took.
    pub fn pop(&mut self, out: &mut [i16]) -> usize {
        let w = self.shared.written.load(Ordering::Acquire);
        let cap = self.shared.capacity();
        if w - self.read > cap {
            self.read = w - cap; // the writer went round: its oldest samples are gone
        }
        let n = ((w - self.read) as usize).min(out.len());
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = self
                .shared
                .slot(self.read + i as u64)
                .load(Ordering::Relaxed);
        }
        self.read += n as u64;
        n
    }

    /// Fills all of `out`: buffered samples, then zeros. Gives only zeros after running
    /// empty until [`PRIME_SAMPLES`] are buffered, and drops the oldest samples down to
    /// [`PRIME_SAMPLES`] when more than [`HIGH_SAMPLES`] are. Returns how many samples
    /// came from the ring.
    pub fn read(&mut self, out: &mut [i16]) -> usize {
        let level = self.len();
        let prime = PRIME_SAMPLES.min(self.shared.slots.len());
        if level > HIGH_SAMPLES {
            self.read += (level - prime) as u64;
        }
        if !self.primed && level < prime {
            out.fill(0);
            return 0;
        }
        self.primed = true;
        let n = self.pop(out);
        if n < out.len() {
            self.primed = false;
            out[n..].fill(0);
        }
        n
    }
}

// ---------------------------------------------------------------------------------------
// Sample formats, channels and rates.

/// A device sample as a float from -1 to 1.
pub fn to_float<T: Sample>(s: T) -> f32
where
    f32: FromSample<T>,
{
    f32::from_sample(s)
}

/// A float (-1 to 1, clamped) as a device sample.
pub fn from_float<T: Sample + FromSample<f32>>(x: f32) -> T {
    T::from_sample(x.clamp(-1.0, 1.0))
}

/// A float (-1 to 1, clamped) as a 16-bit sample.
pub fn float_to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16
}

/// A 16-bit sample as a float.
pub fn i16_to_float(s: i16) -> f32 {
    f32::from(s) / f32::from(i16::MAX)
}

/// One interleaved frame of `channels` mixed down to mono (their mean).
pub fn mix_down<T: Sample>(frame: &[T]) -> f32
where
    f32: FromSample<T>,
{
    if frame.is_empty() {
        return 0.0;
    }
    frame.iter().map(|&s| to_float(s)).sum::<f32>() / frame.len() as f32
}

/// A converter of one sample rate to another that keeps its state across calls: linear
/// interpolation, behind a windowed-sinc low-pass filter when the rate goes down (so that
/// what the lower rate cannot carry does not fold back into the voice band).
pub struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// Where the next output lies between `prev` (0) and `cur` (1).
    phase: f64,
    prev: f32,
    cur: f32,
    /// The low-pass filter's taps (none when the rate goes up or stays).
    taps: Vec<f32>,
    /// The last `taps.len()` inputs, a ring from `at`.
    history: Vec<f32>,
    at: usize,
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Resampler {
        let (from, to) = (from.max(1), to.max(1));
        let taps = if from > to {
            low_pass(f64::from(from), 0.4375 * f64::from(to), from / to)
        } else {
            Vec::new()
        };
        Resampler {
            step: f64::from(from) / f64::from(to),
            phase: 0.0,
            prev: 0.0,
            cur: 0.0,
            history: vec![0.0; taps.len()],
            taps,
            at: 0,
        }
    }

    /// Takes one input sample; gives `emit` the output samples now due (none, one or more).
    pub fn push(&mut self, x: f32, mut emit: impl FnMut(f32)) {
        if self.step == 1.0 {
            emit(x);
            return;
        }
        let x = self.filter(x);
        self.prev = self.cur;
        self.cur = x;
        while self.phase < 1.0 {
            emit(self.prev + (self.cur - self.prev) * self.phase as f32);
            self.phase += self.step;
        }
        self.phase -= 1.0;
    }

    fn filter(&mut self, x: f32) -> f32 {
        let n = self.taps.len();
        if n == 0 {
            return x;
        }
        self.history[self.at] = x;
        self.at = (self.at + 1) % n;
        // history[at] is now the oldest input.
        let (old, new) = self.history.split_at(self.at);
        let mut acc = 0.0;
        for (t, h) in self.taps.iter().zip(new.iter().chain(old)) {
            acc += t * h;
        }
        acc
    }
}

/// A Hann-windowed sinc low-pass filter for `rate` Hz cutting at `cutoff` Hz, of 24 taps per
/// unit of the decimation `ratio`, normalized to unit gain.
fn low_pass(rate: f64, cutoff: f64, ratio: u32) -> Vec<f32> {
    let n = (24 * ratio.clamp(1, 32)) as usize + 1;
    let fc = cutoff / rate;
    let mid = (n - 1) as f64 / 2.0;
    let raw: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (std::f64::consts::TAU * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let window = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (n - 1) as f64).cos();
            sinc * window
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|t| (t / sum) as f32).collect()
}

/// Turns a device's interleaved input into 8 kHz mono samples.
pub struct Capture {
    channels: usize,
    resampler: Resampler,
    out: [i16; 64],
    len: usize,
}

impl Capture {
    /// For a device of `channels` at `rate` Hz.
    pub fn new(channels: u16, rate: u32) -> Capture {
        Capture {
            channels: usize::from(channels.max(1)),
            resampler: Resampler::new(rate, RATE),
            out: [0; 64],
            len: 0,
        }
    }

    /// Converts `data` and hands the 8 kHz samples to `put` (in batches).
    pub fn process<T: Sample>(&mut self, data: &[T], mut put: impl FnMut(&[i16]))
    where
        f32: FromSample<T>,
    {
        for frame in data.chunks(self.channels) {
            let (out, len) = (&mut self.out, &mut self.len);
            self.resampler.push(mix_down(frame), |y| {
                out[*len] = float_to_i16(y);
                *len += 1;
                if *len == out.len() {
                    put(&out[..]);
                    *len = 0;
                }
            });
        }
        if self.len > 0 {
            put(&self.out[..self.len]);
            self.len = 0;
        }
    }
}

/// Fills a device's interleaved output from 8 kHz mono samples.
pub struct Playback {
    channels: usize,
    resampler: Resampler,
    /// Samples at the device's rate not yet played.
    pending: VecDeque<f32>,
    inbox: [i16; 40],
    next: usize,
}

impl Playback {
    /// For a device of `channels` at `rate` Hz.
    pub fn new(channels: u16, rate: u32) -> Playback {
        Playback {
            channels: usize::from(channels.max(1)),
            resampler: Resampler::new(RATE, rate),
            // One 8 kHz sample makes at most rate / 8000 + 1 of the device's.
            pending: VecDeque::with_capacity((rate / RATE) as usize + 2),
            inbox: [0; 40],
            next: 40,
        }
    }

    /// Fills `data`, taking 8 kHz samples from `take` (which fills its slice whole, with
    /// zeros for what it lacks) as needed.
    pub fn process<T: Sample + FromSample<f32>>(
        &mut self,
        data: &mut [T],
        mut take: impl FnMut(&mut [i16]),
    ) {
        for frame in data.chunks_mut(self.channels) {
            while self.pending.is_empty() {
                if self.next == self.inbox.len() {
                    take(&mut self.inbox);
                    self.next = 0;
                }
                let x = i16_to_float(self.inbox[self.next]);
                self.next += 1;
                let pending = &mut self.pending;
                self.resampler.push(x, |y| pending.push_back(y));
            }
            let y = self.pending.pop_front().unwrap_or(0.0);
            frame.fill(from_float(y));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Choosing a device.

/// Picks `wanted` among `names`: the first exact match, else the only name that contains
/// it ignoring case. The error lists the names to choose from.
pub fn pick(names: &[String], wanted: &str, what: &str) -> Result<usize, String> {
    if let Some(i) = names.iter().position(|n| n == wanted) {
        return Ok(i);
    }
    let low = wanted.to_lowercase();
    let found: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].to_lowercase().contains(&low))
        .collect();
    let wanted = escape_line(&cut_keep_start(wanted, MAX_NAME_CHARS));
    match found.as_slice() {
        [i] => Ok(*i),
        [] if names.is_empty() => Err(format!(
            "no {what} device {wanted:?}: this machine has no {what} device"
        )),
        [] => Err(format!(
            "no {what} device {wanted:?}; the {what} devices are: {}",
            quoted(names.iter())
        )),
        many => Err(format!(
            "{what} device {wanted:?} matches several: {}; give more of the name",
            quoted(many.iter().map(|&i| &names[i]))
        )),
    }
}

fn quoted<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A device name safe to show and log: cut and with control characters escaped.
fn clean(name: &str) -> String {
    escape_line(&cut_keep_start(name.trim(), MAX_NAME_CHARS))
}

fn name_of(d: &cpal::Device) -> String {
    // Not `to_string()`: cpal's Display fails (and to_string panics) for a vanished device.
    match d.description() {
        Ok(desc) => clean(desc.name()),
        Err(_) => d.id().map(|id| clean(id.id())).unwrap_or_default(),
    }
}

/// An input or output direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// The devices of `dir`, but for ALSA's `null` plugin (it discards, or gives silence,
/// without any sound card: it is no sound device).
fn devices_of(host: &cpal::Host, dir: Direction) -> Result<Vec<cpal::Device>, String> {
    let found: Result<Vec<cpal::Device>, cpal::Error> = match dir {
        Direction::Input => host.input_devices().map(|d| d.collect()),
        Direction::Output => host.output_devices().map(|d| d.collect()),
    };
    found
        .map(|all| {
            all.into_iter()
                .filter(|d| !d.id().is_ok_and(|id| id.id() == "null"))
                .collect()
        })
        .map_err(|e| {
            format!(
                "cannot list the {} devices: {}",
                dir.word(),
                clean(&e.to_string())
            )
        })
}

/// Keeps the audio system's own messages on this thread (alsa-lib writes them to stderr)
/// for [`Quiet::last`], from its creation until the next one on the same thread.
struct Quiet {
    #[cfg(target_os = "linux")]
    buffer: Option<std::rc::Rc<std::cell::RefCell<alsa::Output>>>,
}

impl Quiet {
    fn new() -> Quiet {
        Quiet {
            #[cfg(target_os = "linux")]
            buffer: alsa::Output::local_error_handler().ok(),
        }
    }

    /// The last message kept, if any, made safe to show.
    fn last(&self) -> Option<String> {
        #[cfg(target_os = "linux")]
        {
            let text = self.buffer.as_ref()?.try_borrow().ok()?.to_string();
            text.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(clean)
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

fn default_of(host: &cpal::Host, dir: Direction) -> Option<cpal::Device> {
    match dir {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }
}

/// The device `name` (or the default) of `dir`.
fn find(host: &cpal::Host, dir: Direction, name: Option<&str>) -> Result<cpal::Device, String> {
    match name {
        None => default_of(host, dir)
            .ok_or_else(|| format!("this machine has no default {} device", dir.word())),
        Some(wanted) => {
            let mut devices = devices_of(host, dir)?;
            let names: Vec<String> = devices.iter().map(name_of).collect();
            // An exact id (ALSA's `hw:CARD=…`) also names a device.
            if let Some(i) = devices
                .iter()
                .position(|d| d.id().is_ok_and(|id| id.id() == wanted))
            {
                return Ok(devices.swap_remove(i));
            }
            let i = pick(&names, wanted, dir.word())?;
            Ok(devices.swap_remove(i))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Listing.

/// Lists the input and output devices. On ALSA this includes plugin devices (`default`,
/// `null`, `pulse`, …) that exist in its configuration without any sound card.
pub fn list() -> Devices {
    let _quiet = Quiet::new();
    let host = cpal::default_host();
    let mut out = Devices {
        host: host.id().name().to_owned(),
        ..Devices::default()
    };
    for dir in [Direction::Input, Direction::Output] {
        let default_id = default_of(&host, dir).and_then(|d| d.id().ok());
        let infos = match devices_of(&host, dir) {
            Ok(devices) => devices
                .iter()
                .map(|d| {
                    let id = d.id().ok();
                    DeviceInfo {
                        name: name_of(d),
                        id: id.as_ref().map(|i| clean(i.id())).unwrap_or_default(),
                        default: id.is_some() && id == default_id,
                    }
                })
                .collect(),
            Err(e) => {
                out.errors.push(e);
                Vec::new()
            }
        };
        match dir {
            Direction::Input => out.inputs = infos,
            Direction::Output => out.outputs = infos,
        }
    }
    out
}

/// Whether any input and output device exists, from a listing at most 30 s old (listing
/// probes the audio system, which is too slow for every `/health`).
pub fn status() -> Status {
    static LAST: Mutex<Option<(Instant, Status)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, s)) = *last
        && at.elapsed() < STATUS_TTL
    {
        return s;
    }
    let d = list();
    let s = Status {
        input: !d.inputs.is_empty(),
        output: !d.outputs.is_empty(),
    };
    *last = Some((Instant::now(), s));
    s
}

// ---------------------------------------------------------------------------------------
// Opening.

/// A microphone: 8 kHz mono from the device's thread.
struct DeviceSource {
    reader: RingReader,
    /// Dropping it tells the device's thread to stop.
    _stop: mpsc::Sender<()>,
}

impl Source for DeviceSource {
    fn read(&mut self, frame: &mut [i16]) {
        self.reader.read(frame);
    }
}

/// A speaker: 8 kHz mono to the device's thread.
struct DeviceSink {
    writer: RingWriter,
    _stop: mpsc::Sender<()>,
}

impl Sink for DeviceSink {
    fn write(&mut self, samples: &[i16]) {
        self.writer.push(samples);
    }
}

/// Opens the microphone `name` (see [`pick`]; also an exact device id), or the default one.
pub fn open_source(name: Option<&str>) -> Result<Box<dyn Source>, String> {
    let (writer, reader) = ring(RING_SAMPLES);
    let stop = spawn(Direction::Input, name, Io::Capture(writer))?;
    Ok(Box::new(DeviceSource {
        reader,
        _stop: stop,
    }))
}

/// Opens the speaker `name` (see [`pick`]; also an exact device id), or the default one.
pub fn open_sink(name: Option<&str>) -> Result<Box<dyn Sink>, String> {
    let (writer, reader) = ring(RING_SAMPLES);
    let stop = spawn(Direction::Output, name, Io::Playback(reader))?;
    Ok(Box::new(DeviceSink {
        writer,
        _stop: stop,
    }))
}

/// What a device's thread moves.
enum Io {
    Capture(RingWriter),
    Playback(RingReader),
}

/// Starts the device's thread and waits until its stream plays (or fails). The thread
/// ends when the returned sender is dropped.
fn spawn(dir: Direction, name: Option<&str>, io: Io) -> Result<mpsc::Sender<()>, String> {
    let label = match name {
        Some(n) => format!("{} device {:?}", dir.word(), clean(n)),
        None => format!("default {} device", dir.word()),
    };
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<String, String>>(1);
    let name = name.map(str::to_owned);
    std::thread::Builder::new()
        .name(format!("audio-{}", dir.word()))
        .spawn(move || {
            let quiet = Quiet::new();
            let stream = match start(dir, name.as_deref(), io) {
                Ok((stream, desc)) => {
                    let _ = ready_tx.send(Ok(desc));
                    stream
                }
                Err(e) => {
                    let e = match quiet.last() {
                        Some(why) => format!("{e} ({why})"),
                        None => e,
                    };
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            // Until the Source or Sink is dropped (its sender with it).
            let _ = stop_rx.recv();
            drop(stream);
        })
        .map_err(|e| format!("{label}: cannot start its thread: {e}"))?;
    match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(desc)) => {
            tracing::info!(device = %desc, "audio {} device open", dir.word());
            Ok(stop_tx)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "{label}: not open after {} s",
            OPEN_TIMEOUT.as_secs()
        )),
    }
}

/// Opens the device and plays its stream; returns the stream and a description of it.
fn start(dir: Direction, name: Option<&str>, io: Io) -> Result<(cpal::Stream, String), String> {
    let host = cpal::default_host();
    let device = find(&host, dir, name)?;
    let who = match name {
        Some(_) => format!("{} device {:?}", dir.word(), name_of(&device)),
        None => format!("default {} device {:?}", dir.word(), name_of(&device)),
    };
    let config = match dir {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(|e| format!("{who}: cannot open it: {}", clean(&e.to_string())))?;
    let desc = format!(
        "{} ({} Hz, {} channel(s), {})",
        name_of(&device),
        config.sample_rate(),
        config.channels(),
        config.sample_format()
    );
    let format = config.sample_format();
    let stream_config = config.config();
    let stream = match (io, format) {
        (Io::Capture(w), SampleFormat::I8) => capture::<i8>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::I16) => capture::<i16>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::I32) => capture::<i32>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::U8) => capture::<u8>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::U16) => capture::<u16>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::U32) => capture::<u32>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::F32) => capture::<f32>(&device, stream_config, w),
        (Io::Capture(w), SampleFormat::F64) => capture::<f64>(&device, stream_config, w),
        (Io::Playback(r), SampleFormat::I8) => playback::<i8>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::I16) => playback::<i16>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::I32) => playback::<i32>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::U8) => playback::<u8>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::U16) => playback::<u16>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::U32) => playback::<u32>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::F32) => playback::<f32>(&device, stream_config, r),
        (Io::Playback(r), SampleFormat::F64) => playback::<f64>(&device, stream_config, r),
        (_, other) => return Err(format!("{who}: its sample format {other} is not supported")),
    }
    .map_err(|e| format!("{who}: cannot open it: {}", clean(&e.to_string())))?;
    stream
        .play()
        .map_err(|e| format!("{who}: cannot start it: {}", clean(&e.to_string())))?;
    Ok((stream, desc))
}

/// Logs the first stream errors of a device; counts the rest.
fn on_error(dir: Direction) -> impl FnMut(cpal::Error) + Send + 'static {
    let count = AtomicU32::new(0);
    move |e| {
        let n = count.fetch_add(1, Ordering::Relaxed);
        if n < MAX_LOGGED_ERRORS {
            tracing::warn!(error = %clean(&e.to_string()), "audio {} device", dir.word());
        } else if n == MAX_LOGGED_ERRORS {
            tracing::warn!("audio {} device: more errors, not logged", dir.word());
        }
    }
}

fn capture<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut writer: RingWriter,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let mut convert = Capture::new(config.channels, config.sample_rate);
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            convert.process(data, |s| writer.push(s));
        },
        on_error(Direction::Input),
        Some(OPEN_TIMEOUT),
    )
}

fn playback<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut reader: RingReader,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let mut convert = Playback::new(config.channels, config.sample_rate);
    device.build_output_stream(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            convert.process(data, |inbox| {
                reader.read(inbox);
            });
        },
        on_error(Direction::Output),
        Some(OPEN_TIMEOUT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::sip::audio::{FRAME, tone_share_at};

    #[test]
    fn the_ring_gives_what_was_written_then_zeros() {
        let (mut w, mut r) = ring(8);
        w.push(&[1, 2, 3]);
        assert_eq!(r.len(), 3);
        let mut out = [9; 5];
        assert_eq!(r.pop(&mut out), 3);
        assert_eq!(&out[..3], &[1, 2, 3]);
        assert!(r.is_empty());
        assert_eq!(r.pop(&mut out), 0);
    }

    #[test]
    fn a_full_ring_drops_its_oldest_samples() {
        let (mut w, mut r) = ring(4);
        w.push(&[1, 2, 3]);
        w.push(&[4, 5, 6]);
        assert_eq!(r.len(), 4);
        let mut out = [0; 8];
        assert_eq!(r.pop(&mut out), 4);
        assert_eq!(&out[..4], &[3, 4, 5, 6]);
        // More than the capacity at once keeps the newest.
        w.push(&[10, 11, 12, 13, 14, 15]);
        assert_eq!(r.pop(&mut out), 4);
        assert_eq!(&out[..4], &[12, 13, 14, 15]);
    }

    #[test]
    fn reading_primes_after_running_empty_and_bounds_the_delay() {
        let (mut w, mut r) = ring(RING_SAMPLES);
        let mut frame = [7i16; FRAME];
        // Below the priming level: silence, nothing taken.
        w.push(&[5; 100]);
        assert_eq!(r.read(&mut frame), 0);
        assert!(frame.iter().all(|&s| s == 0));
        assert_eq!(r.len(), 100);
        w.push(&[5; PRIME_SAMPLES]);
        assert_eq!(r.read(&mut frame), FRAME);
        assert!(frame.iter().all(|&s| s == 5));
        // Primed: a short read gives what there is, then zeros, and primes again.
        let left = r.len();
        assert_eq!(r.read(&mut [0; 400]), left);
        w.push(&[5; 10]);
        assert_eq!(r.read(&mut frame), 0);
        // Too much buffered: the oldest go, down to the priming level.
        let (mut w, mut r) = ring(RING_SAMPLES);
        let ramp: Vec<i16> = (0..1500).collect();
        w.push(&ramp);
        assert_eq!(r.read(&mut frame), FRAME);
        assert_eq!(frame[0], 1500 - PRIME_SAMPLES as i16);
        assert_eq!(r.len(), PRIME_SAMPLES - FRAME);
    }

    #[test]
    fn the_ring_works_across_threads() {
        // What the reader sees of the writer's samples arrives whole and in order while
        // the writer stays within the ring (when it laps the reader, audio is being dropped
        // and the ring promises only that the oldest go). The writer here waits for the
        // reader, as a steady 8 kHz producer does for a reader that keeps up.
        use std::sync::atomic::AtomicUsize;
        let (mut w, mut r) = ring(RING_SAMPLES);
        let taken = Arc::new(AtomicUsize::new(0));
        let seen = taken.clone();
        let writer = std::thread::spawn(move || {
            let mut given = 0usize;
            for i in 0..2000i16 {
                let deadline = Instant::now() + Duration::from_secs(10);
                while given - seen.load(Ordering::Acquire) > RING_SAMPLES - 16 {
                    if Instant::now() > deadline {
                        return false;
                    }
                    std::thread::yield_now();
                }
                w.push(&[i; 16]);
                given += 16;
                if i % 50 == 0 {
                    std::thread::yield_now();
                }
            }
            true
        });
        let mut out = [0i16; 64];
        let mut last = 0;
        let mut count = 0usize;
        let deadline = Instant::now() + Duration::from_secs(20);
        while count < 2000 * 16 && Instant::now() < deadline {
            let n = r.pop(&mut out);
            for &s in &out[..n] {
                assert!(s >= last, "{s} after {last}");
                last = s;
            }
            count += n;
            taken.store(count, Ordering::Release);
            if n == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(
            writer.join().ok(),
            Some(true),
            "the writer was kept waiting"
        );
        assert_eq!(count, 2000 * 16, "every sample arrives once");
        assert_eq!(last, 1999);
    }

    #[test]
    fn sample_formats_convert() {
        assert_eq!(to_float(0i16), 0.0);
        assert!((to_float(i16::MAX) - 1.0).abs() < 1e-4);
        assert_eq!(to_float(i16::MIN), -1.0);
        assert_eq!(to_float(0.5f32), 0.5);
        assert_eq!(to_float(32768u16), 0.0);
        assert_eq!(to_float(0u16), -1.0);
        assert_eq!(from_float::<i16>(0.5), 16384);
        assert_eq!(from_float::<f32>(2.0), 1.0);
        assert_eq!(from_float::<u16>(0.0), 32768);
        assert_eq!(from_float::<u16>(-1.0), 0);
        assert_eq!(float_to_i16(1.5), i16::MAX);
        assert_eq!(float_to_i16(-0.5), -16384);
        assert!((i16_to_float(float_to_i16(0.25)) - 0.25).abs() < 1e-4);
    }

    #[test]
    fn channels_mix_down_and_duplicate() {
        assert_eq!(mix_down(&[0.5f32, -0.5]), 0.0);
        assert_eq!(mix_down(&[0.5f32, 0.5, 0.5, 0.5]), 0.5);
        assert_eq!(mix_down::<f32>(&[]), 0.0);
        // Stereo 8 kHz in: left and right averaged.
        let mut c = Capture::new(2, RATE);
        let mut got = Vec::new();
        c.process(&[16384i16, 0, 16384, 0, -16384, -16384], |s| {
            got.extend_from_slice(s)
        });
        assert_eq!(got, vec![8192, 8192, -16384]);
        // 8 kHz out to stereo: each sample on both channels.
        let mut p = Playback::new(2, RATE);
        let mut data = [0.0f32; 6];
        let mut fed = false;
        p.process(&mut data, |inbox| {
            inbox.fill(0);
            if !fed {
                inbox[..4].copy_from_slice(&[0, 16384, -16384, 0]);
                fed = true;
            }
        });
        let expect = [0.0, 0.0, 0.5, 0.5, -0.5, -0.5];
        for (d, e) in data.iter().zip(expect) {
            assert!((d - e).abs() < 1e-3, "{data:?}");
        }
    }

    fn tone(hz: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    fn to_i16(x: &[f32]) -> Vec<i16> {
        x.iter().map(|&y| float_to_i16(y)).collect()
    }

    #[test]
    fn a_tone_keeps_its_frequency_through_48k_8k_48k() {
        let input = tone(1000.0, 48000, 48000);
        // Fed in uneven pieces, as callbacks come: the state carries across them.
        let mut down = Resampler::new(48000, 8000);
        let mut at8 = Vec::new();
        for piece in input.chunks(441) {
            for &x in piece {
                down.push(x, |y| at8.push(y));
            }
        }
        assert!((at8.len() as i64 - 8000).abs() <= 1, "{}", at8.len());
        let at8 = to_i16(&at8[400..]);
        assert!(tone_share_at(&at8, 1000.0, 8000) > 0.95);
        assert!(tone_share_at(&at8, 1200.0, 8000) < 0.05);
        let mut up = Resampler::new(8000, 48000);
        let mut at48 = Vec::new();
        for &s in &at8 {
            up.push(i16_to_float(s), |y| at48.push(y));
        }
        assert!((at48.len() as i64 - 6 * at8.len() as i64).abs() <= 6);
        let at48 = to_i16(&at48);
        let peak = (800..=1200)
            .step_by(10)
            .max_by(|&a, &b| {
                tone_share_at(&at48, f64::from(a), 48000).total_cmp(&tone_share_at(
                    &at48,
                    f64::from(b),
                    48000,
                ))
            })
            .unwrap_or(0);
        assert_eq!(peak, 1000);
        assert!(tone_share_at(&at48, 1000.0, 48000) > 0.9);
    }

    #[test]
    fn downsampling_keeps_what_lies_above_the_new_band_out() {
        // 6 kHz at 48 kHz would fold back to 2 kHz at 8 kHz without the filter.
        let mut down = Resampler::new(48000, 8000);
        let mut out = Vec::new();
        for x in tone(6000.0, 48000, 48000) {
            down.push(x, |y| out.push(y));
        }
        let peak = out[400..].iter().fold(0.0f32, |m, y| m.max(y.abs()));
        assert!(peak < 0.01, "{peak}");
        // A 44.1 kHz device works too.
        let mut down = Resampler::new(44100, 8000);
        let mut out = Vec::new();
        for x in tone(1000.0, 44100, 44100) {
            down.push(x, |y| out.push(y));
        }
        assert!((out.len() as i64 - 8000).abs() <= 1);
        assert!(tone_share_at(&to_i16(&out[400..]), 1000.0, 8000) > 0.95);
    }

    #[test]
    fn names_match_exactly_or_by_a_unique_part() {
        let names: Vec<String> = [
            "default",
            "USB Headset, USB Audio",
            "HDA Intel PCH, ALC3246",
            "USB Headset, USB Audio #2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(pick(&names, "default", "input"), Ok(0));
        assert_eq!(pick(&names, "USB Headset, USB Audio", "input"), Ok(1));
        assert_eq!(pick(&names, "hda intel", "input"), Ok(2));
        assert_eq!(pick(&names, "#2", "input"), Ok(3));
        let several = pick(&names, "usb headset", "input").unwrap_err();
        assert!(several.contains("matches several"), "{several}");
        assert!(
            several.contains("\"USB Headset, USB Audio #2\""),
            "{several}"
        );
        let none = pick(&names, "Jabra", "output").unwrap_err();
        assert!(none.contains("no output device \"Jabra\""), "{none}");
        assert!(none.contains("\"HDA Intel PCH, ALC3246\""), "{none}");
        let empty = pick(&[], "Jabra", "input").unwrap_err();
        assert!(empty.contains("no input device"), "{empty}");
        // What the user typed is escaped in the message.
        let evil = pick(&names, "x\u{1b}[2J", "input").unwrap_err();
        assert!(!evil.contains('\u{1b}'), "{evil}");
    }

    /// What this machine's audio system reports, whatever it is: a workstation lists its
    /// devices and opens them; a machine without a sound card (CI) may still list ALSA's
    /// plugin devices (`default`, `null`) but opening one either works or says why — never
    /// a panic, never a wait beyond the open timeout.
    #[test]
    fn devices_open_or_say_why() {
        let d = list();
        eprintln!("host {}: {d:#?}", d.host);
        for info in d.inputs.iter().chain(&d.outputs) {
            assert!(!info.name.is_empty() || !info.id.is_empty(), "{info:?}");
        }
        let s = status();
        assert_eq!(s.input, !d.inputs.is_empty());
        assert_eq!(s.output, !d.outputs.is_empty());
        for name in [None, Some("no such device, surely")] {
            match open_source(name) {
                Ok(mut src) => {
                    assert!(name.is_none(), "{name:?} opened");
                    let mut frame = [0i16; FRAME];
                    src.read(&mut frame);
                }
                Err(e) => {
                    eprintln!("source {name:?}: {e}");
                    assert!(e.contains("input device"), "{e}");
                }
            }
            match open_sink(name) {
                Ok(mut sink) => {
                    assert!(name.is_none(), "{name:?} opened");
                    sink.write(&[0i16; FRAME]);
                }
                Err(e) => {
                    eprintln!("sink {name:?}: {e}");
                    assert!(e.contains("output device"), "{e}");
                }
            }
        }
    }
}
