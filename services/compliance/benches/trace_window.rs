//! How long an investor trace's reads take over five years of one investor's ledger.
//!
//! `cargo bench -p nivesh-compliance --bench trace_window` (env `TRACE_BENCH_PER_DAY`, default
//! 10 events a day): appends 5 years of records for one investor (plus another investor's
//! records interleaved, so the partition is not alone in the store) through the real ledger on
//! the embedded store, then times `Ledger::between` for the whole five years, one year and one
//! month, and a full `verify`. Prints the figures; asserts nothing about time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use nivesh_compliance::ledger::{Ledger, NewRecord};
use nivesh_store::{DocumentStore, EmbeddedStore};
use serde_json::json;

fn record(partition: &str, n: u64, at: DateTime<Utc>) -> NewRecord {
    NewRecord {
        partition: partition.into(),
        tenant: Some("nivesh".into()),
        tenant_stated: false,
        event_id: format!("{partition}-{n}"),
        event_type: "nivesh.txn.TransactionCompleted".into(),
        trace_id: None,
        actor: "allotment".into(),
        occurred_at: at,
        payload: json!({"n": n, "order_id": format!("ord-{n}"), "units": "12.345", "nav": "101.2345"}),
    }
}

#[tokio::main]
async fn main() {
    let per_day: u64 = std::env::var("TRACE_BENCH_PER_DAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn DocumentStore> =
        Arc::new(EmbeddedStore::open(tmp.path().join("bench.sqlite")).expect("store"));
    let ledger = Ledger::new(store, Duration::from_secs(2557 * 24 * 3600));
    let start = Utc::now() - TimeDelta::days(5 * 365);
    let days = 5 * 365;
    let t = Instant::now();
    let mut n = 0;
    for day in 0..days {
        for i in 0..per_day {
            let at = start + TimeDelta::days(day) + TimeDelta::minutes(i as i64 * 7);
            let (mine, other) = (record("INV-BENCH", n, at), record("INV-OTHER", n, at));
            let (a, b) = tokio::join!(ledger.append(&mine), ledger.append(&other));
            a.expect("append");
            b.expect("append");
            n += 1;
        }
    }
    println!(
        "appended {} records ({} per partition) in {:.1?}",
        2 * n,
        n,
        t.elapsed()
    );
    let end = Utc::now();
    for (label, from) in [
        ("5 years", start),
        ("1 year", end - TimeDelta::days(365)),
        ("1 month", end - TimeDelta::days(30)),
    ] {
        let t = Instant::now();
        let rows = ledger
            .between("INV-BENCH", from, end)
            .await
            .expect("between");
        println!(
            "trace window {label:>8}: {:>6} records in {:.1?}",
            rows.len(),
            t.elapsed()
        );
    }
    let t = Instant::now();
    let report = ledger.verify("INV-BENCH").await.expect("verify");
    println!(
        "verify: ok={} over {} records in {:.1?}",
        report.ok,
        report.records,
        t.elapsed()
    );
}
