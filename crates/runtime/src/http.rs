//! The router every service gets, and the layers around every route.
//!
//! Endpoints: `GET /healthz` (liveness, no dependencies), `GET /readyz` (see [`crate::health`]),
//! `GET /metrics` (Prometheus text), `GET /openapi.json` (the service's document merged with
//! the runtime's own paths).
//!
//! Layers, outermost first, applied to the service's routes, the runtime's and the fallbacks:
//! 1. request context: the request id (`x-request-id` taken when sane, else a UUIDv7; echoed on
//!    the response), a tracing span joined to the caller's W3C `traceparent`, HTTP metrics
//!    labelled by the *matched* route (the raw URI would give one time series per NAV scheme
//!    or order id), and the finishing of error bodies: every problem gets `instance` and the
//!    `request_id` extension, and any other error response without a JSON body (axum's own
//!    rejections, 405, 413) is rewritten into a problem;
//! 2. when configured ([`RuntimeState::with_limits`]): load shedding, the request deadline and
//!    rate limiting ([`crate::limits`]);
//! 3. catch-panic: a panicking handler is a 500 problem, not a dropped connection;
//! 4. the default request-body limit (routes may raise it with axum's `DefaultBodyLimit`, which
//!    being closer to the handler wins).

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::TraceContextExt as _;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use utoipa::openapi::OpenApi;

use crate::health::{ReadinessCheck, ReadinessReport};
use crate::problem::{INTERNAL_DETAIL, PROBLEM_JSON, Problem};

/// The request id header, accepted from callers (the ingress sets it) and always echoed.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Used when a service does not set `http.body_limit_bytes`: axum's own default.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How much of a non-problem error body is read to become the problem's detail.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// What the runtime's endpoints and layers need. Cheap to clone.
#[derive(Clone)]
pub struct RuntimeState {
    inner: Arc<StateInner>,
}

#[derive(Clone)]
struct StateInner {
    service: Arc<str>,
    metrics: PrometheusHandle,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    check_timeout: Duration,
    openapi: Bytes,
    body_limit: usize,
    /// Load shedding, deadlines and rate limits ([`crate::limits`]); none when unset.
    limits: Option<crate::limits::Limits>,
}

