//! `nav.raw-feeds` → validate → `nav.validated` | `nav.rejected`, effectively once.
//!
//! Everything a NAV changes lives in the scheme's partition (the raw topic is keyed by scheme
//! code, so one consumer handles a scheme at a time): the inbox marker for the event, the
//! per-date record, the scheme's latest NAV and the outgoing event all commit in ONE batch. A
//! redelivered event hits the inbox marker's `Create` conflict and is acknowledged without effect.

use std::sync::Arc;

use async_trait::async_trait;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::time::{Clock, ist_date};
use nivesh_events::{AvroCodec, EventMeta, NavRejected, NavValidated, RawNavReceived};
use nivesh_runtime::outbox::outbox_message;
use nivesh_store::{Batch, DocumentStore, StoredDoc, WriteOp, inbox_marker, is_inbox_conflict};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::validate::{DayNav, Incoming, Rules, SchemeState, Verdict, judge};

pub const GROUP: &str = "nav-calculator";
pub const STATE: &str = "nav_state";
pub const VALIDATED_TOPIC: &str = "nav.validated";
pub const REJECTED_TOPIC: &str = "nav.rejected";
const LATEST: &str = "latest";

pub struct Calculator {
    pub store: Arc<dyn DocumentStore>,
    pub codec: AvroCodec,
    pub outbox_notify: Arc<Notify>,
    pub rules: Rules,
    pub clock: Arc<dyn Clock>,
}

fn day_id(date: chrono::NaiveDate) -> String {
    format!("d:{date}")
}

