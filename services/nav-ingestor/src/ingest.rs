//! Turning one uploaded NAV file into raw NAV events, effectively once.
//!
//! A file is identified by its SHA-256: the same bytes delivered again are a duplicate and
//! publish nothing. The file is committed in chunks; each chunk is one transactional batch in the
//! file's partition holding a chunk marker (a `Create`, so a chunk can never be committed twice),
//! the rejected-line records and the chunk's outbox events. A crash mid-file leaves whole chunks
//! only; delivering the file again resumes after the last committed chunk. The outbox relay
//! publishes to `nav.raw-feeds`, keyed by scheme code.
//!
//! Memory stays bounded: the parser streams, and at most two chunks are in flight between the
//! parsing thread and the committing task.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use nivesh_events::{AvroCodec, EventMeta, HEADER_EVENT_ID, HEADER_EVENT_TYPE, RawNavReceived};
use nivesh_store::{Batch, DocumentStore, OutboxMessage, WriteOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};

use crate::parse::{NavRow, NavSource, ParsedLine, RejectedLine, parser_for};

pub(crate) const FILES: &str = "nav_files";
const FILE_DOC: &str = "file";
/// Lines per chunk: a chunk commits as ONE batch (its marker + one outbox record or rejection
/// document per line), and a Cosmos DB transactional batch holds at most 100 operations
/// (`nivesh_store_cosmos::MAX_BATCH_OPERATIONS`); 1,000 made every upload fail on Cosmos with
/// "got 1001" (found by the cosmos-emulator backend, 2026-12-02).
const CHUNK_ROWS: usize = 99;
pub const RAW_TOPIC: &str = "nav.raw-feeds";

/// Lifecycle of an uploaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileStatus {
    /// Chunks are being committed.
    Processing,
    /// Every row is either an event in the outbox or a rejected line with its reason.
    Accepted,
    /// The file could not be read at all (unknown layout, not text).
    Failed,
}

/// The file report (`GET /v1/nav/files/{fileId}`), minus the rejected lines which are stored per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    pub file_id: String,
    pub sha256: String,
    pub source: String,
    pub status: FileStatus,
    pub received_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Data rows seen (every line that is not blank, a header, a section or an AMC line).
    pub rows: u64,
    /// Raw NAV events emitted.
    pub published: u64,
    /// Lines rejected by the parser (each listed with its reason).
    pub rejected: u64,
    /// Times the same bytes were delivered again after the first (each a no-op).
    pub duplicates: u64,
    /// Latest NAV date in the file.
    pub file_date: Option<NaiveDate>,
    pub failure: Option<String>,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    Accepted(FileRecord),
    Duplicate(FileRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the file is not a NAV file we can read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] nivesh_store::Error),
    #[error(transparent)]
    Codec(#[from] nivesh_events::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredRejection {
    pub line_number: u64,
    pub reason_code: String,
    pub reason: String,
    pub raw: String,
}

/// Ingests files into the store + outbox.
#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn DocumentStore>,
    codec: AvroCodec,
    outbox_notify: Arc<Notify>,
    producer: String,
}

struct Chunk {
    index: usize,
    lines: Vec<ParsedLine>,
}

impl Ingestor {
    pub fn new(
        store: Arc<dyn DocumentStore>,
        codec: AvroCodec,
        outbox_notify: Arc<Notify>,
    ) -> Self {
        Ingestor {
            store,
            codec,
            outbox_notify,
            producer: "nav-ingestor".into(),
        }
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    /// Ingest one file's bytes from `source`.
    pub async fn ingest(
        &self,
        source: NavSource,
        bytes: bytes::Bytes,
    ) -> Result<IngestOutcome, IngestError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let file_id = format!("nav-{}", &sha256[..24]);

        if let Some(doc) = self.store.get(FILES, &file_id, FILE_DOC).await? {
            let mut record: FileRecord = from_doc(&doc.body)?;
            if record.status != FileStatus::Processing {
                record.duplicates += 1;
                // A lost race on the duplicate counter only under-counts re-deliveries: harmless.
                let _ = self
                    .store
                    .commit(Batch::new(FILES, &file_id).op(WriteOp::Replace {
                        id: FILE_DOC.into(),
                        body: to_doc(&record),
                        if_match: doc.etag,
                        ttl: None,
                    }))
                    .await;
                return Ok(IngestOutcome::Duplicate(record));
            }
            // Processing: an earlier delivery died mid-file. Resume: committed chunks are skipped.
        } else {
            let record = FileRecord {
                file_id: file_id.clone(),
                sha256: sha256.clone(),
                source: source.to_string(),
                status: FileStatus::Processing,
                received_at: Utc::now(),
                completed_at: None,
                rows: 0,
                published: 0,
                rejected: 0,
                duplicates: 0,
                file_date: None,
                failure: None,
            };
            let create = Batch::new(FILES, &file_id).op(WriteOp::Create {
                id: FILE_DOC.into(),
                body: to_doc(&record),
                ttl: None,
            });
            match self.store.commit(create).await {
                Ok(_) | Err(nivesh_store::Error::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }

        let (tx, mut rx) = mpsc::channel::<Result<Chunk, String>>(2);
        let parse_source = source;
        tokio::task::spawn_blocking(move || parse_in_chunks(parse_source, bytes, tx));

        let mut totals = Totals::default();
        while let Some(chunk) = rx.recv().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(reason) => {
                    self.finish(&file_id, &totals, Some(reason.clone())).await?;
                    return Err(IngestError::Unreadable(reason));
                }
            };
            self.commit_chunk(&file_id, source, chunk, &mut totals)
                .await?;
        }
        let record = self.finish(&file_id, &totals, None).await?;
        Ok(IngestOutcome::Accepted(record))
    }

