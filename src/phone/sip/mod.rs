//! The `sip` backend: bapiws's own SIP phone (signalling, RTP media, audio).
//!
//! - [`sdp`]: session descriptions and offer/answer.
//! - [`media`]: RTP streams with G.711, the jitter buffer and DTMF.
//! - [`audio`]: sources and sinks (devices, tone, WAV, silence).

pub mod audio;
pub mod media;
pub mod sdp;
pub mod settings;
