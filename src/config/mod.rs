//! Configuration: every setting, its default, and where it comes from.
//!
//! Precedence, highest first: command-line flags, environment variables `BAPIWS_*`, the
//! TOML file (`--config PATH`, else [`default_config_path`] if it exists), built-in
//! defaults. Flags, variables and file keys come from one set of structs: [`ServeArgs`]
//! here, and each backend's `Args` in its own folder (`[sim]`, `[baresip]`), each deriving
//! clap (flags, with env) and serde (the file). File key `idle_timeout_secs` is flag
//! `--idle-timeout-secs` and variable `BAPIWS_IDLE_TIMEOUT_SECS`; keys under `[sim]` get a
//! `sim-`/`SIM_` prefix. The layers are merged generically (`layers.rs`), then checked
//! once into the typed [`Config`] the rest of the program receives.

mod layers;
mod registry;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::LevelFilter;

use crate::access::{Access, DialPolicy, HostPolicy, OriginPolicy};
use crate::logging;
use crate::phone::{BackendArgs, BackendNames, BackendSettings};
use crate::settings::{SettingError, in_range};
use layers::Layers;
pub use layers::file_keys;
pub use registry::KEY as REGISTRY_KEY;
use registry::RegistryLayer;

/// Default TCP port, as the original.
pub const DEFAULT_PORT: u16 = 9898;

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
    /// Backend names: instances with their kinds, aliases, the default.
    pub backends: BackendNames,
    /// Every backend's settings.
    pub backend_settings: BackendSettings,
    /// Level of messages on stderr.
    pub log_level: LevelFilter,
    /// Folder of the daily log file.
    pub log_dir: PathBuf,
    /// Most bytes written to one day's log file.
    pub log_max_bytes_per_day: u64,
    /// Days of log files kept (0: all).
    pub log_keep_days: u32,
    /// Largest accepted WebSocket message in bytes.
    pub max_message_bytes: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Whether the audit log shows dialled numbers in full (masked by default).
    pub log_full_numbers: bool,
    /// Whether `bapiws dial` asks the user to confirm each call placed from a link.
    pub link_confirm: bool,
    /// Notifications queued per connection before it counts as too slow.
    pub send_queue: usize,
    /// State-changing commands one connection may send per second, sustained.
    pub command_rate: u32,
    /// State-changing commands one connection may send at once.
    pub command_burst: u32,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    /// The registry key that was read, if any (Windows).
    pub registry: Option<String>,
    /// What was not read and why (unknown registry values): logged at start.
    pub warnings: Vec<String>,
}

