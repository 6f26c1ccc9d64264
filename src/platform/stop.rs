//! The events that stop the server, on every system, and how a Windows console event is
//! handled.
//!
//! On Unix: SIGINT (Ctrl-C), SIGTERM and SIGHUP. On Windows the console reports Ctrl-C,
//! Ctrl-Break and the console window closed; the user logging off and the system shutting
//! down arrive at a hidden window (`WM_ENDSESSION`: Windows sends no console event for
//! them to a program with user32 loaded, as bapiws has). For the last three Windows ends
//! the process as soon as the handler returns, so
//! the handler ([`ConsoleEvents::handle`]) passes the event on and then waits until the
//! server says it has finished ([`finished`]: clients closed with 1001, the log written),
//! bounded by [`CONSOLE_GRACE`]. That logic is portable and unit-tested here; only the
//! registration of the handler is Windows code.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// The most a console handler waits for the server to finish before letting Windows end
/// the process (Windows itself allows about 5 s after a close, more for a shutdown).
pub const CONSOLE_GRACE: Duration = Duration::from_secs(10);

/// Why the server stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopEvent {
    /// Ctrl-C (SIGINT on Unix, CTRL_C_EVENT on Windows).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP: the terminal closed or the session ended.
    Hangup,
    /// Ctrl-Break (CTRL_BREAK_EVENT).
    Break,
    /// The console window was closed (CTRL_CLOSE_EVENT).
    ConsoleClosed,
    /// The user is logging off (CTRL_LOGOFF_EVENT).
    Logoff,
    /// The system is shutting down (CTRL_SHUTDOWN_EVENT).
    SystemShutdown,
    /// `bapiws stop` asked (on Windows, a `WM_CLOSE` to the server's hidden window).
    StopRequested,
}

impl StopEvent {
    /// The event of a Windows console control code (`CTRL_*_EVENT`), if it is one.
    pub fn from_console_code(code: u32) -> Option<StopEvent> {
        match code {
            0 => Some(StopEvent::Interrupt),
            1 => Some(StopEvent::Break),
            2 => Some(StopEvent::ConsoleClosed),
            5 => Some(StopEvent::Logoff),
            6 => Some(StopEvent::SystemShutdown),
            _ => None,
        }
    }

    /// The event of a Windows `WM_ENDSESSION` message: whether the session ends (its
    /// `wParam`) and whether only the user logs off (`ENDSESSION_LOGOFF` in `lParam`).
    pub fn from_end_session(ending: bool, logoff: bool) -> Option<StopEvent> {
        match (ending, logoff) {
            (false, _) => None,
            (true, true) => Some(StopEvent::Logoff),
            (true, false) => Some(StopEvent::SystemShutdown),
        }
    }

    /// A short name for the log.
    pub fn name(self) -> &'static str {
        match self {
            StopEvent::Interrupt => "interrupt",
            StopEvent::Terminate => "SIGTERM",
            StopEvent::Hangup => "SIGHUP",
            StopEvent::Break => "ctrl-break",
            StopEvent::ConsoleClosed => "console closed",
            StopEvent::Logoff => "logoff",
            StopEvent::SystemShutdown => "system shutdown",
            StopEvent::StopRequested => "bapiws stop",
        }
    }

    /// Whether the system ends the process as soon as the handler of this event
    /// returns, so that the handler must wait for the server to finish.
    pub fn ends_process_on_return(self) -> bool {
        matches!(
            self,
            StopEvent::ConsoleClosed | StopEvent::Logoff | StopEvent::SystemShutdown
        )
    }
}

/// Console events passed from the handler (on a thread of the system's) to the server,
/// and the server's word that it has finished.
pub struct ConsoleEvents {
    first: tokio::sync::watch::Sender<Option<StopEvent>>,
    finished: Mutex<bool>,
    finished_changed: Condvar,
}

impl Default for ConsoleEvents {
    fn default() -> Self {
        ConsoleEvents {
            first: tokio::sync::watch::Sender::new(None),
            finished: Mutex::new(false),
            finished_changed: Condvar::new(),
        }
    }
}

impl ConsoleEvents {
    /// What the console handler does with a control code: passes the event on (the first
    /// one counts), and for an event after which the system ends the process waits until
    /// [`finish`](Self::finish) is called, at most `grace`. Returns whether the code was
    /// handled (an unknown code is left to the next handler).
    pub fn handle(&self, code: u32, grace: Duration) -> bool {
        let Some(event) = StopEvent::from_console_code(code) else {
            return false;
        };
        self.pass_on(event, grace);
        true
    }

