//! A real SIP network for the end-to-end tests, on loopback only: Debian's kamailio as
//! registrar and proxy (`tests/sip/kamailio.cfg`, digest auth, registrations in memory)
//! and SIPp far ends (`tests/sip/*.xml`). Every process binds 127.0.0.1 on ports of the
//! test's own [`Ports`] block; kamailio does no DNS, SIPp is given IP addresses, and the
//! phone's baresip uses 127.0.0.1 as its DNS server, so no packet leaves loopback.
//!
//! The tests fail, never skip, when kamailio or SIPp is missing.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TempDir;
use crate::common::baresip::Ports;

/// The test user's password (kamailio.cfg's TEST_PASSWORD): characters that break naive
/// quoting on purpose.
pub const PASSWORD: &str = "s3cret@#=&!";

/// The folder of the SIP fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip")
}

/// Fails the test (never skips it) when a program is missing.
pub fn require(program: &str, arg: &str, package: &str) {
    let found = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{program} is not installed; these tests need it: apt-get install {package} \
         (scripts/test.sh installs it when run as root)"
    );
}

/// The SIP side of a test's port block (see [`Ports`]: the phone has `phone_sip` and
/// `phone_sip + 1`, its control port and `phone_rtp..+9`).
#[derive(Clone, Copy, Debug)]
pub struct SipPorts {
    pub ports: Ports,
    pub registrar: u16,
    pub far: u16,
    pub far_ctrl: u16,
    pub far_media: u16,
    pub caller: u16,
    pub caller_ctrl: u16,
    pub caller_media: u16,
}

impl SipPorts {
    pub fn next() -> SipPorts {
        let ports = Ports::next();
        let base = ports.phone_sip;
        SipPorts {
            ports,
            registrar: base + 10,
            far: base + 13,
            far_ctrl: base + 14,
            far_media: base + 30,
            caller: base + 16,
            caller_ctrl: base + 17,
            caller_media: base + 34,
        }
    }

    /// `bapiws serve` flags: a managed baresip registering as 1001 with `password` at the
    /// registrar, refreshing every `interval` seconds, dialling through the registrar.
    pub fn serve_flags(&self, password: &str, interval: u32) -> Vec<String> {
        let registrar = format!("127.0.0.1:{}", self.registrar);
        self.ports.managed_flags(
            &format!("sip:1001@{registrar}"),
            &registrar,
            vec![
                ("--baresip-auth-user", "1001".to_owned()),
                ("--baresip-auth-password", password.to_owned()),
                ("--baresip-register", "true".to_owned()),
                ("--baresip-register-interval-secs", interval.to_string()),
            ],
        )
    }
}

/// The phone under test: baresip managed by bapiws, or bapiws's own SIP phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phone {
    Baresip,
    Sip,
}

impl SipPorts {
    /// `bapiws serve` flags for `phone` registering as 1001 with `password` at the
    /// registrar every `interval` seconds, dialling through the registrar, over `transport`
    /// (`udp` or `tcp`).
    pub fn flags_for(
        &self,
        phone: Phone,
        password: &str,
        interval: u32,
        transport: &str,
    ) -> Vec<String> {
        match phone {
            Phone::Baresip => {
                let mut f = self.serve_flags(password, interval);
                if transport != "udp" {
                    f.extend(["--baresip-transport".to_owned(), transport.to_owned()]);
                }
                f
            }
            Phone::Sip => {
                let registrar = format!("127.0.0.1:{}", self.registrar);
                let p = self.ports;
                [
                    ("--default-backend", "sip".to_owned()),
                    ("--sip-account", format!("sip:1001@{registrar}")),
                    ("--sip-password", password.to_owned()),
                    ("--sip-listen", format!("127.0.0.1:{}", p.phone_sip)),
                    (
                        "--sip-rtp-ports",
                        format!("{}-{}", p.phone_rtp, p.phone_rtp + 9),
                    ),
                    ("--sip-audio-source", "tone:440".to_owned()),
                    ("--sip-audio-sink", "discard".to_owned()),
                    ("--sip-register-interval-secs", interval.to_string()),
                    ("--sip-transport", transport.to_owned()),
                ]
                .into_iter()
                .flat_map(|(k, v)| [k.to_owned(), v])
                .collect()
            }
        }
    }
}

