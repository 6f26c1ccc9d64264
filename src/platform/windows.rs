//! Windows only: the registry (the settings the original reads from
//! `HKLM\Software\Benemen\BAPIWS`, and the per-user Run key of `bapiws autostart`) and the
//! console control handler (see [`super::stop`]).

use std::io;

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_MORE_DATA, ERROR_NO_MORE_ITEMS, ERROR_SUCCESS, WIN32_ERROR,
};
use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, WPARAM};
use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
use windows_sys::Win32::System::Environment::ExpandEnvironmentStringsW;
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, KEY_READ, KEY_SET_VALUE, KEY_WOW64_32KEY,
    KEY_WOW64_64KEY, REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ, REG_OPTION_NON_VOLATILE, REG_QWORD,
    REG_SZ, RegCloseKey, RegCreateKeyExW, RegDeleteTreeW, RegDeleteValueW, RegEnumKeyExW,
    RegEnumValueW, RegOpenKeyExW, RegSetValueExW,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DefWindowProcW, DispatchMessageW, ENDSESSION_LOGOFF, FindWindowExW,
    GetMessageW, IsWindow, MSG, PostMessageW, RegisterClassW, TranslateMessage, WM_CLOSE,
    WM_ENDSESSION, WM_QUERYENDSESSION, WNDCLASSW, WS_OVERLAPPED,
};

use super::stop::StopEvent;
use super::{RegistryKey, RegistryValue};

/// The largest value the server reads (a setting is a few hundred bytes at most).
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most values and subkeys read from one key.
const MAX_ENTRIES: u32 = 1024;

/// A registry root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hive {
    /// HKEY_LOCAL_MACHINE (`HKLM`): settings for every user of the machine.
    LocalMachine,
    /// HKEY_CURRENT_USER (`HKCU`): this user's.
    CurrentUser,
}

impl Hive {
    fn handle(self) -> HKEY {
        match self {
            Hive::LocalMachine => HKEY_LOCAL_MACHINE,
            Hive::CurrentUser => HKEY_CURRENT_USER,
        }
    }

    /// The short name, as `reg.exe` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Hive::LocalMachine => "HKLM",
            Hive::CurrentUser => "HKCU",
        }
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn os_error(code: WIN32_ERROR) -> io::Error {
    io::Error::from_raw_os_error(code as i32)
}

/// An open key, closed on drop.
struct Key(HKEY);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by RegOpenKeyExW/RegCreateKeyExW and is closed once.
        unsafe {
            RegCloseKey(self.0);
        }
    }
}

impl Key {
    /// Opens `path` under `parent` (`Ok(None)` when it does not exist).
    fn open(parent: HKEY, path: &str, access: u32) -> io::Result<Option<Key>> {
        let path = wide(path);
        let mut key: HKEY = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated and outlives the call; `key` is written on success.
        let rc = unsafe { RegOpenKeyExW(parent, path.as_ptr(), 0, access, &mut key) };
        match rc {
            ERROR_SUCCESS => Ok(Some(Key(key))),
            ERROR_FILE_NOT_FOUND => Ok(None),
            rc => Err(os_error(rc)),
        }
    }

    /// Opens or creates `path` under `hive` for writing values.
    fn create(hive: Hive, path: &str) -> io::Result<Key> {
        let path = wide(path);
        let mut key: HKEY = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; the class and security attributes are null, as
        // allowed; `key` is written on success.
        let rc = unsafe {
            RegCreateKeyExW(
                hive.handle(),
                path.as_ptr(),
                0,
                std::ptr::null(),
                REG_OPTION_NON_VOLATILE,
                KEY_SET_VALUE | KEY_WOW64_64KEY,
                std::ptr::null(),
                &mut key,
                std::ptr::null_mut(),
            )
        };
        match rc {
            ERROR_SUCCESS => Ok(Key(key)),
            rc => Err(os_error(rc)),
        }
    }

