//! EmbeddedStore against the port contract (file-backed and in-memory), plus what only a real
//! file can show: data survives reopening and a SIGKILL; readers never see half a batch.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nivesh_store::contract::document_store_contract;
use nivesh_store::{
    Batch, Continuation, DocumentStore, EmbeddedStore, IdRange, OutboxMessage, WriteOp,
    inbox_marker, is_inbox_conflict,
};
use serde_json::json;

fn upsert(id: &str, body: serde_json::Value) -> WriteOp {
    WriteOp::Upsert {
        id: id.into(),
        body,
        ttl: None,
    }
}

fn message(id: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: id.into(),
        topic: "nav.published".into(),
        key: "scheme-1".into(),
        payload: vec![0xC3, 0x01, 0x02],
        headers: vec![("event-type".into(), b"NavPublished".to_vec())],
    }
}

/// The whole DocumentStore contract holds for a file-backed store (dirs created on open).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_on_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("nested/dirs/store.sqlite")).unwrap();
    document_store_contract(Arc::new(store)).await;
}

/// The whole DocumentStore contract holds for the in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_on_in_memory_store() {
    document_store_contract(Arc::new(EmbeddedStore::in_memory().unwrap())).await;
}

/// Two in-memory stores are separate databases (tests using them cannot see each other).
#[tokio::test]
async fn in_memory_stores_are_private() {
    let a = EmbeddedStore::in_memory().unwrap();
    let b = EmbeddedStore::in_memory().unwrap();
    a.commit(Batch::new("c", "p").op(upsert("x", json!(1))))
        .await
        .unwrap();
    assert!(a.get("c", "p", "x").await.unwrap().is_some());
    assert_eq!(b.get("c", "p", "x").await.unwrap(), None);
}

/// Documents, the outbox and the seq counter committed by one EmbeddedStore are all there after
/// dropping it and opening the same file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let (written, last_seq) = {
        let store = EmbeddedStore::open(&path).unwrap();
        let docs = store
            .commit(
                Batch::new("navs", "scheme-1")
                    .op(upsert("2025-02-24", json!({"nav": "101.2345"})))
                    .op(upsert("2025-02-25", json!({"nav": "101.9876"})))
                    .emit(message("evt-1")),
            )
            .await
            .unwrap();
        // Delete the newest doc: its seq must still not be handed out again after reopening.
        let newest = store
            .commit(Batch::new("navs", "scheme-1").op(upsert("tmp", json!(null))))
            .await
            .unwrap();
        store
            .commit(Batch::new("navs", "scheme-1").op(WriteOp::Delete {
                id: "tmp".into(),
                if_match: None,
            }))
            .await
            .unwrap();
        (docs, newest[0].sequence)
    };

    let store = EmbeddedStore::open(&path).unwrap();
    for doc in &written {
        assert_eq!(
            store
                .get("navs", "scheme-1", &doc.id)
                .await
                .unwrap()
                .as_ref(),
            Some(doc)
        );
    }
    let pending = store.outbox_pending(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|p| &p.message).collect::<Vec<_>>(),
        [&message("evt-1")]
    );
    let (feed, _) = store
        .change_feed("navs", &Continuation::default(), 10)
        .await
        .unwrap();
    assert_eq!(feed, written);
    let later = store
        .commit(Batch::new("navs", "scheme-1").op(upsert("2025-02-26", json!({}))))
        .await
        .unwrap();
    assert!(
        later[0].sequence > last_seq,
        "seq {} reused after reopen (newest was {last_seq})",
        later[0].sequence
    );
}

const SIGKILL_CHILD: &str = "NIVESH_STORE_SIGKILL_CHILD_DIR";

