//! A Cosmos DB 429 storm under load, through the Azure SDK's own test backends: every service
//! runs on `store.backend = "cosmos-emulator"` (the production Cosmos adapter over the SDK's
//! in-process emulator), and the storm is the SDK's fault injection, switched on for all
//! services at once by creating one file (`store.cosmos_emulator.storm_file`) and off by
//! removing it. Nothing of our own code is faked.
//!
//! [`run`] does the whole scenario on its own fleet: start the fleet from the emulator build
//! ([`emulator_bin_dir`]), upload the real AMFI file, place a steady stream of purchase orders
//! (each keeps its Idempotency-Key across retries), turn the storm on in the middle, wait for
//! quiescence and run the reconciliation check. [`storm_phase`] is the same without the fleet
//! set-up, for a caller that started the fleet itself with [`emulator_env`].
//!
//! Binaries: `CARGO_TARGET_DIR=~/.cache/nivesh/target-cosmos-emu cargo build --release
//! --workspace --bins --features nivesh-runtime/cosmos-emulator` (docs/storage.md).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use nivesh_fleet::fleet::{Fleet, FleetOptions, GatewaySim, redis_reachable};
use nivesh_fleet::reconcile::reconcile;

use crate::fleetrun::{place_when_known, wait_completed};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Mirae Asset Large & Midcap Fund - Direct Plan - Growth (NAV 144.782 on 2025-02-25).
pub const EQUITY: &str = "118834";
/// UTI Nifty 50 Index Fund - Growth Option - Direct (NAV 156.2072 on 2025-02-25).
pub const INDEX: &str = "120716";

/// Metrics scraped from every service's `/metrics`.
const INJECTED: &str = "nivesh_store_injected_faults_total";
const THROTTLED: &str = "nivesh_cosmos_throttled_total";
const ACTIVE: &str = "nivesh_store_storm_active";

/// The scenario's knobs.
#[derive(Debug, Clone)]
pub struct StormRun {
    /// Where the emulator build of the service binaries is ([`emulator_bin_dir`]).
    pub bin_dir: PathBuf,
    /// How long orders are placed.
    pub load: Duration,
    /// When the storm starts, from the first order.
    pub storm_at: Duration,
    /// How long it lasts.
    pub storm_for: Duration,
    /// Orders per second, spread over `clients` (each paced on its own schedule).
    pub orders_per_s: f64,
    pub clients: usize,
    /// Fraction of document requests answered 429 during the storm.
    pub storm_rate: f64,
    /// The retry-after each injected 429 advertises.
    pub storm_retry_after_ms: u64,
    /// Physical partitions per emulated container.
    pub partitions: u32,
    /// The payment gateway simulator's latency.
    pub gateway_latency_ms: u64,
    /// How long the fleet may take to settle after the last order.
    pub settle_timeout: Duration,
    /// Services kept on the embedded store (`NIVESH__STORE__BACKEND=embedded`). Default:
    /// `nav-ingestor` and `nav-publisher`, whose commits exceed Cosmos' 100-operation
    /// transactional batch limit (1,001 operations per ingest chunk; 107 in the publisher's
    /// scheme directory write on the real AMFI file): they cannot run on Cosmos today.
    pub embedded: Vec<String>,
}

impl Default for StormRun {
    fn default() -> Self {
        StormRun {
            bin_dir: emulator_bin_dir(),
            load: Duration::from_secs(60),
            storm_at: Duration::from_secs(20),
            storm_for: Duration::from_secs(20),
            orders_per_s: 20.0,
            clients: 16,
            storm_rate: 0.5,
            storm_retry_after_ms: 100,
            partitions: 1,
            gateway_latency_ms: 50,
            settle_timeout: Duration::from_secs(600),
            embedded: vec!["nav-ingestor".to_string(), "nav-publisher".to_string()],
        }
    }
}

/// `NIVESH_BIN_DIR` when set, else `~/.cache/nivesh/target-cosmos-emu/release` (the separate
/// target dir of the emulator build).
pub fn emulator_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NIVESH_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/nivesh/target-cosmos-emu/release")
}

