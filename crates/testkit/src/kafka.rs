//! Reading and writing topics of a real Kafka-protocol broker from tests.
//!
//! Every reader here uses a throw-away group id (librdkafka's `assign` needs one) and never
//! commits, so it sees the topic as it is without disturbing any consumer group. Records come
//! back as [`InboundMessage`] (the bus's own type: `header_str`, `key_str`), `attempt` 1.
//!
//! - [`read_to_end`] / [`read_all`]: everything on a topic up to its end *as of the call*.
//! - [`read_until`] / [`events_until`]: a topic from the beginning until a predicate holds.
//! - [`decode_all`]: the Avro events of one type in a batch of records.
//! - [`produce_raw`] / [`produce`]: one record (raw bytes, or an encoded event) onto a topic.
//!
//! The dev broker (`nivesh_bus::devbroker::DevBroker::start`) already creates every catalog
//! topic, so there is no topic set-up here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nivesh_bus::{BusProducer, OutgoingMessage};
use nivesh_events::{AvroCodec, Event};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use nivesh_bus::InboundMessage;

/// How long one metadata or watermark request may take.
const META_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll waits before the deadline and predicate are checked again.
const POLL: Duration = Duration::from_millis(200);

/// Every record on `topic` (all partitions), from each partition's low watermark up to its high
/// watermark as of the call. Blocking; panics if `topic` has no partitions or the records are not
/// all read within `timeout`.
pub fn read_to_end(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<InboundMessage> {
    let c = consumer(bootstrap);
    let partitions = partitions(&c, topic);
    let mut want: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, META_TIMEOUT)
            .expect("watermarks");
        if hi > lo {
            tpl.add_partition_offset(topic, p, Offset::Offset(lo))
                .expect("partition offset");
            want.insert(p, hi);
        }
    }
    let mut out = Vec::new();
    if want.is_empty() {
        return out;
    }
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    while !want.is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic} to its end; partitions left: {want:?}"
        );
        let Some(res) = c.poll(POLL) else {
            continue;
        };
        let m = res.expect("read");
        if want
            .get(&m.partition())
            .is_some_and(|hi| m.offset() + 1 >= *hi)
        {
            want.remove(&m.partition());
        }
        out.push(inbound(&m));
    }
    out
}

/// [`read_to_end`] on a blocking thread, for async tests.
pub async fn read_all(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<InboundMessage> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_to_end(&bootstrap, &topic, timeout))
        .await
        .expect("topic reader task")
}

/// The records on `topic` (all partitions) from the beginning, read until `until` holds for
/// those read so far or `timeout` passes; returns what was read either way (the caller asserts).
/// Blocking. Records of one partition keep their order.
pub fn read_until(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    until: impl Fn(&[InboundMessage]) -> bool,
) -> Vec<InboundMessage> {
    let c = from_beginning(bootstrap, topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !until(&out) {
        if let Some(res) = c.poll(POLL) {
            out.push(inbound(&res.expect("read")));
        }
    }
    out
}

/// The events of type `E` on `topic` from the beginning, decoded with `codec` one by one until
/// `done` holds for those decoded so far or `timeout` passes; returns them either way. Panics on
/// a record that does not decode as `E`.
pub async fn events_until<E, F>(
    bootstrap: &str,
    topic: &str,
    codec: &AvroCodec,
    timeout: Duration,
    done: F,
) -> Vec<E>
where
    E: Event,
    F: Fn(&[E]) -> bool + Send + 'static,
{
    let (bootstrap, topic, codec) = (bootstrap.to_owned(), topic.to_owned(), codec.clone());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let c = from_beginning(&bootstrap, &topic);
        let deadline = Instant::now() + timeout;
        let mut out: Vec<E> = Vec::new();
        while Instant::now() < deadline && !done(&out) {
            if let Some(res) = c.poll(POLL) {
                let m = res.expect("read");
                let payload = m.payload().unwrap_or_default();
                match handle.block_on(codec.decode::<E>(payload)) {
                    Ok(e) => out.push(e),
                    Err(e) => panic!("undecodable record on {topic}: {e}"),
                }
            }
        }
        out
    })
    .await
    .expect("topic reader task")
}

/// Every record decoded as `E` with `codec`, in order; panics on one that does not decode.
pub async fn decode_all<E: Event>(codec: &AvroCodec, msgs: &[InboundMessage]) -> Vec<E> {
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        out.push(
            codec
                .decode::<E>(&m.payload)
                .await
                .unwrap_or_else(|e| panic!("undecodable record on {}: {e}", m.topic)),
        );
    }
    out
}

/// Sends one record of raw bytes (a poison message, or an encoded event) and waits for the
/// broker's acknowledgement.
pub async fn produce_raw(
    producer: &BusProducer,
    topic: &str,
    key: &str,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
) {
    producer
        .send(OutgoingMessage {
            topic: topic.into(),
            key: key.into(),
            payload,
            headers,
        })
        .await
        .unwrap_or_else(|e| panic!("produce to {topic}: {e}"));
}

/// Sends `event` encoded with `codec`, keyed by `key`; returns the payload. With
/// `with_headers` the record carries the codec's headers (event type, event id, content type) as
/// a service's outbox writes them; without, none (as a bare producer would).
pub async fn produce<E: Event>(
    producer: &BusProducer,
    codec: &AvroCodec,
    topic: &str,
    key: &str,
    event: &E,
    with_headers: bool,
) -> Vec<u8> {
    let payload = codec.encode(event).await.expect("encode");
    let headers = if with_headers {
        codec.headers(event)
    } else {
        Vec::new()
    };
    produce_raw(producer, topic, key, payload.clone(), headers).await;
    payload
}

/// A consumer in a throw-away group that never commits.
fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", crate::unique("reader"))
        .set("enable.auto.commit", "false")
        // The dev broker answers a fetch of an idle partition only when this runs out (500 ms
        // by default), which a reader waiting for the next record pays every time.
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("topic reader")
}

/// The partition ids of `topic`; panics if it has none (the topic does not exist).
fn partitions(c: &BaseConsumer, topic: &str) -> Vec<i32> {
    let md = c
        .fetch_metadata(Some(topic), META_TIMEOUT)
        .expect("metadata");
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    partitions
}

/// A consumer assigned every partition of `topic` at its beginning.
fn from_beginning(bootstrap: &str, topic: &str) -> BaseConsumer {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&c, topic) {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    c.assign(&tpl).expect("assign");
    c
}

fn inbound(m: &BorrowedMessage<'_>) -> InboundMessage {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    InboundMessage {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp_ms: m.timestamp().to_millis(),
        attempt: 1,
    }
}