/// Whether something holds UDP `127.0.0.1:port` (a bind fails).
fn udp_port_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a process started in its own process group (kamailio's workers with it): a
/// SIGTERM to the group, then SIGKILL if it lingers.
fn stop_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    if crate::common::wait_exit(child, Duration::from_secs(5)).is_none() {
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
    let _ = child.wait();
    // Workers that outlive the main process still hold the port: finish them too.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
}

/// A kamailio registrar and proxy on UDP 127.0.0.1:`ports.registrar`, routing numbers
/// 2xxx to the far end's port.
pub struct Kamailio {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    far: u16,
    max_expires: u32,
    /// Whether it also listens on TCP (same port).
    tcp: bool,
    /// The certificate and key it serves TLS with (on the same port number as UDP).
    tls: Option<(PathBuf, PathBuf)>,
}

/// Certificates made by the test with openssl: a CA, and a server certificate it signed
/// for `IP:127.0.0.1` and `DNS:pbx.test`; and a second, unrelated CA.
pub struct TestCerts {
    pub dir: TempDir,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCerts {
    pub fn make() -> TestCerts {
        require("openssl", "version", "openssl");
        let dir = TempDir::new("certs");
        let d = dir.path().to_path_buf();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&d)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for (name, cn) in [("ca", "bapiws test CA"), ("other-ca", "another CA")] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=pbx.test",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:pbx.test\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write san.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        TestCerts {
            ca: d.join("ca.crt"),
            other_ca: d.join("other-ca.crt"),
            server_cert: d.join("server.crt"),
            server_key: d.join("server.key"),
            dir,
        }
    }
}

impl Kamailio {
    /// Starts it; `max_expires` caps the registration interval.
    pub fn start(ports: &SipPorts, max_expires: u32) -> Kamailio {
        Kamailio::launch(ports, max_expires, false)
    }

    /// Starts it listening on TCP as well as UDP (the same port number).
    pub fn start_tcp(ports: &SipPorts, max_expires: u32) -> Kamailio {
        Kamailio::launch(ports, max_expires, true)
    }

    /// Starts it with `symbols` (`-A`: `REFUSE_REGISTER`, `RETRY_AFTER` (its 503s say
    /// `Retry-After: 4`), `MIN_EXPIRES_30` (423 to a REGISTER asking less than 30 s)).
    pub fn start_with(ports: &SipPorts, max_expires: u32, tcp: bool, symbols: &[&str]) -> Kamailio {
        let mut k = Kamailio::launch_only(ports, max_expires, tcp);
        k.run(symbols);
        k
    }

    fn launch_only(ports: &SipPorts, max_expires: u32, tcp: bool) -> Kamailio {
        require("kamailio", "-v", "kamailio");
        Kamailio {
            child: None,
            dir: TempDir::new("kamailio"),
            port: ports.registrar,
            far: ports.far,
            max_expires,
            tcp,
            tls: None,
        }
    }

