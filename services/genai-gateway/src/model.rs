//! The gateway's own read model and records (its store, nobody else writes it).
//!
//! | container | partition key | ids |
//! | --- | --- | --- |
//! | [`SCHEMES`] | scheme code | `facts` ([`SchemeFacts`]), `nav:{date}` ([`NavPoint`]), `reason:{date}` ([`AnomalyReason`]), inbox markers |
//! | [`ANOMALIES`] | [`ANOMALY_PARTITION`] | `{navDate}:{schemeCode}` ([`Anomaly`]); anomalies are rare, one partition lists them by date |
//! | [`INVESTORS`] | `{tenant}:{investorId}` | `h:{scheme}` ([`Holding`]), `t:{transactionId}` ([`TxnSummary`]), `profile` ([`Profile`]), inbox markers |
//! | [`DOCUMENTS`] | tenant | `doc:{id}` ([`FundDocument`]) |
//! | [`AUDIT`] | `{tenant}:{yyyy-mm-dd}` (IST) | `{rfc3339 instant}:{uuid}` ([`AuditRecord`]) with the ticket/alert outbox records |
//!
//! Events carry no tenant yet: the consumer files them under `service.default_tenant`.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const SCHEMES: &str = "genai_schemes";
pub const ANOMALIES: &str = "genai_anomalies";
pub const ANOMALY_PARTITION: &str = "anomalies";
pub const INVESTORS: &str = "genai_investors";
pub const DOCUMENTS: &str = "genai_documents";
pub const AUDIT: &str = "genai_audit";

pub const FACTS_ID: &str = "facts";
/// An investor's [`Profile`] in their partition.
pub const PROFILE_ID: &str = "profile";

pub fn nav_id(date: NaiveDate) -> String {
    format!("nav:{date}")
}

pub fn reason_id(date: NaiveDate) -> String {
    format!("reason:{date}")
}

pub fn investor_partition(tenant: &str, investor: &str) -> String {
    format!("{tenant}:{investor}")
}

pub fn holding_id(scheme: &str) -> String {
    format!("h:{scheme}")
}

pub fn txn_id(transaction: &str) -> String {
    format!("t:{transaction}")
}

/// `{schemeCode}:{navDate}` (the API's anomaly id) <-> the stored id `{navDate}:{schemeCode}`.
pub fn anomaly_api_id(scheme: &str, date: NaiveDate) -> String {
    format!("{scheme}:{date}")
}

pub fn anomaly_doc_id(scheme: &str, date: NaiveDate) -> String {
    format!("{date}:{scheme}")
}

/// Parse `{schemeCode}:{navDate}`.
pub fn parse_anomaly_id(id: &str) -> Option<(String, NaiveDate)> {
    let (scheme, date) = id.split_once(':')?;
    if scheme.is_empty() || scheme.len() > 16 || !scheme.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    Some((scheme.to_string(), date.parse().ok()?))
}

/// A scheme's facts and latest NAV (from `nav.broadcast`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemeFacts {
    pub scheme_code: String,
    pub scheme_name: String,
    pub amc: Option<String>,
    pub category: Option<String>,
    pub scheme_type: Option<String>,
    pub latest_nav: Decimal,
    pub latest_nav_date: NaiveDate,
}

/// One published NAV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NavPoint {
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    pub anomaly: bool,
    pub change_kind: String,
}

/// Why validation flagged a NAV (from `nav.validated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyReason {
    pub reason: Option<String>,
    pub previous_nav: Option<Decimal>,
    pub previous_nav_date: Option<NaiveDate>,
}

/// A NAV published with the anomaly flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    /// `{schemeCode}:{navDate}`.
    pub anomaly_id: String,
    pub scheme_code: String,
    pub scheme_name: String,
    #[schema(value_type = String)]
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    pub flagged_at: DateTime<Utc>,
}

/// One holding of an investor (from `portfolio.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holding {
    pub scheme_code: String,
    pub units: Decimal,
    pub invested: Decimal,
    /// The investor's portfolio version this holding is from (older updates are ignored).
    pub version: i64,
}

/// Who onboarded an investor and their name (from `investor.onboarded`): the distributor check
/// of the access rules, and a name to mask by value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub name: String,
    pub distributor_id: Option<String>,
}

/// One transaction of an investor (from `transaction.completed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnSummary {
    pub transaction_id: String,
    pub scheme_code: String,
    pub folio: String,
    pub leg: String,
    pub order_kind: String,
    pub nav: Decimal,
    pub nav_date: NaiveDate,
    pub units: Decimal,
    pub net_amount: Decimal,
}

/// An uploaded fund document (tenant-scoped), split into passages for retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FundDocument {
    pub document_id: String,
    pub tenant: String,
    pub title: String,
    pub scheme_code: Option<String>,
    pub chunks: Vec<String>,
    pub uploaded_by_hash: String,
    pub uploaded_at: DateTime<Utc>,
}

/// One metered request: what was asked (masked), what went out, what came back, what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub request_id: String,
    pub tenant: String,
    /// SHA-256 of tenant and subject (hex): the raw user id is never stored here.
    pub user_hash: String,
    pub role: String,
    pub kind: String,
    pub outcome: String,
    /// The masked prompt as sent (or as it would have been sent).
    pub prompt: String,
    /// The masked answer (before tokens were restored).
    pub response: String,
    pub sources: Vec<String>,
    pub grounding: Option<Decimal>,
    pub violations: Vec<String>,
    pub provider: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_estimate: Decimal,
    pub latency_ms: u64,
    pub cache_hit: bool,
    pub ticket_id: Option<String>,
    pub at: DateTime<Utc>,
}
