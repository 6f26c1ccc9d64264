//! # bapiws
//!
//! An open implementation of the EnreachClientAPI (BAPIWS): a server on the user's
//! workstation that listens on localhost and lets web applications drive the phone over a
//! WebSocket with JSON-RPC 2.0.
//!
//! # Layout
//!
//! - [`protocol`]: the wire. [`protocol::jsonrpc`] is JSON-RPC 2.0 (decoding requests and
//!   batches, encoding responses, errors and notifications); [`protocol::api`] is the
//!   documented API on top of it (method names and params, result shapes, notifications,
//!   error mapping). It knows the phone abstraction, never a particular phone.
//! - [`phone`]: the phone abstraction ([`phone::Command`] in, [`phone::PhoneEvent`] out,
//!   through a [`phone::PhoneHandle`]) and one module per backend: [`phone::sim`] is the
//!   built-in simulated phone, [`phone::baresip`] drives the baresip SIP softphone over
//!   its ctrl_tcp protocol (managed or attached). A backend knows nothing of WebSockets or
//!   JSON-RPC. Adding one is a module plus a line in [`phone::BackendKind`].
//! - [`server`]: the WebSocket server. [`server::Server`] binds and runs the accept loop
//!   with graceful shutdown; [`server::http`] reads each request head and serves the
//!   WebSocket upgrade, the dialer page (`src/server/assets/`) and `/health`;
//!   [`server::connection`] runs one connection (Origin check, limits, idle timeout, the
//!   closing handshake); [`server::ws`] is the WebSocket framing (RFC 6455 frames in and
//!   out, close codes), without I/O; [`server::session`] is one connection's protocol
//!   state (its backend, its subscription); [`server::backends`] is the registry of
//!   backends and aliases; [`server::hub`] fans a backend's notifications out to its
//!   connections.
//! - [`access`]: who may connect: the Origin rules and the Host rules (against DNS
//!   rebinding), parsed once from the configuration.
//! - [`config`]: every setting with its default, from flags, `BAPIWS_*` variables, the
//!   TOML file and defaults, in that order.
//! - [`logging`]: stderr and the daily file `BAPIWS_yyyymmdd.log`.
//! - [`platform`]: what differs between operating systems (the open-file limit).
//! - [`client`]: the command-line client used by `bapiws state`, `call`, `calls`, ….
//! - `src/main.rs`: the `bapiws` command line (clap) only.
//! - `tests/`: integration tests against the real binary on real sockets (and real
//!   baresip processes in `tests/baresip.rs`).
//! - `clients/js/`: the TypeScript client library (its `dist/` is embedded in the binary)
//!   with its Node and headless-Chromium tests.

#![warn(missing_docs)]

pub mod access;
pub mod client;
pub mod config;
pub mod logging;
pub mod phone;
pub mod platform;
pub mod protocol;
pub mod server;
pub mod settings;