impl RuntimeState {
    /// No readiness checks, the runtime's own OpenAPI paths, the default body limit.
    pub fn new(service_name: impl Into<String>, metrics: PrometheusHandle) -> Self {
        let service: String = service_name.into();
        let openapi = render_openapi(&crate::openapi::document(&service, None));
        RuntimeState {
            inner: Arc::new(StateInner {
                service: service.into(),
                metrics,
                checks: Vec::new(),
                check_timeout: Duration::from_secs(2),
                openapi,
                body_limit: DEFAULT_BODY_LIMIT,
                limits: None,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut StateInner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    pub fn with_check(self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.edit(|s| s.checks.push(check))
    }

    pub fn with_checks(self, checks: impl IntoIterator<Item = Arc<dyn ReadinessCheck>>) -> Self {
        self.edit(|s| s.checks.extend(checks))
    }

    /// Bound on each readiness check.
    pub fn with_check_timeout(self, timeout: Duration) -> Self {
        self.edit(|s| s.check_timeout = timeout)
    }

    /// Serve `service_doc` merged with the runtime's paths at `/openapi.json`.
    pub fn with_openapi(self, service_doc: OpenApi) -> Self {
        self.edit(|s| {
            s.openapi = render_openapi(&crate::openapi::document(&s.service, Some(service_doc)))
        })
    }

    /// Default request-body limit in bytes.
    pub fn with_body_limit(self, bytes: usize) -> Self {
        self.edit(|s| s.body_limit = bytes)
    }

    /// Shed, deadline and rate-limit every route but the probes ([`crate::limits`]).
    pub fn with_limits(self, limits: crate::limits::Limits) -> Self {
        self.edit(|s| s.limits = Some(limits))
    }

    pub fn service_name(&self) -> &str {
        &self.inner.service
    }
}

fn render_openapi(doc: &OpenApi) -> Bytes {
    // An OpenApi value is plain data; serializing it cannot fail.
    Bytes::from(serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The runtime's endpoints with every layer: what a service with no routes of its own serves.
pub fn base_router(state: RuntimeState) -> Router {
    app_router(state, Router::new())
}

/// `routes` (the service's, state already applied) merged with the runtime's endpoints, the
/// problem fallbacks and every layer. Layers are added after the merge on purpose: axum
/// applies a layer only to the routes present when it is added.
pub fn app_router(state: RuntimeState, routes: Router) -> Router {
    let runtime = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .with_state(state.clone());
    let limit = state.inner.body_limit;
    let mut router = routes
        .merge(runtime)
        .fallback(crate::problem::not_found_fallback)
        .method_not_allowed_fallback(crate::problem::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(panic_response));
    if let Some(limits) = state.inner.limits.clone() {
        // Inside the request context, so a shed or refused request is logged, counted and
        // carries its request id like any other answer.
        router = router.layer(middleware::from_fn_with_state(
            limits,
            crate::limits::limits,
        ));
    }
    router.layer(middleware::from_fn_with_state(state, request_context))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Alive {
    /// Always `alive`.
    status: &'static str,
}

/// Liveness: the process answers. Never checks dependencies (see [`crate::health`]).
#[utoipa::path(get, path = "/healthz", tag = "runtime", responses((status = 200, description = "the process is alive", body = Alive)))]
pub(crate) async fn healthz() -> axum::Json<Alive> {
    axum::Json(Alive { status: "alive" })
}

/// Readiness: the critical dependencies answer.
#[utoipa::path(get, path = "/readyz", tag = "runtime", responses(
    (status = 200, description = "ready, or degraded (a non-critical dependency is down)", body = ReadinessReport),
    (status = 503, description = "a critical dependency is down", body = ReadinessReport)))]
pub(crate) async fn readyz(State(state): State<RuntimeState>) -> Response {
    let s = &state.inner;
    let report = crate::health::evaluate(&s.service, &s.checks, s.check_timeout).await;
    (report.http_status(), axum::Json(report)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "runtime", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<RuntimeState>) -> Response {
    let body = state.inner.metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "runtime", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi_json(State(state): State<RuntimeState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.inner.openapi.clone(),
    )
        .into_response()
}

/// The current request's id, for handlers that pass it on (e.g. into an event's metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Always present behind the request layer; a fresh id keeps a bare router usable.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(new_request_id())))
    }
}

fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A caller's id is kept only when it is short and made of token characters: it ends up in
/// logs and response headers, where anything else invites log injection.
fn incoming_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(&X_REQUEST_ID)?.to_str().ok()?.trim();
    let sane = (1..=128).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/+=".contains(c));
    sane.then(|| value.to_string())
}

/// Probes are scraped every few seconds; logging each at info would drown the real traffic.
fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

async fn request_context(
    State(state): State<RuntimeState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = incoming_request_id(req.headers()).unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let path = req.uri().path().to_string();

    let span = tracing::info_span!(
        "http_request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        method = %method,
        route = %route,
        request_id = %request_id,
        status = Empty,
        latency_ms = Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(req.headers()))
    });
    if parent.span().span_context().is_valid() {
        // Joining the caller's trace is best effort: without the OTel layer the span stays a root.
        let _ = span.set_parent(parent);
    }

    let response = next.run(req).instrument(span.clone()).await;
    let mut response = finish_error(response, &request_id, &path)
        .instrument(span.clone())
        .await;

