//! Logs and traces.
//!
//! - `tracing` events go to stdout, one JSON object per line by default, each carrying the
//!   `trace_id` and `span_id` of the span it happened in and that span's fields (e.g. the
//!   request id), so a log search by trace id finds every line of a request across services.
//!   `pretty` is one human-readable line per event for a terminal.
//! - An OpenTelemetry tracer is always installed, exporter or not: it is what mints trace and
//!   span ids for the logs and what the W3C `traceparent` (HTTP headers, Kafka headers) joins.
//!   Spans are exported over OTLP/HTTP (protobuf, batched) only when `otlp_endpoint` is set.
//! - Log filter: `RUST_LOG` when set, else `log_level`. It filters what is printed only; spans
//!   at INFO and above always exist (and are exported), whatever the log level.
//!
//! [`init`] installs all of it once per process; later calls (tests) are no-ops. The returned
//! [`TelemetryGuard`] flushes pending spans when dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TelemetrySettings};
use crate::{Error, Result};

/// Flushes and stops span export when dropped (end of `main`, after the service stopped).
#[must_use = "dropping the guard immediately stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            // The subscriber may already be gone; stderr is the one channel left.
            eprintln!("telemetry: flushing spans at shutdown failed: {e}");
        }
    }
}

static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Install logging and tracing for `service_name` (first call per process); later calls return
/// a guard that does nothing.
pub fn init(settings: &TelemetrySettings, service_name: &str) -> Result<TelemetryGuard> {
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *installed {
        return Ok(TelemetryGuard { provider: None });
    }

    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| {
                Error::Telemetry(format!(
                    "RUST_LOG={directives:?} is not a valid filter: {e}"
                ))
            })?,
        _ => EnvFilter::try_new(&settings.log_level).map_err(|e| {
            Error::Telemetry(format!(
                "telemetry.log_level {:?} is not a valid filter: {e}",
                settings.log_level
            ))
        })?,
    };

    let resource = Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let exporting = settings.otlp_endpoint.is_some();
    if let Some(endpoint) = &settings.otlp_endpoint {
        builder = builder.with_batch_exporter(OwnRuntimeExporter::new(endpoint)?);
    }
    let provider = builder.build();
    let tracer = provider.tracer("nivesh");

    // Separate filters: the log filter decides what is printed, not which spans exist. A global
    // `warn` filter would drop the INFO request spans, and with them span export and the trace
    // ids on every warning logged inside a request.
    let logs = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines {
                service: service_name.to_string(),
            })
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_target(true)
            .with_filter(filter)
            .boxed(),
    };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry().with(logs).with(spans);
    if subscriber.try_init().is_err() {
        // Someone else (a test harness) owns the global subscriber; ours would see nothing.
        let _ = provider.shutdown();
        *installed = true;
        return Ok(TelemetryGuard { provider: None });
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    *installed = true;
    tracing::debug!(exporting, "telemetry installed");
    Ok(TelemetryGuard {
        provider: exporting.then_some(provider),
    })
}

/// OTLP/HTTP export on a small runtime of its own.
///
/// The SDK's batch processor calls `export` from its own thread, outside any Tokio runtime, but
/// the HTTP client the workspace enables (async reqwest) needs one. Borrowing the service's
/// runtime was rejected: the final flush runs while that runtime is shutting down (or from
/// inside one of its workers), which would deadlock or drop the last spans.
#[derive(Debug)]
struct OwnRuntimeExporter {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl OwnRuntimeExporter {
    fn new(endpoint: &str) -> Result<Self> {
        let base = endpoint.trim_end_matches('/');
        // Given programmatically, the exporter uses the URL verbatim; the signal path is ours to add.
        let url = if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        };
        let inner = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Telemetry(format!("OTLP exporter for {endpoint}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| Error::Telemetry(format!("OTLP export runtime: {e}")))?;
        Ok(OwnRuntimeExporter {
            inner: Arc::new(inner),
            runtime: Some(runtime),
        })
    }
}

impl SpanExporter for OwnRuntimeExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let Some(runtime) = &self.runtime else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        let inner = Arc::clone(&self.inner);
        runtime
            .spawn(async move { inner.export(batch).await })
            .await
            .map_err(|e| OTelSdkError::InternalFailure(format!("OTLP export task: {e}")))?
    }

    fn shutdown_with_timeout(&mut self, _timeout: Duration) -> OTelSdkResult {
        // shutdown_background: this may run on an async worker, where a blocking drop panics.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called while building the provider, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

impl Drop for OwnRuntimeExporter {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One JSON object per event:
/// `{"timestamp","level","service","target","message",<event fields>,"span":{..},"trace_id","span_id"}`.
/// `span` holds the name of the innermost span and the fields of every span in scope (inner
/// wins), which is how a line learns its request id.
pub(crate) struct JsonLines {
    pub(crate) service: String,
}

const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "service",
    "target",
    "message",
    "span",
    "trace_id",
    "span_id",
];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("service".into(), self.service.clone().into());
        line.insert("target".into(), event.metadata().target().into());

        let mut fields = FieldsVisitor::default();
        event.record(&mut fields);
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        for (k, v) in fields.0 {
            let key = if RESERVED.contains(&k.as_str()) {
                format!("field.{k}")
            } else {
                k
            };
            line.insert(key, v);
        }

        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<_> = scope.from_root().collect();
            let mut span_fields = Map::new();
            for span in &spans {
                let ext = span.extensions();
                if let Some(formatted) = ext.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&formatted.fields)
                {
                    // otel.* fields steer the span export (name, kind, status); in a log line
                    // they only repeat what the other fields say.
                    span_fields.extend(map.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
                }
            }
            if let Some(leaf) = spans.last() {
                span_fields.insert("name".into(), leaf.name().into());
                line.insert("span".into(), Value::Object(span_fields));
                if let Some(otel) = leaf.extensions().get::<tracing_opentelemetry::OtelData>() {
                    if let Some(trace_id) = otel.trace_id() {
                        line.insert("trace_id".into(), trace_id.to_string().into());
                    }
                    if let Some(span_id) = otel.span_id() {
                        line.insert("span_id".into(), span_id.to_string().into());
                    }
                }
            }
        }

        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Event fields as JSON values; numbers and booleans keep their type.
#[derive(Default)]
struct FieldsVisitor(BTreeMap<String, Value>);

impl Visit for FieldsVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(
            field.name().into(),
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// A JSON line inside a span carries the span's trace and span ids (the same the OTel layer
    /// assigned) and the span's fields.
    #[test]
    fn json_lines_carry_trace_ids_and_span_fields() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines {
                        service: "svc".into(),
                    })
                    .with_writer(buffer.clone()),
            );
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let span = tracing::info_span!("work", request_id = "r-42");
            let _entered = span.enter();
            tracing::info!(count = 3u64, "did work");
            let cx = span.context();
            let sc = opentelemetry::trace::TraceContextExt::span(&cx)
                .span_context()
                .clone();
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(out.lines().next().expect("one line")).unwrap();
        assert_eq!(line["message"], "did work");
        assert_eq!(line["count"], 3);
        assert_eq!(line["service"], "svc");
        assert_eq!(line["span"]["request_id"], "r-42");
        assert_eq!(line["span"]["name"], "work");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"], span_id.as_str());
        assert_ne!(trace_id, opentelemetry::trace::TraceId::INVALID.to_string());
    }
}
