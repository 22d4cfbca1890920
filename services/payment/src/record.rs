//! The payment record and its state machine (pure: no I/O, tested exhaustively below).
//!
//! ```text
//!                      gateway accepted                webhook/poll: captured
//!   INITIATING ───────────────────────────▶ PENDING ───────────────────────────▶ CAPTURED
//!      │  ╲  captured (webhook before the      │                                    │ refund
//!      │   ╲  consumer recorded PENDING) ──────┼───────────────────────────────▶    │ processed
//!      │ sync decline / gateway unavailable    │ failed / expired                   ▼
//!      └──────────────────────────────▶ FAILED ◀┘                                 REFUNDED
//!                                         │ captured late (after we failed it):
//!                                         └─ refund REQUESTED ── refund processed ─▶ REFUNDED
//! ```
//!
//! Terminal facts never change: a second `captured`, a `failed` after `captured`, a `captured`
//! after `REFUNDED` are no-ops (`Decision::Unchanged`), which is what makes duplicate webhooks and
//! racing reconciliation idempotent. Each change names at most one event to emit; the caller
//! commits the new record (ETag-guarded) and that event in one batch.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PaymentFailed::reason_code` values.
pub mod reason_code {
    /// The gateway or bank declined (synchronously, or `BAD_REQUEST_ERROR` in a webhook).
    pub const DECLINED: &str = "DECLINED";
    /// The gateway reported another failure (`GATEWAY_ERROR`, ...).
    pub const PAYMENT_FAILED: &str = "PAYMENT_FAILED";
    /// The gateway stayed unreachable through every bus retry tier.
    pub const GATEWAY_UNAVAILABLE: &str = "GATEWAY_UNAVAILABLE";
    /// Pending at the gateway for longer than `reconcile.expire_after_secs`.
    pub const EXPIRED: &str = "EXPIRED";
}

/// Maps a gateway error code to our reason code.
pub fn reason_code_for(gateway_code: Option<&str>) -> &'static str {
    match gateway_code {
        Some("BAD_REQUEST_ERROR") => reason_code::DECLINED,
        _ => reason_code::PAYMENT_FAILED,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Recorded; the gateway has not (yet) accepted it.
    Initiating,
    /// Accepted by the gateway, awaiting capture (webhook or reconciliation).
    Pending,
    /// Funds realised.
    Captured,
    /// Declined, failed, expired or the gateway was unreachable.
    Failed,
    /// Money taken and returned.
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Initiating => "INITIATING",
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Captured => "CAPTURED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Decided; the gateway has not confirmed it yet (the reconciler retries it).
    Requested,
    /// Confirmed by the gateway; `payment.refunded` emitted.
    Processed,
    /// The gateway refused it; needs a person.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub code: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundRecord {
    /// `rfd-{order id}`: also the gateway idempotency key.
    pub refund_id: String,
    #[schema(value_type = String, example = "5000.00")]
    pub amount: Decimal,
    pub reason: String,
    pub status: RefundStatus,
    pub gateway_refund_id: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub status: PaymentStatus,
    pub detail: String,
}

/// One payment: document `pay:{order id}` in container `payments`, partition = investor id.
/// Also the body of `GET /v1/payments/{orderId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    /// Equal to the order id (deterministic: a redelivered order finds its payment).
    pub payment_id: String,
    pub order_id: String,
    pub investor_id: String,
    #[schema(value_type = String, example = "5000.00")]
    pub amount: Decimal,
    pub currency: String,
    /// `upi`, `netbanking`, ...
    pub method: String,
    pub vpa: Option<String>,
    pub status: PaymentStatus,
    pub gateway: String,
    /// The gateway's payment id, once it accepted the payment.
    pub gateway_ref: Option<String>,
    pub order_kind: String,
    pub scheme_code: String,
    pub scheme_category: Option<String>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
    pub failure: Option<Failure>,
    pub refund: Option<RefundRecord>,
    /// When the gateway captured a payment we had already failed (it is refunded).
    pub late_capture_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub initiated_at: Option<DateTime<Utc>>,
    /// The gateway's capture time: decides the applicable NAV date.
    pub realised_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub timeline: Vec<TimelineEntry>,
}

/// The document id of an order's payment.
pub fn record_id(order_id: &str) -> String {
    format!("pay:{order_id}")
}

