//! Support events: work handed to people. [`TicketCreated`] opens a support ticket, e.g. when
//! the GenAI gateway blocks an answer by policy or cannot ground it and escalates to a human
//! advisor. Topic `support.tickets`, keyed by investor id (the tenant when there is no investor).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::meta::{EventMeta, impl_event};

/// A support ticket was opened. Topic `support.tickets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCreated {
    pub meta: EventMeta,
    /// Ticket id (UUID).
    pub ticket_id: String,
    pub tenant: String,
    /// The investor the ticket is about, when there is one.
    pub investor_id: Option<String>,
    /// Service that opened it (`genai-gateway`).
    pub source_service: String,
    /// `GENAI_ASK`, `GENAI_ANOMALY`, `GENAI_DOCUMENT`, `GENAI_SUPPORT_DRAFT`.
    pub channel: String,
    /// `POLICY_BLOCKED`, `LOW_GROUNDING`, `LLM_UNAVAILABLE`.
    pub reason_code: String,
    /// Every rule that fired (`GUARANTEED_RETURN`, `HALLUCINATED_NUMBER`, ...).
    pub reasons: Vec<String>,
    /// The request with PII replaced by tokens.
    pub summary: String,
    /// SHA-256 (hex) of tenant and subject of the caller.
    pub requester_hash: String,
    #[serde(with = "crate::wire::timestamp_micros")]
    pub created_at: DateTime<Utc>,
}
impl_event!(TicketCreated, "nivesh.support.TicketCreated", v 1);
