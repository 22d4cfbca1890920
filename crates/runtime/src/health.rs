//! Readiness: is this instance able to do its job right now?
//!
//! `/healthz` (liveness) never looks at dependencies: restarting a process because Redis is
//! down would only add a restart storm to the outage. `/readyz` does, and separates:
//! - critical dependencies (broker, store): without them the instance cannot serve or consume,
//!   so it answers 503 `not_ready` and the load balancer takes it out;
//! - non-critical ones (the cache): reads fall back to the store, so it stays in rotation with
//!   200 `degraded`, and the body says what is down.
//!
//! All checks run concurrently, each bounded by a timeout, so one hung dependency costs one
//! timeout, not the sum, and a probe never outlives the orchestrator's probe timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use nivesh_bus::BusProducer;
use nivesh_store::{Cache, DocumentStore};
use serde::{Deserialize, Serialize};

/// One dependency `/readyz` reports on.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// The key in the report (`broker`, `store`, `cache`, ...).
    fn name(&self) -> &str;
    /// A failing critical check makes the instance not ready (503); a non-critical one only
    /// degraded (200).
    fn critical(&self) -> bool;
    /// `Err` carries a short reason for the report (it is served: no secrets).
    async fn check(&self) -> Result<(), String>;
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    Degraded,
    NotReady,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckOutcome {
    /// `up` or `down`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub critical: bool,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    pub status: Readiness,
    pub checks: BTreeMap<String, CheckOutcome>,
}