    let status = response.status();
    let elapsed = started.elapsed();
    span.record("status", status.as_u16());
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let service = state.inner.service.to_string();
    let labels = [
        ("service", service),
        ("method", method.as_str().to_string()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    ::metrics::counter!(crate::metrics::HTTP_REQUESTS_TOTAL, &labels).increment(1);
    // Latency without the status label: the per-status split is in the counter, and leaving it
    // out divides the histogram's series count by the number of statuses.
    ::metrics::histogram!(crate::metrics::HTTP_REQUEST_SECONDS, &labels[..3])
        .record(elapsed.as_secs_f64());

    let _entered = span.enter();
    if status.is_server_error() {
        tracing::warn!("request failed");
    } else if is_probe(&route) {
        tracing::debug!("request completed");
    } else {
        tracing::info!("request completed");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Every 4xx/5xx leaves as a problem carrying the request id.
async fn finish_error(response: Response, request_id: &str, path: &str) -> Response {
    let status = response.status();
    if let Some(problem) = response.extensions().get::<Problem>().cloned() {
        let (parts, _) = response.into_parts();
        return render_problem(parts, problem, request_id, path);
    }
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/") && ct.contains("json"));
    if is_json {
        // A handler chose a JSON error body on purpose; rewriting it would lose information.
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let problem = if status.is_server_error() {
        if let Some(text) = &text {
            tracing::error!(status = status.as_u16(), error = %text, "error response rewritten as a problem");
        }
        Problem::new(status).with_detail(INTERNAL_DETAIL)
    } else {
        match text {
            Some(text) => Problem::new(status).with_detail(text),
            None => Problem::new(status),
        }
    };
    render_problem(parts, problem, request_id, path)
}

fn render_problem(
    mut parts: http::response::Parts,
    mut problem: Problem,
    request_id: &str,
    path: &str,
) -> Response {
    if problem.instance.is_none() {
        problem.instance = Some(path.to_string());
    }
    problem
        .extensions
        .entry("request_id")
        .or_insert_with(|| request_id.into());
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    // The old body's length no longer applies; the new body carries its own.
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = Body::from(problem.to_json());
    parts.extensions.insert(problem);
    Response::from_parts(parts, body)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    Problem::internal(format!("handler panicked: {}", panic_message(&*panic))).into_response()
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// W3C trace context from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    /// Sane caller ids are kept; empty, overlong or injection-prone ones are replaced.
    #[test]
    fn request_id_sanitizing() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y"));
        assert_eq!(incoming_request_id(&h).as_deref(), Some("abc-123_x.y"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("a b\"c"));
        assert_eq!(incoming_request_id(&h), None);
        h.insert(
            &X_REQUEST_ID,
            HeaderValue::from_str(&"x".repeat(129)).unwrap(),
        );
        assert_eq!(incoming_request_id(&h), None);
        h.insert(&X_REQUEST_ID, HeaderValue::from_static(""));
        assert_eq!(incoming_request_id(&h), None);
    }

    /// A plain-text 4xx becomes a problem with the text as detail; a 5xx text is not leaked.
    #[tokio::test]
    async fn plain_errors_become_problems() {
        let client = finish_error(
            (StatusCode::BAD_REQUEST, "missing field `x`").into_response(),
            "r1",
            "/p",
        )
        .await;
        assert_eq!(client.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = axum::body::to_bytes(client.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["detail"], "missing field `x`");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["instance"], "/p");

        let server = finish_error(
            (StatusCode::BAD_GATEWAY, "upstream db-7.internal refused").into_response(),
            "r2",
            "/p",
        )
        .await;
        let body = axum::body::to_bytes(server.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("db-7"), "{text}");
        assert!(text.contains("\"status\":502"), "{text}");
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// A request carrying a W3C `traceparent` is logged (JSON line) in the caller's trace, with
    /// the caller's request id and the matched route in the span fields.
    #[tokio::test]
    async fn request_log_joins_the_callers_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tower::ServiceExt as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                    .event_format(crate::telemetry::JsonLines {
                        service: "svc".into(),
                    })
                    .with_writer(buffer.clone()),
            );
        let _default = tracing::subscriber::set_default(subscriber);

        let routes = Router::new().route("/v1/things/{id}", get(|| async { "ok" }));
        let app = app_router(RuntimeState::new("svc", crate::metrics::install()), routes);
        let request = Request::builder()
            .uri("/v1/things/7")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("x-request-id", "req-trace-1")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|v: &serde_json::Value| v["message"] == "request completed")
            .unwrap_or_else(|| panic!("no request log in {out}"));
        assert_eq!(
            line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{line}"
        );
        assert_ne!(
            line["span_id"], "00f067aa0ba902b7",
            "the server span is a child, not the caller's span"
        );
        assert_eq!(line["span"]["request_id"], "req-trace-1");
        assert_eq!(line["span"]["route"], "/v1/things/{id}");
        assert_eq!(line["span"]["status"], 200);
        assert!(line["span"].get("otel.kind").is_none(), "{line}");
    }

    /// Successful and JSON error responses pass through untouched.
    #[tokio::test]
    async fn other_responses_pass_through() {
        let ok = finish_error((StatusCode::OK, "fine").into_response(), "r", "/").await;
        assert_eq!(
            axum::body::to_bytes(ok.into_body(), 100).await.unwrap(),
            "fine"
        );
        let json = finish_error(
            (
                StatusCode::CONFLICT,
                axum::Json(serde_json::json!({"k": 1})),
            )
                .into_response(),
            "r",
            "/",
        )
        .await;
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
    }
}
