//! The storage ports every service uses. Callers see only these types, so the embedded store,
//! Redis and (later) Cosmos DB adapters are interchangeable by configuration.
//!
//! The shapes follow Cosmos DB for NoSQL on purpose, because it is the strictest backend:
//! a document lives in a *container* under a *partition key*; a transactional write is
//! limited to one logical partition; concurrency is optimistic through ETags; expiry is a TTL
//! per document; the change feed is read with a continuation the caller keeps.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::Result;

/// Opaque version tag of a stored document; changes on every write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ETag(pub String);

/// A document as stored: its address, body, version and (optional) remaining time to live.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub container: String,
    pub partition_key: String,
    pub id: String,
    pub body: Value,
    pub etag: ETag,
    /// Position in the container's change feed (monotonic per container).
    pub sequence: u64,
}

/// One write inside a [`Batch`]. Every op in a batch targets the batch's container and partition.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Fails the whole batch with [`crate::Error::Conflict`] when the id exists. Used for inbox
    /// markers (dedupe) and for unique business keys.
    Create {
        id: String,
        body: Value,
        ttl: Option<Duration>,
    },
    /// Insert or overwrite, unconditionally.
    Upsert {
        id: String,
        body: Value,
        ttl: Option<Duration>,
    },
    /// Overwrite only if the stored ETag matches; otherwise [`crate::Error::PreconditionFailed`].
    Replace {
        id: String,
        body: Value,
        if_match: ETag,
        ttl: Option<Duration>,
    },
    /// Delete, optionally only if the ETag matches. Deleting a missing id is `NotFound`.
    Delete { id: String, if_match: Option<ETag> },
}

impl WriteOp {
    pub fn id(&self) -> &str {
        match self {
            WriteOp::Create { id, .. }
            | WriteOp::Upsert { id, .. }
            | WriteOp::Replace { id, .. }
            | WriteOp::Delete { id, .. } => id,
        }
    }
}

/// A message to publish once the batch commits (transactional outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Globally unique; consumers dedupe on it. Equal to the event id inside the payload.
    pub message_id: String,
    pub topic: String,
    pub key: String,
    /// Already-encoded event bytes (Avro single-object or Confluent framing).
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// All-or-nothing write of documents in one partition plus the events they cause.
#[derive(Debug, Clone)]
pub struct Batch {
    pub container: String,
    pub partition_key: String,
    pub ops: Vec<WriteOp>,
    pub outbox: Vec<OutboxMessage>,
}

impl Batch {
    pub fn new(container: impl Into<String>, partition_key: impl Into<String>) -> Self {
        Batch {
            container: container.into(),
            partition_key: partition_key.into(),
            ops: Vec::new(),
            outbox: Vec::new(),
        }
    }
    pub fn op(mut self, op: WriteOp) -> Self {
        self.ops.push(op);
        self
    }
    pub fn emit(mut self, msg: OutboxMessage) -> Self {
        self.outbox.push(msg);
        self
    }
}

/// Bounds for a range query over document ids within one partition (ids compare as strings,
/// so callers use sortable ids such as `2025-02-25` or zero-padded sequence numbers).
#[derive(Debug, Clone, Default)]
pub struct IdRange {
    /// Inclusive lower bound.
    pub from: Option<String>,
    /// Inclusive upper bound.
    pub to: Option<String>,
    pub limit: Option<usize>,
    /// Newest (largest id) first.
    pub descending: bool,
}

/// Where a change-feed reader is; opaque to callers, persisted by them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Continuation(pub String);

/// An outbox record waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOutbox {
    /// Store-assigned, increasing in commit order.
    pub seq: u64,
    pub message: OutboxMessage,
}

/// Requests [`DocumentStore::get_many`]'s default keeps in flight (a remote backend's round
/// trips overlap; more only queues at the backend).
const GET_MANY_CONCURRENCY: usize = 16;
/// Batches [`DocumentStore::commit_many`]'s default keeps in flight.
const COMMIT_MANY_CONCURRENCY: usize = 32;

/// Documents, transactional batches with outbox, range queries and the change feed.
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    async fn get(
        &self,
        container: &str,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDoc>>;

    /// Commit a batch atomically. Returns the stored docs for every non-delete op, in op order.
    async fn commit(&self, batch: Batch) -> Result<Vec<StoredDoc>>;

    /// Point reads of several documents of one container, each addressed by (partition key,
    /// id); the answers come in request order. For a consumer handling a batch of records: one
    /// call instead of one round trip per record. The default reads a few at a time through
    /// [`DocumentStore::get`]; a backend that can do better (one read transaction) overrides it.
    async fn get_many(
        &self,
        container: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<StoredDoc>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_MANY_CONCURRENCY) {
            // A plain loop rather than an iterator adapter: async-trait futures borrowing from
            // a closure argument trip the compiler's higher-ranked lifetime check.
            let mut reads = Vec::with_capacity(chunk.len());
            for (pk, id) in chunk {
                reads.push(self.get(container, pk, id));
            }
            for doc in futures::future::join_all(reads).await {
                out.push(doc?);
            }
        }
        Ok(out)
    }

    /// Commit several independent batches. Each is atomic on its own, exactly as if passed to
    /// [`DocumentStore::commit`], and each gets its own answer (in order): a conflict in one
    /// never undoes another. Nothing is promised across batches (Cosmos DB has no
    /// cross-partition transaction). The default commits them concurrently; the embedded store
    /// hands them to its writer as one job.
    async fn commit_many(&self, batches: Vec<Batch>) -> Vec<Result<Vec<StoredDoc>>> {
        let mut out = Vec::with_capacity(batches.len());
        let mut batches = batches.into_iter().peekable();
        while batches.peek().is_some() {
            let mut commits = Vec::with_capacity(COMMIT_MANY_CONCURRENCY);
            for batch in batches.by_ref().take(COMMIT_MANY_CONCURRENCY) {
                commits.push(self.commit(batch));
            }
            out.extend(futures::future::join_all(commits).await);
        }
        out
    }

    /// Documents of one partition whose ids fall in `range`, ordered by id.
    async fn query_partition(
        &self,
        container: &str,
        partition_key: &str,
        range: IdRange,
    ) -> Result<Vec<StoredDoc>>;

    /// Documents of the whole container changed after `from` (oldest first), at most `max`,
    /// with the continuation to pass next time. Latest version of each document only.
    async fn change_feed(
        &self,
        container: &str,
        from: &Continuation,
        max: usize,
    ) -> Result<(Vec<StoredDoc>, Continuation)>;

    /// Unpublished outbox records in commit order, at most `max`.
    async fn outbox_pending(&self, max: usize) -> Result<Vec<PendingOutbox>>;

    /// Mark records as published (idempotent).
    async fn outbox_ack(&self, seqs: &[u64]) -> Result<()>;

    /// Cheap reachability check for readiness.
    async fn ping(&self) -> Result<()>;
}

/// Fast, lossy state: caches, idempotency records, rate-limit buckets. Never the system of record.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;
    /// Set only if absent; true when this call set it.
    async fn set_nx(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool>;
    /// Pipelined bulk set.
    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()>;
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
    async fn delete(&self, key: &str) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    /// Human name for readiness reports ("redis", "in-memory").
    fn kind(&self) -> &'static str;
}
