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
//!   add, redemptions and switch-outs subtract), exactly;
//! - **dead letters**: every record of every consumer group's dead-letter topic (`{group}.dlq`,
//!   from the catalog) is read from the beginning and must carry the reason headers the bus
//!   writes (`nivesh-dlq-reason`, `nivesh-error`, `nivesh-original-topic`); counts by topic,
//!   reason and error are reported, a record without a reason is an anomaly.
//!
//! With [`Expectations`] (the chaos suite, `nivesh reconcile --nav-file`) it also checks what only
//! the caller knows:
//!
//! - **accepted but lost**: every order id a client got a 201 for exists and is terminal;
//! - **lost NAVs**: every numeric NAV row of an uploaded file is readable through
//!   `GET /v1/nav/schemes/{code}` with the file's exact NAV and date (for the latest date of the
//!   code), and the history of that date holds exactly one entry, with that NAV. All rows, not a
//!   sample, read concurrently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use nivesh_bus::headers;
use nivesh_events::{AvroCodec, Event, OrderPlaced, TransactionCompleted, leg};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
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
    /// Order ids the clients were told were accepted ([`Expectations::accepted_orders`]).
    pub accepted_checked: usize,
    /// Accepted orders missing from the event log, unreadable, or not terminal.
    pub accepted_lost: Vec<String>,
    /// With [`Expectations::only_accepted_orders`]: orders on the log no client was told about
    /// (one Idempotency-Key placed twice would show here).
    pub unaccepted_placed: Vec<String>,
    /// NAV rows of the uploaded file checked ([`Expectations::navs`]), and schemes among them.
    pub navs_checked: usize,
    pub nav_schemes_checked: usize,
    /// Rows dated after the business date, checked to be absent from that date's history.
    pub navs_future_dated_checked: usize,
    /// NAV rows not readable exactly (latest or history).
    pub lost_navs: Vec<String>,
    /// Dead-letter topics read (every consumer group's `{group}.dlq`).
    pub dead_letter_topics_checked: usize,
    /// Dead-lettered records: topic -> reason -> count.
    pub dead_letters: BTreeMap<String, BTreeMap<String, usize>>,
    /// Dead-lettered records by `topic | reason | original topic | error` (the error cut at 160
    /// characters): what explains each of them.
    pub dead_letter_explanations: BTreeMap<String, usize>,
    /// Dead-lettered records without the bus's reason headers.
    pub unexplained_dead_letters: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.anomalies() == 0
    }

    /// Every finding, counted once per list entry.
    pub fn anomalies(&self) -> usize {
        self.not_terminal.len()
            + self.duplicates.len()
            + self.mismatches.len()
            + self.inconsistent.len()
            + self.accepted_lost.len()
            + self.unaccepted_placed.len()
            + self.lost_navs.len()
            + self.unexplained_dead_letters.len()
    }
}

/// What the caller knows that the event log cannot tell: the orders it was told were accepted,
/// the NAV file it uploaded.
#[derive(Debug, Default, Clone)]
pub struct Expectations {
    /// Order ids answered 201 (or 200, an idempotent replay) to a client.
    pub accepted_orders: Vec<String>,
    /// The caller placed every order of the fleet and got an answer for each: an order on
    /// `order.placed` that is not in `accepted_orders` is a finding.
    pub only_accepted_orders: bool,
    /// Every numeric NAV row of the uploaded file(s) ([`expected_navs`]).
    pub navs: Vec<ExpectedNav>,
    /// The fleet's business date (IST) when the file was validated: rows dated after it are
    /// rejected by design (`FUTURE_DATE`, in the file report) and must NOT be published; `None`:
    /// every row must be.
    pub nav_business_date: Option<NaiveDate>,
}

/// One NAV row of an uploaded file, as the platform must publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedNav {
    pub scheme_code: String,
    /// Exactly as in the file (a trailing `.` dropped).
    pub nav: String,
    pub date: NaiveDate,
}

