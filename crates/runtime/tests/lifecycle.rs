//! The service lifecycle over real dependencies: `connect` (store file per service, Redis or
//! the in-process fallback, the broker check, the logged configuration), `run` (consumers and
//! the outbox relay wired to the broker, graceful drain, crash-only failure).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_runtime::Error;
use nivesh_runtime::service::{ServiceApp, connect};
use nivesh_store::{Batch, OutboxMessage, WriteOp};
use tokio::sync::Notify;

use common::{client, mock_cluster, settings, start};

/// A request in flight when shutdown is requested (what SIGTERM does) still completes with its
/// response; then `run` returns `Ok` and the port stops answering.
#[tokio::test]
async fn graceful_shutdown_completes_in_flight_request() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    let entered = Arc::new(Notify::new());
    let signal = entered.clone();
    let routes = Router::new().route(
        "/slow",
        get(move || {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_millis(500)).await;
                "finished"
            }
        }),
    );
    let svc = start(ctx, ServiceApp::new().routes(routes)).await;
    let url = svc.url("/slow");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    entered.notified().await;

    let health = svc.url("/healthz");
    svc.stop().await.expect("clean stop");
    let resp = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "finished");
    assert!(
        client().get(health).send().await.is_err(),
        "still serving after shutdown"
    );
}

/// Crash-only: a task that fails stops the service, and `run` returns the task's error (so
/// `main` exits non-zero) without anyone cancelling it.
#[tokio::test]
async fn failing_task_stops_the_service_with_an_error() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    let app = ServiceApp::new().task("doomed", async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Err::<(), _>("disk on fire")
    });
    let svc = start(ctx, app).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), svc.handle)
        .await
        .expect("run returned")
        .unwrap();
    match outcome {
        Err(Error::Task { name, reason }) => {
            assert_eq!(name, "doomed");
            assert!(reason.contains("disk on fire"), "{reason}");
        }
        other => panic!("expected the task's failure, got {other:?}"),
    }
}

/// A panicking task is a failure too: the service stops and `run` names the task.
#[tokio::test]
async fn panicking_task_stops_the_service_with_an_error() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    async fn fragile() -> Result<(), std::convert::Infallible> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        panic!("invariant broken")
    }
    let app = ServiceApp::new().task("fragile", fragile());
    let svc = start(ctx, app).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), svc.handle)
        .await
        .expect("run returned")
        .unwrap();
    match outcome {
        Err(Error::Task { name, reason }) => {
            assert_eq!(name, "fragile");
            assert!(reason.contains("invariant broken"), "{reason}");
        }
        other => panic!("expected the task's panic as a failure, got {other:?}"),
    }
}

/// A task that finishes `Ok` early does not stop the service.
#[tokio::test]
async fn finished_task_does_not_stop_the_service() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    let done = Arc::new(Notify::new());
    let signal = done.clone();
    let app = ServiceApp::new().task("warm-up", async move {
        signal.notify_one();
        Ok::<(), std::convert::Infallible>(())
    });
    let svc = start(ctx, app).await;
    done.notified().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client()
            .get(svc.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!svc.handle.is_finished());
    svc.stop().await.unwrap();
}

struct Recorder {
    seen: Mutex<Vec<InboundMessage>>,
    arrived: Notify,
}

#[async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, msg: &InboundMessage) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(msg.clone());
        self.arrived.notify_one();
        Ok(())
    }
}

/// `run` wires the outbox relay and the consumers: a record committed to the store's outbox
/// is published by the relay and delivered to the group's handler over the broker.
#[tokio::test]
async fn outbox_relay_and_consumer_are_wired() {
    let cluster = common::mock_cluster_for_group("nav-ingestor");
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        arrived: Notify::new(),
    });
    let (store, notify) = (ctx.store.clone(), ctx.outbox_notify.clone());
    // nav-ingestor's catalog group consumes nav.rejected.
    let svc = start(
        ctx,
        ServiceApp::new().consumer("nav-ingestor", recorder.clone()),
    )
    .await;

    let message_id = nivesh_testkit::unique("evt");
    let batch = Batch::new("things", "p1")
        .op(WriteOp::Upsert {
            id: "t1".into(),
            body: serde_json::json!({"v": 1}),
            ttl: None,
        })
        .emit(OutboxMessage {
            message_id: message_id.clone(),
            topic: "nav.rejected".into(),
            key: "119551".into(),
            payload: message_id.clone().into_bytes(),
            headers: vec![],
        });
    store.commit(batch).await.unwrap();
    notify.notify_one();

    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if recorder
                .seen
                .lock()
                .unwrap()
                .iter()
                .any(|m| m.payload == message_id.as_bytes())
            {
                return;
            }
            recorder.arrived.notified().await;
        }
    })
    .await
    .expect("the outbox record reached the consumer");
    let got = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.payload == message_id.as_bytes())
        .cloned()
        .unwrap();
    assert_eq!(got.topic, "nav.rejected");
    assert_eq!(got.key_str(), Some("119551"));
    svc.stop().await.unwrap();
    assert!(
        store.outbox_pending(10).await.unwrap().is_empty(),
        "relay acked what it published"
    );
}

