//! The engine every entry point shares (consumer, webhook, reconciler): load a payment, apply an
//! [`Update`] through the state machine, and commit the new record (Replace with the ETag read)
//! together with the event it causes (outbox) in ONE batch in the investor's partition.
//! Optionally the consumer's inbox marker joins the same batch.
//!
//! A lost ETag race (a webhook and the reconciler, or two duplicate webhooks, at once) re-reads
//! and re-applies the same update: the state machine turns the loser into a no-op, so an event
//! is emitted exactly once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nivesh_domain::time::Clock;
use nivesh_events::{
    AvroCodec, Event, EventMeta, PaymentFailed, PaymentInitiated, PaymentRefunded, PaymentSucceeded,
};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{
    Batch, DocumentStore, ETag, OutboxMessage, WriteOp, inbox_marker, is_inbox_conflict,
};
use tokio::sync::Notify;

use crate::gateway::{GatewayClient, GatewayError};
use crate::record::{
    Decision, Effect, PaymentRecord, PaymentStatus, RefundStatus, Update, UpdateError, apply,
    record_id, to_paise,
};

/// The store container of payment records (and the consumer's inbox markers).
pub const CONTAINER: &str = "payments";
/// The service name, as events' `meta.producer`.
pub const PRODUCER: &str = "payment";

pub const INITIATED_TOPIC: &str = "payment.initiated";
pub const SUCCESS_TOPIC: &str = "payment.success";
pub const FAILED_TOPIC: &str = "payment.failed";
pub const REFUNDED_TOPIC: &str = "payment.refunded";

/// Counter: payment events emitted, by `event` (and `reason` for failures).
pub const OUTCOMES: &str = "nivesh_payment_outcomes_total";

/// How many times an update is re-applied after losing an ETag race.
const MAX_RACES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("no payment for order {0}")]
    NotFound(String),
    #[error("stored payment {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Invalid(#[from] UpdateError),
    #[error("payment {0} kept changing under concurrent updates")]
    Contention(String),
    #[error("encoding event: {0}")]
    Encode(String),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// What [`Payments::apply_update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The record changed; the effect's event (if any) was emitted.
    Changed(Option<Effect>),
    /// A duplicate or superseded update: nothing changed.
    Unchanged,
    /// The consumer's inbox marker already existed: the message was processed before.
    AlreadyProcessed,
}

/// Store, codec, gateway and clock: what handling a payment needs. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    pub store: Arc<dyn DocumentStore>,
    pub codec: AvroCodec,
    pub outbox_notify: Arc<Notify>,
    pub gateway: Arc<GatewayClient>,
    /// The business clock (record timestamps, ages).
    pub clock: Arc<dyn Clock>,
    /// `PaymentInitiated::gateway`.
    pub gateway_name: String,
}

/// An inbox marker to commit with the change: (consumer group, message id).
pub type Marker<'a> = Option<(&'a str, &'a str)>;

impl Payments {
    /// The payment of `order_id` in `investor_id`'s partition, with its ETag.
    pub async fn load(
        &self,
        investor_id: &str,
        order_id: &str,
    ) -> Result<Option<(PaymentRecord, ETag)>, FlowError> {
        let Some(doc) = self
            .store
            .get(CONTAINER, investor_id, &record_id(order_id))
            .await?
        else {
            return Ok(None);
        };
        let record = serde_json::from_value(doc.body)
            .map_err(|e| FlowError::Corrupt(order_id.to_string(), e.to_string()))?;
        Ok(Some((record, doc.etag)))
    }

