//! The notification service end to end in-process: a real Kafka-protocol broker
//! (`DevBroker`, librdkafka's mock cluster over TCP), the embedded store in a temp dir, email
//! through lettre's file transport into a temp dir, SMS through an axum stub provider on
//! 127.0.0.1:0, and the service's own HTTP API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{NaiveDate, TimeZone, Utc};
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, KafkaSettings};
use nivesh_events::{
    AvroCodec, Event, EventMeta, LotMovement, OrderPlaced, TransactionCompleted, leg, order_kind,
};
use nivesh_notification::Config;
use nivesh_runtime::config::{ConfigSources, Settings, load_from};
use nivesh_runtime::service::{connect, run_on};
use nivesh_testkit::kafka;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait: a test finishes in seconds or fails, never hangs.
const WAIT: Duration = Duration::from_secs(90);

const INVESTOR: &str = "INV0001";
const INVESTOR_EMAIL: &str = "aarav.sharma@example.in";
const INVESTOR_MOBILE: &str = "+919810007919";

// ---------------------------------------------------------------------------------------------
// The SMS provider stub.

#[derive(Default)]
struct SmsStub {
    /// (Idempotency-Key header, JSON body) of every request.
    calls: Mutex<Vec<(Option<String>, Value)>>,
    /// Answer 500 to this many requests before accepting.
    fail_first: AtomicUsize,
}

impl SmsStub {
    fn calls(&self) -> Vec<(Option<String>, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

async fn sms_endpoint(
    State(stub): State<Arc<SmsStub>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let n = {
        let mut calls = stub.calls.lock().unwrap();
        calls.push((key, body.0));
        calls.len()
    };
    let failing = stub
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
        .is_ok();
    if failing {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": "provider hiccup"})),
        )
    } else {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"id": format!("sms-{n}")})),
        )
    }
}

