//! A client of baresip's ctrl_tcp module: netstring-framed JSON over TCP.
//!
//! Only strings are ever sent (baresip crashes on other JSON types). A reader task turns
//! the byte stream into [`Frame`]s; malformed frames are logged and skipped.

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::netstring::{Decoder, encode};

/// Frames buffered between the reader task and the backend.
const FRAME_QUEUE: usize = 1024;

/// A response to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The token the command carried.
    pub token: String,
    /// Whether the command handler succeeded.
    pub ok: bool,
    /// The text the command printed.
    pub data: String,
}

/// An event baresip raised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `CALL_INCOMING`, `CALL_ESTABLISHED`, …
    pub kind: String,
    /// `call`, `register`, `other`, …
    pub class: String,
    /// `incoming` or `outgoing`, on call events.
    pub direction: String,
    /// The remote party's URI, on call events.
    pub peer_uri: String,
    /// The SIP Call-ID, once the call has one.
    pub id: Option<String>,
    /// The event's parameter (the reason, for `CALL_CLOSED`).
    pub param: String,
}

/// One frame from baresip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A command's response.
    Response(Response),
    /// An event.
    Event(Event),
}

/// Parses one frame's payload; `None` for anything that is neither a response nor an
/// event.
pub fn parse_frame(payload: &[u8]) -> Option<Frame> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if v.get("response").and_then(Value::as_bool) == Some(true) {
        return Some(Frame::Response(Response {
            token: text("token"),
            ok: v.get("ok").and_then(Value::as_bool).unwrap_or(false),
            data: text("data"),
        }));
    }
    if v.get("event").and_then(Value::as_bool) == Some(true) {
        return Some(Frame::Event(Event {
            kind: text("type"),
            class: text("class"),
            direction: text("direction"),
            peer_uri: text("peeruri"),
            id: v
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            param: text("param"),
        }));
    }
    None
}

#[derive(Serialize)]
struct Request<'a> {
    command: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a str>,
    token: &'a str,
}

/// An open ctrl_tcp connection.
pub struct Connection {
    writer: OwnedWriteHalf,
    /// Frames as they arrive; `None` once the connection is gone.
    pub frames: mpsc::Receiver<Frame>,
    next_token: u64,
}

impl Connection {
    /// Connects to ctrl_tcp at `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel(FRAME_QUEUE);
        tokio::spawn(async move {
            let mut decoder = Decoder::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                decoder.feed(&buf[..n]);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(payload)) => match parse_frame(&payload) {
                            Some(frame) => {
                                if tx.send(frame).await.is_err() {
                                    return;
                                }
                            }
                            None => tracing::warn!(
                                bytes = payload.len(),
                                "baresip sent a frame that is neither a response nor an event; skipped"
                            ),
                        },
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "baresip's control stream is corrupt; reconnecting");
                            return;
                        }
                    }
                }
            }
        });
        Ok(Connection {
            writer,
            frames: rx,
            next_token: 0,
        })
    }

    /// Sends a command; returns its token.
    pub async fn send(&mut self, command: &str, params: Option<&str>) -> std::io::Result<String> {
        self.next_token += 1;
        let token = format!("bapiws-{}", self.next_token);
        let body = serde_json::to_vec(&Request {
            command,
            params,
            token: &token,
        })
        .map_err(std::io::Error::other)?;
        self.writer.write_all(&encode(&body)).await?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_table() {
        let cases: Vec<(&str, Option<Frame>)> = vec![
            (
                r#"{"response":true,"ok":true,"data":"x","token":"t1"}"#,
                Some(Frame::Response(Response {
                    token: "t1".into(),
                    ok: true,
                    data: "x".into(),
                })),
            ),
            (
                r#"{"response":true,"ok":false,"data":"command not found (hold)"}"#,
                Some(Frame::Response(Response {
                    token: String::new(),
                    ok: false,
                    data: "command not found (hold)".into(),
                })),
            ),
            (
                r#"{"event":true,"type":"CALL_CLOSED","class":"call","accountaor":"sip:a@h","direction":"outgoing","peeruri":"sip:b@h","id":"667c","param":"404 Not Found"}"#,
                Some(Frame::Event(Event {
                    kind: "CALL_CLOSED".into(),
                    class: "call".into(),
                    direction: "outgoing".into(),
                    peer_uri: "sip:b@h".into(),
                    id: Some("667c".into()),
                    param: "404 Not Found".into(),
                })),
            ),
            (
                r#"{"event":true,"type":"CALL_LOCAL_SDP","class":"other","param":"offer"}"#,
                Some(Frame::Event(Event {
                    kind: "CALL_LOCAL_SDP".into(),
                    class: "other".into(),
                    param: "offer".into(),
                    ..Event::default()
                })),
            ),
            (
                r#"{"event":true,"type":5,"id":7}"#,
                Some(Frame::Event(Event::default())),
            ),
            ("not json", None),
            ("[1,2]", None),
            (r#"{"hello":true}"#, None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_frame(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn requests_carry_only_strings() {
        let body = serde_json::to_string(&Request {
            command: "dial",
            params: Some("sip:1@h"),
            token: "t",
        })
        .expect("json");
        assert_eq!(body, r#"{"command":"dial","params":"sip:1@h","token":"t"}"#);
        let body = serde_json::to_string(&Request {
            command: "accept",
            params: None,
            token: "t",
        })
        .expect("json");
        assert_eq!(body, r#"{"command":"accept","token":"t"}"#);
    }
}
