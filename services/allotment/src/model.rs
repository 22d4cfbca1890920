//! What the service stores, where, and under which ids.
//!
//! | container | partition key | id | document |
//! |---|---|---|---|
//! | `allotment` | investor id | `lots:{scheme}` | [`Holding`]: the investor's FIFO lots in a scheme (ETag-guarded) |
//! | `allotment` | investor id | `txn:{transaction id}` | [`AllotmentRecord`]: completed or failed leg (a `Create`: a second execution conflicts) |
//! | `allotment` | investor id | `pending:{transaction id}` | [`PendingAllotment`]: accepted, waiting for its NAV |
//! | `allotment` | investor id | `inbox:allotment:{event id}` | inbox markers |
//! | `allotment_nav` | scheme code | `nav:{date}` | [`NavEntry`]: the NAV of one date |
//! | `allotment_nav` | scheme code | `info` | [`SchemeInfo`]: name, AMC, category, type |
//! | `allotment_wait` | scheme code | `{nav date}\|{transaction id}` | [`WaitEntry`]: index of pending allotments by (scheme, date) |
//!
//! Everything one allotment changes is in the investor's partition of `allotment`, so it commits
//! in one batch with its outbox event; the wait index is a separate, rebuildable pointer.

use chrono::{DateTime, FixedOffset, NaiveDate};
use nivesh_domain::{Amount, Nav};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ledger::{Figures, RedeemRequest};

/// The ledger: lots, allotment records, pending allotments and inbox markers, by investor.
pub const LEDGER: &str = "allotment";
/// The NAV table, by scheme.
pub const NAVS: &str = "allotment_nav";
/// The wait index, by scheme.
pub const WAITS: &str = "allotment_wait";

/// The scheme-info document id in [`NAVS`].
pub const INFO: &str = "info";

/// Record statuses.
pub mod status {
    pub const COMPLETED: &str = "COMPLETED";
    pub const FAILED: &str = "FAILED";
    pub const PENDING: &str = "PENDING";
}

/// `transaction.failed` reason codes.
pub mod reason {
    /// No NAV for the applicable date within `nav_wait_limit_secs`.
    pub const NAV_NOT_AVAILABLE: &str = "NAV_NOT_AVAILABLE";
    /// Not enough units (or value) held on the redemption's NAV date.
    pub const INSUFFICIENT_UNITS: &str = "INSUFFICIENT_UNITS";
    /// The amount buys no units (zero, or less than 0.001 unit after stamp duty).
    pub const AMOUNT_TOO_SMALL: &str = "AMOUNT_TOO_SMALL";
    /// The order cannot be executed as given (no quantity, switch into the same scheme, ...).
    pub const INVALID_ORDER: &str = "INVALID_ORDER";
}

pub fn lots_id(scheme_code: &str) -> String {
    format!("lots:{scheme_code}")
}

pub fn record_id(transaction_id: &str) -> String {
    format!("txn:{transaction_id}")
}

pub fn pending_id(transaction_id: &str) -> String {
    format!("pending:{transaction_id}")
}

pub fn nav_id(date: NaiveDate) -> String {
    format!("nav:{date}")
}

pub fn wait_id(date: NaiveDate, transaction_id: &str) -> String {
    format!("{date}|{transaction_id}")
}

/// `txn-{order id}`: the transaction (and lot) id of a purchase or redemption.
pub fn transaction_id(order_id: &str) -> String {
    format!("txn-{order_id}")
}

/// `txn-{order id}-out`: the switch-out leg.
pub fn switch_out_id(order_id: &str) -> String {
    format!("txn-{order_id}-out")
}

/// `txn-{order id}-in`: the switch-in leg.
pub fn switch_in_id(order_id: &str) -> String {
    format!("txn-{order_id}-in")
}

/// A published NAV as the allotment service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NavEntry {
    pub scheme_code: String,
    pub nav_date: NaiveDate,
    pub nav: Nav,
    /// `NEW` or `CORRECTION`.
    pub change_kind: String,
    pub event_id: String,
}

/// What the NAV feed says about a scheme (latest broadcast wins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemeInfo {
    pub scheme_code: String,
    pub scheme_name: String,
    pub amc: Option<String>,
    pub category: Option<String>,
    pub scheme_type: Option<String>,
}

/// Where a switch-out's proceeds go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchTarget {
    pub scheme_code: String,
    pub scheme_category: Option<String>,
    /// The switch-in leg's applicable NAV date (a purchase realised at `placed_at`).
    pub nav_date: NaiveDate,
}

/// What a leg does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Buy units for `amount` (a purchase, SIP instalment or switch-in).
    Purchase {
        amount: Amount,
        payment_id: Option<String>,
    },
    /// Sell units; with `switch_to`, the net proceeds buy into the target (SWITCH).
    Redeem {
        request: RedeemRequest,
        switch_to: Option<SwitchTarget>,
    },
}

