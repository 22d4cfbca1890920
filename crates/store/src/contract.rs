//! Behavioural suites every backend of the ports must pass: [`document_store_contract`] and
//! [`cache_contract`]. They panic with a `contract [check]: ...` message on the first violation.
//!
//! Backend-neutral by design, because the Cosmos adapter will run them unchanged:
//! - Only the port is used; no SQL, no peeking at files or keys.
//! - Container names are fixed (`contract_docs`, `contract_feed`, `contract_ttl`), because real
//!   Cosmos containers are provisioned, not created on the fly; isolation between runs comes from
//!   run-unique partition keys, ids and message ids instead. A run can therefore share a store with
//!   other runs or traffic: reads are filtered to this run's partitions and messages.
//! - Nothing assumes more than the port says: sequences are compared for order across commits
//!   (Cosmos gives all docs of one batch the same LSN), TTLs are whole seconds (Cosmos' unit),
//!   and an outbox message_id is re-emitted in the same partition only (a transactional batch
//!   cannot see other partitions).
//! - No timing is asserted; the only sleeps wait for TTLs to pass.
//!
//! Needs a multi-threaded Tokio runtime (it spawns concurrent writers).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    Batch, Cache, Continuation, DocumentStore, ETag, Error, IdRange, OutboxMessage, PendingOutbox,
    Result, StoredDoc, WriteOp,
};

const DOCS: &str = "contract_docs";
const FEED: &str = "contract_feed";
const TTL: &str = "contract_ttl";

/// Run every [`DocumentStore`] check against `store`.
pub async fn document_store_contract(store: Arc<dyn DocumentStore>) {
    let run = Run::new();
    let s = &*store;
    ok("ping", s.ping()).await;
    empty_batch(s).await;
    create_conflicts(s, &run).await;
    etag_preconditions(s, &run).await;
    missing_documents(s, &run).await;
    commit_returns_docs_in_op_order(s, &run).await;
    batch_is_atomic(s, &run).await;
    many_batches_and_reads(s, &run).await;
    outbox_order_and_ack(s, &run).await;
    outbox_rejects_reemitted_message(s, &run).await;
    range_queries(s, &run).await;
    change_feed(s, &run).await;
    // The TTL check mostly sleeps; let the concurrency check use that time.
    tokio::join!(
        ttl_hides_expired(s, &run),
        concurrent_commits(Arc::clone(&store), &run)
    );
}

/// Names unique to one run of a suite.
struct Run(String);

impl Run {
    fn new() -> Self {
        Run(uuid::Uuid::new_v4().simple().to_string())
    }
    fn pk(&self, name: &str) -> String {
        format!("{}-{name}", self.0)
    }
    fn msg(&self, name: &str) -> String {
        format!("contract-{}-{name}", self.0)
    }
    fn owns(&self, message: &OutboxMessage) -> bool {
        message
            .message_id
            .starts_with(&format!("contract-{}-", self.0))
    }
}

async fn ok<T>(check: &str, fut: impl Future<Output = Result<T>>) -> T {
    match fut.await {
        Ok(value) => value,
        Err(e) => panic!("contract [{check}]: unexpected error: {e}"),
    }
}

async fn fails<T: std::fmt::Debug>(check: &str, fut: impl Future<Output = Result<T>>) -> Error {
    match fut.await {
        Ok(value) => panic!("contract [{check}]: expected an error, got Ok({value:?})"),
        Err(e) => e,
    }
}

fn upsert(id: &str, body: Value) -> WriteOp {
    WriteOp::Upsert {
        id: id.to_string(),
        body,
        ttl: None,
    }
}

fn create(id: &str, body: Value) -> WriteOp {
    WriteOp::Create {
        id: id.to_string(),
        body,
        ttl: None,
    }
}

fn message(run: &Run, name: &str, payload: &[u8]) -> OutboxMessage {
    OutboxMessage {
        message_id: run.msg(name),
        topic: "contract.events".into(),
        key: name.to_string(),
        payload: payload.to_vec(),
        headers: vec![
            ("name".into(), name.as_bytes().to_vec()),
            ("bin".into(), vec![0, 255, 7]),
        ],
    }
}

async fn one(store: &dyn DocumentStore, check: &str, batch: Batch) -> StoredDoc {
    let mut docs = ok(check, store.commit(batch)).await;
    assert_eq!(
        docs.len(),
        1,
        "contract [{check}]: one op must return one stored doc, got {docs:?}"
    );
    docs.remove(0)
}

async fn get(
    store: &dyn DocumentStore,
    check: &str,
    container: &str,
    pk: &str,
    id: &str,
) -> Option<StoredDoc> {
    ok(check, store.get(container, pk, id)).await
}

async fn our_pending(store: &dyn DocumentStore, run: &Run) -> Vec<PendingOutbox> {
    let all = ok("outbox_pending", store.outbox_pending(1_000_000)).await;
    all.into_iter().filter(|p| run.owns(&p.message)).collect()
}

