//! The built-in SIP phone's password kept in the Secret Service (`[sip] password_store =
//! "keyring"`, issue #21 item 7), against real programs: a private D-Bus session bus
//! (`dbus-daemon` with a configuration of its own), GNOME Keyring's secrets component on
//! it (its login keyring made and unlocked with a password given on stdin), and kamailio
//! demanding digest authentication. `bapiws sip set-password` stores the password, `bapiws
//! serve` reads it and registers, and it is then in no file the test's programs wrote but
//! the keyring's own encrypted one; `forget-password` (or an entry that is not there, or a
//! store that cannot be reached) makes the start fail with an error a user can act on.
//!
//! The bus's address goes to the child processes only (never into this process's
//! environment). The tests fail, never skip, when dbus-daemon, dbus-send or
//! gnome-keyring-daemon is missing.
// The Secret Service is the Linux store; the harness uses Unix process groups.
#![cfg(target_os = "linux")]

mod common;
#[path = "sip/harness.rs"]
mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir, command, wait_exit};
use harness::{Kamailio, PASSWORD, SipPorts, require};

/// How long the phone may take to register.
const WAIT: Duration = Duration::from_secs(20);

/// The password that unlocks the test's login keyring (not the SIP password).
const KEYRING_PASSWORD: &str = "keyring-unlock-pw";

/// A private session bus with GNOME Keyring's Secret Service on it, in a folder of its
/// own; both stopped on drop.
struct Keyring {
    bus: Child,
    daemon: Option<Child>,
    address: String,
    dir: TempDir,
}

impl Keyring {
    /// A bus with the Secret Service on it.
    fn start() -> Keyring {
        let mut k = Keyring::bus_only();
        k.start_daemon();
        k
    }

