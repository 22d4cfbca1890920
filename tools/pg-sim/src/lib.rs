//! nivesh-pg-sim: a small, Razorpay-like payment gateway for local runs and tests.
//!
//! REST (JSON, amounts in paise as integers, timestamps in unix seconds):
//! - `POST /payments` with `Idempotency-Key` (required): `{amount, currency: "INR", reference,
//!   method?, vpa?, notes?}` → `201` with the payment (`status: "created"`). The same key
//!   returns the same payment (`200`), never a second charge; the same key with a different
//!   amount, currency or reference is `409`.
//! - `GET /payments/{id}`: the payment as it is now.
//! - `POST /payments/{id}/refunds` with `Idempotency-Key` (required): `{amount?}` (default: what
//!   is left) → `201` with the refund (`status: "processed"`); same key → same refund (`200`).
//! - `GET /payments?reference=<order id>`: every payment with that reference (inspection: tests
//!   assert exactly one charge per order).
//! - `GET /healthz`.
//! - Fault injection at runtime (tests and drills): `POST /admin/latency` with
//!   `{"response_ms": N}` delays every REST answer above by N ms from now on (0 restores);
//!   `GET /admin/stats` reports `{"api_calls": n, "response_ms": N}` (REST requests received,
//!   so a test can count what reached the gateway).
//!
//! Errors are `{"error": {"code": "BAD_REQUEST_ERROR", "description": ".."}}` with a 4xx.
//!
//! After the configured latency a created payment is settled and a signed webhook
//! (`payment.captured` / `payment.failed`, see [`signature`]) is POSTed to the webhook URL:
//! - VPA `failure@sim` always fails ("payment declined by bank");
//! - VPA `timeout@sim` never settles and never sends a webhook (stays `created`);
//! - VPA `decline@sim` is refused synchronously (`400`, nothing is created);
//! - anything else fails with probability `failure_rate`, else is captured.
//!
//! Outcomes and ids come from one RNG seeded with `seed`, so a run is reproducible for the same
//! sequence of requests. State is in memory only.

pub mod signature;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// VPA that always fails asynchronously (a `payment.failed` webhook).
pub const VPA_FAILURE: &str = "failure@sim";
/// VPA that never settles: no webhook, the payment stays `created`.
pub const VPA_TIMEOUT: &str = "timeout@sim";
/// VPA refused synchronously with `400` (nothing is created).
pub const VPA_DECLINE: &str = "decline@sim";

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Delay between creating a payment and settling it (and sending its webhook).
    pub latency: Duration,
    /// Probability in `[0, 1]` that an ordinary payment fails.
    pub failure_rate: f64,
    /// Where webhooks go; `None`: payments still settle, but nobody is told.
    pub webhook_url: Option<String>,
    /// Shared HMAC secret for webhook signatures.
    pub webhook_secret: String,
    /// Seed of the RNG behind ids and random failures.
    pub seed: u64,
    /// Seconds added to the wall clock for the gateway's own timestamps (`created_at`,
    /// `captured_at`), so a fleet replaying a business date gets captures on that date.
    /// Webhook signature timestamps always use the wall clock.
    pub clock_offset_secs: i64,
    /// Delivery attempts per webhook (non-2xx answers and connection errors are retried).
    pub webhook_attempts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::from_millis(500),
            failure_rate: 0.0,
            webhook_url: None,
            webhook_secret: String::new(),
            seed: 0,
            clock_offset_secs: 0,
            webhook_attempts: 5,
        }
    }
}

/// A payment as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub entity: String,
    /// Paise.
    pub amount: u64,
    pub currency: String,
    /// `created`, `captured` or `failed`.
    pub status: String,
    pub reference: String,
    pub method: String,
    pub vpa: Option<String>,
    pub notes: BTreeMap<String, String>,
    pub error_code: Option<String>,
    pub error_description: Option<String>,
    /// Paise refunded so far.
    pub amount_refunded: u64,
    pub refunds: Vec<Refund>,
    pub created_at: i64,
    pub captured_at: Option<i64>,
}

/// A refund of (part of) a captured payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub entity: String,
    pub payment_id: String,
    /// Paise.
    pub amount: u64,
    pub currency: String,
    pub status: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Capture,
    Fail(&'static str, &'static str),
    Never,
}

