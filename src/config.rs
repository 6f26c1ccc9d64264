//! Configuration: every setting, its default, and where it comes from.
//!
//! Precedence, highest first: command-line flags, environment variables `BAPIWS_*`, the
//! TOML file (`--config PATH`, else [`default_config_path`] if it exists), built-in
//! defaults. A setting's flag, variable and file key share one name: file key
//! `idle_timeout_secs` is flag `--idle-timeout-secs` and variable
//! `BAPIWS_IDLE_TIMEOUT_SECS`; keys under `[sim]` get a `sim-`/`SIM_` prefix.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::de::DeserializeOwned;
use tracing_subscriber::filter::LevelFilter;

use crate::access::{Access, HostPolicy, OriginPolicy};
use crate::phone::baresip::{BaresipSettings, Mode};
use crate::phone::sim::SimSettings;
use crate::phone::{Availability, BackendKind};

/// Default TCP port, as the original.
pub const DEFAULT_PORT: u16 = 9898;
/// Default idle timeout: three missed keep-alives of the spec's 60 s.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 180;
/// Default largest accepted message.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Default most simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default notifications queued per connection before it counts as too slow.
pub const DEFAULT_SEND_QUEUE: usize = 1024;
/// Default most requests in one batch.
pub const DEFAULT_MAX_BATCH: usize = 100;
/// Default far-end answer delay of the simulated phone.
pub const DEFAULT_SIM_ANSWER_DELAY_MS: u64 = 3000;

/// The fully resolved configuration of `bapiws serve`.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP port (0: any free port).
    pub port: u16,
    /// Addresses to listen on.
    pub listen: Vec<IpAddr>,
    /// Who may connect: allowed origins and Host names.
    pub access: Access,
    /// Whether listening on a non-loopback address is allowed.
    pub allow_remote: bool,
    /// Close a connection after this long without a message or ping.
    pub idle_timeout: Duration,
    /// Backend of a connection that has not called Init.
    pub default_backend: String,
    /// Extra independent backends (name → kind), e.g. a second simulated phone.
    pub extra_backends: BTreeMap<String, String>,
    /// Extra names for backends (alias → backend).
    pub aliases: BTreeMap<String, String>,
    /// The simulated phone.
    pub sim: SimSettings,
    /// The baresip backend.
    pub baresip: BaresipSettings,
    /// Level of messages on stderr.
    pub log_level: LevelFilter,
    /// Folder of the daily log file.
    pub log_dir: PathBuf,
    /// Largest accepted WebSocket message in bytes.
    pub max_message_bytes: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Whether the audit log shows dialled numbers in full (masked by default).
    pub log_full_numbers: bool,
    /// Notifications queued per connection before it counts as too slow.
    pub send_queue: usize,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Settings of `bapiws serve`, as flags (each also read from its `BAPIWS_*` variable).
#[derive(Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: the per-user file, if it exists.
    #[arg(long, env = "BAPIWS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// TCP port to listen on; 0 picks a free port. [default: 9898]
    #[arg(long, env = "BAPIWS_PORT")]
    pub port: Option<u16>,
    /// Addresses to listen on, comma-separated. [default: 127.0.0.1,::1]
    #[arg(
        long,
        env = "BAPIWS_LISTEN",
        value_delimiter = ',',
        value_name = "IP,..."
    )]
    pub listen: Option<Vec<IpAddr>>,
    /// Origins allowed to connect, comma-separated: `*`, bare domains (allow subdomains,
    /// any scheme and port) or full origins (scheme://host:port, port optional). [default: *]
    #[arg(
        long,
        env = "BAPIWS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN,..."
    )]
    pub allowed_origins: Option<Vec<String>>,
    /// Host names accepted in requests' Host header besides loopback names and addresses
    /// (a defence against DNS rebinding), comma-separated. [default: none]
    #[arg(
        long,
        env = "BAPIWS_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST,..."
    )]
    pub allowed_hosts: Option<Vec<String>>,
    /// Allow listening on addresses other than loopback: anyone who can reach them can
    /// drive this phone. [default: false]
    #[arg(long, env = "BAPIWS_ALLOW_REMOTE", value_name = "BOOL")]
    pub allow_remote: Option<bool>,
    /// Close a connection after this many seconds without a message or ping. [default: 180]
    #[arg(long, env = "BAPIWS_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Backend of connections that have not called Init. [default: sim]
    #[arg(long, env = "BAPIWS_DEFAULT_BACKEND", value_name = "NAME")]
    pub default_backend: Option<String>,
    /// Extra backend name, e.g. `lync=sim`; repeat or comma-separate. Adds to the file's
    /// `[aliases]`, replacing an alias of the same name.
    #[arg(
        long = "alias",
        env = "BAPIWS_ALIASES",
        value_delimiter = ',',
        value_name = "ALIAS=BACKEND"
    )]
    pub aliases: Vec<String>,
    /// Extra independent backend, e.g. `agent2=sim` for a second simulated phone with its
    /// own calls; repeat or comma-separate. Adds to the file's `[extra_backends]`.
    #[arg(
        long = "extra-backend",
        env = "BAPIWS_EXTRA_BACKENDS",
        value_delimiter = ',',
        value_name = "NAME=KIND"
    )]
    pub extra_backends: Vec<String>,
    /// Whether the simulated far end answers outbound calls by itself. [default: true]
    #[arg(long, env = "BAPIWS_SIM_AUTO_ANSWER", value_name = "BOOL")]
    pub sim_auto_answer: Option<bool>,
    /// Milliseconds the simulated far end rings before answering. [default: 3000]
    #[arg(long, env = "BAPIWS_SIM_ANSWER_DELAY_MS", value_name = "MS")]
    pub sim_answer_delay_ms: Option<u64>,
    /// The simulated phone's availability at start. [default: Available]
    #[arg(long, env = "BAPIWS_SIM_AVAILABILITY", value_name = "STATE")]
    pub sim_availability: Option<String>,
    /// Most calls the simulated phone holds at once. [default: 16]
    #[arg(long, env = "BAPIWS_SIM_MAX_CALLS", value_name = "N")]
    pub sim_max_calls: Option<usize>,
    /// Level of messages on stderr: off, error, warn, info, debug, trace. The log file
    /// records info and above, or more when this is debug or trace. [default: info]
    #[arg(long, env = "BAPIWS_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Show dialled numbers in full in the log's call-control lines (they are masked in
    /// the middle by default). [default: false]
    #[arg(long, env = "BAPIWS_LOG_FULL_NUMBERS", value_name = "BOOL")]
    pub log_full_numbers: Option<bool>,
    /// Folder of the daily log file BAPIWS_yyyymmdd.log. [default: the temp directory]
    #[arg(long, env = "BAPIWS_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Largest accepted message in bytes; larger ones close the connection (1009).
    /// [default: 65536]
    #[arg(long, env = "BAPIWS_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Most requests in one batch; a larger batch is answered with one -32600 error.
    /// [default: 100]
    #[arg(long, env = "BAPIWS_MAX_BATCH", value_name = "N")]
    pub max_batch: Option<usize>,
    /// Most simultaneous connections; more are refused with HTTP 503. [default: 1024]
    #[arg(long, env = "BAPIWS_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Notifications queued per connection; a client that falls this far behind is
    /// disconnected. [default: 1024]
    #[arg(long, env = "BAPIWS_SEND_QUEUE", value_name = "N")]
    pub send_queue: Option<usize>,
    /// The baresip backend's settings.
    #[command(flatten, next_help_heading = "baresip backend (file table [baresip])")]
    pub baresip: BaresipArgs,
}

