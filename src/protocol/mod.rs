//! The protocol layer: JSON-RPC 2.0 ([`jsonrpc`]) and the documented API on top of it
//! ([`api`]). It knows the phone abstraction, never a particular phone.

pub mod api;
pub mod jsonrpc;
pub mod openrpc;