    /// Every value of the key (at most [`MAX_ENTRIES`]).
    fn values(&self) -> io::Result<Vec<(String, RegistryValue)>> {
        let mut out = Vec::new();
        let mut name = vec![0u16; 16384];
        let mut data = vec![0u8; 4096];
        let mut index = 0;
        while index < MAX_ENTRIES {
            let mut name_len = name.len() as u32;
            let mut data_len = data.len() as u32;
            let mut kind = 0u32;
            // SAFETY: the buffers and their lengths match; the reserved pointer is null.
            let rc = unsafe {
                RegEnumValueW(
                    self.0,
                    index,
                    name.as_mut_ptr(),
                    &mut name_len,
                    std::ptr::null(),
                    &mut kind,
                    data.as_mut_ptr(),
                    &mut data_len,
                )
            };
            match rc {
                ERROR_SUCCESS => {
                    let n = String::from_utf16_lossy(&name[..name_len as usize]);
                    let bytes = &data[..(data_len as usize).min(data.len())];
                    let value = match decode(kind, bytes) {
                        RegistryValue::Text(t) if kind == REG_EXPAND_SZ => {
                            RegistryValue::Text(expand(&t))
                        }
                        v => v,
                    };
                    out.push((n, value));
                    index += 1;
                }
                ERROR_MORE_DATA if data.len() < MAX_VALUE_BYTES => {
                    let grown = (data_len as usize).max(data.len() * 2).min(MAX_VALUE_BYTES);
                    data.resize(grown, 0);
                }
                ERROR_MORE_DATA => {
                    // Too large to be a setting: reported as such, not read.
                    let n = String::from_utf16_lossy(&name[..(name_len as usize).min(name.len())]);
                    out.push((n, RegistryValue::Unsupported(kind)));
                    index += 1;
                }
                ERROR_NO_MORE_ITEMS => break,
                rc => return Err(os_error(rc)),
            }
        }
        Ok(out)
    }

    /// The names of the key's subkeys (at most [`MAX_ENTRIES`]).
    fn subkeys(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut name = vec![0u16; 256];
        for index in 0..MAX_ENTRIES {
            let mut len = name.len() as u32;
            // SAFETY: the buffer and its length match; the optional pointers are null.
            let rc = unsafe {
                RegEnumKeyExW(
                    self.0,
                    index,
                    name.as_mut_ptr(),
                    &mut len,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            match rc {
                ERROR_SUCCESS => out.push(String::from_utf16_lossy(&name[..len as usize])),
                ERROR_NO_MORE_ITEMS => break,
                rc => return Err(os_error(rc)),
            }
        }
        Ok(out)
    }
}

/// `%VARIABLE%`s replaced by their values, as Windows does for REG_EXPAND_SZ (the text
/// as it is if that fails).
fn expand(text: &str) -> String {
    let source = wide(text);
    let mut out = vec![0u16; 1024];
    for _ in 0..2 {
        // SAFETY: `source` is NUL-terminated; `out` holds `out.len()` units.
        let n = unsafe {
            ExpandEnvironmentStringsW(source.as_ptr(), out.as_mut_ptr(), out.len() as u32)
        } as usize;
        if n == 0 {
            break;
        }
        if n <= out.len() {
            let end = out[..n].iter().position(|&u| u == 0).unwrap_or(n);
            return String::from_utf16_lossy(&out[..end]);
        }
        if n > MAX_VALUE_BYTES {
            break;
        }
        out.resize(n, 0);
    }
    text.to_owned()
}

/// A value's data as text, a number or a list.
fn decode(kind: u32, bytes: &[u8]) -> RegistryValue {
    let units = || -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    match kind {
        REG_SZ | REG_EXPAND_SZ => {
            let units = units();
            let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
            RegistryValue::Text(String::from_utf16_lossy(&units[..end]))
        }
        REG_MULTI_SZ => RegistryValue::List(
            units()
                .split(|&u| u == 0)
                .filter(|s| !s.is_empty())
                .map(String::from_utf16_lossy)
                .collect(),
        ),
        REG_DWORD if bytes.len() >= 4 => RegistryValue::Number(u64::from(u32::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ]))),
        REG_QWORD if bytes.len() >= 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[..8]);
            RegistryValue::Number(u64::from_le_bytes(b))
        }
        other => RegistryValue::Unsupported(other),
    }
}

