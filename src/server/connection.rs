//! One WebSocket connection: the handshake (Origin check, connection limit), then a loop
//! that reads requests, writes replies and notifications, and enforces the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::Shared;
use super::http::{self, HeadError};
use super::session::{Peer, Session};
use crate::protocol::jsonrpc::{Incoming, encode_batch, truncate};

/// How long a client has to send its HTTP request head.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may wait for a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most messages handled before the replies are written out.
const BURST: usize = 64;
/// How long to wait for the client's reply to our close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

type Ws = WebSocketStream<TcpStream>;

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
        .map(truncate)
        .unwrap_or_else(|| "-".into());
    if permit.is_none() {
        tracing::warn!(conn = id, peer = %addr, "connection refused: at the connection limit");
        return http::respond_text(&mut stream, 503, "too many connections; try again later\n")
            .await;
    }
    if !http::host_allowed(head.header("host"), &shared.allowed_hosts) {
        let host = head
            .header("host")
            .map(truncate)
            .unwrap_or_else(|| "-".into());
        tracing::warn!(conn = id, peer = %addr, host = %host, "connection refused: host not allowed (DNS rebinding?)");
        return http::respond_text(
            &mut stream,
            403,
            "host not allowed; see allowed_hosts in the bapiws configuration\n",
        )
        .await;
    }
    if !shared.origins.allows(origin.as_deref()) {
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
    let peer = Peer {
        id,
        addr: addr.to_string(),
        origin,
    };
    let session = Session::new(
        peer,
        Arc::clone(&shared.backends),
        shared.max_batch,
        shared.log_full_numbers,
    );
    if let Err((status, text)) = http::accept_websocket(&mut stream, &head).await {
        tracing::info!(conn = id, peer = %addr, status, "websocket handshake refused");
        return http::respond_text(&mut stream, status, text).await;
    }
    let leftover = head.into_leftover();
    let ws = WebSocketStream::from_partially_read(
        stream,
        leftover,
        Role::Server,
        Some(shared.ws_config),
    )
    .await;
    tracing::info!(conn = id, peer = %addr, origin = %origin_text, "connection opened");
    let why = run(ws, session, &shared, &mut shutdown).await;
    tracing::info!(conn = id, reason = %why, "connection closed");
    drop(permit);
}

/// Why a connection ended.
enum End {
    ClientClosed,
    Closed(CloseCode, String),
    Dropped(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed => f.write_str("closed by the client"),
            End::Closed(code, why) => {
                write!(f, "closed by the server ({}): {why}", u16::from(*code))
            }
            End::Dropped(why) => write!(f, "dropped: {why}"),
        }
    }
}

async fn run(
    mut ws: Ws,
    mut session: Session,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> String {
    let idle = shared.idle_timeout;
    let mut deadline = Instant::now() + idle;
    let end = loop {
        let sub = session.subscription();
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                break End::Closed(CloseCode::Away, "server shutting down".into());
            }
            _ = sub.overflow.notified() => {
                break End::Dropped(overflow_reason(shared));
            }
            event = sub.queue.recv() => {
                let Some(text) = event else {
                    break End::Dropped(overflow_reason(shared));
                };
                // Everything queued goes out in one write.
                if let Err(e) = feed_events(&mut ws, &mut session, Some(text)).await {
                    break e;
                }
                if let Err(e) = flush(&mut ws, &mut session).await {
                    break e;
                }
            }
            _ = sleep_until(deadline) => {
                break End::Closed(
                    CloseCode::Normal,
                    format!("idle timeout: nothing received for {} s", idle.as_secs()),
                );
            }
            incoming = ws.next() => {
                deadline = Instant::now() + idle;
                // Handle every message that is already here, then write the replies in
                // one go: pipelining clients get one write per burst, not per reply.
                let mut next = incoming;
                let mut budget = BURST;
                let ended = loop {
                    if let Err(e) = on_message(&mut ws, &mut session, shared, next).await {
                        break Some(e);
                    }
                    budget -= 1;
                    match ws.next().now_or_never() {
                        Some(more) if budget > 0 => next = more,
                        Some(more) => {
                            // Over budget: handle this one, flush, and let the loop
                            // come back for the rest.
                            break on_message(&mut ws, &mut session, shared, more).await.err();
                        }
                        None => break None,
                    }
                };
                if let Some(e) = ended {
                    break e;
                }
                if let Err(e) = flush(&mut ws, &mut session).await {
                    break e;
                }
            }
        }
    };
    if let End::Closed(code, why) = &end {
        close(&mut ws, *code, why).await;
    }
    end.to_string()
}

