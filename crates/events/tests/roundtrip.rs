//! Single-object framing end to end, schema evolution (v1 bytes -> v2 struct) and the codec's
//! error paths.

mod common;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use common::*;
use nivesh_events::{
    AvroCodec, Error, Event, EventMeta, HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_EVENT_TYPE,
    IST, NavPublished, NavRejected, NavValidated, RawNavReceived, SchemaCatalog,
};

async fn round_trip<E: Event + PartialEq + std::fmt::Debug>(event: &E) {
    let codec = AvroCodec::single_object();
    let bytes = codec.encode(event).await.unwrap();
    let schema = SchemaCatalog::embedded()
        .version(E::FULL_NAME, E::VERSION)
        .unwrap();
    assert_eq!(
        &bytes[..2],
        &[0xC3, 0x01],
        "{}: single-object marker",
        E::FULL_NAME
    );
    assert_eq!(
        &bytes[2..10],
        &schema.fingerprint.to_le_bytes(),
        "{}: fingerprint",
        E::FULL_NAME
    );
    let back: E = codec.decode(&bytes).await.unwrap();
    assert_eq!(&back, event, "{}", E::FULL_NAME);
    assert_eq!(AvroCodec::peek_type(&bytes).as_deref(), Some(E::FULL_NAME));
}

/// Every event, with optional fields both set and null, survives encode -> decode unchanged.
#[tokio::test]
async fn every_event_round_trips_single_object() {
    round_trip(&raw_full()).await;
    round_trip(&raw_minimal()).await;
    round_trip(&validated()).await;
    round_trip(&rejected()).await;
    round_trip(&published()).await;
}

/// Decimals keep the exact scale the producer had (trailing zeros are digits a NAV file gave).
#[tokio::test]
async fn decimals_keep_their_scale() {
    let codec = AvroCodec::single_object();
    let raw = raw_full();
    let back: RawNavReceived = codec
        .decode(&codec.encode(&raw).await.unwrap())
        .await
        .unwrap();
    assert_eq!(back.nav.to_string(), "105.1230");
    assert_eq!(back.sale_price.unwrap().to_string(), "105.12300000");
    let back: NavPublished = codec
        .decode(&codec.encode(&published()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(back.nav.to_string(), "92233720368.54775807");
}

/// The direct-deserialize fast path and the generic Value path agree on the same bytes.
#[tokio::test]
async fn fast_path_matches_generic_value_path() {
    let codec = AvroCodec::single_object();
    let bytes = codec.encode(&validated()).await.unwrap();
    let fast: NavValidated = codec.decode(&bytes).await.unwrap();
    let (name, version, value) = codec.decode_value(&bytes).await.unwrap();
    assert_eq!((name.as_str(), version), (NavValidated::FULL_NAME, 1));
    let generic: NavValidated = apache_avro::from_value(&value).unwrap();
    assert_eq!(fast, generic);
}

/// Bytes written with RawNavReceived v1 (no plan/option) decode into the v2 struct with both None.
#[tokio::test]
async fn v1_raw_nav_bytes_decode_into_v2_struct() {
    let catalog = SchemaCatalog::embedded();
    let v1 = catalog.version(RawNavReceived::FULL_NAME, 1).unwrap();
    let mut expected = raw_full();
    expected.meta.schema_version = 1;
    expected.plan = None;
    expected.option = None;

    // Build the v1 datum independently of the codec's encoder: serde -> Value, drop the v2-only
    // fields, resolve against the v1 schema, encode with apache-avro's generic writer.
    let Value::Record(fields) = apache_avro::to_value(&expected).unwrap() else {
        panic!("record")
    };
    let v1_fields: Vec<_> = fields
        .into_iter()
        .filter(|(k, _)| k != "plan" && k != "option")
        .collect();
    let v1_value = Value::Record(v1_fields).resolve(&v1.schema).unwrap();
    let body = GenericDatumWriter::builder(&v1.schema)
        .build()
        .unwrap()
        .write_value_to_vec(v1_value)
        .unwrap();
    let mut bytes = vec![0xC3, 0x01];
    bytes.extend_from_slice(&v1.fingerprint.to_le_bytes());
    bytes.extend_from_slice(&body);

    let codec = AvroCodec::single_object();
    let decoded: RawNavReceived = codec.decode(&bytes).await.unwrap();
    assert_eq!(decoded, expected);
    assert_eq!(decoded.plan, None);
    assert_eq!(decoded.option, None);
    let (name, version, _) = codec.decode_value(&bytes).await.unwrap();
    assert_eq!((name.as_str(), version), (RawNavReceived::FULL_NAME, 1));
}

/// Each struct's VERSION is the newest schema version in the catalog (structs track latest).
#[test]
fn structs_declare_the_latest_schema_version() {
    fn check<E: Event>() {
        let latest = SchemaCatalog::embedded()
            .latest(E::FULL_NAME)
            .unwrap_or_else(|| panic!("{}", E::FULL_NAME));
        assert_eq!(E::VERSION, latest.version, "{}", E::FULL_NAME);
    }
    check::<RawNavReceived>();
    check::<NavValidated>();
    check::<NavRejected>();
    check::<NavPublished>();
}

/// A message of another event type is refused with both type names, not mis-decoded.
#[tokio::test]
async fn decoding_as_the_wrong_type_is_an_error() {
    let codec = AvroCodec::single_object();
    let bytes = codec.encode(&rejected()).await.unwrap();
    match codec.decode::<NavValidated>(&bytes).await {
        Err(Error::WrongEventType { expected, found }) => {
            assert_eq!(expected, NavValidated::FULL_NAME);
            assert_eq!(found, NavRejected::FULL_NAME);
        }
        other => panic!("expected WrongEventType, got {other:?}"),
    }
}

/// Corrupt, truncated, foreign and unknown-schema messages fail with a specific error.
#[tokio::test]
async fn malformed_messages_are_rejected() {
    let codec = AvroCodec::single_object();
    let good = codec.encode(&published()).await.unwrap();

    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        codec.decode::<NavPublished>(&trailing).await,
        Err(Error::TrailingBytes(1))
    ));

    assert!(
        codec
            .decode::<NavPublished>(&good[..good.len() - 3])
            .await
            .is_err()
    );
    assert!(matches!(
        codec.decode::<NavPublished>(&good[..6]).await,
        Err(Error::Truncated { .. })
    ));

    let mut unknown = good.clone();
    unknown[2..10].copy_from_slice(&0x0123_4567_89ab_cdef_u64.to_le_bytes());
    assert!(matches!(
        codec.decode::<NavPublished>(&unknown).await,
        Err(Error::UnknownFingerprint(0x0123_4567_89ab_cdef))
    ));
    assert_eq!(AvroCodec::peek_type(&unknown), None);

    assert!(matches!(
        codec.decode::<NavPublished>(b"{\"json\":1}").await,
        Err(Error::UnknownFraming(_))
    ));
    assert!(matches!(
        codec.decode::<NavPublished>(&[0, 0, 0, 0, 7, 1]).await,
        Err(Error::NoRegistry(7))
    ));
    assert_eq!(AvroCodec::peek_type(&[0, 0, 0, 0, 7, 1]), None);
}

