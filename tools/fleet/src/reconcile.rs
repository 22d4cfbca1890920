//! The reconciliation check: run any time against a running fleet (`nivesh reconcile`), and by
//! the chaos test after it has killed services mid-flow.
//!
//! It trusts nobody's summary: it reads the event log itself (`order.placed` and
//! `transaction.completed`, every partition from the beginning to the current end) and compares:
//!
//! - **duplicates**: one transaction id must come from one event id only (an outbox republish
//!   repeats the SAME event id, which consumers dedupe; a second event id for the same
//!   transaction would be a double allotment), and an order has at most one transaction per leg;
//! - **losses**: every placed order is terminal (`COMPLETED` or `FAILED`) in the order service,
//!   and every order with a completed transaction is not `FAILED`;
//! - **holdings**: for every investor, each scheme's units in the portfolio service equal the
//!   signed sum of that investor's completed transactions in the scheme (purchases and switch-ins
//!   add, redemptions and switch-outs subtract), exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nivesh_events::{AvroCodec, Event, OrderPlaced, TransactionCompleted, leg};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rust_decimal::Decimal;
use serde::Serialize;

/// What the check found. `ok()` is true when every list is empty.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub orders_placed: usize,
    pub transactions: usize,
    pub investors_checked: usize,
    pub holdings_checked: usize,
    pub status_counts: BTreeMap<String, usize>,
    /// Orders not yet terminal (a loss if the fleet is quiet).
    pub not_terminal: Vec<String>,
    /// A transaction id produced by more than one event id, or an order with two transactions
    /// for the same leg.
    pub duplicates: Vec<String>,
    /// Holdings that differ from the sum of completed transactions.
    pub mismatches: Vec<String>,
    /// An order FAILED although units were allotted for it.
    pub inconsistent: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.not_terminal.is_empty()
            && self.duplicates.is_empty()
            && self.mismatches.is_empty()
            && self.inconsistent.is_empty()
    }
}

/// Every event of type `E` on `topic` up to its current end, deduplicated by event id (the log
/// may legitimately hold an outbox republish of the same event).
pub async fn read_events<E: Event>(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<E>> {
    let payloads = read_to_end(bootstrap, topic, timeout)?;
    let codec = AvroCodec::single_object();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in payloads {
        let e: E = codec
            .decode(&p)
            .await
            .with_context(|| format!("decoding an event on {topic}"))?;
        if seen.insert(e.meta().event_id) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Raw payloads of every partition of `topic`, from the beginning to the high watermark as of now.
pub fn read_to_end(bootstrap: &str, topic: &str, timeout: Duration) -> Result<Vec<Vec<u8>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reconcile-{}", uuid::Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a reader")?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("metadata of {topic}"))?;
    let t = md
        .topics()
        .first()
        .ok_or_else(|| anyhow!("no metadata for {topic}"))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .with_context(|| format!("watermarks of {topic}[{}]", p.id()))?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
            remaining.insert(p.id(), high);
        }
    }
    if remaining.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(anyhow!(
                "could not read {topic} to its end in {timeout:?}; partitions left: {remaining:?}"
            ));
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            if remaining
                .get(&m.partition())
                .is_some_and(|high| m.offset() + 1 >= *high)
            {
                remaining.remove(&m.partition());
            }
            out.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    Ok(out)
}

