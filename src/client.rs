//! The WebSocket JSON-RPC 2.0 client: one client for the command line (`bapiws state`,
//! `call`, `calls`, `watch`, …), the integration tests (`tests/common`) and the benchmark
//! harness (`bench/`).
//!
//! A [`Client`] is one WebSocket connection (tokio-tungstenite) with the JSON-RPC
//! conveniences on top:
//!
//! - [`Client::connect`], or [`Client::connect_with`] and [`ConnectOptions`] for an
//!   `Origin` header, a small socket receive buffer, a small read buffer and the time
//!   limits;
//! - [`Client::call`] sends a request and returns its result (an error reply becomes
//!   [`ClientError::Rpc`]); [`Client::request`] returns the whole reply object;
//!   [`Client::send_request`] and [`Client::reply`] split the two, for pipelining. While a
//!   reply is awaited, every other message (notifications, other replies) is kept, in
//!   order, and handed out by the next receive ([`Client::recv_text`], [`Client::recv`],
//!   [`Client::notification`], the [`Stream`]) or by [`Client::take_kept`];
//! - [`Client::send_text`], or [`Client::feed_text`] many times and then [`Client::flush`],
//!   send text frames as given (the load generator pipelines this way);
//! - [`Client::recv_text`] returns the next text message as it came (no parsing, for the
//!   load generator), [`Client::recv`] parses it, [`Client::notification`] skips to the
//!   next notification and [`Client::recv_close`] to the server's close frame;
//! - the client is itself a [`Stream`] of incoming messages and a [`Sink`] of outgoing
//!   ones (the raw frames: pings, binary frames, fragments), so tests can send odd frames
//!   or `split` it.
//!
//! Receiving is cancel-safe: a receive dropped inside `tokio::select!` loses no message.
//! Nothing the server sends can make the client panic: bad input is a [`ClientError`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tokio_tungstenite::tungstenite;

/// Default server address.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:9898";
/// How long [`Client::connect`] waits for the connection, by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Client::call`] and the others wait for a reply, by default.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive period of `watch`, as the spec recommends.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// The WebSocket under a [`Client`].
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What went wrong, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server answered, or the server refused the WebSocket handshake (`source` is
    /// then [`WsError::Http`] with the HTTP response, 403 or 503).
    #[error(
        "cannot reach a bapiws server at {url}: {source}\nIs it running? Start one with `bapiws serve`."
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The error.
        source: WsError,
    },
    /// No connection within the connect timeout.
    #[error(
        "cannot reach a bapiws server at {url}: no answer within {}\nIs it running? Start one with `bapiws serve`.",
        in_words(*.after)
    )]
    ConnectTimeout {
        /// The URL tried.
        url: String,
        /// The time limit.
        after: Duration,
    },
    /// The server answered with an error.
    #[error("the server refused: {message} (error {code}){}", detail(.data.as_ref()))]
    Rpc {
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
        /// Its data, if any (the known backends of -32003, the call ids of -32007, the
        /// phone's last error of -32001).
        data: Option<Value>,
    },
    /// The URL is not a WebSocket address.
    #[error(
        "{url} is not a WebSocket address: use ws://HOST:PORT, e.g. {DEFAULT_URL} (ws://, not http://)"
    )]
    NotWebSocket {
        /// The URL given.
        url: String,
    },
    /// No reply within the reply timeout.
    #[error("no reply to {what} within {}", in_words(*.after))]
    NoReply {
        /// The request (its method, or its id).
        what: String,
        /// The time limit.
        after: Duration,
    },
    /// The server sent something that is not JSON.
    #[error("the server sent invalid JSON: {0}")]
    InvalidJson(serde_json::Error),
    /// The server closed the connection (with this close frame).
    #[error("the server closed the connection{}", close_reason(.0.as_ref()))]
    Closed(Option<CloseFrame>),
    /// The connection ended without a close frame.
    #[error("the connection closed")]
    Ended,
    /// Reading or writing failed.
    #[error("{0}")]
    WebSocket(WsError),
}

fn in_words(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => format!(": {} ({})", f.reason, u16::from(f.code)),
        Some(f) => format!(" ({})", u16::from(f.code)),
        None => String::new(),
    }
}

