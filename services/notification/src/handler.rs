//! The `notification` consumer: one event → one templated message per channel, each sent at
//! most once per (event id, channel).
//!
//! Sending is an external effect, so the usual "state + inbox marker in one batch" cannot cover
//! it. Per channel instead:
//! 1. skip if `d:{event}:{channel}` exists (recorded before);
//! 2. send, keyed by `{event}:{channel}` (email Message-ID, provider `Idempotency-Key`);
//! 3. record: `Create d:{event}:{channel}` + the notification, in one batch.
//!
//! A redelivery after 3 sends nothing; a crash between 2 and 3 resends with the same key, which
//! the mail system / provider dedupes. A transient failure returns `Retryable` (the bus's
//! retry tiers, then the DLQ); channels already recorded are skipped on the retry. A permanent
//! failure (bad address, provider says no) is recorded as `FAILED`. When every channel is
//! recorded, the inbox marker (plus what `order.placed` taught about the order) commits, and
//! later redeliveries stop at the marker.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::InvestorId;
use nivesh_domain::time::{Clock, to_ist};
use nivesh_events::{
    AvroCodec, OrderFailed, OrderPlaced, PaymentFailed, PaymentRefunded, TransactionCompleted,
};
use nivesh_store::{
    Batch, DocumentStore, Error as StoreError, WriteOp, inbox_marker, inbox_marker_id,
    is_inbox_conflict,
};

use crate::channel::{Channel, Outgoing, SendError, content};
use crate::compose::{Inbound, OrderContext, Rules, compose};
use crate::model::{
    EventRef, NOTIFICATIONS, Notification, NotificationStatus, dedupe_id, notification_doc_id,
    notification_key, order_context_id,
};
use crate::registry::{Investor, InvestorRegistry};
use crate::template::{Rendered, render};

pub const GROUP: &str = "notification";

/// How long what `order.placed` said about an order is kept (orders finish within days).
const ORDER_CONTEXT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

pub struct Notifier {
    pub store: Arc<dyn DocumentStore>,
    pub codec: AvroCodec,
    pub registry: Arc<InvestorRegistry>,
    pub channels: Vec<Arc<dyn Channel>>,
    pub rules: Rules,
    pub clock: Arc<dyn Clock>,
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

impl Notifier {
    async fn decode(&self, msg: &InboundMessage) -> Result<Inbound, HandlerError> {
        let bad = |what: &str, e: nivesh_events::Error| {
            HandlerError::Permanent(format!("not a {what} event on {}: {e}", msg.topic))
        };
        let p = &msg.payload;
        Ok(match msg.topic.as_str() {
            "order.placed" => Inbound::Placed(
                self.codec
                    .decode::<OrderPlaced>(p)
                    .await
                    .map_err(|e| bad("OrderPlaced", e))?,
            ),
            "payment.failed" => Inbound::PaymentFailed(
                self.codec
                    .decode::<PaymentFailed>(p)
                    .await
                    .map_err(|e| bad("PaymentFailed", e))?,
            ),
            "payment.refunded" => Inbound::Refunded(
                self.codec
                    .decode::<PaymentRefunded>(p)
                    .await
                    .map_err(|e| bad("PaymentRefunded", e))?,
            ),
            "transaction.completed" => Inbound::Completed(
                self.codec
                    .decode::<TransactionCompleted>(p)
                    .await
                    .map_err(|e| bad("TransactionCompleted", e))?,
            ),
            "order.failed" => Inbound::OrderFailed(
                self.codec
                    .decode::<OrderFailed>(p)
                    .await
                    .map_err(|e| bad("OrderFailed", e))?,
            ),
            other => {
                return Err(HandlerError::Permanent(format!(
                    "topic {other} is not consumed by {GROUP}"
                )));
            }
        })
    }

    async fn order_context(
        &self,
        investor: &str,
        event: &Inbound,
    ) -> Result<Option<OrderContext>, HandlerError> {
        if let Some(ctx) = event.order_context() {
            return Ok(Some(ctx));
        }
        let doc = self
            .store
            .get(NOTIFICATIONS, investor, &order_context_id(event.order_id()))
            .await
            .map_err(retryable)?;
        Ok(doc.and_then(|d| serde_json::from_value(d.body).ok()))
    }

