//! End-to-end: the dev broker and the allotment binary as OS processes. A paid purchase waits
//! for its NAV across a SIGKILL of the service, is allotted once the NAV is broadcast, and a
//! redelivered payment after the restart does not allot it twice.
//!
//! Needs the binaries: `cargo build -p nivesh-allotment -p nivesh-fleet`.

mod common;

use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use nivesh_events::{
    AvroCodec, Event, EventMeta, NavPublished, PaymentSucceeded, TransactionCompleted, order_kind,
};
use nivesh_fleet::fleet::{Fleet, FleetOptions};
use rust_decimal::Decimal;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn ist(date: NaiveDate, h: u32, m: u32) -> chrono::DateTime<Utc> {
    let ist = chrono::FixedOffset::east_opt(19_800).unwrap();
    ist.from_local_datetime(&date.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap()))
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

async fn produce<E: Event>(bootstrap: &str, topic: &str, key: &str, event: &E) {
    let bytes = AvroCodec::single_object()
        .encode(event)
        .await
        .expect("encode");
    common::produce_raw(bootstrap, topic, key, &bytes);
}

fn payment(order: &str, investor: &str, scheme: &str, amount: &str) -> PaymentSucceeded {
    PaymentSucceeded {
        meta: EventMeta::new::<PaymentSucceeded>("e2e", Some(order.into())),
        payment_id: order.into(),
        order_id: order.into(),
        investor_id: investor.into(),
        amount: amount.parse().unwrap(),
        gateway_ref: format!("gw-{order}"),
        realised_at: ist(NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(), 11, 0),
        order_kind: order_kind::PURCHASE.into(),
        scheme_code: scheme.into(),
        scheme_category: Some("Open Ended Schemes(Equity Scheme - Large Cap Fund)".into()),
        sip_id: None,
        instalment_no: None,
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.expect("http");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn completed(
    bootstrap: &str,
    until: impl Fn(&[TransactionCompleted]) -> bool,
) -> Vec<TransactionCompleted> {
    let deadline = Instant::now() + WAIT;
    loop {
        let msgs = common::read_topic_to_end(bootstrap, "transaction.completed", WAIT);
        let events = common::decode_all::<TransactionCompleted>(&msgs).await;
        if until(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; {} completions",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_purchase_survives_a_crash_and_allots_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = FleetOptions::for_test(tmp.path());
    opts.business_start = Some(ist(NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(), 10, 0));
    opts.service_env.insert(
        "allotment".into(),
        vec![("NIVESH__SERVICE__SWEEP_INTERVAL_MS".into(), "500".into())],
    );
    let mut fleet = Fleet::start_broker(opts).await.expect("broker");
    let base = fleet.start("allotment").await.expect("allotment starts");
    let bootstrap = fleet.bootstrap().to_string();
    // Allotment lookups are for ops (or the investor themself).
    let client = fleet.staff_client(&["ops"]).await.expect("ops client");
    let (inv, scheme) = ("INV0001", "120503");
    let order = uuid::Uuid::now_v7().to_string();
    let pay = payment(&order, inv, scheme, "10000.00");
    produce(&bootstrap, "payment.success", inv, &pay).await;

    let url = format!("{base}/v1/allotments/{order}?investorId={inv}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(&client, &url).await;
        if status == 200 && body["status"] == "PENDING" {
            assert_eq!(body["pending"][0]["navDate"], "2025-02-25");
            break;
        }
        assert!(Instant::now() < deadline, "never pending: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    fleet.kill9("allotment").await.expect("kill -9");
    fleet.restart("allotment").await.expect("restart");

    let nav = NavPublished {
        meta: EventMeta::new::<NavPublished>("e2e", None),
        scheme_code: scheme.into(),
        scheme_name: "Axis Bluechip Fund - Direct - Growth".into(),
        amc: Some("Axis Mutual Fund".into()),
        category: Some("Open Ended Schemes(Equity Scheme - Large Cap Fund)".into()),
        scheme_type: Some("Open Ended Schemes".into()),
        nav: "58.1200".parse().unwrap(),
        nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
        anomaly: false,
        change_kind: "NEW".into(),
    };
    produce(&bootstrap, "nav.broadcast", scheme, &nav).await;
    let events = completed(&bootstrap, |e| e.iter().any(|t| t.order_id == order)).await;
    let t = events.iter().find(|t| t.order_id == order).unwrap();
    // 10000 × 0.005 / 100.005 = 0.49997… → 0.50; 9999.50 / 58.12 = 172.049… → 172.049.
    assert_eq!(t.stamp_duty, Decimal::new(50, 2));
    assert_eq!(t.units, Decimal::new(172_049, 3));
    assert_eq!(t.nav_date, NaiveDate::from_ymd_opt(2025, 2, 25).unwrap());

    // Redelivery after the restart, then a marker payment of the same investor.
    produce(&bootstrap, "payment.success", inv, &pay).await;
    let marker = payment(&uuid::Uuid::now_v7().to_string(), inv, scheme, "500.00");
    produce(&bootstrap, "payment.success", inv, &marker).await;
    let events = completed(&bootstrap, |e| {
        e.iter().any(|t| t.order_id == marker.order_id)
    })
    .await;
    assert_eq!(events.iter().filter(|t| t.order_id == order).count(), 1);

    let (status, lots) = get(&client, &format!("{base}/v1/investors/{inv}/lots")).await;
    assert_eq!(status, 200);
    assert_eq!(lots["schemes"][0]["lots"].as_array().map(Vec::len), Some(2));
    fleet.stop().await.expect("fleet stops");
}