fn retryable(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

impl Calculator {
    async fn decode(&self, msg: &InboundMessage) -> Result<RawNavReceived, HandlerError> {
        self.codec
            .decode(&msg.payload)
            .await
            .map_err(|e| HandlerError::Permanent(format!("not a RawNavReceived event: {e}")))
    }

    /// The batch one raw NAV commits, given the scheme's current state: inbox marker, per-date
    /// record, latest state and the outgoing event (or just the marker for a duplicate).
    async fn decide(
        &self,
        raw: &RawNavReceived,
        latest_doc: Option<StoredDoc>,
        day: Option<StoredDoc>,
    ) -> Result<Batch, HandlerError> {
        let scheme = raw.scheme_code.clone();
        let event_id = raw.meta.event_id.to_string();
        let latest: Option<SchemeState> = latest_doc
            .as_ref()
            .and_then(|d| serde_json::from_value(d.body.clone()).ok());
        let day: Option<DayNav> = day.and_then(|d| serde_json::from_value(d.body).ok());
        let today = ist_date(self.clock.now());
        let incoming = Incoming {
            nav: raw.nav,
            nav_date: raw.nav_date,
            category: raw.category.as_deref(),
            reference_date: raw.file_date.unwrap_or(today),
        };
        let verdict = judge(&self.rules, incoming, today, latest.as_ref(), day.as_ref());

        let mut batch = Batch::new(STATE, &scheme).op(inbox_marker(GROUP, &event_id));
        match verdict {
            Verdict::Duplicate => {
                metrics::counter!("nivesh_nav_duplicates_total").increment(1);
            }
            Verdict::Rejected { code, reason } => {
                metrics::counter!("nivesh_nav_rejected_total", "reason" => code).increment(1);
                let event = NavRejected {
                    meta: EventMeta::new::<NavRejected>(GROUP, Some(event_id.clone())),
                    file_id: raw.file_id.clone(),
                    line_number: raw.line_number,
                    source: raw.source.clone(),
                    scheme_code: Some(scheme.clone()),
                    nav_date: Some(raw.nav_date),
                    reason_code: code.to_string(),
                    reason,
                };
                batch = batch.emit(
                    outbox_message(&self.codec, REJECTED_TOPIC, &scheme, &event)
                        .await
                        .map_err(retryable)?,
                );
            }
            Verdict::New { .. } | Verdict::Correction { .. } => {
                let (previous, anomaly, becomes_latest, change_kind) = match verdict {
                    Verdict::New {
                        previous,
                        anomaly,
                        becomes_latest,
                    } => (previous, anomaly, becomes_latest, "NEW"),
                    Verdict::Correction {
                        previous_nav,
                        anomaly,
                        becomes_latest,
                    } => (
                        Some((previous_nav, raw.nav_date)),
                        anomaly,
                        becomes_latest,
                        "CORRECTION",
                    ),
                    _ => unreachable!("matched above"),
                };
                metrics::counter!("nivesh_nav_validated_total", "kind" => change_kind).increment(1);
                if anomaly.is_some() {
                    metrics::counter!("nivesh_nav_anomalies_total").increment(1);
                }
                batch = batch.op(WriteOp::Upsert {
                    id: day_id(raw.nav_date),
                    body: serde_json::to_value(DayNav {
                        nav: raw.nav,
                        event_id: event_id.clone(),
                    })
                    .expect("serializable"),
                    ttl: None,
                });
                if becomes_latest {
                    let state = SchemeState {
                        scheme_name: raw.scheme_name.clone(),
                        amc: raw.amc.clone(),
                        category: raw.category.clone(),
                        scheme_type: raw.scheme_type.clone(),
                        nav: raw.nav,
                        nav_date: raw.nav_date,
                    };
                    let body = serde_json::to_value(&state).expect("serializable");
                    // Replace-with-ETag: if a rebalance ever let two instances handle this scheme at
                    // once, the loser retries against the winner's state instead of overwriting it.
                    batch = batch.op(match latest_doc {
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
                let event = NavValidated {
                    meta: EventMeta::new::<NavValidated>(GROUP, Some(event_id.clone())),
                    scheme_code: scheme.clone(),
                    scheme_name: raw.scheme_name.clone(),
                    amc: raw.amc.clone(),
                    category: raw.category.clone(),
                    scheme_type: raw.scheme_type.clone(),
                    isin_growth: raw.isin_growth.clone(),
                    isin_reinvestment: raw.isin_reinvestment.clone(),
                    nav: raw.nav,
                    nav_date: raw.nav_date,
                    previous_nav: previous.map(|p| p.0),
                    previous_nav_date: previous.map(|p| p.1),
                    anomaly: anomaly.is_some(),
                    anomaly_reason: anomaly,
                    change_kind: change_kind.to_string(),
                    file_id: raw.file_id.clone(),
                    line_number: raw.line_number,
                    source: raw.source.clone(),
                };
                batch = batch.emit(
                    outbox_message(&self.codec, VALIDATED_TOPIC, &scheme, &event)
                        .await
                        .map_err(retryable)?,
                );
            }
        }
        Ok(batch)
    }

    /// Maps a commit's answer: a conflict on this record's inbox marker means it was processed
    /// before (a redelivery), which is success.
    fn committed(
        &self,
        event_id: &str,
        result: nivesh_store::Result<Vec<StoredDoc>>,
    ) -> Result<(), HandlerError> {
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_inbox_conflict(&e, GROUP, event_id) => {
                metrics::counter!("nivesh_inbox_duplicates_total", "group" => GROUP).increment(1);
                Ok(())
            }
            Err(e) => Err(retryable(e)),
        }
    }
}

#[async_trait]
impl MessageHandler for Calculator {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let raw = self.decode(msg).await?;
        let scheme = raw.scheme_code.as_str();
        let latest_doc = self
            .store
            .get(STATE, scheme, LATEST)
            .await
            .map_err(retryable)?;
        let day = self
            .store
            .get(STATE, scheme, &day_id(raw.nav_date))
            .await
            .map_err(retryable)?;
        let batch = self.decide(&raw, latest_doc, day).await?;
        let result = self.store.commit(batch).await;
        if result.is_ok() {
            self.outbox_notify.notify_one();
        }
        self.committed(&raw.meta.event_id.to_string(), result)
    }

    fn batched(&self) -> bool {
        true
    }

    /// The same as [`Calculator::handle`] per record, with one multi-get for every scheme's
    /// state and one hand-off of all batches to the store: the records of a round have distinct
    /// keys (schemes), so no record's state depends on another's commit.
    async fn handle_many(&self, msgs: &[InboundMessage]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = Vec::with_capacity(msgs.len());
        let mut raws = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match self.decode(msg).await {
                Ok(raw) => {
                    raws.push((results.len(), raw));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let keys: Vec<(String, String)> = raws
            .iter()
            .flat_map(|(_, raw)| {
                [
                    (raw.scheme_code.clone(), LATEST.to_string()),
                    (raw.scheme_code.clone(), day_id(raw.nav_date)),
                ]
            })
            .collect();
        let mut docs = match self.store.get_many(STATE, &keys).await {
            Ok(docs) => docs.into_iter(),
            Err(e) => {
                for (i, _) in &raws {
                    results[*i] = Err(retryable(&e));
                }
                return results;
            }
        };
        let mut batches = Vec::with_capacity(raws.len());
        let mut pending = Vec::with_capacity(raws.len());
        for (i, raw) in &raws {
            let (latest, day) = (docs.next().flatten(), docs.next().flatten());
            let span = nivesh_bus::trace::consume_span(GROUP, &msgs[*i]);
            match self.decide(raw, latest, day).instrument(span).await {
                Ok(batch) => {
                    batches.push(batch);
                    pending.push((*i, raw.meta.event_id.to_string()));
                }
                Err(e) => results[*i] = Err(e),
            }
        }
        let committed = self.store.commit_many(batches).await;
        if committed.iter().any(Result::is_ok) {
            self.outbox_notify.notify_one();
        }
        for ((i, event_id), result) in pending.into_iter().zip(committed) {
            results[i] = self.committed(&event_id, result);
        }
        results
    }
}
