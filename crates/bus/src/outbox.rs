//! The transactional-outbox relay: publishes what `DocumentStore::commit` recorded, then marks it
//! published.
//!
//! Order of operations is the guarantee: publish, wait for the broker's acknowledgement, *then*
//! ack in the store. A crash in between republishes the same record (same message id) on restart;
//! consumers dedupe on it. The reverse order could lose a record, so it is not an option.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use nivesh_store::{DocumentStore, OutboxMessage};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::message::{find_header, headers};
use crate::producer::{BusProducer, OutgoingMessage};
use crate::{Error, Result};

/// Records fetched and published per round.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How often an idle relay looks for records nobody notified it about (another process's
/// commits, a notify lost to a crash).
pub const DEFAULT_IDLE_POLL: Duration = Duration::from_millis(50);

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Publishes pending outbox records. One per process that writes outbox records.
pub struct OutboxRelay {
    store: Arc<dyn DocumentStore>,
    producer: BusProducer,
    notify: Arc<Notify>,
    batch_size: usize,
    idle_poll: Duration,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn DocumentStore>, producer: BusProducer) -> Self {
        OutboxRelay {
            store,
            producer,
            notify: Arc::new(Notify::new()),
            batch_size: DEFAULT_BATCH_SIZE,
            idle_poll: DEFAULT_IDLE_POLL,
        }
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn with_idle_poll(mut self, idle_poll: Duration) -> Self {
        self.idle_poll = idle_poll;
        self
    }

    /// Call `notify_one()` after a commit that emitted records, to publish without waiting for
    /// the next poll. A notify while the relay is busy is remembered, not lost.
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Relay until `shutdown`; the round in progress finishes first (its deliveries are awaited
    /// and acked), so stopping never leaves a delivered record unacked by choice.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut backoff = BACKOFF_MIN;
        let mut wait = Duration::ZERO;
        let mut failing = false;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if !wait.is_zero() {
                if failing {
                    // While failing, commits must not cut the backoff short: under load they
                    // would turn it into a hot loop against a broken broker.
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                } else {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            match self.round().await {
                Ok((published, fetched)) => {
                    failing = false;
                    backoff = BACKOFF_MIN;
                    // A full round means more is waiting: go again at once.
                    wait = if fetched >= self.batch_size {
                        Duration::ZERO
                    } else {
                        self.idle_poll
                    };
                    if published > 0 {
                        tracing::debug!(published, "outbox records published");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay round failed");
                    failing = true;
                    wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One round: publish up to a batch of pending records and ack the delivered ones. Returns
    /// how many were published and acked; `Err` if any failed (the delivered ones are acked
    /// first, the failed ones stay pending for the next round).
    pub async fn drain_once(&self) -> Result<usize> {
        self.round().await.map(|(published, _)| published)
    }

    async fn round(&self) -> Result<(usize, usize)> {
        let pending = self.store.outbox_pending(self.batch_size).await?;
        let fetched = pending.len();
        metrics::gauge!("nivesh_outbox_pending").set(fetched as f64);
        if pending.is_empty() {
            return Ok((0, 0));
        }
        // Enqueue strictly in commit order (the producer keeps that order per partition), then
        // await all reports together: one round trip per batch, not per record.
        let mut in_flight = Vec::with_capacity(fetched);
        let mut first_error: Option<Error> = None;
        for p in pending {
            match self.producer.enqueue(outgoing(p.message)).await {
                Ok(delivery) => in_flight.push(async move { (p.seq, delivery.await) }),
                Err(e) => {
                    // Stop here: enqueuing later records would publish them ahead of this one.
                    first_error = Some(e);
                    break;
                }
            }
        }
        let mut delivered = Vec::with_capacity(in_flight.len());
        for (seq, result) in join_all(in_flight).await {
            match result {
                Ok(_) => delivered.push(seq),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !delivered.is_empty() {
            self.store.outbox_ack(&delivered).await?;
            metrics::counter!("nivesh_outbox_published_total").increment(delivered.len() as u64);
        }
        metrics::gauge!("nivesh_outbox_pending").set((fetched - delivered.len()) as f64);
        match first_error {
            Some(e) => Err(e),
            None => Ok((delivered.len(), fetched)),
        }
    }
}

/// The message id also travels as a header, so consumers and tools can dedupe without decoding
/// the payload.
fn outgoing(m: OutboxMessage) -> OutgoingMessage {
    let mut hs = m.headers;
    if find_header(&hs, headers::MESSAGE_ID).is_none() {
        hs.push((headers::MESSAGE_ID.to_owned(), m.message_id.into_bytes()));
    }
    OutgoingMessage {
        topic: m.topic,
        key: m.key,
        payload: m.payload,
        headers: hs,
    }
}