async fn start_stub(fail_first: usize) -> (Arc<SmsStub>, String) {
    let stub = Arc::new(SmsStub {
        fail_first: AtomicUsize::new(fail_first),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/v1/sms", post(sms_endpoint))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (stub, format!("http://{addr}/v1/sms"))
}

// ---------------------------------------------------------------------------------------------
// The service under test.

struct Harness {
    broker: DevBroker,
    producer: BusProducer,
    codec: AvroCodec,
    _dir: tempfile::TempDir,
    mail_dir: PathBuf,
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    handle: JoinHandle<nivesh_runtime::Result<()>>,
    idp: nivesh_testkit::TestIdp,
}

fn registry_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/investors.json")
        .display()
        .to_string()
}

impl Harness {
    async fn start(sms_url: &str) -> Harness {
        let broker = DevBroker::start(1).expect("dev broker");
        let bootstrap = broker.bootstrap_servers();
        let dir = tempfile::tempdir().unwrap();
        let mail_dir = dir.path().join("mail");
        let idp = nivesh_testkit::TestIdp::start().await;
        let mut vars: Vec<(String, String)> = vec![
            ("NIVESH__KAFKA__BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
            (
                "NIVESH__STORE__DATA_DIR".into(),
                dir.path().display().to_string(),
            ),
            ("NIVESH__REDIS__URL".into(), String::new()),
            ("NIVESH__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
            ("NIVESH__HTTP__SHUTDOWN_TIMEOUT_SECS".into(), "10".into()),
            ("NIVESH__SERVICE__INVESTOR_REGISTRY".into(), registry_path()),
            (
                "NIVESH__SERVICE__MAIL_DIR".into(),
                mail_dir.display().to_string(),
            ),
            ("NIVESH__SERVICE__SMS_URL".into(), sms_url.into()),
        ];
        vars.extend(idp.env());
        let settings: Settings<Config> =
            load_from("notification", &ConfigSources::with_vars(vars)).expect("settings");
        let ctx = connect(&settings).await.expect("connect");
        let app = nivesh_notification::app(&ctx, &settings, settings.clock.clock()).expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = ctx.shutdown.clone();
        let handle = tokio::spawn(run_on(ctx, app, listener));
        let producer =
            BusProducer::new(&KafkaSettings::new(&bootstrap, "notification-test")).unwrap();
        Harness {
            broker,
            producer,
            codec: AvroCodec::single_object(),
            _dir: dir,
            mail_dir,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            shutdown,
            handle,
            idp,
        }
    }

    async fn publish<E: Event>(&self, topic: &str, key: &str, event: &E) {
        kafka::produce(&self.producer, &self.codec, topic, key, event, true).await;
    }

    async fn publish_raw(&self, topic: &str, key: &str, payload: Vec<u8>) {
        kafka::produce_raw(&self.producer, topic, key, payload, Vec::new()).await;
    }

    /// `GET path` as support staff (ops), who may read every investor's notifications.
    async fn get(&self, path: &str) -> reqwest::Response {
        let ops = self.idp.ops();
        self.get_as(path, Some(&ops)).await
    }

    /// `GET path` with this `Authorization` header (`None`: without one).
    async fn get_as(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.expect("GET")
    }

    async fn notifications(&self, investor: &str) -> Vec<Value> {
        let resp = self
            .get(&format!("/v1/investors/{investor}/notifications?limit=100"))
            .await;
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// Poll the API until `done` holds for the investor's notifications.
    async fn wait_for(
        &self,
        investor: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let items = self.notifications(investor).await;
            if done(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; have {items:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every `.eml` file written so far, as text.
    fn emails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.mail_dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("service stopped within 30 s")
            .expect("service task did not panic");
        outcome.expect("service ran without error");
        drop(self.broker);
    }
}

// ---------------------------------------------------------------------------------------------
// Events.

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn order_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn placed(investor: &str, order: &str) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>("order", None),
        order_id: order.into(),
        investor_id: investor.into(),
        kind: order_kind::PURCHASE.into(),
        scheme_code: "119551".into(),
        scheme_name: Some("ABSL Banking & PSU Debt Fund - Direct Growth".into()),
        scheme_category: Some("Debt Scheme - Banking and PSU Fund".into()),
        target_scheme_code: None,
        target_scheme_category: None,
        amount: Some(d("5000.00")),
        units: None,
        all_units: false,
        placed_at: Utc::now(),
        sip_id: None,
        instalment_no: None,
        payment_instrument: Some("UPI".into()),
    }
}

fn completed(investor: &str, order: &str) -> TransactionCompleted {
    TransactionCompleted {
        meta: EventMeta::new::<TransactionCompleted>("allotment", None),
        transaction_id: format!("txn-{order}"),
        order_id: order.into(),
        investor_id: investor.into(),
        folio: format!("F-{investor}-119551"),
        leg: leg::PURCHASE.into(),
        order_kind: order_kind::PURCHASE.into(),
        scheme_code: "119551".into(),
        nav: d("101.2345"),
        nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
        gross_amount: d("5000.00"),
        stamp_duty: d("0.25"),
        exit_load: d("0.00"),
        net_amount: d("4999.75"),
        units: d("49.387"),
        balance_units: d("149.387"),
        lots: vec![LotMovement {
            lot_id: format!("lot-{order}"),
            units: d("49.387"),
            lot_nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
            lot_nav: d("101.2345"),
            cost: d("4999.75"),
            exit_load: d("0.00"),
            days_held: 0,
        }],
        allotted_at: Utc.with_ymd_and_hms(2025, 2, 25, 9, 40, 0).unwrap(),
        sip_id: None,
        instalment_no: None,
        linked_order_leg: None,
    }
}

fn of_event<'a>(items: &'a [Value], event_id: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|n| n["event"]["eventId"] == event_id)
        .collect()
}

fn on_channel<'a>(items: &[&'a Value], channel: &str) -> Vec<&'a Value> {
    items
        .iter()
        .copied()
        .filter(|n| n["channel"] == channel)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// A completed purchase becomes exactly one email (with the units and NAV in its body and the