/// A decimal whose digits do not fit the wire's i64 cannot be encoded (no silent rounding).
#[tokio::test]
async fn out_of_range_decimal_fails_to_encode() {
    let mut event = published();
    event.nav = dec("79228162514264337593543950335"); // rust_decimal::Decimal::MAX, 96-bit mantissa
    let err = AvroCodec::single_object().encode(&event).await.unwrap_err();
    assert!(err.to_string().contains("64 bits"), "{err}");
}

/// `EventMeta::new` stamps type, version, a v7 id and a microsecond-exact time, shown in IST.
#[tokio::test]
async fn event_meta_new_fills_the_envelope() {
    let meta = EventMeta::new::<NavRejected>("nav-calculator", Some("cause".into()));
    assert_eq!(meta.event_type, "nivesh.nav.NavRejected");
    assert_eq!(meta.schema_version, NavRejected::VERSION as i32);
    assert_eq!(meta.event_id.get_version_num(), 7);
    assert_eq!(meta.occurred_at.timestamp_subsec_nanos() % 1_000, 0);
    assert_eq!(meta.occurred_at_ist().offset(), &IST);
    assert_eq!(
        meta.occurred_at_ist().naive_local(),
        meta.occurred_at.naive_utc() + chrono::Duration::minutes(330)
    );
    let other = EventMeta::new::<NavRejected>("nav-calculator", None);
    assert_ne!(meta.event_id, other.event_id);

    // Fresh metas round-trip exactly through the codec.
    let mut event = rejected();
    event.meta = meta;
    let codec = AvroCodec::single_object();
    let back: NavRejected = codec
        .decode(&codec.encode(&event).await.unwrap())
        .await
        .unwrap();
    assert_eq!(back, event);
}

/// The header helper carries the type, the event id and the framing's content type.
#[test]
fn headers_describe_the_event() {
    let event = published();
    let headers = AvroCodec::single_object().headers(&event);
    let get = |k: &str| {
        headers
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(
        get(HEADER_EVENT_TYPE).as_deref(),
        Some("nivesh.nav.NavPublished")
    );
    assert_eq!(get(HEADER_EVENT_ID), Some(event.meta.event_id.to_string()));
    assert_eq!(
        get(HEADER_CONTENT_TYPE).as_deref(),
        Some("application/avro; framing=single-object")
    );
}

/// The codec, registry client, errors and the codec's futures can cross threads (services call
/// them from multi-threaded async handlers). Fails to compile otherwise.
#[test]
fn codec_types_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<AvroCodec>();
    send_sync::<nivesh_events::SchemaRegistryClient>();
    send_sync::<Error>();
    send_sync::<SchemaCatalog>();
    let codec = AvroCodec::confluent(nivesh_events::SchemaRegistryClient::new(
        "http://127.0.0.1:1",
    ));
    let event = published();
    send(&codec.encode(&event));
    send(&codec.decode::<NavPublished>(&[]));
    send(&codec.decode_value(&[]));
    let registry = nivesh_events::SchemaRegistryClient::new("http://127.0.0.1:1");
    send(&registry.register("s", "{}"));
    send(&registry.schema_by_id(1));
}