/// An error's data in words: a list joined, an object's members as `name: value`.
fn detail(data: Option<&Value>) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match data {
        Some(Value::Array(items)) if !items.is_empty() => {
            format!(
                "; {}",
                items.iter().map(text).collect::<Vec<_>>().join(", ")
            )
        }
        Some(Value::Object(members)) => {
            let parts: Vec<String> = members
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}: {}", text(v)))
                .collect();
            if parts.is_empty() {
                String::new()
            } else {
                format!("; {}", parts.join("; "))
            }
        }
        Some(Value::String(s)) => format!("; {s}"),
        _ => String::new(),
    }
}

/// How to connect: [`ConnectOptions::default`] and the builder methods.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    origin: Option<String>,
    connect_timeout: Duration,
    reply_timeout: Duration,
    socket_recv_buffer: Option<u32>,
    read_buffer: Option<usize>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            origin: None,
            connect_timeout: CONNECT_TIMEOUT,
            reply_timeout: REPLY_TIMEOUT,
            socket_recv_buffer: None,
            read_buffer: None,
        }
    }
}

impl ConnectOptions {
    /// Sends this `Origin` header, as a browser would.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// How long to wait for the connection and the handshake ([`CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// How long [`Client::call`], [`Client::request`] and [`Client::reply`] wait
    /// ([`REPLY_TIMEOUT`]).
    pub fn reply_timeout(mut self, limit: Duration) -> Self {
        self.reply_timeout = limit;
        self
    }

    /// Sets the socket's receive buffer (`SO_RCVBUF`) before connecting, so that a client
    /// that stops reading fills up quickly.
    pub fn socket_recv_buffer(mut self, bytes: u32) -> Self {
        self.socket_recv_buffer = Some(bytes);
        self
    }

    /// Sets the WebSocket read buffer (tungstenite's, 128 KiB by default), so that many
    /// thousands of connections fit in memory.
    pub fn read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = Some(bytes);
        self
    }
}

/// A connection to a bapiws server.
pub struct Client {
    ws: WebSocket,
    next_id: u64,
    /// Messages received while waiting for a reply, in order.
    kept: VecDeque<Utf8Bytes>,
    reply_timeout: Duration,
}

