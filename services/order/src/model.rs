//! What the order service stores and serves, and where it lives.
//!
//! Storage layout (all in the service's own store):
//!
//! | container | partition key | document ids |
//! | --- | --- | --- |
//! | `orders` | investor id | `order:{orderId}`, `ix:{placedAt µs, 20 digits}-{orderId}` (listing index), `idem:{key}` (idempotency record, TTL 48 h), `pos:{schemeCode}` (units held + locks), `sip:{sipId}`, `investor` (what onboarding's events said: tenant, distributor, KYC status, erasure; see `identity`), `inbox:order:{eventId}` |
//! | `order_locators` | order id | `locator` → investor id |
//! | `sip_locators` | SIP id | `locator` → investor id |
//! | `sip_index` | `dom-{DD}` (the SIP's day of month) | `{sipId}` → investor id |
//! | `schemes` | scheme code | `scheme` (latest NAV + metadata from `nav.broadcast`), inbox markers |
//! | `ops` | `sip-run` | `idem:{key}` (replays of `POST /v1/sips/run`) |
//!
//! Everything one order changes lives in its investor's partition, so the idempotency record,
//! the order, its listing entry, the position lock and the outgoing event commit in ONE batch.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use nivesh_domain::time::to_ist;
use nivesh_domain::{Amount, Units};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) const ORDERS: &str = "orders";
pub(crate) const ORDER_LOCATORS: &str = "order_locators";
pub(crate) const SIP_LOCATORS: &str = "sip_locators";
pub(crate) const SIP_INDEX: &str = "sip_index";
pub(crate) const SCHEMES: &str = "schemes";
pub(crate) const OPS: &str = "ops";
pub(crate) const SIP_RUN_PARTITION: &str = "sip-run";
pub(crate) const LOCATOR: &str = "locator";
pub(crate) const SCHEME_DOC: &str = "scheme";

pub(crate) fn order_doc_id(order_id: &str) -> String {
    format!("order:{order_id}")
}

/// Listing entries sort by placement time (µs since the epoch, zero-padded), then order id.
pub(crate) fn index_doc_id(placed_at: DateTime<FixedOffset>, order_id: &str) -> String {
    format!("ix:{}", cursor_of(placed_at, order_id))
}

/// The opaque cursor of an order in its investor's listing: `{µs:020}-{orderId}`.
pub(crate) fn cursor_of(placed_at: DateTime<FixedOffset>, order_id: &str) -> String {
    let micros = placed_at.timestamp_micros().max(0);
    format!("{micros:020}-{order_id}")
}

pub(crate) fn idem_doc_id(key: &str) -> String {
    format!("idem:{key}")
}

pub(crate) fn position_doc_id(scheme: &str) -> String {
    format!("pos:{scheme}")
}

pub(crate) fn sip_doc_id(sip_id: &str) -> String {
    format!("sip:{sip_id}")
}

pub(crate) fn sip_index_partition(day_of_month: u32) -> String {
    format!("dom-{day_of_month:02}")
}

/// Instants are shown in IST with millisecond precision: `2025-02-25T10:15:00.000+05:30`.
pub(crate) mod ist_millis {
    use chrono::{DateTime, FixedOffset, SecondsFormat};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        t: &DateTime<FixedOffset>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let ist = t.with_timezone(&nivesh_domain::time::ist());
        s.serialize_str(&ist.to_rfc3339_opts(SecondsFormat::Millis, false))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<DateTime<FixedOffset>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// An instant in IST truncated to the millisecond (what the API shows and stores).
pub(crate) fn ist_now(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    let millis = DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
    to_ist(millis)
}

/// Order kinds as stored and served; `SIP_INSTALMENT` orders are placed by the SIP scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderKind {
    Purchase,
    Redemption,
    Switch,
    SipInstalment,
}

impl OrderKind {
    /// The wire value (`nivesh_events::order_kind`).
    pub fn as_str(self) -> &'static str {
        use nivesh_events::order_kind as k;
        match self {
            OrderKind::Purchase => k::PURCHASE,
            OrderKind::Redemption => k::REDEMPTION,
            OrderKind::Switch => k::SWITCH,
            OrderKind::SipInstalment => k::SIP_INSTALMENT,
        }
    }

    /// Purchases and SIP instalments take money; redemptions and switches take units.
    pub fn takes_payment(self) -> bool {
        matches!(self, OrderKind::Purchase | OrderKind::SipInstalment)
    }
}

