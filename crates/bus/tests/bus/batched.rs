//! Batched handlers (`MessageHandler::batched`): rounds of distinct keys, per-key order, and
//! per-record failure routing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nivesh_bus::catalog::retry_topic;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};

use crate::common::{Env, WAIT, eventually};

/// Records every call in arrival order: the payloads and attempt numbers it carried, and
/// whether it came through `handle_many`.
#[derive(Default)]
struct Batcher {
    calls: Mutex<Vec<Call>>,
    /// Holds w0 (alone in the first batch) until the test has produced the rest.
    release: tokio::sync::Notify,
}

/// (through `handle_many`?, [(payload, attempt)])
type Call = (bool, Vec<(String, u32)>);

fn text(m: &InboundMessage) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

#[async_trait]
impl MessageHandler for Batcher {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        let p = text(msg);
        self.calls
            .lock()
            .unwrap()
            .push((false, vec![(p.clone(), msg.attempt)]));
        match (p.as_str(), msg.attempt) {
            ("w0", _) => self.release.notified().await,
            ("b1", 1) => return Err(HandlerError::Retryable("b1 fails once".into())),
            _ => {}
        }
        Ok(())
    }

    fn batched(&self) -> bool {
        true
    }

    async fn handle_many(&self, msgs: &[InboundMessage]) -> Vec<Result<(), HandlerError>> {
        self.calls
            .lock()
            .unwrap()
            .push((true, msgs.iter().map(|m| (text(m), m.attempt)).collect()));
        msgs.iter()
            .map(|m| match text(m).as_str() {
                "b1" => Err(HandlerError::Retryable("b1 fails once".into())),
                _ => Ok(()),
            })
            .collect()
    }
}

/// A batched handler gets rounds with at most one record per key, each key's records in offset
/// order across rounds; a record failing inside a round goes to the retry tier on its own (and
/// comes back through `handle`), while the rest of its round and its key's later records finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rounds_hold_distinct_keys_in_order_and_fail_per_record() {
    let env = Env::start();
    let (topic, group) = env.topic_and_group(1, 1);
    env.send(&topic, "W", "w0", vec![]).await;
    let handler = Arc::new(Batcher::default());
    let settings = env.settings(&group, &topic, vec![Duration::from_millis(50)]);
    let (stop, task) = env.spawn_consumer(settings, handler.clone());
    eventually("w0 in flight", || {
        let h = handler.clone();
        async move { !h.calls.lock().unwrap().is_empty() }
    })
    .await;
    for (key, payload) in [
        ("A", "a0"),
        ("B", "b0"),
        ("A", "a1"),
        ("B", "b1"),
        ("C", "c0"),
        ("B", "b2"),
        ("A", "a2"),
    ] {
        env.send(&topic, key, payload, vec![]).await;
    }
    // Fetches of a busy partition follow each other within milliseconds; this is ample for
    // all seven to be fetched behind w0, so they form one batch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    handler.release.notify_one();
    eventually("every record handled and b1 retried", || {
        let h = handler.clone();
        async move {
            let calls = h.calls.lock().unwrap();
            let handled: usize = calls.iter().map(|(_, c)| c.len()).sum();
            handled >= 9
        }
    })
    .await;
    stop.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("consumer stops")
        .expect("join")
        .expect("consumer");

    let calls = handler.calls.lock().unwrap().clone();
    let rounds: Vec<&Vec<(String, u32)>> = calls
        .iter()
        .filter(|(many, _)| *many)
        .map(|(_, c)| c)
        .collect();
    assert!(
        rounds.iter().any(|r| r.len() > 1),
        "records of different keys shared a call: {calls:?}"
    );
    for round in &rounds {
        let keys: HashSet<char> = round
            .iter()
            .map(|(p, _)| p.chars().next().unwrap())
            .collect();
        assert_eq!(
            keys.len(),
            round.len(),
            "one record per key per round: {round:?}"
        );
        assert!(
            round.iter().all(|(_, a)| *a == 1),
            "rounds carry first deliveries only"
        );
    }
    // First deliveries, in the order they were handed over: each record exactly once, each
    // key in offset order.
    let first: Vec<String> = calls
        .iter()
        .flat_map(|(_, c)| c.iter())
        .filter(|(_, a)| *a == 1)
        .map(|(p, _)| p.clone())
        .collect();
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "each record handed over once: {first:?}");
    assert_eq!(first.len(), 8, "each record handed over once: {first:?}");
    let pos = |p: &str| first.iter().position(|g| g == p).expect("present");
    assert!(
        pos("a0") < pos("a1") && pos("a1") < pos("a2"),
        "A in order: {first:?}"
    );
    assert!(
        pos("b0") < pos("b1") && pos("b1") < pos("b2"),
        "B in order: {first:?}"
    );
    // b1 alone went to the retry tier and came back once, through `handle`.
    let retries: Vec<&Call> = calls
        .iter()
        .filter(|(_, c)| c.iter().any(|(_, a)| *a > 1))
        .collect();
    assert_eq!(retries.len(), 1, "{calls:?}");
    assert_eq!(retries[0], &(false, vec![("b1".to_string(), 2)]));
    let forwarded = env.read_all(&retry_topic(&group, 0)).await;
    assert_eq!(forwarded.len(), 1, "only b1 forwarded");
    assert_eq!(forwarded[0].payload, b"b1");
    // Everything finished: the committed offset is past the last record (8 records).
    let committed = env.committed(&group, &topic, 1).await;
    assert_eq!(committed, vec![Some(8)]);
}
