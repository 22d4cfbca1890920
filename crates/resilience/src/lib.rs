//! nivesh-resilience: what every outbound call and every HTTP server of the fleet uses to stay
//! up when a dependency is not (docs/resilience.md has the settings per dependency).
//!
//! - [`deadline`]: a request's deadline travels in `x-nivesh-deadline-ms` and lives in a
//!   task-local; every outbound timeout is `min(configured, remaining)`.
//! - [`backoff`]: exponential backoff with full jitter.
//! - [`retry`]: retries of transient failures only, within a retry budget (tower's
//!   `TpsBudget`: ~10 % extra load at most) and the deadline; a closure form and a tower policy.
//! - [`breaker`]: a circuit breaker per dependency with failure-rate and slow-call-rate
//!   thresholds over a sliding window, N half-open trials, its state as a gauge; a tower layer.
//! - [`bulkhead`]: a concurrency limit per dependency, and the HTTP server's in-flight limit
//!   (load shedding: 503 + `Retry-After`, applied by nivesh-runtime's HTTP stack).
//! - [`ratelimit`]: token buckets in Redis (one Lua script) per tenant, investor or client
//!   address; 429 + `Retry-After` + `X-RateLimit-*`; fails OPEN with an alarm metric when Redis
//!   is away.

pub mod backoff;
pub mod breaker;
pub mod bulkhead;
pub mod deadline;
pub mod ratelimit;
pub mod retry;

pub use backoff::Backoff;
pub use breaker::{BreakerConfig, CircuitBreaker, CircuitOpen};
pub use bulkhead::{Bulkhead, BulkheadFull, LoadShedder};
pub use ratelimit::{Bucket, Decision, Quota, RateLimiter};
pub use retry::{RetryBudget, RetryPolicy};
