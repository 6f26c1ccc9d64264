//! Fuzzes the message decoder: any bytes a client can send as a text message go through
//! JSON-RPC decoding and the documented API's method and params decoding. Nothing may
//! panic, and every reply must be valid JSON (syntax: ids are echoed exactly, so a reply
//! may carry a number beyond f64, such as `1e400`, as the client sent it).
#![no_main]

use bapiws::protocol::api::decode_method;
use bapiws::protocol::jsonrpc::{Incoming, decode};
use libfuzzer_sys::fuzz_target;

fn valid_json(text: &str) -> bool {
    serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok()
}

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer only delivers valid UTF-8 as text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = match decode(text, 100) {
        Incoming::Invalid(reply) => {
            assert!(valid_json(&reply));
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
            Err(reply) => assert!(valid_json(&reply)),
        }
    }
});
