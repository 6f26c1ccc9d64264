//! bapiws-bench: measures bapiws against the limit of its stack (a coalescing WebSocket
//! echo and a coalescing broadcast server on tokio + tokio-tungstenite, the same echo over
//! raw TCP with hand-written framing, a minimal JSON-RPC server) and against jsonrpsee,
//! all started by this harness on this machine in one run, interleaved and repeated.
//!
//! `bapiws-bench all` prints a Markdown table; `bapiws-bench smoke` runs every
//! measurement briefly (no targets) so the harness never rots.

mod load;
mod process;
mod servers;
mod sip;
mod soak;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use process::{Kind, Programs, Server};

/// How much of each measurement to do.
#[derive(Clone, Copy, Debug)]
struct Plan {
    reps: usize,
    /// A smoke run: figures only, no targets.
    smoke: bool,
    latency_warmup: usize,
    latency_count: usize,
    tp_conns: usize,
    tp_time: Duration,
    fan_clients: usize,
    fan_rounds: usize,
    idle_conns: usize,
    idle_cpu_conns: usize,
    idle_cpu_time: Duration,
    startups: usize,
}

const FULL: Plan = Plan {
    reps: 3,
    smoke: false,
    latency_warmup: 2_000,
    latency_count: 20_000,
    tp_conns: 100,
    tp_time: Duration::from_secs(5),
    fan_clients: 1_000,
    fan_rounds: 50,
    idle_conns: 10_000,
    idle_cpu_conns: 100,
    idle_cpu_time: Duration::from_secs(60),
    startups: 5,
};

const SMOKE: Plan = Plan {
    reps: 1,
    smoke: true,
    latency_warmup: 20,
    latency_count: 200,
    tp_conns: 10,
    tp_time: Duration::from_millis(300),
    fan_clients: 20,
    fan_rounds: 3,
    idle_conns: 100,
    idle_cpu_conns: 10,
    idle_cpu_time: Duration::from_millis(500),
    startups: 1,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = |i: usize| args.get(i).and_then(|p| p.parse().ok()).unwrap_or(0u16);
    let command = args.first().map(String::as_str).unwrap_or("");
    // The harness and every thread it will start (the runtime's workers inherit it) run
    // on CPU 0; the servers are started on CPU 1.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = !command.starts_with("serve-") && cpus >= 2 && process::pin_self(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = match args.first().map(String::as_str) {
        Some(name) if name.starts_with("serve-") => rt.block_on(servers::serve(name, port(1))),
        Some("all") => {
            rt.block_on(run(FULL, &args[1..], pinned));
            Ok(())
        }
        Some("smoke") => {
            rt.block_on(run(SMOKE, &args[1..], pinned));
            let ok = rt.block_on(async {
                let p = programs(&args[1..], pinned);
                soak::run(&p, 20, Duration::from_secs(3)).await
            });
            if !ok {
                eprintln!("bapiws-bench: the short soak failed its checks");
                std::process::exit(1);
            }
            Ok(())
        }
        Some("load") => {
            // Throughput load against a server you started (for profiling it).
            let url = args.get(1).cloned().unwrap_or_default();
            let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10u64);
            let rate = rt.block_on(load::throughput(&url, 100, 16, Duration::from_secs(secs)));
            println!("{rate:.0} replies/s");
            Ok(())
        }
        Some("soak") => {
            let num = |flag: &str, default: u64| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            let ok = rt.block_on(async {
                let p = programs(&args[1..], pinned);
                soak::run(
                    &p,
                    num("--clients", 200) as usize,
                    Duration::from_secs(num("--seconds", 600)),
                )
                .await
            });
            if !ok {
                eprintln!("bapiws-bench: the soak failed its checks");
                std::process::exit(1);
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: bapiws-bench all|smoke|soak|load [--bapiws PATH] [--only latency,throughput,fanout,memory,startup,idle,sip [--phones baresip,sip]] [--clients N --seconds N]\n  all    every measurement, repeated, as a Markdown table (several minutes)\n  smoke  every measurement briefly, no targets\n  load URL SECONDS   the throughput load (100 connections × 16 in flight) against a running server, for profiling it"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("bapiws-bench: {e}");
        std::process::exit(1);
    }
}

