//! One partition's worker: handles its records in order, forwards failures to the retry tiers or
//! the dead-letter topic, and stores each offset only once the record is finished.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::BusContext;
use super::{ConsumerSettings, DoneGuard, Tp};
use crate::catalog;
use crate::message::{HandlerError, InboundMessage, MessageHandler, find_header, headers};
use crate::producer::BusProducer;

/// A consumed record, owned (the borrowed librdkafka message must not outlive the poll).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) timestamp_ms: Option<i64>,
}

impl Record {
    pub(crate) fn from_message<M: Message>(m: &M) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        }
    }
}

/// Everything a worker needs, shared by all of a consumer's workers.
pub(crate) struct WorkerEnv {
    group: String,
    /// Retry topic name -> tier index.
    retry_tiers: HashMap<String, usize>,
    retry_delays: Vec<Duration>,
    dlq: String,
    handler: Arc<dyn MessageHandler>,
    producer: BusProducer,
    consumer: Arc<StreamConsumer<BusContext>>,
    permits: Semaphore,
    /// The injected bug ([`ConsumerSettings::unsafe_commit_before_process`]).
    commit_before_process: bool,
}

enum Finish {
    /// Handled or durably forwarded, offset stored: move on.
    Done,
    /// Stopped before finishing (revocation or shutdown): the offset is not stored, and no later
    /// record of the partition may be handled, or its offset would commit past this one.
    Abandoned,
}

/// Where a failed record goes.
enum Route {
    Retry { tier: usize, not_before_ms: i64 },
    DeadLetter { reason: &'static str },
}

/// Most records handled as one batch (see [`WorkerEnv::process_batch`]).
const MAX_BATCH: usize = 256;

const FORWARD_BACKOFF_MIN: Duration = Duration::from_millis(100);
const FORWARD_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Headers longer than this are cut: an error message can embed a whole payload.
const MAX_ERROR_HEADER: usize = 1024;

impl WorkerEnv {
    pub(crate) fn new(
        settings: &ConsumerSettings,
        handler: Arc<dyn MessageHandler>,
        producer: BusProducer,
        consumer: Arc<StreamConsumer<BusContext>>,
    ) -> Self {
        let retry_tiers = (0..settings.retry_delays.len())
            .map(|tier| (catalog::retry_topic(&settings.group, tier), tier))
            .collect();
        WorkerEnv {
            group: settings.group.clone(),
            retry_tiers,
            retry_delays: settings.retry_delays.clone(),
            dlq: catalog::dead_letter_topic(&settings.group),
            handler,
            producer,
            consumer,
            permits: Semaphore::new(settings.max_in_flight),
            commit_before_process: settings.unsafe_commit_before_process,
        }
    }

    async fn process(&self, rec: Record, cancel: &CancellationToken) -> Finish {
        let retry_tier = self.retry_tiers.get(&rec.topic).copied();
        let failed_before = match retry_tier {
            // A retry record without a readable count still failed at least once.
            Some(_) => header_num::<u32>(&rec.headers, headers::ATTEMPT)
                .unwrap_or(1)
                .max(1),
            None => 0,
        };
        if let Some(tier) = retry_tier
            && let Some(not_before) = header_num::<i64>(&rec.headers, headers::NOT_BEFORE)
        {
            // Capped at the tier's delay: a skewed or corrupted header must not park the
            // partition for longer than the tier can legitimately ask for.
            let wait_ms =
                (not_before - now_ms()).clamp(0, self.retry_delays[tier].as_millis() as i64);
            if wait_ms > 0 {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Finish::Abandoned,
                    _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                }
            }
        }

        let msg = self.inbound(&rec, retry_tier.is_some(), failed_before + 1);
        let span = self.span(&msg);
        let outcome = {
            let Some(_permit) = self.permit(cancel).await else {
                return Finish::Abandoned;
            };
            let started = Instant::now();
            let result = AssertUnwindSafe(self.handler.handle(&msg))
                .catch_unwind()
                .instrument(span.clone())
                .await;
            metrics::histogram!(
                "nivesh_consumer_handler_seconds",
                "group" => self.group.clone(),
                "topic" => rec.topic.clone()
            )
            .record(started.elapsed().as_secs_f64());
            // A panic is a bug in the handler; treating it as retryable keeps the partition
            // moving and ends in the dead-letter topic if it keeps happening.
            result.unwrap_or_else(|panic| Err(panicked(&*panic)))
        };
        self.settle(&rec, retry_tier, failed_before, outcome, &span, cancel)
            .await
    }

