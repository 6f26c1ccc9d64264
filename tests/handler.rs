//! Click-to-call: `bapiws dial LINK` against a real server (the call seen by a watching
//! client), its errors and exit codes, the confirmation, and `bapiws handler` registered
//! where the system looks: on Linux a desktop entry in a private `XDG_DATA_HOME` that
//! `xdg-mime` names and `xdg-open` runs; on Windows (under Wine in CI) the URL protocol
//! keys, read back with `reg query`, that `cmd /c start tel:…` runs.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Server, TempDir, WAIT, Ws, command};
use serde_json::json;

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `bapiws dial --no-notify LINK` with extra arguments; stdin closed (nobody to ask).
fn dial(dir: &Path, extra: &[&str], link: &str) -> (i32, String, String) {
    let out = command(dir)
        .args(["dial", "--no-notify"])
        .args(extra)
        .args(["--", link])
        .stdin(Stdio::null())
        .output()
        .expect("run bapiws dial");
    text(&out)
}

/// A client that sees the server's notifications: connected, its subscription live.
async fn watcher(url: &str) -> Ws {
    let mut w = Ws::connect(url).await;
    w.call("GetState", json!([])).await;
    w
}

/// Waits for the next CallingOut; returns its number.
async fn calling_out(w: &mut Ws) -> String {
    let limit = std::time::Instant::now() + WAIT * 3;
    loop {
        assert!(std::time::Instant::now() < limit, "no CallingOut");
        let n = w.recv().await;
        if n["method"] == "CallingOut" {
            return n["params"][1].as_str().expect("number").to_owned();
        }
    }
}

async fn active_calls(url: &str) -> usize {
    let mut c = Ws::connect(url).await;
    let calls = c.call("GetActiveCalls", json!([])).await;
    calls.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn dial_places_the_call_a_watcher_sees() {
    let server = Server::start(&["--sim-auto-answer", "false"]);
    let dir = TempDir::new("dial");
    let mut w = watcher(&server.url).await;
    // The server's address from its port setting, as a clicked link finds it.
    let port = server.port.to_string();
    let (code, out, err) = dial(
        dir.path(),
        &["--port", &port, "--listen", "127.0.0.1"],
        "tel:+358-40-123 4567;ext=12",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        "Calling +358401234567. Extension 12: key it in when the call is answered."
    );
    assert_eq!(calling_out(&mut w).await, "+358401234567");
    for (link, number) in [
        ("callto://+358 40 765 4321", "+358407654321"),
        ("sip:0401234567@pbx.example.com;user=phone", "0401234567"),
        ("TEL:%2B1-(201)-555.0123", "+12015550123"),
    ] {
        let (code, out, err) = dial(dir.path(), &["--url", &server.url], link);
        assert_eq!(code, 0, "{link}: {out}{err}");
        assert_eq!(calling_out(&mut w).await, number, "{link}");
    }
}

#[tokio::test]
async fn dial_errors_say_why_with_their_exit_codes() {
    let server = Server::start(&["--dial-deny", "+1900*"]);
    let dir = TempDir::new("dial");
    // Not a number: 4, and the link's text escaped and bounded.
    let hostile = format!("tel:\u{1b}]0;owned\u{7}{}", "9".repeat(300));
    let (code, _, err) = dial(dir.path(), &["--url", &server.url], &hostile);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("control character"), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.len() < 400, "{err}");
    for link in ["http://example.com/", "tel:*21#", "sip:alice@example.com"] {
        let (code, _, err) = dial(dir.path(), &["--url", &server.url], link);
        assert_eq!(code, 4, "{link}: {err}");
        assert!(err.starts_with("bapiws: not calling: "), "{err}");
    }
    // Refused by the server's dial policy: 1, in the server's words.
    let (code, _, err) = dial(dir.path(), &["--url", &server.url], "tel:+1-900-555-0100");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("-32006") && err.contains("+19005550100"),
        "{err}"
    );
    // No server: 3, and how to start one.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port().to_string();
    drop(free);
    let (code, _, err) = dial(dir.path(), &["--port", &port], "tel:112");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("bapiws serve"), "{err}");
    // A port that cannot be reached: 2.
    let (code, _, err) = dial(dir.path(), &["--port", "0"], "tel:112");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--url"), "{err}");
    assert_eq!(active_calls(&server.url).await, 0);
}

