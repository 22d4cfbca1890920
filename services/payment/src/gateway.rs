//! The payment gateway adapter: Razorpay-like REST over HTTP with nivesh-resilience around
//! every call (docs/resilience.md):
//! - a bulkhead (`max_concurrent_calls`; a call waits at most `bulkhead_wait_ms` for a slot);
//! - a per-attempt timeout of `min(request_timeout_ms, what is left of the task's deadline)`;
//! - in-call retries of transient failures only, exponential backoff with full jitter, within
//!   the gateway's retry budget (`retry_budget_ratio`: ~10 % extra load at most) and deadline;
//! - a circuit breaker on failure rate and slow-call rate ([`crate::breaker`]).
//!
//! Every create and refund carries the gateway's own `Idempotency-Key`, so a retry (in the
//! call, from a bus retry tier, or after a crash) never charges or refunds twice.
//!
//! Classification of one attempt:
//!
//! | answer                                   | retried here | breaker  | result                  |
//! | ---------------------------------------- | ------------ | -------- | ----------------------- |
//! | 2xx with the expected body               | -            | success  | `Ok`                    |
//! | connect error, timeout, 5xx, 408, 429     | yes          | failure  | `Unavailable` when out  |
//! | 404                                      | no           | success  | `NotFound`              |
//! | other 4xx with `{"error": {code, ..}}`   | no           | success  | `Declined`              |
//! | other 4xx without it, unreadable 2xx body | no           | failure  | `Unavailable`           |
//! | breaker open                             | no (no call) | -        | `CircuitOpen`           |

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nivesh_resilience::{Backoff, Bulkhead, RetryPolicy, deadline};

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::breaker::{BREAKER_STATE_GAUGE, CircuitBreaker, DEPENDENCY};
use crate::config::GatewayConfig;

/// Histogram: seconds per gateway attempt, by `op` and `outcome`.
pub const GATEWAY_SECONDS: &str = "nivesh_payment_gateway_request_seconds";
/// Counter: gateway attempts by `op` and `outcome`.
pub const GATEWAY_REQUESTS: &str = "nivesh_payment_gateway_requests_total";

/// A payment as the gateway reports it (amounts in paise, times in unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GatewayPayment {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    /// `created`, `authorized`, `captured` or `failed`.
    pub status: String,
    /// Our order id.
    pub reference: String,
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub captured_at: Option<i64>,
}

/// A refund as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRefund {
    pub id: String,
    pub payment_id: String,
    pub amount: u64,
    pub status: String,
    #[serde(default)]
    pub created_at: i64,
}

/// `POST /payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatePayment {
    pub amount: u64,
    pub currency: String,
    pub reference: String,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpa: Option<String>,
    pub notes: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    description: String,
}

/// How a gateway call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused for a business reason (bad VPA, not refundable, ...).
    #[error("declined by the gateway ({code}): {description}")]
    Declined { code: String, description: String },
    /// The payment does not exist at the gateway.
    #[error("not found at the gateway")]
    NotFound,
    /// Transient failures exhausted this call's attempts, or the answer was unusable.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open: the gateway was not called.
    #[error("payment gateway temporarily unavailable (circuit open)")]
    CircuitOpen,
}

impl GatewayError {
    /// Worth trying again later (through the bus retry tiers or the reconciler).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GatewayError::Unavailable(_) | GatewayError::CircuitOpen
        )
    }
}

enum Attempt<T> {
    Done(Result<T, GatewayError>),
    /// Retry-worthy; the breaker counts it.
    Transient(String),
    /// Not retried, but the gateway misbehaved; the breaker counts it.
    Broken(String),
}

/// Why one attempt did not produce the call's answer (what the retry loop sees).
enum AttemptError {
    /// The breaker refused: no call was made, no retry is made.
    Open,
    /// Retry-worthy.
    Transient(String),
    /// Final: the gateway misbehaved, or answered with a business refusal.
    Final(GatewayError),
}

