//! White-box tests of the writer: group commit isolation, seq bookkeeping and the purge, driven
//! deterministically (a whole group handed to `commit_group` at once) rather than hoping that
//! concurrent callers happen to land in one group.

use serde_json::json;
use tokio::sync::oneshot;

use super::schema::{self, Location};
use super::writer::{Job, commit_group};
use super::*;
use crate::{OutboxMessage, WriteOp};

fn memory() -> Location {
    Location::Memory(format!("unit-{}", uuid::Uuid::new_v4().simple()))
}

fn commit_job(batch: Batch) -> (Job, oneshot::Receiver<Result<Vec<StoredDoc>>>) {
    let (reply, answer) = oneshot::channel();
    (Job::Commit { batch, reply }, answer)
}

fn msg(id: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: id.into(),
        topic: "t".into(),
        key: "k".into(),
        payload: id.as_bytes().to_vec(),
        headers: vec![],
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// In ONE group, failing batches are rolled back alone and answered with their own error,
/// while the batches around them commit; their seqs are reused, so the feed has no gaps.
#[test]
fn group_commit_isolates_failing_batches() {
    let location = memory();
    let conn = schema::open_writer(&location, Duration::from_secs(1)).unwrap();
    let create = |id: &str| WriteOp::Create {
        id: id.into(),
        body: json!({"id": id}),
        ttl: None,
    };
    let upsert = |id: &str| WriteOp::Upsert {
        id: id.into(),
        body: json!({"id": id}),
        ttl: None,
    };
    let batches = [
        Batch::new("c", "p").op(create("a")).emit(msg("m-a")),
        // Conflicts with the batch before it, in the same transaction; its upsert of x and its
        // message must vanish with it.
        Batch::new("c", "p")
            .op(upsert("x"))
            .op(create("a"))
            .emit(msg("m-x")),
        Batch::new("c", "p").op(upsert("b")).emit(msg("m-b")),
        Batch::new("c", "p").op(WriteOp::Replace {
            id: "missing".into(),
            body: json!({}),
            if_match: crate::ETag("e".into()),
            ttl: None,
        }),
        // Re-emits m-b: a Conflict naming the message.
        Batch::new("c", "p").op(upsert("y")).emit(msg("m-b")),
        Batch::new("c", "q").op(create("a")),
    ];
    let (mut jobs, answers): (Vec<Job>, Vec<_>) = batches.into_iter().map(commit_job).unzip();
    commit_group(&conn, &mut jobs);
    assert!(jobs.is_empty(), "the group must be drained");

    let results: Vec<Result<Vec<StoredDoc>>> = answers
        .into_iter()
        .map(|a| a.blocking_recv().unwrap())
        .collect();
    let seqs = |r: &Result<Vec<StoredDoc>>| {
        r.as_ref()
            .unwrap()
            .iter()
            .map(|d| d.sequence)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&results[0]), [1]);
    assert!(
        matches!(&results[1], Err(Error::Conflict { id }) if id == "a"),
        "{:?}",
        results[1]
    );
    assert_eq!(
        seqs(&results[2]),
        [2],
        "the failed batch's seqs are handed out again"
    );
    assert!(
        matches!(&results[3], Err(Error::NotFound { id }) if id == "missing"),
        "{:?}",
        results[3]
    );
    assert!(
        matches!(&results[4], Err(Error::Conflict { id }) if id == "m-b"),
        "{:?}",
        results[4]
    );
    assert_eq!(
        seqs(&results[5]),
        [3],
        "same id in another partition is another document"
    );

    let docs: Vec<(String, String, i64)> = conn
        .prepare("SELECT partition_key, id, seq FROM documents ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let expected = [("p", "a", 1), ("p", "b", 2), ("q", "a", 3)]
        .map(|(p, i, s)| (p.to_string(), i.to_string(), s));
    assert_eq!(docs, expected);
    let messages: Vec<String> = conn
        .prepare("SELECT message_id FROM outbox ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(messages, ["m-a", "m-b"]);
    assert_eq!(
        count(&conn, "SELECT value FROM meta WHERE key = 'doc_seq'"),
        3,
        "counter persisted"
    );
    assert!(conn.is_autocommit(), "the group transaction must be closed");
}

/// The seq counter survives the deletion of the newest document: a later write gets a larger
/// seq than any ever handed out (a change-feed reader parked there would otherwise miss it).
#[test]
fn seq_never_reused_after_deleting_newest() {
    let conn = schema::open_writer(&memory(), Duration::from_secs(1)).unwrap();
    let run = |batch: Batch| {
        let (job, answer) = commit_job(batch);
        commit_group(&conn, &mut vec![job]);
        answer.blocking_recv().unwrap().unwrap()
    };
    let upsert = |id: &str| WriteOp::Upsert {
        id: id.into(),
        body: json!(null),
        ttl: None,
    };
    run(Batch::new("c", "p").op(upsert("a")));
    let newest = run(Batch::new("c", "p").op(upsert("b")));
    run(Batch::new("c", "p").op(WriteOp::Delete {
        id: "b".into(),
        if_match: None,
    }));
    let later = run(Batch::new("c", "p").op(upsert("c")));
    assert!(
        later[0].sequence > newest[0].sequence,
        "{} must exceed {}",
        later[0].sequence,
        newest[0].sequence
    );
}

/// A Create over an expired (not yet purged) doc succeeds, while Replace/Delete of it are
/// NotFound: expired rows are absent for writes exactly as for reads.
#[test]
fn expired_rows_are_absent_for_writes() {
    let conn = schema::open_writer(&memory(), Duration::from_secs(1)).unwrap();
    let run = |batch: Batch| {
        let (job, answer) = commit_job(batch);
        commit_group(&conn, &mut vec![job]);
        answer.blocking_recv().unwrap()
    };
    let expired = run(Batch::new("c", "p").op(WriteOp::Create {
        id: "e".into(),
        body: json!(1),
        ttl: Some(Duration::ZERO),
    }))
    .unwrap();
    let replace = WriteOp::Replace {
        id: "e".into(),
        body: json!(2),
        if_match: expired[0].etag.clone(),
        ttl: None,
    };
    assert!(matches!(
        run(Batch::new("c", "p").op(replace)),
        Err(Error::NotFound { .. })
    ));
    let delete = WriteOp::Delete {
        id: "e".into(),
        if_match: None,
    };
    assert!(matches!(
        run(Batch::new("c", "p").op(delete)),
        Err(Error::NotFound { .. })
    ));
    let again = run(Batch::new("c", "p").op(WriteOp::Create {
        id: "e".into(),
        body: json!(3),
        ttl: None,
    }))
    .unwrap();
    assert_eq!(again[0].body, json!(3));
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM documents WHERE expires_at IS NULL AND id = 'e'"
        ),
        1
    );
}

