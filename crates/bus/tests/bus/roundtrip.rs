use std::sync::OnceLock;

use nivesh_bus::headers;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use crate::common::{Env, Recorder, header};

/// Installs what the runtime installs in services: the W3C propagator and a tracing subscriber
/// bridged to OpenTelemetry (no exporter: spans only need ids here).
fn init_tracing() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("bus-tests");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::set_global_default(subscriber).expect("global subscriber");
    });
}

/// Key, headers and the trace context travel producer -> handler, the handler's span joins the
/// producer's trace, and after a graceful stop the group's offsets are committed so the next
/// member of the group sees only new records.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_with_key_headers_trace_and_committed_offsets() {
    init_tracing();
    let env = Env::start();
    let (topic, group) = env.topic_and_group(3, 0);

    let span = tracing::info_span!("place-order");
    let producer_trace = span.context().span().span_context().trace_id().to_string();
    assert_ne!(
        producer_trace,
        opentelemetry::trace::TraceId::INVALID.to_string(),
        "tracing not bridged"
    );
    {
        let _entered = span.enter();
        for i in 0..5 {
            let hs = vec![("x-test".to_owned(), format!("h{i}").into_bytes())];
            env.send(&topic, &format!("investor-{i}"), &format!("event-{i}"), hs)
                .await;
        }
    }

    let first = Recorder::ok();
    let (stop, task) = env.spawn_consumer(env.settings(&group, &topic, vec![]), first.clone());
    first.until("5 records", |c| c.len() >= 5).await;
    stop.cancel();
    task.await.expect("join").expect("consumer result");

    let mut calls = first.calls();
    assert_eq!(
        calls.len(),
        5,
        "each record handled once: {:?}",
        first.payloads()
    );
    calls.sort_by_key(|c| c.msg.key.clone());
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.msg.topic, topic);
        assert_eq!(c.msg.key_str(), Some(format!("investor-{i}").as_str()));
        assert_eq!(c.msg.payload, format!("event-{i}").into_bytes());
        assert_eq!(header(&c.msg, "x-test"), format!("h{i}"));
        assert_eq!(c.msg.attempt, 1);
        assert!(c.msg.timestamp_ms.is_some());
        let traceparent = header(&c.msg, headers::TRACEPARENT);
        assert!(
            traceparent.contains(&producer_trace),
            "{traceparent} does not carry {producer_trace}"
        );
        assert_eq!(
            c.trace_id, producer_trace,
            "consumer span is not a child of the producer's trace"
        );
    }

    // Committed: every partition's offset equals its high watermark.
    let on_topic = env.read_all(&topic).await;
    let committed = env.committed(&group, &topic, 3).await;
    for p in 0..3 {
        let high = on_topic.iter().filter(|m| m.partition == p).count() as i64;
        if high > 0 {
            assert_eq!(
                committed[p as usize],
                Some(high),
                "partition {p}: {committed:?}"
            );
        }
    }

    // The next member of the group starts after them.
    let second = Recorder::ok();
    let (stop, task) = env.spawn_consumer(env.settings(&group, &topic, vec![]), second.clone());
    env.send(&topic, "investor-9", "after", vec![]).await;
    second.until("the new record", |c| !c.is_empty()).await;
    stop.cancel();
    task.await.expect("join").expect("consumer result");
    assert_eq!(second.payloads(), vec!["after".to_owned()]);
}

/// A record whose headers already carry a trace keeps it: injection does not overwrite.
#[test]
fn inject_keeps_existing_traceparent() {
    init_tracing();
    let existing = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut hs = vec![(
        headers::TRACEPARENT.to_owned(),
        existing.as_bytes().to_vec(),
    )];
    let span = tracing::info_span!("other");
    let _entered = span.enter();
    nivesh_bus::trace::inject_current(&mut hs);
    assert_eq!(
        hs,
        vec![(
            headers::TRACEPARENT.to_owned(),
            existing.as_bytes().to_vec()
        )]
    );

    let mut fresh = Vec::new();
    nivesh_bus::trace::inject_current(&mut fresh);
    let cx = nivesh_bus::trace::extract(&fresh);
    assert_eq!(
        cx.span().span_context().trace_id(),
        span.context().span().span_context().trace_id()
    );
}