/// Every batch whose commit returned Ok before the process was SIGKILLed is in the file
/// afterwards (WAL + synchronous=NORMAL). The test re-runs its own binary as the victim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_batches_survive_sigkill() {
    if let Ok(dir) = std::env::var(SIGKILL_CHILD) {
        return sigkill_child(dir).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "committed_batches_survive_sigkill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGKILL_CHILD, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = 0u32;
    while acknowledged < 200 {
        let line = lines
            .next()
            .expect("child exited before committing 200 batches")
            .unwrap();
        if let Some(n) = line.strip_prefix("COMMITTED ") {
            acknowledged = n.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, no close.
    child.wait().unwrap();

    let store = EmbeddedStore::open(dir.path().join("store.sqlite")).unwrap();
    let docs = store
        .query_partition("orders", "investor-1", IdRange::default())
        .await
        .unwrap();
    let present: std::collections::HashSet<String> = docs.into_iter().map(|d| d.id).collect();
    for n in 1..=acknowledged {
        assert!(
            present.contains(&format!("order-{n:06}")),
            "acknowledged batch {n} lost by SIGKILL"
        );
    }
    let pending = store.outbox_pending(100_000).await.unwrap();
    assert!(
        pending.len() >= acknowledged as usize,
        "acknowledged outbox messages lost by SIGKILL"
    );
}

/// The victim: commits forever, printing each acknowledged batch number, until killed.
async fn sigkill_child(dir: String) {
    let store = EmbeddedStore::open(std::path::Path::new(&dir).join("store.sqlite")).unwrap();
    let mut out = std::io::stdout();
    for n in 1u32.. {
        let batch = Batch::new("orders", "investor-1")
            .op(upsert(
                &format!("order-{n:06}"),
                json!({"amount": "5000.00"}),
            ))
            .emit(message(&format!("order-evt-{n}")));
        store.commit(batch).await.unwrap();
        writeln!(out, "COMMITTED {n}").unwrap();
        out.flush().unwrap();
    }
}

/// Concurrent readers never observe a batch half-applied, although many batches share one
/// SQLite transaction and readers run while the writer works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_half_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path().join("s.sqlite")).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for n in 0..150 {
                let pk = format!("pair-{w}");
                let batch = Batch::new("pairs", &pk)
                    .op(upsert("left", json!({ "n": n })))
                    .op(upsert("right", json!({ "n": n })));
                store.commit(batch).await.unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..4 {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut checks = 0u32;
            while !done.load(Ordering::Relaxed) || checks == 0 {
                let docs = store
                    .query_partition("pairs", &format!("pair-{}", r * 2), IdRange::default())
                    .await
                    .unwrap();
                if let [left, right] = docs.as_slice() {
                    assert_eq!(left.body, right.body, "reader saw half of a batch");
                    checks += 1;
                } else {
                    assert!(
                        docs.is_empty(),
                        "reader saw half of the first batch: {docs:?}"
                    );
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}

/// The inbox pattern end to end: the first delivery applies state + marker atomically, a
/// redelivery conflicts on the marker (recognised by is_inbox_conflict) and changes nothing,
/// another consumer group is independent.
#[tokio::test]
async fn inbox_marker_dedupes_redelivery() {
    let store = EmbeddedStore::in_memory().unwrap();
    let handle = |group: &'static str, n: i64| {
        Batch::new("nav-state", "scheme-42")
            .op(inbox_marker(group, "evt-7"))
            .op(upsert(&format!("{group}-state"), json!({ "applied": n })))
            .emit(message(&format!("{group}-follow-up-{n}")))
    };
    store.commit(handle("calc", 1)).await.unwrap();
    let err = store.commit(handle("calc", 2)).await.unwrap_err();
    assert!(is_inbox_conflict(&err, "calc", "evt-7"), "{err:?}");
    assert!(!is_inbox_conflict(&err, "publisher", "evt-7"));
    let state = store
        .get("nav-state", "scheme-42", "calc-state")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        state.body,
        json!({"applied": 1}),
        "the redelivery must not change state"
    );
    let pending = store.outbox_pending(10).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the redelivery must not emit: {pending:?}"
    );

    store.commit(handle("publisher", 1)).await.unwrap();
    let marker = store
        .get("nav-state", "scheme-42", "inbox:publisher:evt-7")
        .await
        .unwrap();
    assert!(
        marker.is_some(),
        "the marker is an ordinary (TTL'd) document"
    );
}
