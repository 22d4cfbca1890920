//! Bringing the whole fleet up for a benchmark: every service as its own process over the dev
//! broker, the payment gateway simulator, Redis when it answers (unique key prefix), the business
//! clock at 2025-02-25 10:00 IST, the real AMFI file of that day uploaded (or a part of it), one
//! warm-up order per order scheme followed to COMPLETED, and every group consuming
//! `nav.broadcast` committed to its end, so the NAV day does not compete with what is measured.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use nivesh_fleet::fleet::{Fleet, FleetOptions, GatewaySim, bearer_client, redis_reachable};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::load::Outcome;

/// Mirae Asset Large & Midcap Fund - Direct Plan - Growth (NAV 144.782 on 2025-02-25).
pub const EQUITY: &str = "118834";
/// UTI Nifty 50 Index Fund - Growth Option - Direct (NAV 156.2072 on 2025-02-25).
pub const INDEX: &str = "120716";
/// The schemes benchmark orders buy.
pub const ORDER_SCHEMES: [&str; 2] = [EQUITY, INDEX];
/// Groups that consume `nav.broadcast`: the NAV day must be fully absorbed before the clock starts.
pub const NAV_CONSUMERS: &[&str] = &["order", "allotment", "portfolio"];
/// The seeded investors (config/investors.json, KYC VERIFIED) orders are placed for. INV0020
/// places the warm-up orders.
pub const INVESTORS: usize = 19;
/// The investor of the warm-up orders.
pub const WARM_UP_INVESTOR: &str = "INV0020";

/// `INV0001` … for `n` in 1..
pub fn investor_id(n: usize) -> String {
    format!("INV{n:04}")
}

/// 2025-02-25 10:00 IST, the business time the fleet starts at (the day of the real AMFI file).
pub fn business_start() -> chrono::DateTime<Utc> {
    let ist = FixedOffset::east_opt(19_800).expect("IST offset");
    let local = NaiveDate::from_ymd_opt(2025, 2, 25)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .expect("valid date");
    ist.from_local_datetime(&local)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

/// The real AMFI file of the business day.
pub fn amfi_file() -> Result<PathBuf> {
    nivesh_testkit::amfi_file().context("the real AMFI file is needed for this benchmark")
}

/// A running fleet for one benchmark run.
pub struct BenchFleet {
    pub fleet: Fleet,
    pub redis_used: bool,
    pub gateway: GatewaySim,
    /// An admin client (uploads NAV files, places the warm-up orders, reads any order).
    pub admin: reqwest::Client,
    /// The order service's base URL.
    pub order: String,
    _dir: tempfile::TempDir,
}

impl BenchFleet {
    /// Start the dev broker and every service (fresh stores in a temporary directory) with the
    /// gateway simulator answering after `latency_ms`, declining nothing.
    pub async fn start(redis_prefix: &str, latency_ms: u64, seed: u64) -> Result<BenchFleet> {
        let dir = tempfile::tempdir()?;
        let mut opts = FleetOptions::for_test(dir.path());
        let redis = nivesh_testkit::redis_url();
        let redis_used = redis_reachable(&redis);
        if redis_used {
            opts.redis_url = Some(redis);
            opts.env.push((
                "NIVESH__REDIS__KEY_PREFIX".into(),
                nivesh_testkit::unique(redis_prefix),
            ));
        } else {
            eprintln!("warning: Redis not reachable at {redis}; services use in-process caches");
        }
        opts.env.push(("RUST_LOG".into(), "warn".into()));
        opts.business_start = Some(business_start());
        let gateway = GatewaySim {
            latency_ms,
            failure_rate: 0.0,
            seed,
        };
        let mut fleet = Fleet::start_broker(opts).await?;
        if let Err(e) = fleet.start_everything(&gateway).await {
            fleet.stop().await.ok();
            return Err(e.context("starting the fleet"));
        }
        let clients = async {
            let admin = fleet.staff_client(&["admin"]).await?;
            let order = fleet.url("order")?;
            anyhow::Ok((admin, order))
        }
        .await;
        let (admin, order) = match clients {
            Ok(c) => c,
            Err(e) => {
                fleet.stop().await.ok();
                return Err(e);
            }
        };
        Ok(BenchFleet {
            fleet,
            redis_used,
            gateway,
            admin,
            order,
            _dir: dir,
        })
    }

    /// Stop every process (services drain, then the broker).
    pub async fn stop(self) -> Result<()> {
        self.fleet.stop().await
    }

    pub fn bootstrap(&self) -> String {
        self.fleet.bootstrap().to_string()
    }

    /// `{latency_ms, failure_rate, seed}` of the gateway simulator.
    pub fn gateway_json(&self) -> Value {
        json!({ "latency_ms": self.gateway.latency_ms, "failure_rate": self.gateway.failure_rate, "seed": self.gateway.seed })
    }

    /// Upload a NAV file through `POST /v1/nav/files?source=AMFI`. Returns the status and the
    /// ingestor's report.
    pub async fn upload_nav_file(&self, bytes: Vec<u8>) -> Result<(u16, Value)> {
        let resp = self
            .admin
            .post(format!(
                "{}/v1/nav/files?source=AMFI",
                self.fleet.url("nav-ingestor")?
            ))
            .body(bytes)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let report: Value = resp.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            bail!("NAV upload failed: {status} {report}");
        }
        Ok((status, report))
    }

    /// The NAV day before the measurement: upload `nav_file` (the real file, or part of it that
    /// holds the order schemes), place one warm-up order per order scheme as soon as the scheme
    /// is known and follow it to COMPLETED, then wait until every group consuming
    /// `nav.broadcast` has committed to its end. Returns the records on `nav.broadcast`.
    pub async fn nav_day(&self, nav_file: Vec<u8>) -> Result<i64> {
        let t = Instant::now();
        self.upload_nav_file(nav_file).await?;
        // Warm-up (not measured): every hop sees the schemes and opens its connections.
        for scheme in ORDER_SCHEMES {
            let id = place_when_known(&self.admin, &self.order, scheme).await?;
            wait_completed(&self.admin, &self.order, &id, Duration::from_secs(300)).await?;
        }
        println!(
            "warm-up orders completed {:.1} s after the NAV upload",
            t.elapsed().as_secs_f64()
        );
        let settled = wait_nav_day_absorbed(&self.bootstrap(), Duration::from_secs(300)).await?;
        println!(
            "NAV day absorbed by {NAV_CONSUMERS:?} ({settled} records on nav.broadcast) {:.1} s after the upload",
            t.elapsed().as_secs_f64()
        );
        Ok(settled)
    }

    /// One HTTP client per seeded investor `INV0001..=INV{n}`, each sending that investor's own
    /// token (the per-investor rate limit is per token, as for real investors).
    pub async fn investor_clients(&self, n: usize) -> Result<Vec<reqwest::Client>> {
        let mut clients = Vec::with_capacity(n);
        for k in 1..=n {
            clients.push(bearer_client(
                &self.fleet.investor_token(&investor_id(k)).await?,
                Duration::from_secs(30),
            )?);
        }
        Ok(clients)
    }
}