/// The environment every service needs for this scenario (add it to `FleetOptions::env`):
/// the emulator backend and the storm switch at `storm_file`.
pub fn emulator_env(storm_file: &Path, run: &StormRun) -> Vec<(String, String)> {
    [
        ("NIVESH__STORE__BACKEND", "cosmos-emulator".to_string()),
        (
            "NIVESH__STORE__COSMOS_EMULATOR__STORM_FILE",
            storm_file.display().to_string(),
        ),
        (
            "NIVESH__STORE__COSMOS_EMULATOR__STORM_RATE",
            run.storm_rate.to_string(),
        ),
        (
            "NIVESH__STORE__COSMOS_EMULATOR__STORM_RETRY_AFTER_MS",
            run.storm_retry_after_ms.to_string(),
        ),
        (
            "NIVESH__STORE__COSMOS_EMULATOR__PARTITIONS",
            run.partitions.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub use crate::fleetrun::business_start;

/// The whole scenario on a fleet of its own (started and stopped here). The report's `ok` is
/// true when the storm happened (429s injected), every order was accepted, every service is
/// still up, and the reconciliation found nothing.
pub async fn run(run: &StormRun) -> Result<Value> {
    let file =
        nivesh_testkit::amfi_file().context("the real AMFI file is needed for this scenario")?;
    let tmp = tempfile::tempdir()?;
    let storm_file = tmp.path().join("cosmos-storm.on");
    let mut opts = FleetOptions::for_test(tmp.path());
    opts.bin_dir = run.bin_dir.clone();
    let redis = nivesh_testkit::redis_url();
    let redis_used = redis_reachable(&redis);
    if redis_used {
        opts.redis_url = Some(redis);
        opts.env.push((
            "NIVESH__REDIS__KEY_PREFIX".into(),
            nivesh_testkit::unique("cosmos-storm"),
        ));
    }
    opts.env.push(("RUST_LOG".into(), "warn".into()));
    opts.env.extend(emulator_env(&storm_file, run));
    for service in &run.embedded {
        opts.service_env
            .entry(service.clone())
            .or_default()
            .push(("NIVESH__STORE__BACKEND".into(), "embedded".into()));
    }
    opts.business_start = Some(business_start());
    let log_dir = opts.log_dir.clone();
    let sim = GatewaySim {
        latency_ms: run.gateway_latency_ms,
        failure_rate: 0.0,
        seed: 7,
    };
    let t = Instant::now();
    let mut fleet = Fleet::start_broker(opts).await?;
    if let Err(e) = fleet.start_everything(&sim).await {
        fleet.stop().await.ok();
        return Err(e.context(format!(
            "starting the fleet from {} (built with the cosmos-emulator feature?)",
            run.bin_dir.display()
        )));
    }
    let started_s = t.elapsed().as_secs_f64();
    println!("fleet up on cosmos-emulator in {started_s:.1} s");
    let outcome = async {
        let nav = load_nav_day(&fleet, &file).await?;
        let mut report = storm_phase(&fleet, &storm_file, run).await?;
        // The warm-up orders plus the load, each exactly once in the event log.
        let accepted = report["orders"]["accepted"].as_u64().unwrap_or(0);
        let placed = report["reconcile"]["ordersPlaced"].as_u64().unwrap_or(0);
        let all_placed_once = placed == accepted + nav.warmups as u64;
        report["orders"]["placed_in_log"] = json!(placed);
        report["orders"]["warmups"] = json!(nav.warmups);
        report["checks"]["every_order_in_log_once"] = json!(all_placed_once);
        report["ok"] = json!(report["ok"].as_bool().unwrap_or(false) && all_placed_once);
        report["nav_day"] = json!({ "warmups_completed_s": nav.seconds });
        Ok::<_, anyhow::Error>(report)
    }
    .await;
    let stopped = fleet.stop().await;
    let mut report = match outcome {
        Ok(r) => r,
        Err(e) => {
            return Err(e.context(format!(
                "service logs: {}",
                tmp.keep().join("logs").display()
            )));
        }
    };
    stopped?;
    report["fleet_start_s"] = json!(started_s);
    report["redis"] = json!(redis_used);
    report["bin_dir"] = json!(run.bin_dir.display().to_string());
    report["machine"] = crate::machine();
    if report["ok"] != json!(true) {
        // Keep the logs of a failed run.
        let kept = tmp.keep();
        report["logs"] = json!(kept.join("logs").display().to_string());
    } else {
        report["logs"] = json!(log_dir.display().to_string() + " (deleted)");
    }
    Ok(report)
}

struct NavDay {
    warmups: usize,
    seconds: f64,
}

/// Upload the real AMFI file and follow one warm-up order per scheme to COMPLETED (placed as
/// soon as the order service knows the scheme).
async fn load_nav_day(fleet: &Fleet, file: &Path) -> Result<NavDay> {
    let client = fleet.staff_client(&["admin"]).await?;
    let order = fleet.url("order")?;
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
    for scheme in [EQUITY, INDEX] {
        let id = place_when_known(&client, &order, scheme).await?;
        wait_completed(&client, &order, &id, Duration::from_secs(300)).await?;
    }
    let seconds = t.elapsed().as_secs_f64();
    println!("NAV day loaded, warm-up orders COMPLETED {seconds:.1} s after the upload");
    Ok(NavDay {
        warmups: 2,
        seconds,
    })
}

/// One phase of orders placed by the load, by when they were first sent.
#[derive(Default)]
struct PhaseCounts {
    accepted: AtomicUsize,
    /// Answers that made the client retry (5xx, 429, transport errors).
    retries: AtomicUsize,
    /// Sum of acceptance latencies (first send to 201/200), microseconds.
    latency_us: AtomicU64,
    max_latency_us: AtomicU64,
}

impl PhaseCounts {
    fn json(&self) -> Value {
        let accepted = self.accepted.load(Ordering::SeqCst);
        let mean_ms = if accepted == 0 {
            0.0
        } else {
            self.latency_us.load(Ordering::SeqCst) as f64 / accepted as f64 / 1000.0
        };
        json!({
            "accepted": accepted,
            "retries": self.retries.load(Ordering::SeqCst),
            "acceptance_latency_mean_ms": (mean_ms * 10.0).round() / 10.0,
            "acceptance_latency_max_ms": self.max_latency_us.load(Ordering::SeqCst) / 1000,
        })
    }
}

/// The storm under load on a running fleet whose services were started with
/// [`emulator_env`]`(storm_file, run)` and whose schemes [`EQUITY`] and [`INDEX`] are orderable:
/// orders for `run.load`, the storm file present from `run.storm_at` for `run.storm_for`, then
/// settle and reconcile. Removes the storm file on every path out. The report's `ok`: the storm
/// injected 429s, every order was accepted, every service is still up, reconciliation is clean.
pub async fn storm_phase(fleet: &Fleet, storm_file: &Path, run: &StormRun) -> Result<Value> {
    if run.clients == 0 || run.orders_per_s.is_nan() || run.orders_per_s <= 0.0 {
        bail!("clients and orders_per_s must be positive");
    }
    let _ = std::fs::remove_file(storm_file);
    let result = storm_phase_inner(fleet, storm_file, run).await;
    let _ = std::fs::remove_file(storm_file);
    result
}

async fn storm_phase_inner(fleet: &Fleet, storm_file: &Path, run: &StormRun) -> Result<Value> {
    let order = fleet.url("order")?;
    let admin = fleet.staff_token(&["admin"]).await?;
    let client = nivesh_fleet::fleet::bearer_client(&admin, Duration::from_secs(30))?;
    let upstreams = fleet.upstreams();
    let before = scrape(&upstreams).await;

    // Phases: 0 before the storm, 1 during, 2 after (by an order's first send).
    let phases: Arc<[PhaseCounts; 3]> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let ids: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let storm_on = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let run_id = nivesh_testkit::unique("storm");
    let next = Arc::new(AtomicUsize::new(0));
    let total = (run.load.as_secs_f64() * run.orders_per_s).round().max(1.0) as usize;
    let interval = Duration::from_secs_f64(1.0 / run.orders_per_s);
    let t0 = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for _ in 0..run.clients {
        let (client, order, phases, refused, ids, storm_on, run_id, next) = (
            client.clone(),
            order.clone(),
            phases.clone(),
            refused.clone(),
            ids.clone(),
            storm_on.clone(),
            run_id.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return;
                }
                // Order i is due at i * interval: a steady stream, whatever the answers take.
                tokio::time::sleep_until(t0 + interval * i as u32).await;
                let phase = &phases[storm_on.load(Ordering::SeqCst) as usize];
                let investor = format!("INV{:04}", 1 + i % 19);
                let scheme = if i % 3 == 0 { INDEX } else { EQUITY };
                let body = json!({"investorId": investor, "kind": "PURCHASE", "schemeCode": scheme,
                                  "amount": format!("{}.{:02}", 1000 + i % 1000, i % 100),
                                  "paymentInstrument": "storm@okaxis"});
                // The same key on every retry, as a real client does.
                let key = format!("{run_id}-{i:06}");
                let sent = Instant::now();
                let deadline = sent + Duration::from_secs(300);
                loop {
                    let answer = client
                        .post(format!("{order}/v1/orders"))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = answer {
                        let status = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if status == 201 || status == 200 {
                            let us = sent.elapsed().as_micros() as u64;
                            phase.accepted.fetch_add(1, Ordering::SeqCst);
                            phase.latency_us.fetch_add(us, Ordering::SeqCst);
                            phase.max_latency_us.fetch_max(us, Ordering::SeqCst);
                            if let Some(id) = v["orderId"].as_str() {
                                ids.lock().await.insert(id.to_string());
                            }
                            break;
                        }
                        if status < 500 && status != 429 {
                            refused
                                .lock()
                                .await
                                .push(format!("order {i} refused ({status}): {v}"));
                            break;
                        }
                    }
                    phase.retries.fetch_add(1, Ordering::SeqCst);
                    if Instant::now() > deadline {
                        refused
                            .lock()
                            .await
                            .push(format!("order {i} not accepted within 300 s"));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }

    // The storm: the file exists from storm_at to storm_at + storm_for.
    tokio::time::sleep_until(t0 + run.storm_at).await;
    std::fs::write(storm_file, b"429 storm\n").context("creating the storm file")?;
    storm_on.store(1, Ordering::SeqCst);
    let storm_started = t0.elapsed();
    println!(
        "storm ON at {:.1} s ({} rate {}, retry-after {} ms)",
        storm_started.as_secs_f64(),
        storm_file.display(),
        run.storm_rate,
        run.storm_retry_after_ms
    );
    // Proof the switch took: every service reports the storm active within a few polls.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = scrape(&upstreams).await;
    tokio::time::sleep_until(t0 + run.storm_at + run.storm_for).await;
    std::fs::remove_file(storm_file).context("removing the storm file")?;
    storm_on.store(2, Ordering::SeqCst);
    let storm_ended = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_storm = scrape(&upstreams).await;
    println!(
        "storm OFF at {:.1} s; 429s injected so far: {}",
        storm_ended.as_secs_f64(),
        sum_metric(&after_storm, INJECTED) - sum_metric(&before, INJECTED)
    );
    for w in workers {
        w.await.context("an order client panicked")?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    let accepted: usize = phases
        .iter()
        .map(|p| p.accepted.load(Ordering::SeqCst))
        .sum();
    println!("load done: {accepted} of {total} orders accepted in {load_s:.1} s");

    // Quiescence: reconcile until clean or the settle timeout.
    let base = ingress(fleet).await?;
    let t_settle = Instant::now();
    let report = loop {
        let report = reconcile(fleet.bootstrap(), &base, &admin).await?;
        if report.ok() || t_settle.elapsed() > run.settle_timeout {
            break report;
        }
        println!(
            "  settling: {} not terminal, statuses {:?}",
            report.not_terminal.len(),
            report.status_counts
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let settle_s = t_settle.elapsed().as_secs_f64();
    let end = scrape(&upstreams).await;
    let alive = alive(&upstreams).await;

    let ids = ids.lock().await.clone();
    let refused = refused.lock().await.clone();
    let per_service: BTreeMap<String, Value> = upstreams
        .keys()
        .map(|name| {
            let delta = |m: &BTreeMap<String, String>, metric: &str| {
                metric_of(m.get(name), metric) - metric_of(before.get(name), metric)
            };
            (
                name.clone(),
                json!({
                    "injected_429": delta(&end, INJECTED),
                    "injected_429_during_storm_window": delta(&after_storm, INJECTED),
                    "throttled_seen_by_adapter": delta(&end, THROTTLED),
                    "storm_active_during": metric_of(during.get(name), ACTIVE),
                    "storm_active_after": metric_of(end.get(name), ACTIVE),
                    "alive_at_end": alive.get(name).copied().unwrap_or(false),
                }),
            )
        })
        .collect();
    let injected_total = sum_metric(&end, INJECTED) - sum_metric(&before, INJECTED);
    let switched_on_everywhere = upstreams
        .keys()
        .all(|n| metric_of(during.get(n), ACTIVE) == 1.0);
    let switched_off_everywhere = upstreams
        .keys()
        .all(|n| metric_of(end.get(n), ACTIVE) == 0.0);
    let all_alive = alive.values().all(|a| *a);
    let all_accepted = refused.is_empty() && accepted == total && ids.len() == total;
    let checks = json!({
        "storm_injected_429s": injected_total > 0.0,
        "storm_switched_on_in_every_service": switched_on_everywhere,
        "storm_switched_off_in_every_service": switched_off_everywhere,
        "every_order_accepted_once": all_accepted,
        "every_service_alive": all_alive,
        "reconcile_clean": report.ok(),
    });
    let ok = checks
        .as_object()
        .is_some_and(|c| c.values().all(|v| v == &json!(true)));
    println!(
        "settled in {settle_s:.1} s: reconcile {}; {injected_total} 429s injected; ok = {ok}",
        if report.ok() { "clean" } else { "NOT clean" }
    );
    Ok(json!({
        "scenario": "cosmos-storm",
        "ok": ok,
        "checks": checks,
        "config": {
            "load_s": run.load.as_secs_f64(),
            "storm_at_s": run.storm_at.as_secs_f64(),
            "storm_for_s": run.storm_for.as_secs_f64(),
            "orders_per_s": run.orders_per_s,
            "clients": run.clients,
            "storm_rate": run.storm_rate,
            "storm_retry_after_ms": run.storm_retry_after_ms,
            "partitions": run.partitions,
            "gateway_latency_ms": run.gateway_latency_ms,
            "embedded_services": run.embedded,
        },
        "storm": {
            "on_at_s": storm_started.as_secs_f64(),
            "off_at_s": storm_ended.as_secs_f64(),
            "injected_429_total": injected_total,
            "throttled_seen_by_adapters_total": sum_metric(&end, THROTTLED) - sum_metric(&before, THROTTLED),
            "per_service": per_service,
        },
        "orders": {
            "planned": total,
            "accepted": accepted,
            "distinct_order_ids": ids.len(),
            "refused": refused,
            "load_s": load_s,
            "before_storm": phases[0].json(),
            "during_storm": phases[1].json(),
            "after_storm": phases[2].json(),
        },
        "settle_s": settle_s,
        "reconcile": serde_json::to_value(&report)?,
    }))
}

/// Write a report as `loadtest/results/cosmos-storm-<time>.json`; returns the path.
pub fn write_results(report: &Value) -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "cosmos-storm-{}.json",
        Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::File::create(&path)?.write_all(serde_json::to_string_pretty(report)?.as_bytes())?;
    Ok(path)
}

/// The ingress (same routing table as production) on a free port, for the reconciliation.
async fn ingress(fleet: &Fleet) -> Result<String> {
    let app = nivesh_fleet::ingress::router(&fleet.upstreams());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

/// `/metrics` text of every service (missing when a service does not answer).
async fn scrape(upstreams: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let mut out = BTreeMap::new();
    for (name, url) in upstreams {
        if let Ok(r) = http.get(format!("{url}/metrics")).send().await
            && let Ok(text) = r.text().await
        {
            out.insert(name.clone(), text);
        }
    }
    out
}

/// Every service answering `/healthz`.
async fn alive(upstreams: &std::collections::HashMap<String, String>) -> BTreeMap<String, bool> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let mut out = BTreeMap::new();
    for (name, url) in upstreams {
        let ok = http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        out.insert(name.clone(), ok);
    }
    out
}

/// Sum of every sample of `metric` (all label sets) in a Prometheus text page.
fn metric_of(text: Option<&String>, metric: &str) -> f64 {
    let Some(text) = text else { return 0.0 };
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sum_metric(pages: &BTreeMap<String, String>, metric: &str) -> f64 {
    pages.values().map(|t| metric_of(Some(t), metric)).sum()
}