/// Settings of the baresip backend, as flags (each also read from its `BAPIWS_*` variable).
#[derive(Args, Clone, Debug, Default)]
pub struct BaresipArgs {
    /// `managed` (bapiws starts and supervises baresip) or `attach` (connect to a baresip
    /// you run). [default: managed]
    #[arg(
        long = "baresip-mode",
        env = "BAPIWS_BARESIP_MODE",
        value_name = "MODE"
    )]
    pub mode: Option<String>,
    /// Address of baresip's ctrl_tcp module. [default: 127.0.0.1:4444]
    #[arg(
        long = "baresip-ctrl-address",
        env = "BAPIWS_BARESIP_CTRL_ADDRESS",
        value_name = "IP:PORT"
    )]
    pub ctrl_address: Option<String>,
    /// The baresip program (managed). [default: baresip]
    #[arg(
        long = "baresip-binary",
        env = "BAPIWS_BARESIP_BINARY",
        value_name = "PATH"
    )]
    pub binary: Option<String>,
    /// The SIP account, sip:user@domain (managed; default sip:bapiws@127.0.0.1).
    #[arg(
        long = "baresip-account",
        env = "BAPIWS_BARESIP_ACCOUNT",
        value_name = "URI"
    )]
    pub account: Option<String>,
    /// SIP authentication user (managed).
    #[arg(
        long = "baresip-auth-user",
        env = "BAPIWS_BARESIP_AUTH_USER",
        value_name = "USER"
    )]
    pub auth_user: Option<String>,
    /// SIP authentication password (managed); prefer the variable or the file to the flag.
    #[arg(
        long = "baresip-auth-password",
        env = "BAPIWS_BARESIP_AUTH_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub auth_password: Option<String>,
    /// Register with the account's registrar (managed). [default: false]
    #[arg(
        long = "baresip-register",
        env = "BAPIWS_BARESIP_REGISTER",
        value_name = "BOOL"
    )]
    pub register: Option<bool>,
    /// Outbound proxy URI (managed).
    #[arg(
        long = "baresip-outbound-proxy",
        env = "BAPIWS_BARESIP_OUTBOUND_PROXY",
        value_name = "URI"
    )]
    pub outbound_proxy: Option<String>,
    /// SIP transport: udp, tcp or tls (managed). [default: udp]
    #[arg(
        long = "baresip-transport",
        env = "BAPIWS_BARESIP_TRANSPORT",
        value_name = "PROTO"
    )]
    pub transport: Option<String>,
    /// Local SIP address, IP:PORT (managed). [default: baresip's]
    #[arg(
        long = "baresip-sip-listen",
        env = "BAPIWS_BARESIP_SIP_LISTEN",
        value_name = "IP:PORT"
    )]
    pub sip_listen: Option<String>,
    /// RTP port range, FROM-TO (managed). [default: baresip's]
    #[arg(
        long = "baresip-rtp-ports",
        env = "BAPIWS_BARESIP_RTP_PORTS",
        value_name = "FROM-TO"
    )]
    pub rtp_ports: Option<String>,
    /// Microphone, driver,device (managed). [default: alsa,default]
    #[arg(
        long = "baresip-audio-source",
        env = "BAPIWS_BARESIP_AUDIO_SOURCE",
        value_name = "DRIVER,DEVICE"
    )]
    pub audio_source: Option<String>,
    /// Speaker, driver,device (managed). [default: alsa,default]
    #[arg(
        long = "baresip-audio-player",
        env = "BAPIWS_BARESIP_AUDIO_PLAYER",
        value_name = "DRIVER,DEVICE"
    )]
    pub audio_player: Option<String>,
    /// The URI CallOut dials: {number} is the validated number, {domain} the account's
    /// domain (default sip:{number}@{domain}).
    #[arg(
        long = "baresip-dial-uri",
        env = "BAPIWS_BARESIP_DIAL_URI",
        value_name = "TEMPLATE"
    )]
    pub dial_uri: Option<String>,
    /// DNS server, IP:PORT (managed). [default: the system's]
    #[arg(
        long = "baresip-dns-server",
        env = "BAPIWS_BARESIP_DNS_SERVER",
        value_name = "IP:PORT"
    )]
    pub dns_server: Option<String>,
    /// Network interface or address for SIP and RTP (managed).
    #[arg(
        long = "baresip-net-interface",
        env = "BAPIWS_BARESIP_NET_INTERFACE",
        value_name = "NAME"
    )]
    pub net_interface: Option<String>,
    /// Folder of baresip's modules (managed). [default on Linux: /usr/lib/baresip/modules]
    #[arg(
        long = "baresip-module-path",
        env = "BAPIWS_BARESIP_MODULE_PATH",
        value_name = "DIR"
    )]
    pub module_path: Option<String>,
    /// Availability reported while baresip is online and idle. [default: Available]
    #[arg(
        long = "baresip-availability",
        env = "BAPIWS_BARESIP_AVAILABILITY",
        value_name = "STATE"
    )]
    pub availability: Option<String>,
    /// How long one command to baresip may take, in ms. [default: 5000]
    #[arg(
        long = "baresip-command-timeout-ms",
        env = "BAPIWS_BARESIP_COMMAND_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub command_timeout_ms: Option<u64>,
}

