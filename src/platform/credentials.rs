//! The system's credential store, where the built-in SIP phone's password can be kept off
//! disk (`[sip] password_store = "keyring"`): the Secret Service on Linux (GNOME Keyring,
//! KWallet, KeePassXC…, reached over the D-Bus session bus in pure Rust through zbus), the
//! Credential Manager on Windows (a generic credential named `USER.bapiws`). Elsewhere
//! there is no store, and every call says so ([`StoreError::Unsupported`]).
//!
//! An entry is named by the service [`SERVICE`] and the user, the SIP account
//! (`sip:1001@pbx.example.com`). The password itself only ever travels inside a
//! [`Secret`]; no error here repeats it.
//!
//! Also here: reading a password typed at a terminal without echoing it
//! ([`read_secret_line`]).

use std::time::Duration;

use crate::settings::Secret;

/// The service name of bapiws's entries in the credential store.
pub const SERVICE: &str = "bapiws";

/// The longest input [`read_secret_line`] takes, in bytes.
pub const MAX_INPUT: usize = 4096;

/// How long one call to the store may take: the store may show the user a prompt to
/// unlock it, so this is generous; a store that hangs is then an error, not a hang.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Why the store did not do what was asked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No entry for this user.
    #[error("no entry")]
    NoEntry,
    /// The store cannot be reached or used (no session bus, no Secret Service, a locked
    /// collection whose unlocking was refused, a timeout): the text says what happened.
    #[error("{0}")]
    Unreachable(String),
    /// The store answered with an error (the text), or its entry is not a password.
    #[error("{0}")]
    Failed(String),
    /// This system has no store bapiws can use.
    #[error("this system has no credential store bapiws can use")]
    Unsupported,
}

/// The store's name in messages: "the Secret Service", "the Windows Credential Manager".
pub fn store_name() -> &'static str {
    if cfg!(target_os = "linux") {
        "the Secret Service"
    } else if cfg!(windows) {
        "the Windows Credential Manager"
    } else {
        "no credential store"
    }
}

/// What a user can do when the store cannot be used.
pub fn store_fix() -> &'static str {
    if cfg!(target_os = "linux") {
        "start and unlock a keyring in this session (GNOME Keyring, KWallet, KeePassXC), or use password_file"
    } else if cfg!(windows) {
        "check that the Credential Manager works for this user, or use password_file"
    } else {
        "use password_file"
    }
}

/// The password stored for `user`.
pub fn read(user: &str) -> Result<Secret, StoreError> {
    let user = user.to_owned();
    bounded(move || native::read(&user))
}

