//! The idempotent producer every service, the relay and the consumer's retry path share.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::settings::KafkaSettings;
use crate::{Error, Result};

/// A record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// Default bound on how long one record may take to be acknowledged (`message.timeout.ms`),
/// retries included. Without a bound, a record to an unreachable broker would wait forever and
/// the caller (a consumer forwarding to a retry topic, the relay) could never back off and
/// report. Override with `extra["message.timeout.ms"]`.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Cheap to clone (shares one librdkafka producer and its connections).
#[derive(Clone)]
pub struct BusProducer {
    inner: Arc<Inner>,
}

struct Inner {
    producer: FutureProducer,
    /// How long `enqueue` keeps retrying a full local queue before giving up.
    queue_timeout: Duration,
}

impl BusProducer {
    /// Idempotent (`enable.idempotence=true`, hence `acks=all` and in-order retries per
    /// partition): a broker-side retry never writes a record twice or out of order. lz4 because it
    /// is the cheapest codec per byte saved for small Avro records; `linger.ms=5` batches bursts
    /// (the relay, the NAV file) without adding noticeable latency to single events.
    pub fn new(settings: &KafkaSettings) -> Result<Self> {
        let timeout_ms = DEFAULT_MESSAGE_TIMEOUT.as_millis().to_string();
        let mut cfg = settings.client_config(&[
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("message.timeout.ms", &timeout_ms),
        ]);
        // Forced after `extra`: the delivery guarantees rest on these.
        cfg.set("enable.idempotence", "true");
        cfg.set("acks", "all");
        let message_timeout = cfg
            .get("message.timeout.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .ok_or_else(|| {
                Error::Config("message.timeout.ms must be a number of milliseconds".into())
            })?;
        let producer: FutureProducer = cfg.create()?;
        Ok(BusProducer {
            inner: Arc::new(Inner {
                producer,
                queue_timeout: message_timeout,
            }),
        })
    }

    /// Publish one record and wait for the broker's acknowledgement. A failed delivery report
    /// (timeout, unknown topic, fatal idempotence error) is an `Err`.
    ///
    /// Injects the current span's trace context unless the headers already carry one.
    pub async fn send(&self, msg: OutgoingMessage) -> Result<Delivery> {
        self.enqueue(msg).await?.await
    }

    /// Hand one record to librdkafka now and return a future of its delivery report.
    ///
    /// Split from `send` for callers that publish many records and need their order kept: the
    /// order records are enqueued in is the order the idempotent producer writes them per
    /// partition, so they enqueue in order first and await all reports afterwards. A full local
    /// queue is waited out here (up to the message timeout), before the next record enqueues.
    pub async fn enqueue(
        &self,
        msg: OutgoingMessage,
    ) -> Result<impl Future<Output = Result<Delivery>> + use<>> {
        self.enqueue_raw(
            msg.topic,
            Some(msg.key.into_bytes()),
            msg.payload,
            msg.headers,
        )
        .await
    }

    /// [`Self::enqueue`] with a raw key: records forwarded to retry and dead-letter topics keep
    /// their key byte for byte, even when a foreign producer wrote one that is not UTF-8.
    pub(crate) async fn enqueue_raw(
        &self,
        topic: String,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        mut headers: Vec<(String, Vec<u8>)>,
    ) -> Result<impl Future<Output = Result<Delivery>> + use<>> {
        crate::trace::inject_current(&mut headers);
        let started = Instant::now();
        let delivery = loop {
            let mut owned = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in &headers {
                owned = owned.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&topic)
                .payload(payload.as_slice())
                .headers(owned);
            if let Some(k) = &key {
                record = record.key(k.as_slice());
            }
            match self.inner.producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if started.elapsed() < self.inner.queue_timeout =>
                {
                    // librdkafka drains the queue on its own thread; a short sleep is enough and
                    // keeps this task from spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => {
                    record_outcome(&topic, "error");
                    return Err(Error::Delivery { topic, source: e });
                }
            }
        };
        Ok(await_delivery(topic, delivery))
    }

    /// Wait until every enqueued record is acknowledged or failed.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner
            .producer
            .flush(Timeout::After(timeout))
            .map_err(Error::from)
    }

    /// Readiness: fetch cluster metadata within `timeout`. Runs on the blocking pool, since
    /// librdkafka's metadata call blocks its thread.
    pub async fn check_connected(&self, timeout: Duration) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .producer
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|_| ())
                .map_err(Error::from)
        })
        .await
        .map_err(|e| Error::Task(format!("metadata fetch: {e}")))?
    }
}

async fn await_delivery(topic: String, delivery: DeliveryFuture) -> Result<Delivery> {
    match delivery.await {
        Ok(Ok(d)) => {
            record_outcome(&topic, "ok");
            Ok(Delivery {
                partition: d.partition,
                offset: d.offset,
            })
        }
        Ok(Err((e, _))) => {
            record_outcome(&topic, "error");
            Err(Error::Delivery { topic, source: e })
        }
        // The producer was dropped with the record still queued: it was never acknowledged.
        Err(_canceled) => {
            record_outcome(&topic, "error");
            Err(Error::Delivery {
                topic,
                source: KafkaError::Canceled,
            })
        }
    }
}

fn record_outcome(topic: &str, outcome: &'static str) {
    metrics::counter!("nivesh_producer_messages_total", "topic" => topic.to_owned(), "outcome" => outcome)
        .increment(1);
}
