//! The daily file `BAPIWS_yyyymmdd.log`: opened safely, capped in size per day, and old
//! days deleted. Everything here runs on the file's writer thread.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Local, NaiveDate};
use tracing::Level;

use super::format::internal_line;
use super::sink::{Output, Queue, finish};
#[cfg(test)]
use super::today;
use crate::platform;

/// How often a failing log file is reported on stderr.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// How long after a failure the file is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// The log file's name for a day.
pub fn file_name(day: NaiveDate) -> String {
    format!("BAPIWS_{}.log", day.format("%Y%m%d"))
}

/// The day of a log file's name, if it is one.
pub fn day_of(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("BAPIWS_")?.strip_suffix(".log")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// The daily file's writer.
pub struct DailyFile {
    dir: PathBuf,
    /// Whether `dir` is the default per-user folder, which must be private.
    private_dir: bool,
    max_bytes: u64,
    keep_days: u32,
    /// Where problems are reported.
    stderr: Arc<Queue>,
    day: Option<NaiveDate>,
    file: Option<File>,
    /// Bytes in today's file.
    written: u64,
    /// Today's file reached `max_bytes`.
    full: bool,
    /// Lines not written today because the file was full.
    skipped_full: u64,
    /// Lines not written because the file could not be opened or written.
    unwritten: u64,
    /// The previous day and how many lines its full file did not get, said once in the
    /// new file.
    unwritten_note_full: Option<(NaiveDate, u64)>,
    retry_at: Option<Instant>,
    last_report: Option<Instant>,
}

impl DailyFile {
    /// A daily file in `dir`, opened on the first line.
    pub fn new(
        dir: PathBuf,
        private_dir: bool,
        max_bytes: u64,
        keep_days: u32,
        stderr: Arc<Queue>,
    ) -> DailyFile {
        DailyFile {
            dir,
            private_dir,
            max_bytes,
            keep_days,
            stderr,
            day: None,
            file: None,
            written: 0,
            full: false,
            skipped_full: 0,
            unwritten: 0,
            unwritten_note_full: None,
            retry_at: None,
            last_report: None,
        }
    }

    fn path(&self, day: NaiveDate) -> PathBuf {
        self.dir.join(file_name(day))
    }

    /// A new day: closes yesterday's file, deletes old ones.
    fn new_day(&mut self, today: NaiveDate) {
        let previous = self.day.replace(today);
        self.file = None;
        self.written = 0;
        self.full = false;
        self.retry_at = None;
        if let Some(prev) = previous
            && self.skipped_full > 0
        {
            // Said in the new file, once it is open.
            self.unwritten_note_full = Some((prev, self.skipped_full));
        }
        self.skipped_full = 0;
        if self.keep_days > 0 {
            remove_old(&self.dir, today, self.keep_days);
        }
    }

    fn report(&mut self, path: &Path, e: &io::Error) {
        let due = self.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if due {
            self.last_report = Some(Instant::now());
            let path = path.display().to_string();
            let error = e.to_string();
            self.stderr.push(internal_line(
                Level::WARN,
                "cannot write the log file; still serving, logging to stderr only",
                &[("path", &path), ("error", &error)],
            ));
        }
    }

    fn open(&mut self, today: NaiveDate) {
        let path = self.path(today);
        let opened = platform::create_private_dir(&self.dir)
            .and_then(|()| {
                if self.private_dir {
                    platform::check_private_dir(&self.dir)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| platform::open_private_append(&path));
        match opened {
            Ok(f) => {
                self.written = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.file = Some(f);
                self.retry_at = None;
                if let Some((day, n)) = self.unwritten_note_full.take() {
                    let name = file_name(day);
                    self.put(&internal_line(
                        Level::WARN,
                        &format!(
                            "{n} log lines were not written to {name} after it reached its daily size limit"
                        ),
                        &[],
                    ));
                }
                if self.unwritten > 0 {
                    let n = std::mem::take(&mut self.unwritten);
                    self.put(&internal_line(
                        Level::WARN,
                        &format!("{n} log lines could not be written to the log file (see stderr)"),
                        &[],
                    ));
                }
                if self.written >= self.max_bytes {
                    self.fill();
                }
            }
            Err(e) => {
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
                self.report(&path, &e);
            }
        }
    }

    /// Writes one of the logger's own lines, whatever the cap.
    fn put(&mut self, line: &str) {
        let text = finish(line);
        let Some(f) = self.file.as_mut() else {
            return;
        };
        match f.write_all(text.as_bytes()) {
            Ok(()) => self.written += text.len() as u64,
            Err(e) => {
                // Try to reopen later (the disk may have room again).
                self.file = None;
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
                self.unwritten += 1;
                if let Some(day) = self.day {
                    let path = self.path(day);
                    self.report(&path, &e);
                }
            }
        }
    }

    /// Today's file reached its cap: one line says so.
    fn fill(&mut self) {
        self.full = true;
        let max = self.max_bytes.to_string();
        self.put(&internal_line(
            Level::WARN,
            "log full until midnight: the log file reached its daily size limit; \
             nothing more is written to it today (stderr still gets every line)",
            &[("limit_bytes", &max)],
        ));
    }
}

impl Output for DailyFile {
    fn tick(&mut self) {
        let today = Local::now().date_naive();
        if self.day != Some(today) {
            self.new_day(today);
        }
    }

    fn write_line(&mut self, line: &str) {
        let Some(today) = self.day else {
            return;
        };
        if self.file.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                self.unwritten += 1;
                return;
            }
            self.open(today);
            if self.file.is_none() {
                self.unwritten += 1;
                return;
            }
        }
        if self.full {
            self.skipped_full += 1;
            return;
        }
        if self.written + line.len() as u64 > self.max_bytes {
            self.fill();
            self.skipped_full += 1;
            return;
        }
        let Some(f) = self.file.as_mut() else {
            return;
        };
        match f.write_all(line.as_bytes()) {
            Ok(()) => self.written += line.len() as u64,
            Err(e) => {
                self.file = None;
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
                self.unwritten += 1;
                let path = self.path(today);
                self.report(&path, &e);
            }
        }
    }
}

/// Deletes the log files in `dir` of days before the last `keep_days` (today included):
/// only regular files of this user whose name is a log file's.
pub fn remove_old(dir: &Path, today: NaiveDate, keep_days: u32) {
    let Some(oldest_kept) =
        today.checked_sub_days(chrono::Days::new(u64::from(keep_days.saturating_sub(1))))
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(100_000) {
        let name = entry.file_name();
        let Some(day) = name.to_str().and_then(day_of) else {
            continue;
        };
        if day >= oldest_kept {
            continue;
        }
        // The entry itself, not what a symbolic link points to.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if platform::is_own_regular_file(&meta) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bapiws-unit-{}-{tag}-{}",
            std::process::id(),
            Local::now().timestamp_nanos_opt().unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_daily_cap_holds_with_one_line_saying_so() {
        let dir = temp("cap");
        let stderr = Queue::new("stderr");
        let mut f = DailyFile::new(dir.clone(), false, 2000, 0, stderr);
        f.tick();
        let line = finish(&"x".repeat(99));
        for _ in 0..100 {
            f.write_line(&line);
        }
        let path = dir.join(file_name(today()));
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.matches("log full until midnight").count(), 1, "{text}");
        assert!(text.len() <= 2000 + 400, "{}", text.len());
        assert_eq!(text.lines().filter(|l| l.starts_with('x')).count(), 20);
        assert_eq!(f.skipped_full, 80);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_already_full_gets_one_line_and_no_more() {
        let dir = temp("full");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(file_name(today()));
        std::fs::write(&path, "y".repeat(3000)).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let mut f = DailyFile::new(dir.clone(), false, 2000, 0, Queue::new("stderr"));
        f.tick();
        f.write_line(&finish("one"));
        f.write_line(&finish("two"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with(&"y".repeat(3000)));
        assert_eq!(text.matches("log full until midnight").count(), 1, "{text}");
        assert!(!text.contains("one") && !text.contains("two"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn old_days_are_removed_and_nothing_else() {
        let dir = temp("keep");
        std::fs::create_dir_all(&dir).expect("dir");
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).expect("date");
        let names = [
            ("BAPIWS_20260310.log", true),
            ("BAPIWS_20260304.log", true),
            ("BAPIWS_20260303.log", false),
            ("BAPIWS_20250310.log", false),
            ("BAPIWS_20260311.log", true),
            ("BAPIWS_x.log", true),
            ("notes.txt", true),
        ];
        for (n, _) in names {
            std::fs::write(dir.join(n), "x").expect("write");
        }
        remove_old(&dir, today, 7);
        for (n, kept) in names {
            assert_eq!(dir.join(n).exists(), kept, "{n}");
        }
        // 1 keeps today only (and a day to come).
        remove_old(&dir, today, 1);
        assert!(!dir.join("BAPIWS_20260304.log").exists());
        assert!(dir.join("BAPIWS_20260310.log").exists());
        assert!(dir.join("BAPIWS_20260311.log").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