fn programs(args: &[String], pinned: bool) -> Programs {
    let harness = std::env::current_exe().expect("own path");
    let bapiws = args
        .iter()
        .position(|a| a == "--bapiws")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| harness.with_file_name("bapiws"));
    assert!(
        bapiws.exists(),
        "no bapiws at {}; build it or pass --bapiws PATH",
        bapiws.display()
    );
    let log_dir = std::env::temp_dir().join(format!("bapiws-bench-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let server_cpu = pinned.then_some(1);
    Programs {
        bapiws,
        harness,
        server_cpu,
        log_dir,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One row of the report.
struct Row {
    what: String,
    bapiws: f64,
    base: f64,
    base_name: String,
    unit: &'static str,
    target: String,
}

fn progress(what: &str) {
    eprintln!(
        "[{:>7.1}s] {what}",
        START.with(|s| s.elapsed().as_secs_f64())
    );
}

thread_local! {
    static START: Instant = Instant::now();
}

type Figures = std::collections::HashMap<&'static str, Vec<Vec<f64>>>;

/// The median over repetitions of figure `i` of `kind`.
fn med(f: &Figures, kind: &str, i: usize) -> f64 {
    median(
        f.get(kind)
            .map(|reps| reps.iter().filter_map(|r| r.get(i).copied()).collect())
            .unwrap_or_default(),
    )
}

/// A row comparing figure `i` of bapiws with that of `base`.
fn row(f: &Figures, what: String, i: usize, base: Kind, unit: &'static str, target: &str) -> Row {
    Row {
        what,
        bapiws: med(f, "bapiws", i),
        base: med(f, base.name(), i),
        base_name: base.name().to_owned(),
        unit,
        target: target.to_owned(),
    }
}

/// Runs `measure` for every kind, interleaved, `reps` times; prints each repetition.
async fn repeat<F, Fut>(
    plan: Plan,
    label: &str,
    kinds: &[Kind],
    p: &Programs,
    measure: F,
) -> Figures
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = Vec<f64>>,
{
    let mut figures = Figures::new();
    for rep in 0..plan.reps {
        for &kind in kinds {
            let s = Server::start(kind, p);
            let values = measure(s).await;
            progress(&format!(
                "{label}, {} (rep {}): {}",
                kind.name(),
                rep + 1,
                values
                    .iter()
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ));
            figures.entry(kind.name()).or_default().push(values);
        }
    }
    figures
}

async fn run(plan: Plan, args: &[String], pinned: bool) {
    let p = programs(args, pinned);
    let nofile = match bapiws::platform::raise_open_file_limit() {
        Some((before, after)) => format!("raised from {before} to {after}"),
        None => "unchanged".to_owned(),
    };
    progress(&format!(
        "bapiws at {}; servers pinned to CPU {:?}, the harness and all its threads to CPU 0: {}; open-file limit {nofile}",
        p.bapiws.display(),
        p.server_cpu,
        pinned
    ));
    let only: Vec<&str> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.contains(&name);
    let mut rows = Vec::new();
    use Kind::{Bapiws, BroadcastCoalesced, EchoCoalesced, JsonrpcMin, Jsonrpsee, RawTcp};

    if want("latency") {
        // 1. Latency: p50, p99, p99.9 of sequential round trips, in µs.
        let f = repeat(
            plan,
            "latency p50/p99/p99.9 µs",
            &[EchoCoalesced, RawTcp, Bapiws, Jsonrpsee],
            &p,
            |s| async move {
                let mut d = load::latency(&s.url(), plan.latency_warmup, plan.latency_count).await;
                d.sort();
                vec![us(pct(&d, 0.5)), us(pct(&d, 0.99)), us(pct(&d, 0.999))]
            },
        )
        .await;
        let lat = "Latency, 1 client, sequential GetState";
        rows.push(row(
            &f,
            format!("{lat}, p50"),
            0,
            EchoCoalesced,
            "µs",
            "≤ 1.05 × echo-coalesced",
        ));
        rows.push(row(
            &f,
            format!("{lat}, p99"),
            1,
            EchoCoalesced,
            "µs",
            "≤ 1.10 × echo-coalesced",
        ));
        rows.push(row(&f, format!("{lat}, p99.9"), 2, EchoCoalesced, "µs", ""));
        rows.push(row(&f, format!("{lat}, p50"), 0, RawTcp, "µs", ""));
        rows.push(row(&f, format!("{lat}, p50"), 0, Jsonrpsee, "µs", ""));
    }
    if want("throughput") {
        // 2. Throughput: replies/s, the server's CPU (% of one core) and its CPU time per
        // reply (µs), from /proc over the interval.
        let f = repeat(
            plan,
            "throughput replies/s / CPU % / CPU µs per reply",
            &[EchoCoalesced, RawTcp, JsonrpcMin, Bapiws, Jsonrpsee],
            &p,
            |s| async move {
                let cpu0 = s.cpu_time();
                let t0 = Instant::now();
                let rate = load::throughput(&s.url(), plan.tp_conns, 16, plan.tp_time).await;
                let secs = t0.elapsed().as_secs_f64();
                let cpu = (s.cpu_time() - cpu0).as_secs_f64();
                let replies = (rate * secs).max(1.0);
                vec![rate, cpu / secs * 100.0, cpu / replies * 1e6]
            },
        )
        .await;
        let per = format!(
            "Server CPU per reply, {} connections × 16 in flight",
            plan.tp_conns
        );
        rows.push(row(
            &f,
            per.clone(),
            2,
            JsonrpcMin,
            "µs",
            "≤ 1.3 × jsonrpc-min",
        ));
        rows.push(row(
            &f,
            per.clone(),
            2,
            EchoCoalesced,
            "µs",
            "≤ 2.0 × echo-coalesced",
        ));
        rows.push(row(&f, per.clone(), 2, RawTcp, "µs", ""));
        rows.push(row(&f, per.clone(), 2, Jsonrpsee, "µs", ""));
        let tp = format!("Throughput, {} connections × 16 in flight", plan.tp_conns);
        rows.push(row(&f, tp.clone(), 0, JsonrpcMin, "replies/s", ""));
        rows.push(row(&f, tp.clone(), 0, EchoCoalesced, "replies/s", ""));
        rows.push(row(&f, tp, 0, Jsonrpsee, "replies/s", ""));
        rows.push(row(
            &f,
            "Server CPU during throughput (100% = one core)".into(),
            1,
            JsonrpcMin,
            "%",
            "",
        ));
    }
    if want("fanout") {
        // 3. Fan-out: per-client p50 and p99, time to the last client p99 and max, in µs.
        let clients = plan.fan_clients;
        let f = repeat(
            plan,
            "fan-out per-client p50/p99, last p99/max µs",
            &[BroadcastCoalesced, Bapiws],
            &p,
            |s| async move {
                let trigger: fn(usize) -> String = if s.kind == Bapiws {
                    |round| {
                        format!(
                            r#"{{"jsonrpc":"2.0","id":{round},"method":"Sim.SetAvailability","params":["{}"]}}"#,
                            if round.is_multiple_of(2) { "Away" } else { "Available" }
                        )
                    }
                } else {
                    |_| "go".to_owned()
                };
                let rounds = load::fanout(&s.url(), clients, plan.fan_rounds, trigger).await;
                let mut all: Vec<Duration> = rounds.iter().flatten().copied().collect();
                all.sort();
                let mut last: Vec<Duration> =
                    rounds.iter().filter_map(|r| r.iter().max().copied()).collect();
                last.sort();
                vec![
                    us(pct(&all, 0.5)),
                    us(pct(&all, 0.99)),
                    us(pct(&last, 0.99)),
                    us(last.last().copied().unwrap_or_default()),
                ]
            },
        )
        .await;
        let fan = format!("Fan-out to {clients} clients");
        rows.push(row(
            &f,
            format!("{fan}, per-client p50"),
            0,
            BroadcastCoalesced,
            "µs",
            "",
        ));
        rows.push(row(
            &f,
            format!("{fan}, per-client p99"),
            1,
            BroadcastCoalesced,
            "µs",
            "",
        ));
        rows.push(row(
            &f,
            format!("{fan}, time to last client, p99"),
            2,
            BroadcastCoalesced,
            "µs",
            "≤ 1.0 × broadcast-coalesced",
        ));
        rows.push(row(
            &f,
            format!("{fan}, time to last client, max"),
            3,
            BroadcastCoalesced,
            "µs",
            "",
        ));
    }
    if want("memory") {
        // 4. Memory: at rest and per idle connection, in KiB.
        let conns = plan.idle_conns;
        let f = repeat(
            plan,
            "memory at rest / per idle connection KiB",
            &[EchoCoalesced, Bapiws],
            &p,
            |s| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let rest = s.rss() as f64;
                let held = load::hold(&s.url(), conns, 64).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let loaded = s.rss() as f64;
                // Still serving with all of them open.
                let check = load::latency(&s.url(), 0, 1).await;
                assert_eq!(check.len(), 1);
                drop(held);
                vec![rest / 1024.0, (loaded - rest) / conns as f64 / 1024.0]
            },
        )
        .await;
        rows.push(row(
            &f,
            "Resident memory at rest".into(),
            0,
            EchoCoalesced,
            "KiB",
            "",
        ));
        rows.push(row(
            &f,
            format!("Memory per idle connection ({conns} held)"),
            1,
            EchoCoalesced,
            "KiB",
            "≤ 8 KiB",
        ));
    }
    if want("startup") {
        // 5. Start-up, in ms.
        let f = repeat(
            Plan {
                reps: plan.startups,
                ..plan
            },
            "start-up ms",
            &[EchoCoalesced, Bapiws],
            &p,
            |s| async move {
                let t = load::first_connection(&s.url(), s.started).await;
                vec![t.as_secs_f64() * 1000.0]
            },
        )
        .await;
        rows.push(row(
            &f,
            "Start-up to first accepted connection".into(),
            0,
            EchoCoalesced,
            "ms",
            "≤ 15 ms",
        ));
    }
    if want("idle") {
        // 6. CPU while holding idle connections, in ms.
        let (conns, time) = (plan.idle_cpu_conns, plan.idle_cpu_time);
        let f = repeat(
            Plan { reps: 1, ..plan },
            "idle CPU ms",
            &[EchoCoalesced, Bapiws],
            &p,
            |s| async move {
                let held = load::hold(&s.url(), conns, 16).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let cpu0 = s.cpu_time();
                tokio::time::sleep(time).await;
                let used = (s.cpu_time() - cpu0).as_secs_f64() * 1000.0;
                drop(held);
                vec![used]
            },
        )
        .await;
        rows.push(row(
            &f,
            format!("CPU used holding {conns} idle connections for {time:?}"),
            0,
            EchoCoalesced,
            "ms",
            "≤ 10 ms (for 60 s)",
        ));
    }

    if only.contains(&"sip") || (plan.smoke && want("sip")) {
        // The phone, side by side: a real baresip, so only when asked for by name (never
        // in `all` without `--only`); `smoke` runs the built-in phone alone, briefly.
        run_sip(plan, &p, args).await;
    }
    if rows.is_empty() {
        let _ = std::fs::remove_dir_all(&p.log_dir);
        return;
    }
    if plan.smoke {
        // A smoke run is too short for targets: figures only.
        println!("| Measurement | bapiws | baseline | bapiws ÷ baseline |");
        println!("|---|---:|---:|---:|");
    } else {
        println!("| Measurement | bapiws | baseline | bapiws ÷ baseline | target |");
        println!("|---|---:|---:|---:|---|");
    }
    for r in rows {
        // CPU times come in clock ticks (10 ms): 0 means "under one tick".
        let ratio = if r.base > 0.0 {
            format!("{:.2}", r.bapiws / r.base)
        } else {
            "—".to_owned()
        };
        let target = if plan.smoke {
            String::new()
        } else {
            format!(" {} |", r.target)
        };
        println!(
            "| {} | {:.1} {} | {:.1} {} ({}) | {} |{target}",
            r.what, r.bapiws, r.unit, r.base, r.unit, r.base_name, ratio
        );
    }
    println!(
        "\n{} repetition(s), medians; servers on CPU {:?}, the load generator (every thread) on CPU 0.",
        plan.reps, p.server_cpu
    );
    let _ = std::fs::remove_dir_all(&p.log_dir);
}

/// `--only sip`: managed baresip and the built-in `sip` backend, interleaved in each
/// repetition, then one table of medians and ratios.
async fn run_sip(plan: Plan, p: &Programs, args: &[String]) {
    use sip::Phone;
    // `--phones sip` (or `baresip`): one phone alone, e.g. to profile it.
    let chosen: Option<Vec<Phone>> = args
        .iter()
        .position(|a| a == "--phones")
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            [Phone::Baresip, Phone::Sip]
                .into_iter()
                .filter(|ph| v.split(',').any(|n| n == ph.name()))
                .collect()
        });
    let (phones, load) = if plan.smoke {
        (
            vec![Phone::Sip],
            sip::Load {
                warmup: 2,
                calls: 20,
                concurrent: 2,
                hold: Duration::from_secs(1),
                idle: Duration::from_millis(500),
            },
        )
    } else {
        (
            vec![Phone::Baresip, Phone::Sip],
            sip::Load {
                warmup: 10,
                calls: 200,
                concurrent: 10,
                hold: Duration::from_secs(30),
                idle: Duration::from_secs(10),
            },
        )
    };
    let phones = chosen.filter(|c| !c.is_empty()).unwrap_or(phones);
    progress(&format!(
        "sip: {} calls in and {} out, then {} calls held {:?} with G.711 both ways, through {}",
        load.calls,
        load.calls,
        load.concurrent,
        load.hold,
        phones
            .iter()
            .map(|ph| ph.name())
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut figures = Figures::new();
    for rep in 0..plan.reps {
        for &phone in &phones {
            let f = sip::run(p, phone, load).await;
            let values = vec![
                ms(pct(&f.incoming, 0.5)),
                ms(pct(&f.incoming, 0.99)),
                ms(pct(&f.ringing, 0.5)),
                ms(pct(&f.ringing, 0.99)),
                ms(pct(&f.outgoing, 0.5)),
                ms(pct(&f.outgoing, 0.99)),
                ms(pct(&f.get_state, 0.5)),
                f.cpu_per_call_ms,
                f.rss_per_call_kib,
                f.rss_idle_kib,
                ms(f.incoming.last().copied().unwrap_or_default()),
                ms(f.outgoing.last().copied().unwrap_or_default()),
                f.cpu_per_call_pair_ms,
            ];
            progress(&format!(
                "sip, {} (rep {}): INVITE→CallComing p50/p99/max {:.3}/{:.3}/{:.3} ms, INVITE→180 p50/p99 {:.3}/{:.3} ms, CallOut→INVITE p50/p99/max {:.3}/{:.3}/{:.3} ms, GetState p50 {:.3} ms, CPU per call in + out {:.3} ms; CPU over the hold {:.0} ms, idle share {:.0} ms, per call {:.1} ms; RSS idle {:.0} KiB, per call {:.1} KiB; RTP over the hold: far end sent {}, received from the phone {}; re-INVITEs {}",
                phone.name(),
                rep + 1,
                values[0],
                values[1],
                values[10],
                values[2],
                values[3],
                values[4],
                values[5],
                values[11],
                values[6],
                values[12],
                f.cpu_held_ms,
                f.cpu_idle_ms,
                f.cpu_per_call_ms,
                f.rss_idle_kib,
                f.rss_per_call_kib,
                f.peer_sent,
                f.peer_received,
                f.reinvites,
            ));
            figures.entry(phone.name()).or_default().push(values);
        }
    }
    let both = phones.len() > 1;
    let held = format!(
        "{} calls held {}s, G.711 both ways",
        load.concurrent,
        load.hold.as_secs()
    );
    let rows: [(String, usize, &str, &str); 11] = [
        (
            "INVITE sent → `CallComing` at the client, p50".into(),
            0,
            "ms",
            "≤ 1.0 × baresip; ≤ 0.5 ms",
        ),
        (
            "INVITE sent → `CallComing` at the client, p99".into(),
            1,
            "ms",
            "≤ 1.0 × baresip",
        ),
        (
            "  of which INVITE sent → the phone's 180 Ringing, p50".into(),
            2,
            "ms",
            "",
        ),
        (
            "  of which INVITE sent → the phone's 180 Ringing, p99".into(),
            3,
            "ms",
            "",
        ),
        (
            "`CallOut` sent → INVITE on the wire, p50".into(),
            4,
            "ms",
            "≤ 1.0 × baresip",
        ),
        (
            "`CallOut` sent → INVITE on the wire, p99".into(),
            5,
            "ms",
            "≤ 1.0 × baresip",
        ),
        (
            "`GetState` round trip (WebSocket + bapiws only), p50".into(),
            6,
            "ms",
            "",
        ),
        (
            "CPU time per call in + out (signalling only)".into(),
            12,
            "ms",
            "",
        ),
        (
            format!("CPU time per connected call ({held})"),
            7,
            "ms",
            "≤ 1.0 × baresip",
        ),
        (
            format!("Resident memory per call ({held})"),
            8,
            "KiB",
            "≤ 1.0 × baresip",
        ),
        (
            "Resident memory, idle (bapiws; with baresip: + baresip)".into(),
            9,
            "KiB",
            "",
        ),
    ];
    println!(
        "| {} calls each way; {held} | sip | {}target |",
        load.calls,
        if both {
            "baresip | sip ÷ baresip | "
        } else {
            ""
        }
    );
    println!("|---|---:|{}---|", if both { "---:|---:|" } else { "" });
    for (what, i, unit, target) in rows {
        let s = med(&figures, "sip", i);
        let target = if plan.smoke { "" } else { target };
        if both {
            let b = med(&figures, "baresip", i);
            let ratio = if b > 0.0 {
                format!("{:.2}", s / b)
            } else {
                "—".to_owned()
            };
            println!("| {what} | {s:.2} {unit} | {b:.2} {unit} | {ratio} | {target} |");
        } else {
            println!("| {what} | {s:.2} {unit} | {target} |");
        }
    }
    println!(
        "\n{} repetition(s), medians; bapiws (and its baresip) on CPU {:?}, the harness's SIP peer and load on CPU 0.\n",
        plan.reps, p.server_cpu
    );
}