/// Paise of an amount with at most two decimals (`None`: negative, finer than a paisa, or huge),
/// through the domain's exact [`Amount`](nivesh_domain::Amount).
pub fn to_paise(amount: Decimal) -> Option<u64> {
    let amount = nivesh_domain::Amount::new(amount).ok()?;
    u64::try_from(amount.to_paise()).ok()
}

/// What happened, as reported by the gateway (or decided about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// `POST /payments` accepted the payment.
    Accepted { gateway_ref: String },
    /// Funds captured at `captured_at` (gateway time).
    Captured {
        gateway_ref: String,
        amount_paise: u64,
        captured_at: DateTime<Utc>,
    },
    /// The gateway declined or failed the payment.
    Failed {
        gateway_ref: Option<String>,
        reason_code: String,
        reason: String,
    },
    /// Every bus retry tier found the gateway unavailable.
    Unavailable { reason: String },
    /// Pending too long.
    Expired,
    /// Return `amount` (order failed after the money was taken).
    RefundRequested { amount: Decimal, reason: String },
    /// The gateway confirmed the refund.
    RefundProcessed {
        gateway_refund_id: String,
        refunded_at: DateTime<Utc>,
    },
    /// The gateway refused the refund.
    RefundFailed { reason: String },
}

/// The event a change emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Initiated,
    Succeeded,
    Failed,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (duplicate or superseded update).
    Unchanged,
    Changed {
        record: Box<PaymentRecord>,
        effect: Option<Effect>,
    },
}

/// An update that contradicts the record: never applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("gateway payment {got} does not match the payment's gateway reference {expected}")]
    GatewayRefMismatch { expected: String, got: String },
    #[error("captured amount {got} paise differs from the payment's {expected} paise")]
    AmountMismatch { expected: u64, got: u64 },
    #[error("cannot refund a payment in status {0:?}")]
    NotRefundable(PaymentStatus),
    #[error("refund amount {amount} is not between 0.01 and the payment's {paid}")]
    BadRefundAmount { amount: Decimal, paid: Decimal },
}

fn check_ref(record: &PaymentRecord, got: &str) -> Result<(), UpdateError> {
    match &record.gateway_ref {
        Some(expected) if expected != got => Err(UpdateError::GatewayRefMismatch {
            expected: expected.clone(),
            got: got.to_string(),
        }),
        _ => Ok(()),
    }
}

fn changed(
    mut next: PaymentRecord,
    now: DateTime<Utc>,
    detail: String,
    effect: Option<Effect>,
) -> Decision {
    next.updated_at = now;
    next.timeline.push(TimelineEntry {
        at: now,
        status: next.status,
        detail,
    });
    Decision::Changed {
        record: Box::new(next),
        effect,
    }
}