/// Through the real writer thread: once purge is due, expired docs and published outbox rows
/// older than the retention are deleted from disk, while live docs and unpublished rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_purges_expired_docs_and_published_outbox() {
    let config = EmbeddedConfig {
        purge_interval: Duration::ZERO,
        outbox_retention: Duration::ZERO,
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::in_memory_with(config).unwrap();
    let ttl0 = |id: &str| WriteOp::Upsert {
        id: id.into(),
        body: json!({}),
        ttl: Some(Duration::ZERO),
    };
    let batch = Batch::new("c", "p")
        .op(ttl0("gone-1"))
        .op(ttl0("gone-2"))
        .op(WriteOp::Upsert {
            id: "stays".into(),
            body: json!({}),
            ttl: Some(Duration::from_secs(60)),
        })
        .emit(msg("published"))
        .emit(msg("unpublished"));
    store.commit(batch).await.unwrap();
    let pending = store.outbox_pending(10).await.unwrap();
    store.outbox_ack(&[pending[0].seq]).await.unwrap();
    // Retention zero means "published strictly before now"; make sure the clock moved on.
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Any write makes the due purge run right after its group.
    store
        .commit(Batch::new("c", "p").op(WriteOp::Upsert {
            id: "tick".into(),
            body: json!({}),
            ttl: None,
        }))
        .await
        .unwrap();
    store
        .commit(Batch::new("c", "p").op(WriteOp::Upsert {
            id: "tock".into(),
            body: json!({}),
            ttl: None,
        }))
        .await
        .unwrap();

    let conn = schema::open_reader(&store.shared.location, Duration::from_secs(1)).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM documents ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(ids, ["stays", "tick", "tock"]);
    let outbox: Vec<String> = conn
        .prepare("SELECT message_id FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(outbox, ["unpublished"]);
}

/// A continuation this store never produced is rejected as Invalid, not read as "start".
#[tokio::test]
async fn foreign_continuation_is_invalid() {
    let store = EmbeddedStore::in_memory().unwrap();
    for bad in ["abc", "-1", "12x"] {
        let result = store.change_feed("c", &Continuation(bad.into()), 10).await;
        assert!(
            matches!(result, Err(Error::Invalid(_))),
            "{bad}: {result:?}"
        );
    }
}

/// Malformed batches (no container, no partition, empty id) are Invalid and write nothing.
#[tokio::test]
async fn malformed_batches_are_invalid() {
    let store = EmbeddedStore::in_memory().unwrap();
    let op = || WriteOp::Upsert {
        id: "a".into(),
        body: json!({}),
        ttl: None,
    };
    let empty_id = WriteOp::Upsert {
        id: String::new(),
        body: json!({}),
        ttl: None,
    };
    for batch in [
        Batch::new("", "p").op(op()),
        Batch::new("c", "").op(op()),
        Batch::new("c", "p").op(op()).op(empty_id),
    ] {
        let result = store.commit(batch).await;
        assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
    }
    assert_eq!(store.get("c", "p", "a").await.unwrap(), None);
}
