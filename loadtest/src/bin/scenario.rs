//! Load scenarios against the whole local fleet (issue 9). Each run starts the fleet (every
//! service a separate process over the dev broker, the payment gateway simulator, Redis when it
//! answers), absorbs the NAV day of the real AMFI file with warm-up orders, measures a raw
//! baseline in the same run, drives the load and writes `loadtest/results/<name>-<time>.json`.
//!
//! ```text
//! cargo run --release -p nivesh-loadtest --bin scenario -- <name> [flags]
//!   journey    --users 20 --seconds 60        70 % NAV browse / 20 % own portfolio / 10 % order
//!   nav-reads  --clients 64 --seconds 20      public latest-NAV reads (+ /healthz baseline)
//!   sustained  --rate 5000 --seconds 60       open-loop order placement, then completion
//!   burst      --rate 8000 --seconds 10       the same at the burst rate
//!   nav-day    --rate 100 --reuploads 5       orders flowing while the full AMFI file lands,
//!              --gap-s 10 --lead-s 5          then is re-uploaded (each must be a duplicate)
//! common: --latency-ms 50 (gateway simulator) --seed 7
//! sustained / burst / nav-day: --max-in-flight 256 --drain-timeout-s 600
//! ```
//!
//! Orders are purchases of two schemes of the file by the seeded investors
//! (`config/investors.json`), each placed with that investor's own token. Completion is measured
//! from events: placed (the POST sent) → its `portfolio.updated` seen on the topic.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nivesh_loadtest::completion::CompletionWatcher;
use nivesh_loadtest::cpu::{CpuSnapshot, CpuUse};
use nivesh_loadtest::fleetrun::{
    BenchFleet, EQUITY, INDEX, INVESTORS, ORDER_SCHEMES, amfi_file, amount_for, business_start,
    investor_id, place_order,
};
use nivesh_loadtest::load::{
    OpenLoop, OpenLoopResult, Outcome, Until, closed_loop, load_for, open_loop,
};
use nivesh_loadtest::navday::{
    BroadcastWatcher, expected_navs, parse_only_best, read_back, schemes, subset,
    wait_for_assignment,
};
use nivesh_loadtest::results::ResultsFile;
use nivesh_loadtest::stats::{Tally, line, ms, pct};
use nivesh_loadtest::{flag, raw};
use serde_json::{Value, json};

/// The seeded investors with KYC VERIFIED (INV0001..=INV0020): the journey's virtual users.
const SEEDED_VERIFIED: usize = 20;
/// The raw per-order baseline's size (as order-bench: 2,000 orders from 32 clients).
const RAW_ORDERS: usize = 2000;
const RAW_CLIENTS: usize = 32;
const SELF_LABEL: &str = "scenario (load generator)";

const USAGE: &str =
    "usage: scenario <journey|nav-reads|sustained|burst|nav-day> [flags] (see the file's header)";

