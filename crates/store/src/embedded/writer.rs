//! The single writer thread: group commit with a SAVEPOINT per batch, and the periodic purge.
//!
//! Why one thread owning the write connection: SQLite allows one writer at a time anyway, and
//! the cost of a commit is dominated by the WAL append + lock dance, not by the rows. Draining
//! everything queued and committing it as ONE transaction turns N commits into one, which is
//! what makes thousands of batches/s possible on two cores. A SAVEPOINT around each batch keeps
//! the port's promise that a batch is all-or-nothing *on its own*: a Conflict in batch 7 rolls
//! back batch 7 only, and the other batches of the group still commit.
//!
//! Answers are sent only after COMMIT succeeds, so a caller that got `Ok` knows its batch is in
//! the WAL (durable against a SIGKILL of this process).

use std::time::{Duration, Instant};

use rusqlite::{Connection, named_params};
use tokio::sync::{mpsc, oneshot};

use super::rows::{duration_ms, encode_headers, is_constraint, now_ms, sqlite_error};
use crate::{Batch, ETag, Error, OutboxMessage, Result, StoredDoc, WriteOp};

/// Work for the writer. Acks go through the writer too: there is exactly one write connection.
pub(crate) enum Job {
    Commit {
        batch: Batch,
        reply: oneshot::Sender<Result<Vec<StoredDoc>>>,
    },
    Ack {
        seqs: Vec<u64>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Several independent batches handed over at once (`commit_many`): one hand-off and one
    /// wake-up for all of them, each still in its own SAVEPOINT with its own answer.
    CommitMany {
        batches: Vec<Batch>,
        reply: oneshot::Sender<Vec<Result<Vec<StoredDoc>>>>,
    },
}

/// The writer's knobs, copied out of `EmbeddedConfig`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_group: usize,
    pub(crate) purge_interval: Duration,
    pub(crate) purge_limit: usize,
    pub(crate) outbox_retention: Duration,
}

/// Runs until every sender is gone (all `EmbeddedStore` clones dropped), then closes the
/// connection, which checkpoints the WAL.
pub(crate) fn run(conn: Connection, mut jobs: mpsc::Receiver<Job>, settings: Settings) {
    let mut group = Vec::with_capacity(settings.max_group);
    // Purge on the first activity after opening, then every purge_interval of activity. An idle
    // store is not purged: rejected a timer thread for that, because an idle store does not grow
    // and expired rows are already invisible to every read.
    let mut next_purge = Instant::now();
    while jobs.blocking_recv_many(&mut group, settings.max_group) > 0 {
        metrics::histogram!("nivesh_store_group_commit_jobs").record(group.len() as f64);
        commit_group(&conn, &mut group);
        if Instant::now() >= next_purge {
            let more = purge(&conn, &settings);
            // A purge that hit its row limit left work behind: go again after the next group
            // instead of waiting a full interval, still in bounded steps so writers never stall.
            next_purge = if more {
                Instant::now()
            } else {
                Instant::now() + settings.purge_interval
            };
        }
    }
}

/// What one job produced, held back until the group's COMMIT.
enum Answer {
    Commit(
        oneshot::Sender<Result<Vec<StoredDoc>>>,
        Result<Vec<StoredDoc>>,
    ),
    Ack(oneshot::Sender<Result<()>>, Result<()>),
    Many(
        oneshot::Sender<Vec<Result<Vec<StoredDoc>>>>,
        Vec<Result<Vec<StoredDoc>>>,
    ),
}

fn count_batch(result: &Result<Vec<StoredDoc>>) {
    let outcome = if result.is_ok() {
        "committed"
    } else {
        "rejected"
    };
    metrics::counter!("nivesh_store_batches_total", "outcome" => outcome).increment(1);
}

