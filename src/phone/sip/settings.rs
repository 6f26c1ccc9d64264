//! The built-in SIP phone's settings: flags (`--sip-…`, `BAPIWS_SIP_…`) and the file's
//! `[sip]` table come from one struct, checked once into [`SipSettings`].

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use serde::{Deserialize, Serialize};

use super::audio::{SinkSpec, SourceSpec};
use super::media::g711::Law;
use super::queue::{QueueArgs, QueueRule};
use super::sdp::Encryption;
use crate::phone::Availability;
use crate::settings::{Secret, SettingError, in_range, one_of};

/// The `[sip]` table and the `--sip-…` flags; unset values are `None`.
#[derive(ClapArgs, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
#[group(id = "sip_backend")]
pub struct Args {
    /// The SIP account (address of record), sip:user@domain.
    #[arg(
        id = "sip_account",
        long = "sip-account",
        env = "BAPIWS_SIP_ACCOUNT",
        value_name = "URI"
    )]
    pub account: Option<String>,
    /// The authentication user. [default: the account's user]
    #[arg(
        id = "sip_auth_user",
        long = "sip-auth-user",
        env = "BAPIWS_SIP_AUTH_USER",
        value_name = "USER"
    )]
    pub auth_user: Option<String>,
    /// The password; prefer `password_store`, `password_file` or the variable to the flag.
    #[arg(
        id = "sip_password",
        long = "sip-password",
        env = "BAPIWS_SIP_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,
    /// A file whose first line is the password.
    #[arg(
        id = "sip_password_file",
        long = "sip-password-file",
        env = "BAPIWS_SIP_PASSWORD_FILE",
        value_name = "PATH"
    )]
    pub password_file: Option<String>,
    /// `keyring`: read the password at start from the system's credential store (the
    /// Secret Service on Linux, the Credential Manager on Windows), service `bapiws`,
    /// user the account; `bapiws sip set-password` puts it there. [default: none]
    #[arg(
        id = "sip_password_store",
        long = "sip-password-store",
        env = "BAPIWS_SIP_PASSWORD_STORE",
        value_name = "STORE"
    )]
    pub password_store: Option<String>,
    /// The registrar, HOST:PORT or an IP address. [default: the account's domain, port 5060]
    #[arg(
        id = "sip_registrar",
        long = "sip-registrar",
        env = "BAPIWS_SIP_REGISTRAR",
        value_name = "HOST:PORT"
    )]
    pub registrar: Option<String>,
    /// Send every request through this proxy, HOST:PORT. [default: none]
    #[arg(
        id = "sip_outbound_proxy",
        long = "sip-outbound-proxy",
        env = "BAPIWS_SIP_OUTBOUND_PROXY",
        value_name = "HOST:PORT"
    )]
    pub outbound_proxy: Option<String>,
    /// `udp`, `tcp` or `tls`. [default: udp]
    #[arg(
        id = "sip_transport",
        long = "sip-transport",
        env = "BAPIWS_SIP_TRANSPORT",
        value_name = "TRANSPORT"
    )]
    pub transport: Option<String>,
    /// Over TLS, a PEM file of the certificate authorities to trust instead of the
    /// system's. [default: the system's trusted roots]
    #[arg(
        id = "sip_tls_ca_file",
        long = "sip-tls-ca-file",
        env = "BAPIWS_SIP_TLS_CA_FILE",
        value_name = "PATH"
    )]
    pub tls_ca_file: Option<String>,
    /// Over TLS, the name the registrar's (or proxy's) certificate must carry. [default:
    /// the host of the outbound proxy, else of the registrar]
    #[arg(
        id = "sip_tls_server_name",
        long = "sip-tls-server-name",
        env = "BAPIWS_SIP_TLS_SERVER_NAME",
        value_name = "NAME"
    )]
    pub tls_server_name: Option<String>,
    /// Register with the registrar. [default: true]
    #[arg(
        id = "sip_register",
        long = "sip-register",
        env = "BAPIWS_SIP_REGISTER",
        value_name = "BOOL"
    )]
    pub register: Option<bool>,
    /// Seconds a registration lasts before it is refreshed. [default: 120]
    #[arg(
        id = "sip_register_interval_secs",
        long = "sip-register-interval-secs",
        env = "BAPIWS_SIP_REGISTER_INTERVAL_SECS",
        value_name = "SECS"
    )]
    pub register_interval_secs: Option<u64>,
    /// Seconds between keep-alive pings on TCP connections (RFC 5626 CRLF); 0 turns
    /// them off. [default: 10]
    #[arg(
        id = "sip_keepalive_secs",
        long = "sip-keepalive-secs",
        env = "BAPIWS_SIP_KEEPALIVE_SECS",
        value_name = "SECS"
    )]
    pub keepalive_secs: Option<u64>,
    /// The local SIP address, IP:PORT (port 0: any free port). [default: 0.0.0.0:0]
    #[arg(
        id = "sip_listen",
        long = "sip-listen",
        env = "BAPIWS_SIP_LISTEN",
        value_name = "IP:PORT"
    )]
    pub listen: Option<String>,
    /// The RTP port range, FROM-TO. [default: 16384-32767]
    #[arg(
        id = "sip_rtp_ports",
        long = "sip-rtp-ports",
        env = "BAPIWS_SIP_RTP_PORTS",
        value_name = "FROM-TO"
    )]
    pub rtp_ports: Option<String>,
    /// Codecs in order of preference, from PCMU and PCMA. [default: PCMU,PCMA]
    #[arg(
        id = "sip_codecs",
        long = "sip-codecs",
        env = "BAPIWS_SIP_CODECS",
        value_name = "LIST"
    )]
    pub codecs: Option<String>,
    /// Encrypted media (SRTP, SDES keys): `off`, `optional` (offered; plain RTP with a far
    /// end without it) or `mandatory` (a call that cannot be encrypted fails).
    /// [default: off]
    #[arg(
        id = "sip_srtp",
        long = "sip-srtp",
        env = "BAPIWS_SIP_SRTP",
        value_name = "MODE"
    )]
    pub srtp: Option<String>,
    /// Outgoing audio: device, device:NAME, tone:HZ, wav:PATH or silence. [default: device]
    #[arg(
        id = "sip_audio_source",
        long = "sip-audio-source",
        env = "BAPIWS_SIP_AUDIO_SOURCE",
        value_name = "SOURCE"
    )]
    pub audio_source: Option<String>,
    /// Incoming audio: device, device:NAME, wav:PATH or discard. [default: device]
    #[arg(
        id = "sip_audio_sink",
        long = "sip-audio-sink",
        env = "BAPIWS_SIP_AUDIO_SINK",
        value_name = "SINK"
    )]
    pub audio_sink: Option<String>,
    /// The request URI for a dialled number; `{number}` is replaced.
    /// [default: sip:{number}@<the account's domain>]
    #[arg(
        id = "sip_dial_uri",
        long = "sip-dial-uri",
        env = "BAPIWS_SIP_DIAL_URI",
        value_name = "URI"
    )]
    pub dial_uri: Option<String>,
    /// Who may send INVITEs: `proxy` (the registrar and outbound proxy only) or `any`.
    /// [default: proxy]
    #[arg(
        id = "sip_accept_invites_from",
        long = "sip-accept-invites-from",
        env = "BAPIWS_SIP_ACCEPT_INVITES_FROM",
        value_name = "WHO"
    )]
    pub accept_invites_from: Option<String>,
    /// Most calls at once; further INVITEs get 486 Busy Here. [default: 4]
    #[arg(
        id = "sip_max_calls",
        long = "sip-max-calls",
        env = "BAPIWS_SIP_MAX_CALLS",
        value_name = "N"
    )]
    pub max_calls: Option<usize>,
    /// The phone's availability at start. [default: Available]
    #[arg(
        id = "sip_availability",
        long = "sip-availability",
        env = "BAPIWS_SIP_AVAILABILITY",
        value_name = "STATE"
    )]
    pub availability: Option<String>,
    /// The `[sip.queue]` table: which INVITEs are queue calls (a file table only: not a
    /// flag, variable or registry value).
    #[arg(skip)]
    pub queue: Option<QueueArgs>,
}

