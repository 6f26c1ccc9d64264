//! Where a call's audio comes from and goes to, at 8 kHz, 16-bit, mono: the workstation's
//! devices ([`device`]), or, for headless use and tests, a tone, a WAV file, silence, and
//! a WAV recording or nothing. Each call opens its own source and sink from the settings'
//! [`SourceSpec`] and [`SinkSpec`].

#[cfg(feature = "audio-devices")]
pub mod device;
/// Without the `audio-devices` feature: no device opens, none is listed.
#[cfg(not(feature = "audio-devices"))]
#[path = "no_device.rs"]
pub mod device;
mod wav;

use std::path::{Path, PathBuf};

pub use wav::{WavReader, WavWriter};

/// Samples per second on the phone's side of every source and sink.
pub const RATE: u32 = 8000;
/// Samples in one 20 ms frame.
pub const FRAME: usize = 160;

/// One sound device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its name (what `device:NAME` matches).
    pub name: String,
    /// The driver's id of it (ALSA's PCM name, on Windows an endpoint id).
    pub id: String,
    /// Whether it is the system's default for its direction.
    pub default: bool,
}

/// The sound devices [`device::list`] sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    /// The audio system (ALSA, WASAPI).
    pub host: String,
    /// Microphones.
    pub inputs: Vec<DeviceInfo>,
    /// Speakers.
    pub outputs: Vec<DeviceInfo>,
    /// What went wrong while listing, if anything.
    pub errors: Vec<String>,
}

/// Whether any input and any output device exists ([`device::status`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// A microphone exists.
    pub input: bool,
    /// A speaker exists.
    pub output: bool,
}

/// Gives a call's outgoing audio.
pub trait Source: Send {
    /// Fills the whole frame.
    fn read(&mut self, frame: &mut [i16]);
}

/// Takes a call's incoming audio.
pub trait Sink: Send {
    /// Plays or stores samples.
    fn write(&mut self, samples: &[i16]);
}

/// Where outgoing audio comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A microphone: the system's default (`None`) or one chosen by name.
    Device(Option<String>),
    /// A sine tone of this many hertz, at -10 dBFS.
    Tone(u32),
    /// A WAV file, played in a loop (16-bit PCM; other rates and channel counts are
    /// converted when it is opened).
    Wav(PathBuf),
    /// Silence.
    Silence,
}

/// Where incoming audio goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// A speaker: the system's default (`None`) or one chosen by name.
    Device(Option<String>),
    /// A WAV recording of each call; `{call}` in the path becomes the call's id (without
    /// it, each call overwrites the file). Bounded by [`MAX_RECORDING_SECS`].
    Wav(PathBuf),
    /// Nowhere.
    Discard,
}

/// The longest recording a WAV sink writes; later audio is discarded.
pub const MAX_RECORDING_SECS: u32 = 3600;

impl SourceSpec {
    /// Parses `device`, `device:NAME`, `tone:HZ`, `wav:PATH` or `silence`.
    pub fn parse(s: &str) -> Result<SourceSpec, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "device" => Ok(SourceSpec::Device(name(arg))),
            "tone" => match arg.parse::<u32>() {
                Ok(hz) if (1..=3999).contains(&hz) => Ok(SourceSpec::Tone(hz)),
                _ => Err(format!(
                    "tone:{arg}: the tone's frequency must be 1 to 3999 Hz"
                )),
            },
            "wav" if !arg.is_empty() => Ok(SourceSpec::Wav(PathBuf::from(arg))),
            "silence" if arg.is_empty() => Ok(SourceSpec::Silence),
            _ => Err("allowed: device, device:NAME, tone:HZ, wav:PATH, silence".to_owned()),
        }
    }

    /// Opens the source for one call. A device that cannot be opened gives silence and a
    /// warning (the call still connects).
    pub fn open(&self) -> Result<Box<dyn Source>, String> {
        match self {
            SourceSpec::Device(name) => device::open_source(name.as_deref()),
            SourceSpec::Tone(hz) => Ok(Box::new(Tone::new(*hz, 0.316))),
            SourceSpec::Wav(path) => Ok(Box::new(WavReader::open(path)?)),
            SourceSpec::Silence => Ok(Box::new(Silence)),
        }
    }
}

impl SinkSpec {
    /// Parses `device`, `device:NAME`, `wav:PATH` or `discard`.
    pub fn parse(s: &str) -> Result<SinkSpec, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "device" => Ok(SinkSpec::Device(name(arg))),
            "wav" if !arg.is_empty() => Ok(SinkSpec::Wav(PathBuf::from(arg))),
            "discard" if arg.is_empty() => Ok(SinkSpec::Discard),
            _ => Err("allowed: device, device:NAME, wav:PATH, discard".to_owned()),
        }
    }

    /// Opens the sink for the call `call` (an id safe in a file name).
    pub fn open(&self, call: &str) -> Result<Box<dyn Sink>, String> {
        match self {
            SinkSpec::Device(name) => device::open_sink(name.as_deref()),
            SinkSpec::Wav(path) => Ok(Box::new(WavWriter::create(
                &recording_path(path, call),
                MAX_RECORDING_SECS,
            )?)),
            SinkSpec::Discard => Ok(Box::new(Discard)),
        }
    }
}