impl Answer {
    fn send(self) {
        // A dropped receiver means the caller stopped waiting (its future was cancelled); the
        // write still happened, which is the same as a client timing out after a Cosmos write.
        match self {
            Answer::Commit(reply, result) => {
                count_batch(&result);
                let _ = reply.send(result);
            }
            Answer::Ack(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Many(reply, results) => {
                results.iter().for_each(count_batch);
                let _ = reply.send(results);
            }
        }
    }

    fn fail(self, why: &str) {
        let err = || Error::Unavailable(format!("group commit failed: {why}"));
        let failed = |n: usize| {
            metrics::counter!("nivesh_store_batches_total", "outcome" => "failed")
                .increment(n as u64)
        };
        match self {
            Answer::Commit(reply, _) => {
                failed(1);
                let _ = reply.send(Err(err()));
            }
            Answer::Ack(reply, _) => {
                let _ = reply.send(Err(err()));
            }
            Answer::Many(reply, results) => {
                failed(results.len());
                let _ = reply.send(results.iter().map(|_| Err(err())).collect());
            }
        }
    }
}

/// Commit everything in `group` as one transaction, one SAVEPOINT per job; answer every job.
pub(crate) fn commit_group(conn: &Connection, group: &mut Vec<Job>) {
    let now = now_ms();
    let mut answers = Vec::with_capacity(group.len());
    let mut jobs = group.drain(..);
    let result = (|| -> Result<()> {
        exec(conn, "BEGIN IMMEDIATE")?;
        // The counter is read inside the write transaction (not cached in memory) so several
        // processes sharing one file still hand out unique, increasing seqs.
        let mut seq: i64 = conn
            .prepare_cached("SELECT value FROM meta WHERE key = 'doc_seq'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sqlite_error)?;
        let first_seq = seq;
        for job in jobs.by_ref() {
            let answer = match job {
                Job::Commit { batch, reply } => Answer::Commit(
                    reply,
                    match Prepared::new(batch) {
                        Ok(p) => in_savepoint(conn, &mut seq, |seq| {
                            let written = p.apply(conn, seq, now)?;
                            p.stored(written)
                        })?,
                        Err(e) => Err(e),
                    },
                ),
                Job::Ack { seqs, reply } => Answer::Ack(
                    reply,
                    in_savepoint(conn, &mut seq, |_| apply_ack(conn, &seqs, now))?,
                ),
                Job::CommitMany { batches, reply } => {
                    Answer::Many(reply, commit_many(conn, &mut seq, batches, now)?)
                }
            };
            answers.push(answer);
        }
        if seq != first_seq {
            // Persisted (not derived from MAX(seq)) because deleting the newest document would
            // otherwise hand its seq out again after a restart, and a change-feed reader parked
            // on that seq would skip the new write.
            conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'doc_seq'")
                .and_then(|mut s| s.execute([seq]))
                .map_err(sqlite_error)?;
        }
        exec(conn, "COMMIT")
    })();
    match result {
        Ok(()) => answers.into_iter().for_each(Answer::send),
        Err(e) => {
            tracing::warn!(error = %e, jobs = answers.len(), "embedded store group commit failed");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let why = e.to_string();
            // Jobs never reached (the failure happened before them) are answered too.
            let untouched: Vec<Answer> = jobs
                .map(|job| match job {
                    Job::Commit { reply, .. } => Answer::Commit(reply, Ok(Vec::new())),
                    Job::Ack { reply, .. } => Answer::Ack(reply, Ok(())),
                    Job::CommitMany { batches, reply } => {
                        Answer::Many(reply, batches.iter().map(|_| Ok(Vec::new())).collect())
                    }
                })
                .collect();
            answers
                .into_iter()
                .chain(untouched)
                .for_each(|a| a.fail(&why));
        }
    }
}

/// Run one job's writes inside its own SAVEPOINT: on `Err` only they are undone (and the seqs
/// they took are handed out again, so the change feed has no gaps). The outer `Result` is a
/// failure of the savepoint itself, which fails the whole group.
fn in_savepoint<T>(
    conn: &Connection,
    seq: &mut i64,
    apply: impl FnOnce(&mut i64) -> Result<T>,
) -> Result<Result<T>> {
    exec(conn, "SAVEPOINT batch")?;
    let seq_before = *seq;
    let result = apply(seq);
    if result.is_err() {
        *seq = seq_before;
        exec(conn, "ROLLBACK TO batch")?;
    }
    exec(conn, "RELEASE batch")?;
    Ok(result)
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(sqlite_error)
}

fn validate(batch: &Batch) -> Result<()> {
    if batch.container.is_empty() {
        return Err(Error::Invalid("batch without a container".into()));
    }
    if batch.partition_key.is_empty() {
        return Err(Error::Invalid(format!(
            "batch for {} without a partition key",
            batch.container
        )));
    }
    if let Some(op) = batch.ops.iter().find(|op| op.id().is_empty()) {
        return Err(Error::Invalid(format!(
            "write op without an id in {}: {op:?}",
            batch.container
        )));
    }
    if batch.outbox.iter().any(|m| m.message_id.is_empty()) {
        return Err(Error::Invalid("outbox message without a message_id".into()));
    }
    Ok(())
}

/// The batches of one `commit_many`, each atomic on its own. Optimistic: all of them are applied
/// under ONE savepoint (a SAVEPOINT + RELEASE pair per batch was ~11 % of the NAV publisher's CPU
/// under `perf`); only when one of them fails is that savepoint rolled back and the batches
/// applied again one savepoint each, so the answers are exactly those of the per-batch path.
fn commit_many(
    conn: &Connection,
    seq: &mut i64,
    batches: Vec<Batch>,
    now: i64,
) -> Result<Vec<Result<Vec<StoredDoc>>>> {
    let prepared: Vec<Result<Prepared>> = batches.into_iter().map(Prepared::new).collect();
    if prepared.len() > 1 && prepared.iter().all(Result::is_ok) {
        let prepared: Vec<Prepared> = prepared.into_iter().flatten().collect();
        exec(conn, "SAVEPOINT many")?;
        let seq_before = *seq;
        let written: Result<Vec<Vec<Written>>> =
            prepared.iter().map(|p| p.apply(conn, seq, now)).collect();
        match written {
            Ok(written) => {
                exec(conn, "RELEASE many")?;
                return Ok(prepared
                    .into_iter()
                    .zip(written)
                    .map(|(p, w)| p.stored(w))
                    .collect());
            }
            Err(_) => {
                *seq = seq_before;
                exec(conn, "ROLLBACK TO many")?;
                exec(conn, "RELEASE many")?;
                return prepared
                    .into_iter()
                    .map(|p| one_by_one(conn, seq, p, now))
                    .collect();
            }
        }
    }
    prepared
        .into_iter()
        .map(|p| match p {
            Ok(p) => one_by_one(conn, seq, p, now),
            Err(e) => Ok(Err(e)),
        })
        .collect()
}

fn one_by_one(
    conn: &Connection,
    seq: &mut i64,
    p: Prepared,
    now: i64,
) -> Result<Result<Vec<StoredDoc>>> {
    in_savepoint(conn, seq, |seq| {
        let written = p.apply(conn, seq, now)?;
        p.stored(written)
    })
}

/// A validated batch whose bodies are serialised once, so it can be applied again (the
/// optimistic path's fallback) without re-encoding, and whose `Value` bodies are moved into the
/// answer only after the commit.
struct Prepared {
    container: String,
    partition_key: String,
    ops: Vec<(WriteOp, Option<String>)>,
    outbox: Vec<(OutboxMessage, Vec<u8>)>,
}

/// What a put wrote: the document's new ETag and seq.
struct Written {
    etag: String,
    seq: i64,
}

impl Prepared {
    fn new(batch: Batch) -> Result<Prepared> {
        validate(&batch)?;
        let Batch {
            container,
            partition_key,
            ops,
            outbox,
        } = batch;
        let ops = ops
            .into_iter()
            .map(|op| {
                let text = match &op {
                    WriteOp::Create { id, body, .. }
                    | WriteOp::Upsert { id, body, .. }
                    | WriteOp::Replace { id, body, .. } => Some(
                        serde_json::to_string(body)
                            .map_err(|e| Error::Invalid(format!("body of {id}: {e}")))?,
                    ),
                    WriteOp::Delete { .. } => None,
                };
                Ok((op, text))
            })
            .collect::<Result<Vec<_>>>()?;
        let outbox = outbox
            .into_iter()
            .map(|m| encode_headers(&m.headers).map(|h| (m, h)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Prepared {
            container,
            partition_key,
            ops,
            outbox,
        })
    }

    /// Apply every op and outbox row; one `Written` per put, in op order.
    fn apply(&self, conn: &Connection, seq: &mut i64, now: i64) -> Result<Vec<Written>> {
        let at = Address {
            conn,
            container: &self.container,
            partition_key: &self.partition_key,
            now,
        };
        let mut written = Vec::with_capacity(self.ops.len());
        for (op, text) in &self.ops {
            let text = text.as_deref().unwrap_or_default();
            match op {
                // An upsert writes whatever is there: no need to look first.
                WriteOp::Upsert { id, ttl, .. } => written.push(at.put(id, text, *ttl, seq)?),
                WriteOp::Create { id, ttl, .. } => {
                    if at.live_etag(id)?.is_some() {
                        return Err(Error::Conflict { id: id.clone() });
                    }
                    written.push(at.put(id, text, *ttl, seq)?);
                }
                WriteOp::Replace {
                    id, if_match, ttl, ..
                } => match at.live_etag(id)? {
                    None => return Err(Error::NotFound { id: id.clone() }),
                    Some(current) if current != if_match.0 => {
                        return Err(Error::PreconditionFailed { id: id.clone() });
                    }
                    Some(_) => written.push(at.put(id, text, *ttl, seq)?),
                },
                WriteOp::Delete { id, if_match } => match at.live_etag(id)? {
                    None => return Err(Error::NotFound { id: id.clone() }),
                    Some(current) if if_match.as_ref().is_some_and(|m| m.0 != current) => {
                        return Err(Error::PreconditionFailed { id: id.clone() });
                    }
                    Some(_) => at.delete(id)?,
                },
            }
        }
        for (message, headers) in &self.outbox {
            insert_outbox(conn, message, headers, now)?;
        }
        Ok(written)
    }

    /// The answer of a committed batch: the stored documents, bodies moved in.
    fn stored(self, written: Vec<Written>) -> Result<Vec<StoredDoc>> {
        let mut written = written.into_iter();
        let mut stored = Vec::with_capacity(self.ops.len());
        for (op, _) in self.ops {
            let (id, body) = match op {
                WriteOp::Create { id, body, .. }
                | WriteOp::Upsert { id, body, .. }
                | WriteOp::Replace { id, body, .. } => (id, body),
                WriteOp::Delete { .. } => continue,
            };
            let Written { etag, seq } = written
                .next()
                .ok_or_else(|| Error::Backend(format!("no write recorded for {id}")))?;
            stored.push(StoredDoc {
                container: self.container.clone(),
                partition_key: self.partition_key.clone(),
                id,
                body,
                etag: ETag(etag),
                sequence: u64::try_from(seq)
                    .map_err(|_| Error::Backend(format!("sequence overflow at {seq}")))?,
            });
        }
        Ok(stored)
    }
}

/// One partition of one container, as seen by the write transaction at `now`.
struct Address<'a> {
    conn: &'a Connection,
    container: &'a str,
    partition_key: &'a str,
    now: i64,
}

impl Address<'_> {
    /// The ETag of the live document, `None` if absent or expired (an expired row is "not
    /// there" for every op, exactly as for reads, even before the purge removes it).
    fn live_etag(&self, id: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT etag, expires_at FROM documents WHERE container = ?1 AND partition_key = ?2 AND id = ?3",
            )
            .map_err(sqlite_error)?;
        let mut rows = stmt
            .query((self.container, self.partition_key, id))
            .map_err(sqlite_error)?;
        let Some(row) = rows.next().map_err(sqlite_error)? else {
            return Ok(None);
        };
        let etag: String = row.get(0).map_err(sqlite_error)?;
        let expires_at: Option<i64> = row.get(1).map_err(sqlite_error)?;
        Ok(expires_at.is_none_or(|at| at > self.now).then_some(etag))
    }

