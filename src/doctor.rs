//! `bapiws doctor`: checks this workstation's setup and prints each finding with its fix.
//!
//! It reads the same settings as `bapiws serve` (flags, `BAPIWS_*` variables, the file)
//! and checks, without starting a server: the configuration (with, for the built-in phone,
//! where its password comes from and whether the credential store holds it); the port on each listen
//! address (free, held by a running bapiws, which answers `GET /health` with name
//! `bapiws`, or held by something else); the log folder (a folder of this user that
//! others cannot write to, and writable; a missing one is created as `serve` would); the
//! baresip program, its modules and, with the ALSA driver on Linux, the sound cards; the
//! SIP registration as a running bapiws reports it in `/health`; and it prints what an
//! administrator needs to know about browsers. The only things it changes are a missing
//! log folder (created) and a probe file in the log folder (created and removed). It also
//! lists the sound devices the built-in phone (`sip`) can use.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, DEFAULT_PORT, ServeArgs, default_config_path};
use crate::logging;
use crate::phone::BackendKind;
use crate::phone::baresip::{BaresipSettings, Mode};
use crate::phone::sip::{PasswordFrom, SipSettings};
use crate::platform;

/// How long the doctor waits for a program on a port to answer `GET /health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// One finding's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Fine.
    Ok,
    /// Worth knowing, does not stop the server (no effect on the exit code).
    Warn,
    /// Wrong: the exit code is 1.
    Fail,
}

