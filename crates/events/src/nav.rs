//! The NAV pipeline's events: ingestor -> `RawNavReceived` -> calculator -> `NavValidated` |
//! `NavRejected` -> publisher -> `NavPublished`.
//!
//! Field types are the domain-friendly ones (`Decimal`, `NaiveDate`); the serde `with` adapters
//! turn them into the exact Avro representation (`nivesh.common.Decimal`, `date`).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::meta::{EventMeta, impl_event};

/// One NAV row as read from a feed file, before validation. Topic `nav.raw-feeds`, keyed by
/// scheme code. Schema v2 added `plan` and `option` (8-column AMFI layout); v1 events decode
/// with both `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawNavReceived {
    pub meta: EventMeta,
    pub file_id: String,
    /// `AMFI`, `CAMS` or `KFINTECH`.
    pub source: String,
    pub line_number: i64,
    pub scheme_code: String,
    pub isin_growth: Option<String>,
    pub isin_reinvestment: Option<String>,
    pub scheme_name: String,
    pub amc: Option<String>,
    pub scheme_type: Option<String>,
    pub category: Option<String>,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub nav: Decimal,
    #[serde(with = "crate::wire::date")]
    pub nav_date: NaiveDate,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub repurchase_price: Option<Decimal>,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub sale_price: Option<Decimal>,
    #[serde(with = "crate::wire::date::option")]
    pub file_date: Option<NaiveDate>,
    /// Since v2.
    pub plan: Option<String>,
    /// Since v2.
    pub option: Option<String>,
}
impl_event!(RawNavReceived, "nivesh.nav.RawNavReceived", v 2);

/// A NAV that passed validation: the first for its date (`change_kind` `NEW`) or a different
/// value for a date already seen (`CORRECTION`). Topic `nav.validated`, keyed by scheme code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NavValidated {
    pub meta: EventMeta,
    pub scheme_code: String,
    pub scheme_name: String,
    pub amc: Option<String>,
    pub category: Option<String>,
    pub scheme_type: Option<String>,
    pub isin_growth: Option<String>,
    pub isin_reinvestment: Option<String>,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub nav: Decimal,
    #[serde(with = "crate::wire::date")]
    pub nav_date: NaiveDate,
    #[serde(with = "crate::decimal::serde_decimal::option")]
    pub previous_nav: Option<Decimal>,
    #[serde(with = "crate::wire::date::option")]
    pub previous_nav_date: Option<NaiveDate>,
    pub anomaly: bool,
    pub anomaly_reason: Option<String>,
    /// `NEW` or `CORRECTION`.
    pub change_kind: String,
    pub file_id: String,
    pub line_number: i64,
    pub source: String,
}
impl_event!(NavValidated, "nivesh.nav.NavValidated", v 1);

/// A NAV row that failed parsing or validation. Topic `nav.rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NavRejected {
    pub meta: EventMeta,
    pub file_id: String,
    pub line_number: i64,
    pub source: String,
    pub scheme_code: Option<String>,
    #[serde(with = "crate::wire::date::option")]
    pub nav_date: Option<NaiveDate>,
    /// Stable machine-readable reason (e.g. `NON_POSITIVE`, `FUTURE_DATE`).
    pub reason_code: String,
    pub reason: String,
}
impl_event!(NavRejected, "nivesh.nav.NavRejected", v 1);

/// A NAV now served to investors. Topic `nav.broadcast`, keyed by scheme code. Schema v2 added
/// `scheme_type`; v1 events decode with it `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NavPublished {
    pub meta: EventMeta,
    pub scheme_code: String,
    pub scheme_name: String,
    pub amc: Option<String>,
    pub category: Option<String>,
    /// Since v2: `Open Ended Schemes`, `Close Ended Schemes`, `Interval Fund Schemes`.
    pub scheme_type: Option<String>,
    #[serde(with = "crate::decimal::serde_decimal")]
    pub nav: Decimal,
    #[serde(with = "crate::wire::date")]
    pub nav_date: NaiveDate,
    pub anomaly: bool,
    /// `NEW` or `CORRECTION`.
    pub change_kind: String,
}
impl_event!(NavPublished, "nivesh.nav.NavPublished", v 2);
