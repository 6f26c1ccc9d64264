//! The device layer of a build without the `audio-devices` feature (no ALSA headers to
//! build against): no device is listed and none opens, so the phone's calls send silence
//! and play to nowhere unless a tone, WAV or silence source is set.

use super::{Sink, Source};

/// Why no device opens.
const WHY: &str = "this bapiws was built without sound device support (the audio-devices feature)";

/// One device (none in this build).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its name.
    pub name: String,
    /// The driver's id of it.
    pub id: String,
    /// Whether it is the system's default for its direction.
    pub default: bool,
}

/// The devices seen: none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    /// The audio system.
    pub host: String,
    /// Microphones.
    pub inputs: Vec<DeviceInfo>,
    /// Speakers.
    pub outputs: Vec<DeviceInfo>,
    /// What went wrong while listing.
    pub errors: Vec<String>,
}

/// Whether any input and output device exists: never, in this build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// A microphone exists.
    pub input: bool,
    /// A speaker exists.
    pub output: bool,
}

/// No devices, and why.
pub fn list() -> Devices {
    Devices {
        host: "no sound devices in this build".to_owned(),
        errors: vec![WHY.to_owned()],
        ..Devices::default()
    }
}

/// No devices.
pub fn status() -> Status {
    Status::default()
}

/// Always an error.
pub fn open_source(name: Option<&str>) -> Result<Box<dyn Source>, String> {
    let _ = name;
    Err(WHY.to_owned())
}

/// Always an error.
pub fn open_sink(name: Option<&str>) -> Result<Box<dyn Sink>, String> {
    let _ = name;
    Err(WHY.to_owned())
}