impl Client {
    /// Connects to `url` with the default options.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &ConnectOptions::default()).await
    }

    /// Connects to `url` with `options`.
    pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if !scheme.eq_ignore_ascii_case("ws") && !scheme.eq_ignore_ascii_case("wss") {
            return Err(ClientError::NotWebSocket {
                url: url.to_owned(),
            });
        }
        let unreachable = |source| ClientError::Unreachable {
            url: url.to_owned(),
            source,
        };
        let ws = tokio::time::timeout(options.connect_timeout, open(url, options))
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                url: url.to_owned(),
                after: options.connect_timeout,
            })?
            .map_err(unreachable)?;
        Ok(Client {
            ws,
            next_id: 0,
            kept: VecDeque::new(),
            reply_timeout: options.reply_timeout,
        })
    }

    /// Sends one text frame as given.
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), ClientError> {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(ClientError::WebSocket)
    }

    /// Queues one text frame without flushing; [`Client::flush`] sends everything queued
    /// (in as few writes as possible).
    pub async fn feed_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), ClientError> {
        self.ws
            .feed(Message::Text(text.into()))
            .await
            .map_err(ClientError::WebSocket)
    }

    /// Sends everything queued by [`Client::feed_text`].
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        SinkExt::flush(&mut self.ws)
            .await
            .map_err(ClientError::WebSocket)
    }

    /// Sends a request with the next id (1, 2, …) and returns that id; the reply comes
    /// from [`Client::reply`].
    pub async fn send_request(&mut self, method: &str, params: Value) -> Result<u64, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(request.to_string()).await?;
        Ok(id)
    }

    /// Waits for the reply to request `id` and returns it whole (`result` or `error`).
    /// Every other message that comes first is kept for the next receive.
    pub async fn reply(&mut self, id: u64) -> Result<Value, ClientError> {
        self.reply_to(id, || format!("request {id}")).await
    }

    /// Sends a request and returns its whole reply (`result` or `error`), keeping what
    /// comes before it.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.send_request(method, params).await?;
        self.reply_to(id, || method.to_owned()).await
    }

    /// Calls `method` with `params` and returns the result; an error reply is
    /// [`ClientError::Rpc`].
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let mut reply = self.request(method, params).await?;
        if let Some(err) = reply.get("error") {
            return Err(ClientError::Rpc {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_owned(),
                data: err.get("data").filter(|d| !d.is_null()).cloned(),
            });
        }
        Ok(reply
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    async fn reply_to(
        &mut self,
        id: u64,
        what: impl FnOnce() -> String,
    ) -> Result<Value, ClientError> {
        let wanted = Value::from(id);
        let is_reply = |v: &Value| v.get("id") == Some(&wanted);
        // Kept earlier, while another reply was awaited?
        let found = self
            .kept
            .iter()
            .position(|text| serde_json::from_str::<Value>(text).is_ok_and(|v| is_reply(&v)));
        if let Some(reply) = found.and_then(|i| self.kept.remove(i)) {
            return serde_json::from_str(&reply).map_err(ClientError::InvalidJson);
        }
        let wait = async {
            loop {
                let text = next_text(&mut self.ws).await?;
                let msg: Value = serde_json::from_str(&text).map_err(ClientError::InvalidJson)?;
                if is_reply(&msg) {
                    return Ok(msg);
                }
                self.kept.push_back(text);
            }
        };
        let after = self.reply_timeout;
        tokio::time::timeout(after, wait)
            .await
            .map_err(|_| ClientError::NoReply {
                what: what(),
                after,
            })?
    }

    /// The next text message as it came (those kept while waiting for a reply first).
    pub async fn recv_text(&mut self) -> Result<Utf8Bytes, ClientError> {
        match self.kept.pop_front() {
            Some(text) => Ok(text),
            None => next_text(&mut self.ws).await,
        }
    }

    /// The next message, parsed.
    pub async fn recv(&mut self) -> Result<Value, ClientError> {
        let text = self.recv_text().await?;
        serde_json::from_str(&text).map_err(ClientError::InvalidJson)
    }

    /// The next notification (a message with a `method`), skipping anything else.
    pub async fn notification(&mut self) -> Result<Value, ClientError> {
        loop {
            let msg = self.recv().await?;
            if msg.get("method").is_some() {
                return Ok(msg);
            }
        }
    }

    /// Waits for the server's close frame, skipping (and dropping) every message before
    /// it.
    pub async fn recv_close(&mut self) -> Result<Option<CloseFrame>, ClientError> {
        self.kept.clear();
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ClientError::WebSocket(e)),
                None => return Err(ClientError::Ended),
            }
        }
    }

    /// Takes the messages kept while waiting for replies, oldest first.
    pub fn take_kept(&mut self) -> VecDeque<Utf8Bytes> {
        std::mem::take(&mut self.kept)
    }

    /// Starts the closing handshake with `frame` (or none) and flushes it.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), ClientError> {
        self.ws.close(frame).await.map_err(ClientError::WebSocket)
    }

    /// The WebSocket itself.
    pub fn get_mut(&mut self) -> &mut WebSocket {
        &mut self.ws
    }

    /// The WebSocket itself, dropping anything kept.
    pub fn into_inner(self) -> WebSocket {
        self.ws
    }
}

/// The messages as they come, those kept while waiting for a reply first.
impl Stream for Client {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(text) = self.kept.pop_front() {
            return Poll::Ready(Some(Ok(Message::Text(text))));
        }
        self.ws.poll_next_unpin(cx)
    }
}

/// Any frame, as given.
impl Sink<Message> for Client {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.ws.start_send_unpin(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.poll_close_unpin(cx)
    }
}

/// The next text message on `ws`, skipping control and binary frames.
async fn next_text(ws: &mut WebSocket) -> Result<Utf8Bytes, ClientError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Close(frame))) => return Err(ClientError::Closed(frame)),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ClientError::WebSocket(e)),
            None => return Err(ClientError::Ended),
        }
    }
}