    /// Create the record if it does not exist yet; returns the stored one either way.
    pub async fn create_if_absent(
        &self,
        record: PaymentRecord,
    ) -> Result<(PaymentRecord, ETag), FlowError> {
        for _ in 0..MAX_RACES {
            if let Some(found) = self.load(&record.investor_id, &record.order_id).await? {
                return Ok(found);
            }
            let batch = Batch::new(CONTAINER, &record.investor_id).op(WriteOp::Create {
                id: record_id(&record.order_id),
                body: serde_json::to_value(&record).expect("a record serializes"),
                ttl: None,
            });
            match self.store.commit(batch).await {
                Ok(mut docs) => {
                    let doc = docs.remove(0);
                    return Ok((record, doc.etag));
                }
                Err(nivesh_store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FlowError::Contention(record.order_id))
    }

    /// Commit only the inbox marker (the message changed nothing).
    pub async fn mark_processed(
        &self,
        investor_id: &str,
        (group, message_id): (&str, &str),
    ) -> Result<Applied, FlowError> {
        let batch = Batch::new(CONTAINER, investor_id).op(inbox_marker(group, message_id));
        match self.store.commit(batch).await {
            Ok(_) => Ok(Applied::Unchanged),
            Err(e) if is_inbox_conflict(&e, group, message_id) => Ok(Applied::AlreadyProcessed),
            Err(e) => Err(e.into()),
        }
    }

    /// Apply `update` to the payment of `order_id`, committing record + event (+ marker) at once.
    pub async fn apply_update(
        &self,
        investor_id: &str,
        order_id: &str,
        update: &Update,
        marker: Marker<'_>,
        causation: &str,
    ) -> Result<Applied, FlowError> {
        for _ in 0..MAX_RACES {
            let (record, etag) = self
                .load(investor_id, order_id)
                .await?
                .ok_or_else(|| FlowError::NotFound(order_id.to_string()))?;
            let (next, effect) = match apply(&record, update, self.clock.now())? {
                Decision::Unchanged => {
                    return match marker {
                        Some(m) => self.mark_processed(investor_id, m).await,
                        None => Ok(Applied::Unchanged),
                    };
                }
                Decision::Changed { record, effect } => (record, effect),
            };
            let mut batch = Batch::new(CONTAINER, investor_id);
            if let Some((group, message_id)) = marker {
                batch = batch.op(inbox_marker(group, message_id));
            }
            batch = batch.op(WriteOp::Replace {
                id: record_id(order_id),
                body: serde_json::to_value(&*next).expect("a record serializes"),
                if_match: etag,
                ttl: None,
            });
            if let Some(effect) = effect {
                batch = batch.emit(self.event(effect, &next, causation).await?);
            }
            match self.store.commit(batch).await {
                Ok(_) => {
                    self.outbox_notify.notify_one();
                    if let Some(effect) = effect {
                        count_outcome(effect, &next);
                    }
                    tracing::info!(
                        order_id,
                        investor_id,
                        status = next.status.as_str(),
                        "payment updated"
                    );
                    return Ok(Applied::Changed(effect));
                }
                Err(nivesh_store::Error::PreconditionFailed { .. }) => continue,
                Err(e) if marker.is_some_and(|(g, m)| is_inbox_conflict(&e, g, m)) => {
                    return Ok(Applied::AlreadyProcessed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FlowError::Contention(order_id.to_string()))
    }

    /// Carry out a requested refund at the gateway (idempotency key = refund id) and record the
    /// result. Used by the `order.failed` consumer (with its marker) and the reconciler.
    pub async fn execute_refund(
        &self,
        investor_id: &str,
        order_id: &str,
        marker: Marker<'_>,
        causation: &str,
    ) -> Result<Applied, FlowError> {
        let (record, _) = self
            .load(investor_id, order_id)
            .await?
            .ok_or_else(|| FlowError::NotFound(order_id.to_string()))?;
        let Some(refund) = record.refund.clone() else {
            return Ok(Applied::Unchanged);
        };
        if refund.status == RefundStatus::Processed {
            return match marker {
                Some(m) => self.mark_processed(investor_id, m).await,
                None => Ok(Applied::Unchanged),
            };
        }
        let gateway_ref =
            record
                .gateway_ref
                .clone()
                .ok_or(FlowError::Invalid(UpdateError::NotRefundable(
                    record.status,
                )))?;
        let paise =
            to_paise(refund.amount).ok_or(FlowError::Invalid(UpdateError::BadRefundAmount {
                amount: refund.amount,
                paid: record.amount,
            }))?;
        match self
            .gateway
            .refund(&gateway_ref, paise, &refund.refund_id)
            .await
        {
            Ok(r) => {
                let update = Update::RefundProcessed {
                    gateway_refund_id: r.id,
                    refunded_at: unix_time(r.created_at).unwrap_or_else(|| self.clock.now()),
                };
                self.apply_update(investor_id, order_id, &update, marker, causation)
                    .await
            }
            Err(e @ (GatewayError::Declined { .. } | GatewayError::NotFound)) => {
                tracing::error!(order_id, error = %e, "the gateway refused a refund; a person must look at it");
                let update = Update::RefundFailed {
                    reason: e.to_string(),
                };
                self.apply_update(investor_id, order_id, &update, None, causation)
                    .await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn event(
        &self,
        effect: Effect,
        r: &PaymentRecord,
        causation: &str,
    ) -> Result<OutboxMessage, FlowError> {
        let causation = Some(causation.to_string());
        match effect {
            Effect::Initiated => {
                let e = PaymentInitiated {
                    meta: EventMeta::new::<PaymentInitiated>(PRODUCER, causation),
                    payment_id: r.payment_id.clone(),
                    order_id: r.order_id.clone(),
                    investor_id: r.investor_id.clone(),
                    amount: r.amount,
                    gateway: self.gateway_name.clone(),
                    gateway_ref: r.gateway_ref.clone(),
                    initiated_at: micros(r.initiated_at.unwrap_or(r.updated_at)),
                };
                self.encode(INITIATED_TOPIC, r, &e).await
            }
            Effect::Succeeded => {
                let e = PaymentSucceeded {
                    meta: EventMeta::new::<PaymentSucceeded>(PRODUCER, causation),
                    payment_id: r.payment_id.clone(),
                    order_id: r.order_id.clone(),
                    investor_id: r.investor_id.clone(),
                    amount: r.amount,
                    gateway_ref: r.gateway_ref.clone().unwrap_or_default(),
                    realised_at: micros(r.realised_at.unwrap_or(r.updated_at)),
                    order_kind: r.order_kind.clone(),
                    scheme_code: r.scheme_code.clone(),
                    scheme_category: r.scheme_category.clone(),
                    sip_id: r.sip_id.clone(),
                    instalment_no: r.instalment_no,
                };
                self.encode(SUCCESS_TOPIC, r, &e).await
            }
            Effect::Failed => {
                let failure = r.failure.clone();
                let e = PaymentFailed {
                    meta: EventMeta::new::<PaymentFailed>(PRODUCER, causation),
                    payment_id: Some(r.payment_id.clone()),
                    order_id: r.order_id.clone(),
                    investor_id: r.investor_id.clone(),
                    amount: r.amount,
                    reason_code: failure
                        .as_ref()
                        .map_or_else(|| "PAYMENT_FAILED".into(), |f| f.code.clone()),
                    reason: failure.map_or_else(String::new, |f| f.reason),
                };
                self.encode(FAILED_TOPIC, r, &e).await
            }
            Effect::Refunded => {
                let refund = r
                    .refund
                    .clone()
                    .ok_or_else(|| FlowError::Encode("refunded without a refund".into()))?;
                let e = PaymentRefunded {
                    meta: EventMeta::new::<PaymentRefunded>(PRODUCER, causation),
                    payment_id: r.payment_id.clone(),
                    refund_id: refund.refund_id,
                    order_id: r.order_id.clone(),
                    investor_id: r.investor_id.clone(),
                    amount: refund.amount,
                    reason: refund.reason,
                    refunded_at: micros(refund.refunded_at.unwrap_or(r.updated_at)),
                };
                self.encode(REFUNDED_TOPIC, r, &e).await
            }
        }
    }

    async fn encode<E: Event>(
        &self,
        topic: &str,
        r: &PaymentRecord,
        event: &E,
    ) -> Result<OutboxMessage, FlowError> {
        outbox_message(&self.codec, topic, &r.investor_id, event)
            .await
            .map_err(|e| FlowError::Encode(e.to_string()))
    }
}

fn count_outcome(effect: Effect, r: &PaymentRecord) {
    match effect {
        Effect::Initiated => metrics::counter!(OUTCOMES, "event" => "initiated").increment(1),
        Effect::Succeeded => metrics::counter!(OUTCOMES, "event" => "succeeded").increment(1),
        Effect::Refunded => metrics::counter!(OUTCOMES, "event" => "refunded").increment(1),
        Effect::Failed => {
            let reason = r
                .failure
                .as_ref()
                .map_or_else(String::new, |f| f.code.clone());
            metrics::counter!(OUTCOMES, "event" => "failed", "reason" => reason).increment(1)
        }
    }
}

/// The wire carries microseconds; truncate so the event round-trips unchanged.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A gateway timestamp (unix seconds; 0 or out of range: unknown).
pub fn unix_time(secs: i64) -> Option<DateTime<Utc>> {
    (secs > 0)
        .then(|| DateTime::from_timestamp(secs, 0))
        .flatten()
}

/// Still needs the gateway: pending capture, or a refund not yet confirmed.
pub fn needs_reconciliation(r: &PaymentRecord) -> Option<DateTime<Utc>> {
    if r.status == PaymentStatus::Pending {
        return Some(r.initiated_at.unwrap_or(r.updated_at));
    }
    match &r.refund {
        Some(refund) if refund.status == RefundStatus::Requested => Some(refund.requested_at),
        _ => None,
    }
}
