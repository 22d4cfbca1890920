//! The consumer loop: one task polls Kafka and routes records to one worker per partition.
//!
//! ```text
//!  librdkafka ──recv──▶ poll loop ──bounded channel──▶ partition worker ──▶ handler
//!      ▲                   │  (full: pause partition,           │  Ok: store offset
//!      │                   │   hold the one record,             │  Retryable: {group}.retry.{n}
//!      └──pause/resume─────┘   resume at half empty)            │  Permanent / exhausted: {group}.dlq
//!                                                               ▼  (store offset after the ack)
//! ```
//!
//! - Offsets: `enable.auto.commit=true` with `enable.auto.offset.store=false`. A worker stores a
//!   record's offset only after its handler succeeded or the record was acknowledged by the
//!   retry/DLQ topic, and a batch's offset is stored only once every earlier record of the
//!   partition finished, so the committed offset never passes an unfinished record: a crash anywhere redelivers, never loses.
//! - Concurrency: partitions run in parallel, and within a partition a worker takes every
//!   record already fetched (up to 256) as one batch whose keys run concurrently while records
//!   of the same key run strictly in offset order (Kafka's ordering promise is per key; a handler
//!   must already be safe for different keys at once, since keys on different partitions always
//!   were). At most `max_in_flight` handlers run at once (a semaphore). The batch's offset is
//!   stored only when every record of it finished, or up to the first unfinished one. This is
//!   what lets one slow record (a gateway call, a store commit) stop blocking a whole partition,
//!   and what lets the store group many commits into one transaction. A handler that says
//!   [`MessageHandler::batched`] gets the batch in *rounds* instead (`handle_many`, first
//!   deliveries only): round `r` holds the `r`-th record of every key, so it can read all their
//!   state in one multi-get and hand all their batches to the store at once, while each record
//!   still succeeds, retries or dead-letters on its own. Nothing is unbounded:
//!   each worker has a bounded channel, and when it is full the poll loop pauses that partition
//!   (librdkafka then discards its prefetch and refetches on resume) instead of buffering.
//! - Rebalance (see [`context`]): on revocation, the partition's worker is told to stop, its
//!   in-flight record finishes (bounded wait) and stored offsets are committed synchronously.
//! - Shutdown: stop polling, pause fetching, let in-flight handlers finish, commit synchronously,
//!   close (leave the group).
//!
//! Rejected: `split_partition_queue` per partition (natural backpressure, but queues must be
//! re-split after every assign, racing the rebalance callback), and one task per record with a
//! per-key lock (unbounded task count under load).

mod context;
mod worker;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::message::MessageHandler;
use crate::producer::BusProducer;
use crate::settings::KafkaSettings;
use crate::{Error, Result};

use context::BusContext;
use worker::WorkerEnv;

/// Default for [`ConsumerSettings::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// Records buffered per partition between the poll loop and the worker. Big enough that a
/// partition is paused only when its handler really falls behind: every pause/resume makes
/// librdkafka drop its prefetch and refetch, and at 16 that cycle ran every few records and capped
/// a partition at a few dozen records/s (measured: the NAV file at ~250 NAVs/s in release).
/// Memory stays bounded: this many records per assigned partition.
const PARTITION_QUEUE: usize = 512;

/// How long a revocation waits for a revoked partition's in-flight handler before committing
/// without it (its record is then redelivered to the new owner, which dedupes).
const REVOKE_GRACE: Duration = Duration::from_secs(10);

/// How long a graceful shutdown waits for in-flight handlers before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What a consumer group reads and how.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group: String,
    /// Topics to subscribe to. The group's retry topics (one per `retry_delays` entry) are added
    /// by [`run_consumer`]; listing them here too is harmless.
    pub topics: Vec<String>,
    /// Ceiling of the jittered delay of each retry tier; empty means "no retries, straight to
    /// the dead-letter topic".
    pub retry_delays: Vec<Duration>,
    /// Maximum number of handlers running at once across all partitions.
    pub max_in_flight: usize,
    pub kafka: KafkaSettings,
    /// A deliberately injected bug, for the chaos suite only: store and commit a batch's offsets
    /// BEFORE its handlers run, so a crash mid-batch skips records instead of redelivering them.
    /// Proves the reconciliation checker can fail. Set from [`UNSAFE_COMMIT_BEFORE_PROCESS_ENV`]
    /// by [`ConsumerSettings::from_catalog`]; [`run_consumer`] logs it at ERROR and refuses it
    /// when `NIVESH_ENV` names a production-like environment.
    pub unsafe_commit_before_process: bool,
}