#[derive(Default)]
struct Ledger {
    payments: HashMap<String, Payment>,
    /// Creation order, for listings.
    order: Vec<String>,
    /// Payment idempotency key → (amount, currency, reference) and payment id.
    payment_keys: HashMap<String, ((u64, String, String), String)>,
    /// Refund idempotency key → (payment id, amount) and refund id.
    refund_keys: HashMap<String, ((String, u64), String)>,
}

struct Inner {
    /// Delay before every REST answer (milliseconds), changed at runtime by `/admin/latency`.
    response_ms: std::sync::atomic::AtomicU64,
    /// REST requests received.
    api_calls: std::sync::atomic::AtomicU64,
    config: SimConfig,
    state: Mutex<Ledger>,
    rng: Mutex<StdRng>,
    http: reqwest::Client,
}

/// The simulator; cheap to clone (shared state).
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client builds with static settings");
        Sim {
            inner: Arc::new(Inner {
                response_ms: std::sync::atomic::AtomicU64::new(0),
                api_calls: std::sync::atomic::AtomicU64::new(0),
                rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
                config,
                state: Mutex::new(Ledger::default()),
                http,
            }),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Delay every REST answer by `delay` from now on (zero restores).
    pub fn set_response_delay(&self, delay: Duration) {
        self.inner.response_ms.store(
            delay.as_millis() as u64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// REST requests received so far (payments, refunds, lookups).
    pub fn api_calls(&self) -> u64 {
        self.inner
            .api_calls
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The gateway's "now" (wall clock plus the configured offset).
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.inner.config.clock_offset_secs)
    }

    fn state(&self) -> MutexGuard<'_, Ledger> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn new_id(&self, prefix: &str) -> String {
        let suffix: String = self
            .rng()
            .sample_iter(&Alphanumeric)
            .take(14)
            .map(char::from)
            .collect();
        format!("{prefix}_{suffix}")
    }

    /// Every payment whose reference is `reference` (all payments for `None`), oldest first.
    pub fn payments(&self, reference: Option<&str>) -> Vec<Payment> {
        let state = self.state();
        state
            .order
            .iter()
            .filter_map(|id| state.payments.get(id))
            .filter(|p| reference.is_none_or(|r| p.reference == r))
            .cloned()
            .collect()
    }

    /// One payment by gateway id.
    pub fn payment(&self, id: &str) -> Option<Payment> {
        self.state().payments.get(id).cloned()
    }

    fn decide(&self, vpa: Option<&str>) -> Outcome {
        match vpa {
            Some(VPA_FAILURE) => Outcome::Fail(
                "BAD_REQUEST_ERROR",
                "BAD_REQUEST_ERROR: payment declined by bank",
            ),
            Some(VPA_TIMEOUT) => Outcome::Never,
            _ => {
                let roll: f64 = self.rng().random();
                if roll < self.inner.config.failure_rate {
                    Outcome::Fail("GATEWAY_ERROR", "GATEWAY_ERROR: payment failed at the bank")
                } else {
                    Outcome::Capture
                }
            }
        }
    }

    /// Settle after the latency, then tell the merchant.
    fn schedule(&self, id: String, outcome: Outcome) {
        if outcome == Outcome::Never {
            tracing::info!(payment = %id, "payment will never settle (timeout@sim)");
            return;
        }
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(sim.inner.config.latency).await;
            let Some((payment, event)) = sim.settle(&id, outcome) else {
                return;
            };
            sim.send_webhook(event, &payment).await;
        });
    }

    fn settle(&self, id: &str, outcome: Outcome) -> Option<(Payment, &'static str)> {
        let now = self.now().timestamp();
        let mut state = self.state();
        let p = state.payments.get_mut(id)?;
        if p.status != "created" {
            return None;
        }
        let event = match outcome {
            Outcome::Capture => {
                p.status = "captured".into();
                p.captured_at = Some(now);
                "payment.captured"
            }
            Outcome::Fail(code, description) => {
                p.status = "failed".into();
                p.error_code = Some(code.into());
                p.error_description = Some(description.into());
                "payment.failed"
            }
            Outcome::Never => return None,
        };
        tracing::info!(payment = %id, status = %p.status, "payment settled");
        Some((p.clone(), event))
    }

    async fn send_webhook(&self, event: &str, payment: &Payment) {
        let Some(url) = self.inner.config.webhook_url.clone() else {
            return;
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "entity": "event",
            "event": event,
            "created_at": self.now().timestamp(),
            "payload": { "payment": { "entity": payment } },
        }))
        .expect("a payment serializes");
        let attempts = self.inner.config.webhook_attempts.max(1);
        for attempt in 1..=attempts {
            // Re-signed per attempt: the receiver rejects stale timestamps.
            let ts = Utc::now().timestamp();
            let sig = signature::sign(self.inner.config.webhook_secret.as_bytes(), ts, &body);
            let sent = self
                .inner
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header(signature::TIMESTAMP_HEADER, ts.to_string())
                .header(signature::SIGNATURE_HEADER, sig)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(payment = %payment.id, event, "webhook delivered");
                    return;
                }
                Ok(r) => {
                    tracing::warn!(payment = %payment.id, event, attempt, status = %r.status(), "webhook refused")
                }
                Err(e) => {
                    tracing::warn!(payment = %payment.id, event, attempt, error = %e, "webhook not delivered")
                }
            }
            if attempt < attempts {
                tokio::time::sleep(Duration::from_millis(250 << (attempt - 1).min(5))).await;
            }
        }
        tracing::error!(payment = %payment.id, event, "webhook given up");
    }
}