    async fn commit_chunk(
        &self,
        file_id: &str,
        source: NavSource,
        chunk: Chunk,
        totals: &mut Totals,
    ) -> Result<(), IngestError> {
        let mut batch = Batch::new(FILES, file_id);
        let mut counts = Totals::default();
        for line in &chunk.lines {
            counts.rows += 1;
            match line {
                ParsedLine::Nav(row) => {
                    counts.published += 1;
                    counts.file_date = counts.file_date.max(Some(row.nav_date));
                    batch
                        .outbox
                        .push(self.raw_event(file_id, source, row).await?);
                }
                ParsedLine::Rejected(rej) => {
                    counts.rejected += 1;
                    batch.ops.push(WriteOp::Upsert {
                        id: rejection_id(rej.line_number),
                        body: to_doc(&stored(rej)),
                        ttl: None,
                    });
                }
            }
        }
        let marker = serde_json::json!({ "rows": counts.rows, "published": counts.published, "rejected": counts.rejected });
        batch.ops.insert(
            0,
            WriteOp::Create {
                id: format!("chunk:{:06}", chunk.index),
                body: marker,
                ttl: None,
            },
        );
        match self.store.commit(batch).await {
            Ok(_) => self.outbox_notify.notify_one(),
            // Committed by an earlier, interrupted delivery of the same file: nothing to redo.
            Err(nivesh_store::Error::Conflict { id }) if id.starts_with("chunk:") => {}
            Err(e) => return Err(e.into()),
        }
        totals.add(&counts);
        Ok(())
    }

    async fn raw_event(
        &self,
        file_id: &str,
        source: NavSource,
        row: &NavRow,
    ) -> Result<OutboxMessage, IngestError> {
        let meta = EventMeta::new::<RawNavReceived>(
            &self.producer,
            Some(format!("{file_id}:{}", row.line_number)),
        );
        let event = RawNavReceived {
            file_id: file_id.to_string(),
            source: source.to_string(),
            line_number: row.line_number as i64,
            scheme_code: row.scheme_code.as_str().to_string(),
            isin_growth: row.isin_growth.as_ref().map(|i| i.as_str().to_string()),
            isin_reinvestment: row
                .isin_reinvestment
                .as_ref()
                .map(|i| i.as_str().to_string()),
            scheme_name: row.scheme_name.clone(),
            amc: row.amc.clone(),
            scheme_type: row.scheme_type.clone(),
            category: row.category.clone(),
            nav: row.nav.as_decimal(),
            nav_date: row.nav_date,
            repurchase_price: row.repurchase_price.as_ref().map(|n| n.as_decimal()),
            sale_price: row.sale_price.as_ref().map(|n| n.as_decimal()),
            file_date: None,
            plan: row.plan.clone(),
            option: row.option.clone(),
            meta,
        };
        let payload = self.codec.encode(&event).await?;
        let event_id = event.meta.event_id.to_string();
        let mut headers = vec![
            (
                HEADER_EVENT_TYPE.to_string(),
                RawNavReceived::FULL_NAME.as_bytes().to_vec(),
            ),
            (HEADER_EVENT_ID.to_string(), event_id.as_bytes().to_vec()),
        ];
        nivesh_bus::trace::inject_current(&mut headers);
        Ok(OutboxMessage {
            message_id: event_id,
            topic: RAW_TOPIC.into(),
            key: event.scheme_code,
            payload,
            headers,
        })
    }

