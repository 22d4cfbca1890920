use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nivesh_bus::{OutboxRelay, headers};
use nivesh_store::{
    Batch, Continuation, DocumentStore, EmbeddedStore, IdRange, OutboxMessage, PendingOutbox,
    StoredDoc, WriteOp,
};
use tokio_util::sync::CancellationToken;

use crate::common::{Env, eventually, header};

/// Commits `n` state changes, each emitting one event whose payload is its message id.
async fn commit_changes(store: &dyn DocumentStore, topic: &str, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let id = uuid::Uuid::now_v7().to_string();
        let investor = format!("investor-{}", i % 3);
        let batch = Batch::new("orders", investor.clone())
            .op(WriteOp::Upsert {
                id: format!("order-{i}"),
                body: serde_json::json!({"n": i}),
                ttl: None,
            })
            .emit(OutboxMessage {
                message_id: id.clone(),
                topic: topic.to_owned(),
                key: investor,
                payload: id.clone().into_bytes(),
                headers: vec![],
            });
        store.commit(batch).await.expect("commit");
        ids.insert(id);
    }
    ids
}

/// ACCEPTANCE: with no relay running, committed events are not on the topic; once the relay
/// runs, exactly one record per state change arrives, with the committed message ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_publishes_exactly_one_record_per_committed_change() {
    let env = Env::start();
    let topic = nivesh_testkit::unique("orders");
    env.broker.create_topic(&topic, 3).expect("topic");
    let store: Arc<dyn DocumentStore> = Arc::new(EmbeddedStore::in_memory().expect("store"));

    let committed = commit_changes(store.as_ref(), &topic, 20).await;
    // No relay: nothing is published, however long we look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.read_all(&topic).await.len(),
        0,
        "published without a relay"
    );
    assert_eq!(store.outbox_pending(100).await.expect("pending").len(), 20);

    let relay = OutboxRelay::new(store.clone(), env.producer.clone()).with_batch_size(7);
    let notify = relay.notifier();
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    eventually("outbox drained", || async {
        store.outbox_pending(100).await.expect("pending").is_empty()
    })
    .await;

    // A later commit is published too, promptly after a notify.
    let more = commit_changes(store.as_ref(), &topic, 1).await;
    notify.notify_one();
    eventually("late change drained", || async {
        store.outbox_pending(100).await.expect("pending").is_empty()
    })
    .await;
    // Let the relay idle through a few more rounds: it must not publish anything again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    task.await.expect("join").expect("relay");

    let records = env.read_all(&topic).await;
    let ids: Vec<String> = records
        .iter()
        .map(|r| header(r, headers::MESSAGE_ID).to_owned())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(records.len(), 21, "one record per state change");
    assert_eq!(unique.len(), ids.len(), "no message id twice");
    let expected: BTreeSet<String> = committed.union(&more).cloned().collect();
    assert_eq!(unique, expected);
    for r in &records {
        assert_eq!(r.payload, header(r, headers::MESSAGE_ID).as_bytes());
        assert!(r.key_str().is_some_and(|k| k.starts_with("investor-")));
    }
    // Same key, same partition, commit order kept.
    let mut by_key: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for r in &records {
        by_key
            .entry(r.key_str().unwrap_or_default().to_owned())
            .or_default()
            .push((r.partition, r.offset));
    }
    for (key, places) in by_key {
        assert!(
            places.windows(2).all(|w| w[0].0 == w[1].0),
            "{key} spread over partitions"
        );
    }
}

/// A store whose `outbox_ack` fails while `failing_acks` > 0: the relay "crashed" after
/// publishing and before marking published.
struct AckFails {
    inner: EmbeddedStore,
    failing_acks: AtomicUsize,
}

#[async_trait]
impl DocumentStore for AckFails {
    async fn get(&self, c: &str, pk: &str, id: &str) -> nivesh_store::Result<Option<StoredDoc>> {
        self.inner.get(c, pk, id).await
    }
    async fn commit(&self, batch: Batch) -> nivesh_store::Result<Vec<StoredDoc>> {
        self.inner.commit(batch).await
    }
    async fn query_partition(
        &self,
        c: &str,
        pk: &str,
        range: IdRange,
    ) -> nivesh_store::Result<Vec<StoredDoc>> {
        self.inner.query_partition(c, pk, range).await
    }
    async fn change_feed(
        &self,
        c: &str,
        from: &Continuation,
        max: usize,
    ) -> nivesh_store::Result<(Vec<StoredDoc>, Continuation)> {
        self.inner.change_feed(c, from, max).await
    }
    async fn outbox_pending(&self, max: usize) -> nivesh_store::Result<Vec<PendingOutbox>> {
        self.inner.outbox_pending(max).await
    }
    async fn outbox_ack(&self, seqs: &[u64]) -> nivesh_store::Result<()> {
        if self.failing_acks.load(Ordering::SeqCst) > 0 {
            self.failing_acks.fetch_sub(1, Ordering::SeqCst);
            return Err(nivesh_store::Error::Unavailable(
                "crashed before ack".into(),
            ));
        }
        self.inner.outbox_ack(seqs).await
    }
    async fn ping(&self) -> nivesh_store::Result<()> {
        self.inner.ping().await
    }
}

/// Published but not acked (a crash in between): the next round republishes the same message
/// ids, never new ones, and once acked nothing more is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_republishes_same_ids_when_ack_is_lost() {
    let env = Env::start();
    let topic = nivesh_testkit::unique("payments");
    env.broker.create_topic(&topic, 2).expect("topic");
    let store = Arc::new(AckFails {
        inner: EmbeddedStore::in_memory().expect("store"),
        failing_acks: AtomicUsize::new(1),
    });
    let committed = commit_changes(store.as_ref(), &topic, 5).await;

    let relay = OutboxRelay::new(store.clone(), env.producer.clone());
    assert!(
        relay.drain_once().await.is_err(),
        "the ack failure is reported"
    );
    assert_eq!(
        env.read_all(&topic).await.len(),
        5,
        "published before the ack"
    );
    assert_eq!(relay.drain_once().await.expect("second round"), 5);
    assert_eq!(
        relay.drain_once().await.expect("third round"),
        0,
        "nothing left once acked"
    );

    let records = env.read_all(&topic).await;
    assert_eq!(records.len(), 10);
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *count
            .entry(header(r, headers::MESSAGE_ID).to_owned())
            .or_default() += 1;
    }
    let ids: BTreeSet<String> = count.keys().cloned().collect();
    assert_eq!(ids, committed, "only committed ids, no new ones");
    assert!(
        count.values().all(|n| *n == 2),
        "each id exactly twice: {count:?}"
    );
}
