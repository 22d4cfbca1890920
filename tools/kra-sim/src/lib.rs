//! nivesh-kra-sim: a small KYC Registration Agency (KRA) simulator for local runs and tests.
//!
//! REST (JSON):
//! - `POST /v1/kyc/registrations` with `Idempotency-Key` (required, = `reference`):
//!   `{reference, pan, name, date_of_birth}` → `201` `{reference, kra_reference, status:
//!   "REGISTERED", registered_at}`. The same reference returns the same registration (`200`);
//!   the same reference with another PAN is `409`. A malformed PAN is `400`.
//! - `GET /v1/kyc/registrations/{reference}`: the registration as it is now.
//! - `GET /healthz`.
//!
//! After the configured latency the registration gets its verdict and a signed callback
//! (`X-Nivesh-Timestamp`/`X-Nivesh-Signature`, see [`signature`]) is POSTed to the callback URL:
//! `{event: "kyc.status", reference, kra_reference, status, reason, decided_at}`. The verdict
//! is picked by the PAN's digits (characters 6-9), so tests choose outcomes:
//! - `9999` → `REJECTED` ("PAN and name do not match");
//! - `8888` → `ON_HOLD` ("address proof pending");
//! - anything else → `VALIDATED`.
//!
//! The simulator never logs a PAN (only the masked form). State is in memory only.

pub mod signature;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// PAN digits (characters 6-9) that make the KRA reject the registration.
pub const REJECT_DIGITS: &str = "9999";
/// PAN digits that put the registration on hold.
pub const HOLD_DIGITS: &str = "8888";

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Delay between registering and deciding (and sending the callback).
    pub latency: Duration,
    /// Where callbacks go; `None`: registrations are still decided, but nobody is told.
    pub callback_url: Option<String>,
    /// Shared HMAC secret for callback signatures.
    pub callback_secret: String,
    /// Delivery attempts per callback (non-2xx answers and connection errors are retried).
    pub callback_attempts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::from_millis(300),
            callback_url: None,
            callback_secret: String::new(),
            callback_attempts: 5,
        }
    }
}

/// A registration as the KRA reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub reference: String,
    pub kra_reference: String,
    /// `REGISTERED`, then `VALIDATED`, `ON_HOLD` or `REJECTED`.
    pub status: String,
    pub reason: Option<String>,
    /// `XXXXXX234F`.
    pub pan_masked: String,
    pub registered_at: i64,
    pub decided_at: Option<i64>,
    /// Callbacks delivered with a 2xx answer.
    pub callbacks_delivered: u32,
    #[serde(skip)]
    pan: String,
}

/// The registration request.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RegisterRequest {
    pub reference: String,
    pub pan: String,
    pub name: String,
    pub date_of_birth: String,
}

/// The callback body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub event: String,
    pub reference: String,
    pub kra_reference: String,
    pub status: String,
    pub reason: Option<String>,
    /// Unix seconds.
    pub decided_at: i64,
}

#[derive(Default)]
struct SimState {
    registrations: HashMap<String, Registration>,
    next: u64,
}

/// The simulator's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Sim {
    config: Arc<SimConfig>,
    state: Arc<Mutex<SimState>>,
    http: reqwest::Client,
}

fn error(status: StatusCode, code: &str, description: impl Into<String>) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code, "description": description.into()}})),
    )
        .into_response()
}

fn masked(pan: &str) -> String {
    if pan.len() == 10 && pan.is_ascii() {
        format!("XXXXXX{}", &pan[6..])
    } else {
        "XXXXXXXXXX".into()
    }
}

fn pan_shape_ok(pan: &str) -> bool {
    let b = pan.as_bytes();
    b.len() == 10
        && b[..5].iter().all(u8::is_ascii_uppercase)
        && b[5..9].iter().all(u8::is_ascii_digit)
        && b[9].is_ascii_uppercase()
}

/// The verdict the simulator gives a PAN.
pub fn verdict(pan: &str) -> (&'static str, Option<&'static str>) {
    match pan.get(5..9) {
        Some(REJECT_DIGITS) => ("REJECTED", Some("PAN and name do not match")),
        Some(HOLD_DIGITS) => ("ON_HOLD", Some("address proof pending")),
        _ => ("VALIDATED", None),
    }
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        Sim {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(SimState::default())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A registration by our reference (inspection for tests).
    pub fn registration(&self, reference: &str) -> Option<Registration> {
        self.lock().registrations.get(reference).cloned()
    }

    /// How many registrations exist.
    pub fn registrations(&self) -> usize {
        self.lock().registrations.len()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/kyc/registrations", post(register))
            .route("/v1/kyc/registrations/{reference}", get(lookup))
            .with_state(self.clone())
    }

    /// Decide after the latency and deliver the callback (with retries).
    fn schedule(&self, reference: String) {
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(sim.config.latency).await;
            let callback = {
                let mut st = sim.lock();
                let Some(r) = st.registrations.get_mut(&reference) else {
                    return;
                };
                let (status, reason) = verdict(&r.pan);
                r.status = status.into();
                r.reason = reason.map(str::to_string);
                r.decided_at = Some(Utc::now().timestamp());
                Callback {
                    event: "kyc.status".into(),
                    reference: r.reference.clone(),
                    kra_reference: r.kra_reference.clone(),
                    status: r.status.clone(),
                    reason: r.reason.clone(),
                    decided_at: r.decided_at.unwrap_or_default(),
                }
            };
            tracing::info!(reference = %callback.reference, status = %callback.status, "KYC decided");
            if let Some(url) = sim.config.callback_url.clone() {
                sim.deliver(&url, &callback).await;
            }
        });
    }

    async fn deliver(&self, url: &str, callback: &Callback) {
        let body = serde_json::to_vec(callback).expect("a callback serializes");
        for attempt in 1..=self.config.callback_attempts.max(1) {
            let ts = Utc::now().timestamp();
            let sig = signature::sign(self.config.callback_secret.as_bytes(), ts, &body);
            let sent = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .header(signature::TIMESTAMP_HEADER, ts.to_string())
                .header(signature::SIGNATURE_HEADER, sig)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    if let Some(reg) = self.lock().registrations.get_mut(&callback.reference) {
                        reg.callbacks_delivered += 1;
                    }
                    return;
                }
                Ok(r) => {
                    tracing::warn!(attempt, status = %r.status(), reference = %callback.reference, "callback refused")
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, reference = %callback.reference, "callback failed")
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        tracing::error!(reference = %callback.reference, "callback given up");
    }
}

