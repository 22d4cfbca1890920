//! Shared helpers for the end-to-end tests: a fleet in a temp dir, AMFI files, topic readers.

#![allow(dead_code, unreachable_pub)]

pub mod txn;

use std::time::Duration;

use nivesh_events::{AvroCodec, Event};
use nivesh_fleet::fleet::{Fleet, FleetOptions};
use rdkafka::ClientConfig;
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

pub use nivesh_testkit::kafka::InboundMessage;

/// Every message on `topic` (all partitions) from the beginning, read until `until` says enough
/// or `timeout` passes.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    until: impl Fn(&[InboundMessage]) -> bool,
) -> Vec<InboundMessage> {
    nivesh_testkit::kafka::read_until(bootstrap, topic, timeout, until)
}

/// Everything on `topic` up to the end as of now (each partition read to its high watermark).
pub fn read_topic_to_end(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<InboundMessage> {
    nivesh_testkit::kafka::read_to_end(bootstrap, topic, timeout)
}

/// Decode a whole topic's worth of events of one type.
pub async fn decode_all<E: Event>(msgs: &[InboundMessage]) -> Vec<E> {
    nivesh_testkit::kafka::decode_all(&AvroCodec::single_object(), msgs).await
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