/// TCP connection (with TCP_NODELAY: requests go out at once) and WebSocket handshake.
async fn open(url: &str, options: &ConnectOptions) -> Result<WebSocket, WsError> {
    let mut request = url.into_client_request()?;
    if let Some(origin) = &options.origin {
        let value = HeaderValue::from_str(origin).map_err(|e| WsError::HttpFormat(e.into()))?;
        request.headers_mut().insert("origin", value);
    }
    let uri = request.uri();
    match uri.scheme_str() {
        Some("ws") => {}
        // This build has no TLS.
        Some("wss") => return Err(WsError::Url(UrlError::TlsFeatureNotEnabled)),
        _ => return Err(WsError::Url(UrlError::UnsupportedUrlScheme)),
    }
    let host = uri.host().ok_or(WsError::Url(UrlError::NoHostName))?;
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let stream = tcp(&addr, options.socket_recv_buffer).await?;
    stream.set_nodelay(true)?;
    let config = options
        .read_buffer
        .map(|bytes| WebSocketConfig::default().read_buffer_size(bytes));
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(stream), config)
            .await?;
    Ok(ws)
}

/// Connects to the first address of `addr` that accepts.
async fn tcp(addr: &str, recv_buffer: Option<u32>) -> std::io::Result<TcpStream> {
    let Some(recv_buffer) = recv_buffer else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(recv_buffer)?;
        match socket.connect(a).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

#[cfg(test)]
mod client_tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    /// A one-connection server: answers each text frame with `script(request)`'s frames.
    /// Its task returns the Origin header it saw.
    async fn server(script: fn(Value) -> Vec<Message>) -> (String, JoinHandle<Option<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut origin = None;
            // The error type is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, resp: Response| {
                origin = req
                    .headers()
                    .get("origin")
                    .and_then(|o| o.to_str().ok())
                    .map(str::to_owned);
                Ok(resp)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
                .await
                .expect("handshake");
            while let Some(Ok(Message::Text(text))) = ws.next().await {
                let request = serde_json::from_str(&text).expect("JSON request");
                for m in script(request) {
                    if ws.send(m).await.is_err() {
                        return origin;
                    }
                }
            }
            origin
        });
        (url, task)
    }

    fn text(v: Value) -> Message {
        Message::text(v.to_string())
    }

    fn state(s: &str) -> Message {
        text(json!({"jsonrpc": "2.0", "method": "StateChanged", "params": [s]}))
    }

    #[tokio::test]
    async fn replies_are_matched_by_id_and_everything_else_is_kept_in_order() {
        let (url, server) = server(|req| match req["id"].as_u64() {
            // Held until request 2, then answered after it.
            Some(1) => vec![],
            Some(2) => vec![
                state("Busy"),
                text(json!({"jsonrpc": "2.0", "result": "one", "id": 1})),
                state("Away"),
                text(json!({"jsonrpc": "2.0", "result": "two", "id": 2})),
                state("DND"),
            ],
            _ => vec![text(json!({"jsonrpc": "2.0", "id": req["id"],
                "error": {"code": -32001, "message": "no such call"}}))],
        })
        .await;
        let mut c =
            Client::connect_with(&url, &ConnectOptions::default().origin("https://x.example"))
                .await
                .expect("connect");
        assert_eq!(c.send_request("A", json!([])).await.expect("send"), 1);
        assert_eq!(c.send_request("B", json!([])).await.expect("send"), 2);
        assert_eq!(c.reply(2).await.expect("reply 2")["result"], "two");
        // Reply 1 came first and was kept.
        assert_eq!(c.reply(1).await.expect("reply 1")["result"], "one");
        assert_eq!(c.notification().await.expect("n")["params"][0], "Busy");
        assert_eq!(c.recv().await.expect("n")["params"][0], "Away");
        // An error reply is an Rpc error; the notification before it is kept.
        match c.call("HangUp", json!([])).await {
            Err(ClientError::Rpc { code, message, .. }) => {
                assert_eq!((code, message.as_str()), (-32001, "no such call"));
            }
            other => panic!("expected an Rpc error, got {other:?}"),
        }
        let kept: Vec<String> = c.take_kept().iter().map(|t| t.to_string()).collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].contains("DND"), "{kept:?}");
        c.close(None).await.expect("close");
        drop(c);
        assert_eq!(
            server.await.expect("server").as_deref(),
            Some("https://x.example")
        );
    }

    #[tokio::test]
    async fn bad_server_input_is_an_error_not_a_panic() {
        let (url, _server) = server(|req| match req["method"].as_str() {
            Some("Garbage") => vec![Message::text("{not json")],
            Some("Silence") => vec![],
            _ => vec![Message::Close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "bye".into(),
            }))],
        })
        .await;
        let options = ConnectOptions::default().reply_timeout(Duration::from_millis(200));
        let mut c = Client::connect_with(&url, &options).await.expect("connect");
        assert!(matches!(
            c.call("Garbage", json!([])).await,
            Err(ClientError::InvalidJson(_))
        ));
        match c.call("Silence", json!([])).await {
            Err(e @ ClientError::NoReply { .. }) => {
                assert_eq!(e.to_string(), "no reply to Silence within 200 ms");
            }
            other => panic!("expected no reply, got {other:?}"),
        }
        match c.call("Close", json!([])).await {
            Err(ClientError::Closed(Some(f))) => assert_eq!(f.reason, "bye"),
            other => panic!("expected the close frame, got {other:?}"),
        }
        assert!(c.recv_text().await.is_err());
    }

    #[tokio::test]
    async fn connect_failures_are_unreachable() {
        let free = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", free.local_addr().expect("address"));
        drop(free);
        for (url, what) in [(url.as_str(), "IO error"), ("wss://127.0.0.1:1", "TLS")] {
            match Client::connect(url).await {
                Err(e @ ClientError::Unreachable { .. }) => {
                    assert!(e.to_string().contains(what), "{url}: {e}");
                }
                Err(e) => panic!("{url}: expected Unreachable, got {e}"),
                Ok(_) => panic!("{url}: connected"),
            }
        }
        // Not a WebSocket address at all: said so, with the right form.
        for url in ["http://127.0.0.1:1", "not a url"] {
            match Client::connect(url).await {
                Err(e @ ClientError::NotWebSocket { .. }) => {
                    assert!(e.to_string().contains("use ws://"), "{url}: {e}");
                }
                Err(e) => panic!("{url}: expected NotWebSocket, got {e}"),
                Ok(_) => panic!("{url}: connected"),
            }
        }
        let bad_origin = ConnectOptions::default().origin("a\nb");
        assert!(
            Client::connect_with("ws://127.0.0.1:1", &bad_origin)
                .await
                .is_err()
        );
    }
}

