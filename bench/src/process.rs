//! Server processes under test: started pinned to a CPU, their port read from their first
//! line, their resident memory and CPU time read from /proc.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// bapiws on the simulated phone.
    Bapiws,
    /// A WebSocket echo server on the same stack, coalescing its writes.
    EchoCoalesced,
    /// Echo over raw TCP with hand-written framing, coalescing.
    RawTcp,
    /// A minimal JSON-RPC server on the coalescing echo.
    JsonrpcMin,
    /// A minimal broadcast server on the same stack, coalescing its writes.
    BroadcastCoalesced,
    /// jsonrpsee answering GetState.
    Jsonrpsee,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bapiws => "bapiws",
            Kind::EchoCoalesced => "echo-coalesced",
            Kind::RawTcp => "raw-tcp",
            Kind::JsonrpcMin => "jsonrpc-min",
            Kind::BroadcastCoalesced => "broadcast-coalesced",
            Kind::Jsonrpsee => "jsonrpsee",
        }
    }
}

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    pub bapiws: PathBuf,
    pub harness: PathBuf,
    /// CPU the servers run on, when pinning is possible.
    pub server_cpu: Option<usize>,
    pub log_dir: PathBuf,
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    pub child: Child,
    pub port: u16,
    pub started: Instant,
}

impl Server {
    pub fn start(kind: Kind, p: &Programs) -> Server {
        Server::start_with(kind, p, &[])
    }

    /// Starts a server with extra arguments.
    pub fn start_with(kind: Kind, p: &Programs, extra: &[&str]) -> Server {
        let mut cmd = match p.server_cpu {
            Some(cpu) if which("taskset") => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]);
                c.arg(program(kind, p));
                c
            }
            _ => Command::new(program(kind, p)),
        };
        match kind {
            Kind::Bapiws => {
                cmd.args([
                    "serve",
                    "--port",
                    "0",
                    "--listen",
                    "127.0.0.1",
                    "--log-level",
                    "warn",
                    "--max-connections",
                    "20000",
                    "--idle-timeout-secs",
                    "3600",
                    "--sim-auto-answer",
                    "false",
                    // The fan-out's control connection triggers a notification per round;
                    // the baselines have no rate limit either.
                    "--command-burst",
                    "100000",
                ]);
                cmd.arg("--log-dir").arg(&p.log_dir);
                cmd.env("XDG_CONFIG_HOME", &p.log_dir);
            }
            other => {
                cmd.args([&format!("serve-{}", other.name()), "0"]);
            }
        }
        cmd.args(extra);
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server's first line");
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ws://"))
            .and_then(|a| a.trim_end_matches([';', ',']).rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{}: no port in {line:?}", kind.name()));
        Server {
            kind,
            child,
            port,
            started,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Resident memory in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }

    /// CPU time (user + system) used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(self.child.id())
    }
}

/// A process's resident memory in bytes (0 when it is gone).
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A process's CPU time (user + system, all its threads) so far, in clock ticks' steps.
pub fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(0) ppid(1) … utime(11) stime(12).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(kind: Kind, p: &Programs) -> PathBuf {
    match kind {
        Kind::Bapiws => p.bapiws.clone(),
        _ => p.harness.clone(),
    }
}

fn which(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Pins this process to one CPU (Linux); returns whether it worked.
pub fn pin_self(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity
    // only read and write that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}