async fn empty_batch(store: &dyn DocumentStore) {
    let docs = ok("empty batch", store.commit(Batch::new(DOCS, "unused"))).await;
    assert!(
        docs.is_empty(),
        "contract [empty batch]: a batch with no ops and no outbox returns no docs, got {docs:?}"
    );
}

async fn create_conflicts(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("create");
    let first = one(
        store,
        "create",
        Batch::new(DOCS, &pk).op(create("doc", json!({"v": 1}))),
    )
    .await;
    assert_eq!(
        (
            first.container.as_str(),
            first.partition_key.as_str(),
            first.id.as_str(),
            &first.body
        ),
        (DOCS, pk.as_str(), "doc", &json!({"v": 1})),
        "contract [create]: the stored doc must echo its address and body"
    );
    assert!(
        !first.etag.0.is_empty(),
        "contract [create]: a stored doc needs an etag"
    );
    let err = fails(
        "create twice",
        store.commit(Batch::new(DOCS, &pk).op(create("doc", json!({"v": 2})))),
    )
    .await;
    assert!(
        matches!(&err, Error::Conflict { id } if id == "doc"),
        "contract [create twice]: expected Conflict {{ id: \"doc\" }}, got {err:?}"
    );
    let stored = get(store, "create twice", DOCS, &pk, "doc").await;
    assert_eq!(
        stored,
        Some(first),
        "contract [create twice]: a conflicting create must not change the doc"
    );
    // The same id in another partition is another document.
    one(
        store,
        "create other partition",
        Batch::new(DOCS, run.pk("create-2")).op(create("doc", json!({"v": 3}))),
    )
    .await;
}

async fn etag_preconditions(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("etag");
    let v1 = one(
        store,
        "etag upsert",
        Batch::new(DOCS, &pk).op(upsert("doc", json!({"v": 1}))),
    )
    .await;
    let replace = |etag: &ETag, v: i64| WriteOp::Replace {
        id: "doc".into(),
        body: json!({ "v": v }),
        if_match: etag.clone(),
        ttl: None,
    };
    let v2 = one(
        store,
        "replace with current etag",
        Batch::new(DOCS, &pk).op(replace(&v1.etag, 2)),
    )
    .await;
    assert_ne!(
        v1.etag, v2.etag,
        "contract [replace]: every write must change the etag"
    );
    assert!(
        v2.sequence > v1.sequence,
        "contract [replace]: a later commit must have a larger sequence"
    );
    assert_eq!(
        v2.body,
        json!({"v": 2}),
        "contract [replace]: replace must store the new body"
    );

    let err = fails(
        "replace with stale etag",
        store.commit(Batch::new(DOCS, &pk).op(replace(&v1.etag, 3))),
    )
    .await;
    assert!(
        matches!(&err, Error::PreconditionFailed { id } if id == "doc"),
        "contract [replace with stale etag]: expected PreconditionFailed {{ id: \"doc\" }}, got {err:?}"
    );
    let delete_stale = WriteOp::Delete {
        id: "doc".into(),
        if_match: Some(v1.etag.clone()),
    };
    let err = fails(
        "delete with stale etag",
        store.commit(Batch::new(DOCS, &pk).op(delete_stale)),
    )
    .await;
    assert!(
        matches!(&err, Error::PreconditionFailed { id } if id == "doc"),
        "contract [delete with stale etag]: expected PreconditionFailed, got {err:?}"
    );
    let stored = get(store, "after stale writes", DOCS, &pk, "doc").await;
    assert_eq!(
        stored.as_ref(),
        Some(&v2),
        "contract [etag]: rejected writes must leave the doc at v2"
    );

    let delete = WriteOp::Delete {
        id: "doc".into(),
        if_match: Some(v2.etag.clone()),
    };
    let docs = ok(
        "delete with current etag",
        store.commit(Batch::new(DOCS, &pk).op(delete)),
    )
    .await;
    assert!(
        docs.is_empty(),
        "contract [delete]: a delete returns no stored doc, got {docs:?}"
    );
    assert_eq!(
        get(store, "after delete", DOCS, &pk, "doc").await,
        None,
        "contract [delete]: doc must be gone"
    );

    // Unconditional delete.
    one(
        store,
        "upsert again",
        Batch::new(DOCS, &pk).op(upsert("doc", json!({"v": 4}))),
    )
    .await;
    ok(
        "delete without etag",
        store.commit(Batch::new(DOCS, &pk).op(WriteOp::Delete {
            id: "doc".into(),
            if_match: None,
        })),
    )
    .await;
    assert_eq!(
        get(store, "after delete", DOCS, &pk, "doc").await,
        None,
        "contract [delete]: doc must be gone"
    );
}

async fn missing_documents(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("missing");
    let replace = WriteOp::Replace {
        id: "ghost".into(),
        body: json!({}),
        if_match: ETag("whatever".into()),
        ttl: None,
    };
    let delete = WriteOp::Delete {
        id: "ghost".into(),
        if_match: None,
    };
    let delete_if = WriteOp::Delete {
        id: "ghost".into(),
        if_match: Some(ETag("whatever".into())),
    };
    for (check, op) in [
        ("replace missing", replace),
        ("delete missing", delete),
        ("delete missing with etag", delete_if),
    ] {
        let err = fails(check, store.commit(Batch::new(DOCS, &pk).op(op))).await;
        assert!(
            matches!(&err, Error::NotFound { id } if id == "ghost"),
            "contract [{check}]: expected NotFound {{ id: \"ghost\" }}, got {err:?}"
        );
    }
    assert_eq!(
        get(store, "get missing", DOCS, &pk, "ghost").await,
        None,
        "contract [get missing]: must be None"
    );
}

