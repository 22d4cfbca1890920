//! The `order` consumer group: every step of an order's timeline, and the scheme table.
//!
//! One batch per event, in one partition, with the inbox marker:
//! - order-flow events (keyed by investor) → the investor's partition of `orders`: the order
//!   (ETag'd Replace), the positions it touches (units held, locks) and, when the order fails
//!   now, the `order.failed` outbox record;
//! - `nav.broadcast` (keyed by scheme) → the scheme's partition of `schemes`;
//! - `investor.onboarded`, `kyc.verified`, `investor.erased` (keyed by investor) → the
//!   investor's identity document in their partition of `orders` (see [`crate::identity`]).
//!
//! Workers of different topics run concurrently, so two events of one order can race: every
//! write is conditional on the ETag read, and a lost race recomputes from the fresh documents.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::Units;
use nivesh_domain::time::to_ist;
use nivesh_events::{
    Event, EventMeta, NavPublished, OrderFailed, PaymentFailed, PaymentInitiated, PaymentRefunded,
    PaymentSucceeded, PortfolioUpdated, TransactionCompleted, TransactionFailed, leg,
};
use nivesh_store::{Batch, ETag, WriteOp, inbox_marker, is_inbox_conflict};
use nivesh_txn_rules::{TxnKind, applicable_nav_date};

use crate::identity::IdentityEvent;
use crate::model::{
    Allotment, Failure, ORDERS, Order, OrderKind, OrderStatus, Position, SCHEME_DOC, SCHEMES,
    Scheme, ist_now, order_doc_id, position_doc_id,
};
use crate::place::position_write;
use crate::service::{MAX_ATTEMPTS, OrderService, class_of, to_value};
use crate::status::{fail, record};
use crate::{GROUP, ORDER_FAILED_TOPIC};

/// Consumes the `order` group's topics.
pub struct Consumer {
    svc: Arc<OrderService>,
}

impl Consumer {
    pub fn new(svc: Arc<OrderService>) -> Self {
        Consumer { svc }
    }
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

/// What an order-flow event means for an order.
#[derive(Debug)]
enum Change {
    Initiated(PaymentInitiated),
    Paid(PaymentSucceeded),
    PaymentFailed(PaymentFailed),
    Refunded(PaymentRefunded),
    Allotted(Box<TransactionCompleted>),
    AllotmentFailed(TransactionFailed),
    InPortfolio(PortfolioUpdated),
}

impl Change {
    fn meta(&self) -> &EventMeta {
        match self {
            Change::Initiated(e) => e.meta(),
            Change::Paid(e) => e.meta(),
            Change::PaymentFailed(e) => e.meta(),
            Change::Refunded(e) => e.meta(),
            Change::Allotted(e) => e.meta(),
            Change::AllotmentFailed(e) => e.meta(),
            Change::InPortfolio(e) => e.meta(),
        }
    }
}

#[async_trait]
impl MessageHandler for Consumer {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let svc = &self.svc;
        let (investor, order_id, change) = match msg.topic.as_str() {
            "nav.broadcast" => return svc.on_nav(decode(svc, msg).await?).await,
            "investor.onboarded" | "kyc.verified" | "investor.erased" => {
                let event = match msg.topic.as_str() {
                    "investor.onboarded" => IdentityEvent::Onboarded(decode(svc, msg).await?),
                    "kyc.verified" => IdentityEvent::Kyc(decode(svc, msg).await?),
                    _ => IdentityEvent::Erased(decode(svc, msg).await?),
                };
                if nivesh_domain::InvestorId::parse(event.investor_id()).is_err() {
                    return Err(HandlerError::Permanent(format!(
                        "{} carries a malformed investor id",
                        msg.topic
                    )));
                }
                return svc.on_identity(event).await;
            }
            "payment.initiated" => {
                let e: PaymentInitiated = decode(svc, msg).await?;
                (
                    e.investor_id.clone(),
                    e.order_id.clone(),
                    Change::Initiated(e),
                )
            }
            "payment.success" => {
                let e: PaymentSucceeded = decode(svc, msg).await?;
                (e.investor_id.clone(), e.order_id.clone(), Change::Paid(e))
            }
            "payment.failed" => {
                let e: PaymentFailed = decode(svc, msg).await?;
                (
                    e.investor_id.clone(),
                    e.order_id.clone(),
                    Change::PaymentFailed(e),
                )
            }
            "payment.refunded" => {
                let e: PaymentRefunded = decode(svc, msg).await?;
                (
                    e.investor_id.clone(),
                    e.order_id.clone(),
                    Change::Refunded(e),
                )
            }
            "transaction.completed" => {
                let e: TransactionCompleted = decode(svc, msg).await?;
                (
                    e.investor_id.clone(),
                    e.order_id.clone(),
                    Change::Allotted(Box::new(e)),
                )
            }
            "transaction.failed" => {
                let e: TransactionFailed = decode(svc, msg).await?;
                (
                    e.investor_id.clone(),
                    e.order_id.clone(),
                    Change::AllotmentFailed(e),
                )
            }
            "portfolio.updated" => {
                let e: PortfolioUpdated = decode(svc, msg).await?;
                // Valuation-only updates carry no order: nothing on any timeline changes.
                let Some(order_id) = e.order_id.clone() else {
                    return Ok(());
                };
                (e.investor_id.clone(), order_id, Change::InPortfolio(e))
            }
            other => {
                return Err(HandlerError::Permanent(format!(
                    "the order group does not consume {other}"
                )));
            }
        };
        if nivesh_domain::InvestorId::parse(&investor).is_err() {
            return Err(HandlerError::Permanent(format!(
                "{} carries a malformed investor id",
                change.meta().event_type
            )));
        }
        svc.on_order_event(&investor, &order_id, change).await
    }
}