/// Signalling transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP (RFC 3261 §18, with rport).
    Udp,
    /// TCP, one connection to the next hop.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2), one connection to the next hop, whose certificate
    /// is verified.
    Tls,
}

impl Transport {
    /// The Via/`transport=` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The URI parameter that selects it (none for UDP, the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// Whether it is a connection (TCP or TLS) rather than datagrams.
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }

    /// The port a registrar or proxy listens on when none is given (5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

/// How the phone checks the certificate of the server it reaches over TLS.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsTrust {
    /// The PEM text of the authorities to trust (`tls_ca_file`); none: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name the certificate must carry (`tls_server_name`); none: the next hop's host.
    pub server_name: Option<String>,
}

/// Where the password comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PasswordFrom {
    /// No password: the phone answers no challenge.
    #[default]
    Unset,
    /// The `password` setting.
    Setting,
    /// The first line of `password_file`.
    File(PathBuf),
    /// The system's credential store (`password_store = "keyring"`), read at start by
    /// [`SipSettings::read_stored_password`].
    Keyring,
}

/// Who may ring the phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteSources {
    /// Only the registrar's and the outbound proxy's addresses.
    Proxy,
    /// Anyone who reaches the SIP port.
    Any,
}

/// The built-in phone's checked settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipSettings {
    /// `sip:user@domain`.
    pub account: String,
    /// The account's user part.
    pub user: String,
    /// The account's domain (host part, maybe with a port).
    pub domain: String,
    /// The authentication user.
    pub auth_user: String,
    /// The password (never shown; [`Secret`]'s `Debug` hides it).
    pub password: Option<Secret>,
    /// Where the password comes from.
    pub password_from: PasswordFrom,
    /// Where REGISTER goes, HOST:PORT.
    pub registrar: String,
    /// Where every request goes first, when set.
    pub outbound_proxy: Option<String>,
    /// The transport.
    pub transport: Transport,
    /// A `sips:` account: its URIs (request, Contact, dialled numbers) are `sips:`, and it
    /// is reached over TLS only.
    pub sips: bool,
    /// Over TLS, what the server's certificate is checked against.
    pub tls: TlsTrust,
    /// Whether to register.
    pub register: bool,
    /// The registration's lifetime asked for.
    pub register_interval: Duration,
    /// How often TCP connections are pinged (RFC 5626 double-CRLF), when at all.
    pub keepalive: Option<Duration>,
    /// The local SIP address.
    pub listen: SocketAddr,
    /// The RTP port range.
    pub rtp_ports: RangeInclusive<u16>,
    /// Codecs in order of preference.
    pub codecs: Vec<Law>,
    /// Whether media is encrypted.
    pub srtp: Encryption,
    /// Outgoing audio.
    pub audio_source: SourceSpec,
    /// Incoming audio.
    pub audio_sink: SinkSpec,
    /// The dial URI template.
    pub dial_uri: String,
    /// Who may send INVITEs.
    pub accept_invites_from: InviteSources,
    /// Most calls at once.
    pub max_calls: usize,
    /// Availability at start.
    pub availability: Availability,
    /// Which calls come from a PBX's service queue (`[sip.queue]`), when set.
    pub queue: Option<QueueRule>,
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            account: "sip:bapiws@127.0.0.1".into(),
            user: "bapiws".into(),
            domain: "127.0.0.1".into(),
            auth_user: "bapiws".into(),
            password: None,
            password_from: PasswordFrom::Unset,
            registrar: "127.0.0.1:5060".into(),
            outbound_proxy: None,
            transport: Transport::Udp,
            sips: false,
            tls: TlsTrust::default(),
            register: true,
            register_interval: Duration::from_secs(120),
            keepalive: Some(Duration::from_secs(10)),
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            rtp_ports: 16384..=32767,
            codecs: vec![Law::Pcmu, Law::Pcma],
            srtp: Encryption::Off,
            audio_source: SourceSpec::Device(None),
            audio_sink: SinkSpec::Device(None),
            dial_uri: "sip:{number}@127.0.0.1".into(),
            accept_invites_from: InviteSources::Proxy,
            max_calls: 4,
            availability: Availability::Available,
            queue: None,
        }
    }
}