/// `PLACED → PAYMENT_PENDING → PAID → ALLOTTED → COMPLETED`, or `FAILED` before `COMPLETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    PaymentPending,
    Paid,
    Allotted,
    Completed,
    Failed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "PLACED",
            OrderStatus::PaymentPending => "PAYMENT_PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Allotted => "ALLOTTED",
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::Failed => "FAILED",
        }
    }
}

/// One step of an order's history. `status` is an [`OrderStatus`] or one of the informational
/// entries `REFUNDED` (money returned after FAILED) and `SWITCHED_OUT` (a switch's redemption leg).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    #[schema(example = "PAID")]
    pub status: String,
    #[serde(with = "ist_millis")]
    #[schema(value_type = String, format = DateTime, example = "2025-02-25T10:15:02.120+05:30")]
    pub at: DateTime<FixedOffset>,
    #[schema(example = "payment pay-01 realised")]
    pub detail: String,
}

/// Why an order FAILED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// `PAYMENT`, `ALLOTMENT` or `VALIDATION`.
    #[schema(example = "PAYMENT")]
    pub stage: String,
    #[schema(example = "DECLINED")]
    pub code: String,
    #[schema(example = "UPI mandate declined by the payer's bank")]
    pub reason: String,
}

/// The registrar's figures for one leg (from `transaction.completed`; authoritative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allotment {
    /// `PURCHASE`, `REDEMPTION`, `SWITCH_OUT` or `SWITCH_IN`.
    pub leg: String,
    pub transaction_id: String,
    pub folio: String,
    pub scheme_code: String,
    #[schema(value_type = String, example = "101.2345")]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    #[schema(value_type = String, example = "49.385")]
    pub units: Decimal,
    #[schema(value_type = String, example = "5000.00")]
    pub gross_amount: Decimal,
    #[schema(value_type = String, example = "0.25")]
    pub stamp_duty: Decimal,
    #[schema(value_type = String, example = "0.00")]
    pub exit_load: Decimal,
    #[schema(value_type = String, example = "4999.75")]
    pub net_amount: Decimal,
    #[schema(value_type = String, example = "49.385")]
    pub balance_units: Decimal,
    #[serde(with = "ist_millis")]
    #[schema(value_type = String, format = DateTime)]
    pub allotted_at: DateTime<FixedOffset>,
}

/// An order as stored and served by `GET /v1/orders/{orderId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[schema(example = "0195e0a4-8f7b-7c3d-9a1b-2c3d4e5f6a7b")]
    pub order_id: String,
    #[schema(example = "INV0001")]
    pub investor_id: String,
    pub kind: OrderKind,
    #[schema(example = "119551")]
    pub scheme_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_scheme_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_scheme_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "5000.00")]
    pub amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "12.500")]
    pub units: Option<Units>,
    #[serde(default)]
    pub all_units: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "aarav.sharma@okicici")]
    pub payment_instrument: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instalment_no: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instalment_due_date: Option<NaiveDate>,
    pub status: OrderStatus,
    pub timeline: Vec<TimelineEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(with = "ist_millis")]
    #[schema(value_type = String, format = DateTime, example = "2025-02-25T10:15:00.000+05:30")]
    pub placed_at: DateTime<FixedOffset>,
    /// Expected NAV date: at placement for redemptions and switches, once PAID for purchases
    /// (from when the funds were realised); replaced by the allotted NAV date once ALLOTTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicable_nav_date: Option<NaiveDate>,
    /// Units of `schemeCode` held back for this redemption/switch until it is allotted or fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "12.500")]
    pub locked_units: Option<Units>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allotments: Vec<Allotment>,
}

/// An entry of an investor's listing (the order id is all it needs; the order doc is read).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexEntry {
    pub(crate) order_id: String,
}

/// Where an order (or SIP) lives: written before the order's batch, keyed by the order id.
/// A dangling locator (its batch lost a race or failed) points at nothing and reads as 404.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Locator {
    pub(crate) investor_id: String,
}

/// The stored first response of an idempotent POST, replayed for repeats of the same key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdempotencyRecord {
    pub(crate) key: String,
    /// The investor id for orders and SIPs; `sip-run` for the scheduler endpoint.
    pub(crate) scope: String,
    /// SHA-256 of the canonical JSON of the request (keys sorted).
    pub(crate) request_hash: String,
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: serde_json::Value,
    #[serde(with = "ist_millis")]
    pub(crate) created_at: DateTime<FixedOffset>,
}

