//! The `compliance` consumer group: every business event into the audit ledger.
//!
//! For each record: decode it against the schema catalog whatever its type (an undecodable
//! record is a permanent failure: the bus dead-letters it with the reason), turn it into the
//! canonical payload, pick its ledger partition (the investor id; `scheme-<code>` for NAV
//! events), keep the facts SEBI exports are validated from (idempotent upserts, before the
//! append so a redelivery after a crash finds them), encrypt the payload's PII fields under the
//! investor's key, and append it once (the event id dedupes). `investor.erased` additionally
//! crypto-shreds the investor's key, after its own record is in the ledger; redelivered, it
//! shreds again (idempotent).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nivesh_bus::catalog::{self, PartitionKey};
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler, headers};
use nivesh_events::HEADER_EVENT_ID;
use serde_json::Value;

use crate::canonical::avro_to_json;
use crate::crypto::protect;
use crate::ledger::NewRecord;
use crate::service::{ComplianceService, scheme_partition, str_field, trace_id_of};

/// Consumes the `compliance` group's topics.
pub struct Consumer {
    svc: Arc<ComplianceService>,
}

impl Consumer {
    pub fn new(svc: Arc<ComplianceService>) -> Self {
        Consumer { svc }
    }
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

#[async_trait]
impl MessageHandler for Consumer {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let svc = &self.svc;
        let (event_type, _version, value) =
            svc.codec.decode_value(&msg.payload).await.map_err(|e| {
                HandlerError::Permanent(format!("undecodable event on {}: {e}", msg.topic))
            })?;
        let mut payload = avro_to_json(&value);
        let meta = payload.get("meta").cloned().unwrap_or(Value::Null);
        let event_id = str_field(&meta, "event_id")
            .map(str::to_owned)
            .or_else(|| msg.header_str(HEADER_EVENT_ID).map(str::to_owned))
            .ok_or_else(|| {
                HandlerError::Permanent(format!("{event_type} on {} has no event id", msg.topic))
            })?;
        let occurred_at: DateTime<Utc> = str_field(&meta, "occurred_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                HandlerError::Permanent(format!("{event_type} {event_id} has no occurred_at"))
            })?;
        let actor = str_field(&meta, "producer")
            .unwrap_or("unknown")
            .to_string();
        let partition = partition_of(&msg.topic, &payload, msg.key_str()).ok_or_else(|| {
            HandlerError::Permanent(format!(
                "{event_type} {event_id} on {} names no investor or scheme",
                msg.topic
            ))
        })?;
        let investor = crate::service::is_investor_partition(&partition);
        let stated_tenant = str_field(&payload, "tenant").map(str::to_owned);
        let tenant = if investor {
            Some(
                stated_tenant
                    .clone()
                    .unwrap_or_else(|| svc.config.default_tenant.clone()),
            )
        } else {
            None
        };

        svc.record_facts(&msg.topic, &payload, &partition)
            .await
            .map_err(retryable)?;

        if investor {
            let key = svc
                .keys
                .key_for_write(&partition)
                .await
                .map_err(retryable)?;
            protect(&mut payload, &partition, &key, &svc.config.pii_fields);
        }
        let record = NewRecord {
            partition: partition.clone(),
            tenant,
            tenant_stated: stated_tenant.is_some(),
            event_id,
            event_type,
            trace_id: msg.header_str(headers::TRACEPARENT).and_then(trace_id_of),
            actor,
            occurred_at,
            payload,
        };
        svc.ledger.append(&record).await.map_err(retryable)?;

        if msg.topic == "investor.erased" {
            let destroyed = svc
                .keys
                .shred(&partition, svc.now())
                .await
                .map_err(retryable)?;
            tracing::info!(investor = %partition, destroyed, "investor erased: ledger key shredded");
        }
        Ok(())
    }
}

/// The ledger partition of an event: as its topic is keyed (catalog), from the payload's
/// `investor_id` / `scheme_code`, falling back to the record key.
fn partition_of(topic: &str, payload: &Value, key: Option<&str>) -> Option<String> {
    let key = key.filter(|k| !k.is_empty());
    match catalog::topic(topic).map(|t| t.key) {
        Some(PartitionKey::SchemeCode) => str_field(payload, "scheme_code")
            .or(key)
            .map(scheme_partition),
        _ => str_field(payload, "investor_id")
            .filter(|i| nivesh_domain::InvestorId::parse(i).is_ok())
            .or(key)
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// NAV topics go to the scheme's partition, investor topics to the investor's.
    #[test]
    fn partitions() {
        let nav = json!({"scheme_code": "119551"});
        assert_eq!(
            partition_of("nav.broadcast", &nav, Some("119551")).as_deref(),
            Some("scheme-119551")
        );
        let rejected = json!({"scheme_code": null});
        assert_eq!(
            partition_of("nav.rejected", &rejected, Some("119551")).as_deref(),
            Some("scheme-119551")
        );
        let order = json!({"investor_id": "INV0001"});
        assert_eq!(
            partition_of("order.placed", &order, Some("INV0001")).as_deref(),
            Some("INV0001")
        );
        assert_eq!(partition_of("order.placed", &json!({}), None), None);
    }
}
