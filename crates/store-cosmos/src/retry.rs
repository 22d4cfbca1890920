//! The adapter's own retry policy (the SDK's throttle retries are switched off, so this is the
//! one place that decides), and the RU charge metric.
//!
//! - 429: wait what the service advertises in `x-ms-retry-after-ms` (at least that long), else
//!   an exponential backoff with jitter; every request to the same container waits behind the
//!   latest advertised instant (adaptive: a 429 storm slows the whole adapter down instead of
//!   each request hammering on its own). Bounded by `max_attempts` and `max_throttle_wait`.
//! - 408 / 503 / 500 / 449 / 410 / transport failures: exponential backoff with jitter, bounded
//!   by `max_attempts`. 408, 500, 503 and transport failures are *ambiguous* for writes (the
//!   service may have applied the request): the caller is told, so a commit can tell "my
//!   earlier attempt landed" from a real conflict (see `CosmosStore::commit`).
//! - Anything else is final and mapped into [`nivesh_store::Error`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use azure_core::http::StatusCode;
use azure_data_cosmos::CosmosError;
use nivesh_store::Error;
use rand::Rng as _;
use tokio::time::Instant;

/// Bounds of the retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// Total time one operation may spend waiting on 429s before it gives up.
    pub max_throttle_wait: Duration,
    /// First backoff without a retry-after hint; doubles per attempt up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            max_throttle_wait: Duration::from_secs(30),
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// 429: not applied; wait and retry.
    Throttled(Option<Duration>),
    /// Retryable; `ambiguous` when the service may have applied the request.
    Transient {
        ambiguous: bool,
    },
    Final,
}

pub(crate) fn classify(e: &CosmosError) -> Class {
    let status = e.status();
    if status.is_throttled() {
        let hint = e
            .response()
            .and_then(|r| r.headers().retry_after_ms)
            .map(Duration::from_millis);
        return Class::Throttled(hint);
    }
    let code = u16::from(status.status_code());
    if status.is_retry_with() || status.is_gone() {
        return Class::Transient { ambiguous: false };
    }
    if status.is_timeout()
        || status.is_service_unavailable()
        || status.is_transport_generated_503()
        || code == 500
        || (!e.is_from_wire() && status.is_transient())
    {
        return Class::Transient { ambiguous: true };
    }
    Class::Final
}

/// Map a final SDK error of an operation on `id` into the port's error.
pub(crate) fn map_error(e: &CosmosError, id: &str) -> Error {
    let status = e.status();
    match status.status_code() {
        StatusCode::NotFound => Error::NotFound { id: id.to_string() },
        StatusCode::Conflict => Error::Conflict { id: id.to_string() },
        StatusCode::PreconditionFailed => Error::PreconditionFailed { id: id.to_string() },
        StatusCode::BadRequest | StatusCode::PayloadTooLarge => Error::Invalid(e.to_string()),
        _ => match classify(e) {
            Class::Throttled(_) => Error::Unavailable(format!("cosmos throttled (429): {e}")),
            Class::Transient { .. } => Error::Unavailable(format!("cosmos unavailable: {e}")),
            Class::Final => Error::Backend(format!("cosmos: {e}")),
        },
    }
}

/// Record the RU charge of one request (every attempt, failed ones included: they are billed).
pub(crate) fn record_charge(container: &str, operation: &'static str, charge: Option<f64>) {
    if let Some(charge) = charge {
        metrics::histogram!(
            "nivesh_cosmos_request_charge",
            "container" => container.to_string(),
            "operation" => operation,
        )
        .record(charge);
    }
}

pub(crate) fn error_charge(e: &CosmosError) -> Option<f64> {
    e.response()
        .and_then(|r| r.headers().request_charge)
        .map(|c| c.value())
}

/// What a retried operation ended with.
pub(crate) struct Outcome<T> {
    pub result: Result<T, CosmosError>,
    /// An earlier attempt failed in a way that may have applied it.
    pub maybe_applied: bool,
    pub attempts: u32,
}

/// The retry loop plus the per-container throttle gate.
#[derive(Debug, Default)]
pub(crate) struct Retrier {
    pub policy: RetryPolicy,
    /// container -> no request before this instant (the latest advertised retry-after).
    gate: Mutex<HashMap<String, Instant>>,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retrier {
            policy,
            gate: Mutex::default(),
        }
    }

    fn gate_until(&self, container: &str) -> Option<Instant> {
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.get(container).copied().filter(|t| *t > Instant::now())
    }

    fn hold_gate(&self, container: &str, until: Instant) {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let slot = gate.entry(container.to_string()).or_insert(until);
        if *slot < until {
            *slot = until;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .policy
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.policy.max_backoff);
        // Equal jitter: half fixed, half random, so retries of many callers spread out.
        let half = exp / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// Whether (and how long to wait before) an operation that failed with `err` on attempt `n`
    /// is tried again. Updates the throttle budget, the container's gate and the ambiguity flag.
    pub(crate) fn decide(
        &self,
        container: &str,
        operation: &'static str,
        err: &CosmosError,
        n: u32,
        throttle_waited: &mut Duration,
        maybe_applied: &mut bool,
    ) -> Option<Duration> {
        let wait = match classify(err) {
            Class::Final => None,
            Class::Throttled(hint) => {
                metrics::counter!(
                    "nivesh_cosmos_throttled_total",
                    "container" => container.to_string(),
                    "operation" => operation,
                )
                .increment(1);
                let wait = hint.unwrap_or_else(|| self.backoff(n));
                if *throttle_waited + wait > self.policy.max_throttle_wait {
                    None
                } else {
                    *throttle_waited += wait;
                    self.hold_gate(container, Instant::now() + wait);
                    Some(wait)
                }
            }
            Class::Transient { ambiguous } => {
                *maybe_applied |= ambiguous;
                Some(self.backoff(n))
            }
        };
        wait.filter(|_| n < self.policy.max_attempts)
    }

    /// Wait for the container's throttle gate (the latest advertised retry-after).
    pub(crate) async fn wait_gate(&self, container: &str) {
        if let Some(until) = self.gate_until(container) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Run `attempt` until it succeeds, fails finally, or the bounds are spent. `charge_of`
    /// extracts the RU charge of a successful response for the metric.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        container: &str,
        operation: &'static str,
        charge_of: impl Fn(&T) -> Option<f64>,
        mut attempt: F,
    ) -> Outcome<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CosmosError>>,
    {
        let mut maybe_applied = false;
        let mut throttle_waited = Duration::ZERO;
        let mut n = 0;
        loop {
            self.wait_gate(container).await;
            n += 1;
            let err = match attempt().await {
                Ok(value) => {
                    record_charge(container, operation, charge_of(&value));
                    return Outcome {
                        result: Ok(value),
                        maybe_applied,
                        attempts: n,
                    };
                }
                Err(e) => e,
            };
            record_charge(container, operation, error_charge(&err));
            let wait = self.decide(
                container,
                operation,
                &err,
                n,
                &mut throttle_waited,
                &mut maybe_applied,
            );
            match wait {
                Some(wait) => {
                    tracing::debug!(container, operation, attempt = n, ?wait, error = %err, "cosmos: retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    return Outcome {
                        result: Err(err),
                        maybe_applied,
                        attempts: n,
                    };
                }
            }
        }
    }
}
