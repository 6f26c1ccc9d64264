//! `bapiws autostart enable|disable|status`: start the server when this user logs in.
//!
//! On Windows the per-user Run key, as installers do: value `bapiws` of
//! `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, data `"<folder>\bapiwsw.exe" serve`
//! (the windowless build beside this `bapiws.exe`; this `bapiws.exe` where there is none)
//! (the MSI adds a machine-wide value under HKLM, which `status` reports too). Elsewhere
//! an XDG autostart entry, `bapiws.desktop` in the user's `autostart` folder
//! (`~/.config/autostart/`), which desktop sessions start at login.

use std::io;
use std::path::{Path, PathBuf};

/// What `status` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Where the per-user entry lives (a registry value or a file).
    pub location: String,
    /// The command the per-user entry starts, when there is one.
    pub command: Option<String>,
    /// Whether that command starts this very program.
    pub starts_this_program: bool,
    /// A machine-wide entry (the MSI's, a package's), when there is one.
    pub machine_wide: Option<String>,
}

/// The command that starts this program's server.
fn this_command() -> io::Result<(PathBuf, String)> {
    let exe = login_program(&std::env::current_exe()?, cfg!(windows), |p| p.is_file());
    let command = command_for(&exe);
    Ok((exe, command))
}

/// The windowless build beside `bapiws.exe` on Windows (src/bin/bapiwsw.rs).
pub const WINDOWLESS_EXE: &str = "bapiwsw.exe";

/// The program to start at login for `exe`: on Windows (`windows`) the windowless
/// [`WINDOWLESS_EXE`] in the same folder when it is there (`exists`), so that no console
/// window opens, and stays, at every login; else `exe` itself.
pub fn login_program(exe: &Path, windows: bool, exists: impl Fn(&Path) -> bool) -> PathBuf {
    if windows {
        let windowless = exe.with_file_name(WINDOWLESS_EXE);
        if exists(&windowless) {
            return windowless;
        }
    }
    exe.to_path_buf()
}

/// The Run value's data (Windows) or the desktop entry's `Exec` (elsewhere) for `exe`.
pub fn command_for(exe: &Path) -> String {
    let exe = exe.display().to_string();
    if cfg!(windows) {
        format!("\"{exe}\" serve")
    } else {
        format!("{} serve", desktop_quoted(&exe))
    }
}

/// A program path quoted for a desktop entry's `Exec`, as the desktop entry spec says:
/// in double quotes, with `"`, `` ` ``, `$` and `\` escaped inside them.
pub fn desktop_quoted(exe: &str) -> String {
    let mut quoted = String::from("\"");
    for c in exe.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

#[cfg(windows)]
mod imp {
    use super::*;
    use crate::platform::RegistryValue;
    use crate::platform::windows::{Hive, delete_value, get_value, set_text};

    const RUN: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
    const NAME: &str = "bapiws";

    pub fn location() -> String {
        format!(r"HKCU\{RUN}, value {NAME}")
    }

    pub fn enable(command: &str) -> io::Result<()> {
        set_text(Hive::CurrentUser, RUN, NAME, command)
    }

    pub fn disable() -> io::Result<bool> {
        delete_value(Hive::CurrentUser, RUN, NAME)
    }

    fn text(v: Option<RegistryValue>) -> Option<String> {
        match v {
            Some(RegistryValue::Text(t)) => Some(t),
            Some(other) => Some(format!("{other:?}")),
            None => None,
        }
    }

    pub fn current() -> io::Result<Option<String>> {
        Ok(text(get_value(Hive::CurrentUser, RUN, NAME)?))
    }

    pub fn machine_wide() -> Option<String> {
        text(get_value(Hive::LocalMachine, RUN, NAME).ok().flatten())
            .map(|c| format!(r"HKLM\{RUN}, value {NAME}: {c}"))
    }
}

#[cfg(not(windows))]
mod imp {
    use super::*;

    const SYSTEM_WIDE: &str = "/etc/xdg/autostart/bapiws.desktop";

    fn file() -> io::Result<PathBuf> {
        directories::BaseDirs::new()
            .map(|d| d.config_dir().join("autostart").join("bapiws.desktop"))
            .ok_or_else(|| io::Error::other("no home folder to keep the autostart entry in"))
    }

    pub fn location() -> String {
        file().map_or_else(|e| e.to_string(), |p| p.display().to_string())
    }

    pub fn enable(command: &str) -> io::Result<()> {
        let path = file()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let entry = format!(
            "[Desktop Entry]\nType=Application\nName=bapiws\nComment=Lets web pages drive this workstation's phone (WebSocket JSON-RPC on localhost)\nExec={command}\nTerminal=false\nNoDisplay=true\nX-GNOME-Autostart-enabled=true\n"
        );
        // Written whole, then renamed: a session starting meanwhile never reads half.
        let partial = path.with_extension("desktop.partial");
        std::fs::write(&partial, entry)?;
        std::fs::rename(&partial, &path)
    }

    pub fn disable() -> io::Result<bool> {
        match std::fs::remove_file(file()?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn current() -> io::Result<Option<String>> {
        match std::fs::read_to_string(file()?) {
            Ok(text) => Ok(text
                .lines()
                .find_map(|l| l.strip_prefix("Exec="))
                .map(str::to_owned)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn machine_wide() -> Option<String> {
        Path::new(SYSTEM_WIDE)
            .is_file()
            .then(|| SYSTEM_WIDE.to_owned())
    }
}

/// Makes this program's server start at login; returns where the entry was written and
/// the command it starts. Refused while a machine-wide entry (the MSI's, an
/// administrator's) already starts bapiws at login: a second server would only fail to
/// listen on the same port.
pub fn enable() -> io::Result<(String, String)> {
    if let Some(machine_wide) = imp::machine_wide() {
        return Err(io::Error::other(format!(
            "bapiws already starts at login for every user ({machine_wide}); a second entry would start a second server, which cannot listen on the same port"
        )));
    }
    let (_, command) = this_command()?;
    imp::enable(&command)?;
    Ok((imp::location(), command))
}

/// Removes the per-user entry; whether there was one.
pub fn disable() -> io::Result<bool> {
    imp::disable()
}

/// Whether the server starts at login, and how.
pub fn status() -> io::Result<Status> {
    let command = imp::current()?;
    let (_, ours) = this_command()?;
    Ok(Status {
        location: imp::location(),
        starts_this_program: command.as_deref() == Some(ours.as_str()),
        command,
        machine_wide: imp::machine_wide(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_starts_the_windowless_build_when_it_is_beside_the_program() {
        let exe = Path::new("C:/Program Files/bapiws/bapiws.exe");
        let w = Path::new("C:/Program Files/bapiws/bapiwsw.exe");
        assert_eq!(login_program(exe, true, |p| p == w), w);
        assert_eq!(login_program(exe, true, |_| false), exe);
        assert_eq!(login_program(exe, false, |_| true), exe);
    }

    #[test]
    fn the_command_quotes_the_path() {
        let c = command_for(Path::new("/opt/my apps/bapiws"));
        if cfg!(windows) {
            assert_eq!(c, "\"/opt/my apps/bapiws\" serve");
        } else {
            assert_eq!(c, "\"/opt/my apps/bapiws\" serve");
            assert_eq!(
                command_for(Path::new("/x/$HOME\"/b")),
                "\"/x/\\$HOME\\\"/b\" serve"
            );
        }
    }
}
