//! The command-line client: speaks the same protocol to a running server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Default server address.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:9898";
/// How long to wait for a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Keep-alive period of `watch`, as the spec recommends.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// What went wrong, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server answered.
    #[error(
        "cannot reach a bapiws server at {url}: {why}\nIs it running? Start one with `bapiws serve`."
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The error.
        why: String,
    },
    /// The server answered with an error.
    #[error("the server refused: {message} (error {code})")]
    Rpc {
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The connection broke or timed out.
    #[error("{0}")]
    Connection(String),
}

/// A connection to a bapiws server.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Notifications received while waiting for replies.
    pending: Vec<Value>,
}

impl Client {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        let unreachable = |why: String| ClientError::Unreachable {
            url: url.to_owned(),
            why,
        };
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect_async(url))
            .await
            .map_err(|_| unreachable("no answer within 5 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Client {
            ws,
            next_id: 0,
            pending: Vec::new(),
        })
    }

    /// Calls `method` with positional `params` and returns the result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .map_err(|e| ClientError::Connection(format!("sending failed: {e}")))?;
        let wait = async {
            loop {
                let msg = self.next_message().await?;
                if msg.get("id") == Some(&json!(id)) {
                    return Ok(msg);
                }
                if msg.get("method").is_some() {
                    self.pending.push(msg);
                }
            }
        };
        let reply = tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .map_err(|_| ClientError::Connection(format!("no reply to {method} within 10 s")))??;
        if let Some(err) = reply.get("error") {
            return Err(ClientError::Rpc {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }

    /// The next notification (those that came while waiting for replies first).
    pub async fn notification(&mut self) -> Result<Value, ClientError> {
        if !self.pending.is_empty() {
            return Ok(self.pending.remove(0));
        }
        loop {
            let msg = self.next_message().await?;
            if msg.get("method").is_some() {
                return Ok(msg);
            }
        }
    }

    async fn next_message(&mut self) -> Result<Value, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t).map_err(|e| {
                        ClientError::Connection(format!("the server sent invalid JSON: {e}"))
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return Err(ClientError::Connection(format!(
                        "the server closed the connection {why}"
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ClientError::Connection(e.to_string())),
                None => return Err(ClientError::Connection("the connection closed".into())),
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
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

/// Prints notifications until interrupted, keeping the connection alive.
pub async fn watch(client: &mut Client, raw: bool) -> Result<(), ClientError> {
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            n = client.notification() => {
                let n = n?;
                if raw {
                    println!("{n}");
                } else {
                    println!("{}", notification_line(&n));
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