async fn commit_returns_docs_in_op_order(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("order");
    one(
        store,
        "seed",
        Batch::new(DOCS, &pk).op(upsert("c", json!({"seed": true}))),
    )
    .await;
    let batch = Batch::new(DOCS, &pk)
        .op(upsert("b", json!({"n": 1})))
        .op(create("d", json!({"n": 2})))
        .op(WriteOp::Delete {
            id: "c".into(),
            if_match: None,
        })
        .op(upsert("a", json!({"n": 3})));
    let docs = ok("multi-op batch", store.commit(batch)).await;
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["b", "d", "a"],
        "contract [multi-op batch]: stored docs for every non-delete op, in op order"
    );
    for doc in &docs {
        let stored = get(store, "multi-op batch", DOCS, &pk, &doc.id).await;
        assert_eq!(
            stored.as_ref(),
            Some(doc),
            "contract [multi-op batch]: returned doc must equal what get returns"
        );
    }
    assert_eq!(
        get(store, "multi-op batch", DOCS, &pk, "c").await,
        None,
        "contract [multi-op batch]: c deleted"
    );
}

async fn batch_is_atomic(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("atomic");
    let taken = one(
        store,
        "atomic seed",
        Batch::new(DOCS, &pk).op(upsert("taken", json!({"v": 1}))),
    )
    .await;
    let victim = one(
        store,
        "atomic seed",
        Batch::new(DOCS, &pk).op(upsert("victim", json!({"v": 1}))),
    )
    .await;

    let failing = [
        ("atomic: create conflict", create("taken", json!({"v": 2}))),
        (
            "atomic: replace missing",
            WriteOp::Replace {
                id: "absent".into(),
                body: json!({}),
                if_match: ETag("x".into()),
                ttl: None,
            },
        ),
        (
            "atomic: stale etag",
            WriteOp::Replace {
                id: "taken".into(),
                body: json!({"v": 3}),
                if_match: ETag(format!("{}-stale", taken.etag.0)),
                ttl: None,
            },
        ),
    ];
    for (n, (check, bad_op)) in failing.into_iter().enumerate() {
        let fresh = format!("fresh-{n}");
        let batch = Batch::new(DOCS, &pk)
            .op(upsert(&fresh, json!({"v": 1})))
            .op(WriteOp::Delete {
                id: "victim".into(),
                if_match: None,
            })
            .op(upsert("taken-too", json!({"v": 1})))
            // The failing op comes last so the earlier ops really were applied before it failed.
            .op(bad_op)
            .emit(message(
                run,
                &format!("atomic-{n}"),
                b"must not be published",
            ));
        let err = fails(check, store.commit(batch)).await;
        assert!(
            matches!(
                err,
                Error::Conflict { .. } | Error::NotFound { .. } | Error::PreconditionFailed { .. }
            ),
            "contract [{check}]: expected the failing op's error, got {err:?}"
        );
        assert_eq!(
            get(store, check, DOCS, &pk, &fresh).await,
            None,
            "contract [{check}]: upsert must be rolled back"
        );
        assert_eq!(
            get(store, check, DOCS, &pk, "taken-too").await,
            None,
            "contract [{check}]: every op of a failed batch must be rolled back"
        );
        assert_eq!(
            get(store, check, DOCS, &pk, "victim").await.as_ref(),
            Some(&victim),
            "contract [{check}]: delete must be rolled back"
        );
        assert_eq!(
            get(store, check, DOCS, &pk, "taken").await.as_ref(),
            Some(&taken),
            "contract [{check}]: the target of the failing op must be unchanged"
        );
    }
    let leaked: Vec<String> = our_pending(store, run)
        .await
        .into_iter()
        .filter(|p| p.message.key.starts_with("atomic-"))
        .map(|p| p.message.message_id)
        .collect();
    assert!(
        leaked.is_empty(),
        "contract [atomic]: failed batches must emit no outbox message, found {leaked:?}"
    );
}

