//! The Cosmos adapter against the shared DocumentStore contract (the same suite the embedded
//! store runs), on the SDK's in-memory emulator, plus what is specific to the Cosmos layout:
//! TTL properties, outbox items beside their documents, the relay's persisted lease, session
//! tokens.

use std::sync::Arc;
use std::time::Duration;

use nivesh_store::contract::document_store_contract;
use nivesh_store::{Batch, DocumentStore, IdRange, OutboxMessage, WriteOp};
use nivesh_store_cosmos::RetryPolicy;
use nivesh_store_cosmos::testing::Emulator;
use serde_json::json;

const DB: &str = "nivesh-test";
const CONTAINERS: &[&str] = &["contract_docs", "contract_feed", "contract_ttl", "orders"];

/// One physical partition per container (a young container), so the contract's ordering
/// checks see one feed range; `multi_range` tests below use four.
async fn emulator() -> Emulator {
    let emulator = Emulator::new();
    emulator.provision(DB, CONTAINERS, 1);
    emulator
}

async fn multi_range_emulator() -> Emulator {
    let emulator = Emulator::new();
    emulator.provision(DB, CONTAINERS, 4);
    emulator
}

fn message(id: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: id.into(),
        topic: "order.placed".into(),
        key: "inv-1".into(),
        payload: vec![0xC3, 0x01, 0x00, 0xFF],
        headers: vec![("event-type".into(), b"OrderPlaced".to_vec())],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_on_the_emulator() {
    let emulator = emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    document_store_contract(Arc::new(store)).await;
}

/// TTL is the item's `ttl` property in whole seconds (the emulator does not expire items, so
/// the property is what is asserted): audit records 7 years, idempotency keys 2 days, none for
/// documents without a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_written_as_the_ttl_property() {
    let emulator = emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    let seven_years = Duration::from_secs(7 * 365 * 24 * 3600);
    let two_days = Duration::from_secs(2 * 24 * 3600);
    store
        .commit(
            Batch::new("orders", "inv-ttl")
                .op(WriteOp::Create {
                    id: "audit-1".into(),
                    body: json!({"what": "audit"}),
                    ttl: Some(seven_years),
                })
                .op(WriteOp::Upsert {
                    id: "idem-1".into(),
                    body: json!({"what": "idempotency"}),
                    ttl: Some(two_days),
                })
                .op(WriteOp::Upsert {
                    id: "order-1".into(),
                    body: json!({"what": "order"}),
                    ttl: None,
                }),
        )
        .await
        .unwrap();
    let raw = |id: &'static str| {
        let store = &store;
        async move {
            store
                .raw_item("orders", "inv-ttl", id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(raw("audit-1").await["ttl"], json!(seven_years.as_secs()));
    assert_eq!(raw("idem-1").await["ttl"], json!(two_days.as_secs()));
    assert!(raw("order-1").await.get("ttl").is_none());
    // Replacing without a TTL clears it (the whole item is replaced).
    let doc = store
        .get("orders", "inv-ttl", "idem-1")
        .await
        .unwrap()
        .unwrap();
    store
        .commit(Batch::new("orders", "inv-ttl").op(WriteOp::Replace {
            id: "idem-1".into(),
            body: json!({"v": 2}),
            if_match: doc.etag,
            ttl: None,
        }))
        .await
        .unwrap();
    assert!(raw("idem-1").await.get("ttl").is_none());
}

/// The outbox record is an item of the batch's own logical partition, and our body is stored
/// untouched under `body`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_items_live_in_the_documents_partition() {
    let emulator = emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    let body = json!({"amount": "1500.00", "units": "12.345"});
    store
        .commit(
            Batch::new("orders", "inv-7")
                .op(WriteOp::Create {
                    id: "o-1".into(),
                    body: body.clone(),
                    ttl: None,
                })
                .emit(message("evt-7")),
        )
        .await
        .unwrap();
    let doc = store
        .raw_item("orders", "inv-7", "o-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc["partitionKey"], "inv-7");
    assert_eq!(doc["type"], "doc");
    assert_eq!(doc["body"], body);
    let outbox = store
        .raw_item("orders", "inv-7", "~outbox~evt-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outbox["type"], "outbox");
    assert_eq!(outbox["partitionKey"], "inv-7");
    assert_eq!(outbox["commit"], doc["commit"], "one commit wrote both");
    // Neither a query nor get shows the outbox record as a document.
    let docs = store
        .query_partition("orders", "inv-7", IdRange::default())
        .await
        .unwrap();
    assert_eq!(
        docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["o-1"]
    );
    assert_eq!(
        store.get("orders", "inv-7", "~outbox~evt-7").await.unwrap(),
        None
    );
}

/// The relay's lease is persisted: a new store (a restarted service) lists exactly the records
/// not yet acked, and after everything is acked the lease sits past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_lease_survives_a_restart() {
    let emulator = emulator().await;
    let first = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    for n in 0..3 {
        first
            .commit(
                Batch::new("orders", "inv-lease")
                    .op(WriteOp::Upsert {
                        id: format!("o-{n}"),
                        body: json!({"n": n}),
                        ttl: None,
                    })
                    .emit(message(&format!("lease-{n}"))),
            )
            .await
            .unwrap();
    }
    let ours = |p: &Vec<nivesh_store::PendingOutbox>| {
        p.iter()
            .filter(|p| p.message.message_id.starts_with("lease-"))
            .map(|p| p.message.message_id.clone())
            .collect::<Vec<_>>()
    };
    let pending = first.outbox_pending(100).await.unwrap();
    assert_eq!(ours(&pending), ["lease-0", "lease-1", "lease-2"]);
    let acked: Vec<u64> = pending
        .iter()
        .filter(|p| p.message.message_id == "lease-0")
        .map(|p| p.seq)
        .collect();
    first.outbox_ack(&acked).await.unwrap();
    assert_eq!(
        ours(&first.outbox_pending(100).await.unwrap()),
        ["lease-1", "lease-2"]
    );

    let restarted = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    let pending = restarted.outbox_pending(100).await.unwrap();
    assert_eq!(ours(&pending), ["lease-1", "lease-2"]);
    let seqs: Vec<u64> = pending.iter().map(|p| p.seq).collect();
    restarted.outbox_ack(&seqs).await.unwrap();
    assert!(restarted.outbox_pending(100).await.unwrap().is_empty());
    // A write after the ack moves the lease over the acked region; it is persisted.
    restarted
        .commit(Batch::new("orders", "inv-lease").op(WriteOp::Upsert {
            id: "later".into(),
            body: json!({}),
            ttl: None,
        }))
        .await
        .unwrap();
    assert!(restarted.outbox_pending(100).await.unwrap().is_empty());
    let lease = restarted
        .raw_item("orders", "~relay", "outbox-lease")
        .await
        .unwrap()
        .expect("the lease is persisted in the container");
    assert_eq!(lease["type"], "lease");
    assert!(
        lease["continuation"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
}

/// Every write leaves the partition's session token behind; reads of that partition send it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_token_is_kept_per_partition_key() {
    let emulator = emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    assert_eq!(store.session_token("orders", "inv-s"), None);
    store
        .commit(Batch::new("orders", "inv-s").op(WriteOp::Upsert {
            id: "p".into(),
            body: json!({"v": 1}),
            ttl: None,
        }))
        .await
        .unwrap();
    let token = store
        .session_token("orders", "inv-s")
        .expect("a write under session consistency returns a session token");
    assert!(!token.is_empty());
    assert_eq!(store.session_token("orders", "inv-other"), None);
    // Read-your-writes through the token.
    let got = store.get("orders", "inv-s", "p").await.unwrap().unwrap();
    assert_eq!(got.body, json!({"v": 1}));
}

/// A batch over Cosmos' 100-operation limit is refused before it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_cosmos_limit_are_invalid() {
    let emulator = emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    let mut batch = Batch::new("orders", "inv-big");
    for n in 0..100 {
        batch = batch.op(WriteOp::Upsert {
            id: format!("d-{n:03}"),
            body: json!({}),
            ttl: None,
        });
    }
    let err = store
        .commit(batch.clone().emit(message("one-too-many")))
        .await
        .unwrap_err();
    assert!(matches!(err, nivesh_store::Error::Invalid(_)), "{err:?}");
    assert_eq!(store.commit(batch).await.unwrap().len(), 100);
}

/// A scan that finds nothing moves the lease to the end of the feed; records committed after it
/// are still found by the next scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_an_idle_scan_are_found() {
    let emulator = multi_range_emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    store
        .commit(Batch::new("orders", "inv-idle").op(WriteOp::Upsert {
            id: "before".into(),
            body: json!({}),
            ttl: None,
        }))
        .await
        .unwrap();
    assert!(store.outbox_pending(100).await.unwrap().is_empty());
    assert!(store.outbox_pending(100).await.unwrap().is_empty());
    store
        .commit(Batch::new("orders", "inv-idle").emit(message("after-idle")))
        .await
        .unwrap();
    let pending = store.outbox_pending(100).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| p.message.message_id.as_str())
            .collect::<Vec<_>>(),
        ["after-idle"]
    );
}