/// Formats a GetActiveCalls result as a table.
pub fn calls_table(result: &Value) -> String {
    let fields: Vec<&str> = result
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap_or("?")).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        return "No active calls.\n".to_owned();
    }
    let header = ["#", "DIRECTION", "STATE", "NUMBER", "CALL ID", "STARTED"];
    let rows: Vec<&[&str]> = fields.chunks(6).collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |s| s.chars().count()))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).copied().unwrap_or("");
            s.push_str(&format!("{cell:<w$}"));
            if i + 1 < widths.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Formats a notification as one line: time, method, params.
pub fn notification_line(n: &Value) -> String {
    let method = n["method"].as_str().unwrap_or("?");
    let params: Vec<String> = n["params"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{}  {method:<16} {}",
        chrono::Local::now().format("%H:%M:%S%.3f"),
        params.join("  ")
    )
}

/// Server text made safe for a terminal: every control character (escape sequences that
/// could set the title or colours, move the cursor), line separator and bidi control is
/// written as an escape; line breaks between lines are kept.
pub fn for_terminal(text: &str) -> String {
    text.split('\n')
        .map(crate::logging::escape_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints notifications until interrupted, keeping the connection alive.
pub async fn watch(client: &mut Client, raw: bool) -> Result<(), ClientError> {
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            n = client.notification() => {
                let n = n?;
                if raw {
                    println!("{}", for_terminal(&n.to_string()));
                } else {
                    println!("{}", for_terminal(&notification_line(&n)));
                }
            }
            _ = keep_alive.tick() => {
                client.call("GetState", json!([])).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_call() {
        let result = json!([
            "1",
            "Outbound",
            "Connected",
            "+358401234567",
            "abc",
            "2026-11-26 10:00:00.000",
            "2",
            "Inbound",
            "Ringing",
            "112",
            "def",
            "2026-11-26 10:00:01.000"
        ]);
        let t = calls_table(&result);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("#  DIRECTION"), "{t}");
        assert!(lines[1].contains("+358401234567") && lines[1].contains("Connected"));
        assert!(lines[2].contains("Ringing"));
        assert_eq!(calls_table(&json!([])), "No active calls.\n");
    }
}
