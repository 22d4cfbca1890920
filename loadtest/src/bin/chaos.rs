//! The chaos suite (issue 9): scripted, repeatable, bounded in time.
//!
//! Starts the whole fleet (every service, the dev broker, the payment gateway simulator with 5 %
//! declines, the KRA simulator) with its OWN `redis-server`, uploads the real AMFI file, keeps a
//! steady, paced order load going (each order keeps its Idempotency-Key across retries until a
//! 201 or a 4xx, as a real client does) and injects, in turn:
//!
//! 1. SIGKILL + restart of each of the 11 services (the NAV file is re-uploaded after the NAV
//!    services went through it);
//! 2. the broker down for `--outage-s` (30 s): SIGUSR1/SIGUSR2 to the dev-broker process, which
//!    takes every mock broker down / up;
//! 3. Redis SIGKILLed and restarted empty on the same port after `--outage-s` (the file is
//!    re-uploaded once it is back);
//! 4. Cosmos DB 429 storms: a second, short fleet phase on binaries built with the
//!    `cosmos-emulator` store backend (`--cosmos-bin-dir`), storm switched on and off through
//!    the backend's storm file; no SIGKILLs there (the emulator keeps data in process memory).
//!
//! Then it stops the load, waits (bounded) for every accepted order to become terminal, and
//! runs the reconciliation checker (`nivesh_fleet::reconcile::reconcile_with`): every accepted
//! order exists and is terminal, no order nobody was told about, no duplicate allotment,
//! holdings equal the sum of completed transactions, no FAILED order with units, every NAV row
//! of the file readable exactly (latest and that date's history), every dead-lettered record
//! explained. Writes `loadtest/results/chaos-<time>.json` (fault timeline, load figures, the
//! full report) and exits 1 on any anomaly.
//!
//! `--inject-bug commit-before-process` runs the same suite with the bus's deliberately injected
//! bug (`NIVESH_BUS__UNSAFE_COMMIT_BEFORE_PROCESS=1`: offsets committed before processing) in
//! order, payment, allotment and portfolio: the SIGKILLs then lose messages and the checker must
//! report anomalies (proof that it can fail).
//!
//! ```sh
//! cargo run --release -p nivesh-loadtest --bin chaos -- [--inject-bug commit-before-process] \
//!     [--skip-cosmos | --cosmos-bin-dir ~/.cache/nivesh/target-cosmos-emu/release] \
//!     [--rate 40] [--clients 32] [--outage-s 30] [--seed 11]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use nivesh_fleet::fleet::{Fleet, FleetOptions, GatewaySim, bearer_client, free_port};
use nivesh_fleet::reconcile::{Expectations, Report, expected_navs, reconcile_with};
use nivesh_loadtest::flag;
use nivesh_loadtest::fleetrun::{business_start, place_when_known};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// Mirae Asset Large & Midcap Fund - Direct Plan - Growth (NAV 144.782 on 2025-02-25).
const EQUITY: &str = "118834";
/// UTI Nifty 50 Index Fund - Growth Option - Direct (NAV 156.2072 on 2025-02-25).
const INDEX: &str = "120716";
/// The services whose consumers get the injected bug: the order flow's hops.
const BUGGY_SERVICES: &[&str] = &["order", "payment", "allotment", "portfolio"];
/// An order not accepted within this long (retrying) is given up and reported.
const ORDER_DEADLINE: Duration = Duration::from_secs(120);
/// The injected bug's switch (crates/bus, `UNSAFE_COMMIT_BEFORE_PROCESS_ENV`).
const BUG_ENV: &str = nivesh_bus::UNSAFE_COMMIT_BEFORE_PROCESS_ENV;