    /// Starts it listening on TLS (with `certs`' server certificate) as well as UDP, on
    /// the same port number; needs Debian's kamailio-tls-modules.
    pub fn start_tls(ports: &SipPorts, max_expires: u32, certs: &TestCerts) -> Kamailio {
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists()
                || Path::new("/usr/lib/kamailio/modules/tls.so").exists(),
            "kamailio's TLS module is not installed; these tests need it: apt-get install \
             kamailio-tls-modules (scripts/test.sh installs it when run as root)"
        );
        let mut k = Kamailio::launch_only(ports, max_expires, false);
        k.tls = Some((certs.server_cert.clone(), certs.server_key.clone()));
        k.run(&[]);
        k
    }

    fn launch(ports: &SipPorts, max_expires: u32, tcp: bool) -> Kamailio {
        Kamailio::start_with(ports, max_expires, tcp, &[])
    }

    /// Starts the process with extra `-A` symbols (variants of the configuration).
    fn run(&mut self, symbols: &[&str]) {
        assert!(
            !udp_port_taken(self.port),
            "the registrar's port {} is taken",
            self.port
        );
        // Appended: a restarted registrar's log follows the first one's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("kamailio.log"))
            .expect("log");
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(fixtures().join("kamailio.cfg"))
            .args(["-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-w")
            .arg(self.dir.path())
            .arg("-P")
            .arg(self.dir.path().join("kamailio.pid"))
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{}", self.port));
        if self.tcp {
            cmd.arg("-l").arg(format!("tcp:127.0.0.1:{}", self.port));
        }
        if let Some((cert, key)) = &self.tls {
            let config = self.dir.path().join("tls.cfg");
            std::fs::write(
                &config,
                format!(
                    "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                     require_certificate = no\ncertificate = {}\nprivate_key = {}\n\n\
                     [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                     require_certificate = no\n",
                    cert.display(),
                    key.display()
                ),
            )
            .expect("write tls.cfg");
            cmd.arg("-l")
                .arg(format!("tls:127.0.0.1:{}", self.port))
                .arg("-A")
                .arg("WITH_TLS")
                .arg("-A")
                .arg(format!("TLS_CONFIG=\"{}\"", config.display()));
        }
        cmd.arg("-A")
            .arg(format!("FAR_END=\"127.0.0.1:{}\"", self.far))
            .arg("-A")
            .arg(format!("MAX_EXPIRES={}", self.max_expires));
        for s in symbols {
            cmd.arg("-A").arg(s);
        }
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start kamailio");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), "kamailio listens", || {
            udp_port_taken(port)
        });
    }

    /// Stops it (registrations are lost: they are kept in memory only).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child);
        }
        let port = self.port;
        wait_until(Duration::from_secs(5), "kamailio's port is free", || {
            !udp_port_taken(port)
        });
    }

    /// Starts it again, answering REGISTER with 503 (`REFUSE_REGISTER`) but still routing
    /// calls and in-dialog requests.
    pub fn restart_refusing_registrations(&mut self) {
        self.stop();
        self.run(&["REFUSE_REGISTER"]);
    }

    /// Starts it again, as it was first.
    pub fn restart(&mut self) {
        self.stop();
        self.run(&[]);
    }

    /// Sends `sig` (`STOP`, `CONT`) to every kamailio process (its process group): a
    /// stopped registrar keeps its sockets open but answers nothing.
    pub fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("kamailio runs");
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), "--", &format!("-{}", child.id())])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} kamailio's group");
    }

    /// What it logged (every run since [`Kamailio::start`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child);
        }
    }
}

/// One SIPp run of a scenario in `tests/sip/`.
pub struct Sipp {
    child: Child,
    dir: TempDir,
    name: String,
}

/// Which SIPp of the test: the far end the phone calls (UAS), or a caller (UAC).
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Far,
    Caller,
}

impl Sipp {
    /// Starts `scenario` with `extra` arguments; a UAS is ready when this returns. A UAC
    /// sends to the registrar, calling 1001 (the phone).
    pub fn start(ports: &SipPorts, role: Role, scenario: &str, extra: &[&str]) -> Sipp {
        let dir = TempDir::new("sipp");
        Sipp::start_file(ports, role, dir, &fixtures().join(scenario), extra)
    }

    /// The far end answering `code reason` (`uas_reject.xml` with them filled in: SIPp
    /// checks status codes when it loads a scenario).
    pub fn start_rejecting(ports: &SipPorts, code: u16, reason: &str) -> Sipp {
        let dir = TempDir::new("sipp");
        let text = std::fs::read_to_string(fixtures().join("uas_reject.xml"))
            .expect("uas_reject.xml")
            .replace("[code] [reason]", &format!("{code} {reason}"));
        let file = dir.path().join("uas_reject.xml");
        std::fs::write(&file, text).expect("scenario");
        Sipp::start_file(ports, Role::Far, dir, &file, &[])
    }