/// One transaction leg to execute at its applicable NAV: everything needed, so a pending leg
/// is self-contained and can be executed by whoever finds it (NAV handler, sweeper, redelivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instruction {
    pub transaction_id: String,
    pub order_id: String,
    pub investor_id: String,
    /// `PURCHASE`, `SIP_INSTALMENT`, `REDEMPTION` or `SWITCH`.
    pub order_kind: String,
    /// `PURCHASE`, `REDEMPTION`, `SWITCH_OUT` or `SWITCH_IN`.
    pub leg: String,
    pub scheme_code: String,
    pub scheme_category: Option<String>,
    pub nav_date: NaiveDate,
    pub action: Action,
    /// SWITCH: the other leg's transaction id.
    pub linked_transaction_id: Option<String>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
}

impl Instruction {
    /// The refund owed if this leg fails: the amount of a purchase-type leg.
    pub fn refund(&self) -> (Option<String>, Option<Amount>) {
        match &self.action {
            Action::Purchase { amount, payment_id } => (payment_id.clone(), Some(*amount)),
            Action::Redeem { .. } => (None, None),
        }
    }
}

/// An accepted leg waiting for its NAV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAllotment {
    pub instruction: Instruction,
    /// Business-clock time it started waiting; the NAV wait limit counts from here.
    pub waiting_since: DateTime<FixedOffset>,
}

/// The wait index: "a leg of this investor waits for (scheme, date)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitEntry {
    pub investor_id: String,
    pub transaction_id: String,
    pub scheme_code: String,
    pub nav_date: NaiveDate,
}

/// Why a leg failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// `NAV_NOT_AVAILABLE`, `INSUFFICIENT_UNITS`, `AMOUNT_TOO_SMALL`, `INVALID_ORDER`.
    pub reason_code: String,
    pub reason: String,
    pub payment_id: Option<String>,
    #[schema(value_type = Option<String>, example = "5000.00")]
    pub refund_amount: Option<Amount>,
}

/// The allotment record of one leg: the registrar's confirmation (or refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllotmentRecord {
    pub transaction_id: String,
    pub order_id: String,
    pub investor_id: String,
    /// `COMPLETED` or `FAILED`.
    pub status: String,
    pub order_kind: String,
    pub leg: String,
    pub scheme_code: String,
    /// The applicable NAV date the leg was (or would have been) priced at.
    #[schema(value_type = String, format = Date)]
    pub nav_date: NaiveDate,
    /// Set when `COMPLETED`.
    pub figures: Option<Figures>,
    /// Set when `FAILED`.
    pub failure: Option<Failure>,
    pub linked_transaction_id: Option<String>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
    /// Business-clock time of the allotment (or failure), in IST.
    #[schema(value_type = String, format = DateTime, example = "2025-02-25T21:30:00+05:30")]
    pub recorded_at: DateTime<FixedOffset>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_domain::Units;

    /// Ids are the documented deterministic shapes, and the wait ids of one date share a prefix
    /// that sorts before any other date's.
    #[test]
    fn ids_are_deterministic() {
        assert_eq!(transaction_id("o1"), "txn-o1");
        assert_eq!(switch_out_id("o1"), "txn-o1-out");
        assert_eq!(switch_in_id("o1"), "txn-o1-in");
        assert_eq!(record_id("txn-o1"), "txn:txn-o1");
        assert_eq!(pending_id("txn-o1"), "pending:txn-o1");
        assert_eq!(lots_id("119551"), "lots:119551");
        let day = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();
        assert_eq!(nav_id(day), "nav:2025-02-25");
        let w = wait_id(day, "txn-o1");
        assert_eq!(w, "2025-02-25|txn-o1");
        assert!(w.as_str() < "2025-02-25|~");
        assert!(w.as_str() > "2025-02-25|");
        assert!(wait_id(day.succ_opt().unwrap(), "a").as_str() > "2025-02-25|~");
    }

    /// A pending allotment round-trips through JSON with its action and request intact, and the
    /// refund of a purchase leg is its amount and payment.
    #[test]
    fn pending_round_trips() {
        let day = NaiveDate::from_ymd_opt(2025, 2, 25).unwrap();
        let instr = Instruction {
            transaction_id: "txn-o-out".into(),
            order_id: "o".into(),
            investor_id: "INV1".into(),
            order_kind: "SWITCH".into(),
            leg: "SWITCH_OUT".into(),
            scheme_code: "1".into(),
            scheme_category: None,
            nav_date: day,
            action: Action::Redeem {
                request: RedeemRequest::Units(Units::parse("1.5").unwrap()),
                switch_to: Some(SwitchTarget {
                    scheme_code: "2".into(),
                    scheme_category: Some("Liquid".into()),
                    nav_date: day,
                }),
            },
            linked_transaction_id: Some("txn-o-in".into()),
            sip_id: None,
            instalment_no: None,
        };
        let p = PendingAllotment {
            instruction: instr.clone(),
            waiting_since: nivesh_domain::time::now_ist(),
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["instruction"]["action"]["action"], "REDEEM");
        assert_eq!(v["instruction"]["action"]["request"]["by"], "UNITS");
        assert_eq!(v["instruction"]["action"]["request"]["value"], "1.500");
        let back: PendingAllotment = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
        assert_eq!(instr.refund(), (None, None));
        let buy = Instruction {
            action: Action::Purchase {
                amount: Amount::parse("5000").unwrap(),
                payment_id: Some("o".into()),
            },
            ..instr
        };
        assert_eq!(
            buy.refund(),
            (Some("o".into()), Some(Amount::parse("5000").unwrap()))
        );
    }
}
