//! The circuit breaker in front of the payment gateway: nivesh-resilience's rate-based breaker
//! (failure rate AND slow-call rate over a sliding window, N half-open trials), labelled
//! `dependency="payment-gateway"` on `nivesh_circuit_breaker_state`, and mirrored to
//! [`BREAKER_STATE_GAUGE`] (the gauge dashboards already use).
//!
//! A failure is a transient gateway failure (connect error, timeout, 5xx, 429): the gateway is
//! unhealthy. A decline or a 404 is a healthy gateway answering, so it counts as a success. A
//! call slower than `breaker_slow_call_ms` counts as slow whatever its outcome.

pub use nivesh_resilience::breaker::{BreakerConfig, CircuitBreaker, State as BreakerState};

/// Gauge: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE_GAUGE: &str = "nivesh_payment_gateway_breaker_state";

/// The breaker's `dependency` label.
pub const DEPENDENCY: &str = "payment-gateway";
