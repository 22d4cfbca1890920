//! The order status machine, as pure functions over [`Order`].
//!
//! `PLACED → PAYMENT_PENDING → PAID → ALLOTTED → COMPLETED`, or `FAILED` at any point before
//! `COMPLETED`. Events for one order arrive on different topics and may be seen out of order, so:
//! - the status only moves forward (a late `PAID` after `ALLOTTED` only adds a timeline entry);
//! - `COMPLETED` and `FAILED` are final (later events only add timeline entries);
//! - `FAILED` is reachable from every non-terminal status.

use chrono::{DateTime, FixedOffset};

use crate::model::{Failure, Order, OrderStatus, TimelineEntry};

fn rank(s: OrderStatus) -> u8 {
    match s {
        OrderStatus::Placed => 0,
        OrderStatus::PaymentPending => 1,
        OrderStatus::Paid => 2,
        OrderStatus::Allotted => 3,
        OrderStatus::Completed => 4,
        // Not on the forward path; handled before ranks are compared.
        OrderStatus::Failed => 5,
    }
}

/// Whether an order in `current` moves to `target`.
pub(crate) fn moves(current: OrderStatus, target: OrderStatus) -> bool {
    match (current, target) {
        (OrderStatus::Completed | OrderStatus::Failed, _) => false,
        (_, OrderStatus::Failed) => true,
        _ => rank(target) > rank(current),
    }
}

/// Records a step: always a timeline entry (`entry` names it), and the status moves to `target`
/// when [`moves`] allows. Returns whether the status moved.
pub(crate) fn record(
    order: &mut Order,
    target: Option<OrderStatus>,
    entry: &str,
    at: DateTime<FixedOffset>,
    detail: impl Into<String>,
) -> bool {
    let moved = target.is_some_and(|t| moves(order.status, t));
    let mut detail = detail.into();
    if target.is_some() && !moved {
        // Say why the status did not follow, so a reader of the timeline is not misled.
        detail = format!(
            "{detail} (late: order already {}, status unchanged)",
            order.status.as_str()
        );
    }
    order.timeline.push(TimelineEntry {
        status: entry.to_string(),
        at,
        detail,
    });
    if moved && let Some(t) = target {
        order.status = t;
    }
    moved
}

/// Moves the order to FAILED with `failure` when it is not terminal yet; releases its lock.
/// Returns whether it failed now (the caller then emits `order.failed`).
pub(crate) fn fail(
    order: &mut Order,
    failure: Failure,
    at: DateTime<FixedOffset>,
    detail: impl Into<String>,
) -> bool {
    let moved = record(order, Some(OrderStatus::Failed), "FAILED", at, detail);
    if moved {
        order.failure = Some(failure);
        order.locked_units = None;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OrderKind;
    use OrderStatus::*;

    fn at() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2025-02-25T10:00:00+05:30").unwrap()
    }

    fn order(status: OrderStatus) -> Order {
        Order {
            order_id: "o".into(),
            investor_id: "INV0001".into(),
            kind: OrderKind::Purchase,
            scheme_code: "119551".into(),
            scheme_name: None,
            scheme_category: None,
            target_scheme_code: None,
            target_scheme_category: None,
            amount: None,
            units: None,
            all_units: false,
            payment_instrument: None,
            sip_id: None,
            instalment_no: None,
            instalment_due_date: None,
            status,
            timeline: vec![],
            failure: None,
            placed_at: at(),
            applicable_nav_date: None,
            locked_units: nivesh_domain::Units::parse("1.000").ok(),
            payment_id: None,
            allotments: vec![],
        }
    }

    /// The forward path moves one step at a time and may skip steps (redemptions have no payment).
    #[test]
    fn forward_moves() {
        let path = [Placed, PaymentPending, Paid, Allotted, Completed];
        for (i, from) in path.iter().enumerate() {
            for (j, to) in path.iter().enumerate() {
                assert_eq!(moves(*from, *to), j > i, "{from:?} -> {to:?}");
            }
        }
        assert!(moves(Placed, Allotted), "redemption skips payment steps");
    }

    /// FAILED is reachable from every non-terminal status; terminal statuses never move.
    #[test]
    fn failed_and_terminal() {
        for s in [Placed, PaymentPending, Paid, Allotted] {
            assert!(moves(s, Failed), "{s:?} -> FAILED");
        }
        for target in [Placed, PaymentPending, Paid, Allotted, Completed, Failed] {
            assert!(!moves(Completed, target), "COMPLETED -> {target:?}");
            assert!(!moves(Failed, target), "FAILED -> {target:?}");
        }
    }

    /// A late PAID after ALLOTTED adds a timeline entry and leaves the status alone.
    #[test]
    fn late_event_only_adds_an_entry() {
        let mut o = order(Allotted);
        assert!(!record(
            &mut o,
            Some(Paid),
            "PAID",
            at(),
            "payment p1 realised"
        ));
        assert_eq!(o.status, Allotted);
        assert_eq!(o.timeline.len(), 1);
        assert_eq!(o.timeline[0].status, "PAID");
        assert!(o.timeline[0].detail.contains("late"), "{:?}", o.timeline[0]);
        assert!(record(
            &mut o,
            Some(Completed),
            "COMPLETED",
            at(),
            "in portfolio"
        ));
        assert_eq!(o.status, Completed);
    }

    /// Failing sets the failure and releases the lock once; a second failure changes nothing.
    #[test]
    fn fail_is_once() {
        let mut o = order(PaymentPending);
        let f = Failure {
            stage: "PAYMENT".into(),
            code: "DECLINED".into(),
            reason: "declined".into(),
        };
        assert!(fail(&mut o, f.clone(), at(), "payment failed"));
        assert_eq!(o.status, Failed);
        assert_eq!(o.failure.as_ref(), Some(&f));
        assert_eq!(o.locked_units, None);
        let other = Failure {
            code: "OTHER".into(),
            ..f.clone()
        };
        assert!(!fail(&mut o, other, at(), "again"));
        assert_eq!(o.failure.as_ref(), Some(&f), "the first failure stays");
        assert_eq!(o.timeline.len(), 2);
    }

    /// A COMPLETED order cannot fail.
    #[test]
    fn completed_cannot_fail() {
        let mut o = order(Completed);
        let f = Failure {
            stage: "ALLOTMENT".into(),
            code: "X".into(),
            reason: "x".into(),
        };
        assert!(!fail(&mut o, f, at(), "late failure"));
        assert_eq!(o.status, Completed);
        assert!(o.failure.is_none());
    }

    /// Informational entries (REFUNDED) never move the status.
    #[test]
    fn informational_entries() {
        let mut o = order(Failed);
        assert!(!record(&mut o, None, "REFUNDED", at(), "refund r1"));
        assert_eq!(o.status, Failed);
        assert_eq!(o.timeline[0].status, "REFUNDED");
        assert_eq!(o.timeline[0].detail, "refund r1");
    }
}
