//! Order-flow benchmark: N purchase orders from C concurrent clients against the whole fleet
//! (every service a separate process over the dev broker, the payment gateway simulator with a
//! fixed latency), on the business day of the real AMFI file.
//!
//! Measured:
//! 1. acceptance: `POST /v1/orders` answered 201, orders/s and latency percentiles;
//! 2. end-to-end: from the first POST until every order is COMPLETED (its `portfolio.updated`
//!    seen on the topic), completed orders/s and per-order latency percentiles;
//! 3. the raw baselines, in the same run: the same C clients sending the same number of
//!    `GET /healthz` to the order service (HTTP + process overhead ceiling), and the same number
//!    of orders to an in-process server doing only the irreducible per-order work (one request,
//!    one idempotency read, one durable write, one Kafka produce; `mod raw`).
//!
//! Also records the CPU time every fleet process used during the order phase (from /proc), so the
//! busiest process is in the results file. Writes `loadtest/results/order-bench-<time>.json`.
//!
//! `cargo run --release -p nivesh-loadtest --bin order-bench -- --orders 2000 --clients 32 [--latency-ms 50]`

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use nivesh_events::{AvroCodec, OrderFailed, PortfolioUpdated};
use nivesh_fleet::fleet::{Fleet, FleetOptions, GatewaySim, redis_reachable};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// Mirae Asset Large & Midcap Fund - Direct Plan - Growth (NAV 144.782 on 2025-02-25).
const EQUITY: &str = "118834";
/// UTI Nifty 50 Index Fund - Growth Option - Direct (NAV 156.2072 on 2025-02-25).
const INDEX: &str = "120716";
/// Groups that consume `nav.broadcast`: the NAV day must be fully absorbed before the clock starts.
const NAV_CONSUMERS: &[&str] = &["order", "allotment", "portfolio"];

struct Args {
    orders: usize,
    clients: usize,
    latency_ms: u64,
    seed: u64,
}

fn flag<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|s| s.parse::<T>())
        .transpose()
        .with_context(|| format!("bad value for {name}"))?
        .unwrap_or(default))
}