/// Handles one incoming frame (or the end of the stream); replies are fed, not flushed.
async fn on_message(
    ws: &mut Ws,
    session: &mut Session,
    shared: &Shared,
    incoming: Option<Result<Message, WsError>>,
) -> Result<(), End> {
    match incoming {
        None => Err(End::ClientClosed),
        Some(Err(e)) => Err(read_error(e, shared)),
        Some(Ok(Message::Text(text))) => handle_text(ws, session, &text).await,
        Some(Ok(Message::Binary(_))) => Err(End::Closed(
            CloseCode::Unsupported,
            "binary frames are not supported; send JSON-RPC as text".into(),
        )),
        Some(Ok(Message::Close(_))) => Err(End::ClientClosed),
        Some(Ok(_)) => Ok(()), // ping (answered by the library), pong
    }
}

/// Feeds `first` and every notification already queued.
async fn feed_events(
    ws: &mut Ws,
    session: &mut Session,
    first: Option<Utf8Bytes>,
) -> Result<(), End> {
    if let Some(text) = first {
        feed(ws, session, text).await?;
    }
    while let Ok(event) = session.subscription().queue.try_recv() {
        feed(ws, session, event).await?;
    }
    Ok(())
}

/// Handles one text message and feeds its reply. A batch is carried out entry by entry,
/// feeding the notifications it causes in between, so that a large batch cannot fill the
/// connection's own notification queue.
async fn handle_text(ws: &mut Ws, session: &mut Session, text: &str) -> Result<(), End> {
    let reply = match session.decode(text) {
        Incoming::Invalid(reply) => Some(reply),
        Incoming::Single(entry) => session.handle_entry(entry).await,
        Incoming::Batch(entries) => {
            let mut replies = Vec::new();
            for entry in entries {
                if let Some(r) = session.handle_entry(entry).await {
                    replies.push(r);
                }
                feed_events(ws, session, None).await?;
            }
            (!replies.is_empty()).then(|| encode_batch(&replies))
        }
    };
    match reply {
        Some(r) => feed(ws, session, Utf8Bytes::from(r)).await,
        None => Ok(()),
    }
}

fn overflow_reason(shared: &Shared) -> String {
    format!(
        "too slow: {} notifications waiting unread",
        shared.send_queue
    )
}

/// Queues one message for writing (written when the buffer fills or at [`flush`]),
/// giving up if the client stops reading for too long or its notification queue
/// overflows meanwhile.
async fn feed(ws: &mut Ws, session: &mut Session, text: Utf8Bytes) -> Result<(), End> {
    let overflow = Arc::clone(&session.subscription().overflow);
    tokio::select! {
        r = ws.feed(Message::Text(text)) => r.map_err(|e| End::Dropped(format!("write failed: {e}"))),
        _ = overflow.notified() => Err(End::Dropped("too slow: notification queue overflowed".into())),
        _ = tokio::time::sleep(WRITE_TIMEOUT) => Err(End::Dropped("too slow: a write did not complete in 30 s".into())),
    }
}

/// Writes everything fed so far, with the same limits as [`feed`].
async fn flush(ws: &mut Ws, session: &mut Session) -> Result<(), End> {
    let overflow = Arc::clone(&session.subscription().overflow);
    tokio::select! {
        r = ws.flush() => r.map_err(|e| End::Dropped(format!("write failed: {e}"))),
        _ = overflow.notified() => Err(End::Dropped("too slow: notification queue overflowed".into())),
        _ = tokio::time::sleep(WRITE_TIMEOUT) => Err(End::Dropped("too slow: a write did not complete in 30 s".into())),
    }
}

fn read_error(e: WsError, shared: &Shared) -> End {
    match e {
        WsError::Capacity(_) => End::Closed(
            CloseCode::Size,
            format!(
                "message too big: the limit is {} bytes",
                shared.ws_config.max_message_size.unwrap_or(0)
            ),
        ),
        WsError::Utf8(_) => End::Closed(CloseCode::Invalid, "invalid UTF-8 in a text frame".into()),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            End::Dropped("the client went away without a close frame".into())
        }
        WsError::Protocol(p) => End::Closed(CloseCode::Protocol, format!("protocol error: {p}")),
        WsError::ConnectionClosed | WsError::AlreadyClosed => End::ClientClosed,
        other => End::Dropped(format!("read failed: {other}")),
    }
}

async fn close(ws: &mut Ws, code: CloseCode, why: &str) {
    // A close frame's reason is at most 123 bytes.
    let mut end = why.len().min(123);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(why[..end].to_owned()),
    };
    let closing = async {
        ws.close(Some(frame)).await.ok()?;
        // Let the client answer our close frame so the TCP connection ends cleanly.
        while let Some(Ok(_)) = ws.next().await {}
        Some(())
    };
    let _ = timeout(CLOSE_LINGER, closing).await;
}
