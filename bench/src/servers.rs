//! The baseline servers, run as child processes of the harness (`bapiws-bench serve-*`):
//! each prints `listening on ws://ADDR` and serves until killed.
//!
//! The coalescing ones are the stack's real limit: like bapiws, they handle every message
//! already received and then write once, instead of writing and flushing per message.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

async fn listen(port: u16) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    Ok(listener)
}

/// A minimal broadcast server: any text message from a client makes the server encode
/// one notification once and queue it for every connection; each connection writes every
/// notification already queued, then flushes once.
pub async fn broadcast_coalesced(port: u16) -> std::io::Result<()> {
    let listener = listen(port).await?;
    let clients: Arc<Mutex<Vec<mpsc::Sender<Utf8Bytes>>>> = Arc::new(Mutex::new(Vec::new()));
    let mut round = 0u64;
    let (trigger_tx, mut trigger_rx) = mpsc::channel::<()>(16);
    let fanout = Arc::clone(&clients);
    tokio::spawn(async move {
        while trigger_rx.recv().await.is_some() {
            round += 1;
            let text = Utf8Bytes::from(format!(
                r#"{{"jsonrpc":"2.0","method":"StateChanged","params":["{}"]}}"#,
                if round.is_multiple_of(2) {
                    "Available"
                } else {
                    "Away"
                }
            ));
            let mut list = fanout.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|tx| tx.try_send(text.clone()).is_ok());
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let (tx, rx) = mpsc::channel(1024);
        clients.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        tokio::spawn(serve_broadcast_client(stream, rx, trigger_tx.clone()));
    }
}

async fn serve_broadcast_client(
    stream: TcpStream,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    trigger: mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    loop {
        tokio::select! {
            biased;
            out = rx.recv() => match out {
                Some(text) => {
                    if ws.feed(Message::Text(text)).await.is_err() { return }
                    while let Ok(more) = rx.try_recv() {
                        if ws.feed(Message::Text(more)).await.is_err() { return }
                    }
                    if ws.flush().await.is_err() { return }
                }
                None => return,
            },
            msg = ws.next() => match msg {
                Some(Ok(m)) if m.is_text() => { let _ = trigger.send(()).await; }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// jsonrpsee, Parity's JSON-RPC server, answering GetState.
pub async fn jsonrpsee(port: u16) -> std::io::Result<()> {
    use jsonrpsee::server::{RpcModule, Server, ServerConfig};
    let config = ServerConfig::builder().max_connections(100_000).build();
    let server = Server::builder()
        .set_config(config)
        .build(SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    let mut module = RpcModule::new(());
    module
        .register_method("GetState", |_, _, _| "Available")
        .map_err(std::io::Error::other)?;
    println!("listening on ws://{}", server.local_addr()?);
    let handle = server.start(module);
    handle.stopped().await;
    Ok(())
}

/// Echo on the same stack, coalescing: every message already received is fed back, then
/// one flush.
pub async fn echo_coalesced(port: u16) -> std::io::Result<()> {
    serve_coalesced(port, |text| Some(text.to_owned())).await
}

/// The borrowed fields of a request, parsed once.
#[derive(Deserialize)]
struct MinRequest<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow, default)]
    #[allow(dead_code)]
    params: Option<&'a RawValue>,
}

#[derive(serde::Serialize)]
struct MinReply<'a> {
    jsonrpc: &'static str,
    result: &'static str,
    id: &'a RawValue,
}

/// A minimal JSON-RPC server on the coalescing echo: one parse into borrowed fields and
/// one encode of the same `GetState` reply bapiws sends.
pub async fn jsonrpc_min(port: u16) -> std::io::Result<()> {
    serve_coalesced(port, |text| {
        let req: MinRequest<'_> = serde_json::from_str(text).ok()?;
        if req.jsonrpc != "2.0" || req.method != "GetState" {
            return None;
        }
        serde_json::to_string(&MinReply {
            jsonrpc: "2.0",
            result: "Available",
            id: req.id?,
        })
        .ok()
    })
    .await
}

async fn serve_coalesced(port: u16, answer: fn(&str) -> Option<String>) -> std::io::Result<()> {
    let listener = listen(port).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(first)) = ws.next().await {
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    if let Message::Text(t) = &msg
                        && let Some(reply) = answer(t)
                        && ws.feed(Message::text(reply)).await.is_err()
                    {
                        return;
                    }
                    if let Some(Some(Ok(more))) = ws.next().now_or_never() {
                        next = Some(more);
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Echo over raw TCP with the WebSocket framing done by hand (no validation beyond what
/// framing needs), coalescing like the others: the floor under any WebSocket server.
pub async fn raw_tcp(port: u16) -> std::io::Result<()> {
    let listener = listen(port).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = raw_connection(stream).await;
        });
    }
}

async fn raw_connection(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    // The handshake.
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if stream.read_buf(&mut buf).await? == 0 || buf.len() > 8192 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    stream
        .write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    buf.drain(..end);
    let mut out = Vec::with_capacity(1024);
    loop {
        // Every whole frame read so far, echoed into one buffer.
        let mut at = 0;
        while let Some((opcode, start, len, mask)) = frame_at(&buf[at..]) {
            let (start, stop) = (at + start, at + start + len);
            if opcode == 0x8 {
                return Ok(());
            }
            if opcode == 0x1 {
                for (i, b) in buf[start..stop].iter_mut().enumerate() {
                    *b ^= mask[i & 3];
                }
                let payload = &buf[start..stop];
                out.push(0x81);
                if len < 126 {
                    out.push(len as u8);
                } else {
                    out.push(126);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                }
                out.extend_from_slice(payload);
            }
            at = stop;
        }
        buf.drain(..at);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(1024);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// The frame at the start of `b` (masked, at most 64 KiB): its opcode, where its payload
/// is and its mask. `None` until it is whole.
fn frame_at(b: &[u8]) -> Option<(u8, usize, usize, [u8; 4])> {
    if b.len() < 2 {
        return None;
    }
    let (len, mut at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if b.len() < at + 4 + len {
        return None;
    }
    let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    at += 4;
    Some((b[0] & 0x0f, at, len, mask))
}

/// Runs the baseline named by `serve-NAME` on `port`.
pub async fn serve(name: &str, port: u16) -> std::io::Result<()> {
    match name {
        "serve-echo-coalesced" => echo_coalesced(port).await,
        "serve-raw-tcp" => raw_tcp(port).await,
        "serve-jsonrpc-min" => jsonrpc_min(port).await,
        "serve-broadcast-coalesced" => broadcast_coalesced(port).await,
        "serve-jsonrpsee" => jsonrpsee(port).await,
        other => Err(std::io::Error::other(format!("no baseline {other:?}"))),
    }
}
