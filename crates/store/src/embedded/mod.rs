//! [`EmbeddedStore`]: the [`DocumentStore`] port on SQLite, for local runs and tests.
//!
//! Shape:
//! - **Writes** go to ONE writer thread that owns the only write connection, through a bounded
//!   queue (callers feel backpressure instead of growing memory). It drains whatever is queued
//!   and commits it in one transaction, each batch inside its own SAVEPOINT (see `writer`).
//! - **Reads** run on a small pool of read connections via `spawn_blocking`; WAL lets them read
//!   the last committed state while the writer works. A semaphore bounds how many run at once.
//! - **Tables**: `documents` (PK container/partition/id, `seq` from a store-wide counter so the
//!   change-feed continuation is just a seq; index on (container, seq)), `outbox` (AUTOINCREMENT
//!   seq = publish order, UNIQUE message_id = re-emit dedupe) and `meta` (the seq counter).
//! - **TTL**: `expires_at` in epoch ms; an expired doc is invisible to every read and treated as
//!   absent by every write; the writer purges such rows (and published outbox rows older than
//!   `outbox_retention`) in bounded steps every `purge_interval` of activity.
//!
//! Durability promise: WAL + `synchronous=NORMAL`, so a batch whose commit returned `Ok`
//! survives a SIGKILL of the process (the crash model we promise locally). A power loss or OS
//! crash may lose the last few milliseconds of commits; production uses Cosmos DB, not this.
//!
//! One process per file is the intended use, but nothing breaks with more: the seq counter is
//! read and written inside each write transaction and SQLite's file lock serialises writers.

mod rows;
mod schema;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ToSql};
use tokio::sync::{Semaphore, mpsc, oneshot};

use self::rows::{DOC_COLUMNS, LIVE, RawDoc, RawPending, limit, now_ms, sqlite_error};
use self::schema::Location;
use self::writer::Job;
use crate::{Batch, Continuation, DocumentStore, Error, IdRange, PendingOutbox, Result, StoredDoc};

/// Tuning for [`EmbeddedStore`]. `Default` suits a service process on a small machine.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Batches (and acks) that may wait for the writer before `commit` callers wait to enqueue.
    pub queue_capacity: usize,
    /// Most jobs committed in one transaction; bounds the latency a group adds to its first job.
    pub max_group: usize,
    /// Read connections (and concurrent read queries).
    pub readers: usize,
    /// How long a connection waits for a lock held by another process before `Unavailable`.
    pub busy_timeout: Duration,
    /// Minimum time between purges of expired documents / old published outbox rows.
    pub purge_interval: Duration,
    /// Rows deleted per table per purge step.
    pub purge_limit: usize,
    /// How long published outbox rows are kept. Also the dedupe window for re-emitted message
    /// ids: once a published row is purged, the same message_id can be emitted again.
    pub outbox_retention: Duration,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            queue_capacity: 4096,
            max_group: 512,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            purge_interval: Duration::from_secs(30),
            purge_limit: 2000,
            outbox_retention: Duration::from_secs(3600),
        }
    }
}

