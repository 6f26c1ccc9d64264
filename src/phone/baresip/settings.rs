//! The baresip backend's settings: flags (`--baresip-…`, `BAPIWS_BARESIP_…`) and the
//! file's `[baresip]` table come from one struct, checked once into [`BaresipSettings`].
//! Only values that cannot break baresip's generated files get through.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use serde::{Deserialize, Serialize};

use crate::phone::Availability;
use crate::settings::{Secret, SettingError, in_range, one_of};

/// The `[baresip]` table and the `--baresip-…` flags; unset values are `None`.
#[derive(ClapArgs, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
#[group(id = "baresip_backend")]
pub struct Args {
    /// `managed` (bapiws starts and supervises baresip) or `attach` (connect to a baresip
    /// you run). [default: managed]
    #[arg(
        id = "baresip_mode",
        long = "baresip-mode",
        env = "BAPIWS_BARESIP_MODE",
        value_name = "MODE"
    )]
    pub mode: Option<String>,
    /// Address of baresip's ctrl_tcp module. [default: 127.0.0.1:4444]
    #[arg(
        id = "baresip_ctrl_address",
        long = "baresip-ctrl-address",
        env = "BAPIWS_BARESIP_CTRL_ADDRESS",
        value_name = "IP:PORT"
    )]
    pub ctrl_address: Option<String>,
    /// The baresip program (managed). [default: baresip]
    #[arg(
        id = "baresip_binary",
        long = "baresip-binary",
        env = "BAPIWS_BARESIP_BINARY",
        value_name = "PATH"
    )]
    pub binary: Option<String>,
    /// The SIP account, sip:user@domain (managed; default sip:bapiws@127.0.0.1).
    #[arg(
        id = "baresip_account",
        long = "baresip-account",
        env = "BAPIWS_BARESIP_ACCOUNT",
        value_name = "URI"
    )]
    pub account: Option<String>,
    /// SIP authentication user (managed).
    #[arg(
        id = "baresip_auth_user",
        long = "baresip-auth-user",
        env = "BAPIWS_BARESIP_AUTH_USER",
        value_name = "USER"
    )]
    pub auth_user: Option<String>,
    /// SIP authentication password (managed); prefer the variable or the file to the flag.
    #[arg(
        id = "baresip_auth_password",
        long = "baresip-auth-password",
        env = "BAPIWS_BARESIP_AUTH_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub auth_password: Option<Secret>,
    /// Register with the account's registrar (managed). [default: false]
    #[arg(
        id = "baresip_register",
        long = "baresip-register",
        env = "BAPIWS_BARESIP_REGISTER",
        value_name = "BOOL"
    )]
    pub register: Option<bool>,
    /// Outbound proxy URI (managed).
    #[arg(
        id = "baresip_outbound_proxy",
        long = "baresip-outbound-proxy",
        env = "BAPIWS_BARESIP_OUTBOUND_PROXY",
        value_name = "URI"
    )]
    pub outbound_proxy: Option<String>,
    /// SIP transport: udp, tcp or tls (managed). [default: udp]
    #[arg(
        id = "baresip_transport",
        long = "baresip-transport",
        env = "BAPIWS_BARESIP_TRANSPORT",
        value_name = "PROTO"
    )]
    pub transport: Option<String>,
    /// Local SIP address, IP:PORT (managed). [default: baresip's]
    #[arg(
        id = "baresip_sip_listen",
        long = "baresip-sip-listen",
        env = "BAPIWS_BARESIP_SIP_LISTEN",
        value_name = "IP:PORT"
    )]
    pub sip_listen: Option<String>,
    /// RTP port range, FROM-TO (managed). [default: baresip's]
    #[arg(
        id = "baresip_rtp_ports",
        long = "baresip-rtp-ports",
        env = "BAPIWS_BARESIP_RTP_PORTS",
        value_name = "FROM-TO"
    )]
    pub rtp_ports: Option<String>,
    /// Microphone, driver,device (managed). [default: alsa,default]
    #[arg(
        id = "baresip_audio_source",
        long = "baresip-audio-source",
        env = "BAPIWS_BARESIP_AUDIO_SOURCE",
        value_name = "DRIVER,DEVICE"
    )]
    pub audio_source: Option<String>,
    /// Speaker, driver,device (managed). [default: alsa,default]
    #[arg(
        id = "baresip_audio_player",
        long = "baresip-audio-player",
        env = "BAPIWS_BARESIP_AUDIO_PLAYER",
        value_name = "DRIVER,DEVICE"
    )]
    pub audio_player: Option<String>,
    /// The URI CallOut dials: {number} is the validated number, {domain} the account's
    /// domain (default sip:{number}@{domain}).
    #[arg(
        id = "baresip_dial_uri",
        long = "baresip-dial-uri",
        env = "BAPIWS_BARESIP_DIAL_URI",
        value_name = "TEMPLATE"
    )]
    pub dial_uri: Option<String>,
    /// DNS server, IP:PORT (managed). [default: the system's]
    #[arg(
        id = "baresip_dns_server",
        long = "baresip-dns-server",
        env = "BAPIWS_BARESIP_DNS_SERVER",
        value_name = "IP:PORT"
    )]
    pub dns_server: Option<String>,
    /// Network interface or address for SIP and RTP (managed).
    #[arg(
        id = "baresip_net_interface",
        long = "baresip-net-interface",
        env = "BAPIWS_BARESIP_NET_INTERFACE",
        value_name = "NAME"
    )]
    pub net_interface: Option<String>,
    /// Folder of baresip's modules (managed). [default on Linux: /usr/lib/baresip/modules]
    #[arg(
        id = "baresip_module_path",
        long = "baresip-module-path",
        env = "BAPIWS_BARESIP_MODULE_PATH",
        value_name = "DIR"
    )]
    pub module_path: Option<String>,
    /// Availability reported while baresip is online and idle. [default: Available]
    #[arg(
        id = "baresip_availability",
        long = "baresip-availability",
        env = "BAPIWS_BARESIP_AVAILABILITY",
        value_name = "STATE"
    )]
    pub availability: Option<String>,
    /// How long one command to baresip may take, in ms. [default: 5000]
    #[arg(
        id = "baresip_command_timeout_ms",
        long = "baresip-command-timeout-ms",
        env = "BAPIWS_BARESIP_COMMAND_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub command_timeout_ms: Option<u64>,
    /// How often the account re-registers, in seconds (managed, with register); also
    /// bounds how long a registrar that lost the registration goes unnoticed. [default: 300]
    #[arg(
        id = "baresip_register_interval_secs",
        long = "baresip-register-interval-secs",
        env = "BAPIWS_BARESIP_REGISTER_INTERVAL_SECS",
        value_name = "SECS"
    )]
    pub register_interval_secs: Option<u64>,
}

