//! The KRA (KYC Registration Agency) adapter over HTTP.
//!
//! `POST {base}/v1/kyc/registrations` with `Idempotency-Key: <investor id>` and
//! `{reference, pan, name, date_of_birth}` → `{reference, kra_reference, status}`. The reference
//! is our investor id, so a repeated submission (a retry after a timeout, a resubmission)
//! returns the same registration instead of a second one. The verdict arrives later as a
//! signed callback (`POST /v1/kyc/callback`, see `api`).
//!
//! Every call goes through nivesh-resilience, the way the payment gateway client does
//! (docs/resilience.md, "KYC/KRA"):
//! - a bulkhead (`max_concurrent_calls`, waiting at most `bulkhead_wait_ms` for a slot);
//! - per attempt a timeout of `min(request_timeout_ms, what is left of the request's deadline)`;
//! - in-call retries of transient failures only (connect error, timeout, 5xx, 408, 429), with
//!   full-jitter backoff, within the KRA's retry budget (~10 % extra load) and the deadline.
//!   Safe because the registration is idempotent (the `Idempotency-Key` above);
//! - a circuit breaker `dependency="kra"` on failure rate and slow-call rate: while open no
//!   call is made and the registration fails at once as unavailable, so the investor stays
//!   `PENDING` (onboarding still answers 201) and a resubmission answers 503 + `Retry-After`.
//!
//! | answer                                     | retried | breaker | result        |
//! | ------------------------------------------ | ------- | ------- | ------------- |
//! | 2xx with the registration                  | -       | success | `Ok`          |
//! | connect error, timeout, 5xx, 408, 429       | yes     | failure | `Unavailable` |
//! | other 4xx                                  | no      | success | `Refused`     |
//! | unreadable 2xx                             | no      | failure | `Unavailable` |
//! | breaker open, bulkhead full                | no      | -       | `Unavailable` |
//!
//! The PAN is sent because the KRA needs it; it is never logged (errors carry only status
//! codes and the KRA's error code).

use std::time::Instant;

use nivesh_resilience::{Bulkhead, CircuitBreaker, RetryPolicy, deadline};
use serde::{Deserialize, Serialize};

use crate::config::KraConfig;

/// The breaker's, bulkhead's and retry budget's `dependency` label.
pub const DEPENDENCY: &str = "kra";
/// Counter: KRA attempts by `outcome`.
pub const KRA_REQUESTS: &str = "nivesh_kra_requests_total";
/// Histogram: seconds per KRA attempt, by `outcome`.
pub const KRA_SECONDS: &str = "nivesh_kra_request_seconds";

#[derive(Debug, thiserror::Error)]
pub enum KraError {
    /// Timeouts, connection failures, 5xx, 429 (after this call's retries), an unusable
    /// answer, the breaker open or the bulkhead full: worth retrying later.
    #[error("KRA unavailable: {0}")]
    Unavailable(String),
    /// The KRA refused the registration (4xx).
    #[error("KRA refused the registration ({status}): {code}")]
    Refused { status: u16, code: String },
}

#[derive(Debug, Serialize)]
struct RegisterBody<'a> {
    reference: &'a str,
    pan: &'a str,
    name: &'a str,
    date_of_birth: String,
}

/// What the KRA answers to a registration.
#[derive(Debug, Clone, Deserialize)]
pub struct KraRegistration {
    pub reference: String,
    pub kra_reference: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
struct KraErrorBody {
    error: KraErrorDetail,
}

#[derive(Debug, Deserialize)]
struct KraErrorDetail {
    code: String,
}

/// The callback the KRA POSTs (authenticated by [`crate::signature`]).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct KraCallback {
    /// `kyc.status`.
    pub event: String,
    /// Our investor id.
    pub reference: String,
    pub kra_reference: String,
    /// VALIDATED, ON_HOLD or REJECTED.
    pub status: String,
    pub reason: Option<String>,
    /// Unix seconds.
    pub decided_at: i64,
}

/// One attempt's verdict, for the retry loop and the breaker.
enum Attempt {
    Done(Result<KraRegistration, KraError>),
    /// Retry-worthy; the breaker counts it as a failure.
    Transient(String),
    /// Not retried, but the KRA misbehaved; the breaker counts it as a failure.
    Broken(String),
}