/// Reads a key's values and its subkeys' values (one level), from both registry views:
/// the 64-bit one and the 32-bit one (`WOW6432Node`, where a 32-bit installer of the
/// original writes), value by value, the 64-bit view's value winning. A subkey that
/// cannot be opened is listed in `skipped`, not an error. `Ok(None)` when the key exists
/// in neither view.
pub fn read_key(hive: Hive, path: &str) -> io::Result<Option<RegistryKey>> {
    let mut found: Option<RegistryKey> = None;
    for view in [KEY_WOW64_64KEY, KEY_WOW64_32KEY] {
        let Some(key) = Key::open(hive.handle(), path, KEY_READ | view)? else {
            continue;
        };
        let merged = found.get_or_insert_with(|| RegistryKey {
            path: format!("{}\\{path}", hive.name()),
            ..RegistryKey::default()
        });
        add_missing(&mut merged.values, key.values()?);
        for name in key.subkeys()? {
            match Key::open(key.0, &name, KEY_READ | view).and_then(|sub| match sub {
                Some(sub) => sub.values(),
                None => Ok(Vec::new()),
            }) {
                Ok(values) => match merged
                    .subkeys
                    .iter_mut()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                {
                    Some((_, existing)) => add_missing(existing, values),
                    None => merged.subkeys.push((name, values)),
                },
                Err(e) => merged.skipped.push((name, e.to_string())),
            }
        }
    }
    Ok(found)
}

/// Adds the values whose names `to` does not have yet.
fn add_missing(to: &mut Vec<(String, RegistryValue)>, values: Vec<(String, RegistryValue)>) {
    for (name, value) in values {
        if !to.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            to.push((name, value));
        }
    }
}

/// One value of a key (64-bit view), `Ok(None)` when the key or the value is absent.
pub fn get_value(hive: Hive, path: &str, name: &str) -> io::Result<Option<RegistryValue>> {
    let Some(key) = Key::open(hive.handle(), path, KEY_READ | KEY_WOW64_64KEY)? else {
        return Ok(None);
    };
    Ok(key
        .values()?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v))
}

/// Writes a REG_SZ value, creating the key when missing.
pub fn set_text(hive: Hive, path: &str, name: &str, value: &str) -> io::Result<()> {
    let key = Key::create(hive, path)?;
    let name = wide(name);
    let data: Vec<u8> = wide(value).iter().flat_map(|u| u.to_le_bytes()).collect();
    // SAFETY: `name` is NUL-terminated; `data` holds `data.len()` bytes.
    let rc = unsafe {
        RegSetValueExW(
            key.0,
            name.as_ptr(),
            0,
            REG_SZ,
            data.as_ptr(),
            data.len() as u32,
        )
    };
    match rc {
        ERROR_SUCCESS => Ok(()),
        rc => Err(os_error(rc)),
    }
}

/// Deletes a value; `Ok(false)` when it (or its key) was not there.
pub fn delete_value(hive: Hive, path: &str, name: &str) -> io::Result<bool> {
    let Some(key) = Key::open(hive.handle(), path, KEY_SET_VALUE | KEY_WOW64_64KEY)? else {
        return Ok(false);
    };
    let name = wide(name);
    // SAFETY: `name` is NUL-terminated and outlives the call.
    match unsafe { RegDeleteValueW(key.0, name.as_ptr()) } {
        ERROR_SUCCESS => Ok(true),
        ERROR_FILE_NOT_FOUND => Ok(false),
        rc => Err(os_error(rc)),
    }
}

/// Deletes a key with its values and subkeys; `Ok(false)` when it was not there.
pub fn delete_tree(hive: Hive, path: &str) -> io::Result<bool> {
    let path = wide(path);
    // SAFETY: `path` is NUL-terminated and outlives the call; the hive is predefined.
    match unsafe { RegDeleteTreeW(hive.handle(), path.as_ptr()) } {
        ERROR_SUCCESS => Ok(true),
        ERROR_FILE_NOT_FOUND => Ok(false),
        rc => Err(os_error(rc)),
    }
}

/// The hidden window's procedure: logoff and shutdown go to [`super::stop`] (as the
/// console's codes 5 and 6), and the window returns from `WM_ENDSESSION`, after which
/// Windows may end the process, only once the server has finished (bounded).
unsafe extern "system" fn session_window(
    hwnd: HWND,
    msg: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    match msg {
        // Yes, the session may end: the server stops when it does.
        WM_QUERYENDSESSION => 1,
        WM_ENDSESSION => {
            if let Some(event) =
                StopEvent::from_end_session(wparam != 0, lparam as u32 & ENDSESSION_LOGOFF != 0)
            {
                super::stop::on_session_end(event);
            }
            0
        }
        // `bapiws stop` (stop_servers): the server stops; the window stays until the
        // process ends.
        WM_CLOSE => {
            super::stop::on_stop_request();
            0
        }
        // SAFETY: the default procedure, with the arguments Windows passed.
        _ => unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) },
    }
}

