//! `bapiws doctor` over the real binary: a free port, a port held by a running bapiws, a
//! port held by another program, bad configurations, log folders that are not private,
//! baresip present and missing (by PATH), and the `/health` it reads.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use common::{Server, TempDir, command};

/// Runs `bapiws doctor` with a clean environment (HOME in `dir`), `PATH` set to `path`
/// (baresip is looked for there) and the log folder `dir/logs` unless `args` names one.
fn doctor(dir: &Path, path: &Path, args: &[&str]) -> (i32, String) {
    let mut cmd = command(dir);
    cmd.arg("doctor").env("PATH", path);
    if !args.contains(&"--log-dir") {
        cmd.arg("--log-dir").arg(dir.join("logs"));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.args(args).output().expect("run bapiws doctor");
    let out = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        stderr.is_empty(),
        "doctor wrote on stderr: {}",
        String::from_utf8_lossy(&stderr)
    );
    (status.code().expect("exit code"), out)
}

/// A port nothing listens on (just now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// An empty folder to serve as PATH: no baresip on it.
fn empty_path(dir: &TempDir) -> std::path::PathBuf {
    let p = dir.path().join("empty-bin");
    std::fs::create_dir_all(&p).expect("mkdir");
    p
}

#[test]
fn a_free_port_and_defaults_are_fine() {
    let dir = TempDir::new("doctor-free");
    let port = free_port().to_string();
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--port", &port, "--listen", "127.0.0.1"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("✓ 127.0.0.1:{port} is free")),
        "{out}"
    );
    assert!(out.contains("✓ no configuration file"), "{out}");
    assert!(out.contains("✓ the settings are valid"), "{out}");
    // The missing log folder is created, private, as `serve` would.
    assert!(out.contains("did not exist: created"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("logs"))
            .expect("log folder created")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // baresip is not used by the defaults: its absence is a warning, not a failure (and
    // where it does not run, that is said).
    if cfg!(unix) {
        assert!(
            out.contains("! not used by this configuration, and baresip is not on PATH"),
            "{out}"
        );
        assert!(out.contains("install baresip-core"), "{out}");
    } else {
        assert!(
            out.contains("✓ not available on this operating system"),
            "{out}"
        );
    }
    // No server: the registration is not checked, and the doctor says how to start one.
    assert!(out.contains("! no bapiws is running"), "{out}");
    // The browser facts, with the configured origins.
    assert!(out.contains("allowed_origins: *"), "{out}");
    assert!(out.contains("LocalNetworkAccessAllowedForUrls"), "{out}");
    assert!(out.contains("Nothing is wrong."), "{out}");
    assert!(!out.contains('✗'), "{out}");
}

#[test]
fn a_port_held_by_a_running_bapiws_is_fine_and_its_backends_are_shown() {
    let server = Server::start(&[]);
    let port = server.port.to_string();
    let dir = TempDir::new("doctor-running");
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &[
            "--port",
            &port,
            "--listen",
            "127.0.0.1",
            "--allowed-origins",
            "company.com,https://crm.partner.example:8443",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "✓ 127.0.0.1:{port} is held by a running bapiws {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    assert!(out.contains("✓ backend sim (sim): Available"), "{out}");
    assert!(
        out.contains(
            "{ \"LoopbackNetworkAllowedForUrls\": [\"https://[*.]company.com\", \"https://crm.partner.example:8443\"], \"LocalNetworkAccessAllowedForUrls\": [\"https://[*.]company.com\", \"https://crm.partner.example:8443\"] }"
        ),
        "{out}"
    );
    assert!(!out.contains("every web site"), "{out}");

    // What the doctor read: /health with version, uptime, connections, and each
    // backend's state, link and last error (null when there is none).
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let body = answer.split("\r\n\r\n").nth(1).expect("body");
    let h: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(h["name"], "bapiws");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime_secs"].is_u64(), "{h}");
    assert!(h["connections"].is_u64(), "{h}");
    let sim = &h["backends"][0];
    assert_eq!(sim["name"], "sim", "{h}");
    assert_eq!(sim["running"], true, "{h}");
    assert_eq!(sim["state"], "Available", "{h}");
    assert!(sim["link"].is_null() && sim["last_error"].is_null(), "{h}");
    let obj = sim.as_object().expect("object");
    assert!(
        obj.contains_key("link") && obj.contains_key("last_error"),
        "{h}"
    );
}

#[test]
fn a_port_held_by_another_program_fails_with_the_fix() {
    let dir = TempDir::new("doctor-other");
    // A program that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port().to_string();
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--port", &port, "--listen", "127.0.0.1"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "✗ 127.0.0.1:{port} is held by another program (it did not answer GET /health"
        )),
        "{out}"
    );
    let next = port.parse::<u16>().expect("port") + 1;
    assert!(
        out.contains(&format!(
            "fix: stop that program, or give bapiws another port: bapiws serve --port {next}, BAPIWS_PORT={next}"
        )),
        "{out}"
    );
    assert!(out.contains("Something is wrong"), "{out}");
    drop(silent);

    // A program that answers /health, but is not bapiws.
    let web = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = web.local_addr().expect("addr").port();
    let answering = std::thread::spawn(move || {
        if let Ok((mut s, _)) = web.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = "{\"name\":\"something else\"}";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--port", &port.to_string(), "--listen", "127.0.0.1"],
    );
    answering.join().expect("thread");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "✗ 127.0.0.1:{port} is held by another program (its /health is not bapiws's)"
        )),
        "{out}"
    );
}

