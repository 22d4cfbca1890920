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
//!    one idempotency read, one durable write, one Kafka produce; `nivesh_loadtest::raw`).
//!
//! Also records the CPU time every fleet process used during the order phase (from /proc), so the
//! busiest process is in the results file. Writes `loadtest/results/order-bench-<time>.json`.
//!
//! `cargo run --release -p nivesh-loadtest --bin order-bench -- --orders 2000 --clients 32 [--latency-ms 50]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::Utc;
use nivesh_loadtest::completion::CompletionWatcher;
use nivesh_loadtest::cpu::CpuSnapshot;
use nivesh_loadtest::fleetrun::{
    BenchFleet, EQUITY, INDEX, INVESTORS, amfi_file, amount_for, business_start, investor_id,
    place_order,
};
use nivesh_loadtest::load::{Outcome, load};
use nivesh_loadtest::results::ResultsFile;
use nivesh_loadtest::stats::{lat_json, ms, pct};
use nivesh_loadtest::{flag, raw};
use serde_json::{Value, json};

struct Args {
    orders: usize,
    clients: usize,
    latency_ms: u64,
    seed: u64,
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

async fn run(args: Args) -> Result<()> {
    let results = ResultsFile::begin("order-bench");
    let file = amfi_file()?;
    let fleet = BenchFleet::start("order-bench", args.latency_ms, args.seed).await?;
    let outcome = bench(&fleet, &args, &file).await;
    let redis_used = fleet.redis_used;
    let stopped = fleet.stop().await;
    let mut report = outcome?;
    stopped?;
    report["redis"] = json!(redis_used);
    results.write(report)?;
    Ok(())
}

async fn bench(fleet: &BenchFleet, args: &Args, file: &std::path::Path) -> Result<Value> {
    let order = fleet.order.clone();
    // An admin token (every request carries it; each service verifies it, ES256, per request):
    // uploads the NAV day and places/reads orders for all 19 investors.
    let client = fleet.admin.clone();

    // The NAV day: the real file through the ingestor; the order service learns schemes from
    // nav.broadcast. Warm-up orders, then the NAV day absorbed by every consumer.
    fleet.nav_day(std::fs::read(file)?).await?;

    // (3) Raw baseline: the same clients, the same number of requests, GET /healthz.
    let healthz = format!("{order}/healthz");
    let base = load(args.orders, args.clients, {
        let (client, healthz) = (client.clone(), healthz.clone());
        move |_| {
            let (client, healthz) = (client.clone(), healthz.clone());
            async move {
                let r = client.get(&healthz).send().await?;
                let status = r.status();
                r.bytes().await?;
                Ok(Outcome::expect(status.as_u16(), |_| status.is_success()))
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
    let watcher = Arc::new(CompletionWatcher::start(&fleet.bootstrap(), "order-bench")?);

    // (1) Acceptance: C clients share N orders, each with its own Idempotency-Key. Each order is
    // placed with its investor's own token, as investors do (the per-caller rate limit is per
    // investor; one staff token for all 19 would be throttled as one caller).
    let investor_clients = Arc::new(fleet.investor_clients(INVESTORS).await?);
    let run_id = nivesh_testkit::unique("ob");
    let cpu_before = CpuSnapshot::take("order-bench (load generator)");
    let acc = load(args.orders, args.clients, {
        let (clients, order, run_id, watcher) = (
            investor_clients.clone(),
            order.clone(),
            run_id.clone(),
            watcher.clone(),
        );
        move |i| {
            let (client, order, run_id, watcher) = (
                clients[i % INVESTORS].clone(),
                order.clone(),
                run_id.clone(),
                watcher.clone(),
            );
            async move {
                let scheme = if i % 3 == 0 { INDEX } else { EQUITY };
                let sent = Instant::now();
                let (outcome, id) = place_order(
                    &client,
                    &order,
                    &format!("{run_id}-{i:06}"),
                    &investor_id(1 + i % INVESTORS),
                    scheme,
                    &amount_for(i),
                )
                .await?;
                match (outcome, id) {
                    (Outcome::Ok, Some(id)) => watcher.placed(id, sent),
                    (Outcome::Status(s), _) => eprintln!("order {i} refused ({s})"),
                    _ => {}
                }
                Ok(outcome)
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
        bail!("no order accepted");
    }

    // (2) End-to-end: until every accepted order is COMPLETED (or FAILED) on the event log.
    let done = watcher
        .wait(Duration::from_secs(900), Duration::from_secs(900))
        .await;
    let cpu = cpu_before.until(&CpuSnapshot::take("order-bench (load generator)"));
    if let Ok(w) = Arc::try_unwrap(watcher) {
        w.stop()?;
    }
    if !done.lost.is_empty() {
        bail!(
            "only {} completed and {} failed of {} accepted orders after 900 s",
            done.completed.len(),
            done.failed.len(),
            done.placed
        );
    }
    done.spot_check(&client, &order, 20).await?;
    let e2e_wall = done.span();
    let e2e_lat = &done.latencies;
    let e2e_rate = done.completed.len() as f64 / e2e_wall.as_secs_f64();
    println!(
        "end-to-end: {} COMPLETED ({} FAILED) {:.2} s after the first POST = {:.0} completed orders/s; per-order POST→COMPLETED p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        done.completed.len(),
        done.failed.len(),
        e2e_wall.as_secs_f64(),
        e2e_rate,
        ms(pct(e2e_lat, 0.50)),
        ms(pct(e2e_lat, 0.95)),
        ms(pct(e2e_lat, 0.99)),
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
    let phase_s = e2e_wall.as_secs_f64();
    println!("CPU during the order phase ({phase_s:.1} s wall, 100 % = one core):");
    cpu.print(phase_s);

    Ok(json!({
        "benchmark": "order-bench",
        "when": Utc::now(),
        "orders": args.orders,
        "clients": args.clients,
        "gateway_sim": fleet.gateway_json(),
        "business_start": business_start(),
        "schemes": [EQUITY, INDEX],
        "baseline_healthz": {
            "requests": args.orders, "ok": base.ok, "errors": base.errors,
            "wall_s": base.wall.as_secs_f64(), "req_per_s": base_rate, "latency": lat_json(&base.latencies),
        },
        "acceptance": {
            "accepted_201": acc.ok, "refused": acc.refused, "errors": acc.errors,
            "wall_s": acc.wall.as_secs_f64(), "orders_per_s": acc_rate, "latency": lat_json(&acc.latencies),
        },
        "end_to_end": {
            "completed": done.completed.len(), "failed": done.failed.len(),
            "first_post_to_last_completed_s": phase_s, "completed_orders_per_s": e2e_rate,
            "post_to_completed_latency": lat_json(e2e_lat),
        },
        "raw_per_order_baseline": raw::to_json(&raw, args.orders),
        "ratio_acceptance_to_raw_baseline": acc_rate / raw_rate,
        "ratio_end_to_end_to_raw_baseline": e2e_rate / raw_rate,
        "ratio_acceptance_to_baseline": acc_rate / base_rate,
        "ratio_end_to_end_to_baseline": e2e_rate / base_rate,
        "cpu_seconds_during_order_phase": cpu.to_json(),
    }))
}
