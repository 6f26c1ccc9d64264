//! The device layer of a build without the `audio-devices` feature (no ALSA headers to
//! build against): no device is listed and none opens, so the phone's calls send silence
//! and play to nowhere unless a tone, WAV or silence source is set.

use super::{Devices, Sink, Source, Status};

/// Why no device opens.
const WHY: &str = "this bapiws was built without sound device support (the audio-devices feature)";

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
