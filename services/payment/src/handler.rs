//! The `payment` consumer group: `order.placed` (collect) and `order.failed` (refund).
//!
//! `order.placed` (PURCHASE / SIP_INSTALMENT; other kinds are acknowledged and ignored):
//! 1. the record `pay:{order id}` is created in state INITIATING (its own batch, before the
//!    gateway is called, so a webhook that outruns us finds it);
//! 2. `POST /payments` with `Idempotency-Key: <order id>` (retries, breaker: [`crate::gateway`]);
//! 3. inbox marker + record + event in ONE batch: accepted → PENDING + `payment.initiated`;
//!    declined → FAILED + `payment.failed` (`DECLINED`).
//!
//! Gateway unavailable (retries exhausted or breaker open): `HandlerError::Retryable`, so the bus
//! retries through the group's tiers (2 s, 30 s, 300 s ceilings). On the LAST attempt (attempt
//! number = tiers + 1, from the `nivesh-attempt` header the bus maintains) the payment is failed
//! with `GATEWAY_UNAVAILABLE` instead, so the order always ends and nothing is dead-lettered for
//! an outage. If the gateway did take the payment after all and captures it later, that capture
//! is refunded automatically (see [`crate::record`], "late capture").
//!
//! A redelivered `order.placed` finds the record past INITIATING and only commits its marker:
//! no second gateway call. A redelivery while still INITIATING calls the gateway again with the
//! same idempotency key, which returns the same payment: one charge.
//!
//! `order.failed` with `refund_amount` and `payment_id`: the refund is first recorded as
//! REQUESTED (so the reconciler finishes it even if this message ends in the DLQ), then made at
//! the gateway with key `rfd-{order id}`, then recorded as processed with `payment.refunded` and
//! the inbox marker in one batch. Exactly one refund, exactly one event.

use std::collections::BTreeMap;

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::InvestorId;
use nivesh_events::{OrderFailed, OrderPlaced, order_kind};

use crate::flow::{Applied, FlowError, Payments};
use crate::gateway::{CreatePayment, GatewayError};
use crate::record::{PaymentRecord, PaymentStatus, Update, reason_code, to_paise};

pub const GROUP: &str = "payment";
pub const ORDER_PLACED: &str = "order.placed";
pub const ORDER_FAILED: &str = "order.failed";

/// Counter: `order.placed` events not for payment (redemptions, switches).
const IGNORED: &str = "nivesh_payment_orders_ignored_total";

/// The attempt number of the last delivery the bus makes for this group (first delivery plus
/// one per retry tier). On it, an unavailable gateway fails the payment instead of retrying.
pub fn final_attempt() -> u32 {
    nivesh_bus::catalog::group(GROUP)
        .map(|g| g.retry_delays.len() as u32 + 1)
        .unwrap_or(1)
}

pub struct PaymentHandler {
    pub payments: Payments,
    /// See [`final_attempt`]; a field so tests can exercise the last attempt directly.
    pub final_attempt: u32,
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

/// Store trouble and contention are worth retrying; a contradiction never heals.
fn flow_error(e: FlowError) -> HandlerError {
    match e {
        FlowError::Store(_) | FlowError::Contention(_) | FlowError::Encode(_) => retryable(e),
        FlowError::Gateway(ref g) if g.is_transient() => retryable(e),
        FlowError::NotFound(_)
        | FlowError::Corrupt(..)
        | FlowError::Invalid(_)
        | FlowError::Gateway(_) => HandlerError::Permanent(e.to_string()),
    }
}

/// Order ids travel in URLs, document ids and gateway references: keep them to a safe alphabet.
fn valid_order_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// `payment_instrument` → (method, VPA): `"name@bank"` or `"upi:name@bank"` is a UPI VPA,
/// another word is a method (`netbanking`), absent is plain UPI.
pub fn instrument(raw: Option<&str>) -> (String, Option<String>) {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => ("upi".into(), None),
        Some(s) => {
            let s = s.strip_prefix("upi:").unwrap_or(s);
            if s.contains('@') {
                ("upi".into(), Some(s.to_string()))
            } else {
                (s.to_ascii_lowercase(), None)
            }
        }
    }
}