/// Whether a text may go into a SIP header: printable ASCII without the characters that
/// end or quote a header value.
fn header_safe(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b',' | b'\\'))
}

/// `HOST[:PORT]` with a host of letters, digits, `.`, `-` or an IP address.
fn host_port(key: &str, t: &str, default_port: u16) -> Result<String, SettingError> {
    let t = t.strip_prefix("sip:").unwrap_or(t);
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, p.parse::<u16>().ok()),
        _ => (t, Some(default_port)),
    };
    let host_ok = !host.is_empty()
        && (host.parse::<IpAddr>().is_ok()
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    match port {
        Some(p) if host_ok && p != 0 => Ok(format!("{host}:{p}")),
        _ => Err(SettingError::new(
            key,
            format!("{:?} is not HOST:PORT", crate::settings::shown(t)),
        )),
    }
}

impl Args {
    /// Checks every value; keys in errors are those of the `[sip]` table.
    pub fn resolve(&self) -> Result<SipSettings, SettingError> {
        let err = SettingError::new;
        let mut s = SipSettings::default();
        if let Some(t) = &self.transport {
            s.transport = match t.to_ascii_lowercase().as_str() {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                "tls" => Transport::Tls,
                _ => {
                    return Err(err(
                        "transport",
                        format!("{:?} is not udp, tcp or tls", crate::settings::shown(t)),
                    ));
                }
            };
        }
        s.sips = self
            .account
            .as_deref()
            .is_some_and(|a| a.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("sips:")));
        if s.sips {
            if self.transport.is_some() && s.transport != Transport::Tls {
                return Err(err(
                    "transport",
                    "a sips: account is reached over TLS only: set transport = \"tls\" or leave it out"
                        .to_owned(),
                ));
            }
            s.transport = Transport::Tls;
        }
        let port = s.transport.default_port();
        if let Some(t) = &self.account {
            let rest = t
                .get(s.scheme().len() + 1..)
                .filter(|_| t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) || s.sips);
            let rest = rest.ok_or_else(|| {
                err(
                    "account",
                    format!("{:?} is not sip:user@domain", crate::settings::shown(t)),
                )
            })?;
            let (user, domain) = rest
                .split_once('@')
                .filter(|(u, d)| header_safe(u) && !u.contains(['@', ':', ';']) && !d.is_empty())
                .ok_or_else(|| {
                    err(
                        "account",
                        format!("{:?} is not sip:user@domain", crate::settings::shown(t)),
                    )
                })?;
            host_port("account", domain, port)?;
            s.account = t.clone();
            s.user = user.to_owned();
            s.domain = domain.to_owned();
            s.auth_user = user.to_owned();
            s.registrar = host_port("account", domain, port)?;
            s.dial_uri = format!("{}:{{number}}@{domain}", s.scheme());
        }
        if let Some(t) = &self.auth_user {
            if !header_safe(t) {
                return Err(err(
                    "auth_user",
                    format!(
                        "{:?} holds characters a SIP header cannot carry",
                        crate::settings::shown(t)
                    ),
                ));
            }
            s.auth_user = t.clone();
        }
        let store = match &self.password_store {
            None => false,
            Some(t) => one_of(
                "password_store",
                t,
                |v| v.eq_ignore_ascii_case("keyring").then_some(true),
                &["keyring"],
            )?,
        };
        (s.password, s.password_from) = match (&self.password, &self.password_file, store) {
            (Some(_), _, true) | (_, Some(_), true) => {
                return Err(err(
                    "password_store",
                    "give one of password, password_file and password_store, not several"
                        .to_owned(),
                ));
            }
            (Some(_), Some(_), false) => {
                return Err(err(
                    "password_file",
                    "give the password or a file, not both".to_owned(),
                ));
            }
            (Some(p), None, false) => (Some(p.clone()), PasswordFrom::Setting),
            (None, Some(f), false) => (Some(read_password(f)?), PasswordFrom::File(f.into())),
            (None, None, true) => (None, PasswordFrom::Keyring),
            (None, None, false) => (None, PasswordFrom::Unset),
        };
        if let Some(p) = &s.password
            && !p.is_usable()
        {
            return Err(err(
                "password",
                "the value is empty, too long or holds control characters".to_owned(),
            ));
        }
        if let Some(t) = &self.registrar {
            s.registrar = host_port("registrar", t, port)?;
        }
        if let Some(t) = &self.outbound_proxy {
            s.outbound_proxy = Some(host_port("outbound_proxy", t, port)?);
        }
        if let Some(path) = &self.tls_ca_file {
            s.tls.ca_pem = Some(read_ca_file(path)?);
        }
        if let Some(name) = &self.tls_server_name {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
            if !ok {
                return Err(err(
                    "tls_server_name",
                    format!("{:?} is not a host name", crate::settings::shown(name)),
                ));
            }
            s.tls.server_name = Some(name.clone());
        }
        if s.transport != Transport::Tls
            && (self.tls_ca_file.is_some() || self.tls_server_name.is_some())
        {
            return Err(err(
                if self.tls_ca_file.is_some() {
                    "tls_ca_file"
                } else {
                    "tls_server_name"
                },
                "applies only with transport = \"tls\"".to_owned(),
            ));
        }
        s.register = self.register.unwrap_or(true);
        s.register_interval = Duration::from_secs(in_range(
            "register_interval_secs",
            self.register_interval_secs,
            120,
            5,
            86_400,
        )?);
        s.keepalive = match in_range("keepalive_secs", self.keepalive_secs, 10, 0, 300)? {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        if let Some(t) = &self.listen {
            s.listen = t.parse().map_err(|_| {
                err(
                    "listen",
                    format!("{:?} is not IP:PORT", crate::settings::shown(t)),
                )
            })?;
        }
        if let Some(t) = &self.rtp_ports {
            let range = t
                .split_once('-')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
                })
                .filter(|(a, b)| *a >= 1024 && b > a);
            let (a, b) = range.ok_or_else(|| {
                err(
                    "rtp_ports",
                    format!(
                        "{:?} is not FROM-TO (1024 to 65535, at least two ports)",
                        crate::settings::shown(t)
                    ),
                )
            })?;
            s.rtp_ports = a..=b;
        }
        if let Some(t) = &self.codecs {
            let mut codecs = Vec::new();
            for name in t.split(',').map(str::trim) {
                let law = match name.to_ascii_uppercase().as_str() {
                    "PCMU" => Law::Pcmu,
                    "PCMA" => Law::Pcma,
                    _ => {
                        return Err(err(
                            "codecs",
                            format!("{:?} is not PCMU or PCMA", crate::settings::shown(name)),
                        ));
                    }
                };
                if !codecs.contains(&law) {
                    codecs.push(law);
                }
            }
            s.codecs = codecs;
        }
        if let Some(t) = &self.srtp {
            s.srtp = one_of(
                "srtp",
                t,
                |v| match v.to_ascii_lowercase().as_str() {
                    "off" => Some(Encryption::Off),
                    "optional" => Some(Encryption::Optional),
                    "mandatory" => Some(Encryption::Mandatory),
                    _ => None,
                },
                &["off", "optional", "mandatory"],
            )?;
        }
        if let Some(t) = &self.audio_source {
            s.audio_source = SourceSpec::parse(t).map_err(|e| err("audio_source", e))?;
        }
        if let Some(t) = &self.audio_sink {
            s.audio_sink = SinkSpec::parse(t).map_err(|e| err("audio_sink", e))?;
        }
        if let Some(t) = &self.dial_uri {
            let sips_uri = t.starts_with("sips:");
            if sips_uri && s.transport != Transport::Tls {
                return Err(err(
                    "dial_uri",
                    "a sips: URI is reached over TLS only: set transport = \"tls\"".to_owned(),
                ));
            }
            if !t.contains("{number}") || !(t.starts_with("sip:") || sips_uri) || !header_safe(t) {
                return Err(err(
                    "dial_uri",
                    format!(
                        "{:?} is not a sip: URI with {{number}}",
                        crate::settings::shown(t)
                    ),
                ));
            }
            s.dial_uri = t.clone();
        }
        if let Some(t) = &self.accept_invites_from {
            s.accept_invites_from = one_of(
                "accept_invites_from",
                t,
                |v| match v.to_ascii_lowercase().as_str() {
                    "proxy" => Some(InviteSources::Proxy),
                    "any" => Some(InviteSources::Any),
                    _ => None,
                },
                &["proxy", "any"],
            )?;
        }
        s.max_calls = in_range("max_calls", self.max_calls, 4, 1, 32)?;
        if let Some(t) = &self.availability {
            s.availability = one_of(
                "availability",
                t,
                Availability::parse,
                &Availability::ALL.map(|a| a.as_str()),
            )?;
        }
        if let Some(q) = &self.queue {
            s.queue = q.resolve()?;
        }
        Ok(s)
    }
}