/// Every key of the file's `[baresip]` table.
pub const BARESIP_KEYS: &[&str] = &[
    "mode",
    "ctrl_address",
    "binary",
    "account",
    "auth_user",
    "auth_password",
    "register",
    "outbound_proxy",
    "transport",
    "sip_listen",
    "rtp_ports",
    "audio_source",
    "audio_player",
    "dial_uri",
    "dns_server",
    "net_interface",
    "module_path",
    "availability",
    "command_timeout_ms",
];

impl BaresipArgs {
    /// The string-valued flag of a `[baresip]` key.
    fn text(&self, key: &str) -> Option<&String> {
        match key {
            "mode" => self.mode.as_ref(),
            "ctrl_address" => self.ctrl_address.as_ref(),
            "binary" => self.binary.as_ref(),
            "account" => self.account.as_ref(),
            "auth_user" => self.auth_user.as_ref(),
            "auth_password" => self.auth_password.as_ref(),
            "outbound_proxy" => self.outbound_proxy.as_ref(),
            "transport" => self.transport.as_ref(),
            "sip_listen" => self.sip_listen.as_ref(),
            "rtp_ports" => self.rtp_ports.as_ref(),
            "audio_source" => self.audio_source.as_ref(),
            "audio_player" => self.audio_player.as_ref(),
            "dial_uri" => self.dial_uri.as_ref(),
            "dns_server" => self.dns_server.as_ref(),
            "net_interface" => self.net_interface.as_ref(),
            "module_path" => self.module_path.as_ref(),
            "availability" => self.availability.as_ref(),
            _ => None,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed.
    #[error("config file {}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A key in the file has a bad value, or is unknown.
    #[error("config file {}: key `{key}`: {problem}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The key (`sim.answer_delay_ms` for nested ones).
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A flag or environment variable has a bad value.
    #[error("setting `{key}` (from --{flag} or BAPIWS_{env}): {problem}", flag = flag_name(key), env = key.replace('.', "_").to_ascii_uppercase())]
    Setting {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The per-user configuration file: `config.toml` in the platform's config folder
/// (`~/.config/bapiws/` on Linux, `%APPDATA%\bapiws\config\` on Windows).
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "bapiws").map(|d| d.config_dir().join("config.toml"))
}

/// Values read from the file; `None` where the file is silent.
#[derive(Debug, Default)]
struct FileValues {
    port: Option<u16>,
    listen: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    allowed_hosts: Option<Vec<String>>,
    allow_remote: Option<bool>,
    idle_timeout_secs: Option<u64>,
    default_backend: Option<String>,
    aliases: BTreeMap<String, String>,
    extra_backends: BTreeMap<String, String>,
    sim_auto_answer: Option<bool>,
    sim_answer_delay_ms: Option<u64>,
    sim_availability: Option<String>,
    sim_max_calls: Option<usize>,
    log_level: Option<String>,
    log_dir: Option<PathBuf>,
    log_full_numbers: Option<bool>,
    max_message_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_batch: Option<usize>,
    send_queue: Option<usize>,
    /// `[baresip]` string values by key.
    baresip_text: BTreeMap<String, String>,
    baresip_register: Option<bool>,
    baresip_command_timeout_ms: Option<u64>,
}

/// Every top-level key of the file.
pub const FILE_KEYS: &[&str] = &[
    "port",
    "listen",
    "allowed_origins",
    "allowed_hosts",
    "allow_remote",
    "idle_timeout_secs",
    "default_backend",
    "aliases",
    "extra_backends",
    "sim",
    "baresip",
    "log_level",
    "log_dir",
    "log_full_numbers",
    "max_message_bytes",
    "max_connections",
    "max_batch",
    "send_queue",
];
/// Every key of the file's `[sim]` table.
pub const SIM_KEYS: &[&str] = &[
    "auto_answer",
    "answer_delay_ms",
    "availability",
    "max_calls",
];

fn value<T: DeserializeOwned>(path: &Path, key: &str, v: toml::Value) -> Result<T, ConfigError> {
    v.try_into().map_err(|e: toml::de::Error| ConfigError::Key {
        path: path.to_owned(),
        key: key.to_owned(),
        problem: e.message().to_owned(),
    })
}

fn unknown(path: &Path, key: &str, known: &[&str]) -> ConfigError {
    ConfigError::Key {
        path: path.to_owned(),
        key: key.to_owned(),
        problem: format!("unknown key; known keys: {}", known.join(", ")),
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileValues, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            path: path.to_owned(),
            problem: e.to_string().trim().to_owned(),
        })?;
    let mut f = FileValues::default();
    for (key, v) in table {
        let p = path;
        match key.as_str() {
            "port" => f.port = Some(value(p, &key, v)?),
            "listen" => f.listen = Some(value(p, &key, v)?),
            "allowed_origins" => f.allowed_origins = Some(value(p, &key, v)?),
            "allowed_hosts" => f.allowed_hosts = Some(value(p, &key, v)?),
            "allow_remote" => f.allow_remote = Some(value(p, &key, v)?),
            "idle_timeout_secs" => f.idle_timeout_secs = Some(value(p, &key, v)?),
            "default_backend" => f.default_backend = Some(value(p, &key, v)?),
            "aliases" => f.aliases = value(p, &key, v)?,
            "extra_backends" => f.extra_backends = value(p, &key, v)?,
            "log_level" => f.log_level = Some(value(p, &key, v)?),
            "log_dir" => f.log_dir = Some(value(p, &key, v)?),
            "log_full_numbers" => f.log_full_numbers = Some(value(p, &key, v)?),
            "max_message_bytes" => f.max_message_bytes = Some(value(p, &key, v)?),
            "max_connections" => f.max_connections = Some(value(p, &key, v)?),
            "max_batch" => f.max_batch = Some(value(p, &key, v)?),
            "send_queue" => f.send_queue = Some(value(p, &key, v)?),
            "sim" => {
                let sim: toml::Table = value(p, &key, v)?;
                for (k, v) in sim {
                    let full = format!("sim.{k}");
                    match k.as_str() {
                        "auto_answer" => f.sim_auto_answer = Some(value(p, &full, v)?),
                        "answer_delay_ms" => f.sim_answer_delay_ms = Some(value(p, &full, v)?),
                        "availability" => f.sim_availability = Some(value(p, &full, v)?),
                        "max_calls" => f.sim_max_calls = Some(value(p, &full, v)?),
                        _ => return Err(unknown(p, &full, SIM_KEYS)),
                    }
                }
            }
            "baresip" => {
                let table: toml::Table = value(p, &key, v)?;
                for (k, v) in table {
                    let full = format!("baresip.{k}");
                    match k.as_str() {
                        "register" => f.baresip_register = Some(value(p, &full, v)?),
                        "command_timeout_ms" => {
                            f.baresip_command_timeout_ms = Some(value(p, &full, v)?)
                        }
                        known if BARESIP_KEYS.contains(&known) => {
                            f.baresip_text.insert(k.clone(), value(p, &full, v)?);
                        }
                        _ => return Err(unknown(p, &full, BARESIP_KEYS)),
                    }
                }
            }
            _ => return Err(unknown(p, &key, FILE_KEYS)),
        }
    }
    Ok(f)
}

/// Where a resolved value came from, for error messages.
enum Source<'a> {
    File(&'a Path),
    Setting,
}

impl Source<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        match self {
            Source::File(path) => ConfigError::Key {
                path: path.to_path_buf(),
                key: key.to_owned(),
                problem: problem.into(),
            },
            Source::Setting => ConfigError::Setting {
                key: key.to_owned(),
                problem: problem.into(),
            },
        }
    }
}

