//! Which message an event becomes, and the exact figures it carries: pure functions from an
//! event (plus what the service remembers about its order) to a template id and its values.

use chrono::NaiveDate;
use nivesh_events::{
    OrderFailed, OrderPlaced, PaymentFailed, PaymentRefunded, TransactionCompleted, leg, order_kind,
};
use nivesh_txn_rules::{HolidaySet, next_business_day};
use serde::{Deserialize, Serialize};

use crate::format;
use crate::template::Vars;

/// An event the group consumes, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Placed(OrderPlaced),
    PaymentFailed(PaymentFailed),
    Refunded(PaymentRefunded),
    Completed(TransactionCompleted),
    OrderFailed(OrderFailed),
}

impl Inbound {
    pub fn meta(&self) -> &nivesh_events::EventMeta {
        match self {
            Inbound::Placed(e) => &e.meta,
            Inbound::PaymentFailed(e) => &e.meta,
            Inbound::Refunded(e) => &e.meta,
            Inbound::Completed(e) => &e.meta,
            Inbound::OrderFailed(e) => &e.meta,
        }
    }

    pub fn investor_id(&self) -> &str {
        match self {
            Inbound::Placed(e) => &e.investor_id,
            Inbound::PaymentFailed(e) => &e.investor_id,
            Inbound::Refunded(e) => &e.investor_id,
            Inbound::Completed(e) => &e.investor_id,
            Inbound::OrderFailed(e) => &e.investor_id,
        }
    }

    pub fn order_id(&self) -> &str {
        match self {
            Inbound::Placed(e) => &e.order_id,
            Inbound::PaymentFailed(e) => &e.order_id,
            Inbound::Refunded(e) => &e.order_id,
            Inbound::Completed(e) => &e.order_id,
            Inbound::OrderFailed(e) => &e.order_id,
        }
    }

    /// What to remember about the order for later messages (only `order.placed` knows the
    /// scheme's name and a switch's target).
    pub fn order_context(&self) -> Option<OrderContext> {
        match self {
            Inbound::Placed(e) => Some(OrderContext {
                kind: e.kind.clone(),
                scheme_code: e.scheme_code.clone(),
                scheme_name: e.scheme_name.clone().filter(|n| !n.trim().is_empty()),
                target_scheme_code: e.target_scheme_code.clone(),
            }),
            _ => None,
        }
    }
}

/// What `order.placed` said about an order that later events do not repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderContext {
    pub kind: String,
    pub scheme_code: String,
    pub scheme_name: Option<String>,
    pub target_scheme_code: Option<String>,
}

/// Settings that shape message content.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Redemption proceeds reach the bank within this many business days after the NAV date.
    pub redemption_credit_days: u32,
    /// Non-weekend days banks and AMCs are closed.
    pub holidays: HolidaySet,
}

/// A message to send: the template and its values (the investor's name is added by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub template: &'static str,
    pub vars: Vars,
}