impl EmbeddedConfig {
    fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("queue_capacity", self.queue_capacity),
            ("max_group", self.max_group),
            ("readers", self.readers),
            ("purge_limit", self.purge_limit),
        ] {
            if value == 0 {
                return Err(Error::Invalid(format!(
                    "EmbeddedConfig::{name} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// SQLite-backed [`DocumentStore`]. Cheap to clone (all clones share one writer and one pool).
/// Dropping the last clone lets the writer finish what is queued, then joins it.
#[derive(Clone)]
pub struct EmbeddedStore {
    // Field order matters: `jobs` (the only senders) must drop before `shared`, whose drop
    // joins the writer thread, which exits only once every sender is gone.
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    location: Location,
    busy_timeout: Duration,
    idle_readers: Mutex<Vec<Connection>>,
    read_permits: Arc<Semaphore>,
    /// Held only to be dropped: joining the writer when the last handle goes.
    _writer: WriterThread,
}

struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        let Some(handle) = self.0.take() else { return };
        if handle.join().is_err() {
            tracing::error!("embedded store writer thread panicked");
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("location", &self.shared.location.describe())
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open (creating directories, file and schema as needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, EmbeddedConfig::default())
    }

    pub fn open_with(path: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        Self::start(Location::File(path.to_path_buf()), config)
    }

    /// A private in-memory store (for tests): same code paths as a file, gone when dropped.
    pub fn in_memory() -> Result<Self> {
        Self::in_memory_with(EmbeddedConfig::default())
    }

    pub fn in_memory_with(config: EmbeddedConfig) -> Result<Self> {
        Self::start(
            Location::Memory(format!("nivesh-{}", uuid::Uuid::new_v4().simple())),
            config,
        )
    }

    fn start(location: Location, config: EmbeddedConfig) -> Result<Self> {
        config.validate()?;
        let conn = schema::open_writer(&location, config.busy_timeout)?;
        // Open one reader now: a location readers cannot use should fail here, not on first read.
        let first_reader = schema::open_reader(&location, config.busy_timeout)?;
        let (jobs, queue) = mpsc::channel(config.queue_capacity);
        let settings = writer::Settings {
            max_group: config.max_group,
            purge_interval: config.purge_interval,
            purge_limit: config.purge_limit,
            outbox_retention: config.outbox_retention,
        };
        let handle = std::thread::Builder::new()
            .name("nivesh-store-writer".into())
            .spawn(move || writer::run(conn, queue, settings))
            .map_err(|e| Error::Backend(format!("cannot start writer thread: {e}")))?;
        Ok(EmbeddedStore {
            jobs,
            shared: Arc::new(Shared {
                location,
                busy_timeout: config.busy_timeout,
                idle_readers: Mutex::new(vec![first_reader]),
                read_permits: Arc::new(Semaphore::new(config.readers)),
                _writer: WriterThread(Some(handle)),
            }),
        })
    }

    async fn submit<T>(&self, job: Job, answer: oneshot::Receiver<Result<T>>) -> Result<T> {
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Run `read` on a pooled read connection on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.shared.read_permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("reader pool closed".into()))?;
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = shared
                .idle_readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => schema::open_reader(&shared.location, shared.busy_timeout)?,
            };
            let result = read(&conn);
            // Permits bound the pool: at most `readers` connections exist, all returned here.
            shared
                .idle_readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            result
        })
        .await
        .map_err(|e| Error::Backend(format!("read task failed: {e}")))?
    }
}

fn writer_gone() -> Error {
    Error::Unavailable("embedded store writer has stopped".into())
}

fn collect_docs(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[(&str, &dyn ToSql)],
) -> Result<Vec<StoredDoc>> {
    let raw = stmt
        .query_map(params, RawDoc::from_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sqlite_error)?;
    raw.into_iter().map(RawDoc::into_doc).collect()
}

fn parse_continuation(from: &Continuation) -> Result<i64> {
    if from.0.is_empty() {
        return Ok(0);
    }
    from.0
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| Error::Invalid(format!("not an embedded-store continuation: {:?}", from.0)))
}

#[async_trait]
impl DocumentStore for EmbeddedStore {
    async fn get(
        &self,
        container: &str,
        partition_key: &str,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        let (container, partition_key, id) = (
            container.to_string(),
            partition_key.to_string(),
            id.to_string(),
        );
        self.read(move |conn| {
            let sql = format!(
                "SELECT {DOC_COLUMNS} FROM documents
                 WHERE container = :container AND partition_key = :pk AND id = :id AND {LIVE}"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
            let now = now_ms();
            let docs = collect_docs(
                &mut stmt,
                &[
                    (":container", &container),
                    (":pk", &partition_key),
                    (":id", &id),
                    (":now", &now),
                ],
            )?;
            Ok(docs.into_iter().next())
        })
        .await
    }

    async fn commit(&self, batch: Batch) -> Result<Vec<StoredDoc>> {
        if batch.ops.is_empty() && batch.outbox.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Commit { batch, reply }, answer).await
    }