async fn decode<E: Event>(svc: &OrderService, msg: &InboundMessage) -> Result<E, HandlerError> {
    svc.codec.decode(&msg.payload).await.map_err(|e| {
        HandlerError::Permanent(format!(
            "{} on {} is not a {}: {e}",
            msg.header_str(nivesh_events::HEADER_EVENT_TYPE)
                .unwrap_or("record"),
            msg.topic,
            E::FULL_NAME
        ))
    })
}

/// Positions read during one attempt, with the ETag each was read at (`None`: new).
#[derive(Default)]
struct Positions {
    docs: BTreeMap<String, (Position, Option<ETag>, bool)>,
}

impl Positions {
    async fn get(
        &mut self,
        svc: &OrderService,
        investor: &str,
        scheme: &str,
    ) -> Result<&mut (Position, Option<ETag>, bool), HandlerError> {
        if !self.docs.contains_key(scheme) {
            let loaded = svc
                .load::<Position>(ORDERS, investor, &position_doc_id(scheme))
                .await
                .map_err(retryable)?;
            let entry = match loaded {
                Some((p, e)) => (p, Some(e), false),
                None => (Position::empty(scheme), None, false),
            };
            self.docs.insert(scheme.to_string(), entry);
        }
        Ok(self.docs.get_mut(scheme).expect("inserted above"))
    }

    /// Sets units held from an allotment's `balance_units`, unless a later one already did.
    async fn set_held(
        &mut self,
        svc: &OrderService,
        investor: &str,
        t: &TransactionCompleted,
    ) -> Result<(), HandlerError> {
        let balance = Units::new(t.balance_units).map_err(|e| {
            HandlerError::Permanent(format!(
                "transaction {} has an invalid balance_units: {e}",
                t.transaction_id
            ))
        })?;
        let (pos, _, dirty) = self.get(svc, investor, &t.scheme_code).await?;
        if pos.as_of.is_none_or(|at| t.allotted_at >= at) {
            pos.units_held = balance;
            pos.as_of = Some(t.allotted_at);
            pos.last_transaction_id = Some(t.transaction_id.clone());
            *dirty = true;
        }
        Ok(())
    }