/// Every row of an AMFI NAVAll file with a positive numeric NAV and ISINs the platform accepts
/// (`-`/empty or 12 alphanumerics ending in a digit): the rows the platform must publish. N.A.
/// and zero NAVs and malformed ISINs are rejected into the file report by design.
pub fn expected_navs(text: &str) -> Vec<ExpectedNav> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim_end_matches('\r').split(';').collect();
        if f.len() != 6 || f[0] == "Scheme Code" {
            continue;
        }
        let nav = f[4].trim();
        let nav = nav.strip_suffix('.').unwrap_or(nav);
        let Ok(value) = nav.parse::<Decimal>() else {
            continue;
        };
        if value <= Decimal::ZERO
            || f[1].contains("Redeemed")
            || !accepted_isin(f[1])
            || !accepted_isin(f[2])
        {
            continue;
        }
        let Ok(date) = NaiveDate::parse_from_str(f[5].trim(), "%d-%b-%Y") else {
            continue;
        };
        out.push(ExpectedNav {
            scheme_code: f[0].trim().to_string(),
            nav: nav.to_string(),
            date,
        });
    }
    out
}

fn accepted_isin(s: &str) -> bool {
    let s = s.trim();
    s.is_empty()
        || s == "-"
        || (s.len() == 12
            && s.chars().all(|c| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_digit()))
}

/// Run `f` on every item, at most `width` at once; results in completion order.
async fn concurrently<T, R, F, Fut>(items: Vec<T>, width: usize, f: F) -> Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if set.len() >= width.max(1)
            && let Some(r) = set.join_next().await
        {
            out.push(r.context("a check task failed")??);
        }
        set.spawn(f(item));
    }
    while let Some(r) = set.join_next().await {
        out.push(r.context("a check task failed")??);
    }
    Ok(out)
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
    Ok(read_records_to_end(bootstrap, topic, timeout)?
        .into_iter()
        .map(|r| r.payload)
        .collect())
}

