//! Test support: the real `bapiws` binary on an ephemeral port, and a WebSocket client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bapiws::client::{Client, ClientError, ConnectOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

pub mod baresip;

/// How long a test waits for any one expected message.
pub const WAIT: Duration = Duration::from_secs(10);

/// A private temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bapiws-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `bapiws` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bapiws")
}

/// The Windows build under test instead, run with Wine: the `bapiws.exe` that the variable
/// `BAPIWS_TEST_WINE_EXE` names (scripts/windows-test.sh sets it, with `WINEPREFIX`, to run
/// a named subset of the Linux tests against the Windows build). None: the Linux binary.
pub fn wine_exe() -> Option<&'static Path> {
    static EXE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let exe = PathBuf::from(std::env::var_os("BAPIWS_TEST_WINE_EXE")?);
        assert!(
            exe.is_file(),
            "BAPIWS_TEST_WINE_EXE names {}, which is not a file",
            exe.display()
        );
        Some(exe)
    })
    .as_deref()
}

/// Whether the server under test is a Windows program (built for Windows, or the Windows
/// build under Wine): it is stopped by closing its stdin, as no signal reaches it.
pub fn windows_server() -> bool {
    cfg!(windows) || wine_exe().is_some()
}

/// Under Wine, that `child` really is the Windows build: Wine's loader runs it in the
/// process it was started as, whose command line then names the `.exe` (Linux's /proc).
fn assert_is_the_program_under_test(child: &Child) {
    if let Some(exe) = wine_exe() {
        let name = exe
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bapiws.exe");
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains(name) && !cmdline.contains(bin()),
            "the server under test is not {name} under Wine: {cmdline}"
        );
    }
}

/// How long the server may take to print its start-up line (Wine starts slowly).
fn start_wait() -> Duration {
    if wine_exe().is_some() {
        Duration::from_secs(60)
    } else {
        WAIT
    }
}

/// How the tests connect: every wait at most [`WAIT`].
fn options() -> ConnectOptions {
    ConnectOptions::default()
        .connect_timeout(WAIT)
        .reply_timeout(WAIT)
}

/// A `bapiws` command with a clean environment: no BAPIWS_* variables and no per-user
/// config file.
pub fn command(dir: &Path) -> Command {
    let mut cmd = match wine_exe() {
        Some(exe) => {
            let mut c = Command::new("wine");
            c.arg(exe).env("WINEDEBUG", "-all");
            c
        }
        None => Command::new(bin()),
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("BAPIWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", dir.join("config-home"));
    cmd.env("HOME", dir);
    cmd
}

/// A running server process.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub banner: String,
    pub dir: TempDir,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// The server's standard input: on Windows, closing it is the clean stop
    /// (`--exit-on-stdin-close`), as no signal reaches a program without a console.
    stdin: Option<std::process::ChildStdin>,
}

/// `bapiws serve` with a clean environment (see [`command`]); on Windows with
/// `--exit-on-stdin-close` and a piped stdin, so that [`stop`] can stop it cleanly.
pub fn serve_command(dir: &Path) -> Command {
    let mut cmd = command(dir);
    cmd.arg("serve");
    if windows_server() {
        cmd.arg("--exit-on-stdin-close").stdin(Stdio::piped());
    }
    cmd
}

/// Asks a server started with [`serve_command`] to stop cleanly (SIGTERM on Unix; its
/// stdin closed on Windows).
pub fn stop(child: &mut Child) {
    let mut stdin = child.stdin.take();
    request_stop(child, &mut stdin);
}