    async fn release(
        &mut self,
        svc: &OrderService,
        investor: &str,
        scheme: &str,
        order_id: &str,
    ) -> Result<(), HandlerError> {
        let (pos, _, dirty) = self.get(svc, investor, scheme).await?;
        if pos.locks.remove(order_id).is_some() {
            *dirty = true;
        }
        Ok(())
    }

    fn write_ops(self) -> Vec<WriteOp> {
        self.docs
            .into_values()
            .filter(|(_, _, dirty)| *dirty)
            .map(|(p, etag, _)| position_write(position_doc_id(&p.scheme_code), &p, etag))
            .collect()
    }
}

/// The timeline time of an event: its business instant when it has one, else now.
fn at_of(change: &Change, now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    let t: Option<DateTime<Utc>> = match change {
        Change::Initiated(e) => Some(e.initiated_at),
        Change::Paid(e) => Some(e.realised_at),
        Change::Refunded(e) => Some(e.refunded_at),
        Change::Allotted(e) => Some(e.allotted_at),
        Change::PaymentFailed(_) | Change::AllotmentFailed(_) | Change::InPortfolio(_) => None,
    };
    t.map(ist_now).unwrap_or(now)
}

impl OrderService {
    /// `nav.broadcast`: keep the scheme's latest NAV and metadata (an older NAV date is ignored).
    async fn on_nav(&self, e: NavPublished) -> Result<(), HandlerError> {
        let event_id = e.meta.event_id.to_string();
        let scheme = Scheme {
            scheme_code: e.scheme_code.clone(),
            scheme_name: e.scheme_name.clone(),
            amc: e.amc.clone(),
            category: e.category.clone(),
            scheme_type: e.scheme_type.clone(),
            nav: e.nav,
            nav_date: e.nav_date,
        };
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .load::<Scheme>(SCHEMES, &e.scheme_code, SCHEME_DOC)
                .await
                .map_err(retryable)?;
            let mut batch = Batch::new(SCHEMES, &e.scheme_code).op(inbox_marker(GROUP, &event_id));
            match current {
                Some((cur, _)) if cur.nav_date > e.nav_date => {}
                Some((_, etag)) => {
                    batch = batch.op(WriteOp::Replace {
                        id: SCHEME_DOC.into(),
                        body: to_value(&scheme),
                        if_match: etag,
                        ttl: None,
                    });
                }
                None => {
                    batch = batch.op(WriteOp::Create {
                        id: SCHEME_DOC.into(),
                        body: to_value(&scheme),
                        ttl: None,
                    });
                }
            }
            match self.store.commit(batch).await {
                Ok(_) => return Ok(()),
                Err(err) if is_inbox_conflict(&err, GROUP, &event_id) => return Ok(()),
                Err(nivesh_store::Error::PreconditionFailed { .. })
                | Err(nivesh_store::Error::Conflict { .. }) => continue,
                Err(err) => return Err(retryable(err)),
            }
        }
        Err(HandlerError::Retryable(format!(
            "scheme {} kept changing",
            e.scheme_code
        )))
    }

    /// Applies one order-flow event: timeline/status, positions, `order.failed`; one batch.
    async fn on_order_event(
        &self,
        investor: &str,
        order_id: &str,
        change: Change,
    ) -> Result<(), HandlerError> {
        let event_id = change.meta().event_id.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let now = ist_now(self.clock.now());
            let mut batch = Batch::new(ORDERS, investor).op(inbox_marker(GROUP, &event_id));
            let mut positions = Positions::default();
            let loaded = self
                .load::<Order>(ORDERS, investor, &order_doc_id(order_id))
                .await
                .map_err(retryable)?;
            match loaded {
                None => match &change {
                    // The registrar's figure is worth keeping even for an order we do not know.
                    Change::Allotted(t) => {
                        tracing::warn!(order_id, transaction_id = %t.transaction_id, "transaction.completed for an unknown order: units held updated only");
                        metrics::counter!("nivesh_order_unknown_order_events_total", "topic" => "transaction.completed").increment(1);
                        positions.set_held(self, investor, t).await?;
                    }
                    _ => {
                        return Err(HandlerError::Permanent(format!(
                            "{} for unknown order {order_id} of investor {investor}",
                            change.meta().event_type
                        )));
                    }
                },
                Some((mut order, etag)) => {
                    let had_lock = order.locked_units.is_some();
                    let failed = self.apply(&mut order, &change, now);
                    if let Change::Allotted(t) = &change {
                        positions.set_held(self, investor, t).await?;
                        if matches!(t.leg.as_str(), leg::REDEMPTION | leg::SWITCH_OUT) {
                            positions
                                .release(self, investor, &t.scheme_code, order_id)
                                .await?;
                        }
                    }
                    if had_lock && order.locked_units.is_none() {
                        positions
                            .release(self, investor, &order.scheme_code, order_id)
                            .await?;
                    }
                    if let Some(event) = failed {
                        batch = batch.emit(
                            self.outbox(ORDER_FAILED_TOPIC, investor, &event)
                                .await
                                .map_err(retryable)?,
                        );
                    }
                    batch = batch.op(WriteOp::Replace {
                        id: order_doc_id(order_id),
                        body: to_value(&order),
                        if_match: etag,
                        ttl: None,
                    });
                }
            }
            for op in positions.write_ops() {
                batch = batch.op(op);
            }
            match self.store.commit(batch).await {
                Ok(_) => {
                    self.outbox_notify.notify_one();
                    return Ok(());
                }
                Err(err) if is_inbox_conflict(&err, GROUP, &event_id) => {
                    metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP)
                        .increment(1);
                    return Ok(());
                }
                // The order or a position changed since we read it: recompute.
                Err(nivesh_store::Error::PreconditionFailed { .. })
                | Err(nivesh_store::Error::Conflict { .. }) => continue,
                Err(err) => return Err(retryable(err)),
            }
        }
        Err(HandlerError::Retryable(format!(
            "order {order_id} kept changing under the consumer"
        )))
    }

    /// The change on the order itself; returns the `order.failed` to emit when it failed now.
    fn apply(
        &self,
        order: &mut Order,
        change: &Change,
        now: DateTime<FixedOffset>,
    ) -> Option<OrderFailed> {
        let at = at_of(change, now);
        let before = order.status;
        let failure_event = |order: &Order,
                             stage: &str,
                             code: &str,
                             reason: &str,
                             payment_id: Option<String>,
                             refund: Option<rust_decimal::Decimal>,
                             cause: &EventMeta| OrderFailed {
            meta: EventMeta::new::<OrderFailed>(GROUP, Some(cause.event_id.to_string())),
            order_id: order.order_id.clone(),
            investor_id: order.investor_id.clone(),
            order_kind: order.kind.as_str().to_string(),
            scheme_code: order.scheme_code.clone(),
            stage: stage.to_string(),
            reason_code: code.to_string(),
            reason: reason.to_string(),
            payment_id,
            refund_amount: refund,
        };
        let mut emit = None;
        match change {
            Change::Initiated(e) => {
                order.payment_id.get_or_insert_with(|| e.payment_id.clone());
                record(
                    order,
                    Some(OrderStatus::PaymentPending),
                    "PAYMENT_PENDING",
                    at,
                    format!(
                        "payment {} of ₹{} initiated via {}",
                        e.payment_id, e.amount, e.gateway
                    ),
                );
            }
            Change::Paid(e) => {
                order.payment_id.get_or_insert_with(|| e.payment_id.clone());
                record(
                    order,
                    Some(OrderStatus::Paid),
                    "PAID",
                    at,
                    format!(
                        "payment {} of ₹{} realised (gateway ref {})",
                        e.payment_id, e.amount, e.gateway_ref
                    ),
                );
                // Expected NAV date from when the funds were realised; allotment replaces it.
                if order.kind.takes_payment() && order.allotments.is_empty() {
                    let category = order
                        .scheme_category
                        .clone()
                        .or_else(|| e.scheme_category.clone());
                    order.applicable_nav_date = applicable_nav_date(
                        TxnKind::Purchase,
                        class_of(category.as_deref()),
                        to_ist(e.realised_at),
                        &self.config.holidays,
                    )
                    .inspect_err(|err| tracing::warn!(error = %err, "no applicable NAV date"))
                    .ok();
                }
            }
            Change::PaymentFailed(e) => {
                let failure = Failure {
                    stage: "PAYMENT".into(),
                    code: e.reason_code.clone(),
                    reason: e.reason.clone(),
                };
                if fail(order, failure, at, format!("payment failed: {}", e.reason)) {
                    // No money was taken: nothing to refund.
                    emit = Some(failure_event(
                        order,
                        "PAYMENT",
                        &e.reason_code,
                        &e.reason,
                        None,
                        None,
                        &e.meta,
                    ));
                }
            }
            Change::Refunded(e) => {
                record(
                    order,
                    None,
                    "REFUNDED",
                    at,
                    format!(
                        "₹{} refunded (refund {}): {}",
                        e.amount, e.refund_id, e.reason
                    ),
                );
            }
            Change::Allotted(t) => {
                if !order
                    .allotments
                    .iter()
                    .any(|a| a.transaction_id == t.transaction_id)
                {
                    order.allotments.push(Allotment {
                        leg: t.leg.clone(),
                        transaction_id: t.transaction_id.clone(),
                        folio: t.folio.clone(),
                        scheme_code: t.scheme_code.clone(),
                        nav: t.nav,
                        nav_date: t.nav_date,
                        units: t.units,
                        gross_amount: t.gross_amount,
                        stamp_duty: t.stamp_duty,
                        exit_load: t.exit_load,
                        net_amount: t.net_amount,
                        balance_units: t.balance_units,
                        allotted_at: ist_now(t.allotted_at),
                    });
                }
                let detail = format!(
                    "{} {} units of {} at NAV {} of {} (net ₹{}, folio {})",
                    t.leg, t.units, t.scheme_code, t.nav, t.nav_date, t.net_amount, t.folio
                );
                if t.leg == leg::SWITCH_OUT {
                    record(order, None, "SWITCHED_OUT", at, detail);
                } else {
                    record(order, Some(OrderStatus::Allotted), "ALLOTTED", at, detail);
                    order.applicable_nav_date = Some(t.nav_date);
                }
                if matches!(t.leg.as_str(), leg::REDEMPTION | leg::SWITCH_OUT) {
                    order.locked_units = None;
                }
            }
            Change::AllotmentFailed(t) => {
                let failure = Failure {
                    stage: "ALLOTMENT".into(),
                    code: t.reason_code.clone(),
                    reason: t.reason.clone(),
                };
                if fail(
                    order,
                    failure,
                    at,
                    format!("allotment failed: {}", t.reason),
                ) {
                    // Money was taken when allotment says so: payment refunds `refund_amount`.
                    emit = Some(failure_event(
                        order,
                        "ALLOTMENT",
                        &t.reason_code,
                        &t.reason,
                        t.payment_id.clone(),
                        t.refund_amount,
                        &t.meta,
                    ));
                } else if t.refund_amount.is_some() {
                    tracing::warn!(order_id = %order.order_id, status = order.status.as_str(),
                        "transaction.failed with a refund for an order already terminal: no order.failed emitted");
                }
            }
            Change::InPortfolio(p) => {
                // A switch is complete when its SWITCH_IN units are in the holdings.
                let is_switch_out = order.kind == OrderKind::Switch
                    && order.target_scheme_code.as_deref() != Some(p.scheme_code.as_str());
                if !is_switch_out {
                    record(
                        order,
                        Some(OrderStatus::Completed),
                        "COMPLETED",
                        at,
                        format!("holding of {} updated: {} units", p.scheme_code, p.units),
                    );
                }
            }
        }
        if order.status != before {
            metrics::counter!("nivesh_orders_total", "kind" => order.kind.as_str(), "status" => order.status.as_str())
                .increment(1);
        }
        emit
    }
}
