//! Helpers for the transaction-flow end-to-end tests: a whole fleet on the business day of the
//! real AMFI file, with the payment gateway simulator, and small API clients.

use std::time::{Duration, Instant};

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use nivesh_fleet::fleet::{Fleet, FleetOptions, GatewaySim};
use serde_json::Value;

/// The whole fleet (gateway simulator + every service) with the business clock at 10:00 IST on
/// 2025-02-25 and the real AMFI file of that day loaded and published. `None` when the file is
/// absent (the test then skips, saying why).
pub async fn fleet_with_navs(tmp: &tempfile::TempDir, sim: GatewaySim) -> Option<(Fleet, String)> {
    let file = nivesh_testkit::amfi_file()?;
    let mut opts = FleetOptions::for_test(tmp.path());
    opts.redis_url = Some(nivesh_testkit::redis_url());
    opts.env.push((
        "NIVESH__REDIS__KEY_PREFIX".into(),
        nivesh_testkit::unique("e2e-txn"),
    ));
    opts.env.push(("RUST_LOG".into(), "info".into()));
    let ist = FixedOffset::east_opt(19_800).unwrap();
    opts.business_start = Some(
        ist.from_local_datetime(
            &NaiveDate::from_ymd_opt(2025, 2, 25)
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap(),
        )
        .unwrap()
        .with_timezone(&Utc),
    );
    let mut fleet = Fleet::start_broker(opts).await.expect("broker starts");
    fleet.start_everything(&sim).await.expect("fleet starts");
    let client = fleet.staff_client(&["ops"]).await.expect("ops client");
    let ingestor = fleet.url("nav-ingestor").unwrap();
    let body = std::fs::read(&file).unwrap();
    let resp = client
        .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
        .body(body)
        .send()
        .await
        .expect("upload");
    assert!(resp.status().is_success(), "upload: {}", resp.status());
    let order = fleet.url("order").unwrap();
    Some((fleet, order))
}

/// Mirae Asset Large & Midcap Fund - Direct Plan - Growth: NAV 144.782 on 2025-02-25.
pub const EQUITY: &str = "118834";
pub const EQUITY_NAV: &str = "144.782";
/// UTI Nifty 50 Index Fund - Growth Option - Direct: NAV 156.2072 on 2025-02-25.
pub const INDEX: &str = "120716";
pub const INDEX_NAV: &str = "156.2072";

/// POST an order with a fresh Idempotency-Key, retrying while the order service has not yet
/// learned the scheme from `nav.broadcast` (the NAV day is being published as the test starts).
/// Returns the 201 body.
pub async fn place(client: &reqwest::Client, order: &str, body: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (status, v) = post_order(client, order, &nivesh_testkit::unique("key"), body).await;
        if status == 201 || status == 200 {
            return v;
        }
        let unknown_scheme = v.to_string().to_lowercase().contains("scheme");
        assert!(
            unknown_scheme && Instant::now() < deadline,
            "order refused ({status}): {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn post_order(
    client: &reqwest::Client,
    order: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let r = client
        .post(format!("{order}/v1/orders"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("POST /v1/orders");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Poll an order until it is terminal (COMPLETED or FAILED).
pub async fn wait_terminal(
    client: &reqwest::Client,
    order: &str,
    id: &str,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, v) = get_json(client, &format!("{order}/v1/orders/{id}")).await;
        if status == 200 {
            let s = v["status"].as_str().unwrap_or_default();
            if s == "COMPLETED" || s == "FAILED" {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "order {id} not terminal in {timeout:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn dec(s: &str) -> rust_decimal::Decimal {
    s.parse().expect("decimal")
}