/// Place one purchase order (`POST /v1/orders`, one Idempotency-Key). `Ok(Outcome::Ok)` with
/// the order id on 201; any other status is logged once per status and returned as such.
pub async fn place_order(
    client: &reqwest::Client,
    order: &str,
    idempotency_key: &str,
    investor: &str,
    scheme: &str,
    amount: &str,
) -> Result<(Outcome, Option<String>)> {
    let body = json!({
        "investorId": investor,
        "kind": "PURCHASE",
        "schemeCode": scheme,
        "amount": amount,
        "paymentInstrument": "bench@okaxis",
    });
    let r = client
        .post(format!("{order}/v1/orders"))
        .header("Idempotency-Key", idempotency_key)
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if status != 201 {
        log_first_refusal(status, &v);
        return Ok((Outcome::Status(status), None));
    }
    let id = v["orderId"]
        .as_str()
        .context("201 without orderId")?
        .to_string();
    Ok((Outcome::Ok, Some(id)))
}

/// Print the body of the first refusal of each status (the rest are only counted).
fn log_first_refusal(status: u16, body: &Value) {
    static SEEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().expect("refusal log");
    if !seen.contains(&status) {
        seen.push(status);
        eprintln!("first order refused with {status}: {body}");
    }
}

/// A deterministic amount for order `i` (₹1,000.00 – ₹1,999.99).
pub fn amount_for(i: usize) -> String {
    format!("{}.{:02}", 1000 + i % 1000, i % 100)
}

/// Place one order for `scheme` under one Idempotency-Key, retrying while the order service does
/// not know the scheme yet (the NAV day is still being published) or answers 5xx / 429.
/// Returns the order id.
pub async fn place_when_known(
    client: &reqwest::Client,
    order: &str,
    scheme: &str,
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let key = nivesh_testkit::unique("warmup");
    loop {
        let r = client
            .post(format!("{order}/v1/orders"))
            .header("Idempotency-Key", &key)
            .json(
                &json!({"investorId": WARM_UP_INVESTOR, "kind": "PURCHASE", "schemeCode": scheme,
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
        let retryable = unknown_scheme || status.is_server_error() || status.as_u16() == 429;
        if !retryable || Instant::now() > deadline {
            bail!("warm-up order for {scheme} refused ({status}): {v}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Poll `GET /v1/orders/{id}` until COMPLETED (an error on FAILED or after `timeout`).
pub async fn wait_completed(
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
pub async fn wait_nav_day_absorbed(bootstrap: &str, timeout: Duration) -> Result<i64> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || -> Result<i64> {
        let topic = "nav.broadcast";
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", nivesh_testkit::unique("bench-probe"))
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