/// `commit_many`: each batch atomic on its own with its own answer (a failing batch undoes only
/// itself and emits nothing); `get_many`: answers in request order, `None` for absent ids.
async fn many_batches_and_reads(store: &dyn DocumentStore, run: &Run) {
    let check = "commit_many";
    let (p1, p2, p3) = (run.pk("many-1"), run.pk("many-2"), run.pk("many-3"));
    one(
        store,
        check,
        Batch::new(DOCS, &p2).op(create("taken", json!({"v": 0}))),
    )
    .await;
    let results = store
        .commit_many(vec![
            Batch::new(DOCS, &p1)
                .op(upsert("a", json!({"v": 1})))
                .emit(message(run, "many-1", b"one")),
            // Fails on its last op: its first op and its message must not survive.
            Batch::new(DOCS, &p2)
                .op(upsert("b", json!({"v": 2})))
                .op(create("taken", json!({"v": 2})))
                .emit(message(run, "many-2", b"two")),
            Batch::new(DOCS, &p3)
                .op(upsert("c", json!({"v": 3})))
                .op(upsert("d", json!({"v": 4})))
                .emit(message(run, "many-3", b"three")),
        ])
        .await;
    assert_eq!(results.len(), 3, "contract [{check}]: one answer per batch");
    let first = results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("contract [{check}]: batch 1 failed: {e}"));
    assert_eq!(
        first.len(),
        1,
        "contract [{check}]: batch 1 answers its doc"
    );
    assert!(
        matches!(&results[1], Err(Error::Conflict { id }) if id == "taken"),
        "contract [{check}]: batch 2 must fail with its own conflict, got {:?}",
        results[1]
    );
    let third = results[2]
        .as_ref()
        .unwrap_or_else(|e| panic!("contract [{check}]: batch 3 failed: {e}"));
    assert_eq!(
        third.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["c", "d"],
        "contract [{check}]: batch 3 answers its docs in op order"
    );
    let emitted: Vec<PendingOutbox> = our_pending(store, run)
        .await
        .into_iter()
        .filter(|p| p.message.key.starts_with("many-"))
        .collect();
    let keys: HashSet<&str> = emitted.iter().map(|p| p.message.key.as_str()).collect();
    assert_eq!(
        keys,
        HashSet::from(["many-1", "many-3"]),
        "contract [{check}]: only the committed batches emit"
    );
    // Published, so the outbox checks after this one see only their own messages.
    let seqs: Vec<u64> = emitted.iter().map(|p| p.seq).collect();
    ok(check, store.outbox_ack(&seqs)).await;

    let check = "get_many";
    let keys = [
        (p3.clone(), "d".to_string()),
        (p2.clone(), "b".to_string()),
        (p1.clone(), "a".to_string()),
        (p2.clone(), "taken".to_string()),
        (p1.clone(), "c".to_string()),
    ];
    let got = ok(check, store.get_many(DOCS, &keys)).await;
    let bodies: Vec<Option<Value>> = got.into_iter().map(|d| d.map(|d| d.body)).collect();
    assert_eq!(
        bodies,
        vec![
            Some(json!({"v": 4})),
            None,
            Some(json!({"v": 1})),
            Some(json!({"v": 0})),
            None
        ],
        "contract [{check}]: answers in request order, None for absent ids"
    );
    assert!(
        ok(check, store.get_many(DOCS, &[])).await.is_empty(),
        "contract [{check}]: no keys, no answers"
    );
    assert!(
        store.commit_many(Vec::new()).await.is_empty(),
        "contract [commit_many]: no batches, no answers"
    );
}

async fn outbox_order_and_ack(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("outbox");
    let m1 = message(run, "m1", b"one");
    let m2 = message(run, "m2", b"");
    let mut m3 = message(run, "m3", &[0, 1, 2, 255]);
    m3.headers.clear();
    let m4 = message(run, "m4", b"four");
    let batches = [
        Batch::new(DOCS, &pk)
            .op(upsert("o1", json!({"n": 1})))
            .emit(m1.clone())
            .emit(m2.clone()),
        // A batch may carry only events.
        Batch::new(DOCS, &pk).emit(m3.clone()),
        Batch::new(DOCS, &pk)
            .op(upsert("o1", json!({"n": 2})))
            .emit(m4.clone()),
    ];
    for batch in batches {
        ok("outbox commit", store.commit(batch)).await;
    }
    let pending = our_pending(store, run).await;
    let messages: Vec<&OutboxMessage> = pending.iter().map(|p| &p.message).collect();
    assert_eq!(
        messages,
        [&m1, &m2, &m3, &m4],
        "contract [outbox order]: pending must list messages in commit order"
    );
    assert!(
        pending.windows(2).all(|w| w[0].seq < w[1].seq),
        "contract [outbox order]: seqs must increase in commit order: {:?}",
        pending.iter().map(|p| p.seq).collect::<Vec<_>>()
    );

    ok(
        "outbox ack",
        store.outbox_ack(&[pending[0].seq, pending[1].seq]),
    )
    .await;
    let after: Vec<OutboxMessage> = our_pending(store, run)
        .await
        .into_iter()
        .map(|p| p.message)
        .collect();
    assert_eq!(
        after,
        [m3.clone(), m4.clone()],
        "contract [outbox ack]: acked messages must leave pending"
    );
    ok("outbox ack again", store.outbox_ack(&[pending[0].seq])).await;
    ok("outbox ack none", store.outbox_ack(&[])).await;
    let limited = ok("outbox_pending max", store.outbox_pending(1)).await;
    assert!(
        limited.len() <= 1,
        "contract [outbox_pending max]: at most max records, got {}",
        limited.len()
    );
    ok(
        "outbox ack rest",
        store.outbox_ack(&[pending[2].seq, pending[3].seq]),
    )
    .await;
    let left = our_pending(store, run).await;
    assert!(
        left.is_empty(),
        "contract [outbox ack]: all acked, still pending: {left:?}"
    );
}