    fn put(&self, id: &str, text: &str, ttl: Option<Duration>, seq: &mut i64) -> Result<Written> {
        *seq += 1;
        // A fresh random tag rather than the seq: it stays unique even across a deleted and
        // re-created database file, so a stale ETag held by a client can never match by accident.
        let etag = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = ttl.map(|ttl| self.now.saturating_add(duration_ms(ttl)));
        self.conn
            .prepare_cached(
                "INSERT INTO documents (container, partition_key, id, body, etag, seq, expires_at)
                 VALUES (:container, :pk, :id, :body, :etag, :seq, :expires_at)
                 ON CONFLICT (container, partition_key, id) DO UPDATE SET
                     body = excluded.body, etag = excluded.etag, seq = excluded.seq,
                     expires_at = excluded.expires_at",
            )
            .and_then(|mut s| {
                s.execute(named_params! {
                    ":container": self.container, ":pk": self.partition_key, ":id": id,
                    ":body": text, ":etag": etag, ":seq": *seq, ":expires_at": expires_at,
                })
            })
            .map_err(|e| {
                if is_constraint(&e) {
                    Error::Conflict { id: id.to_string() }
                } else {
                    sqlite_error(e)
                }
            })?;
        Ok(Written { etag, seq: *seq })
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM documents WHERE container = ?1 AND partition_key = ?2 AND id = ?3",
            )
            .and_then(|mut s| s.execute((self.container, self.partition_key, id)))
            .map(drop)
            .map_err(sqlite_error)
    }
}

