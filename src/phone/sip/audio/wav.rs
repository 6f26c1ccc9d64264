//! WAV files: a reader that loads a 16-bit PCM file (up to [`MAX_FILE`] bytes), converts it
//! to 8 kHz mono and plays it in a loop, and a writer that records 8 kHz mono 16-bit PCM,
//! bounded in length, its header kept valid as it goes.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::{RATE, Sink, Source};

/// The largest WAV file read.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// Plays a WAV file's samples in a loop.
pub struct WavReader {
    samples: Vec<i16>,
    at: usize,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

impl WavReader {
    /// Opens and converts a file.
    pub fn open(path: &Path) -> Result<WavReader, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .len();
        if size > MAX_FILE {
            return Err(format!("{shown} is larger than {} MiB", MAX_FILE >> 20));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let samples = Self::decode(&bytes).map_err(|e| format!("{shown}: {e}"))?;
        Ok(WavReader { samples, at: 0 })
    }

    /// Decodes a WAV file's bytes to 8 kHz mono samples.
    pub fn decode(bytes: &[u8]) -> Result<Vec<i16>, &'static str> {
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err("not a WAV file");
        }
        let mut at = 12;
        let mut format: Option<(u16, u16, u32, u16)> = None;
        while let (Some(id), Some(len)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
            let body = at + 8;
            let len = len as usize;
            let end = body.saturating_add(len).min(bytes.len());
            match id {
                b"fmt " => {
                    let tag = u16_at(bytes, body).ok_or("short fmt chunk")?;
                    let channels = u16_at(bytes, body + 2).ok_or("short fmt chunk")?;
                    let rate = u32_at(bytes, body + 4).ok_or("short fmt chunk")?;
                    let bits = u16_at(bytes, body + 14).ok_or("short fmt chunk")?;
                    format = Some((tag, channels, rate, bits));
                }
                b"data" => {
                    let (tag, channels, rate, bits) = format.ok_or("data before fmt")?;
                    // 1: PCM; 0xFFFE: extensible (taken as PCM when 16-bit).
                    if !(tag == 1 || tag == 0xFFFE) || bits != 16 {
                        return Err("only 16-bit PCM WAV files are supported");
                    }
                    if channels == 0 || !(1000..=192_000).contains(&rate) {
                        return Err("unsupported channel count or sample rate");
                    }
                    return Ok(to_8k_mono(&bytes[body..end], channels, rate));
                }
                _ => {}
            }
            at = body.saturating_add(len + (len & 1));
        }
        Err("no data chunk")
    }
}

/// Mixes interleaved 16-bit samples down to mono and resamples them to 8 kHz (linear).
fn to_8k_mono(data: &[u8], channels: u16, rate: u32) -> Vec<i16> {
    let channels = usize::from(channels);
    let mono: Vec<f64> = data
        .chunks_exact(2 * channels)
        .map(|f| {
            f.chunks_exact(2)
                .map(|s| f64::from(i16::from_le_bytes([s[0], s[1]])))
                .sum::<f64>()
                / channels as f64
        })
        .collect();
    if rate == RATE {
        return mono.iter().map(|&s| s as i16).collect();
    }
    let ratio = f64::from(rate) / f64::from(RATE);
    let n = (mono.len() as f64 / ratio) as usize;
    (0..n)
        .map(|i| {
            let x = i as f64 * ratio;
            let j = x as usize;
            let frac = x - j as f64;
            let a = mono.get(j).copied().unwrap_or(0.0);
            let b = mono.get(j + 1).copied().unwrap_or(a);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

impl Source for WavReader {
    fn read(&mut self, frame: &mut [i16]) {
        if self.samples.is_empty() {
            frame.fill(0);
            return;
        }
        for s in frame.iter_mut() {
            *s = self.samples[self.at];
            self.at = (self.at + 1) % self.samples.len();
        }
    }
}

/// Records 8 kHz mono 16-bit PCM.
pub struct WavWriter {
    file: File,
    written: u32,
    limit: u32,
    failed: bool,
    since_header: u32,
}

fn header(data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

impl WavWriter {
    /// Creates (or replaces) a recording of at most `max_secs` seconds.
    pub fn create(path: &Path, max_secs: u32) -> Result<WavWriter, String> {
        let mut file =
            File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(&header(0))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(WavWriter {
            file,
            written: 0,
            limit: max_secs.saturating_mul(RATE * 2),
            failed: false,
            since_header: 0,
        })
    }

    fn update_header(&mut self) {
        let ok = self.file.seek(SeekFrom::Start(0)).is_ok()
            && self.file.write_all(&header(self.written)).is_ok()
            && self.file.seek(SeekFrom::End(0)).is_ok();
        if !ok {
            self.failed = true;
        }
    }
}

impl Sink for WavWriter {
    fn write(&mut self, samples: &[i16]) {
        if self.failed || self.written >= self.limit {
            return;
        }
        let room = ((self.limit - self.written) / 2) as usize;
        let bytes: Vec<u8> = samples
            .iter()
            .take(room)
            .flat_map(|s| s.to_le_bytes())
            .collect();
        if self.file.write_all(&bytes).is_err() {
            self.failed = true;
            return;
        }
        self.written += bytes.len() as u32;
        self.since_header += bytes.len() as u32;
        // Keep the header right about once a second, so a reader mid-call sees the audio.
        if self.since_header >= RATE * 2 {
            self.since_header = 0;
            self.update_header();
        }
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        if !self.failed {
            self.update_header();
            let _ = self.file.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        b.extend_from_slice(&(2 * channels).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&[1, 2, 3, 0]); // an odd chunk with its pad byte
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn reads_mono_8k_and_converts_stereo_16k() {
        assert_eq!(
            WavReader::decode(&wav(1, 8000, &[1, 2, 3])),
            Ok(vec![1, 2, 3])
        );
        let stereo = wav(2, 16000, &[10, 30, 10, 30, 20, 40, 20, 40]);
        assert_eq!(WavReader::decode(&stereo), Ok(vec![20, 30]));
    }

    #[test]
    fn refuses_what_it_cannot_play() {
        for bad in [&b"RIFF"[..], b"", b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff"] {
            assert!(WavReader::decode(bad).is_err());
        }
        let mut eight_bit = wav(1, 8000, &[0]);
        eight_bit[34] = 8;
        assert!(WavReader::decode(&eight_bit).is_err());
        let mut no_channels = wav(1, 8000, &[0]);
        no_channels[22] = 0;
        assert!(WavReader::decode(&no_channels).is_err());
        // A data length beyond the file reads what is there.
        let mut long = wav(1, 8000, &[5, 6]);
        let n = long.len();
        long[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(WavReader::decode(&long), Ok(vec![5, 6]));
    }

    #[test]
    fn a_recording_reads_back_and_stops_at_its_limit() {
        let dir = std::env::temp_dir().join(format!("bapiws-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.wav");
        {
            let mut w = WavWriter::create(&path, 1).expect("create");
            for _ in 0..100 {
                w.write(&[7; 160]);
            }
        }
        let back = WavReader::open(&path).expect("open");
        assert_eq!(back.samples.len(), 8000);
        assert!(back.samples.iter().all(|&s| s == 7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_reader_loops() {
        let mut r = WavReader {
            samples: vec![1, 2, 3],
            at: 0,
        };
        let mut f = [0i16; 7];
        r.read(&mut f);
        assert_eq!(f, [1, 2, 3, 1, 2, 3, 1]);
    }
}