async fn outbox_rejects_reemitted_message(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("reemit");
    let m = message(run, "reemit", b"once");
    ok(
        "emit",
        store.commit(
            Batch::new(DOCS, &pk)
                .op(upsert("first", json!({})))
                .emit(m.clone()),
        ),
    )
    .await;
    let err = fails(
        "re-emit",
        store.commit(
            Batch::new(DOCS, &pk)
                .op(upsert("second", json!({})))
                .emit(m.clone()),
        ),
    )
    .await;
    assert!(
        matches!(err, Error::Conflict { .. }),
        "contract [re-emit]: a repeated message_id is a Conflict, got {err:?}"
    );
    assert_eq!(
        get(store, "re-emit", DOCS, &pk, "second").await,
        None,
        "contract [re-emit]: whole batch must fail"
    );
    let pending = our_pending(store, run).await;
    let copies: Vec<u64> = pending
        .iter()
        .filter(|p| p.message == m)
        .map(|p| p.seq)
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "contract [re-emit]: the message must be pending exactly once"
    );
    ok("ack", store.outbox_ack(&copies)).await;
}

async fn range_queries(store: &dyn DocumentStore, run: &Run) {
    let (p1, p2) = (run.pk("range-1"), run.pk("range-2"));
    let days = [
        "2025-02-01",
        "2025-02-02",
        "2025-02-03",
        "2025-02-04",
        "2025-02-05",
    ];
    // Inserted out of order so ordering must come from the ids, not from insertion.
    let mut batch = Batch::new(DOCS, &p1);
    for day in [days[3], days[0], days[4], days[2], days[1]] {
        batch = batch.op(upsert(day, json!({"pk": p1, "day": day})));
    }
    ok("range seed", store.commit(batch)).await;
    ok(
        "range seed p2",
        store.commit(Batch::new(DOCS, &p2).op(upsert(days[2], json!({"pk": p2})))),
    )
    .await;
    // Same partition key in another container: must not leak into the DOCS queries.
    ok(
        "range seed other container",
        store.commit(Batch::new(FEED, &p1).op(upsert("2025-02-03b", json!({})))),
    )
    .await;

    let query =
        |pk: &str, from: Option<&str>, to: Option<&str>, limit: Option<usize>, descending: bool| {
            let range = IdRange {
                from: from.map(str::to_string),
                to: to.map(str::to_string),
                limit,
                descending,
            };
            let pk = pk.to_string();
            async move {
                let docs = ok("query_partition", store.query_partition(DOCS, &pk, range)).await;
                for doc in &docs {
                    assert_eq!(
                        (doc.container.as_str(), doc.partition_key.as_str()),
                        (DOCS, pk.as_str()),
                        "contract [query_partition]: result from another container/partition"
                    );
                }
                docs.into_iter().map(|d| d.id).collect::<Vec<_>>()
            }
        };
    let cases: [(&str, Vec<String>, &[&str]); 8] = [
        (
            "all ascending",
            query(&p1, None, None, None, false).await,
            &days,
        ),
        (
            "inclusive bounds",
            query(&p1, Some(days[1]), Some(days[3]), None, false).await,
            &days[1..=3],
        ),
        (
            "from only",
            query(&p1, Some(days[3]), None, None, false).await,
            &days[3..],
        ),
        (
            "to only",
            query(&p1, None, Some(days[1]), None, false).await,
            &days[..=1],
        ),
        (
            "descending limit",
            query(&p1, None, None, Some(2), true).await,
            &[days[4], days[3]],
        ),
        (
            "bounded descending limit",
            query(&p1, Some(days[1]), Some(days[3]), Some(2), true).await,
            &[days[3], days[2]],
        ),
        (
            "ascending limit",
            query(&p1, None, None, Some(2), false).await,
            &days[..2],
        ),
        (
            "partition isolation",
            query(&p2, None, None, None, false).await,
            &days[2..3],
        ),
    ];
    for (check, got, want) in cases {
        assert_eq!(got, want, "contract [query_partition {check}]");
    }
    let none = query(&run.pk("range-empty"), None, None, None, false).await;
    assert!(
        none.is_empty(),
        "contract [query_partition empty partition]: got {none:?}"
    );
}

/// Read the feed from `from` to its current end, `page` at a time; docs of this run only.
async fn drain_feed(
    store: &dyn DocumentStore,
    run: &Run,
    container: &str,
    from: &Continuation,
    page: usize,
) -> (Vec<StoredDoc>, Continuation) {
    let mut at = from.clone();
    let mut ours = Vec::new();
    // Every version seen in this drain: a repeat means the continuation did not advance, which
    // must fail the suite rather than loop forever.
    let mut seen = HashSet::new();
    loop {
        let (docs, next) = ok("change_feed", store.change_feed(container, &at, page)).await;
        assert!(
            docs.len() <= page,
            "contract [change_feed max]: asked for {page}, got {}",
            docs.len()
        );
        for doc in &docs {
            assert_eq!(
                doc.container, container,
                "contract [change_feed]: doc from another container: {doc:?}"
            );
            let version = (doc.partition_key.clone(), doc.id.clone(), doc.etag.clone());
            assert!(
                seen.insert(version),
                "contract [change_feed continuation]: {}/{} delivered again by a later page",
                doc.partition_key,
                doc.id
            );
        }
        at = next;
        if docs.is_empty() {
            return (ours, at);
        }
        ours.extend(
            docs.into_iter()
                .filter(|d| d.partition_key.starts_with(&run.0)),
        );
    }
}

