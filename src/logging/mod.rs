//! Logging: to stderr at the configured level, and to a daily file `BAPIWS_yyyymmdd.log`
//! (info and above, or more at `debug` and `trace`) in the log folder.
//!
//! Every client-controlled thing that reaches a log is hostile, and logging must never
//! hold up the server:
//!
//! - **Never blocking.** A log statement formats its line and puts it in a bounded queue
//!   per destination; a thread of its own writes each queue. When a queue is
//!   full (a stderr pipe nobody reads, a terminal stopped with Ctrl-S, a slow disk) lines
//!   are dropped and counted, and the writer says "N log lines dropped" when it can.
//! - **Rate limits**: per connection (the `conn` field), per log statement and
//!   overall; what is over a limit is summed up every 10 s as "N similar lines
//!   suppressed".
//! - **Bounded, escaped lines**: every field is cut (origins and host names
//!   keeping their end, [`cut_keep_end`]), and every finished line has its control
//!   characters, line separators and bidirectional controls escaped
//!   ([`escape_line`]), so no line can forge another or hide what it says.
//! - **The file**: in a private per-user folder by default ([`default_dir`]),
//!   opened without following links or blocking on a FIFO, only when it is a regular file
//!   of this user that no one else may read or write; at most
//!   [`Settings::max_bytes_per_day`] a day ("log full until midnight"), and files older
//!   than [`Settings::keep_days`] deleted at start and at each day change.
//!
//! When the file cannot be written, the server keeps serving and says so on stderr, at
//! most once a minute.

mod file;
mod format;
mod limit;
mod sink;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{Local, NaiveDate};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

pub use file::{day_of, file_name};
pub use format::{
    MAX_FIELD_CHARS, MAX_LINE_BYTES, cut_keep_end, cut_keep_start, escape_line, must_escape,
};
pub use limit::{ALL_CONNECTIONS, ALL_SERVER, PER_CONNECTION, PER_SITE, Rate, SUMMARY_EVERY};
pub use sink::{MAX_QUEUED_BYTES, MAX_QUEUED_LINES};

use limit::{Limiter, Verdict};
use sink::Queue;

/// The default of [`Settings::max_bytes_per_day`]: 50 MB.
pub const DEFAULT_MAX_BYTES_PER_DAY: u64 = 50_000_000;
/// The smallest allowed [`Settings::max_bytes_per_day`].
pub const MIN_MAX_BYTES_PER_DAY: u64 = 16 * 1024;
/// The largest allowed [`Settings::max_bytes_per_day`] (1 TiB: no limit in practice).
pub const MAX_MAX_BYTES_PER_DAY: u64 = 1 << 40;
/// The default of [`Settings::keep_days`].
pub const DEFAULT_KEEP_DAYS: u32 = 7;
/// The largest allowed [`Settings::keep_days`].
pub const MAX_KEEP_DAYS: u32 = 3650;
/// How long [`Logging`] waits at exit for its lines to be written.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);
/// How often suppressed lines are looked for.
const TICK: Duration = Duration::from_secs(1);

/// What [`init`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Level of messages on stderr; the file records this or `info`, whichever is more.
    pub level: LevelFilter,
    /// Folder of the daily file.
    pub dir: PathBuf,
    /// Most bytes written to one day's file; then one "log full until midnight" line and
    /// nothing more that day. [`MIN_MAX_BYTES_PER_DAY`] to [`MAX_MAX_BYTES_PER_DAY`].
    pub max_bytes_per_day: u64,
    /// Days of files kept, today included; older `BAPIWS_yyyymmdd.log` files in the folder
    /// are deleted at start and at each day change. `0` keeps every file. At most
    /// [`MAX_KEEP_DAYS`].
    pub keep_days: u32,
}

