//! The investor transaction flow's events: order -> payment -> allotment (transaction) ->
//! portfolio. Every one is keyed by investor id, so one investor's events stay in order on
//! each topic (and the order-flow topics are co-partitioned).
//!
//! String enums (`kind`, `leg`, `reason_code`, ...) are plain strings on the wire with the
//! allowed values in the schema docs and as constants here: adding a value later is then a
//! compatible change, where an Avro enum would break old readers.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::meta::{EventMeta, impl_event};

/// Order kinds (`OrderPlaced::kind`, `*::order_kind`).
pub mod order_kind {
    pub const PURCHASE: &str = "PURCHASE";
    pub const REDEMPTION: &str = "REDEMPTION";
    pub const SWITCH: &str = "SWITCH";
    pub const SIP_INSTALMENT: &str = "SIP_INSTALMENT";
}

/// Transaction legs (`TransactionCompleted::leg`).
pub mod leg {
    pub const PURCHASE: &str = "PURCHASE";
    pub const REDEMPTION: &str = "REDEMPTION";
    pub const SWITCH_OUT: &str = "SWITCH_OUT";
    pub const SWITCH_IN: &str = "SWITCH_IN";
}

/// An accepted order. Topic `order.placed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub meta: EventMeta,
    pub order_id: String,
    pub investor_id: String,
    pub kind: String,
    pub scheme_code: String,
    pub scheme_name: Option<String>,
    pub scheme_category: Option<String>,
    pub target_scheme_code: Option<String>,
    pub target_scheme_category: Option<String>,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub amount: Option<Decimal>,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub units: Option<Decimal>,
    pub all_units: bool,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub placed_at: DateTime<Utc>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
    pub payment_instrument: Option<String>,
}
impl_event!(OrderPlaced, "nivesh.order.OrderPlaced", v 1);

/// A payment started at the gateway, awaiting completion. Topic `payment.initiated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInitiated {
    pub meta: EventMeta,
    pub payment_id: String,
    pub order_id: String,
    pub investor_id: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub amount: Decimal,
    pub gateway: String,
    pub gateway_ref: Option<String>,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub initiated_at: DateTime<Utc>,
}
impl_event!(PaymentInitiated, "nivesh.payment.PaymentInitiated", v 1);

/// Funds realised. Topic `payment.success`. Self-contained for allotment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    pub meta: EventMeta,
    pub payment_id: String,
    pub order_id: String,
    pub investor_id: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub amount: Decimal,
    pub gateway_ref: String,
    /// Decides the applicable NAV date.
    #[serde(with = "crate::wire::timestamp_micros")]
    pub realised_at: DateTime<Utc>,
    pub order_kind: String,
    pub scheme_code: String,
    pub scheme_category: Option<String>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
}
impl_event!(PaymentSucceeded, "nivesh.payment.PaymentSucceeded", v 1);

/// A payment declined, failed or expired. Topic `payment.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub meta: EventMeta,
    pub payment_id: Option<String>,
    pub order_id: String,
    pub investor_id: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub amount: Decimal,
    pub reason_code: String,
    pub reason: String,
}
impl_event!(PaymentFailed, "nivesh.payment.PaymentFailed", v 1);

/// Money returned for a failed order. Topic `payment.refunded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub meta: EventMeta,
    pub payment_id: String,
    pub refund_id: String,
    pub order_id: String,
    pub investor_id: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub amount: Decimal,
    pub reason: String,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub refunded_at: DateTime<Utc>,
}
impl_event!(PaymentRefunded, "nivesh.payment.PaymentRefunded", v 1);

/// Units added to or taken from one FIFO lot (`nivesh.txn.LotMovement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotMovement {
    pub lot_id: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub units: Decimal,
    #[serde(with = "crate::wire::date")]
    pub lot_nav_date: NaiveDate,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub lot_nav: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub cost: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub exit_load: Decimal,
    pub days_held: i32,
}

/// Units allotted or redeemed. Topic `transaction.completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionCompleted {
    pub meta: EventMeta,
    pub transaction_id: String,
    pub order_id: String,
    pub investor_id: String,
    pub folio: String,
    /// One of [`leg`].
    pub leg: String,
    /// One of [`order_kind`].
    pub order_kind: String,
    pub scheme_code: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub nav: Decimal,
    #[serde(with = "crate::wire::date")]
    pub nav_date: NaiveDate,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub gross_amount: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub stamp_duty: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub exit_load: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub net_amount: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub units: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub balance_units: Decimal,
    pub lots: Vec<LotMovement>,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub allotted_at: DateTime<Utc>,
    pub sip_id: Option<String>,
    pub instalment_no: Option<i32>,
    pub linked_order_leg: Option<String>,
}
impl_event!(TransactionCompleted, "nivesh.txn.TransactionCompleted", v 1);

/// An order that could not be executed. Topic `transaction.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionFailed {
    pub meta: EventMeta,
    pub order_id: String,
    pub investor_id: String,
    pub order_kind: String,
    pub scheme_code: String,
    pub reason_code: String,
    pub reason: String,
    pub payment_id: Option<String>,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub refund_amount: Option<Decimal>,
}
impl_event!(TransactionFailed, "nivesh.txn.TransactionFailed", v 1);

/// An order ended FAILED. Topic `order.failed`; payment refunds `refund_amount` when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFailed {
    pub meta: EventMeta,
    pub order_id: String,
    pub investor_id: String,
    pub order_kind: String,
    pub scheme_code: String,
    /// `PAYMENT`, `ALLOTMENT` or `VALIDATION`.
    pub stage: String,
    pub reason_code: String,
    pub reason: String,
    pub payment_id: Option<String>,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub refund_amount: Option<Decimal>,
}
impl_event!(OrderFailed, "nivesh.order.OrderFailed", v 1);

/// An investor's holding changed. Topic `portfolio.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortfolioUpdated {
    pub meta: EventMeta,
    pub investor_id: String,
    pub order_id: Option<String>,
    pub transaction_id: Option<String>,
    pub scheme_code: String,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub units: Decimal,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub invested: Decimal,
    pub version: i64,
}
impl_event!(PortfolioUpdated, "nivesh.portfolio.PortfolioUpdated", v 1);