/// Settings of `bapiws serve`: the flags (each also read from its `BAPIWS_*` variable)
/// and the file's keys. Unset values are `None`.
#[derive(Args, Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: the per-user file, if it exists.
    #[arg(long, env = "BAPIWS_CONFIG", value_name = "PATH")]
    #[serde(skip)]
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
    pub listen: Option<Vec<String>>,
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
    /// Extra backend name, e.g. `lync=baresip`; repeat or comma-separate. Adds to the
    /// file's `[aliases]`, replacing an alias of the same name. (`lync` and `vfw` are
    /// built-in aliases of the default backend.)
    #[arg(
        long = "alias",
        env = "BAPIWS_ALIASES",
        value_delimiter = ',',
        value_name = "ALIAS=BACKEND"
    )]
    #[serde(with = "layers::pairs")]
    pub aliases: Vec<String>,
    /// Extra independent backend, e.g. `agent2=sim` for a second simulated phone with its
    /// own calls; repeat or comma-separate. Adds to the file's `[extra_backends]`.
    #[arg(
        long = "extra-backend",
        env = "BAPIWS_EXTRA_BACKENDS",
        value_delimiter = ',',
        value_name = "NAME=KIND"
    )]
    #[serde(with = "layers::pairs")]
    pub extra_backends: Vec<String>,
    /// Level of messages on stderr: off, error, warn, info, debug, trace. The log file
    /// records info and above, or more when this is debug or trace. [default: info]
    #[arg(long, env = "BAPIWS_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Show dialled numbers in full in the log's call-control lines (they are masked in
    /// the middle by default). [default: false]
    #[arg(long, env = "BAPIWS_LOG_FULL_NUMBERS", value_name = "BOOL")]
    pub log_full_numbers: Option<bool>,
    /// Folder of the daily log file BAPIWS_yyyymmdd.log. [default: a private per-user
    /// folder: ~/.local/state/bapiws on Linux, %TEMP% on Windows]
    #[arg(long, env = "BAPIWS_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Most bytes written to one day's log file; then one "log full until midnight" line.
    /// [default: 50000000]
    #[arg(long, env = "BAPIWS_LOG_MAX_BYTES_PER_DAY", value_name = "BYTES")]
    pub log_max_bytes_per_day: Option<u64>,
    /// Days of log files kept, today included; older BAPIWS_*.log files are deleted. 0
    /// keeps every file. [default: 7]
    #[arg(long, env = "BAPIWS_LOG_KEEP_DAYS", value_name = "DAYS")]
    pub log_keep_days: Option<u32>,
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
    /// State-changing commands (all but GetState and GetActiveCalls) one connection may
    /// send per second; the excess is answered -32005. [default: 20]
    #[arg(long, env = "BAPIWS_COMMAND_RATE", value_name = "N")]
    pub command_rate: Option<u32>,
    /// How many state-changing commands one connection may send at once before the rate
    /// applies. [default: 40]
    #[arg(long, env = "BAPIWS_COMMAND_BURST", value_name = "N")]
    pub command_burst: Option<u32>,
    /// Numbers CallOut may dial, comma-separated: exact numbers or prefixes ending in `*`
    /// (`+358*`). When set, every other number is refused (-32006). [default: all]
    #[arg(
        long,
        env = "BAPIWS_DIAL_ALLOW",
        value_delimiter = ',',
        value_name = "PATTERN,..."
    )]
    pub dial_allow: Option<Vec<String>>,
    /// Numbers CallOut may never dial, comma-separated: exact numbers or prefixes ending
    /// in `*` (`+1900*`, `00*`); checked before dial_allow. [default: none]
    #[arg(
        long,
        env = "BAPIWS_DIAL_DENY",
        value_delimiter = ',',
        value_name = "PATTERN,..."
    )]
    pub dial_deny: Option<Vec<String>>,
    /// Ask the user to confirm each call placed from a tel:, callto: or sip: link (`bapiws
    /// dial`, which reads this setting; the server does not use it). [default: false]
    #[arg(long, env = "BAPIWS_LINK_CONFIRM", value_name = "BOOL")]
    pub link_confirm: Option<bool>,
    /// Stop cleanly (clients closed with 1001, the log written, exit 0) when standard
    /// input closes: for a supervisor or test harness that holds the other end of a pipe,
    /// and on Windows, where a program started without a console gets no Ctrl-C. A flag
    /// only (not a file key, not a variable).
    #[arg(long)]
    #[serde(skip)]
    pub exit_on_stdin_close: bool,
    /// Every backend's settings (file tables `[sim]`, `[baresip]`).
    #[command(flatten)]
    #[serde(flatten)]
    pub backends: BackendArgs,
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
    /// A registry value has a bad value, or the key cannot be read (Windows).
    #[error("registry {path}{}: {problem}", if value.is_empty() { String::new() } else { format!(", value {value}") })]
    Registry {
        /// The key, as `HKLM\Software\Benemen\BAPIWS`.
        path: String,
        /// The value's name (`Port`; `sim\AnswerDelayMs` in a subkey).
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// A flag or environment variable has a bad value.
    #[error("setting `{key}` (from --{flag} or BAPIWS_{env}): {problem}", flag = flag_name(key), env = env_name(key))]
    Setting {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The command-line flag of a setting (without `--`).
fn flag_name(key: &str) -> String {
    match key {
        "aliases" => "alias".to_owned(),
        "extra_backends" => "extra-backend".to_owned(),
        // A backend's table as a whole: every flag of it.
        k if crate::phone::BackendKind::by_name(k).is_some() => format!("{k}-*"),
        k => k.replace(['_', '.'], "-"),
    }
}

/// The `BAPIWS_*` variable of a setting (without `BAPIWS_`).
fn env_name(key: &str) -> String {
    let name = key.replace('.', "_").to_ascii_uppercase();
    if crate::phone::BackendKind::by_name(key).is_some() {
        format!("{name}_*")
    } else {
        name
    }
}

/// The per-user configuration file: `config.toml` in the platform's config folder
/// (`~/.config/bapiws/` on Linux, `%APPDATA%\bapiws\config\` on Windows).
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "bapiws").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Resolves the configuration from flags/environment, the registry (Windows), the
    /// file and the defaults, with the passwords kept in the system's credential store
    /// (`[sip] password_store`) read: what `bapiws serve` runs with.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        Config::load_from(args, true)
    }

    /// [`Config::load`] without reading the credential store: for the commands that only
    /// need the settings (`bapiws doctor`, `bapiws dial`, `bapiws sip set-password`).
    pub fn load_without_store(args: &ServeArgs) -> Result<Config, ConfigError> {
        Config::load_from(args, false)
    }

    fn load_from(args: &ServeArgs, read_store: bool) -> Result<Config, ConfigError> {
        let registry = RegistryLayer::read()?;
        let path = match args.config.clone() {
            Some(p) => Some(p),
            None => default_config_path().filter(|p| p.is_file()),
        };
        let text = match &path {
            None => None,
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ConfigError::File {
                path: p.clone(),
                problem: e.to_string(),
            })?),
        };
        Config::resolve_with(args, text.as_deref(), path, registry, read_store)
    }

    /// Resolves the configuration from flags/environment and a file's text.
    #[cfg(test)]
    fn resolve(
        args: &ServeArgs,
        file_text: Option<&str>,
        file: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        Config::resolve_with(args, file_text, file, None, false)
    }

    /// Resolves the configuration from flags/environment, the registry's layer and a
    /// file's text; with `read_store`, reads the passwords kept in the credential store.
    fn resolve_with(
        args: &ServeArgs,
        file_text: Option<&str>,
        file: Option<PathBuf>,
        registry: Option<RegistryLayer>,
        read_store: bool,
    ) -> Result<Config, ConfigError> {
        let layers = Layers::new(args, registry, file_text, file.as_deref())?;
        let m = &layers.merged;
        let err = |e: SettingError| layers.error(e);
        let port = m.port.unwrap_or(DEFAULT_PORT);
        let listen = match &m.listen {
            None => vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            Some(list) if list.is_empty() => {
                return Err(err(SettingError::new(
                    "listen",
                    "at least one address is needed",
                )));
            }
            Some(list) => list
                .iter()
                .map(|s| {
                    s.trim().parse::<IpAddr>().map_err(|_| {
                        err(SettingError::new(
                            "listen",
                            format!("{s:?} is not an IP address"),
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let allow_remote = m.allow_remote.unwrap_or(false);
        if !allow_remote && let Some(ip) = listen.iter().find(|ip| !ip.is_loopback()) {
            return Err(err(SettingError::new(
                "listen",
                format!(
                    "{ip} is not a loopback address; anyone who can reach it could drive this phone. Set allow_remote = true to listen on it anyway"
                ),
            )));
        }
        let hosts = HostPolicy::parse(m.allowed_hosts.as_deref().unwrap_or_default())
            .map_err(|e| err(SettingError::new("allowed_hosts", e.to_string())))?;
        let origins = OriginPolicy::parse(m.allowed_origins.as_deref().unwrap_or(&["*".into()]))
            .map_err(|e| err(SettingError::new("allowed_origins", e.to_string())))?;
        let (allow, deny) = (
            m.dial_allow.as_deref().unwrap_or_default(),
            m.dial_deny.as_deref().unwrap_or_default(),
        );
        let dial_error =
            |key: &str, e: crate::access::PatternError| err(SettingError::new(key, e.to_string()));
        DialPolicy::parse(allow, &[]).map_err(|e| dial_error("dial_allow", e))?;
        let dial = DialPolicy::parse(allow, deny).map_err(|e| dial_error("dial_deny", e))?;
        let idle_secs = in_range(
            "idle_timeout_secs",
            m.idle_timeout_secs,
            180,
            1,
            7 * 24 * 3600,
        )
        .map_err(err)?;
        let backends = BackendNames::build(
            &layers.pairs("extra_backends")?,
            &layers.pairs("aliases")?,
            m.default_backend.as_deref(),
            &m.backends.configured_kinds(),
        )
        .map_err(err)?;
        let mut backend_settings = m.backends.resolve().map_err(err)?;
        if read_store {
            backend_settings
                .sip
                .read_stored_password()
                .map_err(|e| err(e.within("sip")))?;
        }
        let log_level = match &m.log_level {
            None => LevelFilter::INFO,
            Some(s) => s.parse::<LevelFilter>().map_err(|_| {
                err(SettingError::new(
                    "log_level",
                    format!("{s:?} is not one of off, error, warn, info, debug, trace"),
                ))
            })?,
        };
        let limit = |key: &str, v: Option<usize>, default: usize, min: usize, max: usize| {
            in_range(key, v, default, min, max).map_err(err)
        };
        Ok(Config {
            port,
            listen,
            access: Access {
                origins,
                hosts,
                dial,
            },
            allow_remote,
            idle_timeout: Duration::from_secs(idle_secs),
            backends,
            backend_settings,
            log_level,
            log_dir: m.log_dir.clone().unwrap_or_else(logging::default_dir),
            log_max_bytes_per_day: in_range(
                "log_max_bytes_per_day",
                m.log_max_bytes_per_day,
                logging::DEFAULT_MAX_BYTES_PER_DAY,
                logging::MIN_MAX_BYTES_PER_DAY,
                logging::MAX_MAX_BYTES_PER_DAY,
            )
            .map_err(err)?,
            log_keep_days: in_range(
                "log_keep_days",
                m.log_keep_days,
                logging::DEFAULT_KEEP_DAYS,
                0,
                logging::MAX_KEEP_DAYS,
            )
            .map_err(err)?,
            max_message_bytes: limit(
                "max_message_bytes",
                m.max_message_bytes,
                64 * 1024,
                256,
                64 * 1024 * 1024,
            )?,
            max_connections: limit("max_connections", m.max_connections, 1024, 1, 1_000_000)?,
            log_full_numbers: m.log_full_numbers.unwrap_or(false),
            link_confirm: m.link_confirm.unwrap_or(false),
            max_batch: limit("max_batch", m.max_batch, 100, 1, 100_000)?,
            send_queue: limit("send_queue", m.send_queue, 1024, 1, 1_000_000)?,
            command_rate: in_range("command_rate", m.command_rate, 20, 1, 10_000).map_err(err)?,
            command_burst: in_range("command_burst", m.command_burst, 40, 1, 100_000)
                .map_err(err)?,
            registry: layers.registry_path(),
            warnings: layers.warnings(),
            file: file.clone(),
        })
    }
}