/// The largest CA file read (a system bundle is about 200 KiB).
const MAX_CA_FILE: u64 = 1 << 20;

/// Reads a PEM file of certificate authorities: at most [`MAX_CA_FILE`], holding at
/// least one certificate.
fn read_ca_file(path: &str) -> Result<Vec<u8>, SettingError> {
    let p = PathBuf::from(path);
    let cannot = |e: std::io::Error| {
        SettingError::new("tls_ca_file", format!("cannot read {}: {e}", p.display()))
    };
    let meta = std::fs::metadata(&p).map_err(cannot)?;
    if meta.len() > MAX_CA_FILE {
        return Err(SettingError::new(
            "tls_ca_file",
            format!("{} is larger than 1 MiB", p.display()),
        ));
    }
    let pem = std::fs::read(&p).map_err(cannot)?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(SettingError::new(
            "tls_ca_file",
            format!("{} holds no PEM certificate", p.display()),
        ));
    }
    Ok(pem)
}

impl SipSettings {
    /// The URI scheme of the account's requests: `sips` for a `sips:` account.
    pub fn scheme(&self) -> &'static str {
        if self.sips { "sips" } else { "sip" }
    }

    /// The parameter that selects the transport in our URIs: none for `sips:` (the
    /// scheme says TLS) or UDP.
    pub fn uri_param(&self) -> &'static str {
        if self.sips {
            ""
        } else {
            self.transport.uri_param()
        }
    }

    /// With `password_store = "keyring"`, reads the password from the system's credential
    /// store (service [`SERVICE`](crate::platform::credentials::SERVICE), user the
    /// account); otherwise does nothing. A missing entry or a store that cannot be
    /// reached is an error of the key `password_store`, in words a user can act on.
    pub fn read_stored_password(&mut self) -> Result<(), SettingError> {
        use crate::platform::credentials::{self, StoreError};
        if self.password_from != PasswordFrom::Keyring {
            return Ok(());
        }
        let store = credentials::store_name();
        let account = crate::settings::shown(&self.account);
        let password = credentials::read(&self.account).map_err(|e| {
            SettingError::new(
                "password_store",
                match e {
                    StoreError::NoEntry => format!(
                        "no password stored for {account} in {store}; run `bapiws sip set-password` (with the settings of `bapiws serve`)"
                    ),
                    StoreError::Unsupported => {
                        "this system has no credential store bapiws can use; use password_file instead"
                            .to_owned()
                    }
                    other => format!(
                        "cannot read the password for {account} from {store}: {other}; {}",
                        credentials::store_fix()
                    ),
                },
            )
        })?;
        if !password.is_usable() {
            return Err(SettingError::new(
                "password_store",
                format!(
                    "the password stored for {account} in {store} is too long (over 256 bytes) or holds control characters; store it again with `bapiws sip set-password`"
                ),
            ));
        }
        self.password = Some(password);
        Ok(())
    }
}

