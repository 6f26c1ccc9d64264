//! `bapiws handler enable|disable|status`: this user's handler of `tel:`, `callto:`,
//! `sip:` and `sips:` links.
//!
//! Linux (and the other XDG desktops): the desktop entry [`ENTRY`] (`MimeType=
//! x-scheme-handler/tel;…`, `Exec=<bapiws> dial -- %u`) — the Debian package's in
//! `/usr/share/applications/` when it runs this program, else one written to the user's
//! `~/.local/share/applications/` (`$XDG_DATA_HOME`) — made the default with `xdg-mime
//! default`; `disable` takes it out of the user's `mimeapps.list` again and removes the
//! per-user entry.
//!
//! Windows: under `HKCU\Software\Classes`, each scheme's URL protocol key (`tel`, with
//! `URL Protocol` and `shell\open\command` = `"<bapiws.exe>" dial -- "%1"`) and the
//! ProgID [`PROG_ID`], and the "Default apps" capabilities (`HKCU\Software\bapiws\
//! Capabilities\URLAssociations`, listed in `HKCU\Software\RegisteredApplications`);
//! `disable` removes them (a scheme's key only while its command is bapiws's). With
//! `--machine` the same under HKLM, for every user, as the MSI writes them (Wine 8's
//! `start` reads only those: its HKEY_CLASSES_ROOT has no per-user part).

use std::io;
use std::path::Path;

use super::uri::Scheme;

/// The desktop entry's file name (Linux).
pub const ENTRY: &str = "bapiws-dial.desktop";
/// The ProgID the Windows capabilities name.
pub const PROG_ID: &str = "bapiws.url";

/// What `status` found, one line per scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Each scheme and its handler (the desktop entry, the registry command), if any.
    pub schemes: Vec<(&'static str, Option<String>)>,
    /// Whether each of those is this program.
    pub ours: Vec<bool>,
    /// Where this program's registration lives, if it has one.
    pub entry: Option<String>,
}

/// The command a link runs (Windows: the `shell\open\command`; elsewhere the desktop
/// entry's `Exec`).
pub fn command_for(exe: &Path) -> String {
    let exe = exe.display().to_string();
    if cfg!(windows) {
        format!("\"{exe}\" dial -- \"%1\"")
    } else {
        // Unquoted when it can be (xdg-open without a desktop reads the first word as
        // the program, quotes and all); else quoted as the desktop entry spec says.
        // A literal % is %% either way.
        let plain = exe
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c));
        let program = if plain {
            exe
        } else {
            crate::autostart::desktop_quoted(&exe)
        };
        format!("{} dial -- %u", program.replace('%', "%%"))
    }
}

/// The desktop entry for `exe` (Linux; the Debian package ships this text for
/// `/usr/bin/bapiws`).
pub fn desktop_entry(exe: &Path) -> String {
    let types: String = Scheme::ALL
        .iter()
        .map(|s| format!("x-scheme-handler/{s};"))
        .collect();
    format!(
        "[Desktop Entry]\nType=Application\nName=bapiws\nGenericName=Phone call\nComment=Calls the number of a tel:, callto: or sip: link on this workstation's phone, through bapiws\nExec={}\nTerminal=false\nNoDisplay=true\nMimeType={types}\nCategories=Network;Telephony;\n",
        command_for(exe)
    )
}

/// Whose handler: this user's, or (Windows, `--machine`) every user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This user's (HKCU; the XDG user folders).
    User,
    /// Every user's, as the MSI writes it (HKLM; Windows only, as an administrator).
    Machine,
}

/// Makes this program the handler; says what was done.
pub fn enable(scope: Scope) -> io::Result<String> {
    let exe = std::env::current_exe()?;
    imp::enable(&exe, scope)
}

/// Stops this program being the handler; says what was done.
pub fn disable(scope: Scope) -> io::Result<String> {
    imp::disable(scope)
}

/// Which program handles each scheme.
pub fn status() -> io::Result<Status> {
    let exe = std::env::current_exe()?;
    imp::status(&exe)
}

#[cfg(not(windows))]
mod imp {
    use super::*;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// How long `xdg-mime` may take.
    const XDG_MIME_TIMEOUT: Duration = Duration::from_secs(20);

    fn dirs() -> io::Result<directories::BaseDirs> {
        directories::BaseDirs::new()
            .ok_or_else(|| io::Error::other("no home folder to keep the handler's entry in"))
    }