/// Apply `update` to `record` at `now` (business clock).
pub fn apply(
    record: &PaymentRecord,
    update: &Update,
    now: DateTime<Utc>,
) -> Result<Decision, UpdateError> {
    use PaymentStatus::*;
    let mut next = record.clone();
    Ok(match update {
        Update::Accepted { gateway_ref } => {
            if record.status != Initiating {
                return Ok(Decision::Unchanged);
            }
            next.status = Pending;
            next.gateway_ref = Some(gateway_ref.clone());
            next.initiated_at = Some(now);
            changed(
                next,
                now,
                format!("accepted by the gateway as {gateway_ref}"),
                Some(Effect::Initiated),
            )
        }
        Update::Captured {
            gateway_ref,
            amount_paise,
            captured_at,
        } => {
            check_ref(record, gateway_ref)?;
            let expected = to_paise(record.amount).unwrap_or_default();
            if *amount_paise != expected {
                return Err(UpdateError::AmountMismatch {
                    expected,
                    got: *amount_paise,
                });
            }
            match record.status {
                Initiating | Pending => {
                    next.status = Captured;
                    next.gateway_ref = Some(gateway_ref.clone());
                    next.realised_at = Some(*captured_at);
                    changed(
                        next,
                        now,
                        format!("captured at {captured_at}"),
                        Some(Effect::Succeeded),
                    )
                }
                Failed if record.late_capture_at.is_none() && record.refund.is_none() => {
                    // We told the order it failed; the money came anyway: give it back.
                    next.gateway_ref = Some(gateway_ref.clone());
                    next.late_capture_at = Some(*captured_at);
                    next.refund = Some(RefundRecord {
                        refund_id: refund_id(&record.order_id),
                        amount: record.amount,
                        reason: "captured after the payment had failed".into(),
                        status: RefundStatus::Requested,
                        gateway_refund_id: None,
                        requested_at: now,
                        refunded_at: None,
                        failure: None,
                    });
                    changed(
                        next,
                        now,
                        format!("captured late at {captured_at}; refund requested"),
                        None,
                    )
                }
                Failed | Captured | Refunded => Decision::Unchanged,
            }
        }
        Update::Failed {
            gateway_ref,
            reason_code,
            reason,
        } => {
            if let Some(r) = gateway_ref {
                check_ref(record, r)?;
            }
            if !matches!(record.status, Initiating | Pending) {
                return Ok(Decision::Unchanged);
            }
            if let Some(r) = gateway_ref {
                next.gateway_ref = Some(r.clone());
            }
            fail(next, now, reason_code, reason)
        }
        Update::Unavailable { reason } => {
            if record.status != Initiating {
                return Ok(Decision::Unchanged);
            }
            fail(next, now, reason_code::GATEWAY_UNAVAILABLE, reason)
        }
        Update::Expired => {
            if record.status != Pending {
                return Ok(Decision::Unchanged);
            }
            fail(
                next,
                now,
                reason_code::EXPIRED,
                "payment not completed at the gateway in time",
            )
        }
        Update::RefundRequested { amount, reason } => {
            if record.refund.is_some() {
                return Ok(Decision::Unchanged);
            }
            if record.status != Captured {
                return Err(UpdateError::NotRefundable(record.status));
            }
            if *amount <= Decimal::ZERO || *amount > record.amount || to_paise(*amount).is_none() {
                return Err(UpdateError::BadRefundAmount {
                    amount: *amount,
                    paid: record.amount,
                });
            }
            next.refund = Some(RefundRecord {
                refund_id: refund_id(&record.order_id),
                amount: *amount,
                reason: reason.clone(),
                status: RefundStatus::Requested,
                gateway_refund_id: None,
                requested_at: now,
                refunded_at: None,
                failure: None,
            });
            changed(next, now, format!("refund of {amount} requested"), None)
        }
        Update::RefundProcessed {
            gateway_refund_id,
            refunded_at,
        } => {
            let Some(refund) = next.refund.as_mut() else {
                return Ok(Decision::Unchanged);
            };
            if refund.status == RefundStatus::Processed {
                return Ok(Decision::Unchanged);
            }
            refund.status = RefundStatus::Processed;
            refund.gateway_refund_id = Some(gateway_refund_id.clone());
            refund.refunded_at = Some(*refunded_at);
            refund.failure = None;
            next.status = Refunded;
            changed(
                next,
                now,
                format!("refunded as {gateway_refund_id}"),
                Some(Effect::Refunded),
            )
        }
        Update::RefundFailed { reason } => {
            let Some(refund) = next.refund.as_mut() else {
                return Ok(Decision::Unchanged);
            };
            if refund.status != RefundStatus::Requested {
                return Ok(Decision::Unchanged);
            }
            refund.status = RefundStatus::Failed;
            refund.failure = Some(reason.clone());
            changed(next, now, format!("refund refused: {reason}"), None)
        }
    })
}

fn fail(mut next: PaymentRecord, now: DateTime<Utc>, code: &str, reason: &str) -> Decision {
    next.status = PaymentStatus::Failed;
    next.failure = Some(Failure {
        code: code.to_string(),
        reason: reason.to_string(),
        at: now,
    });
    changed(next, now, format!("{code}: {reason}"), Some(Effect::Failed))
}

