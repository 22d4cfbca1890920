//! Confluent wire format against a Schema Registry stubbed at the HTTP level (axum on
//! 127.0.0.1:0 implementing the two endpoints the client uses).

mod common;

use std::sync::{Arc, Mutex};

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use nivesh_events::{
    AvroCodec, Error, Event, NavPublished, NavRejected, NavValidated, RawNavReceived,
    SchemaCatalog, SchemaRegistryClient,
};
use serde_json::{Value as JsonValue, json};

/// What the stub registry has seen: registered (subject, schema) pairs (id = 100 + index, so an
/// id is never confused with an index) and request counts.
#[derive(Default)]
struct Registry {
    schemas: Vec<(String, String)>,
    posts: usize,
    gets: usize,
    content_types: Vec<String>,
}

type Shared = Arc<Mutex<Registry>>;

async fn register(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    headers: axum::http::HeaderMap,
    Json(body): Json<JsonValue>,
) -> (StatusCode, Json<JsonValue>) {
    let mut reg = reg.lock().unwrap();
    reg.posts += 1;
    if let Some(ct) = headers.get("content-type") {
        reg.content_types.push(ct.to_str().unwrap().to_string());
    }
    let Some(schema) = body
        .get("schema")
        .and_then(JsonValue::as_str)
        .map(str::to_string)
    else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error_code": 42201, "message": "Invalid schema"})),
        );
    };
    let index = match reg
        .schemas
        .iter()
        .position(|(s, sc)| *s == subject && *sc == schema)
    {
        Some(i) => i,
        None => {
            reg.schemas.push((subject, schema));
            reg.schemas.len() - 1
        }
    };
    (StatusCode::OK, Json(json!({ "id": 100 + index })))
}

async fn schema_by_id(
    State(reg): State<Shared>,
    Path(id): Path<usize>,
) -> (StatusCode, Json<JsonValue>) {
    let mut reg = reg.lock().unwrap();
    reg.gets += 1;
    match id.checked_sub(100).and_then(|i| reg.schemas.get(i)) {
        Some((_, schema)) => (StatusCode::OK, Json(json!({ "schema": schema }))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error_code": 40403, "message": format!("Schema {id} not found")})),
        ),
    }
}

async fn stub_registry() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

async fn confluent_round_trip<E: Event + PartialEq + std::fmt::Debug>(
    producer: &AvroCodec,
    consumer: &AvroCodec,
    event: &E,
) -> u32 {
    let bytes = producer.encode(event).await.unwrap();
    assert_eq!(bytes[0], 0x00, "{}: magic byte", E::FULL_NAME);
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let back: E = consumer.decode(&bytes).await.unwrap();
    assert_eq!(&back, event, "{}", E::FULL_NAME);
    id
}

/// Every event round-trips in Confluent framing; subjects are the record full names, each
/// schema is registered once and a fresh consumer fetches each id once.
#[tokio::test]
async fn every_event_round_trips_confluent() {
    let (url, state) = stub_registry().await;
    let producer = AvroCodec::confluent(SchemaRegistryClient::new(&url));
    let consumer = AvroCodec::confluent(SchemaRegistryClient::new(&format!("{url}/")));

    let mut ids = vec![
        confluent_round_trip(&producer, &consumer, &raw_full()).await,
        confluent_round_trip(&producer, &consumer, &raw_minimal()).await,
        confluent_round_trip(&producer, &consumer, &validated()).await,
        confluent_round_trip(&producer, &consumer, &rejected()).await,
        confluent_round_trip(&producer, &consumer, &published()).await,
    ];
    assert_eq!(ids[0], ids[1], "same schema, same id");
    ids.dedup();
    assert_eq!(ids, vec![100, 101, 102, 103]);

    let reg = state.lock().unwrap();
    let subjects: Vec<&str> = reg.schemas.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            RawNavReceived::FULL_NAME,
            NavValidated::FULL_NAME,
            NavRejected::FULL_NAME,
            NavPublished::FULL_NAME
        ]
    );
    // The registered text is the full schema file (defaults included), not the canonical form.
    assert_eq!(
        reg.schemas[0].1,
        SchemaCatalog::embedded()
            .latest(RawNavReceived::FULL_NAME)
            .unwrap()
            .json
    );
    assert_eq!(reg.posts, 4, "one registration per event type");
    assert_eq!(
        reg.gets, 4,
        "one fetch per id for the consumer, none for the producer"
    );
    assert!(
        reg.content_types
            .iter()
            .all(|ct| ct == "application/vnd.schemaregistry.v1+json")
    );
}

/// During a migration a Confluent codec also reads single-object messages.
#[tokio::test]
async fn confluent_codec_reads_single_object_messages() {
    let (url, state) = stub_registry().await;
    let bytes = AvroCodec::single_object()
        .encode(&validated())
        .await
        .unwrap();
    let codec = AvroCodec::confluent(SchemaRegistryClient::new(&url));
    assert_eq!(
        codec.decode::<NavValidated>(&bytes).await.unwrap(),
        validated()
    );
    assert_eq!(state.lock().unwrap().gets, 0);
}

