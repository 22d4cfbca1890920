//! Shared helpers for the end-to-end tests: a fleet in a temp dir, AMFI files, topic readers.

#![allow(dead_code, unreachable_pub)]

pub mod txn;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nivesh_events::{AvroCodec, Event};
use nivesh_fleet::fleet::{Fleet, FleetOptions};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A fleet with its broker started, its data in a fresh temp dir, caches in the real Redis under a
/// unique prefix.
pub async fn fleet(tmp: &tempfile::TempDir) -> Fleet {
    let mut opts = FleetOptions::for_test(tmp.path());
    opts.redis_url = Some(nivesh_testkit::redis_url());
    opts.env.push((
        "NIVESH__REDIS__KEY_PREFIX".into(),
        nivesh_testkit::unique("e2e"),
    ));
    opts.env.push(("RUST_LOG".into(), "info".into()));
    Fleet::start_broker(opts).await.expect("broker starts")
}

/// An AMFI NAVAll file (6-column layout, CRLF) with `n` schemes `900000..`, one NAV each on
/// `date` (AMFI format, e.g. `25-Feb-2025`). NAVs are distinct and keep 4 decimals.
pub fn amfi_file(n: usize, date: &str) -> (String, Vec<(String, String)>) {
    let mut body = String::from(
        "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n \r\n",
    );
    body.push_str(
        "Open Ended Schemes(Debt Scheme - Liquid Fund)\r\n \r\nTest Mutual Fund\r\n \r\n",
    );
    let mut expected = Vec::with_capacity(n);
    for i in 0..n {
        let code = format!("{}", 900_000 + i);
        let nav = format!("{}.{:04}", 10 + i % 90, (i * 37) % 10_000);
        body.push_str(&format!(
            "{code};-;-;Test Liquid Fund {i} - Direct - Growth;{nav};{date}\r\n"
        ));
        expected.push((code, nav));
    }
    (body, expected)
}

/// Every message on `topic` (all partitions) from the beginning, read until `until` says enough
/// or `timeout` passes.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    until: impl Fn(&[OwnedMsg]) -> bool,
) -> Vec<OwnedMsg> {
    let consumer = reader(bootstrap, topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !until(&out) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(owned(&m));
        }
    }
    out
}

/// Everything on `topic` up to the end as of now (each partition read to its high watermark).
pub fn read_topic_to_end(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<OwnedMsg> {
    let consumer = reader(bootstrap, topic);
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            remaining.insert(*p, high);
        }
    }
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "could not read {topic} to its end; partitions left: {remaining:?}"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if remaining
                .get(&m.partition())
                .is_some_and(|high| m.offset() + 1 >= *high)
            {
                remaining.remove(&m.partition());
            }
            out.push(owned(&m));
        }
    }
    out
}

fn reader(bootstrap: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", nivesh_testkit::unique("e2e-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn owned(m: &rdkafka::message::BorrowedMessage<'_>) -> OwnedMsg {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    OwnedMsg {
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
        partition: m.partition(),
        offset: m.offset(),
    }
}

#[derive(Debug, Clone)]
pub struct OwnedMsg {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, Vec<u8>>,
    pub partition: i32,
    pub offset: i64,
}

impl OwnedMsg {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Decode a whole topic's worth of events of one type.
pub async fn decode_all<E: Event>(msgs: &[OwnedMsg]) -> Vec<E> {
    let codec = AvroCodec::single_object();
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        out.push(
            codec
                .decode::<E>(&m.payload)
                .await
                .expect("decodable event"),
        );
    }
    out
}

/// Produce raw bytes to a topic (for poison messages).
pub fn produce_raw(bootstrap: &str, topic: &str, key: &str, payload: &[u8]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    producer
        .send(BaseRecord::to(topic).key(key).payload(payload))
        .expect("enqueue");
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// A metric's value summed over all label sets, from a Prometheus text page.
pub async fn metric(base_url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
