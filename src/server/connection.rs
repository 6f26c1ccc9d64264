//! One WebSocket connection: the handshake (Origin check, connection limit), then a loop
//! that reads requests, writes replies and notifications, and enforces the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::Shared;
use super::http::{self, HeadError};
use super::session::{Outbox, Peer, Session};
use super::ws::{Decoder, Encoder, Msg, code};
use crate::protocol::jsonrpc::truncate;

/// How long a client has to send its HTTP request head.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may wait for a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the closing handshake may take: writing our close frame, then reading (and
/// discarding) what the client still sends until it closes its side.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Serves one accepted TCP connection until it closes: a WebSocket connection, or one
/// plain HTTP request. `permit` is `None` when the server is at its connection limit: the
/// request is then refused with 503.
pub async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_connection_id();
    let head = match timeout(HANDSHAKE_TIMEOUT, http::read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::Malformed)) => {
            return http::respond_text(&mut stream, 400, "malformed HTTP request\n").await;
        }
        Ok(Err(HeadError::TooLarge)) => {
            return http::respond_text(&mut stream, 431, "request head too large\n").await;
        }
        Err(_) => {
            tracing::info!(conn = id, peer = %addr, "handshake timed out");
            return;
        }
    };
    let origin = head.header("origin").map(str::to_owned);
    let origin_text = origin
        .as_deref()
        .map(|o| crate::logging::cut_keep_end(o, 64))
        .unwrap_or_else(|| "-".into());
    if permit.is_none() {
        tracing::warn!(conn = id, peer = %addr, "connection refused: at the connection limit");
        return http::respond_text(&mut stream, 503, "too many connections; try again later\n")
            .await;
    }
    if !shared.access.hosts.allows(head.header("host")) {
        let host = head
            .header("host")
            .map(|h| crate::logging::cut_keep_end(h, 64))
            .unwrap_or_else(|| "-".into());
        tracing::warn!(conn = id, peer = %addr, host = %host, "connection refused: host not allowed (DNS rebinding?)");
        return http::respond_text(
            &mut stream,
            403,
            "host not allowed; see allowed_hosts in the bapiws configuration\n",
        )
        .await;
    }
    if !shared.access.origins.allows(origin.as_deref()) {
        tracing::warn!(conn = id, peer = %addr, origin = %origin_text, path = %truncate(&head.path), "connection refused: origin not allowed");
        return http::respond_text(
            &mut stream,
            403,
            "origin not allowed; see allowed_origins in the bapiws configuration\n",
        )
        .await;
    }
    if !head.wants_websocket() {
        tracing::debug!(conn = id, peer = %addr, method = %truncate(&head.method), path = %truncate(&head.path), "http request");
        return http::serve(&mut stream, &head, &shared).await;
    }
    // Subscribe before the handshake completes, so that no notification that happens
    // after the client sees its connection open is missed.
    let peer = Peer { id, origin };
    let session = Session::new(
        peer,
        Arc::clone(&shared.backends),
        Arc::clone(&shared.rules),
    );
    if let Err(refusal) = http::accept_websocket(&mut stream, &head).await {
        tracing::info!(conn = id, peer = %addr, status = refusal.status, "websocket handshake refused");
        return refusal.send(&mut stream).await;
    }
    let leftover = head.into_leftover();
    tracing::info!(conn = id, peer = %addr, origin = %origin_text, "connection opened");
    let why = run(stream, leftover, session, &shared, &mut shutdown).await;
    tracing::info!(conn = id, reason = %why, "connection closed");
    drop(permit);
}

/// Why a connection ended.
enum End {
    /// The client sent a close frame (with this code, if any).
    ClientClosed(Option<u16>),
    /// The client closed TCP without a close frame.
    Eof,
    /// The server closes with this code and reason.
    Closed(u16, String),
    /// Given up without a closing handshake (the client is too slow or the socket failed).
    Dropped(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed(Some(code)) => write!(f, "closed by the client ({code})"),
            End::ClientClosed(None) => f.write_str("closed by the client"),
            End::Eof => f.write_str("the client went away without a close frame"),
            End::Closed(code, why) => write!(f, "closed by the server ({code}): {why}"),
            End::Dropped(why) => write!(f, "dropped: {why}"),
        }
    }
}