/// `rfd-{order id}`: refund id and gateway idempotency key.
pub fn refund_id(order_id: &str) -> String {
    format!("rfd-{order_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_740_475_800 + secs, 0).unwrap()
    }

    fn record(status: PaymentStatus) -> PaymentRecord {
        PaymentRecord {
            payment_id: "o-1".into(),
            order_id: "o-1".into(),
            investor_id: "INV0001".into(),
            amount: Decimal::new(500_000, 2),
            currency: "INR".into(),
            method: "upi".into(),
            vpa: None,
            status,
            gateway: "pg-sim".into(),
            gateway_ref: (status != PaymentStatus::Initiating).then(|| "pay_1".into()),
            order_kind: "PURCHASE".into(),
            scheme_code: "119551".into(),
            scheme_category: None,
            sip_id: None,
            instalment_no: None,
            failure: None,
            refund: None,
            late_capture_at: None,
            created_at: t(0),
            initiated_at: None,
            realised_at: None,
            updated_at: t(0),
            timeline: Vec::new(),
        }
    }

    fn captured(at: i64) -> Update {
        Update::Captured {
            gateway_ref: "pay_1".into(),
            amount_paise: 500_000,
            captured_at: t(at),
        }
    }

    fn failed() -> Update {
        Update::Failed {
            gateway_ref: Some("pay_1".into()),
            reason_code: reason_code::DECLINED.into(),
            reason: "declined by bank".into(),
        }
    }

    fn expect_changed(d: Decision) -> (PaymentRecord, Option<Effect>) {
        match d {
            Decision::Changed { record, effect } => (*record, effect),
            Decision::Unchanged => panic!("expected a change"),
        }
    }

    /// The happy path: accepted → pending (initiated) → captured (succeeded, realised at the
    /// gateway's capture time, not at "now").
    #[test]
    fn accepted_then_captured() {
        let (pending, effect) = expect_changed(
            apply(
                &record(PaymentStatus::Initiating),
                &Update::Accepted {
                    gateway_ref: "pay_1".into(),
                },
                t(1),
            )
            .unwrap(),
        );
        assert_eq!(effect, Some(Effect::Initiated));
        assert_eq!(pending.status, PaymentStatus::Pending);
        assert_eq!(pending.gateway_ref.as_deref(), Some("pay_1"));
        assert_eq!(pending.initiated_at, Some(t(1)));
        let (done, effect) = expect_changed(apply(&pending, &captured(5), t(9)).unwrap());
        assert_eq!(effect, Some(Effect::Succeeded));
        assert_eq!(done.status, PaymentStatus::Captured);
        assert_eq!(done.realised_at, Some(t(5)));
        assert_eq!(done.updated_at, t(9));
        assert_eq!(done.timeline.len(), 2);
    }

    /// A webhook may beat the consumer: capture straight from INITIATING, after which the
    /// consumer's late "accepted" changes nothing.
    #[test]
    fn capture_may_overtake_acceptance() {
        let (done, effect) =
            expect_changed(apply(&record(PaymentStatus::Initiating), &captured(2), t(3)).unwrap());
        assert_eq!(effect, Some(Effect::Succeeded));
        let late = apply(
            &done,
            &Update::Accepted {
                gateway_ref: "pay_1".into(),
            },
            t(4),
        )
        .unwrap();
        assert_eq!(late, Decision::Unchanged);
    }

    /// Duplicates and contradictions of terminal states are no-ops.
    #[test]
    fn terminal_states_are_final() {
        let cap = record(PaymentStatus::Captured);
        assert_eq!(
            apply(&cap, &captured(1), t(2)).unwrap(),
            Decision::Unchanged
        );
        assert_eq!(apply(&cap, &failed(), t(2)).unwrap(), Decision::Unchanged);
        assert_eq!(
            apply(&cap, &Update::Expired, t(2)).unwrap(),
            Decision::Unchanged
        );
        let fail = record(PaymentStatus::Failed);
        assert_eq!(apply(&fail, &failed(), t(2)).unwrap(), Decision::Unchanged);
        let refunded = record(PaymentStatus::Refunded);
        assert_eq!(
            apply(&refunded, &captured(1), t(2)).unwrap(),
            Decision::Unchanged
        );
        assert_eq!(
            apply(
                &record(PaymentStatus::Pending),
                &Update::Unavailable { reason: "x".into() },
                t(2)
            )
            .unwrap(),
            Decision::Unchanged,
            "unavailability only fails a payment the gateway never accepted"
        );
    }

    /// Failures carry the reason code; expiry only applies to pending payments.
    #[test]
    fn failures_and_expiry() {
        let (f, effect) =
            expect_changed(apply(&record(PaymentStatus::Pending), &failed(), t(1)).unwrap());
        assert_eq!(effect, Some(Effect::Failed));
        assert_eq!(f.failure.unwrap().code, "DECLINED");
        let (e, _) =
            expect_changed(apply(&record(PaymentStatus::Pending), &Update::Expired, t(1)).unwrap());
        assert_eq!(e.failure.unwrap().code, "EXPIRED");
        assert_eq!(
            apply(&record(PaymentStatus::Initiating), &Update::Expired, t(1)).unwrap(),
            Decision::Unchanged
        );
        let (u, _) = expect_changed(
            apply(
                &record(PaymentStatus::Initiating),
                &Update::Unavailable {
                    reason: "timeout".into(),
                },
                t(1),
            )
            .unwrap(),
        );
        assert_eq!(u.failure.unwrap().code, "GATEWAY_UNAVAILABLE");
    }

    /// A webhook for another gateway payment or another amount is refused, never applied.
    #[test]
    fn contradictions_are_errors() {
        let pending = record(PaymentStatus::Pending);
        let other = Update::Captured {
            gateway_ref: "pay_other".into(),
            amount_paise: 500_000,
            captured_at: t(1),
        };
        assert!(matches!(
            apply(&pending, &other, t(1)),
            Err(UpdateError::GatewayRefMismatch { .. })
        ));
        let short = Update::Captured {
            gateway_ref: "pay_1".into(),
            amount_paise: 499_999,
            captured_at: t(1),
        };
        assert_eq!(
            apply(&pending, &short, t(1)),
            Err(UpdateError::AmountMismatch {
                expected: 500_000,
                got: 499_999
            })
        );
    }

    /// Refund: requested once, processed once (emitting `Refunded` once), never for an
    /// uncaptured payment or more than was paid.
    #[test]
    fn refund_exactly_once() {
        let cap = record(PaymentStatus::Captured);
        let req = Update::RefundRequested {
            amount: Decimal::new(500_000, 2),
            reason: "allotment failed".into(),
        };
        let (requested, effect) = expect_changed(apply(&cap, &req, t(1)).unwrap());
        assert_eq!(effect, None);
        let refund = requested.refund.clone().unwrap();
        assert_eq!(refund.refund_id, "rfd-o-1");
        assert_eq!(refund.status, RefundStatus::Requested);
        assert_eq!(apply(&requested, &req, t(2)).unwrap(), Decision::Unchanged);

        let done = Update::RefundProcessed {
            gateway_refund_id: "rfnd_1".into(),
            refunded_at: t(3),
        };
        let (refunded, effect) = expect_changed(apply(&requested, &done, t(4)).unwrap());
        assert_eq!(effect, Some(Effect::Refunded));
        assert_eq!(refunded.status, PaymentStatus::Refunded);
        assert_eq!(apply(&refunded, &done, t(5)).unwrap(), Decision::Unchanged);

        assert_eq!(
            apply(&record(PaymentStatus::Pending), &req, t(1)),
            Err(UpdateError::NotRefundable(PaymentStatus::Pending))
        );
        let too_much = Update::RefundRequested {
            amount: Decimal::new(500_001, 2),
            reason: "x".into(),
        };
        assert!(matches!(
            apply(&cap, &too_much, t(1)),
            Err(UpdateError::BadRefundAmount { .. })
        ));
    }

    /// A capture after we failed the payment requests a refund instead of succeeding.
    #[test]
    fn late_capture_is_refunded() {
        let mut failed_rec = record(PaymentStatus::Failed);
        failed_rec.gateway_ref = None;
        let (r, effect) = expect_changed(apply(&failed_rec, &captured(7), t(8)).unwrap());
        assert_eq!(effect, None, "no payment.success for a failed order");
        assert_eq!(r.status, PaymentStatus::Failed);
        assert_eq!(r.late_capture_at, Some(t(7)));
        assert_eq!(r.refund.as_ref().unwrap().status, RefundStatus::Requested);
        assert_eq!(r.refund.as_ref().unwrap().amount, failed_rec.amount);
        assert_eq!(apply(&r, &captured(7), t(9)).unwrap(), Decision::Unchanged);
    }

    /// Paise conversion is exact and refuses what is not a whole number of paise.
    #[test]
    fn paise() {
        assert_eq!(to_paise(Decimal::new(500_000, 2)), Some(500_000));
        assert_eq!(to_paise(Decimal::new(5, 0)), Some(500));
        assert_eq!(to_paise(Decimal::new(12_345, 4)), None);
        assert_eq!(to_paise(Decimal::new(10_000, 4)), Some(100));
        assert_eq!(to_paise(Decimal::new(-1, 2)), None);
        assert_eq!(to_paise(Decimal::ZERO), Some(0));
    }
}