/// A single-object codec refuses Confluent bytes with a clear error instead of guessing.
#[tokio::test]
async fn single_object_codec_needs_a_registry_for_confluent_bytes() {
    let (url, _state) = stub_registry().await;
    let bytes = AvroCodec::confluent(SchemaRegistryClient::new(&url))
        .encode(&rejected())
        .await
        .unwrap();
    let err = AvroCodec::single_object()
        .decode::<NavRejected>(&bytes)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoRegistry(100)), "{err:?}");
}

fn v1_body(event: &RawNavReceived) -> Vec<u8> {
    let v1 = SchemaCatalog::embedded()
        .version(RawNavReceived::FULL_NAME, 1)
        .unwrap();
    let Value::Record(fields) = apache_avro::to_value(event).unwrap() else {
        panic!("record")
    };
    let fields: Vec<_> = fields
        .into_iter()
        .filter(|(k, _)| k != "plan" && k != "option")
        .collect();
    let value = Value::Record(fields).resolve(&v1.schema).unwrap();
    GenericDatumWriter::builder(&v1.schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap()
}

/// A v1 RawNavReceived registered by an old producer decodes into the v2 struct via the registry.
#[tokio::test]
async fn registry_v1_writer_resolves_into_v2_struct() {
    let (url, _state) = stub_registry().await;
    let registry = SchemaRegistryClient::new(&url);
    let v1 = SchemaCatalog::embedded()
        .version(RawNavReceived::FULL_NAME, 1)
        .unwrap();
    let id = registry
        .register(RawNavReceived::FULL_NAME, &v1.json)
        .await
        .unwrap();

    let mut expected = raw_full();
    expected.meta.schema_version = 1;
    expected.plan = None;
    expected.option = None;
    let mut bytes = vec![0x00];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&v1_body(&expected));

    let consumer = AvroCodec::confluent(SchemaRegistryClient::new(&url));
    assert_eq!(
        consumer.decode::<RawNavReceived>(&bytes).await.unwrap(),
        expected
    );
    let (name, version, _) = consumer.decode_value(&bytes).await.unwrap();
    assert_eq!((name.as_str(), version), (RawNavReceived::FULL_NAME, 1));
}

/// A writer schema only the registry knows (a newer producer added a field) still decodes: the
/// reader ignores the unknown field.
#[tokio::test]
async fn registry_only_writer_schema_decodes_by_resolution() {
    let (url, _state) = stub_registry().await;
    let registry = SchemaRegistryClient::new(&url);
    let latest = SchemaCatalog::embedded()
        .latest(NavPublished::FULL_NAME)
        .unwrap();
    let mut future: JsonValue = serde_json::from_str(&latest.json).unwrap();
    future["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "channel", "type": "string", "default": "web"}));
    let future_json = future.to_string();
    let id = registry
        .register(NavPublished::FULL_NAME, &future_json)
        .await
        .unwrap();

    let future_schema = apache_avro::Schema::parse_str(&future_json).unwrap();
    let Value::Record(mut fields) = apache_avro::to_value(published()).unwrap() else {
        panic!("record")
    };
    fields.push(("channel".into(), Value::String("app".into())));
    let value = Value::Record(fields).resolve(&future_schema).unwrap();
    let body = GenericDatumWriter::builder(&future_schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let mut bytes = vec![0x00];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&body);

    let consumer = AvroCodec::confluent(SchemaRegistryClient::new(&url));
    assert_eq!(
        consumer.decode::<NavPublished>(&bytes).await.unwrap(),
        published()
    );
    // Unknown to the catalog: the version comes from the stamped meta.schema_version.
    let (name, version, _) = consumer.decode_value(&bytes).await.unwrap();
    assert_eq!((name.as_str(), version), (NavPublished::FULL_NAME, 2));
}

/// The client returns the parsed schema for an id, and a 404 from the registry is an error with
/// its status and body.
#[tokio::test]
async fn schema_by_id_and_registry_errors() {
    let (url, state) = stub_registry().await;
    let producer = SchemaRegistryClient::new(&url);
    let schema = SchemaCatalog::embedded()
        .latest(NavRejected::FULL_NAME)
        .unwrap();
    let id = producer
        .register(NavRejected::FULL_NAME, &schema.json)
        .await
        .unwrap();

    let fresh = SchemaRegistryClient::new(&url);
    assert_eq!(fresh.schema_by_id(id).await.unwrap(), schema.schema);
    assert_eq!(fresh.schema_by_id(id).await.unwrap(), schema.schema);
    assert_eq!(
        state.lock().unwrap().gets,
        1,
        "second lookup is served from the cache"
    );

    match fresh.schema_by_id(999).await {
        Err(Error::Registry { status, body, .. }) => {
            assert_eq!(status, 404);
            assert!(body.contains("40403"), "{body}");
        }
        other => panic!("expected a registry error, got {other:?}"),
    }
    let mut bytes = vec![0x00];
    bytes.extend_from_slice(&999u32.to_be_bytes());
    bytes.push(0);
    assert!(
        AvroCodec::confluent(fresh)
            .decode::<NavRejected>(&bytes)
            .await
            .is_err()
    );
}

/// An unreachable registry surfaces as an HTTP error, not a hang or a panic.
#[tokio::test]
async fn unreachable_registry_is_an_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let codec = AvroCodec::confluent(SchemaRegistryClient::new(&url));
    assert!(matches!(
        codec.encode(&published()).await,
        Err(Error::Http { .. })
    ));
}
