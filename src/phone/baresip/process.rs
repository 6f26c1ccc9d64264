//! Managed mode: the baresip configuration generated from bapiws's settings, and the
//! baresip child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::BaresipSettings;

/// The `config` file's text.
pub fn config_text(s: &BaresipSettings) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut set = |k: &str, v: &str| lines.push(format!("{k}\t\t{v}"));
    if let Some(listen) = s.sip_listen {
        set("sip_listen", &listen.to_string());
    }
    set("call_local_timeout", "120");
    set("call_max_calls", "4");
    set("audio_player", &s.audio_player);
    set("audio_source", &s.audio_source);
    set("audio_alert", &s.audio_player);
    if driver(&s.audio_source) == "ausine" {
        // ausine only produces 48 kHz stereo; without these the callee's answer fails.
        set("ausrc_srate", "48000");
        set("ausrc_channels", "2");
    }
    if let Some((first, last)) = s.rtp_ports {
        set("rtp_ports", &format!("{first}-{last}"));
    }
    if let Some(ifname) = &s.net_interface {
        set("net_interface", ifname);
    }
    if let Some(dns) = s.dns_server {
        set("dns_server", &dns.to_string());
    }
    if let Some(path) = &s.module_path {
        set("module_path", &path.display().to_string());
    }
    set("module", "g711.so");
    let mut drivers = vec![driver(&s.audio_source), driver(&s.audio_player)];
    drivers.dedup();
    for d in drivers {
        set("module", &format!("{d}.so"));
    }
    set("module_tmp", "account.so");
    set("module_app", "menu.so");
    set("module_app", "ctrl_tcp.so");
    set("ctrl_tcp_listen", &s.ctrl_address.to_string());
    set("statmode_default", "off");
    set("menu_bell", "no");
    set("ringback_disabled", "yes");
    lines.join("\n") + "\n"
}

/// The account line (baresip's `accounts` syntax): one account, answered by hand
/// (Answer). It holds the SIP password, so it never goes to disk or to the log: managed
/// mode hands it to baresip with `uanew` over the control connection.
pub fn account_line(s: &BaresipSettings) -> String {
    let mut uri = s.account.clone();
    if s.transport != "udp" {
        uri.push_str(";transport=");
        uri.push_str(&s.transport);
    }
    let mut line = format!("<{uri}>");
    if let Some(user) = &s.auth_user {
        line.push_str(&format!(";auth_user={user}"));
    }
    if let Some(pass) = &s.auth_password {
        line.push_str(&format!(";auth_pass={}", pass.expose()));
    }
    if let Some(proxy) = &s.outbound_proxy {
        line.push_str(&format!(";outbound=\"{proxy}\""));
    }
    let regint = if s.register {
        s.register_interval.as_secs()
    } else {
        0
    };
    line.push_str(&format!(";regint={regint}"));
    line.push_str(";answermode=manual;audio_codecs=PCMU,PCMA");
    line
}

/// The audio driver of a device setting (`alsa,default` → `alsa`).
fn driver(device: &str) -> &str {
    device.split(',').next().unwrap_or(device).trim()
}

/// Writes the configuration into `dir`, readable by this user only, with an empty
/// `accounts` file: the account (and its password) is given to baresip over the control
/// connection ([`account_line`]), so that no password is left on disk, even when bapiws is
/// killed.
pub fn write_config(dir: &Path, s: &BaresipSettings) -> std::io::Result<()> {
    create_private_dir(dir)?;
    write_private(&dir.join("config"), &config_text(s))?;
    write_private(&dir.join("accounts"), "")
}

/// Removes the configuration folders that managed backends of bapiws processes that no
/// longer run left behind (killed before they could clean up). Only folders of this
/// user's that match the name pattern are touched.
#[cfg(target_os = "linux")]
pub fn remove_stale_dirs() {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("bapiws-baresip-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let mine = entry
            .path()
            .symlink_metadata()
            .is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !alive && mine {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(folder = %entry.path().display(), "removed a stale baresip folder")
                }
                Err(e) => {
                    tracing::warn!(folder = %entry.path().display(), error = %e, "cannot remove a stale baresip folder")
                }
            }
        }
    }
}

/// Removes stale configuration folders (Linux only, where dead processes can be told).
#[cfg(not(target_os = "linux"))]
pub fn remove_stale_dirs() {}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// The private folder of one managed backend's configuration.
pub fn config_dir(instance: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bapiws-baresip-{}-{instance}", std::process::id()))
}

/// Starts `baresip -f DIR`; its output goes to the log at debug level. The child is
/// killed when dropped and, on Linux, also when this process dies without cleaning up.
pub fn start(binary: &Path, dir: &Path) -> std::io::Result<Child> {
    let mut command = Command::new(binary);
    command
        .arg("-f")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut command);
    let mut child = command.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(BufReader::new(out)));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(BufReader::new(err)));
    }
    Ok(child)
}

/// Asks the kernel to stop the child when its parent dies (even by SIGKILL), so a
/// crashed server never leaves a phone holding the SIP port.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl with PR_SET_PDEATHSIG is async-signal-safe and touches no memory of
    // the parent; it is the only call made between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

async fn forward<R: tokio::io::AsyncRead + Unpin>(reader: BufReader<R>) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "baresip", "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files() {
        let s = BaresipSettings {
            account: "sip:1001@pbx.example.com".into(),
            auth_user: Some("1001".into()),
            auth_password: Some(crate::settings::Secret::new("secret")),
            register: true,
            transport: "tcp".into(),
            audio_source: "ausine,440".into(),
            audio_player: "aubridge,nil".into(),
            dns_server: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 53))),
            ..BaresipSettings::default()
        };
        assert_eq!(
            account_line(&s),
            "<sip:1001@pbx.example.com;transport=tcp>;auth_user=1001;auth_pass=secret;regint=300;answermode=manual;audio_codecs=PCMU,PCMA"
        );
        let config = config_text(&s);
        for line in [
            "module_app\t\tctrl_tcp.so",
            "module_app\t\tmenu.so",
            "module\t\tausine.so",
            "module\t\taubridge.so",
            "ausrc_srate\t\t48000",
            "dns_server\t\t127.0.0.1:53",
            "ctrl_tcp_listen\t\t127.0.0.1:4444",
        ] {
            assert!(
                config.lines().any(|l| l == line),
                "missing {line:?} in\n{config}"
            );
        }
    }
}
