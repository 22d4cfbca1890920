//! The immutable, hash-chained audit ledger.
//!
//! Storage (container `ledger`, one store partition per ledger partition: an investor id,
//! `scheme-<code>` for NAV events, `access-<tenant>-<subject>` for compliance's own reads):
//!
//! ```text
//! head                         {seq, hash, recorded_at, tenant}: the chain's tip
//! rec:<seq, 12 digits>         the record (see LedgerRecord): the chain itself
//! evt:<event id>               {seq}: dedupe (a second append of an event id conflicts)
//! at:<occurred µs, 20 digits>:<seq>   {seq}: the (partition, occurred_at) index trace reads use
//! ```
//!
//! An append is ONE transactional batch in the partition: Create `evt:` (first, so a duplicate
//! is recognised even when the head also moved), Replace `head` conditional on the ETag read
//! (Create for a new partition), Create `rec:` and `at:`. Two writers of one partition cannot
//! both win: the loser's batch fails on the head's ETag and it recomputes from the new head. Kafka
//! keys (investor id, scheme code) already route one partition's events of one topic to one
//! consumer worker, but events of different topics for the same investor are processed
//! concurrently, and the API appends access records; the ETag on the head is what serializes
//! them, so the chain never forks.
//!
//! hash = SHA-256(prev_hash || canonical record), both as lower-case hex text, where the
//! canonical record is the canonical JSON (crate::canonical) of every record field except
//! `hash`. The first record's prev_hash is 64 zeros. Every document carries a TTL of
//! `retention` (7 years by default); a record whose predecessors expired is verified from
//! itself, and only if its predecessor was recorded more than `retention` ago.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use nivesh_events::IST;
use nivesh_store::{Batch, DocumentStore, Error as StoreError, IdRange, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::canonical::{canonical_json, sha256_hex};

/// Container of the ledger.
pub const LEDGER: &str = "ledger";
const HEAD: &str = "head";
/// prev_hash of the first record of a partition.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How often an append that lost the head race recomputes before giving up (the consumer
/// retries the message later).
const MAX_APPEND_ATTEMPTS: usize = 64;
const PAGE: usize = 2000;

/// The record id of sequence number `seq`.
pub fn record_id(seq: u64) -> String {
    format!("rec:{seq:012}")
}

fn index_id(occurred_at: DateTime<Utc>, seq: u64) -> String {
    format!("at:{:020}:{seq:012}", micros(occurred_at))
}

fn micros(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_micros()).unwrap_or(0)
}

/// The tip of a partition's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub kind: String,
    pub partition: String,
    pub seq: u64,
    pub hash: String,
    pub recorded_at: String,
    /// The tenant whose data this partition is; `None` for shared data (NAVs).
    pub tenant: Option<String>,
    /// Whether `tenant` came from an event that states it (identity events) rather than the
    /// default; a stated tenant replaces a defaulted one.
    #[serde(default)]
    pub tenant_stated: bool,
}

/// One ledger record as stored (and as the trace returns it, payload revealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub partition: String,
    /// 1, 2, 3... within the partition.
    pub seq: u64,
    pub event_id: String,
    pub event_type: String,
    /// W3C trace id of the event (from its `traceparent` header), if it had one.
    pub trace_id: Option<String>,
    /// Who caused it: the producing service of an event, the token subject of an API access.
    pub actor: String,
    /// When it happened (RFC 3339, IST).
    pub occurred_at: String,
    /// When the ledger recorded it (RFC 3339, IST).
    pub recorded_at: String,
    /// `recorded_at` of the previous record (None for the first).
    pub prev_recorded_at: Option<String>,
    /// Canonical payload; PII fields of investor partitions encrypted.
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl LedgerRecord {
    /// The canonical text the hash covers: every field except `hash`.
    pub fn canonical(&self) -> String {
        canonical_json(&json!({
            "partition": self.partition,
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "trace_id": self.trace_id,
            "actor": self.actor,
            "occurred_at": self.occurred_at,
            "recorded_at": self.recorded_at,
            "prev_recorded_at": self.prev_recorded_at,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }))
    }

    /// SHA-256(prev_hash || canonical record), hex.
    pub fn compute_hash(&self) -> String {
        let mut bytes = self.prev_hash.clone().into_bytes();
        bytes.extend_from_slice(self.canonical().as_bytes());
        sha256_hex(&bytes)
    }

    /// `occurred_at` as an instant (records are written by us, so it always parses).
    pub fn occurred(&self) -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_rfc3339(&self.occurred_at).ok()
    }
}

