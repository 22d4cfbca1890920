//! End-to-end: the dev broker and the NAV services as separate OS processes, talking over TCP.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use nivesh_events::{HEADER_EVENT_ID, NavValidated};
use serde_json::Value;

async fn upload(client: &reqwest::Client, ingestor: &str, body: String) -> (u16, Value) {
    let resp = client
        .post(format!("{ingestor}/v1/nav/files?source=AMFI"))
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json report"))
}

/// Poll the publisher until every expected scheme answers with exactly the file's NAV string.
async fn wait_all_readable(
    client: &reqwest::Client,
    publisher: &str,
    expected: &[(String, String)],
    date: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&(String, String)> = expected.iter().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} NAVs still not readable, e.g. {:?}",
            pending.len(),
            pending.first()
        );
        let mut still = Vec::new();
        for item in pending {
            let (code, nav) = item;
            let r = client
                .get(format!("{publisher}/v1/nav/schemes/{code}"))
                .send()
                .await
                .expect("get nav");
            if r.status().as_u16() == 200 {
                let v: Value = r.json().await.expect("json");
                assert_eq!(
                    v["nav"],
                    Value::String(nav.clone()),
                    "scheme {code}: NAV must be exactly the file's string"
                );
                assert_eq!(v["navDate"], Value::String(date.into()), "scheme {code}");
            } else {
                still.push(item);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A NAV file uploaded to the ingestor process crosses `nav.raw-feeds` and `nav.validated` and
/// becomes readable from the publisher process with the exact NAV; re-uploading it is a no-op; a
/// poison message on the raw topic goes to the calculator's DLQ with its reason while NAVs behind
/// it on the same partition are still published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nav_file_flows_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = common::fleet(&tmp).await;
    let bootstrap = fleet.bootstrap().to_string();
    // A poison message first, on the partition of a scheme the file will carry.
    common::produce_raw(
        &bootstrap,
        "nav.raw-feeds",
        "900000",
        b"\x00not avro at all",
    );

    for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
        fleet.start(s).await.expect("service starts");
    }
    // Uploading is for ops; the publisher's reads are public (the client's token is ignored).
    let client = fleet.staff_client(&["ops"]).await.expect("ops client");
    let (ingestor, publisher) = (
        fleet.url("nav-ingestor").unwrap(),
        fleet.url("nav-publisher").unwrap(),
    );

    let (body, expected) = common::amfi_file(200, "25-Feb-2025");
    // Without a token (or as an investor) the ingestor refuses the upload before reading it.
    let bare = reqwest::Client::new();
    assert_eq!(upload(&bare, &ingestor, body.clone()).await.0, 401);
    let investor = nivesh_fleet::fleet::bearer_client(
        &fleet.investor_token("INV0001").await.unwrap(),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(upload(&investor, &ingestor, body.clone()).await.0, 403);
    let (status, report) = upload(&client, &ingestor, body.clone()).await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["published"], 200, "{report}");
    assert_eq!(report["rejected"], 0, "{report}");
    // NAVs are public data: read back without any token.
    wait_all_readable(
        &bare,
        &publisher,
        &expected,
        "2025-02-25",
        Duration::from_secs(60),
    )
    .await;

    // The same bytes again: reported as a duplicate, nothing republished.
    let (status, report) = upload(&client, &ingestor, body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["duplicate"], true, "{report}");
    let raw = common::read_topic_to_end(&bootstrap, "nav.raw-feeds", Duration::from_secs(30));
    assert_eq!(
        raw.len(),
        201,
        "200 raw NAVs + the poison message, and nothing from the duplicate upload"
    );

    // The poison message is dead-lettered with its origin and reason.
    let dlq = common::read_topic(
        &bootstrap,
        "nav-calculator.dlq",
        Duration::from_secs(30),
        |m| !m.is_empty(),
    );
    assert_eq!(dlq.len(), 1, "exactly the poison message is dead-lettered");
    let dead = &dlq[0];
    assert_eq!(dead.payload, b"\x00not avro at all");
    assert_eq!(
        dead.header_str("nivesh-original-topic"),
        Some("nav.raw-feeds")
    );
    assert!(dead.header_str("nivesh-original-offset").is_some());
    let reason = dead.header_str("nivesh-dlq-reason").unwrap_or_default();
    assert!(
        !reason.is_empty(),
        "a reason header explains the dead letter"
    );

    fleet.stop().await.unwrap();
}

