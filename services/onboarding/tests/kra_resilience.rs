//! The KRA client's resilience against a test-local KRA stub (axum): transient 503s are retried
//! within the call (and its budget), the same registration (one idempotency key) each time; a
//! KRA that keeps failing opens the `kra` circuit breaker, after which onboarding stops calling
//! it and still answers 201 with the investor stored PENDING (never a 5xx), a resubmission
//! answers 503 + `Retry-After`, and once the KRA is back the resubmission registers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Harness, Options, investor_body, pan_with};
use serde_json::{Value, json};

/// A KRA stub: fails with 503 while `failing_left > 0` (counting down) or `down`; otherwise
/// registers. Counts calls and remembers the idempotency keys it saw.
#[derive(Clone, Default)]
struct Stub {
    calls: Arc<AtomicUsize>,
    failing_left: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    keys: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stub {
    async fn serve(&self) -> String {
        let stub = self.clone();
        let app = axum::Router::new().route(
            "/v1/kyc/registrations",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                    let stub = stub.clone();
                    async move {
                        stub.calls.fetch_add(1, Ordering::SeqCst);
                        let key = headers["idempotency-key"].to_str().unwrap().to_string();
                        assert_eq!(body["reference"].as_str(), Some(key.as_str()));
                        stub.keys.lock().unwrap().push(key.clone());
                        let failing = stub
                            .failing_left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if failing || stub.down.load(Ordering::SeqCst) {
                            (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                axum::Json(json!({"error": {"code": "MAINTENANCE"}})),
                            )
                        } else {
                            (
                                axum::http::StatusCode::CREATED,
                                axum::Json(json!({"reference": key,
                                    "kra_reference": "KRA-STUB-1", "status": "REGISTERED"})),
                            )
                        }
                    }
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        url
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (format!("NIVESH__SERVICE__KRA__{k}"), v.to_string()))
        .collect()
}

async fn metrics(h: &Harness) -> String {
    h.http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Both scenarios in one test: they share the process' `dependency="kra"` gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kra_retries_transient_failures_and_breaker_keeps_onboarding_up() {
    // 1. Two 503s, then the KRA answers: one onboarding call, three attempts, registered.
    let stub = Stub::default();
    stub.failing_left.store(2, Ordering::SeqCst);
    let h = Harness::start(Options {
        kra_url: Some(stub.serve().await),
        vars: vars(&[
            ("MAX_ATTEMPTS", "3"),
            ("BACKOFF_BASE_MS", "10"),
            ("BACKOFF_MAX_MS", "50"),
            ("RETRY_BUDGET_MIN_PER_SEC", "10"),
        ]),
        ..Options::default()
    })
    .await;
    let view = h
        .onboard("dist-a", &investor_body(&pan_with("1234"), None))
        .await;
    assert_eq!(view["kyc"]["status"], "REGISTERED", "{view}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), 3);
    let keys = stub.keys.lock().unwrap().clone();
    assert!(
        keys.iter()
            .all(|k| Some(k.as_str()) == view["investorId"].as_str()),
        "every attempt carries the investor id as its idempotency key: {keys:?}"
    );
    let m = metrics(&h).await;
    assert!(
        m.contains("nivesh_retries_total{dependency=\"kra\"} 2"),
        "{m}"
    );
    h.stop().await;

    // 2. The KRA is down: the breaker opens after 4 failed attempts (window 4, 50 %); later
    //    onboardings do not reach the KRA, and every answer is 201 PENDING.
    let stub = Stub::default();
    stub.down.store(true, Ordering::SeqCst);
    let h = Harness::start(Options {
        kra_url: Some(stub.serve().await),
        vars: vars(&[
            ("MAX_ATTEMPTS", "2"),
            ("BACKOFF_BASE_MS", "10"),
            ("BACKOFF_MAX_MS", "20"),
            ("RETRY_BUDGET_MIN_PER_SEC", "10"),
            ("BREAKER_WINDOW", "4"),
            ("BREAKER_MINIMUM_CALLS", "4"),
            ("BREAKER_OPEN_SECS", "2"),
            ("BREAKER_HALF_OPEN_CALLS", "1"),
        ]),
        ..Options::default()
    })
    .await;
    let mut pending = Vec::new();
    for _ in 0..6 {
        let view = h
            .onboard("dist-a", &investor_body(&pan_with("1234"), None))
            .await;
        assert_eq!(view["kyc"]["status"], "PENDING", "{view}");
        pending.push(view["investorId"].as_str().unwrap().to_string());
    }
    // Two onboardings × two attempts opened it; the other four never called the KRA.
    assert_eq!(stub.calls.load(Ordering::SeqCst), 4);
    let m = metrics(&h).await;
    assert!(
        m.contains("nivesh_circuit_breaker_state{dependency=\"kra\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("nivesh_kra_requests_total{outcome=\"circuit_open\"}"),
        "{m}"
    );
    // A resubmission while open: 503 problem with Retry-After, no call.
    let r = h
        .http
        .post(format!("{}/v1/investors/{}/kyc", h.base, pending[0]))
        .header("authorization", h.distributor("dist-a"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(stub.calls.load(Ordering::SeqCst), 4);

    // The KRA is back: after open_for, the resubmission is the half-open trial and registers.
    stub.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (s, v, _) = h
        .post(
            &format!("/v1/investors/{}/kyc", pending[0]),
            Some(&h.distributor("dist-a")),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["kyc"]["status"], "REGISTERED");
    let m = metrics(&h).await;
    assert!(
        m.contains("nivesh_circuit_breaker_state{dependency=\"kra\"} 0"),
        "{m}"
    );
    h.stop().await;
}