/// `link_confirm` on, and nobody to ask (no dialog, no terminal): no call.
#[tokio::test]
async fn link_confirm_places_no_call_unconfirmed() {
    let server = Server::start(&[]);
    let dir = TempDir::new("confirm");
    let (code, out, err) = dial(
        dir.path(),
        &["--url", &server.url, "--link-confirm", "true"],
        "tel:+358401234567",
    );
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("cannot ask to confirm"), "{err}");
    // The same from the configuration file, as an administrator would set it.
    let file = dir.path().join("bapiws.toml");
    std::fs::write(&file, "link_confirm = true\n").expect("write config");
    let config = file.to_str().expect("path");
    let (code, _, _) = dial(
        dir.path(),
        &["--url", &server.url, "--config", config],
        "tel:+358401234567",
    );
    assert_eq!(code, 5);
    assert_eq!(active_calls(&server.url).await, 0);
}

#[cfg(unix)]
mod desktop {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A folder of stand-ins for `notify-send` and `zenity` that record their arguments,
    /// one a line, in `calls`; zenity answers with exit code `$FAKE_ZENITY`.
    fn fakes(dir: &Path) -> std::path::PathBuf {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for name in ["notify-send", "zenity"] {
            let script = format!(
                "#!/bin/sh\necho '[{name}]' >> \"$FAKE_CALLS\"\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$FAKE_CALLS\"; done\n{}\n",
                if name == "zenity" {
                    "exit \"${FAKE_ZENITY:-1}\""
                } else {
                    "exit 0"
                }
            );
            let path = bin.join(name);
            std::fs::write(&path, script).expect("write fake");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        bin
    }

    fn desktop_dial(dir: &Path, url: &str, extra: &[&str], link: &str, zenity: &str) -> i32 {
        let bin = fakes(dir);
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = command(dir)
            .args(["dial", "--url", url])
            .args(extra)
            .args(["--", link])
            .env("PATH", path)
            .env("FAKE_CALLS", dir.join("calls"))
            .env("FAKE_ZENITY", zenity)
            .stdin(Stdio::null())
            .output()
            .expect("run bapiws dial");
        out.status.code().unwrap_or(-1)
    }

    fn calls(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("calls")).unwrap_or_default()
    }

    /// Errors reach the desktop as a notification whose markup is escaped; the
    /// confirmation is a zenity question, and its answer decides.
    #[tokio::test]
    async fn notifications_and_the_confirmation_dialog() {
        let server = Server::start(&["--sim-auto-answer", "false"]);
        let dir = TempDir::new("desktop");
        let mut w = watcher(&server.url).await;
        let code = desktop_dial(dir.path(), &server.url, &[], "tel:<b>1</b>", "1");
        assert_eq!(code, 4);
        let seen = calls(dir.path());
        assert!(
            seen.starts_with("[notify-send]\n--app-name=bapiws\n--urgency=critical\n--\nbapiws\n"),
            "{seen}"
        );
        assert!(seen.contains("(tel:&lt;b&gt;1&lt;/b&gt;)"), "{seen}");
        assert!(!seen.contains("<b>"), "{seen}");
        std::fs::remove_file(dir.path().join("calls")).expect("rm");

        // Confirmation asked, answered no: no call.
        let confirm = ["--link-confirm", "true"];
        let code = desktop_dial(dir.path(), &server.url, &confirm, "tel:+358401234567", "1");
        assert_eq!(code, 5);
        let seen = calls(dir.path());
        assert!(
            seen.contains("[zenity]\n--question\n--title=bapiws\n--no-markup\n")
                && seen.contains("--text=Call +358401234567? A link asked for this call."),
            "{seen}"
        );
        assert_eq!(active_calls(&server.url).await, 0);
        // Answered yes: the call, and a notification that says so.
        let code = desktop_dial(dir.path(), &server.url, &confirm, "tel:+358401234567", "0");
        assert_eq!(code, 0);
        assert_eq!(calling_out(&mut w).await, "+358401234567");
        assert!(
            calls(dir.path()).contains("--urgency=normal\n--\nbapiws\nCalling +358401234567.\n"),
            "{}",
            calls(dir.path())
        );
    }

    /// The XDG environment of a fresh user: every folder private to the test.
    fn xdg(cmd: &mut Command, dir: &Path) {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_DIRS", dir.join("system-data"))
            .env("XDG_CONFIG_DIRS", dir.join("system-config"))
            // xdg-open hands a link to its handler only in a graphical session; the
            // name is never connected to.
            .env("WAYLAND_DISPLAY", "bapiws-test-no-display");
    }

    fn run(dir: &Path, program: &str, args: &[&str], port: Option<u16>) -> (i32, String, String) {
        let mut cmd = Command::new(program);
        xdg(&mut cmd, dir);
        if let Some(p) = port {
            cmd.env("BAPIWS_PORT", p.to_string());
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} (install xdg-utils): {e}"));
        text(&out)
    }

