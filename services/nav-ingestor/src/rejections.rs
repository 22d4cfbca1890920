//! `nav.rejected` → the file report. The calculator rejects NAVs the parser could read but the
//! rules refuse (stale, future-dated); the ingestor owns the file report, so it records them
//! there, once per event (the record's id is the line, written with the inbox marker in one batch).

use std::sync::Arc;

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_events::{AvroCodec, NavRejected};
use nivesh_store::{Batch, DocumentStore, WriteOp, inbox_marker, is_inbox_conflict};

use crate::ingest::{FILES, StoredRejection, to_doc, validation_rejection_id};

pub const GROUP: &str = "nav-ingestor";

pub struct RejectionRecorder {
    pub store: Arc<dyn DocumentStore>,
    pub codec: AvroCodec,
}

#[async_trait]
impl MessageHandler for RejectionRecorder {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let rej: NavRejected = self
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a NavRejected event: {e}")))?;
        let event_id = rej.meta.event_id.to_string();
        let line = u64::try_from(rej.line_number).unwrap_or(0);
        let record = StoredRejection {
            line_number: line,
            reason_code: rej.reason_code.clone(),
            reason: rej.reason.clone(),
            raw: format!(
                "scheme {} NAV date {}",
                rej.scheme_code.as_deref().unwrap_or("?"),
                rej.nav_date.map(|d| d.to_string()).unwrap_or_default()
            ),
        };
        let batch = Batch::new(FILES, &rej.file_id)
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Upsert {
                id: validation_rejection_id(line),
                body: to_doc(&record),
                ttl: None,
            });
        match self.store.commit(batch).await {
            Ok(_) => Ok(()),
            Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => Ok(()),
            Err(e) => Err(HandlerError::Retryable(e.to_string())),
        }
    }
}