/// (event, channel) Message-ID) and one SMS (with the idempotency key), both recorded SENT.
#[tokio::test]
async fn transaction_completed_sends_one_email_and_one_sms() {
    let (stub, sms_url) = start_stub(0).await;
    let h = Harness::start(&sms_url).await;
    let event = completed(INVESTOR, &order_id());
    let event_id = event.meta.event_id.to_string();
    h.publish("transaction.completed", INVESTOR, &event).await;

    let items = h
        .wait_for(INVESTOR, "email and SMS of the allotment", |items| {
            of_event(items, &event_id).len() == 2
        })
        .await;
    let mine = of_event(&items, &event_id);
    for n in &mine {
        assert_eq!(n["status"], "SENT", "{n:#}");
        assert_eq!(n["template"], "units_allotted");
        assert_eq!(n["event"]["eventType"], "nivesh.txn.TransactionCompleted");
        assert_eq!(n["event"]["topic"], "transaction.completed");
    }
    let email = on_channel(&mine, "email");
    let sms = on_channel(&mine, "sms");
    assert_eq!((email.len(), sms.len()), (1, 1), "{mine:#?}");
    assert_eq!(email[0]["recipient"], INVESTOR_EMAIL);
    assert!(
        email[0]["recordedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with("+05:30")),
        "timestamps are IST: {}",
        email[0]["recordedAt"]
    );

    let files = h.emails();
    assert_eq!(files.len(), 1, "exactly one email written");
    let eml = &files[0];
    assert!(eml.contains("Units allotted: 49.387"), "{eml}");
    assert!(
        eml.contains("NAV: ₹101.2345 (NAV date 25 Feb 2025)"),
        "{eml}"
    );
    assert!(eml.contains("Amount: ₹5,000.00"), "{eml}");
    assert!(
        eml.contains(&format!("Message-ID: <{event_id}.email@nivesh.example>")),
        "{eml}"
    );
    assert!(eml.contains(INVESTOR_EMAIL), "{eml}");

    let calls = stub.calls();
    assert_eq!(calls.len(), 1, "exactly one SMS request: {calls:#?}");
    let (key, body) = &calls[0];
    assert_eq!(key.as_deref(), Some(format!("{event_id}:sms").as_str()));
    assert_eq!(body["to"], INVESTOR_MOBILE);
    let text = body["message"].as_str().unwrap();
    assert!(
        text.contains("49.387 units") && text.contains("₹101.2345"),
        "{text}"
    );
    assert_eq!(sms[0]["body"], text, "the record holds the text as sent");
    h.stop().await;
}

/// The same event delivered twice sends once: one email file and one SMS request for it, one
/// record per channel. A later event on the same partition proves the duplicate was handled.
#[tokio::test]
async fn redelivered_event_sends_once() {
    let (stub, sms_url) = start_stub(0).await;
    let h = Harness::start(&sms_url).await;
    let event = completed(INVESTOR, &order_id());
    let event_id = event.meta.event_id.to_string();
    h.publish("transaction.completed", INVESTOR, &event).await;
    h.wait_for(INVESTOR, "first delivery", |items| {
        of_event(items, &event_id).len() == 2
    })
    .await;
    // Redelivery (same bytes, same event id), then a different event behind it on the same
    // topic and key: once that one is done, the duplicate has been consumed.
    h.publish("transaction.completed", INVESTOR, &event).await;
    let sentinel = completed(INVESTOR, &order_id());
    let sentinel_id = sentinel.meta.event_id.to_string();
    h.publish("transaction.completed", INVESTOR, &sentinel)
        .await;
    let items = h
        .wait_for(INVESTOR, "the event after the duplicate", |items| {
            of_event(items, &sentinel_id).len() == 2
        })
        .await;

    assert_eq!(of_event(&items, &event_id).len(), 2, "{items:#?}");
    assert_eq!(items.len(), 4, "{items:#?}");
    let keys: Vec<Option<String>> = stub.calls().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            Some(format!("{event_id}:sms")),
            Some(format!("{sentinel_id}:sms"))
        ]
    );
    let emails = h.emails();
    assert_eq!(emails.len(), 2, "one email per distinct event");
    let first = format!("<{event_id}.email@");
    assert_eq!(emails.iter().filter(|e| e.contains(&first)).count(), 1);
    h.stop().await;
}