/// Picks the flag/env value, else the file's, and says which one it was.
fn pick<'a, T>(arg: Option<T>, file: Option<T>, path: Option<&'a Path>) -> Option<(T, Source<'a>)> {
    match (arg, file, path) {
        (Some(a), _, _) => Some((a, Source::Setting)),
        (None, Some(f), Some(p)) => Some((f, Source::File(p))),
        (None, Some(f), None) => Some((f, Source::Setting)),
        (None, None, _) => None,
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    picked: Option<(T, Source<'_>)>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match picked {
        None => Ok(default),
        Some((v, src)) if v < min || v > max => {
            Err(src.error(key, format!("{v} is out of range; allowed {min} to {max}")))
        }
        Some((v, _)) => Ok(v),
    }
}

impl Config {
    /// Resolves the configuration from flags/environment, the file and the defaults.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let (file_path, file) = match &args.config {
            Some(p) => (Some(p.clone()), Some(read_file(p)?)),
            None => match default_config_path().filter(|p| p.is_file()) {
                Some(p) => {
                    let f = read_file(&p)?;
                    (Some(p), Some(f))
                }
                None => (None, None),
            },
        };
        Config::resolve(args, file.unwrap_or_default(), file_path)
    }

    fn resolve(
        args: &ServeArgs,
        f: FileValues,
        file: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let path = file.as_deref();
        let baresip = resolve_baresip(&args.baresip, &f, path)?;
        let port = pick(args.port, f.port, path).map_or(DEFAULT_PORT, |(p, _)| p);

        let listen_from_file = args.listen.is_none() && f.listen.is_some();
        let listen = match pick(
            args.listen
                .clone()
                .map(|v| v.iter().map(|ip| ip.to_string()).collect()),
            f.listen,
            path,
        ) {
            None => vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            Some((list, src)) => {
                if list.is_empty() {
                    return Err(src.error("listen", "at least one address is needed"));
                }
                list.iter()
                    .map(|s| {
                        s.trim()
                            .parse::<IpAddr>()
                            .map_err(|_| src.error("listen", format!("{s:?} is not an IP address")))
                    })
                    .collect::<Result<_, _>>()?
            }
        };

        let allow_remote = pick(args.allow_remote, f.allow_remote, path).is_some_and(|(v, _)| v);
        if !allow_remote && let Some(ip) = listen.iter().find(|ip| !ip.is_loopback()) {
            let src = match (listen_from_file, path) {
                (true, Some(p)) => Source::File(p),
                _ => Source::Setting,
            };
            return Err(src.error(
                "listen",
                format!(
                    "{ip} is not a loopback address; anyone who can reach it could drive this phone. Set allow_remote = true to listen on it anyway"
                ),
            ));
        }
        let hosts = match pick(args.allowed_hosts.clone(), f.allowed_hosts, path) {
            None => HostPolicy::default(),
            Some((list, src)) => {
                HostPolicy::parse(&list).map_err(|e| src.error("allowed_hosts", e.to_string()))?
            }
        };
        let origins = match pick(args.allowed_origins.clone(), f.allowed_origins, path) {
            None => OriginPolicy::parse(&["*"])
                .map_err(|e| Source::Setting.error("allowed_origins", e.to_string()))?,
            Some((list, src)) => OriginPolicy::parse(&list)
                .map_err(|e| src.error("allowed_origins", e.to_string()))?,
        };

        let idle_secs = in_range(
            "idle_timeout_secs",
            pick(args.idle_timeout_secs, f.idle_timeout_secs, path),
            DEFAULT_IDLE_TIMEOUT_SECS,
            1,
            7 * 24 * 3600,
        )?;

        let file_src = || Source::File(path.unwrap_or(Path::new("-")));
        let mut extra_backends = BTreeMap::new();
        let file_extra = f
            .extra_backends
            .iter()
            .map(|(n, k)| (n.clone(), k.clone(), file_src()));
        let arg_extra = split_pairs(&args.extra_backends, "extra_backends", "NAME=KIND")?;
        for (name, kind, src) in file_extra.chain(arg_extra) {
            let key = match src {
                Source::File(_) => format!("extra_backends.{name}"),
                Source::Setting => "extra_backends".to_owned(),
            };
            if name.is_empty() || BackendKind::by_name(&name).is_some() {
                return Err(src.error(
                    &key,
                    format!("{name:?} is empty or a built-in backend's name"),
                ));
            }
            match BackendKind::by_name(&kind) {
                None => {
                    return Err(src.error(
                        &key,
                        format!("unknown backend kind {kind:?}; kinds: {}", kind_names()),
                    ));
                }
                // Its settings (control port, SIP ports) are per server, not per instance.
                Some(BackendKind::Baresip) => {
                    return Err(src.error(
                        &key,
                        "only one baresip backend per server is supported; use an alias",
                    ));
                }
                Some(_) => {}
            }
            extra_backends.insert(name.to_ascii_lowercase(), kind.to_ascii_lowercase());
        }
        let is_backend = |name: &str| {
            BackendKind::by_name(name).is_some()
                || extra_backends.contains_key(&name.to_ascii_lowercase())
        };

        let mut aliases = BTreeMap::new();
        let file_aliases = f
            .aliases
            .iter()
            .map(|(n, k)| (n.clone(), k.clone(), file_src()));
        let arg_aliases = split_pairs(&args.aliases, "aliases", "ALIAS=BACKEND")?;
        for (alias, target, src) in file_aliases.chain(arg_aliases) {
            let key = match src {
                Source::File(_) => format!("aliases.{alias}"),
                Source::Setting => "aliases".to_owned(),
            };
            if alias.is_empty() || is_backend(&alias) {
                return Err(src.error(
                    &key,
                    format!("{alias:?} is empty or already a backend's name"),
                ));
            }
            if !is_backend(&target) {
                return Err(src.error(
                    &key,
                    format!("alias {alias:?} points to unknown backend {target:?}"),
                ));
            }
            aliases.insert(alias.to_ascii_lowercase(), target.clone());
        }

        let default_backend = match pick(args.default_backend.clone(), f.default_backend, path) {
            None => "sim".to_owned(),
            Some((name, src)) => {
                if !is_backend(&name) && !aliases.contains_key(&name.to_ascii_lowercase()) {
                    return Err(src.error("default_backend", format!("unknown backend {name:?}")));
                }
                name
            }
        };

        let defaults = SimSettings::default();
        let availability = match pick(args.sim_availability.clone(), f.sim_availability, path) {
            None => defaults.availability,
            Some((s, src)) => Availability::parse(&s).ok_or_else(|| {
                src.error(
                    "sim.availability",
                    format!(
                        "{s:?} is not one of {}",
                        Availability::ALL.map(|a| a.as_str()).join(", ")
                    ),
                )
            })?,
        };
        let sim = SimSettings {
            auto_answer: pick(args.sim_auto_answer, f.sim_auto_answer, path)
                .map_or(defaults.auto_answer, |(v, _)| v),
            answer_delay: Duration::from_millis(in_range(
                "sim.answer_delay_ms",
                pick(args.sim_answer_delay_ms, f.sim_answer_delay_ms, path),
                DEFAULT_SIM_ANSWER_DELAY_MS,
                0,
                24 * 3600 * 1000,
            )?),
            availability,
            max_calls: in_range(
                "sim.max_calls",
                pick(args.sim_max_calls, f.sim_max_calls, path),
                defaults.max_calls,
                1,
                1000,
            )?,
        };

        let log_level = match pick(args.log_level.clone(), f.log_level, path) {
            None => LevelFilter::INFO,
            Some((s, src)) => s.parse::<LevelFilter>().map_err(|_| {
                src.error(
                    "log_level",
                    format!("{s:?} is not one of off, error, warn, info, debug, trace"),
                )
            })?,
        };
        let log_full_numbers =
            pick(args.log_full_numbers, f.log_full_numbers, path).is_some_and(|(v, _)| v);
        let log_dir =
            pick(args.log_dir.clone(), f.log_dir, path).map_or_else(std::env::temp_dir, |(d, _)| d);

        Ok(Config {
            port,
            listen,
            access: Access { origins, hosts },
            allow_remote,
            idle_timeout: Duration::from_secs(idle_secs),
            default_backend,
            extra_backends,
            aliases,
            sim,
            baresip,
            log_level,
            log_dir,
            max_message_bytes: in_range(
                "max_message_bytes",
                pick(args.max_message_bytes, f.max_message_bytes, path),
                DEFAULT_MAX_MESSAGE_BYTES,
                256,
                64 * 1024 * 1024,
            )?,
            max_connections: in_range(
                "max_connections",
                pick(args.max_connections, f.max_connections, path),
                DEFAULT_MAX_CONNECTIONS,
                1,
                1_000_000,
            )?,
            log_full_numbers,
            max_batch: in_range(
                "max_batch",
                pick(args.max_batch, f.max_batch, path),
                DEFAULT_MAX_BATCH,
                1,
                100_000,
            )?,
            send_queue: in_range(
                "send_queue",
                pick(args.send_queue, f.send_queue, path),
                DEFAULT_SEND_QUEUE,
                1,
                1_000_000,
            )?,
            file,
        })
    }
}

