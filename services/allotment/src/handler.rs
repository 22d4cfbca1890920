//! The `allotment` consumer group: one handler for `nav.broadcast`, `payment.success` and
//! `order.placed`, dispatching on the (original) topic.
//!
//! Intake turns an event into an [`Instruction`] (the leg, its applicable NAV date, what to
//! do) and hands it to the [`Engine`]. An event that can never be processed (undecodable, a
//! contract violation such as a `payment.success` for a redemption) is
//! [`HandlerError::Permanent`] and goes to `allotment.dlq`; an order that is well-formed but
//! cannot be executed as given (no quantity, switch into the same scheme) fails with
//! `transaction.failed` `INVALID_ORDER`, so the order reaches a final state.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::time::ist;
use nivesh_domain::{Amount, InvestorId, Nav, Units};
use nivesh_events::{NavPublished, OrderPlaced, PaymentSucceeded, leg, order_kind};
use nivesh_txn_rules::{SchemeClass, TxnKind, applicable_nav_date, classify};

use crate::engine::Engine;
use crate::ledger::RedeemRequest;
use crate::model::{
    Action, Failure, Instruction, SwitchTarget, reason, switch_in_id, switch_out_id, transaction_id,
};

pub(crate) const NAV_TOPIC: &str = "nav.broadcast";
pub(crate) const PAYMENT_TOPIC: &str = "payment.success";
pub(crate) const ORDER_TOPIC: &str = "order.placed";

pub(crate) struct Handler {
    pub(crate) engine: Arc<Engine>,
}

fn permanent(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Permanent(e.to_string())
}

#[async_trait]
impl MessageHandler for Handler {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        match msg.topic.as_str() {
            NAV_TOPIC => self.on_nav(msg).await,
            PAYMENT_TOPIC => self.on_payment(msg).await,
            ORDER_TOPIC => self.on_order(msg).await,
            other => Err(permanent(format!(
                "the allotment group does not consume {other}"
            ))),
        }
    }
}

/// The request of a redemption or switch: all units, or exactly one of units / amount.
pub(crate) fn redeem_request(
    units: Option<rust_decimal::Decimal>,
    amount: Option<rust_decimal::Decimal>,
    all_units: bool,
) -> Result<RedeemRequest, String> {
    if all_units {
        return Ok(RedeemRequest::All);
    }
    match (units, amount) {
        (Some(u), None) => {
            let u = Units::new(u).map_err(|e| e.to_string())?;
            if u.is_zero() {
                return Err("units to redeem must be greater than zero".into());
            }
            Ok(RedeemRequest::Units(u))
        }
        (None, Some(a)) => {
            let a = Amount::new(a).map_err(|e| e.to_string())?;
            if a.is_zero() {
                return Err("amount to redeem must be greater than zero".into());
            }
            Ok(RedeemRequest::Amount(a))
        }
        (Some(_), Some(_)) => Err("give either units or amount to redeem, not both".into()),
        (None, None) => Err("nothing to redeem: no units, amount or all_units".into()),
    }
}

impl Handler {
    fn nav_date(
        &self,
        kind: TxnKind,
        class: SchemeClass,
        at: DateTime<Utc>,
    ) -> Result<NaiveDate, HandlerError> {
        applicable_nav_date(
            kind,
            class,
            at.with_timezone(&ist()),
            &self.engine.rules.holidays,
        )
        .map_err(|e| permanent(format!("no applicable NAV date: {e}")))
    }

    /// The event's category, else the one the NAV feed gave for the scheme.
    async fn category(
        &self,
        given: Option<&str>,
        scheme: &str,
    ) -> Result<Option<String>, HandlerError> {
        match given.filter(|c| !c.trim().is_empty()) {
            Some(c) => Ok(Some(c.to_string())),
            None => Ok(self.engine.info(scheme).await?.and_then(|i| i.category)),
        }
    }

