//! `nav.validated` → store (history + latest) → `nav.broadcast`, then Redis.
//!
//! The store is the system of record and is written first, in one batch with the inbox marker and
//! the broadcast event; the search directory and Redis follow through the write-behind in
//! [`crate::projection`] (a lost projection write only costs a cache miss until the next NAV).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_events::{AvroCodec, EventMeta, NavPublished, NavValidated};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{Batch, DocumentStore, WriteOp, inbox_marker, is_inbox_conflict};
use tokio::sync::Notify;

use crate::model::SchemeNav;

pub const GROUP: &str = "nav-publisher";
pub const NAV: &str = "nav";
pub const LATEST: &str = "latest";
pub const BROADCAST_TOPIC: &str = "nav.broadcast";

pub fn history_id(date: chrono::NaiveDate) -> String {
    format!("h:{date}")
}

pub fn cache_key(scheme: &str) -> String {
    format!("nav:latest:{scheme}")
}

pub struct Publisher {
    pub projections: crate::projection::Projections,
    pub head: crate::stream::FeedHead,
    pub store: Arc<dyn DocumentStore>,
    pub codec: AvroCodec,
    pub outbox_notify: Arc<Notify>,
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

#[async_trait]
impl MessageHandler for Publisher {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let v: NavValidated = self
            .codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a NavValidated event: {e}")))?;
        let event_id = v.meta.event_id.to_string();
        let scheme = v.scheme_code.clone();
        let nav = SchemeNav {
            scheme_code: scheme.clone(),
            scheme_name: v.scheme_name.clone(),
            amc: v.amc.clone(),
            category: v.category.clone(),
            scheme_type: v.scheme_type.clone(),
            isin_growth: v.isin_growth.clone(),
            isin_reinvestment: v.isin_reinvestment.clone(),
            nav: v.nav,
            nav_date: v.nav_date,
            anomaly: v.anomaly,
            anomaly_reason: v.anomaly_reason.clone(),
            change_kind: v.change_kind.clone(),
            event_id: event_id.clone(),
            published_at: Utc::now(),
        };
        let body = serde_json::to_value(&nav).expect("serializable");
        let latest = self
            .store
            .get(NAV, &scheme, LATEST)
            .await
            .map_err(retryable)?;
        let latest_date = latest.as_ref().and_then(|d| {
            d.body["navDate"]
                .as_str()
                .and_then(|s| s.parse::<chrono::NaiveDate>().ok())
        });
        let becomes_latest = latest_date.is_none_or(|d| nav.nav_date >= d);

        let mut batch = Batch::new(NAV, &scheme)
            .op(inbox_marker(GROUP, &event_id))
            .op(WriteOp::Upsert {
                id: history_id(nav.nav_date),
                body: body.clone(),
                ttl: None,
            });
        if becomes_latest {
            batch = batch.op(match latest {
                Some(doc) => WriteOp::Replace {
                    id: LATEST.into(),
                    body: body.clone(),
                    if_match: doc.etag,
                    ttl: None,
                },
                None => WriteOp::Create {
                    id: LATEST.into(),
                    body: body.clone(),
                    ttl: None,
                },
            });
        }
        let broadcast = NavPublished {
            meta: EventMeta::new::<NavPublished>(GROUP, Some(event_id.clone())),
            scheme_code: scheme.clone(),
            scheme_name: nav.scheme_name.clone(),
            amc: nav.amc.clone(),
            category: nav.category.clone(),
            scheme_type: nav.scheme_type.clone(),
            nav: nav.nav,
            nav_date: nav.nav_date,
            anomaly: nav.anomaly,
            change_kind: nav.change_kind.clone(),
        };
        batch = batch.emit(
            outbox_message(&self.codec, BROADCAST_TOPIC, &scheme, &broadcast)
                .await
                .map_err(retryable)?,
        );

        match self.store.commit(batch).await {
            Ok(docs) => {
                self.outbox_notify.notify_one();
                if let Some(seq) = docs.iter().map(|d| d.sequence).max() {
                    self.head.advance(seq);
                }
            }
            Err(e) if is_inbox_conflict(&e, GROUP, &event_id) => return Ok(()),
            Err(e) => return Err(retryable(e)),
        }
        metrics::counter!("nivesh_nav_published_total").increment(1);
        if becomes_latest {
            self.projections.publish(nav).await;
        }
        Ok(())
    }
}