/// Whether a password is stored for `user` (it is read, and dropped at once).
pub fn is_stored(user: &str) -> Result<bool, StoreError> {
    match read(user) {
        Ok(_) => Ok(true),
        Err(StoreError::NoEntry) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Stores `password` for `user`, replacing what was stored.
pub fn write(user: &str, password: &Secret) -> Result<(), StoreError> {
    let (user, password) = (user.to_owned(), password.clone());
    bounded(move || native::write(&user, &password))
}

/// Removes the entry of `user`; `Ok(false)` when there was none.
pub fn remove(user: &str) -> Result<bool, StoreError> {
    let user = user.to_owned();
    bounded(move || match native::remove(&user) {
        Ok(()) => Ok(true),
        Err(StoreError::NoEntry) => Ok(false),
        Err(e) => Err(e),
    })
}

/// Runs one call to the store on a thread of its own, waiting at most [`TIMEOUT`]: a
/// store that never answers (a prompt nobody sees) is an error, not a hung program.
fn bounded<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bapiws-credentials".into())
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| StoreError::Unreachable(format!("cannot start a thread for it: {e}")))?;
    match rx.recv_timeout(TIMEOUT) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(StoreError::Unreachable(format!(
            "it did not answer within {} s (is it waiting for you to unlock it?)",
            TIMEOUT.as_secs()
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Failed(
            "the call to it failed without an answer".into(),
        )),
    }
}

/// The stores of the keyring family: its core, with the platform's store behind it.
#[cfg(any(target_os = "linux", windows))]
mod native {
    use std::sync::Arc;

    use keyring_core::api::CredentialStore;
    use keyring_core::{Entry, Error};

    use super::{SERVICE, StoreError};
    use crate::settings::Secret;

    #[cfg(target_os = "linux")]
    fn store() -> Result<Arc<CredentialStore>, Error> {
        let store: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
        Ok(store)
    }

    #[cfg(windows)]
    fn store() -> Result<Arc<CredentialStore>, Error> {
        let store: Arc<CredentialStore> = windows_native_keyring_store::Store::new()?;
        Ok(store)
    }

    fn entry(user: &str) -> Result<Entry, StoreError> {
        let store = store().map_err(unreachable)?;
        // The label a keyring manager (Seahorse, KWallet) shows; the Credential Manager
        // has no such thing.
        #[cfg(target_os = "linux")]
        {
            let label = format!("bapiws: the SIP password of {user}");
            let modifiers = std::collections::HashMap::from([("label", label.as_str())]);
            Entry::new_in_store_with_modifiers(&store, SERVICE, user, &modifiers).map_err(failed)
        }
        #[cfg(windows)]
        {
            Entry::new_in_store(&store, SERVICE, user).map_err(failed)
        }
    }

    pub fn read(user: &str) -> Result<Secret, StoreError> {
        entry(user)?.get_password().map(Secret::new).map_err(failed)
    }

    pub fn write(user: &str, password: &Secret) -> Result<(), StoreError> {
        entry(user)?.set_password(password.expose()).map_err(failed)
    }

    pub fn remove(user: &str) -> Result<(), StoreError> {
        entry(user)?.delete_credential().map_err(failed)
    }

    /// A store that cannot be opened at all (no session bus, no Secret Service on it).
    fn unreachable(e: Error) -> StoreError {
        match e {
            Error::NoEntry => StoreError::NoEntry,
            e => StoreError::Unreachable(format!("it cannot be reached: {}", words(&e))),
        }
    }

    /// An error of a call to an opened store. The errors that carry data (a password
    /// that is not UTF-8) are named, never shown.
    fn failed(e: Error) -> StoreError {
        match e {
            Error::NoEntry => StoreError::NoEntry,
            Error::NoStorageAccess(_) => {
                StoreError::Unreachable(format!("it is locked or refused access: {}", words(&e)))
            }
            Error::PlatformFailure(_) => StoreError::Unreachable(words(&e)),
            Error::BadEncoding(_) | Error::BadDataFormat(..) => {
                StoreError::Failed("the stored entry is not a password in UTF-8".into())
            }
            Error::Ambiguous(entries) => StoreError::Failed(format!(
                "{} entries match service {SERVICE} and this user; remove the others with the store's own tool (Seahorse, secret-tool, the Credential Manager)",
                entries.len()
            )),
            e => StoreError::Failed(words(&e)),
        }
    }

    /// An error's text for a terminal and a log line: one line, printable, bounded.
    fn words(e: &Error) -> String {
        let text: String = e
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        text
    }
}

/// No store on this system: every call says so.
#[cfg(not(any(target_os = "linux", windows)))]
mod native {
    use super::StoreError;
    use crate::settings::Secret;

    pub fn read(_user: &str) -> Result<Secret, StoreError> {
        Err(StoreError::Unsupported)
    }

    pub fn write(_user: &str, _password: &Secret) -> Result<(), StoreError> {
        Err(StoreError::Unsupported)
    }

    pub fn remove(_user: &str) -> Result<(), StoreError> {
        Err(StoreError::Unsupported)
    }
}

/// Reads a password from standard input: at a terminal, after `prompt` on stderr and
/// without echoing what is typed; otherwise the first line of what is piped in. At most
/// [`MAX_INPUT`] bytes; the line's end (`\n`, `\r\n`) is not part of it. The error is in
/// a user's words and never holds what was read.
pub fn read_secret_line(prompt: &str) -> Result<Secret, String> {
    use std::io::{BufRead, IsTerminal, Read, Write};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let echo = if terminal {
        let mut err = std::io::stderr();
        let _ = write!(err, "{prompt}");
        let _ = err.flush();
        Some(EchoOff::new())
    } else {
        None
    };
    let mut line = Vec::new();
    let read = stdin
        .lock()
        .take(MAX_INPUT as u64 + 1)
        .read_until(b'\n', &mut line);
    drop(echo);
    if terminal {
        let _ = writeln!(std::io::stderr());
    }
    read.map_err(|e| format!("cannot read standard input: {e}"))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_INPUT {
        return Err(format!(
            "the input's first line is longer than {} KiB",
            MAX_INPUT / 1024
        ));
    }
    String::from_utf8(line)
        .map(Secret::new)
        .map_err(|_| "the password is not UTF-8 text".to_owned())
}

/// The terminal's echo, off while this lives (restored on drop). Where it cannot be
/// turned off, nothing happens.
struct EchoOff {
    #[cfg(unix)]
    saved: Option<libc::termios>,
    #[cfg(windows)]
    saved: Option<u32>,
}

#[cfg(unix)]
impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: tcgetattr and tcsetattr only read and write the struct passed to them,
        // on standard input's descriptor.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return EchoOff { saved: None };
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                return EchoOff { saved: None };
            }
            EchoOff { saved: Some(saved) }
        }
    }
}

#[cfg(unix)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: as in `new`, with the settings read there.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}

#[cfg(windows)]
impl EchoOff {
    fn new() -> EchoOff {
        use windows_sys::Win32::System::Console::{
            ENABLE_ECHO_INPUT, GetConsoleMode, GetStdHandle, STD_INPUT_HANDLE, SetConsoleMode,
        };
        // SAFETY: the console calls only read and write the mode of standard input's
        // handle, through a valid pointer.
        unsafe {
            let handle = GetStdHandle(STD_INPUT_HANDLE);
            let mut mode = 0;
            if GetConsoleMode(handle, &mut mode) == 0 {
                return EchoOff { saved: None };
            }
            if SetConsoleMode(handle, mode & !ENABLE_ECHO_INPUT) == 0 {
                return EchoOff { saved: None };
            }
            EchoOff { saved: Some(mode) }
        }
    }
}

#[cfg(windows)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        use windows_sys::Win32::System::Console::{GetStdHandle, STD_INPUT_HANDLE, SetConsoleMode};
        if let Some(mode) = self.saved {
            // SAFETY: as in `new`, with the mode read there.
            unsafe {
                SetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), mode);
            }
        }
    }
}

#[cfg(not(any(unix, windows)))]
impl EchoOff {
    fn new() -> EchoOff {
        EchoOff {}
    }
}
