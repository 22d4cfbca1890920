//! What the portfolio service stores, where, and under which keys.
//!
//! Two containers in the service's own store:
//!
//! | container | partition key | document ids |
//! | --- | --- | --- |
//! | [`PORTFOLIO`] | investor id | `version`, `h:{scheme}:{folio}` ([`Holding`]), `t:{version:012}` ([`TxnRecord`]), `x:{transaction id}` (applied-transaction key), `investor` (tenant and distributor from the identity events: [`crate::access::InvestorOwner`]), `inbox:portfolio:{event id}` |
//! | [`SCHEME_NAV`] | scheme code | `latest` ([`SchemeNav`]), `inbox:portfolio:{event id}` |
//!
//! Everything one transaction changes lives in the investor's partition, so it commits in one
//! transactional batch together with its inbox marker and its `portfolio.updated` outbox record.
//! NAVs live in the scheme's partition and are never copied into holdings: a valuation joins
//! the holding with the latest NAV at read time.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Holdings, transactions and the version counter, partitioned by investor id.
pub const PORTFOLIO: &str = "portfolio";
/// Latest NAV per scheme, partitioned by scheme code.
pub const SCHEME_NAV: &str = "scheme_nav";
/// The investor's version counter document.
pub const VERSION_ID: &str = "version";
/// The scheme's latest NAV document.
pub const LATEST_NAV_ID: &str = "latest";

/// Width of the zero-padded version in transaction record ids, so ids sort numerically.
const VERSION_WIDTH: usize = 12;

/// `h:{scheme}:{folio}`: ids sort by scheme, then folio.
pub fn holding_id(scheme_code: &str, folio: &str) -> String {
    format!("h:{scheme_code}:{folio}")
}

/// First and last possible holding ids (`h;` is the string right after every `h:...`).
pub const HOLDING_RANGE: (&str, &str) = ("h:", "h;");

/// `t:{version:012}`: the transaction applied at that portfolio version.
pub fn txn_record_id(version: i64) -> String {
    format!("t:{version:0VERSION_WIDTH$}")
}

/// Upper bound of the transaction record ids.
pub const TXN_RANGE_END: &str = "t;";

/// `x:{transaction id}`: created once per applied transaction (no TTL), so a transaction
/// re-sent under a new event id is still applied once.
pub fn txn_key_id(transaction_id: &str) -> String {
    format!("x:{transaction_id}")
}

/// Redis key of an investor's cached holdings ([`HoldingsSnapshot`]).
pub fn holdings_cache_key(investor_id: &str) -> String {
    format!("portfolio:holdings:{investor_id}")
}

/// Redis key of a scheme's cached latest NAV ([`SchemeNav`]).
pub fn nav_cache_key(scheme_code: &str) -> String {
    format!("portfolio:nav:{scheme_code}")
}

/// One FIFO lot: what a purchase (or switch-in) added, less what redemptions took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lot {
    /// The purchase transaction's lot id (its transaction id unless the event named another).
    pub lot_id: String,
    pub nav_date: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    pub nav: Decimal,
    /// Units still in the lot (3 places).
    #[serde(with = "rust_decimal::serde::str")]
    pub units: Decimal,
    /// Cost basis of the units still in the lot (INR, 2 places).
    #[serde(with = "rust_decimal::serde::str")]
    pub cost: Decimal,
}

/// A dated cash flow of the investor for XIRR: purchases negative, redemptions positive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CashFlow {
    pub date: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub transaction_id: String,
}

/// One holding: an investor's units in one scheme under one folio. Document `h:{scheme}:{folio}`.
/// Kept when it reaches zero units, so its cash flows still count in the investor's total XIRR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holding {
    pub investor_id: String,
    pub folio: String,
    pub scheme_code: String,
    /// Units held (3 places): the sum of the lots' units.
    #[serde(with = "rust_decimal::serde::str")]
    pub units: Decimal,
    /// Cost basis of the units held (INR, 2 places): the sum of the lots' costs.
    #[serde(with = "rust_decimal::serde::str")]
    pub invested: Decimal,
    /// `invested / units`, 4 places; `None` when nothing is held.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub average_cost: Option<Decimal>,
    /// Open lots, oldest first.
    pub lots: Vec<Lot>,
    /// Every cash flow of this holding, in the order applied.
    pub cash_flows: Vec<CashFlow>,
    /// NAV and date of the transaction with the latest NAV date: the valuation before any
    /// `nav.broadcast` for the scheme has been seen.
    #[serde(with = "rust_decimal::serde::str")]
    pub last_txn_nav: Decimal,
    pub last_txn_nav_date: NaiveDate,
    /// The investor's portfolio version at this holding's last change.
    pub version: i64,
}

