use std::time::Duration;

use nivesh_bus::catalog::{dead_letter_topic, retry_topic};
use nivesh_bus::{HandlerError, headers};

use crate::common::{Env, Recorder, header, now_ms};

/// ACCEPTANCE: a poison record goes to `{group}.dlq` with every reason header, and the records
/// after it on the same (only) partition are still handled, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_record_is_dead_lettered_and_partition_moves_on() {
    let env = Env::start();
    let (topic, group) = env.topic_and_group(1, 2);
    let before = now_ms();
    let custom = vec![("x-source".to_owned(), b"amfi".to_vec())];
    for p in ["m0", "poison", "m2", "m3"] {
        env.send(&topic, "scheme-119551", p, custom.clone()).await;
    }

    let handler = Recorder::with(|m| {
        let poison = m.payload == b"poison";
        Box::pin(async move {
            if poison {
                Err(HandlerError::Permanent(
                    "not a RawNavReceived event: bad magic".into(),
                ))
            } else {
                Ok(())
            }
        })
    });
    let settings = env.settings(
        &group,
        &topic,
        vec![Duration::from_millis(200), Duration::from_millis(400)],
    );
    let (stop, task) = env.spawn_consumer(settings, handler.clone());
    handler
        .until("m3", |c| c.iter().any(|c| c.msg.payload == b"m3"))
        .await;

    let dlq = dead_letter_topic(&group);
    let mut dead = env.read_all(&dlq).await;
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    while dead.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        dead = env.read_all(&dlq).await;
    }
    stop.cancel();
    task.await.expect("join").expect("consumer");
    let after = now_ms();

    // Handled in partition order, the poison once (permanent: no retries).
    assert_eq!(handler.payloads(), vec!["m0", "poison", "m2", "m3"]);
    assert!(
        env.read_all(&retry_topic(&group, 0)).await.is_empty(),
        "permanent errors must not be retried"
    );

    assert_eq!(dead.len(), 1, "exactly one dead letter");
    let d = &dead[0];
    assert_eq!(d.payload, b"poison");
    assert_eq!(d.key_str(), Some("scheme-119551"));
    assert_eq!(header(d, "x-source"), "amfi", "original headers are kept");
    assert_eq!(header(d, headers::ORIGINAL_TOPIC), topic);
    assert_eq!(header(d, headers::ORIGINAL_PARTITION), "0");
    assert_eq!(header(d, headers::ORIGINAL_OFFSET), "1");
    assert_eq!(header(d, headers::ATTEMPT), "1");
    assert_eq!(
        header(d, headers::ERROR),
        "not a RawNavReceived event: bad magic"
    );
    assert_eq!(header(d, headers::DLQ_REASON), headers::REASON_PERMANENT);
    for h in [
        headers::FIRST_FAILED_AT,
        headers::DEAD_LETTERED_AT,
        headers::NOT_BEFORE,
    ] {
        let t: i64 = header(d, h)
            .parse()
            .unwrap_or_else(|e| panic!("{h} not a number: {e}"));
        assert!(
            (before..=after).contains(&t),
            "{h}={t} outside [{before}, {after}]"
        );
    }

    // The committed offset is past all four records: the poison does not come back.
    assert_eq!(env.committed(&group, &topic, 1).await, vec![Some(4)]);
}