async fn change_feed(store: &dyn DocumentStore, run: &Run) {
    // Start at the current end so a shared container's history does not matter.
    let (_, start) = drain_feed(store, run, FEED, &Continuation::default(), 500).await;
    let pks = [run.pk("feed-a"), run.pk("feed-b"), run.pk("feed-c")];
    let mut written: BTreeMap<String, Value> = BTreeMap::new();
    for n in 0..7 {
        let pk = &pks[n % pks.len()];
        let id = format!("f{n}");
        let body = json!({"n": n, "version": 1});
        one(
            store,
            "feed seed",
            Batch::new(FEED, pk).op(upsert(&id, body.clone())),
        )
        .await;
        written.insert(id, body);
    }
    // A multi-doc batch too, and a doc in another container that must not show up.
    let batch = Batch::new(FEED, &pks[0])
        .op(upsert("g1", json!({"g": 1})))
        .op(upsert("g2", json!({"g": 2})));
    ok("feed seed batch", store.commit(batch)).await;
    written.insert("g1".into(), json!({"g": 1}));
    written.insert("g2".into(), json!({"g": 2}));
    ok(
        "feed other container",
        store.commit(Batch::new(DOCS, &pks[0]).op(upsert("not-in-feed", json!({})))),
    )
    .await;

    let (docs, after_seed) = drain_feed(store, run, FEED, &start, 3).await;
    assert_feed_is(&docs, &written, "change_feed pages");

    // Update one doc, delete another: only the update is new; reading again from the same
    // continuation repeats nothing else.
    let updated = json!({"n": 2, "version": 2});
    one(
        store,
        "feed update",
        Batch::new(FEED, &pks[2]).op(upsert("f2", updated.clone())),
    )
    .await;
    ok(
        "feed delete",
        store.commit(Batch::new(FEED, &pks[1]).op(WriteOp::Delete {
            id: "f4".into(),
            if_match: None,
        })),
    )
    .await;
    let (new_docs, end) = drain_feed(store, run, FEED, &after_seed, 3).await;
    let new: Vec<(&str, &Value)> = new_docs.iter().map(|d| (d.id.as_str(), &d.body)).collect();
    assert_eq!(
        new,
        [("f2", &updated)],
        "contract [change_feed continuation]: only the update is new"
    );
    let (nothing, _) = drain_feed(store, run, FEED, &end, 3).await;
    assert!(
        nothing.is_empty(),
        "contract [change_feed at end]: nothing new, got {nothing:?}"
    );

    // From the start again: latest version of each live doc, once.
    written.insert("f2".into(), updated);
    written.remove("f4");
    let (again, _) = drain_feed(store, run, FEED, &start, 4).await;
    assert_feed_is(&again, &written, "change_feed latest version only");
}

fn assert_feed_is(docs: &[StoredDoc], want: &BTreeMap<String, Value>, check: &str) {
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    for doc in docs {
        if seen.insert(doc.id.clone(), doc.body.clone()).is_some() {
            panic!("contract [{check}]: {} delivered twice", doc.id);
        }
    }
    assert_eq!(
        &seen, want,
        "contract [{check}]: every changed doc exactly once, at its latest version"
    );
    assert!(
        docs.windows(2).all(|w| w[0].sequence <= w[1].sequence),
        "contract [{check}]: the feed must be in sequence order"
    );
}

async fn ttl_hides_expired(store: &dyn DocumentStore, run: &Run) {
    let pk = run.pk("ttl");
    let (_, start) = drain_feed(store, run, TTL, &Continuation::default(), 500).await;
    let short = WriteOp::Create {
        id: "short".into(),
        body: json!({"ttl": 2}),
        ttl: Some(Duration::from_secs(2)),
    };
    let long = WriteOp::Upsert {
        id: "long".into(),
        body: json!({"ttl": 3600}),
        ttl: Some(Duration::from_secs(3600)),
    };
    ok(
        "ttl seed",
        store.commit(
            Batch::new(TTL, &pk)
                .op(short)
                .op(long)
                .op(upsert("forever", json!({}))),
        ),
    )
    .await;
    assert!(
        get(store, "ttl", TTL, &pk, "short").await.is_some(),
        "contract [ttl]: a doc with a 2 s TTL must be visible right after the write"
    );
    // Cosmos counts TTL in whole seconds from the write's timestamp: 2 s TTL is gone by 3 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get(store, "ttl get", TTL, &pk, "short").await,
        None,
        "contract [ttl get]: expired doc visible"
    );
    let ids: Vec<String> = ok(
        "ttl query",
        store.query_partition(TTL, &pk, IdRange::default()),
    )
    .await
    .into_iter()
    .map(|d| d.id)
    .collect();
    assert_eq!(
        ids,
        ["forever", "long"],
        "contract [ttl query]: expired doc must not be listed"
    );
    let (feed, _) = drain_feed(store, run, TTL, &start, 10).await;
    let feed_ids: HashSet<&str> = feed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        feed_ids,
        HashSet::from(["forever", "long"]),
        "contract [ttl change_feed]: expired doc in feed"
    );
}