/// What to append.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub partition: String,
    /// The tenant this partition belongs to, and whether the source stated it.
    pub tenant: Option<String>,
    pub tenant_stated: bool,
    pub event_id: String,
    pub event_type: String,
    pub trace_id: Option<String>,
    pub actor: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: Value,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    New(u64),
    /// The event id was already in the partition at this sequence number.
    Duplicate,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub partition: String,
    pub ok: bool,
    /// Records walked.
    pub records: u64,
    /// First sequence number verified (1 unless earlier records expired by retention).
    pub verified_from: Option<u64>,
    pub last_sequence: Option<u64>,
    /// The first record that does not verify.
    pub broken_at: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the head of partition {0} kept moving; try again")]
    Contended(String),
    #[error("stored ledger document {0} is unreadable")]
    Corrupt(String),
}

/// The ledger over the service's store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn DocumentStore>,
    retention: Duration,
}

fn ist(t: DateTime<Utc>) -> String {
    t.with_timezone(&IST).to_rfc3339()
}

impl Ledger {
    pub fn new(store: Arc<dyn DocumentStore>, retention: Duration) -> Self {
        Ledger { store, retention }
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    /// The head of a partition, if it has any record.
    pub async fn head(&self, partition: &str) -> Result<Option<Head>, LedgerError> {
        let Some(doc) = self.store.get(LEDGER, partition, HEAD).await? else {
            return Ok(None);
        };
        serde_json::from_value(doc.body)
            .map(Some)
            .map_err(|_| LedgerError::Corrupt(format!("{partition}/{HEAD}")))
    }

    /// The sequence number an event id was appended at, if it was.
    pub async fn seq_of_event(
        &self,
        partition: &str,
        event_id: &str,
    ) -> Result<Option<u64>, LedgerError> {
        let doc = self
            .store
            .get(LEDGER, partition, &format!("evt:{event_id}"))
            .await?;
        Ok(doc.and_then(|d| d.body["seq"].as_u64()))
    }

    /// Append `new` to its partition's chain (once per event id), serialized by the head's ETag.
    pub async fn append(&self, new: &NewRecord) -> Result<Appended, LedgerError> {
        let ttl = Some(self.retention);
        let dedupe_id = format!("evt:{}", new.event_id);
        for attempt in 0..MAX_APPEND_ATTEMPTS {
            let head_doc = self.store.get(LEDGER, &new.partition, HEAD).await?;
            let (head, etag) = match head_doc {
                Some(doc) => {
                    let head: Head = serde_json::from_value(doc.body)
                        .map_err(|_| LedgerError::Corrupt(format!("{}/{HEAD}", new.partition)))?;
                    (Some(head), Some(doc.etag))
                }
                None => (None, None),
            };
            let now = Utc::now();
            let seq = head.as_ref().map_or(1, |h| h.seq + 1);
            let mut record = LedgerRecord {
                partition: new.partition.clone(),
                seq,
                event_id: new.event_id.clone(),
                event_type: new.event_type.clone(),
                trace_id: new.trace_id.clone(),
                actor: new.actor.clone(),
                occurred_at: ist(new.occurred_at),
                recorded_at: ist(now),
                prev_recorded_at: head.as_ref().map(|h| h.recorded_at.clone()),
                payload: new.payload.clone(),
                prev_hash: head
                    .as_ref()
                    .map_or_else(|| GENESIS.to_string(), |h| h.hash.clone()),
                hash: String::new(),
            };
            record.hash = record.compute_hash();
            let (tenant, tenant_stated) = match &head {
                Some(h) if h.tenant_stated || !new.tenant_stated => {
                    (h.tenant.clone(), h.tenant_stated)
                }
                _ => (new.tenant.clone(), new.tenant_stated),
            };
            let new_head = Head {
                kind: "ledger-head".into(),
                partition: new.partition.clone(),
                seq,
                hash: record.hash.clone(),
                recorded_at: record.recorded_at.clone(),
                tenant,
                tenant_stated,
            };
            let head_body = serde_json::to_value(&new_head).expect("a head serializes");
            let head_op = match etag {
                Some(etag) => WriteOp::Replace {
                    id: HEAD.into(),
                    body: head_body,
                    if_match: etag,
                    ttl,
                },
                None => WriteOp::Create {
                    id: HEAD.into(),
                    body: head_body,
                    ttl,
                },
            };
            let batch = Batch::new(LEDGER, &new.partition)
                .op(WriteOp::Create {
                    id: dedupe_id.clone(),
                    body: json!({"kind": "ledger-event", "seq": seq}),
                    ttl,
                })
                .op(head_op)
                .op(WriteOp::Create {
                    id: record_id(seq),
                    body: serde_json::to_value(&record).expect("a record serializes"),
                    ttl,
                })
                .op(WriteOp::Create {
                    id: index_id(new.occurred_at, seq),
                    body: json!({"kind": "ledger-index", "seq": seq}),
                    ttl,
                });
            match self.store.commit(batch).await {
                Ok(_) => {
                    metrics::counter!("nivesh_compliance_ledger_appends_total").increment(1);
                    return Ok(Appended::New(seq));
                }
                Err(StoreError::Conflict { id }) if id == dedupe_id => {
                    return Ok(Appended::Duplicate);
                }
                Err(StoreError::Conflict { .. } | StoreError::PreconditionFailed { .. }) => {
                    // Lost the head race: back off a little (jittered) and recompute.
                    let ms = 1 + rand::random::<u64>() % (2 + attempt as u64).min(20);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(LedgerError::Contended(new.partition.clone()))
    }

    /// Records `from_seq..=to_seq` of a partition, in sequence order (unparseable documents are
    /// returned as `Err(seq)`).
    async fn records_page(
        &self,
        partition: &str,
        from_seq: u64,
        to_seq: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<(u64, Result<LedgerRecord, String>)>, LedgerError> {
        let docs = self
            .store
            .query_partition(
                LEDGER,
                partition,
                IdRange {
                    from: Some(record_id(from_seq)),
                    to: Some(to_seq.map_or_else(|| "rec:~".to_string(), record_id)),
                    limit,
                    descending: false,
                },
            )
            .await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| {
                let seq: u64 = d.id.strip_prefix("rec:")?.parse().ok()?;
                let rec = serde_json::from_value::<LedgerRecord>(d.body)
                    .map_err(|e| format!("record document is unreadable: {e}"));
                Some((seq, rec))
            })
            .collect())
    }

    /// Walk the chain of `partition` and report the first record that does not verify.
    pub async fn verify(&self, partition: &str) -> Result<VerifyReport, LedgerError> {
        let mut report = VerifyReport {
            partition: partition.to_string(),
            ok: true,
            records: 0,
            verified_from: None,
            last_sequence: None,
            broken_at: None,
            reason: None,
        };
        // The head is read first and the walk stops at its sequence number: records appended
        // after that read (the ledger keeps consuming while an officer verifies) belong to a
        // later verification, not to a break. Records found beyond the head are re-checked
        // against a fresh head below, so a forged record appended without one is still caught.
        let head = self.head(partition).await?;
        let limit = head.as_ref().map_or(0, |h| h.seq);
        let mut beyond: Option<u64> = None;
        let mut prev: Option<LedgerRecord> = None;
        let mut next_from = 1;
        let broken = |report: &mut VerifyReport, seq: u64, reason: String| {
            report.ok = false;
            report.broken_at = Some(seq);
            report.reason = Some(reason);
        };
        'pages: loop {
            let page = self
                .records_page(partition, next_from, None, Some(PAGE))
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            next_from = last + 1;
            let full = page.len() == PAGE;
            for (seq, rec) in page {
                if seq > limit {
                    beyond = Some(seq);
                    break 'pages;
                }
                let rec = match rec {
                    Ok(r) => r,
                    Err(reason) => {
                        broken(&mut report, seq, reason);
                        break 'pages;
                    }
                };
                report.records += 1;
                if let Some(reason) = self.check(seq, &rec, prev.as_ref()) {
                    broken(&mut report, seq, reason);
                    break 'pages;
                }
                if report.verified_from.is_none() {
                    report.verified_from = Some(seq);
                }
                report.last_sequence = Some(seq);
                prev = Some(rec);
            }
            if !full {
                break;
            }
        }
        if report.ok
            && let Some(seq) = beyond
        {
            match self.head(partition).await? {
                // Appended since the first read: nothing wrong with the part verified.
                Some(now) if now.seq >= seq => {}
                Some(now) => broken(
                    &mut report,
                    seq,
                    format!(
                        "record {seq} is stored beyond the head ({}): it was not appended through the ledger",
                        now.seq
                    ),
                ),
                None => broken(
                    &mut report,
                    seq,
                    "records exist but the partition has no head".into(),
                ),
            }
        }
        if report.ok {
            match (&head, &prev) {
                (Some(h), Some(last)) if h.seq != last.seq || h.hash != last.hash => broken(
                    &mut report,
                    last.seq + 1,
                    format!(
                        "the chain ends at record {} but the head says {}: records after {} are missing",
                        last.seq, h.seq, last.seq
                    ),
                ),
                (Some(h), None) => broken(
                    &mut report,
                    1,
                    format!("the head says {} records but none is stored", h.seq),
                ),
                // (None, Some(_)) cannot happen: without a head nothing is walked, and stored
                // records are judged against a fresh head above.
                _ => {}
            }
        }
        Ok(report)
    }

    /// Why `rec` (stored under `seq`) does not follow `prev`, if it does not.
    fn check(&self, seq: u64, rec: &LedgerRecord, prev: Option<&LedgerRecord>) -> Option<String> {
        if rec.seq != seq {
            return Some(format!(
                "record stored as {seq} claims sequence number {}",
                rec.seq
            ));
        }
        let recomputed = rec.compute_hash();
        if recomputed != rec.hash {
            return Some(format!(
                "hash mismatch: the record's content does not match its hash (stored {}, computed {recomputed})",
                rec.hash
            ));
        }
        match prev {
            Some(p) if p.seq + 1 != seq => {
                Some(format!("records {} to {} are missing", p.seq + 1, seq - 1))
            }
            Some(p) if p.hash != rec.prev_hash => Some(format!(
                "prev_hash does not match the hash of record {}",
                p.seq
            )),
            Some(_) => None,
            None if seq == 1 && rec.prev_hash != GENESIS => {
                Some("the first record does not start from the genesis hash".into())
            }
            None if seq == 1 => None,
            None => {
                // Earlier records are gone: only legitimate when retention expired them.
                let expired = rec
                    .prev_recorded_at
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| {
                        let age = Utc::now().signed_duration_since(t);
                        age.to_std().is_ok_and(|age| age >= self.retention)
                    });
                (!expired).then(|| {
                    format!(
                        "records 1 to {} are missing (not expired by retention)",
                        seq - 1
                    )
                })
            }
        }
    }

    /// Every record of `partition` that occurred within `[from, to]`, ordered by (occurred_at,
    /// seq). Two range reads: the `at:` index for the window, then the records spanning the
    /// sequence numbers it names.
    pub async fn between(
        &self,
        partition: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LedgerRecord>, LedgerError> {
        let index = self
            .store
            .query_partition(
                LEDGER,
                partition,
                IdRange {
                    from: Some(format!("at:{:020}:", micros(from))),
                    to: Some(format!("at:{:020}:~", micros(to))),
                    limit: None,
                    descending: false,
                },
            )
            .await?;
        let seqs: BTreeSet<u64> = index
            .iter()
            .filter_map(|d| d.body["seq"].as_u64())
            .collect();
        let (Some(&lo), Some(&hi)) = (seqs.first(), seqs.last()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(seqs.len());
        for (seq, rec) in self.records_page(partition, lo, Some(hi), None).await? {
            if seqs.contains(&seq) {
                out.push(rec.map_err(|_| {
                    LedgerError::Corrupt(format!("{partition}/{}", record_id(seq)))
                })?);
            }
        }
        out.sort_by_key(|r| (r.occurred(), r.seq));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_store::EmbeddedStore;

    fn new(partition: &str, event_id: &str, at: i64) -> NewRecord {
        NewRecord {
            partition: partition.into(),
            tenant: Some("nivesh".into()),
            tenant_stated: false,
            event_id: event_id.into(),
            event_type: "nivesh.test.Thing".into(),
            trace_id: None,
            actor: "test".into(),
            occurred_at: DateTime::from_timestamp(at, 0).unwrap(),
            payload: json!({"n": event_id}),
        }
    }

    /// Appends chain, dedupe by event id, concurrent appends never fork the chain, and the time
    /// window reads the right records.
    #[tokio::test]
    async fn append_verify_and_window() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn DocumentStore> =
            Arc::new(EmbeddedStore::open(tmp.path().join("s.sqlite")).unwrap());
        let ledger = Ledger::new(store, Duration::from_secs(3600));
        assert_eq!(
            ledger.append(&new("P", "e1", 100)).await.unwrap(),
            Appended::New(1)
        );
        assert_eq!(
            ledger.append(&new("P", "e1", 100)).await.unwrap(),
            Appended::Duplicate
        );
        let mut tasks = Vec::new();
        for i in 0..20 {
            let l = ledger.clone();
            tasks.push(tokio::spawn(async move {
                l.append(&new("P", &format!("c{i}"), 200 + i))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Appended::New(_)));
        }
        let report = ledger.verify("P").await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, 21);
        assert_eq!(report.last_sequence, Some(21));
        let window = ledger
            .between(
                "P",
                DateTime::from_timestamp(205, 0).unwrap(),
                DateTime::from_timestamp(209, 0).unwrap(),
            )
            .await
            .unwrap();
        let ids: Vec<&str> = window.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["c5", "c6", "c7", "c8", "c9"]);
    }

    /// A record removed from the middle or the end, or re-hashed after an edit, is reported at
    /// the right sequence number.
    #[tokio::test]
    async fn verify_reports_gaps_truncation_and_rehashed_edits() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn DocumentStore> =
            Arc::new(EmbeddedStore::open(tmp.path().join("s.sqlite")).unwrap());
        let ledger = Ledger::new(store.clone(), Duration::from_secs(3600));
        for p in ["gap", "tail", "rehash", "forged"] {
            for i in 1..=5 {
                ledger.append(&new(p, &format!("{p}{i}"), i)).await.unwrap();
            }
        }
        let delete = |p: &'static str, seq: u64| {
            let store = store.clone();
            async move {
                store
                    .commit(Batch::new(LEDGER, p).op(WriteOp::Delete {
                        id: record_id(seq),
                        if_match: None,
                    }))
                    .await
                    .unwrap();
            }
        };
        delete("gap", 3).await;
        let r = ledger.verify("gap").await.unwrap();
        assert_eq!((r.ok, r.broken_at), (false, Some(4)), "{r:?}");
        assert!(r.reason.unwrap().contains("missing"));

        delete("tail", 5).await;
        let r = ledger.verify("tail").await.unwrap();
        assert_eq!((r.ok, r.broken_at), (false, Some(5)), "{r:?}");

        // Edit record 2 AND recompute its hash: record 3's prev_hash no longer matches.
        let doc = store
            .get(LEDGER, "rehash", &record_id(2))
            .await
            .unwrap()
            .unwrap();
        let mut rec: LedgerRecord = serde_json::from_value(doc.body).unwrap();
        rec.payload = json!({"n": "forged"});
        rec.hash = rec.compute_hash();
        store
            .commit(Batch::new(LEDGER, "rehash").op(WriteOp::Upsert {
                id: record_id(2),
                body: serde_json::to_value(&rec).unwrap(),
                ttl: None,
            }))
            .await
            .unwrap();
        let r = ledger.verify("rehash").await.unwrap();
        assert_eq!((r.ok, r.broken_at), (false, Some(3)), "{r:?}");
        assert!(r.reason.unwrap().contains("prev_hash"));

        // A well-formed record 6 written beside the ledger (the head still says 5): the walk
        // stops at the head, and the re-check against a fresh head reports it.
        let doc = store
            .get(LEDGER, "forged", &record_id(5))
            .await
            .unwrap()
            .unwrap();
        let last: LedgerRecord = serde_json::from_value(doc.body).unwrap();
        let mut extra = last.clone();
        extra.seq = 6;
        extra.prev_hash = last.hash.clone();
        extra.event_id = "forged6".into();
        extra.hash = extra.compute_hash();
        store
            .commit(Batch::new(LEDGER, "forged").op(WriteOp::Upsert {
                id: record_id(6),
                body: serde_json::to_value(&extra).unwrap(),
                ttl: None,
            }))
            .await
            .unwrap();
        let r = ledger.verify("forged").await.unwrap();
        assert_eq!((r.ok, r.broken_at), (false, Some(6)), "{r:?}");
        assert!(r.reason.unwrap().contains("beyond the head"));
    }
}