/// How baresip is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// bapiws starts baresip with a generated configuration and supervises it.
    Managed,
    /// bapiws connects to a baresip the user runs.
    Attach,
}

/// The baresip backend's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaresipSettings {
    /// Managed or attach.
    pub mode: Mode,
    /// Where ctrl_tcp listens (managed: where baresip is told to listen).
    pub ctrl_address: SocketAddr,
    /// The baresip program (managed).
    pub binary: PathBuf,
    /// The SIP account's address, `sip:user@domain` (managed).
    pub account: String,
    /// Authentication user (managed).
    pub auth_user: Option<String>,
    /// Authentication password (managed; [`Secret`]'s `Debug` hides it).
    pub auth_password: Option<Secret>,
    /// Whether to register with the account's registrar (managed).
    pub register: bool,
    /// Outbound proxy URI (managed).
    pub outbound_proxy: Option<String>,
    /// SIP transport: `udp`, `tcp` or `tls` (managed).
    pub transport: String,
    /// Local SIP address and port (managed; baresip's default when unset).
    pub sip_listen: Option<SocketAddr>,
    /// RTP port range, first and last (managed).
    pub rtp_ports: Option<(u16, u16)>,
    /// Microphone, `driver,device` (managed).
    pub audio_source: String,
    /// Speaker, `driver,device` (managed).
    pub audio_player: String,
    /// What CallOut dials: `{number}` is replaced by the validated number and `{domain}`
    /// by the account's domain.
    pub dial_uri: String,
    /// DNS server (managed; the system's when unset).
    pub dns_server: Option<SocketAddr>,
    /// Network interface or address (managed).
    pub net_interface: Option<String>,
    /// Folder of baresip's modules (managed).
    pub module_path: Option<PathBuf>,
    /// The availability reported while baresip is online and idle.
    pub availability: Availability,
    /// How long one command to baresip may take.
    pub command_timeout: Duration,
    /// The registration interval (baresip's `regint`).
    pub register_interval: Duration,
}

