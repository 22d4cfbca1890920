//! The raw per-order baseline: the irreducible work of accepting one order on this machine, with
//! nothing else of the platform in the way. One request through axum, one idempotency point
//! read, one durable write (idempotency record + order + outbox row in one batch of the
//! embedded store, the same store the services use locally) and one Kafka produce acknowledged
//! by a broker (an in-process mock cluster, so the fleet's topics stay untouched). Runs in the
//! bench process while the fleet is idle, with the same clients and request count.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use nivesh_bus::devbroker::DevBroker;
use nivesh_bus::{BusProducer, KafkaSettings, OutgoingMessage};
use nivesh_store::{Batch, DocumentStore, EmbeddedStore, OutboxMessage, WriteOp};
use serde_json::{Value, json};

use crate::load::{LoadResult, Outcome, load};
use crate::stats::lat_json;

/// What the baseline does, for results files.
pub const WHAT: &str = "one POST through axum, one idempotency point read, one durable write (idempotency record + order + outbox row, embedded store), one Kafka produce acknowledged by an in-process mock broker";

const TOPIC: &str = "raw.orders";
const CONTAINER: &str = "raw_orders";

#[derive(Clone)]
struct Raw {
    store: Arc<dyn DocumentStore>,
    producer: BusProducer,
}

pub async fn baseline(n: usize, clients: usize) -> anyhow::Result<LoadResult> {
    let broker = DevBroker::start(1)?;
    broker.create_topic(TOPIC, 24)?;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn DocumentStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("raw.sqlite"))?);
    let producer = BusProducer::new(&KafkaSettings::new(
        broker.bootstrap_servers(),
        "raw-baseline",
    ))?;
    let app = axum::Router::new()
        .route("/raw/orders", post(place))
        .with_state(Raw { store, producer });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/raw/orders", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let result = load(n, clients, move |i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body = json!({
                "investorId": format!("INV{:04}", i % 19 + 1),
                "schemeCode": "118834",
                "amount": "10000.00",
            });
            let r = http
                .post(&url)
                .header("Idempotency-Key", format!("raw-{i}"))
                .json(&body)
                .send()
                .await?;
            let status = r.status().as_u16();
            let ok = status == 201;
            r.bytes().await?;
            Ok(if ok {
                Outcome::Ok
            } else {
                Outcome::Status(status)
            })
        }
    })
    .await;
    server.abort();
    Ok(result)
}

async fn place(State(raw): State<Raw>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let Some(key) = headers.get("Idempotency-Key").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(order) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    let Some(investor) = order["investorId"].as_str().map(str::to_owned) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    let investor = investor.as_str();
    let idem = format!("idem:{key}");
    match raw.store.get(CONTAINER, investor, &idem).await {
        Ok(Some(_)) => return StatusCode::OK,
        Ok(None) => {}
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE,
    }
    let order_id = format!("ord-{key}");
    let batch = Batch::new(CONTAINER, investor)
        .op(WriteOp::Create {
            id: idem,
            body: json!({ "orderId": order_id }),
            ttl: Some(Duration::from_secs(86_400)),
        })
        .op(WriteOp::Create {
            id: order_id.clone(),
            body: order,
            ttl: None,
        })
        .emit(OutboxMessage {
            message_id: order_id,
            topic: TOPIC.into(),
            key: investor.to_string(),
            payload: body.to_vec(),
            headers: Vec::new(),
        });
    if raw.store.commit(batch).await.is_err() {
        return StatusCode::CONFLICT;
    }
    let sent = raw
        .producer
        .send(OutgoingMessage {
            topic: TOPIC.into(),
            key: investor.to_string(),
            payload: body.to_vec(),
            headers: Vec::new(),
        })
        .await;
    match sent {
        Ok(_) => StatusCode::CREATED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The baseline's figures for a results file.
pub fn to_json(r: &LoadResult, requests: usize) -> Value {
    json!({
        "what": WHAT,
        "requests": requests, "ok": r.ok, "errors": r.errors,
        "wall_s": r.wall.as_secs_f64(), "orders_per_s": r.rate(), "latency": lat_json(&r.latencies),
    })
}