/// The message `event` becomes, or `None` when it tells the investor nothing new:
/// - `order.failed` at the `PAYMENT` stage without a refund (the `payment.failed` message
///   already said it);
/// - a `transaction.completed` leg this version does not know (a later, compatible addition).
pub fn compose(event: &Inbound, ctx: Option<&OrderContext>, rules: &Rules) -> Option<Composed> {
    let mut v = Vars::new();
    v.insert("order_id", event.order_id().to_string());
    v.insert("order_ref", order_ref(event.order_id()));
    let template = match event {
        Inbound::Placed(e) => {
            v.insert("kind", kind_label(&e.kind));
            v.insert(
                "scheme",
                label(
                    &e.scheme_code,
                    e.scheme_name.as_deref().filter(|n| !n.is_empty()),
                ),
            );
            opt(&mut v, "amount", e.amount.map(format::inr));
            opt(&mut v, "units", e.units.map(format::units));
            if e.all_units {
                v.insert("all_units", "yes".into());
            }
            opt(
                &mut v,
                "target_scheme",
                e.target_scheme_code.as_deref().map(|c| label(c, None)),
            );
            opt(&mut v, "instalment", e.instalment_no.map(|n| n.to_string()));
            v.insert("placed_at", format::ist_time(e.placed_at));
            "order_received"
        }
        Inbound::PaymentFailed(e) => {
            v.insert("scheme", scheme_of(ctx, None));
            v.insert("amount", format::inr(e.amount));
            v.insert("reason", reason(&e.reason, &e.reason_code));
            "payment_failed"
        }
        Inbound::Refunded(e) => {
            v.insert("scheme", scheme_of(ctx, None));
            v.insert("amount", format::inr(e.amount));
            v.insert("reason", reason(&e.reason, ""));
            v.insert("refund_id", e.refund_id.clone());
            v.insert("refunded_at", format::ist_time(e.refunded_at));
            "refund_issued"
        }
        Inbound::OrderFailed(e) => {
            if e.stage == "PAYMENT" && e.refund_amount.is_none() {
                return None;
            }
            v.insert("kind", kind_label(&e.order_kind));
            v.insert("scheme", scheme_of(ctx, Some(&e.scheme_code)));
            v.insert("reason", reason(&e.reason, &e.reason_code));
            opt(
                &mut v,
                "refund",
                e.refund_amount.filter(|a| !a.is_zero()).map(format::inr),
            );
            "order_failed"
        }
        Inbound::Completed(e) => {
            let template = match e.leg.as_str() {
                leg::PURCHASE => "units_allotted",
                leg::REDEMPTION => "redemption_paid",
                leg::SWITCH_OUT => "switch_out",
                leg::SWITCH_IN => "switch_in",
                _ => return None,
            };
            v.insert("scheme", scheme_of(ctx, Some(&e.scheme_code)));
            v.insert("folio", e.folio.clone());
            v.insert("transaction_id", e.transaction_id.clone());
            v.insert("nav", format::nav(e.nav));
            v.insert("nav_date", format::date(e.nav_date));
            v.insert("amount", format::inr(e.gross_amount));
            v.insert("stamp_duty", format::inr(e.stamp_duty));
            v.insert("exit_load", format::inr(e.exit_load));
            v.insert("net_amount", format::inr(e.net_amount));
            v.insert("units", format::units(e.units));
            v.insert("balance_units", format::units(e.balance_units));
            v.insert("allotted_at", format::ist_time(e.allotted_at));
            opt(&mut v, "instalment", e.instalment_no.map(|n| n.to_string()));
            if e.leg == leg::SWITCH_OUT {
                opt(
                    &mut v,
                    "target_scheme",
                    ctx.and_then(|c| c.target_scheme_code.as_deref())
                        .map(|c| label(c, None)),
                );
            }
            if e.leg == leg::REDEMPTION {
                v.insert(
                    "expected_credit",
                    expected_credit(e.nav_date, rules)
                        .map(format::date)
                        .unwrap_or_else(|| {
                            format!("{} business days", rules.redemption_credit_days)
                        }),
                );
            }
            template
        }
    };
    Some(Composed { template, vars: v })
}

/// When redemption proceeds reach the bank: `redemption_credit_days` business days after the
/// NAV date (the SEBI limit for equity schemes is three).
pub fn expected_credit(nav_date: NaiveDate, rules: &Rules) -> Option<NaiveDate> {
    let mut day = nav_date;
    for _ in 0..rules.redemption_credit_days {
        day = next_business_day(day, &rules.holidays).ok()?;
    }
    Some(day)
}

/// `purchase`, `SIP instalment`, ...; an unknown kind reads as itself in lower case.
pub fn kind_label(kind: &str) -> String {
    match kind {
        order_kind::PURCHASE => "purchase".into(),
        order_kind::REDEMPTION => "redemption".into(),
        order_kind::SWITCH => "switch".into(),
        order_kind::SIP_INSTALMENT => "SIP instalment".into(),
        other => other.to_ascii_lowercase().replace('_', " "),
    }
}