    /// `bapiws handler enable` in a private XDG_DATA_HOME: `xdg-mime` names bapiws's
    /// entry as the default for each scheme, and `xdg-open 'tel:+358-40-123 4567'` has
    /// the running server call +358401234567; `disable` undoes it.
    #[tokio::test]
    async fn xdg_open_of_a_tel_link_calls_through_bapiws() {
        let server = Server::start(&["--sim-auto-answer", "false"]);
        let dir = TempDir::new("xdg");
        let d = dir.path();
        let bin = common::bin();
        let (code, out, err) = run(d, bin, &["handler", "enable"], None);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("data/applications/bapiws-dial.desktop"),
            "{out}"
        );
        let entry = std::fs::read_to_string(d.join("data/applications/bapiws-dial.desktop"))
            .expect("the entry");
        assert!(
            entry.contains(&format!("\nExec={bin} dial -- %u\n")),
            "{entry}"
        );
        for scheme in ["tel", "callto", "sip", "sips"] {
            let handler = format!("x-scheme-handler/{scheme}");
            let (code, out, err) = run(d, "xdg-mime", &["query", "default", &handler], None);
            assert_eq!(
                (code, out.trim()),
                (0, "bapiws-dial.desktop"),
                "{scheme}: {err}"
            );
        }
        let (_, out, _) = run(d, bin, &["handler", "status"], None);
        assert!(
            out.starts_with("tel: bapiws (bapiws-dial.desktop)\n"),
            "{out}"
        );

        let mut w = watcher(&server.url).await;
        let (code, out, err) = run(d, "xdg-open", &["tel:+358-40-123 4567"], Some(server.port));
        assert_eq!(code, 0, "xdg-open: {out}{err}");
        assert_eq!(calling_out(&mut w).await, "+358401234567");
        let (code, out, err) = run(
            d,
            "xdg-open",
            &["callto:+358 40 765 4321"],
            Some(server.port),
        );
        assert_eq!(code, 0, "xdg-open: {out}{err}");
        assert_eq!(calling_out(&mut w).await, "+358407654321");

