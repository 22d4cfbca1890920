//! The event ledger: the consumer a service runs before its issue gives it business behaviour,
//! and a reusable way to account for every event a group receives.
//!
//! Each event is decoded against the schema catalog (an undecodable one is a permanent failure:
//! it goes to the group's dead-letter topic with the reason), recorded once in the service's own
//! store (the record *is* the inbox marker, so a redelivery records nothing new), and counted by
//! type in `nivesh_events_received_total{group,type}`.

use std::sync::Arc;

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_events::{AvroCodec, HEADER_EVENT_ID};
use nivesh_store::{Batch, DocumentStore, Error as StoreError, WriteOp};

use crate::config::Settings;
use crate::service::{ServiceApp, connect, run};

/// Container holding the ledger records, partitioned by topic.
pub const LEDGER: &str = "event_ledger";

pub struct EventLedger {
    group: String,
    codec: AvroCodec,
    store: Arc<dyn DocumentStore>,
}

impl EventLedger {
    pub fn new(group: &str, codec: AvroCodec, store: Arc<dyn DocumentStore>) -> Self {
        EventLedger {
            group: group.to_string(),
            codec,
            store,
        }
    }
}

#[async_trait]
impl MessageHandler for EventLedger {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let (event_type, version, _) =
            self.codec.decode_value(&msg.payload).await.map_err(|e| {
                HandlerError::Permanent(format!("undecodable event on {}: {e}", msg.topic))
            })?;
        let event_id = msg
            .header(HEADER_EVENT_ID)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| format!("{}-{}-{}", msg.topic, msg.partition, msg.offset));
        let record = serde_json::json!({
            "eventId": event_id, "eventType": event_type, "schemaVersion": version,
            "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
            "receivedAt": chrono::Utc::now(),
        });
        let batch = Batch::new(LEDGER, &msg.topic).op(WriteOp::Create {
            id: format!("{}:{event_id}", self.group),
            body: record,
            ttl: None,
        });
        match self.store.commit(batch).await {
            Ok(_) => {
                metrics::counter!("nivesh_events_received_total", "group" => self.group.clone(), "type" => event_type).increment(1);
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(HandlerError::Retryable(e.to_string())),
        }
    }
}

/// Run a service whose only consumer is the ledger for `group`.
pub async fn run_ledger_service<T: std::fmt::Debug>(
    settings: Settings<T>,
    group: &str,
) -> crate::Result<()> {
    let ctx = connect(&settings).await?;
    let ledger = EventLedger::new(group, ctx.codec.clone(), ctx.store.clone());
    run(ctx, ServiceApp::new().consumer(group, Arc::new(ledger))).await
}
