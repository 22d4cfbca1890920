//! The simulator over real HTTP: a server on 127.0.0.1:0 and a webhook receiver beside it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use nivesh_pg_sim::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, hmac_sha256};
use nivesh_pg_sim::{Payment, Sim, SimConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SECRET: &str = "test-secret";

struct Webhook {
    timestamp: String,
    signature: String,
    body: Bytes,
}

impl Webhook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A receiver that records every webhook and answers 200.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Webhook>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let _ = tx.send(Webhook {
                    timestamp: h(TIMESTAMP_HEADER),
                    signature: h(SIGNATURE_HEADER),
                    body,
                });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

async fn start(config: SimConfig) -> (String, Sim) {
    let sim = Sim::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let served = sim.clone();
    tokio::spawn(
        async move { nivesh_pg_sim::serve(listener, served, std::future::pending()).await },
    );
    (format!("http://{addr}"), sim)
}

fn config(webhook_url: Option<String>) -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(50),
        webhook_url,
        webhook_secret: SECRET.into(),
        seed: 7,
        ..SimConfig::default()
    }
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: Value,
) -> (reqwest::StatusCode, Value) {
    let r = http
        .post(format!("{base}/payments"))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn next_webhook(rx: &mut mpsc::UnboundedReceiver<Webhook>) -> Webhook {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook within 10 s")
        .expect("receiver open")
}

async fn list(http: &reqwest::Client, base: &str, reference: &str) -> Vec<Payment> {
    let v: Value = http
        .get(format!("{base}/payments?reference={reference}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(v["items"].clone()).unwrap()
}

/// A payment is created, captured after the latency, and announced by a correctly signed webhook.
#[tokio::test]
async fn captures_and_sends_signed_webhook() {
    let (hook, mut rx) = receiver().await;
    let (base, _sim) = start(config(Some(hook))).await;
    let http = reqwest::Client::new();
    let (status, p) = create(
        &http,
        &base,
        "order-1",
        json!({"amount": 500_000, "currency": "INR", "reference": "order-1", "vpa": "ok@upi",
               "notes": {"investor_id": "INV0001"}}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(p["status"], "created");
    assert_eq!(p["amount"], 500_000);

    let w = next_webhook(&mut rx).await;
    let expected = format!(
        "sha256={}",
        hex_lower(&hmac_sha256(
            SECRET.as_bytes(),
            &[w.timestamp.as_bytes(), b".", &w.body]
        ))
    );
    assert_eq!(w.signature, expected);
    let ts: i64 = w.timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let v = w.json();
    assert_eq!(v["event"], "payment.captured");
    let entity = &v["payload"]["payment"]["entity"];
    assert_eq!(entity["id"], p["id"]);
    assert_eq!(entity["status"], "captured");
    assert_eq!(entity["reference"], "order-1");
    assert_eq!(entity["notes"]["investor_id"], "INV0001");
    assert!(entity["captured_at"].as_i64().is_some());

    let got: Value = http
        .get(format!("{base}/payments/{}", p["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["status"], "captured");
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The same Idempotency-Key returns the same payment and never charges twice; reusing it for a
/// different amount is refused.
#[tokio::test]
async fn idempotency_key_means_one_charge() {
    let (base, _sim) = start(config(None)).await;
    let http = reqwest::Client::new();
    let body = json!({"amount": 1000, "currency": "INR", "reference": "order-2"});
    let (s1, p1) = create(&http, &base, "order-2", body.clone()).await;
    let (s2, p2) = create(&http, &base, "order-2", body).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (201, 200));
    assert_eq!(p1["id"], p2["id"]);
    assert_eq!(list(&http, &base, "order-2").await.len(), 1);

    let (s3, e) = create(
        &http,
        &base,
        "order-2",
        json!({"amount": 2000, "currency": "INR", "reference": "order-2"}),
    )
    .await;
    assert_eq!(s3, 409);
    assert_eq!(e["error"]["code"], "BAD_REQUEST_ERROR");
    assert_eq!(list(&http, &base, "order-2").await.len(), 1);

    // A different key is a different charge (the inspection endpoint sees both).
    let (s4, _) = create(
        &http,
        &base,
        "order-2-again",
        json!({"amount": 1000, "currency": "INR", "reference": "order-2"}),
    )
    .await;
    assert_eq!(s4, 201);
    assert_eq!(list(&http, &base, "order-2").await.len(), 2);
}

/// Bad requests are 400s in the gateway's error shape, and nothing is created.
#[tokio::test]
async fn rejects_bad_requests() {
    let (base, sim) = start(config(None)).await;
    let http = reqwest::Client::new();
    let no_key = http
        .post(format!("{base}/payments"))
        .json(&json!({"amount": 1, "currency": "INR", "reference": "r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 400);
    for body in [
        json!({"amount": 0, "currency": "INR", "reference": "r"}),
        json!({"amount": 10.5, "currency": "INR", "reference": "r"}),
        json!({"amount": 100, "currency": "USD", "reference": "r"}),
        json!({"amount": 100, "currency": "INR", "reference": " "}),
        json!({"amount": 100, "currency": "INR", "reference": "r", "vpa": "decline@sim"}),
    ] {
        let (status, e) = create(&http, &base, "k-bad", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(e["error"]["description"].is_string(), "{e}");
    }
    assert!(sim.payments(None).is_empty());
}

/// `failure@sim` fails with the bank's reason; `timeout@sim` never settles or calls back.
#[tokio::test]
async fn magic_vpas() {
    let (hook, mut rx) = receiver().await;
    let (base, sim) = start(config(Some(hook))).await;
    let http = reqwest::Client::new();
    let (_, slow) = create(
        &http,
        &base,
        "k-timeout",
        json!({"amount": 100, "currency": "INR", "reference": "o-timeout", "vpa": "timeout@sim"}),
    )
    .await;
    let (_, failing) = create(
        &http,
        &base,
        "k-fail",
        json!({"amount": 100, "currency": "INR", "reference": "o-fail", "vpa": "failure@sim"}),
    )
    .await;
    let w = next_webhook(&mut rx).await.json();
    assert_eq!(w["event"], "payment.failed");
    let entity = &w["payload"]["payment"]["entity"];
    assert_eq!(entity["id"], failing["id"]);
    assert_eq!(entity["error_code"], "BAD_REQUEST_ERROR");
    assert!(
        entity["error_description"]
            .as_str()
            .unwrap()
            .contains("declined by bank")
    );
    // Well past the latency: still no webhook for the timeout payment, and it is still created.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        rx.try_recv().is_err(),
        "timeout@sim must not send a webhook"
    );
    assert_eq!(
        sim.payment(slow["id"].as_str().unwrap()).unwrap().status,
        "created"
    );
}

/// Failure rate 1 fails every ordinary payment.
#[tokio::test]
async fn failure_rate_applies() {
    let (hook, mut rx) = receiver().await;
    let (base, _sim) = start(SimConfig {
        failure_rate: 1.0,
        ..config(Some(hook))
    })
    .await;
    let http = reqwest::Client::new();
    create(
        &http,
        &base,
        "k-r",
        json!({"amount": 100, "currency": "INR", "reference": "o-r"}),
    )
    .await;
    let w = next_webhook(&mut rx).await.json();
    assert_eq!(w["event"], "payment.failed");
}

/// Refunds need a captured payment, are idempotent by key and cannot exceed what was captured.
#[tokio::test]
async fn refunds_are_idempotent_and_bounded() {
    let (base, sim) = start(config(None)).await;
    let http = reqwest::Client::new();
    let (_, p) = create(
        &http,
        &base,
        "k-ref",
        json!({"amount": 1000, "currency": "INR", "reference": "o-ref"}),
    )
    .await;
    let id = p["id"].as_str().unwrap().to_string();
    let refund = |key: &'static str, body: Value| {
        let (http, url) = (http.clone(), format!("{base}/payments/{id}/refunds"));
        async move {
            let r = http
                .post(url)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Not captured yet.
    assert_eq!(refund("rfd-early", json!({})).await.0, 400);
    tokio::time::timeout(Duration::from_secs(10), async {
        while sim.payment(&id).unwrap().status != "captured" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("captured");
    let (s1, r1) = refund("rfd-o-ref", json!({"amount": 600})).await;
    let (s2, r2) = refund("rfd-o-ref", json!({"amount": 600})).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(r1["id"], r2["id"]);
    assert_eq!(r1["status"], "processed");
    // Only 400 paise are left.
    assert_eq!(refund("rfd-other", json!({"amount": 500})).await.0, 400);
    let after = sim.payment(&id).unwrap();
    assert_eq!(after.amount_refunded, 600);
    assert_eq!(after.refunds.len(), 1);
    let missing = http
        .post(format!("{base}/payments/pay_missing/refunds"))
        .header("Idempotency-Key", "x")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The same seed and requests give the same payment ids.
#[tokio::test]
async fn seeded_runs_are_reproducible() {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (base, _sim) = start(config(None)).await;
        let (_, p) = create(
            &http,
            &base,
            "k",
            json!({"amount": 100, "currency": "INR", "reference": "o"}),
        )
        .await;
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    assert!(ids[0].starts_with("pay_"));
}

/// The binary prints PGSIM_ADDR once bound to port 0 and serves there.
#[tokio::test]
async fn binary_prints_its_address() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nivesh-pg-sim"))
        .args(["--listen", "127.0.0.1:0", "--webhook-secret", "s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn simulator");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("address within 20 s")
        .unwrap()
        .expect("a line");
    let addr = line.strip_prefix("PGSIM_ADDR=").expect("PGSIM_ADDR= line");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    child.kill().await.unwrap();
}

/// The response delay changes at runtime through `/admin/latency`; `/admin/stats` counts the
/// REST requests (not health or admin calls).
#[tokio::test]
async fn response_delay_is_set_at_runtime_and_calls_are_counted() {
    let (base, sim) = start(SimConfig {
        webhook_secret: SECRET.into(),
        ..SimConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let quick = std::time::Instant::now();
    let r = http
        .get(format!("{base}/payments/pay_none"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(quick.elapsed() < Duration::from_millis(400));

    let r = http
        .post(format!("{base}/admin/latency"))
        .json(&json!({"response_ms": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let slow = std::time::Instant::now();
    let r = http
        .get(format!("{base}/payments/pay_none"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        slow.elapsed() >= Duration::from_millis(600),
        "{:?}",
        slow.elapsed()
    );
    // Health is never delayed.
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    sim.set_response_delay(Duration::ZERO);
    let stats: Value = http
        .get(format!("{base}/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({"api_calls": 2, "response_ms": 0}));
    assert_eq!(sim.api_calls(), 2);
}
