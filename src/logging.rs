//! Logging: to stderr at the configured level, and to a daily file
//! `BAPIWS_yyyymmdd.log` (info and above) in the configured folder.
//!
//! When the file cannot be written (read-only folder, disk full) the server keeps
//! serving and says so on stderr, at most once a minute.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{Local, NaiveDate};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::prelude::*;

/// How often a failing log file is reported on stderr.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// The log file's name for a day.
pub fn file_name(day: NaiveDate) -> String {
    format!("BAPIWS_{}.log", day.format("%Y%m%d"))
}

/// Today's log file path in `dir`.
pub fn today_path(dir: &Path) -> PathBuf {
    dir.join(file_name(Local::now().date_naive()))
}

struct DayFile {
    day: Option<NaiveDate>,
    file: Option<File>,
    last_report: Option<Instant>,
}

/// A writer that appends to the day's file, opening a new one when the day changes.
#[derive(Clone)]
pub struct DailyFile {
    dir: PathBuf,
    state: Arc<Mutex<DayFile>>,
}

impl DailyFile {
    /// A daily file in `dir`, opened on first write.
    pub fn new(dir: PathBuf) -> Self {
        DailyFile {
            dir,
            state: Arc::new(Mutex::new(DayFile {
                day: None,
                file: None,
                last_report: None,
            })),
        }
    }

    fn write_line(&self, buf: &[u8]) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let today = Local::now().date_naive();
        if s.day != Some(today) {
            s.day = Some(today);
            s.file = None;
        }
        let path = self.dir.join(file_name(today));
        if s.file.is_none() {
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => s.file = Some(f),
                Err(e) => return report(&mut s, &path, &e),
            }
        }
        let result = match s.file.as_mut() {
            Some(f) => f.write_all(buf),
            None => Ok(()),
        };
        if let Err(e) = result {
            // Try to reopen next time (the disk may have room again).
            s.file = None;
            report(&mut s, &path, &e);
        }
    }
}

fn report(s: &mut DayFile, path: &Path, e: &io::Error) {
    let due = s.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
    if due {
        s.last_report = Some(Instant::now());
        eprintln!(
            "bapiws: cannot write the log file {}: {e}; still serving, logging to stderr only",
            path.display()
        );
    }
}

/// The writer handed to the formatter for one event.
pub struct DailyWriter(DailyFile);

impl Write for DailyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for DailyFile {
    type Writer = DailyWriter;
    fn make_writer(&'a self) -> Self::Writer {
        DailyWriter(self.clone())
    }
}

/// Local time with milliseconds.
struct LocalTime;

impl FormatTime for LocalTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", Local::now().format("%Y-%m-%d %H:%M:%S%.3f"))
    }
}

/// Installs the global logger. Returns today's log file path.
pub fn init(level: LevelFilter, dir: &Path) -> PathBuf {
    let file_level = level.max(LevelFilter::INFO);
    let stderr = tracing_subscriber::fmt::layer()
        .with_timer(LocalTime)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .with_filter(level);
    let file = tracing_subscriber::fmt::layer()
        .with_timer(LocalTime)
        .with_target(false)
        .with_ansi(false)
        .with_writer(DailyFile::new(dir.to_owned()))
        .with_filter(file_level);
    // A second init (tests) is harmless: the first logger stays.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
    today_path(dir)
}
