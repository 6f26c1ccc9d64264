//! bapiws-bench: measures bapiws against the limit of its stack (a WebSocket echo server
//! and a minimal broadcast server on tokio + tokio-tungstenite) and against jsonrpsee,
//! all started by this harness on this machine in one run, interleaved and repeated.
//!
//! `bapiws-bench all` prints a Markdown table; `bapiws-bench smoke` runs every
//! measurement briefly (no targets) so the harness never rots.

mod load;
mod process;
mod servers;
mod soak;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use process::{Kind, Programs, Server};

/// How much of each measurement to do.
#[derive(Clone, Copy, Debug)]
struct Plan {
    reps: usize,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = match args.first().map(String::as_str) {
        Some("serve-echo") => rt.block_on(servers::echo(port(1))),
        Some("serve-broadcast") => rt.block_on(servers::broadcast(port(1))),
        Some("serve-jsonrpsee") => rt.block_on(servers::jsonrpsee(port(1))),
        Some("all") => {
            rt.block_on(run(FULL, &args[1..]));
            Ok(())
        }
        Some("smoke") => {
            rt.block_on(run(SMOKE, &args[1..]));
            let ok = rt.block_on(async {
                let p = programs(&args[1..]);
                soak::run(&p, 20, Duration::from_secs(3)).await
            });
            if !ok {
                eprintln!("bapiws-bench: the short soak failed its checks");
                std::process::exit(1);
            }
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
                let p = programs(&args[1..]);
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
                "usage: bapiws-bench all|smoke|soak [--bapiws PATH] [--only latency,throughput,fanout,memory,startup,idle] [--clients N --seconds N]\n  all    every measurement, repeated, as a Markdown table (several minutes)\n  smoke  every measurement briefly, no targets"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("bapiws-bench: {e}");
        std::process::exit(1);
    }
}

fn programs(args: &[String]) -> Programs {
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_cpu = (cpus >= 2 && process::pin_self(0)).then_some(1);
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
    base_name: &'static str,
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

async fn run(plan: Plan, args: &[String]) {
    let p = programs(args);
    let nofile = match bapiws::platform::raise_open_file_limit() {
        Some((before, after)) => format!("raised from {before} to {after}"),
        None => "unchanged".to_owned(),
    };
    progress(&format!(
        "bapiws at {}; servers pinned to CPU {:?}, load on CPU 0; open-file limit {nofile}",
        p.bapiws.display(),
        p.server_cpu
    ));
    let only: Vec<&str> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.contains(&name);
    let mut rows = Vec::new();

    if want("latency") {
        // 1. Latency, interleaved: echo, bapiws, jsonrpsee per repetition.
        let mut lat: std::collections::HashMap<&str, Vec<[f64; 3]>> = Default::default();
        for rep in 0..plan.reps {
            for kind in [Kind::Echo, Kind::Bapiws, Kind::Jsonrpsee] {
                progress(&format!("latency {} (rep {})", kind.name(), rep + 1));
                let s = Server::start(kind, &p);
                let mut d = load::latency(&s.url(), plan.latency_warmup, plan.latency_count).await;
                d.sort();
                lat.entry(kind.name()).or_default().push([
                    us(pct(&d, 0.5)),
                    us(pct(&d, 0.99)),
                    us(pct(&d, 0.999)),
                ]);
            }
        }
        let lat_med = |k: &str, i: usize| median(lat[k].iter().map(|v| v[i]).collect());
        for (i, label, target) in [
            (0, "p50", "≤ 1.10 × echo"),
            (1, "p99", "≤ 1.20 × echo"),
            (2, "p99.9", ""),
        ] {
            rows.push(Row {
                what: format!("Latency {label}, 1 client, sequential GetState"),
                bapiws: lat_med("bapiws", i),
                base: lat_med("echo", i),
                base_name: "echo",
                unit: "µs",
                target: target.into(),
            });
            rows.push(Row {
                what: format!("Latency {label} (vs jsonrpsee)"),
                bapiws: lat_med("bapiws", i),
                base: lat_med("jsonrpsee", i),
                base_name: "jsonrpsee",
                unit: "µs",
                target: String::new(),
            });
        }
    }
    if want("throughput") {
        // 2. Throughput with the server's CPU use.
        let mut tp: std::collections::HashMap<&str, Vec<(f64, f64)>> = Default::default();
        for rep in 0..plan.reps {
            for kind in [Kind::Echo, Kind::Bapiws, Kind::Jsonrpsee] {
                progress(&format!("throughput {} (rep {})", kind.name(), rep + 1));
                let s = Server::start(kind, &p);
                let cpu0 = s.cpu_time();
                let t0 = Instant::now();
                let rate = load::throughput(&s.url(), plan.tp_conns, 16, plan.tp_time).await;
                let cpu = (s.cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
                tp.entry(kind.name()).or_default().push((rate, cpu * 100.0));
            }
        }
        let tp_med = |k: &str| median(tp[k].iter().map(|v| v.0).collect());
        let cpu_med = |k: &str| median(tp[k].iter().map(|v| v.1).collect());
        rows.push(Row {
            what: format!("Throughput, {} connections × 16 in flight", plan.tp_conns),
            bapiws: tp_med("bapiws"),
            base: tp_med("echo"),
            base_name: "echo",
            unit: "replies/s",
            target: "≥ 0.90 × echo".into(),
        });
        rows.push(Row {
            what: "Throughput (vs jsonrpsee)".into(),
            bapiws: tp_med("bapiws"),
            base: tp_med("jsonrpsee"),
            base_name: "jsonrpsee",
            unit: "replies/s",
            target: "≥ 1.30 × jsonrpsee".into(),
        });
        rows.push(Row {
            what: "Server CPU during throughput (100% = one core)".into(),
            bapiws: cpu_med("bapiws"),
            base: cpu_med("echo"),
            base_name: "echo",
            unit: "%",
            target: format!("jsonrpsee: {:.0}%", cpu_med("jsonrpsee")),
        });
    }
    if want("fanout") {
        // 3. Fan-out.
        let mut fan: std::collections::HashMap<&str, Vec<[f64; 4]>> = Default::default();
        for rep in 0..plan.reps {
            for kind in [Kind::Broadcast, Kind::Bapiws] {
                progress(&format!(
                    "fan-out to {} clients, {} (rep {})",
                    plan.fan_clients,
                    kind.name(),
                    rep + 1
                ));
                let s = Server::start(kind, &p);
                let trigger: fn(usize) -> String = if kind == Kind::Bapiws {
                    |round| {
                        format!(
                            r#"{{"jsonrpc":"2.0","id":{round},"method":"Sim.SetAvailability","params":["{}"]}}"#,
                            if round.is_multiple_of(2) {
                                "Away"
                            } else {
                                "Available"
                            }
                        )
                    }
                } else {
                    |_| "go".to_owned()
                };
                let rounds =
                    load::fanout(&s.url(), plan.fan_clients, plan.fan_rounds, trigger).await;
                let mut all: Vec<Duration> = rounds.iter().flatten().copied().collect();
                all.sort();
                let mut last: Vec<Duration> = rounds
                    .iter()
                    .filter_map(|r| r.iter().max().copied())
                    .collect();
                last.sort();
                fan.entry(kind.name()).or_default().push([
                    us(pct(&all, 0.5)),
                    us(pct(&all, 0.99)),
                    us(pct(&last, 0.99)),
                    us(last.last().copied().unwrap_or_default()),
                ]);
            }
        }
        let fan_med = |k: &str, i: usize| median(fan[k].iter().map(|v| v[i]).collect());
        for (i, label, target) in [
            (0, "per-client p50", ""),
            (1, "per-client p99", ""),
            (2, "time to last client, p99", "≤ 1.0 × broadcast"),
            (3, "time to last client, max", ""),
        ] {
            rows.push(Row {
                what: format!("Fan-out to {} clients, {label}", plan.fan_clients),
                bapiws: fan_med("bapiws", i),
                base: fan_med("broadcast", i),
                base_name: "broadcast",
                unit: "µs",
                target: target.into(),
            });
        }
    }
    if want("memory") {
        // 4. Memory: at rest and per idle connection.
        let mut mem: std::collections::HashMap<&str, Vec<(f64, f64)>> = Default::default();
        for rep in 0..plan.reps {
            for kind in [Kind::Echo, Kind::Bapiws] {
                progress(&format!(
                    "memory with {} idle connections, {} (rep {})",
                    plan.idle_conns,
                    kind.name(),
                    rep + 1
                ));
                let s = Server::start(kind, &p);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let rest = s.rss() as f64;
                let held = load::hold(&s.url(), plan.idle_conns, 64).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let loaded = s.rss() as f64;
                // Still serving with all of them open.
                let check = load::latency(&s.url(), 0, 1).await;
                assert_eq!(check.len(), 1);
                mem.entry(kind.name()).or_default().push((
                    rest / 1024.0,
                    (loaded - rest) / plan.idle_conns as f64 / 1024.0,
                ));
                drop(held);
            }
        }
        let mem_med = |k: &str, i: usize| {
            median(
                mem[k]
                    .iter()
                    .map(|v| if i == 0 { v.0 } else { v.1 })
                    .collect(),
            )
        };
        rows.push(Row {
            what: "Resident memory at rest".into(),
            bapiws: mem_med("bapiws", 0),
            base: mem_med("echo", 0),
            base_name: "echo",
            unit: "KiB",
            target: String::new(),
        });
        rows.push(Row {
            what: format!("Memory per idle connection ({} held)", plan.idle_conns),
            bapiws: mem_med("bapiws", 1),
            base: mem_med("echo", 1),
            base_name: "echo",
            unit: "KiB",
            target: "≤ 8 KiB".into(),
        });
    }
    if want("startup") {
        // 5. Start-up and idle CPU.
        let mut startup: std::collections::HashMap<&str, Vec<f64>> = Default::default();
        for _ in 0..plan.startups {
            for kind in [Kind::Echo, Kind::Bapiws] {
                let s = Server::start(kind, &p);
                let t = load::first_connection(&s.url(), s.started).await;
                startup
                    .entry(kind.name())
                    .or_default()
                    .push(t.as_secs_f64() * 1000.0);
            }
        }
        progress("start-up measured");
        rows.push(Row {
            what: "Start-up to first accepted connection".into(),
            bapiws: median(startup["bapiws"].clone()),
            base: median(startup["echo"].clone()),
            base_name: "echo",
            unit: "ms",
            target: "≤ 15 ms".into(),
        });
    }
    if want("idle") {
        let mut idle: std::collections::HashMap<&str, f64> = Default::default();
        for kind in [Kind::Echo, Kind::Bapiws] {
            progress(&format!(
                "idle CPU, {} connections for {:?}, {}",
                plan.idle_cpu_conns,
                plan.idle_cpu_time,
                kind.name()
            ));
            let s = Server::start(kind, &p);
            let held = load::hold(&s.url(), plan.idle_cpu_conns, 16).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let cpu0 = s.cpu_time();
            tokio::time::sleep(plan.idle_cpu_time).await;
            idle.insert(kind.name(), (s.cpu_time() - cpu0).as_secs_f64() * 1000.0);
            drop(held);
        }
        rows.push(Row {
            what: format!(
                "CPU used holding {} idle connections for {:?}",
                plan.idle_cpu_conns, plan.idle_cpu_time
            ),
            bapiws: idle["bapiws"],
            base: idle["echo"],
            base_name: "echo",
            unit: "ms",
            target: "≤ 10 ms (for 60 s)".into(),
        });
    }

    println!("| Measurement | bapiws | baseline | bapiws ÷ baseline | target |");
    println!("|---|---:|---:|---:|---|");
    for r in rows {
        // CPU times come in clock ticks (10 ms): 0 means "under one tick".
        let ratio = if r.base > 0.0 {
            format!("{:.2}", r.bapiws / r.base)
        } else {
            "—".to_owned()
        };
        println!(
            "| {} | {:.1} {} | {:.1} {} ({}) | {} | {} |",
            r.what, r.bapiws, r.unit, r.base, r.unit, r.base_name, ratio, r.target
        );
    }
    println!(
        "\n{} repetition(s), medians; servers on CPU {:?}, load generator on CPU 0.",
        plan.reps, p.server_cpu
    );
    let _ = std::fs::remove_dir_all(&p.log_dir);
}