impl Default for BaresipSettings {
    fn default() -> Self {
        BaresipSettings {
            mode: Mode::Managed,
            ctrl_address: SocketAddr::from(([127, 0, 0, 1], 4444)),
            binary: PathBuf::from("baresip"),
            account: "sip:bapiws@127.0.0.1".into(),
            auth_user: None,
            auth_password: None,
            register: false,
            outbound_proxy: None,
            transport: "udp".into(),
            sip_listen: None,
            rtp_ports: None,
            audio_source: "alsa,default".into(),
            audio_player: "alsa,default".into(),
            dial_uri: "sip:{number}@{domain}".into(),
            dns_server: None,
            net_interface: None,
            module_path: default_module_path(),
            availability: Availability::Available,
            command_timeout: Duration::from_secs(5),
            register_interval: Duration::from_secs(300),
        }
    }
}

#[cfg(target_os = "linux")]
fn default_module_path() -> Option<PathBuf> {
    Some(PathBuf::from("/usr/lib/baresip/modules"))
}

#[cfg(not(target_os = "linux"))]
fn default_module_path() -> Option<PathBuf> {
    None
}

impl BaresipSettings {
    /// The account's domain: the host part of `account`.
    pub fn domain(&self) -> &str {
        let after = self.account.split_once('@').map_or("", |(_, d)| d);
        after.split([';', '>']).next().unwrap_or(after)
    }

    /// The URI CallOut dials for a validated number.
    pub fn dial_uri_for(&self, number: &str) -> String {
        self.dial_uri
            .replace("{number}", number)
            .replace("{domain}", self.domain())
    }
}

/// Characters a baresip setting may never hold: they would break the generated files'
/// syntax or inject lines. URIs may carry parameters (`;transport=tcp`).
fn unsafe_text(key: &str, text: &str) -> bool {
    let uri = matches!(key, "account" | "dial_uri" | "outbound_proxy");
    text.is_empty()
        || text.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '<' | '>' | '"')
                || (c == ';' && !uri)
        })
}

fn address(key: &str, text: &str) -> Result<SocketAddr, SettingError> {
    text.parse()
        .map_err(|_| SettingError::new(key, format!("{text:?} is not IP:PORT")))
}

