//! The process-wide Prometheus recorder behind `/metrics`.
//!
//! `metrics` has one global recorder per process, so [`install`] installs it once and hands out
//! the same handle afterwards (services, and many tests in one process, call it freely).
//! Histograms are rendered as real Prometheus histograms (buckets), not summaries: buckets
//! aggregate across replicas, quantiles do not.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter: HTTP requests by `service`, `method`, `route` (matched path), `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "nivesh_http_requests_total";
/// Histogram: HTTP request latency in seconds by `service`, `method`, `route`.
pub const HTTP_REQUEST_SECONDS: &str = "nivesh_http_request_seconds";
/// Gauge: 1 when a readiness check last passed, 0 when it failed, by `service`, `check`.
pub const READINESS_CHECK_UP: &str = "nivesh_readiness_check_up";

/// Seconds; from 1 ms (a cache hit) to 30 s (a large NAV file upload).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes (keeps memory flat).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the global Prometheus recorder (first call) and return its handle (every call).
///
/// If another recorder was installed first (by code outside the runtime), the handle returned
/// renders a recorder that receives nothing; that is logged, not fatal: metrics must never stop
/// a service.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("bucket list is non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = ::metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics will be empty");
            }
            let upkeep = handle.clone();
            // A plain thread, not a Tokio task: install() may run before (or without) a runtime.
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}