/// The command-line flag of a setting (without `--`).
fn flag_name(key: &str) -> String {
    match key {
        "aliases" => "alias".to_owned(),
        "extra_backends" => "extra-backend".to_owned(),
        k => k.replace(['_', '.'], "-"),
    }
}

/// Characters a baresip setting may never hold: they would break the generated files'
/// syntax or inject lines.
fn unsafe_for_baresip(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"' | ';'))
}

fn resolve_baresip(
    args: &BaresipArgs,
    f: &FileValues,
    path: Option<&Path>,
) -> Result<BaresipSettings, ConfigError> {
    let mut s = BaresipSettings::default();
    for key in BARESIP_KEYS {
        let Some((text, src)) = pick(
            args.text(key).cloned(),
            f.baresip_text.get(*key).cloned(),
            path,
        ) else {
            continue;
        };
        let name = format!("baresip.{key}");
        let err = |problem: String| src.error(&name, problem);
        // The account may carry URI parameters (`;transport=tcp`), nothing else may hold
        // the characters that structure baresip's files.
        let allowed_semicolons =
            *key == "account" || *key == "dial_uri" || *key == "outbound_proxy";
        let bad = if allowed_semicolons {
            text.chars()
                .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        } else {
            unsafe_for_baresip(&text)
        };
        if bad || text.is_empty() {
            // Never repeat a password in a message.
            let shown = if *key == "auth_password" {
                "the value".to_owned()
            } else {
                format!("{:?}", jsonrpc_safe(&text))
            };
            return Err(err(format!(
                "{shown} is empty or holds whitespace, control characters or <>\";"
            )));
        }
        match *key {
            "mode" => {
                s.mode = match text.to_ascii_lowercase().as_str() {
                    "managed" => Mode::Managed,
                    "attach" => Mode::Attach,
                    _ => return Err(err(format!("{text:?} is not managed or attach"))),
                }
            }
            "ctrl_address" => {
                s.ctrl_address = text
                    .parse()
                    .map_err(|_| err(format!("{text:?} is not IP:PORT")))?
            }
            "binary" => s.binary = PathBuf::from(text),
            "account" => {
                let scheme_ok = text.starts_with("sip:") || text.starts_with("sips:");
                if !scheme_ok || !text.contains('@') {
                    return Err(err(format!("{text:?} is not sip:user@domain")));
                }
                s.account = text;
            }
            "auth_user" => s.auth_user = Some(text),
            "auth_password" => s.auth_password = Some(text),
            "outbound_proxy" => s.outbound_proxy = Some(text),
            "transport" => {
                let t = text.to_ascii_lowercase();
                if !matches!(t.as_str(), "udp" | "tcp" | "tls") {
                    return Err(err(format!("{text:?} is not udp, tcp or tls")));
                }
                s.transport = t;
            }
            "sip_listen" | "dns_server" => {
                text.parse::<std::net::SocketAddr>()
                    .map_err(|_| err(format!("{text:?} is not IP:PORT")))?;
                if *key == "sip_listen" {
                    s.sip_listen = Some(text);
                } else {
                    s.dns_server = Some(text);
                }
            }
            "rtp_ports" => {
                let ok = text
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
                    .is_some_and(|(a, b)| a <= b);
                if !ok {
                    return Err(err(format!("{text:?} is not FROM-TO")));
                }
                s.rtp_ports = Some(text);
            }
            "audio_source" | "audio_player" => {
                let driver = text.split(',').next().unwrap_or("");
                if driver.is_empty()
                    || !driver
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(err(format!("{text:?} is not driver,device")));
                }
                if *key == "audio_source" {
                    s.audio_source = text;
                } else {
                    s.audio_player = text;
                }
            }
            "dial_uri" => {
                if !text.contains("{number}") {
                    return Err(err(format!("{text:?} has no {{number}}")));
                }
                s.dial_uri = text;
            }
            "net_interface" => s.net_interface = Some(text),
            "module_path" => s.module_path = Some(PathBuf::from(text)),
            "availability" => {
                s.availability = Availability::parse(&text).ok_or_else(|| {
                    err(format!(
                        "{text:?} is not one of {}",
                        Availability::ALL.map(|a| a.as_str()).join(", ")
                    ))
                })?
            }
            _ => {}
        }
    }
    if let Some((register, _)) = pick(args.register, f.baresip_register, path) {
        s.register = register;
    }
    if s.mode == Mode::Managed {
        // ctrl_tcp has no authentication: it must not be reachable from elsewhere, and
        // it must not collide with the SIP ports (SIP, and TLS on SIP + 1).
        let where_from = pick(
            args.text("ctrl_address").cloned(),
            f.baresip_text.get("ctrl_address").cloned(),
            path,
        );
        let err = |problem: String| match &where_from {
            Some((_, src)) => src.error("baresip.ctrl_address", problem),
            None => Source::Setting.error("baresip.ctrl_address", problem),
        };
        if !s.ctrl_address.ip().is_loopback() {
            return Err(err(format!(
                "{} is not a loopback address; baresip's control port has no authentication",
                s.ctrl_address
            )));
        }
        let sip_port = s
            .sip_listen
            .as_deref()
            .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
            .map_or(5060, |a| a.port());
        let ctrl = s.ctrl_address.port();
        if ctrl == sip_port || ctrl == sip_port.wrapping_add(1) {
            return Err(err(format!(
                "port {ctrl} collides with SIP on {sip_port} (and TLS on {})",
                sip_port.wrapping_add(1)
            )));
        }
    }
    s.command_timeout = Duration::from_millis(in_range(
        "baresip.command_timeout_ms",
        pick(args.command_timeout_ms, f.baresip_command_timeout_ms, path),
        5000,
        100,
        60_000,
    )?);
    Ok(s)
}