/// The class of every server's hidden window (how `bapiws stop` finds them).
const SESSION_WINDOW_CLASS: &str = "bapiws-session-end";

/// The most servers [`stop_servers`] stops at once.
const MAX_SERVERS: usize = 32;

/// `bapiws stop`: asks every bapiws server of this session (the windows of its desktop)
/// to stop, through its hidden window, and waits for them to go, at most `wait`.
/// Returns how many were asked and how many are still running.
pub fn stop_servers(wait: std::time::Duration) -> (usize, usize) {
    let class = wide(SESSION_WINDOW_CLASS);
    let mut found: Vec<HWND> = Vec::new();
    let mut after: HWND = std::ptr::null_mut();
    while found.len() < MAX_SERVERS {
        // SAFETY: a NUL-terminated class name that outlives the call; `after` is null or a
        // window this loop found.
        let hwnd = unsafe {
            FindWindowExW(
                std::ptr::null_mut(),
                after,
                class.as_ptr(),
                std::ptr::null(),
            )
        };
        if hwnd.is_null() {
            break;
        }
        found.push(hwnd);
        after = hwnd;
    }
    for &hwnd in &found {
        // SAFETY: posting a message to a window handle is safe even if it has gone since.
        unsafe { PostMessageW(hwnd, WM_CLOSE, 0, 0) };
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        // SAFETY: IsWindow accepts any handle value.
        let running = found
            .iter()
            .filter(|&&h| unsafe { IsWindow(h) } != 0)
            .count();
        if running == 0 || std::time::Instant::now() >= deadline {
            return (found.len(), running);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The hidden window, once created (for tests, which send it messages).
static SESSION_WINDOW: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Creates, once, a hidden top-level window on a thread of its own, whose only work is to
/// hear the end of the session. Windows sends a program that has user32 loaded (bapiws
/// does, through shell32 for the known folders) no console event at logoff or shutdown,
/// only the window messages `WM_QUERYENDSESSION` and `WM_ENDSESSION` (a message-only
/// window would not get them). Whether the window exists.
pub fn start_session_window() -> bool {
    if SESSION_WINDOW.get().is_some() {
        return true;
    }
    let (tx, rx) = std::sync::mpsc::channel::<Option<usize>>();
    let spawned = std::thread::Builder::new()
        .name("bapiws-session".into())
        .spawn(move || {
            let class = wide(SESSION_WINDOW_CLASS);
            // SAFETY: plain Win32 calls with NUL-terminated names that outlive them; the
            // class names a procedure that lives as long as the process.
            unsafe {
                let instance = GetModuleHandleW(std::ptr::null());
                let wc = WNDCLASSW {
                    lpfnWndProc: Some(session_window),
                    hInstance: instance,
                    lpszClassName: class.as_ptr(),
                    ..Default::default()
                };
                // 0 also when the class exists already; CreateWindowExW then tells.
                RegisterClassW(&wc);
                let hwnd = CreateWindowExW(
                    0,
                    class.as_ptr(),
                    class.as_ptr(),
                    WS_OVERLAPPED,
                    0,
                    0,
                    0,
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    instance,
                    std::ptr::null(),
                );
                if hwnd.is_null() {
                    let _ = tx.send(None);
                    return;
                }
                let _ = tx.send(Some(hwnd as usize));
                let mut msg: MSG = std::mem::zeroed();
                while GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) > 0 {
                    TranslateMessage(&msg);
                    DispatchMessageW(&msg);
                }
            }
        });
    if spawned.is_err() {
        return false;
    }
    match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(Some(hwnd)) => {
            let _ = SESSION_WINDOW.set(hwnd);
            true
        }
        _ => false,
    }
}

/// The console control handler: each code goes to [`super::stop`].
unsafe extern "system" fn console_handler(code: u32) -> windows_sys::core::BOOL {
    i32::from(super::stop::on_console_code(code))
}

/// Installs the console control handler once; whether it is installed.
pub fn install_console_handler() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: the handler is a plain function that lives as long as the process.
        unsafe { SetConsoleCtrlHandler(Some(console_handler), 1) != 0 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::stop::{StopEvent, StopSignals, finished};
    use std::time::Duration;

    /// The installed handlers as Windows calls them: a logoff through the hidden window
    /// (`WM_ENDSESSION`, which Windows sends instead of CTRL_LOGOFF_EVENT to a program
    /// with user32 loaded) completes the server's stop event, and the window returns only
    /// once the server says it has finished; then a console close (on a thread of its own,
    /// as Windows calls it) returns at once, the server having finished.
    #[test]
    fn the_installed_handlers_pass_the_end_of_the_session_on_and_wait() {
        use windows_sys::Win32::UI::WindowsAndMessaging::SendMessageW;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Installs the console handler and creates the window.
            let mut signals = StopSignals::listen();
            let event = tokio::spawn(async move { signals.next().await });
            let start = std::time::Instant::now();
            while SESSION_WINDOW.get().is_none() && start.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let hwnd = *SESSION_WINDOW.get().expect("the hidden window was created");
            let window = std::thread::spawn(move || {
                // SAFETY: a message to our own window, with plain integer arguments.
                unsafe { SendMessageW(hwnd as HWND, WM_ENDSESSION, 1, ENDSESSION_LOGOFF as LPARAM) }
            });
            let got = tokio::time::timeout(Duration::from_secs(10), event)
                .await
                .expect("the stop event came")
                .expect("join");
            assert_eq!(got, StopEvent::Logoff);
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                !window.is_finished(),
                "WM_ENDSESSION returned before the server finished"
            );
            finished();
            assert_eq!(window.join().expect("window"), 0);
            let handler = std::thread::spawn(|| {
                // SAFETY: the handler is an ordinary function; Windows would call it the
                // same way, on a new thread.
                unsafe { console_handler(2) }
            });
            assert_eq!(handler.join().expect("handler"), 1);
        });
    }

    #[test]
    fn registry_values_are_written_read_and_deleted() {
        let path = r"Software\bapiws-test";
        let name = format!("value-{}", std::process::id());
        set_text(
            Hive::CurrentUser,
            path,
            &name,
            "\"C:\\x y\\bapiws.exe\" serve",
        )
        .expect("set");
        assert_eq!(
            get_value(Hive::CurrentUser, path, &name).expect("get"),
            Some(RegistryValue::Text("\"C:\\x y\\bapiws.exe\" serve".into()))
        );
        let key = read_key(Hive::CurrentUser, path)
            .expect("read")
            .expect("key exists");
        assert!(
            key.path.starts_with(r"HKCU\Software\bapiws-test"),
            "{}",
            key.path
        );
        assert!(key.values.iter().any(|(n, _)| *n == name));
        assert!(delete_value(Hive::CurrentUser, path, &name).expect("delete"));
        assert!(!delete_value(Hive::CurrentUser, path, &name).expect("delete again"));
        assert_eq!(
            get_value(Hive::CurrentUser, path, &name).expect("get"),
            None
        );
        assert!(
            read_key(Hive::CurrentUser, r"Software\bapiws-no-such-key")
                .expect("read")
                .is_none()
        );
        // Leave no key behind.
        let key = wide(path);
        // SAFETY: `key` is NUL-terminated; the key was created by this test and is empty.
        unsafe {
            windows_sys::Win32::System::Registry::RegDeleteKeyW(HKEY_CURRENT_USER, key.as_ptr());
        }
        assert!(read_key(Hive::CurrentUser, path).expect("read").is_none());
    }

    #[test]
    fn values_of_every_type_are_decoded() {
        let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        assert_eq!(
            decode(REG_SZ, &utf16("9898\0")),
            RegistryValue::Text("9898".into())
        );
        assert_eq!(
            decode(REG_DWORD, &9898u32.to_le_bytes()),
            RegistryValue::Number(9898)
        );
        assert_eq!(
            decode(REG_QWORD, &7u64.to_le_bytes()),
            RegistryValue::Number(7)
        );
        assert_eq!(
            decode(REG_MULTI_SZ, &utf16("a\0b\0\0")),
            RegistryValue::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(decode(3, &[1, 2]), RegistryValue::Unsupported(3));
        assert_eq!(
            decode(REG_DWORD, &[1]),
            RegistryValue::Unsupported(REG_DWORD)
        );
    }
}