/// The gateway client. Cheap to share (`Arc`), one breaker, retry budget and bulkhead per
/// gateway.
pub struct GatewayClient {
    http: reqwest::Client,
    base: String,
    request_timeout: Duration,
    retry: RetryPolicy,
    bulkhead: Bulkhead,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient")
            .field("base", &self.base)
            .field("max_attempts", &self.retry.max_attempts())
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl GatewayClient {
    pub fn new(cfg: &GatewayConfig) -> Result<Self, String> {
        let base = cfg.base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "service.gateway.base_url must be an http(s) URL, got {:?}",
                cfg.base_url
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout())
            .connect_timeout(cfg.connect_timeout())
            .build()
            .map_err(|e| format!("gateway HTTP client: {e}"))?;
        let backoff = cfg.backoff();
        metrics::gauge!(BREAKER_STATE_GAUGE).set(0.0);
        Ok(GatewayClient {
            http,
            base,
            request_timeout: cfg.request_timeout(),
            retry: RetryPolicy::new(
                DEPENDENCY,
                cfg.max_attempts,
                Backoff::new(backoff.base, backoff.max),
                cfg.retry_budget(),
            ),
            bulkhead: Bulkhead::new(
                DEPENDENCY,
                cfg.max_concurrent_calls,
                Duration::from_millis(cfg.bulkhead_wait_ms),
            ),
            breaker: CircuitBreaker::new(DEPENDENCY, cfg.breaker()),
        })
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Create (or, for a known key, fetch) a payment. The key must be the order id.
    pub async fn create_payment(
        &self,
        req: &CreatePayment,
        idempotency_key: &str,
    ) -> Result<GatewayPayment, GatewayError> {
        let url = format!("{}/payments", self.base);
        self.call("create_payment", || {
            self.http
                .post(&url)
                .header("Idempotency-Key", idempotency_key)
                .json(req)
        })
        .await
    }

    /// The payment as the gateway sees it now.
    pub async fn get_payment(&self, id: &str) -> Result<GatewayPayment, GatewayError> {
        let url = format!("{}/payments/{}", self.base, path_segment(id));
        self.call("get_payment", || self.http.get(&url)).await
    }

    /// Refund `amount` paise of payment `id`; the key makes it exactly once (`rfd-{order id}`).
    pub async fn refund(
        &self,
        id: &str,
        amount: u64,
        idempotency_key: &str,
    ) -> Result<GatewayRefund, GatewayError> {
        let url = format!("{}/payments/{}/refunds", self.base, path_segment(id));
        let body = serde_json::json!({ "amount": amount });
        self.call("refund", || {
            self.http
                .post(&url)
                .header("Idempotency-Key", idempotency_key)
                .json(&body)
        })
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, GatewayError> {
        let _slot = self
            .bulkhead
            .acquire()
            .await
            .map_err(|e| GatewayError::Unavailable(format!("{op}: {e}")))?;
        let result = self
            .retry
            .run(
                |attempt| self.attempt::<T>(op, attempt, &request),
                |e| matches!(e, AttemptError::Transient(_)),
            )
            .await;
        metrics::gauge!(BREAKER_STATE_GAUGE).set(self.breaker.state().value());
        result.map_err(|e| match e {
            AttemptError::Open => GatewayError::CircuitOpen,
            AttemptError::Transient(reason) => GatewayError::Unavailable(reason),
            AttemptError::Final(e) => e,
        })
    }

    /// One attempt through the breaker, under `min(request timeout, deadline)`.
    async fn attempt<T: DeserializeOwned>(
        &self,
        op: &'static str,
        attempt: u32,
        request: &impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, AttemptError> {
        let Ok(permit) = self.breaker.try_acquire() else {
            metrics::counter!(GATEWAY_REQUESTS, "op" => op, "outcome" => "circuit_open")
                .increment(1);
            return Err(AttemptError::Open);
        };
        let started = Instant::now();
        let timeout = deadline::budget(self.request_timeout);
        let (outcome, label) = match request().timeout(timeout).send().await {
            Err(e) => {
                let label = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect_error"
                } else {
                    "transport_error"
                };
                (Attempt::Transient(format!("{op}: {e}")), label)
            }
            Ok(resp) => classify::<T>(op, resp).await,
        };
        metrics::histogram!(GATEWAY_SECONDS, "op" => op, "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(GATEWAY_REQUESTS, "op" => op, "outcome" => label).increment(1);
        match outcome {
            Attempt::Done(result) => {
                permit.record(false);
                result.map_err(AttemptError::Final)
            }
            Attempt::Broken(reason) => {
                permit.record(true);
                Err(AttemptError::Final(GatewayError::Unavailable(reason)))
            }
            Attempt::Transient(reason) => {
                permit.record(true);
                tracing::warn!(op, attempt = attempt + 1, error = %reason, "payment gateway attempt failed");
                Err(AttemptError::Transient(reason))
            }
        }
    }
}

async fn classify<T: DeserializeOwned>(
    op: &str,
    resp: reqwest::Response,
) -> (Attempt<T>, &'static str) {
    let status = resp.status();
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if transient {
        let label = if status == StatusCode::TOO_MANY_REQUESTS {
            "http_429"
        } else {
            "http_5xx"
        };
        return (
            Attempt::Transient(format!("{op}: gateway answered {status}")),
            label,
        );
    }
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let label = if e.is_timeout() {
                "timeout"
            } else {
                "transport_error"
            };
            return (
                Attempt::Transient(format!("{op}: reading the answer: {e}")),
                label,
            );
        }
    };
    if status.is_success() {
        return match serde_json::from_slice::<T>(&body) {
            Ok(v) => (Attempt::Done(Ok(v)), "ok"),
            Err(e) => (
                Attempt::Broken(format!("{op}: unreadable {status} answer: {e}")),
                "bad_response",
            ),
        };
    }
    if status == StatusCode::NOT_FOUND {
        return (Attempt::Done(Err(GatewayError::NotFound)), "not_found");
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (
            Attempt::Done(Err(GatewayError::Declined {
                code: e.error.code,
                description: e.error.description,
            })),
            "declined",
        ),
        Err(_) => (
            Attempt::Broken(format!("{op}: unexpected {status} without an error body")),
            "bad_response",
        ),
    }
}

/// Gateway ids are `[A-Za-z0-9_-]` in practice; anything else is percent-encoded so an id can
/// never change the path it is put in.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids cannot escape their path segment.
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("pay_AbC-1.2"), "pay_AbC-1.2");
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
    }

    /// Only unavailability is worth a later retry.
    #[test]
    fn transient_errors() {
        assert!(GatewayError::CircuitOpen.is_transient());
        assert!(GatewayError::Unavailable("x".into()).is_transient());
        assert!(!GatewayError::NotFound.is_transient());
        assert!(
            !GatewayError::Declined {
                code: "BAD_REQUEST_ERROR".into(),
                description: String::new()
            }
            .is_transient()
        );
    }
}
