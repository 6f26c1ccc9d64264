//! Logging over the real binary: a flood cannot fill the disk, a stderr that nobody reads
//! stops nothing, hostile text is escaped, the log file cannot be hijacked, old files are
//! deleted, and a closed stdout or stderr is no reason to stop (or to panic).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir, Ws};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Today's log file in `dir`.
fn today_file(dir: &Path) -> PathBuf {
    dir.join(format!(
        "BAPIWS_{}.log",
        chrono::Local::now().format("%Y%m%d")
    ))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits up to `limit` until the file at `path` contains `needle`; returns its text.
fn wait_for_text(path: &Path, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = read_lossy(path);
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "{} never got {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pipe whose reading end is already closed: writing to it fails with a broken pipe.
fn broken_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

/// Reads a child's pipe to the end on a thread of its own.
fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// SIGTERM, then the exit status (the server must stop within [`common::WAIT`]).
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    common::stop(child);
    match common::wait_exit(child, common::WAIT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not stop after SIGTERM");
        }
    }
}

/// The port in the "started" line of a log file.
fn port_from_log(text: &str) -> u16 {
    let line = text
        .lines()
        .find(|l| l.contains(" started "))
        .unwrap_or_else(|| panic!("no started line:\n{text}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line}"))
}

/// GET /health over raw TCP; returns the status code.
async fn health(port: u16) -> u16 {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"))
    };
    tokio::time::timeout(common::WAIT, fut)
        .await
        .expect("/health answered in time")
}

/// A WebSocket handshake over raw TCP with these header bytes; returns the status code.
async fn handshake(port: u16, extra_headers: &[u8]) -> u16 {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut req = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        )
        .into_bytes();
        req.extend_from_slice(extra_headers);
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).await.expect("write");
        let mut head = [0u8; 12];
        let _ = s.read_exact(&mut head).await;
        String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    tokio::time::timeout(common::WAIT, fut)
        .await
        .expect("handshake answered in time")
}

/// A refused handshake over raw TCP: a Host header that is not allowed.
async fn refused_handshake(port: u16, host: &str) {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, s.read_to_end(&mut sink)).await;
}

/// How long the flood runs.
const FLOOD: Duration = Duration::from_secs(4);

/// The most log-file bytes per second a flood may cause. Without limits the same flood
/// wrote about 24 MB per second (debug build; see docs/reliability.md).
const BUDGET_BYTES_PER_SEC: f64 = 128.0 * 1024.0;

/// Ten connections, each with a 7 KB origin, sending batches of 100 failing notifications
/// (`HangUp` with no call, and an unknown method) as fast as they are handled, while
/// eight at a time make handshakes that are refused (a 7 KB Host header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_cannot_fill_the_disk() {
    let server = Server::start(&[]);
    let path = today_file(&server.log_dir());
    wait_for_text(&path, "started", common::WAIT);
    // A 7 KB origin whose end names the page's real owner.
    let origin = format!("https://crm.company.com.{}.evil.example", "a".repeat(7000));
    let mut batch = Vec::new();
    for i in 0..100 {
        let method = if i % 2 == 0 { "HangUp" } else { "x" };
        batch.push(json!({"jsonrpc": "2.0", "method": method}));
    }
    let batch = serde_json::to_string(&batch).expect("batch");
    let host = format!("evil.example.{}", "b".repeat(7000));
    let port = server.port;
    let before = file_len(&path);
    let start = Instant::now();
    let refusals = tokio::spawn(async move {
        let mut n = 0u64;
        while start.elapsed() < FLOOD {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let host = host.clone();
                    tokio::spawn(async move { refused_handshake(port, &host).await })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
                n += 1;
            }
        }
        n
    });
    let floods: Vec<_> = (0..10)
        .map(|_| {
            let (url, origin, batch) = (server.url.clone(), origin.clone(), batch.clone());
            tokio::spawn(async move {
                let mut flood = Ws::connect_with_origin(&url, &origin).await;
                let mut batches = 0u64;
                while start.elapsed() < FLOOD {
                    for _ in 0..10 {
                        flood.send(&batch).await;
                        batches += 1;
                    }
                    // A round trip, so that the server has handled what was sent.
                    assert_eq!(flood.call("GetState", json!([])).await, json!("Available"));
                }
                batches
            })
        })
        .collect();
    let mut batches = 0;
    for f in floods {
        batches += f.await.expect("flood");
    }
    let refused = refusals.await.expect("join");
    let elapsed = start.elapsed().as_secs_f64();
    // What the writer still had queued counts too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = file_len(&path) - before;
    let rate = grown as f64 / elapsed;
    println!(
        "flood: {batches} batches of 100 notifications on 10 connections and {refused} \
         refused handshakes in {elapsed:.1} s; the log file grew by {grown} bytes: \
         {rate:.0} bytes/s"
    );
    assert!(
        rate < BUDGET_BYTES_PER_SEC,
        "the log file grew by {rate:.0} bytes/s during the flood"
    );
    // The server still answers.
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    // What was left out is summed up (every 10 s).
    let text = wait_for_text(&path, "similar lines suppressed", Duration::from_secs(15));
    // Every line is bounded, and the audit lines show the origin's owning domain.
    assert!(
        text.lines().all(|l| l.len() <= 5000),
        "a line longer than 5000 bytes"
    );
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("call control") && l.contains(" origin="))
        .collect();
    assert!(!audit.is_empty(), "no call-control line:\n{text}");
    for line in audit {
        assert!(line.contains(".evil.example "), "{line}");
        assert!(!line.contains(&"a".repeat(300)), "{line}");
    }
}