    async fn finish(
        &self,
        file_id: &str,
        totals: &Totals,
        failure: Option<String>,
    ) -> Result<FileRecord, IngestError> {
        // Counts come from the chunk markers, so a resumed delivery reports the whole file.
        let chunks = self
            .store
            .query_partition(
                FILES,
                file_id,
                nivesh_store::IdRange {
                    from: Some("chunk:".into()),
                    to: Some("chunk:~".into()),
                    ..Default::default()
                },
            )
            .await?;
        let mut all = Totals::default();
        for c in &chunks {
            all.rows += c.body["rows"].as_u64().unwrap_or(0);
            all.published += c.body["published"].as_u64().unwrap_or(0);
            all.rejected += c.body["rejected"].as_u64().unwrap_or(0);
        }
        all.file_date = totals.file_date;
        loop {
            let doc = self
                .store
                .get(FILES, file_id, FILE_DOC)
                .await?
                .ok_or_else(|| nivesh_store::Error::NotFound {
                    id: FILE_DOC.into(),
                })?;
            let mut record: FileRecord = from_doc(&doc.body)?;
            record.rows = all.rows;
            record.published = all.published;
            record.rejected = all.rejected;
            record.file_date = record.file_date.max(all.file_date);
            record.status = if failure.is_some() {
                FileStatus::Failed
            } else {
                FileStatus::Accepted
            };
            record.failure = failure.clone();
            record.completed_at = Some(Utc::now());
            let replace = WriteOp::Replace {
                id: FILE_DOC.into(),
                body: to_doc(&record),
                if_match: doc.etag,
                ttl: None,
            };
            match self
                .store
                .commit(Batch::new(FILES, file_id).op(replace))
                .await
            {
                Ok(_) => return Ok(record),
                Err(nivesh_store::Error::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The stored report of a file: the record (with validation rejections counted in) and its
    /// rejected lines (parser and validation), up to `limit` lines after line `after`.
    pub(crate) async fn report(
        &self,
        file_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Option<(FileRecord, Vec<StoredRejection>)>, IngestError> {
        let Some(doc) = self.store.get(FILES, file_id, FILE_DOC).await? else {
            return Ok(None);
        };
        let mut record: FileRecord = from_doc(&doc.body)?;
        let validation = self
            .store
            .query_partition(
                FILES,
                file_id,
                nivesh_store::IdRange {
                    from: Some("vrej:".into()),
                    to: Some("vrej:~".into()),
                    ..Default::default()
                },
            )
            .await?;
        record.rejected += validation.len() as u64;
        record.published = record.published.saturating_sub(validation.len() as u64);
        let mut lines: Vec<StoredRejection> = Vec::new();
        for d in &validation {
            lines.push(from_doc(&d.body)?);
        }
        let range = nivesh_store::IdRange {
            from: Some(rejection_id(after.saturating_add(1))),
            to: Some("rej:~".into()),
            limit: Some(limit),
            descending: false,
        };
        for d in self.store.query_partition(FILES, file_id, range).await? {
            lines.push(from_doc(&d.body)?);
        }
        lines.retain(|l| l.line_number > after);
        lines.sort_by_key(|l| l.line_number);
        lines.truncate(limit);
        Ok(Some((record, lines)))
    }
}

#[derive(Default, Clone)]
struct Totals {
    rows: u64,
    published: u64,
    rejected: u64,
    file_date: Option<NaiveDate>,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.rows += o.rows;
        self.published += o.published;
        self.rejected += o.rejected;
        self.file_date = self.file_date.max(o.file_date);
    }
}

fn parse_in_chunks(
    source: NavSource,
    bytes: bytes::Bytes,
    tx: mpsc::Sender<Result<Chunk, String>>,
) {
    let lines = match parser_for(source, &bytes[..]) {
        Ok(it) => it,
        Err(e) => {
            let _ = tx.blocking_send(Err(e.to_string()));
            return;
        }
    };
    let mut chunk = Chunk {
        index: 0,
        lines: Vec::with_capacity(CHUNK_ROWS),
    };
    for line in lines {
        match line {
            Ok(l) => chunk.lines.push(l),
            Err(e) => {
                let _ = tx.blocking_send(Err(e.to_string()));
                return;
            }
        }
        if chunk.lines.len() == CHUNK_ROWS {
            let next = Chunk {
                index: chunk.index + 1,
                lines: Vec::with_capacity(CHUNK_ROWS),
            };
            if tx
                .blocking_send(Ok(std::mem::replace(&mut chunk, next)))
                .is_err()
            {
                return;
            }
        }
    }
    if !chunk.lines.is_empty() {
        let _ = tx.blocking_send(Ok(chunk));
    }
}

fn rejection_id(line: u64) -> String {
    format!("rej:{line:09}")
}

/// Id of a line the parser accepted but validation (nav-calculator) rejected.
pub(crate) fn validation_rejection_id(line: u64) -> String {
    format!("vrej:{line:09}")
}

fn stored(rej: &RejectedLine) -> StoredRejection {
    StoredRejection {
        line_number: rej.line_number,
        reason_code: rej.reason_code.code().to_string(),
        reason: rej.reason.clone(),
        raw: rej.raw.clone(),
    }
}

pub(crate) fn to_doc<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("documents serialize")
}

pub(crate) fn from_doc<T: for<'de> Deserialize<'de>>(
    v: &serde_json::Value,
) -> Result<T, IngestError> {
    serde_json::from_value(v.clone()).map_err(|e| {
        IngestError::Store(nivesh_store::Error::Backend(format!(
            "corrupt document: {e}"
        )))
    })
}