    /// The per-user entry: `$XDG_DATA_HOME/applications/bapiws-dial.desktop`.
    fn user_entry() -> io::Result<PathBuf> {
        Ok(dirs()?.data_dir().join("applications").join(ENTRY))
    }

    /// The system's data folders (`$XDG_DATA_DIRS`, by default /usr/local/share and
    /// /usr/share).
    fn system_dirs() -> Vec<PathBuf> {
        let dirs: Vec<PathBuf> = std::env::var_os("XDG_DATA_DIRS")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| p.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        if dirs.is_empty() {
            vec!["/usr/local/share".into(), "/usr/share".into()]
        } else {
            dirs
        }
    }

    fn exec_of(path: &Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Exec="))
            .map(str::to_owned)
    }

    /// The system's entry (the package's), when it runs `exe`.
    fn system_entry(exe: &Path) -> Option<PathBuf> {
        let ours = command_for(exe);
        system_dirs()
            .into_iter()
            .map(|d| d.join("applications").join(ENTRY))
            .find(|p| exec_of(p).as_deref() == Some(ours.as_str()))
    }

    /// Runs xdg-mime with `args`, bounded; its standard output.
    fn xdg_mime(args: &[&str]) -> io::Result<String> {
        let mut child = Command::new("xdg-mime")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    io::Error::other(
                        "xdg-mime is not installed (it is in xdg-utils: apt-get install xdg-utils)",
                    )
                } else {
                    e
                }
            })?;
        let mut stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut out = String::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(64 * 1024).read_to_string(&mut out);
            }
            out
        });
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() > XDG_MIME_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "xdg-mime {} did not finish within {} s",
                    args.join(" "),
                    XDG_MIME_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = reader.join().unwrap_or_default();
        if !status.success() {
            return Err(io::Error::other(format!(
                "xdg-mime {} failed ({status})",
                args.join(" ")
            )));
        }
        Ok(out)
    }

    fn mime_type(scheme: &str) -> String {
        format!("x-scheme-handler/{scheme}")
    }

    /// On Linux every user's default is a line of `/etc/xdg/mimeapps.list`.
    fn user_only(scope: Scope) -> io::Result<()> {
        match scope {
            Scope::User => Ok(()),
            Scope::Machine => Err(io::Error::other(
                "--machine is for Windows; here an administrator names bapiws-dial.desktop in /etc/xdg/mimeapps.list (see docs/deployment.md, Click-to-call)",
            )),
        }
    }

    pub fn enable(exe: &Path, scope: Scope) -> io::Result<String> {
        user_only(scope)?;
        let user = user_entry()?;
        let entry = match system_entry(exe) {
            Some(system) if !user.exists() => system,
            _ => {
                if let Some(dir) = user.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                // Written whole, then renamed: a desktop reading it meanwhile never
                // reads half.
                let partial = user.with_extension("desktop.partial");
                std::fs::write(&partial, desktop_entry(exe))?;
                std::fs::rename(&partial, &user)?;
                user
            }
        };
        let types: Vec<String> = Scheme::ALL.iter().map(|s| mime_type(s)).collect();
        let mut args = vec!["default", ENTRY];
        args.extend(types.iter().map(String::as_str));
        xdg_mime(&args)?;
        let now = xdg_mime(&["query", "default", &types[0]])?;
        if now.trim() != ENTRY {
            return Err(io::Error::other(format!(
                "xdg-mime set {ENTRY} as the default, but reports {:?} for tel: links (the desktop may keep its own choice: pick bapiws in its settings)",
                now.trim()
            )));
        }
        Ok(format!(
            "bapiws now opens tel:, callto:, sip: and sips: links ({}; set with xdg-mime)",
            entry.display()
        ))
    }

    /// Takes [`ENTRY`] out of `text`'s (a `mimeapps.list`) lines for the schemes.
    pub fn without_entry(text: &str) -> (String, bool) {
        let keys: Vec<String> = Scheme::ALL.iter().map(|s| mime_type(s)).collect();
        let mut changed = false;
        let mut out = String::with_capacity(text.len());
        let mut in_section = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                in_section =
                    trimmed == "[Default Applications]" || trimmed == "[Added Associations]";
            } else if in_section
                && let Some((key, value)) = trimmed.split_once('=')
                && keys.iter().any(|k| k == key.trim())
            {
                let kept: Vec<&str> = value
                    .split(';')
                    .filter(|v| !v.trim().is_empty() && v.trim() != ENTRY)
                    .collect();
                if kept.len() != value.split(';').filter(|v| !v.trim().is_empty()).count() {
                    changed = true;
                    if !kept.is_empty() {
                        out.push_str(&format!("{}={};\n", key.trim(), kept.join(";")));
                    }
                    continue;
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        (out, changed)
    }

    pub fn disable(scope: Scope) -> io::Result<String> {
        user_only(scope)?;
        let list = dirs()?.config_dir().join("mimeapps.list");
        let mut said = Vec::new();
        match std::fs::read_to_string(&list) {
            Ok(text) => {
                let (new, changed) = without_entry(&text);
                if changed {
                    let partial = list.with_extension("list.partial");
                    std::fs::write(&partial, new)?;
                    std::fs::rename(&partial, &list)?;
                    said.push(format!("{ENTRY} taken out of {}", list.display()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let user = user_entry()?;
        match std::fs::remove_file(&user) {
            Ok(()) => said.push(format!("{} removed", user.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if said.is_empty() {
            Ok("bapiws was not this user's handler of phone links; nothing to undo".to_owned())
        } else {
            Ok(format!(
                "bapiws no longer opens phone links: {}",
                said.join("; ")
            ))
        }
    }

    pub fn status(exe: &Path) -> io::Result<Status> {
        let user = user_entry()?;
        let entry = if user.exists() {
            Some(user)
        } else {
            system_entry(exe)
        };
        let mut schemes = Vec::new();
        let mut ours = Vec::new();
        for s in Scheme::ALL {
            let handler = xdg_mime(&["query", "default", &mime_type(s)])?;
            let handler = handler.trim().to_owned();
            ours.push(handler == ENTRY && entry.is_some());
            schemes.push((s, (!handler.is_empty()).then_some(handler)));
        }
        Ok(Status {
            schemes,
            ours,
            entry: entry.map(|p| p.display().to_string()),
        })
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use crate::platform::RegistryValue;
    use crate::platform::windows::{Hive, delete_tree, delete_value, get_value, set_text};

    const CLASSES: &str = r"Software\Classes";
    const CAPABILITIES: &str = r"Software\bapiws\Capabilities";
    const REGISTERED: &str = r"Software\RegisteredApplications";

    fn hive(scope: Scope) -> Hive {
        match scope {
            Scope::User => Hive::CurrentUser,
            Scope::Machine => Hive::LocalMachine,
        }
    }

    fn command_of(hive: Hive, key: &str) -> Option<String> {
        match get_value(hive, &format!(r"{key}\shell\open\command"), "") {
            Ok(Some(RegistryValue::Text(t))) => Some(t),
            _ => None,
        }
    }

    /// Whether a command is a bapiws's (this one's or another copy's).
    fn is_bapiws(command: &str) -> bool {
        command.to_ascii_lowercase().contains("bapiws.exe\" dial")
    }

    fn write_command(
        hive: Hive,
        key: &str,
        description: &str,
        command: &str,
        exe: &Path,
    ) -> io::Result<()> {
        set_text(hive, key, "", description)?;
        set_text(hive, key, "URL Protocol", "")?;
        let icon = format!("\"{}\",0", exe.display());
        set_text(hive, &format!(r"{key}\DefaultIcon"), "", &icon)?;
        set_text(hive, &format!(r"{key}\shell\open\command"), "", command)
    }

    pub fn enable(exe: &Path, scope: Scope) -> io::Result<String> {
        let hive = hive(scope);
        let command = command_for(exe);
        let prog_id = format!(r"{CLASSES}\{PROG_ID}");
        write_command(hive, &prog_id, "bapiws phone link", &command, exe)?;
        for s in Scheme::ALL {
            let key = format!(r"{CLASSES}\{s}");
            write_command(hive, &key, &format!("URL:{s}"), &command, exe)?;
        }
        set_text(hive, CAPABILITIES, "ApplicationName", "bapiws")?;
        set_text(
            hive,
            CAPABILITIES,
            "ApplicationDescription",
            "Calls the number of a tel:, callto: or sip: link on this workstation's phone",
        )?;
        for s in Scheme::ALL {
            set_text(
                hive,
                &format!(r"{CAPABILITIES}\URLAssociations"),
                s,
                PROG_ID,
            )?;
        }
        set_text(hive, REGISTERED, "bapiws", CAPABILITIES)?;
        let who = match scope {
            Scope::User => "this user",
            Scope::Machine => "every user",
        };
        Ok(format!(
            r"bapiws now opens tel:, callto:, sip: and sips: links for {who} ({}\{CLASSES}\tel and the others: {command}); where Windows keeps another choice, pick bapiws in Settings > Apps > Default apps",
            hive.name()
        ))
    }

    pub fn disable(scope: Scope) -> io::Result<String> {
        let hive = hive(scope);
        let h = hive.name();
        let mut removed = Vec::new();
        for s in Scheme::ALL {
            let key = format!(r"{CLASSES}\{s}");
            if command_of(hive, &key).is_some_and(|c| is_bapiws(&c)) && delete_tree(hive, &key)? {
                removed.push(format!(r"{h}\{key}"));
            }
        }
        for key in [
            format!(r"{CLASSES}\{PROG_ID}"),
            r"Software\bapiws".to_owned(),
        ] {
            if delete_tree(hive, &key)? {
                removed.push(format!(r"{h}\{key}"));
            }
        }
        if delete_value(hive, REGISTERED, "bapiws")? {
            removed.push(format!(r"{h}\{REGISTERED}, value bapiws"));
        }
        if removed.is_empty() {
            Ok(format!(
                "bapiws was not the handler of phone links in {h}; nothing to undo"
            ))
        } else {
            Ok(format!(
                "bapiws no longer opens phone links: removed {}",
                removed.join(", ")
            ))
        }
    }

    pub fn status(exe: &Path) -> io::Result<Status> {
        let command = command_for(exe);
        let mut schemes = Vec::new();
        let mut ours = Vec::new();
        for s in Scheme::ALL {
            let key = format!(r"{CLASSES}\{s}");
            let found = command_of(Hive::CurrentUser, &key)
                .map(|c| (c, "HKCU"))
                .or_else(|| command_of(Hive::LocalMachine, &key).map(|c| (c, "HKLM")));
            ours.push(found.as_ref().is_some_and(|(c, _)| *c == command));
            schemes.push((s, found.map(|(c, hive)| format!(r"{hive}\{key}: {c}"))));
        }
        let prog_id = format!(r"{CLASSES}\{PROG_ID}");
        let entry = command_of(Hive::CurrentUser, &prog_id)
            .map(|_| format!(r"HKCU\{prog_id}"))
            .or_else(|| {
                command_of(Hive::LocalMachine, &prog_id).map(|_| format!(r"HKLM\{prog_id}"))
            });
        Ok(Status {
            schemes,
            ours,
            entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_dial_with_the_link_as_one_argument() {
        if cfg!(windows) {
            assert_eq!(
                command_for(Path::new(r"C:\Program Files\bapiws\bapiws.exe")),
                r#""C:\Program Files\bapiws\bapiws.exe" dial -- "%1""#
            );
        } else {
            assert_eq!(
                command_for(Path::new("/usr/bin/bapiws")),
                "/usr/bin/bapiws dial -- %u"
            );
            assert_eq!(
                command_for(Path::new("/opt/my apps/50%/$x/bapiws")),
                "\"/opt/my apps/50%%/\\$x/bapiws\" dial -- %u"
            );
        }
    }

    #[test]
    fn the_packaged_entry_is_the_one_enable_writes() {
        let packaged = include_str!("../../packaging/bapiws-dial.desktop");
        let packaged = packaged
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        if !cfg!(windows) {
            assert_eq!(packaged, desktop_entry(Path::new("/usr/bin/bapiws")));
        }
        assert!(packaged.contains(
            "MimeType=x-scheme-handler/tel;x-scheme-handler/callto;x-scheme-handler/sip;x-scheme-handler/sips;"
        ));
    }

    #[cfg(not(windows))]
    #[test]
    fn disable_takes_only_bapiws_out_of_mimeapps_list() {
        let before = "[Default Applications]\nx-scheme-handler/tel=bapiws-dial.desktop\nx-scheme-handler/sip=other.desktop;bapiws-dial.desktop;\ntext/html=bapiws-dial.desktop\n\n[Added Associations]\nx-scheme-handler/callto=bapiws-dial.desktop;\n[Other]\nx-scheme-handler/tel=bapiws-dial.desktop\n";
        let (after, changed) = imp::without_entry(before);
        assert!(changed);
        assert_eq!(
            after,
            "[Default Applications]\nx-scheme-handler/sip=other.desktop;\ntext/html=bapiws-dial.desktop\n\n[Added Associations]\n[Other]\nx-scheme-handler/tel=bapiws-dial.desktop\n"
        );
        assert_eq!(imp::without_entry(&after), (after.clone(), false));
    }
}