/// An SMS provider that answers 500 and then 200: the bus retries the event, the email already
/// sent is not sent again, and exactly one SMS is recorded (both requests carried the same
/// idempotency key).
#[tokio::test]
async fn sms_provider_500_then_200_records_one_sms() {
    let (stub, sms_url) = start_stub(1).await;
    let h = Harness::start(&sms_url).await;
    let event = completed(INVESTOR, &order_id());
    let event_id = event.meta.event_id.to_string();
    h.publish("transaction.completed", INVESTOR, &event).await;
    let items = h
        .wait_for(INVESTOR, "the SMS after the provider recovered", |items| {
            of_event(items, &event_id)
                .iter()
                .any(|n| n["channel"] == "sms")
        })
        .await;
    let mine = of_event(&items, &event_id);
    let sms = on_channel(&mine, "sms");
    assert_eq!(sms.len(), 1, "{mine:#?}");
    assert_eq!(sms[0]["status"], "SENT");
    assert_eq!(sms[0]["attempt"], 2, "recorded by the retry");
    assert_eq!(sms[0]["providerRef"], "sms-2");
    assert_eq!(on_channel(&mine, "email").len(), 1);
    let calls = stub.calls();
    assert_eq!(calls.len(), 2, "one failed and one accepted request");
    assert!(
        calls
            .iter()
            .all(|(k, _)| k.as_deref() == Some(format!("{event_id}:sms").as_str())),
        "{calls:#?}"
    );
    assert_eq!(h.emails().len(), 1, "the retry did not resend the email");
    h.stop().await;
}

/// An investor missing from the registry: recorded as undeliverable on every channel, nothing
/// sent, no error loop (the event completes).
#[tokio::test]
async fn unknown_investor_is_recorded_undeliverable() {
    let (stub, sms_url) = start_stub(0).await;
    let h = Harness::start(&sms_url).await;
    let ghost = "INV9999";
    let event = completed(ghost, &order_id());
    h.publish("transaction.completed", ghost, &event).await;
    let items = h
        .wait_for(ghost, "undeliverable records", |items| items.len() == 2)
        .await;
    for n in &items {
        assert_eq!(n["status"], "UNDELIVERABLE", "{n:#}");
        assert!(n["recipient"].is_null());
        assert!(
            n["error"]
                .as_str()
                .is_some_and(|e| e.contains("not in the investor registry")),
            "{n:#}"
        );
        // Still rendered, so the record shows what would have been said.
        assert!(n["body"].as_str().unwrap().contains("49.387"));
    }
    // A later event for a known investor on the same topic is processed (no retry loop ahead).
    let next = completed(INVESTOR, &order_id());
    let next_id = next.meta.event_id.to_string();
    h.publish("transaction.completed", INVESTOR, &next).await;
    h.wait_for(INVESTOR, "the next investor's messages", |items| {
        of_event(items, &next_id).len() == 2
    })
    .await;
    assert!(
        stub.calls().iter().all(|(_, b)| b["to"] == INVESTOR_MOBILE),
        "nothing sent for the unknown investor"
    );
    assert_eq!(h.emails().len(), 1);
    assert_eq!(h.notifications(ghost).await.len(), 2);
    h.stop().await;
}