    async fn on_nav(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let ev: NavPublished = self
            .engine
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| permanent(format!("not a NavPublished event: {e}")))?;
        if ev.scheme_code.trim().is_empty() {
            return Err(permanent("NavPublished without a scheme code"));
        }
        let nav = Nav::new(ev.nav).map_err(|e| permanent(format!("bad NAV: {e}")))?;
        let released = self.engine.store_nav(&ev, nav).await?;
        if released > 0 {
            tracing::info!(scheme = %ev.scheme_code, nav_date = %ev.nav_date, released, "NAV released waiting allotments");
        }
        Ok(())
    }

    async fn on_payment(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let ev: PaymentSucceeded = self
            .engine
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| permanent(format!("not a PaymentSucceeded event: {e}")))?;
        if ev.order_kind != order_kind::PURCHASE && ev.order_kind != order_kind::SIP_INSTALMENT {
            return Err(permanent(format!(
                "payment.success for a {} order: only purchases and SIP instalments are paid",
                ev.order_kind
            )));
        }
        InvestorId::parse(&ev.investor_id).map_err(permanent)?;
        if ev.order_id.trim().is_empty() || ev.scheme_code.trim().is_empty() {
            return Err(permanent(
                "payment.success without an order id or scheme code",
            ));
        }
        let amount = Amount::new(ev.amount).map_err(|e| permanent(format!("bad amount: {e}")))?;
        let category = self
            .category(ev.scheme_category.as_deref(), &ev.scheme_code)
            .await?;
        let class = classify(category.as_deref().unwrap_or_default());
        let nav_date = self.nav_date(TxnKind::Purchase, class, ev.realised_at)?;
        let instr = Instruction {
            transaction_id: transaction_id(&ev.order_id),
            order_id: ev.order_id.clone(),
            investor_id: ev.investor_id.clone(),
            order_kind: ev.order_kind.clone(),
            leg: leg::PURCHASE.into(),
            scheme_code: ev.scheme_code.clone(),
            scheme_category: category,
            nav_date,
            action: Action::Purchase {
                amount,
                payment_id: Some(ev.payment_id.clone()),
            },
            linked_transaction_id: None,
            sip_id: ev.sip_id.clone(),
            instalment_no: ev.instalment_no,
        };
        self.engine
            .submit(instr, &ev.meta.event_id.to_string())
            .await
    }

    async fn on_order(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let ev: OrderPlaced = self
            .engine
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| permanent(format!("not an OrderPlaced event: {e}")))?;
        let switching = match ev.kind.as_str() {
            // Paid orders arrive as payment.success.
            order_kind::PURCHASE | order_kind::SIP_INSTALMENT => return Ok(()),
            order_kind::REDEMPTION => false,
            order_kind::SWITCH => true,
            other => return Err(permanent(format!("unknown order kind {other}"))),
        };
        InvestorId::parse(&ev.investor_id).map_err(permanent)?;
        if ev.order_id.trim().is_empty() || ev.scheme_code.trim().is_empty() {
            return Err(permanent("order.placed without an order id or scheme code"));
        }
        let event_id = ev.meta.event_id.to_string();
        let category = self
            .category(ev.scheme_category.as_deref(), &ev.scheme_code)
            .await?;
        let nav_date = self.nav_date(
            TxnKind::Redemption,
            classify(category.as_deref().unwrap_or_default()),
            ev.placed_at,
        )?;
        let (txn, leg, linked) = if switching {
            (
                switch_out_id(&ev.order_id),
                leg::SWITCH_OUT,
                Some(switch_in_id(&ev.order_id)),
            )
        } else {
            (transaction_id(&ev.order_id), leg::REDEMPTION, None)
        };
        let mut instr = Instruction {
            transaction_id: txn,
            order_id: ev.order_id.clone(),
            investor_id: ev.investor_id.clone(),
            order_kind: ev.kind.clone(),
            leg: leg.into(),
            scheme_code: ev.scheme_code.clone(),
            scheme_category: category,
            nav_date,
            action: Action::Redeem {
                request: RedeemRequest::All,
                switch_to: None,
            },
            linked_transaction_id: linked,
            sip_id: ev.sip_id.clone(),
            instalment_no: ev.instalment_no,
        };
        let invalid = |why: String| Failure {
            reason_code: reason::INVALID_ORDER.into(),
            reason: why,
            payment_id: None,
            refund_amount: None,
        };
        let request = match redeem_request(ev.units, ev.amount, ev.all_units) {
            Ok(r) => r,
            Err(why) => return self.engine.reject(&instr, &event_id, invalid(why)).await,
        };
        let switch_to = if switching {
            let target = ev
                .target_scheme_code
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty());
            let Some(target) = target else {
                let why = "a switch needs a target scheme".to_string();
                return self.engine.reject(&instr, &event_id, invalid(why)).await;
            };
            if target == ev.scheme_code.trim() {
                let why = format!("cannot switch scheme {target} into itself");
                return self.engine.reject(&instr, &event_id, invalid(why)).await;
            }
            let target_category = self
                .category(ev.target_scheme_category.as_deref(), target)
                .await?;
            // The switch-in is a purchase whose funds are realised when the switch was placed.
            let in_date = self.nav_date(
                TxnKind::Purchase,
                classify(target_category.as_deref().unwrap_or_default()),
                ev.placed_at,
            )?;
            Some(SwitchTarget {
                scheme_code: target.to_string(),
                scheme_category: target_category,
                nav_date: in_date,
            })
        } else {
            None
        };
        instr.action = Action::Redeem { request, switch_to };
        self.engine.submit(instr, &event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// all_units wins; otherwise exactly one positive quantity at its precision.
    #[test]
    fn redeem_request_rules() {
        assert_eq!(redeem_request(None, None, true), Ok(RedeemRequest::All));
        assert_eq!(
            redeem_request(Some(dec("1.5")), None, true),
            Ok(RedeemRequest::All)
        );
        assert_eq!(
            redeem_request(Some(dec("1.5")), None, false),
            Ok(RedeemRequest::Units(Units::parse("1.500").unwrap()))
        );
        assert_eq!(
            redeem_request(None, Some(dec("100")), false),
            Ok(RedeemRequest::Amount(Amount::parse("100.00").unwrap()))
        );
        for (u, a) in [
            (None, None),
            (Some(dec("1")), Some(dec("1"))),
            (Some(dec("0")), None),
            (None, Some(dec("0"))),
            (Some(dec("1.0001")), None),
            (None, Some(dec("1.001"))),
            (Some(dec("-1")), None),
        ] {
            assert!(redeem_request(u, a, false).is_err(), "{u:?} {a:?}");
        }
    }
}