#[test]
fn a_bad_configuration_fails_and_names_the_file() {
    let dir = TempDir::new("doctor-config");
    let port = free_port().to_string();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "port = \"19300\"\n").expect("write");
    let file_arg = file.display().to_string();
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--config", &file_arg, "--port", &port],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("✓ configuration file {file_arg} found")),
        "{out}"
    );
    // The message is the one `bapiws serve` stops with: it names the file and the key.
    let line = out
        .lines()
        .find(|l| l.contains("✗ "))
        .unwrap_or_else(|| panic!("no ✗ line: {out}"));
    assert!(line.contains(&file_arg) && line.contains("port"), "{out}");
    assert!(out.contains("fix: correct the file"), "{out}");
    // The other checks still run, with the defaults and the flags.
    assert!(out.contains(&format!(":{port} is free")), "{out}");
    assert!(
        out.contains("baresip (the real phone)\n  ! not checked")
            || (cfg!(not(unix)) && out.contains("baresip (the real phone)\n  ✓ not available")),
        "{out}"
    );

    // A file that is not there.
    let missing = dir.path().join("missing.toml").display().to_string();
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--config", &missing, "--port", &port],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("✗ config file {missing}:")), "{out}");

    // A bad variable is a setting, with its own fix.
    let mut cmd = command(dir.path());
    let out = cmd
        .args(["doctor", "--port", &port])
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .env("BAPIWS_IDLE_TIMEOUT_SECS", "0")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("✗ ") && l.contains("IDLE_TIMEOUT_SECS")),
        "{text}"
    );
    assert!(
        text.contains("fix: correct the flag or BAPIWS_* variable"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn a_log_folder_that_is_not_private_fails() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("doctor-logs");
    let port = free_port().to_string();
    // Every user may write to it (root can write anywhere, so privacy is what is tested).
    let open = dir.path().join("open-logs");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let open_arg = open.display().to_string();
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--port", &port, "--log-dir", &open_arg],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "✗ {open_arg} is not private: every user may write"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("chmod 700 {open_arg}")), "{out}");

    // A private folder with today's log file readable by others.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let (code, out) = doctor(dir.path(), &empty_path(&dir), &["--port", &port]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("others cannot write to it, and it is writable"),
        "{out}"
    );
    let today = bapiws::logging::today_path(&logs);
    std::fs::write(&today, "").expect("write");
    std::fs::set_permissions(&today, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, out) = doctor(dir.path(), &empty_path(&dir), &["--port", &port]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("is not a private regular file of this user"),
        "{out}"
    );
    assert!(
        out.contains(&format!("chmod 600 {}", today.display())),
        "{out}"
    );
    std::fs::set_permissions(&today, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, out) = doctor(dir.path(), &empty_path(&dir), &["--port", &port]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is private"), "{out}");

    // A file where the folder should be.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("write");
    let file_arg = file.display().to_string();
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &["--port", &port, "--log-dir", &file_arg],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("✗ {file_arg} is not private")),
        "{out}"
    );
}

/// The flags that make this configuration use baresip, with its modules in `modules`
/// and test audio drivers (no sound device needed).
#[cfg(unix)]
fn baresip_args<'a>(port: &'a str, modules: &'a str) -> Vec<&'a str> {
    vec![
        "--port",
        port,
        "--default-backend",
        "baresip",
        "--baresip-module-path",
        modules,
        "--baresip-audio-source",
        "ausine",
        "--baresip-audio-player",
        "ausine",
    ]
}

// The baresip backend runs on Unix only (docs/windows.md).
#[cfg(unix)]
#[test]
fn baresip_missing_fails_and_present_passes() {
    let dir = TempDir::new("doctor-baresip");
    let port = free_port().to_string();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).expect("mkdir");
    for m in ["ctrl_tcp", "account", "menu", "g711", "ausine"] {
        std::fs::write(modules.join(format!("{m}.so")), "").expect("write");
    }
    let modules_arg = modules.display().to_string();

    // Missing: not on PATH.
    let (code, out) = doctor(
        dir.path(),
        &empty_path(&dir),
        &baresip_args(&port, &modules_arg),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("✗ program: baresip not found (searched PATH)"),
        "{out}"
    );
    assert!(
        out.contains("fix: install it (Debian, Ubuntu: apt install baresip-core)"),
        "{out}"
    );

    // Present: a program named baresip on PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let fake = bin.join(if cfg!(windows) {
        "baresip.exe"
    } else {
        "baresip"
    });
    std::fs::write(&fake, "#!/bin/sh\nexit 0\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let (code, out) = doctor(dir.path(), &bin, &baresip_args(&port, &modules_arg));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("✓ program: {}", fake.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "✓ modules: {modules_arg} has ctrl_tcp.so, account.so, menu.so, g711.so, ausine.so"
        )),
        "{out}"
    );
    assert!(
        out.contains("✓ audio: driver ausine needs no sound device"),
        "{out}"
    );

    // A module missing.
    std::fs::remove_file(modules.join("ctrl_tcp.so")).expect("rm");
    let (code, out) = doctor(dir.path(), &bin, &baresip_args(&port, &modules_arg));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("✗ modules: {modules_arg} lacks ctrl_tcp.so")),
        "{out}"
    );
}