/// Asks a server to stop cleanly: SIGTERM on Unix; on Windows, closing its standard input
/// (it runs with `--exit-on-stdin-close`).
fn request_stop(child: &Child, stdin: &mut Option<std::process::ChildStdin>) {
    if windows_server() {
        drop(stdin.take());
    } else {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
}

impl Server {
    /// Starts `bapiws serve` on 127.0.0.1 with a free port, a private log folder, a fast
    /// simulated far end, and `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with_env(extra, &[])
    }

    /// [`Server::start`] with variables `env` set for the server only.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("server");
        let log_dir = dir.path().join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let mut cmd = command(dir.path());
        cmd.args([
            "serve",
            "--port",
            "0",
            "--listen",
            "127.0.0.1",
            "--log-level",
            "debug",
        ]);
        if !extra.contains(&"--log-dir") {
            cmd.arg("--log-dir").arg(&log_dir);
        }
        cmd.args(["--sim-answer-delay-ms", "200"]).args(extra);
        cmd.envs(env.iter().copied());
        if windows_server() {
            cmd.arg("--exit-on-stdin-close").stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start bapiws");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let banner = read_banner(&mut child);
        assert_is_the_program_under_test(&child);
        let (url, port) = url_from_banner(&banner);
        Server {
            child,
            url,
            port,
            banner,
            dir,
            stderr: Some(stderr),
            stdin,
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Asks the server to stop cleanly (SIGTERM; on Windows its stdin closed) and waits
    /// for the exit; returns the exit status, stderr and the server's folder (kept until
    /// dropped).
    pub fn terminate(mut self) -> (std::process::ExitStatus, String, TempDir) {
        request_stop(&self.child, &mut self.stdin);
        let status =
            wait_exit(&mut self.child, WAIT).expect("server exited after the stop request");
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let dir = std::mem::replace(&mut self.dir, TempDir(PathBuf::new()));
        (status, err, dir)
    }

    /// Kills the server and returns what it wrote on stderr.
    pub fn stderr_after_kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Gracefully, so that a managed baresip is stopped too; then by force.
        if let Ok(None) = self.child.try_wait() {
            request_stop(&self.child, &mut self.stdin);
            if wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// The address and port in a start-up line.
pub fn url_from_banner(banner: &str) -> (String, u16) {
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .map(|w| w.trim_end_matches([';', ',']).to_owned())
        .unwrap_or_else(|| panic!("no ws:// address in banner: {banner:?}"));
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in url");
    (url, port)
}

/// Reads the start-up line from a child's stdout, waiting at most [`WAIT`].
pub fn read_banner(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(start_wait())
        .expect("the server printed its start-up line")
}

/// Waits for a child to exit, up to `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A WebSocket client for tests: the crate's [`Client`] (in `ws`, which is also the raw
/// [`Sink`](futures_util::Sink) and [`Stream`](futures_util::Stream) of frames), with
/// helpers that panic on anything unexpected and wait at most [`WAIT`].
pub struct Ws {
    pub ws: Client,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        Ws::try_connect(url, None).await.expect("connect")
    }

    pub async fn connect_with_origin(url: &str, origin: &str) -> Ws {
        Ws::try_connect(url, Some(origin)).await.expect("connect")
    }

    /// Connects, returning the handshake's error (an HTTP refusal is `WsError::Http`).
    pub async fn try_connect(url: &str, origin: Option<&str>) -> Result<Ws, WsError> {
        let mut options = options();
        if let Some(o) = origin {
            options = options.origin(o);
        }
        Ws::open(url, &options).await
    }

    /// Connects with a tiny receive buffer, so that a client that stops reading fills up
    /// quickly.
    pub async fn connect_small_buffer(url: &str) -> Ws {
        Ws::open(url, &options().socket_recv_buffer(4096))
            .await
            .expect("connect")
    }

    async fn open(url: &str, options: &ConnectOptions) -> Result<Ws, WsError> {
        match Client::connect_with(url, options).await {
            Ok(ws) => Ok(Ws { ws }),
            Err(ClientError::Unreachable { source, .. }) => Err(source),
            Err(e) => panic!("connect timed out: {e}"),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send_text(text.to_owned()).await.expect("send");
    }

    /// The next text message, parsed.
    pub async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// The next text message, as sent.
    pub async fn recv_text(&mut self) -> String {
        let msg = tokio::time::timeout(WAIT, self.ws.recv_text())
            .await
            .expect("timed out waiting for a message");
        match msg {
            Ok(text) => text.to_string(),
            Err(ClientError::Closed(c)) => panic!("closed by server: {c:?}"),
            Err(ClientError::Ended) => panic!("connection ended"),
            Err(e) => panic!("read error: {e}"),
        }
    }

    /// Waits for the server's close frame.
    pub async fn recv_close(&mut self, limit: Duration) -> Option<CloseFrame> {
        let msg = tokio::time::timeout(limit, self.ws.recv_close())
            .await
            .expect("timed out waiting for the close frame");
        match msg {
            Ok(c) => c,
            Err(ClientError::Ended) => panic!("connection ended without a close frame"),
            Err(e) => panic!("read error before close frame: {e}"),
        }
    }

    /// Asserts nothing arrives for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(d, self.ws.next()).await {
            panic!("expected silence, got {t}");
        }
    }

    /// Sends a request and returns the whole response, checking that no notification
    /// arrives before it.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.ws.send_request(method, params).await.expect("send");
        let resp = self.recv().await;
        assert_eq!(resp["id"], json!(id), "reply to {method}: {resp}");
        resp
    }

    /// Sends a request and returns its result, skipping any notifications before the
    /// reply (for a connection that only drives the simulated phone).
    pub async fn control(&mut self, method: &str, params: Value) -> Value {
        let msg = self
            .ws
            .request(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        self.ws.take_kept();
        assert!(msg.get("error").is_none(), "{method} failed: {msg}");
        msg["result"].clone()
    }

    /// Sends a request and returns its result, failing on an error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let resp = self.request(method, params).await;
        assert!(resp.get("error").is_none(), "{method} failed: {resp}");
        resp["result"].clone()
    }

    /// Sends a request and returns its error code.
    pub async fn error_code(&mut self, method: &str, params: Value) -> i64 {
        let resp = self.request(method, params).await;
        resp["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{method}: expected an error, got {resp}"))
    }

    /// The next message, which must be notification `method`; returns its params.
    pub async fn expect_notification(&mut self, method: &str) -> Vec<String> {
        let n = self.recv().await;
        assert_eq!(n["method"], json!(method), "expected {method}, got {n}");
        assert!(n.get("id").is_none(), "notifications carry no id: {n}");
        n["params"]
            .as_array()
            .expect("params array")
            .iter()
            .map(|v| v.as_str().expect("string param").to_owned())
            .collect()
    }
}

/// `{"jsonrpc":"2.0","method":M,"params":P}` shapes reduced to "M p1 p2".
pub fn brief(n: &Value) -> String {
    let mut s = n["method"].as_str().unwrap_or("?").to_owned();
    for p in n["params"].as_array().into_iter().flatten() {
        s.push(' ');
        s.push_str(p.as_str().unwrap_or("?"));
    }
    s
}

/// A process's resident memory in KiB (`VmRSS` of /proc/PID/status; Linux).
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}