    /// Passes `event` on (the first one counts); for an event after which the system ends
    /// the process, waits until [`finish`](Self::finish) is called, at most `grace`.
    pub fn pass_on(&self, event: StopEvent, grace: Duration) {
        self.first.send_if_modified(|first| {
            if first.is_none() {
                *first = Some(event);
                true
            } else {
                false
            }
        });
        if event.ends_process_on_return() {
            let done = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            let _ = self
                .finished_changed
                .wait_timeout_while(done, grace, |done| !*done);
        }
    }

    /// Completes with the first event passed on.
    pub async fn next(&self) -> StopEvent {
        let mut rx = self.first.subscribe();
        loop {
            if let Some(event) = *rx.borrow_and_update() {
                return event;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The server has finished: a waiting handler returns.
    pub fn finish(&self) {
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.finished_changed.notify_all();
    }
}

/// The process's console events, once the Windows handler is installed.
static CONSOLE: OnceLock<ConsoleEvents> = OnceLock::new();

/// The events that stop the server, listened to from [`StopSignals::listen`] on: Ctrl-C
/// everywhere; SIGTERM and SIGHUP on Unix; Ctrl-Break, the console closed, logoff and
/// shutdown on Windows. Listening starts when this is made, not when it is first awaited,
/// so that a stop request sent right after the start-up line stops the server cleanly
/// instead of ending the process.
pub struct StopSignals {
    #[cfg(unix)]
    unix: [Option<tokio::signal::unix::Signal>; 3],
    #[cfg(windows)]
    console: bool,
}

impl StopSignals {
    /// Starts listening (on the current tokio runtime, which must have I/O enabled).
    pub fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                unix: [
                    signal(SignalKind::interrupt()).ok(),
                    signal(SignalKind::terminate()).ok(),
                    signal(SignalKind::hangup()).ok(),
                ],
            }
        }
        #[cfg(windows)]
        {
            CONSOLE.get_or_init(ConsoleEvents::default);
            if !super::windows::start_session_window() {
                tracing::warn!(
                    "cannot create the hidden window that hears logoff and shutdown; the server will not stop cleanly then"
                );
            }
            StopSignals {
                console: super::windows::install_console_handler(),
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            StopSignals {}
        }
    }

    /// Completes on the first event.
    pub async fn next(&mut self) -> StopEvent {
        #[cfg(unix)]
        {
            use tokio::signal::unix::Signal;
            async fn recv(s: &mut Option<Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            let [int, term, hup] = &mut self.unix;
            tokio::select! {
                _ = recv(int) => StopEvent::Interrupt,
                _ = recv(term) => StopEvent::Terminate,
                _ = recv(hup) => StopEvent::Hangup,
            }
        }
        #[cfg(windows)]
        {
            match CONSOLE.get() {
                Some(events) if self.console => events.next().await,
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    StopEvent::Interrupt
                }
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = tokio::signal::ctrl_c().await;
            StopEvent::Interrupt
        }
    }
}

/// The server has finished stopping (clients closed, the log written): on Windows a
/// console handler waiting for this returns, and the system may end the process.
pub fn finished() {
    if let Some(events) = CONSOLE.get() {
        events.finish();
    }
}

/// The hidden window calls this at logoff and shutdown: as the console handler does for
/// their console codes, it passes the event on and waits for the server to finish.
#[cfg(windows)]
pub(super) fn on_session_end(event: StopEvent) {
    let code = match event {
        StopEvent::Logoff => 5,
        _ => 6,
    };
    let _ = on_console_code(code);
}

/// What `bapiws stop` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// This many servers were asked and all have stopped.
    Stopped(usize),
    /// Some had not stopped within the wait.
    StillRunning {
        /// The servers asked.
        asked: usize,
        /// Those still running.
        running: usize,
    },
    /// No server runs in this session.
    NoneRunning,
    /// Not on this system: servers stop on their signals (Ctrl-C, SIGTERM).
    NotHere,
}

/// How long `bapiws stop` waits for the servers to go (they finish within
/// [`CONSOLE_GRACE`] of being asked).
pub const STOP_WAIT: Duration = Duration::from_secs(15);

/// `bapiws stop`: on Windows asks every bapiws server of this session to stop (each
/// stops as on Ctrl-C: clients told 1001, the log written) and waits for them, at most
/// [`STOP_WAIT`]. Elsewhere servers are stopped by their signals: [`StopOutcome::NotHere`].
pub fn stop_servers() -> StopOutcome {
    #[cfg(windows)]
    {
        match super::windows::stop_servers(STOP_WAIT) {
            (0, _) => StopOutcome::NoneRunning,
            (n, 0) => StopOutcome::Stopped(n),
            (asked, running) => StopOutcome::StillRunning { asked, running },
        }
    }
    #[cfg(not(windows))]
    {
        StopOutcome::NotHere
    }
}

/// The hidden window calls this when `bapiws stop` asks: the event is passed on and the
/// window returns at once (the server then stops as on Ctrl-C).
#[cfg(windows)]
pub(super) fn on_stop_request() {
    if let Some(events) = CONSOLE.get() {
        events.pass_on(StopEvent::StopRequested, CONSOLE_GRACE);
    }
}

/// The handler installed on Windows calls this with each control code.
#[cfg(windows)]
pub(super) fn on_console_code(code: u32) -> bool {
    CONSOLE
        .get()
        .is_some_and(|events| events.handle(code, CONSOLE_GRACE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn every_windows_console_code_maps_to_its_event() {
        // CTRL_C_EVENT 0, CTRL_BREAK_EVENT 1, CTRL_CLOSE_EVENT 2, CTRL_LOGOFF_EVENT 5,
        // CTRL_SHUTDOWN_EVENT 6; 3 and 4 are reserved.
        let mapped: Vec<_> = (0..8).map(StopEvent::from_console_code).collect();
        assert_eq!(
            mapped,
            [
                Some(StopEvent::Interrupt),
                Some(StopEvent::Break),
                Some(StopEvent::ConsoleClosed),
                None,
                None,
                Some(StopEvent::Logoff),
                Some(StopEvent::SystemShutdown),
                None,
            ]
        );
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn the_end_of_a_session_maps_to_logoff_or_shutdown() {
        assert_eq!(
            StopEvent::from_end_session(true, true),
            Some(StopEvent::Logoff)
        );
        assert_eq!(
            StopEvent::from_end_session(true, false),
            Some(StopEvent::SystemShutdown)
        );
        // The session goes on (another program refused to let it end).
        assert_eq!(StopEvent::from_end_session(false, true), None);
        assert!(StopEvent::Logoff.ends_process_on_return());
        assert!(StopEvent::SystemShutdown.ends_process_on_return());
    }

    #[test]
    fn ctrl_c_and_ctrl_break_are_passed_on_and_return_at_once() {
        for (code, event) in [(0, StopEvent::Interrupt), (1, StopEvent::Break)] {
            let events = ConsoleEvents::default();
            let start = Instant::now();
            assert!(events.handle(code, Duration::from_secs(30)));
            assert!(start.elapsed() < Duration::from_secs(5), "did not wait");
            assert_eq!(runtime().block_on(events.next()), event);
        }
    }

    #[test]
    fn close_logoff_and_shutdown_wait_until_the_server_has_finished() {
        for (code, event) in [
            (2, StopEvent::ConsoleClosed),
            (5, StopEvent::Logoff),
            (6, StopEvent::SystemShutdown),
        ] {
            let events = Arc::new(ConsoleEvents::default());
            let handler = {
                let events = Arc::clone(&events);
                std::thread::spawn(move || events.handle(code, Duration::from_secs(60)))
            };
            // The server learns of the event while the handler still waits.
            assert_eq!(runtime().block_on(events.next()), event);
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                !handler.is_finished(),
                "{event:?}: returned before the server finished"
            );
            events.finish();
            assert!(handler.join().expect("handler"), "{event:?} handled");
        }
    }

    #[test]
    fn a_handler_never_told_returns_after_its_grace() {
        let events = ConsoleEvents::default();
        let start = Instant::now();
        assert!(events.handle(2, Duration::from_millis(200)));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(200), "waited {waited:?}");
    }

    #[test]
    fn the_first_event_counts_and_unknown_codes_are_left_to_others() {
        let events = ConsoleEvents::default();
        assert!(!events.handle(3, Duration::ZERO));
        assert!(events.handle(1, Duration::ZERO));
        assert!(events.handle(0, Duration::ZERO));
        assert_eq!(runtime().block_on(events.next()), StopEvent::Break);
    }
}
