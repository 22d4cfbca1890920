//! Reconciliation: a lost webhook must not leave an order pending forever.
//!
//! Every `interval_secs` the task reads the `payments` container's change feed (from where it
//! left off; from the beginning after a restart) to keep an in-memory set of payments that still
//! need the gateway: PENDING ones and refunds REQUESTED but not confirmed. For each that has
//! waited at least `min_age_secs`:
//! - pending: `GET /payments/{gateway id}`; captured → CAPTURED + `payment.success` (realised at
//!   the gateway's capture time); failed → FAILED + `payment.failed`; still open after
//!   `expire_after_secs` → FAILED `EXPIRED` (a later capture is refunded as a late capture);
//! - refund requested: `POST /payments/{id}/refunds` again with the same idempotency key.
//!
//! All changes go through the same state machine and ETag-guarded batch as webhooks, so the
//! reconciler racing a webhook (or another replica's reconciler) emits each event once. Errors
//! are logged and retried on the next pass; they never stop the service.

use std::collections::HashMap;
use std::convert::Infallible;

use chrono::{DateTime, TimeDelta, Utc};
use nivesh_store::Continuation;
use tokio_util::sync::CancellationToken;

use crate::config::ReconcileConfig;
use crate::flow::{Applied, CONTAINER, FlowError, Payments, needs_reconciliation, unix_time};
use crate::gateway::GatewayError;
use crate::record::{PaymentRecord, PaymentStatus, RefundStatus, Update, reason_code_for};

/// Counter: reconciliation results by `result`.
pub const RECONCILED: &str = "nivesh_payment_reconciled_total";
/// Gauge: payments (and refunds) waiting for the gateway.
pub const OPEN: &str = "nivesh_payment_open";

const FEED_PAGE: usize = 500;

#[derive(Debug, Clone)]
struct Open {
    investor_id: String,
    since: DateTime<Utc>,
}

pub struct Reconciler {
    pub payments: Payments,
    pub config: ReconcileConfig,
    feed: Continuation,
    open: HashMap<String, Open>,
}

impl Reconciler {
    pub fn new(payments: Payments, config: ReconcileConfig) -> Self {
        Reconciler {
            payments,
            config,
            feed: Continuation::default(),
            open: HashMap::new(),
        }
    }

    /// Run until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Infallible> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.interval()) => {}
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "reconciliation pass failed; retrying next interval");
            }
        }
    }

    /// One pass: catch up with the change feed, then poll what is old enough.
    pub async fn pass(&mut self) -> Result<(), FlowError> {
        loop {
            let (docs, next) = self
                .payments
                .store
                .change_feed(CONTAINER, &self.feed, FEED_PAGE)
                .await?;
            self.feed = next;
            let n = docs.len();
            for doc in docs {
                if !doc.id.starts_with("pay:") {
                    continue;
                }
                let Ok(record) = serde_json::from_value::<PaymentRecord>(doc.body) else {
                    tracing::warn!(id = %doc.id, "unreadable payment record skipped");
                    continue;
                };
                match needs_reconciliation(&record) {
                    Some(since) => {
                        self.open.insert(
                            record.order_id,
                            Open {
                                investor_id: record.investor_id,
                                since,
                            },
                        );
                    }
                    None => {
                        self.open.remove(&record.order_id);
                    }
                }
            }
            if n < FEED_PAGE {
                break;
            }
        }
        metrics::gauge!(OPEN).set(self.open.len() as f64);
        let now = self.payments.clock.now();
        let min_age =
            TimeDelta::seconds(i64::try_from(self.config.min_age_secs).unwrap_or(i64::MAX));
        let due: Vec<(String, Open)> = self
            .open
            .iter()
            .filter(|(_, o)| now - o.since >= min_age)
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (order_id, open) in due {
            let result = self.reconcile_one(&open.investor_id, &order_id).await;
            let label = match &result {
                Ok(Applied::Changed(_)) => "changed",
                Ok(_) => "unchanged",
                Err(FlowError::Gateway(g)) if g.is_transient() => "gateway_unavailable",
                Err(_) => "error",
            };
            metrics::counter!(RECONCILED, "result" => label).increment(1);
            if let Err(e) = result {
                tracing::warn!(order_id, error = %e, "reconciliation of a payment failed");
            }
        }
        Ok(())
    }

    /// Ask the gateway about one payment and apply what it says.
    pub async fn reconcile_one(
        &self,
        investor_id: &str,
        order_id: &str,
    ) -> Result<Applied, FlowError> {
        let Some((record, _)) = self.payments.load(investor_id, order_id).await? else {
            return Ok(Applied::Unchanged);
        };
        let causation = format!("reconcile:{order_id}");
        if record
            .refund
            .as_ref()
            .is_some_and(|r| r.status == RefundStatus::Requested)
        {
            return self
                .payments
                .execute_refund(investor_id, order_id, None, &causation)
                .await;
        }
        if record.status != PaymentStatus::Pending {
            return Ok(Applied::Unchanged);
        }
        let Some(gateway_ref) = record.gateway_ref.clone() else {
            return Ok(Applied::Unchanged);
        };
        let now = self.payments.clock.now();
        let pending_for = now - record.initiated_at.unwrap_or(record.updated_at);
        let expired = pending_for
            >= TimeDelta::seconds(i64::try_from(self.config.expire_after_secs).unwrap_or(i64::MAX));
        let update = match self.payments.gateway.get_payment(&gateway_ref).await {
            Ok(p) if p.status == "captured" => Update::Captured {
                amount_paise: p.amount,
                captured_at: p.captured_at.and_then(unix_time).unwrap_or(now),
                gateway_ref: p.id,
            },
            Ok(p) if p.status == "failed" => Update::Failed {
                reason_code: reason_code_for(p.error_code.as_deref()).into(),
                reason: p
                    .error_description
                    .or(p.error_code)
                    .unwrap_or_else(|| "payment failed at the gateway".into()),
                gateway_ref: Some(p.id),
            },
            Ok(_) | Err(GatewayError::NotFound) if expired => Update::Expired,
            Ok(_) => return Ok(Applied::Unchanged),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(order_id, ?update, "reconciled a payment with the gateway");
        self.payments
            .apply_update(investor_id, order_id, &update, None, &causation)
            .await
    }
}