/// With several feed ranges (physical partitions) the change feed still delivers every changed
/// document exactly once, across small pages; order is per range only (documented).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_range_change_feed_delivers_everything_once() {
    let emulator = multi_range_emulator().await;
    let store = emulator.store(DB, Vec::new(), RetryPolicy::default()).await;
    let mut want = std::collections::BTreeSet::new();
    for n in 0..40 {
        let pk = format!("scheme-{}", n % 13);
        let id = format!("2025-02-{:02}", n % 28 + 1);
        store
            .commit(
                Batch::new("orders", &pk)
                    .op(WriteOp::Upsert {
                        id: id.clone(),
                        body: json!({"n": n}),
                        ttl: None,
                    })
                    .emit(message(&format!("mr-{n}"))),
            )
            .await
            .unwrap();
        want.insert((pk, id));
    }
    let mut got = std::collections::BTreeSet::new();
    let mut at = nivesh_store::Continuation::default();
    loop {
        let (docs, next) = store.change_feed("orders", &at, 7).await.unwrap();
        assert!(docs.len() <= 7);
        at = next;
        if docs.is_empty() {
            break;
        }
        for d in docs {
            assert!(
                got.insert((d.partition_key.clone(), d.id.clone())),
                "{} twice",
                d.id
            );
        }
    }
    assert_eq!(got, want);
    let pending = store.outbox_pending(1000).await.unwrap();
    let mut ids: Vec<String> = pending
        .iter()
        .map(|p| p.message.message_id.clone())
        .collect();
    ids.sort();
    let mut expect: Vec<String> = (0..40).map(|n| format!("mr-{n}")).collect();
    expect.sort();
    assert_eq!(ids, expect);
}