#[derive(Debug, Clone)]
struct Args {
    inject_bug: bool,
    skip_cosmos: bool,
    cosmos_bin_dir: Option<PathBuf>,
    /// Orders per second offered (paced, open loop with at most `clients` in flight).
    rate: u32,
    clients: usize,
    /// Broker and Redis outage length.
    outage_s: u64,
    /// Pause between two service kills.
    kill_gap_s: u64,
    seed: u64,
    /// Longest wait for every accepted order to become terminal.
    settle_s: u64,
    /// Cosmos phase: load length and storm length.
    cosmos_load_s: u64,
    cosmos_storm_s: u64,
}

fn value_of(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn parse_args() -> Result<Args> {
    let switches: Vec<String> = std::env::args().collect();
    let inject_bug = match value_of("--inject-bug").as_deref() {
        None => false,
        Some("commit-before-process") => true,
        Some(other) => {
            bail!("--inject-bug {other}: the only injectable bug is commit-before-process")
        }
    };
    let args = Args {
        inject_bug,
        skip_cosmos: switches.iter().any(|a| a == "--skip-cosmos"),
        cosmos_bin_dir: value_of("--cosmos-bin-dir").map(PathBuf::from),
        rate: flag("--rate", 40)?,
        clients: flag("--clients", 32)?,
        outage_s: flag("--outage-s", 30)?,
        kill_gap_s: flag("--kill-gap-s", 4)?,
        seed: flag("--seed", 11)?,
        settle_s: flag("--settle-s", 240)?,
        cosmos_load_s: flag("--cosmos-load-s", 60)?,
        cosmos_storm_s: flag("--cosmos-storm-s", 20)?,
    };
    if args.rate == 0 || args.clients == 0 {
        bail!("--rate and --clients must be positive");
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let anomalies = rt.block_on(run(args))?;
    if anomalies > 0 {
        eprintln!("chaos: {anomalies} anomalies (see the results file)");
        std::process::exit(1);
    }
    println!("chaos: zero anomalies");
    Ok(())
}

/// What happened when, relative to the suite's start.
#[derive(Clone)]
struct Timeline {
    t0: Instant,
    events: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            t0: Instant::now(),
            events: Arc::default(),
        }
    }

    fn t(&self) -> f64 {
        (self.t0.elapsed().as_secs_f64() * 10.0).round() / 10.0
    }

    fn note(&self, event: &str, detail: Value) {
        let t = self.t();
        eprintln!("chaos [{t:>6.1}s] {event} {detail}");
        let mut entry = json!({"t_s": t, "at": Utc::now().to_rfc3339(), "event": event});
        if let (Some(e), Value::Object(d)) = (entry.as_object_mut(), detail) {
            e.extend(d);
        }
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }

    fn all(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The suite's own Redis: no persistence, so a restart comes back empty, like a restarted cache.
struct Redis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl Redis {
    async fn start(port: u16) -> Result<Redis> {
        let mut r = Redis { port, child: None };
        r.spawn().await?;
        Ok(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<()> {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning redis-server (apt-get install redis-server)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !nivesh_fleet::fleet::redis_reachable(&self.url()) {
            if Instant::now() > deadline {
                bail!("redis-server on port {} did not come up", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGKILL: everything it held is gone.
    async fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(())
    }
}

/// The order load's figures.
#[derive(Default)]
struct LoadStats {
    /// Schedule slots offered, and those skipped because every client was busy retrying.
    offered: AtomicUsize,
    skipped_clients_busy: AtomicUsize,
    started: AtomicUsize,
    attempts: AtomicUsize,
    accepted: Mutex<Vec<String>>,
    /// Time from an order's first attempt to its 201, ms.
    accept_ms: Mutex<Vec<f64>>,
    /// Retries by cause (connection refused, timeout, 5xx, 429).
    retries: Mutex<BTreeMap<String, usize>>,
    /// Orders refused with a 4xx (not retried), by status, with a few samples.
    refused: Mutex<BTreeMap<u16, usize>>,
    refused_samples: Mutex<Vec<String>>,
    gave_up: Mutex<Vec<String>>,
    /// Accepted orders per 5-second bucket of the suite's clock.
    accepted_per_5s: Mutex<BTreeMap<u64, usize>>,
}

struct Load {
    stop: Arc<AtomicBool>,
    stats: Arc<LoadStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started_at: Instant,
}

impl Load {
    /// `rate` orders/s, paced; at most `clients` orders in flight.
    fn start(
        base: &str,
        clients: Vec<reqwest::Client>,
        rate: u32,
        width: usize,
        run_id: &str,
        timeline: &Timeline,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LoadStats::default());
        let (tx, rx) = mpsc::channel::<usize>(width);
        let rx = Arc::new(Mutex::new(rx));
        let mut tasks = Vec::new();
        {
            let (stop, stats) = (stop.clone(), stats.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    stats.offered.fetch_add(1, Ordering::Relaxed);
                    match tx.try_send(i) {
                        Ok(()) => i += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            stats.skipped_clients_busy.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }));
        }
        let clients = Arc::new(clients);
        for _ in 0..width {
            let (rx, stats, clients, base, run_id, timeline) = (
                rx.clone(),
                stats.clone(),
                clients.clone(),
                base.to_string(),
                run_id.to_string(),
                timeline.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(i) = next else { return };
                    place_one(i, &clients, &base, &run_id, &stats, &timeline).await;
                }
            }));
        }
        Load {
            stop,
            stats,
            tasks,
            started_at: Instant::now(),
        }
    }

    /// Stop offering orders; the orders in flight finish (accepted, refused or given up).
    async fn stop(self) -> (Arc<LoadStats>, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let ran = self.started_at.elapsed();
        for t in self.tasks {
            let _ = t.await;
        }
        (self.stats, ran)
    }
}

/// One order, retried under the same Idempotency-Key until accepted, refused (4xx) or the
/// deadline passes.
async fn place_one(
    i: usize,
    clients: &[reqwest::Client],
    base: &str,
    run_id: &str,
    stats: &LoadStats,
    timeline: &Timeline,
) {
    stats.started.fetch_add(1, Ordering::Relaxed);
    let n = i % clients.len();
    let scheme = if i % 3 == 0 { INDEX } else { EQUITY };
    let body = json!({
        "investorId": format!("INV{:04}", 1 + n),
        "kind": "PURCHASE",
        "schemeCode": scheme,
        "amount": format!("{}.{:02}", 1000 + i % 1000, i % 100),
        "paymentInstrument": "chaos@okaxis",
    });
    let key = format!("{run_id}-{i:06}");
    let first = Instant::now();
    loop {
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let sent = clients[n]
            .post(format!("{base}/v1/orders"))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        let mut wait = Duration::from_millis(200);
        let cause = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let v: Value = r.json().await.unwrap_or(Value::Null);
                match status {
                    200 | 201 => {
                        if let Some(id) = v["orderId"].as_str() {
                            stats.accepted.lock().await.push(id.to_string());
                            stats
                                .accept_ms
                                .lock()
                                .await
                                .push(first.elapsed().as_secs_f64() * 1000.0);
                            let bucket = (timeline.t() / 5.0) as u64 * 5;
                            *stats
                                .accepted_per_5s
                                .lock()
                                .await
                                .entry(bucket)
                                .or_default() += 1;
                            return;
                        }
                        format!("{status} without orderId")
                    }
                    429 => {
                        wait = Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 5));
                        "429".to_string()
                    }
                    400..=499 => {
                        *stats.refused.lock().await.entry(status).or_default() += 1;
                        let mut samples = stats.refused_samples.lock().await;
                        if samples.len() < 10 {
                            samples.push(format!("order {i} ({status}): {v}"));
                        }
                        return;
                    }
                    _ => format!("{status}"),
                }
            }
            Err(e) if e.is_connect() => "connect".to_string(),
            Err(e) if e.is_timeout() => "timeout".to_string(),
            Err(_) => "transport".to_string(),
        };
        *stats.retries.lock().await.entry(cause).or_default() += 1;
        if first.elapsed() > ORDER_DEADLINE {
            stats.gave_up.lock().await.push(key);
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i.min(sorted.len() - 1)] * 10.0).round() / 10.0
}