/// A cut origin keeps its end, the owning domain, wherever it is logged.
#[tokio::test]
async fn every_logged_origin_keeps_its_owning_domain() {
    let server = Server::start(&["--allowed-origins", "company.com"]);
    let path = today_file(&server.log_dir());
    let long = format!("https://crm.company.com.{}.evil.example", "a".repeat(200));
    let header = format!("Origin: {long}\r\n");
    assert_eq!(handshake(server.port, header.as_bytes()).await, 403);
    let (_, stderr, _dir) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    let text = read_lossy(&path);
    for out in [&text, &stderr] {
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("origin=")).collect();
        assert!(!lines.is_empty(), "{out}");
        for line in lines {
            let origin = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("origin="))
                .unwrap_or_default();
            assert!(
                !origin.contains("crm.company.com") || origin.ends_with(".evil.example"),
                "a cut origin must keep its end: {line}"
            );
        }
    }
}

/// A server whose stderr is a pipe that nobody reads.
struct Undrained {
    child: Child,
    _stderr: std::process::ChildStderr,
    url: String,
    port: u16,
    _dir: TempDir,
}

fn start_undrained() -> Undrained {
    let dir = TempDir::new("undrained");
    let log_dir = dir.path().join("logs");
    let mut child = common::serve_command(dir.path())
        .args(["--port", "0", "--listen", "127.0.0.1"])
        .args(["--log-level", "debug", "--log-dir"])
        .arg(&log_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bapiws");
    let stderr = child.stderr.take().expect("stderr");
    let (url, port) = common::url_from_banner(&common::read_banner(&mut child));
    Undrained {
        child,
        _stderr: stderr,
        url,
        port,
        _dir: dir,
    }
}

impl Drop for Undrained {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bapiws serve 2>&1 | less`, or a terminal stopped with Ctrl-S: stderr fills up and
/// nobody reads it. Every request is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_pipe_that_nobody_reads_does_not_stop_the_server() {
    let mut server = start_undrained();
    // 100 clients, each with requests that log at debug level: far more than a pipe holds.
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let mut c =
                    Ws::connect_with_origin(&url, &format!("https://page{i}.example")).await;
                for n in 0..40 {
                    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
                    // A few call-control requests (audit lines), well within their own
                    // rate limit.
                    if n % 8 == 0 {
                        assert_eq!(c.error_code("HangUp", json!([])).await, -32002);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("every client was answered");
    }
    assert_eq!(health(server.port).await, 200);
    let mut c = Ws::connect(&server.url).await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    drop(c);
    // And SIGTERM still stops it, with its normal exit code.
    let status = tokio::task::spawn_blocking(move || terminate(&mut server.child))
        .await
        .expect("join");
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Characters that must never reach a log file as they are: control characters, the
/// line and paragraph separators, and the bidirectional controls.
fn unsafe_in_a_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{61c}' | '\u{200e}' | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Origins with control characters, line separators and bidirectional controls reach
/// the file escaped: one line each, and nothing that reorders or hides text.
#[tokio::test]
async fn hostile_characters_are_escaped_in_the_file() {
    let server = Server::start(&[]);
    let path = today_file(&server.log_dir());
    // Bytes an HTTP header may carry beyond ASCII: U+202E (right-to-left override),
    // U+2066 (left-to-right isolate), U+2028 (line separator), U+0085 (next line),
    // U+200F (right-to-left mark).
    let origin =
        "https://crm.example\u{202e}elpmaxe.live\u{2066}\u{2028}forged line\u{85}x\u{200f}";
    let header = format!("Origin: {origin}\r\n");
    assert_eq!(handshake(server.port, header.as_bytes()).await, 101);
    let (status, stderr, _dir) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success());
    let text = wait_for_text(&path, "stopped", common::WAIT);
    let line = text
        .lines()
        .find(|l| l.contains("connection opened") && l.contains("crm.example"))
        .unwrap_or_else(|| panic!("no line for the connection:\n{text}"));
    for escaped in [
        "\\u{202e}",
        "\\u{2066}",
        "\\u{2028}",
        "\\u{85}",
        "\\u{200f}",
    ] {
        assert!(line.contains(escaped), "{escaped} missing in {line}");
    }
    for out in [&text, &stderr] {
        let raw: Vec<char> = out
            .chars()
            .filter(|&c| unsafe_in_a_log(c) && c != '\n')
            .collect();
        assert!(raw.is_empty(), "raw characters {raw:?} in:\n{out}");
    }
}

/// Today's name in the log folder already taken by something else: the server does not
/// follow it, write to it or wait on it, and keeps serving.
#[cfg(unix)]
mod hijacked_file {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Starts a server on `log_dir` where today's name is already taken, checks that it
    /// serves and stops, and returns its stderr.
    async fn serve_beside(dir: &TempDir) -> String {
        let log_dir = dir.path().join("logs");
        let server = Server::start(&["--log-dir", log_dir.to_str().expect("utf-8")]);
        let mut c = Ws::connect_with_origin(&server.url, "https://crm.example").await;
        assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
        assert_eq!(c.error_code("HangUp", json!([])).await, -32002);
        assert_eq!(health(server.port).await, 200);
        drop(c);
        let (status, stderr, _) = tokio::task::spawn_blocking(move || server.terminate())
            .await
            .expect("join");
        assert_eq!(status.code(), Some(0), "{status}\n{stderr}");
        assert!(stderr.contains("cannot write the log file"), "{stderr}");
        assert!(stderr.contains("still serving"), "{stderr}");
        // Stderr still had every line.
        assert!(stderr.contains("call control"), "{stderr}");
        stderr
    }

    fn log_dir(tag: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(tag);
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("logs");
        let today = today_file(&logs);
        (dir, today)
    }

    #[tokio::test]
    async fn a_symbolic_link_is_not_followed() {
        let (dir, today) = log_dir("symlink");
        let target = dir.path().join("victim.txt");
        std::fs::write(&target, "precious\n").expect("write");
        std::os::unix::fs::symlink(&target, &today).expect("symlink");
        let stderr = serve_beside(&dir).await;
        assert!(stderr.contains("symbolic link"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious\n"
        );
        assert!(
            std::fs::symlink_metadata(&today)
                .expect("lstat")
                .file_type()
                .is_symlink()
        );
    }

    #[tokio::test]
    async fn a_fifo_does_not_hang_the_server() {
        let (dir, today) = log_dir("fifo");
        let c = std::ffi::CString::new(today.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
        // Without a reader (an open for writing would wait forever).
        let stderr = serve_beside(&dir).await;
        assert!(stderr.contains("FIFO"), "{stderr}");
        // With a reader: opened, but refused, and nothing written to it.
        use std::os::unix::fs::OpenOptionsExt;
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&today)
            .expect("open the FIFO for reading");
        let stderr = serve_beside(&dir).await;
        assert!(stderr.contains("not a regular file"), "{stderr}");
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got);
        assert!(got.is_empty(), "written to the FIFO: {got:?}");
    }

    #[tokio::test]
    async fn a_file_others_may_write_is_refused() {
        let (dir, today) = log_dir("mode");
        std::fs::write(&today, "forged line\n").expect("write");
        std::fs::set_permissions(&today, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let stderr = serve_beside(&dir).await;
        assert!(stderr.contains("mode 0666"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&today).expect("read"),
            "forged line\n"
        );
    }

    #[tokio::test]
    async fn a_second_name_for_another_file_is_refused() {
        let (dir, today) = log_dir("hardlink");
        let target = dir.path().join("victim.txt");
        std::fs::write(&target, "precious\n").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::hard_link(&target, &today).expect("link");
        let stderr = serve_beside(&dir).await;
        assert!(stderr.contains("hard links"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious\n"
        );
    }

    /// Only root can give a file away; other users skip this case.
    #[tokio::test]
    async fn a_file_of_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: cannot create a file of another user; skipped");
            return;
        }
        let (dir, today) = log_dir("owner");
        std::fs::write(&today, "someone else's\n").expect("write");
        std::fs::set_permissions(&today, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::chown(&today, Some(65534), Some(65534)).expect("chown");
        let stderr = serve_beside(&dir).await;
        assert!(stderr.contains("belongs to another user"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&today).expect("read"),
            "someone else's\n"
        );
    }

    /// The log file bapiws creates is readable and writable by its user only.
    #[tokio::test]
    async fn a_new_log_file_is_private() {
        let server = Server::start(&[]);
        let path = today_file(&server.log_dir());
        wait_for_text(&path, "started", common::WAIT);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
}

/// The default log folder is a private per-user folder, created 0700.
#[cfg(all(unix, not(target_os = "macos")))]
#[tokio::test]
async fn the_default_log_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("default-dir");
    let state = dir.path().join("state");
    let mut child = common::serve_command(dir.path())
        .env("XDG_STATE_HOME", &state)
        .args(["--port", "0", "--listen", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bapiws");
    let banner = common::read_banner(&mut child);
    let folder = state.join("bapiws");
    assert!(banner.contains(folder.to_str().expect("utf-8")), "{banner}");
    let file = today_file(&folder);
    wait_for_text(&file, "started", common::WAIT);
    let mode = std::fs::metadata(&folder)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
    assert_eq!(terminate(&mut child).code(), Some(0));
}

/// Files of days before the last 7 are deleted at start; anything else is left alone.
#[test]
fn old_log_files_are_deleted_at_start() {
    let dir = TempDir::new("retention");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let today = chrono::Local::now().date_naive();
    let day = |n: u64| {
        logs.join(format!(
            "BAPIWS_{}.log",
            (today - chrono::Days::new(n)).format("%Y%m%d")
        ))
    };
    let deleted = [logs.join("BAPIWS_20000101.log"), day(7), day(30)];
    let kept = [
        day(1),
        day(6),
        logs.join("BAPIWS_notes.log"),
        logs.join("BAPIWS_2000010.log"),
        logs.join("other.log"),
    ];
    for p in deleted.iter().chain(&kept) {
        std::fs::write(p, "old\n").expect("write");
    }
    // A folder and a link with old names are not files of ours to delete.
    let folder = logs.join("BAPIWS_19990101.log");
    std::fs::create_dir_all(&folder).expect("folder");
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "keep\n").expect("write");
    #[cfg(unix)]
    let link = {
        let link = logs.join("BAPIWS_19980101.log");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        link
    };
    let server = Server::start(&["--log-dir", logs.to_str().expect("utf-8")]);
    let start = Instant::now();
    while deleted.iter().any(|p| p.exists()) {
        assert!(start.elapsed() < common::WAIT, "old files were not deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &kept {
        assert!(p.exists(), "{} was deleted", p.display());
    }
    assert!(folder.is_dir());
    #[cfg(unix)]
    assert!(std::fs::symlink_metadata(&link).is_ok());
    assert_eq!(std::fs::read_to_string(&outside).expect("read"), "keep\n");
    let (status, _, _dir) = server.terminate();
    assert!(status.success());
}

/// Once today's file reaches its daily limit, one "log full until midnight" line, and
/// the file grows no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_size_limit_holds() {
    let limit = 16 * 1024u64;
    let server = Server::start(&["--log-max-bytes-per-day", &limit.to_string()]);
    let path = today_file(&server.log_dir());
    let mut conns = Vec::new();
    for i in 0..100 {
        let mut c = Ws::connect_with_origin(&server.url, &format!("https://p{i}.example")).await;
        assert_eq!(c.error_code("HangUp", json!([])).await, -32002);
        conns.push(c);
    }
    let text = wait_for_text(&path, "log full until midnight", common::WAIT);
    let len = file_len(&path);
    assert!(len <= limit + 1024, "{len} bytes");
    for c in &mut conns {
        assert_eq!(c.error_code("HangUp", json!([])).await, -32002);
    }
    drop(conns);
    let (status, stderr, _dir) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success());
    assert_eq!(file_len(&path), len, "the full file grew");
    assert_eq!(text.matches("log full until midnight").count(), 1);
    // Stderr still got the lines the file did not.
    assert!(stderr.contains("stopped"), "{stderr}");
}

/// `bapiws serve | head -0`: stdout's reader is gone before the start-up line. The
/// server says so in its log and serves; it neither panics nor stops.
#[tokio::test]
async fn a_closed_stdout_is_no_reason_to_stop() {
    let dir = TempDir::new("stdout");
    let logs = dir.path().join("logs");
    let mut child = common::serve_command(dir.path())
        .args(["--port", "0", "--listen", "127.0.0.1", "--log-dir"])
        .arg(&logs)
        .stdout(broken_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bapiws");
    let stderr = collect(child.stderr.take().expect("stderr"));
    let path = today_file(&logs);
    let text = wait_for_text(&path, "cannot print the start-up line", common::WAIT);
    let port = port_from_log(&text);
    assert_eq!(health(port).await, 200);
    let mut c = Ws::connect(&format!("ws://127.0.0.1:{port}")).await;
    assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
    drop(c);
    let status = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .expect("join");
    let stderr = stderr.join().expect("stderr");
    assert_eq!(status.code(), Some(0), "{status}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Stderr's reader is gone (a broken pipe) or stderr is not open at all, and the log
/// folder cannot be written: nothing is left to log to, and the server still serves.
#[tokio::test]
async fn a_closed_stderr_and_an_unwritable_log_folder_are_no_reason_to_stop() {
    for variant in ["broken pipe", "closed"] {
        let dir = TempDir::new("stderr");
        // A "folder" under a file: it cannot be created, whoever we are.
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "x").expect("write");
        let logs = file.join("logs");
        let mut cmd = common::serve_command(dir.path());
        cmd.args(["--port", "0", "--listen", "127.0.0.1"])
            .args(["--log-level", "debug", "--log-dir"])
            .arg(&logs)
            .stdout(Stdio::piped());
        match variant {
            "broken pipe" => {
                cmd.stderr(broken_pipe());
            }
            _ => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: only close(2), which is async-signal-safe, between fork and
                    // exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::close(2);
                            Ok(())
                        });
                    }
                }
                #[cfg(not(unix))]
                cmd.stderr(Stdio::null());
            }
        }
        let mut child = cmd.spawn().expect("start bapiws");
        let (url, port) = common::url_from_banner(&common::read_banner(&mut child));
        let mut c = Ws::connect_with_origin(&url, "https://crm.example").await;
        for n in 0..50 {
            assert_eq!(c.call("GetState", json!([])).await, json!("Available"));
            if n % 10 == 0 {
                assert_eq!(c.error_code("HangUp", json!([])).await, -32002);
            }
        }
        assert_eq!(health(port).await, 200, "{variant}");
        drop(c);
        let status = tokio::task::spawn_blocking(move || terminate(&mut child))
            .await
            .expect("join");
        assert_eq!(status.code(), Some(0), "{variant}: {status}");
    }
}

/// A bad setting with a broken stderr: exit code 2 as documented, not a panic's 101.
#[test]
fn a_start_up_error_with_a_broken_stderr_exits_with_its_code() {
    let dir = TempDir::new("bad-setting");
    let mut child = common::command(dir.path())
        .args(["serve", "--idle-timeout-secs", "0"])
        .stdout(Stdio::null())
        .stderr(broken_pipe())
        .spawn()
        .expect("start bapiws");
    let status = common::wait_exit(&mut child, common::WAIT).expect("exited");
    assert_eq!(status.code(), Some(2), "{status}");
}