/// SIGKILL the consuming service (nav-calculator) mid-stream and restart it: in the end every NAV
/// is validated exactly once (one distinct validated event per scheme and date, none a spurious
/// correction) and readable from the publisher: no loss, no double application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice() {
    const N: usize = 4000;
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = common::fleet(&tmp).await;
    let bootstrap = fleet.bootstrap().to_string();
    for s in ["nav-ingestor", "nav-calculator", "nav-publisher"] {
        fleet.start(s).await.expect("service starts");
    }
    let client = fleet.staff_client(&["ops"]).await.expect("ops client");
    let (ingestor, calculator, publisher) = (
        fleet.url("nav-ingestor").unwrap(),
        fleet.url("nav-calculator").unwrap(),
        fleet.url("nav-publisher").unwrap(),
    );

    let (body, expected) = common::amfi_file(N, "25-Feb-2025");
    let (status, report) = upload(&client, &ingestor, body).await;
    assert_eq!(status, 201, "{report}");

    // Kill as soon as the calculator has applied some, but not all, of the NAVs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let applied_at_kill = loop {
        let applied = common::metric(&calculator, "nivesh_nav_validated_total").await;
        if applied >= 1.0 {
            fleet.kill9("nav-calculator").await.unwrap();
            break applied;
        }
        assert!(
            Instant::now() < deadline,
            "calculator never started applying"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        applied_at_kill < N as f64,
        "killed after all {N} were applied: the test proved nothing (raise N)"
    );

    fleet.restart("nav-calculator").await.unwrap();
    wait_all_readable(
        &client,
        &publisher,
        &expected,
        "2025-02-25",
        Duration::from_secs(120),
    )
    .await;

    // Every validated event on the topic: one distinct event per scheme, all NEW. Duplicate
    // *messages* (a republished outbox record) carry the same event id and are fine; a second
    // distinct event for the same scheme and date would be a double application.
    let msgs = common::read_topic_to_end(&bootstrap, "nav.validated", Duration::from_secs(60));
    let events: Vec<NavValidated> = common::decode_all(&msgs).await;
    let mut ids_by_scheme: HashMap<String, HashSet<String>> = HashMap::new();
    for (m, e) in msgs.iter().zip(&events) {
        assert_eq!(
            e.change_kind, "NEW",
            "scheme {} applied twice (became a correction)",
            e.scheme_code
        );
        assert_eq!(
            m.header_str(HEADER_EVENT_ID),
            Some(e.meta.event_id.to_string().as_str())
        );
        ids_by_scheme
            .entry(e.scheme_code.clone())
            .or_default()
            .insert(e.meta.event_id.to_string());
    }
    assert_eq!(ids_by_scheme.len(), N, "every scheme validated");
    let doubled: Vec<_> = ids_by_scheme
        .iter()
        .filter(|(_, ids)| ids.len() != 1)
        .collect();
    assert!(
        doubled.is_empty(),
        "schemes with more than one distinct validated event: {doubled:?}"
    );

    // And the publisher holds exactly one history entry per scheme.
    for (code, _) in expected.iter().step_by(97) {
        let h: Value = client
            .get(format!("{publisher}/v1/nav/schemes/{code}/history"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            h["navs"].as_array().map(Vec::len),
            Some(1),
            "history of {code}: {h}"
        );
    }
    fleet.stop().await.unwrap();
}
