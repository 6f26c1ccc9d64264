//! Telling the user who clicked a link: a desktop notification where there is one, a
//! dialog box to confirm a call, the terminal (standard error) always.
//!
//! Linux and the other Unix systems: `notify-send` (libnotify) when it is on `PATH`,
//! with the text escaped for the notification's markup; the confirmation asks with
//! `zenity --question` when it is on `PATH`, else on the terminal when there is one.
//! Windows: a message box. Only these fixed programs are started, never anything a
//! link names, and each is waited for a bounded time (the confirmation: [`ASK_TIMEOUT`]).

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How long the user has to confirm a call; no answer is no.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a notification program may take.
#[cfg(not(windows))]
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most characters of any one message shown.
const MAX_MESSAGE: usize = 600;

/// Where messages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tell {
    /// The desktop (a notification, a dialog box) and standard error.
    Desktop,
    /// Standard error only (and a confirmation on the terminal).
    Terminal,
}

/// The text made safe for a terminal and bounded.
fn shown(text: &str) -> String {
    let text = crate::client::for_terminal(text);
    let mut out: String = text.chars().take(MAX_MESSAGE).collect();
    if text.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

/// Says `message`: on standard error (an error) or output, and on the desktop as a notification (`error`
/// marks it urgent) or, on Windows, an error's message box.
pub fn say(how: Tell, message: &str, error: bool) {
    let message = shown(message);
    if error {
        let _ = writeln!(std::io::stderr(), "bapiws: {message}");
    } else {
        let _ = writeln!(std::io::stdout(), "{message}");
    }
    if how == Tell::Desktop {
        imp::notify(&message, error);
    }
}

/// Asks the user whether to place a call; `false` when the answer is no, or when
/// nobody can be asked (no dialog program and no terminal), or after [`ASK_TIMEOUT`].
pub fn confirm(how: Tell, question: &str) -> bool {
    let question = shown(question);
    if how == Tell::Desktop
        && let Some(answer) = imp::ask(&question)
    {
        return answer;
    }
    ask_terminal(&question)
}

/// Asks on the terminal, when standard input and standard error are one.
fn ask_terminal(question: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "bapiws: cannot ask to confirm the call (no dialog and no terminal): not calling"
        );
        return false;
    }
    let _ = write!(std::io::stderr(), "bapiws: {question} [y/N] ");
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("bapiws-ask".into())
        .spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = tx.send(line);
        });
    match rx.recv_timeout(ASK_TIMEOUT) {
        Ok(line) => matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES"),
        Err(_) => false,
    }
}

/// Escapes text for the markup notification servers read in a body (`<b>`, `<a>`,
/// `&amp;`): the five characters of XML.
pub fn markup_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(not(windows))]
mod imp {
    use super::*;
    use std::process::{Command, Stdio};

    /// Runs `program` with `args`, waiting at most `limit`; its exit code, or `None`
    /// when it is not there, failed to start or took too long (then it is killed).
    fn run(program: &str, args: &[&str], limit: Duration) -> Option<i32> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let start = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    pub fn notify(message: &str, error: bool) {
        let body = markup_escaped(message);
        let urgency = if error {
            "--urgency=critical"
        } else {
            "--urgency=normal"
        };
        // `--` ends the options: the texts are never read as options.
        run(
            "notify-send",
            &["--app-name=bapiws", urgency, "--", "bapiws", &body],
            NOTIFY_TIMEOUT,
        );
    }

    pub fn ask(question: &str) -> Option<bool> {
        // zenity: 0 is yes, 1 is no (or closed), 5 its own timeout; `--no-markup` shows
        // the text as it is.
        let text = format!("--text={question}");
        let timeout = format!("--timeout={}", ASK_TIMEOUT.as_secs());
        match run(
            "zenity",
            &[
                "--question",
                "--title=bapiws",
                "--no-markup",
                &timeout,
                &text,
            ],
            ASK_TIMEOUT + Duration::from_secs(5),
        ) {
            Some(0) => Some(true),
            Some(1 | 5) => Some(false),
            // Not there, or it could not show a dialog: ask on the terminal instead.
            _ => None,
        }
    }
}

#[cfg(windows)]
mod imp {
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        IDYES, MB_ICONERROR, MB_ICONQUESTION, MB_OK, MB_SETFOREGROUND, MB_TOPMOST, MB_YESNO,
        MessageBoxW,
    };

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn message_box(text: &str, style: u32) -> i32 {
        let text = wide(text);
        let title = wide("bapiws");
        // SAFETY: both strings are NUL-terminated and outlive the call; no owner window.
        unsafe {
            MessageBoxW(
                std::ptr::null_mut(),
                text.as_ptr(),
                title.as_ptr(),
                style | MB_TOPMOST | MB_SETFOREGROUND,
            )
        }
    }

    /// Errors only: a message box for a call that was placed would be in the way.
    pub fn notify(message: &str, error: bool) {
        if error {
            message_box(message, MB_OK | MB_ICONERROR);
        }
    }

    pub fn ask(question: &str) -> Option<bool> {
        Some(message_box(question, MB_YESNO | MB_ICONQUESTION) == IDYES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            markup_escaped("<a href='x'>1</a> & \"2\""),
            "&lt;a href=&apos;x&apos;&gt;1&lt;/a&gt; &amp; &quot;2&quot;"
        );
    }

    #[test]
    fn messages_are_bounded_and_safe_for_a_terminal() {
        let long = "x".repeat(5000);
        assert_eq!(shown(&long).chars().count(), MAX_MESSAGE + 1);
        assert!(!shown("a\u{1b}[2Jb\nc").contains('\u{1b}'));
    }
}