/// The API lists notifications newest first, pages with a cursor, names the scheme learnt from
/// `order.placed`, and answers malformed input with 400 problem+json.
#[tokio::test]
async fn notifications_are_listed_newest_first() {
    let (_stub, sms_url) = start_stub(0).await;
    let h = Harness::start(&sms_url).await;
    let order = order_id();
    let first = placed(INVESTOR, &order);
    let first_id = first.meta.event_id.to_string();
    h.publish("order.placed", INVESTOR, &first).await;
    h.wait_for(INVESTOR, "order received", |items| {
        of_event(items, &first_id).len() == 2
    })
    .await;
    let second = completed(INVESTOR, &order);
    let second_id = second.meta.event_id.to_string();
    h.publish("transaction.completed", INVESTOR, &second).await;
    let items = h
        .wait_for(INVESTOR, "units allotted", |items| items.len() == 4)
        .await;

    let events: Vec<&str> = items
        .iter()
        .map(|n| n["event"]["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            second_id.as_str(),
            second_id.as_str(),
            first_id.as_str(),
            first_id.as_str()
        ]
    );
    let times: Vec<&str> = items
        .iter()
        .map(|n| n["recordedAt"].as_str().unwrap())
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::FixedOffset>> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(items[3]["template"], "order_received");
    let allotted_email = items
        .iter()
        .find(|n| n["event"]["eventId"] == second_id.as_str() && n["channel"] == "email")
        .unwrap();
    assert_eq!(
        allotted_email["subject"],
        "Units allotted: 49.387 units of ABSL Banking & PSU Debt Fund - Direct Growth (119551)",
        "the scheme name comes from the order.placed context"
    );

    // Pages of one, following the cursor, give the same order and end without a cursor.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/investors/{INVESTOR}/notifications?limit=1&cursor={c}"),
            None => format!("/v1/investors/{INVESTOR}/notifications?limit=1"),
        };
        let page: Value = h.get(&path).await.json().await.unwrap();
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= 1);
        walked.extend(page_items.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, items);

    for bad in [
        "/v1/investors/bad%20id!/notifications",
        "/v1/investors/INV0001/notifications?limit=0",
        "/v1/investors/INV0001/notifications?limit=abc",
        "/v1/investors/INV0001/notifications?cursor=zzz",
    ] {
        let resp = h.get(bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["status"], 400);
    }
    // Access: the investor reads their own; another investor's look missing; a distributor is
    // refused; no token is a 401 problem.
    let own = format!("/v1/investors/{INVESTOR}/notifications");
    let cases = [
        (Some(h.idp.investor(INVESTOR)), 200),
        (Some(h.idp.investor("INV0002")), 404),
        (Some(h.idp.distributor("DST001")), 403),
        (Some(h.idp.admin()), 200),
        (None, 401),
    ];
    for (auth, want) in cases {
        let resp = h.get_as(&own, auth.as_deref()).await;
        assert_eq!(resp.status(), want, "{auth:?}");
        if want != 200 {
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
        } else {
            let page: Value = resp.json().await.unwrap();
            assert_eq!(page["items"].as_array().unwrap().len(), items.len());
        }
    }
    let doc: Value = h.get("/openapi.json").await.json().await.unwrap();
    assert!(
        doc["paths"]["/v1/investors/{investorId}/notifications"]["get"].is_object(),
        "{doc:#}"
    );
    h.stop().await;
}

/// Poison: an undecodable record and an event with a malformed investor id go to
/// `notification.dlq` as permanent failures, and the consumer carries on.
#[tokio::test]
async fn poison_message_goes_to_dlq() {
    let (_stub, sms_url) = start_stub(0).await;
    let h = Harness::start(&sms_url).await;
    h.publish_raw("order.placed", INVESTOR, b"definitely not avro".to_vec())
        .await;
    let bad_investor = placed("bad id!", &order_id());
    h.publish("order.placed", INVESTOR, &bad_investor).await;
    let good = placed(INVESTOR, &order_id());
    let good_id = good.meta.event_id.to_string();
    h.publish("order.placed", INVESTOR, &good).await;
    h.wait_for(INVESTOR, "the good event after the poison", |items| {
        of_event(items, &good_id).len() == 2
    })
    .await;

    // Read from the beginning until two records arrived (in partition order; the dead-letter
    // topic keeps the original key, so one investor's records share a partition).
    let bootstrap = h.broker.bootstrap_servers();
    let dead = tokio::task::spawn_blocking(move || {
        kafka::read_until(&bootstrap, "notification.dlq", WAIT, |r| r.len() >= 2)
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert_eq!(dead[0].payload, b"definitely not avro");
    for r in &dead {
        assert_eq!(
            r.header_str("nivesh-dlq-reason"),
            Some("permanent"),
            "{r:#?}"
        );
        assert_eq!(r.header_str("nivesh-original-topic"), Some("order.placed"));
    }
    assert!(
        dead[1]
            .header_str("nivesh-error")
            .is_some_and(|e| e.contains("investor")),
        "{:#?}",
        dead[1]
    );
    assert_eq!(h.emails().len(), 1, "only the good event was sent");
    h.stop().await;
}