/// A retryable failure goes to retry tier 0 (attempt header 1), waits there until its
/// not-before time and succeeds on attempt 2, seen under its original topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retryable_failure_succeeds_on_second_attempt_after_not_before() {
    let env = Env::start();
    let (topic, group) = env.topic_and_group(1, 1);
    env.send(&topic, "investor-7", "order-1", vec![]).await;

    let handler = Recorder::with(|m| {
        let attempt = m.attempt;
        Box::pin(async move {
            if attempt == 1 {
                Err(HandlerError::Retryable("store unavailable".into()))
            } else {
                Ok(())
            }
        })
    });
    let settings = env.settings(&group, &topic, vec![Duration::from_millis(1500)]);
    let (stop, task) = env.spawn_consumer(settings, handler.clone());
    handler.until("the second attempt", |c| c.len() >= 2).await;
    // Nothing else may arrive: give a straggler (a third attempt, a DLQ) a moment to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    task.await.expect("join").expect("consumer");

    let calls = handler.calls();
    assert_eq!(calls.len(), 2, "{:?}", handler.payloads());
    assert_eq!(calls[0].msg.attempt, 1);
    assert_eq!(calls[1].msg.attempt, 2);
    assert_eq!(
        calls[1].msg.topic, topic,
        "a retry is presented under its original topic"
    );
    assert_eq!(calls[1].msg.payload, b"order-1");
    assert_eq!(calls[1].msg.key_str(), Some("investor-7"));
    assert_eq!(header(&calls[1].msg, headers::ATTEMPT), "1");
    assert_eq!(header(&calls[1].msg, headers::ERROR), "store unavailable");
    let not_before: i64 = header(&calls[1].msg, headers::NOT_BEFORE)
        .parse()
        .expect("not-before");
    assert!(
        not_before >= calls[0].at_ms,
        "not-before {not_before} precedes the failure {}",
        calls[0].at_ms
    );
    assert!(
        calls[1].at_ms >= not_before,
        "handled at {} before its not-before {not_before}",
        calls[1].at_ms
    );

    let retried = env.read_all(&retry_topic(&group, 0)).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(header(&retried[0], headers::ORIGINAL_OFFSET), "0");
    assert!(env.read_all(&dead_letter_topic(&group)).await.is_empty());
    assert_eq!(
        env.committed(&group, &retry_topic(&group, 0), 1).await,
        vec![Some(1)]
    );
}

/// A record that keeps failing walks every tier and ends in the DLQ as retries-exhausted,
/// keeping its original coordinates and first failure time through the tiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_exhausted_goes_to_dead_letter_topic() {
    let env = Env::start();
    let (topic, group) = env.topic_and_group(1, 2);
    env.send(&topic, "investor-3", "always-fails", vec![]).await;
    env.send(&topic, "investor-3", "fine", vec![]).await;

    let handler = Recorder::with(|m| {
        let fail = m.payload == b"always-fails";
        Box::pin(async move {
            if fail {
                Err(HandlerError::Retryable("timeout".into()))
            } else {
                Ok(())
            }
        })
    });
    let settings = env.settings(
        &group,
        &topic,
        vec![Duration::from_millis(100), Duration::from_millis(200)],
    );
    let (stop, task) = env.spawn_consumer(settings, handler.clone());
    handler
        .until("three attempts", |c| {
            c.iter()
                .filter(|c| c.msg.payload == b"always-fails")
                .count()
                >= 3
        })
        .await;
    let dlq = dead_letter_topic(&group);
    crate::common::eventually("dead letter", || async {
        !env.read_all(&dlq).await.is_empty()
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("consumer");

    let attempts: Vec<u32> = handler
        .calls()
        .iter()
        .filter(|c| c.msg.payload == b"always-fails")
        .map(|c| c.msg.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert!(
        handler.payloads().contains(&"fine".to_owned()),
        "the partition moved on during retries"
    );

    let dead = env.read_all(&dlq).await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        header(d, headers::DLQ_REASON),
        headers::REASON_RETRIES_EXHAUSTED
    );
    assert_eq!(header(d, headers::ATTEMPT), "3");
    assert_eq!(header(d, headers::ORIGINAL_TOPIC), topic);
    assert_eq!(header(d, headers::ORIGINAL_OFFSET), "0");
    let tier0 = env.read_all(&retry_topic(&group, 0)).await;
    assert_eq!(
        header(d, headers::FIRST_FAILED_AT),
        header(&tier0[0], headers::FIRST_FAILED_AT)
    );
}