    /// Send (unless recorded before) and record one channel's notification.
    async fn deliver(
        &self,
        channel: &dyn Channel,
        msg: &InboundMessage,
        event: &Inbound,
        investor_id: &str,
        investor: Option<&Investor>,
        rendered: &Rendered,
    ) -> Result<(), HandlerError> {
        let event_id = event.meta().event_id.to_string();
        let key = notification_key(&event_id, channel.name());
        let dedupe = dedupe_id(&key);
        if self
            .store
            .get(NOTIFICATIONS, investor_id, &dedupe)
            .await
            .map_err(retryable)?
            .is_some()
        {
            return Ok(());
        }
        let (subject, body) = content(channel.form(), rendered);
        let now = self.clock.now();
        let address = match investor {
            None => Err(format!(
                "investor {investor_id} is not in the investor registry"
            )),
            Some(inv) => channel.address(inv),
        };
        let (status, recipient, error, provider_ref) = match address {
            Err(why) => (NotificationStatus::Undeliverable, None, Some(why), None),
            Ok(to) => {
                let outgoing = Outgoing {
                    idempotency_key: &key,
                    to: &to,
                    to_name: investor.map_or("", |i| i.name.as_str()),
                    template: rendered.template,
                    subject: subject.as_deref().unwrap_or_default(),
                    body: &body,
                    at: now,
                };
                match channel.send(&outgoing).await {
                    Ok(receipt) => (
                        NotificationStatus::Sent,
                        Some(to),
                        None,
                        receipt.provider_ref,
                    ),
                    Err(SendError::Permanent(e)) => {
                        tracing::warn!(channel = channel.name(), %event_id, error = %e, "notification failed permanently");
                        (NotificationStatus::Failed, Some(to), Some(e), None)
                    }
                    Err(SendError::Transient(e)) => {
                        metrics::counter!("nivesh_notification_send_errors_total", "channel" => channel.name()).increment(1);
                        return Err(HandlerError::Retryable(format!(
                            "{} send failed: {e}",
                            channel.name()
                        )));
                    }
                }
            }
        };
        let record = Notification {
            notification_id: key.clone(),
            investor_id: investor_id.to_string(),
            channel: channel.name().to_string(),
            status,
            template: rendered.template.to_string(),
            recipient,
            subject,
            body,
            error,
            provider_ref,
            attempt: msg.attempt,
            event: EventRef {
                event_id: event_id.clone(),
                event_type: event.meta().event_type.clone(),
                topic: msg.topic.clone(),
                order_id: event.order_id().to_string(),
                occurred_at: event.meta().occurred_at_ist(),
            },
            recorded_at: to_ist(now),
        };
        let doc_id = notification_doc_id(now.timestamp_micros(), &key);
        let batch = Batch::new(NOTIFICATIONS, investor_id)
            .op(WriteOp::Create {
                id: dedupe.clone(),
                body: serde_json::json!({ "notificationDocId": doc_id, "status": status.as_str() }),
                ttl: None,
            })
            .op(WriteOp::Create {
                id: doc_id,
                body: serde_json::to_value(&record).map_err(retryable)?,
                ttl: None,
            });
        match self.store.commit(batch).await {
            Ok(_) => {
                metrics::counter!("nivesh_notifications_total", "channel" => channel.name(), "status" => status.as_str(), "template" => rendered.template).increment(1);
                Ok(())
            }
            // Recorded by a concurrent delivery of the same event: nothing to add.
            Err(StoreError::Conflict { id }) if id == dedupe => Ok(()),
            Err(e) => Err(retryable(e)),
        }
    }
}

#[async_trait]
impl MessageHandler for Notifier {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let event = self.decode(msg).await?;
        let investor_id = InvestorId::parse(event.investor_id())
            .map_err(|e| HandlerError::Permanent(format!("bad investor id in {}: {e}", msg.topic)))?
            .to_string();
        let event_id = event.meta().event_id.to_string();
        if self
            .store
            .get(
                NOTIFICATIONS,
                &investor_id,
                &inbox_marker_id(GROUP, &event_id),
            )
            .await
            .map_err(retryable)?
            .is_some()
        {
            metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP).increment(1);
            return Ok(());
        }
        let context = self.order_context(&investor_id, &event).await?;
        if let Some(composed) = compose(&event, context.as_ref(), &self.rules) {
            let investor = self.registry.get(&investor_id);
            let mut vars = composed.vars;
            vars.insert(
                "name",
                investor.map_or_else(|| "Investor".to_string(), |i| i.name.clone()),
            );
            let rendered = render(composed.template, &vars)
                .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            if investor.is_none() {
                tracing::warn!(investor_id = %investor_id, %event_id, "investor not in the registry: notification undeliverable");
            }
            for channel in &self.channels {
                self.deliver(
                    channel.as_ref(),
                    msg,
                    &event,
                    &investor_id,
                    investor,
                    &rendered,
                )
                .await?;
            }
        } else {
            metrics::counter!("nivesh_notifications_suppressed_total", "topic" => msg.topic.clone()).increment(1);
        }
        let mut batch = Batch::new(NOTIFICATIONS, &investor_id).op(inbox_marker(GROUP, &event_id));
        if let Some(ctx) = event.order_context() {
            batch = batch.op(WriteOp::Upsert {
                id: order_context_id(event.order_id()),
                body: serde_json::to_value(&ctx).map_err(retryable)?,
                ttl: Some(ORDER_CONTEXT_TTL),
            });
        }
        match self.store.commit(batch).await {
            Ok(_) => Ok(()),
            Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => Ok(()),
            Err(e) => Err(retryable(e)),
        }
    }
}
