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
use nivesh_store::{Batch, DocumentStore, StoredDoc, WriteOp, inbox_marker, is_inbox_conflict};
use tokio::sync::Notify;
use tracing::Instrument;

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

/// One validated NAV, decided: the batch to commit and what follows a successful commit.
struct Planned {
    event_id: String,
    nav: SchemeNav,
    becomes_latest: bool,
}

impl Publisher {
    async fn decode(&self, msg: &InboundMessage) -> Result<NavValidated, HandlerError> {
        self.codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a NavValidated event: {e}")))
    }

    /// The batch of one validated NAV given the scheme's current latest document: inbox marker,
    /// history entry, latest (ETag-guarded) and the broadcast event.
    async fn plan(
        &self,
        v: &NavValidated,
        latest: Option<StoredDoc>,
    ) -> Result<(Batch, Planned), HandlerError> {
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
                body,
                ttl: None,
            });
        if becomes_latest {
            // The latest document points at the history entry instead of repeating it: one
            // full NAV body per NAV instead of two (perf: the second copy's encoding and row
            // were a tenth of the publisher's CPU on a NAV day). Older full documents carry
            // `navDate` too, so both shapes read the same.
            let body = serde_json::json!({ "navDate": nav.nav_date });
            batch = batch.op(match latest {
                Some(doc) => WriteOp::Replace {
                    id: LATEST.into(),
                    body,
                    if_match: doc.etag,
                    ttl: None,
                },
                None => WriteOp::Create {
                    id: LATEST.into(),
                    body,
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
        Ok((
            batch,
            Planned {
                event_id,
                nav,
                becomes_latest,
            },
        ))
    }

    /// After the commit: a conflict on the inbox marker is a redelivery (done, nothing to
    /// project); a success queues the read-side projections.
    async fn committed(
        &self,
        planned: Planned,
        result: nivesh_store::Result<Vec<StoredDoc>>,
    ) -> Result<(), HandlerError> {
        match result {
            Ok(docs) => {
                if let Some(seq) = docs.iter().map(|d| d.sequence).max() {
                    self.head.advance(seq);
                }
            }
            Err(e) if is_inbox_conflict(&e, GROUP, &planned.event_id) => return Ok(()),
            Err(e) => return Err(retryable(e)),
        }
        metrics::counter!("nivesh_nav_published_total").increment(1);
        if planned.becomes_latest {
            self.projections.publish(planned.nav).await;
        }
        Ok(())
    }
}

#[async_trait]
impl MessageHandler for Publisher {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let v = self.decode(msg).await?;
        let latest = self
            .store
            .get(NAV, &v.scheme_code, LATEST)
            .await
            .map_err(retryable)?;
        let (batch, planned) = self.plan(&v, latest).await?;
        let result = self.store.commit(batch).await;
        if result.is_ok() {
            self.outbox_notify.notify_one();
        }
        self.committed(planned, result).await
    }

    fn batched(&self) -> bool {
        true
    }

    /// [`Publisher::handle`] for a round of distinct schemes: one multi-get of their latest
    /// documents, one hand-off of every batch to the store.
    async fn handle_many(&self, msgs: &[InboundMessage]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = Vec::with_capacity(msgs.len());
        let mut decoded = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match self.decode(msg).await {
                Ok(v) => {
                    decoded.push((results.len(), v));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let keys: Vec<(String, String)> = decoded
            .iter()
            .map(|(_, v)| (v.scheme_code.clone(), LATEST.to_string()))
            .collect();
        let latest = match self.store.get_many(NAV, &keys).await {
            Ok(docs) => docs,
            Err(e) => {
                for (i, _) in &decoded {
                    results[*i] = Err(retryable(&e));
                }
                return results;
            }
        };
        let mut planned = Vec::with_capacity(decoded.len());
        let mut batches = Vec::with_capacity(decoded.len());
        for ((i, v), latest) in decoded.iter().zip(latest) {
            let span = nivesh_bus::trace::consume_span(GROUP, &msgs[*i]);
            match self.plan(v, latest).instrument(span).await {
                Ok((batch, p)) => {
                    batches.push(batch);
                    planned.push((*i, p));
                }
                Err(e) => results[*i] = Err(e),
            }
        }
        let committed = self.store.commit_many(batches).await;
        if committed.iter().any(Result::is_ok) {
            self.outbox_notify.notify_one();
        }
        for ((i, p), result) in planned.into_iter().zip(committed) {
            results[i] = self.committed(p, result).await;
        }
        results
    }
}