fn name(arg: &str) -> Option<String> {
    (!arg.is_empty()).then(|| arg.to_owned())
}

/// The recording's path for a call: `{call}` replaced by the id's safe characters.
pub fn recording_path(path: &Path, call: &str) -> PathBuf {
    let text = path.to_string_lossy();
    if !text.contains("{call}") {
        return path.to_path_buf();
    }
    let safe: String = call
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    PathBuf::from(text.replace("{call}", &safe))
}

/// A sine tone.
pub struct Tone {
    phase: f64,
    step: f64,
    amplitude: f64,
}

impl Tone {
    /// A tone of `hz` at `amplitude` (of full scale, 0 to 1).
    pub fn new(hz: u32, amplitude: f64) -> Tone {
        Tone {
            phase: 0.0,
            step: std::f64::consts::TAU * f64::from(hz) / f64::from(RATE),
            amplitude: amplitude.clamp(0.0, 1.0) * f64::from(i16::MAX),
        }
    }
}

impl Source for Tone {
    fn read(&mut self, frame: &mut [i16]) {
        for s in frame.iter_mut() {
            *s = (self.phase.sin() * self.amplitude) as i16;
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
    }
}

/// No sound.
pub struct Silence;

impl Source for Silence {
    fn read(&mut self, frame: &mut [i16]) {
        frame.fill(0);
    }
}

/// Throws audio away.
pub struct Discard;

impl Sink for Discard {
    fn write(&mut self, _: &[i16]) {}
}

/// The strength of `hz` in `samples` (Goertzel), relative to the signal's power: near 1
/// when the signal is a pure tone of `hz`.
pub fn tone_share(samples: &[i16], hz: f64) -> f64 {
    tone_share_at(samples, hz, RATE)
}

/// [`tone_share`] for samples at `rate` Hz.
pub fn tone_share_at(samples: &[i16], hz: f64, rate: u32) -> f64 {
    if samples.is_empty() || rate == 0 {
        return 0.0;
    }
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0;
    for &x in samples {
        let x = f64::from(x);
        energy += x * x;
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if energy == 0.0 {
        return 0.0;
    }
    // A pure tone's Goertzel power is energy * N / 2.
    (2.0 * power / (energy * samples.len() as f64)).min(1.0)
}

/// The frequency (in `step` Hz steps from `low` to `high`) with the most energy.
pub fn peak_frequency(samples: &[i16], low: f64, high: f64, step: f64) -> f64 {
    let mut best = (low, 0.0);
    let mut f = low;
    while f <= high {
        let share = tone_share(samples, f);
        if share > best.1 {
            best = (f, share);
        }
        f += step;
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(SourceSpec::parse("device"), Ok(SourceSpec::Device(None)));
        assert_eq!(
            SourceSpec::parse("device:USB Headset"),
            Ok(SourceSpec::Device(Some("USB Headset".into())))
        );
        assert_eq!(SourceSpec::parse("tone:1000"), Ok(SourceSpec::Tone(1000)));
        assert_eq!(SourceSpec::parse("silence"), Ok(SourceSpec::Silence));
        assert_eq!(
            SourceSpec::parse("wav:C:\\a.wav"),
            Ok(SourceSpec::Wav("C:\\a.wav".into()))
        );
        for bad in [
            "",
            "tone",
            "tone:0",
            "tone:4000",
            "tone:x",
            "wav:",
            "mic",
            "silence:1",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(SinkSpec::parse("discard"), Ok(SinkSpec::Discard));
        assert_eq!(
            SinkSpec::parse("wav:/tmp/x.wav"),
            Ok(SinkSpec::Wav("/tmp/x.wav".into()))
        );
        assert!(SinkSpec::parse("tone:1").is_err());
    }

    #[test]
    fn recording_paths_take_only_safe_characters_of_the_id() {
        assert_eq!(
            recording_path(Path::new("/r/{call}.wav"), "ab-12/../x"),
            PathBuf::from("/r/ab-12x.wav")
        );
        assert_eq!(
            recording_path(Path::new("/r/a.wav"), "id"),
            PathBuf::from("/r/a.wav")
        );
    }

    #[test]
    fn a_tone_is_found_at_its_frequency() {
        let mut t = Tone::new(1000, 0.3);
        let mut samples = vec![0i16; 8000];
        t.read(&mut samples);
        assert!(tone_share(&samples, 1000.0) > 0.95);
        assert!(tone_share(&samples, 1100.0) < 0.05);
        assert_eq!(peak_frequency(&samples, 300.0, 3400.0, 10.0), 1000.0);
        assert_eq!(tone_share(&[0; 100], 1000.0), 0.0);
    }
}