    /// Starts `scenario` as `edit` rewrites it (extra headers, another From).
    pub fn start_edited(
        ports: &SipPorts,
        role: Role,
        scenario: &str,
        edit: impl FnOnce(String) -> String,
        extra: &[&str],
    ) -> Sipp {
        let dir = TempDir::new("sipp");
        let text = std::fs::read_to_string(fixtures().join(scenario)).expect("scenario");
        let file = dir.path().join(scenario);
        std::fs::write(&file, edit(text)).expect("scenario");
        Sipp::start_file(ports, role, dir, &file, extra)
    }

    /// Starts a far-end `scenario` whose SDP offers or answers PCMA (payload type 8)
    /// instead of PCMU.
    pub fn start_pcma(ports: &SipPorts, scenario: &str, extra: &[&str]) -> Sipp {
        let dir = TempDir::new("sipp");
        let text = std::fs::read_to_string(fixtures().join(scenario))
            .expect("scenario")
            .replace("RTP/AVP 0", "RTP/AVP 8")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000");
        let file = dir.path().join(scenario);
        std::fs::write(&file, text).expect("scenario");
        Sipp::start_file(ports, Role::Far, dir, &file, extra)
    }

    fn start_file(ports: &SipPorts, role: Role, dir: TempDir, file: &Path, extra: &[&str]) -> Sipp {
        require("sipp", "-v", "sip-tester");
        let scenario = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let (port, ctrl, media) = match role {
            Role::Far => (ports.far, ports.far_ctrl, ports.far_media),
            Role::Caller => (ports.caller, ports.caller_ctrl, ports.caller_media),
        };
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(file)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            .args(["-mp", &media.to_string()])
            .args(["-cp", &ctrl.to_string()])
            .args(["-nostdin", "-trace_msg", "-trace_err"])
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .args(["-timeout", "60s", "-timeout_error"]);
        if let Role::Caller = role {
            cmd.args(["-s", "1001"])
                .arg(format!("127.0.0.1:{}", ports.registrar));
        }
        if !extra.contains(&"-m") {
            cmd.args(["-m", "1"]);
        }
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr");
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("start sipp");
        if let Role::Far = role {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !udp_port_taken(port) {
                let exited = child.try_wait().ok().flatten();
                if exited.is_some() || Instant::now() > deadline {
                    let err =
                        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                    panic!("SIPp {scenario} did not start ({exited:?}):\n{err}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Sipp {
            child,
            dir,
            name: scenario,
        }
    }

    /// The SIP messages SIPp sent and received so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    /// Waits for SIPp to finish and asserts that its scenario passed; returns the
    /// messages.
    pub fn passed(mut self, limit: Duration) -> String {
        let status = crate::common::wait_exit(&mut self.child, limit);
        let messages = self.messages();
        let errors =
            std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default();
        match status {
            Some(s) if s.success() => messages,
            other => panic!(
                "SIPp {} did not pass ({other:?}).\nErrors:\n{errors}\nMessages:\n{messages}",
                self.name
            ),
        }
    }

    /// Waits (up to `limit`) for SIPp to finish, passed or not; returns whether it ended
    /// in time and its messages.
    pub fn ended(mut self, limit: Duration) -> (bool, String) {
        let status = crate::common::wait_exit(&mut self.child, limit);
        (status.is_some(), self.messages())
    }

    /// Waits until SIPp has sent or received a message whose first line starts with
    /// `first_line` (e.g. `SIP/2.0 180`, `BYE`).
    pub fn wait_message(&self, first_line: &str, limit: Duration) {
        wait_until(
            limit,
            &format!("SIPp {} saw {first_line}", self.name),
            || {
                self.messages()
                    .lines()
                    .any(|l| l.trim_start().starts_with(first_line))
            },
        );
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `GET /health` from the server on `port`; the parsed JSON body.
/// The phone's entry in `/health`: the backend that is not the simulator.
pub fn phone_health(port: u16) -> serde_json::Value {
    let h = health(port);
    h["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["kind"] != "sim").cloned())
        .unwrap_or_else(|| panic!("no phone backend in /health: {h}"))
}

/// Waits (at most `limit`, off the async threads) for SIPp to pass its scenario; returns
/// its messages (see [`Sipp::passed`]).
pub async fn passed(sipp: Sipp, limit: Duration) -> String {
    tokio::task::spawn_blocking(move || sipp.passed(limit))
        .await
        .expect("join")
}

pub fn health(port: u16) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {out}"))
}

/// Sends a signal to a process by id (SIGSTOP, SIGCONT, SIGKILL).
pub fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// `flags` with the value of `key` replaced (or added).
pub fn with(mut flags: Vec<String>, key: &str, value: &str) -> Vec<String> {
    match flags.iter().position(|f| f == key) {
        Some(i) => flags[i + 1] = value.to_owned(),
        None => flags.extend([key.to_owned(), value.to_owned()]),
    }
    flags
}

/// A capture of UDP datagrams on loopback with tcpdump (run as the tests' root): what a
/// listener on the wire sees.
pub struct Capture {
    child: Child,
    file: PathBuf,
    _dir: TempDir,
}

/// One captured UDP datagram.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub from_port: u16,
    pub to_port: u16,
    pub payload: Vec<u8>,
}

impl Capture {
    /// Starts capturing UDP on `lo` to or from the ports `first..=last`; ready when it
    /// returns.
    pub fn start(first: u16, last: u16) -> Capture {
        require("tcpdump", "--version", "tcpdump");
        let dir = TempDir::new("capture");
        let file = dir.path().join("capture.pcap");
        let log = dir.path().join("tcpdump.log");
        let child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-s", "2048", "-w"])
            .arg(&file)
            .arg(format!("udp and portrange {first}-{last}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("tcpdump log"))
            .spawn()
            .expect("start tcpdump");
        wait_until(Duration::from_secs(10), "tcpdump listening", || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening on"))
        });
        Capture {
            child,
            file,
            _dir: dir,
        }
    }

    /// Stops the capture and returns its UDP datagrams, in order.
    pub fn stop(mut self) -> Vec<Datagram> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        if crate::common::wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).expect("the capture file");
        parse_pcap(&bytes)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The UDP-over-IPv4 datagrams of a pcap file (little-endian, Ethernet or Linux cooked
/// link layer, as tcpdump writes on `lo`).
fn parse_pcap(b: &[u8]) -> Vec<Datagram> {
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    assert!(b.len() >= 24, "a pcap file");
    assert!(
        matches!(u32_at(0), 0xa1b2_c3d4 | 0xa1b2_3c4d),
        "a little-endian pcap file"
    );
    let link = match u32_at(20) {
        1 => 14,
        113 => 16,
        other => panic!("link type {other}"),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let len = u32_at(at + 8) as usize;
        let frame = &b[at + 16..(at + 16 + len).min(b.len())];
        at += 16 + len;
        let Some(ip) = frame.get(link..) else {
            continue;
        };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let udp = &ip[usize::from(ip[0] & 0x0F) * 4..];
        if udp.len() < 8 {
            continue;
        }
        out.push(Datagram {
            from_port: u16::from_be_bytes([udp[0], udp[1]]),
            to_port: u16::from_be_bytes([udp[2], udp[3]]),
            payload: udp[8..].to_vec(),
        });
    }
    out
}

/// Starts a server with `flags`.
pub fn start(flags: &[String]) -> crate::common::Server {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    crate::common::Server::start(&flags)
}

/// A field (`name=`, e.g. `sent=`) of the server log's "call media ended" line.
pub fn media_field(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("call media ended"))
        .unwrap_or_else(|| panic!("no media line in:\n{log}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}
