//! Soak: many clients making calls, answering, hanging up and reading state against the
//! simulated phone for a long time. Every client checks the notifications it saw: all
//! clients on one phone must see the same sequence (same count, same running hash), so a
//! lost or duplicated notification anywhere shows. Protocol errors are counted; the
//! server's resident memory is sampled.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bapiws::client::Client;
use serde_json::{Value, json};

use crate::load::connect;
use crate::process::{Kind, Programs, Server};

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    ops: u64,
    notifications: u64,
    hash: u64,
    errors: BTreeMap<i64, u64>,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A small deterministic generator, so runs are repeatable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Counts `text` if it is a notification.
fn note(seen: &mut Seen, text: &str) {
    let v: Value = serde_json::from_str(text).expect("server sends JSON");
    if v.get("method").is_some() {
        seen.notifications += 1;
        seen.hash = fnv(seen.hash, text.as_bytes());
    }
}

async fn call(c: &mut Client, seen: &mut Seen, method: &str, params: Value) {
    let reply = c
        .request(method, params)
        .await
        .unwrap_or_else(|e| panic!("soak client's {method}: {e}"));
    // The notifications that came before the reply, in order.
    for text in c.take_kept() {
        note(seen, &text);
    }
    if let Some(code) = reply["error"]["code"].as_i64() {
        *seen.errors.entry(code).or_default() += 1;
    }
    seen.ops += 1;
}

/// Reads notifications until none arrives for `quiet`.
async fn drain(c: &mut Client, seen: &mut Seen, quiet: Duration) {
    while let Ok(Ok(text)) = tokio::time::timeout(quiet, c.recv_text()).await {
        note(seen, &text);
    }
}

async fn client(url: String, n: usize, until: Instant, period: Duration) -> Seen {
    let mut c = connect(&url).await;
    let mut seen = Seen {
        hash: 0xcbf29ce484222325,
        ..Seen::default()
    };
    let mut rng = Lcg(n as u64 + 1);
    // Every client's first request makes sure it is subscribed before anyone acts.
    call(&mut c, &mut seen, "GetState", json!([])).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    while Instant::now() < until {
        let pause = period.mul_f64(0.5 + (rng.next() % 1000) as f64 / 1000.0);
        // Keep reading notifications while waiting.
        let wait = tokio::time::sleep(pause);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                text = c.recv_text() => {
                    let text = text.unwrap_or_else(|e| panic!("soak client's connection: {e}"));
                    seen.notifications += 1;
                    seen.hash = fnv(seen.hash, text.as_bytes());
                }
            }
        }
        let number = format!("+35840{:07}", rng.next() % 10_000_000);
        // More ways to end calls than to start them, so the call list stays small, as
        // on a real phone (a random walk would let it, and the largest reply, grow).
        let (method, params) = match rng.next() % 9 {
            0 => ("GetState", json!([])),
            1 => ("GetActiveCalls", json!([])),
            2 => ("CallOut", json!([number])),
            3 => ("Sim.IncomingCall", json!([number])),
            4 => ("Answer", json!([])),
            5 => ("Sim.RemoteAnswer", json!([])),
            6 => ("Sim.RemoteHangUp", json!([])),
            _ => ("HangUp", json!([])),
        };
        call(&mut c, &mut seen, method, params).await;
    }
    drain(&mut c, &mut seen, Duration::from_secs(2)).await;
    seen
}

/// Runs the soak and prints a report; returns whether every check passed.
pub async fn run(p: &Programs, clients: usize, time: Duration) -> bool {
    let server = Server::start_with(Kind::Bapiws, p, &["--sim-max-calls", "1000"]);
    let url = server.url();
    eprintln!("soak: {clients} clients for {time:?} against {url}");
    let start = Instant::now();
    let until = start + Duration::from_secs(2) + time;
    let mut tasks = Vec::new();
    for n in 0..clients {
        tasks.push(tokio::spawn(client(
            url.clone(),
            n,
            until,
            Duration::from_secs(2),
        )));
    }
    // Sample memory every tenth of the run (at least every 10 s).
    let step = (time / 10)
        .min(Duration::from_secs(10))
        .max(Duration::from_millis(200));
    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(step).await;
        samples.push((start.elapsed().as_secs_f64(), server.rss() / 1024));
        eprintln!(
            "soak: {:>6.0} s, RSS {} KiB",
            start.elapsed().as_secs_f64(),
            server.rss() / 1024
        );
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("soak client"));
    }
    let ops: u64 = seen.iter().map(|s| s.ops).sum();
    let mut errors: BTreeMap<i64, u64> = BTreeMap::new();
    for s in &seen {
        for (c, n) in &s.errors {
            *errors.entry(*c).or_default() += n;
        }
    }
    let protocol_errors: u64 = errors
        .iter()
        .filter(|(c, _)| (-32700..=-32600).contains(*c))
        .map(|(_, n)| n)
        .sum();
    let first = (seen[0].notifications, seen[0].hash);
    let same = seen.iter().all(|s| (s.notifications, s.hash) == first);
    // Memory after warm-up (the first fifth of the samples).
    let warm: Vec<u64> = samples
        .iter()
        .skip(samples.len() / 5)
        .map(|s| s.1)
        .collect();
    let (lo, hi) = (
        warm.iter().copied().min().unwrap_or(0),
        warm.iter().copied().max().unwrap_or(0),
    );
    let flat = lo > 0 && (hi as f64) <= lo as f64 * 1.10;
    println!("| Soak | {clients} clients, {:.0} s |", time.as_secs_f64());
    println!("|---|---|");
    println!("| requests answered | {ops} |");
    println!(
        "| errors by code | {errors:?} (application errors -32002/-32004 are expected: clients race for the same calls) |"
    );
    println!("| protocol errors (-32700..-32600) | {protocol_errors} |");
    println!(
        "| notifications per client | {} (every client saw the same sequence: {same}) |",
        first.0
    );
    println!(
        "| resident memory after warm-up | {lo} to {hi} KiB ({}) |",
        if flat {
            "flat within 10%"
        } else {
            "NOT flat within 10%"
        }
    );
    protocol_errors == 0 && same && flat && ops > 0
}