async fn register(State(sim): State<Sim>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Idempotency-Key is required",
        );
    };
    let req: RegisterRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string()),
    };
    if key != req.reference {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Idempotency-Key must equal reference",
        );
    }
    if !pan_shape_ok(&req.pan) {
        return error(StatusCode::BAD_REQUEST, "INVALID_PAN", "PAN is malformed");
    }
    if req.name.trim().is_empty() || req.date_of_birth.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "name and date_of_birth are required",
        );
    }
    let (reg, created) = {
        let mut st = sim.lock();
        if let Some(existing) = st.registrations.get(&req.reference) {
            if existing.pan != req.pan {
                return error(
                    StatusCode::CONFLICT,
                    "IDEMPOTENCY_CONFLICT",
                    "reference already registered with another PAN",
                );
            }
            (existing.clone(), false)
        } else {
            st.next += 1;
            let reg = Registration {
                reference: req.reference.clone(),
                kra_reference: format!("KRA{:010}", st.next),
                status: "REGISTERED".into(),
                reason: None,
                pan_masked: masked(&req.pan),
                registered_at: Utc::now().timestamp(),
                decided_at: None,
                callbacks_delivered: 0,
                pan: req.pan.clone(),
            };
            st.registrations.insert(req.reference.clone(), reg.clone());
            (reg, true)
        }
    };
    if created {
        tracing::info!(reference = %reg.reference, pan = %reg.pan_masked, "KYC registered");
        sim.schedule(reg.reference.clone());
        (StatusCode::CREATED, Json(reg)).into_response()
    } else {
        (StatusCode::OK, Json(reg)).into_response()
    }
}

async fn lookup(State(sim): State<Sim>, Path(reference): Path<String>) -> Response {
    match sim.registration(&reference) {
        Some(r) => Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such registration"),
    }
}

/// Serve the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Sim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Magic digits pick the verdict.
    #[test]
    fn verdicts() {
        assert_eq!(verdict("ABCPE9999F").0, "REJECTED");
        assert_eq!(verdict("ABCPE8888F").0, "ON_HOLD");
        assert_eq!(verdict("ABCPE1234F"), ("VALIDATED", None));
        assert_eq!(masked("ABCPE1234F"), "XXXXXX234F");
    }

    /// Registration is idempotent by reference, conflicts on another PAN, and the callback
    /// arrives signed with the decided status.
    #[tokio::test]
    async fn register_decide_and_call_back() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, Vec<u8>)>();
        let receiver = Router::new().route(
            "/cb",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    StatusCode::OK
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cb_addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, receiver).await });

        let sim = Sim::new(SimConfig {
            latency: Duration::from_millis(50),
            callback_url: Some(format!("http://{cb_addr}/cb")),
            callback_secret: "s".into(),
            callback_attempts: 3,
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(l, sim.clone(), std::future::pending()));
        let http = reqwest::Client::new();
        let req = RegisterRequest {
            reference: "inv-1".into(),
            pan: "ABCPE8888F".into(),
            name: "Asha Verma".into(),
            date_of_birth: "1990-04-12".into(),
        };
        let url = format!("http://{addr}/v1/kyc/registrations");
        let first = http
            .post(&url)
            .header("idempotency-key", "inv-1")
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 201);
        let first: Registration = first.json().await.unwrap();
        assert_eq!(first.status, "REGISTERED");
        let again = http
            .post(&url)
            .header("idempotency-key", "inv-1")
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(
            again.json::<Registration>().await.unwrap().kra_reference,
            first.kra_reference
        );
        let mut other = req.clone();
        other.pan = "ABCPE1234F".into();
        let conflict = http
            .post(&url)
            .header("idempotency-key", "inv-1")
            .json(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(conflict.status(), 409);

        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let cb: Callback = serde_json::from_slice(&body).unwrap();
        assert_eq!(cb.status, "ON_HOLD");
        assert_eq!(cb.kra_reference, first.kra_reference);
        let ts: i64 = headers[signature::TIMESTAMP_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            headers[signature::SIGNATURE_HEADER].to_str().unwrap(),
            signature::sign(b"s", ts, &body)
        );
        assert!(!String::from_utf8_lossy(&body).contains("ABCPE8888F"));
        assert_eq!(sim.registrations(), 1);
    }
}