impl ReadinessReport {
    /// 200 unless a critical dependency is down.
    pub fn http_status(&self) -> StatusCode {
        match self.status {
            Readiness::Ready | Readiness::Degraded => StatusCode::OK,
            Readiness::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Run every check concurrently, each under `timeout`, and combine the outcomes.
pub async fn evaluate(
    service: &str,
    checks: &[Arc<dyn ReadinessCheck>],
    timeout: Duration,
) -> ReadinessReport {
    let runs = checks.iter().map(|check| async move {
        let result = match tokio::time::timeout(timeout, check.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        (check, result)
    });
    let mut status = Readiness::Ready;
    let mut outcomes = BTreeMap::new();
    for (check, result) in futures::future::join_all(runs).await {
        let up = result.is_ok();
        ::metrics::gauge!(crate::metrics::READINESS_CHECK_UP, "service" => service.to_string(), "check" => check.name().to_string())
            .set(if up { 1.0 } else { 0.0 });
        if let Err(reason) = &result {
            tracing::warn!(check = check.name(), critical = check.critical(), reason = %reason, "readiness check failed");
            status = match (status, check.critical()) {
                (_, true) | (Readiness::NotReady, false) => Readiness::NotReady,
                (_, false) => Readiness::Degraded,
            };
        }
        outcomes.insert(
            check.name().to_string(),
            CheckOutcome {
                status: if up { "up" } else { "down" }.to_string(),
                error: result.err(),
                critical: check.critical(),
            },
        );
    }
    ReadinessReport {
        status,
        checks: outcomes,
    }
}

/// The broker answers a metadata request (critical: without it nothing is consumed and the
/// outbox does not drain).
pub struct BrokerCheck {
    producer: BusProducer,
    timeout: Duration,
}

impl BrokerCheck {
    /// `timeout` bounds the metadata request itself; keep it below the readiness timeout so the
    /// report shows librdkafka's reason rather than a bare timeout.
    pub fn new(producer: BusProducer, timeout: Duration) -> Self {
        BrokerCheck { producer, timeout }
    }
}

#[async_trait]
impl ReadinessCheck for BrokerCheck {
    fn name(&self) -> &str {
        "broker"
    }
    fn critical(&self) -> bool {
        true
    }
    async fn check(&self) -> Result<(), String> {
        self.producer
            .check_connected(self.timeout)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The service's own store answers (critical: it is the system of record).
pub struct StoreCheck {
    store: Arc<dyn DocumentStore>,
}

impl StoreCheck {
    pub fn new(store: Arc<dyn DocumentStore>) -> Self {
        StoreCheck { store }
    }
}

#[async_trait]
impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &str {
        "store"
    }
    fn critical(&self) -> bool {
        true
    }
    async fn check(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}

/// The cache answers (non-critical: lossy by contract, reads fall back to the store).
pub struct CacheCheck {
    cache: Arc<dyn Cache>,
}

impl CacheCheck {
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        CacheCheck { cache }
    }
}

#[async_trait]
impl ReadinessCheck for CacheCheck {
    fn name(&self) -> &str {
        "cache"
    }
    fn critical(&self) -> bool {
        false
    }
    async fn check(&self) -> Result<(), String> {
        self.cache
            .ping()
            .await
            .map_err(|e| format!("{} cache: {e}", self.cache.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        name: &'static str,
        critical: bool,
        result: Result<(), &'static str>,
        delay: Duration,
    }

    #[async_trait]
    impl ReadinessCheck for Fixed {
        fn name(&self) -> &str {
            self.name
        }
        fn critical(&self) -> bool {
            self.critical
        }
        async fn check(&self) -> Result<(), String> {
            tokio::time::sleep(self.delay).await;
            self.result.map_err(str::to_string)
        }
    }

    fn check(
        name: &'static str,
        critical: bool,
        result: Result<(), &'static str>,
    ) -> Arc<dyn ReadinessCheck> {
        Arc::new(Fixed {
            name,
            critical,
            result,
            delay: Duration::ZERO,
        })
    }

    /// Verdicts: all up → ready; non-critical down → degraded; any critical down → not ready,
    /// whichever order the failures come in.
    #[tokio::test]
    async fn verdicts() {
        let t = Duration::from_secs(1);
        let all_up = evaluate(
            "t",
            &[check("a", true, Ok(())), check("b", false, Ok(()))],
            t,
        )
        .await;
        assert_eq!(all_up.status, Readiness::Ready);
        assert_eq!(all_up.http_status(), StatusCode::OK);

        let degraded = evaluate(
            "t",
            &[check("a", true, Ok(())), check("b", false, Err("gone"))],
            t,
        )
        .await;
        assert_eq!(degraded.status, Readiness::Degraded);
        assert_eq!(degraded.checks["b"].error.as_deref(), Some("gone"));
        assert_eq!(degraded.http_status(), StatusCode::OK);

        let down = evaluate(
            "t",
            &[check("a", true, Err("x")), check("b", false, Err("y"))],
            t,
        )
        .await;
        assert_eq!(down.status, Readiness::NotReady);
        let down_rev = evaluate(
            "t",
            &[check("b", false, Err("y")), check("a", true, Err("x"))],
            t,
        )
        .await;
        assert_eq!(down_rev.status, Readiness::NotReady);
        assert_eq!(down_rev.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    /// A hung check counts as down once its timeout passes, with the reason in the report.
    #[tokio::test]
    async fn hung_check_times_out() {
        let hung: Arc<dyn ReadinessCheck> = Arc::new(Fixed {
            name: "a",
            critical: true,
            result: Ok(()),
            delay: Duration::from_secs(3600),
        });
        let report = evaluate("t", &[hung], Duration::from_millis(50)).await;
        assert_eq!(report.status, Readiness::NotReady);
        assert_eq!(report.checks["a"].status, "down");
        assert!(
            report.checks["a"]
                .error
                .as_deref()
                .unwrap()
                .contains("50 ms")
        );
    }

    /// Meets the other checks at a barrier: passes only if they run at the same time.
    struct Rendezvous {
        name: &'static str,
        barrier: Arc<tokio::sync::Barrier>,
    }

    #[async_trait]
    impl ReadinessCheck for Rendezvous {
        fn name(&self) -> &str {
            self.name
        }
        fn critical(&self) -> bool {
            true
        }
        async fn check(&self) -> Result<(), String> {
            self.barrier.wait().await;
            Ok(())
        }
    }

    /// Checks run concurrently: three checks that each wait for the other two all pass (run
    /// one after another, the first would wait alone until its timeout).
    #[tokio::test]
    async fn checks_run_concurrently() {
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let checks: Vec<Arc<dyn ReadinessCheck>> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                Arc::new(Rendezvous {
                    name,
                    barrier: barrier.clone(),
                }) as Arc<dyn ReadinessCheck>
            })
            .collect();
        let report = evaluate("t", &checks, Duration::from_secs(5)).await;
        assert_eq!(report.status, Readiness::Ready, "{report:?}");
    }
}
