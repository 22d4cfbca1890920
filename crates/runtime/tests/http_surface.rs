//! The HTTP surface every service gets, exercised over TCP through `run_on` with a real
//! embedded store, a real producer on librdkafka's mock cluster and (where it matters) the real
//! Redis: runtime endpoints, problem+json for every error path, request ids, metrics labels,
//! the merged OpenAPI document, and readiness verdicts.

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use nivesh_runtime::problem::{ApiJson, ApiPath, Problem};
use nivesh_runtime::service::{ServiceApp, connect};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use common::{Cluster, Running, client, mock_cluster, settings, start};

#[derive(Debug, Deserialize, ToSchema)]
struct NewItem {
    name: String,
    qty: u32,
}

#[derive(Debug, Serialize, ToSchema)]
struct Item {
    id: u64,
    name: String,
    qty: u32,
}

/// Create an item.
#[utoipa::path(post, path = "/v1/items", request_body = NewItem, responses((status = 201, body = Item)))]
async fn create_item(
    ApiJson(new): ApiJson<NewItem>,
) -> Result<(StatusCode, ApiJson<Item>), Problem> {
    if new.qty == 0 {
        return Err(Problem::unprocessable("qty must be positive")
            .with_field_errors([("qty", "must be positive")]));
    }
    Ok((
        StatusCode::CREATED,
        ApiJson(Item {
            id: 1,
            name: new.name,
            qty: new.qty,
        }),
    ))
}

/// Read an item.
#[utoipa::path(get, path = "/v1/items/{id}", params(("id" = u64, Path)), responses((status = 200, body = Item)))]
async fn get_item(ApiPath(id): ApiPath<u64>) -> Result<ApiJson<Item>, Problem> {
    if id == 404 {
        return Err(Problem::not_found(format!("no item {id}")));
    }
    Ok(ApiJson(Item {
        id,
        name: "x".into(),
        qty: 1,
    }))
}

/// Uses axum's own `Json`, whose rejection is text/plain: the runtime must still answer with a problem.
async fn raw_json(axum::Json(v): axum::Json<Value>) -> axum::Json<Value> {
    axum::Json(v)
}

async fn boom() -> &'static str {
    panic!("secret internals: db-7.internal refused")
}

#[derive(OpenApi)]
#[openapi(paths(create_item, get_item), components(schemas(NewItem, Item)))]
struct TestDoc;

fn test_routes() -> Router {
    Router::new()
        .route("/v1/items", post(create_item))
        .route("/v1/items/{id}", get(get_item))
        .route("/v1/raw", post(raw_json))
        .route("/v1/boom", get(boom))
}

struct Fixture {
    _cluster: Cluster,
    _dir: tempfile::TempDir,
    svc: Running,
}

async fn fixture_with(vars: &[(&str, &str)], app: ServiceApp) -> Fixture {
    let cluster = mock_cluster();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&cluster.bootstrap_servers(), dir.path(), vars);
    let ctx = connect(&s).await.expect("connect");
    let svc = start(ctx, app).await;
    Fixture {
        _cluster: cluster,
        _dir: dir,
        svc,
    }
}

async fn fixture() -> Fixture {
    fixture_with(
        &[],
        ServiceApp::new()
            .routes(test_routes())
            .openapi(TestDoc::openapi()),
    )
    .await
}

fn is_problem(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        == Some("application/problem+json")
}

/// `/healthz` answers 200 `{"status":"alive"}`.
#[tokio::test]
async fn healthz_is_alive() {
    let f = fixture().await;
    let resp = client().get(f.svc.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "alive");
    f.svc.stop().await.unwrap();
}