/// GET that honours rate limiting: a 429 is retried after its `Retry-After` (the check reads
/// every order with one token, which its per-caller bucket does not allow at full speed).
async fn get_patiently(http: &reqwest::Client, url: &str) -> Result<reqwest::Response> {
    let mut attempts = 0;
    loop {
        let resp = http.get(url).send().await?;
        attempts += 1;
        if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || attempts >= 60 {
            return Ok(resp);
        }
        let wait = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 10);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

fn signed_units(t: &TransactionCompleted) -> Decimal {
    match t.leg.as_str() {
        leg::REDEMPTION | leg::SWITCH_OUT => -t.units,
        _ => t.units,
    }
}

/// Run the check. `base` is the public entry point (or any URL routing `/v1/orders` to order and
/// `/v1/investors/*/portfolio` to portfolio); `token` a bearer token allowed to read every
/// investor's orders and portfolio (admin: `Fleet::staff_token(&["admin"])`, `nivesh token
/// --role admin`).
pub async fn reconcile(bootstrap: &str, base: &str, token: &str) -> Result<Report> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| anyhow!("bearer token is not a valid header value: {e}"))?;
    bearer.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .default_headers(headers)
        .build()?;
    let timeout = Duration::from_secs(120);
    let placed: Vec<OrderPlaced> = read_events(bootstrap, "order.placed", timeout).await?;
    let txns: Vec<TransactionCompleted> =
        read_events(bootstrap, "transaction.completed", timeout).await?;
    let mut report = Report {
        transactions: txns.len(),
        ..Report::default()
    };

    // Duplicates: one event id per transaction id; one transaction per (order, leg).
    let mut by_txn: BTreeMap<&str, BTreeSet<uuid::Uuid>> = BTreeMap::new();
    let mut by_leg: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for t in &txns {
        by_txn
            .entry(&t.transaction_id)
            .or_default()
            .insert(t.meta.event_id);
        by_leg
            .entry((&t.order_id, &t.leg))
            .or_default()
            .insert(&t.transaction_id);
    }
    for (id, events) in &by_txn {
        if events.len() > 1 {
            report.duplicates.push(format!(
                "transaction {id} emitted by {} events",
                events.len()
            ));
        }
    }
    for ((order, leg), ids) in &by_leg {
        if ids.len() > 1 {
            report.duplicates.push(format!(
                "order {order} has {} {leg} transactions",
                ids.len()
            ));
        }
    }

    // Orders: every placed order (one per order id) must be terminal.
    let mut orders: BTreeMap<&str, &OrderPlaced> = BTreeMap::new();
    for o in &placed {
        if orders.insert(&o.order_id, o).is_some() {
            report.duplicates.push(format!(
                "order {} placed by more than one event",
                o.order_id
            ));
        }
    }
    report.orders_placed = orders.len();
    let allotted: BTreeSet<&str> = txns.iter().map(|t| t.order_id.as_str()).collect();
    for id in orders.keys() {
        let resp = get_patiently(&http, &format!("{base}/v1/orders/{id}")).await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let s = body["status"].as_str().unwrap_or("UNKNOWN").to_string();
        if !status.is_success() {
            report
                .not_terminal
                .push(format!("order {id}: GET answered {status}"));
            continue;
        }
        *report.status_counts.entry(s.clone()).or_default() += 1;
        if s != "COMPLETED" && s != "FAILED" {
            report.not_terminal.push(format!("order {id}: {s}"));
        }
        if s == "FAILED" && allotted.contains(id) {
            report
                .inconsistent
                .push(format!("order {id} is FAILED but has allotted units"));
        }
    }

    // Holdings = sum of completed transactions, per investor and scheme.
    let mut expected: BTreeMap<&str, BTreeMap<&str, Decimal>> = BTreeMap::new();
    for t in &txns {
        *expected
            .entry(&t.investor_id)
            .or_default()
            .entry(&t.scheme_code)
            .or_default() += signed_units(t);
    }
    for (investor, schemes) in &expected {
        let resp =
            get_patiently(&http, &format!("{base}/v1/investors/{investor}/portfolio")).await?;
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let mut held: BTreeMap<String, Decimal> = BTreeMap::new();
        for h in body["holdings"].as_array().into_iter().flatten() {
            let scheme = h["schemeCode"].as_str().unwrap_or_default().to_string();
            let units: Decimal = h["units"]
                .as_str()
                .and_then(|u| u.parse().ok())
                .unwrap_or_default();
            *held.entry(scheme).or_default() += units;
        }
        report.investors_checked += 1;
        for (scheme, units) in schemes {
            report.holdings_checked += 1;
            let got = held.remove(*scheme).unwrap_or_default();
            if got != *units {
                report.mismatches.push(format!(
                    "{investor} {scheme}: portfolio {got} units, transactions sum to {units}"
                ));
            }
        }
        for (scheme, units) in held {
            if !units.is_zero() {
                report.mismatches.push(format!(
                    "{investor} {scheme}: portfolio holds {units} units with no transactions"
                ));
            }
        }
    }
    Ok(report)
}
