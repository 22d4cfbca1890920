//! W3C trace context in Kafka headers, so one NAV's trace spans ingestor → calculator → publisher.
//!
//! Both directions go through OpenTelemetry's *global* propagator, which the runtime installs
//! (TraceContext). Without it they are no-ops, which is what a process that does not export
//! traces wants. The current `tracing` span is bridged to OpenTelemetry with
//! `tracing-opentelemetry`, so code keeps using `tracing` spans only.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::message::{find_header, headers};

/// Add `traceparent`/`tracestate` for the current span, unless the headers already carry a
/// `traceparent`: a record that already has a trace (an outbox record written inside a request,
/// a record forwarded to a retry topic) keeps the trace it was born in.
pub fn inject_current(headers: &mut Vec<(String, Vec<u8>)>) {
    if find_header(headers, headers::TRACEPARENT).is_some() {
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

/// The `kafka.consume` span of one record, joined to the trace its headers carry. The consumer
/// opens it around [`crate::MessageHandler::handle`]; a batched handler opens it itself around
/// each record's own work (so the events it emits continue that record's trace).
pub fn consume_span(group: &str, msg: &crate::InboundMessage) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka.consume",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = %msg.topic,
        messaging.kafka.partition = msg.partition,
        messaging.kafka.offset = msg.offset,
        messaging.consumer.group.name = %group,
        nivesh.attempt = msg.attempt,
    );
    // Fails only when no OpenTelemetry layer is installed; the span then has no trace to join.
    let _ = span.set_parent(extract(&msg.headers));
    span
}

/// The remote parent carried by the headers (an empty context when there is none).
pub fn extract(headers: &[(String, Vec<u8>)]) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

struct HeaderInjector<'a>(&'a mut Vec<(String, Vec<u8>)>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Replace rather than append: Kafka allows repeated header names, and a duplicated
        // traceparent makes the extracting side pick one arbitrarily.
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value.into_bytes()));
    }
}

struct HeaderExtractor<'a>(&'a [(String, Vec<u8>)]);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // Propagators ask in lowercase; producers outside the fleet may not write lowercase.
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}