impl Settings {
    /// `level` and `dir` with the defaults for the rest.
    pub fn new(level: LevelFilter, dir: PathBuf) -> Settings {
        Settings {
            level,
            dir,
            max_bytes_per_day: DEFAULT_MAX_BYTES_PER_DAY,
            keep_days: DEFAULT_KEEP_DAYS,
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::new(LevelFilter::INFO, default_dir())
    }
}

/// The default log folder, private to the user: `$XDG_STATE_HOME/bapiws` (by default
/// `~/.local/state/bapiws`) on Linux and other Unix systems, `~/Library/Logs/bapiws` on
/// macOS, the user's temporary folder (`%TEMP%`) on Windows. Without a home folder,
/// `bapiws-UID` in the temporary folder. bapiws creates it readable by the user only.
pub fn default_dir() -> PathBuf {
    platform_default_dir()
}

#[cfg(windows)]
fn platform_default_dir() -> PathBuf {
    std::env::temp_dir()
}

#[cfg(target_os = "macos")]
fn platform_default_dir() -> PathBuf {
    match directories::BaseDirs::new() {
        Some(b) => b.home_dir().join("Library/Logs/bapiws"),
        None => std::env::temp_dir().join(format!("bapiws-{}", crate::platform::user_tag())),
    }
}

#[cfg(not(any(windows, target_os = "macos")))]
fn platform_default_dir() -> PathBuf {
    match directories::ProjectDirs::from("", "", "bapiws") {
        Some(d) => match d.state_dir() {
            Some(s) => s.to_owned(),
            None => d.data_local_dir().join("logs"),
        },
        None => std::env::temp_dir().join(format!("bapiws-{}", crate::platform::user_tag())),
    }
}

/// Today's log file path in `dir`.
pub fn today_path(dir: &Path) -> PathBuf {
    dir.join(file_name(today()))
}

fn today() -> NaiveDate {
    Local::now().date_naive()
}

/// What the layer and the threads share.
struct Shared {
    stderr: Arc<Queue>,
    file: Arc<Queue>,
    stderr_level: LevelFilter,
    file_level: LevelFilter,
    limiter: Mutex<Limiter>,
}

impl Shared {
    fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a line for each destination that takes `level`.
    fn send(&self, level: Level, line: String) {
        let to_stderr = level <= self.stderr_level;
        let to_file = level <= self.file_level;
        match (to_stderr, to_file) {
            (true, true) => {
                self.stderr.push(line.clone());
                self.file.push(line);
            }
            (true, false) => {
                self.stderr.push(line);
            }
            (false, true) => {
                self.file.push(line);
            }
            (false, false) => {}
        }
    }

    /// Writes the summaries of suppressed lines that are due.
    fn summarize(&self, force: bool) {
        let summaries = self.limiter().tick(Instant::now(), force);
        for s in summaries {
            let count = s.count.to_string();
            let connections = if s.connections >= limit::MAX_CONNECTIONS_COUNTED {
                format!("{} or more", s.connections)
            } else {
                s.connections.to_string()
            };
            let conn = s.conn.map(|c| c.to_string());
            let mut fields: Vec<(&str, &str)> = vec![("lines", &s.message)];
            match &conn {
                Some(c) => fields.push(("conn", c)),
                None if s.connections > 0 => fields.push(("connections", &connections)),
                None => {}
            }
            let message = format!(
                "{count} similar lines suppressed (log rate limit) in the last {} s",
                limit::SUMMARY_EVERY.as_secs()
            );
            self.send(s.level, format::internal_line(s.level, &message, &fields));
        }
    }
}

/// The `tracing` layer: limits, formats and queues each event.
struct LogLayer(Arc<Shared>);

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let shared = &self.0;
        let meta = event.metadata();
        let level = *meta.level();
        if level > shared.stderr_level && level > shared.file_level {
            return;
        }
        let site = meta.callsite();
        let conn = format::event_conn(event);
        let verdict = shared.limiter().admit(&site, level, conn, Instant::now());
        match verdict {
            Verdict::Pass => shared.send(level, format::event_line(event)),
            Verdict::Suppress { describe: true } => {
                let message = format::event_message(event);
                shared.limiter().describe(&site, message);
            }
            Verdict::Suppress { describe: false } => {}
        }
    }
}