/// A value as it may appear in an error message (passwords never do).
fn jsonrpc_safe(text: &str) -> String {
    crate::protocol::jsonrpc::truncate(text)
}

fn kind_names() -> String {
    let names: Vec<&str> = BackendKind::ALL.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// Splits `NAME=VALUE` flag values.
fn split_pairs<'a>(
    entries: &[String],
    key: &str,
    form: &str,
) -> Result<Vec<(String, String, Source<'a>)>, ConfigError> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((a, b)) => Ok((a.trim().to_owned(), b.trim().to_owned(), Source::Setting)),
            None => Err(Source::Setting.error(key, format!("{entry:?} is not {form}"))),
        })
        .collect()
}

fn read_file(path: &Path) -> Result<FileValues, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    parse_file(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(text: &str) -> Result<Config, ConfigError> {
        let path = PathBuf::from("/etc/test.toml");
        let f = parse_file(&path, text)?;
        Config::resolve(&ServeArgs::default(), f, Some(path))
    }

    #[test]
    fn defaults() {
        let c = from_file("").expect("empty file is fine");
        assert_eq!(c.port, 9898);
        assert_eq!(c.listen.len(), 2);
        assert!(c.listen.iter().all(|ip| ip.is_loopback()));
        assert_eq!(c.access.origins.to_string(), "*");
        assert_eq!(c.idle_timeout, Duration::from_secs(180));
        assert_eq!(c.default_backend, "sim");
        assert_eq!(c.sim, SimSettings::default());
        assert_eq!(c.max_message_bytes, 65536);
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../docs/bapiws.example.toml");
        let c = from_file(text).expect("the example file is valid");
        assert_eq!(c.aliases.get("lync").map(String::as_str), Some("sim"));
    }

    #[test]
    fn flags_beat_file() {
        let path = PathBuf::from("/x.toml");
        let f = parse_file(&path, "port = 1\nidle_timeout_secs = 5\n").expect("valid");
        let args = ServeArgs {
            port: Some(2),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args, f, Some(path)).expect("valid");
        assert_eq!(c.port, 2);
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_files_name_file_key_and_problem() {
        let cases = [
            ("port = \"x\"", "key `port`", "invalid type"),
            ("port = 70000", "key `port`", ""),
            ("prot = 1", "key `prot`", "unknown key"),
            (
                "[sim]\nanswer_dely_ms = 1",
                "key `sim.answer_dely_ms`",
                "unknown key",
            ),
            (
                "[sim]\navailability = \"Sleepy\"",
                "key `sim.availability`",
                "not one of",
            ),
            (
                "idle_timeout_secs = 0",
                "key `idle_timeout_secs`",
                "out of range",
            ),
            (
                "listen = [\"localhost\"]",
                "key `listen`",
                "not an IP address",
            ),
            (
                "allowed_origins = [\"a.com:80\"]",
                "key `allowed_origins`",
                "invalid allowed origin",
            ),
            (
                "default_backend = \"skype\"",
                "key `default_backend`",
                "unknown backend",
            ),
            (
                "[aliases]\nlync = \"nothing\"",
                "key `aliases.lync`",
                "unknown backend",
            ),
            ("log_level = \"loud\"", "key `log_level`", "not one of"),
            ("port = ", "config file /etc/test.toml", "TOML parse error"),
        ];
        for (text, key, problem) in cases {
            let err = from_file(text).expect_err(text).to_string();
            assert!(err.contains("/etc/test.toml"), "{text}: {err}");
            assert!(err.contains(key), "{text}: {err}");
            assert!(err.contains(problem), "{text}: {err}");
        }
    }

    #[test]
    fn remote_listening_needs_allow_remote() {
        let err = from_file("listen = [\"0.0.0.0\"]")
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("key `listen`") && err.contains("allow_remote"),
            "{err}"
        );
        let c = from_file(
            "listen = [\"0.0.0.0\"]\nallow_remote = true\nallowed_hosts = [\"phone.example.lan\"]",
        )
        .expect("allowed explicitly");
        assert!(c.allow_remote);
        assert_eq!(c.access.hosts.extra(), ["phone.example.lan"]);
        assert!(from_file("allowed_hosts = [\"a b\"]").is_err());
    }

    #[test]
    fn alias_flags() {
        let args = ServeArgs {
            aliases: vec!["Lync=sim".into(), "skype = SIM".into()],
            default_backend: Some("lync".into()),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args, FileValues::default(), None).expect("valid");
        assert_eq!(c.aliases.len(), 2);
        let bad = ServeArgs {
            aliases: vec!["lync".into()],
            ..ServeArgs::default()
        };
        let err = Config::resolve(&bad, FileValues::default(), None).expect_err("no =");
        assert!(
            err.to_string().contains("--alias or BAPIWS_ALIASES"),
            "{err}"
        );
    }

    #[test]
    fn baresip_table() {
        let c = from_file(
            "[baresip]\nmode = \"attach\"\nctrl_address = \"127.0.0.1:4500\"\naccount = \"sip:1001@pbx.example.com\"\nregister = true\ndial_uri = \"sip:{number}@pbx.example.com;user=phone\"\n",
        )
        .expect("valid");
        assert_eq!(c.baresip.mode, Mode::Attach);
        assert_eq!(c.baresip.ctrl_address.port(), 4500);
        assert!(c.baresip.register);
        let bad = [
            ("[baresip]\nmode = \"remote\"", "baresip.mode"),
            ("[baresip]\naccount = \"1001\"", "baresip.account"),
            (
                "[baresip]\nauth_password = \"a;b\"",
                "baresip.auth_password",
            ),
            (
                "[baresip]\nauth_user = \"x\\nmodule evil.so\"",
                "baresip.auth_user",
            ),
            ("[baresip]\ndial_uri = \"sip:1@h\"", "baresip.dial_uri"),
            ("[baresip]\nrtp_ports = \"9-1\"", "baresip.rtp_ports"),
            ("[baresip]\ntransport = \"sctp\"", "baresip.transport"),
            ("[baresip]\nregister = \"yes\"", "baresip.register"),
            ("[baresip]\ncolour = \"x\"", "baresip.colour"),
            (
                "[baresip]\nctrl_address = \"0.0.0.0:4444\"",
                "baresip.ctrl_address",
            ),
            (
                "[baresip]\nctrl_address = \"127.0.0.1:5061\"",
                "baresip.ctrl_address",
            ),
            (
                "[baresip]\nsip_listen = \"127.0.0.1:7000\"\nctrl_address = \"127.0.0.1:7000\"",
                "baresip.ctrl_address",
            ),
        ];
        for (text, key) in bad {
            let err = from_file(text).expect_err(text).to_string();
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
        }
        let err = from_file("[baresip]\nauth_password = \"Secr3t;pw\"").expect_err("bad");
        assert!(!err.to_string().contains("Secr3t"), "{err}");
        // Attach mode may point anywhere the user runs baresip.
        assert!(
            from_file("[baresip]\nmode = \"attach\"\nctrl_address = \"127.0.0.1:5061\"").is_ok()
        );
    }

    #[test]
    fn an_alias_may_not_hide_a_backend() {
        for text in [
            "[aliases]\nsim = \"sim\"",
            "[extra_backends]\nagent2 = \"sim\"\n[aliases]\nAgent2 = \"sim\"",
        ] {
            let err = from_file(text).expect_err(text).to_string();
            assert!(err.contains("already a backend"), "{err}");
        }
    }

    #[test]
    fn extra_backends_and_aliases_to_them() {
        let c = from_file("[extra_backends]\nagent2 = \"sim\"\n[aliases]\nskype = \"agent2\"\n")
            .expect("valid");
        assert_eq!(
            c.extra_backends.get("agent2").map(String::as_str),
            Some("sim")
        );
        for (text, key) in [
            ("[extra_backends]\nsim = \"sim\"", "extra_backends.sim"),
            ("[extra_backends]\nx = \"phone\"", "extra_backends.x"),
            ("[extra_backends]\nx = \"baresip\"", "extra_backends.x"),
        ] {
            let err = from_file(text).expect_err(text).to_string();
            assert!(err.contains(key), "{err}");
        }
    }
}