    /// One read transaction (one `spawn_blocking` hop, one pooled connection) for all keys.
    async fn get_many(
        &self,
        container: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<StoredDoc>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (container, keys) = (container.to_string(), keys.to_vec());
        self.read(move |conn| {
            let sql = format!(
                "SELECT {DOC_COLUMNS} FROM documents
                 WHERE container = :container AND partition_key = :pk AND id = :id AND {LIVE}"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
            let now = now_ms();
            // A deferred transaction: every key is read from the same snapshot.
            conn.execute_batch("BEGIN").map_err(sqlite_error)?;
            let docs = keys
                .iter()
                .map(|(pk, id)| {
                    let found = collect_docs(
                        &mut stmt,
                        &[
                            (":container", &container),
                            (":pk", pk),
                            (":id", id),
                            (":now", &now),
                        ],
                    )?;
                    Ok(found.into_iter().next())
                })
                .collect::<Result<Vec<_>>>();
            conn.execute_batch("COMMIT").map_err(sqlite_error)?;
            docs
        })
        .await
    }

    /// All batches go to the writer as ONE job: one queue slot, one wake-up, one answer.
    async fn commit_many(&self, batches: Vec<Batch>) -> Vec<Result<Vec<StoredDoc>>> {
        let n = batches.len();
        if n == 0 {
            return Vec::new();
        }
        let (reply, answer) = oneshot::channel();
        let sent = self.jobs.send(Job::CommitMany { batches, reply }).await;
        let results = match sent {
            Ok(()) => answer.await.map_err(|_| writer_gone()),
            Err(_) => Err(writer_gone()),
        };
        results.unwrap_or_else(|e| (0..n).map(|_| Err(e.clone())).collect())
    }

    async fn query_partition(
        &self,
        container: &str,
        partition_key: &str,
        range: IdRange,
    ) -> Result<Vec<StoredDoc>> {
        if range.limit == Some(0) {
            return Ok(Vec::new());
        }
        let (container, partition_key) = (container.to_string(), partition_key.to_string());
        self.read(move |conn| {
            // One statement text per bound combination (8 in all, each cached), rather than
            // `(:from IS NULL OR id >= :from)`, which stops SQLite using the primary key for the
            // range.
            let mut sql = format!(
                "SELECT {DOC_COLUMNS} FROM documents WHERE container = :container AND partition_key = :pk AND {LIVE}"
            );
            let now = now_ms();
            let max = range.limit.map_or(-1, limit);
            let mut params: Vec<(&str, &dyn ToSql)> =
                vec![(":container", &container), (":pk", &partition_key), (":now", &now), (":limit", &max)];
            if let Some(from) = &range.from {
                sql.push_str(" AND id >= :from");
                params.push((":from", from));
            }
            if let Some(to) = &range.to {
                sql.push_str(" AND id <= :to");
                params.push((":to", to));
            }
            sql.push_str(if range.descending { " ORDER BY id DESC" } else { " ORDER BY id ASC" });
            sql.push_str(" LIMIT :limit");
            let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
            collect_docs(&mut stmt, &params)
        })
        .await
    }

    async fn change_feed(
        &self,
        container: &str,
        from: &Continuation,
        max: usize,
    ) -> Result<(Vec<StoredDoc>, Continuation)> {
        let after = parse_continuation(from)?;
        if max == 0 {
            return Ok((Vec::new(), from.clone()));
        }
        let container = container.to_string();
        let docs = self
            .read(move |conn| {
                let sql = format!(
                    "SELECT {DOC_COLUMNS} FROM documents
                     WHERE container = :container AND seq > :after AND {LIVE}
                     ORDER BY seq ASC LIMIT :limit"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_error)?;
                let (now, max) = (now_ms(), limit(max));
                collect_docs(
                    &mut stmt,
                    &[
                        (":container", &container),
                        (":after", &after),
                        (":now", &now),
                        (":limit", &max),
                    ],
                )
            })
            .await?;
        // Seqs are assigned inside the single write transaction and become visible all at once
        // at COMMIT, so no smaller seq can appear later: "after the last one returned" is exact.
        let next = docs.last().map_or_else(
            || Continuation(after.to_string()),
            |d| Continuation(d.sequence.to_string()),
        );
        Ok((docs, next))
    }

    async fn outbox_pending(&self, max: usize) -> Result<Vec<PendingOutbox>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, message_id, topic, key, payload, headers FROM outbox
                     WHERE published_at IS NULL ORDER BY seq ASC LIMIT ?1",
                )
                .map_err(sqlite_error)?;
            let rows = stmt
                .query_map([limit(max)], RawPending::from_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(sqlite_error)?;
            rows.into_iter().map(RawPending::into_pending).collect()
        })
        .await
    }

    async fn outbox_ack(&self, seqs: &[u64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.submit(
            Job::Ack {
                seqs: seqs.to_vec(),
                reply,
            },
            answer,
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        if self.jobs.is_closed() {
            return Err(writer_gone());
        }
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(sqlite_error)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