async fn load_figures(stats: &LoadStats, ran: Duration) -> Value {
    let mut ms = stats.accept_ms.lock().await.clone();
    ms.sort_by(f64::total_cmp);
    let accepted = stats.accepted.lock().await.len();
    json!({
        "ran_s": (ran.as_secs_f64() * 10.0).round() / 10.0,
        "offered_slots": stats.offered.load(Ordering::Relaxed),
        "skipped_slots_all_clients_busy": stats.skipped_clients_busy.load(Ordering::Relaxed),
        "orders_started": stats.started.load(Ordering::Relaxed),
        "orders_accepted": accepted,
        "accepted_per_s": (accepted as f64 / ran.as_secs_f64() * 10.0).round() / 10.0,
        "attempts": stats.attempts.load(Ordering::Relaxed),
        "retries_by_cause": *stats.retries.lock().await,
        "refused_by_status": stats.refused.lock().await.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "refused_samples": *stats.refused_samples.lock().await,
        "gave_up": *stats.gave_up.lock().await,
        "accept_latency_ms": {
            "p50": pct(&ms, 0.50), "p95": pct(&ms, 0.95), "p99": pct(&ms, 0.99),
            "max": ms.last().copied().unwrap_or(0.0),
        },
        "accepted_per_5s": stats.accepted_per_5s.lock().await.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
    })
}

