//! The adapter under the SDK's public fault injection (`fault_injection` feature), in front of
//! the in-memory emulator: 429 storms with `x-ms-retry-after-ms`, 503s, timeouts before and after
//! the service applied the write. Every case checks the stored state afterwards: each write
//! landed exactly once, or the caller got `Error::Unavailable` and nothing landed.
//!
//! The only durations asserted are lower bounds the adapter must honour (the advertised
//! retry-after), never how fast anything is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::StatusCode;
use azure_data_cosmos::fault_injection::{
    CustomResponseBuilder, FaultInjectionConditionBuilder, FaultInjectionErrorType,
    FaultInjectionResultBuilder, FaultInjectionRule, FaultInjectionRuleBuilder, FaultOperationType,
};
use nivesh_store::{Batch, DocumentStore, Error, IdRange, OutboxMessage, PendingOutbox, WriteOp};
use nivesh_store_cosmos::testing::Emulator;
use nivesh_store_cosmos::{CosmosStore, RetryPolicy};
use serde_json::json;

const DB: &str = "nivesh-faults";
const C: &str = "orders";

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        max_throttle_wait: Duration::from_secs(30),
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    }
}

async fn store_with(rules: Vec<Arc<FaultInjectionRule>>, retry: RetryPolicy) -> CosmosStore {
    let emulator = Emulator::new();
    emulator.provision(DB, &[C], 1);
    emulator.store(DB, rules, retry).await
}

fn throttle_rule(
    id: &str,
    op: FaultOperationType,
    retry_after_ms: u64,
    hits: Option<u32>,
) -> Arc<FaultInjectionRule> {
    let response = CustomResponseBuilder::new(StatusCode::TooManyRequests)
        .with_header("x-ms-retry-after-ms", retry_after_ms.to_string())
        .with_header("x-ms-request-charge", "0.5")
        .build();
    let result = FaultInjectionResultBuilder::new()
        .with_custom_response(response)
        .with_probability(1.0)
        .build();
    let mut rule = FaultInjectionRuleBuilder::new(id, result).with_condition(
        FaultInjectionConditionBuilder::new()
            .with_operation_type(op)
            .build(),
    );
    if let Some(hits) = hits {
        rule = rule.with_hit_limit(hits);
    }
    Arc::new(rule.build())
}

fn error_rule(
    id: &str,
    op: FaultOperationType,
    error: FaultInjectionErrorType,
    hits: Option<u32>,
) -> Arc<FaultInjectionRule> {
    let result = FaultInjectionResultBuilder::new()
        .with_error(error)
        .with_probability(1.0)
        .build();
    let mut rule = FaultInjectionRuleBuilder::new(id, result).with_condition(
        FaultInjectionConditionBuilder::new()
            .with_operation_type(op)
            .build(),
    );
    if let Some(hits) = hits {
        rule = rule.with_hit_limit(hits);
    }
    Arc::new(rule.build())
}