/// The gateway's REST API.
pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/payments", post(create_payment).get(list_payments))
        .route("/payments/{id}", get(get_payment))
        .route("/payments/{id}/refunds", post(create_refund))
        .route_layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            count_and_delay,
        ))
        .route("/healthz", get(|| async { "ok" }))
        .route("/admin/latency", post(set_latency))
        .route("/admin/stats", get(stats))
        .with_state(sim)
}

/// Counts every REST request and holds it for the configured response delay.
async fn count_and_delay(
    State(sim): State<Sim>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use std::sync::atomic::Ordering;
    sim.inner.api_calls.fetch_add(1, Ordering::SeqCst);
    let ms = sim.inner.response_ms.load(Ordering::SeqCst);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    next.run(req).await
}

#[derive(Debug, Deserialize)]
struct Latency {
    response_ms: u64,
}

async fn set_latency(State(sim): State<Sim>, Json(l): Json<Latency>) -> Response {
    sim.set_response_delay(Duration::from_millis(l.response_ms));
    tracing::warn!(response_ms = l.response_ms, "response delay changed");
    Json(serde_json::json!({ "response_ms": l.response_ms })).into_response()
}

async fn stats(State(sim): State<Sim>) -> Response {
    let response_ms = sim
        .inner
        .response_ms
        .load(std::sync::atomic::Ordering::SeqCst);
    Json(serde_json::json!({ "api_calls": sim.api_calls(), "response_ms": response_ms }))
        .into_response()
}

/// Serve `sim` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Sim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

fn gw_error(status: StatusCode, description: impl Into<String>) -> Response {
    let code = if status == StatusCode::NOT_FOUND {
        "NOT_FOUND_ERROR"
    } else {
        "BAD_REQUEST_ERROR"
    };
    (
        status,
        Json(serde_json::json!({ "error": { "code": code, "description": description.into() } })),
    )
        .into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Response> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .map(str::to_owned)
        .ok_or_else(|| {
            gw_error(
                StatusCode::BAD_REQUEST,
                "the Idempotency-Key header is required (1-128 characters)",
            )
        })
}

#[derive(Debug, Deserialize)]
struct CreatePayment {
    amount: u64,
    currency: String,
    reference: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    vpa: Option<String>,
    #[serde(default)]
    notes: BTreeMap<String, String>,
}