/// The entry point of the fleet, in process (what `nivesh up` serves on :8080): routes public
/// paths to the owning service. Services keep their ports across restarts, so it stays valid.
async fn ingress(fleet: &Fleet) -> Result<String> {
    let app = nivesh_fleet::ingress::router(&fleet.upstreams());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

/// Upload the NAV file, retrying while the ingestor is away; returns (status, attempts).
async fn upload_navs(ops: &reqwest::Client, base: &str, body: &[u8]) -> Result<(u16, usize)> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = ops
            .post(format!("{base}/v1/nav/files?source=AMFI"))
            .body(body.to_vec())
            .send()
            .await;
        let err = match sent {
            Ok(r) if r.status().is_success() => return Ok((r.status().as_u16(), attempts)),
            Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("NAV upload failed after {attempts} attempts: {err}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Wait until every accepted order is terminal, re-reading only those that are not yet. Ends
/// early when nothing moved for `stall` (a loss never heals); bounded by `limit`.
async fn settle(
    admin: &reqwest::Client,
    base: &str,
    ids: &[String],
    limit: Duration,
    stall: Duration,
    timeline: &Timeline,
) -> Value {
    let started = Instant::now();
    let mut pending: Vec<String> = ids.to_vec();
    let mut last_progress = Instant::now();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let before = pending.len();
        let mut still = Vec::new();
        let mut set = tokio::task::JoinSet::new();
        for chunk in pending.chunks(pending.len().div_ceil(32).max(1)) {
            let (admin, base, chunk) = (admin.clone(), base.to_string(), chunk.to_vec());
            set.spawn(async move {
                let mut open = Vec::new();
                for id in chunk {
                    let terminal = match admin.get(format!("{base}/v1/orders/{id}")).send().await {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            matches!(v["status"].as_str(), Some("COMPLETED" | "FAILED"))
                        }
                        _ => false,
                    };
                    if !terminal {
                        open.push(id);
                    }
                }
                open
            });
        }
        while let Some(r) = set.join_next().await {
            still.extend(r.unwrap_or_default());
        }
        pending = still;
        if pending.len() < before {
            last_progress = Instant::now();
        }
        let done = pending.is_empty();
        let stalled = last_progress.elapsed() > stall;
        if done || stalled || started.elapsed() > limit {
            let outcome = if done {
                "all terminal"
            } else if stalled {
                "stalled"
            } else {
                "time limit"
            };
            timeline.note(
                "settled",
                json!({"outcome": outcome, "not_terminal": pending.len(), "rounds": rounds,
                       "waited_s": started.elapsed().as_secs()}),
            );
            return json!({"outcome": outcome, "not_terminal": pending.len(),
                          "waited_s": started.elapsed().as_secs(), "rounds": rounds});
        }
        eprintln!("chaos: {} accepted orders not yet terminal", pending.len());
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// `nivesh_store_injected_faults_total` of every service (the Cosmos phase's storm proof).
async fn injected_faults(fleet: &Fleet) -> BTreeMap<String, f64> {
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for name in Fleet::all_service_names() {
        let Ok(url) = fleet.url(name) else { continue };
        let Ok(r) = http.get(format!("{url}/metrics")).send().await else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("nivesh_store_injected_faults_total"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum();
        out.insert(name.to_string(), total);
    }
    out
}

struct Phase {
    fleet: Fleet,
    base: String,
    redis: Redis,
    admin: reqwest::Client,
    ops: reqwest::Client,
    investors: Vec<reqwest::Client>,
    admin_token: String,
}

/// A fleet with its own Redis, the NAV file uploaded, an ingress, clients.
async fn start_phase(
    root: &Path,
    bin_dir: Option<&Path>,
    env: &[(&str, String)],
    service_env: &[(&str, &str, String)],
    sim: &GatewaySim,
) -> Result<Phase> {
    let redis = Redis::start(free_port()).await?;
    let mut opts = FleetOptions::for_test(root);
    if let Some(dir) = bin_dir {
        opts.bin_dir = dir.to_path_buf();
    }
    opts.redis_url = Some(redis.url());
    opts.env.push(("RUST_LOG".into(), "warn".into()));
    for (k, v) in env {
        opts.env.push((k.to_string(), v.clone()));
    }
    for (svc, k, v) in service_env {
        opts.service_env
            .entry(svc.to_string())
            .or_default()
            .push((k.to_string(), v.clone()));
    }
    opts.business_start = Some(business_start());
    let mut fleet = Fleet::start_broker(opts).await?;
    if let Err(e) = fleet.start_everything(sim).await {
        fleet.stop().await.ok();
        return Err(e.context("starting the fleet"));
    }
    let base = ingress(&fleet).await?;
    let admin_token = fleet.staff_token(&["admin"]).await?;
    let admin = bearer_client(&admin_token, Duration::from_secs(30))?;
    let ops = fleet.staff_client(&["ops"]).await?;
    let mut investors = Vec::with_capacity(19);
    for n in 1..=19 {
        investors.push(bearer_client(
            &fleet.investor_token(&format!("INV{n:04}")).await?,
            Duration::from_secs(10),
        )?);
    }
    Ok(Phase {
        fleet,
        base,
        redis,
        admin,
        ops,
        investors,
        admin_token,
    })
}

async fn run(args: Args) -> Result<usize> {
    let file = nivesh_testkit::amfi_file().context("the real AMFI file is needed")?;
    let nav_body = std::fs::read(&file)?;
    let navs = expected_navs(&String::from_utf8_lossy(&nav_body));
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    // Logs and stores outlive the run (under the system temp dir), for a post-mortem.
    let root = std::env::temp_dir().join(format!("nivesh-chaos-{stamp}"));
    std::fs::create_dir_all(&root)?;
    let timeline = Timeline::new();
    let run_id = format!("chaos-{stamp}");
    let sim = GatewaySim {
        latency_ms: 50,
        failure_rate: 0.05,
        seed: args.seed,
    };
    let service_env: Vec<(&str, &str, String)> = if args.inject_bug {
        BUGGY_SERVICES
            .iter()
            .map(|s| (*s, BUG_ENV, "1".to_string()))
            .collect()
    } else {
        Vec::new()
    };
    timeline.note(
        "fleet starting",
        json!({"injected_bug": args.inject_bug.then_some("commit-before-process"),
               "buggy_services": if args.inject_bug { BUGGY_SERVICES.to_vec() } else { vec![] }}),
    );
    let mut p = start_phase(&root.join("main"), None, &[], &service_env, &sim).await?;
    timeline.note(
        "fleet up",
        json!({"services": Fleet::all_service_names().len(), "redis_port": p.redis.port,
               "bootstrap": p.fleet.bootstrap()}),
    );
    let outcome = main_phase(&args, &mut p, &nav_body, &navs, &run_id, &timeline).await;
    let stopped = p.fleet.stop().await;
    p.redis.kill().await.ok();
    let (load, settle, report) = outcome?;
    stopped?;
    timeline.note("fleet stopped", json!({}));
    let mut anomalies = report.anomalies();

    let cosmos = match (&args.cosmos_bin_dir, args.skip_cosmos) {
        (_, true) => json!({"skipped": "--skip-cosmos"}),
        (None, false) => {
            json!({"skipped": "no --cosmos-bin-dir (binaries built with the cosmos-emulator feature)"})
        }
        (Some(dir), false) => {
            let c = cosmos_phase(
                &args, dir, &root, &nav_body, &navs, &run_id, &sim, &timeline,
            )
            .await
            .context("the Cosmos phase")?;
            anomalies += c["anomalies"].as_u64().unwrap_or(0) as usize;
            c
        }
    };

    let results = json!({
        "suite": "chaos",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "started_at": stamp,
        "duration_s": timeline.t(),
        "machine": nivesh_loadtest::machine(),
        "injected_bug": args.inject_bug.then_some("commit-before-process"),
        "buggy_services": if args.inject_bug { BUGGY_SERVICES.to_vec() } else { vec![] },
        "settings": {"rate_per_s": args.rate, "clients": args.clients, "outage_s": args.outage_s,
                     "kill_gap_s": args.kill_gap_s, "gateway_decline_rate": sim.failure_rate,
                     "gateway_latency_ms": sim.latency_ms, "seed": args.seed},
        "anomalies": anomalies,
        "timeline": timeline.all(),
        "load": load,
        "settle": settle,
        "report": report,
        "cosmos": cosmos,
        "logs": root.display().to_string(),
    });
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("chaos-{stamp}.json"));
    std::fs::File::create(&path)?.write_all(serde_json::to_string_pretty(&results)?.as_bytes())?;
    println!("results: {}", path.display());
    print_summary(&results);
    Ok(anomalies)
}

fn print_summary(r: &Value) {
    let rep = &r["report"];
    println!(
        "chaos: {} s, {} orders accepted ({}/s), {} placed, statuses {}, {} transactions, {} NAV rows checked, dead letters {}; anomalies {}: not terminal {}, accepted-but-lost {}, unaccepted placed {}, duplicates {}, holding mismatches {}, inconsistent {}, lost NAVs {}, unexplained dead letters {}",
        r["duration_s"],
        r["load"]["orders_accepted"],
        r["load"]["accepted_per_s"],
        rep["ordersPlaced"],
        rep["statusCounts"],
        rep["transactions"],
        rep["navsChecked"],
        rep["deadLetters"],
        r["anomalies"],
        rep["notTerminal"].as_array().map_or(0, Vec::len),
        rep["acceptedLost"].as_array().map_or(0, Vec::len),
        rep["unacceptedPlaced"].as_array().map_or(0, Vec::len),
        rep["duplicates"].as_array().map_or(0, Vec::len),
        rep["mismatches"].as_array().map_or(0, Vec::len),
        rep["inconsistent"].as_array().map_or(0, Vec::len),
        rep["lostNavs"].as_array().map_or(0, Vec::len),
        rep["unexplainedDeadLetters"].as_array().map_or(0, Vec::len),
    );
}

/// The main phase: load plus SIGKILLs, broker outage, Redis outage; then settle and check.
async fn main_phase(
    args: &Args,
    p: &mut Phase,
    nav_body: &[u8],
    navs: &[nivesh_fleet::reconcile::ExpectedNav],
    run_id: &str,
    timeline: &Timeline,
) -> Result<(Value, Value, Report)> {
    let (status, attempts) = upload_navs(&p.ops, &p.base, nav_body).await?;
    timeline.note(
        "NAV file uploaded",
        json!({"status": status, "attempts": attempts, "numeric_rows": navs.len()}),
    );
    let mut warm = Vec::new();
    for scheme in [EQUITY, INDEX] {
        warm.push(place_when_known(&p.admin, &p.base, scheme).await?);
    }
    timeline.note("warm-up orders accepted", json!({"orders": warm}));

    let load = Load::start(
        &p.base,
        p.investors.clone(),
        args.rate,
        args.clients,
        run_id,
        timeline,
    );
    timeline.note(
        "load started",
        json!({"rate_per_s": args.rate, "clients": args.clients}),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;

    // 1. SIGKILL + restart each service in turn.
    for name in Fleet::all_service_names() {
        let pid = p.fleet.pid(name);
        p.fleet.kill9(name).await?;
        let killed = Instant::now();
        timeline.note("SIGKILL", json!({"service": name, "pid": pid}));
        tokio::time::sleep(Duration::from_secs(1)).await;
        p.fleet
            .restart(name)
            .await
            .with_context(|| format!("restarting {name}"))?;
        timeline.note(
            "restarted",
            json!({"service": name, "down_s": (killed.elapsed().as_secs_f64() * 10.0).round() / 10.0}),
        );
        if name == "nav-publisher" {
            // The NAV services have all been killed once (the file may have been mid-flight):
            // the same file again must change nothing.
            let (status, attempts) = upload_navs(&p.ops, &p.base, nav_body).await?;
            timeline.note(
                "NAV file re-uploaded",
                json!({"status": status, "attempts": attempts}),
            );
        }
        tokio::time::sleep(Duration::from_secs(args.kill_gap_s)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // 2. The broker down.
    p.fleet.broker_down()?;
    timeline.note("broker down", json!({"for_s": args.outage_s}));
    tokio::time::sleep(Duration::from_secs(args.outage_s)).await;
    p.fleet.broker_up()?;
    timeline.note("broker up", json!({}));
    tokio::time::sleep(Duration::from_secs(15)).await;

    // 3. Redis killed, restarted empty on the same port.
    p.redis.kill().await?;
    timeline.note("redis killed", json!({"for_s": args.outage_s}));
    tokio::time::sleep(Duration::from_secs(args.outage_s)).await;
    p.redis.spawn().await?;
    timeline.note("redis restarted (empty)", json!({"port": p.redis.port}));
    let (status, attempts) = upload_navs(&p.ops, &p.base, nav_body).await?;
    timeline.note(
        "NAV file re-uploaded",
        json!({"status": status, "attempts": attempts}),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Stop the load, let the fleet settle, check.
    let t = Instant::now();
    let (figures, settle, report) = stop_settle_check(p, load, warm, navs, args, timeline).await?;
    timeline.note(
        "checked",
        json!({"anomalies": report.anomalies(), "stop_settle_check_s": t.elapsed().as_secs()}),
    );
    Ok((figures, settle, report))
}

/// Stop the load, wait until every accepted order (and the warm-ups) is terminal or stops
/// progressing, and run the reconciliation checker; the end of both phases.
async fn stop_settle_check(
    p: &Phase,
    load: Load,
    warm: Vec<String>,
    navs: &[nivesh_fleet::reconcile::ExpectedNav],
    args: &Args,
    timeline: &Timeline,
) -> Result<(Value, Value, Report)> {
    let (stats, ran) = load.stop().await;
    let figures = load_figures(&stats, ran).await;
    let gave_up = figures["gave_up"].as_array().map_or(0, Vec::len);
    timeline.note(
        "load stopped",
        json!({"accepted": figures["orders_accepted"], "gave_up": gave_up}),
    );
    let mut accepted = stats.accepted.lock().await.clone();
    accepted.extend(warm);
    let settle = settle(
        &p.admin,
        &p.base,
        &accepted,
        Duration::from_secs(args.settle_s),
        Duration::from_secs(45),
        timeline,
    )
    .await;
    let expect = Expectations {
        accepted_orders: accepted,
        // A key given up on may still have been placed (the answer was lost); only without
        // give-ups must every placed order be one a client was told about.
        only_accepted_orders: gave_up == 0,
        navs: navs.to_vec(),
        nav_business_date: Some(business_start().date_naive()),
    };
    let report = reconcile_with(p.fleet.bootstrap(), &p.base, &p.admin_token, &expect).await?;
    Ok((figures, settle, report))
}

/// The Cosmos phase: a second, short fleet on binaries built with the `cosmos-emulator` store
/// backend, every service on it; steady load, a 429 storm in the middle (the backend's storm
/// file), settle, check. No SIGKILLs: the emulator keeps data in process memory.
#[allow(clippy::too_many_arguments)]
async fn cosmos_phase(
    args: &Args,
    bin_dir: &Path,
    root: &Path,
    nav_body: &[u8],
    navs: &[nivesh_fleet::reconcile::ExpectedNav],
    run_id: &str,
    sim: &GatewaySim,
    timeline: &Timeline,
) -> Result<Value> {
    let storm_file = root.join("cosmos-storm.on");
    let _ = std::fs::remove_file(&storm_file);
    let env = [
        ("NIVESH__STORE__BACKEND", "cosmos-emulator".to_string()),
        (
            "NIVESH__STORE__COSMOS_EMULATOR__STORM_FILE",
            storm_file.display().to_string(),
        ),
    ];
    timeline.note(
        "cosmos phase: fleet starting",
        json!({"bin_dir": bin_dir.display().to_string()}),
    );
    let mut p = start_phase(&root.join("cosmos"), Some(bin_dir), &env, &[], sim).await?;
    let outcome = async {
        let (status, attempts) = upload_navs(&p.ops, &p.base, nav_body).await?;
        timeline.note(
            "cosmos phase: NAV file uploaded",
            json!({"status": status, "attempts": attempts}),
        );
        let run_id = format!("{run_id}-cosmos");
        let mut warm = Vec::new();
        for scheme in [EQUITY, INDEX] {
            warm.push(place_when_known(&p.admin, &p.base, scheme).await?);
        }
        let load = Load::start(
            &p.base,
            p.investors.clone(),
            args.rate,
            args.clients,
            &run_id,
            timeline,
        );
        let quiet = args.cosmos_load_s.saturating_sub(args.cosmos_storm_s) / 2;
        tokio::time::sleep(Duration::from_secs(quiet)).await;
        let before = injected_faults(&p.fleet).await;
        std::fs::write(&storm_file, b"on")?;
        timeline.note("cosmos 429 storm on", json!({"for_s": args.cosmos_storm_s}));
        tokio::time::sleep(Duration::from_secs(args.cosmos_storm_s)).await;
        std::fs::remove_file(&storm_file)?;
        let during = injected_faults(&p.fleet).await;
        timeline.note("cosmos 429 storm off", json!({"injected_429s": during}));
        tokio::time::sleep(Duration::from_secs(quiet)).await;
        let (figures, settle, report) =
            stop_settle_check(&p, load, warm, navs, args, timeline).await?;
        let injected: f64 = during.values().sum::<f64>() - before.values().sum::<f64>();
        // A storm that injected nothing proves nothing: that is an anomaly of the suite.
        let storm_missing = usize::from(injected <= 0.0);
        timeline.note(
            "cosmos phase: checked",
            json!({"anomalies": report.anomalies() + storm_missing, "injected_429s": injected}),
        );
        anyhow::Ok(json!({
            "anomalies": report.anomalies() + storm_missing,
            "storm_injected_nothing": storm_missing == 1,
            "injected_429s_by_service": during,
            "injected_429s_before_storm": before,
            "load": figures,
            "settle": settle,
            "report": report,
        }))
    }
    .await;
    let stopped = p.fleet.stop().await;
    p.redis.kill().await.ok();
    let v = outcome?;
    stopped?;
    Ok(v)
}