/// `Axis Liquid Fund - Direct Growth (120389)`, or `scheme 120389` when the name is unknown.
fn label(code: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n} ({code})"),
        None => format!("scheme {code}"),
    }
}

/// The scheme an event is about: `code` (the event's own), named when the order's context
/// knows that scheme; without a code, the order's scheme.
fn scheme_of(ctx: Option<&OrderContext>, code: Option<&str>) -> String {
    match (ctx, code) {
        (Some(c), Some(code)) if c.scheme_code == code => label(code, c.scheme_name.as_deref()),
        (_, Some(code)) => label(code, None),
        (Some(c), None) => label(&c.scheme_code, c.scheme_name.as_deref()),
        (None, None) => "your scheme".into(),
    }
}

fn reason(text: &str, code: &str) -> String {
    match (text.trim(), code.trim()) {
        ("", "") => "not given".into(),
        ("", code) => code.to_string(),
        (text, _) => text.to_string(),
    }
}

fn order_ref(order_id: &str) -> String {
    order_id.chars().take(8).collect()
}

fn opt(v: &mut Vars, key: &'static str, value: Option<String>) {
    if let Some(value) = value {
        v.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::render;
    use chrono::{TimeZone, Utc};
    use nivesh_events::{EventMeta, LotMovement};
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn rules() -> Rules {
        Rules {
            redemption_credit_days: 3,
            holidays: HolidaySet::new(),
        }
    }

    fn with_name(mut c: Composed) -> Composed {
        c.vars.insert("name", "Aarav Sharma".into());
        c
    }

    fn txn(leg_name: &str, instalment: Option<i32>) -> TransactionCompleted {
        TransactionCompleted {
            meta: EventMeta::new::<TransactionCompleted>("allotment", None),
            transaction_id: "txn-0195a1b2-0000-7000-8000-000000000001".into(),
            order_id: "0195a1b2-0000-7000-8000-000000000001".into(),
            investor_id: "INV0001".into(),
            folio: "F-INV0001-119551".into(),
            leg: leg_name.into(),
            order_kind: if instalment.is_some() {
                order_kind::SIP_INSTALMENT.into()
            } else {
                order_kind::PURCHASE.into()
            },
            scheme_code: "119551".into(),
            nav: d("101.2345"),
            nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
            gross_amount: d("5000.00"),
            stamp_duty: d("0.25"),
            exit_load: d("0.00"),
            net_amount: d("4999.75"),
            units: d("49.387"),
            balance_units: d("1249.387"),
            lots: vec![LotMovement {
                lot_id: "lot-1".into(),
                units: d("49.387"),
                lot_nav_date: NaiveDate::from_ymd_opt(2025, 2, 25).unwrap(),
                lot_nav: d("101.2345"),
                cost: d("4999.75"),
                exit_load: d("0"),
                days_held: 0,
            }],
            // 15:10 IST.
            allotted_at: Utc.with_ymd_and_hms(2025, 2, 25, 9, 40, 0).unwrap(),
            sip_id: instalment.map(|_| "sip-1".into()),
            instalment_no: instalment,
            linked_order_leg: None,
        }
    }

    fn ctx() -> OrderContext {
        OrderContext {
            kind: order_kind::PURCHASE.into(),
            scheme_code: "119551".into(),
            scheme_name: Some("Aditya Birla Sun Life Banking & PSU Debt Fund".into()),
            target_scheme_code: None,
        }
    }

    /// The allotment message carries the exact figures of the event, formatted for people.
    #[test]
    fn units_allotted_exact_figures() {
        let c = with_name(
            compose(
                &Inbound::Completed(txn(leg::PURCHASE, None)),
                Some(&ctx()),
                &rules(),
            )
            .unwrap(),
        );
        assert_eq!(c.template, "units_allotted");
        let r = render(c.template, &c.vars).unwrap();
        assert_eq!(
            r.subject,
            "Units allotted: 49.387 units of Aditya Birla Sun Life Banking & PSU Debt Fund (119551)"
        );
        for line in [
            "Dear Aarav Sharma,",
            "Units have been allotted to your folio F-INV0001-119551.",
            "NAV: ₹101.2345 (NAV date 25 Feb 2025)",
            "Amount: ₹5,000.00",
            "Stamp duty: ₹0.25",
            "Amount invested: ₹4,999.75",
            "Units allotted: 49.387",
            "Balance units: 1,249.387",
            "Allotted at: 25 Feb 2025, 03:10 PM IST",
        ] {
            assert!(r.email.contains(line), "missing {line:?} in\n{}", r.email);
        }
        assert!(
            !r.email.contains("SIP"),
            "no SIP text for a lump sum:\n{}",
            r.email
        );
        assert_eq!(
            r.short,
            "Nivesh: 49.387 units of Aditya Birla Sun Life Banking & PSU Debt Fund (119551) \
             allotted at NAV ₹101.2345 (25 Feb 2025) for ₹5,000.00. Balance 1,249.387 units."
        );
    }

    /// A SIP instalment's allotment names the instalment number.
    #[test]
    fn sip_instalment_number_shown() {
        let c = with_name(
            compose(
                &Inbound::Completed(txn(leg::PURCHASE, Some(7))),
                None,
                &rules(),
            )
            .unwrap(),
        );
        let r = render(c.template, &c.vars).unwrap();
        assert!(
            r.email
                .contains("Your SIP instalment #7 has been processed."),
            "{}",
            r.email
        );
        assert!(r.email.contains("SIP instalment: #7\n"), "{}", r.email);
        assert!(r.email.lines().all(|l| l.len() <= 72), "{}", r.email);
        assert!(r.short.contains(", SIP instalment #7."), "{}", r.short);
        // Without the order context the scheme is named by its code.
        assert!(r.subject.ends_with("of scheme 119551"), "{}", r.subject);
    }

    /// A redemption shows units, NAV, gross, exit load, net and the expected credit date
    /// (three business days after the NAV date, skipping the weekend and holidays).
    #[test]
    fn redemption_paid_exact_figures() {
        let mut e = txn(leg::REDEMPTION, None);
        e.order_kind = order_kind::REDEMPTION.into();
        e.units = d("100.000");
        e.gross_amount = d("10123.45");
        e.exit_load = d("101.23");
        e.net_amount = d("10022.22");
        e.stamp_duty = d("0");
        e.balance_units = d("0.000");
        // NAV date Thursday 2025-02-27: Fri 28, (weekend), Mon 3 Mar, Tue 4 Mar.
        e.nav_date = NaiveDate::from_ymd_opt(2025, 2, 27).unwrap();
        let c = with_name(compose(&Inbound::Completed(e.clone()), Some(&ctx()), &rules()).unwrap());
        assert_eq!(c.template, "redemption_paid");
        let r = render(c.template, &c.vars).unwrap();
        for line in [
            "Units redeemed: 100.000",
            "NAV: ₹101.2345 (NAV date 27 Feb 2025)",
            "Gross amount: ₹10,123.45",
            "Exit load: ₹101.23",
            "Net amount: ₹10,022.22",
            "Expected credit to your bank account by: 04 Mar 2025",
            "Balance units: 0.000",
        ] {
            assert!(r.email.contains(line), "missing {line:?} in\n{}", r.email);
        }
        assert_eq!(
            r.subject,
            "Redemption processed: ₹10,022.22 from Aditya Birla Sun Life Banking & PSU Debt Fund (119551)"
        );
        // A holiday on Monday 3 March moves the credit to Wednesday.
        let mut holidays = HolidaySet::new();
        holidays.insert(NaiveDate::from_ymd_opt(2025, 3, 3).unwrap());
        let r2 = Rules {
            redemption_credit_days: 3,
            holidays,
        };
        assert_eq!(
            expected_credit(e.nav_date, &r2),
            NaiveDate::from_ymd_opt(2025, 3, 5)
        );
    }

    /// Both legs of a switch get their own message; the out leg names the target scheme.
    #[test]
    fn switch_legs() {
        let mut out = txn(leg::SWITCH_OUT, None);
        out.exit_load = d("12.50");
        out.net_amount = d("4987.50");
        let switch_ctx = OrderContext {
            kind: order_kind::SWITCH.into(),
            target_scheme_code: Some("120389".into()),
            ..ctx()
        };
        let c = with_name(compose(&Inbound::Completed(out), Some(&switch_ctx), &rules()).unwrap());
        assert_eq!(c.template, "switch_out");
        let r = render(c.template, &c.vars).unwrap();
        assert!(
            r.email.contains("Switching into: scheme 120389\n"),
            "{}",
            r.email
        );
        assert!(
            r.email
                .contains("Exit load: ₹12.50\nAmount switched: ₹4,987.50"),
            "{}",
            r.email
        );

        let mut inn = txn(leg::SWITCH_IN, None);
        inn.scheme_code = "120389".into();
        let c = with_name(compose(&Inbound::Completed(inn), Some(&switch_ctx), &rules()).unwrap());
        assert_eq!(c.template, "switch_in");
        let r = render(c.template, &c.vars).unwrap();
        assert_eq!(r.subject, "Switch: 49.387 units allotted in scheme 120389");
        assert!(
            r.email
                .contains("Amount switched in: ₹5,000.00\nStamp duty: ₹0.25"),
            "{}",
            r.email
        );
    }

    fn placed() -> OrderPlaced {
        OrderPlaced {
            meta: EventMeta::new::<OrderPlaced>("order", None),
            order_id: "0195a1b2-0000-7000-8000-000000000009".into(),
            investor_id: "INV0001".into(),
            kind: order_kind::PURCHASE.into(),
            scheme_code: "119551".into(),
            scheme_name: Some("ABSL Banking & PSU Debt Fund".into()),
            scheme_category: None,
            target_scheme_code: None,
            target_scheme_category: None,
            amount: Some(d("250000.00")),
            units: None,
            all_units: false,
            placed_at: Utc.with_ymd_and_hms(2025, 2, 25, 8, 0, 0).unwrap(),
            sip_id: None,
            instalment_no: None,
            payment_instrument: None,
        }
    }

    /// Order received: kind, scheme, amount for a purchase, units for a redemption.
    #[test]
    fn order_received() {
        let c = with_name(compose(&Inbound::Placed(placed()), None, &rules()).unwrap());
        let r = render(c.template, &c.vars).unwrap();
        assert_eq!(
            r.subject,
            "Order received: purchase in ABSL Banking & PSU Debt Fund (119551)"
        );
        assert!(r.email.contains("Amount: ₹2,50,000.00\n"), "{}", r.email);
        assert!(
            r.email.contains("Placed at: 25 Feb 2025, 01:30 PM IST"),
            "{}",
            r.email
        );
        assert!(!r.email.contains("Units:"), "{}", r.email);
        assert_eq!(
            r.short,
            "Nivesh: purchase order received for ABSL Banking & PSU Debt Fund (119551), ₹2,50,000.00. Ref 0195a1b2."
        );

        let mut red = placed();
        red.kind = order_kind::REDEMPTION.into();
        red.amount = None;
        red.units = Some(d("12.5"));
        let c = with_name(compose(&Inbound::Placed(red), None, &rules()).unwrap());
        let r = render(c.template, &c.vars).unwrap();
        assert!(r.email.contains("your redemption order"), "{}", r.email);
        assert!(r.email.contains("Units: 12.500\n"), "{}", r.email);
        assert!(!r.email.contains("Amount:"), "{}", r.email);
    }

    /// Payment failure and refund carry amount and reason; a failed order mentions its refund.
    #[test]
    fn failures_and_refunds() {
        let pf = PaymentFailed {
            meta: EventMeta::new::<PaymentFailed>("payment", None),
            payment_id: Some("0195".into()),
            order_id: "0195a1b2-0000-7000-8000-000000000009".into(),
            investor_id: "INV0001".into(),
            amount: d("5000.00"),
            reason_code: "INSUFFICIENT_FUNDS".into(),
            reason: "Insufficient funds in the bank account".into(),
        };
        let c = with_name(compose(&Inbound::PaymentFailed(pf), Some(&ctx()), &rules()).unwrap());
        let r = render(c.template, &c.vars).unwrap();
        assert!(
            r.email
                .contains("Amount: ₹5,000.00\nReason: Insufficient funds in the bank account\n"),
            "{}",
            r.email
        );

        let of = OrderFailed {
            meta: EventMeta::new::<OrderFailed>("order", None),
            order_id: "0195a1b2-0000-7000-8000-000000000009".into(),
            investor_id: "INV0001".into(),
            order_kind: order_kind::PURCHASE.into(),
            scheme_code: "119551".into(),
            stage: "ALLOTMENT".into(),
            reason_code: "NAV_UNAVAILABLE".into(),
            reason: "No NAV within 5 business days".into(),
            payment_id: Some("0195".into()),
            refund_amount: Some(d("5000.00")),
        };
        let c =
            with_name(compose(&Inbound::OrderFailed(of.clone()), Some(&ctx()), &rules()).unwrap());
        let r = render(c.template, &c.vars).unwrap();
        assert!(
            r.email.contains("A refund of ₹5,000.00 will be credited"),
            "{}",
            r.email
        );
        assert!(
            r.short
                .contains("failed: No NAV within 5 business days. ₹5,000.00 will be refunded."),
            "{}",
            r.short
        );

        // A payment-stage failure without a refund was already told by payment.failed.
        let mut pay_stage = of;
        pay_stage.stage = "PAYMENT".into();
        pay_stage.refund_amount = None;
        assert_eq!(
            compose(&Inbound::OrderFailed(pay_stage), None, &rules()),
            None
        );

        let rf = PaymentRefunded {
            meta: EventMeta::new::<PaymentRefunded>("payment", None),
            payment_id: "0195".into(),
            refund_id: "rfd-0195a1b2".into(),
            order_id: "0195a1b2-0000-7000-8000-000000000009".into(),
            investor_id: "INV0001".into(),
            amount: d("123456.70"),
            reason: "Order failed: no NAV".into(),
            refunded_at: Utc.with_ymd_and_hms(2025, 2, 26, 4, 30, 0).unwrap(),
        };
        let c = with_name(compose(&Inbound::Refunded(rf), None, &rules()).unwrap());
        let r = render(c.template, &c.vars).unwrap();
        assert_eq!(r.subject, "Refund of ₹1,23,456.70 issued");
        assert!(
            r.email.contains("Refunded at: 26 Feb 2025, 10:00 AM IST"),
            "{}",
            r.email
        );
        assert!(r.email.contains("Refund id: rfd-0195a1b2"), "{}", r.email);
    }

    /// Every template renders with what the composer provides for each event (no missing
    /// placeholder anywhere), and the short text stays a short text.
    #[test]
    fn every_template_renders() {
        let mut seen = std::collections::BTreeSet::new();
        let events = [
            Inbound::Placed(placed()),
            Inbound::Completed(txn(leg::PURCHASE, Some(1))),
            Inbound::Completed(txn(leg::REDEMPTION, None)),
            Inbound::Completed(txn(leg::SWITCH_OUT, None)),
            Inbound::Completed(txn(leg::SWITCH_IN, None)),
        ];
        for e in &events {
            for context in [None, Some(ctx())] {
                let c = with_name(compose(e, context.as_ref(), &rules()).unwrap());
                let r = render(c.template, &c.vars).unwrap();
                assert!(r.short.chars().count() <= 320, "{}", r.short);
                assert!(r.email.lines().all(|l| l.len() <= 72), "{}", r.email);
                seen.insert(c.template);
            }
        }
        assert_eq!(seen.len(), 5);
        // An unknown leg (a compatible later addition) sends nothing rather than failing.
        assert_eq!(
            compose(&Inbound::Completed(txn("BONUS", None)), None, &rules()),
            None
        );
    }
}