/// The order service's own view of one investor's holding of one scheme.
///
/// `unitsHeld` is the `balance_units` of the latest `transaction.completed` for the scheme (the
/// registrar's figure); `locks` are the units promised to pending redemptions/switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Position {
    pub(crate) scheme_code: String,
    pub(crate) units_held: Units,
    /// `allotted_at` of the transaction `unitsHeld` came from; older ones do not overwrite it.
    #[serde(default)]
    pub(crate) as_of: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) last_transaction_id: Option<String>,
    #[serde(default)]
    pub(crate) locks: BTreeMap<String, Units>,
}

impl Position {
    pub(crate) fn empty(scheme: &str) -> Self {
        Position {
            scheme_code: scheme.to_string(),
            units_held: Units::zero(),
            as_of: None,
            last_transaction_id: None,
            locks: BTreeMap::new(),
        }
    }

    pub(crate) fn locked(&self) -> Units {
        self.locks
            .values()
            .fold(Units::zero(), |acc, u| acc.checked_add(*u).unwrap_or(acc))
    }

    /// Held minus locked, never below zero (a registrar figure may drop under the locks).
    pub(crate) fn free(&self) -> Units {
        self.units_held
            .checked_sub(self.locked())
            .unwrap_or_else(Units::zero)
    }
}

/// A scheme as the order service knows it from `nav.broadcast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scheme {
    #[schema(example = "119551")]
    pub scheme_code: String,
    pub scheme_name: String,
    #[serde(default)]
    pub amc: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// `Open Ended Schemes`, `Close Ended Schemes`, `Interval Fund Schemes` (absent: unknown).
    #[serde(default)]
    pub scheme_type: Option<String>,
    #[schema(value_type = String, example = "101.2345")]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
}

/// SIP lifecycle: ACTIVE until its last instalment (when a count was given) is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SipStatus {
    Active,
    Completed,
}

/// One instalment order a SIP produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SipInstalment {
    pub instalment_no: u32,
    pub due_date: NaiveDate,
    pub order_id: String,
    /// `PLACED`, or `FAILED` when the instalment could not be placed (KYC, scheme closed).
    pub status: OrderStatus,
}

/// A systematic investment plan (`POST /v1/orders` with `kind: "SIP"`, `GET /v1/sips/{sipId}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sip {
    #[schema(example = "0195e0a4-9000-7c3d-9a1b-2c3d4e5f6a7b")]
    pub sip_id: String,
    pub investor_id: String,
    pub scheme_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_name: Option<String>,
    #[schema(value_type = String, example = "1000.00")]
    pub amount: Amount,
    #[schema(example = 5)]
    pub day_of_month: u32,
    pub start_date: NaiveDate,
    /// Number of instalments; absent: until cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instalments: Option<u32>,
    pub payment_instrument: String,
    pub status: SipStatus,
    /// The number the next instalment will carry (1-based).
    pub next_instalment_no: u32,
    /// When the next instalment is due; absent once the SIP is COMPLETED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_instalment_date: Option<NaiveDate>,
    #[serde(with = "ist_millis")]
    #[schema(value_type = String, format = DateTime)]
    pub registered_at: DateTime<FixedOffset>,
    #[serde(default)]
    pub instalment_orders: Vec<SipInstalment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing ids sort by time first, and cursors are fixed-width so string order = time order.
    #[test]
    fn index_ids_sort_by_time() {
        let t1 = DateTime::parse_from_rfc3339("2025-02-25T10:00:00+05:30").unwrap();
        let t2 = DateTime::parse_from_rfc3339("2025-02-25T10:00:00.001+05:30").unwrap();
        let a = index_doc_id(t1, "ffff");
        let b = index_doc_id(t2, "0000");
        assert!(a < b, "{a} < {b}");
        assert_eq!(cursor_of(t1, "x").len(), 22);
    }

    /// Free units are held minus every lock, floored at zero.
    #[test]
    fn free_units() {
        let mut p = Position::empty("119551");
        p.units_held = Units::parse("10.000").unwrap();
        p.locks.insert("a".into(), Units::parse("2.500").unwrap());
        p.locks.insert("b".into(), Units::parse("1.000").unwrap());
        assert_eq!(p.free(), Units::parse("6.500").unwrap());
        p.locks.insert("c".into(), Units::parse("9.000").unwrap());
        assert_eq!(p.free(), Units::zero());
    }

    /// Timestamps serialize in IST with milliseconds and round-trip.
    #[test]
    fn timeline_time_is_ist() {
        let at = ist_now(
            DateTime::parse_from_rfc3339("2025-02-25T04:45:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let e = TimelineEntry {
            status: "PLACED".into(),
            at,
            detail: "x".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["at"], "2025-02-25T10:15:00.123+05:30");
        let back: TimelineEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