async fn concurrent_commits(store: Arc<dyn DocumentStore>, run: &Run) {
    const TASKS: usize = 50;
    const BATCHES: usize = 20;
    let partitions: Vec<String> = (0..5).map(|p| run.pk(&format!("conc-{p}"))).collect();
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let pk = partitions[task % partitions.len()].clone();
        let msg_prefix = run.msg("conc");
        tasks.push(tokio::spawn(async move {
            for i in 0..BATCHES {
                let id = format!("t{task:02}-{i:02}");
                let message = OutboxMessage {
                    message_id: format!("{msg_prefix}-{task}-{i}"),
                    topic: "contract.concurrent".into(),
                    key: format!("{task}"),
                    payload: format!("{task}:{i}").into_bytes(),
                    headers: Vec::new(),
                };
                let batch = Batch::new(DOCS, &pk)
                    .op(upsert(&id, json!({"task": task, "i": i})))
                    .emit(message);
                if let Err(e) = store.commit(batch).await {
                    panic!("contract [concurrent commits]: commit {id} failed: {e}");
                }
            }
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let mut sequences = HashSet::new();
    let mut found = 0;
    for pk in &partitions {
        let docs = ok(
            "concurrent query",
            store.query_partition(DOCS, pk, IdRange::default()),
        )
        .await;
        for doc in &docs {
            assert!(
                sequences.insert(doc.sequence),
                "contract [concurrent commits]: sequence {} reused",
                doc.sequence
            );
        }
        found += docs.len();
    }
    assert_eq!(
        found,
        TASKS * BATCHES,
        "contract [concurrent commits]: every committed doc must be stored"
    );

    let pending: Vec<PendingOutbox> = our_pending(&*store, run)
        .await
        .into_iter()
        .filter(|p| p.message.topic == "contract.concurrent")
        .collect();
    assert_eq!(
        pending.len(),
        TASKS * BATCHES,
        "contract [concurrent outbox]: one pending message per batch"
    );
    // Each task committed its batches one after another, so its messages must be in that order.
    let mut last_i: HashMap<String, usize> = HashMap::new();
    for p in &pending {
        let text = String::from_utf8_lossy(&p.message.payload).into_owned();
        let (task, i) = text.split_once(':').expect("payload is task:i");
        let i: usize = i.parse().expect("payload i is a number");
        if let Some(prev) = last_i.insert(task.to_string(), i) {
            assert!(
                prev < i,
                "contract [concurrent outbox]: task {task} message {i} pending before {prev}"
            );
        }
    }
    let seqs: Vec<u64> = pending.iter().map(|p| p.seq).collect();
    ok("concurrent ack", store.outbox_ack(&seqs)).await;
}

/// Run every [`Cache`] check against `cache`. Keys are `contract:{uuid}:...` and are deleted at
/// the end (those with TTLs also expire), so a shared Redis is left as found.
pub async fn cache_contract(cache: Arc<dyn Cache>) {
    let run = Run::new();
    let key = |name: &str| format!("contract:{}:{name}", run.0);
    let c = &*cache;
    assert!(
        !c.kind().is_empty(),
        "cache contract [kind]: must name the backend"
    );
    ok("cache ping", c.ping()).await;

    // get / set / overwrite / binary values / delete
    assert_eq!(
        ok("get missing", c.get(&key("missing"))).await,
        None,
        "cache contract [get missing]"
    );
    ok("set", c.set(&key("a"), b"one", None)).await;
    assert_eq!(
        ok("get", c.get(&key("a"))).await.as_deref(),
        Some(&b"one"[..]),
        "cache contract [set/get]"
    );
    ok("overwrite", c.set(&key("a"), b"two", None)).await;
    assert_eq!(
        ok("get", c.get(&key("a"))).await.as_deref(),
        Some(&b"two"[..]),
        "cache contract [overwrite]"
    );
    let binary = vec![0u8, 255, 10, 13, 0, 128];
    ok("set binary", c.set(&key("bin"), &binary, None)).await;
    assert_eq!(
        ok("get binary", c.get(&key("bin"))).await,
        Some(binary.clone()),
        "cache contract [binary value]"
    );
    ok("set empty", c.set(&key("empty"), b"", None)).await;
    assert_eq!(
        ok("get empty", c.get(&key("empty"))).await,
        Some(Vec::new()),
        "cache contract [empty value]"
    );
    ok("delete", c.delete(&key("a"))).await;
    assert_eq!(
        ok("get deleted", c.get(&key("a"))).await,
        None,
        "cache contract [delete]"
    );
    ok("delete missing", c.delete(&key("never-set"))).await;

    // set_nx
    assert!(
        ok("set_nx absent", c.set_nx(&key("nx"), b"first", None)).await,
        "cache contract [set_nx absent]: must set"
    );
    assert!(
        !ok("set_nx present", c.set_nx(&key("nx"), b"second", None)).await,
        "cache contract [set_nx present]"
    );
    assert_eq!(
        ok("get after set_nx", c.get(&key("nx"))).await.as_deref(),
        Some(&b"first"[..]),
        "cache contract [set_nx present]: must not overwrite"
    );
    let racers: Vec<_> = (0..20)
        .map(|n| {
            let cache = Arc::clone(&cache);
            let k = key("race");
            tokio::spawn(async move { cache.set_nx(&k, format!("{n}").as_bytes(), None).await })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        match racer.await {
            Ok(Ok(won)) => winners += usize::from(won),
            Ok(Err(e)) => panic!("cache contract [set_nx race]: unexpected error: {e}"),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    assert_eq!(
        winners, 1,
        "cache contract [set_nx race]: exactly one concurrent set_nx may win"
    );

    // set_many / get_many
    ok("set_many empty", c.set_many(&[], None)).await;
    assert!(
        ok("get_many empty", c.get_many(&[])).await.is_empty(),
        "cache contract [get_many empty]"
    );
    let entries = vec![
        (key("m1"), b"v1".to_vec()),
        (key("m2"), b"v2".to_vec()),
        (key("m3"), Vec::new()),
    ];
    ok("set_many", c.set_many(&entries, None)).await;
    let got = ok(
        "get_many",
        c.get_many(&[key("m3"), key("missing"), key("m1"), key("m2"), key("m1")]),
    )
    .await;
    let want = vec![
        Some(Vec::new()),
        None,
        Some(b"v1".to_vec()),
        Some(b"v2".to_vec()),
        Some(b"v1".to_vec()),
    ];
    assert_eq!(
        got, want,
        "cache contract [get_many]: one answer per key, in key order"
    );

    // TTLs (all waited for with one sleep)
    let ttl = Some(Duration::from_secs(1));
    for (check, result) in [
        (
            "set zero ttl",
            c.set(&key("z"), b"v", Some(Duration::ZERO)).await,
        ),
        (
            "set_many zero ttl",
            c.set_many(&entries, Some(Duration::ZERO)).await,
        ),
        (
            "set_nx zero ttl",
            c.set_nx(&key("z"), b"v", Some(Duration::ZERO))
                .await
                .map(drop),
        ),
    ] {
        assert!(
            matches!(result, Err(Error::Invalid(_))),
            "cache contract [{check}]: must be Invalid, got {result:?}"
        );
    }
    ok("set ttl", c.set(&key("t-set"), b"v", ttl)).await;
    ok("set_nx ttl", c.set_nx(&key("t-nx"), b"v", ttl)).await;
    let ttl_entries = vec![(key("t-m1"), b"v".to_vec()), (key("t-m2"), b"v".to_vec())];
    ok("set_many ttl", c.set_many(&ttl_entries, ttl)).await;
    ok("set ttl then plain", c.set(&key("t-cleared"), b"v", ttl)).await;
    ok(
        "plain set clears ttl",
        c.set(&key("t-cleared"), b"kept", None),
    )
    .await;
    ok(
        "set long ttl",
        c.set(&key("t-long"), b"v", Some(Duration::from_secs(600))),
    )
    .await;
    assert!(
        ok("get ttl", c.get(&key("t-set"))).await.is_some(),
        "cache contract [ttl]: visible before expiry"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    for name in ["t-set", "t-nx", "t-m1", "t-m2"] {
        assert_eq!(
            ok("get expired", c.get(&key(name))).await,
            None,
            "cache contract [ttl]: {name} must have expired"
        );
    }
    assert_eq!(
        ok(
            "get_many expired",
            c.get_many(&[key("t-m1"), key("t-long")])
        )
        .await,
        vec![None, Some(b"v".to_vec())],
        "cache contract [ttl get_many]"
    );
    assert_eq!(
        ok("get cleared", c.get(&key("t-cleared"))).await.as_deref(),
        Some(&b"kept"[..]),
        "cache contract [ttl]: a set without TTL replaces the earlier TTL"
    );
    assert!(
        ok("set_nx expired", c.set_nx(&key("t-nx"), b"again", None)).await,
        "cache contract [set_nx after expiry]"
    );

    let used = [
        "bin",
        "empty",
        "nx",
        "race",
        "m1",
        "m2",
        "m3",
        "t-set",
        "t-nx",
        "t-m1",
        "t-m2",
        "t-cleared",
        "t-long",
    ];
    for name in used {
        ok("cleanup", c.delete(&key(name))).await;
    }
    assert!(
        ok("get_many after cleanup", c.get_many(&used.map(key)))
            .await
            .iter()
            .all(Option::is_none),
        "cache contract [delete]: keys must be gone after cleanup"
    );
}
