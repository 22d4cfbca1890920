//! librdkafka callbacks: rebalances and statistics (for the lag gauge).
//!
//! Both run on the thread that polls the consumer, inside the poll loop's `recv`, so they must be
//! quick. The one exception is waiting for a revoked partition's in-flight handler: the offset it
//! is about to store must reach the commit before the partition moves, or the new owner redoes
//! the work. That wait is bounded, and on a multi-threaded runtime it is announced to tokio
//! (`block_in_place`) so other tasks, including that very handler, keep running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Done, Shared, commit_stored, tps_of};

pub(crate) struct BusContext {
    shared: Arc<Shared>,
    revoke_grace: Duration,
}

impl BusContext {
    pub(crate) fn new(shared: Arc<Shared>, revoke_grace: Duration) -> Self {
        BusContext {
            shared,
            revoke_grace,
        }
    }
}

impl ClientContext for BusContext {
    fn stats(&self, statistics: Statistics) {
        // Our own assignment decides which partitions to report: librdkafka's statistics also
        // list partitions it merely knows about (metadata, former assignments).
        let assigned = self.shared.assigned();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if !assigned.contains(&(topic.clone(), *partition)) {
                    continue;
                }
                if let Some(lag) = partition_lag(p.hi_offset, p.app_offset, p.committed_offset) {
                    set_lag(&self.shared.group, topic, *partition, lag);
                }
            }
        }
    }
}

impl ConsumerContext for BusContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let tps = tps_of(list);
                tracing::info!(group = %self.shared.group, partitions = tps.len(), "partitions assigned");
                self.shared.assign(&tps);
            }
            Rebalance::Revoke(list) => {
                let tps = tps_of(list);
                tracing::info!(group = %self.shared.group, partitions = tps.len(), "partitions revoked");
                let (done, closing) = self.shared.revoke(&tps);
                if !closing && !done.is_empty() {
                    wait_for_workers(&done, self.revoke_grace);
                }
                commit_stored(consumer, &self.shared.group);
                for (topic, partition) in &tps {
                    // This member no longer owns the partition; its new owner reports the lag.
                    set_lag(&self.shared.group, topic, *partition, 0);
                }
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "rebalance error")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            // Not lost, only late: the offsets stay stored and the next commit carries them; if
            // the partition moves first, its records are redelivered (and deduped).
            Err(e) => tracing::warn!(
                group = %self.shared.group,
                error = %e,
                partitions = offsets.count(),
                "offset commit failed"
            ),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance
            && list.count() > 0
        {
            // A partition paused for backpressure and then revoked would otherwise come back
            // paused, with nobody left to resume it.
            if let Err(e) = rdkafka::consumer::Consumer::resume(consumer, list) {
                tracing::warn!(group = %self.shared.group, error = %e, "resume after assign failed");
            }
        }
    }
}

fn wait_for_workers(done: &[Arc<Done>], grace: Duration) {
    let deadline = Instant::now() + grace;
    let wait = || {
        let all = done.iter().all(|d| d.wait_until(deadline));
        if !all {
            tracing::warn!(
                "revoked partition's handler still running after the grace period; its record will be redelivered"
            );
        }
    };
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        // On a current-thread runtime the handler cannot run while this thread waits; waiting
        // would only stall. Not waiting costs a redelivery, which the inbox absorbs.
        Ok(_) => {}
        // Outside any runtime (a plain thread): the workers run elsewhere, waiting is safe.
        Err(_) => wait(),
    }
}

/// High watermark minus the consumer's position (next offset it will hand out; before the first
/// record since assignment, the committed offset). `None` while either is unknown.
pub(crate) fn partition_lag(
    high_watermark: i64,
    app_offset: i64,
    committed_offset: i64,
) -> Option<i64> {
    if high_watermark < 0 {
        return None;
    }
    let position = if app_offset >= 0 {
        app_offset
    } else if committed_offset >= 0 {
        committed_offset
    } else {
        return None;
    };
    Some((high_watermark - position).max(0))
}

fn set_lag(group: &str, topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(
        "nivesh_consumer_lag",
        "group" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag as f64);
}

#[cfg(test)]
mod tests {
    use super::partition_lag;

    /// Lag is high watermark minus position, preferring the application position.
    #[test]
    fn lag_uses_position_then_committed() {
        assert_eq!(partition_lag(100, 40, 10), Some(60));
        assert_eq!(partition_lag(100, -1001, 90), Some(10));
        assert_eq!(partition_lag(100, -1001, -1001), None);
        assert_eq!(partition_lag(-1, 5, 5), None);
        // A position past a stale watermark is not negative lag.
        assert_eq!(partition_lag(5, 7, 0), Some(0));
    }
}
