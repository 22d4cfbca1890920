//! nivesh-runtime: what every service binary shares, so a service's `main.rs` is three lines
//! (load settings, build the app from the service's library, run).
//!
//! - [`config`]: layered settings. Built-in defaults (the compiled-in `config/default.toml`) →
//!   `config/default.toml` → `config/$NIVESH_ENV.toml` → `config/<service>.toml` →
//!   `NIVESH__SECTION__KEY` environment variables. Secrets are `SecretString` (Debug prints
//!   `[REDACTED]`), so the effective configuration can be logged at start-up.
//! - [`telemetry`]: `tracing` to stdout as JSON lines carrying the current `trace_id`/`span_id`
//!   (or a human format), W3C trace-context propagation, and OTLP span export when an endpoint
//!   is configured. The log level filters what is printed, never which spans exist. Idempotent,
//!   so tests can call it freely.
//! - [`metrics`]: the process-wide Prometheus recorder behind `/metrics`.
//! - [`problem`]: RFC 7807 `application/problem+json` errors, and the `ApiJson` / `ApiPath` /
//!   `ApiQuery` extractors whose rejections are problems too (axum's own are `text/plain`).
//! - [`health`]: the [`health::ReadinessCheck`] trait, the broker/store/cache checks, and the
//!   ready / degraded / not-ready verdict `/readyz` serves.
//! - [`http`]: the router every service gets (`/healthz`, `/readyz`, `/metrics`,
//!   `/openapi.json`) and the layers around every route: request id, a tracing span joined to
//!   the caller's W3C trace, HTTP metrics labelled by matched route, catch-panic, body limit,
//!   and the rewrite of any non-problem error body into a problem carrying the request id.
//! - [`limits`]: load shedding (503 + `Retry-After`), deadlines and Redis rate limiting per
//!   tenant / investor / client address (429 + `X-RateLimit-*`), in front of every route.
//! - [`openapi`]: the runtime's own OpenAPI paths, merged with each service's document.
//! - [`outbox`]: typed event → outbox record (payload, event id as message id, trace headers).
//! - [`ledger`]: the consumer that decodes, records once and counts every event a group
//!   receives; the whole behaviour of services whose issue has not given them more yet.
//! - [`service`]: the lifecycle. [`service::connect`] opens the service's own store, the cache
//!   (Redis, or in-process when Redis is absent) and the producer; [`service::ServiceApp`]
//!   collects routes, OpenAPI, consumers, tasks and extra readiness checks;
//!   [`service::run`] (or [`service::run_on`] for a listener bound by the caller) serves until
//!   SIGTERM/SIGINT, drains, flushes, and fails the process when any consumer, the outbox relay
//!   or a task fails (crash-only: the supervisor restarts it).
//!
//! Errors: one [`Error`] for the whole crate; request-level failures are [`problem::Problem`]s,
//! never this type.

pub mod config;
mod cosmos_emulator;
pub mod health;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod problem;
pub mod service;
pub mod telemetry;

/// The allocator of every process built on the runtime (the services, their tests). Services
/// allocate per event (Avro and JSON bodies, batches, headers) from many threads at once, and
/// glibc's malloc showed up as ~25 % of the NAV hops' CPU under `perf` (`_int_malloc`,
/// `unlink_chunk`, `malloc_consolidate`, `_int_free`); see docs/performance.md, NAV item 9.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Why the runtime could not start or keep a service running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Settings are missing, malformed or contradictory; the message names the key to fix.
    #[error("configuration: {0}")]
    Config(String),
    /// Logging, tracing or metrics could not be installed.
    #[error("telemetry: {0}")]
    Telemetry(String),
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("bus: {0}")]
    Bus(#[from] nivesh_bus::Error),
    /// Binding or serving HTTP failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    /// A consumer, the outbox relay or an extra task failed or stopped while the service was
    /// meant to be running.
    #[error("task {name} failed: {reason}")]
    Task { name: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