async fn run(
    mut stream: TcpStream,
    leftover: Vec<u8>,
    mut session: Session,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> String {
    let idle = shared.idle_timeout;
    let mut dec = Decoder::new(shared.max_message_bytes);
    let mut enc = Encoder::default();
    dec.read_buf().extend_from_slice(&leftover);
    drop(leftover);
    // Registered once, not at every wake-up: the idle timer is moved only when it fires
    // (to the last read plus the timeout), and the shutdown watch stays armed.
    let mut last_read = Instant::now();
    let idle_timer = sleep_until(last_read + idle);
    tokio::pin!(idle_timer);
    let shutting_down = shutdown.changed();
    tokio::pin!(shutting_down);
    // Messages that arrived with the handshake.
    let mut ended = process(&mut dec, &mut enc, &mut session).await;
    let end = loop {
        if !enc.out.is_empty()
            && let Err(e) = write_out(&mut stream, &mut enc, session.overflow_signal()).await
        {
            break e;
        }
        if let Some(e) = ended.take() {
            break e;
        }
        tokio::select! {
            biased;
            _ = &mut shutting_down => {
                break End::Closed(code::AWAY, "server shutting down".into());
            }
            // A subscriber that overflowed is removed from the hub: its queue ends.
            event = session.subscription().queue.recv() => {
                let Some(text) = event else {
                    break End::Dropped(overflow_reason(shared));
                };
                // Everything queued goes out in one write.
                enc.text(&text);
                session.drain_events(&mut enc);
            }
            _ = &mut idle_timer => {
                let due = last_read + idle;
                if Instant::now() >= due {
                    break End::Closed(
                        code::NORMAL,
                        format!("idle timeout: nothing received for {} s", idle.as_secs()),
                    );
                }
                idle_timer.as_mut().reset(due);
            }
            read = stream.read_buf(dec.read_buf()) => match read {
                Ok(0) => break End::Eof,
                Ok(_) => {
                    last_read = Instant::now();
                    // Every message that is here is handled, in order, and the replies
                    // are written in one go: pipelining clients get one write per read.
                    ended = process(&mut dec, &mut enc, &mut session).await;
                }
                Err(e) => break End::Dropped(format!("read failed: {e}")),
            },
        }
    };
    let why = end.to_string();
    finish(stream, enc, end).await;
    why
}

/// Handles every complete message read so far; replies are queued in `enc`, not written.
/// Returns how the connection ends when a message ends it (a close frame, a refused
/// frame): what came before it has been answered.
async fn process(dec: &mut Decoder, enc: &mut Encoder, session: &mut Session) -> Option<End> {
    loop {
        match dec.next_message() {
            Ok(None) => return None,
            Ok(Some(Msg::Text(text))) => session.handle_text(text, enc).await,
            Ok(Some(Msg::Binary)) => {
                return Some(End::Closed(
                    code::UNSUPPORTED,
                    "binary frames are not supported; send JSON-RPC as text".into(),
                ));
            }
            Ok(Some(Msg::Ping(payload))) => enc.pong(payload),
            Ok(Some(Msg::Pong)) => {}
            Ok(Some(Msg::Close(code))) => return Some(End::ClientClosed(code)),
            Err(fail) => return Some(End::Closed(fail.code, fail.reason)),
        }
    }
}

impl Outbox for Encoder {
    fn push(&mut self, text: &str) {
        self.text(text);
    }
    fn push_json(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.text_with(write);
    }
}

fn overflow_reason(shared: &Shared) -> String {
    format!(
        "too slow: {} notifications waiting unread",
        shared.send_queue
    )
}

/// Writes everything queued, giving up if the client stops reading for too long or its
/// notification queue overflows meanwhile. A write that completes at once (the usual
/// case) costs one system call and no timer.
async fn write_out(
    stream: &mut TcpStream,
    enc: &mut Encoder,
    overflow: &Notify,
) -> Result<(), End> {
    while !enc.out.is_empty() {
        match stream.try_write(&enc.out) {
            Ok(n) => enc.consumed(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(End::Dropped(format!("write failed: {e}"))),
        }
    }
    if enc.out.is_empty() {
        return Ok(());
    }
    let written = tokio::select! {
        r = stream.write_all(&enc.out) => r.map_err(|e| End::Dropped(format!("write failed: {e}"))),
        _ = overflow.notified() => Err(End::Dropped("too slow: notification queue overflowed".into())),
        _ = tokio::time::sleep(WRITE_TIMEOUT) => Err(End::Dropped("too slow: a write did not complete in 30 s".into())),
    };
    let n = enc.out.len();
    enc.consumed(n);
    written
}

/// Ends the connection: for a closing handshake, sends the close frame (the client's
/// code echoed, or the server's own), closes the sending side, and reads and discards
/// whatever the client still sends until it closes too (bounded in time), so that the
/// socket never closes with unread data (which would send a reset and lose the close
/// frame on its way).
async fn finish(mut stream: TcpStream, mut enc: Encoder, end: End) {
    match &end {
        End::ClientClosed(code) => enc.close(*code, ""),
        End::Closed(code, why) => enc.close(Some(*code), why),
        End::Eof => {}
        End::Dropped(_) => return,
    }
    let closing = async {
        stream.write_all(&enc.out).await.ok()?;
        stream.shutdown().await.ok()?;
        // On the heap, and only now: a buffer in the future itself would cost every
        // connection its size for its whole life.
        let mut sink = vec![0u8; 4096];
        while stream.read(&mut sink).await.ok()? > 0 {}
        Some(())
    };
    let _ = timeout(CLOSE_LINGER, closing).await;
}