/// `NIVESH_BUS__UNSAFE_COMMIT_BEFORE_PROCESS=1` turns on
/// [`ConsumerSettings::unsafe_commit_before_process`] (the chaos suite's injected bug).
pub const UNSAFE_COMMIT_BEFORE_PROCESS_ENV: &str = "NIVESH_BUS__UNSAFE_COMMIT_BEFORE_PROCESS";

/// Environments (`NIVESH_ENV`) in which the injected bug is refused.
const PRODUCTION_ENVIRONMENTS: [&str; 3] = ["prod", "production", "staging"];

/// Is `environment` (`NIVESH_ENV`) one where the injected bug must be refused?
fn refuses_injected_bug(environment: &str) -> bool {
    PRODUCTION_ENVIRONMENTS.contains(&environment.trim().to_ascii_lowercase().as_str())
}

/// Is the injected bug switched on in this process's environment?
fn unsafe_commit_before_process_from_env() -> bool {
    std::env::var(UNSAFE_COMMIT_BEFORE_PROCESS_ENV)
        .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

impl ConsumerSettings {
    /// Topics and retry tiers of a catalog group.
    pub fn from_catalog(group: &str, kafka: KafkaSettings) -> Result<Self> {
        let spec = catalog::group(group).ok_or_else(|| Error::UnknownGroup(group.to_owned()))?;
        Ok(ConsumerSettings {
            group: spec.group.to_owned(),
            topics: spec.consumes.iter().map(|t| (*t).to_owned()).collect(),
            retry_delays: spec.retry_delays.to_vec(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            kafka,
            unsafe_commit_before_process: unsafe_commit_before_process_from_env(),
        })
    }

    /// Every topic the group subscribes to: its topics plus its retry topics.
    pub fn subscription(&self) -> Vec<String> {
        let mut all = self.topics.clone();
        for tier in 0..self.retry_delays.len() {
            let t = catalog::retry_topic(&self.group, tier);
            if !all.contains(&t) {
                all.push(t);
            }
        }
        all
    }
}

/// Consume until `shutdown` is cancelled (graceful: in-flight handlers finish and their offsets
/// are committed) or a fatal Kafka error. Dropping the future instead (task abort) is a crash:
/// unfinished records are redelivered to the next member of the group.
///
/// `producer` publishes to the group's retry and dead-letter topics.
pub async fn run_consumer(
    settings: ConsumerSettings,
    handler: Arc<dyn MessageHandler>,
    producer: BusProducer,
    shutdown: CancellationToken,
) -> Result<()> {
    if settings.group.is_empty() || settings.topics.is_empty() || settings.max_in_flight == 0 {
        return Err(Error::Config(format!(
            "consumer needs a group, topics and max_in_flight > 0 (got group {:?}, {} topics, max_in_flight {})",
            settings.group,
            settings.topics.len(),
            settings.max_in_flight
        )));
    }
    if settings.unsafe_commit_before_process {
        let environment = std::env::var("NIVESH_ENV").unwrap_or_default();
        if refuses_injected_bug(&environment) {
            return Err(Error::Config(format!(
                "{UNSAFE_COMMIT_BEFORE_PROCESS_ENV} is a deliberately injected bug and is refused in NIVESH_ENV={environment}"
            )));
        }
        tracing::error!(
            group = %settings.group,
            "{UNSAFE_COMMIT_BEFORE_PROCESS_ENV} is on: offsets are committed BEFORE processing; a crash LOSES records (chaos-suite injected bug, never use it for real)"
        );
    }
    let subscription = settings.subscription();
    let shared = Arc::new(Shared::new(settings.group.clone()));
    let mut cfg = settings.kafka.client_config(&[
        // A group that starts after events were produced must see them: nothing is lost by
        // deploying a consumer late.
        ("auto.offset.reset", "earliest"),
        // Commits are async and cheap; a shorter interval means fewer redeliveries after a crash.
        ("auto.commit.interval.ms", "1000"),
        // Per-partition prefetch target. The default (100k records) is a lot of memory and a lot
        // to throw away when a slow partition is paused.
        ("queued.min.messages", "1000"),
        // Once a partition's prefetch passes that threshold, librdkafka postpones its next fetch
        // by this long (default 1000 ms) even if the application drains the queue at once.
        // Measured on the NAV file: consumption came in one burst per second per partition
        // (~1,500 NAVs/s for the whole pipeline) while every handler sat idle in between.
        ("fetch.queue.backoff.ms", "10"),
        // How long a fetch of an idle partition may wait for data. A real broker answers a
        // waiting fetch as soon as data arrives; the dev broker (librdkafka's mock cluster) only
        // when this runs out, which put up to 500 ms (the default) on every hop of a pipeline
        // after a quiet spell. 50 ms costs an idle consumer ~20 empty fetches/s per broker.
        ("fetch.wait.max.ms", "50"),
        // Drives the lag gauge (see `context`).
        ("statistics.interval.ms", "5000"),
        // A crashed member's partitions move to the survivors after this long. librdkafka's
        // 45 s default stalls a SIGKILLed service's partitions for most of a minute; 10 s still
        // rides out GC-free Rust pauses and brief network blips (heartbeats every 2 s).
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "2000"),
    ]);
    // Forced after `extra`: the no-loss guarantee rests on these.
    cfg.set("group.id", &settings.group);
    cfg.set("enable.auto.commit", "true");
    cfg.set("enable.auto.offset.store", "false");
    cfg.set("enable.partition.eof", "false");

    let consumer: Arc<StreamConsumer<BusContext>> =
        Arc::new(cfg.create_with_context(BusContext::new(shared.clone(), REVOKE_GRACE))?);
    let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(group = %settings.group, topics = ?subscription, "consumer subscribed");

    let env = Arc::new(WorkerEnv::new(
        &settings,
        handler,
        producer,
        consumer.clone(),
    ));
    let mut poll = PollLoop {
        consumer,
        shared: shared.clone(),
        env,
        workers: JoinSet::new(),
        held: HashMap::new(),
        waits: FuturesUnordered::new(),
    };
    // Marks the registry closing however this future ends (return or drop), so a revocation
    // during close does not wait for workers that are gone.
    let _closing = ClosingGuard(shared);
    let outcome = poll.run(&shutdown).await;
    poll.shutdown().await;
    outcome
}

/// (topic, partition)
pub(crate) type Tp = (String, i32);

/// State shared by the poll loop, the rebalance callbacks and the lag reporter.
pub(crate) struct Shared {
    pub(crate) group: String,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// Assigned partitions and their assignment generation. A record whose partition is not here
    /// (revoked) is dropped; a worker or held record of an older generation is stale.
    assigned: HashMap<Tp, u64>,
    workers: HashMap<Tp, WorkerHandle>,
    next_generation: u64,
    closing: bool,
}

struct WorkerHandle {
    generation: u64,
    tx: mpsc::Sender<worker::Record>,
    cancel: CancellationToken,
    done: Arc<Done>,
}

impl Shared {
    fn new(group: String) -> Self {
        let shared = Shared {
            group,
            registry: Mutex::new(Registry::default()),
        };
        shared.report_assigned(0);
        shared
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain maps behind; they are still consistent
        // enough to keep serving (worst case a record is redelivered).
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a new assignment.
    pub(crate) fn assign(&self, tps: &[Tp]) {
        let mut reg = self.registry();
        for tp in tps {
            reg.next_generation += 1;
            let generation = reg.next_generation;
            reg.assigned.insert(tp.clone(), generation);
        }
        self.report_assigned(reg.assigned.len());
    }

    /// `nivesh_consumer_assigned_partitions{group}`: 0 while a member waits for its first
    /// assignment (records produced meanwhile wait too), and after it lost everything.
    fn report_assigned(&self, n: usize) {
        metrics::gauge!("nivesh_consumer_assigned_partitions", "group" => self.group.clone())
            .set(n as f64);
    }

    /// The partitions currently assigned to this member.
    pub(crate) fn assigned(&self) -> HashSet<Tp> {
        self.registry().assigned.keys().cloned().collect()
    }

    /// Forget revoked partitions and tell their workers to stop after the current record.
    /// Returns what to wait on, and whether the consumer is closing (then nothing should wait).
    pub(crate) fn revoke(&self, tps: &[Tp]) -> (Vec<Arc<Done>>, bool) {
        let mut reg = self.registry();
        let mut done = Vec::new();
        for tp in tps {
            reg.assigned.remove(tp);
            if let Some(w) = reg.workers.remove(tp) {
                w.cancel.cancel();
                done.push(w.done);
            }
        }
        self.report_assigned(reg.assigned.len());
        (done, reg.closing)
    }
}

/// Set when a worker task ends (its future completed or was dropped).
pub(crate) struct Done {
    finished: Mutex<bool>,
    cv: Condvar,
}

impl Done {
    fn new() -> Arc<Self> {
        Arc::new(Done {
            finished: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    /// Block until finished or `deadline`; true when finished.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        while !*finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            finished = self
                .cv
                .wait_timeout(finished, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Owned by the worker future; dropping it (completion or abort) marks the worker done.
pub(crate) struct DoneGuard(Arc<Done>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        *self.0.finished.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.cv.notify_all();
    }
}

struct ClosingGuard(Arc<Shared>);

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        let mut reg = self.0.registry();
        reg.closing = true;
        for w in reg.workers.values() {
            w.cancel.cancel();
        }
    }
}

/// Records of a paused partition waiting for room in its worker's channel.
struct Held {
    generation: u64,
    records: VecDeque<worker::Record>,
}

type CapacityWait = Pin<Box<dyn Future<Output = (Tp, u64)> + Send>>;

struct PollLoop {
    consumer: Arc<StreamConsumer<BusContext>>,
    shared: Arc<Shared>,
    env: Arc<WorkerEnv>,
    workers: JoinSet<()>,
    held: HashMap<Tp, Held>,
    /// One per held partition: resolves when its worker's channel is half empty (or closed).
    waits: FuturesUnordered<CapacityWait>,
}

impl PollLoop {
    async fn run(&mut self, shutdown: &CancellationToken) -> Result<()> {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some((tp, generation)) = self.waits.next(), if !self.waits.is_empty() => {
                    self.release_held(tp, generation);
                }
                Some(joined) = self.workers.join_next(), if !self.workers.is_empty() => {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        // Handler panics are caught inside the worker; this is a bug in the bus.
                        // Its record was not stored, so failing the consumer redelivers it.
                        return Err(Error::Task(format!("partition worker panicked: {e}")));
                    }
                }
                msg = self.consumer.recv() => match msg {
                    Ok(m) => {
                        let record = worker::Record::from_message(&m);
                        drop(m);
                        self.dispatch(record);
                    }
                    Err(KafkaError::MessageConsumptionFatal(code)) => {
                        return Err(Error::Kafka(KafkaError::MessageConsumptionFatal(code)));
                    }
                    Err(e) => {
                        // Transient (broker down, topic not yet known): librdkafka recovers on
                        // its own; the error is reported, not fatal.
                        tracing::warn!(group = %self.shared.group, error = %e, "consume error");
                    }
                },
            }
        }
    }

    fn dispatch(&mut self, record: worker::Record) {
        let tp: Tp = (record.topic.clone(), record.partition);
        let Some(generation) = self.shared.registry().assigned.get(&tp).copied() else {
            // Revoked between fetch and here: its new owner reads it from the committed offset.
            tracing::debug!(topic = %tp.0, partition = tp.1, "record of an unassigned partition dropped");
            return;
        };
        if let Some(held) = self.held.get_mut(&tp) {
            if held.generation == generation {
                // A record fetched before the pause took effect: keep order behind the held ones.
                held.records.push_back(record);
                return;
            }
            self.held.remove(&tp);
        }
        let tx = self.worker_tx(&tp, generation);
        match tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                self.pause(&tp);
                self.held.insert(
                    tp.clone(),
                    Held {
                        generation,
                        records: VecDeque::from([record]),
                    },
                );
                self.wait_for_room(tp, generation, tx);
            }
            // The worker was stopped by a revocation a moment ago; the record is not ours.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The partition's worker for this generation, spawned on first use.
    fn worker_tx(&mut self, tp: &Tp, generation: u64) -> mpsc::Sender<worker::Record> {
        let mut reg = self.shared.registry();
        if let Some(w) = reg.workers.get(tp)
            && w.generation == generation
        {
            return w.tx.clone();
        }
        let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
        let cancel = CancellationToken::new();
        let done = Done::new();
        let guard = DoneGuard(done.clone());
        let env = self.env.clone();
        let worker_cancel = cancel.clone();
        let partition = tp.clone();
        self.workers
            .spawn(async move { worker::run(env, partition, rx, worker_cancel, guard).await });
        if let Some(old) = reg.workers.insert(
            tp.clone(),
            WorkerHandle {
                generation,
                tx: tx.clone(),
                cancel,
                done,
            },
        ) {
            old.cancel.cancel();
        }
        tx
    }

    fn wait_for_room(&mut self, tp: Tp, generation: u64, tx: mpsc::Sender<worker::Record>) {
        self.waits.push(Box::pin(async move {
            // Half empty rather than one free slot: resuming refetches from the broker, so
            // resuming at every free slot would refetch the same records over and over.
            let want = (PARTITION_QUEUE / 2).max(1);
            // Err means the worker is gone; `release_held` sees that and drops the records.
            let _ = tx.reserve_many(want).await;
            (tp, generation)
        }));
    }

    fn release_held(&mut self, tp: Tp, generation: u64) {
        let current = {
            let reg = self.shared.registry();
            match (reg.assigned.get(&tp), reg.workers.get(&tp)) {
                (Some(g), Some(w)) if *g == generation && w.generation == generation => {
                    Some(w.tx.clone())
                }
                _ => None,
            }
        };
        let Some(tx) = current else {
            self.held.remove(&tp);
            return;
        };
        let Some(held) = self.held.get_mut(&tp) else {
            return;
        };
        if held.generation != generation {
            return;
        }
        while let Some(record) = held.records.pop_front() {
            match tx.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(record)) => {
                    held.records.push_front(record);
                    self.wait_for_room(tp, generation, tx);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.held.remove(&tp);
                    return;
                }
            }
        }
        self.held.remove(&tp);
        self.resume(&tp);
    }

    fn pause(&self, tp: &Tp) {
        if let Err(e) = self.consumer.pause(&tpl(std::slice::from_ref(tp))) {
            tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "pause failed");
        }
    }

    fn resume(&self, tp: &Tp) {
        if let Err(e) = self.consumer.resume(&tpl(std::slice::from_ref(tp))) {
            tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "resume failed");
        }
    }

    /// Graceful end: stop fetching, let in-flight handlers finish, commit, leave the group.
    async fn shutdown(mut self) {
        if let Ok(assignment) = self.consumer.assignment()
            && assignment.count() > 0
        {
            let _ = self.consumer.pause(&assignment);
        }
        self.held.clear();
        self.waits = FuturesUnordered::new();
        {
            let mut reg = self.shared.registry();
            reg.closing = true;
            for (_, w) in reg.workers.drain() {
                w.cancel.cancel();
            }
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(group = %self.shared.group, "in-flight handlers did not finish in time; their records will be redelivered");
            self.workers.shutdown().await;
        }
        let PollLoop {
            consumer,
            env,
            shared,
            ..
        } = self;
        drop(env);
        // Commit and close block on the network; keep them off the async workers.
        let closed = tokio::task::spawn_blocking(move || {
            commit_stored(consumer.as_ref(), &shared.group);
            // Dropping the last handle closes the consumer: leaves the group promptly instead of
            // making the others wait for the session timeout.
            drop(consumer);
        })
        .await;
        if let Err(e) = closed {
            tracing::warn!(error = %e, "consumer close task failed");
        }
    }
}

/// Synchronous commit of the stored offsets; "nothing to commit" is not an error.
pub(crate) fn commit_stored<C: Consumer<BusContext>>(consumer: &C, group: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(group = %group, error = %e, "offset commit failed"),
    }
}

fn tpl(tps: &[Tp]) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(tps.len());
    for (topic, partition) in tps {
        list.add_partition(topic, *partition);
    }
    list
}

fn tps_of(list: &TopicPartitionList) -> Vec<Tp> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::refuses_injected_bug;

    /// The injected bug is refused in production-like environments, allowed locally.
    #[test]
    fn injected_bug_refused_in_production() {
        for env in ["prod", "production", "Production", " staging "] {
            assert!(refuses_injected_bug(env), "{env}");
        }
        for env in ["", "local", "test", "dev"] {
            assert!(!refuses_injected_bug(env), "{env}");
        }
    }
}
