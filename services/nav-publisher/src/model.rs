//! What the publisher stores and serves.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A scheme's NAV on one date: the latest NAV document and each history document.
/// NAVs are exact decimal strings, exactly as the source file gave them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemeNav {
    pub scheme_code: String,
    pub scheme_name: String,
    pub amc: Option<String>,
    pub category: Option<String>,
    pub scheme_type: Option<String>,
    pub isin_growth: Option<String>,
    pub isin_reinvestment: Option<String>,
    #[schema(value_type = String, example = "103.5311")]
    #[serde(with = "rust_decimal::serde::str")]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    pub anomaly: bool,
    pub anomaly_reason: Option<String>,
    /// NEW or CORRECTION.
    pub change_kind: String,
    /// The validated event this NAV came from.
    pub event_id: String,
    pub published_at: DateTime<Utc>,
}
