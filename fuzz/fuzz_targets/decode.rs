//! Fuzzes the message decoder: any bytes a client can send as a text message go through
//! JSON-RPC decoding and the documented API's method and params decoding. Nothing may
//! panic, and every reply must be JSON.
#![no_main]

use bapiws::protocol::api::decode_method;
use bapiws::protocol::jsonrpc::{Incoming, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer only delivers valid UTF-8 as text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = match decode(text, 100) {
        Incoming::Invalid(reply) => {
            assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok());
            return;
        }
        Incoming::Single(e) => vec![e],
        Incoming::Batch(es) => es,
    };
    for entry in entries {
        match entry {
            Ok(req) => {
                let _ = decode_method(&req.method, req.params);
            }
            Err(reply) => assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok()),
        }
    }
});