/// With broker, store and cache reachable, `/readyz` is 200 `ready` with every check up.
#[tokio::test]
async fn readyz_is_ready_with_reachable_dependencies() {
    let f = fixture().await;
    let resp = client().get(f.svc.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    for check in ["broker", "store", "cache"] {
        assert_eq!(body["checks"][check]["status"], "up", "{check}: {body}");
    }
    f.svc.stop().await.unwrap();
}

/// Redis going away after start-up degrades readiness (200 `degraded`, cache down with a
/// reason) instead of taking the instance out of rotation.
#[tokio::test]
async fn readyz_is_degraded_when_redis_goes_away() {
    let proxy = common::RedisProxy::start().await;
    let prefix = nivesh_testkit::unique("rt-ready") + ":";
    let f = fixture_with(
        &[
            ("NIVESH__REDIS__URL", &proxy.url),
            ("NIVESH__REDIS__KEY_PREFIX", &prefix),
        ],
        ServiceApp::new(),
    )
    .await;
    let before: Value = client()
        .get(f.svc.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["status"], "ready", "{before}");

    proxy.cut().await;
    let resp = client().get(f.svc.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let after: Value = resp.json().await.unwrap();
    assert_eq!(after["status"], "degraded", "{after}");
    assert_eq!(after["checks"]["cache"]["status"], "down");
    assert_eq!(after["checks"]["cache"]["critical"], false);
    assert!(
        after["checks"]["cache"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("redis")),
        "{after}"
    );
    assert_eq!(after["checks"]["broker"]["status"], "up");
    assert_eq!(after["checks"]["store"]["status"], "up");
    f.svc.stop().await.unwrap();
}

/// An unreachable broker (critical) makes `/readyz` 503 `not_ready`, naming the broker.
#[tokio::test]
async fn readyz_is_not_ready_when_the_broker_is_unreachable() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        &closed.to_string(),
        dir.path(),
        &[("NIVESH__HTTP__READINESS_TIMEOUT_MS", "1500")],
    );
    let ctx = connect(&s)
        .await
        .expect("connect does not wait for the broker");
    let svc = start(ctx, ServiceApp::new()).await;
    let resp = client().get(svc.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["broker"]["status"], "down");
    assert_eq!(body["checks"]["broker"]["critical"], true);
    assert_eq!(body["checks"]["store"]["status"], "up");
    svc.stop().await.unwrap();
}

/// Malformed JSON → 400 problem+json with a detail and the request id.
#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let f = fixture().await;
    let resp = client()
        .post(f.svc.url("/v1/items"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(is_problem(&resp));
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 400);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(body["request_id"], request_id.as_str());
    assert_eq!(body["instance"], "/v1/items");
    f.svc.stop().await.unwrap();
}