    /// A bus with nothing on it: a store that cannot be reached.
    fn bus_only() -> Keyring {
        require("dbus-daemon", "--version", "dbus-daemon");
        require("dbus-send", "--help", "dbus-bin");
        require("gnome-keyring-daemon", "--version", "gnome-keyring");
        let dir = TempDir::new("keyring");
        for sub in ["home", "data", "runtime"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("keyring folders");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("runtime"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("private runtime folder");
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("bus configuration");
        use std::os::unix::process::CommandExt;
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dbus-daemon");
        let stdout = bus.stdout.take().expect("dbus-daemon's stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let address = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("dbus-daemon prints its address")
            .trim()
            .to_owned();
        assert!(address.starts_with("unix:path="), "{address:?}");
        Keyring {
            bus,
            daemon: None,
            address,
            dir,
        }
    }

    /// The environment of a program on this bus and in this keyring's folders.
    fn env(&self) -> Vec<(&'static str, String)> {
        let at = |sub: &str| self.dir.path().join(sub).display().to_string();
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
            ("HOME", at("home")),
            ("XDG_DATA_HOME", at("data")),
            ("XDG_RUNTIME_DIR", at("runtime")),
        ]
    }

    /// GNOME Keyring's daemon in the foreground (so that it stays this test's child),
    /// its login keyring made (or unlocked) with the password on stdin, the secrets
    /// component on the bus; waits until `org.freedesktop.secrets` is owned.
    fn start_daemon(&mut self) {
        use std::os::unix::process::CommandExt;
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start gnome-keyring-daemon");
        let mut stdin = daemon.stdin.take().expect("its stdin");
        stdin
            .write_all(KEYRING_PASSWORD.as_bytes())
            .expect("unlock password");
        drop(stdin);
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.secrets_on_bus() {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon's Secret Service on the bus within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `org.freedesktop.secrets` has an owner on the bus.
    fn secrets_on_bus(&self) -> bool {
        let out = Command::new("dbus-send")
            .args([
                &format!("--bus={}", self.address),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .output()
            .expect("dbus-send");
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// The folder of the keyring's own (encrypted) files.
    fn store_files(&self) -> PathBuf {
        self.dir.path().join("data/keyrings")
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for child in self.daemon.iter_mut().chain([&mut self.bus]) {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            if wait_exit(child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A phone's configuration file in `dir`: registering as 1001 at kamailio with the
/// password from the keyring, the default backend.
fn write_config(dir: &Path, ports: &SipPorts, account_user: &str) -> PathBuf {
    let p = ports.ports;
    let path = dir.join("bapiws.toml");
    std::fs::write(
        &path,
        format!(
            r#"default_backend = "sip"

[sip]
account = "sip:{account_user}@127.0.0.1:{registrar}"
auth_user = "1001"
password_store = "keyring"
listen = "127.0.0.1:{sip}"
rtp_ports = "{rtp}-{rtp_end}"
audio_source = "tone:440"
audio_sink = "discard"
register_interval_secs = 60
"#,
            registrar = ports.registrar,
            sip = p.phone_sip,
            rtp = p.phone_rtp,
            rtp_end = p.phone_rtp + 9,
        ),
    )
    .expect("config file");
    path
}

/// `bapiws ARGS --config CONFIG` with the keyring's bus, `input` on stdin; waits at most
/// 30 s.
fn run(dir: &Path, keyring: &Keyring, args: &[&str], config: &Path, input: &[u8]) -> Output {
    let mut child = command(dir)
        .args(args)
        .arg("--config")
        .arg(config)
        .envs(keyring.env().into_iter().filter(|(k, _)| *k != "HOME"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bapiws");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(input);
    drop(stdin);
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("bapiws's output"),
        Err(_) => {
            harness::kill(pid, "KILL");
            panic!("bapiws {args:?} did not finish within 30 s");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `root` (but those under `except`) that contains `needle`.
fn files_containing(root: &Path, needle: &str, except: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.starts_with(except) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// `bapiws serve` with `config` on the keyring's bus, expected to refuse to start: its
/// exit code and stderr.
fn serve_refused(dir: &Path, keyring_env: &[(&'static str, String)], config: &Path) -> String {
    let mut child = command(dir)
        .args(["serve", "--port", "0", "--listen", "127.0.0.1", "--config"])
        .arg(config)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .envs(keyring_env.iter().filter(|(k, _)| *k != "HOME").cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bapiws");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    let said = text(&out);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "serve must refuse to start, with exit code 2:\n{said}"
    );
    said
}

/// The whole path: set-password, doctor, serve registers with the stored password, the
/// password is in no file but the keyring's, forget-password makes the next start fail.
#[test]
fn a_password_in_the_secret_service_registers_and_stays_off_disk() {
    let ports = SipPorts::next();
    let _kamailio = Kamailio::start(&ports, 60);
    let keyring = Keyring::start();
    let dir = TempDir::new("sip-keyring");
    let config = write_config(dir.path(), &ports, "1001");
    let account = format!("sip:1001@127.0.0.1:{}", ports.registrar);

    let out = run(
        dir.path(),
        &keyring,
        &["sip", "set-password"],
        &config,
        format!("{PASSWORD}\n").as_bytes(),
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "password stored for {account} in the Secret Service"
        )),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");

    let out = run(
        dir.path(),
        &keyring,
        &["doctor", "--port", "0"],
        &config,
        b"",
    );
    let doctor = text(&out);
    std::fs::write(dir.path().join("doctor-before.txt"), &doctor).expect("save");
    assert!(
        doctor.contains(&format!(
            "the password comes from the Secret Service (password_store = \"keyring\"): an entry is stored (service bapiws, user {account})"
        )),
        "{doctor}"
    );

    let env = keyring.env();
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| *k != "HOME")
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let config_arg = config.display().to_string();
    let server = Server::start_with_env(&["--config", &config_arg], &env);
    let deadline = Instant::now() + WAIT;
    let h = loop {
        let h = harness::phone_health(server.port);
        if h["state"] == "Available" {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "not Available within {WAIT:?}: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(h["link"], "registered", "{h}");
    let whole = harness::health(server.port).to_string();
    std::fs::write(dir.path().join("health.json"), &whole).expect("save");
    assert!(!whole.contains(PASSWORD), "{whole}");
    let (status, stderr, server_dir) = server.terminate();
    assert!(status.success(), "{stderr}");
    std::fs::write(dir.path().join("serve-stderr.txt"), &stderr).expect("save");
    let log = std::fs::read_dir(server_dir.path().join("logs"))
        .expect("log folder")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("started"), "the log was written:\n{log}");

    // The keyring's own file holds it, encrypted: anything else would be a leak.
    assert!(
        std::fs::read_dir(keyring.store_files())
            .expect("the keyring's files")
            .count()
            > 0
    );
    for root in [dir.path(), server_dir.path(), keyring.dir.path()] {
        let leaks = files_containing(root, PASSWORD, &keyring.store_files());
        assert!(leaks.is_empty(), "the password is in {leaks:?}");
    }
    // The search finds what is there: the account is in the config file.
    assert!(
        files_containing(dir.path(), &account, &keyring.store_files()).contains(&config),
        "the search finds the account in {}",
        config.display()
    );

    let out = run(
        dir.path(),
        &keyring,
        &["sip", "forget-password"],
        &config,
        b"",
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "password for {account} removed from the Secret Service"
        )),
        "{said}"
    );
    let refused = serve_refused(dir.path(), &keyring.env(), &config);
    assert!(
        refused.contains(&format!(
            "key `sip.password_store`: no password stored for {account} in the Secret Service; run `bapiws sip set-password`"
        )),
        "{refused}"
    );
    let out = run(
        dir.path(),
        &keyring,
        &["doctor", "--port", "0"],
        &config,
        b"",
    );
    let doctor = text(&out);
    assert_eq!(out.status.code(), Some(1), "{doctor}");
    assert!(
        doctor.contains(&format!(
            "✗ sip: the password comes from the Secret Service (password_store = \"keyring\"), but no entry is stored (service bapiws, user {account})"
        )) && doctor.contains("fix: run `bapiws sip set-password`"),
        "{doctor}"
    );
    // Forgetting twice: nothing to remove, and that is no error.
    let out = run(
        dir.path(),
        &keyring,
        &["sip", "forget-password"],
        &config,
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to remove"), "{}", text(&out));
}

/// An entry for another account is no entry for this one; a wrong password in the store
/// starts the phone, which the registrar refuses, in the registrar's words and never the
/// password's; an empty or oversized input is refused before the store is asked; and a
/// bus without a Secret Service, or no bus at all, is a clear start-up error.
#[test]
fn a_missing_wrong_or_unreachable_entry_is_a_clear_error() {
    let ports = SipPorts::next();
    let kamailio = Kamailio::start(&ports, 60);
    let keyring = Keyring::start();
    let dir = TempDir::new("sip-keyring-bad");
    let other = write_config(dir.path(), &ports, "1002");
    let out = run(
        dir.path(),
        &keyring,
        &["sip", "set-password"],
        &other,
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let config = write_config(dir.path(), &ports, "1001");
    let account = format!("sip:1001@127.0.0.1:{}", ports.registrar);
    let refused = serve_refused(dir.path(), &keyring.env(), &config);
    assert!(
        refused.contains(&format!(
            "no password stored for {account} in the Secret Service"
        )),
        "{refused}"
    );
    assert!(!refused.contains(PASSWORD), "{refused}");

    // Input refused: empty, longer than 4 KiB; the store keeps no entry.
    for input in [&b"\n"[..], &b""[..], "x".repeat(5000).as_bytes()] {
        let out = run(
            dir.path(),
            &keyring,
            &["sip", "set-password"],
            &config,
            input,
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("no password stored"), "{}", text(&out));
    }
    let refused = serve_refused(dir.path(), &keyring.env(), &config);
    assert!(refused.contains("no password stored for"), "{refused}");

    // A wrong password: the phone starts, and the registrar says why it is refused.
    let wrong = "Wrong-pw-in-keyring";
    let out = run(
        dir.path(),
        &keyring,
        &["sip", "set-password"],
        &config,
        format!("{wrong}\r\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let env = keyring.env();
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| *k != "HOME")
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let config_arg = config.display().to_string();
    let server = Server::start_with_env(&["--config", &config_arg], &env);
    let deadline = Instant::now() + WAIT;
    let h = loop {
        let h = harness::phone_health(server.port);
        if h["link"] == "not registered" {
            break h;
        }
        assert!(Instant::now() < deadline, "{h}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(h["state"], "Offline", "{h}");
    assert_eq!(
        h["last_error"], "registration failed: 401 Unauthorized",
        "{h}"
    );
    let (_, stderr, server_dir) = server.terminate();
    let leaks = files_containing(server_dir.path(), wrong, &keyring.store_files());
    assert!(leaks.is_empty(), "the password is in {leaks:?}");
    assert!(!stderr.contains(wrong), "{stderr}");
    drop(kamailio);

    // A bus without a Secret Service on it.
    let bare = Keyring::bus_only();
    let refused = serve_refused(dir.path(), &bare.env(), &config);
    assert!(
        refused.contains(&format!(
            "key `sip.password_store`: cannot read the password for {account} from the Secret Service: it cannot be reached"
        )) && refused.contains("start and unlock a keyring in this session"),
        "{refused}"
    );
    let out = run(
        dir.path(),
        &bare,
        &["sip", "set-password"],
        &config,
        b"a-password\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the Secret Service: it cannot be reached"),
        "{}",
        text(&out)
    );
    // No bus at all.
    let gone = vec![
        (
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("no-bus").display()),
        ),
        (
            "XDG_RUNTIME_DIR",
            dir.path().join("no-runtime").display().to_string(),
        ),
    ];
    let refused = serve_refused(dir.path(), &gone, &config);
    assert!(
        refused.contains("from the Secret Service: it cannot be reached"),
        "{refused}"
    );
}