/// A consumer group missing from the catalog fails `run` before anything is served.
#[tokio::test]
async fn unknown_consumer_group_fails_run() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        arrived: Notify::new(),
    });
    let svc = start(ctx, ServiceApp::new().consumer("no-such-group", recorder)).await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), svc.handle)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, Err(Error::Bus(nivesh_bus::Error::UnknownGroup(_)))),
        "{outcome:?}"
    );
}

/// With no broker configured, `connect` fails with a message naming the variable to set.
#[tokio::test]
async fn connect_without_a_broker_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = connect(&settings("", dir.path(), &[]))
        .await
        .expect_err("no broker");
    let text = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{text}");
    assert!(text.contains("NIVESH__KAFKA__BOOTSTRAP_SERVERS"), "{text}");
}

/// Each service owns its data: the embedded store is `<data_dir>/<service>.sqlite`.
#[tokio::test]
async fn embedded_store_is_one_file_per_service() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let ctx = connect(&settings(&cluster.bootstrap_servers(), dir.path(), &[]))
        .await
        .unwrap();
    ctx.store
        .commit(Batch::new("c", "p").op(WriteOp::Upsert {
            id: "a".into(),
            body: serde_json::json!({}),
            ttl: None,
        }))
        .await
        .unwrap();
    assert!(dir.path().join("runtime-test.sqlite").is_file());
}

/// A reachable Redis becomes the cache, with the configured key prefix.
#[tokio::test]
async fn connect_uses_redis_when_it_answers() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let prefix = nivesh_testkit::unique("rt-connect") + ":";
    let url = nivesh_testkit::redis_url();
    let s = settings(
        &cluster.bootstrap_servers(),
        dir.path(),
        &[
            ("NIVESH__REDIS__URL", &url),
            ("NIVESH__REDIS__KEY_PREFIX", &prefix),
            ("NIVESH__REDIS__REQUIRED", "true"),
        ],
    );
    let ctx = connect(&s).await.unwrap();
    assert_eq!(ctx.cache.kind(), "redis");
    ctx.cache
        .set("k", b"v", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        ctx.cache.get("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // Check with a raw connection that the prefix was applied.
    let raw = nivesh_store::RedisCache::connect(&url, &prefix)
        .await
        .unwrap();
    use nivesh_store::Cache as _;
    assert_eq!(raw.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    ctx.cache.delete("k").await.unwrap();
}

/// An unreachable Redis falls back to the in-process cache, unless `redis.required`.
#[tokio::test]
async fn unreachable_redis_falls_back_unless_required() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("redis://{closed}");
    let lenient = settings(
        &cluster.bootstrap_servers(),
        dir.path(),
        &[("NIVESH__REDIS__URL", &url)],
    );
    assert_eq!(connect(&lenient).await.unwrap().cache.kind(), "in-memory");

    let strict = settings(
        &cluster.bootstrap_servers(),
        dir.path(),
        &[
            ("NIVESH__REDIS__URL", &url),
            ("NIVESH__REDIS__REQUIRED", "true"),
        ],
    );
    let err = connect(&strict).await.expect_err("required Redis is down");
    assert!(err.to_string().contains("redis.required"), "{err}");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// `connect` logs the effective configuration at start-up, with every secret redacted (the
/// Redis URL's password, the Cosmos key, a SASL password) and ordinary values visible.
#[tokio::test]
async fn startup_log_shows_config_with_secrets_redacted() {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let redis_url = format!("redis://:hunter2-redis@{closed}");
    let s = settings(
        &cluster.bootstrap_servers(),
        dir.path(),
        &[
            ("NIVESH__REDIS__URL", &redis_url),
            ("NIVESH__STORE__COSMOS__KEY", "hunter2-cosmos"),
            ("NIVESH__KAFKA__EXTRA__SASL__PASSWORD", "hunter2-sasl"),
            ("NIVESH__KAFKA__EXTRA__CLIENT__RACK", "az-1"),
        ],
    );
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let ctx = connect(&s).await.unwrap();
    drop(guard);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("effective configuration"), "{log}");
    assert!(log.contains("REDACTED"), "{log}");
    assert!(
        log.contains("az-1"),
        "non-secret passthrough values stay visible: {log}"
    );
    assert!(log.contains(&cluster.bootstrap_servers()), "{log}");
    assert!(
        !log.contains("hunter2"),
        "a secret leaked into the log: {log}"
    );
    // The secret itself is intact for the code that needs it.
    assert_eq!(
        ctx.kafka.extra.get("sasl.password").map(String::as_str),
        Some("hunter2-sasl")
    );
}