fn insert_outbox(
    conn: &Connection,
    message: &OutboxMessage,
    headers: &[u8],
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (message_id, topic, key, payload, headers, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute((
            &message.message_id,
            &message.topic,
            &message.key,
            &message.payload,
            headers,
            now,
        ))
    })
    .map(drop)
    // The UNIQUE message_id is the dedupe of re-emits: the whole batch fails as a Conflict
    // naming the message, so a handler retrying after a crash cannot publish an event twice.
    .map_err(|e| {
        if is_constraint(&e) {
            Error::Conflict {
                id: message.message_id.clone(),
            }
        } else {
            sqlite_error(e)
        }
    })
}

fn apply_ack(conn: &Connection, seqs: &[u64], now: i64) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE outbox SET published_at = ?1 WHERE seq = ?2 AND published_at IS NULL",
        )
        .map_err(sqlite_error)?;
    // Seqs beyond i64 cannot exist in SQLite, so skipping them is the idempotent answer.
    for seq in seqs.iter().filter_map(|s| i64::try_from(*s).ok()) {
        stmt.execute((now, seq)).map_err(sqlite_error)?;
    }
    Ok(())
}

/// Delete up to `purge_limit` expired documents and published outbox rows past retention.
/// Returns true when a limit was hit (more to do). Bounded so a purge never holds the write
/// lock long enough to matter to the batches queued behind it.
fn purge(conn: &Connection, settings: &Settings) -> bool {
    let now = now_ms();
    let limit = super::rows::limit(settings.purge_limit);
    let outcome = (|| -> rusqlite::Result<(usize, usize)> {
        let docs = conn
            .prepare_cached(
                "DELETE FROM documents WHERE rowid IN
                 (SELECT rowid FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)",
            )?
            .execute((now, limit))?;
        let cutoff = now.saturating_sub(duration_ms(settings.outbox_retention));
        let published = conn
            .prepare_cached(
                "DELETE FROM outbox WHERE seq IN
                 (SELECT seq FROM outbox WHERE published_at IS NOT NULL AND published_at <= ?1 LIMIT ?2)",
            )?
            .execute((cutoff, limit))?;
        Ok((docs, published))
    })();
    match outcome {
        Ok((docs, published)) => {
            if docs + published > 0 {
                tracing::debug!(
                    docs,
                    published,
                    "embedded store purged expired documents and published outbox rows"
                );
            }
            docs == settings.purge_limit || published == settings.purge_limit
        }
        Err(e) => {
            // Purging is housekeeping: a failure is logged and retried next interval, never
            // surfaced to a writer whose batch already committed.
            tracing::warn!(error = %e, "embedded store purge failed");
            false
        }
    }
}