fn message(id: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: id.into(),
        topic: "order.placed".into(),
        key: "k".into(),
        payload: id.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

fn order(pk: &str, id: &str) -> Batch {
    Batch::new(C, pk)
        .op(WriteOp::Create {
            id: id.into(),
            body: json!({"order": id}),
            ttl: None,
        })
        .emit(message(&format!("msg-{id}")))
}

fn ids(pending: &[PendingOutbox]) -> Vec<String> {
    let mut ids: Vec<String> = pending
        .iter()
        .map(|p| p.message.message_id.clone())
        .collect();
    ids.sort();
    ids
}

/// A 429 storm on batches: every commit waits at least the advertised retry-after per 429 and
/// lands exactly once (one document, one outbox record).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttle_storm_honours_retry_after_and_loses_nothing() {
    const RETRY_AFTER_MS: u64 = 150;
    let storm = throttle_rule(
        "storm",
        FaultOperationType::BatchItem,
        RETRY_AFTER_MS,
        Some(3),
    );
    let store = store_with(vec![storm.clone()], policy(10)).await;

    let started = Instant::now();
    let docs = store.commit(order("inv-1", "o-first")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(storm.hit_count(), 3, "three 429s were injected");
    assert!(
        waited >= Duration::from_millis(3 * RETRY_AFTER_MS),
        "three 429s advertising {RETRY_AFTER_MS} ms each must make the adapter wait at least \
         {} ms, waited {waited:?}",
        3 * RETRY_AFTER_MS
    );
    assert_eq!(docs.len(), 1);
    assert_eq!(
        store.get(C, "inv-1", "o-first").await.unwrap(),
        Some(docs[0].clone())
    );
    assert_eq!(
        ids(&store.outbox_pending(100).await.unwrap()),
        ["msg-o-first"]
    );
}

/// Many concurrent writers under a storm (every batch request throttled 40 times in total):
/// all 20 commits land, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_under_a_storm_all_land_once() {
    let storm = throttle_rule("storm", FaultOperationType::BatchItem, 20, Some(40));
    let store = Arc::new(store_with(vec![storm.clone()], policy(30)).await);
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .commit(order(&format!("inv-{}", n % 4), &format!("o-{n:02}")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(storm.hit_count(), 40);
    let mut stored = Vec::new();
    for p in 0..4 {
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
    let want: Vec<String> = (0..20).map(|n| format!("o-{n:02}")).collect();
    assert_eq!(stored, want);
    let pending = store.outbox_pending(1000).await.unwrap();
    let want: Vec<String> = (0..20).map(|n| format!("msg-o-{n:02}")).collect();
    assert_eq!(
        ids(&pending),
        want,
        "one outbox record per commit, none twice"
    );
}

/// A storm that outlasts the attempt budget surfaces as `Unavailable`, and nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_throttling_is_unavailable_after_bounded_attempts() {
    let storm = throttle_rule("endless", FaultOperationType::BatchItem, 5, None);
    let store = store_with(vec![storm.clone()], policy(4)).await;
    let err = store.commit(order("inv-1", "o-never")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(
        storm.hit_count(),
        4,
        "bounded: exactly max_attempts requests"
    );
    storm.disable();
    assert_eq!(store.get(C, "inv-1", "o-never").await.unwrap(), None);
    assert!(store.outbox_pending(100).await.unwrap().is_empty());
}

/// Reads are throttled too (and retried the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_reads_are_retried() {
    let storm = throttle_rule("reads", FaultOperationType::ReadItem, 30, Some(2));
    let store = store_with(vec![storm.clone()], policy(5)).await;
    store.commit(order("inv-r", "o-r")).await.unwrap();
    let doc = store.get(C, "inv-r", "o-r").await.unwrap();
    assert!(doc.is_some());
    assert_eq!(storm.hit_count(), 2);
}

/// 503s on a batch are retried; the commit lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unavailable_is_retried_without_duplicates() {
    let rule = error_rule(
        "503",
        FaultOperationType::BatchItem,
        FaultInjectionErrorType::ServiceUnavailable,
        Some(2),
    );
    let store = store_with(vec![rule.clone()], policy(5)).await;
    let docs = store.commit(order("inv-5", "o-503")).await.unwrap();
    assert_eq!(rule.hit_count(), 2);
    assert_eq!(docs.len(), 1);
    assert_eq!(
        store.get(C, "inv-5", "o-503").await.unwrap(),
        Some(docs[0].clone())
    );
    assert_eq!(
        ids(&store.outbox_pending(100).await.unwrap()),
        ["msg-o-503"]
    );
}

/// The service applied the batch but the response never arrived (timeout after the service):
/// the retry hits the batch's own records, the adapter recognises its commit, and the caller
/// gets success with exactly one document and one outbox record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_after_the_write_landed_is_not_applied_twice() {
    let rule = error_rule(
        "lost-response",
        FaultOperationType::BatchItem,
        FaultInjectionErrorType::ResponseTimeoutAfterService,
        Some(1),
    );
    let store = store_with(vec![rule.clone()], policy(5)).await;
    let docs = store.commit(order("inv-t", "o-lost")).await.unwrap();
    assert_eq!(rule.hit_count(), 1);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].body, json!({"order": "o-lost"}));
    let stored = store.get(C, "inv-t", "o-lost").await.unwrap().unwrap();
    assert_eq!(stored, docs[0]);
    assert_eq!(
        ids(&store.outbox_pending(100).await.unwrap()),
        ["msg-o-lost"]
    );
    // A real conflict is still a conflict: the same create again is not "our" commit.
    let err = store.commit(order("inv-t", "o-lost")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

/// Timeouts on every attempt: `Unavailable`, nothing landed (the injected timeout never reached
/// the service), and the same commit succeeds once the network is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_timeouts_are_unavailable_and_write_nothing() {
    let rule = error_rule(
        "timeouts",
        FaultOperationType::BatchItem,
        FaultInjectionErrorType::Timeout,
        None,
    );
    let store = store_with(vec![rule.clone()], policy(3)).await;
    let err = store.commit(order("inv-x", "o-x")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(rule.hit_count() >= 3, "retried up to the budget");
    rule.disable();
    assert_eq!(store.get(C, "inv-x", "o-x").await.unwrap(), None);
    assert!(store.outbox_pending(100).await.unwrap().is_empty());
    store.commit(order("inv-x", "o-x")).await.unwrap();
    assert_eq!(ids(&store.outbox_pending(100).await.unwrap()), ["msg-o-x"]);
}

/// Reads that keep timing out surface as `Unavailable` (callers degrade), not as "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_timeouts_are_unavailable_not_missing() {
    let rule = error_rule(
        "read-timeouts",
        FaultOperationType::ReadItem,
        FaultInjectionErrorType::ResponseTimeout,
        None,
    );
    let store = store_with(vec![rule.clone()], policy(3)).await;
    rule.disable();
    store.commit(order("inv-rt", "o-rt")).await.unwrap();
    rule.enable();
    let err = store.get(C, "inv-rt", "o-rt").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    rule.disable();
    assert!(store.get(C, "inv-rt", "o-rt").await.unwrap().is_some());
}