/// The installed logger. Dropping it waits a moment for the queued lines to be written
/// (never long: a stderr nobody reads cannot hold up the exit).
pub struct Logging {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl Logging {
    /// Today's log file path (as when the logger started).
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Writes the pending summaries and waits until every line queued so far is written,
    /// up to `limit` (less when a writer makes no progress). Returns whether all were.
    pub fn flush(&self, limit: Duration) -> bool {
        self.shared.summarize(true);
        let deadline = Instant::now() + limit;
        let file = self.shared.file.flush(deadline);
        let stderr = self.shared.stderr.flush(deadline);
        file && stderr
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        self.flush(FLUSH_AT_EXIT);
    }
}

/// Installs the global logger and starts its threads. Never fails: what cannot be set up
/// (a thread, the file) is reported on stderr and left out. A second call (tests) keeps
/// the first logger.
pub fn init(settings: &Settings) -> Logging {
    let stderr = Queue::new("stderr");
    let file = Queue::new("log file");
    let file_level = settings.level.max(LevelFilter::INFO);
    let shared = Arc::new(Shared {
        stderr: Arc::clone(&stderr),
        file: Arc::clone(&file),
        stderr_level: settings.level,
        file_level,
        limiter: Mutex::new(Limiter::new(Instant::now())),
    });
    let logging = Logging {
        path: today_path(&settings.dir),
        shared: Arc::clone(&shared),
    };
    // The SIP stack logs every message it sends and receives at info: those lines only
    // when asked for debug.
    let stack_level = if file_level >= LevelFilter::DEBUG {
        file_level
    } else {
        LevelFilter::WARN
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(file_level)
        .with_target("rsipstack", stack_level);
    let layer = LogLayer(Arc::clone(&shared)).with_filter(targets);
    if tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .is_err()
    {
        return logging;
    }
    let max_bytes = settings
        .max_bytes_per_day
        .clamp(MIN_MAX_BYTES_PER_DAY, MAX_MAX_BYTES_PER_DAY);
    let keep_days = settings.keep_days.min(MAX_KEEP_DAYS);
    let private_dir = settings.dir == default_dir();
    let mut missing = Vec::new();
    if !sink::spawn(Arc::clone(&stderr), sink::Stderr::new()) {
        missing.push("stderr");
    }
    let daily = file::DailyFile::new(
        settings.dir.clone(),
        private_dir,
        max_bytes,
        keep_days,
        Arc::clone(&stderr),
    );
    if !sink::spawn(file, daily) {
        missing.push("log file");
    }
    let ticker = Arc::downgrade(&shared);
    let ticked = std::thread::Builder::new()
        .name("bapiws-log-tick".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match ticker.upgrade() {
                    Some(s) => s.summarize(false),
                    None => return,
                }
            }
        })
        .is_ok();
    if !ticked {
        missing.push("summaries");
    }
    if !missing.is_empty() {
        // Straight to stderr (its writer may be what is missing), ignoring failure.
        let line = format::internal_line(
            Level::ERROR,
            "cannot start the logger's threads; some log lines are lost",
            &[("missing", &missing.join(","))],
        );
        use std::io::Write;
        let _ = std::io::stderr().write_all(sink::finish(&line).as_bytes());
    }
    logging
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_their_days() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 26).expect("date");
        assert_eq!(file_name(d), "BAPIWS_20261126.log");
        assert_eq!(day_of("BAPIWS_20261126.log"), Some(d));
        for not in [
            "BAPIWS_2026112.log",
            "BAPIWS_202611266.log",
            "BAPIWS_20261399.log",
            "BAPIWS_2026112a.log",
            "bapiws_20261126.log",
            "BAPIWS_20261126.log.1",
            "BAPIWS_+2026112.log",
        ] {
            assert_eq!(day_of(not), None, "{not}");
        }
    }

    #[test]
    fn the_default_folder_is_per_user() {
        let d = default_dir();
        assert!(d.is_absolute() || cfg!(windows), "{}", d.display());
        #[cfg(all(unix, not(target_os = "macos")))]
        assert!(
            d.ends_with("bapiws") || d.ends_with("logs"),
            "{}",
            d.display()
        );
    }
}