/// Well-formed JSON of the wrong shape → 422 problem naming the field.
#[tokio::test]
async fn wrong_shape_is_a_422_problem() {
    let f = fixture().await;
    let resp = client()
        .post(f.svc.url("/v1/items"))
        .json(&serde_json::json!({"name": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(is_problem(&resp));
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("qty")),
        "{body}"
    );
    f.svc.stop().await.unwrap();
}

/// A handler's own validation problem keeps its field errors and gains the request id.
#[tokio::test]
async fn handler_problem_keeps_field_errors() {
    let f = fixture().await;
    let resp = client()
        .post(f.svc.url("/v1/items"))
        .header("x-request-id", "req-field-1")
        .json(&serde_json::json!({"name": "a", "qty": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(is_problem(&resp));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "qty");
    assert_eq!(body["request_id"], "req-field-1");
    f.svc.stop().await.unwrap();
}

/// A valid request passes through the layers unchanged (201 with the handler's JSON).
#[tokio::test]
async fn valid_request_succeeds() {
    let f = fixture().await;
    let resp = client()
        .post(f.svc.url("/v1/items"))
        .json(&serde_json::json!({"name": "a", "qty": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["qty"], 2);
    f.svc.stop().await.unwrap();
}

/// axum's own `Json` rejection (text/plain) is rewritten into a problem by the runtime.
#[tokio::test]
async fn plain_axum_rejection_becomes_a_problem() {
    let f = fixture().await;
    let resp = client()
        .post(f.svc.url("/v1/raw"))
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(is_problem(&resp));
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert!(body["request_id"].is_string());
    f.svc.stop().await.unwrap();
}

/// An unknown path is a 404 problem whose instance is the path.
#[tokio::test]
async fn unknown_path_is_a_404_problem() {
    let f = fixture().await;
    let resp = client().get(f.svc.url("/nope/here")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(is_problem(&resp));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["instance"], "/nope/here");
    assert!(body["request_id"].is_string());
    f.svc.stop().await.unwrap();
}

/// A known path with the wrong method is a 405 problem that keeps the `Allow` header.
#[tokio::test]
async fn wrong_method_is_a_405_problem() {
    let f = fixture().await;
    let resp = client()
        .delete(f.svc.url("/v1/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(is_problem(&resp));
    assert!(
        resp.headers()
            .get("allow")
            .is_some_and(|a| a.to_str().unwrap().contains("POST"))
    );
    f.svc.stop().await.unwrap();
}

/// A caller's `x-request-id` is echoed on success and on problems (header and body); without
/// one the runtime generates one and still echoes it.
#[tokio::test]
async fn request_id_is_echoed() {
    let f = fixture().await;
    let ok = client()
        .get(f.svc.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-request-id"], "abc-123");

    let missing = client()
        .get(f.svc.url("/v1/items/404"))
        .header("x-request-id", "abc-404")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-request-id"], "abc-404");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["request_id"], "abc-404");
    assert_eq!(body["detail"], "no item 404");

    let generated = client().get(f.svc.url("/nope")).send().await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let body: Value = generated.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str());
    f.svc.stop().await.unwrap();
}

/// A panicking handler is a 500 problem that does not leak the panic message.
#[tokio::test]
async fn panic_is_a_500_problem_without_internals() {
    let f = fixture().await;
    let resp = client().get(f.svc.url("/v1/boom")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert!(is_problem(&resp));
    let text = resp.text().await.unwrap();
    assert!(!text.contains("db-7"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["request_id"].is_string());
    // The service keeps serving after the panic.
    assert_eq!(
        client()
            .get(f.svc.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    f.svc.stop().await.unwrap();
}

/// A body over `http.body_limit_bytes` is a 413 problem.
#[tokio::test]
async fn oversized_body_is_a_413_problem() {
    let f = fixture_with(
        &[("NIVESH__HTTP__BODY_LIMIT_BYTES", "1024")],
        ServiceApp::new().routes(test_routes()),
    )
    .await;
    let big = serde_json::json!({"name": "x".repeat(4096), "qty": 1});
    let resp = client()
        .post(f.svc.url("/v1/items"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(is_problem(&resp));
    let small = client()
        .post(f.svc.url("/v1/items"))
        .json(&serde_json::json!({"name": "x", "qty": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 201);
    f.svc.stop().await.unwrap();
}

/// `/metrics` counts requests labelled by the matched route (not the raw path) and service.
#[tokio::test]
async fn metrics_label_requests_by_matched_route() {
    let f = fixture().await;
    let resp = client()
        .get(f.svc.url("/v1/items/4242"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = client().get(f.svc.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("nivesh_http_requests_total{") && l.contains("route=\"/v1/items/{id}\"")
        })
        .unwrap_or_else(|| panic!("no request counter for the matched route in:\n{text}"));
    assert!(line.contains("service=\"runtime-test\""), "{line}");
    assert!(line.contains("method=\"GET\""), "{line}");
    assert!(line.contains("status=\"200\""), "{line}");
    assert!(
        !text.contains("/v1/items/4242"),
        "raw path leaked into labels"
    );
    assert!(
        text.contains("nivesh_http_request_seconds_bucket{"),
        "latency histogram missing"
    );
    f.svc.stop().await.unwrap();
}

/// `/openapi.json` is valid JSON holding the service's paths and the runtime's.
#[tokio::test]
async fn openapi_merges_service_and_runtime_paths() {
    let f = fixture().await;
    let resp = client()
        .get(f.svc.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/items",
        "/v1/items/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    f.svc.stop().await.unwrap();
}