fn main() -> Result<()> {
    let args = Args {
        orders: flag("--orders", 2000)?,
        clients: flag("--clients", 32)?,
        latency_ms: flag("--latency-ms", 50)?,
        seed: flag("--seed", 7)?,
    };
    if args.orders == 0 || args.clients == 0 {
        bail!("--orders and --clients must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

fn business_start() -> chrono::DateTime<Utc> {
    let ist = FixedOffset::east_opt(19_800).expect("IST offset");
    let local = NaiveDate::from_ymd_opt(2025, 2, 25)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .expect("valid date");
    ist.from_local_datetime(&local)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

async fn run(args: Args) -> Result<()> {
    let file =
        nivesh_testkit::amfi_file().context("the real AMFI file is needed for this benchmark")?;
    let tmp = tempfile::tempdir()?;
    let mut opts = FleetOptions::for_test(tmp.path());
    let redis = nivesh_testkit::redis_url();
    let redis_used = redis_reachable(&redis);
    if redis_used {
        opts.redis_url = Some(redis);
        opts.env.push((
            "NIVESH__REDIS__KEY_PREFIX".into(),
            nivesh_testkit::unique("order-bench"),
        ));
    } else {
        eprintln!("warning: Redis not reachable at {redis}; services use in-process caches");
    }
    opts.env.push(("RUST_LOG".into(), "warn".into()));
    opts.business_start = Some(business_start());
    let sim = GatewaySim {
        latency_ms: args.latency_ms,
        failure_rate: 0.0,
        seed: args.seed,
    };
    let mut fleet = Fleet::start_broker(opts).await?;
    let started = fleet.start_everything(&sim).await;
    if let Err(e) = started {
        fleet.stop().await.ok();
        return Err(e.context("starting the fleet"));
    }
    let outcome = bench(&fleet, &args, &file).await;
    let stopped = fleet.stop().await;
    let report = outcome?;
    stopped?;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "order-bench-{}.json",
        Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let mut report = report;
    report["redis"] = json!(redis_used);
    std::fs::File::create(&path)?.write_all(serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("results: {}", path.display());
    Ok(())
}

async fn bench(fleet: &Fleet, args: &Args, file: &std::path::Path) -> Result<Value> {
    let bootstrap = fleet.bootstrap().to_string();
    let order = fleet.url("order")?;
    // An admin token (every request carries it; each service verifies it, ES256, per request):
    // uploads the NAV day and places/reads orders for all 19 investors.
    let client = fleet.staff_client(&["admin"]).await?;

    // The NAV day: the real file through the ingestor; the order service learns schemes from
    // nav.broadcast.
    let t = Instant::now();
    let resp = client
        .post(format!(
            "{}/v1/nav/files?source=AMFI",
            fleet.url("nav-ingestor")?
        ))
        .body(std::fs::read(file)?)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "NAV upload failed: {} {}",
            resp.status(),
            resp.text().await?
        );
    }
    // Warm-up (not measured): one order per scheme, placed as soon as the scheme is known, then
    // followed to COMPLETED, so every hop has seen the schemes and opened its connections.
    for scheme in [EQUITY, INDEX] {
        let id = place_when_known(&client, &order, scheme).await?;
        wait_completed(&client, &order, &id, Duration::from_secs(300)).await?;
    }
    println!(
        "warm-up orders completed {:.1} s after the NAV upload",
        t.elapsed().as_secs_f64()
    );
    let settled = wait_nav_day_absorbed(&bootstrap, Duration::from_secs(300)).await?;
    println!(
        "NAV day absorbed by {NAV_CONSUMERS:?} ({settled} records on nav.broadcast) {:.1} s after the upload",
        t.elapsed().as_secs_f64()
    );

    // (3) Raw baseline: the same clients, the same number of requests, GET /healthz.
    let healthz = format!("{order}/healthz");
    let base = load(args.orders, args.clients, {
        let (client, healthz) = (client.clone(), healthz.clone());
        move |_| {
            let (client, healthz) = (client.clone(), healthz.clone());
            async move {
                let r = client.get(&healthz).send().await?;
                let ok = r.status().is_success();
                r.bytes().await?;
                Ok(if ok { Outcome::Ok } else { Outcome::Refused })
            }
        }
    })
    .await;
    let base_rate = base.ok as f64 / base.wall.as_secs_f64();
    println!(
        "baseline GET /healthz: {} ok in {:.2} s = {:.0} req/s; latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        base.ok,
        base.wall.as_secs_f64(),
        base_rate,
        ms(pct(&base.latencies, 0.50)),
        ms(pct(&base.latencies, 0.95)),
        ms(pct(&base.latencies, 0.99)),
    );

    // (3b) Raw per-order baseline: the irreducible work alone (see `raw`).
    let raw = raw::baseline(args.orders, args.clients).await?;
    let raw_rate = raw.ok as f64 / raw.wall.as_secs_f64();
    println!(
        "raw per-order baseline (HTTP + idempotency read + durable write + Kafka produce): {} ok in {:.2} s = {:.0} orders/s; latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        raw.ok,
        raw.wall.as_secs_f64(),
        raw_rate,
        ms(pct(&raw.latencies, 0.50)),
        ms(pct(&raw.latencies, 0.95)),
        ms(pct(&raw.latencies, 0.99)),
    );

    // Watch portfolio.updated (COMPLETED) and order.failed (FAILED) from their current ends.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, String, Vec<u8>)>();
    let watcher = {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", nivesh_testkit::unique("order-bench"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for topic in ["portfolio.updated", "order.failed"] {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            for p in md.topics()[0].partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::End)?;
            }
        }
        consumer.assign(&tpl)?;
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                    let m = m?;
                    let payload = m.payload().unwrap_or_default().to_vec();
                    if tx
                        .send((Instant::now(), m.topic().to_string(), payload))
                        .is_err()
                    {
                        break;
                    }
                }
            }
            Ok(())
        })
    };
    // Let the watcher resolve its end offsets before the first order.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (1) Acceptance: C clients share N orders, each with its own Idempotency-Key. Each order is
    // placed with its investor's own token, as investors do (the per-caller rate limit is per
    // investor; one staff token for all 19 would be throttled as one caller).
    let mut investor_clients = Vec::with_capacity(19);
    for n in 1..=19 {
        investor_clients.push(nivesh_fleet::fleet::bearer_client(
            &fleet.investor_token(&format!("INV{n:04}")).await?,
            Duration::from_secs(30),
        )?);
    }
    let investor_clients = Arc::new(investor_clients);
    let run_id = nivesh_testkit::unique("ob");
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let cpu_before = fleet_cpu();
    let t0 = Instant::now();
    let acc = load(args.orders, args.clients, {
        let (clients, order, run_id, sent_at) = (
            investor_clients.clone(),
            order.clone(),
            run_id.clone(),
            sent_at.clone(),
        );
        move |i| {
            let (client, order, run_id, sent_at) = (
                clients[i % 19].clone(),
                order.clone(),
                run_id.clone(),
                sent_at.clone(),
            );
            async move {
                let scheme = if i % 3 == 0 { INDEX } else { EQUITY };
                let body = json!({
                    "investorId": format!("INV{:04}", 1 + i % 19),
                    "kind": "PURCHASE",
                    "schemeCode": scheme,
                    "amount": format!("{}.{:02}", 1000 + i % 1000, i % 100),
                    "paymentInstrument": "bench@okaxis",
                });
                let sent = Instant::now();
                let r = client
                    .post(format!("{order}/v1/orders"))
                    .header("Idempotency-Key", format!("{run_id}-{i:06}"))
                    .json(&body)
                    .send()
                    .await?;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status != 201 {
                    eprintln!("order {i} refused ({status}): {v}");
                    return Ok(Outcome::Refused);
                }
                let id = v["orderId"]
                    .as_str()
                    .context("201 without orderId")?
                    .to_string();
                sent_at.lock().await.insert(id, sent);
                Ok(Outcome::Ok)
            }
        }
    })
    .await;
    let acc_rate = acc.ok as f64 / acc.wall.as_secs_f64();
    println!(
        "acceptance: {} of {} orders 201 in {:.2} s = {:.0} orders/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        acc.ok,
        args.orders,
        acc.wall.as_secs_f64(),
        acc_rate,
        ms(pct(&acc.latencies, 0.50)),
        ms(pct(&acc.latencies, 0.95)),
        ms(pct(&acc.latencies, 0.99)),
    );
    if acc.ok == 0 {
        stop.store(true, Ordering::Relaxed);
        bail!("no order accepted");
    }

    // (2) End-to-end: until every accepted order is COMPLETED (or FAILED) on the event log.
    let sent_at = sent_at.lock().await.clone();
    let codec = AvroCodec::single_object();
    let mut completed: HashMap<String, Instant> = HashMap::new();
    let mut failed: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut last_progress = Instant::now();
    while completed.len() + failed.len() < sent_at.len() {
        let now = Instant::now();
        if now > deadline {
            break;
        }
        if now.duration_since(last_progress) > Duration::from_secs(10) {
            last_progress = now;
            println!(
                "  … {} completed, {} failed of {} after {:.0} s",
                completed.len(),
                failed.len(),
                sent_at.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        let Ok(Some((at, topic, payload))) =
            tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
        else {
            continue;
        };
        let id = if topic == "portfolio.updated" {
            codec
                .decode::<PortfolioUpdated>(&payload)
                .await?
                .order_id
                .map(|id| (id, true))
        } else {
            Some((codec.decode::<OrderFailed>(&payload).await?.order_id, false))
        };
        if let Some((id, ok)) = id
            && sent_at.contains_key(&id)
        {
            let map = if ok { &mut completed } else { &mut failed };
            map.entry(id).or_insert(at);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let cpu_after = fleet_cpu();
    let e2e_wall = completed
        .values()
        .chain(failed.values())
        .map(|at| at.duration_since(t0))
        .max()
        .unwrap_or_default();
    watcher.join().expect("watcher thread")?;
    if completed.len() + failed.len() < sent_at.len() {
        bail!(
            "only {} completed and {} failed of {} accepted orders after 900 s",
            completed.len(),
            failed.len(),
            sent_at.len()
        );
    }
    // Spot check through the API: the order service itself says COMPLETED.
    for id in completed.keys().take(20) {
        let v: Value = client
            .get(format!("{order}/v1/orders/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if v["status"] != "COMPLETED" {
            bail!("order {id}: portfolio.updated seen but the API says {v}");
        }
    }
    let mut e2e_lat: Vec<Duration> = completed
        .iter()
        .map(|(id, at)| at.duration_since(sent_at[id]))
        .collect();
    e2e_lat.sort();
    let e2e_rate = completed.len() as f64 / e2e_wall.as_secs_f64();
    println!(
        "end-to-end: {} COMPLETED ({} FAILED) {:.2} s after the first POST = {:.0} completed orders/s; per-order POST→COMPLETED p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        completed.len(),
        failed.len(),
        e2e_wall.as_secs_f64(),
        e2e_rate,
        ms(pct(&e2e_lat, 0.50)),
        ms(pct(&e2e_lat, 0.95)),
        ms(pct(&e2e_lat, 0.99)),
    );
    println!(
        "ratios to the /healthz baseline: acceptance {:.3} (1/{:.1}), end-to-end {:.3} (1/{:.1})",
        acc_rate / base_rate,
        base_rate / acc_rate,
        e2e_rate / base_rate,
        base_rate / e2e_rate
    );
    println!(
        "ratios to the raw per-order baseline: acceptance {:.3}, end-to-end {:.3}",
        acc_rate / raw_rate,
        e2e_rate / raw_rate
    );

    // CPU time per fleet process over the order phase (placement + completion).
    let tick = clock_ticks_per_s();
    let mut cpu: Vec<(String, f64)> = cpu_after
        .iter()
        .map(|(name, after)| {
            let before = cpu_before.get(name).copied().unwrap_or(0);
            (name.clone(), after.saturating_sub(before) as f64 / tick)
        })
        .collect();
    cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let phase_s = e2e_wall.as_secs_f64();
    println!("CPU during the order phase ({phase_s:.1} s wall, 100 % = one core):");
    for (name, s) in &cpu {
        println!("  {name:<24} {s:>7.2} s  {:>5.0} %", 100.0 * s / phase_s);
    }

    let lat = |v: &[Duration]| json!({ "p50_ms": ms(pct(v, 0.50)), "p95_ms": ms(pct(v, 0.95)), "p99_ms": ms(pct(v, 0.99)), "max_ms": ms(v.last().copied().unwrap_or_default()) });
    Ok(json!({
        "benchmark": "order-bench",
        "when": Utc::now(),
        "machine": nivesh_loadtest::machine(),
        "orders": args.orders,
        "clients": args.clients,
        "gateway_sim": { "latency_ms": args.latency_ms, "failure_rate": 0.0, "seed": args.seed },
        "business_start": business_start(),
        "schemes": [EQUITY, INDEX],
        "baseline_healthz": {
            "requests": args.orders, "ok": base.ok, "errors": base.errors,
            "wall_s": base.wall.as_secs_f64(), "req_per_s": base_rate, "latency": lat(&base.latencies),
        },
        "acceptance": {
            "accepted_201": acc.ok, "refused": acc.refused, "errors": acc.errors,
            "wall_s": acc.wall.as_secs_f64(), "orders_per_s": acc_rate, "latency": lat(&acc.latencies),
        },
        "end_to_end": {
            "completed": completed.len(), "failed": failed.len(),
            "first_post_to_last_completed_s": phase_s, "completed_orders_per_s": e2e_rate,
            "post_to_completed_latency": lat(&e2e_lat),
        },
        "raw_per_order_baseline": {
            "what": "one POST through axum, one idempotency point read, one durable write (idempotency record + order + outbox row, embedded store), one Kafka produce acknowledged by an in-process mock broker",
            "requests": args.orders, "ok": raw.ok, "errors": raw.errors,
            "wall_s": raw.wall.as_secs_f64(), "orders_per_s": raw_rate, "latency": lat(&raw.latencies),
        },
        "ratio_acceptance_to_raw_baseline": acc_rate / raw_rate,
        "ratio_end_to_end_to_raw_baseline": e2e_rate / raw_rate,
        "ratio_acceptance_to_baseline": acc_rate / base_rate,
        "ratio_end_to_end_to_baseline": e2e_rate / base_rate,
        "cpu_seconds_during_order_phase": cpu.iter().map(|(n, s)| (n.clone(), json!((s * 100.0).round() / 100.0))).collect::<serde_json::Map<_, _>>(),
    }))
}

enum Outcome {
    Ok,
    Refused,
}

struct LoadResult {
    ok: usize,
    refused: usize,
    errors: usize,
    wall: Duration,
    /// Latencies of the successful requests, sorted.
    latencies: Vec<Duration>,
}

/// `clients` tasks share `n` requests (`make(i)` builds request `i`); wall time is from the start
/// until the last answer.
async fn load<F, Fut>(n: usize, clients: usize, make: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Outcome>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, make) = (next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused, mut errors, mut lat) = (0, 0, 0, Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                match make(i).await {
                    Ok(Outcome::Ok) => {
                        lat.push(t.elapsed());
                        ok += 1;
                    }
                    Ok(Outcome::Refused) => refused += 1,
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("request {i} failed: {e:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (ok, refused, errors, lat)
        }));
    }
    let mut r = LoadResult {
        ok: 0,
        refused: 0,
        errors: 0,
        wall: Duration::ZERO,
        latencies: Vec::with_capacity(n),
    };
    for t in tasks {
        if let Ok((ok, refused, errors, lat)) = t.await {
            r.ok += ok;
            r.refused += refused;
            r.errors += errors;
            r.latencies.extend(lat);
        }
    }
    r.wall = t0.elapsed();
    r.latencies.sort();
    r
}

/// The `p` quantile (nearest rank) of sorted latencies.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Place one order for `scheme`, retrying while the order service does not know the scheme yet
/// (the NAV day is still being published). Returns the order id.
async fn place_when_known(client: &reqwest::Client, order: &str, scheme: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let r = client
            .post(format!("{order}/v1/orders"))
            .header("Idempotency-Key", nivesh_testkit::unique("warmup"))
            .json(
                &json!({"investorId": "INV0020", "kind": "PURCHASE", "schemeCode": scheme,
                          "amount": "500.00", "paymentInstrument": "warmup@okaxis"}),
            )
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v["orderId"]
                .as_str()
                .context("201 without orderId")?
                .to_string());
        }
        let unknown_scheme =
            status.is_client_error() && v.to_string().to_lowercase().contains("scheme");
        if !unknown_scheme || Instant::now() > deadline {
            bail!("warm-up order for {scheme} refused ({status}): {v}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_completed(
    client: &reqwest::Client,
    order: &str,
    id: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = client.get(format!("{order}/v1/orders/{id}")).send().await?;
        if r.status().is_success() {
            let v: Value = r.json().await?;
            match v["status"].as_str() {
                Some("COMPLETED") => return Ok(()),
                Some("FAILED") => bail!("warm-up order {id} FAILED: {v}"),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("warm-up order {id} not COMPLETED in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `nav.broadcast` has stopped growing and every group consuming it has committed up
/// to its end, so the NAV day does not compete with the orders. Returns the record count.
async fn wait_nav_day_absorbed(bootstrap: &str, timeout: Duration) -> Result<i64> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || -> Result<i64> {
        let topic = "nav.broadcast";
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", nivesh_testkit::unique("order-bench-probe"))
            .create()?;
        let md = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let groups: Vec<BaseConsumer> = NAV_CONSUMERS
            .iter()
            .map(|g| {
                ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", *g)
                    .set("enable.auto.commit", "false")
                    .create()
            })
            .collect::<Result<_, _>>()?;
        let deadline = Instant::now() + timeout;
        let mut previous = -1;
        loop {
            let mut highs = HashMap::new();
            for &p in &partitions {
                let (_, high) = probe.fetch_watermarks(topic, p, Duration::from_secs(10))?;
                highs.insert(p, high);
            }
            let total: i64 = highs.values().sum();
            let mut behind = 0;
            for g in &groups {
                let mut tpl = TopicPartitionList::new();
                for &p in &partitions {
                    tpl.add_partition(topic, p);
                }
                let committed = g.committed_offsets(tpl, Duration::from_secs(10))?;
                for e in committed.elements() {
                    let at = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    };
                    behind += (highs[&e.partition()] - at).max(0);
                }
            }
            if behind == 0 && total == previous && total > 0 {
                return Ok(total);
            }
            if Instant::now() > deadline {
                bail!("NAV day not absorbed in {timeout:?}: {behind} records behind");
            }
            previous = total;
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .await?
}

/// CPU time (user + system, clock ticks) of every child process of this one (the fleet), by
/// binary name.
fn fleet_cpu() -> BTreeMap<String, u64> {
    let me = std::process::id().to_string();
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ... utime(14) stime(15): split after the comm's closing paren.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(1) != Some(&me.as_str()) {
            continue;
        }
        let ticks = fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        let name = std::fs::read(entry.path().join("cmdline"))
            .ok()
            .and_then(|c| {
                c.split(|b| *b == 0)
                    .next()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
            })
            .map(|argv0| argv0.rsplit('/').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        *out.entry(name).or_insert(0) += ticks;
    }
    // The load generator itself (this process, including its broker clients).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(close) = stat.rfind(')')
    {
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        out.insert("order-bench (load generator)".into(), ticks);
    }
    out
}

fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The raw per-order baseline: the irreducible work of accepting one order on this machine, with
/// nothing else of the platform in the way. One request through axum, one idempotency point
/// read, one durable write (idempotency record + order + outbox row in one batch of the
/// embedded store, the same store the services use locally) and one Kafka produce acknowledged
/// by a broker (an in-process mock cluster, so the fleet's topics stay untouched). Runs in the
/// bench process while the fleet is idle, with the same clients and request count.
mod raw {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use nivesh_bus::devbroker::DevBroker;
    use nivesh_bus::{BusProducer, KafkaSettings, OutgoingMessage};
    use nivesh_store::{Batch, DocumentStore, EmbeddedStore, OutboxMessage, WriteOp};
    use serde_json::{Value, json};

    use super::{LoadResult, Outcome, load};

    const TOPIC: &str = "raw.orders";
    const CONTAINER: &str = "raw_orders";

    #[derive(Clone)]
    struct Raw {
        store: Arc<dyn DocumentStore>,
        producer: BusProducer,
    }

    pub(super) async fn baseline(n: usize, clients: usize) -> anyhow::Result<LoadResult> {
        let broker = DevBroker::start(1)?;
        broker.create_topic(TOPIC, 24)?;
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn DocumentStore> =
            Arc::new(EmbeddedStore::open(dir.path().join("raw.sqlite"))?);
        let producer = BusProducer::new(&KafkaSettings::new(
            broker.bootstrap_servers(),
            "raw-baseline",
        ))?;
        let app = axum::Router::new()
            .route("/raw/orders", post(place))
            .with_state(Raw { store, producer });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/raw/orders", listener.local_addr()?);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let result = load(n, clients, move |i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body = json!({
                    "investorId": format!("INV{:04}", i % 19 + 1),
                    "schemeCode": "118834",
                    "amount": "10000.00",
                });
                let r = http
                    .post(&url)
                    .header("Idempotency-Key", format!("raw-{i}"))
                    .json(&body)
                    .send()
                    .await?;
                let ok = r.status() == reqwest::StatusCode::CREATED;
                r.bytes().await?;
                Ok(if ok { Outcome::Ok } else { Outcome::Refused })
            }
        })
        .await;
        server.abort();
        Ok(result)
    }

    async fn place(
        State(raw): State<Raw>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let Some(key) = headers.get("Idempotency-Key").and_then(|v| v.to_str().ok()) else {
            return StatusCode::BAD_REQUEST;
        };
        let Ok(order) = serde_json::from_slice::<Value>(&body) else {
            return StatusCode::UNPROCESSABLE_ENTITY;
        };
        let Some(investor) = order["investorId"].as_str().map(str::to_owned) else {
            return StatusCode::UNPROCESSABLE_ENTITY;
        };
        let investor = investor.as_str();
        let idem = format!("idem:{key}");
        match raw.store.get(CONTAINER, investor, &idem).await {
            Ok(Some(_)) => return StatusCode::OK,
            Ok(None) => {}
            Err(_) => return StatusCode::SERVICE_UNAVAILABLE,
        }
        let order_id = format!("ord-{key}");
        let batch = Batch::new(CONTAINER, investor)
            .op(WriteOp::Create {
                id: idem,
                body: json!({ "orderId": order_id }),
                ttl: Some(Duration::from_secs(86_400)),
            })
            .op(WriteOp::Create {
                id: order_id.clone(),
                body: order,
                ttl: None,
            })
            .emit(OutboxMessage {
                message_id: order_id,
                topic: TOPIC.into(),
                key: investor.to_string(),
                payload: body.to_vec(),
                headers: Vec::new(),
            });
        if raw.store.commit(batch).await.is_err() {
            return StatusCode::CONFLICT;
        }
        let sent = raw
            .producer
            .send(OutgoingMessage {
                topic: TOPIC.into(),
                key: investor.to_string(),
                payload: body.to_vec(),
                headers: Vec::new(),
            })
            .await;
        match sent {
            Ok(_) => StatusCode::CREATED,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}