/// One lot touched by a transaction: the lot created (positive units and cost) or the slice of
/// a lot a redemption consumed (units and cost removed, reported positive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LotEffect {
    pub lot_id: String,
    #[schema(value_type = String, example = "200.000")]
    #[serde(with = "rust_decimal::serde::str")]
    pub units: Decimal,
    /// Cost basis added to (purchase) or removed from (redemption) the holding by this lot.
    #[schema(value_type = String, example = "2400.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub cost: Decimal,
    /// The registrar's `cost` for this lot movement, as sent in the event (informational).
    #[schema(value_type = String, example = "2400.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub registrar_cost: Decimal,
}

/// A transaction as applied to the portfolio. Document `t:{version:012}`; also the item of
/// `GET /v1/investors/{id}/portfolio/transactions`. The reconciliation sums `unitsDelta` and
/// `investedDelta` per (folio, scheme) and compares them with the holdings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TxnRecord {
    /// The portfolio version this transaction produced (1, 2, 3, ...).
    pub version: i64,
    pub transaction_id: String,
    pub order_id: Option<String>,
    /// The `transaction.completed` event it came from.
    pub event_id: String,
    pub investor_id: String,
    pub folio: String,
    pub scheme_code: String,
    /// PURCHASE, REDEMPTION, SWITCH_OUT or SWITCH_IN.
    pub leg: String,
    pub order_kind: String,
    #[schema(value_type = String, example = "103.5311")]
    #[serde(with = "rust_decimal::serde::str")]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    #[schema(value_type = String, example = "5000.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub gross_amount: Decimal,
    #[schema(value_type = String, example = "0.25")]
    #[serde(with = "rust_decimal::serde::str")]
    pub stamp_duty: Decimal,
    #[schema(value_type = String, example = "0.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub exit_load: Decimal,
    #[schema(value_type = String, example = "4999.75")]
    #[serde(with = "rust_decimal::serde::str")]
    pub net_amount: Decimal,
    /// Units allotted or redeemed (positive).
    #[schema(value_type = String, example = "48.291")]
    #[serde(with = "rust_decimal::serde::str")]
    pub units: Decimal,
    /// Change of the holding's units: `+units` for purchase legs, `-units` for redemption legs.
    #[schema(value_type = String, example = "48.291")]
    #[serde(with = "rust_decimal::serde::str")]
    pub units_delta: Decimal,
    /// Change of the holding's cost basis (INR).
    #[schema(value_type = String, example = "5000.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub invested_delta: Decimal,
    /// The cash flow recorded for XIRR (purchases negative, redemptions positive).
    #[schema(value_type = String, example = "-5000.00")]
    #[serde(with = "rust_decimal::serde::str")]
    pub cash_flow: Decimal,
    /// The registrar's balance after the transaction, as sent in the event.
    #[schema(value_type = String, example = "48.291")]
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_units: Decimal,
    pub lots: Vec<LotEffect>,
    pub allotted_at: DateTime<Utc>,
    pub applied_at: DateTime<Utc>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
}

/// The investor's version counter. Document `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDoc {
    pub version: i64,
}

/// A scheme's latest published NAV. Document `latest` in the scheme's partition and the value
/// of [`nav_cache_key`] in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemeNav {
    pub scheme_code: String,
    pub scheme_name: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    /// NEW or CORRECTION.
    pub change_kind: String,
    /// The `nav.broadcast` event it came from.
    pub event_id: String,
}

/// An investor's holdings as one value: what Redis caches under [`holdings_cache_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingsSnapshot {
    pub version: i64,
    pub holdings: Vec<Holding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transaction record ids sort in version order as strings (the store compares ids as
    /// strings), and holding ids fall inside the holding range.
    #[test]
    fn ids_sort_and_fall_in_their_ranges() {
        assert!(txn_record_id(9) < txn_record_id(10));
        assert!(txn_record_id(99_999) < txn_record_id(100_000));
        assert_eq!(txn_record_id(7), "t:000000000007");
        assert!(txn_record_id(i64::from(i32::MAX)).as_str() < TXN_RANGE_END);
        let h = holding_id("119551", "F/12~ü");
        assert!(h.as_str() >= HOLDING_RANGE.0 && h.as_str() <= HOLDING_RANGE.1);
        assert!(VERSION_ID > HOLDING_RANGE.1 || VERSION_ID < HOLDING_RANGE.0);
    }
}