/// The KRA client: one breaker, retry budget and bulkhead per process. Cheap to clone (clones
/// share them).
#[derive(Clone)]
pub struct KraClient {
    http: reqwest::Client,
    base_url: String,
    request_timeout: std::time::Duration,
    retry: RetryPolicy,
    bulkhead: Bulkhead,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for KraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KraClient")
            .field("base_url", &self.base_url)
            .field("max_attempts", &self.retry.max_attempts())
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl KraClient {
    pub fn new(config: &KraConfig) -> Result<Self, String> {
        let request_timeout = std::time::Duration::from_millis(config.request_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(std::time::Duration::from_millis(
                config.request_timeout_ms.clamp(1, 1_000),
            ))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(KraClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            request_timeout,
            retry: config.retry(DEPENDENCY),
            bulkhead: Bulkhead::new(
                DEPENDENCY,
                config.max_concurrent_calls,
                std::time::Duration::from_millis(config.bulkhead_wait_ms),
            ),
            breaker: CircuitBreaker::new(DEPENDENCY, config.breaker()),
        })
    }

    /// The breaker (for readiness reports and tests).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Register (or re-register, idempotently) an investor for KYC.
    pub async fn register(
        &self,
        reference: &str,
        pan: &str,
        name: &str,
        date_of_birth: chrono::NaiveDate,
    ) -> Result<KraRegistration, KraError> {
        let body = RegisterBody {
            reference,
            pan,
            name,
            date_of_birth: date_of_birth.format("%Y-%m-%d").to_string(),
        };
        let _slot = self
            .bulkhead
            .acquire()
            .await
            .map_err(|e| KraError::Unavailable(e.to_string()))?;
        self.retry
            .run(
                |attempt| self.attempt(attempt, reference, &body),
                |e| matches!(e, Retry::Transient(_)),
            )
            .await
            .map_err(|e| match e {
                Retry::Transient(reason) | Retry::Final(KraError::Unavailable(reason)) => {
                    KraError::Unavailable(reason)
                }
                Retry::Final(e) => e,
            })
    }

    /// One attempt through the breaker, under `min(request timeout, deadline)`.
    async fn attempt(
        &self,
        attempt: u32,
        reference: &str,
        body: &RegisterBody<'_>,
    ) -> Result<KraRegistration, Retry> {
        let Ok(permit) = self.breaker.try_acquire() else {
            metrics::counter!(KRA_REQUESTS, "outcome" => "circuit_open").increment(1);
            return Err(Retry::Final(KraError::Unavailable(
                "circuit open: the KRA failed too often recently; not called".into(),
            )));
        };
        let started = Instant::now();
        let sent = self
            .http
            .post(format!("{}/v1/kyc/registrations", self.base_url))
            .header("idempotency-key", reference)
            .json(body)
            .timeout(deadline::budget(self.request_timeout))
            .send()
            .await;
        let (outcome, label) = match sent {
            Err(e) => {
                let label = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect_error"
                } else {
                    "transport_error"
                };
                (Attempt::Transient(e.without_url().to_string()), label)
            }
            Ok(resp) => classify(resp).await,
        };
        metrics::histogram!(KRA_SECONDS, "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(KRA_REQUESTS, "outcome" => label).increment(1);
        match outcome {
            Attempt::Done(result) => {
                permit.record(false);
                result.map_err(Retry::Final)
            }
            Attempt::Broken(reason) => {
                permit.record(true);
                Err(Retry::Final(KraError::Unavailable(reason)))
            }
            Attempt::Transient(reason) => {
                permit.record(true);
                tracing::warn!(attempt = attempt + 1, error = %reason, "KRA attempt failed");
                Err(Retry::Transient(reason))
            }
        }
    }
}

/// What the retry loop sees of a failed attempt.
enum Retry {
    Transient(String),
    Final(KraError),
}

async fn classify(resp: reqwest::Response) -> (Attempt, &'static str) {
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        let label = if status.as_u16() == 429 {
            "http_429"
        } else {
            "http_5xx"
        };
        return (Attempt::Transient(format!("KRA answered {status}")), label);
    }
    if !status.is_success() {
        let code = resp
            .json::<KraErrorBody>()
            .await
            .map(|b| b.error.code)
            .unwrap_or_else(|_| "UNKNOWN".into());
        return (
            Attempt::Done(Err(KraError::Refused {
                status: status.as_u16(),
                code,
            })),
            "refused",
        );
    }
    match resp.json::<KraRegistration>().await {
        Ok(reg) => (Attempt::Done(Ok(reg)), "ok"),
        Err(e) if e.is_timeout() => (
            Attempt::Transient(format!("reading the KRA answer: {}", e.without_url())),
            "timeout",
        ),
        Err(e) => (
            Attempt::Broken(format!("KRA answer unreadable: {}", e.without_url())),
            "bad_response",
        ),
    }
}
