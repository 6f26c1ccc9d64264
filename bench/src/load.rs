//! The load generator: clients of the crate's own client (`bapiws::client`, on
//! tokio-tungstenite), measuring what each benchmark needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bapiws::client::{Client, ConnectOptions};
use tokio::sync::mpsc;

/// The request every JSON-RPC server answers (and the echo server echoes).
pub const GET_STATE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"GetState","params":[]}"#;

/// Opens one client connection with a small read buffer (10,000 of them must fit).
pub async fn connect(url: &str) -> Client {
    let options = ConnectOptions::default()
        .read_buffer(4096)
        .reply_timeout(Duration::from_secs(60));
    for _ in 0..50 {
        match Client::connect_with(url, &options).await {
            Ok(c) => return c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("cannot connect to {url}");
}

async fn next_text(c: &mut Client) {
    if let Err(e) = c.recv_text().await {
        panic!("connection ended: {e}");
    }
}

/// Sequential request/reply round trips; returns each one's duration.
pub async fn latency(url: &str, warmup: usize, count: usize) -> Vec<Duration> {
    let mut ws = connect(url).await;
    let mut out = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let t = Instant::now();
        ws.send_text(GET_STATE).await.expect("send");
        next_text(&mut ws).await;
        if i >= warmup {
            out.push(t.elapsed());
        }
    }
    out
}

/// `conns` connections, each sending `depth` requests then reading `depth` replies,
/// for `secs`; returns replies per second.
pub async fn throughput(url: &str, conns: usize, depth: usize, time: Duration) -> f64 {
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(connect(url).await);
    }
    let start = Instant::now();
    let deadline = start + time;
    let mut tasks = Vec::with_capacity(conns);
    for mut ws in clients {
        tasks.push(tokio::spawn(async move {
            let mut replies = 0u64;
            while Instant::now() < deadline {
                for _ in 0..depth {
                    ws.feed_text(GET_STATE).await.expect("feed");
                }
                ws.flush().await.expect("flush");
                for _ in 0..depth {
                    next_text(&mut ws).await;
                    replies += 1;
                }
            }
            replies
        }));
    }
    let mut total = 0u64;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Fan-out: `clients` connections wait for notifications; a control connection sends
/// `trigger` `rounds` times. Returns, per round, every client's time to receive it.
pub async fn fanout(
    url: &str,
    clients: usize,
    rounds: usize,
    trigger: fn(usize) -> String,
) -> Vec<Vec<Duration>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let start_times: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut ws = connect(url).await;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                next_text(&mut ws).await;
                let _ = tx.send(Instant::now());
            }
            ws
        }));
    }
    drop(tx);
    let mut control = connect(url).await;
    let mut per_round = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let t0 = Instant::now();
        start_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t0);
        control.send_text(trigger(round)).await.expect("trigger");
        let mut times = Vec::with_capacity(clients);
        while times.len() < clients {
            let at = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("every client got the notification")
                .expect("clients alive");
            times.push(at.duration_since(t0));
        }
        per_round.push(times);
        // Let the control connection's own messages (reply, notification) drain.
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(20), control.recv_text()).await
        {}
    }
    for t in tasks {
        let _ = t.await;
    }
    per_round
}

/// Opens `count` idle connections, `parallel` at a time.
pub async fn hold(url: &str, count: usize, parallel: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(count);
    let mut pending = Vec::new();
    for _ in 0..count {
        let url = url.to_owned();
        pending.push(tokio::spawn(async move { connect(&url).await }));
        if pending.len() >= parallel {
            for p in pending.drain(..) {
                out.push(p.await.expect("connect task"));
            }
        }
    }
    for p in pending {
        out.push(p.await.expect("connect task"));
    }
    out
}

/// Time from `started` until a WebSocket connection is accepted.
pub async fn first_connection(url: &str, started: Instant) -> Duration {
    loop {
        if let Ok(ws) = Client::connect(url).await {
            let t = started.elapsed();
            drop(ws);
            return t;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
