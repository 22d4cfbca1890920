//! Operational events: conditions a service cannot resolve by itself and a person must look at.
//!
//! [`AlertRaised`] is deliberately generic (a code, a severity, a message, an optional subject)
//! so any service can raise one without a new schema: the compliance service raises it when an
//! export cannot be delivered, the GenAI gateway when its LLM quota is exhausted. Topic
//! `ops.alerts`, keyed by the source service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::meta::{EventMeta, impl_event};

/// Alert severities, the values of [`AlertRaised::severity`].
pub mod severity {
    /// For information; nobody needs to act now.
    pub const INFO: &str = "INFO";
    /// Degraded: someone should act within the business day.
    pub const WARNING: &str = "WARNING";
    /// Broken: someone must act now (a regulatory deadline, money, customers affected).
    pub const CRITICAL: &str = "CRITICAL";
}

/// A service raised an alert for operators. Topic `ops.alerts`, keyed by `source_service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRaised {
    pub meta: EventMeta,
    /// Service that raised the alert (`compliance`, `genai-gateway`, ...).
    pub source_service: String,
    /// Stable machine-readable kind, e.g. `EXPORT_DELIVERY_FAILED`, `LLM_QUOTA_EXHAUSTED`.
    pub alert_code: String,
    /// One of the [`severity`] constants.
    pub severity: String,
    /// Human-readable explanation for the operator.
    pub message: String,
    /// What the alert is about when it is about one thing (an export id, a tenant, a scheme).
    pub subject_id: Option<String>,
    /// When the condition was detected (UTC instant; show in IST).
    #[serde(with = "crate::wire::timestamp_micros")]
    pub raised_at: DateTime<Utc>,
}
impl_event!(AlertRaised, "nivesh.ops.AlertRaised", v 1);