        let (code, out, err) = run(d, bin, &["handler", "disable"], None);
        assert_eq!(code, 0, "{out}{err}");
        assert!(!d.join("data/applications/bapiws-dial.desktop").exists());
        let (_, out, _) = run(
            d,
            "xdg-mime",
            &["query", "default", "x-scheme-handler/tel"],
            None,
        );
        assert_eq!(out.trim(), "", "after disable");
        let (_, out, _) = run(d, bin, &["handler", "status"], None);
        assert!(out.starts_with("tel: no program\n"), "{out}");
        let (_, out, _) = run(d, bin, &["handler", "disable"], None);
        assert!(out.contains("nothing to undo"), "{out}");
    }

    /// An administrator's default for every user: the package's entry in a system data
    /// folder and `x-scheme-handler/tel=bapiws-dial.desktop` in a system
    /// `mimeapps.list` (`/etc/xdg/mimeapps.list` on a real system; private folders
    /// here). A user who never ran `handler enable` has tel: links open bapiws.
    #[tokio::test]
    async fn a_system_mimeapps_list_makes_bapiws_the_default_for_everyone() {
        let server = Server::start(&["--sim-auto-answer", "false"]);
        let dir = TempDir::new("xdg-system");
        let d = dir.path();
        let apps = d.join("system-data/applications");
        std::fs::create_dir_all(&apps).expect("apps");
        let entry = bapiws::linkdial::handler::desktop_entry(Path::new(common::bin()));
        std::fs::write(apps.join("bapiws-dial.desktop"), entry).expect("entry");
        std::fs::create_dir_all(d.join("system-config")).expect("config");
        std::fs::write(
            d.join("system-config/mimeapps.list"),
            "[Default Applications]\nx-scheme-handler/tel=bapiws-dial.desktop\n",
        )
        .expect("mimeapps.list");
        let (_, out, _) = run(
            d,
            "xdg-mime",
            &["query", "default", "x-scheme-handler/tel"],
            None,
        );
        assert_eq!(out.trim(), "bapiws-dial.desktop");
        let (_, out, _) = run(d, common::bin(), &["handler", "status"], None);
        assert!(
            out.starts_with("tel: bapiws (bapiws-dial.desktop)\n"),
            "{out}"
        );
        assert!(
            out.contains("system-data/applications/bapiws-dial.desktop"),
            "{out}"
        );
        let mut w = watcher(&server.url).await;
        let (code, out, err) = run(d, "xdg-open", &["tel:+358-40-123 4567"], Some(server.port));
        assert_eq!(code, 0, "xdg-open: {out}{err}");
        assert_eq!(calling_out(&mut w).await, "+358401234567");
        assert!(!d.join("data/applications/bapiws-dial.desktop").exists());
    }

    /// Serves `page` as text/html to every request on 127.0.0.1, from a thread, until
    /// the process ends; the page's origin.
    fn serve_page(page: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(WAIT));
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        origin
    }

    /// One DevTools command on a browser connection (in `session`, a page's); its result.
    async fn cdp(
        c: &mut bapiws::client::Client,
        id: u64,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        c.send_text(msg.to_string())
            .await
            .expect("send to Chromium");
        loop {
            let text = tokio::time::timeout(WAIT, c.recv_text())
                .await
                .expect("Chromium answers")
                .expect("a message from Chromium");
            let reply: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// A real headless Chromium page whose `tel:` link is clicked (a mouse click sent
    /// over DevTools) hands the link to `xdg-open`, which runs `bapiws dial`: the call is
    /// placed. Chromium first asks the user whether to open an external program; a
    /// headless browser shows that question to nobody, so the profile holds the answer
    /// a user gives with "Always allow": the page's origin may open tel: links
    /// (`protocol_handler.allowed_origin_protocol_pairs`). Chromium's traffic stays on
    /// loopback (every other host name resolves to nothing).
    #[tokio::test]
    async fn a_click_on_a_tel_link_in_chromium_places_the_call() {
        let server = Server::start(&["--sim-auto-answer", "false"]);
        let dir = TempDir::new("chromium");
        let d = dir.path();
        let (code, out, err) = run(d, common::bin(), &["handler", "enable"], None);
        assert_eq!(code, 0, "{out}{err}");
        let origin = serve_page(
            "<!doctype html><title>CRM</title><a id=l href='tel:+358-40-123 4567' style='display:block;width:300px;height:80px'>+358 40 123 4567</a>",
        );
        let profile = d.join("chromium-profile");
        std::fs::create_dir_all(profile.join("Default")).expect("profile");
        let prefs = json!({"protocol_handler": {"allowed_origin_protocol_pairs": {origin.clone(): {"tel": true}}}});
        std::fs::write(profile.join("Default/Preferences"), prefs.to_string()).expect("prefs");
        let mut cmd = Command::new("chromium");
        xdg(&mut cmd, d);
        let mut browser = cmd
            .env("BAPIWS_PORT", server.port.to_string())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-proxy-server",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium (install Debian's chromium)");
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let stderr = browser.stderr.take().expect("stderr");
        let browser = Kill(browser);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let devtools = rx
            .recv_timeout(WAIT * 3)
            .expect("Chromium's DevTools address");
        let mut c = bapiws::client::Client::connect(&devtools)
            .await
            .expect("connect to DevTools");
        let target = cdp(
            &mut c,
            1,
            None,
            "Target.createTarget",
            json!({"url": format!("{origin}/")}),
        )
        .await;
        let attached = cdp(
            &mut c,
            2,
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
        let session = attached["sessionId"].as_str().expect("session").to_owned();
        let s = Some(session.as_str());
        let mut rect = serde_json::Value::Null;
        for i in 0..100 {
            let r = cdp(
                &mut c,
                10 + i,
                s,
                "Runtime.evaluate",
                json!({"expression": "document.readyState === 'complete' && document.getElementById('l') ? JSON.stringify(document.getElementById('l').getBoundingClientRect()) : ''", "returnByValue": true}),
            )
            .await;
            if let Some(v) = r["result"]["value"].as_str().filter(|v| !v.is_empty()) {
                rect = serde_json::from_str(v).expect("rect");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (x, y) = (
            rect["x"].as_f64().expect("the link is on the page") + 20.0,
            rect["y"].as_f64().expect("y") + 20.0,
        );
        let mut w = watcher(&server.url).await;
        for (i, kind) in ["mousePressed", "mouseReleased"].into_iter().enumerate() {
            cdp(
                &mut c,
                200 + i as u64,
                s,
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
        assert_eq!(calling_out(&mut w).await, "+358401234567");
        let _ = c.close(None).await;
        drop(browser);
    }
}

#[cfg(windows)]
mod registry {
    use super::*;
    use std::os::windows::process::CommandExt;

    /// `reg query KEY /ve`: the default value's text, or None.
    fn default_value(key: &str) -> Option<String> {
        let out = Command::new("reg")
            .args(["query", key, "/ve"])
            .output()
            .expect("reg query");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success().then(|| {
            text.lines()
                .find_map(|l| l.split_once("REG_SZ").map(|(_, c)| c.trim().to_owned()))
                .unwrap_or_default()
        })
    }

    fn command_key(scheme: &str) -> String {
        format!(r"HKCU\Software\Classes\{scheme}\shell\open\command")
    }

    /// On a real Windows machine these are the developer's own keys: a command that was
    /// there is put back at the end, even if the test fails.
    struct Restore(Vec<(String, String)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            for (key, value) in &self.0 {
                let _ = Command::new("reg")
                    .args(["add", key, "/ve", "/t", "REG_SZ", "/d", value, "/f"])
                    .status();
            }
        }
    }

    fn handler(dir: &Path, args: &[&str]) -> String {
        let out = command(dir)
            .arg("handler")
            .args(args)
            .output()
            .expect("bapiws handler");
        let (code, out, err) = text(&out);
        assert_eq!(code, 0, "handler {args:?}: {out}{err}");
        out
    }

    /// Removes the machine-wide keys however the test ends (the MSI test that follows
    /// under Wine needs a clean prefix).
    struct MachineKeys(std::path::PathBuf);
    impl Drop for MachineKeys {
        fn drop(&mut self) {
            let _ = command(&self.0)
                .args(["handler", "disable", "--machine"])
                .output();
        }
    }

    /// `bapiws handler enable` writes this user's URL protocol keys, the ProgID and the
    /// capabilities (read back with `reg query`) and `disable` removes them; `handler
    /// enable --machine` writes the same under HKLM, and `cmd /c start "" "tel:…"` then
    /// has the running server call the number. (Under Wine 8, `start` reads HKLM's keys
    /// only: its HKEY_CLASSES_ROOT has no per-user part, which Windows merges in. On a
    /// real Windows machine `--machine` needs an administrator.)
    #[tokio::test]
    async fn start_of_a_tel_link_calls_through_bapiws() {
        let schemes = ["tel", "callto", "sip", "sips"];
        let _restore = Restore(
            schemes
                .iter()
                .filter_map(|s| default_value(&command_key(s)).map(|v| (command_key(s), v)))
                .filter(|(_, v)| !v.to_ascii_lowercase().contains("bapiws"))
                .collect(),
        );
        let server = Server::start(&["--sim-auto-answer", "false"]);
        let dir = TempDir::new("registry");
        let said = handler(dir.path(), &["enable"]);
        assert!(said.contains("for this user (HKCU"), "{said}");
        for s in schemes {
            let command_line = default_value(&command_key(s)).expect("a command after enable");
            assert!(
                command_line.starts_with('"')
                    && command_line.ends_with("bapiws.exe\" dial -- \"%1\""),
                "{s}: {command_line}"
            );
        }
        assert_eq!(
            default_value(r"HKCU\Software\Classes\bapiws.url\shell\open\command"),
            default_value(&command_key("tel"))
        );
        let caps = Command::new("reg")
            .args([
                "query",
                r"HKCU\Software\bapiws\Capabilities\URLAssociations",
                "/v",
                "tel",
            ])
            .output()
            .expect("reg query");
        assert!(String::from_utf8_lossy(&caps.stdout).contains("bapiws.url"));
        let status = handler(dir.path(), &["status"]);
        assert!(
            status.starts_with("tel: bapiws (HKCU\\Software\\Classes\\tel: "),
            "{status}"
        );
        handler(dir.path(), &["disable"]);
        for s in schemes {
            assert_eq!(default_value(&command_key(s)), None, "{s} after disable");
        }
        assert_eq!(
            default_value(r"HKCU\Software\Classes\bapiws.url\shell\open\command"),
            None
        );

        let _machine = MachineKeys(dir.path().to_owned());
        let said = handler(dir.path(), &["enable", "--machine"]);
        assert!(said.contains("for every user (HKLM"), "{said}");
        let machine_key = r"HKLM\Software\Classes\tel\shell\open\command";
        assert!(default_value(machine_key).is_some_and(|c| c.ends_with("dial -- \"%1\"")));
        let mut w = watcher(&server.url).await;
        let status = Command::new("cmd")
            .raw_arg(r#"/c start "" "tel:+358401234567""#)
            .env("BAPIWS_PORT", server.port.to_string())
            .status()
            .expect("cmd /c start");
        assert!(status.success(), "{status}");
        assert_eq!(calling_out(&mut w).await, "+358401234567");
        handler(dir.path(), &["disable", "--machine"]);
        assert_eq!(default_value(machine_key), None, "after disable --machine");
    }
}
