//! The run-time 429 storm switch (`testing::Storm`, the SDK's fault-injection rules) that the
//! runtime's `cosmos-emulator` backend arms from `store.cosmos_emulator.storm_file`: no faults
//! while the file is absent, 429s with the advertised retry-after while it exists, none again
//! once it is gone; every commit made during the storm lands exactly once (one document, one
//! outbox record), and the injected count is exported. Own test binary: it installs the
//! process-wide metrics recorder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use nivesh_store::{Batch, DocumentStore, IdRange, OutboxMessage, WriteOp};
use nivesh_store_cosmos::testing::{Emulator, INJECTED_FAULTS_METRIC, STORM_ACTIVE_METRIC, Storm};
use nivesh_store_cosmos::{CosmosStore, RetryPolicy};
use serde_json::json;

const DB: &str = "nivesh-storm";
const C: &str = "orders";
const PARTITIONS: usize = 4;

fn order(n: usize) -> Batch {
    let id = format!("o-{n:03}");
    Batch::new(C, format!("inv-{}", n % PARTITIONS))
        .op(WriteOp::Create {
            id: id.clone(),
            body: json!({"order": id}),
            ttl: None,
        })
        .emit(OutboxMessage {
            message_id: format!("msg-{id}"),
            topic: "order.placed".into(),
            key: "k".into(),
            payload: id.into_bytes(),
            headers: Vec::new(),
        })
}

/// Commit orders `range` concurrently, then read each back: all must succeed.
async fn round(store: &Arc<CosmosStore>, range: std::ops::Range<usize>) {
    let tasks: Vec<_> = range
        .map(|n| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let docs = store.commit(order(n)).await?;
                let read = store
                    .get(C, &format!("inv-{}", n % PARTITIONS), &format!("o-{n:03}"))
                    .await?;
                assert_eq!(read.as_ref(), docs.first(), "order {n} reads back");
                Ok::<_, nivesh_store::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_storm_file_switches_429s_and_writes_during_a_storm_land_once() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).expect("first recorder of this test binary");

    const RETRY_AFTER: Duration = Duration::from_millis(20);
    let storm = Arc::new(Storm::new(0.5, RETRY_AFTER).unwrap());
    assert!(Storm::new(0.0, RETRY_AFTER).is_err());
    assert!(Storm::new(1.01, RETRY_AFTER).is_err());
    let emulator = Emulator::new();
    emulator.provision(DB, &[C], 2);
    // A generous attempt budget: at a 50 % rate, 40 429s in a row on one operation is ~1e-12.
    let policy = RetryPolicy {
        max_attempts: 40,
        max_throttle_wait: Duration::from_secs(30),
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
    };
    let store = Arc::new(emulator.store(DB, storm.rules(), policy).await);
    let file = std::env::temp_dir().join(format!("nivesh-storm-{}", uuid::Uuid::new_v4()));
    let follower =
        tokio::spawn(Arc::clone(&storm).follow_file(file.clone(), Duration::from_millis(10)));

    // No file: no storm.
    round(&store, 0..20).await;
    assert!(!storm.is_active());
    assert_eq!(storm.injected(), 0, "no 429 while the file is absent");

    // The file appears: the storm is on, writes and reads are throttled and still succeed.
    std::fs::write(&file, b"storm").unwrap();
    wait_for("storm on", || storm.is_active()).await;
    let started = Instant::now();
    round(&store, 20..80).await;
    let waited = started.elapsed();
    let during = storm.injected();
    let by_op: std::collections::HashMap<_, _> =
        storm.injected_by_operation().into_iter().collect();
    assert!(by_op["BatchItem"] > 0, "batches were throttled: {by_op:?}");
    assert!(by_op["ReadItem"] > 0, "reads were throttled: {by_op:?}");
    assert_eq!(during, by_op.values().sum::<u64>());
    // Lower bound only: the adapter waited at least one advertised retry-after.
    assert!(waited >= RETRY_AFTER, "{waited:?}");

    // The file is removed: the storm stops, nothing more is injected.
    std::fs::remove_file(&file).unwrap();
    wait_for("storm off", || !storm.is_active()).await;
    round(&store, 80..100).await;
    assert_eq!(storm.injected(), during, "no 429 after the file is gone");

    // Exactly once: 100 documents, one outbox record per commit, none twice.
    let mut stored = Vec::new();
    for p in 0..PARTITIONS {
        stored.extend(
            store
                .query_partition(C, &format!("inv-{p}"), IdRange::default())
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id),
        );
    }
    stored.sort();
    let want: Vec<String> = (0..100).map(|n| format!("o-{n:03}")).collect();
    assert_eq!(stored, want);
    let mut outbox: Vec<String> = store
        .outbox_pending(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.message.message_id)
        .collect();
    outbox.sort();
    let want: Vec<String> = (0..100).map(|n| format!("msg-o-{n:03}")).collect();
    assert_eq!(outbox, want);

    // Exported: the injected count, the switch, and the adapter saw every injected 429.
    storm.publish_metrics();
    let text = metrics.render();
    assert_eq!(
        metric_sum(&text, INJECTED_FAULTS_METRIC),
        during as f64,
        "{text}"
    );
    assert_eq!(metric_sum(&text, STORM_ACTIVE_METRIC), 0.0, "{text}");
    assert_eq!(
        metric_sum(&text, "nivesh_cosmos_throttled_total"),
        during as f64,
        "{text}"
    );
    follower.abort();
}
