//! # bapiws
//!
//! An open implementation of the EnreachClientAPI (BAPIWS): a server on the user's
//! workstation that listens on localhost and lets web applications drive the phone over a
//! WebSocket with JSON-RPC 2.0.
//!
//! # Layout
//!
//! (With the data flow and the steps to add a backend: `docs/architecture.md`.)
//!
//! - [`protocol`]: the wire. [`protocol::jsonrpc`] is JSON-RPC 2.0 (decoding requests and
//!   batches, encoding responses, errors and notifications); [`protocol::api`] is the
//!   documented API on top of it (the method table [`protocol::api::METHODS`], params,
//!   result shapes, notifications, error mapping). It knows the phone abstraction, never a
//!   particular phone.
//! - [`phone`]: the phone abstraction ([`phone::Command`] in, [`phone::PhoneEvent`] out,
//!   through a [`phone::PhoneHandle`] with its [`phone::Capabilities`]), the registry of
//!   backends (one line each in `src/phone/mod.rs`), the names `Init` accepts
//!   ([`phone::BackendNames`]), and one folder per backend with its settings:
//!   [`phone::sim`] is the built-in simulated phone, [`phone::baresip`] drives the baresip
//!   SIP softphone over its ctrl_tcp protocol (managed or attached), and [`phone::sip`] is
//!   bapiws's own SIP phone: `stack.rs` (the SIP stack, registration, the filter in front
//!   of the phone), `sdp.rs` (offer/answer, SDES keys), `queue.rs` (which INVITEs are queue calls,
//!   `[sip.queue]`), `media/` (RTP, SRTP, G.711, the jitter buffer,
//!   DTMF), `audio/` (devices through cpal, tone, WAV, silence) and the backend task in
//!   `mod.rs`. A backend knows nothing of WebSockets or JSON-RPC.
//! - [`server`]: the WebSocket server. [`server::Server`] binds and runs the accept loop
//!   with graceful shutdown; `server::http` reads each request head and serves the
//!   WebSocket upgrade, the dialer page (`src/server/assets/`) and `/health`;
//!   `server::connection` runs one connection (access checks, limits, idle timeout, the
//!   closing handshake); `server::ws` is the WebSocket framing (RFC 6455 frames in and
//!   out, close codes), without I/O; `server::session` is one connection's protocol
//!   state and the one path every message takes; `server::backends` runs the backends by
//!   name; `server::hub` fans a backend's notifications out to its connections.
//! - [`access`]: who may connect: the Origin rules and the Host rules (against DNS
//!   rebinding), parsed once by the configuration.
//! - [`config`]: `bapiws serve`'s settings, derived from one struct (flags, `BAPIWS_*`
//!   variables, file keys), merged flags > variables > registry (Windows:
//!   `HKLM\Software\Benemen\BAPIWS`, `config/registry.rs`) > file > defaults and checked
//!   once into a typed [`config::Config`]; [`settings`]: what every component's settings share.
//! - [`logging`]: stderr and the daily file `BAPIWS_yyyymmdd.log`.
//! - [`doctor`]: `bapiws doctor`, the checks of a workstation's setup (ports, the
//!   configuration, the log folder, baresip, a running server's `/health`) with fixes.
//! - [`platform`]: what differs between operating systems: the log file's safety checks,
//!   the events that stop the server ([`platform::stop`]: signals, Windows console
//!   events), the credential store of the SIP password ([`platform::credentials`]: the
//!   Secret Service, the Credential Manager), and on Windows the registry
//!   ([`platform::windows`]).
//! - [`autostart`]: `bapiws autostart`, starting the server at login (the Run key on
//!   Windows, an XDG autostart entry elsewhere).
//! - [`linkdial`]: click-to-call: `bapiws dial` reads a `tel:`/`callto:`/`sip:` link
//!   ([`linkdial::uri`]), tells the user who clicked ([`linkdial::tell`]: a notification,
//!   a confirmation) and sends `CallOut`; `bapiws handler` registers it as those links'
//!   handler ([`linkdial::handler`]: an XDG desktop entry and `xdg-mime`; on Windows the
//!   URL protocol keys).
//! - [`client`]: the Rust WebSocket JSON-RPC client (the CLI, the tests, the benchmarks).
//! - `src/main.rs`: the `bapiws` command line (clap) only.
//! - `tests/`: integration tests against the real binary on real sockets (raw-frame RFC
//!   6455 conformance in `tests/rfc6455.rs`, real baresip processes in
//!   `tests/baresip.rs`, the crate's shape in `tests/structure.rs`).
//! - `clients/js/`: the TypeScript client library (its `dist/` is embedded in the binary)
//!   with its Node and headless-Chromium tests.

#![warn(missing_docs)]
// Nothing outside tests may unwrap: input must never be able to panic the server.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod access;
pub mod autostart;
pub mod client;
pub mod config;
pub mod doctor;
pub mod linkdial;
pub mod logging;
pub mod phone;
pub mod platform;
pub mod protocol;
pub mod server;
pub mod settings;