impl Args {
    /// Every text value with its key, for the common checks.
    fn texts(&self) -> [(&'static str, Option<&str>); 17] {
        [
            ("mode", self.mode.as_deref()),
            ("ctrl_address", self.ctrl_address.as_deref()),
            ("binary", self.binary.as_deref()),
            ("account", self.account.as_deref()),
            ("auth_user", self.auth_user.as_deref()),
            (
                "auth_password",
                self.auth_password.as_ref().map(Secret::expose),
            ),
            ("outbound_proxy", self.outbound_proxy.as_deref()),
            ("transport", self.transport.as_deref()),
            ("sip_listen", self.sip_listen.as_deref()),
            ("rtp_ports", self.rtp_ports.as_deref()),
            ("audio_source", self.audio_source.as_deref()),
            ("audio_player", self.audio_player.as_deref()),
            ("dial_uri", self.dial_uri.as_deref()),
            ("dns_server", self.dns_server.as_deref()),
            ("net_interface", self.net_interface.as_deref()),
            ("module_path", self.module_path.as_deref()),
            ("availability", self.availability.as_deref()),
        ]
    }

    /// Checks every value; keys in errors are those of the `[baresip]` table.
    pub fn resolve(&self) -> Result<BaresipSettings, SettingError> {
        for (key, value) in self.texts() {
            if let Some(text) = value
                && unsafe_text(key, text)
            {
                // Never repeat a password in a message.
                let shown = if key == "auth_password" {
                    "the value".to_owned()
                } else {
                    format!("{:?}", crate::settings::shown(text))
                };
                return Err(SettingError::new(
                    key,
                    format!("{shown} is empty or holds whitespace, control characters or <>\";"),
                ));
            }
        }
        let mut s = BaresipSettings::default();
        let err = SettingError::new;
        if let Some(t) = &self.mode {
            s.mode = match t.to_ascii_lowercase().as_str() {
                "managed" => Mode::Managed,
                "attach" => Mode::Attach,
                _ => return Err(err("mode", format!("{t:?} is not managed or attach"))),
            };
        }
        if let Some(t) = &self.ctrl_address {
            s.ctrl_address = address("ctrl_address", t)?;
        }
        if let Some(t) = &self.binary {
            s.binary = PathBuf::from(t);
        }
        if let Some(t) = &self.account {
            let scheme_ok = t.starts_with("sip:") || t.starts_with("sips:");
            if !scheme_ok || !t.contains('@') {
                return Err(err("account", format!("{t:?} is not sip:user@domain")));
            }
            s.account = t.clone();
        }
        s.auth_user = self.auth_user.clone();
        s.auth_password = self.auth_password.clone();
        s.outbound_proxy = self.outbound_proxy.clone();
        if let Some(t) = &self.transport {
            let t = t.to_ascii_lowercase();
            if !matches!(t.as_str(), "udp" | "tcp" | "tls") {
                return Err(err("transport", format!("{t:?} is not udp, tcp or tls")));
            }
            s.transport = t;
        }
        s.sip_listen = self
            .sip_listen
            .as_deref()
            .map(|t| address("sip_listen", t))
            .transpose()?;
        s.dns_server = self
            .dns_server
            .as_deref()
            .map(|t| address("dns_server", t))
            .transpose()?;
        if let Some(t) = &self.rtp_ports {
            let range = t
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
                .filter(|(a, b)| a <= b);
            s.rtp_ports =
                Some(range.ok_or_else(|| err("rtp_ports", format!("{t:?} is not FROM-TO")))?);
        }
        for (key, value, slot) in [
            ("audio_source", &self.audio_source, &mut s.audio_source),
            ("audio_player", &self.audio_player, &mut s.audio_player),
        ] {
            if let Some(t) = value {
                let driver = t.split(',').next().unwrap_or("");
                if driver.is_empty()
                    || !driver
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(err(key, format!("{t:?} is not driver,device")));
                }
                *slot = t.clone();
            }
        }
        if let Some(t) = &self.dial_uri {
            if !t.contains("{number}") {
                return Err(err("dial_uri", format!("{t:?} has no {{number}}")));
            }
            s.dial_uri = t.clone();
        }
        s.net_interface = self.net_interface.clone();
        if let Some(t) = &self.module_path {
            s.module_path = Some(PathBuf::from(t));
        }
        if let Some(t) = &self.availability {
            s.availability = one_of(
                "availability",
                t,
                Availability::parse,
                &Availability::ALL.map(|a| a.as_str()),
            )?;
        }
        s.register = self.register.unwrap_or(false);
        s.command_timeout = Duration::from_millis(in_range(
            "command_timeout_ms",
            self.command_timeout_ms,
            5000,
            100,
            60_000,
        )?);
        s.register_interval = Duration::from_secs(in_range(
            "register_interval_secs",
            self.register_interval_secs,
            300,
            5,
            86_400,
        )?);
        if s.mode == Mode::Managed {
            check_ctrl_address(&s)?;
        }
        Ok(s)
    }
}

/// Managed mode: ctrl_tcp has no authentication, so it must not be reachable from
/// elsewhere, and it must not collide with the SIP ports (SIP, and TLS on SIP + 1).
fn check_ctrl_address(s: &BaresipSettings) -> Result<(), SettingError> {
    let err = |problem: String| SettingError::new("ctrl_address", problem);
    if !s.ctrl_address.ip().is_loopback() {
        return Err(err(format!(
            "{} is not a loopback address; baresip's control port has no authentication",
            s.ctrl_address
        )));
    }
    let sip_port = s.sip_listen.map_or(5060, |a| a.port());
    let ctrl = s.ctrl_address.port();
    if ctrl == sip_port || ctrl == sip_port.wrapping_add(1) {
        return Err(err(format!(
            "port {ctrl} collides with SIP on {sip_port} (and TLS on {})",
            sip_port.wrapping_add(1)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let args = Args {
            account: Some("sip:1001@pbx.example.com".into()),
            auth_password: Some(Secret::new("Hunter2-baresip")),
            ..Args::default()
        };
        let settings = args.resolve().expect("valid");
        assert_eq!(
            settings.auth_password.as_ref().map(Secret::expose),
            Some("Hunter2-baresip")
        );
        for shown in [format!("{args:?}"), format!("{settings:?}")] {
            assert!(!shown.contains("Hunter2-baresip"), "{shown}");
            assert!(shown.contains("Secret(<hidden>)"), "{shown}");
        }
    }
}
