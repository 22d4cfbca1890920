//! OTLP span export, end to end: telemetry installed with an `otlp_endpoint` pointing at a
//! stand-in collector over TCP, a request joining a caller's trace, and the guard's flush.
//! Its own test binary because telemetry is installed once per process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use nivesh_runtime::config::{LogFormat, TelemetrySettings};
use nivesh_runtime::http::{RuntimeState, base_router};

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

async fn collect(
    State(received): State<Received>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> &'static str {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    received.lock().unwrap().push((content_type, body));
    // An empty ExportTraceServiceResponse is an empty protobuf message.
    ""
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Spans reach the collector as OTLP/HTTP protobuf at `<endpoint>/v1/traces`, carrying the
/// service name, the request span's name and the caller's trace id; dropping the guard flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_collector() {
    let received: Received = Arc::default();
    let collector = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let collector_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = collector_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(collector_listener, collector).await });

    let settings = TelemetrySettings {
        log_format: LogFormat::Json,
        log_level: "warn".into(),
        otlp_endpoint: Some(format!("http://{collector_addr}")),
    };
    let guard = nivesh_runtime::telemetry::init(&settings, "runtime-otlp-test").expect("telemetry");

    let app = base_router(RuntimeState::new(
        "runtime-otlp-test",
        nivesh_runtime::metrics::install(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The final flush blocks until the batch is exported: off the async workers.
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || drop(guard)),
    )
    .await
    .expect("flush finished")
    .unwrap();

    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "the collector received nothing");
    assert!(
        received
            .iter()
            .all(|(ct, _)| ct == "application/x-protobuf"),
        "{:?}",
        received.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    let trace_id: Vec<u8> = (0..16)
        .map(|i| {
            u8::from_str_radix(&"0af7651916cd43dd8448eb211c80319c"[i * 2..i * 2 + 2], 16).unwrap()
        })
        .collect();
    let request_span = received
        .iter()
        .find(|(_, body)| contains(body, b"GET /healthz"))
        .expect("the request span was exported");
    assert!(
        contains(&request_span.1, &trace_id),
        "the span is not in the caller's trace"
    );
    assert!(
        contains(&request_span.1, b"runtime-otlp-test"),
        "service.name resource missing"
    );
}
