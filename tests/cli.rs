//! The `bapiws` command line: the client commands against a real server, start-up errors.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, TempDir, command};

fn run(dir: &std::path::Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let out = command(dir)
        .args(args)
        .args(["--url", url])
        .output()
        .expect("run bapiws");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a new user does after the README's first command.
#[test]
fn call_then_calls_shows_the_call() {
    let server = Server::start(&[]);
    let dir = TempDir::new("cli");
    let (code, out, err) = run(dir.path(), &server.url, &["call", "+358401234567"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("+358401234567"), "{out}");
    let (code, out, err) = run(dir.path(), &server.url, &["calls"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one call:\n{out}");
    assert!(
        lines[0].contains("DIRECTION") && lines[0].contains("NUMBER"),
        "{out}"
    );
    assert!(
        lines[1].contains("Outbound") && lines[1].contains("+358401234567"),
        "{out}"
    );
    let (_, out, _) = run(dir.path(), &server.url, &["state"]);
    assert_eq!(out.trim(), "Busy");
    let (code, out, _) = run(dir.path(), &server.url, &["hangup"]);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run(dir.path(), &server.url, &["calls"]);
    assert_eq!(out.trim(), "No active calls.");
    // An error from the server: exit code 1 and the server's words.
    let (code, _, err) = run(dir.path(), &server.url, &["hangup"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no active call") && err.contains("-32002"),
        "{err}"
    );
    let (code, _, err) = run(dir.path(), &server.url, &["call", "12ab"]);
    assert_eq!(code, 1);
    assert!(err.contains("-32602"), "{err}");
}

#[test]
fn sim_commands_and_watch() {
    let server = Server::start(&[]);
    let dir = TempDir::new("cli");
    let mut watch = command(dir.path())
        .args(["watch", "--url", &server.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut ready = String::new();
    BufReader::new(watch.stderr.take().expect("stderr"))
        .read_line(&mut ready)
        .expect("watch says it is ready");
    assert!(
        ready.starts_with("Watching") && ready.contains("Available"),
        "{ready}"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (code, out, err) = run(dir.path(), &server.url, &["sim", "incoming", "0505010269"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("call id"), "{out}");
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("watch printed");
    assert!(
        first.contains("CallComing") && first.contains("0505010269"),
        "{first}"
    );
    let second = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("watch printed");
    assert!(
        second.contains("StateChanged") && second.contains("Busy"),
        "{second}"
    );
    let (code, _, _) = run(dir.path(), &server.url, &["answer"]);
    assert_eq!(code, 0);
    let third = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("watch printed");
    assert!(third.contains("CallConnected"), "{third}");
    for args in [
        &["sim", "hangup", "--reason", "done"][..],
        &["sim", "availability", "DND"],
        &["sim", "offline"],
        &["sim", "online"],
    ] {
        let (code, out, err) = run(dir.path(), &server.url, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        rest.push(line);
        if rest.len() == 5 {
            break;
        }
    }
    let methods: Vec<&str> = rest
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        methods,
        [
            "CallDisconnected",
            "StateChanged",
            "StateChanged",
            "StateChanged",
            "StateChanged"
        ],
        "{rest:?}"
    );
    assert!(rest[0].contains("done"));
    assert!(rest[2].contains("DND") && rest[3].contains("Offline") && rest[4].contains("DND"));
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn no_server_gives_a_clear_message() {
    let dir = TempDir::new("cli");
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let url = format!("ws://127.0.0.1:{port}");
    for args in [
        &["state"][..],
        &["call", "123"],
        &["calls"],
        &["sim", "offline"],
    ] {
        let (code, _, err) = run(dir.path(), &url, args);
        // 3: no server reached (2 is for usage errors, 1 for an error from the server).
        assert_eq!(code, 3, "{args:?}");
        assert!(err.contains("cannot reach a bapiws server"), "{err}");
        assert!(err.contains("bapiws serve"), "{err}");
    }
}

#[test]
fn a_bad_config_file_stops_start_up_naming_file_and_key() {
    let dir = TempDir::new("cfg");
    let cases = [
        ("port = \"high\"\n", "port", "invalid type"),
        (
            "idle_timeout_secs = 0\n",
            "idle_timeout_secs",
            "out of range",
        ),
        ("colour = \"blue\"\n", "colour", "unknown key"),
        (
            "[sim]\navailability = \"Asleep\"\n",
            "sim.availability",
            "not one of",
        ),
    ];
    for (text, key, problem) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).expect("write config");
        let out = command(dir.path())
            .args(["serve", "--port", "0", "--config"])
            .arg(&path)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(&*path.to_string_lossy()), "{err}");
        assert!(err.contains(&format!("`{key}`")), "{err}");
        assert!(err.contains(problem), "{err}");
    }
    let missing = dir.path().join("missing.toml");
    let out = command(dir.path())
        .args(["serve", "--config"])
        .arg(&missing)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn config_file_and_environment_precedence() {
    let dir = TempDir::new("cfg");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "listen = [\"127.0.0.1\"]\nport = 0\n[sim]\navailability = \"Away\"\n",
    )
    .expect("write");
    let mut child = command(dir.path())
        .args(["serve", "--config"])
        .arg(&path)
        .env("BAPIWS_SIM_AVAILABILITY", "DND")
        .env("BAPIWS_LOG_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let banner = common::read_banner(&mut child);
    let (url, _) = common::url_from_banner(&banner);
    assert!(
        banner.contains("c.toml"),
        "the banner names the config file: {banner}"
    );
    let (_, out, _) = run(dir.path(), &url, &["state"]);
    assert_eq!(out.trim(), "DND", "the environment beats the file");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_help_documents_every_key() {
    let out = Command::new(common::bin())
        .args(["serve", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    // Every file key, `[sim]`'s as `sim_…`: the flag and variable share its name.
    // `[sip.queue]` is a table of the file only (docs/sip-phone.md): no flag, no variable.
    let keys = bapiws::config::file_keys()
        .into_iter()
        .filter(|k| k != "sip.queue")
        .map(|k| k.replace('.', "_"));
    for key in keys {
        let flag = match key.as_str() {
            "aliases" => "--alias".to_owned(),
            "extra_backends" => "--extra-backend".to_owned(),
            k => format!("--{}", k.replace('_', "-")),
        };
        let env = format!("BAPIWS_{}", key.to_ascii_uppercase());
        assert!(help.contains(&flag), "serve --help lacks {flag}");
        assert!(help.contains(&env), "serve --help lacks {env}");
    }
}

/// A hostile server: every reply's text holds terminal escape sequences, a bell and bidi
/// controls. Answers GetState, GetActiveCalls and errors for everything else.
fn hostile_server() -> String {
    use futures_util::{SinkExt, StreamExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let evil = "\u{1b}]0;pwned\u{7}\u{1b}[31mAvail\u{202e}able\r\nX";
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Ok(text) = msg.to_text() else { break };
                    let req: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                    let id = req["id"].clone();
                    let reply = match req["method"].as_str() {
                        Some("GetState") => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": evil}),
                        Some("GetActiveCalls") => serde_json::json!({"jsonrpc": "2.0", "id": id,
                            "result": ["1", "Inbound", "Ringing", evil, "id", "2026-01-01 00:00:00.000"]}),
                        _ => serde_json::json!({"jsonrpc": "2.0", "id": id,
                            "error": {"code": -32004, "message": evil}}),
                    };
                    if ws.send(reply.to_string().into()).await.is_err() {
                        break;
                    }
                }
            }
        });
    });
    url
}

/// Nothing a server sends reaches the terminal raw: escape sequences, bells and bidi
/// controls are shown escaped.
#[test]
fn server_text_is_escaped_for_the_terminal() {
    let url = hostile_server();
    let dir = TempDir::new("cli-hostile");
    for args in [
        &["state"][..],
        &["calls"],
        &["answer"],
        &["hangup", "--call", "id"],
        &["hold"],
        &["resume", "--call", "id"],
        &["transfer", "123"],
        &["dtmf", "1"],
        &["mute"],
        &["unmute"],
    ] {
        let (_, out, err) = run(dir.path(), &url, args);
        for text in [&out, &err] {
            assert!(
                !text
                    .chars()
                    .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}' || c == '\r'),
                "{args:?}: raw control characters in {text:?}"
            );
        }
        assert!(
            out.contains("\\u{1b}") || err.contains("\\u{1b}"),
            "{args:?}: shown escaped: {out:?} {err:?}"
        );
    }
}

/// The call id in `A call from N is ringing; call id ID`.
fn call_id_of(out: &str) -> String {
    out.trim().rsplit(' ').next().expect("a call id").to_owned()
}

/// The state column of the call `id` in `bapiws calls`.
fn state_of(dir: &std::path::Path, url: &str, id: &str) -> String {
    let (code, out, err) = run(dir, url, &["calls"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{id} in:\n{out}"));
    ["OnHold", "Connected", "Ringing", "Calling"]
        .into_iter()
        .find(|s| line.contains(s))
        .unwrap_or_else(|| panic!("a state in {line}"))
        .to_owned()
}

#[test]
fn call_control_commands() {
    let server = Server::start(&[]);
    let dir = TempDir::new("cli");
    let (dir, url) = (dir.path(), server.url.as_str());
    let ok = |args: &[&str]| {
        let (code, out, err) = run(dir, url, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    let fails = |args: &[&str], code_text: &str| {
        let (code, out, err) = run(dir, url, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(code_text), "{args:?}: {err}");
        err
    };
    // No call: nothing fits.
    fails(&["hold"], "-32002");
    fails(&["mute"], "-32002");

    let a = call_id_of(&ok(&["sim", "incoming", "0501"]));
    let b = call_id_of(&ok(&["sim", "incoming", "0502"]));
    // --call answers that call, not the newest.
    assert_eq!(ok(&["answer", "--call", &a]).trim(), "Answered.");
    assert_eq!(state_of(dir, url, &a), "Connected");
    assert_eq!(state_of(dir, url, &b), "Ringing");
    assert_eq!(ok(&["hold"]).trim(), "On hold.");
    assert_eq!(state_of(dir, url, &a), "OnHold");
    fails(&["hold"], "-32002");
    fails(&["hold", "--call", &b], "-32004");
    fails(&["hold", "--call", "no-such-call"], "-32002");
    assert_eq!(ok(&["resume", "--call", &a]).trim(), "Resumed.");
    assert_eq!(state_of(dir, url, &a), "Connected");

    assert_eq!(ok(&["dtmf", "12*#"]).trim(), "Sent 12*#.");
    ok(&["dtmf", "9", "--call", &a]);
    fails(&["dtmf", "12x"], "-32602");
    assert_eq!(ok(&["mute"]).trim(), "Muted.");
    assert_eq!(ok(&["unmute"]).trim(), "Unmuted.");

    // Answering b holds a; with both held, resume needs --call.
    ok(&["answer", "--call", &b]);
    assert_eq!(state_of(dir, url, &a), "OnHold");
    ok(&["hold", "--call", &b]);
    let err = fails(&["resume"], "-32007");
    assert!(err.contains("--call ID"), "{err}");
    ok(&["resume", "--call", &b]);

    fails(&["transfer", "12ab"], "-32602");
    assert_eq!(
        ok(&["transfer", "+358407654321"]).trim(),
        "Transferred to +358407654321."
    );
    let (_, out, _) = run(dir, url, &["calls"]);
    assert!(!out.contains(&b), "b was transferred away:\n{out}");
    assert_eq!(ok(&["hangup", "--call", &a]).trim(), "Hung up.");
    assert_eq!(ok(&["calls"]).trim(), "No active calls.");
    fails(&["hangup", "--call", &a], "-32002");
}

#[test]
fn watch_extensions_prints_the_call_control_notifications() {
    let server = Server::start(&[]);
    let dir = TempDir::new("cli");
    let mut watch = command(dir.path())
        .args(["watch", "--extensions", "--url", &server.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut ready = String::new();
    BufReader::new(watch.stderr.take().expect("stderr"))
        .read_line(&mut ready)
        .expect("watch says it is ready");
    assert!(ready.starts_with("Watching"), "{ready}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for args in [
        &["sim", "incoming", "0501"][..],
        &["answer"],
        &["hold"],
        &["resume"],
        &["mute"],
    ] {
        let (code, out, err) = run(dir.path(), &server.url, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("MuteChanged")) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no MuteChanged; saw {seen:?}"),
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    for name in ["CallHeld", "CallResumed", "MuteChanged"] {
        assert!(seen.iter().any(|l| l.contains(name)), "{name} in {seen:?}");
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("MuteChanged") && l.contains("on")),
        "{seen:?}"
    );
}

/// What a user reads when something is wrong, in their words (issue: newcomer friction).
#[test]
fn errors_in_a_users_words() {
    let dir = TempDir::new("words");
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = command(dir.path());
        cmd.arg("serve").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A number written as text in the file: what is expected, not serde's type names.
    let quoted = dir.path().join("quoted.toml");
    std::fs::write(&quoted, "port = \"19300\"\n").expect("write");
    let (code, err) = serve(&["--config", &quoted.display().to_string()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `port`")
            && err.contains("expected a whole number from 0 to 65535, without quotes")
            && !err.contains("u16"),
        "{err}"
    );
    // A TOML syntax error says how values are written.
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "port = 1.5.0\n").expect("write");
    let (code, err) = serve(&["--config", &syntax.display().to_string()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("text needs quotes"), "{err}");
    // A bad variable is named as the variable, not as the flag.
    let (code, err) = serve(&[], &[("BAPIWS_PORT", "abc")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the variable BAPIWS_PORT=abc") && err.contains("--port"),
        "{err}"
    );
    // An unknown default backend lists the known ones.
    let (code, err) = serve(&["--default-backend", "foo"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("known: ") && err.contains("sim"), "{err}");

    let server = Server::start(&[]);
    // The list the server sends with -32003 is shown.
    let (code, _, err) = run(dir.path(), &server.url, &["state", "--backend", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("-32003") && err.contains("sim") && err.contains("lync"),
        "{err}"
    );
    // The number rule is stated once.
    let (code, _, err) = run(dir.path(), &server.url, &["call", "abc"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("leading '+'").count(), 1, "{err}");
    // Every command reports in sentences.
    let (code, out, _) = run(dir.path(), &server.url, &["sim", "availability", "DND"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "Availability set to DND.");
    // An http:// address is answered with the right scheme.
    let http = server.url.replacen("ws://", "http://", 1);
    let (code, _, err) = run(dir.path(), &http, &["state"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("use ws://"), "{err}");
    // A usage error is 2, distinct from an unreachable server (3).
    let out = command(dir.path())
        .args(["frobnicate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `watch` says how the server closed the connection, in one readable sentence.
#[test]
fn watch_reports_the_close_readably() {
    let server = Server::start(&[]);
    let dir = TempDir::new("watch-close");
    let mut watch = command(dir.path())
        .args(["watch", "--url", &server.url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let mut err = BufReader::new(watch.stderr.take().expect("stderr"));
    let mut first = String::new();
    err.read_line(&mut first).expect("the Watching line");
    let (status, _, _) = server.terminate();
    assert!(status.success());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let _ = watch.wait();
    assert!(
        rest.contains("the server closed the connection: server shutting down (1001)"),
        "{rest}"
    );
}

/// `bapiws autostart enable|status|disable`, with the entry read back where the system
/// keeps it: the per-user Run key on Windows (with `reg query`, under Wine in CI), the XDG
/// autostart entry elsewhere.
#[test]
fn autostart_enable_status_disable() {
    let dir = TempDir::new("autostart");
    let autostart = |action: &str| {
        let out = command(dir.path())
            .args(["autostart", action])
            .output()
            .expect("run bapiws");
        assert!(out.status.success(), "autostart {action}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // What the system holds: the command, or None.
    let entry = || -> Option<String> {
        if cfg!(windows) {
            let out = Command::new("reg")
                .args([
                    "query",
                    r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
                    "/v",
                    "bapiws",
                ])
                .output()
                .expect("reg query");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success().then(|| {
                text.lines()
                    .find_map(|l| l.split_once("REG_SZ").map(|(_, c)| c.trim().to_owned()))
                    .unwrap_or_default()
            })
        } else {
            let file = dir.path().join("config-home/autostart/bapiws.desktop");
            std::fs::read_to_string(file).ok().map(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("Exec="))
                    .unwrap_or_default()
                    .to_owned()
            })
        }
    };
    // On a real Windows machine this is the developer's own Run key: whatever entry is
    // there is put back at the end, even if the test fails.
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(command_line) = &self.0 {
                let _ = Command::new("reg")
                    .args([
                        "add",
                        r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
                        "/v",
                        "bapiws",
                        "/t",
                        "REG_SZ",
                        "/d",
                        command_line,
                        "/f",
                    ])
                    .status();
            }
        }
    }
    let _restore = Restore(if cfg!(windows) { entry() } else { None });
    autostart("disable");
    assert_eq!(entry(), None);
    assert!(autostart("status").starts_with("disabled"));
    let said = autostart("enable");
    assert!(said.starts_with("autostart enabled"), "{said}");
    let command_line = entry().expect("an entry after enable");
    // On Windows the windowless build beside the program starts at login, when it is
    // there (src/autostart.rs, login_program).
    let program =
        bapiws::autostart::login_program(std::path::Path::new(common::bin()), cfg!(windows), |p| {
            p.is_file()
        });
    let exe_name = program
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_owned();
    if cfg!(windows) {
        assert_eq!(
            exe_name, "bapiwsw.exe",
            "cargo builds the windowless program beside"
        );
    }
    assert!(
        command_line.starts_with('"') && command_line.ends_with(&format!("{exe_name}\" serve")),
        "{command_line}"
    );
    assert!(autostart("status").starts_with("enabled:"));
    assert!(autostart("disable").starts_with("autostart disabled"));
    assert_eq!(entry(), None);
    assert!(autostart("status").starts_with("disabled"));
}
