//! The baseline servers, run as child processes of the harness (`bapiws-bench serve-*`):
//! each prints `listening on ws://ADDR` and serves until killed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

async fn listen(port: u16) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    Ok(listener)
}

/// The limit of the stack: every text message is sent back as it came.
pub async fn echo(port: u16) -> std::io::Result<()> {
    let listener = listen(port).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A minimal broadcast server: any text message from a client makes the server encode
/// one notification once and queue it for every connection.
pub async fn broadcast(port: u16) -> std::io::Result<()> {
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
                Some(text) => if ws.send(Message::Text(text)).await.is_err() { return },
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