/// One finding.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The verdict.
    pub mark: Mark,
    /// What was checked and what was found.
    pub text: String,
    /// What to do about it.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(text: impl Into<String>) -> Finding {
        Finding {
            mark: Mark::Ok,
            text: text.into(),
            fix: None,
        }
    }
    fn warn(text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            mark: Mark::Warn,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            mark: Mark::Fail,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What the checks need from the configuration (the defaults when it is invalid).
struct Basis {
    port: u16,
    listen: Vec<IpAddr>,
    log_dir: PathBuf,
    origins: Vec<String>,
    /// The baresip settings and whether a backend of this configuration uses them.
    baresip: Option<(BaresipSettings, bool)>,
    /// The built-in phone's settings and whether a backend of this configuration uses them.
    sip: Option<(SipSettings, bool)>,
}

/// Runs every check, prints the findings on stdout, and returns whether nothing is wrong.
pub fn run(args: &ServeArgs) -> bool {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "bapiws doctor {}", env!("CARGO_PKG_VERSION"));
    let mut failed = false;
    let mut print = |section: &str, findings: Vec<Finding>| {
        let _ = writeln!(out, "\n{section}");
        for f in findings {
            failed |= f.mark == Mark::Fail;
            let mark = match f.mark {
                Mark::Ok => "✓",
                Mark::Warn => "!",
                Mark::Fail => "✗",
            };
            let _ = writeln!(out, "  {mark} {}", f.text);
            if let Some(fix) = f.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
    };
    let (config_findings, basis) = check_config(args);
    print("Configuration", config_findings);
    let (port_findings, health) = check_ports(&basis);
    print("Port", port_findings);
    print("Log folder", check_log_dir(&basis.log_dir));
    print("baresip (the real phone)", check_baresip(&basis));
    print("The built-in phone (sip)", check_sip(&basis));
    print("Sound devices (the built-in phone, sip)", check_audio());
    print("Running server", check_running(health.as_ref(), &basis));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nBrowsers (guidance for administrators; not checked)");
    for line in browser_guidance(&basis) {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "\n{}",
        if failed {
            "Something is wrong: see the ✗ lines and their fixes."
        } else {
            "Nothing is wrong."
        }
    );
    !failed
}

fn check_config(args: &ServeArgs) -> (Vec<Finding>, Basis) {
    let mut findings = Vec::new();
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None => default_config_path().filter(|p| p.is_file()),
    };
    match (&args.config, &path) {
        (None, None) => findings.push(Finding::ok(format!(
            "no configuration file: the defaults apply (the per-user file would be {}; an example with every key: docs/bapiws.example.toml, /usr/share/doc/bapiws/docs/bapiws.example.toml from the Debian package)",
            default_config_path().map_or_else(|| "unknown".into(), |p| p.display().to_string())
        ))),
        (_, Some(p)) if !p.is_file() => {}
        (_, Some(p)) => findings.push(Finding::ok(format!("configuration file {} found", p.display()))),
        _ => {}
    }
    // The credential store is asked below, by `sip_password`: whether an entry is there,
    // in words, rather than as the error that stops `serve`.
    match Config::load_without_store(args) {
        Ok(config) => {
            if let Some(key) = &config.registry {
                findings.push(Finding::ok(format!(
                    "registry {key} read (its values come after the flags and variables, before the file)"
                )));
            }
            for warning in &config.warnings {
                findings.push(Finding::warn(
                    warning.clone(),
                    "remove the value, or rename it to a setting's file key (docs/windows.md)",
                ));
            }
            findings.push(Finding::ok(if config.registry.is_some() {
                "the settings are valid (flags, BAPIWS_* variables, the registry and the file)"
            } else {
                "the settings are valid (flags, BAPIWS_* variables and the file)"
            }));
            if config
                .backends
                .instances
                .values()
                .any(|k| *k == BackendKind::Sip)
            {
                findings.push(sip_password(&config.backend_settings.sip));
            }
            let baresip = config.backend_settings.baresip.clone();
            let used = config
                .backends
                .instances
                .values()
                .any(|k| *k == BackendKind::Baresip);
            let basis = Basis {
                port: config.port,
                listen: config.listen.clone(),
                log_dir: config.log_dir.clone(),
                origins: config
                    .access
                    .origins
                    .to_string()
                    .split(", ")
                    .map(str::to_owned)
                    .collect(),
                baresip: Some((baresip, used)),
                sip: Some((
                    config.backend_settings.sip.clone(),
                    config
                        .backends
                        .instances
                        .values()
                        .any(|k| *k == BackendKind::Sip),
                )),
            };
            (findings, basis)
        }
        Err(e) => {
            let fix = match &e {
                crate::config::ConfigError::Setting { .. } => {
                    "correct the flag or BAPIWS_* variable named above (every setting: docs/configuration.md, bapiws serve --help)"
                }
                crate::config::ConfigError::Registry { .. } => {
                    "correct the registry value named above with regedit or `reg add` (every setting: docs/windows.md)"
                }
                _ => {
                    "correct the file (every key, its type and range: docs/configuration.md and the example file docs/bapiws.example.toml)"
                }
            };
            findings.push(Finding::fail(
                format!("{e}; the checks below use the defaults and the flags"),
                fix,
            ));
            let basis = Basis {
                port: args.port.unwrap_or(DEFAULT_PORT),
                listen: vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ],
                log_dir: args.log_dir.clone().unwrap_or_else(logging::default_dir),
                origins: vec!["*".into()],
                baresip: None,
                sip: None,
            };
            (findings, basis)
        }
    }
}

/// Where the built-in phone's password comes from and, for the credential store, whether
/// an entry is there (never the password itself).
fn sip_password(s: &SipSettings) -> Finding {
    use crate::platform::credentials::{self, SERVICE};
    let account = crate::client::for_terminal(&s.account);
    match &s.password_from {
        PasswordFrom::Unset => {
            Finding::ok("sip: no password is set (the phone answers no authentication challenge)")
        }
        PasswordFrom::Setting => Finding::ok(
            "sip: the password comes from the password setting (flag, variable or file key)",
        ),
        PasswordFrom::File(path) => Finding::ok(format!(
            "sip: the password comes from password_file {}",
            path.display()
        )),
        PasswordFrom::Keyring => {
            let store = credentials::store_name();
            let entry = format!("service {SERVICE}, user {account}");
            match credentials::is_stored(&s.account) {
                Ok(true) => Finding::ok(format!(
                    "sip: the password comes from {store} (password_store = \"keyring\"): an entry is stored ({entry})"
                )),
                Ok(false) => Finding::fail(
                    format!(
                        "sip: the password comes from {store} (password_store = \"keyring\"), but no entry is stored ({entry})"
                    ),
                    "run `bapiws sip set-password` with the settings of bapiws serve",
                ),
                Err(e) => Finding::fail(
                    format!(
                        "sip: the password comes from {store} (password_store = \"keyring\"), which cannot be used: {}",
                        crate::client::for_terminal(&e.to_string())
                    ),
                    credentials::store_fix(),
                ),
            }
        }
    }
}