#[async_trait]
impl MessageHandler for PaymentHandler {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        match msg.topic.as_str() {
            ORDER_PLACED => self.order_placed(msg).await,
            ORDER_FAILED => self.order_failed(msg).await,
            other => Err(HandlerError::Permanent(format!(
                "group {GROUP} does not consume {other}"
            ))),
        }
    }
}

impl PaymentHandler {
    async fn order_placed(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let order: OrderPlaced = self
            .payments
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not an OrderPlaced event: {e}")))?;
        if order.kind != order_kind::PURCHASE && order.kind != order_kind::SIP_INSTALMENT {
            metrics::counter!(IGNORED, "kind" => order.kind.clone()).increment(1);
            return Ok(());
        }
        let event_id = order.meta.event_id.to_string();
        let (investor, order_id) = (order.investor_id.as_str(), order.order_id.as_str());
        InvestorId::parse(investor).map_err(|e| HandlerError::Permanent(e.to_string()))?;
        if !valid_order_id(order_id) {
            return Err(HandlerError::Permanent(format!(
                "order id {order_id:?} is not 1-128 of [A-Za-z0-9-_.:]"
            )));
        }
        let amount = order.amount.ok_or_else(|| {
            HandlerError::Permanent(format!("{} order {order_id} has no amount", order.kind))
        })?;
        let paise = to_paise(amount).filter(|p| *p > 0).ok_or_else(|| {
            HandlerError::Permanent(format!(
                "order {order_id} amount {amount} is not a positive amount in paise"
            ))
        })?;

        let now = self.payments.clock.now();
        let (method, vpa) = instrument(order.payment_instrument.as_deref());
        let fresh = PaymentRecord {
            payment_id: order_id.to_string(),
            order_id: order_id.to_string(),
            investor_id: investor.to_string(),
            amount,
            currency: "INR".into(),
            method: method.clone(),
            vpa: vpa.clone(),
            status: PaymentStatus::Initiating,
            gateway: self.payments.gateway_name.clone(),
            gateway_ref: None,
            order_kind: order.kind.clone(),
            scheme_code: order.scheme_code.clone(),
            scheme_category: order.scheme_category.clone(),
            sip_id: order.sip_id.clone(),
            instalment_no: order.instalment_no,
            failure: None,
            refund: None,
            late_capture_at: None,
            created_at: now,
            initiated_at: None,
            realised_at: None,
            updated_at: now,
            timeline: Vec::new(),
        };
        let (record, _) = self
            .payments
            .create_if_absent(fresh)
            .await
            .map_err(flow_error)?;
        let marker = Some((GROUP, event_id.as_str()));
        if record.status != PaymentStatus::Initiating {
            // Handled before (this message or a webhook): nothing to call.
            self.payments
                .mark_processed(investor, (GROUP, &event_id))
                .await
                .map_err(flow_error)?;
            return Ok(());
        }

        let request = CreatePayment {
            amount: paise,
            currency: "INR".into(),
            reference: order_id.to_string(),
            method,
            vpa,
            notes: BTreeMap::from([
                ("investor_id".to_string(), investor.to_string()),
                ("order_id".to_string(), order_id.to_string()),
            ]),
        };
        let update = match self
            .payments
            .gateway
            .create_payment(&request, order_id)
            .await
        {
            Ok(p) if p.status == "failed" => Update::Failed {
                reason_code: crate::record::reason_code_for(p.error_code.as_deref()).into(),
                reason: p
                    .error_description
                    .or(p.error_code)
                    .unwrap_or_else(|| "payment failed at the gateway".into()),
                gateway_ref: Some(p.id),
            },
            Ok(p) => Update::Accepted { gateway_ref: p.id },
            Err(GatewayError::Declined { code, description }) => Update::Failed {
                gateway_ref: None,
                reason_code: reason_code::DECLINED.into(),
                reason: if description.is_empty() {
                    code
                } else {
                    description
                },
            },
            Err(e) if msg.attempt >= self.final_attempt => {
                tracing::error!(order_id, attempt = msg.attempt, error = %e,
                    "payment gateway unavailable on the last attempt: failing the payment");
                Update::Unavailable {
                    reason: format!("payment gateway unavailable: {e}"),
                }
            }
            Err(e) => return Err(retryable(e)),
        };
        let applied = self
            .payments
            .apply_update(investor, order_id, &update, marker, &event_id)
            .await
            .map_err(flow_error)?;
        if applied == Applied::AlreadyProcessed {
            metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP).increment(1);
        }
        Ok(())
    }

    async fn order_failed(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let failed: OrderFailed = self
            .payments
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not an OrderFailed event: {e}")))?;
        let Some(amount) = failed.refund_amount.filter(|a| !a.is_zero()) else {
            // No money was taken: nothing to do, nothing to remember.
            return Ok(());
        };
        let (investor, order_id) = (failed.investor_id.as_str(), failed.order_id.as_str());
        let payment_id = failed.payment_id.as_deref().ok_or_else(|| {
            HandlerError::Permanent(format!(
                "order.failed for {order_id} has refund_amount {amount} but no payment_id"
            ))
        })?;
        if payment_id != order_id {
            return Err(HandlerError::Permanent(format!(
                "payment_id {payment_id} is not the payment of order {order_id}"
            )));
        }
        let event_id = failed.meta.event_id.to_string();
        let marker = (GROUP, event_id.as_str());
        let (record, _) = self
            .payments
            .load(investor, order_id)
            .await
            .map_err(flow_error)?
            .ok_or_else(|| {
                HandlerError::Permanent(format!(
                    "refund requested for order {order_id}, which has no payment"
                ))
            })?;
        if record.refund.is_none() {
            match record.status {
                PaymentStatus::Captured => {}
                PaymentStatus::Initiating | PaymentStatus::Pending => {
                    return Err(retryable(format!(
                        "refund for order {order_id} waits for its payment to complete"
                    )));
                }
                PaymentStatus::Failed | PaymentStatus::Refunded => {
                    tracing::warn!(
                        order_id,
                        status = record.status.as_str(),
                        "refund requested for a payment that holds no money; nothing to refund"
                    );
                    self.payments
                        .mark_processed(investor, marker)
                        .await
                        .map_err(flow_error)?;
                    return Ok(());
                }
            }
            let request = Update::RefundRequested {
                amount,
                reason: format!("{}: {}", failed.reason_code, failed.reason),
            };
            self.payments
                .apply_update(investor, order_id, &request, None, &event_id)
                .await
                .map_err(flow_error)?;
        }
        self.payments
            .execute_refund(investor, order_id, Some(marker), &event_id)
            .await
            .map_err(flow_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instruments: VPAs with or without the `upi:` prefix, other methods, and the default.
    #[test]
    fn instruments() {
        assert_eq!(instrument(None), ("upi".into(), None));
        assert_eq!(instrument(Some("  ")), ("upi".into(), None));
        assert_eq!(
            instrument(Some("failure@sim")),
            ("upi".into(), Some("failure@sim".into()))
        );
        assert_eq!(
            instrument(Some("upi:aarav@okhdfc")),
            ("upi".into(), Some("aarav@okhdfc".into()))
        );
        assert_eq!(instrument(Some("NetBanking")), ("netbanking".into(), None));
    }

    /// Order ids are checked before they reach URLs and document ids.
    #[test]
    fn order_ids() {
        assert!(valid_order_id("0192f0c4-7d2e-7c3a-9b1e-4f5a6b7c8d9e"));
        assert!(valid_order_id("sip-42:7"));
        assert!(!valid_order_id(""));
        assert!(!valid_order_id("a/b"));
        assert!(!valid_order_id(&"x".repeat(129)));
    }

    /// The last attempt is the first delivery plus one per catalog retry tier.
    #[test]
    fn final_attempt_follows_the_catalog() {
        let tiers = nivesh_bus::catalog::group(GROUP)
            .unwrap()
            .retry_delays
            .len() as u32;
        assert_eq!(final_attempt(), tiers + 1);
        assert!(final_attempt() > 1);
    }
}