/// Reads a password file's first line.
fn read_password(path: &str) -> Result<Secret, SettingError> {
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p).map_err(|e| {
        SettingError::new("password_file", format!("cannot read {}: {e}", p.display()))
    })?;
    if meta.len() > 4096 {
        return Err(SettingError::new(
            "password_file",
            format!("{} is larger than 4 KiB", p.display()),
        ));
    }
    let text = std::fs::read_to_string(&p).map_err(|e| {
        SettingError::new("password_file", format!("cannot read {}: {e}", p.display()))
    })?;
    Ok(Secret::new(text.lines().next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sips_account_is_reached_over_tls_with_sips_uris() {
        let a = Args {
            account: Some("sips:1001@pbx.example.com".into()),
            ..Args::default()
        };
        let s = a.resolve().expect("valid");
        assert!(s.sips);
        assert_eq!(s.transport, Transport::Tls);
        assert_eq!(s.registrar, "pbx.example.com:5061");
        assert_eq!(s.dial_uri, "sips:{number}@pbx.example.com");
        assert_eq!((s.scheme(), s.uri_param()), ("sips", ""));
        assert_eq!(s.user, "1001");
        let e = Args {
            account: Some("sips:1001@pbx.example.com".into()),
            transport: Some("udp".into()),
            ..Args::default()
        }
        .resolve()
        .expect_err("sips over UDP");
        assert!(e.problem.contains("TLS only"), "{e:?}");
        let e = Args {
            dial_uri: Some("sips:{number}@pbx".into()),
            ..Args::default()
        }
        .resolve()
        .expect_err("a sips: dial URI over UDP");
        assert!(e.problem.contains("TLS only"), "{e:?}");
        let plain = Args {
            account: Some("sip:1001@pbx.example.com".into()),
            srtp: Some("Mandatory".into()),
            ..Args::default()
        }
        .resolve()
        .expect("valid");
        assert!(!plain.sips);
        assert_eq!(plain.srtp, Encryption::Mandatory);
        assert_eq!((plain.scheme(), plain.uri_param()), ("sip", ""));
        let e = Args {
            srtp: Some("sometimes".into()),
            ..Args::default()
        }
        .resolve()
        .expect_err("not a mode");
        assert!(e.problem.contains("mandatory"), "{e:?}");
    }

    #[test]
    fn defaults_follow_the_account() {
        let a = Args {
            account: Some("sip:1001@pbx.example.com:5070".into()),
            ..Args::default()
        };
        let s = a.resolve().expect("valid");
        assert_eq!(s.user, "1001");
        assert_eq!(s.auth_user, "1001");
        assert_eq!(s.registrar, "pbx.example.com:5070");
        assert_eq!(s.dial_uri, "sip:{number}@pbx.example.com:5070");
        assert_eq!(s.transport, Transport::Udp);
        assert!(s.register);
        assert_eq!(s.register_interval, Duration::from_secs(120));
        assert_eq!(s.keepalive, Some(Duration::from_secs(10)));
        assert_eq!(s.accept_invites_from, InviteSources::Proxy);
    }

    #[test]
    fn tls_takes_port_5061_and_its_trust_settings() {
        let a = Args {
            account: Some("sip:1001@pbx.example.com".into()),
            transport: Some("TLS".into()),
            tls_server_name: Some("sbc.example.com".into()),
            ..Args::default()
        };
        let s = a.resolve().expect("valid");
        assert_eq!(s.transport, Transport::Tls);
        assert_eq!(s.registrar, "pbx.example.com:5061");
        assert_eq!(s.tls.server_name.as_deref(), Some("sbc.example.com"));
        assert_eq!(s.tls.ca_pem, None);
        assert_eq!(s.transport.uri_param(), ";transport=tls");
    }

    #[test]
    fn bad_values_name_their_key_and_never_the_password() {
        for (args, key) in [
            (
                Args {
                    account: Some("1001@x".into()),
                    ..Args::default()
                },
                "account",
            ),
            (
                Args {
                    account: Some("sip:a\"b@x".into()),
                    ..Args::default()
                },
                "account",
            ),
            (
                Args {
                    account: Some("sip:a@x y".into()),
                    ..Args::default()
                },
                "account",
            ),
            (
                Args {
                    registrar: Some("x:0".into()),
                    ..Args::default()
                },
                "registrar",
            ),
            (
                Args {
                    registrar: Some("a b:5060".into()),
                    ..Args::default()
                },
                "registrar",
            ),
            (
                Args {
                    transport: Some("sctp".into()),
                    ..Args::default()
                },
                "transport",
            ),
            (
                Args {
                    tls_ca_file: Some("/nonexistent/ca.pem".into()),
                    transport: Some("tls".into()),
                    ..Args::default()
                },
                "tls_ca_file",
            ),
            (
                Args {
                    tls_server_name: Some("pbx.example.com".into()),
                    ..Args::default()
                },
                "tls_server_name",
            ),
            (
                Args {
                    tls_server_name: Some("pbx example".into()),
                    transport: Some("tls".into()),
                    ..Args::default()
                },
                "tls_server_name",
            ),
            (
                Args {
                    listen: Some("localhost".into()),
                    ..Args::default()
                },
                "listen",
            ),
            (
                Args {
                    rtp_ports: Some("10-20".into()),
                    ..Args::default()
                },
                "rtp_ports",
            ),
            (
                Args {
                    rtp_ports: Some("20000-20000".into()),
                    ..Args::default()
                },
                "rtp_ports",
            ),
            (
                Args {
                    codecs: Some("PCMU,G729".into()),
                    ..Args::default()
                },
                "codecs",
            ),
            (
                Args {
                    audio_source: Some("mic".into()),
                    ..Args::default()
                },
                "audio_source",
            ),
            (
                Args {
                    audio_sink: Some("tone:5".into()),
                    ..Args::default()
                },
                "audio_sink",
            ),
            (
                Args {
                    dial_uri: Some("sip:x@y".into()),
                    ..Args::default()
                },
                "dial_uri",
            ),
            (
                Args {
                    accept_invites_from: Some("all".into()),
                    ..Args::default()
                },
                "accept_invites_from",
            ),
            (
                Args {
                    max_calls: Some(0),
                    ..Args::default()
                },
                "max_calls",
            ),
            (
                Args {
                    register_interval_secs: Some(1),
                    ..Args::default()
                },
                "register_interval_secs",
            ),
            (
                Args {
                    keepalive_secs: Some(301),
                    ..Args::default()
                },
                "keepalive_secs",
            ),
            (
                Args {
                    password: Some(Secret::new("pw\nx")),
                    ..Args::default()
                },
                "password",
            ),
            (
                Args {
                    password: Some(Secret::new("a")),
                    password_file: Some("/x".into()),
                    ..Args::default()
                },
                "password_file",
            ),
            (
                Args {
                    password: Some(Secret::new("pw\nx")),
                    password_store: Some("keyring".into()),
                    ..Args::default()
                },
                "password_store",
            ),
            (
                Args {
                    password_file: Some("/x".into()),
                    password_store: Some("keyring".into()),
                    ..Args::default()
                },
                "password_store",
            ),
            (
                Args {
                    password_store: Some("vault".into()),
                    ..Args::default()
                },
                "password_store",
            ),
            (
                Args {
                    password_file: Some("/nonexistent/pw".into()),
                    ..Args::default()
                },
                "password_file",
            ),
        ] {
            let e = args.resolve().expect_err(key);
            assert_eq!(e.key, key, "{e:?}");
            assert!(!e.problem.contains("pw\nx"));
        }
    }

    #[test]
    fn lists_and_ranges() {
        let s = Args {
            codecs: Some("pcma, PCMU,PCMA".into()),
            rtp_ports: Some("20000-20099".into()),
            registrar: Some("127.0.0.1:5999".into()),
            outbound_proxy: Some("sip:10.0.0.1".into()),
            keepalive_secs: Some(0),
            ..Args::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(s.keepalive, None);
        assert_eq!(s.codecs, vec![Law::Pcma, Law::Pcmu]);
        assert_eq!(s.rtp_ports, 20000..=20099);
        assert_eq!(s.registrar, "127.0.0.1:5999");
        assert_eq!(s.outbound_proxy.as_deref(), Some("10.0.0.1:5060"));
    }

    #[test]
    fn the_store_is_chosen_alone_and_read_only_on_request() {
        let s = Args {
            account: Some("sip:1001@pbx.example.com".into()),
            password_store: Some("Keyring".into()),
            ..Args::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(s.password_from, PasswordFrom::Keyring);
        assert_eq!(s.password, None, "resolving never reads the store");
        let s = Args {
            password: Some(Secret::new("pw")),
            ..Args::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(s.password_from, PasswordFrom::Setting);
        // Not from the store: nothing to read, nothing changes.
        let mut read = s.clone();
        read.read_stored_password().expect("nothing to read");
        assert_eq!(read, s);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let args = Args {
            account: Some("sip:1001@pbx.example.com".into()),
            password: Some(Secret::new("Hunter2-sip")),
            ..Args::default()
        };
        let settings = args.resolve().expect("valid");
        for shown in [
            format!("{args:?}"),
            format!("{settings:?}"),
            format!("{settings:#?}"),
        ] {
            assert!(!shown.contains("Hunter2-sip"), "{shown}");
            assert!(shown.contains("Secret(<hidden>)"), "{shown}");
            assert!(shown.contains("sip:1001@pbx.example.com"), "{shown}");
        }
    }
}