fn main() -> Result<()> {
    let name = std::env::args().nth(1).context(USAGE)?;
    if !["journey", "nav-reads", "sustained", "burst", "nav-day"].contains(&name.as_str()) {
        bail!("unknown scenario {name:?}; {USAGE}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&name))
}

async fn run(name: &str) -> Result<()> {
    let results = ResultsFile::begin(name);
    let file = amfi_file()?;
    let bytes = std::fs::read(&file)?;
    let fleet = BenchFleet::start(name, flag("--latency-ms", 50)?, flag("--seed", 7)?).await?;
    let outcome = async {
        // nav-day needs the schemes the orders buy known before the full file lands: the NAV
        // day before the measurement is the part of the file that holds just them.
        let before = if name == "nav-day" {
            subset(&bytes, &ORDER_SCHEMES)
        } else {
            bytes.clone()
        };
        fleet.nav_day(before).await?;
        match name {
            "journey" => journey(&fleet, &bytes).await,
            "nav-reads" => nav_reads(&fleet, &bytes).await,
            "sustained" => orders(&fleet, name, 5000.0, 60.0).await,
            "burst" => orders(&fleet, name, 8000.0, 10.0).await,
            _ => nav_day(&fleet, &bytes).await,
        }
    }
    .await;
    let redis_used = fleet.redis_used;
    let gateway = fleet.gateway_json();
    let stopped = fleet.stop().await;
    let mut report = outcome?;
    stopped?;
    report["scenario"] = json!(name);
    report["command"] = json!(std::env::args().skip(1).collect::<Vec<_>>().join(" "));
    report["redis"] = json!(redis_used);
    report["gateway_sim"] = gateway;
    report["business_start"] = json!(business_start());
    report["file"] = json!(file.display().to_string());
    results.write(report)?;
    Ok(())
}

/// A 64-bit mix of `x` (SplitMix64): the scenarios' deterministic "random" choices.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The raw per-order baseline, measured now (the fleet idle), printed.
async fn raw_baseline() -> Result<(Value, f64)> {
    let r = raw::baseline(RAW_ORDERS, RAW_CLIENTS).await?;
    println!(
        "raw per-order baseline: {} ok in {:.2} s = {:.0} orders/s; {}",
        r.ok,
        r.wall.as_secs_f64(),
        r.rate(),
        line(&r.latencies)
    );
    Ok((raw::to_json(&r, RAW_ORDERS), r.rate()))
}

/// `{target, measured, ratio (measured / target), met}` for a "more is better" target.
fn at_least(target: f64, measured: f64) -> Value {
    json!({ "target": target, "measured": measured, "ratio": measured / target, "met": measured >= target })
}

/// The same for a "less is better" target (ratio = target / measured: 1 or more is met).
fn at_most(target: f64, measured: f64) -> Value {
    json!({ "target": target, "measured": measured,
            "ratio": if measured > 0.0 { target / measured } else { f64::INFINITY },
            "met": measured <= target })
}

fn print_cpu(cpu: &CpuUse, phase_s: f64) {
    println!(
        "CPU during the measured phase ({phase_s:.1} s wall, {:.1} CPU-s, 100 % = one core):",
        cpu.total()
    );
    cpu.print(phase_s);
}

/// Order placement as an open loop (sustained, burst): the raw baseline, then `--rate` orders/s
/// offered for `--seconds` with at most `--max-in-flight` unanswered, then every accepted order
/// followed to COMPLETED / FAILED from events.
async fn orders(fleet: &BenchFleet, name: &str, rate: f64, seconds: f64) -> Result<Value> {
    let plan = OpenLoop {
        rate: flag("--rate", rate)?,
        seconds: flag("--seconds", seconds)?,
        max_in_flight: flag("--max-in-flight", 256)?,
    };
    let drain = Duration::from_secs(flag("--drain-timeout-s", 600)?);
    let (raw_json, raw_rate) = raw_baseline().await?;
    let watcher = Arc::new(CompletionWatcher::start(&fleet.bootstrap(), name)?);
    let placer = OrderPlacer::new(fleet, &watcher, name).await?;
    let cpu_before = CpuSnapshot::take(SELF_LABEL);
    let t0 = Instant::now();
    let placed = open_loop(plan, move |i| placer.clone().place(i)).await;
    print_open_loop("placement", &placed);
    let done = watcher.wait(drain, Duration::from_secs(120)).await;
    let cpu = cpu_before.until(&CpuSnapshot::take(SELF_LABEL));
    done.print();
    done.spot_check(&fleet.admin, &fleet.order, 20).await?;
    let phase = done.span().max(placed.wall);
    print_cpu(&cpu, phase.as_secs_f64());
    if let Ok(w) = Arc::try_unwrap(watcher) {
        w.stop()?;
    }
    let achieved = placed.achieved_rate();
    let p99 = ms(pct(&placed.tally.latencies, 0.99));
    let completion_p99 = ms(pct(&done.latencies, 0.99));
    let targets = if name == "burst" {
        json!({
            "accepted_per_s_8000": at_least(8000.0, achieved),
            "lost_zero": { "target": 0, "measured": done.lost.len(), "met": done.lost.is_empty() },
            "placement_errors_zero": { "target": 0, "measured": placed.tally.error_count() + placed.not_sent_in_flight_cap, "met": placed.tally.error_count() + placed.not_sent_in_flight_cap == 0 },
            "completion_rate_at_least_placement_rate": at_least(achieved, done.rate()),
            "completion_p99_ms_2000": at_most(2000.0, completion_p99),
        })
    } else {
        json!({
            "placements_per_s_5000": at_least(5000.0, achieved),
            "placement_p99_ms_50": at_most(50.0, p99),
            "errors_zero": { "target": 0, "measured": placed.tally.error_count() + placed.not_sent_in_flight_cap, "met": placed.tally.error_count() + placed.not_sent_in_flight_cap == 0 },
            "completion_rate_at_least_placement_rate": at_least(achieved, done.rate()),
            "completion_p99_ms_2000": at_most(2000.0, completion_p99),
        })
    };
    Ok(json!({
        "placement": placed.to_json(),
        "completion": done.to_json(Some((t0, placed.send_window, achieved))),
        "raw_per_order_baseline": raw_json,
        "ratio_accepted_to_raw_baseline": achieved / raw_rate,
        "ratio_completed_to_raw_baseline": done.rate() / raw_rate,
        "targets": targets,
        "cpu_seconds_during_run": cpu.to_json(),
        "cpu_phase_s": phase.as_secs_f64(),
    }))
}

fn print_open_loop(what: &str, r: &OpenLoopResult) {
    println!(
        "{what}: offered {} ({:.0}/s for {:.0} s), sent {}, not sent (in-flight cap {}) {}, sent late {} (max lag {:.0} ms); {} ok = {:.0}/s over {:.2} s, errors {:?}; latency {}",
        r.offered,
        r.plan.rate,
        r.plan.seconds,
        r.sent,
        r.plan.max_in_flight,
        r.not_sent_in_flight_cap,
        r.sent_late,
        ms(r.max_send_lag),
        r.tally.ok,
        r.achieved_rate(),
        r.send_window.as_secs_f64(),
        r.tally.errors,
        line(&r.tally.latencies)
    );
}

/// Places order `i` for a seeded investor with that investor's token, and tells the watcher.
#[derive(Clone)]
struct OrderPlacer {
    clients: Arc<Vec<reqwest::Client>>,
    order: String,
    run_id: String,
    watcher: Arc<CompletionWatcher>,
}

impl OrderPlacer {
    async fn new(
        fleet: &BenchFleet,
        watcher: &Arc<CompletionWatcher>,
        name: &str,
    ) -> Result<OrderPlacer> {
        Ok(OrderPlacer {
            clients: Arc::new(fleet.investor_clients(INVESTORS).await?),
            order: fleet.order.clone(),
            run_id: nivesh_testkit::unique(name),
            watcher: watcher.clone(),
        })
    }

    /// Order `i` for investor `1 + i % 19` (its own token): scheme by `i % 3`.
    async fn place(self, i: usize) -> Result<Outcome> {
        self.place_for(i, i % INVESTORS).await
    }

    /// Order `i` for investor `k + 1` (`k` < the clients held).
    async fn place_for(self, i: usize, k: usize) -> Result<Outcome> {
        let scheme = if i % 3 == 0 { INDEX } else { EQUITY };
        let sent = Instant::now();
        let (outcome, id) = place_order(
            &self.clients[k],
            &self.order,
            &format!("{}-{i:07}", self.run_id),
            &investor_id(k + 1),
            scheme,
            &amount_for(i),
        )
        .await?;
        if let Some(id) = id {
            self.watcher.placed(id, sent);
        }
        Ok(outcome)
    }
}

/// The investor journey: `--users` virtual users (each a seeded investor with its own token),
/// closed loop without think time for `--seconds`, each request drawn 70 % NAV browse (of it
/// 80 % latest NAV of a random scheme of the file, 10 % search, 10 % history; public, no token),
/// 20 % own portfolio, 10 % place an order.
async fn journey(fleet: &BenchFleet, bytes: &[u8]) -> Result<Value> {
    let users: usize = flag("--users", SEEDED_VERIFIED)?;
    let seconds: f64 = flag("--seconds", 60.0)?;
    if users == 0 {
        bail!("--users must be positive");
    }
    let (raw_json, raw_rate) = raw_baseline().await?;
    let all = Arc::new(schemes(bytes)?);
    let publisher = fleet.fleet.url("nav-publisher")?;
    let portfolio = fleet.fleet.url("portfolio")?;
    let public = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let watcher = Arc::new(CompletionWatcher::start(&fleet.bootstrap(), "journey")?);
    let investors = users.min(SEEDED_VERIFIED);
    let placer = OrderPlacer {
        clients: Arc::new(fleet.investor_clients(investors).await?),
        order: fleet.order.clone(),
        run_id: nivesh_testkit::unique("journey"),
        watcher: watcher.clone(),
    };
    let seed: u64 = flag("--seed", 7)?;
    let cpu_before = CpuSnapshot::take(SELF_LABEL);
    let t0 = Instant::now();
    let (tallies, wall) = closed_loop(
        users,
        Until::Elapsed(Duration::from_secs_f64(seconds)),
        move |user, i| {
            let (all, publisher, portfolio, public, placer) = (
                all.clone(),
                publisher.clone(),
                portfolio.clone(),
                public.clone(),
                placer.clone(),
            );
            async move {
                let r = mix(seed ^ (i as u64) << 1);
                let k = user % investors;
                let (code, name) = &all[(mix(r) % all.len() as u64) as usize];
                let get = |url: String| {
                    let public = public.clone();
                    async move {
                        let resp = public.get(url).send().await?;
                        let status = resp.status().as_u16();
                        resp.bytes().await?;
                        anyhow::Ok(Outcome::expect(status, |s| s == 200))
                    }
                };
                match r % 100 {
                    0..70 => match (r >> 8) % 10 {
                        0 => {
                            // A word of the scheme's name, as an investor would type it.
                            let word = name
                                .split(|c: char| !c.is_alphanumeric())
                                .find(|w| w.len() >= 4)
                                .unwrap_or(code)
                                .to_lowercase();
                            let url = format!("{publisher}/v1/nav/schemes?q={word}");
                            ("nav_search", get(url).await)
                        }
                        1 => (
                            "nav_history",
                            get(format!("{publisher}/v1/nav/schemes/{code}/history")).await,
                        ),
                        _ => (
                            "nav_latest",
                            get(format!("{publisher}/v1/nav/schemes/{code}")).await,
                        ),
                    },
                    70..90 => {
                        let outcome = async {
                            let resp = placer.clients[k]
                                .get(format!(
                                    "{portfolio}/v1/investors/{}/portfolio",
                                    investor_id(k + 1)
                                ))
                                .send()
                                .await?;
                            let status = resp.status().as_u16();
                            resp.bytes().await?;
                            anyhow::Ok(Outcome::expect(status, |s| s == 200))
                        }
                        .await;
                        ("portfolio", outcome)
                    }
                    _ => ("order", placer.place_for(i, k).await),
                }
            }
        },
    )
    .await;
    println!(
        "journey: {users} users ({investors} investors) for {:.1} s",
        wall.as_secs_f64()
    );
    let mut overall = Tally::default();
    let mut kinds = serde_json::Map::new();
    for (kind, t) in &tallies {
        println!(
            "  {kind:<12} {:>7} ok = {:>7.0}/s, errors {:?}; {}",
            t.ok,
            t.ok as f64 / wall.as_secs_f64(),
            t.errors,
            line(&t.latencies)
        );
        kinds.insert(kind.to_string(), t.to_json(wall.as_secs_f64()));
        overall.merge(t.clone());
    }
    overall.finish();
    println!(
        "  {:<12} {:>7} ok = {:>7.0}/s, errors {:?}; {}",
        "overall",
        overall.ok,
        overall.ok as f64 / wall.as_secs_f64(),
        overall.errors,
        line(&overall.latencies)
    );
    let done = watcher
        .wait(Duration::from_secs(600), Duration::from_secs(120))
        .await;
    let cpu = cpu_before.until(&CpuSnapshot::take(SELF_LABEL));
    done.print();
    done.spot_check(&fleet.admin, &fleet.order, 20).await?;
    let phase = done.span().max(wall);
    print_cpu(&cpu, phase.as_secs_f64());
    if let Ok(w) = Arc::try_unwrap(watcher) {
        w.stop()?;
    }
    let order_rate = tallies.get("order").map_or(0, |t| t.ok) as f64 / wall.as_secs_f64();
    let total = overall.ok + overall.error_count();
    let mix_json: BTreeMap<&str, f64> = tallies
        .iter()
        .map(|(k, t)| (*k, (t.ok + t.error_count()) as f64 / total.max(1) as f64))
        .collect();
    Ok(json!({
        "users": users,
        "investors": investors,
        "seconds": wall.as_secs_f64(),
        "think_time_ms": 0,
        "mix_requested": { "nav_browse": 0.70, "of_which_latest_search_history": [0.8, 0.1, 0.1], "portfolio": 0.20, "order": 0.10 },
        "mix_measured": mix_json,
        "by_kind": kinds,
        "overall": overall.to_json(wall.as_secs_f64()),
        "orders_completion": done.to_json(Some((t0, wall, order_rate))),
        "raw_per_order_baseline": raw_json,
        "ratio_order_placements_to_raw_baseline": order_rate / raw_rate,
        "cpu_seconds_during_run": cpu.to_json(),
        "cpu_phase_s": phase.as_secs_f64(),
    }))
}

/// Public latest-NAV reads of random schemes of the file: `--clients` closed-loop clients for
/// `--seconds`; the raw baseline first, the same clients for the same time on the
/// nav-publisher's `GET /healthz` (HTTP + process overhead, no cache, no store).
async fn nav_reads(fleet: &BenchFleet, bytes: &[u8]) -> Result<Value> {
    let clients: usize = flag("--clients", 64)?;
    let seconds: f64 = flag("--seconds", 20.0)?;
    let duration = Duration::from_secs_f64(seconds);
    let publisher = fleet.fleet.url("nav-publisher")?;
    let codes: Arc<Vec<String>> = Arc::new(schemes(bytes)?.into_iter().map(|(c, _)| c).collect());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(clients)
        .build()?;
    let get = move |http: reqwest::Client, url: String| async move {
        let resp = http.get(url).send().await?;
        let status = resp.status().as_u16();
        resp.bytes().await?;
        anyhow::Ok(Outcome::expect(status, |s| s == 200))
    };
    let base = load_for(duration, clients, {
        let (http, url) = (http.clone(), format!("{publisher}/healthz"));
        move |_| get(http.clone(), url.clone())
    })
    .await;
    println!(
        "baseline GET /healthz (nav-publisher): {} ok = {:.0}/s, errors {:?}; {}",
        base.ok,
        base.rate(),
        base.errors_by_status,
        line(&base.latencies)
    );
    let seed: u64 = flag("--seed", 7)?;
    let cpu_before = CpuSnapshot::take(SELF_LABEL);
    let reads = load_for(duration, clients, {
        let (http, publisher, codes) = (http.clone(), publisher.clone(), codes.clone());
        move |i| {
            let code = &codes[(mix(seed ^ i as u64) % codes.len() as u64) as usize];
            get(http.clone(), format!("{publisher}/v1/nav/schemes/{code}"))
        }
    })
    .await;
    let cpu = cpu_before.until(&CpuSnapshot::take(SELF_LABEL));
    println!(
        "NAV reads GET /v1/nav/schemes/{{code}}: {} ok = {:.0}/s, errors {:?}; {}",
        reads.ok,
        reads.rate(),
        reads.errors_by_status,
        line(&reads.latencies)
    );
    print_cpu(&cpu, reads.wall.as_secs_f64());
    let lat = |r: &nivesh_loadtest::load::LoadResult| {
        let mut t = Tally {
            ok: r.ok,
            latencies: r.latencies.clone(),
            errors: r.errors_by_status.clone(),
        };
        t.finish();
        t.to_json(r.wall.as_secs_f64())
    };
    Ok(json!({
        "clients": clients,
        "seconds": seconds,
        "schemes": codes.len(),
        "reads": lat(&reads),
        "baseline_healthz": lat(&base),
        "ratio_reads_to_baseline": reads.rate() / base.rate(),
        "targets": {
            "reads_per_s_20000": at_least(20000.0, reads.rate()),
            "read_p99_ms_10": at_most(10.0, ms(pct(&reads.latencies, 0.99))),
        },
        "cpu_seconds_during_reads": cpu.to_json(),
        "cpu_phase_s": reads.wall.as_secs_f64(),
    }))
}

/// NAV day under load: orders at `--rate`/s (open loop) for the whole scenario; `--lead-s` after
/// they start the full AMFI file lands, and its publication is timed as nav-bench times it
/// (landing → every scheme seen on `nav.broadcast` and the last one readable with the file's
/// NAV); then it is uploaded `--reuploads` more times, `--gap-s` apart: each must be reported a
/// duplicate, and `nav.broadcast` must carry exactly one record per new NAV over the whole run.
async fn nav_day(fleet: &BenchFleet, bytes: &[u8]) -> Result<Value> {
    let rate: f64 = flag("--rate", 100.0)?;
    let reuploads: usize = flag("--reuploads", 5)?;
    let gap = Duration::from_secs_f64(flag("--gap-s", 10.0)?);
    let lead = Duration::from_secs_f64(flag("--lead-s", 5.0)?);
    let tail = Duration::from_secs(10);
    let drain = Duration::from_secs(flag("--drain-timeout-s", 600)?);
    let (parse_best, stats) = parse_only_best(bytes, 5)?;
    let (_, expected) = expected_navs(bytes)?;
    let before = subset(bytes, &ORDER_SCHEMES);
    let (_, published_before) = expected_navs(&before)?;
    let want: HashSet<String> = expected
        .keys()
        .filter(|c| !published_before.contains_key(*c))
        .cloned()
        .collect();
    let (raw_json, raw_rate) = raw_baseline().await?;
    let publisher = fleet.fleet.url("nav-publisher")?;
    for s in ["nav-calculator", "nav-publisher"] {
        wait_for_assignment(&fleet.fleet.url(s)?, s).await?;
    }
    let broadcasts = BroadcastWatcher::start(&fleet.bootstrap(), want.clone())?;
    let watcher = Arc::new(CompletionWatcher::start(&fleet.bootstrap(), "nav-day")?);
    let placer = OrderPlacer::new(fleet, &watcher, "nav-day").await?;
    // Long enough for the lead, a publication of up to 60 s, the re-uploads and a tail.
    let seconds = flag(
        "--seconds",
        (lead + Duration::from_secs(20) + gap * reuploads as u32 + tail).as_secs_f64(),
    )?;
    let plan = OpenLoop {
        rate,
        seconds,
        max_in_flight: flag("--max-in-flight", 256)?,
    };
    let cpu_before = CpuSnapshot::take(SELF_LABEL);
    let t0 = Instant::now();
    let load = tokio::spawn(open_loop(plan, move |i| placer.clone().place(i)));

    tokio::time::sleep(lead).await;
    let landed = Instant::now();
    let (status, report) = fleet.upload_nav_file(bytes.to_vec()).await?;
    let upload = landed.elapsed();
    // Done when every new NAV has been broadcast, or (the calculator may reject some NAVs of
    // the file: those are never broadcast) when none has come for 10 s: the clock stops at the
    // last one seen either way, and the missing ones are reported.
    let (all_seen_at, last_scheme, all_broadcast) = broadcasts
        .wait_settled(Duration::from_secs(300), Duration::from_secs(10))
        .await?;
    let broadcast = all_seen_at.saturating_duration_since(landed);
    read_back(
        &fleet.admin,
        &publisher,
        &last_scheme,
        expected.get(&last_scheme).map(String::as_str),
    )
    .await?;
    let readable = landed.elapsed();
    println!(
        "full AMFI file under load: upload {status} in {:.0} ms, every new NAV on nav.broadcast at {:.0} ms, the last ({last_scheme}) readable at {:.0} ms",
        ms(upload),
        ms(broadcast),
        ms(readable)
    );
    let mut again = Vec::new();
    for n in 1..=reuploads {
        tokio::time::sleep(gap).await;
        let t = Instant::now();
        let (status, report) = fleet.upload_nav_file(bytes.to_vec()).await?;
        let took = t.elapsed();
        let duplicate = report["duplicate"].as_bool() == Some(true);
        println!(
            "re-upload {n}: {status} duplicate={duplicate} in {:.0} ms",
            ms(took)
        );
        again.push(
            json!({ "status": status, "duplicate": duplicate, "ms": ms(took),
                            "at_s_after_first_upload": landed.elapsed().as_secs_f64() }),
        );
    }
    // Anything a re-upload might still publish has `tail` to show up.
    tokio::time::sleep(tail).await;
    let (records, per_scheme) = broadcasts.counts();
    broadcasts.stop()?;
    let twice: Vec<&String> = per_scheme
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| c)
        .take(10)
        .collect();
    let unexpected: Vec<&String> = per_scheme
        .keys()
        .filter(|c| !want.contains(*c))
        .take(10)
        .collect();
    let missing = want.iter().filter(|c| !per_scheme.contains_key(*c)).count();
    // Exactly one record per NAV that was published (a NAV the calculator rejected has none),
    // none for the NAVs published before the run, none from a re-upload.
    let exactly_once = records == per_scheme.len() && twice.is_empty() && unexpected.is_empty();
    println!(
        "nav.broadcast over the run: {records} records for {} new NAVs of the file ({} schemes more than once, {} unexpected, {missing} never broadcast): exactly one per published NAV = {exactly_once}",
        want.len(),
        twice.len(),
        unexpected.len()
    );
    let placed = load.await?;
    print_open_loop("orders during the NAV day", &placed);
    let done = watcher.wait(drain, Duration::from_secs(120)).await;
    let cpu = cpu_before.until(&CpuSnapshot::take(SELF_LABEL));
    done.print();
    done.spot_check(&fleet.admin, &fleet.order, 20).await?;
    let phase = done.span().max(placed.wall);
    print_cpu(&cpu, phase.as_secs_f64());
    if let Ok(w) = Arc::try_unwrap(watcher) {
        w.stop()?;
    }
    let publication_ms = ms(readable.max(broadcast));
    let parse_rows_per_s = stats.rows as f64 / parse_best.as_secs_f64();
    let pipeline_rows_per_s = stats.rows as f64 / (publication_ms / 1000.0);
    let all_duplicates = again.iter().all(|r| r["duplicate"] == true);
    Ok(json!({
        "navs_in_file": expected.len(),
        "published_before_the_run": published_before.keys().collect::<Vec<_>>(),
        "new_navs": want.len(),
        "publication_under_load": {
            "upload_status": status,
            "upload_report": report,
            "upload_ms": ms(upload),
            "last_broadcast_ms": ms(broadcast),
            "last_api_read_ms": ms(readable),
            "last_scheme": last_scheme,
            "every_new_nav_broadcast": all_broadcast,
            "landing_to_readable_and_broadcast_ms": publication_ms,
            "pipeline_rows_per_s": pipeline_rows_per_s,
        },
        "baseline_parse_only": { "best_ms": ms(parse_best), "rows": stats.rows, "rows_per_s": parse_rows_per_s },
        "ratio_pipeline_to_parse": pipeline_rows_per_s / parse_rows_per_s,
        "reuploads": again,
        "all_reuploads_duplicate": all_duplicates,
        "nav_broadcast": {
            "records": records,
            "schemes_more_than_once": twice,
            "unexpected_schemes": unexpected,
            "distinct_schemes": per_scheme.len(),
            "new_navs_never_broadcast": missing,
            "exactly_one_per_published_nav": exactly_once,
        },
        "orders": {
            "placement": placed.to_json(),
            "completion": done.to_json(Some((t0, placed.send_window, placed.achieved_rate()))),
        },
        "raw_per_order_baseline": raw_json,
        "ratio_orders_accepted_to_raw_baseline": placed.achieved_rate() / raw_rate,
        "targets": {
            "publication_ms_1000": at_most(1000.0, publication_ms),
            "reuploads_publish_nothing": { "met": all_duplicates && exactly_once },
        },
        "cpu_seconds_during_run": cpu.to_json(),
        "cpu_phase_s": phase.as_secs_f64(),
    }))
}