/// Checks each listen address; returns the findings and the `/health` of a bapiws that
/// holds the port, if any.
fn check_ports(basis: &Basis) -> (Vec<Finding>, Option<Value>) {
    let mut findings = Vec::new();
    let mut health = None;
    if basis.port == 0 {
        findings.push(Finding::ok(
            "port 0: the server picks a free port at start (its start-up line names it)",
        ));
        return (findings, None);
    }
    let port = basis.port;
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    let choose = format!(
        "stop that program, or give bapiws another port: bapiws serve --port {other}, BAPIWS_PORT={other}, or port = {other} in the configuration file (and tell the web application)"
    );
    let mut missing = 0;
    for ip in &basis.listen {
        let addr = SocketAddr::new(*ip, port);
        match TcpListener::bind(addr) {
            Ok(listener) => {
                drop(listener);
                findings.push(Finding::ok(format!("{addr} is free")));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match get_health(addr) {
                Ok(h) if h.get("name").and_then(Value::as_str) == Some("bapiws") => {
                    let version = h.get("version").and_then(Value::as_str).unwrap_or("?");
                    findings.push(Finding::ok(format!(
                        "{addr} is held by a running bapiws {version} (it answered GET /health)"
                    )));
                    if health.is_none() {
                        health = Some(h);
                    }
                }
                Ok(_) => findings.push(Finding::fail(
                    format!("{addr} is held by another program (its /health is not bapiws's)"),
                    choose.clone(),
                )),
                Err(why) => findings.push(Finding::fail(
                    format!("{addr} is held by another program ({why})"),
                    choose.clone(),
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                missing += 1;
                findings.push(Finding::warn(
                    format!("{addr}: this machine has no such address ({e}); the server skips it while another address works"),
                    "nothing, unless every address is missing: then set listen (e.g. --listen 127.0.0.1)",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                findings.push(Finding::fail(
                    format!("{addr}: not allowed to listen there ({e})"),
                    format!("use a port above 1023: bapiws serve --port {DEFAULT_PORT}"),
                ))
            }
            Err(e) => findings.push(Finding::fail(
                format!("{addr}: cannot listen ({e})"),
                choose.clone(),
            )),
        }
    }
    if missing > 0 && missing == basis.listen.len() {
        findings.push(Finding::fail(
            "none of the listen addresses exists on this machine",
            "set listen to an address the machine has, e.g. --listen 127.0.0.1",
        ));
    }
    (findings, health)
}

/// `GET /health` over a plain TCP connection; the parsed JSON body of a 200 answer.
fn get_health(addr: SocketAddr) -> Result<Value, String> {
    let mut stream = TcpStream::connect_timeout(&addr, HEALTH_TIMEOUT)
        .map_err(|e| format!("it does not accept a connection: {e}"))?;
    let _ = stream.set_read_timeout(Some(HEALTH_TIMEOUT));
    let _ = stream.set_write_timeout(Some(HEALTH_TIMEOUT));
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("it did not take GET /health: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if answer.len() + n <= 256 * 1024 => answer.extend_from_slice(&buf[..n]),
            Ok(_) => return Err("its answer to GET /health is too large".into()),
            Err(_) if !answer.is_empty() => break,
            Err(e) => return Err(format!("it did not answer GET /health: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("it did not answer GET /health in HTTP")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("it answered GET /health with status {status:?}"));
    }
    serde_json::from_str(body).map_err(|_| "its /health is not JSON".to_owned())
}

fn check_log_dir(dir: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let other = "or choose another folder: log_dir in the file, --log-dir or BAPIWS_LOG_DIR";
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match platform::create_private_dir(dir) {
                Ok(()) => findings.push(Finding::ok(format!(
                    "{} did not exist: created, private to this user (as bapiws serve does)",
                    dir.display()
                ))),
                Err(e) => {
                    findings.push(Finding::fail(
                        format!(
                            "{} does not exist and cannot be created: {e}",
                            dir.display()
                        ),
                        format!(
                            "create it, readable by this user only (mkdir -p -m 700 …), {other}"
                        ),
                    ));
                    return findings;
                }
            }
        }
        Err(e) => {
            findings.push(Finding::fail(
                format!("{}: {e}", dir.display()),
                format!("make it a folder of this user, {other}"),
            ));
            return findings;
        }
        Ok(_) => {}
    }
    if let Err(e) = platform::check_private_dir(dir) {
        findings.push(Finding::fail(
            format!("{} is not private: {e}", dir.display()),
            format!(
                "make it this user's and writable by no one else (chown to this user; chmod 700 {}), {other}",
                dir.display()
            ),
        ));
        return findings;
    }
    let probe = dir.join(format!(".bapiws-doctor-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"probe\n"));
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(()) => findings.push(Finding::ok(format!(
            "{} is this user's, others cannot write to it, and it is writable",
            dir.display()
        ))),
        Err(e) => findings.push(Finding::fail(
            format!("{} is not writable: {e}", dir.display()),
            format!("give this user write permission (chmod u+w), {other}"),
        )),
    }
    let today = logging::today_path(dir);
    if let Ok(meta) = std::fs::symlink_metadata(&today) {
        if !platform::is_own_regular_file(&meta) || others_may_access(&meta) {
            findings.push(Finding::fail(
                format!(
                    "today's log file {} is not a private regular file of this user: the server would log to stderr only",
                    today.display()
                ),
                format!(
                    "remove it, or chmod 600 {} if it is this user's",
                    today.display()
                ),
            ));
        } else {
            findings.push(Finding::ok(format!(
                "today's log file {} is private",
                today.display()
            )));
        }
    }
    findings
}

#[cfg(unix)]
fn others_may_access(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.mode() & 0o077 != 0 || meta.nlink() > 1
}

#[cfg(not(unix))]
fn others_may_access(_meta: &std::fs::Metadata) -> bool {
    false
}

fn check_baresip(basis: &Basis) -> Vec<Finding> {
    if !BackendKind::Baresip.available_here() {
        return vec![Finding::ok(
            "not available on this operating system (the real phone runs on Linux; see docs/windows.md); the simulated phone is",
        )];
    }
    let Some((s, used)) = &basis.baresip else {
        return vec![Finding::warn(
            "not checked: the configuration is invalid",
            "correct the configuration first",
        )];
    };
    let install = "install it (Debian, Ubuntu: apt install baresip-core), or set binary ([baresip] binary, --baresip-binary) to its path";
    if !used {
        // Nothing configures baresip: only say whether the real phone would work.
        return vec![match find_program(&s.binary) {
            Some(p) => Finding::ok(format!(
                "not used by this configuration; {} is there for the real phone",
                p.display()
            )),
            None => Finding::warn(
                format!(
                    "not used by this configuration, and {} is not on PATH: the real phone needs it",
                    s.binary.display()
                ),
                install,
            ),
        }];
    }
    let mut findings = Vec::new();
    if s.mode == Mode::Attach {
        findings.push(
            match TcpStream::connect_timeout(&s.ctrl_address, HEALTH_TIMEOUT) {
                Ok(_) => Finding::ok(format!(
                    "attach mode: baresip's ctrl_tcp answers on {}",
                    s.ctrl_address
                )),
                Err(e) => Finding::fail(
                    format!(
                        "attach mode: nothing answers on {} ({e})",
                        s.ctrl_address
                    ),
                    "start your baresip with the ctrl_tcp module listening there (ctrl_tcp_listen), or use mode = \"managed\"",
                ),
            },
        );
        return findings;
    }
    match find_program(&s.binary) {
        Some(p) => findings.push(Finding::ok(format!("program: {}", p.display()))),
        None => findings.push(Finding::fail(
            format!(
                "program: {} not found (searched {})",
                s.binary.display(),
                if has_separator(&s.binary) {
                    "that path"
                } else {
                    "PATH"
                }
            ),
            install,
        )),
    }
    let drivers: Vec<&str> = {
        let mut d = vec![driver(&s.audio_source), driver(&s.audio_player)];
        d.dedup();
        d
    };
    match &s.module_path {
        None => findings.push(Finding::ok(
            "modules: baresip's own default folder (not checked)",
        )),
        Some(dir) => {
            let mut wanted = vec!["ctrl_tcp", "account", "menu", "g711"];
            wanted.extend(drivers.iter().copied());
            let missing: Vec<String> = wanted
                .iter()
                .map(|m| format!("{m}.so"))
                .filter(|f| !dir.join(f).is_file())
                .collect();
            if !dir.is_dir() {
                findings.push(Finding::fail(
                    format!("modules: no folder {}", dir.display()),
                    "install baresip-core (its modules come with it), or set module_path to the folder of baresip's modules",
                ));
            } else if missing.is_empty() {
                findings.push(Finding::ok(format!(
                    "modules: {} has {}",
                    dir.display(),
                    wanted
                        .iter()
                        .map(|m| format!("{m}.so"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            } else {
                findings.push(Finding::fail(
                    format!(
                        "modules: {} lacks {}",
                        dir.display(),
                        missing.join(", ")
                    ),
                    "install the package that has them (baresip-core; other audio drivers are in baresip's other packages), or choose other audio drivers (audio_source, audio_player)",
                ));
            }
        }
    }
    for d in drivers {
        findings.push(audio_devices(d));
    }
    findings
}

/// The driver part of `driver,device`.
fn driver(device: &str) -> &str {
    device.split(',').next().unwrap_or(device).trim()
}

/// What can be seen cheaply of the sound devices a driver would use.
fn audio_devices(driver: &str) -> Finding {
    match driver {
        "ausine" | "aufile" | "aubridge" | "auloop" => Finding::ok(format!(
            "audio: driver {driver} needs no sound device (a test driver: no one hears the call)"
        )),
        "alsa" => alsa_cards(),
        other => Finding::warn(
            format!("audio: driver {other}: its devices are not checked"),
            "make a test call to hear whether sound works",
        ),
    }
}

#[cfg(target_os = "linux")]
fn alsa_cards() -> Finding {
    let path = "/proc/asound/cards";
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let cards: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(str::trim)
        .collect();
    if cards.is_empty() {
        Finding::warn(
            format!(
                "audio: driver alsa, but {path} lists no sound card: calls would have no sound"
            ),
            "connect a headset or sound card, or choose other audio drivers (audio_source, audio_player)",
        )
    } else {
        Finding::ok(format!(
            "audio: driver alsa; {path} lists {} sound card(s): {}",
            cards.len(),
            cards.join("; ")
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn alsa_cards() -> Finding {
    Finding::warn(
        "audio: driver alsa, which exists on Linux only",
        "choose this system's audio driver (audio_source, audio_player)",
    )
}

/// The built-in phone's account as configured (never the password, only whether there is
/// one), and on Windows the firewall's part, which is not checked.
fn check_sip(basis: &Basis) -> Vec<Finding> {
    let Some((s, used)) = &basis.sip else {
        return vec![Finding::warn(
            "not checked: the configuration is not valid",
            "correct the configuration first (above)",
        )];
    };
    if !used {
        return vec![Finding::ok(
            "not configured (give [sip] account and its settings to use it: docs/sip-phone.md)",
        )];
    }
    let mut findings = vec![Finding::ok(format!(
        "account {}, registrar {} over {}{}",
        crate::settings::shown(&s.account),
        crate::settings::shown(&s.registrar),
        s.transport.as_str(),
        s.outbound_proxy
            .as_deref()
            .map(|p| format!(", outbound proxy {}", crate::settings::shown(p)))
            .unwrap_or_default()
    ))];
    findings.push(match (&s.password, s.register) {
        (Some(_), _) => Finding::ok("a password is given (not shown)"),
        (None, _) if s.password_from == PasswordFrom::Keyring => {
            Finding::ok("the password is read from the credential store at start (see above)")
        }
        (None, true) => Finding::warn(
            "no password is given: a registrar that asks for one will refuse the phone",
            "give password_file in [sip] (or the variable BAPIWS_SIP_PASSWORD): docs/sip-phone.md",
        ),
        (None, false) => Finding::ok("no password (the phone does not register)"),
    });
    if cfg!(windows) {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "bapiws.exe".into());
        findings.push(Finding::warn(
            format!(
                "Windows Firewall (not checked): calls need UDP in to the SIP port {} and the RTP ports {}-{}",
                s.listen.port(),
                s.rtp_ports.start(),
                s.rtp_ports.end()
            ),
            format!(
                "allow bapiws when Windows asks, or as an administrator: netsh advfirewall firewall add rule name=bapiws dir=in action=allow program=\"{exe}\" protocol=udp"
            ),
        ));
    }
    findings
}

/// The sound devices the built-in phone (`sip`) can open: none is a warning (its calls
/// still connect), never a failure.
fn check_audio() -> Vec<Finding> {
    const SHOWN: usize = 24;
    let d = crate::phone::sip::audio::device::list();
    let mut findings = Vec::new();
    let sides = [
        (
            "microphone",
            "audio_source = \"tone:HZ\", \"wav:PATH\" or \"silence\"",
            &d.inputs,
            "calls will connect with silence",
        ),
        (
            "speaker",
            "audio_sink = \"wav:PATH\" or \"discard\"",
            &d.outputs,
            "calls will connect, but no one hears them",
        ),
    ];
    for (what, setting, devices, without) in sides {
        if devices.is_empty() {
            findings.push(Finding::warn(
                format!("{}: no {what}: {without}", d.host),
                format!(
                    "connect a headset or sound card; without one, the built-in phone can use {setting} in [sip]"
                ),
            ));
            continue;
        }
        for dev in devices.iter().take(SHOWN) {
            findings.push(Finding::ok(format!(
                "{}: {what} {:?}{} (id {})",
                d.host,
                dev.name,
                if dev.default { ", the default" } else { "" },
                dev.id
            )));
        }
        if devices.len() > SHOWN {
            findings.push(Finding::ok(format!(
                "{}: and {} more {what}s",
                d.host,
                devices.len() - SHOWN
            )));
        }
    }
    for e in d.errors {
        findings.push(Finding::warn(
            format!("{}: {e}", d.host),
            "check the sound system (on Linux, ALSA or PipeWire)",
        ));
    }
    findings
}

fn has_separator(p: &Path) -> bool {
    p.components().count() > 1 || p.is_absolute()
}

/// The program's path: `name` itself when it has a folder, else the first match on PATH.
fn find_program(name: &Path) -> Option<PathBuf> {
    if has_separator(name) {
        return is_program(name).then(|| name.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| candidates(&dir.join(name)))
        .find(|p| is_program(p))
}

#[cfg(windows)]
fn candidates(p: &Path) -> Vec<PathBuf> {
    vec![p.to_owned(), p.with_extension("exe")]
}

#[cfg(not(windows))]
fn candidates(p: &Path) -> Vec<PathBuf> {
    vec![p.to_owned()]
}

#[cfg(unix)]
fn is_program(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_program(p: &Path) -> bool {
    p.is_file()
}

/// The backends as the running bapiws reports them in `/health`.
fn check_running(health: Option<&Value>, basis: &Basis) -> Vec<Finding> {
    let Some(h) = health else {
        return vec![Finding::warn(
            "no bapiws is running on these addresses, so the phone's state and the SIP registration are not checked",
            if basis.port == 0 {
                "start it (bapiws serve) with a fixed port and run the doctor with that port"
                    .to_owned()
            } else {
                "start it: bapiws serve, or systemctl --user start bapiws (see docs/deployment.md)"
                    .to_owned()
            },
        )];
    };
    let mut findings = vec![Finding::ok(format!(
        "bapiws {}: up {} s, {} connection(s), default backend {}",
        h.get("version").and_then(Value::as_str).unwrap_or("?"),
        h.get("uptime_secs").and_then(Value::as_u64).unwrap_or(0),
        h.get("connections").and_then(Value::as_u64).unwrap_or(0),
        h.get("default_backend")
            .and_then(Value::as_str)
            .unwrap_or("?")
    ))];
    let backends = h
        .get("backends")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for b in backends {
        let s = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_owned);
        let name = s("name").unwrap_or_default();
        let kind = s("kind").unwrap_or_default();
        let state = s("state").unwrap_or_else(|| "not started".into());
        let running = b.get("running").and_then(Value::as_bool).unwrap_or(false);
        let link = s("link");
        let last_error = s("last_error");
        let mut text = format!("backend {name} ({kind}): {state}");
        if let Some(l) = &link {
            text.push_str(&format!(", {l}"));
        }
        if let Some(e) = &last_error {
            text.push_str(&format!("; last error: {e}"));
        }
        if let Some(a) = s("audio") {
            text.push_str(&format!("; audio {a}"));
        }
        let fine = running
            && match link.as_deref() {
                None
                | Some("registered")
                | Some("connected (no registration)")
                | Some("not registering") => true,
                Some(_) => false,
            };
        findings.push(if fine {
            Finding::ok(text)
        } else if link.as_deref() == Some("registering") {
            Finding::warn(text, "wait a few seconds and run the doctor again")
        } else if !running {
            Finding::fail(text, "see the server's log file for why it did not start")
        } else if link.as_deref() == Some("baresip not reachable") {
            Finding::fail(
                text,
                "see the baresip checks above and the server's log; in attach mode, start baresip with ctrl_tcp",
            )
        } else if kind == "sip" {
            Finding::fail(
                text,
                "check the SIP account: account, auth_user, password (or password_file, password_store), registrar, outbound_proxy, transport in [sip], and that the registrar is reachable from this machine",
            )
        } else {
            Finding::fail(
                text,
                "check the SIP account: account, auth_user, auth_password, outbound_proxy, transport in [baresip], and that the registrar is reachable from this machine",
            )
        });
    }
    findings
}

fn browser_guidance(basis: &Basis) -> Vec<String> {
    let any = basis.origins.iter().any(|o| o == "*");
    let listed: Vec<&String> = basis.origins.iter().filter(|o| *o != "*").collect();
    let port = if basis.port == 0 {
        DEFAULT_PORT
    } else {
        basis.port
    };
    let mut lines = vec![format!("allowed_origins: {}", basis.origins.join(", "))];
    if any {
        lines.push(
            "  * lets every web site the user visits drive the phone; list the web application's origin instead (allowed_origins = [\"https://crm.example.com\"])".into(),
        );
    }
    lines.extend([
        "Chrome (142 and later; WebSockets from 147) and Edge (143 and later) ask the user before a public".into(),
        "  https:// page may reach this computer (Local Network Access). Plain http:// pages are refused".into(),
        "  without a prompt: serve the web application over https://. After Block the site cannot ask again:".into(),
        "  the user allows it in the site's settings (the icon left of the address).".into(),
        "Pre-approve the web application for every user with the enterprise policy LoopbackNetworkAllowedForUrls".into(),
        "  (Chrome and Edge 146 and later; it opens only this computer, unlike LocalNetworkAccessAllowedForUrls,".into(),
        "  which older versions need and which opens the local network too). On Linux a JSON file in".into(),
        "  /etc/opt/chrome/policies/managed/ (Chromium: /etc/chromium/policies/managed/), on Windows Group Policy:".into(),
    ]);
    let patterns: Vec<String> = if listed.is_empty() {
        vec!["\"https://crm.example.com\"".into()]
    } else {
        listed
            .iter()
            .map(|o| {
                if o.contains("://") {
                    format!("\"{o}\"")
                } else {
                    format!("\"https://[*.]{o}\"")
                }
            })
            .collect()
    };
    let patterns = patterns.join(", ");
    lines.push(format!(
        "    {{ \"LoopbackNetworkAllowedForUrls\": [{patterns}], \"LocalNetworkAccessAllowedForUrls\": [{patterns}] }}"
    ));
    let hosts: Vec<String> = if listed.is_empty() {
        vec!["\"crm.example.com\"".into()]
    } else {
        listed
            .iter()
            .map(|o| {
                let host = o.split_once("://").map_or(o.as_str(), |(_, rest)| rest);
                let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        h
                    } else {
                        host
                    }
                });
                format!("\"{host}\"")
            })
            .collect()
    };
    lines.extend([
        "A web application inside an iframe needs allow=\"loopback-network\" on the iframe, or the policy".into(),
        "  LocalNetworkAccessPermissionsPolicyDefaultEnabled (Chrome and Edge 146 and later; after a restart).".into(),
        "Firefox asks the user too; the policy LocalNetworkAccess (Firefox 150 and later) skips the check for".into(),
        "  the web application, in /etc/firefox/policies/policies.json (Windows: Group Policy):".into(),
        format!(
            "    {{ \"policies\": {{ \"LocalNetworkAccess\": {{ \"SkipDomains\": [{}] }} }} }}",
            hosts.join(", ")
        ),
        "Safari blocks ws:// to this computer from https:// pages (mixed content).".into(),
        format!(
            "Opening the dialer (http://127.0.0.1:{port}/) shows only that bapiws runs: it is on this computer,"
        ),
        "  where none of this applies. To see what the browser does for the web application, paste the check of".into(),
        "  docs/integrating.md (\"Check from your application's page\") into the developer console of the web".into(),
        "  application's page: it prints the cause.".into(),
        "More: docs/integrating.md and docs/deployment.md.".into(),
    ]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_and_programs() {
        assert_eq!(driver("alsa,default"), "alsa");
        assert_eq!(driver("ausine"), "ausine");
        assert!(has_separator(Path::new("/usr/bin/baresip")));
        assert!(has_separator(Path::new("./baresip")));
        assert!(!has_separator(Path::new("baresip")));
        assert_eq!(find_program(Path::new("/nonexistent/baresip")), None);
    }

    #[test]
    fn sound_devices_never_fail_the_doctor() {
        let findings = check_audio();
        assert!(!findings.is_empty());
        assert!(
            findings.iter().all(|f| f.mark != Mark::Fail),
            "{findings:?}"
        );
    }

    #[test]
    fn the_sip_checks_show_the_account_and_never_the_password() {
        let text = |sip: Option<(SipSettings, bool)>| {
            let basis = Basis {
                port: 9898,
                listen: vec![],
                log_dir: PathBuf::new(),
                origins: vec![],
                baresip: None,
                sip,
            };
            check_sip(&basis)
                .iter()
                .map(|f| {
                    format!(
                        "{:?} {} {}",
                        f.mark,
                        f.text,
                        f.fix.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let s = SipSettings {
            account: "sip:1001@pbx.example.com".into(),
            password: Some(String::from("hunter2-secret").into()),
            ..SipSettings::default()
        };
        let shown = text(Some((s.clone(), true)));
        assert!(
            shown.contains("account sip:1001@pbx.example.com"),
            "{shown}"
        );
        assert!(shown.contains("a password is given (not shown)"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown.contains("Windows Firewall"), cfg!(windows), "{shown}");
        let without = text(Some((
            SipSettings {
                password: None,
                ..s.clone()
            },
            true,
        )));
        assert!(without.contains("Warn no password is given"), "{without}");
        assert!(text(Some((s, false))).contains("not configured"));
        assert!(text(None).contains("not checked"));
    }

    #[test]
    fn policy_patterns_from_origins() {
        let basis = Basis {
            port: 9898,
            listen: vec![],
            log_dir: PathBuf::new(),
            origins: vec![
                "company.com".into(),
                "https://crm.partner.example:8443".into(),
            ],
            baresip: None,
            sip: None,
        };
        let text = browser_guidance(&basis).join("\n");
        let patterns = "[\"https://[*.]company.com\", \"https://crm.partner.example:8443\"]";
        assert!(text.contains(&format!("\"LoopbackNetworkAllowedForUrls\": {patterns}")));
        assert!(text.contains(&format!("\"LocalNetworkAccessAllowedForUrls\": {patterns}")));
        assert!(text.contains("\"SkipDomains\": [\"company.com\", \"crm.partner.example\"]"));
        assert!(text.contains("LocalNetworkAccessPermissionsPolicyDefaultEnabled"));
        assert!(text.contains("Check from your application's page"));
        assert!(!text.contains("every web site"));
    }
}