    /// The `kafka.consume` span of one record, joined to the trace its headers carry.
    fn span(&self, msg: &InboundMessage) -> tracing::Span {
        crate::trace::consume_span(&self.group, msg)
    }

    /// One of the consumer's in-flight permits; `None` when cancelled first.
    async fn permit(&self, cancel: &CancellationToken) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            // The semaphore is never closed; treat it like a shutdown if it were.
            p = self.permits.acquire() => p.ok(),
        }
    }

    /// Route a handled record: done on success, else forwarded to its retry tier or the
    /// dead-letter topic (and done once the broker acknowledged the forward).
    async fn settle(
        &self,
        rec: &Record,
        retry_tier: Option<usize>,
        failed_before: u32,
        outcome: Result<(), HandlerError>,
        span: &tracing::Span,
        cancel: &CancellationToken,
    ) -> Finish {
        let failed = failed_before + 1;
        let (route, error) = match outcome {
            Ok(()) => {
                self.count(&rec.topic, "ok");
                return Finish::Done;
            }
            Err(HandlerError::Retryable(e)) => {
                match self.retry_delays.get(failed_before as usize) {
                    Some(ceiling) => (
                        Route::Retry {
                            tier: failed_before as usize,
                            not_before_ms: not_before(*ceiling),
                        },
                        e,
                    ),
                    None => (
                        Route::DeadLetter {
                            reason: headers::REASON_RETRIES_EXHAUSTED,
                        },
                        e,
                    ),
                }
            }
            Err(HandlerError::Permanent(e)) => (
                Route::DeadLetter {
                    reason: headers::REASON_PERMANENT,
                },
                e,
            ),
        };
        let (outcome_label, level_dlq) = match route {
            Route::Retry { .. } => ("retried", false),
            Route::DeadLetter { .. } => ("dead_lettered", true),
        };
        span.in_scope(|| {
            if level_dlq {
                tracing::error!(attempt = failed, error = %error, "record dead-lettered");
            } else {
                tracing::warn!(attempt = failed, error = %error, "record sent to retry");
            }
        });
        let out = self.forward_record(rec, retry_tier.is_some(), failed, &error, &route);
        if !self.publish_until_acked(out, cancel).await {
            return Finish::Abandoned;
        }
        self.count(&rec.topic, outcome_label);
        Finish::Done
    }

    /// A batched handler's path (first deliveries only): the chains are handed over in rounds,
    /// round `r` holding the `r`-th record of every chain still running, so each key's records
    /// stay in offset order while one call covers many keys. Returns the positions finished.
    async fn process_rounds(
        &self,
        chains: Vec<Vec<(usize, Record)>>,
        cancel: &CancellationToken,
    ) -> Vec<usize> {
        let mut chains: Vec<std::vec::IntoIter<(usize, Record)>> =
            chains.into_iter().map(Vec::into_iter).collect();
        let mut running = vec![true; chains.len()];
        let mut finished = Vec::new();
        loop {
            let round: Vec<(usize, usize, Record)> = chains
                .iter_mut()
                .enumerate()
                .filter(|(c, _)| running[*c])
                .filter_map(|(c, chain)| chain.next().map(|(pos, rec)| (c, pos, rec)))
                .collect();
            if round.is_empty() {
                return finished;
            }
            let msgs: Vec<InboundMessage> = round
                .iter()
                .map(|(_, _, rec)| self.inbound(rec, false, 1))
                .collect();
            let outcomes = {
                let Some(_permit) = self.permit(cancel).await else {
                    return finished;
                };
                let started = Instant::now();
                let span = tracing::info_span!(
                    "kafka.consume.batch",
                    otel.kind = "consumer",
                    messaging.system = "kafka",
                    messaging.consumer.group.name = %self.group,
                    messaging.batch.message_count = msgs.len(),
                );
                let result = AssertUnwindSafe(self.handler.handle_many(&msgs))
                    .catch_unwind()
                    .instrument(span)
                    .await;
                let elapsed = started.elapsed().as_secs_f64();
                metrics::histogram!("nivesh_consumer_batch_handler_seconds", "group" => self.group.clone())
                    .record(elapsed);
                metrics::histogram!("nivesh_consumer_batch_records", "group" => self.group.clone())
                    .record(msgs.len() as f64);
                match result {
                    Ok(outcomes) if outcomes.len() == msgs.len() => outcomes,
                    Ok(outcomes) => {
                        let e = HandlerError::Retryable(format!(
                            "handle_many answered {} results for {} records",
                            outcomes.len(),
                            msgs.len()
                        ));
                        vec![Err(e); msgs.len()]
                    }
                    Err(panic) => vec![Err(panicked(&*panic)); msgs.len()],
                }
            };
            let settled: Vec<(usize, usize, Finish)> = round
                .iter()
                .zip(outcomes)
                .zip(&msgs)
                .map(|(((c, pos, rec), outcome), msg)| async move {
                    // The handler opened each record's span around its own work; a failure is
                    // logged in a span of its own, joined to the record's trace.
                    let span = match &outcome {
                        Ok(()) => tracing::Span::none(),
                        Err(_) => self.span(msg),
                    };
                    (
                        *c,
                        *pos,
                        self.settle(rec, None, 0, outcome, &span, cancel).await,
                    )
                })
                .collect::<FuturesUnordered<_>>()
                .collect()
                .await;
            for (c, pos, finish) in settled {
                match finish {
                    Finish::Done => finished.push(pos),
                    // Later records of this key must not run before this one.
                    Finish::Abandoned => running[c] = false,
                }
            }
        }
    }

    fn inbound(&self, rec: &Record, from_retry: bool, attempt: u32) -> InboundMessage {
        let (topic, partition, offset) = if from_retry {
            original_coords(rec)
        } else {
            None
        }
        .unwrap_or_else(|| (rec.topic.clone(), rec.partition, rec.offset));
        InboundMessage {
            topic,
            partition,
            offset,
            key: rec.key.clone(),
            payload: rec.payload.clone(),
            headers: rec.headers.clone(),
            timestamp_ms: rec.timestamp_ms,
            attempt,
        }
    }

    /// The original record with its failure bookkeeping. A record that already came from a
    /// retry topic keeps its original coordinates and first failure time.
    fn forward_record(
        &self,
        rec: &Record,
        from_retry: bool,
        failed: u32,
        error: &str,
        route: &Route,
    ) -> Forward {
        let now = now_ms();
        let original = if from_retry {
            original_coords(rec)
        } else {
            None
        };
        let first_failed_at = if original.is_some() {
            header_num::<i64>(&rec.headers, headers::FIRST_FAILED_AT).unwrap_or(now)
        } else {
            now
        };
        let (o_topic, o_partition, o_offset) =
            original.unwrap_or_else(|| (rec.topic.clone(), rec.partition, rec.offset));
        const OWNED: [&str; 9] = [
            headers::ORIGINAL_TOPIC,
            headers::ORIGINAL_PARTITION,
            headers::ORIGINAL_OFFSET,
            headers::ATTEMPT,
            headers::ERROR,
            headers::FIRST_FAILED_AT,
            headers::NOT_BEFORE,
            headers::DLQ_REASON,
            headers::DEAD_LETTERED_AT,
        ];
        let mut hs: Vec<(String, Vec<u8>)> = rec
            .headers
            .iter()
            .filter(|(k, _)| !OWNED.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut put = |k: &str, v: String| hs.push((k.to_owned(), v.into_bytes()));
        put(headers::ORIGINAL_TOPIC, o_topic);
        put(headers::ORIGINAL_PARTITION, o_partition.to_string());
        put(headers::ORIGINAL_OFFSET, o_offset.to_string());
        put(headers::ATTEMPT, failed.to_string());
        put(headers::ERROR, truncate(error, MAX_ERROR_HEADER).to_owned());
        put(headers::FIRST_FAILED_AT, first_failed_at.to_string());
        let topic = match route {
            Route::Retry {
                tier,
                not_before_ms,
            } => {
                put(headers::NOT_BEFORE, not_before_ms.to_string());
                catalog::retry_topic(&self.group, *tier)
            }
            Route::DeadLetter { reason } => {
                // Nothing left to wait for: a replay tool may re-run it at once.
                put(headers::NOT_BEFORE, now.to_string());
                put(headers::DLQ_REASON, (*reason).to_owned());
                put(headers::DEAD_LETTERED_AT, now.to_string());
                self.dlq.clone()
            }
        };
        Forward {
            topic,
            key: rec.key.clone(),
            payload: rec.payload.clone(),
            headers: hs,
        }
    }

    /// Publish until the broker acknowledges; false when cancelled first. Never gives up on its
    /// own: storing the offset of a record that reached neither the handler's effect nor a
    /// retry/DLQ topic would lose it.
    async fn publish_until_acked(&self, out: Forward, cancel: &CancellationToken) -> bool {
        let mut backoff = FORWARD_BACKOFF_MIN;
        loop {
            let sent = match self
                .producer
                .enqueue_raw(
                    out.topic.clone(),
                    out.key.clone(),
                    out.payload.clone(),
                    out.headers.clone(),
                )
                .await
            {
                Ok(delivery) => delivery.await.map(|_| ()),
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(group = %self.group, topic = %out.topic, error = %e, "forwarding failed; retrying");
                }
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(FORWARD_BACKOFF_MAX);
        }
    }

    /// The injected bug: mark `offset` finished and commit it synchronously before any handler
    /// of its batch ran, so a crash now skips the batch (never do this for real).
    async fn commit_before_processing(&self, tp: &Tp, offset: i64) {
        self.store(tp, offset);
        let consumer = self.consumer.clone();
        let group = self.group.clone();
        let _ = tokio::task::spawn_blocking(move || {
            super::commit_stored(consumer.as_ref(), &group);
        })
        .await;
    }

    /// Store `offset` as finished (librdkafka commits offset + 1, the next record to read).
    fn store(&self, tp: &Tp, offset: i64) {
        if let Err(e) = self.consumer.store_offset(&tp.0, tp.1, offset) {
            // The partition was revoked meanwhile: the new owner redelivers it, the inbox dedupes.
            tracing::debug!(topic = %tp.0, partition = tp.1, offset, error = %e, "offset not stored");
        }
    }

    /// Handle one batch of a partition's records (in offset order): records with the same key
    /// strictly in order, different keys concurrently (bounded by the consumer's in-flight
    /// permits). Returns how many records, from the front, finished; the caller stores the offset
    /// of the last of them, so the committed offset never passes an unfinished record.
    async fn process_batch(&self, batch: Vec<Record>, cancel: &CancellationToken) -> usize {
        let len = batch.len();
        if len == 1 {
            let rec = batch.into_iter().next().expect("one record");
            return match self.process(rec, cancel).await {
                Finish::Done => 1,
                Finish::Abandoned => 0,
            };
        }
        // Chains of positions per key, in offset order; keyless records form one chain.
        let mut chains: Vec<Vec<(usize, Record)>> = Vec::new();
        let mut chain_of: HashMap<Option<Vec<u8>>, usize> = HashMap::new();
        for (pos, rec) in batch.into_iter().enumerate() {
            let chain = *chain_of.entry(rec.key.clone()).or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
            chains[chain].push((pos, rec));
        }
        let mut done = vec![false; len];
        // A batch is one partition of one topic; retry topics keep the per-record path (each
        // record waits for its own not-before time).
        let first_delivery = chains
            .first()
            .and_then(|c| c.first())
            .is_some_and(|(_, rec)| !self.retry_tiers.contains_key(&rec.topic));
        if self.handler.batched() && first_delivery {
            for pos in self.process_rounds(chains, cancel).await {
                done[pos] = true;
            }
            return done.iter().take_while(|d| **d).count();
        }
        metrics::histogram!("nivesh_consumer_batch_records", "group" => self.group.clone())
            .record(len as f64);
        let mut runs: FuturesUnordered<_> = chains
            .into_iter()
            .map(|chain| async move {
                let mut finished = Vec::with_capacity(chain.len());
                for (pos, rec) in chain {
                    match self.process(rec, cancel).await {
                        Finish::Done => finished.push(pos),
                        // Later records of this key must not run before this one.
                        Finish::Abandoned => break,
                    }
                }
                finished
            })
            .collect();
        while let Some(finished) = runs.next().await {
            for pos in finished {
                done[pos] = true;
            }
        }
        done.iter().take_while(|d| **d).count()
    }

    fn count(&self, topic: &str, outcome: &'static str) {
        metrics::counter!(
            "nivesh_consumer_messages_total",
            "group" => self.group.clone(),
            "topic" => topic.to_owned(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

struct Forward {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// The worker task of one partition.
pub(crate) async fn run(
    env: Arc<WorkerEnv>,
    tp: Tp,
    mut rx: mpsc::Receiver<Record>,
    cancel: CancellationToken,
    _done: DoneGuard,
) {
    loop {
        let first = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
        };
        // Everything already fetched for this partition (no waiting for more) is one batch.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let offsets: Vec<i64> = batch.iter().map(|r| r.offset).collect();
        if env.commit_before_process {
            env.commit_before_processing(&tp, offsets[offsets.len() - 1])
                .await;
        }
        let finished = env.process_batch(batch, &cancel).await;
        // (Under the injected bug the offsets are already stored and committed; storing the
        // finished prefix again would move them back.)
        if finished > 0 && !env.commit_before_process {
            env.store(&tp, offsets[finished - 1]);
        }
        if finished < offsets.len() {
            tracing::debug!(topic = %tp.0, partition = tp.1, "partition worker stopped mid-batch");
            break;
        }
    }
}

/// Full jitter: uniform in [0, ceiling]. Spreads a burst of failures (a store outage fails a
/// whole partition's worth at once) so they do not all come back in the same instant.
fn not_before(ceiling: Duration) -> i64 {
    let ceiling_ms = ceiling.as_millis() as i64;
    let jitter = if ceiling_ms > 0 {
        rand::rng().random_range(0..=ceiling_ms)
    } else {
        0
    };
    now_ms() + jitter
}

fn original_coords(rec: &Record) -> Option<(String, i32, i64)> {
    let topic = find_header(&rec.headers, headers::ORIGINAL_TOPIC)
        .and_then(|v| std::str::from_utf8(v).ok())?;
    let partition = header_num::<i32>(&rec.headers, headers::ORIGINAL_PARTITION)?;
    let offset = header_num::<i64>(&rec.headers, headers::ORIGINAL_OFFSET)?;
    Some((topic.to_owned(), partition, offset))
}

fn header_num<T: std::str::FromStr>(hs: &[(String, Vec<u8>)], name: &str) -> Option<T> {
    find_header(hs, name)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse().ok())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> HandlerError {
    HandlerError::Retryable(format!("handler panicked: {}", panic_text(panic)))
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truncation never splits a UTF-8 character.
    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "₹₹₹"; // 3 bytes each
        assert_eq!(truncate(s, 4), "₹");
        assert_eq!(truncate(s, 9), s);
        assert_eq!(truncate("abc", 2), "ab");
    }

    /// Full jitter stays within [now, now + ceiling].
    #[test]
    fn not_before_within_ceiling() {
        for _ in 0..100 {
            let before = now_ms();
            let nb = not_before(Duration::from_millis(200));
            let after = now_ms();
            assert!(nb >= before && nb <= after + 200, "{before} {nb} {after}");
        }
    }

    /// Original coordinates are read back from the headers, and missing ones yield None.
    #[test]
    fn original_coords_from_headers() {
        let mut rec = Record {
            topic: "g.retry.0".into(),
            partition: 3,
            offset: 9,
            key: None,
            payload: vec![],
            headers: vec![
                (headers::ORIGINAL_TOPIC.into(), b"order.placed".to_vec()),
                (headers::ORIGINAL_PARTITION.into(), b"7".to_vec()),
                (headers::ORIGINAL_OFFSET.into(), b"42".to_vec()),
            ],
            timestamp_ms: None,
        };
        assert_eq!(original_coords(&rec), Some(("order.placed".into(), 7, 42)));
        rec.headers.remove(1);
        assert_eq!(original_coords(&rec), None);
    }
}