async fn create_payment(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let req: CreatePayment = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return gw_error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };
    if req.amount == 0 {
        return gw_error(StatusCode::BAD_REQUEST, "amount must be at least 1 paisa");
    }
    if req.currency != "INR" {
        return gw_error(StatusCode::BAD_REQUEST, "only INR is supported");
    }
    if req.reference.trim().is_empty() {
        return gw_error(StatusCode::BAD_REQUEST, "reference is required");
    }
    if req.vpa.as_deref() == Some(VPA_DECLINE) {
        return gw_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST_ERROR: invalid VPA, payment declined",
        );
    }
    let fingerprint = (req.amount, req.currency.clone(), req.reference.clone());
    // Checked and recorded under one lock: two concurrent requests with one key create one payment.
    let new_id = sim.new_id("pay");
    let outcome = sim.decide(req.vpa.as_deref());
    let created_at = sim.now().timestamp();
    let payment = {
        let mut state = sim.state();
        if let Some((seen, id)) = state.payment_keys.get(&key) {
            if *seen != fingerprint {
                return gw_error(
                    StatusCode::CONFLICT,
                    "Idempotency-Key was already used with a different amount, currency or reference",
                );
            }
            let existing = state.payments.get(id).cloned();
            drop(state);
            tracing::info!(key = %key, "idempotent replay of a payment");
            return match existing {
                Some(p) => (StatusCode::OK, Json(p)).into_response(),
                None => gw_error(StatusCode::NOT_FOUND, "payment vanished"),
            };
        }
        let payment = Payment {
            id: new_id.clone(),
            entity: "payment".into(),
            amount: req.amount,
            currency: req.currency,
            status: "created".into(),
            reference: req.reference,
            method: req.method.unwrap_or_else(|| "upi".into()),
            vpa: req.vpa,
            notes: req.notes,
            error_code: None,
            error_description: None,
            amount_refunded: 0,
            refunds: Vec::new(),
            created_at,
            captured_at: None,
        };
        state
            .payment_keys
            .insert(key, (fingerprint, new_id.clone()));
        state.order.push(new_id.clone());
        state.payments.insert(new_id.clone(), payment.clone());
        payment
    };
    tracing::info!(payment = %payment.id, reference = %payment.reference, amount = payment.amount, "payment created");
    sim.schedule(new_id, outcome);
    (StatusCode::CREATED, Json(payment)).into_response()
}

async fn get_payment(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    match sim.payment(&id) {
        Some(p) => Json(p).into_response(),
        None => gw_error(StatusCode::NOT_FOUND, "The id provided does not exist"),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    reference: Option<String>,
}

async fn list_payments(State(sim): State<Sim>, Query(p): Query<ListParams>) -> Response {
    let items = sim.payments(p.reference.as_deref());
    Json(serde_json::json!({ "entity": "collection", "count": items.len(), "items": items }))
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct CreateRefund {
    #[serde(default)]
    amount: Option<u64>,
}

async fn create_refund(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let req: CreateRefund = if body.is_empty() {
        CreateRefund::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return gw_error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
        }
    };
    let refund_id = sim.new_id("rfnd");
    let created_at = sim.now().timestamp();
    let mut state = sim.state();
    let Some(payment) = state.payments.get(&id).cloned() else {
        return gw_error(StatusCode::NOT_FOUND, "The id provided does not exist");
    };
    let remaining = payment.amount - payment.amount_refunded;
    let amount = req.amount.unwrap_or(remaining);
    if let Some(((pid, amt), rid)) = state.refund_keys.get(&key) {
        if *pid != id || req.amount.is_some_and(|a| a != *amt) {
            return gw_error(
                StatusCode::CONFLICT,
                "Idempotency-Key was already used for a different refund",
            );
        }
        let existing = payment.refunds.iter().find(|r| r.id == *rid).cloned();
        return match existing {
            Some(r) => (StatusCode::OK, Json(r)).into_response(),
            None => gw_error(StatusCode::NOT_FOUND, "refund vanished"),
        };
    }
    if payment.status != "captured" {
        return gw_error(
            StatusCode::BAD_REQUEST,
            "The payment has not been captured and cannot be refunded",
        );
    }
    if amount == 0 || amount > remaining {
        return gw_error(
            StatusCode::BAD_REQUEST,
            format!("refund amount must be between 1 and {remaining} paise"),
        );
    }
    let refund = Refund {
        id: refund_id.clone(),
        entity: "refund".into(),
        payment_id: id.clone(),
        amount,
        currency: payment.currency.clone(),
        status: "processed".into(),
        created_at,
    };
    state
        .refund_keys
        .insert(key, ((id.clone(), amount), refund_id));
    if let Some(p) = state.payments.get_mut(&id) {
        p.amount_refunded += amount;
        p.refunds.push(refund.clone());
    }
    drop(state);
    tracing::info!(payment = %id, refund = %refund.id, amount, "refund processed");
    (StatusCode::CREATED, Json(refund)).into_response()
}
