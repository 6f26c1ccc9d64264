//! Where lines go: a bounded queue per destination, drained by a thread of its own, so
//! that no thread that handles requests ever waits for a disk or a pipe. When a queue is
//! full, lines are dropped and counted; the writer says how many once it catches up.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::Level;

use super::format::{escape_line, internal_line};

/// Most lines waiting in one queue.
pub const MAX_QUEUED_LINES: usize = 8192;
/// Most bytes waiting in one queue.
pub const MAX_QUEUED_BYTES: usize = 2 * 1024 * 1024;
/// How long a writer waits for a line before it looks after itself (the day changes).
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How long [`Queue::flush`] waits without seeing its writer make progress.
const STALLED: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    lines: VecDeque<String>,
    bytes: usize,
    dropped: u64,
    pushed: u64,
    done: u64,
}

/// A bounded queue of lines for one writer.
pub struct Queue {
    name: &'static str,
    state: Mutex<State>,
    ready: Condvar,
    progress: Condvar,
}

impl Queue {
    /// An empty queue for the writer of `name` ("log file", "stderr").
    pub fn new(name: &'static str) -> Arc<Queue> {
        Arc::new(Queue {
            name,
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            progress: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a line, or drops and counts it when the queue is full. Never waits for
    /// the writer.
    pub fn push(&self, line: String) -> bool {
        let mut s = self.lock();
        if s.lines.len() >= MAX_QUEUED_LINES || s.bytes + line.len() > MAX_QUEUED_BYTES {
            s.dropped += 1;
            return false;
        }
        s.bytes += line.len();
        s.lines.push_back(line);
        s.pushed += 1;
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The next line (waiting up to `wait`), and the lines dropped since the last call.
    fn pop(&self, wait: Duration) -> (Option<String>, u64) {
        let mut s = self.lock();
        if s.lines.is_empty() {
            s = self
                .ready
                .wait_timeout(s, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let line = s.lines.pop_front();
        if let Some(l) = &line {
            s.bytes = s.bytes.saturating_sub(l.len());
        }
        let dropped = std::mem::take(&mut s.dropped);
        (line, dropped)
    }

    fn mark_done(&self) {
        self.lock().done += 1;
        self.progress.notify_all();
    }

    /// Waits until every line queued so far is written, until `deadline`, or until the
    /// writer has made no progress for a moment (a pipe nobody reads). Returns whether
    /// everything was written.
    pub fn flush(&self, deadline: Instant) -> bool {
        let mut s = self.lock();
        let target = s.pushed;
        let mut seen = s.done;
        let mut since = Instant::now();
        while s.done < target {
            let now = Instant::now();
            if now >= deadline || now.duration_since(since) >= STALLED {
                return false;
            }
            let wait = deadline.min(since + STALLED).saturating_duration_since(now);
            s = self
                .progress
                .wait_timeout(s, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            if s.done != seen {
                seen = s.done;
                since = Instant::now();
            }
        }
        true
    }
}

/// A destination that a writer thread owns.
pub trait Output: Send + 'static {
    /// Writes one finished line (escaped, with its newline).
    fn write_line(&mut self, line: &str);
    /// Called when no line came for a while, and before each line.
    fn tick(&mut self) {}
}

/// Escapes a line and adds its newline: the one place every line passes through.
pub fn finish(line: &str) -> String {
    let mut s = escape_line(line);
    s.push('\n');
    s
}

/// Starts the writer thread of `queue`. Returns `false` when no thread could be
/// started (the lines then stay in the bounded queue, and are dropped when it is full).
pub fn spawn(queue: Arc<Queue>, mut out: impl Output) -> bool {
    let name = format!("bapiws-log-{}", queue.name.replace(' ', "-"));
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            loop {
                let (line, dropped) = queue.pop(IDLE_TICK);
                out.tick();
                if dropped > 0 {
                    let note = internal_line(
                        Level::WARN,
                        &format!(
                            "{dropped} log lines dropped: the {} could not be written fast enough",
                            queue.name
                        ),
                        &[],
                    );
                    out.write_line(&finish(&note));
                }
                if let Some(line) = line {
                    out.write_line(&finish(&line));
                    queue.mark_done();
                }
            }
        })
        .is_ok()
}

/// Standard error, written without taking Rust's lock on it (a blocked pipe then stops
/// only its writer thread).
pub struct Stderr(Box<dyn Write + Send>);

impl Stderr {
    /// This process's standard error.
    pub fn new() -> Stderr {
        match crate::platform::stderr_file() {
            Some(f) => Stderr(Box::new(f)),
            None => Stderr(Box::new(std::io::stderr())),
        }
    }
}

impl Output for Stderr {
    fn write_line(&mut self, line: &str) {
        // Nothing to do when stderr is gone: the file still has the line.
        let _ = self.0.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that blocks until told to go on, then records.
    struct Gate {
        go: mpsc::Receiver<()>,
        seen: mpsc::Sender<String>,
    }

    impl Output for Gate {
        fn write_line(&mut self, line: &str) {
            let _ = self.go.recv();
            let _ = self.seen.send(line.to_owned());
        }
    }

    #[test]
    fn a_blocked_writer_never_blocks_the_caller_and_counts_what_it_dropped() {
        let q = Queue::new("test");
        let (go_tx, go_rx) = mpsc::channel();
        let (seen_tx, seen_rx) = mpsc::channel();
        assert!(spawn(
            Arc::clone(&q),
            Gate {
                go: go_rx,
                seen: seen_tx
            }
        ));
        let start = Instant::now();
        let mut accepted = 0;
        for i in 0..(MAX_QUEUED_LINES + 1000) {
            if q.push(format!("line {i}")) {
                accepted += 1;
            }
        }
        // The writer holds one line; the queue holds at most its bound.
        assert!(accepted <= MAX_QUEUED_LINES + 1, "{accepted}");
        assert!(accepted >= MAX_QUEUED_LINES, "{accepted}");
        // A flush gives up on a writer that makes no progress.
        assert!(!q.flush(start + Duration::from_secs(30)));
        // One permit per line; the notes of dropped lines need a few more.
        for _ in 0..(accepted + 100) {
            let _ = go_tx.send(());
        }
        // Everything the writer writes from now on (it may say that lines were dropped
        // more than once, as it catches up in steps).
        let mut lines = Vec::new();
        while let Ok(l) = seen_rx.recv_timeout(Duration::from_secs(2)) {
            lines.push(l);
        }
        let notes: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("log lines dropped"))
            .collect();
        assert!(!notes.is_empty(), "a dropped-lines line");
        let n: usize = notes
            .iter()
            .filter_map(|note| {
                note.split_whitespace()
                    .find_map(|w| w.parse::<usize>().ok())
            })
            .sum();
        assert_eq!(n + accepted, MAX_QUEUED_LINES + 1000, "{notes:?}");
        assert_eq!(
            lines.len(),
            accepted + notes.len(),
            "every accepted line written"
        );
        assert!(lines.iter().all(|l| l.ends_with('\n')));
        assert!(q.flush(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn finished_lines_are_escaped_with_one_newline() {
        assert_eq!(finish("a\nb\u{202e}"), "a\\nb\\u{202e}\n");
    }
}