/// A record as read back from a topic.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    /// A header's value as text (the last one of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Every record (payload and headers) of every partition of `topic`, from the beginning to the
/// high watermark as of now.
pub fn read_records_to_end(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<RawRecord>> {
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
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(RawRecord {
                partition: m.partition(),
                offset: m.offset(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
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

/// Run the check. `base` is the public entry point (or any URL routing `/v1/orders` to order,
/// `/v1/investors/*/portfolio` to portfolio and `/v1/nav/*` to nav-publisher); `token` a bearer
/// token allowed to read every investor's orders and portfolio (admin:
/// `Fleet::staff_token(&["admin"])`, `nivesh token --role admin`).
pub async fn reconcile(bootstrap: &str, base: &str, token: &str) -> Result<Report> {
    reconcile_with(bootstrap, base, token, &Expectations::default()).await
}

/// How many reads the check runs at once.
const WIDTH: usize = 32;

/// [`reconcile`] plus the caller's [`Expectations`] (accepted orders, NAV rows).
pub async fn reconcile_with(
    bootstrap: &str,
    base: &str,
    token: &str,
    expect: &Expectations,
) -> Result<Report> {
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

    // Orders: every placed order (one per order id) and every accepted one must be terminal.
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
    let accepted: BTreeSet<&str> = expect.accepted_orders.iter().map(String::as_str).collect();
    report.accepted_checked = accepted.len();
    for id in &accepted {
        if !orders.contains_key(id) {
            report.accepted_lost.push(format!(
                "order {id}: accepted (201) but never on order.placed"
            ));
        }
    }
    if expect.only_accepted_orders {
        for id in orders.keys() {
            if !accepted.contains(id) {
                report.unaccepted_placed.push(format!(
                    "order {id}: on order.placed but never acknowledged to a client"
                ));
            }
        }
    }
    let to_read: Vec<String> = orders
        .keys()
        .chain(accepted.iter().filter(|id| !orders.contains_key(*id)))
        .map(|id| id.to_string())
        .collect();
    let statuses = concurrently(to_read, WIDTH, |id| {
        let (http, url) = (http.clone(), format!("{base}/v1/orders/{id}"));
        async move {
            let resp = get_patiently(&http, &url).await?;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            let s = body["status"].as_str().unwrap_or("UNKNOWN").to_string();
            Ok((id, status, s))
        }
    })
    .await?;
    let allotted: BTreeSet<&str> = txns.iter().map(|t| t.order_id.as_str()).collect();
    let mut statuses = statuses;
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, status, s) in statuses {
        let on_log = orders.contains_key(id.as_str());
        let was_accepted = accepted.contains(id.as_str());
        if !status.is_success() {
            if on_log {
                report
                    .not_terminal
                    .push(format!("order {id}: GET answered {status}"));
            }
            if was_accepted {
                report.accepted_lost.push(format!(
                    "order {id}: accepted (201) but GET answered {status}"
                ));
            }
            continue;
        }
        if !on_log {
            continue;
        }
        *report.status_counts.entry(s.clone()).or_default() += 1;
        let terminal = s == "COMPLETED" || s == "FAILED";
        if !terminal {
            report.not_terminal.push(format!("order {id}: {s}"));
            if was_accepted {
                report
                    .accepted_lost
                    .push(format!("order {id}: accepted (201) but still {s}"));
            }
        }
        if s == "FAILED" && allotted.contains(id.as_str()) {
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

    check_dead_letters(bootstrap, timeout, &mut report)?;
    if !expect.navs.is_empty() {
        check_navs(base, &expect.navs, expect.nav_business_date, &mut report).await?;
    }
    Ok(report)
}

/// Every record of every group's dead-letter topic must say why it is there.
fn check_dead_letters(bootstrap: &str, timeout: Duration, report: &mut Report) -> Result<()> {
    for group in nivesh_bus::catalog::GROUPS {
        let topic = nivesh_bus::catalog::dead_letter_topic(group.group);
        let records = read_records_to_end(bootstrap, &topic, timeout)?;
        report.dead_letter_topics_checked += 1;
        for r in records {
            let reason = r.header(headers::DLQ_REASON).map(str::trim);
            let error = r.header(headers::ERROR).map(str::trim);
            let original = r.header(headers::ORIGINAL_TOPIC).map(str::trim);
            let explained = matches!(
                reason,
                Some(headers::REASON_PERMANENT | headers::REASON_RETRIES_EXHAUSTED)
            ) && error.is_some_and(|e| !e.is_empty())
                && original.is_some_and(|o| !o.is_empty());
            let reason_label = reason.unwrap_or("(none)").to_string();
            *report
                .dead_letters
                .entry(topic.clone())
                .or_default()
                .entry(reason_label.clone())
                .or_default() += 1;
            if explained {
                let error: String = error.unwrap_or_default().chars().take(160).collect();
                *report
                    .dead_letter_explanations
                    .entry(format!(
                        "{topic} | {reason_label} | {} | {error}",
                        original.unwrap_or_default()
                    ))
                    .or_default() += 1;
            } else {
                report.unexplained_dead_letters.push(format!(
                    "{topic}[{}]@{}: reason {reason:?}, error {error:?}, original topic {original:?}",
                    r.partition, r.offset
                ));
            }
        }
    }
    Ok(())
}

/// Every expected NAV readable exactly: the latest NAV of each scheme (its latest date in the
/// file) and, for every row, that date's history entry (exactly one); a row dated after
/// `business_date` must have no history entry (rejected as future-dated). NAV reads are public:
/// no token, so the staff rate-limit bucket does not throttle the check.
async fn check_navs(
    base: &str,
    navs: &[ExpectedNav],
    business_date: Option<NaiveDate>,
    report: &mut Report,
) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let mut latest: BTreeMap<&str, &ExpectedNav> = BTreeMap::new();
    let mut rows: BTreeSet<(&str, NaiveDate, &str)> = BTreeSet::new();
    let mut future: BTreeSet<(&str, NaiveDate, &str)> = BTreeSet::new();
    for n in navs {
        if business_date.is_some_and(|d| n.date > d) {
            future.insert((&n.scheme_code, n.date, &n.nav));
            continue;
        }
        rows.insert((&n.scheme_code, n.date, &n.nav));
        match latest.get(n.scheme_code.as_str()) {
            Some(l) if l.date >= n.date => {}
            _ => {
                latest.insert(&n.scheme_code, n);
            }
        }
    }
    report.navs_checked = rows.len();
    report.nav_schemes_checked = latest.len();
    report.navs_future_dated_checked = future.len();
    let latest_checks: Vec<ExpectedNav> = latest.values().map(|n| (*n).clone()).collect();
    let found = concurrently(latest_checks, WIDTH, |n| {
        let (http, url) = (
            http.clone(),
            format!("{base}/v1/nav/schemes/{}", n.scheme_code),
        );
        async move {
            let resp = get_patiently(&http, &url).await?;
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let got = (v["nav"].as_str(), v["navDate"].as_str());
            let want_date = n.date.to_string();
            Ok(
                if status.is_success() && got == (Some(n.nav.as_str()), Some(want_date.as_str())) {
                    None
                } else {
                    Some(format!(
                        "scheme {}: latest expected {} on {want_date}, GET answered {status} {:?}",
                        n.scheme_code, n.nav, got
                    ))
                },
            )
        }
    })
    .await?;
    report.lost_navs.extend(found.into_iter().flatten());
    // (row, published?) for every row: due rows once, future-dated rows never.
    let history_checks: Vec<(ExpectedNav, bool)> = rows
        .iter()
        .map(|r| (r, true))
        .chain(future.iter().map(|r| (r, false)))
        .map(|((code, date, nav), due)| {
            (
                ExpectedNav {
                    scheme_code: code.to_string(),
                    nav: nav.to_string(),
                    date: *date,
                },
                due,
            )
        })
        .collect();
    let found = concurrently(history_checks, WIDTH, |(n, due)| {
        let url = format!(
            "{base}/v1/nav/schemes/{}/history?from={d}&to={d}",
            n.scheme_code,
            d = n.date
        );
        let http = http.clone();
        async move {
            let resp = get_patiently(&http, &url).await?;
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let entries = v["navs"].as_array().cloned().unwrap_or_default();
            let navs: Vec<&str> = entries.iter().filter_map(|e| e["nav"].as_str()).collect();
            let want: &[&str] = if due { &[n.nav.as_str()] } else { &[] };
            Ok(if status.is_success() && navs == want {
                None
            } else {
                Some(format!(
                    "scheme {} on {}: history expected exactly {want:?}{}, GET answered {status} {navs:?}",
                    n.scheme_code,
                    n.date,
                    if due { "" } else { " (future-dated: rejected)" }
                ))
            })
        }
    })
    .await?;
    report.lost_navs.extend(found.into_iter().flatten());
    report.lost_navs.sort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numeric positive NAVs with acceptable ISINs are expected, exactly as written; N.A., zero,
    /// `Redeemed` and malformed-ISIN rows are not.
    #[test]
    fn expected_navs_follow_the_file() {
        let text = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n\
            \r\n\
            Open Ended Schemes(Equity Scheme - Large Cap Fund)\r\n\
            118834;INF769K01BI1;-;Mirae Asset Large & Midcap Fund - Direct Plan - Growth;144.782;25-Feb-2025\r\n\
            100001;INF769K01BI1;-;Some Fund;10.0000.;24-Feb-2025\r\n\
            100002;-;-;Not available;N.A.;25-Feb-2025\r\n\
            100003;-;-;Zero;0;25-Feb-2025\r\n\
            100004;Redeemed;-;Redeemed;12.5;25-Feb-2025\r\n\
            100005;INF174K01VSI;-;Bad ISIN;12.5;25-Feb-2025\r\n";
        let got = expected_navs(text);
        assert_eq!(
            got,
            vec![
                ExpectedNav {
                    scheme_code: "118834".into(),
                    nav: "144.782".into(),
                    date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
                },
                ExpectedNav {
                    scheme_code: "100001".into(),
                    nav: "10.0000".into(),
                    date: NaiveDate::from_ymd_opt(2025, 2, 24).unwrap(),
                },
            ]
        );
    }

    fn report_with(f: impl FnOnce(&mut Report)) -> Report {
        let mut r = Report::default();
        f(&mut r);
        r
    }

    /// Each finding list alone makes the report fail: the checker can fail on every check.
    #[test]
    fn every_finding_is_an_anomaly() {
        assert!(Report::default().ok());
        let cases: Vec<Report> = vec![
            report_with(|r| r.not_terminal.push("x".into())),
            report_with(|r| r.duplicates.push("x".into())),
            report_with(|r| r.mismatches.push("x".into())),
            report_with(|r| r.inconsistent.push("x".into())),
            report_with(|r| r.accepted_lost.push("x".into())),
            report_with(|r| r.unaccepted_placed.push("x".into())),
            report_with(|r| r.lost_navs.push("x".into())),
            report_with(|r| r.unexplained_dead_letters.push("x".into())),
        ];
        for r in cases {
            assert!(!r.ok(), "{r:?}");
            assert_eq!(r.anomalies(), 1);
        }
    }
}
